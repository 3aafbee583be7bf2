"""Issue 16: `gridworker check` reports every config error in one pass and what tiles cost;
a camera whose analysis falls behind is told (log, metric) — see vision/pace.py."""

from __future__ import annotations

import logging

import numpy as np
import supervision as sv

from gridworker.cli import detector_load_lines, main
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
    assert "cross: 2x2 tiles + full frame: 5 run(s) per frame x 5 fps = 25 runs/s" in out
    assert "gate: whole frame: 1 run(s) per frame x 5 fps = 5 runs/s" in out
    assert "all cameras: 30 runs/s" in out and "school:" not in out.split("detector load")[1]
    # three tiled cameras at 10 fps on one core: more than it can keep up with
    many = Settings(cameras=[{"id": f"c{i}", "url": f"rtsp://10.0.0.{i}/s", "fps": 10, "detect_tiles": {"rows": 3, "cols": 3}} for i in range(3)])
    assert any("WARNING" in line for line in detector_load_lines(many, cores=1))
    assert not any("WARNING" in line for line in detector_load_lines(many, cores=64))


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
