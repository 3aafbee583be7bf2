"""Flow statistics: per-minute buckets in SQL (SQLite and PostgreSQL) and the recorder."""

import datetime as dt
import zoneinfo
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter

from gridworker.incidents.flows import FlowQuery, FlowRecorder, FlowStore, bucket_starts
from gridworker.vision.lines import Crossing
from tests.factories import pg_database

# 2024-05-01 00:00 UTC = 08:00 in Shanghai
T0 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc).timestamp()
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def flows(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'flows.db'}"
    else:
        url = pg_database("gw_flows")
    store = FlowStore(url)
    yield store
    store.close()


def _q(**kw):
    base = {"since": T0, "until": T0 + 3 * 3600}
    return FlowQuery(**{**base, **kw})


def test_add_sums_into_minutes_and_totals_by_bucket(flows):
    flows.add({("cam1", "gate", "car", "in", T0): 2, ("cam1", "gate", "car", "out", T0 + 60): 1})
    flows.add({("cam1", "gate", "car", "in", T0): 3})  # the same minute again: added, not replaced
    flows.add({("cam1", "gate", "person", "in", T0 + 3600 + 120): 4, ("cam2", "gate", "car", "in", T0 + 7200): 7})
    flows.add({})
    minutes = flows.totals(_q(until=T0 + 180, bucket="minute", camera_id="cam1"))
    assert [(b.start.timestamp() - T0, b.in_count, b.out_count) for b in minutes] == [(0, 5, 0), (60, 0, 1), (120, 0, 0)]
    hours = flows.totals(_q(bucket="hour"))
    assert [(b.in_count, b.out_count) for b in hours] == [(5, 1), (4, 0), (7, 0)]
    assert [(b.in_count, b.out_count) for b in flows.totals(_q(bucket="hour", class_name="car"))] == [(5, 1), (0, 0), (7, 0)]
    assert [b.in_count for b in flows.totals(_q(bucket="hour", camera_id="cam2", line_id="gate"))] == [0, 0, 7]
    assert [b.in_count for b in flows.totals(_q(bucket="hour", line_id="other"))] == [0, 0, 0]


def test_until_is_exclusive_and_since_floors_to_its_minute(flows):
    flows.add({("c", "l", "car", "in", T0): 1, ("c", "l", "car", "in", T0 + 60): 10})
    got = flows.totals(_q(since=T0 + 30, until=T0 + 60, bucket="minute"))
    assert [(b.start.timestamp(), b.in_count) for b in got] == [(T0, 1)]


def test_day_buckets_follow_the_local_midnight(flows):
    # 15:30 UTC on May 1 is 23:30 in Shanghai; 16:30 UTC is already May 2 there
    flows.add({("c", "l", "car", "in", T0 + 15.5 * 3600): 1, ("c", "l", "car", "in", T0 + 16.5 * 3600): 2})
    utc = flows.totals(_q(since=T0, until=T0 + 86400, bucket="day"))
    assert [(b.start.isoformat(), b.in_count) for b in utc] == [("2024-05-01T00:00:00+00:00", 3)]
    local = flows.totals(_q(since=T0 - 8 * 3600, until=T0 + 40 * 3600, bucket="day", timezone="Asia/Shanghai"))
    assert [(b.start.isoformat(), b.in_count) for b in local] == [("2024-05-01T00:00:00+08:00", 1), ("2024-05-02T00:00:00+08:00", 2)]


def test_bucket_starts_cover_the_range():
    utc = dt.timezone.utc
    assert len(bucket_starts(T0, T0 + 3600, "minute", utc)) == 60
    assert [b.timestamp() for b in bucket_starts(T0 + 1800, T0 + 3601, "hour", utc)] == [T0, T0 + 3600]
    days = bucket_starts(T0, T0 + 3 * 86400, "day", SHANGHAI)
    assert [d.isoformat() for d in days] == [f"2024-05-0{i}T00:00:00+08:00" for i in (1, 2, 3, 4)]
    # a day across a DST change is 23 hours long; buckets still start at local midnight
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    start = dt.datetime(2024, 3, 30, 12, tzinfo=berlin).timestamp()
    days = bucket_starts(start, start + 2 * 86400, "day", berlin)
    assert [d.hour for d in days] == [0, 0, 0]
    assert days[2].timestamp() - days[1].timestamp() == 23 * 3600


def _analysis(camera, *crossings):
    return SimpleNamespace(frame=SimpleNamespace(camera_id=camera), crossings=tuple(crossings))


def test_recorder_buckets_counts_and_flushes_on_interval(flows):
    registry = CollectorRegistry()
    counter = Counter("gridworker_line_crossings", "x", labelnames=["camera", "line", "class_name", "direction"], registry=registry)
    now = [0.0]
    rec = FlowRecorder(flows, counter=counter, flush_interval_s=5.0, clock=lambda: now[0])
    rec.observe(_analysis("cam1", Crossing("gate", 1, "car", "in", T0 + 1), Crossing("gate", 2, "car", "in", T0 + 59)), 0.1)
    rec.observe(_analysis("cam1", Crossing("gate", 3, "person", "out", T0 + 61)), 0.1)
    assert rec.pending == 3
    assert flows.totals(_q(until=T0 + 120, bucket="minute"))[0].in_count == 0  # not flushed yet
    now[0] = 5.0
    rec.observe(_analysis("cam1"), 0.1)  # a frame without crossings still triggers the due flush
    assert rec.pending == 0
    got = flows.totals(_q(until=T0 + 120, bucket="minute"))
    assert [(b.in_count, b.out_count) for b in got] == [(2, 0), (0, 1)]
    labels = {"camera": "cam1", "line": "gate", "class_name": "car", "direction": "in"}
    assert registry.get_sample_value("gridworker_line_crossings_total", labels) == 2.0


def test_recorder_keeps_counts_when_a_write_fails(flows):
    class Flaky:
        def __init__(self):
            self.fail = True

        def add(self, counts):
            if self.fail:
                raise sa.exc.OperationalError("insert", {}, Exception("database is locked"))
            flows.add(counts)

    flaky = Flaky()
    rec = FlowRecorder(flaky, flush_interval_s=3600)
    rec.observe(_analysis("cam1", Crossing("gate", 1, "car", "in", T0)))
    assert rec.flush() is False and rec.pending == 1
    rec.observe(_analysis("cam1", Crossing("gate", 2, "car", "in", T0 + 5)))
    flaky.fail = False
    assert rec.flush() is True and rec.pending == 0
    assert flows.totals(_q(until=T0 + 60, bucket="minute"))[0].in_count == 2
