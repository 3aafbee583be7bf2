"""Cluster mode (issue 12, docs/cluster.md): ``gridworker worker`` processes on several machines
run the cameras and patrol visits; ``gridworker serve`` keeps incidents, cases and delivery and
places the cameras. They meet on NATS JetStream:

* ``config.py``: the ``cluster:`` section (``ClusterConfig``);
* ``bridge.py``: the one asyncio loop of a process (``AsyncBridge``), reached from threads with timeouts;
* ``link.py``: the NATS connection and the KV buckets (``NatsLink``, ``Buckets``);
* ``leases.py``: camera leases and their fencing tokens (``LeaseTable``, ``claim``, ``renew``, ``release``);
* ``membership.py``: heartbeats (``WorkerInfo``), the placement leader, bucket mirrors;
* ``placement.py``: rendezvous placement with a per-worker cap (pure);
* ``worker.py`` / ``serve.py`` / ``api.py`` / ``cli.py``: the two roles, ``/cluster`` and the commands;
* ``observations.py``, ``wire.py``, ``applied.py``: observations from workers to the case service;
  ``clips.py``: their evidence clips, through the shared clips folder;
  ``visits.py``: patrol visits as a work queue; ``bench.py``: ``gridworker bench cluster``.

This module imports nothing: ``gridworker.settings`` reads ``config.py`` and ``gridworker run``
never loads the NATS client.
"""

__all__: list[str] = []
