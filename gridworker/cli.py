"""The ``gridworker`` console command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .settings import ConfigError, Settings, load_settings

log = logging.getLogger("gridworker")


def _serve(settings: Settings, *, log_level: str = "info") -> int:
    import uvicorn

    from gridworker.api import create_app
    from gridworker.models.loader import load_detector

    from .service import Service

    detector = load_detector(settings.detector)  # fail before binding the port if the model is bad
    app = create_app(lambda: Service(settings, detector))
    uvicorn.run(app, host=settings.server.host, port=settings.server.port, log_level=log_level)
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
    return _serve(settings, log_level=args.log_level)


def _cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    print(f"{args.config}: OK, {len(settings.cameras)} camera(s)")
    for cam in settings.cameras:
        rules = sum(len(z.rules) for z in cam.zones)
        print(f"  {cam.id}: {cam.public_url()} @ {cam.fps} fps, {len(cam.zones)} zone(s), {rules} rule(s)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(workdir=args.workdir, host=args.host, port=args.port, use_rtsp=not args.no_rtsp, log_level=args.log_level)


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
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("demo", help="run the whole service on sample cameras it builds itself")
    p.add_argument("--workdir", default="var/demo", help="where sample clips and the demo database go")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--no-rtsp", action="store_true", help="read the clips directly instead of through the RTSP server")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_cmd_demo)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
