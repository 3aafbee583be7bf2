"""Frame age, measured the same way for every pipeline the benchmark compares.

The benchmark's RTSP server sends each stream in real time, so the moment a frame left the
server follows from its presentation timestamp (PTS): for one connection, record the wall
time ``t0`` just before the open request and the PTS ``p0`` of the first packet the client
receives; the frame with PTS ``p`` was sent at about ``t0 + (p - p0)``, and its *age* when
its analysis ends is ``now - (t0 + (p - p0))``. The estimate errs on the old side by the
RTSP handshake (a few milliseconds on loopback), never on the young side by a keyframe wait.

Why not ``Frame.ts``: gridworker's reader stamps a frame with the wall time it was
*decoded*. When the reader thread lags (CPU or GIL starved), packets wait in FFmpeg's and
the socket's buffers first, and that wait is invisible in ``Frame.ts``. The benchmark
reports both figures; their difference is the reader's lag.

:class:`PtsCameraStream` adds the PTS bookkeeping to gridworker's ``CameraStream`` without
changing its behaviour, for as long as ``Frame`` carries no send-time estimate of its own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gridworker.streams.config import StreamConfig
from gridworker.streams.reader import CameraStream

__all__ = ["LIVE_AGE_S", "AgeLog", "PtsCameraStream", "SendClock", "percentile"]

LIVE_AGE_S = 1.0
"""A frame whose age at the end of its analysis exceeds this is not counted as live."""


@dataclass
class SendClock:
    """Maps the PTS of one connection's frames to the wall time the server sent them.

    Attributes:
        t0: ``time.time()`` just before the open request.
        p0: PTS in seconds of the first packet received, ``None`` until then.
        min_delay: smallest ``arrival - sent_at(pts)`` over the packets noted with
            :meth:`arrived`: how much of every age is anchor slack (RTSP setup, server
            buffering) rather than waiting on the client side. Diagnostic only.

    Example:
        >>> clock = SendClock(t0=100.0, p0=5.0)
        >>> clock.sent_at(7.5)
        102.5
    """

    t0: float
    p0: float | None = None
    min_delay: float | None = None

    def arrived(self, pts: float, now: float) -> None:
        """Note a packet's arrival; keeps the smallest ``now - sent_at(pts)`` seen."""
        sent = self.sent_at(pts)
        if sent is not None and (self.min_delay is None or now - sent < self.min_delay):
            self.min_delay = now - sent

    def sent_at(self, pts: float) -> float | None:
        """Wall time the frame with PTS ``pts`` (seconds) was sent, or None before any packet."""
        if self.p0 is None:
            return None
        return self.t0 + (pts - self.p0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """``q``-th percentile (0..100) of ``values``, or None when empty."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


class AgeLog:
    """Thread-safe record of analysed frames: ``(stream, done_at, age_s, extra...)``.

    Pipelines append one entry per analysed frame; :meth:`window` returns the entries whose
    analysis ended inside the measurement window.

    Example:
        >>> log = AgeLog()
        >>> log.add(0, 10.0, 0.2)
        >>> [e[2] for e in log.window(9.0, 11.0)]
        [0.2]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[Any, ...]] = []

    def add(self, stream: int, done_at: float, age_s: float | None, *extra: Any) -> None:
        with self._lock:
            self._rows.append((stream, done_at, age_s, *extra))

    def streams_seen(self) -> set[int]:
        """Streams with at least one analysed frame."""
        with self._lock:
            return {row[0] for row in self._rows}

    def streams_live(self) -> set[int]:
        """Streams with at least one live analysed frame (age known and <= ``LIVE_AGE_S``)."""
        with self._lock:
            return {row[0] for row in self._rows if row[2] is not None and row[2] <= LIVE_AGE_S}

    def window(self, start: float, end: float) -> list[tuple[Any, ...]]:
        with self._lock:
            return [row for row in self._rows if start <= row[1] < end]


class _DemuxSpy:
    """Wraps a PyAV input container; reports the PTS of the first demuxed packet."""

    def __init__(self, container: Any, clock: SendClock) -> None:
        self._container = container
        self._clock = clock

    @property
    def streams(self) -> Any:
        return self._container.streams

    def demux(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        base: float | None = None  # the time base as a float: Fraction arithmetic per packet is slow
        for packet in self._container.demux(*args, **kwargs):
            if packet.pts is not None:
                if base is None:
                    fraction = packet.time_base or packet.stream.time_base
                    base = float(fraction) if fraction is not None else None
                if base is not None:
                    pts = packet.pts * base
                    if self._clock.p0 is None:
                        self._clock.p0 = pts
                    self._clock.arrived(pts, time.time())
            yield packet

    def close(self) -> None:
        self._container.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)


class PtsCameraStream(CameraStream):
    """gridworker's ``CameraStream`` plus the send time of every published frame.

    Behaviour is unchanged; the subclass only observes: it notes the wall time before each
    open and the first packet's PTS (via a thin proxy around the container), and, for each
    published frame, the estimated send time ``t0 + (pts - p0)`` under the frame's ``seq``.

    It leans on two private methods of the reader (``_open`` and ``_on_frame``); the clean
    replacement is a send-time field on ``Frame`` filled by the reader itself (see
    docs/benchmarks.md, "Frame age").

    Example:
        >>> stream = PtsCameraStream("cam0", StreamConfig(url="rtsp://127.0.0.1:8554/cam0", fps=25))
        >>> stream.sent_at(seq=1)  # None until that frame was published
    """

    _KEEP = 1024  # seq -> send time entries kept (the consumer lags by a few frames at most)

    def __init__(self, camera_id: str, config: StreamConfig) -> None:
        super().__init__(camera_id, config)
        self._clock: SendClock | None = None
        self._sent: OrderedDict[int, float | None] = OrderedDict()

    def sent_at(self, seq: int) -> float | None:
        """Estimated send time of the published frame ``seq``; None if unknown."""
        return self._sent.get(seq)

    def min_packet_delay(self) -> float | None:
        """Smallest packet arrival delay after its estimated send time, this connection."""
        clock = self._clock
        return clock.min_delay if clock is not None else None

    def _open(self) -> Any:
        clock = SendClock(t0=time.time())
        container = super()._open()
        self._clock = clock
        return _DemuxSpy(container, clock)

    def _on_frame(self, vframe: Any, *args: Any, **kwargs: Any) -> None:
        clock = self._clock
        pts = vframe.time  # seconds, the stream's own timestamp (None if the packet had none)
        sent = clock.sent_at(pts) if clock is not None and pts is not None else None
        # Stored under the seq the next published frame will get *before* publishing it,
        # so a consumer can never see the frame before its send time is known. A frame
        # that is not published is overwritten by the next one.
        self._sent[self._seq + 1] = sent
        while len(self._sent) > self._KEEP:
            self._sent.popitem(last=False)
        super()._on_frame(vframe, *args, **kwargs)
