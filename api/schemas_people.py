"""Request and response schemas of people and logins (issue 15, docs/people.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field
from pydantic.dataclasses import dataclass

from gridworker.cases.people import Person, PersonProfile

from .schemas import utc


@dataclass(frozen=True)
class PersonOut(PersonProfile):
    """A person as the API shows them (never a password or its hash)."""

    has_password: Annotated[bool, Field(description="Whether the person can log in")]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, p: Person) -> PersonOut:
        return cls(
            id=p.id, username=p.username, name=p.name, unit=p.unit, area=p.area, phone=p.phone, role=p.role,
            disabled=p.disabled, has_password=p.has_password, created_at=utc(p.created_at), updated_at=utc(p.updated_at),
        )
