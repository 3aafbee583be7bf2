"""Camera leases: who runs a continuous camera, and the fencing token its observations carry.

A lease is a key (the camera id) in the leases bucket, whose bucket-wide ``max_age`` is the
lease TTL (nats-server 2.9 has no per-key TTL; every write resets a key's age, and an expired
key vanishes without a delete marker). A worker claims a camera with ``create`` (fails while
anyone else holds it), stamps the claim's revision into the value and renews with
``update(last=revision)``: a renewal that is refused means somebody else owns the camera now,
and the worker stops that camera's pipeline at once.

**Fencing token** = the revision of the claiming write. The bucket has one sequence, so every
later owner of a camera has a strictly greater token; it stays the same across renewals. Each
observation a worker sends carries it; the case service refuses a token below the highest it
has accepted for that camera. A worker also fences itself: :meth:`LeaseTable.token` answers
None once the lease may have lapsed on the server (last renewal sent + TTL - margin), so a
worker frozen past its TTL sends nothing stale when it wakes, even before it has noticed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.js.errors import BadRequestError, KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from gridworker.locked import LockedMap

__all__ = ["HeldLease", "LeaseLost", "LeaseRecord", "LeaseTable", "claim", "encode_lease", "read_lease", "release", "renew"]

#: JetStream's error code for a write whose expected last sequence is not the subject's
WRONG_LAST_SEQUENCE = 10071
#: the value of a lease is at most this long (a record is a few dozen bytes)
MAX_LEASE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A lease as stored. ``token``: the claim's revision (the fencing token); ``revision``: the latest write's."""

    camera_id: str
    worker: str
    instance: str
    token: int
    revision: int

    @classmethod
    def parse(cls, camera_id: str, value: bytes | None, revision: int) -> LeaseRecord | None:
        """The record, or None for a value that is not one (size-capped, typed; never trusted blindly)."""
        if not value or len(value) > MAX_LEASE_BYTES:
            return None
        try:
            raw = json.loads(value)
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        worker, instance, token = raw.get("worker"), raw.get("instance"), raw.get("token", 0)
        if not isinstance(worker, str) or not isinstance(instance, str) or not isinstance(token, int) or token < 0:
            return None
        return cls(camera_id, worker, instance, token or revision, revision)


def encode_lease(worker: str, instance: str, token: int) -> bytes:
    return json.dumps({"worker": worker, "instance": instance, "token": token}, separators=(",", ":")).encode()


async def read_lease(kv: KeyValue, camera_id: str) -> LeaseRecord | None:
    """The camera's lease now, or None (never claimed, released or lapsed)."""
    try:
        entry = await kv.get(camera_id)
    except (KeyNotFoundError, KeyDeletedError):
        return None
    return LeaseRecord.parse(camera_id, entry.value, entry.revision or 0)


@dataclass(slots=True)
class HeldLease:
    """A lease this worker holds: its token, the latest revision and until when it is surely ours."""

    camera_id: str
    token: int
    revision: int
    deadline: float  # monotonic: the last renewal's send time + TTL - margin


class LeaseTable(LockedMap[str, HeldLease]):
    """The leases this worker holds, by camera id (thread-safe; read by the worker's sink for every observation).

    Example:
        >>> table = LeaseTable(ttl_s=10.0)
        >>> table.hold("gate", token=7, revision=8, sent_at=time.monotonic()); table.token("gate")
        7
    """

    def __init__(self, ttl_s: float, *, margin_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._ttl = ttl_s
        self._margin = margin_s if margin_s is not None else min(1.0, ttl_s / 5)
        self._clock = clock

    def hold(self, camera_id: str, *, token: int, revision: int, sent_at: float) -> None:
        """Record a claim or a renewal whose request left at ``sent_at`` (monotonic)."""
        with self.locked() as held:
            held[camera_id] = HeldLease(camera_id, token, revision, sent_at + self._ttl - self._margin)

    def drop(self, camera_id: str) -> HeldLease | None:
        """Forget a lease (released, lost or lapsed): the one held, or None."""
        return self.pop(camera_id)

    def held(self) -> list[HeldLease]:
        """The leases held now (a snapshot; ``get`` reads one)."""
        return self.values()

    def token(self, camera_id: str) -> int | None:
        """The fencing token while the lease is surely this worker's; None otherwise (send nothing)."""
        with self.locked() as held:
            lease = held.get(camera_id)
            if lease is None or self._clock() >= lease.deadline:
                return None
            return lease.token

    def lapsed(self) -> list[str]:
        """Cameras whose lease may have lapsed on the server (their pipelines must stop now)."""
        now = self._clock()
        with self.locked() as held:
            return [c for c, lease in held.items() if now >= lease.deadline]


class LeaseLost(RuntimeError):
    """A renewal was refused: another worker claimed the camera (or the lease lapsed and went)."""


async def claim(kv: KeyValue, camera_id: str, worker: str, instance: str) -> tuple[int, int] | None:
    """Claim ``camera_id``: ``(token, revision)``, or None while somebody else holds it.

    ``create`` fails while a lease stands; a lease left by an earlier instance of this same
    worker (it restarted) is taken over with ``update`` and so gets a new, greater token. The
    claim's revision is then stamped into the value (the fencing token).
    """
    try:
        rev = await kv.create(camera_id, encode_lease(worker, instance, 0))
    except KeyWrongLastSequenceError:
        current = await read_lease(kv, camera_id)
        if current is None or current.worker != worker or current.instance == instance:
            return None
        try:
            rev = await kv.update(camera_id, encode_lease(worker, instance, 0), last=current.revision)
        except KeyWrongLastSequenceError:
            return None
    try:
        stamped = await kv.update(camera_id, encode_lease(worker, instance, rev), last=rev)
    except KeyWrongLastSequenceError:
        return None
    return rev, stamped


async def renew(kv: KeyValue, lease: HeldLease, worker: str, instance: str) -> int:
    """Renew a held lease; its new revision.

    Raises:
        LeaseLost: refused (another owner, or the key aged out).
    """
    try:
        return await kv.update(lease.camera_id, encode_lease(worker, instance, lease.token), last=lease.revision)
    except (KeyWrongLastSequenceError, KeyNotFoundError) as exc:
        raise LeaseLost(lease.camera_id) from exc


async def release(kv: KeyValue, lease: HeldLease) -> None:
    """Give a lease up now (only if it is still ours: ``last`` is our revision)."""
    try:
        await kv.delete(lease.camera_id, last=lease.revision)
    except (KeyWrongLastSequenceError, KeyNotFoundError):
        pass
    except BadRequestError as exc:  # nats-py's delete reports "wrong last sequence" as a plain 400
        if exc.err_code != WRONG_LAST_SEQUENCE:
            raise
