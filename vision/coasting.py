"""Whether the frame being analysed went through the model or was coasted (motion gating).

A coasted frame (``vision/motion.py``) is analysed with the last inferred frame's detections:
the same boxes once more, not a new sighting. The pipeline analyses every live frame inside
:func:`analysing`; the stages that must tell the two apart look it up with :func:`current`:

* the track confirmation (``filters.TrackConfirmer``) counts only inferred frames, so a track
  is confirmed by what the model saw, never by its own boxes replayed;
* the tracker (``tracker.ModelTrackers``) and the confirmation set :attr:`Sighting.unsure`
  when the frame holds an object the model has not seen often enough yet (a box on one
  inferred frame only, a track not yet confirmed): the pipeline then has the camera's frames
  inferred whatever their motion for :data:`UNSURE_INFER_S`, so one detection is never
  replayed for ``refresh_s``, and an object the model finds now and then gets the looks it
  would get without gating (ByteTrack starts a track on two sightings in a row).

Analyses outside :func:`analysing` (patrol visits, scripted scenes, ``gridworker replay``
without gating) treat every frame as inferred and report nothing. A context variable, not an
argument, because the analyser between the pipeline and these stages passes only the frame
and its detections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["UNSURE_INFER_S", "Sighting", "analysing", "current"]

#: After a frame holding an object the model has not seen often enough, the camera's frames
#: are inferred, motion or not, for this long (frame time).
UNSURE_INFER_S = 1.0


@dataclass(slots=True)
class Sighting:
    """The frame being analysed: ``coasted`` (its detections are the last inferred frame's),
    and ``unsure``, set by the analysis stages: infer the camera's next frame."""

    coasted: bool
    unsure: bool = False


_current: ContextVar[Sighting | None] = ContextVar("gridworker_sighting", default=None)


@contextmanager
def analysing(*, coasted: bool) -> Iterator[Sighting]:
    """Analyse one frame inside this block; read ``unsure`` from what it yields afterwards."""
    sighting = Sighting(coasted)
    token = _current.set(sighting)
    try:
        yield sighting
    finally:
        _current.reset(token)


def current() -> Sighting | None:
    """The frame being analysed, or None outside :func:`analysing` (count it as inferred)."""
    return _current.get()
