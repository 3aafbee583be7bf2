"""The numbers (``GET /stats/cases`` and its CSV / Excel exports) against real work orders in a
real database, SQLite and PostgreSQL: every figure is recomputed here in Python from the work
orders themselves and must equal the API's; days and weeks follow the UTC offset; the
exports parse back (csv, openpyxl) to the same figures; a site that looks like a formula stays
text; bad periods are a 422; a unit handler gets their unit's numbers only."""

from __future__ import annotations

import csv
import io
import math
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook

from gridworker.api import create_app
from gridworker.api.auth import create_key
from gridworker.api.deps import CaseParts
from gridworker.cases.workflow import Actor, Workflow
from gridworker.cases.workorders import RUNNING, WorkOrder, WorkOrderQuery, WorkOrders
from gridworker.incidents import IncidentStore
from gridworker.keystore import KeyStore
from tests.factories import local_client, pg_database

UTC = timezone.utc
T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC).timestamp()  # a Monday
DAY = 86_400.0
BOSS = Actor("boss", "supervisor")
SITE_FORMULA = "=HYPERLINK(\"http://evil\",\"x\")"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def env(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'stats.db'}" if request.param == "sqlite" else pg_database("gw_stats")
    store = IncidentStore(url)
    orders = WorkOrders(store.db)
    keys = {}
    for name, role, unit in [("viewer", "viewer", None), ("squad", "unit_handler", "traffic-squad"), ("admin", "admin", None)]:
        keys[name] = create_key(KeyStore(orders.db), name=name, role=role, unit=unit)[1]
    with local_client(CaseParts.of(store, orders).serve(create_app())) as client:
        yield client, orders, keys
    store.close()


def _h(keys, who):
    return {"Authorization": f"Bearer {keys[who]}"}


def _open(orders, at, type="illegal_parking", site="market"):
    inc = IncidentStore(orders.db).open(
        camera_id="cam-1", camera_name="Gate", site=site, zone_id="kerb", rule_id="r1", type=type,
        at=at, count=1, summary="seen", details={}, snapshot=None,
    )
    return orders.on_incident_opened(inc).incident_id


def _seed(orders) -> None:
    """Fourteen cases over three weeks: handled on time, handled late, closed, rejected,
    still running (late and not), at times that fall on different days in UTC and UTC+8."""
    wf = Workflow(orders)
    plan: list[tuple[int, float, str, str, int | str]] = [
        # (day offset, hour UTC, type, site, what happens: minutes to handle, or a word)
        (0, 1.0, "illegal_parking", "market", 20),
        (0, 17.5, "illegal_parking", "market", 45),  # 01:30 the next day in UTC+8
        (1, 9.0, "street_vending", "school", 90),
        (2, 10.0, "illegal_parking", SITE_FORMULA, "rejected"),
        (6, 23.0, "illegal_parking", "market", 30),  # Sunday 23:00 UTC = Monday 07:00 in UTC+8: another week there
        (7, 3.0, "crowd", "school", "closed"),
        (8, 4.0, "street_vending", "market", 60 * 24 * 5),  # handled days late
        (8, 5.0, "illegal_parking", "school", "accepted"),
        (9, 6.0, "illegal_parking", "market", "dispatched"),
        (14, 7.0, "crowd", "market", 10),
        (15, 8.0, "street_vending", "school", "detected"),
        (16, 9.5, "illegal_parking", "market", 15),
        (17, 12.0, "illegal_parking", "market", "rejected"),
        (18, 16.5, "street_vending", "school", 120),
    ]
    for day, hour, type_, site, fate in plan:
        at = T0 + day * DAY + hour * 3600
        i = _open(orders, at, type=type_, site=site)
        if fate == "detected":
            continue
        if fate == "rejected":
            wf.reject(i, BOSS, note="false alarm", at=at + 60)
            continue
        wf.dispatch(i, BOSS, at=at + 60)
        if fate == "dispatched":
            continue
        wf.accept(i, BOSS, at=at + 120)
        if fate == "accepted":
            continue
        minutes = 30 if isinstance(fate, str) else fate
        wf.handle(i, BOSS, note="done", at=at + minutes * 60)
        if fate == "closed":
            wf.close(i, BOSS, at=at + minutes * 60 + 60)


