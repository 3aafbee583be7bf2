"""An incident's evidence snapshot: the frame that opened it, naming the objects that did.

The snapshot answers an operator's first question about a case, "which one?": the objects
that triggered the rule (a per-object rule's one object; every contributing object of a
zone-level rule such as a crowd) are boxed and labelled in the trigger colour, the rule's
zone is outlined, and every other detection is drawn thin and grey, unlabelled. Nothing else
is drawn in the trigger colour. The incident stores the track ids of the triggering objects
(``details["track_ids"]``), so the case names them too; the incident manager adds the ids they
take later while the incident is open (``incidents/manager.py``), which the clip's overlay draws.

The console's live view (every box, every zone, ``vision/annotate.py``) is a different
picture for a different question and is drawn on the vision side.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import supervision as sv

__all__ = ["OTHER_BGR", "TRIGGER_BGR", "ZONE_BGR", "EvidenceRenderer", "subject_track_ids"]

TRIGGER_BGR = (0, 0, 255)  # red: the objects that triggered the rule, and nothing else
ZONE_BGR = (0, 200, 255)  # amber: the rule's zone
OTHER_BGR = (160, 160, 160)  # grey: everything else the detector saw

Polygon = Sequence[tuple[float, float]]


def subject_track_ids(detections: sv.Detections, subjects: np.ndarray) -> list[int]:
    """Track ids of the triggering detections (untracked ones, -1, left out), in order."""
    ids = detections.tracker_id
    if ids is None or len(subjects) == 0:
        return []
    return [int(ids[i]) for i in np.asarray(subjects, dtype=np.int64) if 0 <= i < len(ids) and ids[i] >= 0]


class EvidenceRenderer:
    """Draws the evidence snapshot of an opening incident and encodes it as JPEG.

    Example:
        >>> dets = sv.Detections(xyxy=np.array([[1.0, 1.0, 8.0, 8.0]]), class_id=np.array([0]))
        >>> jpeg = EvidenceRenderer().render(np.zeros((10, 10, 3), np.uint8), dets, np.array([0]))
        >>> jpeg[:2] == b"\\xff\\xd8"
        True
    """

    def __init__(self, jpeg_quality: int = 85) -> None:
        self._quality = int(jpeg_quality)

    def draw(
        self, image_rgb: np.ndarray, detections: sv.Detections, subjects: np.ndarray, zone: Polygon | None = None, zone_name: str = ""
    ) -> np.ndarray:
        """A BGR copy of ``image_rgb`` with the zone, the other detections and then the
        triggering ``subjects`` (indices into ``detections``) drawn on top.

        Args:
            zone: the rule's zone, normalised (x, y) vertices (0-1 of the frame).
        """
        canvas = np.ascontiguousarray(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
        h, w = canvas.shape[:2]
        thickness = max(2, sv.calculate_optimal_line_thickness(resolution_wh=(w, h)))
        scale = max(0.4, sv.calculate_optimal_text_scale(resolution_wh=(w, h)))
        if zone is not None and len(zone) >= 3:
            pts = np.round(np.asarray(zone, dtype=np.float32) * np.array([w - 1, h - 1], dtype=np.float32)).astype(np.int32)
            cv2.polylines(canvas, [pts], isClosed=True, color=ZONE_BGR, thickness=thickness)
            if zone_name:
                x, y = pts.min(axis=0)
                cv2.putText(canvas, zone_name, (int(x) + 4, int(y) + int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, ZONE_BGR, max(1, thickness // 2), cv2.LINE_AA)
        chosen = {int(i) for i in np.asarray(subjects, dtype=np.int64).ravel() if 0 <= i < len(detections)}
        boxes = detections.xyxy.astype(int) if len(detections) else np.zeros((0, 4), dtype=int)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            if i not in chosen:
                cv2.rectangle(canvas, (x1, y1), (x2, y2), OTHER_BGR, 1)
        for i in sorted(chosen):
            x1, y1, x2, y2 = boxes[i]
            cv2.rectangle(canvas, (x1, y1), (x2, y2), TRIGGER_BGR, thickness)
            self._label(canvas, detections, i, (x1, y1), scale, thickness)
        return canvas

    def render(
        self, image_rgb: np.ndarray, detections: sv.Detections, subjects: np.ndarray, zone: Polygon | None = None, zone_name: str = ""
    ) -> bytes:
        """:meth:`draw`, encoded as JPEG."""
        ok, buf = cv2.imencode(".jpg", self.draw(image_rgb, detections, subjects, zone, zone_name), [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()

    @staticmethod
    def _label(canvas: np.ndarray, detections: sv.Detections, i: int, corner: tuple[int, int], scale: float, thickness: int) -> None:
        """``car 0.87 #12`` on a trigger-coloured band above the box (inside the frame)."""
        names = detections.data.get("class_name")
        text = str(names[i]) if names is not None else str(int(detections.class_id[i])) if detections.class_id is not None else "?"
        if detections.confidence is not None:
            text += f" {float(detections.confidence[i]):.2f}"
        if detections.tracker_id is not None and detections.tracker_id[i] >= 0:
            text += f" #{int(detections.tracker_id[i])}"
        weight = max(1, thickness // 2)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
        x = max(0, corner[0])
        y = max(th + base + 2, corner[1])
        cv2.rectangle(canvas, (x, y - th - base - 2), (x + tw + 4, y), TRIGGER_BGR, cv2.FILLED)
        cv2.putText(canvas, text, (x + 2, y - base - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), weight, cv2.LINE_AA)
