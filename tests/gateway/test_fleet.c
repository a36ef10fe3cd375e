/* test_fleet: the gateway's decisions from live workers' capabilities —
 * the default model never falls to the diagnostic test card while a real
 * model exists and is "" (not a guess) with no worker; a job bigger than
 * every worker's max_pixels is refused naming width or batch_size with the
 * limit; readiness reasons — and the idempotency fingerprint. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lf_error.h"
#include "lf_fleet.h"
#include "lf_idem.h"

/* A worker advertising the given models (NULL-terminated) with a pixel cap. */
static lf_worker_view_t s_worker(lf_model_info_t *models, size_t n, uint64_t max_pixels) {
    lf_worker_view_t w = {.id = "w"};
    w.caps.models = models;
    w.caps.n_models = n;
    w.caps.max_pixels = max_pixels;
    return w;
}

static void test_default_model(void **state) {
    (void)state;
    char out[128] = "x";
    /* No worker: no default, and no guess. */
    lf_fleet_default_model(NULL, 0, "lf-diagnostic", out, sizeof out);
    assert_string_equal(out, "");
    /* The diagnostic card listed first must not win over a real model. */
    lf_model_info_t a[] = {{.name = "lf-diagnostic", .kind = "diagnostic", .resolution = 0, .preview = NULL}, {.name = "lf-tiny-shapes", .kind = "sd15", .resolution = 256, .preview = NULL}};
    lf_worker_view_t w1 = s_worker(a, 2, 0);
    lf_fleet_default_model(&w1, 1, "lf-diagnostic", out, sizeof out);
    assert_string_equal(out, "lf-tiny-shapes");
    lf_fleet_default_model(&w1, 1, NULL, out, sizeof out);
    assert_string_equal(out, "lf-tiny-shapes");
    /* A user's model beats the project's own, on whichever worker. */
    lf_model_info_t b[] = {{.name = "lf-diagnostic", .kind = "diagnostic", .resolution = 0, .preview = NULL}, {.name = "dreamshaper", .kind = "sd15", .resolution = 512, .preview = NULL}};
    lf_worker_view_t ws[2] = {w1, s_worker(b, 2, 0)};
    lf_fleet_default_model(ws, 2, "", out, sizeof out);
    assert_string_equal(out, "dreamshaper");
    /* LF_DEFAULT_MODEL wins when served, and is ignored when it is not. */
    lf_fleet_default_model(ws, 2, "lf-tiny-shapes", out, sizeof out);
    assert_string_equal(out, "lf-tiny-shapes");
    lf_fleet_default_model(ws, 2, "gone", out, sizeof out);
    assert_string_equal(out, "dreamshaper");
    /* The card only when it is all there is. */
    lf_model_info_t c[] = {{.name = "lf-diagnostic", .kind = "diagnostic", .resolution = 0, .preview = NULL}};
    lf_worker_view_t w3 = s_worker(c, 1, 0);
    lf_fleet_default_model(&w3, 1, "lf-diagnostic", out, sizeof out);
    assert_string_equal(out, "lf-diagnostic");
    assert_true(lf_fleet_serves(ws, 2, "dreamshaper"));
    assert_false(lf_fleet_serves(ws, 2, "nope"));
    assert_false(lf_fleet_serves(NULL, 0, "lf-diagnostic"));
}

