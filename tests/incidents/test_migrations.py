"""Schema migrations (Alembic), on SQLite and PostgreSQL.

A database written by gridworker before migrations (tables from ``create_all``; the DDL
those versions emitted is kept in ``legacy_schema/``: SQLite's, one file per commit with what it
added, and the type rewrites that give PostgreSQL's, see ``make.py`` and ``schema.py``) opens with
the new code: it is stamped at the revision its tables match, upgraded, and its rows are intact.
The migrations build exactly what the models map (an autogenerate comparison, as
``alembic check`` does, finds nothing: a model changed without a migration fails here), the
first migration is the schema from before issue 10, and concurrent upgrades are serialised.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gridworker.cli import main
from gridworker.incidents import IncidentQuery, IncidentStore
from gridworker.incidents.db import INITIAL_REVISION, Database, SchemaTooNew, head_revision, schema
from gridworker.incidents.flows import FlowQuery, FlowStore
from gridworker.delivery.outbox import Outbox
from gridworker.cases.workorders import WorkOrders
from gridworker.keystore import KeyStore
from tests.factories import ParkedCarDetector, pg_database
from tests.incidents.legacy_schema.schema import statements as legacy_statements

BEFORE_ISSUE_10 = "eb80b14"  # main just before issue 10: the first migration's schema
BEFORE_MIGRATIONS = "b35b53b"  # main with issue 10 (incident_clips_missing), before migrations
T0 = 1_714_521_600.0  # 2024-05-01 00:00 UTC


def _url(request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / (name + '.db')}"
    return pg_database(f"gw_{name}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    return _url(request, tmp_path, "migrations")


@pytest.fixture
def other_url(request, tmp_path, url):
    """A second empty database on the same server as ``url``."""
    return f"sqlite:///{tmp_path / 'other.db'}" if url.startswith("sqlite") else pg_database("gw_migrations_other")


def _build_legacy(url: str, commit: str) -> None:
    """The tables gridworker at ``commit`` created, from the DDL it emitted."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in legacy_statements(commit, engine.dialect.name):
            conn.exec_driver_sql(statement)
    engine.dispose()


