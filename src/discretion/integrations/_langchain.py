"""LangChain: governed langchain-core tools, and agent middleware for `create_agent`.

Needs the `langchain` extra: `pip install 'discretion[langchain]'`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from discretion.approvals import Approval, ApprovalStatus
from discretion.decision import Decision, Outcome
from discretion.errors import ApprovalError, ConfigurationError, ExecutionError, ProposalError
from discretion.execution import Execution, ToolCallable
from discretion.integrations._call import (
    KEY_ARGUMENT,
    ActorSource,
    Admission,
    GovernedResult,
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
from discretion.integrations._setup import parameters_of
from discretion.money import Money
from discretion.proposal import Actor

try:
    from langchain.agents.middleware import AgentMiddleware
    from langchain_core.messages import ToolMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool
    from langgraph.config import get_config
    from langgraph.constants import CONFIG_KEY_CHECKPOINTER
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
    "DiscretionMiddleware",
    "GovernedTool",
    "review_request",
    "tool_callables",
    "wrap_tools",
]


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


def _names(name: str, info: Any) -> set[str]:
    """Every key a pydantic field is read under: its name and its aliases."""
    names = {name}
    for alias in (getattr(info, "alias", None), getattr(info, "validation_alias", None)):
        if isinstance(alias, str):
            names.add(alias)
        for choice in getattr(alias, "choices", None) or ():
            if isinstance(choice, str):
                names.add(choice)
    return names


def _injected(tool: BaseTool) -> set[str]:
    """The arguments the runtime injects (state, config, a store): the model never gives them."""
    if isinstance(tool.args_schema, dict):
        return set()
    # By name: the schema the model is shown is a copy of the tool's without its aliases.
    shown = _model_fields(tool) or set()
    return {
        key
        for name, info in _fields(tool.get_input_schema()).items()
        if name not in shown
        for key in _names(name, info)
    }


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation holds (`Body`, `Body | None`, `list[Body]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models(arg)]


def _keyed(annotation: Any) -> bool:
    """Whether an annotation holds a mapping of models (`dict[str, Body]`): its values are."""
    origin = get_origin(annotation)
    if origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
        return True
    return any(_keyed(arg) for arg in get_args(annotation))


def _objects(value: Any, path: str, *, keyed: bool) -> list[tuple[Mapping[str, Any], str]]:
    """The objects inside a field's value a model reads, with where each is."""
    if isinstance(value, (list, tuple)):
        return [
            (item, f"{path}[{index}].")
            for index, item in enumerate(value)
            if isinstance(item, Mapping)
        ]
    if not isinstance(value, Mapping):
        return []
    if keyed:
        found = [
            (item, f"{path}.{key}.") for key, item in value.items() if isinstance(item, Mapping)
        ]
        # A mapping of models, or one model where the annotation allows both: read it as each.
        return [*found, (value, f"{path}.")]
    return [(value, f"{path}.")]


def _by_name(tool: str, fields: Mapping[str, Any], given: Mapping[str, Any], at: str = "") -> None:
    """Refuse a field given under an alias, at any depth of the tool's models.

    The model is shown each field by its name, and the pack reads it by its name: given under
    an alias it would be decided as absent (or as the name's value) and run as the alias's.

    Raises:
        ProposalError: naming the field and the key it came under.
    """
    for name, info in fields.items():
        keys = sorted(_names(name, info) & given.keys())
        path = f"{at}{name}"
        if len(keys) > 1:
            raise ProposalError(
                f"tool {tool!r} argument {path!r} is given twice, as"
                f" {' and '.join(repr(f'{at}{key}') for key in keys)}; send it once, as {path!r}",
                field=f"tool.arguments.{at}{keys[-1]}",
            )
        if not keys:
            continue
        if keys[0] != name:
            raise ProposalError(
                f"tool {tool!r} argument {path!r} is given as {at + keys[0]!r}, another name the"
                f" tool reads it by; send it as {path!r}",
                field=f"tool.arguments.{at}{keys[0]}",
            )
        annotation = getattr(info, "annotation", None)
        for model in _models(annotation):
            # Each model the value may be read as (a union's second one, too): pydantic reads
            # it as whichever fits, aliases and all.
            for item, at_item in _objects(given[name], path, keyed=_keyed(annotation)):
                _by_name(tool, _fields(model), item, at_item)


