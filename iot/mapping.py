"""Device-type mappings: how one type of device's JSON payload becomes readings and alarms.

A mapping is data, one YAML file per device type (``iot/mappings/*.yaml`` ship with
gridworker; ``iot.mappings_dir`` adds or replaces types). It names the field that tells the
message's kind (heartbeat, reading, alarm, restore), the field of the device's own alarm
code, the readings (a dotted JSON path, a unit, the normal range the simulator uses), and
the alarms: each with the catalogue entry its cases get, the device's codes for it, and
optionally a threshold on a reading. docs/iot.md describes the format.

Parsing is total: :meth:`DeviceMapping.parse` returns a :class:`DeviceMessage` or raises
:class:`MalformedMessage` naming what is wrong (never echoing the payload).

Example:
    >>> m = load_mappings()["smart_breaker"]
    >>> msg = m.parse(b'{"msg": "data", "data": {"i": 80.5}}', now=1.0)
    >>> msg.kind, msg.readings["current"], msg.raised
    ('reading', 80.5, ('overcurrent',))
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gridworker.validation import load_yaml

from .config import TYPE_PATTERN

SHIPPED = Path(__file__).with_name("mappings")
MessageKind = Literal["heartbeat", "reading", "alarm", "restore"]
KINDS: tuple[MessageKind, ...] = ("heartbeat", "reading", "alarm", "restore")
_PATH = r"^[A-Za-z0-9_\-]{1,64}(\.[A-Za-z0-9_\-]{1,64}){0,7}$"
_CODE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the entry."""


class MalformedMessage(ValueError):
    """A payload that does not follow its device type's mapping (counted, dropped)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageField(_Strict):
    """Where the message's kind is, and the values that mean each kind."""

    field: str = Field(pattern=_PATH, description="Dotted JSON path of the message kind.")
    heartbeat: list[str] = Field(min_length=1, max_length=16)
    reading: list[str] = Field(min_length=1, max_length=16)
    alarm: list[str] = Field(min_length=1, max_length=16)
    restore: list[str] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _distinct(self) -> MessageField:
        values = [v for kind in KINDS for v in getattr(self, kind)]
        if len(set(values)) != len(values):
            raise ValueError("a message-kind value is listed under two kinds")
        return self

    def kind_of(self, value: str) -> MessageKind | None:
        for kind in KINDS:
            if value in getattr(self, kind):
                return kind
        return None


class Reading(_Strict):
    """One measured value of the device."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    path: str = Field(pattern=_PATH, description="Dotted JSON path of the value (a number; true/false count as 1/0).")
    unit: str = Field("", max_length=16)
    normal: tuple[float, float] = Field(description="The range of a healthy device (what `gridworker iot simulate` sends).")

    @model_validator(mode="after")
    def _range(self) -> Reading:
        if not self.normal[0] <= self.normal[1]:
            raise ValueError(f"reading {self.name!r}: normal is [low, high] with low <= high")
        return self


class Threshold(_Strict):
    """The alarm holds while ``reading`` is above ``above`` or below ``below``."""

    reading: str
    above: float | None = None
    below: float | None = None
    clears_when_normal: bool = Field(False, description="A reading back inside the limits restores the alarm.")

    @model_validator(mode="after")
    def _one(self) -> Threshold:
        if self.above is None and self.below is None:
            raise ValueError("a threshold needs above or below")
        return self

    def exceeded(self, value: float) -> bool:
        return (self.above is not None and value > self.above) or (self.below is not None and value < self.below)


class Alarm(_Strict):
    """One alarm of the device type and the catalogue entry its cases get."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    catalogue: str = Field(pattern=_CODE, description="The incident type (a code in the catalogue).")
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    codes: list[str] = Field(default_factory=list, max_length=32, description="The device's own codes for this alarm.")
    threshold: Threshold | None = None


