"""Configurable caps (``limits:``): cameras, patrol plans and their concurrency, scene list
lengths, clip ring memory. A config file over a cap does not load (ConfigError naming it); the
API answers 409 (a count is full) or 422 (this body is too big a thing), never 500."""

from __future__ import annotations

import contextlib
import logging
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import ConfigError, LimitsConfig, load_settings
from gridworker.streams.evidence import CodecParams, PacketRing, RingBudget
from tests.factories import ParkedCarDetector, free_port, local_client

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def _cam(cam_id: str, **extra: object) -> dict[str, object]:
    # patrol only: never streamed, so no test here connects to this address
    return {"id": cam_id, "url": f"rtsp://127.0.0.1:{free_port()}/x", "watch": "patrol", **extra}


def _zone(zone_id: str, points: int = 4, rules: int = 1) -> dict[str, object]:
    polygon = SQUARE if points == 4 else [[0.5 + 0.4 * (i % 2), i / points] for i in range(points - 1)] + [[0.1, 0.5]]
    return {"id": zone_id, "polygon": polygon, "rules": [{"type": "intrusion", "id": f"r{i}"} for i in range(rules)]}


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"cameras": [_cam("a"), _cam("b")], "limits": {"max_cameras": 2}}, None),
        ({"cameras": [_cam("a"), _cam("b"), _cam("c")], "limits": {"max_cameras": 2}}, "3 cameras, more than limits.max_cameras (2)"),
        (
            {"cameras": [_cam("a")], "patrol_plans": [{"id": "p1"}, {"id": "p2"}], "limits": {"max_patrol_plans": 1}},
            "2 patrol plans, more than limits.max_patrol_plans (1)",
        ),
        (
            {"patrol_plans": [{"id": "wide", "concurrency": 200}]},
            "patrol plan 'wide': concurrency 200 is more than limits.max_patrol_concurrency (128)",
        ),
        ({"patrol_plans": [{"id": "ok", "concurrency": 128}]}, None),
        (
            {"cameras": [_cam("a", zones=[_zone("z1"), _zone("z2"), _zone("z3")])], "limits": {"scene": {"zones": 2}}},
            "camera 'a': 3 zones, more than limits.scene.zones (2)",
        ),
        (
            {"cameras": [_cam("a", zones=[_zone("z1", rules=3)])], "limits": {"scene": {"rules_per_zone": 2}}},
            "camera 'a': zone 'z1' has 3 rules, more than limits.scene.rules_per_zone (2)",
        ),
        (
            {"cameras": [_cam("a", zones=[_zone("z1", points=8)])], "limits": {"scene": {"polygon_points": 6}}},
            "camera 'a': zone 'z1' has 8 points, more than limits.scene.polygon_points (6)",
        ),
        (
            {"cameras": [_cam("a", lines=[{"id": f"l{i}", "points": [[0, 0.5], [1, 0.5]]} for i in range(3)])], "limits": {"scene": {"lines": 2}}},
            "camera 'a': 3 lines, more than limits.scene.lines (2)",
        ),
        ({"evidence": {"buffer_mb": 64}, "limits": {"clip_buffers_total_mb": 32}}, "evidence.buffer_mb 64.0 is more than limits.clip_buffers_total_mb (32.0)"),
        ({"limits": {"body_bytes_by_path": {"photos": 2_000_000}}}, "'photos' is not a path prefix like /photos"),
        ({"limits": {"max_body_bytes": 10}}, "limits.max_body_bytes: Input should be greater than or equal to 1024"),
    ],
)
def test_config_file_over_a_limit_does_not_load(tmp_path, overrides, problem):
    path = tmp_path / "gw.yaml"
    path.write_text("server: {port: 8080}\n")
    raises = pytest.raises(ConfigError) if problem else contextlib.nullcontext()
    with raises as err:
        load_settings(path, **overrides)
    if problem:
        assert problem in str(err.value), str(err.value)


