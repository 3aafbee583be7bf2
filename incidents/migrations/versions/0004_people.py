"""people: staff records, idempotency keys of work-order actions, and a work order's
assignee, grid area and position (issue 15, docs/people.md)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gridworker.incidents.migrations.columns import position_columns

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("area", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_people_unit", "people", ["unit"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    # nullable or defaulted, so existing work orders need no rewrite (SQLite adds them in place)
    op.add_column("work_orders", sa.Column("assignee", sa.Integer, nullable=True))
    op.add_column("work_orders", sa.Column("area", sa.String(64), nullable=False, server_default=""))
    for column in position_columns():
        op.add_column("work_orders", column)
    op.create_index("ix_work_orders_assignee", "work_orders", ["assignee"])
    op.create_index("ix_work_orders_area", "work_orders", ["area"])


def downgrade() -> None:
    op.drop_index("ix_work_orders_area", "work_orders")
    op.drop_index("ix_work_orders_assignee", "work_orders")
    with op.batch_alter_table("work_orders") as batch:
        for column in ("lat", "lon", "area", "assignee"):
            batch.drop_column(column)
    op.drop_table("idempotency_keys")
    op.drop_table("people")
