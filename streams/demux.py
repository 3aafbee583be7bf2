"""A container's video packets, read so that other streams never hold the reader up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeGuard

import av

__all__ = ["video_packets"]


def _of_stream(packet: av.Packet[av.stream.Stream], stream: av.VideoStream) -> TypeGuard[av.Packet[av.VideoStream]]:
    return packet.stream_index == stream.index


def video_packets(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.Packet[av.VideoStream] | None]:
    """The packets of ``stream``, and None for each packet of another stream (audio, data).

    ``container.demux(stream)`` reads every stream's packets too and drops the others inside
    one ``next()``, and PyAV's read timeout starts afresh at each read: while the audio goes
    on after the video stopped, that ``next()`` never returns. Here every read comes back to
    the caller, which checks its stop event and deadlines at a None. Read errors and the end
    of the stream come out of ``next()`` as from ``demux``.
    """
    for packet in container.demux():
        yield packet if _of_stream(packet, stream) else None
