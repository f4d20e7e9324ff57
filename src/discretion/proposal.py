"""What an actor asks for: a `Proposal`, validated at the edge with pydantic."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from discretion.errors import ProposalError
from discretion.lineage import is_text, storable, without_surrogates
from discretion.money import Money

__all__ = ["Actor", "Claim", "Proposal", "Rationale", "ToolCall", "argument_at"]

_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
CONTROL = re.compile(f"[{_CONTROLS}]")
"""Control characters and line or paragraph separators (line breaks, tabs, NUL, U+2028): never
part of an id, whatever system made it."""


PRINTABLE = f"^[^{_CONTROLS}]*$"
"""`CONTROL` refused, as a pattern pydantic checks in its own code (a Python validator doubled
the time a proposal takes to read)."""
NOT_PRINTABLE = "an id holds no control characters (NUL, line breaks, tabs); send the id alone"
"""What a value refused by `PRINTABLE` is told."""

MAX_ID = 200
"""The longest id the store holds (customer, case, order, actor, idempotency key)."""
MAX_NAME = 100
"""The longest name of an action, a role or a reason the store holds; a tool the pack does
not map is recorded under its own name as the action, so its name too."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID, strip_whitespace=True, pattern=PRINTABLE),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME, strip_whitespace=True, pattern=PRINTABLE),
]
Scalar = str | int | bool | None

_MODEL = ConfigDict(frozen=True, extra="forbid")


class Actor(BaseModel):
    """Who proposes the action."""

    model_config = _MODEL

    id: Identifier
    """A stable id for the agent or person."""
    role: Name
    """A role the pack defines, such as `ai_agent` or `tier2`."""
    is_ai: bool = True
    """Whether the actor is an AI agent. AI actors never approve routed cases."""


class Claim(BaseModel):
    """A factual claim in a rationale: the actor says context field `field` has `value`."""

    model_config = _MODEL

    field: Identifier
    """A context field name, such as `shipment.status`."""
    value: Scalar | float
    """The value the actor says the field has; a number is finite."""

    @field_validator("value", mode="before")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        # Money in its JSON form is claimed as its text, `USD 12.50`: amount and currency.
        if isinstance(value, dict) and set(value) == {"amount", "currency"}:
            return f"{value['currency']} {value['amount']}"
        if isinstance(value, (dict, list)):
            raise ValueError(
                "a claim's value is one string, number or bool (money as its amount, '12.50');"
                " claim each member of a record as its own field"
            )
        return value

    @field_validator("value")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number; claim a value the facts can hold")
        if isinstance(value, str) and not storable(value):
            raise ValueError(
                "holds NUL or a lone UTF-16 surrogate, which no text may hold; send valid text"
            )
        return value


class Rationale(BaseModel):
    """Why the actor believes the action is justified. Its text is data, never instructions."""

    model_config = _MODEL

    reason: Name | None = None
    """The exception reason the actor relies on, by the id the pack gives it."""
    text: Annotated[str, StringConstraints(max_length=8000)] = ""
    """Free text from the actor."""
    claims: Annotated[list[Claim], Field(max_length=50)] = Field(
        default_factory=list, json_schema_extra={"default": []}
    )
    """Structured factual claims, checked against the context."""
    precedents: Annotated[list[Identifier], Field(max_length=20)] = Field(
        default_factory=list, json_schema_extra={"default": []}
    )
    """Ids of precedents the actor cites."""
    asserted: Annotated[
        dict[Identifier, bool | int | Annotated[str, StringConstraints(max_length=500)]],
        Field(max_length=50),
    ] = Field(default_factory=dict, json_schema_extra={"default": {}})
    """Facts only the conversation holds, as the agent asserts them, by the name the pack's
    `asserted` declares (`{"customer.stated_reason": "damaged"}`). Checked against the pack's
    declarations, recorded as assertions (never as grounded facts), read by rules as
    `asserted.<name>`."""


MAX_TICKET = 20_000
"""The longest ticket or conversation text a proposal carries, in characters."""

MAX_ARGUMENT_DEPTH = 32
"""How deeply a tool's arguments may nest; real tool calls nest a few levels."""


