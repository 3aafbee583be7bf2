"""Rule-quality benchmark: replay clips with their scenes and score the incidents against ground truth.

``gridworker bench rules [--clips DIR] [--truth DIR] [--only NAME] [--json]`` reads every
truth file (``*.yaml``) in the truth folder (default ``bench/truth/``), replays the clip it
names (from the clips folder, default ``../shared/media``) with its scene through
:func:`gridworker.replay.replay_clip` -- the real detector, tracker, zones, rules and
incident manager -- and matches the incidents to the truth events:

* an incident **matches** an event of the same rule type and zone when its span
  (opened .. closed, or the clip's end) overlaps the event's ``start .. end`` widened by
  ``tolerance_s``, and, when the event says where its object is (``at``), one of the
  incident's subjects stands (box bottom centre) within ``radius`` of that place at the
  moment the incident opened;
* each incident counts for at most one event (the nearest of those it matches, events
  not yet found first); an event with one or more matching incidents is found;
* per rule type and per clip: ``true_positives`` (events found), ``missed`` (events not
  found), ``false_positives`` (incidents matching no event), ``precision`` (matching
  incidents / incidents), ``recall`` (found / events), ``incidents_per_event`` (matching
  incidents / found events: 1.0 when every real event raised exactly one incident) and
  ``mean_delay_s`` (from an event's ``start`` to its first incident opening; it includes
  the rule's own ``min_duration_s``).

The truth format is in docs/rules-field.md. Clips are never copied into the project; a
truth file whose clip is missing is reported as skipped.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import supervision as sv
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridworker.models.base import Detector
from gridworker.models.config import DetectorConfig
from gridworker.replay import ReplayIncident, load_replay_setup, replay_clip
from gridworker.settings import CameraConfig, ConfigError
from gridworker.validation import load_yaml
from gridworker.streams.clips import encode_frames

__all__ = [
    "DEFAULT_CLIPS",
    "DEFAULT_TRUTH",
    "RuleScore",
    "TruthError",
    "TruthEvent",
    "TruthFile",
    "format_table",
    "load_truth",
    "match_incidents",
    "run_rules_bench",
    "score_incidents",
]

DEFAULT_TRUTH = Path(__file__).resolve().parent / "truth"
DEFAULT_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "media"

_MAX_TRUTH_BYTES = 1 << 20
_MAX_TRUTH_FILES = 500
_MAX_REVERSE_FRAMES = 3000  # a reversed clip is held in memory: ~2 minutes at 25 fps of 320x240 .. 640x360

Preprocess = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[str], None]


class TruthError(ValueError):
    """A truth file that cannot be read or does not validate; the message names the file."""


class TruthEvent(BaseModel):
    """One real event a careful operator would flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str = Field(min_length=1, max_length=64, description="rule type, as in the scene (wrong_way, crowd, ...)")
    zone: str = Field(min_length=1, max_length=64, description="zone id in the scene")
    start: float = Field(ge=0.0, le=86400.0, description="seconds into the clip when the event begins")
    end: float = Field(ge=0.0, le=86400.0, description="seconds into the clip when it ends (the clip's end if it lasts)")
    object: str = Field("", max_length=300, description="the object in words")
    at: list[tuple[float, float, float]] = Field(
        default_factory=list, max_length=200, description="[t, x, y]: where the object stands (box bottom centre, 0..1) at time t"
    )

    @model_validator(mode="after")
    def _check(self) -> TruthEvent:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        for t, x, y in self.at:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) or not math.isfinite(t):
                raise ValueError(f"at: [{t}, {x}, {y}]: x and y must be in 0..1")
        if [p[0] for p in self.at] != sorted(p[0] for p in self.at):
            raise ValueError("at: the times must be in order")
        return self

    def place(self, t: float) -> tuple[float, float] | None:
        """Where the object is at ``t`` (linear between the ``at`` points, held at the ends)."""
        if not self.at:
            return None
        ts = [p[0] for p in self.at]
        x = float(np.interp(t, ts, [p[1] for p in self.at]))
        y = float(np.interp(t, ts, [p[2] for p in self.at]))
        return x, y


