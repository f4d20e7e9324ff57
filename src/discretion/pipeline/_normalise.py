"""Step 1 of the pipeline: validate a proposal and read what the pack maps from its tool call.

This module is the one reader of tool arguments and the one writer of an edited amount. Every
entry point (the guard, the integrations, the approval re-check, replay) reaches the arguments
through it, so a path is read the same way everywhere: dotted paths into nested arguments, and a
list or an object where an id or an amount belongs is refused, never read as absent (that would
let a proposal be decided on another order than the one the tool receives).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from discretion.errors import ProposalError
from discretion.lineage import digest
from discretion.money import Money, SignedMoney, parse_decimal, scaled
from discretion.pipeline._asserted import check_asserted
from discretion.policy import (
    ARGS_PREFIX,
    CURRENCY_ARGUMENTS,
    MEMBER_TYPES,
    ActionPolicy,
    ArgSpec,
    PolicyPack,
    RecordArgSpec,
    RecordError,
    RecordType,
    Role,
    Structured,
    ToolSpec,
    read_structured,
    record_name,
)
from discretion.proposal import CONTROL, MAX_ID, NOT_PRINTABLE, Proposal

__all__ = [
    "ID_FIELDS",
    "MappedArguments",
    "Normalised",
    "argument_at",
    "currency_paths",
    "normalise",
    "read_arguments",
    "recorded_mapping",
    "write_amount",
]

_NO_ARGS: Mapping[str, Any] = MappingProxyType({})

_INT64 = (-(2**63), 2**63 - 1)
"""The whole numbers CEL holds: an `int` argument beyond them is refused."""

ID_FIELDS = ("customer", "case", "order")
"""The ids a tool mapping may name, each read into the proposal's `<name>_id`."""


def argument_at(arguments: Mapping[str, Any], path: str) -> Any:
    """The tool argument at a dotted `path` (`refund.amount`); None when it is not there.

    Raises:
        ProposalError: a value on the way is not an object (`order: ["A-1"]` where the path is
            `order.id`): the argument is there, in a shape the tool may read otherwise.
    """
    if "." not in path:  # the common case, read without splitting
        return arguments.get(path)
    if path in arguments:
        # `{"order.id": "A-1", "order": {"id": "A-2"}}`: which one the tool reads is its own
        # business, so neither is decided on.
        raise ProposalError(
            f"tool argument {path!r} is a name of its own where the pack reads the nested path"
            f" {path!r}; send it nested only",
            field=f"tool.arguments.{path}",
        )
    value: Any = arguments
    walked: list[str] = []
    for part in path.split("."):
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ProposalError(
                f"tool argument {'.'.join(walked)!r} is {_kind(value)} where an object with"
                f" {part!r} belongs (the pack reads {path!r})",
                field=f"tool.arguments.{'.'.join(walked)}",
            )
        if part not in value:
            return None
        value = value[part]
        walked.append(part)
    return value


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MappedArguments:
    """What a tool call's arguments say, read through a tool mapping."""

    amount: Money | None
    """The amount and currency, when the mapping names an amount argument and it is there."""
    customer_id: str | None
    case_id: str | None
    order_id: str | None
    args: Mapping[str, Any] = field(default_factory=dict)
    """The arguments the action's rules read, typed as declared (`Money`, `Decimal`, aware
    `datetime`, tuples for lists), by name; one a call leaves out (optional) is not there."""


def _field(spec: ToolSpec, path: str) -> str:
    """The field an error about argument `path` names.

    The call's amount and currency are `amount` and `currency`, whatever the tool calls them;
    any other argument, its place in the call.
    """
    if path == spec.currency:
        return "currency"
    if path == spec.amount:
        return "amount"
    return f"tool.arguments.{path}"


