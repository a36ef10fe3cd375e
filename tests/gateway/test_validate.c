/* test_validate: the request validator from tables — every field's type and
 * range errors name the field, unknown fields are refused (native) or
 * ignored (A1111), defaults, seeds, A1111 sampler/model mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_b64.h"
#include "lf_error.h"
#include "lf_ratelimit.h"
#include "lf_validate.h"
/* The engine's own sampler and scheduler lists (headers only: the farm must
 * offer exactly what the engine runs). */
#include "lf_sampler.h"
#include "lf_schedule.h"
#include "lf_stepcache.h"
#include "lf_backend.h" /* lf_precision_t (header only) */

static const lf_validate_ctx_t s_ctx = {.default_model = "lf-diagnostic", .random_seed = 4242};

static json_t *s_json(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* A body that must fail on `field` with `code`. */
typedef struct {
    const char *body, *field, *code;
} s_bad_t;

static const s_bad_t s_native_bad[] = {
    {"{\"mask\":\"up-2\"}", "mask", "invalid_value"}, /* a mask needs an init image */
    {"{\"init_image\":\"up-1\",\"inpainting_fill\":4}", "inpainting_fill", "out_of_range"},
    {"{\"init_image\":\"up-1\",\"inpaint_full_res\":\"yes\"}", "inpaint_full_res", "invalid_type"},
    {"{\"bogus\":1}", "bogus", "unknown_field"},
    {"{\"model\":5}", "model", "invalid_type"},
    {"{\"model\":\"\"}", "model", "invalid_value"},
    {"{\"mode\":\"paint\"}", "mode", "invalid_value"},
    {"{\"mode\":1}", "mode", "invalid_type"},
    {"{\"prompt\":[]}", "prompt", "invalid_type"},
    {"{\"negative_prompt\":{}}", "negative_prompt", "invalid_type"},
    {"{\"sampler\":\"warp\"}", "sampler", "invalid_value"},
    {"{\"sampler\":3}", "sampler", "invalid_type"},
    {"{\"scheduler\":\"sideways\"}", "scheduler", "invalid_value"},
    {"{\"steps\":\"many\"}", "steps", "invalid_type"},
    {"{\"steps\":0}", "steps", "out_of_range"},
    {"{\"steps\":151}", "steps", "out_of_range"},
    {"{\"steps\":2.5}", "steps", "invalid_type"},
    {"{\"cfg_scale\":\"7\"}", "cfg_scale", "invalid_type"},
    {"{\"cfg_scale\":-1}", "cfg_scale", "out_of_range"},
    {"{\"width\":100000}", "width", "out_of_range"},
    {"{\"width\":\"512\"}", "width", "invalid_type"},
    {"{\"width\":4}", "width", "out_of_range"},
    {"{\"width\":2056}", "width", "out_of_range"},
    {"{\"width\":100}", "width", "invalid_value"},
    {"{\"height\":-8}", "height", "out_of_range"},
    {"{\"height\":12}", "height", "invalid_value"},
    {"{\"model\":\"sd15\",\"width\":32}", "width", "out_of_range"},
    {"{\"model\":\"sd15\",\"height\":56}", "height", "out_of_range"},
    {"{\"seed\":-2}", "seed", "out_of_range"},
    {"{\"seed\":\"1\"}", "seed", "invalid_type"},
    {"{\"seed\":4294967296}", "seed", "out_of_range"},
    {"{\"batch_size\":0}", "batch_size", "out_of_range"},
    {"{\"batch_size\":9}", "batch_size", "out_of_range"},
    {"{\"priority\":\"urgent\"}", "priority", "invalid_value"},
    {"{\"priority\":1}", "priority", "invalid_type"},
    {"{\"init_image\":\"../etc\"}", "init_image", "invalid_value"},
    {"{\"init_image\":7}", "init_image", "invalid_type"},
    {"{\"mode\":\"img2img\"}", "init_image", "missing_field"},
    {"{\"denoise\":1.5}", "denoise", "out_of_range"},
    {"{\"denoise\":true}", "denoise", "invalid_type"},
    {"{\"clip_skip\":0}", "clip_skip", "out_of_range"},
    {"{\"clip_skip\":13}", "clip_skip", "out_of_range"},
    {"{\"step_delay_ms\":-1}", "step_delay_ms", "out_of_range"},
    {"{\"step_delay_ms\":10001}", "step_delay_ms", "out_of_range"},
    {"{\"rng\":\"gpu\"}", "rng", "invalid_value"},
    {"{\"idempotency_key\":\"\"}", "idempotency_key", "invalid_value"},
    {"{\"idempotency_key\":1}", "idempotency_key", "invalid_type"},
    {"{\"ttl_s\":0}", "ttl_s", "out_of_range"},
    {"{\"ttl_s\":\"1h\"}", "ttl_s", "invalid_type"},
    {"{\"extra\":{}}", "extra", "unknown_field"}, /* gone: every field is a table row */
    {"{\"cache\":\"fbcache\"}", "cache", "invalid_type"},
    {"{\"cache\":{\"kind\":\"teacache\"}}", "cache.kind", "invalid_value"},
    {"{\"cache\":{\"kind\":\"fbcache\",\"threshold\":1.5}}", "cache.threshold", "out_of_range"},
    {"{\"cache\":{\"kind\":\"deepcache\",\"interval\":0}}", "cache.interval", "out_of_range"},
    {"{\"cache\":{\"depth\":64}}", "cache.depth", "out_of_range"},
    {"{\"cache\":{\"start\":-1}}", "cache.start", "out_of_range"},
    {"{\"cache\":{\"end\":\"2\"}}", "cache.end", "invalid_type"},
    {"{\"cache\":{\"speed\":2}}", "cache.speed", "unknown_field"},
    {"{\"cache_threshold\":-0.1}", "cache_threshold", "out_of_range"},
    {"{\"tcd_gamma\":1.5}", "tcd_gamma", "out_of_range"},
    {"{\"tcd_gamma\":\"0.3\"}", "tcd_gamma", "invalid_type"},
    {"{\"guidance\":30.5}", "guidance", "out_of_range"},
    {"{\"guidance\":-1}", "guidance", "out_of_range"},
    {"{\"guidance\":\"3.5\"}", "guidance", "invalid_type"},
    {"{\"timesteps\":[]}", "timesteps", "invalid_type"},
    {"{\"timesteps\":[800.5]}", "timesteps", "invalid_type"},
    {"{\"timesteps\":800}", "timesteps", "invalid_type"},
    {"{\"timesteps\":[1000]}", "timesteps", "out_of_range"},
    {"{\"timesteps\":[999,-1]}", "timesteps", "out_of_range"},
    {"{\"timesteps\":[500,800]}", "timesteps", "invalid_value"},
    {"{\"timesteps\":[800,800]}", "timesteps", "invalid_value"},
    {"{\"timesteps\":\"999;500\"}", "timesteps", "invalid_type"},
    {"{\"timesteps\":[999,500],\"steps\":3}", "timesteps", "invalid_value"},
    {"[1,2]", "", "invalid_type"},
    {"\"txt\"", "", "invalid_type"},
};

static void test_native_errors_name_the_field(void **state) {
    for (size_t i = 0; i < sizeof s_native_bad / sizeof s_native_bad[0]; i++) {
        const s_bad_t *c = &s_native_bad[i];
        json_t *j = json_loads(c->body, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        lf_job_request_t r;
        memset(&r, 0x5a, sizeof r); /* untouched on failure */
        lf_verr_t err = {0};
        int rc = lf_validate_job(j, &s_ctx, &r, &err);
        if (rc != LF_EINVAL) fail_msg("%s: accepted", c->body);
        if (strcmp(err.field, c->field) || strcmp(err.code, c->code))
            fail_msg("%s: got field '%s' code %s (%s), want '%s' %s", c->body, err.field, err.code,
                     err.message, c->field, c->code);
        assert_int_equal(err.status, 400);
        assert_true(strlen(err.message) > 0);
        json_decref(j);
    }
}

static void test_native_defaults_and_seed(void **state) {
    json_t *j = s_json("{}");
    lf_job_request_t r;
    lf_verr_t err;
    assert_int_equal(lf_validate_job(j, &s_ctx, &r, &err), 0);
    assert_string_equal(r.params.model, "lf-diagnostic");
    assert_string_equal(r.params.mode, "txt2img");
    assert_string_equal(r.params.sampler, "euler");
    assert_string_equal(r.params.scheduler, "normal");
    assert_int_equal(r.params.width, 512);
    assert_int_equal(r.params.steps, 20);
    assert_int_equal(r.params.batch_size, 1);
    assert_int_equal(r.params.seed, 4242); /* absent = random, resolved */
    assert_int_equal(r.priority, LF_PRIO_NORMAL);
    assert_null(r.idem_key);
    lf_job_request_clear(&r);
    json_decref(j);

    j = s_json("{\"model\":\"sd15-base\",\"prompt\":\"a cat\",\"sampler\":\"euler_a\",\"scheduler\":\"Karras\","
               "\"steps\":30,\"cfg_scale\":5.5,\"width\":768,\"height\":64,\"seed\":-1,\"batch_size\":8,"
               "\"priority\":\"high\",\"init_image\":\"up-1\",\"clip_skip\":2,\"rng\":\"philox\","
               "\"idempotency_key\":\"k1\",\"ttl_s\":60,\"negative_prompt\":null}");
    assert_int_equal(lf_validate_job(j, &s_ctx, &r, &err), 0);
    assert_string_equal(r.params.model, "sd15-base");
    assert_string_equal(r.params.mode, "img2img"); /* implied by init_image */
    assert_string_equal(r.params.sampler, "euler_ancestral");
    assert_string_equal(r.params.scheduler, "karras");
    assert_int_equal(r.params.seed, 4242);
    assert_true(r.params.denoise > 0.74 && r.params.denoise < 0.76);
    assert_int_equal(r.priority, LF_PRIO_HIGH);
    assert_string_equal(r.idem_key, "k1");
    assert_int_equal(r.ttl_s, 60);
    lf_job_request_clear(&r);
    json_decref(j);

    j = s_json("{\"seed\":12345,\"width\":8,\"height\":2048,\"steps\":20.0}");
    assert_int_equal(lf_validate_job(j, &s_ctx, &r, &err), 0);
    assert_int_equal(r.params.seed, 12345);
    assert_int_equal(r.params.width, 8); /* diagnostic allows 8 */
    lf_job_request_clear(&r);
    json_decref(j);
}

/* A model's recommended settings (a Lightning manifest's), for the
 * model_defaults callback: said for "lt4" only. */
static int s_lt4_defaults(void *ud, const char *model, lf_model_defaults_t *out) {
    (void)ud;
    if (strcmp(model, "lt4")) return -1;
    *out = (lf_model_defaults_t){.steps = 4, .has_cfg = true, .cfg_scale = 1.0, .sampler = strdup("euler"),
                                 .scheduler = strdup("sgm_uniform"), .width = 1024, .height = 1024};
    return 0;
}

/* Hyper-SD's 1-step UNet (its manifest's): tcd at timestep 800. */
static int s_hyper_defaults(void *ud, const char *model, lf_model_defaults_t *out) {
    (void)ud;
    if (strcmp(model, "hyper1")) return -1;
    *out = (lf_model_defaults_t){.steps = 1, .has_cfg = true, .cfg_scale = 1.0, .sampler = strdup("tcd"),
                                 .timesteps = strdup("800")};
    return 0;
}

/* A Lightning-style LoRA's settings: 8 steps, CFG 1, sgm_uniform. */
static int s_lora8_defaults(void *ud, const char *lora, lf_model_defaults_t *out) {
    (void)ud;
    if (strcmp(lora, "lightning_8step")) return -1;
    *out = (lf_model_defaults_t){.steps = 8, .has_cfg = true, .cfg_scale = 1.0, .scheduler = strdup("sgm_uniform")};
    return 0;
}

/* Few-step rows: the tcd sampler's gamma (A1111: eta) and explicit
 * timesteps (their count is the steps when steps is omitted). */
static void test_fewstep_options(void **state) {
    (void)state;
    lf_job_request_t r;
    lf_verr_t e;
    json_t *b = s_json("{\"sampler\":\"tcd\",\"tcd_gamma\":0.7,\"timesteps\":[999,850,500]}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    assert_true(r.params.tcd_gamma == 0.7);
    assert_string_equal(r.params.timesteps, "999,850,500");
    assert_int_equal(r.params.steps, 3);
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"timesteps\":\" 800 \",\"steps\":1}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    assert_int_equal(r.params.steps, 1);
    assert_true(r.params.tcd_gamma == 0.3); /* diffusers' TCDScheduler default */
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"sampler_name\":\"TCD\",\"eta\":0.5,\"timesteps\":[800]}");
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.sampler, "tcd");
    assert_true(r.params.tcd_gamma == 0.5);
    assert_int_equal(r.params.steps, 1);
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"eta\":2}");
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), LF_EINVAL);
    assert_string_equal(e.field, "eta");
    json_decref(b);
    /* The row's text parser. */
    int ts[4];
    assert_int_equal(lf_param_timesteps_parse("999, 749,499 ,249", ts, 4), 4);
    assert_int_equal(ts[1], 749);
    assert_int_equal(ts[3], 249);
    assert_int_equal(lf_param_timesteps_parse("4,3,2,1,0", ts, 4), LF_EOVERFLOW);
    assert_int_equal(lf_param_timesteps_parse("", ts, 4), LF_EFORMAT);
    assert_int_equal(lf_param_timesteps_parse("5,", ts, 4), LF_EFORMAT);
    assert_int_equal(lf_param_timesteps_parse("5,5", ts, 4), LF_EINVAL);
}

