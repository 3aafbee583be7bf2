"""People: the staff who handle cases (grid workers 网格员, unit staff, the centre's operators),
their passwords, and the routing rule that gives a dispatched case to one of them.

Tables beside the work orders, in the same ``Database`` (schema: migration 0004):

- ``people`` — one row per person: username (unique, lower case), name, unit, grid area,
  phone, role (the roles of API keys), an Argon2id password hash (or none: cannot log in),
  disabled flag. People are never deleted (audit rows name them); they are disabled.
- ``login_sessions`` (migration 0009) — one row per login session (api/sessions.py keeps
  them): ``sha256`` of the cookie's token (never the token), the person, when it began and
  was last used.

Passwords are hashed with Argon2id (argon2-cffi), a memory-hard KDF: unlike an API key's
256-bit random secret, a password is guessable, so each guess must be expensive. Hashing is
bounded to two at a time (each one holds ``password_memory_kib`` of memory).

Routing (``People.pick``): among the active ``unit_handler`` people of the unit the case is
sent to, those whose ``area`` is the case's area if there are any, else all of them; of those,
the one with the fewest running cases (ties: the lowest id). docs/people.md.

Example:
    >>> people = People(Database.open("sqlite:///:memory:"))
    >>> [li] = people.add([PersonIn(username="li.wei", name="Li Wei", unit="community-grid", role="unit_handler")], at=1.7e9)
    >>> li.id, li.role, li.has_password
    (1, 'unit_handler', False)
"""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy import Boolean, Float, Integer, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from gridworker.incidents.db import Base, Database, to_domain

from .catalogue import Catalogue, load_catalogue
from .csvrows import csv_rows
from .places import AreaMap
from .workflow import ROLES, UNIT_HANDLER, Actor
from .workorders import RUNNING, WorkOrderRow

__all__ = [
    "CSV_COLUMNS",
    "LoginSessionRow",
    "People",
    "PeopleConfig",
    "PeopleError",
    "PeopleLimitReached",
    "Person",
    "PersonExists",
    "PersonIn",
    "PersonNotFound",
    "PersonPatch",
    "PersonProfile",
    "PersonRow",
    "Passwords",
]

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.@\-]{1,63}$"
PHONE_PATTERN = r"^[0-9+\-() ]{0,32}$"
AREA_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})?$"
UNIT_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})?$"
MIN_PASSWORD = 10
MAX_PASSWORD = 200
#: People with a password one add (an import) may carry: each costs an Argon2 hash (~0.2 s here).
MAX_PASSWORDS_PER_ADD = 100
CSV_COLUMNS = ("username", "name", "unit", "area", "phone", "role", "password")
Role = Literal["viewer", "operator", "unit_handler", "supervisor", "admin"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]


class PeopleConfig(BaseModel):
    """``people:`` in the service config: login sessions, login rate limits, password hashing,
    caps (docs/people.md)."""

    model_config = ConfigDict(extra="forbid")

    session_idle_s: float = Field(1800.0, ge=60.0, le=7 * 86_400.0, description="A session unused this long ends (idle expiry).")
    session_max_age_s: float = Field(12 * 3600.0, ge=300.0, le=30 * 86_400.0, description="A session ends this long after login, used or not.")
    max_sessions: int = Field(10_000, ge=1, le=1_000_000, description="Sessions kept in all (the least recently used one ends beyond).")
    max_sessions_per_person: int = Field(5, ge=1, le=100, description="Sessions of one person (the oldest one ends beyond).")
    login_failures_per_user: int = Field(5, ge=1, le=1000, description="Failed logins of one username from one client address per login_window_s (429 beyond, for that client).")
    login_failures_per_user_total: int = Field(
        30, ge=1, le=100_000,
        description="Failed logins of one username from all client addresses together per login_window_s (429 beyond, except from a known client).",
    )
    known_client_days: float = Field(
        30.0, ge=0.0, le=365.0,
        description="A client address from which a username logged in is known for it this long: not held to login_failures_per_user_total.",
    )
    login_attempts_per_client: int = Field(20, ge=1, le=10_000, description="Logins from one client address per login_window_s (429 beyond).")
    login_window_s: float = Field(300.0, ge=1.0, le=86_400.0, description="The window of the login limits.")
    cookie_secure: bool | None = Field(None, description="Mark the session cookie Secure; default: when the request came over https.")
    password_time_cost: int = Field(3, ge=1, le=20, description="Argon2id passes.")
    password_memory_kib: int = Field(65_536, ge=19_456, le=1_048_576, description="Argon2id memory per hash, KiB (19 MiB at least).")
    max_people: int = Field(10_000, ge=1, le=1_000_000, description="People in all (409 beyond).")