def _typed_argument(
    tool: str, path: str, arg: ArgSpec, raw: Any, currency: str, *, where: str
) -> Any:
    """An argument's value as its declared type; anything else is refused, never coerced."""

    def bad(expected: str) -> ProposalError:
        return ProposalError(
            f"tool {tool!r} argument {path!r}: {_kind(raw)} where {expected} belongs",
            field=where,
        )

    kind = arg.type
    if isinstance(arg, RecordArgSpec):
        try:
            return read_structured(arg.record, arg.is_list, raw, currency, path)
        except RecordError as exc:
            raise ProposalError(f"tool {tool!r} argument {exc}", field=where) from None
    if kind == "string":
        if not isinstance(raw, str):
            raise bad("a string")
        return raw
    if kind == "bool":
        if not isinstance(raw, bool):
            raise bad("true or false")
        return raw
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise bad("a whole number")
        if not _INT64[0] <= raw <= _INT64[1]:
            # CEL's ints are 64-bit: a rule could not read it, and would route the case.
            raise ProposalError(
                f"tool {tool!r} argument {path!r}: {raw} is beyond a 64-bit whole number",
                field=where,
            )
        return raw
    if kind in ("decimal", "money"):
        if isinstance(raw, (bool, Mapping, list, tuple)):
            raise bad('one decimal value such as "1.50"')
        try:
            if kind == "decimal":
                return parse_decimal(raw, arg.places or 0, field=where)
            if arg.signed:
                return SignedMoney.of(raw, currency, field=where)
            return Money.of(raw, currency)
        except ProposalError as exc:
            raise ProposalError(f"tool {tool!r} argument {path!r}: {exc}", field=where) from None
    if kind == "timestamp":
        moment = None
        if isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw)
            except ValueError:
                moment = None
        if moment is None or moment.tzinfo is None:
            raise bad("an ISO 8601 timestamp with a UTC offset")
        return moment
    element = str if kind == "list[string]" else int
    if not isinstance(raw, (list, tuple)) or not all(
        isinstance(item, str)
        if element is str
        else isinstance(item, int) and not isinstance(item, bool) and _INT64[0] <= item <= _INT64[1]
        for item in raw
    ):
        raise bad(f"a list of {'strings' if element is str else '64-bit whole numbers'}")
    return tuple(raw)


def _read_args(
    tool: str,
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    args: Mapping[str, ArgSpec],
    currency: str,
) -> dict[str, Any]:
    read: dict[str, Any] = {}
    for name, arg in args.items():
        path = spec.args.get(name, name)
        raw = argument_at(arguments, path)
        where = _field(spec, path)
        if raw is None:
            if not arg.optional:
                raise ProposalError(
                    f"tool {tool!r} argument {path!r} is missing; the pack's action declares it"
                    f" (args.{name}) and not as optional, so the call must carry it",
                    field=where,
                )
            continue
        value = _typed_argument(tool, path, arg, raw, currency, where=where)
        if arg.values is not None and value not in arg.values:
            allowed = ", ".join(repr(v) for v in arg.values)
            raise ProposalError(
                f"tool {tool!r} argument {path!r}: {value!r} is not one of the values the pack"
                f" allows ({allowed})",
                field=where,
            )
        read[name] = value
    return read


def cel_arguments(args: Mapping[str, Any]) -> dict[str, Any]:
    """Typed arguments as CEL reads them: `args.<name>`, money and decimals as ints."""
    out: dict[str, Any] = {}
    for name, value in args.items():
        if isinstance(value, (Money, SignedMoney)):
            value = value.minor
        elif isinstance(value, Decimal):
            value = scaled(value)
        elif isinstance(value, Structured):
            value = value.to_cel()
        elif isinstance(value, tuple):
            value = list(value)
        out[ARGS_PREFIX + name] = value
    return out


def _scalar_id(tool: str, path: str, arguments: Mapping[str, Any]) -> str | None:
    value = argument_at(arguments, path)
    if value is None:
        return None
    if (
        type(value) is str
        and value
        and len(value) <= MAX_ID
        and value == value.strip()
        and not CONTROL.search(value)
    ):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ProposalError(
            f"tool {tool!r} argument {path!r}: {_kind(value)} where an id belongs; send one id"
            " as a string",
            field=f"tool.arguments.{path}",
        )
    text = str(value).strip()
    if not text:
        raise ProposalError(
            f"tool {tool!r} argument {path!r}: an empty id; send the id",
            field=f"tool.arguments.{path}",
        )
    if CONTROL.search(text):
        raise ProposalError(
            f"tool {tool!r} argument {path!r}: {NOT_PRINTABLE}", field=f"tool.arguments.{path}"
        )
    if len(text) > MAX_ID:
        raise ProposalError(
            f"tool {tool!r} argument {path!r}: {len(text)} characters, more than the {MAX_ID}"
            " an id may have; send the id alone",
            field=f"tool.arguments.{path}",
        )
    return text


_REQUIRED = "required entities"
"""Where a pack keeps, in its `memo`, the entities a proposal must name."""


def _named_as_required(
    pack: PolicyPack, action: str, paths: ToolSpec, named: Mapping[str, str | None]
) -> None:
    """Refuse a proposal naming no record of a kind the pack requires (`required: true`).

    A record named that belongs to it (an order, for its customer) names it through its own.
    """
    required = pack.memo.get(_REQUIRED)
    if required is None:
        # The pack's to say, once: each kind required, and the kinds that name one of it.
        required = pack.memo[_REQUIRED] = tuple(
            (kind, tuple(k for k, e in pack.entities.items() if kind in e.belongs_to))
            for kind, entity in pack.entities.items()
            if entity.required
        )
    for kind, namers in required:
        if named.get(kind) is not None or any(named.get(other) for other in namers):
            continue
        path = getattr(paths, kind, None)
        raise ProposalError(
            f"{kind}_id: action {action!r} is decided only about a {kind} it names"
            f" (entities.{kind}.required), and the call names none"
            + (f"; send tool argument {path!r}" if path else f"; send {kind}_id"),
            field=f"tool.arguments.{path}" if path else f"{kind}_id",
        )


