"""test_enhance_farm: prompt enhancement end to end through a real farm
(redis, broker, worker, gateway: lf_farm) with LF_ENHANCE_URL pointing at
FaultDoubleLLM below.

FaultDoubleLLM is a FAULT DOUBLE, not an LLM: a scripted http.server that
answers the OpenAI chat completions shape (and Ollama's /api/chat) with a
rewrite it computes from the prompt ("enhanced: <prompt>, highly detailed"),
or with the fault the prompt names: FAULT-timeout (answers after the
gateway's timeout), FAULT-500, FAULT-badjson, FAULT-long (over
LF_ENHANCE_MAX_CHARS), FAULT-empty. It records what the gateway sent. The
real-server test (a real OpenAI-compatible process) is not this one.

Each job must end done: with the enhanced prompt and the original beside it,
or with the original prompt and enhance_error saying why.
usage: test_enhance_farm.py GATEWAY BROKER WORKER"""
import http.server
import json
import signal
import threading
import time
import unittest
import urllib.error
import urllib.request

from lf_farm import FARM, main

TIMEOUT_MS = 1500
MAX_CHARS = 300


class FaultDoubleLLM(http.server.BaseHTTPRequestHandler):
    seen = []  # (path, Authorization, body) of every request

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FaultDoubleLLM.seen.append((self.path, self.headers.get("Authorization"), body))
        user = body["messages"][-1]["content"]
        prompt = user.split("Prompt: ", 1)[1]
        status, text = 200, "enhanced: %s, highly detailed" % prompt
        if "FAULT-timeout" in prompt:
            time.sleep(TIMEOUT_MS / 1000 * 3)
        elif "FAULT-500" in prompt:
            self.reply(500, json.dumps({"error": {"message": "the fault double failed", "type": "server_error"}}))
            return
        elif "FAULT-badjson" in prompt:
            self.reply(200, '{"choices": [{"message": {"content": "half')
            return
        elif "FAULT-long" in prompt:
            text = "x" * (MAX_CHARS + 1)
        elif "FAULT-empty" in prompt:
            text = "   "
        if self.path == "/api/chat":
            out = {"model": body.get("model"), "message": {"role": "assistant", "content": text}, "done": True}
        else:
            out = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}]}
        self.reply(status, json.dumps(out))

    def reply(self, status, text):
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up (timeout)


