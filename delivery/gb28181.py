"""GB/T 28181: gridworker as a device of a video platform, and its alarm notification (报警通知).

The device (``Gb28181Device``, with ``registration: true``, the default):

- registers (``REGISTER``, one Call-ID for the device's lifetime) and answers the 401
  challenge with digest authentication (``sip.digest_authorization``); refreshes at 2/3 of
  the granted Expires; unregisters (Expires 0) when closed;
- sends a MANSCDP ``Notify``/``Keepalive`` every ``keepalive_interval_s``;
  ``keepalive_max_missed`` unanswered in a row (or a 403/404 answer) lose the registration,
  and it registers again (every ``register_retry_s`` until it succeeds);
- answers the platform's ``Query`` MESSAGEs — ``Catalog`` (one alarm channel per camera of
  the ``cameras`` map), ``DeviceInfo``, ``DeviceStatus`` — with 200 OK and then a
  ``Response`` MESSAGE; any other command gets a ``Response`` with ``Result`` ERROR.

The alarm (``Gb28181Sender.send``): a MANSCDP ``Notify`` with ``CmdType`` ``Alarm`` in a SIP
MESSAGE (``Content-Type: Application/MANSCDP+xml``), sent only while registered — before
that the dispatcher is told ``NOT_READY`` and the message waits in the outbox. A 403/404
answer means the platform has forgotten us: re-register, not a dead letter (unless it
still refuses after ``MAX_REFUSALS`` fresh registrations).

Alarm mapping (docs/forwarding.md has the table):

- ``SN`` — the outbox id (unique, the same on every retransmission of one event);
- ``DeviceID`` — the camera's 20-digit id from the destination's ``cameras`` map, else
  gridworker's own ``local_id``;
- ``AlarmPriority`` — the work order's grade (1 一级 … 4 四级, the same scale);
- ``AlarmMethod`` — 5 (视频报警, video);
- ``AlarmTime`` — the detection time, local time ``YYYY-MM-DDTHH:MM:SS``;
- ``AlarmDescription`` — type name, site, camera and the incident's summary;
- ``Longitude``/``Latitude`` — the camera's, when configured;
- ``Info/AlarmType`` — the video alarm type for the incident type (below), with
  ``AlarmTypeParam/EventType`` 1 (enter) for intrusion alarms.

Bodies are encoded GB2312 as declared; a character GB2312 lacks is written as an XML
character reference, so nothing is lost.
"""

from __future__ import annotations

import logging
import queue
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from importlib import metadata
from xml.sax.saxutils import escape

from gridworker.delivery.outbox import OutboxEvent

from .config import Gb28181Destination
from .dispatcher import Outcome, Result, retry_after_seconds
from .sip import DigestError, Outgoing, Reply, SipEndpoint, SipError, SipRequest, SipResponse, digest_authorization, expires_of, parse_challenge

log = logging.getLogger(__name__)

CONTENT_TYPE = "Application/MANSCDP+xml"
METHOD_VIDEO = 5
MAX_BODY_BYTES = 8192  # a platform's query is a few hundred bytes
MAX_REFUSALS = 3  # "not registered" answers in a row, each followed by a fresh registration
QUERY_BACKLOG = 16  # queries waiting for their Response
CATALOG_ITEMS_PER_MESSAGE = {"udp": 2, "tcp": 20}  # keep a UDP datagram near 1 KB
_ENCODINGS = {"gb2312": "gb18030", "gbk": "gb18030", "gb18030": "gb18030", "utf-8": "utf-8", "utf8": "utf-8"}

# GB/T 28181-2016 video alarm types (AlarmMethod 5): 1 manual, 2 motion target, 3 left object,
# 4 object removed, 5 tripwire, 6 intrusion, 7 wrong way (逆行), 8 loitering (徘徊),
# 9 flow count, 10 density (密度), 11 video anomaly, 12 fast movement (快速移动).
ALARM_TYPES: dict[str, int] = {
    "intrusion": 6,
    "lane_intrusion": 6,
    "wrong_way": 7,
    "loitering": 8,
    "crowd": 10,
    "red_light": 5,
    "speeding": 12,
    "illegal_parking": 3,
    "nonmotor_parking": 3,
    "street_vending": 3,
    "dwell": 3,
    "exposed_garbage": 3,
    "person_fallen": 11,
}
DEFAULT_ALARM_TYPE = 2  # a moving target detected: the generic video-analytics alarm
INTRUSION = 6


