"""The ADetailer section: the detectors from GET /adetailer/v1/ad_model, the unit (detector, confidence,
denoise, prompt) sent as the native `adetailer` list; the job stores it with the extension's defaults filled in
and the image's infotext carries the extension's keys (lf-tiny-shapes draws no faces: nothing is re-drawn)."""
import os

import pytest

from conftest import http


def test_adetailer_section_sends_the_unit(ui, base_url):
    if os.environ.get("LF_WEB_MOCK"):
        pytest.skip("the mock gateway has no ADetailer route")
    p = ui.open().page
    p.wait_for_selector("#adetailer-field:not([hidden])", timeout=15000)
    assert p.is_hidden("#ad-options")
    p.check("#ad-enable")
    assert p.is_visible("#ad-options")
    options = p.eval_on_selector_all("#ad-model option", "os => os.map(o => o.value)")
    assert options == ["mediapipe_face_short", "mediapipe_face_full"]
    p.select_option("#ad-model", "mediapipe_face_full")
    for sel, val in (("#ad-confidence", "0.5"), ("#ad-denoise", "0.35")):
        p.eval_on_selector(sel, "(e, v) => { e.value = v; e.dispatchEvent(new Event('input', {bubbles: true})); }", val)
    assert p.inner_text("#ad-confidence-out") == "0.50"
    p.fill("#ad-prompt", "a smiling face")
    p.fill("#prompt", "a red circle")
    p.select_option("#model", "lf-tiny-shapes")
    p.fill("#width", "128")
    p.fill("#height", "128")
    p.fill("#steps", "4")
    p.click("#generate-btn")
    ui.wait_status("done", timeout=180000)
    ui.shot("adetailer-section")
    status, hist = http(base_url, "GET", "/v1/history?limit=1")
    assert status == 200
    job = (hist.get("jobs") or hist.get("history") or hist.get("items"))[0]
    assert job["status"] == "done"
    unit = job["params"]["adetailer"][0]
    assert unit["ad_model"] == "mediapipe_face_full"
    assert unit["ad_confidence"] == 0.5
    assert unit["ad_denoising_strength"] == 0.35
    assert unit["ad_prompt"] == "a smiling face"
    assert unit["ad_dilate_erode"] == 4  # the extension's default, filled in by the gateway
    status, full = http(base_url, "GET", f"/v1/jobs/{job['id']}")
    assert status == 200
    assert "ADetailer model: mediapipe_face_full" in str(full)
    # Off again: no adetailer list is sent.
    p.uncheck("#ad-enable")
    params = p.evaluate("import('/js/generate.js').then(m => m.getParams())")
    assert "adetailer" not in params
