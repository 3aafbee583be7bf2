"""gridworker as a GB/T 28181 device against a real SIP peer: ``sipp`` plays the platform
(tests/forwarding/sipp/platform.xml) — it challenges REGISTER with 401 and checks the digest
with ``verifyauth``, answers keepalives and alarms, sends a ``Query`` after the registration
and checks the ``Response`` body by regular expression. What sipp received is read back
from its ``-trace_msg`` log. The parser and query-handler tables at the end need no peer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
import re
import statistics
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from gridworker.delivery import ForwardingConfig, Gb28181Destination, GbCamera, Outcome, Result, RetryPolicy, build_forwarding, make_sender
from gridworker.delivery.gb28181 import MAX_REFUSALS, Gb28181Sender, Query
from gridworker.delivery.outbox import DEAD, DELIVERED, PENDING
from gridworker.delivery.sip import SipEndpoint, SipRequest, SipResponse, digest_authorization, parse_challenge, parse_message

from tests.factories import free_port, wait_until
from tests.forwarding.helpers import T0, open_incident
from tests.forwarding.test_gb28181 import SIPP, Sipp

needs_sipp = pytest.mark.skipif(SIPP is None, reason="sipp not installed (apt-get install sip-tester)")

PLATFORM = "34020000002000000001"
LOCAL = "34020000002000000099"
PASSWORD = "Gw-pl4tform-pw"
CAMERAS = {
    "cam-17": GbCamera(device_id="34020000001340000017", name="东门", longitude=121.4737, latitude=31.2304),
    "cam-9": GbCamera(device_id="34020000001340000009"),
    "cam-3": GbCamera(device_id="34020000001340000003", name="North gate"),
}
TEMPLATE = (Path(__file__).parent / "sipp" / "platform.xml").read_text(encoding="utf-8")


def platform_scenario(*, password: str = PASSWORD, expires: int = 3600, query: str | None = None, response_re: str = "^$",
                      alarm_code: str = "200 OK") -> str:
    """The platform scenario with its placeholders filled; without ``query`` it sends none."""
    text = TEMPLATE
    if query is None:
        text = re.sub(r"<!--QUERY-->.*<!--/QUERY-->", "", text, flags=re.S)
    values = {
        "@USERNAME@": LOCAL, "@PASSWORD@": password, "@EXPIRES@": str(expires), "@QUERY@": query or "", "@LOCAL@": LOCAL,
        "@LOCAL_DOMAIN@": LOCAL[:10], "@PLATFORM@": PLATFORM, "@REALM@": PLATFORM[:10], "@RESPONSE_RE@": escape(response_re, {'"': "&quot;"}),
        "@ALARM_CODE@": alarm_code,
    }
    for k, v in values.items():
        text = text.replace(k, v)
    return text


def device_config(port: int, **kw) -> ForwardingConfig:
    values = dict(
        name="platform", platform_id=PLATFORM, platform_host="127.0.0.1", platform_port=port, local_id=LOCAL, local_host="127.0.0.1",
        t1_s=0.1, timeout_s=1.0, password=PASSWORD, keepalive_interval_s=0.5, keepalive_max_missed=2, register_retry_s=0.3,
        cameras=CAMERAS,
    )
    values.update(kw)
    return ForwardingConfig(
        destinations=[Gb28181Destination(**values)], retry=RetryPolicy(base_s=0.05, cap_s=0.3, max_attempts=3), poll_interval_s=0.05,
    )


def wait_for(cond, timeout: float = 10.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or cond}")


def body_xml(raw: bytes) -> ET.Element:
    body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
    return ET.fromstring(body.decode("gb2312").split("?>", 1)[1].strip())


def cmd_of(raw: bytes) -> str:
    m = re.search(rb"<CmdType>(\w+)</CmdType>", raw)
    return m.group(1).decode() if m else ""


def header(raw: bytes, name: str) -> str:
    m = re.search(rb"(?im)^" + name.encode() + rb":\s*(.*?)\r?$", raw)
    return m.group(1).decode() if m else ""


def sent_status_lines(sipp: Sipp) -> list[str]:
    return [raw.split(b"\n", 1)[0].decode().strip() for _, way, raw in sipp.trace() if way == "sent" and raw.startswith(b"SIP/2.0 ")]


def platform(tmp_path: Path, scenario: str, name: str = "platform", port: int | None = None, transport: str = "udp") -> Sipp:
    """sipp as the platform until stopped. A Call-ID is forgotten as soon as its transaction
    ends (``-deadcall_wait``): a device sends every REGISTER of its binding on one Call-ID."""
    return Sipp(tmp_path, calls=None, scenario=scenario, name=name, port=port, transport=transport, extra=("-deadcall_wait", "1"))


def _start(orders, sipp: Sipp, **kw):
    cfg = device_config(sipp.port, **kw)
    sender = make_sender(cfg.destinations[0])
    assert isinstance(sender, Gb28181Sender) and sender.device is not None
    return build_forwarding(cfg, orders.db, orders=orders, senders=[sender]), sender


def _keepalives(sipp: Sipp) -> list:
    return [(t, raw) for t, way, raw in sipp.trace() if way == "received" and cmd_of(raw) == "Keepalive"]


@needs_sipp
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_registers_with_digest_keeps_alive_answers_catalog_and_unregisters(sqlite_orders, tmp_path, caplog, transport):
    caplog.set_level(logging.DEBUG)
    catalog_re = (
        r"<Response>.*<CmdType>Catalog</CmdType>.*<SN>17</SN>.*<DeviceID>" + LOCAL + r"</DeviceID>.*<SumNum>3</SumNum>"
        r".*<DeviceList Num=\"[1-3]\">.*<Item>.*<DeviceID>340200000013400000[01][0-9]</DeviceID>.*<ParentID>" + LOCAL + r"</ParentID>.*<Status>ON</Status>"
    )
    sipp = platform(tmp_path, platform_scenario(query="Catalog", response_re=catalog_re), transport=transport)
    try:
        disp, sender = _start(sqlite_orders, sipp, transport=transport)
        with disp:
            assert sender.device.registered.wait(5), sender.device.last_error
            order = open_incident(sqlite_orders, type="intrusion", camera="cam-17", at=T0)
            assert disp.drain(10)
            # three keepalives at least (waited for: a loaded machine may be slower than 0.5 s apart)
            assert wait_until(lambda: len(_keepalives(sipp)) >= 3, timeout=15)
        assert not sender.device.registered.is_set()
    finally:
        sipp.stop()
    registers = sipp.received(b"REGISTER")
    # challenged, answered with the digest (checked by sipp's verifyauth: 200, not 403), and at stop unregistered
    assert len(registers) == 4, [r[:200] for r in registers]
    assert header(registers[0], "Authorization") == "" and header(registers[0], "Expires") == "3600"
    auth = header(registers[1], "Authorization")
    assert auth.startswith("Digest ") and f'username="{LOCAL}"' in auth and 'realm="3402000000"' in auth and "qop=auth" in auth
    assert f'uri="sip:{PLATFORM}@3402000000"' in auth and PASSWORD not in auth
    assert header(registers[3], "Expires") == "0" and header(registers[3], "Authorization").startswith("Digest ")
    assert len({header(r, "Call-ID") for r in registers}) == 1  # one binding
    assert header(registers[0], "Via").startswith(f"SIP/2.0/{transport.upper()} ")
    via_port = re.search(r"127\.0\.0\.1:(\d+);", header(registers[0], "Via")).group(1)
    assert header(registers[0], "Contact") == f"<sip:{LOCAL}@127.0.0.1:{via_port}>"
    statuses = sent_status_lines(sipp)
    assert statuses.count("SIP/2.0 401 Unauthorized") == 2 and "SIP/2.0 403 Forbidden" not in statuses
    # keepalives at the configured interval (0.5 s)
    keepalives = _keepalives(sipp)
    assert len(keepalives) >= 3
    gaps = [b[0] - a[0] for a, b in zip(keepalives, keepalives[1:])]
    assert all(g > 0.35 for g in gaps) and 0.35 < statistics.median(gaps) < 0.9, gaps
    ka = body_xml(keepalives[0][1])
    assert (ka.tag, ka.findtext("DeviceID"), ka.findtext("Status")) == ("Notify", LOCAL, "OK")
    # the Catalog: sipp's regular expression matched every piece (answered 200, never 400)
    responses = [body_xml(raw) for raw in sipp.received() if cmd_of(raw) == "Catalog"]
    assert "SIP/2.0 400 Check Failed" not in statuses and len(responses) == (2 if transport == "udp" else 1)  # 3 channels, 2 per UDP message
    items = {i.findtext("DeviceID"): i for r in responses for i in r.iter("Item")}
    assert set(items) == {c.device_id for c in CAMERAS.values()}
    gate = items["34020000001340000017"]
    assert gate.findtext("Name") == "东门" and float(gate.findtext("Longitude")) == pytest.approx(121.4737)
    assert items["34020000001340000003"].findtext("Name") == "North gate"
    assert items["34020000001340000009"].findtext("Name") == "cam-9" and items["34020000001340000009"].find("Longitude") is None
    # the alarm went while registered
    alarms = [body_xml(raw) for raw in sipp.received() if cmd_of(raw) == "Alarm"]
    assert [a.findtext("DeviceID") for a in alarms] == ["34020000001340000017"]
    (d,), _ = disp.outbox.deliveries(destination="platform", incident_id=order.incident_id)
    assert d.state == DELIVERED
    assert PASSWORD not in caplog.text


@needs_sipp
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("DeviceInfo", r"<Response>.*<CmdType>DeviceInfo</CmdType>.*<SN>17</SN>.*<DeviceName>gridworker</DeviceName>.*<Result>OK</Result>.*<Channel>3</Channel>"),
        ("DeviceStatus", r"<Response>.*<CmdType>DeviceStatus</CmdType>.*<Result>OK</Result>.*<Online>ONLINE</Online>.*<Alarmstatus Num=\"3\">"),
        ("ConfigDownload", r"<Response>.*<CmdType>ConfigDownload</CmdType>.*<SN>17</SN>.*<Result>ERROR</Result>"),
    ],
)
def test_answers_device_queries_and_unknown_ones(sqlite_orders, tmp_path, query, expected):
    sipp = platform(tmp_path, platform_scenario(query=query, response_re=expected))
    try:
        disp, sender = _start(sqlite_orders, sipp, keepalive_interval_s=30)
        with disp:
            assert sender.device.registered.wait(5), sender.device.last_error
            wait_for(lambda: any(cmd_of(raw) == query for raw in sipp.received()), 5, "the response")
            time.sleep(0.2)  # sipp's answer to it
    finally:
        sipp.stop()
    statuses = sent_status_lines(sipp)
    assert "SIP/2.0 400 Check Failed" not in statuses
    (resp,) = [raw for raw in sipp.received() if cmd_of(raw) == query]
    assert body_xml(resp).tag == "Response"


@needs_sipp
def test_registration_is_refreshed_at_two_thirds_of_the_granted_expiry(sqlite_orders, tmp_path):
    sipp = platform(tmp_path, platform_scenario(expires=3))  # the platform grants 3 s of the 3600 asked for
    try:
        disp, sender = _start(sqlite_orders, sipp, keepalive_interval_s=30)
        with disp:
            assert sender.device.registered.wait(5)
            wait_for(lambda: sender.device.registrations >= 3, 8, "two refreshes")
            assert sender.device.registered.is_set()
    finally:
        sipp.stop()
    accepted = [(t, raw) for t, way, raw in sipp.trace() if way == "received" and raw.startswith(b"REGISTER ") and header(raw, "Authorization")]
    assert all(header(raw, "Expires") == "3600" for _, raw in accepted[:3])
    gaps = [b[0] - a[0] for a, b in zip(accepted, accepted[1:3])]
    assert all(1.8 < g < 2.6 for g in gaps), gaps  # 2/3 of 3 s


def test_the_password_is_a_secret_to_scrub():
    cfg = device_config(5060)
    assert PASSWORD in cfg.secrets()
    assert PASSWORD not in repr(cfg) and PASSWORD not in cfg.model_dump_json()


@needs_sipp
def test_wrong_password_leaves_alarms_waiting_not_dead(sqlite_orders, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sipp = platform(tmp_path, platform_scenario(password="the-platform-wants-this"))
    try:
        disp, sender = _start(sqlite_orders, sipp)
        with disp:
            open_incident(sqlite_orders, camera="cam-17", at=T0)
            wait_for(lambda: len(sipp.received(b"REGISTER")) >= 4, 10, "two registration attempts")
            wait_for(lambda: "REGISTER refused (403 Forbidden)" in disp.statuses()[0].last_error, 5, "the refusal in the status")
            assert not sender.device.registered.is_set()
            assert disp.statuses()[0].state == "not_ready"
    finally:
        sipp.stop()
    (d,), _ = disp.outbox.deliveries(destination="platform")
    assert (d.state, d.attempts) == (PENDING, 0) and "not registered" in d.last_error
    assert not [raw for raw in sipp.received() if cmd_of(raw) == "Alarm"]
    assert PASSWORD not in caplog.text and PASSWORD not in d.last_error


@needs_sipp
def test_platform_away_and_back_delivers_waiting_alarms_once(sqlite_orders, tmp_path):
    first = platform(tmp_path, platform_scenario(), name="first")
    second = None
    try:
        disp, sender = _start(sqlite_orders, first)
        dev = sender.device
        with disp:
            assert dev.registered.wait(5), dev.last_error
            first.stop()  # the platform goes away: keepalives go unanswered, the registration is lost
            wait_for(lambda: not dev.registered.is_set(), 10, "the registration to be lost")
            assert "keepalives unanswered" in dev.last_error
            a = open_incident(sqlite_orders, camera="cam-17", at=T0)
            b = open_incident(sqlite_orders, type="crowd", camera="cam-9", at=T0 + 1)
            time.sleep(0.5)
            rows, _ = disp.outbox.deliveries(destination="platform")
            assert [(r.state, r.attempts) for r in rows] == [(PENDING, 0), (PENDING, 0)]
            second = platform(tmp_path, platform_scenario(), name="second", port=first.port)
            assert dev.registered.wait(10), dev.last_error
            assert disp.drain(10)
            time.sleep(0.3)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert not [raw for raw in first.received() if cmd_of(raw) == "Alarm"]
    got = [raw for raw in second.received() if cmd_of(raw) == "Alarm"]
    by_call: dict[str, set[str]] = {}
    for raw in got:  # a UDP retransmission repeats a transaction; it is not a second delivery
        by_call.setdefault(body_xml(raw).findtext("SN"), set()).add(header(raw, "Call-ID"))
    rows, _ = disp.outbox.deliveries(destination="platform")
    assert sorted(by_call) == sorted(str(r.outbox_id) for r in rows) and all(len(c) == 1 for c in by_call.values())
    assert {(r.incident_id, r.state, r.attempts) for r in rows} == {(a.incident_id, DELIVERED, 1), (b.incident_id, DELIVERED, 1)}  # handed over once
    assert len(second.received(b"REGISTER")) >= 2  # challenged again, then accepted


@needs_sipp
def test_not_registered_answer_re_registers_and_is_bounded(sqlite_orders, tmp_path):
    """wvp-GB28181-pro answers a device it does not know with 404: gridworker registers again
    (not a dead letter); a platform that keeps refusing after fresh registrations does make one."""
    sipp = platform(tmp_path, platform_scenario(alarm_code="404 Not Found"))
    try:
        disp, sender = _start(sqlite_orders, sipp, keepalive_interval_s=30)
        with disp:
            assert sender.device.registered.wait(5)
            open_incident(sqlite_orders, camera="cam-17", at=T0)
            assert disp.drain(15)
    finally:
        sipp.stop()
    alarms = [raw for raw in sipp.received() if cmd_of(raw) == "Alarm"]
    assert len({header(raw, "Call-ID") for raw in alarms}) == MAX_REFUSALS + 1
    accepted = [raw for raw in sipp.received(b"REGISTER") if header(raw, "Authorization")]
    assert len(accepted) >= MAX_REFUSALS + 1  # the first registration and one after each refusal
    (d,), _ = disp.outbox.deliveries(destination="platform")
    assert d.state == DEAD and d.attempts == 1 and d.last_error == f"SIP 404 Not Found (also after {MAX_REFUSALS} fresh registrations)"


# -- no peer needed ----------------------------------------------------------------------------
class _ScriptedSender:
    """A sender that is not ready until ``ready`` is set; started with its worker."""

    name, kind = "platform", "gb28181"

    def __init__(self) -> None:
        self.ready = False
        self.sent: list[int] = []
        self.wake = None

    def target(self) -> str:
        return "sip:test"

    def start(self, wake) -> None:
        self.wake = wake

    def send(self, event):
        if not self.ready:
            return Result(Outcome.NOT_READY, "not registered with the platform: test")
        self.sent.append(event.id)
        return Result.ok()

    def close(self) -> None:
        pass


def test_not_ready_keeps_messages_pending_uncounted_until_the_sender_wakes_its_worker(sqlite_orders):
    cfg = device_config(5060)
    cfg = cfg.model_copy(update={"retry": RetryPolicy(base_s=30, cap_s=60, max_attempts=1)})  # a pause far longer than the test
    sender = _ScriptedSender()
    disp = build_forwarding(cfg, sqlite_orders.db, orders=sqlite_orders, senders=[sender])
    with disp:
        assert sender.wake is not None  # started with the worker
        open_incident(sqlite_orders, camera="cam-17", at=T0)
        wait_for(lambda: disp.statuses()[0].state == "not_ready", 5, "not ready")
        (d,), _ = disp.outbox.deliveries(destination="platform")
        assert (d.state, d.attempts) == (PENDING, 0)  # max_attempts 1 and still not dead
        sender.ready = True
        sender.wake()  # ends the 30 s pause at once
        assert disp.drain(3)
    (d,), _ = disp.outbox.deliveries(destination="platform")
    assert d.state == DELIVERED and sender.sent == [d.outbox_id]


def test_digest_matches_rfc_2617_and_challenge_parsing():
    ch = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert ch is not None
    value = digest_authorization(ch, method="GET", uri="/dir/index.html", username="Mufasa", password="Circle Of Life", cnonce="0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in value and "nc=00000001" in value and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value
    assert parse_challenge('Basic realm="x"') is None and parse_challenge("Digest realm=x") is None
    with pytest.raises(ValueError):
        digest_authorization({"nonce": "n", "algorithm": "SHA-512-256"}, method="REGISTER", uri="sip:a", username="u", password="p")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00\r\n\r\n",
        b"MESSAGE sip:a SIP/2.0\r\nVia: x\r\n\r\n",  # no Call-ID, CSeq, From, To
        b"SIP/2.0 200 OK\r\nContent-Length: 99\r\n\r\nshort",
        b"SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"SIP/2.0 200 OK\r\n folded-first\r\n\r\n",
        b"SIP/2.0 200 OK\r\nbad header line\r\n\r\n",
        b"SIP/2.0 200 OK\r\n" + b"X-A: 1\r\n" * 100 + b"\r\n",
        b"SIP/2.0 200 OK\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
        b"SIP/2.0 999 Nope\r\n\r\n",
        "SIP/2.0 200 OK\r\nContent-Length: \u00b2\r\n\r\n".encode(),  # a digit to str.isdigit, not to int()
    ],
)
def test_hostile_sip_parses_to_none(data):
    assert parse_message(data) is None


def _query_bytes(cmd: str, device: str = LOCAL, root: str = "Query", ctype: str = "Application/MANSCDP+xml", method: str = "MESSAGE",
                 body: bytes | None = None) -> bytes:
    raw = body if body is not None else f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n<CmdType>{cmd}</CmdType>\r\n<SN>5</SN>\r\n<DeviceID>{device}</DeviceID>\r\n</{root}>\r\n'.encode()
    head = (f"{method} sip:{LOCAL}@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:{PLATFORM}@3402000000>;tag=a\r\n"
            f"To: <sip:{LOCAL}@3402000000>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\nContent-Type: {ctype}\r\nContent-Length: {len(raw)}\r\n\r\n")
    return head.encode() + raw


def _query(cmd: str, **kw) -> SipRequest:
    msg = parse_message(_query_bytes(cmd, **kw))
    assert isinstance(msg, SipRequest)
    return msg


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (_query("Catalog"), 200),
        (_query("Catalog", device="34020000001340000009"), 200),  # a channel's own catalog
        (_query("RecordInfo"), 200),  # unknown: 200, then a Response with Result ERROR
        (_query("DeviceControl", root="Control"), 200),
        (_query("Keepalive", root="Notify"), 200),
        (_query("Catalog", device="34020000001340000999"), 404),
        (_query("Catalog", ctype="text/plain"), 415),
        (_query("Catalog", method="INVITE"), 405),
        (_query("Catalog", method="OPTIONS"), 200),
        (_query("Cat alog"), 400),
        (_query("x", body=b"<Query><CmdType>Catalog</CmdType><SN>1</SN>"), 400),  # not well-formed
        (_query("x", body=b'<!DOCTYPE q [<!ENTITY a "aaaa">]><Query><CmdType>&a;</CmdType></Query>'), 400),
        (_query("x", body=b'<?xml version="1.0" encoding="EBCDIC"?><Query/>'), 400),
        (_query("x", body=b"<Query>" + b"<a/>" * 3000 + b"</Query>"), 400),  # over the body cap
        (_query("x", body=b"<Unknown/>"), 400),
    ],
)
def test_query_handling_table(request_, status):
    sender = Gb28181Sender(device_config(5060).destinations[0])
    try:
        reply = sender.device.on_request(request_)
        assert reply is not None and reply.status == status
        if request_.method == "MESSAGE" and status == 200 and (b"<Query>" in request_.body or b"<Control>" in request_.body):
            q = sender.device._jobs.get_nowait()
            assert isinstance(q, Query)
            (body,) = sender.device.responses(q)[:1]
            root = ET.fromstring(body.decode("gb2312").split("?>", 1)[1])
            assert root.tag == "Response" and root.findtext("SN") == "5"
            if q.cmd in ("RecordInfo", "DeviceControl"):
                assert root.findtext("Result") == "ERROR"
            else:
                assert root.findtext("SumNum") == ("3" if q.device_id == LOCAL else "1")
    finally:
        sender.close()


@contextmanager
def _platform_and_stranger(stranger_ip: str, **config: object) -> Iterator[tuple[socket.socket, socket.socket, SipEndpoint]]:
    """A platform's UDP socket on 127.0.0.1, a stranger's on ``stranger_ip``, and the device's
    SIP endpoint registered towards the platform (``config``: device_config overrides)."""
    port = free_port(socket.SOCK_DGRAM)
    platform = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    platform.bind(("127.0.0.1", port))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind((stranger_ip, 0))
    destination = device_config(port, local_port=free_port(socket.SOCK_DGRAM), **config).destinations[0]
    assert isinstance(destination, Gb28181Destination)
    sender = Gb28181Sender(destination)
    try:
        yield platform, stranger, sender.endpoint
    finally:
        sender.close()
        platform.close()
        stranger.close()


def _answered(platform: socket.socket, me: tuple[str, int]) -> None:
    """A catalog query from the platform's address gets its 200."""
    platform.sendto(_query_bytes("Catalog"), me)
    platform.settimeout(2.0)
    answer = parse_message(platform.recvfrom(65535)[0])
    assert isinstance(answer, SipResponse) and answer.status == 200