def test_limits_come_from_the_environment_too(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDWORKER_LIMITS__MAX_CAMERAS", "1")
    with pytest.raises(ConfigError, match="2 cameras, more than limits.max_cameras"):
        load_settings(None, cameras=[_cam("a"), _cam("b")])


@pytest.fixture
def api(tmp_path):
    limits = {
        "max_cameras": 2,
        "max_patrol_plans": 2,
        "max_patrol_concurrency": 4,
        "scene": {"zones": 2, "rules_per_zone": 1, "polygon_points": 5, "lines": 1},
    }
    settings = load_settings(None, database={"url": f"sqlite:///{tmp_path / 'caps.db'}"}, limits=limits)
    service = Service(settings, ParkedCarDetector())
    _, key = create_key(service.keys, name="ops", role="admin")
    with local_client(create_app(lambda: service)) as client:
        client.headers["X-API-Key"] = key
        yield client, service


def test_camera_count_cap_is_409_and_frees_up_on_delete(api):
    client, service = api
    assert client.post("/cameras", json=_cam("c1")).status_code == 201
    assert client.post("/cameras", json=_cam("c2")).status_code == 201
    r = client.post("/cameras", json=_cam("c3"))
    assert r.status_code == 409 and "limits.max_cameras) is 2" in r.json()["detail"], r.text
    assert "rtsp://" not in r.text
    assert client.delete("/cameras/c1").status_code == 204
    assert client.post("/cameras", json=_cam("c3")).status_code == 201
    assert sorted(v.config.id for v in service.cameras()) == ["c2", "c3"]


def test_scene_caps_are_422_on_add_and_on_scene_edit(api):
    client, service = api
    r = client.post("/cameras", json=_cam("big", zones=[_zone("z1"), _zone("z2"), _zone("z3")]))
    assert r.status_code == 422 and "3 zones, more than limits.scene.zones (2)" in r.json()["detail"], r.text
    assert client.get("/cameras/big").status_code == 404  # nothing half-added
    # a ring too small to hold one keyframe (or rounding to 0 bytes) is refused at the boundary, never a 500
    for tiny in (1e-9, 0.05):
        r = client.post("/cameras", json={**_cam("tiny"), "stream": {"clip_buffer_mb": tiny}})
        assert r.status_code == 422 and "clip_buffer_mb" in r.text, r.text
    assert client.get("/cameras/tiny").status_code == 404
    assert client.post("/cameras", json=_cam("cam", zones=[_zone("z1")])).status_code == 201
    for scene, problem in [
        ({"zones": [_zone("z1", points=6)]}, "zone 'z1' has 6 points, more than limits.scene.polygon_points (5)"),
        ({"zones": [_zone("z1", rules=2)]}, "zone 'z1' has 2 rules, more than limits.scene.rules_per_zone (1)"),
        ({"lines": [{"id": f"l{i}", "points": [[0, 0.5], [1, 0.5]]} for i in range(2)]}, "2 lines, more than limits.scene.lines (1)"),
    ]:
        r = client.put("/cameras/cam/scene", json=scene)
        assert r.status_code == 422 and problem in r.json()["detail"], (scene, r.text)
    assert [z["id"] for z in client.get("/cameras/cam").json()["zones"]] == ["z1"]  # unchanged
    # the schema's own ceiling holds whatever the config says: 257 zones never reach the service
    r = client.put("/cameras/cam/scene", json={"zones": [{"id": f"z{i}"} for i in range(257)]})
    assert r.status_code == 422 and "at most 256" in r.text


def test_patrol_plan_count_and_concurrency_caps(api):
    client, _ = api
    r = client.put("/patrol/plans/wide", json={"id": "wide", "concurrency": 5})
    assert r.status_code == 422 and "concurrency 5 is more than limits.max_patrol_concurrency (4)" in r.json()["detail"], r.text
    assert client.put("/patrol/plans/p1", json={"id": "p1", "concurrency": 4}).status_code == 201
    assert client.put("/patrol/plans/p2", json={"id": "p2"}).status_code == 422  # default concurrency 32 > 4
    assert client.put("/patrol/plans/p2", json={"id": "p2", "concurrency": 1}).status_code == 201
    r = client.put("/patrol/plans/p3", json={"id": "p3", "concurrency": 1})
    assert r.status_code == 409 and "limits.max_patrol_plans) is 2" in r.json()["detail"], r.text
    assert client.put("/patrol/plans/p2", json={"id": "p2", "concurrency": 2}).status_code == 200  # replacing is not adding
    assert client.delete("/patrol/plans/p1").status_code == 204
    assert client.put("/patrol/plans/p3", json={"id": "p3", "concurrency": 1}).status_code == 201


def test_saved_cameras_and_plans_over_lowered_caps_are_skipped_or_clamped(tmp_path, caplog):
    db = {"url": f"sqlite:///{tmp_path / 'saved.db'}"}
    first = Service(load_settings(None, database=db, limits={"max_cameras": 3}), ParkedCarDetector())
    _, key = create_key(first.keys, name="ops", role="admin")
    with local_client(create_app(lambda: first), headers={"X-API-Key": key}) as client:
        for cam_id in ("s1", "s2", "s3"):
            assert client.post("/cameras", json=_cam(cam_id)).status_code == 201
        assert client.put("/patrol/plans/p", json={"id": "p", "concurrency": 100}).status_code == 201
    second = Service(load_settings(None, database=db, limits={"max_cameras": 2, "max_patrol_concurrency": 10}), ParkedCarDetector())
    with caplog.at_level(logging.WARNING), local_client(create_app(lambda: second), headers={"X-API-Key": key}) as client:
        assert len(client.get("/cameras").json()) == 2
        assert client.get("/patrol/plans/p").json()["plan"]["concurrency"] == 10
    assert any("limits.max_cameras" in r.getMessage() for r in caplog.records)
    assert any("lowered to limits.max_patrol_concurrency" in r.getMessage() for r in caplog.records)


# -- clip ring memory ---------------------------------------------------------------------------
PARAMS = CodecParams(codec_name="h264", width=320, height=240, extradata=b"\x00\x00\x00\x01", time_base=Fraction(1, 90000))


def _fill(ring: PacketRing, packets: int, size: int = 10_000, gop: int = 10, t0: float = 1000.0) -> None:
    payload = b"\x01" * size
    for i in range(packets):
        ring.append(payload, pts=i * 3600, dts=i * 3600, time_base=PARAMS.time_base, keyframe=i % gop == 0, ts=t0 + i / 25)


def _ring(max_bytes: int) -> PacketRing:
    ring = PacketRing(seconds=1000.0, max_bytes=max_bytes)
    ring.start_session(PARAMS)
    return ring


def test_rings_share_one_total_and_get_room_back_when_a_camera_leaves():
    budget = RingBudget(1_000_000)
    rings = [_ring(800_000) for _ in range(4)]
    budget.attach(rings[0])
    _fill(rings[0], 200)
    assert 700_000 < rings[0].nbytes <= 800_000  # alone: its own cap
    for ring in rings[1:]:
        budget.attach(ring)
        _fill(ring, 200)  # 2 MB offered to each
    del ring  # (the loop's name would keep the last ring alive)
    assert all(0 < r.nbytes <= 250_000 for r in rings), [r.nbytes for r in rings]
    assert sum(r.nbytes for r in rings) <= budget.total_bytes
    budget.detach(rings[2])
    del rings[3]  # a removed camera's ring, garbage-collected, leaves the budget by itself
    assert budget.rings == 2 and rings[0].cap_bytes == 500_000
    _fill(rings[0], 200, t0=2000.0)
    assert 250_000 < rings[0].nbytes <= 500_000
    alone = _ring(300_000)  # no budget: its own cap only
    _fill(alone, 200)
    assert 200_000 < alone.nbytes <= 300_000


def test_service_rings_draw_on_the_configured_total(tmp_path):
    cams = [{"id": f"c{i}", "url": f"rtsp://127.0.0.1:{free_port()}/x"} for i in range(3)]  # nothing listens: rings stay empty
    settings = load_settings(
        None,
        database={"url": f"sqlite:///{tmp_path / 'rings.db'}"},
        cameras=cams,
        evidence={"buffer_mb": 20},
        limits={"clip_buffers_total_mb": 30},
    )
    service = Service(settings, ParkedCarDetector())
    service.start()
    try:
        rings = [service._packet_ring(c["id"]) for c in cams]
        assert all(r is not None for r in rings) and service.ring_budget.rings == 3
        assert {r.cap_bytes for r in rings} == {10_000_000}  # 30 MB / 3, under the 20 MB each asked
        service.remove_camera("c0")
        assert service.ring_budget.rings == 2 and rings[1].cap_bytes == 15_000_000
    finally:
        service.stop()


def test_the_documented_defaults_are_the_defaults():
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if b.startswith("limits:"))
    assert LimitsConfig.model_validate(yaml.safe_load(block)["limits"]) == LimitsConfig()
    assert set(yaml.safe_load(block)["limits"]) == set(LimitsConfig.model_fields)
