"""Prompt enhancement in the UI: the "Enhance prompt" checkbox and its instruction (what the form
sends), the note when the farm has no LLM endpoint (this farm sets no LF_ENHANCE_URL: the job runs
with the original prompt and says why), and the enhanced prompt under the result with "Use it"
(the job's done event is replaced by the test with a view that carries prompt_original, as an
enhanced job's does; gateway.enhance_farm tests the gateway's side).
"""
import json


def sse(route, event, data):
    """Answers an events request with one event (the stream then ends)."""
    route.fulfill(status=200, content_type="text/event-stream",
                  body="retry: 2000\n\nevent: %s\ndata: %s\n\n" % (event, json.dumps(data)))


def generate_enhanced(p, prompt):
    p.check("#enhance_prompt")
    p.fill("#prompt", prompt)
    p.click("#generate-btn")


def test_enhance_checkbox_sends_the_fields(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=2, delay=0)
    assert p.is_visible("#enhance_prompt") and p.is_hidden("#enhance_instruction")
    p.check("#enhance_prompt")
    assert p.is_visible("#enhance_instruction")
    p.fill("#enhance_instruction", "make it a watercolour")
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
    assert sent and sent[0]["enhance_prompt"] is True and sent[0]["enhance_instruction"] == "make it a watercolour"
    p.unroute("**/v1/jobs")
    p.uncheck("#enhance_prompt")
    assert p.is_hidden("#enhance_instruction")


def test_no_endpoint_note(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=2, delay=0)
    p.check("#enhance_prompt")
    p.fill("#prompt", "a red kite")
    p.click("#generate-btn")
    ui.wait_status("done")
    p.wait_for_selector("#enhance-note:not([hidden])")
    assert "no enhancement endpoint is configured" in p.text_content("#enhance-note")
    assert p.is_hidden("#enhanced-box")


def test_enhanced_prompt_use_it(ui):
    p = ui.open().page
    ui.use_diagnostic(steps=2, delay=0)

    def events(route):
        jid = route.request.url.split("/v1/jobs/")[1].split("/")[0]
        view = {"id": jid, "status": "done", "params": {
            "prompt": "a red kite over dunes, golden hour, highly detailed", "prompt_original": "a red kite",
            "enhance_prompt": True, "steps": 2},
            # An image, so that the watcher takes this view as it is (the real job's, made meanwhile).
            "result": {"images": [{"index": 0, "url": "/v1/images/%s-0.png" % jid, "seed": 1, "width": 256,
                                   "height": 256}], "info": {}}}
        sse(route, "done", view)
    p.route("**/v1/jobs/*/events*", events)
    generate_enhanced(p, "a red kite")
    p.wait_for_selector("#enhanced-box:not([hidden])")
    assert p.text_content("#enhanced-text") == "a red kite over dunes, golden hour, highly detailed"
    assert p.text_content("#enhanced-original") == "a red kite"
    ui.shot("enhanced-prompt", full_page=False)
    p.click("#enhanced-use")
    assert p.input_value("#prompt") == "a red kite over dunes, golden hour, highly detailed"
    assert not p.is_checked("#enhance_prompt")


def test_enhancing_stage_shown(ui):
    # The enhancing stage (the farm's LLM rewrites the prompt before the job is queued). This farm
    # has no LLM, so the test shows the job as an enhancing job's answers read: the 202 says
    # "enhancing", and so do its view and events, until the test lets the real ones through
    # (gateway.enhance_farm tests the gateway's side of the stage).
    p = ui.open().page
    ui.use_diagnostic(steps=2, delay=0)
    held = {"on": True}

    def submit(route):
        if route.request.method != "POST":
            return route.continue_()
        resp = route.fetch()
        body = resp.json()
        body.update(status="enhancing", position=None)
        route.fulfill(response=resp, json=body)

    def view(route):
        if not held["on"] or route.request.method != "GET":
            return route.continue_()
        jid = route.request.url.split("/v1/jobs/")[1].split("?")[0]
        route.fulfill(status=200, json={"id": jid, "status": "enhancing", "position": None,
                                        "params": {"prompt": "a red kite", "enhance_prompt": True}})

    def events(route):
        if not held["on"]:
            return route.continue_()
        jid = route.request.url.split("/v1/jobs/")[1].split("/")[0]
        sse(route, "enhancing", {"id": jid, "status": "enhancing", "position": None, "params": {"prompt": "a red kite"}})
    p.route("**/v1/jobs", submit)
    p.route("**/v1/jobs/*", view)
    p.route("**/v1/jobs/*/events*", events)
    generate_enhanced(p, "a red kite")
    ui.wait_status("enhancing")
    assert p.text_content("#canvas-msg") == "Enhancing prompt…"
    assert p.text_content("#progress-steps") == "Enhancing prompt…"
    p.wait_for_selector("#my-jobs li[data-status='enhancing'] .st.enhancing")
    assert p.text_content("#my-jobs li[data-status='enhancing'] .st.enhancing") == "enhancing prompt…"
    ui.shot("enhancing", full_page=False)
    held["on"] = False  # the routes let the real answers through from now on
    ui.wait_status("done")
    p.wait_for_selector("#enhance-note:not([hidden])")
    assert "no enhancement endpoint is configured" in p.text_content("#enhance-note")
