"""One tool call, from any agent framework, turned into a proposal, decided and executed once.

Every front-end (LangChain tools and middleware, OpenAI tool calls, the decorator) describes the
call as a `ToolCallInfo`, and a `Governor` does the rest: it builds the proposal (the actor, the
case and the rationale come from configuration, the framework's run or a callable), derives the
idempotency key, decides, and runs an allowed call through `guard.executions` exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeAlias, TypeVar

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from discretion.approvals import Approval
from discretion.decision import Decision, Outcome
from discretion.errors import ConfigurationError, ExecutionError, ProposalError
from discretion.execution import Execution, ExecutionStatus
from discretion.integrations._setup import (
    SchemaParameters,
    check_tool,
    declared_mapping,
    read_schema,
)
from discretion.lineage import digest
from discretion.pipeline import Governed, MappedArguments, read_arguments
from discretion.policy import ToolSpec
from discretion.proposal import Actor, Proposal, Rationale

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = [
    "ActorSource",
    "Admission",
    "CallSources",
    "GovernedResult",
    "Governor",
    "RationaleSource",
    "TextSource",
    "ToolCallInfo",
    "agent_message",
    "call_key",
]

KEY_ARGUMENT = "idempotency_key"
"""A governed function or tool with an argument of this name receives the call's idempotency
key; a caller of a governed function who passes it chooses the key."""

_T = TypeVar("_T")
_M = TypeVar("_M", Actor, Rationale)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallInfo:
    """A tool call as an agent framework made it, with what the framework knows about the run."""

    tool: str
    """The tool's name."""
    arguments: dict[str, Any]
    """The arguments the model gave, as JSON (framework-injected values left out)."""
    call_id: str | None = None
    """The framework's id for this call (LangChain's `tool_call_id`, OpenAI's `call_id`)."""
    scope: str | None = None
    """What the call id is unique within (a LangGraph thread or run), when it is not unique on
    its own: some models number their calls `call_0`, `call_1` in every conversation."""
    is_call_id_unique: bool = True
    """False when the framework may reuse the call id for another call and no `scope` is known
    (a LangGraph run without a thread or run id): the key then comes from the arguments."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The run's configuration (a LangChain `RunnableConfig`), when there is one."""
    state: Any = None
    """The agent's state (LangGraph), when there is one."""
    context: Any = None
    """The run's context object (LangGraph runtime context), when there is one."""


ActorSource: TypeAlias = (
    "Actor | Mapping[str, Any] | Callable[[ToolCallInfo], Actor | Mapping[str, Any]] | None"
)
"""Who proposes the call: an `Actor`, its fields, or a callable that picks one per call. When
absent, the run's `configurable["discretion_actor"]`, then the context's `actor`, are used."""

TextSource: TypeAlias = "str | Callable[[ToolCallInfo], str | None] | None"
"""A case id (or other text) given once, or picked per call."""

RationaleSource: TypeAlias = (
    "Rationale | Mapping[str, Any] | Callable[[ToolCallInfo], Rationale | Mapping[str, Any]] | None"
)
"""Why the actor proposes the call. When absent, the tool's own `reason` and `rationale`
arguments, when it has them, are used."""


def _configured(info: ToolCallInfo, name: str) -> Any:
    configurable = info.config.get("configurable") if info.config else None
    if isinstance(configurable, Mapping) and configurable.get(f"discretion_{name}") is not None:
        return configurable[f"discretion_{name}"]
    context = info.context
    if isinstance(context, Mapping):
        return context.get(name)
    return getattr(context, name, None) if context is not None else None


def _validated(model: type[_M], value: object, info: ToolCallInfo, name: str) -> _M:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ProposalError(
            f"tool call {info.tool!r}: the {name} is not valid: {exc}", field=name
        ) from exc


