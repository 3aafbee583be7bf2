"""Low-light correction of a camera's frames before the detector (per camera, opt-in).

A camera's ``low_light:`` setting brightens what the detector sees: ``auto`` corrects only
frames whose mean luma is under ``dark_below`` (a dark camera at night; lit streets at dusk
stay above it and are left alone), ``always`` corrects every frame. The correction is CLAHE
on the luma channel (local contrast; the default) or a gamma curve. Only the detector's copy
changes: evidence snapshots and clips keep the camera's own picture.

What it buys is measured with ``gridworker bench rules --low-light ...`` (docs/rules-field.md,
"Low light"): on a dark clip (mean luma ~0.10) wrong-way recall rose from 0.28 to 0.69
with no false positive; on the real night clip (a lit street, mean luma ~0.40) nothing changed.

Example:
    >>> import numpy as np
    >>> cfg = LowLightConfig(mode="auto")
    >>> night = np.full((48, 64, 3), 20, np.uint8)
    >>> bool(is_dark(night, cfg.dark_below)), int(correct(night, cfg).mean()) > 20
    (True, True)
    >>> day = np.full((48, 64, 3), 160, np.uint8)
    >>> correct(day, cfg) is day
    True
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LowLightConfig", "correct", "is_dark", "mean_luma"]

_SAMPLE_STEP = 4  # luma is judged on every 4th pixel of every 4th row: 1/16 of the frame


class LowLightConfig(BaseModel):
    """A camera's ``low_light:`` section: brighten dark frames before detection."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    mode: Literal["off", "auto", "always"] = Field(
        "off", description="off; auto: only frames darker than dark_below; always: every frame"
    )
    method: Literal["clahe", "gamma"] = Field("clahe", description="CLAHE on the luma channel, or a gamma curve")
    dark_below: float = Field(
        0.2, gt=0.0, le=1.0, description="mean luma (0..1) under which a frame is dark (daylight clips measure 0.38-0.48)"
    )
    clip_limit: float = Field(2.0, gt=0.0, le=40.0, description="CLAHE contrast limit")
    tiles: int = Field(8, ge=1, le=64, description="CLAHE grid: tiles x tiles")
    gamma: float = Field(0.5, ge=0.1, le=1.0, description="gamma exponent (< 1 brightens)")


def mean_luma(image: np.ndarray) -> float:
    """Mean luma (BT.601) of an ``(H, W, 3)`` uint8 RGB image, 0..1, on a 1/16 subsample."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    sample = image[::_SAMPLE_STEP, ::_SAMPLE_STEP].astype(np.float32)
    if sample.size == 0:
        return 0.0
    luma = 0.299 * sample[..., 0] + 0.587 * sample[..., 1] + 0.114 * sample[..., 2]
    return float(luma.mean()) / 255.0


def is_dark(image: np.ndarray, dark_below: float) -> bool:
    """Whether the frame's mean luma is under ``dark_below``."""
    return mean_luma(image) < dark_below


def correct(image: np.ndarray, config: LowLightConfig) -> np.ndarray:
    """The frame the detector should see: corrected when ``config`` says so, else ``image`` itself.

    Never modifies ``image``; a corrected frame is a new array of the same shape.
    """
    if config.mode == "off" or (config.mode == "auto" and not is_dark(image, config.dark_below)):
        return image
    if config.method == "gamma":
        table = (np.linspace(0.0, 1.0, 256) ** config.gamma * 255.0 + 0.5).astype(np.uint8)
        return cv2.LUT(image, table)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=config.clip_limit, tileGridSize=(config.tiles, config.tiles))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
