"""The numbers as a table, written as CSV or as an Excel workbook (openpyxl).

One table, one row per group: ``section`` (all, state, type, unit, site, person, day, week),
``key`` (the code, the state, the ISO date of the day or of the week's Monday), ``name``
(the catalogue's name in the chosen language) and the figures. Numbers stay numbers (the
rate as a fraction 0..1, handling time in seconds), so a sheet computes with them.

Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage
return first) is written with a leading apostrophe: a site named ``=HYPERLINK(…)`` in a
camera's config stays text in the sheet (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from openpyxl import Workbook

from gridworker.cases.catalogue import Catalogue
from gridworker.cases.stats import Figures
from gridworker.cases.workorders import StatsGroup

Lang = Literal["zh", "en"]
Cell = str | int | float | None

COLUMNS = ("section", "key", "name", "total", "finished", "judged", "on_time", "on_time_rate", "mean_handling_s")
HEADERS: dict[Lang, tuple[str, ...]] = {
    "en": ("section", "key", "name", "cases", "finished", "judged", "on time", "on-time rate", "mean handling (s)"),
    "zh": ("分类", "键", "名称", "案件数", "已办结", "考核数", "按时办结", "按时办结率", "平均处置时长(秒)"),
}
STATE_NAMES: dict[Lang, dict[str, str]] = {
    "zh": {"detected": "待处理", "dispatched": "已派遣", "accepted": "已受理", "handled": "已处置", "closed": "已结案",
           "rejected": "误报", "escalated": "已上报"},
    "en": {},
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def safe_text(text: str) -> str:
    """``text`` as a spreadsheet keeps it: a leading apostrophe when it would start a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass(frozen=True, slots=True)
class FiguresTable:
    """The rows of :class:`Figures` in the export's columns (:data:`COLUMNS`)."""

    figures: Figures
    catalogue: Catalogue
    lang: Lang = "zh"

    def _type_name(self, code: str) -> str:
        t = self.catalogue.type(code)
        return t.name_zh if self.lang == "zh" else t.name_en

    def _unit_name(self, code: str) -> str:
        u = self.catalogue.unit(code)
        return code if u is None else (u.name_zh if self.lang == "zh" else u.name_en)

    def _person_name(self, person_id: str) -> str:
        return self.figures.person_names.get(person_id, "")

    def rows(self) -> Iterator[tuple[Cell, ...]]:
        f = self.figures
        yield _group_row("all", f.totals, "")
        for state, n in f.by_state.items():
            yield ("state", state, STATE_NAMES[self.lang].get(state, state), n, None, None, None, None, None)
        sections: list[tuple[str, list[StatsGroup], Callable[[str], str]]] = [
            ("type", f.by_type, self._type_name),
            ("unit", f.by_unit, self._unit_name),
            ("site", f.by_site, _same),
            ("person", f.by_person, self._person_name),
            ("day", f.by_day, _same),
            ("week", f.by_week, _same),
        ]
        for section, groups, name in sections:
            for g in groups:
                yield _group_row(section, g, name(g.key))

    def header(self) -> tuple[str, ...]:
        return HEADERS[self.lang]

    def csv_bytes(self) -> bytes:
        """UTF-8 with a byte-order mark (Excel then reads the Chinese names right)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow(self.header())
        for row in self.rows():
            w.writerow([_safe(c) for c in row])
        return ("\ufeff" + out.getvalue()).encode("utf-8")

    def xlsx_bytes(self) -> bytes:
        """A workbook: sheet ``figures`` (the table), sheet ``period`` (what it covers)."""
        wb = Workbook(write_only=True)
        sheet = wb.create_sheet("figures")
        sheet.append(list(self.header()))
        for row in self.rows():
            sheet.append([_safe(c) for c in row])
        about = wb.create_sheet("period")
        p = self.figures.period
        about.append(["since", _iso(p.since)])
        about.append(["until", _iso(p.until)])
        about.append(["utc_offset_min", p.utc_offset_min])
        about.append(["computed_at", _iso(self.figures.now)])
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()


def _same(key: str) -> str:
    return key


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def _safe(cell: Cell) -> Cell:
    return safe_text(cell) if isinstance(cell, str) else cell


def _group_row(section: str, g: StatsGroup, name: str) -> tuple[Cell, ...]:
    return (section, g.key, name, g.total, g.finished, g.judged, g.on_time, g.on_time_rate, g.mean_handling_s)