def call_key(info: ToolCallInfo, case_id: str | None) -> str:
    """The idempotency key of a tool call.

    From the framework's call id when there is one, within its `scope` (the LangGraph thread
    or run) when it has one. Otherwise, and when the call id may be reused with no scope to
    tell the calls apart, from the case, the tool and the canonical arguments: a retried call
    gets the same key (and replays), a call with other arguments a new one.
    """
    if info.call_id and (info.scope or info.is_call_id_unique):
        scope = f"{info.scope}:" if info.scope else ""
        key = f"{info.tool}:{scope}{info.call_id}"
        if len(key) <= 200:
            return key
    return f"{info.tool}:{case_id or '-'}:{digest(info.arguments)[:40]}"[-200:]


def agent_message(decision: Decision) -> str:
    """What the agent is told when a call did not run.

    The decision's explanation and, when routed, the approval id the agent can quote.
    """
    match decision.outcome:
        case Outcome.ROUTE:
            return (
                f"{decision.explanation} Approval id: {decision.id}. The action runs once a"
                f" {decision.required_role} approves it; do not call the tool again for it."
            )
        case Outcome.DENY:
            return decision.explanation
        case Outcome.ALLOW | Outcome.ALLOW_EXCEPTION:
            return decision.explanation


def is_correctable(exc: ProposalError) -> bool:
    """Whether the model can correct what is wrong by calling again with other arguments.

    Not when the actor is at fault (one configured, or found in the run, that the pack does not
    know): that is a set-up mistake, and every call would fail the same way.
    """
    return not (exc.field == "actor" or (exc.field or "").startswith("actor."))


def proposal_error_message(tool: str, exc: ProposalError) -> str:
    """What the agent is told when its call could not be decided: its arguments are not valid."""
    return (
        f"The call to {tool} was not made: {str(exc).rstrip('.')}. Correct the arguments and call"
        " again, or tell the customer it cannot be done."
    )


def rejection_message(approval: Approval) -> str:
    """What the agent is told when a person rejected (or let expire) its routed call."""
    who = approval.decided_by or "an approver"
    role = approval.decided_role
    note = approval.note
    return (
        f"The request for {approval.action} was {approval.status.value} by {who}"
        + (f" ({role})" if role else "")
        + (f": {note}" if note else "")
        + ". Do not run the action; tell the customer it cannot be done."
    )


def in_progress_message(exc: ExecutionError) -> str:
    """What the agent is told when the same call is already running."""
    return (
        f"This call ({exc.key}) was already started and has not finished; it was not run"
        " again. Do not retry it: tell the customer it is being processed."
    )


class Admission(NamedTuple):
    """A decided call: the decision, the execution an approval queued, the governed arguments."""

    decision: Decision
    execution: Execution | None
    """The queued execution of an approved routed call; None otherwise."""
    arguments: dict[str, Any]
    """The arguments the decision governed, with the amount in canonical form: what runs."""


