"""A dict behind its own lock: the registries that several threads read (a worker's leases, the
pipeline's cameras, the IoT devices) take one lookup or one snapshot under the lock, and a change
that must check and write in one hold borrows the dict for the length of a ``with``.

Example:
    >>> cams: LockedMap[str, int] = LockedMap({"gate": 1})
    >>> with cams.locked() as items:
    ...     items["yard"] = 2
    >>> cams.get("yard"), cams.values(), len(cams), cams.pop("gate"), cams.pop("gate")
    (2, [1, 2], 2, 1, None)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["LockedMap"]

K = TypeVar("K")
V = TypeVar("V")


class LockedMap(Generic[K, V]):
    """A dict whose every read and write holds one (non-reentrant) lock; the single-step reads are
    methods, anything longer goes through :meth:`locked`."""

    def __init__(self, items: Mapping[K, V] | None = None) -> None:
        self._lock = threading.Lock()
        self._items: dict[K, V] = dict(items or {})

    @contextmanager
    def locked(self) -> Iterator[dict[K, V]]:
        """The dict itself, with the lock held until the ``with`` ends (keep the block short: every
        other reader waits for it)."""
        with self._lock:
            yield self._items

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def pop(self, key: K) -> V | None:
        """Remove ``key``: its value, or None when it was not there."""
        with self._lock:
            return self._items.pop(key, None)

    def values(self) -> list[V]:
        """A snapshot of the values (a list the caller may keep and walk without the lock)."""
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
