"""The dispatch cycle's short holds of the write lock (issue 14 goal 2 on SQLite): values
converted before the lock give the rows the ORM would write, the bulk event insert notes
the same notifications, the sweep writes only when a read found something, the decision
halves committed apart decide what one transaction did, and the writes run on the thread
that keeps the server's priority. SQLite and PostgreSQL where a database is involved."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session

from api.db import models as m
from api.db.bulk import prepare_insert
from api.db.engine import make_engine, session_factory, transaction
from api.db.migrate import upgrade
from api.db.write_lock import WriteLock, write_lock_for
from api.dispatching.cycle import CyclePolicy, load_snapshot, run_cycle, run_writes_in, solve
from api.dispatching.decisions import OFFERS, VANS, CycleResult, write_decisions
from api.events import NewEvent, add_event, add_events
from api.network.seeding import seed_network
from api.partners.service import OfferPolicy, OfferStatus, sweep, sweep_plan
from tests.api.conftest import shandong_network
from tests.api.test_dispatch_cycle import GC, add_requests, assert_consistent

NOW = dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.UTC)


def _events(engine: Engine, request_id: str) -> list[tuple[Any, ...]]:
    with transaction(session_factory(engine)) as db:
        rows = db.execute(
            select(
                m.Event.created_at, m.Event.kind, m.Event.van_id, m.Event.truck_id,
                m.Event.actor, m.Event.data,
            )
            .where(m.Event.request_id == request_id)
            .order_by(m.Event.id)
        )  # fmt: skip
        return [tuple(r) for r in rows]


def test_prepared_insert_writes_the_rows_a_core_insert_writes(seeded: Engine) -> None:
    """The same event rows (aware UTC time, non-ASCII JSON, NULLs) through the values
    converted up front and through SQLAlchemy's own insert; read back equal."""
    a, b = add_requests(seeded, 2)
    later = NOW + dt.timedelta(microseconds=123_456)

    def rows(request_id: str) -> list[dict[str, Any]]:
        return [
            {"created_at": NOW, "kind": "dispatch_unassigned", "request_id": request_id,
             "van_id": None, "truck_id": None, "actor": "dispatch",
             "data": {"reason": "all_busy", "suggestion": "等待 van", "eta": 12.5, "n": None}},
            {"created_at": later, "kind": "offer_made", "request_id": request_id,
             "van_id": "V1", "truck_id": "T1", "actor": "dispatch", "data": {}},
        ]  # fmt: skip

    prepared = prepare_insert(seeded.dialect, m.Event, rows(a))
    assert len(prepared) == 2
    with transaction(session_factory(seeded)) as db:
        assert prepared.execute(db) == 2
        db.execute(insert(m.Event), rows(b))
    assert _events(seeded, a)[-2:] == _events(seeded, b)[-2:]
    assert _events(seeded, a)[-1][0] == later
    with pytest.raises(KeyError):
        prepare_insert(seeded.dialect, m.Event, [rows(a)[0], {"kind": "x"}])


def test_add_events_writes_what_add_event_writes_with_the_same_notifications(
    seeded: Engine,
) -> None:
    """One bulk insert of van_assigned + offer_made events and the per-row path give the
    same rows, in order after the events added before them, and the same outbox messages
    (a webhook endpoint listens to everything)."""
    a, b = add_requests(seeded, 2)
    factory = session_factory(seeded)
    with transaction(factory) as db:
        db.add(m.NotificationEndpoint(url="https://example.invalid/hook", secret="whsec_eA=="))

    def new(request_id: str) -> list[NewEvent]:
        return [
            NewEvent("van_assigned", NOW, request_id=request_id, van_id="V1", actor="dispatch",
                     data={"cycle_id": "c1", "eta_minutes": 31.5, "queued": False}),
            NewEvent("offer_made", NOW, request_id=request_id, truck_id="T1", actor="dispatch",
                     data={"cycle_id": "c1", "offer_id": 7}),
        ]  # fmt: skip

    with transaction(factory) as db:
        add_event(db, "escalated", request_id=a, actor="dispatch", now=NOW, cycle_id="c1")
        add_events(db, new(a))
    with transaction(factory) as db:
        add_event(db, "escalated", request_id=b, actor="dispatch", now=NOW, cycle_id="c1")
        for e in new(b):
            add_event(db, e.kind, request_id=b, van_id=e.van_id, truck_id=e.truck_id,
                      actor=e.actor, now=e.now, **e.data)  # fmt: skip
    assert _events(seeded, a)[-3:] == _events(seeded, b)[-3:]
    assert [k for _, k, *_ in _events(seeded, a)[-3:]] == [
        "escalated", "van_assigned", "offer_made",
    ]  # fmt: skip
    with transaction(factory) as db:
        outbox = db.execute(
            select(
                m.OutboxMessage.request_id, m.OutboxMessage.event_type, m.OutboxMessage.eta_at
            ).order_by(m.OutboxMessage.id)
        ).all()
    assert [(r, t) for r, t, _ in outbox] == [(a, "request.assigned"), (b, "request.assigned")]
    assert outbox[0][2] == outbox[1][2]


