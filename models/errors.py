"""Errors raised by :mod:`gridworker.models`.

The tree, so callers can catch at the level they care about::

    ModelError                  anything that stops a model from being found, trusted or used
    ├── ModelNotFoundError      no embedded model of that name, no such file or directory
    ├── ModelIntegrityError     a file's sha256 does not match the manifest
    ├── ModelFormatError        unreadable manifest, unknown output layout, bad metadata
    └── ExportError             exporting Ultralytics weights to ONNX failed or is impossible
"""

from __future__ import annotations

__all__ = [
    "ExportError",
    "ModelError",
    "ModelFormatError",
    "ModelIntegrityError",
    "ModelNotFoundError",
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
