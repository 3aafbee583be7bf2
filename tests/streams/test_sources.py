"""Camera sources are cameras, nothing else (streams/sources.py).

* The syntax table: network schemes pass, FFmpeg's protocol prefixes and odd characters fail.
* Nothing is read or contacted: real files holding a secret, named pipes that report any
  reader, and sockets listening on 127.0.0.1 that count connections, against the readers
  themselves (StreamConfig, CameraStream, glance), not only the API in front of them.
* FFmpeg's whitelists hold: an HLS playlist served over HTTP whose segment is ``file://`` is
  not followed; a local playlist or ffconcat file (which plain FFmpeg follows, shown as a
  control) is refused as a file source.
* RTMP (nginx + libnginx-mod-rtmp, fed by a PyAV publisher) and HLS (served over HTTP) are
  real ingest: both give frames through the stream reader and through a patrol glance.
* ``media_dir``: the config file's file sources must resolve inside it (symlinks, ``..``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from pydantic import ValidationError

from gridworker.settings import ConfigError, Settings, load_settings
from gridworker.streams import StreamConfig, StreamState
from gridworker.streams.glance import glance
from gridworker.streams.sources import FileSource, NetworkSource, SourceError, parse_source, require_network

from tests.streams.live_servers import FifoWatch, HttpFiles, Listener, NginxRtmp, copy_segment, write_hls
from tests.streams.stream_helpers import wait_until

from tests.factories import free_port

SECRET = "TOP-SECRET-7f3a9c"


# ---------------------------------------------------------------------------- syntax
@pytest.mark.parametrize(
    ("url", "kind", "error"),
    [
        ("rtsp://cam.local/stream1", NetworkSource, None),
        ("RTSPS://u:p@cam.local:322/s", NetworkSource, None),
        ("rtmp://10.0.0.9/live/gate", NetworkSource, None),
        ("rtmps://cdn.example/live/gate", NetworkSource, None),
        ("http://cam.local/hls/index.m3u8", NetworkSource, None),
        ("https://cdn.example/live.m3u8?token=abc", NetworkSource, None),
        ("rtsp://[::1]:8554/cam", NetworkSource, None),
        ("/srv/media/gate.mp4", FileSource, None),
        ("clips/gate.mp4", FileSource, None),
        ("/srv/media/a b.mp4", FileSource, None),
        ("file:///srv/media/a%20b.mp4", FileSource, None),
        ("concat:/etc/passwd|/etc/hostname", None, "protocol prefixes"),
        ("subfile,,start,0,end,100,,:/etc/passwd", None, "protocol prefixes"),
        ("http:127.0.0.1:8080/x", None, "protocol prefixes"),
        ("tcp:127.0.0.1:9000?listen=1", None, "protocol prefixes"),
        ("data:video/mp4;base64,AAAA", None, "protocol prefixes"),
        ("file:/etc/passwd", None, "protocol prefixes"),
        ("rtsp:/cam.local/s", None, "protocol prefixes"),
        ("tcp://127.0.0.1:9000?listen=1", None, "unsupported URL scheme 'tcp'"),
        ("udp://127.0.0.1:5000", None, "unsupported URL scheme 'udp'"),
        ("ftp://cam.local/x", None, "unsupported URL scheme 'ftp'"),
        ("crypto+http://cam.local/x", None, "unsupported URL scheme"),
        ("hls+http://cam.local/x.m3u8", None, "unsupported URL scheme"),
        ("rtsp:///nohost", None, "no host"),
        ("rtsp://:pw@/x", None, "no host"),
        ("rtsp://cam.local:99999/s", None, "not a valid URL"),
        ("rtsp://cam.local/s|/etc/passwd", None, "control character"),
        ("rtsp://cam.local/s\n", None, "control character"),
        ("rtsp://cam.local/a b", None, "whitespace"),
        (" /srv/media/gate.mp4", None, "whitespace"),
        ("file://otherhost/etc/passwd", None, "names a host"),
        ("file:///a%7Cb", None, "control character"),
        ("", None, "empty"),
    ],
)
def test_parse_source_table(url, kind, error):
    if error is None:
        assert isinstance(parse_source(url), kind)
        assert StreamConfig(url=url).source == parse_source(url)
        return
    with pytest.raises(SourceError, match=error):
        parse_source(url)
    with pytest.raises(ValidationError):  # the reader's config runs the same check
        StreamConfig(url=url)


def test_rejections_never_echo_a_secret():
    for url in (f"rtsp://u:{SECRET}@h/s|x", f"rtsp://h/s?pwd={SECRET} x", f"ftp://h/x?token={SECRET}", f"rtsp://h:99999/s;password={SECRET}"):
        with pytest.raises(SourceError) as info:
            parse_source(url)
        assert SECRET not in str(info.value)


def test_require_network_refuses_files():
    assert require_network("rtmp://10.0.0.9/live/gate").scheme == "rtmp"
    for url in ("/srv/media/gate.mp4", "file:///srv/media/gate.mp4"):
        with pytest.raises(SourceError, match="file sources"):
            require_network(url)


@pytest.mark.parametrize(
    ("url", "fmt", "protocols"),
    [
        ("rtsp://h/s", "rtsp", {"rtsp", "tcp"}),
        ("rtsps://h/s", "rtsp", {"rtsp", "rtsps", "tcp", "tls"}),
        ("rtmp://h/live/a", "flv", {"rtmp", "tcp"}),
        ("rtmps://h/live/a", "flv", {"rtmp", "rtmps", "tcp", "tls"}),
        ("http://h/a.m3u8", "hls", {"http", "tcp", "crypto"}),
        ("https://h/a.m3u8", "hls", {"http", "https", "tcp", "tls", "crypto"}),
        ("/srv/media/a.mp4", None, {"file"}),
    ],
)
def test_open_args_whitelist_only_what_the_scheme_needs(url, fmt, protocols):
    args = parse_source(url).open_args().with_options({"protocol_whitelist": "file,concat", "rw_timeout": "1"})
    assert args.format == fmt
    assert set(args.options["protocol_whitelist"].split(",")) == protocols  # a caller cannot widen it
    assert not {"concat", "subfile", "data", "udp", "pipe", "fd"} & set(args.options["protocol_whitelist"].split(","))
    assert "concat" not in args.options["format_whitelist"] and "image2" not in args.options["format_whitelist"]
    assert args.options["rw_timeout"] == "1"


# ---------------------------------------------------------------------------- nothing read or contacted
@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(f"webhook_secret: {SECRET}\n")
    return path


def test_prefixed_urls_open_nothing_at_the_reader_level(tmp_path: Path, secret_file: Path):
    """StreamConfig refuses them, and glance (which takes a raw URL) fails before FFmpeg: no
    socket gets a connection, no pipe gets a reader, no tcp listen socket appears."""
    listen_port = free_port()  # where tcp:...?listen=1 would open a listening socket
    with Listener() as http_port, Listener() as tcp_port, FifoWatch(tmp_path / "pipe") as fifo:
        urls = [
            f"http:127.0.0.1:{http_port.port}/x",
            f"tcp:127.0.0.1:{tcp_port.port}",
            f"tcp://127.0.0.1:{tcp_port.port}",
            f"tcp:127.0.0.1:{listen_port}?listen=1",
            f"concat:{fifo.path}|{secret_file}",
            f"subfile,,start,0,end,100,,:{fifo.path}",
            f"file:{fifo.path}",
            f"udp://127.0.0.1:{tcp_port.port}",
        ]
        for url in urls:
            with pytest.raises(ValidationError):
                StreamConfig(url=url)
            result = glance("probe", url, open_timeout_s=2, keyframe_timeout_s=2)
            assert result.error_kind == "open_failed" and not result.frames, (url, result)
            assert SECRET not in (result.error or "")
        time.sleep(0.3)
        assert http_port.connections == 0 and tcp_port.connections == 0
        assert not fifo.opened
    with pytest.raises(OSError):  # nobody listens where tcp:...?listen=1 pointed
        socket.create_connection(("127.0.0.1", listen_port), timeout=0.5).close()


def _hls_with_segment(directory: Path, segment: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    playlist = directory / "evil.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n")
    return playlist


@pytest.fixture(scope="module")
def hls_dir(tmp_path_factory: pytest.TempPathFactory, sample_clip: Path) -> Path:
    return write_hls(sample_clip, tmp_path_factory.mktemp("hls") / "live").parent


def test_hls_playlist_cannot_point_a_segment_at_a_local_file(tmp_path: Path, hls_dir: Path, camera):
    """A playlist served over real HTTP names file:// segments: a real, decodable video (the
    secret) and a named pipe. The reader and a glance get no frame and the pipe no reader."""
    secret_video = copy_segment(hls_dir / "index.m3u8", tmp_path / "secret.ts")
    with av.open(str(secret_video)) as control:  # the file itself is a video FFmpeg would decode
        assert next(control.decode(video=0)) is not None
    serve = tmp_path / "www"
    _hls_with_segment(serve / "a", f"file://{secret_video}")
    with FifoWatch(tmp_path / "pipe.ts") as fifo:
        _hls_with_segment(serve / "b", f"file://{fifo.path}")
        with HttpFiles(serve) as http:
            cams = [camera(name, f"{http.base}/{name}/evil.m3u8") for name in ("a", "b")]
            for cam in cams:
                wait_until(lambda: cam.health().last_error, timeout=10, what=f"{cam.camera_id} fails")
            for name in ("a", "b"):
                result = glance(name, f"{http.base}/{name}/evil.m3u8", open_timeout_s=3, keyframe_timeout_s=3)
                assert not result.ok and not result.frames
            assert all(cam.health().frames_decoded == 0 and cam.health().state is not StreamState.LIVE for cam in cams)
            assert {"/a/evil.m3u8", "/b/evil.m3u8"} <= set(http.paths)  # the playlists were fetched
        assert not fifo.opened


@pytest.mark.parametrize("kind", ["hls", "ffconcat"])
def test_local_playlists_are_not_file_sources(tmp_path: Path, hls_dir: Path, sample_clip: Path, kind: str):
    """A file source is a video, not a list of other files: plain FFmpeg follows a local HLS
    playlist or an ffconcat file (the control), the reader's whitelists refuse both."""
    if kind == "hls":
        listing = hls_dir / "index.m3u8"
    else:
        listing = tmp_path / "list.ffconcat"
        listing.write_text(f"ffconcat version 1.0\nfile '{sample_clip}'\n")
        listing = listing.rename(tmp_path / "list.mp4")  # an innocent name: the content is probed
    with av.open(str(listing), options={"safe": "0"}) as control:
        assert next(control.decode(video=0)) is not None
    result = glance("local", str(listing), open_timeout_s=3, keyframe_timeout_s=3)
    assert result.error_kind == "open_failed" and not result.frames, result


