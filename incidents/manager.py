"""Incident lifecycle: open when a rule's condition holds, update while it holds, close after
it has been clear for ``clear_after_s``.

Zone-level rules (crowd, intrusion, …) have one open incident per camera + zone + rule.
Per-object rules (parking, loitering, vending, wrong way, speeding, red light) report each
object as a ``Hit`` with a key of its own, and each object is its own incident, keyed
camera + zone + rule + object (three cars parked on one kerb are three incidents); the
object's key is stored as ``details["object"]``.

An open incident shows its **worst** frame: whenever a frame is at least as bad as any before
(the rule's ``severity``: the highest speed, the longest stay; a zone-level rule without one
uses its count, so a crowd shows its peak), its details and summary become that frame's, with
``details["worst"]`` (the value) and ``details["worst_at"]`` (when). They are written with the
incident's progress: every ``write_interval_s``, at once for a new peak count, within a second
for a worst value 5 % above the one written (a new top speed), and on close.

The objects an incident highlights (``details["track_ids"]``: the snapshot's boxes, the clip's
overlay) are followed while it is open: every track id its triggering objects show on a frame
joins them (a tracker ID switch the rule handed on, an object back in the cooldown under a new
id, a crowd's new members), at most ``MAX_TRACK_IDS``, the least recently seen dropped first.
A per-object incident's new id (an ID switch) is written like a new top speed, within a
second; a zone-level incident's (a crowd's members come and go) with its next interval write;
frames that bring none write nothing more. The clip recorder reads them when it cuts the clip (:meth:`IncidentManager.highlighted`).

Only watched time counts as clear: a gap between two frames of a camera much longer than its
usual frame interval (a stream outage, a reconnect, a stalled pipeline) is not time the
condition was seen clear, so it does not count towards ``clear_after_s`` (see :class:`_FrameClock`).
An incident opened by a check's report (the patrol's revisit check) is cleared by that check's
reports only: a frame's verdicts keep it open while they see its object, never close it.
"""

from __future__ import annotations

import heapq
import logging
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gridworker.vision.analyzer import FrameAnalysis, RuleVerdict
from gridworker.vision.config import ZoneConfig
from gridworker.vision.observations import ObjectReport, ObjectSighting
from gridworker.vision.rules import Hit

from .devices import DeviceReport  # IoT alarms (issue 14)
from .snapshots import EvidenceRenderer, subject_track_ids
from .trail import TrackTrail
from .store import Incident, IncidentStore

if TYPE_CHECKING:  # reports from people (issue 15); imported for the annotation only (reports.py imports cases)
    from .reports import ReportObservation

log = logging.getLogger(__name__)

RuleKey = tuple[str, str, str]  # camera_id, zone_id, rule_id
Key = tuple[str, str, str, str]  # camera_id, zone_id, rule_id, object key ("" for zone-level rules)


@dataclass(slots=True)
class _Open:
    incident_id: int
    type: str
    last_active: float
    last_written: float
    peak: int
    pending_observations: int = 0
    summary: str = ""
    #: adopted after a restart for a per-object rule: the object's box when the incident
    #: opened (normalised xyxy), for a new key of the same object to take it over
    orphan_box: tuple[float, float, float, float] | None = None
    #: the worst severity seen (the rule's measure: km/h, persons, seconds) and, until they are
    #: written, the details of that frame (the stored incident shows its worst frame)
    worst: float | None = None
    worst_details: dict[str, Any] | None = None
    written_worst: float | None = None  # the worst as last written
    cooldown_s: float = 0.0  # the rule's: once closed, the key opens nothing for this long
    #: opened by a check's report (the revisit check): only that check's reports clear it
    reported: bool = False
    #: the track ids drawn as the incident's objects (``details["track_ids"]``): every id its
    #: triggering objects had while it was open, least recently seen first, at most
    #: ``MAX_TRACK_IDS`` (see :func:`_follow`); ``ids_changed``: one joined since the last write
    track_ids: dict[int, None] = field(default_factory=dict)
    ids_changed: bool = False


class ClockKeeper(Protocol):
    """What keeps rule clocks per object (``CameraAnalyzer``)."""

    def restore(self, zone_id: str, rule_id: str, key: str, box: tuple[float, float, float, float], class_name: str) -> bool: ...


@dataclass(slots=True)
class _Cooling:
    """A closed incident in its rule's cooldown: its key opens nothing new until ``until``;
    the same object (or a zone's condition) back before then continues ``state``."""

    until: float
    state: _Open


