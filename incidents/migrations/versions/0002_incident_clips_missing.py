"""incident_clips_missing: why an incident has no evidence clip (issue 10).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# a database from before migrations that has these tables is stamped at this revision
ADDED_TABLES = ("incident_clips_missing",)


def upgrade() -> None:
    op.create_table(
        "incident_clips_missing",
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("incident_clips_missing")
