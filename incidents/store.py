"""Incident persistence with SQLAlchemy: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import builtins
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, Float, Integer, LargeBinary, String, Text, delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database, equal_filters, part_of, to_domain

log = logging.getLogger(__name__)

OPEN = "open"
CLOSED = "closed"


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    camera_name: Mapped[str] = mapped_column(String(200), default="")
    site: Mapped[str] = mapped_column(String(200), default="")
    zone_id: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    opened_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_count: Mapped[int] = mapped_column(Integer, default=0)
    observations: Mapped[int] = mapped_column(Integer, default=1)
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SnapshotRow(Base):
    __tablename__ = "incident_snapshots"

    incident_id: Mapped[int] = part_of("incidents.id")
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
    taken_at: Mapped[float] = mapped_column(Float)


class ClipRow(Base):
    """An incident's evidence clip: an MP4 file on disk (videos stay out of the database)."""

    __tablename__ = "incident_clips"

    incident_id: Mapped[int] = part_of("incidents.id")
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    offset_s: Mapped[float] = mapped_column(Float)  # where in the clip the incident opened
    created_at: Mapped[float] = mapped_column(Float)
    #: the triggering objects' boxes over the clip (``incidents/trail.py``; migration 0008)
    tracks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class ClipMissingRow(Base):
    """Why an incident has no evidence clip: it could not be saved (the clip disk was full or
    unwritable, the camera had nothing buffered), or retention deleted it (migration 0002)."""

    __tablename__ = "incident_clips_missing"

    incident_id: Mapped[int] = part_of("incidents.id")
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)


class SavedConfigRow:
    """The columns of a table of configs saved at run time: an id, its config as JSON, when it
    was first saved (the order they load in)."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class CameraRow(SavedConfigRow, Base):
    """Cameras added through the API, so they survive a restart."""

    __tablename__ = "cameras"


class PatrolPlanRow(SavedConfigRow, Base):
    """Patrol plans created or replaced through the API (``PUT /patrol/plans/{id}``), so they survive a restart."""

    __tablename__ = "patrol_plans"


class DeviceRow(SavedConfigRow, Base):
    """IoT devices added through the API or a CSV import, so they survive a restart (iot/; issue 14, migration 0003)."""

    __tablename__ = "iot_devices"


R = TypeVar("R", CameraRow, PatrolPlanRow, DeviceRow)


class SavedConfigs(Generic[R]):
    """The configs of one table of :class:`SavedConfigRow`: ``(id, config JSON)`` pairs.

    Example:
        >>> store = IncidentStore("sqlite:///:memory:")
        >>> store.cameras.put("gate", '{"id": "gate", "url": "rtsp://10.0.0.7/s1"}'); store.cameras.all()
        [('gate', '{"id": "gate", "url": "rtsp://10.0.0.7/s1"}')]
    """

    def __init__(self, db: Database, row: type[R]) -> None:
        self._db = db
        self._row: type[R] = row

    def put(self, key: str, config_json: str) -> None:
        """Save ``key``'s config, or replace it (it keeps its place in the order)."""
        self.put_all([(key, config_json)])

    def put_all(self, items: Sequence[tuple[str, str]]) -> None:
        """Save or replace several ``(id, config JSON)``, all in one transaction."""
        now = time.time()
        with self._db.transaction() as s:
            for key, config_json in items:
                row = s.get(self._row, key)
                if row is None:
                    s.add(self._row(id=key, config=config_json, created_at=now))
                else:
                    row.config = config_json

    def delete(self, key: str) -> bool:
        """Forget ``key``'s config; False if there was none."""
        with self._db.transaction() as s:
            row = s.get(self._row, key)
            if row is not None:
                s.delete(row)
            return row is not None

    def forget(self, key: str) -> None:
        """:meth:`delete`, for a caller that does not ask whether there was one."""
        self.delete(key)

    def all(self) -> list[tuple[str, str]]:
        """Every ``(id, config JSON)``, oldest first."""
        with self._db.transaction() as s:
            rows = s.scalars(select(self._row).order_by(self._row.created_at, self._row.id)).all()
            return [(r.id, r.config) for r in rows]


