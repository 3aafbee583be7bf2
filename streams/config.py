"""Configuration of one camera stream."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from gridworker.fields import AnalysisFps, Fraction, RingMegabytes

from .redact import redact_url
from .sources import NETWORK_SCHEMES, FileSource, Source, parse_source

__all__ = ["NETWORK_SCHEMES", "StreamConfig", "StreamTuning"]

#: A reader's timeouts and its first reconnect delay: above 0, at most five minutes.
#: The longest of a reader's timeouts and back-offs (seconds).
READER_SECONDS_MAX = 300.0
ReaderSeconds = Annotated[float, Field(gt=0, le=READER_SECONDS_MAX)]


class StreamTuning(BaseModel):
    """How a camera's reader behaves: timeouts, reconnect backoff, decoding, the evidence ring.

    Everything of :class:`StreamConfig` except the source and the rate; a camera's ``stream``
    section in the config file (and in ``POST /cameras``) is one of these.

    Example:
        >>> StreamTuning(open_timeout_s=5).read_timeout_s
        5.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    open_timeout_s: ReaderSeconds = Field(
        10.0,
        title="Open timeout",
        description="Seconds allowed to connect and read the stream description.",
    )
    read_timeout_s: ReaderSeconds = Field(
        5.0,
        title="Read timeout",
        description="Seconds without data before a live connection is treated as dead and "
        "reopened (this is what detects a hung server).",
    )
    stall_after_s: ReaderSeconds = Field(
        2.0,
        title="Stall threshold",
        description="Seconds without a decoded frame, while connected, before health reports 'stalled'.",
    )
    backoff_initial_s: ReaderSeconds = Field(
        0.5,
        title="First reconnect delay",
        description="Delay before the first reconnect attempt; doubles with every failed attempt.",
    )
    backoff_max_s: float = Field(
        30.0,
        title="Longest reconnect delay",
        description="Upper bound of the reconnect delay (jitter included).",
        gt=0,
        le=3600,
    )
    backoff_jitter: Fraction = Field(
        0.2,
        title="Reconnect jitter",
        description="Random spread of each delay as a fraction: 0.2 means +-20%, so many cameras "
        "behind one failed switch do not reconnect in lock-step.",
    )
    thread_nice: int = Field(
        10,
        ge=0,
        le=19,
        description=(
            "Nice value of the reader thread (Linux). Positive lets the detector's threads run first: decoding needs"
            " little CPU and has slack (latest-frame sampling), inference is the bottleneck (bench, 8 streams:"
            " 0.79-0.84 of the ceiling at 0, 0.86-0.89 at 10). 0 keeps normal priority."
        ),
    )
    realtime: bool | None = Field(
        None,
        title="Real-time pacing of files",
        description="Files only: play at the pace of their timestamps (True) or as fast as possible "
        "(False). Default: True for files. Ignored for live sources.",
    )
    loop: bool = Field(True, title="Loop files", description="Files only: restart at the end instead of stopping.")
    decode_threads: int = Field(
        1,
        title="Decoder threads",
        description="Threads per camera decoder; 0 = FFmpeg's automatic choice. With several cameras, "
        "1 thread each uses the cores best (one camera per core, no oversubscription).",
        ge=0,
        le=16,
    )
    keyframes_only: bool = Field(
        False,
        title="Keyframes only",
        description="Decode only the stream's keyframes (one every GOP, typically 1-2 s): about a tenth of the "
        "decoding cost. For cameras whose rules are all slow (parking, crowds with long durations); the analysed "
        "rate is then at most one frame per GOP.",
    )
    analyze_s: float = Field(
        0.5,
        title="Probe duration",
        description="Live sources: seconds FFmpeg may read at open to probe the stream. Short keeps "
        "time-to-first-frame low; H.264 parameters come from the RTSP SDP anyway.",
        ge=0,
        le=10,
    )

    clip_buffer_s: float = Field(
        0.0,
        title="Evidence ring length",
        description="Seconds of encoded video packets kept in memory for incident clips (no decoding, "
        "just the packets' bytes; about bitrate x seconds of memory). 0 turns the ring off.",
        ge=0,
        le=300,
    )
    clip_buffer_mb: RingMegabytes = Field(
        32.0,
        title="Evidence ring size cap",
        description="Upper bound of the ring's packet data in megabytes, whatever the bitrate.",
    )

    @model_validator(mode="after")
    def _check_backoff(self) -> StreamTuning:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s ({self.backoff_initial_s})"
            )
        return self


class StreamConfig(StreamTuning):
    """How to read one camera.

    ``url`` is an ``rtsp://``, ``rtsps://``, ``rtmp://``, ``rtmps://``, ``http(s)://`` (HLS) or
    ``file://`` URL, or a plain file path (see :mod:`gridworker.streams.sources`; anything else,
    FFmpeg's ``concat:`` and other protocol prefixes included, is refused). Files play like a
    camera: at real-time pace and looped (both configurable). Network sources are live: their
    end of stream counts as a disconnect.

    Example:
        >>> cfg = StreamConfig(url="rtsp://admin:pw@10.0.0.7/stream1", fps=5)
        >>> cfg.is_file, cfg.redacted_url
        (False, 'rtsp://***@10.0.0.7/stream1')
    """

    url: str = Field(
        title="Source URL",
        description="rtsp://, rtsps://, rtmp://, rtmps://, http(s):// (HLS), file:// URL or a plain path to a "
        "video file. May contain user:password or a ?pwd=/;password= parameter (never logged).",
        min_length=1,
    )
    fps: AnalysisFps = Field(
        5.0,
        title="Sampling rate",
        description="Frames per second published to consumers; decoded frames in between are skipped. "
        "If the source is slower, every frame is published.",
    )

    decode: bool = Field(
        True,
        title="Decode",
        description="False: a record-only reader (a camera's main stream beside its detect substream): packets "
        "go to the evidence ring and nothing is decoded or published.",
    )

    _parsed: tuple[str, Source] | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_source(value)  # SourceError is a ValueError: pydantic reports it on "url"
        return value

    @property
    def source(self) -> Source:
        """The parsed source (network camera or local file); parsed once, not per frame."""
        parsed = self._parsed
        if parsed is None or parsed[0] != self.url:  # model_copy(update={"url": ...}) keeps private state
            parsed = self._parsed = (self.url, parse_source(self.url))
        return parsed[1]

    @property
    def is_file(self) -> bool:
        """True for ``file://`` URLs and plain paths."""
        return isinstance(self.source, FileSource)

    @property
    def path(self) -> Path | None:
        """Local path of a file source, else None."""
        source = self.source
        return source.path if isinstance(source, FileSource) else None

    @property
    def effective_realtime(self) -> bool:
        """Whether frames are paced to their timestamps (always True for live sources)."""
        return True if not self.is_file else (self.realtime if self.realtime is not None else True)

    @property
    def redacted_url(self) -> str:
        """The URL with credentials replaced by ``***``."""
        return redact_url(self.url)

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, (redact_url(value) if key == "url" else value)
