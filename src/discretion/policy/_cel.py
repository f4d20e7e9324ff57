"""Compile CEL once at load, evaluate many times.

cel-expr-python (Google's CEL C++ runtime) type-checks each expression against the variables an
action declares, so a typo in a field name or a string compared with an int fails at load, not
in the middle of a decision. Context fields are declared as qualified names (`order.total`), which
CEL resolves as identifiers. Money is an `int` of minor units: CEL has no decimal type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from discretion.errors import PolicyError

__all__ = ["FIELD_TYPES", "CelProgram", "EvaluationError", "new_env"]

FIELD_TYPES: dict[str, Any] = {
    "string": cel.Type.STRING,
    "int": cel.Type.INT,
    "bool": cel.Type.BOOL,
    "money": cel.Type.INT,
    "timestamp": cel.Type.TIMESTAMP,
    "duration": cel.Type.DURATION,
    "list[string]": cel.Type.List(cel.Type.STRING),
}
"""The context field types a pack may declare, and the CEL type each is seen as."""

_RESULT_TYPES = {"bool": cel.Type.BOOL, "int": cel.Type.INT}


class EvaluationError(Exception):
    """A CEL expression did not produce a value of its type (a missing fact, overflow, ...)."""


def new_env(variables: Mapping[str, str]) -> Any:
    """A CEL environment declaring `variables` (name to field type)."""
    return cel.NewEnv(variables={name: FIELD_TYPES[kind] for name, kind in variables.items()})


_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")


@dataclass(frozen=True, slots=True, kw_only=True)
class CelProgram:
    """One compiled, type-checked expression."""

    source: str
    result: str
    program: Any

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
    ) -> CelProgram:
        """Compile `source` in `env`; it must produce `result` (`bool` or `int`)."""
        try:
            program = env.compile(source)
        except RuntimeError as exc:
            text = str(exc).removeprefix("INVALID_ARGUMENT: ").strip()
            missing = _UNDECLARED.search(text)
            if missing:
                message = (
                    f"unknown field {missing.group(1)!r} in {source!r};"
                    f" declared: {', '.join(sorted(declared))}"
                )
            else:
                message = f"CEL expression {source!r} does not compile: {text}"
            raise PolicyError(
                message, path=path, line=line, rule_id=rule_id, expression=source
            ) from None
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
        return cls(source=source, result=result, program=program)

    def evaluate(self, activation: Any) -> Any:
        """Evaluate; raise `EvaluationError` unless the result has the expected type."""
        value = self.program.eval(activation)
        kind = value.type()
        if kind != _RESULT_TYPES[self.result]:
            raise EvaluationError(f"{self.source!r}: {value.value()}")
        return value.value()
