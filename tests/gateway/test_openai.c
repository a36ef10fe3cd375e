/* test_openai: the OpenAI images API mapping (lf_openai_map) from tables:
 * OpenAI bodies -> native job bodies, every refusal names the OpenAI
 * parameter (size, n, prompt, ...), the native limits apply through
 * lf_validate_job, edits' form fields are typed, GET /v1/models' "data" and
 * the error shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_multipart.h"
#include "lf_openai_map.h"

static json_t *s_json(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* The farm of the tests: the default model is sd15 (trained at 512), and
 * tiny (trained at 256) and the diagnostic are installed. */
static json_t *s_models(void) {
    return s_json("[{\"name\":\"sd15\",\"kind\":\"sd1\",\"resolution\":512},"
                  "{\"name\":\"tiny\",\"kind\":\"sd1\",\"resolution\":256},"
                  "{\"name\":\"lf-diagnostic\",\"kind\":\"diagnostic\"}]");
}

static lf_openai_ctx_t s_ctx(const json_t *models) {
    return (lf_openai_ctx_t){.default_model = "sd15", .models = models, .random_seed = 4242};
}

/* Map `in` and compare the native body with `want` (JSON equality). */
static void s_expect_native(const lf_openai_ctx_t *ctx, const char *in, const char *want, lf_openai_format_t fmt) {
    json_t *body = s_json(in), *exp = s_json(want), *native = (json_t *)0x1;
    lf_openai_format_t got = (lf_openai_format_t)-1;
    lf_verr_t e = {0};
    int rc = lf_openai_map_body(body, ctx, &native, &got, &e);
    if (rc) fail_msg("%s: refused on %s: %s", in, e.field, e.message);
    if (!json_equal(native, exp)) {
        char *t = json_dumps(native, JSON_SORT_KEYS);
        fail_msg("%s\n  mapped to %s\n  expected  %s", in, t, want);
    }
    assert_int_equal(got, fmt);
    json_decref(native);
    json_decref(exp);
    json_decref(body);
}

static void test_generation_maps_to_native(void **state) {
    json_t *models = s_models();
    lf_openai_ctx_t ctx = s_ctx(models);
    /* The model's resolution is the default size; OpenAI's model names mean
     * the default model; url is OpenAI's default format. */
    s_expect_native(&ctx, "{\"prompt\":\"a cat\"}", "{\"prompt\":\"a cat\",\"width\":512,\"height\":512}", LF_OPENAI_URL);
    s_expect_native(&ctx, "{\"prompt\":\"a\",\"model\":\"dall-e-3\",\"response_format\":\"b64_json\"}",
                    "{\"prompt\":\"a\",\"width\":512,\"height\":512}", LF_OPENAI_B64_JSON);
    s_expect_native(&ctx, "{\"prompt\":\"a\",\"model\":\"gpt-image-1\",\"response_format\":\"url\"}",
                    "{\"prompt\":\"a\",\"width\":512,\"height\":512}", LF_OPENAI_URL);
    s_expect_native(&ctx, "{\"prompt\":\"a\",\"model\":\"tiny\"}",
                    "{\"prompt\":\"a\",\"model\":\"tiny\",\"width\":256,\"height\":256}", LF_OPENAI_URL);
    /* No resolution known: the native default applies. */
    s_expect_native(&ctx, "{\"prompt\":\"a\",\"model\":\"lf-diagnostic\"}",
                    "{\"prompt\":\"a\",\"model\":\"lf-diagnostic\"}", LF_OPENAI_URL);
    s_expect_native(&ctx, "{\"prompt\":\"a\",\"size\":\"auto\",\"model\":\"tiny\"}",
                    "{\"prompt\":\"a\",\"model\":\"tiny\",\"width\":256,\"height\":256}", LF_OPENAI_URL);
    /* n, size, the ignored fields and our extensions. */
    s_expect_native(&ctx,
                    "{\"prompt\":\"p\",\"n\":3,\"size\":\"768x512\",\"quality\":\"hd\",\"style\":\"vivid\","
                    "\"user\":\"u1\",\"moderation\":\"low\",\"output_format\":\"png\",\"negative_prompt\":\"blur\","
                    "\"stream\":false,\"background\":\"opaque\",\"safety_identifier\":\"s\",\"output_compression\":50,"
                    "\"steps\":12,\"seed\":7,\"cfg_scale\":5.5,\"sampler\":\"Euler a\",\"scheduler\":\"karras\","
                    "\"clip_skip\":2,\"rng\":\"philox\"}",
                    "{\"prompt\":\"p\",\"batch_size\":3,\"width\":768,\"height\":512,\"negative_prompt\":\"blur\","
                    "\"steps\":12,\"seed\":7,\"cfg_scale\":5.5,\"sampler\":\"Euler a\",\"scheduler\":\"karras\","
                    "\"clip_skip\":2,\"rng\":\"philox\"}",
                    LF_OPENAI_URL);
    /* SDXL's refiner and a VAE ride along too. */
    s_expect_native(&ctx, "{\"prompt\":\"a\",\"model\":\"tiny\",\"vae\":\"v\",\"refiner_checkpoint\":\"r\",\"refiner_switch_at\":0.7}",
                    "{\"prompt\":\"a\",\"model\":\"tiny\",\"width\":256,\"height\":256,\"vae\":\"v\","
                    "\"refiner_checkpoint\":\"r\",\"refiner_switch_at\":0.7}", LF_OPENAI_URL);
    /* null is absent, as in the native API. */
    s_expect_native(&ctx, "{\"prompt\":\"a\",\"n\":null,\"size\":null,\"style\":null,\"response_format\":null}",
                    "{\"prompt\":\"a\",\"width\":512,\"height\":512}", LF_OPENAI_URL);
    json_decref(models);
}

