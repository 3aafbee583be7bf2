"""A small SIP user agent for GB/T 28181: client transactions (REGISTER, MESSAGE) and the
answers to the platform's requests, over one UDP socket or one TCP connection.

Client transactions (RFC 3261 §17.1.2, non-INVITE): over UDP the request is retransmitted
after T1, 2·T1, 4·T1 … capped at T2 (Timer E) until a final response or ``timeout_s``
(Timer F); a provisional response stops the doubling (retransmit every T2). Over TCP it is
sent once and messages are framed by Content-Length. A response belongs to a transaction
when its top Via branch, Call-ID and CSeq match; anything else (a late retransmitted 200)
is dropped.

One reader thread per endpoint reads everything that arrives: responses go to the waiting
transaction, requests to ``on_request`` — but only requests from the peer's address (the
platform), only up to ``max_message_bytes``, and parsed by a parser that returns None
rather than raise on garbage. A retransmitted request gets the answer it got before.

Digest authentication (RFC 2617 / RFC 7616): :func:`digest_authorization` answers a
``WWW-Authenticate``/``Proxy-Authenticate`` challenge with ``hashlib`` (MD5, as GB/T
28181 uses, and SHA-256; ``-sess`` variants; ``qop`` ``auth`` and ``auth-int``).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import re
import secrets
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

T2_S = 4.0
MAX_MESSAGE_BYTES = 16384
MAX_HEADERS = 64
_COMPACT = {"v": "via", "i": "call-id", "l": "content-length", "f": "from", "t": "to", "c": "content-type", "m": "contact"}
_REQUEST_LINE = re.compile(r"^([A-Z][A-Z_-]{0,31}) (\S{1,1000}) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2})(?: (.{0,200}))?$")
_ANSWERED_MAX = 64  # inbound transactions remembered for retransmissions
_ANSWERED_TTL_S = 32.0  # RFC 3261 Timer J (64·T1)


class SipError(Exception):
    """The transaction could not complete: ``unreachable`` when nothing answered at all."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class _Message:
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[0] if v else None


@dataclass(frozen=True)
class SipResponse(_Message):
    status: int = 0
    reason: str = ""


@dataclass(frozen=True)
class SipRequest(_Message):
    method: str = ""
    uri: str = ""


@dataclass(frozen=True)
class Reply:
    """What ``on_request`` answers: a status and reason, extra headers."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def parse_message(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> SipRequest | SipResponse | None:
    """One SIP request or response; None when it is not one, is larger than ``max_bytes``,
    or is malformed (never raises).

    Example:
        >>> parse_message(b"SIP/2.0 200 OK\\r\\nCall-ID: a\\r\\nContent-Length: 0\\r\\n\\r\\n").status
        200
    """
    if len(data) > max_bytes:
        return None
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("utf-8", "replace").split("\r\n")
    if len(lines) > MAX_HEADERS + 1:
        return None
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # folded header
            if last is None:
                return None
            headers[last][-1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        if not colon or not re.fullmatch(r"[a-z0-9!%*_+`'~.-]{1,64}", key):
            return None
        key = _COMPACT.get(key, key)
        last = key
        # Via may carry several values on one line
        values = [v.strip() for v in value.split(",")] if key == "via" else [value.strip()]
        headers.setdefault(key, []).extend(values)
    length = headers.get("content-length")
    if length is not None:
        if not re.fullmatch(r"[0-9]{1,9}", length[0]) or int(length[0]) > len(body):
            return None
        body = body[: int(length[0])]
    start = lines[0]
    m = _STATUS_LINE.match(start)
    if m is not None:
        return SipResponse(headers, body, int(m.group(1)), (m.group(2) or "").strip())
    r = _REQUEST_LINE.match(start)
    if r is not None and headers.get("via") and headers.get("call-id") and headers.get("cseq") and headers.get("from") and headers.get("to"):
        return SipRequest(headers, body, r.group(1), r.group(2))
    return None


def parse_response(data: bytes) -> SipResponse | None:
    """One SIP response; None if it is not one."""
    msg = parse_message(data, max_bytes=1 << 20)
    return msg if isinstance(msg, SipResponse) else None


def _branch_of(via: str | None) -> str | None:
    if via is None:
        return None
    m = re.search(r";\s*branch=([^;,\s]+)", via, re.I)
    return m.group(1) if m else None


def tag_of(value: str | None) -> str | None:
    """The ``tag`` parameter of a From/To value."""
    m = re.search(r";\s*tag=([^;,\s]+)", value or "", re.I)
    return m.group(1) if m else None


def expires_of(resp: SipResponse, contact_uri: str, default: int) -> int:
    """The registration time a REGISTER's 2xx grants: our Contact's ``expires`` parameter,
    else the Expires header, else ``default``."""
    for contact in resp.headers.get("contact", []):
        if contact_uri in contact:
            m = re.search(r";\s*expires=(\d{1,9})", contact, re.I)
            if m:
                return int(m.group(1))
    value = (resp.header("expires") or "").strip()
    return int(value) if re.fullmatch(r"[0-9]{1,9}", value) else default


# -- digest authentication -------------------------------------------------------------------
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda b: hashlib.md5(b, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
}
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)')


def parse_challenge(value: str) -> dict[str, str] | None:
    """The parameters of a ``Digest`` challenge (keys lower-case); None for another scheme.

    Example:
        >>> parse_challenge('Digest realm="3402000000", nonce="abc", qop="auth"')["nonce"]
        'abc'
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    out: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        v = m.group(2)
        out[m.group(1).lower()] = v[1:-1].replace('\\"', '"') if v.startswith('"') else v
    return out if "nonce" in out else None


