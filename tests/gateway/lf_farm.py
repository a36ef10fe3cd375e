"""lf_farm: a real farm for the gateway's Python client tests (test_a1111.py,
test_openai.py): redis-server, lightfarm-broker, lightfarm-worker and
lightfarm-gateway as separate processes on free loopback ports, each with a
log file in a temp dir (kept when LF_KEEP_TEST is set).

FARM holds the running farm (dir, procs, port, url); a test module imports
it and reads it once main() has started the farm. One farm per process."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

FARM = {}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_farm(bins, prefix, env=None, worker_env=None):
    """Starts the farm with the binaries bins (gateway, broker, worker) in a
    temp dir named prefix*, and waits until one worker has registered. env:
    extra variables for every process but redis; worker_env: for the worker
    alone (its models, say)."""
    d = tempfile.mkdtemp(prefix=prefix)
    ports = {k: free_port() for k in ("redis", "fe", "be", "ev", "http")}
    procs = []

    def spawn(name, argv, env):
        log = open(os.path.join(d, name + ".log"), "w")
        e = dict(os.environ, LF_LOG_LEVEL="warn", **env)
        procs.append(subprocess.Popen(argv, env=e, stdout=log, stderr=subprocess.STDOUT, cwd=d))

    spawn("redis", ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d], {})
    common = dict(env or {}, LF_REDIS_PORT=str(ports["redis"]),
                  LF_BROKER_FRONTEND="tcp://127.0.0.1:%d" % ports["fe"],
                  LF_BROKER_BACKEND="tcp://127.0.0.1:%d" % ports["be"],
                  LF_BROKER_EVENTS="tcp://127.0.0.1:%d" % ports["ev"])
    time.sleep(0.3)
    spawn("broker", [bins["broker"]], common)
    spawn("worker", [bins["worker"]], dict(common, **(worker_env or {})))
    spawn("gateway", [bins["gateway"]], dict(common, LF_HTTP_PORT=str(ports["http"])))
    url = "http://127.0.0.1:%d" % ports["http"]
    # Recorded before the wait, so stop_farm stops what did start.
    FARM.update(dir=d, procs=procs, port=ports["http"], url=url, bins=bins, env=common)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/workers", timeout=2) as r:
                if b'"count":1' in r.read():
                    break
        except Exception:
            pass
        time.sleep(0.1)
    else:
        raise RuntimeError("farm did not come up; logs in " + d)


def spawn_gateway(name, env=None):
    """Starts one more gateway on the running farm (its redis and brokers),
    with extra variables env; waits until it answers /readyz. Returns (proc,
    url); stop_farm stops it too."""
    port = free_port()
    e = dict(os.environ, LF_LOG_LEVEL="warn", **dict(FARM["env"], **(env or {})), LF_HTTP_PORT=str(port))
    with open(os.path.join(FARM["dir"], name + ".log"), "w") as log:
        proc = subprocess.Popen([FARM["bins"]["gateway"]], env=e, stdout=log, stderr=subprocess.STDOUT,
                                cwd=FARM["dir"])
    FARM["procs"].append(proc)
    url = "http://127.0.0.1:%d" % port
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError("gateway %s did not come up; logs in %s" % (name, FARM["dir"]))


def stop_farm():
    for p in reversed(FARM.get("procs", [])):
        if p.poll() is not None:
            continue
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    if os.environ.get("LF_KEEP_TEST"):
        print("logs kept in", FARM.get("dir"))
    else:
        shutil.rmtree(FARM.get("dir", ""), ignore_errors=True)


def main(doc, prefix, env=None, worker_env=None):
    """The test script's main: usage doc unless given GATEWAY BROKER WORKER,
    exit 77 (skipped) without redis-server, else the __main__ module's
    unittest cases against a farm started as start_farm does. Exits 0 when
    all passed."""
    if len(sys.argv) < 4:
        print(doc)
        sys.exit(2)
    bins = dict(gateway=sys.argv[1], broker=sys.argv[2], worker=sys.argv[3])
    if not shutil.which("redis-server"):
        print("SKIP: redis-server not installed")
        sys.exit(77)
    try:
        start_farm(bins, prefix, env, worker_env)
        prog = unittest.main(module="__main__", argv=[sys.argv[0], "-v"], exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        stop_farm()
    sys.exit(0 if ok else 1)
