"""cases/photos.py: only JPEG/PNG that decode are taken, bounded in pixels, re-encoded with the
EXIF location kept and every other tag stripped; stored with bounded disk use and pruned."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

import pytest
from PIL import Image

from gridworker.cases.photos import HANDLING, REPORT, PhotoError, PhotoStorageFull, PhotoStore, normalise_photo, prune_photos
from gridworker.incidents import IncidentStore
from gridworker.incidents.db import Database
from tests.reports.conftest import jpeg_with_exif


def _png(size: tuple[int, int], mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 128) if mode == "RGBA" else 7).save(out, "PNG")
    return out.getvalue()


def _png_bomb(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h pixels with a tiny (truncated) body: refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data, expect",
    [
        (jpeg_with_exif((4000, 3000)), contextlib.nullcontext()),
        (_png((500, 400)), contextlib.nullcontext()),
        (_png((300, 200), "P"), contextlib.nullcontext()),
        (b"GIF89a" + b"\0" * 50, pytest.raises(PhotoError, match="only JPEG and PNG")),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", pytest.raises(PhotoError, match="only JPEG and PNG")),
        (b"", pytest.raises(PhotoError)),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 300, pytest.raises(PhotoError, match="does not decode")),
        (_png_bomb(20_000, 20_000), pytest.raises(PhotoError, match="megapixels")),
        (_png_bomb(10_000, 10_000), pytest.raises(PhotoError, match="megapixels")),
        (jpeg_with_exif((300, 200))[:200], pytest.raises(PhotoError)),
    ],
    ids=["phone-jpeg", "png-alpha", "png-palette", "gif", "svg", "empty", "broken-jpeg", "png-bomb", "png-100mp", "truncated-jpeg"],
)
def test_only_decodable_jpeg_and_png_are_taken(data, expect):
    with expect:
        photo = normalise_photo(data, max_side=1280)
        assert photo.jpeg[:3] == b"\xff\xd8\xff" and max(photo.width, photo.height) <= 1280
        img = Image.open(io.BytesIO(photo.jpeg))
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (photo.width, photo.height)


def test_photos_do_not_depend_on_a_patched_image_open(monkeypatch):
    """Another library in the process may replace ``PIL.Image.open`` (Ultralytics does, and its
    replacement raised ModuleNotFoundError on a broken JPEG in CI): photos use the format readers."""

    def patched(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'pi_heif'")

    monkeypatch.setattr(Image, "open", patched)
    assert normalise_photo(jpeg_with_exif((640, 480)), max_side=320).width == 320
    assert normalise_photo(_png((50, 40)), max_side=320).width == 50
    with pytest.raises(PhotoError, match="does not decode"):
        normalise_photo(b"\xff\xd8\xff\xe0" + b"\x00" * 300)


def test_the_location_is_kept_and_everything_else_is_stripped():
    src = jpeg_with_exif((4000, 3000), lon=121.4737, lat=31.2304)
    assert b"SecretModel" in src and b"PhoneMaker" in src
    photo = normalise_photo(src, max_side=1600)
    assert (photo.width, photo.height) == (1600, 1200)
    assert photo.lon == pytest.approx(121.4737, abs=1e-5) and photo.lat == pytest.approx(31.2304, abs=1e-5)
    assert b"SecretModel" not in photo.jpeg and b"PhoneMaker" not in photo.jpeg and b"2026:12:03" not in photo.jpeg
    exif = Image.open(io.BytesIO(photo.jpeg)).getexif()
    assert set(exif) == {0x8825}
    assert set(exif.get_ifd(0x8825)) == {1, 2, 3, 4}  # latitude, longitude and their refs; no altitude, no time
    again = normalise_photo(photo.jpeg, max_side=1600)  # the written location reads back the same
    assert again.lon == pytest.approx(photo.lon, abs=1e-6) and again.lat == pytest.approx(photo.lat, abs=1e-6)


def test_a_photo_without_a_location_has_none_and_no_exif():
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (1, 2, 3)).save(out, "JPEG")
    photo = normalise_photo(out.getvalue())
    assert photo.lon is None and photo.lat is None and len(Image.open(io.BytesIO(photo.jpeg)).getexif()) == 0


def test_orientation_is_applied_to_the_pixels():
    out = io.BytesIO()
    img = Image.new("RGB", (800, 400), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    img.save(out, "JPEG", exif=exif.tobytes())
    photo = normalise_photo(out.getvalue())
    assert (photo.width, photo.height) == (400, 800)


@pytest.fixture
def photos(tmp_path):
    db = Database.open(f"sqlite:///{tmp_path / 'p.db'}")
    store = IncidentStore(db)
    inc = store.open(camera_id="report:resident", camera_name="", site="", zone_id="resident", rule_id="r1", type="exposed_garbage",
                     at=1000.0, count=1, summary="", details={}, snapshot=None)
    yield PhotoStore(db, tmp_path / "photos", max_total_bytes=10_000_000, max_per_case=3, min_free_bytes=0), inc.id
    db.close()


def test_store_bounds_dedupes_and_prunes(photos, tmp_path):
    store, inc = photos
    a = normalise_photo(jpeg_with_exif((800, 600), color=(200, 10, 10)))
    b = normalise_photo(jpeg_with_exif((800, 600), color=(10, 200, 10)))
    first = store.add(inc, REPORT, a, at=1000.0)
    assert store.add(inc, REPORT, a, at=1001.0).id == first.id  # a retried upload: stored once
    handled = store.add(inc, HANDLING, a, at=1002.0)  # the same picture as another kind is its own photo
    assert handled.id != first.id
    store.add(inc, HANDLING, b, at=1003.0)
    with pytest.raises(PhotoStorageFull) as full:
        store.add(inc, HANDLING, normalise_photo(jpeg_with_exif((640, 480), color=(1, 1, 200))))
    assert full.value.status == 409
    files = sorted(p.name for p in (tmp_path / "photos").iterdir())
    assert len(files) == 3 and all(f.endswith(".jpg") for f in files)
    assert store.read(first) == a.jpeg
    tight = PhotoStore(store.db, store.photos_dir, max_total_bytes=store.total_bytes(), max_per_case=99, min_free_bytes=0)
    with pytest.raises(PhotoStorageFull) as over:
        tight.add(inc, HANDLING, normalise_photo(jpeg_with_exif((640, 480), color=(1, 1, 200))))
    assert over.value.status == 507
    # retention: the one older than the age goes (file and row), then the oldest while over the total
    deleted, freed = prune_photos(store, now=1000.0 + 86_400, max_age_s=86_400 - 2.5, max_total_bytes=None)
    assert deleted == 2 and freed > 0 and [p.id for p in store.list(inc)] == [3]
    deleted, _ = prune_photos(store, now=1e9, max_age_s=None, max_total_bytes=0)
    assert deleted == 1 and store.list(inc) == [] and list((tmp_path / "photos").iterdir()) == []
