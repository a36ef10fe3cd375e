"""Generate, watch, cancel, reuse, img2img and validation — through the UI, on a real farm."""
import re

import pytest

from conftest import DIAG, drop_file, http, make_png

# Records every value the progress bar takes (set before the job starts).
RECORD_PROGRESS = """() => {
  window.__progress = [];
  const bar = document.getElementById('progress');
  new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('aria-valuenow'))))
    .observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] });
  window.__steps = [];
  const st = document.getElementById('progress-steps');
  new MutationObserver(() => window.__steps.push(st.textContent))
    .observe(st, { childList: true, characterData: true, subtree: true });
  window.__previews = 0;
  const pv = document.getElementById('preview-img');
  new MutationObserver(() => { if (pv.getAttribute('src')) window.__previews++; })
    .observe(pv, { attributes: true, attributeFilter: ['src'] });
}"""


def test_generate_progress_reaches_the_end_and_image_appears(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=20, delay=50)
    p.fill("#width", "512")
    p.fill("#height", "384")
    p.fill("#batch_size", "2")
    p.fill("#seed", "9000")
    p.evaluate(RECORD_PROGRESS)
    p.click("#generate-btn")
    ui.wait_status("running")
    p.wait_for_function("window.__progress.some(v => v > 0 && v < 100)")
    p.wait_for_selector("#preview-img:not([hidden])", timeout=5000)
    ui.shot("generate-running", full_page=False)
    ui.wait_status("done")
    # Progress went through intermediate steps up to the end.
    progress = p.evaluate("window.__progress")
    assert max(progress) == 100, progress
    assert any(0 < v < 100 for v in progress), progress
    assert p.text_content("#progress-steps") == "Step 20 / 20"
    steps_seen = p.evaluate("window.__steps")
    assert any(re.match(r"Step ([1-9]|1[0-9]) / 20$", s) for s in steps_seen), steps_seen
    # Previews arrived over SSE while it ran (the farm's workers send one every 5 steps).
    assert p.evaluate("window.__previews") >= 1
    # The image is shown, loaded, with the requested size.
    p.wait_for_function("() => { const i = document.getElementById('result-img'); return i.complete && i.naturalWidth > 0; }")
    assert p.evaluate("[document.getElementById('result-img').naturalWidth, document.getElementById('result-img').naturalHeight]") == [512, 384]
    assert p.is_visible("#result-img")
    assert not p.is_visible("#cancel-btn")
    # A batch of two: both are offered; batch item i has seed + i.
    strip = p.locator("#batch-strip button")
    assert strip.count() == 2
    assert "seed 9001" in strip.nth(1).get_attribute("aria-label")
    strip.nth(1).click()
    assert strip.nth(1).get_attribute("aria-current") == "true"
    assert "seed 9001" in p.get_attribute("#result-img", "alt")
    # The job is listed as mine and done.
    p.wait_for_selector("#my-jobs li.job[data-status='done']")
    ui.shot("generate-done")
    # Full view opens, shows the image, Esc closes it.
    p.click("#stage-open")
    p.wait_for_selector("#viewer[open]")
    p.wait_for_function("() => document.getElementById('viewer-img').naturalWidth > 0")
    assert p.get_attribute("#viewer-download", "download").endswith(".png")
    ui.shot("full-view", full_page=False)
    p.keyboard.press("Escape")
    p.wait_for_selector("#viewer", state="hidden")


def test_cancel_running_job_from_output_and_from_queue(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=150, delay=100, prompt="a job to cancel")
    p.click("#generate-btn")
    ui.wait_status("running")
    p.wait_for_function("Number(document.getElementById('progress').getAttribute('aria-valuenow')) > 0")
    p.click("#cancel-btn")
    ui.wait_status("cancelled", timeout=10000)
    assert p.text_content("#live-status").strip() == "cancelled"
    p.wait_for_selector("#my-jobs li.job[data-status='cancelled']")
    ui.shot("cancel-output")

    # A second job, cancelled from the Queue panel's "Cancel" button.
    p.fill("#prompt", "cancel me from the queue")
    p.click("#generate-btn")
    ui.wait_status("running")
    btn = p.locator("#my-jobs li.job").first.get_by_role("button", name=re.compile("^Cancel job"))
    btn.click()
    ui.wait_status("cancelled", timeout=10000)
    p.wait_for_function("document.querySelectorAll(\"#my-jobs li.job[data-status='cancelled']\").length >= 2")


