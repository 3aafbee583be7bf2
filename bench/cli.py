"""Command-line sub-commands of :mod:`gridworker.bench`.

``register(subparsers)`` adds, to the ``gridworker`` command's argparse sub-parsers::

    gridworker bench throughput [--streams 1,4,8,16] [--seconds 20] [--media DIR | --synthetic]
                                [--fps F] [--json] [--out FILE] [--no-ultralytics] ...
    gridworker bench patrol --cameras N [--concurrency C] [--mode fixed|adaptive|both] [--continuous K]
                            [--dead 0.1 --hung 0.05] [--media DIR | --synthetic] [--json] [--out FILE]
    gridworker bench reliability [--incidents 500] [--burst 300] [--database URL] [--json] [--out FILE]
    gridworker bench iot [--devices 1000] [--seconds 30] [--broker HOST:PORT] [--json] [--out FILE]
    gridworker bench rules [--clips DIR] [--truth DIR] [--only NAME] [--json] [--out FILE]
    gridworker bench decode [--media DIR] [--no-detector] [--json] [--out FILE]
    gridworker bench latency [--seconds 40] [--json] [--out FILE]
    gridworker bench soak [--minutes 30] [--streams 16] [--media DIR] [--json] [--out FILE]

Every sub-parser sets ``func(args) -> int`` (the exit status: 0 ok, 1 the benchmark could
not run, 2 bad arguments). With ``--json`` standard output carries only the JSON list and
the human table goes to standard error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .args import fail, positive

__all__ = ["register"]

T = TypeVar("T")


def _stream_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,4,8, got {text!r}") from None
    if not counts or min(counts) < 1 or max(counts) > 64:
        raise argparse.ArgumentTypeError(f"stream counts must be between 1 and 64, got {text!r}")
    return counts


def _from_options(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """A benchmark's settings (the dataclass ``cls``) from the command's options of the same
    names, and ``given`` for the fields whose option is named or measured differently."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    same = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and f.name not in given and hasattr(args, f.name)}
    return cls(**same, **given)


