"""The background dispatch loop in a child worker process (``RESCUE_DISPATCH_MODE=process``,
the default of ``rescue serve``): woken by the intake, off the server's event loop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from api import state
from tests.api.conftest import request_body


def test_intake_wakes_the_worker_process_which_dispatches(
    make_client: Callable[..., TestClient], dispatcher: dict[str, str]
) -> None:
    """Requests posted to the app are assigned by the worker process (another pid), woken
    by the intake long before the next interval; stopping the app stops the worker."""
    client = make_client(dispatch_mode="process", dispatch_interval_s=600)
    loop = state.get_dispatch_loop(client.app)  # type: ignore[arg-type]
    pid = loop.worker_pid
    assert pid is not None and pid != os.getpid()
    for _ in range(2):  # the second can only be the intake's wake-up: the interval is 600 s
        created = client.post("/v1/requests", json=request_body())
        assert created.status_code == 201
        request_id = created.json()["id"]
        deadline = time.monotonic() + 120  # a bound for a stuck worker, not a timing assertion
        status = "received"
        while status == "received" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = client.get(f"/v1/requests/{request_id}", headers=dispatcher).json()["status"]
        assert status == "assigned"
        events = client.get(f"/v1/requests/{request_id}/events", headers=dispatcher).json()
        assert [(e["kind"], e["actor"]) for e in events][-1] == ("van_assigned", "dispatch")
    client.__exit__(None, None, None)
    assert loop.worker_pid is None


def test_thread_and_off_modes_start_no_process(make_client: Callable[..., TestClient]) -> None:
    """The in-process thread stays available; ``off`` runs no loop at all."""
    for mode in ("thread", "off"):
        client = make_client(dispatch_mode=mode, dispatch_interval_s=600)
        assert state.get_dispatch_loop(client.app).worker_pid is None  # type: ignore[arg-type]
