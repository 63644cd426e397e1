# Sourced first by test.sh and postman.sh: Newman runs on Node.js, and finding it missing
# after minutes of passing tests (bash's "command not found", exit 127) helps nobody.
need_node() {
  local missing=() major
  command -v node >/dev/null 2>&1 || missing+=(node)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    [ "$major" -ge 18 ] 2>/dev/null && return 0
    missing=("Node.js 18+ (found $(node --version 2>/dev/null || echo 'an unknown version'))")
  fi
  echo "$1 needs Node.js 18+ and npm for the Postman/Newman run: apt install nodejs npm" \
    "(missing: ${missing[*]})" >&2
  exit 1
}
