"""The DDL with which gridworker created its tables before schema migrations, read back.

``{commit}.sql`` holds what ``create_all`` emitted on SQLite at that commit beyond the commit
before it in :data:`COMMITS` (the first file: the whole schema). PostgreSQL's DDL differed only
in column types; :data:`POSTGRESQL` rewrites them, and ``make.py`` checks that the rewrite gives
exactly what the PostgreSQL compiler emitted.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMITS = ("eb80b14", "b35b53b")  # oldest first; each file adds to the one before

# (SQLite DDL, PostgreSQL DDL): the only differences between the two dialects' create_all
POSTGRESQL = (
    (re.compile(r"^\tid INTEGER NOT NULL,$", re.M), "\tid SERIAL NOT NULL,"),  # autoincrement primary keys
    (re.compile(r" BLOB "), " BYTEA "),  # LargeBinary
    (re.compile(r"^\tminute INTEGER ", re.M), "\tminute BIGINT "),  # BigInteger
)


def to_postgresql(statement: str) -> str:
    for pattern, replacement in POSTGRESQL:
        statement = pattern.sub(replacement, statement)
    return statement


def parse(sql: str) -> list[str]:
    """The statements of one file, comment lines dropped."""
    statements = ("\n".join(line for line in s.splitlines() if not line.startswith("--")).strip() for s in sql.split(";\n"))
    return [s for s in statements if s]


def statements(commit: str, dialect: str) -> list[str]:
    """The DDL gridworker at ``commit`` ran on an empty ``dialect`` ("sqlite" or "postgresql") database."""
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"no legacy DDL for {dialect}")
    out: list[str] = []
    for step in COMMITS[: COMMITS.index(commit) + 1]:
        out += parse((HERE / f"{step}.sql").read_text(encoding="utf-8"))
    return [to_postgresql(s) for s in out] if dialect == "postgresql" else out
