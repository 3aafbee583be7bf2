"""Places: WGS84 positions validated, areas looked up by position, the GCJ-02 shift, and the
config's camera positions and areas."""

import contextlib
import math

import pytest
from pydantic import ValidationError

from gridworker.cases.places import Area, AreaMap, Position, gcj02_to_wgs84, reported_position, wgs84_to_gcj02
from gridworker.settings import Settings


@pytest.mark.parametrize(
    ("given", "expected", "raises"),
    [
        ({"lon": 121.47, "lat": 31.23}, (121.47, 31.23), contextlib.nullcontext()),
        ([121.47, 31.23], (121.47, 31.23), contextlib.nullcontext()),
        ({"lon": -180, "lat": 90}, (-180.0, 90.0), contextlib.nullcontext()),
        ({"lon": 180.0001, "lat": 0}, None, pytest.raises(ValidationError)),
        ({"lon": 0, "lat": -90.5}, None, pytest.raises(ValidationError)),
        ({"lon": math.nan, "lat": 0}, None, pytest.raises(ValidationError)),
        ({"lon": 0, "lat": math.inf}, None, pytest.raises(ValidationError)),
        ({"lon": "east", "lat": 0}, None, pytest.raises(ValidationError)),
        ([1.0, 2.0, 3.0], None, pytest.raises(ValidationError)),
        ({"lon": 1, "lat": 2, "alt": 3}, None, pytest.raises(ValidationError)),
    ],
)
def test_position_is_validated(given, expected, raises):
    with raises:
        p = Position.model_validate(given)
        assert (p.lon, p.lat) == expected


# an L-shaped (concave) area and a square that overlaps its corner
L_SHAPE = Area(id="l", name="L", polygon=[(0, 0), (4, 0), (4, 1), (1, 1), (1, 4), (0, 4)])
SQUARE = Area(id="sq", name="Square", polygon=[(0.5, 0.5), (3, 0.5), (3, 3), (0.5, 3)])


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (0.5, 0.2, "l"),  # in the L's foot
        (0.2, 3.5, "l"),  # in the L's upright
        (2.0, 2.0, "sq"),  # in the L's notch: outside the L, inside the square
        (0.7, 0.7, "l"),  # in both: the first listed wins
        (3.5, 3.5, None),  # in the L's bounding box but outside both
        (10.0, 10.0, None),  # far away
    ],
)
def test_area_of_a_position(lon, lat, expected):
    grid = AreaMap([L_SHAPE, SQUARE])
    found = grid.area_of(Position(lon=lon, lat=lat))
    assert (found.id if found else None) == expected


def test_no_areas_and_no_position():
    assert AreaMap([]).area_of(Position(lon=1, lat=1)) is None
    assert AreaMap([L_SHAPE]).area_of(None) is None


@pytest.mark.parametrize(
    "polygon",
    [
        [(0, 0), (1, 1)],  # two vertices
        [(0, 0), (1, 1), (2, 2)],  # in one line
        [(0, 0), (0, 0), (0, 0)],  # one point
        [(0, 0), (1, 0), (200, 1)],  # a vertex off the globe
    ],
)
def test_bad_polygons_are_refused(polygon):
    with pytest.raises(ValidationError):
        Area(id="a", polygon=polygon)


def test_duplicate_area_ids_are_refused_in_config_and_map():
    areas = [{"id": "g1", "polygon": [[0, 0], [1, 0], [1, 1]]}, {"id": "g1", "polygon": [[2, 2], [3, 2], [3, 3]]}]
    with pytest.raises(ValidationError, match="g1"):
        Settings(areas=areas)
    with pytest.raises(ValueError, match="g1"):
        AreaMap([Area.model_validate(a) for a in areas])


def test_camera_position_and_areas_in_the_config():
    s = Settings(
        cameras=[{"id": "c1", "url": "rtsp://10.0.0.5/s", "position": {"lon": 121.47, "lat": 31.23}}, {"id": "c2", "url": "rtsp://10.0.0.6/s"}],
        areas=[{"id": "g1", "name": "Grid 1", "polygon": [[121.4, 31.2], [121.5, 31.2], [121.5, 31.3], [121.4, 31.3]]}],
    )
    assert s.cameras[0].position == Position(lon=121.47, lat=31.23) and s.cameras[1].position is None
    assert AreaMap(s.areas).area_of(s.cameras[0].position).id == "g1"
    with pytest.raises(ValidationError):
        Settings(cameras=[{"id": "c1", "url": "rtsp://10.0.0.5/s", "position": {"lon": 500, "lat": 31.23}}])


def test_gcj02_shift_in_china_and_none_outside():
    # People's Square, Shanghai: Chinese basemaps draw it ~450 m east and ~200 m south of GPS
    wgs = Position(lon=121.4737, lat=31.2304)
    gcj = wgs84_to_gcj02(wgs)
    assert 0.0040 < gcj.lon - wgs.lon < 0.0050 and -0.0025 < gcj.lat - wgs.lat < -0.0015
    back = gcj02_to_wgs84(gcj)
    assert abs(back.lon - wgs.lon) < 1e-8 and abs(back.lat - wgs.lat) < 1e-8
    paris = Position(lon=2.3522, lat=48.8566)
    assert wgs84_to_gcj02(paris) == paris and gcj02_to_wgs84(paris) == paris


class _Incident:
    def __init__(self, details):
        self.details = details


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"position": {"lon": 121.0, "lat": 31.0}}, Position(lon=121.0, lat=31.0)),
        ({"position": [121.0, 31.0]}, Position(lon=121.0, lat=31.0)),
        ({}, None),
        ({"position": {"lon": 999, "lat": 31.0}}, None),
        ({"position": "here"}, None),
    ],
)
def test_reported_position(details, expected):
    assert reported_position(_Incident(details)) == expected


def test_the_places_example_in_the_docs_is_a_valid_config():
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "people.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", doc, re.S)]
    examples = [b for b in blocks if isinstance(b, dict) and "areas" in b]
    assert examples
    for example in examples:
        s = Settings(**example)
        cam = s.cameras[0]
        assert AreaMap(s.areas).area_of(cam.position) is not None
