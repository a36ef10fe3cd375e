#!/usr/bin/env bash
# bench_threads: two CPU "workers" side by side on one machine, each a loop of
# lightfarm-engine processes making the same small image (the built-in model,
# 256x256, 20 steps, euler, CFG 7), under several thread settings:
#   old      both with threads = all cores, unconfined (the default before
#            LF_LOCAL_WORKERS: 2 x cores compute threads on the cores)
#   old-spin as old, with libgomp's default wait policy (its threads spin
#            between oneDNN primitives: before OMP_WAIT_POLICY=PASSIVE)
#   slice    threads = cores / 2, each confined to its own half of the cores
#            (taskset, as lf_cpushare_pin does for LF_LOCAL_WORKERS=2)
#   free     threads = cores / 2, unconfined
#   one-pin  ONE process, threads = cores, LF_PIN_THREADS=1 (each thread on
#            its own core) vs one-free (LF_PIN_THREADS=0), for the pinning
#            default
# A config may end in @WAIT, libgomp's wait between oneDNN primitives for that
# config: @passive (OMP_WAIT_POLICY=PASSIVE, the default here), @spin
# (libgomp's default: spin ~300000 rounds, then sleep) or @spinN
# (GOMP_SPINCOUNT=N); old-spin = old@spin. The CPU pool follows the wait
# policy unless LF_CPU_POOL is set (kernels/cpu/lf_cpu_backend.c).
# Prints per config: images, wall seconds, images per minute, the mean
# seconds per image and the CPU seconds per image (all processes of the
# config, from /usr/bin/time). OPENBLAS_NUM_THREADS=1 as deploy/lightfarm
# runs workers.
#   bench/bench_threads.sh BUILD_DIR [IMAGES_PER_WORKER (3)] [CONFIGS...]
set -euo pipefail
BUILD="$(cd "$1" && pwd)"
K="${2:-3}"
shift $(($# >= 2 ? 2 : $#))
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(old slice free old-spin one-free one-pin)
SRC="$(cd "$(dirname "$0")/.." && pwd)"
ENGINE="$BUILD/engine/cli/lightfarm-engine"
MODEL="$SRC/models/lf-tiny-shapes.safetensors"
T="$(mktemp -d /tmp/lf-bench-threads.XXXXXX)"
TIME="/usr/bin/time -a -o $T/cpu -f %U+%S"
[ -x /usr/bin/time ] || TIME=""
trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
CORES="$(nproc)"
HALF=$((CORES / 2 > 0 ? CORES / 2 : 1))

failed() { echo "image $1 failed (not counted); its log ends:" >&2; tail -n 3 "$T/${1%-*}.log" >&2; }

# loop NAME THREADS CPUS PIN: K images one after another; one "start end" line per image.
loop() {
  local name="$1" threads="$2" cpus="$3" pin="$4" i
  for i in $(seq 1 "$K"); do
    local t0 t1
    t0="$(date +%s.%N)"
    if [ -n "$cpus" ]; then
      LF_PIN_THREADS="$pin" $TIME taskset -c "$cpus" "$ENGINE" generate -m "$MODEL" -p "a red circle" -o "$T/$name-$i.png" \
        -W 256 -H 256 --steps 20 --seed "$i" --threads "$threads" >"$T/$name.log" 2>&1 || { failed "$name-$i"; continue; }
    else
      LF_PIN_THREADS="$pin" $TIME "$ENGINE" generate -m "$MODEL" -p "a red circle" -o "$T/$name-$i.png" \
        -W 256 -H 256 --steps 20 --seed "$i" --threads "$threads" >"$T/$name.log" 2>&1 || { failed "$name-$i"; continue; }
    fi
    t1="$(date +%s.%N)"
    echo "$t0 $t1" >>"$T/$name.times"
  done
}

report() {
  local config="$1" cpu="n/a"
  shift
  [ -s "$T/cpu" ] && cpu="$(awk '{ split($0, a, "+"); t += a[1] + a[2]; n++ } END { printf "%.2f", t / n }' "$T/cpu")"
  cat "$@" | awk -v c="$config" -v cpu="$cpu" '{ if (NR == 1 || $1 < s) s = $1; if ($2 > e) e = $2; d += $2 - $1; n++ }
    END { printf "%-16s images %2d  wall %7.2f s  %6.2f images/min  %6.2f s/image (mean)  cpu %s s/image\n", c, n, e - s, n * 60 / (e - s), d / n, cpu }'
}

echo "cores $CORES, $K images per worker, load $(cut -d' ' -f1-3 /proc/loadavg)"
# A first image outside the timing (page cache, ccache-cold binaries).
"$ENGINE" generate -m "$MODEL" -p "a red circle" -o "$T/warm.png" -W 256 -H 256 --steps 2 >/dev/null 2>&1
last_cpu=$((CORES - 1))
for c in "${CONFIGS[@]}"; do
  rm -f "$T"/*.times "$T/cpu"
  base="${c%@*}" policy=passive
  [ "$base" = "$c" ] || policy="${c##*@}"
  [ "$base" = old-spin ] && base=old policy=spin
  (
  case "$policy" in
  passive) export OMP_WAIT_POLICY=PASSIVE; unset GOMP_SPINCOUNT ;;
  spin) unset OMP_WAIT_POLICY GOMP_SPINCOUNT ;;
  spin[0-9]*) unset OMP_WAIT_POLICY; export GOMP_SPINCOUNT="${policy#spin}" ;;
  *) echo "unknown wait $policy in $c (passive, spin, spinN)" >&2; exit 2 ;;
  esac
  case "$base" in
  old) loop a "$CORES" "" 0 & loop b "$CORES" "" 0 & wait ;;
  slice) loop a "$HALF" "0-$((HALF - 1))" 0 & loop b "$HALF" "$HALF-$last_cpu" 0 & wait ;;
  free) loop a "$HALF" "" 0 & loop b "$HALF" "" 0 & wait ;;
  one-free) loop a "$CORES" "" 0 ;;
  one-pin) loop a "$CORES" "" 1 ;;
  *) echo "unknown config $c" >&2; exit 2 ;;
  esac
  )
  report "$c" "$T"/*.times
done
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
