#!/usr/bin/env bash
# Run the Postman collection with Newman against a throwaway API on the embedded database.
# Exits non-zero on any failed assertion; the API and its data are always removed.
set -euo pipefail
source "$(dirname "$0")/_need_node.sh"
need_node scripts/postman.sh
source "$(dirname "$0")/_setup.sh"
NEWMAN_VERSION=6.2.2

# Newman lives in the project's own node_modules/ (git-ignored), installed once per version.
installed=$(node -p "require('./node_modules/newman/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$NEWMAN_VERSION" ]; then
  echo "installing newman@$NEWMAN_VERSION into node_modules/"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix . "newman@$NEWMAN_VERSION"
fi

source "$(dirname "$0")/_throwaway_api.sh"

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