def _visible(tool: BaseTool | None, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments the model gave: all but those the runtime injects, each decided on.

    A key the tool's schema does not show is kept, not dropped: the tool may read it (under an
    alias, as an extra), so it is governed like any other (a pack with `extra_arguments:
    refuse` sends it back). A field given under an alias, alone or beside its name, is
    refused: the pack reads it by its name, and the tool would read the alias.

    Raises:
        ProposalError: a field is given under an alias.
    """
    if tool is None:
        kept = dict(arguments)
    else:
        injected = _injected(tool)
        kept = {k: v for k, v in arguments.items() if k not in injected}
        if not isinstance(tool.args_schema, dict):
            _by_name(tool.name, _fields(tool.get_input_schema()), kept)
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


def _unreadable(tool: str, call_id: Any, exc: ProposalError) -> ToolMessage:
    """A call whose arguments cannot be read as one (a field given twice): nothing is decided.

    Raised on for a plain invocation, which has no tool call to answer.
    """
    if not call_id:
        raise exc
    return _invalid(ToolCallInfo(tool=tool, arguments={}, call_id=str(call_id)), exc)


def _invalid(info: ToolCallInfo, exc: ProposalError) -> ToolMessage:
    """A call that could not be decided, as an error the model can correct.

    An actor that is not valid is a set-up mistake no model can correct: it propagates.
    """
    if not is_correctable(exc):
        raise exc
    return ToolMessage(
        content=proposal_error_message(info.tool, exc),
        tool_call_id=info.call_id or "",
        name=info.tool,
        status="error",
        artifact={"error": "proposal", "field": exc.field},
    )


def _scope(config: Mapping[str, Any] | None) -> str | None:
    """The LangGraph thread a call id is unique within, when the run has one."""
    configurable = config.get("configurable") if config else None
    thread = configurable.get("thread_id") if isinstance(configurable, Mapping) else None
    return str(thread) if thread else None


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
    ) -> tuple[ToolCallInfo, dict[str, Any]] | ToolMessage:
        try:
            call_id, arguments, visible = self._split(tool_input)
        except ProposalError as exc:
            is_call = isinstance(tool_input, Mapping) and tool_input.get("type") == "tool_call"
            return _unreadable(self.name, tool_input.get("id") if is_call else None, exc)
        info = ToolCallInfo(
            tool=self.name,
            arguments=visible,
            call_id=call_id,
            scope=_scope(config),
            is_call_id_unique=False,
            config=config or {},
        )
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
        prepared = self._prepare(input, config)
        if isinstance(prepared, ToolMessage):
            return prepared
        info, arguments = prepared
        governor: Governor = self.governor
        try:
            decision, queued, governed = governor.admit(info)
        except ProposalError as exc:
            if info.call_id is None:
                raise
            return _invalid(info, exc)
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
        prepared = self._prepare(input, config)
        if isinstance(prepared, ToolMessage):
            return prepared
        info, arguments = prepared
        governor: Governor = self.governor
        try:
            decision, queued, governed = await governor.aadmit(info)
        except ProposalError as exc:
            if info.call_id is None:
                raise
            return _invalid(info, exc)
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


REVIEW_DECISIONS = ("approve", "edit", "reject")
"""The decisions of LangChain's human-in-the-loop format a routed call accepts."""

_NO_NOTE = "{} in LangChain's human-in-the-loop review, without a note"


class _Answer(NamedTuple):
    """An approver's decision on an interrupted call, read from LangChain's HITL format."""

    kind: str
    approver: Actor
    note: str
    amount: Money | None


