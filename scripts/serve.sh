#!/usr/bin/env bash
# Set up and start the API on http://127.0.0.1:8000.
# Without MONGODB_URL the API starts an embedded SecantusDB with its data under .data/.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
data=${EMBEDDED_DATA_DIR:-.data}
mkdir -p "$data"
if [ -z "${JWT_SECRET_KEY:-}" ] && ! grep -qs '^JWT_SECRET_KEY=' .env; then
  # A development secret, generated once and kept with the embedded data.
  if [ ! -s "$data/jwt_secret" ]; then
    (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' \
      > "$data/jwt_secret")
  fi
  JWT_SECRET_KEY=$(cat "$data/jwt_secret")
  export JWT_SECRET_KEY
fi
if [ -z "${MONGODB_URL:-}" ] && ! grep -qs '^MONGODB_URL=.' .env; then
  echo "MONGODB_URL is not set: using the embedded SecantusDB (data in $data/db)"
fi
exec .venv/bin/uvicorn org_service.main:app --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" \
  --no-server-header --no-access-log --loop asyncio "$@"