static void test_model_defaults(void **state) {
    (void)state;
    lf_validate_ctx_t ctx = s_ctx;
    ctx.model_defaults = s_lt4_defaults;
    ctx.lora_defaults = s_lora8_defaults;
    lf_job_request_t r;
    lf_verr_t err;
    /* Native, nothing said: the model's settings. */
    json_t *j = s_json("{\"model\":\"lt4\",\"prompt\":\"x\"}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 4);
    assert_true(r.params.cfg_scale == 1.0);
    assert_string_equal(r.params.sampler, "euler");
    assert_string_equal(r.params.scheduler, "sgm_uniform");
    assert_int_equal(r.params.width, 1024);
    lf_job_request_clear(&r);
    json_decref(j);
    /* Said: kept, each field on its own. */
    j = s_json("{\"model\":\"lt4\",\"prompt\":\"x\",\"steps\":8,\"scheduler\":\"karras\",\"width\":512}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 8);
    assert_true(r.params.cfg_scale == 1.0);
    assert_string_equal(r.params.scheduler, "karras");
    assert_int_equal(r.params.width, 512);
    assert_int_equal(r.params.height, 1024);
    lf_job_request_clear(&r);
    json_decref(j);
    /* Another model: the table's defaults. */
    j = s_json("{\"model\":\"sd15\",\"prompt\":\"x\"}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 20);
    assert_true(r.params.cfg_scale == 7.0);
    lf_job_request_clear(&r);
    json_decref(j);
    /* A LoRA that says comes first (by tag or list), the model fills the rest. */
    j = s_json("{\"model\":\"lt4\",\"prompt\":\"x <lora:lightning_8step:1>\"}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 8);
    assert_string_equal(r.params.sampler, "euler"); /* the model's */
    assert_int_equal(r.params.width, 1024);
    lf_job_request_clear(&r);
    json_decref(j);
    j = s_json("{\"model\":\"sd15\",\"prompt\":\"x\",\"steps\":6,\"loras\":[{\"name\":\"lightning_8step\",\"weight\":1}]}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 6); /* said */
    assert_true(r.params.cfg_scale == 1.0);
    assert_string_equal(r.params.scheduler, "sgm_uniform");
    assert_string_equal(r.params.sampler, "euler"); /* the table's */
    lf_job_request_clear(&r);
    json_decref(j);
    /* A model's timesteps come with its steps, never against the request's. */
    ctx.model_defaults = s_hyper_defaults;
    j = s_json("{\"model\":\"hyper1\",\"prompt\":\"x\"}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 1);
    assert_string_equal(r.params.sampler, "tcd");
    assert_string_equal(r.params.timesteps, "800");
    lf_job_request_clear(&r);
    json_decref(j);
    j = s_json("{\"model\":\"hyper1\",\"prompt\":\"x\",\"steps\":4}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 4);
    assert_null(r.params.timesteps);
    lf_job_request_clear(&r);
    json_decref(j);
    j = s_json("{\"model\":\"hyper1\",\"prompt\":\"x\",\"timesteps\":[999,500]}");
    assert_int_equal(lf_validate_job(j, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 2);
    assert_string_equal(r.params.timesteps, "999,500");
    lf_job_request_clear(&r);
    json_decref(j);
    ctx.model_defaults = s_lt4_defaults;
    /* A1111: omitted fields only (its UI always sends steps and CFG). */
    j = s_json("{\"prompt\":\"x\",\"cfg_scale\":3,\"override_settings\":{\"sd_model_checkpoint\":\"lt4\"}}");
    assert_int_equal(lf_validate_a1111(j, false, &ctx, &r, &err), 0);
    assert_int_equal(r.params.steps, 4);
    assert_true(r.params.cfg_scale == 3.0);
    assert_string_equal(r.params.scheduler, "sgm_uniform");
    lf_job_request_clear(&r);
    json_decref(j);
}

static void test_a1111_lenient_and_mapped(void **state) {
    /* What webuiapi sends, more or less. */
    json_t *j = s_json(
        "{\"enable_hr\":false,\"denoising_strength\":0.7,\"firstphase_width\":0,\"hr_scale\":2,"
        "\"hr_upscaler\":\"Latent\",\"prompt\":\"cat\",\"styles\":[],\"seed\":-1,\"subseed\":-1,"
        "\"sampler_name\":\"DPM++ 2M Karras\",\"sampler_index\":\"DPM++ 2M Karras\",\"batch_size\":2,"
        "\"n_iter\":3,\"steps\":4,\"cfg_scale\":7.0,\"width\":64,\"height\":64,\"restore_faces\":false,"
        "\"tiling\":false,\"negative_prompt\":\"\",\"eta\":1.0,\"override_settings\":{},"
        "\"script_args\":[],\"send_images\":true,\"save_images\":false,\"alwayson_scripts\":{},"
        "\"scheduler\":null}");
    lf_validate_ctx_t ctx = s_ctx;
    ctx.option_model = "sd15-opt [abcd1234]";
    lf_job_request_t r;
    lf_verr_t err;
    assert_int_equal(lf_validate_a1111(j, false, &ctx, &r, &err), 0);
    assert_string_equal(r.params.model, "sd15-opt"); /* options, title stripped */
    assert_string_equal(r.params.sampler, "dpmpp_2m");
    assert_string_equal(r.params.scheduler, "karras");
    assert_int_equal(r.params.batch_size, 6);
    assert_int_equal(r.params.seed, 4242);
    assert_true(r.send_images);
    lf_job_request_clear(&r);
    json_decref(j);

    /* override_settings wins over the options; "Euler a" maps to ours. */
    j = s_json("{\"override_settings\":{\"sd_model_checkpoint\":\"lf-diagnostic\"},\"sampler_index\":\"Euler a\","
               "\"width\":8,\"height\":16,\"seed\":7,\"scheduler\":\"Automatic\"}");
    assert_int_equal(lf_validate_a1111(j, false, &ctx, &r, &err), 0);
    assert_string_equal(r.params.model, "lf-diagnostic");
    assert_string_equal(r.params.sampler, "euler_ancestral");
    assert_int_equal(r.params.seed, 7);
    lf_job_request_clear(&r);
    json_decref(j);

    /* No override, no option: the farm default. */
    j = s_json("{}");
    assert_int_equal(lf_validate_a1111(j, false, &s_ctx, &r, &err), 0);
    assert_string_equal(r.params.model, "lf-diagnostic");
    lf_job_request_clear(&r);
    json_decref(j);

    /* img2img: init_images kept, denoising_strength read. */
    j = s_json("{\"init_images\":[\"iVBORw0KGgo=\"],\"denoising_strength\":0.3}");
    assert_int_equal(lf_validate_a1111(j, true, &s_ctx, &r, &err), 0);
    assert_string_equal(r.params.mode, "img2img");
    assert_true(r.params.denoise > 0.29 && r.params.denoise < 0.31);
    assert_int_equal(json_array_size(r.init_images), 1);
    assert_null(r.mask);
    lf_job_request_clear(&r);
    json_decref(j);
    /* Inpainting: the base64 mask kept for the caller to store, A1111's fields
     * read (inpaint_full_res as A1111's UI index 0 / 1 too). */
    j = s_json("{\"init_images\":[\"iVBORw0KGgo=\"],\"mask\":\"data:image/png;base64,iVBORw0KGgo=\","
               "\"inpainting_fill\":2,\"inpaint_full_res\":0,\"inpaint_full_res_padding\":32,\"mask_blur\":8,"
               "\"inpainting_mask_invert\":1,\"initial_noise_multiplier\":0.9,"
               "\"override_settings\":{\"inpainting_mask_weight\":0.5}}");
    assert_int_equal(lf_validate_a1111(j, true, &s_ctx, &r, &err), 0);
    assert_non_null(r.mask);
    assert_int_equal(r.params.inpainting_fill, 2);
    assert_false(r.params.inpaint_full_res);
    assert_int_equal(r.params.inpaint_full_res_padding, 32);
    assert_int_equal(r.params.mask_blur, 8);
    assert_int_equal(r.params.mask_blur_x, -1);
    assert_int_equal(r.params.inpainting_mask_invert, 1);
    assert_true(r.params.initial_noise_multiplier == 0.9 && r.params.inpainting_mask_weight == 0.5);
    lf_job_request_clear(&r);
    json_decref(j);
    /* An empty or null mask is none. */
    j = s_json("{\"init_images\":[\"iVBORw0KGgo=\"],\"mask\":\"\"}");
    assert_int_equal(lf_validate_a1111(j, true, &s_ctx, &r, &err), 0);
    assert_null(r.mask);
    lf_job_request_clear(&r);
    json_decref(j);
}

static const s_bad_t s_a1111_bad[] = {
    {"{\"steps\":\"x\"}", "steps", "invalid_type"},
    {"{\"steps\":500}", "steps", "out_of_range"},
    {"{\"width\":100}", "width", "invalid_value"},
    {"{\"height\":4096}", "height", "out_of_range"},
    {"{\"sampler_name\":\"Warp 9\"}", "sampler_name", "invalid_value"},
    {"{\"sampler_index\":\"Warp 9\"}", "sampler_index", "invalid_value"},
    {"{\"scheduler\":\"sideways\"}", "scheduler", "invalid_value"},
    {"{\"batch_size\":4,\"n_iter\":4}", "n_iter", "out_of_range"},
    {"{\"seed\":\"x\"}", "seed", "invalid_type"},
    {"{\"override_settings\":[]}", "override_settings", "invalid_type"},
    {"{\"override_settings\":{\"sd_model_checkpoint\":3}}", "override_settings.sd_model_checkpoint", "invalid_type"},
    {"{\"send_images\":\"yes\"}", "send_images", "invalid_type"},
    {"{\"cfg_scale\":\"high\"}", "cfg_scale", "invalid_type"},
    {"{\"prompt\":1}", "prompt", "invalid_type"},
};

static void test_a1111_errors_name_the_field(void **state) {
    for (size_t i = 0; i < sizeof s_a1111_bad / sizeof s_a1111_bad[0]; i++) {
        const s_bad_t *c = &s_a1111_bad[i];
        json_t *j = s_json(c->body);
        lf_job_request_t r;
        lf_verr_t err = {0};
        if (lf_validate_a1111(j, false, &s_ctx, &r, &err) != LF_EINVAL) fail_msg("%s: accepted", c->body);
        if (strcmp(err.field, c->field) || strcmp(err.code, c->code))
            fail_msg("%s: got field '%s' code %s, want '%s' %s", c->body, err.field, err.code, c->field,
                     c->code);
        json_decref(j);
    }
    /* img2img specifics. */
    const char *bad[][2] = {{"{}", "init_images"},
                            {"{\"init_images\":[]}", "init_images"},
                            {"{\"init_images\":[1]}", "init_images"},
                            {"{\"init_images\":[\"x\"],\"denoising_strength\":2}", "denoising_strength"},
                            {"{\"init_images\":[\"x\"],\"mask\":5}", "mask"},
                            {"{\"init_images\":[\"x\"],\"mask_blur\":65}", "mask_blur"}};
    for (size_t i = 0; i < 6; i++) {
        json_t *j = s_json(bad[i][0]);
        lf_job_request_t r;
        lf_verr_t err = {0};
        assert_int_equal(lf_validate_a1111(j, true, &s_ctx, &r, &err), LF_EINVAL);
        assert_string_equal(err.field, bad[i][1]);
        json_decref(j);
    }
}

static void test_names(void **state) {
    const char *sch;
    assert_string_equal(lf_validate_sampler_lookup("Euler a", &sch), "euler_ancestral");
    assert_null(sch);
    assert_string_equal(lf_validate_sampler_lookup("euler_a", NULL), "euler_ancestral");
    assert_string_equal(lf_validate_sampler_lookup("DPM++ 2M SDE Karras", &sch), "dpmpp_2m_sde");
    assert_string_equal(sch, "karras");
    assert_string_equal(lf_validate_sampler_lookup("DPM++ 2M SDE", &sch), "dpmpp_2m_sde");
    assert_null(sch);
    assert_null(lf_validate_sampler_lookup("Euler b", NULL));
    assert_int_equal(lf_validate_scheduler_lookup("SGM Uniform", &sch), 0);
    assert_string_equal(sch, "sgm_uniform");
    assert_int_equal(lf_validate_scheduler_lookup("nope", &sch), LF_ENOTFOUND);
    assert_true(lf_validate_preset_name("my-preset_1.2"));
    assert_false(lf_validate_preset_name(".hidden"));
    assert_false(lf_validate_preset_name("a/b"));
    assert_false(lf_validate_preset_name(""));
    assert_true(lf_validate_id("01HX-abc:2"));
    assert_false(lf_validate_id("a b"));
    assert_true(lf_validate_is_diagnostic("lf-diagnostic"));
    assert_false(lf_validate_is_diagnostic("sd15"));
}

/* Every sampler and scheduler the engine has is listed and accepted by both
 * of its names, and the farm lists nothing the engine lacks. */
static void test_names_match_the_engine(void **state) {
    static const struct {
        const char *comfy, *a1111;
    } eng[] = {
#define S_ROW(name, comfy, a1111) {comfy, a1111},
        LF_SAMPLER_MAP(S_ROW)
#undef S_ROW
    };
    size_t n = 0;
    const lf_sampler_name_t *t = lf_validate_samplers(&n);
    assert_int_equal(n, LF_SAMPLER_COUNT);
    for (size_t i = 0; i < sizeof eng / sizeof eng[0]; i++) {
        const char *got = lf_validate_sampler_lookup(eng[i].comfy, NULL);
        if (!got) fail_msg("the farm refuses the engine's sampler %s", eng[i].comfy);
        assert_string_equal(got, eng[i].comfy);
        got = lf_validate_sampler_lookup(eng[i].a1111, NULL);
        if (!got) fail_msg("the farm refuses the engine's sampler %s", eng[i].a1111);
        assert_string_equal(got, eng[i].comfy);
        bool listed = false;
        for (size_t k = 0; k < n; k++) listed |= !strcmp(t[k].name, eng[i].comfy);
        assert_true(listed);
    }
    lf_job_request_t jr;
    lf_verr_t e;
    json_t *b = s_json("{\"sampler\":\"uni_pc\",\"scheduler\":\"ddim_uniform\"}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &jr, &e), 0);
    assert_string_equal(jr.params.sampler, "uni_pc");
    assert_string_equal(jr.params.scheduler, "ddim_uniform");
    lf_job_request_clear(&jr);
    json_decref(b);
    size_t ns = 0;
    const lf_param_enum_t *sch = lf_validate_schedulers(&ns);
    assert_int_equal(ns, LF_SCHEDULER_COUNT);
    for (size_t i = 0; i < ns; i++) {
        const char *ours = NULL;
        assert_int_equal(lf_validate_scheduler_lookup(sch[i].name, &ours), 0);
        assert_string_equal(ours, sch[i].name);
    }
}

/* Step caching: the native object and flat rows, A1111's override_settings
 * keys, and the table's limits are the engine's (lf_stepcache.h). */
static void test_cache_option(void **state) {
    (void)state;
    lf_job_request_t r;
    lf_verr_t e;
    json_t *b = s_json("{\"cache\":{\"kind\":\"FBCache\",\"threshold\":0.2,\"start\":2,\"end\":1}}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.cache_kind, "fbcache");
    assert_true(r.params.cache_threshold == 0.2);
    assert_int_equal(r.params.cache_start, 2);
    assert_int_equal(r.params.cache_end, 1);
    assert_int_equal(r.params.cache_interval, 3); /* the default */
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"cache_kind\":\"deepcache\",\"cache_interval\":4,\"cache_depth\":2}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.cache_kind, "deepcache");
    assert_int_equal(r.params.cache_interval, 4);
    assert_int_equal(r.params.cache_depth, 2);
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"override_settings\":{\"cache_kind\":\"deepcache\",\"cache_interval\":2}}");
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.cache_kind, "deepcache");
    assert_int_equal(r.params.cache_interval, 2);
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"override_settings\":{\"cache_threshold\":2}}");
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), LF_EINVAL);
    assert_string_equal(e.field, "override_settings.cache_threshold");
    json_decref(b);
    const lf_param_def_t *t = lf_params_table();
    assert_true(t[LF_P_cache_threshold].hi == LF_STEPCACHE_MAX_THRESHOLD);
    assert_true(t[LF_P_cache_start].hi == LF_STEPCACHE_MAX_WINDOW);
    assert_true(t[LF_P_cache_end].hi == LF_STEPCACHE_MAX_WINDOW);
    assert_true(t[LF_P_cache_interval].lo == 1 && t[LF_P_cache_interval].hi == LF_STEPCACHE_MAX_INTERVAL);
    assert_true(t[LF_P_cache_depth].hi == LF_STEPCACHE_MAX_DEPTH);
    /* The enum list is in lf_stepcache_kind_t order (the worker parses names). */
    assert_string_equal(lf_param_caches[LF_STEPCACHE_NONE].name, "none");
    assert_string_equal(lf_param_caches[LF_STEPCACHE_FBCACHE].name, "fbcache");
    assert_string_equal(lf_param_caches[LF_STEPCACHE_DEEPCACHE].name, "deepcache");
    assert_null(lf_param_caches[LF_STEPCACHE_KIND_COUNT].name);
}

/* Compute precision: native and A1111 override_settings; unset is the
 * worker's LF_PRECISION; a bad word is a 400 naming the field. The list is
 * in lf_precision_t order (the engine parses the names). */
static void test_precision_option(void **state) {
    (void)state;
    lf_job_request_t r;
    lf_verr_t e;
    json_t *b = s_json("{\"prompt\":\"x\"}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    assert_null(r.params.precision);
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"precision\":\"BF16\"}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.precision, "bf16");
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"override_settings\":{\"precision\":\"auto\"}}");
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.precision, "auto");
    lf_job_request_clear(&r);
    json_decref(b);
    b = s_json("{\"precision\":\"fp8\"}");
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), LF_EINVAL);
    assert_string_equal(e.field, "precision");
    json_decref(b);
    b = s_json("{\"override_settings\":{\"precision\":3}}");
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), LF_EINVAL);
    assert_string_equal(e.field, "override_settings.precision");
    json_decref(b);
    assert_string_equal(lf_param_precisions[LF_PRECISION_F32].name, "f32");
    assert_string_equal(lf_param_precisions[LF_PRECISION_BF16].name, "bf16");
    assert_string_equal(lf_param_precisions[LF_PRECISION_AUTO].name, "auto");
    assert_null(lf_param_precisions[LF_PRECISION_AUTO + 1].name);
}

