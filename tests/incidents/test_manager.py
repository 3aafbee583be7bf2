"""Incident lifecycle on a real database (SQLite, and PostgreSQL when reachable)."""

import numpy as np
import pytest

from gridworker.incidents import CameraInfo, IncidentManager, IncidentQuery, IncidentStore
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import CameraAnalyzer, FrameAnalysis
from gridworker.incidents.snapshots import EvidenceRenderer
from gridworker.vision.config import ZoneConfig
from tests.factories import make_detections
from tests.scenario import Scenario

ZONE = ZoneConfig(
    id="no-parking",
    polygon=[(0, 0), (1, 0), (1, 1), (0, 1)],
    rules=[{"type": "dwell", "min_duration_s": 2.0, "clear_after_s": 3.0, "lost_grace_s": 0.0}],
)


def _frame(t: float, seq: int) -> Frame:
    return Frame("cam1", seq, t, np.full((120, 160, 3), 90, np.uint8))


def _car():
    return make_detections([[40, 40, 100, 90]], class_name=["car"], confidence=[0.9])


def _run(manager: IncidentManager, analyzer: CameraAnalyzer, times, present):
    opened = []
    for seq, t in enumerate(times):
        dets = _car() if present(t) else make_detections([])
        opened += manager.observe(analyzer.analyze(_frame(t, seq), dets))
    return opened


def _manager(store: IncidentStore) -> IncidentManager:
    return IncidentManager(store=store, camera_info=lambda cid: CameraInfo(name="Gate", site="school"), write_interval_s=1.0)


def test_one_incident_per_condition_then_closed(store):
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[ZONE])
    times = [i * 0.5 for i in range(40)]  # 20 s: car present 0..10 s, then gone
    opened = _run(manager, analyzer, times, present=lambda t: t < 10)
    assert len(opened) == 1, "a parked car must open exactly one incident"
    items, total = store.list(IncidentQuery())
    assert total == 1
    inc = items[0]
    assert inc.type == "dwell" and inc.zone_id == "no-parking" and inc.camera_name == "Gate" and inc.site == "school"
    assert inc.status == "closed"
    assert 2.0 <= inc.opened_at <= 3.5  # the dwell threshold, plus the tracker's confirmation frame
    assert inc.closed_at is not None and 12.5 <= inc.closed_at <= 14.0  # clear for clear_after_s
    assert inc.observations > 5
    jpeg = store.snapshot(inc.id)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8" and len(jpeg) > 1000


def test_reopens_after_close(store):
    """Gone for 10 s, back at the same place: without rejoin and cooldown, a new incident;
    with the defaults (the detector may simply have lost it) the same incident continues."""
    fresh = ZoneConfig.model_validate({**ZONE.model_dump(), "rules": [{**ZONE.rules[0].model_dump(), "rejoin_s": 0.0, "cooldown_s": 0.0}]})
    times = [i * 0.5 for i in range(80)]
    back = lambda t: t < 10 or t > 20  # noqa: E731
    opened = _run(_manager(store), CameraAnalyzer("cam1", fps=2, scene=[fresh]), times, back)
    assert len(opened) == 2
    assert store.list(IncidentQuery(status="open"))[1] == 1
    assert store.list(IncidentQuery(status="closed"))[1] == 1
    continued = _run(_manager(store), CameraAnalyzer("cam2", fps=2, scene=[ZONE]), times, back)
    assert len(continued) == 1 and store.get(continued[0].id).status == "open"


class _RecordingRenderer(EvidenceRenderer):
    """Remembers which detection boxes each snapshot named as the trigger."""

    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[list[tuple[float, ...]]] = []

    def render(self, image_rgb, detections, subjects, zone=None, zone_name=""):
        idx = np.asarray(subjects, dtype=np.int64)
        self.highlighted.append([tuple(float(v) for v in detections.xyxy[i]) for i in idx])
        return super().render(image_rgb, detections, subjects, zone, zone_name)


KERB = {
    "id": "kerb",
    "rules": [{"type": "illegal_parking", "min_duration_s": 2.0, "clear_after_s": 3.0, "lost_grace_s": 2.0}],
}
CAR_A = (100.0, 600.0, 300.0, 700.0)
CAR_B = (600.0, 600.0, 800.0, 700.0)


def _observe(manager: IncidentManager, run) -> list:
    opened = []
    for a in run.analyses:
        opened += manager.observe(a)
    return opened


