"""The incident catalogue (事件分级分类标准): incident types, units and routing, from a YAML file.

The file is data, not code: a deployment copies ``catalogue.yaml`` (shipped beside this
module), edits it and points ``workorders.catalogue`` at the copy. ``load_catalogue``
validates it and raises ``CatalogueError`` naming the entry at fault.

Example:
    >>> cat = load_catalogue()
    >>> cat.type("illegal_parking").grade, cat.route("illegal_parking", site="school").code
    (3, 'police-station')
    >>> cat.parent("community-grid").level
    'street'
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridworker.validation import read_yaml

DEFAULT_PATH = Path(__file__).with_name("catalogue.yaml")
GRADES = (1, 2, 3, 4)
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"

Category = Literal["traffic", "street_order", "city_appearance", "public_safety"]


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    zh: str = Field(min_length=1, max_length=500)
    en: str = Field(min_length=1, max_length=500)


class Unit(_Strict):
    """A department cases are dispatched to; ``parent`` is where it escalates."""

    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)
    level: str
    parent: str | None = None


def _check_limits(value: dict[int, float]) -> dict[int, float]:
    missing = [g for g in GRADES if g not in value]
    extra = [g for g in value if g not in GRADES]
    if missing or extra:
        raise ValueError(f"needs exactly grades 1-4 (missing {missing}, unknown {extra})")
    bad = [g for g, m in value.items() if not m > 0]
    if bad:
        raise ValueError(f"time limits must be positive minutes (grade {bad})")
    return value


class TypeDefaults(_Strict):
    grade: int = Field(ge=1, le=4)
    unit: str
    first_unit: str
    closing_condition: Text
    time_limits_min: dict[int, float]

    _limits = field_validator("time_limits_min")(_check_limits)


class _TypeNames(_Strict):
    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)
    category: Category


class IncidentType(TypeDefaults, _TypeNames):
    """One incident type: its names and category (first), then what ``defaults`` gives an
    unlisted type: default grade, units and limits.

    ``unit`` is the responsible unit (责任单位, the competent department); ``first_unit``
    the first responsible unit (第一责任单位), where a new case goes unless routing says
    otherwise. ``time_limits_min`` maps each grade to its handling limit in minutes.
    """

    def time_limit_s(self, grade: int) -> float:
        return float(self.time_limits_min[grade]) * 60.0


class Route(_Strict):
    """Send cases matching every given key (shell wildcards allowed) to ``unit``."""

    type: str | None = None
    site: str | None = None
    camera: str | None = None
    zone: str | None = None
    unit: str

    @model_validator(mode="after")
    def _something(self) -> Route:
        if self.type is None and self.site is None and self.camera is None and self.zone is None:
            raise ValueError("a routing rule needs at least one of type, site, camera, zone")
        return self

    def matches(self, type: str, site: str, camera: str, zone: str) -> bool:
        for pattern, value in ((self.type, type), (self.site, site), (self.camera, camera), (self.zone, zone)):
            if pattern is not None and not fnmatch.fnmatchcase(value, pattern):
                return False
        return True


class Catalogue(_Strict):
    version: Literal[1] = 1
    levels: list[str] = Field(min_length=1)
    units: list[Unit] = Field(min_length=1)
    defaults: TypeDefaults
    types: list[IncidentType] = Field(default_factory=list)
    routing: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        problems: list[str] = []
        if len(set(self.levels)) != len(self.levels):
            problems.append(f"levels has duplicates: {self.levels}")
        units: dict[str, Unit] = {}
        for u in self.units:
            if u.code in units:
                problems.append(f"unit {u.code!r} is listed twice")
            units[u.code] = u
            if u.level not in self.levels:
                problems.append(f"unit {u.code!r}: level {u.level!r} is not one of {self.levels}")
        for u in self.units:
            if u.parent is None:
                continue
            parent = units.get(u.parent)
            if parent is None:
                problems.append(f"unit {u.code!r}: parent {u.parent!r} is not a unit")
            elif parent.level in self.levels and u.level in self.levels and self.levels.index(parent.level) <= self.levels.index(u.level):
                problems.append(f"unit {u.code!r}: parent {u.parent!r} ({parent.level}) must be at a higher level than {u.level!r}")
        seen: set[str] = set()
        for t in self.types:
            if t.code in seen:
                problems.append(f"type {t.code!r} is listed twice")
            seen.add(t.code)
            for key in ("unit", "first_unit"):
                if getattr(t, key) not in units:
                    problems.append(f"type {t.code!r}: {key} {getattr(t, key)!r} is not a unit")
        for key in ("unit", "first_unit"):
            if getattr(self.defaults, key) not in units:
                problems.append(f"defaults: {key} {getattr(self.defaults, key)!r} is not a unit")
        for i, r in enumerate(self.routing):
            if r.unit not in units:
                problems.append(f"routing[{i}]: unit {r.unit!r} is not a unit")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- look-ups --------------------------------------------------------------------
    def unit(self, code: str) -> Unit | None:
        return next((u for u in self.units if u.code == code), None)

    def parent(self, code: str) -> Unit | None:
        """The unit ``code`` escalates to, or None at the top (or for an unknown unit)."""
        u = self.unit(code)
        return None if u is None or u.parent is None else self.unit(u.parent)

    def rank(self, code: str) -> int:
        """The unit's level as a number (0 = lowest); -1 for an unknown unit."""
        u = self.unit(code)
        return -1 if u is None else self.levels.index(u.level)

    def type(self, code: str) -> IncidentType:
        """The type ``code``, or one built from ``defaults`` for a type not listed."""
        for t in self.types:
            if t.code == code:
                return t
        return IncidentType(code=code, name_zh=code, name_en=code, category="street_order", **self.defaults.model_dump())

    def is_listed(self, code: str) -> bool:
        return any(t.code == code for t in self.types)

    def route(self, type: str, *, site: str = "", camera: str = "", zone: str = "") -> Unit:
        """The unit a new case of ``type`` at this site/camera/zone goes to: the first
        matching routing rule, else the type's first responsible unit."""
        for r in self.routing:
            if r.matches(type, site, camera, zone):
                unit = self.unit(r.unit)
                assert unit is not None  # validated
                return unit
        unit = self.unit(self.type(type).first_unit)
        assert unit is not None
        return unit


def _describe(err: ValidationError, data: object, source: str) -> str:
    lines = [f"{source}: {err.error_count()} problem(s)"]
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if len(loc) >= 2 and loc[0] in ("types", "units") and isinstance(loc[1], int):
            try:
                code = data[loc[0]][loc[1]].get("code", "?")  # type: ignore[index]
            except (KeyError, IndexError, TypeError, AttributeError):
                code = "?"
            where = f"{loc[0][:-1]} {code!r} ({loc[0]}[{loc[1]}]): " + (".".join(str(p) for p in loc[2:]) or "(entry)")
        lines.append(f"  - {where}: {e['msg']}")
    return "\n".join(lines)


def parse_catalogue(data: object, source: str = "catalogue") -> Catalogue:
    """Validate already-parsed YAML/JSON data."""
    if not isinstance(data, dict):
        raise CatalogueError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise CatalogueError(_describe(exc, data, source)) from None


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate a catalogue file; ``None`` reads the one shipped with gridworker.

    Raises:
        CatalogueError: unreadable file, bad YAML, or an invalid entry (named).
    """
    p = Path(path) if path is not None else DEFAULT_PATH
    return parse_catalogue(read_yaml(p, "the catalogue", CatalogueError), str(p))
