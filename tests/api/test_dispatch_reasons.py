"""The waiting reasons a dispatch cycle records (api/dispatching/reasons.py): worked out before
the write lock, appended with one insert, one event per change of reason (SQLite and
PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.dispatching.reasons import (
    UNASSIGNED_KIND,
    insert_reasons,
    reasons_to_record,
    record_reasons,
)
from api.events import add_event
from api.schemas import UnassignedRead
from dispatch import UnassignedReason
from tests.api.test_dispatch_cycle import add_requests

NOW = dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.UTC)


def reason(request_id: str, kind: UnassignedReason, eta: float | None = 95.0) -> UnassignedRead:
    return UnassignedRead(
        request_id=request_id,
        reason=kind,
        suggestion=f"suggestion for {kind.value}",
        nearest_van_id="V1",
        nearest_eta_minutes=eta,
    )


def reason_rows(engine: Engine) -> list[tuple[str | None, str, dict[str, object]]]:
    with transaction(session_factory(engine)) as db:
        rows = db.execute(
            select(m.Event.request_id, m.Event.actor, m.Event.data)
            .where(m.Event.kind == UNASSIGNED_KIND)
            .order_by(m.Event.id)
        )
        return [(r, a, d) for r, a, d in rows]


def test_reasons_are_written_once_per_change(seeded: Engine) -> None:
    """Three cycles: the first writes both requests' reasons; the second, with the nearest
    van's ETA drifted only, writes nothing; the third writes only the request whose reason
    changed. Each row carries the cycle id and the read model's fields."""
    a, b = add_requests(seeded, 2)
    busy, radius = UnassignedReason.ALL_BUSY, UnassignedReason.NO_VAN_IN_RADIUS
    factory = session_factory(seeded)
    cycles = [
        ("c1", [reason(a, busy), reason(b, radius)]),
        ("c2", [reason(a, busy, eta=97.5), reason(b, radius, eta=None)]),
        ("c3", [reason(a, radius), reason(b, radius)]),
    ]
    written = []
    for cycle_id, reasons in cycles:
        with transaction(factory) as db:
            written.append(record_reasons(db, UNASSIGNED_KIND, reasons, NOW, cycle_id))
    assert written == [2, 0, 1]
    rows = reason_rows(seeded)
    first = sorted([(a, "c1", busy.value), (b, "c1", radius.value)])  # in request id order
    assert [(r, d["cycle_id"], d["reason"]) for r, _, d in rows] == [
        *first,
        (a, "c3", radius.value),
    ]
    assert next(row for row in rows if row[0] == a) == (
        a,
        "dispatch",
        {
            "cycle_id": "c1",
            "reason": busy.value,
            "suggestion": "suggestion for all_busy",
            "nearest_van_id": "V1",
            "nearest_eta_minutes": 95.0,
        },
    )


def test_the_one_insert_writes_the_rows_add_event_would(seeded: Engine) -> None:
    """The executemany insert and the per-row ORM path give the same row (time, kind,
    request, actor, data), and the insert keeps events added before it first in id order."""
    (a,) = add_requests(seeded, 1)
    factory = session_factory(seeded)
    read = reason(a, UnassignedReason.NO_CAPABLE_VAN)
    with transaction(factory) as db:
        changed = reasons_to_record(db, UNASSIGNED_KIND, [read])
    assert list(changed) == [a]
    with transaction(factory) as db:
        add_event(db, "escalated", request_id=a, actor="dispatch", now=NOW, cycle_id="c1")
        assert insert_reasons(db, UNASSIGNED_KIND, changed, NOW, "c1") == 1
        add_event(
            db, UNASSIGNED_KIND, request_id=a, actor="dispatch", now=NOW, cycle_id="c1",
            **read.model_dump(mode="json", exclude={"request_id"}),
        )  # fmt: skip
    with transaction(factory) as db:
        events = db.scalars(
            select(m.Event).where(m.Event.request_id == a).order_by(m.Event.id)
        ).all()
        tail = [(e.kind, e.created_at, e.actor, e.van_id, e.truck_id, e.data) for e in events[-3:]]
    assert [k for k, *_ in tail] == ["escalated", UNASSIGNED_KIND, UNASSIGNED_KIND]
    assert tail[1] == tail[2]
    with transaction(factory) as db:  # now recorded: the same reason again is no change
        assert reasons_to_record(db, UNASSIGNED_KIND, [read]) == {}
