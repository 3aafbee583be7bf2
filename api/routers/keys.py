"""API keys over HTTP: create (shown once), list, revoke — admins with a key only
(api/auth.py has the keys themselves; docs/security.md)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from gridworker.cases.workflow import ADMIN, ROLES, Actor
from gridworker.keystore import LastAdminKey, StoredKey

from ..auth import KeyError_, create_key, key_admin, require
from ..deps import KeysDep
from ..schemas import utc

router = APIRouter(tags=["api keys"])
Admin = Annotated[Actor, Depends(require(ADMIN))]


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$", description="No control characters")
    role: Literal["viewer", "operator", "unit_handler", "supervisor", "admin"]
    unit: str | None = Field(None, max_length=64, description="Required for unit_handler, refused otherwise")


assert set(KeyIn.model_fields["role"].annotation.__args__) == set(ROLES)  # type: ignore[union-attr]


class KeyOut(BaseModel):
    id: int
    key_id: str
    name: str
    role: str
    unit: str | None
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, k: StoredKey) -> KeyOut:
        return cls(id=k.id, key_id=k.key_id, name=k.name, role=k.role, unit=k.unit, created_at=utc(k.created_at), last_used_at=utc(k.last_used_at))


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown this once, store it now")


@router.post("/keys", response_model=NewKeyOut, status_code=status.HTTP_201_CREATED)
def post_key(body: KeyIn, user: Annotated[Actor, Depends(key_admin)], keys: KeysDep) -> NewKeyOut:
    """Create a key (an admin *key*: never an anonymous caller, so the first key comes from
    ``gridworker keys create``). The response is the only place the key ever appears."""
    try:
        stored, raw = create_key(keys, name=body.name, role=body.role, unit=body.unit)
    except KeyError_ as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return NewKeyOut(**KeyOut.of(stored).model_dump(), key=raw)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(user: Admin, keys: KeysDep) -> list[KeyOut]:
    """The unrevoked keys (never the keys themselves)."""
    return [KeyOut.of(k) for k in keys.keys()]


@router.delete(
    "/keys/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such key"}, 409: {"description": "The last admin key (create another admin key first)"}},
)
def delete_key(key: Annotated[int, Path(ge=1, le=2**62)], user: Admin, keys: KeysDep) -> Response:
    """Revoke a key at once. The last unrevoked admin key cannot be revoked (409)."""
    try:
        revoked = keys.revoke_key(key, time.time())
    except LastAdminKey as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if not revoked:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