def alarm_time(ts: float, utc_offset_h: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in the platform's local time.

    Example:
        >>> alarm_time(1700000000.0, 8)
        '2023-11-15T06:13:20'
    """
    return datetime.fromtimestamp(ts, tz=timezone(timedelta(hours=utc_offset_h))).strftime("%Y-%m-%dT%H:%M:%S")


def _parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def manscdp(root: str, lines: list[str]) -> bytes:
    """A MANSCDP document ``<root>…</root>`` of already-escaped ``lines``, encoded GB2312."""
    text = "\r\n".join(['<?xml version="1.0" encoding="GB2312"?>', f"<{root}>", *lines, f"</{root}>", ""])
    return text.encode("gb2312", errors="xmlcharrefreplace")


def alarm_xml(event: OutboxEvent, config: Gb28181Destination) -> bytes:
    """The MANSCDP body for ``event``, encoded GB2312."""
    p = event.payload
    inc = p.get("incident", {})
    wo = p.get("workorder", {})
    cam = config.cameras.get(event.camera_id)
    device_id = cam.device_id if cam else config.local_id
    lon = cam.longitude if cam and cam.longitude is not None else config.longitude
    lat = cam.latitude if cam and cam.latitude is not None else config.latitude
    grade = int(wo.get("grade") or 4)
    priority = min(max(grade, 1), 4)
    when = _parse_iso(wo.get("detected_at")) or _parse_iso(inc.get("opened_at")) or event.created_at
    atype = config.alarm_types.get(event.type, ALARM_TYPES.get(event.type, DEFAULT_ALARM_TYPE))
    name = inc.get("type_name_zh") or event.type
    parts = [name, inc.get("site") or "", inc.get("camera_name") or event.camera_id, inc.get("summary") or ""]
    description = " ".join(x for x in parts if x)[:200]
    lines = [
        "<CmdType>Alarm</CmdType>",
        f"<SN>{event.id}</SN>",
        f"<DeviceID>{device_id}</DeviceID>",
        f"<AlarmPriority>{priority}</AlarmPriority>",
        f"<AlarmMethod>{METHOD_VIDEO}</AlarmMethod>",
        f"<AlarmTime>{alarm_time(when, config.utc_offset_h)}</AlarmTime>",
        f"<AlarmDescription>{escape(description)}</AlarmDescription>",
    ]
    if lon is not None and lat is not None:
        lines += [f"<Longitude>{lon:.6f}</Longitude>", f"<Latitude>{lat:.6f}</Latitude>"]
    lines += ["<Info>", f"<AlarmType>{atype}</AlarmType>"]
    if atype == INTRUSION:
        lines += ["<AlarmTypeParam>", "<EventType>1</EventType>", "</AlarmTypeParam>"]
    lines += ["</Info>"]
    return manscdp("Notify", lines)


def parse_manscdp(body: bytes) -> ET.Element | None:
    """The root element of a MANSCDP body; None when it is too large, declares a DTD or
    entities, is in an unknown encoding or is not well-formed XML (never raises)."""
    if len(body) > MAX_BODY_BYTES or b"<!" in body:
        return None
    m = re.match(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_-]{1,20})[\"']", body)
    codec = _ENCODINGS.get(m.group(1).decode("ascii").lower()) if m else "utf-8"
    if codec is None:
        return None
    try:
        text = body.decode(codec)
        return ET.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", text))
    except (UnicodeDecodeError, ET.ParseError):
        return None


def platform_domain(config: Gb28181Destination) -> str:
    return config.platform_domain or config.platform_id[:10]


def platform_message(endpoint: SipEndpoint, config: Gb28181Destination, body: bytes, timeout_s: float | None = None) -> SipResponse:
    """A MANSCDP MESSAGE to the platform; its final response. Raises ``SipError``."""
    uri = f"sip:{config.platform_id}@{config.platform_host}:{config.platform_port}"
    to = f"<sip:{config.platform_id}@{platform_domain(config)}>"
    return endpoint.request(Outgoing("MESSAGE", uri, to, body, CONTENT_TYPE, timeout_s=timeout_s))


@dataclass(frozen=True)
class Query:
    """A platform's command to answer: ``CmdType``, ``SN`` and the ``DeviceID`` it names."""

    cmd: str
    sn: str
    device_id: str


@dataclass(frozen=True)
class Channel:
    """One alarm channel of the Catalog: a camera as the platform sees it."""

    device_id: str
    name: str
    longitude: float | None
    latitude: float | None


def _version() -> str:
    try:
        return metadata.version("gridworker")
    except metadata.PackageNotFoundError:
        return "unknown"


class Gb28181Device:
    """gridworker registered with a GB/T 28181 platform as a device (see the module doc).

    Args:
        config: the destination.
        endpoint: the SIP user agent (its ``on_request`` is set to this device's handler).
        channels: the Catalog's channels, read when a query arrives.

    Example::

        dev = Gb28181Device(cfg, endpoint, channels=lambda: [])
        dev.start(wake=lambda: None); dev.registered.wait(5)     # True once the platform accepts
    """

    def __init__(self, config: Gb28181Destination, endpoint: SipEndpoint, channels: Callable[[], list[Channel]]) -> None:
        self.config = config
        self.endpoint = endpoint
        self.channels = channels
        endpoint.on_request = self.on_request
        self.registered = threading.Event()
        self.last_error = "not registered yet"
        self.registrations = 0  # successful REGISTERs (refreshes included)
        self.keepalives = 0  # answered keepalives
        self._wake: Callable[[], None] = lambda: None
        self._stop = threading.Event()
        self._jobs: queue.Queue[Query | None] = queue.Queue(maxsize=QUERY_BACKLOG)
        self._thread: threading.Thread | None = None
        self._call_id = f"{secrets.token_hex(10)}@{endpoint.local_domain}"
        self._tag = secrets.token_hex(5)
        self._sn = 0
        self._missed = 0
        self._refresh_at = 0.0
        self._next_keepalive = 0.0
        self._lock = threading.Lock()

    def message(self, body: bytes, timeout_s: float | None = None) -> SipResponse:
        """A MANSCDP MESSAGE to the platform; its final response. Raises ``SipError``."""
        return platform_message(self.endpoint, self.config, body, timeout_s)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, wake: Callable[[], None]) -> None:
        """Register and keep registered in a thread; ``wake`` is called after each registration."""
        if self._thread is not None:
            return
        self._wake = wake
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"gw-gb28181-{self.config.name}", daemon=True)
        self._thread.start()

    def stop(self, unregister_timeout_s: float = 2.0) -> None:
        """Stop the thread, then unregister (Expires: 0) when registered."""
        self._stop.set()
        try:
            self._jobs.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(self.config.timeout_s * 2 + 5)
            if self._thread.is_alive():
                log.error("GB/T 28181 %s: the registration thread did not stop", self.config.name)
            self._thread = None
        if self.registered.is_set():
            self.registered.clear()
            try:
                ok, why = self._register(0, unregister_timeout_s)
            except SipError as exc:
                ok, why = False, str(exc)
            if ok:
                log.info("GB/T 28181 %s: unregistered from %s", self.config.name, self.config.platform_id)
            else:
                log.warning("GB/T 28181 %s: unregistering failed: %s", self.config.name, why)

    def lost(self, why: str) -> None:
        """The registration is gone (the platform said so): register again now."""
        with self._lock:
            was = self.registered.is_set()
            self.last_error = f"registration lost: {why}"
            self.registered.clear()  # last: whoever sees the registration gone finds why
        if was:
            log.warning("GB/T 28181 %s: %s; registering again", self.config.name, self.last_error)
        try:
            self._jobs.put_nowait(None)  # wake the thread
        except queue.Full:
            pass

    # -- registration --------------------------------------------------------------------------
    def _register(self, expires: int, timeout_s: float | None = None) -> tuple[bool, str]:
        """One REGISTER (and its answer to a challenge): (registered, why not). Raises ``SipError``."""
        cfg = self.config
        local_domain = self.endpoint.local_domain
        uri = f"sip:{cfg.platform_id}@{platform_domain(cfg)}"
        contact = f"sip:{cfg.local_id}@{self.endpoint.contact()}"
        out = Outgoing(
            "REGISTER", uri, f"<sip:{cfg.local_id}@{local_domain}>", call_id=self._call_id, from_tag=self._tag,
            headers=(("Contact", f"<{contact}>"), ("Expires", str(expires))), timeout_s=timeout_s,
        )
        resp = self.endpoint.request(out)
        if resp.status in (401, 407):
            challenge = parse_challenge(resp.header("www-authenticate" if resp.status == 401 else "proxy-authenticate") or "")
            if challenge is None:
                return False, f"REGISTER answered {resp.status} without a Digest challenge"
            if cfg.password is None:
                return False, "the platform asks for a password and the destination has none (password:)"
            try:
                auth = digest_authorization(
                    challenge, method="REGISTER", uri=uri, username=cfg.username or cfg.local_id, password=cfg.password.get_secret_value()
                )
            except DigestError as exc:
                return False, str(exc)
            name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
            resp = self.endpoint.request(replace(out, headers=(*out.headers, (name, auth))))
            if resp.status in (401, 403, 407):
                return False, f"REGISTER refused ({resp.status} {resp.reason}): check the device id, user name and password"
        if not 200 <= resp.status < 300:
            return False, f"REGISTER answered {resp.status} {resp.reason}"
        if expires:
            granted = max(expires_of(resp, contact, expires), 1)
            now = time.monotonic()
            with self._lock:
                self._refresh_at = now + granted * 2 / 3
                self._next_keepalive = now + cfg.keepalive_interval_s
                self._missed = 0
        return True, ""

    def _try_register(self) -> bool:
        try:
            ok, why = self._register(self.config.expires_s)
        except SipError as exc:
            ok, why = False, str(exc)
            self.endpoint.reset()
        if not ok:
            with self._lock:
                first = self.registered.is_set() or self.last_error != why
                self.last_error = why
                self.registered.clear()  # last: whoever sees the registration gone finds why
            (log.warning if first else log.debug)("GB/T 28181 %s: registration failed: %s", self.config.name, why)
            return False
        with self._lock:
            fresh = not self.registered.is_set()
            self.registered.set()
            self.registrations += 1
            self.last_error = ""
        if fresh:
            log.info("GB/T 28181 %s: registered with %s as %s", self.config.name, self.config.platform_id, self.config.local_id)
            self._wake()
        return True

    def _keepalive(self) -> None:
        cfg = self.config
        self._sn += 1
        body = manscdp("Notify", ["<CmdType>Keepalive</CmdType>", f"<SN>{self._sn}</SN>", f"<DeviceID>{cfg.local_id}</DeviceID>", "<Status>OK</Status>"])
        why = ""
        try:
            resp = self.message(body, timeout_s=min(cfg.timeout_s, cfg.keepalive_interval_s))
        except SipError as exc:
            why = str(exc)
        else:
            if 200 <= resp.status < 300:
                with self._lock:
                    self._missed = 0
                    self.keepalives += 1
                return
            if resp.status in (403, 404):
                self.lost(f"keepalive answered {resp.status} {resp.reason}")
                return
            why = f"keepalive answered {resp.status} {resp.reason}"
        with self._lock:
            self._missed += 1
            missed = self._missed
        if missed >= cfg.keepalive_max_missed:
            self.lost(f"{missed} keepalives unanswered ({why})")
            self.endpoint.reset()

    def _run(self) -> None:
        cfg = self.config
        while not self._stop.is_set():
            if not self.registered.is_set():
                if not self._try_register():
                    self._wait(cfg.register_retry_s)
                continue
            now = time.monotonic()
            if now >= self._refresh_at:
                self._try_register()
                continue
            if now >= self._next_keepalive:
                self._next_keepalive = now + cfg.keepalive_interval_s
                self._keepalive()
                continue
            self._wait(min(self._refresh_at, self._next_keepalive) - now)

    def _wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` s, answering the queries that arrive meanwhile."""
        try:
            job = self._jobs.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return
        if job is not None and not self._stop.is_set():
            try:
                self._respond(job)
            except SipError as exc:
                log.warning("GB/T 28181 %s: answering %s %s failed: %s", self.config.name, job.cmd, job.sn, exc)

    # -- the platform's queries ------------------------------------------------------------------
    def on_request(self, req: SipRequest) -> Reply | None:
        """Answer a request from the platform (the SIP endpoint's reader thread: no waiting)."""
        if req.method == "OPTIONS":
            return Reply(200, "OK", (("Allow", "MESSAGE, OPTIONS"),))
        if req.method != "MESSAGE":
            return Reply(405, "Method Not Allowed", (("Allow", "MESSAGE, OPTIONS"),))
        if (req.header("content-type") or "").split(";")[0].strip().lower() != CONTENT_TYPE.lower():
            return Reply(415, "Unsupported Media Type", (("Accept", CONTENT_TYPE),))
        root = parse_manscdp(req.body)
        if root is None:
            return Reply(400, "Bad Request")
        if root.tag in ("Notify", "Response"):  # nothing to answer
            return Reply(200, "OK")
        if root.tag not in ("Query", "Control"):
            return Reply(400, "Bad Request")
        cmd = (root.findtext("CmdType") or "").strip()
        sn = (root.findtext("SN") or "").strip()
        device = (root.findtext("DeviceID") or "").strip()
        if not re.fullmatch(r"[A-Za-z]{1,32}", cmd) or not re.fullmatch(r"[0-9]{1,10}", sn) or not re.fullmatch(r"[0-9]{20}", device):
            return Reply(400, "Bad Request")
        if device != self.config.local_id and device not in {c.device_id for c in self.config.cameras.values()}:
            return Reply(404, "Not Found")
        try:
            self._jobs.put_nowait(Query(cmd, sn, device))
        except queue.Full:
            return Reply(503, "Service Unavailable", (("Retry-After", "1"),))
        return Reply(200, "OK")

    def _respond(self, q: Query) -> None:
        for body in self.responses(q):
            resp = self.message(body)
            if not 200 <= resp.status < 300:
                log.warning("GB/T 28181 %s: the platform answered our %s response %d %s", self.config.name, q.cmd, resp.status, resp.reason)
                return

    def responses(self, q: Query) -> list[bytes]:
        """The ``Response`` document(s) answering ``q`` (a Catalog comes in pieces)."""
        cfg = self.config
        head = [f"<CmdType>{escape(q.cmd)}</CmdType>", f"<SN>{q.sn}</SN>", f"<DeviceID>{q.device_id}</DeviceID>"]
        if q.cmd == "Catalog":
            channels = self.channels()
            if q.device_id != cfg.local_id:
                channels = [c for c in channels if c.device_id == q.device_id]
            step = CATALOG_ITEMS_PER_MESSAGE[cfg.transport]
            pieces = [channels[i : i + step] for i in range(0, len(channels), step)] or [[]]
            return [
                manscdp("Response", [*head, f"<SumNum>{len(channels)}</SumNum>", f'<DeviceList Num="{len(piece)}">', *self._items(piece), "</DeviceList>"])
                for piece in pieces
            ]
        if q.cmd == "DeviceInfo":
            return [manscdp("Response", [
                *head, f"<DeviceName>{escape(cfg.device_name)}</DeviceName>", "<Result>OK</Result>", "<Manufacturer>gridworker</Manufacturer>",
                "<Model>gridworker video analytics</Model>", f"<Firmware>{escape(_version())}</Firmware>", f"<Channel>{len(cfg.cameras)}</Channel>",
            ])]
        if q.cmd == "DeviceStatus":
            ids = [c.device_id for c in cfg.cameras.values()]
            return [manscdp("Response", [
                *head, "<Result>OK</Result>", "<Online>ONLINE</Online>", "<Status>OK</Status>", "<Encode>OFF</Encode>", "<Record>OFF</Record>",
                f"<DeviceTime>{alarm_time(time.time(), cfg.utc_offset_h)}</DeviceTime>", f'<Alarmstatus Num="{len(ids)}">',
                *[f"<Item><DeviceID>{i}</DeviceID><DutyStatus>ONDUTY</DutyStatus></Item>" for i in ids], "</Alarmstatus>",
            ])]
        return [manscdp("Response", [*head, "<Result>ERROR</Result>"])]

    def _items(self, channels: list[Channel]) -> list[str]:
        cfg = self.config
        out: list[str] = []
        for c in channels:
            out += [
                "<Item>", f"<DeviceID>{c.device_id}</DeviceID>", f"<Name>{escape(c.name)}</Name>", "<Manufacturer>gridworker</Manufacturer>",
                "<Model>alarm channel</Model>", "<Owner>gridworker</Owner>", f"<CivilCode>{c.device_id[:6]}</CivilCode>", "<Address></Address>",
                "<Parental>0</Parental>", f"<ParentID>{cfg.local_id}</ParentID>", "<SafetyWay>0</SafetyWay>", "<RegisterWay>1</RegisterWay>",
                "<Secrecy>0</Secrecy>", "<Status>ON</Status>",
            ]
            if c.longitude is not None and c.latitude is not None:
                out += [f"<Longitude>{c.longitude:.6f}</Longitude>", f"<Latitude>{c.latitude:.6f}</Latitude>"]
            out.append("</Item>")
        return out


class Gb28181Sender:
    """The ``gb28181`` destination's sender: alarms as MANSCDP MESSAGEs; with ``registration``
    its ``Gb28181Device`` registers and answers the platform (started with the worker)."""

    kind = "gb28181"

    def __init__(self, config: Gb28181Destination) -> None:
        self.config = config
        self.name = config.name
        self.endpoint = SipEndpoint(
            local_id=config.local_id,
            local_domain=config.local_domain or config.local_id[:10],
            peer_host=config.platform_host,
            peer_port=config.platform_port,
            local_host=config.local_host,
            local_port=config.local_port,
            transport=config.transport,
            t1_s=config.t1_s,
            timeout_s=config.timeout_s,
        )
        self.device = Gb28181Device(config, self.endpoint, self.channels) if config.registration else None
        self._camera_names: dict[str, str] = {}  # camera id → its name as its alarms carry it
        self._refusals = 0

    def target(self) -> str:
        return self.config.target()

    def channels(self) -> list[Channel]:
        """One alarm channel per camera of the ``cameras`` map, named and placed when known."""
        cfg = self.config
        return [
            Channel(
                cam.device_id,
                cam.name or self._camera_names.get(camera_id) or camera_id,
                cam.longitude if cam.longitude is not None else cfg.longitude,
                cam.latitude if cam.latitude is not None else cfg.latitude,
            )
            for camera_id, cam in cfg.cameras.items()
        ]

    def start(self, wake: Callable[[], None]) -> None:
        if self.device is not None:
            self.device.start(wake)

    def send(self, event: OutboxEvent) -> Result:
        cfg = self.config
        name = event.payload.get("incident", {}).get("camera_name")
        if event.camera_id in cfg.cameras and isinstance(name, str) and name:
            self._camera_names[event.camera_id] = name[:64]
        dev = self.device
        if dev is not None and not dev.registered.is_set():
            return Result(Outcome.NOT_READY, f"not registered with the platform: {dev.last_error}")
        try:
            resp = platform_message(self.endpoint, cfg, alarm_xml(event, cfg))
        except SipError as exc:
            return Result(Outcome.UNREACHABLE if exc.unreachable else Outcome.RETRY, str(exc))
        if 200 <= resp.status < 300:
            self._refusals = 0
            return Result.ok()
        error = f"SIP {resp.status} {resp.reason}"
        if dev is not None and resp.status in (403, 404):
            # the platform does not know us (wvp-GB28181-pro: 404 "device not found"): register again
            self._refusals += 1
            if self._refusals <= MAX_REFUSALS:
                dev.lost(f"an alarm was answered {resp.status} {resp.reason}")
                return Result(Outcome.NOT_READY, f"{error}: registering again")
            self._refusals = 0
            return Result(Outcome.DEAD, f"{error} (also after {MAX_REFUSALS} fresh registrations)")
        # 4xx: the platform refuses this request (except a timeout or "try later")
        if 400 <= resp.status < 500 and resp.status not in (408, 480, 486, 491):
            return Result(Outcome.DEAD, error)
        return Result(Outcome.RETRY, error, retry_after_seconds(resp.header("retry-after")))

    def close(self) -> None:
        if self.device is not None:
            self.device.stop()
        self.endpoint.close()
