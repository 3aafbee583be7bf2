"""Evidence clips: a ring of a camera's *encoded* video packets, cut and remuxed to MP4.

The reader thread appends every demuxed video packet (its bytes as they came off the wire,
no decoding involved) to a :class:`PacketRing`. When an incident needs a clip, the ring is
cut to a wall-clock window (:meth:`PacketRing.cut`), and :func:`write_mp4` remuxes the
packets into an MP4 without re-encoding: the output stream copies the input's codec
parameters (SPS/PPS in ``extradata``, size, pixel format) and the packets are muxed as they
are, with timestamps rebased to start at 0 and ``faststart`` so browsers play it at once.

Timing. Every packet carries two clocks:

* ``ts``: wall-clock arrival (``time.time()``), the clock incidents use (``opened_at``), so
  windows are cut on it;
* ``t``: a continuous media timeline in seconds, advanced by the packets' own ``dts``/``pts``
  deltas (smooth playback, no network jitter) and re-anchored on the arrival clock whenever
  the media clock breaks (reconnect, a looped file restarting at 0, a jump, no timestamps).
  Output timestamps come from ``t``.

A clip always starts at a keyframe: the ring keeps whole GOPs (a GOP is dropped only when
the *next* keyframe is already at or before the time horizon) and a new session drops
packets until its first keyframe.

Example:
    >>> import tempfile
    >>> from gridworker.streams.clips import synthetic_clip
    >>> tmp = tempfile.TemporaryDirectory()
    >>> ring = PacketRing(seconds=15)
    >>> with av.open(str(synthetic_clip(f"{tmp.name}/cam.mp4", seconds=4, size=(160, 120), fps=10, gop=10))) as container:
    ...     ring.start_session(CodecParams.from_stream(container.streams.video[0]))
    ...     for i, packet in enumerate(container.demux(video=0)):  # arriving at 10 fps from t = 1000 s
    ...         _ = ring.append_packet(packet, 1000.0 + i / 10)
    >>> t0 = 1002.5  # the incident
    >>> clip = ring.cut(t0 - 1, t0 + 1)
    >>> clip.start_ts, clip.end_ts  # from the keyframe before t0 - 1
    (1001.0, 1003.5)
    >>> write_mp4(clip, f"{tmp.name}/incident-17.mp4").name
    'incident-17.mp4'
    >>> tmp.cleanup()
"""

from __future__ import annotations

import io
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.codeccontext import VideoCodecContext

from .redact import get_logger

__all__ = ["ClipSource", "CodecParams", "PacketRing", "RingBudget", "RingPacket", "has_picture", "in_band_parameter_sets", "write_mp4"]

log = get_logger(__name__)

_OUT_TIME_BASE = Fraction(1, 90000)  # RTP's video clock: exact for 25/30/10 fps and 90 kHz sources
_DEFAULT_TB = Fraction(1, 90000)  # packets without a time base (never seen from PyAV, but be safe)
_JUMP_S = 5.0  # a media-clock step larger than this (or backwards) is a discontinuity
_MIN_STEP_S = 1e-3  # smallest step of the timeline after a discontinuity
_MAX_PREFIX = 64 * 1024  # parameter sets and SEI held for the next packet: a few hundred bytes


def _nal_units(data: bytes) -> list[bytes]:
    """The NAL units of one packet, Annex B (start codes, as RTSP delivers) or length-prefixed
    (avcC/hvcC, as MP4 files hold); [] when it is neither."""
    if data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01"):
        return [u.lstrip(b"\x00") for u in data.split(b"\x00\x00\x01") if u.strip(b"\x00")]
    units, i = [], 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        if n == 0 or i + 4 + n > len(data):
            return []
        units.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return units if i == len(data) else []


