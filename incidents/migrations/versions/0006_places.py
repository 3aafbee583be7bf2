"""places (issue 15): no schema change.

The positions and grid areas of cases came with 0004 (work_orders.area, lon, lat); places
themselves live in the settings. This revision stays, empty, because databases already
stamped 0006 must still find it in the chain when they are upgraded.
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
