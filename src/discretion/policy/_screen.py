"""Screens: the `when` of many rules compiled into one CEL program, to find those that hold.

Each CEL evaluation costs about 2 µs whatever it evaluates (crossing into the C++ runtime and
reading the result back), and a comparison inside it about 0.1 µs. Evaluated rule by rule, an
action with a thousand hard limits paid the fixed part a thousand times (4.4 ms a decision).

A screen compiles the `when`s of an action's rules of one kind, in order, as one list,
`[(when0), (when1), ...]`, cut into chunks of at most `CHUNK` rules (a chunk is one program).
One evaluation of a chunk gives every rule in it that holds. Hard limits rarely hold, so their
chunks also get `(when0) || (when1) || ...` (the parser balances the chain), which is cheaper
to evaluate and read back than the list: when it is false, no rule in the chunk holds.

It is exact by CEL's own semantics, with the rules' own programs as the fallback:
- a list with an element that is an error (a fact without a value, an overflow) is itself an
  error: a chunk gives a list only when every `when` in it evaluated to a bool, and then those
  that are true are the rules that hold;
- `a || b` is false only when both sides are false (a side that errors makes it an error unless
  the other is true): a chunk whose `||` is false holds no rule and hides no error.
Any other result (an error, or no program because the joined expression would not compile) and
the chunk is decided rule by rule by the rules' own programs, in order. So the rules that hold,
their order, and the evaluation error raised (at the same rule, with the same message) are those
of evaluating rule by rule, and a consumer that stops at a rule never sees an error after it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discretion.policy._model import Rule

__all__ = ["CHUNK", "Screen", "Screens"]

CHUNK = 128
"""The most rules one program evaluates. Chunks bound the work done rule by rule when one
`when` errors, and the compile time (it grows faster than the expression)."""


@dataclass(frozen=True, slots=True)
class _Chunk:
    start: int
    end: int
    which: Any
    """The list of the `when`s of `rules[start:end]`; None when there is no program."""
    any: Any = None
    """Their `||`; None when there is no program (or it is not worth one)."""


@dataclass(frozen=True, slots=True)
class Screen:
    """An action's rules of one kind, and the programs that find those whose `when` holds."""

    rules: tuple[Rule, ...]
    chunks: tuple[_Chunk, ...]

    @classmethod
    def build(cls, env: Any, rules: tuple[Rule, ...], *, rarely_hold: bool = False) -> Screen:
        """Compile the programs for `rules` in their action's CEL environment `env`.

        `rarely_hold`: give each chunk its `||` as well, to pass over it in one cheaper
        evaluation when none holds. A chunk CEL will not compile (the joined expression too
        long, say) gets no program: its rules are decided one by one. A single rule is decided
        by its own program.
        """
        if len(rules) < 2:
            return cls(rules=rules, chunks=(_Chunk(0, len(rules), None),))
        count = -(-len(rules) // CHUNK)
        bounds = [len(rules) * index // count for index in range(count + 1)]
        chunks = []
        for start, end in itertools.pairwise(bounds):
            # Each `when` on lines of its own, so that a `//` comment ends with it.
            whens = [f"(\n{rule.when.text}\n)" for rule in rules[start:end]]
            chunks.append(
                _Chunk(
                    start,
                    end,
                    which=_compile(env, "[" + ", ".join(whens) + "]"),
                    any=_compile(env, " || ".join(whens)) if rarely_hold else None,
                )
            )
        return cls(rules=rules, chunks=tuple(chunks))

    def over(self, rules: tuple[Rule, ...]) -> Screen:
        """This screen for `rules`: the same rules, in order, with other evidence or judge bands.

        Its programs test only the rules' `when`s, so they stand; `rules` must hold the same
        `when`s in the same order.
        """
        if len(rules) != len(self.rules) or any(
            new.when is not old.when for new, old in zip(rules, self.rules, strict=True)
        ):
            raise ValueError("a screen stands only for rules with the same whens, in order")
        return Screen(rules=rules, chunks=self.chunks)

    def holding(self, activation: Any) -> Iterator[Rule]:
        """The rules whose `when` holds, in order, lazily.

        Raises:
            EvaluationError: at the first rule, in order, whose `when` cannot be evaluated, as
                evaluating rule by rule would (a consumer that stops earlier never sees it).
        """
        rules = self.rules
        for chunk in self.chunks:
            if chunk.any is not None and _value(chunk.any, activation) is False:
                continue
            if chunk.which is not None:
                found = _value(chunk.which, activation)
                if type(found) is list:
                    for position, held in enumerate(found, chunk.start):
                        if held is True:
                            yield rules[position]
                    continue
            for rule in rules[chunk.start : chunk.end]:
                if rule.when.evaluate(activation):
                    yield rule


@dataclass(frozen=True, slots=True, kw_only=True)
class Screens:
    """An action's screens: one for each kind of rule."""

    hard_limits: Screen
    standard: Screen
    exceptions: Screen

    @classmethod
    def build(
        cls,
        env: Any,
        *,
        hard_limits: tuple[Rule, ...],
        standard: tuple[Rule, ...],
        exceptions: tuple[Rule, ...],
    ) -> Screens:
        """Compile the screens of an action's rules in its CEL environment `env`."""
        return cls(
            hard_limits=Screen.build(env, hard_limits, rarely_hold=True),
            standard=Screen.build(env, standard),
            exceptions=Screen.build(env, exceptions),
        )


def _compile(env: Any, text: str) -> Any:
    try:
        return env.compile(text)
    except RuntimeError:
        # Each rule compiled alone; joined, they may run longer or nest deeper than CEL allows.
        return None


def _value(program: Any, activation: Any) -> Any:
    """What `program` gives, as plain Python; an error's message when it gives an error."""
    try:
        return program.eval(activation).plain_value()
    except RuntimeError as exc:
        return str(exc)
