"""The IoT side of a running gridworker: the device registry, the MQTT ingest and the clock
that finds silent devices and quiet alarms. Every case it raises goes to the one incident
writer (``IncidentManager.device_report``); work orders, forwarding and the console follow
from the manager's ``on_open`` as for a camera's case.

Ingest: paho-mqtt over MQTT 5, QoS 1 subscription, a persistent session (``clean_start``
off and a session that never expires, a fixed client id), so alarms sent while gridworker is
down are delivered when it returns. The CONNECT's Maximum Packet Size
(``iot.max_payload_bytes`` + :data:`PACKET_HEADROOM`) makes the broker drop a larger message
instead of sending it: an oversized publish is never read into memory here.
A message is handled in paho's network thread and acknowledged (PUBACK) after it returns:
an alarm is written before the broker forgets it. A retained message (the broker's stored
copy, re-sent at every subscription) is counted as ``retained`` and dropped: it is not news. A message that does not follow its
device type's mapping is counted per device and dropped: it never opens a case and never
stops the ingest.

Example::

    iot = IotService(settings.iot, store, incidents, catalogue)
    iot.start(time.time()); ...; iot.stop()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import sqlalchemy.exc
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridworker.cases.catalogue import Catalogue
from gridworker.delivery.mqtt import log_in
from gridworker.incidents.devices import DeviceReport
from gridworker.incidents.store import Incident
from gridworker.periodic import Periodic
from gridworker.vision.rules.base import IncidentKind

from .config import DeviceConfig, IotConfig, source_id
from .linkage import Linkage, Patrols, SnapshotStore
from .mapping import DeviceMapping, MalformedMessage, load_mappings
from .registry import DeviceNotFound, DeviceRegistry, DeviceStore, parse_csv
from .tracker import OFFLINE, AlarmTracker, Silence

log = logging.getLogger(__name__)
SOURCE_PREFIX = "iot:"
WRITE_ATTEMPTS = 3
#: device reports the incident writer refused (the database away), kept in order and written
#: again at each message and clock check; beyond this many the oldest are dropped (logged)
MAX_UNWRITTEN = 10_000
#: what a database that is away (down, locked, failing over, its pool exhausted) raises: the
#: update waits; any other error would come back on every try, so that update is dropped
DATABASE_AWAY = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError, sqlite3.OperationalError)
#: bytes of a PUBLISH packet besides its payload allowed for in the Maximum Packet Size: the
#: fixed header, the topic (``topic_pattern`` is at most 200 characters), packet id, properties
PACKET_HEADROOM = 4096
#: MQTT 5 Session Expiry Interval meaning "never": the broker keeps the session as MQTT 3.1.1's
#: ``clean_session=False`` did
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
#: a step of the monotonic clock between two readings longer than this many checks (and
#: :data:`SUSPENDED_AFTER_MIN_S`) is a pause of the process, not the devices' silence
SUSPENDED_AFTER_CHECKS = 5
SUSPENDED_AFTER_MIN_S = 2.0


class IotStore(SnapshotStore, Protocol):
    """Where API-added devices and linkage snapshots go (``IncidentStore``)."""

    @property
    def devices(self) -> DeviceStore: ...


class DeviceSink(Protocol):
    """The one incident writer, as the IoT side sees it (``IncidentManager``)."""

    def device_report(self, report: DeviceReport) -> Incident | None: ...

    def close_camera(self, camera_id: str, now: float) -> None: ...

    def open_sources(self, prefix: str) -> list[tuple[tuple[str, str, str, str], int]]: ...


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device and what the ingest knows of it now."""

    config: DeviceConfig
    from_file: bool
    last_seen: float | None
    offline: bool
    alarms: tuple[str, ...]


