from __future__ import annotations

import pytest
from rich.console import Console

from _openai_endpoint import JUDGE_VARIABLES
from discretion.cli import _common


@pytest.fixture(autouse=True)
def wide_plain_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide enough that rich never wraps a message, and without colour.
    monkeypatch.setattr(_common, "out", Console(width=250, color_system=None))
    monkeypatch.setattr(_common, "err", Console(stderr=True, width=250, color_system=None))


@pytest.fixture
def judge_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No judge settings inherited from the shell running the tests."""
    for name in JUDGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
