"""SMS to the customer: one more adapter behind the same outbox.

The delivery worker hands each message for the SMS endpoint to a :class:`SmsGateway` with the
request's phone number (read at send time, never stored in the message). No real provider is
wired in: :class:`LogSmsGateway` writes the text to the log with the number masked, which is
what a provider adapter would replace.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from api.requests.views import mask_phone

logger = logging.getLogger(__name__)

CHINA = ZoneInfo("Asia/Shanghai")


class SmsGateway(Protocol):
    """Sends one text; raises on failure (the worker then retries with backoff)."""

    def send(self, *, phone: str, text: str, message_id: str) -> None: ...


class LogSmsGateway:
    """Logs the text instead of sending it (the number masked: logs never carry phones)."""

    def send(self, *, phone: str, text: str, message_id: str) -> None:
        logger.info("sms %s to %s: %s", message_id, mask_phone(phone), text)


def gateway_for(name: str) -> SmsGateway | None:
    """The adapter named by the ``RESCUE_SMS_GATEWAY`` setting (None when off)."""
    return LogSmsGateway() if name == "log" else None


def _clock(value: Any) -> str:
    if not isinstance(value, str):
        return "?"
    return dt.datetime.fromisoformat(value).astimezone(CHINA).strftime("%H:%M")


def sms_text(message: dict[str, Any]) -> str:
    """The short text of a notification body (times in China time)."""
    kind = message.get("type", "")
    data = message.get("data", {})
    van = data.get("van") or {}
    rep = data.get("replacement") or {}
    ref = str(data.get("request_id", ""))[:8]
    texts = {
        "request.assigned": f"rescue van {van.get('id')} is assigned, arrival about "
        f"{_clock(van.get('eta_at'))}",
        "request.en_route": f"rescue van {van.get('id')} is on its way, arrival about "
        f"{_clock(van.get('eta_at'))}",
        "request.delayed": f"the rescue van is delayed by {data.get('delay_minutes')} min, "
        f"arrival about {_clock(van.get('eta_at'))}",
        "request.arrived": "the rescue van has arrived",
        "request.diagnosed": "diagnosis: about "
        f"{(data.get('estimate') or {}).get('expected_repair_hours')} h of repair",
        "request.towing": "your vehicle is being towed",
        "replacement.booked": f"a replacement truck of {rep.get('partner_name')} picks up the "
        f"cargo about {_clock(rep.get('pickup_eta_at'))}, delivery about "
        f"{_clock(rep.get('delivery_eta_at'))}",
        "request.delivered": "your cargo has been delivered",
        "request.cancelled": "your rescue request is cancelled",
    }
    return f"[rescue {ref}] " + texts.get(kind, kind)