def _all_orders(orders) -> list[WorkOrder]:
    items, total = orders.list(WorkOrderQuery(limit=1000))
    assert len(items) == total
    return items


def _expect(orders: list[WorkOrder], now: float) -> dict:
    """The figures recomputed from the work orders, as the API writes them."""
    total = len(orders)
    finished = [o for o in orders if o.handled_at is not None and o.state != "rejected"]
    judged = len(finished) + sum(1 for o in orders if o.state in RUNNING and (o.overdue or o.due_at < now))
    on_time = sum(1 for o in finished if o.on_time)
    return {
        "total": total, "finished": len(finished), "judged": judged, "on_time": on_time,
        "on_time_rate": on_time / judged if judged else None,
        "mean_handling_s": sum((o.handled_at or 0.0) - o.detected_at for o in finished) / len(finished) if finished else None,
    }


def _grouped(orders, key, now) -> dict[str, dict]:
    groups = defaultdict(list)
    for o in orders:
        groups[key(o)].append(o)
    return {k: _expect(v, now) for k, v in groups.items()}


def _local_day(ts: float, offset_min: int):
    return datetime.fromtimestamp(ts + offset_min * 60, tz=UTC).date()


def _same(got: dict, want: dict) -> None:
    for k, v in want.items():
        if isinstance(v, float):
            assert math.isclose(got[k], v, rel_tol=1e-9), (k, got, want)
        else:
            assert got[k] == v, (k, got, want)


def _period(**extra):
    return {"since": datetime.fromtimestamp(T0, UTC).isoformat(), "until": datetime.fromtimestamp(T0 + 21 * DAY, UTC).isoformat(), **extra}


@pytest.mark.parametrize("offset_min", [0, 480, -300])
def test_figures_equal_the_work_orders(env, offset_min):
    client, orders, keys = env
    _seed(orders)
    r = client.get("/stats/cases", params=_period(utc_offset_min=offset_min), headers=_h(keys, "viewer"))
    assert r.status_code == 200, r.text
    got = r.json()
    now = datetime.fromisoformat(got["computed_at"]).timestamp()
    wos = _all_orders(orders)
    assert len(wos) == 14
    _same(got["totals"], _expect(wos, now))
    assert got["totals"]["finished"] == 9 and got["totals"]["on_time"] >= 1 and got["totals"]["judged"] > got["totals"]["on_time"]
    assert got["by_state"] == {s: sum(1 for o in wos if o.state == s) for s in got["by_state"]}
    assert got["by_state"]["rejected"] == 2 and got["by_state"]["closed"] == 1
    for name, key in (("by_type", lambda o: o.type), ("by_unit", lambda o: o.unit), ("by_site", lambda o: o.site)):
        want = _grouped(wos, key, now)
        assert {g["key"] for g in got[name]} == set(want), name
        for g in got[name]:
            _same(g, want[g["key"]])
    days = _grouped(wos, lambda o: _local_day(o.detected_at, offset_min).isoformat(), now)
    assert [g["key"] for g in got["by_day"]] == sorted(days)
    for g in got["by_day"]:
        _same(g, days[g["key"]])
    weeks = _grouped(wos, lambda o: (lambda d: d - timedelta(days=d.weekday()))(_local_day(o.detected_at, offset_min)).isoformat(), now)
    assert [g["key"] for g in got["by_week"]] == sorted(weeks)
    for g in got["by_week"]:
        _same(g, weeks[g["key"]])
        assert datetime.fromisoformat(g["key"]).weekday() == 0
    # the offset moves cases between days and weeks: Sunday 23:00 UTC is Monday in UTC+8 (the next
    # week); Monday 01:00 UTC is Sunday evening in UTC-5 (the week before)
    first_weeks = {g["key"]: g["total"] for g in got["by_week"]}
    assert first_weeks == {0: {"2026-11-02": 5, "2026-11-09": 4, "2026-11-16": 5},
                           480: {"2026-11-02": 4, "2026-11-09": 5, "2026-11-16": 5},
                           -300: {"2026-10-26": 1, "2026-11-02": 5, "2026-11-09": 3, "2026-11-16": 5}}[offset_min]
    assert got["by_person"] == []  # nobody assigned in this seed (see test_figures_by_person)
    assert got["truncated"] is False


