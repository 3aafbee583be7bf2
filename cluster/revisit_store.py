"""The revisit (two-captures) parking check's memory, shared by the workers through a KV bucket.

A patrol-only camera's visits go to whichever worker pulls them (cluster/visits.py), so what
the camera's :class:`~gridworker.vision.visits.VisitAnalyzer` remembers of the vehicles seen
standing at earlier visits must travel with the camera. It is kept in the bucket
``<prefix>_revisit``, key = camera id, value = a small versioned JSON (:func:`encode_memory`):
per zone + rule the sightings (time, frame reference, box, class, confidence, zone, misses,
reported) and the first captures' annotated JPEGs (the left half of the pair snapshot),
each within :data:`MAX_PICTURE_BYTES`, the whole within :data:`MAX_VALUE_BYTES`.

Around each glance visit of a camera with a revisit zone, :class:`SharedRevisitJudge`:

1. reads the key; when its revision is not the one this judge wrote or loaded last (another
   worker made the previous visit), it validates the value as hostile input and restores it
   (a worker that made the previous visit itself only compares the revision);
2. judges the visit with the local judge and hands the judgement to the sink (the worker's
   publisher); when the sink raises (the visit's reports not stored: the visit fails and is
   done again), the local judge forgets the visit and nothing is written, so the visit done
   again reports a vehicle this one would have marked reported;
3. writes the new memory with ``update(last=revision)`` (``create`` for a new key). Two visits
   of one camera do not run at once by design, but two plans may race: a write refused for a
   revision conflict reads the other's memory, merges both
   (:func:`~gridworker.vision.visits.merge_visit_memories`: no sighting of either is lost, a
   vehicle both saw is kept once with the older first capture), restores the merge and writes
   it on the other's revision (three tries).

A bad value (oversized, not JSON, wrong version or schema, a number not finite, a picture
that is not a JPEG) is logged (camera id and the kind of fault, never the value) and ignored:
the visit is judged with the local memory and its write replaces the bad value. NATS away:
the visit is judged with the local memory and the next visit reads the key again.

The bucket's ``max_age`` (:data:`REVISIT_TTL_S`, 3 days) is longer than the longest gap the
check spans (``min_gap_s`` <= 1 day) plus a patrol schedule's longest pause (a weekend): each
visit's write renews the key, so a camera's memory ages out only when nobody visited it for
that long. ``gridworker run`` never builds any of this.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import supervision as sv
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridworker.streams.frame import Frame
from gridworker.streams.redact import get_logger
from gridworker.vision.config import SceneConfig
from gridworker.vision.observations import VisitJudgement
from gridworker.vision.pipeline import CameraSlot
from gridworker.vision.revisit import ParkedState, RevisitMemory, Sighting
from gridworker.vision.visits import VisitAnalyzer, VisitMemory, merge_visit_memories

from .link import NatsLink
from .wire import fit_jpeg

__all__ = [
    "MAX_PICTURE_BYTES",
    "MAX_VALUE_BYTES",
    "REVISIT_TTL_S",
    "BadMemory",
    "RevisitStore",
    "SharedRevisitJudge",
    "decode_memory",
    "encode_memory",
]

log = get_logger(__name__)

#: the bucket's max_age: > 1 day (the longest min_gap_s) + a weekend without patrol windows
REVISIT_TTL_S = 3 * 86_400.0
#: a value is at most this long (the bucket refuses longer ones; NATS' max_payload is 1 MiB)
MAX_VALUE_BYTES = 768 * 1024
#: one first-capture picture is at most this long (re-encoded smaller, else left out)
MAX_PICTURE_BYTES = 160 * 1024
#: the pictures of one value together (raw bytes; base64 makes them 4/3 as long)
MAX_PICTURES_BYTES = 480 * 1024
_WRITE_TRIES = 3
_REF = r"^[\x21-\x7e]{1,200}$"  # printable ASCII, no spaces (the judge's refs: camera#seq@ts)
_Num = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]
_Coord = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]


class BadMemory(ValueError):
    """A stored value that is not a revisit memory (its reason names the fault, never the value)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _SightingJson(_Strict):
    ts: _Num
    frame_ref: Annotated[str, Field(pattern=_REF)]
    xyxy: Annotated[list[_Coord], Field(min_length=4, max_length=4)]
    class_name: Annotated[str, Field(max_length=64)] = Field(alias="class")
    confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _ParkedJson(_Strict):
    zone: Annotated[str, Field(min_length=1, max_length=64)]
    first: _SightingJson
    latest: _SightingJson
    misses: int = Field(0, ge=0, le=100)
    reported: bool = False


