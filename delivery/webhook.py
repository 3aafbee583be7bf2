"""Webhooks: the event as a signed JSON POST.

Headers: ``Content-Type: application/json``, ``Idempotency-Key: <incident id>:<version>``,
``X-Gridworker-Event``, ``X-Gridworker-Delivery`` (the outbox id) and
``X-Gridworker-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>``.
2xx delivered; 4xx other than 408/429 dead at once; anything else retried.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import time

import httpx

from gridworker.delivery.outbox import OutboxEvent
from gridworker.streams.redact import redact_text, url_secrets

from .config import WebhookDestination
from .dispatcher import Outcome, Result

SIGNATURE_HEADER = "X-Gridworker-Signature"


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
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), 3600.0))


def _path_tokens(url: str) -> tuple[str, ...]:
    """The path of ``url`` and its segments of 8 characters or more (tokens: Feishu's
    ``/hook/<uuid>``, Slack's ``/services/T…/B…/<secret>``), longest first."""
    path = httpx.URL(url).path
    segments = [seg for seg in path.split("/") if len(seg) >= 8]
    return tuple(sorted({path, *segments} - {"", "/"}, key=len, reverse=True))


class WebhookSender:
    kind = "webhook"

    def __init__(self, config: WebhookDestination) -> None:
        self.config = config
        self.name = config.name
        self._secret = config.secret.get_secret_value()
        # what a receiver's error page or an exception may echo: the URL's secrets, and its path
        # (a chat bot's hook carries its token there; target() shows none of it either)
        self._scrub = (self._secret, *url_secrets(config.url), *_path_tokens(config.url))
        # credentials in the URL become a Basic auth header, and leave the URL (httpx logs URLs)
        parsed = httpx.URL(config.url)
        self._auth = (parsed.username, parsed.password) if parsed.username or parsed.password else None
        self._url = parsed.copy_with(username=None, password=None) if self._auth else parsed
        self._client = httpx.Client(
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            verify=config.verify_tls,
            follow_redirects=False,
            headers={"User-Agent": "gridworker-forwarding/1"},
        )

    def target(self) -> str:
        return self.config.target()

    def _err(self, exc: BaseException) -> str:
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
        try:
            auth = self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT  # the client has none
            r = self._client.post(self._url, content=body, headers=headers, auth=auth)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            return Result(Outcome.UNREACHABLE, self._err(exc))
        except httpx.HTTPError as exc:  # read/write timeouts, a dropped connection: it may have arrived
            return Result(Outcome.RETRY, self._err(exc))
        code = r.status_code
        if 200 <= code < 300:
            return Result.ok()
        text = redact_text(r.text[:200].replace("\n", " "), self._scrub)
        error = f"HTTP {code} {r.reason_phrase}: {text}".strip()
        if 400 <= code < 500 and code not in (408, 429):
            return Result(Outcome.DEAD, error)
        return Result(Outcome.RETRY, error, _retry_after(r.headers.get("Retry-After")))

    def close(self) -> None:
        self._client.close()
