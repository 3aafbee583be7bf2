"""Incidents: the lifecycle (``IncidentManager``) and persistence (``IncidentStore``).

A top-level package of its own because incidents are neither frames in (streams), pixels
(vision) nor HTTP (api): they are the product's output, which later grows dispatch,
forwarding and audit.
"""

from .manager import CameraInfo, IncidentManager
from .store import CLOSED, OPEN, Incident, IncidentQuery, IncidentStore

__all__ = ["CLOSED", "OPEN", "CameraInfo", "Incident", "IncidentManager", "IncidentQuery", "IncidentStore"]
