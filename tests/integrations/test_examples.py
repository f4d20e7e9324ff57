"""The offline example of each integration runs as its docstring says."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


def load(name: str, monkeypatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["openai_agents_agent", "pydantic_ai_agent"])
def test_an_agent_example_runs_allowed_and_approved_calls_once_and_never_a_denied_one(
    name, monkeypatch, capsys
):
    example = load(name, monkeypatch)
    assert asyncio.run(example.main()) == 0
    out = capsys.readouterr().out
    assert "K-70003: told the agent: Refunded USD 64.99 on order A-50003." in out
    assert "K-70007: approved by dana.reyes, ran once: Refunded USD 500.00 on order A-50007." in out
    assert "K-70031: told the agent: Not permitted" in out
    assert example.REFUNDS == ["USD 64.99 on A-50003", "USD 500.00 on A-50007"]
    assert "Ledger verified: 9 records" in out


def test_the_governed_function_example_replays_retries_and_decides_keyed_calls_anew(
    monkeypatch, capsys
):
    example = load("governed_function", monkeypatch)
    assert example.main() == 0
    out = capsys.readouterr().out
    assert "(a retry: replayed)" in out
    assert "(a new call: decided anew)" in out
    assert "Refunded USD 500.00 on order A-50007. (after approval)" in out
    assert "denied: Not permitted" in out
    assert example.REFUNDS == [
        "USD 20.00 on A-50003",
        "USD 20.00 on A-50003",
        "USD 500.00 on A-50007",
    ]


def test_the_mcp_gateway_example_forwards_allowed_and_approved_calls_once(
    monkeypatch, capsys, tmp_path
):
    example = load("mcp_gateway", monkeypatch)
    with (tmp_path / "gateway.err").open("w") as errlog:
        assert anyio.run(example.main, errlog) == 0
    out = capsys.readouterr().out
    assert "tools through the gateway: issue_refund" in out
    assert "K-70003: result: refunded USD 64.99 on A-50003" in out
    assert "K-70007: error: Needs approval by tier2" in out
    assert "the retry ran once: refunded USD 500.00 on A-50007" in out
    assert "K-70031: error: Not permitted" in out
    assert "Ledger verified: 9 records" in out


def test_the_http_agent_example_claims_runs_and_reports_the_approved_call_once(monkeypatch, capsys):
    example = load("http_agent", monkeypatch)
    assert example.main() == 0
    out = capsys.readouterr().out
    assert "K-70003: allowed, the agent ran it: Refunded USD 64.99 on order A-50003." in out
    assert "acme-assist:K-70007:refund: claimed (200); a second claim: 409" in out
    assert "reported once: succeeded: Refunded USD 500.00 on order A-50007." in out
    assert "K-70031: denied: Not permitted" in out
    assert "Queued calls left: 0" in out
    assert example.REFUNDS == ["USD 64.99 on A-50003", "USD 500.00 on A-50007"]
    assert "Ledger verified: 9 records" in out
