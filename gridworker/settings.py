"""Configuration: one YAML file (cameras, zones, settings), overridable by environment.

Precedence: environment variables (``GRIDWORKER_`` prefix, ``__`` between nested keys, e.g.
``GRIDWORKER_DETECTOR__THREADS=2``, ``GRIDWORKER_DATABASE__URL=postgresql+psycopg://…``)
over the YAML file over defaults.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence, Set
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from gridworker.delivery import ForwardingConfig
from gridworker.fields import AnalysisFps, DiskMegabytes, RingMegabytes, SecondsUpToMinute
from gridworker.incidents.retention import RetentionConfig
from gridworker.iot.config import IotConfig  # IoT alarms (issue 14)
from gridworker.iot.linkage import PLAN_PREFIX as IOT_PLAN_PREFIX  # reserved plan ids (the API refuses them too)
from gridworker.cluster.config import ClusterConfig  # cluster mode (issue 12)
from gridworker.cases.workorders import WorkOrdersConfig
from gridworker.incidents.reports import ReportsConfig  # reports from people (issue 15)
from gridworker.cases.places import AreaList, Position  # places (issue 15)
from gridworker.cases.people import PeopleConfig  # people, logins (issue 15)
from gridworker.cases.basemap import ConsoleConfig  # the console map's basemap (issue 15)
from gridworker.keystore import AuthConfig
from gridworker.models.config import DEFAULT_DETECTOR, DetectorConfig, NamedDetectorConfig, auto_inference_workers
from gridworker.models.tiling import RegionConfig, TileConfig
from gridworker.patrol.config import CameraPatrolConfig, PatrolPlan
from gridworker.streams.config import StreamConfig, StreamTuning
from gridworker.streams.redact import redact_url
from gridworker.streams.sources import FileSource, check_media_path, parse_source
from gridworker.vision.config import SceneConfig, SceneLimits, reference_problems
from gridworker.vision.motion import MotionConfig
from gridworker.vision.lowlight import LowLightConfig  # low-light correction (issue 16)
from gridworker.vision.tracker import TrackerConfig
from gridworker.validation import first_repeat, read_yaml

ENV_PREFIX = "GRIDWORKER_"
CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
#: A camera's stream URL (or, in the config file, a video file's path), as its ``url`` and ``record_url`` take it.
CameraUrl = Annotated[str, Field(min_length=1, max_length=2000)]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, camera and key."""