class IotService:
    """Registry + ingest + clock, built by the composition root.

    Args:
        config: the ``iot:`` section.
        store: where API-added devices are saved (``IncidentStore``).
        sink: the incident writer.
        catalogue: incident types of the alarms (names, category).
        snapshot: camera id → the camera's latest analysed JPEG (video linkage); None: no linkage.
        watch_of: camera id → its ``watch`` ("continuous" or "patrol"; KeyError: no such camera).
        patrols: the service's patrol manager, for linkage watches of patrol-only cameras (None: none).
        clock: the wall clock: the times cases and devices show.
        monotonic: the clock silence and alarm holds are judged on (never stepped by NTP; a pause of the process
            longer than :data:`SUSPENDED_AFTER_CHECKS` checks is not counted: ``AwakeClock``).
    """

    def __init__(
        self,
        config: IotConfig,
        store: IotStore | None,
        sink: DeviceSink,
        catalogue: Catalogue,
        *,
        snapshot: Callable[[str], bytes | None] | None = None,
        watch_of: Callable[[str], str] | None = None,
        patrols: Patrols | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.mappings: dict[str, DeviceMapping] = load_mappings(config.mappings_dir)
        self.registry = DeviceRegistry(config, self.mappings.keys(), None if store is None else store.devices)
        self._sink = sink
        self._catalogue = catalogue
        self._camera_jpeg = snapshot
        self._watch_of = watch_of
        self._clock = clock
        self._monotonic = monotonic
        self.tracker = AlarmTracker(
            self.mappings,
            self._kind,
            clear_after_s=config.alarm_clear_min * 60.0,
            missed_heartbeats=config.missed_heartbeats,
            restore_hold_s=config.restore_hold_s,
            openings_per_hour=config.openings_per_hour,
            suspended_after_s=max(SUSPENDED_AFTER_CHECKS * config.check_interval_s, SUSPENDED_AFTER_MIN_S),
            offline_per_tick=config.offline_per_check,
            snapshot=self._linked if snapshot is not None and watch_of is not None else None,
        )
        self.linkage: Linkage | None = None
        if patrols is not None and snapshot is not None and watch_of is not None and store is not None and config.linkage_watch_s > 0:
            self.linkage = Linkage(patrols, lambda cam: self._watches(cam, "patrol"), snapshot, store, watch_s=config.linkage_watch_s)
        self._lock = threading.Lock()  # one message or tick at a time: the tracker and the sink's device keys
        self._stats_lock = threading.Lock()
        self._outcomes: Counter[str] = Counter()
        #: reports decided by the tracker but not yet written (the database failed), oldest first
        self._unwritten: deque[DeviceReport] = deque()
        self._unwritten_dropped = 0
        self._malformed: Counter[str] = Counter()
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._clock_timer = Periodic("iot-clock", self.tick, config.check_interval_s)
        self._loaded = False
        self._logged = Silence(0, 0.0, 0)  # what the clock last logged
        #: told (incident, device) after each case the ingest opened (linkage, benchmarks)
        self.on_opened: list[Callable[[Incident, DeviceConfig], object]] = []
        if self.linkage is not None:
            self.on_opened.append(self.linkage.on_case)

    # -- the catalogue and the composition root's needs ----------------------------------------
    def _kind(self, code: str) -> IncidentKind:
        t = self._catalogue.type(code)
        return IncidentKind(t.code, t.name_zh, t.name_en, t.category)

    def rule_keys(self) -> list[tuple[str, str, str]]:
        """(source, device type, alarm) of every registered device's alarms: open incidents of
        others close at start (``IncidentManager.adopt_open``)."""
        self._load_saved()
        out: list[tuple[str, str, str]] = []
        for dev in self.registry.devices():
            mapping = self.mappings[dev.type]
            out.extend((dev.source_id, dev.type, a.id) for a in mapping.alarms)
            out.append((dev.source_id, dev.type, OFFLINE))
        return out

    def _load_saved(self) -> None:
        if not self._loaded:
            self._loaded = True
            n = self.registry.load_saved()
            if n:
                log.info("%d IoT device(s) saved through the API loaded", n)

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, now: float | None = None) -> None:
        """Watch every device (adopting cases open from before a restart), start the clock and,
        with a broker configured, the ingest."""
        now = self._clock() if now is None else now
        self._load_saved()
        with self._lock:
            mono = self._monotonic()
            for dev in self.registry.devices():
                self.tracker.watch(dev, now, mono)
            for key, _ in self._sink.open_sources(SOURCE_PREFIX):
                device = self.registry.get(key[0][len(SOURCE_PREFIX):])
                if device is not None:
                    self.tracker.adopt(device, key[2], now, mono)
        self._stop.clear()
        if self.linkage is not None:
            self.linkage.reopen()
        self._clock_timer.start()
        if self.config.broker is not None:
            self._client = self._connect()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the ingest (the broker keeps what arrives meanwhile: persistent session) and the clock."""
        self._stop.set()
        if not self._clock_timer.stop(timeout):
            log.warning("the IoT clock did not stop within %.0f s", timeout)
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            finally:
                client.loop_stop()
        self._connected.clear()
        if self.linkage is not None:
            self.linkage.stop(timeout)
        with self._lock:
            if self._unwritten:
                self._report(())  # one last try
            if self._unwritten:
                log.error("IoT: %d case update(s) never reached the database before the stop", len(self._unwritten))

    def _connect(self) -> mqtt.Client:
        b = self.config.broker
        assert b is not None
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=b.client_id, protocol=mqtt.MQTTv5)
        log_in(c, b)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
        props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        props.MaximumPacketSize = self.config.max_payload_bytes + PACKET_HEADROOM  # the broker drops larger ones
        c.connect_async(b.host, b.port, keepalive=b.keepalive_s, clean_start=False, properties=props)
        c.loop_start()  # paho connects, reconnects and delivers in its own thread
        return c

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: Any, props: object = None) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT broker refused the IoT ingest: %s", reason)
            return
        client.subscribe(self.config.topic_filter(), qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: Sequence[Any], props: object = None) -> None:
        # connected means subscribed: before the broker's SUBACK, an alarm published on the topic
        # may reach the broker ahead of the subscription and go to no one
        if any(getattr(r, "is_failure", False) for r in reasons):
            log.error("MQTT broker refused the IoT ingest's subscription to %s: %s", self.config.topic_filter(), [str(r) for r in reasons])
            return
        self._connected.set()
        log.info("IoT ingest subscribed to %s (QoS 1, persistent session)", self.config.topic_filter())

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object = None) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            # the broker's stored copy, sent again at every (re)subscription: not news, and
            # ``handle`` would date it now (a stale alarm reopening its case after each
            # reconnect, a dead device's heartbeat looking alive). Messages queued for the
            # persistent session while gridworker was away arrive with retain unset.
            self._count("retained")
            log.debug("IoT retained message on %s dropped", message.topic[:200])
            return
        try:
            self.handle(message.topic, bytes(message.payload))
        except Exception:  # the ingest must outlive any message (paho would stop its loop)
            log.exception("IoT message on %s could not be handled", message.topic[:200])
            self._count("failed")

    # -- messages ----------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, now: float | None = None, mono: float | None = None) -> str:
        """Handle one message; returns its outcome (counted): the message kind, or
        ``foreign_topic``, ``unknown_device``, ``malformed``, ``flapping`` (an alarm whose case
        the device may not open yet: ``iot.openings_per_hour``). ``now``: the wall clock's
        time (what the cases show); ``mono``: the monotonic clock's (what holds and silence
        are judged on); None: the service's clocks."""
        device_id = self.config.device_of(topic)
        if device_id is None:
            return self._count("foreign_topic")
        device = self.registry.get(device_id)
        if device is None:
            return self._count("unknown_device")
        now = self._clock() if now is None else now
        try:
            if len(payload) > self.config.max_payload_bytes:
                raise MalformedMessage(f"larger than iot.max_payload_bytes ({self.config.max_payload_bytes})")
            msg = self.mappings[device.type].parse(payload, now)
        except MalformedMessage as exc:
            with self._stats_lock:
                self._malformed[device.id] += 1
            log.debug("IoT device %s: malformed message: %s", device.id, exc)
            return self._count("malformed")
        with self._lock:
            refused = self.tracker.refused
            self._report(self.tracker.message(device, msg, self._monotonic() if mono is None else mono))
            flapping = self.tracker.refused > refused
        if flapping:
            log.debug("IoT device %s: a case held back (too many opened this hour)", device.id)
        return self._count("flapping" if flapping else msg.kind)

    def tick(self, now: float | None = None, mono: float | None = None) -> None:
        """Look for silent devices and quiet alarms now (the clock calls it every ``check_interval_s``).
        ``now`` is the wall clock's time (the times the cases show); silence, an alarm's quiet
        and a restore's hold are judged on the monotonic clock (``mono``); None: the service's clocks."""
        now = self._clock() if now is None else now
        with self._lock:
            reports = self.tracker.tick(self.registry.devices(), now, self._monotonic() if mono is None else mono)
            self._log_silence(self.tracker.silence())
            self._report(reports)

    def _log_silence(self, current: Silence) -> None:
        """Say when a pause was not counted as silence, and when offline cases start and stop waiting."""
        if current.gaps > self._logged.gaps:
            log.warning(
                "IoT clock: %.0f s passed between checks unseen (the process was suspended?); not counted as the devices' "
                "silence", current.gaps_s - self._logged.gaps_s,
            )
        if current.offline_waiting and not self._logged.offline_waiting:
            log.warning(
                "IoT: more devices silent than iot.offline_per_check (%d) allows; %d offline case(s) wait for the next checks",
                self.config.offline_per_check, current.offline_waiting,
            )
        elif self._logged.offline_waiting and not current.offline_waiting:
            log.info("IoT: no offline case waits any more")
        self._logged = current

    def silence(self) -> Silence:
        """Pauses not counted as silence so far, and offline cases waiting for a later check."""
        with self._lock:
            return self.tracker.silence()

    def _report(self, reports: Sequence[DeviceReport]) -> None:
        """Write ``reports`` behind any the database refused before, in order (the tracker has
        moved on already: an alarm and its restore must both reach the case, the restore
        second). What cannot be written now waits for the next message or clock check."""
        backlog = bool(self._unwritten)
        for report in reports:
            if len(self._unwritten) >= MAX_UNWRITTEN:
                dropped = self._unwritten.popleft()
                self._unwritten_dropped += 1
                log.error("IoT %s %s: dropped unwritten (more than %d case updates wait for the database)", dropped.source_id, dropped.alarm, MAX_UNWRITTEN)
            self._unwritten.append(report)
        while self._unwritten:
            report = self._unwritten[0]
            try:
                inc = self._write(report, attempts=1 if backlog else WRITE_ATTEMPTS)
            except DATABASE_AWAY:
                # the database away: kept, tried again at the next message or check
                log.error("IoT: %d case update(s) wait for the database (%s %s failed); tried again at the next check",
                          len(self._unwritten), report.source_id, report.alarm, exc_info=not backlog)
                return
            except Exception:  # anything else would fail again: this one update goes (logged), the others are written
                self._unwritten.popleft()
                log.exception("IoT %s %s: the case update could not be written and is dropped", report.source_id, report.alarm)
                continue
            self._unwritten.popleft()
            device = self.registry.get(report.source_id[len(SOURCE_PREFIX):]) if inc is not None else None
            if inc is not None and device is not None:
                for callback in self.on_opened:
                    try:
                        callback(inc, device)
                    except Exception:  # a listener must not cost the ingest its message
                        log.exception("incident %s: IoT listener failed", inc.id)

    def _write(self, report: DeviceReport, attempts: int = WRITE_ATTEMPTS) -> Incident | None:
        """The report to the incident writer; a failure (the database away a moment) is tried
        again up to ``attempts`` times in all before it is raised (the report then waits in
        the backlog, :meth:`_report`)."""
        for attempt in range(attempts):
            try:
                return self._sink.device_report(report)
            except Exception:
                if attempt == attempts - 1 or self._stop.is_set():
                    raise
                log.warning("IoT %s %s: writing the case failed, trying again", report.source_id, report.alarm, exc_info=True)
                time.sleep(0.5 * (attempt + 1))
        return None

    def _watches(self, camera_id: str, watch: str) -> bool:
        assert self._watch_of is not None
        try:
            return self._watch_of(camera_id) == watch
        except KeyError:  # not a camera (any more)
            return False

    def _linked(self, device: DeviceConfig) -> tuple[bytes | None, dict[str, Any]]:
        """Video linkage: the latest analysed frame of the first continuously watched camera that
        sees the device and has one (a patrol-only camera's last visit may be old: linkage watches it)."""
        assert self._camera_jpeg is not None
        for cam in device.cameras:
            if not self._watches(cam, "continuous"):
                continue
            try:
                jpeg = self._camera_jpeg(cam)
            except KeyError:  # not a camera (any more)
                continue
            if jpeg is not None:
                return jpeg, {"linked_camera": cam, "linked_cameras": list(device.cameras)}
        return None, {"linked_cameras": list(device.cameras)}

    def _count(self, outcome: str) -> str:
        with self._stats_lock:
            self._outcomes[outcome] += 1
        return outcome

    def stats(self) -> tuple[dict[str, int], dict[str, int]]:
        """(messages by outcome, malformed messages by device)."""
        with self._stats_lock:
            return dict(self._outcomes), dict(self._malformed)

    def unwritten(self) -> tuple[int, int]:
        """(case updates waiting for the database now, dropped so far for want of room)."""
        with self._lock:
            return len(self._unwritten), self._unwritten_dropped

    # -- devices ------------------------------------------------------------------------------------
    def view(self, device: DeviceConfig) -> DeviceView:
        with self._lock:
            state = self.tracker.state(device.id)
        last, offline, alarms = state if state is not None else (None, False, [])
        return DeviceView(device, self.registry.from_file(device.id), last, offline, tuple(alarms))

    def views(self) -> list[DeviceView]:
        return [self.view(d) for d in self.registry.devices()]

    def add(self, devices: Sequence[DeviceConfig], *, replace: bool = False) -> list[DeviceConfig]:
        """Register and save devices (all or none; see ``DeviceRegistry.add``); watched from now."""
        added = self.registry.add(devices, replace=replace)
        now = self._clock()
        with self._lock:
            mono = self._monotonic()
            for dev in added:
                self.tracker.watch(dev, now, mono)
        return added

    def import_csv(self, text: str, *, replace: bool = False) -> list[DeviceConfig]:
        return self.add(parse_csv(text, max_rows=self.config.max_devices), replace=replace)

    def remove(self, device_id: str) -> None:
        """Forget a device added at run time; its open cases close."""
        dev = self.registry.remove(device_id)
        with self._lock:
            self.tracker.forget(dev.id)
            gone = source_id(dev.id)  # its updates still waiting for the database would reopen what closes now
            self._unwritten = deque(r for r in self._unwritten if r.source_id != gone)
            self._sink.close_camera(gone, self._clock())
        with self._stats_lock:
            self._malformed.pop(dev.id, None)

    def devices(self) -> Iterable[DeviceConfig]:
        return self.registry.devices()


__all__ = ["DeviceNotFound", "DeviceSink", "DeviceView", "IotService", "SOURCE_PREFIX"]
