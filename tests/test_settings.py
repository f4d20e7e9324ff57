"""`Settings` and `build_guard`: every context kind, a factory, the judge, and each mistake."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from _openai_endpoint import JUDGE_VARIABLES, openai_endpoint
from conftest import NOW, SHOP_PACK, good_facts, refund
from discretion import ConfigurationError, Guard, Outcome, StoreError
from discretion.context import JsonContextProvider, SqliteCaseStore, StaticContextProvider
from discretion.settings import ENVIRONMENT, Settings, build_guard
from judge.helpers import JUDGED_PACK, lost_refund

ACME = Path(__file__).parent.parent / "examples" / "acme"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def build() -> Iterator[Callable[[Settings], Guard]]:
    """`build_guard`, closing each guard's store and case database after the test."""
    built: list[Guard] = []

    def make(settings: Settings) -> Guard:
        guard = build_guard(settings)
        built.append(guard)
        return guard

    yield make
    for guard in built:
        guard.store.close()
        if isinstance(guard.context, SqliteCaseStore):
            guard.context.close()


@pytest.fixture
def no_judge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in JUDGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def facts_file(path: Path, **overrides: Any) -> Path:
    path.write_text(json.dumps({"defaults": good_facts(**overrides)}), encoding="utf-8")
    return path


# context: each kind


def test_a_json_facts_file_decides_on_its_facts(build, db, tmp_path):
    settings = Settings(pack=SHOP_PACK, db=db, context=facts_file(tmp_path / "f.json"), now=NOW)
    guard = build(settings)
    assert isinstance(guard.context, JsonContextProvider)
    decision = guard.decide(refund("40.00"))
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["refund-within-30-days"])
    assert decision.decided_at == NOW


def test_a_sql_case_script_and_a_sqlite_case_database_serve_the_same_facts(build, db, tmp_path):
    script = ACME / "cases.sql"
    SqliteCaseStore.from_sql(script, database=tmp_path / "cases.db").close()
    for source in (script, tmp_path / "cases.db"):
        guard = build(Settings(pack=ACME / "pack", db=db, context=source, now=NOW))
        assert isinstance(guard.context, SqliteCaseStore), source
        decision = guard.preview(
            json.loads((ACME / "proposals" / "07-refund-fraud-hold.json").read_text())
        )
        assert decision.rules == ["refund.fraud-hold"], source


@pytest.mark.parametrize("where", [".", ".."])
def test_facts_beside_the_pack_or_one_folder_up_are_found(build, db, tmp_path, where):
    folder = tmp_path / "shop" / "pack"
    folder.mkdir(parents=True)
    shutil.copy(SHOP_PACK, folder / "shop.yaml")
    facts_file((folder / where / "context.json").resolve())
    guard = build(Settings(pack=folder, db=db, now=NOW))
    assert isinstance(guard.context, JsonContextProvider)
    assert guard.decide(refund("40.00")).outcome is Outcome.ALLOW


def test_without_any_facts_a_rule_that_needs_one_routes(build, db, tmp_path):
    shutil.copy(SHOP_PACK, tmp_path / "shop.yaml")
    guard = build(Settings(pack=tmp_path / "shop.yaml", db=db, now=NOW))
    assert isinstance(guard.context, StaticContextProvider)
    assert guard.decide(refund("40.00")).outcome is Outcome.ROUTE


def test_a_context_factory_provides_the_facts(build, db):
    settings = Settings(
        pack=JUDGED_PACK, db=db, context_factory="_context_factories:lost_parcels", now=NOW
    )
    guard = build(settings)
    assert type(guard.context).__name__ == "LostParcels"
    # The lost parcel's facts make it a carrier-lost exception, above the AI's authority at 25.00.
    decision = guard.decide(lost_refund("25.00"))
    assert decision.rules == [
        "discretion.not-standard",
        "carrier-lost",
        "discretion.exception-authority",
    ]


# the rest of what a guard is built from


def test_now_shadow_and_the_database_are_the_settings(build, db, tmp_path):
    context = facts_file(tmp_path / "f.json")
    guard = build(Settings(pack=SHOP_PACK, db=db, context=context, now=NOW, shadow=SHOP_PACK))
    assert guard.now() == NOW
    assert guard.shadow is not None
    assert guard.store.url == db  # type: ignore[attr-defined]


def test_without_create_schema_a_missing_database_is_an_error_not_a_new_file(tmp_path):
    missing = tmp_path / "typo.db"
    with pytest.raises(StoreError, match="no database at"):
        build_guard(Settings(pack=SHOP_PACK, db=f"sqlite:///{missing}", create_schema=False))
    assert not missing.exists()


def test_an_openai_judge_takes_its_model_from_the_settings_and_key_and_url_from_the_env(
    build, db, monkeypatch, no_judge_environment
):
    with openai_endpoint() as endpoint:
        monkeypatch.setenv("DISCRETION_JUDGE_BASE_URL", endpoint.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
        settings = Settings(
            pack=JUDGED_PACK,
            db=db,
            context_factory="_context_factories:lost_parcels",
            judge="openai:judge-test-model",
            now=NOW,
        )
        guard = build(settings)
        decision = guard.decide(lost_refund("15.00"))
    assert not guard.in_process
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.judge is not None
    assert (decision.judge.llm, decision.judge.model) == ("justified", "judge-test-model")
    [call] = endpoint.calls
    assert call["path"] == "/v1/chat/completions"
    assert call["body"]["model"] == "judge-test-model"
    assert call["authorization"] == "Bearer sk-from-the-environment"


def test_without_a_judge_the_grounded_judge_serves_alone(build, db):
    settings = Settings(pack=JUDGED_PACK, db=db, context_factory="_context_factories:lost_parcels")
    guard = build(replace(settings, now=NOW))
    decision = guard.decide(lost_refund("15.00"))
    assert decision.judge is not None
    assert decision.judge.llm == "unconfigured"


# mistakes: each says what, where and what to do


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("no_such_module_here:make", "there is no module 'no_such_module_here'; install it or"),
        ("_context_factories:missing", "module '_context_factories' has no 'missing'"),
        ("_context_factories:NOT_CALLABLE", "'NOT_CALLABLE' is a str, not a callable"),
        ("_context_factories:not_a_provider", "returned a dict, which has no fetch(request)"),
    ],
)
def test_a_context_factory_that_cannot_provide_is_a_configuration_error(db, factory, message):
    with pytest.raises(ConfigurationError, match=f"context factory '{factory}'") as raised:
        build_guard(Settings(pack=SHOP_PACK, db=db, context_factory=factory))
    assert message in str(raised.value)


