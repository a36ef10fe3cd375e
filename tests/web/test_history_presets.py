"""History pagination, presets through the API, and parameters read from a dropped PNG."""
import random
import re

from conftest import DIAG, drop_file, http, make_png, submit_and_wait


def test_history_pagination(ui):
    # Enough finished jobs for three pages of 6 (made through the API: fast).
    for i in range(13):
        v = submit_and_wait(ui.base, {"model": DIAG, "prompt": "history #%d" % i, "steps": 1, "width": 64,
                                      "height": 64, "step_delay_ms": 0, "seed": 1000 + i})
        assert v["status"] == "done", v
    _, h = http(ui.base, "GET", "/v1/history?offset=0&limit=1")
    total = h["total"]
    assert total >= 13
    p = ui.open().page
    p.click("#tab-history")
    p.select_option("#hist-limit", "6")
    p.wait_for_function("document.getElementById('hist-range').textContent.startsWith('1–6 of')")
    assert p.locator("#gallery .thumb").count() == 6
    assert p.is_disabled("#hist-prev")
    assert "page 1/%d" % -(-total // 6) in p.text_content("#hist-range")
    first_page = p.locator("#gallery .thumb").evaluate_all("els => els.map(e => e.dataset.id)")
    # Newest first: the last job submitted is on page 1.
    assert any("history #12" in (t or "") for t in p.locator("#gallery .thumb").evaluate_all("els => els.map(e => e.title)"))
    p.click("#hist-next")
    p.wait_for_function("document.getElementById('hist-range').textContent.startsWith('7–12 of')")
    second_page = p.locator("#gallery .thumb").evaluate_all("els => els.map(e => e.dataset.id)")
    assert len(second_page) == 6 and not set(first_page) & set(second_page)
    assert not p.is_disabled("#hist-prev")
    p.wait_for_function("[...document.querySelectorAll('#gallery .thumb img')].every(i => i.complete && i.naturalWidth > 0)")
    ui.shot("history-page2")
    p.click("#hist-prev")
    p.wait_for_function("document.getElementById('hist-range').textContent.startsWith('1–6 of')")
    # Full view on a history item; arrow keys move through the page.
    p.locator("#gallery .thumb").first.click()
    p.wait_for_selector("#viewer[open]")
    assert p.text_content("#viewer-sub").startswith("1 / ")
    p.keyboard.press("ArrowRight")
    assert p.text_content("#viewer-sub").startswith("2 / ")
    p.keyboard.press("Escape")
    p.wait_for_selector("#viewer", state="hidden")


def test_preset_round_trip(ui):
    name = "webtest-%06d" % random.randrange(10**6)
    p = ui.open().page
    ui.use_diagnostic(steps=7, delay=30, prompt="a preset prompt, watercolor")
    p.fill("#negative_prompt", "photo")
    p.fill("#width", "640")
    p.fill("#height", "448")
    p.select_option("#priority", "low")
    # A name with spaces is refused at the name field, before the API.
    p.fill("#preset-name", "has spaces")
    p.click("#preset-save")
    assert p.is_visible("#err-name")
    p.fill("#preset-name", name)
    p.press("#preset-name", "Enter")  # Enter saves the preset (it does not generate)
    p.wait_for_selector("#preset-select option[value='s:%s']" % name, state="attached")
    assert p.locator("#my-jobs li.job").count() == 0
    status, stored = http(ui.base, "GET", "/v1/presets/" + name)
    assert status == 200 and stored["params"]["prompt"] == "a preset prompt, watercolor", stored
    assert stored["params"]["steps"] == 7

    # Load it into a changed form, after a reload (it lives on the farm, not in the page).
    p.reload()
    ui.open()
    p.fill("#prompt", "changed")
    p.fill("#steps", "30")
    p.select_option("#preset-select", "s:" + name)
    p.click("#preset-apply")
    assert p.input_value("#prompt") == "a preset prompt, watercolor"
    assert p.input_value("#negative_prompt") == "photo"
    assert p.input_value("#steps") == "7"
    assert (p.input_value("#width"), p.input_value("#height")) == ("640", "448")
    assert p.input_value("#priority") == "low"
    assert p.input_value("#model") == DIAG
    ui.shot("preset-loaded", full_page=False)

    # Built-in presets are there and cannot be deleted.
    builtin = p.locator("#preset-select optgroup[label='Built-in'] option").first.get_attribute("value")
    p.select_option("#preset-select", builtin)
    assert p.is_disabled("#preset-delete")
    p.click("#preset-apply")

    # Delete.
    p.select_option("#preset-select", "s:" + name)
    assert not p.is_disabled("#preset-delete")
    p.click("#preset-delete")
    p.wait_for_selector("#preset-select option[value='s:%s']" % name, state="detached")
    status, _ = http(ui.base, "GET", "/v1/presets/" + name)
    assert status == 404


A1111_TEXT = ("a castle in the clouds, (masterpiece:1.2)\n"
              "Negative prompt: lowres, watermark\n"
              "Steps: 23, Sampler: Euler a, Schedule type: Karras, CFG scale: 6.5, Seed: 123456789, "
              "Size: 640x384, Model hash: abcdef12, Model: lf-diagnostic, Lora hashes: \"a: 1, b: 2\", Version: v1.9")


def test_parameters_read_from_a_dropped_png(ui):
    p = ui.open().page
    p.click("#tab-history")
    drop_file(p, "#png-drop", make_png(8, 8, text={"parameters": A1111_TEXT}), "a1111.png")
    p.wait_for_selector("#png-info:not([hidden])")
    assert p.input_value("#prompt") == "a castle in the clouds, (masterpiece:1.2)"
    assert p.input_value("#negative_prompt") == "lowres, watermark"
    assert p.input_value("#steps") == "23"
    assert float(p.input_value("#cfg_scale")) == 6.5
    assert p.input_value("#seed") == "123456789"
    assert (p.input_value("#width"), p.input_value("#height")) == ("640", "384")
    assert p.input_value("#scheduler") == "karras"
    assert re.fullmatch(r"euler_(a|ancestral)", p.input_value("#sampler")), p.input_value("#sampler")
    assert p.input_value("#model") == DIAG
    assert "Steps: 23" in p.text_content("#png-info-text")
    ui.shot("png-parameters")
    # A PNG without parameters says so (and changes nothing).
    drop_file(p, "#png-drop", make_png(8, 8), "plain.png")
    p.wait_for_selector(".toast.error")
    assert p.input_value("#steps") == "23"


def test_a_result_png_round_trips_its_parameters(ui):
    """An image the farm made carries A1111 "parameters": dropping it restores the form.
    (The diagnostic model's text has prompt, negative prompt, steps, seed, size, model and step delay.)"""
    v = submit_and_wait(ui.base, {"model": DIAG, "prompt": "round trip, a blue door", "negative_prompt": "rust",
                                  "steps": 9, "width": 192, "height": 128, "seed": 777, "step_delay_ms": 10})
    assert v["status"] == "done", v
    status, png = http(ui.base, "GET", v["result"]["images"][0]["url"])
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    p = ui.open().page
    p.click("#tab-history")
    drop_file(p, "#png-drop", png, "result.png")
    p.wait_for_selector("#png-info:not([hidden])")
    assert p.input_value("#prompt") == "round trip, a blue door"
    assert p.input_value("#negative_prompt") == "rust"
    assert p.input_value("#steps") == "9"
    assert p.input_value("#seed") == "777"
    assert (p.input_value("#width"), p.input_value("#height")) == ("192", "128")
    assert p.input_value("#model") == DIAG
    assert p.input_value("#step_delay_ms") == "10"


def test_pngmeta_parser_in_the_browser(ui):
    """The PNG text reader and A1111 parser on their own (tEXt, zTXt, old-style sampler names)."""
    import base64
    p = ui.open().page
    old_style = "portrait\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 5, Size: 512x768"
    png = make_png(4, 4, ztxt={"parameters": old_style})
    r = p.evaluate("""async (b64) => {
      const m = await import('/js/pngmeta.js');
      const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
      const text = await m.readPngText(bytes);
      let notPng = null;
      try { await m.readPngText(new Uint8Array([1, 2, 3])); } catch (e) { notPng = e.message; }
      const multi = m.parseA1111('line one\\nline two\\nNegative prompt: neg one\\nneg two\\nSteps: 4, Seed: -1');
      return { parsed: m.parseA1111(text.parameters), notPng, multi, empty: m.parseA1111(''),
               noSettings: m.parseA1111('just a prompt') };
    }""", base64.b64encode(png).decode())
    assert r["parsed"]["sampler"] == "DPM++ 2M" and r["parsed"]["scheduler"] == "Karras"
    assert r["parsed"]["steps"] == 30 and r["parsed"]["width"] == 512 and r["parsed"]["height"] == 768
    assert r["notPng"] == "not a PNG file"
    assert r["multi"]["prompt"] == "line one\nline two"
    assert r["multi"]["negative_prompt"] == "neg one\nneg two"
    assert r["empty"] is None
    assert r["noSettings"]["prompt"] == "just a prompt"
