"""`/metrics` over HTTP: budget use tells private limits, so only people may scrape it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import SHOP_PACK, refund
from discretion.api import Tokens, create_app

BUDGET_SERIES = "discretion_budget_utilisation_ratio{"


def test_metrics_without_a_token_are_refused_with_a_bearer_challenge(served):
    assert served.post("/v1/decisions", "bot", refund("40.00")).status_code == 200
    answer = served.client.get("/metrics")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"] == "unauthenticated"
    assert "Authorization: Bearer" in answer.json()["message"]
    assert BUDGET_SERIES not in answer.text


def test_metrics_refuse_an_agents_token_since_budget_use_tells_private_limits(served):
    assert served.guard.pack.private_limits
    assert served.post("/v1/decisions", "bot", refund("40.00")).status_code == 200
    answer = served.get("/metrics", "bot")
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    assert "only people read the metrics" in answer.json()["message"]
    assert BUDGET_SERIES not in answer.text


def test_metrics_refuse_a_revoked_token(served):
    Tokens(served.store, clock=served.guard.now).revoke(served.token_ids["tina"])
    assert served.get("/metrics", "tina").status_code == 401


def test_a_person_scrapes_the_metrics_with_their_token(served):
    assert served.post("/v1/decisions", "bot", refund("40.00")).status_code == 200
    answer = served.get("/metrics", "tina")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'discretion_decisions_total{action="refund",outcome="allow"} 1.0' in answer.text
    assert BUDGET_SERIES in answer.text


def test_open_metrics_serve_a_scraper_without_a_token(served):
    assert served.post("/v1/decisions", "bot", refund("40.00")).status_code == 200
    with TestClient(create_app(served.guard, open_metrics=True)) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert BUDGET_SERIES in answer.text


def test_serve_settings_open_the_metrics_only_when_asked(served):
    from dataclasses import replace

    from discretion.api._replicas import app_from_settings
    from discretion.settings import Settings

    settings = Settings(pack=SHOP_PACK)
    with TestClient(app_from_settings(settings, served.guard)) as client:
        assert client.get("/metrics").status_code == 401
    opened = replace(settings, open_metrics=True)
    with TestClient(app_from_settings(opened, served.guard)) as client:
        assert client.get("/metrics").status_code == 200
