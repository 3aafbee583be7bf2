"""iot_devices: IoT devices added through the API or a CSV import (issue 14)."""

from __future__ import annotations

from alembic import op

from gridworker.incidents.migrations.columns import saved_config_columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table("iot_devices", *saved_config_columns())  # as cameras and patrol plans (0001)


def downgrade() -> None:
    op.drop_table("iot_devices")
