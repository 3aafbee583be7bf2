"""Adaptive patrol concurrency: an AIMD controller over the visits in flight.

A glance spends most of its time waiting for the camera's next keyframe, which costs no
CPU, so the patrol's rate comes from how many visits wait at once. How many the machine
can carry depends on everything else it does (continuous cameras, other plans, the RTSP
sessions' own cost), so a fixed number is either too small (idle cores) or too large
(the detector's queue grows, continuous cameras lose frames, visits time out).

:class:`ConcurrencyController` sets the limit of visits in flight, between ``floor`` and
the plan's ``concurrency`` (its cap), once per ``interval_s``:

* **decrease** (multiply by ``decrease``) when, over the last interval, too many visits of
  cameras that were fine before failed (``max_failure_rate``: an overloaded machine shows
  as good cameras timing out), the machine's CPU was busy at or above ``cpu_high``, or the
  patrol frames waiting for inference reached ``queue_high`` of their cap (admission is
  already holding visits back: more in flight only adds waiting);
* **increase** when the limit was reached during the interval (more visits wanted to start)
  and the CPU and the queue had room (below ``cpu_grow`` and ``queue_grow``): doubling
  until the first decrease (slow start), then ``increase`` at a time;
* otherwise hold.

Failures of cameras that are dead or hung (they never gave a good visit, or failed on
their previous one) do not count: they say nothing about the machine, and their visits
wait without using CPU, so the controller may grow around them.

It reads its signals through a :data:`LoadProbe` (the service's: the machine's CPU busy
share and the pipeline's patrol queue, :class:`MachineProbe`), and takes a clock, so it is
tested with a fake clock and scripted samples.

Example:
    >>> ctl = ConcurrencyController(cap=128, floor=4, initial=16, probe=lambda: LoadSample(0.5, 0.0))
    >>> ctl.update(in_flight=16)     # the first call starts the interval
    16
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

__all__ = ["AimdTuning", "ConcurrencyController", "ControllerStats", "LoadProbe", "LoadSample", "MachineProbe", "cpu_busy_share"]


@dataclass(frozen=True, slots=True)
class LoadSample:
    """The machine's load since the previous sample.

    Attributes:
        cpu_busy: share of all the machine's cores busy, 0..1 (None: unknown, not judged).
        queue_fill: patrol frames waiting for inference over the number at which admission
            holds new visits (1.0: admission is holding them; None: unknown).
    """

    cpu_busy: float | None = None
    queue_fill: float | None = None


LoadProbe = Callable[[], LoadSample]
"""Returns a :class:`LoadSample`; called at most once per ``interval_s``, from the dispatcher's thread."""


@dataclass(frozen=True, slots=True)
class AimdTuning:
    """The controller's thresholds and steps (defaults measured with ``gridworker bench patrol``)."""

    interval_s: float = 0.5
    increase: int = 4
    decrease: float = 0.75
    cpu_high: float = 0.95
    cpu_grow: float = 0.90
    queue_high: float = 1.0
    queue_grow: float = 0.75
    max_failure_rate: float = 0.05
    min_finished: int = 4

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.increase < 1 or not 0 < self.decrease < 1:
            raise ValueError("interval_s > 0, increase >= 1 and 0 < decrease < 1 are required")
        if not 0 < self.cpu_grow <= self.cpu_high or not 0 < self.queue_grow <= self.queue_high:
            raise ValueError("the grow thresholds must be positive and at most the high ones")


@dataclass(frozen=True, slots=True)
class ControllerStats:
    """What the controller did so far (for the bench and the status)."""

    limit: int
    peak: int
    increases: int
    decreases: int
    last_reason: str | None


