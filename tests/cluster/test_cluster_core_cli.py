"""``gridworker serve`` / ``gridworker worker``: refused configs fail at once with a clear error."""

from __future__ import annotations

import logging

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


def test_worker_on_a_server_without_room_for_the_stream_says_so(tmp_path, capsys, caplog):
    """A NATS server whose JetStream store cannot hold the observations stream refuses it with
    'insufficient storage'; the worker names the stream, the size and the setting to change."""
    from tests.cluster.cluster_h5_support import NatsServer

    server = NatsServer(tmp_path / "js", max_file_store="32MB")
    server.start()
    try:
        cluster = {"nats_url": server.url, "prefix": "room", "obs_stream_mb": 64, "connect_timeout_s": 3.0, "op_timeout_s": 2.0}
        assert main(["worker", "--config", _config(tmp_path, cluster=cluster), "--port", "0"]) == 3
        err = capsys.readouterr().err
        assert "StreamRefused" in err and "room_obs (64 MB)" in err and "cluster.obs_stream_mb" in err
        # the same server takes a stream that fits: the setting is what decides
        from gridworker.cluster.observations import ensure_obs_stream
        from tests.cluster.cluster_h5_support import close_link, link_to

        link = link_to(server.url, prefix="room", obs_stream_mb=16)
        try:
            link.call(lambda: ensure_obs_stream(link))
            info = link.call(lambda: link.js.stream_info("room_obs"))
            assert info.config.max_bytes == 16_000_000
        finally:
            close_link(link)
        # a later start asking another size finds the stream as it was made, and says so
        other = link_to(server.url, prefix="room", obs_stream_mb=24)
        try:
            with caplog.at_level(logging.WARNING, logger="gridworker.cluster.observations"):
                other.call(lambda: ensure_obs_stream(other))
            assert other.call(lambda: other.js.stream_info("room_obs")).config.max_bytes == 16_000_000
            assert "room_obs exists with max_bytes 16000000; cluster.obs_stream_mb asks for 24000000" in caplog.text
        finally:
            close_link(other)
    finally:
        server.stop()
