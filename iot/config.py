"""The ``iot:`` section: the MQTT broker to ingest from, the devices, and the clocks of
offline detection and alarm clearing (docs/iot.md).

Example:
    >>> cfg = IotConfig(broker={"host": "127.0.0.1"}, devices=[{"id": "brk-1", "type": "smart_breaker"}])
    >>> cfg.topic_filter(), cfg.devices[0].heartbeat_s
    ('gridworker/iot/+/up', 60.0)
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gridworker.delivery.config import topic_text
from gridworker.fields import SecondsUpToHour, SecondsUpToMinute
from gridworker.validation import first_repeat

#: Device ids: as camera ids, but 60 characters at most, so that ``iot:<id>`` (the incident's
#: source, stored in 64-character columns) fits.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,59}$"
TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
DEVICE_PLACEHOLDER = "{device_id}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceConfig(_Strict):
    """One IoT device: what it is, where it is, who answers for it and which cameras see it."""

    id: str = Field(pattern=DEVICE_ID_PATTERN, description="Unique device id, as it appears in its MQTT topic.")
    type: str = Field(pattern=TYPE_PATTERN, description="Device type: the name of a mapping file (smart_breaker, smoke_detector, ...).")
    name: str = Field("", max_length=200, description="Human-readable name (the case's source name).")
    site: str = Field("", max_length=200, description="Site of the device (cases are routed by site like camera cases).")
    unit: str = Field("", max_length=64, description="The unit that owns or maintains the device (shown with the case).")
    longitude: float | None = Field(None, ge=-180.0, le=180.0, description="WGS84 longitude.")
    latitude: float | None = Field(None, ge=-90.0, le=90.0, description="WGS84 latitude.")
    cameras: list[str] = Field(default_factory=list, max_length=16, description="Ids of the cameras that see the device (video linkage).")
    heartbeat_s: float = Field(60.0, ge=1.0, le=86_400.0, description="Expected interval between the device's messages, seconds.")

    @field_validator("cameras")
    @classmethod
    def _camera_ids(cls, v: list[str]) -> list[str]:
        for cam in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", cam):
                raise ValueError(f"cameras: {cam[:80]!r} is not a camera id")
        return v

    @model_validator(mode="after")
    def _both_coordinates(self) -> DeviceConfig:
        if (self.longitude is None) != (self.latitude is None):
            raise ValueError("give both longitude and latitude, or neither")
        return self

    @property
    def source_id(self) -> str:
        """The device as the source of its incidents (their ``camera_id``): ``iot:<id>``."""
        return source_id(self.id)


def source_id(device_id: str) -> str:
    """``iot:<device id>``: a colon never appears in a camera id, so the two never collide."""
    return f"iot:{device_id}"


class BrokerConfig(_Strict):
    """The MQTT broker devices publish to (QoS 1, a persistent session)."""

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = Field(None, max_length=200)
    password: SecretStr | None = None
    tls: bool = False
    client_id: str = Field(
        "gridworker-iot",
        min_length=1,
        max_length=128,
        description="Fixed client id of the persistent session: the broker keeps QoS 1 messages sent while gridworker is down for it.",
    )
    keepalive_s: int = Field(30, ge=5, le=3600)


class IotConfig(_Strict):
    """IoT alarms ingested over MQTT into the incident loop (docs/iot.md)."""

    broker: BrokerConfig | None = Field(None, description="Where to subscribe; None: no ingest (devices can still be registered).")
    topic_pattern: str = Field(
        "gridworker/iot/{device_id}/up",
        min_length=1,
        max_length=200,
        description="Topic devices publish to; {device_id} stands for one topic level, the device's id.",
    )
    mappings_dir: Path | None = Field(
        None, description="Folder of extra device-type mapping files (*.yaml); they add to (or replace) the shipped ones."
    )
    devices: list[DeviceConfig] = Field(default_factory=list, description="Devices of this file (the API and CSV import add more).")
    max_devices: int = Field(100_000, ge=1, le=1_000_000, description="Devices in all, config file, API and import together.")
    max_payload_bytes: int = Field(16_384, ge=64, le=1_048_576, description="A larger message is malformed (counted, dropped).")
    missed_heartbeats: int = Field(3, ge=1, le=100, description="A device silent for this many heartbeat intervals is offline (a case).")
    alarm_clear_min: float = Field(
        30.0, gt=0.0, le=10_080.0, description="An alarm case closes, verified, after this many minutes without the alarm."
    )
    restore_hold_s: SecondsUpToHour = Field(
        60.0, description="A restored alarm's case closes once the alarm has stayed clear this long; raised again sooner, "
        "the same case goes on (a flapping device keeps one case). 0: close at the restore.",
    )
    openings_per_hour: int = Field(
        12, ge=1, le=3600, description="Cases one device may open per hour, as many at once (a token bucket); an alarm "
        "beyond is held back (counted as flapping) and opens when the device has a token again, unless it ended meanwhile.",
    )
    check_interval_s: float = Field(1.0, gt=0.0, le=60.0, description="How often offline devices and quiet alarms are looked for.")
    offline_per_check: int = Field(
        100, ge=1, le=1_000_000, description="Devices one check may report offline (their cases open) at most; more silent "
        "devices wait for the next checks (a mass outage opens cases at a bounded rate).",
    )
    linkage_watch_s: SecondsUpToMinute = Field(
        5.0,
        description="Video linkage: an alarm's case that opened without a frame (no continuously watched camera of the "
        "device had one) starts a watch of the device's patrol-only cameras this long, and gets their snapshot (0: no watch).",
    )

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        levels = v.split("/")
        if levels.count(DEVICE_PLACEHOLDER) != 1 or any(DEVICE_PLACEHOLDER in lv and lv != DEVICE_PLACEHOLDER for lv in levels):
            raise ValueError("topic_pattern needs exactly one whole topic level {device_id}, e.g. city/iot/{device_id}/up")
        return topic_text(v, "topic_pattern")

    @model_validator(mode="after")
    def _unique(self) -> IotConfig:
        if (dev_id := first_repeat(dev.id for dev in self.devices)) is not None:
            raise ValueError(f"device id {dev_id!r} is used twice")
        if len(self.devices) > self.max_devices:
            raise ValueError(f"{len(self.devices)} devices, more than max_devices ({self.max_devices})")
        return self

    def topic_filter(self) -> str:
        """The subscription: the pattern with ``+`` for the device id."""
        return self.topic_pattern.replace(DEVICE_PLACEHOLDER, "+")

    def topic_for(self, device_id: str) -> str:
        return self.topic_pattern.replace(DEVICE_PLACEHOLDER, device_id)

    def device_of(self, topic: str) -> str | None:
        """The device id a topic names, or None for a topic outside the pattern."""
        want = self.topic_pattern.split("/")
        got = topic.split("/")
        if len(want) != len(got):
            return None
        device: str | None = None
        for w, g in zip(want, got):
            if w == DEVICE_PLACEHOLDER:
                device = g
            elif w != g:
                return None
        return device
