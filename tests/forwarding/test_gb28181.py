"""GB/T 28181 alarm notification (unregistered: ``registration: false``, a platform that
trusts gridworker's address) against a real SIP peer: ``sipp`` (Debian's sip-tester)
as the platform, with a scenario that accepts a MESSAGE only if its body is an Alarm
(``check_it``: otherwise the call fails and sipp exits non-zero) and answers 200 OK (or
403). What sipp received is read back from its ``-trace_msg`` log and the MANSCDP fields
checked."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from gridworker.delivery import ForwardingConfig, Gb28181Destination, GbCamera, RetryPolicy, build_forwarding
from gridworker.delivery.gb28181 import alarm_time, alarm_xml
from gridworker.delivery.outbox import DEAD, DELIVERED
from gridworker.cases.workflow import OPERATOR, Actor, Workflow

from tests.forwarding.helpers import T0, open_incident
from tests.factories import free_port

SIPP = shutil.which("sipp")
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")

PLATFORM = "34020000002000000001"
LOCAL = "34020000002000000099"
CAMERA_DEV = "34020000001320000017"

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="GB28181 alarm platform">
  <recv request="MESSAGE" crlf="true">
    <action>
      <ereg regexp="&lt;CmdType&gt;Alarm&lt;/CmdType&gt;" search_in="body" check_it="true" assign_to="alarm"/>
      <ereg regexp="Application/MANSCDP\\+xml" search_in="hdr" header="Content-Type:" check_it="true" assign_to="ctype"/>
    </action>
  </recv>
  <send>
    <![CDATA[

      SIP/2.0 {code}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <Reference variables="alarm,ctype"/>
</scenario>
"""


