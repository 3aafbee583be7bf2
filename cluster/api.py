"""``/cluster``: the workers and their load, which worker owns each camera, draining a worker."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from gridworker.api.auth import ADMINISTER, READ
from gridworker.cases.workflow import Actor

from .config import WORKER_ID_PATTERN
from .membership import WorkerInfo
from .serve import ClusterService

__all__ = ["router"]

router = APIRouter(prefix="/cluster", tags=["cluster"])

WorkerId = Annotated[str, Path(pattern=WORKER_ID_PATTERN, description="Worker id")]


def get_cluster(request: Request) -> ClusterService:
    cluster = getattr(request.app.state, "cluster", None)
    if not isinstance(cluster, ClusterService):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "not running in cluster mode (gridworker serve)")
    return cluster


ClusterDep = Annotated[ClusterService, Depends(get_cluster)]


class CameraPlacementOut(BaseModel):
    camera_id: str
    assigned_to: str | None = Field(description="The worker the placement gives the camera to.")
    owner: str | None = Field(description="The worker holding its lease now (runs it); None while nobody does.")
    token: int | None = Field(description="The owner's fencing token (the lease claim's revision).")


class WorkerOut(BaseModel):
    worker: str
    draining: bool
    alive: bool = True
    cameras: list[str]
    load: int = Field(description="Continuous cameras it runs.")
    capacity: int
    fps: float
    visits: int
    health_url: str | None


class ClusterOut(BaseModel):
    leader: bool = Field(description="This case service is the placement leader.")
    workers: list[WorkerOut]
    cameras: list[CameraPlacementOut]


def _worker_out(info: WorkerInfo, drained: set[str]) -> WorkerOut:
    return WorkerOut(
        worker=info.worker, draining=info.draining or info.worker in drained, cameras=info.cameras, load=len(info.cameras),
        capacity=info.capacity, fps=info.fps, visits=info.visits, health_url=info.health_url,
    )


@router.get("", summary="Workers, their load, and which worker owns each camera")
def cluster_view(cluster: ClusterDep, user: Annotated[Actor, READ]) -> ClusterOut:
    view = cluster.view()
    drained = set(view.drained)
    cams = sorted({*view.assignment, *view.owners, *(v.config.id for v in cluster.service.cameras() if v.config.watch == "continuous")})
    return ClusterOut(
        leader=view.leader,
        workers=[_worker_out(w, drained) for w in view.workers],
        cameras=[
            CameraPlacementOut(
                camera_id=c, assigned_to=view.assignment.get(c),
                owner=view.owners[c].worker if c in view.owners else None, token=view.owners[c].token if c in view.owners else None,
            )
            for c in cams
        ],
    )


@router.post("/workers/{worker_id}/drain", status_code=202, summary="Move a worker's cameras to the others")
def drain_worker(worker_id: WorkerId, cluster: ClusterDep, user: Annotated[Actor, ADMINISTER]) -> dict[str, str]:
    cluster.drain(worker_id, True)
    return {"worker": worker_id, "draining": "yes"}


@router.delete("/workers/{worker_id}/drain", summary="Let a drained worker take cameras again")
def undrain_worker(worker_id: WorkerId, cluster: ClusterDep, user: Annotated[Actor, ADMINISTER]) -> dict[str, str]:
    cluster.drain(worker_id, False)
    return {"worker": worker_id, "draining": "no"}
