"""Adaptive patrol concurrency: an AIMD controller over the visits in flight.

A glance spends most of its time waiting for the camera's next keyframe, which costs no
CPU, so the patrol's rate comes from how many visits wait at once. How many the machine
can carry depends on everything else it does (continuous cameras, other plans, the RTSP
sessions' own cost, other programs), so a fixed number is either too small (idle cores)
or too large (continuous cameras lose frames, visits time out).

:class:`ConcurrencyController` sets the limit of visits in flight, between ``floor`` and
the plan's ``concurrency`` (its cap), once per ``interval_s``:

* **decrease** (multiply by ``decrease``; at most once per ``cooldown_s``, the time a
  change takes to show, as the visits in flight finish) when, over the last interval, too many visits of
  cameras that were fine before failed (``max_failure_rate``: an overloaded machine shows
  as good cameras timing out), the continuous cameras analysed less than ``live_low`` of
  the frames their readers offered (smoothed over intervals, ``live_smoothing``: the patrol
  is taking the detector from them), or this
  process used ``cpu_high`` or more of all the machine's cores;
* **increase** when the limit was reached during the interval (more visits wanted to start)
  and everything had room: continuous cameras at ``live_grow`` or more, CPU below
  ``cpu_grow``, and the patrol frames waiting for inference below ``queue_grow`` of the
  number at which admission holds visits back (a full queue means the detector, not the
  number in flight, sets the pace): doubling until the first decrease (slow start), then
  ``increase`` at a time;
* otherwise hold.

Failures of cameras that are dead or hung (they never gave a good visit, or failed on
their previous one) do not count: they say nothing about the machine, and their visits
wait without using CPU, so the controller may grow around them.

It reads its signals through a :data:`LoadProbe` (the service's: :class:`PipelineProbe`),
and takes a clock, so it is tested with a fake clock and scripted samples.

Example:
    >>> ctl = ConcurrencyController(cap=128, floor=4, initial=16, probe=lambda: LoadSample(0.5, 0.0, 1.0))
    >>> ctl.update(in_flight=16)     # the first call starts the interval
    16
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil

__all__ = [
    "AimdTuning",
    "ConcurrencyController",
    "ControllerStats",
    "LiveCount",
    "LoadProbe",
    "LoadSample",
    "PipelineProbe",
    "cpu_busy_share",
]


@dataclass(frozen=True, slots=True)
class LoadSample:
    """The load since the previous sample; None: unknown (not judged).

    Attributes:
        cpu_busy: share of all the machine's cores this process used, 0..1.
        queue_fill: patrol frames waiting for inference over the number at which admission
            holds new visits (1.0: admission is holding them).
        live_ratio: frames analysed over frames offered by the continuously watched cameras'
            readers (1.0: every offered frame analysed). None without live cameras.
    """

    cpu_busy: float | None = None
    queue_fill: float | None = None
    live_ratio: float | None = None


LoadProbe = Callable[[], LoadSample]
"""Returns a :class:`LoadSample`; called at most once per ``interval_s``, from the dispatcher's thread."""


@dataclass(frozen=True, slots=True)
class AimdTuning:
    """The controller's thresholds and steps (defaults measured with ``gridworker bench patrol``)."""

    interval_s: float = 1.0
    increase: int = 8
    decrease: float = 0.75
    cpu_high: float = 0.95
    cpu_grow: float = 0.90
    queue_grow: float = 0.75
    live_low: float = 0.90
    live_grow: float = 0.92
    max_failure_rate: float = 0.05
    min_finished: int = 4
    cooldown_s: float = 2.0
    live_smoothing: float = 0.5

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.increase < 1 or not 0 < self.decrease < 1 or self.cooldown_s < 0:
            raise ValueError("interval_s > 0, increase >= 1, 0 < decrease < 1 and cooldown_s >= 0 are required")
        if not 0 < self.live_smoothing <= 1:
            raise ValueError("live_smoothing must be in (0, 1]")
        if not 0 < self.cpu_grow <= self.cpu_high or not 0 < self.live_low <= self.live_grow or self.queue_grow <= 0:
            raise ValueError("thresholds must be positive, cpu_grow <= cpu_high and live_low <= live_grow")


@dataclass(frozen=True, slots=True)
class ControllerStats:
    """What the controller did so far (for the bench and the status)."""

    limit: int
    peak: int
    increases: int
    decreases: int
    last_reason: str | None


