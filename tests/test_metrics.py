"""`/metrics`: Prometheus series of decisions, exceptions, the judge, the queue and budgets."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from approvals.helpers import MutableFacts
from conftest import Counter, good_facts, refund
from discretion import Guard, Outcome, Verdict, load_pack
from discretion.api import create_app
from discretion.context import StaticContextProvider
from discretion.errors import JudgeError
from discretion.judge import JudgeRequest, StaticJudge
from judge.helpers import JUDGED_PACK, lost_facts, lost_refund


def scrape(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_count_decisions_rules_exception_money_queue_and_budgets(store, clock, pack):
    facts = MutableFacts(good_facts(**{"shipment.status": "lost"}))
    guard = Guard(pack, store=store, context=facts, clock=clock, ids=Counter())
    with TestClient(create_app(guard, open_metrics=True)) as client:
        before = scrape(client)
        assert value(before, "discretion_approvals_pending_total") is None
        assert value(before, "discretion_approvals_oldest_age_seconds") == 0.0
        assert value(before, "discretion_budget_utilisation_ratio", budget="actor-daily") == 0.0

        granted = [
            guard.decide(refund("20.00", key=f"lost-{n}", reason="carrier-lost")) for n in (1, 2)
        ]
        assert [d.outcome for d in granted] == [Outcome.ALLOW_EXCEPTION] * 2
        facts.facts["shipment.status"] = "delivered"
        allowed = guard.decide(refund("40.00", key="plain"))
        routed = guard.decide(refund("110.00", key="big", customer="c-2"))
        assert allowed.outcome is Outcome.ALLOW
        assert routed.outcome is Outcome.ROUTE
        # A replay is counted once.
        guard.decide(refund("40.00", key="plain"))
        clock.advance(hours=2)
        samples = scrape(client)

    def decisions(outcome: str) -> float | None:
        return value(samples, "discretion_decisions_total", outcome=outcome, action="refund")

    assert decisions("allow_exception") == 2
    assert decisions("allow") == 1
    assert decisions("route") == 1
    for rule in granted[0].rules:
        assert (
            value(samples, "discretion_decision_rules_total", rule=rule, outcome="allow_exception")
            == 2
        )
    for rule in routed.rules:
        assert value(samples, "discretion_decision_rules_total", rule=rule, outcome="route") == 1
    assert (
        value(samples, "discretion_exception_minor_units_total", action="refund", currency="USD")
        == 4000
    )
    assert value(samples, "discretion_approvals_pending", required_role=routed.required_role) == 1
    assert value(samples, "discretion_approvals_oldest_age_seconds") == 7200
    # Customer c-1 used 40.00 of its 150.00 exception budget; bot-1 used 80.00 of 1000.00.
    assert value(
        samples, "discretion_budget_utilisation_ratio", budget="customer-exceptions-30d"
    ) == pytest.approx(4000 / 15000)
    assert (
        value(
            samples, "discretion_budget_reserved_minor_units", budget="actor-daily", currency="USD"
        )
        == 8000
    )
    assert value(
        samples, "discretion_budget_utilisation_ratio", budget="actor-daily"
    ) == pytest.approx(8000 / 100000)


def test_metrics_count_judge_verdicts_errors_and_latency(store, clock):
    calls = {"n": 0}

    def flaky(request: JudgeRequest) -> Verdict:
        calls["n"] += 1
        if calls["n"] == 2:
            raise JudgeError("the judge endpoint answered 503")
        return Verdict(justified=True, clause=request.reason, unsupported_claims=[], reason="ok")

    guard = Guard(
        load_pack(JUDGED_PACK),
        store=store,
        context=StaticContextProvider(lost_facts()),
        clock=clock,
        judge=StaticJudge(flaky),
    )
    with TestClient(create_app(guard, open_metrics=True)) as client:
        first = guard.decide(lost_refund("15.00", key="j-1"))
        second = guard.decide(lost_refund("16.00", key="j-2"))
        samples = scrape(client)
    assert first.outcome is Outcome.ALLOW_EXCEPTION
    assert second.outcome is Outcome.ROUTE
    model = first.judge.model
    assert value(samples, "discretion_judge_verdicts_total", model=model, result="justified") == 1
    assert value(samples, "discretion_judge_verdicts_total", model=model, result="failed") == 1
    assert value(samples, "discretion_judge_errors_total", model=model, kind="failed") == 1
    assert value(samples, "discretion_judge_latency_seconds_count", model=model) == 1


def test_each_decision_is_logged_with_its_id_and_never_its_facts_or_text(
    store, clock, pack, caplog
):
    facts = good_facts(**{"customer.tier": "gold-secret-tier"})
    guard = Guard(pack, store=store, context=StaticContextProvider(facts), clock=clock)
    proposal = refund("40.00", key="logged")
    proposal["rationale"]["text"] = "api_key=sk-live-123 customer asked"
    with caplog.at_level(logging.INFO, logger="discretion.decision"):
        decision = guard.decide(proposal)
        guard.decide(proposal)  # a replay is not logged again
    records = [r for r in caplog.records if r.name == "discretion.decision"]
    assert len(records) == 1
    record = records[0]
    assert record.decision_id == decision.id  # type: ignore[attr-defined]
    assert record.outcome == "allow"  # type: ignore[attr-defined]
    assert record.rules == decision.rules  # type: ignore[attr-defined]
    everything = repr(record.__dict__) + record.getMessage()
    assert decision.id in record.getMessage()
    assert "sk-live-123" not in everything
    assert "gold-secret-tier" not in everything
    assert "customer asked" not in everything


def test_spans_wrap_each_pipeline_step_when_a_tracer_provider_is_set(store, clock, pack):
    trace = pytest.importorskip("opentelemetry.trace")
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    previous = trace._TRACER_PROVIDER
    trace._TRACER_PROVIDER = provider
    try:
        guard = Guard(pack, store=store, context=StaticContextProvider(good_facts()), clock=clock)
        guard.decide(refund("40.00", key="traced"))
    finally:
        trace._TRACER_PROVIDER = previous
    names = [s.name for s in exporter.get_finished_spans()]
    assert names[-1] == "discretion.decide"
    assert set(names) >= {
        "discretion.normalise",
        "discretion.context",
        "discretion.policy",
        "discretion.precedent",
        "discretion.judge",
        "discretion.record",
    }
