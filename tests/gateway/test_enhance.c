/* lf_enhance: request bodies, URLs and reply parsing for both APIs. The
 * replies are shaped as the servers document them (OpenAI's chat completion
 * object, Ollama's /api/chat answer with "stream": false), written by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "lf_enhance.h"
#include "lf_error.h"

static lf_enhance_opts_t s_opts(lf_enhance_api_t api) {
    return (lf_enhance_opts_t){.url = "http://127.0.0.1:8080", .api = api, .model = "tiny", .timeout_ms = 1000,
                               .max_chars = 20};
}

static void test_api_names(void **state) {
    (void)state;
    lf_enhance_api_t a;
    assert_int_equal(lf_enhance_api_parse("OpenAI", &a), 0);
    assert_int_equal(a, LF_ENHANCE_OPENAI);
    assert_int_equal(lf_enhance_api_parse("ollama", &a), 0);
    assert_int_equal(a, LF_ENHANCE_OLLAMA);
    assert_int_equal(lf_enhance_api_parse("vllm", &a), LF_EINVAL);
    assert_int_equal(lf_enhance_api_parse(NULL, &a), LF_EINVAL);
}

static void test_urls(void **state) {
    (void)state;
    char u[256];
    lf_enhance_opts_t o = s_opts(LF_ENHANCE_OPENAI);
    const char *cases[][3] = {
        {"openai", "http://h:1", "http://h:1/v1/chat/completions"},
        {"openai", "http://h:1/", "http://h:1/v1/chat/completions"},
        {"openai", "http://h:1/v1", "http://h:1/v1/chat/completions"},
        {"openai", "http://h:1/v1/", "http://h:1/v1/chat/completions"},
        {"openai", "https://api.example/v1/chat/completions", "https://api.example/v1/chat/completions"},
        {"openai", "http://h/openai/deployments/x/chat/completions", "http://h/openai/deployments/x/chat/completions"},
        {"ollama", "http://h:11434", "http://h:11434/api/chat"},
        {"ollama", "http://h:11434/api/chat", "http://h:11434/api/chat"},
        {"ollama", "http://h:11434/api/chat/", "http://h:11434/api/chat"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(lf_enhance_api_parse(cases[i][0], &o.api), 0);
        o.url = cases[i][1];
        assert_int_equal(lf_enhance_url(&o, u, sizeof u), 0);
        assert_string_equal(u, cases[i][2]);
    }
    char small[10];
    o.url = "http://a-long-host:11434";
    assert_int_equal(lf_enhance_url(&o, small, sizeof small), LF_EOVERFLOW);
}

static void test_body_openai(void **state) {
    (void)state;
    lf_enhance_opts_t o = s_opts(LF_ENHANCE_OPENAI);
    o.system = "be brief";
    char *b = NULL;
    assert_int_equal(lf_enhance_body(&o, "a cat", "make it blue", &b), 0);
    json_t *j = json_loads(b, 0, NULL);
    free(b);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "tiny");
    assert_true(json_is_false(json_object_get(j, "stream")));
    assert_int_equal(json_integer_value(json_object_get(j, "max_tokens")), LF_ENHANCE_MAX_TOKENS);
    assert_null(json_object_get(j, "options"));
    json_t *m = json_object_get(j, "messages");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "role")), "system");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "content")), "be brief");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "role")), "user");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")),
                        "Instruction: make it blue\n\nPrompt: a cat");
    json_decref(j);
    /* No model, no instruction, the built-in system prompt. */
    o.model = NULL, o.system = NULL;
    assert_int_equal(lf_enhance_body(&o, "a \"cat\"\n", "", &b), 0);
    j = json_loads(b, 0, NULL);
    free(b);
    assert_null(json_object_get(j, "model"));
    m = json_object_get(j, "messages");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "content")), lf_enhance_default_system);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 1), "content")), "Prompt: a \"cat\"\n");
    json_decref(j);
    assert_int_equal(lf_enhance_body(&o, NULL, NULL, &b), LF_EINVAL);
}

static void test_body_ollama(void **state) {
    (void)state;
    lf_enhance_opts_t o = s_opts(LF_ENHANCE_OLLAMA);
    char *b = NULL;
    assert_int_equal(lf_enhance_body(&o, "a dog", NULL, &b), 0);
    json_t *j = json_loads(b, 0, NULL);
    free(b);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "tiny");
    assert_true(json_is_false(json_object_get(j, "stream")));
    assert_null(json_object_get(j, "max_tokens"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "options"), "num_predict")),
                     LF_ENHANCE_MAX_TOKENS);
    json_decref(j);
}

/* Parses body with status; returns the code, fills text/err. */
static int s_parse(lf_enhance_api_t api, long status, const char *body, char **text, char *err) {
    lf_enhance_opts_t o = s_opts(api);
    *text = NULL;
    err[0] = 0;
    return lf_enhance_parse(&o, status, body, body ? strlen(body) : 0, text, err, 256);
}

