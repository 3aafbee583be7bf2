#!/usr/bin/env bash
# Set up everything the tests need (system packages, RTSP server, extras) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# type check first (mypy: strict for the product, relaxed for the tests; [tool.mypy] in pyproject.toml)
.venv/bin/python scripts/typecheck.py
exec .venv/bin/python -m pytest -ra --durations=30 "$@"