@dataclass(slots=True)
class _FrameClock:
    """When a camera's last frame came and its usual interval (the median of the last
    ``GAP_WINDOW`` gaps): a gap longer than ``OUTAGE_FACTOR`` usual intervals (at least
    ``OUTAGE_MIN_S``) was not watched."""

    last: float
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=GAP_WINDOW))

    def unwatched(self, now: float) -> float:
        """Seconds before ``now`` since the previous frame that nobody watched (0.0: the gap was
        a usual one, or this is the first frame, or frames came out of order)."""
        gap = now - self.last
        if gap <= 0:
            if gap < -OUTAGE_MIN_S:  # the host clock was set back: measure from here, or outages go unseen until it catches up
                self.last = now
            return 0.0
        usual = statistics.median(self.gaps) if self.gaps else gap
        self.gaps.append(gap)  # an outage too: a camera whose rate was lowered learns its new interval
        self.last = now
        return gap if gap > max(OUTAGE_MIN_S, OUTAGE_FACTOR * usual) else 0.0


@dataclass(frozen=True, slots=True)
class CameraInfo:
    name: str = ""
    site: str = ""


@dataclass
class IncidentManager:
    """Turns per-frame rule verdicts into stored incidents.

    ``observe`` is called by the pipeline's post-processing thread; ``close_camera`` and
    the read-only views may be called from API threads, hence the lock.

    Args:
        store: where incidents go.
        camera_info: camera id → name/site, looked up when an incident opens.
        snapshots: draws the evidence snapshot of an opening incident (the triggering objects named).
        write_interval_s: while an incident stays open, write its progress at most this often.
        on_open: callbacks (e.g. metrics) called with each newly opened incident.
        on_close: callbacks called with (incident id, time) when an incident's condition
            has cleared and it closed (work orders verify closing on camera with it).
        on_reopen: callbacks called with (incident id, time) when a closed incident's object
            came back within the rule's ``cooldown_s`` and the incident continues (one
            incident per real event: a parked car the detector lost for a while).
        on_listener_error: told ``(event, listener name)`` when an ``on_open``/``on_close``
            callback raised (it is logged with its traceback too; the others still run).
            The service counts them in ``gridworker_listener_failures``.
        trail: where each analysed frame's tracked boxes are kept for a while, so an
            evidence clip can carry its triggering objects' boxes (``incidents/trail.py``).

    Every incident is opened, updated and closed here, from three kinds of observation:
    :meth:`observe` (one analysed frame's rule verdicts), :meth:`report` (a check's word on
    the objects of one camera + zone + rule, e.g. the patrol's revisit check) and
    :meth:`device_report` (an IoT device's alarm, docs/iot.md).
    """

    store: IncidentStore
    camera_info: Callable[[str], CameraInfo]
    snapshots: EvidenceRenderer = field(default_factory=EvidenceRenderer)
    write_interval_s: float = 5.0
    on_open: list[Callable[[Incident], object]] = field(default_factory=list)  # what a listener returns is ignored
    on_close: list[Callable[[int, float], object]] = field(default_factory=list)
    on_reopen: list[Callable[[int, float], object]] = field(default_factory=list)
    on_listener_error: Callable[[str, str], None] | None = None
    trail: TrackTrail | None = None
    _open: dict[Key, _Open] = field(default_factory=dict, init=False)
    #: key → its closed incident, in the rule's ``cooldown_s`` after the close
    _cooling: dict[Key, _Cooling] = field(default_factory=dict, init=False)
    _sweep_at: float = field(default=float("-inf"), init=False)  # when expired cooldowns are next swept
    #: camera id → when its last frame came (only watched time counts towards ``clear_after_s``)
    _frames: dict[str, _FrameClock] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def adopt_open(self, valid_rules: Iterable[RuleKey], now: float) -> None:
        """After a restart: keep stored open incidents whose camera/zone/rule still exist
        (they close normally once their condition stays clear), close the rest.

        A per-object incident is adopted under its stored ``details["object"]``. Rule clocks
        live in memory, so after a restart the rules judge every object afresh and give it a
        new key. An object that qualifies again while the adopted incident is still open
        (within ``clear_after_s`` of the restart) and stands where the incident's object
        stood (its box, ``details["box"]``, overlapping by IoU >= ``ORPHAN_IOU``) continues
        that incident; otherwise the adopted incident closes ``clear_after_s`` after the
        restart, and an object still there (a car still parked) opens a new incident once it
        qualifies again (for parking: after ``min_duration_s`` more).
        """
        valid = set(valid_rules)
        for inc in self.store.open_incidents():
            obj = inc.details.get("object", "") if isinstance(inc.details, dict) else ""
            key = (inc.camera_id, inc.zone_id, inc.rule_id, str(obj or ""))
            with self._lock:
                current = self._open.get(key)
                if key[:3] in valid and current is None:
                    box = inc.details.get("box") if key[3] and isinstance(inc.details, dict) else None
                    orphan = tuple(float(v) for v in box) if isinstance(box, list) and len(box) == 4 else None
                    stored = inc.details.get("worst") if isinstance(inc.details, dict) else None
                    worst = float(stored) if isinstance(stored, (int, float)) else None
                    current = self._open[key] = _Open(
                        inc.id, inc.type, last_active=now, last_written=now, peak=inc.peak_count, orphan_box=orphan,  # type: ignore[arg-type]
                        summary=inc.summary, worst=worst, written_worst=worst, reported=_by_revisit(inc.details),
                        track_ids=_stored_track_ids(inc.details),
                    )
                keep = current is not None and current.incident_id == inc.id
            if not keep:  # its rule is gone, or a duplicate of an incident already open
                self.store.close_incident(inc.id, at=now)

    def restore_rule_clocks(self, analyzer_of: Callable[[str], ClockKeeper | None]) -> int:
        """After :meth:`adopt_open`: give each adopted per-object incident's rule back its
        object's clock, so that a car parked for ten minutes before a restart has been parked
        for ten minutes after it (its incident continues under the same object key) instead
        of arriving anew. ``analyzer_of(camera_id)`` is the camera's analyser, or None to skip
        it. Returns how many clocks came back (rules without per-object clocks take none)."""
        with self._lock:
            adopted = {o.incident_id for o in self._open.values()}
        restored = 0
        for inc in self.store.open_incidents():
            details = inc.details if isinstance(inc.details, dict) else {}
            key, box = details.get("object"), details.get("box")
            if inc.id not in adopted or not isinstance(key, str) or not key or not isinstance(box, list) or len(box) != 4:
                continue
            analyzer = analyzer_of(inc.camera_id)
            if analyzer is None:
                continue
            try:
                xyxy = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            except (TypeError, ValueError):
                continue
            restored += bool(analyzer.restore(inc.zone_id, inc.rule_id, key, xyxy, str(details.get("class", ""))))
        return restored

    def highlighted(self, incident_id: int) -> list[int] | None:
        """The track ids incident ``incident_id`` highlights now (``details["track_ids"]``,
        least recently seen first): every id its triggering objects had while it was open,
        at most ``MAX_TRACK_IDS``. From memory while it is open or in its cooldown (ids that
        joined since the last write included), else as stored; None for no such incident.
        The clip recorder asks this when it cuts the incident's clip (``ClipRecorder(highlighted=...)``).
        """
        with self._lock:
            for state in self._open.values():
                if state.incident_id == incident_id:
                    return list(state.track_ids)
            for entry in self._cooling.values():
                if entry.state.incident_id == incident_id:
                    return list(entry.state.track_ids)
        inc = self.store.get(incident_id)
        return None if inc is None else list(_stored_track_ids(inc.details))

    def open_count(self, camera_id: str | None = None) -> int:
        with self._lock:
            return sum(1 for k in self._open if camera_id is None or k[0] == camera_id)

    def open_types(self, camera_id: str) -> list[str]:
        with self._lock:
            return sorted({o.type for k, o in self._open.items() if k[0] == camera_id})

    def observe(self, analysis: FrameAnalysis, *, partial: bool = False) -> list[Incident]:
        """Apply one frame's verdicts; returns incidents opened by it."""
        now = analysis.frame.ts
        cam = analysis.frame.camera_id
        if self.trail is not None:
            self.trail.record(analysis)
        opened: list[Incident] = []
        with self._lock:
            open_keys = [k for k in self._open if k[0] == cam]
            clock = self._frames.get(cam)
            if clock is None:
                self._frames[cam] = _FrameClock(now)
            unwatched = 0.0 if clock is None else clock.unwatched(now)
            if unwatched > 0:  # nobody saw the condition clear meanwhile: the clear clocks stop over the gap
                for k in open_keys:
                    state = self._open[k]
                    state.last_active = min(now, state.last_active + unwatched)
            reported = {k for k in open_keys if self._open[k].reported}
        if unwatched > 0 and open_keys:
            log.info("camera %s: %.1f s without frames; not counted as clear for its %d open incident(s)", cam, unwatched, len(open_keys))
        self._sweep_cooling(now)
        by_rule: dict[RuleKey, list[Key]] = {}
        for k in open_keys:
            by_rule.setdefault(k[:3], []).append(k)
        seen: set[RuleKey] = set()
        try:  # a later verdict failing (the database, a snapshot) must not cost the ones opened before it their listeners
            for verdict in analysis.verdicts:
                rule_key = (cam, verdict.zone_id, verdict.rule_id)
                seen.add(rule_key)
                active: set[Key] = set()
                for obj, hit in _objects(verdict):
                    key = (*rule_key, obj)
                    if hit is not None:
                        self._take_orphan(key, by_rule.get(rule_key, []), _box(analysis, hit))
                    active.add(key)
                    inc = self._on_active(key, verdict, analysis, now, hit)
                    if inc is not None:
                        opened.append(inc)
                # this rule's open incidents whose object (or condition) is not there on this frame;
                # a revisit incident is the revisit check's to clear (a watch stop's tracked rule
                # cannot see a car parked before the stop began until it has watched it that long)
                for key in by_rule.get(rule_key, ()):
                    if key not in active and key not in reported:
                        self._on_clear(key, verdict.clear_after_s, now)
            # rules that vanished from the config (zones edited) close their incidents; a partial
            # analysis (a patrol glance runs only the rules that need no tracking) says nothing
            # about the rules it left out
            for key in open_keys:
                if not partial and key[:3] not in seen:
                    self._close(key, now, cleared=False)
        finally:
            self._opened(opened)
        return opened

    def report(self, report: ObjectReport) -> list[Incident]:
        """Apply a check's word on one camera + zone + rule (see :class:`ObjectReport`);
        returns the incidents it opened.

        An object that qualifies opens its incident (``details["object"]`` is its key,
        ``details["box"]`` its box) or keeps its own open; an object that does not qualify
        yet keeps an incident already open on it. A key not open yet first takes over an
        incident adopted after a restart whose object stood at the same place (box IoU >=
        ``ORPHAN_IOU``). Open incidents of the rule whose object is not listed clear.
        """
        now = report.at
        rule_key = (report.camera_id, report.zone_id, report.rule_id)
        with self._lock:
            rule_keys = [k for k in self._open if k[:3] == rule_key]
        self._sweep_cooling(now)
        opened: list[Incident] = []
        seen: set[Key] = set()
        try:  # (as in observe: what opened before a failure still reaches the listeners)
            for obj in report.objects:
                key = (*rule_key, obj.key)
                self._take_orphan(key, rule_keys, obj.box)
                with self._lock:
                    state = self._open.get(key)
                if state is None and not obj.qualifies:
                    continue
                seen.add(key)
                if state is None:
                    inc = self._open_reported(key, report, obj)
                    if inc is not None:
                        opened.append(inc)
                    continue
                state.last_active = now
                state.pending_observations += 1
                if now - state.last_written >= self.write_interval_s:
                    self._write(state, now, state.peak)
            for key in rule_keys:
                if key not in seen:
                    self._on_clear(key, report.clear_after_s, now)
        finally:
            self._opened(opened)
        return opened

    def _open_reported(self, key: Key, report: ObjectReport, obj: ObjectSighting) -> Incident | None:
        cooling = self._cooling_entry(key, report.at)
        if cooling is not None:  # back within the cooldown: the closed incident continues, as on a live camera
            state = self._reopen(key, cooling, report.at)
            if state is not None:
                state.pending_observations += 1
            return None
        info = self.camera_info(key[0])
        kind = report.kind
        details: dict[str, Any] = {
            **obj.details,
            "object": obj.key,
            "box": [round(v, 4) for v in obj.box],
            **kind.names(),
        }
        if report.frame_seq is not None:
            details["frame_seq"] = report.frame_seq
        inc = self.store.open(
            camera_id=key[0], camera_name=info.name, site=info.site, zone_id=key[1], rule_id=key[2], type=kind.code,
            at=report.at, count=1, summary=obj.summary, details=details, snapshot=obj.snapshot,
        )
        with self._lock:
            self._open[key] = _Open(
                inc.id, kind.code, last_active=report.at, last_written=report.at, peak=1, summary=obj.summary,
                cooldown_s=report.cooldown_s, reported=True,
            )
        log.info("incident %s opened: %s on %s/%s: %s", inc.id, kind.code, key[0], key[1], obj.summary)
        return inc

    def _cooling_entry(self, key: Key, now: float) -> _Cooling | None:
        """``key``'s closed incident while it may not open a new one (its rule's cooldown), else None."""
        with self._lock:
            entry = self._cooling.get(key)
            if entry is None:
                return None
            if now < entry.until:
                return entry
            del self._cooling[key]
            return None

    def _sweep_cooling(self, now: float) -> None:
        """Forget the cooldowns over by ``now`` (the keys of objects long gone), at most once
        every ``COOLING_SWEEP_S``: the table holds only cooldowns still running."""
        with self._lock:
            if self._sweep_at - COOLING_SWEEP_S <= now < self._sweep_at:  # (a clock far behind sweeps at once)
                return
            self._sweep_at = now + COOLING_SWEEP_S
            for k in [k for k, c in self._cooling.items() if c.until <= now]:
                del self._cooling[k]

    def _cool(self, key: Key, entry: _Cooling) -> None:
        """Start ``key``'s cooldown; past ``MAX_COOLING`` running ones the soonest to end go first."""
        with self._lock:
            self._cooling[key] = entry
            if len(self._cooling) > MAX_COOLING:
                extra = len(self._cooling) - MAX_COOLING
                for k, _ in heapq.nsmallest(extra, self._cooling.items(), key=lambda kc: kc[1].until):
                    del self._cooling[k]
                log.warning("more than %d cooldowns running: the %d ending soonest were dropped", MAX_COOLING, extra)

    def _reopen(self, key: Key, entry: _Cooling, now: float) -> _Open | None:
        """Continue a closed incident whose object came back within the cooldown (None: it
        cannot be, e.g. deleted by retention meanwhile; the key stays quiet then)."""
        if not self.store.reopen_incident(entry.state.incident_id):
            return None
        state = entry.state
        state.last_active = now
        with self._lock:
            self._cooling.pop(key, None)
            self._open[key] = state
        for callback in self.on_reopen:
            try:
                callback(state.incident_id, now)
            except Exception:
                log.exception("incident %s: reopen callback %s failed", state.incident_id, _name(callback))
                self._listener_failed("reopen", callback)
        log.info("incident %s continues: %s on %s/%s came back within the cooldown", state.incident_id, state.type, key[0], key[1])
        return state

    def _opened(self, incidents: list[Incident]) -> None:
        for inc in incidents:
            for callback in self.on_open:
                try:
                    callback(inc)
                except Exception:  # one listener (clips, metrics, work orders) must not cost the others
                    log.exception("incident %s: open callback %s failed", inc.id, _name(callback))
                    self._listener_failed("open", callback)

    def _listener_failed(self, event: str, callback: Callable[..., object]) -> None:
        if self.on_listener_error is not None:
            try:
                self.on_listener_error(event, _name(callback))
            except Exception:
                log.exception("counting a failed %s listener failed", event)

    def close_camera(self, camera_id: str, now: float) -> None:
        """The camera (or device) is gone: its open incidents close, their cases are not verified."""
        with self._lock:
            keys = [k for k in self._open if k[0] == camera_id]
            self._frames.pop(camera_id, None)
        failed: Exception | None = None
        for key in keys:  # every one tried: one failing write does not keep the others open
            try:
                self._close(key, now, cleared=False)
            except Exception as exc:  # noqa: BLE001 - kept open (see _close), the first error raised below
                failed = failed or exc
        if failed is not None:
            raise failed

    def _on_active(self, key: Key, verdict: RuleVerdict, analysis: FrameAnalysis, now: float, hit: Hit | None) -> Incident | None:
        result = verdict.result
        if hit is not None:  # one object of a per-object rule: its own incident
            count, summary, subjects, severity = 1, hit.summary, hit.subjects, hit.severity
            details = {**hit.details, "object": hit.key}
            box = _box(analysis, hit)
            if box is not None:
                details["box"] = [round(v, 4) for v in box]
        else:
            count, summary, subjects, details = result.count, result.summary, result.subjects, dict(result.details)
            severity = result.severity
        worst = float(count if severity is None else severity)
        details.update(worst=round(worst, 3), worst_at=round(now, 3))
        with self._lock:
            state = self._open.get(key)
        if state is None and (cooling := self._cooling_entry(key, now)) is not None:
            state = self._reopen(key, cooling, now)
            if state is None:
                return None
        if state is None:
            info = self.camera_info(key[0])
            zone = next((z.config for z in analysis.zones if z.id == verdict.zone_id), None)
            snapshot = self.snapshots.render(
                analysis.frame.image,
                analysis.detections,
                subjects,
                zone=zone.polygon if zone is not None else None,
                zone_name=(zone.name if isinstance(zone, ZoneConfig) and zone.name else verdict.zone_id),
            )
            followed: dict[int, None] = {}
            _follow(followed, subject_track_ids(analysis.detections, subjects))
            if followed:
                details["track_ids"] = list(followed)
            inc = self.store.open(
                camera_id=key[0],
                camera_name=info.name,
                site=info.site,
                zone_id=verdict.zone_id,
                rule_id=verdict.rule_id,
                type=verdict.kind.code,
                at=now,
                count=count,
                summary=summary,
                details={**details, "frame_seq": analysis.frame.seq, **verdict.kind.names()},
                snapshot=snapshot,
            )
            with self._lock:
                self._open[key] = _Open(
                    inc.id, verdict.kind.code, last_active=now, last_written=now, peak=count, summary=summary, worst=worst, written_worst=worst,
                    cooldown_s=verdict.cooldown_s, track_ids=followed,
                )
            log.info("incident %s opened: %s on %s/%s: %s", inc.id, verdict.kind.code, key[0], verdict.zone_id, summary)
            return inc
        state.last_active = now
        state.pending_observations += 1
        if state.worst is None or worst >= state.worst:  # as bad as ever (ties: the latest): the incident shows this frame
            state.worst, state.worst_details, state.summary = worst, details, summary
        # the objects' boxes on this frame, under whatever ids they have now (a tracker's ID
        # switch the rule handed on, a crowd's new members): the evidence follows them
        ids = subject_track_ids(analysis.detections, subjects)
        if ids:
            with self._lock:  # (read by highlighted() from the clip recorder's thread)
                if _follow(state.track_ids, ids):
                    state.ids_changed = True
        # a markedly worse frame (a new top speed) or a new object id is written soon, at most
        # once a second: an operator opening the case sees it; slow growth (a stay's seconds)
        # waits for the interval
        rising = state.worst_details is not None and (state.written_worst is None or state.worst > state.written_worst * PROMPT_RISE)
        # one object's new id (an ID switch) is written soon; a zone-level incident's members come
        # and go all the time (a crowd): theirs wait for the interval (the clip reads them from memory)
        prompt = rising or (state.ids_changed and hit is not None)
        due = now - state.last_written >= self.write_interval_s or (prompt and now - state.last_written >= PROMPT_MIN_S)
        if count > state.peak or due:
            state.peak = max(state.peak, count)
            self._write(state, now, count)
        return None

    def _write(self, state: _Open, at: float, count: int) -> None:
        """Write an open incident's progress: observations, peak, its worst frame's summary and
        details, and its objects' track ids when one joined since the last write."""
        details = state.worst_details
        changed = state.ids_changed
        if changed:
            with self._lock:
                details = {**(details or {}), "track_ids": list(state.track_ids)}
        self.store.touch(state.incident_id, at=at, count=count, summary=state.summary, observations=state.pending_observations, details=details)
        if changed:
            state.ids_changed = False
        state.pending_observations = 0
        state.worst_details = None
        state.written_worst = state.worst
        state.last_written = at

    def _take_orphan(self, key: Key, rule_keys: list[Key], box: tuple[float, float, float, float] | None) -> None:
        """A new object key not open yet: if an incident adopted after a restart for the same
        rule was opened on an object standing where this one stands, continue it under
        ``key`` (``rule_keys`` is updated so the orphan is not also cleared)."""
        if box is None:
            return
        with self._lock:
            if key in self._open:
                return
            best: tuple[float, Key] | None = None
            for k in rule_keys:
                state = self._open.get(k)
                if state is None or state.orphan_box is None:
                    continue
                iou = _iou(state.orphan_box, box)
                if iou >= ORPHAN_IOU and (best is None or iou > best[0]):
                    best = (iou, k)
            if best is None:
                return
            state = self._open.pop(best[1])
            state.orphan_box = None
            self._open[key] = state
        rule_keys[rule_keys.index(best[1])] = key
        log.info("incident %s continues after the restart as object %s", state.incident_id, key[3])

    def _on_clear(self, key: Key, clear_after_s: float, now: float) -> None:
        with self._lock:
            state = self._open.get(key)
        if state is not None and now - state.last_active >= clear_after_s:
            self._close(key, now)

    def _close(self, key: Key, now: float, *, cleared: bool = True) -> None:
        """Close ``key``'s incident. ``cleared``: its condition cleared (on camera, or a device's
        restore), so its cooldown starts and ``on_close`` is told (a handled case closes
        verified). Not cleared: the camera or device went away, or the rule was taken out of the
        scene; the incident closes and its case carries on untouched."""
        with self._lock:  # taken out first: a close running on another thread finds nothing to close
            state = self._open.pop(key, None)
        if state is None:
            return
        try:
            if state.pending_observations or state.worst_details is not None or state.ids_changed:
                self._write(state, state.last_active, state.peak)
            self.store.close_incident(state.incident_id, at=now)
        except Exception:  # still open in the database (a failover, a full disk): kept, so the next frame closes it again
            with self._lock:
                self._open.setdefault(key, state)
            raise
        if not cleared:
            log.info("incident %s closed without its condition clearing (%s on %s/%s): its case is left as it is", state.incident_id, state.type, key[0], key[1])
            return
        self._sweep_cooling(now)
        if state.cooldown_s > 0:
            self._cool(key, _Cooling(now + state.cooldown_s, state))
        for callback in self.on_close:
            try:
                callback(state.incident_id, now)
            except Exception:  # a failing listener must not stop the pipeline or the others
                log.exception("incident %s: close callback %s failed", state.incident_id, _name(callback))
                self._listener_failed("close", callback)
        log.info("incident %s closed (%s on %s/%s%s)", state.incident_id, state.type, key[0], key[1], f" object {key[3]}" if key[3] else "")

    # --- IoT device alarms (issue 14, docs/iot.md) ----------------------------------------
    def device_report(self, report: DeviceReport) -> Incident | None:
        """Apply a device's word on one of its alarms (see :class:`DeviceReport`); returns the
        incident it opened, if any.

        One incident per device + alarm (key ``source_id, group, alarm``): an active report
        opens it, or updates the open one (observations, summary, details merged, written
        every ``write_interval_s``); an inactive one closes it (``on_close``: a handled case
        closes verified). The caller serialises reports of one device.
        """
        key = (report.source_id, report.group, report.alarm, "")
        with self._lock:
            state = self._open.get(key)
        if not report.active:
            if state is not None:
                self._close(key, report.at)
            return None
        if state is not None:
            state.last_active = report.at
            state.pending_observations += 1
            state.summary = report.summary or state.summary
            state.worst_details = {**(state.worst_details or {}), **report.details, "last_at": round(report.at, 3)}
            if report.at - state.last_written >= self.write_interval_s:
                try:
                    self._write(state, report.at, state.peak)
                except Exception:  # not written: the caller sends this report again, which counts it then
                    state.pending_observations -= 1
                    raise
            return None
        kind = report.kind
        inc = self.store.open(
            camera_id=report.source_id, camera_name=report.source_name, site=report.site, zone_id=report.group,
            rule_id=report.alarm, type=kind.code, at=report.at, count=1, summary=report.summary,
            details=report.incident_details(), snapshot=report.snapshot,
        )
        with self._lock:
            self._open[key] = _Open(inc.id, kind.code, last_active=report.at, last_written=report.at, peak=1, summary=report.summary)
        log.info("incident %s opened: %s from %s: %s", inc.id, kind.code, report.source_id, report.summary)
        self._opened([inc])
        return inc

    def open_sources(self, prefix: str) -> list[tuple[Key, int]]:
        """Open incidents whose source (``camera_id``) starts with ``prefix``: (key, incident id)."""
        with self._lock:
            return [(k, o.incident_id) for k, o in self._open.items() if k[0].startswith(prefix)]

    # --- end IoT device alarms ------------------------------------------------------------

    # --- reports from people (issue 15, docs/people.md) -------------------------------------
    def resident_report(self, report: ReportObservation) -> Incident:
        """Open the incident of a person's report (a resident's photo report, a 12345 case; see
        :class:`~gridworker.incidents.reports.ReportObservation`) and tell ``on_open``.

        A report is a one-off observation: nothing watches its condition clear, so its
        incident is stored closed at the moment it opens and is kept in no open-incident map
        (``on_close`` is not called: the case is not marked cleared). Its case runs until a
        person handles it and an operator closes it. Every report opens its own incident
        (key ``report:<channel>, channel, r<report id>``)."""
        kind = report.kind
        inc = self.store.open(
            camera_id=report.source_id, camera_name=report.channel, site=report.site, zone_id=report.channel,
            rule_id=f"r{report.report_id}", type=kind.code, at=report.at, count=1, summary=report.summary,
            details=report.incident_details(), snapshot=report.snapshot,
        )
        self.store.close_incident(inc.id, at=report.at)
        log.info("incident %s opened: %s reported through %s (report %s)", inc.id, kind.code, report.channel, report.report_id)
        self._opened([inc])
        return inc

    def report_incident(self, channel: str, report_id: int) -> int | None:
        """The incident opened for report ``report_id`` of ``channel`` (its key, above), if any."""
        return self.store.latest_of(f"report:{channel}", channel, f"r{report_id}")

    # --- end reports from people ------------------------------------------------------------


