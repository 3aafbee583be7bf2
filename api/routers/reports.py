"""Reports from people over HTTP (issue 15, docs/people.md "Reports from residents and 12345").

* ``POST /reports``: the intake API for the 12345 platform and other systems (an API key of
  an operator or supervisor): JSON with the type, text, position, the reporter's contact and
  photos as base64 (no URLs: nothing is fetched on a caller's behalf). The platform's own id
  (``external_id``) makes a repeat harmless: the first report's case is returned.
* ``/report/``: the residents' page (static files in ``api/report_page/``), its types
  (``GET /report/types``), its endpoint ``POST /report/submit`` (multipart, no key: rate
  limited per client address and in total, capped in size), and the receipt's status
  (``GET /report/receipts/{code}`` as JSON, ``/report/status/{code}`` as a page).

Both open the case through the one incident writer (``ReportIntake`` →
``IncidentManager.resident_report``). The reporter's contact is in no response but the
receipt's absence of it: it stays in the ``reports`` table.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.dataclasses import dataclass
from starlette.concurrency import run_in_threadpool

from gridworker.cases.photos import Photo, PhotoError, PhotoStorageFull
from gridworker.cases.workflow import OPERATOR, SUPERVISOR, Actor
from gridworker.incidents.reports import ReportError, ReportIn, ReportIntake, ReportProgress, ReportReceipt, ReportStatus

from ..auth import require
from ..bodies import multipart_body, read_uploads
from ..deps import ReportsDep, wiring
from ..ratelimit import ClientAndTotalLimit, client_key
from ..errors import Responses
from ..schemas import utc

REPORT_DIR = FilePath(__file__).resolve().parent.parent / "report_page"

router = APIRouter(tags=["reports"])
Intake = Annotated[Actor, Depends(require(OPERATOR, SUPERVISOR))]
ReceiptCode = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The report's receipt code")]
Base64Photo = Annotated[str, StringConstraints(max_length=12_000_000)]

_REFUSALS: Responses = {
    413: {"description": "A photo or the request is too large"},
    415: {"description": "A photo is not a JPEG or PNG"},
    422: {"description": "A bad field: unknown type, no text and no photo, a position out of range"},
    507: {"description": "Photo storage is full"},
}


class PositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lon: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False, description="WGS84 longitude, degrees east")
    lat: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False, description="WGS84 latitude, degrees north")


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=100)
    phone: str = Field("", max_length=40)


class ReportApiIn(BaseModel):
    """A report from the 12345 platform or another system."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, description="An incident type of the catalogue (GET /catalogue)")
    text: str = Field("", max_length=2000)
    channel: str = Field("12345", pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Where the report comes from (not 'resident')")
    external_id: str = Field("", max_length=64, description="The platform's own id: a repeat returns the first report's case")
    position: PositionIn | None = None
    contact: ContactIn | None = Field(None, description="The reporter: stored for a call back, never shown to viewers")
    photos_base64: list[Base64Photo] = Field(default_factory=list, max_length=12, description="JPEG or PNG photos, base64")
    photo_urls: list[str] | None = Field(None, max_length=12, description="Refused: photos are never fetched from URLs; send photos_base64")


class ReceiptOut(BaseModel):
    receipt: str = Field(description="The receipt code: the report's status at status_url (keep it; it is shown once)")
    status_url: str
    incident_id: int | None = Field(None, description="The case (intake API only)")
    report_id: int | None = Field(None, description="The report (intake API only)")
    duplicate: bool = Field(False, description="The platform's id was received before: its case is returned, nothing new opened")


class ReportTypeOut(BaseModel):
    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class ReportStatusOut(ReportProgress[datetime]):
    # declared again for the schema: the state for its description, the times as pydantic does not read the base's type argument
    state: Annotated[str, Field(description="received, or the case's state: detected, dispatched, accepted, handled, closed, rejected, escalated")]
    received_at: datetime
    updated_at: datetime
    handled_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, found: ReportStatus) -> ReportStatusOut:
        return cls(
            type=found.type, type_name_zh=found.type_name_zh, type_name_en=found.type_name_en, state=found.state,
            received_at=utc(found.received_at), updated_at=utc(found.updated_at), handled_at=utc(found.handled_at), closed_at=utc(found.closed_at),
        )


