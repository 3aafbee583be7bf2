"""Reports from people: residents' photo reports (随手拍) and the 12345 platform's (issue 15,
docs/people.md "Reports from residents and 12345").

A report is an observation like a camera's frame or a device's alarm: :class:`ReportIntake`
checks it, normalises its photos (cases/photos.py), and hands a typed
:class:`ReportObservation` to the one incident writer
(:meth:`IncidentManager.resident_report <gridworker.incidents.IncidentManager.resident_report>`);
the incident's ``on_open`` listeners then make the graded, routed work order, forward it and
put it on the console's queue, as for any incident.

The **source** of a report's incident: ``camera_id`` is ``report:<channel>`` (``resident``
for the public page, the key's channel for the intake API, e.g. ``12345``), ``zone_id`` the
channel, ``rule_id`` ``r<report id>``; routing rules match ``camera: "report:*"``.
``details`` carry ``source: "report"``, the report id, the position and the photos' count;
the summary is the reporter's text. The reporter's **contact** is stored in ``reports`` only:
it is in no incident, work order, audit row, outbox message, log line or viewer's response.

The reporter gets a **receipt code** (``secrets.token_urlsafe(16)``, 128 random bits); only
its SHA-256 is stored, and :meth:`ReportBook.status` answers the report's progress by it
(its type, when it was received, the case's state), nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from gridworker.cases.catalogue import Catalogue
from gridworker.cases.photos import REPORT, Photo, PhotoStorageFull, PhotoStore
from gridworker.cases.workorders import WorkOrderRow
from gridworker.vision.rules.base import IncidentKind

from .db import Base, Database
from .source_report import SourceReport
from .store import Incident

__all__ = [
    "DEFAULT_REPORT_TYPES",
    "PhotosConfig",
    "ReportBook",
    "ReportError",
    "ReportIn",
    "ReportIntake",
    "ReportObservation",
    "ReportProgress",
    "ReportReceipt",
    "ReportStatus",
    "ReportsConfig",
    "receipt_digest",
]

log = logging.getLogger(__name__)

RESIDENT = "resident"
#: What residents may report on the public page by default: the catalogue's street-order and
#: city-appearance types a person sees on the street.
DEFAULT_REPORT_TYPES = ("exposed_garbage", "illegal_parking", "nonmotor_parking", "street_vending")
RECEIPT_BYTES = 16


class PhotoDecoding(BaseModel):
    """``reports.photos.decoding:``: the service's one photo gate (cases/photos.py ``PhotoGate``);
    one decode holds about 9 MB a megapixel."""

    model_config = ConfigDict(extra="forbid")

    slots: int = Field(2, ge=1, le=16, description="Photos decoded at once (reports, the phone page, handling).")
    wait_s: float = Field(10.0, ge=0.0, le=120.0, description="How long a photo waits for a slot (503 after).")
    max_megapixels: float = Field(16.0, ge=1.0, le=64.0, description="Most pixels one photo decodes (422 beyond).")


class PhotosConfig(BaseModel):
    """``reports.photos:``: how photos of cases are taken and kept (cases/photos.py)."""

    model_config = ConfigDict(extra="forbid")

    photos_dir: Path | None = Field(None, description="Folder of the photo files. Default: 'photos' beside the clip folder.")
    max_side: int = Field(1600, ge=320, le=4096, description="Longer side of a stored photo, pixels (uploads are scaled down).")
    max_upload_mb: float = Field(8.0, gt=0.0, le=32.0, description="Largest photo file taken, megabytes (413 beyond).")
    max_input_megapixels: float = Field(50.0, gt=0.0, le=200.0, description="Photos with more pixels are refused before decoding.")
    max_per_case: int = Field(12, ge=1, le=100, description="Photos one case may hold, report and handling photos together.")
    decoding: PhotoDecoding = Field(default_factory=PhotoDecoding, description="How many photos decode at once, and how large.")
    max_total_mb: float = Field(2000.0, gt=0.0, le=100_000_000.0, allow_inf_nan=False, description="No handler's photo or intake-API (POST /reports) report photo is stored while those add up to this (507); retention deletes the oldest of them down to 90 % of it. Residents' public-page photos have their own budget (public_max_total_mb) and never count here.")
    public_max_total_mb: float = Field(1000.0, gt=0.0, le=100_000_000.0, allow_inf_nan=False, description="No photo of a resident's report on the public page (no key) is stored while those add up to this (507; the report is refused before its case opens); retention deletes the oldest of them down to 90 % of it, never another photo.")
    max_age_days: float | None = Field(180.0, gt=0.0, le=36_500.0, description="Retention deletes photos older than this (null: never).")
    min_free_mb: float = Field(256.0, ge=0.0, le=100_000_000.0, allow_inf_nan=False, description="No photo is stored while the photo disk has less free space than this.")

    def resolve_dir(self, clips_dir: Path) -> Path:
        return self.photos_dir if self.photos_dir is not None else clips_dir.parent / "photos"


class ReportsConfig(BaseModel):
    """``reports:`` in the service config (docs/people.md)."""

    model_config = ConfigDict(extra="forbid")

    public: bool = Field(True, description="Serve the residents' report page (/report/) and its endpoint.")
    types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REPORT_TYPES), min_length=1, max_length=64,
        description="Incident types (catalogue codes) residents may pick on the public page.",
    )
    site: str = Field("", max_length=200, description="The site reports' cases carry (routing rules may match it).")
    max_text: int = Field(500, ge=10, le=2000, description="Longest text of a report, characters.")
    max_photos: int = Field(4, ge=0, le=12, description="Photos one report may carry.")
    public_per_client_per_hour: int = Field(6, ge=1, le=10_000, description="Public reports one client address may send per hour (429 beyond).")
    public_per_hour: int = Field(600, ge=1, le=1_000_000, description="Public reports from everyone together per hour (429 beyond).")
    photos: PhotosConfig = Field(default_factory=PhotosConfig)


# -- what the incident writer is handed ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReportObservation(SourceReport):
    """A person's report of a problem at ``at`` (the incidents side of a report; the incident's
    part keyword-only, as :class:`~gridworker.incidents.source_report.SourceReport`).

    Attributes:
        report_id: the ``reports`` row.
        channel: ``resident`` or the intake key's channel (``12345``).
        kind: the incident type (a catalogue entry).
        at: when it was received (Unix seconds).
        summary: the reporter's text (no contact).
        site: the site the case carries.
        details: JSON-able extras (position, photo count, the platform's own id).
        snapshot: the first photo (the incident's evidence picture), or None.

    Example:
        >>> kind = IncidentKind("exposed_garbage", "暴露垃圾", "exposed garbage", "city_appearance")
        >>> ReportObservation(7, "resident", kind=kind, at=1.7e9, summary="bins overflowing at gate 3").source_id
        'report:resident'
    """

    report_id: int
    channel: str
    site: str = ""

    @property
    def source_id(self) -> str:
        return f"report:{self.channel}"


# -- the table ------------------------------------------------------------------------------------
class ReportRow(Base):
    """A report from a person (migration 0005). ``contact_*`` never leave this table."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receipt_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(32), index=True)
    external_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    type: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    contact_name: Mapped[str] = mapped_column(String(100), default="")
    contact_phone: Mapped[str] = mapped_column(String(40), default="")
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True, index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class ReportError(ValueError):
    """A report refused (``status``: 422 bad field, 415 not a photo, 413 too large)."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class ReportIn(BaseModel):
    """One report, as a caller (the public page, the intake API) states it; photos are bytes here."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    text: str = Field("", max_length=2000)
    lon: float | None = Field(None, ge=-180.0, le=180.0, allow_inf_nan=False)
    lat: float | None = Field(None, ge=-90.0, le=90.0, allow_inf_nan=False)
    contact_name: str = Field("", max_length=100)
    contact_phone: str = Field("", max_length=40)
    external_id: str = Field("", max_length=64)


@dataclass(frozen=True, slots=True)
class ReportReceipt:
    """What the reporter gets back: the report's id, its case and the receipt code (shown once)."""

    report_id: int
    incident_id: int | None
    code: str
    duplicate: bool = False


_When = TypeVar("_When")


@dataclass(frozen=True, slots=True)
class ReportProgress(Generic[_When]):
    """A report's progress as its reporter may see it (no contact, nothing of other reports).
    gridworker keeps the times as epoch seconds (:class:`ReportStatus`); the API shows them as
    datetimes (``ReportStatusOut``)."""

    type: str
    type_name_zh: str
    type_name_en: str
    state: str  # received, or the case's work-order state
    received_at: _When
    updated_at: _When
    handled_at: _When | None
    closed_at: _When | None


@dataclass(frozen=True, slots=True)
class ReportStatus(ReportProgress[float]):
    """A report's progress, its times in epoch seconds."""


def receipt_digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()


class ReportBook:
    """The ``reports`` table: add, link to the case, look up by receipt or by the platform's id."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, channel: str, report: ReportIn, at: float) -> tuple[int, str]:
        """Store the report; returns (id, receipt code)."""
        code = secrets.token_urlsafe(RECEIPT_BYTES)
        with self.db.transaction() as s:
            row = ReportRow(
                receipt_sha256=receipt_digest(code), channel=channel, external_id=report.external_id, type=report.type,
                text=report.text, lon=report.lon, lat=report.lat, contact_name=report.contact_name.strip(),
                contact_phone=report.contact_phone.strip(), incident_id=None, created_at=at,
            )
            s.add(row)
            s.flush()
            return row.id, code

    def new_code(self, report_id: int) -> str:
        """A new receipt code for a stored report (the first was never handed out: its call failed)."""
        code = secrets.token_urlsafe(RECEIPT_BYTES)
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id)
            if row is not None:
                row.receipt_sha256 = receipt_digest(code)
        return code

    def link(self, report_id: int, incident_id: int) -> None:
        with self.db.transaction() as s:
            row = s.get(ReportRow, report_id)
            if row is not None:
                row.incident_id = incident_id

    def by_external(self, channel: str, external_id: str) -> tuple[int, int | None] | None:
        """(report id, incident id) of the channel's report with the platform's own id."""
        if not external_id:
            return None
        with self.db.transaction() as s:
            row = s.scalars(select(ReportRow).where(ReportRow.channel == channel, ReportRow.external_id == external_id).limit(1)).first()
            return None if row is None else (row.id, row.incident_id)

    def contact_of(self, incident_id: int) -> tuple[str, str] | None:
        """(name, phone) of the reporter of ``incident_id``'s report: for a call back, never for a viewer."""
        with self.db.transaction() as s:
            row = s.scalars(select(ReportRow).where(ReportRow.incident_id == incident_id).limit(1)).first()
            return None if row is None else (row.contact_name, row.contact_phone)

    def status(self, code: str, catalogue: Catalogue) -> ReportStatus | None:
        """The progress of the report with receipt ``code``; None for an unknown code."""
        if not 16 <= len(code) <= 64:
            return None
        with self.db.transaction() as s:
            row = s.scalars(select(ReportRow).where(ReportRow.receipt_sha256 == receipt_digest(code))).first()
            if row is None:
                return None
            order = s.get(WorkOrderRow, row.incident_id) if row.incident_id is not None else None
            t = catalogue.type(row.type)
            if order is None:
                return ReportStatus(row.type, t.name_zh, t.name_en, "received", row.created_at, row.created_at, None, None)
            return ReportStatus(
                row.type, t.name_zh, t.name_en, order.state, row.created_at, order.updated_at, order.handled_at, order.closed_at
            )


class ReportSink(Protocol):
    """What the intake hands a report to: the incident writer's ``resident_report``."""

    def resident_report(self, report: ReportObservation) -> Incident: ...

    def report_incident(self, channel: str, report_id: int) -> int | None:
        """The incident opened for report ``report_id`` of ``channel``, if any."""


class ReportIntake:
    """Checks a report, stores it with its photos and opens its case through the incident writer.

    Args:
        book: the ``reports`` table.
        photos: where the photos go.
        manager: the incident writer (``IncidentManager``).
        catalogue: incident types (a report's type must be one).
        config: ``reports:``.

    Example:
        >>> import tempfile
        >>> from gridworker.cases.catalogue import load_catalogue
        >>> from gridworker.incidents import IncidentManager, IncidentStore
        >>> from gridworker.incidents.manager import CameraInfo
        >>> store, tmp = IncidentStore("sqlite:///:memory:"), tempfile.TemporaryDirectory()
        >>> manager = IncidentManager(store, camera_info=lambda _camera: CameraInfo())
        >>> intake = ReportIntake(ReportBook(store.db), PhotoStore(store.db, Path(tmp.name)), manager, load_catalogue(), ReportsConfig())
        >>> receipt = intake.submit("resident", ReportIn(type="exposed_garbage", text="bins overflowing at gate 3"), [], public=True)
        >>> receipt.report_id, receipt.incident_id, len(receipt.code)  # the code is shown to the reporter once
        (1, 1, 22)
        >>> store.get(receipt.incident_id).camera_id
        'report:resident'
        >>> tmp.cleanup()
    """

    def __init__(self, book: ReportBook, photos: PhotoStore, manager: ReportSink, catalogue: Catalogue, config: ReportsConfig) -> None:
        self.book = book
        self.photos = photos
        self.manager = manager
        self.catalogue = catalogue
        self.config = config
        # the platform's calls naming its own id, one at a time: a retry arriving while the
        # first call still opens the case must find that case, not open a second
        self._intake_lock = threading.Lock()

    def public_types(self) -> list[IncidentKind]:
        """The types residents may pick (those of ``config.types`` the catalogue lists)."""
        out = []
        for code in self.config.types:
            if self.catalogue.is_listed(code):
                t = self.catalogue.type(code)
                out.append(IncidentKind(t.code, t.name_zh, t.name_en, t.category))
        return out

    def normalise(self, uploads: Sequence[bytes]) -> list[Photo]:
        """Every upload as a normalised photo (cases/photos.py); raises ``PhotoError``."""
        if len(uploads) > self.config.max_photos:
            raise ReportError(f"at most {self.config.max_photos} photos per report")
        pc = self.config.photos
        cap = int(pc.max_upload_mb * 1_000_000)
        for data in uploads:
            if len(data) > cap:
                raise ReportError(f"a photo is larger than {pc.max_upload_mb:g} MB", status=413)
        return [self.photos.normalise(d, max_side=pc.max_side, max_input_pixels=int(pc.max_input_megapixels * 1e6)) for d in uploads]

    def submit(self, channel: str, report: ReportIn, photos: Sequence[Photo], *, public: bool, at: float | None = None) -> ReportReceipt:
        if public or not report.external_id:
            return self._submit(channel, report, photos, public=public, at=at)
        with self._intake_lock:
            return self._submit(channel, report, photos, public=public, at=at)

    def _submit(self, channel: str, report: ReportIn, photos: Sequence[Photo], *, public: bool, at: float | None = None) -> ReportReceipt:
        """Store the report, open its case (one incident, one work order) and store its photos.

        A report of the intake API naming the platform's own id (``external_id``) that was
        already received returns the first one's receipt (``duplicate``, with a new code: the
        first code is not stored) and opens nothing; one whose case never opened (the database
        failed after its row was stored, the call answered 500) has its case opened by the retry.

        Raises:
            ReportError: an unknown type (for the public page: one not offered), empty text
                without a photo, text too long.
            PhotoStorageFull: no room for the photos in their budget (the public page's has its
                own) or on the disk (507), or more than a case holds (409): nothing is stored
                and no case opened.
        """
        now = time.time() if at is None else at
        allowed = {k.code for k in self.public_types()} if public else None
        if (allowed is not None and report.type not in allowed) or not self.catalogue.is_listed(report.type):
            raise ReportError(f"unknown report type {report.type[:64]!r}")
        text = " ".join(report.text.split())
        if len(text) > self.config.max_text:
            raise ReportError(f"the text is longer than {self.config.max_text} characters")
        if not text and not photos:
            raise ReportError("say what is wrong, or send a photo")
        if (report.lon is None) != (report.lat is None):
            raise ReportError("a position needs both lon and lat")
        if report.lon is not None and report.lat is not None and not (math.isfinite(report.lon) and math.isfinite(report.lat)):
            raise ReportError("the position is not a number")
        stored_id: int | None = None  # the platform's report stored by an earlier call whose case never opened
        if not public and (seen := self.book.by_external(channel, report.external_id)) is not None:
            if seen[1] is not None:
                return ReportReceipt(seen[0], seen[1], secrets.token_urlsafe(RECEIPT_BYTES), duplicate=True)
            # the database failed after the report's row: its case was opened but not linked
            # (found and linked now), or never opened (the retry opens it)
            if (opened := self.manager.report_incident(channel, seen[0])) is not None:
                self.book.link(seen[0], opened)
                return ReportReceipt(seen[0], opened, secrets.token_urlsafe(RECEIPT_BYTES), duplicate=True)
            stored_id = seen[0]
        lon, lat = report.lon, report.lat
        if lon is None:  # the first photo's EXIF location stands in for a missing one
            located = next((p for p in photos if p.lon is not None and p.lat is not None), None)
            if located is not None:
                lon, lat = located.lon, located.lat
        stored = report.model_copy(update={"text": text, "lon": lon, "lat": lat})
        actor = f"report:{channel}"  # report:resident (the public page) is photos.PUBLIC_ACTOR: the public budget
        # the photos' room is held before anything is stored: no room, no report row and no case
        # (a refused report opens nothing; the resident's retry does not make a second case)
        with self.photos.reserve(REPORT, photos, actor=actor) as hold:
            report_id, code = self.book.add(channel, stored, now) if stored_id is None else (stored_id, self.book.new_code(stored_id))
            t = self.catalogue.type(report.type)
            details: dict[str, Any] = {"source": "report", "channel": channel, "report_id": report_id, "photos": len(photos)}
            if lon is not None and lat is not None:
                details["position"] = {"lon": round(lon, 7), "lat": round(lat, 7)}
            if report.external_id:
                details["external_id"] = report.external_id
            observation = ReportObservation(
                report_id, channel, self.config.site, kind=IncidentKind(t.code, t.name_zh, t.name_en, t.category), at=now,
                summary=text or t.name_zh, details=details, snapshot=photos[0].jpeg if photos else None,
            )
            incident_id = self.manager.resident_report(observation).id
            self.book.link(report_id, incident_id)
            for photo in photos:
                try:
                    self.photos.add(incident_id, REPORT, photo, actor=actor, at=now, hold=hold)
                except PhotoStorageFull as exc:  # the room went meanwhile (the disk, another process): the case stands
                    log.warning("report %s: case %s is open, a photo of it was not stored: %s", report_id, incident_id, exc.reason)
        log.info("report %s from %s: %s, case %s, %d photo(s)", report_id, channel, report.type, incident_id, len(photos))
        return ReportReceipt(report_id, incident_id, code)
