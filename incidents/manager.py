"""Incident lifecycle: open when a rule's condition holds, update while it holds, close after
it has been clear for ``clear_after_s``. One open incident per camera + zone + rule.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gridworker.vision.analyzer import FrameAnalysis, RuleVerdict
from gridworker.vision.annotate import FrameAnnotator

from .store import Incident, IncidentStore

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # camera_id, zone_id, rule_id


@dataclass(slots=True)
class _Open:
    incident_id: int
    type: str
    last_active: float
    last_written: float
    peak: int
    pending_observations: int = 0
    summary: str = ""


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
        annotator: renders the evidence snapshot.
        write_interval_s: while an incident stays open, write its progress at most this often.
        on_open: callbacks (e.g. metrics) called with each newly opened incident.
    """

    store: IncidentStore
    camera_info: Callable[[str], CameraInfo]
    annotator: FrameAnnotator = field(default_factory=FrameAnnotator)
    write_interval_s: float = 5.0
    on_open: list[Callable[[Incident], None]] = field(default_factory=list)
    _open: dict[Key, _Open] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def adopt_open(self, valid_keys: Iterable[Key], now: float) -> None:
        """After a restart: keep stored open incidents whose camera/zone/rule still exist
        (they close normally once their condition stays clear), close the rest."""
        valid = set(valid_keys)
        for inc in self.store.open_incidents():
            key = (inc.camera_id, inc.zone_id, inc.rule_id)
            if key in valid and key not in self._open:
                self._open[key] = _Open(inc.id, inc.type, last_active=now, last_written=now, peak=inc.peak_count)
            else:
                self.store.close_incident(inc.id, at=now)

    def open_count(self, camera_id: str | None = None) -> int:
        with self._lock:
            return sum(1 for k in self._open if camera_id is None or k[0] == camera_id)

    def open_types(self, camera_id: str) -> list[str]:
        with self._lock:
            return sorted({o.type for k, o in self._open.items() if k[0] == camera_id})

    def observe(self, analysis: FrameAnalysis) -> list[Incident]:
        """Apply one frame's verdicts; returns incidents opened by it."""
        now = analysis.frame.ts
        cam = analysis.frame.camera_id
        opened: list[Incident] = []
        seen: set[Key] = set()
        for verdict in analysis.verdicts:
            key = (cam, verdict.zone_id, verdict.rule_id)
            seen.add(key)
            if verdict.result.active:
                inc = self._on_active(key, verdict, analysis, now)
                if inc is not None:
                    opened.append(inc)
            else:
                self._on_clear(key, verdict.clear_after_s, now)
        # rules that vanished from the config (zones edited) close their incidents
        with self._lock:
            stale = [k for k in self._open if k[0] == cam and k not in seen]
        for key in stale:
            self._close(key, now)
        for inc in opened:
            for callback in self.on_open:
                callback(inc)
        return opened

    def close_camera(self, camera_id: str, now: float) -> None:
        with self._lock:
            keys = [k for k in self._open if k[0] == camera_id]
        for key in keys:
            self._close(key, now)

    def _on_active(self, key: Key, verdict: RuleVerdict, analysis: FrameAnalysis, now: float) -> Incident | None:
        result = verdict.result
        with self._lock:
            state = self._open.get(key)
        if state is None:
            info = self.camera_info(key[0])
            snapshot = self.annotator.render_jpeg(
                analysis.frame.image,
                analysis.detections,
                analysis.zones,
                active_zone_ids=[verdict.zone_id],
                highlight=result.subjects,
            )
            inc = self.store.open(
                camera_id=key[0],
                camera_name=info.name,
                site=info.site,
                zone_id=verdict.zone_id,
                rule_id=verdict.rule_id,
                type=verdict.kind.code,
                at=now,
                count=result.count,
                summary=result.summary,
                details={
                    **result.details,
                    "frame_seq": analysis.frame.seq,
                    "type_name_zh": verdict.kind.name_zh,
                    "type_name_en": verdict.kind.name_en,
                    "category": verdict.kind.category,
                },
                snapshot=snapshot,
            )
            with self._lock:
                self._open[key] = _Open(inc.id, verdict.kind.code, last_active=now, last_written=now, peak=result.count)
            log.info("incident %s opened: %s on %s/%s: %s", inc.id, verdict.kind.code, key[0], verdict.zone_id, result.summary)
            return inc
        state.last_active = now
        state.pending_observations += 1
        state.summary = result.summary
        if result.count > state.peak or now - state.last_written >= self.write_interval_s:
            state.peak = max(state.peak, result.count)
            self.store.touch(state.incident_id, at=now, count=result.count, summary=result.summary, observations=state.pending_observations)
            state.pending_observations = 0
            state.last_written = now
        return None

    def _on_clear(self, key: Key, clear_after_s: float, now: float) -> None:
        with self._lock:
            state = self._open.get(key)
        if state is not None and now - state.last_active >= clear_after_s:
            self._close(key, now)

    def _close(self, key: Key, now: float) -> None:
        with self._lock:
            state = self._open.pop(key, None)
        if state is None:
            return
        if state.pending_observations:
            self.store.touch(state.incident_id, at=state.last_active, count=state.peak, summary=state.summary, observations=state.pending_observations)
        self.store.close_incident(state.incident_id, at=now)
        log.info("incident %s closed (%s on %s/%s)", state.incident_id, state.type, key[0], key[1])
