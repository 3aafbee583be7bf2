"""Idempotency keys of work-order actions: a repeated request (the phone page resends the
actions it queued while offline) returns the first result and makes no second transition.

The key is remembered *in the transaction of the transition itself* (table
``idempotency_keys``, migration 0004), so either the action happened and its key is stored,
or neither: a retry after a crash or a lost response is answered from the table. A request
that failed stored nothing, so its retry runs again.

A key belongs to its caller (``Actor.name``): the stored digest is ``sha256(actor ‖ key)``.
Storage is bounded: keys older than ``ttl_s`` are deleted whenever a key is stored, and at
most ``max_keys`` are kept (the oldest go first).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from gridworker.incidents.db import Base

from .workorders import WorkOrder

__all__ = ["IDEMPOTENCY_KEY_PATTERN", "IdempotencyLog", "IdempotencyRow", "KeyReused"]

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:\-]{8,100}$"
_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
_FIELDS = frozenset(f.name for f in dataclasses.fields(WorkOrder))


class KeyReused(ValueError):
    """The key was used before for another case or action."""


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # sha256(actor ‖ key), hex
    incident_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)  # the WorkOrder the first request returned
    created_at: Mapped[float] = mapped_column(Float, index=True)


def valid_key(key: str) -> bool:
    """8-100 characters of ``A-Z a-z 0-9 _ . : -`` (a UUID fits)."""
    return _KEY_RE.fullmatch(key) is not None


class IdempotencyLog:
    """Remembers the result of keyed actions inside the action's own transaction.

    Args:
        ttl_s: how long a key is remembered (a retry later than this runs again).
        max_keys: keys kept at most.

    Example:
        >>> log = IdempotencyLog(ttl_s=86_400, max_keys=100_000)
        >>> log.digest("person:1:li", "a1b2c3d4")[:8]
        '292982b8'
    """

    def __init__(self, ttl_s: float = 2 * 86_400.0, max_keys: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys

    @staticmethod
    def digest(actor: str, key: str) -> str:
        return hashlib.sha256(f"{actor}\x00{key}".encode()).hexdigest()

    def replay(self, s: Session, actor: str, key: str, incident_id: int, action: str) -> WorkOrder | None:
        """The first result of this key, or None when it is new.

        Raises:
            KeyReused: the key was used for another case or action.
        """
        row = s.scalars(select(IdempotencyRow).where(IdempotencyRow.digest == self.digest(actor, key))).one_or_none()
        if row is None:
            return None
        if row.incident_id != incident_id or row.action != action:
            raise KeyReused("this Idempotency-Key was used for another case or action")
        return WorkOrder(**{k: v for k, v in dict(row.result).items() if k in _FIELDS})

    def remember(self, s: Session, actor: str, key: str, incident_id: int, action: str, order: WorkOrder, now: float) -> None:
        """Store the key with its result (in the caller's transaction) and drop what is too
        old or beyond ``max_keys``."""
        s.execute(delete(IdempotencyRow).where(IdempotencyRow.created_at < now - self.ttl_s))
        s.add(IdempotencyRow(digest=self.digest(actor, key), incident_id=incident_id, action=action,
                             result=dataclasses.asdict(order), created_at=now))
        s.flush()
        count = s.scalar(select(func.count()).select_from(IdempotencyRow)) or 0
        if count > self.max_keys:
            cutoff = s.scalar(select(IdempotencyRow.id).order_by(IdempotencyRow.id.desc()).offset(self.max_keys).limit(1))
            if cutoff is not None:
                s.execute(delete(IdempotencyRow).where(IdempotencyRow.id <= cutoff))
