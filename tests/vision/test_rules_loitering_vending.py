"""徘徊 loitering and 占道经营 street_vending on scripted tracks.

Both rules are per-object: each loiterer, each vendor, is their own incident.
``clear_after_s: 0`` where "exactly one incident" (per person) is asserted: one frame
without the person's hit after their first firing would then open a second incident.
"""

import pytest

from tests.scenario import Scenario

T = 20.0
FPS = 5
FRAME = 1 / FPS
GATE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.9), (0.2, 0.9)]  # x 200..800, y 200..900 px
PERSON = (480, 500, 520, 620)  # 40 × 120 px, ground point (500, 620)


def _loitering(**rule):
    return [{"id": "gate", "polygon": GATE, "rules": [{"type": "loitering", "min_duration_s": T, "clear_after_s": 0, **rule}]}]


def _on(run, zone, rule):
    return [on for _, on in run.active(zone, rule)]


def _wander(track, t0, t1, step=5.0, reach=120.0):
    """Walk a square of side ``reach`` px, ``step`` s per side, from t0 to t1."""
    moves = [(reach, 0.0), (0.0, -reach), (-reach, 0.0), (0.0, reach)]
    t, k = t0, 0
    while t < t1:
        dx, dy = moves[k % 4]
        end = min(t + step, t1)
        track.move(t, end, dx=dx * (end - t) / step, dy=dy * (end - t) / step)
        t, k = end, k + 1
    return track


def test_loiterer_fires_at_threshold_once_moving_or_not(tmp_path):
    sc = Scenario(fps=FPS)
    p = sc.track("person", PERSON, track_id=3).jitter(2)
    _wander(p, 0, 15).stay(15, 25)
    _wander(p, 25, 40)
    run = sc.run(zones=_loitering(), until=40)
    assert run.first_active("gate", "loitering") == pytest.approx(T, abs=FRAME)
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].type == "loitering"
    _, last = run.results("gate", "loitering")[-1]
    assert last.count == 1 and last.details["tracks"] == [3] and last.subjects.tolist() == [0]
    assert last.details["persons"][0]["in_zone_s"] == pytest.approx(40, abs=FRAME)
    assert "person #3 for 40 s" in last.summary


def test_passers_by_never_fire_even_back_to_back():
    """Twenty people cross the gate zone, each in 4-8 s, half of them entering where the
    previous one just left (two-way traffic): no clock is handed on."""
    sc = Scenario(fps=FPS)
    for i in range(20):
        t0 = 2.0 * i
        y = 500 + (i % 3) * 60
        if i % 2 == 0:  # left to right, leaving the zone at x = 850 and walking on out of view
            sc.track("person", (60, y, 100, y + 120)).move(t0, t0 + 6, dx=800).move(t0 + 6, t0 + 7, dx=150)
        else:  # right to left, entering where the previous one left
            sc.track("person", (840, y, 880, y + 120)).move(t0, t0 + 6, dx=-800).move(t0 + 6, t0 + 7, dx=-150)
    run = sc.run(zones=_loitering(), until=50)
    assert not any(_on(run, "gate", "loitering"))


def test_passers_through_whole_frame_zone_never_fire():
    """Zone = whole frame: people leave through the frame border, and the next one entering
    there within the grace does not continue their clock."""
    sc = Scenario(fps=FPS)
    for i in range(12):
        t0 = 4.0 * i
        if i % 2 == 0:
            sc.track("person", (0, 500, 40, 620)).move(t0, t0 + 8, dx=960)
        else:
            sc.track("person", (960, 500, 1000, 620)).move(t0, t0 + 8, dx=-960)
    run = sc.run(zones=[{"id": "gate", "rules": [{"type": "loitering", "min_duration_s": T}]}], until=60)
    assert not any(_on(run, "gate", "loitering"))


def test_loiterer_id_switch_and_occlusion_keep_clock(tmp_path):
    sc = Scenario(fps=FPS)
    p = sc.track("person", PERSON, track_id=1)
    _wander(p, 0, 10).hide(10, 12)  # behind a pillar for 2 s ...
    p.move(12, 14, dx=20)  # ... and back 20 px further as track 1001
    _wander(p, 14, 40)
    p.switch_id(11)
    run = sc.run(zones=_loitering(), until=40)
    assert run.first_active("gate", "loitering") == pytest.approx(T, abs=FRAME)
    assert len(run.incidents(tmp_path)) == 1
    _, last = run.results("gate", "loitering")[-1]
    assert last.details["persons"][0]["track"] == 1001 and last.details["persons"][0]["previous_tracks"] == [1]


def test_new_person_far_from_vanished_one_starts_own_clock():
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON, track_id=1).stay(0, 10)
    sc.track("person", (680, 500, 720, 620), track_id=2).stay(11, 40)  # 200 px = 1.7 heights away
    run = sc.run(zones=_loitering(), until=40)
    assert run.first_active("gate", "loitering") == pytest.approx(11 + T, abs=FRAME)


