#!/usr/bin/python3
"""A small RTSP server that serves H.264 MP4 files as endless live streams.

Run it with the **system** Python (it needs Debian's ``python3-gi`` and
``gir1.2-gst-rtsp-server-1.0``); it imports nothing from gridworker or a virtualenv::

    /usr/bin/python3 streams/rtsp_server.py --port 8554 \\
        --mount cam1=/data/street.mp4 --mount cam2=/data/park.mp4 [--user U --password P]

(the password can also come from ``$GRIDWORKER_RTSP_PASSWORD``, which keeps it out of ``ps``).

Each mount ``NAME=PATH`` is served at ``rtsp://HOST:PORT/NAME``. The H.264 is passed
through (``filesrc ! qtdemux ! h264parse ! rtph264pay``), so it costs almost no CPU; the
file must be H.264 without B-frames (see ``streams/clips.py``). SPS/PPS are repeated
in-band by ``h264parse`` before every IDR *access unit* (doing it in ``rtph264pay`` puts
them before every IDR *slice*, which makes FFmpeg split multi-slice keyframes in two).

How a file becomes a live camera:
  * the media is *shared*: every client sees the same position, like a real camera;
  * looping uses segment seeks: once the pipeline plays, and again on each segment-done,
    the file is seeked back to 0 *without flushing*, so running time (and the RTP
    timestamps) keep increasing; a pad offset adds the one frame duration that segment
    accumulation leaves out, so the timestamps stay evenly spaced across the loop point;
  * EOS / segment-done events are dropped before the payloader, otherwise clients
    receive RTCP BYE at the end of the first pass;
  * the media is marked not seekable (publish-clock mode ``clock-and-offset``), otherwise
    each new client's ``PLAY Range: npt=0-`` would rewind the shared stream for all;
  * no flushing seek is ever made: after a flush the sinks have no last sample, and a
    client PLAY in that window aborts gst-rtsp-server 1.22 (assertion in
    ``gst_rtsp_media_get_rates``; seen under CPU load).

Protocol with the parent process: one line ``READY rtsp://HOST:PORT`` on stdout once the
server listens; ``UNAVAILABLE: reason`` and exit code 3 when GStreamer pieces are missing;
exit code 2 on bad arguments or a port that cannot be bound. SIGTERM/SIGINT (and, with
``--exit-on-stdin-eof``, EOF on stdin: the parent died) stop it cleanly. ``--check`` only
checks the dependencies.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

EXIT_UNAVAILABLE = 3
EXIT_USAGE = 2
REQUIRED_ELEMENTS = ("filesrc", "qtdemux", "h264parse", "rtph264pay")
VERBOSE = False


def _log(msg: str) -> None:
    print(f"rtsp_server[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def _import_gst() -> tuple[Any, Any, Any]:
    """Import GStreamer or exit with ``UNAVAILABLE`` (code 3)."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        print(f"UNAVAILABLE: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(EXIT_UNAVAILABLE)
    Gst.init(None)
    missing = [name for name in REQUIRED_ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        print(f"UNAVAILABLE: missing GStreamer elements: {', '.join(missing)}", flush=True)
        sys.exit(EXIT_UNAVAILABLE)
    return GLib, Gst, GstRtspServer


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve H.264 MP4 files as looping live RTSP streams.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8554, help="0 = any free port")
    p.add_argument("--mount", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--user", default=None, help="require RTSP basic auth with this user")
    p.add_argument(
        "--password",
        default=os.environ.get("GRIDWORKER_RTSP_PASSWORD"),
        help="password for --user (default: $GRIDWORKER_RTSP_PASSWORD, which keeps it out of `ps`)",
    )
    p.add_argument("--check", action="store_true", help="only check that GStreamer is usable")
    p.add_argument("--verbose", action="store_true", help="log seeks and stream events to stderr")
    p.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes (a parent holding a pipe to stdin died)",
    )
    args = p.parse_args(argv)
    if args.check:
        return args
    if not args.mount:
        p.error("at least one --mount NAME=PATH is required")
    if args.user is None:
        args.password = None
    elif args.password is None:
        p.error("--user needs --password (or $GRIDWORKER_RTSP_PASSWORD)")
    mounts = {}
    for item in args.mount:
        name, sep, path = item.partition("=")
        name = name.strip("/")
        if not sep or not name or not path:
            p.error(f"bad --mount {item!r}, expected NAME=PATH")
        if not os.path.isfile(path):
            p.error(f"--mount {name}: no such file {path!r}")
        mounts[name] = os.path.abspath(path)
    args.mounts = mounts
    return args


