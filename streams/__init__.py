"""Camera streams: read RTSP/RTMP/HLS/file sources into sampled, latest-only frames.

Public surface::

    CameraStream(camera_id, StreamConfig(url=..., fps=5))   # one thread per camera
    parse_source(url) -> NetworkSource | FileSource          # the one check of camera URLs (SourceError)
        .start() .stop() .latest(after_seq) .wait(after_seq, timeout) .health()
    Frame, StreamHealth, StreamState
    StreamError > StreamOpenError | StreamTimeout | StreamEnded
    redact_url, RedactingFilter
    RtspServerProcess, gst_rtsp_available      # real RTSP server for tests and demos
    clips.encode_still / transcode_h264 / synthetic_clip
"""

from .backoff import Backoff, backoff_delay
from .config import StreamConfig, StreamTuning
from .errors import StreamEnded, StreamError, StreamOpenError, StreamTimeout
from .frame import Frame
from .health import StreamHealth, StreamState
from .reader import CameraStream
from .redact import RedactingFilter, redact_text, redact_url
from .sources import FileSource, NetworkSource, SourceError, parse_source
from .rtsp_serve import RtspServerProcess, RtspServerUnavailable, gst_rtsp_available, gst_rtsp_unavailable_reason

__all__ = [
    "Backoff",
    "CameraStream",
    "FileSource",
    "Frame",
    "NetworkSource",
    "RedactingFilter",
    "RtspServerProcess",
    "RtspServerUnavailable",
    "SourceError",
    "StreamConfig",
    "StreamEnded",
    "StreamError",
    "StreamHealth",
    "StreamOpenError",
    "StreamState",
    "StreamTimeout",
    "StreamTuning",
    "backoff_delay",
    "gst_rtsp_available",
    "gst_rtsp_unavailable_reason",
    "parse_source",
    "redact_text",
    "redact_url",
]
