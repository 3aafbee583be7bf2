"""Typed dependency getters: routes receive services, never reach for globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gridworker.incidents import IncidentStore
from gridworker.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def get_store(request: Request) -> IncidentStore:
    return request.app.state.service.store  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(get_service)]
StoreDep = Annotated[IncidentStore, Depends(get_store)]
