"""Fixtures of the reports and phone-page API tests: a real Service (no cameras, SQLite in a
temporary folder, the real catalogue, a real outbox) behind the real app, and API keys by role."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image, ExifTags

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.service import Service
from gridworker.settings import Settings
from tests.factories import ParkedCarDetector, local_client


def jpeg_with_exif(size: tuple[int, int] = (2400, 1800), *, lon: float = 121.4737, lat: float = 31.2304, color: tuple[int, int, int] = (90, 140, 60)) -> bytes:
    """A real JPEG as a phone writes one: EXIF with the maker, model, time, orientation and a GPS location."""
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 97):  # some structure, so the JPEG is not trivially small
        img.paste((200, 40, 40), (x, 0, x + 20, size[1]))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "SecretModel X"
    exif[ExifTags.Base.DateTime] = "2026:12:03 09:15:00"
    exif[ExifTags.Base.Orientation] = 1
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: _dms(lat),
        ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: _dms(lon),
        ExifTags.GPS.GPSAltitude: 12.5, ExifTags.GPS.GPSTimeStamp: (9.0, 15.0, 0.0),
    }
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def street_jpeg(size: tuple[int, int] = (3000, 2000), color: tuple[int, int, int] = (90, 140, 60)) -> bytes:
    """The demo's bus.jpg (a real street photo) with a phone's EXIF when the ultralytics wheel is
    installed, else :func:`jpeg_with_exif`'s synthetic picture."""
    from gridworker.assets import ultralytics_asset

    bus = ultralytics_asset("bus.jpg")
    if bus is None:
        return jpeg_with_exif(size, color=color)
    with Image.open(bus) as img:
        base = io.BytesIO()
        img.convert("RGB").save(base, "JPEG")
    decoded = Image.open(io.BytesIO(base.getvalue()))
    exif = Image.open(io.BytesIO(jpeg_with_exif((8, 8)))).getexif()
    out = io.BytesIO()
    decoded.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _dms(v: float) -> tuple[float, float, float]:
    d = int(v)
    m = int((v - d) * 60)
    return (float(d), float(m), round((v - d - m / 60) * 3600, 3))


@dataclass
class Env:
    service: Service
    client: Any
    keys: dict[str, str] = field(default_factory=dict)

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


def make_env(tmp_path, **reports: object) -> Iterator[Env]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path / 'reports.db'}"}, evidence={"clips": False},
        forwarding={"destinations": [{"kind": "webhook", "name": "city", "url": "http://127.0.0.1:9/hook", "secret": "whsec-reports", "timeout_s": 1, "connect_timeout_s": 1}],
                    "retry": {"base_s": 30, "cap_s": 60, "max_attempts": 2}},
        reports=reports,
    )
    service = Service(settings, ParkedCarDetector())
    keys = {}
    for role, unit in (("admin", None), ("operator", None), ("viewer", None), ("supervisor", None)):
        _, keys[role] = create_key(service.keys, name=f"{role}-t", role=role, unit=unit)
    _, keys["grid"] = create_key(service.keys, name="grid-handler", role="unit_handler", unit="community-grid")
    _, keys["traffic"] = create_key(service.keys, name="traffic-handler", role="unit_handler", unit="traffic-squad")
    with local_client(create_app(lambda: service)) as client:
        yield Env(service, client, keys)


@pytest.fixture
def env(tmp_path) -> Iterator[Env]:
    yield from make_env(tmp_path)
