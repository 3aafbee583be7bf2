"""Replay a recorded clip through the service's pipeline pieces, with media time as the clock.

``gridworker replay CLIP --camera-config cam.yaml`` is how a deploying engineer tunes a
camera's zones and rule thresholds on footage from the site: the clip is decoded with
PyAV, sampled at the camera's ``fps`` on presentation time (the same sampler the live
reader uses for files), run through the detector in batches, then the camera's
:class:`CameraAnalyzer` (masks, ByteTrack, zones, rules) and the
:class:`IncidentManager` into an :class:`IncidentStore`. Nothing waits on the wall
clock: a replay runs as fast as the CPU allows and, given the same clip, scene and
model, gives the same incidents every time.

Frame timestamps are ``start_ts + media seconds`` (``start_ts`` defaults to 0, so
incident times read as seconds into the clip; pass a real date to exercise schedules).

The scene file (``--camera-config``) is either

* one camera mapping (``zones``, ``masks``, ``lines``, ... as in a config file's
  ``cameras`` entry); ``id`` defaults to the clip's name and ``url`` to the clip. It may
  also carry ``detector:`` and ``tracker:`` sections, which replace the defaults; or
* a whole service config (with ``cameras:``), whose ``detector`` and ``tracker`` sections
  are used; ``--camera ID`` picks the camera when there are several.

Example::

    result = replay_clip("kerb.mp4", camera, load_detector(), fps=5, store=IncidentStore("sqlite://"))
    result.counts()                 # {'illegal_parking': 2}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import supervision as sv
from pydantic import ValidationError

from gridworker.incidents.manager import CameraInfo, IncidentManager
from gridworker.incidents.store import Incident, IncidentStore
from gridworker.models.base import Detector
from gridworker.models.multi import resized
from gridworker.models.tiling import detect_tiled
from gridworker.models.config import DetectorConfig
from gridworker.streams.frame import Frame
from gridworker.streams.reader import _Sampler, media_time  # the live reader's file sampler, so replays sample alike
from gridworker.vision.analyzer import CameraAnalyzer, FrameAnalysis
from gridworker.incidents.snapshots import EvidenceRenderer
from gridworker.vision.lowlight import correct
from gridworker.vision.coasting import UNSURE_INFER_S, analysing
from gridworker.vision.motion import MotionConfig
from gridworker.vision.motioncrop import CropModels, SeenBoxes, merge_outside
from gridworker.vision.tracker import TrackerConfig

from .cameras import detect_region, motion_gate
from .settings import CameraConfig, ConfigError, describe_errors, load_settings
from .validation import read_yaml

__all__ = [
    "ReplayIncident",
    "ReplayResult",
    "ReplaySetup",
    "Subject",
    "load_replay_setup",
    "register",
    "replay_clip",
]


@dataclass(frozen=True, slots=True)
class Subject:
    """One detection that made a rule fire, on the frame where the incident opened."""

    track_id: int
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 normalised to the frame size


@dataclass(frozen=True, slots=True)
class ReplayIncident:
    """An incident of a replay, with times in seconds of the clip."""

    id: int
    type: str
    zone_id: str
    rule_id: str
    opened_s: float
    closed_s: float | None  # None: still open when the clip ended
    peak_count: int
    observations: int
    summary: str
    subjects: tuple[Subject, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    snapshot: Path | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.closed_s is None else self.closed_s - self.opened_s


@dataclass(slots=True)
class ReplayResult:
    """What a replay found, and what it cost."""

    clip: str
    camera_id: str
    fps: float
    width: int
    height: int
    media_s: float  # media time of the last decoded frame
    frames_decoded: int
    frames_analysed: int
    wall_s: float
    detect_s: float
    incidents: list[ReplayIncident]
    frames_inferred: int = 0  # analysed frames the model ran on (fewer with motion gating)
    frames_cropped: int = 0  # inferred frames the model saw only the moved part of (motion.crop)

    def counts(self) -> dict[str, int]:
        """Incident type → how many opened."""
        return dict(sorted(Counter(i.type for i in self.incidents).items()))

    def of(self, type: str, zone_id: str | None = None) -> list[ReplayIncident]:
        return [i for i in self.incidents if i.type == type and (zone_id is None or i.zone_id == zone_id)]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = self.counts()
        for inc in out["incidents"]:
            inc["snapshot"] = None if inc["snapshot"] is None else str(inc["snapshot"])
        return out


@dataclass(frozen=True, slots=True)
class ReplaySetup:
    """A scene file, read: the camera plus the detector and tracker settings to replay with."""

    camera: CameraConfig
    detector: DetectorConfig
    tracker: TrackerConfig


def load_replay_setup(path: str | Path, clip: str | Path | None = None, camera_id: str | None = None) -> ReplaySetup:
    """Read a scene file (one camera mapping, or a whole service config; see the module doc).

    Raises:
        ConfigError: unreadable or invalid file, or no such camera, with a readable message.
    """
    p = Path(path)
    data = read_yaml(p, "the scene file", ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping (one camera, or a config with 'cameras')")
    if "cameras" in data:
        settings = load_settings(p)
        cams = settings.cameras
        if camera_id is not None:
            cams = [c for c in cams if c.id == camera_id]
        if len(cams) != 1:
            have = [c.id for c in settings.cameras]
            raise ConfigError(f"{p}: pick one camera with --camera (cameras: {have})" if cams else f"{p}: no camera {camera_id!r} (cameras: {have})")
        return ReplaySetup(cams[0], settings.detector, settings.tracker)
    data = dict(data)
    try:
        detector = DetectorConfig(**(data.pop("detector", None) or {}))
        tracker = TrackerConfig(**(data.pop("tracker", None) or {}))
    except ValidationError as err:
        raise ConfigError(describe_errors(err, data, str(p))) from None
    if clip is not None:
        data.setdefault("url", str(clip))
        data.setdefault("id", _camera_id_from(Path(clip)))
    try:
        camera = CameraConfig(**data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, data, str(p))) from None
    return ReplaySetup(camera, detector, tracker)


def _camera_id_from(clip: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "_" for c in clip.stem).lstrip("_.-")
    return (stem or "replay")[:64]


def _subjects(analysis: FrameAnalysis, zone_id: str, rule_id: str, obj: str = "") -> tuple[Subject, ...]:
    """The detections an incident opened on: its object's (per-object rules), else the verdict's."""
    verdict = next((v for v in analysis.verdicts if v.zone_id == zone_id and v.rule_id == rule_id), None)
    if verdict is None:
        return ()
    hit = next((h for h in verdict.result.hits if h.key == obj), None) if obj else None
    indices = verdict.result.subjects if hit is None else hit.subjects
    dets = analysis.detections
    w, h = analysis.frame.width, analysis.frame.height
    names = dets.data.get("class_name")
    out = []
    for i in np.asarray(indices, dtype=np.int64):
        if not 0 <= i < len(dets):
            continue
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        out.append(
            Subject(
                track_id=int(dets.tracker_id[i]) if dets.tracker_id is not None else -1,
                class_name=str(names[i]) if names is not None else "",
                confidence=float(dets.confidence[i]) if dets.confidence is not None else 1.0,
                box=(round(x1 / w, 4), round(y1 / h, 4), round(x2 / w, 4), round(y2 / h, 4)),
            )
        )
    return tuple(out)


def replay_clip(
    path: str | Path,
    camera: CameraConfig,
    detector: Detector,
    fps: float | None = None,
    store: IncidentStore | None = None,
    *,
    tracker: TrackerConfig | None = None,
    start_ts: float = 0.0,
    max_seconds: float | None = None,
    snapshot_dir: str | Path | None = None,
    snapshot_quality: int = 85,
    on_analysis: Callable[[FrameAnalysis], None] | None = None,
    motion: MotionConfig | None = None,
) -> ReplayResult:
    """Run ``path`` through detector → analyzer → incident manager → ``store``.

    Args:
        path: a video file PyAV can read.
        camera: the camera whose scene (zones, rules, masks, ...) is applied.
        detector: a loaded detector; batches of up to ``detector.max_batch`` frames.
        fps: analysis rate; default ``camera.fps``.
        store: where incidents go; default an in-memory SQLite store.
        tracker: tracker tuning (default: the service's defaults).
        start_ts: epoch time of the clip's first frame (frame ts = start_ts + media s).
        max_seconds: stop after this much media time.
        snapshot_dir: write each incident's annotated JPEG here.
        snapshot_quality: JPEG quality of the snapshots.
        on_analysis: called with every analysed frame, in order (for tools and tests).
        motion: motion gating instead of the camera's ``motion`` (frames without motion in a
            rule zone are analysed with the last inferred frame's detections, as live).

    Returns:
        The incidents (times in clip seconds) and the run's cost.
    """
    path = Path(path)
    rate_fps = float(fps if fps is not None else camera.fps)
    if rate_fps <= 0:
        raise ValueError("fps must be positive")
    store = store if store is not None else IncidentStore("sqlite://")
    analyzer = CameraAnalyzer(camera.id, rate_fps, camera.scene(), tracker)
    info = CameraInfo(name=camera.name, site=camera.site)
    manager = IncidentManager(store=store, camera_info=lambda _cid: info, snapshots=EvidenceRenderer(jpeg_quality=snapshot_quality))
    sampler = _Sampler(rate_fps)
    subjects: dict[int, tuple[Subject, ...]] = {}
    opened_ids: list[int] = []
    t_start = time.perf_counter()
    detect_s = 0.0
    decoded = analysed = 0
    media_t = 0.0
    size = (0, 0)
    pending: list[Frame] = []
    gated = camera if motion is None else camera.model_copy(update={"motion": motion})
    gate = motion_gate(gated)
    region = detect_region(camera)
    if camera.imgsz is not None:  # the camera's own input size, as the live pipeline runs it
        detector = resized(detector, camera.imgsz)
    last: tuple[np.ndarray, sv.Detections] | None = None  # the last inferred frame, for coasted ones
    inferred = cropped = 0
    # motion crops (``motion.crop``), as live: not with tiles or a detect_region (vision/motioncrop.py)
    crops = CropModels() if gate is not None and gate.config.crop and camera.detect_tiles is None and region is None else None
    seen = SeenBoxes(gate.config.crop_hold_s) if gate is not None and crops is not None else None
    infer_until = float("-inf")  # frames before this are inferred, motion or not (as live: vision/coasting.py)

    def analyse(frame: Frame, dets: sv.Detections, coasted: bool = False) -> None:
        nonlocal analysed, infer_until
        with analysing(coasted=coasted) as sighting:
            analysis = analyzer.analyze(frame, dets)
        if sighting.unsure:  # an object the model has not seen often enough: it looks again
            infer_until = max(infer_until, frame.ts + UNSURE_INFER_S)
        for inc in manager.observe(analysis):
            opened_ids.append(inc.id)
            subjects[inc.id] = _subjects(analysis, inc.zone_id, inc.rule_id, str(inc.details.get("object", "")))
        if on_analysis is not None:
            on_analysis(analysis)
        analysed += 1

    def flush() -> None:
        nonlocal detect_s, inferred, last
        if not pending:
            return
        t0 = time.perf_counter()
        images = [correct(f.image, camera.low_light) for f in pending]
        found: list[sv.Detections] = detect_tiled(detector, images, [camera.detect_tiles] * len(pending), [region] * len(pending))
        detect_s += time.perf_counter() - t0
        for frame, dets in zip(pending, found):
            if seen is not None:
                seen.add(frame.ts, dets.xyxy, (frame.width, frame.height))
            analyse(frame, dets)
        inferred += len(pending)
        last = (pending[-1].image, found[-1])
        pending.clear()

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        first: float | None = None
        seq = 0
        for vframe in container.decode(stream):
            frame_time = media_time(vframe)
            if frame_time is None:
                media_t = decoded / rate
            else:
                first = frame_time if first is None else first
                media_t = frame_time - first
            decoded += 1
            if max_seconds is not None and media_t > max_seconds:
                break
            if not sampler.take(media_t):
                continue
            if gate is not None and not gate.should_infer(vframe, start_ts + media_t):
                flush()  # in order: the frames before it first
                if start_ts + media_t >= infer_until:
                    if last is not None:
                        seq += 1
                        analyse(Frame(camera.id, seq, start_ts + media_t, last[0]), last[1], coasted=True)
                    continue
            image = vframe.to_ndarray(format="rgb24")
            size = (int(image.shape[1]), int(image.shape[0]))
            changed = gate.crop_region() if gate is not None and crops is not None else None
            planned = None
            if changed is not None and crops is not None and gate is not None and seen is not None:
                flush()  # the window is planned on the boxes of the last inferred frames (the newest's among them)
                boxes = seen.boxes(start_ts + media_t, size)
                planned = crops.plan("replay", detector, None, changed, boxes, size, max_area=gate.config.crop_max_area)
            if planned is None and changed is not None and gate is not None:
                gate.saw_whole(start_ts + media_t)
            if planned is not None:
                plan, at_size = planned
                t0 = time.perf_counter()
                fresh = detect_tiled(at_size, [correct(image, camera.low_light)], [None], [plan.region])[0]
                detect_s += time.perf_counter() - t0
                dets = merge_outside(last[1], fresh, plan.region, size) if last is not None and last[0].shape == image.shape else fresh
                seq += 1
                analyse(Frame(camera.id, seq, start_ts + media_t, image, plan.region), dets)
                inferred, cropped, last = inferred + 1, cropped + 1, (image, dets)
                if seen is not None:
                    seen.add(start_ts + media_t, dets.xyxy, size)
                continue
            seq += 1
            pending.append(Frame(camera.id, seq, start_ts + media_t, image))
            if len(pending) >= max(1, detector.max_batch):
                flush()
        flush()
    end_ts = start_ts + media_t
    still_open = {inc.id for inc in store.open_incidents() if inc.camera_id == camera.id}
    manager.close_camera(camera.id, end_ts)
    wall = time.perf_counter() - t_start

    incidents: list[ReplayIncident] = []
    out_dir = Path(snapshot_dir) if snapshot_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for inc_id in opened_ids:
        stored: Incident | None = store.get(inc_id)
        if stored is None:
            continue
        snap_path = None
        if out_dir is not None and stored.has_snapshot:
            jpeg = store.snapshot(inc_id)
            if jpeg is not None:
                snap_path = out_dir / f"{camera.id}_{inc_id:04d}_{stored.type}_{stored.zone_id}_{stored.opened_at - start_ts:06.1f}s.jpg"
                snap_path.write_bytes(jpeg)
        incidents.append(
            ReplayIncident(
                id=inc_id,
                type=stored.type,
                zone_id=stored.zone_id,
                rule_id=stored.rule_id,
                opened_s=round(stored.opened_at - start_ts, 3),
                closed_s=None if inc_id in still_open or stored.closed_at is None else round(stored.closed_at - start_ts, 3),
                peak_count=stored.peak_count,
                observations=stored.observations,
                summary=stored.summary,
                subjects=subjects.get(inc_id, ()),
                details=stored.details,
                snapshot=snap_path,
            )
        )
    return ReplayResult(
        clip=str(path),
        camera_id=camera.id,
        fps=rate_fps,
        width=size[0],
        height=size[1],
        media_s=round(media_t, 3),
        frames_decoded=decoded,
        frames_analysed=analysed,
        frames_inferred=inferred,
        frames_cropped=cropped,
        wall_s=round(wall, 3),
        detect_s=round(detect_s, 3),
        incidents=incidents,
    )


# --- command line -----------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the ``replay`` sub-command to the ``gridworker`` command's sub-parsers."""
    from gridworker.models.cli import add_detector_options

    p = subparsers.add_parser(
        "replay",
        help="run a recorded clip through a camera's zones and rules, print the incidents",
        description="Replay a recorded clip through the detector, tracker, zones and rules of one camera, "
        "on the clip's own clock (as fast as the CPU allows), and print the incidents it opens.",
    )
    p.add_argument("clip", type=Path, metavar="CLIP", help="video file (MP4, AVI, ...)")
    p.add_argument(
        "--camera-config",
        "-c",
        required=True,
        type=Path,
        metavar="YAML",
        help="one camera's scene (zones, rules, masks; optional detector/tracker sections), or a whole config file",
    )
    p.add_argument("--camera", default=None, metavar="ID", help="camera id, when the file has several cameras")
    p.add_argument("--fps", type=float, default=None, help="analysis rate (default: the camera's fps)")
    p.add_argument("--db", default="sqlite://", metavar="URL", help="incident store URL (default: in memory)")
    p.add_argument("--snapshots", type=Path, default=None, metavar="DIR", help="write each incident's annotated JPEG here")
    add_detector_options(p, model=None, model_default="the file's, else the embedded default", confidence_default="the file's")
    p.add_argument("--start", default=None, metavar="ISO", help="wall-clock time of the clip's first frame, for schedules (e.g. 2024-05-06T08:00)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S", help="stop after this much of the clip")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_replay)


