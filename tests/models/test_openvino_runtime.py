"""``detector.runtime: openvino``: the same ONNX models run by OpenVINO, real models on real
pictures. In float32 it finds what ONNX Runtime finds; at ``precision: auto`` (bfloat16 on CPUs
with AMX) its boxes still agree; input shapes are compiled one by one up to a bound, then share
a dynamic model; two inference workers may run it at once; without the package the runtime is
refused with a clear error."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import gridworker.models.openvino_session as ovs
from gridworker.bench.crops import f1_matched
from gridworker.models import DetectorConfig, load_detector
from gridworker.models.errors import ModelFormatError

pytest.importorskip("openvino")


def _boxes(detections) -> np.ndarray:
    return np.asarray(detections.xyxy, dtype=np.float32)


def _agree(a, b, iou: float) -> tuple[int, int, int]:
    return f1_matched(_boxes(a), _boxes(b), iou)


@pytest.fixture(scope="module")
def yolo_pair(fall_onnx: Path):
    """The fall model (a trained YOLOv8s) on ONNX Runtime and on OpenVINO in float32, loaded for
    two inference workers (OpenVINO: two streams, so both may run at once)."""
    base = DetectorConfig(model=str(fall_onnx), confidence=0.25, threads=1)
    return load_detector(base, workers=2), load_detector(base.model_copy(update={"runtime": "openvino", "precision": "f32"}), workers=2)


def test_float32_openvino_finds_what_onnx_runtime_finds(yolo_pair, bus_image: np.ndarray, hopper_image: np.ndarray) -> None:
    ort_detector, ov_detector = yolo_pair
    for image in (bus_image, hopper_image):
        (a,), (b,) = ort_detector.detect([image]), ov_detector.detect([image])
        assert len(a) >= 1
        assert _agree(a, b, 0.95) == (len(a), 0, 0), (a.xyxy, b.xyxy)
        assert np.allclose(a.confidence, b.confidence, atol=0.02)
        assert list(a.data["class_name"]) == list(b.data["class_name"])


def test_openvino_at_its_default_precision_agrees(fall_onnx: Path, yolo_pair, bus_image: np.ndarray, hopper_image: np.ndarray) -> None:
    """bfloat16 where the CPU has it (the speed lever), float32 elsewhere: the boxes agree."""
    ort_detector, _ = yolo_pair
    auto = load_detector(DetectorConfig(model=str(fall_onnx), confidence=0.25, threads=1, runtime="openvino"))
    for image in (bus_image, hopper_image):
        (a,), (b,) = ort_detector.detect([image]), auto.detect([image])
        matched, only_a, only_b = _agree(a, b, 0.8)
        assert matched >= 1 and only_a + only_b <= 1, (a.xyxy, b.xyxy)


def test_the_embedded_ssd_runs_on_openvino(ssd_dir: Path, bus_image: np.ndarray) -> None:
    base = DetectorConfig(model=str(ssd_dir), confidence=0.3, threads=1)
    (a,), (b,) = load_detector(base).detect([bus_image]), load_detector(base.model_copy(update={"runtime": "openvino"})).detect([bus_image])
    assert "bus" in set(b.data["class_name"]) and "person" in set(b.data["class_name"])
    assert _agree(a, b, 0.9)[0] >= len(a) - 1


def test_shapes_are_compiled_one_by_one_up_to_the_bound(fall_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ovs, "MAX_SHAPES", 2)
    session = ovs.OpenVinoSession(fall_onnx, threads=1, precision="f32")
    (name,) = [i.name for i in session.get_inputs()]
    outs = {}
    for h, w in ((320, 320), (256, 320), (192, 320), (320, 320)):
        x = np.random.default_rng(h).random((2, 3, h, w), dtype=np.float32)
        (out,) = session.run(None, {name: x})
        outs[(h, w)] = out
        assert out.shape[0] == 2
    assert session.shapes_compiled() == 2  # the third shape ran on the dynamic model
    assert outs[(192, 320)].shape[2] < outs[(256, 320)].shape[2] < outs[(320, 320)].shape[2]  # fewer anchors for fewer pixels
    import onnxruntime as ort

    reference = ort.InferenceSession(str(fall_onnx), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(192).random((2, 3, 192, 320), dtype=np.float32)
    assert np.allclose(reference.run(None, {name: x})[0], outs[(192, 320)], atol=0.05)  # the dynamic model computes the same


def test_a_feed_of_the_wrong_type_or_name_is_refused(fall_onnx: Path) -> None:
    """As ONNX Runtime refuses them (OpenVINO would convert uint8 pixels to floats silently)."""
    session = ovs.OpenVinoSession(fall_onnx, threads=1, precision="f32")
    (name,) = [i.name for i in session.get_inputs()]
    with pytest.raises(ModelFormatError, match="input is tensor"):
        session.run(None, {name: np.zeros((1, 3, 64, 64), np.uint8)})
    with pytest.raises(ModelFormatError, match="fed"):
        session.run(None, {"other": np.zeros((1, 3, 64, 64), np.float32)})


def test_two_workers_run_it_at_once(yolo_pair, bus_image: np.ndarray, hopper_image: np.ndarray) -> None:
    _, ov_detector = yolo_pair
    alone = [ov_detector.detect([image])[0] for image in (bus_image, hopper_image)]
    got: list[list] = [[], []]

    def work(k: int) -> None:
        for _ in range(3):
            got[k].append(ov_detector.detect([(bus_image, hopper_image)[k]])[0])

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k in (0, 1):
        assert len(got[k]) == 3 and all(np.allclose(d.xyxy, alone[k].xyxy, atol=1e-3) for d in got[k])


def test_without_the_package_the_runtime_is_refused_clearly(ssd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gridworker.cli import main
    from tests.factories import free_port

    monkeypatch.setattr(ovs, "openvino_available", lambda: "the openvino package is not installed (pip install 'gridworker[openvino]')")
    with pytest.raises(ModelFormatError, match="detector.runtime openvino: the openvino package is not installed"):
        load_detector(DetectorConfig(model=str(ssd_dir), runtime="openvino"))
    conf = tmp_path / "c.yaml"  # and `gridworker check` says so without loading the model
    conf.write_text(f"server: {{host: 127.0.0.1, port: {free_port()}}}\ndatabase: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\ndetector: {{runtime: openvino}}\n")
    assert main(["check", "--config", str(conf)]) == 2
    assert "detector.runtime: the openvino package is not installed" in capsys.readouterr().err


def test_an_unknown_runtime_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="runtime"):
        DetectorConfig(runtime="tensorrt")


def test_bench_runtimes_compares_both_on_the_same_frames(fall_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from gridworker.cli import main
    from tests.factories import bus_street_clips

    media = tmp_path / "media"
    media.mkdir()
    clip = Path(bus_street_clips(tmp_path, {"left": 40})["left"])
    clip.rename(media / clip.name)
    out = tmp_path / "r.json"
    assert main(["bench", "runtimes", "--media", str(media), "--model", str(fall_onnx), "--frames", "4", "--precision", "f32", "--json", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 4 and result["cpu"]["precision"] == "f32" and isinstance(result["cpu"]["bf16_native"], bool)
    assert result["boxes_onnxruntime"] >= 4 and result["f1_vs_onnxruntime"] == 1.0  # float32 on both: the same boxes
    assert result["onnxruntime_s"] > 0 and result["openvino_s"] > 0 and result["openvino_speedup"] > 0
    assert "openvino" in capsys.readouterr().err
    assert main(["bench", "runtimes", "--media", str(media), "--frames", "0"]) == 2
    assert "--frames must lie in [1, 1000]" in capsys.readouterr().err


def test_the_throughput_and_patrol_benches_load_their_detector_on_the_runtime_named() -> None:
    from gridworker.bench.patrol import PatrolBenchConfig
    from gridworker.bench.throughput import ThroughputConfig
    from gridworker.cli import build_parser

    parser = build_parser()
    for command, cls in (("throughput", ThroughputConfig), ("patrol", PatrolBenchConfig)):
        args = parser.parse_args(["bench", command, "--runtime", "openvino"])
        config = cls(runtime=args.runtime)
        assert config.detector_config().runtime == "openvino" and config.detector_settings()["runtime"] == "openvino"
        assert parser.parse_args(["bench", command]).runtime == "onnxruntime"
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", command, "--runtime", "tensorrt"])