class PeopleError(ValueError):
    """A person record that cannot be stored (the message says why, never echoes a password)."""


class PersonExists(PeopleError):
    """The username is taken."""


class PeopleLimitReached(PeopleError):
    """``people.max_people`` would be passed."""


class PersonNotFound(KeyError):
    """No such person."""


class PersonRow(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(64), default="", index=True)
    area: Mapped[str] = mapped_column(String(64), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class LoginSessionRow(Base):
    """A person's login session (api/sessions.py): the SHA-256 (hex) of its cookie's token,
    never the token; times in Unix seconds (``last_seen`` is written at most every
    ``Sessions.touch_every_s``)."""

    __tablename__ = "login_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float, index=True)


@dataclass(frozen=True, slots=True)
class PersonProfile:
    """Who a person is and what they may do: what gridworker and the API (``PersonOut``) both
    show of a person, never a password or its hash."""

    id: int
    username: str
    name: str
    unit: str
    area: str
    phone: str
    role: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class Person(PersonProfile):
    """A person as the rest of gridworker sees them (never the password hash)."""

    created_at: float
    updated_at: float
    has_password: bool = False

    def actor(self) -> Actor:
        """The person acting: ``person:<id>:<username>`` with their role; a unit handler is bound
        to their unit and to the cases assigned to them."""
        return Actor(
            name=f"person:{self.id}:{self.username}",
            role=self.role,
            unit=self.unit if self.role == UNIT_HANDLER else None,
            person=self.id,
        )


def _to_person(row: PersonRow) -> Person:
    return to_domain(Person, row, has_password=row.password_hash is not None)


class _PersonFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("username", mode="before", check_fields=False)
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v


class PersonIn(_PersonFields):
    """A new person (API body, CSV row)."""

    username: str = Field(pattern=USERNAME_PATTERN, description="Login name: 2-64 of a-z 0-9 _ . @ - (stored lower case).")
    name: str = Field(min_length=1, max_length=200, description="Full name.")
    unit: str = Field("", pattern=UNIT_PATTERN, description="The unit (catalogue code) the person works for; required for unit_handler.")
    area: str = Field("", pattern=AREA_PATTERN, description="Grid area id (areas: in the config) the person covers.")
    phone: str = Field("", pattern=PHONE_PATTERN)
    role: Role = Field(description="viewer, operator, unit_handler (grid worker / unit staff), supervisor, admin")
    password: SecretStr | None = Field(None, description=f"{MIN_PASSWORD}-{MAX_PASSWORD} characters; none: cannot log in yet.")


class PersonPatch(_PersonFields):
    """Changes to a person (absent fields stay)."""

    name: str | None = Field(None, min_length=1, max_length=200)
    unit: str | None = Field(None, pattern=UNIT_PATTERN)
    area: str | None = Field(None, pattern=AREA_PATTERN)
    phone: str | None = Field(None, pattern=PHONE_PATTERN)
    role: Role | None = None
    password: SecretStr | None = None
    disabled: bool | None = None


class Passwords:
    """Argon2id hashing with at most two hashes at a time (each holds ``memory_kib``)."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65_536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID)
        self._slots = threading.BoundedSemaphore(2)
        self._dummy = self._hasher.hash("not a password of anyone")

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, digest: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no digest, a dummy is checked so that an unknown
        username costs as long as a wrong password."""
        with self._slots:
            try:
                return self._hasher.verify(digest if digest is not None else self._dummy, password) and digest is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False


def _check_password(secret: SecretStr | None) -> str | None:
    if secret is None:
        return None
    pw = secret.get_secret_value()
    if not MIN_PASSWORD <= len(pw) <= MAX_PASSWORD:
        raise PeopleError(f"a password has {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return pw


def _reason(exc: ValidationError) -> str:
    """Where and why, never the input (pydantic would echo a password)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'person'}: {e['msg']}" for e in exc.errors())


class People:
    """The people of a service: records, passwords, logins' checks and case routing.
    Thread-safe.

    Args:
        db: the process's ``Database``.
        catalogue: the units people belong to.
        areas: the grid's areas (a person's ``area`` must be one of them).
        config: the ``people:`` section.
    """

    def __init__(self, db: Database, catalogue: Catalogue | None = None, areas: AreaMap | None = None, config: PeopleConfig | None = None) -> None:
        self.db = db
        self.catalogue = catalogue if catalogue is not None else load_catalogue()
        self.areas = areas if areas is not None else AreaMap([])
        self.config = config if config is not None else PeopleConfig()
        self.passwords = Passwords(self.config.password_time_cost, self.config.password_memory_kib)
        self._add_lock = threading.Lock()

    # -- checks ---------------------------------------------------------------------------
    def _check(self, role: str, unit: str, area: str) -> None:
        if unit and self.catalogue.unit(unit) is None:
            raise PeopleError(f"unknown unit {unit!r}")
        if role == UNIT_HANDLER and not unit:
            raise PeopleError("a unit_handler needs a unit")
        if area and self.areas.get(area) is None:
            raise PeopleError(f"unknown area {area!r} (areas: in the config)")

    # -- writes ---------------------------------------------------------------------------
    def add(self, people: list[PersonIn], *, at: float | None = None) -> list[Person]:
        """Store new people, all or none.

        Raises:
            PersonExists: a username is taken or listed twice.
            PeopleLimitReached: ``max_people`` would be passed.
            PeopleError: an unknown unit or area, a bad password.
        """
        now = time.time() if at is None else at
        seen: set[str] = set()
        for p in people:
            self._check(p.role, p.unit, p.area)
            if p.username in seen:
                raise PersonExists(f"username {p.username!r} is listed twice")
            seen.add(p.username)
        passwords = [_check_password(p.password) for p in people]
        with_password = sum(pw is not None for pw in passwords)
        if with_password > MAX_PASSWORDS_PER_ADD:  # each is a deliberately slow hash on the login's own slots
            raise PeopleError(
                f"{with_password} people with a password at once; at most {MAX_PASSWORDS_PER_ADD} (set the others' passwords later)"
            )
        with self.db.transaction() as s:  # refused before any hashing, checked again below
            self._refuse_taken_or_full(s, seen)
        hashes = [None if pw is None else self.passwords.hash(pw) for pw in passwords]
        with self._add_lock, self.db.transaction() as s:
            self._refuse_taken_or_full(s, seen)
            rows = [
                PersonRow(
                    username=p.username, name=p.name, unit=p.unit, area=p.area, phone=p.phone, role=p.role,
                    password_hash=h, disabled=False, created_at=now, updated_at=now,
                )
                for p, h in zip(people, hashes, strict=True)
            ]
            s.add_all(rows)
            try:
                s.flush()
            except IntegrityError:  # a concurrent add took the name
                raise PersonExists("a username is taken") from None
            return [_to_person(r) for r in rows]

    def _refuse_taken_or_full(self, s: Session, usernames: set[str]) -> None:
        """PeopleLimitReached when adding ``usernames`` would pass ``max_people``; PersonExists when one is taken."""
        count = s.scalar(select(func.count()).select_from(PersonRow)) or 0
        if count + len(usernames) > self.config.max_people:
            raise PeopleLimitReached(f"people.max_people ({self.config.max_people}) would be passed")
        taken = s.scalars(select(PersonRow.username).where(PersonRow.username.in_(sorted(usernames)))).first()
        if taken is not None:
            raise PersonExists(f"username {taken!r} is taken")

    def update(self, person_id: int, patch: PersonPatch, *, at: float | None = None) -> Person:
        """Change a person. Raises PersonNotFound, PeopleError."""
        now = time.time() if at is None else at
        pw = _check_password(patch.password)
        digest = None if pw is None else self.passwords.hash(pw)
        with self.db.transaction() as s:
            row = s.get(PersonRow, person_id)
            if row is None:
                raise PersonNotFound(person_id)
            role = patch.role if patch.role is not None else row.role
            unit = patch.unit if patch.unit is not None else row.unit
            area = patch.area if patch.area is not None else row.area
            self._check(role, unit, area)
            row.role, row.unit, row.area = role, unit, area
            if patch.name is not None:
                row.name = patch.name
            if patch.phone is not None:
                row.phone = patch.phone
            if patch.disabled is not None:
                row.disabled = patch.disabled
            if digest is not None:
                row.password_hash = digest
            row.updated_at = now
            s.flush()
            return _to_person(row)

    def import_csv(self, text: str, *, max_rows: int = 5000) -> list[Person]:
        """Add the people of a CSV (header row of ``CSV_COLUMNS``; username, name and role
        required), all or none. Raises PeopleError naming the bad lines (never their values)."""
        try:
            rows, problems = _parse_csv(text, max_rows)
        except csv.Error as exc:
            raise PeopleError(f"not a valid CSV: {exc}") from None
        for line, p in rows:
            try:
                self._check(p.role, p.unit, p.area)
                _check_password(p.password)
            except PeopleError as exc:
                problems.append(f"line {line}: {exc}")
        if problems:
            problems.sort(key=lambda text: int(text.split(":", 1)[0].removeprefix("line ")))
            raise PeopleError(f"{len(problems)} bad row(s): " + "; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))
        return self.add([p for _, p in rows])

    # -- reads ----------------------------------------------------------------------------
    def get(self, person_id: int) -> Person | None:
        with self.db.transaction() as s:
            row = s.get(PersonRow, person_id)
            return None if row is None else _to_person(row)

    def names(self, ids: set[int]) -> dict[int, str]:
        """Display names of people by id (for listings)."""
        if not ids:
            return {}
        with self.db.transaction() as s:
            return {i: n for i, n in s.execute(select(PersonRow.id, PersonRow.name).where(PersonRow.id.in_(sorted(ids)))).all()}

    def list(
        self, *, unit: str | None = None, area: str | None = None, role: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[Person], int]:
        cond = [c for c, v in ((PersonRow.unit == unit, unit), (PersonRow.area == area, area), (PersonRow.role == role, role)) if v is not None]
        with self.db.transaction() as s:
            total = s.scalar(select(func.count()).select_from(PersonRow).where(*cond)) or 0
            rows = s.scalars(select(PersonRow).where(*cond).order_by(PersonRow.id).limit(limit).offset(offset)).all()
            return [_to_person(r) for r in rows], int(total)

    def authenticate(self, username: str, password: str) -> Person | None:
        """The active person with this username and password; None otherwise (an unknown
        username costs one hash, like a wrong password)."""
        name = username.strip().lower()
        with self.db.transaction() as s:
            row = s.scalars(select(PersonRow).where(PersonRow.username == name)).one_or_none() if len(name) <= 64 else None
            digest = None if row is None or row.disabled else row.password_hash
            person = None if row is None else _to_person(row)
        if len(password) > MAX_PASSWORD:
            digest = None
        ok = self.passwords.verify(digest, password[:MAX_PASSWORD])
        return person if ok and person is not None else None

    # -- routing --------------------------------------------------------------------------
    def assignable(self, s: Session, person_id: int, unit: str) -> bool:
        """Whether ``person_id`` may hold a case of ``unit`` (an active unit handler of it)."""
        row = s.get(PersonRow, person_id)
        return row is not None and not row.disabled and row.role == UNIT_HANDLER and row.unit == unit

    def pick(self, s: Session, unit: str, area: str) -> tuple[int, str] | None:
        """The person a case of ``unit`` in ``area`` goes to, and why (``"area"`` or ``"load"``):
        the unit's active unit handlers of that area if any, else all of them; the one with
        the fewest running cases (ties: lowest id). None when the unit has nobody."""
        load = (
            select(WorkOrderRow.assignee, func.count().label("n"))
            .where(WorkOrderRow.state.in_(sorted(RUNNING)), WorkOrderRow.assignee.is_not(None))
            .group_by(WorkOrderRow.assignee)
            .subquery()
        )
        base = (
            select(PersonRow.id, PersonRow.area)
            .outerjoin(load, load.c.assignee == PersonRow.id)
            .where(PersonRow.unit == unit, PersonRow.role == UNIT_HANDLER, PersonRow.disabled.is_(False))
            .order_by(func.coalesce(load.c.n, 0), PersonRow.id)
            .limit(1)
        )
        if area:
            found = s.execute(base.where(PersonRow.area == area)).first()
            if found is not None:
                return int(found[0]), "area"
        found = s.execute(base).first()
        return None if found is None else (int(found[0]), "load")


def _parse_csv(text: str, max_rows: int) -> tuple[list[tuple[int, PersonIn]], list[str]]:
    """The people of a CSV with their line numbers, and the problems of the bad lines."""
    rows, problems = csv_rows(text, columns=CSV_COLUMNS, required=("username", "name", "role"), max_rows=max_rows, error=PeopleError, lower=True)
    people: list[tuple[int, PersonIn]] = []
    for line, values in rows:
        try:
            people.append((line, PersonIn.model_validate(values)))
        except ValidationError as exc:
            problems.append(f"line {line}: {_reason(exc)}")
    return people, problems
