"""Hires-Fix in the UI and through the farm: the form's Hires-Fix section (upscalers from
GET /v1/upscalers, the final size, what the form sends) and an A1111 txt2img with enable_hr on the
built-in model, whose image comes back at the Hires-Fix size with A1111's infotext keys.
"""
import base64
import json
import struct

from conftest import http

SD = "lf-tiny-shapes"


def _png_size(b64):
    raw = base64.b64decode(b64)
    return struct.unpack(">II", raw[16:24])


def test_upscaler_lists(base_url):
    status, r = http(base_url, "GET", "/v1/upscalers")
    assert status == 200, r
    names = [u["name"] for u in r["upscalers"]]
    assert names[:9] == ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                         "Latent (nearest)", "Latent (nearest-exact)", "None", "Lanczos", "Nearest"]
    status, a = http(base_url, "GET", "/sdapi/v1/upscalers")
    assert status == 200 and [u["name"] for u in a][:3] == ["None", "Lanczos", "Nearest"]
    status, m = http(base_url, "GET", "/sdapi/v1/latent-upscale-modes")
    assert status == 200 and len(m) == 6


def test_a1111_txt2img_enable_hr(base_url):
    status, r = http(base_url, "POST", "/sdapi/v1/txt2img", {
        "prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "seed": 3, "enable_hr": True,
        "hr_scale": 2, "hr_upscaler": "Latent", "hr_second_pass_steps": 1, "denoising_strength": 0.5,
        "override_settings": {"sd_model_checkpoint": SD}})
    assert status == 200, r
    assert _png_size(r["images"][0]) == (128, 128)
    info = json.loads(r["info"])
    assert "Hires upscale: 2, Hires steps: 1, Hires upscaler: Latent" in info["infotexts"][0]
    status, e = http(base_url, "POST", "/sdapi/v1/txt2img", {
        "prompt": "x", "enable_hr": True, "hr_upscaler": "4x-Nobody",
        "override_settings": {"sd_model_checkpoint": SD}})
    assert status == 400 and e["error"]["field"] == "hr_upscaler", e


def test_hires_section_in_the_form(ui):
    p = ui.open().page
    p.wait_for_selector("#model option[value='%s']" % SD, state="attached")
    p.select_option("#model", SD)
    assert p.is_visible("#hires-field") and p.is_hidden("#hires-controls")
    p.wait_for_selector("#hr_upscaler option[value='Latent (nearest-exact)']", state="attached")
    p.check("#enable_hr")
    assert p.is_visible("#hires-controls")
    p.fill("#width", "128")
    p.fill("#height", "64")
    p.fill("#hr_scale", "2")
    p.dispatch_event("#hr_scale", "input")
    assert "256×128" in p.text_content("#hires-size")
    p.select_option("#hr_upscaler", "Lanczos")
    p.eval_on_selector("#hr_denoise", "el => { el.value = '0.4'; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert p.text_content("#hr-denoise-out") == "0.40"
    ui.shot("hires-form")
    sent = []

    def catch(route):
        if route.request.method == "POST":
            sent.append(json.loads(route.request.post_data))
            route.fulfill(status=400, content_type="application/json",
                          body=json.dumps({"error": {"code": "invalid_value", "field": "prompt", "message": "caught by the test"}}))
        else:
            route.continue_()
    p.route("**/v1/jobs", catch)
    p.fill("#prompt", "a blue star")
    p.click("#generate-btn")
    p.wait_for_function("() => !document.querySelector('[data-error-for=\"prompt\"]').hidden")
    assert sent and sent[0]["enable_hr"] is True and sent[0]["hr_upscaler"] == "Lanczos"
    assert sent[0]["hr_scale"] == 2 and sent[0]["denoise"] == 0.4 and sent[0]["hr_second_pass_steps"] == 0