class DigestError(ValueError):
    """A challenge this client cannot answer (an unknown algorithm or qop)."""


def digest_authorization(
    challenge: dict[str, str], *, method: str, uri: str, username: str, password: str, body: bytes = b"", cnonce: str | None = None, nc: int = 1
) -> str:
    """The ``Authorization`` value answering ``challenge`` (RFC 2617 / RFC 7616).

    Example (RFC 2617 §3.5):
        >>> ch = {"realm": "testrealm@host.com", "qop": "auth,auth-int", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093", "opaque": "5ccc069c403ebaf9f0171e9517f40e41"}
        >>> 'response="6629fae49393a05397450978507c4ef1"' in digest_authorization(ch, method="GET", uri="/dir/index.html", username="Mufasa", password="Circle Of Life", cnonce="0a4f113b")
        True
    """
    algorithm = challenge.get("algorithm", "MD5")
    base, sess = (algorithm[:-5], True) if algorithm.upper().endswith("-SESS") else (algorithm, False)
    h = _HASHES.get(base.upper())
    if h is None:
        raise DigestError(f"digest algorithm {algorithm!r} is not supported")
    realm, nonce = challenge.get("realm", ""), challenge["nonce"]
    offered = [q.strip().lower() for q in challenge.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in offered else "auth-int" if "auth-int" in offered else None
    if offered and qop is None:
        raise DigestError(f"digest qop {challenge.get('qop')!r} is not supported")
    cnonce = cnonce or secrets.token_hex(8)
    ha1 = h(f"{username}:{realm}:{password}".encode())
    if sess:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}".encode() if qop != "auth-int" else f"{method}:{uri}:{h(body)}".encode())
    if qop is None:
        response = h(f"{ha1}:{nonce}:{ha2}".encode())
    else:
        response = h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}".encode())
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"', f'response="{response}"', f"algorithm={algorithm}"]
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)


# -- the user agent ----------------------------------------------------------------------------
@dataclass
class _Pending:
    branch: str
    call_id: str
    cseq: int
    method: str
    responses: queue.Queue[SipResponse] = field(default_factory=lambda: queue.Queue(maxsize=8))


@dataclass(frozen=True)
class Outgoing:
    """A request to send: method, Request-URI, To, and what else goes in it."""

    method: str
    uri: str
    to: str  # the To header's value, without a tag
    body: bytes = b""
    content_type: str | None = None
    call_id: str | None = None  # default: a fresh one
    from_tag: str | None = None  # default: a fresh one
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float | None = None  # default: the endpoint's


