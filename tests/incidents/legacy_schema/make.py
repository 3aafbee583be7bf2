"""Write the DDL with which gridworker created its tables before schema migrations
(``create_all`` at every start), as of the commits in ``schema.COMMITS``::

    .venv/bin/python tests/incidents/legacy_schema/make.py

For each commit, incidents/{store,workorders,outbox,flows,catalogue}.py are read with
``git show`` into a throw-away package and imported; every table they map is compiled
exactly as ``create_all`` emitted it (tables in dependency order, then their indexes).
``{commit}.sql`` gets the SQLite statements the commit added to the one before it; the script
fails if a commit changed or dropped a statement (a delta could not express it), or if
``schema.to_postgresql`` of the SQLite DDL is not exactly what PostgreSQL's compiler emits.
``test_migrations.py`` builds databases from these files (``schema.statements``).

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

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))  # run as a script: the tests' modules import from the repository
from tests.incidents.legacy_schema.schema import COMMITS, HERE, to_postgresql  # noqa: E402
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


def main() -> None:
    before: list[str] = []
    for commit in COMMITS:
        lite, pg = ddl(commit, sqlite.dialect()), ddl(commit, postgresql.dialect())
        if [to_postgresql(s) for s in lite] != pg:
            raise SystemExit(f"{commit}: schema.POSTGRESQL does not turn the SQLite DDL into PostgreSQL's; extend it")
        if set(before) - set(lite):
            raise SystemExit(f"{commit} changed or dropped statements of the commit before it; a delta cannot say that")
        added = [s for s in lite if s not in before]
        path = HERE / f"{commit}.sql"
        since = f" beyond {COMMITS[COMMITS.index(commit) - 1]}" if before else ""
        header = f"-- gridworker's tables at commit {commit}{since} as create_all made them (SQLite); written by make.py\n"
        path.write_text(header + ";\n\n".join(added) + ";\n", encoding="utf-8")
        print(path)
        before = lite


if __name__ == "__main__":
    main()
