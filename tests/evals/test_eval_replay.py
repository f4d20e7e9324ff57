"""Replay and shadow mode: what another pack would decide on the recorded facts; nothing written."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from conftest import Counter, FakeClock
from discretion import Guard, SqlStore, Verdict, load_pack
from discretion.context import SqliteCaseStore
from discretion.errors import LedgerIntegrityError, StoreError
from discretion.evals import replay, shadow_report
from discretion.policy import ToolSpec
from discretion.shadow import SHADOW_RECORD
from discretion.store._schema import ledger

from .helpers import (
    ACME_CASES,
    ACME_PACK,
    CUMULATIVE_REFUNDS,
    DESK,
    agent_refund,
    copy_acme_pack,
    invoke,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# The AI's standard refund limit, lowered from 200.00 to 100.00.
LOWER_AI_REFUNDS = {
    "old": 'refund:              {standard: "200.00"',
    "new": 'refund:              {standard: "100.00"',
}


def _refund(amount: str, key: str, *, order: str = "A-50007", reason: str | None = None) -> dict:
    customer, case = {
        "A-50007": ("C-1007", "K-70007"),
        "A-50003": ("C-1003", "K-70003"),
        "A-50012": ("C-1012", "K-70012"),
    }[order]
    return {
        "actor": {"id": "acme-assist", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "order_id": order,
                "customer_id": customer,
                "case_id": case,
                "amount": amount,
                "currency": "USD",
            },
        },
        "rationale": {"reason": reason, "text": "customer asked"},
        "idempotency_key": key,
    }


PROPOSALS = [
    _refund("64.99", "k-earbuds", order="A-50003"),  # allow; stays allow (<= 100)
    _refund("150.00", "k-150"),  # allow -> route tier1
    _refund("200.00", "k-200"),  # allow -> route tier1
    _refund("200.01", "k-200.01"),  # route tier1 -> route tier1 (unchanged)
    _refund("89.99", "k-lost", order="A-50012", reason="refund.carrier-lost"),  # exception stays
    _refund("100.00", "k-100"),  # exactly the new limit: stays allow
]


@pytest.fixture(scope="module")
def single_calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The acme pack judging each refund alone: these tests replay several on one order."""
    folder = tmp_path_factory.mktemp("single")
    return copy_acme_pack(folder, old=CUMULATIVE_REFUNDS, new="", file="refund.yaml")


@pytest.fixture(autouse=True)
def _single(single_calls: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "BASE", single_calls)


BASE = ACME_PACK


def candidate_pack(folder: Path, **change: Any) -> Path:
    """The pack the recorded decisions were made under, with one change."""
    return copy_acme_pack(folder, base=BASE, **change)


def acme_guard(store: SqlStore, **options: Any) -> Guard:
    """A guard on the acme pack and case database, at NOW unless another clock is given."""
    options.setdefault("clock", FakeClock(NOW))
    return Guard(
        load_pack(BASE),
        store=store,
        context=SqliteCaseStore.from_sql(ACME_CASES),
        **options,
    )


@pytest.fixture
def recorded(store: SqlStore) -> tuple[SqlStore, dict[str, str]]:
    """A ledger with the proposals decided under the acme pack, an hour apart."""
    clock = FakeClock(NOW)
    guard = acme_guard(store, clock=clock, ids=Counter())
    ids = {}
    for proposal in PROPOSALS:
        ids[proposal["idempotency_key"]] = guard.decide(proposal).id
        clock.advance(hours=1)
    return store, ids


def _head(store: SqlStore) -> dict[int, tuple[int, str]]:
    return store.heads()


def test_lowering_a_limit_reports_exactly_the_decisions_that_change(recorded, tmp_path):
    store, ids = recorded
    before = _head(store)
    candidate = candidate_pack(tmp_path, **LOWER_AI_REFUNDS)

    report = replay(store, candidate)

    assert report.replayed == len(PROPOSALS)
    assert {c.decision_id for c in report.changes} == {ids["k-150"], ids["k-200"]}
    for change in report.changes:
        assert change.before.outcome == "allow"
        assert (change.after.outcome, change.after.required_role) == ("route", "tier1")
        assert "discretion.standard-authority" in change.after.rules
    assert report.transitions == {"allow -> route to tier1": 2}
    exposure = {(e.action, e.reason): e for e in report.exposure}
    standard = exposure[("refund", "(standard)")]
    assert (standard.before, standard.after) == (Decimal("514.99"), Decimal("164.99"))
    assert standard.delta == Decimal("-350.00")
    lost = exposure[("refund", "refund.carrier-lost")]
    assert lost.delta == Decimal(0)
    assert report.exposure_delta() == {"USD": Decimal("-350.00")}
    # Nothing was written to the ledger that was replayed.
    assert _head(store) == before
    assert store.verify() == sum(seq for seq, _ in before.values())


