"""The demo's webhook receiver: a small HTTP server that takes gridworker's forwarded events.

It does what a real receiver must (docs/forwarding.md, "Webhooks"): checks
``X-Gridworker-Signature`` over the raw body before parsing it (HMAC-SHA256 with the shared
secret, constant-time), answers 401 to a bad signature, and drops a repeated
``Idempotency-Key`` (at-least-once delivery sends a change again after a crash). Each
delivery is logged, and listed at ``GET /`` (a page that reloads itself) and
``GET /deliveries`` (JSON).

Example::

    receiver = WebhookReceiver(secret="s3cret").start()
    receiver.url                    # 'http://127.0.0.1:40123/hooks/gridworker'
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gridworker.delivery.webhook import SIGNATURE_HEADER, verify

log = logging.getLogger("gridworker.demo.webhooks")

HOOK_PATH = "/hooks/gridworker"
MAX_BODY = 1024 * 1024
KEEP = 200  # deliveries listed


def _section(doc: dict[str, object], name: str) -> dict[str, object]:
    """``doc[name]`` when it is a JSON object, else empty."""
    value = doc.get(name)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted webhook call."""

    received_at: float
    delivery: str
    event: str
    idempotency_key: str
    incident_id: int | None
    type: str
    camera_id: str
    state: str
    actor: str


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    accepted: int
    duplicates: int
    bad_signature: int
    last: list[Delivery]


class WebhookReceiver:
    """A signature-checking webhook receiver on ``127.0.0.1`` (a thread of the demo process).

    Args:
        secret: the HMAC key shared with the ``webhook`` destination.
        port: the port to listen on; 0 picks a free one (so does a port that is taken).
    """

    def __init__(self, secret: str, port: int = 0) -> None:
        if not secret:
            raise ValueError("a webhook receiver needs a secret")
        self._secret = secret
        self._want_port = port
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._last: deque[Delivery] = deque(maxlen=KEEP)
        self._accepted = self._duplicates = self._bad = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> WebhookReceiver:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", self._want_port), self._handler())
        except OSError:
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())  # the port is taken: any free one
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="demo-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where gridworker posts (the ``webhook`` destination's url)."""
        return self.base + HOOK_PATH

    def stats(self) -> ReceiverStats:
        with self._lock:
            return ReceiverStats(self._accepted, self._duplicates, self._bad, list(reversed(self._last)))

    # ------------------------------------------------------------------ handling
    def take(self, body: bytes, signature: str | None, key: str | None, delivery: str | None) -> int:
        """Judge one POST; returns the HTTP status to answer (200, 400 or 401)."""
        if not verify(self._secret, body, signature):
            with self._lock:
                self._bad += 1
            log.warning("webhook receiver: delivery %s refused: bad signature (401)", delivery or "?")
            return 401
        try:
            doc = json.loads(body)
        except ValueError:
            return 400
        if not isinstance(doc, dict):
            return 400
        key = key or str(doc.get("idempotency_key", ""))
        with self._lock:
            if key in self._seen:
                self._duplicates += 1
                duplicate = True
            else:
                self._seen.add(key)
                duplicate = False
        if duplicate:
            log.info("webhook receiver: %s again (idempotency key %s): already processed, dropped", doc.get("event"), key)
            return 200
        incident, order, change = (_section(doc, name) for name in ("incident", "workorder", "change"))
        incident_id = incident.get("id")
        got = Delivery(
            received_at=time.time(),
            delivery=str(delivery or doc.get("event_id", "")),
            event=str(doc.get("event", "")),
            idempotency_key=key,
            incident_id=incident_id if isinstance(incident_id, int) else None,
            type=str(incident.get("type", "")),
            camera_id=str(incident.get("camera_id", "")),
            state=str(order.get("state", "")),
            actor=str(change.get("actor", "")),
        )
        with self._lock:
            self._accepted += 1
            self._last.append(got)
            n = self._accepted
        log.info(
            "webhook receiver #%d: %s case %s (%s on %s) -> %s by %s, signature ok",
            n, got.event, got.incident_id, got.type, got.camera_id, got.state, got.actor or "?",
        )
        return 200

    def page(self) -> str:
        """The deliveries as a small HTML page (no script: it reloads itself every 3 s)."""
        st = self.stats()
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                time.strftime("%H:%M:%S", time.localtime(d.received_at)), d.delivery, d.event, d.incident_id, d.type, d.camera_id, d.state, d.actor,
            )) + "</tr>"
            for d in st.last
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='3'>"
            "<title>gridworker demo: webhook receiver</title></head><body>"
            "<h1>Webhook receiver (gridworker demo)</h1>"
            f"<p>Every work-order change, signed with HMAC-SHA256 and checked here before it is read. "
            f"Accepted: <b id='accepted'>{st.accepted}</b> · duplicates dropped: <b id='duplicates'>{st.duplicates}</b> · "
            f"bad signatures refused: <b id='bad'>{st.bad_signature}</b></p>"
            "<table border='1' cellpadding='4'><tr><th>received</th><th>delivery</th><th>event</th><th>case</th>"
            f"<th>type</th><th>camera</th><th>state</th><th>by</th></tr>{rows}</table></body></html>"
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "gridworker-demo-receiver"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                pass  # one line per delivery comes from take()

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path != HOOK_PATH:
                    return self._send(404, b"not found\n", "text/plain")
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    return self._send(411, b"Content-Length required\n", "text/plain")
                if not 0 <= length <= MAX_BODY:
                    return self._send(413, b"too large\n", "text/plain")
                body = self.rfile.read(length)
                code = receiver.take(body, self.headers.get(SIGNATURE_HEADER), self.headers.get("Idempotency-Key"), self.headers.get("X-Gridworker-Delivery"))
                self._send(code, b"{}" if code == 200 else b'{"error": "refused"}', "application/json")

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path == "/deliveries":
                    st = receiver.stats()
                    doc = {"accepted": st.accepted, "duplicates": st.duplicates, "bad_signature": st.bad_signature, "last": [asdict(d) for d in st.last]}
                    return self._send(200, json.dumps(doc).encode(), "application/json")
                if self.path in ("/", "/index.html"):
                    return self._send(200, receiver.page().encode("utf-8"), "text/html; charset=utf-8")
                self._send(404, b"not found\n", "text/plain")

        return Handler
