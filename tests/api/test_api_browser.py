"""A real browser (Debian's headless Chromium, driven by Playwright) approves a routed case."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from approvals.helpers import MutableFacts, records
from conftest import SHOP_PACK, FakeClock, good_facts, refund
from discretion import Guard, SqlStore
from discretion.api import Tokens, create_app
from discretion.approvals import ApprovalStatus

from .helpers import served_over_http

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("DISCRETION_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the browser test needs Debian's Chromium at /usr/bin/chromium"
    " (apt-get install -y chromium; .ci/run installs it)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module; each test opens its own pages."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def offline_page(browser: Any, base: str, **options: Any) -> Any:
    """A page that can reach only `base`: every other request fails, as with no internet."""
    page = browser.new_page(**options)
    outside: list[str] = []

    def only_base(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_base)
    page.outside = outside
    return page


def style(page: Any, selector: str, prop: str) -> str:
    """The computed value of a CSS property on the first element `selector` finds."""
    script = f"e => getComputedStyle(e).getPropertyValue({json.dumps(prop)})"
    return str(page.eval_on_selector(selector, script))


@pytest.fixture
def live(sqlite_store: SqlStore, clock: FakeClock) -> Iterator[tuple[str, Guard]]:
    """The app served by uvicorn on a free localhost port, in a thread."""
    guard = Guard(SHOP_PACK, store=sqlite_store, context=MutableFacts(good_facts()), clock=clock)
    with served_over_http(create_app(guard)) as base:
        yield base, guard


def test_the_api_docs_render_with_no_network_in_chromium(live, browser):
    base, _ = live
    page = offline_page(browser, base, viewport={"width": 1280, "height": 1200})
    page.goto(f"{base}/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/decisions" in path for path in paths)
    # Styled by the vendored stylesheet, not the browser's defaults.
    post = ".swagger-ui .opblock.opblock-post"
    assert style(page, post, "border-top-style") == "solid"
    assert style(page, post, "background-color") != "rgba(0, 0, 0, 0)"
    assert page.outside == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-offline.png"))
    page.close()


def test_an_approver_signs_in_and_approves_a_routed_case_for_less_in_chromium(
    live, browser, sqlite_store, clock
):
    base, guard = live
    routed = guard.decide(refund("80.00"))
    assert routed.outcome.value == "route"
    secret, _ = Tokens(sqlite_store, clock=guard.now).create(subject_id="tina", role="tier1")

    page = offline_page(browser, base, viewport={"width": 1280, "height": 1600})
    page.goto(f"{base}/ui")
    assert page.url.endswith("/ui/sign-in")
    page.fill("#token", secret)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base}/ui")
    row = page.locator(f"tr[data-approval='{routed.id}']")
    assert "USD 80.00" in row.inner_text()
    row.locator("a.open").click()
    page.wait_for_url(f"{base}/ui/approvals/{routed.id}")
    assert "refund-within-30-days" in page.inner_text("#rules")
    page.fill("#amount", "55.00")
    page.fill("#approve-note", "only the jacket came back; refunding it")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "approval-case.png"), full_page=True)
    page.click("#approve")
    page.wait_for_selector("#notice")
    assert page.inner_text("#notice") == "The case was approved."
    assert page.inner_text("#status") == "approved"
    assert "USD 55.00 (asked USD 80.00)" in page.inner_text("#granted")
    page.screenshot(path=str(ARTIFACTS / "approval-case-approved.png"), full_page=True)
    # The desk's own stylesheet arrived and applies.
    assert style(page, "header.top", "background-color") == "rgb(29, 36, 51)"
    assert page.outside == []
    page.close()

    assert (ARTIFACTS / "approval-case.png").stat().st_size > 10_000
    assert guard.approvals.get(routed.id).status is ApprovalStatus.APPROVED
    [record] = records(sqlite_store, "approval.approved", routed.id)
    body = json.loads(record.body)
    assert body["by"] == {"id": "tina", "role": "tier1"}
    assert body["note"] == "only the jacket came back; refunding it"
    assert body["amount"] == {"amount": "55.00", "currency": "USD"}
    assert body["requested_amount"] == {"amount": "80.00", "currency": "USD"}
    assert body["at"] == clock.now.isoformat()
    [queued] = records(sqlite_store, "execution.queued", routed.id)
    assert json.loads(queued.body)["arguments"]["amount"] == "55.00"
    assert sqlite_store.verify() == 3
