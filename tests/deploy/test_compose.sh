#!/usr/bin/env bash
# test_compose: deploy/compose.yaml validates and resolves with docker-compose 1.29.2 (`config` needs no
# Docker daemon; pinned, in tests/deploy/.venv-compose), with and without the gpu profile, and the
# resolved farm is the one intended: Redis with AOF on a named volume, two brokers binding what the
# gateway and workers connect to (same order in every list), the gateway published on 7860, CPU
# workers with the models read-only and a stop grace period, the GPU worker only under its profile with
# an NVIDIA device reservation. A broken file must fail `config`.
#   test_compose.sh SOURCE_DIR
# Exits 77 (skipped) only when PyPI cannot be reached for the venv.
set -euo pipefail
SRC="$(cd "$1" && pwd)"
T="$(mktemp -d /tmp/lf-test-compose.XXXXXX)"
trap 'rm -rf "$T"' EXIT
# shellcheck source=venv.sh
. "$(dirname "$0")/venv.sh"
venv="$(deploy_venv compose)" || { echo "SKIP: cannot make the docker-compose venv (see above)"; exit 77; }
dc() { env -u DOCKER_HOST -u COMPOSE_FILE -u COMPOSE_PROFILES "$venv/docker-compose" --project-directory "$SRC/deploy" "$@"; }
unset LF_WORKERS LF_API_KEYS LF_DEFAULT_MODEL LF_REDIS_APPENDFSYNC LF_MODELS_HOST_DIR LF_PUBLISH_PORT

dc -f "$SRC/deploy/compose.yaml" config >"$T/cpu.yaml" 2>"$T/err" || { cat "$T/err" >&2; echo "FAIL: config" >&2; exit 1; }
LF_WORKERS=3 LF_REDIS_APPENDFSYNC=everysec LF_IMAGE_STORE=dir:/images dc -f "$SRC/deploy/compose.yaml" --profile gpu config >"$T/gpu.yaml" 2>"$T/err" ||
  { cat "$T/err" >&2; echo "FAIL: config --profile gpu" >&2; exit 1; }

"$venv/python" - "$T/cpu.yaml" "$T/gpu.yaml" "$SRC" <<'PY'
import os, sys, yaml
cpu, gpu = (yaml.safe_load(open(p)) for p in sys.argv[1:3])
src = sys.argv[3]
errors = []
def check(ok, msg):
    if not ok: errors.append(msg)
def vol(v):
    """A volume entry, short ("src:dst:mode") or long, as a dict."""
    if isinstance(v, dict): return v
    parts = v.split(":")
    src, dst, mode = (parts + ["rw"])[:3] if len(parts) > 1 else (None, parts[0], "rw")
    kind = "bind" if src and (src.startswith("/") or src.startswith(".")) else "volume"
    return {"type": kind, "source": src, "target": dst, "read_only": "ro" in mode.split(",")}