static void test_fit(void **state) {
    (void)state;
    lf_model_info_t m[] = {{.name = "sd", .kind = "sd15", .resolution = 512, .preview = NULL}};
    lf_model_info_t other[] = {{.name = "big", .kind = "sd15", .resolution = 512, .preview = NULL}};
    lf_worker_view_t ws[2] = {s_worker(m, 1, 2048u * 2048u), s_worker(other, 1, 0)};
    lf_job_params_t p = {.model = "sd", .width = 2048, .height = 2048, .batch_size = 8};
    lf_verr_t e;
    /* 2048x2048 x 8 is over the only "sd" worker's cap (the unlimited worker serves another model). */
    assert_int_equal(lf_fleet_fit(ws, 2, &p, &e), LF_ELIMIT);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, "batch_size");
    assert_non_null(strstr(e.message, "4194304"));
    assert_non_null(strstr(e.message, "at most batch_size 1"));
    p.batch_size = 1;
    assert_int_equal(lf_fleet_fit(ws, 2, &p, &e), 0);
    /* One image too big: the width is at fault. */
    lf_worker_view_t small = s_worker(m, 1, 512u * 512u);
    p.width = p.height = 1024;
    assert_int_equal(lf_fleet_fit(&small, 1, &p, &e), LF_ELIMIT);
    assert_string_equal(e.field, "width");
    assert_non_null(strstr(e.message, "262144"));
    /* Hires-Fix: the final size counts, and the field that made it is named. */
    p.width = p.height = 512;
    p.enable_hr = true;
    p.hr_scale = 2.0;
    assert_int_equal(lf_fleet_fit(&small, 1, &p, &e), LF_ELIMIT);
    assert_string_equal(e.field, "hr_scale");
    assert_non_null(strstr(e.message, "Hires-Fix size 1024x1024"));
    p.hr_resize_x = 768; /* 768x768 */
    assert_int_equal(lf_fleet_fit(&small, 1, &p, &e), LF_ELIMIT);
    assert_string_equal(e.field, "hr_resize_x");
    p.hr_resize_x = 0;
    p.hr_scale = 1.0;
    assert_int_equal(lf_fleet_fit(&small, 1, &p, &e), 0);
    uint32_t ow, oh; /* A1111's crop: cover 1024x768 from a square, crop to it */
    p.hr_resize_x = 1024, p.hr_resize_y = 768;
    lf_params_output_size(&p, &ow, &oh);
    assert_int_equal(ow, 1024), assert_int_equal(oh, 768);
    p.hr_resize_y = 0; /* x only: the aspect */
    p.height = 768;
    lf_params_output_size(&p, &ow, &oh);
    assert_int_equal(ow, 1024), assert_int_equal(oh, 1536);
    p.enable_hr = false, p.hr_resize_x = 0;
    /* No cap, or nobody serving the model: not this check's refusal. */
    p.model = "big";
    p.batch_size = 8;
    p.width = p.height = 2048;
    assert_int_equal(lf_fleet_fit(ws, 2, &p, &e), 0);
    p.model = "nobody";
    assert_int_equal(lf_fleet_fit(ws, 2, &p, &e), 0);
}

/* LoRAs: found by name, alias or path without extension on a worker that
 * serves the job's model; unknown ones named by field; bad tags refused;
 * the list is one entry per name with its worker count. */
static void test_loras(void **state) {
    (void)state;
    lf_model_info_t m1[] = {{.name = "sd", .kind = "sd15", .resolution = 512, .preview = NULL}}, m2[] = {{.name = "other", .kind = "sd15", .resolution = 512, .preview = NULL}};
    lf_lora_info_t l1[] = {{"ink", "inky", "styles/ink.safetensors", "abc", {0}}, {"det", NULL, "det.pt", NULL, {0}}};
    lf_lora_info_t l2[] = {{"ink", "inky", "ink.safetensors", "abc", {0}}, {"only2", NULL, "only2.safetensors", NULL, {0}}};
    lf_worker_view_t ws[2] = {s_worker(m1, 1, 0), s_worker(m2, 1, 0)};
    ws[0].caps.loras = l1, ws[0].caps.n_loras = 2;
    ws[1].caps.loras = l2, ws[1].caps.n_loras = 2;
    lf_job_params_t p = {0};
    assert_int_equal(lf_params_defaults(&p), 0);
    p.model = strdup("sd");
    free(p.prompt);
    p.prompt = strdup("a <lora:inky:0.5> b <lora:styles/ink:1> <hypernet:x>");
    const lf_param_def_t *d = &lf_params_table()[LF_P_loras];
    assert_int_equal(lf_param_loras_add(&p, d, "det", 1, NAN), 0);
    lf_verr_t e = {0};
    assert_int_equal(lf_fleet_loras_check(ws, 2, &p, "prompt", &e), 0);
    /* only2 is on the worker that does not serve "sd". */
    assert_int_equal(lf_param_loras_add(&p, d, "only2", 1, NAN), 0);
    assert_int_equal(lf_fleet_loras_check(ws, 2, &p, "prompt", &e), LF_ENOTFOUND);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "unknown_lora");
    assert_string_equal(e.field, "loras[1].name");
    assert_non_null(strstr(e.message, "'only2'"));
    lf_params_clear(&p);
    assert_int_equal(lf_params_defaults(&p), 0);
    p.model = strdup("sd");
    free(p.prompt);
    p.prompt = strdup("<lora:nope:1>");
    assert_int_equal(lf_fleet_loras_check(ws, 2, &p, "prompt", &e), LF_ENOTFOUND);
    assert_string_equal(e.field, "prompt");
    assert_non_null(strstr(e.message, "'nope'"));
    free(p.prompt);
    p.prompt = strdup("<lora:ink:heavy>");
    assert_int_equal(lf_fleet_loras_check(ws, 2, &p, "prompt", &e), LF_EINVAL);
    assert_string_equal(e.code, "invalid_value");
    lf_params_clear(&p);
    const lf_lora_info_t *out[4];
    size_t holders[4];
    assert_int_equal(lf_fleet_loras(ws, 2, out, holders, 4), 3);
    assert_string_equal(out[0]->name, "ink");
    assert_int_equal(holders[0], 2);
    assert_string_equal(out[2]->name, "only2");
    assert_int_equal(holders[2], 1);
    assert_int_equal(lf_fleet_loras(ws, 2, out, holders, 1), 3); /* count beyond cap */
}

