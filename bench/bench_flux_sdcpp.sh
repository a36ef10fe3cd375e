#!/bin/sh
# bench_flux_sdcpp.sh: one Flux step on the same GGUF transformer with the
# engine (bench_flux_gguf: the transformer alone, random prompt embeddings)
# and with stable-diffusion.cpp (its whole txt2img: CLIP-L, the transformer,
# the VAE; T5-XXL only when T5 is set: without it sd.cpp feeds 256 zero T5
# tokens, the same count the engine's bench uses, so both peaks are about
# the diffusion model), each under /usr/bin/time -v and the memory and bench
# locks, one after the other, in a session of its own whose autogroup runs
# at nice -15 (with the kernel's autogroups on, a plain nice -15 only ranks
# a process inside its own session: on a shared machine the step got 25 %
# of a core); prints the step times, CPU times and peak RSS side by side.
# sd.cpp is fetched and built by hand outside the repo (docs/PERFORMANCE.md);
# the random full-size files come from tests/reference/make_flux_full_gguf.py.
#
#   bench/bench_flux_sdcpp.sh FLUX.gguf [SIZE] [STEPS]
#   env: SD (the sd binary, default /work/sdcpp-src/build/bin/sd-cli),
#        BENCH (default build/release/bench/bench_flux_gguf), PARTS (the folder
#        with clip_l_full_f16.safetensors, ae_full_f16.safetensors; default
#        tests/reference/out), T5 (a T5-XXL file for sd.cpp; default none),
#        THREADS (2),
#        ONLY (lf or sdcpp: run one side), LOCKED (set: the caller holds
#        /tmp/lf-bigmem.lock and /tmp/lf-bench.lock for both runs)
set -eu
flux=${1:?usage: $0 FLUX.gguf [SIZE] [STEPS]}
size=${2:-512}
steps=${3:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
SD=${SD:-/work/sdcpp-src/build/bin/sd-cli}
BENCH=${BENCH:-$here/build/release/bench/bench_flux_gguf}
PARTS=${PARTS:-$here/tests/reference/out}
THREADS=${THREADS:-2}
ONLY=${ONLY:-}
lock="flock /tmp/lf-bigmem.lock flock /tmp/lf-bench.lock"
[ -n "${LOCKED:-}" ] && lock=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # name, command...
    name=$1
    shift
    echo "== $name: $*"
    echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    setsid -w sh -c 'echo -15 >/proc/self/autogroup 2>/dev/null; exec "$@"' sh $lock nice -n -15 \
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_VERBOSE=2 /usr/bin/time -v "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" || echo "   $name failed (see below)"
    echo "   load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
    grep -E "^(Flux|OpenBLAS|load|step|output)" "$tmp/$name.out" || true
    grep -hE "sampling completed|get_learned_condition completed|loading model from|total params|params backend buffer|compute buffer size|error|ERROR|failed" \
        "$tmp/$name.out" "$tmp/$name.err" | tail -8 || true
    grep -E "Maximum resident|Elapsed|User time|System time|Percent of CPU" "$tmp/$name.err" || true
}
if [ "$ONLY" != sdcpp ]; then
    run lf "$BENCH" --file "$flux" --size "$size" --steps "$steps" --threads "$THREADS"
fi
if [ "$ONLY" != lf ]; then
    run sdcpp "$SD" --diffusion-model "$flux" --clip_l "$PARTS/clip_l_full_f16.safetensors" \
        ${T5:+--t5xxl "$T5"} --vae "$PARTS/ae_full_f16.safetensors" \
        -p "a cat in the house" --cfg-scale 1.0 --sampling-method euler --steps "$steps" \
        -H "$size" -W "$size" -t "$THREADS" -s 42 --eager-load -o "$tmp/sdcpp.png" -v
fi
# Side by side: the engine's step time(s) (first includes planning), sd.cpp's sampling time
# (its steps, the first includes graph allocation), and each process's peak RSS.
lf_step=$(grep -E "^step" "$tmp/lf.out" 2>/dev/null | sed -E 's/^step [0-9]+( \(plans\))? +([0-9.]+) s.*/\2/' |
    awk '{s += $1} END {if (NR) printf "%.1f", s}')
sd_step=$(cat "$tmp/sdcpp.out" "$tmp/sdcpp.err" 2>/dev/null | grep -o "sampling completed, taking [0-9.]*s" |
    grep -o "[0-9.]*" | tail -1)
lf_rss=$(grep "Maximum resident" "$tmp/lf.err" 2>/dev/null | awk '{printf "%.2f", $NF / 1048576}')
sd_rss=$(grep "Maximum resident" "$tmp/sdcpp.err" 2>/dev/null | awk '{printf "%.2f", $NF / 1048576}')
cpu() { awk '/User time|System time/ {s += $NF} END {if (NR) printf "%.1f", s}' "$1" 2>/dev/null; }
lf_cpu=$(cpu "$tmp/lf.err")
sd_cpu=$(cpu "$tmp/sdcpp.err")
printf '\n| %s | steps | size | s (sampling) | process CPU s (whole run) | peak RSS GiB (whole process) |\n' "$(basename "$flux")"
printf '|---|---|---|---|---|---|\n'
printf '| lightfarm (transformer only) | %s | %s | %s | %s | %s |\n' "$steps" "$size" "${lf_step:--}" "${lf_cpu:--}" "${lf_rss:--}"
printf '| stable-diffusion.cpp (whole txt2img) | %s | %s | %s | %s | %s |\n' "$steps" "$size" "${sd_step:--}" "${sd_cpu:--}" "${sd_rss:--}"
