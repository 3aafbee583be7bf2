"""Retention: evidence clips (by age and by total size), settled outbox messages and old audit
rows are deleted, so the disk does not grow for ever.

What may go, and what never does:

- **Clips** older than ``clips_max_age_days``; then, while the clips add up to more than
  ``clips_max_total_mb``, the oldest. The file goes first, then the row, and the incident's
  record says why its clip is gone (``IncidentStore.remove_clip``): ``GET /incidents/{id}``
  shows ``clip_missing``, ``GET /incidents/{id}/clip.mp4`` answers 404 with the reason. Stray
  files in the clip folder (a clip no row names, a ``.part`` left by a crash) go after an hour.
  A clip row whose file is missing on two passes in a row is forgotten; while the clip volume
  looks away (its folder unreadable, no clip file visible) nothing is forgotten or swept, and a
  forgotten clip's file that comes back stays (:class:`MissingClips`).
- **Outbox messages** (``outbox`` rows and their ``deliveries``) once they are settled: every
  destination has delivered the message more than ``outbox_delivered_max_age_days`` ago, or
  dead-lettered it more than ``outbox_dead_max_age_days`` ago (dead letters are kept longer:
  an operator replays them from ``/forwarding/dead``). A message still pending anywhere is
  never deleted, however old; so is one with a dead letter while dead letters are kept
  (``outbox_dead_max_age_days: null``). Each deletion re-checks the delivery's state, so a
  dead letter replayed meanwhile stays. The newest message always stays: its id is where the
  next one's counts on (SQLite gives an emptied table's next row id 1 again, and event-stream
  clients resuming after id 3, GB/T 28181 SNs and ``X-Gridworker-Delivery`` would repeat).
- **Audit rows** older than ``audit_max_age_days`` of work orders that are finished (closed or
  rejected); a case still running keeps its whole history.

``null`` for an age or size keeps that kind for ever. ``run_retention`` is one pass (tests call
it directly); ``RetentionWorker`` runs it every ``interval_s`` on a thread of its own, started
and stopped with the service.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field, fields
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, delete, exists, func, not_, or_, select

from gridworker.cases.photos import PhotoRetention  # photos of cases (issue 15)
from gridworker.cases.workorders import TERMINAL, AuditRow, WorkOrderRow
from gridworker.delivery.outbox import DEAD, DELIVERED, DeliveryRow, OutboxRow
from gridworker.periodic import Periodic

from .db import Database, affected_rows
from .store import IncidentClip, IncidentStore

__all__ = ["MissingClips", "RetentionConfig", "RetentionReport", "RetentionWorker", "prune_audit", "prune_clips", "prune_outbox", "run_retention"]

log = logging.getLogger(__name__)

DAY_S = 86_400.0
STRAY_AGE_S = 3600.0  # a file younger than this may be a clip being written or just recorded
_CLIP_NAME = re.compile(r"^\d+\.mp4$")  # what ClipRecorder writes: <incident id>.mp4
_PART_NAME = re.compile(r"^\.[A-Za-z0-9_.:-]+\.mp4\.\d+\.\d+\.part$")  # write_mp4's temporary name
_CLUSTER_DIR = "cluster"  # cluster/clips.py CLUSTER_DIR: clips_dir/cluster/<worker>/<observation id>.mp4
_CLUSTER_CLIP_NAME = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]*\.mp4$")


class RetentionConfig(BaseModel):
    """``retention:`` in the service config. An age or size of ``null`` keeps that kind for ever."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    interval_s: float = Field(3600.0, gt=0.0, le=7 * DAY_S, description="Seconds between two retention passes.")
    clips_max_age_days: float | None = Field(30.0, gt=0.0, le=36_500.0, description="Evidence clips older than this are deleted.")
    clips_max_total_mb: float | None = Field(
        20_000.0, gt=0.0, le=100_000_000.0, description="The oldest clips are deleted while all of them add up to more than this (megabytes)."
    )
    outbox_delivered_max_age_days: float | None = Field(
        7.0, gt=0.0, le=36_500.0, description="Outbox messages every destination delivered longer ago than this are deleted."
    )
    outbox_dead_max_age_days: float | None = Field(
        30.0,
        gt=0.0,
        le=36_500.0,
        description="Dead letters older than this no longer keep their message (null: they keep it for ever).",
    )
    audit_max_age_days: float | None = Field(
        365.0, gt=0.0, le=36_500.0, description="Audit rows older than this of closed or rejected work orders are deleted."
    )


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one pass deleted."""

    clips_expired: int = 0
    clips_over_size: int = 0
    clip_bytes_freed: int = 0
    stray_files: int = 0
    outbox_rows: int = 0
    deliveries: int = 0
    audit_rows: int = 0
    photos: int = 0  # photos of cases (issue 15)
    photo_bytes_freed: int = 0
    clip_volume_away: int = 0  # 1: the clip volume looked away, nothing was forgotten or swept (MissingClips)

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


# -- clips ---------------------------------------------------------------------------------
def _days(seconds: float) -> str:
    return f"{seconds / DAY_S:g} day" + ("" if seconds == DAY_S else "s")


def _unlink(path: str) -> bool:
    """Delete a clip file (gone already counts as deleted). Only ``.mp4`` files, whatever a
    row says."""
    if not path.endswith(".mp4"):
        log.error("retention: clip path %s is not an .mp4 file; left alone", path)
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("retention: cannot delete clip file %s: %s", path, exc)
        return False
    return True


def _drop(store: IncidentStore, clip: IncidentClip, reason: str, now: float) -> bool:
    """File first, then the row: a crash in between leaves a row whose file is gone (the API
    says so, and the next pass deletes the row), never a file no row names."""
    if not _unlink(clip.path):
        return False
    store.remove_clip(clip.incident_id, reason, at=now)
    return True


FORGOTTEN = "the clip file was deleted outside the service"


@dataclass(eq=False)
class MissingClips:
    """What retention passes saw of clip rows whose file was not there.

    A row is forgotten (removed, its incident saying :data:`FORGOTTEN`) only when its file was
    missing on the previous pass too. When the clip folder cannot be read, or no clip file at
    all is visible while rows name some, the clip volume is taken for away (a late network
    mount, a dropped disk): that pass forgets nothing and sweeps no stray file. Rows whose file
    is missing never count against the size cap. :class:`RetentionWorker` keeps one across its
    passes; a pass given none forgets nothing.
    """

    suspects: set[int] = field(default_factory=set)  # incident ids whose file the last judged pass missed
    away_passes: int = 0  # passes that found the clip volume away
    away: bool = False  # the last pass did

    def judge(self, missing: dict[int, IncidentClip], away: bool) -> list[IncidentClip]:
        """Note one pass's findings; returns the clips to forget now."""
        self.away = away
        if away:
            self.away_passes += 1
            return []
        due = [clip for clip_id, clip in missing.items() if clip_id in self.suspects]
        self.suspects = set(missing)
        return due


