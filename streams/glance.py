"""One *glance* at a camera: open, decode a keyframe or two (and nothing else), close.

A patrol visits hundreds of cameras in turn. Keeping a decoder running on each would cost
a core per handful of cameras; a glance costs one RTSP session and one I-frame decode
(~5-11 ms for 720p) per visit. Non-key packets are read off the socket and dropped without
ever reaching the decoder (and the decoder is told ``skip_frame = "NONKEY"`` as well); the
result counts both, so a test can prove it.

Timing of a visit (all in :class:`GlanceResult`):

* ``connect_s``: RTSP handshake (OPTIONS/DESCRIBE/SETUP/PLAY). Probing is cut to the minimum
  (``probesize=32``, ``analyzeduration=0``): H.264 parameters come from the SDP, so the
  open returns as soon as the session plays instead of waiting for a keyframe.
* ``first_keyframe_s``: from the start of the visit to the first decoded keyframe. A live
  camera is joined at a random point of its GOP, so this is dominated by waiting for the
  next keyframe (0 .. one keyframe interval, 2-5 s on real cameras).
* ``total_s``: the whole visit, close included.

Failures never raise: a visit's outcome is a value (``error_kind`` + a redacted ``error``)
so a scheduler running many of them in threads cannot be derailed by one camera.
Per-visit timeouts keep a dead or hung camera from holding a slot: ``open_timeout_s``
bounds the handshake, ``keyframe_timeout_s`` bounds the wait for the keyframes after it.

PyAV releases the GIL while it reads the socket and decodes, so many glances run at once
in plain threads.

Example::

    result = glance("gate", "rtsp://admin:pw@10.0.0.7/stream1", keyframes=1)
    result.ok, result.first_keyframe_s, result.packets_skipped      # (True, 1.42, 31)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

import av
import av.error

from .demux import video_packets
from .frame import Frame, rgb_image
from .redact import get_logger, redact_text, redact_url, url_secrets
from .sources import NetworkSource, SourceError, parse_source

__all__ = ["GlanceErrorKind", "GlanceResult", "glance"]

log = get_logger(__name__)

GlanceErrorKind = Literal["open_failed", "open_timeout", "keyframe_timeout", "ended", "stopped", "error"]
"""Why a glance failed: refused/404/401/no video; no RTSP answer in time; connected but no
keyframe in time (a hung camera lands here or in ``open_timeout``); the server closed the
stream before enough keyframes came; the caller's stop event; anything else."""


