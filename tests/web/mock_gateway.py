#!/usr/bin/env python3
"""TEST DOUBLE — a fake lightfarm gateway for developing the web UI without a farm.

This is NOT lightfarm and is never used by default: the browser tests run against the
real binaries (run_browser_tests.sh). Start it by hand to iterate on web/:

    python3 tests/web/mock_gateway.py --port 7861 [--api-key KEY] [--workers 2]

It serves web/ at / and fakes the /v1 API (jobs with fake progress and test-card PNGs,
SSE events, uploads, presets, history, workers, /metrics) in memory, with Python's
standard library only.
"""
import argparse
import base64
import itertools
import json
import os
import random
import re
import struct
import threading
import time
import uuid
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

WEB_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")

MODELS = [{"name": "lf-diagnostic", "kind": "diagnostic", "default": False},
          {"name": "lf-tiny-shapes", "kind": "sd15", "resolution": 256, "default": True},
          {"name": "mock-sd15", "kind": "sd15", "resolution": 512, "default": False}]
# Same names as gateway/lf_validate.c.
SAMPLERS = [("euler", "Euler", None), ("euler_ancestral", "Euler a", "euler_a"), ("heun", "Heun", None),
            ("dpm_2", "DPM2", "dpm2"), ("dpmpp_2m", "DPM++ 2M", None), ("dpmpp_2m_sde", "DPM++ 2M SDE", None),
            ("dpmpp_sde", "DPM++ SDE", None), ("ddim", "DDIM", None), ("lcm", "LCM", None)]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform"]
PRESET_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
# As gateway/lf_api.c's built-ins.
BUILTIN_PRESETS = [
    {"name": "diagnostic", "description": "The test card: fast, no model needed", "builtin": True,
     "params": {"model": "lf-diagnostic", "steps": 8, "width": 256, "height": 256}},
    {"name": "fast", "description": "Quick drafts", "builtin": True,
     "params": {"sampler": "euler_ancestral", "scheduler": "normal", "steps": 12, "cfg_scale": 6}},
    {"name": "quality", "description": "Slower, finer detail", "builtin": True,
     "params": {"sampler": "dpmpp_2m", "scheduler": "karras", "steps": 30, "cfg_scale": 7}},
    {"name": "portrait", "description": "2:3 portrait at the model's own size", "builtin": True, "aspect": "2:3",
     "params": {"sampler": "dpmpp_2m", "scheduler": "karras", "steps": 25, "cfg_scale": 7}},
    {"name": "lightning-4step", "description": "Lightning 4-step (SDXL-Lightning: Euler, SGM Uniform, CFG 1)",
     "builtin": True, "family": "sdxl", "params": {"sampler": "euler", "scheduler": "sgm_uniform", "steps": 4,
                                                    "cfg_scale": 1, "width": 1024, "height": 1024}},
    {"name": "lightning-8step", "description": "Lightning 8-step (SDXL-Lightning: Euler, SGM Uniform, CFG 1)",
     "builtin": True, "family": "sdxl", "params": {"sampler": "euler", "scheduler": "sgm_uniform", "steps": 8,
                                                    "cfg_scale": 1, "width": 1024, "height": 1024}},
    {"name": "turbo-1step", "description": "Turbo 1-step (SDXL-Turbo: Euler a, SGM Uniform, CFG 1, 512x512)",
     "builtin": True, "family": "sdxl", "params": {"sampler": "euler_ancestral", "scheduler": "sgm_uniform",
                                                    "steps": 1, "cfg_scale": 1, "width": 512, "height": 512}},
    {"name": "hyper-1step", "description": "Hyper-SD 1-step (TCD at timestep 800, gamma 1, CFG 1)",
     "builtin": True, "family": "sdxl", "params": {"sampler": "tcd", "scheduler": "trailing", "steps": 1,
                                                    "timesteps": [800], "tcd_gamma": 1, "cfg_scale": 1,
                                                    "width": 1024, "height": 1024}},
    {"name": "dmd2-4step", "description": "DMD2 4-step (LCM sampler, Trailing: 999 749 499 249, CFG 1)",
     "builtin": True, "family": "sdxl", "params": {"sampler": "lcm", "scheduler": "trailing", "steps": 4,
                                                    "cfg_scale": 1, "width": 1024, "height": 1024}}]
