"""test_a1111: the gateway's AUTOMATIC1111 subset, driven by the webuiapi
client from PyPI exactly as users drive a real A1111: txt2img, img2img,
options get/set (unknown checkpoints refused), sd-models, samplers,
schedulers, progress and interrupt, and the rest of the surface clients call
(memory, cmd-flags, embeddings, scripts, refresh-*, skip; interrogate 501).

Starts its own redis-server, lightfarm-broker, lightfarm-worker and
lightfarm-gateway on free loopback ports (lf_farm).
usage: test_a1111.py GATEWAY BROKER WORKER"""
import base64
import threading
import time
import unittest
import urllib.error
import urllib.request

import webuiapi
from PIL import Image

from lf_farm import FARM, main


class A1111(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = webuiapi.WebUIApi(host="127.0.0.1", port=FARM["port"], sampler="Euler a", steps=2)

    def test_txt2img(self):
        r = self.api.txt2img(prompt="a cat", negative_prompt="dog", seed=1234, width=64, height=64, steps=3,
                             cfg_scale=7, sampler_name="DPM++ 2M Karras", styles=["x"], restore_faces=False,
                             enable_hr=False, override_settings={"sd_model_checkpoint": "lf-diagnostic"})
        self.assertEqual(len(r.images), 1)
        self.assertIsInstance(r.image, Image.Image)
        self.assertEqual(r.image.size, (64, 64))
        self.assertEqual(r.info["seed"], 1234)
        self.assertEqual(r.info["all_seeds"], [1234])
        self.assertEqual(r.info["sd_model_name"], "lf-diagnostic")
        self.assertEqual(r.parameters["prompt"], "a cat")
        # batch_size * n_iter images
        r = self.api.txt2img(prompt="b", width=64, height=64, steps=1, batch_size=2, n_iter=2)
        self.assertEqual(len(r.images), 4)

    def test_img2img(self):
        img = Image.new("RGB", (64, 64), (200, 30, 30))
        r = self.api.img2img(images=[img], prompt="red", width=64, height=64, steps=2, denoising_strength=0.4)
        self.assertEqual(len(r.images), 1)
        self.assertEqual(r.image.size, (64, 64))

    def test_img2img_inpaint_fields(self):
        """webuiapi's inpainting call (mask_image and A1111's defaults) is accepted and lands in the job."""
        img = Image.new("RGB", (64, 64), (200, 30, 30))
        mask = Image.new("L", (32, 32), 0)
        mask.paste(255, (8, 8, 24, 24))
        r = self.api.img2img(images=[img], mask_image=mask, prompt="red", width=64, height=64, steps=2,
                             denoising_strength=0.4, inpainting_fill=1, mask_blur=2)
        self.assertEqual(len(r.images), 1)
        bad = self.api.session.post(url=f"{self.api.baseurl}/img2img",
                                    json={"init_images": [base64.b64encode(b"x" * 10).decode()], "mask": 5})
        self.assertEqual(bad.status_code, 400)
        self.assertIn("mask", bad.text)  # the error names the field

    def test_adetailer_helper(self):
        """webuiapi's ADetailer helper: alwayson_scripts.ADetailer {args: [True, {...}]} is accepted;
        a detector the farm lacks is a 400 naming the unit's field (the helper's list sits after True)."""
        img = Image.new("RGB", (64, 64), (200, 30, 30))
        ad = webuiapi.ADetailer(ad_model="mediapipe_face_short", ad_prompt="a face", ad_denoising_strength=0.5)
        r = self.api.img2img(images=[img], prompt="red", width=64, height=64, steps=2, denoising_strength=0.4,
                             adetailer=[ad])
        self.assertEqual(len(r.images), 1)
        r = self.api.txt2img(prompt="a cat", width=64, height=64, steps=1, adetailer=[ad, webuiapi.ADetailer()])
        self.assertEqual(len(r.images), 1)
        models = self.api.session.get(url=f"http://127.0.0.1:{FARM['port']}/adetailer/v1/ad_model").json()
        self.assertEqual(models, {"ad_model": ["mediapipe_face_short", "mediapipe_face_full"]})
        with self.assertRaises(RuntimeError) as cm:
            self.api.txt2img(prompt="x", width=64, height=64, steps=1,
                             adetailer=[webuiapi.ADetailer(ad_model="face_yolov8n.pt")])
        self.assertIn("alwayson_scripts.ADetailer.args[1].ad_model", str(cm.exception))

    def test_one_infotext_and_png_info(self):
        """info.infotexts is the PNG's own parameters text (A1111 names, RNG included), and png-info reads
        that text back: A1111's parsed labels, and our parameters through the table's labels."""
        r = self.api.txt2img(prompt="a cat, sitting: here", negative_prompt="dog", seed=99, width=64, height=64,
                             steps=3, cfg_scale=6.5, sampler_name="Euler",
                             override_settings={"sd_model_checkpoint": "lf-diagnostic"})
        text = r.image.info["parameters"]
        self.assertEqual(r.info["infotexts"][0], text)
        self.assertIn("Sampler: Euler, ", text)
        self.assertIn("RNG: CPU", text)
        pi = self.api.png_info(r.image)
        self.assertEqual(pi.info, text)
        self.assertEqual(pi.parameters["Steps"], "3")
        self.assertEqual(pi.parameters["Seed"], "99")
        self.assertEqual(pi.parameters["Size-1"], "64")
        self.assertEqual(pi.parameters["Prompt"], "a cat, sitting: here")
        self.assertEqual(pi.json["lightfarm"]["cfg_scale"], 6.5)
        self.assertEqual(pi.json["lightfarm"]["sampler"], "euler")
        self.assertEqual(pi.json["lightfarm"]["negative_prompt"], "dog")
        bad = self.api.session.post(url=f"{self.api.baseurl}/png-info",
                                    json={"image": base64.b64encode(b"not a png at all").decode()})
        self.assertEqual(bad.status_code, 400)
        self.assertEqual(bad.json()["error"]["field"], "image")

    def test_bad_request_is_4xx(self):
        with self.assertRaises(RuntimeError) as cm:
            self.api.txt2img(prompt="x", width=100, height=64, steps=2)
        self.assertEqual(cm.exception.args[0], 400)
        self.assertIn('"field":"width"', cm.exception.args[1])

    def test_options(self):
        opts = self.api.get_options()
        self.assertIn("sd_model_checkpoint", opts)
        self.api.set_options({"sd_model_checkpoint": "lf-diagnostic", "CLIP_stop_at_last_layers": 2,
                              "some_client_setting": {"a": [1, 2]}})
        opts = self.api.get_options()
        self.assertEqual(opts["sd_model_checkpoint"], "lf-diagnostic")
        self.assertEqual(opts["CLIP_stop_at_last_layers"], 2)
        self.assertEqual(opts["some_client_setting"], {"a": [1, 2]})
        # The option picks the model when the request names none.
        r = self.api.txt2img(prompt="o", width=64, height=64, steps=1)
        self.assertEqual(r.info["sd_model_name"], "lf-diagnostic")

    def test_lists(self):
        models = self.api.get_sd_models()
        self.assertIn("lf-diagnostic", [m["title"] for m in models])
        self.assertIn("lf-diagnostic", self.api.util_get_model_names())
        names = [s["name"] for s in self.api.get_samplers()]
        self.assertIn("Euler a", names)
        self.assertIn("DPM++ 2M", names)
        self.assertIn("karras", [s["name"] for s in self.api.get_schedulers()])

    def test_surface_clients_call(self):
        # The routes A1111 clients call besides generation, each in A1111's shape.
        mem = self.api.get_memory()
        self.assertGreater(mem["ram"]["total"], mem["ram"]["used"])
        self.assertGreater(mem["ram"]["used"], 0)
        self.assertIn("error", mem["cuda"])
        flags = self.api.get_cmd_flags()
        self.assertIsInstance(flags, dict)
        self.assertTrue(flags["api"])
        self.assertEqual(self.api.get_embeddings(), {"loaded": {}, "skipped": {}})
        self.assertEqual(self.api.get_scripts(), {"txt2img": ["adetailer"], "img2img": ["adetailer"]})
        self.assertEqual(self.api.get_face_restorers(), [])
        self.assertEqual(self.api.get_realesrgan_models(), [])
        self.assertEqual(self.api.get_prompt_styles(), [])
        self.assertIsNone(self.api.refresh_checkpoints())
        self.assertEqual(self.api.skip(), {})
        for path in ("script-info", "extensions"):
            with urllib.request.urlopen(self.api.get_endpoint(path, True), timeout=5) as r:
                self.assertEqual(r.status, 200)
        req = urllib.request.Request(self.api.get_endpoint("refresh-loras", True), data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            self.assertEqual(r.read(), b"null")
        # No captioning model on the farm: a clear 501, not a 404.
        with self.assertRaises(RuntimeError) as cm:
            self.api.interrogate(Image.new("RGB", (8, 8)))
        self.assertEqual(cm.exception.args[0], 501)
        self.assertIn("not_implemented", cm.exception.args[1])

    def test_unknown_checkpoint_refused(self):
        # As A1111: an unknown checkpoint is refused naming the field, and
        # not stored (later calls keep working).
        with self.assertRaises(urllib.error.HTTPError) as cm:
            req = urllib.request.Request(self.api.get_endpoint("options", True),
                                         data=b'{"sd_model_checkpoint":"nope"}', method="POST",
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(cm.exception.code, 400)
        body = cm.exception.read().decode()
        self.assertIn('"field":"sd_model_checkpoint"', body)
        self.assertIn("unknown_model", body)
        self.assertNotEqual(self.api.get_options()["sd_model_checkpoint"], "nope")
        r = self.api.txt2img(prompt="still works", width=64, height=64, steps=1)
        self.assertEqual(len(r.images), 1)

    def test_progress_and_interrupt(self):
        out = {}

        def run():
            try:
                out["r"] = self.api.txt2img(prompt="slow", width=64, height=64, steps=100,
                                            override_settings={"sd_model_checkpoint": "lf-diagnostic"},
                                            alwayson_scripts={}, script_args=[])
            except Exception as e:  # noqa
                out["e"] = e
        # lf-diagnostic's step delay is a native field; A1111 clients cannot
        # send it, so 100 steps is the slow job here.
        t = threading.Thread(target=run)
        t.start()
        seen = False
        deadline = time.time() + 10
        while time.time() < deadline and t.is_alive():
            p = self.api.get_progress()
            self.assertIn("progress", p)
            self.assertIn("state", p)
            if p["state"]["job_count"] > 0:
                seen = True
                break
            time.sleep(0.01)
        self.api.interrupt()
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertNotIn("e", out, out.get("e"))
        if seen:
            self.assertTrue(out["r"].info.get("interrupted", False) or len(out["r"].images) == 1)
        p = self.api.get_progress()
        self.assertEqual(p["state"]["job_count"], 0)


if __name__ == "__main__":
    main(__doc__, prefix="lf-a1111-")
