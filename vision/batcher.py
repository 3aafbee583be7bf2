"""Gathers the newest frame of every live camera into one inference batch, and tops batches
up with frames submitted by a lower-priority source (patrol visits).

Two kinds of work share one detector:

* **live** frames: the latest frame of every continuously watched camera, pushed by its
  reader (:meth:`Batcher.offer`) and taken oldest-waiting first (:meth:`Batcher.next_batch`).
  They always come first.
* **submitted** frames (:meth:`Batcher.submit` → ``Future[Detections]``): a patrol visit's
  keyframes. They take the batch slots the live cameras left free, and while any live camera
  is connected at most ``submit_max_per_batch`` of them ride in one batch, so a live frame
  that arrives while a batch runs waits for at most a small batch. A patrol visit blocks on
  its future, so a long queue slows the patrol down, never the live cameras.

The pipeline's inference loop (vision/pipeline.py) calls :meth:`Batcher.next_work`, runs the
detector on ``work.frames`` and hands the results back with :meth:`Work.resolve` (submitted
frames get their future set, live frames go on to post-processing). It takes work with
``hold=True``: a camera whose frame it took (inferred or coasted) gives no other until the
pipeline says that frame is done (:meth:`Batcher.done`, once analysed), so with several
inference workers a camera's frames are still analysed one after the other, in order, each
gated against the frame the model saw last; ``done(infer_until=ts)`` has the camera's frames
before frame time ``ts`` inferred whatever its gate says (an object the model has seen only
once). Readers push each
published frame with :meth:`Batcher.offer`, which replaces the camera's frame still waiting
and wakes the gatherer; the gatherer sleeps on one condition until then (no timer polls) and
never calls back into the readers: the frames it needs are already here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import numpy as np

from gridworker.streams.frame import DecodedFrame, Frame, rgb_image
from gridworker.streams.redact import get_logger
from gridworker.vision.coasting import UNSURE_INFER_S

log = get_logger(__name__)


class FrameGate(Protocol):
    """Decides whether a live camera's frame goes to the model (``vision.motion.MotionGate``)."""

    def should_infer(self, picture: av.VideoFrame, ts: float) -> bool: ...

    def crop_region(self) -> tuple[float, float, float, float] | None:
        """The part of the frame just let through that changed (None: look at all of it)."""
        ...

    def saw_whole(self, ts: float) -> None:
        """The frame of time ``ts`` whose part :meth:`crop_region` gave was inferred whole after all."""
        ...


@dataclass(frozen=True, slots=True)
class Coasted:
    """A live frame its camera's gate kept from the model (nothing moved where a rule looks):
    the pipeline analyses it with the camera's last detections, so tracks and rule clocks go on."""

    camera_id: str
    seq: int
    ts: float


@dataclass
class Work:
    """One batch for the detector: live frames first, then submitted ones.

    ``frames`` is what to run the detector on; after it ran, :meth:`resolve` sets the
    submitted frames' futures and returns the live frames with their detections.
    ``coasted``: live frames taken in the same gather that skip the detector.
    """

    live: list[Frame] = field(default_factory=list)
    submitted: list[tuple[Frame, Future[Any]]] = field(default_factory=list)
    coasted: list[Coasted] = field(default_factory=list)

    @property
    def frames(self) -> list[Frame]:
        return self.live + [f for f, _ in self.submitted]

    def __len__(self) -> int:
        return len(self.live) + len(self.submitted)

    def resolve(self, detections: Sequence[Any]) -> list[tuple[Frame, Any]]:
        """Set each submitted frame's future to its detections; return ``(frame, dets)`` of the live ones."""
        if len(detections) != len(self):
            err = RuntimeError(f"detector returned {len(detections)} results for {len(self)} frames")
            self.fail(err)
            raise err
        n = len(self.live)
        for (_, fut), dets in zip(self.submitted, detections[n:]):
            if not fut.done():
                fut.set_result(dets)
        return list(zip(self.live, detections[:n]))

    def fail(self, exc: BaseException) -> None:
        """The detector failed on this batch: the submitted frames' futures get the error."""
        for _, fut in self.submitted:
            if not fut.done():
                fut.set_exception(exc)