static void test_edit_maps_to_img2img(void **state) {
    json_t *models = s_models();
    lf_openai_ctx_t ctx = s_ctx(models);
    ctx.init_image = "up-1";
    ctx.image_width = 300;
    ctx.image_height = 200;
    /* The input's size rounded down to a multiple of 8 is the default. */
    s_expect_native(&ctx, "{\"prompt\":\"red\"}",
                    "{\"prompt\":\"red\",\"width\":296,\"height\":200,\"init_image\":\"up-1\"}", LF_OPENAI_URL);
    s_expect_native(&ctx, "{\"prompt\":\"red\",\"size\":\"256x256\",\"denoise\":0.4,\"response_format\":\"b64_json\"}",
                    "{\"prompt\":\"red\",\"width\":256,\"height\":256,\"denoise\":0.4,\"init_image\":\"up-1\"}",
                    LF_OPENAI_B64_JSON);
    /* An input the native limits refuse: the model's resolution instead. */
    ctx.image_width = 4000;
    s_expect_native(&ctx, "{\"prompt\":\"red\",\"model\":\"tiny\"}",
                    "{\"prompt\":\"red\",\"model\":\"tiny\",\"width\":256,\"height\":256,\"init_image\":\"up-1\"}",
                    LF_OPENAI_URL);
    /* The diagnostic takes small sizes. */
    ctx.image_width = ctx.image_height = 20;
    s_expect_native(&ctx, "{\"prompt\":\"x\",\"model\":\"lf-diagnostic\"}",
                    "{\"prompt\":\"x\",\"model\":\"lf-diagnostic\",\"width\":16,\"height\":16,\"init_image\":\"up-1\"}",
                    LF_OPENAI_URL);
    json_decref(models);
}

/* A body that must fail naming `param` with `code`. */
typedef struct {
    const char *body, *param, *code;
} s_bad_t;

