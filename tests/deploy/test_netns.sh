#!/usr/bin/env bash
# test_netns: a farm over several "hosts" — Linux network namespaces made by the test, joined by veth
# pairs to a bridge — and what happens when links fail.
#   host a: redis-server and broker a      host b: broker b
#   hosts c, d: one worker each (linked to both brokers)      host e: the gateway
# 1. A worker host's link is cut while it runs a job: the job is re-run on the other worker once its lease
#    ends and finishes there; when the link heals, the cut worker's late result is refused (the broker
#    logs that the worker no longer holds the job) and the job keeps the other worker's result.
# 2. Broker b's host is cut off (from Redis and everyone): jobs submitted meanwhile are all served through
#    broker a; when b comes back the farm goes on.
# 3. Broker b is cut from Redis only: it stops assigning and says so (the gateway's /healthz names it); the
#    gateway sends every submit to broker a at once (no 503 while a broker can take it); b comes back.
# Every accepted job finishes exactly once: done, and the farm's done counter grew by the number of jobs.
#   test_netns.sh BUILD_DIR
# Needs root (ip netns, veth, a bridge); exits 77 (skipped) without them.
set -euo pipefail
BUILD="$(cd "$1" && pwd)"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for ip netns"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: no ip (iproute2)"; exit 77; }
S="$$"
NET="10.$((200 + S % 50)).$((S % 250))"
BR="lfbr$S"
T="$(mktemp -d /tmp/lf-test-netns.XXXXXX)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for h in a b c d e; do ip netns del "lf$h$S" 2>/dev/null || true; done
  ip link del "$BR" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$T"/*.log; do echo "--- $f" >&2; tail -n 12 "$f" >&2; done
  exit 1
}

ip link add "$BR" type bridge 2>/dev/null || { echo "SKIP: cannot make a bridge here"; exit 77; }
ip addr add "$NET.254/24" dev "$BR"
ip link set "$BR" up
i=0
for h in a b c d e; do
  i=$((i + 1))
  ns="lf$h$S"
  ip netns add "$ns" || { echo "SKIP: ip netns does not work here"; exit 77; }
  ip link add "lf$h$S" type veth peer name "lf$h${S}p"
  ip link set "lf$h${S}p" netns "$ns"
  ip link set "lf$h$S" master "$BR" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "lf$h${S}p" name eth0
  ip -n "$ns" addr add "$NET.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
done
A="$NET.1" B="$NET.2" E="$NET.5"
cut() { ip link set "lf$1$S" down; }
heal() { ip link set "lf$1$S" up; }

