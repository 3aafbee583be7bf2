"""The service's patrol control: plans by id, one run per plan, start/pause/resume/stop.

:class:`PatrolManager` is what the API and the CLI talk to. It knows the plans (from the
config file, plus any created at runtime), and keeps at most one :class:`PatrolRun` per
plan. Semantics (the API maps them to HTTP codes):

* ``start``: idempotent. A running (or paused, or waiting) plan is left alone and its status
  returned; a plan that never ran, or whose last run finished or was stopped, gets a new run.
* ``pause`` / ``resume``: idempotent while the run lives; :class:`PatrolNotRunning` when the
  plan has no live run (409).
* ``stop``: idempotent; stopping a plan that is not running returns its status as it is.
* ``put_plan``: create or replace a plan; :class:`PatrolConflict` while it runs (409). A plan
  that is not from the config file is handed to ``save`` (the service stores it, so it comes
  back after a restart through :meth:`PatrolManager.adopt`); a config-file plan replaced at
  runtime is kept until the restart (the file stays the source of truth).
* ``delete_plan``: runtime plans only; :class:`PatrolConflict` while it runs or for a plan
  from the config file (409).
* ``adopt``: add a plan only if no plan has its id (a saved plan at service start, the IoT
  linkage's watch plan); False, and nothing changes, when one does: it never replaces a plan.

Example::

    manager = PatrolManager(lambda plan: PatrolRun(plan, cameras, sink), [plan])
    manager.start("schools").state          # <PatrolState.RUNNING: 'running'>
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, InitVar, dataclass, field

from .config import PatrolPlan
from .engine import PatrolRun, PatrolState, PatrolStatus

__all__ = ["PatrolConflict", "PatrolLimitReached", "PatrolManager", "PatrolNotRunning", "PlanNotFound", "idle_status"]

_LIVE = (PatrolState.RUNNING, PatrolState.PAUSED, PatrolState.WAITING, PatrolState.STOPPING)


class PlanNotFound(KeyError):
    """No plan with this id."""


class PatrolNotRunning(RuntimeError):
    """The plan has no live run (pause/resume of an idle, finished or stopped plan)."""


class PatrolConflict(RuntimeError):
    """The operation clashes with the plan's running state (replacing a running plan)."""


class PatrolLimitReached(PatrolConflict):
    """A new plan would pass ``max_plans`` (``limits.max_patrol_plans``; the API answers 409)."""


def idle_status(plan: PatrolPlan) -> PatrolStatus:
    """The status of a plan that never ran."""
    return PatrolStatus(
        plan_id=plan.id, state=PatrolState.IDLE, cycle=0, cycles=plan.cycles, completed_cycles=0, total=0,
        visited=0, ok=0, failed=0, skipped=0, in_flight=(), started_at=None, cycle_started_at=None,
        last_cycle_s=None, eta_s=None, visits_total=0, failed_this_cycle=(), offline=(),
    )


