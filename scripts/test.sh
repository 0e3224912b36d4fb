#!/usr/bin/env bash
# `make test`: the test suite. Installs Debian's Chromium for the browser tests when it is missing.
# Slow full-dataset checks run when SHOPLENS_TEST_ALL=1 (CI sets it); PostgreSQL store tests run when
# SHOPLENS_TEST_PG_URL names a server (.ci/run starts one with scripts/start-postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-browser.sh
markers=()
if [ "${SHOPLENS_TEST_ALL:-0}" != "1" ]; then markers=(-m "not slow"); fi
exec .venv/bin/python -m pytest -q "${markers[@]}" "$@"
