"""IoT devices over HTTP (admins only): list, register, import a CSV, remove; and the
device types the service has mappings for (docs/iot.md).

Devices added here are saved in the database and come back after a restart; devices of the
config file are listed (``from_file``) but changed only in the file. Bodies are capped by
the app's body limit (``limits.max_body_bytes``) like every route's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gridworker.iot import DeviceConfig, DeviceError, DeviceExists, DeviceLimitReached, DeviceNotFound, DeviceView, IotService
from gridworker.iot.config import DEVICE_ID_PATTERN

from ..auth import ADMINISTER
from ..bodies import CSV_BODY, csv_text
from ..deps import ServiceDep
from ..errors import Responses
from ..schemas import utc

router = APIRouter(prefix="/devices", tags=["iot devices"], dependencies=[ADMINISTER])

DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="Device id")]
_NOT_FOUND: Responses = {404: {"description": "No such device"}}


class DeviceOut(DeviceConfig):
    """A device, where it comes from and what the ingest knows of it now."""

    source: str = Field(description="The source of its incidents (their camera_id): iot:<id>")
    from_file: bool = Field(description="Listed in the config file (change it there)")
    last_seen: datetime | None = Field(description="Its last message (or when watching it began)")
    offline: bool
    alarms: list[str] = Field(description="Alarms that hold now (their cases are open)")

    @classmethod
    def of(cls, view: DeviceView) -> DeviceOut:
        return cls(
            **view.config.model_dump(),
            source=view.config.source_id,
            from_file=view.from_file,
            last_seen=utc(view.last_seen),
            offline=view.offline,
            alarms=list(view.alarms),
        )


class AlarmOut(BaseModel):
    id: str
    name_zh: str
    name_en: str
    catalogue: str = Field(description="The incident type its cases get")
    codes: list[str] = Field(description="The device's own codes for it")


class DeviceTypeOut(BaseModel):
    type: str
    name_zh: str
    name_en: str
    alarms: list[AlarmOut]


class ImportOut(BaseModel):
    imported: int
    devices: list[str]


def _iot(service: ServiceDep) -> IotService:
    return service.iot


@router.get("", response_model=list[DeviceOut])
def list_devices(service: ServiceDep) -> list[DeviceOut]:
    return [DeviceOut.of(v) for v in _iot(service).views()]


@router.get("/types", response_model=list[DeviceTypeOut])
def device_types(service: ServiceDep) -> list[DeviceTypeOut]:
    """The device types with a mapping file, and their alarms."""
    return [
        DeviceTypeOut(
            type=m.type, name_zh=m.name_zh, name_en=m.name_en,
            alarms=[AlarmOut(id=a.id, name_zh=a.name_zh, name_en=a.name_en, catalogue=a.catalogue, codes=a.codes) for a in m.alarms],
        )
        for m in sorted(_iot(service).mappings.values(), key=lambda m: m.type)
    ]


@router.post(
    "",
    response_model=DeviceOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "Device id taken, or iot.max_devices reached"}, 422: {"description": "Invalid, or a type without a mapping"}},
)
def add_device(device: DeviceConfig, service: ServiceDep) -> DeviceOut:
    """Register a device now; it is saved and survives restarts."""
    iot = _iot(service)
    try:
        iot.add([device])
    except (DeviceExists, DeviceLimitReached) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except DeviceError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return DeviceOut.of(iot.view(device))


@router.post(
    "/import",
    response_model=ImportOut,
    responses={409: {"description": "An id is taken, or iot.max_devices reached"}, 422: {"description": "A bad header or row (named by line)"}},
    openapi_extra=CSV_BODY,
)
async def import_devices(
    request: Request, service: ServiceDep, replace: Annotated[bool, Query(description="Replace devices added before with the same id")] = False
) -> ImportOut:
    """Register the devices of a CSV file (a header row: id,type,name,site,unit,longitude,latitude,cameras,heartbeat_s;
    cameras separated by ';'), all or none."""
    text = await csv_text(request)
    iot = _iot(service)
    try:
        added = await run_in_threadpool(iot.import_csv, text, replace=replace)
    except (DeviceExists, DeviceLimitReached) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except DeviceError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return ImportOut(imported=len(added), devices=[d.id for d in added][:1000])


@router.get("/{device_id}", response_model=DeviceOut, responses=_NOT_FOUND)
def get_device(device_id: DeviceId, service: ServiceDep) -> DeviceOut:
    iot = _iot(service)
    device = iot.registry.get(device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    return DeviceOut.of(iot.view(device))


@router.delete(
    "/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_NOT_FOUND, 409: {"description": "The device is in the config file"}},
)
def remove_device(device_id: DeviceId, service: ServiceDep) -> Response:
    """Forget a device added through the API or an import; its open cases close."""
    try:
        _iot(service).remove(device_id)
    except DeviceNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}") from None
    except DeviceError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
