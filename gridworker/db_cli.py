"""``gridworker db``: the database's schema revision, and its upgrade.

The service upgrades its database at every start; this does it by hand (before a
deployment, say, or to see where a database stands). A database from before migrations
is adopted (stamped at the revision its tables match) and upgraded.

``gridworker db revision`` is for developers: after a model change it writes the next
migration (Alembic's autogenerate against a scratch database at the newest revision) into
``incidents/migrations/versions`` of a source checkout; read it before committing it.

Example:
    gridworker db upgrade --config site.yaml
    gridworker db current --database sqlite:///var/gridworker.db
    gridworker db revision -m "work orders: add priority"
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _url(args: argparse.Namespace) -> str | None:
    """The database URL from ``--database`` or the config's; None after saying why not."""
    if args.database:
        return str(args.database)
    if not args.config:
        print("gridworker db: give --config or --database", file=sys.stderr)
        return None
    from .settings import ConfigError, load_settings

    try:
        return load_settings(args.config).database.url
    except ConfigError as exc:
        print(f"gridworker: {exc}", file=sys.stderr)
        return None


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "the database"


def _run(args: argparse.Namespace, upgrade: bool) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from gridworker.incidents.db import Database, head_revision

    url = _url(args)
    if url is None:
        return 2
    try:
        db = Database(url)
    except (SQLAlchemyError, ValueError) as exc:
        print(f"gridworker db: {_shown(url)}: {exc}", file=sys.stderr)
        return 2
    try:
        before = db.revision()
        if upgrade:
            db.upgrade()
            after = db.revision()
            change = "already at it" if after == before else f"was {before or 'none: a new database, or one from before migrations'}"
            print(f"{_shown(url)}: at revision {after} ({change})")
        else:
            head = head_revision()
            state = "up to date" if before == head else f"newest is {head}: run `gridworker db upgrade`"
            print(f"{_shown(url)}: revision {before or 'none'} ({state})")
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        print(f"gridworker db: {_shown(url)}: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


def _cmd_upgrade(args: argparse.Namespace) -> int:
    return _run(args, upgrade=True)


def _cmd_current(args: argparse.Namespace) -> int:
    return _run(args, upgrade=False)


def _cmd_revision(args: argparse.Namespace) -> int:
    import tempfile

    from alembic import command

    from gridworker.incidents.db import Database, alembic_config, head_revision

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(args.database or f"sqlite:///{tmp}/scratch.db")
        try:
            db.upgrade()
            with db.engine.connect() as conn:
                rev_id = f"{int(head_revision()) + 1:04d}"
                script = command.revision(alembic_config(conn), message=args.message, autogenerate=True, rev_id=rev_id)
        finally:
            db.close()
    scripts = script if isinstance(script, list) else [script]
    for s in scripts:
        if s is not None:
            print(f"wrote {s.path}: read it, then run the tests (tests/incidents/test_migrations.py)")
    return 0


def register(sub: Any) -> None:
    """Add ``db`` to the ``gridworker`` command's sub-parsers."""
    db = sub.add_parser("db", help="the database's schema: upgrade it, or show its revision")
    dsub = db.add_subparsers(dest="db_command", required=True)
    for name, func, text in (
        ("upgrade", _cmd_upgrade, "upgrade the schema to the newest revision (the service also does it at start)"),
        ("current", _cmd_current, "show the schema's revision and whether it is the newest"),
    ):
        p = dsub.add_parser(name, help=text)
        p.add_argument("--config", "-c", help="the service's YAML config (its database)")
        p.add_argument("--database", help="database URL (instead of, or over, the config's)")
        p.set_defaults(func=func)
    p = dsub.add_parser("revision", help="developers: write the next migration from the models (autogenerate)")
    p.add_argument("-m", "--message", required=True, help="what the migration changes")
    p.add_argument("--database", help="an empty scratch database to compare on (default: a temporary SQLite file)")
    p.set_defaults(func=_cmd_revision)