class _ZoneJson(_Strict):
    last_ts: _Num | None = None
    parked: Annotated[list[_ParkedJson], Field(max_length=200)] = []


class _MemoryJson(_Strict):
    v: Literal[1]
    camera: Annotated[str, Field(min_length=1, max_length=64)]
    zones: Annotated[dict[Annotated[str, Field(max_length=200)], _ZoneJson], Field(max_length=64)]
    evidence: Annotated[dict[Annotated[str, Field(pattern=_REF)], str], Field(max_length=32)] = {}


_FIELDS = frozenset(
    {"v", "camera", "zones", "evidence", "last_ts", "parked", "zone", "first", "latest", "misses", "reported"}
    | {"ts", "frame_ref", "xyxy", "class", "confidence"}
)


def _sighting_json(s: Sighting) -> dict[str, object]:
    return {"ts": s.ts, "frame_ref": s.frame_ref, "xyxy": list(s.xyxy), "class": s.class_name, "confidence": s.confidence}


def _sighting(s: _SightingJson) -> Sighting:
    x0, y0, x1, y1 = s.xyxy
    return Sighting(s.ts, s.frame_ref, (x0, y0, x1, y1), s.class_name, s.confidence)


def encode_memory(camera_id: str, memory: VisitMemory) -> bytes:
    """The value stored for ``camera_id``: versioned JSON, pictures base64, within :data:`MAX_VALUE_BYTES`.

    Pictures over :data:`MAX_PICTURE_BYTES` are re-encoded at a lower quality (same size: the
    pair snapshot puts both captures side by side) or left out, as are those past
    :data:`MAX_PICTURES_BYTES` (oldest sighting first); a pair without its first picture says
    "first capture not kept". Sightings beyond the caps are dropped, newest first sighting first.
    """
    zones: dict[str, object] = {}
    for key, mem in list(memory.zones.items())[:64]:
        parked = [
            {"zone": p.zone_id, "first": _sighting_json(p.first), "latest": _sighting_json(p.latest), "misses": p.misses, "reported": p.reported}
            for p in mem.parked[:200]
        ]
        zones[key] = {"last_ts": mem.last_ts, "parked": parked}
    first_seen = sorted(
        {p.first.frame_ref: p.first.ts for mem in memory.zones.values() for p in mem.parked}.items(), key=lambda kv: kv[1]
    )
    evidence: dict[str, str] = {}
    budget = MAX_PICTURES_BYTES
    for ref, _ in first_seen:
        jpeg = memory.evidence.get(ref)
        picture = fit_jpeg(jpeg, MAX_PICTURE_BYTES) if jpeg else None
        if picture is None or len(picture) > budget or len(evidence) >= 32:
            continue
        budget -= len(picture)
        evidence[ref] = base64.b64encode(picture).decode("ascii")
    value = json.dumps({"v": 1, "camera": camera_id, "zones": zones, "evidence": evidence}, separators=(",", ":"), allow_nan=False)
    data = value.encode()
    if len(data) > MAX_VALUE_BYTES:  # only with hundreds of sightings: keep the memory, drop the pictures
        data = json.dumps({"v": 1, "camera": camera_id, "zones": zones, "evidence": {}}, separators=(",", ":")).encode()
    if len(data) > MAX_VALUE_BYTES:
        raise BadMemory("memory too large")
    return data


