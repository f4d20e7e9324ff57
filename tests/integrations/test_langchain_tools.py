"""`Guard.wrap_tools`: governed langchain-core tools."""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, InjectedToolArg, ToolException, tool
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conftest import good_facts, shop_pack_with
from discretion import ConfigurationError, Guard, Money, Outcome, ProposalError, load_pack
from discretion.context import StaticContextProvider
from discretion.integrations import GovernedTool, tool_callables

from ._integration_support import (
    BOT,
    MARIA,
    async_refund_tool,
    camel_refund_tool,
    ledger_kinds,
    refund_args,
)


class Tools:
    """The shop's tools, counting what actually ran."""

    def __init__(self) -> None:
        self.refunds: list[dict[str, Any]] = []
        self.lookups: list[str] = []
        outer = self

        @tool
        def issue_refund(
            amount: str,
            currency: str,
            customer_id: str,
            case_id: str,
            order_id: str,
            idempotency_key: Annotated[str, InjectedToolArg] = "",
        ) -> str:
            """Refund an order to the customer's card."""
            outer.refunds.append({"amount": amount, "key": idempotency_key})
            return f"refunded {currency} {amount} (ref rf-{len(outer.refunds)})"

        @tool
        def lookup_order(order_id: str) -> str:
            """Look up an order's status."""
            outer.lookups.append(order_id)
            return f"order {order_id}: delivered"

        self.issue_refund = issue_refund
        self.lookup_order = lookup_order


THREAD = {"configurable": {"thread_id": "t-1"}}


def call(args: dict[str, Any], call_id: str = "call-1", name: str = "issue_refund") -> dict:
    return {"type": "tool_call", "name": name, "args": args, "id": call_id}


@pytest.fixture
def tools() -> Tools:
    return Tools()


def test_wrapped_tools_keep_name_description_and_schema(guard, tools):
    refund, _lookup = guard.wrap_tools([tools.issue_refund, tools.lookup_order], actor=BOT)
    assert isinstance(refund, GovernedTool)
    assert refund.name == "issue_refund"
    assert refund.description == tools.issue_refund.description
    assert refund.args == tools.issue_refund.args
    assert refund.tool_call_schema.model_json_schema() == (
        tools.issue_refund.tool_call_schema.model_json_schema()
    )


def test_an_ungoverned_tool_passes_through_untouched(guard, tools):
    _refund, lookup = guard.wrap_tools([tools.issue_refund, tools.lookup_order], actor=BOT)
    assert lookup is tools.lookup_order
    message = lookup.invoke(call({"order_id": "o-1"}, name="lookup_order"))
    assert message.content == "order o-1: delivered"
    assert tools.lookups == ["o-1"]
    assert ledger_kinds(guard) == []


