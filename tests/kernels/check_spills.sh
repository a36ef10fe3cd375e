#!/bin/sh
# check_spills.sh NVCC "ARCHS" FILE.cu...: compiles each CUDA source with
# nvcc --resource-usage for every real architecture in ARCHS (CMake form,
# e.g. "80-real;86-real;90-virtual") and fails if any kernel spills to local
# memory, or if a hot kernel uses a stack frame. Prints the report.
set -eu
nvcc=$1
archs=$2
shift 2
dir=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gencode=""
for arch in $(echo "$archs" | tr ';' ' '); do
    case $arch in *-virtual) continue ;; esac
    sm=${arch%-real}
    gencode="$gencode -gencode arch=compute_$sm,code=sm_$sm"
done
status=0
for src in "$@"; do
    # One nvcc run per file covers every architecture.
    # shellcheck disable=SC2086
    "$nvcc" -std=c++17 -O3 --resource-usage $gencode -I"$dir/kernels" -c "$src" \
        -o "$tmp/out.o" >"$tmp/report.txt" 2>&1 || { cat "$tmp/report.txt"; exit 1; }
    echo "== $(basename "$src")"
    grep -E "Compiling entry|Function properties|Used [0-9]+ registers|spill" "$tmp/report.txt" |
        sed 's/^ptxas info *: //' || true
    if grep -Eq "[1-9][0-9]* bytes spill (stores|loads)" "$tmp/report.txt"; then
        echo "FAIL: local-memory spill in $src"
        status=1
    fi
    # A stack frame is local memory too; allowed only in the cold
    # timestep-embedding kernel (sinf/cosf range reduction).
    if grep -B1 -E "[1-9][0-9]* bytes stack frame" "$tmp/report.txt" |
        grep "Function properties" | grep -qv k_tstep; then
        echo "FAIL: stack frame (local memory) in a hot kernel of $src"
        status=1
    fi
done
exit $status
