"""Write the DDL with which gridworker created its tables before schema migrations
(``create_all`` at every start), as of given commits, for SQLite and PostgreSQL::

    .venv/bin/python tests/incidents/legacy_schema/make.py eb80b14 b35b53b

For each commit, incidents/{store,workorders,outbox,flows,catalogue}.py are read with
``git show`` into a throw-away package and imported; every table they map is compiled for
the dialect exactly as ``create_all`` emitted it (tables in dependency order, then their
indexes). ``test_migrations.py`` builds databases from these files.

Commits: eb80b14 is main just before issue 10 (the schema of the first migration);
b35b53b is main with issue 10 (``incident_clips_missing`` added), before migrations.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MODULES = ("store", "workorders", "outbox", "flows", "catalogue")


def _text(statement: CreateTable | CreateIndex, dialect: sa.engine.Dialect) -> str:
    return "\n".join(line.rstrip() for line in str(statement.compile(dialect=dialect)).strip().splitlines())


def ddl(commit: str, dialect: sa.engine.Dialect) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        package = f"legacy_{commit}"
        root = Path(tmp) / package
        root.mkdir()
        (root / "__init__.py").write_text("")
        for name in MODULES:
            src = subprocess.run(["git", "show", f"{commit}:incidents/{name}.py"], cwd=REPO, check=True, capture_output=True, text=True)
            (root / f"{name}.py").write_text(src.stdout)
        sys.path.insert(0, tmp)
        try:
            modules = {name: importlib.import_module(f"{package}.{name}") for name in ("store", "workorders", "outbox", "flows")}
        finally:
            sys.path.remove(tmp)
        metadatas = [modules["store"]._Base.metadata, modules["flows"]._FlowBase.metadata]
        out = []
        for metadata in metadatas:
            for table in metadata.sorted_tables:
                out.append(_text(CreateTable(table), dialect))
                for index in sorted(table.indexes, key=lambda i: str(i.name)):
                    out.append(_text(CreateIndex(index), dialect))
        return out


def main(commits: list[str]) -> None:
    for commit in commits:
        for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
            path = HERE / f"{commit}.{name}.sql"
            header = f"-- gridworker's tables at commit {commit} as create_all made them ({name}); written by make.py\n"
            path.write_text(header + ";\n\n".join(ddl(commit, dialect)) + ";\n", encoding="utf-8")
            print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
