"""A bounded sliding-window rate limiter keyed by a string (a username, a client address).

Each key keeps the times of its last ``limit`` hits (a ``deque(maxlen=limit)``); a hit is
refused while ``limit`` hits lie within the last ``window_s`` seconds. At most ``max_keys``
keys are tracked: beyond, the least recently hit key is forgotten (an attacker who floods
keys to evict one only resets that key; limit by client address as well). Thread-safe; the
clock is passed in, so tests need no sleeping.

Example:
    >>> limiter = RateLimiter(limit=2, window_s=60.0)
    >>> limiter.hit("10.0.0.1", now=0.0), limiter.hit("10.0.0.1", now=1.0), limiter.hit("10.0.0.1", now=2.0)
    (None, None, 58.0)
"""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict, deque

__all__ = ["ClientAndTotalLimit", "RateLimiter", "client_key"]


def client_key(host: str | None) -> str:
    """The key a client address is limited by: an IPv4 address as it is; an IPv6 address as
    its /64 (one subscriber's subnet: whoever holds an address holds the other 2^64 of it
    too); an IPv4-mapped IPv6 address as its IPv4 address. Not an address (a test client's
    name): as given; none: ``"?"``.

    Example:
        >>> client_key("203.0.113.7"), client_key("2001:db8:1:2:aaaa::1"), client_key("::ffff:203.0.113.7")
        ('203.0.113.7', '2001:db8:1:2::/64', '203.0.113.7')
    """
    if not host:
        return "?"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class RateLimiter:
    """See the module docstring.

    Args:
        limit: hits allowed per window and key.
        window_s: the window, seconds.
        max_keys: keys tracked at most.
    """

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000) -> None:
        if limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("limit, window_s and max_keys must be positive")
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may hit again; None when it may now. Records nothing."""
        with self._lock:
            hits = self._hits.get(key)
            return self._wait(hits, now)

    def hit(self, key: str, now: float) -> float | None:
        """Record a hit of ``key`` unless it is over its limit; returns None when recorded, else
        the seconds until it may hit again (nothing recorded)."""
        with self._lock:
            hits = self._hits.get(key)
            wait = self._wait(hits, now)
            if wait is not None:
                return wait
            if hits is None:
                hits = deque(maxlen=self.limit)
                self._hits[key] = hits
                while len(self._hits) > self.max_keys:
                    self._hits.popitem(last=False)
            else:
                self._hits.move_to_end(key)
            hits.append(now)
            return None

    def forget(self, key: str) -> None:
        """Clear ``key``'s hits (e.g. a username's failures after a successful login)."""
        with self._lock:
            self._hits.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._hits)

    def _wait(self, hits: deque[float] | None, now: float) -> float | None:
        if hits is None or len(hits) < self.limit:
            return None
        oldest = hits[0]
        if now - oldest >= self.window_s:
            return None
        return self.window_s - (now - oldest)


class ClientAndTotalLimit:
    """Hits admitted per client (an address) and in total over one sliding window: two
    :class:`RateLimiter` s checked and recorded together (the public report form, issue 15).

    Example:
        >>> limit = ClientAndTotalLimit(per_client=1, total=2, window_s=3600.0)
        >>> limit.hit("10.0.0.1", now=0.0), limit.hit("10.0.0.1", now=1.0), limit.hit("10.0.0.2", now=2.0)
        (None, 3599.0, None)
    """

    _ALL = "*"

    def __init__(self, per_client: int, total: int, window_s: float, max_clients: int = 10_000) -> None:
        self.per_client = RateLimiter(per_client, window_s, max_keys=max_clients)
        self.total = RateLimiter(total, window_s, max_keys=1)
        self._lock = threading.Lock()  # the two limiters change together

    def hit(self, client: str, now: float) -> float | None:
        """Record one hit of ``client``; None when admitted, else the seconds until it may be."""
        with self._lock:
            wait = self.per_client.retry_after(client, now)
            if wait is None:
                wait = self.total.retry_after(self._ALL, now)
            if wait is not None:
                return wait
            self.per_client.hit(client, now)
            self.total.hit(self._ALL, now)
            return None