for name, c in (("default", cpu), ("gpu profile", gpu)):
    s = c["services"]
    # docker-compose 1.29's config lists profile services too; `profiles` says when they start.
    want = {"redis", "broker-1", "broker-2", "gateway", "worker", "worker-gpu"}
    check(set(s) == want, "%s: services %s, want %s" % (name, sorted(s), sorted(want)))
    for n in want - {"worker-gpu"}:
        check(not s.get(n, {}).get("profiles"), "%s: %s is under a profile; it must always start" % (name, n))
    r = s.get("redis", {})
    cmd = r.get("command", [])
    check("--appendonly" in cmd and cmd[cmd.index("--appendonly") + 1] == "yes", name + ": redis without AOF")
    fsync = cmd[cmd.index("--appendfsync") + 1] if "--appendfsync" in cmd else None
    check(fsync == ("everysec" if c is gpu else "always"), name + ": appendfsync %s" % fsync)
    vols = [vol(v) for v in r.get("volumes", [])]
    check(any(v.get("type") == "volume" and v.get("source") == "redis-data" and v.get("target") == "/data"
              for v in vols), name + ": redis data not on the named volume redis-data")
    check("redis-data" in c.get("volumes", {}), name + ": volume redis-data not declared")
    binds = {}
    for b in ("broker-1", "broker-2"):
        env = s[b].get("environment", {})
        check(s[b].get("command") == ["broker"], name + ": %s does not run the broker role" % b)
        for var in ("LF_BROKER_FRONTEND", "LF_BROKER_BACKEND", "LF_BROKER_EVENTS"):
            check(env.get(var, "").startswith("tcp://*:"), "%s: %s %s does not bind" % (name, b, var))
            binds.setdefault(var, []).append(b + ":" + env.get(var, "").rsplit(":", 1)[-1])
        check(env.get("LF_REDIS_HOST") == "redis", "%s: %s not on redis" % (name, b))
    for client in ("gateway", "worker", "worker-gpu"):
        env = s[client].get("environment", {})
        for var, want in binds.items():
            got = [e.split("//", 1)[1] for e in env.get(var, "").split(",")]
            check(got == want, "%s: %s %s = %s, the brokers bind %s" % (name, client, var, got, want))
    # Result images: the store setting reaches the brokers and the gateway (default redis; the gpu run
    # sets dir:/images), both mount the volume `images` there, and the S3 keys reach no worker.
    store = "dir:/images" if c is gpu else "redis"
    for n in ("broker-1", "broker-2", "gateway"):
        env = s[n].get("environment", {})
        check(env.get("LF_IMAGE_STORE") == store, "%s: %s LF_IMAGE_STORE %s, want %s" % (name, n, env.get("LF_IMAGE_STORE"), store))
        check("LF_S3_SECRET_ACCESS_KEY" in env, "%s: %s gets no LF_S3_SECRET_ACCESS_KEY" % (name, n))
        check(any(vol(v).get("source") == "images" and vol(v).get("target") == "/images" for v in s[n].get("volumes", [])),
              "%s: %s does not mount the images volume at /images" % (name, n))
    for n in ("worker", "worker-gpu"):
        check("LF_S3_SECRET_ACCESS_KEY" not in s[n].get("environment", {}), "%s: %s gets the S3 keys" % (name, n))
    check("images" in c.get("volumes", {}), name + ": volume images not declared")
    gw = s["gateway"]
    check(any(str(p.get("target")) == "7860" and str(p.get("published")) == "7860" for p in gw.get("ports", [])),
          name + ": gateway not published on 7860")
    check(gw.get("command") == ["gateway"], name + ": gateway role")
    check(any(p.get("target") for p in gw.get("ports", [])), name + ": no ports")
    for w in ("worker", "worker-gpu"):
        ws = s[w]
        mounts = [vol(v) for v in ws.get("volumes", []) if vol(v).get("target") == "/models"]
        check(len(mounts) == 1 and mounts[0].get("read_only") is True, "%s: %s models not read-only" % (name, w))
        if mounts:
            check(os.path.realpath(mounts[0]["source"]) == os.path.realpath(os.path.join(src, "models")),
                  "%s: %s models from %s, not the checkout's models/" % (name, w, mounts[0]["source"]))
        check(ws.get("command") == ["worker"], "%s: %s role" % (name, w))
        check(ws.get("stop_grace_period") in ("10m", "600s"), "%s: %s stop grace %s" % (name, w, ws.get("stop_grace_period")))
    check(s["worker"].get("deploy", {}).get("replicas") == (3 if c is gpu else 1),
          name + ": worker replicas %s" % s["worker"].get("deploy", {}).get("replicas"))
g = gpu["services"]["worker-gpu"]
check(g.get("profiles") == ["gpu"], "worker-gpu is not only under the gpu profile")
devs = g.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
check(len(devs) == 1 and devs[0].get("driver") == "nvidia" and "gpu" in devs[0].get("capabilities", [])
      and devs[0].get("device_ids") == ["0"], "worker-gpu: device reservation %s" % devs)
check(g.get("environment", {}).get("LF_WORKER_DEVICE") == "cuda", "worker-gpu: not on cuda")
check(g.get("build", {}).get("args", {}).get("VARIANT") == "cuda", "worker-gpu: not the cuda image build")
for e in errors: print("  " + e)
print("compose: %s" % ("%d problem(s)" % len(errors) if errors else "ok"))
sys.exit(1 if errors else 0)
PY

# A broken file must not pass: an unknown service key, and replicas that are not a number.
sed 's/^    hostname: broker-1$/    hostnme: broker-1/' "$SRC/deploy/compose.yaml" >"$T/bad1.yaml"
sed 's/replicas: ${LF_WORKERS:-1}/replicas: many/' "$SRC/deploy/compose.yaml" >"$T/bad2.yaml"
for b in bad1 bad2; do
  cmp -s "$SRC/deploy/compose.yaml" "$T/$b.yaml" && { echo "FAIL: the $b mutation did not apply" >&2; exit 1; }
  if dc -f "$T/$b.yaml" config >/dev/null 2>"$T/err"; then echo "FAIL: config accepted $b" >&2; exit 1; fi
done
echo "ok: compose.yaml validates (docker-compose $("$venv/docker-compose" version --short)) and resolves to the intended farm"
