"""Pydantic AI: a toolset wrapper whose routed calls become deferred approvals.

`GovernedToolset(toolset, guard=guard, actor=...)` decides each call to a tool the pack
governs before the wrapped toolset runs it:

- allowed: the tool runs once per tool-call id within the conversation (`conversation_id`,
  which a run continuing the message history keeps): a retried call returns the first result;
- denied: the model gets a failed tool result (`ToolFailed`) with the agent-facing text;
- arguments that are not valid: the model is asked to correct them (`ModelRetry`);
- routed: the call is deferred for approval (`ApprovalRequired`, with the approval id in its
  metadata), so the run ends with `DeferredToolRequests` (give the agent that output type).
  A person decides through `guard.approvals`; `await toolset.results(requests)` turns the
  answers into `DeferredToolResults`, and the next run
  (`agent.run(message_history=..., deferred_tool_results=...)`) runs an approved call once
  with the approved arguments, and tells the model who rejected one.

Needs the `pydantic-ai` extra: `pip install 'discretion[pydantic-ai]'`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from discretion.approvals import ApprovalStatus
from discretion.decision import Outcome
from discretion.errors import ExecutionError, ProposalError
from discretion.integrations._call import (
    ActorSource,
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
    from pydantic_ai import (
        ApprovalRequired,
        DeferredToolRequests,
        DeferredToolResults,
        ModelRetry,
        RunContext,
        ToolApproved,
        ToolDenied,
        ToolFailed,
    )
    from pydantic_ai.toolsets import AbstractToolset, ToolsetTool, WrapperToolset
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        f"discretion's Pydantic AI integration needs {exc.name}:"
        " pip install 'discretion[pydantic-ai]'"
    ) from exc

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = ["GovernedToolset"]


@dataclass(init=False)
class GovernedToolset(WrapperToolset[Any]):
    """A toolset whose calls to governed tools are decided before the wrapped toolset runs them.

    Args:
        wrapped: the toolset that does the work (a `FunctionToolset`, an MCP toolset, ...).
        guard: decides and records.
        actor: who proposes the calls (see `ActorSource`); by default the run's `deps.actor`.
        case_id: the support case, when the tools' arguments do not carry it.
        customer_id: the customer, when the tools' arguments do not carry it.
        rationale: why; by default the tool's own `reason` and `rationale` arguments.
    """

    governor: Governor = field(repr=False)
    """Decides and runs the calls."""

    def __init__(
        self,
        wrapped: AbstractToolset[Any],
        *,
        guard: Guard,
        actor: ActorSource = None,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
    ) -> None:
        super().__init__(wrapped)
        self.governor = Governor(
            guard, actor=actor, case_id=case_id, customer_id=customer_id, rationale=rationale
        )

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        """The wrapped toolset's tools, each checked against the pack before any is called.

        Raises:
            ConfigurationError: a tool the pack neither maps nor lists in `ungoverned_tools`,
                or a mapping naming an argument the tool does not take.
        """
        tools = await super().get_tools(ctx)
        for name, tool in tools.items():
            self.governor.check_schema(name, tool.tool_def.parameters_json_schema)
        return tools

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        """Decide the call; run it once when allowed or approved."""
        governor = self.governor
        if not governor.governs(name):
            return await super().call_tool(name, tool_args, ctx, tool)
        sent: dict[str, Any] = to_jsonable_python(tool_args, fallback=str)
        # Call ids are unique within a conversation; some models number them call_0 in each.
        info = ToolCallInfo(
            tool=name,
            arguments=sent,
            call_id=ctx.tool_call_id,
            scope=ctx.conversation_id,
            context=ctx.deps,
        )
        try:
            decision, queued, governed = await governor.aadmit(info)
        except ProposalError as exc:
            if not is_correctable(exc):
                raise
            raise ModelRetry(proposal_error_message(name, exc)) from exc
        if decision.outcome is Outcome.ROUTE and queued is None:
            raise ApprovalRequired(
                metadata={
                    "approval_id": decision.id,
                    "required_role": decision.required_role,
                    "explanation": agent_message(decision),
                }
            )
        if not decision.is_allowed and queued is None:
            raise ToolFailed(agent_message(decision))

        async def run(approved: dict[str, Any], key: str) -> Any:
            # Values as the model sent them (validated), but for those the decision or an
            # approval changed (a written-out amount, a lower one): those arrive as JSON and are
            # validated again, so the tool gets the types it declares (a Decimal, not "41.00").
            changed = {k: v for k, v in approved.items() if sent.get(k) != v}
            arguments = {**tool_args, **changed}
            if changed:
                arguments = tool.args_validator.validate_python(arguments)
            return await super(GovernedToolset, self).call_tool(name, arguments, ctx, tool)

        try:
            result = await governor.arun(decision, info, run, execution=queued, arguments=governed)
        except ExecutionError as exc:
            raise ToolFailed(in_progress_message(exc)) from exc
        return result.value

    async def results(self, requests: DeferredToolRequests) -> DeferredToolResults:
        """The answers people recorded for a run's deferred approvals, to resume it with.

        An approved call is `ToolApproved` (it runs once, with the approved arguments); a
        rejected or expired one is `ToolDenied` with who refused and why. A call nobody has
        answered yet is left out: resume once every approval is decided.
        """
        results = DeferredToolResults()
        approvals = self.governor.guard.approvals
        for call in requests.approvals:
            approval_id = requests.metadata.get(call.tool_call_id, {}).get("approval_id")
            if not isinstance(approval_id, str):
                continue
            approval = await asyncio.to_thread(approvals.get, approval_id)
            if approval.status is ApprovalStatus.APPROVED:
                results.approvals[call.tool_call_id] = ToolApproved()
                results.answered_by[call.tool_call_id] = approval.decided_by or ""
            elif approval.status is not ApprovalStatus.PENDING:
                results.approvals[call.tool_call_id] = ToolDenied(rejection_message(approval))
                results.answered_by[call.tool_call_id] = approval.decided_by or ""
        return results
