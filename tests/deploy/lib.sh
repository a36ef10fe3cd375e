# lib.sh: what the deploy tests share, sourced (never run) by test_up.sh,
# test_up_aof.sh, test_redis_loading.sh and test_all_in_one.sh: free loopback ports, a private
# farm for deploy/lightfarm, failing with the farm's last log lines, and a
# Redis AOF as a busy run leaves it. Needs python3, redis-cli and awk.

# free_port [N]: the first of N (default 1) consecutive free TCP ports on
# 127.0.0.1, bound and released. Taken below the kernel's ephemeral range
# (ip_local_port_range, 32768.. here): a port the kernel hands out is free
# now but may become the client side of some connection before the server
# that was meant to bind it starts (the broker binds after Redis has
# loaded, seconds later).
free_port() {
  python3 - "${1:-1}" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    lo = 32768
for _ in range(200):
    p = random.randrange(10000, lo - n)
    try:
        for q in range(p, p + n):
            s = socket.socket()
            s.bind(("127.0.0.1", q))
            s.close()
    except OSError:
        continue
    print(p)
    break
else:
    sys.exit("no free port range")
PY
}

# farm_env TMP_DIR BUILD_DIR: exports a private farm for deploy/lightfarm —
# free ports (three consecutive ones for the broker: frontend, backend,
# events), its var dir in TMP_DIR, the binaries of BUILD_DIR (no build), one
# worker, no API keys and no default model. The models folder is the
# caller's to set.
farm_env() {
  local base
  base="$(free_port 3)" || exit 1
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

# find_assets SOURCE_DIR TMP_DIR: echoes an assets folder holding the CLIP
# merges file the tiny model needs — $LF_ASSETS_DIR, SOURCE_DIR/assets, or a
# folder in TMP_DIR linking the refdata copy; fails when there is none.
find_assets() {
  local vocab=bpe_simple_vocab_16e6.txt.gz d r
  for d in "${LF_ASSETS_DIR:-}" "$1/assets"; do
    [ -n "$d" ] && [ -f "$d/clip/$vocab" ] && { echo "$d"; return 0; }
  done
  for r in "${LF_REFDATA_DIR:-}" "$1/../shared/refdata" /work/shared/refdata; do
    if [ -n "$r" ] && [ -f "$r/tokenizers/clip/$vocab" ]; then
      mkdir -p "$2/assets/clip" && ln -sf "$(cd "$r" && pwd)/tokenizers/clip/$vocab" "$2/assets/clip/$vocab"
      echo "$2/assets"
      return 0
    fi
  done
  return 1
}
