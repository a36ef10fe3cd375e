/* Hires-Fix and upscalers end to end through the whole farm (HTTP ->
 * gateway -> broker -> worker -> engine) on the built-in model
 * lf-tiny-shapes, with a small ESRGAN file (the x4 fixture of
 * tests/engine/fixtures/upscale, random weights) installed as
 * models/upscale_models/4x-fixture.safetensors and A1111's models/ESRGAN/
 * holding a Compact one:
 *   - GET /sdapi/v1/upscalers (None, Lanczos, Nearest, then both models),
 *     /sdapi/v1/latent-upscale-modes, /v1/upscalers;
 *   - A1111 txt2img with enable_hr: a "Latent" and a model upscaler, the
 *     image at the Hires-Fix size, the infotext with A1111's Hires keys,
 *     and png-info reading them back;
 *   - an upscaler nobody has, and a Hires-Fix size over every worker's
 *     max_pixels: 400 naming hr_upscaler / hr_scale.
 *
 * Needs models/lf-tiny-shapes.safetensors and the CLIP BPE merges
 * (reference data); exits 77 (ctest: skipped) with the reason without them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "lf_b64.h"
#include "lf_image.h"
#include "lf_testfarm.h"


static lf_testfarm_folder_t s_f; /* models/ and assets/ */

/* The built-in model and two upscaler fixtures (a RealESRGAN and a compact
 * net, in A1111's and ComfyUI's folder names). */
static bool s_prepare(char *why, size_t len)
{
    if (!lf_testfarm_folder_new(&s_f, LF_SOURCE_DIR, "hires-farm", why, len)) return false;
    const char *d = s_f.dir;
    if (lf_testfarm_sh("mkdir -p '%s/models/upscale_models' '%s/models/ESRGAN' && ln -s '%s' '%s/models/' && "
                       "cp '%s/upscale/esrgan_new_x4.safetensors' '%s/models/upscale_models/4x-fixture.safetensors' && "
                       "cp '%s/upscale/compact_x4.pth' '%s/models/ESRGAN/compact-fixture.pth'",
                       d, d, s_f.shapes, d, LF_FIXTURE_DIR, d, LF_FIXTURE_DIR, d) != 0)
        return snprintf(why, len, "cannot prepare %s", d), false;
    return true;
}

static void s_cleanup(void) { lf_testfarm_folder_remove(&s_f); }

static int s_setup(void **state)
{
    lf_testfarm_opts_t o = {.n_workers = 1, .extra_env = {s_f.env_models, s_f.env_assets}};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    if (!farm) return -1;
    *state = farm;
    return 0;
}

static void test_upscaler_lists(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256];
    json_t *j = NULL;
    snprintf(url, sizeof url, "%s/sdapi/v1/upscalers", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    char *d = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "GET /sdapi/v1/upscalers: %s\n", d);
    free(d);
    static const char *const want[] = {"None", "Lanczos", "Nearest", "4x-fixture", "compact-fixture"};
    assert_int_equal(json_array_size(j), 5);
    for (size_t i = 0; i < 5; i++) assert_string_equal(lf_json_str(json_array_get(j, i), "name"), want[i]);
    json_decref(j);
    snprintf(url, sizeof url, "%s/sdapi/v1/latent-upscale-modes", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    assert_int_equal(json_array_size(j), 6);
    assert_string_equal(lf_json_str(json_array_get(j, 5), "name"), "Latent (nearest-exact)");
    json_decref(j);
    snprintf(url, sizeof url, "%s/v1/upscalers", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 11);
    json_t *last = json_array_get(json_object_get(j, "upscalers"), 10);
    assert_string_equal(lf_json_str(last, "kind"), "model");
    assert_int_equal(json_integer_value(json_object_get(last, "workers")), 1);
    json_decref(j);
}

/* One A1111 txt2img with Hires-Fix: 200, one image at 128x128, the
 * infotext with A1111's keys. */
