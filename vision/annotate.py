"""Evidence pictures: boxes, labels and zone outlines drawn on a frame, encoded as JPEG."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import supervision as sv

from gridworker.models.base import subset

from .sizecache import SizeCache
from .config import ZoneConfig
from .zones import Zone

_ZONE_COLOUR = (0, 200, 255)  # BGR
_ACTIVE_ZONE_COLOUR = (0, 0, 255)


class FrameAnnotator:
    """Draws detections and zones on a copy of an RGB frame and encodes it as JPEG.

    Example:
        >>> jpeg = FrameAnnotator().render_jpeg(np.zeros((10, 10, 3), np.uint8), sv.Detections.empty(), [])
        >>> jpeg[:2] == b"\\xff\\xd8"
        True
    """

    def __init__(self, jpeg_quality: int = 85) -> None:
        self._quality = int(jpeg_quality)
        self._by_size = SizeCache(self._build_annotators, keep=64)  # one annotator for the service: every camera's size

    def _annotators(self, size: tuple[int, int]) -> tuple[sv.BoxAnnotator, sv.LabelAnnotator, float, int]:
        """Box/label annotators with line width and text size that suit the frame size."""
        return self._by_size.get(size)

    @staticmethod
    def _build_annotators(size: tuple[int, int]) -> tuple[sv.BoxAnnotator, sv.LabelAnnotator, float, int]:
        scale = max(0.4, sv.calculate_optimal_text_scale(resolution_wh=size))
        thickness = max(2, sv.calculate_optimal_line_thickness(resolution_wh=size))
        return sv.BoxAnnotator(thickness=thickness), sv.LabelAnnotator(text_scale=scale, text_padding=3), scale, thickness

    def draw(
        self,
        image_rgb: np.ndarray,
        detections: sv.Detections,
        zones: Sequence[Zone],
        active_zone_ids: Sequence[str] = (),
        highlight: np.ndarray | None = None,
    ) -> np.ndarray:
        """Return a BGR copy of ``image_rgb`` with zones, boxes and labels drawn.

        ``highlight`` (optional (k,) indices) limits boxes to the detections that matter
        for an incident; other boxes are drawn too but thinner.
        """
        canvas = np.asarray(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        h, w = canvas.shape[:2]
        boxes, label_annotator, text_scale, thickness = self._annotators((w, h))
        for zone in zones:
            colour = _ACTIVE_ZONE_COLOUR if zone.id in active_zone_ids else _ZONE_COLOUR
            pts = zone.polygon_px((w, h))
            cv2.polylines(canvas, [pts], isClosed=True, color=colour, thickness=thickness)
            x, y = pts.min(axis=0)
            offset = int(30 * text_scale)
            name = zone.config.name if isinstance(zone.config, ZoneConfig) else None
            cv2.putText(canvas, name or zone.id, (int(x) + 4, int(y) + offset), cv2.FONT_HERSHEY_SIMPLEX, text_scale, colour, max(1, thickness // 2), cv2.LINE_AA)
        if len(detections):
            names = detections.data.get("class_name", np.full(len(detections), "?"))
            conf = detections.confidence if detections.confidence is not None else np.ones(len(detections))
            tids = detections.tracker_id if detections.tracker_id is not None else np.full(len(detections), -1)
            labels = [f"{n} {c:.2f}" + (f" #{t}" if t >= 0 else "") for n, c, t in zip(names, conf, tids)]
            picked = detections if highlight is None else subset(detections, np.asarray(highlight, dtype=np.int64))
            sub_labels = labels if highlight is None else [labels[i] for i in np.asarray(highlight, dtype=np.int64)]
            if highlight is not None and len(detections):
                for box in detections.xyxy.astype(int):
                    cv2.rectangle(canvas, tuple(box[:2]), tuple(box[2:]), (160, 160, 160), 1)
            if len(picked):
                canvas = boxes.annotate(canvas, picked)
                canvas = label_annotator.annotate(canvas, picked, labels=sub_labels)
        return canvas

    def encode(self, image_bgr: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()

    def render_jpeg(self, image_rgb: np.ndarray, detections: sv.Detections, zones: Sequence[Zone], **kwargs: object) -> bytes:
        return self.encode(self.draw(image_rgb, detections, zones, **kwargs))  # type: ignore[arg-type]
