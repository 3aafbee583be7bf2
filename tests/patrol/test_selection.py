"""Plan selection and ordering: pure functions, table-tested."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from pydantic import ValidationError

from gridworker.patrol import CameraPatrolConfig, PatrolPlan, PatrolTarget, order_cameras, plan_order, select_cameras
from gridworker.patrol.selection import interleave_site_types, skip_cycles, unknown_ids


def cam(cid: str, site: str = "street", tags: tuple[str, ...] = (), priority: int = 5, enabled: bool = True) -> PatrolTarget:
    return PatrolTarget(cid, f"rtsp://10.0.0.1/{cid}", CameraPatrolConfig(site_type=site, tags=list(tags), priority=priority, enabled=enabled))


CAMS = [
    cam("s1", "school", ("gate", "d3"), 9),
    cam("s2", "school", ("d3",), 5),
    cam("h1", "hospital", ("gate",), 9),
    cam("h2", "hospital", (), 5),
    cam("t1", "transport_hub", ("d3", "gate"), 5),
    cam("m1", "market", (), 1),
    cam("x1", "street", ("gate",), 5, enabled=False),
]


def ids(targets: list[PatrolTarget]) -> list[str]:
    return [t.camera_id for t in targets]


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ({}, ["s1", "s2", "h1", "h2", "t1", "m1"]),  # everything patrol-enabled
        ({"site_types": ["school"]}, ["s1", "s2"]),
        ({"site_types": ["school", "hospital"]}, ["s1", "s2", "h1", "h2"]),
        ({"tags": ["gate"]}, ["s1", "h1", "t1"]),  # x1 is disabled
        ({"tags": ["gate", "d3"], "tags_mode": "all"}, ["s1", "t1"]),
        ({"tags": ["gate", "d3"], "tags_mode": "any"}, ["s1", "s2", "h1", "t1"]),
        ({"site_types": ["school"], "tags": ["gate"]}, ["s1"]),  # both filters must hold
        ({"camera_ids": ["m1", "x1"]}, ["m1", "x1"]),  # explicit ids, even disabled
        ({"camera_ids": ["m1"], "site_types": ["school"]}, ["s1", "s2", "m1"]),
        ({"site_types": ["school"], "exclude": ["s1"]}, ["s2"]),
        ({"camera_ids": ["nope"]}, []),
        ({"site_types": ["park"]}, []),
    ],
)
def test_select(select: dict[str, Any], expected: list[str]) -> None:
    plan = PatrolPlan(id="p", select=select)
    assert sorted(ids(select_cameras(CAMS, plan.select))) == sorted(expected)


def test_select_keeps_input_order_and_dedups() -> None:
    plan = PatrolPlan(id="p", select={"camera_ids": ["h2", "s1"]})
    assert ids(select_cameras([*CAMS, cam("s1")], plan.select)) == ["s1", "h2"]
    assert select_cameras([], plan.select) == []
    assert unknown_ids(CAMS, PatrolPlan(id="p", select={"camera_ids": ["s1", "gone"]}).select) == ["gone"]


def test_priority_order_interleaves_site_types_and_rotates() -> None:
    plan = PatrolPlan(id="p")
    cycle1 = ids(order_cameras(select_cameras(CAMS, plan.select), plan, cycle=1))
    # tier 9: h1, s1 (sorted by id: h1 then s1 -> hospital, school); tier 5: h2, s2, t1; tier 1: m1
    assert cycle1 == ["h1", "s1", "h2", "s2", "t1", "m1"]
    cycle2 = ids(order_cameras(select_cameras(CAMS, plan.select), plan, cycle=2))
    assert cycle2 == ["s1", "h1", "s2", "t1", "h2", "m1"]  # each tier rotated by one
    # every cycle visits every camera exactly once, priority tiers never mix
    for cycle in range(1, 8):
        order = ids(plan_order(CAMS, plan, cycle))
        assert sorted(order) == sorted(cycle1)
        assert set(order[:2]) == {"h1", "s1"} and order[-1] == "m1"


def test_interleave_round_robin() -> None:
    cams = [cam("a1", "school"), cam("a2", "school"), cam("a3", "school"), cam("b1", "hospital"), cam("c1", "market")]
    assert ids(interleave_site_types(cams)) == ["a1", "b1", "c1", "a2", "a3"]
    assert interleave_site_types([]) == []


def test_listed_order() -> None:
    plan = PatrolPlan(id="p", order="listed", select={"camera_ids": ["t1", "m1", "s1"], "site_types": ["hospital"]})
    assert ids(plan_order(CAMS, plan)) == ["t1", "m1", "s1", "h1", "h2"]


@pytest.mark.parametrize(("failures", "expected"), [(0, 0), (1, 0), (2, 1), (3, 3), (4, 7), (5, 8), (40, 8)])
def test_skip_cycles(failures: int, expected: int) -> None:
    assert skip_cycles(failures, 8) == expected


@pytest.mark.parametrize(
    ("kwargs", "raises"),
    [
        ({"id": "ok", "concurrency": 64, "cycles": 0}, contextlib.nullcontext()),
        ({"id": "bad id"}, pytest.raises(ValidationError)),
        ({"id": "p", "concurrency": 0}, pytest.raises(ValidationError)),
        ({"id": "p", "keyframes": 0}, pytest.raises(ValidationError)),
        ({"id": "p", "mode": "stare"}, pytest.raises(ValidationError)),
        ({"id": "p", "cycles": -1}, pytest.raises(ValidationError)),
        ({"id": "p", "typo_field": 1}, pytest.raises(ValidationError)),  # extra="forbid"
        ({"id": "p", "select": {"site_types": ["castle"]}}, pytest.raises(ValidationError)),
        (
            {"id": "p", "schedule": {"windows": [{"days": ["mon"], "start": "07:00", "end": "17:00"}], "timezone": "Asia/Shanghai"}},
            contextlib.nullcontext(),
        ),
        ({"id": "p", "schedule": {"windows": []}}, pytest.raises(ValidationError)),
    ],
)
def test_plan_validation(kwargs: dict[str, Any], raises: Any) -> None:
    with raises:
        PatrolPlan(**kwargs)


@pytest.mark.parametrize(
    ("tags", "raises"),
    [(["gate", "gate", " d3 "], contextlib.nullcontext()), (["two words"], pytest.raises(ValidationError)), ([""], pytest.raises(ValidationError))],
)
def test_camera_tags(tags: list[str], raises: Any) -> None:
    with raises:
        assert CameraPatrolConfig(tags=tags).tags == ["gate", "d3"]


def test_plan_from_yaml() -> None:
    """The example plan of the configuration's documentation (``patrol/config.py``) is valid."""
    import textwrap

    import yaml

    from gridworker.patrol import config

    text = (config.__doc__ or "").split("Example (YAML)::", 1)[1]
    plan = PatrolPlan.model_validate(yaml.safe_load(textwrap.dedent(text)))
    assert (plan.id, plan.cycles, plan.min_cycle_s, plan.concurrency) == ("schools-am", 0, 60, 64)
    assert ids(plan_order(CAMS, plan)) == ["h1", "s1"]
