"""``gridworker demo``: the whole service on sample cameras it builds by itself.

Continuous cameras (streamed and analysed all the time):

* ``bus-stop`` — a real photo (``bus.jpg`` from the ultralytics wheel, if installed) encoded
  as a looped H.264 "still camera". The bus stands in a no-parking zone, so a dwell incident
  opens after ``DWELL_S`` seconds, and the people beside it make a crowd on the kerb.
* ``campus`` — Debian ``opencv-doc``'s pedestrian video (if installed), with crowd and
  vehicle-intrusion rules.
* With neither available, a synthetic clip keeps the pipeline visibly running.

Key-site cameras (``demo_sites.py``): some 20 patrol-only cameras made from the same pictures,
each its own mount point on the same RTSP server, and the patrol plan ``key-sites`` that
visits them (开始轮巡 in the console); revisit parking cases open at its second cycle.

Around the service: a webhook receiver (``demo_webhooks.py``) that the demo forwards every
work-order change to, signed, and a simulated crew (``demo_crew.py``) that works the first
few cases. Clips are served through the real RTSP server (Debian's gst-rtsp-server) when
installed, otherwise read directly as files at real-time pace. Nothing comes from the network.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import yaml

from .assets import opencv_doc_video, ultralytics_asset
from .demo_crew import DemoCrew
from .demo_iot import DemoBreakers
from .demo_sites import CYCLE_S, REVISIT_S, UNPLUGGED, Site, build_site_clips, patrol_plan, site_cameras
from .demo_webhooks import WebhookReceiver

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger(__name__)

DWELL_S = 15


def _camera(cam_id: str, name: str, site: str, url: str, fps: float, zones: list[dict[str, Any]]) -> dict[str, Any]:
    """A demo camera as the config file would list it."""
    return {"id": cam_id, "name": name, "site": site, "url": url, "fps": fps, "zones": zones}


def _bus_camera(url: str) -> dict[str, Any]:
    no_parking = {
        "id": "no-parking",
        "name": "No parking",
        "polygon": [[0.0, 0.55], [1.0, 0.55], [1.0, 0.82], [0.0, 0.82]],
        "rules": [{"type": "dwell", "classes": ["bus", "car", "truck"], "min_duration_s": DWELL_S, "clear_after_s": 10}],
    }
    kerb = {
        "id": "kerb",
        "name": "Kerb",
        "polygon": [[0.0, 0.82], [1.0, 0.82], [1.0, 1.0], [0.0, 1.0]],
        "rules": [{"type": "crowd", "min_count": 3, "min_duration_s": 5, "clear_after_s": 10}],
    }
    return _camera("bus-stop", "Bus stop (still camera)", "transport hub", url, fps=2, zones=[no_parking, kerb])


def _campus_camera(url: str) -> dict[str, Any]:
    road = {
        "id": "road",
        "name": "Campus road",
        "polygon": [[0.0, 0.35], [1.0, 0.35], [1.0, 1.0], [0.0, 1.0]],
        "rules": [
            {"type": "crowd", "min_count": 4, "min_duration_s": 5, "clear_after_s": 10},
            {"type": "intrusion", "id": "vehicle", "classes": ["car", "truck", "bus"], "min_duration_s": 5},
        ],
    }
    return _camera("campus", "Campus road", "school", url, fps=5, zones=[road])


def build_sample_clips(workdir: Path) -> dict[str, Path]:
    """Make the demo's H.264 clips in ``workdir`` (reused when already there)."""
    from gridworker.streams.clips import encode_still, synthetic_clip, transcode_h264

    workdir.mkdir(parents=True, exist_ok=True)
    clips: dict[str, Path] = {}
    bus = ultralytics_asset("bus.jpg")
    if bus is not None:
        out = workdir / "bus_still.mp4"
        if not out.exists():
            bgr = cv2.imread(str(bus))
            if bgr is None:
                raise RuntimeError(f"cannot read {bus}")
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            encode_still(image, out, seconds=10, fps=10)
        clips["bus-stop"] = out
    else:
        log.warning("bus.jpg not found (pip install --no-deps ultralytics ships it); skipping the still camera")
    vtest = opencv_doc_video()
    if vtest is not None:
        out = workdir / "campus.mp4"
        if not out.exists():
            transcode_h264(vtest, out)
        clips["campus"] = out
    else:
        log.warning("Debian's opencv-doc is not installed; skipping the campus camera")
    if not clips:
        out = workdir / "synthetic.mp4"
        if not out.exists():
            synthetic_clip(out, seconds=10, size=(640, 360), fps=10)
        clips["synthetic"] = out
    return clips


