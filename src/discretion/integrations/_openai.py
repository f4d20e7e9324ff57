"""The OpenAI tool-call loop: Chat Completions `tool_calls` and Responses `function_call` items.

Works on the SDK's objects or on plain dicts, so the `openai` package is not needed here.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from discretion.errors import ExecutionError, ProposalError
from discretion.integrations._call import (
    KEY_ARGUMENT,
    ActorSource,
    GovernedResult,
    Governor,
    RationaleSource,
    TextSource,
    ToolCallInfo,
    agent_message,
    in_progress_message,
    is_correctable,
    proposal_error_message,
)
from discretion.integrations._setup import parameters_of

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = ["OpenAITools", "ToolOutput"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutput:
    """One tool call's answer, in the shape the API that made the call expects."""

    call_id: str
    """The model's id for the call."""
    tool: str
    """The tool's name."""
    output: dict[str, Any]
    """A Chat Completions `tool` message or a Responses `function_call_output` item."""
    result: GovernedResult | None
    """The decision and execution; None when the call could not be read or has no function."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    call_id: str
    name: str
    arguments: str
    is_responses: bool

    def answer(self, text: str, result: GovernedResult | None = None) -> ToolOutput:
        if self.is_responses:
            output = {"type": "function_call_output", "call_id": self.call_id, "output": text}
        else:
            output = {"role": "tool", "tool_call_id": self.call_id, "content": text}
        return ToolOutput(call_id=self.call_id, tool=self.name, output=output, result=result)


def _plain(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    if callable(dump):
        plain: dict[str, Any] = dump()
        return plain
    raise TypeError(f"{type(item).__name__} is not an OpenAI tool call")


def _calls(calls: Any) -> list[_Call]:
    """Tool calls from a message, a response, or a list of either API's items."""
    if not isinstance(calls, (list, tuple)):
        found = getattr(calls, "tool_calls", None)
        if found is None and isinstance(calls, Mapping):
            found = calls.get("tool_calls", calls.get("output"))
        if found is None:
            found = getattr(calls, "output", None)
        calls = found or []
    parsed: list[_Call] = []
    for item in calls:
        plain = _plain(item)
        if plain.get("type") == "function_call":
            parsed.append(
                _Call(
                    call_id=str(plain["call_id"]),
                    name=str(plain["name"]),
                    arguments=str(plain.get("arguments") or "{}"),
                    is_responses=True,
                )
            )
        elif isinstance(plain.get("function"), Mapping):
            function = plain["function"]
            parsed.append(
                _Call(
                    call_id=str(plain["id"]),
                    name=str(function["name"]),
                    arguments=str(function.get("arguments") or "{}"),
                    is_responses=False,
                )
            )
    return parsed


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Sorted keys: a replayed result (stored canonically) reads the same as the first answer.
    return json.dumps(to_jsonable_python(value, fallback=str), ensure_ascii=False, sort_keys=True)


