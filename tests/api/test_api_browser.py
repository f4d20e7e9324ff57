"""A real browser (Debian's headless Chromium, driven by Playwright) approves a routed case."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
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


def signed_in_page(browser: Any, base: str, token: str, **options: Any) -> Any:
    """An offline page signed in to the desk with `token`, on the queue."""
    page = offline_page(browser, base, **options)
    page.goto(f"{base}/ui/sign-in")
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base}/ui")
    return page


def has_no_sideways_scroll(page: Any) -> bool:
    """Whether the page fits its viewport's width (tables may scroll inside their own box)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    assert (ARTIFACTS / name).stat().st_size > 5_000


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
    # The token, the sign-in, the decision, the approval, the queued call.
    assert sqlite_store.verify() == 5


def test_the_queue_is_styled_filters_and_fits_a_phone_in_chromium(live, browser, sqlite_store):
    base, guard = live
    facts = guard.context
    small = guard.decide(refund("60.00", key="small", customer="c-ann", case="K-1001"))
    facts.facts.update({"shipment.status": "lost"})
    lost = guard.decide(refund("125.00", key="lost", reason="carrier-lost", case="K-2002"))
    assert (small.outcome.value, lost.outcome.value) == ("route", "route")
    secret, _ = Tokens(sqlite_store, clock=guard.now).create(subject_id="tom", role="tier2")

    page = signed_in_page(browser, base, secret, viewport={"width": 1280, "height": 900})
    assert page.locator("#queue tbody tr").count() == 2
    assert style(page, "header.top", "background-color") == "rgb(29, 36, 51)"
    assert style(page, "#filters", "display") == "flex"
    assert style(page, "#queue", "border-collapse") == "collapse"
    assert style(page, "#apply-filters", "background-color") == "rgb(36, 84, 197)"
    # From the keyboard: the first Tab lands on the header, with a visible focus ring.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "brand"
    assert style(page, ":focus", "outline-style") == "solid"
    shot(page, "queue.png")
    page.select_option("#f-reason", "carrier-lost")
    page.click("#apply-filters")
    page.wait_for_url(f"{base}/ui?**")
    assert page.locator("#queue tbody tr").count() == 1
    assert page.locator(f"tr[data-approval='{lost.id}']").count() == 1
    assert page.inner_text("#shown") == "1 of 2 waiting cases match."
    page.fill("#q", "k-1001")
    page.select_option("#f-reason", "")
    page.press("#q", "Enter")
    page.wait_for_selector(f"tr[data-approval='{small.id}']")
    assert page.locator("#queue tbody tr").count() == 1
    assert page.outside == []
    page.close()

    phone = signed_in_page(browser, base, secret, viewport={"width": 390, "height": 844})
    assert has_no_sideways_scroll(phone)
    # The nav drops to its own row instead of crowding the header.
    assert style(phone, "header.top", "flex-wrap") == "wrap"
    assert style(phone, "header.top nav", "flex-basis") == "100%"
    shot(phone, "queue-390.png")
    phone.close()


def test_a_case_shows_its_ticket_and_sets_precedent_from_the_form_in_chromium(
    browser, sqlite_store, clock, precedent_pack
):
    facts = MutableFacts(good_facts(**{"shipment.status": "lost"}))
    guard = Guard(precedent_pack, store=sqlite_store, context=facts, clock=clock)
    proposal = refund("125.00", reason="carrier-lost", key="espresso")
    proposal["ticket"] = (
        "Customer: my espresso machine never came; the tracking page says lost in transit.\n"
        "Agent: I am sorry. I will ask a colleague to approve a refund of 125.00."
    )
    routed = guard.decide(proposal)
    assert (routed.outcome.value, routed.required_role) == ("route", "tier2")
    secret, _ = Tokens(sqlite_store, clock=guard.now).create(subject_id="tom", role="tier2")

    with served_over_http(create_app(guard)) as base:
        page = signed_in_page(
            browser,
            base,
            secret,
            viewport={"width": 1280, "height": 1000},
            timezone_id="America/New_York",
        )
        page.goto(f"{base}/ui/approvals/{routed.id}")
        assert "my espresso machine never came" in page.inner_text("#ticket")
        assert style(page, "#ticket", "white-space") == "pre-wrap"
        assert style(page, "#ticket", "background-color") == "rgb(246, 247, 249)"
        assert style(page, "#ticket-card", "border-top-style") == "solid"
        assert "tier2, who may grant up to USD 300.00" in page.inner_text("#for-approver")
        assert not page.is_visible("#agent-told p")  # the agent's text is folded away
        # Times are shown in the approver's zone: 12:00 UTC is 07:00 in New York.
        due = page.locator("#case time").first
        assert due.get_attribute("data-local") == "yes"
        assert "UTC" in (due.get_attribute("title") or "")
        shown = due.inner_text()
        assert "07:00 AM" in shown
        assert "EST" in shown
        assert style(page, "#approve-form fieldset", "display") == "flex"
        shot(page, "case-ticket-precedent.png")

        page.check("input[name=precedent_mode][value=precedent]")
        page.fill("#precedent-days", "30")
        page.fill("#precedent-citations", "5")
        page.fill("#approve-note", "the carrier confirmed the loss")
        page.click("#approve")
        page.wait_for_selector("#notice")
        assert page.inner_text("#status") == "approved"
        assert page.outside == []
        page.close()

        phone = signed_in_page(browser, base, secret, viewport={"width": 390, "height": 844})
        phone.goto(f"{base}/ui/approvals/{routed.id}")
        assert has_no_sideways_scroll(phone)
        box = phone.locator("#case code").first.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 390
        assert style(phone, "dl.facts", "grid-template-columns").count(" ") == 0  # one column
        shot(phone, "case-390.png")
        phone.close()

    [made] = guard.precedents.list()
    assert made.source_decision_id == routed.id
    assert made.learnable is True
    assert made.scope == {"shipment.status": "lost"}
    assert made.citations == 5
    assert made.expires_at == guard.now() + timedelta(days=30)


def test_the_exposure_page_draws_its_bars_in_chromium(live, browser, sqlite_store):
    base, guard = live
    guard.decide(refund("30.00", key="a"))
    guard.decide(refund("45.00", key="b", customer="c-2"))
    secret, _ = Tokens(sqlite_store, clock=guard.now).create(subject_id="tina", role="tier1")
    page = signed_in_page(browser, base, secret, viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/ui/exposure?days=7")
    assert "USD 75.00" in page.inner_text("#by-day")
    bar = "#by-day td.bar .total"
    assert style(page, bar, "display") == "block"
    assert style(page, bar, "background-color") == "rgb(184, 199, 238)"
    assert float(style(page, bar, "width").removesuffix("px")) > 100
    assert style(page, ".grid", "display") == "grid"
    shot(page, "exposure.png")
    assert page.outside == []
    page.close()
