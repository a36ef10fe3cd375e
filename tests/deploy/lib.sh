# lib.sh: what the deploy tests share, sourced (never run) by test_up.sh,
# test_up_aof.sh and test_redis_loading.sh: free loopback ports, a private
# farm for deploy/lightfarm, failing with the farm's last log lines, and a
# Redis AOF as a busy run leaves it. Needs python3, redis-cli and awk.

# A free TCP port on 127.0.0.1 (bound, then released).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# farm_env TMP_DIR BUILD_DIR: exports a private farm for deploy/lightfarm —
# free ports (three consecutive ones for the broker: frontend, backend,
# events), its var dir in TMP_DIR, the binaries of BUILD_DIR (no build), one
# worker, no API keys and no default model. The models folder is the
# caller's to set.
farm_env() {
  local base="" p _
  for _ in $(seq 1 20); do
    p="$(free_port)"
    python3 -c 'import socket,sys
for q in range(int(sys.argv[1]), int(sys.argv[1]) + 3):
    s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()' "$p" 2>/dev/null && { base="$p"; break; }
  done
  [ -n "$base" ] || { echo "no free port range" >&2; exit 1; }
  LF_HTTP_PORT="$(free_port)" LF_REDIS_PORT="$(free_port)"
  export LF_HTTP_PORT LF_BROKER_PORT_BASE="$base" LF_REDIS_PORT
  export LF_VAR_DIR="$1/var" LF_BUILD_DIR="$2" LF_NO_BUILD=1 LF_WORKERS=1
  unset LF_API_KEYS LF_DEFAULT_MODEL
}

# fail MESSAGE: says so, shows the end of every farm log, exits 1.
fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$LF_VAR_DIR"/log/*.log; do [ -e "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  exit 1
}

# redis_fill_aof PORT: waits for the redis-server on PORT to answer, writes
# a busy run's data into it (100k SETs of 64-byte values, ~10 MB of AOF) and
# shuts it down; the caller waits for its process.
redis_fill_aof() {
  local _
  for _ in $(seq 1 100); do [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ] && break; sleep 0.1; done
  awk 'BEGIN { v = sprintf("%064d", 0)
    for (i = 0; i < 100000; i++)
      printf "*3\r\n$3\r\nSET\r\n$%d\r\nlfpad:%d\r\n$64\r\n%s\r\n", length("lfpad:" i), i, v }' |
    redis-cli -h 127.0.0.1 -p "$1" --pipe >/dev/null
  redis-cli -h 127.0.0.1 -p "$1" shutdown >/dev/null 2>&1 || true
}
