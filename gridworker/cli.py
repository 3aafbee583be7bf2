"""The ``gridworker`` console command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gridworker.models.config import DetectorConfig, session_threads, usable_cores

from .rule_classes import rule_class_warnings
from .settings import CameraConfig, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from gridworker.models.base import Detector

    from .service import Service

log = logging.getLogger("gridworker")


def _sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` is an SQLite database whose file does not exist (yet)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and not name.startswith("file:") and not Path(name).exists()


def _holds_a_key(url: str, auth_enabled: bool | None) -> bool:
    """Whether the database at ``url`` holds an unrevoked API key that the API would require.
    It only reads: a database that does not exist yet, or has no keys table, holds none, and
    its schema is neither created nor upgraded (`check` must not migrate a live database).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    import sqlalchemy as sa

    from gridworker.incidents.db import Database
    from gridworker.keystore import ApiKeyRow, KeyStore

    if _sqlite_file_missing(url):
        return False
    db = Database(url)
    try:
        if not sa.inspect(db.engine).has_table(ApiKeyRow.__tablename__):
            return False
        keys = KeyStore(db, auth_enabled=auth_enabled)
        return keys.auth_required() and keys.any_key()
    finally:
        db.close()


def exposure_refusal(settings: Settings, config: str | None = None) -> str | None:
    """Why ``settings`` must not be served as they are, or None.

    A non-loopback ``server.host`` is refused until an API key exists (or ``auth.open`` is
    set): without keys every caller is an admin, so the API answers loopback clients only
    and binding anything wider would only hide that behind 403s (docs/security.md). The
    database is only read for this (see :func:`_holds_a_key`); one that cannot be read is a
    refusal too, said in one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from gridworker.api.security import is_loopback_bind
    from gridworker.streams.redact import redact_text, url_secrets

    host = settings.server.host
    if is_loopback_bind(host) or settings.auth.open:
        return None
    if settings.auth.enabled is not False:
        try:
            if _holds_a_key(settings.database.url, settings.auth.enabled):
                return None
        except SQLAlchemyError as exc:
            lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            reason = lines[0][:300] if lines else ""
            return (
                f"refusing to listen on {host}: cannot read the database to see whether an API key exists"
                f" ({type(exc).__name__}: {redact_text(reason, url_secrets(settings.database.url))})"
            )
    if settings.auth.enabled is False:
        return (
            f"refusing to listen on {host}: API keys are switched off (auth.enabled: false), so anyone who can reach"
            " the port would be an admin.\n  Remove auth.enabled: false and create a key, or bind 127.0.0.1"
            " (or, on a closed lab network only, set `auth: {open: true}` in the config)"
        )
    return (
        f"refusing to listen on {host}: no API key exists yet, so anyone who can reach the port would be an admin.\n"
        f"  Create a key first:  gridworker keys create {_db_option(settings, config)} --role admin --name <who>\n"
        "  (or bind 127.0.0.1; or, on a closed lab network only, set `auth: {open: true}` in the config)"
    )


def _db_option(settings: Settings, config: str | None) -> str:
    """How to point ``gridworker keys`` at this service's database (never showing a password)."""
    if config:
        return f"--config {config}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.database.url)
    except ArgumentError:
        return "--config <config.yaml>"
    return "--config <config.yaml>" if url.password else f"--database {settings.database.url}"


@dataclass
class LoadedModels:
    """What :func:`load_models` built: the default model (None when it failed), the others by id
    (those that loaded), and one line per model or camera that cannot run."""

    default: Detector | None
    named: dict[str, Detector] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def models_or_say(settings: Settings) -> tuple[Detector, dict[str, Detector]] | None:
    """:func:`load_models` for a process about to run them (`gridworker run`, a cluster worker or
    serve): the default model and the others by id; None after saying on stderr, one line
    each, what cannot run."""
    loaded = load_models(settings)
    if loaded.problems or loaded.default is None:
        for problem in loaded.problems:
            print(f"gridworker: {problem}", file=sys.stderr)
        return None
    return loaded.default, loaded.named


def _model_where(settings: Settings) -> dict[str, str]:
    """Each model id's place in the config, as a refusal names it: ``detector`` or ``detectors[i] ('id')``."""
    from gridworker.models.config import DEFAULT_DETECTOR

    return {DEFAULT_DETECTOR: "detector", **{d.id: f"detectors[{i}] ({d.id!r})" for i, d in enumerate(settings.detectors)}}