class _Strict(BaseModel):
    # NaN and infinities parse from YAML (.nan, .inf) and JSON (Infinity, 1e400); no setting means them
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CameraConfig(SceneConfig):
    """One camera: where its stream is, how often to analyse it, and its scene (zones and
    rules, masks, counting lines, signals, calibration; see ``SceneConfig``).

    Example:
        >>> CameraConfig(id="gate-1", url="rtsp://10.0.0.5/stream1", fps=5).site
        ''
    """

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Unique camera id (letters, digits, _ . -).")
    name: str = Field("", max_length=200, description="Human-readable name.")
    site: str = Field("", max_length=200, description="Site the camera watches (school, hospital, ...).")
    position: Position | None = Field(None, description="Where the camera stands: WGS84 {lon, lat} (its cases' position, the map).")
    url: CameraUrl = Field(
        description="rtsp://, rtsps://, rtmp://, rtmps://, http(s):// (HLS) URL; in the config file also a video file "
        "(a path or file://) under media_dir. Credentials (user:pw@, ?pwd=, ;password=) are never shown or logged.",
    )
    record_url: CameraUrl | None = Field(
        None,
        description="The camera's main stream, for evidence (stream roles): with it, ``url`` is the detect stream "
        "(a low-resolution substream the model analyses) and evidence clips are cut from this stream's packets, "
        "never decoded. Same sources and credential handling as ``url``.",
    )
    fps: AnalysisFps = Field(5.0, description="Frames per second to analyse.")
    stream: StreamTuning = Field(default_factory=StreamTuning, description="Reader tuning: timeouts, backoff, clip ring (see StreamConfig).")
    detect_tiles: TileConfig | None = Field(
        None, description="Detect on overlapping tiles (small, far objects; one model run per tile). See docs/models.md."
    )
    detect_region: RegionConfig = Field(
        default_factory=RegionConfig,
        description="With enabled, the model sees only the bounding box of the rule zones and lines (plus a margin) "
        "when that covers at most max_area of the frame, or the fixed window rect; boxes are mapped back. Composes with "
        "detect_tiles. See docs/models.md.",
    )
    motion: MotionConfig = Field(
        default_factory=MotionConfig,
        description="Motion gating: with enabled, the model runs only on frames with motion in a rule zone, plus a "
        "refresh every refresh_s; the frames between are analysed with the last detections. See docs/models.md.",
    )
    imgsz: int | None = Field(  # issue 13
        default=None,
        ge=160,
        le=1920,
        multiple_of=32,
        description="This camera's model input size (the long side, a multiple of 32), for YOLO models exported with a "
        "dynamic input size: e.g. 320 for a camera whose objects are large and near, 960 for a far junction. Frames of "
        "one size are batched together; the model's session is shared (no second copy in memory). None: the model's own.",
    )
    low_light: LowLightConfig = Field(  # issue 16
        default_factory=LowLightConfig,
        description="Brighten dark frames (CLAHE or gamma) before the detector; evidence keeps the camera's picture. "
        "See docs/rules-field.md, Low light.",
    )
    detectors: list[str] = Field(
        default_factory=lambda: [DEFAULT_DETECTOR],
        min_length=1,
        max_length=4,
        description="Models this camera's frames go through: 'default' (the detector: section) and ids of detectors:"
        " entries. Batches are formed per model; a rule's ``detector`` picks one of them.",
    )
    watch: Literal["continuous", "patrol"] = Field(
        "continuous",
        description="continuous: streamed and analysed all the time at ``fps``; patrol: never streamed, "
        "only visited by patrol plans (the hundreds of key-site cameras; see docs/patrol.md).",
    )
    patrol: CameraPatrolConfig = Field(
        default_factory=CameraPatrolConfig, description="Site type, tags and priority used by patrol plans."
    )

    @model_validator(mode="after")
    def _rule_detectors(self) -> CameraConfig:
        if (repeat := first_repeat(self.detectors)) is not None:
            raise ValueError(f"detectors: {repeat!r} is listed twice")
        for zone in self.zones:
            for rule in zone.rules:
                if rule.detector is not None and rule.detector not in self.detectors:
                    raise ValueError(
                        f"zone {zone.id!r} rule {rule.rule_id!r}: detector {rule.detector!r} is not one of the camera's detectors {self.detectors}"
                    )
        return self

    @field_validator("url", "record_url")
    @classmethod
    def _known_source(cls, url: str | None) -> str | None:
        if url is not None:
            parse_source(url)  # the one check of camera URLs (streams/sources.py); a SourceError is a ValueError
        return url

    @field_serializer("stream")
    def _stream_as_set(self, stream: StreamTuning) -> dict[str, Any]:
        # only what was set: a saved camera must not freeze today's defaults (clip_buffer_s above all)
        return stream.model_dump(exclude_unset=True)

    def stream_config(self) -> StreamConfig:
        return StreamConfig(url=self.url, fps=self.fps, **self.stream.model_dump(exclude_unset=True))

    def record_stream_config(self) -> StreamConfig | None:
        """The record-only reader of ``record_url`` (packets to the evidence ring, nothing decoded), or None."""
        if self.record_url is None:
            return None
        return StreamConfig(url=self.record_url, fps=self.fps, decode=False, **self.stream.model_dump(exclude_unset=True))

    def scene(self) -> SceneConfig:
        """The camera's scene alone (what the analyzer needs)."""
        return SceneConfig(**{name: getattr(self, name) for name in SceneConfig.model_fields})

    def public_url(self) -> str:
        return redact_url(self.url)

    def public_record_url(self) -> str | None:
        return None if self.record_url is None else redact_url(self.record_url)

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, (redact_url(value) if key in ("url", "record_url") and value is not None else value)