def _progress(message: str) -> None:
    """A bench's progress line, on standard error."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _size(text: str) -> tuple[int, int]:
    """``WxH`` of a generated clip: even numbers from 64x64 to 3840x2160 (H.264's 4:2:0)."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not WxH (e.g. 1280x720)") from None
    if not (64 <= w <= 3840 and 64 <= h <= 2160 and w % 2 == 0 and h % 2 == 0):
        raise argparse.ArgumentTypeError("WxH: even numbers, 64x64 to 3840x2160")
    return w, h


def _bench_parser(bench_sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str, description: str) -> argparse.ArgumentParser:
    """The sub-parser of ``bench NAME``, run by ``func``; its options follow, then :func:`_output_options`."""
    p: argparse.ArgumentParser = bench_sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    return p


def _media_option(p: argparse.ArgumentParser, default: str = "../shared/media, else generated") -> None:
    """``--media DIR``: the folder of H.264 clips a bench plays (``default`` says what it uses without it)."""
    p.add_argument("--media", type=Path, default=None, metavar="DIR", help=f"folder of H.264 clips (default {default})")


def _detector_options(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--threads``, ``--max-batch``: the detector, as its ``detector`` settings take it."""
    p.add_argument("--model", default="ssd_mobilenet_v2_coco", help="detector model name or path (default: the embedded SSD)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    p.add_argument("--max-batch", type=int, default=8, help="largest detector batch (default 8)")


def _output_options(p: argparse.ArgumentParser, what: str = "the result as JSON") -> None:
    """``--json`` and ``--out FILE``, as :func:`_report` reads them."""
    p.add_argument("--json", action="store_true", help=f"print {what} on standard output")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the JSON to FILE")


def _json(result: object) -> str:
    """A bench's result (a dataclass or JSON-ready data) as indented JSON."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return json.dumps(dataclasses.asdict(result), indent=2)
    return json.dumps(result, indent=2)


def _report(
    args: argparse.Namespace, result: T | None, summary: Callable[[T], str], text: Callable[[T], str] = _json,
    ok: Callable[[T], bool] = lambda _result: True,
) -> int:
    """A bench's exit status, 1 if it could not run (``result`` None) or ``ok`` says it missed
    what it must show, else 0; and its result: the ``summary`` on standard output, or with
    ``--json`` the JSON ``text`` there and the summary on standard error; ``--out FILE`` also
    gets the JSON."""
    if result is None:
        return 1
    data = text(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(data + "\n", encoding="utf-8")
    if args.json:
        print(summary(result), file=sys.stderr)
        print(data)
    else:
        print(summary(result))
    return 0 if ok(result) else 1


#: What a bench of processes and a broker (not RTSP cameras) gives up on.
_RUN_ERRORS: tuple[type[Exception], ...] = (RuntimeError, ValueError, OSError)


def _served(run: Callable[[], T], command: str = "bench", errors: tuple[type[Exception], ...] = ()) -> T | None:
    """``run()`` of a bench (serving its cameras over RTSP, most of them); None after printing
    why it failed: the test server missing, or one of ``errors`` (default: the detector, bad
    values, the system)."""
    from gridworker.models.errors import ModelError
    from gridworker.streams.rtsp_serve import RtspServerUnavailable

    caught = errors or (ModelError, ValueError, OSError)
    try:
        return run()
    except RtspServerUnavailable as exc:
        fail("bench", f"the RTSP test server cannot run here: {exc}", 1)
    except caught as exc:
        fail(command, str(exc), 1)
    return None


def register(subparsers: Any) -> None:
    """Add ``bench`` (with ``throughput``) to an argparse sub-parsers object."""
    bench = subparsers.add_parser("bench", help="benchmarks", description="Benchmarks of the analysis pipeline.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="COMMAND")
    bench_sub.required = True
    for add in (
        _register_throughput, _register_patrol, _register_reliability, _register_stats, _register_rules,
        _register_iot,  # IoT alarms (issue 14)
        _register_decode,
        _register_cluster,  # cluster mode (issue 12): cluster/bench.py
        _register_latency, _register_soak, _register_capacity,
    ):
        add(bench_sub)


# --- bench throughput (live fps on N real RTSP streams; bench/throughput.py) -----------------


def _register_throughput(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "throughput", _throughput,
        help="live frames per second on N real RTSP streams, against a ceiling and baselines",
        description=(
            "For each stream count N: start N RTSP cameras (gst-rtsp-server looping clips in real time) "
            "and measure the sum-of-parts ceiling, gridworker's pipeline, a naive OpenCV baseline and, "
            "where installed, Ultralytics' predict loop. Only live frames (age <= 1 s) count. "
            "See docs/benchmarks.md."
        ),
    )
    p.add_argument(
        "--streams", type=_stream_counts, default=[1, 4, 8, 16], metavar="N[,N...]", help="stream counts (default 1,4,8,16)"
    )
    p.add_argument("--seconds", type=positive, default=20.0, help="measurement window per pipeline, s (default 20)")
    _media_option(p, "../shared/media if present")
    p.add_argument("--synthetic", action="store_true", help="use generated 25 fps clips (--synthetic-size) even if media exists")
    p.add_argument(
        "--synthetic-size", type=_size, default=(640, 360), metavar="WxH",
        help="size of the generated clips (default 640x360; 1280x720 for the Ultralytics comparison at --yolo-imgsz 640)",
    )
    p.add_argument(
        "--fps", type=positive, default=None,
        help="gridworker's analysis rate per camera (default: each clip's native rate); the baselines read every frame",
    )
    _detector_options(p)
    p.add_argument(
        "--calibrate-seconds", type=positive, default=1.0, help="budget of each isolated part timing, s (default 1)"
    )
    p.add_argument(
        "--warmup-timeout", type=positive, default=30.0,
        help="longest wait for every stream's first live frame, s (default 30)",
    )
    p.add_argument(
        "--batch-deadline-ms", type=float, default=None,
        help="gridworker's pipeline.batch_deadline_ms for this run (default: the product's default)",
    )
    p.add_argument("--no-ultralytics", action="store_true", help="skip the Ultralytics comparison")
    p.add_argument(
        "--ultralytics-seconds", type=positive, default=8.0, help="window of each pipeline in that comparison, s (default 8)"
    )
    p.add_argument("--yolo-onnx", type=Path, default=None, help="existing YOLO ONNX export for that comparison")
    p.add_argument("--yolo-imgsz", type=int, default=320, help="YOLO input size (default 320)")
    _output_options(p, "the results as a JSON list")


def _no_media(args: argparse.Namespace) -> bool:
    """``--media`` names something that is not a folder (said on standard error)."""
    if args.media is None or args.media.is_dir():
        return False
    fail("bench", f"--media {args.media}: not a directory")
    return True


def _throughput(args: argparse.Namespace) -> int:
    from .throughput import ThroughputConfig, format_table, live_definition, run_throughput, target_verdict, to_json

    if _no_media(args):
        return 2
    config = _from_options(
        ThroughputConfig, args, calibrate_s=args.calibrate_seconds, ultralytics=not args.no_ultralytics,
        warmup_timeout_s=args.warmup_timeout,
    )  # fmt: skip

    def table(rows: list[dict[str, Any]]) -> str:
        text = "\n".join(filter(None, [format_table(rows), live_definition(), target_verdict(rows)]))
        for row in rows:
            for note in row.get("notes", []):
                text += f"\n  N={row['streams']}: {note}"
        return text

    return _report(args, _served(lambda: run_throughput(config, progress=_progress)), table, to_json)


# --- bench decode (the decoder's cheap options: speed and what the model sees; bench/decode.py) ---


def _register_decode(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "decode", _decode,
        help="decoding cost of keyframes_only and skip_loop_filter against full decoding, and the detections each gives",
        description="Per clip, side by side: CPU per second of video for full, keyframe-only and no-deblocking decoding.",
    )
    _media_option(p, "../shared/media")
    p.add_argument("--no-detector", action="store_true", help="time the decoding only")
    _output_options(p)


def _decode(args: argparse.Namespace) -> int:
    from gridworker.models import DetectorConfig, load_detector

    from .decode import decode_bench, format_decode
    from .throughput import VIDEO_SUFFIXES, default_media_dir

    media = args.media or default_media_dir()
    if media is None or not Path(media).is_dir():
        return fail("bench decode", "no clips (pass --media DIR)")
    clips = sorted(p for p in Path(media).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    detector = None if args.no_detector else load_detector(DetectorConfig())
    return _report(args, decode_bench(clips, detector, progress=_progress), format_decode)


# --- bench soak (memory, threads and descriptors over time; bench/soak.py) -------------------


def _register_soak(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "soak", _soak,
        help="RSS slope, threads and file descriptors of a running service on N real RTSP cameras over time",
        description="Run the service on --streams real RTSP cameras for --minutes; sample memory, threads and descriptors.",
    )
    p.add_argument("--minutes", type=positive, default=30.0, help="how long (default 30)")
    p.add_argument("--streams", type=int, default=16, help="cameras (default 16)")
    _media_option(p)
    _output_options(p)


def _soak(args: argparse.Namespace) -> int:
    from .soak import format_soak, run_soak

    if not 1 <= args.streams <= 64:
        return fail("bench soak", "--streams must be between 1 and 64")
    warmup = min(60.0, args.minutes * 60.0 / 4)
    result = _served(lambda: run_soak(args.minutes, args.streams, media=args.media, warmup_s=warmup, progress=_progress))
    return _report(args, result, format_soak)


# --- bench capacity (how many cameras keep up; bench/capacity.py) ------------------------------


def _register_capacity(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "capacity", _capacity,
        help="the most real RTSP cameras analysed at >= 2 fps each with frame age p95 < 1 s (searched), vs naive and Ultralytics",
        description="Search the largest N of real RTSP cameras every one of which keeps up, for gridworker, the naive loop and "
        "Ultralytics' streaming predictor, in one run.",
    )
    p.add_argument("--model", default="ssd_mobilenet_v2_coco", help="embedded model name or ONNX path (default: the embedded SSD)")
    _media_option(p)
    p.add_argument("--fps", type=positive, default=2.5, help="each camera's sampling rate (default 2.5)")
    p.add_argument("--min-fps", type=positive, default=2.0, help="analysed fps every camera must get (default 2)")
    p.add_argument("--max-age-ms", type=positive, default=1000.0, help="frame age p95 limit (default 1000)")
    p.add_argument("--seconds", type=positive, default=15.0, help="window of each trial, s (default 15)")
    p.add_argument("--start", type=int, default=4, help="first N tried (default 4)")
    p.add_argument("--max-cameras", type=int, default=64, help="largest N tried (default 64)")
    p.add_argument("--no-motion", action="store_true", help="infer every sampled frame (motion gating off)")
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop's search")
    p.add_argument("--no-ultralytics", action="store_true", help="skip the Ultralytics search")
    p.add_argument("--yolo-imgsz", type=int, default=640, help="YOLO input size of the Ultralytics comparison (default 640)")
    _output_options(p)


def _capacity(args: argparse.Namespace) -> int:
    from .capacity import CapacityConfig, format_capacity, run_capacity

    if not 1 <= args.start <= args.max_cameras <= 256:
        return fail("bench capacity", "need 1 <= --start <= --max-cameras <= 256")
    config = _from_options(
        CapacityConfig, args, sample_fps=args.fps, motion=not args.no_motion, naive=not args.no_naive,
        ultralytics=not args.no_ultralytics,
    )  # fmt: skip
    return _report(args, _served(lambda: run_capacity(config, progress=_progress)), format_capacity)


# --- bench latency (frame -> incident -> webhook on a real stream; bench/latency.py) ---------


def _register_latency(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "latency", _latency,
        help="frame-to-incident and incident-to-webhook p95 on a real RTSP stream with a real webhook receiver",
        description="People appear and leave on a real RTSP stream every few seconds; each appearance is a case.",
    )
    p.add_argument("--seconds", type=positive, default=40.0, help="measurement window, s (default 40)")
    _output_options(p)


def _latency(args: argparse.Namespace) -> int:
    from .latency import format_latency, run_latency

    return _report(args, _served(lambda: run_latency(args.seconds, progress=_progress)), format_latency)


# --- bench rules (rule quality against ground truth; bench/rules.py) -------------------------


def _register_rules(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "rules", _rules,
        help="rule quality on real clips: precision, recall, duplicates and delay per rule type against ground truth",
        description=(
            "Replay every clip named by a truth file with its scene (detector, tracker, zones, rules, incident "
            "manager) and match the incidents to the truth events. See docs/rules-field.md for the truth format."
        ),
    )
    p.add_argument("--clips", type=Path, default=None, metavar="DIR", help="folder of the clips (default ../shared/media)")
    p.add_argument("--truth", type=Path, default=None, metavar="DIR", help="folder of truth files (default bench/truth)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this truth file (stem; repeatable)")
    p.add_argument(
        "--low-light", choices=["auto", "always"], default=None,
        help="also brighten frames before the detector, on top of each camera's own low_light setting (to measure it)",
    )
    p.add_argument("--low-light-method", choices=["clahe", "gamma"], default="clahe", help="correction for --low-light (default clahe)")
    _output_options(p)


def _rules(args: argparse.Namespace) -> int:
    import functools

    from gridworker.models.errors import ModelError

    from .rules import DEFAULT_CLIPS, DEFAULT_TRUTH, TruthError, format_table, run_rules_bench

    clips = args.clips if args.clips is not None else DEFAULT_CLIPS
    truth = args.truth if args.truth is not None else DEFAULT_TRUTH
    for name, folder in (("--clips", clips), ("--truth", truth)):
        if not folder.is_dir():
            return fail("bench rules", f"{name} {folder}: not a directory")
    preprocess = None
    if args.low_light is not None:
        from gridworker.vision.lowlight import LowLightConfig, correct

        low_light = LowLightConfig(mode=args.low_light, method=args.low_light_method)
        preprocess = functools.partial(correct, config=low_light)
    try:
        result = run_rules_bench(clips, truth, only=args.only, preprocess=preprocess, progress=_progress)
    except TruthError as exc:
        return fail("bench rules", str(exc))
    except (ModelError, ValueError, OSError) as exc:
        return fail("bench rules", str(exc), 1)
    return _report(args, result, format_table)


# --- bench iot (IoT alarms through mosquitto into the service, issue 14; bench/iot.py) ------


def _register_iot(bench_sub: Any) -> None:
    from gridworker.iot.cli import add_traffic_options, broker_address

    p = _bench_parser(
        bench_sub, "iot", _iot,
        help="N simulated devices through mosquitto into the service: lost messages, alarm to work order and webhook p95",
        description="Simulated devices (heartbeats, readings, alarm bursts, malformed) publish with QoS 1 to a real broker; "
        "a real service ingests them and forwards every case to a webhook receiver. See docs/iot.md.",
    )
    add_traffic_options(p, devices=1000, seconds=30.0, burst_every=2.0, burst_devices=5, number=positive)
    p.add_argument(
        "--broker", type=broker_address, default=("127.0.0.1", 1883), metavar="HOST:PORT", help="MQTT broker (default 127.0.0.1:1883)"
    )
    _output_options(p)


def _iot(args: argparse.Namespace) -> int:
    from gridworker.iot.cli import traffic_fields

    from .iot import IotBenchConfig, format_summary, run_iot_bench

    if args.devices < 1 or args.burst_devices < 0:
        return fail("bench iot", "--devices >= 1, --burst-devices >= 0")
    traffic = dataclasses.replace(IotBenchConfig().traffic, host=args.broker[0], port=args.broker[1], **traffic_fields(args))
    result = _served(lambda: run_iot_bench(IotBenchConfig(traffic=traffic), progress=_progress), "bench iot", _RUN_ERRORS)
    return _report(args, result, format_summary, ok=lambda r: r["lost"] == 0)


# --- bench patrol (glance-patrol visits per minute, issue 18; bench/patrol.py) ---------------


def _register_patrol(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "patrol", _patrol,
        help="glance-patrol visits per minute over N real RTSP cameras, against a naive sequential patrol",
        description=(
            "Serve N distinct RTSP cameras (gst-rtsp-server mounts, phase-shifted clips) to a real Service with a few "
            "continuous cameras, run glance patrol cycles through the service's own path (fixed and/or adaptive "
            "concurrency, optionally with dead and hung cameras), then a naive sequential OpenCV patrol on a few of "
            "the same cameras. See docs/benchmarks.md."
        ),
    )
    p.add_argument("--cameras", type=int, default=200, help="camera URLs to visit once each (default 200)")
    p.add_argument("--concurrency", type=int, default=64, help="visits in flight at once; the adaptive cap (default 64)")
    # --- issue 18: the service's own path, adaptive concurrency, faults (bench/patrol.py)
    p.add_argument(
        "--mode", choices=("fixed", "adaptive", "drained", "both", "all"), default="both",
        help="plans run side by side: both = fixed, adaptive; all = drained (cycles not overlapped), fixed, adaptive (default both)",
    )
    p.add_argument("--min-concurrency", type=int, default=8, help="the adaptive controller's floor (default 8)")
    p.add_argument("--cycles", type=int, default=2, help="cycles per plan (default 2)")
    p.add_argument("--continuous", type=int, default=2, help="continuously watched cameras beside the patrol (default 2)")
    p.add_argument("--continuous-fps", type=float, default=5.0, help="their analysis rate (default 5)")
    p.add_argument("--measure-s", type=float, default=8.0, help="seconds the continuous cameras are measured alone (default 8)")
    p.add_argument("--dead", type=float, default=0.0, help="share of cameras dead (refused) in an extra faults run (default 0)")
    p.add_argument("--hung", type=float, default=0.0, help="share of cameras hung (accept, never send) in that run (default 0)")
    p.add_argument("--open-timeout", type=float, default=10.0, help="visit open timeout, s (default 10)")
    p.add_argument("--keyframe-timeout", type=float, default=12.0, help="visit keyframe timeout, s (default 12)")
    _media_option(p, "../shared/media")
    p.add_argument("--synthetic", action="store_true", help="use generated clips even if media exists")
    p.add_argument("--servers", type=int, default=0, help="RTSP server processes (default: 1 per 100 cameras, 1-4)")
    p.add_argument("--phases", type=int, default=8, help="phase-shifted copies per clip (default 8)")
    p.add_argument("--keyframes", type=int, default=1, help="keyframes per glance (default 1)")
    p.add_argument("--naive-cameras", type=int, default=12, help="cameras the naive patrol visits (default 12; 0 skips)")
    _detector_options(p)
    p.add_argument("--stagger-ms", type=float, default=10.0, help="least gap between visit starts, ms (default 10)")
    p.add_argument(
        "--patrol-batch-slots", type=int, default=None,
        help="most patrol frames per inference batch while a continuous camera is live (default: the product's, half the batch)",
    )
    _output_options(p)


def _patrol(args: argparse.Namespace) -> int:
    from .patrol import PatrolBenchConfig, format_summary, run_patrol_bench, to_json

    if _no_media(args):
        return 2
    if args.cameras < 1 or args.concurrency < 1 or not 0 <= args.servers <= 16 or args.phases < 1 or args.keyframes < 1:
        return fail("bench patrol", "--cameras, --concurrency, --phases, --keyframes must be >= 1; --servers 0-16")
    if (
        args.cycles < 1 or args.continuous < 0 or not 1 <= args.min_concurrency <= 512 or args.concurrency > 512
        or not 0 <= args.dead < 1 or not 0 <= args.hung < 1 or args.dead + args.hung >= 1
        or args.open_timeout <= 0 or args.keyframe_timeout <= 0 or args.measure_s <= 0 or args.continuous_fps <= 0
        or (args.patrol_batch_slots is not None and not 1 <= args.patrol_batch_slots <= args.max_batch)
    ):
        return fail(
            "bench patrol",
            "--cycles >= 1, --continuous >= 0, --concurrency and --min-concurrency 1-512, "
            "0 <= --dead, --hung and their sum < 1, positive timeouts, --measure-s and --continuous-fps, "
            "--patrol-batch-slots 1..--max-batch",
        )
    config = _from_options(
        PatrolBenchConfig, args, stagger_s=args.stagger_ms / 1000.0, dead_share=args.dead, hung_share=args.hung,
        open_timeout_s=args.open_timeout, keyframe_timeout_s=args.keyframe_timeout,
    )  # fmt: skip
    return _report(args, _served(lambda: run_patrol_bench(config, progress=_progress)), format_summary, to_json)


# --- bench cluster (K workers through NATS JetStream, issue 12; cluster/bench.py) -------------


def _register_cluster(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "cluster", _cluster,
        help="K worker processes sharing N patrol cameras through NATS JetStream, against one process; kill -9 of a worker",
        description=(
            "On this machine: real RTSP servers, a nats-server of its own, a case service on PostgreSQL and K "
            "`gridworker worker` processes; prints visits_per_min against single_process_visits_per_min (over_single), "
            "share_min/share_max, failover_s, lost_visits, duplicate_incidents and continuous_reassigned_s (docs/cluster.md)."
        ),
    )
    p.add_argument("--workers", type=int, default=3, help="worker processes K (default 3)")
    p.add_argument("--cameras", type=int, default=120, help="patrol-only cameras N (default 120)")
    p.add_argument("--continuous", type=int, default=3, help="continuously watched cameras placed on the workers (default 3)")
    p.add_argument("--cycles", type=int, default=3, help="cycles per run (default 3)")
    p.add_argument("--slots", type=int, default=16, help="visits in flight per worker (default 16)")
    p.add_argument("--single-concurrency", type=int, default=48, help="the single-process run's concurrency (default 48)")
    _media_option(p)
    p.add_argument("--database", default=None, help="a scratch PostgreSQL URL (its schema is emptied); default gw_bench_cluster on 127.0.0.1")
    p.add_argument("--no-single", action="store_true", help="skip the single-process run")
    p.add_argument("--no-kill", action="store_true", help="skip the failover run")
    _output_options(p)


#: What ``bench cluster`` prints without ``--json``, one ``key: value`` a line.
_CLUSTER_KEYS = (
    "workers", "cameras", "visits_per_min", "single_process_visits_per_min", "over_single", "share_min", "share_max",
    "failover_s", "lost_visits", "duplicate_incidents", "continuous_reassigned_s",
)


def _cluster(args: argparse.Namespace) -> int:
    from gridworker.cluster.bench import DEFAULT_PG, ClusterBenchConfig, run_cluster_bench

    if not 1 <= args.workers <= 16 or not 1 <= args.cameras <= 5000 or args.cycles < 1 or not 1 <= args.slots <= 128 or args.continuous < 0:
        return fail("bench cluster", "--workers 1-16, --cameras 1-5000, --cycles >= 1, --slots 1-128, --continuous >= 0")
    config = _from_options(
        ClusterBenchConfig, args, database=args.database or DEFAULT_PG, single=not args.no_single, kill=not args.no_kill
    )
    result = _served(lambda: run_cluster_bench(config, progress=_progress))
    return _report(args, result, lambda r: "\n".join(f"{key}: {r.get(key)}" for key in _CLUSTER_KEYS))


# --- bench stats and bench reliability (the case service's own figures; bench/stats.py, bench/reliability.py)


def _register_stats(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "stats", _stats,
        help="the numbers (GET /stats/cases) over many cases in SQLite",
        description="Fill a scratch SQLite database with N work orders over a year and time the figures of 30 days and of the year, alternately.",
    )
    p.add_argument("--cases", type=int, default=100_000, help="work orders (default 100000)")
    p.add_argument("--repetitions", type=int, default=3, help="timings per period (default 3; the median is kept)")
    _output_options(p)


def _stats(args: argparse.Namespace) -> int:
    from .stats import StatsBenchConfig, format_summary, run_stats_bench

    if not 1 <= args.cases <= 5_000_000 or not 1 <= args.repetitions <= 20:
        return fail("bench stats", "--cases 1-5000000, --repetitions 1-20")
    return _report(args, run_stats_bench(_from_options(StatsBenchConfig, args)), format_summary)


def _register_reliability(bench_sub: Any) -> None:
    p = _bench_parser(
        bench_sub, "reliability", _reliability,
        help="forwarding under faults: webhook receiver down for N incidents, kill -9 of the service mid-burst",
        description=(
            "Run the two fault scenarios of docs/forwarding.md against real processes (a webhook receiver that "
            "de-duplicates by Idempotency-Key, a service process killed with SIGKILL) and print produced, "
            "delivered, duplicates, lost and lost_after_kill."
        ),
    )
    p.add_argument("--incidents", type=int, default=500, help="incidents produced while the receiver is down (default 500)")
    p.add_argument("--burst", type=int, default=300, help="incidents posted to the service around the kill (default 300)")
    p.add_argument("--kill-at", type=float, default=0.4, help="kill after this share of the burst is acknowledged (default 0.4)")
    p.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients in the burst (default 8)")
    p.add_argument("--database", default=None, help="a scratch database URL (its gridworker tables are dropped); default: SQLite files")
    p.add_argument("--workdir", type=Path, default=None, help="where databases and logs go (default: a new temporary folder)")
    _output_options(p)


def _reliability(args: argparse.Namespace) -> int:
    from .reliability import ReliabilityConfig, format_summary, run_reliability

    if args.incidents < 1 or args.burst < 2 or args.clients < 1 or not 0 < args.kill_at < 1:
        return fail("bench reliability", "--incidents >= 1, --burst >= 2, --clients >= 1, 0 < --kill-at < 1")
    config = _from_options(ReliabilityConfig, args)
    result = _served(lambda: run_reliability(config, progress=_progress), errors=_RUN_ERRORS)
    return _report(args, result, format_summary, ok=lambda r: r["lost"] == 0 and r["lost_after_kill"] == 0)
