"""Response models of the public JSON API (numpy and internal types stop here)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Literal, overload

from pydantic import BaseModel, Field, field_validator, model_validator

from gridworker.incidents import Incident
from gridworker.service import CameraView
from gridworker.settings import CameraConfig
from gridworker.streams.sources import require_network
from gridworker.vision.config import CalibrationConfig, FilterConfig, LineConfig, MaskConfig, RiderConfig, SceneConfig, SignalConfig, ZoneConfig

NETWORK_URL_PATTERN = r"^(rtsps?|rtmps?|https?)://[^\s/?#|]+(/[^\s|]*)?$"
"""The shape of a camera URL given to the API, for the OpenAPI schema (streams/sources.py checks)."""


@overload
def utc(ts: float) -> datetime: ...


@overload
def utc(ts: float | None) -> datetime | None: ...


def utc(ts: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def epoch(value: datetime) -> float:
    """A query's datetime as epoch seconds; one without a zone is UTC (as the API's times are),
    never the server's local time."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)).timestamp()


_dt = utc


class StreamHealthOut(BaseModel):
    state: Literal["connecting", "live", "stalled", "backoff", "stopped"]
    since: datetime | None
    stream_fps: float
    frames_decoded: int
    frames_published: int
    frames_dropped: int
    reconnects: int
    last_error: str | None = Field(
        description="Why the stream last failed. Administrators get the detail (credentials redacted); "
        "everyone else only its kind, e.g. 'cannot open the stream'."
    )
    last_frame_at: datetime | None


class CameraOut(BaseModel):
    id: str
    name: str
    site: str
    url: str = Field(description="Stream URL with any password removed.")
    record_url: str | None = Field(None, description="Main-stream URL for evidence (stream roles), password removed.")
    fps: float
    health: StreamHealthOut
    analysed_fps: float
    frames_analysed: int
    frames_inferred: int = Field(description="Live frames the model ran on.")
    inferred_fraction: float | None = Field(
        description="Inferred / analysed live frames: below 1 when motion gating kept still frames from the model; null before the first."
    )
    frames_cropped: int = Field(0, description="Inferred live frames the model saw only the moved part of (motion.crop).")
    last_analysed_at: datetime | None
    analysis_behind: bool = Field(
        False,
        description="A live camera analysed below half its configured fps for the last pipeline.behind_window_s (default 60 s): "
        "a warning is logged, gridworker_camera_behind is 1 and the console's wall shows a 'behind' badge. False for patrol-only "
        "and non-live cameras.",
    )
    open_incident_types: list[str]
    worker: str | None = Field(None, description="Cluster mode (gridworker serve): the worker that runs the camera now; null otherwise, or while none does.")
    worker_load: int | None = Field(None, description="Cluster mode: how many continuous cameras that worker runs.")
    zones: list[ZoneConfig]
    masks: list[MaskConfig]
    lines: list[LineConfig]
    signals: list[SignalConfig]
    calibration: CalibrationConfig | None
    filters: FilterConfig = Field(description="Sanity filters between detector and rules (PUT /cameras/{id}/scene keeps them when left out).")
    riders: RiderConfig = Field(description="Riders counted as their vehicle (PUT /cameras/{id}/scene keeps them when left out).")

    @classmethod
    def of(cls, view: CameraView, *, detail: bool = False) -> CameraOut:
        """The camera as the API shows it; ``detail`` (administrators) shows ``last_error`` in full."""
        h = view.health
        return cls(
            id=view.config.id,
            name=view.config.name,
            site=view.config.site,
            url=view.config.public_url(),
            record_url=view.config.public_record_url(),
            fps=view.config.fps,
            health=StreamHealthOut(
                state=h.state.value,
                since=_dt(h.since),
                stream_fps=round(h.fps, 2),
                frames_decoded=h.frames_decoded,
                frames_published=h.frames_published,
                frames_dropped=h.frames_dropped,
                reconnects=h.reconnects,
                last_error=h.last_error if detail else h.public_error,
                last_frame_at=_dt(h.last_frame_ts),
            ),
            analysed_fps=view.analysed_fps,
            frames_analysed=view.frames_analysed,
            frames_inferred=view.frames_inferred,
            inferred_fraction=view.inferred_fraction,
            frames_cropped=view.frames_cropped,
            last_analysed_at=_dt(view.last_analysed_at),
            analysis_behind=view.analysis_behind,
            open_incident_types=view.open_incident_types,
            zones=view.config.zones,
            masks=view.config.masks,
            lines=view.config.lines,
            signals=view.config.signals,
            calibration=view.config.calibration,
            filters=view.config.filters,
            riders=view.config.riders,
        )


