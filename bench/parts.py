"""The sum-of-parts ceiling: decode and inference costs measured in isolation.

Definitions (also in docs/benchmarks.md):

* ``d`` — seconds to decode one frame of a clip with PyAV, one thread, as gridworker's
  reader does (``thread_type="SLICE"``, ``decode_threads`` threads), packets from the file;
* ``c`` — seconds to convert one decoded frame to an RGB ndarray (paid only for frames
  that are analysed);
* ``i`` — seconds of bare ``InferenceSession.run`` per image at the best batch size ``b``
  in {1, 2, 4, 8} with ``b <= N`` (one camera gives at most one frame per batch), the
  session built exactly like the detector's (same threads, same options);
* ``R`` — offered rate, the sum of the N streams' native frame rates (every offered frame
  must be decoded: H.264 P-frames need their predecessors);
* ``S`` — sampled rate, the sum of ``min(fps, native)`` (the most a pipeline may analyse).

The ceiling is the analysed rate ``X`` at which one machine doing nothing but this work,
one part after another, is exactly busy::

    X = 1 / (decode per analysed frame + i),   decode per analysed frame = d·R/X + c
    =>  X = (1 - d·R) / (c + i),   ceiling_fps = min(S, X)

``d·R/X`` is "decoded frames per analysed frame" times ``d``: ``R/S`` when the pipeline
keeps up with the sampled rate, more when it must skip frames to stay live.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from gridworker.models.onnx_session import create_session

__all__ = [
    "BATCH_SIZES",
    "Ceiling",
    "Clip",
    "DecodeCost",
    "InferenceCost",
    "ceiling",
    "measure_decode",
    "measure_inference",
    "probe_clip",
    "sample_frames",
]

BATCH_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Clip:
    """A video file the RTSP server loops: its path, native frame rate and size."""

    path: Path
    fps: float
    width: int
    height: int

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class DecodeCost:
    """Per-frame costs of one clip, seconds: ``decode_s`` (every frame) and ``convert_s``
    (to an RGB ndarray, analysed frames only); ``frames`` is how many were timed."""

    decode_s: float
    convert_s: float
    frames: int


@dataclass(frozen=True)
class InferenceCost:
    """Bare ONNX Runtime seconds per image by batch size."""

    per_image_s: dict[int, float]
    threads: int

    def best(self, max_batch: int) -> tuple[int, float]:
        """``(batch, seconds per image)`` of the cheapest batch size not above ``max_batch``."""
        allowed = {b: s for b, s in self.per_image_s.items() if b <= max(1, max_batch)}
        if not allowed:
            allowed = {min(self.per_image_s): self.per_image_s[min(self.per_image_s)]}
        batch = min(allowed, key=lambda b: allowed[b])
        return batch, allowed[batch]


@dataclass(frozen=True)
class Ceiling:
    """The sum-of-parts ceiling for one set of streams (see the module docstring)."""

    fps: float
    analysed_only_fps: float
    offered_fps: float
    sampled_fps: float
    decode_load: float
    decode_ms: float
    convert_ms: float
    infer_ms: float
    infer_batch: int


def probe_clip(path: Path) -> Clip:
    """Read a clip's native frame rate and size.

    Raises:
        ValueError: the file has no video stream.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        return Clip(Path(path), rate, stream.codec_context.width, stream.codec_context.height)


def measure_decode(clip: Clip, budget_s: float = 1.0, threads: int = 1) -> DecodeCost:
    """Time PyAV decoding of ``clip`` for about ``budget_s`` seconds (at least 20 frames).

    Decoding is timed per packet (``packet.decode()``), conversion per frame
    (``to_ndarray(format="rgb24")``), so the two costs are separate.
    """
    decode_s = convert_s = 0.0
    frames = 0
    started = time.perf_counter()
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        if threads == 0:
            stream.thread_type = "AUTO"
        else:
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = threads
        for packet in container.demux(stream):
            t = time.perf_counter()
            decoded = packet.decode()
            decode_s += time.perf_counter() - t
            for frame in decoded:
                t = time.perf_counter()
                frame.to_ndarray(format="rgb24")
                convert_s += time.perf_counter() - t
                frames += 1
            if frames >= 20 and time.perf_counter() - started >= budget_s:
                break
    if frames == 0:
        raise ValueError(f"{clip.path}: no frame decoded")
    return DecodeCost(decode_s / frames, convert_s / frames, frames)


