"""people: staff records, login sessions, case assignment (issue 15; filled in by that work)"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
