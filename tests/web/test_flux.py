"""Flux in the UI: the Distilled CFG scale field (the `guidance` row; Forge's distilled_cfg_scale).

One worker of the test farm (run_browser_tests.sh) advertises lf-zflux-probe, a diffusers folder
whose transformer/ says Flux. It is not a runnable model: nothing here runs it; the form's
parameters are read before they leave the page, and the REST checks stop at the gateway.
The same worker has two VAE probes (header-only files): lf-flux-ae-probe (16 latent channels) and
lf-xl-vae-probe (SDXL's keys): the VAE list per model family.
"""
import pytest

from conftest import http

FLUX, SD, XL = "lf-zflux-probe", "lf-tiny-shapes", "lf-xl-probe"
FLUX_VAE, XL_VAE = "lf-flux-ae-probe", "lf-xl-vae-probe"  # models-xl/vae/: 16 and SDXL's 4 latent channels


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


def _vae_options(p):
    return p.eval_on_selector_all("#vae option", "els => els.map(e => e.value)")


def test_vaes_per_family(base_url):
    """The worker reads each VAE's family from its header; the gateway lists it, filters by model and
    refuses a VAE of another family at submit, naming the field and both families."""
    by = _models(base_url)
    status, r = http(base_url, "GET", "/v1/models")
    fam = {v["name"]: (v.get("family"), v.get("latent_channels")) for v in r["vaes"]}
    assert fam[FLUX_VAE] == ("flux", 16) and fam[XL_VAE][0] == "sdxl", fam
    assert by[FLUX]["vaes"] == [FLUX_VAE] and by[XL]["vaes"] == [XL_VAE]
    status, a = http(base_url, "GET", "/sdapi/v1/sd-vae?model=" + FLUX)
    assert status == 200 and a == [{"model_name": FLUX_VAE, "filename": FLUX_VAE, "family": "flux",
                                    "latent_channels": 16}], a
    status, a = http(base_url, "GET", "/sdapi/v1/sd-vae?model=" + XL)
    assert status == 200 and [x["model_name"] for x in a] == [XL_VAE], a
    status, e = http(base_url, "POST", "/v1/jobs", {"model": XL, "prompt": "x", "vae": FLUX_VAE})
    assert status == 400 and e["error"]["field"] == "vae" and e["error"]["code"] == "invalid_value", e
    assert "flux VAE" in e["error"]["message"] and "sdxl" in e["error"]["message"], e
    status, e = http(base_url, "POST", "/sdapi/v1/txt2img",
                     {"prompt": "x", "override_settings": {"sd_model_checkpoint": FLUX, "sd_vae": XL_VAE + ".safetensors"}})
    assert status == 400 and e["error"]["field"] == "override_settings.sd_vae", e
    assert "sdxl VAE" in e["error"]["message"] and "is flux" in e["error"]["message"], e


def test_vae_dropdown_shows_the_models_family(ui):
    _models(ui.base)
    p = ui.open().page
    p.wait_for_selector("#model option[value='%s']" % FLUX, state="attached")
    p.select_option("#model", XL)
    assert p.is_visible("#vae-field") and _vae_options(p) == ["", XL_VAE]
    p.select_option("#vae", XL_VAE)
    p.select_option("#model", FLUX)
    # The SDXL VAE is gone with its family; the choice falls back to Automatic.
    assert _vae_options(p) == ["", FLUX_VAE] and p.input_value("#vae") == ""
    p.select_option("#vae", FLUX_VAE)
    ui.shot("flux-vae", full_page=False)
    sent = p.evaluate("async () => (await import('/js/generate.js')).getParams()")
    assert sent["vae"] == FLUX_VAE and sent["model"] == FLUX, sent
    p.select_option("#model", SD)  # no VAE of its family on the farm: no VAE field
    assert p.is_hidden("#vae-field")
    sent = p.evaluate("async () => (await import('/js/generate.js')).getParams()")
    assert "vae" not in sent, sent
