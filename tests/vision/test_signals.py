"""Signal states: the lamp-colour classifier on drawn signal heads and on noise, the image
reader's hold through unreadable frames, and the board that API pushes go through."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gridworker.vision.config import SignalConfig
from gridworker.vision.signals import SignalBoard, SignalReader, classify_lamp

LIT = {"red": (255, 40, 30), "yellow": (255, 180, 20), "green": (30, 255, 140)}
UNLIT = {"red": (70, 14, 12), "yellow": (70, 55, 10), "green": (10, 65, 40)}
ORDER = ("red", "yellow", "green")


def signal_head(
    lit: str | None,
    *,
    radius: int = 10,
    brightness: float = 1.0,
    horizontal: bool = False,
    glare: bool = False,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """An RGB crop of a three-lamp signal head: dark housing, dim unlit lamps, one lit lamp
    (optionally with an over-exposed white core and sensor noise)."""
    pad = max(2, radius // 2)
    step = 2 * radius + pad
    long_side, short_side = 3 * step + pad, 2 * radius + 2 * pad
    w, h = (long_side, short_side) if horizontal else (short_side, long_side)
    img = np.full((h + 2 * pad, w + 2 * pad, 3), (55, 60, 65), dtype=np.uint8)  # pole/sky around it
    cv2.rectangle(img, (pad, pad), (pad + w - 1, pad + h - 1), (22, 24, 22), -1)
    for k, colour in enumerate(ORDER):
        along = 2 * pad + radius + k * step
        across = 2 * pad + radius
        centre = (along, across) if horizontal else (across, along)
        if colour == lit:
            rgb = tuple(int(c * brightness) for c in LIT[colour])
            cv2.circle(img, centre, radius, rgb, -1, lineType=cv2.LINE_AA)
            if glare:
                core = tuple(int(min(255, 235 * brightness + c * 0.1)) for c in LIT[colour])
                cv2.circle(img, centre, max(1, int(radius * 0.55)), core, -1, lineType=cv2.LINE_AA)
        else:
            cv2.circle(img, centre, radius, UNLIT[colour], -1, lineType=cv2.LINE_AA)
    if radius >= 6:
        img = np.asarray(cv2.GaussianBlur(img, (3, 3), 0), dtype=np.uint8)
    if noise:
        rng = np.random.default_rng(seed)
        img = np.clip(img.astype(np.float64) + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    return img


def jpeg_roundtrip(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)


@pytest.mark.parametrize("lit", ORDER)
@pytest.mark.parametrize("radius", [3, 6, 12, 24])
@pytest.mark.parametrize("brightness", [1.0, 0.7, 0.45])
def test_lit_lamp_colour_at_sizes_and_brightness(lit, radius, brightness):
    assert classify_lamp(signal_head(lit, radius=radius, brightness=brightness)) == lit


@pytest.mark.parametrize("lit", ORDER)
@pytest.mark.parametrize("horizontal", [False, True])
def test_glare_noise_jpeg_and_orientation(lit, horizontal):
    head = signal_head(lit, radius=9, glare=True, noise=6.0, horizontal=horizontal, seed=ORDER.index(lit))
    assert classify_lamp(jpeg_roundtrip(head)) == lit


@pytest.mark.parametrize("radius", [4, 12])
def test_all_lamps_dark_is_unknown(radius):
    assert classify_lamp(signal_head(None, radius=radius)) == "unknown"
    assert classify_lamp(signal_head(None, radius=radius, noise=8.0)) == "unknown"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(40, 16), (90, 30), (200, 80)])
def test_noise_is_unknown(seed, shape):
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert classify_lamp(noise) == "unknown"
    # noise that is bright and saturated everywhere (coloured confetti) neither
    hsv = np.stack([rng.integers(0, 180, shape), rng.integers(150, 256, shape), rng.integers(150, 256, shape)], axis=-1).astype(np.uint8)
    assert classify_lamp(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)) == "unknown"


def test_white_glare_and_flat_images_are_unknown():
    head = signal_head(None, radius=10)
    cv2.circle(head, (head.shape[1] // 2, head.shape[0] // 2), 8, (250, 250, 250), -1)  # sun glint, no colour
    assert classify_lamp(head) == "unknown"
    assert classify_lamp(np.full((60, 20, 3), (255, 0, 0), np.uint8)) == "unknown"  # all red: no dark housing
    assert classify_lamp(np.zeros((60, 20, 3), np.uint8)) == "unknown"
    assert classify_lamp(np.zeros((0, 0, 3), np.uint8)) == "unknown"


def test_mask_limits_the_region():
    head = signal_head("green", radius=8)
    big = np.zeros((head.shape[0], head.shape[1] * 2, 3), np.uint8)
    big[:, : head.shape[1]] = head
    cv2.circle(big, (head.shape[1] + head.shape[1] // 2, head.shape[0] // 4), 8, LIT["red"], -1)  # a red brake light beside it
    mask = np.zeros(big.shape[:2], bool)
    mask[:, : head.shape[1]] = True
    assert classify_lamp(big, mask) == "green"
    assert classify_lamp(big) == "unknown"  # two colours, neither dominant


def _frame_with(head: np.ndarray, size=(320, 240)) -> tuple[np.ndarray, list[tuple[float, float]]]:
    w, h = size
    frame = np.full((h, w, 3), 120, np.uint8)
    y0, x0 = 20, 250
    frame[y0 : y0 + head.shape[0], x0 : x0 + head.shape[1]] = head
    region = [
        (x0 / (w - 1), y0 / (h - 1)),
        ((x0 + head.shape[1] - 1) / (w - 1), y0 / (h - 1)),
        ((x0 + head.shape[1] - 1) / (w - 1), (y0 + head.shape[0] - 1) / (h - 1)),
        (x0 / (w - 1), (y0 + head.shape[0] - 1) / (h - 1)),
    ]
    return frame, region


def test_reader_reads_the_region_and_holds_through_unreadable_frames():
    red, region = _frame_with(signal_head("red", radius=7))
    dark, _ = _frame_with(signal_head(None, radius=7))
    green, _ = _frame_with(signal_head("green", radius=7))
    board = SignalBoard()
    reader = SignalReader("cam", [SignalConfig(id="main", region=region, hold_s=1.0)], board)
    size = (320, 240)
    assert reader.read(red, size, 100.0) == {"main": "red"}
    assert reader.read(dark, size, 100.6) == {"main": "red"}  # LED flicker: held
    assert reader.read(dark, size, 101.2) == {"main": "unknown"}  # longer than hold_s
    assert reader.read(green, size, 101.4) == {"main": "green"}
    assert reader.read(None, size, 101.6) == {"main": "unknown"}
    # the board shows the latest reading, for the API
    cfg = reader.configs[0]
    assert board.status("cam", cfg, 101.6).state == "unknown"
    reader.read(green, size, 102.0)
    st = board.status("cam", cfg, 103.0)
    assert st.state == "green" and st.updated_at == 102.0
    assert board.status("cam", cfg, 102.0 + cfg.stale_after_s + 0.1).state == "unknown"


def test_board_pushes_go_stale_and_are_per_camera():
    board = SignalBoard()
    api = SignalConfig(id="main", source="api", stale_after_s=5.0)
    reader = SignalReader("cam", [api], board)
    assert reader.read(None, (10, 10), 0.0) == {"main": "unknown"}
    board.push("cam", "main", "red", at=10.0)
    assert reader.read(None, (10, 10), 12.0) == {"main": "red"}
    assert reader.read(None, (10, 10), 15.5) == {"main": "unknown"}
    assert SignalReader("other", [api], board).read(None, (10, 10), 12.0) == {"main": "unknown"}
    assert SignalReader("cam", [api], None).read(None, (10, 10), 12.0) == {"main": "unknown"}
    board.push("cam", "main", "green", at=20.0)
    assert board.status("cam", api, 21.0).state == "green"
    board.forget("cam")
    assert board.get("cam", "main", 21.0, 5.0) == "unknown"