# on HOST NAME CMD...: runs CMD in HOST's namespace in the background, logging to NAME.log.
on() {
  local h="$1" name="$2"
  shift 2
  ip netns exec "lf$h$S" "$@" >"$T/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
}
export LF_HEARTBEAT_MS=250 LF_HEARTBEAT_LIVENESS=4 LF_RECONNECT_MIN_MS=100 LF_RECONNECT_MAX_MS=1000
export LF_LEASE_MS=3000 LF_REAP_INTERVAL_MS=200 LF_REDIS_HOST="$A" LF_REDIS_PORT=6379 LF_LOG_LEVEL=info
unset LF_API_KEYS LF_DEFAULT_MODEL LF_CURVE_CERT LF_CURVE_SERVER_CERT LF_CURVE_CLIENTS_DIR
export LF_BROKER_FRONTEND="tcp://$A:5555,tcp://$B:5555" LF_BROKER_BACKEND="tcp://$A:5556,tcp://$B:5556"
export LF_BROKER_EVENTS="tcp://$A:5557,tcp://$B:5557"
on a redis redis-server --bind "$A" --protected-mode no --port 6379 --save "" --appendonly no
for _ in $(seq 1 100); do [ "$(ip netns exec "lfa$S" redis-cli -h "$A" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
for h in a b; do
  ip="$NET.$([ $h = a ] && echo 1 || echo 2)"
  on "$h" "broker-$h" env LF_BROKER_ID="broker-$h" LF_BROKER_FRONTEND="tcp://$ip:5555" \
    LF_BROKER_BACKEND="tcp://$ip:5556" LF_BROKER_EVENTS="tcp://$ip:5557" "$BUILD/broker/lightfarm-broker"
done
mkdir -p "$T/nomodels"
on c worker-c env LF_WORKER_ID=worker-c LF_MODELS_DIR="$T/nomodels" "$BUILD/worker/lightfarm-worker"
on d worker-d env LF_WORKER_ID=worker-d LF_MODELS_DIR="$T/nomodels" "$BUILD/worker/lightfarm-worker"
on e gateway env LF_HTTP_HOST="$E" LF_HTTP_PORT=7860 "$BUILD/gateway/lightfarm-gateway"
url="http://$E:7860"

ready=""
for _ in $(seq 1 300); do
  body="$(curl -s --max-time 2 "$url/readyz" || true)"
  [ "$(jq -r '.workers // 0' <<<"$body" 2>/dev/null)" = 2 ] && [ "$(jq -r '.brokers // 0' <<<"$body")" = 2 ] && { ready=1; break; }
  sleep 0.2
done
[ -n "$ready" ] || fail "the farm across namespaces was not ready: $body"
echo "ok: a farm over 5 namespaces is ready (2 brokers, 2 workers)"

done_count() { curl -s "$url/metrics" | awk '$1 == "lf_jobs_total{state=\"done\"}" { print $2 }'; }
# submit STEPS: a diagnostic job of STEPS steps of 200 ms; echoes its id. A refused submit (a 503 while a
# broker link is coming back: not accepted, so not counted) is retried as a client would, and noted.
submit() {
  local out id
  for _ in $(seq 1 20); do
    out="$(curl -sS --max-time 15 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
      -d '{"model":"lf-diagnostic","prompt":"netns","steps":'"$1"',"step_delay_ms":200,"width":32,"height":32}' "$url/v1/jobs" || true)"
    id="$(head -n 1 <<<"$out" | jq -r '.id // empty' 2>/dev/null || true)"
    [ -n "$id" ] && { echo "$id"; return 0; }
    echo "note: submit refused ($(tail -n 1 <<<"$out")): $(head -n 1 <<<"$out" | head -c 200); retrying" >&2
    sleep 0.5
  done
  fail "no submit accepted in 20 tries"
}
wait_done() { # wait_done ID SECONDS: echoes the final view
  local v s
  for _ in $(seq 1 $(($2 * 5))); do
    v="$(curl -s --max-time 2 "$url/v1/jobs/$1" || true)"
    s="$(jq -r .status <<<"$v" 2>/dev/null || true)"
    case "$s" in done | failed | cancelled) echo "$v"; return 0 ;; esac
    sleep 0.2
  done
  echo "$v"
}
d0="$(done_count)"
ids=()

# 1. A worker host cut mid-job.
id="$(submit 25)"
ids+=("$id")
w=""
for _ in $(seq 1 100); do
  v="$(curl -s "$url/v1/jobs/$id")"
  [ "$(jq -r .status <<<"$v")" = running ] && w="$(jq -r .worker <<<"$v")" && break
  sleep 0.1
done
case "$w" in worker-c) cut_h=c other=worker-d ;; worker-d) cut_h=d other=worker-c ;; *) fail "job $id never ran ($v)" ;; esac
sleep 1
cut "$cut_h"
echo "cut host $cut_h ($w) while it runs job $id"
v="$(wait_done "$id" 40)"
[ "$(jq -r .status <<<"$v")" = "done" ] || fail "job $id ended '$(jq -r .status <<<"$v")' after its worker's host was cut"
[ "$(jq -r .worker <<<"$v")" = "$other" ] || fail "job $id finished on $(jq -r .worker <<<"$v"), not $other"
[ "$(jq -r .attempts <<<"$v")" -ge 2 ] || fail "job $id: attempts $(jq -r .attempts <<<"$v"), expected a second attempt"
echo "ok: job $id re-ran on $other after the lease (attempts $(jq -r .attempts <<<"$v"))"
heal "$cut_h"
refused=""
for _ in $(seq 1 150); do
  grep -qi "job $id: result from worker $w dropped" "$T"/broker-*.log && { refused=1; break; }
  sleep 0.2
done
[ -n "$refused" ] || fail "after the link healed, $w's late result for $id was not refused"
v="$(curl -s "$url/v1/jobs/$id")"
[ "$(jq -r .worker <<<"$v")" = "$other" ] && [ "$(jq -r .status <<<"$v")" = "done" ] || fail "the late result changed job $id: $v"
echo "ok: when the link healed, $w's late result was refused; the job kept $other's"

