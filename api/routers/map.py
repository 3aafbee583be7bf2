"""``GET /map``: what the console's map view draws, in one bounded answer — the basemap
(``console.map``), the cameras with a position and their state, the open cases with a
position, the grid areas and the sites' outlines (docs/people.md, "The map").

Positions are stored in WGS84; when the basemap is drawn in GCJ-02 (``crs: gcj02``) every
position in the answer is converted for it (cases/basemap.py), so the console never converts.
A unit handler gets their own cases only (and no cameras: the wall is not theirs either).
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.sql.elements import ColumnElement

from gridworker.cases.basemap import MapConfig
from gridworker.cases.places import Position
from gridworker.cases.workflow import ADMIN, OPERATOR, SUPERVISOR, UNIT_HANDLER, VIEWER, Actor
from gridworker.cases.workorders import RUNNING, TERMINAL, WorkOrderRow, WorkOrders

from ..auth import ANY_ROLE, require
from ..deps import OrdersDep, ServiceDep

router = APIRouter(tags=["map"])
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]
MAX_CASES = 5000
#: a site's outline is its cameras' bounding box grown by this much (degrees, ~100 m)
SITE_MARGIN_DEG = 0.001


class BasemapOut(BaseModel):
    tiles_url: str | None = Field(description="XYZ template; null: draw the plain grid")
    attribution: str
    crs: Literal["wgs84", "gcj02"] = Field(description="The coordinates of every position in this answer")
    min_zoom: int
    max_zoom: int


class CameraPin(BaseModel):
    id: str
    name: str
    site: str
    position: Position
    state: str = Field(description="The stream's state: live, connecting, stalled, backoff, stopped (patrol cameras between visits)")
    patrol_only: bool
    open_incident_types: list[str]


class CasePin(BaseModel):
    incident_id: int
    type: str
    grade: int
    state: str
    unit: str
    site: str
    area: str
    overdue: bool
    detected_at: float = Field(description="Epoch seconds")
    position: Position


class AreaOutline(BaseModel):
    id: str
    name: str
    unit: str
    polygon: list[Position]


class SiteOutline(BaseModel):
    site: str
    cameras: int
    south_west: Position
    north_east: Position


class MapOut(BaseModel):
    basemap: BasemapOut
    cameras: list[CameraPin]
    cases: list[CasePin] = Field(description="Open cases with a position, newest first")
    areas: list[AreaOutline]
    sites: list[SiteOutline] = Field(description="Each site's cameras' bounding box, grown a little")
    truncated: bool = Field(description="More open cases have a position than `limit`; the newest were kept")


def _pin_cases(orders: WorkOrders, user: Actor, basemap: MapConfig, limit: int, now: float) -> tuple[list[CasePin], bool]:
    cond: list[ColumnElement[bool]] = [WorkOrderRow.state.not_in(sorted(TERMINAL)), WorkOrderRow.lon.is_not(None), WorkOrderRow.lat.is_not(None)]
    if user.role == UNIT_HANDLER:
        cond.append(WorkOrderRow.unit == user.unit)
        if user.person is not None:
            cond.append(WorkOrderRow.assignee == user.person)
    q = (
        select(WorkOrderRow)
        .where(*cond)
        .order_by(WorkOrderRow.detected_at.desc(), WorkOrderRow.incident_id.desc())
        .limit(limit + 1)
    )
    with orders.transaction() as s:
        rows = s.scalars(q).all()
        pins = [
            CasePin(
                incident_id=r.incident_id, type=r.type, grade=r.grade, state=r.state, unit=r.unit, site=r.site, area=r.area,
                overdue=bool(r.overdue) or (r.state in RUNNING and now > r.due_at), detected_at=r.detected_at,
                position=basemap.display(Position(lon=r.lon, lat=r.lat)),
            )
            for r in rows[:limit]
            if r.lon is not None and r.lat is not None
        ]
    return pins, len(rows) > limit


def _sites(cameras: list[CameraPin]) -> list[SiteOutline]:
    by_site: dict[str, list[Position]] = {}
    for c in cameras:
        if c.site:
            by_site.setdefault(c.site, []).append(c.position)
    out = []
    for site, points in sorted(by_site.items()):
        lons, lats = [p.lon for p in points], [p.lat for p in points]
        m = SITE_MARGIN_DEG
        out.append(
            SiteOutline(
                site=site, cameras=len(points),
                south_west=Position(lon=max(-180.0, min(lons) - m), lat=max(-90.0, min(lats) - m)),
                north_east=Position(lon=min(180.0, max(lons) + m), lat=min(90.0, max(lats) + m)),
            )
        )
    return out


@router.get("/map", response_model=MapOut)
def map_view(
    user: Reader,
    service: ServiceDep,
    orders: OrdersDep,
    limit: Annotated[int, Query(ge=1, le=MAX_CASES, description="The most cases returned (the newest)")] = 1000,
) -> MapOut:
    """The map's basemap, cameras, open cases, grid areas and site outlines (positions in the basemap's ``crs``)."""
    basemap = service.settings.console.map
    cameras: list[CameraPin] = []
    if user.role in (VIEWER, OPERATOR, SUPERVISOR, ADMIN):
        for view in service.cameras():
            pos = view.config.position
            if pos is None:
                continue
            cameras.append(
                CameraPin(
                    id=view.config.id, name=view.config.name, site=view.config.site, position=basemap.display(pos),
                    state=view.health.state.value, patrol_only=view.patrol_only, open_incident_types=list(view.open_incident_types),
                )
            )
    cases, truncated = _pin_cases(orders, user, basemap, limit, time.time())
    areas = [
        AreaOutline(id=a.id, name=a.name, unit=a.unit, polygon=[basemap.display(p) for p in a.polygon])
        for a in service.settings.areas
    ]
    return MapOut(
        basemap=BasemapOut(
            tiles_url=basemap.tiles_url, attribution=basemap.attribution, crs=basemap.crs if basemap.tiles_url else "wgs84",
            min_zoom=basemap.min_zoom, max_zoom=basemap.max_zoom,
        ),
        cameras=cameras,
        cases=cases,
        areas=areas,
        sites=_sites(cameras),
        truncated=truncated,
    )
