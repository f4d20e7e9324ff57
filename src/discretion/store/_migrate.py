"""Schema migrations with Alembic, driven by the package's own revisions.

`SqlStore(create=True)` creates the current schema directly (tests, a first run on SQLite);
`upgrade` moves an existing database forward one revision at a time and records where it is
in Alembic's `alembic_version` table. A database made by `create_schema` has no version yet:
`upgrade` adopts it by creating any tables it lacks and stamping it at the head revision.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from discretion.errors import ConfigurationError, StoreError
from discretion.store import _dialect
from discretion.store._schema import PARTITIONS

__all__ = ["MIGRATIONS", "current_revision", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
"""The folder of Alembic's environment and revisions, shipped inside the package."""

_VERSION_TABLE = "alembic_version"

RETIRED_INDEXES = ("ix_reservations_decision",)
"""Indexes an older `create_schema` made that a later revision dropped."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of discretion ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise ConfigurationError(f"no migrations in {MIGRATIONS}")
    return head


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at; None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    engine = _dialect.create(url, must_exist=True)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the schema revision at {_safe(url)}: {exc}") from exc
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database at `url` to `revision`; return the revisions before and after.

    Raises:
        StoreError: the database cannot be reached or a revision failed; what ran of that
            revision is rolled back (PostgreSQL; SQLite commits DDL per batch).
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = _dialect.create(url)
    try:
        with engine.connect() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            tables = _dialect.catalog(connection, "table")
            connection.commit()
            if before is None and "ledger" in tables:
                # Made by create_schema: the current tables, missing only the version stamp,
                # perhaps with indexes its version made and later revisions dropped, or
                # without indexes they added.
                _dialect.create_missing(connection)
                _drop_retired(connection)
                _dialect.create_heads(connection, PARTITIONS)
                connection.commit()
                command.stamp(_config(connection), "head")
            else:
                # Each revision writes the head rows its ledger needs.
                command.upgrade(_config(connection), revision)
            connection.commit()
            after = MigrationContext.configure(connection).get_current_revision()
            connection.commit()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the schema at {_safe(url)}: {exc}") from exc
    finally:
        engine.dispose()
    return before, after


def _drop_retired(connection: Connection) -> None:
    present = _dialect.catalog(connection, "index")
    for index in RETIRED_INDEXES:
        if index in present:
            connection.execute(text(f"DROP INDEX {index}"))  # a name of ours, never input


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
