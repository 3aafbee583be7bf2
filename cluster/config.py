"""The ``cluster:`` section: how a worker or the case service reaches NATS, and the timings of
leases, heartbeats and the placement leader (docs/cluster.md)."""

from __future__ import annotations

import os
import socket
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ClusterConfig", "KeyTtlSeconds", "WORKER_ID_PATTERN", "default_worker_id"]

WORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
#: How long a key of the cluster's buckets lives after its last renewal, seconds: a camera's lease,
#: a worker's heartbeat, the placement leader's key (each renewed every ``renew_interval_s``).
KeyTtlSeconds = Annotated[float, Field(ge=1.0, le=300.0)]


def default_worker_id() -> str:
    """``<hostname>-<pid>``, cut to the id pattern."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40] or "worker"
    if not host[0].isalnum():
        host = "w" + host
    return f"{host}-{os.getpid()}"


class ClusterConfig(BaseModel):
    """Cluster mode (``gridworker worker`` / ``gridworker serve``); absent: the embedded ``gridworker run``.

    Example:
        >>> ClusterConfig(nats_url="nats://10.0.0.2:4222", lease_ttl_s=10).renew_interval_s
        2.0
    """

    model_config = ConfigDict(extra="forbid")

    nats_url: str = Field("nats://127.0.0.1:4222", max_length=512, description="NATS server (JetStream enabled).")
    worker_id: str | None = Field(None, pattern=WORKER_ID_PATTERN, description="This worker's id; default <hostname>-<pid>.")
    prefix: str = Field("gw", pattern=r"^[A-Za-z0-9_]{1,16}$", description="Prefix of every bucket and stream name.")
    lease_ttl_s: KeyTtlSeconds = Field(8.0, description="A camera's lease lapses this long after its last renewal.")
    renew_interval_s: float = Field(2.0, ge=0.2, le=60.0, description="Lease renewal, heartbeat and placement period.")
    heartbeat_ttl_s: KeyTtlSeconds = Field(6.0, description="A worker without a heartbeat this long is gone.")
    leader_ttl_s: KeyTtlSeconds = Field(6.0, description="The placement leader's key lapses this long after its renewal.")
    max_cameras_per_worker: int = Field(50, ge=1, le=10_000, description="Most continuous cameras one worker runs.")
    visit_slots: int = Field(
        32, ge=1, le=128,
        description="Patrol visits one worker runs at once (a thread each; a visit mostly waits for its camera's keyframe). "
        "Default: a patrol plan's default concurrency in one process; workers sharing a machine split it.",
    )
    obs_stream_mb: int = Field(
        2000, ge=1, le=1_000_000,
        description="Most the observations stream holds on the NATS server's disk, in MB. JetStream reserves it when the "
        "stream is made (the server refuses a stream beyond its max_file_store); a full stream refuses new observations, "
        "which workers keep and retry.",
    )
    connect_timeout_s: float = Field(5.0, gt=0, le=120.0)
    op_timeout_s: float = Field(3.0, gt=0, le=60.0, description="Every NATS call's timeout.")

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ValueError("nats_url must be nats://host:port or tls://host:port")
        return url

    @model_validator(mode="after")
    def _timings(self) -> ClusterConfig:
        if self.renew_interval_s * 3 > self.lease_ttl_s:
            raise ValueError(f"renew_interval_s ({self.renew_interval_s}) must be at most a third of lease_ttl_s ({self.lease_ttl_s})")
        if self.renew_interval_s * 2 > min(self.heartbeat_ttl_s, self.leader_ttl_s):
            raise ValueError("renew_interval_s must be at most half of heartbeat_ttl_s and leader_ttl_s")
        if self.op_timeout_s >= self.lease_ttl_s:
            raise ValueError("op_timeout_s must be below lease_ttl_s")
        return self

    def public_url(self) -> str:
        """``nats_url`` without credentials (for logs and errors)."""
        parts = urlsplit(self.nats_url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}"
