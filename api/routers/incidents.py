from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from gridworker.incidents import IncidentQuery

from ..deps import StoreDep
from ..security import EVIDENCE_CACHE
from ..schemas import IncidentOut, IncidentPage, epoch
from ..auth import READ, IncidentId, incident_evidence_access

EVIDENCE = Depends(incident_evidence_access)

router = APIRouter(prefix="/incidents", tags=["incidents"])



@router.get("", response_model=IncidentPage, dependencies=[READ])
def list_incidents(
    store: StoreDep,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[str | None, Query(max_length=64, description="Rule type, e.g. dwell")] = None,
    status_: Annotated[Literal["open", "closed"] | None, Query(alias="status")] = None,
    since: Annotated[datetime | None, Query(description="Opened at or after (ISO 8601; no zone: UTC)")] = None,
    until: Annotated[datetime | None, Query(description="Opened at or before (ISO 8601; no zone: UTC)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> IncidentPage:
    """Newest first; filter by camera, type, status and opening time."""
    since_ts = _timestamp(since, "since")
    until_ts = _timestamp(until, "until")
    if since_ts is not None and until_ts is not None and since_ts > until_ts:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "'since' is after 'until'")
    query = IncidentQuery(camera_id=camera_id, type=type, status=status_, since=since_ts, until=until_ts, limit=limit, offset=offset)
    items, total = store.list(query)
    return IncidentPage(items=[IncidentOut.of(i) for i in items], total=total, limit=limit, offset=offset)


def _timestamp(value: datetime | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return epoch(value)
    except (OverflowError, OSError, ValueError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"'{name}' is out of range") from None


@router.get("/{incident_id}", response_model=IncidentOut, responses={404: {"description": "No such incident"}}, dependencies=[EVIDENCE])
def get_incident(incident_id: IncidentId, store: StoreDep) -> IncidentOut:
    inc = store.get(incident_id)
    if inc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}")
    return IncidentOut.of(inc)


@router.get(
    "/{incident_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such incident or snapshot"}}, dependencies=[EVIDENCE])
def get_snapshot(incident_id: IncidentId, store: StoreDep) -> Response:
    """The annotated evidence picture taken when the incident opened."""
    jpeg = store.snapshot(incident_id)
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no snapshot for incident {incident_id}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": EVIDENCE_CACHE})


@router.get(
    "/{incident_id}/clip.mp4",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}, 404: {"description": "No such incident, or no clip (yet)"}}, dependencies=[EVIDENCE])
def get_clip(incident_id: IncidentId, store: StoreDep) -> FileResponse:
    """The evidence clip: a few seconds before to a few seconds after the opening, as recorded
    (no re-encoding). It is saved ``clip_post_s`` after the opening; until then this is a 404.
    Range requests are served, so browsers can seek."""
    clip = store.clip(incident_id)
    if clip is None:
        inc = store.get(incident_id)
        if inc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}")
        if inc.clip_missing:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"incident {incident_id} has no clip: {inc.clip_missing}")
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no clip for incident {incident_id} (not saved yet, clips are off for its camera, "
            "or the camera had no video buffered)",
        )
    if not os.path.isfile(clip.path):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the clip file of incident {incident_id} is missing")
    return FileResponse(
        clip.path,
        media_type="video/mp4",
        filename=f"incident-{incident_id}.mp4",
        content_disposition_type="inline",
        headers={"Cache-Control": EVIDENCE_CACHE},
    )


class TrailPointOut(BaseModel):
    """The triggering objects in one analysed frame, ``t`` seconds into the clip."""

    t: float
    boxes: list[tuple[int, float, float, float, float]] = Field(description="(track id, x1, y1, x2, y2), 0-1 of the frame")


class ClipTracksOut(BaseModel):
    """Where the objects that triggered the incident were over its clip (drawn over the
    video by the console; the clip itself is never re-encoded)."""

    incident_id: int
    track_ids: list[int]
    frames: list[TrailPointOut]


@router.get(
    "/{incident_id}/clip/tracks",
    response_model=ClipTracksOut,
    responses={404: {"description": "No such incident, or its clip has no tracks"}}, dependencies=[EVIDENCE])
def get_clip_tracks(incident_id: IncidentId, store: StoreDep) -> ClipTracksOut:
    """The triggering objects' boxes over the evidence clip (``details.track_ids``)."""
    tracks = store.clip_tracks(incident_id)
    inc = store.get(incident_id) if tracks is not None else None
    if tracks is None or inc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no clip tracks for incident {incident_id}")
    ids = inc.details.get("track_ids") if isinstance(inc.details, dict) else None
    return ClipTracksOut(
        incident_id=incident_id,
        track_ids=[i for i in ids if isinstance(i, int)] if isinstance(ids, list) else [],
        frames=[TrailPointOut.model_validate(p) for p in tracks],
    )
