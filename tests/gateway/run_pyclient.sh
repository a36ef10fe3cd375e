#!/usr/bin/env bash
# Runs a gateway client test (test_a1111.py, test_openai.py) with its client
# from PyPI in a venv in the build tree, creating the venv and installing the
# packages on first use. Exit 77 (ctest: skipped) when the venv or a package
# cannot be had (no network to PyPI).
#   run_pyclient.sh PYTHON VENV_DIR "PACKAGE..." TEST_PY GATEWAY BROKER WORKER
set -u
PY="$1" VENV="$2" PKGS="$3" TEST="$4"
shift 4
missing=""
for p in $PKGS; do
  "$VENV/bin/python" -m pip show -q "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  "$PY" -m venv "$VENV" >/dev/null 2>&1 || { echo "SKIP: cannot create a venv at $VENV (python3-venv missing?)"; exit 77; }
  # shellcheck disable=SC2086 # one word a package
  if ! timeout 300 "$VENV/bin/pip" install -q $missing >"$VENV.pip.log" 2>&1; then
    echo "SKIP: pip could not install$missing from PyPI (see $VENV.pip.log)"
    exit 77
  fi
fi
exec "$VENV/bin/python" "$TEST" "$@"
