"""``GET /flows``: counting-line statistics (越线计数) per minute, hour or day."""

from __future__ import annotations

import time
import zoneinfo
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from gridworker.incidents.flows import BUCKET_SECONDS, FlowQuery

from ..auth import READ
from ..deps import FlowsDep

router = APIRouter(prefix="/flows", tags=["flows"])

MAX_BUCKETS = 10_000
DEFAULT_SPAN_S = 86_400.0
# 1970-01-01 .. 3000-01-01 UTC: times outside cannot be shown in every zone (year 0, year 10000)
EARLIEST_TS, LATEST_TS = 0.0, 32_503_680_000.0


class FlowBucketOut(BaseModel):
    start: datetime = Field(description="Bucket start, in the requested time zone.")
    in_: int = Field(alias="in", description="Crossings from the line's left to its right side (looking from start to end).")
    out: int = Field(description="Crossings the other way.")

    model_config = {"populate_by_name": True}


class FlowTotals(BaseModel):
    in_: int = Field(alias="in")
    out: int

    model_config = {"populate_by_name": True}


class FlowSeries(BaseModel):
    camera_id: str | None
    line_id: str | None
    class_name: str | None
    bucket: Literal["minute", "hour", "day"]
    timezone: str
    since: datetime
    until: datetime
    totals: FlowTotals
    buckets: list[FlowBucketOut]


@router.get("", response_model=FlowSeries, response_model_by_alias=True, dependencies=[READ])
def list_flows(
    flows: FlowsDep,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    line_id: Annotated[str | None, Query(max_length=64)] = None,
    class_name: Annotated[str | None, Query(max_length=64, description="Detector class, e.g. car")] = None,
    since: Annotated[datetime | None, Query(description="From (ISO 8601; without an offset: in 'tz'); default: 24 h before 'until'")] = None,
    until: Annotated[datetime | None, Query(description="Up to, exclusive (ISO 8601; without an offset: in 'tz'); default: now")] = None,
    bucket: Literal["minute", "hour", "day"] = "hour",
    tz: Annotated[str, Query(max_length=64, description="IANA time zone of day buckets and returned times, e.g. Asia/Shanghai")] = "UTC",
) -> FlowSeries:
    """In/out crossing totals per bucket (every bucket in the range, zeros included),
    filtered by camera, line and class. Counts reach the database every few seconds."""
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: 'America' is a folder of zones
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown time zone {tz!r}") from None
    until_ts = _timestamp(until, zone, "until") if until is not None else time.time()
    since_ts = _timestamp(since, zone, "since") if since is not None else until_ts - DEFAULT_SPAN_S
    if since_ts >= until_ts:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "'since' must be before 'until'")
    if (until_ts - since_ts) / BUCKET_SECONDS[bucket] > MAX_BUCKETS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"more than {MAX_BUCKETS} {bucket} buckets; use a coarser bucket or a shorter range")
    query = FlowQuery(
        since=since_ts, until=until_ts, bucket=bucket, camera_id=camera_id, line_id=line_id, class_name=class_name, timezone=tz
    )
    buckets = flows.totals(query)
    return FlowSeries(
        camera_id=camera_id,
        line_id=line_id,
        class_name=class_name,
        bucket=bucket,
        timezone=tz,
        since=datetime.fromtimestamp(since_ts, tz=zone),
        until=datetime.fromtimestamp(until_ts, tz=zone),
        totals=FlowTotals(in_=sum(b.in_count for b in buckets), out=sum(b.out_count for b in buckets)),
        buckets=[FlowBucketOut(start=b.start, in_=b.in_count, out=b.out_count) for b in buckets],
    )


def _timestamp(value: datetime, zone: zoneinfo.ZoneInfo, name: str) -> float:
    """Epoch seconds; a time without an offset is read in the requested time zone."""
    try:
        ts = (value if value.tzinfo is not None else value.replace(tzinfo=zone)).timestamp()
    except (OverflowError, OSError, ValueError):
        ts = -1.0
    if not EARLIEST_TS <= ts < LATEST_TS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"'{name}' is out of range (1970 to 3000)")
    return ts
