"""What a new user meets first: the farm's own presets, offered only where they fit the selected
model; an example prompt the selected model can draw; a header busy count that follows job ends."""
import ast
import os
import random
import re
import time

from conftest import DIAG, http

TINY = "lf-tiny-shapes"
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def shapes_vocabulary():
    """The words lf-tiny-shapes was trained on, read from its dataset's source (tools/train/lf_shapes.py)."""
    with open(os.path.join(ROOT, "tools", "train", "lf_shapes.py")) as f:
        tree = ast.parse(f.read())
    v = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("COLOURS", "SIZES", "POSITION_PHRASES"):
                v[name] = [ast.literal_eval(k) for k in node.value.keys]
                if name == "POSITION_PHRASES":
                    v["PHRASES"] = [p for lst in node.value.values for p in ast.literal_eval(lst)]
            elif name == "SHAPES":
                v[name] = ast.literal_eval(node.value)
    return v


def open_with(ui, model):
    p = ui.open().page
    p.wait_for_selector("#model option[value='%s']" % model, state="attached")
    p.select_option("#model", model)
    return p


def preset_values(p):
    return p.locator("#preset-select option").evaluate_all(
        "os => os.filter(o => o.value).map(o => ({value: o.value, text: o.textContent, disabled: o.disabled}))")


def size(p):
    return int(p.input_value("#width")), int(p.input_value("#height"))


def wait_idle(base, timeout=120):
    """Until no job is queued or running (jobs of earlier tests), so the busy count is this test's."""
    end = time.time() + timeout
    while time.time() < end:
        if http(base, "GET", "/v1/jobs")[1].get("total") == 0:
            return
        time.sleep(0.2)
    raise AssertionError("the farm did not become idle")


def served_by_tiny(w, h):
    # modelfit.js: sides from half to 1.5x the training side (256), at most 1.5x its area.
    return 128 <= w <= 384 and 128 <= h <= 384 and w * h <= 1.5 * 256 * 256


def test_presets_are_the_farms_own(ui):
    """One set of presets: what GET /v1/presets lists, no page-only extras."""
    p = ui.open().page
    p.wait_for_selector("#preset-select option[value='b:diagnostic']", state="attached")
    _, r = http(ui.base, "GET", "/v1/presets")
    want = sorted(("b:" if x.get("builtin") else "s:") + x["name"] for x in r["presets"])
    assert sorted(o["value"] for o in preset_values(p)) == want


def test_presets_fit_the_selected_model(ui):
    big = "webtest-big-%06d" % random.randrange(10**6)
    gone = "webtest-gone-%06d" % random.randrange(10**6)
    assert http(ui.base, "POST", "/v1/presets", {"name": big, "params": {"width": 1024, "height": 1024, "steps": 25}})[0] == 201
    assert http(ui.base, "POST", "/v1/presets", {"name": gone, "params": {"model": "no-such-model", "steps": 5}})[0] == 201
    try:
        p = open_with(ui, TINY)
        p.wait_for_selector("#preset-select option[value='s:%s']" % big, state="attached")
        opts = {o["value"]: o for o in preset_values(p)}
        # 1024x1024 is not for a model trained at 256: listed, disabled, with the reason.
        assert opts["s:" + big]["disabled"], opts["s:" + big]
        assert TINY in opts["s:" + big]["text"] and "1024×1024" in opts["s:" + big]["text"]
        # A preset naming a model no worker serves says so.
        assert opts["s:" + gone]["disabled"] and "no-such-model" in opts["s:" + gone]["text"]
        ui.shot("presets-for-tiny-shapes", full_page=False)

        # Every preset offered with lf-tiny-shapes selected leaves a size its model serves.
        for value in [v for v, o in opts.items() if not o["disabled"]]:
            p.select_option("#model", TINY)
            p.fill("#width", "256")
            p.fill("#height", "256")
            p.select_option("#preset-select", value)
            p.click("#preset-apply")
            w, h = size(p)
            if p.input_value("#model") == TINY:
                assert served_by_tiny(w, h), (value, w, h)
            if value == "b:portrait":  # the aspect at the model's own size
                assert (w, h) == (208, 312), (w, h)
            if value in ("b:fast", "b:quality"):  # they leave the size alone
                assert (w, h) == (256, 256), (value, w, h)

        # The test card draws any size: there the big preset is offered and applies.
        p.select_option("#model", DIAG)
        p.wait_for_selector("#preset-select option[value='s:%s']:not([disabled])" % big, state="attached")
        p.select_option("#preset-select", "s:" + big)
        p.click("#preset-apply")
        assert size(p) == (1024, 1024)
        # Back on lf-tiny-shapes the selection it cannot take is dropped, not kept.
        p.select_option("#preset-select", "s:" + big)
        p.select_option("#model", TINY)
        p.wait_for_selector("#preset-select option[value='s:%s'][disabled]" % big, state="attached")
        assert p.input_value("#preset-select") == ""
    finally:
        http(ui.base, "DELETE", "/v1/presets/" + big)
        http(ui.base, "DELETE", "/v1/presets/" + gone)


