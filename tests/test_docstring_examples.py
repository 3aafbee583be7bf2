"""Every ``>>>`` example in the product's docstrings runs and shows its true output.

The modules come from ``[tool.setuptools] packages`` in pyproject.toml, so a new module or
package is covered without touching this file. An example that needs a live camera, a server
or objects built elsewhere belongs in a literal block (``Example::``), not behind ``>>>``.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: mypy's own dependency
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
OPTIONS = doctest.ELLIPSIS


def _module_names() -> list[str]:
    """Every package of the distribution and every plain module inside one."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    packages: list[str] = config["tool"]["setuptools"]["packages"]
    names: list[str] = []
    for package in packages:
        names.append(package)
        path = importlib.import_module(package).__path__
        names += [m.name for m in pkgutil.iter_modules(path, package + ".") if not m.ispkg]
    return list(dict.fromkeys(names))


MODULES = _module_names()


def _examples(name: str) -> list[doctest.DocTest]:
    """The module's docstring tests, each with a fresh copy of the module's globals."""
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module, name) if t.examples]


def test_examples_are_found() -> None:
    """Guards against a finder that silently sees nothing (the tests below would all pass)."""
    examples = [e for name in MODULES for t in _examples(name) for e in t.examples]
    run = [e for e in examples if not e.options.get(doctest.SKIP)]
    assert len(run) > 100, f"only {len(run)} docstring examples that run, in {len(MODULES)} modules"


@pytest.mark.parametrize("name", MODULES, ids=MODULES)
def test_docstring_examples(name: str) -> None:
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in _examples(name):
        runner.run(test, out=report.write)
    assert runner.failures == 0, f"{runner.failures} of {runner.tries} examples failed:\n{report.getvalue()}"
