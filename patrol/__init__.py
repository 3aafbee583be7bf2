"""One-click patrol (一键轮巡): visit hundreds of cameras in rotation and analyse every stop.

Public surface::

    CameraPatrolConfig(site_type, tags, priority)   # a camera's patrol attributes
    PatrolPlan(id, select, order, mode, keyframes, concurrency, cycles, schedule, ...)
    PatrolTarget(camera_id, url, patrol)
    select_cameras / order_cameras / plan_order      # pure selection and ordering
    PatrolRun(plan, cameras, visit_sink).start() .pause() .resume() .stop() .status()
    RevisitChecker(RevisitConfig(min_gap_s=300)).observe(...)   # two-captures parking check

See docs/patrol.md.
"""

from gridworker.vision.revisit import RevisitChecker, RevisitConfig, RevisitViolation, Sighting  # the check runs in vision/visits.py

from .config import SITE_TYPES, CameraPatrolConfig, PatrolPlan, PatrolSelection, PatrolTarget, SiteType
from .engine import CameraOutcome, CycleSummary, FailedVisit, OfflineCamera, PatrolRun, PatrolState, PatrolStatus, default_visitor
from .selection import order_cameras, plan_order, select_cameras, skip_cycles, unknown_ids

__all__ = [
    "SITE_TYPES",
    "CameraOutcome",
    "CameraPatrolConfig",
    "CycleSummary",
    "FailedVisit",
    "OfflineCamera",
    "PatrolPlan",
    "PatrolRun",
    "PatrolSelection",
    "PatrolState",
    "PatrolStatus",
    "PatrolTarget",
    "RevisitChecker",
    "RevisitConfig",
    "RevisitViolation",
    "Sighting",
    "SiteType",
    "default_visitor",
    "order_cameras",
    "plan_order",
    "select_cameras",
    "skip_cycles",
    "unknown_ids",
]
