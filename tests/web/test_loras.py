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