def _http(exc: ReportError | PhotoError | PhotoStorageFull) -> HTTPException:
    return HTTPException(exc.status, exc.reason)


def _receipt(r: ReportReceipt, *, internal: bool) -> ReceiptOut:
    return ReceiptOut(
        receipt=r.code, status_url=f"/report/status/{r.code}", incident_id=r.incident_id if internal else None,
        report_id=r.report_id if internal else None, duplicate=r.duplicate,
    )


def _normalise(intake: ReportIntake, uploads: list[bytes]) -> list[Photo]:
    try:
        return intake.normalise(uploads)
    except (ReportError, PhotoError) as exc:
        raise _http(exc) from None


def _submit(intake: ReportIntake, channel: str, report: ReportIn, photos: list[Photo], public: bool) -> ReportReceipt:
    try:
        return intake.submit(channel, report, photos, public=public)
    except (ReportError, PhotoStorageFull) as exc:
        raise _http(exc) from None


def _inline_defs(schema: dict[str, object]) -> dict[str, object]:
    """``schema`` (pydantic's, of a model without cycles) with each ``$ref`` to its ``$defs``
    replaced by the definition: a request body given in ``openapi_extra`` stands alone."""
    defs = schema.pop("$defs", {})

    def inline(node: object) -> object:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and isinstance(defs, dict) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {k: inline(v) for k, v in schema.items()}


#: ``POST /reports`` reads its JSON itself (:func:`_report_body`); this documents it.
_REPORT_JSON: dict[str, object] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _inline_defs(ReportApiIn.model_json_schema())}}}
}


