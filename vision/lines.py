"""Directed counting lines (越线): per-class in/out counts from tracked ground points.

TODO(lines helper): implementation and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import supervision as sv

from .config import LineConfig


@dataclass(frozen=True, slots=True)
class Crossing:
    """One tracked object crossing one line."""

    line_id: str
    tracker_id: int
    class_name: str
    direction: Literal["in", "out"]
    ts: float


class LineCounter:
    """All counting lines of one camera."""

    def __init__(self, configs: Sequence[LineConfig]) -> None:
        self.configs = list(configs)

    def update(self, detections: sv.Detections, size: tuple[int, int], now: float) -> list[Crossing]:
        return []
