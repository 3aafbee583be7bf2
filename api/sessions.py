"""People's login sessions: an HttpOnly, SameSite=Strict cookie, a CSRF token, idle expiry,
rate-limited logins (docs/people.md).

* ``POST /auth/login`` checks the password (Argon2id, ``cases/people.py``) and starts a
  session: a random 256-bit token in the cookie ``gw_session`` (HttpOnly: page scripts never
  see it; SameSite=Strict: another site's page never sends it; Secure over https) and a CSRF
  token in the response body. Only ``sha256(token)`` is kept, in memory.
* A request authenticated by the cookie with an unsafe method (POST, PUT, PATCH, DELETE) must
  carry the CSRF token in ``X-CSRF-Token`` (403 otherwise). SameSite=Strict and the front
  door's origin checks (api/security.py) already stop cross-site requests; the token is the
  second, independent lock. An API key in the request wins over the cookie and needs no token.
* A session ends after ``people.session_idle_s`` without a request, ``session_max_age_s``
  after login, at logout, and when the person is disabled or their password changed.
* Memory is bounded: ``max_sessions`` in all (the least recently used one ends beyond) and
  ``max_sessions_per_person`` (their oldest ends). Sessions do not survive a restart.
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

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from fastapi import HTTPException, Request, status

from gridworker.cases.people import People, PeopleConfig, Person
from gridworker.cases.workflow import Actor

from .ratelimit import RateLimiter
from .security import STATE_CHANGING

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "LoginGuard", "SessionInfo", "Sessions", "session_actor"]

SESSION_COOKIE = "gw_session"
CSRF_HEADER = "X-CSRF-Token"
_TOKEN_MAX = 100
_SCOPE_KEY = "gridworker.person"  # the request's person and session, for /auth/me


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session: whose, its CSRF token, when it began and was last used (Unix seconds)."""

    person_id: int
    csrf: str
    created_at: float
    last_seen: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class LoginGuard:
    """The login limits: unsuccessful logins per username, attempts per client address.

    An attempt counts against its username when it is admitted, before the password is
    checked, and is forgotten only when the login succeeds: logins sent at once cannot all
    get a password check while the first ones are still hashing (at most
    ``login_failures_per_user`` checks per window, however many arrive together).
    """

    def __init__(self, config: PeopleConfig) -> None:
        self.per_user = RateLimiter(config.login_failures_per_user, config.login_window_s)
        self.per_client = RateLimiter(config.login_attempts_per_client, config.login_window_s)
        self._lock = threading.Lock()  # the two limiters are checked and recorded together

    def admit(self, username: str, client: str, now: float) -> float | None:
        """None when this login may be tried (counted against the username and the client);
        else seconds to wait (nothing counted)."""
        with self._lock:
            wait = self.per_client.retry_after(client, now)
            if wait is None:
                wait = self.per_user.hit(username, now)
            if wait is None:
                wait = self.per_client.hit(client, now)
            return wait

    def succeeded(self, username: str) -> None:
        """The username's counted attempts are cleared (the login succeeded)."""
        self.per_user.forget(username)


class Sessions:
    """The login sessions of one app, in memory and bounded. Thread-safe.

    Example:
        >>> sessions = Sessions(PeopleConfig(session_idle_s=60), clock=lambda: 0.0)
        >>> token, info = sessions.create(7)
        >>> sessions.get(token).person_id
        7
    """

    def __init__(self, config: PeopleConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config if config is not None else PeopleConfig()
        self.clock = clock
        self.logins = LoginGuard(self.config)
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, SessionInfo] = OrderedDict()  # least recently used first

    def create(self, person_id: int) -> tuple[str, SessionInfo]:
        """A new session of ``person_id``: (the cookie's token, the session)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        info = SessionInfo(person_id, secrets.token_urlsafe(32), now, now)
        with self._lock:
            mine = [d for d, s in self._sessions.items() if s.person_id == person_id]
            for d in sorted(mine, key=lambda d: self._sessions[d].created_at)[: max(0, len(mine) - self.config.max_sessions_per_person + 1)]:
                del self._sessions[d]
            self._sessions[_digest(token)] = info
            while len(self._sessions) > self.config.max_sessions:
                self._sessions.popitem(last=False)
        return token, info

    def get(self, token: str) -> SessionInfo | None:
        """The live session of ``token`` (its use is recorded); None when there is none or it
        expired (idle or too old; then it is ended)."""
        if not token or len(token) > _TOKEN_MAX:
            return None
        key = _digest(token)
        now = self.clock()
        with self._lock:
            info = self._sessions.get(key)
            if info is None:
                return None
            if now - info.last_seen > self.config.session_idle_s or now - info.created_at > self.config.session_max_age_s:
                del self._sessions[key]
                return None
            info = replace(info, last_seen=now)
            self._sessions[key] = info
            self._sessions.move_to_end(key)
            return info

    def end(self, token: str) -> bool:
        with self._lock:
            return self._sessions.pop(_digest(token), None) is not None

    def end_person(self, person_id: int) -> int:
        """End every session of a person (disabled, password or role changed); how many ended."""
        with self._lock:
            gone = [d for d, s in self._sessions.items() if s.person_id == person_id]
            for d in gone:
                del self._sessions[d]
            return len(gone)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def clear_cookie_header(secure: bool) -> dict[str, str]:
    """A ``Set-Cookie`` header that removes the session cookie (sent with a 401 for an ended session)."""
    flags = "; Secure" if secure else ""
    return {"set-cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=strict{flags}"}


def cookie_secure(request: Request, config: PeopleConfig) -> bool:
    return config.cookie_secure if config.cookie_secure is not None else request.url.scheme == "https"


def session_actor(request: Request, token: str, sessions: Sessions, people: People | None) -> Actor:
    """The person of the session cookie ``token`` as an ``Actor``.

    Raises:
        HTTPException: 401 when the session ended (the cookie is cleared), 403 when an unsafe
            method lacks the session's CSRF token.
    """
    info = sessions.get(token) if people is not None else None
    person: Person | None = None
    if info is not None and people is not None:
        person = people.get(info.person_id)
        if person is None or person.disabled:
            sessions.end(token)
            person = None
    if info is None or person is None:
        headers = {"WWW-Authenticate": "Bearer", **clear_cookie_header(cookie_secure(request, sessions.config))}
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
