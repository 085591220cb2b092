"""Property-based test of the whole API against its own OpenAPI schema (schemathesis): no
generated request, valid or not, with or without a staff token, gets a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from api.app import create_app
from api.db.engine import make_engine, session_factory, transaction
from api.db.migrate import upgrade
from api.network.seeding import seed_network
from api.security import Role, create_staff_token
from tests.api.conftest import app_settings, shandong_network


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


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(case: Any) -> None:
    """Every operation, with generated bodies, paths and queries, with the admin token:
    the answer is never a 5xx."""
    headers = {"Authorization": f"Bearer {APP.state.fuzz_token}"}
    response = case.call(headers=headers)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
