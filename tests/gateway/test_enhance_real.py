"""test_enhance_real: prompt enhancement against a REAL OpenAI-compatible
server process: `transformers serve` (Hugging Face transformers 4.56.2, its
FastAPI/uvicorn server) on a tiny random chat model this test makes offline
(make_tiny_chat_model.py), in front of a real farm (lf_farm).

The server's Python: LF_SERVE_PYTHON (default: /work/venv-torch2/bin/python
when it exists, else python3) must import torch; transformers 4.56.2 and the
server's packages go into LF_SERVE_TARGET (default: tfserve/ in the current
directory: ctest runs it in the build tree) with
`pip install --target DIR` + PACKAGES below (no torch: the interpreter's own
is used). Skipped (77) when that Python has no
torch or pip cannot install.

The model answers noise; what is checked is the wire: the gateway's request
reaches a real server, its answer (which this server streams as server-sent
events whatever "stream" says) is read, and the job runs with the LLM's
prompt, the original beside it, and the infotext carrying both.
usage: test_enhance_real.py GATEWAY BROKER WORKER"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import lf_farm
from lf_farm import FARM

HERE = os.path.dirname(os.path.abspath(__file__))
SERVE = {}
# transformers serve and its server packages, as tested (no torch: the interpreter's own is used).
PACKAGES = ["transformers==4.56.2", "fastapi==0.165.0", "uvicorn==0.55.0", "openai==3.57.0", "pydantic==2.14.4"]


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def setup_server():
    py = os.environ.get("LF_SERVE_PYTHON") or (
        "/work/venv-torch2/bin/python" if os.path.exists("/work/venv-torch2/bin/python") else shutil.which("python3"))
    if subprocess.run([py, "-c", "import torch"], capture_output=True).returncode:
        skip("%s has no torch (set LF_SERVE_PYTHON)" % py)
    target = os.path.abspath(os.environ.get("LF_SERVE_TARGET") or "tfserve")
    env = dict(os.environ, PYTHONPATH=target, HF_HUB_OFFLINE="1")
    probe = [py, "-c", "import transformers.commands.serving as s, fastapi, uvicorn, openai; "
             "import transformers; assert transformers.__version__ == '4.56.2'"]
    if subprocess.run(probe, env=env, capture_output=True).returncode:
        r = subprocess.run([py, "-m", "pip", "install", "-q", "--target", target] + PACKAGES, capture_output=True,
                           text=True, timeout=600)
        if r.returncode or subprocess.run(probe, env=env, capture_output=True).returncode:
            skip("cannot install transformers serve into %s: %s" % (target, r.stderr[-400:]))
    d = tempfile.mkdtemp(prefix="lf-enhance-real-")
    model = os.path.join(d, "tiny-chat")
    subprocess.run([py, os.path.join(HERE, "make_tiny_chat_model.py"), model], env=env, check=True,
                   capture_output=True)
    port = lf_farm.free_port()
    log = open(os.path.join(d, "serve.log"), "w")
    proc = subprocess.Popen([py, "-c", "import sys; from transformers.commands.transformers_cli import main; "
                             "sys.argv = ['transformers', 'serve', '--host', '127.0.0.1', '--port', '%d', "
                             "'--device', 'cpu']; main()" % port], env=env, stdout=log, stderr=subprocess.STDOUT)
    SERVE.update(dir=d, proc=proc, port=port, model=model)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("transformers serve exited; log in " + d)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("transformers serve did not listen; log in " + d)


def call(method, path, body=None):
    req = urllib.request.Request(FARM["url"] + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, json.loads(r.read())


class RealServer(unittest.TestCase):
    def test_native_job(self):
        st, j = call("POST", "/v1/jobs", {"model": "lf-diagnostic", "prompt": "a cat", "width": 64, "height": 64,
                                          "steps": 2, "enhance_prompt": True})
        self.assertEqual(st, 202)
        self.assertEqual(j["status"], "enhancing")
        deadline = time.time() + 60 + 60  # the enhancing stage (LF_ENHANCE_TIMEOUT_MS) is part of the job now
        while time.time() < deadline:
            _, v = call("GET", "/v1/jobs/" + j["id"])
            if v["status"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.1)
        self.assertEqual(v["status"], "done")
        p = v["params"]
        self.assertNotIn("enhance_error", p, p.get("enhance_error"))
        self.assertEqual(p["prompt_original"], "a cat")
        self.assertNotEqual(p["prompt"], "a cat")
        self.assertGreater(len(p["prompt"]), 0)
        print("real server's prompt: %r" % p["prompt"])

    def test_a1111_infotext(self):
        st, r = call("POST", "/sdapi/v1/txt2img", {"prompt": "a fox", "enhance_prompt": True, "width": 64,
                                                   "height": 64, "steps": 2})
        self.assertEqual(st, 200)
        info = json.loads(r["info"])
        self.assertNotEqual(info["prompt"], "a fox", info["infotexts"][0])
        self.assertTrue(info["infotexts"][0].startswith(info["prompt"] + "\n"))
        self.assertIn("Original prompt: a fox", info["infotexts"][0])


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    if not shutil.which("redis-server"):
        skip("redis-server not installed")
    bins = dict(gateway=sys.argv[1], broker=sys.argv[2], worker=sys.argv[3])
    ok = False
    try:
        setup_server()
        lf_farm.start_farm(bins, "lf-enhance-real-farm-", env={
            "LF_ENHANCE_URL": "http://127.0.0.1:%d" % SERVE["port"], "LF_ENHANCE_MODEL": SERVE["model"],
            "LF_ENHANCE_TIMEOUT_MS": "60000"})
        prog = unittest.main(module="__main__", argv=[sys.argv[0], "-v"], exit=False)
        ok = prog.result.wasSuccessful()
    finally:
        lf_farm.stop_farm()
        if SERVE.get("proc"):
            SERVE["proc"].terminate()
            try:
                SERVE["proc"].wait(10)
            except subprocess.TimeoutExpired:
                SERVE["proc"].kill()
        if not os.environ.get("LF_KEEP_TEST") and SERVE.get("dir"):
            shutil.rmtree(SERVE["dir"], ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
