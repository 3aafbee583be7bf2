"""Response models of the patrol API (``/patrol/plans``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import FailedVisit, OfflineCamera, PatrolStatus
from gridworker.streams.health import GENERIC_ERRORS

PUBLIC_TEXTS: dict[str, str] = {
    "open_failed": GENERIC_ERRORS["open_failed"],
    "open_timeout": GENERIC_ERRORS["timeout"],
    "keyframe_timeout": GENERIC_ERRORS["timeout"],
    "ended": GENERIC_ERRORS["ended"],
    "stopped": "the visit was stopped",
    "error": GENERIC_ERRORS["error"],
}
"""What a non-admin reads of a failed visit, per ``error_kind`` (every
:data:`~gridworker.streams.glance.GlanceErrorKind`); any other kind, or none, reads as ``"error"``."""


def public_kind(error_kind: str | None) -> str:
    """``error_kind`` if it is one of :data:`PUBLIC_TEXTS`, else ``"error"``."""
    return error_kind if error_kind is not None and error_kind in PUBLIC_TEXTS else "error"


def public_text(error_kind: str | None) -> str:
    """What a non-admin reads for a failure of kind ``error_kind`` (never the reason's text, which
    names hosts, paths and server answers, docs/security.md): the kind and its generic text.

    Example::

        >>> public_text("open_failed"), public_text(None)
        ('open_failed: cannot open the stream', 'error: the stream failed')
    """
    kind = public_kind(error_kind)
    return f"{kind}: {PUBLIC_TEXTS[kind]}"


_Failure = TypeVar("_Failure", FailedVisit, OfflineCamera)


def _public(failure: _Failure) -> _Failure:
    """``failure`` with its reason replaced by the generic text of its kind (:func:`public_text`)."""
    return replace(failure, reason=public_text(failure.error_kind), error_kind=public_kind(failure.error_kind))


def _public_status(st: PatrolStatus) -> PatrolStatus:
    """``st`` with every failure reason replaced by its kind's generic text (:func:`public_text`)."""
    last = st.last_cycle
    return replace(
        st,
        failed_this_cycle=tuple(_public(v) for v in st.failed_this_cycle),
        offline=tuple(_public(o) for o in st.offline),
        last_cycle=None if last is None else replace(last, failed_visits=tuple(_public(v) for v in last.failed_visits)),
    )


def _rounded(digits: int) -> AfterValidator:
    return AfterValidator(lambda value: round(value, digits))


class _Out(BaseModel):
    """Read from the patrol engine's dataclasses by attribute (its times, Unix seconds, become UTC
    datetimes; its state enum its value)."""

    model_config = ConfigDict(from_attributes=True)


_REASON = (
    "Why it failed: admins read it in full (it names hosts, paths and server answers), other roles "
    "'<error_kind>: <generic text>' chosen from error_kind."
)
_KIND = (
    "The failure's kind: open_failed, open_timeout, keyframe_timeout, ended, stopped or error "
    "(null when not known; other roles read any kind but these, and null, as error)."
)


class FailedVisitOut(_Out):
    camera_id: str
    reason: str = Field(description=_REASON)
    error_kind: str | None = Field(None, description=_KIND)


class OfflineCameraOut(_Out):
    camera_id: str
    reason: str = Field(description=_REASON)
    error_kind: str | None = Field(None, description=_KIND)
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
        """The status as served; without ``detail`` (every caller but an admin) a failure's reason
        is the generic text of its ``error_kind`` (:func:`public_text`), as ``/cameras`` serves ``last_error``."""
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
