"""Delivery workers: one thread per destination drains its pending deliveries.

At least once: a delivery is marked ``delivered`` only after the receiver acknowledged it
(2xx, PUBACK, SIP 200); a crash between the acknowledgement and the mark sends it again
(receivers de-duplicate by the idempotency key). Per incident in order: a message waits
while an earlier message of the same incident waits for its retry (``Outbox.due``).

Failures, by what the sender reports (``Result.outcome``):

- ``DEAD`` — the receiver refused this message for good (HTTP 4xx except 408/429, SIP
  4xx): dead at once, visible and replayable through the API;
- ``RETRY`` — the receiver got it but failed (HTTP 5xx/408/429, a read timeout, SIP 5xx,
  no PUBACK in time): the attempt counts; the message retries after
  ``RetryPolicy.delay(attempts)`` and is dead after ``max_attempts``;
- ``UNREACHABLE`` — nothing reached the receiver (connection refused, DNS, no answer at
  all over UDP): the attempt does *not* count against the message — a receiver that is
  down for a day must not turn a day of incidents into dead letters;
- ``NOT_READY`` — the sender cannot send yet (a GB/T 28181 device not registered with its
  platform): nothing was sent, the attempt does not count, the message waits in the outbox.
  A sender that starts work of its own (``StartableSender``) gets a ``wake`` callback to
  call when it becomes ready, which ends the destination's pause at once.

After any failure the whole destination pauses for ``delay(consecutive failures)`` (a
down receiver gets one probe per pause, not a flood); a success resets the count. A
receiver's own "retry after" (HTTP or SIP ``Retry-After``) lengthens a wait up to
``MAX_RETRY_AFTER_S``. The pause runs on the monotonic clock (a wall clock stepped back
does not lengthen it); wall time is only what the API shows and the outbox stores.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, runtime_checkable

from gridworker.delivery.outbox import Due, Outbox, OutboxEvent
from gridworker.streams.redact import redact_text

from .config import RetryPolicy

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    UNREACHABLE = "unreachable"
    NOT_READY = "not_ready"


#: Where a destination's worker is: waiting for work, sending, waiting after a failed attempt
#: (``backing_off``), or after one that never reached the receiver (``unreachable``, ``not_ready``:
#: the sender's own work, e.g. a registration, is not done), or stopped.
DestinationState = Literal["idle", "delivering", "backing_off", "unreachable", "not_ready", "stopped"]
#: The state an attempt that did not reach the receiver leaves its worker in (any other failure: backing_off).
_NOT_REACHED: dict[Outcome, DestinationState] = {Outcome.UNREACHABLE: "unreachable", Outcome.NOT_READY: "not_ready"}


#: The longest wait a receiver's "retry after" can ask for (more, or not a number, is capped or ignored).
MAX_RETRY_AFTER_S = 3600.0


def retry_after_seconds(value: float | str | None) -> float | None:
    """A receiver's "retry after" in seconds (a number, or the text of a delta-seconds
    header, a SIP comment or parameter after it ignored) within [0, ``MAX_RETRY_AFTER_S``];
    None when absent or not a number.

    Example:
        >>> retry_after_seconds("120;duration=3600"), retry_after_seconds("1e12"), retry_after_seconds("nan")
        (120.0, 3600.0, None)
    """
    if value is None or value == "":
        return None
    try:
        seconds = float(value.split(";")[0].split("(")[0]) if isinstance(value, str) else float(value)
    except ValueError:
        return None
    return None if math.isnan(seconds) else max(0.0, min(seconds, MAX_RETRY_AFTER_S))


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    error: str = ""
    retry_after_s: float | None = None  # the receiver asked for this wait (HTTP Retry-After)

    @classmethod
    def ok(cls) -> Result:
        return cls(Outcome.DELIVERED)


class Sender(Protocol):
    """One destination's transport."""

    name: str
    kind: str

    def target(self) -> str:
        """Where it sends, with credentials redacted."""

    def send(self, event: OutboxEvent) -> Result: ...

    def close(self) -> None: ...


@runtime_checkable
class StartableSender(Protocol):
    """A sender with work of its own (a registration to keep): started with its worker;
    ``wake`` makes the worker look for due messages now (call it when ready again).
    ``close`` (the ``Sender``'s) stops that work."""

    def start(self, wake: Callable[[], None]) -> None: ...


@dataclass
class DestinationStatus:
    name: str
    kind: str
    target: str
    running: bool = False
    state: DestinationState = "idle"
    consecutive_failures: int = 0
    paused_until: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    last_delivered_at: float | None = None
    delivered: int = 0  # by this process since start
    failed_attempts: int = 0
    dead: int = 0


