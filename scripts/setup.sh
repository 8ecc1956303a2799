#!/usr/bin/env bash
# Creates or reuses the project venv (.venv) and installs the pinned requirements.
# Safe to run twice: it reinstalls only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$version" in
  3.11|3.12|3.13) ;;
  *) echo "error: Python $version found as '$PYTHON'; TensorFlow 2.21 + Airflow 3.3 need Python 3.11-3.13." \
          "Set PYTHON=/path/to/python3.11 and re-run." >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON ($version)"
  "$PYTHON" -m venv .venv
fi

# Everything comes from requirements.lock (made from requirements*.txt by `make lock`), every
# package pinned with its hashes, so a fresh install a year from now gets today's versions.
if ! "$PYTHON" scripts/lockfile.py check; then exit 2; fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements.lock into .venv (a few minutes the first time)"
  # Plain pip, no Airflow constraint file: it pins protobuf/numpy too low for TF 2.21.
  # --no-deps: the lock is complete; anything it lacks is a lock bug, not a download.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
      --no-deps -r requirements.lock
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
else
  echo "setup: .venv is up to date"
fi

# The C helpers of build-tfrecords (deeplab/native); a no-op when already built. Without a C
# compiler the converter still works, with Pillow's slower label decoding.
if ! native_lib=$(.venv/bin/python -m deeplab.native 2>&1); then
  echo "setup: warning: $native_lib (label decoding falls back to Pillow)" >&2
fi