#: A worst value this much above the one last written is written within ``PROMPT_MIN_S``.
PROMPT_RISE = 1.05
PROMPT_MIN_S = 1.0

#: An incident highlights at most this many track ids (``details["track_ids"]``): past it, the
#: ids seen least recently are dropped as new ones join (a crowd of more objects than this on one
#: frame keeps the ones it already had). Ids still on the latest frame are never dropped for new ones.
MAX_TRACK_IDS = 64

#: How much an object's box must overlap the box of an incident adopted after a restart to continue it.
ORPHAN_IOU = 0.5

#: A camera's usual frame interval is the median of its last this many gaps between frames.
GAP_WINDOW = 15
#: A gap between two frames longer than this many usual intervals, and than ``OUTAGE_MIN_S``,
#: was not watched: it does not count towards an open incident's ``clear_after_s``.
OUTAGE_FACTOR = 3.0
OUTAGE_MIN_S = 2.0

#: Expired cooldowns are swept at most this often (seconds of observation time) ...
COOLING_SWEEP_S = 30.0
#: ... and at most this many run at once (past it, those ending soonest are forgotten).
MAX_COOLING = 4096


def _by_revisit(details: object) -> bool:
    """A stored incident opened by the patrol's revisit check (its details say ``method: revisit``)."""
    return isinstance(details, dict) and details.get("method") == "revisit"


