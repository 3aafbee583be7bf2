"""People over HTTP (issue 15, docs/people.md): logging in and out, the staff records (admins),
their CSV import, and a person's own queue of cases (``GET /me/cases``).

``POST /auth/login`` is the one route that takes no credentials; it is limited per username
and per client address (api/sessions.py). ``GET /auth/me`` (api/routers/console.py) tells a
logged-in page who it is and its CSRF token.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gridworker.cases.people import People, PeopleError, PeopleLimitReached, PersonExists, PersonIn, PersonNotFound, PersonPatch
from gridworker.cases.workflow import OPERATOR, SUPERVISOR, Actor

from ..auth import ANONYMOUS, ANY_ROLE, require
from ..bodies import CSV_BODY, csv_text
from ..deps import OrdersDep, PeopleDep, SessionsDep
from ..errors import Responses
from ..ratelimit import client_key
from ..schemas_people import PersonOut
from ..sessions import SESSION_COOKIE, cookie_secure
from .workorders import WorkOrderPage, _out

router = APIRouter(tags=["people"])

PersonIdPath = Annotated[int, Path(ge=1, le=2**62, description="Person id")]
Reader = Annotated[Actor, Depends(require(OPERATOR, SUPERVISOR))]
Anyone = Annotated[Actor, Depends(require(*ANY_ROLE))]
MAX_IMPORT_ROWS = 5000


def people_admin(user: Annotated[Actor, Depends(require())]) -> Actor:
    """An admin with a key or an admin's session: people are never created by the anonymous
    loopback admin (api/sessions.py: how persons fit "no key means loopback only")."""
    if user == ANONYMOUS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "people are managed with an admin key or by an admin logged in; create an admin key with `gridworker keys create --role admin --name ...`",
        )
    return user


Admin = Annotated[Actor, Depends(people_admin)]


# -- login ---------------------------------------------------------------------------------
class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class LoginOut(BaseModel):
    person: PersonOut
    csrf_token: str = Field(description="Send as X-CSRF-Token on every POST/PUT/PATCH/DELETE made with the session cookie")
    idle_timeout_s: float


_LOGIN_RESPONSES: Responses = {
    401: {"description": "Wrong username or password (which one is not said)"},
    429: {"description": "Too many login attempts for this username or from this client; see Retry-After"},
}


@router.post("/auth/login", response_model=LoginOut, responses=_LOGIN_RESPONSES)
def login(body: LoginIn, request: Request, response: Response, people: PeopleDep, sessions: SessionsDep) -> LoginOut:
    """Log in with a username and password: sets the HttpOnly, SameSite=Strict session cookie
    ``gw_session`` and returns the CSRF token."""
    now = time.time()
    username = body.username.strip().lower()
    client = client_key(request.client.host if request.client else None)  # an IPv6 client by its /64
    wait = sessions.logins.admit(username, client, now)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "too many login attempts: wait and try again", headers={"Retry-After": str(int(wait) + 1)}
        )
    person = people.authenticate(username, body.password)
    if person is None:  # the attempt was counted against the username when admitted
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    sessions.logins.succeeded(username, client, now)
    token, info = sessions.create(person.id)
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="strict", secure=cookie_secure(request, sessions.config), path="/"
    )
    return LoginOut(person=PersonOut.of(person), csrf_token=info.csrf, idle_timeout_s=sessions.config.session_idle_s)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def logout(request: Request, user: Anyone, sessions: SessionsDep) -> Response:
    """End the caller's session (the cookie is removed). With an API key: nothing to end."""
    token = request.cookies.get(SESSION_COOKIE)
    if token and user.person is not None:
        sessions.end(token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=cookie_secure(request, sessions.config))
    return response


# -- people (admins) ---------------------------------------------------------------------------
class PersonPage(BaseModel):
    items: list[PersonOut]
    total: int
    limit: int
    offset: int


class ImportOut(BaseModel):
    imported: int
    usernames: list[str] = Field(description="The usernames imported (the first 1000)")


