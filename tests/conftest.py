"""Shared fixtures: generated clips, a real RTSP server (Debian's gst-rtsp-server), real media.

Fixtures (all skip cleanly, with the reason, when what they need is missing):

* ``sample_clip``   session  Path of a synthetic H.264 clip (4 s, 320x240, 10 fps, keyframe every 1 s).
* ``vtest_clip``    session  Path of Debian opencv-doc's ``vtest.avi`` transcoded to H.264 (first 10 s).
* ``gst_rtsp``      session  Skips unless ``streams/rtsp_server.py`` can run here.
* ``rtsp_server``   session  A running RtspServerProcess with mounts ``cam`` and ``cam2`` (both
                             ``sample_clip``). Shared: never pause/kill/restart it in a test.
* ``rtsp_factory``  function ``rtsp_factory(mounts, **kwargs) -> RtspServerProcess`` (started);
                             every server it made is stopped at teardown. Use it for servers
                             a test will pause, kill or restart.
* ``shared_media``  session  Path of ``../shared/media`` (real street clips), skip if absent.

Tests that use the RTSP fixtures get the ``rtsp`` marker and tests that use ``shared_media``
the ``media`` marker automatically (select with ``-m rtsp`` / ``-m "not media"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gridworker.streams.clips import synthetic_clip, transcode_h264
from gridworker.streams.rtsp_serve import RtspServerProcess, gst_rtsp_unavailable_reason

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO_ROOT.parent / "shared" / "media"
OPENCV_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")

_RTSP_FIXTURES = {"gst_rtsp", "rtsp_server", "rtsp_factory"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _RTSP_FIXTURES:
            item.add_marker(pytest.mark.rtsp)
        if "shared_media" in names:
            item.add_marker(pytest.mark.media)


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def sample_clip(clips_dir: Path) -> Path:
    """Synthetic moving shapes; bottom eighth of every frame is pure blue (RGB 0,0,255)."""
    return synthetic_clip(clips_dir / "synthetic.mp4", seconds=4, size=(320, 240), fps=10, gop=10)


@pytest.fixture(scope="session")
def vtest_clip(clips_dir: Path) -> Path:
    """Real pedestrians (Debian ``opencv-doc``'s sample video) as H.264, 768x576, 10 fps."""
    if not OPENCV_VTEST.is_file():
        pytest.skip(f"{OPENCV_VTEST} absent: apt-get install opencv-doc")
    return transcode_h264(OPENCV_VTEST, clips_dir / "vtest.mp4", max_seconds=10)


@pytest.fixture(scope="session")
def gst_rtsp() -> None:
    reason = gst_rtsp_unavailable_reason()
    if reason is not None:
        pytest.skip(
            "gst-rtsp-server unavailable "
            f"({reason}); apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi "
            "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
        )


@pytest.fixture(scope="session")
def rtsp_server(gst_rtsp: None, sample_clip: Path) -> Iterator[RtspServerProcess]:
    with RtspServerProcess({"cam": sample_clip, "cam2": sample_clip}) as server:
        yield server


@pytest.fixture
def rtsp_factory(gst_rtsp: None) -> Iterator[Callable[..., RtspServerProcess]]:
    servers: list[RtspServerProcess] = []

    def make(mounts: Mapping[str, str | Path], **kwargs: Any) -> RtspServerProcess:
        server = RtspServerProcess(mounts, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real clips not present at {SHARED_MEDIA}")
    return SHARED_MEDIA