static void test_b64_roundtrip(void **state) {
    const uint8_t data[] = {0, 1, 2, 250, 251, 252, 253, 'x'};
    for (size_t n = 0; n <= sizeof data; n++) {
        char *t = lf_b64_encode(data, n);
        assert_non_null(t);
        uint8_t *back = NULL;
        size_t bl = 0;
        assert_int_equal(lf_b64_decode(t, strlen(t), 100, &back, &bl), 0);
        assert_int_equal(bl, n);
        assert_memory_equal(back, data, n);
        free(back);
        free(t);
    }
    uint8_t *o = NULL;
    size_t ol;
    assert_int_equal(lf_b64_decode("data:image/png;base64,aGk=", 26, 10, &o, &ol), 0);
    assert_int_equal(ol, 2);
    assert_memory_equal(o, "hi", 2);
    free(o);
    assert_int_equal(lf_b64_decode("a!b=", 4, 10, &o, &ol), LF_EFORMAT);
    assert_int_equal(lf_b64_decode("aGVsbG8gd29ybGQ=", 16, 4, &o, &ol), LF_ETOOBIG);
}

static void test_ratelimit(void **state) {
    lf_ratelimit_t *rl = lf_ratelimit_new(2.0, 3.0, 4);
    assert_non_null(rl);
    int ra = 0;
    for (int i = 0; i < 3; i++) assert_true(lf_ratelimit_take(rl, "k", 1000, &ra));
    assert_false(lf_ratelimit_take(rl, "k", 1000, &ra));
    assert_int_equal(ra, 1);
    assert_true(lf_ratelimit_take(rl, "other", 1000, &ra)); /* per key */
    assert_true(lf_ratelimit_take(rl, "k", 1500, &ra));     /* 0.5 s = 1 token */
    assert_false(lf_ratelimit_take(rl, "k", 1500, &ra));
    /* Many keys: the table recycles, never fails. */
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_true(lf_ratelimit_take(rl, key, 2000 + i, NULL));
    }
    lf_ratelimit_destroy(&rl);
    assert_null(rl);
    lf_ratelimit_destroy(&rl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_errors_name_the_field),
        cmocka_unit_test(test_native_defaults_and_seed),
        cmocka_unit_test(test_cache_option),
        cmocka_unit_test(test_fewstep_options),
        cmocka_unit_test(test_precision_option),
        cmocka_unit_test(test_model_defaults),
        cmocka_unit_test(test_a1111_lenient_and_mapped),
        cmocka_unit_test(test_a1111_errors_name_the_field),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_names_match_the_engine),
        cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_ratelimit),
    };
    return cmocka_run_group_tests_name("gateway_validate", tests, NULL, NULL);
}
