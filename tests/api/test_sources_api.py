"""Through the HTTP API a camera is a network camera, nothing else, and viewers learn nothing
about the machine from a camera's errors.

Real parts only: the app around a real Service, real files (one holding a secret, one the
video a file source would play), a named pipe that reports any reader, TCP sockets listening
on 127.0.0.1 that count connections, and the real RTSP server for a camera that fails.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import CameraConfig, Settings
from gridworker.streams.sources import SourceError

from tests.factories import ParkedCarDetector, free_port, local_client, wait_until
from tests.streams.live_servers import FifoWatch, Listener

SECRET = "hmac-secret-5e1d0c"


@pytest.fixture
def media(tmp_path: Path, sample_clip: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    (media / "gate.mp4").write_bytes(sample_clip.read_bytes())
    (media / "config.yaml").write_text(f"forwarding:\n  secret: {SECRET}\n")
    return media


def _service(tmp_path: Path, media: Path, **extra) -> tuple[Service, dict[str, dict[str, str]]]:
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'sources.db'}"}, media_dir=media, evidence={"clips": False}, **extra)
    service = Service(settings, ParkedCarDetector())
    keys = {role: {"X-API-Key": create_key(service.keys, name=role, role=role)[1]} for role in ("admin", "viewer")}
    return service, keys


def test_post_cameras_takes_network_cameras_only(tmp_path: Path, media: Path):
    service, keys = _service(tmp_path, media)
    listen_port = free_port()
    with Listener() as http_port, Listener() as tcp_port, FifoWatch(media / "pipe") as fifo:
        with local_client(create_app(lambda: service)) as client:
            secret_file, video = media / "config.yaml", media / "gate.mp4"
            cases = [
                (str(video), "file sources"),  # inside media_dir: still not through the API
                (f"file://{video}", "file sources"),
                ("/etc/shadow", "file sources"),
                (str(fifo.path), "file sources"),
                (f"concat:{secret_file}|{fifo.path}", "protocol prefixes"),
                (f"subfile,,start,0,end,100,,:{secret_file}", "protocol prefixes"),
                (f"http:127.0.0.1:{http_port.port}/x", "protocol prefixes"),
                (f"tcp:127.0.0.1:{tcp_port.port}", "protocol prefixes"),
                (f"tcp:127.0.0.1:{listen_port}?listen=1", "protocol prefixes"),
                ("data:video/mp4;base64,AAAA", "protocol prefixes"),
                (f"tcp://127.0.0.1:{tcp_port.port}", "unsupported URL scheme 'tcp'"),
                (f"udp://127.0.0.1:{tcp_port.port}", "unsupported URL scheme 'udp'"),
                (f"http://127.0.0.1:{http_port.port}/x|{secret_file}", "control character"),
                (f"rtsp://127.0.0.1:{tcp_port.port}/a\tb", "control character"),
                ("rtsp:///nohost", "no host"),
            ]
            for i, (url, says) in enumerate(cases):
                r = client.post("/cameras", json={"id": f"c{i}", "url": url}, headers=keys["admin"])
                assert r.status_code == 422, (url, r.status_code, r.text)
                assert says in r.text and SECRET not in r.text, (url, r.text)
            # the reader's tuning is typed: it has no url of its own (this was a 500)
            r = client.post(
                "/cameras",
                json={"id": "tuned", "url": f"rtsp://127.0.0.1:{tcp_port.port}/s", "stream": {"url": f"concat:{secret_file}"}},
                headers=keys["admin"],
            )
            assert r.status_code == 422 and "stream" in r.text and "url" in r.text, r.text
            time.sleep(0.5)  # time for any stray open to reach a socket or the pipe
            assert client.get("/cameras", headers=keys["admin"]).json() == []
        with pytest.raises(SourceError, match="file sources"):  # the service refuses too, whoever calls it
            service.add_camera(CameraConfig(id="direct", url=str(media / "gate.mp4")))
        assert http_port.connections == 0 and tcp_port.connections == 0, (http_port.received, tcp_port.received)
        assert not fifo.opened
    with pytest.raises(OSError):  # no listening socket was opened for tcp:...?listen=1
        socket.create_connection(("127.0.0.1", listen_port), timeout=0.5).close()


def test_a_saved_file_camera_is_not_brought_back(tmp_path: Path, media: Path):
    """A file camera saved through the API by an older version stays off after an upgrade."""
    service, keys = _service(tmp_path, media)
    service.store.cameras.put("old", CameraConfig(id="old", url=str(media / "gate.mp4")).model_dump_json())
    with local_client(create_app(lambda: service)) as client:
        assert [c["id"] for c in client.get("/cameras", headers=keys["admin"]).json()] == []


def test_viewers_see_only_the_kind_of_a_stream_error(tmp_path: Path, media: Path, rtsp_server):
    """Admins read why a camera fails (redacted); viewers only that it fails: not whether a file
    exists, not what a server answered."""
    cameras = [
        {"id": "missing", "url": str(media / "absent.mp4")},
        {"id": "nomount", "url": f"{rtsp_server.base_url}/nope"},
        {"id": "live", "url": rtsp_server.url("cam")},
    ]
    service, keys = _service(tmp_path, media, cameras=cameras)
    with local_client(create_app(lambda: service)) as client:

        def errors(role: str) -> dict[str, str | None]:
            return {c["id"]: c["health"]["last_error"] for c in client.get("/cameras", headers=keys[role]).json()}

        wait_until(lambda: errors("admin")["missing"] and errors("admin")["nomount"], timeout=20)
        admin = errors("admin")
        assert "absent.mp4" in (admin["missing"] or "") and "404" in (admin["nomount"] or "")
        viewer = errors("viewer")
        assert viewer == {"missing": "cannot open the stream", "nomount": "cannot open the stream", "live": None}
        one = client.get("/cameras/nomount", headers=keys["viewer"]).json()["health"]["last_error"]
        assert one == "cannot open the stream"
        assert "404" in client.get("/cameras/nomount", headers=keys["admin"]).json()["health"]["last_error"]