def _expired_offer(engine: Engine, request_id: str) -> int:
    with transaction(session_factory(engine)) as db:
        partner = db.scalars(select(m.Partner).order_by(m.Partner.id)).first()
        assert partner is not None
        offer = m.PartnerOffer(
            request_id=request_id, kind="rescue", partner_id=partner.id,
            status=OfferStatus.OFFERED.value, created_at=NOW - dt.timedelta(hours=2),
            expires_at=NOW - dt.timedelta(minutes=1), decline_reason="",
        )  # fmt: skip
        db.add(offer)
        db.flush()
        return offer.id


def test_sweep_writes_only_what_its_read_found_and_rechecks_it(seeded: Engine) -> None:
    """Nothing open: an empty plan (the cycle then takes no lock for the sweep). An offer
    past its expiry is in the plan; the sweep limited to the plan lapses it; an offer of
    the plan answered meanwhile is left as it is."""
    a, b = add_requests(seeded, 2)
    factory = session_factory(seeded)
    policy = OfferPolicy()
    with transaction(factory) as db:
        assert not sweep_plan(db_session=db, now=NOW, policy=policy)
    first, second = _expired_offer(seeded, a), _expired_offer(seeded, b)
    with transaction(factory) as db:
        plan = sweep_plan(db_session=db, now=NOW, policy=policy)
        assert plan.offer_ids == (first, second)
        assert db.get(m.PartnerOffer, first).status == OfferStatus.OFFERED.value  # type: ignore[union-attr]
    with transaction(factory) as db:  # the partner declined the second one meanwhile
        offer = db.get(m.PartnerOffer, second)
        assert offer is not None
        offer.status, offer.answered_at = OfferStatus.DECLINED.value, NOW
    with transaction(factory) as db:
        swept = sweep(db_session=db, now=NOW, policy=policy, only=plan)
    assert swept.expired == [first]
    with transaction(factory) as db:
        statuses = [db.get(m.PartnerOffer, i).status for i in (first, second)]  # type: ignore[union-attr]
        kinds = db.scalars(select(m.Event.kind).where(m.Event.kind.like("offer_%"))).all()
    assert statuses == [OfferStatus.EXPIRED.value, OfferStatus.DECLINED.value]
    assert list(kinds) == ["offer_expired"]


def test_a_cycle_with_nothing_to_sweep_takes_no_sweep_hold(tmp_path: Path) -> None:
    """The write lock's record after a cycle with no open offer: the decision halves and
    the reasons took it, the sweep did not."""
    url = f"sqlite:///{tmp_path / 'rescue.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="test")
    add_requests(engine, 3)
    result = run_cycle(factory=session_factory(engine), provider=GC, respect_shifts=False)
    assert len(result.assigned) == 3
    lock = write_lock_for(engine)
    assert isinstance(lock, WriteLock)
    counts = {label: s["count"] for label, s in lock.stats().items()}
    assert counts == {"cycle.vans": 1, "cycle.reasons": 1}
    engine.dispose()


def _seeded_copy(template: Path, target: Path) -> Engine:
    shutil.copyfile(template, target)
    return make_engine(f"sqlite:///{target}")


