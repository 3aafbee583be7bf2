from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gridworker.models import ExportError, export_ultralytics
from gridworker.models.cli import register


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridworker")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_every_subcommand_sets_func() -> None:
    parser = argparse.ArgumentParser(prog="gridworker")
    register(parser.add_subparsers(dest="command", required=True))
    for argv in (["detect", "x.jpg"], ["models", "export", "best.pt"], ["models", "list"]):
        assert callable(parser.parse_args(argv).func)


def test_models_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["models", "list"]) == 0
    assert "ssd_mobilenet_v2_coco" in capsys.readouterr().out.split()


@pytest.mark.model
def test_detect_json_lines(bus_path: Path, hopper_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    status = run(["detect", str(bus_path), str(broken), str(hopper_path), "--json", "--confidence", "0.5"])
    out = capsys.readouterr()
    assert status == 1  # one image could not be read
    assert "cannot read image" in out.err
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert len(lines) == 3 and lines[1] == []
    bus = lines[0]
    assert {row["label"] for row in bus} == {"person", "bus"}
    assert all(row["score"] >= 0.5 for row in bus)
    top = bus[0]
    assert set(top) == {"label", "score", "box"} and len(top["box"]) == 4
    assert top["label"] == "person" and top["box"][0] < top["box"][2] <= 810
    assert any(row["label"] == "person" for row in lines[2])


@pytest.mark.model
def test_detect_text(hopper_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["detect", str(hopper_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{hopper_path}: ") and "person" in out


def test_detect_with_missing_model(hopper_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["detect", str(hopper_path), "--model", "no_such_model"]) == 1
    assert "not found" in capsys.readouterr().err


def test_detect_with_bad_confidence(hopper_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["detect", str(hopper_path), "--confidence", "2"]) == 1
    assert "confidence" in capsys.readouterr().err


def test_export_missing_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExportError):
        export_ultralytics(tmp_path / "nope.pt")
    assert run(["models", "export", str(tmp_path / "nope.pt")]) == 1
    assert "error:" in capsys.readouterr().err


def test_export_rejects_bad_imgsz(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    with pytest.raises(ExportError, match="imgsz|missing"):
        export_ultralytics(weights, imgsz=100)