def test_stepping_out_briefly_keeps_clock_longer_restarts():
    sc = Scenario(fps=FPS)
    p = sc.track("person", (480, 200, 520, 320), track_id=1).stay(0, 10)  # ground point y 320, zone starts at 200
    p.move(10, 11, dy=-150).stay(11, 12).move(12, 13, dy=150).stay(13, 40)  # 3 s outside (grace 5 s)
    run = sc.run(zones=_loitering(), until=40)
    assert run.first_active("gate", "loitering") == pytest.approx(T, abs=FRAME)

    sc = Scenario(fps=FPS)
    p = sc.track("person", (480, 200, 520, 320), track_id=1).stay(0, 10)
    p.move(10, 11, dy=-150).stay(11, 17).move(17, 18, dy=150).stay(18, 50)  # 8 s outside
    run = sc.run(zones=_loitering(), until=50)
    first = run.first_active("gate", "loitering")
    assert first is not None and first > 30


def test_each_person_judged_on_their_own(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON, track_id=1).stay(0, 40)
    sc.track("person", (300, 400, 340, 520), track_id=2).stay(10, 40)
    sc.track("person", (650, 600, 690, 720), track_id=3).stay(0, 15)  # leaves (vanishes) after 15 s
    run = sc.run(zones=_loitering(), until=40)
    at = {round(t, 1): r for t, r in run.results("gate", "loitering")}
    assert not at[19.8].active
    assert at[20.0].active and at[20.0].details["tracks"] == [1]
    assert at[29.8].count == 1
    assert at[30.0].count == 2 and sorted(at[30.0].details["tracks"]) == [1, 2]
    assert all(3 not in r.details.get("tracks", []) for r in at.values())
    # each loiterer is their own incident, opened when their own clock reached T
    incidents = run.incidents(tmp_path)
    assert [i.details["track"] for i in incidents] == [1, 2]
    assert [i.details["object"] for i in incidents] == ["1@0.000", "2@10.000"]
    assert incidents[0].opened_at == pytest.approx(T, abs=FRAME) and incidents[1].opened_at == pytest.approx(T + 10, abs=FRAME)
    assert all(i.peak_count == 1 and i.status == "open" for i in incidents)


def test_loitering_ignores_vehicles():
    sc = Scenario(fps=FPS)
    sc.track("car", (400, 600, 600, 700)).stay(0, 40)
    run = sc.run(zones=_loitering(), until=40)
    assert not any(_on(run, "gate", "loitering"))


# --- 占道经营 street_vending ---------------------------------------------------------------

KERB = [(0.0, 0.4), (1.0, 0.4), (1.0, 0.9), (0.0, 0.9)]
UMBRELLA_STALL = (560, 560, 680, 620)  # ground point (620, 620): 120 px = 1 person height from the vendor


def _vending(**rule):
    return [{"id": "kerb", "polygon": KERB, "rules": [{"type": "street_vending", "min_duration_s": T, "clear_after_s": 0, **rule}]}]


def test_vendor_with_stall_fires_once(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON, track_id=1).stay(0, 40).jitter(4)
    sc.track("umbrella", UMBRELLA_STALL, track_id=2).stay(0, 40).jitter(2)
    sc.track("dining table", (380, 580, 470, 630), track_id=3).stay(0, 40)
    run = sc.run(zones=_vending(), until=40)
    assert run.first_active("kerb", "street_vending") == pytest.approx(T, abs=FRAME)
    incidents = run.incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].type == "street_vending"
    _, last = run.results("kerb", "street_vending")[-1]
    assert last.count == 1 and sorted(last.subjects.tolist()) == [0, 1, 2]
    vendor = last.details["vendors"][0]
    assert vendor["track"] == 1 and sorted(g["class"] for g in vendor["goods"]) == ["dining table", "umbrella"]
    assert "person #1 with" in last.summary and "umbrella #2" in last.summary


def test_clock_starts_when_both_are_there():
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON).stay(0, 50)
    sc.track("suitcase", (540, 570, 590, 625)).stay(8, 50)  # the goods are set out at 8 s
    run = sc.run(zones=_vending(), until=50)
    assert run.first_active("kerb", "street_vending") == pytest.approx(8 + T, abs=FRAME)


def test_person_alone_goods_alone_or_apart_never_fire():
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON).stay(0, 60)  # someone waiting
    sc.track("bench", (100, 560, 250, 640)).stay(0, 60)  # 380 px = 3.2 heights away, empty
    sc.track("person", (700, 400, 740, 520)).move(0, 60, dx=-500)  # walks past the bench
    run = sc.run(zones=_vending(), until=60)
    assert not any(_on(run, "kerb", "street_vending"))


