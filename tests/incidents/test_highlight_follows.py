"""Evidence follows the object: an open incident's highlighted track ids (``details.track_ids``)
gain every id its triggering objects take while it is open (a tracker ID switch the rule hands
on, a cooldown re-open, a crowd's new members), bounded by ``MAX_TRACK_IDS``, written only when
the set changes, and the evidence clip carries the object's boxes under all of them.

Scripted tracks through the real analyser, rules and incident manager, a real SQLite store and
a real H.264 clip cut from a PacketRing."""

from __future__ import annotations

import time

import numpy as np

from gridworker.incidents import CameraInfo, IncidentManager, IncidentStore
from gridworker.incidents.clips import ClipRecorder
from gridworker.incidents.manager import MAX_TRACK_IDS
from gridworker.incidents.trail import TrackTrail
from gridworker.streams.frame import Frame
from gridworker.vision.analyzer import FrameAnalysis
from tests.factories import h264_ring
from tests.scenario import Scenario

FPS = 10  # the clip's frame rate; the scenario is analysed at 5 fps
KERB = {"id": "kerb", "rules": [{"type": "illegal_parking", "min_duration_s": 2.0, "clear_after_s": 3.0, "lost_grace_s": 2.0}]}
CAR_A = (100.0, 600.0, 300.0, 700.0)
CAR_B = (600.0, 600.0, 800.0, 700.0)


