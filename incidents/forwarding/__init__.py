"""Forwarding work-order events out of gridworker, at least once and idempotent.

The transactional outbox (``incidents/outbox.py``) records one message per work-order
change in the change's own transaction; the ``Dispatcher`` here drains it to webhooks,
MQTT and GB/T 28181 platforms (server-sent events read the outbox directly, see
``api/routers/events.py``). See docs/forwarding.md.

Wiring::

    dispatcher = build_forwarding(config, engine, orders=orders)   # dispatcher.outbox: the outbox
    dispatcher.start(); ...; dispatcher.stop()
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from gridworker.incidents.outbox import Outbox, Route

from .config import ForwardingConfig, Gb28181Destination, GbCamera, MqttDestination, RetryPolicy, WebhookDestination
from .dispatcher import DestinationStatus, Dispatcher, Outcome, Result, Sender


def make_sender(dest: Any) -> Sender:
    if isinstance(dest, WebhookDestination):
        from .webhook import WebhookSender

        return WebhookSender(dest)
    if isinstance(dest, MqttDestination):
        from .mqtt import MqttSender

        return MqttSender(dest)
    if isinstance(dest, Gb28181Destination):
        from .gb28181 import Gb28181Sender

        return Gb28181Sender(dest)
    raise TypeError(f"unknown destination {dest!r}")


def build_forwarding(config: ForwardingConfig, engine: Engine, *, orders: Any = None, senders: list[Sender] | None = None) -> Dispatcher:
    """The outbox on ``engine`` with one route per enabled destination, and its dispatcher
    (not started). With ``orders`` (a ``WorkOrders``) the outbox hook is registered on it —
    do that before any work order is written, or those changes leave no message.

    ``senders`` replaces the senders built from the config (tests)."""
    enabled = [d for d in config.destinations if d.enabled] if config.enabled else []
    routes = [Route(d.name, tuple(d.events), tuple(d.types)) for d in enabled]
    outbox = Outbox(engine, catalogue=getattr(orders, "catalogue", None), routes=routes)
    if orders is not None:
        outbox.attach(orders)
    built = senders if senders is not None else [make_sender(d) for d in enabled]
    return Dispatcher(
        outbox,
        built,
        retry=config.retry,
        retries={d.name: d.retry for d in enabled if d.retry is not None},
        poll_interval_s=config.poll_interval_s,
        batch=config.batch,
        secrets=config.secrets(),
        sse_keepalive_s=config.sse_keepalive_s,
    )


def attach_forwarding(service: Any) -> Dispatcher:
    """Build the forwarding of a ``Service`` from ``settings.forwarding`` (defaults when the
    settings lack it), hooked on ``service.workorders``; the caller starts and stops it."""
    cfg: ForwardingConfig = getattr(service.settings, "forwarding", None) or ForwardingConfig()
    return build_forwarding(cfg, service.store.engine, orders=service.workorders)


__all__ = [
    "DestinationStatus",
    "Dispatcher",
    "ForwardingConfig",
    "Gb28181Destination",
    "GbCamera",
    "MqttDestination",
    "Outcome",
    "Result",
    "RetryPolicy",
    "Sender",
    "WebhookDestination",
    "attach_forwarding",
    "build_forwarding",
    "make_sender",
]
