"""One writer at a time on an SQLite file, waiting in a queue instead of in SQLite's busy
handler.

SQLite takes one writer at a time. A second writer (``BEGIN IMMEDIATE``) that finds the lock
taken does not queue: its busy handler sleeps and retries, with sleeps growing to 100 ms, so
it may sleep on long after the lock came free. With the dispatch worker in its own process
(``RESCUE_DISPATCH_MODE=process``) every write transaction of the worker made the intake
writer's next group commit sleep like that: issue 14 measured intake p99 3.3x the run without
the loop on SQLite (PostgreSQL, whose writers queue on row locks, 0.63x).

:class:`WriteLock` is held around a write transaction: an ``flock`` on a file beside the
database (``<file>.write.lock``; the kernel queues waiters and wakes one as soon as the
holder lets go, and releases it if the holder's process dies), behind a lock of the process
(re-entrant, so a holder may open a nested write of its own). Every writer that takes it
(the server's intake writer, its checked intake path and outbox worker, and the dispatch
cycle's sweep and decision writes, in the server or in a worker process) then finds
SQLite's lock free. Writers that do not take it (a staff action, another tool) still meet
SQLite's busy handler, as before. PostgreSQL needs none of this: :func:`write_lock_for`
returns a null context there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sqlalchemy import Engine


def lock_file_prefix(engine: Engine) -> str:
    """The path that lock files of ``engine``'s database start with: the SQLite file itself
    (every process that opens it sees the same locks), or, for an in-memory database (one
    process), a name in the temp dir unique to this process and URL."""
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file::memory:"):
        return str(Path(database).resolve())
    digest = hashlib.sha1(str(engine.url).encode()).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"rescue-{os.getpid()}-{digest}")


class WriteLock:
    """The write lock of one SQLite database in this process (see the module docstring).

    ``acquisitions`` counts the outermost takes (what tests look at)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._file: IO[bytes] | None = None
        self._pid = 0
        self.acquisitions = 0

    def __enter__(self) -> WriteLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)  # waits in the kernel's queue
                self.acquisitions += 1
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _descriptor(self) -> int:
        # One open file per process: a forked child must not share its parent's (an flock
        # belongs to the open file, so parent and child would not exclude each other).
        if self._file is None or self._pid != os.getpid():
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the process
            self._pid = os.getpid()
        return self._file.fileno()


_LOCKS: weakref.WeakKeyDictionary[Engine, contextlib.AbstractContextManager[Any]] = (
    weakref.WeakKeyDictionary()
)
_LOCKS_GUARD = threading.Lock()


def write_lock_for(engine: Engine) -> contextlib.AbstractContextManager[Any]:
    """The write lock of ``engine`` (one per engine in a process, so the writer threads of
    one app share its queue); a null context on PostgreSQL."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(engine)
        if lock is None:
            lock = (
                WriteLock(lock_file_prefix(engine) + ".write.lock")
                if engine.dialect.name == "sqlite"
                else contextlib.nullcontext()
            )
            _LOCKS[engine] = lock
        return lock