# 2. Broker b's host cut off: jobs go through broker a.
cut b
for _ in 1 2 3 4 5 6; do ids+=("$(submit 2)"); done
for id in "${ids[@]:1}"; do
  v="$(wait_done "$id" 60)"
  [ "$(jq -r .status <<<"$v")" = "done" ] || fail "job $id ended '$(jq -r .status <<<"$v")' with broker b cut off"
done
echo "ok: with broker b cut off, $((${#ids[@]} - 1)) more jobs finished through broker a"
heal b
for _ in 1 2 3; do ids+=("$(submit 2)"); done
for id in "${ids[@]:7}"; do
  [ "$(jq -r .status <<<"$(wait_done "$id" 60)")" = "done" ] || fail "job $id failed after broker b came back"
done

# 3. Broker b cut from Redis only (a blackhole route to host a in b's namespace: gateways and workers
#    still reach b). b stops assigning and says so: the gateway's /healthz lists it with redis false
#    (its heartbeat answers say so); every submit is accepted at the first try (the gateway sends it to
#    broker a, never answering 503 while a can take it), and the jobs finish through a.
ip -n "lfb$S" route add blackhole "$A/32"
echo "cut broker b from redis (blackhole route to $A in host b)"
said=""
for _ in $(seq 1 150); do
  h="$(curl -s --max-time 2 "$url/healthz" || true)"
  [ "$(jq -r '.brokers_redis_down // 0' <<<"$h" 2>/dev/null)" = 1 ] &&
    [ "$(jq -r '[.broker_links[] | select(.endpoint | contains("'"$B"'")) | .redis][0]' <<<"$h")" = false ] && { said=1; break; }
  sleep 0.2
done
[ -n "$said" ] || fail "the gateway's /healthz never said broker b cannot reach redis: $h"
[ "$(jq -r .status <<<"$h")" = degraded ] || fail "/healthz status $(jq -r .status <<<"$h") with a broker cut from redis"
grep -q "redis unreachable" "$T/broker-b.log" || fail "broker b did not log that redis is unreachable"
echo "ok: /healthz: $(jq -c '{status, brokers, brokers_redis_down, broker_links: [.broker_links[] | {endpoint, live, redis}]}' <<<"$h")"
first=${#ids[@]}
for k in 1 2 3 4 5 6; do
  out="$(curl -sS --max-time 15 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"model":"lf-diagnostic","prompt":"netns redis cut '"$k"'","steps":2,"step_delay_ms":200,"width":32,"height":32}' "$url/v1/jobs")"
  code="$(tail -n 1 <<<"$out")"
  [ "$code" = 202 ] || fail "submit $k answered $code while broker a could take it: $(head -n 1 <<<"$out")"
  ids+=("$(head -n 1 <<<"$out" | jq -r .id)")
done
for id in "${ids[@]:$first}"; do
  v="$(wait_done "$id" 60)"
  [ "$(jq -r .status <<<"$v")" = "done" ] || fail "job $id ended '$(jq -r .status <<<"$v")' with broker b cut from redis"
done
echo "ok: with broker b cut from redis, 6 submits were accepted at once and finished through broker a"
ip -n "lfb$S" route del blackhole "$A/32"
back=""
for _ in $(seq 1 150); do
  h="$(curl -s --max-time 2 "$url/healthz" || true)"
  [ "$(jq -r '.brokers_redis_down' <<<"$h" 2>/dev/null)" = 0 ] && [ "$(jq -r .brokers <<<"$h")" = 2 ] && { back=1; break; }
  sleep 0.2
done
[ -n "$back" ] || fail "broker b did not report redis back: $h"
grep -q "redis answers again" "$T/broker-b.log" || fail "broker b did not log that redis is back"
echo "ok: broker b reaches redis again (/healthz brokers 2, none cut)"

d1="$(done_count)"
[ $((d1 - d0)) = "${#ids[@]}" ] || fail "the done counter grew by $((d1 - d0)) for ${#ids[@]} jobs (each must finish exactly once)"
echo "ok: ${#ids[@]} accepted jobs, each finished exactly once (lf_jobs_total{state=\"done\"} +$((d1 - d0)))"
