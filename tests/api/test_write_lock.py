"""The SQLite write lock (``api/db/write_lock.py``): the intake writer and the dispatch worker
process queue on one ``flock`` instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import OperationalError

from api.app import create_app
from api.db import models as m
from api.db.engine import make_engine, session_factory, transaction
from api.db.migrate import upgrade
from api.db.write_lock import WriteLock, held, write_lock_for, write_stats_file
from api.network.seeding import seed_network
from tests.api.conftest import app_settings, request_body, shandong_network

pytestmark = pytest.mark.skipif(
    not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see flock waiters"
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'rescue.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="test")
    engine.dispose()
    return url


def _waiters(lock_path: str) -> set[int]:
    """Pids with a write flock on ``lock_path`` they are waiting for (``/proc/locks`` lists
    a blocked request as ``N: -> FLOCK ADVISORY WRITE pid maj:min:inode ...``)."""
    inode = os.stat(lock_path).st_ino
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        waiting_flock = len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK"
        if waiting_flock and int(fields[6].rsplit(":", 1)[1]) == inode:
            pids.add(int(fields[5]))
    return pids


def _wait_for(condition: Any, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s  # a bound for a stuck process, not a timing test
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_intake_writer_and_worker_process_queue_on_the_write_lock(sqlite_url: str) -> None:
    """While another holder has the write lock, the intake writer (a thread of the server)
    and a dispatch worker process both wait in the lock's queue (seen in /proc/locks), the
    POST gets no answer and nothing is dispatched; once it is released, the POST is stored
    (201) and the worker assigns the waiting requests."""
    engine = make_engine(sqlite_url)
    app = create_app(app_settings(sqlite_url, dispatch_mode="off"), engine=engine)
    lock_path = sqlite_url.removeprefix("sqlite:///") + ".write.lock"
    with TestClient(app) as client:
        waiting = [client.post("/v1/requests", json=request_body()).json()["id"] for _ in range(3)]
        holder = open(lock_path, "ab")  # noqa: SIM115 - another open file: another holder
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        responses: list[int] = []
        poster = threading.Thread(
            target=lambda: responses.append(
                client.post("/v1/requests", json=request_body()).status_code
            )
        )
        poster.start()
        env = {
            **os.environ,
            "RESCUE_TRAVEL_PROVIDER": "great_circle",
            "RESCUE_RESPECT_SHIFTS": "false",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "dispatch", "--loop", "--until-idle",
             "--db", sqlite_url],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            _wait_for(
                lambda: {os.getpid(), worker.pid} <= _waiters(lock_path),
                "the intake writer and the worker to queue on the lock",
            )
            assert responses == [] and worker.poll() is None
            with transaction(session_factory(engine)) as db:
                assert db.scalar(select(m.VanAssignment.id).limit(1)) is None
        finally:
            fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
            holder.close()
            poster.join(120)
            _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode(errors="replace")[-2000:]
        assert responses == [201]
    with transaction(session_factory(engine)) as db:
        statuses = dict(
            db.execute(
                select(m.RescueRequest.id, m.RescueRequest.status).where(
                    m.RescueRequest.id.in_(waiting)
                )
            ).all()
        )
    assert set(statuses.values()) == {"assigned"}
    engine.dispose()


def _writer(url: str, use_lock: bool, start: Any, rounds: int, tag: str, out: Any) -> None:
    """A child process: ``rounds`` write transactions (each holds SQLite's lock a moment),
    with SQLite's busy timeout at 0 so that any wait in the busy handler fails at once; puts
    how many failed with "database is locked" on ``out``."""
    engine = make_engine(url, check=False)  # no pooled connection made before the listener

    @event.listens_for(engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    lock = write_lock_for(engine) if use_lock else contextlib.nullcontext()
    insert = text(
        "INSERT INTO server_secrets (name, value, created_at) VALUES (:n, 'x', '2026-11-29')"
    )
    start.wait()
    locked = 0
    for k in range(rounds):
        try:
            with lock, engine.begin() as conn:
                conn.execute(insert, {"n": f"{tag}-{k}"})
                time.sleep(0.002)
        except OperationalError as exc:
            if "database is locked" not in str(exc):
                raise
            locked += 1
    engine.dispose()
    out.put(locked)


def _run_writers(url: str, use_lock: bool, tag: str, rounds: int = 150) -> int:
    """Two writer processes started together; the "database is locked" failures of both."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    procs = [
        context.Process(target=_writer, args=(url, use_lock, start, rounds, f"{tag}{i}", out))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # both children are up (spawned, imported) before they start writing
    start.set()
    failures = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return sum(failures)


def test_concurrent_writers_of_two_processes_never_see_database_is_locked(
    sqlite_url: str,
) -> None:
    """Two processes writing at once with SQLite's busy timeout at 0: with the write lock no
    transaction ever meets "database is locked" and every row is stored (the control, that
    a writer without the lock does meet it, is the deterministic test below: how much two
    free processes overlap depends on the machine's load)."""
    assert _run_writers(sqlite_url, use_lock=True, tag="locked") == 0
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM server_secrets WHERE name LIKE 'locked%'")
        ).scalar()
    engine.dispose()
    assert stored == 300


