"""Eval reports: the terminal summary, JSON, and a self-contained HTML page Chromium renders."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from discretion.evals import evaluate

from .helpers import REFUND_64, invoke, refund, write_suite

CASES = [
    {
        "id": "refund-within-policy",
        "description": "Earbuds stopped charging",
        "tags": ["standard"],
        "proposal": REFUND_64,
        "expect": {"outcome": "allow"},
    },
    {
        "id": "refund-wrongly-expected-route",
        "description": "A deliberately wrong expectation <b>with markup</b>",
        "tags": ["at-limit"],
        "proposal": refund("200.00"),
        "expect": {"outcome": "route", "role": "tier1"},
    },
    {
        "id": "refund-one-cent-over",
        "description": "One cent over the AI's limit",
        "tags": ["one-cent-over"],
        "proposal": refund("200.01"),
        "expect": {"outcome": "route", "role": "tier1"},
    },
]


def _chromium() -> str | None:
    """The Chromium to drive: DISCRETION_TEST_CHROMIUM, Debian's, or Playwright's own (None)."""
    return os.environ.get("DISCRETION_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
def report_files(tmp_path: Path) -> tuple[Path, Path, str]:
    suite = write_suite(tmp_path, CASES, suite="report-suite")
    html, data = tmp_path / "report.html", tmp_path / "report.json"
    result = invoke(
        "eval", str(suite), "--html", str(html), "--json", str(data), "--amnesia", "120"
    )
    assert result.exit_code == 1
    return html, data, result.stdout


def test_terminal_summary_names_figures_and_failing_case(report_files):
    _, _, output = report_files
    assert "cases 3: 2 passed, 1 failed" in output
    assert "leakage 200.00 USD in 1 case(s)" in output
    assert "false-block rate 0.0% (0 of 1 cases expected to be allowed)" in output
    assert "consistency 100.0%" in output
    assert "refund-wrongly-expected-route" in output
    assert "expected route to tier1, got allow" in output
    assert "decision amnesia over 120 tickets" in output


def test_json_report_has_confusion_categories_and_every_case(report_files):
    _, data, _ = report_files
    report = json.loads(data.read_text(encoding="utf-8"))
    assert report["passing"] is False
    assert report["summary"]["confusion"]["route"] == {
        "allow": 1,
        "allow_exception": 0,
        "route": 1,
        "deny": 0,
        "error": 0,
    }
    assert report["categories"]["at-limit"]["leakage"] == {"USD": "200.00"}
    assert report["categories"]["one-cent-over"]["passed"] == 1
    failing = next(c for c in report["cases"] if not c["passed"])
    assert failing["id"] == "refund-wrongly-expected-route"
    assert failing["runs"][0]["explanation"].startswith("Approved")
    assert report["amnesia"]["tickets"] == 120


def test_html_report_is_self_contained(report_files):
    html, _, _ = report_files
    text = html.read_text(encoding="utf-8")
    assert "<style>" in text
    assert "<svg" in text
    assert not re.search(r"<(script|link|img|iframe)\b", text)
    # The only URL is the SVG namespace, which is never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}
    # Case text is escaped, never rendered as markup.
    assert "&lt;b&gt;with markup&lt;/b&gt;" in text


def test_html_report_renders_in_headless_chromium(report_files, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    html, _, _ = report_files
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=_chromium(), args=["--no-sandbox"], headless=True
            )
        except sync_api.Error as exc:
            pytest.skip(f"no Chromium to launch (apt-get install chromium): {exc}")
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(html.as_uri())
            verdict = page.locator("#verdict").inner_text()
            leakage = page.locator("#leakage").inner_text()
            matrix = page.locator("#confusion td").all_inner_texts()
            failing = page.locator("#failures .case h3").all_inner_texts()
            charts = page.locator("svg").count()
            amnesia_lines = page.locator("#amnesia polyline").count()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert verdict.startswith("1 case failed")
    assert leakage == "200.00 USD"
    assert sum(int(cell) for cell in matrix) == 3
    assert len(failing) == 1
    assert "refund-wrongly-expected-route" in failing[0]
    assert charts >= 4
    assert amnesia_lines == 4
    assert requests == [html.as_uri()]
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_object_prints_and_renders_without_the_cli(tmp_path):
    report = evaluate([write_suite(tmp_path, CASES[:1])])
    console = Console(record=True, width=120)
    report.print(console)
    assert "PASS every case passed" in console.export_text()
    assert report.is_passing
    assert "Every case passed" in report.html()
