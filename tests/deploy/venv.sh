# venv.sh: sourced by the deploy tests. deploy_venv NAME prints the bin folder of tests/deploy/.venv-NAME,
# a virtual environment with requirements-NAME.txt (pinned) installed from PyPI, made on first use and
# remade when that file changes (its hash is kept in the venv). When requirements-NAME-build.txt exists
# it is installed first and the rest without build isolation (sources that need those build tools).
# Fails (status 1, the reason on stderr) when python3's venv module or PyPI is not there: the callers
# skip with that message.
deploy_venv() {
  local name="$1" here dir req sum
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  dir="$here/.venv-$name"
  req="$here/requirements-$name.txt"
  sum="$(cat "$req" "$here/requirements-$name-build.txt" 2>/dev/null | sha256sum | cut -d' ' -f1)"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.requirements.sha256" 2>/dev/null)" = "$sum" ]; then
    echo "$dir/bin"
    return 0
  fi
  # One installer at a time (ctest runs the deploy tests in parallel).
  (
    flock 9
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.requirements.sha256" 2>/dev/null)" = "$sum" ]; then exit 0; fi
    rm -rf "$dir"
    python3 -m venv "$dir" >&2 || { echo "cannot make a venv (python3-venv)" >&2; exit 1; }
    local nbi=()
    if [ -f "$here/requirements-$name-build.txt" ]; then
      "$dir/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-$name-build.txt" >&2 ||
        { echo "cannot install requirements-$name-build.txt from PyPI" >&2; rm -rf "$dir"; exit 1; }
      nbi=(--no-build-isolation)
    fi
    "$dir/bin/pip" install -q --disable-pip-version-check "${nbi[@]}" -r "$req" >&2 ||
      { echo "cannot install requirements-$name.txt from PyPI" >&2; rm -rf "$dir"; exit 1; }
    echo "$sum" >"$dir/.requirements.sha256"
  ) 9>"$here/.venv-$name.lock" || return 1
  echo "$dir/bin"
}
