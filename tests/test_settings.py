"""Config loading: valid files, environment overrides, and errors that name camera and key."""

import textwrap

import pytest

from gridworker.cli import main
from gridworker.settings import ConfigError, load_settings

GOOD = """
server: {port: 9001}
cameras:
  - id: gate-1
    name: East gate
    site: school
    url: rtsp://viewer:s3cr3tpw@10.0.0.5/stream1
    fps: 4
    zones:
      - id: no-parking
        polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
        rules:
          - {type: dwell, min_duration_s: 60}
          - {type: crowd, min_count: 3}
"""


def _write(tmp_path, text):
    p = tmp_path / "cameras.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_valid_config(tmp_path):
    s = load_settings(_write(tmp_path, GOOD))
    cam = s.cameras[0]
    assert (cam.id, cam.fps, s.server.port) == ("gate-1", 4, 9001)
    assert [r.type for r in cam.zones[0].rules] == ["dwell", "crowd"]
    assert "s3cr3tpw" not in cam.public_url()
    assert cam.stream_config().fps == 4


def test_environment_overrides_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDWORKER_SERVER__PORT", "9555")
    monkeypatch.setenv("GRIDWORKER_SERVER__HOST", "0.0.0.0")
    monkeypatch.setenv("GRIDWORKER_DATABASE__URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("GRIDWORKER_DETECTOR__THREADS", "1")
    s = load_settings(_write(tmp_path, GOOD))
    assert (s.server.port, s.server.host, s.database.url, s.detector.threads) == (9555, "0.0.0.0", "sqlite:///elsewhere.db", 1)


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("fps: 4", "fps: -1"), ["camera 'gate-1'", "fps", "greater than 0"]),
        (("fps: 4", "fpz: 4"), ["camera 'gate-1'", "fpz", "Extra inputs are not permitted"]),
        (("[1, 0.5], [1, 1]", "[1.7, 0.5], [1, 1]"), ["camera 'gate-1'", "zones.0.polygon", "outside 0..1"]),
        (("{type: crowd, min_count: 3}", "{type: crowds}"), ["camera 'gate-1'", "zones.0.rules.1", "crowds"]),
        (("rtsp://viewer", "ftp://viewer"), ["camera 'gate-1'", "url", "unsupported URL scheme"]),
        (("port: 9001", "port: 99999"), ["server.port"]),
        (("server:", "serverr:"), ["serverr", "Extra inputs are not permitted"]),
    ],
)
def test_errors_name_camera_and_key(tmp_path, mutation, expected):
    old, new = mutation
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, GOOD.replace(old, new, 1)))
    message = str(err.value)
    for fragment in expected:
        assert fragment in message, message
    assert "s3cr3tpw" not in message


def test_duplicate_camera_ids(tmp_path):
    text = GOOD + "  - {id: gate-1, url: 'rtsp://10.0.0.6/s'}\n"
    with pytest.raises(ConfigError, match="'gate-1' is used twice"):
        load_settings(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cameras: [unclosed", "invalid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_unreadable_yaml(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_settings(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")


def test_cli_check_reports_errors(tmp_path, capsys):
    bad = _write(tmp_path, GOOD.replace("fps: 4", "fps: 0"))
    assert main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "camera 'gate-1'" in err and "fps" in err and "s3cr3tpw" not in err
    good = _write(tmp_path, GOOD)
    assert main(["check", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "gate-1" in out and "s3cr3tpw" not in out
