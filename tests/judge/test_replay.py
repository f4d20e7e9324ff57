"""Record a real judge's verdicts, then replay them offline with the same outcomes."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import Counter
from discretion import ConfigurationError, Outcome, SqlStore, Verdict
from discretion.judge import RecordingJudge, ReplayJudge, StaticJudge

from .helpers import COMPLETIONS, MODEL, completion, lost_facts, lost_refund, verdict

PROPOSALS = {
    "justified": lost_refund("15.00", key="k-1"),
    "unjustified": lost_refund("16.00", key="k-2"),
}


def answer(request: httpx.Request) -> httpx.Response:
    # The model thinks the 16.00 refund is not justified and the 15.00 one is.
    user = json.loads(request.content)["messages"][1]["content"]
    justified = "15.00 USD" in user
    return httpx.Response(200, json=completion(verdict(justified, reason=f"said {justified}")))


def test_recorded_verdicts_replay_offline_with_the_same_outcomes(
    make_guard, make_judge, judge_http, tmp_path
):
    path = tmp_path / "verdicts.jsonl"
    route = judge_http.post(COMPLETIONS).mock(side_effect=answer)
    recording = make_guard(lost_facts(), judge=RecordingJudge(make_judge(), path))
    live = {name: recording.decide(p) for name, p in PROPOSALS.items()}
    assert route.call_count == 2
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["model"] for line in lines] == [MODEL, MODEL]
    assert lines[0]["prompt_hash"] == live["justified"].judge.prompt_hash

    # Offline: a fresh ledger, and any HTTP call would fail the test.
    replay = ReplayJudge(path)
    assert replay.model == MODEL
    assert len(replay) == 2
    offline = make_guard(
        lost_facts(), judge=replay, store=SqlStore("sqlite://"), ids=Counter("replay")
    )
    replayed = {name: offline.decide(p) for name, p in PROPOSALS.items()}
    assert route.call_count == 2
    for name in PROPOSALS:
        assert replayed[name].outcome is live[name].outcome
        assert replayed[name].rules == live[name].rules
        assert replayed[name].judge.verdict == live[name].judge.verdict
        assert replayed[name].judge.prompt_hash == live[name].judge.prompt_hash
    assert replayed["justified"].outcome is Outcome.ALLOW_EXCEPTION
    assert replayed["unjustified"].outcome is Outcome.ROUTE


def test_replay_of_a_question_never_recorded_routes(make_guard, tmp_path):
    path = tmp_path / "verdicts.jsonl"
    recorder = RecordingJudge(
        StaticJudge(
            Verdict(justified=True, clause="carrier-lost", unsupported_claims=[], reason="ok"),
            model="m",
        ),
        path,
    )
    make_guard(lost_facts(), judge=recorder).decide(lost_refund("15.00", key="k-1"))
    offline = make_guard(
        lost_facts(**{"customer.orders": 9}),
        judge=ReplayJudge(path),
        store=SqlStore("sqlite://"),
    )
    decision = offline.decide(lost_refund("15.00", key="k-1"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.judge.failed"
    assert "no verdict of 'm' is recorded for this refund (carrier-lost" in decision.causes[0]


def test_a_recording_that_is_not_one_is_a_configuration_error(tmp_path):
    path = tmp_path / "verdicts.jsonl"
    path.write_text('{"key": "a", "model": "m", "assessment": {"verdict": {}}}\n', "utf-8")
    with pytest.raises(ConfigurationError, match=r"verdicts.jsonl:1: not a recorded verdict"):
        ReplayJudge(path)
    with pytest.raises(ConfigurationError, match="cannot read the recorded verdicts"):
        ReplayJudge(tmp_path / "missing.jsonl")


def test_a_recording_of_several_models_needs_the_model_named(tmp_path):
    entry = {
        "assessment": {
            "verdict": {"justified": True, "clause": "c", "unsupported_claims": [], "reason": ""}
        }
    }
    path = tmp_path / "verdicts.jsonl"
    path.write_text(
        "\n".join(json.dumps({**entry, "key": k, "model": m}) for k, m in [("a", "x"), ("b", "y")]),
        "utf-8",
    )
    with pytest.raises(ConfigurationError, match="models recorded: x, y"):
        ReplayJudge(path)
    chosen = ReplayJudge(path, model="y")
    assert chosen.model == "y"
    assert len(chosen) == 1