class ServerConfig(_Strict):
    host: str = Field(
        "127.0.0.1",
        description="Bind address of the HTTP API. Anything but loopback needs an API key first (docs/security.md).",
    )
    port: int = Field(8080, ge=0, le=65535)
    request_head_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description=(
            "Seconds a client has to send a request's line and headers, after connecting or after its previous response,"
            " and the longest pause inside a body (which must also average 500 bytes/s after this long); a client"
            " later than that is disconnected (a connection that never sends must not hold a socket for ever)."
        ),
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Host names (no port) the API answers to besides localhost, IP literals and `host`; any other Host header"
            " is refused (400) against DNS rebinding. Add the name clients use, e.g. gridworker.example.org."
        ),
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Extra browser origins (scheme://host[:port]) allowed to send POST/PUT/PATCH/DELETE, e.g. the https:// origin"
            " of a TLS proxy in front of the API. The API's own origin is always allowed."
        ),
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = []
        for name in v:
            name = name.strip().lower().rstrip(".")
            if not re.fullmatch(r"[a-z0-9_]([a-z0-9_\-]{0,62})(\.[a-z0-9_]([a-z0-9_\-]{0,62}))*", name):
                raise ValueError(f"allowed_hosts: {name!r} is not a host name (no scheme, port or path)")
            out.append(name)
        return out

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        out = []
        for origin in v:
            parts = urlsplit(origin.strip())
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                parts = urlsplit("")
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
                raise ValueError(f"allowed_origins: {origin!r} is not an origin like https://host or http://host:8080")
            out.append(origin.strip().rstrip("/").lower())
        return out


class DatabaseConfig(_Strict):
    url: str = Field("sqlite:///var/gridworker.db", description="SQLAlchemy URL; SQLite by default, PostgreSQL via postgresql+psycopg://...")


class PipelineConfig(_Strict):
    batch_deadline_ms: float = Field(
        0.0,
        ge=0.0,
        le=2000.0,
        description=(
            "Longest wait for more frames once a batch has one. 0 (the default) runs whatever is ready: on a CPU,"
            " batching gains ~10% per image while waiting costs live frames (bench: 78 vs 93 live fps at 8 streams);"
            " raise it on a GPU, where large batches pay."
        ),
    )
    inference_workers: int | None = Field(
        None,
        ge=1,
        le=8,
        description=(
            "Threads that each gather a batch and run the detector (ONNX Runtime's run is thread-safe). None (the"
            " default): 2 where the process may use 2 cores or more, else 1; a detector without `threads` then runs"
            " each model run on its share of the cores (1 thread each on 2 cores). Measured on 2 cores: 2 workers"
            " of 1 thread analysed 1.20x (SSD) and 1.31x (YOLOv8n) the live frames of 1 worker of 2 threads (docs/benchmarks.md)."
        ),
    )
    snapshot_quality: int = Field(85, ge=10, le=100, description="JPEG quality of snapshots and live frames.")
    incident_write_interval_s: float = Field(5.0, ge=0.1, le=600.0, description="How often an open incident's progress is written.")
    patrol_batch_slots: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Most patrol frames in one inference batch while a continuous camera is live "
        "(default: half the detector's batch). Live frames always go first; patrol takes the free slots.",
    )
    patrol_max_pending: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="A patrol starts no new visit while this many of its frames wait for inference "
        "(default: twice the detector's batch): back-pressure that keeps decode and inference in step.",
    )
    behind_window_s: float = Field(
        60.0,
        ge=5.0,
        le=3600.0,
        description="A live camera is 'behind' (a warning logged, gridworker_camera_behind 1, analysis_behind on "
        "/cameras, a badge on the console's wall) once its analysed fps has stayed below half its configured fps "
        "for this many seconds; the rate is judged over the same window (vision/pace.py).",
    )

    def inference_worker_count(self, cores: int | None = None) -> int:
        """``inference_workers``, or :func:`~gridworker.models.config.auto_inference_workers` (on
        ``cores``, default the usable ones) when unset."""
        return self.inference_workers if self.inference_workers is not None else auto_inference_workers(cores)