def _state(engine: Engine) -> dict[str, Any]:
    with transaction(session_factory(engine)) as db:
        return {
            "assignments": sorted(
                db.execute(
                    select(
                        m.VanAssignment.request_id, m.VanAssignment.van_id,
                        m.VanAssignment.active, m.VanAssignment.eta_at,
                        m.VanAssignment.promised_eta_at, m.VanAssignment.travel_km,
                        m.VanAssignment.queued, m.VanAssignment.reason,
                        m.VanAssignment.end_reason, m.VanAssignment.source,
                    )
                ).all()
            ),
            "requests": sorted(
                db.execute(
                    select(m.RescueRequest.id, m.RescueRequest.status,
                           m.RescueRequest.escalated_at, m.RescueRequest.escalation_reason)
                ).all()
            ),
            "vans": sorted(db.execute(select(m.Van.id, m.Van.status, m.Van.busy_until)).all()),
            "offers": sorted(
                db.execute(
                    select(m.PartnerOffer.id, m.PartnerOffer.request_id, m.PartnerOffer.kind,
                           m.PartnerOffer.truck_id, m.PartnerOffer.status,
                           m.PartnerOffer.expires_at, m.PartnerOffer.cost_cny)
                ).all()
            ),
            "events": [
                tuple(r)
                for r in db.execute(
                    select(m.Event.kind, m.Event.request_id, m.Event.van_id, m.Event.data)
                    .where(m.Event.kind != "request_received")
                    .order_by(m.Event.id)
                )
            ],
        }  # fmt: skip


def test_the_halves_committed_apart_store_what_one_transaction_stored(tmp_path: Path) -> None:
    """One snapshot and one solve (requests of which half need a truck too), written once
    in one transaction and once as the van half then the partner half in two: the same
    assignments, truck offers, statuses and events, no double booking."""
    template = tmp_path / "template.sqlite"
    engine = make_engine(f"sqlite:///{template}")
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="test")
    ids = add_requests(engine, 12, seed=3, cargo=True)
    with transaction(session_factory(engine)) as db:  # half of them need a truck too
        for rid in ids[::2]:
            req = db.get(m.RescueRequest, rid)
            assert req is not None
            req.needs_replacement = True
    engine.dispose()
    together = _seeded_copy(template, tmp_path / "together.sqlite")
    with transaction(session_factory(together)) as db:
        snapshot = load_snapshot(db_session=db, now=NOW, policy=CyclePolicy(respect_shifts=False))
    van_matching, replacements = solve(snapshot, GC)
    assert van_matching is not None and van_matching.assignments
    assert replacements is not None and replacements.bookings

    def write(engine: Engine, parts: list[tuple[str, ...]]) -> CycleResult:
        result = CycleResult(cycle_id="c1", started_at=NOW, provider="gc")
        for part in parts:
            with transaction(session_factory(engine)) as db:
                write_decisions(
                    db_session=db, snapshot=snapshot, van_matching=van_matching,
                    replacements=replacements, result=result, parts=part,
                )  # fmt: skip
        return result

    one = write(together, [(VANS, OFFERS)])
    apart = _seeded_copy(template, tmp_path / "apart.sqlite")
    two = write(apart, [(VANS,), (OFFERS,)])
    assert one.as_dict() == two.as_dict()
    assert len(one.assigned) == len(van_matching.assignments)
    assert len(one.offered) == len(replacements.bookings)
    assert _state(together) == _state(apart)
    assert_consistent(apart)
    together.dispose()
    apart.dispose()


def test_a_threads_nice_value_is_its_own_on_linux() -> None:
    """What the worker relies on (api.dispatching.loop): a thread started before the main
    thread nices itself keeps its priority. Run in a child so the tests stay un-niced."""
    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are Linux's")
    code = (
        "import os, threading\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "pool = ThreadPoolExecutor(1)\n"
        "tid = pool.submit(threading.get_native_id).result()\n"
        "before = os.getpriority(os.PRIO_PROCESS, tid)\n"
        "os.nice(5)\n"
        "print(before, os.getpriority(os.PRIO_PROCESS, tid), "
        "os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), "
        "pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, 0)).result())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, writes_after, main_after, seen_by_writes = map(int, out.stdout.split())
    assert writes_after == before == seen_by_writes
    assert main_after == min(before + 5, 19)


def test_the_cycles_writes_run_on_the_given_thread(seeded: Engine) -> None:
    """With run_writes_in, every flush of a cycle (its writes) runs on the writes thread;
    the snapshot and the reads stay on the caller's. The cycle decides as without it."""
    add_requests(seeded, 3)
    writers: list[str] = []

    def on_flush(session: Any, *_: Any) -> None:
        writers.append(threading.current_thread().name)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-writes")
    event.listen(Session, "after_flush", on_flush)
    run_writes_in(pool)
    try:
        result = run_cycle(factory=session_factory(seeded), provider=GC, respect_shifts=False)
    finally:
        run_writes_in(None)
        event.remove(Session, "after_flush", on_flush)
        pool.shutdown()
    assert len(result.assigned) == 3
    assert writers and all(name.startswith("dispatch-writes") for name in writers)
    assert_consistent(seeded)