class ConcurrencyController:
    """AIMD limit of visits in flight (see the module docstring). Thread-safe.

    Args:
        cap: the most visits in flight (the plan's ``concurrency``).
        floor: the fewest the limit goes down to.
        initial: the limit to start with (default ``max(floor, cap // 4)``).
        probe: the load signals; None judges failures only.
        tuning: thresholds and steps.
        clock: monotonic seconds (a fake one in tests).
    """

    def __init__(
        self,
        cap: int,
        *,
        floor: int = 1,
        initial: int | None = None,
        probe: LoadProbe | None = None,
        tuning: AimdTuning = AimdTuning(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap < 1 or floor < 1:
            raise ValueError("cap and floor must be at least 1")
        self.cap = cap
        self.floor = min(floor, cap)
        self._probe = probe
        self._tuning = tuning
        self._clock = clock
        self._lock = threading.Lock()
        start = initial if initial is not None else max(self.floor, cap // 4)
        self._limit = max(self.floor, min(cap, start))
        self._peak = self._limit
        self._slow_start = True
        self._interval_start: float | None = None
        self._saturated = False
        self._finished = 0
        self._overloaded = 0
        self._increases = 0
        self._decreases = 0
        self._last_reason: str | None = None

    @property
    def limit(self) -> int:
        with self._lock:
            return self._limit

    def stats(self) -> ControllerStats:
        with self._lock:
            return ControllerStats(self._limit, self._peak, self._increases, self._decreases, self._last_reason)

    def visit_done(self, ok: bool, *, overload: bool = False) -> None:
        """A visit finished. ``overload``: it failed in a way that points at the machine, not
        the camera (a camera that was fine before failed, or the analysis failed)."""
        with self._lock:
            self._finished += 1
            if not ok and overload:
                self._overloaded += 1

    def update(self, in_flight: int) -> int:
        """The limit to apply now. ``in_flight``: visits running now. Judges the last
        interval when it has passed (probing the load once), else only notes the demand."""
        now = self._clock()
        with self._lock:
            if in_flight >= self._limit:
                self._saturated = True
            if self._interval_start is None:
                self._interval_start = now
                return self._limit
            if now - self._interval_start < self._tuning.interval_s:
                return self._limit
            finished, overloaded, saturated = self._finished, self._overloaded, self._saturated
            self._finished = self._overloaded = 0
            self._saturated = in_flight >= self._limit
            self._interval_start = now
        sample = self._probe() if self._probe is not None else LoadSample()
        with self._lock:
            self._judge(sample, finished, overloaded, saturated)
            return self._limit

    def _judge(self, sample: LoadSample, finished: int, overloaded: int, saturated: bool) -> None:
        t = self._tuning
        reason: str | None = None
        if finished >= t.min_finished and overloaded > t.max_failure_rate * finished:
            reason = "failures"
        elif sample.cpu_busy is not None and sample.cpu_busy >= t.cpu_high:
            reason = "cpu"
        elif sample.queue_fill is not None and sample.queue_fill >= t.queue_high:
            reason = "queue"
        if reason is not None:
            lowered = max(self.floor, int(self._limit * t.decrease))
            self._slow_start = False
            if lowered < self._limit:
                self._limit = lowered
                self._decreases += 1
            self._last_reason = reason
            return
        room = (sample.cpu_busy is None or sample.cpu_busy < t.cpu_grow) and (
            sample.queue_fill is None or sample.queue_fill < t.queue_grow
        )
        if saturated and room and self._limit < self.cap:
            grown = self._limit * 2 if self._slow_start else self._limit + t.increase
            self._limit = min(self.cap, grown)
            self._peak = max(self._peak, self._limit)
            self._increases += 1
            self._last_reason = "room"


class MachineProbe:
    """The service's load signals: the machine's CPU busy share (all cores, since the last
    call) and the pipeline's patrol queue (``pending() / max_pending``).

    Args:
        pending: patrol frames waiting for inference now (``Batcher.pending``).
        max_pending: the number at which admission holds new visits (``Pipeline.patrol_max_pending``).
    """

    def __init__(self, pending: Callable[[], int], max_pending: int) -> None:
        self._pending = pending
        self._max_pending = max(1, max_pending)
        self._last = psutil.cpu_times()

    def __call__(self) -> LoadSample:
        now = psutil.cpu_times()
        busy = cpu_busy_share(self._last, now)
        self._last = now
        return LoadSample(cpu_busy=busy, queue_fill=self._pending() / self._max_pending)


def cpu_busy_share(before: object, after: object) -> float | None:
    """Busy share of all cores between two ``psutil.cpu_times()`` samples (None when no time passed)."""
    idle_fields = ("idle", "iowait")
    total = busy = 0.0
    for name in getattr(after, "_fields", ()):
        delta = float(getattr(after, name)) - float(getattr(before, name))
        if name in ("guest", "guest_nice"):
            continue  # already counted in user / nice
        total += delta
        if name not in idle_fields:
            busy += delta
    return None if total <= 0 else max(0.0, min(1.0, busy / total))
