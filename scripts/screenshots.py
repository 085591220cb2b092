"""Screenshots of the console's main views for anyone to look at: `make screenshots`.

Starts `rescue serve` on a temporary database with the national network, reports a night's
worth of breakdowns (one that no van's radius covers, a few the cycle assigns, one that needs
a replacement truck), then captures the console, a request's detail with its candidate vans,
and /docs at 1280x800 into ``screenshots/`` (git-ignored). Needs RESCUE_TEST_CHROMIUM.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.api.conftest import request_body
from tests.api.console_server import CHROMIUM_ARGS, CHROMIUM_ENV, running_server

OUT = Path("screenshots")
PLACES = [
    (36.65, 117.12, "鲁A12345", "tractor"), (31.23, 121.47, "沪B22871", "rigid_truck"),
    (30.59, 114.30, "鄂A5K112", "tractor"), (34.75, 113.62, "豫A77120", "light_truck"),
    (23.13, 113.26, "粤A0T881", "tractor"), (39.0, 83.0, "新A30021", "tractor"),
    (29.56, 106.55, "渝B6Q920", "van"), (38.04, 114.51, "冀A9C231", "tractor"),
]  # fmt: skip


def main() -> int:
    chromium = os.environ.get(CHROMIUM_ENV)
    if not chromium or not Path(chromium).exists():
        print(f"set {CHROMIUM_ENV} to a Chromium binary (Debian: /usr/bin/chromium)")
        return 2
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as folder,
        running_server(Path(folder), RESCUE_DISPATCH_INTERVAL_S="2") as (base, token),
    ):
        ids = []
        for lat, lon, plate, vehicle_class in PLACES:
            body = request_body(
                location={"lat": lat, "lon": lon},
                vehicle={"plate": plate, "vehicle_class": vehicle_class, "model": ""},
            )
            ids.append(httpx.post(base + "/v1/requests", json=body, timeout=10).json()["id"])
        staff = {"Authorization": f"Bearer {token}"}
        time.sleep(5)  # let the background cycle assign what it can and record the rest
        httpx.post(f"{base}/v1/requests/{ids[0]}/status", json={"status": "on_site"},
                   headers=staff, timeout=10)  # fmt: skip
        httpx.post(f"{base}/v1/requests/{ids[0]}/diagnosis",
                   json={"estimated_repair_hours": 40}, headers=staff, timeout=10)  # fmt: skip
        time.sleep(4)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(base + "/console/")
            page.fill("#token-input", token)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT / "console.png"))
            page.click(f"#attention li[data-id='{ids[5]}'] button")
            page.wait_for_selector("#candidate-table tbody tr", timeout=20_000)
            page.screenshot(path=str(OUT / "console-detail.png"))
            page.goto(base + "/docs")
            page.wait_for_selector(".swagger-ui .info", timeout=20_000)
            page.screenshot(path=str(OUT / "docs.png"))
            browser.close()
    for name in ("console.png", "console-detail.png", "docs.png"):
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
