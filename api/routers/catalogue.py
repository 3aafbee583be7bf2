"""``GET /catalogue``: the incident catalogue in use (levels, units, types, routing;
docs/workorders.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gridworker.cases.workflow import Actor

from ..auth import ANY_ROLE, require
from ..deps import OrdersDep

router = APIRouter(tags=["work orders"])
Reader = Annotated[Actor, Depends(require(*ANY_ROLE))]


@router.get("/catalogue")
def get_catalogue(user: Reader, orders: OrdersDep) -> dict[str, Any]:
    """The incident catalogue in use: levels, units, type defaults, types and routing."""
    catalogue: dict[str, Any] = orders.catalogue.model_dump(mode="json")
    return catalogue
