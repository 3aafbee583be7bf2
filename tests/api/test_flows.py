"""``GET /flows``: the router on a real FlowStore (SQLite), and the whole path on a running
service (stream → detector → tracker → line → recorder → /flows and /metrics)."""

import datetime as dt
import time
from collections.abc import Sequence

import numpy as np
import pytest
import supervision as sv
from fastapi import FastAPI

from gridworker.api import create_app
from gridworker.api.auth import ANONYMOUS, current_user
from gridworker.api.deps import get_flows, running_service
from gridworker.api.routers import flows as flows_router
from gridworker.incidents.flows import FlowQuery, FlowStore
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import local_client, wait_until

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc).timestamp()


@pytest.fixture
def store(tmp_path):
    s = FlowStore(f"sqlite:///{tmp_path / 'flows.db'}")
    s.add(
        {
            ("cam1", "gate", "car", "in", T0): 3,
            ("cam1", "gate", "car", "out", T0 + 120): 1,
            ("cam1", "gate", "person", "in", T0 + 3600): 5,
            ("cam1", "side", "car", "in", T0 + 60): 2,
            ("cam2", "gate", "car", "out", T0 + 7200): 4,
        }
    )
    yield s
    s.close()


@pytest.fixture
def client(store):
    app = FastAPI()
    app.include_router(flows_router.router)
    app.dependency_overrides[get_flows] = lambda: store
    app.dependency_overrides[current_user] = lambda: ANONYMOUS  # the router alone: no key store behind it
    with local_client(app) as c:
        yield c


def _get(client, **params):
    return client.get("/flows", params={"since": "2024-05-01T00:00:00Z", "until": "2024-05-01T03:00:00Z", **params})


def test_hourly_totals_with_filters(client):
    body = _get(client).json()
    assert body["bucket"] == "hour" and body["timezone"] == "UTC"
    assert [(b["start"], b["in"], b["out"]) for b in body["buckets"]] == [
        ("2024-05-01T00:00:00Z", 5, 1),
        ("2024-05-01T01:00:00Z", 5, 0),
        ("2024-05-01T02:00:00Z", 0, 4),
    ]
    assert body["totals"] == {"in": 10, "out": 5}
    one = _get(client, camera_id="cam1", line_id="gate", class_name="car").json()
    assert [(b["in"], b["out"]) for b in one["buckets"]] == [(3, 1), (0, 0), (0, 0)]
    assert one["camera_id"] == "cam1" and one["line_id"] == "gate" and one["class_name"] == "car"


def test_minute_and_day_buckets_in_a_time_zone(client):
    minutes = client.get(
        "/flows", params={"since": "2024-05-01T00:00:00Z", "until": "2024-05-01T00:03:00Z", "bucket": "minute", "camera_id": "cam1"}
    ).json()
    assert [(b["in"], b["out"]) for b in minutes["buckets"]] == [(3, 0), (2, 0), (0, 1)]
    # naive times are read in tz; Shanghai's May 1 runs 16:00 UTC Apr 30 → 16:00 UTC May 1
    days = client.get("/flows", params={"since": "2024-05-01T00:00", "until": "2024-05-03T00:00", "bucket": "day", "tz": "Asia/Shanghai"}).json()
    assert [(b["start"], b["in"], b["out"]) for b in days["buckets"]] == [
        ("2024-05-01T00:00:00+08:00", 10, 5),
        ("2024-05-02T00:00:00+08:00", 0, 0),
    ]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "before"),
        ({"since": "2020-01-01T00:00:00Z", "until": "2024-05-01T00:00:00Z", "bucket": "minute"}, "coarser bucket"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"bucket": "week"}, ""),
    ],
)
def test_bad_queries_are_422(client, params, fragment):
    r = client.get("/flows", params=params)
    assert r.status_code == 422 and fragment in r.text


def test_default_range_is_the_last_day(client, store):
    store.add({("cam9", "gate", "car", "in", (int(time.time()) // 60) * 60 - 60): 1})
    body = client.get("/flows", params={"camera_id": "cam9"}).json()
    assert len(body["buckets"]) in (24, 25) and body["totals"] == {"in": 1, "out": 0}


class SweepingCarDetector:
    """One car driving down the frame, again and again: it crosses the middle every sweep."""

    class_names = ["car"]
    max_batch = 8

    def __init__(self, steps: int = 15) -> None:
        self.steps = steps
        self.calls = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        out = []
        for img in images:
            h, w = img.shape[:2]
            k = self.calls % self.steps
            self.calls += 1
            bottom = (0.2 + 0.75 * k / (self.steps - 1)) * h
            out.append(
                sv.Detections(
                    xyxy=np.array([[0.4 * w, bottom - 0.15 * h, 0.6 * w, bottom]], dtype=np.float32),
                    confidence=np.array([0.9], dtype=np.float32),
                    class_id=np.array([2]),
                    data={"class_name": np.array(["car"])},
                )
            )
        return out


def test_flows_and_metrics_from_a_running_service(tmp_path, clip_path):
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'svc.db'}"},
        media_dir=clip_path.parent,
        cameras=[
            {"id": "cam1", "url": str(clip_path), "fps": 5, "lines": [{"id": "middle", "points": [[0.05, 0.5], [0.95, 0.5]], "classes": ["car"]}]}
        ],
    )

    def factory():
        service = Service(settings, SweepingCarDetector())
        service.flow_recorder.flush_interval_s = 0.2
        return service

    with local_client(create_app(factory)) as c:
        metric = 'gridworker_line_crossings_total{camera="cam1",class_name="car",direction="in",line="middle"}'
        wait_until(lambda: metric in c.get("/metrics").text, timeout=30)
        series = wait_until(lambda: (b := c.get("/flows", params={"camera_id": "cam1", "bucket": "minute"}).json())["totals"]["in"] and b)
        assert series["totals"]["out"] == 0  # it only ever drives down: left → right of the line
        assert series["line_id"] is None and series["buckets"]
        stopped_service = running_service(c.app)
        assert stopped_service is not None
    # stop flushed whatever was pending: the store and the counter agree
    text = stopped_service.metrics.render().decode()
    counted = float(next(line.split()[-1] for line in text.splitlines() if line.startswith(metric)))
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    stored = stopped_service.flows.totals(FlowQuery(since=now - 3600, until=now + 60, bucket="hour"))
    assert sum(b.in_count for b in stored) == counted >= 1
