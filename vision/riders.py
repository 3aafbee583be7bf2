"""Riders: persons on bicycles and motorcycles are the vehicle, not pedestrians.

A detector reports a cyclist as two boxes, a "person" and a "bicycle". Rules about persons
(a crowd, a pedestrian in the motor lane, loitering) must not count the rider; rules about
non-motor vehicles must count the vehicle even on frames where only the rider's box was
found. :class:`RiderLinker` pairs them, per frame, from the tracked detections:

* **overlap**: at least ``min_overlap`` of the person's box lies on the vehicle's box, the
  person's feet are within the vehicle's box height (on the pedals or the footrest, not
  beside it on the pavement) and their head above the vehicle's middle;
* **together**: the same pair was seen so on ``hits`` of the person's last ``frames``
  frames, and the person's ground point kept its place relative to the vehicle's within
  ``max_drift`` vehicle heights (a pedestrian walking past a parked bicycle overlaps it for
  a moment, while their offset to it changes by more than ``max_drift`` vehicle heights per
  second);
* **moving**: to *become* a rider, the pair must also have travelled together: since the
  pair was first seen overlapping, the vehicle's ground point and the person's have each
  moved at least :data:`MIN_TRAVEL` vehicle box heights (a person standing behind a parked
  motorcycle overlaps it, at a steady offset, for as long as they like, and stays a
  pedestrian). It is a displacement from where the pair began, not a path length, so box
  jitter does not add up, and it costs four numbers per person track.

A confirmed rider keeps the role through stops: while the pair stays together (overlapping
at a steady offset) no motion is asked for, so a cyclist who rode up to a junction and waits
there is still a rider. The role also survives the pair being apart for up to ``hold_s``
(the detector missing the bicycle for a moment does not turn the cyclist into a
pedestrian), and moves with the rider to another vehicle track they sit on steadily within
that time (the tracker renumbering the waiting motorcycle); a person track that sits
steadily on a vehicle someone rode within ``hold_s`` inherits the role too (the tracker
renumbering the waiting rider). A person who never moved with the vehicle is never a rider.

The result is a *role* per detection: the class the rules should see. A rider whose vehicle
box is on the frame gets the role ``""`` (the vehicle's box stands for both); a rider whose
vehicle box is missing gets the vehicle's class and track id (the rules' clocks of the
vehicle go on); every other box keeps its own class and id.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import supervision as sv

from .config import RiderConfig

#: At most this many person tracks are followed (oldest forgotten first).
MAX_TRACKS = 2048
#: How far, in vehicle box heights, the vehicle's ground point and the person's must each
#: have moved since the pair was first seen overlapping before the person becomes a rider.
#: Half a height is well above a parked vehicle's box jitter (a few hundredths of its height
#: per frame, doubled between two frames) and is ridden in a fraction of a second by a
#: cyclist crossing the view, or in about a second by a far one riding towards the camera.
MIN_TRAVEL = 0.5


@dataclass(frozen=True, slots=True)
class Roles:
    """What each detection of a frame stands for to the rules.

    Attributes:
        classes: (n,) object: its own class; ``""`` for a rider whose vehicle's box is on the
            frame (the vehicle stands for both); the vehicle's class for a rider whose
            vehicle's box is missing.
        ids: (n,) int64: its own track id; the vehicle's for a rider standing in for it.
    """

    classes: np.ndarray
    ids: np.ndarray


@dataclass(slots=True)
class _Pairing:
    """One person track's recent pairings: per frame, the vehicle track and the offset."""

    frames: deque[tuple[int, int, float, float, float]]  # (frame number, vehicle track, dx, dy in vehicle heights, time)
    vehicle: int = -1  # the confirmed vehicle track, -1 while not a rider
    vehicle_class: str = ""
    last_together: float = float("-inf")
    last_seen: float = float("-inf")
    # where the current overlap with ``start_vehicle`` began: both ground points (pixels) and
    # the vehicle's box height then; restarted when the person overlaps another vehicle or
    # none for longer than ``hold_s``
    start_vehicle: int = -1
    start: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 1.0)  # person x, y, vehicle x, y, height
    last_overlap: float = float("-inf")
    first_seen: float = float("-inf")  # when this person track was first seen (inheriting a ride needs a new track)