def decode_memory(camera_id: str, data: bytes) -> VisitMemory:
    """Validate a stored value (hostile input) and turn it into a :class:`VisitMemory`.

    Raises:
        BadMemory: oversized, not JSON, wrong version or schema, a number not finite or out of
            bounds, another camera's memory, a picture that is not base64 of a JPEG.
    """
    if len(data) > MAX_VALUE_BYTES:
        raise BadMemory(f"value over {MAX_VALUE_BYTES} bytes")
    try:
        raw = _MemoryJson.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors()
        kind, loc = (errors[0]["type"], errors[0]["loc"]) if errors else ("invalid", ())
        # the location's names are the value's own (keys): only known field names are shown
        where = ".".join(str(x) if isinstance(x, int) or str(x) in _FIELDS else "*" for x in loc)[:80]
        raise BadMemory(f"schema: {kind} at {where or 'value'}") from None
    if raw.camera != camera_id:
        raise BadMemory("another camera's memory")
    zones: dict[str, RevisitMemory] = {}
    for key, zone in raw.zones.items():
        parked = tuple(ParkedState(p.zone, _sighting(p.first), _sighting(p.latest), p.misses, p.reported) for p in zone.parked)
        zones[key] = RevisitMemory(zone.last_ts, parked)
    evidence: dict[str, bytes] = {}
    for ref, text in raw.evidence.items():
        if len(text) > (MAX_PICTURE_BYTES * 4) // 3 + 4:
            raise BadMemory("picture over its cap")
        try:
            jpeg = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadMemory("picture not base64") from None
        if not jpeg.startswith(b"\xff\xd8\xff"):
            raise BadMemory("picture not a JPEG")
        evidence[ref] = jpeg
    for mem in zones.values():
        for p in mem.parked:
            if not all(math.isfinite(v) for v in (*p.first.xyxy, *p.latest.xyxy)):  # pragma: no cover - schema refuses them
                raise BadMemory("box not finite")
    return VisitMemory(zones, evidence)


class RevisitStore:
    """The ``<prefix>_revisit`` bucket: read and write one camera's memory (from visit threads).

    Example::

        store = RevisitStore(link)
        judge = SharedRevisitJudge(analyzer, store)
    """

    def __init__(self, link: NatsLink, *, ttl_s: float = REVISIT_TTL_S) -> None:
        self._link = link
        self._ttl_s = ttl_s
        self._kv: KeyValue | None = None
        self._lock = threading.Lock()

    def bucket(self) -> KeyValue:
        """The bucket (created on first use: file storage, one revision kept, values capped)."""
        with self._lock:
            if self._kv is None:
                link, ttl = self._link, self._ttl_s
                self._kv = link.call(lambda: link.open_bucket("revisit", ttl, MAX_VALUE_BYTES))
            return self._kv

    def read(self, camera_id: str) -> tuple[int, bytes] | None:
        """``(revision, value)`` of the camera's key, or None (never written, or aged out)."""
        kv = self.bucket()

        async def get() -> tuple[int, bytes] | None:
            try:
                entry = await kv.get(camera_id)
            except (KeyNotFoundError, KeyDeletedError):
                return None
            return int(entry.revision or 0), bytes(entry.value or b"")

        return self._link.call(get)

    def write(self, camera_id: str, value: bytes, last: int | None) -> int:
        """Write the value on revision ``last`` (None: the key must not exist); its new revision.

        Raises:
            KeyWrongLastSequenceError: somebody else wrote the key meanwhile.
        """
        kv = self.bucket()

        async def put() -> int:
            if last is None:
                return int(await kv.create(camera_id, value))
            try:
                return int(await kv.update(camera_id, value, last=last))
            except KeyNotFoundError as exc:  # aged out meanwhile: a conflict like any other
                raise KeyWrongLastSequenceError() from exc

        return self._link.call(put)

    def share(self, slot: CameraSlot) -> None:
        """Give a patrol-only camera's pipeline slot a :class:`SharedRevisitJudge` (once; a judge
        without revisit zones, or one already shared, is left as it is)."""
        with self._lock:
            judge = slot.visits
            if isinstance(judge, VisitAnalyzer) and judge.revisit_zones:
                slot.visits = SharedRevisitJudge(judge, self)


def _taken(judgement: VisitJudgement) -> None:
    """A sink that takes every judgement (judging without one)."""