_LEAVES = frozenset({str, int, bool, type(None)})


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether `value` nests deeper than `limit`.

    Raises:
        ValueError: it holds a number that is not finite (NaN, an infinity): JSON has no such
            number, so it would be stored and run as null.
        ProposalError: a text or a name in it holds NUL (U+0000), which PostgreSQL cannot
            store and no tool reads as text, or a lone surrogate, which is not text at all;
            `field` names the argument.
    """
    # Iterative: a hostile document must not exhaust the stack before it is refused. No path
    # is kept on the way: most proposals hold nothing to refuse, and `_refused` finds it.
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        node, depth = pending.pop()
        kind = type(node)
        if kind is str:
            # `storable`, without its call: ASCII text (nearly all) is settled in `is_text`.
            if "\x00" in node or not is_text(node):
                raise _refused(value)
            continue
        if kind in _LEAVES:
            continue  # most arguments: nothing to look into
        if isinstance(node, float) and not math.isfinite(node):
            raise _refused(value)
        if isinstance(node, Mapping):
            for key in node:
                if type(key) is str and ("\x00" in key or not is_text(key)):
                    raise _refused(value)
            children: Any = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth >= limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def _refused(value: Any) -> Exception:
    """The error for the first text not storable or number not finite in `value`, and where."""
    pending: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while pending:
        node, path = pending.pop()
        if type(node) is str:
            if not storable(node):
                return _nul(path, f"{_argument(path)} holds", node)
        elif isinstance(node, float) and not math.isfinite(node):
            return ValueError(
                f"{_argument(path)} holds {node!r}, which is not a finite number; send a finite one"
            )
        elif isinstance(node, Mapping):
            for key in node:
                if isinstance(key, str) and not storable(key):
                    return _nul(path, f"the name of {_argument((*path, key))} holds", key)
            pending.extend((child, (*path, at)) for at, child in node.items())
        elif isinstance(node, (list, tuple)):
            pending.extend((child, (*path, at)) for at, child in enumerate(node))
    return ValueError("holds a value that cannot be stored")  # pragma: no cover - found above


def _nul(path: tuple[Any, ...], what: str, text: str) -> ProposalError:
    """The error for a tool argument at `path` whose text or name holds U+0000 or a surrogate."""
    # The place is named without what makes it unstorable: the message is text, shown and sent.
    field = without_surrogates(".".join(("tool", "arguments", *map(str, path))))
    what = without_surrogates(what)
    if "\x00" in text:
        held = "a NUL character (U+0000), which no text in a tool call may hold; send it without"
    else:
        held = (
            "a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), which is not text;"
            " send valid Unicode"
        )
    return ProposalError(f"{field}: {what} {held}", field=field)


def _argument(path: tuple[Any, ...]) -> str:
    """An argument's place in a tool call, for messages (`argument 'items.0.sku'`)."""
    return f"argument {'.'.join(map(str, path))!r}" if path else "the arguments"


class ToolCall(BaseModel):
    """The tool the agent wants to run and its arguments."""

    model_config = _MODEL

    name: Name
    """The tool's name as the agent framework knows it."""
    arguments: dict[str, Any] = {}
    """The tool's arguments, as JSON, nested at most `MAX_ARGUMENT_DEPTH` levels."""

    @field_validator("arguments", mode="before")
    @classmethod
    def _shallow(cls, value: Any) -> Any:
        # Refused here, at the edge: deeper documents crashed serialisation further in.
        if _nests_deeper(value, MAX_ARGUMENT_DEPTH):
            raise ValueError(
                f"nested more than {MAX_ARGUMENT_DEPTH} levels deep; send flat arguments"
            )
        return value


class Proposal(BaseModel):
    """An action, an actor, a case and a rationale: the unit that is decided.

    Fields the pack can read from the tool's arguments (action, amount, customer, case, order)
    may be left out; when given in both places they must agree.
    """

    model_config = _MODEL

    actor: Actor
    """Who proposes it."""
    tool: ToolCall | None = None
    """The tool call this proposal stands for, when it comes from an agent framework."""
    action: Name | None = None
    """The governed action (`refund`, `credit`, ...); read from the tool name when absent."""
    amount: Money | None = None
    """The money the action moves; read from the tool's arguments when absent."""
    customer_id: Identifier | None = None
    """The customer the action benefits."""
    case_id: Identifier | None = None
    """The support case the action belongs to."""
    order_id: Identifier | None = None
    """The order the action concerns, when there is one."""
    rationale: Rationale = Rationale()
    """Why the actor proposes it."""
    idempotency_key: Identifier | None = None
    """Retries with the same key get the same decision, counted once. Derived from the
    proposal's content when absent."""
    ticket: Annotated[str, StringConstraints(max_length=MAX_TICKET)] | None = None
    """The customer's ticket or conversation, as text, for the person who reviews a routed
    case. It is data, never instructions; it is recorded in the lineage but no rule reads it,
    and it is outside the proposal's digest (a retry whose conversation grew is the same
    proposal)."""

    @classmethod
    def parse(cls, data: object, *, source: str = "proposal") -> Proposal:
        """Validate JSON-ish data into a Proposal, raising `ProposalError` that names each fault."""
        if isinstance(data, Proposal):
            return data
        try:
            return cls.model_validate(data)
        except ProposalError as exc:
            raise ProposalError(f"{source}: {exc}", field=exc.field) from exc
        except ValidationError as exc:
            faults = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {_said(err)}"
                for err in exc.errors(include_url=False)
            )
            first = exc.errors()[0]["loc"] if exc.errors() else ()
            raise ProposalError(
                f"{source} is not valid: {faults}", field=".".join(str(p) for p in first) or None
            ) from None


def _said(error: Any) -> str:
    """A validation error's message, in this module's words where pydantic's say too little."""
    if error["type"] == "string_pattern_mismatch":
        return NOT_PRINTABLE
    return str(error["msg"])


def argument_at(arguments: Mapping[str, Any], path: str) -> Any:
    """The tool argument at a dotted `path` (`refund.amount`); None when it is not there."""
    value: Any = arguments
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
