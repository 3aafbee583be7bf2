"""Zone crops (``detect_region``): which window the model sees, how boxes come back to frame
pixels (with and without tiles), and what a crop does on a real clip with the real model."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import av
import numpy as np
import pytest
import supervision as sv
from pydantic import ValidationError

from gridworker.cameras import detect_region
from gridworker.models import SsdDetector
from gridworker.models.tiling import RegionConfig, TileConfig, detect_tiled, region_window, tile_windows
from gridworker.replay import load_replay_setup
from tests.factories import make_detections

REPO = Path(__file__).resolve().parents[2]
KERB = [(0.1, 0.6), (0.9, 0.6), (0.9, 0.9), (0.1, 0.9)]


@pytest.mark.parametrize(
    ("config", "points", "expected"),
    [
        (RegionConfig(), KERB, None),  # off by default
        (RegionConfig(enabled=True), KERB, (0.02, 0.52, 0.98, 0.98)),  # margin 0.08, max_area 0.7
        (RegionConfig(enabled=True, margin=0.05, max_area=0.5), KERB, (0.05, 0.55, 0.95, 0.95)),
        (RegionConfig(enabled=True, margin=0.2, max_area=0.9), KERB, (0.0, 0.4, 1.0, 1.0)),  # margin clamped to the frame
        (RegionConfig(enabled=True, margin=0.0, max_area=0.25), KERB, (0.1, 0.6, 0.9, 0.9)),  # 0.8 x 0.3 = 0.24: under the limit
        (RegionConfig(enabled=True, margin=0.0, max_area=0.23), KERB, None),  # over the limit: the whole frame
        (RegionConfig(enabled=True), [(0.0, 0.0), (1.0, 1.0)], None),  # a whole-frame zone saves nothing
        (RegionConfig(enabled=True), [], None),  # no zones or lines: the whole frame
        (RegionConfig(enabled=True, rect=(0.0, 0.1, 0.35, 0.72)), KERB, (0.0, 0.1, 0.35, 0.72)),  # a fixed window wins
        (RegionConfig(enabled=True, rect=(0.0, 0.0, 1.0, 1.0), max_area=0.1), [], (0.0, 0.0, 1.0, 1.0)),  # no max_area for rect
    ],
)
def test_region_from_zones_or_rect(config: RegionConfig, points: list[tuple[float, float]], expected: tuple[float, ...] | None) -> None:
    region = config.region(points)
    if expected is None:
        assert region is None
    else:
        assert region is not None and np.allclose(region, expected)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"enabled": True, "rect": (0.0, 0.1, 0.35, 0.72)}, None),
        ({"rect": (0.0, 0.1, 0.35, 0.72)}, "enabled is false"),
        ({"enabled": False, "rect": (0.0, 0.1, 0.35, 0.72)}, "enabled is false"),
        ({"enabled": True, "rect": (0.5, 0.1, 0.4, 0.7)}, "x0 < x1 and y0 < y1"),
        ({"enabled": True, "rect": (0.0, 0.7, 0.4, 0.7)}, "x0 < x1 and y0 < y1"),
        ({"enabled": True, "rect": (0.0, 0.0, 1.2, 1.0)}, "in 0..1"),
        ({"enabled": True, "rect": (0.0, 0.0, 1.0)}, "rect"),
        ({"enabled": True, "margin": 0.6}, "margin"),
        ({"enabled": True, "max_area": 0.0}, "max_area"),
        ({"enabled": True, "max_fraction": 0.5}, "max_fraction"),  # a typo is an error (extra="forbid")
    ],
)
def test_bad_region_settings_are_clear_errors(fields: dict[str, object], message: str | None) -> None:
    with pytest.raises(ValidationError, match=message) if message else nullcontext():
        RegionConfig.model_validate(fields)


@pytest.mark.parametrize(
    ("region", "size", "window"),
    [
        ((0.101, 0.501, 0.899, 0.899), (640, 360), (64, 180, 576, 324)),  # rounded outwards
        ((0.0, 0.0, 1.0, 1.0), (640, 360), (0, 0, 640, 360)),
        ((0.5, 0.5, 0.5001, 0.5001), (640, 360), (320, 180, 321, 181)),  # never empty: at least one pixel
    ],
)
def test_region_window_in_pixels(region: tuple[float, float, float, float], size: tuple[int, int], window: tuple[int, ...]) -> None:
    assert region_window(region, size) == window


class _Bright:
    """Finds the bright pixels: one box around all of them in each image it is given, at the
    pixel grid of that image (a crop's own pixels); records the shape of every image."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        out = []
        for img in images:
            self.shapes.append(img.shape[:2])
            ys, xs = np.nonzero(img[..., 0] > 200)
            boxes = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if len(xs) else []
            out.append(make_detections(boxes, class_name=["car"] * len(boxes)))
        return out


@pytest.mark.parametrize(
    "tiles",
    [None, TileConfig(rows=2, cols=2, full_frame=False), TileConfig(rows=2, cols=3, overlap=0.3, full_frame=True)],
)
def test_crop_boxes_come_back_in_frame_pixels_through_tiles(tiles: TileConfig | None) -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[250:262, 400:430] = 255  # one object inside the region, off every crop's origin
    region = (0.5, 0.5, 1.0, 1.0)
    model = _Bright()
    [found] = detect_tiled(model, [frame], [tiles], [region])
    assert found.xyxy.tolist() == [[400.0, 250.0, 430.0, 262.0]]
    # the model saw the region's window (whole, then its tiles), never the frame
    x0, y0, x1, y1 = region_window(region, (640, 360))
    crop = (y1 - y0, x1 - x0)
    parts = [] if tiles is None else [(b - t, r - le) for le, t, r, b in tile_windows((crop[1], crop[0]), tiles)]
    expected = ([crop] if tiles is None or tiles.full_frame else []) + parts
    assert model.shapes == expected


def test_objects_outside_the_crop_are_not_seen() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[20:40, 20:60] = 255  # top left, outside the bottom-right region
    assert len(detect_tiled(_Bright(), [frame], [None], [None])[0]) == 1
    assert len(detect_tiled(_Bright(), [frame], [None], [(0.5, 0.5, 1.0, 1.0)])[0]) == 0


# -- the real clip and model -------------------------------------------------------------

SILVER_CAR = (0.18, 0.40)  # the far kerb's silver car (bench/truth/street_parking_kerb.yaml): never found on whole frames


def _kerb_frames(media: Path, every: int = 25) -> list[np.ndarray]:
    with av.open(str(media / "street_parking_kerb.mp4")) as container:
        return [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0)) if i % every == 0]


