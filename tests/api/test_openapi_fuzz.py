"""Property-based test of the whole API against its own OpenAPI document (schemathesis, every
check it has): with an admin token and without any, no generated request, valid or not, gets
a 5xx, and every answer (status code, content type, headers, body schema) is one the document
declares; invalid data is refused and valid data accepted."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.checks import CHECKS, load_all_checks

from api.app import create_app
from api.db.engine import make_engine, session_factory, transaction
from api.db.migrate import upgrade
from api.network.seeding import seed_network
from api.security import Role, create_staff_token
from tests.api.conftest import app_settings, shandong_network

load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())
EXAMPLES_PER_OPERATION = int(os.environ.get("RESCUE_FUZZ_EXAMPLES", "15"))
"""Bounded to keep the suite fast; set RESCUE_FUZZ_EXAMPLES for a longer hunt."""


def build_app() -> Any:
    """The app on a fresh temporary SQLite database with the Shandong network and an admin
    token (built at import: schemathesis parametrises from a schema object)."""
    tmp = tempfile.mkdtemp(prefix="rescue-fuzz-")
    url = f"sqlite:///{Path(tmp) / 'fuzz.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="fuzz")
        token = create_staff_token(db_session=db, role=Role.ADMIN)
    app = create_app(app_settings(url), engine=engine)
    app.state.fuzz_token = token
    return app


APP = build_app()


@pytest.fixture
def dispatcher_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {APP.state.fuzz_token}"}


schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/live")
# Valid data by the schema may still break a business rule the JSON Schema cannot express
# (outside the service area's outlines, a fault code not in the catalogue, a deadline in
# the past, NUL or a lone surrogate in text): the server answers those 422, naming the field.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses,
    "422",
]


def _fits_in_a_url(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) > 1 and all(_fits_in_a_url(v) for v in value)
    return value is not None and not isinstance(value, dict)


@pytest.mark.parametrize("with_token", [True, False], ids=["admin", "anonymous"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_document(case: Any, with_token: bool) -> None:
    # A query value that is null, an object or a list of fewer than two items has no form
    # of its own in a URL (dropped, an empty string, or the same as a single value): the
    # request sent is not the one generated, and the server cannot refuse what it never
    # receives. Such cases are discarded, not judged.
    assume(all(_fits_in_a_url(value) for value in (case.query or {}).values()))
    headers = {"Authorization": f"Bearer {APP.state.fuzz_token}"} if with_token else {}
    case.call_and_validate(headers=headers, checks=ALL_CHECKS)


def test_query_parameters_are_checked_like_the_body(dispatcher_headers: dict[str, str]) -> None:
    """An undeclared query parameter, or a single-valued one given twice, is a 422 naming it
    (they were ignored, or the last value taken); repeatable ones still repeat."""
    from fastapi.testclient import TestClient

    with TestClient(APP) as client:
        typo = client.get("/v1/requests?statu=received", headers=dispatcher_headers)
        assert typo.status_code == 422 and typo.json()["errors"] == [
            {"field": "query parameter statu", "message": "unknown query parameter"}
        ]
        twice = client.get("/v1/vans?status=available&status=assigned", headers=dispatcher_headers)
        assert twice.status_code == 422 and twice.json()["errors"] == [
            {
                "field": "query parameter status",
                "message": "given more than once; it takes one value",
            }
        ]
        listed = "/v1/requests?status=received&status=assigned"
        assert client.get(listed, headers=dispatcher_headers).status_code == 200
        secret = client.get("/v1/kpis?token=rsk_abc", headers=dispatcher_headers)
        assert secret.status_code == 422 and "rsk_abc" not in secret.text


def test_a_405_lists_every_method_of_the_path() -> None:
    """Starlette listed only the first route's method (POST) for /v1/requests."""
    from fastapi.testclient import TestClient

    with TestClient(APP) as client:
        r = client.delete("/v1/requests")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"


def test_the_document_declares_the_servers_error_bodies() -> None:
    """422 is {detail, errors}; staff routes declare 401/403; bodies 400/413; paths 404; the
    position report's status enum is what the server accepts."""
    document = APP.openapi()
    create = document["paths"]["/v1/requests"]["post"]["responses"]
    assert create["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationErrorRead"
    }
    assert {"400", "413", "422", "429"} <= set(create)
    position = document["paths"]["/v1/vans/{van_id}/position"]["put"]["responses"]
    assert {"400", "401", "403", "404", "413", "422"} <= set(position)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    update = document["components"]["schemas"]["VanPositionUpdate"]["properties"]["status"]
    assert update["anyOf"][0]["enum"] == ["available", "off_shift", "maintenance", "returning"]