class DeviceMapping(_Strict):
    """One device type: its payload's fields and its alarms."""

    type: str = Field(pattern=TYPE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    message: MessageField
    alarm_code_field: str = Field(pattern=_PATH, description="Dotted JSON path of the device's alarm code in alarm and restore messages.")
    readings: list[Reading] = Field(default_factory=list, max_length=64)
    alarms: list[Alarm] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _consistent(self) -> DeviceMapping:
        names = [r.name for r in self.readings]
        if len(set(names)) != len(names):
            raise ValueError("a reading name is listed twice")
        ids = [a.id for a in self.alarms]
        if len(set(ids)) != len(ids) or "offline" in ids:
            raise ValueError("alarm ids must be unique and not 'offline' (reserved for a silent device)")
        codes = [c for a in self.alarms for c in a.codes]
        if len(set(codes)) != len(codes):
            raise ValueError("a device alarm code is listed under two alarms")
        for a in self.alarms:
            if a.threshold is not None and a.threshold.reading not in names:
                raise ValueError(f"alarm {a.id!r}: threshold on unknown reading {a.threshold.reading!r}")
        return self

    def alarm(self, alarm_id: str) -> Alarm | None:
        return next((a for a in self.alarms if a.id == alarm_id), None)

    def parse(self, payload: bytes, now: float) -> DeviceMessage:
        """The message a payload carries.

        Raises:
            MalformedMessage: not a JSON object, an unknown message kind or alarm code, a
                reading that is not a finite number.
        """
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):
            raise MalformedMessage("not JSON") from None
        if not isinstance(doc, dict):
            raise MalformedMessage("not a JSON object")
        raw_kind = _get(doc, self.message.field)
        if not isinstance(raw_kind, str):
            raise MalformedMessage(f"no message kind at {self.message.field!r}")
        kind = self.message.kind_of(raw_kind)
        if kind is None:
            raise MalformedMessage(f"unknown message kind at {self.message.field!r}")
        readings: dict[str, float] = {}
        for r in self.readings:
            value = _get(doc, r.path)
            if value is None:
                continue
            try:  # a bool is an int: it reads as 0.0 or 1.0
                number = float(value) if isinstance(value, (int, float)) else math.nan
            except OverflowError:  # an integer too large for a float
                number = math.nan
            if not math.isfinite(number):
                raise MalformedMessage(f"reading {r.name!r} at {r.path!r} is not a finite number")
            readings[r.name] = number
        raised: list[str] = []
        restored: list[str] = []
        code = _get(doc, self.alarm_code_field)
        if kind in ("alarm", "restore"):
            if kind == "alarm" and code is None:
                raise MalformedMessage(f"an alarm without a code at {self.alarm_code_field!r}")
            if code is not None:
                alarm = self._by_code(code)
                if alarm is None:
                    raise MalformedMessage(f"unknown alarm code at {self.alarm_code_field!r}")
                (raised if kind == "alarm" else restored).append(alarm.id)
            else:  # a restore without a code: every alarm of the device is over
                restored.extend(a.id for a in self.alarms)
        for a in self.alarms:
            t = a.threshold
            if t is None or t.reading not in readings:
                continue
            if t.exceeded(readings[t.reading]):
                if a.id not in raised:
                    raised.append(a.id)
            elif t.clears_when_normal and a.id not in restored and a.id not in raised:
                restored.append(a.id)
        return DeviceMessage(kind, now, readings, tuple(raised), tuple(restored), _code_text(code))

    def _by_code(self, code: object) -> Alarm | None:
        if isinstance(code, bool) or not isinstance(code, (str, int)):
            return None
        text = str(code)
        return next((a for a in self.alarms if text in a.codes), None)


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """What one payload says: its kind, the readings it carries (by reading name), the
    alarms it raises (by alarm id: a device code, or a reading past its threshold) and the
    alarms it restores; ``device_code`` is the device's own alarm code, if it sent one."""

    kind: MessageKind
    at: float
    readings: Mapping[str, float]
    raised: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()
    device_code: str | None = None


def _code_text(code: object) -> str | None:
    return str(code)[:64] if isinstance(code, (str, int)) and not isinstance(code, bool) else None


def _get(doc: Mapping[str, object], path: str) -> object:
    node: object = doc
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def parse_mapping(data: object, source: str) -> DeviceMapping:
    if not isinstance(data, dict):
        raise MappingError(f"{source}: the top level must be a mapping")
    try:
        return DeviceMapping.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {exc.error_count()} problem(s)"]
        lines += [f"  - {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise MappingError("\n".join(lines)) from None


def load_mappings(extra_dir: Path | None = None) -> dict[str, DeviceMapping]:
    """The shipped mappings, plus (replacing same-named types) those in ``extra_dir``.

    Raises:
        MappingError: an unreadable or invalid file (named), or a type given by two files of one folder.
    """
    out: dict[str, DeviceMapping] = {}
    for folder in (SHIPPED, extra_dir):
        if folder is None:
            continue
        if not folder.is_dir():
            raise MappingError(f"{folder}: not a folder of mapping files")
        mine: set[str] = set()
        for path in sorted(folder.glob("*.yaml")):
            try:
                data = load_yaml(path.read_text(encoding="utf-8"))  # a key written twice is refused, not the last kept
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise MappingError(f"{path}: cannot read: {exc}") from None
            mapping = parse_mapping(data, str(path))
            if mapping.type in mine:
                raise MappingError(f"{path}: type {mapping.type!r} is defined twice in {folder}")
            mine.add(mapping.type)
            out[mapping.type] = mapping
    return out