static void s_hires(lf_testfarm_t *farm, const char *upscaler)
{
    char url[256], body[1024];
    snprintf(url, sizeof url, "%s/sdapi/v1/txt2img", lf_testfarm_url(farm));
    snprintf(body, sizeof body,
             "{\"prompt\":\"a large yellow square in the center on a black background\",\"steps\":3,"
             "\"width\":64,\"height\":64,\"cfg_scale\":5,\"seed\":7,\"sampler_name\":\"Euler\","
             "\"enable_hr\":true,\"hr_scale\":2,\"hr_upscaler\":\"%s\",\"hr_second_pass_steps\":2,"
             "\"denoising_strength\":0.5,\"hr_sampler_name\":\"Use same sampler\","
             "\"override_settings\":{\"sd_model_checkpoint\":\"lf-tiny-shapes\"}}",
             upscaler);
    json_t *j = NULL;
    long long t0 = lf_now_ms();
    int code = lf_http_json("POST", url, body, &j);
    const char *info_s = lf_json_str(j, "info");
    fprintf(stderr, "A1111 txt2img, Hires-Fix with %s: %d in %lld ms; info %s\n", upscaler, code, lf_now_ms() - t0,
            info_s);
    assert_int_equal(code, 200);
    assert_int_equal(json_array_size(json_object_get(j, "images")), 1);
    const char *b64 = json_string_value(json_array_get(json_object_get(j, "images"), 0));
    uint8_t *png = NULL;
    size_t len = 0;
    assert_int_equal(lf_b64_decode(b64, strlen(b64), 1 << 24, &png, &len), 0);
    lf_image_info_t ii;
    assert_int_equal(lf_image_probe(png, len, &ii), 0);
    assert_int_equal(ii.width, 128);
    assert_int_equal(ii.height, 128);
    free(png);
    json_t *info = json_loads(info_s, 0, NULL);
    assert_non_null(info);
    const char *it = json_string_value(json_array_get(json_object_get(info, "infotexts"), 0));
    assert_non_null(it);
    char want[256];
    snprintf(want, sizeof want, "Size: 64x64, Model: lf-tiny-shapes, Denoising strength: 0.5, Hires upscale: 2, "
                                "Hires steps: 2, Hires upscaler: %s", upscaler);
    if (!strstr(it, want)) fail_msg("infotext: %s", it);
    assert_true(json_is_true(json_object_get(info, "enable_hr")));
    /* png-info reads it back as A1111 does. */
    snprintf(url, sizeof url, "%s/sdapi/v1/png-info", lf_testfarm_url(farm));
    json_t *req = json_pack("{s:s}", "image", b64);
    char *rb = json_dumps(req, JSON_COMPACT);
    json_t *pi = NULL;
    assert_int_equal(lf_http_json("POST", url, rb, &pi), 200);
    json_t *items = json_object_get(pi, "items");
    assert_non_null(strstr(json_string_value(json_object_get(pi, "info")) ? json_string_value(json_object_get(pi, "info")) : "", "Hires upscaler"));
    char *pd = json_dumps(pi, JSON_COMPACT);
    fprintf(stderr, "png-info: %.600s\n", pd);
    free(pd);
    (void)items;
    json_decref(pi);
    free(rb);
    json_decref(req);
    json_decref(info);
    json_decref(j);
}

static void test_hires_latent(void **state) { s_hires(*state, "Latent"); }
static void test_hires_model(void **state) { s_hires(*state, "4x-fixture"); }

static void s_refused(lf_testfarm_t *farm, const char *extra, const char *field)
{
    char url[256], req[1024], *body = NULL;
    snprintf(url, sizeof url, "%s/sdapi/v1/txt2img", lf_testfarm_url(farm));
    snprintf(req, sizeof req,
             "{\"prompt\":\"x\",\"steps\":2,\"width\":512,\"height\":512,\"enable_hr\":true,%s,"
             "\"override_settings\":{\"sd_model_checkpoint\":\"lf-tiny-shapes\"}}",
             extra);
    int code = lf_http_request("POST", url, "application/json", req, strlen(req), &body, NULL);
    fprintf(stderr, "%s: %d %s\n", extra, code, body ? body : "");
    assert_int_equal(code, 400);
    assert_non_null(body);
    char f[96];
    snprintf(f, sizeof f, "\"%s\"", field);
    assert_non_null(strstr(body, f));
    free(body);
}

static void test_hires_refused(void **state)
{
    s_refused(*state, "\"hr_upscaler\":\"4x-NoSuchModel\"", "hr_upscaler");
    /* 512 x 8 = 4096: 16.8 M pixels, over the worker's 4194304 (LF_MAX_PIXELS). */
    s_refused(*state, "\"hr_scale\":8", "hr_scale");
}


/* A 32x24 test image (a gradient) as PNG bytes (caller frees). */
static uint8_t *s_png(size_t *len)
{
    static uint8_t px[32 * 24 * 3];
    for (int i = 0; i < 32 * 24 * 3; i++) px[i] = (uint8_t)(i * 7);
    lf_image_t im = {.pixels = px, .width = 32, .height = 24, .channels = 3};
    uint8_t *png = NULL;
    assert_int_equal(lf_image_png_encode(&im, NULL, 0, -1, &png, len, NULL, 0), 0);
    return png;
}

/* POST extra-single-image; returns the status, *w x *h of the image. */
static int s_extra(lf_testfarm_t *farm, const char *fields, uint32_t *w, uint32_t *h, char **html)
{
    size_t len = 0;
    uint8_t *png = s_png(&len);
    char *b64 = lf_b64_encode(png, len);
    free(png);
    char url[256];
    snprintf(url, sizeof url, "%s/sdapi/v1/extra-single-image", lf_testfarm_url(farm));
    size_t blen = strlen(b64) + strlen(fields) + 64;
    char *body = malloc(blen);
    snprintf(body, blen, "{\"image\":\"%s\",%s}", b64, fields);
    free(b64);
    json_t *j = NULL;
    int code = lf_http_json("POST", url, body, &j);
    free(body);
    *w = *h = 0;
    if (html) *html = NULL;
    const char *img = json_string_value(json_object_get(j, "image"));
    if (code == 200 && img) {
        uint8_t *out = NULL;
        size_t olen = 0;
        lf_image_info_t ii;
        if (lf_b64_decode(img, strlen(img), 1 << 24, &out, &olen) == 0 && lf_image_probe(out, olen, &ii) == 0)
            *w = ii.width, *h = ii.height;
        free(out);
        if (html) *html = strdup(lf_json_str(j, "html_info"));
    } else {
        char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
        fprintf(stderr, "extra-single-image %s: %d %s\n", fields, code, d ? d : "");
        free(d);
    }
    json_decref(j);
    return code;
}