def test_replay_under_the_same_pack_changes_nothing(recorded):
    store, _ = recorded
    report = replay(store, BASE)
    assert report.replayed == len(PROPOSALS)
    assert report.changes == ()
    assert all(e.delta == 0 for e in report.exposure)


def test_replay_since_only_reports_later_decisions(recorded, tmp_path):
    store, ids = recorded
    candidate = candidate_pack(tmp_path, **LOWER_AI_REFUNDS)
    # The 150.00 refund was decided at 13:00, the 200.00 refund at 14:00.
    report = replay(store, candidate, since=NOW + timedelta(hours=2))
    assert report.replayed == len(PROPOSALS) - 2
    assert [c.decision_id for c in report.changes] == [ids["k-200"]]


def test_a_fact_the_snapshot_lacks_routes_and_is_named(recorded, tmp_path):
    store, _ = recorded
    # The candidate's refund reads a fact the recorded snapshots never held.
    candidate = candidate_pack(
        tmp_path,
        old="      - exposure.all_count_30d\n\n    hard_limits:",
        new="      - exposure.all_count_30d\n      - case.severity\n\n    hard_limits:",
        file="refund.yaml",
    )
    report = replay(store, candidate)
    # Every one changes, 200.01 too: routed to tier1 already, it now routes for the fact.
    assert len(report.changes) == len(PROPOSALS)
    for change in report.changes:
        assert change.after.outcome == "route"
        assert "discretion.context-unavailable" in change.after.rules
        assert "case.severity" in (change.after.detail or "")


def test_replay_refuses_a_ledger_that_does_not_verify(recorded):
    store, _ = recorded
    with store.engine.begin() as connection:
        connection.execute(update(ledger).where(ledger.c.seq == 2).values(body='{"edited":1}'))
    with pytest.raises(LedgerIntegrityError):
        replay(store, BASE)


def test_replay_cli_prints_changes_and_writes_json(tmp_path):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(db)
    guard = acme_guard(store)
    for proposal in PROPOSALS:
        guard.decide(proposal)
    store.close()
    candidate = candidate_pack(tmp_path, **LOWER_AI_REFUNDS)
    out = tmp_path / "replay.json"

    result = invoke("replay", "--pack", str(candidate), "--db", db, "--json", str(out))

    assert result.exit_code == 0, result.stderr
    assert "2 would change, 4 would not" in result.stdout
    assert "allow -> route to tier1" in result.stdout
    assert "-350.00" in result.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["changed"] == 2
    assert data["exposure_delta"] == {"USD": "-350.00"}
    assert invoke("ledger", "verify", "--db", db).exit_code == 0

    since = invoke("replay", "--pack", str(candidate), "--db", db, "--since", "2026-11-27")
    assert since.exit_code == 0
    assert "0 decisions since" in since.stdout
    bad = invoke("replay", "--db", db)
    assert bad.exit_code == 2
    assert "--pack" in bad.stderr


def test_shadow_pack_records_what_it_would_decide_beside_each_decision(store, tmp_path):
    candidate = candidate_pack(tmp_path, **LOWER_AI_REFUNDS)
    guard = acme_guard(store, ids=Counter(), shadow=candidate)

    enforced = guard.decide(_refund("150.00", "k-150"))
    within = guard.decide(_refund("64.99", "k-earbuds", order="A-50003"))
    again = guard.decide(_refund("150.00", "k-150"))  # an idempotent retry: no second shadow

    assert enforced.outcome.value == "allow"
    assert again.id == enforced.id
    shadows = [r for r in store.export() if r["kind"] == SHADOW_RECORD]
    assert [r["subject_id"] for r in shadows] == [enforced.id, within.id]
    would = shadows[0]["body"]["decision"]
    assert (would["outcome"], would["required_role"]) == ("route", "tier1")
    assert would["context_digest"] == enforced.context_digest
    assert shadows[0]["body"]["version"] != enforced.policy_version
    assert store.verify() == 4

    report = shadow_report(store)
    assert report.mode == "shadow"
    assert report.replayed == 2
    assert [c.decision_id for c in report.changes] == [enforced.id]
    assert report.exposure_delta() == {"USD": Decimal("-150.00")}