def _imgsz_problem(camera_id: str, imgsz: int, model_id: str, problem: str) -> str:
    """The line refusing a camera's ``imgsz`` on one of its models."""
    which = "" if f"model {model_id!r}" in problem else f" on model {model_id!r}"
    return f"camera {camera_id!r}: imgsz {imgsz}{which}: {problem}"


def load_models(settings: Settings) -> LoadedModels:
    """Load every model the settings name (``detector:``, each of ``detectors:``), warmed up at the
    shapes live frames take, and each config camera's ``imgsz`` on each of its models, as the
    service will at start: what `gridworker run` does before it binds the port, and
    `gridworker check --load-models`. A model that fails is skipped (its cameras' sizes are not
    tried) and said in one line naming the detector or camera; nothing raises for a bad model.
    """
    from gridworker.models.config import DEFAULT_DETECTOR
    from gridworker.models.errors import ModelError
    from gridworker.models.loader import load_detector
    from gridworker.models.multi import resized

    loaded = LoadedModels(default=None)
    workers = settings.pipeline.inference_worker_count()  # the cores are shared out among them
    where = _model_where(settings)
    try:
        loaded.default = load_detector(settings.detector, workers=workers)
    except ModelError as exc:
        loaded.problems.append(f"{where[DEFAULT_DETECTOR]}.model: {exc}")
    for det in settings.detectors:
        try:
            loaded.named[det.id] = load_detector(det, workers=workers)
        except ModelError as exc:
            loaded.problems.append(f"{where[det.id]}.model: {exc}")
    models = {**({DEFAULT_DETECTOR: loaded.default} if loaded.default is not None else {}), **loaded.named}
    tried: dict[tuple[str, int], str | None] = {}  # (model, size) -> its problem: each size runs once
    for cam in settings.cameras:
        if cam.imgsz is None:
            continue
        for model_id in cam.detectors:
            detector = models.get(model_id)
            if detector is None:  # it failed to load (said above)
                continue
            key = (model_id, cam.imgsz)
            if key not in tried:
                try:
                    resized(detector, cam.imgsz, model_id)
                    tried[key] = None
                except ModelError as exc:
                    tried[key] = str(exc)
            problem = tried[key]
            if problem is not None:
                loaded.problems.append(_imgsz_problem(cam.id, cam.imgsz, model_id, problem))
    return loaded


def _serve(
    settings: Settings,
    *,
    log_level: str = "info",
    config: str | None = None,
    on_service: Callable[[Service], None] | None = None,
    access_log: bool = True,
) -> int:
    """Serve the API until Ctrl-C; ``on_service`` sees the service once built (before it starts)."""
    import uvicorn

    from gridworker.api import create_app

    from .service import Service

    refusal = exposure_refusal(settings, config)  # before the model loads or a port opens
    if refusal is not None:
        print(f"gridworker: {refusal}", file=sys.stderr)
        return 2
    # every model, and every config camera's imgsz on its models, runs once before the port is bound:
    # a bad one stops the start here in one line, not as a traceback in the lifespan or on live frames
    ready = models_or_say(settings)
    if ready is None:
        return 2
    detector, models = ready

    def build() -> Service:
        service = Service(settings, detector, models=models)
        if on_service is not None:
            on_service(service)
        return service

    from gridworker.api.access_log import log_config
    from gridworker.api.http_protocol import head_deadline_protocol

    app = create_app(build)
    # open event streams (consoles) must not hold a shutdown for long; a request head must come in time
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
        access_log=access_log,
        log_config=log_config(),  # its own handlers: scrubbed too (secret parameters, receipt codes)
        http=head_deadline_protocol(settings.server.request_head_timeout_s),
    )
    return 0


