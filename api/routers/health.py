from __future__ import annotations

from fastapi import APIRouter, Response

from ..deps import MetricsDep, ServiceDep
from ..schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health(service: ServiceDep) -> HealthOut:
    views = service.cameras()
    continuous = [v for v in views if not v.patrol_only]
    live = sum(1 for v in continuous if v.health.state.value == "live")
    reasons = []
    detector_problem = service.detector_health().reason  # batches failing in the model
    if detector_problem:
        reasons.append(detector_problem)
    not_started = len(service.registry.not_started())  # saved cameras the models cannot take (a count: /health is public)
    if not_started:
        reasons.append(f"{not_started} saved camera(s) not started (see the log)")
    return HealthOut(
        status="ok" if service.started and live == len(continuous) and not reasons else "degraded",
        cameras=len(views),
        cameras_live=live,
        cameras_patrol_only=len(views) - len(continuous),
        detector=type(service.detector).__name__,
        open_incidents=service.incidents.open_count(),
        reasons=reasons,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