class OpenAITools:
    """Decides each tool call the model made, runs the allowed ones once, and answers all.

    Example:
        ```python
        tools = OpenAITools(guard, {"issue_refund": issue_refund}, actor=bot, case_id="case-7")
        completion = client.chat.completions.create(model=..., messages=messages, tools=specs)
        message = completion.choices[0].message
        messages += [message, *tools.run(message)]       # Chat Completions
        items += tools.run(response.output)              # Responses API
        ```

    A function with an `idempotency_key` parameter receives the call's key. Calls the pack does
    not govern run untouched; routed and denied calls are answered with the decision's text.

    Args:
        guard: decides and records.
        functions: the Python functions, by the tool name the model uses.
        actor: who proposes the calls (see `ActorSource`).
        case_id: the support case, when the tools' arguments do not carry it.
        customer_id: the customer, when the tools' arguments do not carry it.
        rationale: why; by default the tool's own `reason` and `rationale` arguments.
    """

    def __init__(
        self,
        guard: Guard,
        functions: Mapping[str, Callable[..., Any]],
        *,
        actor: ActorSource = None,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
    ) -> None:
        self.functions = dict(functions)
        self._governor = Governor(
            guard, actor=actor, case_id=case_id, customer_id=customer_id, rationale=rationale
        )
        # Checked now: a function the pack neither maps nor lists as read-only is refused.
        self._governed = {
            name
            for name, function in self.functions.items()
            if self._governor.check(name, parameters_of(function))
        }

    def _prepare(self, call: _Call) -> tuple[ToolCallInfo, Callable[..., Any]] | ToolOutput:
        function = self.functions.get(call.name)
        if function is None:
            text = f"There is no tool named {call.name!r}; use one of: {', '.join(self.functions)}."
            return call.answer(text)
        try:
            arguments = json.loads(call.arguments)
        except json.JSONDecodeError as exc:
            arguments = exc
        if not isinstance(arguments, dict):
            text = f"The arguments for {call.name!r} are not a JSON object; nothing was run."
            return call.answer(text)
        info = ToolCallInfo(tool=call.name, arguments=arguments, call_id=call.call_id)
        return info, function

    @staticmethod
    def _kwargs(
        function: Callable[..., Any], arguments: dict[str, Any], key: str
    ) -> dict[str, Any]:
        if KEY_ARGUMENT in inspect.signature(function).parameters:
            return {**arguments, KEY_ARGUMENT: key}
        return arguments

    @staticmethod
    def _output(call: _Call, result: GovernedResult) -> ToolOutput:
        if result.decision is not None and result.execution is None:
            return call.answer(agent_message(result.decision), result)
        return call.answer(_text(result.value), result)

    def outcomes(self, calls: Any) -> list[ToolOutput]:
        """Decide and run each call; return each answer with its decision and execution.

        `calls` is a Chat Completions message (or its `tool_calls`), a Responses response (or
        its `output` items), as SDK objects or dicts.
        """
        return [self._outcome(call) for call in _calls(calls)]

    async def aoutcomes(self, calls: Any) -> list[ToolOutput]:
        """`outcomes` for async functions (sync functions are called as they are)."""
        return [await self._aoutcome(call) for call in _calls(calls)]

    def _outcome(self, call: _Call) -> ToolOutput:
        prepared = self._prepare(call)
        if isinstance(prepared, ToolOutput):
            return prepared
        info, function = prepared

        def invoke(arguments: dict[str, Any], key: str) -> Any:
            return function(**self._kwargs(function, arguments, key))

        governor = self._governor
        if call.name not in self._governed:
            value = invoke(info.arguments, call.call_id)
            return self._output(call, GovernedResult(decision=None, value=value))
        try:
            decision, queued, governed = governor.admit(info)
        except ProposalError as exc:
            if not is_correctable(exc):
                raise
            return call.answer(proposal_error_message(call.name, exc))
        if not decision.is_allowed and queued is None:
            return self._output(call, GovernedResult(decision=decision))
        try:
            result = governor.run(decision, info, invoke, execution=queued, arguments=governed)
        except ExecutionError as exc:
            return call.answer(in_progress_message(exc), GovernedResult(decision=decision))
        return self._output(call, result)

    async def _aoutcome(self, call: _Call) -> ToolOutput:
        prepared = self._prepare(call)
        if isinstance(prepared, ToolOutput):
            return prepared
        info, function = prepared

        async def invoke(arguments: dict[str, Any], key: str) -> Any:
            value = function(**self._kwargs(function, arguments, key))
            return await value if inspect.isawaitable(value) else value

        governor = self._governor
        if call.name not in self._governed:
            value = await invoke(info.arguments, call.call_id)
            return self._output(call, GovernedResult(decision=None, value=value))
        try:
            decision, queued, governed = await governor.aadmit(info)
        except ProposalError as exc:
            if not is_correctable(exc):
                raise
            return call.answer(proposal_error_message(call.name, exc))
        if not decision.is_allowed and queued is None:
            return self._output(call, GovernedResult(decision=decision))
        try:
            result = await governor.arun(
                decision, info, invoke, execution=queued, arguments=governed
            )
        except ExecutionError as exc:
            return call.answer(in_progress_message(exc), GovernedResult(decision=decision))
        return self._output(call, result)

    def run(self, calls: Iterable[Any] | Any) -> list[dict[str, Any]]:
        """Decide and run each call; return the outputs to send back to the model."""
        return [done.output for done in self.outcomes(calls)]

    async def arun(self, calls: Iterable[Any] | Any) -> list[dict[str, Any]]:
        """`run` for async functions."""
        return [done.output for done in await self.aoutcomes(calls)]
