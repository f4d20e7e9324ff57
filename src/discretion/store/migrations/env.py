"""Alembic's environment for discretion: the package's own schema is the target.

`discretion db upgrade` runs this with an open connection in `config.attributes`; the
`alembic` command line can also run it with `sqlalchemy.url` set in its configuration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from discretion.store import _dialect
from discretion.store._schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the revisions on the connection given, or on one to `sqlalchemy.url`."""
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run `discretion db upgrade --db URL`")
    engine = _dialect.create(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("discretion migrations run online only: `discretion db upgrade --db URL`")
run_migrations_online()
