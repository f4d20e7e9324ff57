"""The LLM judge over HTTP: the real openai SDK against respx, our retries and error mapping."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from discretion import ConfigurationError, Outcome
from discretion.judge import OpenAIJudge, prompt_version
from discretion.store._schema import ledger

from .helpers import (
    COMPLETIONS,
    JUDGE_URL,
    LOST_TEXT,
    MODEL,
    block,
    completion,
    facts_sent,
    lost_facts,
    lost_refund,
    sent,
    verdict,
)

DECLARED = {
    "customer.fraud_flag",
    "customer.orders",
    "order.total",
    "order.shipping",
    "order.delivered_at",
    "shipment.status",
    "shipment.status_at",
    "incident.active",
    "case.summary",
}


def recorded(store, decision):
    """The decision as its lineage record holds it."""
    with store.engine.connect() as connection:
        body = connection.execute(
            select(ledger.c.body).where(ledger.c.subject_id == decision.id)
        ).scalar_one()
    return json.loads(body)["decision"]


def assert_only_declared_facts_sent(route):
    for call in route.calls:
        facts = facts_sent(call.request)
        assert set(facts) == DECLARED
        body = json.dumps(sent(call.request))
        # Undeclared facts and the tool's arguments never leave.
        assert "ann@example.com" not in body
        assert "customer_id" not in body
        assert "case-1" not in body


def test_justified_verdict_keeps_the_exception_and_records_what_it_cost(
    make_guard, make_judge, judge_http, store
):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))

    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.rules == ["discretion.not-standard", "carrier-lost"]
    judged = decision.judge
    assert judged is not None
    assert judged.llm == "justified"
    assert judged.verdict is not None
    assert judged.verdict.justified
    assert judged.model == MODEL
    assert judged.prompt_version == prompt_version()
    assert judged.prompt_hash is not None
    assert len(judged.prompt_hash) == 64
    assert (judged.prompt_tokens, judged.completion_tokens) == (412, 38)
    assert judged.latency_ms == 0.0
    assert judged.cached is False
    assert recorded(store, decision)["judge"] == judged.model_dump(mode="json")
    assert store.verify() == 2  # the decision, and the `judge.verdict` binding its verdict

    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer sk-test"
    body = sent(request)
    assert body["model"] == MODEL
    assert body["temperature"] == 0.0
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["additionalProperties"] is False
    assert schema["schema"]["properties"]["clause"]["enum"] == ["carrier-lost"]
    system, user = body["messages"]
    assert system["role"] == "system"
    assert user["role"] == "user"
    assert "not on the customer's say-so" in system["content"]
    assert LOST_TEXT not in system["content"]
    assert block(user["content"], "rationale_text") == LOST_TEXT
    assert block(user["content"], "claims") == [{"field": "shipment.status", "value": "lost"}]
    assert block(user["content"], "exception") == {
        "action": "refund",
        "agent": {"is_ai": True, "role": "ai_agent"},
        "amount": "15.00 USD",
        "clause": "carrier-lost",
    }
    assert_only_declared_facts_sent(route)


def test_unjustified_verdict_routes_with_the_judges_reason(
    make_guard, make_judge, judge_http, store
):
    answer = verdict(
        False,
        unsupported=["UPS confirmed the parcel lost"],
        reason="The tracking number is not in the facts.",
    )
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(answer))
    )
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules[-1] == "discretion.judge.not-justified"
    assert decision.causes == [
        f"the LLM judge ({MODEL}) found the rationale does not support 'carrier-lost'"
        " (1 unsupported claim(s)): The tracking number is not in the facts."
    ]
    assert decision.judge is not None
    assert decision.judge.llm == "not_justified"
    assert decision.judge.verdict is not None
    assert decision.judge.verdict.unsupported_claims == ["UPS confirmed the parcel lost"]
    assert recorded(store, decision)["judge"]["verdict"]["justified"] is False
    assert route.call_count == 1
    assert_only_declared_facts_sent(route)


def test_justified_verdict_that_lists_unsupported_claims_still_routes(
    make_guard, make_judge, judge_http
):
    answer = verdict(True, unsupported=["the customer is a VIP"])
    judge_http.post(COMPLETIONS).mock(return_value=httpx.Response(200, json=completion(answer)))
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.not-justified"


def test_timeout_routes_within_the_total_time_budget(
    make_guard, make_judge, judge_http, monotonic, store
):
    timeouts: list[float] = []

    def slow(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        monotonic.now += request.extensions["timeout"]["read"]  # the attempt used all it had
        raise httpx.ReadTimeout("read timed out", request=request)

    route = judge_http.post(COMPLETIONS).mock(side_effect=slow)
    decision = make_guard(lost_facts(), judge=make_judge(max_attempts=5)).decide(
        lost_refund("15.00")
    )

    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules[-1] == "discretion.judge.timeout"
    assert decision.judge is not None
    assert decision.judge.llm == "failed"
    assert decision.judge.verdict is None
    assert "did not answer in time: 2 attempt(s) in 10.0s (limit 10.0s)" in decision.causes[0]
    # 5 s, a 2 s wait, then only the 3 s left of the 10 s budget.
    assert timeouts == [5.0, 3.0]
    assert monotonic.sleeps == [2]
    assert route.call_count == 2
    assert recorded(store, decision)["rules"][-1] == "discretion.judge.timeout"
    assert_only_declared_facts_sent(route)


def test_429_then_success_is_retried_after_the_servers_delay(
    make_guard, make_judge, judge_http, monotonic
):
    route = judge_http.post(COMPLETIONS).mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after": "3"}, json={"error": {"message": "slow"}}),
            httpx.Response(200, json=completion(verdict(True))),
        ]
    )
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))

    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert route.call_count == 2
    # Retry-After (3 s) is longer than the judge's own wait (2 s), so it wins.
    assert monotonic.sleeps == [3.0]
    assert decision.judge is not None
    assert decision.judge.llm == "justified"
    assert decision.judge.latency_ms == 3000.0
    assert_only_declared_facts_sent(route)


def test_500_until_the_time_budget_ends_routes(make_guard, make_judge, judge_http, monotonic):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(500, json={"error": {"message": "upstream down"}})
    )
    decision = make_guard(lost_facts(), judge=make_judge(max_attempts=50)).decide(
        lost_refund("15.00")
    )

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.failed"
    # Attempts at 0, 2, 4, 6 and 8 s; a wait to 10 s would use up the budget, so it stops.
    assert route.call_count == 5
    assert monotonic.sleeps == [2, 2, 2, 2]
    assert "answered HTTP 500 after 5 attempt(s) in 8.0s" in decision.causes[0]
    assert decision.judge is not None
    assert decision.judge.llm == "failed"
    assert_only_declared_facts_sent(route)


def test_client_errors_are_not_retried(make_guard, make_judge, judge_http, monotonic):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(400, json={"error": {"message": "bad schema"}})
    )
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert route.call_count == 1
    assert monotonic.sleeps == []
    assert "answered HTTP 400 after 1 attempt(s)" in decision.causes[0]


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        ('{"justified": true, "clause": "carrier-lost", ', "Invalid JSON"),
        ("Sure! The refund looks justified to me.", "Invalid JSON"),
        (json.dumps({**verdict(True), "approve": True}), "approve: Extra inputs are not permitted"),
        (json.dumps({"justified": True, "clause": "carrier-lost"}), "Field required"),
        (json.dumps({**verdict(True), "justified": "yes"}), "justified: Input should be"),
        (json.dumps({**verdict(True), "reason": "x" * 1001}), "reason: String should have at most"),
        ("", "answered with no content"),
    ],
    ids=["truncated", "prose", "extra-key", "missing-key", "wrong-type", "too-long", "empty"],
)
def test_malformed_or_off_schema_answers_route(
    make_guard, make_judge, judge_http, store, content, fault
):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(content))
    )
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.failed"
    assert fault in decision.causes[0]
    assert decision.judge is not None
    assert decision.judge.llm == "failed"
    assert recorded(store, decision)["judge"]["llm"] == "failed"
    # A malformed answer is not transient: one call, no retry.
    assert route.call_count == 1
    assert_only_declared_facts_sent(route)


def test_malformed_http_body_routes(make_guard, make_judge, judge_http):
    judge_http.post(COMPLETIONS).mock(return_value=httpx.Response(200, json={"object": "error"}))
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert "sent a response with no answer" in decision.causes[0]


def test_refusal_routes(make_guard, make_judge, judge_http, store):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(
            200, json=completion(None, refusal="I can't help with that request.")
        )
    )
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.failed"
    assert decision.causes == [
        f"the rationale judge (model {MODEL!r} at {JUDGE_URL}) refused:"
        " I can't help with that request."
    ]
    assert recorded(store, decision)["causes"] == decision.causes
    assert route.call_count == 1
    assert_only_declared_facts_sent(route)


def test_answer_cut_off_at_the_token_limit_routes(make_guard, make_judge, judge_http):
    judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(
            200, json=completion('{"justified": true', finish_reason="length")
        )
    )
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert "was cut off at max_output_tokens=800" in decision.causes[0]


def test_missing_api_key_routes_without_any_call(make_guard, make_judge, judge_http, store):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    judge = make_judge(api_key=None, environ={})
    decision = make_guard(lost_facts(), judge=judge).decide(lost_refund("15.00"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.failed"
    assert "has no API key: set DISCRETION_JUDGE_API_KEY or OPENAI_API_KEY" in decision.causes[0]
    assert decision.judge is not None
    assert decision.judge.llm == "failed"
    assert recorded(store, decision)["judge"]["model"] == MODEL
    assert not route.called


def test_verdict_relying_on_another_clause_is_not_used(make_guard, make_judge, judge_http):
    answer = verdict(True, clause="manager-discretion")
    judge_http.post(COMPLETIONS).mock(return_value=httpx.Response(200, json=completion(answer)))
    decision = make_guard(lost_facts(), judge=make_judge()).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.failed"
    assert (
        "relied on clause 'manager-discretion', not the clause it was given" in decision.causes[0]
    )


def test_model_endpoint_and_key_come_from_the_environment(judge_http, make_guard):
    route = judge_http.post("https://llm.internal/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=completion(verdict(True)))
    )
    with httpx.Client() as client:
        judge = OpenAIJudge(
            http_client=client,
            environ={
                "DISCRETION_JUDGE_MODEL": "env-model",
                "DISCRETION_JUDGE_BASE_URL": "https://llm.internal/v1",
                "OPENAI_API_KEY": "sk-from-env",
            },
        )
        decision = make_guard(lost_facts(), judge=judge).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.judge is not None
    assert decision.judge.model == "env-model"
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-from-env"
    assert sent(route.calls.last.request)["model"] == "env-model"


def test_a_judge_without_a_model_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="OpenAIJudge needs a model"):
        OpenAIJudge(environ={"OPENAI_API_KEY": "sk-x"})


def test_amounts_outside_the_band_and_reasons_that_opt_out_make_no_call(
    make_guard, make_judge, judge_http
):
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(verdict(False)))
    )
    guard = make_guard(lost_facts(**{"incident.active": True}), judge=make_judge())
    below = guard.decide(lost_refund("9.99", key="k-below"))
    opted_out = guard.decide(
        lost_refund("20.00", role="tier1", actor="ann", reason="outage-goodwill", key="k-out")
    )
    assert below.outcome is Outcome.ALLOW_EXCEPTION
    assert opted_out.outcome is Outcome.ALLOW_EXCEPTION
    assert below.judge is not None
    assert below.judge.llm == "not_asked"
    assert not route.called