def test_shadow_failure_is_recorded_and_never_changes_the_enforced_decision(store, tmp_path):
    # A candidate in euros cannot decide a USD proposal: the shadow records why.
    candidate = candidate_pack(tmp_path, old="currency: USD", new="currency: EUR", file="pack.yaml")
    guard = acme_guard(store, shadow=candidate)
    decision = guard.decide(_refund("64.99", "k-earbuds", order="A-50003"))
    assert decision.outcome.value == "allow"
    (shadow,) = [r for r in store.export() if r["kind"] == SHADOW_RECORD]
    assert "currency" in shadow["body"]["error"]
    assert shadow_report(store).changes[0].after.outcome == "error"


def test_shadow_report_without_shadow_records_says_so(recorded):
    store, _ = recorded
    with pytest.raises(StoreError, match="no shadow decisions"):
        shadow_report(store)


def test_replay_cli_reads_shadow_records(tmp_path):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(db)
    guard = acme_guard(store, shadow=candidate_pack(tmp_path, **LOWER_AI_REFUNDS))
    guard.decide(_refund("150.00", "k-150"))
    store.close()
    result = invoke("replay", "--shadow", "--db", db)
    assert result.exit_code == 0, result.stderr
    assert "shadow pack" in result.stdout
    assert "1 would change" in result.stdout


# The AI's standard refund limit, raised from 200.00 to 300.00.
RAISE_AI_REFUNDS = {
    "old": 'refund:              {standard: "200.00"',
    "new": 'refund:              {standard: "300.00"',
}
# Tier 1's standard refund limit, lowered from 400.00 to 150.00.
LOWER_TIER1_REFUNDS = {
    "old": 'refund:              {standard: "400.00"',
    "new": 'refund:              {standard: "150.00"',
}


