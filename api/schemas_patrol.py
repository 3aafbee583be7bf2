"""Response models of the patrol API (``/patrol/plans``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import FailedVisit, PatrolStatus
from gridworker.streams.health import GENERIC_ERRORS

_PUBLIC_REASONS: dict[str, str] = {
    "open_failed": GENERIC_ERRORS["open_failed"],
    "open_timeout": GENERIC_ERRORS["timeout"],
    "keyframe_timeout": GENERIC_ERRORS["timeout"],
    "ended": GENERIC_ERRORS["ended"],
    "error": GENERIC_ERRORS["error"],
}


def public_reason(reason: str) -> str:
    """A failed visit's reason (``"<error kind>: <detail>"``) without its detail, which names hosts,
    paths and server answers (docs/security.md): the kind and its generic text, for non-admins.

    Example::

        >>> public_reason("open_failed: cannot open rtsp://***@10.0.0.7/1: ConnectionRefusedError")
        'open_failed: cannot open the stream'
    """
    kind = reason.split(":", 1)[0].strip()
    if kind not in _PUBLIC_REASONS:
        kind = "error"
    return f"{kind}: {_PUBLIC_REASONS[kind]}"


def _public_visits(visits: Iterable[FailedVisit]) -> tuple[FailedVisit, ...]:
    return tuple(replace(v, reason=public_reason(v.reason)) for v in visits)


def _public_status(st: PatrolStatus) -> PatrolStatus:
    """``st`` with every failure reason cut to its kind (:func:`public_reason`)."""
    last = st.last_cycle
    return replace(
        st,
        failed_this_cycle=_public_visits(st.failed_this_cycle),
        offline=tuple(replace(o, reason=public_reason(o.reason)) for o in st.offline),
        last_cycle=None if last is None else replace(last, failed_visits=_public_visits(last.failed_visits)),
    )


def _rounded(digits: int) -> AfterValidator:
    return AfterValidator(lambda value: round(value, digits))


class _Out(BaseModel):
    """Read from the patrol engine's dataclasses by attribute (its times, Unix seconds, become UTC
    datetimes; its state enum its value)."""

    model_config = ConfigDict(from_attributes=True)


_REASON = "Why it failed, '<kind>: <detail>'; only admins read the detail, other roles the kind's generic text."


class FailedVisitOut(_Out):
    camera_id: str
    reason: str = Field(description=_REASON)


class OfflineCameraOut(_Out):
    camera_id: str
    reason: str = Field(description=_REASON)
    failures: int = Field(description="Failed visits in a row.")
    since: datetime | None
    retry_cycle: int = Field(description="The cycle in which the camera is tried again.")


class CycleSummaryOut(_Out):
    cycle: int
    total: int
    ok: int
    failed: int
    skipped: int
    duration_s: Annotated[float, _rounded(3)]
    failed_visits: list[FailedVisitOut]


class PatrolStatusOut(_Out):
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
    progress: Annotated[float, _rounded(4)] = Field(description="(visited + skipped) / total.")
    in_flight: list[str] = Field(description="Cameras being visited now.")
    concurrency_limit: int = Field(
        0, description="Visits allowed in flight now: the plan's concurrency, or the adaptive controller's current limit."
    )
    started_at: datetime | None
    cycle_started_at: datetime | None
    last_cycle_s: Annotated[float, _rounded(3)] | None = Field(description="Duration of the last finished cycle.")
    eta_s: Annotated[float, _rounded(1)] | None = Field(description="Estimated seconds until the current cycle ends.")
    visits_total: int
    failed_this_cycle: list[FailedVisitOut]
    offline: list[OfflineCameraOut]
    last_cycle: CycleSummaryOut | None

    @classmethod
    def of(cls, st: PatrolStatus, *, detail: bool) -> PatrolStatusOut:
        """The status as served; without ``detail`` (every caller but an admin) failure reasons
        carry only their kind (:func:`public_reason`), as ``/cameras`` serves ``last_error``."""
        return cls.model_validate(st if detail else _public_status(st))


class PatrolPlanOut(BaseModel):
    plan: PatrolPlan
    source: str = Field(
        "config",
        description="config: from the config file (cannot be deleted; a PUT lasts until restart); "
        "api: created through the API (saved, survives a restart, can be deleted).",
    )
    cameras: int = Field(description="Cameras the plan selects now.")
    status: PatrolStatusOut
