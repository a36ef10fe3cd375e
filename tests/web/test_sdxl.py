"""SDXL in the farm and the UI: the size presets, the Refiner section and the VAE picker.

One worker of the test farm (run_browser_tests.sh) advertises lf-xl-probe and lf-xl-refiner-probe
(files whose tensor names say SDXL) and a VAE, lf-xl-vae-probe. They are not runnable models, so
nothing here runs them: the UI's requests are caught before they leave the page, and the REST
checks stop at the gateway's admission.
"""
import json

import pytest

from conftest import http, submit_and_wait

XL, REFINER, VAE, SD = "lf-xl-probe", "lf-xl-refiner-probe", "lf-xl-vae-probe", "lf-tiny-shapes"
SDXL_SIZES = ["1024x1024", "1152x896", "896x1152", "1216x832", "832x1216", "1344x768", "768x1344",
              "1536x640", "640x1536"]


def _models(base):
    status, r = http(base, "GET", "/v1/models")
    assert status == 200, r
    by = {m["name"]: m for m in r["models"]}
    if XL not in by:
        pytest.skip("the farm advertises no SDXL probe model (run through run_browser_tests.sh)")
    return r, by


def test_models_and_vaes_are_advertised(base_url):
    r, by = _models(base_url)
    assert by[XL]["family"] == "sdxl" and by[XL]["resolution"] == 1024
    assert by[XL]["preview"] == "approx"
    assert by[SD]["family"] == "sd15"
    vaes = {v["name"]: v for v in r["vaes"]}
    assert VAE in vaes and vaes[VAE]["family"] == "sdxl"  # (test_flux.py: the Flux VAE beside it)
    assert by[XL]["vaes"] == [VAE] and by[SD]["vaes"] == []  # the ones that fit each model
    status, a = http(base_url, "GET", "/sdapi/v1/sd-vae")
    assert status == 200 and {"model_name": VAE, "filename": VAE, "family": "sdxl"} in a
    status, w = http(base_url, "GET", "/v1/workers")
    assert any(VAE in x.get("vaes", []) for x in w["workers"])


def test_admission_names_the_refiner_and_the_vae(base_url):
    _models(base_url)
    status, e = http(base_url, "POST", "/v1/jobs", {"model": XL, "refiner_checkpoint": "no-such-refiner"})
    assert status == 400 and e["error"]["field"] == "refiner_checkpoint", e
    # The refiner must run next to the base: lf-tiny-shapes' other worker has no SDXL refiner...
    status, e = http(base_url, "POST", "/v1/jobs", {"model": XL, "vae": "no-such-vae"})
    assert status == 400 and e["error"]["field"] == "vae", e
    status, e = http(base_url, "POST", "/v1/jobs", {"model": XL, "refiner_switch_at": 0.7})
    assert status == 400 and e["error"]["field"] == "refiner_switch_at", e
    status, e = http(base_url, "POST", "/sdapi/v1/txt2img",
                     {"prompt": "x", "override_settings": {"sd_model_checkpoint": XL, "sd_vae": "nope.safetensors"}})
    assert status == 400 and "sd_vae" in json.dumps(e), e


