"""Silence is judged on a monotonic clock, not the wall clock: a step of the wall clock (NTP,
a VM resumed) does not mark every device offline at once, a pause of the process (no message
could be read either) is forgiven, genuine silence is still found, and a mass outage opens
its offline cases at most ``offline_per_check`` a check. First the rules with both clocks
passed in, then the service with its clocks injected (no broker: ``tick`` called by hand)."""

from __future__ import annotations

import json
import logging

from gridworker.cases.catalogue import load_catalogue
from gridworker.iot import DeviceConfig, IotConfig, load_mappings
from gridworker.iot.metrics import IotCollector
from gridworker.iot.service import IotService
from gridworker.iot.tracker import AlarmTracker
from gridworker.vision.rules.base import IncidentKind

MAPPINGS = load_mappings()
CAT = load_catalogue()
HEARTBEAT = {"msg": "heartbeat"}


def _kind(code: str) -> IncidentKind:
    t = CAT.type(code)
    return IncidentKind(t.code, t.name_zh, t.name_en, t.category)


def _fleet(n: int, heartbeat_s: float = 60.0) -> list[DeviceConfig]:
    return [DeviceConfig(id=f"brk-{i:05d}", type="smart_breaker", heartbeat_s=heartbeat_s) for i in range(n)]


def _tracker(**kw) -> AlarmTracker:
    return AlarmTracker(MAPPINGS, _kind, clear_after_s=1800.0, missed_heartbeats=3, suspended_after_s=5.0, **kw)


def _offline(reports) -> list[str]:
    return [r.source_id for r in reports if r.alarm == "offline" and r.active]


def _ticks(t: AlarmTracker, fleet, wall: float, mono: float, seconds: int) -> list:
    """A tick each second for ``seconds`` from (``wall``, ``mono``), as the service's clock does."""
    out: list = []
    for s in range(1, seconds + 1):
        out += t.tick(fleet, wall + s, mono + s)
    return out


def test_a_wall_clock_step_either_way_changes_no_device_s_silence():
    t, fleet = _tracker(), _fleet(50)
    wall, mono = 1_700_000_000.0, 100.0
    for dev in fleet:
        t.watch(dev, wall, mono)
    assert t.tick(fleet, wall + 1.0, mono + 1.0) == []
    assert t.tick(fleet, wall + 201.0, mono + 2.0) == []  # NTP steps the wall clock 200 s ahead
    assert t.tick(fleet, wall - 1000.0, mono + 3.0) == []  # ... and far back
    assert _ticks(t, fleet, wall - 1000.0, mono + 3.0, 177) == []  # 180 s on the monotonic clock: not yet
    silent = t.tick(fleet, wall - 1000.0 + 177.5, mono + 180.5)
    assert len(_offline(silent)) == 50 and silent[0].at == wall - 1000.0 + 177.5  # the wall time is what the case shows
    assert silent[0].details["silent_s"] == 180.5


def test_a_pause_of_the_process_is_forgiven_and_genuine_silence_still_found():
    t, fleet = _tracker(), _fleet(20)
    quiet = fleet[0]
    for dev in fleet:
        t.watch(dev, 0.0, 0.0)
    for s in range(1, 61):  # a minute, every device but the first heard each second
        for dev in fleet[1:]:
            t.message(dev, MAPPINGS["smart_breaker"].parse(json.dumps(HEARTBEAT).encode(), float(s)), float(s))
        assert t.tick(fleet, float(s), float(s)) == []
    assert t.tick(fleet, 1060.0, 1060.0) == []  # suspended 1000 s: nobody could be heard
    assert (t.silence().gaps, t.silence().gaps_s) == (1, 1000.0)
    for s in range(1061, 1180):  # the first device stays silent: 60 s before the pause + 119 after
        assert t.tick(fleet, float(s), float(s)) == []
    offline = t.tick(fleet, 1181.0, 1181.0)
    assert _offline(offline) == ["iot:brk-00000"] and offline[0].details["silent_s"] == 181.0
    assert quiet.id == "brk-00000" and t.state(quiet.id)[1]


def test_offline_openings_per_tick_are_capped_and_the_rest_open_at_later_ticks():
    t, fleet = _tracker(offline_per_tick=100), _fleet(250)
    for dev in fleet:
        t.watch(dev, 0.0, 0.0)
    assert _ticks(t, fleet, 0.0, 0.0, 180) == []
    first = _offline(t.tick(fleet, 181.0, 181.0))
    assert len(first) == 100 and t.silence().offline_waiting == 150
    spoke = fleet[150]  # heard while its case waited: it never opens
    t.message(spoke, MAPPINGS["smart_breaker"].parse(json.dumps(HEARTBEAT).encode(), 181.5), 181.5)
    second = _offline(t.tick(fleet, 182.0, 182.0))
    third = _offline(t.tick(fleet, 183.0, 183.0))
    assert (len(second), len(third), t.silence().offline_waiting) == (100, 49, 0)
    assert spoke.source_id not in first + second + third and len(set(first + second + third)) == 249
    assert t.tick(fleet, 184.0, 184.0) == []