def _load(path: str) -> Settings | None:
    """The settings, or None after printing why the file cannot be used."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"gridworker: {exc}", file=sys.stderr)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    return _serve(settings, log_level=args.log_level, config=args.config)


def serve_problems(settings: Settings, config: str | None = None) -> list[str]:
    """What ``gridworker run`` would refuse in valid settings: a model that cannot be found
    (``detector:``, each of ``detectors:``; found, not loaded: :func:`load_models` loads them,
    `check --load-models`), an exposed port without a key."""
    from gridworker.models.errors import ModelError
    from gridworker.models.loader import resolve_model
    from gridworker.models.openvino_session import openvino_available

    problems = []
    for where, det in [("detector", settings.detector), *((f"detectors[{i}] ({d.id!r})", d) for i, d in enumerate(settings.detectors))]:
        try:
            resolve_model(det.model)
        except ModelError as exc:
            problems.append(f"{where}.model: {exc}")
        if det.runtime == "openvino" and (missing := openvino_available()) is not None:
            problems.append(f"{where}.runtime: {missing}")
    refusal = exposure_refusal(settings, config)
    if refusal is not None:
        problems.append(f"server.host: {refusal}")
    return problems


#: Top-level sections ``serve_problems`` reads: checked on their own when others are invalid.
SERVE_SECTIONS = ("server", "database", "auth", "detector", "detectors")


def serve_problems_of_sections(path: str) -> list[str]:
    """``serve_problems`` of the file's server, database, auth and detector sections alone (with
    the environment's overrides), for a file whose other sections are invalid: so that `check`
    lists a missing model or an exposed port in the same pass as the field errors. Empty when
    those sections are themselves invalid (their errors are already listed)."""
    from pathlib import Path

    from .validation import read_yaml

    try:
        raw = read_yaml(Path(path), "config file", ConfigError)
    except ConfigError:
        return []
    if not isinstance(raw, dict):
        return []
    try:
        partial = load_settings(None, **{k: raw[k] for k in SERVE_SECTIONS if k in raw})
    except ConfigError:
        return []
    return serve_problems(partial, path)


def _print_refusals(config: str, problems: list[str], also: bool = False) -> None:
    more = "and " if also else ""
    print(f"gridworker: {config}: {more}{len(problems)} problem(s) that `gridworker run` would refuse", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        refused = serve_problems_of_sections(args.config)
        if refused:
            _print_refusals(args.config, refused, also=True)
        return 2
    problems = serve_problems(settings, args.config)
    loaded: LoadedModels | None = None
    if args.load_models:  # as `run` loads them: each model run once, each camera's imgsz too (a missing model said once)
        loaded = load_models(settings)
        problems = [p for p in problems if not p.startswith(("detector.", "detectors["))] + loaded.problems
    costs: dict[CostKey, RunCost] = {}
    if not problems:  # the live cameras' models other than the embedded SSD are timed: loaded now unless loaded above
        costs, problems = measure_run_costs(settings, loaded)
    if problems:
        _print_refusals(args.config, problems)
        return 2
    print(f"{args.config}: OK, {len(settings.cameras)} camera(s), {len(settings.patrol_plans)} patrol plan(s)")
    cores = usable_cores()
    workers = settings.pipeline.inference_worker_count(cores)
    threads = session_threads(settings.detector.threads, workers, cores)
    runtimes = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
    print(f"  inference: {workers} worker(s), {threads} {runtimes[settings.detector.runtime]} thread(s) each ({cores} usable core(s))")
    for named in settings.detectors:  # each named model's session has its own threads and runtime settings
        print(f"    detectors[{named.id}]: {session_threads(named.threads, workers, cores)} {runtimes[named.runtime]} thread(s) each")
    if loaded is not None:
        sizes = sorted({c.imgsz for c in settings.cameras if c.imgsz is not None})
        print(f"  models: {1 + len(loaded.named)} loaded and run" + (f", and at the cameras' imgsz {sizes}" if sizes else ""))
    for cam in settings.cameras:
        rules = sum(len(z.rules) for z in cam.zones)
        watch = f"@ {cam.fps} fps" if cam.watch == "continuous" else f"patrol only ({cam.patrol.site_type}, priority {cam.patrol.priority})"
        print(f"  {cam.id}: {cam.public_url()} {watch}, {len(cam.zones)} zone(s), {rules} rule(s)")
    for line in detector_load_lines(settings, costs=costs):
        print(line)
    for warning in rule_class_warnings(settings):  # classes the camera's models never output: the rule never fires on them
        print(f"  WARNING: {warning}")
    if settings.patrol_plans:
        from gridworker.patrol.config import PatrolTarget
        from gridworker.patrol.selection import select_cameras

        targets = [PatrolTarget(c.id, c.url, c.patrol) for c in settings.cameras]
        for plan in settings.patrol_plans:
            n = len(select_cameras(targets, plan.select))
            print(f"  plan {plan.id}: {n} camera(s), {plan.mode}, concurrency {plan.concurrency}, cycles {plan.cycles or 'forever'}")
    return 0


# -- issue 16: what the models cost -------------------------------------------------------
#: What ``check`` counts for one run of the embedded SSD (on ONNX Runtime) on one image, in
#: core-milliseconds, without loading it: the CPU time of one warm ``detect`` call on one ONNX
#: Runtime thread (as each of the service's two inference workers runs it), measured 18.3 ms on
#: the 2-core Intel Xeon (docs/models.md), the way ``check`` times every other model. (Its
#: ``session.run`` *wall* time on two threads, 10.5-11.3 ms in docs/benchmarks.md "Findings" 2,
#: is not a CPU cost.) Machines differ: ``gridworker bench`` measures a site's own.
EMBEDDED_RUN_MS = 18.0
#: ``check`` warns when the models need more than this fraction of the usable cores: the rest of
#: each frame's work (decoding the stream, RGB conversion, tracker, rules) needs the remainder.
LOAD_WARN_FRACTION = 0.8
#: Warm runs ``check`` times of each other model (the median counts); it stops early once they
#: took ``TIMED_BUDGET_S`` of CPU (a heavy model on a slow machine).
TIMED_RUNS = 3
TIMED_BUDGET_S = 3.0

#: A model id and the input size it runs at (a camera's ``imgsz``; None: the model's own).
CostKey = tuple[str, int | None]


@dataclass(frozen=True)
class RunCost:
    """One model run on one image: core-milliseconds (CPU time), and where the figure comes from."""

    ms: float
    source: str


EMBEDDED_COST = RunCost(EMBEDDED_RUN_MS, "the embedded SSD's CPU time per run on one thread, measured on a 2-core Xeon, docs/models.md; not timed here")


def _embedded_reference(config: DetectorConfig) -> bool:
    """Whether ``config`` runs the model ``EMBEDDED_RUN_MS`` was measured on (an embedded one, ONNX Runtime)."""
    from gridworker.models.loader import embedded_models

    return config.runtime == "onnxruntime" and config.model in embedded_models()


def _live_cost_keys(settings: Settings) -> list[CostKey]:
    """Each (model, input size) the continuously analysed cameras run, once, in config order."""
    keys: dict[CostKey, None] = {}
    for cam in settings.cameras:
        if cam.watch == "continuous":
            keys.update((k, None) for k in ((m, cam.imgsz) for m in cam.detectors))
    return list(keys)


def _blank_frame_size(detector: Detector) -> tuple[int, int]:
    """The model's input (height, width): a blank frame of it is timed."""
    from gridworker.models.ssd import SsdDetector
    from gridworker.models.yolo import YoloDetector

    if isinstance(detector, YoloDetector):
        return detector.input_size
    if isinstance(detector, SsdDetector) and detector.manifest.input is not None:
        return detector.manifest.input.height, detector.manifest.input.width
    return 640, 640


