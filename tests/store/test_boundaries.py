"""`discretion.store` is the only place that talks SQL: nothing else imports SQLAlchemy or the
store's private names, not even inside a function. Imports under `if TYPE_CHECKING:` are left
alone: they never run."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import discretion

PACKAGE = Path(discretion.__file__).parent
STORE = PACKAGE / "store"


def modules_outside_the_store() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if STORE not in p.parents)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                yield from imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from imports(node)


def absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def is_private_store_module(name: str) -> bool:
    parts = name.split(".")
    return parts[:2] == ["discretion", "store"] and any(p.startswith("_") for p in parts[2:])


def violations(path: Path, source: str | None = None) -> list[str]:
    name = module_name(path)
    text = path.read_text(encoding="utf-8") if source is None else source
    found: list[str] = []
    for node in imports(ast.parse(text, filename=str(path))):
        where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sqlalchemy":
                    found.append(f"{where} imports {alias.name}")
                elif is_private_store_module(alias.name):
                    found.append(f"{where} imports the private module {alias.name}")
            continue
        module = absolute(node, name, path.name == "__init__.py")
        if module.split(".")[0] == "sqlalchemy":
            found.append(f"{where} imports from {module}")
        elif is_private_store_module(module):
            found.append(f"{where} imports from the private module {module}")
        elif module == "discretion.store":
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"{where} imports the private name discretion.store.{alias.name}")
    return found


def test_no_module_outside_the_store_imports_sqlalchemy_or_private_store_names():
    checked = modules_outside_the_store()
    assert len(checked) > 50, "the scan found the package's modules"
    found = [v for path in checked for v in violations(path)]
    assert not found, "talk to the store through its access API:\n" + "\n".join(found)


def test_every_kind_of_back_door_is_found_at_any_depth_but_not_for_type_checking():
    source = """\
import typing
from typing import TYPE_CHECKING
import sqlalchemy.exc
from sqlalchemy import select
from discretion.store import SqlStore, _dialect
from discretion.store._sql import SqlTransaction
import discretion.store._schema
if TYPE_CHECKING:
    from discretion.store._sql import SqlStore
else:
    from discretion.store import _compiled
if typing.TYPE_CHECKING:
    import sqlalchemy
def later():
    from ..store import _executions
    class Inner:
        def method(self):
            from ..store._schema import ledger
"""
    found = violations(PACKAGE / "approvals" / "_probe.py", source)
    assert [v.split(" ", 1)[1] for v in found] == [
        "imports sqlalchemy.exc",
        "imports from sqlalchemy",
        "imports the private name discretion.store._dialect",
        "imports from the private module discretion.store._sql",
        "imports the private module discretion.store._schema",
        "imports the private name discretion.store._compiled",
        "imports the private name discretion.store._executions",
        "imports from the private module discretion.store._schema",
    ]
