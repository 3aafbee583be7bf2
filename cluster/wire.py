"""What crosses the wire from a worker to the case service: typed, versioned, size-capped observations.

A worker does not decide incidents. It ships the same observations the embedded service hands
its :class:`~gridworker.incidents.IncidentManager` (``vision/observations.py``): an analysed
frame (:class:`~gridworker.vision.analyzer.FrameAnalysis`: detections, rule verdicts, zones)
or a check's :class:`~gridworker.vision.observations.ObjectReport`, and the case service runs
the one IncidentManager on them. So there is still one incident writer, keyed camera + zone +
rule + object, and an observation applied twice finds its incident already open: it cannot
open a second one.

Evidence bytes travel inside the message (JetStream keeps them in its file store until the
case service has committed and acked): the frame's JPEG when the frame may open an incident (a
verdict key active now that was not on the camera's previous message), a report's own snapshot.
Everything else (a frame with nothing active, a frame whose active keys were already active) is
a few hundred bytes. Evidence clips do not travel inside: a clip reference (:class:`WireClip`)
names the file the worker wrote in the shared clips folder (``cluster/clips.py``).

Every message is hostile to the receiver: :func:`parse_observation` caps the raw size, the
JSON depth, every list and string, checks the version, the ids, that indices point into the
detections, that numbers are finite, and that a JPEG's declared size is the frame's size before
decoding it. Anything wrong raises :class:`WireError` (its message never repeats the payload).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Literal, Protocol

import cv2
import numpy as np
import supervision as sv
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import FrameAnalysis, RuleVerdict
from gridworker.vision.config import ZoneConfig
from gridworker.vision.observations import ObjectReport, ObjectSighting
from gridworker.vision.rules import IncidentKind
from gridworker.vision.rules.base import Hit, RuleResult
from gridworker.vision.zones import Zone

__all__ = [
    "MAX_CLIP_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_MESSAGE_BYTES",
    "WIRE_VERSION",
    "Observation",
    "WireError",
    "encode_clip",
    "encode_frame",
    "encode_outcome",
    "encode_report",
    "fit_jpeg",
    "parse_observation",
    "to_analysis",
    "to_report",
]

WIRE_VERSION = 1
#: A message larger than this is refused unread (NATS' default max_payload is 1 MiB).
MAX_MESSAGE_BYTES = 1_000_000
#: One JPEG inside a message, decoded (base64 makes it a third larger on the wire).
MAX_IMAGE_BYTES = 600_000
#: Largest frame a JPEG may declare (pixels), checked before decoding.
MAX_PIXELS = 4096 * 4096
MAX_JSON_DEPTH = 12
#: Largest evidence clip a clip reference may name (bytes; a camera's ring holds at most 1 GB).
MAX_CLIP_BYTES = 256_000_000
_MAX_BOXES = 1024
_MAX_VERDICTS = 512

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
#: a clip's path relative to the clips folder: folders and a name of safe characters ('..' is refused apart)
_CLIP_PATH = r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+){0,7}$"

Finite = Annotated[float, Field(allow_inf_nan=False)]
Short = Annotated[str, Field(max_length=200)]
Text = Annotated[str, Field(max_length=2000)]
Index = Annotated[int, Field(ge=0, lt=_MAX_BOXES)]
Details = Annotated[dict[Annotated[str, Field(max_length=100)], JsonValue], Field(max_length=200)]


class WireError(ValueError):
    """A message that is not a valid observation (the reason, never the payload).

    ``reason``: a short fixed phrase (what the consumer counts by); the message may add detail.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WireDetections(_Wire):
    """Aligned columns: xyxy in source-frame pixels."""

    xyxy: list[tuple[Finite, Finite, Finite, Finite]] = Field(default_factory=list, max_length=_MAX_BOXES)
    confidence: list[Finite] = Field(default_factory=list, max_length=_MAX_BOXES)
    class_id: list[Annotated[int, Field(ge=-1, le=100_000)]] = Field(default_factory=list, max_length=_MAX_BOXES)
    tracker_id: list[Annotated[int, Field(ge=-1, le=2**62)]] = Field(default_factory=list, max_length=_MAX_BOXES)
    class_name: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=_MAX_BOXES)

    @model_validator(mode="after")
    def _aligned(self) -> WireDetections:
        n = len(self.xyxy)
        if any(len(col) != n for col in (self.confidence, self.class_id, self.tracker_id, self.class_name)):
            raise ValueError("detection columns differ in length")
        return self


