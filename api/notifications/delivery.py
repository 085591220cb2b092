"""The outbox delivery worker: sends each pending delivery at least once, with backoff.

One thread per process (started by the app's lifespan unless ``RESCUE_OUTBOX_WORKER=false``)
polls every ``RESCUE_OUTBOX_INTERVAL_S`` and right after any commit that wrote deliveries.
Each round is three short steps, so no transaction is open while a receiver is slow:

1. **Claim** (one transaction): up to :data:`BATCH` due deliveries (``pending``,
   ``next_attempt_at`` passed, endpoint active), ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so
   that two processes never take the same row (SQLite: one writer at a time anyway). The
   claim counts the attempt and moves ``next_attempt_at`` one lease ahead: a process killed
   mid-send leaves the delivery due again when the lease has passed, and it is sent again
   with the same ``webhook-id`` (at least once; receivers deduplicate on that id).
2. **Send** (no transaction): webhooks are POSTed concurrently with httpx, signed per
   Standard Webhooks, ``RESCUE_WEBHOOK_TIMEOUT_S`` per phase; a 2xx answer is delivered,
   anything else (redirects included) a failure. SMS go to the configured gateway.
3. **Record** (one transaction per delivery, fenced by the attempt number so a late answer
   of an expired claim never overwrites a newer one): delivered, or the next attempt after
   an exponential backoff with jitter, or ``failed`` once the message is older than
   ``RESCUE_WEBHOOK_MAX_AGE_HOURS``.

Intake never waits for any of this: the worker has its own thread, its own connections and
only short transactions (on SQLite it takes the app's write lock around them, like the
intake writer).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.clock import utcnow
from api.db import models as m
from api.notifications.outbox import on_outbox_commit
from api.notifications.sms import SmsGateway, gateway_for, sms_text
from api.notifications.webhooks import signature_headers
from api.settings import Settings

logger = logging.getLogger(__name__)

BATCH = 8
"""Deliveries claimed (and sent concurrently) per round."""
USER_AGENT = "rescue-dispatch-webhooks/0.1"


def backoff_seconds(attempt: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Wait after failed attempt ``attempt`` (1, 2, ...): "equal jitter" on an exponential
    schedule, half of ``min(max_s, base_s * 2^(attempt-1))`` fixed and half random, so waits
    never shrink below the cap (then they stay within [max_s/2, max_s]) and the retries of
    many deliveries failing together spread out."""
    full = min(max_s, base_s * 2.0 ** (attempt - 1))
    return full / 2.0 + rng.uniform(0.0, full / 2.0)


@dataclass(frozen=True)
class Job:
    """One claimed delivery, with what sending it needs."""

    delivery_id: int
    attempt: int
    message_id: str
    body: str
    written_at: dt.datetime
    channel: str
    url: str | None
    secret: str | None
    phone: str | None


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    error: str = ""


