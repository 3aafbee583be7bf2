"""The real service (``gridworker run``, a subprocess) killed with SIGKILL, as a crash, then
started again on the same database: a person's browser session (the cookie and the CSRF token
it was given) still works, and logging out then ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from gridworker.cases.people import People, PersonIn
from gridworker.incidents.db import Database
from tests.factories import free_port
from tests.people.conftest import PW, people_config

EXE = str(Path(sys.executable).with_name("gridworker"))
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``gridworker run``, once it answers (its output goes to ``log``)."""
    with log.open("ab") as out:
        proc = subprocess.Popen([EXE, "run", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, env=ENV)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/workorders", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    proc.wait(10)
    raise AssertionError("gridworker run did not come up:\n" + log.read_text(errors="replace")[-3000:])


def _stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def test_a_login_survives_a_crash_and_restart_of_the_real_service(tmp_path):
    url = f"sqlite:///{tmp_path / 'site.db'}"
    port = free_port()
    config = tmp_path / "site.yaml"
    fast = people_config().model_dump(include={"password_memory_kib", "password_time_cost"})
    config.write_text(yaml.safe_dump({"server": {"host": "127.0.0.1", "port": port}, "database": {"url": url}, "people": fast}))
    db = Database.open(url)
    People(db, config=people_config()).add([PersonIn(username="ops.wang", name="Wang", role="operator", password=PW)])
    db.close()
    log = tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"

    proc = _start(config, port, log)
    with httpx.Client(base_url=base, timeout=10) as browser:
        try:
            r = browser.post("/auth/login", json={"username": "ops.wang", "password": PW})
            assert r.status_code == 200, r.text
            csrf = r.json()["csrf_token"]
            token = browser.cookies.get("gw_session")
            assert token and browser.get("/auth/me").json()["csrf_token"] == csrf
        finally:
            assert _stop(proc, signal.SIGKILL) == -signal.SIGKILL  # a crash: nothing shut down cleanly

        proc = _start(config, port, log)
        try:
            me = browser.get("/auth/me")  # the same cookie, to the new process
            assert me.status_code == 200, me.text
            assert me.json()["person"]["username"] == "ops.wang" and me.json()["csrf_token"] == csrf
            assert browser.post("/auth/logout").status_code == 403  # still needs its CSRF token
            assert browser.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
            browser.cookies.set("gw_session", token)  # the browser forgot it; someone who kept it gets nothing
            assert browser.get("/auth/me").status_code == 401
        finally:
            assert _stop(proc, signal.SIGINT) == 0
    out = log.read_text(errors="replace")
    assert token not in out and csrf not in out and PW not in out

