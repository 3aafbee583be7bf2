"""GB/T 28181 alarm notification (报警通知): a MANSCDP ``Notify`` with ``CmdType`` ``Alarm``
in a SIP MESSAGE (``Content-Type: Application/MANSCDP+xml``) to the platform.

Mapping (docs/forwarding.md has the table):

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

The body is encoded GB2312 as declared; a character GB2312 lacks is written as an XML
character reference, so nothing is lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

from gridworker.delivery.outbox import OutboxEvent

from .config import Gb28181Destination
from .dispatcher import Outcome, Result
from .sip import SipClient, SipError

CONTENT_TYPE = "Application/MANSCDP+xml"
METHOD_VIDEO = 5

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
        '<?xml version="1.0" encoding="GB2312"?>',
        "<Notify>",
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
    lines += ["</Info>", "</Notify>", ""]
    return "\r\n".join(lines).encode("gb2312", errors="xmlcharrefreplace")


class Gb28181Sender:
    kind = "gb28181"

    def __init__(self, config: Gb28181Destination) -> None:
        self.config = config
        self.name = config.name
        self.client = SipClient(
            local_id=config.local_id,
            local_domain=config.local_domain or config.local_id[:10],
            local_host=config.local_host,
            local_port=config.local_port,
            transport=config.transport,
            t1_s=config.t1_s,
            timeout_s=config.timeout_s,
        )

    def target(self) -> str:
        return self.config.target()

    def send(self, event: OutboxEvent) -> Result:
        cfg = self.config
        try:
            resp = self.client.message(
                cfg.platform_id, cfg.platform_domain or cfg.platform_id[:10], cfg.platform_host, cfg.platform_port,
                alarm_xml(event, cfg), CONTENT_TYPE,
            )
        except SipError as exc:
            return Result(Outcome.UNREACHABLE if exc.unreachable else Outcome.RETRY, str(exc))
        if 200 <= resp.status < 300:
            return Result.ok()
        error = f"SIP {resp.status} {resp.reason}"
        # 4xx: the platform refuses this request (except a timeout or "try later")
        if 400 <= resp.status < 500 and resp.status not in (408, 480, 486, 491):
            return Result(Outcome.DEAD, error)
        retry_after = resp.header("retry-after")
        try:
            wait = float(retry_after.split(";")[0]) if retry_after else None
        except ValueError:
            wait = None
        return Result(Outcome.RETRY, error, wait)

    def close(self) -> None:
        self.client.close()
