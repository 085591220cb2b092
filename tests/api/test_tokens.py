"""Staff tokens: expiry, `rescue token list` / `revoke`, last-used time, and what each role
sees of the customer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from api.cli import app as cli
from api.db import models as m
from api.db.engine import make_engine, session_factory, transaction
from api.security import Role, create_staff_token, find_staff_token
from tests.api.conftest import request_body

runner = CliRunner()
Headers = dict[str, str]


def bearer(secret: str) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


def test_a_token_expires_after_its_lifetime(client: TestClient, seeded: Engine) -> None:
    """Finding 9: tokens never expired. One created 91 days ago with the default 90-day
    lifetime is refused (401); a fresh one works and records when it was last used."""
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=91)
    with transaction(session_factory(seeded)) as db:
        old = create_staff_token(db_session=db, role=Role.DISPATCHER, now=long_ago)
        fresh = create_staff_token(db_session=db, role=Role.DISPATCHER)
    r = client.get("/v1/kpis", headers=bearer(old))
    assert r.status_code == 401 and r.json() == {"detail": "invalid, expired or revoked token"}
    assert client.get("/v1/kpis", headers=bearer(fresh)).status_code == 200
    with transaction(session_factory(seeded)) as db:
        row = find_staff_token(db_session=db, token=fresh)
        assert row is not None and row.last_used_at is not None
        assert row.expires_at is not None
        assert abs((row.expires_at - row.created_at) - dt.timedelta(days=90)) < dt.timedelta(1)


def test_token_list_and_revoke(tmp_path: Path) -> None:
    """`rescue token create --ttl-days`, `list` (never the secret), `revoke` (then 401 and
    `list` hides it unless --all); revoking twice or an unknown id says so."""
    url = f"sqlite:///{tmp_path / 'tok.sqlite'}"
    created = runner.invoke(
        cli, ["token", "create", "--role", "planner", "--label", "ops", "--ttl-days", "7",
              "--db", url],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    secret = created.output.strip()
    listed = runner.invoke(cli, ["token", "list", "--json", "--db", url])
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["id"], r["role"], r["state"], r["label"]) for r in rows] == [
        (1, "planner", "active", "ops")
    ]
    expires = dt.datetime.fromisoformat(rows[0]["expires_at"])
    created_at = dt.datetime.fromisoformat(rows[0]["created_at"])
    assert round((expires - created_at).total_seconds()) == 7 * 86400
    assert secret not in listed.output and rows[0]["last_used_at"] is None
    revoked = runner.invoke(cli, ["token", "revoke", "1", "--db", url])
    assert revoked.exit_code == 0 and revoked.output.strip() == "token 1 revoked"
    again = runner.invoke(cli, ["token", "revoke", "1", "--db", url])
    assert again.output.strip() == "token 1 was already revoked"
    missing = runner.invoke(cli, ["token", "revoke", "99", "--db", url])
    assert missing.exit_code == 2 and "no staff token with id 99" in missing.output
    assert runner.invoke(cli, ["token", "list", "--db", url]).output == ""
    everything = runner.invoke(cli, ["token", "list", "--all", "--json", "--db", url]).output
    assert json.loads(everything)["state"] == "revoked"
    with transaction(session_factory(make_engine(url))) as db:
        assert find_staff_token(db_session=db, token=secret) is None
        assert db.get(m.StaffToken, 1) is not None
    bad = runner.invoke(cli, ["token", "create", "--role", "admin", "--ttl-days", "0", "--db", url])
    assert bad.exit_code == 2 and "--ttl-days must be greater than 0" in bad.output


def test_planners_see_the_customer_masked(
    client: TestClient, staff: Callable[[Role], Headers]
) -> None:
    """Finding 10: planners plan the network, they do not call customers: name initial and
    masked phone, in the queue and in a single request; dispatchers and admins see both."""
    rid = client.post("/v1/requests", json=request_body()).json()["id"]
    masked = {"name": "张**", "phone": "138****0000"}
    planner = staff(Role.PLANNER)
    assert client.get(f"/v1/requests/{rid}", headers=planner).json()["customer"] == masked
    assert [v["customer"] for v in client.get("/v1/requests", headers=planner).json()] == [masked]
    full = {"name": "张伟", "phone": "13800000000"}
    for role in (Role.DISPATCHER, Role.ADMIN):
        assert client.get(f"/v1/requests/{rid}", headers=staff(role)).json()["customer"] == full
        assert client.get("/v1/requests", headers=staff(role)).json()[0]["customer"] == full
