#!/usr/bin/env bash
# Browser tests of the web UI (headless Chromium + Python playwright) against a real farm.
#
#   tests/web/run_browser_tests.sh GATEWAY BROKER WORKER REDIS_SERVER [pytest args...]
#   tests/web/run_browser_tests.sh --mock [pytest args...]     # UI development only: the
#                                                              # mock gateway test double
#
# Starts redis-server (temp dir), one broker, two workers and two gateways on free loopback
# ports — one open, one with an API key (LF_API_KEYS) — waits for /healthz, runs pytest and
# stops everything on exit. Without Chromium or playwright it prints "SKIP: ..." and exits 0
# (ctest reports the test as skipped).
#
# Environment: LF_CHROMIUM (default /usr/bin/chromium), LF_WEB_OUT (screenshots and logs;
# default <repo>/tests/out/web), LF_WEB_VENV (default tests/web/.venv), LF_WEB_KEEP=1 keeps
# the farm's temp dir.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${LF_WEB_VENV:-$HERE/.venv}"
OUT="${LF_WEB_OUT:-$ROOT/tests/out/web}"
CHROMIUM="${LF_CHROMIUM:-}"

skip() { echo "SKIP: $*"; exit 0; }

MOCK=0
if [[ "${1:-}" == "--mock" ]]; then
  MOCK=1; shift
