#!/usr/bin/env bash
# Re-lock the production dependencies: requirements.lock, which the Dockerfile installs with
# --require-hashes. Run it after changing [project] dependencies in pyproject.toml
# (tests/test_lock.py fails until the lock agrees). It keeps the versions already locked where
# they still fit; `scripts/lock.sh --upgrade` takes the newest releases instead.
# uv comes from PyPI into a throwaway venv, so neither .venv nor the system gets it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/python" -m pip install --quiet uv
# The image's interpreter and platform (python:3.11-slim on x86_64), and no extras: the
# embedded database (GPL-2.0) and the dev tools stay out of production.
"$tools/bin/uv" pip compile pyproject.toml --quiet --generate-hashes \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --no-strip-markers -o requirements.lock "$@"