static const s_bad_t s_bad[] = {
    /* The mapping's own checks. */
    {"{}", "prompt", "missing_field"},
    {"{\"prompt\":null}", "prompt", "missing_field"},
    {"{\"prompt\":5}", "prompt", "invalid_type"},
    {"{\"prompt\":\"a\",\"bogus\":1}", "bogus", "unknown_field"},
    {"{\"prompt\":\"a\",\"width\":512}", "width", "unknown_field"},
    {"{\"prompt\":\"a\",\"batch_size\":2}", "batch_size", "unknown_field"},
    {"{\"prompt\":\"a\",\"init_image\":\"x\"}", "init_image", "unknown_field"},
    {"{\"prompt\":\"a\",\"denoise\":0.5}", "denoise", "unknown_field"},
    {"{\"prompt\":\"a\",\"size\":\"512\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\"512x\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\"x512\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\"-8x512\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\"512x512x3\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\"999999x512\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\" 512x512\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":512}", "size", "invalid_type"},
    {"{\"prompt\":\"a\",\"response_format\":\"png\"}", "response_format", "invalid_value"},
    {"{\"prompt\":\"a\",\"response_format\":1}", "response_format", "invalid_value"},
    {"{\"prompt\":\"a\",\"output_format\":\"jpeg\"}", "output_format", "invalid_value"},
    {"{\"prompt\":\"a\",\"model\":7}", "model", "invalid_type"},
    {"{\"prompt\":\"a\",\"stream\":true}", "stream", "invalid_value"},
    {"{\"prompt\":\"a\",\"background\":\"transparent\"}", "background", "invalid_value"},
    {"{\"prompt\":\"a\",\"partial_images\":2}", "partial_images", "unknown_field"},
    /* The native limits, renamed. */
    {"{\"prompt\":\"a\",\"size\":\"100x512\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\"512x100\"}", "size", "invalid_value"},
    {"{\"prompt\":\"a\",\"size\":\"4096x4096\"}", "size", "out_of_range"},
    {"{\"prompt\":\"a\",\"size\":\"32x32\"}", "size", "out_of_range"},
    {"{\"prompt\":\"a\",\"n\":0}", "n", "out_of_range"},
    {"{\"prompt\":\"a\",\"n\":9}", "n", "out_of_range"},
    {"{\"prompt\":\"a\",\"n\":\"2\"}", "n", "invalid_type"},
    {"{\"prompt\":\"a\",\"steps\":0}", "steps", "out_of_range"},
    {"{\"prompt\":\"a\",\"seed\":-2}", "seed", "out_of_range"},
    {"{\"prompt\":\"a\",\"cfg_scale\":\"x\"}", "cfg_scale", "invalid_type"},
    {"{\"prompt\":\"a\",\"sampler\":\"warp\"}", "sampler", "invalid_value"},
    {"{\"prompt\":\"a\",\"model\":\"\"}", "model", "invalid_value"},
};

static void test_refusals_name_the_param(void **state) {
    json_t *models = s_models();
    lf_openai_ctx_t ctx = s_ctx(models);
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++) {
        json_t *body = s_json(s_bad[i].body);
        lf_job_request_t r;
        memset(&r, 0xab, sizeof r); /* untouched on failure */
        lf_openai_format_t fmt = (lf_openai_format_t)77;
        lf_verr_t e = {0};
        int rc = lf_openai_map_job(body, &ctx, &r, &fmt, &e);
        if (rc != LF_EINVAL) fail_msg("%s: accepted", s_bad[i].body);
        if (strcmp(e.field, s_bad[i].param) || strcmp(e.code, s_bad[i].code))
            fail_msg("%s: failed on %s/%s (%s), expected %s/%s", s_bad[i].body, e.field, e.code, e.message,
                     s_bad[i].param, s_bad[i].code);
        assert_int_equal(e.status, 400);
        assert_int_equal(fmt, 77);
        assert_int_equal(r.params.width, 0xabababab);
        json_decref(body);
    }
    /* The message speaks of the parameter the client sent. */
    json_t *body = s_json("{\"prompt\":\"a\",\"n\":10}");
    lf_job_request_t r;
    lf_openai_format_t fmt;
    lf_verr_t e;
    assert_int_equal(lf_openai_map_job(body, &ctx, &r, &fmt, &e), LF_EINVAL);
    assert_non_null(strstr(e.message, "n must be in 1..8"));
    json_decref(body);
    /* Not an object. */
    body = s_json("[1]");
    assert_int_equal(lf_openai_map_job(body, &ctx, &r, &fmt, &e), LF_EINVAL);
    assert_string_equal(e.field, "");
    json_decref(body);
    json_decref(models);
}

