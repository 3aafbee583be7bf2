"""Patrol in the service config: camera attributes, patrol-only cameras, plans, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gridworker.cli import main
from gridworker.settings import ConfigError, load_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "patrol.md"


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_config_example_in_docs_patrol_is_valid(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    example = next(b for b in blocks if "patrol_plans:" in b)
    settings = load_settings(_write(tmp_path, yaml.safe_load(example)))
    cam = settings.cameras[0]
    assert cam.watch == "patrol" and cam.patrol.site_type == "school" and cam.patrol.priority == 8
    assert settings.cameras[1].watch == "continuous"
    assert [p.id for p in settings.patrol_plans] == ["schools-am"]
    assert settings.pipeline.patrol_batch_slots == 4


def test_errors_name_the_plan_or_camera_and_the_key(tmp_path):
    cams = [{"id": "gate", "url": "rtsp://h/a", "watch": "patrol"}]
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, {"cameras": cams, "patrol_plans": [{"id": "am", "concurrency": 0}]}))
    assert "patrol plan 'am' (patrol_plans[0]): concurrency" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, {"cameras": [{**cams[0], "patrol": {"priority": 12}}]}))
    assert "camera 'gate' (cameras[0]): patrol.priority" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, {"cameras": [{**cams[0], "watch": "sometimes"}]}))
    assert "camera 'gate' (cameras[0]): watch" in str(err.value)
    with pytest.raises(ConfigError, match="used twice"):
        load_settings(_write(tmp_path, {"cameras": cams, "patrol_plans": [{"id": "a"}, {"id": "a"}]}))


def test_check_fails_clearly_on_a_plan_with_unknown_cameras(tmp_path, capsys):
    cams = [{"id": "gate", "url": "rtsp://h/a", "watch": "patrol", "patrol": {"site_type": "school"}}]
    bad = _write(tmp_path, {"cameras": cams, "patrol_plans": [{"id": "am", "select": {"camera_ids": ["gate", "ghost"]}}]})
    assert main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "patrol plan 'am'" in err and "ghost" in err and "select.camera_ids" in err
    good = _write(tmp_path, {"cameras": cams, "patrol_plans": [{"id": "am", "select": {"site_types": ["school"]}}]})
    assert main(["check", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "1 patrol plan(s)" in out and "gate: rtsp://h/a patrol only (school, priority 5)" in out
    assert "plan am: 1 camera(s), glance" in out