class EvidenceConfig(_Strict):
    """Evidence clips of incidents on continuously watched cameras (see docs/evidence.md)."""

    clips: bool = Field(
        True,
        description="Keep a ring of each camera's encoded packets and save a clip around every incident's opening.",
    )
    clip_pre_s: SecondsUpToMinute = Field(5.0, description="Seconds before the opening (the clip starts at the keyframe at or before).")
    clip_post_s: SecondsUpToMinute = Field(5.0, description="Seconds after the opening; the clip is saved that long after it.")
    clips_dir: Path | None = Field(
        None,
        description="Folder of the MP4 files. Default: 'clips' beside a SQLite database file, else var/clips.",
    )
    buffer_s: float | None = Field(
        None,
        gt=0.0,
        le=300.0,
        description="Seconds of packets each camera keeps in memory. Default: clip_pre_s + clip_post_s + 5 "
        "(room for one GOP and for the clip being cut a little late). A camera's own stream.clip_buffer_s wins "
        "(0 turns clips off for that camera).",
    )
    buffer_mb: RingMegabytes = Field(32.0, description="Cap of each camera's ring, megabytes.")
    min_free_mb: DiskMegabytes = Field(
        256.0,
        description="No clip is written while the clip disk has less free space than this (megabytes); the "
        "incident still opens and says its clip is missing. Retention (retention:) bounds what clips take.",
    )

    @property
    def ring_seconds(self) -> float:
        return self.buffer_s if self.buffer_s is not None else self.clip_pre_s + self.clip_post_s + 5.0

    def resolve_clips_dir(self, database_url: str) -> Path:
        if self.clips_dir is not None:
            return self.clips_dir
        parsed = urlsplit(database_url)
        if parsed.scheme.startswith("sqlite") and parsed.path not in ("", "/", "/:memory:"):
            return Path(parsed.path[1:]).parent / "clips"  # sqlite:///rel/path.db and sqlite:////abs/path.db
        return Path("var/clips")


MIB = 1024 * 1024
#: The routes that take photos (issue 15): a resident's multipart report (4 photos), the intake
#: API's JSON with base64 photos, a handler's multipart photos. Their own per-file caps apply inside.
#: Each of these routes reads its body itself, after its key check (if it has one): api/limits.py.
PHOTO_ROUTE_CAPS = {"/report/submit": 36 * MIB, "/reports": 48 * MIB, "/workorders/*/photos": 36 * MIB}


