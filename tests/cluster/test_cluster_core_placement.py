"""Rendezvous placement with a cap: balanced, minimal movement, no NATS."""

from __future__ import annotations

import math

import pytest

from gridworker.cluster.placement import place, rendezvous_rank

CAMS = [f"cam-{i:03d}" for i in range(60)]


def _check(p, cams, workers, cap):
    load = p.load()
    assert set(p.assignment) | set(p.unplaced) == set(cams)
    assert not set(p.assignment) & set(p.unplaced)
    assert set(p.assignment.values()) <= set(workers)
    assert all(n <= cap for n in load.values())
    return load


@pytest.mark.parametrize(
    ("n_cams", "workers", "cap", "unplaced"),
    [
        (0, ["w1"], 5, 0),
        (5, [], 5, 5),
        (10, ["w1", "w2", "w3"], 50, 0),
        (60, ["w1", "w2", "w3", "w4"], 50, 0),
        (60, ["w1", "w2"], 20, 20),  # cap x workers < cameras: the rest waits
        (7, ["w1", "w2", "w3"], 2, 1),
    ],
)
def test_every_camera_placed_within_cap_and_balanced(n_cams, workers, cap, unplaced):
    cams = CAMS[:n_cams]
    p = place(cams, workers, cap)
    load = _check(p, cams, workers, cap)
    assert len(p.unplaced) == unplaced
    if workers and n_cams and not unplaced:
        assert max(load.values()) - min(load.get(w, 0) for w in workers) <= 1
    assert p.moved == ()


def test_same_input_same_placement_and_stable_when_fed_back():
    a = place(CAMS, ["w1", "w2", "w3"], 50)
    b = place(list(reversed(CAMS)), ["w3", "w1", "w2"], 50)
    assert a.assignment == b.assignment
    again = place(CAMS, ["w1", "w2", "w3"], 50, a.assignment)
    assert again.assignment == a.assignment and again.moved == ()


def test_dead_worker_only_its_cameras_move():
    before = place(CAMS, ["w1", "w2", "w3", "w4"], 50)
    lost = {c for c, w in before.assignment.items() if w == "w2"}
    after = place(CAMS, ["w1", "w3", "w4"], 50, before.assignment)
    _check(after, CAMS, ["w1", "w3", "w4"], 50)
    changed = {c for c in CAMS if after.assignment[c] != before.assignment[c]}
    assert changed == lost
    assert after.unplaced == ()


def test_joining_worker_takes_about_its_share_and_nothing_else_moves():
    before = place(CAMS, ["w1", "w2", "w3"], 50)
    after = place(CAMS, ["w1", "w2", "w3", "w4"], 50, before.assignment)
    load = _check(after, CAMS, ["w1", "w2", "w3", "w4"], 50)
    changed = {c for c in CAMS if after.assignment[c] != before.assignment[c]}
    assert all(after.assignment[c] == "w4" for c in changed)  # no shuffling among the old workers
    assert len(changed) == load["w4"] == len(CAMS) // 4
    assert set(after.moved) == changed


def test_draining_worker_is_emptied_and_the_cap_holds():
    before = place(CAMS[:12], ["w1", "w2", "w3"], 5)
    after = place(CAMS[:12], ["w1", "w3"], 5, before.assignment)  # w2 drains: not eligible
    load = _check(after, CAMS[:12], ["w1", "w3"], 5)
    assert "w2" not in load and load == {"w1": 5, "w3": 5}
    assert len(after.unplaced) == 2


def test_current_entries_for_unknown_cameras_and_workers_are_ignored():
    p = place(["a", "b"], ["w1"], 5, {"gone": "w1", "a": "dead"})
    assert p.assignment == {"a": "w1", "b": "w1"}
    assert p.moved == ("a",)


def test_rendezvous_rank_prefers_consistently():
    ranks = rendezvous_rank("cam-x", ["w1", "w2", "w3"])
    assert sorted(ranks) == ["w1", "w2", "w3"]
    # removing a worker keeps the others' relative order (the property that limits movement)
    assert [w for w in ranks if w != ranks[0]] == rendezvous_rank("cam-x", ranks[1:])
    spread = {rendezvous_rank(c, ["w1", "w2", "w3"])[0] for c in CAMS}
    assert spread == {"w1", "w2", "w3"}


def test_cap_below_one_is_refused():
    with pytest.raises(ValueError):
        place(["a"], ["w1"], 0)
