"""Frame age, measured the same way for every pipeline the benchmark compares.

The benchmark's RTSP server sends each stream in real time, so the moment a frame left the
server follows from its presentation timestamp (PTS): for one connection, with ``p0`` the PTS
of the first packet the client receives, the frame with PTS ``p`` was sent at
``anchor + (p - p0)``, and its *age* when its analysis ends is ``now - (anchor + (p - p0))``.
The anchor is the smallest ``arrival - (p - p0)`` over the connection's packets (the
least-delayed packet is taken to have crossed loopback at once; the minimum one-way-delay
estimate of RTP jitter buffers and NTP). Every later packet's wait in the server, the socket
or the client is then part of its age, and the estimate errs on the young side only by the
true minimum network delay (microseconds on loopback). A server that bursts packets ahead of
their schedule makes it err on the old side. Before any packet is noted, the anchor is
``t0``, the wall time just before the open request.

Until 2026-12-04 the anchor was ``t0`` itself. That counts the RTSP set-up of each
connection (DESCRIBE, SETUP, PLAY and the server's preroll) into every frame's age: a few
milliseconds for one camera, but up to ~1 s for the last of 24 cameras opened at once on a
loaded 2-core machine, which made their frames "not live" while they were analysed 0.4 s
after arriving. ``anchor_slack_ms`` (``anchor - t0``) still reports that set-up time.

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
        t0: ``time.time()`` just before the open request (the anchor until a packet is noted).
        p0: PTS in seconds of the first packet received, ``None`` until then.
        min_delay: smallest ``arrival - (t0 + pts - p0)`` over the packets noted with
            :meth:`arrived`: the connection's set-up time as seen from the client (the
            anchor slack), by which an anchor at ``t0`` would overstate every age.

    Example:
        >>> clock = SendClock(t0=100.0, p0=5.0)
        >>> clock.sent_at(7.5)  # no packet noted yet: anchored at t0
        102.5
        >>> clock.arrived(5.0, now=100.4)  # the first packet came 0.4 s after the open request
        >>> clock.arrived(6.0, now=101.9)  # this one waited 0.5 s somewhere: its age shows it
        >>> round(clock.sent_at(7.5), 3)
        102.9
    """

    t0: float
    p0: float | None = None
    min_delay: float | None = None

    def arrived(self, pts: float, now: float) -> None:
        """Note a packet's (or a read frame's) arrival; keeps the smallest delay seen."""
        if self.p0 is None:
            return
        delay = now - (self.t0 + (pts - self.p0))
        if self.min_delay is None or delay < self.min_delay:
            self.min_delay = delay

    def sent_at(self, pts: float) -> float | None:
        """Wall time the frame with PTS ``pts`` (seconds) was sent, or None before any packet."""
        if self.p0 is None:
            return None
        return self.t0 + (self.min_delay or 0.0) + (pts - self.p0)


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
    open and the PTS and arrival of every packet (via a thin proxy around the container), and,
    for each published frame, the estimated send time (:class:`SendClock`) under its ``seq``.

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
        self._sent: OrderedDict[int, tuple[SendClock, float] | None] = OrderedDict()  # seq -> its clock and PTS

    def sent_at(self, seq: int) -> float | None:
        """Estimated send time of the published frame ``seq``; None if unknown. Asked when
        its analysis ends, so the anchor includes every packet noted until then."""
        entry = self._sent.get(seq)
        return entry[0].sent_at(entry[1]) if entry is not None else None

    def min_packet_delay(self) -> float | None:
        """This connection's set-up time as the client saw it (the anchor slack), s."""
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
        sent = (clock, float(pts)) if clock is not None and pts is not None else None
        # Stored under the seq the next published frame will get *before* publishing it,
        # so a consumer can never see the frame before its send time is known. A frame
        # that is not published is overwritten by the next one.
        self._sent[self._seq + 1] = sent
        while len(self._sent) > self._KEEP:
            self._sent.popitem(last=False)
        super()._on_frame(vframe, *args, **kwargs)
