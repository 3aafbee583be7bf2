"""The case service's memory of what it applied: observation ids and each camera's fence.

* ``cluster_applied``: the id of every observation applied (committed with the incident
  writes' aftermath, before the message is acked), so one redelivered after a crash, or sent
  again by a second worker doing the same patrol visit after the broker's de-duplication
  window, is skipped. Rows older than ``keep_s`` are pruned (every minute, in chunks, by the
  observation consumer between batches).
* ``cluster_fences``: the highest lease token accepted per camera; an observation carrying a
  lower one comes from a worker whose lease was taken over (a stale owner) and is refused,
  across restarts of the case service too.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Float, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from gridworker.incidents.db import Base, Database

__all__ = ["AppliedLog", "AppliedRow", "FenceRow"]


class AppliedRow(Base):
    __tablename__ = "cluster_applied"

    msg_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(128))
    applied_at: Mapped[float] = mapped_column(Float, index=True)


class FenceRow(Base):
    __tablename__ = "cluster_fences"

    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger)


class AppliedLog:
    """Reads and writes the two tables, a whole fetched batch of observations at a time (one
    short transaction each call).

    Example:
        >>> log = AppliedLog(Database.open("sqlite:///:memory:"))
        >>> log.record_all([("w1.a.1", "cam1", 7)], at=1.0); log.seen_among(["w1.a.1", "w1.a.2"]), log.fence("cam1")
        ({'w1.a.1'}, 7)
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def fence(self, camera_id: str) -> int:
        with self._db.transaction() as s:
            row = s.get(FenceRow, camera_id)
            return int(row.token) if row is not None else 0

    def seen_among(self, msg_ids: Sequence[str]) -> set[str]:
        """Those of ``msg_ids`` already applied (one query)."""
        if not msg_ids:
            return set()
        with self._db.transaction() as s:
            return set(s.execute(select(AppliedRow.msg_id).where(AppliedRow.msg_id.in_(set(msg_ids)))).scalars())

    def record_all(self, applied: Sequence[tuple[str, str, int]], *, at: float) -> None:
        """Remember each ``(msg_id, camera_id, token)`` as applied and raise each camera's fence
        to its highest ``token`` (never lower it), in one transaction: all or none."""
        if not applied:
            return
        fences: dict[str, int] = {}
        for _, camera_id, token in applied:
            if token > fences.get(camera_id, 0):
                fences[camera_id] = token
        with self._db.transaction() as s:
            ids = {msg_id: camera_id for msg_id, camera_id, _ in applied}
            known = set(s.execute(select(AppliedRow.msg_id).where(AppliedRow.msg_id.in_(list(ids)))).scalars())
            s.add_all(AppliedRow(msg_id=msg_id, camera_id=camera_id, applied_at=at) for msg_id, camera_id in ids.items() if msg_id not in known)
            for camera_id, token in sorted(fences.items()):  # one lock order: no deadlock between two writers
                fence = s.get(FenceRow, camera_id, with_for_update=True)
                if fence is None:
                    s.add(FenceRow(camera_id=camera_id, token=token))
                elif token > fence.token:
                    fence.token = token

    def prune(self, before: float, *, chunk: int = 10_000, max_chunks: int = 100) -> int:
        """Forget ids applied before ``before``, ``chunk`` rows per transaction until a chunk comes
        back short (all gone) or ``max_chunks`` were deleted (bounded work per call: the rest goes
        next call); returns how many."""
        total = 0
        for _ in range(max_chunks):
            with self._db.transaction() as s:
                ids = s.execute(select(AppliedRow.msg_id).where(AppliedRow.applied_at < before).limit(chunk)).scalars().all()
                if ids:
                    s.execute(delete(AppliedRow).where(AppliedRow.msg_id.in_(ids)))
            total += len(ids)
            if len(ids) < chunk:
                break
        return total