JOB_FIELDS = {"model", "mode", "prompt", "negative_prompt", "sampler", "scheduler", "steps", "cfg_scale", "width",
              "height", "seed", "batch_size", "priority", "init_image", "denoise", "clip_skip", "step_delay_ms",
              "rng", "idempotency_key", "ttl_s", "extra", "tcd_gamma", "timesteps"}
STATE = threading.Condition()
JOBS = {}          # id -> dict
ORDER = []         # queued ids (all priorities) in submit order
HISTORY = []       # finished ids, newest first
IMAGES = {}        # image id -> png bytes
UPLOADS = {}       # upload id -> (bytes, w, h)
PRESETS = {}       # name -> params
WORKERS = []
SEQ = itertools.count()
API_KEY = None


def png_bytes(w, h, seed, reveal=None, text=None):
    """A small test card: hue from the seed, grey below `reveal` rows."""
    rnd = random.Random(seed)
    base = [rnd.randrange(40, 220) for _ in range(3)]
    rows = []
    reveal = h if reveal is None else reveal
    for y in range(h):
        if y >= reveal:
            row = b"\x00" + bytes([90, 90, 96]) * w
        else:
            t = y / max(1, h - 1)
            c = bytes(int(b * (1 - t) + (255 - b) * t) & 255 for b in base)
            stripe = bytes([255, 255, 255]) if (y // 16) % 8 == 0 else c
            row = b"\x00" + (c * 15 + stripe) * (w // 16) + c * (w % 16)
        rows.append(row)
    raw = b"".join(rows)

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    if text:
        out += chunk(b"tEXt", b"parameters\x00" + text.encode("latin-1", "replace"))
    return out + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def a1111_text(p, seed):
    s = p.get("prompt", "")
    if p.get("negative_prompt"):
        s += "\nNegative prompt: " + p["negative_prompt"]
    s += ("\nSteps: %d, Sampler: %s, Schedule type: %s, CFG scale: %g, Seed: %d, Size: %dx%d, Model: %s"
          % (p["steps"], p["sampler"], p["scheduler"], p["cfg_scale"], seed, p["width"], p["height"], p["model"]))
    return s


def err(field, msg, code="invalid"):
    return 400, {"error": {"code": code, "message": msg, "field": field}}


def validate(body):
    if not isinstance(body, dict):
        return err("", "the body must be a JSON object", "invalid_type")
    for k in body:
        if k not in JOB_FIELDS:
            return err(k, "unknown field %s" % k, "unknown_field")
    p = {"model": "mock-sd15", "mode": "txt2img", "prompt": "", "negative_prompt": "", "sampler": "euler_a",
         "scheduler": "normal", "steps": 20, "cfg_scale": 7.0, "width": 512, "height": 512, "seed": -1,
         "batch_size": 1, "priority": "normal", "init_image": None, "denoise": 0.75, "step_delay_ms": 0}
    p.update({k: v for k, v in body.items() if v is not None})
    if p["model"] not in [m["name"] for m in MODELS]:
        return err("model", "unknown model '%s'" % p["model"])
    if p["mode"] not in ("txt2img", "img2img"):
        return err("mode", "mode must be txt2img or img2img")
    for name, a1111, alias in SAMPLERS:
        if p["sampler"] in (name, a1111, alias):
            p["sampler"] = name
            break
    else:
        return err("sampler", "unknown sampler", "invalid_value")
    if p["scheduler"] not in SCHEDULERS:
        return err("scheduler", "unknown scheduler")
    smin = 8 if p["model"] == "lf-diagnostic" else 64
    for f, lo, hi in (("steps", 1, 150), ("width", smin, 2048), ("height", smin, 2048), ("batch_size", 1, 8),
                      ("step_delay_ms", 0, 10000)):
        if not isinstance(p[f], int) or isinstance(p[f], bool):
            return err(f, "%s must be an integer" % f, "invalid_type")
        if not lo <= p[f] <= hi:
            return err(f, "%s must be in %d..%d (got %d)" % (f, lo, hi, p[f]), "out_of_range")
    for f in ("width", "height"):
        if p[f] % 8:
            return err(f, "%s must be a multiple of 8" % f)
    if not isinstance(p["cfg_scale"], (int, float)) or not 0 <= p["cfg_scale"] <= 30:
        return err("cfg_scale", "cfg_scale must be in 0..30")
    if p["priority"] not in ("high", "normal", "low"):
        return err("priority", "priority must be high, normal or low")
    if p["mode"] == "img2img":
        if not p["init_image"] or p["init_image"] not in UPLOADS:
            return err("init_image", "img2img needs an uploaded init_image")
        if not 0 <= p["denoise"] <= 1:
            return err("denoise", "denoise must be in 0..1")
    if not isinstance(p["seed"], int):
        return err("seed", "seed must be an integer")
    if p["seed"] < 0:
        p["seed"] = random.randrange(0, 2**32)
    return 202, p


def view(j):
    v = {k: j[k] for k in ("id", "status", "priority", "attempts", "worker", "created_ms", "started_ms",
                           "finished_ms", "params")}
    v["progress"] = {"step": j["step"], "steps": j["params"]["steps"]}
    if j["status"] == "queued":
        v["position"] = position(j["id"])
    if j["images"]:
        v["result"] = {"images": j["images"], "info": j["info"]}
    if j["error"]:
        v["error"] = j["error"]
    return v


def position(jid):
    prio = {"high": 0, "normal": 1, "low": 2}
    q = sorted((prio[JOBS[i]["priority"]], JOBS[i]["seq"], i) for i in ORDER)
    for n, (_, _, i) in enumerate(q):
        if i == jid:
            return n
    return -1


def emit(j, name, data):
    j["events"].append((name, data))
    STATE.notify_all()


def worker_loop(w):
    while True:
        with STATE:
            while True:
                prio = {"high": 0, "normal": 1, "low": 2}
                q = sorted((prio[JOBS[i]["priority"]], JOBS[i]["seq"], i) for i in ORDER)
                if q:
                    jid = q[0][2]
                    ORDER.remove(jid)
                    break
                STATE.wait()
            j = JOBS[jid]
            j.update(status="running", worker=w["id"], started_ms=int(time.time() * 1000), attempts=1)
            w["job"] = jid
            emit(j, "started", {"id": jid, "worker": w["id"]})
        p = j["params"]
        steps, delay = p["steps"], p["step_delay_ms"] / 1000.0 or 0.05
        for s in range(1, steps + 1):
            time.sleep(delay)
            with STATE:
                if j["cancel"]:
                    break
                j["step"] = s
                emit(j, "progress", {"id": jid, "step": s, "steps": steps})
                if s % max(1, steps // 4) == 0 and s < steps:
                    pw, ph = max(8, p["width"] // 8), max(8, p["height"] // 8)
                    data = base64.b64encode(png_bytes(pw, ph, p["seed"], reveal=ph * s // steps)).decode()
                    emit(j, "preview", {"id": jid, "step": s, "data": data, "mime": "image/png"})
        with STATE:
            j["finished_ms"] = int(time.time() * 1000)
            w["job"] = None
            if j["cancel"]:
                j["status"] = "cancelled"
                emit(j, "cancelled", {"id": jid})
            else:
                imgs = []
                for i in range(p["batch_size"]):
                    seed = p["seed"] + i
                    iid = "%s-%d" % (jid, i)
                    IMAGES[iid] = png_bytes(p["width"], p["height"], seed, text=a1111_text(p, seed))
                    imgs.append({"url": "/v1/images/%s.png" % iid, "seed": seed,
                                 "width": p["width"], "height": p["height"]})
                j["images"] = imgs
                j["info"] = {"infotexts": [a1111_text(p, im["seed"]) for im in imgs],
                             "elapsed_ms": j["finished_ms"] - j["started_ms"]}
                j["status"] = "done"
                w["jobs_done"] += 1
                emit(j, "done", view(j))
            HISTORY.insert(0, jid)


def new_job(p):
    jid = uuid.uuid4().hex
    j = {"id": jid, "status": "queued", "priority": p.pop("priority"), "attempts": 0, "worker": None,
         "created_ms": int(time.time() * 1000), "started_ms": None, "finished_ms": None, "params": p,
         "step": 0, "images": [], "info": None, "error": None, "cancel": False, "events": [],
         "seq": next(SEQ)}
    JOBS[jid] = j
    ORDER.append(jid)
    emit(j, "queued", {"id": jid, "position": position(jid)})
    return j


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *a, **kw):
        super().__init__(*a, directory=WEB_ROOT, **kw)

    def log_message(self, fmt, *args):
        if os.environ.get("MOCK_VERBOSE"):
            super().log_message(fmt, *args)

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorised(self):
        if not API_KEY or not self.path.startswith("/v1/"):
            return True
        if self.headers.get("Authorization") == "Bearer " + API_KEY:
            return True
        self.send_json(401, {"error": {"code": "unauthorized", "message": "missing or wrong API key",
                                       "field": None}})
        return False

    def do_GET(self):
        u = urlparse(self.path)
        path, q = u.path, parse_qs(u.query)
        if path == "/healthz":
            return self.send_json(200, {"status": "ok", "mock": True})
        if path == "/metrics":
            return self.metrics()
        if not path.startswith("/v1/"):
            return super().do_GET()
        if not self.authorised():
            return
        with STATE:
            if path == "/v1/models":
                return self.send_json(200, {"models": MODELS})
            if path == "/v1/samplers":
                return self.send_json(200, {"samplers": [{"name": n, "a1111": a, "aliases": [x] if x else []}
                                                         for n, a, x in SAMPLERS]})
            if path == "/v1/schedulers":
                return self.send_json(200, {"schedulers": [{"name": s} for s in SCHEDULERS]})
            if path == "/v1/workers":
                return self.send_json(200, {"workers": [{k: v for k, v in w.items()} for w in WORKERS]})
            if path == "/v1/jobs":
                jobs = [view(JOBS[i]) for i in JOBS if JOBS[i]["status"] in ("queued", "running")]
                jobs.sort(key=lambda v: (v["status"] != "running", v.get("position", 0)))
                return self.send_json(200, {"jobs": jobs, "total": len(jobs)})
            if path == "/v1/history":
                off, lim = int(q.get("offset", ["0"])[0]), int(q.get("limit", ["20"])[0])
                ids = HISTORY[off:off + lim]
                return self.send_json(200, {"jobs": [view(JOBS[i]) for i in ids], "total": len(HISTORY),
                                            "offset": off, "limit": lim})
            if path == "/v1/presets":
                return self.send_json(200, {"presets": BUILTIN_PRESETS + [{"name": n, "params": p} for n, p in
                                                                          sorted(PRESETS.items())]})
            m = re.fullmatch(r"/v1/presets/([^/]+)", path)
            if m:
                n = m.group(1)
                if n not in PRESETS:
                    return self.send_json(404, {"error": {"code": "not_found", "message": "no such preset"}})
                return self.send_json(200, {"name": n, "params": PRESETS[n]})
            m = re.fullmatch(r"/v1/images/([\w-]+)\.png", path)
            if m:
                data = IMAGES.get(m.group(1))
                if data is None:
                    return self.send_json(404, {"error": {"code": "not_found", "message": "no such image"}})
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            m = re.fullmatch(r"/v1/jobs/(\w+)(/events)?", path)
            if m and m.group(1) in JOBS:
                if m.group(2):
                    return self.sse(JOBS[m.group(1)])
                return self.send_json(200, view(JOBS[m.group(1)]))
        return self.send_json(404, {"error": {"code": "not_found", "message": "not found: " + path}})

    def sse(self, j):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = 0
        try:
            # Snapshot first, as a reconnecting client needs it.
            snap = {"id": j["id"], "status": j["status"], "step": j["step"], "steps": j["params"]["steps"]}
            self.wfile.write(("event: status\ndata: %s\n\n" % json.dumps(snap)).encode())
            self.wfile.flush()
            while True:
                while sent < len(j["events"]):
                    name, data = j["events"][sent]
                    sent += 1
                    STATE.release()
                    try:
                        self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())
                        self.wfile.flush()
                    finally:
                        STATE.acquire()
                    if name in ("done", "failed", "cancelled"):
                        return
                if j["status"] in ("done", "failed", "cancelled"):
                    return
                if not STATE.wait(10):
                    STATE.release()
                    try:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
                    finally:
                        STATE.acquire()
        except (BrokenPipeError, ConnectionResetError):
            return

    def metrics(self):
        with STATE:
            depth = {"high": 0, "normal": 0, "low": 0}
            for i in ORDER:
                depth[JOBS[i]["priority"]] += 1
            lines = ["# HELP lf_queue_depth Queued jobs per priority", "# TYPE lf_queue_depth gauge"]
            lines += ['lf_queue_depth{priority="%s"} %d' % kv for kv in depth.items()]
            lines += ["# TYPE lf_workers gauge", "lf_workers %d" % len(WORKERS),
                      "lf_jobs_running %d" % sum(1 for j in JOBS.values() if j["status"] == "running")]
            for st in ("done", "failed", "cancelled"):
                lines.append('lf_jobs_total{status="%s"} %d' % (st, sum(1 for j in JOBS.values()
                                                                        if j["status"] == st)))
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        path = urlparse(self.path).path
        if not self.authorised():
            return
        raw = self.body()
        if path == "/v1/uploads":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0]
            if ctype not in ("image/png", "image/jpeg", "image/webp"):
                return self.send_json(415, {"error": {"code": "unsupported_media_type",
                                                      "message": "upload a PNG, JPEG or WebP image",
                                                      "field": "init_image"}})
            w = h = 0
            if raw[:8] == b"\x89PNG\r\n\x1a\n":
                w, h = struct.unpack(">II", raw[16:24])
            uid = uuid.uuid4().hex
            with STATE:
                UPLOADS[uid] = (raw, w, h)
            return self.send_json(201, {"id": uid, "width": w, "height": h})
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self.send_json(400, {"error": {"code": "bad_json", "message": "body is not JSON"}})
        if path == "/v1/jobs":
            with STATE:
                status, p = validate(body)
                if status != 202:
                    return self.send_json(status, p)
                j = new_job(p)
                return self.send_json(202, {"id": j["id"], "position": position(j["id"])})
        if path == "/v1/presets":
            if not isinstance(body, dict) or not PRESET_NAME.match(str(body.get("name") or "")):
                return self.send_json(*err("name", "name must match ^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"))
            if body["name"] in PRESETS or any(b["name"] == body["name"] for b in BUILTIN_PRESETS):
                return self.send_json(409, {"error": {"code": "conflict", "message": "preset exists",
                                                      "field": "name"}})
            with STATE:
                PRESETS[body["name"]] = body.get("params") or {}
            return self.send_json(201, {"name": body["name"], "params": PRESETS[body["name"]]})
        return self.send_json(404, {"error": {"code": "not_found", "message": "not found"}})

    def do_PUT(self):
        path = urlparse(self.path).path
        if not self.authorised():
            return
        m = re.fullmatch(r"/v1/presets/([^/]+)", path)
        body = json.loads(self.body() or b"{}")
        if m:
            with STATE:
                PRESETS[m.group(1)] = body.get("params", body)
            return self.send_json(200, {"name": m.group(1), "params": PRESETS[m.group(1)]})
        return self.send_json(404, {"error": {"code": "not_found", "message": "not found"}})

    def do_DELETE(self):
        path = urlparse(self.path).path
        if not self.authorised():
            return
        with STATE:
            m = re.fullmatch(r"/v1/presets/([^/]+)", path)
            if m:
                if PRESETS.pop(m.group(1), None) is None:
                    return self.send_json(404, {"error": {"code": "not_found", "message": "no such preset"}})
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            m = re.fullmatch(r"/v1/jobs/(\w+)", path)
            if m and m.group(1) in JOBS:
                j = JOBS[m.group(1)]
                if j["status"] == "queued":
                    ORDER.remove(j["id"])
                    j["status"] = "cancelled"
                    j["finished_ms"] = int(time.time() * 1000)
                    emit(j, "cancelled", {"id": j["id"]})
                    HISTORY.insert(0, j["id"])
                elif j["status"] == "running":
                    j["cancel"] = True
                else:
                    return self.send_json(409, {"error": {"code": "conflict", "message": "job already finished"}})
                return self.send_json(202, {"id": j["id"], "status": "cancelling"})
        return self.send_json(404, {"error": {"code": "not_found", "message": "not found"}})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        import sys
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the browser went away (page closed mid-request)
        super().handle_error(request, client_address)


def main():
    global API_KEY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=7861)
    ap.add_argument("--api-key")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    API_KEY = a.api_key
    for n in range(a.workers):
        w = {"id": "mock-w%d" % n, "host": "mockhost", "pid": 1000 + n,
             "device": {"kind": "cpu" if n else "cuda", "name": "Mock CPU" if n else "Mock GPU 24GB",
                        "memory": (32 if n else 24) * 2**30},
             "resident": ["lf-diagnostic"], "models": [m["name"] for m in MODELS], "job": None, "jobs_done": 0}
        WORKERS.append(w)
        threading.Thread(target=worker_loop, args=(w,), daemon=True).start()
    srv = Server(("127.0.0.1", a.port), Handler)
    print("mock gateway (TEST DOUBLE) on http://127.0.0.1:%d" % a.port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
