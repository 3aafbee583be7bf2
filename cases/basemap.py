"""The console map's basemap (``console: {map: ...}`` in the config): where its tiles come
from, their attribution, and the coordinate system they are drawn in.

Positions are stored in WGS84 (cases/places.py). A Chinese basemap (AutoNavi/Gaode, Tencent,
most command-centre tile servers built from them) is drawn in GCJ-02, so positions shown on
it are converted with :func:`~gridworker.cases.places.wgs84_to_gcj02` — for display only
(:meth:`MapConfig.display`). Without ``tiles_url`` the console draws a plain degree grid with
the grid areas' and sites' outlines, and no tile is fetched from anywhere.

The tile server's origin (``scheme://host:port`` of ``tiles_url``) is the one origin the
console's Content-Security-Policy lets images come from besides its own (api/security.py).

Example:
    >>> cfg = MapConfig(tiles_url="https://tiles.example.org/{z}/{x}/{y}.png", crs="gcj02")
    >>> cfg.tile_origin()
    'https://tiles.example.org'
    >>> round(cfg.display(Position(lon=121.4737, lat=31.2304)).lon, 4)
    121.4782
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .places import Position, wgs84_to_gcj02

_PLACEHOLDERS = ("{z}", "{x}", "{y}")
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_\-]{0,62})(\.[a-z0-9_]([a-z0-9_\-]{0,62}))*|\[[0-9a-f:.]+\]")
#: A tile zoom level, as XYZ tile servers number them (0: the whole world in one tile).
Zoom = Annotated[int, Field(ge=0, le=22)]


class MapConfig(BaseModel):
    """``console.map``: the basemap of the console's map view."""

    model_config = ConfigDict(extra="forbid")

    tiles_url: str | None = Field(
        None,
        max_length=500,
        description="XYZ tile URL template with {z}, {x} and {y}, e.g. https://tiles.example.org/{z}/{x}/{y}.png "
        "(your own tile server; no credentials in it). None: a plain grid with area and site outlines.",
    )
    attribution: str = Field("", max_length=300, description="The tiles' attribution (plain text, shown in the map's corner).")
    crs: Literal["wgs84", "gcj02"] = Field(
        "wgs84", description="What the tiles are drawn in: wgs84 (OpenStreetMap and most others) or gcj02 (Chinese basemaps)."
    )
    min_zoom: Zoom = 0
    max_zoom: Zoom = 18

    @field_validator("tiles_url")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or parts.username or parts.password or not _HOST.fullmatch(parts.netloc.rsplit(":", 1)[0].lower()):
            raise ValueError("tiles_url must be an http(s) URL of a tile server, without credentials")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("tiles_url has a bad port") from None
        if not all(p in v for p in _PLACEHOLDERS):
            raise ValueError("tiles_url must contain {z}, {x} and {y}")
        if any(c in v for c in "\"'<> \\"):
            raise ValueError("tiles_url contains characters a URL may not have")
        return v

    @model_validator(mode="after")
    def _zooms(self) -> MapConfig:
        if self.min_zoom > self.max_zoom:
            raise ValueError("min_zoom is above max_zoom")
        return self

    def tile_origin(self) -> str | None:
        """``scheme://host[:port]`` of the tile server; None without tiles."""
        if self.tiles_url is None:
            return None
        parts = urlsplit(self.tiles_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    def display(self, position: Position) -> Position:
        """``position`` (WGS84) in the basemap's coordinates. Without tiles, WGS84."""
        return wgs84_to_gcj02(position) if self.crs == "gcj02" and self.tiles_url is not None else position


class ConsoleConfig(BaseModel):
    """``console:`` in the service config: settings of the command-centre console."""

    model_config = ConfigDict(extra="forbid")

    map: MapConfig = Field(default_factory=MapConfig, description="The map view's basemap (docs/people.md, The map).")
