"""What every report from outside the camera pipeline hands the incident writer.

A device's alarm (:class:`~gridworker.incidents.devices.DeviceReport`, issue 14) and a person's
report (:class:`~gridworker.incidents.reports.ReportObservation`, issue 15) each name their own
source; what they carry about the incident itself is the same, and is declared here once.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gridworker.vision.rules.base import IncidentKind

__all__ = ["SourceReport"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceReport:
    """The incident's part of a report from a device or a person (keyword-only: each kind of
    report puts its source's fields first).

    Attributes:
        kind: the incident type (a catalogue entry).
        at: when (Unix seconds).
        summary: one line about it (the incident's summary).
        details: JSON-able extras (the incident's details).
        snapshot: evidence JPEG, stored when the incident opens; None: none.

    Example:
        >>> kind = IncidentKind("exposed_garbage", "暴露垃圾", "exposed garbage", "city_appearance")
        >>> SourceReport(kind=kind, at=1.7e9, details={"photos": 1}).incident_details()["type_name_en"]
        'exposed garbage'
    """

    kind: IncidentKind
    at: float
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    snapshot: bytes | None = None

    def incident_details(self) -> dict[str, Any]:
        """``details`` with the incident type's names and category, as the incident stores them."""
        return {**self.details, **self.kind.names()}
