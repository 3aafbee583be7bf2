"""``gridworker bench rules``: truth files, the matching of incidents to events, and whole runs.

The matching is checked on hand-made incidents (nothing to decode); the command runs once on
a generated clip (bus.jpg, a real photo with people, as a still H.264 clip) with a right and a
deliberately wrong truth file, and once on the real motorway clip of ``../shared/media``
(skipped when it is absent).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from gridworker.bench.__main__ import main as bench_main
from gridworker.bench.rules import DEFAULT_TRUTH, TruthError, TruthFile, load_truth, score_incidents
from gridworker.replay import ReplayIncident, Subject

from tests.factories import bus_street_clips

SCORE_KEYS = {
    "events",
    "incidents",
    "true_positives",
    "false_positives",
    "missed",
    "precision",
    "recall",
    "incidents_per_event",
    "mean_delay_s",
}


def _incident(n: int, type: str, zone: str, opened: float, closed: float | None, at: tuple[float, float] | None = None) -> ReplayIncident:
    subjects = () if at is None else (Subject(n, "car", 0.8, (at[0] - 0.05, at[1] - 0.1, at[0] + 0.05, at[1])),)
    return ReplayIncident(n, type, zone, f"{zone}/{type}", opened, closed, 1, 3, "", subjects)


def _truth(events: list[dict], **extra: object) -> TruthFile:
    return TruthFile(clip="c.mp4", scene="s.yaml", events=events, **extra)


# --- matching -------------------------------------------------------------------------------


def test_score_counts_found_missed_duplicates_and_false_positives() -> None:
    truth = _truth(
        [
            {"rule": "wrong_way", "zone": "road", "start": 2, "end": 6, "at": [[2, 0.2, 0.9], [6, 0.6, 0.1]]},
            {"rule": "wrong_way", "zone": "road", "start": 3, "end": 7, "at": [[3, 0.8, 0.9], [7, 0.8, 0.1]]},
            {"rule": "wrong_way", "zone": "road", "start": 20, "end": 25},
            {"rule": "crowd", "zone": "square", "start": 10, "end": 40},
        ]
    )
    incidents = [
        _incident(1, "wrong_way", "road", 3.0, 5.0, (0.3, 0.7)),  # the first car, where it is at 3 s
        _incident(2, "wrong_way", "road", 4.0, 6.0, (0.8, 0.6)),  # the second car
        _incident(3, "wrong_way", "road", 4.5, 6.5, (0.45, 0.4)),  # the first car again: a duplicate
        _incident(4, "wrong_way", "road", 4.0, 5.0, (0.05, 0.05)),  # nowhere near either car: false
        _incident(5, "wrong_way", "other", 21.0, 22.0),  # right time, wrong zone: false
        _incident(6, "crowd", "square", 12.0, 20.0),
        _incident(7, "crowd", "square", 25.0, None),  # the crowd split in two: a duplicate
        _incident(8, "intrusion", "gate", 1.0, 2.0),  # a rule with no events: false
    ]
    scores = {k: v.to_json() for k, v in score_incidents(incidents, truth, media_s=50.0, rule_types=["loitering"]).items()}
    assert scores["wrong_way"] == {
        "events": 3,
        "incidents": 5,
        "true_positives": 2,
        "false_positives": 2,
        "missed": 1,
        "precision": 0.6,
        "recall": 0.667,
        "incidents_per_event": 1.5,
        "mean_delay_s": 1.0,
    }
    assert scores["crowd"]["true_positives"] == 1 and scores["crowd"]["incidents_per_event"] == 2.0
    assert scores["crowd"]["mean_delay_s"] == 2.0
    assert scores["intrusion"]["false_positives"] == 1 and scores["intrusion"]["precision"] == 0.0
    assert scores["intrusion"]["recall"] is None  # no events: recall is not a number
    assert scores["loitering"] == {**{k: 0 for k in SCORE_KEYS}, "precision": None, "recall": None, "incidents_per_event": None, "mean_delay_s": None}


def test_score_time_tolerance_and_open_incidents() -> None:
    truth = _truth([{"rule": "intrusion", "zone": "lawn", "start": 10, "end": 20}], tolerance_s=2.0)
    early = score_incidents([_incident(1, "intrusion", "lawn", 5.0, 7.5)], truth, media_s=30.0)["intrusion"]
    assert (early.true_positives, early.false_positives) == (0, 1)  # closed 2.5 s before the event
    near = score_incidents([_incident(1, "intrusion", "lawn", 5.0, 8.5)], truth, media_s=30.0)["intrusion"]
    assert (near.true_positives, near.false_positives, near.delays) == (1, 0, [0.0])
    # an incident still open at the clip's end spans to the end
    still_open = score_incidents([_incident(1, "intrusion", "lawn", 1.0, None)], truth, media_s=30.0)["intrusion"]
    assert still_open.true_positives == 1


# --- truth files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("clip: a.mp4\nscene: s.yaml\nevents: [{rule: crowd, zone: z, start: 5, end: 1}]\n", "before start"),
        ("clip: a.mp4\nscene: s.yaml\nevents: [{rule: crowd, zone: z, start: 0, end: 1, at: [[0, 1.5, 0.2]]}]\n", "0..1"),
        ("clip: a.mp4\nscene: s.yaml\nevents: [{rule: crowd, zone: z, start: 0, end: 1, colour: red}]\n", "colour"),
        ("clip: ../../etc/passwd\nscene: s.yaml\n", "clip"),
        ("- just a list\n", "top level"),
        ("clip: [unclosed\n", "invalid YAML"),
        # a second `events:` would silently replace the first list: the events an operator wrote would not be scored
        ("clip: a.mp4\nscene: s.yaml\nevents: [{rule: crowd, zone: z, start: 0, end: 1}]\nevents: []\n", "key 'events' on line 4 repeats line 3"),
    ],
)
def test_bad_truth_files_are_refused_with_the_file_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TruthError, match=problem) as err:
        load_truth(path)
    assert str(path) in str(err.value)


def test_oversized_truth_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("clip: a.mp4\nscene: s.yaml\n#" + "x" * (1 << 20) + "\n", encoding="utf-8")
    with pytest.raises(TruthError, match="larger than"):
        load_truth(path)


def test_shipped_truth_files_are_valid_and_name_their_scenes() -> None:
    files = sorted(DEFAULT_TRUTH.glob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        truth = load_truth(path)
        assert (path.parent / truth.scene).is_file(), path


def test_made_clips_are_reversed_and_dimmed(tmp_path: Path) -> None:
    import av
    from gridworker.bench.rules import _played
    from gridworker.streams.clips import encode_frames

    ramp = [np.full((64, 96, 3), 40 + 20 * i, np.uint8) for i in range(10)]  # brighter frame by frame
    clip = encode_frames(ramp, tmp_path / "ramp.mp4", fps=5, crf=10)

    def means(path: Path) -> list[float]:
        with av.open(str(path)) as c:
            return [float(f.to_ndarray(format="rgb24").mean()) for f in c.decode(video=0)]

    truth = TruthFile(clip="ramp.mp4", scene="s.yaml")
    with _played(clip, truth) as played:
        assert played == clip  # nothing to make: the clip itself
    with _played(clip, truth.model_copy(update={"reverse": True, "dim": 0.5})) as played:
        assert played != clip and played.is_file()
        got = means(played)
        made = played
    assert not made.exists()  # built in a temporary folder, gone after the run
    want = [0.5 * (40 + 20 * i) for i in reversed(range(10))]
    assert len(got) == 10 and all(abs(g - w) < 4 for g, w in zip(got, want)), (got, want)


# --- whole runs ------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], clips: Path, truth: Path, *extra: str) -> dict:
    assert bench_main(["rules", "--clips", str(clips), "--truth", str(truth), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.model
def test_bench_rules_on_a_generated_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clips = bus_street_clips(tmp_path, {"street": 0})  # people stand in front of a bus at the left, 4 s
    truth = tmp_path / "truth"
    (truth / "scenes").mkdir(parents=True)
    (truth / "scenes" / "street.yaml").write_text(
        yaml.safe_dump(
            {
                "fps": 5,
                "zones": [
                    {
                        "id": "pavement",
                        "polygon": [[0, 0], [0.45, 0], [0.45, 1], [0, 1]],
                        "rules": [{"type": "intrusion", "classes": ["person"], "min_duration_s": 1}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    good = {"clip": clips["street"].name, "scene": "scenes/street.yaml", "events": [{"rule": "intrusion", "zone": "pavement", "start": 0, "end": 4, "object": "people by the bus"}]}
    (truth / "street.yaml").write_text(yaml.safe_dump(good), encoding="utf-8")
    result = _run(capsys, clips["street"].parent, truth)
    assert set(result) == {"clips", "rules", "rules_dimmed", "skipped", "wall_s"}
    assert result["rules_dimmed"] == {}
    score = result["rules"]["intrusion"]
    assert set(score) == SCORE_KEYS
    assert (score["true_positives"], score["false_positives"], score["missed"]) == (1, 0, 0)
    assert score["precision"] == 1.0 and score["recall"] == 1.0 and score["incidents_per_event"] == 1.0
    assert 0.0 <= score["mean_delay_s"] <= 2.0
    assert result["clips"][0]["rules"]["intrusion"] == score
    assert [e["incidents"] for e in result["clips"][0]["events"]] == [1]
    assert [i["event"] for i in result["clips"][0]["incidents"]] == [0]
    assert all(name == "person" for i in result["clips"][0]["incidents"] for name, _, _ in i["subjects"])

    # the same run against a wrong truth file: the event "happened" later, so the incident is false
    wrong = {**good, "events": [{**good["events"][0], "start": 30, "end": 40}]}
    (truth / "street.yaml").write_text(yaml.safe_dump(wrong), encoding="utf-8")
    score = _run(capsys, clips["street"].parent, truth)["rules"]["intrusion"]
    assert (score["true_positives"], score["false_positives"], score["missed"]) == (0, 1, 1)
    assert score["precision"] == 0.0 and score["recall"] == 0.0


def test_bench_rules_reports_a_missing_clip_as_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "gone.yaml").write_text("clip: gone.mp4\nscene: s.yaml\nevents: []\n", encoding="utf-8")
    result = _run(capsys, tmp_path, truth)
    assert result["clips"] == [] and result["rules"] == {} and result["rules_dimmed"] == {}
    assert result["skipped"] == [{"truth": "gone", "reason": f"no clip gone.mp4 in {tmp_path}"}]


def test_bench_rules_refuses_a_bad_truth_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("clip: a.mp4\n", encoding="utf-8")  # no scene
    assert bench_main(["rules", "--clips", str(tmp_path), "--truth", str(tmp_path), "--json"]) == 2
    assert "bad.yaml" in capsys.readouterr().err
    assert bench_main(["rules", "--clips", str(tmp_path / "none"), "--truth", str(tmp_path)]) == 2


@pytest.mark.model
def test_bench_rules_on_the_shared_motorway_clip(shared_media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The cyclist on the hard shoulder (docs/rules-field.md), then the same run against a truth
    file that puts him there 20 s later: his incident becomes a false positive and the event is missed."""
    result = _run(capsys, shared_media, DEFAULT_TRUTH, "--only", "motorway_shoulder_cyclist")
    score = result["rules"]["lane_intrusion"]
    assert set(score) == SCORE_KEYS and score["events"] == 1
    assert score["true_positives"] == 1 and score["missed"] == 0
    assert score["incidents"] >= 1

    truth = tmp_path / "truth"
    truth.mkdir()
    shutil.copy(DEFAULT_TRUTH / "motorway_shoulder_cyclist.yaml", truth / "motorway_shoulder_cyclist.yaml")
    data = yaml.safe_load((truth / "motorway_shoulder_cyclist.yaml").read_text(encoding="utf-8"))
    data["scene"] = str((DEFAULT_TRUTH / data["scene"]).resolve())
    data["events"] = [{**data["events"][0], "start": 25.0, "end": 29.0, "at": [[25.0, 0.95, 0.27]]}]
    (truth / "motorway_shoulder_cyclist.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    wrong = _run(capsys, shared_media, truth)["rules"]["lane_intrusion"]
    assert wrong["true_positives"] == 0 and wrong["missed"] == 1
    assert wrong["false_positives"] == wrong["incidents"] >= 1


@pytest.mark.model
def test_the_rule_targets_hold_on_the_shared_clips(shared_media: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16's targets on the real clips the other tests do not already score (the kerb's
    tiled replay, ~1 min, is held by tests/field): crowd, intrusion and wrong way at precision
    >= 0.9, recall >= 0.7 and <= 1.1 incidents per event; no false alarm on the clips with no
    event; the night clip's one known false lane intrusion (a rider the detector boxes as one
    "person", docs/rules-field.md) does not grow and no false wrong-way alarm comes back."""
    clips = ["campus_pedestrians", "oneway_overpass", "oneway_overpass_reversed", "car_park_topdown", "night_divided_road"]
    result = _run(capsys, shared_media, DEFAULT_TRUTH, *(a for c in clips for a in ("--only", c)))
    rules = result["rules"]
    for rule in ("crowd", "intrusion", "wrong_way"):
        s = rules[rule]
        assert s["precision"] >= 0.9 and s["recall"] >= 0.7 and s["incidents_per_event"] <= 1.1, (rule, s)
    by_truth = {c["truth"]: c for c in result["clips"]}
    assert sorted(by_truth) == sorted(clips) and not result["skipped"]
    night = by_truth["night_divided_road"]
    assert night["rules"]["wrong_way"]["incidents"] == 0
    assert night["rules"]["lane_intrusion"]["false_positives"] <= 1
    for c in result["clips"]:
        if not c["events"]:  # a negative clip: nothing may fire
            assert all(s["incidents"] == 0 for s in c["rules"].values()), c["clip"]
