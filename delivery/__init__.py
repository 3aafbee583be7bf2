"""Delivery: forwarding work-order events out of gridworker, at least once and idempotent.

The transactional outbox (``delivery/outbox.py``) records one message per work-order
change in the change's own transaction; the ``Dispatcher`` here drains it to webhooks,
MQTT and GB/T 28181 platforms (server-sent events read the outbox directly, see
``api/routers/events.py``). See docs/forwarding.md.

Wiring::

    dispatcher = build_forwarding(config, db, orders=orders)   # dispatcher.outbox: the outbox
    dispatcher.start(); ...; dispatcher.stop()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridworker.incidents.db import Database
from gridworker.delivery.outbox import Outbox, Route

from .config import ForwardingConfig, Gb28181Destination, GbCamera, MqttDestination, RetryPolicy, WebhookDestination
from .dispatcher import DestinationStatus, Dispatcher, Outcome, Result, Sender

if TYPE_CHECKING:
    from gridworker.cases.workorders import WorkOrders


def make_sender(dest: WebhookDestination | MqttDestination | Gb28181Destination) -> Sender:
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


def _enabled(config: ForwardingConfig) -> list[WebhookDestination | MqttDestination | Gb28181Destination]:
    return [d for d in config.destinations if d.enabled] if config.enabled else []


def build_outbox(config: ForwardingConfig, db: Database, *, orders: WorkOrders | None = None) -> Outbox:
    """The outbox in ``db`` with one route per enabled destination. With ``orders`` its hook is
    registered on them — do that once, before any work order is written, or those changes
    leave no message."""
    routes = [Route(d.name, tuple(d.events), tuple(d.types)) for d in _enabled(config)]
    outbox = Outbox(db, catalogue=orders.catalogue if orders is not None else None, routes=routes)
    if orders is not None:
        outbox.attach(orders)
    return outbox


def build_forwarding(
    config: ForwardingConfig, db: Database, *, orders: WorkOrders | None = None, senders: list[Sender] | None = None
) -> Dispatcher:
    """:func:`build_outbox` and its dispatcher (not started).

    ``senders`` replaces the senders built from the config (tests)."""
    return build_dispatcher(config, build_outbox(config, db, orders=orders), senders=senders)


def build_dispatcher(config: ForwardingConfig, outbox: Outbox, *, senders: list[Sender] | None = None) -> Dispatcher:
    """A dispatcher (not started) draining ``outbox`` to the enabled destinations, each with a
    fresh sender. A stopped dispatcher has closed its senders: a service started again builds
    a new one on the same outbox."""
    enabled = _enabled(config)
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
    "build_dispatcher",
    "build_forwarding",
    "build_outbox",
    "make_sender",
]