def sample_frames(clip: Clip, count: int = 8) -> list[np.ndarray]:
    """The first ``count`` frames of a clip as RGB arrays (inputs for the inference timing)."""
    images: list[np.ndarray] = []
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            images.append(frame.to_ndarray(format="rgb24"))
            if len(images) >= count:
                break
    return images


def _model_input(session: object, images: Sequence[np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """A batch in the model's own input format (NHWC uint8 or NCHW float, as declared)."""
    arg = session.get_inputs()[0]  # type: ignore[attr-defined]
    shape = list(arg.shape)
    nchw = len(shape) == 4 and shape[1] == 3
    h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    h = h if isinstance(h, int) and h > 0 else 640
    w = w if isinstance(w, int) and w > 0 else 640
    resized = [cv2.resize(images[k % len(images)], (w, h), interpolation=cv2.INTER_LINEAR) for k in range(batch)]
    tensor = np.stack(resized)
    if nchw:
        tensor = tensor.transpose(0, 3, 1, 2)
    if "float" in arg.type:  # type: ignore[attr-defined]
        tensor = tensor.astype(np.float32) / np.float32(255.0)
    return {arg.name: np.ascontiguousarray(tensor)}  # type: ignore[attr-defined]


def measure_inference(
    model_path: Path,
    images: Sequence[np.ndarray],
    threads: int = 2,
    batches: Sequence[int] = BATCH_SIZES,
    budget_s: float = 1.0,
) -> InferenceCost:
    """Bare ``session.run`` seconds per image for each batch size.

    The session is built by gridworker's own ``create_session`` (same threads and options as
    the detector). Per batch size: two warm-up runs, then runs for about ``budget_s``
    seconds (at least three); the median run time divided by the batch size is reported.
    """
    session = create_session(Path(model_path), threads)
    per_image: dict[int, float] = {}
    for batch in batches:
        feed = _model_input(session, images, batch)
        for _ in range(2):
            session.run(None, feed)
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < 3 or time.perf_counter() - started < budget_s:
            t = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t)
        per_image[batch] = float(np.median(times)) / batch
    return InferenceCost(per_image, threads)


def ceiling(
    streams: Sequence[Clip],
    decode: dict[Path, DecodeCost],
    inference: InferenceCost,
    fps: float | None = None,
    max_batch: int = 8,
) -> Ceiling:
    """The sum-of-parts ceiling for these streams (one entry per stream, clips may repeat).

    Args:
        streams: the clip behind each of the N streams.
        decode: measured costs per clip path.
        inference: measured bare inference costs.
        fps: sampling rate per camera (None: each clip's native rate).
        max_batch: the detector's largest batch.
    """
    n = len(streams)
    offered = sum(c.fps for c in streams)
    rates = [min(fps, c.fps) if fps else c.fps for c in streams]
    sampled = sum(rates)
    decode_load = sum(decode[c.path].decode_s * c.fps for c in streams)  # decode-seconds per second
    convert = sum(decode[c.path].convert_s * r for c, r in zip(streams, rates)) / sampled
    batch, infer = inference.best(min(n, max_batch))
    capacity = max(0.0, 1.0 - decode_load) / (convert + infer)
    analysed_only = 1.0 / (decode_load / sampled + convert + infer)
    mean_decode = decode_load / offered
    return Ceiling(
        fps=min(sampled, capacity),
        analysed_only_fps=min(sampled, analysed_only),
        offered_fps=offered,
        sampled_fps=sampled,
        decode_load=decode_load,
        decode_ms=mean_decode * 1e3,
        convert_ms=convert * 1e3,
        infer_ms=infer * 1e3,
        infer_batch=batch,
    )
