"""Invariant 2, by property: no judge answer can raise an outcome."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import NOW, FakeClock, refund
from discretion import Guard, Outcome, SqlStore, Verdict, load_pack
from discretion.context import StaticContextProvider
from discretion.judge import OpenAIJudge, StaticJudge

from .helpers import (
    COMPLETIONS,
    JUDGE_URL,
    JUDGED_PACK,
    FakeMonotonic,
    completion,
    delivered_facts,
    lost_facts,
    lost_refund,
)

PERMISSIVE = {Outcome.DENY: 0, Outcome.ROUTE: 1, Outcome.ALLOW_EXCEPTION: 2, Outcome.ALLOW: 3}

SCENARIOS = {
    "allow": (delivered_facts(), refund("40.00")),
    "exception by the agent": (lost_facts(), lost_refund("15.00")),
    "exception by tier2": (lost_facts(), lost_refund("125.00", role="tier2", actor="ann")),
    "exception above authority": (lost_facts(), lost_refund("60.00")),
    "contradicted claim": (
        lost_facts(),
        lost_refund("15.00", claims=[{"field": "shipment.status", "value": "delivered"}]),
    ),
    "hard limit": (lost_facts(**{"customer.fraud_flag": True}), lost_refund("15.00")),
}

verdicts = st.builds(
    Verdict,
    justified=st.booleans(),
    clause=st.one_of(st.just("carrier-lost"), st.text(max_size=20)),
    unsupported_claims=st.lists(st.text(max_size=40), max_size=3),
    reason=st.text(max_size=60),
)


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    judged = load_pack(JUDGED_PACK)
    # Without any LLM judge, the grounded checks alone: the baseline a judge may only lower.
    path = tmp_path_factory.mktemp("packs") / "skip.yaml"
    path.write_text(
        JUDGED_PACK.read_text(encoding="utf-8").replace(
            "pack: test-shop-judged\n", "pack: test-shop-judged\njudge: {without_model: skip}\n"
        ),
        encoding="utf-8",
    )
    return judged, load_pack(path)


def decide(pack, facts, proposal, judge=None):
    store = SqlStore("sqlite://")
    try:
        guard = Guard(
            pack,
            store=store,
            context=StaticContextProvider(facts),
            clock=FakeClock(NOW),
            judge=judge,
        )
        return guard.decide(proposal)
    finally:
        store.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(SCENARIOS)), answer=verdicts)
def test_deterministic_first_no_verdict_can_raise_an_outcome(packs, name, answer):
    judged, baseline_pack = packs
    facts, proposal = SCENARIOS[name]
    baseline = decide(baseline_pack, facts, proposal)
    judge = StaticJudge(answer)
    judged_decision = decide(judged, facts, proposal, judge)

    assert PERMISSIVE[judged_decision.outcome] <= PERMISSIVE[baseline.outcome]
    if baseline.outcome is not Outcome.ALLOW_EXCEPTION:
        # Nothing but an allowed exception is ever put to a judge.
        assert judged_decision.outcome is baseline.outcome
        assert judge.requests == []
    elif judge.requests:
        keeps = (
            answer.justified and not answer.unsupported_claims and answer.clause == "carrier-lost"
        )
        assert judged_decision.outcome is (Outcome.ALLOW_EXCEPTION if keeps else Outcome.ROUTE)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
verdict_like = st.fixed_dictionaries(
    {
        "justified": st.one_of(st.booleans(), st.just("true"), st.just(1), st.none()),
        "clause": st.one_of(st.just("carrier-lost"), st.text(max_size=10)),
        "unsupported_claims": st.one_of(st.just([]), st.lists(st.text(max_size=10), max_size=2)),
        "reason": st.text(max_size=30),
    },
    optional={"approve": st.booleans(), "outcome": st.just("allow")},
)
contents = st.one_of(
    st.text(max_size=80),
    json_values.map(json.dumps),
    verdict_like.map(json.dumps),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=contents)
def test_deterministic_first_no_model_answer_over_http_can_raise_an_outcome(
    packs, judge_http, content
):
    judged, _ = packs
    judge_http.reset()
    judge_http.routes.clear()
    route = judge_http.post(COMPLETIONS).mock(
        return_value=httpx.Response(200, json=completion(content))
    )
    with httpx.Client() as client:
        monotonic = FakeMonotonic()
        judge = OpenAIJudge(
            "m",
            base_url=JUDGE_URL,
            api_key="sk-test",
            http_client=client,
            sleep=monotonic.sleep,
            monotonic=monotonic,
            environ={},
        )
        decision = decide(judged, lost_facts(), lost_refund("15.00"), judge)

    assert route.call_count == 1
    assert decision.outcome in (Outcome.ALLOW_EXCEPTION, Outcome.ROUTE)
    if decision.outcome is Outcome.ALLOW_EXCEPTION:
        parsed: Any = Verdict.model_validate_json(content, strict=True)
        assert parsed.justified is True
        assert parsed.unsupported_claims == []
        assert parsed.clause == "carrier-lost"


def test_only_a_strictly_valid_justified_verdict_keeps_the_exception():
    # The property above leans on strict parsing: "true" and 1 are not booleans.
    for value in ("true", 1):
        body = {"justified": value, "clause": "c", "unsupported_claims": [], "reason": ""}
        with pytest.raises(ValidationError):
            Verdict.model_validate_json(json.dumps(body), strict=True)