static void test_readiness(void **state) {
    (void)state;
    const char *why[4];
    lf_fleet_health_t h = {.redis_ok = true, .brokers_live = 1, .workers = 1, .workers_with_models = 1};
    assert_int_equal(lf_fleet_not_ready(&h, why, 4), 0);
    h.brokers_live = 0;
    assert_int_equal(lf_fleet_not_ready(&h, why, 4), 1);
    assert_string_equal(why[0], "no live broker");
    h = (lf_fleet_health_t){0};
    assert_int_equal(lf_fleet_not_ready(&h, why, 4), 3);
    assert_string_equal(why[2], "no worker has registered");
    assert_int_equal(lf_fleet_not_ready(&h, NULL, 0), 3);
    lf_model_info_t m[] = {{.name = "sd", .kind = "sd15", .resolution = 512, .preview = NULL}};
    lf_worker_view_t ws[2] = {s_worker(m, 1, 0), s_worker(NULL, 0, 0)};
    size_t n = 0, with = 0;
    lf_fleet_count(ws, 2, &n, &with);
    assert_int_equal(n, 2);
    assert_int_equal(with, 1);
}

static const lf_worker_view_t *s_fleet_ws;
static uint32_t s_fleet_res(void *ud, const char *model) {
    (void)ud;
    return lf_fleet_resolution(s_fleet_ws, 2, model);
}

/* A fleet advertising an SDXL base and refiner next to an SD1.5 model: a
 * job on the SDXL model without a size gets its 1024; a refiner or VAE no
 * live worker serving the model has is refused naming the client's field;
 * a size over every capable worker's max_pixels is refused as before. */
