"""Select and order the cameras of a patrol plan: pure functions, no clock, no network.

Example:
    >>> cams = [PatrolTarget("a", "rtsp://h/a", CameraPatrolConfig(site_type="school", priority=9)),
    ...         PatrolTarget("b", "rtsp://h/b", CameraPatrolConfig(site_type="street", priority=1))]
    >>> plan = PatrolPlan(id="p", select={"site_types": ["school"]})
    >>> [c.camera_id for c in plan_order(cams, plan, cycle=1)]
    ['a']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from .config import CameraPatrolConfig, PatrolPlan, PatrolSelection, PatrolTarget

__all__ = [
    "RETRY_BACKOFF_MAX_S",
    "CameraPatrolConfig",
    "interleave_site_types",
    "order_cameras",
    "plan_order",
    "retry_delay_s",
    "select_cameras",
    "skip_cycles",
]

RETRY_BACKOFF_MAX_S = 300.0
"""Cap of an offline camera's retry back-off in seconds (:func:`retry_delay_s`)."""


def _matches(target: PatrolTarget, selection: PatrolSelection) -> bool:
    attrs = target.patrol
    if not attrs.enabled:
        return False
    if selection.is_empty:
        return True
    if not (selection.site_types or selection.tags):
        return False  # only an explicit list was given
    if selection.site_types and attrs.site_type not in selection.site_types:
        return False
    if selection.tags:
        have = set(attrs.tags)
        want = set(selection.tags)
        if selection.tags_mode == "all" and not want <= have:
            return False
        if selection.tags_mode == "any" and not want & have:
            return False
    return True


def select_cameras(cameras: Sequence[PatrolTarget], selection: PatrolSelection) -> list[PatrolTarget]:
    """The cameras ``selection`` picks, in the input order, each once.

    Explicitly listed ids are taken even when their patrol attributes are disabled; ids
    that match no camera are ignored (see :func:`unknown_ids`).
    """
    listed = set(selection.camera_ids)
    excluded = set(selection.exclude)
    seen: set[str] = set()
    out: list[PatrolTarget] = []
    for cam in cameras:
        if cam.camera_id in seen or cam.camera_id in excluded:
            continue
        if cam.camera_id in listed or _matches(cam, selection):
            seen.add(cam.camera_id)
            out.append(cam)
    return out


def unknown_ids(cameras: Sequence[PatrolTarget], selection: PatrolSelection) -> list[str]:
    """Listed camera ids that no camera has (to report a stale plan)."""
    known = {c.camera_id for c in cameras}
    return [i for i in selection.camera_ids if i not in known]


def interleave_site_types(cameras: Sequence[PatrolTarget]) -> list[PatrolTarget]:
    """Round-robin over site types: one school, one hospital, one street, one school, ...

    Site types take turns in order of first appearance; within a type the input order is kept.
    """
    groups: dict[str, list[PatrolTarget]] = defaultdict(list)
    for cam in cameras:
        groups[cam.patrol.site_type].append(cam)
    queues = list(groups.values())
    out: list[PatrolTarget] = []
    depth = max((len(q) for q in queues), default=0)
    for i in range(depth):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def order_cameras(cameras: Sequence[PatrolTarget], plan: PatrolPlan, cycle: int = 1) -> list[PatrolTarget]:
    """The visiting order of one cycle (``cycle`` counts from 1).

    ``order="priority"``: priority tiers from 9 down to 0; inside a tier the cameras (sorted by
    id) are interleaved by site type, then rotated by ``cycle - 1`` positions so that a cycle
    cut short (a time window closing, a stop) does not always miss the same cameras.
    ``order="listed"``: the plan's ``camera_ids`` order, then the others by id.
    """
    if plan.order == "listed":
        rank = {cid: i for i, cid in enumerate(plan.select.camera_ids)}
        return sorted(cameras, key=lambda c: (rank.get(c.camera_id, len(rank)), c.camera_id))
    tiers: dict[int, list[PatrolTarget]] = defaultdict(list)
    for cam in cameras:
        tiers[cam.patrol.priority].append(cam)
    out: list[PatrolTarget] = []
    for priority in sorted(tiers, reverse=True):
        tier = interleave_site_types(sorted(tiers[priority], key=lambda c: c.camera_id))
        shift = (cycle - 1) % len(tier)
        out.extend(tier[shift:] + tier[:shift])
    return out


def plan_order(cameras: Sequence[PatrolTarget], plan: PatrolPlan, cycle: int = 1) -> list[PatrolTarget]:
    """:func:`select_cameras` then :func:`order_cameras`."""
    return order_cameras(select_cameras(cameras, plan.select), plan, cycle)


def skip_cycles(consecutive_failures: int, max_skip: int) -> int:
    """Cycles a camera sits out after ``consecutive_failures`` failed visits in a row.

    0 after one failure (retried next cycle), then 1, 3, 7, ... capped at ``max_skip``.

    Example:
        >>> [skip_cycles(k, 8) for k in range(6)]
        [0, 0, 1, 3, 7, 8]
    """
    if consecutive_failures <= 1:
        return 0
    return min(max_skip, (1 << min(consecutive_failures - 1, 30)) - 1)


def retry_delay_s(consecutive_failures: int, base_s: float, max_s: float = RETRY_BACKOFF_MAX_S) -> float:
    """Least seconds between a camera's failed visit and its next try, after
    ``consecutive_failures`` failed visits in a row.

    0 after one failure (retried next cycle), then ``base_s`` (the plan's ``open_timeout_s``)
    doubling with every further failure, capped at ``max_s``. The engine retries a camera once
    both this time has passed and its :func:`skip_cycles` are sat out, so a plan whose cycles
    take microseconds (every camera dead) still retries each camera at most this often.

    Example:
        >>> [retry_delay_s(k, 5.0) for k in range(1, 10)]
        [0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    """
    if consecutive_failures <= 1:
        return 0.0
    return min(max_s, base_s * (1 << min(consecutive_failures - 2, 30)))
