"""Run a patrol plan: cycles of visits, a bounded number in flight, dead cameras sidelined.

:class:`PatrolRun` owns one dispatcher thread and a pool of ``plan.concurrency`` visit
threads. The dispatcher walks the cycle's order (:func:`~gridworker.patrol.selection.plan_order`)
and starts a visit whenever a slot is free (the limit is ``plan.concurrency``, or, for an
adaptive plan, the :class:`~gridworker.patrol.concurrency.ConcurrencyController`'s); once
every visit of a cycle has started, the next cycle starts beside the last ones
(``plan.overlap_cycles``); each visit is a :func:`~gridworker.streams.glance.glance`
(or, in watch mode, ``watch_s`` of video) whose frames go to the caller's ``visit_sink``.
The sink does the analysis (batched inference + rules); it runs on the visit's thread and
may block, which keeps the visit's slot busy: a slow sink slows the patrol down instead
of piling frames up.

A visit that fails (refused, 404, no answer, no keyframe in time) is recorded with its
reason; the camera is listed offline and retried in a later cycle once two back-offs have
passed: one counted in cycles (:func:`~gridworker.patrol.selection.skip_cycles`), one in
seconds (:func:`~gridworker.patrol.selection.retry_delay_s`), so that cameras are not
retried faster when cycles get short (a camera replaced under its id starts afresh). A time
window of the plan closing ends the cycle: the next window starts a new one. Nothing a camera
does can stall the cycle: every
visit has its own open and keyframe timeouts. A cycle that started no visit (the plan
selects no camera, or every camera sits out its back-off) is followed by a wait of at least
:data:`IDLE_CYCLE_S` (or ``min_cycle_s`` if longer): an idle plan never spins.

Example::

    run = PatrolRun(plan, cameras, visit_sink=lambda target, frames: analyse(frames))
    run.start(); run.start()        # True, then False: the second start is a no-op
    run.status().visited, run.status().total   # e.g. (120, 200)
    run.stop()                      # True
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from gridworker.streams.config import READER_SECONDS_MAX, StreamConfig
from gridworker.streams.frame import Frame
from gridworker.streams.glance import GlanceResult, glance
from gridworker.streams.redact import get_logger, redact_url

from .concurrency import ConcurrencyController, ControllerStats, LoadProbe
from .config import PatrolPlan, PatrolTarget
from .selection import plan_order, retry_delay_s, select_cameras, skip_cycles

__all__ = [
    "IDLE_CYCLE_S",
    "CameraOutcome",
    "CycleSummary",
    "FailedVisit",
    "OfflineCamera",
    "PatrolRun",
    "PatrolState",
    "PatrolStatus",
    "VisitSink",
    "Visitor",
    "default_visitor",
]

log = get_logger(__name__)

IDLE_CYCLE_S = 5.0
"""Least seconds from the start of a cycle that started no visit to the next cycle's start
(the plan's ``min_cycle_s`` when longer); :meth:`PatrolRun.wake` ends the wait early."""

VisitSink = Callable[[PatrolTarget, Sequence[Frame]], None]
"""Receives a visit's frames (on the visit's thread; may be called several times per watch visit)."""

Visitor = Callable[[PatrolTarget, PatrolPlan, threading.Event, int, Callable[[Sequence[Frame]], None]], GlanceResult]
"""Performs one visit: ``visitor(target, plan, stop, first_seq, deliver) -> GlanceResult``.
It hands frames to ``deliver`` (glance: once, at the end; watch: as they come)."""


class PatrolState(str, enum.Enum):
    IDLE = "idle"  # created, not started
    RUNNING = "running"
    PAUSED = "paused"  # no new visits; those in flight finish
    WAITING = "waiting"  # outside the plan's time windows, waiting out min_cycle_s, or idle (IDLE_CYCLE_S)
    STOPPING = "stopping"
    STOPPED = "stopped"  # stopped by the caller
    FINISHED = "finished"  # all cycles done


@dataclass(frozen=True, slots=True)
class CameraOutcome:
    """What one visit gave. ``reason`` is None for a good visit."""

    camera_id: str
    cycle: int
    ok: bool
    started_at: float
    duration_s: float
    frames: int = 0
    connect_s: float | None = None
    first_keyframe_s: float | None = None
    packets_decoded: int = 0
    packets_skipped: int = 0
    error_kind: str | None = None
    reason: str | None = None

    @classmethod
    def of_visit(cls, result: GlanceResult, *, camera_id: str, cycle: int, duration_s: float, frames: int) -> CameraOutcome:
        """The outcome of a visit that returned ``result``: its start, timings, packets and error as the glance (or
        watch) measured them; ``duration_s`` and ``frames`` as the engine counted them."""
        return cls(
            camera_id=camera_id, cycle=cycle, ok=result.ok, started_at=result.started_at, duration_s=duration_s, frames=frames,
            connect_s=result.connect_s, first_keyframe_s=result.first_keyframe_s, packets_decoded=result.packets_decoded,
            packets_skipped=result.packets_skipped, error_kind=result.error_kind, reason=result.reason,
        )


@dataclass(frozen=True, slots=True)
class FailedVisit:
    """A failed visit: its ``reason`` (redacted, but naming hosts, paths and server answers) and
    ``error_kind``, the visit's :attr:`CameraOutcome.error_kind` (None when not known)."""

    camera_id: str
    reason: str
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class CycleSummary:
    """The totals of a finished cycle (kept in the status while the next one runs)."""

    cycle: int
    total: int
    ok: int
    failed: int
    skipped: int
    duration_s: float
    failed_visits: tuple[FailedVisit, ...]


@dataclass(frozen=True, slots=True)
class OfflineCamera:
    """A camera whose last visit failed (``reason`` and ``error_kind`` as in :class:`FailedVisit`).
    It is tried again in cycle ``retry_cycle`` or later, not before ``retry_at`` (wall clock, Unix seconds)."""

    camera_id: str
    reason: str
    failures: int
    since: float
    retry_cycle: int
    retry_at: float | None = None
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class PatrolStatus:
    """A consistent snapshot of a run (safe to return from an API as is).

    ``visited`` counts finished visits of the current cycle (good or failed); ``skipped``
    the offline cameras that sit this cycle out; ``total`` the cycle's cameras. ``eta_s``
    estimates the rest of the current cycle from its pace so far (or the last cycle's).
    """

    plan_id: str
    state: PatrolState
    cycle: int
    cycles: int
    completed_cycles: int
    total: int
    visited: int
    ok: int
    failed: int
    skipped: int
    in_flight: tuple[str, ...]
    started_at: float | None
    cycle_started_at: float | None
    last_cycle_s: float | None
    eta_s: float | None
    visits_total: int
    failed_this_cycle: tuple[FailedVisit, ...]
    offline: tuple[OfflineCamera, ...]
    last_cycle: CycleSummary | None = None
    concurrency_limit: int = 0  # visits allowed in flight now (the plan's concurrency, or the adaptive limit)

    @property
    def progress(self) -> float:
        return (self.visited + self.skipped) / self.total if self.total else 0.0


@dataclass
class _CycleCount:
    """One cycle's counts, kept until its last visit finished (the next cycle may run by then)."""

    number: int
    total: int
    started_mono: float
    started_at: float
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    failed_visits: list[FailedVisit] = field(default_factory=list)
    dispatched: bool = False  # every camera of the cycle was started or skipped
    started: int = 0  # visits the cycle started

    @property
    def finished(self) -> bool:
        return self.dispatched and self.ok + self.failed + self.skipped >= self.total


class _Go(enum.Enum):
    """Whether the dispatcher goes on with a cycle."""

    ON = "on"
    CUT = "cut"  # the plan's time window closed: the cycle ends here (cut short)
    STOP = "stop"  # the run is stopping


@dataclass
class _CameraState:
    """What the run knows of one camera; ``target`` is the camera it was learnt on (a camera
    replaced under the same id, with another URL or other patrol attributes, starts afresh)."""

    target: PatrolTarget | None = None
    failures: int = 0
    retry_cycle: int = 0
    retry_mono: float = 0.0  # not retried before this time.monotonic() (retry_delay_s)
    retry_at: float | None = None  # the same on the run's clock (for the status)
    offline_since: float | None = None
    reason: str | None = None
    error_kind: str | None = None  # the last failed visit's (with reason)
    seq: int = 0
    seen_ok: bool = False  # gave a good visit in this run


def default_visitor(
    target: PatrolTarget,
    plan: PatrolPlan,
    stop: threading.Event,
    first_seq: int,
    deliver: Callable[[Sequence[Frame]], None],
) -> GlanceResult:
    """Glance (or watch) one camera as the plan says, and hand its frames to ``deliver``."""
    if plan.mode == "watch":
        return _Watch(target, plan).run(stop, first_seq, deliver)
    result = glance_call(target, plan, stop, first_seq)()
    if result.ok and result.frames:
        deliver(result.frames)
    return result


def glance_call(target: PatrolTarget, plan: PatrolPlan, stop: threading.Event, first_seq: int) -> Callable[[], GlanceResult]:
    """The plan's glance at one camera, ready to run (``streams.glance.glance`` with its arguments bound)."""
    return functools.partial(
        glance,
        target.camera_id,
        target.url,
        keyframes=plan.keyframes,
        open_timeout_s=plan.open_timeout_s,
        keyframe_timeout_s=plan.keyframe_timeout_s,
        stop=stop,
        first_seq=first_seq,
    )


@dataclass(frozen=True, slots=True)
class _Watch:
    """A watch stop at ``target``: ``plan.watch_s`` seconds of video at ``plan.watch_fps`` through
    the regular stream reader."""

    target: PatrolTarget
    plan: PatrolPlan

    def stream_config(self) -> StreamConfig:
        """The reader's settings: one session per visit, no reconnect inside it (the reader's back-off
        is capped at 300 s, a watch at 600: a longer watch may reconnect once, which is better than
        no visit)."""
        plan = self.plan
        return StreamConfig(
            url=self.target.url,
            fps=plan.watch_fps,
            open_timeout_s=plan.open_timeout_s,
            read_timeout_s=min(plan.keyframe_timeout_s, 30.0),
            backoff_initial_s=min(max(plan.watch_s, 1.0), READER_SECONDS_MAX),
            backoff_max_s=max(plan.watch_s, 1.0),
        )

    def run(self, stop: threading.Event, first_seq: int, deliver: Callable[[Sequence[Frame]], None]) -> GlanceResult:
        """Read until the watch is over (or no frame came in time, or ``stop``); each frame goes to
        ``deliver`` as it comes, numbered from ``first_seq``."""
        from gridworker.streams.reader import CameraStream

        target, plan = self.target, self.plan
        started_at, t0 = time.time(), time.monotonic()
        stream = CameraStream(target.camera_id, self.stream_config())
        delivered = 0
        first: float | None = None
        last_seq = -1
        stream.start()
        try:
            deadline_first = t0 + plan.open_timeout_s + plan.keyframe_timeout_s
            end: float | None = None
            while not stop.is_set():
                now = time.monotonic()
                if end is None and now > deadline_first:
                    break
                if end is not None and now >= end:
                    break
                frame = stream.wait(after_seq=last_seq, timeout=0.25)
                if frame is None:
                    continue
                last_seq = frame.seq
                if first is None:
                    first = time.monotonic() - t0
                    end = time.monotonic() + plan.watch_s
                deliver([Frame(frame.camera_id, first_seq + delivered, frame.ts, frame.image)])
                delivered += 1
            health = stream.health()
        finally:
            stream.stop()
        total = time.monotonic() - t0
        safe = redact_url(target.url)
        if stop.is_set() and delivered == 0:
            return GlanceResult(target.camera_id, safe, started_at, total_s=total, error_kind="stopped", error="stopped")
        if delivered == 0:
            why = health.last_error or f"no frame within {plan.open_timeout_s + plan.keyframe_timeout_s:g} s"
            return GlanceResult(target.camera_id, safe, started_at, total_s=total, error_kind="keyframe_timeout", error=why)
        return GlanceResult(
            target.camera_id, safe, started_at, connect_s=None, first_keyframe_s=first, total_s=total,
            packets_decoded=health.frames_decoded,
        )


class PatrolRun:
    """Executes one :class:`PatrolPlan` over a camera list.

    Args:
        plan: what to visit and how.
        cameras: the candidate cameras, or a callable returning them (read at each cycle's
            start, so cameras added or removed in the service take effect next cycle, and again
            at each visit's start: a camera deleted meanwhile is left out of the cycle, one
            replaced under its id is visited at its new URL).
        visit_sink: gets each visit's frames; must be thread-safe (visits run in parallel).
        visitor: performs one visit (default :func:`default_visitor`: a real glance/watch).
        on_outcome: optional callback per finished visit (metrics, logs), any thread.
        admit: optional back-pressure: ``admit(stop)`` blocks until a new visit may start
            (True) or ``stop`` is set (False). The service passes the pipeline's "few patrol
            frames wait for inference" (a condition wait), so visits do not decode faster
            than the shared detector can take their frames.
        clock: wall clock for the plan's time windows and timestamps.
        load_probe: the machine's load for an adaptive plan (``concurrency_mode: adaptive``);
            see :mod:`gridworker.patrol.concurrency`. Without it an adaptive plan judges
            failures only.

    Lifecycle: ``start`` (idempotent while running), ``pause``/``resume`` (idempotent),
    ``stop`` (idempotent; in-flight visits are abandoned at their next packet), ``wait``.
    A run is started once; after it stopped or finished, make a new one.
    """

    def __init__(
        self,
        plan: PatrolPlan,
        cameras: Sequence[PatrolTarget] | Callable[[], Sequence[PatrolTarget]],
        visit_sink: VisitSink,
        *,
        visitor: Visitor = default_visitor,
        on_outcome: Callable[[CameraOutcome], None] | None = None,
        admit: Callable[[threading.Event], bool] | None = None,
        clock: Callable[[], float] = time.time,
        load_probe: LoadProbe | None = None,
    ) -> None:
        self.plan = plan
        self._controller: ConcurrencyController | None = None
        if plan.concurrency_mode == "adaptive":
            self._controller = ConcurrencyController(plan.concurrency, floor=plan.min_concurrency, probe=load_probe)
        self._admit = admit
        self._cameras = cameras if callable(cameras) else (lambda: list(cameras))
        self._sink = visit_sink
        self._visitor = visitor
        self._on_outcome = on_outcome
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()  # ends an idle wait early: stop, or wake()
        self._idle: str | None = None  # why the last cycle started no visit (dispatcher only)
        self._resume = threading.Event()
        self._resume.set()
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0  # visit slots taken (guarded by _cond); at most the limit in force
        self._last_start = 0.0  # when the last visit started (the dispatcher's own)
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        # guarded by _cond
        self._state = PatrolState.IDLE
        self._paused = False
        self._cycle = 0
        self._completed = 0
        self._now: _CycleCount | None = None  # the newest cycle (what the status shows)
        self._open: dict[int, _CycleCount] = {}  # cycles with visits still running
        self._visits_total = 0
        self._in_flight: dict[str, float] = {}
        self._started_at: float | None = None
        self._last_cycle_s: float | None = None
        self._last_summary: CycleSummary | None = None
        self._cams: dict[str, _CameraState] = {}
        self._last: dict[str, CameraOutcome] = {}
        self._history: deque[CameraOutcome] = deque(maxlen=_HISTORY)

    # ------------------------------------------------------------------ control
    def start(self) -> bool:
        """Start the run. Returns False (and does nothing) if it is already running."""
        with self._cond:
            if self._thread is not None or self._stop.is_set():
                if self._stop.is_set() or self._state in _ENDED:
                    raise RuntimeError(f"patrol {self.plan.id}: this run has ended; start a new PatrolRun")
                return False
            self._state = PatrolState.RUNNING
            self._started_at = self._clock()
            self._pool = ThreadPoolExecutor(max_workers=self.plan.concurrency, thread_name_prefix=f"patrol-{self.plan.id}")
            self._thread = threading.Thread(target=self._dispatch, name=f"patrol-{self.plan.id}", daemon=True)
            self._thread.start()
        log.info("patrol %s: started (%s, concurrency %d)", self.plan.id, self.plan.mode, self.plan.concurrency)
        return True

    def pause(self) -> bool:
        """Start no new visits (those in flight finish). False if already paused or not running."""
        with self._cond:
            if self._paused or self._thread is None or self._state in _ENDED:
                return False
            self._paused = True
            self._resume.clear()
            if self._state in (PatrolState.RUNNING, PatrolState.WAITING):
                self._state = PatrolState.PAUSED
            self._cond.notify_all()
        return True

    def resume(self) -> bool:
        """Undo :meth:`pause`. False if it was not paused."""
        with self._cond:
            if not self._paused:
                return False
            self._paused = False
            self._resume.set()
            if self._state is PatrolState.PAUSED:
                self._state = PatrolState.RUNNING
            self._cond.notify_all()
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Stop and wait for the dispatcher and the visits. True once all of them ended.

        Args:
            timeout: seconds to wait; default the longest a visit can take (its timeouts).
        """
        with self._cond:
            if self._state not in _ENDED and self._thread is not None:
                self._state = PatrolState.STOPPING
            elif self._thread is None:
                self._state = PatrolState.STOPPED
        self._stop.set()
        self._wake.set()
        self._resume.set()
        with self._cond:
            self._cond.notify_all()
        return self.wait(self.plan.visit_budget_s() + 2.0 if timeout is None else timeout)

    def wake(self) -> None:
        """The cameras (or what the plan selects) changed: end an idle wait now, so that the
        next cycle reads them at once instead of after :data:`IDLE_CYCLE_S`. ``min_cycle_s``
        is still waited out. Harmless at any time."""
        self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run has ended (all cycles done, or stopped). True if it has."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        with self._cond:
            return self._cond.wait_for(lambda: not self._in_flight, timeout)

    # ------------------------------------------------------------------ observation
    def status(self) -> PatrolStatus:
        with self._cond:
            now = time.monotonic()
            cur = self._now or _CycleCount(0, 0, now, 0.0)
            done = cur.ok + cur.failed + cur.skipped
            eta: float | None = None
            if self._state in (PatrolState.RUNNING, PatrolState.PAUSED) and cur.total:
                remaining = max(0, cur.total - done)
                if done:
                    eta = remaining * (now - cur.started_mono) / done
                elif self._last_cycle_s is not None:
                    eta = self._last_cycle_s
            offline = tuple(
                OfflineCamera(cid, st.reason or "", st.failures, st.offline_since, st.retry_cycle, st.retry_at, st.error_kind)
                for cid, st in sorted(self._cams.items())
                if st.offline_since is not None
            )
            return PatrolStatus(
                plan_id=self.plan.id,
                state=self._state,
                cycle=self._cycle,
                cycles=self.plan.cycles,
                completed_cycles=self._completed,
                total=cur.total,
                visited=cur.ok + cur.failed,
                ok=cur.ok,
                failed=cur.failed,
                skipped=cur.skipped,
                in_flight=tuple(sorted(self._in_flight)),
                started_at=self._started_at,
                cycle_started_at=self._now.started_at if self._now is not None else None,
                last_cycle_s=self._last_cycle_s,
                eta_s=eta,
                visits_total=self._visits_total,
                failed_this_cycle=tuple(cur.failed_visits),
                offline=offline,
                last_cycle=self._last_summary,
                concurrency_limit=self._controller.limit if self._controller is not None else self.plan.concurrency,
            )

    def controller_stats(self) -> ControllerStats | None:
        """What the adaptive controller did (None for a fixed plan)."""
        return self._controller.stats() if self._controller is not None else None

    def last_outcomes(self) -> dict[str, CameraOutcome]:
        """The latest visit outcome of every camera visited so far."""
        with self._cond:
            return dict(self._last)

    def outcomes(self) -> list[CameraOutcome]:
        """The finished visits of this run, oldest first (the last few thousand; stopped ones left out)."""
        with self._cond:
            return list(self._history)

    def wait_for(self, predicate: Callable[[PatrolStatus], bool], timeout: float) -> bool:
        """Wait until ``predicate(status())`` holds (re-checked on every change). True if it did."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.status()):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._cond:
                self._cond.wait(min(left, 0.2))

    # ------------------------------------------------------------------ dispatcher
    def _dispatch(self) -> None:
        plan = self.plan
        cut = 0  # cycles a time window cut short: they do not count towards plan.cycles (passes over the cameras)
        try:
            while not self._stop.is_set():
                if plan.cycles and self._cycle - cut >= plan.cycles:
                    break
                if self._wait_window() is not _Go.ON:
                    break
                cycle_t0 = time.monotonic()
                if self._run_cycle(self._cycle + 1) is _Go.CUT:
                    cut += 1
                if self._stop.is_set():
                    break
                idle = self._note_idle()
                floor = max(plan.min_cycle_s, IDLE_CYCLE_S) if idle else plan.min_cycle_s
                more = not plan.cycles or self._cycle - cut < plan.cycles
                if time.monotonic() - cycle_t0 < floor and more:
                    self._set_state(PatrolState.PAUSED if self._paused else PatrolState.WAITING)
                    if idle:  # past min_cycle_s, a camera change (wake) ends the wait
                        self._wake.wait(cycle_t0 + floor - time.monotonic())
                    self._stop.wait(cycle_t0 + plan.min_cycle_s - time.monotonic())
                    self._set_state(PatrolState.PAUSED if self._paused else PatrolState.RUNNING)
        except Exception:  # noqa: BLE001 - logged; the run ends as stopped instead of dying silently
            log.exception("patrol %s: dispatcher failed", plan.id)
        finally:
            self._drain()
            with self._cond:
                self._state = PatrolState.STOPPED if self._stop.is_set() else PatrolState.FINISHED
                self._cond.notify_all()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            log.info("patrol %s: %s after %d cycle(s)", plan.id, self._state.value, self._completed)

    def _note_idle(self) -> bool:
        """Whether the cycle just dispatched started no visit; says so in the log once per
        change (not once per cycle)."""
        with self._cond:
            count = self._now
            started = count.started if count is not None else 0
            total = count.total if count is not None else 0
        why: str | None = None
        if not started:
            why = f"all {total} camera(s) offline, waiting out their retry back-off" if total else "the plan selects no camera"
        if why is not None and why != self._idle:
            log.info("patrol %s: no camera to visit (%s); next cycle in %g s or more", self.plan.id, why,
                     max(self.plan.min_cycle_s, IDLE_CYCLE_S))
        self._idle = why
        return why is not None

    def _set_state(self, state: PatrolState) -> None:
        with self._cond:
            if self._state not in (*_ENDED, PatrolState.STOPPING):
                self._state = state
            self._cond.notify_all()

    def _wait_window(self, *, within_cycle: bool = False) -> _Go:
        """Block while paused, and (between cycles) while outside the plan's time windows.

        Inside a cycle (``within_cycle``) a closed window is not waited out: it ends the cycle
        (:attr:`_Go.CUT`), so that the next window starts a fresh cycle over the cameras of its
        day, and the cut cycle's duration leaves the night out. :attr:`_Go.STOP` if stopped meanwhile.
        """
        schedule = self.plan.schedule
        while not self._stop.is_set():
            if not self._resume.is_set():
                self._resume.wait(0.5)
                continue
            if schedule is None or schedule.active(self._clock()):
                self._set_state(PatrolState.PAUSED if self._paused else PatrolState.RUNNING)
                return _Go.ON
            if within_cycle:
                return _Go.CUT
            self._set_state(PatrolState.WAITING)
            self._stop.wait(1.0)
        return _Go.STOP

    def _run_cycle(self, cycle: int) -> _Go:
        """Start every visit of the cycle, and return: the last visits finish while the next
        cycle starts (their keyframe waits overlap it), so a cycle's tail leaves no slots
        idle (``plan.overlap_cycles``; off: wait for them first). A camera still being visited when its turn comes again is visited at the end
        of the cycle, after that visit finished. A time window closing ends the cycle there
        (cut short: its total is the cameras it reached; returns :attr:`_Go.CUT`). The cycle is
        summed up when its last visit finished (:meth:`_record`)."""
        plan = self.plan
        self._wake.clear()  # a change from now on ends the idle wait after this cycle
        if self._stop.is_set():
            self._wake.set()
        targets = plan_order(self._cameras(), plan, cycle)
        with self._cond:
            count = _CycleCount(cycle, len(targets), time.monotonic(), self._clock())
            self._cycle, self._now = cycle, count
            self._open[cycle] = count
            present = {t.camera_id for t in targets}
            for cid in [c for c in self._cams if c not in present and c not in self._in_flight]:
                del self._cams[cid]  # removed from the plan or the service: forget it
            for cid in [c for c in self._last if c not in present and c not in self._in_flight]:
                del self._last[cid]  # (its last outcome too: a run that lasts sees camera ids come and go)
        # while idle (_note_idle says so once), cycles start quietly
        log.log(logging.INFO if targets and self._idle is None else logging.DEBUG,
                "patrol %s: cycle %d, %d camera(s)", plan.id, cycle, len(targets))
        go = self._start_all(targets, count)
        if go is _Go.STOP:
            return go
        with self._cond:
            count.dispatched = True
            if go is _Go.CUT:
                reached = count.started + count.skipped
                log.info("patrol %s: cycle %d cut short by its time window after %d of %d camera(s)",
                         plan.id, cycle, reached, count.total)
                count.total = reached
            self._close_cycle(count)
            while not self.plan.overlap_cycles and count.number in self._open and not self._stop.is_set():
                self._cond.wait(0.2)  # the plan asks to drain each cycle before the next
        return go

    def _start_all(self, targets: Sequence[PatrolTarget], count: _CycleCount) -> _Go:
        """Start (or skip) the visit of every camera of the cycle, in order; a camera still on
        its visit of the previous cycle at the end. What ended the cycle's dispatch."""
        later: list[PatrolTarget] = []
        for target in targets:
            go = self._wait_window(within_cycle=True)
            if go is _Go.ON:
                with self._cond:
                    busy = target.camera_id in self._in_flight
                if busy:
                    later.append(target)  # still on its visit of the previous cycle
                    continue
                go = self._start_visit(target, count)
            if go is not _Go.ON:
                return go
        for target in later:
            go = self._wait_window(within_cycle=True)
            if go is _Go.ON:
                go = self._start_visit(target, count) if self._wait_idle(target.camera_id) else _Go.STOP
            if go is not _Go.ON:
                return go
        return _Go.ON

    def _start_visit(self, target: PatrolTarget, count: _CycleCount) -> _Go:
        """Start one visit (or count the camera as skipped while it is offline).

        The visit is of the camera as it is when its slot is free, not as it was at the cycle's
        start: a camera deleted (or no longer selected) meanwhile is left out of the cycle, and
        one replaced under the same id (another URL) is visited at its new URL. The window is
        checked again once the slot is free: a closed one ends the cycle (:attr:`_Go.CUT`)."""
        with self._cond:
            st = self._state_of(target)
            if st.offline_since is not None and (st.retry_cycle > count.number or st.retry_mono > time.monotonic()):
                count.skipped += 1
                self._cond.notify_all()
                return _Go.ON
        if not self._acquire_slot():
            return _Go.STOP
        go = _Go.ON if self._wait_admitted() else _Go.STOP
        if go is _Go.ON:
            gap = self.plan.stagger_s - (time.monotonic() - self._last_start)
            if gap > 0:
                self._stop.wait(gap)
        while True:
            if go is _Go.ON:
                go = self._wait_window(within_cycle=True)
            current = self._current(target.camera_id) if go is _Go.ON else None
            if current is None:
                self._release_slot()
                if go is _Go.ON:
                    self._leave_out(target.camera_id, count)
                return go
            with self._cond:
                # a pause (or stop) that came after the window was found open: no visit starts
                # now; the slot is kept and the window waited for again
                if self._paused or self._stop.is_set():
                    continue
                self._last_start = time.monotonic()
                st = self._state_of(current)
                self._in_flight[current.camera_id] = self._last_start
                count.started += 1
                first_seq = st.seq + 1
                self._cond.notify_all()
            break
        assert self._pool is not None
        self._pool.submit(self._visit, current, count.number, first_seq)
        return _Go.ON

    def _current(self, camera_id: str) -> PatrolTarget | None:
        """The camera as the service has it now, if the plan still selects it (else None)."""
        for cam in self._cameras():
            if cam.camera_id == camera_id:
                return cam if select_cameras([cam], self.plan.select) else None
        return None

    def _state_of(self, target: PatrolTarget) -> _CameraState:
        """The camera's state (under ``_cond``): a fresh one when ``target`` is not the camera the
        state was learnt on (a camera replaced by DELETE+POST keeps no failures or back-off of the old one)."""
        st = self._cams.get(target.camera_id)
        if st is None or st.target != target:
            st = _CameraState(target=target, seq=st.seq if st is not None else 0)  # frame numbers go on rising
            self._cams[target.camera_id] = st
        return st

    def _leave_out(self, camera_id: str, count: _CycleCount) -> None:
        """A camera of the cycle that is gone (deleted, or no longer selected) by its turn: the
        cycle has one camera less, and the run forgets it."""
        log.info("patrol %s: %s left out of cycle %d (removed from the service or the plan)", self.plan.id, camera_id, count.number)
        with self._cond:
            count.total -= 1
            if camera_id not in self._in_flight:
                self._cams.pop(camera_id, None)
                self._last.pop(camera_id, None)
            self._cond.notify_all()

    def _wait_idle(self, camera_id: str) -> bool:
        """Wait until the camera's visit in flight finished. False when stopped meanwhile."""
        with self._cond:
            while camera_id in self._in_flight:
                if self._stop.is_set():
                    return False
                self._cond.wait(0.2)
        return not self._stop.is_set()

    def _close_cycle(self, count: _CycleCount) -> None:
        """Sum up a cycle whose visits all finished (under ``_cond``)."""
        if not count.finished or self._open.pop(count.number, None) is None or self._stop.is_set():
            return
        took = time.monotonic() - count.started_mono
        self._completed += 1
        if self._last_summary is None or count.number > self._last_summary.cycle:
            self._last_cycle_s = took
            self._last_summary = CycleSummary(
                count.number, count.total, count.ok, count.failed, count.skipped, took, tuple(count.failed_visits)
            )
        self._cond.notify_all()
        log.log(
            logging.INFO if count.started else logging.DEBUG,  # a cycle without visits: _note_idle logs
            "patrol %s: cycle %d done in %.1f s: %d ok, %d failed, %d offline skipped",
            self.plan.id, count.number, took, count.ok, count.failed, count.skipped,
        )

    def _wait_admitted(self) -> bool:
        """Block until admitted (back-pressure). False if stopped meanwhile."""
        if self._admit is None:
            return not self._stop.is_set()
        try:
            return self._admit(self._stop) and not self._stop.is_set()
        except Exception:  # noqa: BLE001 - a broken check must not stall the patrol
            log.exception("patrol %s: admission check failed", self.plan.id)
            return not self._stop.is_set()

    def _acquire_slot(self) -> bool:
        """Take a visit slot: wait while the limit in force (fixed, or the controller's) is reached."""
        controller = self._controller
        while not self._stop.is_set():
            with self._cond:
                busy = self._busy
            # the controller may probe the machine: never under _cond
            limit = controller.update(busy) if controller is not None else self.plan.concurrency
            with self._cond:
                if self._busy < limit:
                    self._busy += 1
                    return True
                self._cond.wait(0.1 if controller is not None else 0.2)
        return False

    def _release_slot(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def _drain(self) -> None:
        """Wait for every visit in flight (they honour the stop event and their own timeouts)."""
        limit = time.monotonic() + self.plan.visit_budget_s() + 5.0
        with self._cond:
            while self._in_flight:
                left = limit - time.monotonic()
                if left <= 0 and self._stop.is_set():
                    log.warning("patrol %s: visits still running after stop: %s", self.plan.id, sorted(self._in_flight))
                    return
                self._cond.wait(0.2)

    # ------------------------------------------------------------------ one visit
    def _visit(self, target: PatrolTarget, cycle: int, first_seq: int) -> None:
        t0 = time.monotonic()
        delivered = 0

        def deliver(frames: Sequence[Frame]) -> None:
            nonlocal delivered
            self._sink(target, frames)
            delivered += len(frames)

        try:
            result = self._visitor(target, self.plan, self._stop, first_seq, deliver)
            outcome = CameraOutcome.of_visit(
                result, camera_id=target.camera_id, cycle=cycle, duration_s=time.monotonic() - t0,
                frames=max(delivered, len(result.frames)),  # a pipeline's glance visit judges its frames itself
            )
        except Exception as exc:  # noqa: BLE001 - a failing sink or visitor fails this visit, not the run
            log.exception("patrol %s: visit of %s failed", self.plan.id, target.camera_id)
            outcome = CameraOutcome(
                camera_id=target.camera_id, cycle=cycle, ok=False, started_at=self._clock(),
                duration_s=time.monotonic() - t0, frames=delivered, error_kind="error",
                reason=f"error: {type(exc).__name__}: {exc}",
            )
        finally:
            self._release_slot()
        self._record(outcome, target, first_seq)

    def _record(self, outcome: CameraOutcome, target: PatrolTarget, first_seq: int) -> None:
        stopped = outcome.error_kind == "stopped"
        with self._cond:
            self._in_flight.pop(outcome.camera_id, None)
            st = self._state_of(target)
            # a failure points at the machine, not the camera, when the camera was fine on its
            # last visit, or when the analysis failed; dead and hung cameras never were fine
            overload = not outcome.ok and (outcome.error_kind == "error" or (st.seen_ok and st.failures == 0))
            st.seq = max(st.seq, first_seq - 1 + outcome.frames)
            if not stopped:
                self._last[outcome.camera_id] = outcome
                self._history.append(outcome)
                self._visits_total += 1
                count = self._open.get(outcome.cycle)
                if outcome.ok:
                    if count is not None:
                        count.ok += 1
                    st.failures, st.offline_since, st.reason, st.error_kind, st.seen_ok = 0, None, None, None, True
                else:
                    reason = outcome.reason or "failed"
                    if count is not None:
                        count.failed += 1
                        count.failed_visits.append(FailedVisit(outcome.camera_id, reason, outcome.error_kind))
                    st.failures += 1
                    st.reason, st.error_kind = reason, outcome.error_kind
                    if st.offline_since is None:
                        st.offline_since = self._clock()
                    st.retry_cycle = outcome.cycle + 1 + skip_cycles(st.failures, self.plan.retry_max_skip_cycles)
                    delay = retry_delay_s(st.failures, self.plan.open_timeout_s)
                    st.retry_mono, st.retry_at = time.monotonic() + delay, self._clock() + delay
                if count is not None:
                    self._close_cycle(count)
            self._cond.notify_all()
        if self._controller is not None and not stopped:
            self._controller.visit_done(outcome.ok, overload=overload)
        if self._on_outcome is not None and not stopped:
            try:
                self._on_outcome(outcome)
            except Exception:  # noqa: BLE001 - an observer must not break the run
                log.exception("patrol %s: on_outcome callback failed", self.plan.id)


_ENDED = (PatrolState.STOPPED, PatrolState.FINISHED)
_HISTORY = 4096  # visit outcomes kept per run (PatrolRun.outcomes)
