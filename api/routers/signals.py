"""Traffic signals of a camera: a signal controller pushes states, anyone reads them.

``PUT /cameras/{camera_id}/signals/{signal_id}`` feeds a signal configured with
``source: api`` (the red-light rules read it on the next frame); ``GET
/cameras/{camera_id}/signals`` shows every configured signal's current state, pushed or
read from the image.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field

from gridworker.service import CameraNotFound, Service
from gridworker.settings import CAMERA_ID_PATTERN
from gridworker.vision.config import SignalConfig

from ..deps import ServiceDep
from ..auth import OPERATE, READ

router = APIRouter(prefix="/cameras", tags=["signals"])

CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="Camera id")]
SignalId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="Signal id, as under the camera's 'signals'")]


class SignalStateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["red", "yellow", "green"] = Field(description="The lamp that is lit now.")


class SignalOut(BaseModel):
    id: str
    source: Literal["image", "api"]
    state: Literal["red", "yellow", "green", "unknown"] = Field(
        description="unknown: nothing pushed or read yet, or older than the signal's stale_after_s."
    )
    updated_at: datetime | None = Field(description="When the state was pushed or last read.")
    stale_after_s: float


def _signals(service: Service, camera_id: str) -> list[SignalConfig]:
    try:
        return list(service.camera(camera_id).config.signals)
    except CameraNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None


def _out(service: Service, camera_id: str, cfg: SignalConfig, now: float) -> SignalOut:
    st = service.signals.status(camera_id, cfg, now)
    at = None if st.updated_at is None else datetime.fromtimestamp(st.updated_at, tz=timezone.utc)
    return SignalOut(id=cfg.id, source=cfg.source, state=st.state, updated_at=at, stale_after_s=cfg.stale_after_s)


@router.get("/{camera_id}/signals", response_model=list[SignalOut], responses={404: {"description": "No such camera"}}, dependencies=[READ])
def list_signals(camera_id: CameraId, service: ServiceDep) -> list[SignalOut]:
    now = time.time()
    return [_out(service, camera_id, cfg, now) for cfg in _signals(service, camera_id)]


@router.put(
    "/{camera_id}/signals/{signal_id}",
    response_model=SignalOut,
    responses={
        404: {"description": "No such camera, or no such signal on it"},
        409: {"description": "The signal reads its state from the image (source: image)"},
    }, dependencies=[OPERATE])
def push_signal(camera_id: CameraId, signal_id: SignalId, body: SignalStateIn, service: ServiceDep) -> SignalOut:
    """A signal controller reports the lit lamp. The state holds for the signal's
    ``stale_after_s``; push on every change and at least that often."""
    cfg = next((s for s in _signals(service, camera_id) if s.id == signal_id), None)
    if cfg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} has no signal {signal_id!r}")
    if cfg.source != "api":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"signal {signal_id!r} of camera {camera_id!r} is read from the image (source: image), not pushed"
        )
    now = time.time()
    service.signals.push(camera_id, signal_id, body.state, at=now)
    return _out(service, camera_id, cfg, now)
