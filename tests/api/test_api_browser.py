"""A real browser (Debian's headless Chromium, driven by Playwright) approves a routed case."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from approvals.helpers import MutableFacts, records
from conftest import SHOP_PACK, FakeClock, good_facts, refund
from discretion import Guard, SqlStore
from discretion.api import Tokens, create_app
from discretion.approvals import ApprovalStatus

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


@pytest.fixture
def live(sqlite_store: SqlStore, clock: FakeClock) -> Iterator[tuple[str, Guard]]:
    """The app served by uvicorn on a free localhost port, in a thread."""
    guard = Guard(
        SHOP_PACK,
        store=sqlite_store,
        context=MutableFacts(good_facts()),
        clock=clock,
    )
    # Bound before the server starts: the browser's first request waits in the backlog instead
    # of racing the server's start-up, so nothing needs to poll or sleep.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(guard), log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", guard
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_an_approver_signs_in_and_approves_a_routed_case_for_less_in_chromium(
    live, sqlite_store, clock
):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, guard = live
    routed = guard.decide(refund("80.00"))
    assert routed.outcome.value == "route"
    secret, _ = Tokens(sqlite_store, clock=guard.now).create(subject_id="tina", role="tier1")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
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
        finally:
            browser.close()

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
    assert sqlite_store.verify() == 4  # the token, the decision, the approval, the queued call
