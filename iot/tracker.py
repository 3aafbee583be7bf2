"""Per-device state: which alarms hold and when the device was last heard; turns messages
and the passing of time into :class:`~gridworker.incidents.devices.DeviceReport` s.

No I/O and no clock of its own (``now`` is passed in), so the rules are table-tested:

* a message raising an alarm reports it active (the case opens, or the open one updates);
* a "restored" message, or a reading back inside a ``clears_when_normal`` threshold,
  reports an alarm that holds inactive (its case closes) once the alarm has stayed clear
  for ``restore_hold_s`` (reported by :meth:`tick`); raised again before that, the alarm
  simply goes on holding, so a flapping device (alarm, restore, alarm, ...) keeps one case;
* the cases a device opens are capped by a token bucket (``openings_per_hour``, as many
  at once): an alarm that would open one beyond it is held back (counted in ``refused``)
  and opens at a later tick once the device has a token again, unless it ended meanwhile;
* an alarm not raised again for ``clear_after_s`` is reported inactive by :meth:`tick`;
  this hold, the restore hold and a held-back alarm's wait are judged on the same
  :class:`AwakeClock` as silence (below);
* a device silent for ``missed_heartbeats`` × its ``heartbeat_s`` is reported offline (its
  own case, alarm id ``offline``); any message from it closes that case. Silence is judged on
  an :class:`AwakeClock` (a monotonic reading, ``mono``, less the pauses in which nothing could
  be heard), never on the wall clock: a step of the wall clock (NTP, a VM resumed) neither
  marks every device offline at once nor hides a silent one. At most ``offline_per_tick``
  devices go offline in one :meth:`tick`; the others wait for the next ones (``offline_waiting``).

Not thread-safe: the caller (``IotService``) serialises calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from gridworker.incidents.devices import DeviceReport
from gridworker.vision.rules.base import IncidentKind

from .config import DeviceConfig
from .mapping import DeviceMapping, DeviceMessage

OFFLINE = "offline"
OFFLINE_TYPE = "iot_device_offline"


@dataclass(frozen=True, slots=True)
class _Stamped:
    """A message and when it was heard on the :class:`AwakeClock`."""

    msg: DeviceMessage
    awake: float


@dataclass(slots=True)
class _State:
    last_seen: float  # wall clock: shown
    heard: float  # AwakeClock: silence is judged on it
    offline: bool = False
    # The holds below are stamped on the AwakeClock, as silence is: a step of the wall clock
    # neither ends every alarm as quiet nor holds one for good.
    alarms: dict[str, float] = field(default_factory=dict)  # alarm id → when it last held (awake)
    restoring: dict[str, _Stamped] = field(default_factory=dict)  # alarm id → its restore, held back
    deferred: dict[str, _Stamped] = field(default_factory=dict)  # alarm id → its latest raise, no token to open
    tokens: float | None = None  # case openings left (None: a full bucket)
    tokens_at: float = 0.0  # when ``tokens`` was counted (AwakeClock)


@dataclass(slots=True)
class AwakeClock:
    """Seconds in which the ingest could hear its devices: a monotonic clock's readings, less
    every step between two readings longer than ``suspended_after_s``. Such a step means the
    process (or its VM) was suspended, or a check held the ingest that long: no message could
    be read either, so it is not a device's silence. A reading behind the last one counts as
    none. The first reading is the clock's start. ``suspended_after_s`` None: every step counts.
    """

    suspended_after_s: float | None = None
    gaps: int = 0  # steps not counted
    gaps_s: float = 0.0  # seconds not counted
    _at: float | None = None  # the last reading
    _awake: float = 0.0

    def read(self, mono: float) -> float:
        """The awake seconds at the monotonic reading ``mono``."""
        if self._at is None:
            self._at = self._awake = mono
        step = max(0.0, mono - self._at)
        self._at = max(self._at, mono)  # a reading behind the last: the next step is counted from the furthest
        if self.suspended_after_s is not None and step > self.suspended_after_s:
            self.gaps += 1
            self.gaps_s += step
        else:
            self._awake += step
        return self._awake


@dataclass(frozen=True, slots=True)
class Silence:
    """How silence was judged: pauses not counted (:class:`AwakeClock`) and devices silent past
    their limit whose offline case waits for a later tick (``offline_per_tick``)."""

    gaps: int
    gaps_s: float
    offline_waiting: int


@dataclass(eq=False)
class AlarmTracker:
    """The alarms of every device.

    Args:
        mappings: device type → mapping.
        kind_of: incident type code → its kind (names, category; from the catalogue).
        clear_after_s: an alarm not raised again for this long is over.
        missed_heartbeats: heartbeat intervals of silence before a device is offline.
        snapshot: the evidence of a device's cameras (video linkage) when a case opens; None: none.
        restore_hold_s: a restored alarm is reported over once it has stayed clear this long
            (0: at once).
        openings_per_hour: cases one device may open per hour, as many at once (a token
            bucket); None: no cap.
        suspended_after_s: a step of the monotonic clock between two calls longer than this
            is a pause, not silence (:class:`AwakeClock`); None: every step is silence.
        offline_per_tick: devices reported offline by one :meth:`tick` at most (the rest wait
            for later ticks); None: no cap.

    Every method that takes ``now`` (the wall clock, or a message's ``at``: the times reports
    carry) also takes ``mono``, the monotonic clock that silence and alarm holds are judged on; None: ``now``.
    """

    mappings: Mapping[str, DeviceMapping]
    kind_of: Callable[[str], IncidentKind]
    _: KW_ONLY
    clear_after_s: float
    missed_heartbeats: int
    snapshot: Callable[[DeviceConfig], tuple[bytes | None, dict[str, Any]]] | None = None
    restore_hold_s: float = 0.0
    openings_per_hour: int | None = None
    suspended_after_s: float | None = None
    offline_per_tick: int | None = None
    #: devices silent past their limit whose offline case waits for a later tick (the last tick's)
    offline_waiting: int = field(default=0, init=False)
    #: case openings held back by the cap so far (the caller's "flapping" figure)
    refused: int = field(default=0, init=False)
    _states: dict[str, _State] = field(default_factory=dict, init=False)
    _awake: AwakeClock = field(init=False)

    def __post_init__(self) -> None:
        self._awake = AwakeClock(self.suspended_after_s)

    # -- what the service tells it -----------------------------------------------------------
    def watch(self, device: DeviceConfig, now: float, mono: float | None = None) -> None:
        """Start watching a device (again, after a restart): it has ``missed_heartbeats``
        intervals from ``now`` before it counts as offline."""
        heard = self._awake.read(now if mono is None else mono)
        state = self._state_of(device, now, heard)
        state.last_seen = max(state.last_seen, now)
        state.heard = heard

    def forget(self, device_id: str) -> None:
        self._states.pop(device_id, None)

    def adopt(self, device: DeviceConfig, alarm: str, now: float, mono: float | None = None) -> None:
        """An incident of ``device`` + ``alarm`` open from before a restart: it holds from
        ``now`` (it clears after ``clear_after_s`` unless raised again; an offline case
        closes at the device's next message)."""
        awake = self._awake.read(now if mono is None else mono)
        state = self._state_of(device, now, awake)
        if alarm == OFFLINE:
            state.offline = True
        else:
            state.alarms[alarm] = awake

    def state(self, device_id: str) -> tuple[float, bool, list[str]] | None:
        """(last heard, offline, alarms that hold) of a watched device (a restored alarm holds
        until its restore hold is over; one held back by the cap on openings does not)."""
        s = self._states.get(device_id)
        return None if s is None else (s.last_seen, s.offline, sorted(s.alarms))

    def silence(self) -> Silence:
        return Silence(self._awake.gaps, self._awake.gaps_s, self.offline_waiting)

    def _state_of(self, device: DeviceConfig, now: float, heard: float) -> _State:
        """The device's state; a new one, last seen ``now`` and heard at ``heard`` (awake), if it has none."""
        return self._states.setdefault(device.id, _State(last_seen=now, heard=heard))

    # -- messages and time -------------------------------------------------------------------
    def message(self, device: DeviceConfig, msg: DeviceMessage, mono: float | None = None) -> list[DeviceReport]:
        """What one parsed message of ``device`` changes."""
        heard = self._awake.read(msg.at if mono is None else mono)
        state = self._state_of(device, msg.at, heard)
        state.last_seen = max(state.last_seen, msg.at)
        state.heard = heard
        out: list[DeviceReport] = []
        if state.offline:
            state.offline = False
            out.append(self._offline(device, msg.at, active=False, silent_s=0.0))
        mapping = self.mappings[device.type]
        for alarm_id in msg.restored:
            if alarm_id in msg.raised:
                continue
            state.deferred.pop(alarm_id, None)  # never opened: nothing to close
            if alarm_id in state.alarms:
                if self.restore_hold_s <= 0:
                    del state.alarms[alarm_id]
                    out.append(self._alarm(device, mapping, alarm_id, msg, active=False))
                else:
                    state.restoring.setdefault(alarm_id, _Stamped(msg, heard))  # clear since the first restore
        for alarm_id in msg.raised:
            state.restoring.pop(alarm_id, None)  # raised again within the hold: the case goes on
            if alarm_id in state.alarms:
                state.alarms[alarm_id] = heard
                out.append(self._alarm(device, mapping, alarm_id, msg, active=True))
            elif self._take_token(state, heard):
                state.deferred.pop(alarm_id, None)
                state.alarms[alarm_id] = heard
                out.append(self._alarm(device, mapping, alarm_id, msg, active=True, first=True))
            else:
                state.deferred[alarm_id] = _Stamped(msg, heard)
                self.refused += 1
        return out

    def tick(self, devices: Iterable[DeviceConfig], now: float, mono: float | None = None) -> list[DeviceReport]:
        """Devices gone silent (at most ``offline_per_tick``), alarms gone quiet."""
        awake = self._awake.read(now if mono is None else mono)
        out: list[DeviceReport] = []
        opened = waiting = 0
        for device in devices:
            state = self._states.get(device.id)
            if state is None:
                continue
            silent = awake - state.heard
            if not state.offline and silent > device.heartbeat_s * self.missed_heartbeats:
                if self.offline_per_tick is not None and opened >= self.offline_per_tick:
                    waiting += 1  # silent still at a later tick: reported then
                else:
                    opened += 1
                    state.offline = True
                    out.append(self._offline(device, now, active=True, silent_s=silent))
            mapping = self.mappings.get(device.type)
            for alarm_id, restore in list(state.restoring.items()):
                if awake - restore.awake >= self.restore_hold_s:
                    del state.restoring[alarm_id]
                    if state.alarms.pop(alarm_id, None) is not None and mapping is not None:
                        out.append(self._alarm(device, mapping, alarm_id, restore.msg, active=False))
            for alarm_id, last in list(state.alarms.items()):
                if awake - last >= self.clear_after_s:
                    del state.alarms[alarm_id]
                    state.restoring.pop(alarm_id, None)
                    if mapping is not None:
                        quiet = DeviceMessage("heartbeat", now, {})
                        out.append(self._alarm(device, mapping, alarm_id, quiet, active=False, reason="quiet"))
            for alarm_id, raised in list(state.deferred.items()):
                if awake - raised.awake >= self.clear_after_s or mapping is None:
                    del state.deferred[alarm_id]  # gone quiet before it could open
                elif self._take_token(state, awake):
                    del state.deferred[alarm_id]
                    state.alarms[alarm_id] = raised.awake
                    out.append(self._alarm(device, mapping, alarm_id, raised.msg, active=True, first=True))
        self.offline_waiting = waiting
        return out

    def _take_token(self, state: _State, awake: float) -> bool:
        """One case opening from the device's bucket, if it has one (refilled at
        ``openings_per_hour`` per hour, up to as many)."""
        if self.openings_per_hour is None:
            return True
        cap = float(self.openings_per_hour)
        if state.tokens is None:
            state.tokens = cap
        else:
            state.tokens = min(cap, state.tokens + max(0.0, awake - state.tokens_at) * cap / 3600.0)
        state.tokens_at = max(state.tokens_at, awake)
        if state.tokens < 1.0:
            return False
        state.tokens -= 1.0
        return True

    # -- reports ---------------------------------------------------------------------------
    def _alarm(
        self, device: DeviceConfig, mapping: DeviceMapping, alarm_id: str, msg: DeviceMessage, *, active: bool,
        first: bool = False, reason: str = "",
    ) -> DeviceReport:
        alarm = mapping.alarm(alarm_id)
        assert alarm is not None  # the mapping produced it
        units = {r.name: r.unit for r in mapping.readings}
        readings = {name: {"value": v, "unit": units.get(name, "")} for name, v in msg.readings.items()}
        name = device.name or device.id
        summary = f"{name}: {alarm.name_zh} {alarm.name_en}"
        t = alarm.threshold
        if t is not None and t.reading in msg.readings:
            summary += f" ({t.reading} {msg.readings[t.reading]:g} {units.get(t.reading, '')})".replace(" )", ")")
        details: dict[str, Any] = {
            "source": "iot",
            "device": _device_details(device),
            "alarm": alarm.id,
            "alarm_name_zh": alarm.name_zh,
            "alarm_name_en": alarm.name_en,
        }
        if readings:
            details["readings"] = readings
        if msg.device_code is not None:
            details["device_code"] = msg.device_code
        if not active:
            details["ended_by"] = reason or "restored"
        snapshot = None
        if active and first and self.snapshot is not None and device.cameras:
            snapshot, linked = self.snapshot(device)
            details.update(linked)
        return DeviceReport(
            source_id=device.source_id, source_name=name, site=device.site, group=device.type, alarm=alarm.id,
            kind=self.kind_of(alarm.catalogue), at=msg.at, active=active, summary=summary, details=details, snapshot=snapshot,
        )

    def _offline(self, device: DeviceConfig, at: float, *, active: bool, silent_s: float) -> DeviceReport:
        name = device.name or device.id
        summary = f"{name}: 设备离线 device offline, silent for {silent_s:.0f} s (heartbeat every {device.heartbeat_s:g} s)"
        return DeviceReport(
            source_id=device.source_id, source_name=name, site=device.site, group=device.type, alarm=OFFLINE,
            kind=self.kind_of(OFFLINE_TYPE), at=at, active=active, summary=summary if active else "",
            details={"source": "iot", "device": _device_details(device), "alarm": OFFLINE, "silent_s": round(silent_s, 1)},
        )


def _device_details(device: DeviceConfig) -> dict[str, Any]:
    return device.model_dump(include={"id", "type", "name", "site", "unit", "longitude", "latitude", "cameras"})
