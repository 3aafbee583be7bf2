"""One-click patrol (一键轮巡): list plans, read their progress, start/pause/resume/stop them.

Status codes: 404 no such plan; 409 pause/resume of a plan that is not running, replacing or
deleting a running plan, deleting a plan from the config file, or creating one beyond
``limits.max_patrol_plans``; 422 an invalid plan body (or one listing unknown cameras, whose id
differs from the path, whose ``concurrency`` is over ``limits.max_patrol_concurrency``, or whose
id starts with ``iot-``, the prefix reserved for the IoT linkage's watches). ``start`` and ``stop``
are idempotent (200 with the status either way; ``start`` answers 202 when it started a run now).

Failure reasons in a status (``failed_this_cycle``, ``offline``, ``last_cycle``) name hosts, paths
and server answers: admins read them in full, every other role the generic text of the failure's
``error_kind`` (:func:`~gridworker.api.schemas_patrol.public_text`; the reason's text is never
read), as ``/cameras`` serves ``last_error``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from gridworker.cases.workflow import ADMIN, Actor
from gridworker.iot.linkage import PLAN_PREFIX
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


Reader = Annotated[Actor, READ]
Operator = Annotated[Actor, OPERATE]
Supervisor = Annotated[Actor, SUPERVISE]


def _detail(user: Actor) -> bool:
    """Whether the caller reads failure reasons in full (hosts, paths, server answers): admins only."""
    return user.role == ADMIN


def _plan_out(service: Service, plan: PatrolPlan, detail: bool) -> PatrolPlanOut:
    """Raises PlanNotFound when the plan was deleted meanwhile."""
    cameras = len(select_cameras(service.patrol_targets(), plan.select))
    st = PatrolStatusOut.of(service.patrol.status(plan.id), detail=detail)
    return PatrolPlanOut(plan=plan, source=service.patrol.source(plan.id), cameras=cameras, status=st)


@router.get("/plans", response_model=list[PatrolPlanOut])
def list_plans(service: ServiceDep, user: Reader) -> list[PatrolPlanOut]:
    """Every plan with its current status (a plan deleted while the list is made is left out:
    the IoT linkage deletes its ``iot-*`` watch plans when they are done)."""
    out = []
    for plan in service.patrol.plans():
        try:
            out.append(_plan_out(service, plan, _detail(user)))
        except PlanNotFound:
            continue
    return out


@router.get("/plans/{plan_id}", response_model=PatrolPlanOut, responses=_NOT_FOUND)
def get_plan(plan_id: PlanId, service: ServiceDep, user: Reader) -> PatrolPlanOut:
    """The plan and its progress: state, visited/total, in flight, cycle, last cycle's duration,
    ETA, failures of this cycle with reasons, offline cameras."""
    try:
        return _plan_out(service, service.patrol.plan(plan_id), _detail(user))
    except PlanNotFound:
        raise _not_found(plan_id) from None


@router.put(
    "/plans/{plan_id}",
    response_model=PatrolPlanOut,
    responses={
        201: {"description": "Created"},
        409: {"description": "The plan is running, or limits.max_patrol_plans plans exist"},
        422: {
            "description": "Invalid plan: unknown cameras, id differs from the path, concurrency over "
            "limits.max_patrol_concurrency, id starting with the reserved prefix iot-"
        },
    },
)
def put_plan(plan_id: PlanId, plan: PatrolPlan, service: ServiceDep, response: Response, user: Supervisor) -> PatrolPlanOut:
    """Create or replace a plan at runtime. A plan created here is saved in the database and comes
    back after a restart; replacing a plan from the config file lasts until the restart (the
    config file is not written). Ids starting with ``iot-`` are the IoT linkage's (422)."""
    if plan.id != plan_id:
        raise HTTPException(422, f"plan id {plan.id!r} does not match the path ({plan_id!r})")
    if plan_id.startswith(PLAN_PREFIX):
        raise HTTPException(422, f"plan ids starting with {PLAN_PREFIX!r} are reserved for the IoT linkage's watches")
    try:
        created = service.patrol.put_plan(plan)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    except PatrolConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    try:
        return _plan_out(service, plan, _detail(user))
    except PlanNotFound:  # deleted right after it was made
        raise _not_found(plan_id) from None


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


@router.post("/plans/{plan_id}/start", response_model=PatrolStatusOut, responses={202: {"description": "Started now"}, **_NOT_FOUND})
def start_plan(plan_id: PlanId, patrol: PatrolDep, response: Response, user: Operator) -> PatrolStatusOut:
    """One click: start the plan. Starting a running plan changes nothing and returns its status (200)."""
    try:
        st, started = patrol.start(plan_id)
    except PlanNotFound:
        raise _not_found(plan_id) from None
    except PatrolConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    response.status_code = status.HTTP_202_ACCEPTED if started else status.HTTP_200_OK
    return PatrolStatusOut.of(st, detail=_detail(user))


def _control(plan_id: str, act: Callable[[str], PatrolStatus], user: Actor) -> PatrolStatusOut:
    try:
        return PatrolStatusOut.of(act(plan_id), detail=_detail(user))
    except PlanNotFound:
        raise _not_found(plan_id) from None
    except PatrolNotRunning as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.post("/plans/{plan_id}/pause", response_model=PatrolStatusOut, responses={**_NOT_FOUND, **_CONFLICT})
def pause_plan(plan_id: PlanId, patrol: PatrolDep, user: Operator) -> PatrolStatusOut:
    """Start no new visits (those in flight finish). Idempotent while the run lives; 409 if it does not."""
    return _control(plan_id, patrol.pause, user)


@router.post("/plans/{plan_id}/resume", response_model=PatrolStatusOut, responses={**_NOT_FOUND, **_CONFLICT})
def resume_plan(plan_id: PlanId, patrol: PatrolDep, user: Operator) -> PatrolStatusOut:
    """Undo pause. Idempotent while the run lives; 409 if it does not."""
    return _control(plan_id, patrol.resume, user)


@router.post("/plans/{plan_id}/stop", response_model=PatrolStatusOut, responses=_NOT_FOUND)
def stop_plan(plan_id: PlanId, patrol: PatrolDep, user: Operator) -> PatrolStatusOut:
    """Stop the plan (visits in flight are abandoned). Idempotent."""
    return _control(plan_id, patrol.stop, user)