def has_picture(data: bytes, codec_name: str) -> bool:
    """Whether a packet holds a coded picture (an H.264 slice, NAL types 1-5; an HEVC VCL
    unit, types 0-31), not only parameter sets or SEI. Unknown codecs and unparsable data
    count as pictures.

    Example:
        >>> has_picture(bytes.fromhex("00000001 6764 00000001 68ee"), "h264")  # SPS, PPS
        False
        >>> has_picture(bytes.fromhex("00000001 6764 000001 6588"), "h264")  # SPS, IDR slice
        True
    """
    units = _nal_units(data)
    if not units:
        return True
    if codec_name == "h264":
        return any(1 <= (u[0] & 0x1F) <= 5 for u in units)
    if codec_name in ("hevc", "h265"):
        return any(((u[0] >> 1) & 0x3F) <= 31 for u in units)
    return True


#: NAL unit types of parameter sets: H.264 SPS 7, PPS 8; HEVC VPS 32, SPS 33, PPS 34.
_H264_SETS, _HEVC_SETS = frozenset({7, 8}), frozenset({32, 33, 34})


def in_band_parameter_sets(data: bytes, codec_name: str) -> bytes | None:
    """The parameter sets (H.264 SPS/PPS, HEVC VPS/SPS/PPS) a packet carries in-band, joined;
    None when it carries none, or for another codec or data that is not NAL units. Comparing
    them between keyframes tells, without decoding, whether the stream's parameters may have
    changed.

    Example:
        >>> in_band_parameter_sets(bytes.fromhex("00000001 6764 00000001 68ee 000001 6588"), "h264").hex()  # SPS, PPS, IDR
        '676468ee'
        >>> in_band_parameter_sets(bytes.fromhex("00000001 6588"), "h264") is None  # a slice alone
        True
    """
    units = _nal_units(data)
    if codec_name == "h264":
        sets = [u for u in units if (u[0] & 0x1F) in _H264_SETS]
    elif codec_name in ("hevc", "h265"):
        sets = [u for u in units if ((u[0] >> 1) & 0x3F) in _HEVC_SETS]
    else:
        return None
    # a 4-byte start code leaves its first zero on the unit before: trailing zeros carry nothing
    return b"".join(u.rstrip(b"\x00") for u in sets) if sets else None


@dataclass(frozen=True, eq=False)
class CodecParams:
    """What a remux needs from the input stream (codec, SPS/PPS, size, time base).

    ``from_stream`` also keeps a private template: a codec-less copy of the input stream's
    ``AVCodecParameters`` in a never-written in-memory container, independent of the input
    container's lifetime (the reader closes that at every reconnect). Equality of two
    parameter sets (:meth:`same_as`) is on the public fields only.

    Args:
        codec_name: decoder name, e.g. ``h264``, ``hevc``.
        width, height: coded size in pixels (0 when the demuxer did not know it).
        extradata: out-of-band parameter sets (Annex B from RTSP's SDP, avcC from MP4).
        time_base: the input stream's time base.

    Example:
        >>> import tempfile
        >>> from gridworker.streams.clips import synthetic_clip
        >>> tmp = tempfile.TemporaryDirectory()
        >>> with av.open(str(synthetic_clip(f"{tmp.name}/cam.mp4", seconds=1, size=(320, 240)))) as container:
        ...     params = CodecParams.from_stream(container.streams.video[0])
        >>> params.codec_name, params.width, params.height  # still valid, the input closed
        ('h264', 320, 240)
        >>> tmp.cleanup()
    """

    codec_name: str
    width: int
    height: int
    extradata: bytes
    time_base: Fraction | None
    _template: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_stream(cls, stream: Any, *, in_band: bool = False) -> CodecParams:
        """Capture the parameters of an input video stream (``container.streams.video[0]``).

        ``in_band``: the parameter sets changed mid-stream (a new SPS in a keyframe) and the
        stream's ``extradata`` still holds the old ones; they are left out, so the MP4 muxer
        takes them from the clip's first keyframe."""
        holder = av.open(io.BytesIO(), mode="w", format="mp4")
        # opaque=True: use the stream's own (decoder) codec, so no encoder is needed or opened
        template = holder.add_stream_from_template(stream, opaque=True)
        ctx = stream.codec_context
        if in_band:
            template.codec_context.extradata = None
        return cls(
            codec_name=str(ctx.name),
            width=int(ctx.width or 0),
            height=int(ctx.height or 0),
            extradata=b"" if in_band else bytes(ctx.extradata or b""),
            time_base=stream.time_base,
            _template=template,  # keeps ``holder`` alive through ``template.container``
        )

    def same_as(self, other: CodecParams | None) -> bool:
        """True when packets under ``other`` can go into the same MP4 track as ours."""
        return other is not None and (self.codec_name, self.width, self.height, self.extradata) == (
            other.codec_name,
            other.width,
            other.height,
            other.extradata,
        )


