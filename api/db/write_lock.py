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

Each lock keeps how long its holders waited for it and held it, per holder (a label the
caller gives with :func:`held`, else the thread's name: ``intake-writer``,
``outbox-worker``, ...): counts, totals, a histogram and percentiles of the latest samples
(:meth:`WriteLock.stats`; :func:`write_stats_file` writes every lock's of the process, which
``rescue bench api --lock-stats`` collects). Two clock reads per hold; no timing is ever
acted on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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


HISTOGRAM_EDGES_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Upper edges of the hold / wait histograms' buckets (the last bucket is open)."""
SAMPLES_KEPT = 50_000
"""Per holder, the latest waits and holds kept for percentiles (a long-running server's
memory stays bounded; counts, totals and maxima cover every hold)."""


def _bucket_names() -> list[str]:
    names, low = [], 0
    for edge in HISTOGRAM_EDGES_MS:
        names.append(f"{low}-{edge}")
        low = edge
    return [*names, f">={low}"]


def histogram(samples_ms: Iterable[float]) -> dict[str, int]:
    """Counts per bucket of :data:`HISTOGRAM_EDGES_MS` (``"a-b"``: a <= ms < b)."""
    names = _bucket_names()
    counts = dict.fromkeys(names, 0)
    for ms in samples_ms:
        k = next((i for i, edge in enumerate(HISTOGRAM_EDGES_MS) if ms < edge), len(names) - 1)
        counts[names[k]] += 1
    return counts


def _percentile(ordered: list[float], p: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else None


@dataclass
class HolderStats:
    """One holder's record on one lock (seconds)."""

    count: int = 0
    wait_total: float = 0.0
    wait_max: float = 0.0
    hold_total: float = 0.0
    hold_max: float = 0.0
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    holds: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))

    def add(self, wait: float, hold: float) -> None:
        self.count += 1
        self.wait_total += wait
        self.hold_total += hold
        self.wait_max = max(self.wait_max, wait)
        self.hold_max = max(self.hold_max, hold)
        self.waits.append(wait)
        self.holds.append(hold)

    def summary(self) -> dict[str, Any]:
        """Counts, totals, maxima, p50 / p90 / p99 of the kept samples and their
        histograms, in milliseconds."""

        def part(samples: deque[float], total: float, top: float) -> dict[str, Any]:
            ms = sorted(s * 1000.0 for s in samples)
            pct = {f"p{round(p * 100)}": _percentile(ms, p) for p in (0.5, 0.9, 0.99)}
            return {
                "total": round(total * 1000.0, 1),
                "max": round(top * 1000.0, 2),
                **{k: None if v is None else round(v, 2) for k, v in pct.items()},
                "histogram": histogram(ms),
            }

        return {
            "count": self.count,
            "wait_ms": part(self.waits, self.wait_total, self.wait_max),
            "hold_ms": part(self.holds, self.hold_total, self.hold_max),
        }


class WriteLock:
    """The write lock of one SQLite database in this process (see the module docstring).

    ``acquisitions`` counts the outermost takes (what tests look at); :meth:`stats` says
    who held it how long."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._file: IO[bytes] | None = None
        self._pid = 0
        self.acquisitions = 0
        self._holders: dict[str, HolderStats] = {}
        self._stats_guard = threading.Lock()
        self._label = ""
        self._waited = 0.0
        self._since = 0.0

    def __enter__(self) -> WriteLock:
        self._acquire(None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    @contextlib.contextmanager
    def held(self, label: str) -> Iterator[WriteLock]:
        """The lock, its hold recorded under ``label`` (when this is the outermost take)."""
        self._acquire(label)
        try:
            yield self
        finally:
            self._release()

    def _acquire(self, label: str | None) -> None:
        asked = time.perf_counter()
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)  # waits in the kernel's queue
                self.acquisitions += 1
                self._since = time.perf_counter()
                self._waited = self._since - asked
                self._label = label or threading.current_thread().name
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise

    def _release(self) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
                held_for = time.perf_counter() - self._since
                with self._stats_guard:
                    holder = self._holders.get(self._label)
                    if holder is None:
                        holder = self._holders[self._label] = HolderStats()
                    holder.add(self._waited, held_for)
        finally:
            self._thread_lock.release()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per holder label: :meth:`HolderStats.summary` (milliseconds)."""
        with self._stats_guard:
            holders = {label: _copy(h) for label, h in self._holders.items()}
        return {label: h.summary() for label, h in sorted(holders.items())}

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


def _copy(h: HolderStats) -> HolderStats:
    """A copy to summarise outside the guard (the holder keeps recording meanwhile)."""
    return HolderStats(
        h.count, h.wait_total, h.wait_max, h.hold_total, h.hold_max,
        deque(h.waits), deque(h.holds),
    )  # fmt: skip


def held(
    lock: contextlib.AbstractContextManager[Any], label: str
) -> contextlib.AbstractContextManager[Any]:
    """``lock`` (a :func:`write_lock_for` result) with its hold recorded under ``label``; the
    null context of PostgreSQL as it is."""
    return lock.held(label) if isinstance(lock, WriteLock) else lock


def process_stats() -> dict[str, Any]:
    """Every SQLite write lock of this process: its path and :meth:`WriteLock.stats`."""
    with _LOCKS_GUARD:
        locks = [lock for lock in _LOCKS.values() if isinstance(lock, WriteLock)]
    return {"pid": os.getpid(), "locks": {lock.path: lock.stats() for lock in locks}}


def write_stats_file(directory: str, role: str) -> Path:
    """Write :func:`process_stats` (and ``role``: server, worker) as JSON to
    ``<directory>/write-lock-<role>-<pid>.json``; its path."""
    path = Path(directory) / f"write-lock-{role}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"role": role, **process_stats()}, indent=1))
    return path


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
