"""``gridworker iot``: import devices from a CSV file, simulate devices on a broker.

    gridworker iot import devices.csv --config site.yaml [--replace]
    gridworker iot simulate --broker 127.0.0.1:1883 --devices 50 [--seconds 60] [--csv devices.csv]

``import`` saves the devices in the service's database (they are watched from the service's
next start; ``POST /devices/import`` adds them to a running service at once).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridworker.bench.args import fail

__all__ = ["add_traffic_options", "broker_address", "register", "traffic_fields"]


def broker_address(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` of an MQTT broker (port 1883 when left out), as an argparse ``type``."""
    host, _, port = text.rpartition(":")
    if not host:
        return text, 1883
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST[:PORT], got {text!r}") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return host, number


def add_traffic_options(
    p: argparse.ArgumentParser, *, devices: int, seconds: float, burst_every: float, burst_devices: int,
    number: Callable[[str], float] = float,
) -> None:
    """``--devices``, ``--seconds``, ``--interval``, ``--burst-every`` and ``--burst-devices``: the
    simulated devices' traffic, taken alike by ``iot simulate`` and ``bench iot`` (which runs the
    same simulator); :func:`traffic_fields` turns them into the simulator's settings. ``number``
    parses the three durations (``bench`` checks them while parsing, ``iot simulate`` after)."""
    p.add_argument("--devices", type=int, default=devices, help=f"devices (default {devices})")
    p.add_argument("--seconds", type=number, default=seconds, help=f"how long the devices publish, s (default {seconds:g})")
    p.add_argument("--interval", type=number, default=10.0, help="each device's message interval, s (default 10)")
    p.add_argument("--burst-every", type=number, default=burst_every, help=f"an alarm burst every S seconds (default {burst_every:g})")
    p.add_argument("--burst-devices", type=int, default=burst_devices, help=f"devices raising an alarm per burst (default {burst_devices})")


def traffic_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~gridworker.iot.simulate.SimConfig` fields given by :func:`add_traffic_options`."""
    return {
        "devices": args.devices, "seconds": args.seconds, "interval_s": args.interval, "burst_every_s": args.burst_every,
        "burst_devices": args.burst_devices,
    }


def register(subparsers: Any) -> None:
    """Add ``iot`` (``import``, ``simulate``) to the ``gridworker`` command's sub-parsers."""
    iot = subparsers.add_parser("iot", help="IoT devices: import a CSV, simulate devices (docs/iot.md)")
    sub = iot.add_subparsers(dest="iot_command", metavar="COMMAND", required=True)

    p = sub.add_parser("import", help="save the devices of a CSV file in the service's database")
    p.add_argument("csv", type=Path, help="CSV with a header row: id,type,name,site,unit,longitude,latitude,cameras,heartbeat_s")
    p.add_argument("--config", "-c", default=None, help="the service's YAML config (its database and iot section)")
    p.add_argument("--database", default=None, help="the database URL (instead of --config)")
    p.add_argument("--replace", action="store_true", help="replace devices imported before with the same id")
    p.set_defaults(func=_import)

    p = sub.add_parser("simulate", help="publish realistic traffic of N devices (heartbeats, readings, alarm bursts, malformed)")
    p.add_argument("--broker", type=broker_address, default=("127.0.0.1", 1883), metavar="HOST[:PORT]", help="default 127.0.0.1:1883")
    add_traffic_options(p, devices=10, seconds=60.0, burst_every=10.0, burst_devices=3)
    p.add_argument("--types", default=None, help="comma-separated device types (default: all shipped types in turn)")
    p.add_argument("--prefix", default="sim-", help="device id prefix (default sim-)")
    p.add_argument("--topic-pattern", default="gridworker/iot/{device_id}/up", help="as iot.topic_pattern (default gridworker/iot/{device_id}/up)")
    p.add_argument("--restore-after", type=float, default=5.0, help="a burst's alarm is restored after S seconds (0: never; default 5)")
    p.add_argument("--malformed", type=float, default=0.02, help="share of malformed messages (default 0.02)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--csv", type=Path, default=None, help="write the devices as a CSV for `gridworker iot import` and exit")
    p.set_defaults(func=_simulate)


def _import(args: argparse.Namespace) -> int:
    from gridworker.incidents import IncidentStore
    from gridworker.iot.config import IotConfig
    from gridworker.iot.mapping import MappingError, load_mappings
    from gridworker.iot.registry import DeviceError, DeviceRegistry, parse_csv
    from gridworker.settings import ConfigError, load_settings

    url, iot = args.database, IotConfig()
    if args.config:
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            return fail("", str(exc))
        url, iot = url or settings.database.url, settings.iot
    if not url:
        return fail("iot import", "give --config or --database")
    try:
        text = args.csv.read_text(encoding="utf-8")
        devices = parse_csv(text, max_rows=iot.max_devices)
        mappings = load_mappings(iot.mappings_dir)
    except (OSError, UnicodeDecodeError) as exc:
        return fail("iot import", f"cannot read {args.csv}: {exc}")
    except (DeviceError, MappingError) as exc:
        return fail("iot import", f"{args.csv}: {exc}")
    store = IncidentStore(url)
    try:
        registry = DeviceRegistry(iot, mappings.keys(), store.devices)
        registry.load_saved()
        registry.add(devices, replace=args.replace)
    except DeviceError as exc:
        return fail("iot import", str(exc), 1)
    finally:
        store.close()
    print(f"{len(devices)} device(s) saved; a running service watches them from its next start (or use POST /devices/import)")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gridworker.iot.config import IotConfig
    from gridworker.iot.simulate import SimConfig, devices_csv, run_simulation, sim_devices

    if args.devices < 1 or args.seconds <= 0 or args.interval <= 0 or not 0 <= args.malformed <= 1 or args.burst_every <= 0:
        return fail("iot simulate", "--devices >= 1, --seconds, --interval, --burst-every > 0, 0 <= --malformed <= 1")
    try:
        IotConfig(topic_pattern=args.topic_pattern)
        types = tuple(t.strip() for t in args.types.split(",") if t.strip()) if args.types else None
        devices = sim_devices(args.devices, prefix=args.prefix, types=types)
    except ValueError as exc:
        return fail("iot simulate", str(exc))
    if args.csv is not None:
        args.csv.write_text(devices_csv(devices, heartbeat_s=args.interval), encoding="utf-8")
        print(f"{len(devices)} device(s) written to {args.csv}")
        return 0
    config = SimConfig(
        host=args.broker[0], port=args.broker[1], topic_pattern=args.topic_pattern, prefix=args.prefix, types=types,
        restore_after_s=args.restore_after, malformed_share=args.malformed, seed=args.seed, **traffic_fields(args),
    )
    try:
        result = run_simulation(config, progress=lambda m: print(f"simulate: {m}", file=sys.stderr, flush=True))
    except OSError as exc:
        return fail("iot simulate", f"cannot reach the broker {args.broker[0]}:{args.broker[1]}: {exc}", 1)
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result.as_dict()))
    return 0 if result.failed == 0 else 1