# ---------------------------------------------------------------------------- real RTMP and HLS ingest
def test_rtmp_camera_through_nginx(tmp_path: Path, sample_clip: Path, camera):
    with NginxRtmp(tmp_path / "nginx") as server:
        publisher = server.publish("gate", sample_clip)
        wait_until(lambda: publisher.packets > 5 or publisher.error, timeout=10, what="publisher running")
        assert publisher.error is None, publisher.error
        cam = camera("rtmp-gate", server.url("gate"))
        frame = cam.wait(after_seq=-1, timeout=15)
        assert frame is not None, (cam.health(), server.log_tail())
        assert frame.image.shape == (240, 320, 3)
        assert cam.health().state is StreamState.LIVE
        result = glance("rtmp-gate", server.url("gate"), keyframes=1, open_timeout_s=5, keyframe_timeout_s=8)
        assert result.ok and result.frames[0].image.shape == (240, 320, 3), result


def test_hls_camera_over_http(hls_dir: Path, camera):
    with HttpFiles(hls_dir) as http:
        url = f"{http.base}/index.m3u8"
        cam = camera("hls-gate", url)
        frame = cam.wait(after_seq=-1, timeout=15)
        assert frame is not None, cam.health()
        assert frame.image.shape == (240, 320, 3)
        result = glance("hls-gate", url, keyframes=1, open_timeout_s=5, keyframe_timeout_s=8)
        assert result.ok and result.frames[0].image.shape == (240, 320, 3), result
        assert "/index.m3u8" in http.paths and any(p.endswith(".ts") for p in http.paths)


