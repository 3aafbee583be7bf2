"""The revisit (two-captures) parking check across workers: its memory in the ``revisit`` KV
bucket of the real nats-server (issue 12)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from nats.js.errors import BadRequestError, NotFoundError

from gridworker.cluster.link import NatsLink
from gridworker.cluster.revisit_store import MAX_VALUE_BYTES, REVISIT_TTL_S, RevisitStore, SharedRevisitJudge, decode_memory
from gridworker.streams.frame import Frame
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.visits import VisitAnalyzer
from tests.cluster.cluster_h5_support import SHARED_URL, close_link, link_to
from gridworker.vision.analyzer import CameraAnalyzer
from gridworker.vision.pipeline import CameraSlot, PatrolVisit, Pipeline
from tests.factories import ParkedCarDetector
from tests.patrol.test_revisit_memory import GRAY, first_panel_median
from tests.patrol.test_revisit import CAR, CAR_MOVED, CAR_NUDGED, _kerb_scene, dets


@pytest.fixture
def links() -> Iterator[tuple[NatsLink, NatsLink, NatsLink]]:
    """Three workers' links on one cluster (one prefix)."""
    a = link_to(SHARED_URL)
    b, c = link_to(SHARED_URL, a.config.prefix), link_to(SHARED_URL, a.config.prefix)
    yield a, b, c
    try:
        with contextlib.suppress(NotFoundError):  # a test that never reached NATS made no bucket
            a.call(lambda: a.js.delete_key_value(a.name("revisit")))
    finally:
        for lk in (a, b, c):
            close_link(lk)


def _judge(link: NatsLink) -> SharedRevisitJudge:
    return SharedRevisitJudge(VisitAnalyzer("cam", _kerb_scene(300), annotator=FrameAnnotator()), RevisitStore(link))


def _objects(judge: Any, ts: float, detections: Any) -> list:
    frame = Frame("cam", int(ts), ts, np.full((360, 640, 3), GRAY, np.uint8))
    judgement = judge.analyse_glance([frame], [detections])
    return [o for r in judgement.reports for o in r.objects]


def test_a_pair_is_found_when_its_two_visits_are_judged_by_two_workers(links) -> None:
    a, b, _ = links
    worker_a, worker_b = _judge(a), _judge(b)
    assert [o for o in _objects(worker_a, 1000.0, dets(CAR)) if o.qualifies] == []
    [seen] = _objects(worker_b, 1310.0, dets(CAR_NUDGED))  # 310 s later, the other worker
    assert seen.qualifies and worker_b.loads == 1
    assert seen.details["method"] == "revisit" and seen.details["gap_s"] == 310.0
    first, second = seen.details["first_capture"], seen.details["second_capture"]
    assert (first["at"], second["at"]) == (1000.0, 1310.0) and first["frame_ref"].startswith("cam#1000@")
    assert abs(first_panel_median(seen.snapshot) - GRAY) < 20  # worker A's first capture, from the KV

    # back on A: it loads B's memory; the vehicle is still there, reported (its incident stays open)
    [again] = _objects(worker_a, 1400.0, dets(CAR))
    assert worker_a.loads == 1 and again.key == seen.key and not again.qualifies
    _objects(worker_a, 1500.0, dets(CAR))  # A made the previous visit: nothing to load
    assert worker_a.loads == 1

    # the same two visits on two workers without the bucket: no pair (what cluster mode did before)
    plain_a, plain_b = (VisitAnalyzer("cam", _kerb_scene(300), annotator=FrameAnnotator()) for _ in range(2))
    _objects(plain_a, 1000.0, dets(CAR))
    assert [o for o in _objects(plain_b, 1310.0, dets(CAR_NUDGED)) if o.qualifies] == []


def test_a_write_conflict_merges_both_visits_sightings(links) -> None:
    a, b, c = links
    worker_a, worker_b = _judge(a), _judge(b)
    _objects(worker_a, 900.0, dets())  # the key exists
    base = worker_b.sync()  # B starts a visit ...
    _objects(worker_a, 1000.0, dets(CAR))  # ... A's visit of the same camera (another plan) ends first
    worker_b.inner.analyse_glance([Frame("cam", 1001, 1001.0, np.full((360, 640, 3), GRAY, np.uint8))], [dets(CAR_MOVED)])
    worker_b.save(base)  # refused (A wrote meanwhile): merged with A's memory and written again
    assert worker_b.conflicts == 1
    worker_c = _judge(c)
    worker_c.sync()
    [memory] = worker_c.inner.export_revisit().zones.values()
    boxes = sorted(p.first.xyxy[0] for p in memory.parked)
    assert boxes == [CAR[0], CAR_MOVED[0]]  # neither visit's car was lost
    qualifying = [o for o in _objects(worker_c, 1350.0, dets(CAR_NUDGED, CAR_MOVED)) if o.qualifies]
    assert len(qualifying) == 2