@dataclass(slots=True)
class _Tally:
    """What the interval being judged saw: visits finished, those of them that failed pointing
    at the machine (``visit_done``'s ``overload``), and whether the limit was reached."""

    finished: int = 0
    overloaded: int = 0
    saturated: bool = False


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
        self._tally = _Tally()
        self._increases = 0
        self._decreases = 0
        self._last_reason: str | None = None
        self._live: float | None = None  # the live cameras' smoothed ratio
        self._last_decrease = float("-inf")

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
            self._tally.finished += 1
            if not ok and overload:
                self._tally.overloaded += 1

    def update(self, in_flight: int) -> int:
        """The limit to apply now. ``in_flight``: visits running now. Judges the last
        interval when it has passed (probing the load once), else only notes the demand."""
        now = self._clock()
        with self._lock:
            if in_flight >= self._limit:
                self._tally.saturated = True
            if self._interval_start is None:
                self._interval_start = now
                return self._limit
            if now - self._interval_start < self._tuning.interval_s:
                return self._limit
            tally, self._tally = self._tally, _Tally(saturated=in_flight >= self._limit)
            self._interval_start = now
        sample = self._probe() if self._probe is not None else LoadSample()
        with self._lock:
            self._judge(sample, tally, now)
            return self._limit

    def _judge(self, sample: LoadSample, tally: _Tally, now: float) -> None:
        t = self._tuning
        if sample.live_ratio is not None:
            a = t.live_smoothing
            self._live = sample.live_ratio if self._live is None else a * sample.live_ratio + (1 - a) * self._live
        live = self._live if sample.live_ratio is not None else None  # no live camera now: not judged
        reason: str | None = None
        if tally.finished >= t.min_finished and tally.overloaded > t.max_failure_rate * tally.finished:
            reason = "failures"
        elif live is not None and live < t.live_low:
            reason = "live"
        elif sample.cpu_busy is not None and sample.cpu_busy >= t.cpu_high:
            reason = "cpu"
        if reason is not None:
            self._slow_start = False
            if now - self._last_decrease >= t.cooldown_s:  # else the last decrease has not shown yet: hold
                lowered = max(self.floor, int(self._limit * t.decrease))
                if lowered < self._limit:
                    self._limit = lowered
                    self._decreases += 1
                    self._last_decrease = now
            self._last_reason = reason
            return
        room = (
            (sample.cpu_busy is None or sample.cpu_busy < t.cpu_grow)
            and (sample.queue_fill is None or sample.queue_fill < t.queue_grow)
            and (live is None or live >= t.live_grow)
        )
        if tally.saturated and room and self._limit < self.cap:
            grown = self._limit * 2 if self._slow_start else self._limit + t.increase
            self._limit = min(self.cap, grown)
            self._peak = max(self._peak, self._limit)
            self._increases += 1
            self._last_reason = "room"


@dataclass(frozen=True, slots=True)
class LiveCount:
    """A continuously watched camera's counters: frames its reader offered, frames analysed."""

    camera_id: str
    offered: int
    analysed: int


class PipelineProbe:
    """The service's load signals for an adaptive plan.

    Args:
        pending: patrol frames waiting for inference now (``Batcher.pending``).
        max_pending: the number at which admission holds new visits (``Pipeline.patrol_max_pending``).
        live: the live continuous cameras' counters now (cameras that are not live are left out).
        min_offered: fewest frames offered in an interval for ``live_ratio`` to be judged.
    """

    def __init__(
        self, pending: Callable[[], int], max_pending: int, live: Callable[[], Iterable[LiveCount]], min_offered: int = 3
    ) -> None:
        self._pending = pending
        self._max_pending = max(1, max_pending)
        self._live = live
        self._min_offered = min_offered
        self._process = psutil.Process()
        self._cores = psutil.cpu_count() or 1
        self._cpu = self._cpu_s()
        self._at = time.monotonic()
        self._counts = {c.camera_id: c for c in live()}

    def _cpu_s(self) -> float:
        t = self._process.cpu_times()
        return float(t.user + t.system)

    def __call__(self) -> LoadSample:
        now, cpu = time.monotonic(), self._cpu_s()
        wall = now - self._at
        busy = (cpu - self._cpu) / wall / self._cores if wall > 0 else None
        self._cpu, self._at = cpu, now
        counts = {c.camera_id: c for c in self._live()}
        offered = analysed = 0
        for cid, c in counts.items():
            before = self._counts.get(cid)
            if before is not None and c.offered >= before.offered:  # live in both samples, reader not restarted
                offered += c.offered - before.offered
                analysed += c.analysed - before.analysed
        self._counts = counts
        live = min(1.0, analysed / offered) if offered >= self._min_offered else None
        return LoadSample(
            cpu_busy=None if busy is None else max(0.0, min(1.0, busy)),
            queue_fill=self._pending() / self._max_pending,
            live_ratio=live,
        )


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
