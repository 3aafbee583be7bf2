"""`gridworker run` loads every model (``detector:`` and each of ``detectors:``) and runs each
config camera's ``imgsz`` on its models before it binds the port: a bad one stops the start with
one line naming the detector or the camera, exit status 2, never a traceback from the lifespan.
`gridworker check --load-models` finds the same before a restart (plain `check` only finds the
files). Real tiny ONNX models, real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridworker.cli import main
from tests.factories import free_port

pytest.importorskip("onnx", reason="the test models are built with the onnx package (the export extra)")

from tests.models.tiny_onnx import square_only, ssd_with_input  # noqa: E402  (after the skip)


def _config(tmp_path: Path, body: str) -> str:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        f"server: {{host: 127.0.0.1, port: {free_port()}}}\n"
        f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\nevidence: {{clips: false}}\n{body}"
    )
    return str(conf)


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """Exit status 2 and no traceback: the lines on stderr."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()


def test_run_refuses_a_bad_model_of_detectors_before_binding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: only ``detector:`` was loaded; ``detectors:`` failed in the lifespan (a traceback, exit 3)."""
    junk = tmp_path / "fall.onnx"
    junk.write_bytes(b"\x00not an onnx model" * 64)
    conf = _config(tmp_path, f"detectors:\n  - {{id: fall, model: {junk}}}\n")
    [line] = _refused(capsys, "run", "--config", conf)
    assert line.startswith(f"gridworker: detectors[0] ('fall').model: ONNX Runtime cannot load {junk}"), line
    assert not (tmp_path / "g.db").exists()  # nothing started: not even the database


def test_run_refuses_a_config_camera_imgsz_naming_the_camera(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The embedded SSD has a fixed input size; before, the camera's imgsz failed in the lifespan
    with a traceback that did not name the camera."""
    conf = _config(tmp_path, "cameras:\n  - {id: gate, url: 'rtsp://127.0.0.1:9/s', imgsz: 640}\n")
    [line] = _refused(capsys, "run", "--config", conf)
    assert line == (
        "gridworker: camera 'gate': imgsz 640: model 'default' has a fixed input size: imgsz needs a YOLO model exported with dynamic axes"
    )


def test_run_refuses_a_yolo_model_that_cannot_run_a_camera_imgsz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = square_only(tmp_path / "square.onnx")
    conf = _config(
        tmp_path,
        f"detectors:\n  - {{id: fall, model: {model}, rect: false}}\n"
        "cameras:\n"
        "  - {id: near, url: 'rtsp://127.0.0.1:9/a', imgsz: 320, detectors: [default, fall]}\n"
        "  - {id: near2, url: 'rtsp://127.0.0.1:9/b', imgsz: 320, detectors: [fall]}\n",
    )
    lines = _refused(capsys, "run", "--config", conf)
    assert len(lines) == 3, lines  # the SSD cannot resize at all; the fall model fails at 320, for each camera
    assert lines[0].startswith("gridworker: camera 'near': imgsz 320: model 'default' has a fixed input size")
    for line, camera in zip(lines[1:], ("near", "near2")):
        assert line.startswith(f"gridworker: camera {camera!r}: imgsz 320 on model 'fall': model {model} at imgsz 320: a test run"), line


@pytest.mark.parametrize(("changes", "said"), [({"layout": "NCHW"}, "NCHW 300x300"), ({"height": 320, "width": 320}, "NHWC 320x320")])
def test_run_refuses_an_ssd_manifest_that_does_not_fit_its_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object], said: str
) -> None:
    """Before: ONNX Runtime's InvalidArgument escaped the warm-up uncaught (exit 1, a traceback)."""
    directory = ssd_with_input(tmp_path / "ssd", **changes)
    conf = _config(tmp_path, f"detector: {{model: {directory}}}\n")
    [line] = _refused(capsys, "run", "--config", conf)
    assert line.startswith("gridworker: detector.model: model 'ssd_mobilenet_v2_coco': manifest.json declares") and said in line, line


def test_check_load_models_finds_what_run_would_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "fall.onnx"
    junk.write_bytes(b"\x00not an onnx model" * 64)
    square = square_only(tmp_path / "square.onnx")
    conf = _config(
        tmp_path,
        f"detector: {{model: {ssd_with_input(tmp_path / 'ssd', layout='NCHW')}}}\n"
        f"detectors:\n  - {{id: fall, model: {junk}}}\n  - {{id: sq, model: {square}}}\n  - {{id: gone, model: /nowhere/x.onnx}}\n"
        "cameras:\n  - {id: gate, url: 'rtsp://127.0.0.1:9/s', imgsz: 640, detectors: [default]}\n",
    )
    # plain check only finds the files: the missing one
    lines = _refused(capsys, "check", "--config", conf)
    assert lines[0].endswith("1 problem(s) that `gridworker run` would refuse") and "'gone'" in lines[1], lines
    lines = _refused(capsys, "check", "--load-models", "--config", conf)
    assert lines[0].endswith("4 problem(s) that `gridworker run` would refuse"), lines
    said = "\n".join(lines[1:])
    for text in ("detector.model: model 'ssd_mobilenet_v2_coco': manifest.json declares", "detectors[0] ('fall').model: ONNX Runtime cannot load",
                 f"detectors[1] ('sq').model: model {square}: a test run on a 1280x720 frame", "detectors[2] ('gone').model: model '/nowhere/x.onnx' not found"):
        assert said.count(text) == 1, (text, said)
    assert "camera 'gate'" not in said  # its model failed to load (said once, above)


def test_check_load_models_passes_good_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    square = square_only(tmp_path / "square.onnx")
    conf = _config(
        tmp_path,
        f"detectors:\n  - {{id: sq, model: {square}, rect: false}}\n"
        "cameras:\n  - {id: gate, url: 'rtsp://127.0.0.1:9/s', imgsz: 640, detectors: [sq]}\n",
    )
    assert main(["check", "--load-models", "--config", conf]) == 0
    out = capsys.readouterr().out
    assert "OK, 1 camera(s)" in out and "models: 2 loaded and run, and at the cameras' imgsz [640]" in out, out
    assert not (tmp_path / "g.db").exists()  # check reads, never creates, the database