def review_request(
    decision: Decision, info: ToolCallInfo, error: str | None = None
) -> dict[str, Any]:
    """The interrupt value for a routed call: a LangChain `HITLRequest` for one action.

    Inboxes built for `HumanInTheLoopMiddleware` show it as they show their own; `discretion`
    carries the approval id, the role that must decide, the amount and the rules, and `error`
    why the last answer was not accepted, when it was not.
    """
    amount = decision.amount.to_json() if decision.amount is not None else None
    refused = f"The last answer was not accepted: {error} " if error else ""
    return {
        "action_requests": [
            {
                "name": info.tool,
                "args": info.arguments,
                "description": (
                    f"{refused}{decision.explanation} Approval id: {decision.id}. Needs a"
                    f" {decision.required_role}; an edit may only lower the amount."
                ),
            }
        ],
        "review_configs": [{"action_name": info.tool, "allowed_decisions": list(REVIEW_DECISIONS)}],
        "discretion": {
            "approval_id": decision.id,
            "action": decision.action,
            "amount": amount,
            "required_role": decision.required_role,
            "rules": list(decision.rules),
            "explanation": decision.explanation,
            "error": error,
        },
    }


def _where(decision: Decision, info: ToolCallInfo) -> str:
    return f"resuming {info.tool!r} (approval {decision.id})"


def _one_decision(raw: Any, decision: Decision, info: ToolCallInfo) -> Mapping[str, Any]:
    """The one decision of a resume value: `{"decisions": [d]}` (batched) or `d` (per call)."""
    if isinstance(raw, Mapping) and "decisions" in raw:
        decisions = raw["decisions"]
        if not isinstance(decisions, list) or len(decisions) != 1:
            raise ApprovalError(
                f"{_where(decision, info)}: 'decisions' must hold exactly one decision, for the"
                f" one call that was interrupted; got {decisions!r}"
            )
        raw = decisions[0]
    if not isinstance(raw, Mapping) or raw.get("type") not in REVIEW_DECISIONS:
        raise ApprovalError(
            f"{_where(decision, info)}: resume with LangChain's human-in-the-loop decision,"
            ' {"decisions": [{"type": "approve"}]}, or "edit" with "edited_action", or "reject"'
            f' with a "message"; got {raw!r}'
        )
    return raw


def _actor_of(source: Any) -> str:
    """An approver as given (an `Actor` or its fields), as `id (role)`, for comparing."""
    if isinstance(source, Actor):
        return f"{source.id} ({source.role})"
    if isinstance(source, Mapping):
        return f"{source.get('id')} ({source.get('role')})"
    return repr(source)


