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

None of them takes NaN or an infinity (YAML ``.nan``/``.inf``, JSON ``Infinity``, ``1e400``): no
setting means one, and a value that later becomes an integer (``int(mb * 1e6)``) or a thread's
wait would raise at start instead of at load.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = [
    "AnalysisFps",
    "DiskMegabytes",
    "Fraction",
    "PositiveFraction",
    "RingMegabytes",
    "SecondsUpToDay",
    "SecondsUpToHour",
    "SecondsUpToMinute",
]

#: A score or a part of a whole: 0 (none, or "no threshold") to 1.
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
#: A part of a whole that must be above 0: an overlap, an area share, an IoU.
PositiveFraction = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
#: A short time, seconds: a grace period, a hold, a margin around a clip (0: none).
SecondsUpToMinute = Annotated[float, Field(ge=0.0, le=60.0, allow_inf_nan=False)]
#: A time up to an hour, seconds: how long a condition must hold, or stay clear (0: at once).
SecondsUpToHour = Annotated[float, Field(ge=0.0, le=3600.0, allow_inf_nan=False)]
#: A time up to a day, seconds: a long stay (parking), a cooldown (0: at once).
SecondsUpToDay = Annotated[float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)]
#: Frames per second of a camera that are analysed (decoded frames in between are skipped).
AnalysisFps = Annotated[float, Field(gt=0.0, le=60.0, allow_inf_nan=False)]
#: The memory cap of one camera's evidence ring (its encoded packets, kept for incident clips), megabytes.
#: At least 0.1 MB: a smaller ring could not hold one keyframe of any real stream (and a cap that
#: rounds to zero bytes would hold nothing at all).
RingMegabytes = Annotated[float, Field(ge=0.1, le=1024.0, allow_inf_nan=False)]
#: An amount of disk, megabytes of 10^6 bytes (0: none): a free-space floor, a folder's total cap.
#: At most 10^8 MB (100 TB), more than any one volume of the service holds.
DiskMegabytes = Annotated[float, Field(ge=0.0, le=100_000_000.0, allow_inf_nan=False)]
