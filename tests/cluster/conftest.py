"""Every cluster test leaves the shared nats-server (``GRIDWORKER_TEST_NATS_URL``, default
127.0.0.1:4222) as it found it: the streams and key-value buckets it made there are deleted
when it ends, passed or failed. JetStream reserves each file stream's ``max_bytes`` on the
server's disk for as long as the stream lives; left behind, a full run's streams exhaust a
small disk's store and later tests fail with 'insufficient storage'.

Only streams a test can have made are touched: new since the test began, and named under a
test prefix (``zt...``: every test that uses the shared server names its cluster so), never a
deployment's (``gw`` by default) or another run's older ones. The listing is read page by page."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import nats
import pytest

from tests.cluster.cluster_h5_support import SHARED_URL

#: a stream or bucket (``KV_<bucket>``) under a test's prefix: ``zt`` then letters and digits
TEST_STREAM = re.compile(r"^(KV_)?zt[A-Za-z0-9]*_")


async def _stream_names() -> set[str] | None:
    try:
        nc = await nats.connect(SHARED_URL, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    except Exception:
        return None  # no shared server: the tests that need it skip or fail on their own
    names: set[str] = set()
    try:
        js = nc.jetstream()
        while page := await js.streams_info(offset=len(names)):
            fresh = {info.config.name for info in page if info.config.name} - names
            if not fresh:
                break
            names |= fresh
        return {name for name in names if TEST_STREAM.match(name)}
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