@dataclass(frozen=True, slots=True)
class DemoWebhook:
    """The demo's forwarding destination: its receiver's URL and the shared secret."""

    url: str
    secret: str


def demo_config(
    urls: dict[str, str],
    workdir: Path,
    host: str,
    port: int,
    *,
    sites: Sequence[tuple[Site, str]] = (),
    unplugged_url: str | None = None,
    webhook: DemoWebhook | None = None,
    iot: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The demo's whole config: the continuous cameras, the key-site cameras and their patrol
    plan, and (with ``webhook``) a signed webhook destination."""
    cameras: list[dict[str, Any]] = []
    if "bus-stop" in urls:
        cameras.append(_bus_camera(urls["bus-stop"]))
    if "campus" in urls:
        cameras.append(_campus_camera(urls["campus"]))
    if "synthetic" in urls:
        cameras.append({"id": "synthetic", "name": "Synthetic test pattern", "url": urls["synthetic"], "fps": 5})
    keysites = site_cameras(sites, unplugged_url)
    config: dict[str, Any] = {
        "server": {"host": host, "port": port},
        "database": {"url": f"sqlite:///{(workdir / 'demo.db').resolve()}"},
        "media_dir": str(workdir.resolve()),  # the clips, when they are read as files (no RTSP server)
        "cameras": cameras + keysites,
        "patrol_plans": [patrol_plan()] if keysites else [],
    }
    if iot is not None:  # the simulated smart breakers (demo_iot.py)
        config["iot"] = iot
    if webhook is not None:
        config["forwarding"] = {
            "destinations": [{"kind": "webhook", "name": "demo-receiver", "url": webhook.url, "secret": webhook.secret, "timeout_s": 5}],
            "retry": {"base_s": 1, "cap_s": 10},
        }
    return config


def tour(base: str, receiver: str | None, sites: int, continuous: Sequence[str], breakers: int = 0) -> list[str]:
    """What to click, in order (printed when the demo starts)."""
    lines = [
        "  What to look at, in order:",
        f"  1. Open {base}/console/  (the command-centre console; 中文/EN button top right).",
        f"     The wall: {len(continuous)} cameras watched all the time ({', '.join(continuous)}) and {sites} key-site",
        "     cameras that are only visited by the patrol (on standby between visits).",
        "  2. Within ~20 s the queue (事件队列) fills: a crowd (人员聚集) on campus, and an 物体滞留 (dwell) case",
        f"     for the bus standing in the no-parking zone at the bus stop (after ~{DWELL_S} s). Click a case: its",
        "     snapshot, its evidence clip, its history.",
    ]
    if sites:
        lines += [
            "  3. Press 开始轮巡 (Start patrol) in 一键轮巡: the progress bar runs over the key sites, the tiles",
            "     being visited turn purple, crowds and a staff-only intrusion open cases from single keyframes;",
            "     depot-yard is unplugged on purpose (listed offline, retried with back-off).",
            f"  4. The second cycle starts ~{CYCLE_S:.0f} s after the first: vehicles seen at the same spot on both",
            f"     visits (>= {REVISIT_S:.0f} s apart) open 机动车违停 revisit cases; their snapshot shows both captures.",
        ]
    lines += [
        "  5. A simulated crew (demo:command desk, then the unit's street team) takes the first 3 cases",
        "     through dispatch -> accept -> handled, a few seconds apart: watch their state change;",
        "     act on the others yourself (派遣 / 受理 / 处置完成 / 结案 / 误报).",
    ]
    if receiver is not None:
        lines.append(f"  6. Webhook receiver: {receiver}/  every work-order change, HMAC signature checked (count rises).")
    if breakers:
        lines += [
            f"  6b. IoT: {breakers} simulated smart breakers of an old estate report over MQTT; about every 40 s one raises",
            "     an alarm (overcurrent, leakage, arc fault...): a graded case in the queue, closed verified once the",
            "     breaker has reported it restored for a minute (iot.restore_hold_s: a flapping breaker keeps one case).",
            f"     Devices: {base}/devices  (docs/iot.md: pointing real devices at it)",
        ]
    lines += [
        f"  7. Statistics: {base}/stats/workorders   API: {base}/docs   metrics: {base}/metrics",
    ]
    return lines


def run_demo(workdir: str | Path = "var/demo", host: str = "127.0.0.1", port: int = 8080, use_rtsp: bool = True, log_level: str = "info") -> int:
    from gridworker.cli import _serve, exposure_refusal
    from gridworker.streams.rtsp_serve import RtspServerProcess, gst_rtsp_available

    from .settings import ConfigError, Settings, load_settings

    work = Path(workdir)
    refusal = exposure_refusal(Settings(**demo_config({}, work, host, port)))
    if refusal is not None:  # before the clips are built or the RTSP server starts
        print(f"gridworker: {refusal}", file=sys.stderr)
        return 2
    started_at = time.time()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per webhook POST: the receiver logs them already
    clips = build_sample_clips(work)
    site_clips = build_site_clips(work)
    server: RtspServerProcess | None = None
    receiver: WebhookReceiver | None = None
    crew: list[DemoCrew] = []
    breakers: DemoBreakers | None = None
    try:
        breakers = DemoBreakers.start()
        unplugged: str | None = None
        if use_rtsp and gst_rtsp_available():
            mounts = {**clips, **{site.id: path for site, path in site_clips}}
            server = RtspServerProcess(mounts, own_process_group=True)  # Ctrl-C stops the service first, then the server
            server.start()
            urls = {name: server.url(name) for name in clips}
            sites = [(site, server.url(site.id)) for site, _ in site_clips]
            unplugged = f"{server.base_url}/{UNPLUGGED}"  # no such mount: an RTSP 404, as from a dead camera
        else:
            if use_rtsp:
                log.warning("gst-rtsp-server is not installed; reading the clips as files")
            urls = {name: str(path.resolve()) for name, path in clips.items()}
            sites = [(site, str(path.resolve())) for site, path in site_clips]
        secret = secrets.token_urlsafe(32)  # per run; only in the 0600 config file, never printed
        receiver = WebhookReceiver(secret=secret, port=port + 1 if port else 0).start()
        webhook = DemoWebhook(receiver.url, secret)
        config_path = work / "demo.yaml"
        text = yaml.safe_dump(
            demo_config(
                urls, work, host, port, sites=sites, unplugged_url=unplugged, webhook=webhook,
                iot=breakers.config() if breakers is not None else None,
            ),
            sort_keys=False,
            allow_unicode=True,
        )
        config_path.touch(mode=0o600)
        config_path.chmod(0o600)  # it holds the webhook secret
        config_path.write_text(text, encoding="utf-8")
        try:
            settings = load_settings(config_path)
        except ConfigError as exc:  # pragma: no cover - the demo writes a valid config
            print(f"gridworker: {exc}", file=sys.stderr)
            return 2
        continuous = [c.id for c in settings.cameras if c.watch == "continuous"]

        def with_crew(service: Service) -> None:
            crew.append(
                DemoCrew(service.workflow, service.workorders, cameras=continuous, since=started_at, ready=lambda: service.started).start()
            )
            if breakers is not None:
                breakers.simulate()

        base = f"http://{host}:{port}"
        keysites = [c for c in settings.cameras if c.watch == "patrol"]
        lines = [
            "",
            "gridworker demo",
            f"  config     {config_path}",
            f"  cameras    {', '.join(f'{c.id} <- {c.public_url()}' for c in settings.cameras if c.watch == 'continuous')}",
            f"  key sites  {len(keysites)} patrol-only cameras" + (f" on {server.base_url}/<id>" if server is not None else ""),
            f"  console    {base}/console/",
            f"  webhooks   {receiver.base}/  (the demo's receiver; deliveries also in this log)",
            f"  incidents  {base}/incidents   (a dwell incident opens on bus-stop after ~{DWELL_S} s)",
            "",
            *tour(base, receiver.base, len(keysites), continuous, breakers=len(breakers.devices) if breakers else 0),
            "",
            "  Ctrl-C to stop.",
            "",
        ]
        print("\n".join(lines), flush=True)
        return _serve(settings, log_level=log_level, config=str(config_path), on_service=with_crew, access_log=False)
    finally:
        for c in crew:
            c.stop()
        if receiver is not None:
            receiver.stop()
        if breakers is not None:
            breakers.stop()
        if server is not None:
            server.stop()
