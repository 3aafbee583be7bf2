"""The database: one ``Database`` (engine, sessions, transactions, migrations) shared by every
store, and the one declarative ``Base`` every table is mapped on.

SQLite by default (WAL, ``synchronous=NORMAL``, foreign keys on, a 30 s busy timeout),
PostgreSQL by URL (``postgresql+psycopg://...``).

The schema is versioned with Alembic; the migrations ship inside the package
(``incidents/migrations/versions``). ``Database.upgrade()`` brings a database to the newest
revision; the service calls it at start (``gridworker db upgrade`` does it by hand). A
database written before migrations existed (tables from ``create_all``, no
``alembic_version``) is adopted: the tables of the first revision that it lacks are created,
it is stamped at the revision its tables match, and then upgraded. One upgrade at a time
per database: PostgreSQL takes an advisory lock, SQLite the database's write lock
(``BEGIN IMMEDIATE``), for the whole upgrade, which commits or rolls back as one.

Rows become the domain's frozen dataclasses through ``to_domain``: the fields they share
are copied by name, so a field list is never written out twice.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import JSON, ForeignKey, MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, CursorResult, Engine, Result, make_url
from sqlalchemy.orm import DeclarativeBase, MappedColumn, QueryableAttribute, Session, mapped_column, sessionmaker
from sqlalchemy.sql import ColumnElement

if TYPE_CHECKING:  # pragma: no cover
    from _typeshed import DataclassInstance
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic says at INFO what it sets up on every run; the upgrades done are logged here instead
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# the revision whose schema is what the code before migrations created (create_all)
INITIAL_REVISION = "0001"
# an arbitrary constant naming gridworker's migration lock among PostgreSQL advisory locks
_PG_MIGRATION_LOCK = 0x67770B0D
_SQLITE_BUSY_TIMEOUT_S = 30


class SchemaTooNew(RuntimeError):
    """The database's schema is at a revision this gridworker does not ship (a newer
    gridworker upgraded it)."""


class Base(DeclarativeBase):
    """The declarative base of every gridworker table (one ``MetaData``)."""


def schema() -> MetaData:
    """The metadata of every table, all modules that map one imported (what migrations are
    compared with)."""
    from gridworker import keystore  # noqa: F401 - they map their tables on Base
    from gridworker.cases import workorders  # noqa: F401
    from gridworker.cases import idempotency, people  # noqa: F401 - people, idempotency keys (issue 15)
    from gridworker.cases import photos  # noqa: F401 - case photos (issue 15)
    from gridworker.delivery import outbox  # noqa: F401
    from gridworker.cluster import applied  # noqa: F401 - observations applied from workers (issue 12)

    from . import flows, store  # noqa: F401
    from . import reports  # noqa: F401 - reports from people (issue 15)

    return Base.metadata


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        _switch_to_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def _switch_to_wal(cur: sqlite3.Cursor) -> None:
    """Put the file in WAL mode (persistent: later connections find it set and only read it).
    The switch needs the file to itself, and SQLite reports "database is locked" at once
    rather than waiting its busy timeout when another connection (a concurrent start) holds
    it, so the switch is retried within that timeout."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() in ("wal", "memory"):
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with gridworker's settings (see the module docstring)."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


class Database:
    """One database: its engine (one connection pool), sessions, transactions and schema
    upgrades. Every store of a process is handed the same ``Database``.

    ``Database(url)`` connects lazily and leaves the schema alone; ``Database.open(url)``
    also upgrades it to the newest revision (what a store built from a URL does).

    Example:
        >>> db = Database.open("sqlite:///:memory:")
        >>> with db.transaction() as s:
        ...     s.execute(text("select count(*) from incidents")).scalar()
        0
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Database:
        """The database at ``url``, upgraded to the newest schema."""
        db = cls(url)
        try:
            db.upgrade()
        except BaseException:
            db.close()
            raise
        return db

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self.engine.dialect.name)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One session in one transaction: commits on success, rolls back on an exception."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # -- the schema ---------------------------------------------------------------------
    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (default: the newest), adopting a database from
        before migrations first. Safe to call on every start: at the newest revision it
        only reads the version."""
        from alembic import command
        from alembic.runtime.migration import MigrationContext

        with self._migration_connection() as conn:
            cfg = alembic_config(conn)
            _adopt_legacy(conn, cfg)
            before = MigrationContext.configure(conn).get_current_revision()
            _require_known(before, cfg)
            command.upgrade(cfg, revision)
            after = MigrationContext.configure(conn).get_current_revision()
        if after != before:
            log.info("database schema upgraded from revision %s to %s", before or "(none)", after)

    def revision(self) -> str | None:
        """The schema's current revision; None for a database never upgraded."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def _migration_connection(self) -> Iterator[Connection]:
        """A connection in one transaction that holds the database's migration lock."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                # pysqlite begins transactions only before DML; take the write lock now so the
                # DDL, the version row and a concurrent upgrader's check are serialised
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()