def test_each_parked_car_is_its_own_incident(store):
    sc = Scenario(fps=5)
    sc.track("car", CAR_A, track_id=1).stay(0, 20)
    sc.track("car", CAR_B, track_id=2).stay(0, 10).move(10, 12, dx=-700, dy=-600)  # drives off at 10 s
    annotator = _RecordingRenderer()
    manager = IncidentManager(store=store, camera_info=lambda cid: CameraInfo(), snapshots=annotator, write_interval_s=1.0)
    run = sc.run([KERB], until=20)
    opened = _observe(manager, run)

    assert len(opened) == 2, "two parked cars are two incidents"
    by_track = {i.details["track"]: i for i in opened}
    assert set(by_track) == {1, 2}
    a, b = by_track[1], by_track[2]
    assert a.details["object"] == "1@0.000" and b.details["object"] == "2@0.000"
    assert a.peak_count == b.peak_count == 1 and "#1" in a.summary and "#2" in b.summary
    assert a.details["type_name_zh"] == "机动车违停" and a.details["category"] == "traffic"
    # each snapshot highlights its own car, and only it
    assert [tuple(h) for h in annotator.highlighted] == [((CAR_A if i.details["track"] == 1 else CAR_B),) for i in opened]
    assert store.snapshot(a.id)[:2] == b"\xff\xd8" and store.snapshot(b.id)[:2] == b"\xff\xd8"
    assert a.details["track_ids"] == [1] and b.details["track_ids"] == [2]  # the case names its object

    # car 2 drove off at 10 s: its stay ends once the move has lasted 1 s (confirm_s), and
    # its incident closes clear_after_s (3 s) after that, while car 1's stays open
    b_now, a_now = store.get(b.id), store.get(a.id)
    assert b_now.status == "closed" and 13.6 <= b_now.closed_at <= 14.4
    assert a_now.status == "open" and a_now.peak_count == 1
    assert manager.open_count("scenario") == 1 and manager.open_types("scenario") == ["illegal_parking"]
    # the verdict itself is still one per zone, with both cars while both were parked
    both = [r for t, r in run.results("kerb", "illegal_parking") if t == 5.0][0]
    assert both.count == 2 and len(both.hits) == 2


def test_id_switch_keeps_the_objects_incident(store):
    sc = Scenario(fps=5)
    sc.track("car", CAR_A, track_id=1).stay(0, 8).hide(8, 9).stay(9, 20).switch_id(9, new_id=41)
    sc.track("car", CAR_B, track_id=2).stay(0, 20)
    manager = _manager(store)
    run = sc.run([KERB], until=20)
    opened = _observe(manager, run)
    assert sorted(i.details["object"] for i in opened) == ["1@0.000", "2@0.000"]
    after = [r for t, r in run.results("kerb", "illegal_parking") if t == 15.0][0]
    assert sorted((h.key, h.details["track"]) for h in after.hits) == [("1@0.000", 41), ("2@0.000", 2)]
    assert store.list(IncidentQuery(status="open"))[1] == 2 and store.list(IncidentQuery())[1] == 2


def test_zone_level_rule_stays_one_incident(store):
    sc = Scenario(fps=5)
    sc.track("person", CAR_A).stay(0, 10)
    sc.track("person", CAR_B).stay(2, 10)
    manager = _manager(store)
    opened = _observe(manager, sc.run([{"id": "yard", "rules": [{"type": "intrusion"}]}], until=10))
    assert len(opened) == 1 and "object" not in opened[0].details
    assert store.get(opened[0].id).peak_count == 2


def test_removed_per_object_rule_closes_all_its_incidents(store):
    sc = Scenario(fps=5)
    sc.track("car", CAR_A).stay(0, 10)
    sc.track("car", CAR_B).stay(0, 10)
    manager = _manager(store)
    run = sc.run([KERB], until=5)
    assert len(_observe(manager, run)) == 2
    later = Scenario(fps=5)
    later.track("car", CAR_A).stay(0, 1)
    rerun = later.run([{"id": "kerb", "rules": [{"type": "crowd"}]}], until=1)  # the parking rule is gone
    manager.observe(rerun.analyses[0])
    assert manager.open_count() == 0 and store.list(IncidentQuery(status="open"))[1] == 0


GATE = ZoneConfig(
    id="gate",
    polygon=[(0, 0), (1, 0), (1, 1), (0, 1)],
    rules=[{"type": "intrusion", "classes": ["car"], "clear_after_s": 3.0}],
)


