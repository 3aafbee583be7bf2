"""Tiled detection: windows cover the frame, boxes come back in frame pixels, duplicates
from overlaps merge, and no tiling means the detector's own answer."""

import numpy as np
import pytest
import supervision as sv

from gridworker.models.tiling import TileConfig, detect_tiled, tile_windows
from tests.factories import make_detections


class _Squares:
    """Finds white squares: its "model" only sees squares at least 10 px wide at a 100 px input
    (like a small-input detector that misses small objects)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def detect(self, images):
        self.calls.append(len(images))
        out = []
        for img in images:
            h, w = img.shape[:2]
            scale = 100 / max(h, w)
            mask = img[..., 0] > 200
            boxes = []
            if mask.any():
                import cv2

                n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
                for i in range(1, n):
                    x, y, bw, bh, _area = stats[i]
                    if bw * scale >= 10:
                        boxes.append([x, y, x + bw, y + bh])
            out.append(make_detections(boxes, class_name=["car"] * len(boxes)))
        return out


@pytest.mark.parametrize(("rows", "cols"), [(1, 2), (2, 2), (2, 3), (3, 4)])
def test_windows_cover_the_frame_with_overlap(rows, cols):
    w, h = 640, 360
    cfg = TileConfig(rows=rows, cols=cols, overlap=0.2)
    windows = tile_windows((w, h), cfg)
    assert len(windows) == rows * cols
    covered = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    if cols > 1:
        assert windows[0][2] > windows[1][0]  # neighbours overlap


def test_small_object_found_only_through_tiles_in_frame_pixels():
    img = np.zeros((400, 800, 3), dtype=np.uint8)
    img[100:130, 500:540] = 255  # 40 px wide: 5 px at the 100 px "model input", found in a 400 px tile
    det = _Squares()
    assert len(detect_tiled(det, [img], [None])[0]) == 0
    found = detect_tiled(det, [img], [TileConfig(rows=1, cols=2, overlap=0.1)])[0]
    assert len(found) == 0  # a 440 px tile still shrinks it to 9 px
    found = detect_tiled(det, [img], [TileConfig(rows=4, cols=4, overlap=0.1)])[0]
    assert len(found) == 1
    assert found.xyxy[0].tolist() == [500, 100, 540, 130]


def test_overlap_duplicates_and_a_cut_box_merge_into_one():
    img = np.zeros((200, 200, 3), dtype=np.uint8)
    img[80:120, 85:115] = 255  # straddles the tile border at x = 100
    det = _Squares()
    found = detect_tiled(det, [img], [TileConfig(rows=1, cols=2, overlap=0.3, full_frame=False)])[0]
    # each tile sees the square (whole in one, cut in the other); one box survives
    assert len(found) == 1


def test_confused_vehicle_classes_merge_other_classes_do_not():
    d = sv.Detections(
        xyxy=np.array([[10, 10, 50, 40], [11, 10, 50, 41], [10, 5, 30, 45]], dtype=np.float32),
        confidence=np.array([0.5, 0.6, 0.7], dtype=np.float32),
        class_id=np.array([2, 7, 0]),
        data={"class_name": np.array(["car", "truck", "person"])},
    )

    class _Fixed:
        def detect(self, images):
            return [d for _ in images]

    found = detect_tiled(_Fixed(), [np.zeros((60, 60, 3), np.uint8)], [TileConfig(rows=1, cols=1, full_frame=False)])[0]
    assert sorted(found.data["class_name"].tolist()) == ["person", "truck"]


def test_batch_goes_to_the_detector_in_one_call_and_untiled_images_pass_through():
    imgs = [np.zeros((100, 100, 3), np.uint8) for _ in range(3)]
    det = _Squares()
    out = detect_tiled(det, imgs, [None, TileConfig(rows=2, cols=2), None])
    assert len(out) == 3 and det.calls == [2 + 5]


def test_box_cut_by_a_tile_edge_gives_way_to_the_whole_object():
    img = np.zeros((200, 200, 3), dtype=np.uint8)
    img[80:120, 60:140] = 255  # 80 px wide across the tile border: each tile sees a piece
    det = _Squares()
    found = detect_tiled(det, [img], [TileConfig(rows=1, cols=2, overlap=0.1)])[0]
    assert found.xyxy.tolist() == [[60, 80, 140, 120]]


def _frame_with_squares(squares, size=(1000, 500)):
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    for x, y, s in squares:
        img[y : y + s, x : x + s] = 255
    return img


def test_a_region_gives_the_model_more_pixels_and_boxes_come_back_in_frame_pixels():
    from gridworker.models.tiling import detect_tiled

    img = _frame_with_squares([(800, 400, 60), (50, 50, 60)])  # a 60 px square in the region, one outside
    model = _Squares()
    [whole] = detect_tiled(model, [img], [None])
    assert len(whole) == 0, "60 px in a 1000 px frame is too small for the model"
    [cut] = detect_tiled(model, [img], [None], [(0.5, 0.5, 1.0, 1.0)])
    assert cut.xyxy.tolist() == [[800.0, 400.0, 860.0, 460.0]], "found in the region, in frame pixels"
    # regions and tiles compose: the region's tiles, shifted back by both offsets
    [both] = detect_tiled(model, [img], [TileConfig(rows=1, cols=2, overlap=0.1, full_frame=False)], [(0.5, 0.5, 1.0, 1.0)])
    assert both.xyxy.tolist() == [[800.0, 400.0, 860.0, 460.0]]
    # an image without a region in the same call is untouched
    out = detect_tiled(model, [img, img], [None, None], [None, (0.5, 0.5, 1.0, 1.0)])
    assert len(out[0]) == 0 and len(out[1]) == 1


def test_region_config_from_zone_vertices():
    from gridworker.models.tiling import RegionConfig, region_window

    cfg = RegionConfig(enabled=True, margin=0.05, max_area=0.5)
    kerb = [(0.1, 0.6), (0.9, 0.6), (0.9, 0.9), (0.1, 0.9)]
    region = cfg.region(kerb)
    assert region is not None and np.allclose(region, (0.05, 0.55, 0.95, 0.95))
    assert region_window(region, (640, 360)) == (32, 197, 608, 342)  # rounded outwards
    assert cfg.region([(0, 0), (1, 0), (1, 1), (0, 1)]) is None, "a whole-frame zone: nothing to crop"
    assert RegionConfig().region(kerb) is None, "off by default"
    assert cfg.region([]) is None
