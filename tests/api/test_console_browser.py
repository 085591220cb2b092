"""The console in a real browser: headless Chromium (RESCUE_TEST_CHROMIUM) driven by
Playwright against a real uvicorn server on a temporary SQLite database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import request_body
from tests.api.console_server import CHROMIUM_ARGS, CHROMIUM_ENV, running_server

pytestmark = pytest.mark.browser
TAKLAMAKAN = {"lat": 39.0, "lon": 83.0}
"""217 km in a straight line from the nearest station: no van's 150 km radius covers it."""
TIANJIN_AAA = "AAA-120100"


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV)
    if not path:
        pytest.skip(f"browser test needs {CHROMIUM_ENV} (path to a Chromium binary)")
    if not Path(path).exists():
        pytest.skip(f"{CHROMIUM_ENV}={path} does not exist")
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`rescue serve` (national network seeded), no background cycle; (base URL, token)."""
    chromium_path()
    with running_server(tmp_path) as found:
        yield found


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The same with the background dispatch cycle running every second."""
    chromium_path()
    with running_server(tmp_path, RESCUE_DISPATCH_INTERVAL_S="1") as found:
        yield found


def signed_in(browser: Any, base: str, token: str, errors: list[str]) -> Any:
    """A 1280x800 page signed in to the console, collecting console errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(60_000)  # a loaded CI machine: waits are for events, not timing
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/console/")
    page.fill("#token-input", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page


def test_console_shows_network_and_dispatches(server: tuple[str, str]) -> None:
    """Sign in with a staff token, see the provinces and the 938 stations of the seeded
    network on the map, see a request submitted through the API appear in the queue (live),
    run dispatch from the page and see the request become assigned with a line to its van;
    the fresh request is not counted in "within promise" yet (no share, its tooltip says so)."""
    from playwright.sync_api import sync_playwright

    base, token = server
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = signed_in(browser, base, token, errors)
            assert page.locator("#layer-provinces path").count() >= 34
            assert page.locator("#layer-stations circle.station").count() == 938
            assert page.locator("#layer-vans circle.van").count() == 1276
            assert page.evaluate("sessionStorage.getItem('rescueToken')") == token

            created = httpx.post(base + "/v1/requests", json=request_body(), timeout=10).json()
            row = f"#queue tr[data-id='{created['id']}']"
            page.wait_for_selector(row + "[data-status=received]", timeout=20_000)
            page.wait_for_selector(f"#layer-requests circle[data-id='{created['id']}']")
            assert "济南市" in page.inner_text(row)  # the place by name, not coordinates

            page.click("#run-dispatch")
            page.wait_for_selector(row + "[data-status=assigned]", timeout=20_000)
            assert page.locator(f"#layer-lines line[data-request='{created['id']}']").count() == 1
            assert "1 assigned" in page.inner_text("#last-run")
            assert page.inner_text("#kpi-assigned") == "1"
            # A fresh request can still make the promise: not counted, so no share yet.
            assert page.inner_text("#kpi-within") == "–"
            assert page.locator("#kpi-overdue").is_hidden()
            title = page.get_attribute("#kpi-within-box", "title") or ""
            assert "overdue 0" in title and "1 still within their promise" in title, title
        finally:
            browser.close()
    assert errors == []


def test_dispatcher_resolves_stuck_and_cancels_without_errors(
    live_server: tuple[str, str],
) -> None:
    """With the background cycle running and no click: a request no van's radius covers
    appears in the attention panel with the cycle's reason. Its 'Choose a van' opens the
    candidates; a van beyond its radius is refused until an override reason is given, then
    assigned. Another request, assigned by the cycle, is reassigned by choosing a candidate
    and then cancelled with a reason; its detail shows the whole history. No console error."""
    from playwright.sync_api import sync_playwright

    base, token = live_server
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = signed_in(browser, base, token, errors)
            stuck = httpx.post(
                base + "/v1/requests", json=request_body(location=TAKLAMAKAN, cargo=None),
                timeout=10,
            ).json()["id"]  # fmt: skip
            item = f"#attention li[data-id='{stuck}']"
            page.wait_for_selector(f"{item}:has-text('no van in radius')", timeout=30_000)
            assert "escalate: send van" in page.inner_text(item)
            assert "urgent" in (page.get_attribute(item, "class") or "")

            page.click(f"{item} button[data-action=choose_van]")
            page.wait_for_selector("#candidate-table tbody tr", timeout=20_000)
            first = page.locator("#candidate-table tbody tr.beyond").first
            van_id = first.get_attribute("data-van")
            first.locator("button").click()
            assert "Give an override reason" in page.inner_text("#detail-message")
            page.fill("#override-reason", "nothing nearer; customer agreed")
            first.locator("button").click()
            page.wait_for_selector(f"#detail-message:has-text('Van {van_id} assigned')")
            page.wait_for_selector(f"#timeline li[data-kind=van_assigned]:has-text('{van_id}')")
            page.click("#detail-close")
            page.wait_for_selector(f"{item}[data-kind=late]", timeout=20_000)

            jinan = httpx.post(base + "/v1/requests", json=request_body(cargo=None), timeout=10)
            rid = jinan.json()["id"]
            row = f"#queue tr[data-id='{rid}']"
            page.wait_for_selector(row + "[data-status=assigned]", timeout=30_000)
            page.click(row)
            page.wait_for_selector(f"#detail[data-loaded='{rid}']")
            assert page.inner_text("#detail-id") == rid  # the full id, usable in the API
            assert httpx.get(
                f"{base}/v1/requests/{rid}", headers={"Authorization": f"Bearer {token}"}
            ).status_code == 200  # fmt: skip
            page.click("#load-candidates")
            page.wait_for_selector("#candidate-table tbody tr.feasible button")
            other = page.locator("#candidate-table tbody tr.feasible button").first
            chosen = other.get_attribute("data-van")
            other.click()
            page.wait_for_selector(f"#detail-message:has-text('Van {chosen} assigned')")
            page.wait_for_selector("#timeline li[data-kind=assignment_override]")

            page.fill("#cancel-reason", "customer fixed it")
            page.click("#cancel-form button[type=submit]")
            page.wait_for_selector("#detail-message:has-text('cancelled (customer fixed it)')")
            page.wait_for_selector("#timeline li[data-kind=cancelled]")
            kinds = page.eval_on_selector_all("#timeline li", "els => els.map(e => e.dataset.kind)")
            assert kinds[0] == "request_received"
            assert {"van_assigned", "assignment_override", "van_released", "cancelled"} <= set(
                kinds
            )
            assert page.inner_text("#detail-title").endswith("cancelled")
            page.click("#detail-close")
            page.wait_for_selector(row, state="detached", timeout=20_000)
        finally:
            browser.close()
    assert errors == []


@pytest.fixture
def move_up_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The same with a 30-minute promise: local coverage, so one station's vans out of
    service leave a hole a neighbour can fill."""
    chromium_path()
    with running_server(tmp_path, RESCUE_PROMISE_MINUTES="30") as found:
        yield found


