"""`rescue seed`, `rescue token create`, `rescue network`: the set-up commands and their errors."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def test_seed_refuses_twice_and_network_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    first = runner.invoke(app, ["seed", "--db", url])
    assert first.exit_code == 0, first.output
    assert "938 stations, 1276 vans" in first.output
    second = runner.invoke(app, ["seed", "--db", url])
    assert second.exit_code == 2
    assert "already holds a network" in second.output and "--reset" in second.output
    info = runner.invoke(app, ["network", "--db", url, "--json"])
    counts = json.loads(info.output)
    assert counts["stations"] == 938 and counts["schema"] == counts["schema_head"] == "0008"


def test_token_create_prints_a_secret_stored_hashed(tmp_path: Path) -> None:
    from sqlalchemy import select

    from api.db import models as m
    from api.db.engine import make_engine, session_factory, transaction
    from api.security import hash_token

    url = f"sqlite:///{tmp_path / 'tok.sqlite'}"
    result = runner.invoke(app, ["token", "create", "--role", "dispatcher", "--db", url])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("rsk_") and len(token) > 30
    with transaction(session_factory(make_engine(url))) as db:
        row = db.scalar(select(m.StaffToken))
        assert row is not None
        assert row.token_hash == hash_token(token) and row.role == "dispatcher"
    bad = runner.invoke(app, ["token", "create", "--role", "boss", "--db", url])
    assert bad.exit_code == 2 and "--role 'boss' is not one of" in bad.output


def test_unreachable_database_is_one_line_without_traceback() -> None:
    """A wrong RESCUE_DATABASE_URL gives one line naming scheme and host (subprocess: the real
    console script, environment variable included)."""
    env = {"RESCUE_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/db", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "network"], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "postgresql+psycopg://127.0.0.1:1/db" in lines[0] and "pw" not in lines[0]


def test_scenario_file_errors_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[stations]]\nid = "X"\ngrade = "AAA"\nlat = 60.0\nlon = 30.0\n')
    result = runner.invoke(app, ["seed", "--db", f"sqlite:///{tmp_path / 'b.sqlite'}",
                                 "--scenario", str(bad)])  # fmt: skip
    assert result.exit_code == 2
    assert "stations[0] (id 'X'): position (60.0, 30.0) is outside China" in result.output
