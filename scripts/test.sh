#!/usr/bin/env bash
# Install what the tests need (scripts/setup-test-env.sh), lint and type-check, then run the whole suite.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k docker
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
echo "[test] ruff check envcheck"
python3 -m ruff check envcheck
echo "[test] mypy (envcheck/, configured in pyproject.toml)"
python3 -m mypy
exec python3 -m pytest -ra "$@"
