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
import threading
from collections.abc import Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``step()`` every ``interval_s`` seconds on a daemon thread from :meth:`start` to
    :meth:`stop` (and again after the next :meth:`start`).

    The first call comes ``first_s`` after the start (default: ``interval_s``). A step that
    raises is logged (with the thread's name) and the next one runs on time; steps never overlap.
    """

    def __init__(self, name: str, step: Callable[[], object], interval_s: float, *, first_s: float | None = None) -> None:
        self.name = name
        self._step = step
        self._interval_s = interval_s
        self._first_s = interval_s if first_s is None else first_s
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