class CommitSignal:
    """Tells listeners in this process that a transaction which wrote rows of some kind has
    committed: the writer ``arm``s it in the transaction's session; after the commit each
    listener is called once (in the committing thread; a rollback calls nobody). The outbox
    wakes its delivery workers and event streams with it, the work orders the console's feed.

    A listener must be quick and must not raise; one that does is logged and the others still
    run (the commit is done by then and cannot be undone).

    Example:
        >>> signal, seen = CommitSignal("demo"), []
        >>> signal.listen(lambda: seen.append(1))
        >>> db = Database("sqlite:///:memory:")
        >>> with db.transaction() as s:
        ...     signal.arm(s)
        ...     signal.arm(s)  # once per transaction, however many rows it wrote
        >>> seen
        [1]
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._key = f"gw_commit_signal_{id(self)}"
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def listen(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def fire(self) -> None:
        """Call every listener now."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:  # the commit is done: one listener must not cost the others
                log.exception("%s: a commit listener failed", self.name)

    def arm(self, session: Session) -> None:
        """Fire after ``session``'s transaction commits (once, however often it is armed)."""
        if session.info.get(self._key):
            return
        session.info[self._key] = True

        def committed(sess: Session) -> None:
            sess.info.pop(self._key, None)
            self.fire()

        def rolled_back(sess: Session, _previous: object) -> None:
            sess.info.pop(self._key, None)  # (sessions live one transaction: ``committed`` never runs)

        event.listen(session, "after_commit", committed, once=True)
        event.listen(session, "after_soft_rollback", rolled_back, once=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the shipped migrations; ``connection`` (if given) is
    the one ``env.py`` migrates."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _require_known(current: str | None, cfg: Config) -> None:
    from alembic.script import ScriptDirectory

    if current is None:
        return
    known = {script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()}
    if current not in known:
        raise SchemaTooNew(
            f"the database's schema is at revision {current}, which this gridworker does not know (it knows up to"
            f" {head_revision()}): a newer gridworker upgraded it. Run that version, or restore the backup taken"
            " before the upgrade"
        )


def _adopt_legacy(conn: Connection, cfg: Config) -> None:
    """A database created by ``create_all`` (gridworker before migrations): create what it
    lacks of the first revision's tables, then stamp it at the revision its tables match."""
    from alembic import command
    from alembic.script import ScriptDirectory

    insp = inspect(conn)
    if insp.has_table("alembic_version"):
        return
    script = ScriptDirectory.from_config(cfg)
    initial = script.get_revision(INITIAL_REVISION)
    assert initial is not None
    legacy = MetaData()
    initial.module.build(legacy)
    present = set(insp.get_table_names())
    if not present & set(legacy.tables):
        return  # a new database: the migrations build it from nothing
    missing = sorted(set(legacy.tables) - present)
    legacy.create_all(conn, checkfirst=True)
    # then each later revision that only added tables, while the database has them (the
    # code before migrations created every table it knew of)
    matched = INITIAL_REVISION
    for rev in reversed(list(script.walk_revisions())):  # oldest first
        if rev.revision == INITIAL_REVISION:
            continue
        added = getattr(rev.module, "ADDED_TABLES", ())
        if not added or not set(added) <= present:
            break
        matched = rev.revision
    log.warning(
        "database from before schema migrations: %s, stamped at revision %s",
        f"created its missing tables {', '.join(missing)}" if missing else "all its tables present",
        matched,
    )
    command.stamp(cfg, matched)


# -- rows → domain values ------------------------------------------------------------------
_T = TypeVar("_T", bound="DataclassInstance")


@functools.cache
def _shared(cls: type[DataclassInstance], row_cls: type[Base]) -> tuple[tuple[str, bool], ...]:
    """The (name, is JSON) of the dataclass fields ``row_cls`` maps a column of."""
    columns = {attr.key: attr.columns[0] for attr in inspect(row_cls).column_attrs}
    return tuple(
        (f.name, isinstance(columns[f.name].type, JSON)) for f in dataclasses.fields(cls) if f.name in columns
    )


def to_domain(cls: type[_T], row: Base, /, **given: Any) -> _T:
    """``cls`` (a dataclass) made from ``row``: each field with a column of the same name is
    copied (JSON objects as new dicts, an absent one as ``{}``); ``given`` supplies or
    overrides the rest.

    Example:
        >>> from gridworker.incidents.store import ClipRow, IncidentClip
        >>> to_domain(IncidentClip, ClipRow(incident_id=1, path="1.mp4", size_bytes=9,
        ...                                 duration_s=2.0, offset_s=1.0, created_at=5.0)).path
        '1.mp4'
    """
    values = {
        name: (dict(getattr(row, name) or {}) if is_json else getattr(row, name))
        for name, is_json in _shared(cls, type(row))
        if name not in given
    }
    return cls(**values, **given)


def affected_rows(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE run through ``Session.execute`` matched.

    SQLAlchemy types ``Session.execute`` as returning a plain ``Result``; for DML it is a
    ``CursorResult``, which carries ``rowcount``.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the CursorResult of an UPDATE or DELETE, got {type(result).__name__}")
    return int(result.rowcount or 0)


def equal_filters(*pairs: tuple[QueryableAttribute[Any], object]) -> list[ColumnElement[bool]]:
    """``column == value`` for each ``(column, value)`` whose value is not None: the optional
    equality filters of a list query, for ``select(...).where(*filters)``.

    Example:
        >>> from gridworker.incidents.store import IncidentRow
        >>> [str(f) for f in equal_filters((IncidentRow.camera_id, "gate"), (IncidentRow.type, None))]
        ['incidents.camera_id = :camera_id_1']
    """
    return [column == value for column, value in pairs if value is not None]


def part_of(parent_key: str) -> MappedColumn[int]:
    """The primary key of a row that is part of one parent row (``parent_key``, e.g.
    ``"incidents.id"``): one such row per parent at most, deleted with it.

    Example:
        >>> column = part_of("incidents.id").column  # in a row class: incident_id: Mapped[int] = part_of("incidents.id")
        >>> column.primary_key, [(fk.target_fullname, fk.ondelete) for fk in column.foreign_keys]
        (True, [('incidents.id', 'CASCADE')])
    """
    return mapped_column(ForeignKey(parent_key, ondelete="CASCADE"), primary_key=True)
