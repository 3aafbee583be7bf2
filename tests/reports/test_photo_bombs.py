"""cases/photos.py under hostile photos: what is decoded is bounded in pixels (a PNG or a
progressive JPEG over 16 MP is refused before its pixels are decoded; a large baseline JPEG is
decoded at a reduced scale) and in concurrency (at most the gate's slots decode at once, a photo
waiting longer gets 503) — on the keyless residents' form, the handler's photos and ``handle``."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib

import pytest
from PIL import ExifTags, Image

from gridworker.cases import photos
from gridworker.cases.photos import PhotoBusy, PhotoError, PhotoGate, normalise_photo
from gridworker.cases.workflow import SUPERVISOR, Actor, Busy, Invalid, Workflow
from tests.reports.conftest import jpeg_with_exif

BOSS = Actor("sup-t", SUPERVISOR)  # the photo is checked before the case is even looked up

def _flat_png(w: int, h: int, *, rgba: bool = True) -> bytes:
    """A valid single-colour PNG of w x h pixels, a few hundred KB however large (as the
    reviewer's 7071 x 7071 RGBA one: 212 KB that decode to 200 MB), built without the pixels."""
    bpp = 4 if rgba else 3
    z = zlib.compressobj(9)
    row = b"\0" + bytes((10, 20, 30, 128)[:bpp]) * w
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6 if rgba else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg(size: tuple[int, int], **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(out, "JPEG", quality=5, **save)
    return out.getvalue()


def _blank_jpeg(w: int, h: int, *, one_scan: bool) -> bytes:
    """A valid baseline (SOF0) 3-colour JPEG of w x h flat blocks, written without pixels: one
    Huffman code (length 1, symbol 0) serves as every DC difference and every AC end-of-block,
    so a block is 2 bits. ``one_scan``: the colours interleaved in one scan (what cameras and
    Pillow write); otherwise each colour in a scan of its own (what the reviewer's bomb does)."""

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload

    one_code = bytes([1] + [0] * 15) + b"\x00"
    head = segment(0xDB, b"\x00" + bytes([1] * 64))
    head += segment(0xC0, b"\x08" + struct.pack(">HH", h, w) + b"\x03" + b"".join(bytes((c, 0x11, 0)) for c in (1, 2, 3)))
    head += segment(0xC4, b"\x00" + one_code) + segment(0xC4, b"\x10" + one_code)
    blocks = -(-w // 8) * -(-h // 8)
    if one_scan:
        scans = segment(0xDA, b"\x03" + b"".join(bytes((c, 0)) for c in (1, 2, 3)) + b"\x00\x3f\x00") + bytes(-(-blocks * 6 // 8))
    else:
        scans = b"".join(segment(0xDA, bytes((1, c, 0)) + b"\x00\x3f\x00") + bytes(-(-blocks * 2 // 8)) for c in (1, 2, 3))
    return b"\xff\xd8" + head + scans + b"\xff\xd9"


@pytest.fixture(scope="module")
def multi_scan_jpeg() -> bytes:
    data = _blank_jpeg(8000, 6000, one_scan=False)  # 48 MP in ~560 KB: ~290 MB of coefficients held whole
    assert len(data) < 1_000_000
    return data


def test_a_multi_scan_baseline_jpeg_is_refused_before_it_is_decoded_and_a_one_scan_one_is_scaled(multi_scan_jpeg, monkeypatch):
    seen = _decoded_sizes(monkeypatch)
    with pytest.raises(PhotoError, match="16 megapixels are decoded for a progressive or multi-scan JPEG"):
        normalise_photo(multi_scan_jpeg, max_side=1600)
    assert seen == []
    # the same picture with its colours in one scan decodes at 1/4 (the check reads the markers, not the size)
    photo = normalise_photo(_blank_jpeg(8000, 6000, one_scan=True), max_side=1600)
    assert (photo.width, photo.height) == (1600, 1200) and seen == [(2000, 1500)]


@pytest.fixture(scope="module")
def reviewer_png() -> bytes:
    data = _flat_png(7071, 7071)
    assert len(data) < 300_000  # under every upload cap
    return data


@pytest.fixture
def busy_gate(env):
    """The service's one photo gate, every slot taken (and a short wait)."""
    gate = env.service.photos.gate
    assert env.service.workflow.photo_gate is gate  # one gate for every photo the service decodes
    gate.wait_s = 0.05
    with gate.slot(), gate.slot():
        yield gate


def _decoded_sizes(monkeypatch) -> list[tuple[int, int]]:
    """Records the size each photo is decoded at."""
    seen: list[tuple[int, int]] = []
    real = photos._shrunk

    def spy(img: Image.Image, target: tuple[int, int]) -> Image.Image:
        seen.append(img.size)
        return real(img, target)

    monkeypatch.setattr(photos, "_shrunk", spy)
    return seen


# -- one decode is bounded -----------------------------------------------------------------------
def test_the_reviewers_50_mp_png_is_refused_before_it_is_decoded(reviewer_png, monkeypatch):
    seen = _decoded_sizes(monkeypatch)
    gate = PhotoGate(slots=1, wait_s=0.0)
    with gate.slot():  # refused on its header: it never waits for (or takes) a decoding slot
        with pytest.raises(PhotoError, match="at most 16 megapixels are decoded for a PNG") as err:
            normalise_photo(reviewer_png, max_side=1600, max_input_pixels=50_000_000, gate=gate)
    assert err.value.status == 422 and not isinstance(err.value, PhotoBusy) and seen == []


@pytest.mark.parametrize("side, ok", [(4000, True), (4001, False)], ids=["16mp-taken", "over-16mp-refused"])
def test_a_png_is_taken_up_to_16_mp(side, ok):
    data = _flat_png(side, side)
    if ok:
        photo = normalise_photo(data, max_side=1600)
        assert (photo.width, photo.height) == (1600, 1600)
        with Image.open(io.BytesIO(photo.jpeg)) as img:  # the transparency is flattened on white
            r, g, b = img.convert("RGB").getpixel((800, 800))
            assert abs(r - (10 + 255) // 2) < 8 and abs(b - (30 + 255) // 2) < 8
    else:
        with pytest.raises(PhotoError, match="megapixels"):
            normalise_photo(data, max_side=1600)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_a_progressive_one_is_refused(monkeypatch):
    seen = _decoded_sizes(monkeypatch)
    photo = normalise_photo(_jpeg((7000, 7000)), max_side=1600)  # 49 MP, baseline: decoded at 1/4
    assert (photo.width, photo.height) == (1600, 1600) and seen == [(1750, 1750)]
    with pytest.raises(PhotoError, match="16 megapixels are decoded for a progressive or multi-scan JPEG"):
        normalise_photo(_jpeg((4200, 4200), progressive=True), max_side=1600)  # libjpeg holds it whole
    # a stored size so large the JPEG cannot be decoded small enough is refused too
    with pytest.raises(PhotoError, match="smallest decoding scale"):
        normalise_photo(_jpeg((4200, 4200)), max_side=4096)
    assert len(seen) == 1


def test_a_phone_photo_keeps_working_decoded_at_half_scale_and_upright(monkeypatch):
    """A 12 MP phone photo held sideways (EXIF orientation 6): decoded at 2016 x 1512, turned
    upright, scaled to 1200 x 1600; of its EXIF only the location survives."""
    seen = _decoded_sizes(monkeypatch)
    img = Image.new("RGB", (4032, 3024), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 1000, 1000))  # the sensor's top-left corner is red
    exif = Image.open(io.BytesIO(jpeg_with_exif((8, 8)))).getexif()
    exif[ExifTags.Base.Orientation] = 6  # the camera was turned 90° clockwise
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    photo = normalise_photo(out.getvalue(), max_side=1600)
    assert seen == [(2016, 1512)] and (photo.width, photo.height) == (1200, 1600)
    assert photo.lat is not None and abs(photo.lat - 31.2304) < 1e-3
    with Image.open(io.BytesIO(photo.jpeg)) as result:
        assert result.getpixel((1150, 50))[0] > 200 and result.getpixel((50, 50))[2] > 200  # red now top-right
        assert set(result.getexif()) == {ExifTags.IFD.GPSInfo}


def test_a_png_turned_by_its_exif_is_reduced_then_turned():
    img = Image.new("RGB", (4000, 3000), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 1000, 1000))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    out = io.BytesIO()
    img.save(out, "PNG", exif=exif.tobytes())
    photo = normalise_photo(out.getvalue(), max_side=1600)
    assert (photo.width, photo.height) == (1200, 1600)
    with Image.open(io.BytesIO(photo.jpeg)) as result:
        assert result.getpixel((1150, 50))[0] > 200 and result.getpixel((50, 50))[2] > 200


# -- decodes at once are bounded ------------------------------------------------------------------
def test_the_services_one_gate_has_two_slots(env):
    gate = env.service.photos.gate
    assert gate.slots == 2 and gate.wait_s > 0 and env.service.workflow.photo_gate is gate
    with pytest.raises(ValueError):
        PhotoGate(slots=0)


def test_the_gate_and_its_pixel_bound_come_from_the_settings(tmp_path):
    """`reports.photos.decoding`: slots, wait_s, max_megapixels make the service's one gate, and
    the bound holds on the keyless form as on the handler's photos."""
    from tests.reports.conftest import make_env

    for env in make_env(tmp_path, photos={"decoding": {"slots": 3, "wait_s": 2.5, "max_megapixels": 4}}):
        gate = env.service.photos.gate
        assert (gate.slots, gate.wait_s, gate.max_decoded_pixels) == (3, 2.5, 4_000_000)
        assert env.service.workflow.photo_gate is gate
        r = _report(env, _flat_png(2001, 2001))  # 4.004 MP: over this site's bound, under the default 16
        assert r.status_code == 422 and "at most 4 megapixels are decoded" in r.json()["detail"]
        assert normalise_photo(_flat_png(2000, 2000), max_side=1600, gate=gate).width == 1600


def test_no_more_photos_decode_at_once_than_the_gate_has_slots(monkeypatch):
    gate = PhotoGate(slots=2, wait_s=30.0)
    lock = threading.Lock()
    running, most = 0, 0
    real = photos._shrunk

    def slow(img: Image.Image, target: tuple[int, int]) -> Image.Image:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        try:
            return real(img, target)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(photos, "_shrunk", slow)
    data = jpeg_with_exif((640, 480))
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(normalise_photo(data, gate=gate).width)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [640] * 8 and most == 2


def test_a_photo_that_waits_too_long_for_a_slot_is_refused_with_503():
    gate = PhotoGate(slots=1, wait_s=0.05)
    started = time.monotonic()
    with gate.slot(), pytest.raises(PhotoBusy, match="try again") as err:
        normalise_photo(jpeg_with_exif((640, 480)), gate=gate)
    assert err.value.status == 503 and time.monotonic() - started < 5


# -- through the routes ---------------------------------------------------------------------------
def _report(env, png: bytes):
    return env.client.post("/report/submit", data={"type": "exposed_garbage", "text": "bins"}, files=[("photo", ("p.png", png, "image/png"))])


def test_the_keyless_report_form_refuses_the_reviewers_png(env, reviewer_png):
    r = _report(env, reviewer_png)
    assert r.status_code == 422 and "megapixels" in r.json()["detail"]
    assert env.client.get("/workorders", headers=env.h("operator")).json()["total"] == 0


def test_the_keyless_report_form_refuses_a_multi_scan_jpeg(env, multi_scan_jpeg):
    r = _report(env, multi_scan_jpeg)
    assert r.status_code == 422 and "multi-scan" in r.json()["detail"]


def test_the_keyless_report_form_answers_503_when_every_slot_stays_busy(env, busy_gate):
    r = _report(env, _flat_png(64, 48))
    assert r.status_code == 503 and "try again" in r.json()["detail"]
    assert env.client.get("/workorders", headers=env.h("operator")).json()["total"] == 0


def test_handle_re_encodes_its_photo_under_the_same_bounds(env, monkeypatch):
    wf: Workflow = env.service.workflow
    seen = _decoded_sizes(monkeypatch)
    with pytest.raises(Invalid, match="progressive or multi-scan JPEG"):
        wf.handle(1, BOSS, note="x", photo=_jpeg((4200, 4200), progressive=True))
    gate = wf.photo_gate
    gate.wait_s = 0.05
    with gate.slot(), gate.slot(), pytest.raises(Busy) as err:
        wf.handle(1, BOSS, note="x", photo=jpeg_with_exif((64, 48)))
    assert err.value.status == 503 and seen == []


def test_handle_over_http_answers_503_when_every_slot_stays_busy(env, busy_gate):
    r = env.client.post("/report/submit", files={"type": (None, "exposed_garbage"), "text": (None, "bins")})  # no photo
    assert r.status_code == 201, r.text
    case = env.client.get("/workorders", headers=env.h("operator")).json()["items"][0]["incident_id"]
    env.client.post(f"/workorders/{case}/dispatch", json={"unit": "community-grid"}, headers=env.h("operator"))
    env.client.post(f"/workorders/{case}/accept", headers=env.h("grid"))
    photo = base64.b64encode(jpeg_with_exif((64, 48))).decode()
    r = env.client.post(f"/workorders/{case}/handle", json={"note": "cleared", "photo_base64": photo}, headers=env.h("grid"))
    assert r.status_code == 503 and "try again" in r.json()["detail"]
    assert env.client.get(f"/workorders/{case}", headers=env.h("operator")).json()["state"] == "accepted"
