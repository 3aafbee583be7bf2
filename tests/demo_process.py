"""``gridworker demo`` as a child process, the way a newcomer runs it (tests/test_demo.py and the
browser tour in tests/console/test_demo_tour.py).

Example::

    with DemoProcess(tmp_path / "demo") as demo:
        demo.wait_up()
        httpx.get(demo.base + "/cameras")
    assert demo.returncode == 0          # stopped with Ctrl-C (SIGINT)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.factories import free_port


class DemoProcess:
    """Runs ``gridworker demo --port <free> --workdir <workdir>``; its output is collected as it comes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.returncode: int | None = None
        self.started_at = 0.0
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> DemoProcess:
        exe = Path(sys.executable).with_name("gridworker")
        self.started_at = time.monotonic()
        self._proc = subprocess.Popen(
            [str(exe), "demo", "--port", str(self.port), "--workdir", str(self.workdir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_up(self, timeout: float = 120.0) -> float:
        """Wait until the API answers; returns the seconds since the command started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), f"the demo exited:\n{self.output[-3000:]}"
            try:
                if httpx.get(self.base + "/cameras", timeout=2).status_code == 200:
                    return time.monotonic() - self.started_at
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the demo's API did not come up in {timeout:.0f} s:\n{self.output[-3000:]}")

    def printed_url(self, label: str) -> str:
        """A URL the demo printed on the line starting with ``label`` (e.g. ``webhooks``)."""
        for line in self.lines:
            m = re.match(rf"\s+{re.escape(label)}\s+(http://\S+?)/?(\s|$)", line)
            if m:
                return m.group(1)
        raise AssertionError(f"the demo printed no {label!r} line:\n{self.output[:3000]}")

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl-C (SIGINT), as in a terminal; returns the exit code."""
        proc = self._proc
        if proc is None:
            return -1
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        self.returncode = proc.returncode
        return proc.returncode

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
