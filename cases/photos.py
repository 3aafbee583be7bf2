"""Photos of a case: a resident's report photos and a handler's photos of the result (issue 15).

Every photo that enters the service passes :func:`normalise_photo` first:

* the caller has already capped the upload's bytes (the request-body cap, api/limits.py, and
  the route's per-file read cap); here the bytes must start as a JPEG or PNG does and decode as
  one (Pillow, formats limited to those two), else :class:`PhotoError` (415/422);
* a picture over ``max_input_pixels`` is refused before its pixels are decoded (a
  decompression bomb is a few KB of PNG); a JPEG is decoded at a reduced scale when that
  suffices (``draft``), so a 48 MP phone photo never sits in memory at full size;
* what is decoded is bounded too: a PNG (which cannot be decoded at a reduced scale) or a
  progressive or multi-scan JPEG (libjpeg holds all of its coefficients: a progressive one, or
  a sequential one whose colours come in separate scans) of more than ``max_decoded_pixels``
  (16 MP), or a JPEG still larger than that at its smallest decoding scale, is refused before
  its pixels are decoded; so one photo's decoding peaks at about 140 MB (a 16 MP RGBA PNG);
* at most a :class:`PhotoGate`'s ``slots`` (2) photos are decoded at once; a photo waits for a
  slot at most ``wait_s`` (10 s), then :class:`PhotoBusy` (503). The service builds one gate
  and hands it to everything that takes photos (the photo store, which the report intake and
  the phone page use, and the workflow's ``handle``), so the memory of all photo decoding
  together is bounded, however many requests bring photos;
* the decoded picture is first reduced (a box filter by a whole factor) to between one and two
  times its final size; the camera's orientation is then applied and transparency flattened on
  that small copy, which is scaled to at most ``max_side`` pixels on its longer side and
  re-encoded as a baseline JPEG: whatever else the upload carried (other EXIF, XMP, ICC,
  comments, trailing bytes) is gone;
* of the EXIF only the GPS **location** survives (latitude, longitude and their refs),
  re-written from the validated numbers; the device, the time and the rest are stripped.

:class:`PhotoStore` keeps the JPEG files beside the evidence clips (``<photos_dir>/<id>.jpg``)
with one row each in ``case_photos`` (migration 0005). Its disk use is bounded: every file is
small (bounded pixels), a case holds at most ``max_per_case`` photos, no photo is written
while its budget is spent or the disk has less than ``min_free_bytes`` free
(:class:`PhotoStorageFull`, 507), and retention deletes the oldest (``prune_photos``,
incidents/retention.py). The same picture sent twice to a case (as the same kind) is stored once
(its SHA-256): a phone's retried upload does not add a copy.

There are two budgets, each with its own retention: the photos sent with residents' reports on
the public page (no key: kind ``report``, actor :data:`PUBLIC_ACTOR`) add up to at most
``public_max_total_bytes``; all others (handlers' photos, the intake API's report photos: people
and systems with an account or a key) to at most ``max_total_bytes``. A full public budget
refuses only new public photos, and retention deletes the oldest photos of each budget down to
that budget's own bound, so anonymous uploads never push out a handler's evidence. The two are
told apart by columns every row has had since migration 0005 (``kind``, ``actor``).
:meth:`PhotoStore.reserve` holds a budget's room for photos before their case is opened, so a
report refused for want of room opens no case.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import secrets
import shutil
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError
from PIL.ExifTags import GPS, IFD
from sqlalchemy import ColumnElement, Float, ForeignKey, Integer, String, and_, delete, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from gridworker.incidents.db import Base, Database, to_domain

__all__ = [
    "HANDLING",
    "PUBLIC_ACTOR",
    "REPORT",
    "CasePhoto",
    "Photo",
    "PhotoBusy",
    "PhotoError",
    "PhotoGate",
    "PhotoHold",
    "PhotoLimits",
    "PhotoRetention",
    "PhotoStorageFull",
    "PhotoStore",
    "is_public",
    "normalise_photo",
    "prune_photos",
]

log = logging.getLogger(__name__)

REPORT = "report"  # sent with a resident's or the 12345 platform's report
HANDLING = "handling"  # taken by the handler on site
KINDS = (REPORT, HANDLING)
#: The ``actor`` of the photos sent with residents' reports on the public page (no key):
#: incidents/reports.py writes ``report:<channel>``, and ``resident`` is the public page's
#: channel only (the intake API refuses it). These photos have a budget of their own.
PUBLIC_ACTOR = "report:resident"

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.jpg$")  # what PhotoStore writes


class PhotoError(ValueError):
    """An upload that is not a photo we take; ``status`` is the HTTP answer (415: not a
    JPEG/PNG at all, 422: one that does not decode or is too large in pixels)."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class PhotoBusy(PhotoError):
    """No slot to decode the photo came free in time (503): try again in a moment."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, status=503)


#: Pixels decoded at most for one photo by default (a 16 MP RGBA PNG: about 140 MB while decoded).
DEFAULT_MAX_DECODED_PIXELS = 16_000_000
#: The longer side of a stored photo by default, pixels (``reports.photos.max_side``).
DEFAULT_MAX_SIDE = 1600
#: Photos with more pixels are refused before decoding by default (``reports.photos.max_input_megapixels``).
DEFAULT_MAX_INPUT_PIXELS = 50_000_000


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """The size limits :func:`normalise_photo` applies: the stored photo's longer side
    (``max_side``, pixels) and the most pixels an upload may have before it is decoded
    (``max_input_pixels``). The service builds one from ``reports.photos`` for the paths that
    do not read the settings themselves (the workflow's ``handle``)."""

    max_side: int = DEFAULT_MAX_SIDE
    max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS

    def __post_init__(self) -> None:
        if self.max_side < 1 or self.max_input_pixels < 1:
            raise ValueError("photo limits need a side and a pixel bound of at least 1")


class PhotoGate:
    """At most ``slots`` photos normalised at once; a caller waits at most ``wait_s`` seconds for
    a slot, then :class:`PhotoBusy`. Waiting callers are threads of the server's pool (bounded).
    ``max_decoded_pixels``: the most pixels one photo decodes through this gate (see
    :func:`normalise_photo`), so the gate bounds the photos' memory together."""

    def __init__(self, slots: int = 2, wait_s: float = 10.0, max_decoded_pixels: int = DEFAULT_MAX_DECODED_PIXELS) -> None:
        if slots < 1 or wait_s < 0 or max_decoded_pixels < 1:
            raise ValueError("a photo gate needs at least one slot, a wait of 0 s or more and a pixel bound")
        self.slots = slots
        self.wait_s = wait_s
        self.max_decoded_pixels = max_decoded_pixels
        self._free = threading.BoundedSemaphore(slots)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.wait_s):
            log.warning("photo refused: all %d photo decoding slots stayed busy for %g s", self.slots, self.wait_s)
            raise PhotoBusy(f"too many photos are being processed right now; try again in a moment (waited {self.wait_s:g} s)")
        try:
            yield
        finally:
            self._free.release()