def _moves(action: ActionPolicy) -> str:
    """What `action` moves, for messages: money, or how many of its unit."""
    return f"counts {action.unit}" if action.unit is not None else "moves money"


def read_arguments(
    tool: str,
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    *,
    currency: str,
    args: Mapping[str, ArgSpec] | None = None,
    unit: str | None = None,
) -> MappedArguments:
    """Read the amount, the ids and the declared arguments a tool mapping names from a call.

    Args:
        tool: the tool's name, for messages.
        spec: which argument carries what (dotted paths for nested arguments).
        arguments: the call's arguments, as JSON.
        currency: the currency when the mapping names no currency argument, or it is absent.
        args: the arguments the action's rules read, with their types (see `ActionPolicy`).
        unit: the unit the action counts instead of money: the amount is in it, and money
            arguments are in `currency`.

    Raises:
        ProposalError: an amount that is not exact money, a list or an object where an id,
            an amount or a currency belongs, or a declared argument missing or of another type.
    """
    amount = None
    if spec.amount is not None:
        raw = argument_at(arguments, spec.amount)
        if raw is not None:
            if isinstance(raw, (Mapping, list, tuple)):
                raise ProposalError(
                    f"tool {tool!r} argument {spec.amount!r}: an amount must be one decimal"
                    ' value such as "80.00", not a list or an object',
                    field="amount",
                )
            raw_currency = argument_at(arguments, spec.currency) if spec.currency else None
            if raw_currency is not None and unit is not None:
                raise ProposalError(
                    f"tool {tool!r} argument {spec.currency!r} is {raw_currency!r}, but its"
                    f" action counts {unit}, not money: leave the argument out",
                    field="currency",
                )
            if raw_currency is not None and not isinstance(raw_currency, str):
                raise ProposalError(
                    f'tool {tool!r} argument {spec.currency!r}: a currency is a code such as "USD"',
                    field="currency",
                )
            try:
                amount = Money.of(
                    raw, unit or (raw_currency if raw_currency is not None else currency)
                )
            except ProposalError as exc:
                raise ProposalError(
                    f"tool {tool!r} argument {spec.amount!r}: {exc}", field=exc.field
                ) from None
    if amount is not None:
        _no_stray_currency(
            tool,
            arguments,
            amount.currency,
            amount_at=spec.amount or "",
            read=spec.currency if unit is None else None,
            unit=unit is not None,
        )
    if spec.extra_arguments == "refuse":
        _nothing_ungoverned(tool, spec, arguments, args or {})
    else:
        _no_second_amount(tool, spec, arguments, args or {})
    customer = _scalar_id(tool, spec.customer, arguments) if spec.customer else None
    case = _scalar_id(tool, spec.case, arguments) if spec.case else None
    order = _scalar_id(tool, spec.order, arguments) if spec.order else None
    read = {}
    if args:
        in_currency = amount.currency if amount is not None and unit is None else currency
        read = _read_args(tool, spec, arguments, args, in_currency)
    return MappedArguments(
        amount=amount, customer_id=customer, case_id=case, order_id=order, args=read
    )


@functools.cache
def currency_paths(amount_at: str) -> tuple[str, ...]:
    """Where a currency beside the amount at `amount_at` may be: its own level and each above.

    `refund.amount` gives `refund.currency`, `currency` and the other spellings of each. Kept
    per path: a pack maps a handful, and every call reads them.
    """
    parts = amount_at.split(".")[:-1]
    levels = [".".join(parts[:depth]) for depth in range(len(parts), -1, -1)]
    return tuple(
        f"{level}.{name}" if level else name for level in levels for name in CURRENCY_ARGUMENTS
    )


