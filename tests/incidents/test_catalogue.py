"""The incident catalogue: the shipped file, routing, and the errors a bad file gets."""

import copy

import pytest
import yaml

from gridworker.cases.catalogue import DEFAULT_PATH, CatalogueError, load_catalogue, parse_catalogue
from gridworker.vision.rules import incident_kinds

RULE_CODES = {
    "illegal_parking", "nonmotor_parking", "lane_intrusion", "wrong_way", "crowd", "loitering",
    "intrusion", "street_vending", "speeding", "red_light", "dwell",
}


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


def test_shipped_catalogue_covers_every_rule():
    cat = load_catalogue()
    listed = {t.code for t in cat.types}
    assert RULE_CODES <= listed
    assert {"person_fallen", "exposed_garbage"} <= listed
    # the built-in rules' own names and categories agree with the catalogue
    for kind in incident_kinds():
        t = cat.type(kind.code)
        assert cat.is_listed(kind.code), kind.code
        assert (t.name_zh, t.name_en, t.category) == (kind.name_zh, kind.name_en, kind.category), kind.code
    assert {t.category for t in cat.types} == {"traffic", "street_order", "city_appearance", "public_safety"}
    for t in cat.types:
        assert 1 <= t.grade <= 4 and cat.unit(t.unit) and cat.unit(t.first_unit)
        # a more serious grade never gets longer to be handled
        limits = [t.time_limits_min[g] for g in (1, 2, 3, 4)]
        assert limits == sorted(limits), t.code


def test_units_escalate_strictly_upwards():
    cat = load_catalogue()
    grid = cat.unit("community-grid")
    chain = [grid.code]
    while (p := cat.parent(chain[-1])) is not None:
        chain.append(p.code)
    assert chain == ["community-grid", "street-enforcement", "district-urban", "city-centre"]
    assert [cat.rank(c) for c in chain] == [0, 1, 2, 3]
    assert cat.parent("city-centre") is None and cat.rank("nope") == -1


def test_routing_first_match_wins_and_falls_back_to_first_unit(raw):
    data = copy.deepcopy(raw)
    data["routing"] = [
        {"camera": "cam-9", "unit": "district-urban"},  # a camera-specific override first
        {"type": "illegal_parking", "site": "school*", "unit": "police-station"},
        {"type": "illegal_parking", "unit": "street-enforcement"},
    ]
    cat = parse_catalogue(data)
    assert cat.route("illegal_parking", site="school-east", camera="cam-1").code == "police-station"
    assert cat.route("illegal_parking", site="market", camera="cam-1").code == "street-enforcement"
    assert cat.route("illegal_parking", site="school-east", camera="cam-9").code == "district-urban"
    assert cat.route("crowd", site="school").code == "police-station"  # the type's first unit
    assert cat.route("street_vending", site="school").code == "community-grid"
    # the shipped example: school-area parking goes to the police station
    assert load_catalogue().route("illegal_parking", site="school").code == "police-station"
    assert load_catalogue().route("illegal_parking", site="market").code == "traffic-squad"


def test_unlisted_type_gets_the_defaults():
    cat = load_catalogue()
    t = cat.type("pothole")
    assert not cat.is_listed("pothole")
    assert (t.grade, t.unit, t.first_unit) == (3, "district-urban", "community-grid")
    assert t.time_limit_s(3) == 1440 * 60
    assert cat.route("pothole").code == "community-grid"


def test_user_file(tmp_path, raw):
    data = copy.deepcopy(raw)
    data["types"][0]["grade"] = 1
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert load_catalogue(path).type(data["types"][0]["code"]).grade == 1


def _broken(raw, mutate):
    data = copy.deepcopy(raw)
    mutate(data)
    with pytest.raises(CatalogueError) as info:
        parse_catalogue(data, "mine.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["types"][0].update(grade=5), "type 'illegal_parking' (types[0]): grade"),
        (lambda d: d["types"][1].update(unit="ministry"), "type 'nonmotor_parking': unit 'ministry' is not a unit"),
        (lambda d: d["types"][2]["time_limits_min"].pop(4), "needs exactly grades 1-4 (missing [4]"),
        (lambda d: d["types"][2]["time_limits_min"].update({2: 0}), "time limits must be positive"),
        (lambda d: d["types"].append(dict(d["types"][0])), "type 'illegal_parking' is listed twice"),
        (lambda d: d["types"][0].update(category="weather"), "category"),
        (lambda d: d["types"][0].update(colour="red"), "Extra inputs are not permitted"),
        (lambda d: d["units"][-1].update(parent="nowhere"), "unit 'community-grid': parent 'nowhere' is not a unit"),
        (lambda d: d["units"][0].update(parent="community-grid"), "must be at a higher level"),
        (lambda d: d["units"][0].update(level="planet"), "level 'planet' is not one of"),
        (lambda d: d["routing"].append({"unit": "police-station"}), "needs at least one of type, site, camera, zone"),
        (lambda d: d["routing"].append({"site": "x", "unit": "nope"}), "routing[1]: unit 'nope' is not a unit"),
        (lambda d: d["defaults"].update(first_unit="nope"), "defaults: first_unit 'nope' is not a unit"),
    ],
)
def test_errors_name_the_entry(raw, mutate, expected):
    message = _broken(raw, mutate)
    assert message.startswith("mine.yaml:") and expected in message, message


def test_unreadable_and_bad_yaml(tmp_path):
    with pytest.raises(CatalogueError, match="cannot read the catalogue"):
        load_catalogue(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("types: [\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="invalid YAML"):
        load_catalogue(bad)
    bad.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="top level must be a mapping"):
        load_catalogue(bad)


def test_docs_example_is_a_valid_catalogue():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "workorders.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    cat = parse_catalogue(yaml.safe_load(block), "docs/workorders.md")
    assert cat.route("street_vending", camera="cam-17").code == "street-team"
    assert cat.route("street_vending", site="market-east").code == "grid-2"
    assert cat.route("street_vending", site="school").code == "grid-1"
    assert [u.code for u in cat.units if cat.parent(u.code) is None] == ["district-urban"]
