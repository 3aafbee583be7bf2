"""Reading an uploaded CSV table (people, IoT devices): the header checked, rows capped, each
row's non-empty values stripped, and rows with more values than columns reported by line
(never echoing a value)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from gridworker.validation import first_repeat

__all__ = ["csv_rows"]


def csv_rows(
    text: str, *, columns: Sequence[str], required: Sequence[str], max_rows: int, error: type[Exception], lower: bool = False
) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """The non-blank rows of ``text`` as (line number, {column: stripped value}), and the
    problems of the rows that could not be read.

    Raises:
        error: a header naming a column not in ``columns``, one twice, or missing one of
            ``required``; or more than ``max_rows`` rows.
        csv.Error: text Python's csv module cannot read (callers turn it into ``error``).

    Example:
        >>> csv_rows("id,type\\nb1,breaker\\n", columns=("id", "type"), required=("id", "type"), max_rows=9, error=ValueError)
        ([(2, {'id': 'b1', 'type': 'breaker'})], [])
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() if lower else h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in columns]
    if unknown or not set(required) <= set(header):
        need = ", ".join(required[:-1]) + " and " + required[-1] if len(required) > 1 else required[0]
        raise error(f"CSV header must name {need}, and only columns of {', '.join(columns)} (unknown: {unknown[:5]})")
    repeated = first_repeat(header)
    if repeated is not None:  # csv keeps the last one: a second "role" column would win unseen
        raise error(f"CSV header names the column {repeated!r} twice")
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[str] = []
    for row in reader:
        if len(rows) + len(problems) >= max_rows:
            raise error(f"more than {max_rows} rows")
        if None in row:
            problems.append(f"line {reader.line_num}: more values than columns")
            continue
        values = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        if values:
            rows.append((reader.line_num, values))
    return rows, problems
