"""Wrong or hostile model metadata and manifests are refused with ModelFormatError, before
anything of their size is allocated: class ids, input sizes, deeply nested or huge JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridworker.models import YoloDetector
from gridworker.models.errors import ModelFormatError
from gridworker.models.loader import WEIGHTS_DIR
from gridworker.models.manifest import MAX_INPUT_SIDE, MANIFEST_NAME, load_manifest
from gridworker.models.yolo import MAX_CLASSES

DYNAMIC = ["batch", 3, "h", "w"]
OUTPUT = np.zeros((1, 7, 8), dtype=np.float32)  # v8 head: 3 classes, 8 anchors, nothing found


def detector(fake_session: Any, *, input_shape: list[Any] | None = None, output_shape: list[Any] | None = None,
             metadata: dict[str, str] | None = None, **kwargs: Any) -> YoloDetector:
    session = fake_session(OUTPUT, input_shape=input_shape or DYNAMIC, output_shape=output_shape or ["batch", 7, "anchors"],
                           metadata=metadata or {})
    return YoloDetector(session, **kwargs)  # warm-up on: a size that got through would be allocated


@pytest.mark.parametrize(
    ("names", "match"),
    [
        ("{0: 'person', 1000000000: 'x'}", "class id 1000000000; at most 10000 classes"),
        (f"{{0: 'person', {MAX_CLASSES}: 'x'}}", f"class id {MAX_CLASSES}; at most"),
        (repr([f"c{i}" for i in range(MAX_CLASSES + 1)]), f"{MAX_CLASSES + 1} names; at most"),
    ],
)
def test_names_beyond_the_class_limit_are_refused(fake_session: Any, names: str, match: str) -> None:
    with pytest.raises(ModelFormatError, match=match):
        detector(fake_session, metadata={"names": names})


def test_names_at_the_class_limit_load(fake_session: Any) -> None:
    names = f"{{0: 'person', {MAX_CLASSES - 1}: 'x'}}"
    model = detector(fake_session, metadata={"names": names}, output_shape=["batch", 4 + MAX_CLASSES, "anchors"], warmup=False)
    assert len(model.class_names) == MAX_CLASSES and model.class_names[-1] == "x"


def test_an_output_with_too_many_class_columns_is_refused(fake_session: Any) -> None:
    with pytest.raises(ModelFormatError, match=f"1000000 class columns; at most {MAX_CLASSES}"):
        detector(fake_session, output_shape=["batch", 4 + 1_000_000, "anchors"], warmup=False)


@pytest.mark.parametrize(
    ("input_shape", "metadata", "kwargs", "match"),
    [
        (DYNAMIC, {"imgsz": "[20000, 20000]"}, {}, "'imgsz' metadata is 20000x20000: each side must be at most 4096"),
        (DYNAMIC, {"imgsz": "[640, 8192]"}, {}, "640x8192"),
        (DYNAMIC, {"imgsz": "[650, 650]"}, {}, "multiple of the stride 32"),
        (DYNAMIC, {"imgsz": "[640, 640]", "stride": "64"}, {"imgsz": 352}, "imgsz is 352x352: .* multiple of the stride 64"),
        (DYNAMIC, {}, {"imgsz": 5000}, "imgsz is 5000x5000"),
        ([1, 3, 5000, 5000], {}, {}, "fixed input size is 5000x5000: each side must be at most 4096$"),
    ],
)
def test_input_sizes_out_of_bounds_are_refused(
    fake_session: Any, input_shape: list[Any], metadata: dict[str, str], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ModelFormatError, match=match):
        detector(fake_session, input_shape=input_shape, metadata={"names": "{0: 'a', 1: 'b', 2: 'c'}", **metadata}, **kwargs)


@pytest.mark.parametrize(
    ("metadata", "kwargs", "size"),
    [
        ({"imgsz": "[384, 640]"}, {}, (384, 640)),
        ({"imgsz": f"[{MAX_INPUT_SIDE}, 32]"}, {}, (MAX_INPUT_SIDE, 32)),
        ({"imgsz": "[20000, 20000]"}, {"imgsz": 320}, (320, 320)),  # the caller's size wins, the metadata's is not used
        ({}, {}, (640, 640)),
    ],
)
def test_input_sizes_in_bounds_load(fake_session: Any, metadata: dict[str, str], kwargs: dict[str, Any], size: tuple[int, int]) -> None:
    assert detector(fake_session, metadata=metadata, warmup=False, **kwargs).input_size == size


def write_manifest(directory: Path, tail: str) -> None:
    """The embedded SSD manifest with ``tail`` added as its last member."""
    text = json.dumps(json.loads((WEIGHTS_DIR / "ssd_mobilenet_v2_coco" / MANIFEST_NAME).read_text(encoding="utf-8")))
    (directory / MANIFEST_NAME).write_text(text[:-1] + ", " + tail + "}", encoding="utf-8")


@pytest.mark.parametrize(
    ("tail", "match"),
    [
        ('"upstream_postprocess": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('"upstream_postprocess": {"a": ' + "9" * 5000 + "}", "ValueError: .*digits"),
    ],
    ids=["deeply-nested", "huge-integer"],
)
def test_unusable_manifest_json_is_refused(tmp_path: Path, tail: str, match: str) -> None:
    write_manifest(tmp_path, tail)
    with pytest.raises(ModelFormatError, match=match):
        load_manifest(tmp_path, verify=False)


def test_a_modestly_nested_reference_section_still_loads(tmp_path: Path) -> None:
    write_manifest(tmp_path, '"upstream_postprocess": {"a": ' + "[" * 50 + "]" * 50 + "}")
    assert load_manifest(tmp_path, verify=False).name == "ssd_mobilenet_v2_coco"


def test_class_filters_and_merge_groups_are_bounded():
    """Every detection of every frame is looked up in these lists: a config cannot make them huge."""
    from pydantic import ValidationError

    from gridworker.models.config import MAX_CLASS_NAME, MAX_FILTER_CLASSES, DetectorConfig
    from gridworker.models.tiling import TileConfig

    names = [f"c{i}" for i in range(MAX_FILTER_CLASSES)]
    assert DetectorConfig(classes=names).classes == names
    assert TileConfig(merge_classes=[names]).merge_classes == [names]
    with pytest.raises(ValidationError, match="at most 1000 items"):
        DetectorConfig(classes=[*names, "one more"])
    with pytest.raises(ValidationError, match=f"at most {MAX_CLASS_NAME} characters"):
        DetectorConfig(classes=["x" * (MAX_CLASS_NAME + 1)])
    with pytest.raises(ValidationError, match="more than 1000 class names in all"):
        TileConfig(merge_classes=[names[:600], names[:401]])
    with pytest.raises(ValidationError):
        TileConfig(merge_classes=[["car", ""]])
