"""The fast lane of ``POST /v1/requests``: a valid breakdown report on the hot path is answered
here, without FastAPI's per-request routing and dependency machinery.

That machinery (route matching, the dependency graph of the app-wide query check, the rate
limit, the header and the body, the exception and exit-stack layers) cost about half of the
event loop's CPU per intake, the intake's bottleneck. The route in ``api/requests/routes.py``
stays the definition (OpenAPI, every error, the checked path); this pure ASGI middleware,
inside the body guard, takes only the requests whose answer it can give the same way, and
hands every other one, untouched, to the app:

- ``POST`` on exactly ``/v1/requests``, no query string (the route refuses unknown query
  parameters), ``Content-Type: application/json``, no ``Idempotency-Key`` (a replay reads
  first: the checked path), a body the guard parsed as JSON;
- the body validates as :class:`~api.schemas.RequestCreate` and names no designated station
  (the checked path looks it up). Validation has no side effect, so an invalid body goes to
  the app, which validates again and answers its 400 or 422 exactly as without this lane.

Past that point the request is the route's: the rate limit counts it once (here, not again
in the app), then :func:`api.requests.routes.store_fresh_intake`, the route's own hot path,
stores it. An exception there is answered by the app's exception handlers, looked up as
Starlette's exception middleware does (an unhandled one propagates to the server-error
layer, a 500, as from the route). Not done here: FastAPI's route-level telemetry hooks
(a no-op unless an OpenTelemetry SDK is configured, which this project does not do).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api import state
from api.errors import PARSED_JSON_KEY
from api.requests.routes import store_fresh_intake
from api.schemas import RequestCreate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PATH = "/v1/requests"


class IntakeFastLane:
    """Pure ASGI middleware (see the module docstring). Add it before ``BodyGuard`` so that
    it runs inside it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("root_path")
            or scope.get("query_string")
            or not _plain_json_without_key(scope)
        ):
            await self.app(scope, receive, send)
            return
        value = scope.get(PARSED_JSON_KEY)
        body = None
        if isinstance(value, dict):
            try:
                body = RequestCreate.model_validate(value)
            except ValidationError:
                body = None
        if body is None or body.vehicle.designated_station_id is not None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            await state.get_rate_limiter(scope["app"]).check(request)
            response = await store_fresh_intake(
                scope["app"], body, state.get_settings(scope["app"])
            )
        except Exception as exc:
            response = await _handled(scope["app"], request, exc)
        await response(scope, receive, send)


def _plain_json_without_key(scope: Scope) -> bool:
    """``Content-Type: application/json`` (parameters allowed) and no ``Idempotency-Key``."""
    json_body = False
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return False
        if name == b"content-type":  # as dict(headers): the last one counts
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return json_body


async def _handled(app: Any, request: Request, exc: Exception) -> Response:
    """The app's answer to ``exc`` (its handler for the nearest class of the exception, as
    Starlette's ``ExceptionMiddleware``; the catch-all ``Exception`` handler belongs to the
    server-error layer outside, so ``exc`` is raised on to it)."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        handler = handlers.get(cls)
        if handler is not None:
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
            assert isinstance(response, Response)
            return response
    raise exc
