#!/usr/bin/env bash
# Install what the tests need (scripts/setup-test-env.sh), then run the whole suite.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k docker
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
exec python3 -m pytest -ra "$@"
