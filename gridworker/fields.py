"""Constrained number types shared by the configuration models.

A setting's bounds say what kind of quantity it is: a score or part of a whole lies in 0..1, a
grace period or a hold lasts at most a minute, a rule's durations at most an hour or a day. Each
kind is named once here, so that every setting of that kind is checked (and documented in the
JSON schema, as ``minimum``/``maximum``) the same way; a field keeps its own default, title and
description::

    min_confidence: Fraction = Field(0.3, description="Ignore detections below this score.")

Example:
    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(Fraction).validate_python(0.25), TypeAdapter(SecondsUpToMinute).json_schema()
    (0.25, {'maximum': 60.0, 'minimum': 0.0, 'type': 'number'})
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = [
    "AnalysisFps",
    "Fraction",
    "PositiveFraction",
    "RingMegabytes",
    "SecondsUpToDay",
    "SecondsUpToHour",
    "SecondsUpToMinute",
]

#: A score or a part of a whole: 0 (none, or "no threshold") to 1.
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
#: A part of a whole that must be above 0: an overlap, an area share, an IoU.
PositiveFraction = Annotated[float, Field(gt=0.0, le=1.0)]
#: A short time, seconds: a grace period, a hold, a margin around a clip (0: none).
SecondsUpToMinute = Annotated[float, Field(ge=0.0, le=60.0)]
#: A time up to an hour, seconds: how long a condition must hold, or stay clear (0: at once).
SecondsUpToHour = Annotated[float, Field(ge=0.0, le=3600.0)]
#: A time up to a day, seconds: a long stay (parking), a cooldown (0: at once).
SecondsUpToDay = Annotated[float, Field(ge=0.0, le=86_400.0)]
#: Frames per second of a camera that are analysed (decoded frames in between are skipped).
AnalysisFps = Annotated[float, Field(gt=0.0, le=60.0)]
#: The memory cap of one camera's evidence ring (its encoded packets, kept for incident clips), megabytes.
#: At least 0.1 MB: a smaller ring could not hold one keyframe of any real stream (and a cap that
#: rounds to zero bytes would hold nothing at all).
RingMegabytes = Annotated[float, Field(ge=0.1, le=1024.0)]