@dataclass
class _Worker:
    sender: Sender
    retry: RetryPolicy
    status: DestinationStatus
    wake: threading.Event
    thread: threading.Thread | None = None
    paused_until: float = 0.0  # on the dispatcher's monotonic clock
    lock: threading.Lock = field(default_factory=threading.Lock)


class Dispatcher:
    """Drains ``outbox``'s deliveries to ``senders``; ``start()``/``stop()``.

    Args:
        outbox: the outbox (its ``routes`` must name the senders).
        senders: one per destination.
        retry: the default policy; ``retries`` overrides it per destination name.
        poll_interval_s: the longest sleep when nothing wakes a worker.
        secrets: strings scrubbed from every stored or logged error.
        clock: wall time (what is stored and shown); monotonic: what a pause is measured on.
    """

    def __init__(
        self,
        outbox: Outbox,
        senders: Sequence[Sender],
        *,
        retry: RetryPolicy | None = None,
        retries: dict[str, RetryPolicy] | None = None,
        poll_interval_s: float = 1.0,
        batch: int = 100,
        secrets: Iterable[str] = (),
        sse_keepalive_s: float = 15.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = outbox
        self.retry = retry or RetryPolicy()
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self.secrets = tuple(s for s in secrets if s)
        self.sse_keepalive_s = sse_keepalive_s
        self.clock = clock
        self.monotonic = monotonic
        self.rand = rand
        self._stop = threading.Event()
        self._workers: dict[str, _Worker] = {}
        for s in senders:
            if s.name in self._workers:
                raise ValueError(f"two destinations are named {s.name!r}")
            pol = (retries or {}).get(s.name) or self.retry
            self._workers[s.name] = _Worker(s, pol, DestinationStatus(s.name, s.kind, s.target()), outbox.listen())
        self.started = False

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
        self._stop.clear()
        for name, w in self._workers.items():
            if isinstance(w.sender, StartableSender):
                w.sender.start(partial(self.wake, name))
            w.thread = threading.Thread(target=self._run, args=(w,), name=f"gw-forward-{w.sender.name}", daemon=True)
            w.status.running = True
            w.thread.start()
        self.started = True
        log.info("forwarding to %d destination(s): %s", len(self._workers), ", ".join(self._workers) or "none")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for w in self._workers.values():
            w.wake.set()
        for w in self._workers.values():
            if w.thread is not None:
                w.thread.join(timeout)
                if w.thread.is_alive():
                    log.error("forwarding worker %s did not stop within %.0f s", w.sender.name, timeout)
                w.thread = None
            w.status.running = False
            w.status.state = "stopped"
            try:
                w.sender.close()
            except Exception:  # noqa: BLE001
                log.exception("closing destination %s", w.sender.name)
            self.outbox.unlisten(w.wake)
        self.started = False

    def __enter__(self) -> Dispatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- views ------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._workers)

    def statuses(self) -> list[DestinationStatus]:
        out = []
        for w in self._workers.values():
            with w.lock:
                out.append(DestinationStatus(**vars(w.status)))
        return out

    def wake(self, name: str | None = None) -> None:
        """Make a worker look for due messages now (after a replay); all when ``name`` is None.
        A destination pausing after a failure is woken out of its pause too."""
        for n, w in self._workers.items():
            if name is None or n == name:
                with w.lock:
                    w.paused_until = 0.0
                w.wake.set()

    def replay(self, delivery_id: int) -> Any:
        d = self.outbox.replay(delivery_id, self.clock())
        if d is not None:
            self.wake(d.destination)
        return d

    def idle(self) -> bool:
        """No delivery pending for any destination (whatever its due time)."""
        c = self.outbox.counters()
        return all(c.get(n, {}).get("pending", 0) == 0 for n in self._workers)

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is pending (tests, the benchmark); True when drained."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.idle():
                return True
            time.sleep(0.05)
        return self.idle()

    # -- the worker ------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return redact_text(text, self.secrets)[:2000]

    def _wait(self, retry: RetryPolicy, failures: int, res: Result) -> float:
        """The backoff after the ``failures``-th failure, or the receiver's "retry after" when longer
        (capped here too, whichever sender set it)."""
        return max(retry.delay(failures, self.rand()), retry_after_seconds(res.retry_after_s) or 0.0)

    def _pause(self, w: _Worker, pause: float, now: float) -> None:
        """Pause ``w`` for ``pause`` seconds (caller holds ``w.lock``): measured on the
        monotonic clock, shown in the status on the wall clock."""
        w.paused_until = self.monotonic() + pause
        w.status.paused_until = now + pause

    def _run(self, w: _Worker) -> None:
        name = w.sender.name
        while not self._stop.is_set():
            mono = self.monotonic()
            with w.lock:
                paused = w.paused_until
            if mono < paused:
                w.wake.wait(min(paused - mono, self.poll_interval_s))
                w.wake.clear()
                continue
            try:
                batch = self.outbox.due(name, self.clock(), self.batch)
            except Exception as exc:  # the database is away: try again later
                log.warning("forwarding %s: cannot read the outbox: %s", name, self._scrub(str(exc)))
                self._stop.wait(self.poll_interval_s)
                continue
            if not batch:
                with w.lock:
                    if w.status.state in ("delivering", "idle"):
                        w.status.state = "idle"
                w.wake.wait(self.poll_interval_s)
                w.wake.clear()
                continue
            try:
                self._deliver_batch(w, batch)
            except Exception:  # a bug or the database: log and go on after a pause
                log.exception("forwarding %s: batch failed", name)
                self._stop.wait(self.poll_interval_s)

    def _deliver_batch(self, w: _Worker, batch: list[Due]) -> None:
        blocked: set[int] = set()
        name = w.sender.name
        for due in batch:
            if self._stop.is_set():
                return
            ev = due.event
            if ev.incident_id in blocked:
                continue
            with w.lock:
                if w.status.consecutive_failures == 0:  # a probe of a destination found down keeps its state
                    w.status.state = "delivering"
            try:
                res = w.sender.send(ev)
            except Exception as exc:  # noqa: BLE001 - a sender bug must not kill the worker
                res = Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
            now = self.clock()
            # Each outcome is written to the outbox first and then published in the status (never
            # a database write under the worker's lock: ``statuses`` and ``wake`` take it), so
            # whoever sees an outcome in the status finds it stored on the delivery.
            if res.outcome is Outcome.DELIVERED:
                self.outbox.mark_delivered(due.delivery_id, now)
                with w.lock:
                    st = w.status
                    st.state = "delivering"
                    st.consecutive_failures = 0
                    st.delivered += 1
                    st.last_delivered_at = now
                    st.paused_until = None
                    w.paused_until = 0.0
                continue
            error = self._scrub(res.error or res.outcome.value)
            if res.outcome is Outcome.DEAD:
                try:
                    self.outbox.mark_dead(due.delivery_id, now, error)
                except Exception:  # the database away: the refused message is not sent again at every poll
                    with w.lock:
                        self._pause(w, self._wait(w.retry, w.status.consecutive_failures + 1, res), now)
                        w.status.last_error, w.status.last_error_at = error, now
                    raise
                with w.lock:
                    st = w.status
                    st.state = "delivering"  # the receiver answered: it is reached, it refuses this one message
                    st.consecutive_failures = 0
                    st.last_error, st.last_error_at = error, now
                    st.dead += 1
                    st.failed_attempts += 1
                log.warning("forwarding %s: %s (%s) is dead: %s", name, ev.idempotency_key, ev.event, error)
                continue  # the receiver refuses this one message; the others go on
            handed_over = res.outcome not in (Outcome.UNREACHABLE, Outcome.NOT_READY)
            attempts, dead, wait = due.attempts + 1, False, 0.0
            with w.lock:
                failures = w.status.consecutive_failures + 1  # (only this worker's thread changes it)
            pause = self._wait(w.retry, failures, res)
            state = _NOT_REACHED.get(res.outcome, "backing_off")
            try:
                if not handed_over:
                    # not handed over: the message keeps its place and its attempts
                    self.outbox.mark_retry(due.delivery_id, now, now, error, count=False)
                elif attempts >= w.retry.max_attempts:
                    self.outbox.mark_dead(due.delivery_id, now, f"{error} (after {attempts} attempts)")
                    dead = True
                else:
                    wait = self._wait(w.retry, attempts, res)
                    self.outbox.mark_retry(due.delivery_id, now, now + wait, error)
            finally:  # the database failing too: the destination still pauses (no hammering it)
                with w.lock:
                    st = w.status
                    st.last_error, st.last_error_at = error, now
                    st.consecutive_failures = failures
                    self._pause(w, pause, now)
                    st.state = state
                    if handed_over:
                        st.failed_attempts += 1
                        st.dead += dead
            if not handed_over:
                if failures in (1, 5) or failures % 50 == 0:
                    log.warning("forwarding %s: %s (%d in a row), next try in %.1f s: %s", name, state.replace("_", " "), failures, pause, error)
            elif dead:
                log.warning("forwarding %s: %s is dead after %d attempts: %s", name, ev.idempotency_key, attempts, error)
            else:
                blocked.add(ev.incident_id)
                log.info("forwarding %s: %s failed (attempt %d), retry in %.1f s: %s", name, ev.idempotency_key, attempts, wait, error)
            return
