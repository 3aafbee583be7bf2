"""Errors in values the environment sets name the variable, not the config file's key; a
variable that is not JSON is one line, not a traceback (review: GRIDWORKER_CAMERAS='[{"id":"x"')."""

from __future__ import annotations

import pytest

from gridworker.cli import main
from gridworker.settings import ConfigError, load_settings


def test_a_variable_that_is_not_json_is_named_without_its_value(tmp_path, capsys, monkeypatch):
    conf = tmp_path / "c.yaml"
    conf.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\n")
    monkeypatch.setenv("GRIDWORKER_CAMERAS", '[{"id":"x", "url": "rtsp://u:hunter2@h/s"')
    with pytest.raises(ConfigError) as err:
        load_settings(conf)
    text = str(err.value)
    assert "environment variable GRIDWORKER_CAMERAS" in text and "not valid JSON" in text, text
    assert "hunter2" not in text
    assert main(["check", "--config", str(conf)]) == 2
    captured = capsys.readouterr().err
    assert "GRIDWORKER_CAMERAS" in captured and "Traceback" not in captured and "hunter2" not in captured, captured


def test_errors_of_values_from_the_environment_name_the_variable(tmp_path, monkeypatch):
    conf = tmp_path / "c.yaml"
    conf.write_text("detector: {threads: 2}\ncameras:\n  - {id: filecam, url: rtsp://10.0.0.9/s, fps: 0}\n")
    monkeypatch.setenv("GRIDWORKER_DETECTOR__THREADS", "many")
    monkeypatch.setenv("gridworker_patrol_plans", '[{"id": "p", "concurrency": 0}]')
    with pytest.raises(ConfigError) as err:
        load_settings(conf)
    text = str(err.value)
    assert "detector.threads (from the environment variable GRIDWORKER_DETECTOR__THREADS)" in text, text
    assert "patrol plan 'p' (patrol_plans[0]): concurrency (from the environment variable gridworker_patrol_plans)" in text, text
    # the file's own error stays the file's
    assert "camera 'filecam' (cameras[0]): fps: Input" in text, text
