"""Stream roles: a camera detects on its substream and keeps evidence from its main stream.

A real gst-rtsp-server serves a 320x240 substream and a 640x480 main stream. The detect
reader decodes the substream; the record-only reader only buffers the main stream's packets
(nothing decoded); the incident's clip is cut from the main stream, at its resolution.
A full-resolution picture of the main stream comes on demand (its newest keyframe decoded).
The main stream's URL is checked like ``url`` and its password never shows.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from gridworker.api import create_app
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import synthetic_clip
from tests.factories import ParkedCarDetector, local_client, wait_until

ZONES = [
    {
        "id": "no-parking",
        "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]],
        "rules": [{"type": "dwell", "min_duration_s": 3.5, "clear_after_s": 30.0}],
    }
]


@pytest.fixture(scope="module")
def main_clip(tmp_path_factory) -> Path:
    return synthetic_clip(tmp_path_factory.mktemp("main") / "main.mp4", seconds=4, size=(640, 480), fps=10, gop=10)


def test_detect_on_the_substream_clip_from_the_main_stream(tmp_path, rtsp_factory, sample_clip, main_clip):
    server = rtsp_factory({"sub": sample_clip, "main": main_clip})
    main_url = server.url("main").replace("rtsp://", "rtsp://viewer:s3cret@")
    camera = {"id": "gate", "url": server.url("sub"), "record_url": main_url, "fps": 5, "zones": ZONES}
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'roles.db'}"}, evidence={"clip_pre_s": 2.0, "clip_post_s": 2.0}, cameras=[camera]
    )
    service = Service(settings, ParkedCarDetector())
    with local_client(create_app(lambda: service)) as client:
        inc = wait_until(lambda: (p := client.get("/incidents").json())["total"] and p["items"][0], timeout=30, interval=0.2)
        got = wait_until(lambda: (i := client.get(f"/incidents/{inc['id']}").json())["has_clip"] and i, timeout=15)
        clip = client.get(got["clip_url"])
        assert clip.status_code == 200
        path = tmp_path / "clip.mp4"
        path.write_bytes(clip.content)
        with av.open(str(path)) as c:
            frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (640, 480), "the clip comes from the main stream"
        # the analysed frames were the substream's
        last = service.pipeline.slot("gate").last
        assert last is not None and (last.frame.width, last.frame.height) == (320, 240)
        # a full-resolution picture of the main stream on demand (its newest keyframe, decoded now)
        main = client.get("/cameras/gate/frame.jpg", params={"stream": "main"})
        assert main.status_code == 200 and main.headers["content-type"] == "image/jpeg"
        import cv2
        import numpy as np

        picture = cv2.imdecode(np.frombuffer(main.content, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (480, 640, 3)
        analysed = cv2.imdecode(np.frombuffer(client.get("/cameras/gate/frame.jpg").content, np.uint8), cv2.IMREAD_COLOR)
        assert analysed.shape == (240, 320, 3)
        assert client.get("/cameras/gate/frame.jpg", params={"stream": "other"}).status_code == 422
        view = client.get("/cameras/gate").json()
        assert view["record_url"] is not None and "s3cret" not in view["record_url"] and "viewer" not in view["record_url"]
        assert "s3cret" not in client.get("/cameras").text


def test_the_main_stream_url_is_checked_like_the_camera_url(tmp_path):
    service = Service(Settings(database={"url": f"sqlite:///{tmp_path / 'r.db'}"}), ParkedCarDetector())
    with local_client(create_app(lambda: service)) as client:
        for bad in ["file:///etc/passwd", "concat:/etc/passwd|x", "/var/video.mp4", "gopher://u:topsecret@h/x"]:
            r = client.post("/cameras", json={"id": "x", "url": "rtsp://10.0.0.9/sub", "record_url": bad})
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["detail"][0]["loc"] == ["body", "record_url"] and "topsecret" not in r.text
        assert client.get("/cameras").json() == []
    with pytest.raises(ValueError, match="record_url"):
        Settings(cameras=[{"id": "x", "url": "rtsp://10.0.0.9/sub", "record_url": "gopher://h/x"}])
