"""A config-file patrol plan may not take an id of the IoT linkage's watch plans (``iot-<device id>``,
``iot.linkage.PLAN_PREFIX``): the settings refuse it as the API does, and ``gridworker check``
lists it beside the file's other problems in one pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gridworker.cli import main
from gridworker.iot.linkage import PLAN_PREFIX
from gridworker.settings import ConfigError, load_settings

CAMS: list[dict[str, object]] = [{"id": "gate", "url": "rtsp://10.0.0.1/gate", "watch": "patrol"}]


def _write(tmp_path: Path, plans: list[dict[str, object]], cams: list[dict[str, object]] = CAMS) -> Path:
    path = tmp_path / "config.yaml"
    data = {"database": {"url": f"sqlite:///{tmp_path / 'g.db'}"}, "cameras": cams, "patrol_plans": plans}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _refusal(plan_id: str) -> str:
    return f"patrol plan {plan_id!r}: ids starting with {PLAN_PREFIX!r} are reserved for the IoT linkage's watches"


@pytest.mark.parametrize("plan_id", ["iot-gate", "iot-mhc-1"])
def test_loading_refuses_a_plan_id_with_the_reserved_prefix(tmp_path: Path, plan_id: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, [{"id": "am"}, {"id": plan_id, "select": {"camera_ids": ["gate"]}}]))
    lines = str(err.value).splitlines()
    assert f"  - {_refusal(plan_id)}" in lines, err.value
    assert "1 problem(s)" in lines[0] and "'am'" not in str(err.value)


def test_the_prefix_only_counts_at_the_start(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, [{"id": "my-iot-gate"}, {"id": "iot"}, {"id": "iotgate"}]))
    assert [p.id for p in settings.patrol_plans] == ["my-iot-gate", "iot", "iotgate"]


def test_check_lists_it_beside_the_files_other_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cams = [{**CAMS[0], "fps": 0}]  # a field error: the settings' own whole-config check never runs
    conf = _write(tmp_path, [{"id": "iot-gate", "select": {"camera_ids": ["ghost"]}}], cams)
    assert main(["check", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("  - ")]
    assert "3 problem(s)" in err, err
    assert f"  - {_refusal('iot-gate')}" in lines, err
    assert "  - patrol plan 'iot-gate': select.camera_ids names unknown camera(s) ['ghost']" in lines, err
    assert any(line.startswith("  - camera 'gate' (cameras[0]): fps") for line in lines), err


def test_check_refuses_it_when_everything_else_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _write(tmp_path, [{"id": "iot-gate", "select": {"camera_ids": ["gate"]}}])
    assert main(["check", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("  - ")] == [f"  - {_refusal('iot-gate')}"], err
    good = _write(tmp_path, [{"id": "gate-watch", "select": {"camera_ids": ["gate"]}}])
    assert main(["check", "--config", str(good)]) == 0