_WRITE_RESPONSES: Responses = {
    403: {"description": "Not an admin with a key or session"},
    409: {"description": "The username is taken, or people.max_people reached"},
    422: {"description": "Unknown unit or area, a unit handler without a unit, a bad password"},
}


def _people_error(exc: PeopleError) -> HTTPException:
    code = status.HTTP_409_CONFLICT if isinstance(exc, (PersonExists, PeopleLimitReached)) else status.HTTP_422_UNPROCESSABLE_CONTENT
    return HTTPException(code, str(exc))


@router.get("/people", response_model=PersonPage)
def list_people(
    user: Reader,
    people: PeopleDep,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    area: Annotated[str | None, Query(max_length=64)] = None,
    role: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PersonPage:
    """People (operators and supervisors choose assignees here; admins manage them)."""
    items, total = people.list(unit=unit, area=area, role=role, limit=limit, offset=offset)
    return PersonPage(items=[PersonOut.of(p) for p in items], total=total, limit=limit, offset=offset)


@router.get("/people/{person_id}", response_model=PersonOut, responses={404: {"description": "No such person"}})
def get_person(person_id: PersonIdPath, user: Reader, people: PeopleDep) -> PersonOut:
    person = people.get(person_id)
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id}")
    return PersonOut.of(person)


@router.post("/people", response_model=PersonOut, status_code=status.HTTP_201_CREATED, responses=_WRITE_RESPONSES)
def create_person(body: PersonIn, user: Admin, people: PeopleDep) -> PersonOut:
    """Add a person (admins). With a password they can log in at once."""
    try:
        return PersonOut.of(people.add([body])[0])
    except PeopleError as exc:
        raise _people_error(exc) from None


@router.patch("/people/{person_id}", response_model=PersonOut, responses={**_WRITE_RESPONSES, 404: {"description": "No such person"}})
def update_person(person_id: PersonIdPath, body: PersonPatch, user: Admin, people: PeopleDep, sessions: SessionsDep) -> PersonOut:
    """Change a person (admins). A new password, role, unit or disabling ends their sessions."""
    ends = body.password is not None or body.role is not None or body.unit is not None or bool(body.disabled)
    if ends:  # first: if the sessions cannot be ended (503), nothing is changed, no old cookie outlives a new password
        sessions.end_person(person_id)
    try:
        person = people.update(person_id, body)
    except PersonNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id}") from None
    except PeopleError as exc:
        raise _people_error(exc) from None
    if ends:
        sessions.end_person(person_id)  # and any begun meanwhile, with the old password
    return PersonOut.of(person)


@router.post(
    "/people/import",
    response_model=ImportOut,
    responses={**_WRITE_RESPONSES, 415: {"description": "Not text/csv"}},
    openapi_extra=CSV_BODY,
)
async def import_people(request: Request, user: Admin, people: PeopleDep) -> ImportOut:
    """Add the people of a CSV (header: username,name,unit,area,phone,role,password; username,
    name and role required), all or none. The body is capped like every body (limits.max_body_bytes)."""
    text = await csv_text(request)
    try:
        added = await run_in_threadpool(_import, people, text)
    except PeopleError as exc:
        raise _people_error(exc) from None
    return ImportOut(imported=len(added), usernames=added[:1000])


def _import(people: People, text: str) -> list[str]:
    return [p.username for p in people.import_csv(text, max_rows=MAX_IMPORT_ROWS)]


# -- a person's queue ----------------------------------------------------------------------------
@router.get("/me/cases", response_model=WorkOrderPage, responses={403: {"description": "Not a person logged in"}})
def my_cases(
    user: Anyone,
    orders: OrdersDep,
    finished: Annotated[bool, Query(description="Include closed and rejected cases")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> WorkOrderPage:
    """The caller's own cases (a person logged in): the late ones still to do first, then newest first."""
    if user.person is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "GET /me/cases is a person's queue: log in with POST /auth/login")
    now = time.time()
    items, total = orders.queue(user.person, now, limit=limit, offset=offset, finished=finished)
    return WorkOrderPage(items=[_out(orders, o, now) for o in items], total=total, limit=limit, offset=offset)

