"""Keyboard-only use, 360 px width, themes, the API key, and the Farm panel."""
import os

import pytest

from conftest import DIAG

FOCUS_RING = """() => {
  const s = getComputedStyle(document.activeElement);
  return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 1;
}"""


def tab_to(page, selector, limit=80, backwards=False):
    """Presses Tab until the focused element matches selector (keyboard-only navigation)."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError("Tab never reached %s (at %s)" % (
        selector, page.evaluate("document.activeElement.outerHTML.slice(0, 120)")))


def test_keyboard_only(ui):
    p = ui.open().page
    # First Tab: the skip link, visibly focused; Enter jumps to the prompt.
    p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.className") == "skip-link"
    assert p.evaluate(FOCUS_RING)
    p.keyboard.press("Enter")
    p.wait_for_function("document.activeElement.id === 'prompt'")
    p.keyboard.type("keyboard only: a fox in the snow")
    # Model: typeahead on the focused select.
    tab_to(p, "#model")
    assert p.evaluate(FOCUS_RING)
    p.keyboard.type("lf-d")
    assert p.input_value("#model") == DIAG
    tab_to(p, "#steps")
    p.keyboard.press("Control+A")
    p.keyboard.type("12")
    tab_to(p, "#step_delay_ms")
    p.keyboard.press("Control+A")
    p.keyboard.type("20")
    # Buttons show their focus ring too.
    tab_to(p, "#seed-random")
    assert p.evaluate(FOCUS_RING)
    ui.shot("keyboard-focus", full_page=False)
    # Back to the prompt; Enter generates.
    tab_to(p, "#prompt", backwards=True)
    p.keyboard.press("Enter")
    ui.wait_status("done")
    assert p.input_value("#prompt") == "keyboard only: a fox in the snow"  # Enter did not add a newline
    # Tabs: arrow keys move between them; the History pane follows.
    tab_to(p, "[role=tab][aria-selected=true]")
    p.keyboard.press("ArrowRight")
    assert p.evaluate("document.activeElement.id") == "tab-history"
    assert p.is_visible("#pane-history")
    # Open the newest history item with Enter; Esc closes the full view and focus returns.
    p.wait_for_selector("#gallery .thumb")
    tab_to(p, "#gallery .thumb")
    thumb_id = p.evaluate("document.activeElement.dataset.id")
    p.keyboard.press("Enter")
    p.wait_for_selector("#viewer[open]")
    assert p.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    p.keyboard.press("Escape")
    p.wait_for_selector("#viewer", state="hidden")
    assert p.evaluate("document.activeElement.dataset.id") == thumb_id
    # Ctrl+Enter generates from anywhere.
    p.keyboard.press("Control+Enter")
    p.wait_for_function("document.querySelectorAll('#my-jobs li.job').length === 2")


def test_every_control_has_a_label(ui):
    p = ui.open().page
    unlabeled = p.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button, [role=button], [role=tab]')]
      .filter(e => e.getAttribute('aria-hidden') !== 'true' && e.type !== 'hidden')
      .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')
                     || (e.matches('button, [role=button], [role=tab]') && e.textContent.trim())))
      .map(e => e.id || e.outerHTML.slice(0, 80))""")
    assert unlabeled == []


def test_360px_wide(new_ui):
    u = new_ui(width=360, height=780, is_mobile=True, has_touch=True, device_scale_factor=2)
    p = u.open().page
    def no_horizontal_scroll():
        return p.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert no_horizontal_scroll(), p.evaluate("document.documentElement.scrollWidth")
    # Panels are stacked: the parameters, then the output, then the tabs, each within the width.
    boxes = p.evaluate("""() => ['.params', '.stage', '.side'].map(s => {
      const r = document.querySelector(s).getBoundingClientRect(); return [r.left, r.right, r.top]; })""")
    for left, right, _ in boxes:
        assert left >= 0 and right <= 361, boxes
    assert boxes[0][2] < boxes[1][2] < boxes[2][2], boxes
    u.shot("w360-initial")
    u.use_diagnostic(steps=10, delay=30, prompt="small screen")
    p.click("#generate-btn")
    u.wait_status("done")
    p.wait_for_function("() => document.getElementById('result-img').naturalWidth > 0")
    assert no_horizontal_scroll()
    assert p.evaluate("document.getElementById('result-img').getBoundingClientRect().right") <= 361
    u.shot("w360-done")
    p.click("#tab-farm")
    assert no_horizontal_scroll()
    p.click("#tab-history")
    p.wait_for_selector("#gallery .thumb")
    p.locator("#gallery .thumb").first.click()
    p.wait_for_selector("#viewer[open]")
    assert p.evaluate("document.getElementById('viewer').getBoundingClientRect().right") <= 361
    u.shot("w360-full-view", full_page=False)


