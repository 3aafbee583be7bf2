"""The revisit check's memory as plain values: export/restore, merge, and the cluster codec's
checks of a stored value (hostile input)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import cv2
import numpy as np
import pytest

from gridworker.cluster.revisit_store import MAX_VALUE_BYTES, BadMemory, decode_memory, encode_memory
from gridworker.streams.frame import Frame
from gridworker.vision.annotate import FrameAnnotator
from gridworker.vision.revisit import RevisitChecker, RevisitConfig, RevisitMemory, merge_memories
from gridworker.vision.visits import VisitAnalyzer, VisitMemory
from tests.patrol.test_revisit import CAR, CAR_MOVED, CAR_NUDGED, _kerb_scene, dets, visit

GRAY = 128


def _frame(ts: float) -> Frame:
    return Frame("cam", int(ts), ts, np.full((360, 640, 3), GRAY, np.uint8))


def first_panel_median(snapshot: bytes | None) -> float:
    """The median grey level of the pair snapshot's left (first capture) half."""
    assert snapshot is not None
    pair = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
    assert pair is not None
    return float(np.median(pair[:, : pair.shape[1] // 2]))


def _qualifying(judge: Any, ts: float, detections: Any) -> list:
    judgement = judge.analyse_glance([_frame(ts)], [detections])
    return [o for r in judgement.reports for o in r.objects if o.qualifies]


def test_checker_export_restore_round_trip_completes_the_pair_elsewhere() -> None:
    a, b = RevisitChecker(RevisitConfig(min_gap_s=300)), RevisitChecker(RevisitConfig(min_gap_s=300))
    assert visit(a, 0, dets(CAR), ref="first") == []
    memory = a.export("cam")
    assert len(memory.parked) == 1 and memory.last_ts == 0
    b.restore("cam", memory)
    assert b.export("cam") == memory
    fired = visit(b, 310, dets(CAR_NUDGED), ref="second")
    assert [v.evidence for v in fired] == [("first", "second")]
    assert visit(RevisitChecker(RevisitConfig(min_gap_s=300)), 310, dets(CAR)) == []  # without it: nothing
    with pytest.raises(ValueError):  # the restored last visit time still orders the visits
        visit(b, 100, dets(CAR))


def test_merge_keeps_every_sighting_and_a_shared_vehicle_once() -> None:
    a, b = RevisitChecker(), RevisitChecker()
    visit(a, 0, dets(CAR))
    visit(b, 5, dets(CAR_NUDGED, CAR_MOVED))
    merged = merge_memories(a.export("cam"), b.export("cam"))
    assert merged.last_ts == 5
    assert sorted((p.first.ts, p.latest.ts) for p in merged.parked) == [(0, 5), (5, 5)]  # CAR: older first, newer latest
    assert merge_memories(RevisitMemory(), RevisitMemory()) == RevisitMemory()


def test_analyzer_memory_through_the_codec_makes_the_pair_with_the_first_picture() -> None:
    a = VisitAnalyzer("cam", _kerb_scene(300), annotator=FrameAnnotator())
    b = VisitAnalyzer("cam", _kerb_scene(300), annotator=FrameAnnotator())
    assert _qualifying(a, 1000.0, dets(CAR)) == []
    value = encode_memory("cam", a.export_revisit())
    memory = decode_memory("cam", value)
    assert memory == a.export_revisit()  # pictures within the cap travel unchanged
    b.restore_revisit(memory)
    [sighting] = _qualifying(b, 1310.0, dets(CAR_NUDGED))
    assert sighting.details["gap_s"] == 310.0 and sighting.details["first_capture"]["at"] == 1000.0
    assert abs(first_panel_median(sighting.snapshot) - GRAY) < 20  # the first capture, not the black "not kept" panel
    b.restore_revisit(VisitMemory())  # an empty memory forgets
    assert b.export_revisit().evidence == {} and all(not m.parked for m in b.export_revisit().zones.values())


def _valid() -> dict[str, Any]:
    s = {"ts": 1000.0, "frame_ref": "cam#1@1000.000", "xyxy": [1, 2, 3, 4], "class": "car", "confidence": 0.9}
    return {"v": 1, "camera": "cam", "zones": {"cam/z/r": {"last_ts": 1000.0, "parked": [{"zone": "z", "first": s, "latest": s}]}}}


def _with(path: list[Any], value: Any) -> bytes:
    doc = _valid()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc).encode()


_P = ["zones", "cam/z/r", "parked", 0, "first"]
_JPEG = base64.b64encode(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()).decode()


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        (json.dumps(_valid()).encode(), None),
        (_with(["evidence"], {"cam#1@1000.000": _JPEG}), None),
        (b"x" * (MAX_VALUE_BYTES + 1), "over"),
        (b"\xff\xfe not json hunter2", "schema"),
        (b"[]", "schema"),
        (_with(["v"], 2), "schema"),
        (_with(["camera"], "other"), "another camera"),
        (_with(["extra"], "hunter2"), "schema"),
        (_with([*_P, "ts"], -1), "schema"),
        (_with([*_P, "xyxy"], [1, 2, 3]), "schema"),
        (_with([*_P, "xyxy"], [1, 2, 3, "hunter2"]), "schema"),
        (_with([*_P, "confidence"], 2.0), "schema"),
        (_with([*_P, "frame_ref"], "a b\nhunter2"), "schema"),
        (_with([*_P, "class"], "c" * 65), "schema"),
        (_with(["zones", "cam/z/r", "parked"], [_valid()["zones"]["cam/z/r"]["parked"][0]] * 201), "schema"),
        (_with(["zones", "hunter2"], {"parked": "x"}), "schema"),
        (json.dumps(_valid()).replace("1000.0,", "NaN,", 1).encode(), "schema"),
        (json.dumps(_valid()).replace("1000.0,", "1e999,", 1).encode(), "schema"),
        (_with(["evidence"], {"cam#1@1000.000": "!!not base64 hunter2"}), "base64"),
        (_with(["evidence"], {"cam#1@1000.000": base64.b64encode(b"GIF89a hunter2").decode()}), "JPEG"),
        (_with(["evidence"], {"cam#1@1000.000": "A" * 300_000}), "cap"),
    ],
)
def test_a_stored_value_is_checked_as_hostile_input(data: bytes, fault: str | None) -> None:
    expect = contextlib.nullcontext() if fault is None else pytest.raises(BadMemory, match=fault)
    with expect as caught:
        memory = decode_memory("cam", data)
        assert memory.zones["cam/z/r"].parked[0].first.xyxy == (1, 2, 3, 4)
    if caught is not None:
        assert "hunter2" not in str(caught.value)  # the value's content never reaches the log


def test_an_oversized_first_picture_is_reencoded_or_left_out() -> None:
    a = VisitAnalyzer("cam", _kerb_scene(300), annotator=FrameAnnotator())
    _qualifying(a, 1000.0, dets(CAR))
    memory = a.export_revisit()
    [ref] = memory.evidence
    noise = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), np.uint8)
    big = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()  # ~1.5 MB of noise
    value = encode_memory("cam", VisitMemory(memory.zones, {ref: big}))
    assert len(value) <= MAX_VALUE_BYTES
    assert decode_memory("cam", value).zones == memory.zones  # the sightings always travel
