# Sourced by postman.sh and openapi_check.sh (after _setup.sh): start this checkout's API on
# a free port against an embedded database in a scratch directory, wait until it is ready,
# and remove both on exit. Sets `base_url` and `work` (the API's log is "$work/api.log").
# Extra environment for the API: `throwaway_api_env` (an array of NAME=value), if set.
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
# Started from the scratch directory so a developer's .env cannot point it elsewhere; this
# checkout's code whatever the .venv was installed from.
(
  cd "$work"
  export PYTHONPATH="$root" EMBEDDED_DATA_DIR="$work/data" MONGODB_URL="" \
    BCRYPT_ROUNDS="${BCRYPT_ROUNDS:-4}"
  for setting in ${throwaway_api_env[@]+"${throwaway_api_env[@]}"}; do
    export "${setting?}"
  done
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
