"""Pack mistakes in our own words: schema errors and CEL type errors, rewritten for the author.

pydantic speaks of its models (`context.customer.since.FieldSpec.type: Input should be ...
(and 1 more)`, `hard_limit: Extra inputs are not permitted`). `schema_error` turns each of its
errors into the file and line of the YAML, the path as the author wrote it, and a plain
message: an unknown key gets "did you mean" and the keys allowed there, a wrong choice the
choices. Of the errors pydantic reports once per member of a union (a context field is either
a type name or a mapping), only the one for the form the author wrote is kept.

`with_money_hint` adds to a CEL type error over money that money is integer minor units.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from discretion.errors import PolicyError
from discretion.policy._schema import ArgSpec, FieldSpec, PackSpec
from discretion.policy._yaml import LineMap

__all__ = ["schema_error", "with_money_hint"]

_MAX_SHOWN = 5
"""Faults listed in one message; more are counted."""

_PATTERNS = {
    r"^\d+[smhd]$": "a whole number then s, m, h or d, such as 30d or 12h",
    r"^(\d+[smhd]|\d+ (months?|years?)|calendar (day|week|month|quarter|year)|ever)$": "a whole"
    " number then s, m (minutes), h or d, such as 30d or 12h, whole months or years such as"
    " 12 months or 1 year, a calendar period: calendar day, week, month, quarter or year,"
    " or ever",
    r"^\d+(\.\d+)?$": 'an amount written as text, such as "49.99"',
    r"^[a-z0-9][a-z0-9_.-]{0,99}$": "lower case letters, digits, '_', '.' or '-', such as"
    " late-delivery",
    r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$": "lower-case dotted names with at least one"
    " dot, such as order.total or customer.police_report",
}

_KINDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "list_type": "a list",
    "float_type": "a number",
}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (true or false)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{type(value).__name__} {value!r}"


def _members(annotation: Any) -> list[Any]:
    """The types an annotation accepts, Annotated and Optional unwrapped."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        found = []
        for arg in get_args(annotation):
            if arg is not type(None):
                found.extend(_members(arg))
        return found
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field(model: type[BaseModel], key: Any) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


class _Walk:
    """One error's location, followed through the data and the schema at once."""

    def __init__(self, raw: Any, loc: Sequence[Any]) -> None:
        self.path: list[Any] = []
        """The location in the data, union tags left out."""
        self.allowed: list[str] = []
        """The keys the mapping holding the location's last key may have, when it is a model."""
        self.is_key = False
        """The error is about a mapping's key, not its value."""
        self.value: Any = raw
        self.union_value: Any = None
        self.tags: list[str] = []
        """The union members the location went through, by pydantic's tag."""
        self.union_at: tuple[Any, ...] | None = None
        current: list[Any] = [PackSpec]
        parts = list(loc)
        while parts:
            part = parts.pop(0)
            if part == "[key]":
                self.is_key = True
                break
            options = [m for c in current for m in _members(c)]
            if len(options) > 1:
                # pydantic names the union member each error came from; the data has no such key.
                self.union_at = tuple(self.path)
                self.union_value = self.value
                self.tags.append(str(part))
                chosen = [m for m in options if getattr(m, "__name__", None) == part]
                current = chosen or [m for m in options if not _is_model(m)]
                continue
            self.path.append(part)
            holder = next((m for m in options if _is_model(m)), None)
            self.allowed = (
                [info.alias or name for name, info in holder.model_fields.items()]
                if holder is not None
                else []
            )
            if isinstance(self.value, Mapping):
                self.value = self.value.get(part)
            elif isinstance(self.value, list) and isinstance(part, int):
                self.value = self.value[part] if part < len(self.value) else None
            else:
                self.value = None
            current = self._step(options, part)

    @staticmethod
    def _step(options: list[Any], part: Any) -> list[Any]:
        nxt: list[Any] = []
        for option in options:
            if _is_model(option):
                found = _field(option, part)
                if found is not None:
                    nxt.append(found)
            elif get_origin(option) in (list, tuple) and isinstance(part, int):
                nxt.append(get_args(option)[0])
            elif get_origin(option) is dict:
                nxt.append(get_args(option)[1])
        return nxt

    def where(self) -> str:
        """The path as the author wrote it: `roles[1].id`, `context["order.total"].type`."""
        out = ""
        for part in self.path:
            if isinstance(part, int):
                out += f"[{part}]"
            elif "." in str(part) or not str(part):
                out += f"[{str(part)!r}]"
            else:
                out += f".{part}" if out else str(part)
        return out or "the pack"


