"""The command line is a thin edge: the library never imports it, nor its modules each other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import discretion

PACKAGE = Path(discretion.__file__).parent
CLI = PACKAGE / "cli"
SHARED = "discretion.cli._common"


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """Each module `path` imports (a `from` import's names as submodules too), and whether the
    import is inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside |= {id(child) for child in ast.walk(node) if child is not node}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in inside
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, id(node) in inside
            for alias in node.names:
                yield f"{node.module}.{alias.name}", id(node) in inside


def is_cli(module: str) -> bool:
    return module == "discretion.cli" or module.startswith("discretion.cli.")


def test_nothing_in_the_library_imports_the_command_line():
    for path in PACKAGE.rglob("*.py"):
        if CLI in path.parents:
            continue
        found = [module for module, _ in imports(path) if is_cli(module)]
        assert not found, f"{path.relative_to(PACKAGE)} imports {found}"


def test_command_modules_import_only_the_shared_helpers_and_never_inside_a_function():
    commands = [p for p in CLI.glob("_*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(commands) >= 10
    for path in commands:
        for module, in_function in imports(path):
            if not is_cli(module):
                continue
            assert not in_function, f"{path.name} imports {module} inside a function"
            # `from discretion.cli import _common` names the package, then the helpers.
            shared = module == "discretion.cli" or module.split(".")[:3] == SHARED.split(".")
            assert shared, f"{path.name} imports {module}"