static void test_parse_ok(void **state) {
    (void)state;
    char *t, err[256];
    /* OpenAI's chat.completion object. */
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200,
                             "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"tiny\","
                             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                             "\"  \\\"a blue cat\\\"\\n\"},\"finish_reason\":\"stop\"}],"
                             "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4,\"total_tokens\":9}}",
                             &t, err),
                     0);
    assert_string_equal(t, "a blue cat");
    free(t);
    /* A small model's noise: \u0000 (transformers serve sends it) is a blank, not the end. */
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 200, "{\"message\":{\"content\":\"a\\u0000b\"}}", &t, err), 0);
    assert_string_equal(t, "a b");
    free(t);
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "data: {\"choices\":[{\"delta\":{\"content\":\"x\\u0000y\"}}]}\n", &t, err), 0);
    assert_string_equal(t, "x y");
    free(t);
    /* Ollama's /api/chat answer. */
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 200,
                             "{\"model\":\"tiny\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{\"role\":"
                             "\"assistant\",\"content\":\"<think>hmm, cats</think>\\n\\u00e9t\\u00e9 cat\"},"
                             "\"done\":true,\"total_duration\":1}",
                             &t, err),
                     0);
    assert_string_equal(t, "\xc3\xa9t\xc3\xa9 cat");
    free(t);
    /* 20 characters is the limit here: 20 two-byte characters pass. */
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 200,
                             "{\"message\":{\"content\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                             "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}}",
                             &t, err),
                     0);
    assert_int_equal(strlen(t), 40);
    free(t);
}

/* Answers streamed although "stream" was false: transformers serve 4.56
 * sends server-sent events (this body is its shape: a role chunk, content
 * chunks, a finish chunk; then [DONE] as OpenAI sends it); Ollama streams
 * JSON lines. Control characters become blanks. */
static void test_parse_streams(void **state) {
    (void)state;
    char *t, err[256];
    const char *sse =
        "data: {\"id\":\"req_0\",\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"index\":0}],"
        "\"object\":\"chat.completion.chunk\"}\n\n"
        "data: {\"id\":\"req_0\",\"choices\":[{\"delta\":{\"content\":\" a blue\\u0003\"},\"index\":0}]}\n\n"
        ": keep-alive comment\n\n"
        "data: {\"id\":\"req_0\",\"choices\":[{\"delta\":{\"content\":\"cat \"},\"index\":0}]}\n\n"
        "data: {\"id\":\"req_0\",\"choices\":[{\"delta\":{},\"index\":0,\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"after done\"}}]}\n\n";
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, sse, &t, err), 0);
    assert_string_equal(t, "a blue cat");
    free(t);
    const char *nd = "{\"message\":{\"role\":\"assistant\",\"content\":\"a \"},\"done\":false}\n"
                     "{\"message\":{\"role\":\"assistant\",\"content\":\"red fox\"},\"done\":false}\n"
                     "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true}\n";
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 200, nd, &t, err), 0);
    assert_string_equal(t, "a red fox");
    free(t);
    /* A stream without any content is not an answer. */
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "data: {\"choices\":[]}\n\ndata: [DONE]\n", &t, err), LF_EPROTO);
    assert_null(t);
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "event: x\n\n", &t, err), LF_EPROTO);
}

static void test_parse_faults(void **state) {
    (void)state;
    char *t, err[256];
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 500, "{\"error\":{\"message\":\"model not loaded\",\"type\":\"x\"}}",
                             &t, err),
                     LF_EIO);
    assert_null(t);
    assert_string_equal(err, "the enhancement endpoint answered HTTP 500: model not loaded");
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 404, "{\"error\":\"model 'x' not found\"}", &t, err), LF_EIO);
    assert_string_equal(err, "the enhancement endpoint answered HTTP 404: model 'x' not found");
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 502, "<html>bad gateway</html>", &t, err), LF_EIO);
    assert_string_equal(err, "the enhancement endpoint answered HTTP 502");
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "{\"choices\":[{\"message\":{\"content\":\"a ca", &t, err),
                     LF_EPROTO);
    assert_non_null(strstr(err, "not JSON"));
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, NULL, &t, err), LF_EPROTO);
    /* The other API's shape is not this one's. */
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "{\"message\":{\"content\":\"x\"}}", &t, err), LF_EPROTO);
    assert_string_equal(err, "the enhancement endpoint's answer has no choices[0].message.content");
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 200, "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}", &t, err),
                     LF_EPROTO);
    assert_string_equal(err, "the enhancement endpoint's answer has no message.content");
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "{\"choices\":[{\"message\":{\"content\":null}}]}", &t, err),
                     LF_EPROTO);
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "{\"error\":\"overloaded\"}", &t, err), LF_EPROTO);
    assert_string_equal(err, "the enhancement endpoint answered an error: overloaded");
    assert_int_equal(s_parse(LF_ENHANCE_OPENAI, 200, "{\"choices\":[{\"message\":{\"content\":\" \\n \"}}]}", &t, err),
                     LF_EFORMAT);
    assert_string_equal(err, "the enhancement endpoint answered an empty prompt");
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 200, "{\"message\":{\"content\":\"\\\"\\\"\"}}", &t, err), LF_EFORMAT);

    /* 21 characters: over the limit of 20. */
    assert_int_equal(s_parse(LF_ENHANCE_OLLAMA, 200, "{\"message\":{\"content\":\"abcdefghijklmnopqrstu\"}}", &t, err),
                     LF_ETOOBIG);
    assert_null(t);
    assert_string_equal(err, "the enhanced prompt has 21 characters; the limit is 20");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_names),   cmocka_unit_test(test_urls),        cmocka_unit_test(test_body_openai),
        cmocka_unit_test(test_body_ollama), cmocka_unit_test(test_parse_ok), cmocka_unit_test(test_parse_streams),
        cmocka_unit_test(test_parse_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
