"""`discretion check --judge` and `--context-factory`: the same settings `serve` takes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from _openai_endpoint import openai_endpoint
from conftest import NOW
from discretion.cli import app
from judge.helpers import JUDGED_PACK, lost_refund

FACTORY = "_context_factories:lost_parcels"


def check(tmp_path: Path, *options: str) -> object:
    proposal = tmp_path / "lost.json"
    proposal.write_text(json.dumps(lost_refund("15.00")), encoding="utf-8")
    args = ["check", "--pack", str(JUDGED_PACK), "--db", f"sqlite:///{tmp_path / 'l.db'}"]
    args += ["--now", NOW.isoformat(), "--json", *options, str(proposal)]
    return CliRunner().invoke(app, args)


def test_check_decides_with_the_judge_and_the_factory_it_is_given(tmp_path, judge_environment):
    with openai_endpoint() as endpoint:
        judge_environment.setenv("DISCRETION_JUDGE_BASE_URL", endpoint.url)
        judge_environment.setenv("OPENAI_API_KEY", "sk-check")
        result = check(tmp_path, "--context-factory", FACTORY, "--judge", "openai:check-model")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "allow_exception"
    assert (decision["judge"]["llm"], decision["judge"]["model"]) == ("justified", "check-model")
    [call] = endpoint.calls
    assert call["authorization"] == "Bearer sk-check"


def test_check_without_a_judge_reports_none_configured(tmp_path):
    result = check(tmp_path, "--context-factory", FACTORY)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["judge"]["llm"] == "unconfigured"


def test_check_refuses_an_unknown_judge_with_exit_2(tmp_path):
    result = check(tmp_path, "--judge", "foo:bar")
    assert result.exit_code == 2
    assert "judge 'foo:bar': unknown judge 'foo'; write one of openai:MODEL" in result.stderr
    assert not (tmp_path / "l.db").exists()


def test_check_names_the_extra_a_judge_needs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    result = check(tmp_path, "--judge", "openai:check-model")
    assert result.exit_code == 2
    assert "pip install 'discretion[openai]'" in result.stderr


def test_check_refuses_a_factory_it_cannot_import_with_exit_2(tmp_path):
    result = check(tmp_path, "--context-factory", "nowhere_at_all:facts")
    assert result.exit_code == 2
    assert "context factory 'nowhere_at_all:facts': there is no module" in result.stderr


def test_check_takes_a_context_file_or_a_factory_not_both(tmp_path):
    facts = tmp_path / "facts.json"
    facts.write_text('{"defaults": {}}', encoding="utf-8")
    result = check(tmp_path, "--context", str(facts), "--context-factory", FACTORY)
    assert result.exit_code == 2
    assert "or a context factory" in result.stderr