def test_requests_from_other_addresses_are_dropped():
    """Only the platform's address is answered: a query from 127.0.0.2 gets nothing."""
    with _platform_and_stranger("127.0.0.2") as (platform, stranger, ep):
        me = ("127.0.0.1", int(ep.contact().split(":")[1]))
        stranger.sendto(_query_bytes("Catalog"), me)
        stranger.settimeout(0.5)
        with pytest.raises(TimeoutError):
            stranger.recvfrom(65535)
        assert ep.dropped == 1
        _answered(platform, me)  # the same from the platform's address is answered


def test_the_udp_socket_listens_only_where_the_platform_is_routed():
    """No wildcard bind: with the platform on 127.0.0.1 the socket is on 127.0.0.1 alone (its
    Contact says the bound address), so a datagram to the same port on another local address
    (127.0.0.2) never reaches it."""
    with _platform_and_stranger("127.0.0.3", local_host=None) as (platform, stranger, ep):
        host, my_port = ep.contact().split(":")
        assert host == "127.0.0.1"  # getsockname of the bound socket: 0.0.0.0 if bound to every interface
        stranger.sendto(_query_bytes("Catalog"), ("127.0.0.2", int(my_port)))
        time.sleep(0.8)  # the reader polls every 0.5 s
        assert ep.dropped == 0  # bound to 0.0.0.0 it would have read (and dropped) the datagram
        _answered(platform, ("127.0.0.1", int(my_port)))


def test_a_changed_route_to_the_platform_rebinds_the_udp_socket_after_a_failure(monkeypatch):
    """The route to the platform moves to another local address (a failover link; simulated:
    no second route exists here): a reset after a failed registration or keepalive drops the
    socket, and the next request binds, and names in Via/Contact, the new address. With the
    route unchanged, a reset keeps the socket."""
    import gridworker.delivery.sip as sip

    port = free_port(socket.SOCK_DGRAM)
    sender = Gb28181Sender(device_config(port, local_host=None, local_port=0).destinations[0])
    ep: SipEndpoint = sender.endpoint
    try:
        assert ep.contact().startswith("127.0.0.1:")
        ep.reset()
        assert ep.connected  # same route: kept
        monkeypatch.setattr(sip, "_route_address", lambda peer: "127.0.0.2")
        ep.reset()
        assert not ep.connected
        assert ep.contact().startswith("127.0.0.2:")
    finally:
        sender.close()