class LimitsConfig(_Strict):
    """Caps on what callers and the config file can make the service hold (docs/security.md,
    "Limits"). A request over a cap gets a 4xx naming the cap; a config file over one does not
    load (ConfigError).

    Example:
        >>> LimitsConfig().body_limit("/cameras"), LimitsConfig(body_bytes_by_path={"/photos": 8 * MIB}).body_limit("/photos/7")
        (1048576, 8388608)
    """

    max_body_bytes: int = Field(
        MIB, ge=1024, le=1024 * MIB, description="Largest request body, bytes (413 beyond; checked while it streams in)."
    )
    body_bytes_by_path: dict[str, int] = Field(
        default_factory=lambda: dict(PHOTO_ROUTE_CAPS),
        max_length=64,
        description="Other caps for routes under a path prefix, bytes, e.g. {'/photos': 20971520} for a route that "
        "takes photos; the longest matching prefix wins; a '*' segment matches any one segment. Default: the routes "
        "that take photos (reports, handlers' photos; issue 15) — a map given here replaces it, so list them too.",
    )
    max_event_streams: int = Field(64, ge=1, le=100_000, description="Open server-sent event streams in all (429 beyond).")
    max_event_streams_per_key: int = Field(8, ge=1, le=100_000, description="Open event streams of one API key (429 beyond).")
    event_stream_recheck_s: float = Field(
        5.0,
        ge=0.2,
        le=60.0,
        description="An open event stream checks its caller again this often, seconds (and before each batch it sends): "
        "it ends once the key is revoked or the session is over (logout, idle, the person disabled or changed).",
    )
    max_cameras: int = Field(1000, ge=1, le=100_000, description="Cameras in all, config file and API together (409 beyond).")
    max_patrol_plans: int = Field(64, ge=1, le=10_000, description="Patrol plans in all (409 beyond).")
    max_patrol_concurrency: int = Field(
        128, ge=1, le=512, description="Highest 'concurrency' (visits in flight) a patrol plan may ask for (422 beyond)."
    )
    clip_buffers_total_mb: float = Field(
        1024.0,
        gt=0.0,
        le=1_048_576.0,
        description="Memory of all cameras' clip rings together, megabytes. The rings share it: with N rings each "
        "keeps at most min(its own cap, total / N).",
    )
    scene: SceneLimits = Field(default_factory=SceneLimits, description="Zones, rules, masks, lines, signals, vertices per camera.")

    @field_validator("body_bytes_by_path")
    @classmethod
    def _prefixes(cls, v: dict[str, int]) -> dict[str, int]:
        for prefix, n in v.items():
            if not prefix.startswith("/") or len(prefix) > 200 or any(c.isspace() or c in "?#" for c in prefix):
                raise ValueError(f"body_bytes_by_path: {prefix[:200]!r} is not a path prefix like /photos")
            if not 1024 <= n <= 1024 * MIB:
                raise ValueError(f"body_bytes_by_path: {prefix!r}: {n} bytes is outside 1024..{1024 * MIB}")
        return v

    def body_limit(self, path: str) -> int:
        """The body cap of a request to ``path``: the longest matching prefix's, else ``max_body_bytes``."""
        best, limit = -1, self.max_body_bytes
        segments = path.split("/")
        for prefix, n in self.body_bytes_by_path.items():
            want = prefix.rstrip("/").split("/")  # a '*' segment matches any one segment (issue 15)
            if len(prefix) > best and len(segments) >= len(want) and all(w in ("*", g) for w, g in zip(want, segments)):
                best, limit = len(prefix), n
        return limit

    def problems(self, config: Mapping[str, Any]) -> list[str]:
        """What in ``config`` exceeds these caps (empty when it fits): the config file's mapping,
        raw (one that fails other checks too, for ``gridworker check``) or ``Settings.checked_view``."""
        out: list[str] = []
        cams = _mappings(config.get("cameras"))
        plans = _mappings(config.get("patrol_plans"))
        if _count(config.get("cameras")) > self.max_cameras:
            out.append(f"{_count(config.get('cameras'))} cameras, more than limits.max_cameras ({self.max_cameras})")
        if _count(config.get("patrol_plans")) > self.max_patrol_plans:
            out.append(f"{_count(config.get('patrol_plans'))} patrol plans, more than limits.max_patrol_plans ({self.max_patrol_plans})")
        for _, plan in plans:
            concurrency = plan.get("concurrency")
            if _is_number(concurrency) and concurrency > self.max_patrol_concurrency:
                out.append(
                    f"patrol plan {plan.get('id')!r}: concurrency {concurrency} is more than limits.max_patrol_concurrency ({self.max_patrol_concurrency})"
                )
        for _, cam in cams:
            out.extend(f"camera {cam.get('id')!r}: {p}" for p in self.scene.problems(cam))
            stream = cam.get("stream")
            ring_mb = stream.get("clip_buffer_mb") if isinstance(stream, Mapping) else None
            if _is_number(ring_mb) and ring_mb > self.clip_buffers_total_mb:
                out.append(f"camera {cam.get('id')!r}: stream.clip_buffer_mb {ring_mb} is more than limits.clip_buffers_total_mb ({self.clip_buffers_total_mb})")
        evidence = config.get("evidence")
        buffer_mb = evidence.get("buffer_mb", EvidenceConfig.model_fields["buffer_mb"].default) if isinstance(evidence, Mapping) else None
        if _is_number(buffer_mb) and buffer_mb > self.clip_buffers_total_mb:
            out.append(f"evidence.buffer_mb {buffer_mb} is more than limits.clip_buffers_total_mb ({self.clip_buffers_total_mb})")
        return out


def _mappings(value: object) -> list[tuple[int, Mapping[str, Any]]]:
    """The mappings in a raw list, with their index in it (a non-list: none)."""
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)] if isinstance(value, list) else []


