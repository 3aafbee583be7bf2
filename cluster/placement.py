"""Which live worker runs which continuous camera: rendezvous hashing with a per-worker cap.

A pure function of the cameras, the eligible workers (alive, not draining), the cap and the
current placement, so it is table-tested without NATS. Every camera ranks the workers by a
hash of (camera, worker) (highest random weight); a camera stays where it is unless its worker
is gone or over the balanced share, and a camera that must move goes to the highest-ranked
worker with room. So a dead or drained worker's cameras are the only ones that move, and a
joining worker takes about its share (N / workers) from the others and nothing more.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Placement", "place", "rendezvous_rank", "score"]


def score(camera_id: str, worker_id: str) -> int:
    """The rendezvous weight of ``worker_id`` for ``camera_id`` (stable across processes and runs)."""
    digest = hashlib.blake2b(f"{camera_id}\x00{worker_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_rank(camera_id: str, workers: Iterable[str]) -> list[str]:
    """``workers`` by preference for ``camera_id``, best first."""
    return sorted(workers, key=lambda w: (score(camera_id, w), w), reverse=True)


@dataclass(frozen=True, slots=True)
class Placement:
    """A placement and how it differs from the one it started from.

    Attributes:
        assignment: camera id -> worker id for every placed camera.
        unplaced: cameras no worker has room for (cap x workers < cameras, or no worker).
        moved: cameras whose worker changed (placed before, on another worker now).
    """

    assignment: dict[str, str]
    unplaced: tuple[str, ...]
    moved: tuple[str, ...]

    def load(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for worker in self.assignment.values():
            out[worker] = out.get(worker, 0) + 1
        return out


def place(cameras: Iterable[str], workers: Iterable[str], cap: int, current: Mapping[str, str] | None = None) -> Placement:
    """Place ``cameras`` on ``workers`` (the eligible ones), at most ``cap`` each, moving as few as possible.

    Args:
        cameras: continuous camera ids to place.
        workers: live, non-draining worker ids.
        cap: most cameras per worker (``cluster.max_cameras_per_worker``).
        current: the placement in force (camera -> worker); entries for unknown cameras or
            workers are ignored.

    Example:
        >>> p = place(["a", "b", "c"], ["w1", "w2"], cap=2)
        >>> sorted(p.load().values()), p.unplaced
        ([1, 2], ())
    """
    if cap < 1:
        raise ValueError("cap must be at least 1")
    cams = sorted(set(cameras))
    live = sorted(set(workers))
    current = current or {}
    if not live:
        return Placement({}, tuple(cams), ())
    # the balanced share: every worker runs lo or hi cameras, ``extra`` of them hi (never above the cap)
    hi = min(cap, math.ceil(len(cams) / len(live)))
    lo = min(hi, len(cams) // len(live))
    extra = len(cams) - lo * len(live) if hi > lo else 0
    kept: dict[str, list[str]] = {w: [] for w in live}
    for cam in cams:
        holder = current.get(cam)
        if holder is not None and holder in kept:
            kept[holder].append(cam)
    at_hi = 0
    for worker, owned in kept.items():  # over the share: keep the cameras that rank this worker highest
        keep = hi if at_hi < extra or hi == lo else lo
        if len(owned) > keep:
            owned.sort(key=lambda c: (score(c, worker), c), reverse=True)
            del owned[keep:]
        at_hi += len(owned) == hi and hi > lo
    assignment = {cam: worker for worker, owned in kept.items() for cam in owned}
    load = {w: len(owned) for w, owned in kept.items()}
    unplaced: list[str] = []
    for cam in cams:
        if cam in assignment:
            continue
        for worker in rendezvous_rank(cam, live):
            if load[worker] < lo or (load[worker] < hi and at_hi < extra):
                assignment[cam] = worker
                load[worker] += 1
                at_hi += load[worker] == hi and hi > lo
                break
        else:
            unplaced.append(cam)
    moved = tuple(c for c in cams if c in current and c in assignment and current[c] != assignment[c])
    return Placement(assignment, tuple(unplaced), moved)
