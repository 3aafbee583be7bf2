"""Evidence clips for incidents: ``[opened_at - pre_s, opened_at + post_s]`` cut from the
camera's packet ring once ``post_s`` has passed, remuxed to ``<clips_dir>/<id>.mp4``.

The recorder is an ``IncidentManager.on_open`` callback. The callback only queues a job
(the pipeline's post-processing thread must not wait ``post_s``); one timer thread cuts,
writes and records each clip when it is due. Clip writing is a remux (no decoding), a few
milliseconds for a 10 s clip.

The incident never depends on its clip: when no clip can be made (the clip disk is full or
unwritable, less than ``min_free_bytes`` is free, the camera buffered nothing or is gone, an
earlier run ended before the clip was due: :meth:`ClipRecorder.left_behind`) the incident stays
as it is and its record says why the clip is missing (``IncidentStore.clip_missing``;
``GET /incidents/{id}`` shows it as ``clip_missing``).
"""

from __future__ import annotations

import errno
import heapq
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gridworker.streams.evidence import PacketRing, write_mp4

from .store import Incident, IncidentClip
from .trail import TrackTrail

__all__ = ["ClipBook", "ClipRecorder"]

log = logging.getLogger(__name__)

RingLookup = Callable[[str], PacketRing | None]

LEFT_BEHIND = "the service stopped before the clip was cut"
"""Why an incident has no clip when the run that queued it ended without cutting it."""


class ClipBook(Protocol):
    """Where a recorder records its clips: the :class:`IncidentStore` (a cluster worker hands
    them to the case service instead, ``cluster/clips.py``)."""

    def add_clip(
        self, incident_id: int, *, path: str, size_bytes: int, duration_s: float, offset_s: float, created_at: float,
        tracks: list[dict[str, Any]] | None = None,
    ) -> IncidentClip: ...

    def clip_missing(self, incident_id: int, reason: str, *, at: float) -> bool: ...


@dataclass(order=True, slots=True)
class _Job:
    due: float
    incident_id: int
    camera_id: str = field(compare=False)
    opened_at: float = field(compare=False)
    track_ids: tuple[int, ...] = field(default=(), compare=False)