def test_a_live_rtmp_stream_that_is_not_published_times_out(tmp_path: Path, camera):
    """No publisher: the camera reports a failure (and keeps retrying) instead of hanging."""
    with NginxRtmp(tmp_path / "nginx") as server:
        cam = camera("rtmp-none", server.url("nobody"))
        wait_until(lambda: cam.health().last_error, timeout=15, what="a failure is reported")
        assert cam.health().last_error_kind in ("timeout", "open_failed", "ended")


# ---------------------------------------------------------------------------- media_dir (the config file's policy)
@pytest.fixture
def media(tmp_path: Path, sample_clip: Path) -> Iterator[Path]:
    media = tmp_path / "media"
    media.mkdir()
    (media / "gate.mp4").write_bytes(sample_clip.read_bytes())
    (tmp_path / "outside.mp4").write_bytes(sample_clip.read_bytes())
    (media / "link.mp4").symlink_to(tmp_path / "outside.mp4")
    yield media


@pytest.mark.parametrize(
    ("url", "media_dir", "error"),
    [
        ("{media}/gate.mp4", "{media}", None),
        ("file://{media}/gate.mp4", "{media}", None),
        ("{media}/gate.mp4", None, "needs media_dir"),
        ("{tmp}/outside.mp4", "{media}", "outside media_dir"),
        ("{media}/../outside.mp4", "{media}", "outside media_dir"),
        ("{media}/link.mp4", "{media}", "outside media_dir"),  # a symlink out of the folder
        ("/etc/passwd", "{media}", "outside media_dir"),
        ("rtsp://10.0.0.7/s", None, None),  # network cameras need no media_dir
    ],
)
def test_file_sources_only_under_media_dir(tmp_path: Path, media: Path, url: str, media_dir: str | None, error: str | None):
    def fill(text: str) -> str:
        return text.format(media=media, tmp=tmp_path)

    config = tmp_path / "gw.yaml"
    lines = [f"media_dir: {fill(media_dir)}"] if media_dir else []
    lines += ["cameras:", "  - id: gate", f"    url: {fill(url)}"]
    config.write_text("\n".join(lines) + "\n")
    if error is None:
        assert load_settings(config).cameras[0].url == fill(url)
        return
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    message = str(info.value)
    assert error in message and "camera 'gate'" in message and "url" in message


def test_stream_section_is_typed_and_has_no_url():
    with pytest.raises(ValidationError, match="stream.url"):
        Settings(cameras=[{"id": "a", "url": "rtsp://h/s", "stream": {"url": "concat:/etc/passwd"}}])
    cam = Settings(cameras=[{"id": "a", "url": "rtsp://h/s", "stream": {"open_timeout_s": 3}}]).cameras[0]
    assert cam.stream_config().open_timeout_s == 3
    assert cam.model_dump()["stream"] == {"open_timeout_s": 3}  # only what was set is saved