def _no_stray_currency(
    tool: str,
    arguments: Mapping[str, Any],
    decided: str,
    *,
    amount_at: str,
    read: str | None,
    unit: bool,
) -> None:
    """Refuse a currency argument the mapping does not read that names another currency.

    Without a `currency` mapping the amount is decided in the pack's currency, while the tool
    would pay in the one its own argument names: 25.00 decided as USD would run as KWD. The
    same holds for a second currency argument beside the one the mapping reads (`read`; None
    for a unit action, which reads none: `unit`). A currency beside a nested amount
    (`refund.currency` by `refund.amount`), or at any level above it, is one too.
    """
    for name in currency_paths(amount_at):
        # Each level on the way to the amount was just read as an object.
        stray = argument_at(arguments, name)
        if name == read or stray is None or str(stray).strip().upper() == decided:
            continue
        if read is not None:
            raise ProposalError(
                f"tool {tool!r} argument {name!r} is {stray!r}, but the amount is decided in"
                f" {decided}, the currency its mapping reads from {read!r}: the tool could pay"
                " in another currency than the one decided. Leave the argument out",
                field=f"tool.arguments.{name}",
            )
        # The call's currency, whatever the tool calls it: the field is `currency`.
        if unit:
            raise ProposalError(
                f"tool {tool!r} argument {name!r} is {stray!r}, but its action counts"
                f" {decided}, not money: the tool would be told of a currency nobody decided."
                " Leave the argument out",
                field="currency",
            )
        raise ProposalError(
            f"tool {tool!r} argument {name!r} is {stray!r}, but its mapping reads no currency,"
            f" so its amount is decided in {decided}: the tool would pay in another currency"
            f" than the one decided. Map it (`currency: {name}` under the action's tools), or"
            " leave the argument out",
            field="currency",
        )


def _nothing_ungoverned(
    tool: str, spec: ToolSpec, arguments: Mapping[str, Any], args: Mapping[str, ArgSpec]
) -> None:
    """Refuse an argument a mapping with `extra_arguments: refuse` neither reads nor declares.

    Inside an object a nested path is read from (`order.id`), every other key is one too: the
    tool may read `order.orderId` as well.
    """
    read = _read_paths(spec, args)
    extra = _unread_keys(arguments, read)
    for name, arg in args.items():
        # A record argument is read whole, member by member: a key its type does not declare
        # is as ungoverned as one beside it.
        if isinstance(arg, RecordArgSpec):
            path = spec.args.get(name, name)
            value = argument_at(arguments, path)
            items = value if arg.is_list and isinstance(value, (list, tuple)) else [value]
            for index, item in enumerate(items):
                where = f"{path}[{index}]" if arg.is_list else path
                extra += _undeclared_members(arg.record, item, where)
    if extra:
        raise ProposalError(
            f"tool {tool!r} takes no argument {', '.join(map(repr, extra))} that the policy"
            f" governs (it reads: {', '.join(sorted(set(read))) or 'nothing'}); leave"
            f" {'them' if len(extra) > 1 else 'it'} out",
            field=f"tool.arguments.{extra[0]}",
        )


def _undeclared_members(record: RecordType, value: Any, where: str) -> list[str]:
    """The keys of a record argument's object (and of its records within) no member declares."""
    if not isinstance(value, Mapping):
        return []
    members = {member.name: member for member in record.members}
    extra = [f"{where}.{key}" for key in sorted(value) if key not in members]
    for name, member in members.items():
        kind, is_list = record_name(member.type)
        if kind in MEMBER_TYPES or name not in value:
            continue
        inner = record.resolve(kind)
        nested = value[name]
        if is_list and isinstance(nested, (list, tuple)):
            for index, item in enumerate(nested):
                extra += _undeclared_members(inner, item, f"{where}.{name}[{index}]")
        else:
            extra += _undeclared_members(inner, nested, f"{where}.{name}")
    return extra


_AMOUNT_WORDS = frozenset(
    {
        "amount", "amt", "refund", "credit", "payout", "payment", "compensation", "goodwill",
        "reimbursement", "rebate",
    }
)  # fmt: skip
"""Words an argument carrying an amount to pay is named with (`refund_amount`, `payout`).

Not the words of what a call may carry to describe the case (`order_total`, `item_price`,
`fee`): a second amount is named as one paid, or as the tool names the amount it pays."""
_NOT_AN_AMOUNT = frozenset(
    {
        "id", "ids", "code", "number", "num", "no", "last", "score", "reason", "type", "kind",
        "status", "date", "at", "count", "currency", "card", "center", "centre", "name", "ref",
        "reference", "key", "note", "notes", "text", "description", "method", "mode", "flag",
        "percent", "pct", "rate", "url", "limit",
    }
)  # fmt: skip
"""Last words of a name that say it holds something else (`refund_id`, `cost_center`)."""
_MONEY_KEYS = _AMOUNT_WORDS | {"value", "total", "sum", "price"}
"""The keys an object holding an amount holds it under."""
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DRESSING = re.compile(r"[\s,_'+$€£¥₹]|\b[A-Z]{3}\b|^-")


def _amount_named(name: str, paid: frozenset[str] = _AMOUNT_WORDS) -> bool:
    """Whether an argument's name says it holds an amount to pay, word by word.

    `paid`: the words that say so, with those of the tool's own amount argument (`value`, for a
    tool paying `item_value`).
    """
    words = [word.lower() for word in _WORD.findall(name)]
    return bool(words) and words[-1] not in _NOT_AN_AMOUNT and not paid.isdisjoint(words)


