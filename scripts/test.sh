#!/usr/bin/env bash
# Install what the tests need (scripts/setup-test-env.sh), lint and type-check, build the docs site, then run the
# whole suite.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k docker
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
echo "[test] ruff check envcheck"
python3 -m ruff check envcheck
echo "[test] mypy (envcheck/, configured in pyproject.toml)"
python3 -m mypy
echo "[test] mkdocs build --strict (the docs site: a broken link or a missing page fails)"
# NO_MKDOCS_2_WARNING: Material prints a banner about its end of life on every build; it is no build warning.
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet
exec python3 -m pytest -ra "$@"
