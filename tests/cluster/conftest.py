"""Every cluster test leaves the shared nats-server (``GRIDWORKER_TEST_NATS_URL``, default
127.0.0.1:4222) as it found it: the streams and key-value buckets a test made under its own
prefix are deleted when it ends, passed or failed. JetStream reserves each file stream's
``max_bytes`` on the server's disk for as long as the stream lives; left behind, a full run's
streams exhaust a small disk's store and later tests fail with 'insufficient storage'."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import nats
import pytest

from tests.cluster.cluster_h5_support import SHARED_URL


async def _stream_names() -> set[str] | None:
    try:
        nc = await nats.connect(SHARED_URL, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    except Exception:
        return None  # no shared server: the tests that need it skip or fail on their own
    try:
        return {info.config.name for info in await nc.jetstream().streams_info() if info.config.name}
    finally:
        await nc.close()


async def _delete(names: set[str]) -> None:
    nc = await nats.connect(SHARED_URL, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        js = nc.jetstream()
        for name in sorted(names):
            try:
                await js.delete_stream(name)
            except Exception:
                pass  # gone meanwhile
    finally:
        await nc.close()


@pytest.fixture(autouse=True)
def _shared_nats_left_clean() -> Iterator[None]:
    before = asyncio.run(_stream_names())
    yield
    if before is None:
        return
    after = asyncio.run(_stream_names())
    if after:
        asyncio.run(_delete(after - before))