class PhotoStorageFull(RuntimeError):
    """No photo is written now: the photos' total or the disk's free space is at its limit (507),
    or the case already holds its most photos (409, ``status``)."""

    def __init__(self, reason: str, status: int = 507) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class Photo:
    """A normalised photo: a JPEG of at most ``max_side`` pixels a side, holding no EXIF but
    its location.

    Attributes:
        jpeg: the re-encoded JPEG.
        width: pixels.
        height: pixels.
        lon: WGS84 longitude from the upload's EXIF GPS, degrees east; None without one.
        lat: WGS84 latitude, degrees north; None without one.
    """

    jpeg: bytes
    width: int
    height: int
    lon: float | None = None
    lat: float | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jpeg).hexdigest()


def _degrees(value: object, ref: object, negative: str) -> float | None:
    """An EXIF GPS (degrees, minutes, seconds) triple and its ref → signed degrees; None if malformed."""
    if not isinstance(value, tuple) or len(value) != 3 or not isinstance(ref, str):
        return None
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(v) and v >= 0 for v in (d, m, s)) or m >= 60 or s >= 60:
        return None
    deg = d + m / 60.0 + s / 3600.0
    return -deg if ref.strip().upper() == negative else deg


def _location(img: Image.Image) -> tuple[float, float] | None:
    """(lon, lat) from the EXIF GPS IFD when it holds a valid position, else None."""
    try:
        gps = img.getexif().get_ifd(IFD.GPSInfo)
    except Exception:  # a malformed EXIF block: no location, the picture itself may be fine
        return None
    lat = _degrees(gps.get(GPS.GPSLatitude), gps.get(GPS.GPSLatitudeRef), "S")
    lon = _degrees(gps.get(GPS.GPSLongitude), gps.get(GPS.GPSLongitudeRef), "W")
    if lat is None or lon is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return lon, lat


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    d = math.floor(value)
    m = math.floor((value - d) * 60.0)
    return float(d), float(m), round((value - d - m / 60.0) * 3600.0, 4)


