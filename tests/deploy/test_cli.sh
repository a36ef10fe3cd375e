#!/usr/bin/env bash
# test_cli: deploy/lightfarm's small promises, without starting a farm.
#  - `logs NAME` with an unknown name fails and lists the names there are;
#  - `down` treats a defunct (zombie) process as stopped: it says so and
#    does not wait for it to exit;
#  - `up` refuses a bad LF_READY_TIMEOUT_S;
#  - `gpus` / `up --gpus`: the per-GPU worker plan from a fake GPU count (LF_FAKE_GPU_COUNT), and the
#    refusals: no GPU, more GPUs than there are, a bad value.
#  - `workers N`: the CPU workers' environment: their local slice, and how oneDNN's OpenMP threads
#    wait (a short GOMP_SPINCOUNT for workers with cores of their own, OMP_WAIT_POLICY=PASSIVE for
#    workers that share cores, nothing over an operator's own setting).
#   test_cli.sh SOURCE_DIR
set -euo pipefail
FARM="$(cd "$1" && pwd)/deploy/lightfarm"
T="$(mktemp -d /tmp/lf-test-cli.XXXXXX)"
holder=""
cleanup() { [ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
export LF_VAR_DIR="$T/var"
fail() { echo "FAIL: $*" >&2; exit 1; }
mkdir -p "$T/var/log" "$T/var/run"
for n in redis broker worker-1 gateway; do echo "$n says hello" >"$T/var/log/$n.log"; done

# logs with an unknown name.
if out="$("$FARM" logs nosuch 2>&1)"; then fail "logs nosuch succeeded: $out"; fi
for n in redis broker worker-1 gateway; do
  grep -qw -- "$n" <<<"$out" || fail "logs nosuch does not list '$n': $out"
done
echo "ok: $out"

# A zombie: `sleep 0` exits, and its parent (exec'd into `sleep 30`) never
# collects it, so its pid stays defunct while the holder lives.
sh -c 'sleep 0 & echo $! >"$1"; exec sleep 30' sh "$T/var/run/worker-1.pid" &
holder=$!
for _ in $(seq 1 100); do
  z="$(cat "$T/var/run/worker-1.pid" 2>/dev/null || true)"
  [ -n "$z" ] && [ "$(awk '{ print $3 }' "/proc/$z/stat" 2>/dev/null)" = Z ] && break
  sleep 0.05
done
[ "$(awk '{ print $3 }' "/proc/$z/stat")" = Z ] || fail "could not make a zombie process"
out="$("$FARM" status 2>&1 || true)"
grep -q "worker-1 *dead" <<<"$out" || fail "status does not call the defunct worker dead: $out"
out="$("$FARM" down 2>&1)" || fail "down failed: $out"
grep -q "worker-1 had already exited (defunct" <<<"$out" || fail "down did not see the worker as stopped: $out"
[ ! -e "$T/var/run/worker-1.pid" ] || fail "down left the defunct worker's pid file"
echo "ok: $out"

if out="$(LF_READY_TIMEOUT_S=soon "$FARM" up 2>&1)"; then fail "up accepted LF_READY_TIMEOUT_S=soon"; fi
grep -q LF_READY_TIMEOUT_S <<<"$out" || fail "up did not name LF_READY_TIMEOUT_S: $out"
# The per-GPU worker plan, from a GPU count: LF_FAKE_GPU_COUNT is the test's fake count (this machine
# may have no GPU); `gpus` prints what `up --gpus` would start.
out="$(LF_FAKE_GPU_COUNT=3 "$FARM" gpus)" || fail "gpus with 3 fake GPUs failed: $out"
[ "$(grep -c . <<<"$out")" = 3 ] || fail "gpus with 3 fake GPUs: not 3 workers: $out"
for k in 0 1 2; do grep -q "^worker-gpu-$k: .*lightfarm-worker --device cuda:$k\$" <<<"$out" || fail "no worker for cuda:$k: $out"; done
[ "$(grep -o 'LF_WORKER_ID=[^ ]*' <<<"$out" | sort -u | wc -l)" = 3 ] || fail "the GPU workers' ids are not distinct: $out"
out="$(LF_FAKE_GPU_COUNT=3 "$FARM" gpus 2)" || fail "gpus 2 failed: $out"
[ "$(grep -c . <<<"$out")" = 2 ] && ! grep -q cuda:2 <<<"$out" || fail "gpus 2 of 3: $out"
for bad in "4:only 3 GPU(s)" "0:a number >= 1" "x:'all' or a number"; do
  if out="$(LF_FAKE_GPU_COUNT=3 "$FARM" gpus "${bad%%:*}" 2>&1)"; then fail "gpus ${bad%%:*} succeeded: $out"; fi
  grep -qF "${bad#*:}" <<<"$out" || fail "gpus ${bad%%:*} did not say '${bad#*:}': $out"
done
if out="$(LF_FAKE_GPU_COUNT=0 "$FARM" up --gpus all 2>&1)"; then fail "up --gpus all without GPUs succeeded: $out"; fi
grep -q "no GPU visible" <<<"$out" || fail "up --gpus all without GPUs did not say so: $out"
if out="$(LF_FAKE_GPU_COUNT=2 "$FARM" up --gpus 3 2>&1)"; then fail "up --gpus 3 on 2 GPUs succeeded: $out"; fi
grep -q "only 2 GPU(s)" <<<"$out" || fail "up --gpus 3 on 2 GPUs: $out"
echo "ok: the per-GPU worker plan (fake GPU counts) and its refusals"

# The CPU workers' plan. ctest sets OMP_WAIT_POLICY for every test: unset here, as on a plain shell.
plan() { env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u LF_THREADS "$@"; }
cores="$(nproc)"
out="$(plan "$FARM" workers "$cores")" || fail "workers $cores failed: $out"
[ "$(grep -c . <<<"$out")" = "$cores" ] || fail "workers $cores: not $cores lines: $out"
for k in $(seq 1 "$cores"); do
  grep -q "^worker-$k: .*LF_LOCAL_WORKERS=$cores LF_LOCAL_INDEX=$((k - 1)) GOMP_SPINCOUNT=10000 .*lightfarm-worker\$" <<<"$out" ||
    fail "workers $cores on $cores cores: worker-$k does not get its slice and a short spin: $out"
done
! grep -q OMP_WAIT_POLICY <<<"$out" || fail "workers $cores on $cores cores: a worker sleeps at once: $out"
echo "ok: $cores worker(s) on $cores core(s), each on its own: GOMP_SPINCOUNT=10000"
more=$((cores + 1))
out="$(plan "$FARM" workers "$more")" || fail "workers $more failed: $out"
[ "$(grep -c 'LF_LOCAL_WORKERS=[0-9]* LF_LOCAL_INDEX=[0-9]* OMP_WAIT_POLICY=PASSIVE ' <<<"$out")" = "$more" ] &&
  ! grep -q GOMP_SPINCOUNT <<<"$out" || fail "workers $more on $cores cores share cores but do not sleep at once: $out"
out="$(plan LF_THREADS=$((cores + 1)) "$FARM" workers 1)" || fail "workers 1 with LF_THREADS failed: $out"
grep -q "^worker-1: .*LF_LOCAL_INDEX=0 OMP_WAIT_POLICY=PASSIVE " <<<"$out" ||
  fail "one worker with more threads (LF_THREADS) than cores does not sleep at once: $out"
out="$(plan LF_THREADS=1 "$FARM" workers "$cores")" || fail "workers $cores with LF_THREADS=1 failed: $out"
[ "$(grep -c 'GOMP_SPINCOUNT=10000 ' <<<"$out")" = "$cores" ] || fail "LF_THREADS=1 x $cores workers: $out"
echo "ok: workers that share cores ($more workers, or LF_THREADS above the cores) get OMP_WAIT_POLICY=PASSIVE"
for own in OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=5; do
  for n in 1 "$more"; do
    out="$(plan "$own" "$FARM" workers "$n")" || fail "workers $n with $own failed: $out"
    ! grep -q "OMP_WAIT_POLICY\|GOMP_SPINCOUNT" <<<"$out" || fail "workers $n: the operator's $own does not win: $out"
  done
done
echo "ok: an operator's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins (nothing added)"
for bad in 0 x; do
  if out="$("$FARM" workers "$bad" 2>&1)"; then fail "workers $bad succeeded: $out"; fi
  grep -q "a number >= 1" <<<"$out" || fail "workers $bad: $out"
done
echo "ok: the CPU workers' plan and its refusals"

echo "ok: all"
