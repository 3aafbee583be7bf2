"""``create_app``: the FastAPI application around one ``Service``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError

from gridworker.service import Service

from .routers import cameras, flows, health, incidents
from .routers import catalogue, keys, stats, workorders
from .routers import events, forwarding
from .routers import patrol, signals, types
from .routers import devices  # IoT devices (issue 14)
from .routers import people  # people, logins, dispatch to a person (issue 15)
from .routers import mobile, reports  # reports from people, the phone page (issue 15)
from .routers import map as map_view  # the console's map (issue 15)
from .routers.console import mount_console
from .deps import Wiring
from .sessions import Sessions  # people's logins (issue 15)
from .feeds import Feeds
from .security import SecurityMiddleware
from .limits import install_body_limit
from .errors import validation_error

# every router, in the order the OpenAPI document lists them (and routes are matched)
ROUTERS: tuple[APIRouter, ...] = tuple(
    m.router for m in (health, cameras, incidents, signals, types, workorders, stats, catalogue, keys, events, forwarding, flows, patrol, devices)
) + (people.router, reports.router, mobile.router, map_view.router)  # issue 15: people, reports from people, the phone page, the map  # devices: IoT (issue 14)


def create_app(service_factory: Callable[[], Service] | None = None, *, feeds: Feeds | None = None) -> FastAPI:
    """Build the app; ``service_factory`` runs in the lifespan (the model loads there, not at
    import), which starts the service and stops it at shutdown. ``feeds``: the server-sent
    event feeds (default: ``Feeds()``, see api/feeds.py), closed at shutdown.

    Without a factory the app has no service: its routes answer 503 unless their getters
    (api/deps.py) are overridden — :class:`~gridworker.api.deps.CaseParts` serves the case
    routes from parts that way; the OpenAPI document needs no service either.

    Example::

        app = create_app(lambda: Service(settings, detector))   # the service starts with the app
    """

    # the front door starts with the strictest policy, until the service (its settings, its keys) exists
    wired = Wiring(feeds=feeds if feeds is not None else Feeds())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = service_factory() if service_factory is not None else None
        if service is not None:
            wired.service = service
            wired.guard.configure(server=service.settings.server, keys=service.keys, tile_origin=service.settings.console.map.tile_origin())
            wired.people, wired.sessions = service.people, Sessions(service.db, service.settings.people)  # people's logins (issue 15), kept in the database
            service.start()
        try:
            yield
        finally:
            await wired.feeds.close()  # the shared SSE pollers (api/feeds.py)
            if service is not None:
                service.stop()

    app = FastAPI(
        title="gridworker",
        description="AI grid worker: cameras in, graded incidents out.",
        version="0.1.0",
        lifespan=lifespan,
    )
    wired.install(app)
    app.add_exception_handler(RequestValidationError, validation_error)  # NaN/Infinity echoed: still a 422
    for router in ROUTERS:
        app.include_router(router)
    mount_console(app)  # /auth/me, /console/events, the console's files at /console/, / → /console/
    reports.mount_report_page(app)  # the residents' page at /report/ (issue 15)
    mobile.mount_mobile(app)  # the phone page at /m/ (issue 15)
    # Middleware: the one added LAST runs FIRST. Host/loopback/origin checks and the security
    # headers (api/security.py) go here; the request-body cap must be added after this line so
    # that it is outermost and refuses a huge body before anything reads it.
    app.add_middleware(SecurityMiddleware, guard=wired.guard)
    install_body_limit(app)  # outermost: 413 for a body over limits.max_body_bytes, before anything reads it
    return app