def test_a_factory_module_whose_own_import_fails_says_so(db, tmp_path, monkeypatch):
    (tmp_path / "broken_factory.py").write_text("import not_installed_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError) as raised:
        build_guard(Settings(pack=SHOP_PACK, db=db, context_factory="broken_factory:make"))
    assert "module 'broken_factory' cannot be imported" in str(raised.value)
    assert "not_installed_anywhere" in str(raised.value)


@pytest.mark.parametrize("factory", ["no_colon", ":make", "module:"])
def test_a_factory_is_written_module_colon_callable(factory):
    with pytest.raises(ConfigurationError, match=r"write module:callable, such as acme\.crm:facts"):
        Settings(pack=SHOP_PACK, context_factory=factory)


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        ("foo:bar", "judge 'foo:bar': unknown judge 'foo'; write one of openai:MODEL"),
        ("openai:", "judge 'openai:': name the model, such as openai:gpt-4.1-mini"),
        ("openai", "judge 'openai': name the model"),
        ("openai:  ", "name the model"),
    ],
)
def test_a_judge_is_written_openai_colon_model(judge, message):
    with pytest.raises(ConfigurationError) as raised:
        Settings(pack=SHOP_PACK, judge=judge)
    assert message in str(raised.value)


@pytest.mark.parametrize("package", ["openai", "tenacity", "jinja2"])
def test_a_judge_without_the_openai_extra_names_the_pip_extra(db, monkeypatch, package):
    # None in sys.modules makes `import package` fail, as if it were not installed.
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ConfigurationError) as raised:
        build_guard(Settings(pack=SHOP_PACK, db=db, judge="openai:gpt-test"))
    assert str(raised.value) == (
        f"judge 'openai:gpt-test' needs the {package} package: pip install 'discretion[openai]'"
    )


def test_a_context_file_and_a_factory_are_one_too_many(tmp_path):
    with pytest.raises(ConfigurationError, match=r"give a context file .* or a context factory"):
        Settings(pack=SHOP_PACK, context=tmp_path / "f.json", context_factory="a:b")


def test_now_must_be_aware_and_concurrency_positive():
    with pytest.raises(ConfigurationError, match="needs a UTC offset"):
        Settings(pack=SHOP_PACK, now=datetime(2026, 11, 26, 12, 0))  # noqa: DTZ001
    with pytest.raises(ConfigurationError, match="concurrency must be at least 1"):
        Settings(pack=SHOP_PACK, concurrency=0)


def test_a_missing_facts_file_is_a_configuration_error(db, tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read context facts"):
        build_guard(Settings(pack=SHOP_PACK, db=db, context=tmp_path / "nowhere.json"))


# the environment: how `serve --workers N` hands the settings to each worker


def test_settings_survive_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        pack=Path("pack"),
        db="postgresql://app@db/discretion",
        context_factory="acme.crm:facts",
        judge="openai:ft:gpt-4o:acme:1",  # a fine-tuned model's name has colons of its own
        now=NOW,
        shadow=Path("candidate"),
        create_schema=False,
        secure_cookies=True,
        concurrency=7,
        open_metrics=True,
    )
    environment = settings.to_environment()
    assert set(environment) == set(ENVIRONMENT.values())
    assert Settings.from_environment(environment) == replace(
        settings, pack=tmp_path / "pack", shadow=tmp_path / "candidate"
    )
    plain = Settings(pack=tmp_path / "pack", context=tmp_path / "f.json")
    assert Settings.from_environment(plain.to_environment()) == plain


def test_every_variable_is_written_so_none_is_left_over_from_before():
    environment = Settings(pack=SHOP_PACK).to_environment()
    assert environment[ENVIRONMENT["judge"]] == ""
    stale = {**environment, ENVIRONMENT["judge"]: ""}
    assert Settings.from_environment(stale).judge is None


def test_from_environment_reads_os_environ(monkeypatch):
    for name, value in Settings(pack=SHOP_PACK, judge="openai:m").to_environment().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_environment().judge == "openai:m"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("pack", "", "DISCRETION_PACK is not set: name the policy pack there"),
        ("create_schema", "yes", "DISCRETION_CREATE_SCHEMA='yes': write 1 or 0"),
        ("concurrency", "many", "DISCRETION_CONCURRENCY='many' is not a whole number"),
        ("now", "tuesday", "DISCRETION_NOW='tuesday' is not an ISO 8601 time"),
        ("judge", "foo:bar", "unknown judge 'foo'"),
    ],
)
def test_an_unreadable_environment_names_the_variable(name, value, message):
    environment = {**Settings(pack=SHOP_PACK).to_environment(), ENVIRONMENT[name]: value}
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environment(environment)
    assert message in str(raised.value)