def _gps_exif(lon: float, lat: float) -> bytes:
    """An EXIF block holding only a GPS IFD with the location."""
    exif = Image.Exif()
    exif[IFD.GPSInfo] = {
        GPS.GPSLatitudeRef: "S" if lat < 0 else "N",
        GPS.GPSLatitude: _dms(lat),
        GPS.GPSLongitudeRef: "W" if lon < 0 else "E",
        GPS.GPSLongitude: _dms(lon),
    }
    return exif.tobytes()


def _fit(w: int, h: int, side: int) -> tuple[int, int]:
    """The size of a w x h picture scaled to at most ``side`` pixels on its longer side."""
    if max(w, h) <= side:
        return w, h
    if w >= h:
        return side, max(1, round(h * side / w))
    return max(1, round(w * side / h)), side


#: Start-of-frame markers (every coding but DHT/JPG/DAC, which share the C4/C8/CC codes).
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _interleaved_jpeg(data: bytes) -> bool:
    """Whether the JPEG's first scan holds all of its frame's components (read from the markers).

    A sequential JPEG decodes a scan at a time; when each colour sits in a scan of its own,
    libjpeg keeps every component's coefficients at full size until the last scan, as for a
    progressive one, whatever the decoding scale. False for anything that cannot be read.
    """
    pos, components = 2, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return False
        if marker in _SOF_MARKERS and pos + 10 <= len(data):
            components = data[pos + 9]
        elif marker == 0xDA:  # start of scan: its component count follows the length
            return pos + 5 <= len(data) and components > 0 and data[pos + 4] == components
        pos += 2 + length
    return False