@dataclass(frozen=True, slots=True)
class RingPacket:
    """One encoded video packet in the ring.

    Args:
        data: the packet's bytes, unchanged.
        pts, dts: the source timestamps in ``time_base`` units (None when the source had none).
        time_base: of ``pts``/``dts``.
        keyframe: the packet starts a decodable picture (IDR).
        ts: wall-clock arrival, Unix seconds.
        t: position on the ring's continuous media timeline, seconds.
        cts: presentation minus decode time, seconds (0 without B-frames).
    """

    data: bytes
    pts: int | None
    dts: int | None
    time_base: Fraction | None
    keyframe: bool
    ts: float
    t: float
    cts: float = 0.0


@dataclass(frozen=True)
class ClipSource:
    """Packets cut from a ring for one window, ready for :func:`write_mp4`.

    Attributes:
        params: codec parameters of every packet in ``packets``.
        packets: starting with a keyframe, in decode order.
        requested: the ``(start_ts, end_ts)`` window asked for (wall clock).
    """

    params: CodecParams
    packets: tuple[RingPacket, ...]
    requested: tuple[float, float]

    @property
    def start_ts(self) -> float:
        """Wall-clock arrival of the first packet (a keyframe at or before the requested start,
        when the ring reached back that far)."""
        return self.packets[0].ts

    @property
    def end_ts(self) -> float:
        """Wall-clock arrival of the last packet."""
        return self.packets[-1].ts

    @property
    def nbytes(self) -> int:
        return sum(len(p.data) for p in self.packets)

    @property
    def duration_s(self) -> float:
        """Media duration: first to last packet on the media timeline plus one frame."""
        return _timeline(self.packets)[2]


