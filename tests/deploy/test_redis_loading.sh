#!/usr/bin/env bash
# test_redis_loading: a broker and a gateway started while Redis is still
# replaying a large AOF (~10 MB; redis answers LOADING to everything
# meanwhile) wait for it and then serve, instead of exiting on the first
# SCRIPT LOAD (the broker did) or staying degraded.
#   test_redis_loading.sh BROKER_BINARY GATEWAY_BINARY
set -euo pipefail
BROKER="$1"
GATEWAY="$2"
T="$(mktemp -d /tmp/lf-test-loading.XXXXXX)"
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
RPORT="$(free_port)"
BPORT="$(free_port 3)" # frontend, backend, events
HPORT="$(free_port)"
rpid="" bpid="" gpid=""
cleanup() {
  [ -n "$gpid" ] && kill -TERM "$gpid" 2>/dev/null && wait "$gpid" 2>/dev/null || true
  [ -n "$bpid" ] && kill -TERM "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null || true
  [ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- broker log" >&2; tail -n 20 "$T/broker.log" >&2 || true
  echo "--- gateway log" >&2; tail -n 20 "$T/gateway.log" >&2 || true
  exit 1
}
rcli() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@" 2>&1; }

redis_start() { # extra options...
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$T" --appendonly yes --save "" \
    --daemonize no "$@" >>"$T/redis.log" 2>&1 &
  rpid=$!
}

# A busy run's AOF: 100k SET commands with 64-byte values (~10 MB).
redis_start --appendfsync no
redis_fill_aof "$RPORT"
wait "$rpid" 2>/dev/null || true
size="$(du -sk "$T/appendonlydir" | cut -f1)"
[ "$size" -ge 9000 ] || fail "the AOF is only ${size} KiB"

# Restart on it; key-load-delay (µs per key) keeps the loading window open
# for over a second even on a fast machine, so the broker surely meets it.
redis_start --key-load-delay 20
for _ in $(seq 1 100); do rcli ping | grep -q LOADING && break; sleep 0.01; done
export LF_REDIS_HOST=127.0.0.1 LF_REDIS_PORT="$RPORT" LF_BROKER_ID=loading-test \
  LF_BROKER_FRONTEND="tcp://127.0.0.1:$BPORT" LF_BROKER_BACKEND="tcp://127.0.0.1:$((BPORT + 1))" \
  LF_BROKER_EVENTS="tcp://127.0.0.1:$((BPORT + 2))" LF_HTTP_PORT="$HPORT" LF_HTTP_HOST=127.0.0.1
"$BROKER" >"$T/broker.log" 2>&1 &
bpid=$!
"$GATEWAY" >"$T/gateway.log" 2>&1 &
gpid=$!
rcli ping | grep -q LOADING || fail "redis was not loading when the broker started: $(rcli ping)"
healthz() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$HPORT/healthz" || true; }

ok="" early=""
for _ in $(seq 1 600); do
  kill -0 "$bpid" 2>/dev/null || fail "the broker exited while redis was loading"
  kill -0 "$gpid" 2>/dev/null || fail "the gateway exited while redis was loading"
  [ -z "$early" ] && rcli ping | grep -q LOADING && early="$(healthz)"
  if [ "$(rcli ping)" = PONG ] && [ -n "$(rcli --raw keys 'lf:broker:*')" ]; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || fail "the broker did not register in redis within 60 s of starting"
grep -q "loading" "$T/broker.log" || fail "the broker did not say it waited for redis to load"
# Still there, and its liveness key is kept fresh; the gateway, degraded
# while redis loaded, is healthy now.
[ -z "$early" ] || [ "$early" = 503 ] || [ "$early" = 000 ] || fail "the gateway said $early while redis was loading"
code=""
for _ in $(seq 1 100); do code="$(healthz)"; [ "$code" = 200 ] && break; sleep 0.1; done
[ "$code" = 200 ] || fail "the gateway's /healthz answers $code after redis finished loading"
sleep 1
kill -0 "$bpid" 2>/dev/null || fail "the broker died after redis finished loading"
kill -0 "$gpid" 2>/dev/null || fail "the gateway died after redis finished loading"
[ -n "$(rcli --raw keys 'lf:broker:*')" ] || fail "the broker's liveness key went away"
[ "$(rcli dbsize)" -ge 100000 ] || fail "redis lost the data set"
echo "ok: the broker and the gateway (/healthz ${early:-?} while loading) waited for redis to load its ${size} KiB AOF, then served"