class WireHit(_Wire):
    key: Annotated[str, Field(min_length=1, max_length=200)]
    subjects: list[Index] = Field(default_factory=list, max_length=_MAX_BOXES)
    summary: Text = ""
    details: Details = Field(default_factory=dict)
    severity: Finite | None = None


class WireResult(_Wire):
    active: bool
    subjects: list[Index] = Field(default_factory=list, max_length=_MAX_BOXES)
    count: int = Field(0, ge=0, le=1_000_000)
    summary: Text = ""
    details: Details = Field(default_factory=dict)
    hits: list[WireHit] = Field(default_factory=list, max_length=_MAX_BOXES)
    severity: Finite | None = None


class WireKind(_Wire):
    code: Annotated[str, Field(pattern=_NAME)]
    name_zh: Short
    name_en: Short
    category: Literal["traffic", "street_order", "city_appearance", "public_safety"]


class WireVerdict(_Wire):
    zone_id: Annotated[str, Field(pattern=_NAME)]
    rule_id: Annotated[str, Field(pattern=_NAME)]
    rule_type: Annotated[str, Field(pattern=_NAME)]
    clear_after_s: Finite = Field(ge=0, le=86_400)
    result: WireResult
    kind: WireKind
    per_object: bool = False
    cooldown_s: Finite = Field(0.0, ge=0, le=86_400)


class WireZone(_Wire):
    id: Annotated[str, Field(pattern=_NAME)]
    name: Short | None = None
    polygon: list[tuple[Finite, Finite]] = Field(min_length=3, max_length=256)


class WireFrame(_Wire):
    seq: int = Field(ge=0, le=2**62)
    ts: Finite = Field(gt=0)
    width: int = Field(ge=1, le=16_384)
    height: int = Field(ge=1, le=16_384)
    partial: bool = False
    detections: WireDetections = Field(default_factory=WireDetections)
    verdicts: list[WireVerdict] = Field(default_factory=list, max_length=_MAX_VERDICTS)
    zones: list[WireZone] = Field(default_factory=list, max_length=256)
    jpeg: bytes | None = Field(None, description="base64 on the wire: the frame, when it may open an incident")

    @field_validator("jpeg", mode="before")
    @classmethod
    def _b64(cls, value: object) -> object:
        return _b64decode(value)

    @model_validator(mode="after")
    def _indices(self) -> WireFrame:
        n = len(self.detections.xyxy)
        for v in self.verdicts:
            if any(i >= n for i in v.result.subjects) or any(i >= n for h in v.result.hits for i in h.subjects):
                raise ValueError("a verdict names a detection the frame does not have")
        return self


class WireSighting(_Wire):
    key: Annotated[str, Field(min_length=1, max_length=200)]
    box: tuple[Finite, Finite, Finite, Finite]
    qualifies: bool = True
    summary: Text = ""
    details: Details = Field(default_factory=dict)
    jpeg: bytes | None = None

    @field_validator("jpeg", mode="before")
    @classmethod
    def _b64(cls, value: object) -> object:
        return _b64decode(value)


class WireReport(_Wire):
    zone_id: Annotated[str, Field(pattern=_NAME)]
    rule_id: Annotated[str, Field(pattern=_NAME)]
    kind: WireKind
    at: Finite = Field(gt=0)
    objects: list[WireSighting] = Field(default_factory=list, max_length=64)
    clear_after_s: Finite = Field(0.0, ge=0, le=86_400)
    cooldown_s: Finite = Field(0.0, ge=0, le=86_400)
    frame_seq: int | None = Field(None, ge=0, le=2**62)


class WireOutcome(_Wire):
    """A patrol visit that gave no frames (e.g. the camera is offline): reported, not retried."""

    ok: bool
    error_kind: Short | None = None
    reason: Text | None = None
    deliveries: int = Field(1, ge=1, le=1000)


