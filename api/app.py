"""``create_app``: the FastAPI application around one ``Service``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gridworker.service import Service

from .routers import cameras, flows, health, incidents
from .routers import workorders
from .routers import events, forwarding
from .routers import patrol, signals, types
from .routers.console import mount_console


def create_app(service_factory: Callable[[], Service]) -> FastAPI:
    """Build the app; ``service_factory`` runs in the lifespan (the model loads there, not at import).

    Example:
        >>> app = create_app(lambda: Service(settings, detector))  # doctest: +SKIP
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = service_factory()
        app.state.service = service
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="gridworker",
        description="AI grid worker: cameras in, graded incidents out.",
        version="0.1.0",
        lifespan=lifespan,
    )
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
    return app
