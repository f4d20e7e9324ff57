"""Where the judges sit in the pipeline: before the write transaction, after precedent."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import MagicMock

from conftest import NOW, Counter
from discretion import Actor, Money, Outcome, Verdict
from discretion.judge import JudgeRequest, StaticJudge
from discretion.precedent import PrecedentSpec

from .helpers import lost_facts, lost_refund


def test_the_judge_is_asked_before_the_write_transaction_opens(make_guard, store):
    seen: list[tuple[int, bool]] = []

    def probing(request: JudgeRequest) -> Verdict:
        # Nothing of this decision is written yet, and the ledger lock is free: another writer
        # can take it now (on SQLite a held lock would make this wait, then fail).
        with store.transaction() as tx:
            tx.record("probe", "dec_probe", {}, at=NOW)
            seen.append((store.count(), store.find_decision("bot-1", "k-lost") is None))
        return Verdict(justified=True, clause=request.reason, unsupported_claims=[], reason="ok")

    decision = make_guard(lost_facts(), judge=StaticJudge(probing)).decide(lost_refund("15.00"))
    assert seen == [(0, True)]
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    # The probe's record, the verdict's (`judge.verdict`), then the decision.
    assert store.verify() == 3


def test_an_exception_a_precedent_extended_can_still_be_lowered_and_keeps_its_citation(
    make_guard, store
):
    def doubts_the_agent(request: JudgeRequest) -> Verdict:
        doubt = request.actor_is_ai
        return Verdict(
            justified=not doubt,
            clause=request.reason,
            unsupported_claims=["no carrier confirmation in the rationale"] if doubt else [],
            reason="doubtful" if doubt else "confirmed",
        )

    guard = make_guard(lost_facts(), judge=StaticJudge(doubts_the_agent))
    granted = guard.decide(lost_refund("60.00", role="manager", actor="boss", key="k-grant"))
    assert granted.outcome is Outcome.ALLOW_EXCEPTION
    precedent = guard.precedents.set(
        granted.id,
        PrecedentSpec(
            scope={"shipment.status": "lost"},
            max_amount=Money.of("60.00", "USD"),
            expires_at=NOW + timedelta(days=30),
            citations=2,
            note="carrier-confirmed losses this month",
        ),
        grantor=Actor(id="boss", role="manager", is_ai=False),
    )

    # The AI may grant only 20.00 itself; the precedent would extend it to 50.00, but the judge
    # doubts the rationale, so a person decides and the citation is not used up.
    proposal = lost_refund("50.00", key="k-cite")
    proposal["rationale"]["precedents"] = [precedent.id]
    decision = guard.decide(proposal)
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.not-justified"
    assert decision.precedents is not None
    assert decision.precedents.applied is None
    assert decision.required_role == "tier1"
    stored = guard.precedents.get(precedent.id)
    assert stored is not None
    assert stored.uses == 0

    # The control: a judge that finds it justified lets the precedent apply and use a citation.
    trusting = StaticJudge(
        Verdict(justified=True, clause="carrier-lost", unsupported_claims=[], reason="ok"),
        model="trusting",
    )
    again = make_guard(lost_facts(), judge=trusting, ids=Counter("b"))
    allowed = again.decide({**proposal, "idempotency_key": "k-cite-2"})
    assert allowed.outcome is Outcome.ALLOW_EXCEPTION
    assert allowed.precedents is not None
    assert allowed.precedents.applied == precedent.id
    assert guard.precedents.get(precedent.id).uses == 1
    assert store.verify() >= 4


def test_a_mock_judge_whose_answers_are_truthy_never_keeps_an_exception(make_guard):
    judge = MagicMock()
    decision = make_guard(lost_facts(), judge=judge).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.failed"
    assert "answered a MagicMock, not an Assessment" in decision.causes[0]
    judge.assess.assert_called_once()
    (request,) = judge.assess.call_args.args
    assert request.reason == "carrier-lost"
    assert request.amount == Money.of("15.00", "USD")


def test_a_judge_that_raises_anything_routes(make_guard):
    def broken(request: JudgeRequest) -> Verdict:
        raise KeyError("verdicts")

    decision = make_guard(lost_facts(), judge=StaticJudge(broken)).decide(lost_refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.causes == ["the LLM judge (static) failed: KeyError: 'verdicts'"]
