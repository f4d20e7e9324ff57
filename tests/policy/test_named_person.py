"""A review that leaves a case to one named person, and rules that read `actor.id`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError, PolicyError, StaleApproval

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# "Goodwill credits are granted by the account's own manager, no other; a director may stand
# in. Nobody grants a credit on an account they hold themselves."
PACK = """
pack: named
currency: USD
context:
  customer.account_manager: {type: string, nullable: true}
  customer.staff_id: {type: string, nullable: true}
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "50.00", exception: "50.00"}
  - id: account_manager
    authority:
      credit: {standard: "500.00", exception: "500.00"}
  - id: director
    authority:
      credit: {standard: "5000.00", exception: "5000.00"}
actions:
  credit:
    tools:
      - name: credit_account
        amount: amount
        customer: customer_id
    reads: [customer.account_manager, customer.staff_id]
    hard_limits:
      - id: own-account
        when: "!actor.is_ai && has(customer.staff_id) && actor.id == customer.staff_id"
    standard:
      - id: small-credit
        when: "true"
        max_amount: "200000"
    exceptions:
      - id: goodwill
    reviews:
      - id: goodwill.account-manager
        when: rationale.reason == 'goodwill'
        by: account_manager
        person: customer.account_manager
"""

FACTS: dict[str, Any] = {"customer.account_manager": "am-ana", "customer.staff_id": None}

BOT = Actor(id="bot", role="ai_agent")
ANA = Actor(id="am-ana", role="account_manager", is_ai=False)
BOB = Actor(id="am-bob", role="account_manager", is_ai=False)
DEE = Actor(id="dir-dee", role="director", is_ai=False)


def guard(tmp_path: Path, text: str = PACK, **facts: Any) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    context = StaticContextProvider({**FACTS, **facts})
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    return Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)


def goodwill(amount: str = "120.00", actor: Actor = BOT, key: str = "k") -> dict[str, Any]:
    return {
        "actor": actor.model_dump(),
        "tool": {"name": "credit_account", "arguments": {"amount": amount, "customer_id": "c"}},
        "rationale": {"reason": "goodwill", "text": "a loyal customer hit twice by outages"},
        "idempotency_key": key,
    }


def test_a_review_naming_a_person_routes_to_their_role_and_names_them(tmp_path: Path) -> None:
    decision = guard(tmp_path).decide(goodwill())

    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "account_manager"
    assert "goodwill.account-manager" in decision.rules
    assert (
        "goodwill.account-manager: only 'am-ana' (customer.account_manager) of role"
        " 'account_manager' may decide it"
    ) in decision.causes


@pytest.mark.parametrize(
    ("actor", "outcome", "role"),
    [
        (BOB, Outcome.ROUTE, "account_manager"),  # another of the role is not the review
        (ANA, Outcome.ALLOW, None),  # the person named decides by the rules
        (DEE, Outcome.ALLOW, None),  # a rank above stands in, without `only`
    ],
)
def test_only_the_person_named_of_the_role_is_the_review(
    tmp_path: Path, actor: Actor, outcome: Outcome, role: str | None
) -> None:
    decision = guard(tmp_path).decide(goodwill(actor=actor))

    assert (decision.outcome, decision.required_role) == (outcome, role)


def test_another_person_of_the_role_cannot_approve_what_a_review_leaves_to_one(
    tmp_path: Path,
) -> None:
    g = guard(tmp_path)
    routed = g.decide(goodwill())

    refused = "only 'am-ana', as role 'account_manager', may approve"
    with pytest.raises(ApprovalError, match=refused):
        g.approvals.approve(routed.id, approver=BOB, note="I know this customer")

    assert g.approvals.get(routed.id).status is ApprovalStatus.PENDING
    approved = g.approvals.approve(routed.id, approver=ANA, note="my account, outages confirmed")
    assert approved.status is ApprovalStatus.APPROVED


def test_with_only_no_rank_above_stands_in_for_the_person(tmp_path: Path) -> None:
    text = PACK.replace(
        "        person: customer.account_manager\n",
        "        person: customer.account_manager\n        only: true\n",
    )
    g = guard(tmp_path, text)

    assert g.decide(goodwill(actor=DEE, key="d")).required_role == "account_manager"
    routed = g.decide(goodwill())
    with pytest.raises(ApprovalError, match="only 'am-ana'"):
        g.approvals.approve(routed.id, approver=DEE, note="I outrank them")
    assert g.approvals.approve(routed.id, approver=ANA, note="mine").status is (
        ApprovalStatus.APPROVED
    )


def test_a_review_naming_no_one_routes_and_cannot_be_approved(tmp_path: Path) -> None:
    g = guard(tmp_path, **{"customer.account_manager": None})
    routed = g.decide(goodwill())

    assert routed.outcome is Outcome.ROUTE
    assert "discretion.evaluation-error" in routed.rules
    with pytest.raises(StaleApproval, match="cannot be decided from code now"):
        g.approvals.approve(routed.id, approver=ANA, note="I will take it")


def test_a_blank_person_names_no_one(tmp_path: Path) -> None:
    decision = guard(tmp_path, **{"customer.account_manager": "  "}).decide(goodwill(actor=BOB))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.evaluation-error"]
    assert any("names no one" in cause for cause in decision.causes)


def test_a_hard_limit_on_the_actors_id_denies_their_own_case(tmp_path: Path) -> None:
    g = guard(tmp_path, **{"customer.staff_id": "am-bob"})

    own = g.decide({**goodwill(actor=BOB, key="own"), "rationale": {}})
    assert (own.outcome, own.rules) == (Outcome.DENY, ["own-account"])


def test_an_approver_a_hard_limit_forbids_is_refused_and_another_may_approve(
    tmp_path: Path,
) -> None:
    g = guard(tmp_path, **{"customer.staff_id": "dir-dee"})
    routed = g.decide({**goodwill(amount="300.00"), "rationale": {}})
    assert routed.required_role == "account_manager"

    with pytest.raises(ApprovalError, match="forbids 'dir-dee' to approve"):
        g.approvals.approve(routed.id, approver=DEE, note="fine")
    assert g.approvals.get(routed.id).status is ApprovalStatus.PENDING
    assert g.approvals.approve(routed.id, approver=BOB, note="fine").status is (
        ApprovalStatus.APPROVED
    )


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            '        when: "true"\n        max_amount: "200000"\n',
            '        when: "actor.id != \'x\'"\n        max_amount: "200000"\n',
            "standard rule 'small-credit' reads actor.id",
        ),
        (
            "      - id: goodwill\n",
            '      - id: goodwill\n        max_amount: "size(actor.id) * 100"\n',
            "exception rule 'goodwill' reads actor.id",
        ),
        (
            "        by: account_manager\n        person: customer.account_manager\n",
            "        person: customer.account_manager\n",
            "person names no role",
        ),
        (
            "        person: customer.account_manager\n",
            "        person: size(customer.account_manager)\n",
            "gives INT, expected string",
        ),
        # Who decides is never the proposal's to say.
        (
            "        person: customer.account_manager\n",
            "        person: actor.id\n",
            "reads what the proposal supplies",
        ),
        (
            "        person: customer.account_manager\n",
            "        person: \"rationale.reason == '' ? customer.account_manager : 'x'\"\n",
            "reads what the proposal supplies",
        ),
    ],
)
def test_a_pack_misusing_the_actors_id_or_a_person_is_refused_at_load(
    tmp_path: Path, before: str, after: str, message: str
) -> None:
    assert before in PACK
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace(before, after), encoding="utf-8")

    with pytest.raises(PolicyError, match=message) as info:
        load_pack(path)
    assert info.value.line is not None


def test_a_review_that_routed_a_case_holds_at_its_approval_whatever_it_reads(
    tmp_path: Path,
) -> None:
    # "What the assistant asks as goodwill goes to the account's own manager": read again with
    # the approver as the actor, the review would not hold, and any manager could approve.
    text = PACK.replace(
        "        when: rationale.reason == 'goodwill'\n",
        "        when: actor.is_ai && rationale.reason == 'goodwill'\n        only: true\n",
    )
    g = guard(tmp_path, text)
    routed = g.decide(goodwill("40.00"))
    assert routed.required_role == "account_manager"

    for other in (BOB, DEE):
        with pytest.raises(ApprovalError, match="only 'am-ana', as role 'account_manager'"):
            g.approvals.approve(routed.id, approver=other, note="mine now")
    assert g.approvals.approve(routed.id, approver=ANA, note="mine").status is (
        ApprovalStatus.APPROVED
    )


def test_an_only_review_beside_one_of_a_higher_rung_says_no_one_person_can_approve_it(
    tmp_path: Path,
) -> None:
    text = PACK.replace(
        "        person: customer.account_manager\n",
        "        person: customer.account_manager\n        only: true\n"
        '      - {id: big-goodwill, when: "amount > 10000", by: director}\n',
    )
    decision = guard(tmp_path, text).decide(goodwill("120.00"))

    assert decision.required_role == "account_manager"
    assert (
        "only 'account_manager' decides it, and a review needs director or above: no one person"
        " can approve it"
    ) in decision.causes


def test_a_review_reads_the_case_as_asked_even_when_it_first_failed_closed(
    tmp_path: Path,
) -> None:
    # The case system was down: the case routed as context unavailable, no review read. Its
    # approval reads the reviews with the agent that asked as the actor, not the approver.
    text = PACK.replace(
        "        when: rationale.reason == 'goodwill'\n",
        "        when: actor.is_ai && rationale.reason == 'goodwill'\n",
    )
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    facts: dict[str, Any] = dict(FACTS)

    class Flaky:
        in_process = True
        down = True

        def fetch(self, request: Any, /) -> dict[str, Any]:
            if self.down:
                raise TimeoutError("case system did not answer")
            return dict(facts)

    context = Flaky()
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    g = Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)
    routed = g.decide(goodwill("120.00"))
    assert routed.rules == ["discretion.context-unavailable"]
    context.down = False

    with pytest.raises(ApprovalError, match="only 'am-ana', as role 'account_manager'"):
        g.approvals.approve(routed.id, approver=BOB, note="mine now")
    assert g.approvals.approve(routed.id, approver=ANA, note="mine").status is (
        ApprovalStatus.APPROVED
    )
