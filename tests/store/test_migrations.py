"""Alembic migrations: every revision, in order, reaches exactly the schema the code declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect, select, text
from typer.testing import CliRunner

from conftest import POSTGRES_URL, SHOP_PACK, FakeClock, good_facts, refund
from discretion import Guard, SqlStore, load_pack
from discretion.cli import app
from discretion.context import StaticContextProvider
from discretion.lineage import GENESIS, canonical_json, record_hash
from discretion.store import _dialect
from discretion.store._migrate import current_revision, head_revision, upgrade
from discretion.store._schema import ledger_head, metadata


def _wipe(url: str) -> None:
    engine = _dialect.create(url)
    try:
        with engine.begin() as connection:
            found = MetaData()
            found.reflect(connection)
            found.drop_all(connection)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, on SQLite and (when configured) on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need DISCRETION_TEST_POSTGRES_URL")
    _wipe(POSTGRES_URL)
    yield POSTGRES_URL
    _wipe(POSTGRES_URL)


def _differences(url: str) -> list[object]:
    engine = _dialect.create(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _execute(url: str, statement: str) -> None:
    engine = _dialect.create(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def _drop_actor_index(url: str) -> None:
    # As create_schema made it before 0009: no index of an actor's decisions by time.
    _execute(url, "DROP INDEX ix_decisions_actor")


def _indexes(url: str, table: str) -> set[str]:
    engine = _dialect.create(url)
    try:
        with engine.connect() as connection:
            return {index["name"] for index in inspect(connection).get_indexes(table)}
    finally:
        engine.dispose()


def test_upgrading_from_the_first_revision_reaches_the_declared_schema(empty_url):
    assert upgrade(empty_url, "0001") == (None, "0001")
    assert current_revision(empty_url) == "0001"
    missing = {d[1].name for d in _differences(empty_url) if d[0] == "add_table"}
    assert missing == {
        "executions",
        "precedents",
        "precedent_keysets",
        "approvals",
        "api_tokens",
        "ui_sessions",
        "judge_verdicts",
        "judge_calls",
        "ledger_checkpoints",
        "budget_locks",
        "webhook_cursors",
    }

    assert upgrade(empty_url) == ("0001", head_revision())
    assert _differences(empty_url) == []


def test_a_single_chain_ledger_becomes_partition_0_and_still_verifies(empty_url, clock):
    # A ledger written before partitions: one chain, one head row.
    upgrade(empty_url, "0002")
    previous = GENESIS
    engine = _dialect.create(empty_url)
    try:
        with engine.begin() as connection:
            for seq in (1, 2, 3):
                body = canonical_json({"n": seq})
                digest = record_hash(seq=seq, kind="note", body=body, prev_hash=previous)
                connection.execute(
                    text(
                        "INSERT INTO ledger (seq, kind, subject_id, body, prev_hash, hash,"
                        " recorded_us) VALUES (:seq, 'note', :subject, :body, :prev, :hash, 0)"
                    ),
                    {
                        "seq": seq,
                        "subject": f"s{seq}",
                        "body": body,
                        "prev": previous,
                        "hash": digest,
                    },
                )
                previous = digest
            connection.execute(
                text("UPDATE ledger_head SET seq = 3, hash = :hash WHERE id = 1"),
                {"hash": previous},
            )
    finally:
        engine.dispose()

    upgrade(empty_url)
    store = SqlStore(empty_url, create=False)
    try:
        assert store.verify() == 3
        assert [(r.seq, r.partition, r.chain_seq) for r in store.records()] == [
            (1, 0, 1),
            (2, 0, 2),
            (3, 0, 3),
        ]
        assert store.heads()[0] == (3, previous)
        guard = shop_guard(store, clock)
        decision = guard.decide(refund("40.00"))
        assert store.verify() == 4
        [record] = [r for r in store.records() if r.subject_id == decision.id]
        assert record.seq == 4  # The ledger's order continues after the copied records.
    finally:
        store.close()


def shop_guard(store: SqlStore, clock: FakeClock) -> Guard:
    """A guard on the shop pack with good facts, over a migrated store."""
    return Guard(
        load_pack(SHOP_PACK), store=store, context=StaticContextProvider(good_facts()), clock=clock
    )


def test_a_migrated_database_decides_and_verifies(empty_url, clock):
    upgrade(empty_url)
    store = SqlStore(empty_url, create=False)
    try:
        guard = shop_guard(store, clock)
        decision = guard.decide(refund("40.00"))
        assert decision.outcome.value == "allow"
        assert store.verify() == 1
    finally:
        store.close()


def test_upgrading_twice_changes_nothing_and_keeps_one_head_per_partition(empty_url):
    upgrade(empty_url)
    assert upgrade(empty_url) == (head_revision(), head_revision())
    engine = _dialect.create(empty_url)
    try:
        with engine.connect() as connection:
            heads = connection.execute(select(ledger_head)).all()
    finally:
        engine.dispose()
    assert [(h.partition, h.seq, h.hash) for h in heads] == [(p, 0, GENESIS) for p in range(16)]


def test_downgrading_to_the_first_revision_drops_only_the_later_tables(empty_url):
    from alembic import command

    from discretion.store._migrate import _config

    upgrade(empty_url)
    engine = _dialect.create(empty_url)
    try:
        with engine.connect() as connection:
            command.downgrade(_config(connection), "0001")
            connection.commit()
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert {"decisions", "reservations", "ledger", "ledger_head"} <= tables
    assert not tables & {"approvals", "precedents", "executions", "api_tokens"}
    assert current_revision(empty_url) == "0001"


def test_a_database_made_by_create_schema_is_adopted_at_the_head(empty_url, clock):
    store = SqlStore(empty_url)
    guard = Guard(
        load_pack(SHOP_PACK),
        store=store,
        context=StaticContextProvider(good_facts()),
        clock=clock,
    )
    guard.decide(refund("40.00"))
    store.close()
    assert current_revision(empty_url) is None

    assert upgrade(empty_url) == (None, head_revision())
    assert _differences(empty_url) == []
    again = SqlStore(empty_url, create=False)
    try:
        assert again.verify() == 1
    finally:
        again.close()


def test_db_upgrade_command_reports_the_revisions(empty_url):
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", empty_url])
    assert result.exit_code == 0, result.output
    assert f"none -> {head_revision()}" in result.output
    engine = _dialect.create(empty_url)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("select version_num from alembic_version")).scalar()
    finally:
        engine.dispose()
    assert version == head_revision()


def test_db_upgrade_of_an_unreachable_database_fails_with_the_url():
    result = CliRunner().invoke(
        app, ["db", "upgrade", "--db", "postgresql://nobody:secret@127.0.0.1:1/none"]
    )
    assert result.exit_code == 2
    assert "cannot migrate the schema at postgresql" in result.output
    assert "secret" not in result.output


def test_an_index_a_later_revision_dropped_goes_when_a_created_database_is_adopted(empty_url):
    # Made by create_schema before 0008: the reservations' index by decision is still there.
    SqlStore(empty_url).close()
    _execute(empty_url, "CREATE INDEX ix_reservations_decision ON reservations (decision_id)")
    assert _differences(empty_url) != []

    assert upgrade(empty_url) == (None, head_revision())
    assert _differences(empty_url) == []


def test_an_index_a_later_revision_added_is_made_when_a_created_database_is_adopted(empty_url):
    SqlStore(empty_url).close()
    _drop_actor_index(empty_url)
    assert _differences(empty_url) != []

    assert upgrade(empty_url) == (None, head_revision())
    assert "ix_decisions_actor" in _indexes(empty_url, "decisions")
    assert _differences(empty_url) == []


def test_an_index_a_later_version_declares_is_made_when_an_embedded_database_is_opened(
    empty_url,
):
    # SQLite users who never run `discretion db upgrade` open their file with create=True. On
    # PostgreSQL, building an index holds off a large table's writes: `db upgrade` makes it.
    SqlStore(empty_url).close()
    _drop_actor_index(empty_url)

    opened = SqlStore(empty_url)
    embedded = opened.embedded
    opened.close()
    assert ("ix_decisions_actor" in _indexes(empty_url, "decisions")) is embedded
    if not embedded:
        assert upgrade(empty_url) == (None, head_revision())
        assert "ix_decisions_actor" in _indexes(empty_url, "decisions")
    assert _differences(empty_url) == []


def test_upgrading_from_0008_adds_the_actors_index(empty_url):
    assert upgrade(empty_url, "0008") == (None, "0008")
    assert "ix_decisions_actor" not in _indexes(empty_url, "decisions")
    assert upgrade(empty_url) == ("0008", head_revision())
    assert "ix_decisions_actor" in _indexes(empty_url, "decisions")
    assert _differences(empty_url) == []


def test_reservations_keep_only_the_index_budget_sums_read(empty_url):
    upgrade(empty_url)
    assert _indexes(empty_url, "reservations") == {"ix_reservations_window"}
