"""Column sets that several migrations declare alike, written once.

Frozen like the revisions that use them: a revision's schema must never change once shipped,
so a helper here is never edited to follow a model. A later revision that needs another
shape of these columns declares it itself (or adds a new helper).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def saved_config_columns() -> tuple[sa.Column[Any], ...]:
    """A table of configurations saved as text under an id (cameras, patrol plans, IoT
    devices: what ``SavedConfigs`` reads and writes)."""
    return (
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def position_columns() -> tuple[sa.Column[Any], sa.Column[Any]]:
    """A WGS84 position, absent where it is unknown: ``lon`` and ``lat`` (degrees)."""
    return sa.Column("lon", sa.Float, nullable=True), sa.Column("lat", sa.Float, nullable=True)