def _amount_shaped(value: Any) -> bool:
    """Whether `value` reads as an amount.

    A number, a number in text however dressed (`"$5,000.00"`, `"5000 USD"`, `"5e3"`), money's
    own form, or a list holding one.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        return _NUMBER.fullmatch(_DRESSING.sub("", value)) is not None
    if isinstance(value, Mapping):
        # Money's own form, or what holds one: `{amount: ...}`, `{value: ...}`.
        return any(
            _amount_named(str(key), _MONEY_KEYS) and _amount_shaped(item)
            for key, item in value.items()
        )
    if isinstance(value, (list, tuple)):
        return any(_amount_shaped(item) for item in value)
    return False


def _no_second_amount(
    tool: str, spec: ToolSpec, arguments: Mapping[str, Any], args: Mapping[str, ArgSpec]
) -> None:
    """Refuse an amount beside the one decided, in an argument nothing governs.

    With `extra_arguments: allow`, `amount: "1.00"` was decided while `refund_amount: "5000"`
    went with it to the tool, which could pay either. An argument the mapping does not read and
    the action does not declare, named as an amount and holding one (at any depth inside it,
    in a list too), is sent back. It reads names and shapes, so it is a net, not a proof:
    `extra_arguments: refuse` is what guarantees the tool receives nothing ungoverned.
    """
    paths = _read_paths(spec, args)
    if set(paths).issuperset(arguments):
        return  # every argument is read whole, as most calls are: nothing to look into
    paid = _paid_words(spec.amount or "")
    pending = [(name, argument_at(arguments, name)) for name in _unread_keys(arguments, paths)]
    while pending:
        name, value = pending.pop()
        if _amount_named(name.rsplit(".", 1)[-1], paid) and _amount_shaped(value):
            raise ProposalError(
                f"tool {tool!r} argument {name!r} holds an amount"
                + (f" beside {spec.amount!r}, the one decided" if spec.amount else "")
                + ": the tool could pay one nobody decided. Leave it out, or declare it under"
                " the action's args for its rules to read",
                field=f"tool.arguments.{name}",
            )
        if isinstance(value, Mapping):
            pending += [(f"{name}.{key}", item) for key, item in value.items()]
        elif isinstance(value, (list, tuple)):
            # A list's own members were read under its name above; objects in it, by their keys.
            pending += [
                (f"{name}.{index}", item)
                for index, item in enumerate(value)
                if isinstance(item, (Mapping, list, tuple))
            ]


@functools.cache
def _paid_words(amount_at: str) -> frozenset[str]:
    """The words naming an amount paid, with those of the tool's own amount argument."""
    own = {word.lower() for word in _WORD.findall(amount_at.rsplit(".", 1)[-1])}
    return _AMOUNT_WORDS | (own - _NOT_AN_AMOUNT)


def _read_paths(spec: ToolSpec, args: Mapping[str, ArgSpec]) -> list[str]:
    """The argument paths a mapping and the action's declared arguments read."""
    paths = [spec.amount, spec.currency, spec.customer, spec.case, spec.order]
    paths += [spec.args.get(name, name) for name in args]
    return [path for path in paths if path is not None]


def _unread_keys(arguments: Mapping[str, Any], paths: list[str], prefix: str = "") -> list[str]:
    """The keys of `arguments` no path reads, dotted; an object read whole is read entirely."""
    whole = {path for path in paths if "." not in path}
    nested: dict[str, list[str]] = {}
    for path in paths:
        if "." in path:
            head, rest = path.split(".", 1)
            nested.setdefault(head, []).append(rest)
    extra: list[str] = []
    for name in sorted(arguments):
        if name in whole:
            continue
        if name not in nested:
            extra.append(prefix + name)
            continue
        value = arguments[name]
        if isinstance(value, Mapping):
            extra += _unread_keys(value, nested[name], f"{prefix}{name}.")
    return extra


def _as_argument(original: Any, amount: Money) -> Any:
    # Keep the JSON type the tool was called with: a tool that took "80.00" gets "60.00".
    if isinstance(original, (bool, str)):
        return str(amount.amount)
    if isinstance(original, int) and amount.amount == amount.amount.to_integral_value():
        return int(amount.amount)
    if isinstance(original, float):
        return float(amount.amount)
    return str(amount.amount)


def write_amount(
    tool: str, spec: ToolSpec | None, arguments: Mapping[str, Any], amount: Money
) -> dict[str, Any]:
    """A copy of a call's arguments with `amount` written where the mapping reads the amount.

    Raises:
        ProposalError: the mapping names no amount argument, or the call lacks it, so an
            amount written anywhere else would never reach the tool.
    """
    path = spec.amount if spec is not None else None
    original = argument_at(arguments, path) if path else None
    if path is None or original is None:
        raise ProposalError(
            f"tool {tool!r} takes no amount argument the pack maps, so another amount cannot"
            " reach it",
            field="amount",
        )
    written = _as_argument(original, amount)
    if type(written) is type(original) and written == original:
        return dict(arguments)  # already canonical: nothing to copy along the path
    edited = _written_at(arguments, path, written)
    if edited is None:  # pragma: no cover - the original was just read at this path
        raise ProposalError(f"tool {tool!r} argument {path!r} is not where the mapping reads")
    return edited


