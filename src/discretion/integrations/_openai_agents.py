"""The OpenAI Agents SDK: governed function tools, approvals through the guard.

`AgentTools(guard, actor=...).wrap(tools)` gives each function tool the pack governs:

- a `needs_approval` callable: a call the pack routes pauses the run (`result.interruptions`);
- a tool input guardrail: a denied call, or one whose arguments are not valid, is refused with
  the text every integration gives the agent, and the run goes on;
- an invoker that runs an allowed (or approved) call exactly once per call id within its run,
  with the arguments the decision governed (an approver's lower amount included).

A call id is taken as unique within the run's trace only (some models number calls `call_0`
in every run); a run paused for approval keeps its trace when resumed. With tracing off
(`RunConfig(tracing_disabled=True)`) nothing names the run, so a call is keyed by its case,
tool and arguments: the same refund on the same case is then a retry, and replays.

A person decides a paused call through `guard.approvals` (or the HTTP API, or the desk);
`await agent_tools.resume(result)` then turns the recorded answers into the run's approvals,
and `Runner.run(agent, state)` carries on: an approved call runs once, a rejected one never.

Needs the `openai-agents` extra: `pip install 'discretion[openai-agents]'`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from discretion.approvals import ApprovalStatus
from discretion.decision import Outcome
from discretion.errors import ConfigurationError, ExecutionError, ProposalError
from discretion.integrations._call import (
    ActorSource,
    Admission,
    Governor,
    RationaleSource,
    TextSource,
    ToolCallInfo,
    agent_message,
    in_progress_message,
    is_correctable,
    proposal_error_message,
    rejection_message,
)

try:
    from agents import (
        FunctionTool,
        RunContextWrapper,
        RunResult,
        RunState,
        Tool,
        ToolGuardrailFunctionOutput,
        ToolInputGuardrail,
        ToolInputGuardrailData,
    )
    from agents.tool import (
        maybe_invoke_function_tool_failure_error_function,
        set_function_tool_failure_error_function,
    )
    from agents.tool_context import ToolContext
    from agents.tracing import Trace, get_current_trace
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        f"discretion's Agents SDK integration needs {exc.name}:"
        " pip install 'discretion[openai-agents]'"
    ) from exc

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = ["AgentTools"]


def _arguments(tool: str, text: str | None) -> dict[str, Any]:
    try:
        arguments = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ProposalError(
            f"tool call {tool!r}: the arguments are not JSON: {exc}", field="tool.arguments"
        ) from exc
    if not isinstance(arguments, dict):
        raise ProposalError(
            f"tool call {tool!r}: the arguments must be a JSON object", field="tool.arguments"
        )
    return arguments


def _run_scope(trace: Trace | None) -> str | None:
    """What a call id is unique within: the run's trace; None when the run is not traced.

    Some models number their calls `call_0`, `call_1` in every run. A run paused for an
    approval keeps its trace when it is resumed, so its calls keep their keys.
    """
    if trace is None or trace.export() is None:  # tracing is off: a no-op trace
        return None
    return trace.trace_id


class AgentTools:
    """Governs an OpenAI Agents SDK agent's function tools with a guard.

    Args:
        guard: decides and records.
        actor: who proposes the calls (see `ActorSource`); by default the run context's
            `actor` (`Runner.run(agent, input, context=...)`).
        case_id: the support case, when the tools' arguments do not carry it.
        customer_id: the customer, when the tools' arguments do not carry it.
        rationale: why; by default the tool's own `reason` and `rationale` arguments.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        actor: ActorSource = None,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
    ) -> None:
        self.guard = guard
        self.governor = Governor(
            guard, actor=actor, case_id=case_id, customer_id=customer_id, rationale=rationale
        )
        self.guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self._check_input, name="discretion"
        )
        """The tool input guardrail: refuses a denied call, or one whose arguments are not
        valid, with the agent-facing text; lets an allowed or approved call through."""

    def wrap(self, tools: Sequence[Tool]) -> list[Tool]:
        """Govern the function tools the pack maps; return those it lists as read-only untouched.

        Raises:
            ConfigurationError: a tool the pack neither maps nor lists in `ungoverned_tools`, a
                mapping naming an argument the tool does not take, or a hosted tool (web
                search, a computer) the pack governs: it cannot be decided before it runs.
        """
        wrapped: list[Tool] = []
        for tool in tools:
            name = getattr(tool, "name", type(tool).__name__)
            if not isinstance(tool, FunctionTool):
                if self.guard.pack.is_ungoverned(name):
                    wrapped.append(tool)
                    continue
                raise ConfigurationError(
                    f"tool {name!r} is a {type(tool).__name__}, which discretion cannot decide"
                    " before it runs; list it in the pack's ungoverned_tools if it only reads,"
                    " or leave it out"
                )
            governed, _ = self.governor.check_schema(tool.name, tool.params_json_schema)
            if not governed:
                wrapped.append(tool)
                continue
            wrapped.append(self._governed(tool))
        return wrapped

    def _governed(self, tool: FunctionTool) -> FunctionTool:
        # The SDK's invoker answers an exception with text for the model (the tool's
        # failure_error_function), which would be recorded as a run that succeeded and replayed
        # to every retry. A copy without that handler raises inside the execution, so the run is
        # recorded as failed (and may be retried); the governed tool then answers the model as
        # the original would have.
        raising = set_function_tool_failure_error_function(copy.copy(tool), None)
        inner = raising.on_invoke_tool

        async def invoke(ctx: ToolContext[Any], text: str) -> Any:
            return await self._invoke(inner, governed, ctx, text)

        governed = dataclasses.replace(
            tool,
            on_invoke_tool=invoke,
            needs_approval=self.needs_approval(tool.name),
            tool_input_guardrails=[self.guardrail, *(tool.tool_input_guardrails or [])],
        )
        return governed

    def _info(
        self,
        tool: str,
        arguments: dict[str, Any],
        call_id: str,
        context: Any,
        scope: str | None,
    ) -> ToolCallInfo:
        # Without a traced run to scope it, a call id may be another run's: the key then comes
        # from the case and the arguments, as for a LangGraph run without a thread.
        return ToolCallInfo(
            tool=tool,
            arguments=arguments,
            call_id=call_id,
            scope=scope,
            is_call_id_unique=False,
            context=context,
        )

    async def _admit(
        self, tool: str, text: str | None, call_id: str, context: Any, scope: str | None
    ) -> Admission:
        info = self._info(tool, _arguments(tool, text), call_id, context, scope)
        return await self.governor.aadmit(info)

    def needs_approval(
        self, tool: str
    ) -> Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]:
        """The `needs_approval` callable of `tool`: whether a call waits for a person.

        It does when the pack routes it and no approval has queued it. The decision is
        recorded here, once; the guardrail and the invoker replay it by key.
        """

        async def needs_approval(
            ctx: RunContextWrapper[Any], arguments: dict[str, Any], call_id: str
        ) -> bool:
            info = self._info(
                tool, dict(arguments), call_id, ctx.context, _run_scope(get_current_trace())
            )
            try:
                decision, queued, _ = await self.governor.aadmit(info)
            except ProposalError as exc:
                if not is_correctable(exc):
                    raise
                return False  # the guardrail refuses it, with a message the model can act on
            return decision.outcome is Outcome.ROUTE and queued is None

        return needs_approval

    async def _check_input(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        try:
            decision, queued, _ = await self._admit(
                ctx.tool_name,
                ctx.tool_arguments,
                ctx.tool_call_id,
                ctx.context,
                _run_scope(get_current_trace()),
            )
        except ProposalError as exc:
            if not is_correctable(exc):
                raise
            message = proposal_error_message(ctx.tool_name, exc)
            return ToolGuardrailFunctionOutput.reject_content(message, {"error": str(exc)})
        info = {"decision_id": decision.id, "outcome": decision.outcome.value}
        if decision.is_allowed or queued is not None:
            return ToolGuardrailFunctionOutput.allow(info)
        return ToolGuardrailFunctionOutput.reject_content(agent_message(decision), info)

    async def _invoke(
        self, inner: Any, governed: FunctionTool, ctx: ToolContext[Any], text: str
    ) -> Any:
        tool = ctx.tool_name
        info = self._info(
            tool,
            _arguments(tool, text),
            ctx.tool_call_id,
            ctx.context,
            _run_scope(get_current_trace()),
        )
        try:
            decision, queued, arguments = await self.governor.aadmit(info)
        except ProposalError as exc:
            if not is_correctable(exc):
                raise
            return proposal_error_message(tool, exc)
        # Fail closed even if the guardrail was taken off the tool.
        if not decision.is_allowed and queued is None:
            return agent_message(decision)
        raised: list[Exception] = []

        async def run(approved: dict[str, Any], key: str) -> Any:
            try:
                return await inner(ctx, json.dumps(approved))
            except Exception as exc:
                raised.append(exc)
                raise

        try:
            result = await self.governor.arun(
                decision, info, run, execution=queued, arguments=arguments
            )
        except ExecutionError as exc:
            return in_progress_message(exc)
        except Exception as exc:
            if exc not in raised:
                raise  # the store failed, not the tool: never told to the model as the tool's
            # Recorded as failed; the model is answered as the tool's failure_error_function
            # says (re-raised when it has none).
            answer = await maybe_invoke_function_tool_failure_error_function(
                function_tool=governed, context=ctx, error=exc
            )
            if answer is None:
                raise
            return answer
        return result.value

    async def resume(self, result: RunResult) -> RunState[Any]:
        """The paused run's state, with the answers people recorded applied to its approvals.

        An approved call is approved (it runs once when the run goes on), a rejected or
        expired one is rejected with the approver's reason; a call still pending stays paused.
        Continue with `Runner.run(agent, state)`.
        """
        state = result.to_state()
        context = result.context_wrapper.context
        # The run resumes under the trace it paused in (the state carries it), so its calls are
        # keyed as they were then. The SDK keeps it on a private field; without it the calls
        # would get new keys, be decided again and stay paused, never run unapproved.
        traced = getattr(state, "_trace_state", None)
        scope = getattr(traced, "trace_id", None)
        for item in state.get_interruptions():
            name, call_id = item.name, item.call_id
            if name is None or call_id is None or not self.governor.governs(name):
                continue
            decision, _, _ = await self._admit(name, item.arguments, call_id, context, scope)
            approval = await asyncio.to_thread(self.guard.approvals.get, decision.id)
            if approval.status is ApprovalStatus.APPROVED:
                state.approve(item)
            elif approval.status is not ApprovalStatus.PENDING:
                state.reject(item, rejection_message=rejection_message(approval))
        return state
