"""Helpers of the field tests: the reversed clip, and whether the tracker can follow low-score objects."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from gridworker.streams.clips import encode_frames

SCENES = Path(__file__).resolve().parent / "scenes"


def reverse_clip(src: Path, out: Path) -> Path:
    """``src`` played backwards, as H.264 at the same frame rate (all frames held in memory)."""
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    frames.reverse()
    return encode_frames(frames, out, fps=fps, crf=23)


