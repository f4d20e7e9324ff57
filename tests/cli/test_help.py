"""Help read off a terminal (piped, in CI logs) keeps each option and paragraph on one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from discretion.cli import app


def help_of(*command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "discretion.cli", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_piped_help_is_plain_and_does_not_wrap_at_80_columns():
    text = help_of("replay")
    assert (
        "  --fail-on-loosen  Exit 1 when the candidate lets more through: a route or deny becomes"
        " an allow, a deny becomes a route, a route goes to a lower role, or more money moves"
        " without a person under any action and reason.\n"
    ) in text
    assert "╭" not in text
    assert max(len(line) for line in text.splitlines()) > 80


@pytest.mark.parametrize("command", [("replay",), ("token", "create"), ("pack", "validate")])
def test_piped_help_labels_no_flag_bool(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    assert "  --help " in result.stdout
