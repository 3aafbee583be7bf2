"""The revisit (two-captures) parking check across real worker processes: a parked bus (the real
model on a still street clip from the real RTSP server) is seen by worker w0, which is then
frozen; worker w1 (frozen until then) makes the next visit and reports the pair, its first capture read from the
``revisit`` KV bucket of the real nats-server (issue 12)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import yaml

from gridworker.cluster.revisit_store import RevisitStore, decode_memory
from gridworker.cluster.serve import ClusterService, RemoteStream
from gridworker.models.loader import load_detector
from gridworker.service import Service
from gridworker.settings import Settings
from tests.cluster.cluster_core_support import FAST, Worker
from tests.cluster.cluster_h5_support import NatsServer, close_link, link_to
from tests.factories import bus_street_clips, pg_database, wait_until
from tests.patrol.test_revisit_memory import first_panel_median

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(400)]

MIN_GAP_S = 6.0


def test_a_parked_bus_seen_by_one_worker_is_reported_by_another(tmp_path: Path, rtsp_factory) -> None:
    clips = bus_street_clips(tmp_path, {"kerb": 300})
    rtsp = rtsp_factory({"kerb": clips["kerb"]})
    nats = NatsServer(tmp_path / "js")
    nats.start()
    zones = [{"id": "kerb", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
              "rules": [{"type": "illegal_parking", "classes": ["bus"], "min_duration_s": MIN_GAP_S}]}]
    camera = {"id": "kerb", "url": rtsp.url("kerb"), "watch": "patrol", "zones": zones}
    cluster = {"nats_url": nats.url, "prefix": "gwr", **FAST}
    config = tmp_path / "worker.yaml"
    config.write_text(yaml.safe_dump({
        "cluster": cluster, "evidence": {"clips": False}, "cameras": [camera], "database": {"url": f"sqlite:///{tmp_path / 'w.db'}"},
    }))
    plan = {"id": "kerb-plan", "select": {"camera_ids": ["kerb"]}, "cycles": 0, "min_cycle_s": 2.0, "keyframes": 1}
    settings = Settings(database={"url": pg_database("gw_cluster_revisit")}, cameras=[camera], cluster=cluster,
                        evidence={"clips": False}, patrol_plans=[plan])
    service = Service(settings, load_detector(settings.detector), reader=RemoteStream)
    procs: list[Worker] = []
    link = None
    serve: ClusterService | None = None
    try:
        service.start()
        serve = ClusterService(service)
        serve.start()
        procs.extend(Worker(config, w, tmp_path) for w in ("w0", "w1"))
        for worker in procs:  # the plan starts once both have the camera's slot
            wait_until(lambda w=worker: "kerb" in ((w.health() or {}).get("cameras") or {}), timeout=120, interval=0.5)
        w0, w1 = procs
        w1.signal(signal.SIGSTOP)  # only w0 visits at first
        service.patrol.start("kerb-plan")
        link = link_to(nats.url, "gwr")
        store = RevisitStore(link)

        def w0_saw_the_bus() -> bool:
            got = store.read("kerb")
            return got is not None and any(m.parked for m in decode_memory("kerb", got[1]).zones.values())

        wait_until(w0_saw_the_bus, timeout=120, interval=0.2)
        w0.signal(signal.SIGSTOP)  # w0 judges nothing more (what it remembers stays in its process)
        frozen_at = time.time()
        assert not [i for i in service.store.open_incidents() if i.type == "illegal_parking"]
        w1.signal(signal.SIGCONT)  # every visit from now on is w1's

        def reported() -> list:
            return [i for i in service.store.open_incidents() if i.type == "illegal_parking"]

        [incident] = wait_until(reported, timeout=180, interval=0.5)
        details = incident.details
        assert details["method"] == "revisit"
        assert details["first_capture"]["at"] < frozen_at < details["second_capture"]["at"]  # w0's capture, w1's capture
        assert details["gap_s"] >= MIN_GAP_S
        snapshot = wait_until(lambda: service.store.snapshot(incident.id), timeout=30, interval=0.5)
        assert first_panel_median(snapshot) > 60  # both captures side by side: w0's first, not the black "not kept"
        assert "revisit memory" not in w1.text()  # no read/write trouble logged
    finally:
        for p in procs:
            p.stop()
        if link is not None:
            close_link(link)
        try:
            if serve is not None:  # its control thread renews the case-writer lease: stopped while NATS still answers
                serve.stop()
            service.stop()
        finally:
            nats.stop()
        for p in procs:
            print(f"--- {p.log.name} (last lines)\n" + "\n".join(p.text().splitlines()[-15:]))
