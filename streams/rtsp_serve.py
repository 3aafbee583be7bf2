"""Run ``streams/rtsp_server.py`` (gst-rtsp-server) as a child process.

Used by the tests, by ``gridworker demo`` and by the benchmark to get real RTSP cameras
out of video files. The server needs Debian's GStreamer Python bindings and runs under
the system interpreter (``/usr/bin/python3``), not the project's virtualenv::

    apt-get install gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi \\
        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad

Example::

    with RtspServerProcess({"cam1": "street.mp4"}) as server:
        url = server.url("cam1")        # rtsp://127.0.0.1:PORT/cam1
        server.pause(); server.resume() # simulate a hung camera
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from .redact import get_logger

__all__ = [
    "SERVER_SCRIPT",
    "SYSTEM_PYTHON",
    "RtspServerProcess",
    "RtspServerUnavailable",
    "gst_rtsp_available",
    "gst_rtsp_unavailable_reason",
]

log = get_logger(__name__)

SYSTEM_PYTHON = os.environ.get("GRIDWORKER_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
_EXIT_UNAVAILABLE = 3


class RtspServerUnavailable(RuntimeError):
    """gst-rtsp-server (or the system Python with its GObject bindings) is not installed."""


@functools.cache
def _check(python: str) -> str | None:
    if not Path(python).exists():
        return f"{python} not found (gst-rtsp-server runs under the system Python)"
    try:
        proc = subprocess.run(
            [python, str(SERVER_SCRIPT), "--check"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {python}: {exc}"
    if proc.returncode == 0:
        return None
    reason = (proc.stdout + proc.stderr).strip().splitlines()
    return reason[-1] if reason else f"{python} {SERVER_SCRIPT.name} --check exited {proc.returncode}"


def gst_rtsp_unavailable_reason(python: str = SYSTEM_PYTHON) -> str | None:
    """Why the RTSP test server cannot run here (None if it can). Cached per interpreter."""
    return _check(python)


def gst_rtsp_available(python: str = SYSTEM_PYTHON) -> bool:
    """True if ``rtsp_server.py`` can run (system Python + GStreamer RTSP server + plugins)."""
    return _check(python) is None


class RtspServerProcess:
    """A gst-rtsp-server child process serving files as looping live RTSP streams.

    Args:
        mounts: mount name -> H.264 MP4 path (no B-frames; see ``streams/clips.py``).
        host: address to listen on.
        port: TCP port; 0 lets the server pick a free one (kept across :meth:`restart`).
        user: if given (with ``password``), clients must use RTSP basic auth.
        password: the password for ``user``.
        python: interpreter with the GStreamer bindings.
        ready_timeout_s: how long to wait for the server to listen.
        own_process_group: start the server in a process group of its own, so that a terminal's
            Ctrl-C (sent to the whole foreground group) reaches only the parent, which stops the
            server last (``gridworker demo``: its cameras do not see the server vanish first).
            It still exits with the parent: its stdin closes.

    Raises:
        RtspServerUnavailable: from :meth:`start` when GStreamer is missing.

    Example::

        server = RtspServerProcess({"gate": "gate.mp4"}).start()
        server.url("gate")      # 'rtsp://127.0.0.1:40123/gate'
        server.stop()
    """

    def __init__(
        self,
        mounts: Mapping[str, str | os.PathLike[str]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str | None = None,
        password: str | None = None,
        python: str = SYSTEM_PYTHON,
        ready_timeout_s: float = 20.0,
        own_process_group: bool = False,
    ) -> None:
        if not mounts:
            raise ValueError("at least one mount is required")
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.mounts = {name.strip("/"): Path(path) for name, path in mounts.items()}
        for name, path in self.mounts.items():
            if not path.is_file():
                raise FileNotFoundError(f"mount {name!r}: no such file {path}")
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.python = python
        self.ready_timeout_s = ready_timeout_s
        self.own_process_group = own_process_group
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RtspServerProcess:
        """Launch the server and wait until it listens. Returns self."""
        if self.running:
            raise RuntimeError("server already running")
        reason = gst_rtsp_unavailable_reason(self.python)
        if reason is not None:
            raise RtspServerUnavailable(reason)
        cmd = [self.python, str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port), "--exit-on-stdin-eof"]
        for name, path in self.mounts.items():
            cmd += ["--mount", f"{name}={path}"]
        env = dict(os.environ)
        if self.user is not None:
            cmd += ["--user", self.user]
            # the password goes through the environment, not argv (visible in `ps`)
            env["GRIDWORKER_RTSP_PASSWORD"] = self.password or ""
        for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # keep the venv out of /usr/bin/python3
            env.pop(var, None)
        if self._log_file is None:
            self._log_file = tempfile.NamedTemporaryFile(prefix="rtsp_server_", suffix=".log")  # noqa: SIM115 - closed in close()
        self._log_file.seek(0)  # the child shares this file offset
        self._log_file.truncate(0)
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,  # the server exits when this pipe closes (we died)
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=env,
            start_new_session=self.own_process_group,
        )
        self._wait_ready()
        log.info("rtsp server pid %d listening on rtsp://%s:%d", self._proc.pid, self.host, self.port)
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout_s
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise RuntimeError(f"RTSP server not ready after {self.ready_timeout_s:g} s: {self.log_tail()}")
                if sel.select(timeout=min(left, 0.5)):
                    chunk = os.read(self._proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buf += chunk
        line = buf.decode(errors="replace").strip().splitlines()[0] if buf.strip() else ""
        if line.startswith("READY "):
            self.port = int(line.rsplit(":", 1)[1])
            return
        code = self._proc.wait(timeout=5)
        if code == _EXIT_UNAVAILABLE or line.startswith("UNAVAILABLE"):
            raise RtspServerUnavailable(line or f"exit code {code}")
        raise RuntimeError(f"RTSP server exited with code {code}: {line} {self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM and wait (SIGKILL after ``timeout``). A paused server is resumed first."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._reap()
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("rtsp server pid %d ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait(timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL: the server dies at once (clients see the connection drop)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        self._reap()

    def pause(self) -> None:
        """SIGSTOP: the server hangs with its sockets open (a frozen camera).

        Returns once the process is stopped (signals are delivered asynchronously)."""
        self._signal(signal.SIGSTOP)
        self._wait_stopped(True)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`; returns once the process runs again."""
        self._signal(signal.SIGCONT)
        self._wait_stopped(False)

    def restart(self) -> RtspServerProcess:
        """Stop (if running) and start again on the same port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and delete its log file."""
        self.stop()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> RtspServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ info
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def base_url(self) -> str:
        return f"rtsp://{self.host}:{self.port}"

    def url(self, name: str, *, credentials: bool = True) -> str:
        """``rtsp://HOST:PORT/NAME``, with ``user:password@`` when auth is on (and ``credentials``)."""
        name = name.strip("/")
        if name not in self.mounts:
            raise KeyError(f"no mount {name!r}; mounts: {sorted(self.mounts)}")
        auth = ""
        if credentials and self.user is not None:
            auth = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@"
        return f"rtsp://{auth}{self.host}:{self.port}/{name}"

    def log_tail(self, max_chars: int = 2000) -> str:
        """The end of the server's stderr."""
        if self._log_file is None:
            return ""
        try:
            with open(self._log_file.name, "rb") as fh:
                data = fh.read()
        except OSError:
            return ""
        return data[-max_chars:].decode(errors="replace")

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError("server is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)

    def _wait_stopped(self, stopped: bool, timeout: float = 2.0) -> None:
        stat = Path(f"/proc/{self.pid}/stat")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # "pid (comm) S ...": the state letter follows the last ')'
                state = stat.read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                return  # no procfs: best effort
            if (state in ("T", "t")) == stopped:
                return
            time.sleep(0.005)
        log.warning("rtsp server pid %s: not %s after %.1f s", self.pid, "stopped" if stopped else "resumed", timeout)

    def _reap(self) -> None:
        proc = self._proc
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def __repr__(self) -> str:
        return f"RtspServerProcess({self.base_url}, mounts={sorted(self.mounts)}, running={self.running})"
