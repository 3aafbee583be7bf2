"""Run mypy over the product packages (strict) and the tests (relaxed); config in pyproject.toml.

The product's packages sit at the top of the repository and install as ``gridworker.*``
through setuptools' ``package-dir`` mapping; the editable install resolves that mapping with an
import hook, which mypy (a static checker) cannot follow. So this script lays the mapping out as
a tree of links under ``build/typecheck/`` (``gridworker/vision`` -> ``vision/`` ...), read from
the same ``package-dir`` table, and points mypy there. Errors name files under that tree:
``build/typecheck/gridworker/vision/pipeline.py`` is ``vision/pipeline.py``.

    .venv/bin/python scripts/typecheck.py                  # product (strict) + tests, as CI runs it
    .venv/bin/python scripts/typecheck.py build/typecheck/gridworker/vision   # one package

Arguments are passed to mypy; files given replace the ``files`` list of the config.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mypy depends on tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def package_dirs(pyproject: Path) -> dict[str, Path]:
    """The top-level ``gridworker.*`` packages and the folders they come from."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def build_tree(dirs: dict[str, Path], tree: Path) -> None:
    """Links each package's folder to its dotted name under ``tree`` (rebuilt from scratch)."""
    if tree.exists():
        shutil.rmtree(tree)
    root_name = min(dirs, key=len)  # "gridworker": every other name sits under it
    root = tree / root_name
    root.mkdir(parents=True)
    for entry in dirs[root_name].iterdir():
        if entry.suffix in (".py", ".pyi") or entry.name == "py.typed" or (entry / "__init__.py").is_file():
            (root / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for name, folder in dirs.items():
        if name == root_name:
            continue
        if not name.startswith(root_name + ".") or "." in name[len(root_name) + 1 :]:
            raise SystemExit(f"package-dir entry {name!r}: expected {root_name}.<package>")
        (root / name.rsplit(".", 1)[1]).symlink_to(folder, target_is_directory=True)


def main(argv: list[str]) -> int:
    dirs = package_dirs(ROOT / "pyproject.toml")
    build_tree(dirs, TREE)
    # the targets, search path and flags come from [tool.mypy] in pyproject.toml
    command = [sys.executable, "-m", "mypy", *argv]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