def test_reuse_parameters_from_history(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=6, delay=10, prompt="reuse me: a red barn")
    p.fill("#negative_prompt", "fog")
    p.fill("#seed", "4242")
    p.fill("#cfg_scale", "5.5")
    p.click("#generate-btn")
    ui.wait_status("done")
    # Change the form, then reuse from history's full view.
    p.fill("#prompt", "something else")
    p.fill("#negative_prompt", "")
    p.fill("#seed", "-1")
    p.fill("#steps", "33")
    p.click("#tab-history")
    thumb = p.locator("#gallery .thumb", has_text="reuse me: a red barn").first
    thumb.click()
    p.wait_for_selector("#viewer[open]")
    assert "reuse me" in p.text_content("#viewer-params")
    p.click("#viewer-reuse")
    p.wait_for_selector("#viewer", state="hidden")
    assert p.input_value("#prompt") == "reuse me: a red barn"
    assert p.input_value("#negative_prompt") == "fog"
    assert p.input_value("#seed") == "4242"
    assert p.input_value("#steps") == "6"
    assert float(p.input_value("#cfg_scale")) == 5.5
    assert p.input_value("#model") == DIAG
    # Focus goes back to the prompt, ready for Enter.
    assert p.evaluate("document.activeElement.id") == "prompt"
    # "Reuse last seed" offers the finished job's seed.
    p.fill("#seed", "-1")
    p.click("#seed-reuse")
    assert p.input_value("#seed") == "4242"


def test_img2img_drag_and_drop_upload(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=4, delay=20, prompt="img2img from a dropped PNG")
    p.click("label[for=mode-img2img]")
    assert p.is_visible("#init-drop")
    drop_file(p, "#init-drop", make_png(96, 64), "init.png")
    p.wait_for_function("document.getElementById('init-info').textContent.includes('uploaded')")
    assert p.is_visible("#init-thumb")
    # The output size follows the init image.
    assert (p.input_value("#width"), p.input_value("#height")) == ("96", "64")
    p.fill("#denoise", "0.5")
    p.dispatch_event("#denoise", "input")
    ui.shot("img2img-ready")
    p.click("#generate-btn")
    ui.wait_status("done")
    jid = p.locator("#my-jobs li.job").first.get_attribute("data-id")
    _, view = http(ui.base, "GET", "/v1/jobs/" + jid)
    assert view["params"]["mode"] == "img2img"
    assert abs(float(view["params"]["denoise"]) - 0.5) < 1e-6
    ui.shot("img2img-done")


def test_img2img_needs_an_image_and_rejects_non_images(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=2, delay=0)
    p.click("label[for=mode-img2img]")
    p.click("#generate-btn")
    err = p.locator("[data-error-for='init_image']")
    assert err.is_visible()
    assert p.get_attribute("#init-drop", "aria-invalid") == "true"
    drop_file(p, "#init-drop", b"hello", "notes.txt", mime="text/plain")
    assert "not a PNG, JPEG or WebP" in err.text_content()


def test_validation_error_from_the_api_is_shown_at_its_field(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=20, delay=0)
    p.fill("#steps", "500")  # the gateway allows 1..150
    p.click("#generate-btn")
    err = p.locator("[data-error-for='steps']")
    err.wait_for(state="visible")
    assert "steps" in err.text_content()
    assert p.get_attribute("#steps", "aria-invalid") == "true"
    assert p.get_attribute("#steps", "aria-describedby") == err.get_attribute("id")
    assert p.evaluate("document.activeElement.id") == "steps"
    # Nothing else is marked, no job was queued.
    assert p.locator("[data-error-for]:visible").count() == 1
    assert p.locator("#my-jobs li.job").count() == 0
    ui.shot("validation-error", full_page=False)
    # Editing the field clears its error; a width that is not a multiple of 8 names width.
    p.fill("#steps", "20")
    assert not err.is_visible()
    p.fill("#width", "100")
    p.click("#generate-btn")
    p.locator("[data-error-for='width']").wait_for(state="visible")
    assert p.get_attribute("#width", "aria-invalid") == "true"


