"""docs/cameras.md's file-camera example is true: as written (with its folder swapped for a temporary
one) it is a valid config whose camera plays the file through the whole pipeline to an incident,
and the restriction it documents holds (outside media_dir, or no media_dir: refused, naming the
camera)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from gridworker.incidents import IncidentQuery
from gridworker.service import Service
from gridworker.settings import ConfigError, load_settings
from tests.factories import ParkedCarDetector, wait_until

DOC = Path(__file__).resolve().parents[1] / "docs" / "cameras.md"
DOC_DIR = "/srv/gridworker/media"


def _example(media: Path) -> dict:
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S) if "media_dir" in b]
    return yaml.safe_load(block.replace(DOC_DIR, str(media)))


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_the_documented_file_camera_runs_to_an_incident(tmp_path, sample_clip):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sample_clip, media / "gate-0302.mp4")
    doc = _example(media)
    (cam,) = doc["cameras"]
    assert cam["url"] == str(media / "gate-0302.mp4") and cam["stream"] == {"realtime": True, "loop": True}
    cam["zones"][0]["rules"][0]["min_duration_s"] = 1.0  # the doc's 60 s, shortened for the test
    doc["database"] = {"url": f"sqlite:///{tmp_path / 'files.db'}"}
    settings = load_settings(_write(tmp_path, doc))
    service = Service(settings, ParkedCarDetector())
    service.start()
    try:
        wait_until(lambda: service.camera("gate-replay").health.state.value == "live", timeout=15)
        inc = wait_until(lambda: service.store.list(IncidentQuery(camera_id="gate-replay"))[0], timeout=20)[0]
        assert inc.type == "illegal_parking" and inc.camera_name == "East gate, recording of 2 March"
        # the 4 s file loops: still analysed well after its end, at about its fps
        wait_until(lambda: service.camera("gate-replay").frames_analysed >= 30, timeout=20)
    finally:
        service.stop()
    assert service.camera("gate-replay").config.public_url() == str(media / "gate-0302.mp4")


@pytest.mark.parametrize("variant", ["file-url", "outside", "no-media-dir", "dotdot"])
def test_the_documented_restriction(tmp_path, sample_clip, variant):
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(sample_clip, media / "gate-0302.mp4")
    shutil.copy(sample_clip, tmp_path / "elsewhere.mp4")
    doc = _example(media)
    cam = doc["cameras"][0]
    if variant == "file-url":
        cam["url"] = (media / "gate-0302.mp4").as_uri()
        assert load_settings(_write(tmp_path, doc)).cameras[0].url.startswith("file:///")
        return
    if variant == "outside":
        cam["url"] = str(tmp_path / "elsewhere.mp4")
    elif variant == "dotdot":
        cam["url"] = str(media / ".." / "elsewhere.mp4")
    else:
        del doc["media_dir"]
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, doc))
    text = str(err.value)
    assert "camera 'gate-replay' (cameras[0])" in text
    assert ("needs media_dir" if variant == "no-media-dir" else "outside media_dir") in text


def test_the_documented_stream_roles_example_is_a_valid_camera():
    from gridworker.settings import Settings

    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S) if "record_url" in b]
    (cam,) = Settings(**yaml.safe_load(block)).cameras
    assert cam.record_url is not None and cam.record_stream_config() is not None
    assert "secret" not in cam.public_record_url() and cam.record_stream_config().decode is False
