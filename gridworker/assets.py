"""Sample media the product can find on the machine by itself (no downloads)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

OPENCV_DOC_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def ultralytics_asset(name: str) -> Path | None:
    """A photo shipped in the ``ultralytics`` wheel (e.g. ``bus.jpg``), found without importing it.

    Importing ultralytics would import torch; only the file is needed.
    """
    try:
        spec = importlib.util.find_spec("ultralytics")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "assets" / name
        if candidate.is_file():
            return candidate
    return None


def opencv_doc_video(name: str = "vtest.avi") -> Path | None:
    """Debian ``opencv-doc``'s sample video (pedestrians on a campus road), if installed."""
    for candidate in (OPENCV_DOC_DATA / name, OPENCV_DOC_DATA / f"{name}.gz"):
        if candidate.is_file() and candidate.suffix != ".gz":
            return candidate
    return None