def _follow(followed: dict[int, None], ids: Iterable[int]) -> bool:
    """Note the track ids a frame shows an incident's objects under in ``followed`` (insertion
    order: least recently seen first); True when one is new. Ids already followed move to the
    end; new ones join after them while there is room among ``MAX_TRACK_IDS`` for every id of
    this frame; past the cap the least recently seen ids are dropped (never one of this frame)."""
    current = list(dict.fromkeys(int(i) for i in ids))
    known = [i for i in current if i in followed]
    fresh = [i for i in current if i not in followed][: max(0, MAX_TRACK_IDS - len(known))]
    for i in known:
        del followed[i]
        followed[i] = None
    for i in fresh:
        followed[i] = None
    while len(followed) > MAX_TRACK_IDS:
        del followed[next(iter(followed))]
    return bool(fresh)


def _stored_track_ids(details: object) -> dict[int, None]:
    """An incident's stored ``details["track_ids"]`` (the last ``MAX_TRACK_IDS``), as ``_Open.track_ids``."""
    ids = details.get("track_ids") if isinstance(details, dict) else None
    if not isinstance(ids, list):
        return {}
    return dict.fromkeys([int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool)][-MAX_TRACK_IDS:])


def _name(callback: Callable[..., object]) -> str:
    """A listener's name for logs and the failure metric: its qualified name, or its class's."""
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    return str(name)


def _box(analysis: FrameAnalysis, hit: Hit) -> tuple[float, float, float, float] | None:
    """The hit's subjects' enclosing box, normalised to the frame; None when none is visible."""
    idx = [int(i) for i in hit.subjects if 0 <= int(i) < len(analysis.detections)]
    if not idx:
        return None
    xyxy = analysis.detections.xyxy[idx]
    w, h = max(analysis.frame.width, 1), max(analysis.frame.height, 1)
    return (float(xyxy[:, 0].min()) / w, float(xyxy[:, 1].min()) / h, float(xyxy[:, 2].max()) / w, float(xyxy[:, 3].max()) / h)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _objects(verdict: RuleVerdict) -> list[tuple[str, Hit | None]]:
    """The (object key, hit) pairs a verdict holds on this frame: one per hit of an active
    per-object verdict (the first of hits sharing a key), ``("", None)`` for an active
    zone-level one, none while inactive."""
    result = verdict.result
    if not result.active:
        return []
    if not verdict.per_object or not result.hits:  # (a per-object rule naming nobody: the zone's condition)
        return [("", None)]
    out: dict[str, Hit] = {}
    for hit in result.hits:
        out.setdefault(hit.key, hit)
    return list(out.items())
