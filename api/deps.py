"""The API's dependencies: one typed getter per handle a route needs.

Routes take what they use as a parameter (``orders: OrdersDep``, ``outbox: OutboxDep``, …) and
never reach into the app's state; this module is the only code that does. Each getter reads
the running :class:`~gridworker.service.Service` (built by the app's lifespan), so an app can
also be served around parts without a service by overriding getters with FastAPI's
``app.dependency_overrides`` — :meth:`CaseParts.serve` does that for the case side (the
reliability bench, tests).

Example:
    >>> from fastapi import APIRouter
    >>> router = APIRouter()
    >>> @router.get("/x")
    ... def x(orders: OrdersDep, workflow: WorkflowDep) -> None: ...
    >>> from gridworker.api import create_app
    >>> store = IncidentStore("sqlite:///:memory:")
    >>> orders = WorkOrders(store.db)
    >>> app = CaseParts.of(store, orders).serve(create_app())
    >>> app.dependency_overrides[get_orders]() is orders
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping  # cluster mode (issue 12)
from typing import Annotated, NamedTuple, Protocol, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request, status
from starlette.applications import Starlette

from gridworker.incidents import IncidentStore
from gridworker.incidents.db import Database
from gridworker.incidents.flows import FlowStore
from gridworker.delivery import Dispatcher, ForwardingConfig, build_dispatcher
from gridworker.delivery.outbox import Outbox
from gridworker.cases.workflow import Workflow
from gridworker.cases.workorders import WorkOrders
from gridworker.cases.people import People  # people, logins (issue 15)
from gridworker.cases.photos import PhotoStore  # issue 15
from gridworker.incidents.reports import ReportIntake  # issue 15
from gridworker.keystore import KeyStore
from gridworker.metrics import Metrics
from gridworker.patrol.manager import PatrolManager
from gridworker.service import Service
from gridworker.settings import LimitsConfig

from .feeds import Feeds
from .security import SecurityGuard
from .ratelimit import ClientAndTotalLimit
from .sessions import Sessions  # people's logins (issue 15)

__all__ = [
    "CaseParts",
    "DatabaseDep",
    "DispatcherDep",
    "FeedsDep",
    "FlowsDep",
    "KeysDep",
    "LimitsDep",
    "MetricsDep",
    "OrdersDep",
    "OutboxDep",
    "PatrolDep",
    "PeopleDep",
    "SessionsDep",
    "PhotosDep",
    "ReportsDep",
    "ServiceDep",
    "StoreDep",
    "Wiring",
    "WorkflowDep",
    "get_db",
    "get_dispatcher",
    "get_feeds",
    "get_flows",
    "get_keys",
    "get_limits",
    "get_metrics",
    "get_orders",
    "get_outbox",
    "get_patrol",
    "get_people",
    "get_sessions",
    "get_photos",
    "get_reports",
    "get_service",
    "get_store",
    "get_workflow",
    "limits_of",
    "running_service",
    "wiring",
]


@dataclass
class Wiring:
    """What ``create_app`` keeps on its app: the front door's policy, the server-sent event
    feeds, and the running service (None before the lifespan has built it, and in an app
    served around parts)."""

    guard: SecurityGuard = field(default_factory=SecurityGuard)
    feeds: Feeds = field(default_factory=Feeds)
    service: Service | None = None
    # people's logins (issue 15, api/sessions.py): their sessions (in the people's database), and
    # the people they are of (the service's, or the parts' of ``CaseParts.serve``; None: no one can log in)
    sessions: Sessions | None = None
    people: People | None = None
    # the public report form's limit per client address and in total (api/ratelimit.py)
    report_rate: ClientAndTotalLimit | None = None

    def install(self, app: FastAPI) -> None:
        app.state.gw = self


def wiring(app: Starlette) -> Wiring:
    """The wiring of an app made by ``create_app``.

    Raises:
        LookupError: ``app`` was not made by ``create_app``.
    """
    try:
        found = app.state.gw
    except AttributeError:
        found = None
    if not isinstance(found, Wiring):
        raise LookupError("not an app made by gridworker.api.create_app")
    return found


def running_service(app: object) -> Service | None:
    """The running service of ``app`` (an ASGI scope's ``app``); None before the lifespan has
    built it, for an app served around parts, or for an app not made by ``create_app``."""
    if not isinstance(app, Starlette):
        return None
    try:
        return wiring(app).service
    except LookupError:
        return None


# -- getters --------------------------------------------------------------------------------
_Part = TypeVar("_Part")


def _running(part: _Part | None) -> _Part:
    """``part`` of the running service; 503 when it is not wired (the service is not running)."""
    if part is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is not running")
    return part


def get_service(request: Request) -> Service:
    return _running(wiring(request.app).service)


ServiceDep = Annotated[Service, Depends(get_service)]


# -- cluster mode (issue 12): which worker runs each camera ------------------------------------
class CameraOwner(NamedTuple):
    """The worker that runs a camera now, how many continuous cameras it runs, and the camera's
    analysed fps while its stream is live there (None otherwise)."""

    worker: str
    load: int
    live_fps: float | None = None


class CameraOwners(Protocol):
    """camera id -> its :class:`CameraOwner`."""

    def owners(self) -> Mapping[str, CameraOwner]: ...


def get_camera_owners(request: Request) -> Mapping[str, CameraOwner]:
    """Cluster mode (``gridworker serve`` sets ``app.state.camera_owners``); empty otherwise."""
    board: CameraOwners | None = getattr(request.app.state, "camera_owners", None)
    return board.owners() if board is not None else {}


OwnersDep = Annotated[Mapping[str, CameraOwner], Depends(get_camera_owners)]


def get_store(service: ServiceDep) -> IncidentStore:
    return service.store


def get_db(service: ServiceDep) -> Database:
    return service.db


def get_orders(service: ServiceDep) -> WorkOrders:
    return service.workorders


def get_keys(service: ServiceDep) -> KeyStore:
    return service.keys


def get_workflow(service: ServiceDep) -> Workflow:
    return service.workflow


def get_outbox(service: ServiceDep) -> Outbox:
    return service.outbox


def get_dispatcher(service: ServiceDep) -> Dispatcher:
    return service.forwarding


def get_patrol(service: ServiceDep) -> PatrolManager:
    return service.patrol


def get_flows(service: ServiceDep) -> FlowStore:
    return service.flows


def get_metrics(service: ServiceDep) -> Metrics:
    return service.metrics


def get_reports(service: ServiceDep) -> ReportIntake:
    """Reports from people (issue 15)."""
    return service.reports


def get_photos(service: ServiceDep) -> PhotoStore:
    """Photos of cases (issue 15)."""
    return service.photos


def get_people(request: Request) -> People:
    """The people of the running service (or of the parts served); 503 without."""
    return _running(wiring(request.app).people)


def get_sessions(request: Request) -> Sessions:
    """The login sessions (beside the people); 503 without (no one can log in)."""
    return _running(wiring(request.app).sessions)


def limits_of(app: object) -> LimitsConfig:
    """The ``limits:`` section of ``app``'s running service; the defaults before the service
    exists (or for an app served around parts)."""
    service = running_service(app)
    return service.settings.limits if service is not None else LimitsConfig()


def get_limits(request: Request) -> LimitsConfig:
    """The running service's ``limits:``; the defaults without a service."""
    return limits_of(request.app)


def get_feeds(request: Request) -> Feeds:
    return wiring(request.app).feeds


StoreDep = Annotated[IncidentStore, Depends(get_store)]
DatabaseDep = Annotated[Database, Depends(get_db)]
OrdersDep = Annotated[WorkOrders, Depends(get_orders)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
WorkflowDep = Annotated[Workflow, Depends(get_workflow)]
OutboxDep = Annotated[Outbox, Depends(get_outbox)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
PatrolDep = Annotated[PatrolManager, Depends(get_patrol)]
FlowsDep = Annotated[FlowStore, Depends(get_flows)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ReportsDep = Annotated[ReportIntake, Depends(get_reports)]  # issue 15
PhotosDep = Annotated[PhotoStore, Depends(get_photos)]  # issue 15
LimitsDep = Annotated[LimitsConfig, Depends(get_limits)]
FeedsDep = Annotated[Feeds, Depends(get_feeds)]
PeopleDep = Annotated[People, Depends(get_people)]  # issue 15
SessionsDep = Annotated[Sessions, Depends(get_sessions)]


# -- an app around parts ----------------------------------------------------------------------
@dataclass(frozen=True)
class CaseParts:
    """The case side of a service without cameras: incidents, work orders and their workflow,
    the API keys, the outbox and its dispatcher. :meth:`serve` answers their routes from these parts (the
    camera, patrol, flow and health routes answer 503: there is no service).

    The dispatcher is not started here: start and stop it around the app (``with dispatcher:``).
    """

    store: IncidentStore
    orders: WorkOrders
    workflow: Workflow
    dispatcher: Dispatcher
    keys: KeyStore
    people: People | None = None  # issue 15: who can log in, who cases are assigned to

    @classmethod
    def of(
        cls, store: IncidentStore, orders: WorkOrders, dispatcher: Dispatcher | None = None, keys: KeyStore | None = None,
        people: People | None = None,
    ) -> CaseParts:
        """``dispatcher`` default: one without destinations, on an outbox of ``orders``' database
        that is not hooked to them (so no change leaves a message). ``keys`` default: the key
        store of ``orders``' database, keys required once one exists. ``people``: default none
        (no logins; cases stay with their units)."""
        if dispatcher is None:
            dispatcher = build_dispatcher(ForwardingConfig(), Outbox(orders.db, catalogue=orders.catalogue))
        keys = keys if keys is not None else KeyStore(orders.db, orders.catalogue)
        return cls(store, orders, Workflow(orders, assigner=people), dispatcher, keys, people)

    def serve(self, app: FastAPI) -> FastAPI:
        """Override ``app``'s getters with these parts; its front door uses their API keys."""
        overrides = app.dependency_overrides
        overrides[get_store] = lambda: self.store
        overrides[get_db] = lambda: self.orders.db
        overrides[get_orders] = lambda: self.orders
        overrides[get_keys] = lambda: self.keys
        overrides[get_workflow] = lambda: self.workflow
        overrides[get_outbox] = lambda: self.dispatcher.outbox
        overrides[get_dispatcher] = lambda: self.dispatcher
        wiring(app).guard.configure(server=None, keys=self.keys)
        if self.people is not None:
            wiring(app).people = self.people
            wiring(app).sessions = Sessions(self.people.db, self.people.config)
        return app