def _choices(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _message(err: ErrorDetails, walk: _Walk) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(walk.path[-1]) if walk.path else "?"
        allowed = sorted(walk.allowed)
        hint = _suggest(key, allowed)
        listed = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {key!r}{hint}{listed}"
    if kind == "missing":
        return "required here, and missing"
    if kind in ("literal_error", "enum"):
        choices = _choices(str(ctx.get("expected", "")))
        hint = _suggest(str(value), choices) if isinstance(value, str) else ""
        return f"{value!r} is not one of {', '.join(choices)}{hint}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        form = _PATTERNS.get(pattern, f"text matching {pattern}")
        what = "key" if walk.is_key else "value"
        return f"{what} {value!r} should be {form}"
    if kind in _KINDS:
        return f"expected {_KINDS[kind]}, got {_type_of(value)}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} item(s), got {_type_of(value)}"
    if kind.startswith("greater_than") or kind.startswith("less_than"):
        return f"{value!r}: {err['msg'][0].lower()}{err['msg'][1:]}"
    message = err["msg"]
    # A validator's own message already speaks our words; pydantic prefixes it.
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _relevant(errors: list[ErrorDetails], raw: Any) -> list[tuple[ErrorDetails, _Walk]]:
    """One error per place: of a union's, those for the member the author's value is."""
    walked = [(err, _Walk(raw, err["loc"])) for err in errors]
    by_union: dict[tuple[Any, ...], list[tuple[ErrorDetails, _Walk]]] = {}
    kept: list[tuple[ErrorDetails, _Walk]] = []
    for err, walk in walked:
        if walk.union_at is None:
            kept.append((err, walk))
        else:
            by_union.setdefault(walk.union_at, []).append((err, walk))
    for group in by_union.values():
        value = group[0][1].union_value
        as_model = isinstance(value, Mapping)
        fits = [
            (err, walk)
            for err, walk in group
            if (walk.tags[-1][:1].isupper()) == as_model
            and err["type"] not in ("model_type", "dict_type")
        ]
        kept.extend(fits or group[:1])
    return kept


def _drop_covered(faults: list[tuple[ErrorDetails, _Walk]]) -> list[tuple[ErrorDetails, _Walk]]:
    """A missing key that an unknown key beside it is a misspelling of is said once."""
    suggested: set[tuple[Any, ...]] = set()
    for err, walk in faults:
        if err["type"] == "extra_forbidden" and walk.path:
            close = difflib.get_close_matches(str(walk.path[-1]), walk.allowed, n=1)
            if close:
                suggested.add((*walk.path[:-1], close[0]))
    return [
        (err, walk)
        for err, walk in faults
        if not (err["type"] == "missing" and tuple(walk.path) in suggested)
    ]


def schema_error(exc: ValidationError, raw: Any, lines: LineMap, root: Path) -> PolicyError:
    """A `PolicyError` naming, in the author's terms, where each schema fault is and the fix.

    The error's `path` and `line` are the first fault's; the message lists up to five.
    """
    faults = _drop_covered(_relevant(exc.errors(include_url=False), raw))
    placed = []
    for err, walk in faults:
        path = tuple(walk.path)
        # An unknown or malformed key is on its own line; its value may start on the next.
        on_key = err["type"] == "extra_forbidden" or walk.is_key
        source, line = lines.keys[path] if on_key and path in lines.keys else lines.find(path)
        # A missing key has no line of its own: name the file (or folder) that lacks it.
        placed.append((source or str(root), line, f"{walk.where()}: {_message(err, walk)}"))
    placed.sort(key=lambda item: (item[0], item[1] or 0))
    (source, line, first), rest = placed[0], placed[1:]
    others = [
        f"{src}:{ln}: {text}" if ln is not None else f"{src}: {text}"
        for src, ln, text in rest[: _MAX_SHOWN - 1]
    ]
    message = first + "".join(f"\n  also {other}" for other in others)
    if len(rest) > _MAX_SHOWN - 1:
        message += f"\n  and {len(rest) - (_MAX_SHOWN - 1)} more"
    return PolicyError(message, path=source, line=line)


_OVERLOAD = re.compile(r"no matching overload for '[^']*' applied to '\(([^)]*)\)'")


def _money_names(spec: PackSpec) -> set[str]:
    names = {"amount"}
    for name, field in spec.context.items():
        if (field.type if isinstance(field, FieldSpec) else field) == "money":
            names.add(name)
    for name, total in spec.totals.items():
        if total.type == "money":
            names.add(name)
    for action in spec.actions.values():
        for name, arg in action.args.items():
            if (arg.type if isinstance(arg, ArgSpec) else arg) == "money":
                names.add(f"args.{name}")
    return names


def _decimal_places(spec: PackSpec) -> dict[str, int]:
    """Decimal facts and arguments by their CEL name, with their places."""
    places: dict[str, int] = {}
    for name, field in spec.context.items():
        if isinstance(field, FieldSpec) and field.type == "decimal" and field.places:
            places[name] = field.places
    for action in spec.actions.values():
        for name, arg in action.args.items():
            if isinstance(arg, ArgSpec) and arg.type == "decimal" and arg.places:
                places[f"args.{name}"] = arg.places
    return places


def _named(names: Iterable[str], expression: str) -> list[str]:
    return sorted(
        name for name in names if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", expression)
    )


def with_money_hint(exc: PolicyError, spec: PackSpec) -> PolicyError:
    """`exc`, or when it is a CEL type error over money or decimals, the same error with a hint.

    Both are integers in CEL: money in minor units, a decimal scaled by its places.
    """
    found = _OVERLOAD.search(str(exc))
    expression = exc.expression or ""
    if found is None or not {"double", "string"} & {t.strip() for t in found.group(1).split(",")}:
        return exc
    used = _named(_money_names(spec), expression)
    decimals = _decimal_places(spec)
    scaled = _named(decimals, expression)
    if not used and not scaled:
        return exc
    where = str(PolicyError("", path=exc.path, line=exc.line, rule_id=exc.rule_id))
    message = str(exc).removeprefix(where)
    hint = ""
    if used:
        hint += (
            f"\nhint: money is integer minor units (cents) in CEL, so {' and '.join(used)}"
            f" {'is an int' if len(used) == 1 else 'are ints'}:"
            " 649.00 is 64900. Keep money arithmetic in whole numbers, say `x * 11 / 10` for"
            " `x * 1.1`, and compare with whole cents (`amount > 5000` for 50.00)"
        )
    for name in scaled:
        places = decimals[name]
        example = "1" + "0" * places
        hint += (
            f"\nhint: {name} is a decimal of {places} places, so CEL sees it as an int of"
            f" 1/{example}: 1.5 is {15 * 10 ** (places - 1)}. Compare with the scaled whole"
            f" number (`{name} < {999 * 10 ** (places - 1)}` for 99.9)"
        )
    return PolicyError(
        message + hint,
        path=exc.path,
        line=exc.line,
        rule_id=exc.rule_id,
        expression=exc.expression,
    )
