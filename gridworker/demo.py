"""``gridworker demo``: the whole service on sample cameras it builds by itself.

* ``bus-stop`` — a real photo (``bus.jpg`` from the ultralytics wheel, if installed) encoded
  as a looped H.264 "still camera". The bus stands in a no-parking zone, so a dwell incident
  opens after ``DWELL_S`` seconds, and the pedestrians beside it trip a road-intrusion rule.
* ``campus`` — Debian ``opencv-doc``'s pedestrian video (if installed), with crowd and
  parked-van dwell rules.
* With neither available, a synthetic clip keeps the pipeline visibly running.

Clips are served through the real RTSP server (Debian's gst-rtsp-server) when installed,
otherwise read directly as files at real-time pace.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import cv2
import yaml

from .assets import opencv_doc_video, ultralytics_asset

log = logging.getLogger(__name__)

DWELL_S = 15


def _bus_camera(url: str) -> dict[str, Any]:
    return {
        "id": "bus-stop",
        "name": "Bus stop (still camera)",
        "site": "transport hub",
        "url": url,
        "fps": 2,
        "zones": [
            {
                "id": "no-parking",
                "name": "No parking",
                "polygon": [[0.0, 0.55], [1.0, 0.55], [1.0, 0.82], [0.0, 0.82]],
                "rules": [{"type": "dwell", "classes": ["bus", "car", "truck"], "min_duration_s": DWELL_S, "clear_after_s": 10}],
            },
            {
                "id": "kerb",
                "name": "Kerb",
                "polygon": [[0.0, 0.82], [1.0, 0.82], [1.0, 1.0], [0.0, 1.0]],
                "rules": [{"type": "crowd", "min_count": 3, "min_duration_s": 5, "clear_after_s": 10}],
            },
        ],
    }


def _campus_camera(url: str) -> dict[str, Any]:
    return {
        "id": "campus",
        "name": "Campus road",
        "site": "school",
        "url": url,
        "fps": 5,
        "zones": [
            {
                "id": "road",
                "name": "Campus road",
                "polygon": [[0.0, 0.35], [1.0, 0.35], [1.0, 1.0], [0.0, 1.0]],
                "rules": [
                    {"type": "crowd", "min_count": 4, "min_duration_s": 5, "clear_after_s": 10},
                    {"type": "intrusion", "id": "vehicle", "classes": ["car", "truck", "bus"], "min_duration_s": 5},
                ],
            }
        ],
    }


def build_sample_clips(workdir: Path) -> dict[str, Path]:
    """Make the demo's H.264 clips in ``workdir`` (reused when already there)."""
    from gridworker.streams.clips import encode_still, synthetic_clip, transcode_h264

    workdir.mkdir(parents=True, exist_ok=True)
    clips: dict[str, Path] = {}
    bus = ultralytics_asset("bus.jpg")
    if bus is not None:
        out = workdir / "bus_still.mp4"
        if not out.exists():
            image = cv2.cvtColor(cv2.imread(str(bus)), cv2.COLOR_BGR2RGB)
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


def demo_config(urls: dict[str, str], workdir: Path, host: str, port: int) -> dict[str, Any]:
    cameras: list[dict[str, Any]] = []
    if "bus-stop" in urls:
        cameras.append(_bus_camera(urls["bus-stop"]))
    if "campus" in urls:
        cameras.append(_campus_camera(urls["campus"]))
    if "synthetic" in urls:
        cameras.append({"id": "synthetic", "name": "Synthetic test pattern", "url": urls["synthetic"], "fps": 5})
    return {
        "server": {"host": host, "port": port},
        "database": {"url": f"sqlite:///{(workdir / 'demo.db').resolve()}"},
        "media_dir": str(workdir.resolve()),  # the clips, when they are read as files (no RTSP server)
        "cameras": cameras,
    }


def run_demo(workdir: str | Path = "var/demo", host: str = "127.0.0.1", port: int = 8080, use_rtsp: bool = True, log_level: str = "info") -> int:
    from gridworker.cli import _serve, exposure_refusal
    from gridworker.streams.rtsp_serve import RtspServerProcess, gst_rtsp_available

    from .settings import ConfigError, Settings, load_settings

    work = Path(workdir)
    refusal = exposure_refusal(Settings(**demo_config({}, work, host, port)))
    if refusal is not None:  # before the clips are built or the RTSP server starts
        print(f"gridworker: {refusal}", file=sys.stderr)
        return 2
    clips = build_sample_clips(work)
    server: RtspServerProcess | None = None
    if use_rtsp and gst_rtsp_available():
        server = RtspServerProcess({name: path for name, path in clips.items()})
        server.start()
        urls = {name: server.url(name) for name in clips}
    else:
        if use_rtsp:
            log.warning("gst-rtsp-server is not installed; reading the clips as files")
        urls = {name: str(path.resolve()) for name, path in clips.items()}
    config_path = work / "demo.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(urls, work, host, port), sort_keys=False), encoding="utf-8")
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:  # pragma: no cover - the demo writes a valid config
        print(f"gridworker: {exc}", file=sys.stderr)
        return 2
    base = f"http://{host}:{port}"
    lines = [
        "",
        "gridworker demo",
        f"  config     {config_path}",
        f"  cameras    {', '.join(f'{c.id} <- {c.public_url()}' for c in settings.cameras)}",
        f"  API docs   {base}/docs",
        f"  cameras    {base}/cameras",
        *[f"  live frame {base}/cameras/{c.id}/frame.jpg" for c in settings.cameras],
        f"  incidents  {base}/incidents   (a dwell incident opens on bus-stop after ~{DWELL_S} s)",
        f"  metrics    {base}/metrics",
        "  Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)
    try:
        return _serve(settings, log_level=log_level, config=str(config_path))
    finally:
        if server is not None:
            server.stop()