class SharedRevisitJudge:
    """A patrol-only camera's visit judge whose revisit memory lives in the bucket (cluster mode).

    Wraps the camera's :class:`~gridworker.vision.visits.VisitAnalyzer` (implements the
    pipeline's ``VisitJudge``); glance visits sync the memory around the judgement (module
    docstring), watch stops and scene edits go straight to the analyser. Call it for one
    camera from one thread at a time (the pipeline's per-camera visit lock does).

    Example::

        slot.visits = SharedRevisitJudge(slot.visits, store)
    """

    def __init__(self, inner: VisitAnalyzer, store: RevisitStore) -> None:
        self.inner = inner
        self.camera_id = inner.camera_id
        self._store = store
        self._revision: int | None = None  # the key's revision the local memory is (None: unknown)
        self.loads = 0  # memories restored from the bucket
        self.conflicts = 0  # writes refused for a revision conflict (merged and written again)
        self.bad = 0  # values refused as bad
        self._trouble = False  # a read or write failed since the last one that worked (warned once)

    def begin_watch(self, fps: float) -> None:
        self.inner.begin_watch(fps)

    def set_scene(self, scene: SceneConfig) -> None:
        self.inner.set_scene(scene)

    def analyse_watch(self, frame: Frame, dets: sv.Detections) -> VisitJudgement:
        return self.inner.analyse_watch(frame, dets)

    def analyse_glance(self, frames: Sequence[Frame], detections: Sequence[sv.Detections]) -> VisitJudgement | None:
        """Judge a glance and write the memory, without a sink (what :meth:`judge_glance` does)."""
        return self.judge_glance(frames, detections, _taken)

    def judge_glance(
        self, frames: Sequence[Frame], detections: Sequence[sv.Detections], submit: Callable[[VisitJudgement], None]
    ) -> VisitJudgement | None:
        """Sync the memory, judge the glance, ``submit`` the judgement, then write the memory.
        When ``submit`` raises, the memory is not written (the local judge restored what it
        remembered before): the visit done again, here or on another worker, reports again."""
        if not frames or not self.inner.revisit_zones:
            return self.inner.judge_glance(frames, detections, submit)
        base = self.sync()
        judgement = self.inner.judge_glance(frames, detections, submit)
        self.save(base)
        return judgement

    def sync(self) -> int | None:
        """Load the bucket's memory unless the local one is its latest; the revision to write on
        (None: the key does not exist; -1: unknown, NATS did not answer)."""
        try:
            current = self._store.read(self.camera_id)
        except Exception as exc:  # NATS away: judge with what this worker remembers
            self._warn("revisit memory of %s not read (%s): judged with this worker's", type(exc).__name__)
            self._revision = None
            return -1
        if current is None:
            if self._revision is not None:  # it aged out (nobody visited for the TTL) or was purged
                self.inner.restore_revisit(VisitMemory())
                self._revision = None
            return None
        revision, value = current
        if revision != self._revision:
            self._load(revision, value)
        return revision

    def _decode(self, revision: int, value: bytes) -> VisitMemory | None:
        """The stored memory, or None (logged and counted) when the value is refused as bad."""
        try:
            return decode_memory(self.camera_id, value)
        except BadMemory as exc:
            self.bad += 1
            log.warning("revisit memory of %s ignored (revision %d): %s", self.camera_id, revision, exc)
            return None

    def _load(self, revision: int, value: bytes) -> None:
        memory = self._decode(revision, value)
        if memory is None:
            return
        self.inner.restore_revisit(memory)
        self._revision = revision
        self.loads += 1

    def save(self, base: int | None) -> None:
        """Write the memory after a visit on revision ``base``; a conflict merges and retries."""
        if base == -1:  # the read failed: do not overwrite what may be newer
            return
        last = base
        for _ in range(_WRITE_TRIES):
            try:
                self._revision = self._store.write(self.camera_id, encode_memory(self.camera_id, self.inner.export_revisit()), last)
                self._trouble = False
                return
            except KeyWrongLastSequenceError:
                self.conflicts += 1
                last = self._merge_latest()
            except Exception as exc:
                self._warn("revisit memory of %s not written (%s)", type(exc).__name__)
                break
        self._revision = None  # the next visit reads the key again

    def _warn(self, message: str, kind: str) -> None:
        """The first failure after a success is a warning, the next ones (NATS still away) debug."""
        (log.debug if self._trouble else log.warning)(message, self.camera_id, kind)
        self._trouble = True

    def _merge_latest(self) -> int | None:
        """Another visit wrote meanwhile: merge its memory into ours; the revision to write on."""
        current = self._store.read(self.camera_id)
        if current is None:
            return None
        revision, value = current
        theirs = self._decode(revision, value)
        if theirs is not None:
            self.inner.restore_revisit(merge_visit_memories(self.inner.export_revisit(), theirs))
        return revision