class _Sink:
    """The incident writer, reduced to what it was told."""

    def __init__(self) -> None:
        self.reports: list = []

    def device_report(self, report):
        self.reports.append(report)

    def close_camera(self, camera_id: str, now: float) -> None:
        pass

    def open_sources(self, prefix: str) -> list:
        return []


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _service(fleet: list[DeviceConfig], sink: _Sink, wall: _Clock, **clocks) -> IotService:
    # checks every 60 s: the service's own clock does not tick during the test
    config = IotConfig(devices=fleet, check_interval_s=60.0)  # offline_per_check: 100 by default
    iot = IotService(config, None, sink, CAT, clock=wall, **clocks)
    iot.start()
    return iot


def test_five_thousand_devices_stay_online_when_the_wall_clock_steps_ahead():
    """The reviewer's case: 5,000 watched devices, the wall clock stepped 200 s ahead."""
    sink, wall = _Sink(), _Clock(1_700_000_000.0)
    iot = _service(_fleet(5000), sink, wall)  # the real monotonic clock
    try:
        wall.t += 200.0
        iot.tick()
        assert [r.alarm for r in sink.reports] == []
    finally:
        iot.stop()


def test_the_service_forgives_a_suspension_and_caps_a_mass_outage(caplog):
    sink, wall, mono = _Sink(), _Clock(1_700_000_000.0), _Clock(50.0)
    iot = _service(_fleet(250), sink, wall, monotonic=mono)
    try:
        wall.t += 600.0
        mono.t += 600.0  # the VM was paused 10 min: the checks stopped, and so did the ingest
        with caplog.at_level(logging.INFO, logger="gridworker.iot.service"):
            iot.tick()
            assert sink.reports == [] and "not counted as the devices' silence" in caplog.text
            for _ in range(181):  # then the broker's network goes down: every device silent
                wall.t += 1.0
                mono.t += 1.0
                iot.tick()
            assert len(sink.reports) == 100 and iot.silence().offline_waiting == 150
            assert "150 offline case(s) wait for the next checks" in caplog.text
            families = {f.name: f.samples[0].value for f in IotCollector(iot).collect() if f.samples}
            assert families["gridworker_iot_offline_waiting"] == 150.0 and families["gridworker_iot_clock_gaps"] == 1.0
            iot.tick()
            iot.tick()
            assert len({r.source_id for r in sink.reports}) == 250 and "no offline case waits any more" in caplog.text
    finally:
        iot.stop()


def _alarm_msg(body: dict, at: float):
    return MAPPINGS["smart_breaker"].parse(json.dumps(body).encode(), at)


def test_alarm_holds_are_judged_on_the_monotonic_clock_too():
    """An alarm's quiet (``clear_after_s``), a restore's hold and the cap on openings follow the
    monotonic clock: the wall clock stepped two hours ahead ends no alarm as quiet, stepped
    back it holds none longer, and the reports still carry the wall times."""
    dev = DeviceConfig(id="brk-1", type="smart_breaker", heartbeat_s=600)
    alarm, restore = {"msg": "alarm", "code": "E01"}, {"msg": "restore", "code": "E01"}
    t = AlarmTracker(MAPPINGS, _kind, clear_after_s=60.0, missed_heartbeats=3, suspended_after_s=5.0, restore_hold_s=30.0)
    wall, mono = 1_700_000_000.0, 100.0
    t.watch(dev, wall, mono)
    assert [(r.alarm, r.active) for r in t.message(dev, _alarm_msg(alarm, wall), mono)] == [("overcurrent", True)]
    assert t.tick([dev], wall + 7201.0, mono + 1.0) == []  # NTP: two hours ahead, one second later
    assert t.state("brk-1")[2] == ["overcurrent"]
    assert t.tick([dev], wall - 3600.0, mono + 2.0) == []  # ... and an hour back
    quiet = []
    for s in range(3, 62):  # a tick each second, the wall clock an hour behind
        quiet += t.tick([dev], wall - 3600.0 + s, mono + s)
    assert [(r.alarm, r.active, r.details["ended_by"]) for r in quiet] == [("overcurrent", False, "quiet")]
    assert quiet[0].at == wall - 3600.0 + 60  # 60 s on the monotonic clock; the wall time is what the case shows
    # a restore's hold: 30 s of the monotonic clock, whatever the wall clock does meanwhile
    w2, m2 = wall + 500.0, mono + 500.0
    for s in range(0, 438, 2):  # the service's clock keeps ticking up to the alarm (no pause to forgive)
        t.tick([dev], wall - 3600.0 + 61 + s, mono + 61 + s)
    assert t.message(dev, _alarm_msg(alarm, w2), m2)
    t.message(dev, _alarm_msg(restore, w2 + 1.0), m2 + 1.0)
    assert t.tick([dev], w2 + 5000.0, m2 + 2.0) == []  # two seconds of monotonic time: still held
    ended = []
    for s in range(3, 32):
        ended += t.tick([dev], w2 - 900.0 + s, m2 + s)
    assert [(r.alarm, r.active, r.details["ended_by"]) for r in ended] == [("overcurrent", False, "restored")]


def test_a_reading_behind_the_last_counts_no_time_now_or_later():
    from gridworker.iot.tracker import AwakeClock

    clock = AwakeClock(suspended_after_s=5.0)
    assert clock.read(100.0) == 100.0
    assert clock.read(103.0) == 103.0
    assert clock.read(101.0) == 103.0  # behind: none
    # the next reading counts from the furthest one (103), not from the one behind it (101)
    assert clock.read(104.0) == 104.0
    assert clock.gaps == 0
