"""`gridworker check` lists every whole-config problem (unknown cameras of patrol plans, undefined
detectors, what exceeds the limits) in one pass, beside field errors and beside each other
(review: multi.yaml needed three runs: fps, then the plan, then 70 zones over limits.scene.zones)."""

from __future__ import annotations

import pytest

from gridworker.settings import ConfigError, Settings, load_settings, whole_config_problems
from tests.test_check_and_pace import _check_fails

ZONES = "".join(f"      - {{id: z{i}, polygon: [[0, 0], [1, 0], [1, 1]]}}\n" for i in range(70))


def test_field_errors_plans_and_limits_in_one_pass(tmp_path, capsys):
    err = _check_fails(
        tmp_path,
        capsys,
        "cameras:\n  - {id: a, url: rtsp://10.0.0.1/s, fps: 0}\n  - id: b\n    url: rtsp://10.0.0.2/s\n    zones:\n" + ZONES
        + "patrol_plans:\n  - {id: p, select: {camera_ids: [nope]}}\n",
    )
    assert "3 problem(s)" in err, err
    assert "camera 'a' (cameras[0]): fps: Input should be greater than 0" in err, err
    assert "patrol plan 'p': select.camera_ids names unknown camera(s) ['nope']" in err, err
    assert "camera 'b': 70 zones, more than limits.scene.zones (64)" in err, err


def test_every_whole_config_problem_once_when_the_fields_are_valid(tmp_path, capsys):
    """With every field valid, the settings' own check lists each problem on its own line, once."""
    err = _check_fails(
        tmp_path,
        capsys,
        "detectors: [{id: fall, model: ssd_mobilenet_v2_coco}]\n"
        "cameras:\n  - {id: a, url: rtsp://10.0.0.1/s, detectors: [default, falls]}\n"
        "  - id: b\n    url: rtsp://10.0.0.2/s\n    zones:\n" + ZONES
        + "patrol_plans:\n  - {id: p, select: {camera_ids: [nope], exclude: [gone]}}\n",
    )
    lines = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3 and "3 problem(s)" in err, err
    assert "  - camera 'a' (cameras[0]): detectors ['falls'] are not defined (known: ['default', 'fall'])" in lines, err
    assert "  - patrol plan 'p': select.camera_ids names unknown camera(s) ['nope']; select.exclude names unknown camera(s) ['gone']" in lines
    assert "  - camera 'b': 70 zones, more than limits.scene.zones (64)" in lines
    assert "Value error" not in err


def test_a_rules_detector_beside_a_field_error(tmp_path, capsys):
    err = _check_fails(
        tmp_path,
        capsys,
        "cameras:\n  - {id: a, url: rtsp://10.0.0.1/s, fps: 0, zones: [{id: z, rules: [{type: crowd, detector: fall}]}]}\n",
    )
    assert "fps" in err and "zone 'z' rule 'crowd': detector 'fall' is not one of the camera's detectors ['default']" in err, err
    assert "2 problem(s)" in err


def test_limits_from_the_environment_count_in_the_raw_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRIDWORKER_LIMITS__SCENE__ZONES", "100")
    err = _check_fails(tmp_path, capsys, "cameras:\n  - {id: a, url: rtsp://10.0.0.1/s, fps: 0}\n  - id: b\n    url: rtsp://10.0.0.2/s\n    zones:\n" + ZONES)
    assert "1 problem(s)" in err and "limits.scene.zones" not in err, err


def test_the_same_lines_from_the_file_and_from_the_settings():
    config = {
        "cameras": [{"id": "a", "url": "rtsp://10.0.0.1/s"}, {"id": "a", "url": "rtsp://10.0.0.2/s"}],
        "patrol_plans": [{"id": "p", "select": {"camera_ids": ["x"]}}],
        "limits": {"max_cameras": 1},
    }
    with pytest.raises(ConfigError) as err:
        load_settings(None, **config)
    text = str(err.value)
    for line in ("camera id 'a' is used twice", "patrol plan 'p': select.camera_ids names unknown camera(s) ['x']", "2 cameras, more than limits.max_cameras (1)"):
        assert text.count(line) == 1, text
    assert "3 problem(s)" in text, text
    good = Settings(cameras=[{"id": "a", "url": "rtsp://10.0.0.1/s"}])
    assert whole_config_problems(good.checked_view(), good.limits, None) == []
