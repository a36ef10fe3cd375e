"""The LoRA picker: lists the workers' LoRAs (GET /v1/loras) and writes <lora:name:weight> into the prompt,
which the farm then applies (the run script installs a LoRA for lf-tiny-shapes in the workers' models/lora)."""
import os

import pytest

from conftest import http


def test_lora_picker_writes_the_tag_and_the_job_uses_it(ui, base_url):
    if os.environ.get("LF_WEB_MOCK"):
        pytest.skip("the mock gateway lists no LoRAs")
    p = ui.open().page
    p.wait_for_selector("#lora-field:not([hidden])", timeout=15000)
    assert p.input_value("#lora-pick") == "lf_tiny_shapes_kohya"
    assert "shapes_style" in p.inner_text("#lora-pick")  # its alias (ss_output_name)
    p.fill("#prompt", "a red circle")
    p.fill("#lora-weight", "0.8")
    p.click("#lora-add")
    assert p.input_value("#prompt") == "a red circle <lora:lf_tiny_shapes_kohya:0.8>"
    p.select_option("#model", "lf-tiny-shapes")
    p.fill("#width", "128")
    p.fill("#height", "128")
    p.fill("#steps", "4")
    p.click("#generate-btn")
    ui.wait_status("done", timeout=180000)
    ui.shot("lora-picker")
    status, hist = http(base_url, "GET", "/v1/history?limit=1")
    assert status == 200
    job = (hist.get("jobs") or hist.get("history") or hist.get("items"))[0]
    assert job["status"] == "done"
    assert "<lora:lf_tiny_shapes_kohya:0.8>" in job["params"]["prompt"]


LORA8 = "lightning_8step_lora_probe"


def test_lora_defaults_shown_and_applied_when_added(ui, base_url):
    """A LoRA that says how it must be run (its lf.defaults metadata: a Lightning 8-step LoRA's weight,
    8 steps, CFG 1, Euler, SGM Uniform) is shown under the picker when picked, with its weight in the
    picker's weight; Add sets the other settings in the fields the user left alone and keeps (and names)
    the one the user changed."""
    if os.environ.get("LF_WEB_MOCK"):
        pytest.skip("the mock gateway lists no LoRAs")
    status, r = http(base_url, "GET", "/v1/loras")
    assert status == 200, r
    by = {x["name"]: x for x in r["loras"]}
    if LORA8 not in by:
        pytest.skip("the farm has no LoRA with recommended settings (run through run_browser_tests.sh)")
    assert by[LORA8]["defaults"] == {"weight": 0.9, "steps": 8, "cfg_scale": 1.0, "sampler": "euler",
                                     "scheduler": "sgm_uniform"}
    assert "defaults" not in by["lf_tiny_shapes_kohya"]
    p = ui.open().page
    p.wait_for_selector("#lora-field:not([hidden])", timeout=15000)
    p.select_option("#model", "lf-tiny-shapes")
    assert p.input_value("#steps") == "20" and p.input_value("#scheduler") == "normal"
    assert p.is_hidden("#lora-defaults")  # the first LoRA says nothing
    p.fill("#cfg_scale", "3")  # the user's own CFG
    p.select_option("#lora-pick", LORA8)
    note = p.text_content("#lora-defaults")
    assert p.is_visible("#lora-defaults") and "8 steps, CFG 1" in note, note
    assert p.input_value("#steps") == "20"  # picking alone changes only the picker's weight
    assert float(p.input_value("#lora-weight")) == 0.9
    p.click("#lora-add")
    assert "<lora:%s:0.9>" % LORA8 in p.input_value("#prompt")
    assert p.input_value("#steps") == "8"
    assert p.input_value("#sampler") == "euler" and p.input_value("#scheduler") == "sgm_uniform"
    assert float(p.input_value("#cfg_scale")) == 3.0  # changed by the user: kept
    note = p.text_content("#lora-defaults")
    assert "set now" in note and "CFG kept" in note, note
    ui.shot("lora-defaults", full_page=False)
    # A LoRA without recommended settings hides the note again.
    p.select_option("#lora-pick", "lf_tiny_shapes_kohya")
    assert p.is_hidden("#lora-defaults")