def test_carried_backpack_is_not_goods():
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON).stay(0, 40)
    sc.track("backpack", (485, 520, 515, 570)).stay(0, 40)  # on the person's back, bottom 50 px above the feet
    run = sc.run(zones=_vending(), until=40)
    assert not any(_on(run, "kerb", "street_vending"))
    # the same bag set down beside them is goods
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON).stay(0, 40)
    sc.track("backpack", (525, 580, 555, 625)).stay(0, 40)
    run = sc.run(zones=_vending(), until=40)
    assert run.first_active("kerb", "street_vending") == pytest.approx(T, abs=FRAME)


def test_walking_person_by_stall_never_fires():
    sc = Scenario(fps=FPS)
    sc.track("umbrella", UMBRELLA_STALL).stay(0, 60)
    p = sc.track("person", (300, 500, 340, 620))
    for k in range(6):  # paces back and forth beside the stall, 300 px each way
        p.move(10 * k, 10 * k + 5, dx=300).move(10 * k + 5, 10 * k + 10, dx=-300)
    run = sc.run(zones=_vending(), until=60)
    assert not any(_on(run, "kerb", "street_vending"))


def test_two_vendors_are_two_incidents(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON, track_id=1).stay(0, 40).jitter(3, seed=1)
    sc.track("umbrella", UMBRELLA_STALL, track_id=2).stay(0, 40)
    sc.track("person", (180, 500, 220, 620), track_id=3).stay(5, 40).jitter(3, seed=2)  # 300 px to the left
    sc.track("suitcase", (100, 580, 160, 630), track_id=4).stay(5, 40)
    run = sc.run(zones=_vending(), until=40)
    _, last = run.results("kerb", "street_vending")[-1]
    assert last.count == 2 and sorted(last.subjects.tolist()) == [0, 1, 2, 3]
    hits = {h.details["track"]: h for h in last.hits}
    assert sorted(hits[1].subjects.tolist()) == [0, 1] and sorted(hits[3].subjects.tolist()) == [2, 3]
    incidents = run.incidents(tmp_path)
    assert [i.details["track"] for i in incidents] == [1, 3]
    assert [[g["class"] for g in i.details["goods"]] for i in incidents] == [["umbrella"], ["suitcase"]]
    assert incidents[1].opened_at == pytest.approx(T + 5, abs=FRAME)


def test_vendor_occlusion_and_id_switches_keep_incident(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON, track_id=1).stay(0, 12).hide(12, 14).stay(14, 26).hide(26, 30).stay(30, 50).switch_id(13).switch_id(40)
    sc.track("umbrella", UMBRELLA_STALL, track_id=2).stay(0, 50).switch_id(35)
    run = sc.run(zones=_vending(), until=50)
    assert run.first_active("kerb", "street_vending") == pytest.approx(T, abs=FRAME)
    assert len(run.incidents(tmp_path)) == 1
    at = {round(t, 1): r for t, r in run.results("kerb", "street_vending")}
    assert at[28.0].active and at[28.0].count == 1  # vendor hidden, stall still there
    vendor = at[50.0].details["vendors"][0]
    assert vendor["track"] == 2001 and vendor["previous_tracks"] == [1, 1001]
    assert vendor["goods"] == [{"track": 1002, "class": "umbrella"}]
    assert vendor["together_s"] == pytest.approx(50, abs=FRAME)


def test_vending_respects_max_gap():
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON).stay(0, 40)
    sc.track("umbrella", UMBRELLA_STALL).stay(0, 40)  # 120 px = 1 person height away
    run = sc.run(zones=_vending(max_gap=0.5), until=40)
    assert not any(_on(run, "kerb", "street_vending"))


def test_vendor_hidden_across_threshold_counts_when_seen_again():
    """Unseen when the clock passes T: nothing fires while nobody is there to see; once the
    vendor is back (within the grace) the kept clock makes it fire at once."""
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON).stay(0, 18).hide(18, 22).stay(22, 40)
    sc.track("umbrella", UMBRELLA_STALL).stay(0, 40)
    run = sc.run(zones=_vending(), until=40)
    assert run.first_active("kerb", "street_vending") == pytest.approx(22, abs=FRAME)


def test_loiterer_out_of_sight_briefly_stays_active(tmp_path):
    sc = Scenario(fps=FPS)
    sc.track("person", PERSON, track_id=4).stay(0, 25).hide(25, 28).stay(28, 40)  # 3 s behind a bus (grace 5 s)
    run = sc.run(zones=_loitering(), until=40)
    at = {round(t, 1): r for t, r in run.results("gate", "loitering")}
    assert at[26.0].active and at[26.0].subjects.size == 0 and at[26.0].details["persons"][0]["visible"] is False
    assert "out of sight" in at[26.0].summary
    assert len(run.incidents(tmp_path)) == 1