@dataclass(eq=False)
class PatrolManager:
    """Plans by id and their runs.

    Args:
        make_run: builds a (not yet started) run for a plan (the service wires its sink,
            visitor, cameras and back-pressure in here).
        initial: the plans of the config file.
        validate: optional check of a plan before it is stored or started; raises
            ``ValueError`` with a readable message (unknown cameras).
        save: called (under the manager's lock) with a runtime plan created or replaced by
            :meth:`put_plan`; the service persists it.
        forget: called with the id of a runtime plan deleted by :meth:`delete_plan`.
        max_plans: most plans in all; a new one beyond it raises :class:`PatrolLimitReached`.
    """

    make_run: Callable[[PatrolPlan], PatrolRun]
    initial: InitVar[Iterable[PatrolPlan]] = ()
    validate: Callable[[PatrolPlan], None] | None = None
    _: KW_ONLY
    save: Callable[[PatrolPlan], None] | None = None
    forget: Callable[[str], None] | None = None
    max_plans: int | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False)
    _plans: dict[str, PatrolPlan] = field(default_factory=dict, init=False)
    _runs: dict[str, PatrolRun] = field(default_factory=dict, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self, initial: Iterable[PatrolPlan]) -> None:
        for plan in initial:
            if plan.id in self._plans:
                raise ValueError(f"patrol plan id {plan.id!r} is used twice")
            self._plans[plan.id] = plan
        self._config_ids = frozenset(self._plans)

    # ------------------------------------------------------------------ plans
    def source(self, plan_id: str) -> str:
        """``"config"`` for a plan from the config file, ``"api"`` for one created at runtime."""
        self.plan(plan_id)
        return "config" if plan_id in self._config_ids else "api"

    def adopt(self, plan: PatrolPlan) -> bool:
        """Add a plan that is not saved through ``save``: one saved by an earlier run (service
        start), or the IoT linkage's watch plan. False, and nothing changes, when a plan has its
        id already (a config-file plan wins over a saved one; someone else's plan, and its run,
        are left alone). Raises PatrolLimitReached."""
        with self._lock:
            if plan.id in self._plans:
                return False
            self._check_room(plan.id)
            self._plans[plan.id] = plan
            return True

    def plans(self) -> list[PatrolPlan]:
        with self._lock:
            return [self._plans[k] for k in sorted(self._plans)]

    def plan(self, plan_id: str) -> PatrolPlan:
        with self._lock:
            plan = self._plans.get(plan_id)
        if plan is None:
            raise PlanNotFound(plan_id)
        return plan

    def put_plan(self, plan: PatrolPlan) -> bool:
        """Create or replace a plan. Returns True if it was created. Raises PatrolConflict while it runs."""
        if self.validate is not None:
            self.validate(plan)
        with self._lock:
            run = self._runs.get(plan.id)
            if run is not None and run.status().state in _LIVE:
                raise PatrolConflict(f"patrol plan {plan.id!r} is running; stop it before replacing it")
            created = plan.id not in self._plans
            self._check_room(plan.id)
            if self.save is not None and plan.id not in self._config_ids:
                self.save(plan)
            self._plans[plan.id] = plan
            return created

    def _check_room(self, plan_id: str) -> None:
        if self.max_plans is not None and plan_id not in self._plans and len(self._plans) >= self.max_plans:
            raise PatrolLimitReached(
                f"{len(self._plans)} patrol plans exist, the limit (limits.max_patrol_plans) is {self.max_plans}; delete one first"
            )

    def delete_plan(self, plan_id: str) -> None:
        """Delete a runtime plan. Raises PlanNotFound, or PatrolConflict while it runs or when
        it comes from the config file."""
        with self._lock:
            self.plan(plan_id)
            if plan_id in self._config_ids:
                raise PatrolConflict(
                    f"patrol plan {plan_id!r} comes from the config file and cannot be deleted at runtime; "
                    "remove it from the config file"
                )
            run = self._runs.get(plan_id)
            if run is not None and run.status().state in _LIVE:
                raise PatrolConflict(f"patrol plan {plan_id!r} is running; stop it before deleting it")
            if self.forget is not None:
                self.forget(plan_id)
            self._plans.pop(plan_id, None)
            self._runs.pop(plan_id, None)

    # ------------------------------------------------------------------ runs
    def status(self, plan_id: str) -> PatrolStatus:
        with self._lock:
            plan = self.plan(plan_id)
            run = self._runs.get(plan_id)
        return run.status() if run is not None else idle_status(plan)

    def statuses(self) -> list[PatrolStatus]:
        return [self.status(p.id) for p in self.plans()]

    def run(self, plan_id: str) -> PatrolRun | None:
        with self._lock:
            return self._runs.get(plan_id)

    def start(self, plan_id: str) -> tuple[PatrolStatus, bool]:
        """Start the plan unless it runs. Returns (status, started_now)."""
        with self._lock:
            if self._closed:
                raise PatrolConflict("the service is stopping")
            plan = self.plan(plan_id)
            run = self._runs.get(plan_id)
            if run is not None and run.status().state in _LIVE:
                return run.status(), False
            run = self.make_run(plan)
            self._runs[plan_id] = run
            run.start()
        return run.status(), True

    def pause(self, plan_id: str) -> PatrolStatus:
        run = self._live_run(plan_id, "pause")
        run.pause()
        return run.status()

    def resume(self, plan_id: str) -> PatrolStatus:
        run = self._live_run(plan_id, "resume")
        run.resume()
        return run.status()

    def stop(self, plan_id: str, timeout: float | None = None) -> PatrolStatus:
        """Stop the plan's run (waits for its visits, at most their timeouts). Idempotent."""
        with self._lock:
            self.plan(plan_id)
            run = self._runs.get(plan_id)
        if run is None:
            return self.status(plan_id)
        run.stop(timeout)
        return run.status()

    def cameras_changed(self) -> None:
        """Cameras were added, removed or changed: every run waiting idle (no camera to visit)
        starts its next cycle now (:meth:`PatrolRun.wake`)."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.wake()

    def reopen(self) -> None:
        """Accept starts again after :meth:`stop_all` (the service started again)."""
        with self._lock:
            self._closed = False

    def last_cycles(self) -> dict[str, float | None]:
        """Each plan's last full cycle, seconds (None before one finished): a metric."""
        return {s.plan_id: s.last_cycle_s for s in self.statuses()}

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every run (service shutdown); no start is accepted until :meth:`reopen`."""
        with self._lock:
            self._closed = True
            runs = list(self._runs.values())
        for run in runs:
            run.stop(timeout=0)  # signal them all first, then wait
        for run in runs:
            run.wait(timeout)

    def _live_run(self, plan_id: str, verb: str) -> PatrolRun:
        with self._lock:
            self.plan(plan_id)
            run = self._runs.get(plan_id)
        if run is None or run.status().state not in _LIVE or run.status().state is PatrolState.STOPPING:
            state = "idle" if run is None else run.status().state.value
            raise PatrolNotRunning(f"patrol plan {plan_id!r} is not running ({state}); cannot {verb}")
        return run
