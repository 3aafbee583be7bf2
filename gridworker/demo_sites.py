"""The demo's key-site cameras: patrol-only cameras made from the pictures the demo already has.

Each camera is one still picture (a crop and/or mirror of ``bus.jpg``, ``zidane.jpg`` or a
frame of ``opencv-doc``'s campus video) encoded as a short looped H.264 clip with a keyframe
every second, served as its own mount point on the demo's RTSP server. The patrol plan
``key-sites`` visits them all in rotation (one keyframe per visit). Some cameras carry rules a
glance can judge (a crowd, a person in a staff-only zone); some have a no-parking zone with an
``illegal_parking`` rule, which on patrol-only cameras is the *revisit* check: the vehicle seen
at the same spot on two visits at least ``REVISIT_S`` apart opens a case at the second cycle.

Nothing here downloads anything: without the ultralytics wheel or opencv-doc the cameras are
synthetic pictures (the patrol still runs, it just finds nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .assets import opencv_doc_video, ultralytics_asset

log = logging.getLogger(__name__)

#: Seconds between two captures of the same vehicle that make a revisit parking case.
REVISIT_S = 20.0
#: A patrol cycle starts at most this often (so the second cycle comes ~30 s after the first).
CYCLE_S = 30.0
PLAN_ID = "key-sites"
TAG = "key-site"
#: A camera of the plan whose mount point does not exist: the patrol lists it offline and retries it.
UNPLUGGED = "depot-yard"

Box = tuple[float, float, float, float]  # normalised x0, y0, x1, y1 of the source picture
Polygon = list[list[float]]


@dataclass(frozen=True, slots=True)
class View:
    """How a camera sees its source picture: a crop (normalised) and an optional mirror."""

    crop: Box = (0.0, 0.0, 1.0, 1.0)
    mirror: bool = False

    def image(self, source: np.ndarray) -> np.ndarray:
        h, w = source.shape[:2]
        x0, y0, x1, y1 = self.crop
        out = source[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
        return np.ascontiguousarray(out[:, ::-1] if self.mirror else out)

    def polygon(self, box: Box) -> Polygon:
        """A rectangle of the source picture in this view's coordinates (clipped to the frame)."""
        x0, y0, x1, y1 = self.crop
        cw, ch = x1 - x0, y1 - y0

        def fx(x: float) -> float:
            v = min(1.0, max(0.0, (x - x0) / cw))
            return round(1.0 - v if self.mirror else v, 4)

        def fy(y: float) -> float:
            return round(min(1.0, max(0.0, (y - y0) / ch)), 4)

        left, right = sorted((fx(box[0]), fx(box[2])))
        top, bottom = fy(box[1]), fy(box[3])
        return [[left, top], [right, top], [right, bottom], [left, bottom]]


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """A rectangular zone of the source picture and its rules."""

    id: str
    name: str
    box: Box
    rules: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Site:
    """One key-site camera of the demo."""

    id: str
    name: str
    site: str
    site_type: str
    priority: int
    source: str  # key into the pictures
    view: View = field(default_factory=View)
    zones: tuple[ZoneSpec, ...] = ()

    def camera(self, url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "site": self.site,
            "url": url,
            "watch": "patrol",
            "patrol": {"site_type": self.site_type, "tags": [TAG], "priority": self.priority},
            "zones": [
                {"id": z.id, "name": z.name, "polygon": self.view.polygon(z.box), "rules": [dict(r) for r in z.rules]}
                for z in self.zones
            ],
        }


def _no_parking(box: Box) -> ZoneSpec:
    rule = {"type": "illegal_parking", "classes": ["car", "bus", "truck"], "min_duration_s": REVISIT_S}
    return ZoneSpec("no-parking", "No parking", box, (rule,))


def _crowd(box: Box, n: int) -> ZoneSpec:
    return ZoneSpec("square", "Square", box, ({"type": "crowd", "min_count": n},))


def _staff_only(box: Box) -> ZoneSpec:
    return ZoneSpec("staff-only", "Staff only", box, ({"type": "intrusion", "classes": ["person"]},))


# bus.jpg: the bus stands across y 0.2-0.68 (ground point y 0.68), people in front of it
BUS_LANE: Box = (0.0, 0.55, 1.0, 0.8)
# campus video: two cars parked at the top right (ground points near y 0.17), pedestrians on the road
CAMPUS_KERB: Box = (0.78, 0.08, 1.0, 0.26)
CAMPUS_ROAD: Box = (0.0, 0.25, 1.0, 1.0)
CAMPUS_FRAMES = (0, 80, 160, 240, 320, 400, 480, 560, 640, 720)  # frame numbers of vtest.avi (10 fps)


