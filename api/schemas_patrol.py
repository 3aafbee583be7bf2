"""Response models of the patrol API (``/patrol/plans``)."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, Field

from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import PatrolStatus


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


class FailedVisitOut(BaseModel):
    camera_id: str
    reason: str


class OfflineCameraOut(BaseModel):
    camera_id: str
    reason: str
    failures: int = Field(description="Failed visits in a row.")
    since: datetime | None
    retry_cycle: int = Field(description="The cycle in which the camera is tried again.")


class CycleSummaryOut(BaseModel):
    cycle: int
    total: int
    ok: int
    failed: int
    skipped: int
    duration_s: float
    failed_visits: list[FailedVisitOut]


class PatrolStatusOut(BaseModel):
    plan_id: str
    state: str = Field(description="idle, running, paused, waiting, stopping, stopped or finished.")
    cycle: int = Field(description="The current (or last) cycle, from 1; 0 before the first.")
    cycles: int = Field(description="Cycles the plan runs; 0 = until stopped.")
    completed_cycles: int
    total: int = Field(description="Cameras in the current cycle.")
    visited: int = Field(description="Visits of the current cycle that ended (good or failed).")
    ok: int
    failed: int
    skipped: int = Field(description="Offline cameras sitting this cycle out (retry backoff).")
    progress: float = Field(description="(visited + skipped) / total.")
    in_flight: list[str] = Field(description="Cameras being visited now.")
    started_at: datetime | None
    cycle_started_at: datetime | None
    last_cycle_s: float | None = Field(description="Duration of the last finished cycle.")
    eta_s: float | None = Field(description="Estimated seconds until the current cycle ends.")
    visits_total: int
    failed_this_cycle: list[FailedVisitOut]
    offline: list[OfflineCameraOut]
    last_cycle: CycleSummaryOut | None

    @classmethod
    def of(cls, st: PatrolStatus) -> PatrolStatusOut:
        last = st.last_cycle
        return cls(
            plan_id=st.plan_id,
            state=st.state.value,
            cycle=st.cycle,
            cycles=st.cycles,
            completed_cycles=st.completed_cycles,
            total=st.total,
            visited=st.visited,
            ok=st.ok,
            failed=st.failed,
            skipped=st.skipped,
            progress=round(st.progress, 4),
            in_flight=list(st.in_flight),
            started_at=_dt(st.started_at),
            cycle_started_at=_dt(st.cycle_started_at),
            last_cycle_s=None if st.last_cycle_s is None else round(st.last_cycle_s, 3),
            eta_s=None if st.eta_s is None else round(st.eta_s, 1),
            visits_total=st.visits_total,
            failed_this_cycle=[FailedVisitOut(camera_id=f.camera_id, reason=f.reason) for f in st.failed_this_cycle],
            offline=[
                OfflineCameraOut(camera_id=o.camera_id, reason=o.reason, failures=o.failures, since=_dt(o.since), retry_cycle=o.retry_cycle)
                for o in st.offline
            ],
            last_cycle=None
            if last is None
            else CycleSummaryOut(
                cycle=last.cycle,
                total=last.total,
                ok=last.ok,
                failed=last.failed,
                skipped=last.skipped,
                duration_s=round(last.duration_s, 3),
                failed_visits=[FailedVisitOut(camera_id=f.camera_id, reason=f.reason) for f in last.failed_visits],
            ),
        )


class PatrolPlanOut(BaseModel):
    plan: PatrolPlan
    source: str = Field(
        "config",
        description="config: from the config file (cannot be deleted; a PUT lasts until restart); "
        "api: created through the API (saved, survives a restart, can be deleted).",
    )
    cameras: int = Field(description="Cameras the plan selects now.")
    status: PatrolStatusOut