class TruthFile(BaseModel):
    """One clip's ground truth: the clip, its scene, and its events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: str = Field(min_length=1, max_length=255, pattern=r"^[\w.-]+$", description="file name in the clips folder")
    scene: str = Field(min_length=1, max_length=500, description="scene file, relative to the truth file")
    reverse: bool = Field(False, description="play the clip backwards (built in a temporary folder)")
    dim: float | None = Field(
        None, gt=0.0, lt=1.0, description="simulate a dark camera: pixel values times dim, plus faint sensor noise (built in a temporary folder)"
    )
    tolerance_s: float = Field(2.0, ge=0.0, le=600.0, description="how far outside an event's window an incident may start or end")
    radius: float = Field(0.15, gt=0.0, le=1.5, description="how far (normalised) a subject may stand from the event's place")
    events: list[TruthEvent] = Field(default_factory=list, max_length=5000)
    events_from: str | None = Field(
        None, max_length=255, pattern=r"^[\w.-]+\.yaml$", description="take the events of this truth file beside it (same clip, other playing)"
    )


def load_truth(path: Path) -> TruthFile:
    """Read and validate one truth file (with the events of its ``events_from`` file, if it names one).

    Raises:
        TruthError: unreadable, too large, not YAML, or invalid; the message names the file.
    """
    truth = _read_truth(path)
    if truth.events_from is None:
        return truth
    if truth.events:
        raise TruthError(f"{path}: give events or events_from, not both")
    source = _read_truth(path.parent / truth.events_from)
    if source.events_from is not None:
        raise TruthError(f"{path}: events_from {truth.events_from} must name a file with its own events")
    return truth.model_copy(update={"events": source.events})


def _read_truth(path: Path) -> TruthFile:
    try:
        if path.stat().st_size > _MAX_TRUTH_BYTES:
            raise TruthError(f"{path}: larger than {_MAX_TRUTH_BYTES} bytes")
        data = load_yaml(path.read_text(encoding="utf-8"))  # a key written twice is an error, not the last one kept
    except OSError as exc:
        raise TruthError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:  # DuplicateKeyError is a YAMLError
        raise TruthError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TruthError(f"{path}: the top level must be a mapping with clip, scene and events")
    try:
        return TruthFile(**data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in err.errors())
        raise TruthError(f"{path}: {problems}") from None


# --- scoring ------------------------------------------------------------------------------


@dataclass(slots=True)
class RuleScore:
    """The counts of one rule type (on one clip, or summed over clips)."""

    events: int = 0
    incidents: int = 0
    true_positives: int = 0  # events found
    false_positives: int = 0  # incidents matching no event
    matched: int = 0  # incidents matching an event (duplicates included)
    delays: list[float] = field(default_factory=list)

    @property
    def missed(self) -> int:
        return self.events - self.true_positives

    def add(self, other: RuleScore) -> None:
        self.events += other.events
        self.incidents += other.incidents
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.matched += other.matched
        self.delays.extend(other.delays)

    def to_json(self) -> dict[str, Any]:
        def ratio(a: int, b: int) -> float | None:
            return round(a / b, 3) if b else None

        return {
            "events": self.events,
            "incidents": self.incidents,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "missed": self.missed,
            "precision": ratio(self.matched, self.incidents),
            "recall": ratio(self.true_positives, self.events),
            "incidents_per_event": ratio(self.matched, self.true_positives),
            "mean_delay_s": round(sum(self.delays) / len(self.delays), 2) if self.delays else None,
        }


def _distance(inc: ReplayIncident, event: TruthEvent) -> float:
    """How far the incident's nearest subject stands from the event's place (0 when either is unknown)."""
    where = event.place(min(max(inc.opened_s, event.start), event.end))
    if where is None or not inc.subjects:
        return 0.0
    return min(math.hypot((s.box[0] + s.box[2]) / 2 - where[0], s.box[3] - where[1]) for s in inc.subjects)


def match_incidents(incidents: Sequence[ReplayIncident], truth: TruthFile, media_s: float) -> dict[int, int | None]:
    """Incident id -> index of the truth event it matches (None: a false positive).

    Incidents are taken in the order they opened; each goes to the nearest event it matches,
    events not yet found first (so a second vehicle is not taken for the first one's duplicate).
    """
    out: dict[int, int | None] = {}
    found: set[int] = set()
    tol = truth.tolerance_s
    for inc in sorted(incidents, key=lambda i: (i.opened_s, i.id)):
        inc_end = inc.closed_s if inc.closed_s is not None else media_s
        candidates: list[tuple[bool, float, float, int]] = []
        for k, ev in enumerate(truth.events):
            if ev.rule != inc.type or ev.zone != inc.zone_id or inc.opened_s > ev.end + tol or inc_end < ev.start - tol:
                continue
            d = _distance(inc, ev)
            if d <= truth.radius:
                candidates.append((k in found, d, abs(inc.opened_s - ev.start), k))
        best = min(candidates)[3] if candidates else None
        out[inc.id] = best
        if best is not None:
            found.add(best)
    return out


def score_incidents(
    incidents: Sequence[ReplayIncident], truth: TruthFile, media_s: float, rule_types: Sequence[str] = ()
) -> dict[str, RuleScore]:
    """Match one clip's incidents to its truth events (:func:`match_incidents`); rule type -> score.

    ``rule_types`` (the scene's) are reported even when neither incidents nor events have them.
    """
    scores: dict[str, RuleScore] = {t: RuleScore() for t in rule_types}
    for ev in truth.events:
        scores.setdefault(ev.rule, RuleScore()).events += 1
    matches = match_incidents(incidents, truth, media_s)
    found: set[int] = set()
    for inc in sorted(incidents, key=lambda i: (i.opened_s, i.id)):
        score = scores.setdefault(inc.type, RuleScore())
        score.incidents += 1
        k = matches[inc.id]
        if k is None:
            score.false_positives += 1
            continue
        score.matched += 1
        if k not in found:
            found.add(k)
            score.true_positives += 1
            score.delays.append(round(max(0.0, inc.opened_s - truth.events[k].start), 3))
    return scores


# --- running ------------------------------------------------------------------------------


class _Preprocessed:
    """A detector that sees every image through ``fix`` first (for measuring image corrections)."""

    def __init__(self, inner: Detector, fix: Preprocess) -> None:
        self._inner = inner
        self._fix = fix

    @property
    def class_names(self) -> list[str]:
        return self._inner.class_names

    @property
    def max_batch(self) -> int:
        return self._inner.max_batch

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        return self._inner.detect([self._fix(im) for im in images])


def _dimmed(frames: Iterator[np.ndarray], dim: float) -> Iterator[np.ndarray]:
    """A darker camera: values times ``dim``, plus Gaussian noise (sigma 2 levels, fixed seed)."""
    rng = np.random.default_rng(0)
    for frame in frames:
        noisy = frame.astype(np.float32) * dim + rng.normal(0.0, 2.0, frame.shape).astype(np.float32)
        yield np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


@contextmanager
def _played(clip: Path, truth: TruthFile) -> Iterator[Path]:
    """``clip`` itself, or a temporary H.264 copy at the same frame rate, reversed and/or dimmed."""
    if not truth.reverse and truth.dim is None:
        yield clip
        return
    with av.open(str(clip)) as container, tempfile.TemporaryDirectory(prefix="gw-bench-rules-") as tmp:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames: Iterator[np.ndarray] = (f.to_ndarray(format="rgb24") for f in container.decode(stream))
        if truth.reverse:
            held: list[np.ndarray] = []
            for frame in frames:
                if len(held) >= _MAX_REVERSE_FRAMES:
                    raise ValueError(f"{clip.name}: too long to reverse (over {_MAX_REVERSE_FRAMES} frames)")
                held.append(frame)
            frames = iter(held[::-1])
        if truth.dim is not None:
            frames = _dimmed(frames, truth.dim)
        yield encode_frames(frames, Path(tmp) / f"{clip.stem}_played.mp4", fps=fps, crf=23)


def _scene_rule_types(camera: CameraConfig) -> list[str]:
    return sorted({str(rule.type) for zone in camera.zones for rule in zone.rules})


def run_rules_bench(
    clips: Path,
    truth_dir: Path,
    *,
    only: Sequence[str] = (),
    load: Callable[[DetectorConfig], Detector] | None = None,
    preprocess: Preprocess | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay every truth file's clip with its scene and score it.

    Args:
        clips: folder of the clips the truth files name.
        truth_dir: folder of truth files (``*.yaml``; ``scenes/`` beside them is not scanned).
        only: truth file stems to run (default: all).
        load: detector loader (default :func:`gridworker.models.loader.load_detector`);
            one detector per distinct configuration is kept for the run.
        preprocess: an image correction applied before the detector (to measure it).
        progress: called with a line per clip.

    Returns:
        ``{"clips": [...], "rules": {type: score}, "rules_dimmed": {type: score}, "skipped": [...],
        "wall_s": ...}``: ``rules`` sums the clips as recorded (or reversed), ``rules_dimmed`` the
        made dark clips (``dim``); every score has the keys of :meth:`RuleScore.to_json`.

    Raises:
        TruthError: a truth file is invalid or its scene cannot be read.
    """
    from gridworker.models.loader import load_detector

    loader: Callable[[DetectorConfig], Detector] = load if load is not None else load_detector
    loaded: dict[str, Detector] = {}
    files = sorted(p for p in truth_dir.glob("*.yaml") if not only or p.stem in only)
    if len(files) > _MAX_TRUTH_FILES:
        raise TruthError(f"{truth_dir}: more than {_MAX_TRUTH_FILES} truth files; pick some with only")
    missing_only = sorted(set(only) - {p.stem for p in files})
    if missing_only:
        raise TruthError(f"no truth file {', '.join(missing_only)} in {truth_dir}")
    totals: dict[str, RuleScore] = {}
    dimmed: dict[str, RuleScore] = {}  # the made dark clips: a low-light experiment, apart from the targets
    per_clip: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    t0 = time.perf_counter()
    truths = [(path, load_truth(path)) for path in files]  # every file valid before the first replay
    for path, truth in truths:
        clip = clips / truth.clip
        if not clip.is_file():
            skipped.append({"truth": path.stem, "reason": f"no clip {truth.clip} in {clips}"})
            continue
        try:
            setup = load_replay_setup(path.parent / truth.scene, clip)
        except ConfigError as exc:
            raise TruthError(f"{path}: scene: {exc}") from None
        key = setup.detector.model_dump_json()
        if key not in loaded:
            loaded[key] = loader(setup.detector)
        detector: Detector = loaded[key] if preprocess is None else _Preprocessed(loaded[key], preprocess)
        with _played(clip, truth) as played:
            result = replay_clip(played, setup.camera, detector, tracker=setup.tracker)
        scores = score_incidents(result.incidents, truth, result.media_s, _scene_rule_types(setup.camera))
        matches = match_incidents(result.incidents, truth, result.media_s)
        for rule, score in scores.items():
            (totals if truth.dim is None else dimmed).setdefault(rule, RuleScore()).add(score)
        per_clip.append(
            {
                "truth": path.stem,
                "clip": truth.clip,
                "reverse": truth.reverse,
                "dim": truth.dim,
                "media_s": result.media_s,
                "frames_analysed": result.frames_analysed,
                "wall_s": result.wall_s,
                "rules": {rule: s.to_json() for rule, s in sorted(scores.items())},
                # each truth event with how many incidents matched it (0: missed)
                "events": [
                    {"rule": e.rule, "zone": e.zone, "start": e.start, "object": e.object, "incidents": sum(m == k for m in matches.values())}
                    for k, e in enumerate(truth.events)
                ],
                "incidents": [
                    {
                        "type": i.type,
                        "zone": i.zone_id,
                        "opened_s": i.opened_s,
                        "closed_s": i.closed_s,
                        "event": matches[i.id],  # index into events; null: a false positive
                        # who made it fire, where they stood: [class, x, y] (box bottom centre)
                        "subjects": [[s.class_name, round((s.box[0] + s.box[2]) / 2, 3), s.box[3]] for s in i.subjects],
                    }
                    for i in result.incidents
                ],
            }
        )
        if progress is not None:
            progress(f"{path.stem}: {len(result.incidents)} incident(s), {len(truth.events)} event(s), replay {result.wall_s:.1f} s")
    return {
        "clips": per_clip,
        "rules": {rule: s.to_json() for rule, s in sorted(totals.items())},
        "rules_dimmed": {rule: s.to_json() for rule, s in sorted(dimmed.items())},
        "skipped": skipped,
        "wall_s": round(time.perf_counter() - t0, 1),
    }


# --- report -------------------------------------------------------------------------------

_COLUMNS = ("events", "incidents", "true_positives", "false_positives", "missed", "precision", "recall", "incidents_per_event", "mean_delay_s")
_HEADS = ("events", "inc", "TP", "FP", "missed", "precision", "recall", "inc/event", "delay s")


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table: one row per rule type over the clips (then over the dimmed ones), then one per clip and rule type."""
    lines = ["| clip | rule | " + " | ".join(_HEADS) + " |", "|---|---|" + "---|" * len(_HEADS)]
    for label, key in (("**all**", "rules"), ("**all dimmed**", "rules_dimmed")):
        for rule, score in result[key].items():
            lines.append(f"| {label} | {rule} | " + " | ".join(_cell(score[c]) for c in _COLUMNS) + " |")
    for clip in result["clips"]:
        for rule, score in clip["rules"].items():
            lines.append(f"| {clip['truth']} | {rule} | " + " | ".join(_cell(score[c]) for c in _COLUMNS) + " |")
    for skip in result["skipped"]:
        lines.append(f"skipped {skip['truth']}: {skip['reason']}")
    return "\n".join(lines)