class Sipp:
    """sipp as a UAS on 127.0.0.1: ``scenario`` (default: the alarm platform above, answering
    ``code``), ``calls`` calls (None: until stopped); ``extra`` sipp options."""

    def __init__(self, tmp: Path, *, calls: int | None, transport: str = "udp", code: str = "200 OK", port: int | None = None,
                 scenario: str | None = None, name: str = "uas", extra: tuple[str, ...] = ()) -> None:
        self.port = port or free_port(socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM)
        self.scenario = tmp / f"{name}-{self.port}.xml"
        self.scenario.write_text(scenario if scenario is not None else SCENARIO.replace("{code}", code), encoding="utf-8")
        self.log = tmp / f"{name}-{self.port}.log"
        self.errors = tmp / f"{name}-{self.port}.err"
        assert SIPP is not None  # the module is skipped without it
        cmd = [SIPP, "-sf", str(self.scenario), "-i", "127.0.0.1", "-p", str(self.port), "-nostdin",
               "-trace_msg", "-message_file", str(self.log), "-trace_err", "-error_file", str(self.errors), "-timeout", "60s"]
        if calls is not None:
            cmd += ["-m", str(calls)]
        cmd += list(extra)
        if transport == "tcp":
            cmd += ["-t", "t1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp)
        time.sleep(0.5)  # sipp binds its socket

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def trace(self) -> list[tuple[float, str, bytes]]:
        """Every message sipp logged: (time, "received" | "sent", raw bytes)."""
        data = self.log.read_bytes() if self.log.exists() else b""
        out = []
        parts = re.split(rb"-{20,} ([0-9-]+ [0-9:.]+)\r?\n", data)
        for stamp, chunk in zip(parts[1::2], parts[2::2]):
            head, _, rest = chunk.partition(b"\n\n")
            when = datetime.strptime(stamp.decode(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append((when, "received" if b"message received" in head else "sent", rest))
        return out

    def received(self, method: bytes = b"MESSAGE") -> list[bytes]:
        """The ``method`` requests sipp received (raw bytes, as logged)."""
        return [raw for _, way, raw in self.trace() if way == "received" and raw.startswith(method + b" ")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _xml(request: bytes) -> ET.Element:
    head, _, body = request.replace(b"\r\n", b"\n").partition(b"\n\n")
    assert re.search(rb"(?im)^Content-Type: Application/MANSCDP\+xml$", head)
    text = body.decode("gb2312")
    assert text.startswith('<?xml version="1.0" encoding="GB2312"?>')
    return ET.fromstring(text.split("?>", 1)[1].strip())


def _config(port: int, transport: str = "udp", **kw) -> ForwardingConfig:
    return ForwardingConfig(
        destinations=[
            Gb28181Destination(
                name="platform", platform_id=PLATFORM, platform_host="127.0.0.1", platform_port=port, local_id=LOCAL,
                local_host="127.0.0.1", transport=transport, t1_s=0.1, timeout_s=kw.pop("timeout_s", 3.0), registration=False,
                cameras={"cam-17": GbCamera(device_id=CAMERA_DEV, longitude=121.4737, latitude=31.2304)}, **kw,
            )
        ],
        retry=RetryPolicy(base_s=0.05, cap_s=0.3, max_attempts=3),
        poll_interval_s=0.05,
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_alarm_notify_received_by_sipp(sqlite_orders, tmp_path, transport):
    orders = sqlite_orders
    sipp = Sipp(tmp_path, calls=2, transport=transport)
    try:
        disp = build_forwarding(_config(sipp.port, transport), orders.db, orders=orders)
        with disp:
            a = open_incident(orders, type="intrusion", camera="cam-17", site="东区变电站", summary="有人进入围栏区域", at=T0)
            b = open_incident(orders, type="crowd", camera="cam-9", site="market", at=T0 + 60)
            Workflow(orders).dispatch(a.incident_id, Actor("op", OPERATOR), at=T0 + 70)  # not an alarm: not sent
            assert disp.drain(20)
        rc = sipp.wait()
        assert rc == 0, sipp.proc.stderr.read().decode(errors="replace")[-2000:]
    finally:
        sipp.stop()
    got = sipp.received()
    assert len(got) == 2
    first = _xml(got[0])
    assert [c.tag for c in first] == [
        "CmdType", "SN", "DeviceID", "AlarmPriority", "AlarmMethod", "AlarmTime", "AlarmDescription", "Longitude", "Latitude", "Info",
    ]
    assert first.tag == "Notify" and first.findtext("CmdType") == "Alarm"
    assert first.findtext("DeviceID") == CAMERA_DEV
    assert first.findtext("AlarmPriority") == "1"  # intrusion is grade 1 in the catalogue
    assert first.findtext("AlarmMethod") == "5"
    assert first.findtext("AlarmTime") == alarm_time(T0, 8) == "2023-11-15T06:13:20"
    assert "有人进入围栏区域" in first.findtext("AlarmDescription") and "东区变电站" in first.findtext("AlarmDescription")
    assert float(first.findtext("Longitude")) == pytest.approx(121.4737) and float(first.findtext("Latitude")) == pytest.approx(31.2304)
    assert first.findtext("Info/AlarmType") == "6" and first.findtext("Info/AlarmTypeParam/EventType") == "1"
    second = _xml(got[1])
    assert second.findtext("DeviceID") == LOCAL  # a camera with no GB id: gridworker's own
    assert second.findtext("AlarmPriority") == "2" and second.findtext("Info/AlarmType") == "10"
    assert second.find("Longitude") is None
    assert int(second.findtext("SN")) > int(first.findtext("SN"))
    for raw in got:
        assert re.search(rb"(?m)^Via: SIP/2\.0/" + transport.upper().encode() + rb" 127\.0\.0\.1:\d+;rport;branch=z9hG4bK", raw)
        assert re.search(rb"(?m)^From: <sip:" + LOCAL.encode() + rb"@3402000000>;tag=", raw)
        assert re.search(rb"(?m)^To: <sip:" + PLATFORM.encode() + rb"@3402000000>", raw)
        assert re.search(rb"(?m)^CSeq: \d+ MESSAGE", raw) and re.search(rb"(?m)^Max-Forwards: 70", raw)
    c = disp.outbox.counters()["platform"]
    assert (c["delivered"], c["pending"], c["dead"]) == (2, 0, 0)


def test_platform_refusal_is_a_dead_letter(sqlite_orders, tmp_path):
    orders = sqlite_orders
    sipp = Sipp(tmp_path, calls=1, code="403 Forbidden")
    try:
        disp = build_forwarding(_config(sipp.port), orders.db, orders=orders)
        with disp:
            open_incident(orders, camera="cam-17")
            assert disp.drain(20)
        sipp.wait()
    finally:
        sipp.stop()
    (d,), _ = disp.outbox.deliveries(destination="platform")
    assert (d.state, d.attempts, d.last_error) == (DEAD, 1, "SIP 403 Forbidden")


def test_silent_platform_then_retransmission_reaches_it(sqlite_orders, tmp_path):
    """Nothing listens at first: the transaction (with its UDP retransmissions) times out —
    unreachable, not counted against the message; sipp starts and the next try reaches it."""
    orders = sqlite_orders
    port = free_port(socket.SOCK_DGRAM)
    disp = build_forwarding(_config(port, timeout_s=2.0), orders.db, orders=orders)
    sipp = None
    try:
        with disp:
            open_incident(orders, camera="cam-17")
            end = time.monotonic() + 15
            while disp.statuses()[0].consecutive_failures < 1 and time.monotonic() < end:
                time.sleep(0.05)
            (d,), _ = disp.outbox.deliveries(destination="platform")
            assert d.attempts == 0 and "no final response" in d.last_error
            sipp = Sipp(tmp_path, calls=1, port=port)
            assert disp.drain(20)
            assert sipp.wait() == 0
    finally:
        if sipp is not None:
            sipp.stop()
    got = sipp.received()
    assert len(got) >= 1 and _xml(got[0]).findtext("DeviceID") == CAMERA_DEV
    (d,), _ = disp.outbox.deliveries(destination="platform")
    assert d.state == DELIVERED


def test_characters_outside_gb2312_survive_as_references():
    from gridworker.delivery.outbox import OutboxEvent

    cfg = _config(5060).destinations[0]
    ev = OutboxEvent(7, "workorder.detect", 3, 1, "3:1", "street_vending", "", "cam-x", "u", "", {
        "incident": {"type_name_zh": "占道经营", "summary": "摊位 😀 <b>&"}, "workorder": {"grade": 3, "detected_at": "2023-11-14T22:13:20Z"},
    }, T0)
    body = alarm_xml(ev, cfg)
    root = ET.fromstring(body.decode("gb2312").split("?>", 1)[1])
    assert root.findtext("AlarmDescription") == "占道经营 cam-x 摊位 😀 <b>&"
    assert root.findtext("SN") == "7" and root.findtext("AlarmPriority") == "3" and root.findtext("Info/AlarmType") == "3"