def _timeline(packets: tuple[RingPacket, ...]) -> tuple[list[int], list[int], float]:
    """Output ``(dts, durations)`` in 1/90000 s, strictly increasing from 0, and the duration."""
    scale = _OUT_TIME_BASE.denominator
    t0 = packets[0].t
    dts: list[int] = []
    prev = -1
    for p in packets:
        d = round((p.t - t0) * scale)
        if d <= prev:  # MP4 needs strictly increasing decode times
            d = prev + 1
        dts.append(d)
        prev = d
    steps = [b - a for a, b in zip(dts, dts[1:])]
    last = sorted(steps)[len(steps) // 2] if steps else round(scale / 25)
    durations = [*steps, max(1, last)]
    return dts, durations, (dts[-1] + durations[-1]) / scale


class RingBudget:
    """One memory cap shared by the packet rings of all cameras (``limits.clip_buffers_total_mb``).

    Each attached ring keeps at most ``min(its own max_bytes, total_bytes / rings)``, so N
    cameras can never hold more than ``total_bytes`` together, however many are added. A ring
    leaves the budget when it is detached or garbage-collected (a removed camera's).

    Example:
        >>> budget = RingBudget(64_000_000)
        >>> a, b = PacketRing(15, 48_000_000), PacketRing(15, 48_000_000)
        >>> budget.attach(a); budget.attach(b); (a.cap_bytes, budget.rings)
        (32000000, 2)
    """

    def __init__(self, total_bytes: int) -> None:
        if total_bytes <= 0:
            raise ValueError(f"total_bytes must be > 0, got {total_bytes}")
        self.total_bytes = int(total_bytes)
        self._rings: weakref.WeakSet[PacketRing] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._warned = False

    @property
    def rings(self) -> int:
        return len(self._rings)

    def share(self) -> int:
        """Bytes each ring may keep now."""
        return self.total_bytes // max(1, len(self._rings))

    def attach(self, ring: PacketRing) -> None:
        """Add ``ring``; the rings already in the budget shrink to the new share at once."""
        with self._lock:
            self._rings.add(ring)
            ring.budget = self
            share = self.share()
            squeezed = share < ring.max_bytes
            others = [r for r in self._rings if r is not ring]
        for other in others:
            other.shrink_to_cap()
        if squeezed and not self._warned:
            self._warned = True
            log.warning(
                "clip rings share limits.clip_buffers_total_mb (%.0f MB): %d rings keep at most %.1f MB each, "
                "less than the %.1f MB asked; clips may start later than clip_pre_s",
                self.total_bytes / 1e6, len(self._rings), share / 1e6, ring.max_bytes / 1e6,
            )

    def detach(self, ring: PacketRing) -> None:
        with self._lock:
            self._rings.discard(ring)
            if ring.budget is self:
                ring.budget = None


class PacketRing:
    """A bounded, thread-safe ring of one camera's encoded video packets.

    Holds the last ``seconds`` of packets (by arrival time), never more than ``max_bytes``
    of packet data, and always starts at a keyframe: whole GOPs are kept, the oldest is
    dropped only once the following keyframe is at or before ``newest - seconds``. So the
    ring spans between ``seconds`` and ``seconds + one GOP``. A single GOP larger than
    ``max_bytes`` (a camera that never sends keyframes) empties the ring until the next
    keyframe.

    One writer (the camera's reader thread) and any number of readers (:meth:`cut`) may use
    it concurrently; the lock is held only for list operations, never for I/O.

    Args:
        seconds: time span to keep, seconds (> 0).
        max_bytes: hard cap on the packet data kept.

    Example:
        >>> ring = PacketRing(seconds=15, max_bytes=32_000_000)
        >>> ring.span_s, len(ring)
        (0.0, 0)
    """

    def __init__(self, seconds: float = 15.0, max_bytes: int = 32_000_000) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        self.seconds = float(seconds)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._gops: deque[list[RingPacket]] = deque()
        self._nbytes = 0
        self._count = 0
        self._params: CodecParams | None = None
        self._need_key = True
        self._prefix = b""  # bytes of packets without any timestamp, joined to the next one
        self._anchor: tuple[float, float] | None = None  # (source seconds, timeline seconds)
        self._last: RingPacket | None = None
        self._tb: tuple[Fraction | None, float] = (None, float(_DEFAULT_TB))  # time base -> float, cached
        self.overflows = 0  # times a single GOP exceeded max_bytes
        self.budget: RingBudget | None = None  # a cap shared with other cameras' rings (RingBudget.attach)

    # ------------------------------------------------------------------ writer side
    def start_session(self, params: CodecParams | None) -> None:
        """A new connection (or a looped file's next pass) begins.

        Packets already held stay when the codec parameters are the same (a short reconnect
        does not lose the pre-incident seconds); otherwise (a new SPS, another size or
        codec) they are dropped, because one MP4 track has one set of parameters. Either
        way the media clock is re-anchored and packets are ignored until the first keyframe.
        ``None`` (parameters unknown) empties the ring and ignores packets until the next
        session.
        """
        with self._lock:
            if params is None or not params.same_as(self._params):
                self._gops.clear()
                self._nbytes = self._count = 0
                self._last = None
            self._params = params
            self._need_key = True
            self._prefix = b""
            self._anchor = None

    def change_params(self, params: CodecParams) -> None:
        """The stream's parameters changed mid-session (an in-band SPS with another picture
        size, noticed on a decoded picture once its keyframe is in the ring): every GOP but
        the newest, which starts at or after the change, is dropped, so no clip mixes two sets
        of parameters; a clip asked for across the change gets the part after it."""
        with self._lock:
            while len(self._gops) > 1:
                self._drop_oldest()
            self._params = params

    def append(
        self,
        data: bytes,
        *,
        pts: int | None,
        dts: int | None,
        time_base: Fraction | None,
        keyframe: bool,
        ts: float | None = None,
    ) -> bool:
        """Add one packet; returns whether it was kept (False before the session's first
        keyframe, without codec parameters, or for a timestamp-less packet that is held to
        be joined to the next one)."""
        if not data:
            return False
        ts = time.time() if ts is None else ts
        src = dts if dts is not None else pts
        with self._lock:
            if self._params is None:
                return False
            if src is None:
                # e.g. RTSP's first SPS/PPS packet: no timestamp of its own; it belongs to
                # the access unit that follows (Annex B and avcC both allow concatenation).
                # One that holds a picture (FFmpeg's RTSP demuxer hands the first access unit
                # over once without timestamps, then again with them) is dropped: joined to the
                # next it would put one picture twice in a packet, which browsers refuse to play.
                if not has_picture(data, self._params.codec_name):
                    self._prefix = (self._prefix + data)[-_MAX_PREFIX:]
                return False
            if self._prefix:
                data, self._prefix = self._prefix + data, b""
            if self._need_key and not keyframe:
                return False
            self._need_key = False
            if time_base != self._tb[0]:  # Fraction arithmetic is slow: convert once per time base
                self._tb = (time_base, float(time_base) if time_base else float(_DEFAULT_TB))
                time_base = self._tb[0]
            tb = self._tb[1]
            s = src * tb
            cts = (pts - dts) * tb if pts is not None and dts is not None else 0.0
            last = self._last
            t = None
            if self._anchor is not None and last is not None:
                t = self._anchor[1] + (s - self._anchor[0])
                if not (last.t < t <= last.t + _JUMP_S):
                    t = None  # the media clock broke: fall back to the arrival clock
            if t is None:
                t = ts if last is None else last.t + max(ts - last.ts, _MIN_STEP_S)
                self._anchor = (s, t)
            pkt = RingPacket(data, pts, dts, time_base, bool(keyframe), ts, t, max(0.0, cts))
            if keyframe or not self._gops:
                self._gops.append([pkt])
            else:
                self._gops[-1].append(pkt)
            self._last = pkt
            self._nbytes += len(data)
            self._count += 1
            self._trim(ts)
            return True

    def append_packet(self, packet: av.Packet[av.VideoStream], ts: float | None = None) -> bool:
        """:meth:`append` for a demuxed PyAV packet (one copy: ``bytes(packet)``)."""
        if not packet.size:
            return False
        return self.append(
            bytes(packet),
            pts=packet.pts,
            dts=packet.dts,
            time_base=packet.time_base,
            keyframe=packet.is_keyframe,
            ts=ts,
        )

    @property
    def cap_bytes(self) -> int:
        """The bytes this ring may keep now: ``max_bytes``, or less when a shared budget is tight."""
        budget = self.budget
        return self.max_bytes if budget is None else min(self.max_bytes, budget.share())

    def shrink_to_cap(self) -> None:
        """Drop the oldest GOPs until the ring fits :attr:`cap_bytes` (a shared budget got tighter)."""
        with self._lock:
            cap = self.cap_bytes
            while len(self._gops) >= 2 and self._nbytes > cap:
                self._drop_oldest()
            if self._nbytes > cap:
                self._drop_oldest()
                self._need_key = True

    def _trim(self, newest_ts: float) -> None:
        horizon = newest_ts - self.seconds
        cap = self.cap_bytes
        gops = self._gops
        while len(gops) >= 2 and (gops[1][0].ts <= horizon or self._nbytes > cap):
            self._drop_oldest()
        if self._nbytes > cap:  # one GOP alone is too big: wait for a keyframe
            self._drop_oldest()
            self._need_key = True
            self.overflows += 1
            if self.overflows == 1:
                log.warning("packet ring: one GOP exceeds %d bytes; keyframes too rare for clips", cap)

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self._nbytes -= sum(len(p.data) for p in gop)
        self._count -= len(gop)
        if not self._gops:
            self._last = None

    def clear(self) -> None:
        """Drop every packet (codec parameters stay)."""
        with self._lock:
            self._gops.clear()
            self._nbytes = self._count = 0
            self._last = None
            self._need_key = True
            self._anchor = None

    # ------------------------------------------------------------------ reader side
    def cut(self, start_ts: float, end_ts: float) -> ClipSource | None:
        """Packets covering the wall-clock window ``[start_ts, end_ts]``.

        Starts at the newest keyframe at or before ``start_ts`` (or at the oldest packet held
        if the ring does not reach back that far) and ends with the last packet that arrived
        at or before ``end_ts``. None when no packet falls in the window.
        """
        if end_ts < start_ts:
            raise ValueError(f"end_ts {end_ts} is before start_ts {start_ts}")
        with self._lock:
            params = self._params
            gops = list(self._gops)
        if params is None or not gops:
            return None
        first = 0
        for i, gop in enumerate(gops):
            if gop[0].ts <= start_ts:
                first = i
            else:
                break
        packets: list[RingPacket] = []
        for gop in gops[first:]:
            if gop[0].ts > end_ts:
                break
            # a list being appended to by the writer: its prefix up to len() is stable
            for p in gop[: len(gop)]:
                if p.ts > end_ts:
                    break
                packets.append(p)
        if not packets or packets[-1].ts < start_ts:
            return None
        return ClipSource(params, tuple(packets), (start_ts, end_ts))

    def newest_keyframe(self) -> tuple[CodecParams, RingPacket] | None:
        """The codec parameters and the newest keyframe packet held, nothing decoded or copied;
        None when the ring holds no keyframe."""
        with self._lock:
            params = self._params
            newest = self._gops[-1][0] if self._gops else None
        if params is None or newest is None or not newest.keyframe:
            return None
        return params, newest

    def latest_keyframe(self, held: tuple[CodecParams, RingPacket] | None = None) -> av.VideoFrame | None:
        """The newest keyframe held, decoded (a full-resolution picture of the stream, at the
        cost of decoding one picture); None when the ring holds none or it does not decode.

        ``held``: decode this keyframe (as :meth:`newest_keyframe` gave it, so a caller that
        keys a cache on it gets that very picture, not a newer one that arrived meanwhile)."""
        held = held if held is not None else self.newest_keyframe()
        if held is None:
            return None
        params, newest = held
        try:
            ctx = av.CodecContext.create(params.codec_name, "r")
            if not isinstance(ctx, VideoCodecContext):
                return None
            if params.extradata:
                ctx.extradata = params.extradata
            frames = [*ctx.decode(av.Packet(newest.data)), *ctx.decode(None)]
        except (av.FFmpegError, ValueError) as exc:
            log.warning("evidence ring: the newest keyframe does not decode: %s", exc)
            return None
        picture = frames[0] if frames else None
        return picture if isinstance(picture, av.VideoFrame) else None

    @property
    def params(self) -> CodecParams | None:
        with self._lock:
            return self._params

    @property
    def nbytes(self) -> int:
        """Packet data held, bytes."""
        with self._lock:
            return self._nbytes

    @property
    def span_s(self) -> float:
        """Arrival time from the oldest to the newest packet held, seconds."""
        with self._lock:
            if not self._gops:
                return 0.0
            return self._gops[-1][-1].ts - self._gops[0][0].ts

    @property
    def oldest_ts(self) -> float | None:
        with self._lock:
            return self._gops[0][0].ts if self._gops else None

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def __repr__(self) -> str:
        return f"PacketRing(seconds={self.seconds:g}, packets={len(self)}, bytes={self.nbytes})"


def write_mp4(clip: ClipSource, path: str | Path) -> Path:
    """Remux ``clip`` into an MP4 at ``path`` without decoding or encoding anything.

    The file is written next to ``path`` under a temporary name and renamed into place, so
    a reader never sees half a file. ``moov`` goes first (``faststart``).

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: the clip has no packets or no codec template.
        av.FFmpegError, OSError: the muxer or the file system failed (no partial file is left).
    """
    if not clip.packets:
        raise ValueError("empty clip")
    template = clip.params._template
    if template is None:
        raise ValueError("codec parameters without a template: build them with CodecParams.from_stream")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    dts, durations, _ = _timeline(clip.packets)
    try:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream_from_template(template, opaque=True)
            stream.time_base = _OUT_TIME_BASE
            for p, d, dur in zip(clip.packets, dts, durations):
                packet = av.Packet(p.data)
                packet.dts = d
                packet.pts = d + round(p.cts * _OUT_TIME_BASE.denominator)
                packet.duration = dur
                packet.time_base = _OUT_TIME_BASE
                packet.is_keyframe = p.keyframe
                packet.stream = stream
                out.mux(packet)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
