"""``forwarding:`` in the service config: where work-order events go and how hard we try.

Example (YAML)::

    forwarding:
      retry: {base_s: 1, cap_s: 120, max_attempts: 10}
      destinations:
        - kind: webhook
          name: city-dispatch
          url: https://dispatch.example.gov.cn/hooks/gridworker
          secret: "a long random string"
        - kind: mqtt
          name: bus
          host: 10.0.0.20
          topic_prefix: gridworker/incidents
        - kind: gb28181
          name: platform
          platform_id: "34020000002000000001"
          platform_host: 10.0.0.30
          local_id: "34020000002000000099"
          cameras:
            cam-17: {device_id: "34020000001320000017", longitude: 121.4737, latitude: 31.2304}
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gridworker.streams.redact import AMBIGUOUS_USERINFO_HELP, ambiguous_userinfo, redact_url, url_origin
from gridworker.validation import first_repeat

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_GB_ID = re.compile(r"^[0-9]{20}$")


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter and a cap; a message is dead after ``max_attempts``.

    The n-th failure waits ``min(cap_s, base_s * 2**(n-1))``, less a random part of up to
    ``jitter`` of it (so many senders do not retry in step)."""

    model_config = ConfigDict(extra="forbid")

    base_s: float = Field(1.0, gt=0, le=3600)
    cap_s: float = Field(120.0, gt=0, le=86400)
    max_attempts: int = Field(10, ge=1, le=1000, description="Attempts that reached the receiver before a message is dead")
    jitter: float = Field(0.5, ge=0, le=1)

    def delay(self, n: int, rand: float) -> float:
        """The wait after the ``n``-th consecutive failure (n ≥ 1); ``rand`` in [0, 1)."""
        raw = min(self.cap_s, self.base_s * (1 << min(max(n, 1) - 1, 40)))
        return raw * (1.0 - self.jitter * rand)


class _Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="Names the destination in the API and the deliveries table")
    enabled: bool = True
    events: list[str] = Field(default_factory=lambda: ["*"], description="Event names (shell patterns), e.g. workorder.detect")
    types: list[str] = Field(default_factory=lambda: ["*"], description="Incident types (shell patterns)")
    retry: RetryPolicy | None = Field(None, description="Default: forwarding.retry")

    def target(self) -> str:  # pragma: no cover - overridden
        return ""


