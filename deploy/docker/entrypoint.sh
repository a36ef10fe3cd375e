#!/usr/bin/env bash
# entrypoint.sh: the container's entry point — one role of the farm per container, or all of it.
#
#   entrypoint.sh gateway|broker|worker [--flag value]...   exec that program (lightfarm-ROLE) with the
#                                                           flags; settings also from LF_* variables
#   entrypoint.sh engine [ARGS]...                          the command-line engine (lightfarm-engine)
#   entrypoint.sh all-in-one [--workers N] [--flag value]...
#                     Redis (AOF) + a broker + the gateway + N workers (LF_WORKERS, default 1) under
#                     supervisord, which restarts any of them that exits. Each --flag of the programs is
#                     turned into its LF_* variable (names from their --help), so it reaches every
#                     program that knows it. This is also the hosted Space (deploy/space/).
#   entrypoint.sh probe gateway|worker|worker-live|broker|all-in-one|auto   health: 0 yes, 1 no
#                     gateway/all-in-one: GET /healthz answers 200; worker: its ready file
#                     (LF_WORKER_READY_FILE) exists and was rewritten within LF_PROBE_MAX_AGE_S (30);
#                     worker-live: the ready file is absent (not ready, but a restart would not
#                     cure that) or fresh (a stale one means a stuck main loop);
#                     broker: PID 1 is alive; auto (the image's HEALTHCHECK): the role of PID 1
#   entrypoint.sh help
#
# Where things are (defaults for the image; set them to run it from a checkout, as the tests do):
#   LF_BIN_DIR     (/opt/lightfarm/bin) the programs, or a CMake build folder (gateway/lightfarm-gateway, ...)
#   LF_DATA_DIR    (/data) all-in-one: Redis's AOF in redis/, supervisord's socket, config and ready files
#                  in run/; must be writable
#   LF_LOG_DIR     (unset) all-in-one: one log file per program there; unset = everything to stdout
#   LF_MODELS_DIR (/models)  LF_WEB_ROOT (/opt/lightfarm/web)  LF_ASSETS_DIR (/opt/lightfarm/assets)
# All-in-one settings: LF_HTTP_PORT (7860), LF_HTTP_HOST (0.0.0.0), LF_REDIS_PORT (6379, on 127.0.0.1),
# LF_BROKER_PORT_BASE (5555: frontend, +1 backend, +2 events, on 127.0.0.1), LF_REDIS_APPENDFSYNC
# (always | everysec), LF_WORKERS (1), LF_WORKER_STOP_WAIT_S (600: how long a stopping worker may
# finish its job before supervisord kills it).
set -euo pipefail

say() { printf 'entrypoint: %s\n' "$*" >&2; }
die() { printf 'entrypoint: error: %s\n' "$*" >&2; exit 2; }

BIN_DIR="${LF_BIN_DIR:-/opt/lightfarm/bin}"
export LF_MODELS_DIR="${LF_MODELS_DIR:-/models}"
export LF_WEB_ROOT="${LF_WEB_ROOT:-/opt/lightfarm/web}"
export LF_ASSETS_DIR="${LF_ASSETS_DIR:-/opt/lightfarm/assets}"

bin() { # bin NAME: the path of a program, from LF_BIN_DIR (flat or a build folder), then PATH
  local name="lightfarm-$1" d
  for d in "$BIN_DIR" "$BIN_DIR/$1" "$BIN_DIR/$1/cli"; do
    [ -x "$d/$name" ] && { echo "$d/$name"; return; }
  done
  command -v "$name" || die "no $name in $BIN_DIR (LF_BIN_DIR) or PATH"
}

# flag_env FLAG: the LF_* variable of a program's --FLAG (or one of its aliases), from the programs'
# own --help tables, so this script never keeps a second list of settings.
flag_env() {
  local f="$1" role v
  for role in gateway broker worker; do
    v="$({ "$(bin "$role")" --help 2>/dev/null || true; } | awk -v f="--$f" '
      $1 == f && $2 ~ /^LF_/ { print $2; exit }
      $2 ~ /^LF_/ { if (index($0, "(also " f ")") || index($0, "(also " f ",")) { print $2; exit } }')"
    [ -n "$v" ] && { echo "$v"; return 0; }
  done
  return 0
}

# How oneDNN's OpenMP threads wait between primitives, for WORKERS CPU workers in this container (each
# on all of its cores: the all-in-one does not split them): one VAR=VALUE word, or nothing. Kept in step
# with deploy/lightfarm's omp_wait_env: a worker with cores of its own spins a short while
# (GOMP_SPINCOUNT=10000, ~0.1 ms) and computes at the speed bench_unet measures; workers that share cores
# (more compute threads than cores: several workers, or LF_THREADS above the cores) sleep at once
# (OMP_WAIT_POLICY=PASSIVE). An operator's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins (docs/PERFORMANCE.md,
# session 13). libgomp reads it when a program starts: it goes into the environment before exec.
omp_wait_env() {
  local workers="$1" cores threads="${LF_THREADS:-0}"
  [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ] || return 0
  cores="$(nproc 2>/dev/null || echo 1)"
  [[ "$threads" =~ ^[0-9]+$ ]] && [ "$threads" -gt 0 ] || threads="$cores"
  if [ $((threads * workers)) -gt "$cores" ]; then echo "OMP_WAIT_POLICY=PASSIVE"; else echo "GOMP_SPINCOUNT=10000"; fi
}

