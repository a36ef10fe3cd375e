"""Flux in the UI: the Distilled CFG scale field (the `guidance` row; Forge's distilled_cfg_scale).

One worker of the test farm (run_browser_tests.sh) advertises lf-zflux-probe, a diffusers folder
whose transformer/ says Flux. It is not a runnable model: nothing here runs it; the form's
parameters are read before they leave the page, and the REST checks stop at the gateway.
"""
import pytest

from conftest import http

FLUX, SD = "lf-zflux-probe", "lf-tiny-shapes"


def _models(base):
    status, r = http(base, "GET", "/v1/models")
    assert status == 200, r
    by = {m["name"]: m for m in r["models"]}
    if FLUX not in by:
        pytest.skip("the farm advertises no Flux probe model (run through run_browser_tests.sh)")
    return by


def test_flux_is_listed_and_guidance_checked(base_url):
    by = _models(base_url)
    assert by[FLUX]["family"] == "flux" and by[FLUX]["resolution"] == 1024
    status, e = http(base_url, "POST", "/v1/jobs", {"model": FLUX, "guidance": 40})
    assert status == 400 and e["error"]["field"] == "guidance", e
    status, e = http(base_url, "POST", "/sdapi/v1/txt2img",
                     {"prompt": "x", "distilled_cfg_scale": "high", "override_settings": {"sd_model_checkpoint": FLUX}})
    assert status == 400 and e["error"]["field"] == "distilled_cfg_scale", e


def test_guidance_field_for_flux_models_only(ui):
    _models(ui.base)
    p = ui.open().page
    p.wait_for_selector("#model option[value='%s']" % FLUX, state="attached")
    p.select_option("#model", SD)
    assert p.is_hidden("#guidance-field")
    sent = p.evaluate("async () => (await import('/js/generate.js')).getParams()")
    assert "guidance" not in sent, sent
    p.select_option("#model", FLUX)
    assert p.is_visible("#guidance-field") and float(p.input_value("#guidance")) == 3.5
    p.fill("#guidance", "2.5")
    ui.shot("flux-guidance", full_page=False)
    sent = p.evaluate("async () => (await import('/js/generate.js')).getParams()")
    assert sent["guidance"] == 2.5 and sent["model"] == FLUX, sent