def test_period_selects_by_detection_time_and_unit_handler_sees_their_unit(env):
    client, orders, keys = env
    _seed(orders)
    week2 = {"since": datetime.fromtimestamp(T0 + 7 * DAY, UTC).isoformat(), "until": datetime.fromtimestamp(T0 + 14 * DAY, UTC).isoformat()}
    got = client.get("/stats/cases", params=week2, headers=_h(keys, "viewer")).json()
    wos = [o for o in _all_orders(orders) if T0 + 7 * DAY <= o.detected_at < T0 + 14 * DAY]
    assert got["totals"]["total"] == len(wos) == 4
    mine = client.get("/stats/cases", params=_period(), headers=_h(keys, "squad")).json()
    assert [g["key"] for g in mine["by_unit"]] == ["traffic-squad"]
    assert mine["totals"]["total"] == sum(1 for o in _all_orders(orders) if o.unit == "traffic-squad") < 14
    # the default period is the last 30 days: the seeded cases of 2026-11 are not in it unless now is near
    assert client.get("/stats/cases", headers=_h(keys, "viewer")).status_code == 200
    assert client.get("/stats/cases").status_code == 401


@pytest.fixture
def server_in_china(monkeypatch):
    """The server's local time is UTC+8 (POSIX form: no time zone database needed)."""
    monkeypatch.setenv("TZ", "CST-8")
    time.tzset()
    assert time.timezone == -8 * 3600
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_without_a_zone_are_utc_on_every_route(env, server_in_china):
    """``since``/``until`` without an offset are UTC (docs/workorders.md: "Times are ISO 8601
    UTC") on /stats/workorders, /stats/cases and /incidents alike, whatever the server's zone."""
    client, orders, keys = env
    i = _open(orders, datetime(2026, 3, 1, 20, 0, tzinfo=UTC).timestamp())  # 04:00 on 2 March in UTC+8
    day = {"since": "2026-03-01T00:00:00", "until": "2026-03-02T00:00:00"}
    viewer = _h(keys, "viewer")
    assert sum(client.get("/stats/workorders", params=day, headers=viewer).json()["by_state"].values()) == 1
    assert client.get("/stats/cases", params=day, headers=viewer).json()["totals"]["total"] == 1
    assert [x["id"] for x in client.get("/incidents", params=day, headers=viewer).json()["items"]] == [i]
    china_day = {"since": "2026-03-01T00:00:00+08:00", "until": "2026-03-02T00:00:00+08:00"}  # an offset is kept
    assert sum(client.get("/stats/workorders", params=china_day, headers=viewer).json()["by_state"].values()) == 0
    assert client.get("/incidents", params=china_day, headers=viewer).json()["total"] == 0


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"since": "2026-11-10T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "before"),
        ({"since": "2026-11-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "before"),
        ({"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "longer than"),
        ({"since": "1960-01-01T00:00:00Z", "until": "1960-02-01T00:00:00Z"}, "1970"),
        ({"utc_offset_min": 900}, None),
        ({"utc_offset_min": "east"}, None),
        ({"since": "yesterday"}, None),
        ({"since": "9999-12-31T23:59:59+14:00", "until": "9999-12-31T23:59:59-12:00"}, "2100"),
        ({"since": "0001-01-01T00:00:00+14:00", "until": "0001-01-02T00:00:00Z"}, None),
    ],
)
def test_bad_periods_are_refused(env, params, needle):
    client, _, keys = env
    for path in ("/stats/cases", "/stats/cases.csv", "/stats/cases.xlsx"):
        r = client.get(path, params=params, headers=_h(keys, "viewer"))
        assert r.status_code == 422, (path, params, r.text)
        if needle:
            assert needle in r.json()["detail"]
    assert client.get("/stats/cases.csv", params={**_period(), "lang": "fr"}, headers=_h(keys, "viewer")).status_code == 422


def _api_rows(got: dict) -> list[tuple]:
    """The API's figures as the export's (section, key, total, finished, judged, on_time, rate, mean) rows."""
    def g(section, x):
        return (section, x["key"], x["total"], x["finished"], x["judged"], x["on_time"], x["on_time_rate"], x["mean_handling_s"])
    rows = [g("all", got["totals"])]
    rows += [("state", s, n, None, None, None, None, None) for s, n in got["by_state"].items()]
    for section in ("type", "unit", "site", "person", "day", "week"):
        rows += [g(section, x) for x in got[f"by_{section}"]]
    return rows


def _num(text: str):
    if text == "":
        return None
    return float(text) if any(c in text for c in ".e") else int(text)


def _close(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-12))


def test_csv_and_xlsx_exports_parse_back_to_the_api_figures(env):
    client, orders, keys = env
    _seed(orders)
    h = _h(keys, "viewer")
    got = client.get("/stats/cases", params=_period(utc_offset_min=480), headers=h).json()
    want = _api_rows(got)
    want_unsafe = [(r[0], "'" + r[1] if r[1] == SITE_FORMULA else r[1], *r[2:]) for r in want]

    r = client.get("/stats/cases.csv", params=_period(utc_offset_min=480, lang="en"), headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="gridworker-stats-20261102-20261123.csv"'
    assert r.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[0][:4] == ["section", "key", "name", "cases"]
    rows = [(t[0], t[1], *(_num(c) for c in t[3:])) for t in table[1:]]
    assert len(rows) == len(want_unsafe)
    for a, b in zip(rows, want_unsafe):
        assert all(_close(x, y) for x, y in zip(a, b)), (a, b)
    names = {(t[0], t[1]): t[2] for t in table[1:]}
    assert names[("type", "illegal_parking")] == "Illegal parking" or names[("type", "illegal_parking")] != "illegal_parking"
    assert names[("unit", "traffic-squad")] != ""

    r = client.get("/stats/cases.xlsx", params=_period(utc_offset_min=480), headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    wb = load_workbook(io.BytesIO(r.content))
    sheet = wb["figures"]
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0][:4] == ("分类", "键", "名称", "案件数")
    xrows = [(c[0], c[1], *c[3:]) for c in cells[1:]]
    assert len(xrows) == len(want_unsafe)
    for a, b in zip(xrows, want_unsafe):
        assert all(_close(x, y) for x, y in zip(a, b)), (a, b)
    # the formula-looking site is a text cell, not a formula
    site_cells = [row[1] for row in sheet.iter_rows(min_row=2) if row[0].value == "site"]
    evil = [c for c in site_cells if "HYPERLINK" in str(c.value)]
    assert len(evil) == 1 and evil[0].data_type == "s" and evil[0].value.startswith("'=")
    period = dict(wb["period"].iter_rows(values_only=True))
    assert period["utc_offset_min"] == 480 and period["since"].startswith("2026-11-02")
    zh_names = {(c[0], c[1]): c[2] for c in cells[1:]}
    assert zh_names[("state", "rejected")] == "误报"


def test_figures_by_person(env):
    """Cases dispatched to two grid workers of a unit: by_person groups them by assignee (ids as
    keys, names beside), unassigned cases count in no person; the CSV names them."""
    from gridworker.cases.people import People, PersonIn

    client, orders, keys = env
    people = People(orders.db, orders.catalogue)
    wang, li = people.add([
        PersonIn(username="wang", name="王伟", unit="traffic-squad", role="unit_handler"),
        PersonIn(username="li", name="李娜", unit="traffic-squad", role="unit_handler"),
    ])
    wf = Workflow(orders, assigner=people)
    for n, (who, minutes) in enumerate([(wang, 20), (wang, 60 * 24 * 3), (li, 30), (None, 10)]):
        at = T0 + n * DAY + 3600
        i = _open(orders, at)
        wf.dispatch(i, BOSS, assignee=None if who is None else who.id, at=at + 60)
        wf.accept(i, BOSS, at=at + 120)
        wf.handle(i, BOSS, note="done", at=at + minutes * 60)
    got = client.get("/stats/cases", params=_period(), headers=_h(keys, "viewer")).json()
    now = datetime.fromisoformat(got["computed_at"]).timestamp()
    wos = _all_orders(orders)
    assigned = [o for o in wos if o.assignee is not None]
    want = _grouped(assigned, lambda o: str(o.assignee), now)
    assert {g["key"] for g in got["by_person"]} == set(want) and str(wang.id) in want
    for g in got["by_person"]:
        _same(g, want[g["key"]])
    assert got["person_names"][str(wang.id)] == "王伟" and got["person_names"][str(li.id)] == "李娜"
    assert sum(g["total"] for g in got["by_person"]) == len(assigned) < got["totals"]["total"] or not any(o.assignee is None for o in wos)
    table = list(csv.reader(io.StringIO(client.get("/stats/cases.csv", params=_period(), headers=_h(keys, "viewer")).content.decode("utf-8-sig"))))
    assert {(t[1], t[2]) for t in table if t[0] == "person"} == {(str(p.id), p.name) for p in (wang, li) if str(p.id) in want}


def test_a_grid_worker_logged_in_gets_their_own_cases_figures_only(tmp_path):
    """A person (unit handler) logged in with a password: /stats/cases and its exports count
    the cases assigned to them, not their colleagues' (no names of others either)."""
    from gridworker.cases.people import People, PeopleConfig, PersonIn

    store = IncidentStore(f"sqlite:///{tmp_path / 'people.db'}")
    orders = WorkOrders(store.db)
    people = People(store.db, orders.catalogue, config=PeopleConfig(password_time_cost=1, password_memory_kib=19_456))
    pw = "a long enough password"
    wang, li = people.add([
        PersonIn(username="wang", name="王伟", unit="traffic-squad", role="unit_handler", password=pw),
        PersonIn(username="li", name="李娜", unit="traffic-squad", role="unit_handler", password=pw),
    ])
    wf = Workflow(orders, assigner=people)
    mine = []
    for n, who in enumerate([wang, li, li, wang, li]):
        at = T0 + n * DAY + 3600
        i = _open(orders, at)
        wf.dispatch(i, BOSS, assignee=who.id, at=at + 60)
        if who is wang:
            mine.append(i)
    with local_client(CaseParts.of(store, orders, people=people).serve(create_app())) as client:
        assert client.post("/auth/login", json={"username": "wang", "password": pw}).status_code == 200
        got = client.get("/stats/cases", params=_period())
        assert got.status_code == 200, got.text
        figures = got.json()
        assert figures["totals"]["total"] == len(mine) == 2
        assert [g["key"] for g in figures["by_person"]] == [str(wang.id)] and figures["person_names"] == {str(wang.id): "王伟"}
        text = client.get("/stats/cases.csv", params=_period(lang="en")).content.decode("utf-8-sig")
        assert "李娜" not in text and "王伟" in text
        # the older summary narrows the same way
        old = client.get("/stats/workorders", params=_period()).json()
        assert sum(old["by_state"].values()) == 2 and [g["total"] for g in old["by_unit"]] == [2]
    store.close()
