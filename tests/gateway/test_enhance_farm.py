"""test_enhance_farm: prompt enhancement end to end through a real farm
(redis, broker, worker, gateway: lf_farm) with LF_ENHANCE_URL pointing at
FaultDoubleLLM below.

FaultDoubleLLM is a FAULT DOUBLE, not an LLM: a scripted http.server that
answers the OpenAI chat completions shape (and Ollama's /api/chat) with a
rewrite it computes from the prompt ("enhanced: <prompt>, highly detailed"),
or with the fault the prompt names: FAULT-timeout (answers after the
gateway's timeout), FAULT-500, FAULT-badjson, FAULT-long (over
LF_ENHANCE_MAX_CHARS), FAULT-empty. STREAM in the prompt: the answer comes
streamed (OpenAI's server-sent events, Ollama's JSON lines) in pieces.
HOLD-<name>: the answer waits until the test releases <name> (the
enhancing stage, held open without timing). It records what the gateway
sent. No real Ollama server exists on Debian or PyPI, so the Ollama API
(LF_ENHANCE_API=ollama, a second gateway on the same farm) is run against
this double too. The real-server test (a real OpenAI-compatible process) is
not this one.

The enhancement is a stage of the job: accepted at once with status
"enhancing" (the broker holds it out of the queues), then queued by the
gateway's ENHANCED, or by the broker's reaper when that never comes. Each
job must end done: with the enhanced prompt and the original beside it, or
with the original prompt and enhance_error saying why.
usage: test_enhance_farm.py GATEWAY BROKER WORKER"""
import http.server
import json
import signal
import threading
import time
import unittest
import urllib.error
import urllib.request

from lf_farm import FARM, main, spawn_gateway

TIMEOUT_MS = 1500
MAX_CHARS = 300
# The gateways that hold an enhancement open (HOLD-): a timeout that the held
# request never reaches, and a short link timeout, so that a job whose
# gateway died is moved on by the broker's reaper after
# SLOW_TIMEOUT_MS + LINK_TIMEOUT_MS + the broker's margin (2 s).
SLOW = {"LF_ENHANCE_TIMEOUT_MS": "8000", "LF_REQUEST_TIMEOUT_MS": "3000"}


