"""Object detection for gridworker: ONNX models in, ``supervision.Detections`` out.

The default detector is the embedded SSD-MobileNetV2 COCO model; any Ultralytics YOLO
detection model exported to ONNX works too. Nothing here needs torch at run time.

Example:
    >>> import numpy as np
    >>> from gridworker.models import DetectorConfig, load_detector
    >>> detector = load_detector(DetectorConfig(confidence=0.5))
    >>> rgb_image = np.zeros((360, 640, 3), dtype=np.uint8)   # (H, W, 3) uint8 RGB
    >>> detections = detector.detect([rgb_image])[0]
    >>> len(detections)                                        # nothing in a black frame
    0
"""

from .base import Detector
from .config import DetectorConfig
from .errors import ExportError, ModelError, ModelFormatError, ModelIntegrityError, ModelNotFoundError
from .export import export_ultralytics
from .loader import embedded_models, load_detector
from .manifest import Manifest, load_manifest
from .nms import box_iou_matrix, nms
from .ssd import SsdDetector
from .yolo import YoloDetector, YoloLayout

__all__ = [
    "Detector",
    "DetectorConfig",
    "ExportError",
    "Manifest",
    "ModelError",
    "ModelFormatError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "SsdDetector",
    "YoloDetector",
    "YoloLayout",
    "box_iou_matrix",
    "embedded_models",
    "export_ultralytics",
    "load_detector",
    "load_manifest",
    "nms",
]