def test_queue_positions_and_cancel_a_queued_job(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=100, delay=100, prompt="long job")
    ids = []
    try:
        for i in range(4):  # two workers: two run, two wait
            p.fill("#prompt", "long job %d" % i)
            p.press("#prompt", "Enter")
            p.wait_for_function("document.querySelectorAll('#my-jobs li.job').length === %d" % (i + 1))
        ids = p.locator("#my-jobs li.job").evaluate_all("els => els.map(e => e.dataset.id)")
        # The farm queue lists the waiting jobs with their positions, marked as mine.
        p.wait_for_function("""() => {
          const q = [...document.querySelectorAll("#farm-queue li.job.mine[data-status='queued'] .pos")].map(e => e.textContent);
          return q.includes('#1') && q.includes('#2');
        }""", timeout=10000)
        p.wait_for_selector("#farm-queue li.job[data-status='running']")
        assert "2 queued" in p.text_content("#farm-summary") or "queued" in p.text_content("#farm-summary")
        ui.shot("queue-positions")
        # Cancel a waiting job of mine from the list.
        waiting = p.locator("#my-jobs li.job[data-status='queued']").first
        wid = waiting.get_attribute("data-id")
        waiting.get_by_role("button", name=re.compile("^Cancel job")).click()
        p.wait_for_function("""(id) => {
          const li = document.querySelector(`#my-jobs li.job[data-id="${id}"]`);
          return li && li.dataset.status === 'cancelled';
        }""", arg=wid, timeout=10000)
        _, v = http(ui.base, "GET", "/v1/jobs/" + wid)
        assert v["status"] == "cancelled"
    finally:
        for jid in ids:
            http(ui.base, "DELETE", "/v1/jobs/" + jid)


def test_model_resolution_sets_the_default_size(ui):
    """The built-in lf-tiny-shapes is trained at 256x256 (GET /v1/models "resolution"): selected, it sets the
    size fields from the page's 512 to 256; a size the user typed is kept when the model changes."""
    p = ui.open().page
    tiny = "lf-tiny-shapes"
    models = http(ui.base, "GET", "/v1/models")[1]
    entry = next((m for m in models["models"] if m["name"] == tiny), None)
    if entry is None:
        pytest.skip("models/lf-tiny-shapes.safetensors is not installed")
    assert entry.get("resolution") == 256, entry
    p.select_option("#model", tiny)
    p.dispatch_event("#model", "change")
    assert (p.input_value("#width"), p.input_value("#height")) == ("256", "256")
    # A model without a resolution (the diagnostic one draws any size) leaves the size alone.
    p.select_option("#model", DIAG)
    assert (p.input_value("#width"), p.input_value("#height")) == ("256", "256")
    # A size the user chose stays when the model changes.
    p.fill("#width", "320")
    p.select_option("#model", tiny)
    assert (p.input_value("#width"), p.input_value("#height")) == ("320", "256")


