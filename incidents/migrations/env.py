"""Alembic's environment for gridworker's migrations.

``Database.upgrade`` (the service at start, ``gridworker db upgrade``) hands the connection
to migrate in ``config.attributes["connection"]``, already in a transaction that holds the
migration lock; the migrations run inside it. Without one (Alembic's own command line with
``sqlalchemy.url`` set), a connection is opened on that URL.
"""

from __future__ import annotations

from alembic import context

from gridworker.incidents.db import Database, schema

config = context.config
target_metadata = schema()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite alters a table by copying it: autogenerate writes batch operations
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url, or run `gridworker db upgrade --config ...`")
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            _run(conn)
    finally:
        db.close()
