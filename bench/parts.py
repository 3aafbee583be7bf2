"""The sum-of-parts ceiling: decode and inference costs measured in isolation.

Definitions (also in docs/benchmarks.md):

* ``d`` — seconds to decode one frame of a clip with PyAV, one thread, as gridworker's
  reader does (``thread_type="SLICE"``, ``decode_threads`` threads), packets from the file;
* ``c`` — seconds to convert one decoded frame to an RGB ndarray (paid only for frames
  that are analysed);
* ``i`` — seconds of bare ``InferenceSession.run`` per image at the best batch size ``b``
  in {1, 2, 4, 8} with ``b <= N`` (one camera gives at most one frame per batch), the
  session built exactly like the detector's (same threads, same options) and run by as
  many concurrent workers as the pipeline has (wall time of a round / its images);
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from gridworker.models.config import session_threads
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
    "parts_cpu_per_frame",
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
    (to an RGB ndarray, analysed frames only), wall time and CPU time (``*_cpu_s``);
    ``frames`` is how many were timed."""

    decode_s: float
    convert_s: float
    frames: int
    decode_cpu_s: float = 0.0
    convert_cpu_s: float = 0.0


@dataclass(frozen=True)
class InferenceCost:
    """Bare ONNX Runtime seconds per image by batch size: wall time and process CPU time."""

    per_image_s: dict[int, float]
    threads: int
    per_image_cpu_s: dict[int, float] = field(default_factory=dict)

    def cpu_near(self, batch: float) -> float:
        """CPU seconds per image at the measured batch size nearest to ``batch``."""
        if not self.per_image_cpu_s:
            return 0.0
        nearest = min(self.per_image_cpu_s, key=lambda b: abs(b - batch))
        return self.per_image_cpu_s[nearest]

    @classmethod
    def mean(cls, costs: Sequence[InferenceCost]) -> InferenceCost:
        """The per-batch mean of several timings of the same model (taken at different moments of
        one run, so a machine whose speed drifts is met halfway rather than at one end).

        >>> a = InferenceCost({8: 0.010}, 2, {8: 0.02})
        >>> InferenceCost.mean([a, InferenceCost({8: 0.012}, 2, {8: 0.02})]).per_image_s
        {8: 0.011}
        """
        if not costs:
            raise ValueError("no timing to average")
        batches = set.intersection(*(set(c.per_image_s) for c in costs))
        cpu_batches = set.intersection(*(set(c.per_image_cpu_s) for c in costs))
        return cls(
            {b: round(float(np.mean([c.per_image_s[b] for c in costs])), 9) for b in sorted(batches)},
            costs[0].threads,
            {b: round(float(np.mean([c.per_image_cpu_s[b] for c in costs])), 9) for b in sorted(cpu_batches)},
        )

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
    decode_s = convert_s = decode_cpu = convert_cpu = 0.0
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
            t, c = time.perf_counter(), time.thread_time()
            decoded = packet.decode()
            decode_s += time.perf_counter() - t
            decode_cpu += time.thread_time() - c
            for frame in decoded:
                t, c = time.perf_counter(), time.thread_time()
                frame.to_ndarray(format="rgb24")
                convert_s += time.perf_counter() - t
                convert_cpu += time.thread_time() - c
                frames += 1
            if frames >= 20 and time.perf_counter() - started >= budget_s:
                break
    if frames == 0:
        raise ValueError(f"{clip.path}: no frame decoded")
    return DecodeCost(decode_s / frames, convert_s / frames, frames, decode_cpu / frames, convert_cpu / frames)


def sample_frames(clip: Clip, count: int = 8) -> list[np.ndarray]:
    """The first ``count`` frames of a clip as RGB arrays (inputs for the inference timing)."""
    images: list[np.ndarray] = []
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            images.append(frame.to_ndarray(format="rgb24"))
            if len(images) >= count:
                break
    return images