class WireClip(_Wire):
    """The evidence clip of a frame that may have opened incidents (``of``: that frame's
    observation id), cut by the worker from the camera's packet ring into the shared clips
    folder; or why it was not (``missing``). ``path`` is relative to the clips folder and is
    checked again against the file system by the case service (``cluster/clips.py``)."""

    of: Annotated[str, Field(pattern=_ID)]
    opened_at: Finite = Field(gt=0)
    frame_seq: int = Field(ge=0, le=2**62)
    path: Annotated[str, Field(max_length=400, pattern=_CLIP_PATH)] | None = None
    size_bytes: int = Field(0, ge=0, le=MAX_CLIP_BYTES)
    duration_s: Finite = Field(0.0, ge=0, le=3_600)
    offset_s: Finite = Field(0.0, ge=-3_600, le=3_600)
    missing: Text | None = None

    @model_validator(mode="after")
    def _path_or_reason(self) -> WireClip:
        if (self.path is None) == (self.missing is None):
            raise ValueError("a clip reference needs exactly one of path, missing")
        if self.path is not None and (self.size_bytes < 1 or any(part in (".", "..") for part in self.path.split("/"))):
            raise ValueError("a clip path needs a size and no '.' or '..' parts")
        return self


class Observation(_Wire):
    """One message on the observations stream.

    Attributes:
        id: unique; also the message's ``Nats-Msg-Id`` (the broker drops a re-sent one) and the
            key of the case service's applied-ids table (it skips a redelivered one).
        worker: the sending worker.
        token: the camera lease's fencing token (0 inside a patrol visit: those are fenced by
            ``visit``, whose ids are the same whichever worker does the visit). Only a bound
            here: the case service checks it against the lease it issued (none above it, the
            lease's own token only from the lease's worker) and the camera's fence.
        visit: ``plan:cycle:camera`` when made inside a patrol visit; the case service accepts it
            only for a visit it queued for that camera.
        clip: a clip reference (continuous cameras): it carries the token of the frame it
            belongs to and is checked against the lease like a frame; below the fence only when
            that frame was applied (the clip is evidence of a frame applied before a handover).
    """

    v: Literal[1]
    id: Annotated[str, Field(pattern=_ID)]
    worker: Annotated[str, Field(pattern=_NAME)]
    camera_id: Annotated[str, Field(pattern=_NAME)]
    token: int = Field(ge=0, le=2**62)
    visit: Annotated[str, Field(pattern=_ID)] | None = None
    sent_at: Finite = Field(gt=0)
    frame: WireFrame | None = None
    report: WireReport | None = None
    outcome: WireOutcome | None = None
    clip: WireClip | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Observation:
        if sum(x is not None for x in (self.frame, self.report, self.outcome, self.clip)) != 1:
            raise ValueError("exactly one of frame, report, outcome, clip")
        if self.token == 0 and self.visit is None:
            raise ValueError("an observation outside a visit needs its lease token")
        return self


def _b64decode(value: object) -> object:
    if value is None or isinstance(value, bytes):
        return value
    if not isinstance(value, str) or len(value) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise ValueError("jpeg must be base64 text within the image cap")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ValueError("jpeg is not base64") from exc
    if raw[:2] != b"\xff\xd8":
        raise ValueError("jpeg is not a JPEG")
    return raw


def _depth(text: bytes) -> int:
    """Deepest bracket nesting of a JSON document (strings skipped), without parsing it."""
    depth = deepest = 0
    in_str = escaped = False
    for byte in text:
        if in_str:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_str = False
        elif byte == 0x22:
            in_str = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_observation(raw: bytes) -> Observation:
    """Validate one received message.

    Raises:
        WireError: oversized, too deeply nested, not JSON, the wrong version, or invalid.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise WireError("oversized", f"{len(raw)} bytes, cap {MAX_MESSAGE_BYTES}")
    if _depth(raw) > MAX_JSON_DEPTH:
        raise WireError("message nested too deeply")
    try:
        return Observation.model_validate_json(raw)
    except ValidationError as exc:
        if any(tuple(e["loc"]) == ("v",) for e in exc.errors()):
            raise WireError("unsupported wire version") from None
        where = sorted({".".join(str(p) for p in e["loc"][:3]) for e in exc.errors()})[:5]
        raise WireError("invalid observation", f"{exc.error_count()} error(s) at {', '.join(where)}") from None


# -- domain -> wire (the worker) ------------------------------------------------------------


def _jsonable(value: object) -> object:
    """json.dumps' fallback for the numpy scalars and arrays rules put in details."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _kind(kind: IncidentKind) -> dict[str, str]:
    return {"code": kind.code, "name_zh": kind.name_zh, "name_en": kind.name_en, "category": kind.category}


