"""Per-camera health: a state machine plus a frozen snapshot for APIs and metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Literal

__all__ = ["GENERIC_ERRORS", "StreamErrorKind", "StreamHealth", "StreamState"]

StreamErrorKind = Literal["open_failed", "timeout", "ended", "error"]
"""What kind of failure ``last_error`` is: the source could not be opened (refused, 401/404, no
video); nothing arrived in time; the source ended the stream; anything else."""

GENERIC_ERRORS: dict[str, str] = {
    "open_failed": "cannot open the stream",
    "timeout": "the stream timed out",
    "ended": "the stream ended",
    "error": "the stream failed",
}
"""What callers who may not see the details (viewers) are told, per error kind."""


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
            It names hosts, paths and server answers: show it to administrators only.
        last_frame_ts: wall-clock time of the last decoded frame, None before the first.
        last_error_kind: the kind of ``last_error`` (:data:`StreamErrorKind`), None if none yet.

    Example::

        h = stream.health()                          # stream: a running CameraStream
        h.state is StreamState.LIVE and h.fps > 0    # True once frames arrive
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
    last_error_kind: StreamErrorKind | None = None

    @property
    def public_error(self) -> str | None:
        """``last_error`` without details (per :data:`GENERIC_ERRORS`), for non-administrators."""
        if self.last_error is None:
            return None
        return GENERIC_ERRORS[self.last_error_kind or "error"]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``state`` as its string value)."""
        data = asdict(self)
        data["state"] = self.state.value
        return data
