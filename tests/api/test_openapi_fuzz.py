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
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from api.app import create_app
from api.db.engine import make_engine, session_factory, transaction
from api.db.migrate import upgrade
from api.security import Role, create_staff_token
from api.services.seeding import seed_network
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
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/live")
# Valid data by the schema may still break a business rule the JSON Schema cannot express
# (outside the service area's outlines, a fault code not in the catalogue, a deadline in
# the past, NUL or a lone surrogate in text): the server answers those 422, naming the field.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses,
    "422",
]


@pytest.mark.parametrize("with_token", [True, False], ids=["admin", "anonymous"])
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_document(case: Any, with_token: bool) -> None:
    headers = {"Authorization": f"Bearer {APP.state.fuzz_token}"} if with_token else {}
    case.call_and_validate(headers=headers, checks=ALL_CHECKS)
