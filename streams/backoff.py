"""Reconnect delays: exponential, jittered, capped. The only place delays are computed."""

from __future__ import annotations

import random

__all__ = ["Backoff", "backoff_delay"]

_MAX_EXPONENT = 62  # 2**62 * any positive initial already exceeds every sane cap


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float, u: float) -> float:
    """Delay before reconnect attempt number ``attempt`` (0 = first retry).

    ``base = min(max_s, initial_s * 2**attempt)``, spread by ``jitter`` (a fraction) using
    ``u`` in ``[0, 1)``: ``base * (1 + jitter * (2u - 1))``, then capped at ``max_s``.

    Example:
        >>> backoff_delay(3, 0.5, 30, 0.0, 0.5)
        4.0
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not 0.0 <= u <= 1.0:
        raise ValueError(f"u must be in [0, 1], got {u}")
    base = min(max_s, initial_s * 2.0 ** min(attempt, _MAX_EXPONENT))
    spread = base * (1.0 + jitter * (2.0 * u - 1.0))
    return max(0.0, min(max_s, spread))


class Backoff:
    """Stateful schedule of reconnect delays for one camera.

    Example:
        >>> b = Backoff(0.5, 30.0, 0.2)
        >>> 0.4 <= b.next_delay() <= 0.6
        True
        >>> b.reset()  # after a successful connection
    """

    def __init__(self, initial_s: float, max_s: float, jitter: float, rng: random.Random | None = None) -> None:
        self.initial_s, self.max_s, self.jitter = initial_s, max_s, jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        """Delay for the next attempt; advances the schedule."""
        delay = backoff_delay(self.attempt, self.initial_s, self.max_s, self.jitter, self._rng.random())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``initial_s`` (call after a connection delivered frames)."""
        self.attempt = 0
