"""Flow statistics of the counting lines (越线计数): per-minute buckets in SQL.

A crossing is not an incident; it is a count. ``FlowRecorder`` (a frame observer of the
service) adds each frame's crossings to in-memory per-minute buckets keyed by camera,
line, class and direction, bumps the Prometheus counter, and writes the buckets to
``FlowStore`` every ``flush_interval_s`` and on ``flush()`` (the service calls it on
stop). Writes add to what is stored (an upsert), so a bucket flushed in several parts,
or by two processes, sums correctly. ``FlowStore.totals`` rolls the minutes up into
minute, hour or day buckets (days in a given time zone) with in/out totals.

Works on SQLite and PostgreSQL; the table lives beside the incidents, in the same
``Database``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

from prometheus_client import Counter as PromCounter
from sqlalchemy import BigInteger, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from gridworker.vision.analyzer import FrameAnalysis

from .db import Base, Database, equal_filters

log = logging.getLogger(__name__)

Bucket = Literal["minute", "hour", "day"]
BUCKET_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86_400}
FlowKey = tuple[str, str, str, str, int]  # camera_id, line_id, class_name, direction, minute start (epoch s)


class _FlowValues(TypedDict):
    """One minute's count as the columns of a :class:`FlowRow`."""

    camera_id: str
    line_id: str
    class_name: str
    direction: str
    minute: int
    count: int


class FlowRow(Base):
    """Crossings of one line by one class in one direction within one minute."""

    __tablename__ = "line_flows"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(3), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_line_flows_minute", "minute"),)


@dataclass(frozen=True, slots=True)
class FlowQuery:
    """Which flows to total. ``since``/``until`` are epoch seconds (``until`` exclusive)."""

    since: float
    until: float
    bucket: Bucket = "hour"
    camera_id: str | None = None
    line_id: str | None = None
    class_name: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class FlowBucket:
    """Totals of one bucket; ``start`` is aware, in the query's time zone."""

    start: dt.datetime
    in_count: int
    out_count: int


