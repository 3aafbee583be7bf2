"""One asyncio loop in a dedicated thread: the NATS client is asyncio, the pipeline is threaded.

:class:`AsyncBridge` runs the loop; threads hand it coroutines through :meth:`AsyncBridge.call`
(wait for the result, always with a timeout) or :meth:`AsyncBridge.spawn` (a long task such as
a consumer, stopped with the bridge). Nothing else crosses between the two worlds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gridworker.streams.redact import get_logger

__all__ = ["AsyncBridge", "BridgeClosed", "BridgeTimeout"]

log = get_logger(__name__)

T = TypeVar("T")


class BridgeClosed(RuntimeError):
    """The bridge is not running (not started, or stopped)."""


class BridgeTimeout(TimeoutError):
    """A call through the bridge did not finish within its timeout (it was cancelled)."""


class _State(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"


class AsyncBridge:
    """A dedicated thread running one asyncio loop.

    Example:
        >>> bridge = AsyncBridge(); bridge.start()
        >>> bridge.call(lambda: asyncio.sleep(0, result=3), timeout=1.0)
        3
        >>> bridge.stop()
    """

    def __init__(self, name: str = "nats-bridge") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state = _State.CREATED
        self._lock = threading.Lock()
        self._tasks: set[concurrent.futures.Future[object]] = set()

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    def start(self) -> None:
        with self._lock:
            if self._state is not _State.CREATED:
                raise BridgeClosed("a bridge starts once")
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()
                loop.close()

            self._loop = loop
            self._thread = threading.Thread(target=run, name=self._name, daemon=True)
            self._thread.start()
            if not ready.wait(10.0):
                raise BridgeClosed("the bridge's loop did not start")
            self._state = _State.RUNNING

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if self._state is not _State.RUNNING or loop is None:
            raise BridgeClosed("the bridge is not running")
        if self._thread is threading.current_thread():
            raise RuntimeError("AsyncBridge.call from the loop's own thread would deadlock; await instead")
        return loop

    def call(self, coro_fn: Callable[[], Awaitable[T]], timeout: float) -> T:
        """Run ``coro_fn()`` on the loop and wait at most ``timeout`` seconds for its result.

        Raises:
            BridgeTimeout: it took longer (the coroutine is cancelled).
            BridgeClosed: the bridge is not running.
            Exception: whatever the coroutine raised.
        """
        loop = self._running_loop()

        async def bounded() -> T:
            return await asyncio.wait_for(coro_fn(), timeout)

        fut = asyncio.run_coroutine_threadsafe(bounded(), loop)
        try:
            return fut.result(timeout + 1.0)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError) as exc:
            fut.cancel()
            raise BridgeTimeout(f"no answer within {timeout:g} s") from exc

    def spawn(self, coro_fn: Callable[[], Awaitable[object]]) -> concurrent.futures.Future[object]:
        """Start a long task on the loop; it is cancelled by :meth:`stop` if still running."""
        loop = self._running_loop()

        async def run() -> object:
            return await coro_fn()

        fut: concurrent.futures.Future[object] = asyncio.run_coroutine_threadsafe(run(), loop)
        with self._lock:
            self._tasks = {t for t in self._tasks if not t.done()}
            self._tasks.add(fut)
        return fut

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel spawned tasks, stop the loop and join its thread (idempotent)."""
        with self._lock:
            if self._state is not _State.RUNNING:
                self._state = _State.STOPPED
                return
            self._state = _State.STOPPED
            tasks = list(self._tasks)
            self._tasks.clear()
        loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        for task in tasks:
            task.cancel()

        async def wind_down() -> None:  # every task cancelled and awaited, then the loop stops
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=max(0.1, timeout / 2))
            loop.stop()

        asyncio.run_coroutine_threadsafe(wind_down(), loop)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the bridge's loop thread did not exit within %.1f s", timeout)
