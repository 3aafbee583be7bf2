"""A revisit report's pair snapshots within the wire's caps: each picture re-encoded down to
``MAX_IMAGE_BYTES``, pictures left out (oldest vehicle first) until the message is under
``MAX_MESSAGE_BYTES``; the report itself always goes and decodes on the case side."""

from __future__ import annotations

import cv2
import numpy as np

from gridworker.cluster.wire import MAX_IMAGE_BYTES, MAX_MESSAGE_BYTES, encode_report, parse_observation, to_report
from gridworker.vision.observations import ObjectReport, ObjectSighting
from gridworker.vision.rules import IllegalParkingRule


def _pair(seed: int, noise: float) -> bytes:
    """Two 1920x1080 captures side by side, noisy (JPEG compresses them badly), at quality 85."""
    rng = np.random.default_rng(seed)
    frame = np.clip(rng.normal(120.0, noise, (1080, 1920, 3)), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", np.hstack([frame, frame]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(buf)


def _report(snapshots: list[bytes | None]) -> ObjectReport:
    objects = tuple(
        ObjectSighting(f"kerb:{i}", (0.1, 0.5, 0.2, 0.6), summary=f"car {i}", details={"method": "revisit"}, snapshot=jpeg)
        for i, jpeg in enumerate(snapshots)
    )
    return ObjectReport("cam", "kerb", "park", IllegalParkingRule.kind, at=1.7e9, objects=objects, frame_seq=7)


def _encode(report: ObjectReport) -> bytes:
    return encode_report(report, obs_id="p:1:cam.2", worker="w1", token=0, visit="p:1:cam", sent_at=1.7e9)


def test_large_pair_snapshots_fit_the_caps_and_decode_on_the_case_side() -> None:
    big = _pair(1, 25.0)  # one 1080p pair over the picture cap on its own
    assert len(big) > MAX_IMAGE_BYTES
    fitting = [_pair(seed, 6.0) for seed in (2, 3, 4)]  # each ~550 kB (a 1080p pair): within the cap, together over the message cap
    assert all(len(j) <= MAX_IMAGE_BYTES for j in fitting) and sum(len(j) for j in fitting) * 4 / 3 > MAX_MESSAGE_BYTES
    data = _encode(_report([big, None, *fitting]))
    assert len(data) <= MAX_MESSAGE_BYTES
    report = to_report(parse_observation(data))  # what the case service does with it
    assert [o.key for o in report.objects] == [f"kerb:{i}" for i in range(5)]
    pictures = [o.snapshot for o in report.objects]
    assert all(p is None or (len(p) <= MAX_IMAGE_BYTES and p[:2] == b"\xff\xd8") for p in pictures)
    assert pictures[-1] == fitting[-1]  # the newest vehicle's picture, as it was
    assert pictures[1] is None and "snapshot_left_out" not in report.objects[1].details  # it had none
    left_out = [o for o in report.objects if o.snapshot is None and "snapshot_left_out" in o.details]
    assert left_out and all(o.summary and o.details["method"] == "revisit" for o in left_out)
    assert sum(p is not None for p in pictures) >= 1


def test_a_picture_over_its_cap_is_re_encoded_smaller_not_dropped() -> None:
    big = _pair(5, 25.0)
    report = to_report(parse_observation(_encode(_report([big]))))
    [seen] = report.objects
    assert seen.snapshot is not None and len(seen.snapshot) <= MAX_IMAGE_BYTES < len(big)
    image = cv2.imdecode(np.frombuffer(seen.snapshot, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (1080, 3840, 3)  # same size, lower quality
    assert "snapshot_left_out" not in seen.details


def test_a_small_report_goes_as_it_was() -> None:
    small = _pair(6, 2.0)
    assert len(small) < 200_000
    [seen] = to_report(parse_observation(_encode(_report([small])))).objects
    assert seen.snapshot == small and seen.details == {"method": "revisit"}
