"""Whether a camera's analysis keeps up with its configured rate.

Under load (tiles on several cameras, a slow CPU) the pipeline keeps only each camera's
newest frame, so a camera configured at 5 fps may be analysed at 1: rules that count
seconds still work, but tracks jump, short events are missed and nothing says so. A
:class:`PaceWatch` counts the analysed frames of the last ``window_s`` and calls the camera
**behind** once its rate has stayed below ``ratio`` × the configured fps for a whole
window; it logs a warning when that starts and a note when it ends. It is caught up again
only once a window's rate is back at ``recover`` × the configured fps (0.6: a camera hovering
at half its rate stays behind instead of flapping between the two verdicts, and the log,
gauge and badge with it).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: The analysed rate is judged over this many seconds ...
WINDOW_S = 60.0
#: ... and is "behind" below this fraction of the configured fps ...
RATIO = 0.5
#: ... and caught up again only at this fraction (above ``RATIO``: no flapping at the edge).
RECOVER = 0.6
#: At most this many frame times are kept per camera (60 fps over a 34 s window); beyond it
#: the rate is that of the frames kept (the newest), so a long window costs no more memory.
MAX_TIMES = 4096


@dataclass(frozen=True, slots=True)
class Pace:
    """A camera's analysis rate at one moment.

    Attributes:
        configured_fps: the rate the camera is configured to be analysed at.
        analysed_fps: frames analysed per second over the last window (0 before any).
        behind: the rate has stayed below ``RATIO`` × configured for a whole window (and has
            not been back at ``RECOVER`` × configured since).
        behind_since: when that began (frame clock, epoch seconds), None when not behind.
    """

    configured_fps: float
    analysed_fps: float
    behind: bool
    behind_since: float | None


class PaceWatch:
    """Analysed-rate watch of one camera; ``tick(ts)`` per analysed frame, ``pace(now)`` to read.

    Example:
        >>> watch = PaceWatch("cam1", fps=5.0)
        >>> for i in range(61):
        ...     watch.tick(float(i))  # 1 fps for a minute
        >>> watch.pace(60.0).behind
        True
    """

    def __init__(self, camera_id: str, fps: float, *, window_s: float = WINDOW_S, ratio: float = RATIO, recover: float = RECOVER) -> None:
        self.camera_id = camera_id
        self.fps = fps
        self.window_s = window_s
        self.ratio = ratio
        self.recover = max(recover, ratio)
        # a frame time per analysed frame within the window; bounded by twice the configured
        # rate over the window, and by MAX_TIMES
        self._times: deque[float] = deque(maxlen=min(MAX_TIMES, max(8, int(fps * window_s * 2) + 2)))
        self._first: float | None = None
        self._behind_since: float | None = None
        self._lock = threading.Lock()

    def tick(self, ts: float) -> None:
        """One frame analysed at frame time ``ts``; logs when the camera falls behind or catches up."""
        with self._lock:
            if self._first is None or ts < self._first:
                self._first = ts
            self._times.append(ts)
            rate, changed = self._judge(ts)
            behind = self._behind_since is not None
        if changed:
            self._log(behind, rate)

    def _log(self, behind: bool, rate: float) -> None:
        """The verdict changed (to ``behind``): say so once, outside the lock."""
        if behind:
            log.warning(
                "camera %s: analysis is behind: %.1f frames/s analysed over the last %.0f s, configured %.1f"
                " (too many cameras or tiles for this machine; see gridworker check)",
                self.camera_id, rate, self.window_s, self.fps,
            )
        else:
            log.info("camera %s: analysis caught up (%.1f frames/s, configured %.1f)", self.camera_id, rate, self.fps)

    def _rate(self, now: float) -> float:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        if self._first is None or len(self._times) < 2:
            return 0.0
        span = min(self.window_s, now - self._first)
        if len(self._times) == self._times.maxlen:  # more frames in the window than kept: the rate of those kept
            span = min(span, now - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _judge(self, now: float) -> tuple[float, bool]:
        """Update the verdict as of ``now``: the rate, and whether the verdict changed (to be
        logged once, by whichever of ``tick`` and ``pace`` saw it change). Called under the lock."""
        rate = self._rate(now)
        full = self._first is not None and now - self._first >= self.window_s
        was = self._behind_since is not None
        if rate < self.ratio * self.fps and full:
            # the mean rate of a whole window is below: the camera has been behind for the window
            if self._behind_since is None:
                self._behind_since = now
        elif not full or rate >= self.recover * self.fps:
            self._behind_since = None  # back at ``recover`` (between the two, the verdict holds)
        return rate, (self._behind_since is not None) != was

    def pace(self, now: float) -> Pace:
        """The rate as of ``now``; a camera that analysed nothing for a whole window is behind too
        (and the warning is logged here, since no frame comes to log it)."""
        with self._lock:
            rate, changed = self._judge(now)
            pace = Pace(self.fps, round(rate, 2), self._behind_since is not None, self._behind_since)
        if changed:
            self._log(pace.behind, rate)
        return pace
