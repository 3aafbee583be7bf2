"""The web server's access and error lines are scrubbed too (security review): uvicorn logs
through handlers of its own that the root's redaction never reached, so a report's receipt
code (it reads the report's progress) and secret query parameters were printed as sent.
A real uvicorn serving the real app with the logging config ``gridworker run`` gives it."""

from __future__ import annotations

import logging
import secrets

import httpx

from gridworker.api import create_app
from gridworker.api.access_log import log_config
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.incidents.reports import RECEIPT_BYTES
from tests.factories import ParkedCarDetector, live_server

CODE = secrets.token_urlsafe(RECEIPT_BYTES)  # the shape of a real receipt code


def test_access_lines_show_no_receipt_code_and_no_secret_parameter(tmp_path, capfd):
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'a.db'}"}, evidence={"clips": False})
    app = create_app(lambda: Service(settings, ParkedCarDetector()))
    loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.access", "uvicorn.error")]
    saved = [(lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    try:
        with live_server(app, log_level="info", log_config=log_config()) as base:
            assert httpx.get(f"{base}/report/receipts/{CODE}").status_code == 404
            assert httpx.get(f"{base}/report/status/{CODE}").status_code < 500
            httpx.get(f"{base}/health", params={"sign": "S1gn-0f1e2d", "lang": "en"})
    finally:  # uvicorn's dictConfig stays on its loggers: put them back as they were for the tests after
        for lg, (level, handlers, propagate) in zip(loggers, saved):
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate = propagate
    out, err = capfd.readouterr()
    lines = out + err
    assert '"GET /report/receipts/*** HTTP/1.1" 404' in lines and '"GET /report/status/*** HTTP/1.1"' in lines, lines[-2000:]
    assert "/health?sign=***&lang=en" in lines
    assert CODE not in lines and "S1gn-0f1e2d" not in lines


def test_gridworker_run_hands_uvicorn_the_filtered_logging_config(tmp_path, monkeypatch):
    """The config above only helps if the commands that serve pass it (review)."""
    import uvicorn

    from gridworker.cli import main

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    conf = tmp_path / "g.yaml"
    conf.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\nevidence: {{clips: false}}\n")
    # main() sets up this process's logging as the CLI does (root handler, httpx quietened): put it back after
    root, quiet = logging.getLogger(), [logging.getLogger(n) for n in ("httpx", "httpcore")]
    saved = (root.level, list(root.handlers), [q.level for q in quiet])
    try:
        assert main(["run", "--config", str(conf)]) == 0
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for q, level in zip(quiet, saved[2]):
            q.setLevel(level)
    config = seen["log_config"]
    assert isinstance(config, dict)
    assert config["handlers"]["access"]["filters"] == ["gw_access"] and config["handlers"]["default"]["filters"] == ["gw_redact"]
