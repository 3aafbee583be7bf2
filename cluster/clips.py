"""Evidence clips of cluster incidents, through a folder every machine mounts (``evidence.clips_dir``).

A camera's packet ring lives on the worker that reads it; the case service, which opens the
incidents, has none. So the worker cuts the clip and the case service records it:

* Worker side, :class:`ClipCutter`: when a continuous camera's frame may open an incident (a
  verdict key became active: the frame whose observation carries the picture), the observation
  publisher asks for its clip. The single-process :class:`~gridworker.incidents.clips.ClipRecorder`
  does the work unchanged (``clip_pre_s`` before the frame to ``clip_post_s`` after, cut once
  that much has passed, remuxed without re-encoding, written under a temporary name and renamed
  into place); it writes ``<clips_dir>/cluster/<worker>/<observation id>.mp4`` and hands the
  result to this class instead of a database, which publishes a small clip reference
  (:func:`~gridworker.cluster.wire.encode_clip`: the path relative to the clips folder, size,
  duration, offset; or why there is no clip) on the observations stream, after the file is
  complete. Its id is ``<observation id>.clip``: de-duplicated like every observation.
* Case side, :class:`ClipAttacher`: the observation consumer hands it each clip reference. The
  reference is hostile: its path must be exactly the one derived from its worker and observation,
  and :func:`resolve_clip` checks it on the file system (relative, no ``.``/``..``, a bounded
  character set, resolving inside this machine's clips folder, a regular file and not a link, of
  the declared size under :data:`~gridworker.cluster.wire.MAX_CLIP_BYTES`). The incidents that
  observation opened (same camera, opened at the frame's time, the frame's ``frame_seq``) get the
  clip (``incident_clips``: ``GET /incidents/{id}/clip.mp4`` serves it as any clip); a second
  incident of the same frame gets a hard link (a copy where links are not supported) so that
  retention deleting one clip leaves the other. A reference whose observation opened no
  incident is logged and its file deleted, unless a clip record points at that file (a forged
  or replayed reference never deletes another incident's clip). The observation consumer checks
  a clip reference's lease token and sender before this class sees it (``cluster/observations.py``).

Why a shared folder and not the JetStream object store: clips are up to a few megabytes each,
the case service serves and prunes them as files already (retention, the clip API), and a
folder costs one mount; the object store would keep every clip twice (the bucket, then the
case service's copy) and push multi-megabyte objects through the one NATS server.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

from sqlalchemy import select

from gridworker.incidents.clips import ClipRecorder, RingLookup
from gridworker.incidents.store import ClipRow, Incident, IncidentClip, IncidentQuery, IncidentStore

from .wire import MAX_CLIP_BYTES, Observation, WireClip, WireError, encode_clip

__all__ = ["CLUSTER_DIR", "ClipAttacher", "ClipCutter", "RecorderOptions", "clip_relpath", "resolve_clip"]

log = logging.getLogger(__name__)

#: the workers' clips live below this folder of the clips folder, one folder per worker
CLUSTER_DIR = "cluster"
_SAFE_PATH = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+){0,7}")


def clip_relpath(worker_id: str, obs_id: str) -> str:
    """Where a worker writes the clip of observation ``obs_id``, relative to the clips folder."""
    return f"{CLUSTER_DIR}/{worker_id}/{obs_id}.mp4"


def resolve_clip(clips_dir: str | Path, relpath: str, *, size_bytes: int | None = None, max_bytes: int = MAX_CLIP_BYTES) -> Path:
    """The clip file ``relpath`` names inside ``clips_dir``, checked (the path comes off the wire).

    Raises:
        WireError: the path is absolute, has ``.``/``..`` parts or characters outside
            ``[A-Za-z0-9_.-/]``, resolves outside ``clips_dir`` (a link out), is missing, is not a
            regular file (a folder, a device, a link), is over ``max_bytes``, or its size is not
            ``size_bytes``. The reason names no path.

    Example:
        >>> resolve_clip("var/clips", "../etc/passwd")
        Traceback (most recent call last):
        ...
        gridworker.cluster.wire.WireError: clip path escapes the clips folder
    """
    if not relpath or relpath.startswith("/") or "\\" in relpath or "\x00" in relpath:
        raise WireError("clip path not relative")
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise WireError("clip path escapes the clips folder")
    if _SAFE_PATH.fullmatch(relpath) is None:
        raise WireError("clip path has characters outside the allowed set")
    root = Path(os.path.realpath(clips_dir))
    named = root.joinpath(*parts)
    real = Path(os.path.realpath(named))
    if real == root or not real.is_relative_to(root):
        raise WireError("clip path outside the clips folder")
    try:
        st = os.lstat(named)  # the path as named: a link is refused even when it points inside
    except FileNotFoundError:
        raise WireError("clip file missing") from None
    except OSError as exc:
        raise WireError("clip file unreadable", type(exc).__name__) from None
    if not stat.S_ISREG(st.st_mode):
        raise WireError("clip is not a regular file")
    if st.st_size > max_bytes:
        raise WireError("clip file too large", f"{st.st_size} bytes, cap {max_bytes}")
    if size_bytes is not None and st.st_size != size_bytes:
        raise WireError("clip size differs from its reference")
    return real


# -- worker side ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    obs_id: str
    camera_id: str
    token: int
    opened_at: float
    frame_seq: int


class RecorderOptions(TypedDict, total=False):
    """The :class:`ClipRecorder` options a :class:`ClipCutter` hands on as they are (left out: the
    recorder's defaults)."""

    pre_s: float
    post_s: float
    grace_s: float
    min_free_bytes: int
    max_pending: int
    clock: Callable[[], float]


class ClipCutter:
    """The worker's clips: a :class:`ClipRecorder` whose results become clip references (module docstring).

    Args:
        clips_dir: the shared clips folder (``evidence.clips_dir``, the same mount on every machine).
        worker_id: this worker (its clips go to ``cluster/<worker_id>/``).
        ring_for: camera id -> its packet ring, or None (camera gone or clips off for it).
        send: queues one message (id, bytes) on the observations stream, never blocking.
        recorder: the recorder's :class:`RecorderOptions` (its ``clock`` also times the references).

    Example::

        cutter = ClipCutter(Path("/mnt/clips"), "w1", registry.packet_ring, sink.send_later)
        cutter.start(); cutter.request("cam1", "w1.ab12.7", 3, frame.ts, frame.seq); cutter.stop(5)
    """

    def __init__(
        self, clips_dir: str | Path, worker_id: str, ring_for: RingLookup, send: Callable[[str, bytes], None], **recorder: Unpack[RecorderOptions]
    ) -> None:
        self.worker_id = worker_id
        self._send = send
        self._folder = f"{CLUSTER_DIR}/{worker_id}"
        self._requests: dict[int, _Request] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.recorder = ClipRecorder(self, ring_for, Path(clips_dir) / self._folder, file_name=self._file_name, **recorder)
        self._clock = self.recorder.clock
        self._max_requests = 2 * self.recorder.max_pending
        self.sent = 0
        self.missing = 0

    def start(self) -> None:
        self.recorder.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cut the pending clips with what the rings hold now, then stop (their references are queued)."""
        self.recorder.stop(timeout)

    def request(self, camera_id: str, obs_id: str, token: int, opened_at: float, frame_seq: int) -> None:
        """The frame of observation ``obs_id`` may open an incident: cut its clip when due (never waits)."""
        if self.recorder.ring_for(camera_id) is None:
            return  # the camera keeps no ring (clips off for it): no clip, as in one process
        n = next(self._ids)
        with self._lock:
            self._requests[n] = _Request(obs_id, camera_id, token, opened_at, frame_seq)
            while len(self._requests) > self._max_requests:  # requests the recorder dropped without a word
                self._requests.pop(next(iter(self._requests)))
        stand_in = Incident(
            id=n, camera_id=camera_id, camera_name="", site="", zone_id="", rule_id="", type="", status="open", opened_at=opened_at,
            updated_at=opened_at, closed_at=None, peak_count=0, observations=0, summary="",
        )
        self.recorder(stand_in)

    # -- ClipBook: what the recorder reports ---------------------------------------------
    def add_clip(
        self, incident_id: int, *, path: str, size_bytes: int, duration_s: float, offset_s: float, created_at: float,
        tracks: list[dict[str, Any]] | None = None,
    ) -> IncidentClip:
        req = self._take(incident_id)
        if req is None:
            raise LookupError(f"clip job {incident_id} is not known")  # the recorder deletes the file
        self._publish(req, path=f"{self._folder}/{Path(path).name}", size_bytes=size_bytes, duration_s=duration_s, offset_s=offset_s)
        self.sent += 1
        return IncidentClip(incident_id, path, size_bytes, duration_s, offset_s, created_at)

    def clip_missing(self, incident_id: int, reason: str, *, at: float) -> bool:
        req = self._take(incident_id)
        if req is None:
            return False
        self._publish(req, missing=reason)
        self.missing += 1
        return True

    # -- internals ------------------------------------------------------------------------
    def _file_name(self, job_id: int) -> str:
        with self._lock:
            req = self._requests.get(job_id)
        return Path(clip_relpath(self.worker_id, req.obs_id)).name if req is not None else f".orphan-{job_id}.mp4"

    def _take(self, job_id: int) -> _Request | None:
        with self._lock:
            return self._requests.pop(job_id, None)

    def _publish(self, req: _Request, **body: Any) -> None:
        msg_id = f"{req.obs_id}.clip"
        data = encode_clip(
            req.camera_id, obs_id=msg_id, worker=self.worker_id, token=req.token, sent_at=self._clock(), of=req.obs_id,
            opened_at=req.opened_at, frame_seq=req.frame_seq, **body,
        )
        self._send(msg_id, data)


# -- case side --------------------------------------------------------------------------------


class ClipAttacher:
    """The case service's side: records a clip reference's clip for the incidents its observation opened.

    Args:
        store: the incidents.
        clips_dir: this machine's mount of the shared clips folder.

    Example::

        attacher = ClipAttacher(service.store, Path("/mnt/clips"))
        ObservationConsumer(link, service.incidents, service.db, on_clip=attacher.attach)
    """

    def __init__(self, store: IncidentStore, clips_dir: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clips_dir = Path(clips_dir)
        self._clock = clock
        self.attached = 0
        self.unclaimed = 0
        #: unclaimed references whose file was kept: a clip record points at it
        self.kept = 0

    def attach(self, obs: Observation) -> list[int]:
        """Record the clip (or why there is none) on the incidents its observation opened;
        returns their ids ([] when it opened none: the file is deleted).

        Raises:
            WireError: the reference or its file is refused (the incidents then say why they have no clip).
        """
        ref = obs.clip
        if ref is None:
            raise WireError("not a clip reference")
        if ref.path is not None and ref.path != clip_relpath(obs.worker, ref.of):
            raise WireError("clip path not named after its observation")
        incidents = self._opened_by(obs.camera_id, ref)
        now = self._clock()
        if not incidents:
            self.unclaimed += 1
            log.info("clip of observation %s (%s): it opened no incident; not kept", ref.of, obs.camera_id)
            if ref.path is not None:
                self._discard(ref.path, ref.size_bytes)
            return []
        if ref.missing is not None:
            for inc in incidents:
                self.store.clip_missing(inc.id, ref.missing, at=now)
            return [inc.id for inc in incidents]
        assert ref.path is not None
        try:
            first = resolve_clip(self.clips_dir, ref.path, size_bytes=ref.size_bytes)
        except WireError as exc:
            for inc in incidents:
                self.store.clip_missing(inc.id, f"the worker's clip was refused ({exc.reason})", at=now)
            raise
        for k, inc in enumerate(incidents):
            path = first if k == 0 else self._second_copy(first, inc.id)
            self.store.add_clip(
                inc.id, path=str(path), size_bytes=ref.size_bytes, duration_s=ref.duration_s, offset_s=ref.offset_s, created_at=now
            )
            self.attached += 1
            log.info("incident %s: clip %s from worker %s (%d bytes)", inc.id, path.name, obs.worker, ref.size_bytes)
        return [inc.id for inc in incidents]

    def _opened_by(self, camera_id: str, ref: WireClip) -> list[Incident]:
        """The incidents the referenced frame opened: its camera, opened at its time, its frame_seq."""
        found, _ = self.store.list(IncidentQuery(camera_id=camera_id, since=ref.opened_at, until=ref.opened_at, limit=100))
        return sorted((i for i in found if i.details.get("frame_seq") == ref.frame_seq), key=lambda i: i.id)

    def _recorded(self, path: Path) -> bool:
        """Whether a clip record points at ``path`` (a resolved file of the clips folder): one
        query for that exact path, as :meth:`attach` stores it (resolved), in the database instead of
        every clip's path loaded and resolved here on the consumer thread."""
        with self.store.db.transaction() as s:
            return s.scalar(select(ClipRow.incident_id).where(ClipRow.path == str(path)).limit(1)) is not None

    @staticmethod
    def _second_copy(first: Path, incident_id: int) -> Path:
        """The clip under a name of its own for another incident of the same frame (retention deletes per incident)."""
        other = first.with_name(f"{first.stem}.{incident_id}.mp4")
        try:
            os.link(first, other)
        except FileExistsError:
            pass  # applied again (redelivered): made the first time
        except OSError:  # a file system without hard links
            shutil.copyfile(first, other)
        return other

    def _discard(self, relpath: str, size_bytes: int) -> None:
        """Delete an unclaimed clip's file, unless any clip record points at it."""
        try:
            path = resolve_clip(self.clips_dir, relpath, size_bytes=size_bytes)
            if self._recorded(path):
                self.kept += 1
                log.warning("unclaimed clip not deleted: an incident's clip record points at it")
                return
            os.unlink(path)
        except WireError as exc:
            log.debug("unclaimed clip not deleted: %s", exc)
        except OSError as exc:
            log.warning("unclaimed clip not deleted: %s", type(exc).__name__)