def call(method, path, body=None):
    req = urllib.request.Request(FARM["url"] + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def run_job(body):
    st, j = call("POST", "/v1/jobs", dict(dict(model="lf-diagnostic", width=64, height=64, steps=2), **body))
    assert st == 202, (st, j)
    deadline = time.time() + 30
    while time.time() < deadline:
        _, v = call("GET", "/v1/jobs/" + j["id"])
        if v["status"] in ("done", "failed", "cancelled"):
            return v
        time.sleep(0.05)
    raise AssertionError("job did not end: %s" % v)


class Enhance(unittest.TestCase):
    def test_enhanced(self):
        FaultDoubleLLM.seen.clear()
        v = run_job({"prompt": "a cat", "enhance_prompt": True, "enhance_instruction": "make it blue"})
        self.assertEqual(v["status"], "done")
        p = v["params"]
        self.assertEqual(p["prompt"], "enhanced: a cat, highly detailed")
        self.assertEqual(p["prompt_original"], "a cat")
        self.assertNotIn("enhance_error", p)
        path, auth, body = FaultDoubleLLM.seen[-1]
        self.assertEqual(path, "/v1/chat/completions")
        self.assertEqual(auth, "Bearer test-key")
        self.assertEqual(body["model"], "fault-double")
        self.assertEqual(body["messages"][0]["role"], "system")
        self.assertEqual(body["messages"][1]["content"], "Instruction: make it blue\n\nPrompt: a cat")

    def test_not_asked(self):
        FaultDoubleLLM.seen.clear()
        v = run_job({"prompt": "a dog", "prompt_original": "forged", "enhance_error": "forged"})
        self.assertEqual(v["params"]["prompt"], "a dog")
        self.assertNotIn("prompt_original", v["params"])  # the gateway's fields: a client's are dropped
        self.assertNotIn("enhance_error", v["params"])
        self.assertEqual(FaultDoubleLLM.seen, [])

    def test_faults_keep_the_original(self):
        cases = {
            "FAULT-timeout": "did not answer within %d ms" % TIMEOUT_MS,
            "FAULT-500": "answered HTTP 500: the fault double failed",
            "FAULT-badjson": "is not JSON",
            "FAULT-long": "has %d characters; the limit is %d" % (MAX_CHARS + 1, MAX_CHARS),
            "FAULT-empty": "an empty prompt",
        }
        for fault, why in cases.items():
            with self.subTest(fault=fault):
                v = run_job({"prompt": "a cat " + fault, "enhance_prompt": True})
                self.assertEqual(v["status"], "done")
                p = v["params"]
                self.assertEqual(p["prompt"], "a cat " + fault)
                self.assertNotIn("prompt_original", p)
                self.assertIn(why, p["enhance_error"])

    def test_a1111_infotext(self):
        st, r = call("POST", "/sdapi/v1/txt2img", {"prompt": "a fox", "enhance_prompt": True, "width": 64,
                                                   "height": 64, "steps": 2, "seed": 5})
        self.assertEqual(st, 200)
        info = json.loads(r["info"])
        it = info["infotexts"][0]
        self.assertTrue(it.startswith("enhanced: a fox, highly detailed\n"), it)
        # A1111 quotes a value with ',' or ':' (json.dumps), as the infotext writer does.
        self.assertIn('Original prompt: a fox', it)
        self.assertEqual(info["prompt"], "enhanced: a fox, highly detailed")

    def test_schema(self):
        _, doc = call("GET", "/openapi.json")
        props = doc["components"]["schemas"]["JobRequest"]["properties"]
        for k in ("enhance_prompt", "enhance_instruction"):
            self.assertIn(k, props)

    def test_zz_stop_while_enhancing(self):
        # Last (the name sorts last): the gateway stops while the LLM is slow. The held request still gets
        # an answer: its job queued with the original prompt and the reason, or a 503 to retry (not accepted,
        # so nothing is lost); never a dropped connection; the gateway exits at once and cleanly.
        res = {}

        def post():
            try:
                res["r"] = call("POST", "/v1/jobs", {"model": "lf-diagnostic", "prompt": "FAULT-timeout at stop",
                                                     "width": 64, "height": 64, "enhance_prompt": True})
            except Exception as e:  # noqa: BLE001 - reported below
                res["r"] = e
        t = threading.Thread(target=post)
        t.start()
        time.sleep(0.5)
        gw = FARM["procs"][-1]
        gw.send_signal(signal.SIGTERM)
        self.assertEqual(gw.wait(10), 0)
        t.join(10)
        r = res["r"]
        if isinstance(r, urllib.error.HTTPError):  # the link had stopped first: a 503 to retry elsewhere
            body = r.read()
            self.assertEqual(r.code, 503, body)
            self.assertEqual(json.loads(body)["error"]["code"], "unavailable", body)
        else:  # queued first, with the original prompt
            self.assertEqual(r[0], 202, r)
            self.assertEqual(r[1]["status"], "queued")


if __name__ == "__main__":
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FaultDoubleLLM)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    main(__doc__, "lf-enhance-", env={
        "LF_ENHANCE_URL": "http://127.0.0.1:%d" % srv.server_address[1],
        "LF_ENHANCE_MODEL": "fault-double", "LF_ENHANCE_API_KEY": "test-key",
        "LF_ENHANCE_TIMEOUT_MS": str(TIMEOUT_MS), "LF_ENHANCE_MAX_CHARS": str(MAX_CHARS)})