def time_model_run(detector: Detector, size: tuple[int, int], runs: int = TIMED_RUNS) -> list[float]:
    """CPU time in milliseconds (all the process's threads: ONNX Runtime's pool too) of each of up
    to ``runs`` calls of ``detect`` on one blank ``size`` (height, width) frame, on a model already
    warmed up (``load_detector`` ran it); fewer once they took ``TIMED_BUDGET_S``. Letterbox,
    decode and NMS count: `run` pays them too."""
    import time

    import numpy as np

    frame = np.zeros((size[0], size[1], 3), dtype=np.uint8)
    spent: list[float] = []
    for _ in range(max(1, runs)):
        start = time.process_time()
        detector.detect([frame])
        spent.append((time.process_time() - start) * 1000)
        if sum(spent) >= TIMED_BUDGET_S * 1000:
            break
    return spent


def measure_run_costs(settings: Settings, loaded: LoadedModels | None = None) -> tuple[dict[CostKey, RunCost], list[str]]:
    """The cost of one run of each model the continuously analysed cameras use, at each camera's
    ``imgsz``, for :func:`detector_load_lines`; and one line per model that cannot load or run (what
    `run` would refuse). The embedded SSD is left out (not loaded: :func:`detector_load_lines`
    counts ``EMBEDDED_RUN_MS`` for it); any other model is timed (:func:`time_model_run`) on the detector ``loaded`` holds (`check --load-models`),
    else loaded here as `run` loads it (``load_detector`` with its config and the inference workers)."""
    import statistics

    from gridworker.models.config import DEFAULT_DETECTOR
    from gridworker.models.errors import ModelError
    from gridworker.models.loader import load_detector
    from gridworker.models.multi import resized

    configs = settings.model_configs()
    where = _model_where(settings)
    workers = settings.pipeline.inference_worker_count()
    models: dict[str, Detector | None] = {}
    if loaded is not None:
        models = {DEFAULT_DETECTOR: loaded.default, **loaded.named}
    costs: dict[CostKey, RunCost] = {}
    problems: list[str] = []
    for model_id, size in _live_cost_keys(settings):
        config = configs.get(model_id)
        if config is None:  # settings refuse an undefined model
            continue
        if _embedded_reference(config):  # not loaded: detector_load_lines counts EMBEDDED_COST
            continue
        if model_id not in models:
            try:
                models[model_id] = load_detector(config, workers=workers)
            except ModelError as exc:
                models[model_id] = None
                problems.append(f"{where[model_id]}.model: {exc}")
        detector = models[model_id]
        if detector is None:  # it failed to load (said)
            continue
        try:
            sized = detector if size is None else resized(detector, size, model_id)
            frame = _blank_frame_size(sized)
            spent = time_model_run(sized, frame)
        except Exception as exc:  # ModelError (said as load_models says it), or ONNX Runtime's own exception types
            problem = str(exc) if isinstance(exc, ModelError) else f"a timed run failed ({type(exc).__name__}: {exc})"
            if size is None:
                problems.append(f"{where[model_id]}.model: {problem}")
            else:  # every camera that asks it, as load_models says them
                problems += [
                    _imgsz_problem(c.id, size, model_id, problem)
                    for c in settings.cameras
                    if c.watch == "continuous" and c.imgsz == size and model_id in c.detectors
                ]
            continue
        threads = session_threads(config.threads, workers)
        how = f"median CPU time of {len(spent)} warm run(s) on a blank {frame[1]}x{frame[0]} frame, {config.runtime}, {threads} thread(s)"
        costs[(model_id, size)] = RunCost(statistics.median(spent), f"timed here: {how}")
    return costs, problems


