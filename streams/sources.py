"""What a camera URL may be, and how FFmpeg is allowed to open it.

A camera source is either a **network camera** (``rtsp``, ``rtsps``, ``rtmp``, ``rtmps``,
``http`` or ``https`` for HLS, always ``scheme://host...``) or a **local video file** (a plain
path or ``file://``). Nothing else reaches FFmpeg: its ``proto:`` prefixes (``concat:``,
``subfile,,...:``, ``tcp:``, ``udp:``, ``data:``, ``http:127.0.0.1:8080/x`` without slashes)
would read local files or open sockets, so :func:`parse_source` refuses them, together with
whitespace, control characters and ``|``.

Every open goes through :meth:`NetworkSource.open_args` / :meth:`FileSource.open_args`, which
pin FFmpeg to the protocols and demuxers that scheme needs (``protocol_whitelist`` and
``format_whitelist``; both apply to everything the demuxer opens in turn, so an HLS playlist
cannot point a segment at ``file://`` and an ffconcat or playlist file cannot be probed into).

Where files may come from is policy, decided by the caller: the config file allows them under
``media_dir`` (:func:`check_media_path`), the HTTP API never (:func:`require_network`).

Example:
    >>> parse_source("rtsp://admin:pw@10.0.0.7/stream1").scheme
    'rtsp'
    >>> isinstance(parse_source("/srv/media/gate.mp4"), FileSource)
    True
    >>> parse_source("concat:/etc/passwd|/etc/shadow")  # raises SourceError (not a camera URL)
    Traceback (most recent call last):
        ...
    gridworker.streams.sources.SourceError: 'concat:...' is not a camera URL: ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from .redact import AMBIGUOUS_USERINFO_HELP, ambiguous_userinfo, redact_url

__all__ = [
    "FILE_FORMATS",
    "NETWORK_SCHEMES",
    "FileSource",
    "NetworkSource",
    "OpenArgs",
    "Source",
    "SourceError",
    "check_media_path",
    "parse_source",
    "require_network",
]

NETWORK_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https")
"""Schemes a network camera may use (http/https carry HLS)."""

_ALLOWED_TEXT = ", ".join(f"{s}://" + (" (HLS)" if s.startswith("http") else "") for s in NETWORK_SCHEMES)

# FFmpeg's protocols and demuxers per scheme. RTSP is read interleaved over TCP (the reader
# forces rtsp_transport=tcp), so no UDP/RTP sockets. "crypto" is HLS's AES-128 segments.
_PROTOCOLS = {
    "rtsp": "rtsp,tcp",
    "rtsps": "rtsp,rtsps,tcp,tls",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmp,rtmps,tcp,tls",
    "http": "http,tcp,crypto",
    "https": "http,https,tcp,tls,crypto",
}
_FORMATS = {  # (format to open with, demuxers allowed while opening and reading)
    "rtsp": ("rtsp", "rtsp"),
    "rtsps": ("rtsp", "rtsp"),
    "rtmp": ("flv", "flv,live_flv"),
    "rtmps": ("flv", "flv,live_flv"),
    # HLS: the playlist, then MPEG-TS or fragmented-MP4 segments
    "http": ("hls", "hls,mpegts,mov"),
    "https": ("hls", "hls,mpegts,mov"),
}
FILE_FORMATS = "mov,matroska,avi,mpegts,flv,h264,hevc"
"""Demuxers allowed for local video files (MP4/MOV, MKV/WebM, AVI, TS, FLV, raw H.264/H.265);
playlists (HLS, ffconcat) and image sequences are not."""

_SCHEME_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
# what FFmpeg takes as a protocol prefix: scheme characters (and "," for "subfile,,opts:") then ':'
_PROTOCOL_PREFIX = re.compile(r"^[A-Za-z0-9+.\-,]*:")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f|<>\"\\^`{}]")
_WHITESPACE = re.compile(r"\s")


class SourceError(ValueError):
    """A camera URL that is not allowed; the message says why (credentials redacted)."""


@dataclass(frozen=True, slots=True)
class OpenArgs:
    """Arguments for ``av.open``: what to open, with which demuxer and options.

    ``options`` carries the whitelists; callers add their timeouts with :meth:`with_options`,
    which never lets them replace a whitelist.
    """

    target: str
    format: str | None
    options: dict[str, str] = field(default_factory=dict)

    def with_options(self, extra: dict[str, str]) -> OpenArgs:
        """These arguments plus ``extra`` options (the whitelists stay as they are)."""
        merged = {**extra, **self.options}
        return OpenArgs(self.target, self.format, merged)


@dataclass(frozen=True, slots=True)
class NetworkSource:
    """A network camera: ``scheme://host...`` with one of :data:`NETWORK_SCHEMES`."""

    url: str
    scheme: str
    host: str

    @property
    def is_file(self) -> bool:
        return False

    def open_args(self) -> OpenArgs:
        fmt, formats = _FORMATS[self.scheme]
        options = {"protocol_whitelist": _PROTOCOLS[self.scheme], "format_whitelist": formats}
        if self.scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = "tcp"
        return OpenArgs(self.url, fmt, options)