def _open(data: bytes, max_side: int, max_input_pixels: int, max_decoded_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """The upload opened (header only, nothing decoded yet) and the size it is scaled to; a JPEG
    set to decode at the smallest scale still covering that size. Refuses too many pixels."""
    # the format's own reader, not Image.open: another library in the process may have patched
    # Image.open (Ultralytics does, to install a HEIF plugin on the first unreadable file)
    reader = JpegImagePlugin.JpegImageFile if data.startswith(JPEG_MAGIC) else PngImagePlugin.PngImageFile
    with warnings.catch_warnings():  # a picture over Pillow's own pixel warning is refused below, by our cap
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = reader(io.BytesIO(data))
    w, h = img.size
    if w < 1 or h < 1 or w * h > max_input_pixels:
        img.close()
        raise PhotoError(f"the picture is {w}x{h} pixels; at most {max_input_pixels // 1_000_000} megapixels are taken")
    target = _fit(w, h, max_side)
    if img.format == "JPEG":
        img.draft("RGB", target)  # decode at 1/2, 1/4 or 1/8 scale when that still covers the result
    # libjpeg holds all of a progressive JPEG's coefficients at full size, whatever the scale,
    # and so it does for a sequential one whose colours come in separate scans
    scalable = img.format == "JPEG" and not img.info.get("progressive") and _interleaved_jpeg(data)
    dw, dh = img.size if scalable else (w, h)
    if dw * dh > max_decoded_pixels:
        img.close()
        what = "a JPEG at its smallest decoding scale" if scalable else "a PNG" if img.format != "JPEG" else "a progressive or multi-scan JPEG"
        raise PhotoError(f"the picture is {w}x{h} pixels; at most {max_decoded_pixels / 1e6:g} megapixels are decoded for {what}")
    return img, target


def _shrunk(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """A new RGB picture of ``img`` (decoded here), upright, its transparency on white, reduced by
    a whole factor to between one and two times ``target`` (the full-size decode is copied only
    to convert a mode ``reduce`` does not take: palette, 1-bit, 16-bit, CMYK)."""
    img.load()
    clear = img.mode == "PA" or (img.mode == "P" and "transparency" in img.info)
    pixels = img if img.mode in ("RGB", "RGBA", "L", "LA") else img.convert("RGBA" if clear else "RGB")  # reduce() takes no P, 1, I;16
    factor = min(pixels.width // target[0], pixels.height // target[1])
    if factor >= 2:
        pixels = pixels.reduce(factor)  # keeps ``info``, so the EXIF orientation below
    upright = ImageOps.exif_transpose(pixels)  # a copy, never ``img`` itself
    if upright.mode in ("RGBA", "LA"):
        rgba = upright.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return upright.convert("RGB")


def normalise_photo(
    data: bytes,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
    quality: int = 85,
    max_decoded_pixels: int | None = None,
    gate: PhotoGate | None = None,
) -> Photo:
    """Check that ``data`` is a JPEG or PNG, and re-encode it bounded (see the module docstring).

    Args:
        data: the upload, already capped in bytes by the caller.
        max_side: the longer side of the result, pixels.
        max_input_pixels: uploads with more pixels are refused before they are decoded.
        quality: JPEG quality of the result.
        max_decoded_pixels: the most pixels decoded: a PNG or progressive/multi-scan JPEG with more, or a
            JPEG with more at its smallest decoding scale, is refused before it is decoded (None:
            the gate's bound, or 16 MP without a gate).
        gate: the decoding slots to wait for (the service's one gate); None: not bounded here
            (a caller that decodes one photo at a time, as a test or an offline tool).

    Raises:
        PhotoError: not a JPEG/PNG (415), or one that does not decode or is too large (422).
        PhotoBusy: no decoding slot came free in time (503).

    Example:
        >>> upload = io.BytesIO()
        >>> Image.new("RGB", (2560, 1920), "grey").save(upload, "JPEG")   # stands in for bus.jpg
        >>> photo = normalise_photo(upload.getvalue(), max_side=1280)
        >>> max(photo.width, photo.height) <= 1280
        True
        >>> (photo.width, photo.height), photo.lat is None
        ((1280, 960), True)
    """
    if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
        raise PhotoError("not a photo: only JPEG and PNG images are taken", status=415)
    try:
        if max_decoded_pixels is None:
            max_decoded_pixels = gate.max_decoded_pixels if gate is not None else DEFAULT_MAX_DECODED_PIXELS
        img, target = _open(data, max_side, max_input_pixels, max_decoded_pixels)
        with img, (nullcontext() if gate is None else gate.slot()):
            where = _location(img)  # (a PNG's EXIF may follow its pixels: read under the gate)
            pixels = _shrunk(img, target)
            img.close()  # the full-size decode goes before the encoding
            pixels.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            extra = {"exif": _gps_exif(*where)} if where is not None else {}
            pixels.save(out, "JPEG", quality=quality, optimize=True, **extra)
    except PhotoError:
        raise
    except Image.DecompressionBombError:
        raise PhotoError(f"the picture has too many pixels; at most {max_input_pixels // 1_000_000} megapixels are taken") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PhotoError(f"the image does not decode ({type(exc).__name__})") from None
    return Photo(out.getvalue(), pixels.width, pixels.height, lon=where[0] if where else None, lat=where[1] if where else None)


# -- storage ----------------------------------------------------------------------------------
class CasePhotoRow(Base):
    """One photo of a case (migration 0005); the JPEG is a file in the photos folder."""

    __tablename__ = "case_photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80))  # the file's name in the photos folder
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    actor: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float, index=True)


@dataclass(frozen=True, slots=True)
class CasePhoto:
    """A stored photo's record (``name`` is its file in the photos folder)."""

    id: int
    incident_id: int
    kind: str
    name: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    lon: float | None
    lat: float | None
    actor: str
    created_at: float


def is_public(kind: str, actor: str) -> bool:
    """Whether a photo of ``kind`` stored by ``actor`` came with a resident's report on the public
    page (no key): it counts in the public budget, every other photo in the main one."""
    return kind == REPORT and actor == PUBLIC_ACTOR


def _in_budget(public: bool) -> ColumnElement[bool]:
    """The rows of the public budget (or of the main one): :func:`is_public` in SQL (both
    columns are NOT NULL, so every row is in exactly one)."""
    if public:
        return and_(CasePhotoRow.kind == REPORT, CasePhotoRow.actor == PUBLIC_ACTOR)
    return or_(CasePhotoRow.kind != REPORT, CasePhotoRow.actor != PUBLIC_ACTOR)


@dataclass(slots=True)
class PhotoHold:
    """Room held in one budget by :meth:`PhotoStore.reserve` (``left``: bytes still held)."""

    public: bool
    left: int


class PhotoStore:
    """The photos of cases: JPEG files in ``photos_dir``, a ``case_photos`` row each.

    Args:
        db: the service's database.
        photos_dir: folder of the files (created when needed).
        max_total_bytes: no photo but a public one is written while those stored add up to this
            (handlers' photos and the intake API's report photos).
        max_per_case: photos one case may hold (report and handling photos together).
        min_free_bytes: no photo is written while the disk has less free space than this.
        gate: the decoding slots :meth:`normalise` waits for (the service's one gate; default
            a gate of this store's own).
        public_max_total_bytes: no photo of a resident's public report (:func:`is_public`) is
            written while those stored add up to this; they never count against the other budget.

    Example::

        store = PhotoStore(db, Path("var/photos"), gate=gate)
        saved = store.add(12, HANDLING, store.normalise(upload), actor="person:7")
    """

    def __init__(
        self,
        db: Database,
        photos_dir: Path,
        *,
        max_total_bytes: int = 2_000_000_000,
        max_per_case: int = 12,
        min_free_bytes: int = 256_000_000,
        gate: PhotoGate | None = None,
        public_max_total_bytes: int = 1_000_000_000,
    ) -> None:
        self.db = db
        self.photos_dir = Path(photos_dir).resolve()
        self.gate = gate if gate is not None else PhotoGate()
        self.max_total_bytes = max_total_bytes
        self.public_max_total_bytes = public_max_total_bytes
        self.max_per_case = max_per_case
        self.min_free_bytes = min_free_bytes
        # bytes promised to photos not yet stored, by budget (public or not): checked with the
        # stored ones, so photos stored at once in this process never overrun a budget together
        self._lock = threading.Lock()
        self._held = {True: 0, False: 0}

    def normalise(self, data: bytes, *, max_side: int, max_input_pixels: int) -> Photo:
        """:func:`normalise_photo` under this store's gate."""
        return normalise_photo(data, max_side=max_side, max_input_pixels=max_input_pixels, gate=self.gate)

    def total_bytes(self, public: bool | None = None) -> int:
        """Bytes of the stored photos: all of them, or those of the public budget (True) or of the
        main one (False)."""
        query = select(func.coalesce(func.sum(CasePhotoRow.size_bytes), 0))
        if public is not None:
            query = query.where(_in_budget(public))
        with self.db.transaction() as s:
            return int(s.scalar(query) or 0)

    def _check_room(self, public: bool, need: int) -> None:
        """Raise :class:`PhotoStorageFull` unless ``need`` more bytes fit the budget and the disk
        (with what is held for photos not yet stored). Called under ``_lock``."""
        if public:
            if self.total_bytes(True) + self._held[True] + need > self.public_max_total_bytes:
                log.warning("public report photo refused: the residents' photo budget (%g MB) is spent", self.public_max_total_bytes / 1e6)
                raise PhotoStorageFull("storage for residents' photos is full right now; try again later, or send the report without photos")
        elif self.total_bytes(False) + self._held[False] + need > self.max_total_bytes:
            raise PhotoStorageFull(f"photo storage is full ({self.max_total_bytes / 1e6:g} MB); retention frees it")
        self.photos_dir.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(self.photos_dir).free - self._held[True] - self._held[False] - need < self.min_free_bytes:
            raise PhotoStorageFull("the photo disk is nearly full")

    @contextmanager
    def reserve(self, kind: str, photos: Sequence[Photo], *, actor: str = "") -> Iterator[PhotoHold]:
        """Hold room for ``photos`` of a case about to be opened (as ``kind`` from ``actor``) until
        the block ends; :meth:`add` given the hold uses it. A report checks its photos' room this
        way before it opens its case. Nothing to hold (no photos): never refused.

        Raises:
            PhotoStorageFull: more photos than a case holds (409), or no room in the budget or on
                the disk (507), before anything is stored.
        """
        if len(photos) > self.max_per_case:
            raise PhotoStorageFull(f"{len(photos)} photos are more than a case holds (at most {self.max_per_case})", status=409)
        hold = PhotoHold(is_public(kind, actor), sum(len(p.jpeg) for p in photos))
        if hold.left:
            with self._lock:
                self._check_room(hold.public, hold.left)
                self._held[hold.public] += hold.left
        try:
            yield hold
        finally:
            with self._lock:
                self._held[hold.public] -= hold.left
                hold.left = 0

    def add(
        self, incident_id: int, kind: str, photo: Photo, *, actor: str = "", at: float | None = None, hold: PhotoHold | None = None
    ) -> CasePhoto:
        """Store ``photo`` for the case (the same picture again, of the same kind: its existing record).
        Its budget is the public one when :func:`is_public` (``kind``, ``actor``), else the main
        one; with a ``hold`` of :meth:`reserve` that still covers it, its room is the hold's.

        Raises:
            PhotoStorageFull: over its budget, the disk's free space or the case's count.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown photo kind {kind!r}")
        digest = photo.sha256
        with self.db.transaction() as s:
            same = s.scalars(
                select(CasePhotoRow).where(CasePhotoRow.incident_id == incident_id, CasePhotoRow.kind == kind, CasePhotoRow.sha256 == digest)
            ).first()
            if same is not None:
                return to_domain(CasePhoto, same)
            count = int(s.scalar(select(func.count()).where(CasePhotoRow.incident_id == incident_id)) or 0)
        if count >= self.max_per_case:
            raise PhotoStorageFull(f"the case already has {count} photos (at most {self.max_per_case})", status=409)
        public, size = is_public(kind, actor), len(photo.jpeg)
        with self._lock:
            held = hold if hold is not None and hold.public == public and hold.left >= size else None
            if held is None:  # no room held for it yet: check and hold its own
                self._check_room(public, size)
                self._held[public] += size
        try:
            return self._write(incident_id, kind, photo, digest, actor, at)
        finally:  # stored (now counted in the total) or not: the room is no longer held for it
            with self._lock:
                self._held[public] -= size
                if held is not None:
                    held.left -= size

    def _write(self, incident_id: int, kind: str, photo: Photo, digest: str, actor: str, at: float | None) -> CasePhoto:
        """The file, then its row (no file without a row)."""
        self.photos_dir.mkdir(parents=True, exist_ok=True)
        name = f"{secrets.token_urlsafe(18)}.jpg"
        path = self.photos_dir / name
        tmp = path.with_name(f".{name}.part")
        tmp.write_bytes(photo.jpeg)
        os.replace(tmp, path)
        now = time.time() if at is None else at
        try:
            with self.db.transaction() as s:
                row = CasePhotoRow(
                    incident_id=incident_id, kind=kind, name=name, sha256=digest, size_bytes=len(photo.jpeg), width=photo.width,
                    height=photo.height, lon=photo.lon, lat=photo.lat, actor=actor[:200], created_at=now,
                )
                s.add(row)
                s.flush()
                return to_domain(CasePhoto, row)
        except Exception:
            path.unlink(missing_ok=True)  # no file without a row
            raise

    def list(self, incident_id: int) -> list[CasePhoto]:
        """The case's photos, oldest first."""
        with self.db.transaction() as s:
            rows = s.scalars(select(CasePhotoRow).where(CasePhotoRow.incident_id == incident_id).order_by(CasePhotoRow.id)).all()
            return [to_domain(CasePhoto, r) for r in rows]

    def get(self, photo_id: int) -> CasePhoto | None:
        with self.db.transaction() as s:
            row = s.get(CasePhotoRow, photo_id)
            return None if row is None else to_domain(CasePhoto, row)

    def read(self, photo: CasePhoto) -> bytes | None:
        """The photo's JPEG; None when its file is gone."""
        if _NAME.match(photo.name) is None:
            return None
        try:
            return (self.photos_dir / photo.name).read_bytes()
        except OSError:
            return None


def prune_photos(
    store: PhotoStore, *, now: float, max_age_s: float | None, max_total_bytes: int | None, batch: int = 500,
    public_max_total_bytes: int | None = None,
) -> tuple[int, int]:
    """Delete photos older than ``max_age_s``, then, budget by budget, the oldest of a budget
    while its photos add up to more than its bound: those of residents' public reports over
    ``public_max_total_bytes``, all others over ``max_total_bytes`` (None: no bound). A photo
    is deleted only for its own budget's sake. The file first, then its row. Returns (photos
    deleted, bytes freed)."""
    deleted = freed = 0

    def drop(rows: list[CasePhotoRow]) -> None:
        nonlocal deleted, freed
        for r in rows:
            if _NAME.match(r.name):
                try:
                    (store.photos_dir / r.name).unlink(missing_ok=True)
                except OSError as exc:
                    log.error("retention: cannot delete photo %s: %s", r.name, exc)
                    continue
            with store.db.transaction() as s:
                s.execute(delete(CasePhotoRow).where(CasePhotoRow.id == r.id))
            deleted, freed = deleted + 1, freed + r.size_bytes

    if max_age_s is not None:
        while True:
            with store.db.transaction() as s:
                old = list(s.scalars(select(CasePhotoRow).where(CasePhotoRow.created_at < now - max_age_s).order_by(CasePhotoRow.id).limit(batch)).all())
                s.expunge_all()
            if not old:
                break
            before = deleted
            drop(old)
            if deleted == before:
                break
    for public, bound in ((True, public_max_total_bytes), (False, max_total_bytes)):
        if bound is None:
            continue
        total = store.total_bytes(public)
        while total > bound:
            with store.db.transaction() as s:
                oldest = list(s.scalars(
                    select(CasePhotoRow).where(_in_budget(public)).order_by(CasePhotoRow.created_at, CasePhotoRow.id).limit(batch)
                ).all())
                s.expunge_all()
            if not oldest:
                break
            before = deleted
            for r in oldest:
                if total <= bound:
                    break
                drop([r])
                total -= r.size_bytes
            if deleted == before:
                break
    return deleted, freed


@dataclass(frozen=True, slots=True)
class PhotoRetention:
    """What retention deletes of the photos of cases (``reports.photos`` in the config): the
    photos of ``store`` older than ``max_age_s``, then the oldest of residents' public reports
    while those are over ``public_max_total_bytes``, and the oldest of the others (handlers', the
    intake API's) while those are over ``max_total_bytes`` (see :func:`prune_photos`)."""

    store: PhotoStore
    max_age_s: float | None
    max_total_bytes: int | None
    public_max_total_bytes: int | None = None

    def run(self, now: float) -> tuple[int, int]:
        """One pass; returns (photos deleted, bytes freed)."""
        return prune_photos(
            self.store, now=now, max_age_s=self.max_age_s, max_total_bytes=self.max_total_bytes,
            public_max_total_bytes=self.public_max_total_bytes,
        )