class _Looper:
    """Makes one shared media loop its file forever (see the module docstring).

    Seeks are sent upstream from the payloader's sink pad, so they reach qtdemux directly
    instead of going through the RTSP media's own (non-seekable) seek handling. All seeks
    are non-flushing: a flush would empty the sinks' last sample, and a client PLAY in that
    window trips an assertion in gst-rtsp-server 1.22 (``gst_rtsp_media_get_rates``).
    """

    def __init__(self, Gst: Any, GLib: Any, media: Any, name: str, registry: set[_Looper]) -> None:
        self.Gst, self.GLib, self.name = Gst, GLib, name
        self.registry = registry  # keeps this object (and its probe) alive while in use
        registry.add(self)
        self.bin = media.get_element()
        self.segment_mode = False
        self.active = True
        pay = self.bin.get_by_name("pay0")
        self.pay_sink = pay.get_static_pad("sink")
        self.pay_sink.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, self._on_event)
        media.connect("new-state", self._on_new_state)
        media.connect("unprepared", self._on_unprepared)

    def _seek(self) -> bool:
        Gst = self.Gst
        if not self.active:
            return False
        event = Gst.Event.new_seek(
            1.0, Gst.Format.TIME, Gst.SeekFlags.SEGMENT, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1
        )
        if not self.pay_sink.push_event(event):
            _log(f"{self.name}: segment seek failed, the stream will end at the end of the file")
        elif VERBOSE:
            _log(f"{self.name}: segment seek to 0")
        return False  # also used as a one-shot GLib idle callback

    def _on_new_state(self, media: Any, state: Any) -> None:
        # Switch the first pass into segment mode (so the end of the file produces
        # segment-done instead of EOS) once the pipeline plays: a non-flushing seek in
        # PAUSED would wait for the stream lock held by the prerolled streaming thread.
        # The first fraction of a second of the file plays twice, which nobody notices.
        if state == self.Gst.State.PLAYING and not self.segment_mode:
            self.segment_mode = True
            self._seek()

    def _frame_duration(self, pad: Any) -> int:
        caps = pad.get_current_caps()
        if caps is not None and caps.get_size() > 0:
            ok, num, den = caps.get_structure(0).get_fraction("framerate")
            if ok and num > 0 and den > 0:
                return int(self.Gst.SECOND * den // num)
        return int(self.Gst.SECOND // 25)

    def _on_unprepared(self, media: Any) -> None:
        self.active = False
        self.registry.discard(self)

    def _on_event(self, pad: Any, info: Any) -> Any:
        Gst = self.Gst
        etype = info.get_event().type
        if VERBOSE:
            _log(f"{self.name}: event {etype.value_nick}")
        if etype == Gst.EventType.SEGMENT_DONE:
            # The next pass's running time continues from the *start* of the last frame;
            # shift it by one frame so the first frame of the pass doesn't share the
            # last frame's timestamp.
            pad.set_offset(pad.get_offset() + self._frame_duration(pad))
            # Next pass: a non-flushing segment seek (running time keeps increasing),
            # issued from the main loop rather than from this streaming thread.
            self.GLib.idle_add(self._seek)
            return Gst.PadProbeReturn.DROP
        if etype == Gst.EventType.EOS:  # would make clients get RTCP BYE
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK


def main(argv: list[str] | None = None) -> int:
    global VERBOSE
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    VERBOSE = args.verbose
    GLib, Gst, GstRtspServer = _import_gst()
    if args.check:
        print("OK", Gst.version_string(), flush=True)
        return 0

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    loopers: set[_Looper] = set()

    role = "gridworker-client"
    for name, path in args.mounts.items():
        factory = GstRtspServer.RTSPMediaFactory()
        location = path.replace("\\", "\\\\").replace('"', '\\"')
        factory.set_launch(
            f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
            f"! rtph264pay name=pay0 pt=96 )"
        )
        factory.set_shared(True)
        factory.set_eos_shutdown(False)
        factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
        if args.user is not None:
            perms = GstRtspServer.RTSPPermissions()
            perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
            perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
            factory.set_permissions(perms)

        def on_configure(_factory: Any, media: Any, _name: str = name) -> None:
            _Looper(Gst, GLib, media, _name, loopers)

        factory.connect("media-configure", on_configure)
        mounts.add_factory("/" + name, factory)

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)

    if server.attach(None) == 0:
        _log(f"cannot listen on {args.host}:{args.port}")
        return EXIT_USAGE
    port = server.get_bound_port()

    loop = GLib.MainLoop()

    def quit_loop(*_a: Any) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, quit_loop)

    def on_stdin(fd: int, condition: Any) -> bool:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:  # parent went away
            _log("stdin closed, exiting")
            loop.quit()
            return False
        return True

    if args.exit_on_stdin_eof:
        condition = GLib.IOCondition.IN | GLib.IOCondition.HUP
        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, condition, on_stdin)

    print(f"READY rtsp://{args.host}:{port}", flush=True)
    try:
        loop.run()
    finally:
        _log("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
