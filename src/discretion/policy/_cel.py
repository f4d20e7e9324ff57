"""Compile CEL once at load, evaluate many times.

cel-expr-python (Google's CEL C++ runtime) type-checks each expression against the variables an
action declares, so a typo in a field name or a string compared with an int fails at load, not
in the middle of a decision. Context fields are declared as qualified names (`order.total`), which
CEL resolves as identifiers. Money is an `int` of minor units: CEL has no decimal type.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext.ext_bindings import ExtBindings
from cel_expr_python.ext.ext_math import ExtMath
from cel_expr_python.ext.ext_strings import ExtStrings

from discretion.errors import PolicyError
from discretion.policy._business import BusinessDays
from discretion.policy._records import RecordType, descriptor_pool_of, record_name

__all__ = [
    "FIELD_TYPES",
    "PRESENCE_PREFIX",
    "CelProgram",
    "EvaluationError",
    "new_env",
    "rewrite_presence",
]

FIELD_TYPES: dict[str, Any] = {
    "string": cel.Type.STRING,
    "int": cel.Type.INT,
    "bool": cel.Type.BOOL,
    "money": cel.Type.INT,
    "timestamp": cel.Type.TIMESTAMP,
    "duration": cel.Type.DURATION,
    "list[string]": cel.Type.List(cel.Type.STRING),
    "decimal": cel.Type.INT,
    "list[int]": cel.Type.List(cel.Type.INT),
}
"""The context field types a pack may declare, and the CEL type each is seen as."""

_RESULT_TYPES = {"bool": cel.Type.BOOL, "int": cel.Type.INT, "string": cel.Type.STRING}


PRESENCE_PREFIX = "__present."
"""The bool variable `has(name)` is read as: `__present.reservation.id`."""

_HAS = re.compile(r"\bhas\(\s*([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+)\s*\)")
_ESCAPED = (
    r"(?:'''(?:[^\\]|\\.)*?'''|\"\"\"(?:[^\\]|\\.)*?\"\"\""
    r"|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")"
)
_LEXEME = re.compile(
    r"(?P<comment>//[^\n]*)"
    rf"|(?<![\w.])(?:[rR][bB]?|[bB][rR]?)?{_ESCAPED}"
)
"""What CEL reads as no names: a `//` comment to its line's end, and a string literal (raw or
not, single or triple quoted, text or bytes). CEL's lexer skips the character after a backslash
in a raw string too (`r'\\'` holds two backslashes; `r'\'` does not end)."""


_SPACES = re.compile(r"\s+")


def without_comments(source: str) -> str:
    """`source` with each `//` comment made a space; string literals are left as they are."""
    if "//" not in source:
        return source
    return _LEXEME.sub(lambda m: " " if m.group("comment") else m.group(0), source)


def one_line(source: str) -> str:
    """`source` as one line, for a message: its comments dropped, its spacing made single.

    A string literal keeps its own spacing; a pack's `when` written over several lines reads
    as one condition in an explanation.
    """
    code = without_comments(source)
    out: list[str] = []
    position = 0
    for literal in _LEXEME.finditer(code):
        out += [_SPACES.sub(" ", code[position : literal.start()]), literal.group(0)]
        position = literal.end()
    out.append(_SPACES.sub(" ", code[position:]))
    return "".join(out).strip()


def blank_literals(source: str) -> str:
    """`source` with its comments dropped and each string literal emptied (`''`).

    What is left names exactly what the expression reads: an apostrophe in a comment
    (`// the customer's word`) or a name spelt inside a string neither hides nor adds one.
    """
    return _LEXEME.sub(lambda m: " " if m.group("comment") else "''", source)


def rewrite_presence(source: str, declared: Mapping[str, bool]) -> tuple[str, list[str], list[str]]:
    """Read `has(name)` on a declared name as a test of the fact's (or argument's) presence.

    Facts and arguments are declared to CEL as qualified names (`reservation.id`), which CEL's
    `has()` macro cannot test: it expects a field of a message or a map. So `has(reservation.id)`
    on a declared name becomes the bool variable `__present.reservation.id`, bound on every
    evaluation. String literals and comments are left as they are.

    Args:
        source: the expression as written.
        declared: every declared name, and whether it may be absent.

    Returns:
        The expression to compile, the names whose presence it tests, and the declared names it
        tests that are never absent (an error for the caller to report).
    """
    if "has(" not in source:
        return source, [], []
    tested: list[str] = []
    never_absent: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = re.sub(r"\s+", "", match.group(1))
        if name not in declared:
            return match.group(0)  # a field of a map, or an unknown name CEL will report
        if not declared[name]:
            never_absent.append(name)
            return match.group(0)
        tested.append(name)
        return PRESENCE_PREFIX + name

    out: list[str] = []
    position = 0
    for literal in _LEXEME.finditer(source):
        out.append(_HAS.sub(replace, source[position : literal.start()]))
        out.append(literal.group(0))
        position = literal.end()
    out.append(_HAS.sub(replace, source[position:]))
    return "".join(out), list(dict.fromkeys(tested)), list(dict.fromkeys(never_absent))


class EvaluationError(Exception):
    """A CEL expression did not produce a value of its type (a missing fact, overflow, ...)."""


_UNBOUND = re.compile(r'No value with name "([^"]+)" found in Activation')


def _why(error: str) -> str:
    """CEL's error in the pack's words: an unbound name is a fact or argument with no value."""
    unbound = _UNBOUND.search(error)
    if unbound is not None:
        return f"{unbound.group(1)} has no value, so it cannot be decided"
    return error


def new_env(
    variables: Mapping[str, str],
    records: Mapping[str, RecordType] | None = None,
    business: BusinessDays | None = None,
) -> Any:
    """A CEL environment declaring `variables` (name to field type).

    `records`: the pack's record types, for variables of a record type (`list[item]`); they are
    messages of the pack's own descriptor pool. `business`: the working days `businessDays()`
    counts (Monday to Friday in UTC when None).
    """
    extensions = _extensions(business or BusinessDays())
    if not records:
        return cel.NewEnv(
            variables={name: FIELD_TYPES[kind] for name, kind in variables.items()},
            extensions=extensions,
        )
    types = {}
    for name, kind in variables.items():
        if kind in FIELD_TYPES:
            types[name] = FIELD_TYPES[kind]
        else:
            record, is_list = record_name(kind)
            message = records[record].cel_type
            types[name] = cel.Type.List(message) if is_list else message
    return cel.NewEnv(
        descriptor_pool=descriptor_pool_of(records), variables=types, extensions=extensions
    )


def _extensions(business: BusinessDays) -> list[Any]:
    """CEL's extension libraries a pack's expressions may use, and discretion's own functions.

    `cel.bind` to name a value once, `math.greatest` / `math.least` and the rest of `math`, the
    string functions (`lowerAscii`, `split`, `trim`, ...), `businessDays(from, to)` on the
    pack's calendar, `addMonths(ts, n)` in its time zone, and `sum(list)` of ints (money in
    minor units). Each is pure: it reads
    only its arguments (and the pack).
    """
    days = cel.FunctionDecl(
        "businessDays",
        [
            cel.Overload(
                "business_days_timestamp_timestamp",
                cel.Type.INT,
                [cel.Type.TIMESTAMP, cel.Type.TIMESTAMP],
                impl=business.between,
            )
        ],
    )
    months = cel.FunctionDecl(
        "addMonths",
        [
            cel.Overload(
                "add_months_timestamp_int",
                cel.Type.TIMESTAMP,
                [cel.Type.TIMESTAMP, cel.Type.INT],
                impl=business.add_months,
            )
        ],
    )
    total = cel.FunctionDecl(
        "sum",
        [cel.Overload("sum_list_int", cel.Type.INT, [cel.Type.List(cel.Type.INT)], impl=_sum)],
    )
    return [
        ExtBindings(),
        ExtMath(),
        ExtStrings(),
        cel.CelExtension("discretion.business_days", [days, months]),
        cel.CelExtension("discretion.sum", [total]),
    ]


_INT64 = (-(2**63), 2**63 - 1)


def _sum(values: list[int]) -> int:
    """`sum(list)`: the ints added up (0 for none); beyond CEL's 64-bit ints it is an error."""
    total = sum(values)
    if not _INT64[0] <= total <= _INT64[1]:
        raise OverflowError("sum() overflows a 64-bit int")
    return total


