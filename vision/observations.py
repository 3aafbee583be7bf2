"""What the frame side hands the incident side: typed observations, and the one sink that takes them.

Everything that can open, update or close an incident is an observation submitted to one
:class:`IncidentSink` (the :class:`~gridworker.incidents.IncidentManager`):

* a :class:`~gridworker.vision.analyzer.FrameAnalysis`: one analysed frame of a continuous
  camera, or of a patrol visit (a glance judges only some rules: ``partial=True``);
* an :class:`ObjectReport`: a check that is not a rule on one frame (the patrol's revisit
  parking check) states which objects it sees in
  one camera + zone + rule, and which of them are incidents.

IoT device alarms have their own observation, ``incidents/devices.py: DeviceReport`` (a
device is not a camera + zone), handled by the same writer (``IncidentManager.device_report``).

Nothing here does I/O; the sink owns the incident store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .analyzer import FrameAnalysis
from .rules import IncidentKind

__all__ = ["IncidentSink", "ObjectReport", "ObjectSighting", "VisitJudgement"]

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class ObjectSighting:
    """One object an :class:`ObjectReport` sees.

    Attributes:
        key: stable while the check follows the object (becomes ``details["object"]``).
        box: normalised xyxy (0-1 of the frame) where it stands; after a restart an open
            incident is continued by an object standing where its object stood.
        qualifies: the object is an incident now (it opens one, or keeps its own open).
            False: seen, not (yet) an incident; it keeps an incident already open on it
            (one adopted after a restart, taken over by box) from clearing.
        summary: one line about the object (the incident's summary when it opens).
        details: JSON-able extras stored with the incident.
        snapshot: the evidence JPEG rendered by the check (e.g. two captures side by side).
    """

    key: str
    box: Box
    qualifies: bool = True
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    snapshot: bytes | None = None


@dataclass(frozen=True, slots=True)
class ObjectReport:
    """A check's complete word on one camera + zone + rule at ``at``.

    Open incidents of this camera + zone + rule whose object is not among ``objects``
    clear (they close once clear for ``clear_after_s``); a closed one's object opens no new
    incident for ``cooldown_s``. ``frame_seq``: the frame the check judged, if any.

    Example:
        >>> kind = IncidentKind("illegal_parking", "机动车违停", "illegal parking", "traffic")
        >>> report = ObjectReport("cam1", "kerb", "illegal_parking", kind, at=1700000000.0, objects=())
        >>> report.objects, report.clear_after_s  # no objects: its open incidents clear
        ((), 0.0)
    """

    camera_id: str
    zone_id: str
    rule_id: str
    kind: IncidentKind
    at: float
    objects: tuple[ObjectSighting, ...] = ()
    clear_after_s: float = 0.0
    cooldown_s: float = 0.0
    frame_seq: int | None = None


@dataclass(frozen=True, slots=True)
class VisitJudgement:
    """What one patrol visit (or one frame of a watch stop) gives the sink.

    Attributes:
        analysis: the visit's analysed frame (shown as the camera's latest frame).
        partial: the analysis ran only some of the camera's rules (a glance): it says
            nothing about the rules it left out.
        reports: the revisit check's reports, one per zone + rule that has one.
    """

    analysis: FrameAnalysis
    partial: bool = False
    reports: tuple[ObjectReport, ...] = ()


class IncidentSink(Protocol):
    """The one writer of incidents (``IncidentManager``): observations go in, nothing else writes."""

    def observe(self, analysis: FrameAnalysis, *, partial: bool = False) -> object: ...

    def report(self, report: ObjectReport) -> object: ...