def detector_load_lines(settings: Settings, cores: int | None = None, costs: Mapping[CostKey, RunCost] | None = None) -> list[str]:
    """What the continuously analysed cameras ask of the CPU: per camera, the model runs per second
    (tiles multiply them; every model of the camera runs them all) times each model's cost per run
    (``costs``, from :func:`measure_run_costs`; the embedded SSD's ``EMBEDDED_RUN_MS`` when absent),
    in core-seconds per second; the total against the usable cores (``cores``, default
    :func:`usable_cores`), with a warning above ``LOAD_WARN_FRACTION`` of them. A model without a
    cost is said and left out of the sums (they are then lower bounds)."""
    live = [c for c in settings.cameras if c.watch == "continuous"]
    if not live:
        return []
    configs = settings.model_configs()
    known: dict[CostKey, RunCost] = dict(costs or {})
    keys = _live_cost_keys(settings)
    for key in keys:
        if key not in known and key[0] in configs and _embedded_reference(configs[key[0]]):
            known[key] = EMBEDDED_COST

    def label(key: CostKey) -> str:
        return key[0] if key[1] is None else f"{key[0]} at imgsz {key[1]}"

    lines = ["  detector load (runs per second of each model x its CPU time per run = core-seconds per second; tiles multiply the runs):"]
    for key in keys:
        cost = known.get(key)
        model = configs[key[0]].model if key[0] in configs else "?"
        if cost is None:
            lines.append(f"    a run of {label(key)} ({model}): not measured (left out of the sums below)")
        else:
            lines.append(f"    a run of {label(key)} ({model}): ~{cost.ms:.1f} ms ({cost.source})")
    total_runs: dict[str, float] = {}
    need = 0.0
    for cam in live:
        per_frame = cam.detect_tiles.count if cam.detect_tiles is not None else 1
        runs = cam.fps * per_frame
        tiles = cam.detect_tiles
        how = f"{tiles.rows}x{tiles.cols} tiles{' + full frame' if tiles.full_frame else ''}" if tiles is not None else "whole frame"
        how += _crop_note(cam)
        parts: list[str] = []
        cam_need = 0.0
        for model_id in cam.detectors:
            key = (model_id, cam.imgsz)
            total_runs[label(key)] = total_runs.get(label(key), 0.0) + runs
            cost = known.get(key)
            if cost is None:
                parts.append(f"{label(key)} (not measured)")
                continue
            cam_need += runs * cost.ms / 1000
            parts.append(f"{label(key)} (~{runs * cost.ms / 1000:.2f} core-s/s)")
        need += cam_need
        which = parts[0] if len(parts) == 1 else "each of " + ", ".join(parts[:-1]) + " and " + parts[-1]
        summed = f": ~{cam_need:.2f} core-s/s" if len(parts) > 1 else ""
        lines.append(f"    {cam.id}: {how}: {per_frame} run(s) per frame x {cam.fps:g} fps = {runs:g} runs/s of {which}{summed}")
    have = usable_cores() if cores is None else cores
    unmeasured = [label(k) for k in keys if k not in known]
    floor = f" (at least: {', '.join(unmeasured)} not measured)" if unmeasured else ""
    per_model = ", ".join(f"{name} {n:g}" for name, n in total_runs.items())
    lines.append(
        f"    all cameras: {sum(total_runs.values()):g} runs/s ({per_model}), ~{need:.2f} core-s/s{floor} of {have} usable core(s);"
        f" warning above {LOAD_WARN_FRACTION:.0%} of them"
    )
    if need > LOAD_WARN_FRACTION * have:
        lines.append(
            f"    WARNING: the models need ~{need:.1f} of this machine's {have} usable core(s), more than it can keep up with"
            " beside decoding, tracking and rules; cameras will be analysed below their fps (lower fps, fewer tiles or models,"
            " or more cores)"
        )
    return lines