def _readable(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            next(entries, None)
    except OSError:
        return False
    return True


def _missing_clips(store: IncidentStore, clips_dir: Path | None, batch: int) -> tuple[dict[int, IncidentClip], bool]:
    """The clips whose file is not there (by incident id), and whether the clip volume looks away."""
    if clips_dir is not None and not _readable(clips_dir):
        return {}, bool(store.clips(limit=1))  # (no clip yet, no folder yet: nothing is away)
    missing: dict[int, IncidentClip] = {}
    offset = found = 0
    while clips := store.clips(limit=batch, offset=offset):
        offset += len(clips)
        for clip in clips:
            if os.path.exists(clip.path):
                found += 1
            else:
                missing[clip.incident_id] = clip
    return missing, bool(missing) and not found


def _forget(store: IncidentStore, clips: list[IncidentClip], now: float) -> set[int]:
    """Remove the rows of ``clips`` whose file is still missing; returns their incident ids."""
    gone = {c.incident_id for c in clips if not os.path.exists(c.path) and store.remove_clip(c.incident_id, FORGOTTEN, at=now) is not None}
    if gone:
        log.warning("retention: %d clip file(s) missing on two passes had been deleted outside the service; their rows are removed", len(gone))
    return gone


def prune_clips(
    store: IncidentStore,
    *,
    now: float,
    max_age_s: float | None,
    max_total_bytes: int | None,
    clips_dir: Path | None = None,
    batch: int = 500,
    missing: MissingClips | None = None,
) -> tuple[int, int, int, int]:
    """Delete expired clips, then the oldest while over ``max_total_bytes``, then stray files
    in ``clips_dir``; rows whose file is missing are judged by ``missing`` (see
    :class:`MissingClips`). Returns (expired, over size, bytes freed, stray files)."""
    expired = over = freed = 0
    if max_age_s is not None:
        cutoff, failed = now - max_age_s, 0
        reason = f"deleted by retention: older than {_days(max_age_s)}"
        while clips := store.clips(created_before=cutoff, limit=batch, offset=failed):
            for clip in clips:  # the ones that could not be deleted stay first in the order
                if _drop(store, clip, reason, now):
                    expired, freed = expired + 1, freed + clip.size_bytes
                else:
                    failed += 1
    absent, away = _missing_clips(store, clips_dir, batch)
    if away:
        log.warning("retention: the clip volume looks away (%s unreadable, or no clip file visible): no clip is forgotten or swept", clips_dir)
    forgotten = _forget(store, (MissingClips() if missing is None else missing).judge(absent, away), now)
    if max_total_bytes is not None:  # a row whose file is missing counts for nothing, else real clips would go in its place
        total = store.clip_bytes() - sum(c.size_bytes for i, c in absent.items() if i not in forgotten)
        skipped = 0
        reason = f"deleted by retention: clips over {max_total_bytes / 1e6:g} MB in total, oldest first"
        while total > max_total_bytes and (clips := store.clips(limit=batch, offset=skipped)):
            for clip in clips:
                if total <= max_total_bytes:
                    break
                if clip.incident_id not in absent and _drop(store, clip, reason, now):
                    over, freed, total = over + 1, freed + clip.size_bytes, total - clip.size_bytes
                else:
                    skipped += 1
    stray = _sweep(clips_dir, store, now) if clips_dir is not None and not away else 0
    return expired, over, freed, stray


def _sweep(clips_dir: Path, store: IncidentStore, now: float) -> int:
    """Delete clip files no row names and temporary files of interrupted writes, once they are
    an hour old: in ``clips_dir`` itself (``<incident id>.mp4``) and in the cluster workers'
    folders ``clips_dir/cluster/<worker>/`` (``<observation id>.mp4``, cluster/clips.py: a
    worker's clip whose reference never reached the case service). Other files are never
    touched, and nothing else below ``clips_dir`` is read. An ``<incident id>.mp4`` of an
    incident that has a clip row, or whose clip was forgotten as deleted outside the service
    (its file is back: a volume away for longer), is evidence and stays."""
    named = {os.path.realpath(p) for p in store.clip_paths()}
    owners = store.clip_owners(FORGOTTEN)
    swept = _sweep_folder(clips_dir, _CLIP_NAME, named, now, owners)
    for worker in _subfolders(clips_dir / _CLUSTER_DIR):
        swept += _sweep_folder(worker, _CLUSTER_CLIP_NAME, named, now, set())
    return swept


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        log.error("retention: cannot list the clip folder %s: %s", folder, exc)
        return []


def _sweep_folder(folder: Path, clip_name: re.Pattern[str], named: set[str], now: float, owners: set[int]) -> int:
    """``owners``: incident ids whose ``<id>.mp4`` stays wherever it lies."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except OSError as exc:
        log.error("retention: cannot list the clip folder %s: %s", folder, exc)
        return 0
    swept = 0
    for entry in entries:
        stray_clip = clip_name.match(entry.name) is not None
        if not (stray_clip or _PART_NAME.match(entry.name)):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < STRAY_AGE_S:
                continue
            if stray_clip and (os.path.realpath(entry.path) in named or _owner(entry.name) in owners):
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("retention: cannot delete stray clip file %s: %s", entry.path, exc)
            continue
        swept += 1
    return swept


def _owner(name: str) -> int | None:
    """The incident id an ``<id>.mp4`` name carries (None for other names)."""
    stem = name.removesuffix(".mp4")
    return int(stem) if stem.isdigit() else None


# -- outbox ----------------------------------------------------------------------------------
def prune_outbox(
    db: Database,
    *,
    now: float,
    delivered_max_age_s: float | None,
    dead_max_age_s: float | None,
    batch: int = 1000,
) -> tuple[int, int]:
    """Delete settled outbox messages (see the module docstring) older than
    ``delivered_max_age_s``, all but the newest one. Returns (outbox rows, delivery rows) deleted."""
    if delivered_max_age_s is None:
        return 0, 0
    cut_delivered = now - delivered_max_age_s
    settled_conds = [and_(DeliveryRow.state == DELIVERED, func.coalesce(DeliveryRow.delivered_at, DeliveryRow.created_at) < cut_delivered)]
    if dead_max_age_s is not None:
        cut_dead = now - dead_max_age_s
        settled_conds.append(and_(DeliveryRow.state == DEAD, func.coalesce(DeliveryRow.dead_at, DeliveryRow.created_at) < cut_dead))
    settled = or_(*settled_conds)
    still_needed = exists().where(DeliveryRow.outbox_id == OutboxRow.id, not_(settled))
    any_delivery = exists().where(DeliveryRow.outbox_id == OutboxRow.id)
    below_newest = OutboxRow.id < select(func.max(OutboxRow.id)).correlate(None).scalar_subquery()
    rows = deliveries = 0
    while True:
        with db.transaction() as s:
            ids = list(
                s.scalars(
                    select(OutboxRow.id).where(OutboxRow.created_at < cut_delivered, below_newest, ~still_needed).order_by(OutboxRow.id).limit(batch)
                ).all()
            )
            if not ids:
                break
            # the state is checked again by each DELETE: a dead letter replayed meanwhile (pending
            # again) keeps its delivery row, and so its message
            deliveries += affected_rows(s.execute(delete(DeliveryRow).where(DeliveryRow.outbox_id.in_(ids), settled)))
            gone = affected_rows(s.execute(delete(OutboxRow).where(OutboxRow.id.in_(ids), ~any_delivery)))
        rows += gone
        if gone < len(ids):  # some were needed after all: they would be picked again
            break
    return rows, deliveries


# -- audit -----------------------------------------------------------------------------------
def prune_audit(db: Database, *, now: float, max_age_s: float | None, batch: int = 1000) -> int:
    """Delete audit rows older than ``max_age_s`` of finished (closed, rejected) work orders."""
    if max_age_s is None:
        return 0
    cutoff = now - max_age_s
    finished = exists().where(WorkOrderRow.incident_id == AuditRow.incident_id, WorkOrderRow.state.in_(sorted(TERMINAL)))
    total = 0
    while True:
        with db.transaction() as s:
            ids = list(s.scalars(select(AuditRow.id).where(AuditRow.at < cutoff, finished).order_by(AuditRow.id).limit(batch)).all())
            if not ids:
                break
            total += affected_rows(s.execute(delete(AuditRow).where(AuditRow.id.in_(ids), finished)))
        if len(ids) < batch:
            break
    return total


# -- one pass, and the worker ------------------------------------------------------------------
def _seconds(days: float | None) -> float | None:
    return None if days is None else days * DAY_S


def run_retention(
    store: IncidentStore,
    config: RetentionConfig,
    *,
    now: float | None = None,
    clips_dir: Path | None = None,
    photos: PhotoRetention | None = None,
    missing: MissingClips | None = None,
) -> RetentionReport:
    """One retention pass over clips, the outbox and the audit log (see the module docstring),
    and the photos of cases when ``photos`` is given (their limits are ``reports.photos``'s).
    ``missing``: what earlier passes saw of missing clip files (:class:`MissingClips`)."""
    now = time.time() if now is None else now
    missing = MissingClips() if missing is None else missing
    max_bytes = None if config.clips_max_total_mb is None else int(config.clips_max_total_mb * 1e6)
    expired, over, freed, stray = prune_clips(
        store, now=now, max_age_s=_seconds(config.clips_max_age_days), max_total_bytes=max_bytes, clips_dir=clips_dir, missing=missing
    )
    outbox_rows, deliveries = prune_outbox(
        store.db,
        now=now,
        delivered_max_age_s=_seconds(config.outbox_delivered_max_age_days),
        dead_max_age_s=_seconds(config.outbox_dead_max_age_days),
    )
    audit_rows = prune_audit(store.db, now=now, max_age_s=_seconds(config.audit_max_age_days))
    photo_count, photo_bytes = photos.run(now) if photos is not None else (0, 0)
    return RetentionReport(expired, over, freed, stray, outbox_rows, deliveries, audit_rows, photo_count, photo_bytes, int(missing.away))


@dataclass(eq=False)
class RetentionWorker:
    """Runs :func:`run_retention` every ``config.interval_s`` on its own thread.

    The first pass runs ``min(interval_s, first_delay_s)`` after ``start()`` (not at once: the
    service is starting). A failing pass is logged and the next one runs on time.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> worker = RetentionWorker(IncidentStore("sqlite:///:memory:"), RetentionConfig(), clips_dir=Path(tmp.name))
        >>> worker.start(); worker.stop()  # stopped before its first pass was due
        >>> worker.run_once().clips_expired, worker.passes  # one pass now
        (0, 1)
        >>> tmp.cleanup()
    """

    store: IncidentStore
    config: RetentionConfig
    _: KW_ONLY
    clips_dir: Path | None = None
    photos: PhotoRetention | None = None  # photos of cases (issue 15)
    clock: Callable[[], float] = time.time
    first_delay_s: float = 60.0
    last: RetentionReport | None = field(default=None, init=False)
    passes: int = field(default=0, init=False)
    missing: MissingClips = field(default_factory=MissingClips, init=False)  # clip files missing, pass after pass
    _pass_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        interval = self.config.interval_s
        self._timer = Periodic("gw-retention", self.run_once, interval, first_s=min(interval, self.first_delay_s))

    def start(self) -> None:
        self._timer.start()

    def stop(self, timeout: float = 30.0) -> None:
        if not self._timer.stop(timeout):
            log.error("retention pass did not finish within %.0f s", timeout)

    def run_once(self) -> RetentionReport:
        """One pass now (passes never overlap)."""
        with self._pass_lock:
            report = run_retention(self.store, self.config, now=self.clock(), clips_dir=self.clips_dir, photos=self.photos, missing=self.missing)
            self.last = report
            self.passes += 1
        if report:
            log.info("retention: %s", ", ".join(f"{f.name}={getattr(report, f.name)}" for f in fields(report) if getattr(report, f.name)))
        return report
