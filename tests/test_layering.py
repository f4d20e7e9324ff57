"""The layers of `src/discretion` point one way: docs/architecture.md draws them.

Every import between the package's top-level units is read from the source, including imports
inside functions (only `if TYPE_CHECKING:` blocks are left out, as they never run). A unit may
import only units below it, so there is no circle either.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "discretion"

LAYERS: list[set[str]] = [
    {"errors", "types", "_telemetry", "_retry"},
    {"money", "lineage"},
    {"signing"},
    {"proposal", "decision"},
    {"policy"},
    {"context", "store"},
    {"judge"},
    {"authority", "budget"},
    {"precedent", "execution"},
    {"pipeline"},
    {"approvals", "shadow", "_similar", "_learning", "webhooks"},
    {"integrations"},
    {"guard"},
    {"settings"},
    {"_metrics"},
    {"api", "evals"},
    {"cli"},
    {"__init__"},
]
"""Lowest first. Units in one layer import nothing of each other."""

RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "discretion":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def _imports() -> dict[str, set[tuple[str, str]]]:
    """unit -> {(imported unit, where)} for every import in the package."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC.parent)
        if "migrations" in relative.parts:
            continue  # Alembic revisions import nothing of the package by design
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        me = _unit(module)
        assert me is not None
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
                if node.module == "discretion":
                    names += [f"discretion.{alias.name}" for alias in node.names]
            for name in names:
                unit = _unit(name)
                if unit is not None and unit != me and unit != "__init__":
                    found[me].add((unit, f"{relative}:{node.lineno}"))
    return found


def test_every_unit_has_a_layer():
    units = {path.stem for path in SRC.glob("*.py")}
    units |= {path.parent.name for path in SRC.glob("*/__init__.py")}
    missing = sorted(units - set(RANK))
    assert missing == [], f"give these units a layer in LAYERS: {missing}"


def test_imports_only_point_down():
    upward = sorted(
        f"{where}: {unit} imports {target}"
        for unit, targets in _imports().items()
        for target, where in targets
        if RANK.get(target, -1) >= RANK[unit]
    )
    assert upward == [], "imports that point up or sideways:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = {unit: {target for target, _ in targets} for unit, targets in _imports().items()}
    state: dict[str, int] = {}

    def visit(unit: str, path: list[str]) -> list[str] | None:
        state[unit] = 1
        for target in sorted(graph.get(unit, ())):
            if state.get(target) == 1:
                return [*path, unit, target]
            if target not in state and (cycle := visit(target, [*path, unit])):
                return cycle
        state[unit] = 2
        return None

    for unit in sorted(graph):
        if unit not in state:
            cycle = visit(unit, [])
            assert cycle is None, " -> ".join(cycle or [])
