"""``gridworker bench soak``: does a running service stay flat over time?

``--streams`` real RTSP cameras (the media clips, or a generated one, looped by one
gst-rtsp-server, assigned round-robin) are analysed by a running ``Service`` for
``--minutes``, with a crowd rule on every camera so that incidents, work orders and the
outbox are written all along. Every ``sample_s`` the process's resident memory, threads and
open file descriptors are read (``/proc/self``); the cameras' reconnects are summed.

Keys: ``rss_start_mb``, ``rss_end_mb``, ``rss_slope_mb_per_min`` (least squares over the
samples after the first ``warmup_s``), ``rss_slope_last_half_mb_per_min`` (the same over the
second half of the run only: memory that grows to a bound and stays there shows a slope
over the whole run but none in its second half, a leak shows in both), ``threads_start/end``, ``fds_start/end``,
``reconnects``, ``incidents``, ``minutes``, ``streams``, ``cpu_cores``. Targets: slope
< 1 MB/min, no growth in threads or descriptors, no reconnect storms (0 reconnects from a
healthy server).
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gridworker.incidents import IncidentQuery
from gridworker.models import DetectorConfig, load_detector
from gridworker.models.config import auto_inference_workers
from gridworker.service import Service
from gridworker.settings import Settings
from gridworker.streams.clips import synthetic_clip
from gridworker.streams.rtsp_serve import RtspServerProcess

from .throughput import default_media_dir, video_files

__all__ = ["SoakResult", "format_soak", "run_soak"]

_PAGE = resource.getpagesize()


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the start
    rss_mb: float
    threads: int
    fds: int


@dataclass(frozen=True, slots=True)
class SoakResult:
    streams: int
    minutes: float
    rss_start_mb: float
    rss_end_mb: float
    rss_slope_mb_per_min: float | None
    rss_slope_last_half_mb_per_min: float | None
    threads_start: int
    threads_end: int
    fds_start: int
    fds_end: int
    reconnects: int
    incidents: int
    cpu_cores: int | None


def sample(t: float) -> Sample:
    """This process's resident memory, threads and open descriptors now."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        rss = int(fh.read().split()[1]) * _PAGE / 1e6
    return Sample(t, round(rss, 1), len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd")))


def slope_per_min(samples: list[Sample]) -> float | None:
    """Least-squares slope of RSS over time, MB per minute (None with fewer than 3 samples)."""
    if len(samples) < 3:
        return None
    fit = statistics.linear_regression([s.t for s in samples], [s.rss_mb for s in samples])
    return round(fit.slope * 60.0, 3)


def run_soak(
    minutes: float = 30.0,
    streams: int = 16,
    *,
    media: Path | None = None,
    sample_s: float = 10.0,
    warmup_s: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> SoakResult:
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="gw-soak-") as tmp:
        work = Path(tmp)
        folder = media or default_media_dir()
        clips = video_files(folder) if folder is not None else [synthetic_clip(work / "synthetic.mp4", seconds=10, size=(640, 360), fps=25)]
        server = RtspServerProcess({f"cam{i}": clips[i % len(clips)] for i in range(streams)}).start()
        try:
            crowd = {"id": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "rules": [{"type": "crowd", "min_count": 2, "min_duration_s": 1.0}]}
            cameras = [{"id": f"cam{i}", "url": server.url(f"cam{i}"), "fps": 5, "zones": [crowd]} for i in range(streams)]
            settings = Settings(database={"url": f"sqlite:///{work / 'soak.db'}"}, cameras=cameras, evidence={"clips": True})
            service = Service(settings, load_detector(DetectorConfig(), workers=auto_inference_workers()))
            service.start()
            samples: list[Sample] = []
            t0 = time.monotonic()
            try:
                end = t0 + minutes * 60.0
                while True:
                    now = time.monotonic()
                    samples.append(sample(now - t0))
                    if now >= end:
                        break
                    if len(samples) % 6 == 1:
                        say(f"{(now - t0) / 60:.1f} min: RSS {samples[-1].rss_mb:.0f} MB, {samples[-1].threads} threads, {samples[-1].fds} fds")
                    time.sleep(min(sample_s, max(0.0, end - time.monotonic())))
                reconnects = sum(v.health.reconnects for v in service.cameras())
                incidents = service.store.list(IncidentQuery(limit=1))[1]
            finally:
                service.stop()
                service.store.close()
        finally:
            server.stop()
    steady = [s for s in samples if s.t >= warmup_s] or samples
    first, last = steady[0], samples[-1]
    return SoakResult(
        streams=streams, minutes=round(minutes, 2),
        rss_start_mb=first.rss_mb, rss_end_mb=last.rss_mb, rss_slope_mb_per_min=slope_per_min(steady),
        rss_slope_last_half_mb_per_min=slope_per_min([s for s in samples if s.t >= samples[-1].t / 2]),
        threads_start=first.threads, threads_end=last.threads, fds_start=first.fds, fds_end=last.fds,
        reconnects=reconnects, incidents=incidents, cpu_cores=os.cpu_count(),
    )


def format_soak(r: SoakResult) -> str:
    slope_ok = r.rss_slope_mb_per_min is not None and r.rss_slope_mb_per_min < 1.0
    return "\n".join(
        [
            f"{r.streams} streams for {r.minutes} min on {r.cpu_cores} cores; {r.incidents} incidents",
            f"RSS {r.rss_start_mb} -> {r.rss_end_mb} MB, slope {r.rss_slope_mb_per_min} MB/min [{'PASS' if slope_ok else 'FAIL'}: < 1], "
            f"second half {r.rss_slope_last_half_mb_per_min} MB/min",
            f"threads {r.threads_start} -> {r.threads_end}, fds {r.fds_start} -> {r.fds_end}, reconnects {r.reconnects}",
        ]
    )