def write_records(
    spec: ToolSpec | None, arguments: dict[str, Any], ids: Mapping[str, str]
) -> dict[str, Any]:
    """A call's arguments with each record's own id where the mapping reads its id.

    `arguments` itself when every id is already the record's; a copy along the paths written
    otherwise.

    A case system finds a record for a spelling of its id (`a-1`, `Á-1`, an alias) and answers
    the record's own: the decision is checked and counted under that one (`ids`, by `customer`,
    `order` and `case`), and the tool runs with it too, never with a spelling another system
    (the payment provider) may resolve to another record. A number the record answers as the
    same text stays a number.
    """
    edited = arguments
    if spec is None:
        return edited
    for kind, path in (("customer", spec.customer), ("case", spec.case), ("order", spec.order)):
        recorded = ids.get(kind)
        if path is None or recorded is None:
            continue
        raw = argument_at(edited, path)
        if raw is None or raw == recorded or (type(raw) is not str and str(raw) == recorded):
            continue
        edited = _written_at(edited, path, recorded) or edited
    return edited


def _written_at(arguments: Mapping[str, Any], path: str, value: Any) -> dict[str, Any] | None:
    """A copy of the arguments with `value` at `path`; None when a parent on it is no object.

    Only the mappings along the path are copied: the rest is shared, and never changed.
    """
    edited = dict(arguments)
    target = edited
    *parents, last = path.split(".")
    for part in parents:
        inner = target.get(part)
        if not isinstance(inner, Mapping):
            return None
        target[part] = dict(inner)
        target = target[part]
    target[last] = value
    return edited


@dataclass(frozen=True, slots=True, kw_only=True)
class Normalised:
    """A proposal with every field the pack reads from the tool's arguments filled in."""

    proposal: Proposal
    action: ActionPolicy | None
    """None when the tool or action is not governed by the pack."""
    action_name: str
    role: Role
    amount: Money | None
    customer_id: str | None
    case_id: str | None
    order_id: str | None
    mapping: ToolSpec | None
    """How the tool's arguments were read: the pack's mapping of the tool, or one an
    integration declared for a tool the pack does not map; None without a mapped tool."""
    arguments: dict[str, Any]
    """The tool call's arguments as governed, with the amount in its canonical form: what the
    tool must run with. Empty without a tool call."""
    content: dict[str, Any]
    """The normalised proposal as JSON: what `digest` covers."""
    digest: str
    idempotency_key: str
    args: Mapping[str, Any] = field(default_factory=lambda: _NO_ARGS)
    """The declared arguments its action's rules read, typed (see `MappedArguments.args`);
    they come from `arguments`, so the digest and the recorded proposal cover them."""

    pack: PolicyPack
    """The pack with its amounts in the proposal's currency (see `PolicyPack.in_currency`):
    what every later step decides on."""

    def priced(self, pack: PolicyPack) -> Normalised:
        """The same proposal decided on `pack` (a view of its own in another currency)."""
        action = pack.actions.get(self.action_name) if self.action is not None else None
        return replace(self, pack=pack, role=pack.role(self.role.id) or self.role, action=action)

    def cel_args(self) -> dict[str, Any]:
        """The declared arguments as CEL reads them (`args.<name>`)."""
        return cel_arguments(self.args) if self.args else {}

    def record(self) -> dict[str, Any]:
        """The proposal as the lineage records it: its digested content, its key, its ticket."""
        recorded = {**self.content, "idempotency_key": self.idempotency_key}
        if self.proposal.ticket is not None:
            recorded["ticket"] = self.proposal.ticket
        return recorded


def recorded_mapping(recorded: Mapping[str, Any]) -> ToolSpec | None:
    """The mapping a recorded proposal's tool call was read through, when the pack has none.

    Raises:
        ProposalError: the recorded mapping is not one (it was altered outside discretion).
    """
    declared = recorded.get("mapping")
    if declared is None:
        return None
    try:
        return ToolSpec.model_validate(declared)
    except ValidationError as exc:
        raise ProposalError(
            f"mapping: the recorded tool mapping is not valid ({exc.error_count()} errors)",
            field="mapping",
        ) from None


