"""The checked intake path (Idempotency-Key, designated station): one unit of work per
request, also when two first uses of one key race."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from api.db import models as m
from api.db.engine import session_factory, transaction
from api.requests.intake import create_request
from api.schemas import RequestCreate
from api.security import hash_token
from tests.api.conftest import request_body


def test_concurrent_first_use_of_an_idempotency_key_replays_the_winner(seeded: Engine) -> None:
    """Two first uses of one Idempotency-Key at once (PostgreSQL, READ COMMITTED): the loser's
    lookup misses, its insert waits on the unique index until the winner commits, then fails
    inside a savepoint; the same unit of work answers it as a replay of the winner (same id,
    the same tracking token, one stored request and one first event)."""
    if seeded.dialect.name != "postgresql":
        pytest.skip("SQLite takes the write lock at BEGIN: two first uses cannot interleave")
    factory = session_factory(seeded)
    body = RequestCreate.model_validate(request_body())
    winner_session = factory()
    winner_session.begin()
    winner = create_request(
        db_session=winner_session,
        body=body,
        threshold_hours=24.0,
        token_secret=b"test-secret",
        idempotency_key="race-1",
    )
    outcome: dict[str, Any] = {}

    def second_use() -> None:
        try:
            with transaction(factory) as db:
                outcome["intake"] = create_request(
                    db_session=db,
                    body=body,
                    threshold_hours=24.0,
                    token_secret=b"test-secret",
                    idempotency_key="race-1",
                )
        except Exception as exc:
            outcome["error"] = exc

    loser = threading.Thread(target=second_use)
    loser.start()
    with seeded.connect() as watcher:  # wait until the loser's insert waits on the winner
        for _ in range(2000):
            waiting = watcher.execute(
                text("SELECT count(*) FROM pg_locks WHERE NOT granted")
            ).scalar()
            if waiting or not loser.is_alive():
                break
            watcher.rollback()
            time.sleep(0.005)
    assert loser.is_alive(), outcome  # it was blocked, not answered from its own lookup
    winner_session.commit()
    winner_session.close()
    loser.join(30)
    assert "error" not in outcome, outcome.get("error")
    replay = outcome["intake"]
    assert replay.replayed and replay.request.id == winner.request.id
    assert replay.tracking_token == winner.tracking_token  # derived: both copies work
    with transaction(factory) as db:
        rows = db.scalars(
            select(m.RescueRequest).where(m.RescueRequest.idempotency_key == "race-1")
        ).all()
        assert len(rows) == 1
        assert rows[0].tracking_token_hash == hash_token(replay.tracking_token)
        events = db.scalars(select(m.Event).where(m.Event.request_id == rows[0].id)).all()
        assert [e.kind for e in events] == ["request_received"]
