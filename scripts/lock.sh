#!/usr/bin/env bash
# Regenerates requirements.lock from requirements.txt + requirements-dev.txt (`make lock`).
# Run it after editing either file, and commit the lock with them: setup.sh refuses a stale
# lock and tests/test_lock.py fails on one. The lock is universal (any OS, Python 3.11+), so a
# user on Python 3.12 or a Mac gets the same versions as CI.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8  # the lock's tool, pinned like everything else
tools=.cache/lock-tools
if [ ! -x "$tools/bin/uv" ] || [ "$("$tools/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

body=$(mktemp)
trap 'rm -f "$body"' EXIT
# --no-header: the first line is ours (the sources' digest); uv's own header would name
# this temp file. Versions already in the lock are kept unless a source asks otherwise
# (uv reads the existing lock as preferences); `make lock UPGRADE=1` takes the newest.
upgrade=()
[ "${UPGRADE:-0}" = 1 ] && upgrade=(--upgrade)
[ -f requirements.lock ] && cp requirements.lock "$body"
"$tools/bin/uv" pip compile requirements-dev.txt --universal --python-version 3.11 \
    --generate-hashes --no-header --quiet "${upgrade[@]}" --output-file "$body"
{
  echo "# sources sha256: $(python3 scripts/lockfile.py digest)"
  echo "# Made by \`make lock\` (scripts/lock.sh, uv $UV_VERSION) from requirements.txt and"
  echo "# requirements-dev.txt. Do not edit: edit those and run \`make lock\`."
  cat "$body"
} > requirements.lock
echo "requirements.lock: $(grep -c '^[a-zA-Z0-9]' requirements.lock) pins, in step with its sources"
