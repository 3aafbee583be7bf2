"""One thread per camera: open, decode, sample, publish the latest frame, reconnect."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field, replace

import av
import av.error
import numpy as np

from .backoff import Backoff
from .config import StreamConfig
from .errors import StreamEnded, StreamError, StreamOpenError, StreamTimeout
from .demux import video_packets
from .evidence import CodecParams, PacketRing, in_band_parameter_sets
from .frame import DecodedFrame, Frame, FrameListener, rgb_image
from .health import StreamErrorKind, StreamHealth, StreamState
from .redact import get_logger, redact_text, url_secrets
from .sources import NetworkSource

__all__ = ["CameraStream", "media_time"]

log = get_logger(__name__)

_FPS_WINDOW_S = 5.0  # health().fps is measured over this many seconds of published frames
_MAX_PACING_LEAD_S = 2.0  # a file timestamp further ahead than this is a jump: re-anchor, don't sleep
_MAX_PACING_LAG_S = 1.0  # fell this far behind the file's schedule (CPU starved): re-anchor, don't burst
_DISCONTINUITY_S = 5.0  # a media-time jump this large resets the sampling schedule


def media_time(vframe: av.frame.Frame) -> float | None:
    """The frame's time in seconds, None without a pts (PyAV's VideoFrame stub omits the None)."""
    return vframe.time


@dataclass(eq=False)
class _Published:
    """The latest-frame slot's content. Pixels stay in the decoder's frame until taken."""

    seq: int
    ts: float
    vframe: av.VideoFrame | None
    consumed: bool = False
    image: np.ndarray | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to_frame(self, camera_id: str) -> Frame:
        # Converted at most once, by the first consumer, outside the stream's lock.
        with self.lock:
            if self.image is None:
                assert self.vframe is not None
                self.image, self.vframe = rgb_image(self.vframe), None  # read-only: shared by every consumer
        return Frame(camera_id, self.seq, self.ts, self.image)


def _error_kind(error: StreamError) -> StreamErrorKind:
    if isinstance(error, StreamOpenError):
        return "open_failed"
    if isinstance(error, StreamTimeout):
        return "timeout"
    if isinstance(error, StreamEnded):
        return "ended"
    return "error"


class _Sampler:
    """Decides which decoded frames to publish so that about ``fps`` per second go out.

    Files are sampled on media time (so ``realtime=False`` still yields ``fps`` frames per
    second *of video*); live sources on arrival time (camera timestamps are not trusted,
    and after a burst of buffered frames only the newest matters).
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next: float | None = None
        self._last: float | None = None

    def reset(self) -> None:
        self._next = self._last = None

    def take(self, t: float) -> bool:
        if self._last is not None and (t < self._last or t - self._last > _DISCONTINUITY_S):
            self._next = None
        self._last = t
        # A quarter period of tolerance absorbs timestamp jitter (25 fps into 5 fps etc.).
        if self._next is not None and t < self._next - 0.25 * self.period:
            return False
        self._next = t + self.period if self._next is None else self._next + self.period
        if self._next <= t:  # behind schedule: don't burst to catch up
            self._next = t + self.period
        return True


