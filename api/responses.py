"""The documented error responses (OpenAPI ``responses=``) shared by the routes."""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorRead

Responses = dict[int | str, dict[str, Any]]

E401: Responses = {401: {"model": ErrorRead, "description": "No token"}}
E403: Responses = {403: {"model": ErrorRead, "description": "Wrong role"}}
E404: Responses = {404: {"model": ErrorRead, "description": "Not found"}}
E409: Responses = {409: {"model": ErrorRead, "description": "Not allowed in the current state"}}
STAFF_ERRORS: Responses = {**E401, **E403, **E404, **E409}
