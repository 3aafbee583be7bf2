"""People's login sessions: an HttpOnly, SameSite=Strict cookie, a CSRF token, idle expiry,
rate-limited logins (docs/people.md).

* ``POST /auth/login`` checks the password (Argon2id, ``cases/people.py``) and starts a
  session: a random 256-bit token in the cookie ``gw_session`` (HttpOnly: page scripts never
  see it; SameSite=Strict: another site's page never sends it; Secure over https) and a CSRF
  token in the response body. Only ``sha256(token)`` is kept, in the database (table
  ``login_sessions``, migration 0009), never the token.
* The CSRF token is ``HMAC-SHA256(fixed label, token)``: recomputed from the cookie on each
  request (``GET /auth/me`` gives it again to a reloaded page) and stored nowhere, so one who
  reads the database (it holds ``sha256(token)`` only) can derive neither the cookie nor it.
* A request authenticated by the cookie with an unsafe method (POST, PUT, PATCH, DELETE) must
  carry the CSRF token in ``X-CSRF-Token`` (403 otherwise; compared in constant time).
  SameSite=Strict and the front door's origin checks (api/security.py) already stop cross-site
  requests; the token is the second, independent lock. An API key in the request wins over the
  cookie and needs no token.
* A session ends after ``people.session_idle_s`` without a request, ``session_max_age_s``
  after login, at logout, and when the person is disabled or their password changed. A use
  writes ``last_seen`` only when it is ``touch_every_s`` = min(60 s, session_idle_s / 10) old
  or more (not a write per request), so an idle session ends between ``session_idle_s -
  touch_every_s`` and ``session_idle_s`` after its last request (never later).
* Storage is bounded: ``max_sessions`` in all (the least recently used one, by ``last_seen``,
  ends beyond) and ``max_sessions_per_person`` (their oldest ends); expired rows are deleted
  when met, at each login and every few minutes. Sessions survive a restart (an upgrade, a
  crash): a new process on the same database accepts the cookies of the old one.
* The database failing while a session is checked, started or ended answers 503
  (``SessionsUnavailable``): never a request let through unchecked, never a traceback or SQL
  (with its parameters) in the answer or the log.
* Logins are limited per username (attempts not followed by a success, counted before the
  password is checked) and per client address (attempts) in a sliding window
  (api/ratelimit.py); over a limit: 429 with ``Retry-After``, before any password is hashed.

Persons and "no key means loopback only": the front door (api/security.py) lets non-loopback
callers in only once API keys are required; sessions change nothing there (fail closed). People
are created only by an authenticated admin (an admin key or an admin's session), never by the
anonymous loopback admin, so by default a key exists, and keys are required, before any
person can log in; a person can never open up the service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from gridworker.cases.people import LoginSessionRow, People, PeopleConfig, Person
from gridworker.cases.workflow import Actor
from gridworker.incidents.db import Database, affected_rows

from .ratelimit import RateLimiter
from .security import STATE_CHANGING

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "LoginGuard", "SessionInfo", "Sessions", "SessionsUnavailable", "session_actor"]

log = logging.getLogger(__name__)

SESSION_COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
_TOKEN_MAX = 100
_SCOPE_KEY = "gridworker.person"  # the request's person and session, for /auth/me
_CSRF_LABEL = b"gridworker login session CSRF token v1"
_TOUCH_EVERY_MAX_S = 60.0  # a use writes last_seen once it is this old (or session_idle_s / 10, when less), not every time
_PRUNE_EVERY_S = 300.0  # expired sessions of anyone are deleted this often along the way (and at each login)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session: whose, its CSRF token (derived from the cookie's token, never stored), when
    it began and was last used (Unix seconds)."""

    person_id: int
    csrf: str
    created_at: float
    last_seen: float


