"""Error responses (always ``{"detail": ...}``) and the body guard (size limit, strict JSON).

- validation errors: 422 with ``detail`` naming the field and the reason (``errors`` lists
  every problem); input values are never echoed (they may hold phone numbers);
- malformed JSON: 400; a body over ``max_body_bytes``: 413; too many requests: 429;
- domain errors: 404 / 403 / 409; unexpected errors: 500 with a fixed message (details are in
  the server log, without secrets).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError

from api.exceptions import Conflict, Forbidden, IntakeNotStored, InvalidInput, NotFound

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts[0]
        parts = parts[1:]
        if where != "body":
            return f"{where} parameter {'.'.join(parts)}"
    return ".".join(parts) or "body"


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


async def validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            reason = ctx.get("error", "invalid JSON")
            return JSONResponse(
                {"detail": f"malformed JSON body: {reason}"}, status.HTTP_400_BAD_REQUEST
            )
    items = [{"field": _field(e.get("loc", ())), "message": _message(e)} for e in errors]
    detail = "; ".join(f"{i['field']}: {i['message']}" for i in items) or "invalid request"
    return JSONResponse({"detail": detail, "errors": items}, status.HTTP_422_UNPROCESSABLE_CONTENT)


def _json(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_handler)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return _json(403, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        message = str(exc).removeprefix(f"{exc.field}: ")
        return JSONResponse(
            {"detail": str(exc), "errors": [{"field": exc.field, "message": message}]},
            status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        logger.warning("integrity conflict: %s", type(exc.orig).__name__)
        return _json(409, "conflicting concurrent change (nothing was stored); retry")

    @app.exception_handler(OperationalError)
    async def _operational(_: Request, exc: OperationalError) -> JSONResponse:
        logger.error("database error: %s", type(exc.orig).__name__)
        return _json(503, "database busy or unavailable; retry", {"Retry-After": "1"})

    @app.exception_handler(IntakeNotStored)
    async def _not_stored(_: Request, exc: IntakeNotStored) -> JSONResponse:
        if exc.retryable:
            return _json(503, "database busy or unavailable; retry", {"Retry-After": "1"})
        return _json(500, "internal error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return _json(500, "internal error")


JSON_CONTENT_TYPES = (b"application/json", b"application/problem+json")


PARSED_JSON_KEY = "rescue.parsed_json"
"""Where :class:`BodyGuard` leaves the JSON value of a body it accepted, in the ASGI scope
(read by ``api/requests/fast_lane.py``, so that the body is not parsed twice)."""

UNPARSED = object()
""":func:`parse_strict_json`'s value for a body that is not (acceptable) JSON."""


def parse_strict_json(body: bytes) -> tuple[Any, str | None]:
    """``(value, None)`` for an acceptable JSON body; ``(UNPARSED, problem)`` when something
    makes it unacceptable beyond syntax: a key repeated in one object (the standard parser
    silently keeps the last, so two readers could see two requests), the non-standard
    ``NaN`` / ``Infinity`` literals, or bytes that are not UTF-8; ``(UNPARSED, None)`` for a
    syntax error (left to the framework's own 400)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            raise _Refused("an object repeats a key (each key may appear once)")
        return obj

    def constant(name: str) -> Any:
        raise _Refused(f"{name} is not a JSON number")

    try:
        return json.loads(body, object_pairs_hook=pairs, parse_constant=constant), None
    except _Refused as exc:
        return UNPARSED, str(exc)
    except UnicodeDecodeError:
        return UNPARSED, "the body is not UTF-8 text"
    except ValueError:  # a syntax error: FastAPI answers 400 with the position
        return UNPARSED, None
    except RecursionError:
        return UNPARSED, "nested too deeply"


def json_body_problem(body: bytes) -> str | None:
    """What makes ``body`` unacceptable as JSON beyond syntax (see :func:`parse_strict_json`);
    None when fine or a mere syntax error."""
    return parse_strict_json(body)[1]


class _Refused(Exception):
    pass


class BodyGuard:
    """Pure ASGI middleware in front of the app: reads a request body whole (they are small)
    before the app sees it, so that a body over ``max_bytes`` gets 413 whether it declared its
    length or came chunked, and a JSON body with repeated keys or NaN/Infinity literals gets
    400; either way the app never runs, so nothing is stored."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = content_type = None
        chunked = False
        for name, value in scope.get("headers", ()):  # as dict(headers): the last one counts
            if name == b"content-length":
                declared = value
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is None and not chunked:
            await self.app(scope, receive, send)  # no body (GET, DELETE, the live stream)
            return
        try:
            if declared is not None and int(declared) > self.max_bytes:
                await self._reject(send, 413, self._too_large())
                return
        except ValueError:
            pass
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send, 413, self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        media_type = (content_type or b"application/json").split(b";")[0].strip()
        if body and media_type.lower() in JSON_CONTENT_TYPES:
            value, problem = parse_strict_json(body)
            if problem is not None:
                await self._reject(send, 400, f"malformed JSON body: {problem}")
                return
            if value is not UNPARSED:
                scope[PARSED_JSON_KEY] = value
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body too large: the limit is {self.max_bytes} bytes"

    @staticmethod
    async def _reject(send: Send, code: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