def test_dispatcher_confirms_a_move_up(move_up_server: tuple[str, str]) -> None:
    """The three vans of Tianjin's AAA station go into maintenance (reported through the
    API). 'Suggest move-ups' lists a move of another station's van into that station with
    its km and gain; 'Confirm move' moves it (the API shows the van at the station, its
    status still available, its home unchanged), the page says so, and the fresh suggestions
    no longer offer that van. No console error."""
    from playwright.sync_api import sync_playwright

    base, token = move_up_server
    auth = {"Authorization": f"Bearer {token}"}
    vans = httpx.get(base + "/v1/vans", headers=auth, timeout=30).json()
    stations = {s["id"]: s for s in httpx.get(base + "/v1/stations", headers=auth).json()}
    # Tianjin's AAA station: within 30 minutes no other station covers its county seats (a
    # move there gains ~0.4% of the national demand; Beijing's, in contrast, are all covered
    # by its neighbours, so nothing would be suggested)
    hole = TIANJIN_AAA
    assert sum(v["station_id"] == hole for v in vans) == 3
    where = {"lat": stations[hole]["lat"], "lon": stations[hole]["lon"]}
    for v in vans:
        if v["station_id"] == hole:
            res = httpx.put(
                f"{base}/v1/vans/{v['id']}/position", headers=auth, timeout=30,
                json={**where, "status": "maintenance"},
            )  # fmt: skip
            assert res.status_code == 200, res.text
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = signed_in(browser, base, token, errors)
            page.click("#load-move-ups")
            page.wait_for_selector(f"#move-ups li[data-to='{hole}']", timeout=60_000)
            item = page.locator(f"#move-ups li[data-to='{hole}']").first
            van_id = item.get_attribute("data-van")
            assert van_id
            assert "km" in item.inner_text() and stations[hole]["name"] in item.inner_text()
            assert "now" in page.inner_text("#move-up-coverage")
            item.locator("button[data-action=confirm_move_up]").click()
            page.wait_for_selector(f"#message:has-text('Van {van_id} moved to')")
            page.wait_for_selector(f"#move-ups li[data-van='{van_id}']", state="detached")
            moved = next(
                v for v in httpx.get(base + "/v1/vans", headers=auth, timeout=30).json()
                if v["id"] == van_id
            )  # fmt: skip
            assert (moved["lat"], moved["lon"]) == (where["lat"], where["lon"])
            assert moved["status"] == "available" and moved["station_id"] != hole
        finally:
            browser.close()
    assert errors == []


def test_docs_render_with_the_network_blocked(server: tuple[str, str]) -> None:
    """/docs and /redoc render the API with every request off this machine refused: neither
    asks for anything outside (ReDoc's "powered by" logo is inline, api/site/redoc.py)."""
    from playwright.sync_api import sync_playwright

    base, _ = server
    outside: list[tuple[str, str]] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:")):
            route.continue_()
        else:
            outside.append((url, route.request.resource_type))
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(base + "/docs")
            page.wait_for_selector(".swagger-ui .info .title:has-text('Rescue dispatch')")
            page.wait_for_selector(".opblock-summary-path[data-path='/v1/requests/{request_id}']")
            assert outside == []
            page.goto(base + "/redoc")
            page.wait_for_selector("h1:has-text('Rescue dispatch')", timeout=20_000)
            page.wait_for_load_state("networkidle")
            assert page.locator("img[alt='redocly logo']").count() == 1
        finally:
            browser.close()
    assert outside == []
