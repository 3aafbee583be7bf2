#!/usr/bin/env bash
# Set up everything the tests need (system packages, RTSP server, extras) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
exec .venv/bin/python -m pytest -ra "$@"