def _ints(values: object) -> list[int]:
    return [int(v) for v in np.asarray(values, dtype=np.int64).reshape(-1)]


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _envelope(obs_id: str, worker: str, camera_id: str, token: int, visit: str | None, sent_at: float) -> dict[str, object]:
    return {"v": WIRE_VERSION, "id": obs_id, "worker": worker, "camera_id": camera_id, "token": token, "visit": visit, "sent_at": sent_at}


def _dumps(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, default=_jsonable, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_frame(
    analysis: FrameAnalysis,
    *,
    obs_id: str,
    worker: str,
    token: int,
    visit: str | None,
    sent_at: float,
    partial: bool = False,
    jpeg: bytes | None = None,
) -> bytes:
    """One analysed frame as a message (``jpeg``: the frame's picture, when it may open an incident)."""
    frame, dets = analysis.frame, analysis.detections
    n = len(dets)
    names = dets.data.get("class_name")
    body: dict[str, object] = {
        "seq": int(frame.seq),
        "ts": float(frame.ts),
        "width": frame.width,
        "height": frame.height,
        "partial": partial,
        "detections": {
            "xyxy": np.asarray(dets.xyxy, dtype=np.float64).reshape(-1, 4).round(2).tolist(),
            "confidence": (np.asarray(dets.confidence, dtype=np.float64).round(4).tolist() if dets.confidence is not None else [1.0] * n),
            "class_id": _ints(dets.class_id) if dets.class_id is not None else [-1] * n,
            "tracker_id": _ints(dets.tracker_id) if dets.tracker_id is not None else [-1] * n,
            "class_name": [str(s) for s in names] if names is not None else [""] * n,
        },
        "verdicts": [
            {
                "zone_id": v.zone_id,
                "rule_id": v.rule_id,
                "rule_type": v.rule_type,
                "clear_after_s": float(v.clear_after_s),
                "per_object": v.per_object,
                "cooldown_s": float(v.cooldown_s),
                "kind": _kind(v.kind),
                "result": {
                    "active": v.result.active,
                    "subjects": _ints(v.result.subjects),
                    "count": int(v.result.count),
                    "summary": v.result.summary,
                    "details": v.result.details,
                    "severity": _num(v.result.severity),
                    "hits": [
                        {"key": h.key, "subjects": _ints(h.subjects), "summary": h.summary, "details": h.details, "severity": _num(h.severity)}
                        for h in v.result.hits
                    ],
                },
            }
            for v in analysis.verdicts
        ],
        "zones": [
            {
                "id": z.id,
                "name": z.config.name if isinstance(z.config, ZoneConfig) else None,
                "polygon": [[float(x), float(y)] for x, y in z.config.polygon],
            }
            for z in analysis.zones
        ],
        "jpeg": base64.b64encode(jpeg).decode() if jpeg is not None else None,
    }
    return _dumps({**_envelope(obs_id, worker, frame.camera_id, token, visit, sent_at), "frame": body})


def fit_jpeg(jpeg: bytes, max_bytes: int) -> bytes | None:
    """The picture within ``max_bytes`` (same size, lower JPEG quality), or None when it cannot be."""
    if len(jpeg) <= max_bytes:
        return jpeg
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    for quality in (60, 40, 25):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= max_bytes:
            return bytes(buf.tobytes())
    return None


def _sighting_body(o: ObjectSighting, jpeg: bytes | None, left_out: str | None) -> dict[str, object]:
    details = dict(o.details) if left_out is None else {**o.details, "snapshot_left_out": left_out}
    return {
        "key": o.key,
        "box": [float(v) for v in o.box],
        "qualifies": o.qualifies,
        "summary": o.summary,
        "details": details,
        "jpeg": base64.b64encode(jpeg).decode() if jpeg is not None else None,
    }


def encode_report(report: ObjectReport, *, obs_id: str, worker: str, token: int, visit: str | None, sent_at: float) -> bytes:
    """A check's :class:`ObjectReport` as a message (each sighting's snapshot inside).

    A snapshot over :data:`MAX_IMAGE_BYTES` is re-encoded at a lower quality (:func:`fit_jpeg`) or
    left out; while the message is over :data:`MAX_MESSAGE_BYTES` the pictures are left out from
    the first sighting on (the oldest vehicle: its incident opened at an earlier visit; the newest
    one's picture is the one that may open an incident now). A sighting without its picture says
    why in ``details["snapshot_left_out"]``; the report itself always goes.
    """
    pictures = [fit_jpeg(o.snapshot, MAX_IMAGE_BYTES) if o.snapshot is not None else None for o in report.objects]
    notes = [None if o.snapshot is None or p is not None else "picture over its size cap" for o, p in zip(report.objects, pictures)]
    envelope = _envelope(obs_id, worker, report.camera_id, token, visit, sent_at)
    dropping = iter([i for i, p in enumerate(pictures) if p is not None])
    while True:
        body = {
            "zone_id": report.zone_id,
            "rule_id": report.rule_id,
            "kind": _kind(report.kind),
            "at": float(report.at),
            "clear_after_s": float(report.clear_after_s),
            "cooldown_s": float(report.cooldown_s),
            "frame_seq": report.frame_seq,
            "objects": [_sighting_body(o, p, n) for o, p, n in zip(report.objects, pictures, notes)],
        }
        data = _dumps({**envelope, "report": body})
        drop = next(dropping, None) if len(data) > MAX_MESSAGE_BYTES else None
        if drop is None:
            return data
        pictures[drop], notes[drop] = None, "report over the message size cap"


def encode_outcome(
    camera_id: str, *, obs_id: str, worker: str, visit: str, sent_at: float, ok: bool, error_kind: str | None, reason: str | None, deliveries: int
) -> bytes:
    """A patrol visit's outcome (sent for a visit given up: the camera offline)."""
    body = {"ok": ok, "error_kind": error_kind, "reason": (reason or "")[:2000] or None, "deliveries": max(1, min(deliveries, 1000))}
    return _dumps({**_envelope(obs_id, worker, camera_id, 0, visit, sent_at), "outcome": body})


def encode_clip(
    camera_id: str,
    *,
    obs_id: str,
    worker: str,
    token: int,
    sent_at: float,
    of: str,
    opened_at: float,
    frame_seq: int,
    path: str | None = None,
    size_bytes: int = 0,
    duration_s: float = 0.0,
    offset_s: float = 0.0,
    missing: str | None = None,
) -> bytes:
    """A clip reference: the clip of observation ``of`` at ``path`` (relative to the clips folder), or why there is none."""
    body = {
        "of": of, "opened_at": float(opened_at), "frame_seq": int(frame_seq), "path": path, "size_bytes": int(size_bytes),
        "duration_s": float(duration_s), "offset_s": float(offset_s), "missing": None if missing is None else missing[:2000],
    }
    return _dumps({**_envelope(obs_id, worker, camera_id, token, None, sent_at), "clip": body})


# -- wire -> domain (the case service) --------------------------------------------------------


def _decode_jpeg(jpeg: bytes, size: tuple[int, int] | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a JPEG whose header was checked first (size, pixel cap)."""
    if len(jpeg) > MAX_IMAGE_BYTES:
        raise WireError("image over the size cap")
    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            if img.format != "JPEG":
                raise WireError("image is not a JPEG")
            w, h = img.size
            if w * h > MAX_PIXELS or (size is not None and (w, h) != size):
                raise WireError("image size does not match the frame")
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except WireError:
        raise
    except Exception as exc:  # PIL raises many kinds on a corrupt file
        raise WireError("image does not decode") from exc
    rgb.flags.writeable = False
    return rgb


def _placeholder(width: int, height: int) -> np.ndarray:
    """A grey frame of the right size costing one pixel of memory (a frame sent without its picture)."""
    grey = np.full((1, 1, 3), 96, dtype=np.uint8)
    return np.broadcast_to(grey, (height, width, 3))


def _kind_of(w: WireKind) -> IncidentKind:
    return IncidentKind(w.code, w.name_zh, w.name_en, w.category)


def _arr(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def to_analysis(obs: Observation, *, picture: bool = True) -> FrameAnalysis:
    """The :class:`FrameAnalysis` a frame message carries: its picture decoded, or a grey
    stand-in when it has none or ``picture`` is False (nothing will draw on it).

    Raises:
        WireError: the picture or a zone is invalid.
    """
    f = obs.frame
    if f is None:
        raise WireError("not a frame observation")
    decode = picture and f.jpeg is not None
    image = _decode_jpeg(f.jpeg, (f.width, f.height)) if decode and f.jpeg is not None else _placeholder(f.width, f.height)
    d = f.detections
    n = len(d.xyxy)
    dets = sv.Detections(
        xyxy=np.asarray(d.xyxy, dtype=np.float32).reshape(n, 4),
        confidence=np.asarray(d.confidence, dtype=np.float32),
        class_id=_arr(d.class_id),
        tracker_id=_arr(d.tracker_id),
        data={"class_name": np.asarray(d.class_name, dtype=str)},
    )
    verdicts = tuple(
        RuleVerdict(
            v.zone_id,
            v.rule_id,
            v.rule_type,
            v.clear_after_s,
            RuleResult(
                active=v.result.active,
                subjects=_arr(v.result.subjects),
                count=v.result.count,
                summary=v.result.summary,
                details=dict(v.result.details),
                hits=tuple(Hit(h.key, _arr(h.subjects), h.summary, dict(h.details), h.severity) for h in v.result.hits),
                severity=v.result.severity,
            ),
            _kind_of(v.kind),
            v.per_object,
            v.cooldown_s,
        )
        for v in f.verdicts
    )
    try:
        zones = tuple(Zone(ZoneConfig(id=z.id, name=z.name, polygon=list(z.polygon))) for z in f.zones)
    except ValidationError:
        raise WireError("invalid zone polygon") from None
    return FrameAnalysis(Frame(obs.camera_id, f.seq, f.ts, image), dets, verdicts, zones)


def to_report(obs: Observation) -> ObjectReport:
    """The :class:`ObjectReport` a report message carries (snapshots checked to be JPEGs)."""
    r = obs.report
    if r is None:
        raise WireError("not a report observation")
    for o in r.objects:
        if o.jpeg is not None:
            _decode_jpeg(o.jpeg, None)  # a real, bounded JPEG (the store serves it to browsers)
    objects = tuple(
        ObjectSighting(o.key, o.box, o.qualifies, o.summary, dict(o.details), o.jpeg) for o in r.objects
    )
    return ObjectReport(
        obs.camera_id, r.zone_id, r.rule_id, _kind_of(r.kind), r.at, objects, r.clear_after_s, r.cooldown_s, r.frame_seq
    )


class _HitLike(Protocol):
    @property
    def key(self) -> str: ...


class _ResultLike(Protocol):
    @property
    def active(self) -> bool: ...

    @property
    def hits(self) -> Sequence[_HitLike]: ...


class _VerdictLike(Protocol):
    @property
    def zone_id(self) -> str: ...

    @property
    def rule_id(self) -> str: ...

    @property
    def per_object(self) -> bool: ...

    @property
    def result(self) -> _ResultLike: ...


def _active_keys(verdicts: Iterable[_VerdictLike]) -> frozenset[tuple[str, str, str]]:
    """The (zone, rule, object) keys active among ``verdicts``: those that may open an incident."""
    out: set[tuple[str, str, str]] = set()
    for v in verdicts:
        if not v.result.active:
            continue
        if v.per_object and v.result.hits:
            out.update((v.zone_id, v.rule_id, h.key) for h in v.result.hits)
        else:
            out.add((v.zone_id, v.rule_id, ""))
    return frozenset(out)


def wire_keys(frame: WireFrame) -> frozenset[tuple[str, str, str]]:
    """:func:`frame_keys` of a received frame, before its picture is decoded."""
    return _active_keys(frame.verdicts)


def frame_keys(analysis: FrameAnalysis) -> frozenset[tuple[str, str, str]]:
    """The keys active on an analysed frame."""
    return _active_keys(analysis.verdicts)
