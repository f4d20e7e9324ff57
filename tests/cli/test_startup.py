"""Start-up stays light: `import discretion` and every `--help` load none of the heavy parts.

Each check runs in a fresh interpreter and reads `sys.modules`, so a regression fails here
without timing anything. `benchmarks/startup.py` measures the time itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import get_args

import pytest

from discretion.approvals import ApprovalStatus
from discretion.cli._approvals import StatusChoice
from discretion.cli._evals import JudgeChoice
from discretion.evals import JudgeMode

HEAVY = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "openai",
    "jinja2",
    "mcp",
    "langchain",
    "langchain_core",
    "google.protobuf",
    "yaml",
)
"""Packages that only some paths need: a store, the server, the judge, MCP, LangChain, a pack.

pydantic is not among them for the command line: typer itself coerces option values through
pydantic once a subcommand runs (even for its `--help`)."""

ALL_HELP = """
import json, sys
import typer
from typer.testing import CliRunner
from discretion.cli import app

def commands(group, path):
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from commands(command, [*path, name])

runner = CliRunner()
shown = []
for path in commands(typer.main.get_command(app), []):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, (path, result.output)
    shown.append(" ".join(path))
print(json.dumps({"shown": shown, "modules": sorted(sys.modules)}))
"""


def modules_after(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout.splitlines()[-1])


def heavy_in(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY)]


def test_import_discretion_loads_no_heavy_package_and_none_of_its_modules():
    modules = modules_after("import discretion")
    assert heavy_in(modules) == []
    assert "pydantic" not in modules
    assert [m for m in modules if m.startswith("discretion")] == ["discretion"]


def test_a_public_name_loads_its_module_on_first_use():
    modules = modules_after(
        "import discretion\n"
        "from discretion import Money, ProposalError\n"
        "assert Money.__module__ == 'discretion' and ProposalError.__module__ == 'discretion'\n"
        "assert 'Guard' in dir(discretion) and 'SqlStore' in dir(discretion)\n"
        "try:\n"
        "    from discretion import Gaurd\n"
        "except ImportError as exc:\n"
        "    assert 'Gaurd' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('a misspelt name imported')\n"
    )
    assert {"discretion.money", "discretion.errors"} <= set(modules)
    assert {"discretion.guard", "sqlalchemy"}.isdisjoint(modules)


def test_every_help_of_the_command_line_loads_no_heavy_package():
    done = subprocess.run(
        [sys.executable, "-c", ALL_HELP], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert {"", "serve", "eval", "approvals list", "token create", "db upgrade"} <= set(
        report["shown"]
    )
    assert heavy_in(report["modules"]) == []
    library = {m for m in report["modules"] if m.startswith("discretion")}
    library -= {m for m in library if m == "discretion.cli" or m.startswith("discretion.cli.")}
    assert library == {"discretion", "discretion.errors", "discretion.settings"}


@pytest.mark.parametrize(
    ("choice", "enum"), [(StatusChoice, ApprovalStatus), (JudgeChoice, JudgeMode)]
)
def test_command_line_choices_are_the_enums_values(choice, enum):
    assert get_args(choice) == tuple(member.value for member in enum)
