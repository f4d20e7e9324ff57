"""LangChain: governed langchain-core tools, and agent middleware for `create_agent`.

Needs the `langchain` extra: `pip install 'discretion[langchain]'`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from discretion.approvals import Approval, ApprovalStatus
from discretion.decision import Decision, Outcome
from discretion.errors import ConfigurationError, ExecutionError, ProposalError
from discretion.execution import Execution, ToolCallable
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
)
from discretion.integrations._setup import parameters_of
from discretion.money import Money
from discretion.proposal import Actor

try:
    from langchain.agents.middleware import AgentMiddleware
    from langchain_core.messages import ToolMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from langgraph.types import Command, interrupt
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        f"discretion's LangChain integration needs {exc.name}: pip install 'discretion[langchain]'"
    ) from exc

from pydantic_core import to_jsonable_python

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = [
    "ApprovalAnswer",
    "DiscretionMiddleware",
    "GovernedTool",
    "tool_callables",
    "wrap_tools",
]

INTERRUPT_KIND = "discretion.approval"
"""The `type` of the value `DiscretionMiddleware` interrupts with."""


def _model_fields(tool: BaseTool | None) -> set[str] | None:
    """The arguments the model gives (injected ones left out), when the tool says."""
    if tool is None:
        return None
    schema = tool.tool_call_schema
    if isinstance(schema, dict):
        properties = schema.get("properties")
        return set(properties) if isinstance(properties, Mapping) else None
    return set(_fields(schema))


def _fields(schema: type[Any]) -> Mapping[str, Any]:
    # Pydantic v2 models, and the v1 models some older tools still declare.
    found: Mapping[str, Any] = getattr(schema, "model_fields", None) or getattr(
        schema, "__fields__", {}
    )
    return found


def _takes_key(tool: BaseTool | None) -> bool:
    if tool is None or isinstance(tool.args_schema, dict):
        return False
    visible = _model_fields(tool) or set()
    return KEY_ARGUMENT in _fields(tool.get_input_schema()) and KEY_ARGUMENT not in visible


def _visible(tool: BaseTool | None, arguments: Mapping[str, Any]) -> dict[str, Any]:
    fields = _model_fields(tool)
    kept = {k: v for k, v in arguments.items() if fields is None or k in fields}
    plain: dict[str, Any] = to_jsonable_python(kept, fallback=str)
    return plain


def _content(output: Any) -> Any:
    """What is stored of a tool's output: a message's content, or the value as JSON."""
    if isinstance(output, ToolMessage):
        return output.content
    return to_jsonable_python(output, fallback=str)


def _tool_error(output: Any) -> str | None:
    """What went wrong when a tool answered with an error message (ToolNode's handled errors)."""
    if isinstance(output, ToolMessage) and output.status == "error":
        return str(output.content)
    return None


def _decision_artifact(decision: Decision) -> dict[str, Any]:
    artifact: dict[str, Any] = {
        "decision_id": decision.id,
        "outcome": decision.outcome.value,
        "rules": list(decision.rules),
    }
    if decision.outcome is Outcome.ROUTE:
        artifact["approval_id"] = decision.id
        artifact["required_role"] = decision.required_role
    return artifact


def _refusal(decision: Decision, call_id: str, tool: str, text: str | None = None) -> ToolMessage:
    """The message a routed or denied call returns instead of running."""
    return ToolMessage(
        content=text or agent_message(decision),
        tool_call_id=call_id,
        name=tool,
        status="error" if decision.outcome is Outcome.DENY else "success",
        artifact=_decision_artifact(decision),
    )


def _replayed(result: GovernedResult, call_id: str | None, tool: str) -> Any:
    """A stored result, returned to the framework in the shape a live run would have."""
    if call_id is None:
        return result.value
    content = result.value if isinstance(result.value, (str, list)) else str(result.value)
    return ToolMessage(content=content, tool_call_id=call_id, name=tool)


def _with_key(config: RunnableConfig | None, decision: Decision, key: str) -> RunnableConfig:
    """The run's config, whose metadata tells the tool its decision and idempotency key."""
    patched: dict[str, Any] = dict(config or {})
    patched["metadata"] = {
        **dict(patched.get("metadata") or {}),
        "discretion_decision_id": decision.id,
        "discretion_idempotency_key": key,
    }
    return cast("RunnableConfig", patched)


class GovernedTool(BaseTool):
    """A langchain-core tool whose calls are decided before the inner tool runs, once per key.

    Same name, description and argument schema as the inner tool. Allowed calls run the inner
    tool; routed calls return a `ToolMessage` with the approval id; denied calls return a
    `ToolMessage` with `status="error"`. The message's `artifact` carries the decision id, the
    outcome and the rule ids. Build with `Guard.wrap_tools`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    """The tool that does the work."""
    governor: Any = Field(exclude=True)
    """Decides and runs calls (a `discretion.integrations.Governor`)."""

    @classmethod
    def wrap(cls, tool: BaseTool, governor: Governor) -> GovernedTool:
        """Govern `tool`."""
        return cls(
            name=tool.name,
            description=tool.description,
            args_schema=tool.args_schema,
            return_direct=tool.return_direct,
            inner=tool,
            governor=governor,
            metadata={**(tool.metadata or {}), "discretion_governed": True},
            tags=tool.tags,
        )

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """The inner tool's input schema, injected arguments included."""
        return cast("type[BaseModel]", self.inner.get_input_schema(config))

    def _split(self, tool_input: Any) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        """(call id, full arguments, arguments as the model gave them) of an input."""
        if isinstance(tool_input, Mapping) and tool_input.get("type") == "tool_call":
            arguments = dict(tool_input.get("args") or {})
            call_id = tool_input.get("id")
        elif isinstance(tool_input, Mapping):
            arguments, call_id = dict(tool_input), None
        else:
            fields = sorted(_model_fields(self.inner) or ())
            if len(fields) != 1:
                raise ProposalError(
                    f"tool {self.name!r} takes {len(fields)} arguments; call it with a dict"
                )
            arguments, call_id = {fields[0]: tool_input}, None
        schema = self.inner.tool_call_schema
        visible = _visible(self.inner, arguments)
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            # Malformed arguments fail here, before anything is decided or recorded.
            schema.model_validate(visible)
        return (str(call_id) if call_id else None), arguments, visible

    def _prepare(
        self, tool_input: Any, config: RunnableConfig | None
    ) -> tuple[ToolCallInfo, dict[str, Any]]:
        call_id, arguments, visible = self._split(tool_input)
        info = ToolCallInfo(tool=self.name, arguments=visible, call_id=call_id, config=config or {})
        return info, arguments

    def _input(
        self, info: ToolCallInfo, arguments: dict[str, Any], approved: Mapping[str, Any], key: str
    ) -> Any:
        merged = {**arguments, **approved}
        if _takes_key(self.inner):
            merged[KEY_ARGUMENT] = key
        if info.call_id is None:
            return merged
        return {"type": "tool_call", "name": self.name, "args": merged, "id": info.call_id}

    def _answer(self, decision: Decision, info: ToolCallInfo, text: str | None = None) -> Any:
        message = text or agent_message(decision)
        if info.call_id is None:
            return message
        return _refusal(decision, info.call_id, self.name, message)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Decide the call; run the inner tool once when allowed."""
        info, arguments = self._prepare(input, config)
        governor: Governor = self.governor
        decision, queued, governed = governor.admit(info)
        if not decision.is_allowed and queued is None:
            return self._answer(decision, info)

        def run(approved: dict[str, Any], key: str) -> Any:
            return self.inner.invoke(
                self._input(info, arguments, approved, key),
                _with_key(config, decision, key),
                **kwargs,
            )

        try:
            result = governor.run(
                decision,
                info,
                run,
                record=_content,
                failed=_tool_error,
                execution=queued,
                arguments=governed,
            )
        except ExecutionError as exc:
            return self._answer(decision, info, in_progress_message(exc))
        return _replayed(result, info.call_id, self.name) if result.is_replay else result.value

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """`invoke` for async agents."""
        info, arguments = self._prepare(input, config)
        governor: Governor = self.governor
        decision, queued, governed = await governor.aadmit(info)
        if not decision.is_allowed and queued is None:
            return self._answer(decision, info)

        async def run(approved: dict[str, Any], key: str) -> Any:
            return await self.inner.ainvoke(
                self._input(info, arguments, approved, key),
                _with_key(config, decision, key),
                **kwargs,
            )

        try:
            result = await governor.arun(
                decision,
                info,
                run,
                record=_content,
                failed=_tool_error,
                execution=queued,
                arguments=governed,
            )
        except ExecutionError as exc:
            return self._answer(decision, info, in_progress_message(exc))
        return _replayed(result, info.call_id, self.name) if result.is_replay else result.value

    def _run(self, *args: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        # Reached only through `BaseTool.run`, which has validated the arguments already.
        kwargs.pop("run_manager", None)
        return self.invoke(kwargs if not args else args[0], config)


def wrap_tools(
    guard: Guard,
    tools: Sequence[BaseTool],
    *,
    actor: ActorSource = None,
    case_id: TextSource = None,
    customer_id: TextSource = None,
    rationale: RationaleSource = None,
) -> list[BaseTool]:
    """Govern the tools the pack maps; return those it lists as read-only untouched.

    See `Guard.wrap_tools`.

    Raises:
        ConfigurationError: a tool the pack neither maps nor lists in `ungoverned_tools`, or
            whose mapping names an argument the tool does not take.
    """
    governor = Governor(
        guard, actor=actor, case_id=case_id, customer_id=customer_id, rationale=rationale
    )
    wrapped: list[BaseTool] = []
    for tool in tools:
        if not isinstance(tool, BaseTool):
            raise ConfigurationError(
                f"wrap_tools takes langchain-core tools; {tool!r} is a {type(tool).__name__}:"
                " decorate it with langchain_core.tools.tool first"
            )
        if isinstance(tool, GovernedTool):
            wrapped.append(tool)
            continue
        # An unmapped tool is refused here, not at its first call (fail closed on set-up).
        is_governed = governor.check(tool.name, parameters_of(tool))
        wrapped.append(GovernedTool.wrap(tool, governor) if is_governed else tool)
    return wrapped


def tool_callables(tools: Sequence[BaseTool]) -> dict[str, ToolCallable]:
    """The tools as `Executions.run_pending` takes them: run an approved call with its key.

    Example:
        ```python
        guard.executions.run_pending(tool_callables(tools))
        ```
    """

    def callable_for(tool: BaseTool) -> ToolCallable:
        inner = tool.inner if isinstance(tool, GovernedTool) else tool

        def call(arguments: dict[str, Any], key: str) -> Any:
            given = {**arguments, KEY_ARGUMENT: key} if _takes_key(inner) else arguments
            return _content(inner.invoke(given))

        return call

    return {tool.name: callable_for(tool) for tool in tools}


class ApprovalAnswer(BaseModel):
    """How an approver answers an interrupted call; resume with `Command(resume=answer)`.

    Example:
        ```python
        agent.invoke(Command(resume={"approve": True, "approver": {"id": "maria",
                     "role": "tier2", "is_ai": False}, "note": "photos show the damage",
                     "amount": "30.00"}), config)
        ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    approve: bool
    """True to approve, False to reject."""
    approver: Actor
    """Who answers: recorded with the approval, and checked for authority."""
    note: str = ""
    """Why; recorded with the approval."""
    amount: Money | str | None = None
    """An edited amount (only lower), in the pack's currency when given as text."""


class DiscretionMiddleware(AgentMiddleware):
    """LangChain v1 agent middleware that governs the tool calls the pack governs.

    Tools the pack does not govern run untouched. Allowed calls run once per tool-call id;
    denied calls return an error `ToolMessage`. Routed calls:

    - `mode="async"`: return a `ToolMessage` with the approval id; once a person approves,
      the approval queues the call and `guard.executions.run_pending(tool_callables(tools))`
      runs it (or the agent's retry of the same call runs it).
    - `mode="interactive"`: pause the run with LangGraph `interrupt()` (the agent needs a
      checkpointer); resume with `Command(resume=ApprovalAnswer(...).model_dump())`. The
      answer is recorded through `guard.approvals` with the approver, and an approved call runs
      once with the approved arguments (an edited amount included).

    Args:
        guard: decides and records.
        mode: what a routed call does: "async" or "interactive".
        actor: who proposes the calls (see `ActorSource`); by default the run's
            `configurable["discretion_actor"]` or the runtime context's `actor`.
        case_id: the support case, when the tools' arguments do not carry it.
        customer_id: the customer, when the tools' arguments do not carry it.
        rationale: why; by default the tool's own `reason` and `rationale` arguments.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        mode: Literal["async", "interactive"] = "async",
        actor: ActorSource = None,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
    ) -> None:
        super().__init__()
        if mode not in ("async", "interactive"):
            raise ConfigurationError(f"mode must be 'async' or 'interactive', not {mode!r}")
        self.guard = guard
        self.mode = mode
        self.governor = Governor(
            guard, actor=actor, case_id=case_id, customer_id=customer_id, rationale=rationale
        )

    def _info(self, request: ToolCallRequest) -> ToolCallInfo:
        call = request.tool_call
        runtime = request.runtime
        return ToolCallInfo(
            tool=call["name"],
            arguments=_visible(request.tool, call["args"]),
            call_id=call.get("id"),
            config=getattr(runtime, "config", None) or {},
            state=request.state,
            context=getattr(runtime, "context", None),
        )

    def _request(
        self, request: ToolCallRequest, approved: Mapping[str, Any], key: str
    ) -> ToolCallRequest:
        arguments = {**request.tool_call["args"], **approved}
        if _takes_key(request.tool):
            arguments[KEY_ARGUMENT] = key
        return request.override(tool_call={**request.tool_call, "args": arguments})

    # Interactive approvals -------------------------------------------------------------------

    @staticmethod
    def _question(decision: Decision, info: ToolCallInfo) -> dict[str, Any]:
        return {
            "type": INTERRUPT_KIND,
            "approval_id": decision.id,
            "tool": info.tool,
            "arguments": info.arguments,
            "action": decision.action,
            "amount": decision.amount.to_json() if decision.amount is not None else None,
            "required_role": decision.required_role,
            "rules": list(decision.rules),
            "explanation": decision.explanation,
        }

    def _record_answer(self, decision: Decision, raw: Any) -> Approval:
        answer = ApprovalAnswer.model_validate(raw)
        approvals = self.guard.approvals
        if not answer.approve:
            return approvals.reject(decision.id, approver=answer.approver, note=answer.note)
        amount = answer.amount
        if isinstance(amount, str):
            amount = Money.of(amount, self.guard.pack.currency)
        return approvals.approve(
            decision.id, approver=answer.approver, note=answer.note, amount=amount
        )

    @staticmethod
    def _rejected(decision: Decision, info: ToolCallInfo, approval: Approval) -> ToolMessage:
        who = approval.decided_by or "an approver"
        role = approval.decided_role
        note = approval.note
        text = (
            f"The request for {decision.action} was {approval.status.value} by {who}"
            + (f" ({role})" if role else "")
            + (f": {note}" if note else "")
            + ". Do not run the action; tell the customer it cannot be done."
        )
        message = _refusal(decision, info.call_id or "", info.tool, text)
        message.status = "error"
        return message

    # The hooks -------------------------------------------------------------------------------

    def _governed(self, request: ToolCallRequest) -> bool:
        return self.governor.governs(request.tool_call["name"])

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Decide a governed call; run it once when allowed or approved."""
        if not self._governed(request):
            return handler(request)
        info = self._info(request)
        governor = self.governor
        decision, queued, governed = governor.admit(info)
        if decision.outcome is Outcome.ROUTE and queued is None and self.mode == "interactive":
            approval = self.guard.approvals.get(decision.id)
            if approval.status is ApprovalStatus.PENDING:
                # On resume the node runs again from the top: the decision replays by its key
                # and interrupt() returns the approver's answer.
                approval = self._record_answer(decision, interrupt(self._question(decision, info)))
            if approval.status is not ApprovalStatus.APPROVED:
                return self._rejected(decision, info, approval)
            queued = governor.queued(decision)
        if not decision.is_allowed and queued is None:
            return _refusal(decision, info.call_id or "", info.tool)
        return self._execute(request, handler, decision, info, queued, governed)

    def _execute(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
        decision: Decision,
        info: ToolCallInfo,
        queued: Execution | None,
        governed: dict[str, Any],
    ) -> ToolMessage | Command[Any]:
        def run(approved: dict[str, Any], key: str) -> ToolMessage | Command[Any]:
            return handler(self._request(request, approved, key))

        try:
            result = self.governor.run(
                decision,
                info,
                run,
                record=_content,
                failed=_tool_error,
                execution=queued,
                arguments=governed,
            )
        except ExecutionError as exc:
            return _refusal(decision, info.call_id or "", info.tool, in_progress_message(exc))
        return self._delivered(result, info)

    @staticmethod
    def _delivered(result: GovernedResult, info: ToolCallInfo) -> ToolMessage | Command[Any]:
        """What the tool node returns: the live answer, or a replayed one as a message."""
        if result.is_replay:
            replayed: ToolMessage = _replayed(result, info.call_id or "", info.tool)
            return replayed
        value: ToolMessage | Command[Any] = result.value
        return value

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """`wrap_tool_call` for async agents."""
        if not self._governed(request):
            return await handler(request)
        info = self._info(request)
        governor = self.governor
        decision, queued, governed = await governor.aadmit(info)
        if decision.outcome is Outcome.ROUTE and queued is None and self.mode == "interactive":
            approval = await asyncio.to_thread(self.guard.approvals.get, decision.id)
            if approval.status is ApprovalStatus.PENDING:
                answer = interrupt(self._question(decision, info))
                approval = await asyncio.to_thread(self._record_answer, decision, answer)
            if approval.status is not ApprovalStatus.APPROVED:
                return self._rejected(decision, info, approval)
            queued = await governor.aqueued(decision)
        if not decision.is_allowed and queued is None:
            return _refusal(decision, info.call_id or "", info.tool)

        async def run(approved: dict[str, Any], key: str) -> ToolMessage | Command[Any]:
            return await handler(self._request(request, approved, key))

        try:
            result = await governor.arun(
                decision,
                info,
                run,
                record=_content,
                failed=_tool_error,
                execution=queued,
                arguments=governed,
            )
        except ExecutionError as exc:
            return _refusal(decision, info.call_id or "", info.tool, in_progress_message(exc))
        return self._delivered(result, info)
