"""Webhooks: the event as a signed JSON POST.

Headers: ``Content-Type: application/json``, ``Idempotency-Key: <incident id>:<version>``,
``X-Gridworker-Event``, ``X-Gridworker-Delivery`` (the outbox id) and
``X-Gridworker-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>``.
2xx delivered; 4xx other than 408/429 dead at once; anything else retried.

``timeout_s`` bounds the whole request — connecting, sending, the answer's head and the
first ``ANSWER_BYTES`` of its body (all that is read: the error text is its first 200
characters). httpx's own timeouts are per read, so a receiver trickling a long answer would
pass each of them; a :class:`_Deadline` shuts the connection's socket when the time is up.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Mapping

import httpcore
import httpx

from gridworker.delivery.outbox import OutboxEvent
from gridworker.streams.redact import redact_text, url_secrets

from .config import WebhookDestination
from .dispatcher import Outcome, Result, retry_after_seconds

SIGNATURE_HEADER = "X-Gridworker-Signature"
#: The most of an answer's body read (a receiver's error page may be any size).
ANSWER_BYTES = 4096
#: httpcore's trace events that carry a new connection's network stream.
_CONNECTED = frozenset({"connection.connect_tcp.complete", "connection.start_tls.complete"})


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header's value for ``body``.

    Example:
        >>> sign("key", b"The quick brown fox jumps over the lazy dog")
        'sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8'
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """A receiver's check of the signature header (constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header.strip())


def _retry_after(value: str | None) -> float | None:
    """An HTTP ``Retry-After``: delta-seconds or an HTTP date, as a wait within [0, 1 h]."""
    seconds = retry_after_seconds(value)
    if seconds is not None or not value:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return retry_after_seconds(when.timestamp() - time.time())


def _path_tokens(url: str) -> tuple[str, ...]:
    """The path of ``url`` and its segments of 8 characters or more (tokens: Feishu's
    ``/hook/<uuid>``, Slack's ``/services/T…/B…/<secret>``), longest first."""
    path = httpx.URL(url).path
    segments = [seg for seg in path.split("/") if len(seg) >= 8]
    return tuple(sorted({path, *segments} - {"", "/"}, key=len, reverse=True))


class _Deadline:
    """One request at a time's overall time limit. httpcore's ``trace`` extension reports
    each new connection's socket (a reused one keeps the socket noted when it was opened:
    the sender sends one request at a time); when the time is up that socket is shut down,
    which ends a read or write blocked on it at once. One watchdog thread per sender, started
    at the first request and ended by :meth:`close` (not a thread per request)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._until: float | None = None  # monotonic time the running request must end by
        self._thread: threading.Thread | None = None
        self._closed = False
        self.expired = False

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        if event not in _CONNECTED:
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if isinstance(stream, httpcore.NetworkStream) else None
        if isinstance(sock, socket.socket):
            with self._cond:
                self._sock = sock
                if self.expired:
                    self._cut()

    def start(self, seconds: float) -> None:
        with self._cond:
            self._until, self.expired = time.monotonic() + seconds, False
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._watch, name="webhook-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._until = None
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed, self._until = True, None
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(5.0)

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._until is None:
                    self._cond.wait()
                    continue
                left = self._until - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._until, self.expired = None, True
                self._cut()

    def _cut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # the plain socket's shutdown (an SSLSocket's also drops its state)
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


def _head_of(r: httpx.Response) -> bytes:
    """Up to ``ANSWER_BYTES`` of the body (less when the connection breaks or the time is up).
    A body read to its end leaves the connection for the next request; one cut short closes it."""
    got = b""
    with contextlib.suppress(httpx.HTTPError):
        for chunk in r.iter_raw():
            got += chunk
            if len(got) >= ANSWER_BYTES:
                break
    return got[:ANSWER_BYTES]


def _text(r: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(r.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


class WebhookSender:
    """Posts each event to one webhook; its ``send`` is called by one thread at a time."""

    kind = "webhook"

    def __init__(self, config: WebhookDestination) -> None:
        self.config = config
        self.name = config.name
        self._secret = config.secret.get_secret_value()
        # what a receiver's error page or an exception may echo: the URL's secrets, and its path
        # (a chat bot's hook carries its token there; target() shows none of it either)
        self._scrub = (self._secret, *url_secrets(config.url), *_path_tokens(config.url), *config.header_secrets())
        # credentials in the URL become a Basic auth header, and leave the URL (httpx logs URLs)
        parsed = httpx.URL(config.url)
        self._auth = (parsed.username, parsed.password) if parsed.username or parsed.password else None
        self._url = parsed.copy_with(username=None, password=None) if self._auth else parsed
        self._deadline = _Deadline()
        self._client = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s, connect=min(config.connect_timeout_s, config.timeout_s)),
            verify=config.verify_tls,
            follow_redirects=False,
            # only the first bytes of an answer are read: undecoded, so they are the text
            headers={"User-Agent": "gridworker-forwarding/1", "Accept-Encoding": "identity"},
        )

    def target(self) -> str:
        return self.config.target()

    def _err(self, exc: BaseException) -> str:
        if self._deadline.expired:
            return f"no answer within {self.config.timeout_s:g} s"
        return redact_text(f"{type(exc).__name__}: {exc}", self._scrub)

    def send(self, event: OutboxEvent) -> Result:
        body = event.body()
        headers = {
            **self.config.headers,
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": event.idempotency_key,
            "X-Gridworker-Event": event.event,
            "X-Gridworker-Delivery": str(event.id),
            SIGNATURE_HEADER: sign(self._secret, body),
        }
        auth = self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT  # the client has none
        self._deadline.start(self.config.timeout_s)
        try:
            with self._client.stream(
                "POST", self._url, content=body, headers=headers, auth=auth, extensions={"trace": self._deadline.trace}
            ) as r:
                answer = _head_of(r)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            return Result(Outcome.UNREACHABLE, self._err(exc))
        except httpx.HTTPError as exc:  # read/write timeouts, a dropped connection: it may have arrived
            return Result(Outcome.RETRY, self._err(exc))
        finally:
            self._deadline.stop()
        code = r.status_code
        if 200 <= code < 300:
            return Result.ok()
        text = redact_text(_text(r, answer)[:200].replace("\n", " "), self._scrub)
        error = f"HTTP {code} {r.reason_phrase}: {text}".strip()
        if 400 <= code < 500 and code not in (408, 429):
            return Result(Outcome.DEAD, error)
        return Result(Outcome.RETRY, error, _retry_after(r.headers.get("Retry-After")))

    def close(self) -> None:
        self._deadline.close()
        self._client.close()