def _sites(have: set[str]) -> list[Site]:
    """The key-site cameras for the pictures at hand (``have``: names of available sources)."""
    sites: list[Site] = []
    if "bus" in have:
        sites += [
            Site("hub-east-lane", "Transit hub, east bus lane", "transport hub", "transport_hub", 9, "bus", View(), (_no_parking(BUS_LANE),)),
            Site("hub-west-lane", "Transit hub, west bus lane", "transport hub", "transport_hub", 9, "bus", View(mirror=True), (_no_parking(BUS_LANE),)),
            Site("hub-platform", "Transit hub, platform 2", "transport hub", "transport_hub", 7, "bus", View((0.0, 0.15, 1.0, 0.85))),
            Site("hub-crossing", "Transit hub, crossing", "transport hub", "street", 6, "bus", View((0.0, 0.3, 0.7, 0.9), mirror=True)),
            Site("hub-stop-b", "Transit hub, stop B", "transport hub", "street", 5, "bus", View((0.2, 0.2, 1.0, 0.95))),
        ]
    if "zidane" in have:
        sites += [
            Site("mall-atrium", "City mall, atrium", "city mall", "commercial", 6, "zidane", View(), (_staff_only((0.45, 0.0, 1.0, 1.0)),)),
            Site("mall-entrance", "City mall, north entrance", "city mall", "commercial", 5, "zidane", View(mirror=True)),
            Site("market-hall", "Riverside market hall", "riverside market", "market", 4, "zidane", View((0.1, 0.0, 0.9, 1.0))),
        ]
    if "campus" in have:
        kinds = [("school", "No.3 Primary School"), ("park", "Riverside park"), ("street", "Zhongshan Road"), ("hospital", "People's Hospital")]
        for i, frame in enumerate(CAMPUS_FRAMES):
            site_type, place = kinds[i % len(kinds)]
            zones: tuple[ZoneSpec, ...] = (_crowd(CAMPUS_ROAD, 7),)
            if i in (0, 5):
                zones = (*zones, _no_parking(CAMPUS_KERB))
            sites.append(
                Site(f"{site_type}-{i + 1:02d}", f"{place}, camera {i + 1}", place.lower(), site_type, 8 - i % 5, f"campus@{frame}", View(), zones)
            )
        for i, frame in enumerate(CAMPUS_FRAMES[1::2]):
            sites.append(
                Site(f"lane-{i + 1:02d}", f"Back lane {i + 1}", "back lanes", "residential", 3, f"campus@{frame}", View((0.0, 0.2, 1.0, 1.0), mirror=True))
            )
    if not sites:  # no sample pictures at all: synthetic ones keep the patrol visibly running
        sites = [Site(f"site-{i + 1:02d}", f"Key site {i + 1}", "key sites", "other", 5, f"synthetic@{i}") for i in range(20)]
    return sites


def _campus_frame(number: int) -> np.ndarray | None:
    video = opencv_doc_video()
    if video is None:
        return None
    cap = cv2.VideoCapture(str(video))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, number)
        ok, frame = cap.read()
    finally:
        cap.release()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None


def _photo(name: str) -> np.ndarray | None:
    path = ultralytics_asset(name)
    image = cv2.imread(str(path)) if path is not None else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _synthetic(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:360, 0:640]
    img = np.stack([(xx * 80 // 640 + 30 + 7 * i) % 256, (yy * 80 // 360 + 40) % 256, np.full_like(xx, 50 + 9 * i)], axis=-1).astype(np.uint8)
    x = 40 + (i * 53) % 520
    img[140:220, x : x + 80] = (230, 60, 40)
    return img


def _source(key: str, cache: dict[str, np.ndarray | None]) -> np.ndarray | None:
    if key not in cache:
        kind, _, arg = key.partition("@")
        loaders: dict[str, Callable[[], np.ndarray | None]] = {
            "bus": lambda: _photo("bus.jpg"),
            "zidane": lambda: _photo("zidane.jpg"),
            "campus": lambda: _campus_frame(int(arg or 0)),
            "synthetic": lambda: _synthetic(int(arg or 0)),
        }
        cache[key] = loaders[kind]()
    return cache[key]


def available_sources() -> set[str]:
    """Which picture sources this machine has (no downloads)."""
    have = set()
    if ultralytics_asset("bus.jpg") is not None:
        have.add("bus")
    if ultralytics_asset("zidane.jpg") is not None:
        have.add("zidane")
    if opencv_doc_video() is not None:
        have.add("campus")
    return have


def build_site_clips(workdir: Path) -> list[tuple[Site, Path]]:
    """Encode one short looped clip per key-site camera in ``workdir/sites`` (reused when there).

    2 s at 5 fps with a keyframe every second: a patrol glance waits at most a second for
    its keyframe, and 24 clips encode in a few seconds on 2 cores.
    """
    from gridworker.streams.clips import encode_still

    out_dir = workdir / "sites"
    out_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[str, np.ndarray | None] = {}
    clips: list[tuple[Site, Path]] = []
    for site in _sites(available_sources()):
        path = out_dir / f"{site.id}.mp4"
        if not path.exists():
            source = _source(site.source, cache)
            if source is None:
                log.warning("key-site camera %s: its picture %s is not available; skipped", site.id, site.source)
                continue
            encode_still(site.view.image(source), path, seconds=2, fps=5, gop=5, seed=len(clips))
        clips.append((site, path))
    return clips


def site_cameras(urls: Sequence[tuple[Site, str]], unplugged_url: str | None) -> list[dict[str, Any]]:
    """The key-site cameras' config entries (``unplugged_url``: a mount that does not exist)."""
    cameras = [site.camera(url) for site, url in urls]
    if unplugged_url is not None:
        cameras.append(
            Site(UNPLUGGED, "Bus depot yard (unplugged)", "bus depot", "transport_hub", 2, "none").camera(unplugged_url)
        )
    return cameras


def patrol_plan() -> dict[str, Any]:
    """One-click patrol over every key-site camera, forever, a cycle every ``CYCLE_S`` at most."""
    return {
        "id": PLAN_ID,
        "name": "重点场所轮巡 Key sites",
        "select": {"tags": [TAG]},
        "mode": "glance",
        "keyframes": 1,
        "concurrency": 3,
        "stagger_s": 0.3,
        "cycles": 0,
        "min_cycle_s": CYCLE_S,
        "open_timeout_s": 4.0,
        "keyframe_timeout_s": 4.0,
    }
