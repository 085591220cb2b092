"""Screenshots of the console's main views for anyone to look at: `make screenshots`.

Starts `rescue serve` on a temporary database with the national network, reports a night's
worth of breakdowns (one that no van's radius covers, a few the cycle assigns, one that needs
a replacement truck, and a cluster at Qiqihar that keeps all three of its station's vans
busy), then captures the console with its move-up suggestion (Qiqihar's hole: with the
default limits and promise the only station of the national network whose busy vans leave
a hole a neighbour's van is suggested for), a request's detail with its candidate vans, and
/docs at 1280x800 into ``screenshots/`` (git-ignored; the README shows ``docs/console.png``, a
copy of ``screenshots/console.png``). Needs RESCUE_TEST_CHROMIUM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
HOLE = [  # Qiqihar (AAA-230200: heavy service van, wrecker, light service van)
    (47.36, 123.95, "黑B31207", "tractor"), (47.33, 123.90, "黑B80552", "rigid_truck"),
    (47.35, 123.93, "黑B2L719", "light_truck"),
]  # fmt: skip


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for: {what}")
        time.sleep(0.5)


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
        db_url = f"sqlite:///{Path(folder) / 'console.sqlite'}"  # as running_server makes it
        ids = []
        for lat, lon, plate, vehicle_class in PLACES + HOLE:
            body = request_body(
                location={"lat": lat, "lon": lon},
                vehicle={"plate": plate, "vehicle_class": vehicle_class, "model": ""},
            )
            ids.append(httpx.post(base + "/v1/requests", json=body, timeout=10).json()["id"])
        staff = {"Authorization": f"Bearer {token}"}

        def request(i: int) -> dict[str, object]:
            res = httpx.get(f"{base}/v1/requests/{ids[i]}", headers=staff, timeout=10)
            return dict(res.json())

        # let the background cycle assign what it can (on a loaded machine it takes longer)
        served = [i for i in range(len(ids)) if i != 5]
        wait_until(lambda: all(request(i)["van"] for i in served), "vans assigned")
        for status in ("en_route", "on_site"):
            httpx.post(f"{base}/v1/requests/{ids[0]}/status", json={"status": status},
                       headers=staff, timeout=10).raise_for_status()  # fmt: skip
        httpx.post(f"{base}/v1/requests/{ids[0]}/diagnosis",
                   json={"estimated_repair_hours": 40}, headers=staff,
                   timeout=10).raise_for_status()  # fmt: skip
        # the cycle offers a truck to a partner, who accepts: the truck is booked
        offers: list[dict[str, object]] = []

        def truck_offer() -> bool:
            res = httpx.get(f"{base}/v1/offers", params={"status": "offered"}, headers=staff,
                            timeout=10)  # fmt: skip
            offers[:] = [o for o in res.json() if o["request_id"] == ids[0]]
            return bool(offers)

        wait_until(truck_offer, "a truck offered to a partner")
        partner_token = subprocess.run(
            [sys.executable, "-m", "api.cli", "token", "create", "--role", "partner",
             "--partner", str(offers[0]["partner_id"]), "--db", db_url],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        as_partner = {"Authorization": f"Bearer {partner_token}"}
        httpx.post(f"{base}/v1/partner/offers/{offers[0]['id']}/accept",
                   json={"eta_minutes": 95.0}, headers=as_partner,
                   timeout=10).raise_for_status()  # fmt: skip
        wait_until(lambda: bool(request(0)["replacement"]), "a replacement truck booked")
        time.sleep(2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(base + "/console/")
            page.fill("#token-input", token)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.click("#load-move-ups")
            page.wait_for_selector("#move-ups li button[data-action=confirm_move_up]",
                                   timeout=60_000)  # fmt: skip
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