static void test_sdxl_parts(void **state) {
    (void)state;
    lf_model_info_t xl[] = {{.name = "sdxl-base", .kind = "sdxl", .resolution = 1024, .preview = "approx"}, {.name = "sdxl-refiner", .kind = "sdxl", .resolution = 1024, .preview = "approx"}};
    lf_model_info_t sd[] = {{.name = "sd", .kind = "sd15", .resolution = 512, .preview = "taesd"}, {.name = "other-refiner", .kind = "sdxl", .resolution = 1024, .preview = "approx"}};
    lf_model_info_t mixed[] = {{.name = "sdxl-base", .kind = "sdxl", .resolution = 1024, .preview = "approx"}, {.name = "sd", .kind = "sd15", .resolution = 512, .preview = "taesd"}};
    char *vaes[] = {"sdxl-vae-fp16-fix"};
    lf_worker_view_t ws[2] = {s_worker(xl, 2, 1024 * 1024), s_worker(sd, 2, 0)};
    ws[0].caps.vaes = vaes;
    ws[0].caps.n_vaes = 1;
    s_fleet_ws = ws;
    assert_int_equal(lf_fleet_resolution(ws, 2, "sdxl-base"), 1024);
    assert_int_equal(lf_fleet_resolution(ws, 2, "sd"), 512);
    assert_int_equal(lf_fleet_resolution(ws, 2, "nope"), 0);

    lf_validate_ctx_t ctx = {.default_model = "sd", .random_seed = 1, .model_resolution = s_fleet_res};
    lf_job_request_t r;
    lf_verr_t e = {0};
    json_t *b = json_pack("{s:s,s:s,s:f,s:s}", "model", "sdxl-base", "refiner_checkpoint", "sdxl-refiner",
                          "refiner_switch_at", 0.8, "vae", "sdxl-vae-fp16-fix");
    assert_int_equal(lf_validate_job(b, &ctx, &r, &e), 0);
    assert_int_equal(r.params.width, 1024);
    assert_int_equal(r.params.height, 1024);
    assert_int_equal(lf_fleet_fit(ws, 2, &r.params, &e), 0);
    assert_int_equal(lf_fleet_parts(ws, 2, &r.params, "refiner_checkpoint", "vae", &e), 0);
    /* A refiner only another worker has: the two must run on one worker. */
    free(r.params.refiner_checkpoint);
    r.params.refiner_checkpoint = strdup("other-refiner");
    assert_int_equal(lf_fleet_parts(ws, 2, &r.params, "refiner_checkpoint", "vae", &e), LF_ENOTFOUND);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, "refiner_checkpoint");
    assert_string_equal(e.code, "unknown_model");
    assert_non_null(strstr(e.message, "other-refiner"));
    /* A refiner of another family (on a worker that has both). */
    lf_worker_view_t wm = s_worker(mixed, 2, 0);
    free(r.params.refiner_checkpoint);
    r.params.refiner_checkpoint = strdup("sd");
    assert_int_equal(lf_fleet_parts(&wm, 1, &r.params, "refiner_checkpoint", "vae", &e), LF_EINVAL);
    assert_string_equal(e.field, "refiner_checkpoint");
    assert_non_null(strstr(e.message, "sd15"));
    /* SDXL kinds go together (a refiner may be advertised with a kind of its own). */
    mixed[1] = (lf_model_info_t){.name = "sd", .kind = "sdxl_refiner", .resolution = 1024, .preview = NULL};
    free(r.params.vae);
    r.params.vae = NULL; /* wm has no VAE */
    assert_int_equal(lf_fleet_parts(&wm, 1, &r.params, "refiner_checkpoint", "vae", &e), 0);
    free(r.params.refiner_checkpoint);
    r.params.refiner_checkpoint = NULL;
    free(r.params.vae);
    r.params.vae = strdup("no-such-vae");
    assert_int_equal(lf_fleet_parts(ws, 2, &r.params, "refiner_checkpoint", "override_settings.sd_vae", &e), LF_ENOTFOUND);
    assert_string_equal(e.field, "override_settings.sd_vae");
    assert_string_equal(e.code, "unknown_vae");
    assert_non_null(strstr(e.message, "no-such-vae"));
    /* Bigger than the only worker serving sdxl-base takes. */
    free(r.params.vae);
    r.params.vae = NULL;
    r.params.width = 1536;
    assert_int_equal(lf_fleet_fit(ws, 2, &r.params, &e), LF_ELIMIT);
    assert_string_equal(e.field, "width");
    /* sd: an unlimited worker serves it, but only the capped one has the VAE. */
    free(r.params.model);
    r.params.model = strdup("sd");
    r.params.vae = strdup("sdxl-vae-fp16-fix");
    lf_model_info_t both[] = {{.name = "sd", .kind = "sd15", .resolution = 512, .preview = NULL}};
    lf_worker_view_t ws2[2] = {s_worker(both, 1, 1024 * 1024), s_worker(both, 1, 0)};
    ws2[0].caps.vaes = vaes;
    ws2[0].caps.n_vaes = 1;
    assert_int_equal(lf_fleet_fit(ws2, 2, &r.params, &e), LF_ELIMIT);
    free(r.params.vae);
    r.params.vae = NULL;
    assert_int_equal(lf_fleet_fit(ws2, 2, &r.params, &e), 0);
    lf_job_request_clear(&r);
    json_decref(b);
    /* The SD1.5 model keeps its 512. */
    b = json_pack("{s:s}", "model", "sd");
    assert_int_equal(lf_validate_a1111(b, false, &ctx, &r, &e), 0);
    assert_int_equal(r.params.width, 512);
    lf_job_request_clear(&r);
    json_decref(b);
}

