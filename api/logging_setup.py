"""Server logging: timestamps, levels and request ids on every line, INFO by default, text or
JSON (``RESCUE_LOG_FORMAT``), and an access log that never carries a secret.

- Every HTTP request gets an id: the caller's ``X-Request-ID`` when it is a plausible id
  (letters, digits, ``-_.:``, at most 128 characters), else a new one; it is echoed in the
  response header and attached to every log line written while the request is handled
  (a context variable, so it follows the request into the threadpool).
- The access log drops the value of any query parameter whose name says it is a secret
  (``token``, ``key``, ``secret``...): a staff token sent as ``?token=`` is refused by the
  API, and must not be written to disk either.
- :func:`log_config` is a ``logging.config.dictConfig`` dictionary for uvicorn (its own
  loggers and the root logger share one handler), so ``rescue serve`` shows the services'
  INFO lines; Python warnings go through logging too.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
SECRET_PARAM = re.compile(r"token|key|secret|password|signature|auth", re.IGNORECASE)
REDACTED = "[redacted]"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def new_request_id() -> str:
    """32 random hex digits (a request id is a label for logs, not a secret: the process's
    random generator, seeded from the OS, instead of a system call per request)."""
    return f"{random.getrandbits(128):032x}"


class RequestIdMiddleware:
    """Pure ASGI middleware: sets the request id for the request's logs and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                given = value.decode("latin-1")
        request_id = given if given and _VALID_ID.fullmatch(given) else new_request_id()
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def scrub_path(path: str) -> str:
    """``path`` with the values of secret-looking query parameters replaced."""
    if "?" not in path:
        return path
    base, query = path.split("?", 1)
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(SECRET_PARAM.search(name) for name, _ in pairs):
        return path
    cleaned = [(n, REDACTED if SECRET_PARAM.search(n) else v) for n, v in pairs]
    return f"{base}?{urlencode(cleaned, safe='[]')}"


class AccessLogScrubber(logging.Filter):
    """Scrubs uvicorn's access records (args: client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], scrub_path(args[2]), *args[3:])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, logger, request id, message
    (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_config(*, level: str = "INFO", log_format: str = "text") -> dict[str, Any]:
    """The ``dictConfig`` of the server (pass it to ``uvicorn.run(log_config=...)``)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if log_format == "json"
        else {"format": TEXT_FORMAT, "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
    )
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "default",
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "scrub_access": {"()": AccessLogScrubber},
        },
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"level": level.upper(), "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level.upper(), "propagate": True},
            "uvicorn.access": {
                "level": level.upper(),
                "filters": ["scrub_access"],
                "propagate": True,
            },
            "py.warnings": {"level": "WARNING", "propagate": True},
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure_logging(*, level: str = "INFO", log_format: str = "text") -> None:
    """Apply :func:`log_config` (for entry points that do not start uvicorn themselves)."""
    import logging.config

    logging.config.dictConfig(log_config(level=level, log_format=log_format))
    logging.captureWarnings(True)