async def _report_body(request: Request) -> ReportApiIn:
    """The body of ``POST /reports``, read and parsed only once the key is checked.

    A route's pydantic body is read and parsed before its dependencies run, authentication
    included, and this route's body cap is large (48 MiB, ``limits.body_bytes_by_path``): a
    caller with no key would make the service hold and parse that much before its 401. Read
    here, after the route's key dependency passed, the body is still capped while it streams
    (api/limits.py). A 422 as FastAPI writes it (``loc`` starting with ``"body"``)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (media.startswith("application/") and (media == "application/json" or media.endswith("+json"))):
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "msg": "send the report as application/json"}])
    raw = await request.body()
    try:
        return await run_in_threadpool(ReportApiIn.model_validate_json, raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None


@router.post(
    "/reports", response_model=ReceiptOut, status_code=status.HTTP_201_CREATED, responses=_REFUSALS, openapi_extra=_REPORT_JSON
)
async def intake_report(request: Request, user: Intake, intake: ReportsDep) -> ReceiptOut:
    """A report from the 12345 platform or another system (an operator's or supervisor's key):
    opens a graded, routed case. The contact is stored, never shown to viewers. The JSON body
    (``ReportApiIn``) is read only after the key is checked."""
    body = await _report_body(request)
    return await run_in_threadpool(_intake, intake, body)


def _intake(intake: ReportIntake, body: ReportApiIn) -> ReceiptOut:
    if body.photo_urls:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "photos are never fetched from URLs: send them as photos_base64")
    if body.channel == "resident":
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the 'resident' channel is the public page's")
    uploads = []
    for i, text in enumerate(body.photos_base64):
        try:
            uploads.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"photos_base64[{i}] is not valid base64") from None
    contact = body.contact or ContactIn()
    report = ReportIn(
        type=body.type, text=body.text, lon=body.position.lon if body.position else None, lat=body.position.lat if body.position else None,
        contact_name=contact.name, contact_phone=contact.phone, external_id=body.external_id,
    )
    photos = _normalise(intake, uploads)
    return _receipt(_submit(intake, body.channel, report, photos, False), internal=True)


# -- the residents' page ----------------------------------------------------------------------
def _public(intake: ReportIntake) -> ReportIntake:
    if not intake.config.public:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "public reports are switched off")
    return intake


@router.get("/report/types", response_model=list[ReportTypeOut])
def report_types(intake: ReportsDep) -> list[ReportTypeOut]:
    """What residents may report (no key)."""
    return [ReportTypeOut(code=k.code, name_zh=k.name_zh, name_en=k.name_en) for k in _public(intake).public_types()]


_REPORT_FORM = multipart_body(
    {"type": {"type": "string", "maxLength": 64}, "text": {"type": "string", "maxLength": 2000}, "lon": {"type": "number"},
     "lat": {"type": "number"}, "contact_name": {"type": "string", "maxLength": 100}, "contact_phone": {"type": "string", "maxLength": 40}},
    files="photo", max_files=12,
)


@router.post(
    "/report/submit", response_model=ReceiptOut, status_code=status.HTTP_201_CREATED,
    responses={**_REFUSALS, 429: {"description": "Too many reports"}}, openapi_extra=_REPORT_FORM,
)
async def submit_public(request: Request, intake: ReportsDep) -> ReceiptOut:
    """A resident's report (no key), multipart: ``type``, ``text``, ``lon``, ``lat``,
    ``contact_name``, ``contact_phone`` and up to ``reports.max_photos`` files ``photo``.
    Rate limited per client address and in total; answers the receipt code."""
    cfg = _public(intake).config
    wired = wiring(request.app)
    if wired.report_rate is None:
        wired.report_rate = ClientAndTotalLimit(cfg.public_per_client_per_hour, cfg.public_per_hour, window_s=3600.0)
    wait = wired.report_rate.hit(client_key(request.client.host if request.client else None), time.time())
    if wait is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many reports; try again later", headers={"Retry-After": str(int(wait) + 1)})
    texts, uploads = await read_uploads(request, "photo", max_files=cfg.max_photos, max_bytes=int(cfg.photos.max_upload_mb * 1_000_000))
    fields = {k: v for k, v in texts.items() if v.strip() != ""}
    try:
        report = ReportIn.model_validate({k: fields[k] for k in ("type", "text", "lon", "lat", "contact_name", "contact_phone") if k in fields})
    except ValidationError as exc:
        where = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"bad field(s): {where}") from None
    if unknown := sorted(set(texts) - {"type", "text", "lon", "lat", "contact_name", "contact_phone"}):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown field(s): {', '.join(k[:40] for k in unknown[:5])}")
    photos = await run_in_threadpool(_normalise, intake, uploads)
    receipt = await run_in_threadpool(_submit, intake, "resident", report, photos, True)
    return _receipt(receipt, internal=False)


@router.get("/report/receipts/{code}", response_model=ReportStatusOut, responses={404: {"description": "No report has this receipt"}})
def receipt_status(code: ReceiptCode, intake: ReportsDep) -> ReportStatusOut:
    """The status of the report with this receipt code (no key; nothing but its own progress)."""
    found = intake.book.status(code, intake.catalogue)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no report has this receipt code")
    return ReportStatusOut.of(found)


@router.get("/report/status/{code}", include_in_schema=False)
def receipt_page(code: ReceiptCode) -> FileResponse:
    """The status page (it reads its code from the address and asks ``/report/receipts``)."""
    return FileResponse(REPORT_DIR / "status.html", media_type="text/html", headers={"Cache-Control": "no-store"})


def mount_report_page(app: FastAPI) -> None:
    """Serve the residents' page at ``/report/`` (after the routers: ``/report/...`` routes match first)."""
    app.mount("/report", StaticFiles(directory=REPORT_DIR, html=True), name="report")
