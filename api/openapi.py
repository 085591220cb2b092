"""The OpenAPI document as the server really answers: FastAPI's generated document is
completed with the error responses that come from outside the route functions.

- 422 is the app's own body ``{detail, errors: [{field, message}]}`` (``api/errors.py``), not
  FastAPI's default list of pydantic errors;
- every operation that takes a bearer token documents 401 (no, invalid, expired or revoked
  token) and 403 (wrong role, or a tracking token that does not open the request);
- every operation with a path parameter documents 404; every operation with a request body
  documents 400 (malformed or ambiguous JSON: ``api/errors.BodyGuard``) and 413 (too large).

Two small pieces make the server answer as documented: unknown query parameters are refused
(422) and a 405 lists every method of its path in ``Allow``.

A test runs schemathesis with all its checks against this document (tests/api/
test_openapi_fuzz.py), so a response the document does not declare fails the suite.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from types import UnionType
from typing import Any, Union, get_args, get_origin

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi

from api.schemas import ErrorRead, ValidationErrorRead

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ERROR_DESCRIPTIONS = {
    "400": "Malformed JSON (syntax, a repeated key, NaN/Infinity, not UTF-8)",
    "401": "No valid token (missing, unknown, expired or revoked)",
    "403": "The token does not open this (wrong role, or another request's tracking token)",
    "404": "Not found",
    "413": "Request body too large",
    "422": "Validation error: `detail` names each field and the reason; `errors` lists them",
}


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def complete_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the app's error responses (see the module docstring)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorRead"] = ErrorRead.model_json_schema(ref_template="#/components/schemas/{model}")
    validation = ValidationErrorRead.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in validation.pop("$defs", {}).items():
        schemas[name] = sub
    schemas["ValidationErrorRead"] = validation
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            codes: list[str] = []
            if operation.get("security"):
                codes += ["401", "403"]
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                codes.append("404")
            if "requestBody" in operation:
                codes += ["400", "413"]
            if operation.get("parameters") or "requestBody" in operation:
                codes.append("422")
            for code in codes:
                if code not in responses:
                    responses[code] = {"description": ERROR_DESCRIPTIONS[code]}
                schema = "ValidationErrorRead" if code == "422" else "ErrorRead"
                responses[code].update(_ref(schema))
                responses[code].setdefault("description", ERROR_DESCRIPTIONS[code])
            if "422" in responses:
                responses["422"].update(_ref("ValidationErrorRead"))
                responses["422"]["description"] = ERROR_DESCRIPTIONS["422"]
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document (built once, on the first request for it)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_openapi(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def refuse_unknown_query_parameters(request: Request) -> None:
    """App-wide dependency: a query parameter the route does not declare, or a single-valued
    one given more than once, is a 422 naming it (a typo such as ``?statu=received`` would
    otherwise be ignored in silence, and of ``?a=1&a=2`` only the last value used). Names
    are checked, never echoed values."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    declared = _declared_query_parameters(dependant)
    problems: list[dict[str, Any]] = []
    for name in sorted(set(request.query_params)):
        repeatable = declared.get(name)
        if repeatable is None:
            where, why = (name if name.isidentifier() else "(unknown)"), "unknown query parameter"
        elif not repeatable and len(request.query_params.getlist(name)) > 1:
            where, why = name, "given more than once; it takes one value"
        else:
            continue
        problems.append({"type": "value_error", "loc": ("query", where), "msg": why, "input": None})
    if problems:
        raise RequestValidationError(problems)


_QUERY_PARAMETERS: dict[int, dict[str, bool]] = {}


def _is_sequence(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return origin in (Union, UnionType) and any(_is_sequence(a) for a in get_args(annotation))


def _declared_query_parameters(dependant: Any) -> dict[str, bool]:
    """Query parameter names of a route (its dependencies included) -> repeatable."""
    key = id(dependant)
    found = _QUERY_PARAMETERS.get(key)
    if found is None:
        found = {}
        stack = [dependant]
        while stack:
            node = stack.pop()
            for p in node.query_params:
                found[p.alias] = _is_sequence(p.field_info.annotation)
            stack.extend(node.dependencies)
        _QUERY_PARAMETERS[key] = found
    return found


class AllowHeaderFix:
    """Pure ASGI middleware: a 405's ``Allow`` lists every method the OpenAPI document gives
    the path (Starlette lists only the first matching route's, so ``OPTIONS /v1/requests``
    said POST, not GET too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._paths: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def fixed(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                allow = self._allow(scope)
                if allow:
                    headers = [(k, v) for k, v in message.get("headers", ()) if k != b"allow"]
                    headers.append((b"allow", allow.encode()))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, fixed)

    def _allow(self, scope: Scope) -> str:
        if self._paths is None:
            document = scope["app"].openapi()
            self._paths = [
                (
                    re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
                    ", ".join(sorted(m.upper() for m in operations)),
                )
                for path, operations in document.get("paths", {}).items()
            ]
        path = scope.get("path", "")
        return next((allow for pattern, allow in self._paths if pattern.match(path)), "")
