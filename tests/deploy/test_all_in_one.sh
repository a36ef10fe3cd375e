#!/usr/bin/env bash
# test_all_in_one: the container entry point outside a container. `entrypoint.sh all-in-one
# --workers 2`, from an empty data folder on free ports, starts Redis, a broker, two workers and the
# gateway under supervisord; a txt2img job runs on the built-in model lf-tiny-shapes. Then each of
# redis, broker, worker-1 and gateway is killed (SIGKILL) in turn, supervisord must start it again
# (a new pid), the first job must still be there (Redis's AOF, appendfsync always) and a second job
# must run. The probes the images use (`entrypoint.sh probe gateway|worker`) must say healthy, and a
# SIGTERM to supervisord must stop everything cleanly (exit 0, ready files gone).
#   test_all_in_one.sh SOURCE_DIR BUILD_DIR
# Exits 77 (ctest: skipped) without supervisord (Debian's supervisor; `deploy/lightfarm test`
# installs it) or without the CLIP merges file the tiny model needs.
set -euo pipefail
SRC="$(cd "$1" && pwd)"
BUILD="$(cd "$2" && pwd)"
T="$(mktemp -d /tmp/lf-test-aio.XXXXXX)"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
EP="$SRC/deploy/docker/entrypoint.sh"
SV_PID=""
cleanup() {
  if [ -n "$SV_PID" ] && kill -0 "$SV_PID" 2>/dev/null; then
    kill -TERM "$SV_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SV_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$SV_PID" 2>/dev/null || true # its process group: setsid below
  fi
  rm -rf "$T"
}
trap cleanup EXIT

command -v supervisord >/dev/null || { echo "SKIP: no supervisord (apt-get install supervisor; deploy/lightfarm test installs it)"; exit 77; }
assets="$(find_assets "$SRC" "$T")" || { echo "SKIP: no CLIP merges file (run tools/fetch_assets.sh)"; exit 77; }
[ -f "$SRC/models/lf-tiny-shapes.safetensors" ] || { echo "FAIL: no models/lf-tiny-shapes.safetensors" >&2; exit 1; }

base="$(free_port 3)"
LF_HTTP_PORT="$(free_port)" LF_REDIS_PORT="$(free_port)"
export LF_HTTP_PORT LF_REDIS_PORT LF_BROKER_PORT_BASE="$base" LF_HTTP_HOST=127.0.0.1
export LF_BIN_DIR="$BUILD" LF_DATA_DIR="$T/data" LF_LOG_DIR="$T/log" LF_VAR_DIR="$T"
export LF_MODELS_DIR="$SRC/models" LF_WEB_ROOT="$SRC/web" LF_ASSETS_DIR="$assets"
export LF_WORKER_STOP_WAIT_S=30
unset LF_API_KEYS LF_DEFAULT_MODEL LF_WORKERS LF_REDIS_APPENDFSYNC
url="http://127.0.0.1:$LF_HTTP_PORT"
conf="$T/data/run/supervisord.conf"
host="$(hostname)"

# ctest sets OMP_WAIT_POLICY for every test: unset, the entry point's own choice is checked below.
unset OMP_WAIT_POLICY GOMP_SPINCOUNT LF_THREADS
setsid "$EP" all-in-one --workers 2 --log-level info >"$T/entrypoint.out" 2>&1 &
SV_PID=$!

aio_fail() { echo "--- entrypoint output" >&2; tail -n 20 "$T/entrypoint.out" >&2; fail "$@"; }

# ready: /readyz 200 and both workers registered with lf-tiny-shapes, within 120 s.
wait_ready() {
  local body=""
  for _ in $(seq 1 600); do
    kill -0 "$SV_PID" 2>/dev/null || aio_fail "supervisord exited"
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]; then
      body="$(curl -s "$url/v1/workers")"
      [ "$(jq --arg h "$host-w" '[.workers[] | select((.id | startswith($h)) and any(.models[]; .name == "lf-tiny-shapes"))] | length' <<<"$body" 2>/dev/null)" = 2 ] && return 0
    fi
    sleep 0.2
  done
  aio_fail "the all-in-one farm was not ready within 120 s (workers: $body)"
}

