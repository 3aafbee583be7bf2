"""The demo's simulated crew: moves the first few cases through dispatch → accept → handled.

A command desk (an operator) dispatches a new case to its routed unit, that unit's street team
(a unit handler bound to the unit) accepts it and reports it handled, a few seconds apart, all
through the service's own :class:`~gridworker.cases.workflow.Workflow` (the same
transitions, audit rows and forwarded messages as the API's). The queue, the case history,
``/stats/workorders`` and the webhook receiver then have something to show. The other cases
are left for whoever runs the demo to act on in the console.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from gridworker.cases.workflow import OPERATOR, UNIT_HANDLER, Actor, Workflow, WorkflowError
from gridworker.cases.workorders import DETECTED, WorkOrderQuery, WorkOrders
from gridworker.periodic import Periodic

log = logging.getLogger("gridworker.demo.crew")

DESK = Actor("demo:command desk", OPERATOR)


def street_team(unit: str) -> Actor:
    """The unit handler of ``unit`` (only this unit's cases)."""
    return Actor(f"demo:{unit} street team", UNIT_HANDLER, unit=unit)


@dataclass(slots=True)
class _Case:
    incident_id: int
    next_action: str  # dispatch, accept, handle
    due: float


#: What follows each action.
_NEXT = {"dispatch": "accept", "accept": "handle"}


class DemoCrew:
    """Takes the first ``cases`` new cases of ``cameras`` and works them, ``step_s`` apart.

    Args:
        workflow: the service's workflow (``Service.workflow``).
        orders: the service's work orders (``Service.workorders``).
        cameras: the cameras whose cases the crew takes (the others are left to the user).
        since: only cases detected from then on (a demo database reused from an earlier run
            keeps its old cases as they are).
        cases: how many cases in all.
        step_s: seconds between a case's detection and its dispatch, and between each step.
        ready: the crew waits until this says True (the service has started).
    """

    def __init__(
        self,
        workflow: Workflow,
        orders: WorkOrders,
        *,
        cameras: Collection[str],
        since: float,
        cases: int = 3,
        step_s: float = 8.0,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.workflow = workflow
        self.orders = orders
        self.cameras = frozenset(cameras)
        self.since = since
        self.cases = cases
        self.step_s = step_s
        self._ready = ready
        self._taken: dict[int, _Case] = {}
        self._timer = Periodic("demo-crew", self._tick, 1.0)
        self.done: list[tuple[int, str]] = []  # (incident id, action) in the order they were done

    def step(self, now: float) -> None:
        """Take new cases while there is room, and do every action that is due."""
        if len(self._taken) < self.cases:
            page, _ = self.orders.list(WorkOrderQuery(state=DETECTED, limit=100))
            for order in sorted(page, key=lambda o: o.detected_at):
                if len(self._taken) >= self.cases:
                    break
                if order.incident_id not in self._taken and order.camera_id in self.cameras and order.detected_at >= self.since:
                    self._taken[order.incident_id] = _Case(order.incident_id, "dispatch", order.detected_at + self.step_s)
        for case in list(self._taken.values()):
            if case.next_action == "" or case.due > now:
                continue
            try:
                self._act(case)
            except WorkflowError as exc:  # someone acted on it in the console first: it is theirs now
                log.info("demo crew: case %s left to the console (%s)", case.incident_id, exc.reason)
                case.next_action = ""
                continue
            self.done.append((case.incident_id, case.next_action))
            case.next_action = _NEXT.get(case.next_action, "")
            case.due = now + self.step_s

    def _act(self, case: _Case) -> None:
        if case.next_action == "dispatch":
            dispatched = self.workflow.dispatch(case.incident_id, DESK, note="demo: sent to the routed unit")
            log.info("demo crew: case %s dispatched to %s by %s", case.incident_id, dispatched.unit, DESK.name)
            return
        order = self.orders.get(case.incident_id)
        if order is None:
            raise WorkflowError("gone")
        team = street_team(order.unit)
        if case.next_action == "accept":
            self.workflow.accept(case.incident_id, team, note="demo: on our way")
        else:
            self.workflow.handle(case.incident_id, team, note="demo: cleared on site")
        log.info("demo crew: case %s %s by %s", case.incident_id, "accepted" if case.next_action == "accept" else "handled", team.name)

    # ------------------------------------------------------------------ thread
    def start(self) -> DemoCrew:
        self._timer.start()  # a failed step is logged: the demo's crew never takes the demo down
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._timer.stop(timeout)

    def _tick(self) -> None:
        if self._ready():
            self.step(time.time())
