"""`@guard.governed(...)` on plain Python functions, sync and async."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from conftest import SHOP_PACK, good_facts, shop_pack_with
from discretion import (
    CallDenied,
    CallRouted,
    ConfigurationError,
    ExecutionError,
    Money,
    Outcome,
    ProposalError,
    StaleApproval,
    load_pack,
)
from discretion.integrations import GovernedResult

from ._integration_support import BOT, MARIA, ledger_kinds


def refunder(guard, ran: list[Any], **options: Any):
    options.setdefault("actor", BOT)

    @guard.governed(action="refund", **options)
    def refund_order(
        order_id: str,
        amount: Decimal,
        customer_id: str = "c-1",
        case_id: str = "case-1",
        idempotency_key: str = "",
    ) -> str:
        ran.append((order_id, amount, idempotency_key))
        return f"refunded {amount} on {order_id}"

    return refund_order


def test_an_allowed_call_returns_the_result_and_runs_once_per_key(guard):
    ran: list[Any] = []
    refund_order = refunder(guard, ran)
    assert refund_order("o-1", Decimal("40.00")) == "refunded 40.00 on o-1"
    assert refund_order("o-1", Decimal("40.00")) == "refunded 40.00 on o-1"
    assert refund_order("o-2", Decimal("40.00")) == "refunded 40.00 on o-2"
    assert [r[:2] for r in ran] == [("o-1", Decimal("40.00")), ("o-2", Decimal("40.00"))]
    assert ran[0][2].startswith("bot-1:refund_order:case-1:")
    assert ledger_kinds(guard).count("execution.started") == 2
    assert refund_order.__name__ == "refund_order"


def test_call_returns_the_decision_with_the_result(guard):
    refund_order = refunder(guard, [])
    result = refund_order.call("o-1", Decimal("40.00"))
    assert isinstance(result, GovernedResult)
    assert result.decision.outcome is Outcome.ALLOW
    assert result.decision.action == "refund"
    assert result.decision.amount == Money.of("40.00", "USD")
    assert result.value == "refunded 40.00 on o-1"
    assert result.has_run
    assert not result.is_replay
    assert refund_order.call("o-1", Decimal("40.00")).is_replay


def test_a_denied_call_raises_and_never_runs(make_guard):
    guard = make_guard(good_facts(**{"customer.fraud_flag": True}))
    ran: list[Any] = []
    refund_order = refunder(guard, ran)
    with pytest.raises(CallDenied, match="Not permitted") as caught:
        refund_order("o-1", Decimal("40.00"))
    assert caught.value.decision.outcome is Outcome.DENY
    assert "fraud-flag" in caught.value.decision.rules
    assert ran == []


def test_a_routed_call_raises_with_the_approval_id_and_runs_after_approval(guard):
    ran: list[Any] = []
    refund_order = refunder(guard, ran)
    with pytest.raises(CallRouted) as caught:
        refund_order("o-1", Decimal("60.00"))
    approval_id = caught.value.approval_id
    assert caught.value.decision.required_role == "tier1"
    assert ran == []
    guard.approvals.approve(approval_id, approver=MARIA, note="ok")
    # The caller retries the same call: the approved call runs, once.
    assert refund_order("o-1", Decimal("60.00")) == "refunded 60.00 on o-1"
    assert refund_order("o-1", Decimal("60.00")) == "refunded 60.00 on o-1"
    assert len(ran) == 1
    assert ran[0][1] == Decimal("60.00")


def mapped_refund(guard, ran: list[str]):
    """`issue_refund`, which the shop pack maps by name, governed with no action given."""

    @guard.governed(actor=BOT)
    def issue_refund(
        amount: str, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        ran.append(amount)
        return f"refunded {amount}"

    return issue_refund


def test_an_approved_call_runs_with_the_edited_amount(guard):
    ran: list[str] = []
    issue_refund = mapped_refund(guard, ran)
    with pytest.raises(CallRouted) as caught:
        issue_refund("60.00", "USD", "c-1", "case-1", "o-1")
    guard.approvals.approve(
        caught.value.approval_id, approver=MARIA, note="ok", amount=Money.of("55.00", "USD")
    )
    assert issue_refund("60.00", "USD", "c-1", "case-1", "o-1") == "refunded 55.00"
    assert issue_refund("60.00", "USD", "c-1", "case-1", "o-1") == "refunded 55.00"
    assert ran == ["55.00"]


def test_a_caller_given_key_names_the_call(guard):
    ran: list[Any] = []
    refund_order = refunder(guard, ran)
    refund_order("o-1", Decimal("40.00"), idempotency_key="pay-77")
    assert ran[0][2] == "bot-1:refund_order:pay-77"
    with pytest.raises(ProposalError, match="already used for a different proposal"):
        refund_order("o-1", Decimal("45.00"), idempotency_key="pay-77")
    assert len(ran) == 1


def test_a_function_the_pack_maps_by_name_needs_no_action(guard):
    ran: list[str] = []
    issue_refund = mapped_refund(guard, ran)
    assert issue_refund("40.00", "USD", "c-1", "case-1", "o-1") == "refunded 40.00"
    with pytest.raises(CallRouted):
        issue_refund("60.00", "USD", "c-1", "case-1", "o-2")
    assert ran == ["40.00"]


def test_a_function_the_pack_neither_maps_nor_lists_is_refused_when_decorated(guard):
    ran: list[str] = []
    with pytest.raises(ConfigurationError, match="tool 'wire_money' is neither mapped"):

        @guard.governed(actor=BOT)
        def wire_money(amount: str) -> None:
            ran.append(amount)

    assert ran == []


def test_a_misspelled_action_is_refused_when_decorated(guard):
    with pytest.raises(ConfigurationError, match="action 'refnd' is not an action of pack"):

        @guard.governed(action="refnd", actor=BOT)
        def pay_back(amount: str, customer_id: str) -> None: ...


def test_declared_fields_must_name_arguments_the_function_takes(guard):
    with pytest.raises(ConfigurationError, match=r"the amount \('value'\) you map"):

        @guard.governed(action="refund", actor=BOT, fields={"amount": "value"})
        def pay_back(amt: str, customer_id: str) -> None: ...


def test_an_id_or_currency_the_mapping_reads_from_elsewhere_is_refused_when_decorated(guard):
    # Decided on the order `order_id` names (none here: the case's), run on `order`.
    with pytest.raises(ConfigurationError, match=r"takes 'order', but action 'refund' is decided"):

        @guard.governed(action="refund", actor=BOT)
        def pay_back(amount: str, customer_id: str, case_id: str, order: str) -> None: ...

    # Decided in the pack's currency from `currency`, paid in `currency_code`.
    with pytest.raises(ConfigurationError, match=r"Pass fields=\{'currency': 'currency_code'\}"):

        @guard.governed(action="refund", actor=BOT)
        def pay_back_fx(amount: str, currency_code: str, customer_id: str) -> None: ...

    @guard.governed(action="refund", actor=BOT, fields={"order": "order"})
    def pay_back_named(amount: str, customer_id: str, case_id: str, order: str) -> None: ...


def test_an_ungoverned_function_runs_untouched(guard):
    @guard.governed(actor=BOT)
    def lookup_order(order_id: str) -> str:
        return f"order {order_id}"

    result = lookup_order.call("o-1")
    assert result.value == "order o-1"
    assert result.decision is None
    assert ledger_kinds(guard) == []


def test_a_call_still_running_is_not_run_again(guard):
    inner: list[ExecutionError] = []

    @guard.governed(action="refund", actor=BOT)
    def refund_order(order_id: str, amount: str, customer_id: str, case_id: str) -> str:
        try:
            refund_order(order_id, amount, customer_id, case_id)
        except ExecutionError as exc:
            inner.append(exc)
        return "done"

    assert refund_order("o-1", "40.00", "c-1", "case-1") == "done"
    assert len(inner) == 1


@pytest.mark.anyio
async def test_async_functions_are_governed_too(guard):
    ran: list[str] = []

    @guard.governed(action="refund", actor=BOT)
    async def refund_order(order_id: str, amount: str, customer_id: str, case_id: str) -> str:
        ran.append(amount)
        return f"refunded {amount}"

    assert await refund_order("o-1", "40.00", "c-1", "case-1") == "refunded 40.00"
    assert await refund_order("o-1", "40.00", "c-1", "case-1") == "refunded 40.00"
    with pytest.raises(CallRouted):
        await refund_order("o-2", "60.00", "c-1", "case-1")
    result = await refund_order.call("o-1", "40.00", "c-1", "case-1")
    assert result.is_replay
    assert ran == ["40.00"]


def test_a_keyed_call_is_a_new_call_and_its_retry_replays(guard):
    ran: list[str] = []
    issue_refund = mapped_refund(guard, ran)
    args = ("20.00", "USD", "c-1", "case-1", "o-1")
    first = issue_refund.call(*args)
    # The identical call again is a retry: it replays, and nothing is decided anew.
    assert issue_refund.call(*args).is_replay
    # A second, legitimate identical refund on the case is marked new by its own key.
    second = issue_refund.keyed("case-1:refund-2").call(*args)
    assert not second.is_replay
    assert second.decision.id != first.decision.id
    assert second.decision.idempotency_key == "issue_refund:case-1:refund-2"
    assert issue_refund.keyed("case-1:refund-2").call(*args).is_replay
    assert ran == ["20.00", "20.00"]
    assert ledger_kinds(guard).count("decision") == 2
    assert ledger_kinds(guard).count("execution.succeeded") == 2


def test_a_keyed_call_that_routes_runs_once_after_approval(guard):
    ran: list[str] = []
    issue_refund = mapped_refund(guard, ran).keyed("case-1:refund-3")
    with pytest.raises(CallRouted) as caught:
        issue_refund("60.00", "USD", "c-1", "case-1", "o-1")
    guard.approvals.approve(caught.value.approval_id, approver=MARIA, note="ok")
    assert issue_refund("60.00", "USD", "c-1", "case-1", "o-1") == "refunded 60.00"
    assert issue_refund("60.00", "USD", "c-1", "case-1", "o-1") == "refunded 60.00"
    assert ran == ["60.00"]


def test_a_key_must_be_text(guard):
    issue_refund = mapped_refund(guard, [])
    with pytest.raises(ProposalError, match="non-empty text"):
        issue_refund.keyed(" ")


def test_an_approval_rechecks_a_call_read_through_a_declared_mapping(make_guard, tmp_path):
    # `action=` reads a function the pack does not map through the mapping it declares: the
    # mapping is on record with the call, and an approval's re-check reads the call through it
    # and decides it as that action, on fresh facts (not as an unknown tool, which it would
    # let through on the strength of the approver's rank alone).
    guard = make_guard()
    ran: list[Any] = []
    refund_order = refunder(guard, ran)
    with pytest.raises(CallRouted) as caught:
        refund_order("o-1", Decimal("60.00"))
    approval_id = caught.value.approval_id
    assert guard.approvals.get(approval_id).proposal["mapping"] == {
        "name": "refund_order",
        "amount": "amount",
        "currency": "currency",
        "customer": "customer_id",
        "case": "case_id",
        "order": "order_id",
    }
    flagged = make_guard(good_facts(**{"customer.fraud_flag": True}))
    with pytest.raises(StaleApproval, match=r"denies refund of USD 60\.00.*fraud-flag"):
        flagged.approvals.approve(approval_id, approver=MARIA, note="ok")
    assert flagged.approvals.get(approval_id).status.value == "pending"
    # On the facts as they were, the re-check decides the refund for the approver's role.
    approved = guard.approvals.approve(approval_id, approver=MARIA, note="ok")
    assert approved.status.value == "approved"
    assert refund_order("o-1", Decimal("60.00")) == "refunded 60.00 on o-1"
    assert len(ran) == 1


def test_an_approval_whose_call_no_longer_reads_as_its_action_is_stale(make_guard, tmp_path):
    guard = make_guard()
    refund_order = refunder(guard, [])
    with pytest.raises(CallRouted) as caught:
        refund_order("o-1", Decimal("60.00"))
    # The pack now has no `refund`: the call it was decided as cannot be checked, never allowed.
    path = tmp_path / "pack.yaml"
    path.write_text(SHOP_PACK.read_text(encoding="utf-8").replace(" refund:", " payback:"))
    renamed = make_guard(policy=load_pack(path))
    with pytest.raises(StaleApproval, match="decided as 'refund' and no longer reads as"):
        renamed.approvals.approve(caught.value.approval_id, approver=MARIA, note="ok")


def test_a_mapped_tool_without_an_amount_is_refused_when_decorated(make_guard, tmp_path):
    # The pack loads (a proposal may carry its amount apart), but through an integration the
    # call is all there is: every call would be refused, so wrapping it is.
    guard = make_guard(policy=shop_pack_with(tmp_path, "        amount: value\n", ""))
    with pytest.raises(ConfigurationError, match="maps it under 'credit' without an amount"):

        @guard.governed(actor=BOT)
        def give_credit(value: str, customer: str, ticket: str) -> None: ...


def test_a_declared_reason_argument_passes_a_mapping_that_refuses_extra_arguments(
    make_guard, tmp_path
):
    pack = shop_pack_with(
        tmp_path,
        "        order: order_id\n    reads:",
        "        order: order_id\n        extra_arguments: refuse\n"
        "    args:\n      reason: {type: string, optional: true}\n    reads:",
    )
    guard = make_guard(policy=pack)
    ran: list[str] = []

    @guard.governed(actor=BOT)
    def issue_refund(
        amount: str,
        currency: str,
        customer_id: str,
        case_id: str,
        order_id: str,
        reason: str = "",
    ) -> str:
        ran.append(reason)
        return f"refunded {amount}"

    assert issue_refund("40.00", "USD", "c-1", "case-1", "o-1", reason="late") == "refunded 40.00"
    assert ran == ["late"]


def test_a_currency_passed_through_kwargs_is_decided_as_the_function_receives_it(guard):
    paid: list[tuple[str, dict[str, Any]]] = []

    @guard.governed(action="refund", actor=BOT)
    def refund_order(amount: str, order_id: str, customer_id: str, **options: Any) -> str:
        paid.append((amount, options))
        return "refunded"

    # Read where the mapping reads the currency, never left to the pack's own.
    with pytest.raises(ProposalError, match="KWD does not match the pack's currency USD"):
        refund_order(amount="45.00", order_id="o-1", customer_id="c-1", currency="KWD")
    assert paid == []

    result = refund_order.call(amount="45.00", order_id="o-1", customer_id="c-1", note="hi")
    assert result.value == "refunded"
    assert paid == [("45.00", {"note": "hi"})]
    [recorded] = [r for r in guard.store.export() if r["kind"] == "decision"]
    assert recorded["body"]["proposal"]["tool"]["arguments"]["note"] == "hi"


def test_values_a_star_args_parameter_gathers_are_refused(guard):
    ran: list[Any] = []

    @guard.governed(action="refund", actor=BOT)
    def refund_order(amount: str, order_id: str, *notes: str, customer_id: str = "c-1") -> str:
        ran.append(notes)
        return "refunded"

    with pytest.raises(ProposalError, match=r"\*notes takes have no name"):
        refund_order("40.00", "o-1", "USD")
    assert ran == []
    assert refund_order("40.00", "o-1") == "refunded"


def test_a_decided_amount_reaches_the_function_in_the_type_it_was_passed(guard):
    seen: list[Any] = []

    @guard.governed(action="refund", actor=BOT)
    def refund_order(order_id: str, amount: Decimal, customer_id: str = "c-1") -> str:
        seen.append(amount)
        return f"refunded {amount * 2}"

    # Written out as decided ("41.00"), and handed over as a Decimal, not as that text.
    assert refund_order("o-1", Decimal("41")) == "refunded 82.00"
    assert seen == [Decimal("41.00")]
    assert type(seen[0]) is Decimal


class PaymentsClient:
    """A connection: no JSON form, and a new one after each reconnect."""


def test_an_argument_with_no_json_form_keys_the_call_by_its_type(guard):
    """A retry with a new client object is the same call: it replays, it does not pay again."""
    paid: list[str] = []

    @guard.governed(action="refund", actor=BOT)
    def refund_order(
        order_id: str, amount: Decimal, client: PaymentsClient, customer_id: str = "c-1"
    ) -> str:
        paid.append(order_id)
        return "ok"

    refund_order("o-1", Decimal("40.00"), PaymentsClient())
    refund_order("o-1", Decimal("40.00"), PaymentsClient())
    assert paid == ["o-1"]
    [decision] = [r for r in guard.store.records() if r.kind == "decision"]
    recorded = json.loads(decision.body)["proposal"]["tool"]["arguments"]["client"]
    assert recorded == f"<object {PaymentsClient.__module__}.PaymentsClient>"


class Sku:
    """A value with no JSON form, but text of its own."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __str__(self) -> str:
        return self.code


def test_an_argument_with_text_of_its_own_keys_the_call_by_that_text(guard):
    shipped: list[str] = []

    @guard.governed(action="refund", actor=BOT)
    def refund_item(order_id: str, amount: Decimal, item: Sku, customer_id: str = "c-1") -> str:
        shipped.append(str(item))
        return f"ok {item}"

    assert refund_item("o-1", Decimal("10.00"), Sku("SKU-A")) == "ok SKU-A"
    assert refund_item("o-1", Decimal("10.00"), Sku("SKU-B")) == "ok SKU-B"
    assert shipped == ["SKU-A", "SKU-B"]
