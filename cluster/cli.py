"""``gridworker worker`` and ``gridworker serve``: the two roles of cluster mode (docs/cluster.md)."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gridworker.settings import Settings

__all__ = ["register"]


def _settings(args: argparse.Namespace) -> Settings | None:
    from gridworker.cli import _load

    settings = _load(args.config)
    if settings is None:
        return None
    if settings.cluster is None:
        print("gridworker: cluster mode needs a cluster: section in the config (cluster: {nats_url: nats://host:4222})", file=sys.stderr)
        return None
    return settings


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    assert settings.cluster is not None
    if args.worker_id:
        settings = settings.model_copy(update={"cluster": settings.cluster.model_copy(update={"worker_id": args.worker_id})})
    if args.port is not None:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update={"port": args.port})})
    if args.drain or args.undrain:
        return _drain(settings, args.drain or args.undrain, on=bool(args.drain), wait_s=args.wait)
    from .worker import WorkerProcess

    from gridworker.cli import models_or_say

    models = models_or_say(settings)  # every model, warmed up, as `gridworker run` loads them
    if models is None:
        return 2
    detector, named = models
    observations = importlib.import_module("gridworker.cluster.observations")
    try:
        visits: Any = importlib.import_module("gridworker.cluster.visits")
    except ModuleNotFoundError:
        visits = None
    worker = WorkerProcess(
        settings, detector, sink_factory=observations.build_worker_sink,
        visits_factory=getattr(visits, "start_visit_consumer", None) if visits is not None else None, models=named,
    )
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        worker.start()
    except Exception as exc:
        print(f"gridworker: worker could not start: {type(exc).__name__}: {exc}", file=sys.stderr)
        worker.stop(5.0)
        return 3
    print(f"worker {worker.worker_id} running; health at {worker.info().health_url}", flush=True)
    done.wait()
    worker.stop()
    return 0


def _drain(settings: Settings, worker_id: str, *, on: bool, wait_s: float) -> int:
    """Mark ``worker_id`` drained (or not) and, draining, wait until it runs no camera."""
    from .bridge import AsyncBridge
    from .link import NatsLink
    from .membership import list_workers

    assert settings.cluster is not None
    bridge = AsyncBridge()
    bridge.start()
    link = NatsLink(settings.cluster, bridge, name="gridworker-drain")
    try:
        link.connect()
        kv = link.buckets.drain
        if not on:
            link.call(lambda: kv.purge(worker_id))
            print(f"{worker_id}: takes cameras again")
            return 0
        link.call(lambda: kv.put(worker_id, b"1"))
        until = time.monotonic() + wait_s
        missed = 0  # a listing can miss a heartbeat being replaced: gone = missed twice in a row
        while time.monotonic() < until:
            workers = {w.worker: w for w in link.call(lambda: list_workers(link.buckets.workers))}
            info = workers.get(worker_id)
            missed = missed + 1 if info is None else 0
            if (info is not None and not info.cameras) or missed >= 2:
                print(f"{worker_id}: drained (runs no camera)" if info is not None else f"{worker_id}: no live worker of that id")
                return 0
            time.sleep(settings.cluster.renew_interval_s)
        print(f"gridworker: {worker_id} still runs cameras after {wait_s:g} s (no room on the other workers?)", file=sys.stderr)
        return 4
    finally:
        link.close()
        bridge.stop()


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI
    from starlette.concurrency import run_in_threadpool

    from gridworker.api import create_app
    from gridworker.cli import exposure_refusal
    from gridworker.service import Service

    from .api import router
    from .serve import ClusterService, RemoteStream, require_postgres

    settings = _settings(args)
    if settings is None:
        return 2
    refusal = require_postgres(settings) or exposure_refusal(settings, args.config)
    if refusal is not None:
        print(f"gridworker: {refusal}", file=sys.stderr)
        return 2
    from gridworker.cli import models_or_say

    models = models_or_say(settings)  # serve judges patrol-only cameras' visits with them
    if models is None:
        return 2
    detector, named = models
    services: list[Service] = []

    def build() -> Service:
        service = Service(settings, detector, models=named, reader=RemoteStream)  # cameras run on the workers
        services.append(service)
        return service

    app = create_app(build)
    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):  # the service starts (and stops) here
            cluster = ClusterService(services[-1])
            await run_in_threadpool(cluster.start)
            app.state.cluster = cluster
            app.state.camera_owners = cluster  # /cameras: which worker runs each camera (api/deps.py)
            try:
                yield
            finally:
                await run_in_threadpool(cluster.stop)

    app.router.lifespan_context = lifespan
    from gridworker.api.access_log import log_config
    from gridworker.api.http_protocol import head_deadline_protocol

    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
        log_config=log_config(),
        http=head_deadline_protocol(settings.server.request_head_timeout_s),
    )
    return 0


def register(sub: Any) -> None:
    """Add ``worker`` and ``serve`` to the ``gridworker`` command."""
    p = sub.add_parser("worker", help="cluster mode: run the cameras this worker is given (streams, detection, rules, patrol visits)")
    p.add_argument("--config", "-c", required=True, help="YAML config with a cluster: section")
    p.add_argument("--worker-id", default=None, help="this worker's id (default: cluster.worker_id, else <hostname>-<pid>)")
    p.add_argument("--port", type=int, default=None, help="health/metrics HTTP port (default server.port; 0: any free port)")
    p.add_argument("--drain", metavar="WORKER_ID", default=None, help="do not run a worker: move WORKER_ID's cameras away and wait")
    p.add_argument("--undrain", metavar="WORKER_ID", default=None, help="do not run a worker: let WORKER_ID take cameras again")
    p.add_argument("--wait", type=float, default=120.0, help="with --drain: seconds to wait for its cameras to move")
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("serve", help="cluster mode: API, console, incidents, cases, delivery and camera placement (PostgreSQL)")
    p.add_argument("--config", "-c", required=True, help="YAML config with a cluster: section and a PostgreSQL database")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_serve)