# run_job PROMPT: submits a small txt2img with no model field; echoes its id once it is done
# on lf-tiny-shapes.
run_job() {
  local sub id view status=""
  sub="$(curl -sS -X POST -H 'Content-Type: application/json' \
    -d '{"prompt":"'"$1"'","steps":2,"width":64,"height":64}' "$url/v1/jobs")"
  id="$(jq -r .id <<<"$sub")"
  [ -n "$id" ] && [ "$id" != null ] || aio_fail "job not accepted: $sub"
  for _ in $(seq 1 600); do
    view="$(curl -sS "$url/v1/jobs/$id")"
    status="$(jq -r .status <<<"$view")"
    case "$status" in done | failed | cancelled) break ;; esac
    sleep 0.2
  done
  [ "$status" = "done" ] || aio_fail "job '$1' ended '$status': $(jq -c .error <<<"$view")"
  [ "$(jq -r .result.info.model <<<"$view")" = lf-tiny-shapes ] || aio_fail "job '$1' did not run on lf-tiny-shapes"
  echo "$id"
}

sv_pid() { supervisorctl -c "$conf" pid "$1" 2>/dev/null; }

wait_ready
[ -f "$T/data/redis/appendonly.aof" ] || [ -d "$T/data/redis/appendonlydir" ] || aio_fail "no AOF in $T/data/redis"
id1="$(run_job "a red circle")"
echo "ok: the all-in-one farm served job $id1 on lf-tiny-shapes"
# Two workers, each on all the cores (the all-in-one does not split them), share cores: their
# OpenMP threads sleep at once between operations (entrypoint.sh omp_wait_env).
wpid="$(sv_pid worker:worker-1)"
[[ "$wpid" =~ ^[0-9]+$ ]] && tr '\0' '\n' <"/proc/$wpid/environ" | grep -qx 'OMP_WAIT_POLICY=PASSIVE' ||
  aio_fail "worker-1 (pid $wpid) of two does not run with OMP_WAIT_POLICY=PASSIVE"
! tr '\0' '\n' <"/proc/$wpid/environ" | grep -q '^GOMP_SPINCOUNT=' || aio_fail "worker-1 (pid $wpid) has a GOMP_SPINCOUNT"
echo "ok: the two workers' OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE)"

# The probes the Dockerfile's HEALTHCHECK and the Kubernetes manifests use.
"$EP" probe gateway || aio_fail "probe gateway said unhealthy"
LF_WORKER_READY_FILE="$T/data/run/worker-1.ready" "$EP" probe worker || aio_fail "probe worker said not ready"
if LF_WORKER_READY_FILE="$T/data/run/nonexistent.ready" "$EP" probe worker 2>/dev/null; then
  aio_fail "probe worker said ready without a ready file"
fi
echo "ok: probe gateway and probe worker say healthy"

for p in redis broker worker:worker-1 gateway; do
  old="$(sv_pid "$p")"
  [[ "$old" =~ ^[0-9]+$ ]] && [ "$old" -gt 0 ] || aio_fail "supervisorctl has no pid for $p ($old)"
  kill -KILL "$old"
  new="$old"
  for _ in $(seq 1 150); do
    new="$(sv_pid "$p")"
    [[ "$new" =~ ^[0-9]+$ ]] && [ "$new" -gt 0 ] && [ "$new" != "$old" ] && break
    sleep 0.2
  done
  [ "$new" != "$old" ] && [ "$new" -gt 0 ] || aio_fail "supervisord did not restart $p (pid $old, now $new)"
  echo "ok: $p killed (pid $old) and restarted (pid $new)"
  wait_ready
done

[ "$(curl -sS "$url/v1/jobs/$id1" | jq -r .status)" = "done" ] || aio_fail "job $id1 was lost across the restarts"
id2="$(run_job "a blue square")"
echo "ok: after every process was restarted, job $id1 is still there and job $id2 ran"

kill -TERM "$SV_PID"
rc=0
for _ in $(seq 1 200); do kill -0 "$SV_PID" 2>/dev/null || break; sleep 0.2; done
kill -0 "$SV_PID" 2>/dev/null && aio_fail "supervisord did not stop within 40 s of SIGTERM"
wait "$SV_PID" || rc=$?
SV_PID=""
[ "$rc" = 0 ] || aio_fail "supervisord exited $rc after SIGTERM"
ls "$T"/data/run/worker-*.ready >/dev/null 2>&1 && aio_fail "ready files left after the stop"
grep -q "stopped: worker-1 (exit status 0)" "$T/log/supervisord.log" || aio_fail "worker-1 did not stop cleanly"
echo "ok: SIGTERM stopped the farm cleanly"
