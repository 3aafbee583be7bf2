"""Places: positions (WGS84 longitude/latitude), the grid's areas (网格) and which area a
position lies in; the WGS84 → GCJ-02 shift Chinese basemaps need.

Every position gridworker stores is **WGS84** (what a GPS receiver, a phone's geolocation
API and OpenStreetMap tiles use). Cameras carry one in their config (``position: {lon, lat}``),
IoT devices in theirs (``longitude``/``latitude``), a resident's report in its payload; a work
order takes the position of its source and the area that contains it (``AreaMap.area_of``).

Example:
    >>> grid = AreaMap([Area(id="g1", name="Grid 1", polygon=[(121.0, 31.0), (121.1, 31.0), (121.1, 31.1)])])
    >>> grid.area_of(Position(lon=121.08, lat=31.01)).id
    'g1'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridworker.validation import first_repeat

__all__ = [
    "AREA_ID_PATTERN",
    "Area",
    "AreaList",
    "AreaMap",
    "Position",
    "gcj02_to_wgs84",
    "in_china",
    "reported_position",
    "wgs84_to_gcj02",
]

AREA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
MAX_AREAS = 5000
MAX_VERTICES = 2000


class Position(BaseModel):
    """A WGS84 point: ``lon`` in [-180, 180], ``lat`` in [-90, 90] degrees, finite.

    Example:
        >>> Position(lon=121.4737, lat=31.2304).lat
        31.2304
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lon: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False, description="WGS84 longitude, degrees east.")
    lat: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False, description="WGS84 latitude, degrees north.")

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        # a [lon, lat] pair (GeoJSON's order) is accepted as well as {lon, lat}
        if isinstance(data, (list, tuple)):
            if len(data) != 2:
                raise ValueError("a position is [lon, lat]")
            return {"lon": data[0], "lat": data[1]}
        return data


