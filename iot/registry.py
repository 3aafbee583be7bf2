"""The device registry: devices of the config file, plus those added through the API or a
CSV import (saved in the database, table ``iot_devices``, so they survive a restart).

Example:
    >>> reg = DeviceRegistry(IotConfig(), known_types={"smart_breaker"})  # saver: IncidentStore.devices
    >>> [d.id for d in reg.add([DeviceConfig(id="brk-1", type="smart_breaker")])], reg.get("brk-1").type
    (['brk-1'], 'smart_breaker')
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Collection, Sequence
from typing import Protocol

from pydantic import ValidationError

from gridworker.cases.csvrows import csv_rows
from gridworker.locked import LockedMap

from .config import DeviceConfig, IotConfig

log = logging.getLogger(__name__)

#: The CSV import's columns; ``id`` and ``type`` are required, cameras are separated by ``;``.
CSV_COLUMNS = ("id", "type", "name", "site", "unit", "longitude", "latitude", "cameras", "heartbeat_s")
MAX_CSV_ROWS = 100_000


class DeviceError(ValueError):
    """A device (or an import) that cannot be taken; nothing was changed."""


class DeviceExists(DeviceError):
    pass


class DeviceLimitReached(DeviceError):
    pass


class DeviceNotFound(KeyError):
    pass


class DeviceStore(Protocol):
    """Where devices added at run time are saved: ``(id, config JSON)`` pairs
    (``IncidentStore.devices``, table ``iot_devices``)."""

    def put_all(self, items: Sequence[tuple[str, str]]) -> None: ...

    def delete(self, key: str) -> bool: ...

    def all(self) -> list[tuple[str, str]]: ...


class DeviceRegistry:
    """The devices the ingest knows, by id. Thread-safe.

    Args:
        config: the ``iot:`` section (its devices, ``max_devices``).
        known_types: device types that have a mapping; a device of another type is refused.
        saver: where devices added at run time are saved (None: in memory only).
    """

    def __init__(self, config: IotConfig, known_types: Collection[str], saver: DeviceStore | None = None) -> None:
        self._config = config
        self._types = frozenset(known_types)
        self._saver = saver
        self._from_file = frozenset(d.id for d in config.devices)
        for dev in config.devices:
            self._check_type(dev)
        self._devices: LockedMap[str, DeviceConfig] = LockedMap({dev.id: dev for dev in config.devices})

    def load_saved(self) -> int:
        """Add the devices saved in the database (a bad or clashing one is skipped, logged)."""
        if self._saver is None:
            return 0
        added = 0
        for device_id, raw in self._saver.all():
            try:
                dev = DeviceConfig.model_validate_json(raw)
                self._check_type(dev)
            except (ValidationError, DeviceError) as exc:
                log.error("skipping saved IoT device %r: %s", device_id, _reason(exc))
                continue
            with self._devices.locked() as known:
                if dev.id in known:
                    if dev.id not in self._from_file:
                        continue
                    log.warning("IoT device %r saved through the API is also in the config file; the config file wins", dev.id)
                    continue
                if len(known) >= self._config.max_devices:
                    log.error("skipping saved IoT device %r: iot.max_devices (%d) reached", dev.id, self._config.max_devices)
                    continue
                known[dev.id] = dev
                added += 1
        return added

    def _check_type(self, dev: DeviceConfig) -> None:
        if dev.type not in self._types:
            raise DeviceError(f"device {dev.id!r}: no mapping for type {dev.type!r} (known: {', '.join(sorted(self._types))})")

    # -- reads ---------------------------------------------------------------------------
    def get(self, device_id: str) -> DeviceConfig | None:
        return self._devices.get(device_id)

    def devices(self) -> list[DeviceConfig]:
        return self._devices.values()

    def __len__(self) -> int:
        return len(self._devices)

    def from_file(self, device_id: str) -> bool:
        return device_id in self._from_file

    # -- changes -------------------------------------------------------------------------
    def add(self, devices: Sequence[DeviceConfig], *, replace: bool = False) -> list[DeviceConfig]:
        """Add devices (all or none) and save them. ``replace``: a device already added at
        run time is replaced (one from the config file never is).

        Raises:
            DeviceExists: an id is taken (and not replaceable), or listed twice.
            DeviceLimitReached: ``iot.max_devices`` would be passed.
            DeviceError: a type without a mapping.
        """
        for dev in devices:
            self._check_type(dev)
        with self._devices.locked() as known:
            ids: set[str] = set()
            new = 0
            for dev in devices:
                if dev.id in ids:
                    raise DeviceExists(f"device {dev.id!r} is listed twice")
                ids.add(dev.id)
                if dev.id in self._from_file or (dev.id in known and not replace):
                    raise DeviceExists(f"device {dev.id!r} already exists" + (" (in the config file)" if dev.id in self._from_file else ""))
                new += dev.id not in known
            if len(known) + new > self._config.max_devices:
                raise DeviceLimitReached(f"{len(known) + new} devices would pass iot.max_devices ({self._config.max_devices})")
            if self._saver is not None:
                self._saver.put_all([(d.id, d.model_dump_json()) for d in devices])
            for dev in devices:
                known[dev.id] = dev
        return list(devices)

    def remove(self, device_id: str) -> DeviceConfig:
        """Forget a device added at run time.

        Raises:
            DeviceNotFound: no such device.
            DeviceError: the device is in the config file (edit the file instead).
        """
        with self._devices.locked() as known:
            dev = known.get(device_id)
            if dev is None:
                raise DeviceNotFound(device_id)
            if device_id in self._from_file:
                raise DeviceError(f"device {device_id!r} is in the config file; remove it there")
            if self._saver is not None:
                self._saver.delete(device_id)
            del known[device_id]
            return dev


def parse_csv(text: str, *, max_rows: int = MAX_CSV_ROWS) -> list[DeviceConfig]:
    """Devices from CSV text with a header row naming columns of :data:`CSV_COLUMNS`.

    Raises:
        DeviceError: text that is not CSV (a stray carriage return in a field), an unknown or
            missing column, too many rows, or an invalid row (named by its line; the values
            are not echoed).
    """
    try:
        return _parse_csv(text, max_rows)
    except csv.Error as exc:
        raise DeviceError(f"not a valid CSV: {exc}") from None


def _parse_csv(text: str, max_rows: int) -> list[DeviceConfig]:
    rows, problems = csv_rows(text, columns=CSV_COLUMNS, required=("id", "type"), max_rows=max_rows, error=DeviceError)
    devices: list[DeviceConfig] = []
    for line, values in rows:
        cameras = values.pop("cameras", "")
        try:
            devices.append(DeviceConfig.model_validate({**values, "cameras": [c.strip() for c in cameras.split(";") if c.strip()]}))
        except ValidationError as exc:
            problems.append(f"line {line}: {_reason(exc)}")
    if problems:
        raise DeviceError(f"{len(problems)} bad row(s): " + "; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))
    return devices


def _reason(exc: Exception) -> str:
    """Where and why, never the input (pydantic would echo it)."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'device'}: {e['msg']}" for e in exc.errors())
    return str(exc)

