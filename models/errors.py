"""Errors raised by :mod:`gridworker.models`.

The tree, so callers can catch at the level they care about::

    ModelError                  anything that stops a model from being found, trusted or used
    ├── ModelNotFoundError      no embedded model of that name, no such file or directory
    ├── ModelIntegrityError     a file's sha256 does not match the manifest
    ├── ModelFormatError        unreadable manifest, unknown output layout, bad metadata
    ├── ExportError             exporting Ultralytics weights to ONNX failed or is impossible
    └── QuantizeError           quantising a model to INT8 failed (model, calibration frames, tools)
"""

from __future__ import annotations

__all__ = [
    "ExportError",
    "ModelError",
    "ModelFormatError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "QuantizeError",
]


class ModelError(Exception):
    """A detector model cannot be found, verified, loaded or understood."""


class ModelNotFoundError(ModelError):
    """The configured model name or path does not exist."""


class ModelIntegrityError(ModelError):
    """A model file's sha256 differs from the one its manifest records."""


class ModelFormatError(ModelError):
    """A manifest or ONNX graph is not in a format gridworker can run."""


class ExportError(ModelError):
    """Exporting Ultralytics weights to ONNX failed or its tools are missing."""


class QuantizeError(ModelError):
    """Quantising a model to INT8 failed: not a model it knows, no usable calibration frames, or missing tools."""