def test_form_ranges_come_from_the_parameter_table(ui):
    """The form's limits, steps and defaults are the server's parameter table (GET /v1/params), not numbers
    written into the page: the page's own batch-size limit (16) is above the farm's (8)."""
    p = ui.open().page
    code, body = http(ui.base, "GET", "/v1/params")
    assert code == 200, body
    rows = {r["name"]: r for r in body["params"]}
    p.wait_for_function("document.getElementById('batch_size').max === '%d'" % rows["batch_size"]["maximum"])

    def num(v):
        return str(int(v)) if float(v) == int(v) else str(v)

    for name in ("steps", "cfg_scale", "batch_size"):
        assert p.get_attribute("#" + name, "max") == num(rows[name]["maximum"]), name
    assert p.get_attribute("#steps", "min") == num(rows["steps"]["minimum"])
    assert p.input_value("#steps") == num(rows["steps"]["default"])
    assert p.input_value("#sampler") == rows["sampler"]["default"]
    assert p.input_value("#scheduler") == rows["scheduler"]["default"]
    # Sizes: the real models' floor, the diagnostic model's own when it is selected.
    p.select_option("#model", DIAG)
    p.dispatch_event("#model", "change")
    assert p.get_attribute("#width", "min") == num(rows["width"]["minimum"])


# Keeps the last image the page uploads (the mask goes up at submit) for MASK_PIXELS.
RECORD_UPLOADS = """() => {
  const f = window.fetch;
  window.fetch = (url, opts) => {
    if (String(url).endsWith('/v1/uploads') && opts && opts.body instanceof Blob) window.__lastUpload = opts.body;
    return f(url, opts);
  };
}"""

MASK_PIXELS = """async () => {
  const bmp = await createImageBitmap(window.__lastUpload);
  const c = document.createElement('canvas');
  c.width = bmp.width; c.height = bmp.height;
  const g = c.getContext('2d');
  g.drawImage(bmp, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let white = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] > 127) white++;
  return { w: c.width, h: c.height, white, corner: d[0], centre: d[((c.height >> 1) * c.width + (c.width >> 1)) * 4] };
}"""


def test_inpaint_mask_brush(ui):
    """Paint a mask on the img2img image, invert, clear, paint again: the job carries
    `mask` (an upload of the image's size, white where painted) and the inpainting fields."""
    p = ui.open().page
    ui.use_diagnostic(steps=4, delay=20, prompt="inpaint the middle")
    p.click("label[for=mode-img2img]")
    drop_file(p, "#init-drop", make_png(96, 64), "init.png")
    p.wait_for_function("document.getElementById('init-info').textContent.includes('uploaded')")
    assert p.is_visible("#mask-canvas")
    p.wait_for_function("document.getElementById('mask-canvas').width === 96")
    assert "Nothing painted" in p.text_content("#mask-info")
    assert not p.is_visible("#mask-options")
    p.evaluate("document.getElementById('mask-canvas').scrollIntoView({block: 'center'})")
    box = p.locator("#mask-canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    assert p.evaluate("([x, y]) => document.elementFromPoint(x, y).id", [cx, cy]) == "mask-canvas"
    p.mouse.move(cx - 10, cy)
    p.mouse.down()
    p.mouse.move(cx + 10, cy, steps=4)
    p.mouse.up()
    assert p.get_attribute("#mask-canvas", "data-painted") == "1"
    assert p.is_visible("#mask-options")
    p.click("#mask-invert")
    p.click("#mask-clear")
    assert p.get_attribute("#mask-canvas", "data-painted") == "0"
    p.mouse.move(cx - 10, cy)
    p.mouse.down()
    p.mouse.move(cx + 10, cy, steps=4)
    p.mouse.up()
    p.select_option("#inpainting_fill", "2")
    p.check("#inpaint_full_res")
    p.evaluate(RECORD_UPLOADS)
    ui.shot("inpaint-mask")
    p.click("#generate-btn")
    ui.wait_status("done")
    jid = p.locator("#my-jobs li.job").first.get_attribute("data-id")
    _, view = http(ui.base, "GET", "/v1/jobs/" + jid)
    prm = view["params"]
    assert prm["mode"] == "img2img" and prm.get("mask")
    assert prm["inpainting_fill"] == 2 and prm["inpaint_full_res"] is True and prm["mask_blur"] == 4
    m = p.evaluate(MASK_PIXELS)
    assert (m["w"], m["h"]) == (96, 64)
    assert 0 < m["white"] < 96 * 64 / 2 and m["corner"] == 0 and m["centre"] == 255