def _count(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _EnvOverFile(BaseSettings):
    """Settings whose environment variables (``GRIDWORKER_`` prefix) win over the YAML file's
    values, which arrive as init kwargs."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


class Settings(_EnvOverFile):
    """The whole service configuration (the composition root's view)."""

    model_config = SettingsConfigDict(extra="forbid")

    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    detectors: list[NamedDetectorConfig] = Field(
        default_factory=list,
        max_length=8,
        description="More models beside detector: (a site's own fall or garbage model), named by id; cameras list the ones they use.",
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    workorders: WorkOrdersConfig = Field(default_factory=WorkOrdersConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    forwarding: ForwardingConfig = Field(default_factory=ForwardingConfig, description="Outbox delivery (docs/forwarding.md).")
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="What is deleted when: clips, delivered outbox messages, audit rows."
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Caps on bodies, streams, cameras, plans, scenes, clip memory (docs/security.md).")
    media_dir: Path | None = Field(
        None,
        description="Folder of the video files that cameras in this file may play (a path or file:// URL that resolves, "
        "symlinks and '..' followed, inside it). None: no file sources. Cameras added through the API are always "
        "network cameras.",
    )
    cameras: list[CameraConfig] = Field(default_factory=list)
    patrol_plans: list[PatrolPlan] = Field(default_factory=list, description="Patrol plans (docs/patrol.md).")
    # --- IoT alarms (issue 14) ---
    iot: IotConfig = Field(default_factory=IotConfig, description="IoT devices and their MQTT ingest (docs/iot.md).")
    # --- end IoT ---
    cluster: ClusterConfig | None = Field(None, description="Cluster mode: gridworker worker / serve through NATS JetStream (docs/cluster.md); absent: the embedded gridworker run.")
    areas: AreaList = Field(default_factory=list, description="The grid's areas (网格): id, name, WGS84 polygon; cases get the area of their position (docs/people.md).")
    people: PeopleConfig = Field(default_factory=PeopleConfig, description="People's logins: sessions, login limits, password hashing (docs/people.md).")
    reports: ReportsConfig = Field(
        default_factory=ReportsConfig, description="Reports from residents and the 12345 platform, photos of cases (docs/people.md)."
    )  # issue 15
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="The console: the map view's basemap (docs/people.md, The map).")

    @model_validator(mode="after")
    def _whole_config(self) -> Settings:
        # one list of every problem that spans items (ids, references, file sources, limits), one
        # per line: describe_errors shows each on its own, and finds the same ones on a raw file
        problems = whole_config_problems(self.checked_view(), self.limits, self.media_dir)
        if problems:
            more = [f"and {len(problems) - MAX_LISTED_PROBLEMS} more"] if len(problems) > MAX_LISTED_PROBLEMS else []
            raise ValueError("\n".join(problems[:MAX_LISTED_PROBLEMS] + more))
        return self

    def model_configs(self) -> dict[str, DetectorConfig]:
        """Every model by id: ``detector:`` as ``default``, then each of ``detectors:``."""
        return {DEFAULT_DETECTOR: self.detector, **{d.id: d for d in self.detectors}}

    def checked_view(self) -> dict[str, Any]:
        """What ``whole_config_problems`` reads of these settings, as a config file would give it."""
        return {
            "cameras": [cam.model_dump(include=_CHECKED_CAMERA_KEYS) for cam in self.cameras],
            "patrol_plans": [plan.model_dump(include={"id", "select", "concurrency"}) for plan in self.patrol_plans],
            "detectors": [{"id": d.id} for d in self.detectors],
            "evidence": {"buffer_mb": self.evidence.buffer_mb},
        }



def plan_camera_problems(plan: PatrolPlan, camera_ids: set[str] | frozenset[str]) -> str | None:
    """Why ``plan`` does not fit these cameras (unknown listed ids), or None when it does."""
    return _unknown_cameras(plan.select.camera_ids, plan.select.exclude, camera_ids)


def _unknown_cameras(listed: object, excluded: object, camera_ids: Set[object]) -> str | None:
    unknown = [c for c in listed if c not in camera_ids] if isinstance(listed, list) else []
    unknown_ex = [c for c in excluded if c not in camera_ids] if isinstance(excluded, list) else []
    parts = []
    if unknown:
        parts.append(f"select.camera_ids names unknown camera(s) {unknown[:10]}" + (" ..." if len(unknown) > 10 else ""))
    if unknown_ex:
        parts.append(f"select.exclude names unknown camera(s) {unknown_ex[:10]}" + (" ..." if len(unknown_ex) > 10 else ""))
    return "; ".join(parts) or None


#: Most whole-config problems one error lists (then "and N more").
MAX_LISTED_PROBLEMS = 50
#: The camera keys ``whole_config_problems`` reads.
_CHECKED_CAMERA_KEYS = {"id", "url", "record_url", "detectors", "stream", "zones", "masks", "lines", "signals"}


def whole_config_problems(config: Mapping[str, Any], limits: LimitsConfig | None, media_dir: Path | None) -> list[str]:
    """Every problem that spans items of the config: ids used twice, cameras' models and rules'
    detectors that are not defined, patrol plans naming unknown cameras or with an id reserved
    for the IoT linkage's watches (``iot.linkage.PLAN_PREFIX``), file sources outside
    ``media_dir``, and what exceeds ``limits`` (None: not checked). One line each.

    ``config`` is the config file's mapping, raw (``gridworker check`` lists these beside field
    errors: pydantic runs ``Settings``' own check only once every field is valid) or
    ``Settings.checked_view``: the same lines either way.

    Example:
        >>> whole_config_problems({"cameras": [{"id": "a", "url": "rtsp://h/s", "detectors": ["fall"]}],
        ...     "patrol_plans": [{"id": "p", "select": {"camera_ids": ["b"]}}]}, None, None)
        ["camera 'a' (cameras[0]): detectors ['fall'] are not defined (known: ['default'])", "patrol plan 'p': select.camera_ids names unknown camera(s) ['b']"]
    """
    out: list[str] = []
    for key, what in (("cameras", "camera"), ("patrol_plans", "patrol plan"), ("detectors", "detector")):
        repeat = first_repeat(i for _, item in _mappings(config.get(key)) if isinstance(i := item.get("id"), str))
        if repeat is not None:
            out.append(f"{what} id {repeat!r} is used twice")
    cams = _mappings(config.get("cameras"))
    models = {DEFAULT_DETECTOR, *(i for _, d in _mappings(config.get("detectors")) if isinstance(i := d.get("id"), str))}
    for i, cam in cams:
        where = f"camera {cam.get('id', '?')!r} (cameras[{i}])"
        for key in ("url", "record_url"):
            url = cam.get(key)
            if not isinstance(url, str):
                continue
            try:
                source = parse_source(url)
            except ValueError:
                continue  # a malformed URL is the field's own error
            if isinstance(source, FileSource):
                try:
                    check_media_path(source, media_dir)
                except ValueError as exc:
                    out.append(f"{where}: {key}: {exc}")
        detectors = cam.get("detectors", [DEFAULT_DETECTOR])
        if not isinstance(detectors, list):
            continue
        if unknown := [d for d in detectors if d not in models]:
            out.append(f"{where}: detectors {unknown} are not defined (known: {sorted(models)})")
        for _, zone in _mappings(cam.get("zones")):
            for _, rule in _mappings(zone.get("rules")):
                detector = rule.get("detector")
                if detector is not None and detector not in detectors:
                    out.append(
                        f"{where}: zone {zone.get('id')!r} rule {rule.get('id') or rule.get('type')!r}: detector {detector!r}"
                        f" is not one of the camera's detectors {detectors}"
                    )
    camera_ids = {cam.get("id") for _, cam in cams}
    for _, plan in _mappings(config.get("patrol_plans")):
        if isinstance(plan_id := plan.get("id"), str) and plan_id.startswith(IOT_PLAN_PREFIX):
            out.append(f"patrol plan {plan_id!r}: ids starting with {IOT_PLAN_PREFIX!r} are reserved for the IoT linkage's watches")
        select = plan.get("select")
        if isinstance(select, Mapping) and (problem := _unknown_cameras(select.get("camera_ids"), select.get("exclude"), camera_ids)):
            out.append(f"patrol plan {plan.get('id')!r}: {problem}")
    if limits is not None:
        out.extend(limits.problems(config))
    return out


# lists whose items errors name by id: key -> (what an item is, the name of a whole item's fault)
_NAMED_ITEMS = {"cameras": ("camera", "(camera)"), "patrol_plans": ("patrol plan", "(plan)")}


def _env_variable(loc: Sequence[str | int]) -> str | None:
    """The environment variable that set the value at ``loc`` (a section's JSON, or a nested
    ``GRIDWORKER_A__B``), or None when it came from the file. Names match case-insensitively."""
    present = {name.upper(): name for name in os.environ if name.upper().startswith(ENV_PREFIX)}
    keys: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break
        keys.append(part.upper())
        name = present.get(ENV_PREFIX + "__".join(keys))
        if name is not None:
            return name
    return None


def _item_id(data: Any, loc: Sequence[str | int], env_name: str | None) -> object:
    """The ``id`` of the list item at ``loc[:2]``, from the file or from the environment's JSON."""
    try:
        items = json.loads(os.environ[env_name]) if env_name is not None else data[loc[0]]
        item = items[loc[1]]
        return item.get("id", "?") if isinstance(item, dict) else "?"
    except (KeyError, IndexError, TypeError, ValueError, RecursionError):
        return "?"


def describe_errors(err: ValidationError, data: Any, source: str = "config") -> str:
    """Turn a pydantic error into lines naming the camera (by id) and the key at fault; a value
    set by an environment variable names the variable (it is not in the file)."""
    lines: list[str] = []
    for e in err.errors():
        loc = list(e["loc"])
        # pydantic echoes the input value; never echo a URL's password
        msg = re.sub(r"\w+://[^\s'\"]+", lambda m: redact_url(m.group(0)), e["msg"])
        if not loc and e["type"] == "value_error":
            # the whole-config check: one problem a line, each naming its own place
            lines.extend(f"  - {problem}" for problem in msg.removeprefix("Value error, ").split("\n"))
            continue
        where = ".".join(str(p) for p in loc) or "(top level)"
        env_name = _env_variable(loc)
        named = _NAMED_ITEMS.get(str(loc[0])) if len(loc) >= 2 and isinstance(loc[1], int) else None
        if named is not None:
            what, whole = named
            rest = ".".join(str(p) for p in loc[2:]) or whole
            where = f"{what} {_item_id(data, loc, env_name)!r} ({loc[0]}[{loc[1]}]): {rest}"
        if env_name is not None:
            where += f" (from the environment variable {env_name})"
        lines.append(f"  - {where}: {msg}")
    # issue 16: a camera with other errors never reaches its scene's reference check, nor the
    # config its whole-config check (a model validator runs only on valid fields): list those
    # problems too, from the raw mapping, so that one pass shows all
    for line in [*_scene_reference_lines(data), *_cross_item_lines(data)]:
        if not any(all(part in seen for part in line[4:].split(": ", 1)) for seen in lines):
            lines.append(line)
    return "\n".join([f"{source}: {len(lines)} problem(s)", *lines])


def _cross_item_lines(data: Any) -> list[str]:
    """``whole_config_problems`` of the raw config, as ``describe_errors`` lines, with the limits
    and ``media_dir`` the environment may set (it wins over the file, here as in Settings)."""
    if not isinstance(data, dict):
        return []
    env_media_dir = next((v for k, v in os.environ.items() if k.upper() == ENV_PREFIX + "MEDIA_DIR"), None)
    media_dir = env_media_dir if env_media_dir is not None else data.get("media_dir")
    try:
        limits: LimitsConfig | None = _LimitsOnly(**({"limits": data["limits"]} if "limits" in data else {})).limits
    except (ValidationError, SettingsError):
        limits = None  # the limits' own error is listed; what exceeds them shows once they are valid
    problems = whole_config_problems(data, limits, Path(media_dir) if isinstance(media_dir, str) else None)
    return [f"  - {problem}" for problem in problems]


class _LimitsOnly(_EnvOverFile):
    """The ``limits:`` section alone, with the environment's overrides: what a raw config's
    whole-config check measures against."""

    model_config = SettingsConfigDict(extra="ignore")

    limits: LimitsConfig = Field(default_factory=LimitsConfig)


def _scene_reference_lines(data: Any) -> list[str]:
    """``reference_problems`` of every camera of the raw config, as ``describe_errors`` lines."""
    cams = data.get("cameras") if isinstance(data, dict) else None
    out: list[str] = []
    for i, cam in enumerate(cams if isinstance(cams, list) else []):
        if isinstance(cam, dict):
            out.extend(f"  - camera {cam.get('id', '?')!r} (cameras[{i}]): {p}" for p in reference_problems(cam))
    return out


def _environment_error(exc: SettingsError) -> str:
    """A ``SettingsError`` (an environment variable whose value is not JSON) as one line naming
    the variable; never its value (it may hold a password)."""
    match = re.search(r'field "([^"]+)"', str(exc))
    field = match.group(1) if match else "?"
    wanted = (ENV_PREFIX + field).upper()
    names = sorted(n for n in os.environ if n.upper() == wanted or n.upper().startswith(wanted + "__"))
    name = ", ".join(names) or wanted
    cause = exc.__cause__
    reason = f"{cause.msg} at line {cause.lineno} column {cause.colno}" if isinstance(cause, json.JSONDecodeError) else type(cause).__name__
    return f"environment variable {name}: its value for {field!r} is not valid JSON ({reason}); the value is not shown"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), apply environment overrides, validate.

    Raises:
        ConfigError: unreadable file, invalid YAML or invalid values, with a readable message.
    """
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        p = Path(path)
        source = str(p)
        loaded = read_yaml(p, "config file", ConfigError)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping with keys like 'cameras', 'server', 'detector'")
        data = loaded
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, data, source)) from None
    except SettingsError as exc:  # the environment's value for a section or list is not JSON
        raise ConfigError(f"{source}: {_environment_error(exc)}") from None