# The role of the container's PID 1, from its command line (lightfarm-ROLE or supervisord).
pid1_role() {
  local argv0
  argv0="$(tr '\0' '\n' </proc/1/cmdline 2>/dev/null | head -n 1)"
  case "$argv0" in
    *lightfarm-gateway) echo gateway ;;
    *lightfarm-worker) echo worker ;;
    *lightfarm-broker) echo broker ;;
    *supervisord* | *python*) echo all-in-one ;; # supervisord runs as "python3 /usr/bin/supervisord"
    *) echo unknown ;;
  esac
}

cmd_probe() {
  local role="${1:-}"
  [ "$role" = auto ] && role="$(pid1_role)"
  case "$role" in
    gateway | all-in-one)
      local host="${LF_HTTP_HOST:-0.0.0.0}"
      [ "$host" = 0.0.0.0 ] && host=127.0.0.1
      curl -fsS --max-time 5 -o /dev/null "http://$host:${LF_HTTP_PORT:-7860}/healthz"
      ;;
    worker | worker-live)
      local f="${LF_WORKER_READY_FILE:-}" age
      [ -n "$f" ] || die "probe $role: LF_WORKER_READY_FILE is not set"
      if [ ! -f "$f" ]; then
        [ "$role" = worker-live ] && exit 0
        say "not ready: no $f"
        exit 1
      fi
      age=$(($(date +%s) - $(stat -c %Y "$f")))
      [ "$age" -le "${LF_PROBE_MAX_AGE_S:-30}" ] ||
        { say "$f is $age s old: the worker's main loop is stuck"; exit 1; }
      ;;
    broker) kill -0 1 ;;
    unknown) say "probe auto: PID 1 is not a lightfarm program"; exit 1 ;;
    *) die "probe: which role? gateway, worker, broker, all-in-one or auto" ;;
  esac
}

# A value for supervisord's config: its %-expansion escaped (sv_esc), and in double quotes (sv_quote).
sv_esc() { local v="${1//%/%%}"; printf '%s' "${v//\"/\\\"}"; }
sv_quote() { printf '"%s"' "$(sv_esc "$1")"; }

# log_lines NAME: where supervisord sends a program's output.
log_lines() {
  if [ -n "${LF_LOG_DIR:-}" ]; then
    printf 'stdout_logfile=%s/%s.log\nstdout_logfile_maxbytes=50MB\nstdout_logfile_backups=2\nredirect_stderr=true\n' \
      "$LF_LOG_DIR" "$1"
  else
    printf 'stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\nredirect_stderr=true\n'
  fi
}

