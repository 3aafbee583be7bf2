"""MQTT: each event published with QoS 1 to ``{topic_prefix}/{site}/{type}``; delivered
when the broker's PUBACK arrives (paho-mqtt's network loop runs in its own thread).

Topic levels are the site and incident type with ``/ + #`` and control characters
replaced by ``_`` (an empty site is ``_``), so a subscriber can take
``gridworker/incidents/market-east/#`` or ``gridworker/incidents/+/illegal_parking``.

One message at a time. A message paho could not hand over (no connection) or whose PUBACK
did not come in time is the dispatcher's to retry (or dead-letter): the client is dropped
with it, so paho does not send it again by itself on its next connection.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from gridworker.delivery.outbox import OutboxEvent
from gridworker.streams.redact import redact_text

from .config import MqttDestination
from .dispatcher import Outcome, Result

log = logging.getLogger(__name__)
_BAD = re.compile(r"[/+#\x00-\x1f]")


class BrokerLogin(Protocol):
    """How a client logs in to an MQTT broker (a forwarding destination, the IoT ingest)."""

    @property
    def username(self) -> str | None: ...

    @property
    def password(self) -> SecretStr | None: ...

    @property
    def tls(self) -> bool: ...


def log_in(client: mqtt.Client, login: BrokerLogin) -> None:
    """Give ``client`` the account of ``login`` and, with ``tls``, TLS that verifies the broker's
    certificate (before ``connect``)."""
    if login.username is not None:
        client.username_pw_set(login.username, login.password.get_secret_value() if login.password else None)
    if login.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)


def topic_level(text: str) -> str:
    """A value made safe for one MQTT topic level.

    Example:
        >>> topic_level("market/east #2"), topic_level("")
        ('market_east _2', '_')
    """
    return _BAD.sub("_", text) or "_"


def topic_for(prefix: str, event: OutboxEvent) -> str:
    return f"{prefix}/{topic_level(event.site)}/{topic_level(event.type)}"


class MqttSender:
    kind = "mqtt"

    def __init__(self, config: MqttDestination) -> None:
        self.config = config
        self.name = config.name
        self._secrets = (config.password.get_secret_value(),) if config.password else ()
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._connect_error = ""
        self._lock = threading.Lock()

    def target(self) -> str:
        return self.config.target()

    # -- connection ------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object = None) -> None:
        if client is not self._client:  # one dropped meanwhile
            return
        if getattr(reason, "is_failure", False):
            self._connect_error = f"CONNACK refused: {reason}"
            self._connected.clear()
        else:
            self._connect_error = ""
            self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object = None) -> None:
        if client is self._client:
            self._connected.clear()

    def _ensure(self) -> str | None:
        """Connected (or connecting in the background); an error text when not."""
        cfg = self.config
        if self._client is None:
            c = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.client_id or f"gridworker-{cfg.name}",
                protocol=mqtt.MQTTv311,
                clean_session=True,
            )
            log_in(c, cfg)
            c.on_connect = self._on_connect
            c.on_disconnect = self._on_disconnect
            c.reconnect_delay_set(min_delay=1, max_delay=30)
            c.max_inflight_messages_set(100)
            c.max_queued_messages_set(1)  # the one being sent: a failed one leaves with its client
            try:
                c.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
            except OSError as exc:
                return redact_text(f"cannot connect to {cfg.host}:{cfg.port}: {exc}", self._secrets)
            self._client = c
            c.loop_start()  # from here on paho reconnects by itself
        if not self._connected.wait(cfg.timeout_s):
            return self._connect_error or f"not connected to {cfg.host}:{cfg.port}"
        return None

    # -- sending ------------------------------------------------------------------------------
    def send(self, event: OutboxEvent) -> Result:
        with self._lock:
            res = self._publish(event)
            if res.outcome is not Outcome.DELIVERED:
                self._drop()  # with the message paho still holds
            return res

    def _publish(self, event: OutboxEvent) -> Result:
        err = self._ensure()
        if err is not None:
            return Result(Outcome.UNREACHABLE, err)
        assert self._client is not None
        info = self._client.publish(topic_for(self.config.topic_prefix, event), event.body(), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return Result(Outcome.UNREACHABLE, f"publish failed: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(self.config.timeout_s)
        except (RuntimeError, ValueError) as exc:
            return Result(Outcome.RETRY, f"publish failed: {exc}")
        if not info.is_published():
            return Result(Outcome.RETRY, f"no PUBACK within {self.config.timeout_s:g} s")
        return Result.ok()

    def _drop(self) -> None:
        """Disconnect and forget the client (and what it still queues); the next send starts a new one."""
        c, self._client = self._client, None
        self._connected.clear()
        if c is not None:
            try:
                c.disconnect()
            finally:
                c.loop_stop()

    def close(self) -> None:
        with self._lock:
            self._drop()
