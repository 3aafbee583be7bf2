"""incident_clips.tracks: the triggering objects' boxes over each evidence clip (issue 16)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("incident_clips") as batch:
        batch.add_column(sa.Column("tracks", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident_clips") as batch:
        batch.drop_column("tracks")