def _digest(token: str) -> str:
    """What the database keeps of a cookie's token (its primary key)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _csrf(token: str) -> str:
    """The CSRF token of the session whose cookie carries ``token``: HMAC-SHA256 keyed by a fixed
    label over the token (not computable from ``_digest(token)``, which is all the database has)."""
    mac = hmac.new(_CSRF_LABEL, token.encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


class LoginGuard:
    """The login limits: unsuccessful logins per username from one client, per username from
    all clients, attempts per client address.

    An attempt counts when it is admitted, before the password is checked, and is forgotten
    only when the login succeeds: logins sent at once cannot all get a password check while
    the first ones are still hashing (at most ``login_failures_per_user`` checks per window
    and client, however many arrive together).

    The per-username limit is per client first (``login_failures_per_user``), so someone
    guessing from one address locks only that address out, not the person. Guesses from many
    addresses are capped by ``login_failures_per_user_total`` for the username; a client from
    which that username logged in before (within ``known_client_days``) is not held to that
    cap, so a flood of guesses from elsewhere does not lock an operator out of their own
    workstation. Memory is bounded by the limiters' key caps and ``_KNOWN_MAX``.
    """

    _KNOWN_MAX = 10_000

    def __init__(self, config: PeopleConfig) -> None:
        window = config.login_window_s
        self.per_user = RateLimiter(config.login_failures_per_user, window)  # keyed by username and client
        self.per_user_total = RateLimiter(config.login_failures_per_user_total, window)
        self.per_client = RateLimiter(config.login_attempts_per_client, window)
        self._known_s = config.known_client_days * 86_400.0
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()  # (username, client) -> last login, oldest first
        self._lock = threading.Lock()  # the limiters are checked and recorded together

    def admit(self, username: str, client: str, now: float) -> float | None:
        """None when this login may be tried (counted against the username and the client);
        else seconds to wait (nothing counted)."""
        pair = f"{username}\n{client}"
        with self._lock:
            known = self._is_known(username, client, now)
            wait = self.per_client.retry_after(client, now)
            if wait is None:
                wait = self.per_user.retry_after(pair, now)
            if wait is None and not known:
                wait = self.per_user_total.retry_after(username, now)
            if wait is not None:
                return wait
            self.per_client.hit(client, now)
            self.per_user.hit(pair, now)
            if not known:  # a known client's tries are held to its own limit only
                self.per_user_total.hit(username, now)
            return None

    def succeeded(self, username: str, client: str, now: float) -> None:
        """The login succeeded: the username's counted attempts are cleared, and the client is
        known for it from now on."""
        with self._lock:
            self.per_user.forget(f"{username}\n{client}")
            self.per_user_total.forget(username)
            self._known[(username, client)] = now
            self._known.move_to_end((username, client))
            while len(self._known) > self._KNOWN_MAX:
                self._known.popitem(last=False)

    def _is_known(self, username: str, client: str, now: float) -> bool:
        at = self._known.get((username, client))
        return at is not None and now - at <= self._known_s


class SessionsUnavailable(HTTPException):
    """The sessions' table could not be read or written (the database failed): answered 503
    wherever it is raised (fail closed: no request gets through on a session not checked). Its
    message names no token, digest or SQL."""

    def __init__(self) -> None:
        super().__init__(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "login sessions cannot be checked or changed now (the database did not answer): try again",
            headers={"Retry-After": "5"},
        )


class Sessions:
    """The login sessions of one service, in its database (table ``login_sessions``,
    migration 0009), bounded. Thread-safe; any number of ``Sessions`` on one database (a
    restarted service, several processes) share them.

    Example:
        >>> db = Database.open("sqlite:///:memory:")
        >>> token, info = Sessions(db, clock=lambda: 1000.0).create(7)
        >>> again = Sessions(db, clock=lambda: 1060.0)  # another instance: a restart
        >>> again.get(token).person_id, again.get(token).csrf == info.csrf
        (7, True)
    """

    def __init__(self, db: Database, config: PeopleConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.config = config if config is not None else PeopleConfig()
        self.clock = clock
        self.logins = LoginGuard(self.config)
        #: ``last_seen`` is written when a use finds it at least this old (not on every request)
        self.touch_every_s = min(_TOUCH_EVERY_MAX_S, self.config.session_idle_s / 10)
        self._lock = threading.Lock()  # this process's creates one at a time (the caps' counts, then the insert)
        self._pruned_at = -math.inf
        self._prune_lock = threading.Lock()

    @contextmanager
    def _store(self) -> Iterator[Session]:
        """A transaction on the sessions' table; a database error becomes ``SessionsUnavailable``
        (logged by its type only: SQLAlchemy's message carries the statement's parameters)."""
        try:
            with self.db.transaction() as s:
                yield s
        except SQLAlchemyError as exc:
            log.warning("login sessions: the database failed (%s); answered 503", type(exc).__name__)
            raise SessionsUnavailable() from None

    def _expired(self, now: float) -> ColumnElement[bool]:
        return or_(
            LoginSessionRow.last_seen < now - self.config.session_idle_s,
            LoginSessionRow.created_at < now - self.config.session_max_age_s,
        )

    def _prune(self, s: Session, now: float) -> int:
        """Delete the expired sessions; how many."""
        with self._prune_lock:
            self._pruned_at = now
        return affected_rows(s.execute(delete(LoginSessionRow).where(self._expired(now))))

    def _prune_due(self, now: float) -> bool:
        with self._prune_lock:
            return not 0 <= now - self._pruned_at < _PRUNE_EVERY_S

    def create(self, person_id: int) -> tuple[str, SessionInfo]:
        """A new session of ``person_id``: (the cookie's token, the session). Their oldest
        sessions beyond ``max_sessions_per_person`` end, then the least recently used ones
        beyond ``max_sessions``; expired ones are deleted first.

        Raises:
            SessionsUnavailable: the database failed (no session was started).
        """
        token = secrets.token_urlsafe(32)
        now = self.clock()
        row = LoginSessionRow
        with self._lock, self._store() as s:
            self._prune(s, now)
            mine = s.scalars(select(row.digest).where(row.person_id == person_id).order_by(row.created_at.desc(), row.digest)).all()
            surplus = list(mine[self.config.max_sessions_per_person - 1 :])
            if surplus:
                s.execute(delete(row).where(row.digest.in_(surplus)))
            over = (s.scalar(select(func.count()).select_from(row)) or 0) + 1 - self.config.max_sessions
            if over > 0:
                lru = select(row.digest).order_by(row.last_seen, row.created_at, row.digest).limit(over)
                s.execute(delete(row).where(row.digest.in_(lru.scalar_subquery())))
            s.add(row(digest=_digest(token), person_id=person_id, created_at=now, last_seen=now))
        return token, SessionInfo(person_id, _csrf(token), now, now)

    def get(self, token: str) -> SessionInfo | None:
        """The live session of ``token``, its use recorded (``last_seen`` written when it is
        ``touch_every_s`` old or more); None when there is none or it expired (idle or too
        old: then it is deleted). Expired sessions of anyone are deleted every few minutes
        along the way.

        Raises:
            SessionsUnavailable: the database failed (the session could not be checked).
        """
        if not token or len(token) > _TOKEN_MAX:
            return None
        key = _digest(token)
        now = self.clock()
        with self._store() as s:
            if self._prune_due(now):
                self._prune(s, now)
            found = s.get(LoginSessionRow, key)
            if found is None:
                return None
            if found.last_seen < now - self.config.session_idle_s or found.created_at < now - self.config.session_max_age_s:
                s.delete(found)
                return None
            if now - found.last_seen >= self.touch_every_s:
                found.last_seen = now
            return SessionInfo(found.person_id, _csrf(token), found.created_at, now)

    def end(self, token: str) -> bool:
        """End the session of ``token`` (logout); whether there was one.

        Raises:
            SessionsUnavailable: the database failed.
        """
        with self._store() as s:
            return affected_rows(s.execute(delete(LoginSessionRow).where(LoginSessionRow.digest == _digest(token)))) > 0

    def end_person(self, person_id: int) -> int:
        """End every session of a person (disabled, password or role changed); how many ended.

        Raises:
            SessionsUnavailable: the database failed.
        """
        with self._store() as s:
            return affected_rows(s.execute(delete(LoginSessionRow).where(LoginSessionRow.person_id == person_id)))

    def prune(self) -> int:
        """Delete the expired sessions now; how many (``get`` and ``create`` also do it)."""
        with self._store() as s:
            return self._prune(s, self.clock())

    def __len__(self) -> int:
        """The live sessions."""
        with self._store() as s:
            return int(s.scalar(select(func.count()).select_from(LoginSessionRow).where(~self._expired(self.clock()))) or 0)


def clear_cookie_header(secure: bool) -> dict[str, str]:
    """A ``Set-Cookie`` header that removes the session cookie (sent with a 401 for an ended session)."""
    flags = "; Secure" if secure else ""
    return {"set-cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=strict{flags}"}


def cookie_secure(request: Request, config: PeopleConfig) -> bool:
    return config.cookie_secure if config.cookie_secure is not None else request.url.scheme == "https"


def session_actor(request: Request, token: str, sessions: Sessions | None, people: People | None) -> Actor:
    """The person of the session cookie ``token`` as an ``Actor`` (no sessions or no people:
    nobody is logged in).

    Raises:
        HTTPException: 401 when the session ended (the cookie is cleared), 403 when an unsafe
            method lacks the session's CSRF token, 503 when the database failed while checking
            it (``SessionsUnavailable``; the request is refused, the cookie kept).
    """
    info: SessionInfo | None = None
    person: Person | None = None
    if sessions is not None and people is not None:
        info = sessions.get(token)
        if info is not None:
            try:
                person = people.get(info.person_id)
            except SQLAlchemyError as exc:
                log.warning("login sessions: the database failed reading a person (%s); answered 503", type(exc).__name__)
                raise SessionsUnavailable() from None
            if person is None or person.disabled:
                sessions.end(token)
                person = None
    if info is None or person is None:
        config = sessions.config if sessions is not None else PeopleConfig()
        headers = {"WWW-Authenticate": "Bearer", **clear_cookie_header(cookie_secure(request, config))}
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "your session has ended (idle, logged out or replaced): log in again", headers=headers)
    if request.method.upper() in STATE_CHANGING:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode("utf-8", "replace"), info.csrf.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"a request signed in by the session cookie needs its CSRF token in {CSRF_HEADER}")
    request.scope[_SCOPE_KEY] = (person, info)
    return person.actor()


def session_of(request: Request) -> tuple[Person, SessionInfo] | None:
    """The person and session that authenticated ``request`` (after ``current_user``), if any."""
    found = request.scope.get(_SCOPE_KEY)
    if isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], Person) and isinstance(found[1], SessionInfo):
        return found[0], found[1]
    return None
