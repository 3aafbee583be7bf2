"""``GET /incident-types``: every incident type this service can open."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gridworker.vision.config import ClassEventRuleConfig
from gridworker.vision.rules import incident_kinds

from ..deps import ServiceDep
from ..auth import ANYONE

router = APIRouter(tags=["incident types"])


class IncidentTypeOut(BaseModel):
    code: str = Field(description="The incident's ``type`` field.")
    name_zh: str
    name_en: str
    category: Literal["traffic", "street_order", "city_appearance", "public_safety"]
    source: Literal["builtin", "class_event"] = Field(description="A built-in rule, or a model-class event configured on a camera.")
    cameras: list[str] = Field(default_factory=list, description="Cameras whose config defines it (class events only).")


@router.get("/incident-types", response_model=list[IncidentTypeOut], dependencies=[ANYONE])
def list_incident_types(service: ServiceDep) -> list[IncidentTypeOut]:
    """The built-in rules' incident types, then the class-event types configured on the
    cameras (each code once; the first camera's names win if two disagree)."""
    out = [IncidentTypeOut(code=k.code, name_zh=k.name_zh, name_en=k.name_en, category=k.category, source="builtin") for k in incident_kinds()]
    builtin = {t.code for t in out}
    configured: dict[str, IncidentTypeOut] = {}
    for view in sorted(service.cameras(), key=lambda v: v.config.id):
        for zone in view.config.zones:
            for rule in zone.rules:
                if not isinstance(rule, ClassEventRuleConfig) or rule.incident.code in builtin:
                    continue
                inc = rule.incident
                item = configured.setdefault(
                    inc.code,
                    IncidentTypeOut(code=inc.code, name_zh=inc.name_zh, name_en=inc.name_en, category=inc.category, source="class_event"),
                )
                if view.config.id not in item.cameras:
                    item.cameras.append(view.config.id)
    return out + sorted(configured.values(), key=lambda t: t.code)