def _role(pack: PolicyPack, proposal: Proposal) -> Role:
    role = pack.role(proposal.actor.role)
    if role is None:
        raise ProposalError(
            f"actor.role: {proposal.actor.role!r} is not a role of pack {pack.name!r};"
            f" roles: {', '.join(r.id for r in pack.roles)}",
            field="actor.role",
        )
    if role.is_ai != proposal.actor.is_ai:
        # An actor is an AI unless it says otherwise (fail closed): a person says is_ai false.
        kind = (
            "an AI (is_ai is true unless given: a person is given is_ai: false)"
            if proposal.actor.is_ai
            else "a person"
        )
        raise ProposalError(
            f"actor: {proposal.actor.id!r} is {kind} but role {role.id!r} is"
            f" {'an AI' if role.is_ai else 'a human'} role",
            field="actor.is_ai",
        )
    return role


def _check_carried(
    tool: str, spec: ToolSpec, read: MappedArguments, proposal: Proposal, *, moves_money: bool
) -> None:
    """Refuse a call that leaves out what its mapping reads while the proposal names it apart.

    The decision would stand on the proposal's value and the tool would run without it (a
    refund tool given no amount may refund the whole order): what runs must be what was
    governed.
    """
    carried = (
        ("amount", spec.amount, read.amount, proposal.amount if moves_money else None),
        ("customer_id", spec.customer, read.customer_id, proposal.customer_id),
        ("case_id", spec.case, read.case_id, proposal.case_id),
        ("order_id", spec.order, read.order_id, proposal.order_id),
    )
    for name, path, found, given in carried:
        if path is not None and found is None and given is not None:
            raise ProposalError(
                f"tool {tool!r} argument {path!r} is missing, so the tool would run without"
                f" the {name.removesuffix('_id')} that is decided; put it in the tool call",
                field=f"tool.arguments.{path}",
            )


def _write_currency(
    tool: str, path: str, arguments: Mapping[str, Any], amount: Money
) -> dict[str, Any]:
    """A copy of the arguments with the decided currency written where the mapping reads it."""
    edited = _written_at(arguments, path, amount.currency)
    if edited is None:
        raise ProposalError(
            f"tool {tool!r} argument {path!r} is missing; put the currency in the tool call",
            field=f"tool.arguments.{path}",
        )
    return edited


def _agree(field: str, given: Any, found: Any, path: str | None) -> Any:
    """The value of a field given both on the proposal and in the tool's arguments."""
    if given is not None and found is not None and given != found:
        if isinstance(given, Money):
            message = f"amount: {given} disagrees with the tool's {found}"
        else:
            message = f"{field}: {given!r} disagrees with the tool argument {path!r} ({found!r})"
        raise ProposalError(message, field=field)
    return given if given is not None else found