def _crop_note(camera: CameraConfig) -> str:
    """Where the camera's zone crop (``detect_region``) puts the model, for ``check``: a crop left out
    because the rule zones' box is too big is said, not silent."""
    if not camera.detect_region.enabled:
        return ""
    from .cameras import detect_region

    region = detect_region(camera)
    if region is None:
        has_zones = any(z.rules for z in camera.zones) or bool(camera.lines)
        return f" (no crop: the rule zones' box plus margin is over detect_region.max_area {camera.detect_region.max_area:g})" if has_zones else ""
    x0, y0, x1, y1 = region
    return f", cropped to x {x0:.2f}-{x1:.2f}, y {y0:.2f}-{y1:.2f} ({(x1 - x0) * (y1 - y0):.0%} of the frame)"


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(workdir=args.workdir, host=args.host, port=args.port, use_rtsp=not args.no_rtsp, log_level=args.log_level)


DEFAULT_URL = "http://127.0.0.1:8080"


def _patrol_request(args: argparse.Namespace, method: str, path: str) -> tuple[int, object] | None:
    """One HTTP call to the running service; None (after printing why) when it cannot be reached."""
    import httpx

    import os

    base = args.url.rstrip("/")
    key = args.api_key or os.environ.get("GRIDWORKER_API_KEY")
    headers = {"X-API-Key": key} if key else {}
    try:
        r = httpx.request(method, f"{base}{path}", timeout=args.timeout, headers=headers)
    except httpx.HTTPError as exc:
        print(
            f"gridworker: cannot reach the service at {base} ({type(exc).__name__}: {exc}); "
            "is `gridworker run` up? Pass --url to point at it.",
            file=sys.stderr,
        )
        return None
    try:
        body: object = r.json()
    except ValueError:
        body = r.text
    return r.status_code, body


def _fmt_s(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f} s"  # type: ignore[arg-type]


def _print_status(st: dict) -> None:  # type: ignore[type-arg]
    cycles = st["cycles"] or "∞"
    print(
        f"{st['plan_id']}: {st['state']}  cycle {st['cycle']}/{cycles}  visited {st['visited']}/{st['total']}"
        f" (ok {st['ok']}, failed {st['failed']}, skipped {st['skipped']})  ETA {_fmt_s(st['eta_s'])}"
        f"  last cycle {_fmt_s(st['last_cycle_s'])}"
    )
    if st["in_flight"]:
        print(f"  in flight: {', '.join(st['in_flight'])}")
    for f in st["failed_this_cycle"]:
        print(f"  failed: {f['camera_id']}: {f['reason']}")
    for o in st["offline"]:
        print(f"  offline: {o['camera_id']} ({o['failures']} failure(s), retry in cycle {o['retry_cycle']}): {o['reason']}")


