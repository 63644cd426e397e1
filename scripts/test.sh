#!/usr/bin/env bash
# Set up, lint and run the whole test suite. Exits non-zero on any failure.
set -euo pipefail
source "$(dirname "$0")/_need_node.sh"
need_node scripts/test.sh
source "$(dirname "$0")/_setup.sh"
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy (strict, org_service/)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
echo "== postman (newman)"
bash scripts/postman.sh