def _cmd_replay(args: argparse.Namespace) -> int:
    import datetime as dt

    from gridworker.models.errors import ModelError
    from gridworker.models.loader import load_detector

    if not args.clip.is_file():
        print(f"gridworker replay: no such clip {args.clip}", file=sys.stderr)
        return 2
    try:
        setup = load_replay_setup(args.camera_config, clip=args.clip, camera_id=args.camera)
        overrides: dict[str, Any] = {}
        if args.model is not None:
            overrides["model"] = args.model
        if args.confidence is not None:
            overrides["confidence"] = args.confidence
        det_config = DetectorConfig(**{**setup.detector.model_dump(), **overrides})
    except (ConfigError, ValidationError) as exc:
        print(f"gridworker replay: {exc}", file=sys.stderr)
        return 2
    start_ts = 0.0
    if args.start:
        try:
            start_ts = dt.datetime.fromisoformat(args.start).timestamp()
        except ValueError:
            print(f"gridworker replay: --start {args.start!r} is not an ISO date-time", file=sys.stderr)
            return 2
    try:
        detector = load_detector(det_config)
    except ModelError as exc:
        print(f"gridworker replay: {exc}", file=sys.stderr)
        return 1
    try:
        result = replay_clip(
            args.clip,
            setup.camera,
            detector,
            fps=args.fps,
            store=IncidentStore(args.db),
            tracker=setup.tracker,
            start_ts=start_ts,
            max_seconds=args.max_seconds,
            snapshot_dir=args.snapshots,
        )
    except (av.FFmpegError, OSError) as exc:
        print(f"gridworker replay: cannot read {args.clip}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), default=str, ensure_ascii=False))
    else:
        print(format_result(result))
    return 0


def format_result(result: ReplayResult) -> str:
    """A readable report: one line per incident, then the count per type."""
    lines = [
        f"{result.clip}: {result.media_s:.1f} s of {result.width}x{result.height} video, "
        f"{result.frames_analysed} of {result.frames_decoded} frames analysed at {result.fps:g} fps "
        f"in {result.wall_s:.1f} s (detector {result.detect_s:.1f} s)",
        f"{len(result.incidents)} incident(s) on camera {result.camera_id}:",
    ]
    for inc in result.incidents:
        closed = "open at end" if inc.closed_s is None else f"{inc.closed_s:7.1f}s"
        lines.append(
            f"  #{inc.id:<4} {inc.type:<16} zone={inc.zone_id:<14} opened {inc.opened_s:7.1f}s  closed {closed:>11}  "
            f"peak {inc.peak_count:<3} {inc.summary}"
        )
        if inc.snapshot is not None:
            lines.append(f"        snapshot: {inc.snapshot}")
    counts = result.counts()
    lines.append("per type: " + (", ".join(f"{k}={v}" for k, v in counts.items()) if counts else "none"))
    return "\n".join(lines)
