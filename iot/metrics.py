"""The IoT ingest's figures, read at scrape time (registered on the service's registry by
the composition root):

* ``gridworker_iot_messages_total{outcome}``: messages by outcome (``heartbeat``,
  ``reading``, ``alarm``, ``restore``, ``malformed``, ``unknown_device``, ``foreign_topic``,
  ``failed``, ``retained``: a retained message, dropped; ``flapping``: an alarm held
  back by ``iot.openings_per_hour``);
* ``gridworker_iot_malformed_messages_total{device}``: malformed messages per registered
  device (bounded by the registry; messages of unknown devices count as ``unknown_device``);
* ``gridworker_iot_devices{state}``: devices ``online`` / ``offline``;
* ``gridworker_iot_connected``: 1 while subscribed to the broker;
* ``gridworker_iot_offline_waiting``: devices silent past their limit whose offline case waits
  for a later check (``iot.offline_per_check``);
* ``gridworker_iot_clock_gaps_total`` / ``gridworker_iot_clock_gap_seconds_total``: pauses of
  the process (suspended) not counted as the devices' silence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .service import IotService


class IotCollector(Collector):
    def __init__(self, iot: IotService) -> None:
        self._iot = iot

    def collect(self) -> Iterable[Any]:
        outcomes, malformed = self._iot.stats()
        msgs = CounterMetricFamily("gridworker_iot_messages", "IoT messages received, by outcome", labels=["outcome"])
        for outcome, n in sorted(outcomes.items()):
            msgs.add_metric([outcome], float(n))
        bad = CounterMetricFamily(
            "gridworker_iot_malformed_messages", "Malformed IoT messages per device (dropped, never a case)", labels=["device"]
        )
        for device, n in sorted(malformed.items()):
            bad.add_metric([device], float(n))
        views = self._iot.views()
        devices = GaugeMetricFamily("gridworker_iot_devices", "Registered IoT devices by state", labels=["state"])
        offline = sum(1 for v in views if v.offline)
        devices.add_metric(["online"], float(len(views) - offline))
        devices.add_metric(["offline"], float(offline))
        up = GaugeMetricFamily("gridworker_iot_connected", "1 while the IoT ingest is subscribed to its broker")
        up.add_metric([], 1.0 if self._iot.connected else 0.0)
        silence = self._iot.silence()
        waiting = GaugeMetricFamily(
            "gridworker_iot_offline_waiting", "Silent IoT devices whose offline case waits for a later check (iot.offline_per_check)"
        )
        waiting.add_metric([], float(silence.offline_waiting))
        gaps = CounterMetricFamily("gridworker_iot_clock_gaps", "Pauses of the IoT clock (process suspended) not counted as silence")
        gaps.add_metric([], float(silence.gaps))
        gap_s = CounterMetricFamily("gridworker_iot_clock_gap_seconds", "Seconds of those pauses")
        gap_s.add_metric([], silence.gaps_s)
        waiting_db, dropped = self._iot.unwritten()
        unwritten = GaugeMetricFamily("gridworker_iot_unwritten", "IoT case updates waiting for the database (written again at each check)")
        unwritten.add_metric([], float(waiting_db))
        lost = CounterMetricFamily("gridworker_iot_unwritten_dropped", "IoT case updates dropped: more waited for the database than iot keeps")
        lost.add_metric([], float(dropped))
        yield from (msgs, bad, devices, up, waiting, gaps, gap_s, unwritten, lost)