/* VAEs per family (issue 17): a worker says each VAE's family and latent
 * channels (caps vae_info). A job whose VAE does not fit its model's family
 * is refused naming the client's field and both families; a VAE that fits
 * (or one a worker says no family for: an older worker) passes; an unknown
 * name is still unknown_vae. The listings: every VAE with its family, and
 * per model the ones that fit. */
static void test_vae_family(void **state) {
    (void)state;
    lf_model_info_t m1[] = {{.name = "sd", .kind = "sd15"}, {.name = "xl", .kind = "sdxl"},
                            {.name = "flux-dev", .kind = "flux"}, {.name = "lf-diagnostic", .kind = "diagnostic"}};
    char *vaes[] = {"ae", "sdxl_vae", "vae-ft-mse", "mystery", "old"};
    lf_vae_info_t info[] = {{.name = "ae", .kind = "flux", .latent = 16},
                            {.name = "sdxl_vae", .kind = "sdxl", .latent = 4},
                            {.name = "vae-ft-mse", .kind = "sd15", .latent = 4},
                            {.name = "mystery", .kind = "sd", .latent = 4}}; /* "old": none said */
    lf_worker_view_t ws[1] = {s_worker(m1, 4, 0)};
    ws[0].caps.vaes = vaes;
    ws[0].caps.n_vaes = 5;
    ws[0].caps.vae_info = info;
    ws[0].caps.n_vae_info = 4;
    static const struct {
        const char *model, *vae;
        int rc;
    } cases[] = {
        {"sd", "ae", LF_EINVAL},         {"sd", "sdxl_vae", LF_EINVAL}, {"sd", "vae-ft-mse", 0},
        {"sd", "mystery", 0},            {"sd", "old", 0},              {"xl", "ae", LF_EINVAL},
        {"xl", "sdxl_vae", 0},           {"xl", "vae-ft-mse", LF_EINVAL}, {"xl", "mystery", 0},
        {"flux-dev", "ae", 0},           {"flux-dev", "sdxl_vae", LF_EINVAL}, {"flux-dev", "mystery", LF_EINVAL},
        {"flux-dev", "old", 0},          {"lf-diagnostic", "ae", 0},    {"sd", "nope", LF_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lf_job_params_t p = {.model = (char *)cases[i].model, .vae = (char *)cases[i].vae};
        lf_verr_t e = {0};
        int rc = lf_fleet_parts(ws, 1, &p, "refiner_checkpoint", "override_settings.sd_vae", &e);
        printf("  %s + VAE %s: %d %s\n", cases[i].model, cases[i].vae, rc, rc ? e.message : "");
        assert_int_equal(rc, cases[i].rc);
        if (!rc) continue;
        assert_int_equal(e.status, 400);
        assert_string_equal(e.field, "override_settings.sd_vae");
        assert_string_equal(e.code, rc == LF_EINVAL ? "invalid_value" : "unknown_vae");
    }
    lf_job_params_t p = {.model = "sd", .vae = "ae"};
    lf_verr_t e = {0};
    assert_int_equal(lf_fleet_parts(ws, 1, &p, "refiner_checkpoint", "vae", &e), LF_EINVAL);
    assert_string_equal(e.field, "vae");
    assert_non_null(strstr(e.message, "'ae' is a flux VAE (16 latent channels)"));
    assert_non_null(strstr(e.message, "model 'sd' is sd15 (4 latent channels)"));
    /* A second worker serving sd with its own ae of no family said: it may take the job. */
    char *old_vaes[] = {"ae"};
    lf_worker_view_t two[2] = {ws[0], s_worker(m1, 1, 0)};
    two[1].caps.vaes = old_vaes;
    two[1].caps.n_vaes = 1;
    assert_int_equal(lf_fleet_parts(two, 2, &p, "refiner_checkpoint", "vae", &e), 0);

    json_t *all = lf_fleet_vaes(ws, 1);
    char *d = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    printf("  vaes: %s\n", d);
    assert_string_equal(d, "[{\"family\":\"flux\",\"latent_channels\":16,\"name\":\"ae\",\"workers\":1},"
                           "{\"family\":\"sdxl\",\"latent_channels\":4,\"name\":\"sdxl_vae\",\"workers\":1},"
                           "{\"family\":\"sd15\",\"latent_channels\":4,\"name\":\"vae-ft-mse\",\"workers\":1},"
                           "{\"family\":\"sd\",\"latent_channels\":4,\"name\":\"mystery\",\"workers\":1},"
                           "{\"name\":\"old\",\"workers\":1}]");
    free(d);
    json_decref(all);
    static const char *const fits[][2] = {{"sd", "[\"vae-ft-mse\",\"mystery\",\"old\"]"},
                                          {"xl", "[\"sdxl_vae\",\"mystery\",\"old\"]"},
                                          {"flux-dev", "[\"ae\",\"old\"]"},
                                          {"nope", "[]"}};
    for (size_t i = 0; i < 4; i++) {
        json_t *f = lf_fleet_model_vaes(ws, 1, fits[i][0]);
        d = json_dumps(f, JSON_COMPACT);
        printf("  vaes of %s: %s\n", fits[i][0], d);
        assert_string_equal(d, fits[i][1]);
        free(d);
        json_decref(f);
    }
}

/* GET /v1/models and /v1/loras "defaults": only what is said, timesteps as
 * the API takes them (an array); a copy owns its strings. */
static void test_defaults_json(void **state) {
    (void)state;
    assert_null(lf_fleet_defaults_json(&(lf_model_defaults_t){0}));
    lf_model_defaults_t d = {.steps = 1, .has_cfg = true, .cfg_scale = 0.0, .sampler = strdup("tcd"),
                             .timesteps = strdup("800"), .has_weight = true, .weight = 0.5};
    json_t *j = lf_fleet_defaults_json(&d);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"cfg_scale\":0.0,\"sampler\":\"tcd\",\"steps\":1,\"timesteps\":[800],\"weight\":0.5}");
    free(s);
    json_decref(j);
    lf_model_defaults_t c;
    assert_int_equal(lf_model_defaults_copy(&c, &d), 0);
    lf_model_defaults_clear(&d);
    assert_string_equal(c.timesteps, "800");
    assert_string_equal(c.sampler, "tcd");
    assert_int_equal(c.steps, 1);
    lf_model_defaults_clear(&c);
}

