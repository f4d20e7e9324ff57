"""The LangChain support agent example runs offline and moves money once per tool call."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_agent.py"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = importlib.util.spec_from_file_location("support_agent_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_example_decides_each_ticket_and_a_rerun_moves_no_money(example, tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'support.db'}"
    assert example.main(["--db", db]) == 0
    first = capsys.readouterr().out
    assert "scripted model (offline)" in first
    assert first.count("  decision    allow  ") == 3
    assert "  decision    allow_exception  [discretion.not-standard, refund.carrier-lost]" in first
    assert "  decision    route -> tier2" in first
    assert "  decision    deny  [refund.fraud-hold]" in first
    assert "a specialist is reviewing your request" in first
    assert "approved call ran once: issue_refund -> Refunded USD 500.00 on order A-50007" in first
    assert "Ledger verified: 18 records; money moved 5 times in this run." in first
    assert example.LEDGER[-1] == "refund USD 500.00 on A-50007"

    assert example.main(["--db", db]) == 0
    again = capsys.readouterr().out
    assert again.count("(replayed from the ledger: not run again)") == 5
    assert "Ledger verified: 18 records; money moved 0 times in this run." in again