class OutboxWorker:
    """Delivers the outbox (see the module docstring). ``run_once`` is one round, for tests
    and the thread alike; ``clock`` and ``rng`` are injectable for the same reason."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        write_lock: contextlib.AbstractContextManager[Any] | None = None,
        sms_gateway: SmsGateway | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.write_lock = write_lock or contextlib.nullcontext()
        self.sms_gateway = sms_gateway or gateway_for(settings.sms_gateway)
        self.rng = rng or random.Random()
        self.clock = clock
        self.http = httpx.Client(
            timeout=httpx.Timeout(settings.webhook_timeout_s),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        self.pool = ThreadPoolExecutor(max_workers=BATCH, thread_name_prefix="outbox-send")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def lease(self) -> dt.timedelta:
        """How long a claim holds a delivery: longer than the slowest send (connect, write
        and read each up to the timeout) plus the time to record it."""
        return dt.timedelta(seconds=3 * self.settings.webhook_timeout_s + 5.0)

    # -- thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a daemon thread (no-op when ``RESCUE_OUTBOX_WORKER`` is off)."""
        if not self.settings.outbox_worker or self._thread is not None:
            return
        self._stop.clear()
        self._unsubscribe = on_outbox_commit(self._wake.set)
        self._thread = threading.Thread(target=self._run, name="outbox-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the round in flight (a send cut short is retried after its lease)."""
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._thread.join(timeout=self.lease.total_seconds())
            self._thread = None
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()

    def _run(self) -> None:
        try:
            self.sync_sms_endpoint()
        except Exception:
            logger.exception("outbox: could not register the SMS gateway")
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                logger.exception("outbox: delivery round failed; retrying after the interval")
                sent = 0
            if sent < BATCH:
                self._wake.wait(self.settings.outbox_interval_s)
                self._wake.clear()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self.write_lock, self.factory() as db, db.begin():
            yield db

    def sync_sms_endpoint(self) -> None:
        """Keep exactly one active SMS endpoint while an SMS gateway is configured, none
        otherwise (its pending deliveries are then cancelled)."""
        ep = m.NotificationEndpoint
        with self._transaction() as db:
            rows = list(db.scalars(select(ep).where(ep.channel == "sms", ep.active.is_(True))))
            if self.sms_gateway is not None and not rows:
                db.add(ep(channel="sms", event_types=[], description="SMS gateway", active=True))
            elif self.sms_gateway is None and rows:
                now = self.clock()
                for row in rows:
                    row.active, row.deleted_at = False, now
                db.execute(
                    update(m.OutboxDelivery)
                    .where(
                        m.OutboxDelivery.endpoint_id.in_([r.id for r in rows]),
                        m.OutboxDelivery.status == "pending",
                    )
                    .values(status="cancelled", last_error="SMS gateway off")
                )

    # -- one round ---------------------------------------------------------------------------

    def run_once(self, now: dt.datetime | None = None) -> int:
        """Claim, send and record one batch; returns how many deliveries were attempted.
        ``now`` fixes the round's clock (claim, signature timestamp, record)."""
        jobs = self.claim(now or self.clock())
        if not jobs:
            return 0
        futures = [(job, self.pool.submit(self.send, job, now)) for job in jobs]
        for job, future in futures:
            outcome = future.result()
            self.record(job, outcome, now or self.clock())
        return len(jobs)

    def claim(self, now: dt.datetime) -> list[Job]:
        d, msg, ep, req = m.OutboxDelivery, m.OutboxMessage, m.NotificationEndpoint, m.RescueRequest
        stmt = (
            select(
                d.id,
                d.attempts,
                msg.message_id,
                msg.body,
                msg.created_at,
                ep.channel,
                ep.url,
                ep.secret,
                req.customer_phone,
            )
            .join(msg, msg.id == d.message_id)
            .join(ep, ep.id == d.endpoint_id)
            .outerjoin(req, req.id == msg.request_id)
            .where(d.status == "pending", d.next_attempt_at <= now, ep.active.is_(True))
            .order_by(d.next_attempt_at, d.id)
            .limit(BATCH)
            .with_for_update(of=d, skip_locked=True)
        )
        with self._transaction() as db:
            rows = db.execute(stmt).all()
            if not rows:
                return []
            db.execute(
                update(d)
                .where(d.id.in_([r[0] for r in rows]))
                .values(
                    attempts=d.attempts + 1,
                    next_attempt_at=now + self.lease,
                    last_attempt_at=now,
                )
            )
        return [
            Job(
                delivery_id=r[0],
                attempt=r[1] + 1,
                message_id=r[2],
                body=r[3],
                written_at=r[4],
                channel=r[5],
                url=r[6],
                secret=r[7],
                phone=r[8],
            )
            for r in rows
        ]

    def send(self, job: Job, now: dt.datetime | None = None) -> Outcome:
        """One attempt; never raises (a failure is an :class:`Outcome`)."""
        try:
            if job.channel == "sms":
                return self._send_sms(job)
            return self._post(job, now or self.clock())
        except Exception as exc:  # a bad endpoint row must not stop the worker
            logger.exception("outbox: delivery %s failed unexpectedly", job.delivery_id)
            return Outcome(False, error=f"{type(exc).__name__}")

    def _post(self, job: Job, now: dt.datetime) -> Outcome:
        if job.url is None or job.secret is None:
            return Outcome(False, error="endpoint has no url or secret")
        headers = signature_headers(
            secret=job.secret, message_id=job.message_id, body=job.body, timestamp=now
        )
        headers["content-type"] = "application/json"
        try:
            response = self.http.post(job.url, content=job.body.encode("utf-8"), headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code)
        return Outcome(False, response.status_code, f"HTTP {response.status_code}")

    def _send_sms(self, job: Job) -> Outcome:
        if self.sms_gateway is None:
            return Outcome(False, error="no SMS gateway configured in this process")
        if not job.phone:
            return Outcome(True, error="no phone number")
        text = sms_text(json.loads(job.body))
        self.sms_gateway.send(phone=job.phone, text=text, message_id=job.message_id)
        return Outcome(True)

    def record(self, job: Job, outcome: Outcome, now: dt.datetime) -> None:
        d = m.OutboxDelivery
        values: dict[str, Any] = {
            "last_status_code": outcome.status_code,
            "last_error": outcome.error[:500],
        }
        if outcome.delivered:
            values |= {"status": "delivered", "delivered_at": now}
        elif now - job.written_at >= dt.timedelta(hours=self.settings.webhook_max_age_hours):
            values |= {"status": "failed"}
            logger.warning(
                "outbox: gave up delivery %s of %s after %d attempts (%s)",
                job.delivery_id, job.message_id, job.attempt, outcome.error,
            )  # fmt: skip
        else:
            wait = backoff_seconds(
                job.attempt,
                base_s=self.settings.webhook_backoff_base_s,
                max_s=self.settings.webhook_backoff_max_s,
                rng=self.rng,
            )
            values |= {"next_attempt_at": now + dt.timedelta(seconds=wait)}
        with self._transaction() as db:
            db.execute(
                update(d)
                .where(d.id == job.delivery_id, d.attempts == job.attempt, d.status == "pending")
                .values(**values)
            )