def test_sdxl_sizes_refiner_and_vae_in_the_form(ui):
    _models(ui.base)
    p = ui.open().page
    p.wait_for_selector("#model option[value='%s']" % XL, state="attached")
    # SD1.5: its own sizes, no Refiner section.
    p.select_option("#model", SD)
    assert p.is_hidden("#sdxl-sizes") and p.is_visible("#aspect-row") and p.is_hidden("#refiner-field")
    # SDXL: 1024² by default, the ~1 MP presets instead of the ratios, the Refiner section.
    p.select_option("#model", XL)
    assert p.input_value("#width") == "1024" and p.input_value("#height") == "1024"
    assert p.is_visible("#sdxl-sizes") and p.is_hidden("#aspect-row") and p.is_visible("#refiner-field")
    assert p.eval_on_selector_all("#sdxl-sizes [data-size]", "els => els.map(e => e.dataset.size)") == SDXL_SIZES
    assert p.get_attribute("[data-size='1024x1024']", "aria-pressed") == "true"
    p.click("[data-size='1216x832']")
    assert p.input_value("#width") == "1216" and p.input_value("#height") == "832"
    assert p.get_attribute("[data-size='1216x832']", "aria-pressed") == "true"
    # The refiner list: the other SDXL models; the switch point is off until one is chosen.
    opts = p.eval_on_selector_all("#refiner_checkpoint option", "els => els.map(e => e.value)")
    assert opts == ["", REFINER] or opts == ["", "lf-xl-lightning-probe", REFINER]  # the farm's other SDXL models
    assert p.is_disabled("#refiner_switch_at")
    assert p.get_attribute("#refiner_switch_at", "min") == "0.01"  # from GET /v1/params
    p.select_option("#refiner_checkpoint", REFINER)
    assert p.is_enabled("#refiner_switch_at")
    p.eval_on_selector("#refiner_switch_at", "el => { el.value = '0.7'; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    assert p.text_content("#refiner-switch-out") == "0.70"
    assert p.is_visible("#vae-field")
    p.select_option("#vae", VAE)
    ui.shot("sdxl-form")

    # What the form sends (caught here: the probe models cannot run).
    sent = []

    def catch(route):
        if route.request.method == "POST":
            sent.append(json.loads(route.request.post_data))
            route.fulfill(status=400, content_type="application/json",
                          body=json.dumps({"error": {"code": "invalid_value", "field": "prompt", "message": "caught by the test"}}))
        else:
            route.continue_()
    p.route("**/v1/jobs", catch)
    p.fill("#prompt", "a lighthouse")
    p.click("#generate-btn")
    p.wait_for_function("() => !document.querySelector('[data-error-for=\"prompt\"]').hidden")
    assert sent and sent[0]["model"] == XL
    assert sent[0]["width"] == 1216 and sent[0]["height"] == 832
    assert sent[0]["refiner_checkpoint"] == REFINER and sent[0]["refiner_switch_at"] == 0.7
    assert sent[0]["vae"] == VAE

    # Back to SD1.5: no refiner is sent, the ratios are back.
    p.select_option("#model", SD)
    assert p.is_hidden("#refiner-field") and p.is_visible("#aspect-row")
    p.click("#generate-btn")
    for _ in range(50):
        if len(sent) == 2:
            break
        p.wait_for_timeout(100)
    assert len(sent) == 2 and "refiner_checkpoint" not in sent[1] and sent[1]["model"] == SD
    # An SDXL VAE does not fit SD1.5: no longer offered, not sent (Automatic = the checkpoint's).
    assert p.is_hidden("#vae-field") and "vae" not in sent[1]


def test_a1111_sd_vae_option(base_url):
    """A1111's global VAE choice (POST options sd_vae): checked like the checkpoint, then used by
    txt2img requests that name none. The diagnostic model runs it (it ignores the VAE but writes it
    into the infotext), and only the worker that has the VAE may take the job."""
    _models(base_url)
    status, e = http(base_url, "POST", "/sdapi/v1/options", {"sd_vae": "no-such-vae.safetensors"})
    assert status == 400 and e["error"]["field"] == "sd_vae", e
    status, _ = http(base_url, "POST", "/sdapi/v1/options", {"sd_vae": VAE + ".safetensors"})
    assert status == 200
    try:
        status, o = http(base_url, "GET", "/sdapi/v1/options")
        assert o["sd_vae"] == VAE + ".safetensors"
        for _ in range(3):  # either worker is idle; only web-w1 has the VAE
            status, r = http(base_url, "POST", "/sdapi/v1/txt2img",
                             {"prompt": "x", "steps": 2, "width": 64, "height": 64,
                              "override_settings": {"sd_model_checkpoint": "lf-diagnostic"}})
            assert status == 200, (status, r)
            info = json.loads(r["info"])
            assert "VAE: " + VAE in info["infotexts"][0], info["infotexts"][0]
        # A request's own choice wins over the option.
        status, r = http(base_url, "POST", "/sdapi/v1/txt2img",
                         {"prompt": "x", "steps": 2, "width": 64, "height": 64,
                          "override_settings": {"sd_model_checkpoint": "lf-diagnostic", "sd_vae": "Automatic"}})
        assert status == 200 and "VAE:" not in json.loads(r["info"])["infotexts"][0]
    finally:
        status, _ = http(base_url, "POST", "/sdapi/v1/options", {"sd_vae": "Automatic"})
        assert status == 200


def test_a_job_with_a_vae_goes_to_a_worker_that_has_it(base_url):
    _models(base_url)
    for _ in range(4):
        v = submit_and_wait(base_url, {"model": "lf-diagnostic", "prompt": "x", "steps": 2, "width": 64,
                                       "height": 64, "vae": VAE})
        assert v["status"] == "done" and v["worker"] == "web-w1", v
        assert v["params"]["vae"] == VAE


def test_an_sdxl_job_gets_1024_and_reaches_the_worker_with_its_refiner(base_url):
    """The farm's path for an SDXL job: no size given = the model's 1024; admitted with its refiner and
    VAE; run by the worker that has all three. The probe is no real checkpoint, so the worker's engine
    refuses it: a clean failure naming the model, the file and what is missing, not a crash."""
    _models(base_url)
    v = submit_and_wait(base_url, {"model": XL, "prompt": "x", "steps": 2, "refiner_checkpoint": REFINER,
                                   "refiner_switch_at": 0.75, "vae": VAE, "crop_top": 16, "aesthetic_score": 7})
    assert v["params"]["width"] == 1024 and v["params"]["height"] == 1024
    assert v["params"]["refiner_checkpoint"] == REFINER and v["params"]["refiner_switch_at"] == 0.75
    assert v["params"]["crop_top"] == 16 and v["params"]["aesthetic_score"] == 7
    assert v["status"] == "failed" and v["worker"] == "web-w1", v
    err = json.dumps(v.get("error"))
    assert XL in err and "UNet" in err, v
    # The refiner of another family is refused at the door.
    status, e = http(base_url, "POST", "/v1/jobs", {"model": SD, "refiner_checkpoint": REFINER})
    assert status == 400 and e["error"]["field"] == "refiner_checkpoint", e


LIGHTNING = "lf-xl-lightning-probe"


def test_model_defaults_and_few_step_presets(ui):
    """A model's recommended settings (its file's lf.defaults metadata): listed, applied when the
    model is chosen and undone when another is; the Lightning / Turbo presets are offered for SDXL
    models only and set steps, CFG, sampler, schedule and size."""
    r, by = _models(ui.base)
    if LIGHTNING not in by:
        pytest.skip("the farm advertises no model with recommended settings (run through run_browser_tests.sh)")
    assert by[LIGHTNING]["defaults"] == {"steps": 4, "cfg_scale": 1.0, "sampler": "euler",
                                         "scheduler": "sgm_uniform", "width": 1024, "height": 1024}
    assert "defaults" not in by[SD]
    p = ui.open().page
    p.wait_for_selector("#model option[value='%s']" % LIGHTNING, state="attached")
    p.select_option("#model", SD)
    assert p.input_value("#steps") == "20" and p.is_hidden("#model-defaults")
    p.select_option("#model", LIGHTNING)
    assert p.input_value("#steps") == "4"
    assert float(p.input_value("#cfg_scale")) == 1.0
    assert p.input_value("#sampler") == "euler" and p.input_value("#scheduler") == "sgm_uniform"
    assert (p.input_value("#width"), p.input_value("#height")) == ("1024", "1024")
    note = p.text_content("#model-defaults")
    assert p.is_visible("#model-defaults") and "4 steps, CFG 1" in note, note
    ui.shot("model-defaults-lightning", full_page=False)
    # Another model: the page's defaults again for what the model had set.
    p.select_option("#model", SD)
    assert p.input_value("#steps") == "20" and float(p.input_value("#cfg_scale")) == 7.0
    assert p.input_value("#scheduler") == "normal" and p.is_hidden("#model-defaults")
    # The few-step presets: disabled for an SD1.5 model, with the reason ...
    p.wait_for_selector("#preset-select option[value='b:lightning-4step']", state="attached")
    opts = {o["value"]: o for o in p.eval_on_selector_all(
        "#preset-select option", "os => os.map(o => ({value: o.value, text: o.textContent, disabled: o.disabled}))")}
    for name in ("b:lightning-4step", "b:lightning-8step", "b:turbo-1step"):
        assert opts[name]["disabled"] and "sdxl" in opts[name]["text"], opts[name]
    # ... and applied on an SDXL one.
    for name, want in [("b:lightning-8step", ("8", "euler", "1024")), ("b:turbo-1step", ("1", "euler_ancestral", "512")),
                       ("b:lightning-4step", ("4", "euler", "1024"))]:
        p.select_option("#model", XL)
        p.wait_for_selector("#preset-select option[value='%s']:not([disabled])" % name, state="attached")
        p.select_option("#preset-select", name)
        p.click("#preset-apply")
        assert (p.input_value("#steps"), p.input_value("#sampler"), p.input_value("#width")) == want, name
        assert p.input_value("#scheduler") == "sgm_uniform" and float(p.input_value("#cfg_scale")) == 1.0
    assert p.is_hidden("#tcd-field") and p.input_value("#timesteps") == ""
    # Hyper-SD 1-step: TCD at the one timestep 800 with gamma 1; the job the form sends says so.
    p.wait_for_selector("#preset-select option[value='b:hyper-1step']:not([disabled])", state="attached")
    p.select_option("#preset-select", "b:hyper-1step")
    p.click("#preset-apply")
    assert (p.input_value("#steps"), p.input_value("#sampler"), p.input_value("#timesteps")) == ("1", "tcd", "800")
    assert p.is_visible("#tcd-field") and float(p.input_value("#tcd_gamma")) == 1.0
    ui.shot("preset-hyper-1step", full_page=False)
    sent = p.evaluate("async () => (await import('/js/generate.js')).getParams()")
    assert sent["timesteps"] == "800" and sent["tcd_gamma"] == 1 and "steps" not in sent, sent
    # DMD2: the LCM sampler over trailing timesteps (999 749 499 249), no explicit timesteps.
    p.select_option("#preset-select", "b:dmd2-4step")
    p.click("#preset-apply")
    assert (p.input_value("#steps"), p.input_value("#sampler"), p.input_value("#scheduler")) == ("4", "lcm", "trailing")
    assert p.is_hidden("#tcd-field")
    assert p.input_value("#timesteps") == ""  # steps without timesteps: the scheduler's again
