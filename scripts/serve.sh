#!/usr/bin/env bash
# Set up and start the API on http://127.0.0.1:8000.
# Without MONGODB_URL the API starts an embedded SecantusDB with its data under
# EMBEDDED_DATA_DIR (.data unless the environment or .env says otherwise).
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
# The settings as the app reads them (environment, then .env): one source of truth. It
# also refuses at once, in one line, a port or a data folder another instance holds.
settings=$(.venv/bin/python -m org_service.preflight --host "${HOST:-127.0.0.1}" \
  --port "${PORT:-8000}") || exit 1
eval "$settings"
if [ -z "$secret_configured" ]; then
  # A development secret, generated once and kept with the embedded data.
  mkdir -p "$data_dir"
  if [ ! -s "$data_dir/jwt_secret" ]; then
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' \
      > "$data_dir/jwt_secret")
  fi
  JWT_SECRET_KEY=$(cat "$data_dir/jwt_secret")
  export JWT_SECRET_KEY
fi
exec .venv/bin/uvicorn org_service.main:app --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" \
  --no-server-header --no-access-log --loop asyncio "$@"
