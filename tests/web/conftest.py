"""Fixtures for the web UI browser tests (run by run_browser_tests.sh against a real farm).

Environment (set by the runner): LF_WEB_URL (gateway), LF_WEB_URL_KEYED + LF_WEB_API_KEY (a
second gateway that requires the key), LF_CHROMIUM (browser binary), LF_WEB_OUT (screenshots).
"""
import base64
import json
import os
import struct
import time
import urllib.error
import urllib.request
import zlib

import pytest

CHROMIUM = os.environ.get("LF_CHROMIUM") or "/usr/bin/chromium"
OUT = os.environ.get("LF_WEB_OUT") or os.path.join(os.path.dirname(__file__), "..", "out", "web")
DIAG = "lf-diagnostic"

try:
    from playwright.sync_api import expect, sync_playwright  # noqa: F401
    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover
    HAVE_PLAYWRIGHT = False


# ---- farm access ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def base_url():
    url = os.environ.get("LF_WEB_URL")
    if not url:
        pytest.skip("LF_WEB_URL is not set: run tests/web/run_browser_tests.sh (it starts a farm)")
    return url.rstrip("/")


def http(base, method, path, body=None, headers=None, raw=None):
    """(status, parsed JSON or bytes) — a tiny REST client for setting up test data."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = dict(headers or {})
    if body is not None:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            payload = r.read()
            status = r.status
            ctype = r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        payload, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
    if "json" in ctype and payload:
        return status, json.loads(payload)
    return status, payload


def submit_and_wait(base, params, timeout=30):
    status, r = http(base, "POST", "/v1/jobs", params)
    assert status == 202, (status, r)
    jid = r["id"]
    end = time.time() + timeout
    while time.time() < end:
        _, v = http(base, "GET", "/v1/jobs/" + jid)
        if v.get("status") in ("done", "failed", "cancelled"):
            return v
        time.sleep(0.1)
    raise AssertionError("job %s did not finish" % jid)


# ---- PNG bytes ---------------------------------------------------------------------------

def make_png(w, h, text=None, rgb=(200, 80, 40), ztxt=None):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    for k, v in (text or {}).items():
        out += chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
    for k, v in (ztxt or {}).items():
        out += chunk(b"zTXt", k.encode("latin-1") + b"\x00\x00" + zlib.compress(v.encode("latin-1")))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


DROP_JS = """([sel, b64, name, type]) => {
  const bin = atob(b64); const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  const dt = new DataTransfer(); dt.items.add(new File([u8], name, { type }));
  const t = document.querySelector(sel);
  for (const ev of ['dragenter', 'dragover', 'drop'])
    t.dispatchEvent(new DragEvent(ev, { bubbles: true, cancelable: true, dataTransfer: dt }));
}"""


def drop_file(page, selector, data, name, mime="image/png"):
    """Drag-and-drop of a file onto selector, as the browser would deliver it."""
    page.evaluate(DROP_JS, [selector, base64.b64encode(data).decode(), name, mime])


# ---- browser -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    if not HAVE_PLAYWRIGHT:
        pytest.skip("SKIP: Python playwright is not installed (pip install playwright pytest)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("SKIP: no Chromium at %s (apt-get install -y chromium)" % CHROMIUM)
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
    except Exception as e:  # pragma: no cover
        pw.stop()
        pytest.skip("SKIP: Chromium does not start here: %s" % str(e).splitlines()[0])
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="session")
def out_dir():
    os.makedirs(OUT, exist_ok=True)
    return OUT


class Ui:
    """The page plus helpers; collects uncaught page errors (a test fails on any)."""

    def __init__(self, page, base, out):
        self.page, self.base, self.out = page, base, out
        self.errors = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path="/"):
        self.page.goto(self.base + path)
        self.page.wait_for_function("document.documentElement.dataset.ready === '1'")
        # Options come from the API: wait until the diagnostic model is listed.
        self.page.wait_for_selector("#model option[value='%s']" % DIAG, state="attached", timeout=15000)
        return self

    def shot(self, name, full_page=True):
        self.page.screenshot(path=os.path.join(self.out, name + ".png"), full_page=full_page)

    def use_diagnostic(self, steps=20, delay=50, prompt="a lighthouse on a cliff at dusk"):
        p = self.page
        p.select_option("#model", DIAG)
        p.fill("#prompt", prompt)
        p.fill("#steps", str(steps))
        p.fill("#step_delay_ms", str(delay))

    def status(self):
        return self.page.get_attribute("#live-status", "data-status")

    def wait_status(self, status, timeout=30000):
        self.page.wait_for_selector("#live-status[data-status='%s']" % status, timeout=timeout)


@pytest.fixture
def ui(browser, base_url, out_dir):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="light")
    page = ctx.new_page()
    page.set_default_timeout(15000)
    u = Ui(page, base_url, out_dir)
    yield u
    ctx.close()
    assert not u.errors, "uncaught errors in the page: %s" % u.errors


@pytest.fixture
def new_ui(browser, base_url, out_dir):
    """Factory for extra pages with their own viewport / base URL."""
    ctxs = []
    uis = []

    def make(width=1440, height=900, base=None, scheme="light", **kw):
        ctx = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme, **kw)
        ctxs.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15000)
        u = Ui(page, (base or base_url).rstrip("/"), out_dir)
        uis.append(u)
        return u
    yield make
    for c in ctxs:
        c.close()
    for u in uis:
        assert not u.errors, "uncaught errors in the page: %s" % u.errors