def test_model_fit_rules_in_the_browser(ui):
    """modelfit.js on its own: sizes per model, aspects at the model's size, a 1024² preset per model."""
    p = ui.open().page
    r = p.evaluate("""async () => {
      const m = await import('/js/modelfit.js');
      const tiny = { name: 'lf-tiny-shapes', kind: 'sd15', resolution: 256 };
      const sd15 = { name: 'sd15', kind: 'sd15' };
      const sdxl = { name: 'xl', kind: 'sdxl', resolution: 1024 };
      const diag = { name: 'lf-diagnostic', kind: 'diagnostic' };
      const square = { name: 'sq', params: { width: 1024, height: 1024 } };
      const portrait = { name: 'portrait', aspect: '2:3', params: { steps: 25 } };
      const models = [tiny, sd15, sdxl, diag];
      return {
        sd15: m.servedSizes(sd15), diag: m.servedSizes(diag),
        square: models.map((x) => m.presetFit(square, x, models).ok),
        portrait: models.map((x) => m.presetFit(portrait, x, models, { width: 512, height: 512 }).params),
        named: m.presetFit({ name: 'd', params: { model: 'lf-diagnostic', width: 2048, height: 64 } }, tiny, models),
        tooBig: m.sizeProblem(tiny, 512, 512), ok: m.sizeProblem(sd15, 512, 768),
      };
    }""")
    assert r["sd15"] == {"native": 512, "min": 256, "max": 768, "maxPixels": 1.5 * 512 * 512}
    assert r["diag"] is None
    assert r["square"] == [False, False, True, True]
    assert [(x["width"], x["height"]) for x in r["portrait"]] == [(208, 312), (416, 624), (840, 1256), (416, 624)]
    assert r["named"]["ok"] and r["named"]["model"]["name"] == DIAG
    assert "lf-tiny-shapes" in r["tooBig"] and r["ok"] is None


def test_example_prompt_fits_the_model(ui):
    v = shapes_vocabulary()
    words = set(v["COLOURS"]) | set(v["SHAPES"]) | set(v["SIZES"])
    words |= {w for ph in v["PHRASES"] for w in ph.split()} | {"a", "an", "on", "background"}
    p = open_with(ui, TINY)
    example = p.get_attribute("#prompt", "placeholder")
    assert example.startswith("e.g. "), example  # an example, not a prompt already there
    said = re.findall(r"[a-z]+", example[5:].lower())
    assert set(said) <= words, (example, set(said) - words)
    assert set(said) & set(v["COLOURS"]) and set(said) & set(v["SHAPES"]), example
    # No photographic negative prompt either ("blurry, low quality" means nothing to it).
    assert "blurry" not in p.get_attribute("#negative_prompt", "placeholder")
    # A line under the box tells what it draws: every shape it knows.
    assert p.is_visible("#prompt-hint")
    hint = p.text_content("#prompt-hint")
    assert all(s in hint for s in v["SHAPES"]), hint
    ui.shot("example-prompt-tiny-shapes", full_page=False)
    # The test card: no picture promised; other models keep generic examples.
    p.select_option("#model", DIAG)
    assert p.get_attribute("#prompt", "placeholder") != example
    other = p.evaluate("""async () => (await import('/js/examples.js')).promptHelp({ name: 'some-sd15', kind: 'sd15' })""")
    assert not set(re.findall(r"[a-z]+", other["placeholder"])) & set(v["SHAPES"]), other
    assert other["hint"] == "" and "blurry" in other["negative"]


def test_header_busy_count_settles_when_a_job_ends(ui):
    """The worker registry (/v1/workers) is rewritten once per broker heartbeat, so for a while after a
    job ends it still names that job. Here the registry is held at that state for good: the header must
    follow the job's own state, not wait for the registry."""
    p = ui.page
    held = {}  # worker id -> job id the registry keeps naming after the job ended

    def workers(route):
        try:
            resp = route.fetch()
            data = resp.json()
        except Exception:  # the page is closing with a poll in flight
            return
        for w in data.get("workers", []):
            if not w.get("job") and w.get("id") in held:
                w["job"] = held[w["id"]]
        route.fulfill(response=resp, json=data)

    wait_idle(ui.base)
    p.route("**/v1/workers", workers)
    try:
        ui.open()
        ui.use_diagnostic(steps=12, delay=250, prompt="busy count")
        p.click("#generate-btn")
        p.wait_for_selector("#my-jobs li.job")
        jid = p.get_attribute("#my-jobs li.job", "data-id")
        p.wait_for_function("/ [1-9][0-9]* busy/.test(document.getElementById('farm-summary').textContent)")
        _, job = http(ui.base, "GET", "/v1/jobs/" + jid)
        assert job.get("worker"), job
        held[job["worker"]] = jid  # from now on the registry names this job until the test ends
        ui.wait_status("done")
        assert http(ui.base, "GET", "/v1/jobs/" + jid)[1]["status"] == "done"
        p.click("#farm-pill")  # opens the Farm tab, which polls at once
        p.wait_for_function("document.getElementById('farm-summary').textContent.includes('0 busy')")
        card = p.locator("#workers article.worker", has_text=job["worker"])
        assert card.get_attribute("aria-label").endswith("idle")
        ui.shot("busy-settled", full_page=False)
    finally:
        p.unroute_all(behavior="ignoreErrors")  # a poll may still be in the handler
