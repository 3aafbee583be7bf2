"""Configuration: one YAML file (cameras, zones, settings), overridable by environment.

Precedence: environment variables (``GRIDWORKER_`` prefix, ``__`` between nested keys, e.g.
``GRIDWORKER_DETECTOR__THREADS=2``, ``GRIDWORKER_DATABASE__URL=postgresql+psycopg://…``)
over the YAML file over defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gridworker.incidents.forwarding import ForwardingConfig
from gridworker.incidents.workorders import AuthConfig, WorkOrdersConfig
from gridworker.models.config import DetectorConfig
from gridworker.models.tiling import TileConfig
from gridworker.patrol.config import CameraPatrolConfig, PatrolPlan
from gridworker.streams.config import StreamConfig
from gridworker.streams.redact import redact_url
from gridworker.vision.config import SceneConfig
from gridworker.vision.tracker import TrackerConfig

CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
URL_SCHEMES = {"rtsp", "rtsps", "rtmp", "http", "https", "file"}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, camera and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    url: str = Field(min_length=1, max_length=2000, description="rtsp://, http(s)://, file:// URL or a local file path.")
    fps: float = Field(5.0, gt=0.0, le=60.0, description="Frames per second to analyse.")
    stream: dict[str, Any] = Field(default_factory=dict, description="Reader tuning: timeouts, backoff (see StreamConfig).")
    detect_tiles: TileConfig | None = Field(
        None, description="Detect on overlapping tiles (small, far objects; one model run per tile). See docs/models.md."
    )
    watch: Literal["continuous", "patrol"] = Field(
        "continuous",
        description="continuous: streamed and analysed all the time at ``fps``; patrol: never streamed, "
        "only visited by patrol plans (the hundreds of key-site cameras; see docs/patrol.md).",
    )
    patrol: CameraPatrolConfig = Field(
        default_factory=CameraPatrolConfig, description="Site type, tags and priority used by patrol plans."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if "://" in url:
            scheme = urlsplit(url).scheme.lower()
            if scheme not in URL_SCHEMES:
                raise ValueError(f"unsupported URL scheme {scheme!r} in {redact_url(url)}; use one of {sorted(URL_SCHEMES)}")
            if scheme != "file" and not urlsplit(url).hostname:
                raise ValueError(f"URL {redact_url(url)} has no host")
        return url

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        self.stream_config()  # validates the tuning keys
        return self

    def stream_config(self) -> StreamConfig:
        return StreamConfig(url=self.url, fps=self.fps, **self.stream)

    def scene(self) -> SceneConfig:
        """The camera's scene alone (what the analyzer needs)."""
        return SceneConfig(**{name: getattr(self, name) for name in SceneConfig.model_fields})

    def public_url(self) -> str:
        return redact_url(self.url)


class ServerConfig(_Strict):
    host: str = Field("127.0.0.1", description="Bind address of the HTTP API.")
    port: int = Field(8080, ge=0, le=65535)


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
    inference_workers: int = Field(
        1,
        ge=1,
        le=8,
        description=(
            "Threads that each gather a batch and run the detector (ONNX Runtime's run is thread-safe). On 2 cores"
            " one is best (bench, 8 streams: 2 workers gave the same live fps at 15% more CPU per frame);"
            " more may pay with more cores or a GPU."
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


class EvidenceConfig(_Strict):
    """Evidence clips of incidents on continuously watched cameras (see docs/evidence.md)."""

    clips: bool = Field(
        True,
        description="Keep a ring of each camera's encoded packets and save a clip around every incident's opening.",
    )
    clip_pre_s: float = Field(5.0, ge=0.0, le=60.0, description="Seconds before the opening (the clip starts at the keyframe at or before).")
    clip_post_s: float = Field(5.0, ge=0.0, le=60.0, description="Seconds after the opening; the clip is saved that long after it.")
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
    buffer_mb: float = Field(32.0, gt=0.0, le=1024.0, description="Cap of each camera's ring, megabytes.")

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


class Settings(BaseSettings):
    """The whole service configuration (the composition root's view)."""

    model_config = SettingsConfigDict(env_prefix="GRIDWORKER_", env_nested_delimiter="__", extra="forbid")

    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    workorders: WorkOrdersConfig = Field(default_factory=WorkOrdersConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    forwarding: ForwardingConfig = Field(default_factory=ForwardingConfig, description="Outbox delivery (docs/forwarding.md).")
    cameras: list[CameraConfig] = Field(default_factory=list)
    patrol_plans: list[PatrolPlan] = Field(default_factory=list, description="Patrol plans (docs/patrol.md).")

    @model_validator(mode="after")
    def _unique_cameras(self) -> Settings:
        seen: set[str] = set()
        for cam in self.cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} is used twice")
            seen.add(cam.id)
        plans: set[str] = set()
        for plan in self.patrol_plans:
            if plan.id in plans:
                raise ValueError(f"patrol plan id {plan.id!r} is used twice")
            plans.add(plan.id)
            problems = plan_camera_problems(plan, seen)
            if problems:
                raise ValueError(f"patrol plan {plan.id!r}: {problems}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment wins over the YAML file, which arrives as init kwargs
        return env_settings, init_settings


def plan_camera_problems(plan: PatrolPlan, camera_ids: set[str] | frozenset[str]) -> str | None:
    """Why ``plan`` does not fit these cameras (unknown listed ids), or None when it does."""
    unknown = [c for c in plan.select.camera_ids if c not in camera_ids]
    unknown_ex = [c for c in plan.select.exclude if c not in camera_ids]
    parts = []
    if unknown:
        parts.append(f"select.camera_ids names unknown camera(s) {unknown[:10]}" + (" ..." if len(unknown) > 10 else ""))
    if unknown_ex:
        parts.append(f"select.exclude names unknown camera(s) {unknown_ex[:10]}" + (" ..." if len(unknown_ex) > 10 else ""))
    return "; ".join(parts) or None


def describe_errors(err: ValidationError, data: Any, source: str = "config") -> str:
    """Turn a pydantic error into lines naming the camera (by id) and the key at fault."""
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            try:
                cam_id = data["cameras"][loc[1]].get("id", "?")
            except (KeyError, IndexError, TypeError, AttributeError):
                cam_id = "?"
            rest = ".".join(str(p) for p in loc[2:]) or "(camera)"
            where = f"camera {cam_id!r} (cameras[{loc[1]}]): {rest}"
        elif len(loc) >= 2 and loc[0] == "patrol_plans" and isinstance(loc[1], int):
            try:
                plan_id = data["patrol_plans"][loc[1]].get("id", "?")
            except (KeyError, IndexError, TypeError, AttributeError):
                plan_id = "?"
            rest = ".".join(str(p) for p in loc[2:]) or "(plan)"
            where = f"patrol plan {plan_id!r} (patrol_plans[{loc[1]}]): {rest}"
        msg = e["msg"]
        # pydantic echoes the input value; never echo a URL's password
        msg = re.sub(r"\w+://[^\s'\"]+", lambda m: redact_url(m.group(0)), msg)
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


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
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML: {exc}") from None
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