def _model_input(session: Any, images: Sequence[np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """A batch in the model's own input format (NHWC uint8 or NCHW float, as declared)."""
    arg = session.get_inputs()[0]
    shape = list(arg.shape)
    nchw = len(shape) == 4 and shape[1] == 3
    h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    h = h if isinstance(h, int) and h > 0 else 640
    w = w if isinstance(w, int) and w > 0 else 640
    resized = [cv2.resize(images[k % len(images)], (w, h), interpolation=cv2.INTER_LINEAR) for k in range(batch)]
    tensor = np.stack(resized)
    if nchw:
        tensor = tensor.transpose(0, 3, 1, 2)
    if "float" in arg.type:
        tensor = tensor.astype(np.float32) / np.float32(255.0)
    return {str(arg.name): np.ascontiguousarray(tensor)}


def measure_inference(
    model_path: Path,
    images: Sequence[np.ndarray],
    threads: int | None = None,
    batches: Sequence[int] = BATCH_SIZES,
    budget_s: float = 1.0,
    workers: int = 1,
) -> InferenceCost:
    """Bare ``session.run`` seconds per image for each batch size, with ``workers`` runs at
    once (as the pipeline's inference workers run them).

    The session is built by gridworker's own ``create_session`` (same threads and options as
    the detector; ``threads`` None: the usable cores shared out among ``workers``). Two
    warm-up rounds per batch size, then rounds of ``workers`` concurrent runs per batch size
    for about ``budget_s`` seconds per size (at least three rounds); the median round time
    divided by the images of the round (batch x workers) is reported.
    """
    workers = max(1, workers)
    session = create_session(Path(model_path), session_threads(threads, workers))
    feeds = {batch: _model_input(session, images, batch) for batch in batches}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-infer") as pool:

        def round_of(feed: dict[str, np.ndarray]) -> None:
            if workers == 1:
                session.run(None, feed)
            else:
                for _ in pool.map(lambda f: session.run(None, f), [feed] * workers):
                    pass

        for feed in feeds.values():
            for _ in range(2):
                round_of(feed)
        # Round-robin over the batch sizes, so a burst of load from elsewhere on the machine
        # hits all sizes alike instead of skewing one of them.
        times: dict[int, list[float]] = {batch: [] for batch in batches}
        cpu: dict[int, list[float]] = {batch: [] for batch in batches}
        started = time.perf_counter()
        while min(len(t) for t in times.values()) < 3 or time.perf_counter() - started < budget_s * len(batches):
            for batch, feed in feeds.items():
                t, c = time.perf_counter(), time.process_time()
                round_of(feed)
                times[batch].append(time.perf_counter() - t)
                cpu[batch].append(time.process_time() - c)
    per_image = {batch: float(np.median(t)) / (batch * workers) for batch, t in times.items()}
    per_image_cpu = {batch: float(np.median(c)) / (batch * workers) for batch, c in cpu.items()}
    return InferenceCost(per_image, session_threads(threads, workers), per_image_cpu)


def ceiling(
    streams: Sequence[Clip],
    decode: dict[Path, DecodeCost],
    inference: InferenceCost,
    fps: float | None = None,
    max_batch: int = 8,
    workers: int = 1,
) -> Ceiling:
    """The sum-of-parts ceiling for these streams (one entry per stream, clips may repeat).

    Args:
        streams: the clip behind each of the N streams.
        decode: measured costs per clip path.
        inference: measured bare inference costs.
        fps: sampling rate per camera (None: each clip's native rate).
        max_batch: the detector's largest batch.
        workers: the pipeline's inference workers (``inference`` timed with as many runs at
            once); each camera has one frame in flight, so a batch takes at most N / workers.
    """
    n = len(streams)
    offered = sum(c.fps for c in streams)
    rates = [min(fps, c.fps) if fps else c.fps for c in streams]
    sampled = sum(rates)
    decode_load = sum(decode[c.path].decode_s * c.fps for c in streams)  # decode-seconds per second
    convert = sum(decode[c.path].convert_s * r for c, r in zip(streams, rates, strict=True)) / sampled
    batch, infer = inference.best(min(max(1, n // max(1, workers)), max_batch))
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


def parts_cpu_per_frame(
    streams: Sequence[Clip],
    decode: dict[Path, DecodeCost],
    inference: InferenceCost,
    analysed_fps: float,
    batch: float,
) -> float | None:
    """CPU seconds the isolated parts need per analysed frame at a pipeline's actual rate.

    Every offered frame is decoded, analysed frames are converted and inferred at the
    batch size nearest the pipeline's mean batch. Comparing this with the pipeline's own
    CPU seconds per frame shows its overhead even on a machine shared with other work
    (CPU time is far less sensitive to contention than wall time).
    """
    if analysed_fps <= 0:
        return None
    decode_cpu = sum(decode[c.path].decode_cpu_s * c.fps for c in streams)
    convert_cpu = sum(decode[c.path].convert_cpu_s for c in streams) / len(streams)
    return decode_cpu / analysed_fps + convert_cpu + inference.cpu_near(batch)