@dataclass(frozen=True, slots=True)
class GlanceResult:
    """The outcome of one glance.

    Attributes:
        camera_id: the camera.
        url: the camera URL with credentials redacted.
        started_at: wall-clock time (``time.time()``) the visit began.
        frames: the decoded keyframes as :class:`Frame` (RGB, full resolution), oldest first.
        connect_s: seconds until the RTSP session played (None if it never did).
        first_keyframe_s: seconds from the start of the visit to the first decoded keyframe.
        total_s: seconds the whole visit took.
        packets_decoded: packets handed to the decoder (keyframes only).
        packets_skipped: non-key packets read and dropped without decoding.
        error_kind: None on success, else why it failed (:data:`GlanceErrorKind`).
        error: human-readable reason (credentials redacted), None on success.
    """

    camera_id: str
    url: str
    started_at: float
    frames: tuple[Frame, ...] = ()
    connect_s: float | None = None
    first_keyframe_s: float | None = None
    total_s: float = 0.0
    packets_decoded: int = 0
    packets_skipped: int = 0
    error_kind: GlanceErrorKind | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the visit delivered the keyframes it asked for."""
        return self.error_kind is None

    @property
    def reason(self) -> str | None:
        """``"error_kind: error"`` for a failed visit, None for a good one."""
        if self.error_kind is None:
            return None
        return f"{self.error_kind}: {self.error}" if self.error else self.error_kind


@dataclass
class _Visit:
    """Mutable bookkeeping of a visit in progress (turned into a GlanceResult at the end)."""

    started_mono: float
    frames: list[Frame] = field(default_factory=list)
    connect_s: float | None = None
    first_keyframe_s: float | None = None
    decoded: int = 0
    skipped: int = 0


class _Failed(Exception):
    def __init__(self, kind: GlanceErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: GlanceErrorKind = kind


def glance(
    camera_id: str,
    url: str,
    *,
    keyframes: int = 1,
    open_timeout_s: float = 5.0,
    keyframe_timeout_s: float = 8.0,
    read_timeout_s: float | None = None,
    stop: threading.Event | None = None,
    first_seq: int = 1,
) -> GlanceResult:
    """Visit one camera: open, decode ``keyframes`` keyframes (skipping every non-key packet), close.

    Args:
        camera_id: id copied into the frames and the result.
        url: ``rtsp(s)://`` (TCP is used), ``rtmp(s)://``, ``http(s)://`` (HLS) or a local file path;
            anything else fails the visit with ``open_failed`` before FFmpeg sees it.
        keyframes: how many keyframes to take (each one after the first costs a GOP of waiting).
        open_timeout_s: longest RTSP handshake (connect + DESCRIBE/SETUP/PLAY).
        keyframe_timeout_s: longest wait, once connected, until all ``keyframes`` are decoded.
            Must exceed the camera's keyframe interval (2-5 s on typical cameras).
        read_timeout_s: longest single blocking socket read; a silent (hung) server is given
            up after about twice this. Default ``min(3, keyframe_timeout_s / 2)``.
        stop: set it to abandon the visit early (checked on every packet; a blocked read
            notices within ``read_timeout_s``).
        first_seq: ``seq`` of the first returned frame (the next ones count up from it).

    Returns:
        A :class:`GlanceResult`; never raises for camera or network problems.
    """
    if keyframes < 1:
        raise ValueError(f"keyframes must be >= 1, got {keyframes}")
    if open_timeout_s <= 0 or keyframe_timeout_s <= 0:
        raise ValueError("timeouts must be positive")
    read_s = read_timeout_s if read_timeout_s is not None else min(3.0, keyframe_timeout_s / 2)
    safe_url = redact_url(url)
    secrets = url_secrets(url)
    started_at = time.time()
    visit = _Visit(started_mono=time.monotonic())
    kind: GlanceErrorKind | None = None
    message: str | None = None
    try:
        _run(camera_id, url, safe_url, visit, keyframes, open_timeout_s, keyframe_timeout_s, read_s, stop, first_seq)
    except _Failed as exc:
        kind, message = exc.kind, redact_text(str(exc), secrets)
    except Exception as exc:  # noqa: BLE001 - a library surprise is this camera's failure, not the caller's
        kind, message = "error", redact_text(f"{type(exc).__name__}: {exc}", secrets)
    total = time.monotonic() - visit.started_mono
    if kind is not None:
        log.debug("glance %s (%s): %s: %s", camera_id, safe_url, kind, message)
    return GlanceResult(
        camera_id=camera_id,
        url=safe_url,
        started_at=started_at,
        frames=tuple(visit.frames) if kind is None else (),
        connect_s=visit.connect_s,
        first_keyframe_s=visit.first_keyframe_s,
        total_s=total,
        packets_decoded=visit.decoded,
        packets_skipped=visit.skipped,
        error_kind=kind,
        error=message,
    )


def _open(url: str, safe_url: str, open_timeout_s: float, read_s: float) -> av.container.InputContainer:
    try:
        source = parse_source(url)
    except SourceError as exc:
        raise _Failed("open_failed", str(exc)) from None
    options: dict[str, str] = {}
    if isinstance(source, NetworkSource) and source.scheme in ("rtsp", "rtsps"):
        options = {
            "timeout": str(int(max(open_timeout_s, read_s) * 1_000_000)),  # socket-level I/O timeout, us
            # no probing: SPS/PPS come from the SDP, so open returns once the session plays
            "probesize": "32",
            "analyzeduration": "0",
            "fpsprobesize": "0",
        }
    elif isinstance(source, NetworkSource):  # RTMP, HLS: the stream's own headers carry the parameters
        options = {"rw_timeout": str(int(read_s * 1_000_000))}
    # the protocols and demuxers this kind of source needs, and no others (sources.py)
    args = source.open_args().with_options(options)
    t0 = time.monotonic()
    try:
        container = av.open(args.target, mode="r", format=args.format, options=args.options, timeout=(open_timeout_s, read_s))
    except (av.error.ExitError, TimeoutError):
        raise _Failed("open_timeout", f"no answer from {safe_url} within {open_timeout_s:g} s") from None
    except (av.FFmpegError, OSError) as exc:
        if time.monotonic() - t0 >= open_timeout_s * 0.95:
            # an interrupted RTSP handshake surfaces as InvalidDataError: it is a timeout
            raise _Failed("open_timeout", f"no answer from {safe_url} within {open_timeout_s:g} s") from None
        raise _Failed("open_failed", f"cannot open {safe_url}: {type(exc).__name__}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise _Failed("open_failed", f"no video stream in {safe_url}")
    return container


def _run(
    camera_id: str,
    url: str,
    safe_url: str,
    visit: _Visit,
    keyframes: int,
    open_timeout_s: float,
    keyframe_timeout_s: float,
    read_s: float,
    stop: threading.Event | None,
    first_seq: int,
) -> None:
    if stop is not None and stop.is_set():
        raise _Failed("stopped", "stopped before the visit began")
    container = _open(url, safe_url, open_timeout_s, read_s)
    try:
        visit.connect_s = time.monotonic() - visit.started_mono
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.skip_frame = "NONKEY"  # belt and braces: non-key packets never reach it anyway
        stream.thread_type = "SLICE"
        codec.thread_count = 1  # one decoder thread per visit: many visits share 2 cores
        deadline = time.monotonic() + keyframe_timeout_s
        packets = video_packets(container, stream)  # None: another stream's packet
        while len(visit.frames) < keyframes:
            if stop is not None and stop.is_set():
                raise _Failed("stopped", "stopped during the visit")
            if time.monotonic() > deadline:
                raise _Failed(
                    "keyframe_timeout",
                    f"{len(visit.frames)}/{keyframes} keyframes from {safe_url} within {keyframe_timeout_s:g} s",
                )
            try:
                packet = next(packets)
            except StopIteration:
                raise _Failed(
                    "ended", f"{safe_url} ended the stream after {len(visit.frames)}/{keyframes} keyframes"
                ) from None
            except (av.error.ExitError, TimeoutError):
                raise _Failed("keyframe_timeout", f"no data from {safe_url} (read timed out)") from None
            except (av.FFmpegError, OSError) as exc:
                raise _Failed("error", f"read from {safe_url} failed: {type(exc).__name__}: {exc}") from None
            if packet is None or packet.size == 0:  # audio (the loop checks stop and deadline), end of a file
                continue
            if not packet.is_keyframe:
                visit.skipped += 1
                continue
            visit.decoded += 1
            try:
                decoded = packet.decode()
                if not decoded:
                    # a decoder with reordering delay holds the frame back until more packets
                    # come; drain it now instead of waiting a whole GOP for the next keyframe
                    decoded = codec.decode(None)
                    codec.flush_buffers()
            except av.error.InvalidDataError:
                continue  # a damaged keyframe: wait for the next one
            for vframe in decoded:
                if len(visit.frames) >= keyframes:
                    break
                if visit.first_keyframe_s is None:
                    visit.first_keyframe_s = time.monotonic() - visit.started_mono
                seq = first_seq + len(visit.frames)
                visit.frames.append(Frame(camera_id, seq, time.time(), rgb_image(vframe)))
    finally:
        container.close()
