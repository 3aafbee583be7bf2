"""The clip helpers write H.264 without B-frames, with the requested keyframe interval."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from gridworker.streams.clips import encode_still, h264_encoder_name, synthetic_clip, transcode_h264


def _probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        assert s.average_rate is not None
        return {
            "codec": s.codec_context.name,
            "size": (s.width, s.height),
            "rate": float(s.average_rate),
            "types": {PictureType(int(f.pict_type)).name for f in frames},
            "keyframes": [i for i, f in enumerate(frames) if f.key_frame],
            "first": frames[0].to_ndarray(format="rgb24"),
            "n": len(frames),
        }


def test_encoder_is_available():
    assert h264_encoder_name() in ("libx264", "h264", "libopenh264")


@pytest.mark.parametrize(
    ("fps", "gop", "keyframes"),
    [(10, None, [0, 20]), (10, 5, [0, 5, 10, 15, 20, 25]), (25, 25, [0, 25])],
)
def test_synthetic_clip_gop_and_no_b_frames(tmp_path, fps, gop, keyframes):
    info = _probe(synthetic_clip(tmp_path / "s.mp4", seconds=3 if fps == 10 else 2, size=(161, 121), fps=fps, gop=gop))
    assert info["codec"] == "h264"
    assert info["size"] == (160, 120)  # odd sizes cropped to even for yuv420p
    assert info["rate"] == fps
    assert "B" not in info["types"]
    assert info["keyframes"] == keyframes


def test_encode_still_keeps_the_picture(tmp_path):
    image = np.zeros((96, 128, 3), np.uint8)
    image[:, :64] = (200, 30, 30)  # left red, right blue
    image[:, 64:] = (30, 30, 200)
    info = _probe(encode_still(image, tmp_path / "still.mp4", seconds=1, fps=10, noise=2))
    assert info["n"] == 10 and "B" not in info["types"]
    first = info["first"].astype(int)
    assert np.abs(first[:, 8:56] - (200, 30, 30)).mean() < 8
    assert np.abs(first[:, 72:120] - (30, 30, 200)).mean() < 8


def test_transcode_h264(tmp_path):
    src = synthetic_clip(tmp_path / "src.mp4", seconds=2, size=(320, 240), fps=10)
    out = transcode_h264(src, tmp_path / "out.mp4", max_seconds=1, scale_width=160, gop=5)
    info = _probe(out)
    assert info["size"] == (160, 120) and info["n"] == 10
    assert info["keyframes"] == [0, 5] and "B" not in info["types"]


def test_encode_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        encode_still(np.zeros((8, 8), np.float32), tmp_path / "x.mp4")


def test_opencv_sample_transcoded(vtest_clip):
    info = _probe(vtest_clip)
    assert info["size"] == (768, 576) and info["rate"] == 10 and info["n"] == 100
    assert "B" not in info["types"] and info["keyframes"][:2] == [0, 20]
    assert info["first"].std() > 10  # a real scene
