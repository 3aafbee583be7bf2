"""Fixtures of the benchmark tests."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridworker.bench.cli import register


@pytest.fixture
def bench_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """``bench_json("patrol", "--cameras", "6", ...)`` runs ``gridworker bench patrol ... --json
    --out FILE`` in this process; it must exit 0 and print exactly the JSON it wrote to FILE.
    Returns that JSON, and what went to standard error (the human summary)."""

    def run(*argv: str) -> tuple[Any, str]:
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers(dest="command", required=True))
        out = tmp_path / "bench.json"
        args = parser.parse_args(["bench", *argv, "--json", "--out", str(out)])
        assert args.func(args) == 0
        captured = capsys.readouterr()
        printed = json.loads(captured.out)
        assert printed == json.loads(out.read_text())
        return printed, captured.err

    return run
