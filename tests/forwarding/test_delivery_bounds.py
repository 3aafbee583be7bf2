"""What a receiver cannot make the forwarding do: pause a destination for ever with a huge
``Retry-After`` (SIP or any sender's), hold a webhook send past its ``timeout_s`` by
trickling its answer, make paho send a given-up message again on its next connection; and
a wall clock stepped back does not lengthen a destination's pause."""

from __future__ import annotations

import math
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from api.schemas import utc
from gridworker.delivery import ForwardingConfig, MqttDestination, RetryPolicy, WebhookDestination, build_forwarding, build_outbox
from gridworker.delivery.dispatcher import MAX_RETRY_AFTER_S, Dispatcher, Outcome, Result, retry_after_seconds
from gridworker.delivery.mqtt import MqttSender
from gridworker.delivery.outbox import OutboxEvent
from gridworker.delivery.webhook import WebhookSender, _retry_after

from tests.factories import wait_until
from tests.forwarding.helpers import T0, open_incident

FAST = RetryPolicy(base_s=0.2, cap_s=0.2, max_attempts=5, jitter=0)


def _event(n: int) -> OutboxEvent:
    return OutboxEvent(n, "workorder.detect", n, 1, f"{n}:1", "crowd", "market", "cam-1", "", "", {"n": n}, T0)


# -- Retry-After ------------------------------------------------------------------------------
def test_retry_after_values_are_finite_and_capped():
    assert retry_after_seconds("1e12") == retry_after_seconds("inf") == retry_after_seconds(math.inf) == MAX_RETRY_AFTER_S
    assert retry_after_seconds("nan") is None and retry_after_seconds("soon") is None and retry_after_seconds("") is None
    assert retry_after_seconds("-5") == 0.0 and retry_after_seconds("30 (maintenance)") == 30.0
    assert _retry_after("1e12") == MAX_RETRY_AFTER_S and _retry_after("Wed, 21 Oct 2099 07:28:00 GMT") == MAX_RETRY_AFTER_S


class _Scripted:
    """A sender answering with ``answer(n)`` on its n-th send (from 1); ``on_send`` runs first."""

    kind = "webhook"

    def __init__(self, name: str, answer: Callable[[int], Result], on_send: Callable[[int], None] = lambda n: None) -> None:
        self.name = name
        self.answer = answer
        self.on_send = on_send
        self.sends: list[float] = []  # monotonic times

    def target(self) -> str:
        return "scripted"

    def send(self, event: OutboxEvent) -> Result:
        self.sends.append(time.monotonic())
        self.on_send(len(self.sends))
        return self.answer(len(self.sends))

    def close(self) -> None:
        pass


def _dispatcher(orders, sender: _Scripted, clock: Callable[[], float] = time.time) -> Dispatcher:
    cfg = ForwardingConfig(destinations=[WebhookDestination(name=sender.name, url="http://127.0.0.1:9/x", secret="s")], retry=FAST)
    return Dispatcher(build_outbox(cfg, orders.db, orders=orders), [sender], retry=FAST, poll_interval_s=0.05, clock=clock, rand=lambda: 0.0)


