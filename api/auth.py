"""API keys and roles.

A key looks like ``gwk_<key id>_<secret>``: the key id (12 hex digits) is public and names
the key in listings and audit rows; the secret is 32 random bytes (``secrets``). Only
``sha256(salt ‖ secret)`` with a per-key 16-byte salt is stored. A slow hash (scrypt,
PBKDF2) protects *low-entropy* passwords against guessing; a 256-bit random secret cannot
be guessed, so a fast hash loses nothing and keeps every request cheap. Digests are
compared with ``hmac.compare_digest``. The raw key is shown once, when it is created, and
never logged.

Send it as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Roles: ``viewer`` (reads), ``operator`` (command-centre dispatcher), ``unit_handler``
(bound to one unit: sees and acts on that unit's cases only), ``supervisor`` (also
escalates), ``admin`` (everything, keys included). Whether keys are needed at all is
``AuthConfig.enabled`` (default: as soon as a key has been created). Until then the caller
is an anonymous admin, but only from this machine (loopback) unless ``auth.open`` is set;
keys themselves are only ever created by a key-holding admin or the CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security, status
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gridworker.cases.workflow import ADMIN, OPERATOR, ROLES, SUPERVISOR, UNIT_HANDLER, VIEWER, Actor, NotFound
from gridworker.cases.people import People
from gridworker.keystore import KeyStore, StoredKey

from .deps import KeysDep, WorkflowDep, wiring
from .security import NO_KEY_MESSAGE, is_loopback_address
from .sessions import SESSION_COOKIE, Sessions, session_actor  # people's logins (issue 15)

KEY_PREFIX = "gwk_"
_KEY_RE = re.compile(r"^gwk_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
ANY_ROLE = (VIEWER, OPERATOR, UNIT_HANDLER, SUPERVISOR, ADMIN)
TOUCH_EVERY_S = 60.0


class KeyError_(ValueError):
    """A key that cannot be created (bad role, unit missing or unknown)."""


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


def create_key(keys: KeyStore, *, name: str, role: str, unit: str | None = None, at: float | None = None) -> tuple[StoredKey, str]:
    """Make a key; returns its stored record and the raw key (the only time it exists).

    Raises:
        KeyError_: unknown role, a unit handler without a (known) unit, a unit on another role.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise KeyError_("a key needs a name of 1-200 characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):  # it is logged and audited as part of the actor
        raise KeyError_("a key name may not contain control characters (line breaks, escapes)")
    if role not in ROLES:
        raise KeyError_(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == UNIT_HANDLER:
        if not unit:
            raise KeyError_("a unit_handler key needs --unit")
        if keys.catalogue.unit(unit) is None:
            known = ", ".join(u.code for u in keys.catalogue.units)
            raise KeyError_(f"unknown unit {unit!r} (the catalogue has: {known})")
    elif unit:
        raise KeyError_(f"only unit_handler keys are bound to a unit, not {role} keys")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    stored = keys.add_key(
        key_id=key_id, name=name, role=role, unit=unit if role == UNIT_HANDLER else None,
        salt=salt, digest=_digest(salt, secret), at=time.time() if at is None else at,
    )
    return stored, f"{KEY_PREFIX}{key_id}_{secret}"


def verify_key(keys: KeyStore, raw: str, *, now: float | None = None) -> StoredKey | None:
    """The key's record if ``raw`` is a valid, unrevoked key; None otherwise."""
    m = _KEY_RE.match(raw.strip())
    if m is None:
        return None
    found = keys.key_secret(m.group(1))
    if found is None:
        return None
    stored, salt, digest = found
    if not hmac.compare_digest(_digest(salt, m.group(2)), digest):
        return None
    now = time.time() if now is None else now
    if stored.last_used_at is None or now - stored.last_used_at > TOUCH_EVERY_S:
        keys.touch_key(stored.id, now)
    return stored


def actor_of(key: StoredKey) -> Actor:
    return Actor(name=f"key:{key.key_id}:{key.name}", role=key.role, unit=key.unit)


# -- FastAPI dependencies ------------------------------------------------------------------
ANONYMOUS = Actor("anonymous", ADMIN)
#: The ways to be known (a key in either header, or a person's session cookie), declared so that OpenAPI (and /docs) shows them; neither
#: refuses a request by itself (``auto_error=False``): :func:`current_user` decides.
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False,
    description="An API key (`gwk_<key id>_<secret>`), from `gridworker keys create` or `POST /keys`.",
)
BEARER = HTTPBearer(
    scheme_name="Bearer", bearerFormat="gwk_<key id>_<secret>", auto_error=False,
    description="The same API key as `Authorization: Bearer <key>`.",
)
SESSION = APIKeyCookie(
    name=SESSION_COOKIE, scheme_name="Session", auto_error=False,
    description="A person's login (`POST /auth/login`, issue 15); unsafe methods also need the `X-CSRF-Token` it answered.",
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request sent to be known by (neither is shown in ``repr``).

    Attributes:
        api_key: the key (``X-API-Key``, else ``Authorization: Bearer``); None: none was sent.
        session: the session cookie's token; None: none was sent.
    """

    api_key: str | None = field(default=None, repr=False)
    session: str | None = field(default=None, repr=False)


def credentials(
    x_api_key: Annotated[str | None, Security(API_KEY_HEADER)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    cookie: Annotated[str | None, Security(SESSION)],
) -> Credentials:
    """The one dependency that declares the ways to be known (see above); an empty value counts
    as not sent."""
    raw = x_api_key or (bearer.credentials if bearer is not None else None)
    return Credentials(api_key=raw or None, session=cookie or None)


SentCredentials = Annotated[Credentials, Depends(credentials)]


def current_user(request: Request, keys: KeysDep, sent: SentCredentials) -> Actor:
    """The caller: the key's holder when a key is sent (``X-API-Key``, else ``Authorization:
    Bearer``; 401 if it is not valid). Else a person logged in, by the session cookie
    (api/sessions.py: 401 once it ended, 403 for an unsafe method without its CSRF token).
    Without either: 401 when keys are required; otherwise an
    anonymous admin, but only for a loopback client or with ``auth.open`` (api/security.py
    refuses the others first; this repeats it so no route is open by a middleware mistake)."""
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if sent.api_key is not None:
        key = verify_key(keys, sent.api_key)
        if key is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key", headers=unauthorized)
        return actor_of(key)
    if sent.session is not None:
        wired = wiring(request.app)
        return session_actor(request, sent.session, wired.sessions, wired.people)
    if keys.auth_required():
        how = "send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`"
        if request.headers.get("authorization") is not None:  # e.g. the key alone, or Basic: say which part is wrong
            how += " (the Authorization header sent has no Bearer scheme)"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"an API key is required: {how}", headers=unauthorized)
    if not keys.auth_open and not is_loopback_address(request.client.host if request.client else None):
        raise HTTPException(status.HTTP_403_FORBIDDEN, NO_KEY_MESSAGE)
    return ANONYMOUS


CurrentUser = Annotated[Actor, Depends(current_user)]


def require(*roles: str) -> Callable[..., Actor]:
    """A dependency admitting callers with one of ``roles`` (admins always); 403 otherwise.

    Example:
        >>> from fastapi import APIRouter
        >>> router = APIRouter()
        >>> @router.post("/x")
        ... def x(user: Annotated[Actor, Depends(require("operator", "supervisor"))]) -> str:
        ...     return user.name
        >>> [route.path for route in router.routes]
        ['/x']
    """
    allowed = frozenset(roles) | {ADMIN}

    def dependency(user: CurrentUser) -> Actor:
        return _admitted(user, allowed)

    return dependency


def _admitted(user: Actor, allowed: frozenset[str]) -> Actor:
    """``user`` if their role is in ``allowed``; 403 otherwise."""
    if user.role not in allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {user.role} role may not do this (needs {', '.join(sorted(allowed))})")
    return user


# -- long-lived responses (event streams) ------------------------------------------------------
def _session_now(sessions: Sessions | None, people: People | None, token: str) -> Actor | None:
    """The person of the session cookie ``token`` as an ``Actor`` now; None when the session is
    over (logged out, idle, too old, replaced, ended by a change of the person) or its person is
    gone or disabled. Blocking (the database); raises when the database fails."""
    if sessions is None or people is None:
        return None
    info = sessions.get(token)
    if info is None:
        return None
    person = people.get(info.person_id)
    return None if person is None or person.disabled else person.actor()


@dataclass(frozen=True, slots=True)
class StreamCaller:
    """The caller of a long-lived response (an event stream, api/feeds.py), with what they were
    authenticated by, so that :meth:`recheck` can ask again, as a new request would be asked,
    whether they may still read it.

    Attributes:
        actor: the caller when the stream opened.
        allowed: the roles that may read the stream (admins always).
        keys: the API keys (and whether keys are required).
        sent: what the request sent to be known by (as :func:`current_user`, a key wins over the cookie).
        sessions, people: the logins and the people they are of (None: no one can log in).
    """

    actor: Actor
    allowed: frozenset[str]
    keys: KeyStore
    sent: Credentials = Credentials()
    sessions: Sessions | None = field(default=None, repr=False)
    people: People | None = field(default=None, repr=False)

    def recheck(self) -> Actor | None:
        """The caller as authorised now, None when no longer: the key revoked; the session over
        (logout, idle or age expiry, the person disabled, deleted, their role, unit or password
        changed: ``PATCH /people/{id}`` ends their sessions); the role no longer allowed; a caller
        without credentials once keys are required. Blocking (reads the database: call it in the
        thread pool); raises when the database fails (the stream then ends: fail closed)."""
        if self.sent.api_key is not None:
            key = verify_key(self.keys, self.sent.api_key)
            now = None if key is None else actor_of(key)
        elif self.sent.session is not None:
            now = _session_now(self.sessions, self.people, self.sent.session)
        else:  # the anonymous admin (loopback or auth.open): only while no key is required
            now = None if self.keys.auth_required() else ANONYMOUS
        return now if now is not None and now.role in self.allowed else None


def stream_caller(*roles: str) -> Callable[..., StreamCaller]:
    """A dependency admitting callers with one of ``roles`` (admins always; as :func:`require`)
    to a long-lived response, answering a :class:`StreamCaller` that checks them again later.

    Example:
        >>> from fastapi import APIRouter
        >>> router = APIRouter()
        >>> @router.get("/feed")
        ... async def feed(caller: Annotated[StreamCaller, Depends(stream_caller(VIEWER))]) -> str:
        ...     return caller.actor.name
        >>> [route.path for route in router.routes]
        ['/feed']
    """
    allowed = frozenset(roles) | {ADMIN}

    def dependency(request: Request, user: CurrentUser, keys: KeysDep, sent: SentCredentials) -> StreamCaller:
        wired = wiring(request.app)
        return StreamCaller(_admitted(user, allowed), allowed, keys, sent, sessions=wired.sessions, people=wired.people)

    return dependency


# -- role sets used by the routers -----------------------------------------------------------
#: Reads of the command centre's picture (cameras, incidents, flows, patrol status).
READ = Depends(require(VIEWER, OPERATOR, SUPERVISOR))
#: Day-to-day control (patrol start/stop, signal states pushed by a controller's key).
OPERATE = Depends(require(OPERATOR, SUPERVISOR))
#: Changing what the service is set up to do (patrol plans).
SUPERVISE = Depends(require(SUPERVISOR))
#: Cameras and keys.
ADMINISTER = Depends(require())
#: Anyone with a valid key (unit handlers included): reference data such as incident types.
ANYONE = Depends(require(VIEWER, OPERATOR, UNIT_HANDLER, SUPERVISOR))


def key_admin(user: Annotated[Actor, ADMINISTER]) -> Actor:
    """An admin *with a key*: creating keys is never done by an anonymous caller (the
    first key comes from ``gridworker keys create``)."""
    if user == ANONYMOUS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "keys are created with an admin key; create the first one with `gridworker keys create --role admin --name ...`",
        )
    return user


#: An incident's id in a path: checked (422) before any dependency looks it up.
IncidentId = Annotated[int, Path(ge=1, le=2**62, description="Incident id")]


def incident_evidence_access(incident_id: IncidentId, user: CurrentUser, workflow: WorkflowDep) -> Actor:
    """Detection incidents and their evidence: readers see all; a unit handler sees those of
    the cases their unit holds (404 otherwise, so ids of other units' cases don't leak)."""
    if user.role in (VIEWER, OPERATOR, SUPERVISOR, ADMIN):
        return user
    if user.role == UNIT_HANDLER:
        try:
            workflow.visible(incident_id, user)
        except NotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}") from None
        return user
    raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {user.role} role may not do this")