/* A1111's extras upscale, as a farm job: Lanczos x2, a model x4, scale-to
 * with the centre crop; an unknown or latent upscaler is a 400 naming
 * upscaler_1. */
static void test_extras(void **state)
{
    lf_testfarm_t *farm = *state;
    uint32_t w, h;
    char *html = NULL;
    assert_int_equal(s_extra(farm, "\"upscaler_1\":\"Lanczos\",\"upscaling_resize\":2", &w, &h, &html), 200);
    fprintf(stderr, "extras Lanczos x2: %ux%u, %s\n", w, h, html);
    assert_int_equal(w, 64), assert_int_equal(h, 48);
    assert_non_null(strstr(html, "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"));
    free(html);
    assert_int_equal(s_extra(farm, "\"upscaler_1\":\"4x-fixture\",\"upscaling_resize\":4", &w, &h, NULL), 200);
    assert_int_equal(w, 128), assert_int_equal(h, 96);
    assert_int_equal(s_extra(farm, "\"upscaler_1\":\"compact-fixture\",\"resize_mode\":1,\"upscaling_resize_w\":100,"
                                   "\"upscaling_resize_h\":50", &w, &h, NULL), 200);
    assert_int_equal(w, 100), assert_int_equal(h, 50);
    assert_int_equal(s_extra(farm, "\"upscaler_1\":\"4x-NoSuchModel\"", &w, &h, NULL), 400);
    assert_int_equal(s_extra(farm, "\"upscaler_1\":\"Latent\"", &w, &h, NULL), 400);
    assert_int_equal(s_extra(farm, "\"upscaler_1\":\"Lanczos\",\"upscaling_resize\":99", &w, &h, NULL), 400);
}

/* The native upscale job: upload, submit (202), done, the image at the
 * size, in the history like any job. */
static void test_native_upscale_job(void **state)
{
    lf_testfarm_t *farm = *state;
    size_t len = 0;
    uint8_t *png = s_png(&len);
    char url[256], *resp = NULL;
    snprintf(url, sizeof url, "%s/v1/uploads", lf_testfarm_url(farm));
    int code = lf_http_request("POST", url, "image/png", (const char *)png, len, &resp, NULL);
    free(png);
    assert_true(code == 200 || code == 201);
    json_t *u = json_loads(resp, 0, NULL);
    free(resp);
    char body[512];
    snprintf(body, sizeof body, "{\"mode\":\"upscale\",\"init_image\":\"%s\",\"upscaler\":\"4x-fixture\",\"upscale_by\":2}",
             lf_json_str(u, "id"));
    json_decref(u);
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *j = NULL;
    assert_int_equal(lf_http_json("POST", url, body, &j), 202);
    char id[128];
    snprintf(id, sizeof id, "%s", lf_json_str(j, "id"));
    json_decref(j);
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), id);
    char status[32] = "";
    for (long long t0 = lf_now_ms(); lf_now_ms() - t0 < 120000; usleep(100 * 1000)) {
        j = NULL;
        if (lf_http_json("GET", url, NULL, &j) == 200 && j) snprintf(status, sizeof status, "%s", lf_json_str(j, "status"));
        json_decref(j);
        if (!strcmp(status, "done") || !strcmp(status, "failed")) break;
    }
    assert_string_equal(status, "done");
    snprintf(url, sizeof url, "%s/v1/images/%s-0.png", lf_testfarm_url(farm), id);
    char *out = NULL;
    size_t olen = 0;
    assert_int_equal(lf_http_request("GET", url, NULL, NULL, 0, &out, &olen), 200);
    lf_image_info_t ii;
    assert_int_equal(lf_image_probe((const uint8_t *)out, olen, &ii), 0);
    assert_int_equal(ii.width, 64), assert_int_equal(ii.height, 48);
    free(out);
    snprintf(url, sizeof url, "%s/v1/history", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    char *d = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(d, id));
    free(d);
    json_decref(j);
}

int main(int argc, char **argv)
{
    char why[1400];
    if (!s_prepare(why, sizeof why)) {
        printf("SKIP: %s\n", why);
        s_cleanup();
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upscaler_lists),
        cmocka_unit_test(test_hires_latent),
        cmocka_unit_test(test_hires_model),
        cmocka_unit_test(test_hires_refused),
        cmocka_unit_test(test_extras),
        cmocka_unit_test(test_native_upscale_job),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    int rc = cmocka_run_group_tests(tests, s_setup, lf_testfarm_teardown);
    s_cleanup();
    return rc;
}