@pytest.mark.parametrize("asked", [1e12, math.inf])
def test_a_huge_retry_after_from_any_sender_is_capped(sqlite_orders, asked):
    sender = _Scripted("hook", lambda n: Result(Outcome.RETRY, "try later", retry_after_s=asked))
    disp = _dispatcher(sqlite_orders, sender)
    open_incident(sqlite_orders)
    with disp:
        wait_until(lambda: sender.sends, timeout=10)
        # the status is published just after the delivery is stored: wait for both
        (st,) = wait_until(lambda: [s for s in disp.statuses() if s.paused_until is not None], timeout=10)
        (d,), _ = disp.outbox.deliveries()
    assert d.attempts == 1 and d.state == "pending" and d.next_attempt_at - d.last_attempt_at == pytest.approx(MAX_RETRY_AFTER_S, abs=1)
    assert st.paused_until is not None and st.paused_until - st.last_error_at == pytest.approx(MAX_RETRY_AFTER_S, abs=1)
    assert utc(st.paused_until).year < 3000 and utc(d.next_attempt_at).year < 3000  # what the API shows


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt-get install sip-tester)")
def test_a_gb28181_platform_asking_retry_after_1e12_waits_an_hour_at_most(sqlite_orders, tmp_path):
    from tests.forwarding.test_gb28181 import Sipp, _config

    sipp = Sipp(tmp_path, calls=1, code="503 Service Unavailable\n      Retry-After: 1e12")
    try:
        disp = build_forwarding(_config(sipp.port), sqlite_orders.db, orders=sqlite_orders)
        open_incident(sqlite_orders, camera="cam-17")
        with disp:
            (st,) = wait_until(lambda: [s for s in disp.statuses() if s.paused_until is not None], timeout=20)
            (d,), _ = disp.outbox.deliveries()  # stored before the status was published
    finally:
        sipp.stop()
    assert d.attempts == 1 and d.last_error == "SIP 503 Service Unavailable"
    assert d.next_attempt_at - d.last_attempt_at == pytest.approx(MAX_RETRY_AFTER_S, abs=1)
    assert st.paused_until is not None and utc(st.paused_until).year < 3000


# -- the pause on the monotonic clock ----------------------------------------------------------
def test_a_wall_clock_stepped_back_does_not_lengthen_the_pause(sqlite_orders):
    wall = [T0 + 60.0]

    def step_back(n: int) -> None:
        if n == 1:
            wall[0] -= 3600.0  # NTP steps the clock back an hour during the first attempt

    sender = _Scripted("hook", lambda n: Result(Outcome.UNREACHABLE, "refused") if n == 1 else Result.ok(), step_back)
    disp = _dispatcher(sqlite_orders, sender, clock=lambda: wall[0])
    open_incident(sqlite_orders)
    with disp:
        wait_until(lambda: len(sender.sends) >= 2, timeout=10)
        assert disp.drain(5)
    gap = sender.sends[1] - sender.sends[0]
    assert 0.15 <= gap < 2.0  # the 0.2 s backoff, not an hour


def test_the_pause_shown_is_wall_time(sqlite_orders):
    sender = _Scripted("hook", lambda n: Result(Outcome.UNREACHABLE, "refused"))
    wall = T0 + 10_000.0
    disp = _dispatcher(sqlite_orders, sender, clock=lambda: wall)
    open_incident(sqlite_orders)
    with disp:
        wait_until(lambda: sender.sends, timeout=10)
        (st,) = wait_until(lambda: [s for s in disp.statuses() if s.paused_until is not None], timeout=10)
    assert st.state == "unreachable" and st.paused_until == pytest.approx(wall + 0.2)


def test_a_failure_the_database_cannot_record_still_pauses_the_destination(sqlite_orders):
    """The receiver is down and the outbox write fails too (the database away): the failure is
    still counted and the destination still waits out its backoff, rather than being tried
    again at every poll of the outbox."""
    slow = RetryPolicy(base_s=1.0, cap_s=1.0, max_attempts=5, jitter=0)
    sender = _Scripted("hook", lambda n: Result(Outcome.UNREACHABLE, "refused") if n == 1 else Result.ok())
    cfg = ForwardingConfig(destinations=[WebhookDestination(name="hook", url="http://127.0.0.1:9/x", secret="s")], retry=slow)
    disp = Dispatcher(build_outbox(cfg, sqlite_orders.db, orders=sqlite_orders), [sender], retry=slow, poll_interval_s=0.05, rand=lambda: 0.0)
    real = disp.outbox.mark_retry
    failed: list[int] = []

    def away(delivery_id: int, *args: object, **kwargs: object) -> None:
        if not failed:
            failed.append(delivery_id)
            raise RuntimeError("database is locked")
        real(delivery_id, *args, **kwargs)

    disp.outbox.mark_retry = away
    open_incident(sqlite_orders)
    with disp:
        wait_until(lambda: len(sender.sends) >= 2, timeout=10)
        assert disp.drain(5)
        # the outbox row is written first and the status published after it: wait for the status
        st = wait_until(lambda: next((s for s in disp.statuses() if s.delivered == 1), None), timeout=5)
    assert failed and st.consecutive_failures == 0 and st.last_error == "refused"  # counted, then delivered
    assert sender.sends[1] - sender.sends[0] >= 0.9  # the 1 s pause, not the 0.05 s poll


