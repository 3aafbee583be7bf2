"""Several models at once: each frame goes through the models its camera uses, batched per model.

A site runs the embedded COCO model and its own fall or garbage model side by side. Frames are
grouped by model, each group goes through :func:`~gridworker.models.tiling.detect_tiled` as one
batch (with its camera's tiles and region), and every frame's detections from its models are
merged, each box tagged with the model it came from (``data["detector"]``), so a rule can
listen to one model only and the tracker can follow each model's objects on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import supervision as sv

from .base import Detector
from .errors import ModelFormatError
from .tiling import Region, TileConfig, detect_tiled

__all__ = ["DETECTOR_KEY", "Resizable", "detect_models", "resized"]

#: ``Detections.data`` key naming the model each box came from (always set by :func:`detect_models`)
DETECTOR_KEY = "detector"


@runtime_checkable
class Resizable(Protocol):
    """A detector that can run at another input size, sharing its session (YOLO with a
    dynamic input): what a camera's own ``imgsz`` needs."""

    def with_imgsz(self, imgsz: int) -> Detector: ...


def resized(detector: Detector, imgsz: int, model_id: str = "") -> Detector:
    """``detector`` at input size ``imgsz`` (its session shared).

    Raises:
        ModelFormatError: the model cannot change its input size (SSD, or YOLO exported with a fixed size).
    """
    if not isinstance(detector, Resizable):
        raise ModelFormatError(f"model {model_id!r} has a fixed input size: imgsz needs a YOLO model exported with dynamic axes")
    return detector.with_imgsz(imgsz)


def _tagged(detections: sv.Detections, model_id: str) -> sv.Detections:
    data = {**detections.data, DETECTOR_KEY: np.full(len(detections), model_id, dtype=object)}
    return sv.Detections(
        xyxy=detections.xyxy, confidence=detections.confidence, class_id=detections.class_id, tracker_id=detections.tracker_id, data=data
    )


def _empty() -> sv.Detections:
    out = sv.Detections.empty()
    out.data["class_name"] = np.zeros(0, dtype=str)
    out.data[DETECTOR_KEY] = np.zeros(0, dtype=object)
    return out


def detect_models(
    models: Mapping[str, Detector],
    default: str,
    images: Sequence[np.ndarray],
    tiles: Sequence[TileConfig | None],
    regions: Sequence[Region | None],
    chosen: Sequence[Sequence[str]],
    sizes: Sequence[int | None] | None = None,
    sized: Mapping[tuple[str, int], Detector] | None = None,
) -> list[sv.Detections]:
    """Detections of each image from the models ``chosen`` for it (model ids of ``models``).

    Every box carries ``data["detector"]``, the model it came from, whichever cameras share
    the batch (a camera's frames are tracked by model: a tag that came and went with its
    batch-mates would split its objects' tracks). When every image uses only ``default`` at
    its own size, this is ``detect_tiled`` with that model, tagged. A model id not in
    ``models`` is skipped (settings validate them). ``sizes``: each image's input size (a
    camera's ``imgsz``; None: the model's own), run through the resized model
    ``sized[(model id, size)]``; images of one model and size go in one batch.
    """
    per_size = list(sizes) if sizes is not None else [None] * len(images)
    if all(tuple(c) == (default,) for c in chosen) and all(z is None for z in per_size):
        return [_tagged(d, default) for d in detect_tiled(models[default], images, tiles, regions)]
    per_image: list[list[sv.Detections]] = [[] for _ in images]
    for model_id in dict.fromkeys(m for c in chosen for m in c):
        for size in dict.fromkeys(per_size[i] for i, c in enumerate(chosen) if model_id in c):
            detector = models.get(model_id) if size is None else (sized or {}).get((model_id, size))
            if detector is None:
                continue
            members = [i for i, c in enumerate(chosen) if model_id in c and per_size[i] == size]
            found = detect_tiled(detector, [images[i] for i in members], [tiles[i] for i in members], [regions[i] for i in members])
            for i, dets in zip(members, found, strict=True):
                if len(dets):
                    per_image[i].append(_tagged(dets, model_id))
    return [sv.Detections.merge(parts) if parts else _empty() for parts in per_image]
