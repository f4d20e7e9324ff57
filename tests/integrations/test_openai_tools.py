"""`OpenAITools`: the Chat Completions and Responses tool-call loop, over mocked OpenAI HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import respx

from conftest import good_facts, shop_pack_with
from discretion import ConfigurationError
from discretion.integrations import OpenAITools

from ._integration_support import BOT, MARIA, ledger_kinds, refund_args

BASE_URL = "https://llm.test/v1"


@pytest.fixture(autouse=True)
def http() -> Iterator[respx.MockRouter]:
    """Every HTTP call must hit a planned route."""
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def client() -> Iterator[openai.OpenAI]:
    http_client = httpx.Client()
    yield openai.OpenAI(
        api_key="sk-test", base_url=BASE_URL, max_retries=0, http_client=http_client
    )
    http_client.close()


class Functions:
    def __init__(self) -> None:
        self.refunds: list[tuple[str, str]] = []
        self.lookups: list[str] = []

    def issue_refund(
        self,
        amount: str,
        currency: str,
        customer_id: str,
        case_id: str,
        order_id: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        self.refunds.append((amount, idempotency_key))
        return {"refund_id": f"rf-{len(self.refunds)}", "amount": amount}

    def lookup_order(self, order_id: str) -> str:
        self.lookups.append(order_id)
        return f"order {order_id}: delivered"

    def registry(self) -> dict[str, Any]:
        return {"issue_refund": self.issue_refund, "lookup_order": self.lookup_order}


@pytest.fixture
def functions() -> Functions:
    return Functions()


def chat_call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def completion(*tool_calls: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "support-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "message": message,
            }
        ],
    }


def test_chat_completions_loop_runs_allowed_calls_once_and_explains_the_rest(
    guard, functions, client, http
):
    route = http.post(f"{BASE_URL}/chat/completions").mock(
        side_effect=[
            httpx.Response(
                200,
                json=completion(
                    chat_call("call_1", "issue_refund", refund_args()),
                    chat_call("call_2", "issue_refund", refund_args("60.00", order_id="o-2")),
                    chat_call("call_3", "lookup_order", {"order_id": "o-3"}),
                ),
            ),
            httpx.Response(200, json=completion(content="Your refund of 40.00 is on its way.")),
        ]
    )
    tools = OpenAITools(guard, functions.registry(), actor=BOT)
    messages: list[Any] = [{"role": "user", "content": "refund my orders"}]
    first = client.chat.completions.create(model="support-model", messages=messages)
    message = first.choices[0].message
    outputs = tools.run(message)
    messages += [message.model_dump(exclude_none=True), *outputs]
    client.chat.completions.create(model="support-model", messages=messages)

    assert functions.refunds == [("40.00", "bot-1:issue_refund:call_1")]
    assert functions.lookups == ["o-3"]
    sent = json.loads(route.calls.last.request.content)["messages"]
    answers = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert json.loads(answers["call_1"]) == {"refund_id": "rf-1", "amount": "40.00"}
    assert answers["call_2"].startswith("Needs approval by tier1: refund of USD 60.00")
    routed = guard.store.find_decision(BOT.id, "issue_refund:call_2")
    assert f"Approval id: {routed.id}." in answers["call_2"]
    assert answers["call_3"] == "order o-3: delivered"


def test_a_retried_tool_call_is_answered_from_the_first_run(guard, functions):
    tools = OpenAITools(guard, functions.registry(), actor=BOT)
    calls = [chat_call("call_1", "issue_refund", refund_args())]
    first = tools.outcomes(calls)
    again = tools.outcomes(calls)
    assert functions.refunds == [("40.00", "bot-1:issue_refund:call_1")]
    assert again[0].output == first[0].output
    assert again[0].result.is_replay
    assert ledger_kinds(guard) == ["decision", "execution.started", "execution.succeeded"]


def test_a_denied_call_never_runs(make_guard, functions):
    guard = make_guard(good_facts(**{"customer.fraud_flag": True}))
    tools = OpenAITools(guard, functions.registry(), actor=BOT)
    [done] = tools.outcomes([chat_call("call_1", "issue_refund", refund_args())])
    assert functions.refunds == []
    assert done.result.decision.outcome == "deny"
    assert done.result.execution is None
    assert done.output["content"].startswith("Not permitted: refund of USD 40.00")


def test_a_bad_argument_is_answered_with_a_message_the_model_can_correct(guard, functions):
    tools = OpenAITools(guard, functions.registry(), actor=BOT)
    arguments = refund_args(currency="EUR")
    [done] = tools.outcomes([chat_call("call_1", "issue_refund", arguments)])
    assert done.output["content"].startswith("The call to issue_refund was not made")
    assert "EUR" in done.output["content"]
    assert functions.refunds == []
    assert ledger_kinds(guard) == []


def test_responses_api_items_get_function_call_outputs(guard, functions, client, http):
    http.post(f"{BASE_URL}/responses").mock(
        return_value=httpx.Response(
            200,
            json={
                "id": "resp_1",
                "object": "response",
                "created_at": 1,
                "model": "support-model",
                "status": "completed",
                "output": [
                    {
                        "type": "function_call",
                        "id": "fc_1",
                        "call_id": "call_a",
                        "name": "issue_refund",
                        "arguments": json.dumps(refund_args()),
                        "status": "completed",
                    },
                    {
                        "type": "function_call",
                        "id": "fc_2",
                        "call_id": "call_b",
                        "name": "issue_refund",
                        "arguments": json.dumps(refund_args("60.00", order_id="o-2")),
                        "status": "completed",
                    },
                ],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
            },
        )
    )
    response = client.responses.create(model="support-model", input="refund my orders")
    outputs = OpenAITools(guard, functions.registry(), actor=BOT).run(response)
    assert [o["type"] for o in outputs] == ["function_call_output", "function_call_output"]
    assert outputs[0]["call_id"] == "call_a"
    assert json.loads(outputs[0]["output"]) == {"refund_id": "rf-1", "amount": "40.00"}
    assert outputs[1]["call_id"] == "call_b"
    assert "Approval id:" in outputs[1]["output"]
    assert functions.refunds == [("40.00", "bot-1:issue_refund:call_a")]


def test_unreadable_or_unknown_calls_run_and_decide_nothing(guard, functions):
    tools = OpenAITools(guard, functions.registry(), actor=BOT)
    outputs = tools.run(
        [
            chat_call("call_1", "issue_refund", "{not json"),
            chat_call("call_2", "wire_money", {"amount": "9"}),
        ]
    )
    assert "not a JSON object" in outputs[0]["content"]
    assert "There is no tool named 'wire_money'" in outputs[1]["content"]
    assert functions.refunds == []
    assert ledger_kinds(guard) == []


def test_a_function_the_pack_neither_maps_nor_lists_is_refused_up_front(
    make_guard, tmp_path, functions
):
    pack = shop_pack_with(tmp_path, "ungoverned_tools: [lookup_order]\n", "")
    guard = make_guard(policy=pack)
    with pytest.raises(ConfigurationError, match="tool 'lookup_order' is neither mapped"):
        OpenAITools(guard, functions.registry(), actor=BOT)
    assert functions.lookups == []


def test_an_approved_call_runs_when_the_model_repeats_it(guard, functions):
    tools = OpenAITools(guard, functions.registry(), actor=BOT)
    calls = [chat_call("call_1", "issue_refund", refund_args("60.00"))]
    [routed] = tools.outcomes(calls)
    guard.approvals.approve(routed.result.decision.id, approver=MARIA, note="fine")
    [ran] = tools.outcomes(calls)
    [again] = tools.outcomes(calls)
    assert functions.refunds == [("60.00", "bot-1:issue_refund:call_1")]
    assert json.loads(ran.output["content"])["amount"] == "60.00"
    assert again.output == ran.output


@pytest.mark.anyio
async def test_async_functions_run_once(guard):
    ran: list[str] = []

    async def issue_refund(**arguments: Any) -> str:
        ran.append(arguments["amount"])
        return "ok"

    tools = OpenAITools(guard, {"issue_refund": issue_refund}, actor=BOT)
    calls = [
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "issue_refund",
            "arguments": json.dumps(refund_args()),
        }
    ]
    first = await tools.arun(calls)
    again = await tools.arun(calls)
    assert first == again == [{"type": "function_call_output", "call_id": "call_1", "output": "ok"}]
    assert ran == ["40.00"]