class _CountingStore(IncidentStore):
    """The real store, counting the progress writes (``touch``) that carried track ids."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.id_writes: list[list[int]] = []
        self.touches = 0

    def touch(self, incident_id, *, at, count, summary, observations, details=None):
        self.touches += 1
        if details and "track_ids" in details:
            self.id_writes.append(list(details["track_ids"]))
        super().touch(incident_id, at=at, count=count, summary=summary, observations=observations, details=details)


def _manager(store: IncidentStore, **kw) -> IncidentManager:
    return IncidentManager(store=store, camera_info=lambda _cam: CameraInfo(name="Kerb"), **kw)


def _at(a: FrameAnalysis, t0: float) -> FrameAnalysis:
    """The scenario's frame on the wall clock (``t0`` + its time), as a live camera's frame is."""
    f = a.frame
    return FrameAnalysis(Frame(f.camera_id, f.seq, t0 + f.ts, f.image), a.detections, a.verdicts, a.zones, a.crossings, a.signals)


def test_parked_car_renumbered_mid_incident_stays_boxed_in_its_clip(tmp_path):
    """The key case: the tracker renumbers a parked car (1 → 41) while its incident is open and
    before its clip is cut. The parking rule hands the stay on (one incident); the incident's
    ids follow, and the clip's boxes show the car under 41 on every analysed frame after the
    switch, at its place, never the car parked beside it."""
    sc = Scenario(fps=5)
    sc.track("car", CAR_A, track_id=1).stay(0, 4).hide(4, 4.6).stay(4.6, 10).switch_id(4.6, new_id=41)
    sc.track("car", CAR_B, track_id=2).stay(0, 10)  # parked too: its own incident, never in the other's clip
    run = sc.run([KERB], until=10)

    t0 = time.time() - 11.0  # the camera's video and the analysed frames share the wall clock
    ring = h264_ring(tmp_path, seconds=11, fps=FPS, start=t0)
    trail = TrackTrail(keep_s=60.0)
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    manager = _manager(store, write_interval_s=1.0, trail=trail)
    opened = [inc for a in run.analyses for inc in manager.observe(_at(a, t0))]
    by_track = {i.details["track"]: i for i in opened}
    assert sorted(by_track) == [1, 2], "one incident per car: the renumbered car's stay went on"
    inc = by_track[1]
    assert inc.details["track_ids"] == [1] and inc.opened_at - t0 < 4.0, "opened before the switch"

    recorder = ClipRecorder(
        store, {"scenario": ring}.get, tmp_path / "clips", pre_s=2.0, post_s=6.0, grace_s=0.0, trail=trail,
        highlighted=manager.highlighted,
    )
    recorder(inc)  # what on_open queued; cut (post_s has passed) with what the ring holds
    recorder(by_track[2])
    recorder.stop()
    clip, tracks = store.clip(inc.id), store.clip_tracks(inc.id)
    stored = store.get(inc.id)
    other = store.get(by_track[2].id)
    assert clip is not None and tracks

    switch = t0 + 4.6
    start_ts = inc.opened_at - clip.offset_s  # the wall time of the clip's first frame
    assert start_ts < switch < start_ts + clip.duration_s - 2.0, "the switch is well inside the clip"
    after = [p for p in tracks if start_ts + p["t"] >= switch - 1e-6]
    before = [p for p in tracks if start_ts + p["t"] < switch - 1e-6]
    frames_after = [a for a in run.analyses if switch - 1e-6 <= t0 + a.frame.ts <= start_ts + clip.duration_s]
    assert len(after) >= len(frames_after) - 1 >= 10, "the car stays boxed on (nearly) every analysed frame after the switch"
    car_a = [round(v / 1000, 4) for v in CAR_A]
    assert all(p["boxes"] == [[41, *car_a]] for p in after), "boxed under its new id, at its place"
    assert before and all(p["boxes"] == [[1, *car_a]] for p in before)
    assert {b[0] for p in tracks for b in p["boxes"]} == {1, 41}, "never the car parked beside it"
    # the case names both ids; the neighbour's incident only its own car
    assert stored is not None and stored.details["track_ids"] == [1, 41] and stored.details["track"] == 41
    assert other is not None and other.details["track_ids"] == [2]
    other_tracks = store.clip_tracks(by_track[2].id)
    assert other_tracks and {b[0] for p in other_tracks for b in p["boxes"]} == {2}
    store.close()


def test_without_the_live_lookup_the_clip_keeps_the_opening_ids(tmp_path):
    """A recorder not given ``highlighted`` (or whose lookup fails) still cuts the clip, with
    the ids the incident opened with."""
    now = time.time()
    ring = h264_ring(tmp_path, seconds=3, fps=FPS, start=now - 3.0)
    trail = TrackTrail(keep_s=60.0)
    trail.add("cam1", now - 1.0, np.array([5, 6]), np.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.6]]))
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")

    def broken(_incident_id: int) -> list[int]:
        raise RuntimeError("database down")

    recorder = ClipRecorder(
        store, {"cam1": ring}.get, tmp_path / "clips", pre_s=1.5, post_s=0.0, grace_s=0.0, trail=trail, highlighted=broken
    )
    inc = store.open(
        camera_id="cam1", camera_name="Gate", site="s", zone_id="z", rule_id="r", type="dwell", at=now - 0.5,
        count=1, summary="car", details={"track_ids": [5]}, snapshot=None,
    )
    recorder(inc)
    recorder.stop()
    tracks = store.clip_tracks(inc.id)
    store.close()
    assert tracks and {b[0] for p in tracks for b in p["boxes"]} == {5}


def test_object_back_in_the_cooldown_under_a_new_id_is_highlighted_under_both(tmp_path):
    """A parked car the detector lost for 10 s comes back at its place under a new id: the
    closed incident continues (cooldown) and its ids follow it."""
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    sc = Scenario(fps=5)
    sc.track("car", CAR_A, track_id=1).stay(0, 10).hide(10, 20).stay(20, 30).switch_id(20, new_id=77)
    run = sc.run([{"id": "kerb", "rules": [{"type": "illegal_parking", "min_duration_s": 2.0, "clear_after_s": 3.0, "lost_grace_s": 0.0}]}], until=30)
    manager = _manager(store, write_interval_s=1.0)
    reopened: list[int] = []
    manager.on_reopen.append(lambda i, _at: reopened.append(i))
    opened = [inc for a in run.analyses for inc in manager.observe(a)]
    assert len(opened) == 1 and reopened == [opened[0].id], "one incident: it continued"
    assert manager.highlighted(opened[0].id) == [1, 77]
    stored = store.get(opened[0].id)
    store.close()
    assert stored is not None and stored.status == "open" and stored.details["track_ids"] == [1, 77]


def test_crowd_highlights_its_members_as_they_join_written_only_when_they_change(tmp_path):
    """A zone-level rule names every contributing object: a person who joins the crowd joins its
    ids. The ids are written with the incident's progress only when one joins (here, with the
    interval writes off, the only writes there are)."""
    store = _CountingStore(f"sqlite:///{tmp_path / 'i.db'}")
    sc = Scenario(fps=5)
    for k in range(3):
        sc.track("person", (100 + 150 * k, 300, 160 + 150 * k, 450), track_id=k + 1).stay(0, 20)
    sc.track("person", (100, 600, 160, 750), track_id=4).hide(0, 6).stay(6, 12)  # joins at 6 s, leaves at 12 s
    sc.track("person", (400, 600, 460, 750), track_id=5).hide(0, 12).stay(12, 20)  # takes their place: the count stays 4
    run = sc.run([{"id": "square", "rules": [{"type": "crowd", "min_count": 3, "min_duration_s": 1.0}]}], until=20)
    manager = _manager(store, write_interval_s=1000.0)
    seen: dict[float, list[int]] = {}
    opened = []
    for a in run.analyses:
        opened += manager.observe(a)
        if opened:
            seen[round(a.frame.ts, 1)] = manager.highlighted(opened[0].id) or []
    assert len(opened) == 1
    inc = opened[0]
    assert sorted(inc.details["track_ids"]) == [1, 2, 3]
    assert sorted(seen[5.0]) == [1, 2, 3] and sorted(seen[8.0]) == [1, 2, 3, 4] and sorted(seen[16.0]) == [1, 2, 3, 4, 5]
    assert [sorted(w) for w in store.id_writes] == [[1, 2, 3, 4], [1, 2, 3, 4, 5]], "one write per change, none per frame"
    assert store.touches == 2
    stored = store.get(inc.id)
    store.close()
    assert stored is not None and sorted(stored.details["track_ids"]) == [1, 2, 3, 4, 5]


def test_highlighted_ids_are_capped_keeping_those_still_on_screen(tmp_path):
    """A crowd of more people than ``MAX_TRACK_IDS``: the incident keeps the first
    ``MAX_TRACK_IDS`` and does not churn; when ten leave and ten others come, the ids least
    recently seen make room, never one still on the frame, and nothing is written for it before
    the interval."""
    assert MAX_TRACK_IDS == 64
    store = _CountingStore(f"sqlite:///{tmp_path / 'i.db'}")
    sc = Scenario(fps=5)
    boxes = [(20 + 95 * (k % 10), 20 + 110 * (k // 10), 60 + 95 * (k % 10), 100 + 110 * (k // 10)) for k in range(80)]
    for k in range(70):
        tr = sc.track("person", boxes[k], track_id=k + 1)
        tr.stay(0, 5) if k < 10 else tr.stay(0, 10)  # 1..10 leave at 5 s
    for k in range(70, 80):
        sc.track("person", boxes[k], track_id=k + 1).hide(0, 5).stay(5, 10)  # 71..80 come at 5 s
    run = sc.run([{"id": "square", "rules": [{"type": "crowd", "min_count": 20, "min_duration_s": 1.0}]}], until=10)
    manager = _manager(store, write_interval_s=1000.0)
    opened = []
    sizes = set()
    for a in run.analyses:
        opened += manager.observe(a)
        if opened:
            sizes.add(len(manager.highlighted(opened[0].id) or []))
    assert len(opened) == 1
    inc = opened[0]
    assert inc.details["track_ids"] == list(range(1, 65)), "the first MAX_TRACK_IDS of the opening frame"
    assert sizes == {MAX_TRACK_IDS}
    # 1..10 left: they make room; the room goes to those on the frame in frame order (65..70 had waited)
    final = manager.highlighted(inc.id)
    assert final is not None and sorted(final) == list(range(11, 75))
    # a zone-level incident's members churn: their ids wait for the interval write (off here),
    # not a prompt write per change; the clip reads them from memory meanwhile
    assert store.id_writes == [], "no prompt write for a crowd's changing members"
    stored = store.get(inc.id)
    store.close()
    assert stored is not None and stored.details["track_ids"] == list(range(1, 65))  # as opened, until the next write


def test_rider_standing_in_for_a_hidden_bicycle_is_drawn_as_its_own_box_and_named_the_bicycle(tmp_path):
    """A cyclist rides up and waits in a no-bicycle-parking zone; the detector misses the bicycle
    for a while. Meanwhile the rider's box stands for it (the rule's stay goes on under the
    bicycle's track, #2): the incident highlights the box on screen under its own id (the
    person's #1, as the trail records it) besides the bicycle's, and the rule's words name the
    bicycle, not "person"."""
    rider, bike = (160, 300, 240, 480), (140, 380, 260, 500)
    sc = Scenario(fps=5)
    sc.track("person", rider, track_id=1).move(0, 3, dx=300).stay(3, 15)
    sc.track("bicycle", bike, track_id=2).move(0, 3, dx=300).stay(3, 8).hide(8, 9.4).stay(9.4, 15)
    zone = {"id": "pavement", "rules": [{"type": "nonmotor_parking", "min_duration_s": 2.0, "lost_grace_s": 2.0}]}
    run = sc.run([zone], until=15)
    hidden = [r for t, r in run.results("pavement", "nonmotor_parking") if 8.2 <= t <= 9.2]
    assert hidden and all(r.active and len(r.hits) == 1 for r in hidden), "the stay goes on while only the rider is seen"
    for a in run.analyses:
        if 8.2 <= a.frame.ts <= 9.2:
            (hit,) = next(v.result.hits for v in a.verdicts)
            assert list(a.detections.data["class_name"]) == ["person"] and a.detections.tracker_id[hit.subjects].tolist() == [1]
            assert hit.details["track"] == 2 and hit.details["class"] == "bicycle"
            assert "bicycle #2" in hit.summary and "person" not in hit.summary
    store = IncidentStore(f"sqlite:///{tmp_path / 'i.db'}")
    manager = _manager(store, write_interval_s=1.0)
    opened = [inc for a in run.analyses for inc in manager.observe(a)]
    assert len(opened) == 1 and opened[0].details["track_ids"] == [2] and opened[0].opened_at < 8.0
    stored = store.get(opened[0].id)
    store.close()
    assert stored is not None and sorted(stored.details["track_ids"]) == [1, 2] and stored.details["track"] == 2
    assert "person" not in stored.summary and "bicycle #2" in stored.summary


def test_an_incident_adopted_after_a_restart_keeps_its_ids_and_follows_on(tmp_path):
    """After a restart the adopted incident starts from its stored ids and adds new ones."""
    url = f"sqlite:///{tmp_path / 'i.db'}"
    sc = Scenario(fps=5)
    sc.track("car", CAR_A, track_id=1).stay(0, 5).switch_id(5, new_id=9).stay(5, 10)
    run = sc.run([{"id": "gate", "rules": [{"type": "intrusion", "classes": ["car"], "clear_after_s": 3.0}]}], until=10)
    first, second = [a for a in run.analyses if a.frame.ts < 4.0], [a for a in run.analyses if a.frame.ts >= 4.0]
    store = IncidentStore(url)
    before = _manager(store, write_interval_s=1.0)
    opened = [inc for a in first for inc in before.observe(a)]
    assert len(opened) == 1 and opened[0].details["track_ids"] == [1]
    store.close()

    store = IncidentStore(url)  # the restart
    manager = _manager(store, write_interval_s=1.0)
    manager.adopt_open([("scenario", "gate", "intrusion")], now=4.0)
    assert manager.highlighted(opened[0].id) == [1]
    assert [inc for a in second for inc in manager.observe(a)] == []
    assert manager.highlighted(opened[0].id) == [1, 9]
    stored = store.get(opened[0].id)
    store.close()
    assert stored is not None and stored.details["track_ids"] == [1, 9]
