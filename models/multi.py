"""Several models at once: each frame goes through the models its camera uses, batched per model.

A site runs the embedded COCO model and its own fall or garbage model side by side. Frames are
grouped by model, each group goes through :func:`~gridworker.models.tiling.detect_tiled` as one
batch (with its camera's tiles and region), and every frame's detections from its models are
merged, each box tagged with the model it came from (``data["detector"]``), so a rule can
listen to one model only and the tracker can follow each model's objects on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import supervision as sv

from .base import Detector
from .tiling import Region, TileConfig, detect_tiled

__all__ = ["DETECTOR_KEY", "detect_models"]

#: ``Detections.data`` key naming the model each box came from (set only when a batch used several models)
DETECTOR_KEY = "detector"


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
) -> list[sv.Detections]:
    """Detections of each image from the models ``chosen`` for it (model ids of ``models``).

    When every image uses only ``default``, this is exactly ``detect_tiled`` with that model
    (no tagging). Otherwise every image's boxes carry ``data["detector"]``; a model id not in
    ``models`` is skipped (settings validate them).
    """
    if all(tuple(c) == (default,) for c in chosen):
        return detect_tiled(models[default], images, tiles, regions)
    per_image: list[list[sv.Detections]] = [[] for _ in images]
    for model_id in dict.fromkeys(m for c in chosen for m in c):
        detector = models.get(model_id)
        if detector is None:
            continue
        members = [i for i, c in enumerate(chosen) if model_id in c]
        found = detect_tiled(detector, [images[i] for i in members], [tiles[i] for i in members], [regions[i] for i in members])
        for i, dets in zip(members, found, strict=True):
            if len(dets):
                per_image[i].append(_tagged(dets, model_id))
    return [sv.Detections.merge(parts) if parts else _empty() for parts in per_image]
