#!/usr/bin/env bash
# Run Schemathesis (`st run`, every check, every phase) against a throwaway API on the
# embedded database, as a client generated from /openapi.json would use it. Requests carry
# an owner's token that scripts/st_hooks.py renews whenever the fuzzer ends its session.
# Arguments go to `st run` (e.g. --seed 1, --max-examples 20). Exits non-zero on a failure.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
root=$(pwd)
work=$(mktemp -d)
api_pid=""
cleanup() {
  if [ -n "$api_pid" ] && kill -0 "$api_pid" 2>/dev/null; then
    kill -TERM "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(.venv/bin/python -c 'from org_service.embedded import free_port; print(free_port())')
base_url="http://127.0.0.1:$port"
# The fuzzer's failed logins and creates all come from this one address: the throttles
# would soon refuse the session's own login (they have tests of their own).
(
  cd "$work"
  # This checkout's code, whatever the .venv was installed from.
  export PYTHONPATH="$root" EMBEDDED_DATA_DIR="$work/data" MONGODB_URL="" \
    BCRYPT_ROUNDS="${BCRYPT_ROUNDS:-4}" \
    LOGIN_MAX_FAILURES_PER_ADDRESS=1000000 LOGIN_MAX_FAILURES_PER_EMAIL=1000000 \
    LOGIN_EMAIL_CEILING=1000000 LOGIN_EMAIL_SLOWDOWN_AFTER=1000000 \
    CREATE_MAX_PER_ADDRESS=1000000 PASSWORD_RESET_MAX_PER_ADDRESS=1000000 \
    PASSWORD_RESET_MAX_PER_EMAIL=1000000
  JWT_SECRET_KEY=$("$root/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
  export JWT_SECRET_KEY
  exec "$root/.venv/bin/uvicorn" org_service.main:app --host 127.0.0.1 --port "$port" \
    --no-access-log --loop asyncio
) > "$work/api.log" 2>&1 &
api_pid=$!

for _ in $(seq 1 300); do
  curl -fsS "$base_url/ready" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || { cat "$work/api.log" >&2; exit 1; }
  sleep 0.3
done
curl -fsS "$base_url/ready" >/dev/null || { echo "the API never became ready" >&2; exit 1; }

# From the repository's root, so `st` reads schemathesis.toml.
PYTHONPATH="$root" SCHEMATHESIS_HOOKS=scripts.st_hooks ST_BASE_URL="$base_url" \
  .venv/bin/st run "$base_url/openapi.json" --checks all \
  --phases examples,coverage,fuzzing,stateful --workers 1 "$@"
