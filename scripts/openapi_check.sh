#!/usr/bin/env bash
# Run Schemathesis (`st run`, every check, every phase) against a throwaway API on the
# embedded database, as a client generated from /openapi.json would use it. Requests carry
# an owner's token that scripts/st_hooks.py renews whenever the fuzzer ends its session.
# Arguments go to `st run` (e.g. --seed 1, --max-examples 20). Exits non-zero on a failure.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
# The fuzzer's failed logins and creates all come from this one address: the throttles
# would soon refuse the session's own login (they have tests of their own).
throwaway_api_env=(
  LOGIN_MAX_FAILURES_PER_ADDRESS=1000000 LOGIN_MAX_FAILURES_PER_EMAIL=1000000
  LOGIN_EMAIL_CEILING=1000000 LOGIN_EMAIL_SLOWDOWN_AFTER=1000000
  CREATE_MAX_PER_ADDRESS=1000000 PASSWORD_RESET_MAX_PER_ADDRESS=1000000
  PASSWORD_RESET_MAX_PER_EMAIL=1000000)
source "$(dirname "$0")/_throwaway_api.sh"

# From the repository's root, so `st` reads schemathesis.toml.
PYTHONPATH="$root" SCHEMATHESIS_HOOKS=scripts.st_hooks ST_BASE_URL="$base_url" \
  .venv/bin/st run "$base_url/openapi.json" --checks all \
  --phases examples,coverage,fuzzing,stateful --workers 1 "$@"
