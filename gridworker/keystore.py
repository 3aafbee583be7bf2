"""API keys: the ``api_keys`` table and its store, and the ``auth:`` settings.

``api/auth.py`` makes and checks keys (only a salted digest of the secret is stored here);
``gridworker keys`` (gridworker/keys_cli.py) and ``/keys`` (api/routers/keys.py) manage them.
The table sits on the same declarative base and ``Database`` as the incidents; its schema
comes from the migrations (``incidents/migrations``). Apart from ``api/`` so that the
composition root and the database layer use it without importing the HTTP side.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Float, Integer, LargeBinary, String, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from gridworker.cases.catalogue import Catalogue, load_catalogue
from gridworker.cases.workflow import ADMIN
from gridworker.incidents.db import Base, Database, to_domain

log = logging.getLogger(__name__)


class AuthConfig(BaseModel):
    """``auth:`` in the service config.

    ``enabled``: ``true`` — every API call needs a key (until one is created with
    ``gridworker keys create``, nothing gets in); ``false`` — no keys checked; unset
    (default) — on as soon as a key has been created (a revoked key still counts, so
    revoking keys never reopens the API).

    Without keys the API answers only loopback clients (127.0.0.0/8, ::1) and
    ``gridworker run`` refuses to bind another address. ``open: true`` lifts both: anyone
    who can reach the port is an admin. It is for a closed lab network only and is logged
    as a warning on every start (docs/security.md).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    open: bool = Field(
        False,
        description="Answer non-loopback clients even though no key is required (anyone reaching the port is an admin).",
    )


class LastAdminKey(ValueError):
    """Revoking this key would leave no unrevoked admin key."""


class ApiKeyRow(Base):
    """An API key: ``key_id`` is public (it names the key), only a salted digest of the
    secret part is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: int
    key_id: str
    name: str
    role: str
    unit: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


def _to_key(row: ApiKeyRow) -> StoredKey:
    return to_domain(StoredKey, row)


class KeyStore:
    """The API keys of a service and whether calls must carry one. Safe to share between threads.

    Args:
        db: the process's ``Database``.
        catalogue: the units a unit handler's key may be bound to; default: the shipped catalogue.
        auth_enabled: see ``AuthConfig.enabled``.
        auth_open: see ``AuthConfig.open``.

    Example:
        >>> keys = KeyStore(Database.open("sqlite:///:memory:"))
        >>> keys.keys(), keys.auth_required()
        ([], False)
    """

    def __init__(
        self, db: Database, catalogue: Catalogue | None = None, *, auth_enabled: bool | None = None, auth_open: bool = False
    ) -> None:
        self.db = db
        self.catalogue = catalogue if catalogue is not None else load_catalogue()
        self.auth_enabled = auth_enabled
        self.auth_open = auth_open
        self._ever_keyed = False
        self._keys_lock = threading.Lock()

    def add_key(self, *, key_id: str, name: str, role: str, unit: str | None, salt: bytes, digest: bytes, at: float) -> StoredKey:
        with self.db.transaction() as s:
            row = ApiKeyRow(key_id=key_id, name=name, role=role, unit=unit, salt=salt, digest=digest, created_at=at)
            s.add(row)
            s.flush()
            return _to_key(row)

    def key_secret(self, key_id: str) -> tuple[StoredKey, bytes, bytes] | None:
        """The key named ``key_id`` with its salt and digest, unless revoked."""
        with self.db.transaction() as s:
            row = s.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))).one_or_none()
            return None if row is None else (_to_key(row), bytes(row.salt), bytes(row.digest))

    def touch_key(self, id: int, at: float) -> None:
        with self.db.transaction() as s:
            row = s.get(ApiKeyRow, id)
            if row is not None:
                row.last_used_at = at

    def keys(self, include_revoked: bool = False) -> list[StoredKey]:
        with self.db.transaction() as s:
            stmt = select(ApiKeyRow).order_by(ApiKeyRow.id)
            if not include_revoked:
                stmt = stmt.where(ApiKeyRow.revoked_at.is_(None))
            return [_to_key(r) for r in s.scalars(stmt).all()]

    def any_key(self) -> bool:
        """Whether an unrevoked key exists."""
        with self.db.transaction() as s:
            return s.scalar(select(ApiKeyRow.id).where(ApiKeyRow.revoked_at.is_(None)).limit(1)) is not None

    def revoke_key(self, id: int, at: float) -> bool:
        """Revoke key ``id``; False when there is no such unrevoked key.

        Raises:
            LastAdminKey: it is the last unrevoked admin key (nobody could manage keys
                through the API any more; create another admin key first).
        """
        with self._keys_lock, self.db.transaction() as s:
            # take the write lock on the admin keys first (PostgreSQL: their rows; SQLite: the
            # database) so two revocations at once cannot both see "another admin is left"
            s.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.role == ADMIN, ApiKeyRow.revoked_at.is_(None))
                .values(role=ApiKeyRow.role)
            )
            row = s.get(ApiKeyRow, id)
            if row is None or row.revoked_at is not None:
                return False
            if row.role == ADMIN:
                others = s.scalar(
                    select(func.count(ApiKeyRow.id)).where(
                        ApiKeyRow.role == ADMIN, ApiKeyRow.revoked_at.is_(None), ApiKeyRow.id != id
                    )
                )
                if not others:
                    raise LastAdminKey(f"key {id} is the last admin key: create another admin key before revoking it")
            row.revoked_at = at
            return True

    def auth_required(self) -> bool:
        """Whether API calls must carry a key (see ``AuthConfig``).

        By default: once any key has been created, revoked or not. Key rows are never
        deleted, so once true this stays true (and is not asked of the database again);
        a database error propagates (the caller fails the request, it does not open up).
        """
        if self.auth_enabled is not None:
            return self.auth_enabled
        if self._ever_keyed:
            return True
        with self.db.transaction() as s:
            keyed = s.scalar(select(ApiKeyRow.id).limit(1)) is not None
        if keyed:
            self._ever_keyed = True
        return keyed


def build_keystore(db: Database, catalogue: Catalogue, auth: AuthConfig) -> KeyStore:
    """The key store of a service, from its ``auth:`` settings. Logs a warning while the API
    is open to anyone (``auth.open`` without keys) or loopback-only (no key yet)."""
    keys = KeyStore(db, catalogue, auth_enabled=auth.enabled, auth_open=auth.open)
    if keys.auth_required():
        return keys
    if keys.auth_open:
        log.warning(
            "auth.open is set and no API key is required: ANYONE who can reach this service is an admin"
            " (cameras, keys, cases). Use it on a closed lab network only; create a key with"
            " `gridworker keys create --role admin --name ...` and remove auth.open"
        )
    else:
        log.warning(
            "no API key exists yet: the API answers only loopback clients (127.0.0.1, ::1);"
            " create one with `gridworker keys create --role admin --name ...`"
        )
    return keys
