"""A real `rescue serve` on a free port with the national network seeded, for the browser
tests and the screenshot script (`make screenshots`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CHROMIUM_ENV = "RESCUE_TEST_CHROMIUM"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(folder: Path, **env_overrides: str) -> Iterator[tuple[str, str]]:
    """Serve on a fresh SQLite file in ``folder``; yields (base URL, dispatcher token). The
    background dispatch cycle is off unless ``RESCUE_DISPATCH_INTERVAL_S`` is given."""
    url = f"sqlite:///{folder / 'console.sqlite'}"
    port = free_port()
    env = {
        **os.environ,
        "RESCUE_DISPATCH_INTERVAL_S": "0",
        "RESCUE_TRAVEL_PROVIDER": "great_circle",
        "RESCUE_RESPECT_SHIFTS": "false",
        "RESCUE_RATE_LIMIT_PER_MINUTE": "0",
        **env_overrides,
    }
    cli = [sys.executable, "-m", "api.cli"]
    proc = subprocess.Popen(
        [*cli, "serve", "--db", url, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
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
