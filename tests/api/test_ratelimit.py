"""The intake rate limit: the client address comes from X-Forwarded-For only behind a trusted
proxy, and the budget is shared by all server processes (PostgreSQL, Redis). The process
tests start two real uvicorn servers on loopback and post to them in turn."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.app import create_app
from api.db.engine import make_engine, session_factory, transaction
from api.db.migrate import upgrade
from api.network.seeding import seed_network
from api.ratelimit import client_address, parse_trusted_proxies
from tests.api.conftest import app_settings, request_body, shandong_network

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("RESCUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
STARTUP_S = 60.0


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    trusted = parse_trusted_proxies("10.0.0.0/8, 192.168.1.1")
    assert client_address("203.0.113.9", ["1.2.3.4"], ()) == "203.0.113.9"
    assert client_address("203.0.113.9", ["1.2.3.4"], trusted) == "203.0.113.9"
    # behind our proxies: the right-most address that is not one of them
    assert client_address("10.1.1.1", ["6.6.6.6, 1.2.3.4, 10.2.2.2"], trusted) == "1.2.3.4"
    assert client_address("192.168.1.1", ["1.2.3.4", "10.0.0.7"], trusted) == "1.2.3.4"
    # garbage stops the walk at the last address that could be trusted
    assert client_address("10.1.1.1", ["1.2.3.4, nonsense"], trusted) == "10.1.1.1"
    assert client_address("10.1.1.1", [], trusted) == "10.1.1.1"
    with pytest.raises(ValueError, match="RESCUE_TRUSTED_PROXIES: 'proxy' is not an IP"):
        parse_trusted_proxies("10.0.0.1, proxy")


def _client(seeded: Engine, db_url: str, peer: str, **overrides: Any) -> TestClient:
    app = create_app(app_settings(db_url, rate_limit_per_minute=2, **overrides), engine=seeded)
    return TestClient(app, client=(peer, 40000))


def codes(client: TestClient, forwarded: list[str]) -> list[int]:
    return [
        client.post("/v1/requests", json=request_body(), headers={"X-Forwarded-For": f}).status_code
        for f in forwarded
    ]


def test_a_forged_forwarded_for_does_not_bypass_the_limit(seeded: Engine, db_url: str) -> None:
    """Finding 2: any X-Forwarded-For value used to open a fresh budget. Untrusted peer: the
    header is ignored, the third post is a 429 whatever it claims."""
    with _client(seeded, db_url, "203.0.113.9") as client:
        assert codes(client, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [201, 201, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(seeded: Engine, db_url: str) -> None:
    with _client(seeded, db_url, "10.0.0.5", trusted_proxies="10.0.0.0/8") as client:
        assert codes(client, ["1.1.1.1", "1.1.1.1", "2.2.2.2", "1.1.1.1"]) == [
            201,
            201,
            201,
            429,
        ]


# -- two server processes --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def servers(count: int, env: dict[str, str], tmp: Path) -> Iterator[list[str]]:
    """``count`` uvicorn processes serving ``create_app()`` with ``env``; their base URLs."""
    procs, urls = [], []
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    try:
        for k in range(count):
            port = _free_port()
            log = (tmp / f"server{k}.log").open("w")
            command = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app"]
            command += ["--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"]
            command += ["--no-access-log", "--log-level", "warning"]
            procs.append(
                subprocess.Popen(
                    command, env=full_env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            _wait_ready(url, proc, tmp)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], tmp: Path) -> None:
    give_up = time.monotonic() + STARTUP_S
    while time.monotonic() < give_up:
        if proc.poll() is not None:
            logs = "\n".join(p.read_text() for p in tmp.glob("server*.log"))
            pytest.fail(f"server exited with {proc.returncode}:\n{logs[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"server at {url} did not start")


def post_in_turn(urls: list[str], n: int) -> list[int]:
    """``n`` posts alternating between the servers, each claiming another address."""
    out = []
    with httpx.Client(timeout=30) as http:
        for k in range(n):
            r = http.post(
                f"{urls[k % len(urls)]}/v1/requests",
                json=request_body(),
                headers={"X-Forwarded-For": f"198.51.100.{k}"},
            )
            out.append(r.status_code)
    return out


def server_env(db_url: str, **extra: str) -> dict[str, str]:
    return {
        "RESCUE_DATABASE_URL": db_url,
        "RESCUE_RATE_LIMIT_PER_MINUTE": "5",
        "RESCUE_DISPATCH_INTERVAL_S": "0",
        "RESCUE_DISPATCH_ON_REQUEST": "false",
        "RESCUE_TRAVEL_PROVIDER": "great_circle",
        **extra,
    }


@pytest.mark.postgres
def test_two_processes_share_one_limit_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """Two server processes on one PostgreSQL database, limit 5 per minute: 12 posts in turn
    from one address get exactly five 201s in all (per-process budgets gave ten)."""
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="test")
    engine.dispose()
    with servers(2, server_env(postgres_url), tmp_path) as urls:
        got = post_in_turn(urls, 12)
    assert got == [201] * 5 + [429] * 7


def _redis_reachable() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def _seeded_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'rescue.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    with transaction(session_factory(engine)) as db:
        seed_network(db_session=db, network=shandong_network(), source="test")
    engine.dispose()
    return url


def test_two_processes_share_one_limit_through_redis(tmp_path: Path) -> None:
    """With RESCUE_REDIS_URL the two processes (here on one SQLite file) share the budget."""
    if not _redis_reachable():
        pytest.skip(f"needs Redis at {REDIS_URL} (RESCUE_TEST_REDIS_URL)")
    env = server_env(
        _seeded_sqlite(tmp_path),
        RESCUE_REDIS_URL=REDIS_URL,
        RESCUE_REDIS_KEY_PREFIX=f"rescue-test-{uuid.uuid4().hex}",
    )
    with servers(2, env, tmp_path) as urls:
        got = post_in_turn(urls, 12)
    assert got == [201] * 5 + [429] * 7