def test_themes(new_ui):
    u = new_ui(scheme="dark")
    p = u.open().page
    # The system preference is followed ...
    assert p.evaluate("document.documentElement.dataset.theme") == "dark"
    dark_bg = p.evaluate("getComputedStyle(document.body).backgroundColor")
    u.shot("theme-dark", full_page=False)
    # ... and the toggle switches and is remembered.
    p.click("#theme-btn")
    assert p.evaluate("document.documentElement.dataset.theme") == "light"
    light_bg = p.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light_bg != dark_bg
    assert p.get_attribute("#theme-btn", "aria-label") == "Switch to dark theme"
    p.reload()
    u.open()
    assert p.evaluate("document.documentElement.dataset.theme") == "light"
    u.shot("theme-light", full_page=False)


def test_farm_panel_shows_workers_and_queue_depth(ui):
    p = ui.open().page
    p.click("#tab-farm")
    p.wait_for_selector("#workers .worker")
    cards = p.locator("#workers .worker")
    assert cards.count() >= 1
    text = cards.first.text_content()
    assert DIAG in text
    assert "jobs" in text
    for prio in ("high", "normal", "low"):
        assert p.is_visible(".depth-row[data-prio='%s']" % prio)
    # While a job runs, a worker is busy with it.
    u = ui
    u.use_diagnostic(steps=40, delay=50, prompt="busy worker")
    p.click("#generate-btn")
    u.wait_status("running")
    p.wait_for_selector("#workers .worker .state.busy", timeout=10000)
    assert "busy" in p.text_content("#farm-summary")
    u.shot("farm-busy")
    u.wait_status("done")


@pytest.mark.skipif(not os.environ.get("LF_WEB_URL_KEYED"), reason="no gateway with an API key (LF_WEB_URL_KEYED)")
def test_api_key_is_asked_for_and_kept(new_ui):
    u = new_ui(base=os.environ["LF_WEB_URL_KEYED"])
    p = u.page
    p.goto(u.base + "/")
    # The gateway answers 401: the key dialog opens.
    p.wait_for_selector("#key-dialog[open]")
    u.shot("api-key-dialog", full_page=False)
    p.wait_for_function("document.getElementById('farm-summary').textContent === 'API key required'", timeout=5000)
    p.fill("#api-key", "wrong-key")
    p.press("#api-key", "Enter")
    # A refused key: the dialog comes back and says so.
    p.wait_for_function("document.getElementById('key-why').textContent.includes('refused')")
    p.wait_for_selector("#key-dialog[open]")
    p.fill("#api-key", os.environ["LF_WEB_API_KEY"])
    p.click("#key-save")
    p.wait_for_selector("#model option[value='%s']" % DIAG, state="attached")
    assert p.evaluate("localStorage.getItem('lf.apiKey')") == os.environ["LF_WEB_API_KEY"]
    # With the key, generate and see the image (fetched with the key).
    u.use_diagnostic(steps=5, delay=10, prompt="with a key")
    p.click("#generate-btn")
    u.wait_status("done")
    p.wait_for_function("() => document.getElementById('result-img').naturalWidth > 0")
    # After a reload the stored key is used without asking.
    p.reload()
    u.open()
    assert not p.is_visible("#key-dialog")
