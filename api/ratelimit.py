"""The intake rate limit: one budget per client address, shared by every server process.

Where the count lives decides whether the limit holds across processes:

- ``RESCUE_REDIS_URL`` set: Redis, through the ``limits`` library (fixed window; every process
  and machine using that Redis shares the budget);
- else a PostgreSQL database: a row per client in ``rate_limit_windows`` updated by one
  atomic upsert (every process on the database shares the budget);
- else (SQLite): in the process's memory (``limits``' memory storage): each process has its
  own budget, so N processes allow N times the limit. Documented in docs/api.md.

Each window opens with a client's first request and lasts ``WINDOW_S``; a request over the
limit gets 429 with ``Retry-After`` = seconds until that window ends.

The client address is the peer of the connection. ``X-Forwarded-For`` is believed only when
the peer is one of ``RESCUE_TRUSTED_PROXIES`` (off by default: otherwise any client could pick
its own address and bypass the limit); the client is then the right-most address in the header
that is not itself a trusted proxy. The server runs uvicorn with its own proxy-header handling
off, so this is the only place that reads the header.

If Redis or the database cannot be reached the request is let through (a warning is logged
once a minute): a breakdown report matters more than the limit.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, text

logger = logging.getLogger(__name__)

WINDOW_S = 60
"""Length of a rate-limit window (the setting is per minute)."""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


class CounterStore(Protocol):
    """Counts one hit of ``client`` in its current window and decides."""

    name: str

    def hit(self, client: str, limit: int) -> Decision: ...


class LimitsStore:
    """Memory or Redis storage of the ``limits`` library, fixed windows."""

    def __init__(self, uri: str, *, key_prefix: str = "rescue") -> None:
        from limits import RateLimitItemPerSecond
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter

        options = {} if uri.startswith("memory") else {"key_prefix": key_prefix}
        self.storage = storage_from_string(uri, **options)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self._item = RateLimitItemPerSecond
        self.name = "memory" if uri.startswith("memory") else "redis"

    def hit(self, client: str, limit: int) -> Decision:
        item = self._item(limit, WINDOW_S, namespace="intake")
        if self.limiter.hit(item, client):
            return Decision(True)
        reset_at = self.limiter.get_window_stats(item, client).reset_time
        return Decision(False, max(1, math.ceil(reset_at - time.time())))


UPSERT = text(
    """
    INSERT INTO rate_limit_windows AS w (client_key, window_ends_at, hits)
    VALUES (:client, clock_timestamp() + make_interval(secs => :window_s), 1)
    ON CONFLICT (client_key) DO UPDATE SET
        hits = CASE WHEN w.window_ends_at <= clock_timestamp() THEN 1 ELSE w.hits + 1 END,
        window_ends_at = CASE WHEN w.window_ends_at <= clock_timestamp()
                              THEN EXCLUDED.window_ends_at ELSE w.window_ends_at END
    RETURNING hits, EXTRACT(EPOCH FROM (w.window_ends_at - clock_timestamp()))
    """
)
PRUNE = text("DELETE FROM rate_limit_windows WHERE window_ends_at < clock_timestamp()")


class DatabaseStore:
    """The shared count in PostgreSQL: one atomic upsert per request (the row lock orders
    concurrent hits of one client; the database clock is the only clock)."""

    name = "database"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pruned_at = 0.0
        self._lock = threading.Lock()

    def hit(self, client: str, limit: int) -> Decision:
        with self.engine.begin() as conn:
            hits, seconds_left = conn.execute(
                UPSERT, {"client": client[:100], "window_s": WINDOW_S}
            ).one()
        self._prune()
        if hits <= limit:
            return Decision(True)
        return Decision(False, max(1, math.ceil(float(seconds_left))))

    def _prune(self) -> None:
        """Drop ended windows once a window per process (keeps the table at the active
        clients)."""
        now = time.monotonic()
        with self._lock:
            if now - self._pruned_at < WINDOW_S:
                return
            self._pruned_at = now
        with self.engine.begin() as conn:
            conn.execute(PRUNE)


def parse_trusted_proxies(value: str) -> tuple[IpNetwork, ...]:
    """``RESCUE_TRUSTED_PROXIES``: comma-separated addresses or networks (``10.0.0.0/8``);
    empty = none. ``ValueError`` names a bad entry."""
    networks = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"RESCUE_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def _trusted(address: str, proxies: Iterable[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(
    peer: str, forwarded_for: list[str], trusted_proxies: tuple[IpNetwork, ...]
) -> str:
    """The client a request is counted against (see the module docstring)."""
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage in the header: stop at the last address we could trust
        client = hop
        if not _trusted(hop, trusted_proxies):
            break
    return client


class RateLimiter:
    """The app's limiter: ``per_minute`` hits per client per window (0 = off)."""

    def __init__(
        self,
        per_minute: int,
        store: CounterStore,
        trusted_proxies: tuple[IpNetwork, ...] = (),
    ) -> None:
        self.per_minute = per_minute
        self.store = store
        self.trusted_proxies = trusted_proxies
        self._warned_at = 0.0

    async def check(self, request: Request) -> None:
        """429 with Retry-After when the client is over the limit."""
        if self.per_minute <= 0:
            return
        peer = request.client.host if request.client else "unknown"
        client = client_address(
            peer, request.headers.getlist("x-forwarded-for"), self.trusted_proxies
        )
        if self.store.name == "memory":
            decision = self._decide(client)  # microseconds: on the loop
        else:
            decision = await run_in_threadpool(self._decide, client)
        if not decision.allowed:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many requests from this address: at most {self.per_minute} per minute",
                headers={"Retry-After": str(decision.retry_after_s)},
            )

    def _decide(self, client: str) -> Decision:
        try:
            return self.store.hit(client, self.per_minute)
        except Exception as exc:  # the count's store is down: let the report through
            now = time.monotonic()
            if now - self._warned_at > WINDOW_S:
                self._warned_at = now
                logger.warning(
                    "rate limit store %s unavailable (%s); not limiting",
                    self.store.name,
                    type(exc).__name__,
                )
            return Decision(True)


def make_rate_limiter(
    *,
    per_minute: int,
    engine: Engine,
    redis_url: str | None,
    redis_key_prefix: str,
    trusted_proxies: str,
) -> RateLimiter:
    """The limiter for the settings: Redis if configured, else PostgreSQL, else memory."""
    store: CounterStore
    if redis_url:
        store = LimitsStore(redis_url, key_prefix=redis_key_prefix)
    elif engine.dialect.name == "postgresql":
        store = DatabaseStore(engine)
    else:
        store = LimitsStore("memory://")
    return RateLimiter(per_minute, store, parse_trusted_proxies(trusted_proxies))