@pytest.fixture
def ledger_db(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(db)
    guard = acme_guard(store)
    for proposal in PROPOSALS:
        guard.decide(proposal)
    store.close()
    return db


def test_raising_a_limit_loosens_and_fails_the_loosen_gate(ledger_db, tmp_path):
    candidate = candidate_pack(tmp_path, **RAISE_AI_REFUNDS)
    out = tmp_path / "replay.json"

    plain = invoke("replay", "--pack", str(candidate), "--db", ledger_db)
    gated = invoke(
        "replay", "--pack", str(candidate), "--db", ledger_db, "--fail-on-loosen", "--json", out
    )

    assert plain.exit_code == 0, plain.stderr
    assert gated.exit_code == 1
    assert "1 would loosen" in gated.stdout
    assert "the candidate loosens 1 decision(s)" in gated.stderr
    assert "moves more money without a person (refund (standard) +100.01 USD)" in gated.stderr
    assert "exposure allowed without a person" in gated.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["loosened"] == 1
    # The 200.01 refund is now allowed; the 100.00 after it on the same order then goes over
    # the order's total and is denied, which is no loosening.
    moves = {(c["before"]["outcome"], c["after"]["outcome"]): c["loosens"] for c in data["changes"]}
    assert moves == {("route", "allow"): True, ("allow", "deny"): False}


def test_tightening_passes_the_loosen_gate_and_fails_the_change_gate(ledger_db, tmp_path):
    candidate = candidate_pack(tmp_path, **LOWER_AI_REFUNDS)

    loosen = invoke("replay", "--pack", str(candidate), "--db", ledger_db, "--fail-on-loosen")
    change = invoke("replay", "--pack", str(candidate), "--db", ledger_db, "--fail-on-change")

    assert loosen.exit_code == 0, loosen.stderr
    assert "0 would loosen" in loosen.stdout
    assert change.exit_code == 1
    assert "the candidate changes 2 decision(s)" in change.stderr


def test_the_same_pack_passes_both_gates(ledger_db):
    result = invoke(
        "replay", "--pack", str(BASE), "--db", ledger_db, "--fail-on-loosen", "--fail-on-change"
    )
    assert result.exit_code == 0, result.stderr


def test_a_route_to_a_lower_role_loosens_and_one_to_a_higher_role_does_not(store, tmp_path):
    stricter = candidate_pack(tmp_path / "stricter", **LOWER_TIER1_REFUNDS)
    guard = Guard(
        load_pack(stricter),
        store=store,
        context=SqliteCaseStore.from_sql(ACME_CASES),
        clock=FakeClock(NOW),
        ids=Counter(),
    )
    routed = guard.decide(_refund("200.01", "k-200.01"))
    assert (routed.outcome.value, routed.required_role) == ("route", "tier2")

    back = replay(store, BASE)
    [change] = back.changes
    assert change.after.required_role == "tier1"
    assert change.loosens
    assert back.loosened == (change,)
    assert back.is_looser

    # The other way round on a ledger recorded under the base pack: tier1 becomes tier2.
    forward_store = SqlStore(f"sqlite:///{tmp_path / 'forward.db'}")
    acme_guard(forward_store, ids=Counter()).decide(_refund("200.01", "k-200.01"))
    forward = replay(forward_store, stricter)
    forward_store.close()
    [change] = forward.changes
    assert change.after.required_role == "tier2"
    assert not change.loosens
    assert not forward.is_looser
    assert forward.is_changed


def _paid_back() -> tuple[ToolSpec, dict]:
    """A 150.00 refund through `pay_back`, a function governed with `action="refund"` and the
    mapping its integration declares."""
    declared = ToolSpec(
        name="pay_back",
        amount="amount",
        currency="currency",
        customer="customer_id",
        case="case_id",
        order="order_id",
    )
    proposal = _refund("150.00", "k-pay-back")
    proposal["tool"]["name"] = "pay_back"
    proposal["action"] = "refund"
    return declared, proposal


def test_replay_reads_a_call_through_the_mapping_it_was_decided_with(store, tmp_path):
    # A function governed with `action=` is read through the mapping its integration declared;
    # a replay reads it the same way, so it is replayed as that action, not as an unknown tool.
    guard = acme_guard(store, ids=Counter())
    declared, proposal = _paid_back()
    decided = guard.pipeline.decide(proposal, mapping=declared)
    assert decided.outcome.value == "allow"
    assert replay(store, BASE).changes == ()
    report = replay(store, candidate_pack(tmp_path, **LOWER_AI_REFUNDS))
    [change] = report.changes
    assert change.decision_id == decided.id
    assert (change.after.outcome, change.after.required_role) == ("route", "tier1")
    assert "discretion.standard-authority" in change.after.rules


def test_a_shadow_pack_reads_a_call_through_the_mapping_it_was_decided_with(store, tmp_path):
    candidate = candidate_pack(tmp_path, **LOWER_AI_REFUNDS)
    guard = acme_guard(store, ids=Counter(), shadow=candidate)
    declared, proposal = _paid_back()
    enforced = guard.pipeline.decide(proposal, mapping=declared)
    assert enforced.outcome.value == "allow"
    [shadow] = [r for r in store.export() if r["kind"] == SHADOW_RECORD]
    would = shadow["body"]["decision"]
    # Decided as the refund it is, under the candidate's lower limit: not as an unknown tool.
    assert (would["outcome"], would["required_role"]) == ("route", "tier1")
    assert "discretion.standard-authority" in would["rules"]


# Two approvals on refunds above 150.00, added to the refund action.
TWO_APPROVALS_ON_REFUNDS = {
    "file": "refund.yaml",
    "old": "    tools:\n      - name: issue_refund\n",
    "new": '    two_approvals_above: "150.00"\n    tools:\n      - name: issue_refund\n',
}


def test_a_route_that_loses_its_second_approval_loosens(store, tmp_path):
    """The same rung without the two approvals it was routed under: one person now grants it."""
    stricter = candidate_pack(tmp_path / "stricter", **TWO_APPROVALS_ON_REFUNDS)
    guard = Guard(
        load_pack(stricter),
        store=store,
        context=SqliteCaseStore.from_sql(ACME_CASES),
        clock=FakeClock(NOW),
        ids=Counter(),
    )
    routed = guard.decide(_refund("200.01", "k-two"))
    assert (routed.outcome.value, routed.required_role) == ("route", "tier1")
    assert "discretion.two-approvals" in routed.rules

    back = replay(store, BASE)

    [change] = back.changes
    assert (change.before.required_role, change.after.required_role) == ("tier1", "tier1")
    assert "discretion.two-approvals" not in change.after.rules
    assert change.loosens
    assert back.is_looser
    assert back.is_changed
    # Adding it back is a change, and no loosening.
    assert replay(store, stricter).changes == ()


def test_a_judges_verdict_a_replay_cannot_repeat_is_no_change(tmp_path):
    """Replayed without the judge, a case the judge routed routes to the same rung for want of
    one: the same pack neither changes nor loosens it."""
    from discretion.context import StaticContextProvider
    from discretion.judge import StaticJudge
    from judge.helpers import JUDGED_PACK, lost_facts, lost_refund

    store = SqlStore(f"sqlite:///{tmp_path / 'judged.db'}")
    verdict = Verdict(justified=False, clause="carrier-lost", unsupported_claims=[], reason="no")
    guard = Guard(
        load_pack(JUDGED_PACK),
        store=store,
        context=StaticContextProvider(lost_facts()),
        clock=FakeClock(NOW),
        ids=Counter(),
        judge=StaticJudge(verdict),
    )
    routed = guard.decide(lost_refund("15.00"))
    assert "discretion.judge.not-justified" in routed.rules

    report = replay(store, JUDGED_PACK)

    assert report.changes == ()
    assert not report.is_looser


def desk_ledger(tmp_path: Path, text: str = DESK) -> tuple[Guard, FakeClock, SqlStore, Path]:
    """A guard on `text` (the desk pack by default) over a ledger file, at a clock to move."""
    from discretion.context import StaticContextProvider

    pack = tmp_path / "desk.yaml"
    pack.write_text(text, encoding="utf-8")
    clock = FakeClock(NOW)
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    guard = Guard(load_pack(pack), store=store, context=StaticContextProvider({}), clock=clock)
    return guard, clock, store, pack


def test_a_replay_approves_again_what_people_approved(tmp_path):
    # An agent's 80.00 routed and approved by a person fills its day: its 30.00 after that
    # routed on the budget. Replayed under the same pack, the approval is made again, so
    # nothing changes; under a pack where the approver's role no longer covers it, it is not.
    from discretion import Actor

    guard, clock, store, pack = desk_ledger(tmp_path)
    call = agent_refund

    routed = guard.decide(call("80.00", "a"))
    clock.advance(minutes=10)
    guard.approvals.approve(
        routed.id, approver=Actor(id="tina", role="tier1", is_ai=False), note="ok"
    )
    clock.advance(minutes=10)
    after = guard.decide(call("30.00", "b"))
    assert (after.outcome.value, after.rules[-1]) == ("route", "ai-daily")

    same = replay(store, pack)
    assert same.changes == ()

    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(
        DESK.replace('refund: {standard: "500.00"}', 'refund: {standard: "60.00"}'),
        encoding="utf-8",
    )
    # tier1 may no longer approve 80.00: its approval is not made again, the day stays empty
    # and the 30.00 is allowed (a loosening the gate reports).
    changed = replay(store, stricter)
    [change] = [c for c in changed.changes if c.idempotency_key == "b"]
    assert (change.before.outcome, change.after.outcome) == ("route", "allow")
    store.close()


def test_a_replay_rejects_again_what_people_rejected(tmp_path):
    # What the agent asked today counts what is pending, not what a person rejected: replayed,
    # the rejection is made again, or the 30.00 after it would read the 80.00 as pending.
    from discretion import Actor

    text = (
        DESK.replace(
            "actions:\n",
            "totals:\n  actor.asked_today: {per: actor, window: 1d}\nactions:\n",
        )
        .replace('        when: "true"\n', "        when: amount + actor.asked_today <= 10000\n")
        .replace("    standard:\n", "    reads: [actor.asked_today]\n    standard:\n")
    )
    guard, clock, store, pack = desk_ledger(tmp_path, text)
    call = agent_refund

    routed = guard.decide(call("80.00", "a"))
    assert routed.outcome.value == "route"
    clock.advance(minutes=10)
    guard.approvals.reject(
        routed.id, approver=Actor(id="tina", role="tier1", is_ai=False), note="no"
    )
    clock.advance(minutes=10)
    assert guard.decide(call("30.00", "b")).outcome.value == "allow"

    assert replay(store, pack).changes == ()
    store.close()


def test_a_replay_escalates_again_what_people_escalated(tmp_path):
    # Escalated to tier2 after an hour and approved there nine hours later, past tier1's 4h:
    # replayed without the escalation, the case would have expired before its approval.
    from discretion import Actor

    guard, clock, store, pack = desk_ledger(
        tmp_path, DESK.replace("  - id: tier1\n", "  - id: tier1\n    approval_sla: 4h\n")
    )
    call = agent_refund

    routed = guard.decide(call("80.00", "a"))
    clock.advance(hours=1)
    guard.approvals.escalate(
        routed.id, approver=Actor(id="tina", role="tier1", is_ai=False), note="above me"
    )
    clock.advance(hours=9)
    guard.approvals.approve(
        routed.id, approver=Actor(id="tom", role="tier2", is_ai=False), note="ok"
    )
    clock.advance(minutes=10)
    assert guard.decide(call("30.00", "b")).rules[-1] == "ai-daily"

    assert replay(store, pack).changes == ()
    store.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--since", "0001-01-01"], "is before any ledger"),
        (["--json", "/nonexistent-folder/replay.json"], "cannot write /nonexistent-folder"),
    ],
)
def test_replay_options_it_cannot_use_are_usage_errors(ledger_db, extra, message):
    result = invoke("replay", "--pack", str(ACME_PACK), "--db", ledger_db, *extra)
    assert result.exit_code == 2
    assert message in result.stderr