def test_zone_level_incident_survives_restart(store_url):
    store = IncidentStore(store_url)
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[GATE])
    _run(manager, analyzer, [i * 0.5 for i in range(10)], present=lambda t: True)
    first = store.list(IncidentQuery(status="open"))[0]
    assert len(first) == 1 and "object" not in first[0].details
    store.close()

    # "restart": new store, manager and analyzer on the same database
    store2 = IncidentStore(store_url)
    manager2 = _manager(store2)
    manager2.adopt_open([("cam1", "gate", "intrusion")], now=5.0)
    assert manager2.open_count("cam1") == 1
    analyzer2 = CameraAnalyzer("cam1", fps=2, scene=[GATE])
    opened = _run(manager2, analyzer2, [5 + i * 0.5 for i in range(10)], present=lambda t: True)
    assert opened == [], "the zone's condition still holding continues the incident adopted after the restart"
    items, total = store2.list(IncidentQuery())
    assert total == 1 and items[0].id == first[0].id and items[0].status == "open"
    store2.close()


PATIENT = ZoneConfig(
    id="no-parking",
    polygon=[(0, 0), (1, 0), (1, 1), (0, 1)],
    rules=[{"type": "dwell", "min_duration_s": 2.0, "clear_after_s": 6.0, "lost_grace_s": 0.0}],
)


def _other_car():
    return make_detections([[100, 40, 150, 80]], class_name=["car"], confidence=[0.9])


@pytest.mark.parametrize("same_place", [True, False])
def test_per_object_incident_after_restart(store_url, same_place):
    """Rule clocks live in memory: after a restart a per-object incident is adopted under its
    object key, which never comes back (the rules give every object a new key). A car that
    qualifies again where the incident's car stood, while the adopted incident is still
    open, continues it; a car elsewhere opens its own, and the adopted one closes
    clear_after_s after the restart."""
    store = IncidentStore(store_url)
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[PATIENT])
    _run(manager, analyzer, [i * 0.5 for i in range(10)], present=lambda t: True)
    (before,) = store.list(IncidentQuery(status="open"))[0]
    assert before.details["object"] == f"{before.details['track']}@{before.details['since']:.3f}"
    assert before.details["box"] == pytest.approx([40 / 160, 40 / 120, 100 / 160, 90 / 120], abs=1e-3)
    store.close()

    store2 = IncidentStore(store_url)
    manager2 = _manager(store2)
    manager2.adopt_open([("cam1", "no-parking", "dwell")], now=10.0)
    assert manager2.open_count("cam1") == 1 and manager2.open_types("cam1") == ["dwell"]
    analyzer2 = CameraAnalyzer("cam1", fps=2, scene=[PATIENT])
    opened = []
    for seq, t in enumerate(10 + i * 0.5 for i in range(20)):
        dets = _car() if same_place else _other_car()
        opened += manager2.observe(analyzer2.analyze(_frame(t, seq), dets))
    old = store2.get(before.id)
    if same_place:
        assert opened == [] and old.status == "open", "the car still parked there continues the adopted incident"
        assert store2.list(IncidentQuery())[1] == 1 and old.observations > before.observations
    else:
        assert len(opened) == 1 and opened[0].details["object"] != before.details["object"]
        assert 12.0 <= opened[0].opened_at <= 13.5
        assert old.status == "closed" and 16.0 <= old.closed_at <= 16.5  # 10 s + clear_after_s
    assert manager2.open_count("cam1") == 1
    store2.close()


def test_adopt_open_rebuilds_object_keys(store):
    common = dict(camera_name="", site="", zone_id="kerb", type="illegal_parking", count=1, summary="", snapshot=None)
    a = store.open(camera_id="cam1", rule_id="illegal_parking", at=1.0, details={"object": "3@0.000"}, **common)
    b = store.open(camera_id="cam1", rule_id="illegal_parking", at=2.0, details={"object": "4@0.500"}, **common)
    gone = store.open(camera_id="cam1", rule_id="old_rule", at=2.0, details={"object": "5@0.000"}, **common)
    manager = _manager(store)
    manager.adopt_open([("cam1", "kerb", "illegal_parking")], now=100.0)
    assert manager.open_count("cam1") == 2 and manager.open_count() == 2
    assert store.get(gone.id).status == "closed"
    assert set(manager._open) == {("cam1", "kerb", "illegal_parking", "3@0.000"), ("cam1", "kerb", "illegal_parking", "4@0.500")}
    # a second adoption (e.g. a repeated start) adds nothing and closes nothing
    manager.adopt_open([("cam1", "kerb", "illegal_parking")], now=101.0)
    assert manager.open_count() == 2 and {store.get(a.id).status, store.get(b.id).status} == {"open"}


