"""``gridworker serve`` / ``gridworker worker``: refused configs fail at once with a clear error."""

from __future__ import annotations

import yaml

from gridworker.cli import main


def _config(tmp_path, **extra):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'x.db'}"}, **extra}))
    return str(path)


def test_serve_refuses_sqlite(tmp_path, capsys):
    assert main(["serve", "--config", _config(tmp_path, cluster={"nats_url": "nats://127.0.0.1:4222"})]) == 2
    err = capsys.readouterr().err
    assert "cluster mode needs PostgreSQL" in err
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


def test_serve_and_worker_need_a_cluster_section(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["serve", "--config", cfg]) == 2
    assert main(["worker", "--config", cfg]) == 2
    assert capsys.readouterr().err.count("needs a cluster: section") == 2


def test_worker_refuses_a_bad_cluster_section(tmp_path, capsys):
    cfg = _config(tmp_path, cluster={"nats_url": "http://127.0.0.1:4222"})
    assert main(["worker", "--config", cfg]) == 2
    assert "nats_url" in capsys.readouterr().err


def test_worker_without_nats_fails_fast(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = {"nats_url": f"nats://user:secret@127.0.0.1:{port}", "connect_timeout_s": 1.0, "op_timeout_s": 1.0}
    assert main(["worker", "--config", _config(tmp_path, cluster=cluster), "--port", "0"]) == 3
    err = capsys.readouterr().err
    assert "worker could not start" in err and "secret" not in err
