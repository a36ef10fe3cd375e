#!/usr/bin/env bash
# test_up_aof: `deploy/lightfarm up` after a busy run. The farm's Redis has a
# ~10 MB AOF to replay and answers LOADING meanwhile; `up` waits for PONG,
# the broker waits for the data set, and the farm comes up whole (every
# process alive, the broker serving) with the old data still there.
#   test_up_aof.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC="$(cd "$1" && pwd)"
BUILD="$(cd "$2" && pwd)"
T="$(mktemp -d /tmp/lf-test-up-aof.XXXXXX)"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
farm_env "$T" "$BUILD"
# The diagnostic model only: this test is about start-up, not about models.
mkdir -p "$T/models" && export LF_MODELS_DIR="$T/models"
FARM="$SRC/deploy/lightfarm"
rpid=""
cleanup() {
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
  "$FARM" down >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
rcli() { redis-cli -h 127.0.0.1 -p "$LF_REDIS_PORT" "$@" 2>&1; }

# A busy run's AOF where `up` keeps it: 100k SETs of 64-byte values.
mkdir -p "$LF_VAR_DIR/redis"
redis-server --port "$LF_REDIS_PORT" --bind 127.0.0.1 --dir "$LF_VAR_DIR/redis" --appendonly yes \
  --appendfsync no --save "" --daemonize no >"$T/redis-fill.log" 2>&1 &
rpid=$!
redis_fill_aof "$LF_REDIS_PORT"
wait "$rpid" 2>/dev/null || true
rpid=""
size="$(du -sk "$LF_VAR_DIR/redis" | cut -f1)"
[ "$size" -ge 9000 ] || fail "the AOF is only ${size} KiB"

"$FARM" up >"$T/up.out" 2>&1 || { cat "$T/up.out" >&2; fail "up failed after a busy run"; }
cat "$T/up.out"
[ "$(rcli ping)" = PONG ] || fail "redis does not answer PONG after up returned"
out="$("$FARM" status)"
for n in redis broker worker-1 gateway; do
  grep -q "$n *running" <<<"$out" || fail "$n is not running after up: $out"
done
[ "$(rcli dbsize)" -ge 100000 ] || fail "the old data set is gone"
[ -n "$(rcli --raw keys 'lf:broker:*')" ] || fail "the broker is not serving (no liveness key)"
# The farm serves: a diagnostic job goes through.
url="http://127.0.0.1:$LF_HTTP_PORT"
id="$(curl -sS -X POST -H 'Content-Type: application/json' \
  -d '{"prompt":"x","model":"lf-diagnostic","steps":2,"width":64,"height":64}' "$url/v1/jobs" | jq -r .id)"
status=""
for _ in $(seq 1 200); do
  status="$(curl -sS "$url/v1/jobs/$id" | jq -r .status)"
  case "$status" in done | failed | cancelled) break ;; esac
  sleep 0.2
done
[ "$status" = done ] || fail "a diagnostic job ended '$status'"
"$FARM" down >/dev/null || fail "down failed"
echo "ok: up after a busy run (${size} KiB AOF) came up whole and served"