class Batcher:
    """Collects up to ``max_batch`` new frames, waiting at most ``deadline_s`` after the first.

    Each continuously watched camera's reader pushes its published frames (:meth:`offer`);
    the batcher keeps the newest one per camera (a newer frame replaces one not yet taken:
    the reader counts it as dropped). A gather takes the waiting frames oldest-first, so
    when more cameras have a frame than fit in a batch, none is starved; each camera gives
    at most one frame per batch. Pixels are converted to RGB here, once, only for frames
    that go into a batch.

    Nothing polls: a gatherer sleeps on one condition until a frame is offered, a frame is
    submitted, the deadline or the idle timeout passes, or the stop event is set and
    :meth:`wake` called. Submitted frames (:meth:`submit`) fill the slots the live frames
    leave free; see the module docstring. :meth:`next_batch` returns live frames only;
    :meth:`next_work` both. :meth:`wait_room` is the patrol's back-pressure: it blocks
    (on the same condition) while too many submitted frames wait.

    Args:
        max_batch: most frames per batch (the detector's batch size).
        deadline_s: once a batch has a live frame, wait at most this long for more.
        submit_max_per_batch: most submitted frames in a batch while at least one live
            camera is connected (default ``max(1, max_batch // 2)``); with no live camera
            submitted frames may fill the whole batch.
        live_window_s: a camera counts as connected while its last frame is at most this
            old (a batch with a frame of every connected camera goes without waiting).

    Example:
        >>> batcher = Batcher(max_batch=8, deadline_s=0.03)
        >>> batcher.next_batch(threading.Event(), idle_timeout_s=0.01)
        []
    """

    def __init__(
        self,
        max_batch: int = 8,
        deadline_s: float = 0.0,
        submit_max_per_batch: int | None = None,
        live_window_s: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if submit_max_per_batch is not None and submit_max_per_batch < 1:
            raise ValueError("submit_max_per_batch must be at least 1")
        self.max_batch = max_batch
        self.deadline_s = deadline_s
        self.submit_max_per_batch = min(max_batch, submit_max_per_batch or max(1, max_batch // 2))
        self.live_window_s = live_window_s
        # several inference workers may ask for batches at once; one gathers at a time
        self._lock = threading.Lock()
        # guards everything below; gatherers wait on it for news, the patrol's admission for
        # room. Held for field updates only (readers offer under it; never held while pixels
        # are converted or the detector runs).
        self._cond = threading.Condition(threading.Lock())
        self._cameras: set[str] = set()  # attached live cameras; frames of others are ignored
        self._gates: dict[str, FrameGate] = {}  # camera → its motion gate (cameras without one: every frame)
        self._ready: dict[str, DecodedFrame] = {}  # newest untaken frame per camera, oldest-waiting first
        self._held: set[str] = set()  # cameras with a frame taken with hold=True and not yet done
        self._force: dict[str, float] = {}  # camera → frames before this frame time are inferred whatever the gate says
        self._seen: dict[str, float] = {}  # camera → monotonic time of its last offered frame
        self._queue: deque[tuple[Frame, Future[Any]]] = deque()
        self._news = 0  # bumped by every offer, submit and wake: a gatherer sleeps until it moves
        self.submitted_total = 0
        self.submitted_done = 0

    # ------------------------------------------------------------------ live cameras
    def attach(self, camera_id: str, gate: FrameGate | None = None) -> None:
        """A continuously watched camera joins: its offered frames are taken from now on;
        with a ``gate``, only those it lets through go to the model (the others are coasted)."""
        with self._cond:
            self._cameras.add(camera_id)
            if gate is None:
                self._gates.pop(camera_id, None)
            else:
                self._gates[camera_id] = gate

    def forget(self, camera_id: str) -> None:
        """A camera left: its waiting frame is dropped and later offers are ignored (a frame
        its reader was publishing as it was detached). Never blocks on a gather in progress."""
        with self._cond:
            self._cameras.discard(camera_id)
            self._gates.pop(camera_id, None)
            self._ready.pop(camera_id, None)
            self._seen.pop(camera_id, None)
            self._held.discard(camera_id)
            self._force.pop(camera_id, None)
            self._news += 1
            self._cond.notify_all()

    def offer(self, frame: DecodedFrame) -> bool:
        """A reader published ``frame``: it replaces the camera's frame still waiting and wakes
        a gatherer. Returns True when it replaced one (the reader counts a drop). Safe from
        any thread; called by readers through ``CameraStream.on_frame``."""
        with self._cond:
            cam = frame.camera_id
            if cam not in self._cameras:
                return False
            replaced = cam in self._ready
            self._ready[cam] = frame  # a replaced frame keeps its place in the line
            self._seen[cam] = time.monotonic()
            self._news += 1
            self._cond.notify_all()
        return replaced

    def done(self, camera_id: str, infer_until: float | None = None) -> None:
        """The camera's frame taken with ``hold=True`` is done (analysed, or given up): its next
        frame may be taken. ``infer_until``: the camera's frames with an earlier frame time are
        inferred whatever its gate says (a later call may extend that, never shorten it).
        Safe from any thread."""
        with self._cond:
            self._held.discard(camera_id)
            if infer_until is not None and camera_id in self._cameras:
                self._force[camera_id] = max(infer_until, self._force.get(camera_id, infer_until))
            self._news += 1
            self._cond.notify_all()

    def release_all(self) -> None:
        """Every held camera may give frames again (the pipeline starts afresh: frames it held are gone)."""
        with self._cond:
            self._held.clear()
            self._news += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ wake-ups
    def wake(self) -> None:
        """Something changed (the stop event was set): gatherers look again. Cheap; safe from
        any thread."""
        with self._cond:
            self._news += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ submitted frames
    def submit(self, frame: Frame) -> Future[Any]:
        """Queue ``frame`` for inference behind the live cameras; the future gets its detections.

        Safe from any thread. The caller may ``cancel()`` the future while it still waits
        (a stopped patrol); a cancelled frame is dropped before it reaches the detector.
        """
        fut: Future[Any] = Future()
        with self._cond:
            self._queue.append((frame, fut))
            self.submitted_total += 1
            self._news += 1
            self._cond.notify_all()
        return fut

    def pending(self) -> int:
        """Submitted frames waiting for a batch (the patrol's back-pressure signal)."""
        with self._cond:
            return len(self._queue)

    def wait_room(self, limit: int, stop: threading.Event, timeout: float | None = None) -> bool:
        """Block until fewer than ``limit`` submitted frames wait (a batch took some), ``stop``
        is set (and :meth:`wake` called), or ``timeout`` passes. True when there is room."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(self._queue) >= limit:
                if stop.is_set():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # bounded, as every wait in the pipeline: a stop set without a wake() is still seen
                self._cond.wait(_MAX_WAIT_S if left is None else min(left, _MAX_WAIT_S))
            return not stop.is_set()

    def cancel_pending(self, exc: BaseException | None = None) -> int:
        """Fail every waiting submitted frame (service shutdown). Returns how many."""
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for _, fut in items:
            if exc is None:
                fut.cancel()
            elif fut.set_running_or_notify_cancel():
                fut.set_exception(exc)
        return len(items)

    def _take_submitted(self, room: int) -> list[tuple[Frame, Future[Any]]]:
        out: list[tuple[Frame, Future[Any]]] = []
        with self._cond:
            while self._queue and len(out) < room:
                frame, fut = self._queue.popleft()
                # False when the submitter cancelled it: drop it without running the detector
                if fut.set_running_or_notify_cancel():
                    out.append((frame, fut))
            self.submitted_done += len(out)
            self._cond.notify_all()  # room for the patrol's admission
        return out

    def _collect(self, batch: list[Frame], coasted: list[Coasted], taken: set[str], hold: bool) -> tuple[int, int]:
        """Add waiting frames to ``batch`` (or ``coasted``, when the camera's gate keeps them
        from the model; ``hold``: their cameras give no more until :meth:`done`); returns how
        many live cameras are connected, and how many of them could give a frame now (not held)."""
        picked: list[tuple[DecodedFrame, FrameGate | None, bool]] = []
        with self._cond:
            now = time.monotonic()
            live = [cam for cam, t in self._seen.items() if now - t <= self.live_window_s]
            for cam in list(self._ready):
                if len(batch) + len(picked) >= self.max_batch:
                    break
                if cam not in taken and cam not in self._held:  # a camera's next frame waits for the next batch
                    d = self._ready.pop(cam)
                    force = self._force.get(cam, d.ts)
                    if force - d.ts > 2 * UNSURE_INFER_S:  # the host clock was set back: the force is void, not an hour of ungated frames
                        del self._force[cam]
                        force = d.ts
                    picked.append((d, self._gates.get(cam), d.ts < force))
                    taken.add(cam)
                    if hold:
                        self._held.add(cam)
            free = sum(1 for cam in live if cam not in self._held or cam in taken)
        for d, gate, forced in picked:  # outside the lock: readers keep offering meanwhile
            # the gate judges every frame (an inferred one becomes its reference); a forced frame is inferred anyway
            region = None
            try:
                infer = gate is None or gate.should_infer(d.picture, d.ts)
                if infer and gate is not None:
                    region = gate.crop_region()
                infer = infer or forced
            except Exception:  # a gate that fails must not hold its camera for good: the model decides
                log.exception("camera %s: motion gate failed on frame %d; inferred", d.camera_id, d.seq)
                infer = True
            if not infer:
                coasted.append(Coasted(d.camera_id, d.seq, d.ts))
                continue
            try:
                batch.append(Frame(d.camera_id, d.seq, d.ts, rgb_image(d.picture), region))
            except (ValueError, av.FFmpegError):  # a picture swscale cannot convert: skip this frame only
                log.warning("camera %s: frame %d could not be converted; skipped", d.camera_id, d.seq)
                if hold:
                    self.done(d.camera_id)
        return len(live), free

    def next_batch(self, stop: threading.Event, idle_timeout_s: float = 0.5) -> list[Frame]:
        """Block until a batch is ready, ``stop`` is set, or ``idle_timeout_s`` passes with no frame.

        Safe to call from several threads: each frame goes to exactly one batch.
        """
        with self._lock:
            return self._next_batch(stop, idle_timeout_s, with_submitted=False, hold=False)[0]  # (coasted frames are dropped)

    def next_work(self, stop: threading.Event, idle_timeout_s: float = 0.5, *, hold: bool = False) -> Work:
        """Like :meth:`next_batch`, topped up with submitted frames.

        Live frames are gathered exactly as in :meth:`next_batch`; the free slots then take
        the oldest submitted frames (at most ``submit_max_per_batch`` while a live camera is
        connected). When no live frame is ready but submitted frames wait, they go at once.
        ``hold``: each camera with a frame in the work (inferred or coasted) gives no other
        until :meth:`done` is called for it (the pipeline, once it analysed the frame).
        """
        with self._lock:
            live, coasted, n_sources = self._next_batch(stop, idle_timeout_s, with_submitted=True, hold=hold)
            room = self.max_batch - len(live)
            if n_sources:
                room = min(room, self.submit_max_per_batch)
            submitted = self._take_submitted(room) if room > 0 and not stop.is_set() else []
            return Work(live, submitted, coasted)

    def _next_batch(
        self, stop: threading.Event, idle_timeout_s: float, *, with_submitted: bool, hold: bool
    ) -> tuple[list[Frame], list[Coasted], int]:
        batch: list[Frame] = []
        coasted: list[Coasted] = []
        taken: set[str] = set()
        t0 = time.monotonic()
        first_at: float | None = None
        n_sources = 0
        while not stop.is_set():
            with self._cond:
                news = self._news  # a frame published from here on wakes the wait below
            n_sources, free = self._collect(batch, coasted, taken, hold)
            now = time.monotonic()
            if taken and first_at is None:
                first_at = now
            # full, or every camera that can give a frame already has it in: waiting longer gains nothing
            if len(batch) >= self.max_batch or (taken and len(taken) >= free):
                break
            wait_until = first_at + self.deadline_s if first_at is not None else t0 + idle_timeout_s
            if now >= wait_until:
                break
            with self._cond:
                # nothing live is ready but submitted frames wait: run them now (they fill free time)
                if with_submitted and not batch and self._queue:
                    break
                if self._news == news:
                    self._cond.wait(min(wait_until - now, _MAX_WAIT_S))
        return batch, coasted, n_sources


#: Longest single wait on the condition: a stop event set by code that does not call
#: :meth:`Batcher.wake` is still noticed within this (a bound, not a poll: every frame,
#: submission and stop wakes the waiter at once).
_MAX_WAIT_S = 0.5
