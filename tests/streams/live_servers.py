"""Real peers for the source tests: an RTMP server (nginx with Debian's ``libnginx-mod-rtmp``)
fed by a PyAV publisher, an HLS playlist served over HTTP, and listening sockets that count
who connects. Nothing here is a mock: the readers talk to them over 127.0.0.1.

* :class:`NginxRtmp`: ``nginx`` in the foreground with its own config in a temporary folder,
  on a free port. ``publish(name, clip)`` pushes an H.264 clip as FLV at real-time pace, looped
  with continuous timestamps, so ``url(name)`` plays like a live RTMP camera.
* :func:`write_hls`: an HLS playlist (``index.m3u8``, MPEG-TS segments) cut from a clip by PyAV's
  HLS muxer; :class:`HttpFiles` serves a folder and records every request path.
* :class:`Listener`: a TCP socket listening on 127.0.0.1 that accepts and counts connections.
* :class:`FifoWatch`: a named pipe that tells whether anyone opened it for reading.
"""

from __future__ import annotations

import errno
import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import av
import pytest

from tests.factories import BackgroundLoop, free_port

NGINX = Path("/usr/sbin/nginx")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX_HINT = "apt-get install libnginx-mod-rtmp (scripts/setup.sh --test installs it)"


def require_nginx_rtmp() -> None:
    """Fail (not skip: CI installs it) when nginx or its RTMP module is missing."""
    missing = [str(p) for p in (NGINX, RTMP_MODULE) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: {NGINX_HINT}")


class RtmpPublisher:
    """Pushes ``clip`` to ``url`` as FLV at the clip's pace, looped, in a thread, until stopped."""

    def __init__(self, url: str, clip: Path) -> None:
        self.url, self.clip = url, clip
        self.error: BaseException | None = None
        self.packets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rtmp-publish-{url}", daemon=True)

    def start(self) -> RtmpPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            with av.open(self.url, "w", format="flv", timeout=(5, 5)) as out:
                ostream = None
                offset = 0  # in the output stream's time base: loops continue the timeline
                t0 = time.monotonic()
                while not self._stop.is_set():
                    with av.open(str(self.clip)) as inp:
                        istream = inp.streams.video[0]
                        if ostream is None:
                            ostream = out.add_stream_from_template(istream)
                        last = 0
                        for packet in inp.demux(istream):
                            if packet.dts is None or packet.pts is None or self._stop.is_set():
                                continue
                            packet.pts, packet.dts = packet.pts + offset, packet.dts + offset
                            last = max(last, packet.dts + (packet.duration or 0))
                            ahead = float(packet.dts * packet.time_base) - (time.monotonic() - t0)
                            if ahead > 0:
                                self._stop.wait(ahead)
                            packet.stream = ostream
                            out.mux(packet)
                            self.packets += 1
                        offset = last
        except BaseException as exc:  # noqa: BLE001 - reported by the test through .error
            if not self._stop.is_set():
                self.error = exc


class NginxRtmp:
    """nginx with the RTMP module, in the foreground, configured in ``workdir``.

    Example:
        >>> with NginxRtmp(tmp_path) as server:
        ...     server.publish("cam", clip)
        ...     url = server.url("cam")   # rtmp://127.0.0.1:PORT/live/cam
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._publishers: list[RtmpPublisher] = []

    def url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{name}"

    def start(self) -> NginxRtmp:
        require_nginx_rtmp()
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            f"""load_module {RTMP_MODULE};
daemon off;
master_process off;
worker_processes 1;
error_log {self.workdir / 'error.log'} info;
pid {self.workdir / 'nginx.pid'};
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        application live {{ live on; record off; }}
    }}
}}
""",
            encoding="utf-8",
        )
        self._proc = subprocess.Popen(
            [str(NGINX), "-c", str(conf), "-p", str(self.workdir), "-e", str(self.workdir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self._proc.stderr.read().decode(errors='replace') if self._proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}: {self.log_tail()}")

    def publish(self, name: str, clip: Path) -> RtmpPublisher:
        publisher = RtmpPublisher(self.url(name), clip).start()
        self._publishers.append(publisher)
        return publisher

    def log_tail(self, max_chars: int = 2000) -> str:
        log = self.workdir / "error.log"
        return log.read_text(errors="replace")[-max_chars:] if log.exists() else ""

    def stop(self) -> None:
        for publisher in self._publishers:
            publisher.stop()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()

    def __enter__(self) -> NginxRtmp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_hls(clip: Path, out_dir: Path, *, segment_s: float = 1.0) -> Path:
    """Cut ``clip`` into an HLS VOD playlist with MPEG-TS segments; returns ``out_dir/index.m3u8``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    playlist = out_dir / "index.m3u8"
    options = {"hls_time": str(segment_s), "hls_list_size": "0", "hls_playlist_type": "vod"}
    with av.open(str(clip)) as inp, av.open(str(playlist), "w", format="hls", options=options) as out:
        istream = inp.streams.video[0]
        ostream = out.add_stream_from_template(istream)
        for packet in inp.demux(istream):
            if packet.dts is None:
                continue
            packet.stream = ostream
            out.mux(packet)
    return playlist


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


class ServedHttp:
    """A real ``http.server`` on 127.0.0.1 (a free port) that answers from a thread while its
    ``with`` block runs; a subclass passes the request handler (a folder's files, generated tiles)."""

    def __init__(self, handler: Callable[..., http.server.BaseHTTPRequestHandler], name: str) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class HttpFiles(ServedHttp):
    """A real HTTP server (``http.server``) for one folder on 127.0.0.1; ``paths`` lists every
    request it answered."""

    def __init__(self, directory: Path) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                super().do_GET()

        super().__init__(functools.partial(Handler, directory=str(directory)), "http-files")


class Listener(BackgroundLoop):
    """A TCP socket listening on 127.0.0.1; counts the connections that arrive (and what they sent)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        super().__init__(f"listener-{self.port}")

    def loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(0.5)
                try:
                    self.received += conn.recv(4096)
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


class FifoWatch(BackgroundLoop):
    """A named pipe at ``path``; ``opened`` turns True once any process opens it for reading.

    A writer's non-blocking open of a FIFO fails with ENXIO while no reader has it open, so a
    thread polling that open sees every reader (and then writes nothing and closes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = False
        super().__init__(f"fifo-{path.name}")

    def loop(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                self._stop.wait(0.005)
                continue
            self.opened = True
            os.close(fd)
            return


def copy_segment(playlist: Path, dest: Path) -> Path:
    """A real MPEG-TS segment of ``playlist``'s folder copied to ``dest`` (a decodable video file)."""
    shutil.copyfile(playlist.parent / "index0.ts", dest)
    return dest