class SceneUpdate(SceneConfig):
    """The body of ``PUT /cameras/{id}/scene``: the parts of the scene to replace. Each part sent
    replaces the camera's whole part (a list as a whole, ``calibration: null`` removes the
    calibration); a part left out keeps the camera's current one. References (exempt zones,
    signals, a calibration for speeds) are checked on the camera's scene with the update applied,
    so a body may send zones alone that use the camera's signals."""

    @model_validator(mode="after")
    def _references(self) -> SceneUpdate:  # overrides SceneConfig's: checked on the merged scene (CameraRegistry.update_scene)
        return self


class NewCamera(CameraConfig):
    """A camera added through the API: a network camera only (rtsp, rtsps, rtmp, rtmps, or
    http(s) HLS). Video files are sources only in the config file, under ``media_dir``."""

    url: str = Field(
        min_length=1,
        max_length=2000,
        description="rtsp://, rtsps://, rtmp://, rtmps://, http(s):// (HLS) URL of the camera. Credentials "
        "(user:pw@, ?pwd=, ;password=) are kept for the connection and never shown or logged.",
        # documents the shape (and lets API fuzzers make valid ones); the check itself is
        # streams/sources.py's, which also refuses control characters, '|' and bad ports
        json_schema_extra={"pattern": NETWORK_URL_PATTERN, "examples": ["rtsp://admin:pw@10.0.0.7:554/stream1"]},
    )

    @field_validator("url", "record_url")
    @classmethod
    def _network_only(cls, url: str | None) -> str | None:
        if url is not None:
            require_network(url)  # a SourceError (ValueError): 422 naming body.url / body.record_url
        return url


class IncidentOut(BaseModel):
    id: int
    type: str
    status: Literal["open", "closed"]
    camera_id: str
    camera_name: str
    site: str
    zone_id: str
    rule_id: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    peak_count: int
    observations: int
    summary: str
    details: dict[str, Any]
    snapshot_url: str | None
    has_clip: bool = Field(False, description="An evidence clip (MP4 around the opening) is ready.")
    clip_url: str | None = None
    clip_missing: str | None = Field(
        None,
        description="Why there is no clip: it could not be saved (e.g. the clip disk was full) or retention deleted it. "
        "Null while a clip exists or may still come.",
    )

    @classmethod
    def of(cls, inc: Incident) -> IncidentOut:
        """The stored incident's fields (its Unix times as UTC datetimes) and its evidence links."""
        links = {
            "snapshot_url": f"/incidents/{inc.id}/snapshot.jpg" if inc.has_snapshot else None,
            "clip_url": f"/incidents/{inc.id}/clip.mp4" if inc.has_clip else None,
        }
        return cls.model_validate({**asdict(inc), **links})


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="ok: the service runs, every continuously watched camera is live (patrol-only cameras are"
        " opened only by their visits, so they never count as down) and no detector batch failed in the last minute."
    )
    cameras: int
    cameras_live: int
    cameras_patrol_only: int = Field(0, description="Cameras only patrol visits open (not counted in cameras_live).")
    detector: str
    open_incidents: int
    reasons: list[str] = Field(
        default_factory=list,
        description="Why it is degraded besides the counts above: the detector failing on its batches (for a minute"
        " after a failed batch; the error's type, its message in the log).",
    )