class ToolReportedError(Exception):
    """The tool answered with an error instead of raising: recorded as a failed execution."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernedResult:
    """What happened to one governed call."""

    decision: Decision | None
    """The decision; None for a tool the pack does not govern (it ran untouched)."""
    execution: Execution | None = None
    """The exactly-once record of the run; None when the call did not run."""
    value: Any = None
    """What the tool returned: the live value when it ran now, the stored result (as JSON)
    when an earlier run with the same key is replayed; None when it did not run."""

    @property
    def has_run(self) -> bool:
        """Whether the tool ran, now or in an earlier attempt with the same key."""
        return self.execution is not None and self.execution.status is ExecutionStatus.SUCCEEDED

    @property
    def is_replay(self) -> bool:
        """Whether the value is an earlier run's stored result."""
        return self.execution is not None and self.execution.is_replay


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSources:
    """Where each part of a proposal that a tool call does not carry comes from.

    Every front-end takes the same four (`actor=`, `case_id=`, `customer_id=`, `rationale=`):
    a value given once, a callable picking one per call, or, when absent, the run's
    configuration (`configurable["discretion_actor"]`, ...) and the tool's own arguments.
    """

    actor: ActorSource = None
    """Who proposes the calls (see `ActorSource`)."""
    case_id: TextSource = None
    """The support case; the pack may also read it from the tool's arguments."""
    customer_id: TextSource = None
    """The customer; the pack may also read it from the tool's arguments."""
    rationale: RationaleSource = None
    """Why (see `RationaleSource`)."""

    def actor_of(self, info: ToolCallInfo) -> Actor:
        """The actor for this call.

        Raises:
            ConfigurationError: none was configured or found in the run.
        """
        source = self.actor
        value = source(info) if callable(source) else source
        if value is None:
            value = _configured(info, "actor")
        if value is None:
            raise ConfigurationError(
                f"tool call {info.tool!r}: no actor to propose it; pass actor= to the"
                " integration, or put 'discretion_actor' in the run's configurable"
            )
        return _validated(Actor, value, info, "actor")

    def text_of(self, name: str, info: ToolCallInfo) -> str | None:
        """The `case_id` or `customer_id` for this call, when one was given or configured."""
        source: TextSource = getattr(self, name)
        value = source(info) if callable(source) else source
        if value is None:
            value = _configured(info, name)
        return str(value) if value is not None else None

    def rationale_of(self, info: ToolCallInfo) -> Rationale:
        """The rationale for this call."""
        source = self.rationale
        value = source(info) if callable(source) else source
        if value is None:
            reason = info.arguments.get("reason")
            text = info.arguments.get("rationale")
            return Rationale(
                reason=reason if isinstance(reason, str) and reason else None,
                text=text if isinstance(text, str) else "",
            )
        return _validated(Rationale, value, info, "rationale")