def _frames_with_car_at(found: list[sv.Detections], at: tuple[float, float], size: tuple[int, int]) -> int:
    """How many frames have a car/truck whose ground point (bottom centre, frame pixels) is near ``at``."""
    w, h = size
    hits = 0
    for dets in found:
        cars = np.isin(np.asarray(dets.data.get("class_name", [])), ["car", "truck"])
        gx = (dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2 / w
        gy = dets.xyxy[:, 3] / h
        hits += bool(np.any(cars & (np.abs(gx - at[0]) < 0.06) & (np.abs(gy - at[1]) < 0.08)))
    return hits


@pytest.mark.model
def test_a_square_crop_finds_the_parked_car_the_whole_frame_misses(shared_media: Path, ssd_dir: Path) -> None:
    setup = load_replay_setup(REPO / "tests/field/scenes/street_parking_kerb.yaml", shared_media / "street_parking_kerb.mp4")
    model = SsdDetector.from_directory(ssd_dir, setup.detector)  # the scene's confidence 0.15
    frames = _kerb_frames(shared_media)
    size = (frames[0].shape[1], frames[0].shape[0])
    assert len(frames) == 30

    def seen(region: RegionConfig) -> int:
        camera = setup.camera.model_copy(update={"detect_region": region})
        found = detect_tiled(model, frames, [None] * len(frames), [detect_region(camera)] * len(frames))
        return _frames_with_car_at(found, SILVER_CAR, size)

    # measured 2026-12-03: whole frame 3 of 30 frames, the zones' box 0-3 of 30, the square window 29 of 30
    whole = seen(RegionConfig())
    assert whole <= 8
    # auto: both kerbs' box plus the default margin is 77% of the frame, over max_area: no crop at all
    assert detect_region(setup.camera.model_copy(update={"detect_region": RegionConfig(enabled=True)})) is None
    # with a looser max_area the crop happens but is hardly smaller than the frame: no better
    assert seen(RegionConfig(enabled=True, max_area=0.95)) <= 8
    # a square window over the far kerb's left end: the car is undistorted and ~3x the input pixels
    assert seen(RegionConfig(enabled=True, rect=(0.0, 0.1, 0.35, 0.72))) >= 20


def test_check_says_where_the_crop_is_or_why_there_is_none() -> None:
    from gridworker.cli import detector_load_lines
    from gridworker.settings import Settings

    kerb = {"id": "k", "polygon": [[0.0, 0.7], [0.8, 0.72], [0.8, 0.96], [0.0, 0.96]], "rules": [{"type": "illegal_parking"}]}
    whole = {"id": "w", "polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], "rules": [{"type": "illegal_parking"}]}
    settings = Settings(
        cameras=[
            {"id": "kerb", "url": "rtsp://10.0.0.1/s", "detect_region": {"enabled": True}, "zones": [kerb]},
            {"id": "wide", "url": "rtsp://10.0.0.2/s", "detect_region": {"enabled": True}, "zones": [whole]},
            {"id": "off", "url": "rtsp://10.0.0.3/s", "zones": [kerb]},  # off by default
            {"id": "bare", "url": "rtsp://10.0.0.4/s", "detect_region": {"enabled": True}},
        ]
    )
    text = "\n".join(detector_load_lines(settings))
    assert "kerb: whole frame, cropped to x 0.00-0.88, y 0.62-1.00 (33% of the frame)" in text
    assert "wide: whole frame (no crop: the rule zones' box plus margin is over detect_region.max_area 0.7)" in text
    assert "off: whole frame: 1 run(s)" in text
    assert "bare: whole frame: 1 run(s)" in text