@dataclass(frozen=True, slots=True)
class Incident:
    """A stored incident (times are Unix seconds)."""

    id: int
    camera_id: str
    camera_name: str
    site: str
    zone_id: str
    rule_id: str
    type: str
    status: str
    opened_at: float
    updated_at: float
    closed_at: float | None
    peak_count: int
    observations: int
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    has_snapshot: bool = False
    has_clip: bool = False
    clip_missing: str | None = None  # why there is no clip (not saved, or deleted by retention)


@dataclass(frozen=True, slots=True)
class IncidentClip:
    """An incident's evidence clip: ``path`` of the MP4 file, its size and media duration,
    and ``offset_s``, the time into the clip at which the incident opened."""

    incident_id: int
    path: str
    size_bytes: int
    duration_s: float
    offset_s: float
    created_at: float


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    camera_id: str | None = None
    type: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    offset: int = 0


def _to_incident(row: IncidentRow, has_snapshot: bool, has_clip: bool = False, clip_missing: str | None = None) -> Incident:
    return to_domain(
        Incident, row, has_snapshot=has_snapshot, has_clip=has_clip, clip_missing=None if has_clip else clip_missing
    )


def _to_clip(row: ClipRow) -> IncidentClip:
    return to_domain(IncidentClip, row)


class IncidentStore:
    """Stores incidents, their snapshots and clips, and API-added cameras and patrol plans.

    Safe to share between threads: each call opens its own short session.

    Args:
        db: the process's ``Database``; or a URL, for a store with a database of its own
            (opened and upgraded here, disposed of by ``close``).

    Example:
        >>> store = IncidentStore("sqlite:///:memory:")
        >>> store.list(IncidentQuery())[1]
        0
    """

    def __init__(self, db: Database | str) -> None:
        self._owns_db = isinstance(db, str)
        self.db = Database.open(db) if isinstance(db, str) else db
        self.url = self.db.url
        self._session = self.db.transaction
        # what was added or replaced at run time (the API, an import), loaded again at start
        self.cameras = SavedConfigs(self.db, CameraRow)
        self.patrol_plans = SavedConfigs(self.db, PatrolPlanRow)
        self.devices = SavedConfigs(self.db, DeviceRow)  # IoT devices (issue 14)

    def close(self) -> None:
        """Dispose of the database's connections if this store opened it (from a URL)."""
        if self._owns_db:
            self.db.close()

    @property
    def engine(self) -> Engine:
        """The database's engine."""
        return self.db.engine

    # -- incidents -------------------------------------------------------------------
    def open(
        self,
        *,
        camera_id: str,
        camera_name: str,
        site: str,
        zone_id: str,
        rule_id: str,
        type: str,
        at: float,
        count: int,
        summary: str,
        details: dict[str, Any],
        snapshot: bytes | None,
    ) -> Incident:
        with self._session() as s:
            row = IncidentRow(
                camera_id=camera_id,
                camera_name=camera_name,
                site=site,
                zone_id=zone_id,
                rule_id=rule_id,
                type=type,
                status=OPEN,
                opened_at=at,
                updated_at=at,
                closed_at=None,
                peak_count=count,
                observations=1,
                summary=summary,
                # NaN and infinities (a degenerate speed, say) become null: the API must be able to write them
                details=json.loads(json.dumps(details, default=str), parse_constant=lambda _: None),
            )
            s.add(row)
            s.flush()
            if snapshot is not None:
                s.add(SnapshotRow(incident_id=row.id, jpeg=snapshot, taken_at=at))
            return _to_incident(row, snapshot is not None)

    def touch(
        self, incident_id: int, *, at: float, count: int, summary: str, observations: int, details: dict[str, Any] | None = None
    ) -> None:
        """Record an open incident's progress; ``details`` (if given) are merged over the stored ones."""
        with self._session() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None or row.status != OPEN:
                return
            row.updated_at = max(row.updated_at, at)
            row.peak_count = max(row.peak_count, count)
            row.observations += observations
            row.summary = summary
            if details:
                row.details = {**(row.details or {}), **details}  # a new dict: the JSON column sees the change

    def reopen_incident(self, incident_id: int) -> bool:
        """A closed incident continues (its object came back within the rule's cooldown).
        False when it is not closed (or gone)."""
        with self._session() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None or row.status != CLOSED:
                return False
            row.status = OPEN
            row.closed_at = None
            return True

    def close_incident(self, incident_id: int, *, at: float) -> None:
        with self._session() as s:
            row = s.get(IncidentRow, incident_id)
            if row is not None and row.status == OPEN:
                row.status = CLOSED
                row.closed_at = at

    def get(self, incident_id: int) -> Incident | None:
        with self._session() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None:
                return None
            has = s.scalar(select(func.count()).select_from(SnapshotRow).where(SnapshotRow.incident_id == incident_id))
            clip = s.scalar(select(func.count()).select_from(ClipRow).where(ClipRow.incident_id == incident_id))
            missing = s.get(ClipMissingRow, incident_id)
            return _to_incident(row, bool(has), bool(clip), None if missing is None else missing.reason)

    def snapshot(self, incident_id: int) -> bytes | None:
        with self._session() as s:
            snap = s.get(SnapshotRow, incident_id)
            return None if snap is None else bytes(snap.jpeg)

    def add_clip(
        self,
        incident_id: int,
        *,
        path: str,
        size_bytes: int,
        duration_s: float,
        offset_s: float,
        created_at: float,
        tracks: list[dict[str, Any]] | None = None,
    ) -> IncidentClip:
        """Record (or replace) the evidence clip of an incident, with its triggering objects'
        boxes over the clip when known (``TrailPoint.as_json`` of each analysed frame)."""
        clip = IncidentClip(incident_id, path, size_bytes, duration_s, offset_s, created_at)
        with self._session() as s:
            s.execute(delete(ClipMissingRow).where(ClipMissingRow.incident_id == incident_id))
            row = s.get(ClipRow, incident_id)
            if row is None:
                row = ClipRow(incident_id=incident_id)
                s.add(row)
            row.path, row.size_bytes, row.duration_s, row.offset_s, row.created_at, row.tracks = (
                path,
                size_bytes,
                duration_s,
                offset_s,
                created_at,
                tracks,
            )
        return clip

    def clip_tracks(self, incident_id: int) -> list[dict[str, Any]] | None:
        """The triggering objects' boxes over the incident's clip; None when it has no clip
        or the clip was stored without them."""
        with self._session() as s:
            row = s.get(ClipRow, incident_id)
            return None if row is None else row.tracks

    def clip(self, incident_id: int) -> IncidentClip | None:
        with self._session() as s:
            row = s.get(ClipRow, incident_id)
            if row is None:
                return None
            return _to_clip(row)

    def clip_missing(self, incident_id: int, reason: str, *, at: float) -> bool:
        """Record why an incident has no clip (it keeps the first reason given). False when the
        incident does not exist (nothing recorded)."""
        with self._session() as s:
            if s.get(IncidentRow, incident_id) is None:
                return False
            if s.get(ClipMissingRow, incident_id) is None:
                s.add(ClipMissingRow(incident_id=incident_id, reason=reason[:2000], at=at))
            return True

    def remove_clip(self, incident_id: int, reason: str, *, at: float) -> IncidentClip | None:
        """Forget an incident's clip (its file is the caller's) and say why, in one transaction.
        Returns the clip as it was, None when it had none."""
        with self._session() as s:
            row = s.get(ClipRow, incident_id)
            if row is None:
                return None
            clip = _to_clip(row)
            s.delete(row)
            s.execute(delete(ClipMissingRow).where(ClipMissingRow.incident_id == incident_id))
            s.add(ClipMissingRow(incident_id=incident_id, reason=reason[:2000], at=at))
            return clip

    def clips(self, *, created_before: float | None = None, limit: int = 1000, offset: int = 0) -> list[IncidentClip]:
        """Clips, oldest first (by ``created_at``), optionally only those made before a time."""
        with self._session() as s:
            stmt = select(ClipRow).order_by(ClipRow.created_at, ClipRow.incident_id).limit(limit).offset(offset)
            if created_before is not None:
                stmt = stmt.where(ClipRow.created_at < created_before)
            return [_to_clip(r) for r in s.scalars(stmt).all()]

    def clip_bytes(self) -> int:
        """The total size of the recorded clips (what their rows say)."""
        with self._session() as s:
            return int(s.scalar(select(func.coalesce(func.sum(ClipRow.size_bytes), 0))) or 0)

    def clip_paths(self) -> set[str]:
        with self._session() as s:
            return set(s.scalars(select(ClipRow.path)).all())

    def clip_owners(self, missing_reason: str) -> set[int]:
        """The incidents that have a clip row, and those whose clip is missing for ``missing_reason``."""
        with self._session() as s:
            with_row = s.scalars(select(ClipRow.incident_id)).all()
            missing = s.scalars(select(ClipMissingRow.incident_id).where(ClipMissingRow.reason == missing_reason)).all()
            return {*with_row, *missing}

    def list(self, query: IncidentQuery) -> tuple[list[Incident], int]:
        conditions = equal_filters(
            (IncidentRow.camera_id, query.camera_id), (IncidentRow.type, query.type), (IncidentRow.status, query.status)
        )
        if query.since is not None:
            conditions.append(IncidentRow.opened_at >= query.since)
        if query.until is not None:
            conditions.append(IncidentRow.opened_at <= query.until)
        with self._session() as s:
            total = s.scalar(select(func.count()).select_from(IncidentRow).where(*conditions)) or 0
            rows = s.execute(
                select(IncidentRow, SnapshotRow.incident_id, ClipRow.incident_id, ClipMissingRow.reason)
                .outerjoin(SnapshotRow, SnapshotRow.incident_id == IncidentRow.id)
                .outerjoin(ClipRow, ClipRow.incident_id == IncidentRow.id)
                .outerjoin(ClipMissingRow, ClipMissingRow.incident_id == IncidentRow.id)
                .where(*conditions)
                .order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
                .limit(query.limit)
                .offset(query.offset)
            ).all()
            return [_to_incident(r, snap is not None, clip is not None, missing) for r, snap, clip, missing in rows], int(total)

    def latest_of(self, camera_id: str, zone_id: str, rule_id: str) -> int | None:
        """The id of the latest incident of this camera (source), zone and rule, if any."""
        with self._session() as s:
            return s.scalar(
                select(IncidentRow.id)
                .where(IncidentRow.camera_id == camera_id, IncidentRow.zone_id == zone_id, IncidentRow.rule_id == rule_id)
                .order_by(IncidentRow.id.desc())
                .limit(1)
            )

    def open_incidents(self) -> builtins.list[Incident]:
        with self._session() as s:
            rows = s.scalars(select(IncidentRow).where(IncidentRow.status == OPEN)).all()
            return [_to_incident(r, False) for r in rows]

    def open_without_clip(self, opened_before: float) -> builtins.list[Incident]:
        """Open incidents opened before ``opened_before`` that have neither a clip nor a
        recorded reason for lacking one (after a crash: clips that were still pending)."""
        with self._session() as s:
            rows = s.scalars(
                select(IncidentRow)
                .outerjoin(ClipRow, ClipRow.incident_id == IncidentRow.id)
                .outerjoin(ClipMissingRow, ClipMissingRow.incident_id == IncidentRow.id)
                .where(
                    IncidentRow.status == OPEN,
                    IncidentRow.opened_at < opened_before,
                    ClipRow.incident_id.is_(None),
                    ClipMissingRow.incident_id.is_(None),
                )
            ).all()
            return [_to_incident(r, False) for r in rows]

    def count_by(self, status: str | None = None) -> dict[str, int]:
        with self._session() as s:
            stmt = select(IncidentRow.type, func.count()).group_by(IncidentRow.type)
            if status is not None:
                stmt = stmt.where(IncidentRow.status == status)
            return {t: int(n) for t, n in s.execute(stmt).all()}

    # --- IoT (issue 14): a linkage snapshot taken after the opening (devices: ``self.devices``) ---
    def attach_snapshot(self, incident_id: int, jpeg: bytes, *, at: float, details: dict[str, Any]) -> bool:
        """Give an incident that opened without a snapshot one taken later (IoT video linkage),
        merging ``details`` into its details. False (nothing changed) when it has one or does not exist."""
        with self._session() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None or s.get(SnapshotRow, incident_id) is not None:
                return False
            s.add(SnapshotRow(incident_id=incident_id, jpeg=jpeg, taken_at=at))
            row.details = {**(row.details or {}), **details}
            return True

    # --- end IoT ---------------------------------------------------------------------------