def _cmd_patrol(args: argparse.Namespace) -> int:
    import json

    action = args.patrol_action
    if action == "status":
        path = f"/patrol/plans/{args.plan}" if args.plan else "/patrol/plans"
        got = _patrol_request(args, "GET", path)
    else:
        got = _patrol_request(args, "POST", f"/patrol/plans/{args.plan}/{action}")
    if got is None:
        return 3
    code, body = got
    if code >= 400:
        detail = body.get("detail", body) if isinstance(body, dict) else body
        print(f"gridworker: patrol {action} {args.plan or ''}: HTTP {code}: {detail}".replace("  ", " "), file=sys.stderr)
        return 4 if code == 404 else 5
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    if action == "status":
        items = body if isinstance(body, list) else [body]
        if not items:
            print("no patrol plans")
        for item in items:
            _print_status(item["status"])  # type: ignore[index]
        return 0
    if action == "start" and code == 200:
        print(f"{args.plan}: already running")
    _print_status(body)  # type: ignore[arg-type]
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridworker", description="AI grid worker: RTSP cameras in, graded incidents out.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the service from a YAML config")
    p.add_argument("--config", "-c", required=True, help="YAML file with cameras, zones and settings")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check", help="validate a YAML config and exit")
    p.add_argument("--config", "-c", required=True)
    p.add_argument(
        "--load-models",
        action="store_true",
        help="also load every model and run it once at the shapes live frames take, and at each camera's imgsz, as"
        " `run` does before it binds the port (seconds per model): a model that loads but cannot run is refused now,"
        " not at the restart",
    )
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("demo", help="run the whole service on sample cameras it builds itself")
    p.add_argument("--workdir", default="var/demo", help="where sample clips and the demo database go")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--no-rtsp", action="store_true", help="read the clips directly instead of through the RTSP server")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("patrol", help="start, pause, resume, stop a patrol plan and read its progress (running service)")
    psub = p.add_subparsers(dest="patrol_action", required=True)
    for action, text in (
        ("start", "start a plan (nothing changes if it runs already)"),
        ("pause", "start no new visits"),
        ("resume", "undo pause"),
        ("stop", "stop a plan"),
        ("status", "progress of one plan, or of all"),
    ):
        q = psub.add_parser(action, help=text)
        if action == "status":
            q.add_argument("plan", nargs="?", help="plan id (default: all plans)")
        else:
            q.add_argument("plan", help="plan id")
        q.add_argument("--url", default=DEFAULT_URL, help=f"the service's HTTP address (default {DEFAULT_URL})")
        q.add_argument("--json", action="store_true", help="print the API's JSON")
        q.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, seconds")
        q.add_argument("--api-key", default=None, help="API key, if the service requires one (default: $GRIDWORKER_API_KEY)")
        q.set_defaults(func=_cmd_patrol)

    from gridworker.models.cli import register as register_models

    register_models(sub)
    try:
        from gridworker.bench.cli import register as register_bench
    except ImportError:  # pragma: no cover - bench is part of the package
        pass
    else:
        register_bench(sub)
    from .replay import register as register_replay

    register_replay(sub)
    from .keys_cli import register as register_keys  # gridworker keys (API keys)

    register_keys(sub)
    from .db_cli import register as register_db  # gridworker db (schema upgrades)

    register_db(sub)
    from gridworker.iot.cli import register as register_iot  # gridworker iot (issue 14: import, simulate)

    register_iot(sub)
    from gridworker.cluster.cli import register as register_cluster  # gridworker worker / serve (issue 12: cluster mode)

    register_cluster(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # httpx logs every request line at INFO: noise on a client command's output (-v shows them)
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from gridworker.streams.redact import install_handler_redaction

    # every record, FFmpeg's libav.* included, loses URL credentials (the web server's own
    # handlers are filtered by the log_config _serve hands it: api/access_log.py)
    install_handler_redaction()
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
