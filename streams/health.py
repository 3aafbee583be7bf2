"""Per-camera health: a state machine plus a frozen snapshot for APIs and metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = ["StreamHealth", "StreamState"]


class StreamState(str, Enum):
    """Where a camera's reader is.

    Transitions::

        CONNECTING --first frame--> LIVE --no frame for stall_after_s--> STALLED
            ^                        |  ^--------------frame----------------|
            |                        +-- error / timeout / end of stream ---+--> BACKOFF
            +--------------------------- delay elapsed --------------------------+
        any --stop()--> STOPPED   (a file that ends with loop=False also stops)
    """

    CONNECTING = "connecting"
    LIVE = "live"
    STALLED = "stalled"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """Snapshot of one camera's reader.

    Attributes:
        camera_id: id of the camera.
        state: current :class:`StreamState`.
        since: wall-clock time (``time.time()``) the current state began.
        fps: measured rate of *published* frames over the last few seconds (0 unless live).
        frames_decoded: frames decoded since start (all of them, not only published ones).
        frames_published: frames put into the latest-frame slot (at most ``config.fps`` per s).
        frames_dropped: published frames replaced by a newer one before any consumer took them.
        reconnects: open attempts after a failure or disconnect (the first open is not counted).
        last_error: last failure as ``"Type: message"``, credentials redacted; None if none yet.
        last_frame_ts: wall-clock time of the last decoded frame, None before the first.

    Example:
        >>> h = stream.health()
        >>> h.state is StreamState.LIVE and h.fps > 0
        True
    """

    camera_id: str
    state: StreamState
    since: float
    fps: float
    frames_decoded: int
    frames_published: int
    frames_dropped: int
    reconnects: int
    last_error: str | None
    last_frame_ts: float | None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``state`` as its string value)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data
