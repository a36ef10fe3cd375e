#!/bin/sh
# bench_flux_sdcpp.sh: one Flux step on the same GGUF transformer with the
# engine (bench_flux_gguf: the transformer alone, random prompt embeddings)
# and with stable-diffusion.cpp (its whole txt2img: CLIP-L, T5-XXL, the
# transformer, the VAE), each under /usr/bin/time -v and the memory lock,
# one after the other; prints the step times and peak RSS side by side.
# sd.cpp is fetched and built by hand outside the repo (docs/PERFORMANCE.md);
# the random full-size files come from tests/reference/make_flux_full_gguf.py.
#
#   bench/bench_flux_sdcpp.sh FLUX.gguf [SIZE] [STEPS]
#   env: SD (the sd binary, default /work/sdcpp-src/sd/build/bin/sd),
#        BENCH (default build/rel/bench/bench_flux_gguf), PARTS (the folder
#        with t5xxl_full_q4_k.gguf, clip_l_full_f16.safetensors,
#        ae_full_f16.safetensors; default tests/reference/out), THREADS (2),
#        ONLY (lf or sdcpp: run one side), LOCKED (set: the caller holds
#        /tmp/lf-bigmem.lock for both runs, as in
#        flock /tmp/lf-bigmem.lock env LOCKED=1 bench/bench_flux_sdcpp.sh ...)
set -eu
flux=${1:?usage: $0 FLUX.gguf [SIZE] [STEPS]}
size=${2:-512}
steps=${3:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
SD=${SD:-/work/sdcpp-src/sd/build/bin/sd}
BENCH=${BENCH:-$here/build/rel/bench/bench_flux_gguf}
PARTS=${PARTS:-$here/tests/reference/out}
THREADS=${THREADS:-2}
ONLY=${ONLY:-}
lock="flock /tmp/lf-bigmem.lock"
[ -n "${LOCKED:-}" ] && lock=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # name, command...
    name=$1
    shift
    echo "== $name: $*"
    echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    $lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -v "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" || echo "   $name failed (see below)"
    echo "   load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
    grep -E "^(Flux|OpenBLAS|load|step|output)" "$tmp/$name.out" || true
    grep -hE "sampling completed|get_learned_condition completed|loading model from|total params|error|ERROR|failed" \
        "$tmp/$name.out" "$tmp/$name.err" | tail -8 || true
    grep -E "Maximum resident|Elapsed" "$tmp/$name.err" || true
}
if [ "$ONLY" != sdcpp ]; then
    run lf "$BENCH" --file "$flux" --size "$size" --steps "$steps" --threads "$THREADS"
fi
if [ "$ONLY" != lf ]; then
    run sdcpp "$SD" --diffusion-model "$flux" --clip_l "$PARTS/clip_l_full_f16.safetensors" \
        --t5xxl "$PARTS/t5xxl_full_q4_k.gguf" --vae "$PARTS/ae_full_f16.safetensors" \
        -p "a cat in the house" --cfg-scale 1.0 --sampling-method euler --steps "$steps" \
        -H "$size" -W "$size" -t "$THREADS" -s 42 -o "$tmp/sdcpp.png" -v
fi
# Side by side: the engine's step time(s) (first includes planning), sd.cpp's sampling time
# (its steps, the first includes graph allocation), and each process's peak RSS.
lf_step=$(grep -E "^step" "$tmp/lf.out" 2>/dev/null | sed -E 's/^step [0-9]+( \(plans\))? +([0-9.]+) s.*/\2/' |
    awk '{s += $1} END {if (NR) printf "%.1f", s}')
sd_step=$(cat "$tmp/sdcpp.out" "$tmp/sdcpp.err" 2>/dev/null | grep -o "sampling completed, taking [0-9.]*s" |
    grep -o "[0-9.]*" | tail -1)
lf_rss=$(grep "Maximum resident" "$tmp/lf.err" 2>/dev/null | awk '{printf "%.2f", $NF / 1048576}')
sd_rss=$(grep "Maximum resident" "$tmp/sdcpp.err" 2>/dev/null | awk '{printf "%.2f", $NF / 1048576}')
printf '\n| %s | steps | size | s (sampling) | peak RSS GiB (whole process) |\n|---|---|---|---|---|\n' "$(basename "$flux")"
printf '| lightfarm (transformer only) | %s | %s | %s | %s |\n' "$steps" "$size" "${lf_step:--}" "${lf_rss:--}"
printf '| stable-diffusion.cpp (whole txt2img) | %s | %s | %s | %s |\n' "$steps" "$size" "${sd_step:--}" "${sd_rss:--}"
