"""``create_app``: the FastAPI application around one ``Service``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from gridworker.service import Service

from .routers import cameras, flows, health, incidents
from .routers import workorders
from .routers import events, forwarding
from .routers import patrol, signals, types
from .routers.console import mount_console
from .security import SecurityGuard, SecurityMiddleware
from .feeds import close_feeds
from .limits import install_body_limit
from .errors import validation_error


def create_app(service_factory: Callable[[], Service]) -> FastAPI:
    """Build the app; ``service_factory`` runs in the lifespan (the model loads there, not at import).

    Example:
        >>> app = create_app(lambda: Service(settings, detector))  # doctest: +SKIP
    """

    guard = SecurityGuard()  # the strictest policy until the service (its settings, its keys) exists

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = service_factory()
        app.state.service = service
        guard.configure(service)
        service.start()
        try:
            yield
        finally:
            await close_feeds(app)  # the shared SSE pollers (api/feeds.py)
            service.stop()

    app = FastAPI(
        title="gridworker",
        description="AI grid worker: cameras in, graded incidents out.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, validation_error)  # NaN/Infinity echoed: still a 422
    app.include_router(health.router)
    app.include_router(cameras.router)
    app.include_router(incidents.router)
    app.include_router(signals.router)
    app.include_router(types.router)
    app.include_router(workorders.router)
    app.include_router(events.router)
    app.include_router(forwarding.router)
    app.include_router(flows.router)
    app.include_router(patrol.router)
    mount_console(app)  # /auth/me, /console/events, the console's files at /console/, / → /console/
    # Middleware: the one added LAST runs FIRST. Host/loopback/origin checks and the security
    # headers (api/security.py) go here; the request-body cap must be added after this line so
    # that it is outermost and refuses a huge body before anything reads it.
    app.add_middleware(SecurityMiddleware, guard=guard)
    install_body_limit(app)  # outermost: 413 for a body over limits.max_body_bytes, before anything reads it
    return app