def normalise(
    pack: PolicyPack, proposal: Proposal | Mapping[str, Any], *, mapping: ToolSpec | None = None
) -> Normalised:
    """Validate a proposal and fill in what the pack reads from the tool's arguments.

    Args:
        pack: the pack whose roles, actions and tool mappings apply.
        proposal: the proposal, or its JSON.
        mapping: how to read the arguments of a tool the pack does not map (an integration
            declares it for a function it governs under an explicit action); the pack's own
            mapping always wins.

    Raises:
        ProposalError: naming the field at fault.
    """
    proposal = Proposal.parse(proposal)
    role = _role(pack, proposal)
    tool = proposal.tool
    action_name = proposal.action
    spec: ToolSpec | None = None
    if tool is not None:
        mapped = pack.tools.get(tool.name)
        if mapped is not None:
            tool_action, spec = mapped
            if action_name is not None and action_name != tool_action:
                raise ProposalError(
                    f"action: {action_name!r} disagrees with tool {tool.name!r},"
                    f" which performs {tool_action!r}",
                    field="action",
                )
            action_name = tool_action
        elif mapping is not None and action_name is not None:
            spec = mapping
    if action_name is None:
        action_name = tool.name if tool is not None else ""
        if not action_name:
            raise ProposalError("a proposal needs an action or a tool call", field="action")
    action = pack.actions.get(action_name)
    if tool is not None and spec is None:
        # A tool the pack does not map, and no mapping given for it: nothing says which of its
        # arguments is the amount or the order, so what it would do cannot be read, and the
        # proposal's own fields (or a tool named like an action) say nothing about what it
        # runs with. It is governed as an unknown tool (invariant 1), never as the action.
        action = None
    check_asserted(pack, action, proposal.rationale)

    declared = action.args if action is not None else None
    read = (
        read_arguments(
            tool.name,
            spec,
            tool.arguments,
            currency=pack.currency,
            args=declared,
            unit=action.unit if action is not None else None,
        )
        if tool is not None and spec is not None
        else MappedArguments(amount=None, customer_id=None, case_id=None, order_id=None)
    )
    if declared and (tool is None or spec is None):
        required = [name for name, arg in declared.items() if not arg.optional]
        if required:
            raise ProposalError(
                f"action {action_name!r} reads tool arguments ({', '.join(required)}), so it is"
                " proposed as a call to one of its tools",
                field="tool",
            )
    paths = spec or ToolSpec(name=tool.name if tool is not None else "-")
    if tool is not None and spec is not None:
        _check_carried(tool.name, spec, read, proposal, moves_money=action is not None)
    customer_id = _agree("customer_id", proposal.customer_id, read.customer_id, paths.customer)
    case_id = _agree("case_id", proposal.case_id, read.case_id, paths.case)
    order_id = _agree("order_id", proposal.order_id, read.order_id, paths.order)
    amount = _agree("amount", proposal.amount, read.amount, paths.amount)
    if action is not None:
        _named_as_required(
            pack, action_name, paths, {"customer": customer_id, "case": case_id, "order": order_id}
        )
    if tool is not None and spec is None:
        # The proposal's amount says nothing about what an unmapped tool moves: recorded, it
        # would be what the approver is shown and approves, while the tool runs its arguments.
        amount = None
    if action is not None:
        if amount is None:
            where = f" (tool argument {spec.amount!r})" if spec is not None and spec.amount else ""
            raise ProposalError(
                f"amount: action {action_name!r} {_moves(action)} but no amount was given{where}",
                field="amount",
            )
        if amount.amount == 0:
            # Some payment APIs read a zero as "the whole amount": sent back like a negative.
            raise ProposalError(
                f"amount: {amount} is zero, and action {action_name!r} {_moves(action)}; send"
                " the amount it should move (a tool may read zero as the whole amount)",
                field="amount",
            )
        if action.unit is not None or amount.currency in pack.units:
            if amount.currency != action.unit:
                raise ProposalError(
                    f"currency: action {action_name!r} {_moves(action)}, so its amount is not in"
                    f" {amount.currency}; send it in"
                    f" {action.unit or ', '.join(pack.accepts)}",
                    field="currency",
                )
        elif amount.currency not in pack.accepts:
            if len(pack.accepts) == 1:
                raise ProposalError(
                    f"currency: {amount.currency} does not match the pack's currency"
                    f" {pack.currency}; convert before proposing",
                    field="currency",
                )
            raise ProposalError(
                f"currency: {amount.currency} is not one of the pack's currencies"
                f" ({', '.join(pack.accepts)}); convert to one of them before proposing",
                field="currency",
            )
    arguments = dict(tool.arguments) if tool is not None else {}
    if tool is not None and spec is not None and read.amount is not None:
        # What runs is what was governed: the tool gets the amount as it was read and decided,
        # in its canonical form ("64.990" runs as "64.99"), and the digest covers that; and the
        # currency it was decided in, where the mapping reads one the call left out.
        arguments = write_amount(tool.name, spec, arguments, read.amount)
        if (
            spec.currency is not None
            and (action is None or action.unit is None)
            and argument_at(arguments, spec.currency) != read.amount.currency
        ):
            arguments = _write_currency(tool.name, spec.currency, arguments, read.amount)
    if tool is not None and spec is not None:
        # The ids as they were decided: " A-1 " runs as "A-1" (a number stays a number).
        decided = {"customer": read.customer_id, "case": read.case_id, "order": read.order_id}
        arguments = write_records(
            spec, arguments, {kind: id_ for kind, id_ in decided.items() if id_ is not None}
        )
    content = {
        "actor": proposal.actor.model_dump(mode="json"),
        "action": action_name,
        "tool": {"name": tool.name, "arguments": arguments} if tool is not None else None,
        "amount": amount.to_json() if amount is not None else None,
        "customer_id": customer_id,
        "case_id": case_id,
        "order_id": order_id,
        "rationale": proposal.rationale.model_dump(mode="json"),
    }
    if tool is not None and spec is not None and spec is mapping and tool.name not in pack.tools:
        # Read through a mapping the caller declared, not the pack's: on record with the call,
        # so that an approval's re-check and a replay read its arguments as they were decided.
        content["mapping"] = spec.model_dump(mode="json", exclude_defaults=True)
    # `Proposal` refused NaN and infinities in every number it holds.
    proposal_digest = digest(content, finite=True)
    normalised = Normalised(
        proposal=proposal,
        action=action,
        action_name=action_name,
        role=role,
        amount=amount,
        customer_id=customer_id,
        case_id=case_id,
        order_id=order_id,
        mapping=spec,
        arguments=arguments,
        content=content,
        digest=proposal_digest,
        idempotency_key=proposal.idempotency_key or f"auto:{proposal_digest[:40]}",
        args=MappingProxyType(read.args) if read.args else _NO_ARGS,
        pack=pack,
    )
    if amount is not None and amount.currency != pack.currency:
        return normalised.priced(pack.in_currency(amount.currency))
    return normalised
