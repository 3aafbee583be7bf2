"""A step run every few seconds on a daemon thread: the one loop of the workers that keep time
(the work-order clock, retention, the demo's street crew).

Example:
    >>> ticks = []
    >>> timer = Periodic("gw-example", lambda: ticks.append(1), interval_s=0.01, first_s=0.0)
    >>> timer.start(); timer.stop()
    True
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``step()`` every ``interval_s`` seconds on a daemon thread from :meth:`start` to
    :meth:`stop` (and again after the next :meth:`start`).

    The first call comes ``first_s`` after the start (default: ``interval_s``). A step that
    raises is logged (with the thread's name) and the next one runs on time; steps never overlap.

    Raises:
        ValueError: ``interval_s`` is not a finite number above 0, or ``first_s`` not a finite
            number of at least 0 (an infinite wait would end the thread with an OverflowError,
            and its work silently with it). Waits beyond ``threading.TIMEOUT_MAX`` (about 292
            years) are cut to it, for the same reason.
    """

    def __init__(self, name: str, step: Callable[[], object], interval_s: float, *, first_s: float | None = None) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"{name}: interval_s must be a finite number of seconds above 0, got {interval_s!r}")
        if first_s is not None and not (math.isfinite(first_s) and first_s >= 0):
            raise ValueError(f"{name}: first_s must be a finite number of seconds, at least 0, got {first_s!r}")
        self.name = name
        self._step = step
        self._interval_s = min(interval_s, threading.TIMEOUT_MAX)
        self._first_s = self._interval_s if first_s is None else min(first_s, threading.TIMEOUT_MAX)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (nothing to do while it runs)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread, waiting up to ``timeout`` s for a step in progress; False if it is
        still running then."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        wait = self._first_s
        while not self._stop.wait(wait):
            try:
                self._step()
            except Exception:  # noqa: BLE001 - one failed step (database away) must not end the loop
                log.exception("%s: step failed; next one in %.0f s", self.name, self._interval_s)
            wait = self._interval_s
