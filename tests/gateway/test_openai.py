"""test_openai: the gateway's OpenAI-compatible images API, driven by the
openai client from PyPI exactly as OpenAI SDK users drive it:
images.generate (b64_json and url, n, the default model, sizes),
images.edit, models.list and retrieve, and refusals as openai.BadRequestError naming the
parameter.

Starts its own redis-server, lightfarm-broker, lightfarm-worker (the
diagnostic model: no models folder) and lightfarm-gateway on free loopback
ports (lf_farm).
usage: test_openai.py GATEWAY BROKER WORKER"""
import base64
import json
import struct
import unittest
import urllib.request
import zlib

import openai

from lf_farm import FARM, main


def png_size(data):
    """(width, height) of PNG bytes; fails the caller's test when not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise AssertionError("not a PNG: %r" % data[:16])
    return struct.unpack(">II", data[16:24])


def make_png(w, h, rgb):
    """A w x h PNG of one colour, without any imaging library."""
    def chunk(kind, payload):
        c = struct.pack(">I", len(payload)) + kind + payload
        return c + struct.pack(">I", zlib.crc32(kind + payload) & 0xffffffff)
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def http_get(path_or_url):
    url = path_or_url if path_or_url.startswith("http") else FARM["url"] + path_or_url
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


# A fast diagnostic job: our extensions go through extra_body.
FAST = {"steps": 2}


class OpenAIImages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # No retries: a retried 5xx would hide a failure.
        cls.client = openai.OpenAI(base_url=FARM["url"] + "/v1", api_key="unused", max_retries=0, timeout=120)

    def test_generate_b64_json(self):
        r = self.client.images.generate(model="lf-diagnostic", prompt="a cat", size="64x48",
                                        response_format="b64_json", extra_body=dict(FAST, seed=1234))
        self.assertIsInstance(r.created, int)
        self.assertGreater(r.created, 0)
        self.assertEqual(len(r.data), 1)
        self.assertIsNone(r.data[0].url)
        self.assertEqual(r.data[0].revised_prompt, "a cat")
        self.assertEqual(png_size(base64.b64decode(r.data[0].b64_json)), (64, 48))

    def test_generate_url(self):
        # url is OpenAI's default format.
        r = self.client.images.generate(model="lf-diagnostic", prompt="a dog", size="64x64", extra_body=FAST)
        self.assertEqual(len(r.data), 1)
        self.assertIsNone(r.data[0].b64_json)
        url = r.data[0].url
        self.assertTrue(url.startswith(FARM["url"] + "/v1/images/"), url)
        self.assertTrue(url.endswith("-0.png"), url)
        status, ctype, body = http_get(url)
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "image/png")
        self.assertEqual(png_size(body), (64, 64))

    def test_generate_n(self):
        r = self.client.images.generate(model="lf-diagnostic", prompt="two", n=2, size="32x32",
                                        response_format="url", extra_body=FAST)
        self.assertEqual(len(r.data), 2)
        urls = [d.url for d in r.data]
        self.assertTrue(urls[0].endswith("-0.png") and urls[1].endswith("-1.png"), urls)
        for u in urls:
            self.assertEqual(png_size(http_get(u)[2]), (32, 32))

    def test_openai_model_names_mean_the_default_model(self):
        # No models folder: the farm's default is the diagnostic; with no
        # resolution advertised and no size, the native default (512) applies.
        r = self.client.images.generate(model="dall-e-3", prompt="default", quality="hd", style="vivid",
                                        user="someone", extra_body=FAST)
        url = r.data[0].url
        self.assertEqual(png_size(http_get(url)[2]), (512, 512))
        job_id = url.rsplit("/", 1)[1].rsplit("-", 1)[0]
        job = json.loads(http_get("/v1/jobs/" + job_id)[2])
        self.assertEqual(job["params"]["model"], "lf-diagnostic")
        self.assertEqual(job["params"]["steps"], 2)
        self.assertEqual(job["params"]["prompt"], "default")

    def test_bad_requests_name_the_param(self):
        cases = [
            (dict(size="100x64"), "size"),        # not a multiple of 8
            (dict(size="4096x4096"), "size"),     # over the native limit
            (dict(size="big"), "size"),
            (dict(n=9), "n"),
            (dict(response_format="gif"), "response_format"),
            (dict(extra_body={"bogus": 1}), "bogus"),
            (dict(extra_body={"steps": 0}), "steps"),
        ]
        for kw, param in cases:
            with self.subTest(kw=kw):
                with self.assertRaises(openai.BadRequestError) as cm:
                    self.client.images.generate(model="lf-diagnostic", prompt="x", **kw)
                self.assertEqual(cm.exception.status_code, 400)
                self.assertEqual(cm.exception.param, param)
                self.assertEqual(cm.exception.type, "invalid_request_error")
                self.assertTrue(cm.exception.message)
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.images.generate(model="no-such-model", prompt="x", size="64x64")
        self.assertEqual(cm.exception.param, "model")

    def test_edit(self):
        src = make_png(48, 40, (200, 30, 30))
        r = self.client.images.edit(image=("in.png", src, "image/png"), prompt="red", model="lf-diagnostic",
                                    size="64x64", response_format="b64_json",
                                    extra_body={"steps": 2, "denoise": 0.5})
        self.assertEqual(len(r.data), 1)
        self.assertEqual(r.data[0].revised_prompt, "red")
        self.assertEqual(png_size(base64.b64decode(r.data[0].b64_json)), (64, 64))
        # Without a size the input's size is kept; n and url work as for generations.
        r = self.client.images.edit(image=("in.png", src, "image/png"), prompt="red", model="lf-diagnostic",
                                    n=2, extra_body=FAST)
        self.assertEqual(len(r.data), 2)
        self.assertEqual(png_size(http_get(r.data[1].url)[2]), (48, 40))
        job_id = r.data[0].url.rsplit("/", 1)[1].rsplit("-", 1)[0]
        job = json.loads(http_get("/v1/jobs/" + job_id)[2])
        self.assertEqual(job["params"]["mode"], "img2img")
        self.assertTrue(job["params"]["init_image"])
        # Form fields arrive as text; numbers are numbers again (extra_body in a form).
        self.assertEqual(job["params"]["steps"], 2)
        self.assertEqual(job["params"]["batch_size"], 2)

    def test_edit_with_mask(self):
        # OpenAI's mask (its transparent part is edited) becomes the job's inpainting mask.
        src = make_png(64, 64, (0, 0, 255))
        r = self.client.images.edit(image=("in.png", src, "image/png"), mask=("m.png", src, "image/png"),
                                    prompt="x", model="lf-diagnostic", response_format="url", extra_body=FAST)
        job_id = r.data[0].url.rsplit("/", 1)[1].rsplit("-", 1)[0]
        job = json.loads(http_get("/v1/jobs/" + job_id)[2])
        self.assertTrue(job["params"]["mask"])
        self.assertEqual(job["params"]["inpainting_mask_invert"], 1)
        self.assertEqual(job["params"]["inpaint_full_res"], False)

    def test_edit_refusals(self):
        src = make_png(64, 64, (0, 0, 255))
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.images.edit(image=("in.png", src, "image/png"), mask=("m.png", b"not an image", "image/png"),
                                    prompt="x", model="lf-diagnostic")
        self.assertEqual(cm.exception.param, "mask")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.images.edit(image=("in.png", b"not an image", "image/png"), prompt="x",
                                    model="lf-diagnostic")
        self.assertEqual(cm.exception.param, "image")
        with self.assertRaises(openai.BadRequestError) as cm:
            self.client.images.edit(image=("in.png", src, "image/png"), prompt="x", model="lf-diagnostic",
                                    size="60x64")
        self.assertEqual(cm.exception.param, "size")

    def test_models_list(self):
        models = list(self.client.models.list())
        ids = [m.id for m in models]
        self.assertIn("lf-diagnostic", ids)
        for m in models:
            self.assertEqual(m.object, "model")
            self.assertEqual(m.owned_by, "lightfarm")
            self.assertIsInstance(m.created, int)
        m = self.client.models.retrieve("lf-diagnostic")
        self.assertEqual((m.id, m.object, m.owned_by), ("lf-diagnostic", "model", "lightfarm"))
        with self.assertRaises(openai.NotFoundError) as cm:
            self.client.models.retrieve("no-such-model")
        self.assertEqual(cm.exception.param, "model")
        # The native shape is still there for the web UI.
        native = json.loads(http_get("/v1/models")[2])
        self.assertIn("lf-diagnostic", [m["name"] for m in native["models"]])
        self.assertEqual(native["default"], "lf-diagnostic")
        self.assertEqual(native["object"], "list")


if __name__ == "__main__":
    main(__doc__, prefix="lf-openai-")
