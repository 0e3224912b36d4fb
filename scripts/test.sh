#!/usr/bin/env bash
# The whole test suite, as CI runs it: fast tests, browser tests, PostgreSQL store tests, slow full-data checks.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q "$@"