static void test_job_is_validated(void **state) {
    json_t *models = s_models();
    lf_openai_ctx_t ctx = s_ctx(models);
    json_t *body = s_json("{\"prompt\":\"a fox\",\"model\":\"dall-e-2\",\"n\":2,\"size\":\"640x384\",\"seed\":-1,"
                          "\"sampler\":\"DPM++ 2M Karras\",\"response_format\":\"b64_json\"}");
    lf_job_request_t r;
    lf_openai_format_t fmt;
    lf_verr_t e;
    assert_int_equal(lf_openai_map_job(body, &ctx, &r, &fmt, &e), 0);
    assert_int_equal(fmt, LF_OPENAI_B64_JSON);
    assert_string_equal(r.params.model, "sd15");
    assert_string_equal(r.params.mode, "txt2img");
    assert_string_equal(r.params.prompt, "a fox");
    assert_int_equal(r.params.batch_size, 2);
    assert_int_equal(r.params.width, 640);
    assert_int_equal(r.params.height, 384);
    assert_int_equal(r.params.seed, 4242);
    assert_string_equal(r.params.sampler, "dpmpp_2m");
    assert_string_equal(r.params.scheduler, "karras");
    assert_null(r.params.init_image);
    lf_job_request_clear(&r);
    json_decref(body);

    ctx.init_image = "up-9";
    body = s_json("{\"prompt\":\"red\",\"size\":\"256x256\"}");
    assert_int_equal(lf_openai_map_job(body, &ctx, &r, &fmt, &e), 0);
    assert_int_equal(fmt, LF_OPENAI_URL);
    assert_string_equal(r.params.mode, "img2img");
    assert_string_equal(r.params.init_image, "up-9");
    assert_true(r.params.denoise > 0.74 && r.params.denoise < 0.76);
    lf_job_request_clear(&r);
    json_decref(body);
    json_decref(models);
}

static lf_multipart_part_t s_part(const char *name, const char *filename, const char *data) {
    lf_multipart_part_t p = {0};
    snprintf(p.name, sizeof p.name, "%s", name);
    if (filename) {
        snprintf(p.filename, sizeof p.filename, "%s", filename);
        p.has_filename = true;
    }
    p.data = (const uint8_t *)data;
    p.len = strlen(data);
    return p;
}