def _write_old_rows(url: str) -> dict[str, int]:
    """Rows as the old code stored them (through the tables as the database has them)."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as conn:

        def add(table: str, /, **values: object) -> int:
            result = conn.execute(t[table].insert().values(**values))
            key = result.inserted_primary_key
            return int(key[0]) if key and isinstance(key[0], int) else 0

        incident = dict(camera_name="Gate", site="north", zone_id="z1", rule_id="r1", peak_count=2, observations=3, summary="")
        parked = add("incidents", camera_id="cam-1", type="illegal_parking", status="open", opened_at=T0, updated_at=T0 + 5,
                     closed_at=None, details={"plate": "沪A12345"}, **incident)
        crowd = add("incidents", camera_id="cam-2", type="crowd", status="closed", opened_at=T0 + 10, updated_at=T0 + 20,
                    closed_at=T0 + 30, details={}, **incident)
        add("incident_snapshots", incident_id=parked, jpeg=b"\xff\xd8old-jpeg", taken_at=T0)
        add("incident_clips", incident_id=crowd, path="/clips/2.mp4", size_bytes=1234, duration_s=10.0, offset_s=5.0,
            created_at=T0 + 40)
        add("cameras", id="cam-api", config='{"id": "cam-api"}', created_at=T0)
        add("patrol_plans", id="night", config='{"id": "night"}', created_at=T0)
        add("work_orders", incident_id=parked, type="illegal_parking", site="north", camera_id="cam-1", state="detected",
            grade=2, unit="traffic-squad", first_unit="traffic-squad", responsible_unit="traffic-squad", floor_rank=0,
            escalations=0, detected_at=T0, clock_start=T0, due_at=T0 + 1800, dispatched_at=None, accepted_at=None,
            handled_at=None, closed_at=None, cleared_at=None, overdue=False, top_overdue_noted=False, on_time=None, note="",
            version=1, updated_at=T0)
        add("incident_audit", incident_id=parked, version=1, at=T0, actor="system:detector", role="system", action="detect",
            from_state=None, to_state="detected", from_unit=None, to_unit="traffic-squad", reason="parked", details={"grade": 2})
        add("api_keys", key_id="abcdef123456", name="ops lead", role="admin", unit=None, salt=b"salt", digest=b"digest",
            created_at=T0, last_used_at=None, revoked_at=None)
        outbox = add("outbox", event="workorder.detect", incident_id=parked, version=1, idempotency_key=f"{parked}:1",
                     type="illegal_parking", site="north", camera_id="cam-1", unit="traffic-squad", from_unit="",
                     payload={"event": "workorder.detect"}, created_at=T0)
        add("deliveries", outbox_id=outbox, destination="hook", incident_id=parked, state="pending", attempts=0,
            next_attempt_at=0.0, last_error="", last_attempt_at=None, delivered_at=None, dead_at=None, replays=0, created_at=T0)
        add("line_flows", camera_id="cam-1", line_id="gate", class_name="person", direction="in", minute=int(T0), count=7)
        if "incident_clips_missing" in t:
            add("incident_clips_missing", incident_id=parked, reason="clip disk full", at=T0 + 1)
    engine.dispose()
    return {"parked": parked, "crowd": crowd}


def _differences(db: Database) -> list[object]:
    """What autogenerate would write for the models against ``db`` (``alembic check``)."""
    with db.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema()))


@pytest.mark.parametrize("commit", [BEFORE_ISSUE_10, BEFORE_MIGRATIONS])
def test_a_database_from_before_migrations_is_upgraded_with_its_rows(url, commit):
    _build_legacy(url, commit)
    ids = _write_old_rows(url)
    db = Database.open(url)
    try:
        assert db.revision() == head_revision()
        assert "incident_clips_missing" in sa.inspect(db.engine).get_table_names()
        assert _differences(db) == []

        store = IncidentStore(db)
        parked = store.get(ids["parked"])
        assert parked is not None and (parked.camera_id, parked.status, parked.type) == ("cam-1", "open", "illegal_parking")
        assert parked.details == {"plate": "沪A12345"} and parked.has_snapshot and parked.observations == 3
        assert store.snapshot(ids["parked"]) == b"\xff\xd8old-jpeg"
        crowd = store.get(ids["crowd"])
        assert crowd is not None and crowd.has_clip and crowd.closed_at == T0 + 30
        assert store.clip(ids["crowd"]).path == "/clips/2.mp4"
        assert store.list(IncidentQuery())[1] == 2
        assert [c for c, _ in store.cameras.all()] == ["cam-api"] and [p for p, _ in store.patrol_plans.all()] == ["night"]
        # the clip-reason row of a database that had the table survives; one that had not gets the table
        if commit == BEFORE_MIGRATIONS:
            assert parked.clip_missing == "clip disk full"
        else:
            assert parked.clip_missing is None
            assert store.clip_missing(ids["parked"], "not saved", at=T0 + 2)
            assert store.get(ids["parked"]).clip_missing == "not saved"

        orders = WorkOrders(db)
        order = orders.get(ids["parked"])
        assert order is not None and (order.state, order.unit, order.due_at) == ("detected", "traffic-squad", T0 + 1800)
        assert [(a.action, a.details) for a in orders.audit(ids["parked"])] == [("detect", {"grade": 2})]
        assert [k.name for k in KeyStore(db).keys()] == ["ops lead"]
        outbox = Outbox(db)
        assert [e.idempotency_key for e in outbox.events_after(0)] == [f"{ids['parked']}:1"]
        assert outbox.deliveries()[1] == 1
        flows = FlowStore(db).totals(FlowQuery(since=T0, until=T0 + 60, bucket="minute"))
        assert [b.in_count for b in flows] == [7]

        # the database keeps working: new rows take new ids (PostgreSQL's sequences carried over)
        new = store.open(camera_id="cam-3", camera_name="", site="", zone_id="z", rule_id="r", type="crowd", at=T0 + 50,
                         count=1, summary="", details={}, snapshot=None)
        assert new.id not in ids.values()
        assert orders.on_incident_opened(new) is not None
    finally:
        db.close()
    # and the next start has nothing to do
    again = Database.open(url)
    assert again.revision() == head_revision() and IncidentStore(again).list(IncidentQuery())[1] == 3
    again.close()


def test_a_database_missing_tables_from_before_migrations_gets_them(url):
    """Databases from further back lack tables that create_all added later: they are created."""
    _build_legacy(url, BEFORE_ISSUE_10)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE deliveries")
        conn.exec_driver_sql("DROP TABLE outbox")
        conn.exec_driver_sql("DROP TABLE line_flows")
    engine.dispose()
    db = Database.open(url)
    try:
        assert db.revision() == head_revision()
        assert {"outbox", "deliveries", "line_flows", "incident_clips_missing"} <= set(sa.inspect(db.engine).get_table_names())
        assert _differences(db) == []
    finally:
        db.close()


def test_the_migrations_build_what_the_models_map(url):
    db = Database.open(url)
    try:
        assert db.revision() == head_revision()
        assert _differences(db) == []
        # the check can fail: a column the models have and the database lacks is reported
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE cameras RENAME TO cameras_gone")
        assert any("cameras" in repr(d) for d in _differences(db))
    finally:
        db.close()


def test_the_first_migration_is_the_schema_from_before_issue_10(url, other_url):
    """Revision 0001 builds exactly what create_all built on main before issue 10."""
    _build_legacy(url, BEFORE_ISSUE_10)
    old = sa.MetaData()
    engine = sa.create_engine(url)
    old.reflect(engine)
    engine.dispose()
    assert "incident_clips_missing" not in old.tables and len(old.tables) == 12
    db = Database(other_url)
    try:
        db.upgrade(INITIAL_REVISION)
        assert db.revision() == INITIAL_REVISION
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), old) == []
    finally:
        db.close()


def test_0009_adds_the_login_sessions_table_and_goes_back(url):
    """Revision 0009 (people's login sessions, api/sessions.py) on a database at 0008 with a
    person: the table with its key and indexes, sessions that work, the person intact; down again."""
    from alembic import command

    from gridworker.api.sessions import Sessions
    from gridworker.incidents.db import alembic_config

    db = Database(url)
    try:
        db.upgrade("0008")
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO people (username, name, unit, area, phone, role, password_hash, disabled, created_at, updated_at)"
                " VALUES ('li.wei', 'Li Wei', '', '', '', 'operator', NULL, false, :t, :t)"
            ), {"t": T0})
        assert "login_sessions" not in sa.inspect(db.engine).get_table_names()
        db.upgrade()
        assert db.revision() == head_revision()
        insp = sa.inspect(db.engine)
        assert [c["name"] for c in insp.get_columns("login_sessions")] == ["digest", "person_id", "created_at", "last_seen"]
        assert insp.get_pk_constraint("login_sessions")["constrained_columns"] == ["digest"]
        assert {i["name"]: i["column_names"] for i in insp.get_indexes("login_sessions")} == {
            "ix_login_sessions_person_id": ["person_id"], "ix_login_sessions_last_seen": ["last_seen"],
        }
        assert _differences(db) == []
        with db.engine.connect() as conn:
            person = conn.execute(sa.text("SELECT id, username FROM people")).one()
        assert person[1] == "li.wei"
        token, info = Sessions(db).create(person[0])
        assert Sessions(db).get(token).csrf == info.csrf  # another instance on the database accepts it
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0008")
        assert db.revision() == "0008" and "login_sessions" not in sa.inspect(db.engine).get_table_names()
        db.upgrade()
        assert db.revision() == head_revision() and _differences(db) == []
    finally:
        db.close()


def test_concurrent_upgrades_are_serialised(url):
    """Processes starting together (a service and `gridworker keys create`) upgrade one at a time."""
    dbs = [Database(url) for _ in range(4)]
    barrier = threading.Barrier(len(dbs))
    errors: list[BaseException] = []

    def upgrade(db: Database) -> None:
        barrier.wait()
        try:
            db.upgrade()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(db,)) for db in dbs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    try:
        assert errors == []
        with dbs[0].engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
        assert _differences(dbs[0]) == []
    finally:
        for db in dbs:
            db.close()


def test_the_service_upgrades_its_database_at_start(tmp_path):
    from gridworker.service import Service
    from gridworker.settings import Settings

    url = f"sqlite:///{tmp_path / 'svc.db'}"
    _build_legacy(url, BEFORE_ISSUE_10)
    ids = _write_old_rows(url)
    service = Service(Settings(database={"url": url}), ParkedCarDetector())
    service.start()
    try:
        assert service.db.revision() == head_revision()
        assert service.store.get(ids["parked"]).camera_id == "cam-1"
        assert service.workorders.get(ids["parked"]).state == "detected"
    finally:
        service.stop()
        service.db.close()


def test_db_command_shows_and_upgrades(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _build_legacy(url, BEFORE_MIGRATIONS)
    assert main(["db", "current", "--database", url]) == 0
    assert "revision none" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database", url]) == 0
    assert f"at revision {head_revision()}" in capsys.readouterr().out
    assert main(["db", "current", "--database", url]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "current"]) == 2
    assert "give --config or --database" in capsys.readouterr().err


def test_a_schema_newer_than_the_code_is_refused_with_a_reason(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Database.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    db = Database(url)
    with pytest.raises(SchemaTooNew, match="revision 0999, which this gridworker does not know"):
        db.upgrade()
    db.close()
