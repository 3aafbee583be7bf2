"""Make small H.264 clips that an RTSP server can pass through unchanged.

Every clip written here is H.264 in an MP4 container, ``yuv420p``, with **no B-frames**
(so decode order equals presentation order and RTP payloaders need no reordering) and a
fixed keyframe interval (default ~2 s, like a typical IP camera).

Encoder: PyAV's bundled FFmpeg ships ``libx264`` (``av.codec.Codec("h264", "w")`` is an
alias for it). ``libopenh264`` is not bundled. :func:`h264_encoder_name` picks the first
available of those, so a different PyAV build still works.

Example:
    >>> from gridworker.streams.clips import synthetic_clip
    >>> path = synthetic_clip("/tmp/moving.mp4", seconds=4, size=(320, 240), fps=10)
    >>> path.name
    'moving.mp4'
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.stream import VideoStream

__all__ = ["encode_frames", "encode_still", "h264_encoder_name", "synthetic_clip", "transcode_h264"]

_ENCODER_CANDIDATES = ("libx264", "h264", "libopenh264")


@functools.lru_cache(maxsize=1)
def h264_encoder_name() -> str:
    """Name of an H.264 encoder available in PyAV's FFmpeg (``libx264`` on PyPI wheels).

    Raises:
        RuntimeError: no H.264 encoder is available.
    """
    for name in _ENCODER_CANDIDATES:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - "unknown codec" comes in several types
            continue
        return name
    raise RuntimeError(f"PyAV has no H.264 encoder (tried {', '.join(_ENCODER_CANDIDATES)})")


def _even(n: int) -> int:
    return max(2, n - (n % 2))


def encode_frames(
    frames: Iterable[np.ndarray],
    out: str | Path,
    *,
    fps: float = 10,
    gop: int | None = None,
    crf: int = 28,
    preset: str = "veryfast",
) -> Path:
    """Encode RGB frames into an H.264 MP4 without B-frames.

    Args:
        frames: ``(H, W, 3) uint8`` RGB arrays, all the same size (odd sizes are cropped
            to even, as yuv420p requires).
        out: output ``.mp4`` path; parent folders are created.
        fps: frame rate of the clip.
        gop: keyframe interval in frames; default ``round(2 * fps)`` (~2 s).
        crf: x264 constant-rate factor (lower = better quality, bigger file).
        preset: x264 speed preset.

    Returns:
        The output path.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    gop = max(1, round(2 * float(fps))) if gop is None else max(1, int(gop))
    encoder = h264_encoder_name()
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream(encoder, rate=rate)
        if not isinstance(stream, VideoStream):
            raise RuntimeError(f"{encoder} did not give a video stream")
        stream.pix_fmt = "yuv420p"
        options: dict[str, object] = {"bf": "0", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        if encoder in ("libx264", "h264"):
            # one slice per frame: RTP payloaders and FFmpeg's depacketizer handle that best
            x264 = "bframes=0:scenecut=0:sliced-threads=0:slices=1"
            options.update({"preset": preset, "crf": str(crf), "x264-params": x264})
        stream.options = options
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = 0
        size: tuple[int, int] | None = None
        n = 0
        for image in frames:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected (H, W, 3) uint8 RGB frames, got {image.shape} {image.dtype}")
            if size is None:
                size = (_even(image.shape[1]), _even(image.shape[0]))
                stream.width, stream.height = size
            image = np.ascontiguousarray(image[: size[1], : size[0]])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = n
            frame.time_base = 1 / rate
            n += 1
            for packet in stream.encode(frame):
                container.mux(packet)
        if n == 0:
            raise ValueError("no frames to encode")
        for packet in stream.encode():
            container.mux(packet)
    return out


def encode_still(
    image_rgb: np.ndarray,
    out: str | Path,
    seconds: float = 10,
    fps: float = 10,
    gop: int | None = None,
    noise: int = 2,
    seed: int = 0,
) -> Path:
    """Turn one photo into a "still camera" clip.

    Args:
        image_rgb: ``(H, W, 3) uint8`` RGB photo.
        out: output ``.mp4`` path.
        seconds: clip length.
        fps: frame rate.
        gop: keyframe interval in frames (default ~2 s).
        noise: amplitude of per-frame sensor-like noise in grey levels (0 = none), so
            that P-frames carry some data as a real camera's would.
        seed: noise seed (clips are reproducible).
    """
    n_frames = max(1, round(seconds * fps))
    rng = np.random.default_rng(seed)
    base = np.ascontiguousarray(image_rgb, dtype=np.uint8)

    def gen() -> Iterator[np.ndarray]:
        for _ in range(n_frames):
            if noise <= 0:
                yield base
                continue
            jitter = rng.integers(-noise, noise + 1, size=base.shape, dtype=np.int16)
            yield np.clip(base.astype(np.int16) + jitter, 0, 255).astype(np.uint8)

    return encode_frames(gen(), out, fps=fps, gop=gop)


def transcode_h264(
    src: str | Path,
    out: str | Path,
    *,
    fps: float | None = None,
    max_seconds: float | None = None,
    gop: int | None = None,
    scale_width: int | None = None,
) -> Path:
    """Re-encode any video PyAV can read (e.g. Debian ``opencv-doc``'s ``vtest.avi``) to
    H.264 MP4 without B-frames.

    Args:
        src: input video.
        out: output ``.mp4``.
        fps: output frame rate; default the source's average rate (or 25).
        max_seconds: stop after this much video.
        gop: keyframe interval in frames (default ~2 s).
        scale_width: resize to this width (height keeps the aspect ratio).
    """
    with av.open(str(src)) as inp:
        vstream = inp.streams.video[0]
        rate = float(fps or vstream.average_rate or vstream.guessed_rate or 25)

        def gen() -> Iterator[np.ndarray]:
            for i, frame in enumerate(inp.decode(vstream)):
                if max_seconds is not None and i >= max_seconds * rate:
                    break
                if scale_width:
                    h = round(frame.height * scale_width / frame.width)
                    frame = frame.reformat(width=_even(scale_width), height=_even(h))
                yield frame.to_ndarray(format="rgb24")

        return encode_frames(gen(), out, fps=rate, gop=gop)


def synthetic_clip(
    out: str | Path,
    seconds: float = 4,
    size: tuple[int, int] = (320, 240),
    fps: float = 10,
    gop: int | None = None,
) -> Path:
    """A clip of moving shapes on a textured background, for tests without real media.

    A red square moves left to right, a green bar moves top to bottom, and a blue band
    fills the bottom eighth of every frame (handy to check RGB channel order).

    Args:
        out: output ``.mp4``.
        seconds: clip length.
        size: ``(width, height)`` in pixels.
        fps: frame rate.
        gop: keyframe interval in frames (default ~2 s).
    """
    w, h = _even(size[0]), _even(size[1])
    n_frames = max(1, round(seconds * fps))
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([(xx * 96 // w + 40), (yy * 96 // h + 40), np.full_like(xx, 60)], axis=-1).astype(np.uint8)
    band = h - h // 8
    background[band:] = (0, 0, 255)
    side = max(8, min(w, h) // 5)

    def gen() -> Iterator[np.ndarray]:
        for i in range(n_frames):
            img = background.copy()
            x = int((w - side) * (i % n_frames) / max(1, n_frames - 1))
            y = (h // 3 - side // 2) % max(1, band - side)
            img[y : y + side, x : x + side] = (255, 0, 0)
            bar_y = int((band - 6) * ((i * 2) % n_frames) / max(1, n_frames - 1))
            img[bar_y : bar_y + 6, w // 2 : w // 2 + w // 4] = (0, 255, 0)
            yield img

    return encode_frames(gen(), out, fps=fps, gop=gop)
