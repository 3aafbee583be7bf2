"""One-click patrol (一键轮巡): list plans, read their progress, start/pause/resume/stop them.

Status codes: 404 no such plan; 409 pause/resume of a plan that is not running, replacing or
deleting a running plan, deleting a plan from the config file, or creating one beyond
``limits.max_patrol_plans``; 422 an invalid plan body (or one listing unknown cameras, whose id
differs from the path, or whose ``concurrency`` is over ``limits.max_patrol_concurrency``). ``start`` and ``stop`` are idempotent (200 with the status either way;
``start`` answers 202 when it started a run now).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from gridworker.patrol.config import PatrolPlan
from gridworker.patrol.engine import PatrolStatus
from gridworker.patrol.manager import PatrolConflict, PatrolNotRunning, PlanNotFound
from gridworker.patrol.selection import select_cameras
from gridworker.service import Service

from ..deps import PatrolDep, ServiceDep
from ..errors import Responses
from ..auth import OPERATE, READ, SUPERVISE
from ..schemas_patrol import PatrolPlanOut, PatrolStatusOut

router = APIRouter(prefix="/patrol", tags=["patrol"])

PlanId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="Patrol plan id")]
_NOT_FOUND: Responses = {404: {"description": "No such plan"}}
_CONFLICT: Responses = {409: {"description": "The plan is not running"}}


def _not_found(plan_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no patrol plan {plan_id!r}")


def _plan_out(service: Service, plan: PatrolPlan) -> PatrolPlanOut:
    cameras = len(select_cameras(service.patrol_targets(), plan.select))
    return PatrolPlanOut(
        plan=plan, source=service.patrol.source(plan.id), cameras=cameras, status=PatrolStatusOut.of(service.patrol.status(plan.id))
    )


@router.get("/plans", response_model=list[PatrolPlanOut], dependencies=[READ])
def list_plans(service: ServiceDep) -> list[PatrolPlanOut]:
    """Every plan with its current status."""
    return [_plan_out(service, p) for p in service.patrol.plans()]


@router.get("/plans/{plan_id}", response_model=PatrolPlanOut, responses=_NOT_FOUND, dependencies=[READ])
def get_plan(plan_id: PlanId, service: ServiceDep) -> PatrolPlanOut:
    """The plan and its progress: state, visited/total, in flight, cycle, last cycle's duration,
    ETA, failures of this cycle with reasons, offline cameras."""
    try:
        return _plan_out(service, service.patrol.plan(plan_id))
    except PlanNotFound:
        raise _not_found(plan_id) from None


@router.put(
    "/plans/{plan_id}",
    response_model=PatrolPlanOut,
    responses={
        201: {"description": "Created"},
        409: {"description": "The plan is running, or limits.max_patrol_plans plans exist"},
        422: {"description": "Invalid plan: unknown cameras, id differs from the path, concurrency over limits.max_patrol_concurrency"},
    },
    dependencies=[SUPERVISE],
)
def put_plan(plan_id: PlanId, plan: PatrolPlan, service: ServiceDep, response: Response) -> PatrolPlanOut:
    """Create or replace a plan at runtime. A plan created here is saved in the database and comes
    back after a restart; replacing a plan from the config file lasts until the restart (the
    config file is not written)."""
    if plan.id != plan_id:
        raise HTTPException(422, f"plan id {plan.id!r} does not match the path ({plan_id!r})")
    try:
        created = service.patrol.put_plan(plan)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    except PatrolConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _plan_out(service, plan)


@router.delete(
    "/plans/{plan_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_NOT_FOUND, 409: {"description": "The plan is running, or comes from the config file"}},
    dependencies=[SUPERVISE],
)
def delete_plan(plan_id: PlanId, patrol: PatrolDep) -> Response:
    """Delete a plan created through the API (also from the database). Stop it first; plans
    from the config file are removed there."""
    try:
        patrol.delete_plan(plan_id)
    except PlanNotFound:
        raise _not_found(plan_id) from None
    except PatrolConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/plans/{plan_id}/start", response_model=PatrolStatusOut, responses={202: {"description": "Started now"}, **_NOT_FOUND}, dependencies=[OPERATE])
def start_plan(plan_id: PlanId, patrol: PatrolDep, response: Response) -> PatrolStatusOut:
    """One click: start the plan. Starting a running plan changes nothing and returns its status (200)."""
    try:
        st, started = patrol.start(plan_id)
    except PlanNotFound:
        raise _not_found(plan_id) from None
    except PatrolConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    response.status_code = status.HTTP_202_ACCEPTED if started else status.HTTP_200_OK
    return PatrolStatusOut.of(st)


def _control(plan_id: str, act: Callable[[str], PatrolStatus]) -> PatrolStatusOut:
    try:
        return PatrolStatusOut.of(act(plan_id))
    except PlanNotFound:
        raise _not_found(plan_id) from None
    except PatrolNotRunning as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post("/plans/{plan_id}/pause", response_model=PatrolStatusOut, responses={**_NOT_FOUND, **_CONFLICT}, dependencies=[OPERATE])
def pause_plan(plan_id: PlanId, patrol: PatrolDep) -> PatrolStatusOut:
    """Start no new visits (those in flight finish). Idempotent while the run lives; 409 if it does not."""
    return _control(plan_id, patrol.pause)


@router.post("/plans/{plan_id}/resume", response_model=PatrolStatusOut, responses={**_NOT_FOUND, **_CONFLICT}, dependencies=[OPERATE])
def resume_plan(plan_id: PlanId, patrol: PatrolDep) -> PatrolStatusOut:
    """Undo pause. Idempotent while the run lives; 409 if it does not."""
    return _control(plan_id, patrol.resume)


@router.post("/plans/{plan_id}/stop", response_model=PatrolStatusOut, responses=_NOT_FOUND, dependencies=[OPERATE])
def stop_plan(plan_id: PlanId, patrol: PatrolDep) -> PatrolStatusOut:
    """Stop the plan (visits in flight are abandoned). Idempotent."""
    return _control(plan_id, patrol.stop)