_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")
_LITERAL_CALL = re.compile(r"\b(duration|timestamp)\(\s*('[^'\\]*'|\"[^\"\\]*\")\s*\)")
"""`duration('48h')` or `timestamp("2026-01-01T00:00:00Z")` on a literal: checked at load."""
_LITERALS = cel.NewEnv(variables={})
"""Where such a literal call is evaluated alone, to refuse at load one CEL cannot read."""
_LITERAL_HINT = {
    "duration": "CEL's durations are written in h, m, s, ms, us and ns: duration('48h') for"
    " two days, duration('720h') for thirty",
    "timestamp": "CEL's timestamps are RFC 3339 with a UTC offset:"
    " timestamp('2026-01-01T00:00:00Z')",
}


def _unknown(name: str, source: str, declared: list[str], unread: Collection[str]) -> str:
    """What an undeclared reference in `source` most likely is, in the pack's words."""
    call = re.search(rf"\b{re.escape(name)}\s*\.\s*([A-Za-z_]\w*)\s*\(", source)
    if call is not None:
        return (
            f"unknown function {name}.{call.group(1)}() in {source!r}; the functions a rule may"
            " call are CEL's own, its math and strings extensions (math.greatest, math.least,"
            " lowerAscii, ...), cel.bind, businessDays(), addMonths() and sum()"
        )
    if name in unread:
        return (
            f"field {name!r} in {source!r} is declared by the pack, but this action does not"
            " read it; add it to the action's reads"
        )
    if name.startswith("amounts."):
        return (
            f"unknown field {name!r} in {source!r}: a named amount is money, read only by"
            " actions that move money and only when `amounts` declares it; an action counting"
            " a unit writes its number. Declared here: "
            + (", ".join(sorted(n for n in declared if n.startswith("amounts."))) or "(none)")
        )
    return f"unknown field {name!r} in {source!r}; declared: {', '.join(sorted(declared))}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CelProgram:
    """One compiled, type-checked expression."""

    source: str
    result: str
    program: Any
    text: str
    """What was compiled: `source` with `has()` rewritten (see `rewrite_presence`)."""

    @classmethod
    def compile(
        cls,
        env: Any,
        source: str,
        *,
        result: str,
        declared: list[str],
        path: str | None,
        line: int | None,
        rule_id: str,
        text: str | None = None,
        unread: Collection[str] = (),
    ) -> CelProgram:
        """Compile `source` in `env`; it must produce `result` (`bool`, `int` or `string`).

        `text`, when given, is what is compiled (`source` with `has()` rewritten, see
        `rewrite_presence`); errors quote `source`, as the pack author wrote it. `unread`: the
        pack's fields the expression's action does not read, named as such when used.
        """
        compiled = text if text is not None else source
        try:
            program = env.compile(compiled)
        except RuntimeError as exc:
            detail = str(exc).removeprefix("INVALID_ARGUMENT: ").strip()
            missing = _UNDECLARED.search(detail)
            if missing:
                message = _unknown(missing.group(1), source, declared, unread)
            else:
                message = f"CEL expression {source!r} does not compile: {detail}"
            raise PolicyError(
                message, path=path, line=line, rule_id=rule_id, expression=source
            ) from None
        for call in _LITERAL_CALL.finditer(compiled):
            value = _LITERALS.compile(call.group(0)).eval(_LITERALS.Activation({}))
            if value.type() == cel.Type.ERROR:
                raise PolicyError(
                    f"{call.group(0)} in {source!r} is not a {call.group(1)} CEL can read;"
                    f" {_LITERAL_HINT[call.group(1)]}",
                    path=path,
                    line=line,
                    rule_id=rule_id,
                    expression=source,
                )
        expected = _RESULT_TYPES[result]
        if program.return_type() != expected:
            raise PolicyError(
                f"CEL expression {source!r} gives {program.return_type().name()}, expected {result}"
                + (" (money is an int of minor units)" if result == "int" else ""),
                path=path,
                line=line,
                rule_id=rule_id,
                expression=source,
            )
        return cls(
            source=source,
            result=result,
            program=program,
            text=compiled,
        )

    def evaluate(self, activation: Any) -> Any:
        """Evaluate; raise `EvaluationError` unless the result has the expected type."""
        value = self.program.eval(activation)
        kind = value.type()
        if kind != _RESULT_TYPES[self.result]:
            raise EvaluationError(f"{self.source!r}: {_why(str(value.value()))}")
        return value.value()
