"""Where an allowed decision's time goes: each pipeline step, timed inside the decide loop.

Run: python benchmarks/steps.py [--n 4000] [--pack PATH]

Decides `--n` allowed proposals (as `decide.py` does, on SQLite, facts from memory) with each
step below wrapped in a timer, and prints the microseconds a decision spends in it. The steps
nest (`assess` holds `assemble`, `totals read` and `evaluate (pipeline)`; `record` holds
`budgets`, `build decision`, `append` and `COMMIT`), so the figures are inclusive and do not add
up. Each wrapper costs about 0.3 us, counted in its step.

It then times the pack's evaluation three times in a row within each decision: the first call
pays for code and data the rest of the decision pushed out of the CPU's caches; the second and
third find them there. The gap is what the same code costs in the loop against alone (the
"evaluation (CEL)" line of `decide.py` times it alone, warm).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from decide import NOW, PACK, Records, facts_for, proposal

from discretion import Guard, SqlStore, load_pack
from discretion.context import Snapshot
from discretion.pipeline import _pipeline
from discretion.store import _sql

STEPS: list[tuple[str, Any, str]] = [
    ("decide", _pipeline.Pipeline, "govern"),
    ("normalise", _pipeline.Pipeline, "normalise"),
    ("assess", _pipeline.Pipeline, "assess"),
    ("  assemble (context)", _pipeline.Pipeline, "assemble"),
    ("  totals read", _pipeline, "read_ledger"),
    ("  evaluate (pipeline)", _pipeline.Pipeline, "_evaluate"),
    ("    evaluate (pack)", _pipeline, "evaluate"),
    ("record", _pipeline.Pipeline, "_record"),
    ("  totals again (settle)", _pipeline.Pipeline, "_settle"),
    ("  budgets", _pipeline, "check_budgets"),
    ("  build decision", _pipeline, "build_decision"),
    ("  snapshot's JSON and digest", Snapshot, "digest"),
    ("  append", _sql.SqlTransaction, "append"),
]
"""(label, owner, attribute): what is wrapped, indented as the steps nest."""


def timed(spent: dict[str, float], label: str, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    return wrapper


@contextmanager
def wrapped(spent: dict[str, float]) -> Iterator[None]:
    """Every step of `STEPS` timed into `spent`, and the SQLite COMMIT; put back on exit."""
    saved = [(owner, name, owner.__dict__[name]) for _, owner, name in STEPS]
    immediate = _sql._immediate
    try:
        for label, owner, name in STEPS:
            found = owner.__dict__[name]
            if isinstance(found, property):  # a property's getter is what runs
                setattr(owner, name, property(timed(spent, label, found.fget)))
            else:
                setattr(owner, name, timed(spent, label, getattr(owner, name)))

        @contextmanager
        def committing(connection: Any) -> Iterator[None]:
            # `_immediate` with its end timed: the COMMIT (and SQLAlchemy's part in it).
            with immediate(connection):
                yield
                spent["  COMMIT"] -= time.perf_counter()
            spent["  COMMIT"] += time.perf_counter()

        _sql._immediate = committing
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
        _sql._immediate = immediate


def evaluated_thrice(spent: dict[str, float]) -> Callable[..., Any]:
    """`evaluate` that runs three times and times each call apart."""
    evaluate = _pipeline.evaluate

    def thrice(*args: Any, **kwargs: Any) -> Any:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            found = evaluate(*args, **kwargs)
            times.append(time.perf_counter() - started)
        for label, took in zip(("first", "second", "third"), times, strict=True):
            spent[f"evaluate (pack), {label} call"] += took
        return found

    return thrice


def run(path: Path, n: int) -> None:
    pack = load_pack(path)
    with tempfile.TemporaryDirectory() as folder:
        guard = Guard(
            pack,
            store=SqlStore(f"sqlite:///{folder}/steps.db"),
            context=Records(facts_for(pack.fields)),
            clock=lambda: NOW,
        )
        for i in range(300):
            guard.decide(proposal(-1 - i))  # warm up: compiled statements, caches
        spent: dict[str, float] = defaultdict(float)
        with wrapped(spent):
            started = time.perf_counter()
            for i in range(n):
                decision = guard.decide(proposal(i))
            total = time.perf_counter() - started
        print(f"{pack.name}: {decision.outcome.value}, {n} decisions")
        print(f"{'step':34} {'us a decision':>14}")
        print(f"{'(the whole loop)':34} {total / n * 1e6:14.1f}")
        for label, _, _ in STEPS:
            print(f"{label:34} {spent[label] / n * 1e6:14.1f}")
        print(f"{'  COMMIT':34} {spent['  COMMIT'] / n * 1e6:14.1f}")

        thrice: dict[str, float] = defaultdict(float)
        evaluate = _pipeline.evaluate
        _pipeline.evaluate = evaluated_thrice(thrice)  # type: ignore[assignment]
        try:
            for i in range(n, 2 * n):
                guard.decide(proposal(i))
        finally:
            _pipeline.evaluate = evaluate  # type: ignore[assignment]
        for label, took in thrice.items():
            print(f"{label:34} {took / n * 1e6:14.1f}")
        guard.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--pack", type=Path, default=PACK)
    arguments = parser.parse_args()
    run(arguments.pack, arguments.n)


if __name__ == "__main__":
    main()