class ClipRecorder:
    """Cuts an evidence clip for every incident opened on a camera that has a packet ring.

    Args:
        store: where clips are recorded (``incident_clips``).
        file_name: the clip's file name in ``clips_dir``, from the incident id (``<id>.mp4``).
        ring_for: camera id → its :class:`PacketRing`, or None (camera removed, or its
            clips are off). Looked up when the clip is cut, not when the incident opens.
        clips_dir: folder of the MP4 files (created when needed).
        pre_s: seconds before ``opened_at`` in the clip (the start moves back to the
            previous keyframe, so up to one GOP more).
        post_s: seconds after ``opened_at``; the clip is cut that long after the opening.
        grace_s: extra wait for the last packets of the window to reach the ring.
        clock: wall clock (``opened_at`` is wall-clock time).
        max_pending: jobs beyond this many are refused (logged); protects memory when a
            flood of incidents opens at once.
        min_free_bytes: no clip is written while the clip disk has less free space than
            this (the incident's record says so); the database may share the disk.
        trail: the cameras' recent tracked boxes; with it, each clip is stored with its
            triggering objects' boxes over the clip (``details["track_ids"]``), which the
            console draws over the video (the clip itself is never re-encoded).
        highlighted: incident id → the track ids it highlights when its clip is cut
            (``IncidentManager.highlighted``: the ids its objects had while it was open, an ID
            switch or a crowd's new members included), or None when it is not known; without
            it (or when it fails) the ids stored when the incident opened are used.

    Example::

        recorder = ClipRecorder(store, service_ring_lookup, "var/clips", pre_s=5, post_s=5)
        manager.on_open.append(recorder); recorder.start()
        ...; recorder.stop()   # pending clips are cut with what the rings hold
    """

    def __init__(
        self,
        store: ClipBook,
        ring_for: RingLookup,
        clips_dir: str | Path,
        *,
        pre_s: float = 5.0,
        post_s: float = 5.0,
        grace_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        max_pending: int = 1000,
        min_free_bytes: int = 0,
        trail: TrackTrail | None = None,
        file_name: Callable[[int], str] = "{}.mp4".format,
        highlighted: Callable[[int], Sequence[int] | None] | None = None,
    ) -> None:
        if pre_s < 0 or post_s < 0:
            raise ValueError("pre_s and post_s must be >= 0")
        self.store = store
        self.ring_for = ring_for
        self.clips_dir = Path(clips_dir).resolve()
        self.pre_s = float(pre_s)
        self.post_s = float(post_s)
        self.grace_s = float(grace_s)
        self.clock = clock
        self.max_pending = max_pending
        self.min_free_bytes = int(min_free_bytes)
        self.trail = trail
        self.file_name = file_name
        self.highlighted = highlighted
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.skipped = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the timer thread (again after a stop)."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="gw-clips", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cut every pending clip now, with what the rings hold, then stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("clip recorder did not finish its %d pending clip(s) within %.0f s", self.pending, timeout)
                return
        self._thread = None
        self._drain()  # jobs queued while no thread ran (never started, or after the join)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._jobs)

    # ------------------------------------------------------------------ the callback
    def __call__(self, incident: Incident) -> None:
        """``IncidentManager.on_open`` hook: queue the incident's clip (never waits for it)."""
        if self.ring_for(incident.camera_id) is None:
            log.debug("incident %s: camera %s keeps no packet ring, no clip", incident.id, incident.camera_id)
            return
        ids = incident.details.get("track_ids") if isinstance(incident.details, dict) else None
        track_ids = tuple(int(i) for i in ids if isinstance(i, int)) if isinstance(ids, list) else ()
        job = _Job(incident.opened_at + self.post_s + self.grace_s, incident.id, incident.camera_id, incident.opened_at, track_ids)
        with self._cond:
            full = len(self._jobs) >= self.max_pending
            if not full:
                heapq.heappush(self._jobs, job)
                self._cond.notify_all()
        if full:
            log.warning("incident %s: %d clips already pending, no clip for this one", incident.id, self.max_pending)
            self._missing(job.incident_id, "too many clips were waiting to be cut when the incident opened")

    def left_behind(self, incidents: Iterable[Incident]) -> int:
        """At start: record why the clips of incidents an earlier run queued but never cut (it
        crashed, or the power went) will never exist; the ring they were due from is gone.

        ``incidents`` are the stored incidents that have no clip and no reason for lacking one
        and opened before this run (``IncidentStore.open_without_clip``); those on cameras that
        keep no packet ring (clips off for the camera, IoT devices) never had a clip queued
        and are left alone, as are clips still pending in this recorder. Returns how many
        were recorded.
        """
        with self._cond:
            pending = {j.incident_id for j in self._jobs}
        missed = [i for i in incidents if i.id not in pending and self.ring_for(i.camera_id) is not None]
        for inc in missed:
            log.info("incident %s: the service stopped before its clip was cut, no clip", inc.id)
            self._missing(inc.id, LEFT_BEHIND)
        return len(missed)

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._jobs and (self._stopping or self._jobs[0].due <= self.clock()):
                        job = heapq.heappop(self._jobs)
                        break
                    if self._stopping:
                        return
                    wait = None if not self._jobs else max(0.0, self._jobs[0].due - self.clock())
                    self._cond.wait(wait)
            self._record(job)

    def _drain(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    return
                job = heapq.heappop(self._jobs)
            self._record(job)

    def _record(self, job: _Job) -> IncidentClip | None:
        try:
            return self._cut_and_store(job)
        except Exception as exc:  # noqa: BLE001 - one failed clip must not stop the others
            log.exception("incident %s: evidence clip failed", job.incident_id)
            self._missing(job.incident_id, f"the clip could not be made ({type(exc).__name__})")
            return None

    def _missing(self, incident_id: int, reason: str) -> None:
        """Count a clip that will not exist and record why on its incident (never raises)."""
        self.skipped += 1
        try:
            self.store.clip_missing(incident_id, reason, at=self.clock())
        except Exception:  # noqa: BLE001 - the database may be the very thing that failed
            log.exception("incident %s: could not record why it has no clip (%s)", incident_id, reason)

    def disk_problem(self) -> str | None:
        """Why no clip can be written now (the folder is unusable, or the disk is below
        ``min_free_bytes``), or None. The reason names no path (viewers read it)."""
        try:
            self.clips_dir.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.clips_dir).free
        except OSError as exc:
            log.error("clip folder %s is not usable: %s", self.clips_dir, exc)
            return f"the clip folder is not usable ({_why(exc)})"
        if free < self.min_free_bytes:
            log.error("clip disk of %s has %d bytes free, below the %d kept free: no clip", self.clips_dir, free, self.min_free_bytes)
            return f"the clip disk is full ({free / 1e6:.0f} MB free, {self.min_free_bytes / 1e6:.0f} MB must stay free)"
        return None

    def _cut_and_store(self, job: _Job) -> IncidentClip | None:
        ring = self.ring_for(job.camera_id)
        if ring is None:
            log.info("incident %s: camera %s is gone, no clip (the incident stays)", job.incident_id, job.camera_id)
            self._missing(job.incident_id, "the camera was removed before its clip was cut")
            return None
        start, end = job.opened_at - self.pre_s, job.opened_at + self.post_s
        clip = ring.cut(start, end)
        if clip is None:
            self._missing(job.incident_id, "the camera had no video buffered around the opening")
            log.warning(
                "incident %s: camera %s buffered nothing between %.1f and %.1f, no clip",
                job.incident_id,
                job.camera_id,
                start,
                end,
            )
            return None
        problem = self.disk_problem()
        if problem is not None:
            self._missing(job.incident_id, problem)
            return None
        try:
            path = write_mp4(clip, self.clips_dir / self.file_name(job.incident_id))
        except OSError as exc:  # ENOSPC and other file-system failures (PyAV's own OSError too)
            log.error("incident %s: clip not written to %s: %s", job.incident_id, self.clips_dir, exc)
            self._missing(job.incident_id, f"the clip could not be written ({_why(exc)})")
            return None
        tracks = None
        track_ids = self._track_ids(job) if self.trail is not None else ()
        if self.trail is not None and track_ids:
            points = self.trail.path(job.camera_id, clip.start_ts, clip.start_ts + clip.duration_s, track_ids, start_ts=clip.start_ts)
            tracks = [p.as_json() for p in points]
        try:
            size = path.stat().st_size
            stored = self.store.add_clip(
                job.incident_id,
                path=str(path),
                size_bytes=size,
                duration_s=round(clip.duration_s, 3),
                offset_s=round(job.opened_at - clip.start_ts, 3),
                created_at=self.clock(),
                tracks=tracks,
            )
        except BaseException:
            path.unlink(missing_ok=True)  # a file no row names would never be served nor pruned
            raise
        self.written += 1
        log.info(
            "incident %s: clip %s (%.1f s from %+.1f s, %d bytes)",
            job.incident_id,
            path.name,
            clip.duration_s,
            clip.start_ts - job.opened_at,
            size,
        )
        return stored


    def _track_ids(self, job: _Job) -> tuple[int, ...]:
        """The ids whose boxes the clip carries: the incident's as they are now (``highlighted``),
        else those it opened with."""
        if self.highlighted is None:
            return job.track_ids
        try:
            now = self.highlighted(job.incident_id)
        except Exception:  # noqa: BLE001 - the database may be down: the clip still comes, with the opening's ids
            log.exception("incident %s: its current track ids could not be read; the clip carries those it opened with", job.incident_id)
            return job.track_ids
        return job.track_ids if now is None else tuple(int(i) for i in now)


def _why(exc: OSError) -> str:
    """A short reason for a file-system error, without the path (``No space left on device``)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on the clip disk"
    return exc.strerror or type(exc).__name__
