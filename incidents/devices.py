"""What a device's alarm hands the incident writer (issue 14, docs/iot.md).

A :class:`DeviceReport` is the IoT side's typed observation, as a
:class:`~gridworker.vision.analyzer.FrameAnalysis` is a camera's: the ingest (``iot/``)
states, for one device and one of its alarms, whether the alarm holds at ``at``;
:meth:`IncidentManager.device_report <gridworker.incidents.IncidentManager.device_report>`
opens, updates or closes the one incident of that device + alarm.

The **source** of a device's incident: its ``camera_id`` is ``iot:<device id>`` (a camera
id never has a colon, so sources never collide), ``zone_id`` the device type and
``rule_id`` the alarm's id in the type's mapping file; ``details["source"]`` is ``"iot"``
and ``details["device"]`` the device (type, site, unit, position, cameras). The incident
table needs no new column: routing rules match ``camera: "iot:*"`` like any camera pattern.

``ObjectReport`` was not reused: it speaks of objects in a camera's zone (boxes, sightings
that keep an incident from clearing, clear-after and cooldown clocks the manager runs),
while a device reports one condition per alarm and clears it itself (a "restored" message,
or the ingest's quiet timer). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .source_report import SourceReport

__all__ = ["DeviceReport"]


@dataclass(frozen=True, slots=True)
class DeviceReport(SourceReport):
    """One device's word on one of its alarms at ``at`` (the incident's part, keyword-only, as
    :class:`~gridworker.incidents.source_report.SourceReport`).

    Attributes:
        source_id: ``iot:<device id>`` (the incident's ``camera_id``).
        source_name: the device's name (the incident's ``camera_name``).
        site: the device's site.
        group: the device type (the incident's ``zone_id``).
        alarm: the alarm's id in the type's mapping (the incident's ``rule_id``).
        kind: the incident type (a catalogue entry).
        at: when (Unix seconds).
        active: True: the alarm holds (opens the incident, or updates the open one);
            False: it is over (closes the open one, if any).
        summary: one line about it (the incident's summary).
        details: JSON-able extras (the device, its readings, its own alarm code).
        snapshot: evidence JPEG (video linkage), used when the incident opens.

    Example:
        >>> from gridworker.vision.rules.base import IncidentKind
        >>> kind = IncidentKind("iot_breaker_overcurrent", "智能空开过流报警", "smart breaker overcurrent", "public_safety")
        >>> report = DeviceReport("iot:brk-1", "Block 3 breaker", "estate-7", "smart_breaker", "overcurrent", True, kind=kind, at=1.7e9)
        >>> report.source_id, report.active, report.details
        ('iot:brk-1', True, {})
    """

    source_id: str
    source_name: str
    site: str
    group: str
    alarm: str
    active: bool