class Hold:
    """One held answer: `arrived` once the gateway's request is in, the
    answer goes when the test sets `release`; `answered` after it went."""
    all = {}

    def __init__(self):
        self.arrived, self.release, self.answered = threading.Event(), threading.Event(), threading.Event()

    @classmethod
    def get(cls, name):
        return cls.all.setdefault(name, Hold())


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
        hold = None
        if "HOLD-" in prompt:
            hold = Hold.get(prompt.split("HOLD-", 1)[1].split()[0])
            hold.arrived.set()
            hold.release.wait(60)
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
        if "STREAM" in prompt:
            self.stream(body, text)
        elif self.path == "/api/chat":
            out = {"model": body.get("model"), "message": {"role": "assistant", "content": text}, "done": True}
            self.reply(status, json.dumps(out))
        else:
            out = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}]}
            self.reply(status, json.dumps(out))
        if hold:
            hold.answered.set()

    def stream(self, body, text):
        """The answer in pieces of 7 characters: Ollama's JSON lines (a last
        line with done true and no content), or OpenAI's chunks as
        server-sent events ending with data: [DONE]."""
        pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
        if self.path == "/api/chat":
            lines = [json.dumps({"model": body.get("model"), "message": {"role": "assistant", "content": x},
                                 "done": False}) for x in pieces]
            lines.append(json.dumps({"model": body.get("model"), "message": {"role": "assistant", "content": ""},
                                     "done": True, "done_reason": "stop"}))
            self.reply(200, "\n".join(lines) + "\n", "application/x-ndjson")
        else:
            chunks = [{"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {"content": x}, "finish_reason": None}]} for x in pieces]
            self.reply(200, "".join("data: %s\n\n" % json.dumps(c) for c in chunks) + "data: [DONE]\n\n",
                       "text/event-stream")

    def reply(self, status, text, ctype="application/json"):
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway gave up (timeout)


def call(method, path, body=None, url=None):
    req = urllib.request.Request((url or FARM["url"]) + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def submit(body, url=None):
    st, j = call("POST", "/v1/jobs", dict(dict(model="lf-diagnostic", width=64, height=64, steps=2), **body), url)
    assert st == 202, (st, j)
    return j


def wait_end(job_id, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, v = call("GET", "/v1/jobs/" + job_id)
        if v["status"] in ("done", "failed", "cancelled"):
            return v
        time.sleep(0.05)
    raise AssertionError("job did not end: %s" % v)


def run_job(body, url=None):
    return wait_end(submit(body, url)["id"])


def first_event(job_id, url=None):
    """The name of the first event of the job's SSE stream (its state)."""
    with urllib.request.urlopen((url or FARM["url"]) + "/v1/jobs/%s/events" % job_id, timeout=10) as r:
        for line in r:
            if line.startswith(b"event:"):
                return line.split(b":", 1)[1].strip().decode()
    return None


class Enhance(unittest.TestCase):
    def test_enhanced(self):
        FaultDoubleLLM.seen.clear()
        j = submit({"prompt": "a cat", "enhance_prompt": True, "enhance_instruction": "make it blue"})
        self.assertEqual(j["status"], "enhancing")  # a stage of the job: accepted at once
        v = wait_end(j["id"])
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
        j = submit({"prompt": "a dog", "prompt_original": "forged", "enhance_error": "forged"})
        self.assertEqual(j["status"], "queued")
        v = wait_end(j["id"])
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

    def test_openai_streamed(self):
        FaultDoubleLLM.seen.clear()
        v = run_job({"prompt": "a STREAM heron", "enhance_prompt": True})
        self.assertEqual(v["params"]["prompt"], "enhanced: a STREAM heron, highly detailed")
        self.assertEqual(v["params"]["prompt_original"], "a STREAM heron")


class Stage(unittest.TestCase):
    """The enhancing stage, held open by the double (HOLD-), on a second
    gateway of the same farm whose LLM timeout the held answer never reaches."""

    @classmethod
    def setUpClass(cls):
        cls.gw, cls.url = spawn_gateway("gateway-slow", SLOW)

    def test_enhancing_visible(self):
        hold = Hold.get("vis")
        j = submit({"prompt": "a cat HOLD-vis", "enhance_prompt": True}, self.url)
        self.assertEqual(j["status"], "enhancing")
        self.assertIsNone(j["position"])
        self.assertTrue(hold.arrived.wait(30))
        # While the LLM has not answered: the job view, the list and the event stream say so.
        _, v = call("GET", "/v1/jobs/" + j["id"])
        self.assertEqual(v["status"], "enhancing")
        self.assertIsNone(v["position"])
        self.assertEqual(v["params"]["prompt"], "a cat HOLD-vis")
        self.assertNotIn("prompt_original", v["params"])
        _, lst = call("GET", "/v1/jobs")
        self.assertIn((j["id"], "enhancing"), [(x["id"], x["status"]) for x in lst["jobs"]])
        self.assertEqual(first_event(j["id"]), "enhancing")
        hold.release.set()
        v = wait_end(j["id"])
        self.assertEqual(v["status"], "done")
        self.assertEqual(v["params"]["prompt"], "enhanced: a cat HOLD-vis, highly detailed")
        self.assertEqual(v["params"]["prompt_original"], "a cat HOLD-vis")

    def test_cancel_while_enhancing(self):
        hold = Hold.get("cancel")
        j = submit({"prompt": "a cat HOLD-cancel", "enhance_prompt": True}, self.url)
        self.assertTrue(hold.arrived.wait(30))
        st, r = call("DELETE", "/v1/jobs/" + j["id"])
        self.assertEqual((st, r["status"]), (202, "cancelled"))
        hold.release.set()
        self.assertTrue(hold.answered.wait(30))
        # The late answer changes nothing: a job behind it runs, this one stays cancelled.
        self.assertEqual(run_job({"prompt": "after the cancel"}, self.url)["status"], "done")
        _, v = call("GET", "/v1/jobs/" + j["id"])
        self.assertEqual(v["status"], "cancelled")
        self.assertEqual(v["params"]["prompt"], "a cat HOLD-cancel")

    def test_a1111_blocks_through_the_stage(self):
        # An A1111 txt2img with enhancement still answers with the image; meanwhile its
        # progress says what the job is doing.
        hold = Hold.get("a1111")
        res = {}

        def post():
            res["r"] = call("POST", "/sdapi/v1/txt2img", {"prompt": "a fox HOLD-a1111", "enhance_prompt": True,
                                                          "width": 64, "height": 64, "steps": 2}, self.url)
        t = threading.Thread(target=post)
        t.start()
        self.assertTrue(hold.arrived.wait(30))
        while True:  # until the gateway tracks the job (it cannot leave the stage before the release)
            _, pr = call("GET", "/sdapi/v1/progress", url=self.url)
            if pr["state"]["job"]:
                break
            time.sleep(0.05)
        self.assertEqual(pr["textinfo"], "Enhancing prompt")
        self.assertTrue(t.is_alive())
        hold.release.set()
        t.join(60)
        st, r = res["r"]
        self.assertEqual(st, 200)
        self.assertEqual(len(r["images"]), 1)
        self.assertEqual(json.loads(r["info"])["prompt"], "enhanced: a fox HOLD-a1111, highly detailed")

    def s_gateway_lost(self, name, sig):
        """A job enhancing on a gateway that then stops (sig): it still runs,
        with the original prompt and the reason in enhance_error."""
        gw, url = spawn_gateway("gateway-" + name, SLOW)
        hold = Hold.get(name)
        j = submit({"prompt": "a cat HOLD-%s" % name, "enhance_prompt": True}, url)
        self.assertEqual(j["status"], "enhancing")
        self.assertTrue(hold.arrived.wait(30))
        gw.send_signal(sig)
        rc = gw.wait(10)
        hold.release.set()
        v = wait_end(j["id"], timeout=60)  # read through the first gateway
        self.assertEqual(v["status"], "done")
        self.assertEqual(v["params"]["prompt"], "a cat HOLD-%s" % name)
        self.assertNotIn("prompt_original", v["params"])
        return rc, v["params"]["enhance_error"]

    def test_gateway_killed(self):
        rc, why = self.s_gateway_lost("kill", signal.SIGKILL)
        self.assertEqual(rc, -signal.SIGKILL)
        self.assertIn("enhancement lost", why)  # the broker's reaper

    def test_gateway_stopped(self):
        # A clean stop aborts the LLM call and tells the broker at once (or, if
        # the link had stopped first, the reaper does later).
        rc, why = self.s_gateway_lost("stop", signal.SIGTERM)
        self.assertEqual(rc, 0)
        self.assertTrue("gateway is stopping" in why or "enhancement lost" in why, why)


class Ollama(unittest.TestCase):
    """LF_ENHANCE_API=ollama: Ollama's /api/chat, whole and streamed (JSON lines)."""

    @classmethod
    def setUpClass(cls):
        cls.gw, cls.url = spawn_gateway("gateway-ollama", {"LF_ENHANCE_API": "ollama"})

    def test_whole(self):
        FaultDoubleLLM.seen.clear()
        j = submit({"prompt": "a fox", "enhance_prompt": True, "enhance_instruction": "at night"}, self.url)
        self.assertEqual(j["status"], "enhancing")
        v = wait_end(j["id"])
        self.assertEqual(v["params"]["prompt"], "enhanced: a fox, highly detailed")
        self.assertEqual(v["params"]["prompt_original"], "a fox")
        path, auth, body = FaultDoubleLLM.seen[-1]
        self.assertEqual(path, "/api/chat")
        self.assertEqual(body["model"], "fault-double")
        self.assertIs(body["stream"], False)
        self.assertEqual(body["messages"][0]["role"], "system")
        self.assertEqual(body["messages"][1]["content"], "Instruction: at night\n\nPrompt: a fox")

    def test_streamed(self):
        v = run_job({"prompt": "an owl STREAM", "enhance_prompt": True}, self.url)
        self.assertEqual(v["params"]["prompt"], "enhanced: an owl STREAM, highly detailed")

    def test_fault(self):
        v = run_job({"prompt": "an owl FAULT-500", "enhance_prompt": True}, self.url)
        self.assertEqual(v["params"]["prompt"], "an owl FAULT-500")
        self.assertIn("answered HTTP 500", v["params"]["enhance_error"])


if __name__ == "__main__":
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FaultDoubleLLM)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    main(__doc__, "lf-enhance-", env={
        "LF_ENHANCE_URL": "http://127.0.0.1:%d" % srv.server_address[1],
        "LF_ENHANCE_MODEL": "fault-double", "LF_ENHANCE_API_KEY": "test-key",
        "LF_ENHANCE_TIMEOUT_MS": str(TIMEOUT_MS), "LF_ENHANCE_MAX_CHARS": str(MAX_CHARS)})
