"""login_sessions: people's login sessions, kept across restarts (api/sessions.py,
docs/people.md). A row holds only ``sha256(cookie token)``, never the token, and no CSRF token
(that one is derived from the cookie's token on each request)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    # the SHA-256 (hex) of the cookie's token is the key; times are Unix seconds, as in the other tables
    key = sa.Column("digest", sa.String(64), primary_key=True)
    times = [sa.Column(name, sa.Float, nullable=False) for name in ("created_at", "last_seen")]
    op.create_table("login_sessions", key, sa.Column("person_id", sa.Integer, nullable=False), *times)
    op.create_index("ix_login_sessions_person_id", "login_sessions", ["person_id"])
    op.create_index("ix_login_sessions_last_seen", "login_sessions", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_login_sessions_last_seen", table_name="login_sessions")
    op.drop_index("ix_login_sessions_person_id", table_name="login_sessions")
    op.drop_table("login_sessions")
