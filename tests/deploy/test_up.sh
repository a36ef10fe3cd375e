#!/usr/bin/env bash
# test_up: `deploy/lightfarm up` returns only when the farm can serve. Within
# a second of `up` returning, a txt2img with no model field is submitted; the
# job must be done by the real default model lf-tiny-shapes (models/), not
# lf-diagnostic, the test card a farm falls back to while no worker has
# advertised a model yet. Then `down`.
#   test_up.sh SOURCE_DIR BUILD_DIR
# Private ports and var dir; exits 77 (ctest: skipped) without the CLIP
# merges file the tiny model needs (tools/fetch_assets.sh or the refdata copy).
set -euo pipefail
SRC="$(cd "$1" && pwd)"
BUILD="$(cd "$2" && pwd)"
VOCAB=bpe_simple_vocab_16e6.txt.gz
T="$(mktemp -d /tmp/lf-test-up.XXXXXX)"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
farm_env "$T" "$BUILD"
export LF_MODELS_DIR="$SRC/models"
FARM="$SRC/deploy/lightfarm"
cleanup() { "$FARM" down >/dev/null 2>&1 || true; rm -rf "$T"; }
trap cleanup EXIT

# The CLIP merges file: $LF_ASSETS_DIR, <repo>/assets, or the refdata copy.
assets=""
for d in "${LF_ASSETS_DIR:-}" "$SRC/assets"; do
  [ -n "$d" ] && [ -f "$d/clip/$VOCAB" ] && { assets="$d"; break; }
done
if [ -z "$assets" ]; then
  for r in "${LF_REFDATA_DIR:-}" "$SRC/../shared/refdata" /work/shared/refdata; do
    if [ -n "$r" ] && [ -f "$r/tokenizers/clip/$VOCAB" ]; then
      mkdir -p "$T/assets/clip" && ln -s "$(cd "$r" && pwd)/tokenizers/clip/$VOCAB" "$T/assets/clip/$VOCAB"
      assets="$T/assets"
      break
    fi
  done
fi
[ -n "$assets" ] || { echo "SKIP: no CLIP merges file $VOCAB (run tools/fetch_assets.sh)"; exit 77; }
export LF_ASSETS_DIR="$assets"
[ -f "$LF_MODELS_DIR/lf-tiny-shapes.safetensors" ] || { echo "FAIL: no models/lf-tiny-shapes.safetensors" >&2; exit 1; }

# (ctest sets OMP_WAIT_POLICY for the tests: up's own default is what is checked here.)
env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$FARM" up >"$T/up.out" 2>&1 || { cat "$T/up.out" >&2; fail "up failed"; }
t_up="$(date +%s%N)"
url="http://127.0.0.1:$LF_HTTP_PORT"
sub="$(curl -sS -X POST -H 'Content-Type: application/json' \
  -d '{"prompt":"a red circle","steps":2,"width":64,"height":64}' "$url/v1/jobs")"
t_sub="$(date +%s%N)"
cat "$T/up.out"
echo "submitted $(( (t_sub - t_up) / 1000000 )) ms after up returned: $sub"
[ $(( (t_sub - t_up) / 1000000 )) -lt 1000 ] || echo "note: the submit came more than 1 s after up (a slow machine)"
grep -q "farm is up" "$T/up.out" || fail "up did not print the address"
id="$(jq -r .id <<<"$sub")"
[ -n "$id" ] && [ "$id" != null ] || fail "the job was not accepted: $sub"

status="" view=""
for _ in $(seq 1 600); do
  view="$(curl -sS "$url/v1/jobs/$id")"
  status="$(jq -r .status <<<"$view")"
  case "$status" in done | failed | cancelled) break ;; esac
  sleep 0.5
done
[ "$status" = done ] || fail "the job ended '$status': $(jq -c '.error' <<<"$view")"
model="$(jq -r '.result.info.model' <<<"$view")"
[ "$model" = lf-tiny-shapes ] || fail "the job ran on '$model', not the default model lf-tiny-shapes"
# The only local worker has the cores to itself: its OpenMP threads (oneDNN) spin a short while between
# operations (GOMP_SPINCOUNT) and are not told to sleep at once (deploy/lightfarm omp_wait_env).
wpid="$(cat "$LF_VAR_DIR/run/worker-1.pid" 2>/dev/null || true)"
[ -n "$wpid" ] && tr '\0' '\n' <"/proc/$wpid/environ" | grep -qx 'GOMP_SPINCOUNT=10000' ||
  fail "worker-1 (pid ${wpid:-?}) does not run with GOMP_SPINCOUNT=10000"