def minute_of(ts: float) -> int:
    """Start (epoch s) of the minute ``ts`` falls in."""
    return int(ts // 60) * 60


def _bucket_start(ts: int, bucket: Bucket, tz: dt.tzinfo) -> dt.datetime:
    if bucket == "day":
        local = dt.datetime.fromtimestamp(ts, tz=tz)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    step = BUCKET_SECONDS[bucket]
    return dt.datetime.fromtimestamp(ts - ts % step, tz=tz)


def _next_bucket(start: dt.datetime, bucket: Bucket) -> dt.datetime:
    if bucket == "day":  # the next local midnight, whatever the day's length
        nxt = (start.replace(tzinfo=None) + dt.timedelta(days=1)).replace(tzinfo=start.tzinfo)
        return nxt
    return dt.datetime.fromtimestamp(start.timestamp() + BUCKET_SECONDS[bucket], tz=start.tzinfo)


def bucket_starts(since: float, until: float, bucket: Bucket, tz: dt.tzinfo) -> list[dt.datetime]:
    """Starts of every bucket overlapping [since, until)."""
    out: list[dt.datetime] = []
    cur = _bucket_start(int(since // 1), bucket, tz)
    while cur.timestamp() < until:
        out.append(cur)
        cur = _next_bucket(cur, bucket)
    return out


class FlowStore:
    """Per-minute crossing counts in SQL.

    Safe to share between threads: each call opens its own short session.

    Example:
        >>> flows = FlowStore("sqlite:///:memory:")
        >>> flows.add({("cam1", "gate", "person", "in", 60): 3})
        >>> [b.in_count for b in flows.totals(FlowQuery(since=0, until=120, bucket="minute"))]
        [0, 3]
    """

    def __init__(self, db: Database | str) -> None:
        """``db``: the process's ``Database`` (shared: ``close`` leaves it open), or a URL for
        a store with a database of its own (opened and upgraded here)."""
        self._owns_db = isinstance(db, str)
        self.db = Database.open(db) if isinstance(db, str) else db
        self._session = self.db.transaction

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    def add(self, counts: Mapping[FlowKey, int]) -> None:
        """Add ``counts`` (key → crossings) to the stored minutes, in one transaction."""
        rows: list[_FlowValues] = [
            {"camera_id": c, "line_id": line, "class_name": cls, "direction": d, "minute": int(m), "count": int(n)}
            for (c, line, cls, d, m), n in counts.items()
            if n
        ]
        if not rows:
            return
        dialect = self.db.dialect
        with self._session() as s:
            if dialect in ("sqlite", "postgresql"):
                if dialect == "sqlite":
                    from sqlalchemy.dialects.sqlite import insert
                else:
                    from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
                stmt = insert(FlowRow)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["camera_id", "line_id", "class_name", "direction", "minute"],
                    set_={"count": FlowRow.count + stmt.excluded.count},
                )
                s.execute(stmt, rows)
                return
            for r in rows:  # any other database: read-modify-write in the transaction
                key = (r["camera_id"], r["line_id"], r["class_name"], r["direction"], r["minute"])
                row = s.get(FlowRow, key, with_for_update=True)
                if row is None:
                    s.add(FlowRow(**r))
                else:
                    row.count += r["count"]

    def totals(self, query: FlowQuery) -> list[FlowBucket]:
        """In/out totals per bucket over [since, until), every bucket listed (zeros too).

        Hour buckets are UTC hours shown in the time zone (the same thing in whole-hour
        zones); day buckets run from local midnight to local midnight.
        """
        tz = zoneinfo.ZoneInfo(query.timezone)
        # SQL sums per minute (minute buckets) or per UTC hour; days are rolled up here
        grain = FlowRow.minute if query.bucket == "minute" else FlowRow.minute - FlowRow.minute % 3600
        conditions = [FlowRow.minute >= minute_of(query.since), FlowRow.minute < query.until]
        conditions += equal_filters(
            (FlowRow.camera_id, query.camera_id), (FlowRow.line_id, query.line_id), (FlowRow.class_name, query.class_name)
        )
        with self._session() as s:
            g = grain.label("grain")
            rows = s.execute(select(g, FlowRow.direction, func.sum(FlowRow.count)).where(*conditions).group_by(g, FlowRow.direction)).all()
        sums: dict[float, Counter[str]] = {}
        for grain_ts, direction, n in rows:
            bucket_ts = _bucket_start(int(grain_ts), query.bucket, tz).timestamp()
            sums.setdefault(bucket_ts, Counter())[direction] += int(n or 0)
        out = []
        for start in bucket_starts(query.since, query.until, query.bucket, tz):
            got = sums.get(start.timestamp(), Counter())
            out.append(FlowBucket(start=start, in_count=got["in"], out_count=got["out"]))
        return out


class FlowRecorder:
    """A service frame observer: crossings → Prometheus counter + per-minute buckets → ``FlowStore``.

    ``observe`` runs on the pipeline's post thread; ``flush`` may also be called from the
    thread that stops the service, hence the lock. A failed write keeps its counts for
    the next flush.

    Args:
        store: where buckets go.
        counter: ``gridworker_line_crossings`` (labels camera, line, class_name, direction), or None.
        flush_interval_s: write buckets at most this often while frames come in.
        clock: monotonic clock (tests).
    """

    def __init__(
        self,
        store: FlowStore,
        counter: PromCounter | None = None,
        flush_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.counter = counter
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self._pending: Counter[FlowKey] = Counter()
        self._lock = threading.Lock()
        self._last_flush = clock()

    def observe(self, analysis: FrameAnalysis, latency: float = 0.0) -> None:
        """Take one ``FrameAnalysis`` (its ``crossings``); the service's observer signature."""
        crossings = analysis.crossings
        if crossings:
            camera = analysis.frame.camera_id
            with self._lock:
                for c in crossings:
                    self._pending[(camera, c.line_id, c.class_name, c.direction, minute_of(c.ts))] += 1
            if self.counter is not None:
                for c in crossings:
                    self.counter.labels(camera=camera, line=c.line_id, class_name=c.class_name, direction=c.direction).inc()
        if self._clock() - self._last_flush >= self.flush_interval_s:
            self.flush()

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def flush(self) -> bool:
        """Write what is pending; False (counts kept for the next try) when the write fails."""
        with self._lock:
            batch, self._pending = self._pending, Counter()
            self._last_flush = self._clock()
        if not batch:
            return True
        try:
            self.store.add(batch)
        except Exception:
            log.exception("writing %d flow bucket(s) failed; kept for the next flush", len(batch))
            with self._lock:
                self._pending.update(batch)
            return False
        return True
