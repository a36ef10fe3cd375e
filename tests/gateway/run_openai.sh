#!/usr/bin/env bash
# Runs test_openai.py with the openai client (PyPI) from a venv in the build
# tree, creating it on first use. Exit 77 (ctest: skipped) when the venv or
# the package cannot be had (no network to PyPI).
#   run_openai.sh PYTHON VENV_DIR TEST_PY GATEWAY BROKER WORKER
set -u
PY="$1" VENV="$2" TEST="$3"
shift 3
if ! "$VENV/bin/python" -c "import openai" 2>/dev/null; then
  "$PY" -m venv "$VENV" >/dev/null 2>&1 || { echo "SKIP: cannot create a venv at $VENV (python3-venv missing?)"; exit 77; }
  if ! timeout 300 "$VENV/bin/pip" install -q openai >"$VENV.pip.log" 2>&1; then
    echo "SKIP: pip could not install openai from PyPI (see $VENV.pip.log)"
    exit 77
  fi
fi
exec "$VENV/bin/python" "$TEST" "$@"
