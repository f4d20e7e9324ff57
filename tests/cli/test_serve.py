"""`discretion serve`: the settings it builds its guard from, in one process and in N workers.

uvicorn is replaced by a function that records what it was asked to run; the real process tree
is in tests/api/test_serve_workers.py.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from _openai_endpoint import openai_endpoint
from conftest import SHOP_PACK
from discretion import SqlStore
from discretion.api import Tokens
from discretion.cli import app
from discretion.settings import ENVIRONMENT, Settings
from discretion.types import utc_now
from judge.helpers import JUDGED_PACK, lost_refund

FACTORY = "_context_factories:lost_parcels"


class Run:
    """What `uvicorn.run` was called with, and the settings in the environment at the time."""

    def __init__(self) -> None:
        self.target: Any = None
        self.options: dict[str, Any] = {}
        self.settings: Settings | None = None

    def __call__(self, target: Any, **options: Any) -> None:
        self.target, self.options = target, options
        if options.get("factory"):
            self.settings = Settings.from_environment()


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Run:
    for name in ENVIRONMENT.values():
        monkeypatch.delenv(name, raising=False)
    ran = Run()
    monkeypatch.setattr(uvicorn, "run", ran)
    return ran


def serve(db: str, *options: str) -> Any:
    args = ["serve", "--pack", str(JUDGED_PACK), "--db", db, "--checkpoint-every", "0", *options]
    return CliRunner().invoke(app, args)


def test_serve_hands_every_worker_the_judge_and_factory_through_the_settings(run, tmp_path):
    db = f"sqlite:///{tmp_path / 'served.db'}"
    result = serve(
        db,
        *("--judge", "openai:served-model", "--context-factory", FACTORY),
        *("--workers", "3", "--concurrency", "5", "--secure-cookies"),
    )
    assert result.exit_code == 0, result.output
    assert run.target == "discretion.api._replicas:app_from_environment"
    assert (run.options["factory"], run.options["workers"]) == (True, 3)
    assert run.settings == Settings(
        pack=JUDGED_PACK.resolve(),
        db=db,
        context_factory=FACTORY,
        judge="openai:served-model",
        # serve created the schema before the workers started; they do not race to.
        create_schema=False,
        secure_cookies=True,
        concurrency=5,
    )
    # The handoff leaves the environment of the process that ran serve as it found it.
    assert not {name for name in ENVIRONMENT.values() if name in os.environ}


def test_serve_in_one_process_decides_with_the_judge_and_factory(run, tmp_path, judge_environment):
    db = f"sqlite:///{tmp_path / 'served.db'}"
    store = SqlStore(db)
    secret, _ = Tokens(store, clock=utc_now).create(subject_id="bot-1", role="ai_agent", is_ai=True)
    store.close()
    with openai_endpoint() as endpoint:
        judge_environment.setenv("DISCRETION_JUDGE_BASE_URL", endpoint.url)
        judge_environment.setenv("OPENAI_API_KEY", "sk-served")
        result = serve(db, "--judge", "openai:served-model", "--context-factory", FACTORY)
        assert result.exit_code == 0, result.output
        with TestClient(run.target) as client:
            answer = client.post(
                "/v1/decisions",
                json=lost_refund("15.00"),
                headers={"Authorization": f"Bearer {secret}"},
            )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "allow_exception"
    assert answer.json()["judge"]["model"] == "served-model"
    assert [call["body"]["model"] for call in endpoint.calls] == ["served-model"]
    # A judge waits on the network, so the server works on more decisions at once.
    assert run.target.state.deciding.total_tokens == 40


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--judge", "foo:bar"), "judge 'foo:bar': unknown judge 'foo'"),
        (("--judge", "openai:"), "judge 'openai:': name the model"),
        (("--context-factory", "nowhere_at_all:facts"), "there is no module 'nowhere_at_all'"),
        (("--context-factory", "_context_factories:not_a_provider"), "has no fetch(request)"),
    ],
)
def test_serve_stops_on_a_bad_setting_before_any_worker_starts(run, tmp_path, options, message):
    result = serve(f"sqlite:///{tmp_path / 'served.db'}", "--workers", "2", *options)
    assert result.exit_code == 2
    assert message in result.stderr
    assert run.target is None


def test_serve_hands_the_workers_a_shadow_pack(run, tmp_path):
    result = serve(f"sqlite:///{tmp_path / 's.db'}", "--workers", "2", "--shadow", str(SHOP_PACK))
    assert result.exit_code == 0, result.output
    assert run.settings is not None
    assert run.settings.shadow == SHOP_PACK.resolve()
