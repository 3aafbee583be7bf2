"""A minimal SIP user-agent client for one thing: sending a MESSAGE and reading its final
response (RFC 3261 non-INVITE client transaction, UDP or TCP).

UDP: the request is retransmitted after T1, 2·T1, 4·T1 … capped at T2 (Timer E) until a
final response or ``timeout_s`` (Timer F; RFC default 64·T1); a provisional response
stops the doubling (retransmit every T2). TCP: sent once, responses framed by
Content-Length. A response belongs to the transaction when its top Via's branch,
Call-ID and CSeq match; anything else (a late retransmitted 200 of an older MESSAGE) is
dropped.
"""

from __future__ import annotations

import re
import secrets
import select
import socket
import time
from dataclasses import dataclass, field

T2_S = 4.0
_COMPACT = {"v": "via", "i": "call-id", "l": "content-length", "f": "from", "t": "to", "c": "content-type", "m": "contact"}


class SipError(Exception):
    """The transaction could not complete: ``unreachable`` when nothing answered at all."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class SipResponse:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[0] if v else None


def parse_response(data: bytes) -> SipResponse | None:
    """Parse one SIP response (status line, headers, body); None if it is not one."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    m = re.match(r"^SIP/2\.0\s+(\d{3})\s*(.*)$", lines[0].strip()) if lines else None
    if m is None:
        return None
    headers: dict[str, list[str]] = {}
    last = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and last is not None:  # folded header
            headers[last][-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        last = key
        # Via may carry several values on one line
        values = [v.strip() for v in value.split(",")] if key == "via" else [value.strip()]
        headers.setdefault(key, []).extend(values)
    return SipResponse(int(m.group(1)), m.group(2).strip(), headers, body)


def _branch_of(via: str | None) -> str | None:
    if via is None:
        return None
    m = re.search(r";\s*branch=([^;,\s]+)", via, re.I)
    return m.group(1) if m else None


class SipClient:
    """Sends MESSAGE requests from ``local_id@local_domain``.

    Example:
        >>> c = SipClient(local_id="34020000002000000099", local_domain="3402000000")  # doctest: +SKIP
        >>> c.message("34020000002000000001", "3402000000", "10.0.0.30", 5060, b"<Notify>…", "Application/MANSCDP+xml")  # doctest: +SKIP
        SipResponse(status=200, reason='OK', ...)
    """

    def __init__(
        self,
        *,
        local_id: str,
        local_domain: str,
        local_host: str | None = None,
        local_port: int = 0,
        transport: str = "udp",
        t1_s: float = 0.5,
        timeout_s: float = 32.0,
        user_agent: str = "gridworker",
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, not {transport!r}")
        self.local_id = local_id
        self.local_domain = local_domain
        self.local_host = local_host
        self.local_port = local_port
        self.transport = transport
        self.t1_s = t1_s
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self._cseq = 0
        self._udp: socket.socket | None = None

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    # -- building ---------------------------------------------------------------------------
    def build(self, *, to_id: str, to_domain: str, host: str, port: int, sent_by: str, body: bytes, content_type: str) -> tuple[bytes, str, str, int]:
        """The request bytes and its branch, Call-ID and CSeq number."""
        self._cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        call_id = f"{secrets.token_hex(10)}@{self.local_domain}"
        tag = secrets.token_hex(5)
        proto = self.transport.upper()
        head = [
            f"MESSAGE sip:{to_id}@{host}:{port} SIP/2.0",
            f"Via: SIP/2.0/{proto} {sent_by};rport;branch={branch}",
            f"From: <sip:{self.local_id}@{self.local_domain}>;tag={tag}",
            f"To: <sip:{to_id}@{to_domain}>",
            f"Call-ID: {call_id}",
            f"CSeq: {self._cseq} MESSAGE",
            "Max-Forwards: 70",
            f"User-Agent: {self.user_agent}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body, branch, call_id, self._cseq

    @staticmethod
    def _matches(resp: SipResponse, branch: str, call_id: str, cseq: int) -> bool:
        cs = (resp.header("cseq") or "").split()
        return (
            _branch_of(resp.header("via")) == branch
            and resp.header("call-id") == call_id
            and len(cs) == 2
            and cs[0] == str(cseq)
            and cs[1].upper() == "MESSAGE"
        )

    # -- sending ----------------------------------------------------------------------------
    def message(self, to_id: str, to_domain: str, host: str, port: int, body: bytes, content_type: str) -> SipResponse:
        """Send a MESSAGE to ``host:port``; the final response. Raises ``SipError``."""
        addr = self._resolve(host, port)
        if self.transport == "udp":
            return self._udp_message(addr, to_id, to_domain, host, port, body, content_type)
        return self._tcp_message(addr, to_id, to_domain, host, port, body, content_type)

    @staticmethod
    def _resolve(host: str, port: int) -> tuple[str, int]:
        try:
            info = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise SipError(f"cannot resolve {host}: {exc}", unreachable=True) from None
        return str(info[0][4][0]), port

    def _udp_socket(self, addr: tuple[str, int]) -> socket.socket:
        if self._udp is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((self.local_host or "0.0.0.0", self.local_port))
            self._udp = s
        return self._udp

    def _sent_by(self, sock: socket.socket, addr: tuple[str, int]) -> str:
        host = self.local_host
        if not host:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                probe.connect(addr)
                host = probe.getsockname()[0]
            finally:
                probe.close()
        return f"{host}:{sock.getsockname()[1]}"

    def _udp_message(self, addr: tuple[str, int], to_id: str, to_domain: str, host: str, port: int, body: bytes, ctype: str) -> SipResponse:
        sock = self._udp_socket(addr)
        data, branch, call_id, cseq = self.build(
            to_id=to_id, to_domain=to_domain, host=host, port=port, sent_by=self._sent_by(sock, addr), body=body, content_type=ctype
        )
        start = time.monotonic()
        deadline = start + self.timeout_s
        interval = self.t1_s
        provisional = False
        heard = False
        next_send = start
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise SipError(
                    f"no final response from {addr[0]}:{addr[1]} within {self.timeout_s:g} s" + (" (got a provisional one)" if heard else ""),
                    unreachable=not heard,
                )
            if now >= next_send:
                try:
                    sock.sendto(data, addr)
                except OSError as exc:
                    raise SipError(f"cannot send to {addr[0]}:{addr[1]}: {exc}", unreachable=True) from None
                next_send = now + interval
                interval = T2_S if provisional else min(interval * 2, T2_S)
            ready, _, _ = select.select([sock], [], [], max(0.0, min(next_send, deadline) - time.monotonic()))
            if not ready:
                continue
            try:
                packet, src = sock.recvfrom(65535)
            except ConnectionRefusedError:  # ICMP port unreachable from an earlier send
                continue
            except OSError as exc:
                raise SipError(f"receive failed: {exc}", unreachable=not heard) from None
            resp = parse_response(packet)
            if resp is None or not self._matches(resp, branch, call_id, cseq):
                continue
            heard = True
            if resp.status < 200:
                provisional = True
                interval = T2_S
                continue
            return resp

    def _tcp_message(self, addr: tuple[str, int], to_id: str, to_domain: str, host: str, port: int, body: bytes, ctype: str) -> SipResponse:
        try:
            sock = socket.create_connection(addr, timeout=min(self.timeout_s, 10.0))
        except OSError as exc:
            raise SipError(f"cannot connect to {addr[0]}:{addr[1]}: {exc}", unreachable=True) from None
        try:
            if self.local_host:
                sent_by = f"{self.local_host}:{sock.getsockname()[1]}"
            else:
                sent_by = "{}:{}".format(*sock.getsockname()[:2])
            data, branch, call_id, cseq = self.build(
                to_id=to_id, to_domain=to_domain, host=host, port=port, sent_by=sent_by, body=body, content_type=ctype
            )
            sock.sendall(data)
            deadline = time.monotonic() + self.timeout_s
            buf = b""
            while True:
                # frame as many whole messages as the buffer holds
                while b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                    n = int(m.group(1)) if m else 0
                    if len(rest) < n:
                        break
                    msg, buf = head + b"\r\n\r\n" + rest[:n], rest[n:]
                    resp = parse_response(msg)
                    if resp is not None and self._matches(resp, branch, call_id, cseq) and resp.status >= 200:
                        return resp
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SipError(f"no final response from {addr[0]}:{addr[1]} within {self.timeout_s:g} s", unreachable=False)
                sock.settimeout(left)
                try:
                    chunk = sock.recv(65535)
                except TimeoutError:
                    continue
                except OSError as exc:
                    raise SipError(f"connection failed: {exc}", unreachable=False) from None
                if not chunk:
                    raise SipError("the peer closed the connection before answering", unreachable=False)
                buf += chunk
        finally:
            sock.close()
