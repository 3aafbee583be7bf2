"""The schema as gridworker created it before migrations (``create_all``, up to issue 10).

Revision ID: 0001
Revises:
Create Date: 2026-12-01

``build`` declares the tables as they were; ``upgrade`` creates those missing (all of them
on a new database). ``Database.upgrade`` also calls ``build`` to adopt a database from
before migrations: what it lacks of these tables is created, then it is stamped. Frozen:
never edit it to follow a model; add a revision instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from gridworker.incidents.migrations.columns import saved_config_columns

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def build(metadata: sa.MetaData) -> None:
    """Declare the revision's tables on ``metadata``."""

    def col(
        name: str,
        type_: sa.types.TypeEngine[Any] | type[sa.types.TypeEngine[Any]],
        *args: sa.schema.SchemaItem,
        nullable: bool = False,
        index: bool | None = None,
        unique: bool | None = None,
        primary_key: bool = False,
    ) -> sa.Column[Any]:
        return sa.Column(name, type_, *args, nullable=nullable, index=index, unique=unique, primary_key=primary_key)

    def pk_id() -> sa.Column[Any]:
        return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)

    def incident_fk(target: str = "incidents.id") -> sa.Column[Any]:
        return sa.Column("incident_id", sa.Integer, sa.ForeignKey(target, ondelete="CASCADE"), primary_key=True)

    sa.Table(
        "incidents",
        metadata,
        pk_id(),
        col("camera_id", sa.String(64), index=True),
        col("camera_name", sa.String(200)),
        col("site", sa.String(200)),
        col("zone_id", sa.String(64)),
        col("rule_id", sa.String(64)),
        col("type", sa.String(64), index=True),
        col("status", sa.String(16), index=True),
        col("opened_at", sa.Float, index=True),
        col("updated_at", sa.Float),
        col("closed_at", sa.Float, nullable=True),
        col("peak_count", sa.Integer),
        col("observations", sa.Integer),
        col("summary", sa.Text),
        col("details", sa.JSON),
    )
    sa.Table("incident_snapshots", metadata, incident_fk(), col("jpeg", sa.LargeBinary), col("taken_at", sa.Float))
    sa.Table(
        "incident_clips",
        metadata,
        incident_fk(),
        col("path", sa.Text),
        col("size_bytes", sa.Integer),
        col("duration_s", sa.Float),
        col("offset_s", sa.Float),
        col("created_at", sa.Float),
    )
    for name in ("cameras", "patrol_plans"):
        sa.Table(name, metadata, *saved_config_columns())
    sa.Table(
        "work_orders",
        metadata,
        incident_fk(),
        col("type", sa.String(64), index=True),
        col("site", sa.String(200), index=True),
        col("camera_id", sa.String(64)),
        col("state", sa.String(16), index=True),
        col("grade", sa.Integer),
        col("unit", sa.String(64), index=True),
        col("first_unit", sa.String(64)),
        col("responsible_unit", sa.String(64)),
        col("floor_rank", sa.Integer),
        col("escalations", sa.Integer),
        col("detected_at", sa.Float, index=True),
        col("clock_start", sa.Float),
        col("due_at", sa.Float, index=True),
        *(col(name, sa.Float, nullable=True) for name in ("dispatched_at", "accepted_at", "handled_at", "closed_at", "cleared_at")),
        col("overdue", sa.Boolean),
        col("top_overdue_noted", sa.Boolean),
        col("on_time", sa.Boolean, nullable=True),
        col("note", sa.Text),
        col("version", sa.Integer),
        col("updated_at", sa.Float),
    )
    sa.Table(
        "work_order_photos",
        metadata,
        incident_fk("work_orders.incident_id"),
        col("jpeg", sa.LargeBinary),
        col("taken_at", sa.Float),
    )
    sa.Table(
        "incident_audit",
        metadata,
        pk_id(),
        col("incident_id", sa.Integer, sa.ForeignKey("work_orders.incident_id", ondelete="CASCADE"), index=True),
        col("version", sa.Integer),
        col("at", sa.Float),
        col("actor", sa.String(200)),
        col("role", sa.String(32)),
        col("action", sa.String(32)),
        col("from_state", sa.String(16), nullable=True),
        col("to_state", sa.String(16)),
        col("from_unit", sa.String(64), nullable=True),
        col("to_unit", sa.String(64), nullable=True),
        col("reason", sa.Text),
        col("details", sa.JSON),
    )
    sa.Table(
        "api_keys",
        metadata,
        pk_id(),
        col("key_id", sa.String(32), unique=True),
        col("name", sa.String(200)),
        col("role", sa.String(32)),
        col("unit", sa.String(64), nullable=True),
        col("salt", sa.LargeBinary),
        col("digest", sa.LargeBinary),
        col("created_at", sa.Float),
        col("last_used_at", sa.Float, nullable=True),
        col("revoked_at", sa.Float, nullable=True),
    )
    sa.Table(
        "outbox",
        metadata,
        pk_id(),
        col("event", sa.String(64)),
        col("incident_id", sa.Integer, index=True),
        col("version", sa.Integer),
        col("idempotency_key", sa.String(64), unique=True),
        col("type", sa.String(64)),
        col("site", sa.String(200)),
        col("camera_id", sa.String(64)),
        col("unit", sa.String(64)),
        col("from_unit", sa.String(64)),
        col("payload", sa.JSON),
        col("created_at", sa.Float, index=True),
    )
    sa.Table(
        "deliveries",
        metadata,
        pk_id(),
        col("outbox_id", sa.Integer, index=True),
        col("destination", sa.String(64)),
        col("incident_id", sa.Integer),
        col("state", sa.String(16)),
        col("attempts", sa.Integer),
        col("next_attempt_at", sa.Float),
        col("last_error", sa.Text),
        col("last_attempt_at", sa.Float, nullable=True),
        col("delivered_at", sa.Float, nullable=True),
        col("dead_at", sa.Float, nullable=True),
        col("replays", sa.Integer),
        col("created_at", sa.Float),
        sa.UniqueConstraint("outbox_id", "destination", name="uq_delivery"),
        sa.Index("ix_delivery_due", "destination", "state", "next_attempt_at"),
        sa.Index("ix_delivery_incident", "destination", "incident_id", "state"),
    )
    sa.Table(
        "line_flows",
        metadata,
        col("camera_id", sa.String(64), primary_key=True),
        col("line_id", sa.String(64), primary_key=True),
        col("class_name", sa.String(64), primary_key=True),
        col("direction", sa.String(3), primary_key=True),
        col("minute", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        col("count", sa.Integer),
        sa.Index("ix_line_flows_minute", "minute"),
    )


def upgrade() -> None:
    metadata = sa.MetaData()
    build(metadata)
    metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    metadata = sa.MetaData()
    build(metadata)
    metadata.drop_all(op.get_bind(), checkfirst=True)