class DiscretionMiddleware(AgentMiddleware):
    """LangChain v1 agent middleware that decides the agent's tool calls before they run.

    Which calls are decided: those the pack governs (every tool but its `ungoverned_tools`),
    but for the tools `exclude=` names; a tool the pack maps is decided whatever it says.
    `tools=` checks the tools it names when the middleware is made; a tool it leaves out is
    decided as the pack says (an unmapped one is never let through unasked). Allowed calls
    run once per idempotency key; denied calls return an error `ToolMessage`; a call whose
    arguments are not valid (a currency the pack does not use, a reused call id) returns an
    error `ToolMessage` the model can correct. Routed calls:

    - `mode="async"`: return a `ToolMessage` with the approval id; once a person approves,
      the approval queues the call and `guard.executions.run_pending(tool_callables(tools))`
      runs it (or the agent's retry of the same call runs it).
    - `mode="interactive"`: pause the run with LangGraph `interrupt()` and a LangChain
      `HITLRequest` (the agent needs a checkpointer); resume with its decision format,
      `Command(resume={"decisions": [{"type": "approve"}]})` ("edit" with an
      `edited_action` that only lowers the amount, "reject" with a `message`). The approver
      is the decision's `approver`, else the resuming run's
      `configurable["discretion_approver"]`; the answer is recorded through
      `guard.approvals`, and an approved call runs once with the approved arguments. An
      answer that cannot be recorded pauses the run again, its reason in the request's
      `discretion.error` (and the description), for a corrected answer.

    Idempotency keys come from the tool-call id within the LangGraph thread (or the run, given
    a `run_id` and no thread). A run with neither keys each call by its case, tool and
    arguments: a repeated identical call replays the first result instead of running again.

    Args:
        guard: decides and records.
        mode: what a routed call does: "async" or "interactive".
        tools: the tools to check now (names or langchain-core tools): each must be one the
            pack can decide.
        exclude: never decide calls to these tools (read-only look-ups the pack does not map).
        actor: who proposes the calls (see `ActorSource`); by default the run's
            `configurable["discretion_actor"]` or the runtime context's `actor`.
        case_id: the support case, when the tools' arguments do not carry it.
        customer_id: the customer, when the tools' arguments do not carry it.
        rationale: why; by default the tool's own `reason` and `rationale` arguments.

    Raises:
        ConfigurationError: an unknown mode; both `tools` and `exclude`; `exclude` naming a
            tool the pack maps; a `tools` entry the pack cannot decide (see `check_tool`).
    """

    def __init__(
        self,
        guard: Guard,
        *,
        mode: Literal["async", "interactive"] = "async",
        tools: Sequence[str | BaseTool] | None = None,
        exclude: Collection[str] | None = None,
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
        self._exclude = self._filter(tools, exclude)

    def _filter(
        self, tools: Sequence[str | BaseTool] | None, exclude: Collection[str] | None
    ) -> frozenset[str]:
        if tools is not None and exclude is not None:
            raise ConfigurationError(
                "DiscretionMiddleware: give tools= (the tools to check) or exclude= (the tools"
                " to leave alone), not both"
            )
        mapped = self.guard.pack.tools
        skipped = frozenset(exclude or ())
        if isinstance(exclude, str):
            skipped = frozenset([exclude])
        moving = sorted(skipped & set(mapped))
        if moving:
            raise ConfigurationError(
                f"DiscretionMiddleware: exclude= names {', '.join(moving)}, which pack"
                f" {self.guard.pack.name!r} maps to an action: its calls are always decided."
                " Remove it from exclude="
            )
        for item in tools or ():
            name = item if isinstance(item, str) else getattr(item, "name", None)
            if not isinstance(name, str):
                raise ConfigurationError(
                    f"DiscretionMiddleware: tools= takes tool names or langchain-core tools;"
                    f" got {item!r}"
                )
            parameters = None if isinstance(item, str) else parameters_of(item)
            self.governor.check(name, parameters)
        return skipped

    def governs(self, tool: str) -> bool:
        """Whether the middleware decides calls to `tool`.

        A tool the pack maps always is; one named in `exclude=` never is. `tools=` only checks
        the tools it names when the middleware is made: a tool it leaves out that the pack
        neither maps nor lists in `ungoverned_tools` is decided still (it never runs unasked
        because nobody mapped it), as the pack says unknown tools are.
        """
        if tool in self.guard.pack.tools:
            return True
        if tool in self._exclude:
            return False
        return self.governor.governs(tool)

    def _info(self, request: ToolCallRequest) -> ToolCallInfo:
        call = request.tool_call
        runtime = request.runtime
        config: Mapping[str, Any] = getattr(runtime, "config", None) or {}
        execution = getattr(runtime, "execution_info", None)
        scope = _scope(config) or getattr(execution, "run_id", None)
        return ToolCallInfo(
            tool=call["name"],
            arguments=_visible(request.tool, call["args"]),
            call_id=call.get("id"),
            scope=scope,
            is_call_id_unique=False,
            config=config,
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

    def _check_checkpointer(self) -> None:
        if self.mode != "interactive":
            return
        configurable = get_config().get("configurable") or {}
        if configurable.get(CONFIG_KEY_CHECKPOINTER) is None:
            raise ConfigurationError(
                "DiscretionMiddleware(mode='interactive') pauses routed calls until a person"
                " answers, which needs a checkpointer: create_agent(...,"
                " checkpointer=InMemorySaver()) (or a persistent saver), and run it with a"
                ' thread: {"configurable": {"thread_id": ...}}. Or use mode="async"'
            )

    def before_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Refuse to start an interactive run that could never be resumed."""
        self._check_checkpointer()
        return None

    async def abefore_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """`before_agent` for async agents."""
        self._check_checkpointer()
        return None

    def _read_answer(self, decision: Decision, info: ToolCallInfo, raw: Any) -> _Answer:
        """The approver's decision, checked: who, why, and any lowered amount."""
        chosen = _one_decision(raw, decision, info)
        kind = str(chosen["type"])
        where = _where(decision, info)
        # The run's configured approver (set by the app from its signed-in user) wins: whoever
        # writes the resume value may not name someone else, nor themselves as a higher role.
        configurable = info.config.get("configurable") if info.config else None
        configured = (
            configurable.get("discretion_approver") if isinstance(configurable, Mapping) else None
        )
        named = chosen.get("approver")
        if (
            configured is not None
            and named is not None
            and _actor_of(named) != _actor_of(configured)
        ):
            raise ApprovalError(
                f"{where}: the answer names approver {_actor_of(named)}, but this run's"
                f' configurable["discretion_approver"] is {_actor_of(configured)}; answer as'
                " the configured approver, or leave the answer's approver out"
            )
        source = configured if configured is not None else named
        if source is None:
            raise ApprovalError(
                f"{where}: no approver. Put the person's {{'id', 'role'}} in the resuming run's"
                ' configurable["discretion_approver"], or in the decision\'s "approver"'
            )
        try:
            approver = source if isinstance(source, Actor) else Actor.model_validate(source)
        except ValidationError as exc:
            raise ApprovalError(f"{where}: the approver is not valid: {exc}") from exc
        message = chosen.get("message")
        past = {"approve": "approved", "edit": "approved", "reject": "rejected"}[kind]
        note = message if isinstance(message, str) and message else _NO_NOTE.format(past)
        amount = self._edited_amount(chosen, where, info) if kind == "edit" else None
        return _Answer(kind, approver, note, amount)

    def _edited_amount(
        self, chosen: Mapping[str, Any], where: str, info: ToolCallInfo
    ) -> Money | None:
        edited = chosen.get("edited_action")
        if (
            not isinstance(edited, Mapping)
            or edited.get("name") != info.tool
            or not isinstance(edited.get("args"), Mapping)
        ):
            raise ApprovalError(
                f'{where}: an "edit" decision needs "edited_action": {{"name": {info.tool!r},'
                f' "args": {{...}}}}; got {edited!r}'
            )
        spec = self.governor.mapping(info.tool)
        arguments = to_jsonable_python(dict(edited["args"]), fallback=str)
        field_name = spec.amount.split(".", 1)[0] if spec is not None and spec.amount else None
        changed = sorted(
            name
            for name in set(info.arguments) | set(arguments)
            if name != field_name and info.arguments.get(name) != arguments.get(name)
        )
        if changed or spec is None or field_name is None:
            allowed = f"the amount ({field_name!r})" if field_name else "nothing"
            raise ApprovalError(
                f"{where}: an edit may change only {allowed}, and only lower it; it changed"
                f" {', '.join(changed) or 'the amount of a tool with none'}. Reject the call"
                " instead, and let the agent propose the other one"
            )
        read = self.governor.read(info.tool, arguments)
        return read.amount if read is not None else None

    def _record_answer(self, decision: Decision, info: ToolCallInfo, raw: Any) -> Approval:
        answer = self._read_answer(decision, info, raw)
        approvals = self.guard.approvals
        if answer.kind == "reject":
            return approvals.reject(decision.id, approver=answer.approver, note=answer.note)
        return approvals.approve(
            decision.id, approver=answer.approver, note=answer.note, amount=answer.amount
        )

    @staticmethod
    def _rejected(decision: Decision, info: ToolCallInfo, approval: Approval) -> ToolMessage:
        text = rejection_message(approval)
        message = _refusal(decision, info.call_id or "", info.tool, text)
        message.status = "error"
        return message

    # The hooks -------------------------------------------------------------------------------

    def _admit(self, info: ToolCallInfo) -> Admission | ToolMessage:
        try:
            return self.governor.admit(info)
        except ProposalError as exc:
            return _invalid(info, exc)

    async def _aadmit(self, info: ToolCallInfo) -> Admission | ToolMessage:
        try:
            return await self.governor.aadmit(info)
        except ProposalError as exc:
            return _invalid(info, exc)

    def _review(self, admitted: Admission, info: ToolCallInfo) -> Execution | ToolMessage | None:
        """An interactive routed call: ask a person, record the answer, find the queued run.

        An answer that cannot be recorded (not LangChain's decision format, an approver
        without authority, an edit that raises the amount) asks again, saying why: raising
        would leave the thread holding that answer for ever.
        """
        decision = admitted.decision
        approvals = self.guard.approvals
        approval = approvals.get(decision.id)
        request = review_request(decision, info)
        while approval.status is ApprovalStatus.PENDING:
            # On resume the node runs again from the top: the decision replays by its key
            # and each interrupt() returns the next of the answers given so far.
            answer = interrupt(request)
            try:
                approval = self._record_answer(decision, info, answer)
            except (ApprovalError, ProposalError) as exc:
                request = review_request(decision, info, error=str(exc))
                approval = approvals.get(decision.id)
        if approval.status is not ApprovalStatus.APPROVED:
            return self._rejected(decision, info, approval)
        return self.governor.queued(decision)

    async def _areview(
        self, admitted: Admission, info: ToolCallInfo
    ) -> Execution | ToolMessage | None:
        """`_review` for async agents."""
        decision = admitted.decision
        approvals = self.guard.approvals
        approval = await asyncio.to_thread(approvals.get, decision.id)
        request = review_request(decision, info)
        while approval.status is ApprovalStatus.PENDING:
            answer = interrupt(request)
            try:
                approval = await asyncio.to_thread(self._record_answer, decision, info, answer)
            except (ApprovalError, ProposalError) as exc:
                request = review_request(decision, info, error=str(exc))
                approval = await asyncio.to_thread(approvals.get, decision.id)
        if approval.status is not ApprovalStatus.APPROVED:
            return self._rejected(decision, info, approval)
        return await self.governor.aqueued(decision)

    def _needs_review(self, admitted: Admission) -> bool:
        return (
            self.mode == "interactive"
            and admitted.decision.outcome is Outcome.ROUTE
            and admitted.execution is None
        )

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Decide a governed call; run it once when allowed or approved."""
        if not self.governs(request.tool_call["name"]):
            return handler(request)
        try:
            info = self._info(request)
        except ProposalError as exc:
            return _unreadable(request.tool_call["name"], request.tool_call.get("id"), exc)
        admitted = self._admit(info)
        if isinstance(admitted, ToolMessage):
            return admitted
        decision, queued, governed = admitted
        if self._needs_review(admitted):
            reviewed = self._review(admitted, info)
            if isinstance(reviewed, ToolMessage):
                return reviewed
            queued = reviewed
        if not decision.is_allowed and queued is None:
            return _refusal(decision, info.call_id or "", info.tool)

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
        if not self.governs(request.tool_call["name"]):
            return await handler(request)
        try:
            info = self._info(request)
        except ProposalError as exc:
            return _unreadable(request.tool_call["name"], request.tool_call.get("id"), exc)
        admitted = await self._aadmit(info)
        if isinstance(admitted, ToolMessage):
            return admitted
        decision, queued, governed = admitted
        if self._needs_review(admitted):
            reviewed = await self._areview(admitted, info)
            if isinstance(reviewed, ToolMessage):
                return reviewed
            queued = reviewed
        if not decision.is_allowed and queued is None:
            return _refusal(decision, info.call_id or "", info.tool)

        async def run(approved: dict[str, Any], key: str) -> ToolMessage | Command[Any]:
            return await handler(self._request(request, approved, key))

        try:
            result = await self.governor.arun(
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