def test_adopt_closes_incidents_of_removed_rules(store):
    manager = _manager(store)
    analyzer = CameraAnalyzer("cam1", fps=2, scene=[ZONE])
    _run(manager, analyzer, [i * 0.5 for i in range(10)], present=lambda t: True)
    fresh = _manager(store)
    fresh.adopt_open([], now=100.0)
    assert store.list(IncidentQuery(status="open"))[1] == 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (IncidentQuery(), 3),
        (IncidentQuery(camera_id="a"), 2),
        (IncidentQuery(type="crowd"), 1),
        (IncidentQuery(status="open"), 3),
        (IncidentQuery(status="closed"), 0),
        (IncidentQuery(since=150.0), 2),
        (IncidentQuery(since=150.0, until=250.0), 1),
        (IncidentQuery(limit=2), 3),
    ],
)
def test_list_filters(store, query, expected):
    for cam, typ, at in (("a", "dwell", 100.0), ("a", "crowd", 200.0), ("b", "dwell", 300.0)):
        store.open(
            camera_id=cam, camera_name="", site="", zone_id="z", rule_id=typ, type=typ, at=at, count=1, summary="", details={}, snapshot=None
        )
    items, total = store.list(query)
    assert total == expected
    assert len(items) == min(expected, query.limit)
    assert [i.opened_at for i in items] == sorted((i.opened_at for i in items), reverse=True)


def test_partial_analysis_leaves_the_rules_it_did_not_run_alone(tmp_path):
    """A patrol glance runs only the rules that need no tracking: the incident a watch stop
    opened with a tracked rule must survive it; a full analysis without that rule closes it."""
    both = [
        {"id": "kerb", "rules": [{"type": "dwell", "min_duration_s": 2, "clear_after_s": 30}]},
        {"id": "gate", "rules": [{"type": "intrusion", "classes": ["person"]}]},
    ]
    glance_only = [{"id": "gate", "rules": [{"type": "intrusion", "classes": ["person"]}]}]
    sc = Scenario(fps=5)
    sc.track("car", (400, 600, 600, 700)).stay(0, 10)
    watch = sc.run(both, until=5)
    glance = sc.run(glance_only, until=1)
    for partial, expect_open in ((True, True), (False, False)):
        store = IncidentStore(f"sqlite:///{tmp_path / f'p{partial}.db'}")
        manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=0.0)
        for a in watch.analyses:
            manager.observe(a)
        assert manager.open_count() == 1
        last = glance.analyses[-1]
        later = FrameAnalysis(Frame(last.frame.camera_id, 999, 6.0, last.frame.image), last.detections, last.verdicts, last.zones)
        manager.observe(later, partial=partial)
        assert (manager.open_count() == 1) is expect_open
        store.close()


def test_a_failing_open_listener_does_not_stop_the_others(tmp_path):
    store = IncidentStore(f"sqlite:///{tmp_path / 'l.db'}")
    seen = []

    def broken(_inc):
        raise RuntimeError("listener down")

    manager = IncidentManager(store=store, camera_info=lambda _c: CameraInfo(), write_interval_s=0.0, on_open=[broken, seen.append])
    sc = Scenario(fps=5)
    sc.track("person", (400, 600, 440, 700)).stay(0, 2)
    for a in sc.run([{"id": "z", "rules": [{"type": "intrusion"}]}], until=2).analyses:
        manager.observe(a)
    assert [i.type for i in seen] == ["intrusion"]
    assert store.get(seen[0].id) is not None
    store.close()


def test_a_parked_car_lost_for_a_while_continues_its_incident(store):
    """The detector loses the parked car for 10 s (longer than lost_grace_s + clear_after_s, so
    its incident closes), then finds it at the same spot under a new track: the rule gives it
    its key back (rejoin_s) and the manager continues the closed incident within the
    cooldown: one incident for one parked car, told to on_reopen once, open at the end."""
    sc = Scenario(fps=5)
    sc.track("car", CAR_A, track_id=1).stay(0, 12).hide(12, 22).stay(22, 35).switch_id(22, new_id=7)
    manager = _manager(store)
    reopened: list[int] = []
    manager.on_reopen.append(lambda incident_id, at: reopened.append(incident_id))
    opened = _observe(manager, sc.run([KERB], until=35))
    assert len(opened) == 1, [i.details["object"] for i in opened]
    assert reopened == [opened[0].id]
    final = store.get(opened[0].id)
    assert final.status == "open" and final.closed_at is None
    assert store.list(IncidentQuery())[1] == 1
