"""work_orders: a covering index for the numbers (GET /stats/cases reads a period's cases from it alone)."""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"

# the columns as cases/workorders.py STATS_COLUMNS had them when this migration was written
COLUMNS = ["detected_at", "type", "unit", "site", "state", "assignee", "handled_at", "due_at", "overdue", "on_time"]


def upgrade() -> None:
    op.create_index("ix_work_orders_stats", "work_orders", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_work_orders_stats", table_name="work_orders")