@pytest.mark.parametrize("value", [b"not json", b"{}", json.dumps({"v": 1, "camera": "other", "zones": {}}).encode(),
                                   json.dumps({"v": 1, "camera": "cam", "zones": {}, "evidence": {"r": base64.b64encode(b"x").decode()}}).encode()])
def test_a_bad_stored_value_is_ignored_and_replaced(links, value: bytes, caplog) -> None:
    a, _, _ = links
    store = RevisitStore(a)
    kv = store.bucket()
    a.call(lambda: kv.put("cam", value))
    worker = _judge(a)
    assert _objects(worker, 1000.0, dets(CAR)) != []  # the visit is judged all the same
    assert worker.bad == 1 and "ignored" in caplog.text and value.decode() not in caplog.text
    revision, stored = store.read("cam")  # type: ignore[misc]
    assert len(decode_memory("cam", stored).zones) == 1  # the visit's write replaced the bad value


class _Reports:
    """The worker's sink, as far as this test reads it: the revisit reports it is handed."""

    def __init__(self) -> None:
        self.reports: list[Any] = []

    def observe(self, analysis: Any, *, partial: bool = False) -> None:
        pass

    def report(self, report: Any) -> None:
        self.reports.append(report)


class _Meter:
    def batch_done(self, size: int, seconds: float) -> None:
        pass

    def frames_done(self, n: int, latency_s: float | None) -> None:
        pass

    def listener_failed(self, event: str, listener: str) -> None:
        pass


class _NoStream:
    """A patrol-only camera's reader: it never streams (visits bring the frames)."""

    camera_id = "cam"

    def on_frame(self, listener: Any) -> None:
        pass

    def health(self) -> Any:
        raise AssertionError("a patrol-only camera's reader is never asked")


def worker_pipeline(link: NatsLink, sink: Any) -> Pipeline:
    """A worker's started pipeline with the patrol-only camera "cam" (a kerb revisit zone), its
    visit judge shared through the bucket as ``start_visit_consumer`` does (``RevisitStore.share``)."""
    pipeline = Pipeline(ParkedCarDetector(), sink, annotator=FrameAnnotator(), meter=_Meter())
    scene = _kerb_scene(300)
    slot = CameraSlot("cam", _NoStream(), CameraAnalyzer("cam", 1.0, scene, track=False),
                      visits=VisitAnalyzer("cam", scene, annotator=FrameAnnotator()))
    pipeline.add(slot)
    RevisitStore(link).share(slot)
    assert isinstance(slot.visits, SharedRevisitJudge)
    pipeline.start()
    return pipeline


def test_two_workers_pipelines_find_the_pair_through_the_visit_wiring(links) -> None:
    """What ``start_visit_consumer`` does on each worker: ``RevisitStore.share`` on the camera's
    slot, then the visit through ``Pipeline.judge_visit`` (shared batcher, detector, judge, sink)."""
    workers = []
    for link in links[:2]:
        sink = _Reports()
        workers.append((worker_pipeline(link, sink), sink))
    try:
        for (pipeline, _), ts in zip(workers, (1000.0, 1310.0)):
            frame = Frame("cam", int(ts), ts, np.full((360, 640, 3), GRAY, np.uint8))
            assert pipeline.judge_visit(PatrolVisit("cam", (frame,), timeout_s=30.0)) is not None
        qualifying = [[o for r in sink.reports for o in r.objects if o.qualifies] for _, sink in workers]
        assert qualifying[0] == [] and len(qualifying[1]) == 1
        details = qualifying[1][0].details
        assert (details["first_capture"]["at"], details["second_capture"]["at"]) == (1000.0, 1310.0)
    finally:
        for pipeline, _ in workers:
            pipeline.stop()


def test_nats_away_the_worker_judges_with_its_own_memory(links, caplog) -> None:
    a, _, _ = links
    worker = _judge(a)
    worker._store._link = link_to(SHARED_URL, a.config.prefix)  # a link of its own, closed below
    close_link(worker._store._link)
    assert [o for o in _objects(worker, 1000.0, dets(CAR)) if o.qualifies] == []
    assert [o.qualifies for o in _objects(worker, 1310.0, dets(CAR))] == [True]  # the pair, from this worker's memory
    assert caplog.text.count("not read") == 1  # warned once, not at every visit


def test_the_bucket_ages_memories_out_and_caps_their_size(links) -> None:
    a, _, _ = links
    kv = RevisitStore(a).bucket()
    status = a.call(kv.status)
    assert status.ttl == REVISIT_TTL_S >= 86_400 + 2 * 86_400  # the longest min_gap_s and a weekend
    assert status.stream_info.config.max_msg_size == MAX_VALUE_BYTES
    with pytest.raises(BadRequestError, match="too large|maximum"):  # the server refuses a longer value
        a.call(lambda: kv.put("cam", b"x" * (MAX_VALUE_BYTES + 1)))