def test_a_receiver_that_answers_after_being_down_is_no_longer_shown_unreachable(sqlite_orders):
    """Down once, then it refuses the message for good (a 4xx): the receiver is reached, so the
    destination goes back to delivering and then idle, not "unreachable" for ever."""
    sender = _Scripted("hook", lambda n: Result(Outcome.UNREACHABLE, "refused") if n == 1 else Result(Outcome.DEAD, "HTTP 410"))
    disp = _dispatcher(sqlite_orders, sender)
    open_incident(sqlite_orders)
    with disp:
        (st,) = wait_until(lambda: [s for s in disp.statuses() if s.dead == 1], timeout=10)
        assert st.consecutive_failures == 0 and st.last_error == "HTTP 410"
        wait_until(lambda: disp.statuses()[0].state == "idle", timeout=5)


# -- a webhook receiver trickling its answer -----------------------------------------------------
class _Trickler:
    """A TCP server answering each connection with ``head`` and then ``chunk`` every ``every`` s,
    ``times`` times."""

    def __init__(self, head: bytes, chunk: bytes, every: float, times: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.sent = 0
        self.stop = threading.Event()
        self.head, self.chunk, self.every, self.times = head, chunk, every, times
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(self.head)
                for _ in range(self.times):
                    if self.stop.wait(self.every):
                        return
                    conn.sendall(self.chunk)
                    self.sent += len(self.chunk)
            except OSError:  # the client hung up
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def trickle() -> Iterator[Callable[..., _Trickler]]:
    made: list[_Trickler] = []

    def make(*args: object) -> _Trickler:
        made.append(_Trickler(*args))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for t in made:
        t.close()


def _timed_send(url: str) -> tuple[Result, float]:
    """One send of a webhook with ``timeout_s: 1``: its result and how long it took."""
    sender = WebhookSender(WebhookDestination(name="w", url=url, secret="s3cret", timeout_s=1.0, connect_timeout_s=1))
    try:
        started = time.monotonic()
        res = sender.send(_event(1))
        return res, time.monotonic() - started
    finally:
        sender.close()


def test_a_huge_error_page_trickled_is_read_no_further_than_its_start(trickle):
    server = trickle(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000000\r\n\r\n", b"x" * 1_000_000, 0.5, 12)
    res, took = _timed_send(server.url)
    assert took < 1.5
    assert res.outcome is Outcome.RETRY and res.error == "HTTP 500 Oops: " + "x" * 200


def test_an_answer_trickled_past_timeout_s_ends_at_timeout_s(trickle):
    # the head never ends: one header byte every 0.3 s, each read well within a per-read timeout
    server = trickle(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a", 0.3, 40)
    res, took = _timed_send(server.url)
    assert took < 1.6
    assert (res.outcome, res.error) == (Outcome.RETRY, "no answer within 1 s")


def test_a_slow_body_of_a_success_ends_at_timeout_s(trickle):
    server = trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"y", 0.3, 40)
    res, took = _timed_send(server.url)
    assert took < 1.6 and res.outcome is Outcome.DELIVERED  # the 200 arrived: delivered


# -- MQTT: a message given up leaves with its client ------------------------------------------------
class _SilentBroker:
    """An MQTT broker that accepts connections (CONNACK) and records every PUBLISH, but
    acknowledges one only once ``ack`` is set; ``drop()`` closes every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ack = threading.Event()
        self.published: list[bytes] = []
        self.connections = 0
        self.disconnects = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _packet(f) -> tuple[int, bytes] | None:
        first = f.read(1)
        if not first:
            return None
        size, shift = 0, 0
        while True:
            b = f.read(1)[0]
            size |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        return first[0], f.read(size)

    def _serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        try:
            while (p := self._packet(f)) is not None:
                kind, body = p
                if kind >> 4 == 1:  # CONNECT
                    conn.sendall(b"\x20\x02\x00\x00")
                elif kind >> 4 == 3:  # PUBLISH, QoS 1: topic, packet id, payload
                    n = int.from_bytes(body[:2], "big")
                    self.published.append(body[2 + n + 2:])
                    if self.ack.is_set():
                        conn.sendall(b"\x40\x02" + body[2 + n:2 + n + 2])
                elif kind >> 4 == 12:  # PINGREQ
                    conn.sendall(b"\xd0\x00")
                elif kind >> 4 == 14:  # DISCONNECT
                    self.disconnects += 1
                    return
        except (OSError, IndexError):
            return
        finally:
            conn.close()

    def drop(self) -> None:
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.drop()
        self.sock.close()


def test_no_puback_drops_the_client_so_paho_does_not_send_it_again():
    broker = _SilentBroker()
    sender = MqttSender(MqttDestination(name="m", host="127.0.0.1", port=broker.port, timeout_s=1.0))
    first, second = _event(1), _event(2)
    try:
        res = sender.send(first)
        assert (res.outcome, res.error) == (Outcome.RETRY, "no PUBACK within 1 s")
        time.sleep(0.3)
        broker.drop()  # had the client stayed, paho would reconnect by itself (after 1 s) …
        broker.ack.set()
        time.sleep(1.5)  # … and send the given-up message again
        assert sender.send(second).outcome is Outcome.DELIVERED
        time.sleep(1.5)
    finally:
        sender.close()
        deadline = time.monotonic() + 5.0  # the broker's thread reads the second goodbye in its own time
        while broker.disconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        broker.close()
    assert broker.published.count(first.body()) == 1 and broker.published.count(second.body()) == 1
    assert broker.connections == 2 and broker.disconnects == 2  # each client said goodbye: the first when it gave up


def test_real_mosquitto_after_a_broken_connection_each_message_arrives_once():
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        pytest.skip("no mosquitto at 127.0.0.1:1883")
    prefix = f"gw-test-bounds/{time.monotonic_ns()}"
    got: list[bytes] = []
    ready = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-test-sub-{time.monotonic_ns()}")
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"{prefix}/#", qos=1)
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    sender = MqttSender(MqttDestination(name="m", host="127.0.0.1", port=1883, topic_prefix=prefix, timeout_s=5.0))
    events = [_event(n) for n in range(1, 4)]
    try:
        assert ready.wait(10)
        assert sender.send(events[0]).outcome is Outcome.DELIVERED
        client = sender._client
        assert client is not None and client.max_queued_messages == 1
        socket.socket.shutdown(client.socket(), socket.SHUT_RDWR)  # the connection breaks
        for ev in events[1:]:
            wait_until(lambda ev=ev: sender.send(ev).outcome is Outcome.DELIVERED, timeout=20, interval=0.1)
        time.sleep(1.5)
    finally:
        sender.close()
        sub.disconnect()
        sub.loop_stop()
    assert sorted(got) == sorted(ev.body() for ev in events)


def test_the_webhook_deadline_is_one_thread_per_sender_not_one_per_request():
    """Each send arms the sender's one watchdog; a thread per request (a Timer living timeout_s
    after each send) would grow with the send rate."""
    import threading

    from gridworker.delivery.webhook import _Deadline

    before = threading.active_count()
    deadline = _Deadline()
    for _ in range(200):
        deadline.start(30.0)
        deadline.stop()
    assert threading.active_count() <= before + 1
    deadline.start(0.05)  # nothing stops it: it expires
    time.sleep(0.3)
    assert deadline.expired
    deadline.close()
    assert threading.active_count() <= before
