from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from gridworker.incidents.workflow import SUPERVISOR
from gridworker.service import CameraExists, CameraNotFound
from gridworker.settings import CAMERA_ID_PATTERN, CameraConfig
from gridworker.vision.config import SceneConfig

from ..deps import ServiceDep
from ..schemas import CameraOut
from ..auth import ADMINISTER, READ, require

router = APIRouter(prefix="/cameras", tags=["cameras"])

CameraId = Annotated[str, Path(pattern=CAMERA_ID_PATTERN, description="Camera id")]
_NOT_FOUND = {404: {"description": "No such camera"}}


@router.get("", response_model=list[CameraOut], dependencies=[READ])
def list_cameras(service: ServiceDep) -> list[CameraOut]:
    return [CameraOut.of(v) for v in service.cameras()]


@router.post("", response_model=CameraOut, status_code=status.HTTP_201_CREATED, responses={409: {"description": "Camera id taken"}}, dependencies=[ADMINISTER])
def add_camera(config: CameraConfig, service: ServiceDep) -> CameraOut:
    """Start analysing a camera now, without a restart; it is saved and survives restarts."""
    try:
        return CameraOut.of(service.add_camera(config))
    except CameraExists:
        raise HTTPException(status.HTTP_409_CONFLICT, f"camera {config.id!r} already exists") from None


@router.get("/{camera_id}", response_model=CameraOut, responses=_NOT_FOUND, dependencies=[READ])
def get_camera(camera_id: CameraId, service: ServiceDep) -> CameraOut:
    try:
        return CameraOut.of(service.camera(camera_id))
    except CameraNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=_NOT_FOUND, dependencies=[ADMINISTER])
def remove_camera(camera_id: CameraId, service: ServiceDep) -> Response:
    try:
        service.remove_camera(camera_id)
    except CameraNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{camera_id}/frame.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **_NOT_FOUND}, dependencies=[READ])
def latest_frame(camera_id: CameraId, service: ServiceDep) -> Response:
    """The latest analysed frame with detections and zones drawn."""
    try:
        jpeg = service.latest_jpeg(camera_id)
    except CameraNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} has no analysed frame yet")
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
    dependencies=[Depends(require(SUPERVISOR))],
)
def put_scene(camera_id: CameraId, scene: SceneConfig, service: ServiceDep) -> SceneSaved:
    """Replace the camera's zones (with their rules), masks, counting lines, signals and
    calibration; the running analysis applies it from the next frame, no restart.
    Supervisors and admins."""
    try:
        view, persisted = service.update_scene(camera_id, scene)
    except CameraNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {camera_id!r}") from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return SceneSaved(camera=CameraOut.of(view), persisted=persisted)