def test_an_allowed_call_runs_once_and_a_retry_returns_the_first_result(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    first = refund.invoke(call(refund_args()), THREAD)
    again = refund.invoke(call(refund_args()), THREAD)
    assert isinstance(first, ToolMessage)
    assert first.content == "refunded USD 40.00 (ref rf-1)"
    assert first.tool_call_id == "call-1"
    assert again.content == first.content
    assert again.tool_call_id == "call-1"
    assert tools.refunds == [{"amount": "40.00", "key": "bot-1:issue_refund:t-1:call-1"}]
    assert ledger_kinds(guard) == ["decision", "execution.started", "execution.succeeded"]
    execution = guard.executions.get("bot-1:issue_refund:t-1:call-1")
    assert execution.result == "refunded USD 40.00 (ref rf-1)"
    assert guard.store.verify() == 3


def test_a_routed_call_never_runs_and_returns_the_approval_id(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    message = refund.invoke(call(refund_args("60.00")), THREAD)
    assert tools.refunds == []
    assert message.status == "success"
    approval_id = message.artifact["approval_id"]
    assert message.artifact["outcome"] == "route"
    assert message.artifact["required_role"] == "tier1"
    assert f"Approval id: {approval_id}." in message.content
    assert "Needs approval by tier1" in message.content
    assert guard.approvals.get(approval_id).status == "pending"
    assert guard.executions.for_decision(approval_id) == []


def test_a_denied_call_never_runs_and_returns_an_error_message(make_guard, tools):
    guard = make_guard(good_facts(**{"customer.fraud_flag": True}))
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    message = refund.invoke(call(refund_args()), THREAD)
    assert tools.refunds == []
    assert message.status == "error"
    assert message.artifact["outcome"] == "deny"
    assert "fraud-flag" in message.artifact["rules"]
    assert message.content.startswith("Not permitted: refund of USD 40.00")
    assert "approval_id" not in message.artifact


def test_an_approved_routed_call_runs_once_through_the_outbox(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    routed = refund.invoke(call(refund_args("60.00")), THREAD)
    approval_id = routed.artifact["approval_id"]
    guard.approvals.approve(
        approval_id, approver=MARIA, note="long-standing customer", amount=Money.of("50", "USD")
    )
    [done] = guard.executions.run_pending(tool_callables([refund]))
    assert done.result == "refunded USD 50.00 (ref rf-1)"
    # The agent retrying the same call gets the stored result; nothing runs again.
    retried = refund.invoke(call(refund_args("60.00")), THREAD)
    assert retried.content == "refunded USD 50.00 (ref rf-1)"
    assert guard.executions.run_pending(tool_callables([refund])) == []
    assert tools.refunds == [{"amount": "50.00", "key": "bot-1:issue_refund:t-1:call-1"}]


def test_the_same_call_id_with_other_arguments_in_a_thread_is_an_error_message(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    refund.invoke(call(refund_args()), THREAD)
    message = refund.invoke(call(refund_args("45.00")), THREAD)
    assert message.status == "error"
    assert "already used for a different proposal" in message.content
    assert message.content.startswith("The call to issue_refund was not made")
    assert len(tools.refunds) == 1


def test_without_a_thread_a_reused_call_id_with_other_arguments_is_a_new_call(guard, tools):
    # A stateless agent whose model numbers its calls call_0 in every run.
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    first = refund.invoke(call(refund_args(), call_id="call_0"))
    other = refund.invoke(call(refund_args("30.00", customer_id="c-2"), call_id="call_0"))
    again = refund.invoke(call(refund_args(), call_id="call_0"))
    assert first.content == again.content == "refunded USD 40.00 (ref rf-1)"
    assert other.content == "refunded USD 30.00 (ref rf-2)"
    assert [r["amount"] for r in tools.refunds] == ["40.00", "30.00"]


def test_a_bad_argument_comes_back_as_an_error_the_model_can_correct(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    message = refund.invoke(call(refund_args(currency="EUR")), THREAD)
    assert message.status == "error"
    assert "EUR" in message.content
    assert message.artifact["error"] == "proposal"
    assert tools.refunds == []
    assert ledger_kinds(guard) == []


def test_without_a_call_id_the_key_comes_from_case_tool_and_arguments(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    first = refund.invoke(refund_args())
    again = refund.invoke(refund_args())
    other = refund.invoke(refund_args("30.00"))
    assert first == again == "refunded USD 40.00 (ref rf-1)"
    assert other == "refunded USD 30.00 (ref rf-2)"
    keys = [r["key"] for r in tools.refunds]
    assert len(keys) == 2
    assert all(k.startswith("bot-1:issue_refund:case-1:") for k in keys)
    assert keys[0] != keys[1]


def test_malformed_arguments_fail_before_anything_is_decided(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor=BOT)
    with pytest.raises(ValidationError):
        refund.invoke(call({"amount": "40.00"}))
    assert ledger_kinds(guard) == []


def test_wrapping_a_tool_the_pack_neither_maps_nor_lists_is_refused(make_guard, tmp_path, tools):
    pack = shop_pack_with(tmp_path, "ungoverned_tools: [lookup_order]\n", "")
    guard = make_guard(policy=pack)
    with pytest.raises(ConfigurationError) as refused:
        guard.wrap_tools([tools.lookup_order], actor=BOT)
    assert "tool 'lookup_order' is neither mapped by pack 'test-shop'" in str(refused.value)
    assert "shop-variant.yaml" in str(refused.value)
    assert "list it in ungoverned_tools if it only reads" in str(refused.value)
    assert tools.lookups == []


def test_a_mapping_naming_an_argument_the_tool_lacks_is_refused_when_wrapping(
    make_guard, tmp_path, tools
):
    pack = shop_pack_with(tmp_path, "amount: amount\n", "amount: amt\n")
    guard = make_guard(policy=pack)
    with pytest.raises(ConfigurationError, match=r"reads its amount \('amt'\), which the tool"):
        guard.wrap_tools([tools.issue_refund], actor=BOT)


def test_a_listed_read_only_tool_comes_back_untouched(guard, tools):
    [lookup] = guard.wrap_tools([tools.lookup_order], actor=BOT)
    assert lookup is tools.lookup_order


def test_the_actor_and_case_can_come_from_the_run_config(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund])
    actor = {"id": "bot-7", "role": "ai_agent"}
    config = {"configurable": {"discretion_actor": actor, "thread_id": "t-1"}}
    refund.invoke(call(refund_args()), config)
    decision = guard.store.find_decision("bot-7", "issue_refund:t-1:call-1")
    assert decision is not None
    assert decision.actor_id == "bot-7"
    assert decision.outcome is Outcome.ALLOW


def test_a_call_without_an_actor_is_a_configuration_error(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund])
    with pytest.raises(ConfigurationError, match="no actor to propose it"):
        refund.invoke(call(refund_args()), THREAD)
    assert tools.refunds == []


def test_the_actor_can_be_picked_per_call(guard, tools):
    picked: list[str | None] = []

    def actor(info):
        picked.append(info.call_id)
        return BOT

    [refund] = guard.wrap_tools([tools.issue_refund], actor=actor, rationale={"text": "late"})
    refund.invoke(call(refund_args(), call_id="call-9"))
    assert picked == ["call-9"]


def test_wrap_tools_refuses_plain_functions(guard):
    def issue_refund(amount: str) -> str:
        return amount

    with pytest.raises(ConfigurationError, match=r"langchain_core\.tools\.tool"):
        guard.wrap_tools([issue_refund], actor=BOT)


@pytest.mark.anyio
async def test_async_tools_run_once_and_routes_never_run(guard):
    ran: list[str] = []
    issue_refund = async_refund_tool(ran)
    [refund] = guard.wrap_tools([issue_refund], actor=BOT)
    assert isinstance(refund, BaseTool)
    first = await refund.ainvoke(call(refund_args()))
    again = await refund.ainvoke(call(refund_args()))
    routed = await refund.ainvoke(call(refund_args("60.00"), call_id="call-2"))
    assert first.content == again.content == "refunded 40.00"
    assert routed.artifact["outcome"] == "route"
    assert ran == ["40.00"]


def test_without_the_langchain_extra_the_error_names_the_pip_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "discretion.integrations._langchain")
    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)
    with pytest.raises(ImportError, match=r"pip install 'discretion\[langchain\]'"):
        importlib.import_module("discretion.integrations._langchain")


def test_a_tool_that_answers_with_an_error_is_recorded_failed_and_may_be_retried(guard):
    attempts: list[str] = []

    @tool
    def issue_refund(
        amount: str, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        """Refund an order."""
        attempts.append(amount)
        if len(attempts) == 1:
            raise ToolException("card network timeout")
        return "refunded"

    issue_refund.handle_tool_error = True
    [refund] = guard.wrap_tools([issue_refund], actor=BOT)
    failed = refund.invoke(call(refund_args()), THREAD)
    assert failed.status == "error"
    assert failed.content == "card network timeout"
    execution = guard.executions.get("bot-1:issue_refund:t-1:call-1")
    assert execution.status == "failed"
    assert execution.error == "ToolReportedError: card network timeout"
    retried = refund.invoke(call(refund_args()), THREAD)
    assert retried.content == "refunded"
    assert guard.executions.get("bot-1:issue_refund:t-1:call-1").attempts == 2
    assert refund.invoke(call(refund_args()), THREAD).content == "refunded"
    assert attempts == ["40.00", "40.00"]


def test_an_actor_that_is_not_valid_is_a_proposal_error(guard, tools):
    [refund] = guard.wrap_tools([tools.issue_refund], actor={"id": "bot-1"})
    with pytest.raises(ProposalError, match="the actor is not valid") as caught:
        refund.invoke(call(refund_args()), THREAD)
    assert caught.value.field == "actor"
    assert tools.refunds == []


def test_a_field_given_again_under_its_alias_is_sent_back_undecided(guard):
    # The tool's schema reads `orderId` before `order_id`: deciding on one and running on the
    # other would refund an order nobody decided on.
    paid: list[str] = []
    [refund] = guard.wrap_tools([camel_refund_tool(paid)], actor=BOT)
    message = refund.invoke(call(refund_args(orderId="o-9")), THREAD)
    assert message.status == "error"
    assert "'order_id' is given twice, as 'orderId' and 'order_id'" in message.content
    assert message.artifact == {"error": "proposal", "field": "tool.arguments.order_id"}
    assert paid == []
    assert ledger_kinds(guard) == []
    with pytest.raises(ProposalError, match="given twice"):
        refund.invoke(refund_args(orderId="o-9"))

    # Under the alias alone, the pack would decide on no order and the tool pay on o-9.
    alone = refund_args(orderId="o-9")
    del alone["order_id"]
    message = refund.invoke(call(alone, call_id="call-2"), THREAD)
    assert message.status == "error"
    assert "'order_id' is given as 'orderId'" in message.content
    assert message.artifact == {"error": "proposal", "field": "tool.arguments.orderId"}
    assert paid == []
    assert ledger_kinds(guard) == []


def test_an_argument_the_shown_schema_leaves_out_is_decided_on_not_dropped(make_guard, tmp_path):
    # Under `extra_arguments: refuse`, an alias the mapping does not read is sent back, as
    # `Guard.decide` sends it back; before, it was dropped from the decision and reached the tool.
    pack = shop_pack_with(
        tmp_path,
        "        order: order_id\n",
        "        order: order_id\n        extra_arguments: refuse\n",
    )
    guard = make_guard(policy=pack)
    paid: list[str] = []
    [refund] = guard.wrap_tools([camel_refund_tool(paid)], actor=BOT)
    message = refund.invoke(call({**refund_args(), "caseRef": "case-9"}), THREAD)
    assert message.status == "error"
    assert "caseRef" in message.content
    assert paid == []
    allowed = refund.invoke(call(refund_args(), call_id="call-2"), THREAD)
    assert allowed.content == "refunded USD 40.00"
    assert paid == ["USD 40.00 on o-1"]


class RefundBody(BaseModel):
    """A refund's body, its amount also read under an alias."""

    model_config = ConfigDict(populate_by_name=True)
    amount: str = Field(alias="amountValue")
    currency: str


NESTED = """
pack: nested
currency: USD
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "50.00"}}
  - id: manager
    authority: {refund: {standard: "5000.00"}}
actions:
  refund:
    tools:
      - {name: issue_refund, amount: refund.amount, currency: refund.currency}
    standard:
      - id: any
"""


def test_a_nested_field_given_under_its_alias_is_sent_back(tmp_path, store):
    # Decided on refund.amount (40.00), run on refund.amountValue (4000.00) before.
    path = tmp_path / "pack.yaml"
    path.write_text(NESTED, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=StaticContextProvider({}))
    paid: list[str] = []

    @tool
    def issue_refund(refund: RefundBody) -> str:
        """Refund the customer."""
        paid.append(f"{refund.currency} {refund.amount}")
        return f"refunded {refund.currency} {refund.amount}"

    [governed] = guard.wrap_tools([issue_refund], actor=BOT)
    twice = {"refund": {"amount": "40.00", "amountValue": "4000.00", "currency": "USD"}}
    message = governed.invoke(call(twice), THREAD)
    assert message.status == "error"
    assert "'refund.amount' is given twice" in message.content
    assert message.artifact["field"] == "tool.arguments.refund.amountValue"
    alias = {"refund": {"amountValue": "40.00", "currency": "USD"}}
    message = governed.invoke(call(alias, call_id="call-2"), THREAD)
    assert "'refund.amount' is given as 'refund.amountValue'" in message.content
    assert paid == []
    assert ledger_kinds(guard) == []
    allowed = governed.invoke(
        call({"refund": {"amount": "40.00", "currency": "USD"}}, "c3"), THREAD
    )
    assert allowed.content == "refunded USD 40.00"
    assert paid == ["USD 40.00"]


class Voucher(BaseModel):
    """A store voucher instead of a refund: pydantic reads a body as this when it fits."""

    memo: str


@pytest.mark.parametrize("shape", ["union", "mapping"])
def test_an_alias_in_any_model_a_field_may_be_read_as_is_sent_back(tmp_path, store, shape):
    # `Voucher | RefundBody`: the body does not fit a Voucher, so pydantic reads it as a
    # RefundBody, alias and all; `dict[str, RefundBody]`: the models are the mapping's values.
    path = tmp_path / "pack.yaml"
    path.write_text(NESTED, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=StaticContextProvider({}))
    paid: list[str] = []

    if shape == "union":

        @tool
        def issue_refund(refund: Voucher | RefundBody) -> str:
            """Refund the customer."""
            paid.append(repr(refund))
            return "done"

        body: dict[str, Any] = {"amount": "40.00", "amountValue": "4000.00", "currency": "USD"}
        where = "refund.amountValue"
    else:

        @tool
        def issue_refund(refund: dict[str, RefundBody]) -> str:
            """Refund the customer, per line."""
            paid.append(repr(refund))
            return "done"

        body = {"line-1": {"amountValue": "4000.00", "currency": "USD"}}
        where = "refund.line-1.amountValue"

    [governed] = guard.wrap_tools([issue_refund], actor=BOT)
    message = governed.invoke(call({"refund": body}), THREAD)
    assert message.status == "error"
    assert message.artifact["field"] == f"tool.arguments.{where}"
    assert paid == []
    assert ledger_kinds(guard) == []
