"""Who may run a dispatch cycle now, across threads, processes and machines.

A cycle holds named locks for as long as it runs:

* the whole-network cycle (``rescue dispatch``, ``POST /v1/dispatch/runs``, one worker without
  regions) holds the *network* lock exclusively;
* a region's cycle holds the network lock *shared* and its region's lock exclusively, so
  cycles of different regions run side by side while a whole-network cycle excludes them all;
* the border cycle holds the border lock, the network lock shared and every region's lock,
  waiting a bounded time for them in that order (see :mod:`api.dispatching.regions`); no
  other cycle waits, so there is no deadlock.

Whoever may book a van holds the lock of the van's region (or the exclusive network lock), so
two cycles never decide about the same van or request at once; the database's partial unique
indexes and the write's re-check stay as the last guard.

On PostgreSQL the locks are session advisory locks on one connection (the network lock is
the one-key lock the single cycle always used; a region's is the two-key lock
``(NETWORK_LOCK_KEY, crc32 of its provinces)``), so they work across machines and vanish
with a crashed process. On SQLite they are ``flock`` locks on files beside the database
(``<file>.dispatch-<name>.lock``): every process that opens the file sees them, and one open
file per acquisition makes threads of one process exclude each other too. An in-memory
SQLite database belongs to one process: its lock files are per process, in the temp dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from sqlalchemy import Connection, Engine, text

from api.db.write_lock import lock_file_prefix

NETWORK_LOCK_KEY = 0x52455343  # "RESC"


@dataclass(frozen=True)
class CycleLock:
    """One named lock: ``name`` is ``network`` or a region's name; ``key`` its PostgreSQL
    two-key advisory id (None for the network lock, which is one-key)."""

    name: str
    key: int | None = None
    shared: bool = False


NETWORK_LOCK = CycleLock("network")
NETWORK_SHARED = CycleLock("network", shared=True)


def region_lock_key(provinces: frozenset[str]) -> int:
    """A stable signed 32-bit id of a province set (every worker computes the same one)."""
    value = zlib.crc32(",".join(sorted(provinces)).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


POLL_S = 0.01
"""How often a bounded wait (``hold_locks(..., wait_s=...)``) tries a lock again."""


def is_held(engine: Engine, lock: CycleLock) -> bool:
    """Whether someone holds ``lock`` exclusively now (a probe: taken shared and let go at
    once; the answer may be stale by the time the caller acts on it)."""
    with hold_locks(engine, [dataclasses.replace(lock, shared=True)]) as got:
        return not got


@contextlib.contextmanager
def hold_locks(
    engine: Engine,
    locks: Sequence[CycleLock],
    *,
    wait: bool = False,
    wait_s: float | None = None,
    first_try: int = 0,
) -> Iterator[bool]:
    """Take ``locks`` in the given order and yield True while all are held; without ``wait``,
    yield False at once (holding none) when one is taken by someone else. Callers that wait
    must take locks in one global order (see the module docstring). With ``wait_s`` the locks
    after the first ``first_try`` ones (which are only tried) are tried again every
    :data:`POLL_S` until ``wait_s`` seconds have passed, then all are let go (False)."""
    if not locks:
        yield True
        return
    if wait_s is not None:
        with _bounded(engine, locks, wait_s, first_try) as got:
            yield got
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn, _pg_locks(conn, locks, wait=wait) as got:
            yield got
        return
    with _file_locks(lock_file_prefix(engine), locks, wait=wait) as got:
        yield got


@contextlib.contextmanager
def _bounded(
    engine: Engine, locks: Sequence[CycleLock], wait_s: float, first_try: int
) -> Iterator[bool]:
    deadline = time.monotonic() + wait_s
    with contextlib.ExitStack() as held:
        for position, lock in enumerate(locks):
            while True:
                attempt = hold_locks(engine, [lock])
                if attempt.__enter__():
                    held.push(attempt.__exit__)
                    break
                attempt.__exit__(None, None, None)  # holds nothing; closes its connection
                if position < first_try or time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(POLL_S)
        yield True


@contextlib.contextmanager
def _pg_locks(conn: Connection, locks: Sequence[CycleLock], *, wait: bool) -> Iterator[bool]:
    held: list[CycleLock] = []
    try:
        for lock in locks:
            fn = ("pg_advisory_lock" if wait else "pg_try_advisory_lock") + (
                "_shared" if lock.shared else ""
            )
            if lock.key is None:
                sql, params = f"SELECT {fn}(:a)", {"a": NETWORK_LOCK_KEY}
            else:
                sql, params = f"SELECT {fn}(:a, :b)", {"a": NETWORK_LOCK_KEY, "b": lock.key}
            got = conn.execute(text(sql), params).scalar()
            conn.commit()
            if not wait and not got:
                yield False
                return
            held.append(lock)
        yield True
    finally:
        for lock in reversed(held):
            fn = "pg_advisory_unlock" + ("_shared" if lock.shared else "")
            if lock.key is None:
                conn.execute(text(f"SELECT {fn}(:a)"), {"a": NETWORK_LOCK_KEY})
            else:
                conn.execute(text(f"SELECT {fn}(:a, :b)"), {"a": NETWORK_LOCK_KEY, "b": lock.key})
        conn.commit()


@contextlib.contextmanager
def _file_locks(prefix: str, locks: Sequence[CycleLock], *, wait: bool) -> Iterator[bool]:
    files: list[IO[bytes]] = []
    try:
        for lock in locks:
            handle = open(f"{prefix}.dispatch-{lock.name}.lock", "ab")  # noqa: SIM115
            files.append(handle)
            mode = (fcntl.LOCK_SH if lock.shared else fcntl.LOCK_EX) | (
                0 if wait else fcntl.LOCK_NB
            )
            try:
                fcntl.flock(handle.fileno(), mode)
            except BlockingIOError:
                yield False
                return
        yield True
    finally:
        for opened in reversed(files):
            opened.close()  # closing the last descriptor of the open file releases its flock
