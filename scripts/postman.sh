#!/usr/bin/env bash
# Run the Postman collection with Newman against a throwaway API on the embedded database.
# Exits non-zero on any failed assertion; the API and its data are always removed.
set -euo pipefail
source "$(dirname "$0")/_need_node.sh"
need_node scripts/postman.sh
source "$(dirname "$0")/_setup.sh"
root=$(pwd)
NEWMAN_VERSION=6.2.2

# Newman lives in the project's own node_modules/ (git-ignored), installed once per version.
installed=$(node -p "require('./node_modules/newman/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$NEWMAN_VERSION" ]; then
  echo "installing newman@$NEWMAN_VERSION into node_modules/"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix . "newman@$NEWMAN_VERSION"
fi

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
# Started from the scratch directory so a developer's .env cannot point it elsewhere.
(
  cd "$work"
  export EMBEDDED_DATA_DIR="$work/data" MONGODB_URL="" BCRYPT_ROUNDS="${BCRYPT_ROUNDS:-4}"
  JWT_SECRET_KEY=$("$root/.venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))')
  export JWT_SECRET_KEY
  exec "$root/.venv/bin/uvicorn" org_service.main:app --host 127.0.0.1 --port "$port" \
    --no-access-log --loop asyncio
) > "$work/api.log" 2>&1 &
api_pid=$!

echo "waiting for the API on $base_url"
for _ in $(seq 1 300); do
  if ! kill -0 "$api_pid" 2>/dev/null; then
    echo "the API exited while starting:" >&2
    cat "$work/api.log" >&2
    exit 1
  fi
  if curl -fsS "$base_url/ready" >/dev/null 2>&1; then
    break
  fi
  sleep 0.3
done
curl -fsS "$base_url/ready" >/dev/null || { echo "the API never became ready" >&2; cat "$work/api.log" >&2; exit 1; }

status=0
node_modules/.bin/newman run postman/org_service.postman_collection.json \
  --environment postman/local.postman_environment.json \
  --env-var "base_url=$base_url" \
  --color off --disable-unicode "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "newman failed (exit $status); API log tail:" >&2
  tail -n 40 "$work/api.log" >&2
fi
exit "$status"
