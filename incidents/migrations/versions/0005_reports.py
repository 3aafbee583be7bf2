"""reports: reports from residents and the 12345 platform, and the photos of cases (issue 15)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gridworker.incidents.migrations.columns import position_columns

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("receipt_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        *position_columns(),
        sa.Column("contact_name", sa.String(100), nullable=False),
        sa.Column("contact_phone", sa.String(40), nullable=False),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_reports_channel", "reports", ["channel"])
    op.create_index("ix_reports_external_id", "reports", ["external_id"])
    op.create_index("ix_reports_incident_id", "reports", ["incident_id"])
    op.create_index("ix_reports_created_at", "reports", ["created_at"])
    op.create_table(
        "case_photos",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        *position_columns(),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_case_photos_incident_id", "case_photos", ["incident_id"])
    op.create_index("ix_case_photos_created_at", "case_photos", ["created_at"])


def downgrade() -> None:
    op.drop_table("case_photos")
    op.drop_table("reports")