class WebhookDestination(_Destination):
    """JSON POST, signed: ``X-Gridworker-Signature: sha256=<hex HMAC-SHA256(secret, body)>``."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(min_length=1, max_length=2000)
    secret: SecretStr = Field(description="HMAC key shared with the receiver")
    timeout_s: float = Field(10.0, gt=0, le=300, description="The whole request's budget: connecting, sending, the answer (its first 4 KiB)")
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (their values are treated as secrets: an API key, a bearer token)")
    verify_tls: bool = True

    def header_secrets(self) -> list[str]:
        """The values of the extra headers that carry a credential (``Authorization``,
        ``Cookie``, or a secret-sounding name: ``X-Api-Key``, ``X-Auth-Token``), and a
        credential's token on its own (``Bearer <token>``): what a receiver's error page may
        echo back. Others (``X-Tenant: city``) stay readable."""
        from gridworker.streams.redact import is_secret_name

        out: list[str] = []
        for name, value in self.headers.items():
            if name.lower() not in ("authorization", "proxy-authorization", "cookie") and not is_secret_name(name):
                continue
            out.append(value)
            scheme, _, token = value.strip().partition(" ")
            if token.strip() and scheme.isalpha():
                out.append(token.strip())
        return [s for s in out if len(s) >= 4]  # shorter would blank out ordinary words of the text

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL must be http:// or https://, not {redact_url(url)}")
        scheme = url.split(":", 1)[0].lower()
        if ambiguous_userinfo(url):  # nothing of it quoted: its user-info cannot be told apart
            raise ValueError(f"the webhook URL ({scheme}://...) is ambiguous: {AMBIGUOUS_USERINFO_HELP}")
        try:
            httpx.URL(url)
        except httpx.InvalidURL:  # httpx's message quotes the part it could not take (a port, a host)
            raise ValueError(f"the webhook URL ({scheme}://...) is not a valid URL: its host or port cannot be read") from None
        return url

    def target(self) -> str:
        """``scheme://host[:port]/...``: no user-info, and the path and query elided (chat-bot hooks
        carry their token there: ``/bot/v2/hook/<token>``, ``/services/T/B/<secret>``, ``?sign=``)."""
        return url_origin(self.url)


def topic_text(v: str, name: str) -> str:
    """``v``, text that goes into an MQTT topic name as it is (the setting ``name``); ValueError
    if it holds a wildcard (``+``, ``#``) or NUL, which a topic name may not.

    Example:
        >>> topic_text("city/iot/{device_id}/up", "topic_pattern")
        'city/iot/{device_id}/up'
    """
    if any(c in v for c in "+#\x00"):
        raise ValueError(f"{name} may not contain + # or NUL")
    return v


class MqttDestination(_Destination):
    """Publish with QoS 1 to ``{topic_prefix}/{site}/{type}``; delivered on PUBACK."""

    kind: Literal["mqtt"] = "mqtt"
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(None, max_length=128, description="Default: gridworker-<name>")
    topic_prefix: str = Field("gridworker/incidents", min_length=1, max_length=200)
    tls: bool = False
    keepalive_s: int = Field(30, ge=5, le=3600)
    timeout_s: float = Field(10.0, gt=0, le=300, description="Longest wait for the PUBACK (and the CONNACK)")

    @field_validator("topic_prefix")
    @classmethod
    def _topic(cls, v: str) -> str:
        return topic_text(v, "topic_prefix").rstrip("/")

    def target(self) -> str:
        return f"mqtt{'s' if self.tls else ''}://{self.host}:{self.port}/{self.topic_prefix}/{{site}}/{{type}}"


class GbCamera(BaseModel):
    """A camera as the GB/T 28181 platform knows it."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(description="20-digit GB/T 28181 device (channel) id")
    name: str | None = Field(None, max_length=64, description="The channel's name in the Catalog; default: the camera's name as its alarms carry it, else its id")
    longitude: float | None = Field(None, ge=-180, le=180)
    latitude: float | None = Field(None, ge=-90, le=90)

    @field_validator("device_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _GB_ID.match(v):
            raise ValueError(f"a GB/T 28181 id has 20 digits, not {v!r}")
        return v


class Gb28181Destination(_Destination):
    """MANSCDP ``Notify``/``Alarm`` in a SIP MESSAGE to a GB/T 28181 platform; 200 OK = delivered.

    By default only work-order creation (``workorder.detect``, the alarm itself) goes. With
    ``registration`` (the default) gridworker is a device of the platform: it registers (digest
    authentication with ``password``), sends keepalives, answers Catalog/DeviceInfo/DeviceStatus
    queries, and sends alarms only while registered."""

    kind: Literal["gb28181"] = "gb28181"
    events: list[str] = Field(default_factory=lambda: ["workorder.detect"])
    platform_id: str = Field(description="The platform's 20-digit SIP id")
    platform_host: str = Field(min_length=1, max_length=255)
    platform_port: int = Field(5060, ge=1, le=65535)
    platform_domain: str | None = Field(None, description="Default: the first 10 digits of platform_id")
    local_id: str = Field(description="gridworker's 20-digit SIP id (the alarm's device when a camera has none)")
    local_domain: str | None = Field(None, description="Default: the first 10 digits of local_id")
    local_host: str | None = Field(None, description="The address put in Via/Contact; default: the one that routes to the platform")
    local_port: int = Field(0, ge=0, le=65535, description="0: any free port")
    transport: Literal["udp", "tcp"] = "udp"
    t1_s: float = Field(0.5, gt=0, le=10, description="SIP timer T1: first retransmission interval (UDP)")
    timeout_s: float = Field(10.0, gt=0, le=64, description="Give up on a transaction after this long (RFC 3261 Timer F is 64*T1)")
    cameras: dict[str, GbCamera] = Field(default_factory=dict, description="gridworker camera id → device id and position")
    longitude: float | None = Field(None, ge=-180, le=180, description="Default position for cameras without one")
    latitude: float | None = Field(None, ge=-90, le=90)
    alarm_types: dict[str, int] = Field(default_factory=dict, description="Incident type → AlarmType (video method), overriding the built-in map")
    utc_offset_h: float = Field(8.0, ge=-14, le=14, description="AlarmTime is local time (China: +8, no DST)")
    # -- gridworker as a registered device --
    registration: bool = Field(True, description="Register with the platform as a device (false: send alarms unregistered, to a platform that trusts this address)")
    username: str | None = Field(None, max_length=64, description="Digest user name; default: local_id")
    password: SecretStr | None = Field(None, description="Digest password the platform expects (wvp-GB28181-pro: sip.password)")
    expires_s: int = Field(3600, ge=2, le=86400, description="Registration time asked for; refreshed at 2/3 of what the platform grants")
    keepalive_interval_s: float = Field(60.0, ge=0.2, le=3600, description="Keepalive MESSAGE interval while registered")
    keepalive_max_missed: int = Field(3, ge=1, le=100, description="Unanswered keepalives in a row after which the registration is lost (re-register)")
    register_retry_s: float = Field(10.0, gt=0, le=3600, description="Wait between failed registration attempts")
    device_name: str = Field("gridworker", min_length=1, max_length=64, description="DeviceName in DeviceInfo answers")

    @field_validator("platform_id", "local_id")
    @classmethod
    def _ids(cls, v: str) -> str:
        if not _GB_ID.match(v):
            raise ValueError(f"a GB/T 28181 id has 20 digits, not {v!r}")
        return v

    @field_validator("alarm_types")
    @classmethod
    def _types(cls, v: dict[str, int]) -> dict[str, int]:
        for k, n in v.items():
            if not 1 <= n <= 99:
                raise ValueError(f"alarm_types[{k!r}]: an AlarmType is a small positive number, not {n}")
        return v

    def target(self) -> str:
        return f"sip:{self.platform_id}@{self.platform_host}:{self.platform_port};transport={self.transport}"


Destination = Annotated[WebhookDestination | MqttDestination | Gb28181Destination, Field(discriminator="kind")]


class ForwardingConfig(BaseModel):
    """``forwarding:`` in the service config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    destinations: list[Destination] = Field(default_factory=list)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    poll_interval_s: float = Field(1.0, gt=0, le=60, description="How often workers look for due messages when nothing wakes them")
    batch: int = Field(100, ge=1, le=10000)
    sse_keepalive_s: float = Field(15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _unique(self) -> ForwardingConfig:
        name = first_repeat(d.name for d in self.destinations)
        if name is not None:
            raise ValueError(f"two destinations are named {name!r}")
        return self

    def secrets(self) -> list[str]:
        """Every secret in the config (to scrub from errors and logs)."""
        out: list[str] = []
        from gridworker.streams.redact import url_secrets

        for d in self.destinations:
            if isinstance(d, WebhookDestination):
                out.append(d.secret.get_secret_value())
                out.extend(url_secrets(d.url))
                out.extend(d.header_secrets())
            elif isinstance(d, (MqttDestination, Gb28181Destination)) and d.password is not None:
                out.append(d.password.get_secret_value())
        return [s for s in out if len(s) >= 3]
