"""The console in a real browser: headless Chromium (RESCUE_TEST_CHROMIUM) driven by
Playwright against a real uvicorn server on a temporary SQLite database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import request_body

pytestmark = pytest.mark.browser
CHROMIUM_ENV = "RESCUE_TEST_CHROMIUM"
ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV)
    if not path:
        pytest.skip(f"browser test needs {CHROMIUM_ENV} (path to a Chromium binary)")
    if not Path(path).exists():
        pytest.skip(f"{CHROMIUM_ENV}={path} does not exist")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`rescue serve` (national network seeded) on a free port; yields (base URL, token)."""
    chromium_path()
    url = f"sqlite:///{tmp_path / 'console.sqlite'}"
    port = free_port()
    env = {
        **os.environ,
        "RESCUE_DISPATCH_INTERVAL_S": "0",
        "RESCUE_TRAVEL_PROVIDER": "great_circle",
        "RESCUE_RESPECT_SHIFTS": "false",
        "RESCUE_RATE_LIMIT_PER_MINUTE": "0",
    }
    cli = [sys.executable, "-m", "api.cli"]
    proc = subprocess.Popen(
        [*cli, "serve", "--db", url, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "server exited"
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        token = subprocess.run(
            [*cli, "token", "create", "--role", "dispatcher", "--db", url],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_console_shows_network_and_dispatches(server: tuple[str, str]) -> None:
    """Sign in with a staff token, see the provinces and the 938 stations of the seeded
    network on the map, see a request submitted through the API appear in the queue (live),
    run dispatch from the page and see the request become assigned with a line to its van."""
    from playwright.sync_api import sync_playwright

    base, token = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(base + "/console/")
            page.fill("#token-input", token)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            assert page.locator("#layer-provinces path").count() >= 34
            assert page.locator("#layer-stations circle.station").count() == 938
            assert page.locator("#layer-vans circle.van").count() == 1276
            assert page.evaluate("sessionStorage.getItem('rescueToken')") == token

            created = httpx.post(base + "/v1/requests", json=request_body(), timeout=10).json()
            row = f"#queue tr[data-id='{created['id']}']"
            page.wait_for_selector(row + "[data-status=received]", timeout=20_000)
            page.wait_for_selector(f"#layer-requests circle[data-id='{created['id']}']")

            page.click("#run-dispatch")
            page.wait_for_selector(row + "[data-status=assigned]", timeout=20_000)
            assert page.locator(f"#layer-lines line[data-request='{created['id']}']").count() == 1
            assert "1 assigned" in page.inner_text("#last-run")
            assert page.inner_text("#kpi-assigned") == "1"
        finally:
            browser.close()