static void test_form_fields(void **state) {
    lf_multipart_part_t parts[] = {
        s_part("image", "in.png", "PNGBYTES"), s_part("prompt", NULL, "a red door"), s_part("n", NULL, "2"),
        s_part("size", NULL, "256x256"),       s_part("steps", NULL, "3"),           s_part("cfg_scale", NULL, "6.5"),
        s_part("seed", NULL, "-1"),            s_part("denoise", NULL, "1"),         s_part("response_format", NULL, "b64_json"),
    };
    json_t *f = NULL;
    const lf_multipart_part_t *img = NULL, *mask = (const lf_multipart_part_t *)0x1;
    lf_verr_t e;
    assert_int_equal(lf_openai_map_form(parts, sizeof parts / sizeof parts[0], &f, &img, &mask, &e), 0);
    assert_ptr_equal(img, &parts[0]);
    assert_null(mask);
    json_t *want = s_json("{\"prompt\":\"a red door\",\"n\":2,\"size\":\"256x256\",\"steps\":3,\"cfg_scale\":6.5,"
                          "\"seed\":-1,\"denoise\":1.0,\"response_format\":\"b64_json\"}");
    if (!json_equal(f, want)) fail_msg("form fields: %s", json_dumps(f, JSON_SORT_KEYS));
    json_decref(want);
    /* They map like JSON: n is checked as n. */
    json_object_set_new(f, "n", json_string("two"));
    json_t *models = s_models();
    lf_openai_ctx_t ctx = s_ctx(models);
    ctx.init_image = "up";
    lf_job_request_t r;
    lf_openai_format_t fmt;
    assert_int_equal(lf_openai_map_job(f, &ctx, &r, &fmt, &e), LF_EINVAL);
    assert_string_equal(e.field, "n");
    json_decref(f);
    json_decref(models);

    /* image[] (the SDK's spelling for lists) and a mask. */
    lf_multipart_part_t p2[] = {s_part("image[]", "a.png", "A"), s_part("mask", "m.png", "M"),
                                s_part("prompt", NULL, "x")};
    assert_int_equal(lf_openai_map_form(p2, 3, &f, &img, &mask, &e), 0);
    assert_ptr_equal(img, &p2[0]);
    assert_ptr_equal(mask, &p2[1]);
    json_decref(f);

    /* Refusals name the part. */
    const struct {
        lf_multipart_part_t a, b;
        const char *param;
    } bad[] = {
        {s_part("image", "a.png", "A"), s_part("image[]", "b.png", "B"), "image"},
        {s_part("mask", "a.png", "A"), s_part("mask", "b.png", "B"), "mask"},
        {s_part("prompt", NULL, "a"), s_part("prompt", NULL, "b"), "prompt"},
        {s_part("prompt", NULL, "a"), s_part("extra", "x.bin", "b"), "extra"},
        {s_part("prompt", NULL, "a"), s_part("user", NULL, "\xff\xfe"), "user"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lf_multipart_part_t p[2] = {bad[i].a, bad[i].b};
        f = (json_t *)0x1;
        if (lf_openai_map_form(p, 2, &f, &img, &mask, &e) != LF_EINVAL) fail_msg("case %zu accepted", i);
        assert_string_equal(e.field, bad[i].param);
        assert_ptr_equal(f, (json_t *)0x1);
    }
}

static void test_models_and_errors(void **state) {
    json_t *models = s_models();
    json_t *data = lf_openai_map_models(models);
    json_t *want = s_json("[{\"id\":\"sd15\",\"object\":\"model\",\"created\":0,\"owned_by\":\"lightfarm\",\"resolution\":512},"
                          "{\"id\":\"tiny\",\"object\":\"model\",\"created\":0,\"owned_by\":\"lightfarm\",\"resolution\":256},"
                          "{\"id\":\"lf-diagnostic\",\"object\":\"model\",\"created\":0,\"owned_by\":\"lightfarm\"}]");
    if (!json_equal(data, want)) fail_msg("models: %s", json_dumps(data, 0));
    json_decref(want);
    json_decref(data);
    json_decref(models);
    data = lf_openai_map_models(NULL);
    assert_int_equal(json_array_size(data), 0);
    json_decref(data);

    json_t *err = lf_openai_map_error(400, "out_of_range", "size", "size must be ...");
    want = s_json("{\"error\":{\"message\":\"size must be ...\",\"type\":\"invalid_request_error\","
                  "\"param\":\"size\",\"code\":\"out_of_range\"}}");
    assert_true(json_equal(err, want));
    json_decref(err);
    json_decref(want);
    err = lf_openai_map_error(503, "unavailable", "", "later");
    want = s_json("{\"error\":{\"message\":\"later\",\"type\":\"server_error\",\"param\":null,\"code\":\"unavailable\"}}");
    assert_true(json_equal(err, want));
    json_decref(err);
    json_decref(want);
    /* Text that is not UTF-8 (a form field's name) still makes an answer. */
    err = lf_openai_map_error(400, NULL, "\xff" "x", "bad \xc3");
    want = s_json("{\"error\":{\"message\":\"bad ?\",\"type\":\"invalid_request_error\",\"param\":\"?x\",\"code\":null}}");
    if (!json_equal(err, want)) fail_msg("error: %s", json_dumps(err, 0));
    json_decref(err);
    json_decref(want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generation_maps_to_native),
        cmocka_unit_test(test_edit_maps_to_img2img),
        cmocka_unit_test(test_refusals_name_the_param),
        cmocka_unit_test(test_job_is_validated),
        cmocka_unit_test(test_form_fields),
        cmocka_unit_test(test_models_and_errors),
    };
    return cmocka_run_group_tests_name("gateway_openai", tests, NULL, NULL);
}