def _route_address(peer: tuple[str, int]) -> str:
    """The local IPv4 address the kernel sends to ``peer`` from (no packet is sent).

        >>> _route_address(("127.0.0.1", 5060))
        '127.0.0.1'
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(peer)
        return str(probe.getsockname()[0])
    except OSError as exc:
        raise SipError(f"no route to {peer[0]}:{peer[1]}: {exc}", unreachable=True) from None
    finally:
        probe.close()


class SipEndpoint:
    """gridworker's SIP user agent towards one peer (the platform).

    Args:
        local_id: our SIP user (the GB/T 28181 device id).
        local_domain: our SIP domain.
        peer_host, peer_port: the platform; requests from any other address are dropped.
        on_request: answers the peer's requests (called on the reader thread: it must not
            block); None answers 403.

    Example::

        ep = SipEndpoint(local_id="34020000002000000099", local_domain="3402000000", peer_host="10.0.0.30", peer_port=5060)
        ep.request(Outgoing("MESSAGE", "sip:34020000002000000001@10.0.0.30:5060", "<sip:34020000002000000001@3402000000>", b"<Notify>…", "Application/MANSCDP+xml"))
        # SipResponse(status=200, reason='OK', ...)
    """

    def __init__(
        self,
        *,
        local_id: str,
        local_domain: str,
        peer_host: str,
        peer_port: int,
        local_host: str | None = None,
        local_port: int = 0,
        transport: str = "udp",
        t1_s: float = 0.5,
        timeout_s: float = 32.0,
        user_agent: str = "gridworker",
        on_request: Callable[[SipRequest], Reply | None] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, not {transport!r}")
        self.local_id = local_id
        self.local_domain = local_domain
        self.peer_host = peer_host
        self.peer_port = peer_port
        self.local_host = local_host
        self.local_port = local_port
        self.transport = transport
        self.t1_s = t1_s
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self.on_request = on_request
        self.max_message_bytes = max_message_bytes
        self.dropped = 0  # inbound messages refused: foreign source, too large, malformed
        self._cseq = 0
        self._lock = threading.Lock()  # the socket, the pending map, the counters
        self._send_lock = threading.Lock()  # one writer on a TCP stream
        self._sock: socket.socket | None = None
        self._peer: tuple[str, int] | None = None
        self._reader: threading.Thread | None = None
        self._pending: dict[str, _Pending] = {}
        self._answered: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._closed = False

    # -- the socket --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        with self._lock:
            return self._sock is not None

    def contact(self) -> str:
        """Our address as the peer should reach us: ``host:port``."""
        sock = self._open()
        return self._sent_by(sock)

    def _resolve(self) -> tuple[str, int]:
        try:
            info = socket.getaddrinfo(self.peer_host, self.peer_port, socket.AF_INET, socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise SipError(f"cannot resolve {self.peer_host}: {exc}", unreachable=True) from None
        return str(info[0][4][0]), self.peer_port

    def _open(self) -> socket.socket:
        with self._lock:
            if self._closed:
                raise SipError("the SIP endpoint is closed", unreachable=True)
            if self._sock is not None:
                return self._sock
        peer = self._resolve()
        if self.transport == "udp":
            # Listen only on the interface that faces the platform, never on every interface:
            # a configured local_host, else the address the kernel routes the peer from.
            host = self.local_host or _route_address(peer)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, self.local_port))
            except OSError as exc:
                sock.close()
                raise SipError(f"cannot bind {host}:{self.local_port}: {exc}", unreachable=True) from None
        else:
            try:
                sock = socket.create_connection(peer, timeout=min(self.timeout_s, 10.0), source_address=(self.local_host or "", self.local_port) if self.local_port else None)
            except OSError as exc:
                raise SipError(f"cannot connect to {peer[0]}:{peer[1]}: {exc}", unreachable=True) from None
            sock.settimeout(None)
        with self._lock:
            won = self._current()
            if won is not None or self._closed:  # another thread won, or closed meanwhile
                sock.close()
                if won is None:
                    raise SipError("the SIP endpoint is closed", unreachable=True)
                return won
            self._sock, self._peer = sock, peer
            self._reader = threading.Thread(target=self._read_loop, args=(sock,), name=f"gw-sip-{self.local_id[-6:]}", daemon=True)
            self._reader.start()
        return sock

    def _current(self) -> socket.socket | None:
        return self._sock

    def _drop_socket(self, sock: socket.socket, why: str) -> None:
        with self._lock:
            if self._sock is not sock:
                return
            self._sock = None
            pending = list(self._pending.values())
        log.info("SIP %s connection to %s:%s closed: %s", self.transport, self.peer_host, self.peer_port, why)
        try:
            sock.close()
        except OSError:
            pass
        for p in pending:  # wake the waiting transactions: they fail now
            try:
                p.responses.put_nowait(SipResponse({}, b"", 0, why))
            except queue.Full:
                pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sock, self._sock = self._sock, None
            reader, self._reader = self._reader, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if reader is not None and reader is not threading.current_thread():
            reader.join(2.0)

    def reset(self) -> None:
        """After a failure: drop the connection (TCP) so the next request opens a new one; drop
        a UDP socket bound to the routed address once the platform is routed from another one
        (a failover link, a VPN back up), so the next request binds and says the new one."""
        with self._lock:
            sock, peer = self._sock, self._peer
        if sock is None:
            return
        if self.transport == "tcp":
            self._drop_socket(sock, "reset")
        elif not self.local_host and peer is not None:
            try:
                moved = _route_address(peer) != sock.getsockname()[0]
            except (SipError, OSError):  # no route at all now: the next request says so
                moved = True
            if moved:
                self._drop_socket(sock, "the route to the platform changed")

    def _sent_by(self, sock: socket.socket) -> str:
        host = self.local_host or sock.getsockname()[0]  # UDP: bound to the routed address (see _open)
        return f"{host}:{sock.getsockname()[1]}"

    def _write(self, sock: socket.socket, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport == "udp":
            sock.sendto(data, addr)
        else:
            with self._send_lock:
                sock.sendall(data)

    # -- reading -----------------------------------------------------------------------------
    def _read_loop(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            try:
                if self.transport == "udp":
                    ready, _, _ = select.select([sock], [], [], 0.5)
                    with self._lock:
                        if self._sock is not sock:
                            return
                    if not ready:
                        continue
                    try:
                        packet, src = sock.recvfrom(65535)
                    except ConnectionRefusedError:  # ICMP port unreachable from an earlier send
                        continue
                    self._handle(sock, packet, (str(src[0]), int(src[1])))
                    continue
                chunk = sock.recv(65535)
            except (OSError, ValueError) as exc:  # ValueError: closed under select
                self._drop_socket(sock, f"receive failed: {exc}")
                return
            if not chunk:
                self._drop_socket(sock, "the peer closed the connection")
                return
            buf += chunk
            while True:
                msg, buf, ok = self._frame(buf)
                if not ok:
                    self._drop_socket(sock, "an oversized or unframed message from the peer")
                    return
                if msg is None:
                    break
                self._handle(sock, msg, self._peer or ("", 0))

    def _frame(self, buf: bytes) -> tuple[bytes | None, bytes, bool]:
        """One Content-Length-framed message off a TCP stream: (message or None, rest, ok)."""
        buf = buf.lstrip(b"\r\n")  # keep-alive CRLFs
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            return None, buf, len(buf) <= self.max_message_bytes
        m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*$", head)
        n = int(m.group(1)) if m else 0
        if len(head) + 4 + n > self.max_message_bytes:
            return None, b"", False
        if len(rest) < n:
            return None, buf, True
        return head + b"\r\n\r\n" + rest[:n], rest[n:], True

    def _handle(self, sock: socket.socket, data: bytes, src: tuple[str, int]) -> None:
        peer = self._peer
        if self.transport == "udp" and (peer is None or src[0] != peer[0]):
            self._count_drop("a message from %s:%s, not the platform", src)
            return
        msg = parse_message(data, self.max_message_bytes)
        if msg is None:
            self._count_drop("a malformed or oversized message from %s:%s", src)
            return
        if isinstance(msg, SipResponse):
            with self._lock:
                p = self._pending.get(_branch_of(msg.header("via")) or "")
            if p is not None and self._matches(msg, p):
                try:
                    p.responses.put_nowait(msg)
                except queue.Full:
                    pass
            return
        self._answer(sock, msg, src)

    def _count_drop(self, what: str, src: tuple[str, int]) -> None:
        with self._lock:
            self.dropped += 1
            n = self.dropped
        if n in (1, 10) or n % 1000 == 0:
            log.warning("SIP: dropped " + what + " (%d dropped so far)", src[0], src[1], n)

    def _answer(self, sock: socket.socket, req: SipRequest, src: tuple[str, int]) -> None:
        if req.method == "ACK":
            return
        key = f"{_branch_of(req.header('via'))}|{req.header('call-id')}|{req.header('cseq')}"
        now = time.monotonic()
        with self._lock:
            while self._answered and next(iter(self._answered.values()))[0] < now - _ANSWERED_TTL_S:
                self._answered.popitem(last=False)
            before = self._answered.get(key)
        if before is not None:  # a retransmission: the same answer, not a second handling
            data = before[1]
        else:
            try:
                reply = self.on_request(req) if self.on_request is not None else Reply(403, "Forbidden")
            except Exception:  # noqa: BLE001 - a handler bug answers 500, it does not kill the reader
                log.exception("SIP: handling %s failed", req.method)
                reply = Reply(500, "Server Internal Error")
            if reply is None:
                return
            data = self.response_bytes(req, reply)
            with self._lock:
                self._answered[key] = (now, data)
                while len(self._answered) > _ANSWERED_MAX:
                    self._answered.popitem(last=False)
        try:
            self._write(sock, data, src)
        except OSError as exc:
            log.info("SIP: cannot answer %s:%s: %s", src[0], src[1], exc)

    def response_bytes(self, req: SipRequest, reply: Reply) -> bytes:
        """The response to ``req``: its Via, From, Call-ID and CSeq; its To with our tag."""
        to = req.header("to") or ""
        if tag_of(to) is None:
            to += f";tag={secrets.token_hex(5)}"
        head = [f"SIP/2.0 {reply.status} {reply.reason}"]
        head += [f"Via: {v}" for v in req.headers.get("via", [])]
        head += [f"From: {req.header('from')}", f"To: {to}", f"Call-ID: {req.header('call-id')}", f"CSeq: {req.header('cseq')}"]
        head += [f"User-Agent: {self.user_agent}"] + [f"{k}: {v}" for k, v in reply.headers] + ["Content-Length: 0"]
        return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8")

    # -- client transactions ----------------------------------------------------------------
    @staticmethod
    def _matches(resp: SipResponse, p: _Pending) -> bool:
        cs = (resp.header("cseq") or "").split()
        return resp.header("call-id") == p.call_id and len(cs) == 2 and cs[0] == str(p.cseq) and cs[1].upper() == p.method

    def build(self, out: Outgoing, sent_by: str) -> tuple[bytes, _Pending]:
        """The request bytes and its transaction."""
        with self._lock:
            self._cseq += 1
            cseq = self._cseq
        branch = "z9hG4bK" + secrets.token_hex(8)
        call_id = out.call_id or f"{secrets.token_hex(10)}@{self.local_domain}"
        proto = self.transport.upper()
        head = [
            f"{out.method} {out.uri} SIP/2.0",
            f"Via: SIP/2.0/{proto} {sent_by};rport;branch={branch}",
            f"From: <sip:{self.local_id}@{self.local_domain}>;tag={out.from_tag or secrets.token_hex(5)}",
            f"To: {out.to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {out.method}",
            "Max-Forwards: 70",
            f"User-Agent: {self.user_agent}",
        ]
        head += [f"{k}: {v}" for k, v in out.headers]
        if out.content_type:
            head.append(f"Content-Type: {out.content_type}")
        head.append(f"Content-Length: {len(out.body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + out.body
        return data, _Pending(branch, call_id, cseq, out.method)

    def request(self, out: Outgoing) -> SipResponse:
        """Send ``out`` to the peer; its final response. Raises ``SipError``."""
        sock = self._open()
        addr = self._peer or self._resolve()
        data, p = self.build(out, self._sent_by(sock))
        with self._lock:
            self._pending[p.branch] = p
        try:
            return self._transact(sock, addr, data, p, self.timeout_s if out.timeout_s is None else out.timeout_s)
        finally:
            with self._lock:
                self._pending.pop(p.branch, None)

    def _transact(self, sock: socket.socket, addr: tuple[str, int], data: bytes, p: _Pending, timeout_s: float) -> SipResponse:
        start = time.monotonic()
        deadline = start + timeout_s
        interval = self.t1_s
        heard = False
        next_send = start
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise SipError(
                    f"no final response from {addr[0]}:{addr[1]} within {timeout_s:g} s" + (" (got a provisional one)" if heard else ""),
                    unreachable=not heard and self.transport == "udp",
                )
            if now >= next_send:
                try:
                    self._write(sock, data, addr)
                except OSError as exc:
                    self._drop_socket(sock, f"send failed: {exc}")
                    raise SipError(f"cannot send to {addr[0]}:{addr[1]}: {exc}", unreachable=True) from None
                if self.transport == "udp":
                    next_send = now + interval
                    interval = T2_S if heard else min(interval * 2, T2_S)
                else:
                    next_send = deadline  # TCP is reliable: sent once
            try:
                resp = p.responses.get(timeout=max(0.0, min(next_send, deadline) - time.monotonic()))
            except queue.Empty:
                continue
            if resp.status == 0:  # the connection went away
                raise SipError(f"connection to {addr[0]}:{addr[1]} lost: {resp.reason}", unreachable=not heard)
            heard = True
            if resp.status < 200:
                interval = T2_S
                continue
            return resp
