"""``gridworker run`` (the real command, a subprocess) will not listen beyond loopback until an
API key exists, or the config says ``auth: {open: true}`` (which it then warns about)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.api.test_security import non_loopback_address
from tests.factories import free_port

EXE = str(Path(sys.executable).with_name("gridworker"))
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _config(tmp_path: Path, name: str, **extra: object) -> tuple[Path, int]:
    port = free_port()
    path = tmp_path / f"{name}.yaml"
    cfg = {"server": {"host": "0.0.0.0", "port": port}, "database": {"url": f"sqlite:///{tmp_path / name}.db"}, **extra}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path, port


def _serve_until_up(config: Path, port: int, headers: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``gridworker run``, wait for it to answer, stop it; returns it and its output."""
    proc = subprocess.Popen([EXE, "run", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    addr = non_loopback_address()
    try:
        deadline = time.time() + 60
        up = False
        while time.time() < deadline and not up:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                up = httpx.get(f"http://127.0.0.1:{port}/workorders", headers=headers, timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.3)
        assert up, "gridworker run did not come up"
        if addr is not None:  # and it is reachable from outside this machine
            assert httpx.get(f"http://{addr}:{port}/workorders", headers=headers, timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return proc, out


def test_run_refuses_a_wide_bind_without_a_key(tmp_path):
    config, port = _config(tmp_path, "site")
    t0 = time.monotonic()
    done = subprocess.run([EXE, "run", "--config", str(config)], capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "refusing to listen on 0.0.0.0: no API key exists yet" in done.stderr
    assert f"gridworker keys create --config {config} --role admin" in done.stderr
    assert "auth: {open: true}" in done.stderr
    assert time.monotonic() - t0 < 30  # before the model loads

    made = subprocess.run([EXE, "keys", "create", "--config", str(config), "--role", "admin", "--name", "ops"],
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    proc, out = _serve_until_up(config, port, {"X-API-Key": key})
    assert proc.returncode == 0, out[-2000:]
    assert key not in out and key[17:] not in out


def test_run_with_auth_open_starts_and_warns(tmp_path):
    config, port = _config(tmp_path, "lab", auth={"open": True})
    proc, out = _serve_until_up(config, port, {})
    assert proc.returncode == 0, out[-2000:]
    assert "WARNING" in out and "auth.open is set" in out and "ANYONE" in out


def test_exposure_rules(tmp_path):
    from gridworker.api.auth import create_key
    from gridworker.cli import exposure_refusal
    from gridworker.incidents import IncidentStore
    from gridworker.keystore import KeyStore
    from gridworker.settings import Settings

    db = {"url": f"sqlite:///{tmp_path / 'x.db'}"}
    for host in ("127.0.0.1", "127.0.0.53", "localhost", "::1"):
        assert exposure_refusal(Settings(server={"host": host}, database=db)) is None, host
    for host in ("0.0.0.0", "::", "192.0.2.2", "gw.example.org"):
        assert "no API key exists yet" in (exposure_refusal(Settings(server={"host": host}, database=db), "s.yaml") or ""), host
    assert exposure_refusal(Settings(server={"host": "0.0.0.0"}, database=db, auth={"open": True})) is None
    store = IncidentStore(db["url"])
    create_key(KeyStore(store.db), name="ops", role="admin")
    store.close()
    assert exposure_refusal(Settings(server={"host": "0.0.0.0"}, database=db)) is None
    off = exposure_refusal(Settings(server={"host": "0.0.0.0"}, database=db, auth={"enabled": False})) or ""
    assert "auth.enabled: false" in off
