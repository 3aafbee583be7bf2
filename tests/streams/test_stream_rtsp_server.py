"""The RTSP server script and its process wrapper, as a user of them sees them."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from gridworker.streams.rtsp_serve import (
    SERVER_SCRIPT,
    SYSTEM_PYTHON,
    RtspServerProcess,
    RtspServerUnavailable,
    gst_rtsp_available,
)


def test_server_script_imports_only_stdlib_and_gi():
    """It runs under /usr/bin/python3, which has neither the project nor the venv."""
    tree = ast.parse(SERVER_SCRIPT.read_text())
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert modules <= {"__future__", "argparse", "os", "signal", "sys", "typing", "gi"}, modules


def test_unavailable_python_raises_clear_error(sample_clip, tmp_path):
    missing = str(tmp_path / "no-python")
    assert gst_rtsp_available(missing) is False
    with pytest.raises(RtspServerUnavailable, match="not found"):
        RtspServerProcess({"cam": sample_clip}, python=missing).start()


def test_venv_python_without_gi_is_unavailable(sample_clip):
    # the project's interpreter has no GObject bindings: the script reports UNAVAILABLE
    try:
        import gi  # noqa: F401
    except ImportError:
        with pytest.raises(RtspServerUnavailable, match="UNAVAILABLE"):
            RtspServerProcess({"cam": sample_clip}, python=sys.executable).start()
    else:
        pytest.skip("this interpreter has gi")


def test_bad_arguments(gst_rtsp, tmp_path):
    proc = subprocess.run(
        [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", "0", "--mount", f"cam={tmp_path / 'absent.mp4'}"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "no such file" in proc.stderr
    with pytest.raises(FileNotFoundError):
        RtspServerProcess({"cam": tmp_path / "absent.mp4"})


def test_sigterm_ends_clients_at_once_and_port_is_reusable(rtsp_factory, sample_clip):
    server = rtsp_factory({"cam": sample_clip})
    port = server.port
    options = {"rtsp_transport": "tcp", "analyzeduration": "500000"}
    with av.open(server.url("cam"), options=options, timeout=(5, 5)) as c:
        frames = c.decode(video=0)
        next(frames)
        t = time.monotonic()
        server.stop()  # SIGTERM
        # the client's read ends (EOF) well before its 5 s read timeout
        try:
            for _ in frames:
                pass
        except av.FFmpegError:
            pass
        assert time.monotonic() - t < 3
    assert not server.running
    server.start()
    assert server.port == port and server.running


def test_url_and_restart(rtsp_factory, sample_clip):
    server = rtsp_factory({"a": sample_clip, "b": sample_clip}, user="u", password="p w@x")
    assert server.url("a") == f"rtsp://u:p%20w%40x@127.0.0.1:{server.port}/a"
    assert server.url("b", credentials=False) == f"rtsp://127.0.0.1:{server.port}/b"
    with pytest.raises(KeyError):
        server.url("c")
    pid = server.pid
    server.restart()
    assert server.pid != pid and server.running
    # the password is passed through the environment, not the command line
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
    assert "p w@x" not in cmdline
    server.pause()
    assert Path(f"/proc/{server.pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"
    server.resume()
    server.kill()
    assert not server.running