else
  if [[ $# -lt 4 ]]; then
    echo "usage: $0 GATEWAY BROKER WORKER REDIS_SERVER [pytest args...] | $0 --mock [pytest args...]" >&2
    exit 2
  fi
  GATEWAY="$1" BROKER="$2" WORKER="$3" REDIS="$4"; shift 4
  for b in "$GATEWAY" "$BROKER" "$WORKER" "$REDIS"; do
    [[ -x "$b" ]] || { echo "not an executable: $b" >&2; exit 2; }
  done
fi

# ---- Chromium and playwright --------------------------------------------------------------
if [[ -z "$CHROMIUM" ]]; then
  for c in /usr/bin/chromium /usr/bin/chromium-browser; do
    [[ -x "$c" ]] && { CHROMIUM="$c"; break; }
  done
fi
[[ -n "$CHROMIUM" && -x "$CHROMIUM" ]] || skip "no Chromium (install Debian's package: apt-get install -y chromium)"
command -v python3 >/dev/null || skip "no python3"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import playwright, pytest' 2>/dev/null; then
  echo "creating $VENV (pip install playwright pytest)..."
  python3 -m venv "$VENV" >/dev/null 2>&1 || skip "cannot create a Python venv at $VENV"
  # Only the Python package: the browser is the system Chromium (never 'playwright install').
  "$VENV/bin/pip" install -q playwright pytest >/dev/null 2>&1 \
    || skip "cannot pip install playwright pytest (offline?)"
fi
"$VENV/bin/python" -c 'import playwright, pytest' 2>/dev/null || skip "playwright/pytest unavailable in $VENV"

mkdir -p "$OUT"
TMP="$(mktemp -d /tmp/lf-webtest-XXXXXX)"
PIDS=()
cleanup() {
  local rc=$?
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for f in "$TMP"/*.log; do [[ -f "$f" ]] && { echo "---- $(basename "$f") (tail)"; tail -n 30 "$f"; }; done
  fi
  cp "$TMP"/*.log "$OUT"/ 2>/dev/null || true
  [[ "${LF_WEB_KEEP:-0}" == 1 ]] && echo "farm dir kept: $TMP" || rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url seconds
  local url="$1" n=$(( $2 * 10 ))
  for _ in $(seq "$n"); do
    if python3 - "$url" <<'EOF' 2>/dev/null
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200 else 1)
EOF
    then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $url" >&2
  return 1
}

API_KEY="webtest-$RANDOM$RANDOM"
HTTP_PORT="$(free_port)"
KEY_PORT="$(free_port)"

if [[ $MOCK == 1 ]]; then
  echo "NOTE: running against the MOCK gateway (test double), not lightfarm"
  python3 "$HERE/mock_gateway.py" --port "$HTTP_PORT" >"$TMP/mock.log" 2>&1 & PIDS+=($!)
  python3 "$HERE/mock_gateway.py" --port "$KEY_PORT" --api-key "$API_KEY" >"$TMP/mock-key.log" 2>&1 & PIDS+=($!)
else
  REDIS_PORT="$(free_port)"
  FE="tcp://127.0.0.1:$(free_port)"; BE="tcp://127.0.0.1:$(free_port)"; EV="tcp://127.0.0.1:$(free_port)"
  mkdir -p "$TMP/redis"
  "$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" --save "" --appendonly no \
    --daemonize no >"$TMP/redis.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 100); do
    python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$REDIS_PORT),0.2); s.send(b'PING\r\n'); sys.exit(0 if s.recv(5)==b'+PONG' else 1)" 2>/dev/null && break
    sleep 0.1
  done
  export LF_REDIS_HOST=127.0.0.1 LF_REDIS_PORT="$REDIS_PORT" LF_REDIS_PREFIX="lfweb:" LF_LOG_LEVEL=info
  LF_BROKER_FRONTEND="$FE" LF_BROKER_BACKEND="$BE" LF_BROKER_EVENTS="$EV" LF_BROKER_ID=web-broker \
    "$BROKER" >"$TMP/broker.log" 2>&1 & PIDS+=($!)
  # The repository's models/ (the built-in lf-tiny-shapes), as `deploy/lightfarm up` serves them,
  # plus a LoRA for it in lora/ (the picker's test).
  if [[ -z "${LF_MODELS_DIR:-}" ]]; then
    mkdir -p "$TMP/models/lora"
    for f in "$ROOT"/models/*; do ln -s "$f" "$TMP/models/"; done
    cp "$ROOT/tests/engine/fixtures/lora/lf_tiny_shapes_kohya.safetensors" "$TMP/models/lora/"
    # The same LoRA saying how it must be run (lf.defaults, as a Lightning 8-step LoRA would):
    # the picker's recommended-settings test.
    python3 - "$TMP/models/lora" <<'PY'
import json, struct, sys
d = sys.argv[1]
raw = open(f"{d}/lf_tiny_shapes_kohya.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
head.setdefault("__metadata__", {})["lf.defaults"] = json.dumps(
    {"weight": 0.9, "steps": 8, "cfg": 1, "sampler": "euler", "scheduler": "sgm_uniform"})
head["__metadata__"].pop("ss_output_name", None)  # no alias: listed by its file name
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
open(f"{d}/lightning_8step_lora_probe.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PY
    LF_MODELS_DIR="$TMP/models"
  fi
  # Worker 1 also advertises SDXL: two one-tensor files whose tensor names say "sdxl" (the
  # family comes from tensor names) and a separate VAE — for the UI's SDXL sizes, Refiner and
  # VAE controls and the gateway's admission. They are not runnable models: no test runs them.
  XL_DIR="$TMP/models-xl"
  mkdir -p "$XL_DIR/vae"
  for f in "$LF_MODELS_DIR"/*; do ln -s "$f" "$XL_DIR/"; done
  python3 - "$XL_DIR" <<'EOF'
import json, struct, sys
d = sys.argv[1]
head = json.dumps({"conditioner.embedders.1.model.ln_final.weight":
                   {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
blob = struct.pack("<Q", len(head)) + head + struct.pack("<f", 1.0)
for name in ("lf-xl-probe.safetensors", "lf-xl-refiner-probe.safetensors", "vae/lf-xl-vae-probe.safetensors"):
    open(f"{d}/{name}", "wb").write(blob)
# A few-step model's recommended settings in its metadata (lf.defaults, engine/models/lf_manifest.h).
defaults = {"steps": 4, "cfg": 1, "sampler": "euler", "scheduler": "sgm_uniform", "width": 1024, "height": 1024}
head = json.dumps({"__metadata__": {"lf.defaults": json.dumps(defaults)},
                   "conditioner.embedders.1.model.ln_final.weight":
                   {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
open(f"{d}/lf-xl-lightning-probe.safetensors", "wb").write(struct.pack("<Q", len(head)) + head + struct.pack("<f", 1.0))
# A Flux diffusers folder (transformer/ says the family; tokenizer_2/ its T5 tokenizer): the
# UI's Distilled CFG scale field. Named after lf-tiny-shapes, which stays the farm's default.
import os
os.makedirs(f"{d}/lf-zflux-probe/transformer", exist_ok=True)
os.makedirs(f"{d}/lf-zflux-probe/tokenizer_2", exist_ok=True)
head = json.dumps({"double_blocks.0.img_attn.qkv.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
open(f"{d}/lf-zflux-probe/transformer/diffusion_pytorch_model.safetensors", "wb").write(
    struct.pack("<Q", len(head)) + head + struct.pack("<f", 1.0))
# A Flux VAE beside the SDXL one: the first decoder convolution takes 16 latent channels (the
# worker reads the family from the header), for the VAE list per model family.
head = json.dumps({"decoder.conv_in.weight": {"dtype": "F32", "shape": [1, 16, 1, 1], "data_offsets": [0, 64]}}).encode()
open(f"{d}/vae/lf-flux-ae-probe.safetensors", "wb").write(struct.pack("<Q", len(head)) + head + b"\0" * 64)
EOF
  for w in 0 1; do
    MODELS="$LF_MODELS_DIR"
    [[ $w == 1 ]] && MODELS="$XL_DIR"
    LF_MODELS_DIR="$MODELS" \
    LF_BROKER_BACKEND="$BE" LF_WORKER_ID="web-w$w" LF_STEP_DELAY_MAX_MS=1000 LF_PREVIEW_EVERY=5 \
      "$WORKER" >"$TMP/worker-$w.log" 2>&1 & PIDS+=($!)
  done
  LF_BROKER_FRONTEND="$FE" LF_BROKER_EVENTS="$EV" LF_HTTP_PORT="$HTTP_PORT" LF_WEB_ROOT="$ROOT/web" \
    "$GATEWAY" >"$TMP/gateway.log" 2>&1 & PIDS+=($!)
  LF_BROKER_FRONTEND="$FE" LF_BROKER_EVENTS="$EV" LF_HTTP_PORT="$KEY_PORT" LF_WEB_ROOT="$ROOT/web" \
    LF_API_KEYS="$API_KEY" "$GATEWAY" >"$TMP/gateway-key.log" 2>&1 & PIDS+=($!)
fi

wait_http "http://127.0.0.1:$HTTP_PORT/healthz" 20
wait_http "http://127.0.0.1:$KEY_PORT/healthz" 20

export LF_WEB_URL="http://127.0.0.1:$HTTP_PORT"
export LF_WEB_URL_KEYED="http://127.0.0.1:$KEY_PORT"
export LF_WEB_API_KEY="$API_KEY"
export LF_CHROMIUM="$CHROMIUM" LF_WEB_OUT="$OUT"
[[ $MOCK == 1 ]] && export LF_WEB_MOCK=1
echo "farm up: $LF_WEB_URL (keyed gateway: $LF_WEB_URL_KEYED); screenshots: $OUT"

cd "$HERE"
set +e
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT/junit.xml" "$@" "$HERE"
rc=$?
set -e
exit $rc
