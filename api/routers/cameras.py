from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field

from gridworker.cameras import CameraModelMismatch, MainStreamBusy, problem_text
from gridworker.cases.workflow import ADMIN, SUPERVISOR, Actor
from gridworker.service import CameraExists, CameraLimitReached, CameraNotFound, SceneTooLarge
from gridworker.settings import CAMERA_ID_PATTERN
from gridworker.streams.sources import SourceError

from ..deps import CameraOwner, OwnersDep, ServiceDep
from ..errors import Responses
from ..schemas import CameraOut, NewCamera, SceneUpdate
from ..auth import ADMINISTER, READ, require

router = APIRouter(prefix="/cameras", tags=["cameras"])

CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="Camera id")]
_NOT_FOUND: Responses = {404: {"description": "No such camera"}}


Reader = Annotated[Actor, READ]


def _detail(user: Actor) -> bool:
    """Whether the caller sees stream errors in full (hosts, paths, server answers): admins only."""
    return user.role == ADMIN


def _not_found(exc: CameraNotFound, detail: bool) -> HTTPException:
    """The 404 of a camera that is not running: unknown, or saved but not started (the service
    could not add it at start; why is for admins, others are pointed at the log)."""
    if exc.not_started is None:
        return HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {exc.camera_id!r}")
    why = exc.not_started if detail else "see the service log"
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"camera {exc.camera_id!r} is saved but not running ({why}); DELETE /cameras/{exc.camera_id} removes it",
    )


def _placed(out: CameraOut, owners: Mapping[str, CameraOwner]) -> CameraOut:
    """Cluster mode: the camera with the worker that runs it, that worker's load and, while the
    stream is live there, the worker's picture of it (the case service reads no stream)."""
    owner = owners.get(out.id)
    if owner is None:
        return out
    update: dict[str, object] = {"worker": owner.worker, "worker_load": owner.load}
    if owner.live_fps is not None:
        update.update(analysed_fps=owner.live_fps, health=out.health.model_copy(update={"state": "live"}))
    return out.model_copy(update=update)


@router.get("", response_model=list[CameraOut])
def list_cameras(service: ServiceDep, user: Reader, owners: OwnersDep) -> list[CameraOut]:
    return [_placed(CameraOut.of(v, detail=_detail(user)), owners) for v in service.cameras()]


@router.post(
    "",
    response_model=CameraOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "Camera id taken, or limits.max_cameras reached"}, 422: {"description": "Invalid, a scene over limits.scene, or detectors / imgsz the loaded models cannot run"}},
    dependencies=[ADMINISTER],
)
def add_camera(config: NewCamera, service: ServiceDep) -> CameraOut:
    """Start analysing a network camera now, without a restart; it is saved and survives restarts.
    Video files are not accepted here (only in the config file, under ``media_dir``)."""
    try:
        return CameraOut.of(service.add_camera(config), detail=True)
    except SourceError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except CameraExists as exc:
        if exc.not_started is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"camera {config.id!r} already exists") from None
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"camera {config.id!r} is saved but not running ({exc.not_started}); DELETE /cameras/{config.id} first",
        ) from None
    except CameraLimitReached as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except SceneTooLarge as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"camera {config.id!r}: {exc}") from None
    except CameraModelMismatch as exc:  # detectors: a model the service does not have; imgsz: one its model cannot take
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"camera {config.id!r}: {exc}") from None


@router.get("/{camera_id}", response_model=CameraOut, responses=_NOT_FOUND)
def get_camera(camera_id: CameraId, service: ServiceDep, user: Reader, owners: OwnersDep) -> CameraOut:
    try:
        return _placed(CameraOut.of(service.camera(camera_id), detail=_detail(user)), owners)
    except CameraNotFound as exc:
        raise _not_found(exc, _detail(user)) from None


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=_NOT_FOUND, dependencies=[ADMINISTER])
def remove_camera(camera_id: CameraId, service: ServiceDep) -> Response:
    """Stop the camera and delete it (a saved camera that is not running: its saved row)."""
    try:
        service.remove_camera(camera_id)
    except CameraNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{camera_id}/frame.jpg",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}},
        **_NOT_FOUND,
        503: {"description": "stream=main: every main-stream decode slot stayed busy; try again after Retry-After seconds"},
    },
    dependencies=[READ],
)
def latest_frame(
    camera_id: CameraId,
    service: ServiceDep,
    stream: Literal["analysed", "main"] = Query(
        "analysed",
        description="analysed: the latest analysed frame with detections and zones drawn; main: the newest keyframe of the "
        "camera's evidence stream (its main stream when it has a record_url) at full resolution, undrawn; decoded once per "
        "keyframe, a few cameras' at a time (beyond that: 503 with Retry-After).",
    ),
) -> Response:
    """The camera's latest picture."""
    try:
        jpeg = service.latest_jpeg(camera_id) if stream == "analysed" else service.main_stream_jpeg(camera_id)
    except CameraNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None
    except MainStreamBusy as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), headers={"Retry-After": "1"}) from None
    if jpeg is None:
        what = "analysed frame" if stream == "analysed" else "keyframe in its evidence ring (clips off, or none arrived)"
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} has no {what} yet")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


class SceneSaved(BaseModel):
    camera: CameraOut
    persisted: bool = Field(
        description="Saved across restarts (cameras added through the API). A camera from the config file "
        "keeps the edit until the service restarts: copy the scene into the file to keep it."
    )


@router.put(
    "/{camera_id}/scene",
    response_model=SceneSaved,
    responses={**_NOT_FOUND, 422: {"description": "The scene does not validate (the message names the part)"}},
)
def put_scene(
    camera_id: CameraId, scene: SceneUpdate, service: ServiceDep, user: Annotated[Actor, Depends(require(SUPERVISOR))]
) -> SceneSaved:
    """Replace the parts of the camera's scene the body sends: zones (with their rules), masks,
    counting lines, signals, calibration, filters, riders. Each part sent replaces the camera's
    whole part (a list as a whole; ``calibration: null`` removes it); a part left out is kept.
    The running analysis applies it from the next frame, no restart. Supervisors and admins."""
    try:
        view, persisted = service.update_scene(camera_id, scene)
    except CameraNotFound as exc:
        raise _not_found(exc, _detail(user)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem_text(exc)) from None
    return SceneSaved(camera=CameraOut.of(view, detail=_detail(user)), persisted=persisted)