class _Pacer:
    """Sleeps so that a file's frames come out at the pace of their timestamps."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._anchor: tuple[float, float] | None = None  # (monotonic, media time)

    def reset(self) -> None:
        self._anchor = None

    def wait_for(self, media_t: float) -> None:
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, media_t)
            return
        delay = self._anchor[0] + (media_t - self._anchor[1]) - now
        if delay > _MAX_PACING_LEAD_S or delay < -_MAX_PACING_LAG_S:
            self._anchor = (now, media_t)
        elif delay > 0:
            self._stop.wait(delay)


def _lower_thread_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux: per thread), so inference runs first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):  # not Linux, or not allowed: run at normal priority
        pass


class CameraStream:
    """Reads one camera in its own thread and keeps only its newest sampled frame.

    The worker opens the source with PyAV (RTSP over TCP, open and read timeouts), decodes
    every frame, and publishes about ``config.fps`` of them into a one-frame slot. A newer
    frame replaces an unconsumed older one (counted in ``frames_dropped``), so a slow
    consumer always gets the freshest picture and memory stays bounded. Pixels are
    converted to RGB only when a consumer takes the frame.

    Any failure (refused, 401, timeout, hung server, end of a live stream) moves the camera
    to BACKOFF and it reconnects after an exponential, jittered, capped delay; nothing is
    raised to the caller. File sources play at real-time pace and loop (configurable).

    Args:
        camera_id: id of the camera (copied into every Frame).
        config: how to read it.

    Example::

        cam = CameraStream("gate", StreamConfig(url="rtsp://10.0.0.7/stream1", fps=5))
        cam.start()
        frame = cam.wait(after_seq=-1, timeout=10)   # Frame | None
        cam.stop()                                   # True: the worker exited
    """

    def __init__(self, camera_id: str, config: StreamConfig) -> None:
        self._camera_id = camera_id
        self._config = config
        self._safe_url = config.redacted_url
        self._secrets = url_secrets(config.url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Guards everything below. Held only for field updates, never during I/O or logging.
        self._cond = threading.Condition(threading.Lock())
        self._slot: _Published | None = None
        self._seq = 0
        self._state = StreamState.CONNECTING
        self._since = time.time()
        self._finished = False
        self._frames_decoded = 0
        self._frames_published = 0
        self._frames_dropped = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._last_error_kind: StreamErrorKind | None = None
        self._last_frame_ts: float | None = None
        self._last_frame_mono: float | None = None
        self._publish_times: deque[float] = deque(maxlen=max(8, int(config.fps * _FPS_WINDOW_S) + 2))
        # Worker-only state (no lock needed).
        self._session_frames = 0
        self._session_opened = 0.0
        self._sampler = _Sampler(config.fps)
        self._pacer = _Pacer(self._stop)
        # Encoded packets for evidence clips; written by the worker only (the ring locks itself).
        self._ring: PacketRing | None = None
        self._parameter_sets: bytes | None = None  # record-only: the last keyframe's in-band SPS/PPS
        # told of each published frame, outside ``_cond`` (the pipeline's batcher)
        self._listener: FrameListener | None = None
        if config.clip_buffer_s > 0:
            self._ring = PacketRing(config.clip_buffer_s, max_bytes=int(config.clip_buffer_mb * 1_000_000))

    # ------------------------------------------------------------------ consumer API
    @property
    def camera_id(self) -> str:
        return self._camera_id

    @property
    def config(self) -> StreamConfig:
        return self._config

    @property
    def packet_ring(self) -> PacketRing | None:
        """The ring of recent encoded packets (``config.clip_buffer_s > 0``), else None."""
        return self._ring

    def on_frame(self, listener: FrameListener | None) -> None:
        """Push every published frame to ``listener`` (the batcher's
        :meth:`~gridworker.vision.batcher.Batcher.offer`), from the worker thread and outside
        this reader's lock; None stops it. While a listener is set, frames it replaced before
        taking them count as dropped (not frames left in this reader's own slot)."""
        self._listener = listener

    @property
    def is_live(self) -> bool:
        """Cheap check for hot loops (no snapshot, no lock): the worker's own state is LIVE."""
        return self._state is StreamState.LIVE

    def start(self) -> None:
        """Start the worker thread. A stream runs once: start after stop raises."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self._camera_id}: start() called twice")
        self._since = time.time()
        # daemon only so that a worker stuck inside a C call cannot block interpreter
        # exit; the shutdown path is stop(), which sets the event and joins.
        self._thread = threading.Thread(target=self._worker, name=f"camera-{self._camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the worker to stop and join it.

        Args:
            timeout: seconds to wait; default ``max(open_timeout_s, read_timeout_s) + 2``
                (a worker blocked in an open or a read notices the stop when it times out).

        Returns:
            True if the worker exited (or never started); False (and a warning is logged)
            if it is still running after ``timeout``.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            self._set_state(StreamState.STOPPED)
            self._mark_finished()
            return True
        if timeout is None:
            timeout = max(self._config.open_timeout_s, self._config.read_timeout_s) + 2.0
        thread.join(timeout)
        if thread.is_alive():
            log.warning(
                "camera %s: worker did not exit within %.1f s (blocked in I/O on %s?)",
                self._camera_id,
                timeout,
                self._safe_url,
            )
            return False
        return True

    def latest(self, after_seq: int = -1) -> Frame | None:
        """Newest published frame with ``seq > after_seq``, or None. Never blocks on I/O.

        The frame is marked consumed, so replacing it later does not count as a drop.
        Its ``image`` is read-only (it is shared by all consumers): copy it to draw on it.
        """
        with self._cond:
            slot = self._slot
            if slot is None or slot.seq <= after_seq:
                return None
            slot.consumed = True
        return slot.to_frame(self._camera_id)

    def wait(self, after_seq: int = -1, timeout: float | None = None) -> Frame | None:
        """Like :meth:`latest` but waits up to ``timeout`` seconds for such a frame.

        Returns None on timeout, or at once when the stream has stopped.
        """
        with self._cond:
            ok = self._cond.wait_for(
                lambda: (self._slot is not None and self._slot.seq > after_seq) or self._finished,
                timeout,
            )
            slot = self._slot
            if not ok or slot is None or slot.seq <= after_seq:
                return None
            slot.consumed = True
        return slot.to_frame(self._camera_id)

    def health(self) -> StreamHealth:
        """Snapshot of state and counters (cheap; safe from any thread)."""
        with self._cond:
            state, since = self._state, self._since
            last_mono, last_ts = self._last_frame_mono, self._last_frame_ts
            times = list(self._publish_times)
            snapshot = (
                self._frames_decoded,
                self._frames_published,
                self._frames_dropped,
                self._reconnects,
                self._last_error,
                self._last_error_kind,
            )
        now = time.monotonic()
        stall = self._config.stall_after_s
        # A worker blocked in a read cannot report the stall itself: derive it here.
        if state is StreamState.LIVE and last_mono is not None and now - last_mono > stall:
            state = StreamState.STALLED
            since = (last_ts or time.time()) + stall
        fps = 0.0
        if state is StreamState.LIVE:
            recent = [t for t in times if now - t <= _FPS_WINDOW_S]
            if len(recent) >= 2 and recent[-1] > recent[0]:
                fps = (len(recent) - 1) / (recent[-1] - recent[0])
        decoded, published, dropped, reconnects, last_error, error_kind = snapshot
        return StreamHealth(
            camera_id=self._camera_id,
            state=state,
            since=since,
            fps=round(fps, 3),
            frames_decoded=decoded,
            frames_published=published,
            frames_dropped=dropped,
            reconnects=reconnects,
            last_error=last_error,
            last_frame_ts=last_ts,
            last_error_kind=error_kind,
        )

    def __enter__(self) -> CameraStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"CameraStream({self._camera_id!r}, url={self._safe_url!r}, state={self._state.value})"

    # ------------------------------------------------------------------ worker
    def _worker(self) -> None:
        cfg = self._config
        if cfg.thread_nice:
            _lower_thread_priority(cfg.thread_nice)
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, cfg.backoff_jitter)
        attempt = 0
        try:
            while not self._stop.is_set():
                if attempt:
                    with self._cond:
                        self._reconnects += 1
                attempt += 1
                self._set_state(StreamState.CONNECTING)
                log.info("camera %s: connecting to %s (attempt %d)", self._camera_id, self._safe_url, attempt)
                try:
                    self._session()
                except StreamEnded as exc:
                    if cfg.is_file:  # a file with loop=False is done
                        log.info("camera %s: %s", self._camera_id, exc)
                        break
                    error: StreamError = exc
                except StreamError as exc:
                    error = exc
                except Exception as exc:  # noqa: BLE001 - a library surprise must not kill the camera
                    error = StreamError(f"unexpected {type(exc).__name__}: {self._clean(str(exc))}")
                    log.error(
                        "camera %s: unexpected error\n%s",
                        self._camera_id,
                        self._clean(traceback.format_exc()),
                    )
                else:
                    break  # the session returns normally only when stop() was called
                if self._stop.is_set():
                    break
                # The one place where reconnect delays are decided.
                if self._session_frames > 0:
                    backoff.reset()
                delay = backoff.next_delay()
                message = f"{type(error).__name__}: {error}"
                self._set_state(StreamState.BACKOFF, error=message, error_kind=_error_kind(error))
                log.warning(
                    "camera %s: %s; reconnecting to %s in %.2f s",
                    self._camera_id,
                    message,
                    self._safe_url,
                    delay,
                )
                self._stop.wait(delay)
        finally:
            self._set_state(StreamState.STOPPED)
            self._mark_finished()
            log.info("camera %s: stopped", self._camera_id)

    def _session(self) -> None:
        """One connection: open, decode until stop/error/end. Files loop inside it."""
        cfg = self._config
        self._session_frames = 0
        self._sampler.reset()
        self._pacer.reset()
        media_offset = 0.0
        while True:
            container = self._open()
            try:
                media_offset = self._play(container, media_offset)
            finally:
                container.close()
            if self._stop.is_set():
                return
            if not cfg.is_file:
                raise StreamEnded(f"stream ended: {self._safe_url} closed the connection")
            if not cfg.loop:
                raise StreamEnded(f"end of file {self._safe_url}")
            # a looped file: reopen (cheap for a local file) and continue the media clock

    def _open(self) -> av.container.InputContainer:
        cfg = self._config
        source = cfg.source
        extra: dict[str, str] = {}
        if isinstance(source, NetworkSource):
            read_us = str(int(cfg.read_timeout_s * 1_000_000))
            extra["analyzeduration"] = str(int(cfg.analyze_s * 1_000_000))
            extra["timeout" if source.scheme in ("rtsp", "rtsps") else "rw_timeout"] = read_us
        # the protocols and demuxers this kind of source needs, and no others (sources.py)
        args = source.open_args().with_options(extra)
        # PyAV's read timeout interrupts one blocking read. On a silent RTSP connection the
        # first interrupted read still returns a packet FFmpeg was holding back, and only
        # the second raises, so half of read_timeout_s makes "no data for read_timeout_s"
        # the actual detection time (measured: 2 x the PyAV timeout after a SIGSTOP).
        read_interrupt_s = cfg.read_timeout_s if cfg.is_file else cfg.read_timeout_s / 2
        try:
            container = av.open(
                args.target, mode="r", format=args.format, options=args.options, timeout=(cfg.open_timeout_s, read_interrupt_s)
            )
        except (av.error.ExitError, TimeoutError):
            raise StreamTimeout(f"no answer from {self._safe_url} within {cfg.open_timeout_s:g} s") from None
        except (av.FFmpegError, OSError) as exc:
            raise StreamOpenError(f"cannot open {self._safe_url}: {self._describe(exc)}") from None
        self._session_opened = time.monotonic()
        log.debug("camera %s: opened %s", self._camera_id, self._safe_url)
        if not container.streams.video:
            container.close()
            raise StreamOpenError(f"no video stream in {self._safe_url}")
        stream = container.streams.video[0]
        if cfg.decode_threads == 0:
            stream.thread_type = "AUTO"
        else:
            stream.thread_type = "SLICE"
            stream.codec_context.thread_count = cfg.decode_threads
        if cfg.keyframes_only:  # the decoder drops every other frame before decoding it
            stream.codec_context.skip_frame = "NONKEY"
        return container

    def _play(self, container: av.container.InputContainer, media_offset: float) -> float:
        """Decode until the source ends (returns) or stop is set; errors raise StreamError.

        Returns the media time at which a following pass of a looped file starts.
        """
        cfg = self._config
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        interval = 1.0 / rate if rate > 0 else 0.04
        pass_start: float | None = None
        media_t = media_offset - interval
        ring = self._ring
        if ring is not None:
            self._start_ring_session(ring, stream)
        packets = video_packets(container, stream)  # None: another stream's packet
        while not self._stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.error.ExitError, TimeoutError):
                raise StreamTimeout(f"no data from {self._safe_url} for {cfg.read_timeout_s:g} s") from None
            except (av.FFmpegError, OSError) as exc:
                raise StreamError(f"read from {self._safe_url} failed: {self._describe(exc)}") from None
            if packet is None:  # audio goes on while the video may have stopped: check for a stall
                self._check_progress()
                continue
            if not cfg.decode:  # record-only: the packet is the product
                if cfg.is_file and packet.pts is not None and packet.time_base is not None:
                    packet_time = float(packet.pts * packet.time_base)
                    pass_start = packet_time if pass_start is None else pass_start
                    media_t = media_offset + (packet_time - pass_start)
                    if cfg.effective_realtime:
                        self._pacer.wait_for(media_t)
                self._on_packet()
                if ring is not None:
                    ring.append_packet(packet, time.time())
                    if packet.is_keyframe:
                        self._follow_parameter_sets(ring, stream, packet)
                self._check_progress()
                continue
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                frames = []  # a corrupt packet; the decoder resyncs at the next keyframe, the ring keeps it
            for vframe in frames:
                if not cfg.is_file:
                    # Live: sample on arrival time; camera timestamps can be garbage.
                    self._on_frame(vframe, time.monotonic())
                    continue
                frame_time = media_time(vframe)
                if frame_time is None:
                    media_t += interval
                else:
                    if pass_start is None:
                        pass_start = frame_time
                    media_t = media_offset + (frame_time - pass_start)
                if cfg.effective_realtime:
                    self._pacer.wait_for(media_t)
                    if self._stop.is_set():
                        return media_t + interval
                self._on_frame(vframe, media_t)
            if ring is not None:
                # after decoding (and a file's pacing): arrival time ~ the frame's timestamp
                ring.append_packet(packet, time.time())
                if frames:
                    self._follow_picture_size(ring, stream, frames[-1])
            self._check_progress()
        return media_t + interval

    def _follow_picture_size(self, ring: PacketRing, stream: av.video.stream.VideoStream, vframe: av.VideoFrame) -> None:
        """A picture size other than the ring's: the parameter sets changed in-band (a new SPS
        at a keyframe), so the ring's clips start afresh with the new ones."""
        params = ring.params
        size = (vframe.width, vframe.height)
        if params is None or not params.width or size == (params.width, params.height):
            return
        changed = self._ring_params(stream, in_band=True)
        if changed is None:
            ring.start_session(None)
            return
        log.info("camera %s: picture size changed to %dx%d; evidence clips start afresh", self._camera_id, *size)
        ring.change_params(replace(changed, width=size[0], height=size[1]))

    def _follow_parameter_sets(self, ring: PacketRing, stream: av.video.stream.VideoStream, packet: av.Packet[av.VideoStream]) -> None:
        """Record-only (nothing else is decoded): a keyframe whose in-band parameter sets differ
        from the previous keyframe's (the session's first included) is decoded, that one alone,
        to learn its picture size, which :meth:`_follow_picture_size` compares with the ring's.
        One keyframe decode per change of parameters, not per GOP."""
        sets = in_band_parameter_sets(bytes(packet), stream.codec_context.name)
        if sets is None or sets == self._parameter_sets:
            return
        self._parameter_sets = sets
        codec = stream.codec_context
        try:
            frames = [*codec.decode(packet), *codec.decode(None)]  # drained: a decoder may hold a frame back
            codec.flush_buffers()
        except (av.FFmpegError, ValueError):
            return  # a keyframe that does not decode: the ring keeps its parameters
        if frames:
            self._follow_picture_size(ring, stream, frames[-1])

    def _start_ring_session(self, ring: PacketRing, stream: av.video.stream.VideoStream) -> None:
        """New container: the ring takes its codec parameters (a reconnect may bring a new SPS)."""
        self._parameter_sets = None
        ring.start_session(self._ring_params(stream))

    def _ring_params(self, stream: av.video.stream.VideoStream, *, in_band: bool = False) -> CodecParams | None:
        """The stream's codec parameters for the ring (``CodecParams.from_stream``); None, logged, when they cannot be had."""
        try:
            return CodecParams.from_stream(stream, in_band=in_band)
        except Exception as exc:  # noqa: BLE001 - clips are optional, the camera is not
            log.warning("camera %s: no evidence clips for this session: %s", self._camera_id, self._describe(exc))
            return None

    def _on_frame(self, vframe: av.VideoFrame, sample_t: float) -> None:
        """Count a decoded frame and publish it if the sampler wants it.

        ``sample_t``: seconds on the clock the sampler follows (file media time, or
        monotonic arrival time for live sources)."""
        ts, mono = time.time(), time.monotonic()
        publish = self._sampler.take(sample_t)
        self._session_frames += 1
        seq = 0
        with self._cond:
            self._frames_decoded += 1
            self._last_frame_ts, self._last_frame_mono = ts, mono
            previous = self._state
            if previous is not StreamState.LIVE:
                self._state, self._since = StreamState.LIVE, ts
            listener = self._listener
            if publish:
                if listener is None and self._slot is not None and not self._slot.consumed:
                    self._frames_dropped += 1
                self._seq += 1
                seq = self._seq
                self._slot = _Published(seq, ts, vframe)
                self._frames_published += 1
                self._publish_times.append(mono)
            if publish or previous is not StreamState.LIVE:
                self._cond.notify_all()
        if publish and listener is not None and listener(DecodedFrame(self._camera_id, seq, ts, vframe)):
            with self._cond:
                self._frames_dropped += 1
        if previous is not StreamState.LIVE:
            log.info("camera %s: live (%dx%d) from %s", self._camera_id, vframe.width, vframe.height, self._safe_url)

    def _on_packet(self) -> None:
        """A record-only reader's packet: progress (LIVE, stall detection)."""
        ts, mono = time.time(), time.monotonic()
        self._session_frames += 1
        with self._cond:
            self._last_frame_ts, self._last_frame_mono = ts, mono
            previous = self._state
            if previous is not StreamState.LIVE:
                self._state, self._since = StreamState.LIVE, ts
                self._cond.notify_all()
        if previous is not StreamState.LIVE:
            log.info("camera %s: recording from %s", self._camera_id, self._safe_url)

    def _check_progress(self) -> None:
        """Packets arrive but no frame decodes: report a stall, then give up on the connection."""
        cfg = self._config
        now = time.monotonic()
        if self._session_frames == 0:
            if now - self._session_opened > cfg.open_timeout_s + cfg.read_timeout_s:
                raise StreamTimeout(
                    f"connected to {self._safe_url} but no decodable frame "
                    f"within {cfg.open_timeout_s + cfg.read_timeout_s:g} s"
                )
            return
        last = self._last_frame_mono or now
        if now - last > cfg.stall_after_s:
            if self._set_state(StreamState.STALLED) is StreamState.LIVE:
                log.warning("camera %s: stalled, no frame for %.1f s", self._camera_id, now - last)
            if now - last > cfg.stall_after_s + cfg.read_timeout_s:
                raise StreamTimeout(f"no decodable frame from {self._safe_url} for {now - last:.1f} s")

    # ------------------------------------------------------------------ helpers
    def _set_state(
        self, state: StreamState, error: str | None = None, error_kind: StreamErrorKind = "error"
    ) -> StreamState:
        """Set the state (and last error); returns the previous state."""
        with self._cond:
            previous = self._state
            if state is not previous:
                self._state, self._since = state, time.time()
            if error is not None:
                self._last_error, self._last_error_kind = error, error_kind
            self._cond.notify_all()
        return previous

    def _mark_finished(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def _clean(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _describe(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {self._clean(str(exc))}"