cmd_all_in_one() {
  local workers="${LF_WORKERS:-1}" flag val var role
  for role in gateway broker worker; do bin "$role" >/dev/null; done # fail here, naming what is missing
  while [ $# -gt 0 ]; do
    case "$1" in
      --workers) workers="${2:?--workers needs a number}"; shift 2; continue ;;
      --workers=*) workers="${1#*=}"; shift; continue ;;
      --*=*) flag="${1%%=*}"; val="${1#*=}"; shift ;;
      --*) flag="$1"; [ $# -ge 2 ] || die "$1 needs a value"; val="$2"; shift 2 ;;
      *) die "all-in-one: unexpected argument '$1' (flags are --name value)" ;;
    esac
    var="$(flag_env "${flag#--}")"
    [ -n "$var" ] || die "all-in-one: no program has the flag $flag (see: entrypoint.sh gateway --help)"
    export "$var=$val"
  done
  [[ "$workers" =~ ^[0-9]+$ ]] && [ "$workers" -ge 1 ] || die "all-in-one: --workers needs a number >= 1, not '$workers'"
  local fsync="${LF_REDIS_APPENDFSYNC:-always}"
  case "$fsync" in always | everysec) ;; *) die "LF_REDIS_APPENDFSYNC must be always or everysec, not '$fsync'" ;; esac
  command -v supervisord >/dev/null || die "all-in-one needs supervisord (Debian package supervisor)"
  command -v redis-server >/dev/null || die "all-in-one needs redis-server (Debian package redis-server)"

  local wait
  wait="$(omp_wait_env "$workers")"
  [ -z "$wait" ] || export "${wait?}"
  local data="${LF_DATA_DIR:-/data}"
  mkdir -p "$data/redis" "$data/run" || die "LF_DATA_DIR $data is not writable"
  [ -w "$data/run" ] || die "LF_DATA_DIR $data is not writable"
  [ -z "${LF_LOG_DIR:-}" ] || mkdir -p "$LF_LOG_DIR"
  data="$(cd "$data" && pwd)"
  local base="${LF_BROKER_PORT_BASE:-5555}" redis_port="${LF_REDIS_PORT:-6379}"
  # Everything but the gateway's HTTP port stays on the loopback interface.
  export LF_HTTP_PORT="${LF_HTTP_PORT:-7860}" LF_HTTP_HOST="${LF_HTTP_HOST:-0.0.0.0}"
  export LF_REDIS_HOST=127.0.0.1 LF_REDIS_PORT="$redis_port"
  export LF_BROKER_FRONTEND="tcp://127.0.0.1:$base" LF_BROKER_BACKEND="tcp://127.0.0.1:$((base + 1))"
  export LF_BROKER_EVENTS="tcp://127.0.0.1:$((base + 2))"
  # A real model is the default once there is one (as `deploy/lightfarm up` farms find it).
  [ -n "${LF_DEFAULT_MODEL:-}" ] || [ ! -f "$LF_MODELS_DIR/lf-tiny-shapes.safetensors" ] ||
    export LF_DEFAULT_MODEL=lf-tiny-shapes

  local conf="$data/run/supervisord.conf" host
  host="$(hostname)"
  {
    echo "; generated by entrypoint.sh all-in-one at $(date -u +%FT%TZ); rewritten at every start"
    echo "[supervisord]"
    echo "nodaemon=true"
    echo "logfile=${LF_LOG_DIR:-$data/run}/supervisord.log"
    echo "logfile_maxbytes=10MB"
    echo "pidfile=$data/run/supervisord.pid"
    echo "childlogdir=$data/run"
    echo "[unix_http_server]"
    echo "file=$data/run/supervisor.sock"
    echo "chmod=0700"
    echo "[rpcinterface:supervisor]"
    echo "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface"
    echo "[supervisorctl]"
    echo "serverurl=unix://$data/run/supervisor.sock"
    # Common to every program: restart whatever exits, however it exits, for ever (the broker and
    # gateway wait for Redis themselves; a restart loop shows in the logs).
    local common
    common=$'autostart=true\nautorestart=true\nstartsecs=1\nstartretries=1000000\nstopasgroup=true\nkillasgroup=true'
    echo "[program:redis]"
    echo "command=$(sv_quote "$(command -v redis-server)") --port $redis_port --bind 127.0.0.1 --dir $(sv_quote "$data/redis") --appendonly yes --appendfsync $fsync --save \"\" --daemonize no"
    echo "priority=10"
    echo "$common"
    log_lines redis
    echo "[program:broker]"
    echo "command=$(sv_quote "$(bin broker)")"
    echo "priority=20"
    echo "$common"
    log_lines broker
    echo "[program:worker]"
    echo "command=$(sv_quote "$(bin worker)")"
    echo "process_name=worker-%(process_num)d"
    echo "numprocs=$workers"
    echo "numprocs_start=1"
    echo "priority=30"
    echo "environment=LF_WORKER_ID=\"$(sv_esc "$host")-w%(process_num)d\",LF_WORKER_READY_FILE=\"$(sv_esc "$data/run")/worker-%(process_num)d.ready\""
    # SIGTERM lets the running job finish (the worker's drain); SIGKILL only after this long.
    echo "stopwaitsecs=${LF_WORKER_STOP_WAIT_S:-600}"
    echo "$common"
    if [ -n "${LF_LOG_DIR:-}" ]; then
      printf 'stdout_logfile=%s/worker-%%(process_num)d.log\nstdout_logfile_maxbytes=50MB\nstdout_logfile_backups=2\nredirect_stderr=true\n' "$LF_LOG_DIR"
    else
      log_lines worker
    fi
    echo "[program:gateway]"
    echo "command=$(sv_quote "$(bin gateway)")"
    echo "priority=40"
    echo "$common"
    log_lines gateway
  } >"$conf"
  say "all-in-one: redis, broker, $workers worker(s), gateway on http://$LF_HTTP_HOST:$LF_HTTP_PORT/ (data in $data)"
  exec supervisord -n -c "$conf"
}

role="${1:-help}"
[ $# -gt 0 ] && shift
case "$role" in
  gateway | broker | worker)
    # In a container the gateway listens on every interface unless told otherwise.
    [ "$role" = gateway ] && export LF_HTTP_HOST="${LF_HTTP_HOST:-0.0.0.0}"
    # One worker per container: its OpenMP wait (omp_wait_env).
    if [ "$role" = worker ]; then
      wait="$(omp_wait_env 1)"
      [ -z "$wait" ] || export "${wait?}"
    fi
    exec "$(bin "$role")" "$@"
    ;;
  engine) exec "$(bin engine)" "$@" ;;
  all-in-one) cmd_all_in_one "$@" ;;
  probe) cmd_probe "$@" ;;
  help | -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown role '$role' (gateway, broker, worker, engine, all-in-one, probe, help)" ;;
esac