@dataclass(frozen=True, slots=True)
class FileSource:
    """A local video file (``path`` as written: relative paths are relative to the working folder)."""

    path: Path

    @property
    def is_file(self) -> bool:
        return True

    def open_args(self) -> OpenArgs:
        # An absolute path starts with "/", so FFmpeg never reads a protocol prefix into it.
        target = str(self.path.resolve())
        return OpenArgs(target, None, {"protocol_whitelist": "file", "format_whitelist": FILE_FORMATS})


Source = NetworkSource | FileSource


def _short(url: str) -> str:
    """A prefix of a rejected URL for messages: enough to recognise it, never a secret."""
    head = _PROTOCOL_PREFIX.match(url)
    if head is not None and _SCHEME_URL.match(url) is None:
        return head.group(0) + "..."
    shown = redact_url(url)
    return shown if len(shown) <= 120 else shown[:120] + "..."


def parse_source(url: str) -> Source:
    """Check the syntax of a camera URL and say what kind of source it is.

    Raises:
        SourceError: not an allowed network URL and not a plain file path.
    """
    if not url or not url.strip():
        raise SourceError("the camera URL is empty")
    match = _SCHEME_URL.match(url)
    if match is None and _PROTOCOL_PREFIX.match(url):
        raise SourceError(
            f"{_short(url)!r} is not a camera URL: FFmpeg protocol prefixes (concat:, tcp:, ...) are not sources; "
            f"use {_ALLOWED_TEXT} or a video file path"
        )
    if _BAD_CHARS.search(url):
        raise SourceError(f"{_short(url)!r} is not a camera URL: it contains a control character or one of | < > \" \\ ^ ` {{ }}")
    if match is not None:
        scheme = match.group("scheme").lower()
        if scheme == "file":
            return _file_url(url)
        if scheme not in NETWORK_SCHEMES:
            raise SourceError(f"unsupported URL scheme {scheme!r} in {_short(url)!r}: use {_ALLOWED_TEXT} or a video file path")
        if _WHITESPACE.search(url):
            raise SourceError(f"{_short(url)!r} is not a camera URL: it contains whitespace")
        if ambiguous_userinfo(url):  # the message shows only the scheme: the user-info cannot be told apart
            raise SourceError(f"the camera URL ({scheme}://...) is ambiguous: {AMBIGUOUS_USERINFO_HELP}")
        parts = _split(url)
        host = parts.hostname or ""
        if not host:
            raise SourceError(f"URL {_short(url)!r} has no host")
        return NetworkSource(url=url, scheme=scheme, host=host)
    if url != url.strip():
        raise SourceError(f"file path {url!r} starts or ends with whitespace")
    return FileSource(Path(url))


def _split(url: str) -> SplitResult:
    """``urlsplit(url)`` with a port that is a number in range; the error never quotes
    ``urlsplit``'s own message (which repeats what it took for the port)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise SourceError(
            f"{_short(url)!r} is not a valid URL: its host or port is malformed "
            "(the port must be a number from 0 to 65535, an IPv6 host goes in [brackets])"
        ) from None
    return parts


def _file_url(url: str) -> FileSource:
    parts = _split(url)
    if parts.netloc not in ("", "localhost"):
        raise SourceError(f"file URL {_short(url)!r} names a host; only local files (file:///path) are sources")
    if parts.query or parts.fragment:
        raise SourceError(f"file URL {_short(url)!r} has a query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise SourceError(f"file URL {_short(url)!r} needs an absolute path (file:///path)")
    if _BAD_CHARS.search(path):
        raise SourceError(f"file URL {_short(url)!r} decodes to a control character or one of | < > \" \\ ^ ` {{ }}")
    return FileSource(Path(path))


def require_network(url: str) -> NetworkSource:
    """The URL as a network camera; file sources are refused (the HTTP API's rule).

    Raises:
        SourceError: a file source, or not a camera URL at all.
    """
    source = parse_source(url)
    if isinstance(source, FileSource):
        raise SourceError(
            f"file sources ({_short(url)!r}) are not accepted here: only network cameras ({_ALLOWED_TEXT}); "
            "video files can be configured in the config file, under media_dir"
        )
    return source


def check_media_path(source: FileSource, media_dir: Path | None) -> Path:
    """The file's resolved path, which must lie inside ``media_dir`` (symlinks and ``..`` followed).

    Raises:
        SourceError: no ``media_dir`` configured, or the file resolves outside it.
    """
    if media_dir is None:
        raise SourceError(f"file source {str(source.path)!r} needs media_dir: set media_dir to the folder of your video files")
    root = media_dir.resolve()
    resolved = source.path.resolve()
    if not resolved.is_relative_to(root):
        raise SourceError(f"file source {str(source.path)!r} is outside media_dir ({root}): it resolves to {resolved}")
    return resolved