! tr '\0' '\n' <"/proc/$wpid/environ" | grep -q '^OMP_WAIT_POLICY=' ||
  fail "worker-1 (pid $wpid) runs with an OMP_WAIT_POLICY: $(tr '\0' '\n' <"/proc/$wpid/environ" | grep '^OMP_WAIT_POLICY=')"
# OpenBLAS starts no threads of its own at load: the backend asks for the worker's count.
tr '\0' '\n' <"/proc/$wpid/environ" | grep -qx 'OPENBLAS_NUM_THREADS=1' ||
  fail "worker-1 (pid $wpid) does not run with OPENBLAS_NUM_THREADS=1"
# /v1/workers says its compute threads (all usable cores: the only local worker) and pinning none.
wv="$(curl -sS "$url/v1/workers")"
[ "$(jq -r '.workers[0].threads' <<<"$wv")" -ge 1 ] 2>/dev/null &&
  [ "$(jq -r '.workers[0].threads' <<<"$wv")" -le "$(nproc)" ] &&
  [ "$(jq -r '.workers[0].pinning' <<<"$wv")" = none ] || fail "/v1/workers threads/pinning: $(jq -c '.workers[0] | {threads, pinning, cpus}' <<<"$wv")"
"$FARM" down >/dev/null || fail "down failed"
echo "ok: up returned ready; the first job ran on $model; the only worker spins briefly (GOMP_SPINCOUNT=10000, no OMP_WAIT_POLICY)"

# With API keys the readiness probes authenticate (with the first key); without them /v1/workers
# would answer 401 and up would never call the farm ready.
LF_API_KEYS=key-one,key-two LF_READY_TIMEOUT_S=60 "$FARM" up >"$T/up3.out" 2>&1 ||
  { cat "$T/up3.out" >&2; fail "up with LF_API_KEYS failed"; }
code="$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/workers")"
[ "$code" = 401 ] || fail "the keyed farm answered $code without a key, not 401"
"$FARM" down >/dev/null || fail "down failed"
echo "ok: up with LF_API_KEYS returned ready"

# A worker that cannot start: up fails loudly, naming it and showing the end of its log.
if LF_WORKER_DEVICE=nonsense "$FARM" up >"$T/up2.out" 2>&1; then
  cat "$T/up2.out" >&2
  fail "up succeeded although its worker cannot start"
fi
grep -q "worker-1 (pid [0-9]*) exited while the farm was starting" "$T/up2.out" ||
  { cat "$T/up2.out" >&2; fail "up did not name the worker that died"; }
grep -q "bad device 'nonsense': expected cpu, cuda or cuda:N" "$T/up2.out" ||
  { cat "$T/up2.out" >&2; fail "up did not show the worker's last log lines"; }
"$FARM" down >/dev/null || fail "down failed"
echo "ok: up failed naming the worker that died, with its log"

# up --gpus on a machine where the GPU cannot be used (a fake count of 1 where there is no usable GPU:
# skipped where CUDA works): the worker for cuda:0 exits saying why, and up names it.
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  if LF_FAKE_GPU_COUNT=1 "$FARM" up --gpus 1 >"$T/up4.out" 2>&1; then cat "$T/up4.out" >&2; fail "up --gpus 1 succeeded without a usable GPU"; fi
  grep -q "worker-gpu-0 (pid [0-9]*) exited while the farm was starting" "$T/up4.out" ||
    { cat "$T/up4.out" >&2; fail "up --gpus did not name the GPU worker that died"; }
  grep -Eq "device 'cuda:0' is not usable: (device 'cuda:0': )?(the CUDA runtime finds no usable GPU|this build has no CUDA backend)" "$T/up4.out" ||
    { cat "$T/up4.out" >&2; fail "the GPU worker did not say why cuda:0 is not usable"; }
  "$FARM" down >/dev/null || fail "down failed"
  echo "ok: up --gpus 1 without a usable GPU failed, the worker saying why: $(grep -o "device 'cuda:0' is not usable.*" "$T/up4.out" | head -n 1)"
fi
