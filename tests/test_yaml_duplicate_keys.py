"""A key repeated in one mapping of a YAML file is an error naming the key and both lines, not a
section silently dropped (review: two ``cameras:`` keys, ``check`` said OK with one camera)."""

from __future__ import annotations

import pytest
import yaml

from gridworker.cli import main
from gridworker.settings import ConfigError, load_settings
from gridworker.validation import DuplicateKeyError, load_yaml

DUPLICATED = """\
database: {url: "sqlite:///DB"}
cameras:
  - id: school-gate
    url: rtsp://10.0.0.1/s
    zones:
      - id: no-parking
        rules:
          - {type: illegal_parking}
        rules:
          - {type: crowd, min_count: 8}
detector: {confidence: 0.4}
cameras:
  - id: hospital
    url: rtsp://10.0.0.2/s
"""


def test_check_refuses_a_repeated_key_naming_every_one(tmp_path, capsys):
    conf = tmp_path / "dup.yaml"
    conf.write_text(DUPLICATED.replace("DB", str(tmp_path / "g.db")))
    assert main(["check", "--config", str(conf)]) == 2
    captured = capsys.readouterr()
    assert "OK" not in captured.out
    assert "key 'cameras' on line 12 repeats line 2" in captured.err, captured.err
    assert "key 'rules' on line 9 repeats line 7" in captured.err, captured.err
    with pytest.raises(ConfigError, match="invalid YAML: key 'cameras'"):
        load_settings(conf)


@pytest.mark.parametrize(
    ("text", "repeated"),
    [
        ("{a: 1, a: 2}", "key 'a' on line 1 repeats line 1"),
        ("a: 1\n'a': 2\n", "key 'a' on line 2 repeats line 1"),
        ("1: x\n0x1: y\n", "key 1 on line 2 repeats line 1"),
    ],
)
def test_repeats_in_any_spelling(text, repeated):
    with pytest.raises(DuplicateKeyError, match=repeated):
        load_yaml(text)
    assert issubclass(DuplicateKeyError, yaml.YAMLError)


def test_what_yaml_allows_still_loads():
    text = "base: &base {fps: 5, name: a}\ncam:\n  <<: *base\n  fps: 10\nother: [*base, *base]\n'1': x\n1: y\n"
    assert load_yaml(text) == {
        "base": {"fps": 5, "name": "a"},
        "cam": {"fps": 10, "name": "a"},  # a key beside a merge overrides the merged one
        "other": [{"fps": 5, "name": "a"}, {"fps": 5, "name": "a"}],
        "1": "x",
        1: "y",
    }
    assert load_yaml("") is None
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system [echo]")  # still a safe loader


def test_a_yaml_syntax_error_names_the_line_not_its_password(tmp_path, capsys):
    """PyYAML quotes the offending line in its message, and a config line holds a camera's URL:
    ``gridworker check`` printed the password (security review). The error says where and what."""
    conf = tmp_path / "bad.yaml"
    conf.write_text("cameras:\n  - id: gate\n    url: rtsp://admin:Sup3rS3cret@10.0.0.7/s: x\n")
    assert main(["check", "--config", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "mapping values are not allowed here" in err, err
    assert "Sup3rS3cret" not in err and "admin" not in err
    with pytest.raises(ConfigError) as caught:
        load_settings(conf)
    assert "Sup3rS3cret" not in str(caught.value) and "line 3, column" in str(caught.value)
