"""Command-line sub-commands of :mod:`gridworker.models`.

``register(subparsers)`` adds, to the ``gridworker`` command's argparse sub-parsers:

* ``detect IMAGE... [--json] [--model M] [--confidence C]``: run the detector on image
  files. With ``--json`` it prints JSON Lines: one line per image, in argument order,
  each a JSON list of ``{"label": str, "score": float, "box": [x1, y1, x2, y2]}`` with the
  box in that image's pixels; an unreadable image gets ``[]`` (and exit status 1) so
  lines stay aligned with the arguments. Without ``--json``, a readable summary.
* ``models export MODEL.pt [--out PATH] [--imgsz N]``: export Ultralytics weights to a
  dynamic-batch ONNX file (needs the ``export`` extra).
* ``models quantize MODEL.onnx CLIP... --out PATH [--frames N] [--imgsz N]``: an INT8 copy of
  a YOLO detection model, calibrated on the clips (needs ``onnx``, in the ``export`` extra).
* ``models list``: the embedded model names.

Every sub-parser sets ``func(args) -> int`` (the exit status: 0 ok, 1 failure).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .config import DEFAULT_CALIBRATION_FRAMES, DEFAULT_MODEL, DetectorConfig
from .errors import ModelError

__all__ = ["add_detector_options", "register"]


def add_detector_options(p: argparse.ArgumentParser, *, model: str | None, model_default: str, confidence_default: str) -> None:
    """``--model M`` and ``--confidence C``, the detector's model and score threshold
    (:class:`~gridworker.models.config.DetectorConfig`'s), for every command that runs it
    (``detect``, ``replay``): ``model`` is the option's default, and the two ``*_default``
    texts say in the help what is used without the option."""
    p.add_argument(
        "--model", default=model, metavar="M", help=f"embedded model name, .onnx file or model directory (default: {model_default})"
    )
    p.add_argument("--confidence", type=float, default=None, metavar="C", help=f"score threshold in [0, 1] (default: {confidence_default})")


def register(subparsers: Any) -> None:
    """Add the ``detect`` and ``models`` sub-commands to an argparse sub-parsers object."""
    detect = subparsers.add_parser(
        "detect",
        help="detect objects in image files",
        description="Run the object detector on image files.",
    )
    detect.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image file(s) (JPEG, PNG, ...)")
    detect.add_argument(
        "--json", action="store_true", help="print JSON Lines: one list of detections per image, in order"
    )
    add_detector_options(detect, model=DEFAULT_MODEL, model_default=DEFAULT_MODEL, confidence_default="0.4")
    detect.set_defaults(func=_detect)

    models = subparsers.add_parser("models", help="manage detector models", description="Manage detector models.")
    models_sub = models.add_subparsers(dest="models_command", metavar="COMMAND")
    models_sub.required = True
    export = models_sub.add_parser(
        "export",
        help="export Ultralytics weights to ONNX",
        description="Export Ultralytics YOLO detection weights (.pt) to a dynamic-batch ONNX file. "
        "Needs the export extra (ultralytics, torch, onnx, onnxslim).",
    )
    export.add_argument("weights", type=Path, metavar="MODEL.pt", help="Ultralytics weights (.pt) or model .yaml")
    export.add_argument("--out", type=Path, default=None, metavar="PATH", help="output .onnx file or directory")
    export.add_argument("--imgsz", type=int, default=640, metavar="N", help="square input size (default: 640)")
    export.set_defaults(func=_export)
    quantize = models_sub.add_parser(
        "quantize",
        help="make an INT8 copy of a YOLO ONNX model, calibrated on your clips",
        description="Quantise an Ultralytics YOLO detection ONNX model to INT8 (ONNX Runtime static quantisation, "
        "calibrated on frames of the clips given). About twice as fast on a CPU with VNNI, no faster without; "
        "measure what it costs in detections with `gridworker bench quantize` first (docs/models.md, 'INT8 models'). "
        "Needs the export extra (onnx).",
    )
    quantize.add_argument("model", type=Path, metavar="MODEL.onnx", help="a YOLO detection model exported to ONNX")
    quantize.add_argument("clips", type=Path, nargs="+", metavar="CLIP", help="video or image files of the cameras it will watch")
    quantize.add_argument("--out", type=Path, required=True, metavar="PATH", help="the INT8 .onnx file to write")
    quantize.add_argument("--frames", type=int, default=DEFAULT_CALIBRATION_FRAMES, metavar="N", help=f"calibration frames (default: {DEFAULT_CALIBRATION_FRAMES})")
    quantize.add_argument("--imgsz", type=int, default=None, metavar="N", help="input size to calibrate at (default: the model's)")
    quantize.set_defaults(func=_quantize)
    listing = models_sub.add_parser("list", help="list the embedded models")
    listing.set_defaults(func=_list)


def _detect(args: argparse.Namespace) -> int:
    import cv2

    from .loader import load_detector

    overrides: dict[str, Any] = {"model": args.model}
    if args.confidence is not None:
        overrides["confidence"] = args.confidence
    try:
        config = DetectorConfig(**overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        detector = load_detector(config)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    status = 0
    paths: list[Path] = list(args.images)
    for start in range(0, len(paths), detector.max_batch):
        group = paths[start : start + detector.max_batch]
        images: list[np.ndarray | None] = []
        for path in group:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"error: cannot read image {path}", file=sys.stderr)
                status = 1
                images.append(None)
            else:
                images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        found = iter(detector.detect([image for image in images if image is not None]))
        for path, image in zip(group, images):
            rows = _rows(next(found)) if image is not None else []
            if args.json:
                print(json.dumps(rows))
            elif image is not None:
                print(f"{path}: {len(rows)} detection{'s' if len(rows) != 1 else ''}")
                for row in rows:
                    box = ", ".join(f"{v:.0f}" for v in row["box"])
                    print(f"  {row['label']:<16} {row['score']:.2f}  [{box}]")
    return status


def _rows(detections: Any) -> list[dict[str, Any]]:
    names = detections.data.get("class_name", [])
    return [
        {
            "label": str(name),
            "score": round(float(score), 4),
            "box": [round(float(v), 1) for v in box],
        }
        for name, score, box in zip(names, detections.confidence, detections.xyxy)
    ]


def _export(args: argparse.Namespace) -> int:
    from .export import export_ultralytics

    try:
        path = export_ultralytics(args.weights, args.out, imgsz=args.imgsz)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from .quantize import quantize_yolo

    if not 1 <= args.frames <= 1000:
        print("error: --frames must be between 1 and 1000", file=sys.stderr)
        return 1
    try:
        result = quantize_yolo(args.model, args.out, args.clips, frames=args.frames, imgsz=args.imgsz)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{result.path}: INT8, {result.size_bytes / 1e6:.1f} MB (from {result.source_bytes / 1e6:.1f} MB), calibrated on "
        f"{result.frames} frames at {result.input_shape[0]}x{result.input_shape[1]}; {result.float_nodes} head nodes kept in float"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from .loader import embedded_models

    for name in embedded_models():
        print(name)
    return 0
