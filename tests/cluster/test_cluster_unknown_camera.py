"""A visit task for a camera the worker does not know yet (its settings not loaded, a camera
added a moment ago) is retried with backoff, not terminated; one no worker ever knows is
reported once after max_deliver. Real nats-server (issue 12)."""

from __future__ import annotations

import threading

from tests.cluster.test_cluster_visits_queue import _ok, _queued, _tasks, link  # noqa: F401 - the fixture
from tests.factories import wait_until
from gridworker.cluster.visits import VisitConsumer, VisitTask, publish_cycle
from gridworker.streams.glance import GlanceResult


def test_a_camera_known_a_moment_later_is_visited(link) -> None:  # noqa: F811
    known = threading.Event()
    asked: list[str] = []

    def knows(camera_id: str) -> bool:
        asked.append(camera_id)
        return known.is_set()

    ran: list[str] = []

    def visit(task: VisitTask, stop: threading.Event) -> GlanceResult:
        ran.append(task.visit_id)
        return _ok(task, stop)

    publish_cycle(link, _tasks(7, ["new-cam"]))
    worker = VisitConsumer(link, visit, concurrency=1, ack_wait_s=5, max_deliver=5, backoff_s=(0.3,), known_camera=knows)
    worker.start()
    try:
        wait_until(lambda: len(asked) >= 1, timeout=20)
        known.set()  # the camera's settings arrive
        wait_until(lambda: worker.stats.done == 1, timeout=20)
        assert ran == ["key-sites:7:new-cam"] and worker.stats.rejected == 0 and worker.stats.retried >= 1
        wait_until(lambda: _queued(link) == 0, timeout=10)  # an ack is published, not confirmed: the server drops it soon after
    finally:
        worker.stop(5)


def test_a_camera_no_worker_knows_is_given_up_after_max_deliver(link) -> None:  # noqa: F811
    publish_cycle(link, _tasks(8, ["ghost"]))
    worker = VisitConsumer(link, _ok, concurrency=1, ack_wait_s=5, max_deliver=3, backoff_s=(0.2,), known_camera=lambda c: False)
    worker.start()
    try:
        wait_until(lambda: worker.stats.given_up == 1, timeout=20)
        wait_until(lambda: _queued(link) == 0, timeout=10)
        assert worker.stats.retried == 2 and worker.stats.done == 0 and worker.stats.rejected == 0
    finally:
        worker.stop(5)