class Area(BaseModel):
    """One area of the grid (a 网格): an id, a name and its outline.

    ``polygon`` is the outline's vertices in order (3 to 2000 WGS84 positions, not closed: the
    last vertex joins the first). Areas are looked up in the order they are listed, so where
    two overlap the first one wins.

    Example:
        >>> Area(id="g1", name="Grid 1", polygon=[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1]]).polygon[1].lon
        121.1
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=AREA_ID_PATTERN, description="Unique area id (letters, digits, _ . -); a person's ``area``.")
    name: str = Field("", max_length=200, description="Human-readable name.")
    unit: str = Field("", max_length=64, description="The unit that answers for the area (informative).")
    polygon: list[Position] = Field(min_length=3, max_length=MAX_VERTICES, description="Outline: WGS84 vertices in order.")

    @field_validator("polygon")
    @classmethod
    def _not_flat(cls, v: list[Position]) -> list[Position]:
        xs = np.array([p.lon for p in v])
        ys = np.array([p.lat for p in v])
        twice_area = float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))
        if abs(twice_area) < 1e-14:
            raise ValueError("the polygon has no area (its vertices are in one line or repeat)")
        return v


def _unique_ids(areas: list[Area]) -> list[Area]:
    if (repeat := first_repeat(a.id for a in areas)) is not None:
        raise ValueError(f"area id {repeat!r} is used twice")
    return areas


#: The ``areas:`` config section: the grid's areas, ids unique, at most 5000.
AreaList = Annotated[list[Area], Field(max_length=MAX_AREAS), AfterValidator(_unique_ids)]


class AreaMap:
    """Which area a position lies in. Immutable after construction, so safe to share.

    Each area's bounding box is kept in one array, so a lookup tests every box at once and
    runs the even-odd (ray-casting) test, vectorised over the edges, only on the areas whose
    box holds the point. A point exactly on an edge may fall on either side.

    Args:
        areas: the grid's areas, in priority order (the first containing area wins).

    Example:
        >>> AreaMap([]).area_of(Position(lon=0, lat=0)) is None
        True
    """

    def __init__(self, areas: Sequence[Area]) -> None:
        self.areas: tuple[Area, ...] = tuple(_unique_ids(list(areas)))
        self._rings = [np.array([[p.lon, p.lat] for p in a.polygon], dtype=np.float64) for a in self.areas]
        self._boxes = (
            np.array([[r[:, 0].min(), r[:, 1].min(), r[:, 0].max(), r[:, 1].max()] for r in self._rings], dtype=np.float64)
            if self._rings
            else np.zeros((0, 4), dtype=np.float64)
        )
        self._by_id = {a.id: a for a in self.areas}

    def get(self, area_id: str) -> Area | None:
        return self._by_id.get(area_id)

    def area_of(self, position: Position | None) -> Area | None:
        """The first area whose outline contains ``position``; None outside every area (or no position)."""
        if position is None or not self.areas:
            return None
        x, y = position.lon, position.lat
        b = self._boxes
        candidates = np.flatnonzero((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3]))
        for i in candidates:
            if _contains(self._rings[int(i)], x, y):
                return self.areas[int(i)]
        return None


def _contains(ring: np.ndarray, x: float, y: float) -> bool:
    """Even-odd rule: a ray from (x, y) towards +x crosses the outline an odd number of times.
    ``ring``: (n, 2) float64 vertices (lon, lat), not closed."""
    x1, y1 = ring[:, 0], ring[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return bool(np.count_nonzero(straddles & (x < cross_x)) % 2)


class _HasDetails(Protocol):
    @property
    def details(self) -> dict[str, Any]: ...


def reported_position(incident: _HasDetails) -> Position | None:
    """The position an incident brought with it: ``details["position"] = {"lon": .., "lat": ..}``
    (a resident's report, a 12345 ticket); None when absent or not a valid WGS84 position."""
    raw = incident.details.get("position")
    if raw is None:
        return None
    try:
        return Position.model_validate(raw)
    except ValidationError:
        return None


# -- GCJ-02 ---------------------------------------------------------------------------------
# Krasovsky 1940 ellipsoid, which the GCJ-02 offset is defined on
_A = 6378245.0
_EE = 0.00669342162296594323


def in_china(lon: float, lat: float) -> bool:
    """Whether the point is in the rough box where GCJ-02 shifts positions (mainland China's
    bounding box; outside it GCJ-02 equals WGS84)."""
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def _shift(lon: float, lat: float) -> tuple[float, float]:
    """GCJ-02's offset at a point, in degrees (dlon, dlat)."""
    x, y = lon - 105.0, lat - 35.0
    ripple = 20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    d_lat += ripple * 2.0 / 3.0
    d_lat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    d_lat += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    d_lon += ripple * 2.0 / 3.0
    d_lon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    d_lon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return d_lon, d_lat


def wgs84_to_gcj02(position: Position) -> Position:
    """A WGS84 position as GCJ-02 (火星坐标), the coordinates of Chinese basemaps.

    When to use it: the maps published in mainland China (AutoNavi/Gaode, Tencent, and
    Baidu's before its own further BD-09 shift) draw their tiles in GCJ-02, a legally
    required, deliberately non-linear offset of WGS84 by roughly 100-700 m. A marker placed at
    a raw GPS position on such a basemap lands beside the street it is on. So a console that
    shows a Chinese basemap converts every position with this function *for display only*;
    gridworker keeps storing, comparing and exporting WGS84. Basemaps in WGS84 (OpenStreetMap,
    a command centre's own tile server cut from surveyed WGS84/CGCS2000 data, the plain grid)
    need no conversion. Outside China GCJ-02 equals WGS84 and the position comes back as is.

    The shift is the published closed-form approximation; it is accurate to about a metre,
    which is far finer than a marker on a map.

    Example:
        >>> p = wgs84_to_gcj02(Position(lon=121.4737, lat=31.2304))
        >>> round(p.lon - 121.4737, 4), round(p.lat - 31.2304, 4)
        (0.0045, -0.0019)
    """
    if not in_china(position.lon, position.lat):
        return position
    d_lon, d_lat = _shift(position.lon, position.lat)
    return Position(lon=position.lon + d_lon, lat=position.lat + d_lat)


def gcj02_to_wgs84(position: Position, iterations: int = 4) -> Position:
    """The inverse of :func:`wgs84_to_gcj02` (a point picked on a Chinese basemap back to
    WGS84), by fixed-point iteration; each step shrinks the error about a hundredfold, so four
    steps are well under a millimetre."""
    if not in_china(position.lon, position.lat):
        return position
    lon, lat = position.lon, position.lat
    for _ in range(iterations):
        d_lon, d_lat = _shift(lon, lat)
        lon, lat = position.lon - d_lon, position.lat - d_lat
    return Position(lon=lon, lat=lat)
