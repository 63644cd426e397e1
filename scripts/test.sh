#!/usr/bin/env bash
# Set up, lint and run the whole test suite and the Postman collection. Every step runs;
# the last line sums them all up, and the exit status is non-zero on any failure.
set -euo pipefail
source "$(dirname "$0")/_need_node.sh"
need_node scripts/test.sh
source "$(dirname "$0")/_setup.sh"
# The reports the summary reads, and Newman's full output (shown only when it fails).
logs=.test-logs
rm -rf "$logs"
mkdir -p "$logs"
ruff=0 mypy=0 pytest=0 newman=0
echo "== ruff"
.venv/bin/ruff check . || ruff=$?
echo "== mypy (strict, org_service/)"
.venv/bin/mypy || mypy=$?
echo "== pytest"
# Two workers by default (PYTEST_WORKERS=0 runs in one process): most tests wait on the
# database, so the suite takes about half as long; each worker has its own embedded
# database, and each test file stays on one worker.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile \
  --junitxml="$logs/pytest.xml" "$@" || pytest=$?
echo "== postman (newman): full output in $logs/newman.log"
bash scripts/postman.sh --reporters cli,json --reporter-json-export "$logs/newman.json" \
  > "$logs/newman.log" 2>&1 || newman=$?
exec .venv/bin/python scripts/run_summary.py --logs "$logs" \
  --ruff "$ruff" --mypy "$mypy" --pytest "$pytest" --newman "$newman"