class Governor:
    """Turns tool calls into proposals, decides them, and executes the allowed ones once.

    Args:
        guard: decides and records.
        actor: who proposes the calls (see `ActorSource`).
        case_id: the support case; the pack may also read it from the tool's arguments.
        customer_id: the customer; the pack may also read it from the tool's arguments.
        rationale: why (see `RationaleSource`).
        action: the governed action, for tools the pack does not map by name.
        fields: for tools the pack does not map: which argument carries the amount, the
            currency, the customer, the case and the order (`{"amount": "value", ...}`).
    """

    def __init__(
        self,
        guard: Guard,
        *,
        actor: ActorSource = None,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
        action: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        self.guard = guard
        self.sources = CallSources(
            actor=actor, case_id=case_id, customer_id=customer_id, rationale=rationale
        )
        """Where the actor, case, customer and rationale of each call come from."""
        self._action = action
        self._fields = dict(fields or {})

    def governs(self, tool: str) -> bool:
        """Whether calls to `tool` are decided.

        They are when the pack maps the tool, routes unknown tools, or an action was configured.
        """
        return self._action is not None or self.guard.pack.governs(tool)

    # Building the proposal ---------------------------------------------------------------------

    def actor(self, info: ToolCallInfo) -> Actor:
        """The actor for this call (see `CallSources.actor_of`)."""
        return self.sources.actor_of(info)

    def rationale(self, info: ToolCallInfo) -> Rationale:
        """The rationale for this call."""
        return self.sources.rationale_of(info)

    def mapping(self, tool: str) -> ToolSpec | None:
        """How `tool`'s arguments are read: the pack's mapping, else the declared `fields`.

        None for a tool the pack does not map when no action was configured.
        """
        mapped = self.guard.pack.tools.get(tool)
        if mapped is not None:
            return mapped[1]
        if self._action is None:
            return None
        return declared_mapping(tool, self._fields)

    def read(self, tool: str, arguments: Mapping[str, Any]) -> MappedArguments | None:
        """The amount and ids a call of `tool` carries, read as the pipeline reads them.

        None for a tool whose arguments nothing maps (see `mapping`).
        """
        spec = self.mapping(tool)
        if spec is None:
            return None
        pack = self.guard.pack
        mapped = pack.tools.get(tool)
        action = pack.actions.get(mapped[0] if mapped is not None else self._action or "")
        return read_arguments(
            tool,
            spec,
            arguments,
            currency=pack.currency,
            # The arguments its action declares are governed: `extra_arguments: refuse` lets
            # them through, as the pipeline does.
            args=action.args if action is not None else None,
            unit=action.unit if action is not None else None,
        )

    def check(self, tool: str, parameters: Collection[str] | None) -> bool:
        """Check a tool as it is wrapped; return whether its calls are decided.

        Raises:
            ConfigurationError: the tool would run ungoverned (neither mapped nor listed as
                read-only), the action is not the pack's, or the mapping names an argument the
                tool does not take (see `discretion.integrations._setup`).
        """
        return check_tool(
            self.guard.pack, tool, parameters, action=self._action, fields=self._fields
        )

    def check_schema(self, tool: str, schema: Any) -> tuple[bool, SchemaParameters | None]:
        """Check a tool by its JSON schema as it is wrapped: whether it is decided, what it reads.

        A decided tool's schema must be read (`read_schema`): one that cannot be is refused,
        never taken to accept anything. A read-only tool's is not read (None).

        Raises:
            ConfigurationError: as `check`, or the decided tool's schema cannot be read.
        """
        if not self.governs(tool):
            return self.check(tool, None), None
        read = read_schema(tool, schema)
        return self.check(tool, read.names if read is not None else None), read

    def proposal(self, info: ToolCallInfo) -> Proposal:
        """The proposal a tool call stands for, with its idempotency key.

        Raises:
            ProposalError: the call's arguments or the configured sources are not valid.
        """
        case_id = self.sources.text_of("case_id", info)
        customer_id = self.sources.text_of("customer_id", info)
        data: dict[str, Any] = {
            "actor": self.actor(info),
            # As JSON, so that bad arguments (a NaN, nesting too deep) are a ProposalError.
            "tool": {"name": info.tool, "arguments": info.arguments},
            "rationale": self.rationale(info),
        }
        if self._action is not None and info.tool not in self.guard.pack.tools:
            data["action"] = self._action
        if case_id is not None:
            data["case_id"] = case_id
        if customer_id is not None:
            data["customer_id"] = customer_id
        if case_id is None:
            # The one reader of tool arguments, as the pipeline reads them.
            read = self.read(info.tool, info.arguments)
            case_id = read.case_id if read is not None else None
        # Validated before the key is derived from the arguments: a NaN is a ProposalError.
        proposal = Proposal.parse(data, source=f"tool call {info.tool!r}")
        return proposal.model_copy(update={"idempotency_key": call_key(info, case_id)})

    # Deciding and running ----------------------------------------------------------------------

    def decide(self, info: ToolCallInfo) -> Decision:
        """Decide the call (a retry with the same key gets the same decision)."""
        return self.govern(info).decision

    async def adecide(self, info: ToolCallInfo) -> Decision:
        """`decide` for async callers."""
        return (await self.agovern(info)).decision

    def govern(self, info: ToolCallInfo) -> Governed:
        """Decide the call; with the arguments it governed, which are what the tool runs with."""
        return self.guard.pipeline.govern(self.proposal(info), mapping=self.mapping(info.tool))

    async def agovern(self, info: ToolCallInfo) -> Governed:
        """`govern` for async callers."""
        proposal = self.proposal(info)
        return await self.guard.pipeline.agovern(proposal, mapping=self.mapping(info.tool))

    def queued(self, decision: Decision) -> Execution | None:
        """The execution an approval of a routed decision queued, if it was approved."""
        if decision.outcome is not Outcome.ROUTE:
            return None
        found = self.guard.executions.for_decision(decision.id)
        return found[0] if found else None

    async def aqueued(self, decision: Decision) -> Execution | None:
        """`queued` for async callers."""
        if decision.outcome is not Outcome.ROUTE:
            return None  # nothing to look up, and no hop to a thread for it
        return await self.guard.pipeline.arun(self.queued, decision)

    def admit(self, info: ToolCallInfo) -> Admission:
        """Decide the call, and find the execution an approval of it queued.

        The call may run when the decision allows it, or when that execution is there.
        """
        governed = self.govern(info)
        return Admission(governed.decision, self.queued(governed.decision), governed.arguments)

    async def aadmit(self, info: ToolCallInfo) -> Admission:
        """`admit` for async callers."""
        governed = await self.agovern(info)
        queued = await self.aqueued(governed.decision)
        return Admission(governed.decision, queued, governed.arguments)

    @staticmethod
    def _target(
        decision: Decision,
        info: ToolCallInfo,
        execution: Execution | None,
        arguments: Mapping[str, Any],
    ) -> dict[str, Any]:
        # The queued execution of an approved call runs with the arguments the approval fixed.
        if execution is not None:
            return {
                "decision_id": execution.decision_id,
                "key": execution.key,
                "tool": execution.tool,
                "arguments": execution.arguments,
            }
        return {
            "decision_id": decision.id,
            "key": decision.execution_key,
            "tool": info.tool,
            "arguments": dict(arguments),
        }

    def run(
        self,
        decision: Decision,
        info: ToolCallInfo,
        call: Callable[[dict[str, Any], str], _T],
        *,
        record: Callable[[_T], Any] = to_jsonable_python,
        failed: Callable[[_T], str | None] | None = None,
        execution: Execution | None = None,
        arguments: Mapping[str, Any],
    ) -> GovernedResult:
        """Run an allowed (or approved and queued) call exactly once.

        `call(arguments, key)` runs the tool; `record` turns what it returns into what is
        stored; `failed` says what went wrong when the tool answered with an error instead of
        raising (the execution is then recorded as failed, and may be retried). `arguments` are
        the ones the decision governed (`Admission.arguments`): the tool runs with them, never
        with the call as the model wrote it. `execution` is the queued execution of an approved
        call, which runs with the arguments the approval fixed.
        """
        kept = _Kept(record, failed)
        target = self._target(decision, info, execution, arguments)
        try:
            done = self.guard.executions.run(
                **target, call=lambda arguments, key: kept(call(arguments, key))
            )
        except ToolReportedError:
            return kept.failure(decision, self.guard.executions.get(target["key"]))
        return kept.result(decision, done)

    async def arun(
        self,
        decision: Decision,
        info: ToolCallInfo,
        call: Callable[[dict[str, Any], str], Awaitable[_T]],
        *,
        record: Callable[[_T], Any] = to_jsonable_python,
        failed: Callable[[_T], str | None] | None = None,
        execution: Execution | None = None,
        arguments: Mapping[str, Any],
    ) -> GovernedResult:
        """`run` for async tools."""
        kept = _Kept(record, failed)
        target = self._target(decision, info, execution, arguments)

        async def once(arguments: dict[str, Any], key: str) -> Any:
            return kept(await call(arguments, key))

        try:
            done = await self.guard.executions.arun(**target, call=once)
        except ToolReportedError:
            failure = await asyncio.to_thread(self.guard.executions.get, target["key"])
            return kept.failure(decision, failure)
        return kept.result(decision, done)


class _Kept(Generic[_T]):
    """One run's live value, and what of it is stored."""

    def __init__(
        self, record: Callable[[_T], Any], failed: Callable[[_T], str | None] | None
    ) -> None:
        self._record = record
        self._failed = failed
        self.live: list[_T] = []

    def __call__(self, value: _T) -> Any:
        self.live.append(value)
        problem = self._failed(value) if self._failed is not None else None
        if problem is not None:
            raise ToolReportedError(problem)
        return self._record(value)

    def failure(self, decision: Decision, execution: Execution | None) -> GovernedResult:
        """The tool answered with an error: the failed execution, with what it answered."""
        return GovernedResult(decision=decision, execution=execution, value=self.live[0])

    def result(self, decision: Decision, done: Execution) -> GovernedResult:
        """The live value when the tool ran now, else the stored result of an earlier run."""
        return GovernedResult(
            decision=decision, execution=done, value=self.live[0] if self.live else done.result
        )