class RiderLinker:
    """One camera's rider pairing (see the module docstring).

    Example:
        >>> linker = RiderLinker(RiderConfig(hits=1, frames=1))
        >>> dets = sv.Detections(xyxy=np.array([[10., 0., 30., 40.], [5., 20., 35., 50.]]),
        ...                      tracker_id=np.array([1, 2]), data={"class_name": np.array(["person", "bicycle"])})
        >>> linker.update(dets, 0.0).classes.tolist()  # on it, but not moving with it (yet)
        ['person', 'bicycle']
        >>> dets.xyxy += [20., 0., 20., 0.]  # both ride 20 px, more than half the bicycle's height
        >>> linker.update(dets, 0.2).classes.tolist()
        ['', 'bicycle']
    """

    def __init__(self, config: RiderConfig) -> None:
        self.config = config
        self._persons = set(config.person_classes)
        self._vehicles = set(config.vehicle_classes)
        self._tracks: dict[int, _Pairing] = {}
        # vehicle track → (last time a confirmed rider was together with it, that rider's track)
        self._ridden: dict[int, tuple[float, int]] = {}
        self._frame = 0

    def update(self, detections: sv.Detections, now: float) -> Roles:
        """The class and the track id each detection stands for to the rules."""
        self._frame += 1
        n = len(detections)
        names = detections.data.get("class_name")
        roles = np.asarray(names if names is not None else np.full(n, "", dtype=object), dtype=object).copy()
        ids = detections.tracker_id if detections.tracker_id is not None else np.full(n, -1, dtype=np.int64)
        identities = np.asarray(ids, dtype=np.int64).copy()
        if n == 0:
            self._forget(now)
            return Roles(roles, identities)
        person = np.array([str(c) in self._persons for c in roles], dtype=bool) & (ids >= 0)
        vehicle = np.array([str(c) in self._vehicles for c in roles], dtype=bool) & (ids >= 0)
        p_idx, v_idx = np.flatnonzero(person), np.flatnonzero(vehicle)
        match = self._geometric(detections.xyxy, p_idx, v_idx)
        present_vehicle = {int(ids[v]): int(v) for v in v_idx}
        present_person = {int(ids[p]) for p in p_idx}
        cfg = self.config
        for k, p in enumerate(p_idx):
            tid = int(ids[p])
            pairing = self._tracks.pop(tid, None) or _Pairing(deque(maxlen=cfg.frames), first_seen=now)
            self._tracks[tid] = pairing  # re-inserted: ordered by last sighting
            pairing.last_seen = now
            m = int(match[k])
            if m >= 0:
                v = v_idx[m]
                box_p, box_v = detections.xyxy[p], detections.xyxy[v]
                hv = max(float(box_v[3] - box_v[1]), 1.0)
                dx = float((box_p[0] + box_p[2]) - (box_v[0] + box_v[2])) / 2.0 / hv
                dy = float(box_p[3] - box_v[3]) / hv
                vid = int(ids[v])
                pairing.frames.append((self._frame, vid, dx, dy, now))
                moved = self._moved(pairing, vid, box_p, box_v, now)
                if self._together(pairing, vid) and (moved or self._still_riding(pairing, vid, now, present_person)):
                    pairing.vehicle, pairing.vehicle_class = vid, str(roles[v])
                    pairing.last_together = now
                    self._ridden.pop(vid, None)  # re-inserted: ordered by last ride
                    self._ridden[vid] = (now, tid)
            if pairing.vehicle >= 0 and now - pairing.last_together > cfg.hold_s:
                pairing.vehicle, pairing.vehicle_class = -1, ""
            if pairing.vehicle >= 0:
                hidden = pairing.vehicle not in present_vehicle
                roles[p] = pairing.vehicle_class if hidden else ""
                if hidden:
                    identities[p] = pairing.vehicle  # the vehicle's clocks in the rules go on
        self._forget(now)
        return Roles(roles, identities)

    def _geometric(self, xyxy: np.ndarray, p_idx: np.ndarray, v_idx: np.ndarray) -> np.ndarray:
        """(len(p_idx),) index into ``v_idx`` of the vehicle each person sits on, -1 for none."""
        out = np.full(len(p_idx), -1, dtype=np.int64)
        if len(p_idx) == 0 or len(v_idx) == 0:
            return out
        p = np.asarray(xyxy[p_idx], dtype=np.float64)[:, None, :]
        v = np.asarray(xyxy[v_idx], dtype=np.float64)[None, :, :]
        iw = np.clip(np.minimum(p[..., 2], v[..., 2]) - np.maximum(p[..., 0], v[..., 0]), 0, None)
        ih = np.clip(np.minimum(p[..., 3], v[..., 3]) - np.maximum(p[..., 1], v[..., 1]), 0, None)
        p_area = np.maximum((p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1]), 1e-9)
        share = iw * ih / p_area
        hv = np.maximum(v[..., 3] - v[..., 1], 1e-9)
        feet_on = (p[..., 3] >= v[..., 1] + 0.2 * hv) & (p[..., 3] <= v[..., 3] + 0.15 * hv)
        head_up = p[..., 1] <= v[..., 1] + 0.5 * hv
        ok = (share >= self.config.min_overlap) & feet_on & head_up
        score = np.where(ok, share, -1.0)
        best = np.argmax(score, axis=1)
        hit = score[np.arange(len(p_idx)), best] >= 0
        out[hit] = best[hit]
        return out

    def _moved(self, pairing: _Pairing, vehicle: int, box_p: np.ndarray, box_v: np.ndarray, now: float) -> bool:
        """Whether the person and ``vehicle`` have each moved :data:`MIN_TRAVEL` vehicle heights
        since this overlap began (restarting it for a new vehicle or after ``hold_s`` apart)."""
        px, py = float(box_p[0] + box_p[2]) / 2.0, float(box_p[3])
        vx, vy = float(box_v[0] + box_v[2]) / 2.0, float(box_v[3])
        hv = max(float(box_v[3] - box_v[1]), 1.0)
        if pairing.start_vehicle != vehicle or now - pairing.last_overlap > self.config.hold_s:
            pairing.start_vehicle, pairing.start = vehicle, (px, py, vx, vy, hv)
        pairing.last_overlap = now
        x0, y0, u0, v0, h0 = pairing.start
        reach = MIN_TRAVEL * min(h0, hv)
        return float(np.hypot(px - x0, py - y0)) >= reach and float(np.hypot(vx - u0, vy - v0)) >= reach

    def _still_riding(self, pairing: _Pairing, vehicle: int, now: float, present: set[int]) -> bool:
        """A rider already (on this or, within ``hold_s``, another vehicle track: the tracker
        renumbered the vehicle), or on a vehicle whose rider's track was lost on this frame
        after riding it within ``hold_s`` (the tracker renumbered the rider; a pedestrian
        stepping up behind a rider who is still there inherits nothing)."""
        hold = self.config.hold_s
        if pairing.vehicle >= 0 and now - pairing.last_together <= hold:
            return True
        ridden = self._ridden.get(vehicle)
        # the rider's track is gone from this frame and this person track is new since the ride:
        # the same rider renumbered; a person already standing there while the rider rode (and
        # missed by the detector on this one frame) is not
        return ridden is not None and now - ridden[0] <= hold and ridden[1] not in present and pairing.first_seen > ridden[0]

    def _together(self, pairing: _Pairing, vehicle: int) -> bool:
        """Seen on this vehicle on ``hits`` of the last ``frames`` frames, at a steady offset:
        within ``max_drift`` vehicle heights, and drifting less than that per second."""
        cfg = self.config
        recent = [f for f in pairing.frames if f[1] == vehicle and self._frame - f[0] < cfg.frames]
        if len(recent) < cfg.hits:
            return False
        dx = [f[2] for f in recent]
        dy = [f[3] for f in recent]
        if max(max(dx) - min(dx), max(dy) - min(dy)) > cfg.max_drift:
            return False
        first, last = recent[0], recent[-1]
        span = last[4] - first[4]
        return span <= 0 or float(np.hypot(last[2] - first[2], last[3] - first[3])) / span <= cfg.max_drift

    def _forget(self, now: float) -> None:
        stale = now - max(self.config.hold_s, 1.0) * 4
        for tid in [t for t, p in self._tracks.items() if p.last_seen < stale]:
            del self._tracks[tid]
        while len(self._tracks) > MAX_TRACKS:
            del self._tracks[next(iter(self._tracks))]
        for vid in [v for v, (t, _) in self._ridden.items() if now - t > self.config.hold_s]:
            del self._ridden[vid]
        while len(self._ridden) > MAX_TRACKS:
            del self._ridden[next(iter(self._ridden))]
