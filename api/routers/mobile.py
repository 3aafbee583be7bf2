"""The phone page's server side (issue 15, docs/people.md "The phone page"): the photos of a
case and the page's static files at ``/m/`` (``api/mobile/``, no build step, no CDN).

* ``POST /workorders/{id}/photos``: a handler's photos of the result (multipart, files
  ``photo``; each normalised by cases/photos.py: JPEG/PNG only, scaled down, EXIF location
  kept and the rest stripped). The same picture sent again (a retried upload) is stored once.
* ``GET /workorders/{id}/photos``: the case's photos (the resident's and the handler's).
* ``GET /photos/{photo_id}.jpg``: one photo, for whoever may see its case.

Who may see a case is the work orders' rule (``Workflow.visible``): a unit handler sees the
cases of their unit only, and gets 404 for the others.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response, status
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gridworker.cases.photos import HANDLING, CasePhoto, PhotoError, PhotoStorageFull, PhotoStore
from gridworker.cases.workflow import Actor, NotFound, Workflow
from gridworker.incidents.reports import ReportIntake

from ..auth import ANY_ROLE, require
from ..deps import PhotosDep, ReportsDep, WorkflowDep
from ..schemas import utc
from ..bodies import multipart_body, read_uploads
from .workorders import Handler, IncidentId

MOBILE_DIR = FilePath(__file__).resolve().parent.parent / "mobile"

router = APIRouter(tags=["phone"])
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]
PhotoId = Annotated[int, Path(ge=1, le=2**62, description="The photo's id")]


class PhotoOut(BaseModel):
    id: int
    kind: str = Field(description="report (sent with the report) or handling (taken by the handler)")
    url: str
    width: int
    height: int
    lon: float | None = Field(description="From the photo's EXIF GPS, WGS84")
    lat: float | None
    created_at: datetime

    @classmethod
    def of(cls, p: CasePhoto) -> PhotoOut:
        return cls(
            id=p.id, kind=p.kind, url=f"/photos/{p.id}.jpg", width=p.width, height=p.height, lon=p.lon, lat=p.lat,
            created_at=utc(p.created_at),
        )


def _visible(workflow: Workflow, incident_id: int, user: Actor) -> None:
    try:
        workflow.visible(incident_id, user)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no work order {incident_id}") from None


def _store(intake: ReportIntake, photos: PhotoStore, incident_id: int, uploads: list[bytes], actor: str) -> list[PhotoOut]:
    pc = intake.config.photos
    out = []
    for data in uploads:
        try:
            photo = photos.normalise(data, max_side=pc.max_side, max_input_pixels=int(pc.max_input_megapixels * 1e6))
            out.append(PhotoOut.of(photos.add(incident_id, HANDLING, photo, actor=actor)))
        except (PhotoError, PhotoStorageFull) as exc:
            raise HTTPException(exc.status, exc.reason) from None
    return out


@router.post(
    "/workorders/{incident_id}/photos",
    response_model=list[PhotoOut],
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "No such work order (or not the caller's)"}, 409: {"description": "The case holds its most photos"},
               413: {"description": "A photo is too large"}, 415: {"description": "Not a JPEG or PNG"}, 507: {"description": "Photo storage is full"}},
    openapi_extra=multipart_body({}, files="photo", max_files=4),
)
async def add_photos(
    incident_id: IncidentId, request: Request, user: Handler, workflow: WorkflowDep, photos: PhotosDep, intake: ReportsDep
) -> list[PhotoOut]:
    """The handler's photos of the result (multipart, one or more files ``photo``)."""
    await run_in_threadpool(_visible, workflow, incident_id, user)
    pc = intake.config.photos
    _, uploads = await read_uploads(request, "photo", max_files=4, max_bytes=int(pc.max_upload_mb * 1_000_000), fields=4)
    if not uploads:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "send one or more files named 'photo'")
    return await run_in_threadpool(_store, intake, photos, incident_id, uploads, user.name)


@router.get("/workorders/{incident_id}/photos", response_model=list[PhotoOut], responses={404: {"description": "No such work order"}})
def list_photos(incident_id: IncidentId, user: Reader, workflow: WorkflowDep, photos: PhotosDep) -> list[PhotoOut]:
    """The case's photos, oldest first: the report's, then the handler's."""
    _visible(workflow, incident_id, user)
    return [PhotoOut.of(p) for p in photos.list(incident_id)]


@router.get("/photos/{photo_id}.jpg", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such photo"}})
def get_photo(photo_id: PhotoId, user: Reader, workflow: WorkflowDep, photos: PhotosDep) -> Response:
    """One photo of a case the caller may see."""
    found = photos.get(photo_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no photo {photo_id}")
    try:
        workflow.visible(found.incident_id, user)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no photo {photo_id}") from None
    jpeg = photos.read(found)
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"photo {photo_id} was deleted by retention")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


def mount_mobile(app: FastAPI) -> None:
    """Serve the phone page at ``/m/``."""
    app.mount("/m", StaticFiles(directory=MOBILE_DIR, html=True), name="mobile")