def _busy_timeout_zero_engine(url: str) -> Engine:
    engine = make_engine(url, check=False)

    @event.listens_for(engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    return engine


def test_a_writer_without_the_lock_meets_database_is_locked_and_one_with_it_queues(
    sqlite_url: str,
) -> None:
    """While a writer holds the write lock and an open write transaction, another writer
    (busy timeout 0) that skips the lock fails at once with "database is locked"; one that
    takes the lock waits in its queue and stores its row after the holder commits."""
    holder, other = _busy_timeout_zero_engine(sqlite_url), _busy_timeout_zero_engine(sqlite_url)
    insert = text(
        "INSERT INTO server_secrets (name, value, created_at) VALUES (:n, 'x', '2026-11-29')"
    )
    results: list[str] = []

    def queued_writer() -> None:
        try:
            with write_lock_for(other), other.begin() as conn:
                conn.execute(insert, {"n": "queued"})
            results.append("stored")
        except OperationalError as exc:
            results.append(str(exc))

    queued = threading.Thread(target=queued_writer)
    with write_lock_for(holder), holder.begin() as conn:
        conn.execute(insert, {"n": "held"})
        with (
            pytest.raises(OperationalError, match="database is locked"),
            other.begin() as free,
        ):
            free.execute(insert, {"n": "free"})
        queued.start()
        queued.join(0.5)
        assert results == []  # still queued on the lock, not failed in SQLite
    queued.join(60)
    assert results == ["stored"]
    with holder.connect() as conn:
        names = conn.execute(text("SELECT name FROM server_secrets WHERE value = 'x'")).scalars()
        assert sorted(names) == ["held", "queued"]
    holder.dispose()
    other.dispose()


def test_write_lock_is_reentrant_and_excludes_other_open_files(tmp_path: Path) -> None:
    """A holder may take it again (nested write) and stays the holder until the outermost
    release; meanwhile another open file of the lock cannot take it."""
    path = str(tmp_path / "db.write.lock")
    lock = WriteLock(path)

    def other_can_take() -> bool:
        with open(path, "ab") as other:
            try:
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(other.fileno(), fcntl.LOCK_UN)
            return True

    with lock:
        with lock:
            assert not other_can_take()
        assert not other_can_take()
    assert other_can_take()
    assert lock.acquisitions == 1


def test_postgresql_engines_get_no_file_lock(engine: Engine) -> None:
    """On PostgreSQL writers queue on row locks already: the write lock is a null context."""
    lock = write_lock_for(engine)
    assert isinstance(lock, WriteLock) is (engine.dialect.name == "sqlite")


def test_the_lock_records_each_holders_waits_and_holds(tmp_path: Path) -> None:
    """Per holder label (given, else the thread's name): one record per outermost take (a
    nested take is part of its holder's), histograms that count every wait and hold, and
    the process's file listing the locks of its engines (what bench api --lock-stats
    reads). No timing is asserted: only what was recorded."""
    engine = make_engine(f"sqlite:///{tmp_path / 'rescue.sqlite'}")
    lock = write_lock_for(engine)
    assert isinstance(lock, WriteLock)
    with held(lock, "cycle.vans"), lock:  # nested: one hold of cycle.vans
        pass
    with held(lock, "cycle.vans"):
        pass
    holding, release = threading.Event(), threading.Event()

    def intake() -> None:
        with lock:
            holding.set()
            release.wait()

    def outbox() -> None:
        with lock:
            pass

    first = threading.Thread(target=intake, name="intake-writer")
    first.start()
    holding.wait()
    second = threading.Thread(target=outbox, name="outbox-worker")
    second.start()  # queues behind intake-writer
    release.set()
    first.join()
    second.join()
    stats = lock.stats()
    assert {k: v["count"] for k, v in stats.items()} == {
        "cycle.vans": 2,
        "intake-writer": 1,
        "outbox-worker": 1,
    }
    assert lock.acquisitions == 4
    for record in stats.values():
        for part in ("wait_ms", "hold_ms"):
            assert sum(record[part]["histogram"].values()) == record["count"]
            assert record[part]["max"] >= record[part]["p50"] >= 0
    path = write_stats_file(str(tmp_path / "stats"), "worker")
    assert path.name == f"write-lock-worker-{os.getpid()}.json"
    written = json.loads(path.read_text())
    assert written["role"] == "worker" and written["pid"] == os.getpid()
    assert written["locks"][lock.path] == json.loads(json.dumps(stats))
    engine.dispose()


def test_held_on_postgresql_is_the_null_lock(engine: Engine) -> None:
    lock = write_lock_for(engine)
    if engine.dialect.name == "postgresql":
        assert held(lock, "cycle.vans") is lock
    else:
        assert isinstance(held(lock, "cycle.vans"), contextlib.AbstractContextManager)