static void test_idem_hash(void **state) {
    (void)state;
    lf_job_request_t a = {.params = {.model = "sd", .prompt = "a cat", .width = 512, .height = 512, .steps = 20,
                                     .seed = 123},
                          .priority = LF_PRIO_NORMAL};
    lf_job_request_t b = a;
    char ha[LF_IDEM_HASH_LEN], hb[LF_IDEM_HASH_LEN];
    assert_int_equal(lf_idem_hash(&a, false, ha), 0);
    assert_int_equal(strlen(ha), 16);
    assert_int_equal(lf_idem_hash(&b, false, hb), 0);
    assert_string_equal(ha, hb);
    /* A drawn seed is not the client's: two draws hash alike. */
    b.params.seed = 999;
    assert_int_equal(lf_idem_hash(&b, false, hb), 0);
    assert_string_not_equal(ha, hb);
    assert_int_equal(lf_idem_hash(&a, true, ha), 0);
    assert_int_equal(lf_idem_hash(&b, true, hb), 0);
    assert_string_equal(ha, hb);
    /* Anything else asked differently differs. */
    b = a;
    b.params.prompt = "a dog";
    assert_int_equal(lf_idem_hash(&b, true, hb), 0);
    assert_string_not_equal(ha, hb);
    b = a;
    b.priority = LF_PRIO_HIGH;
    assert_int_equal(lf_idem_hash(&b, true, hb), 0);
    assert_string_not_equal(ha, hb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_model),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_loras),
        cmocka_unit_test(test_readiness),
        cmocka_unit_test(test_sdxl_parts),
        cmocka_unit_test(test_vae_family),
        cmocka_unit_test(test_defaults_json),
        cmocka_unit_test(test_idem_hash),
    };
    return cmocka_run_group_tests_name("fleet", tests, NULL, NULL);
}
