"""cluster: observations received from workers (issue 12)"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "cluster_applied",
        sa.Column("msg_id", sa.String(200), primary_key=True),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("applied_at", sa.Float, nullable=False),
    )
    op.create_index("ix_cluster_applied_applied_at", "cluster_applied", ["applied_at"])
    op.create_table(
        "cluster_fences",
        sa.Column("camera_id", sa.String(128), primary_key=True),
        sa.Column("token", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_fences")
    op.drop_index("ix_cluster_applied_applied_at", table_name="cluster_applied")
    op.drop_table("cluster_applied")
