/* Flux end to end through the whole farm (HTTP -> gateway -> broker ->
 * worker -> engine), on the tiny Flux parts of tests/engine/fixtures/flux/
 * laid out as ComfyUI users have them:
 *   models/unet/flux-dev.safetensors              the dev transformer (BFL names)
 *   models/diffusion_models/flux-schnell.safetensors  the schnell one (no guidance)
 *   models/clip/clip_l.safetensors, t5xxl_tiny.safetensors (CLIP-L and T5 stand-ins
 *     whose vocabularies fit the prompt), spiece.model (T5's tokenizer: ComfyUI's
 *     t5xxl files carry none)
 *   models/vae/ae.safetensors                     the 16-channel VAE
 *   models/lf-tiny-shapes.safetensors, models/vae/sd-shapes.safetensors
 *     the built-in SD1.5 model, and a copy of it as a 4-channel SD VAE
 * Checked:
 *   - GET /v1/models and /sdapi/v1/sd-models list both with family flux and
 *     1024 px, approx previews (no TAEF1 here: the tiny VAE's x2 latent would
 *     make a TAEF1's x8 image larger than the image, which the pipeline drops;
 *     test_engine_pipeline_worker's test_flux_parts checks TAEF1's pick);
 *   - a native job on flux-dev with guidance 2.5 finishes with a live
 *     preview served while it runs; its PNG says "Distilled CFG Scale: 2.5"
 *     after "CFG scale"; its pixels equal what the engine facade
 *     (lf_engine_generate over lf_pipeline_run) makes in this process for
 *     the same request from the same parts;
 *   - A1111 txt2img on flux-dev with distilled_cfg_scale: the infotext says
 *     it; on flux-schnell (no guidance embedding) the infotext says none;
 *   - a bad guidance is a 400 naming "guidance" (native) or
 *     "distilled_cfg_scale" (A1111);
 *   - VAEs per family (the worker's caps vae_info, read from the files'
 *     headers): /sdapi/v1/sd-vae and GET /v1/models list each VAE's family
 *     and latent channels, /sdapi/v1/sd-vae?model= and each model's "vaes"
 *     only those that fit; the Flux ae named for the SD1.5 model (native
 *     vae, A1111 override_settings.sd_vae) or the SD VAE for Flux is a 400
 *     at submit naming the field and both families (no job id); the ae on
 *     flux-dev runs to done; A1111's stored sd_vae option (global) is
 *     dropped for a model of another family, used for one of its own.
 *
 * Needs the CLIP merges and T5's spiece.model (reference data, as
 * test_engine_flux's prompt test); exits 77 (ctest: skipped) without them. */
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

#include "lf_engine.h"
#include "lf_image.h"
#include "lf_testfarm.h"

#define S_PROMPT "a cat in the house" /* the prompt the tiny T5's vocabulary fits */

static lf_testfarm_folder_t s_f; /* models/ and assets/ */
static const char *s_dir = s_f.dir;

/* ComfyUI's split layout: two Flux transformers (dev in unet/, schnell in
 * diffusion_models/), CLIP-L, a T5 with its spiece.model, the VAE. */
static bool s_prepare(char *why, size_t len)
{
    char spm[1200];
    const char *rd = getenv("LF_REFDATA_DIR");
    snprintf(spm, sizeof spm, "%s/tokenizers/t5/spiece.model", rd && *rd ? rd : LF_SOURCE_DIR "/../shared/refdata");
    if (access(spm, R_OK) != 0) return snprintf(why, len, "no T5 spiece.model %.400s (reference data)", spm), false;
    if (!lf_testfarm_folder_new(&s_f, LF_SOURCE_DIR, "flux-farm", why, len)) return false;
    const char *fx = LF_SOURCE_DIR "/tests/engine/fixtures/flux";
    if (lf_testfarm_sh("cd '%s' && mkdir -p models/unet models/diffusion_models models/clip models/vae && "
                       "cp '%s/flux_dev_bfl.safetensors' models/unet/flux-dev.safetensors && "
                       "cp '%s/flux_schnell_bfl.safetensors' models/diffusion_models/flux-schnell.safetensors && "
                       "cp '%s/flux_prompt_clip_l.safetensors' models/clip/clip_l.safetensors && "
                       "cp '%s/flux_prompt_t5.safetensors' models/clip/t5xxl_tiny.safetensors && "
                       "cp '%s' models/clip/spiece.model && cp '%s/flux_vae.safetensors' models/vae/ae.safetensors && "
                       "cp '%s' models/ && cp '%s' models/vae/sd-shapes.safetensors",
                       s_dir, fx, fx, fx, fx, spm, fx, s_f.shapes, s_f.shapes) != 0)
        return snprintf(why, len, "cannot prepare %s", s_dir), false;
    return true;
}

static int s_setup(void **state)
{
    lf_testfarm_opts_t o = {.n_workers = 1, .extra_env = {s_f.env_models, s_f.env_assets, "LF_PREVIEW_EVERY=1"}};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    if (!farm) return -1;
    *state = farm;
    return 0;
}

static void test_flux_listed(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/v1/models", lf_testfarm_url(farm));
    json_t *j = NULL, *m;
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    char *d = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "GET /v1/models: %s\n", d);
    free(d);
    int seen = 0;
    size_t i;
    json_array_foreach(json_object_get(j, "models"), i, m) {
        if (strcmp(lf_json_str(m, "name"), "flux-dev") && strcmp(lf_json_str(m, "name"), "flux-schnell")) continue;
        seen++;
        assert_string_equal(lf_json_str(m, "family"), "flux");
        assert_int_equal(json_integer_value(json_object_get(m, "resolution")), 1024);
        assert_string_equal(lf_json_str(m, "preview"), "approx");
    }
    assert_int_equal(seen, 2);
    json_decref(j);
    snprintf(url, sizeof url, "%s/sdapi/v1/sd-models", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    seen = 0;
    json_array_foreach(j, i, m) if (!strncmp(lf_json_str(m, "model_name"), "flux-", 5)) {
        seen++;
        assert_string_equal(lf_json_str(m, "family"), "flux");
    }
    assert_int_equal(seen, 2);
    json_decref(j);
}

/* The job's image as the engine facade makes it here from the same parts. */
static uint8_t *s_local_image(int guidance10, uint32_t *w, uint32_t *h)
{
    char unet[200], clip[200], t5[200], vae[200], assets[200];
    snprintf(unet, sizeof unet, "%s/models/unet/flux-dev.safetensors", s_dir);
    snprintf(clip, sizeof clip, "%s/models/clip/clip_l.safetensors", s_dir);
    snprintf(t5, sizeof t5, "%s/models/clip/t5xxl_tiny.safetensors", s_dir);
    snprintf(vae, sizeof vae, "%s/models/vae/ae.safetensors", s_dir);
    snprintf(assets, sizeof assets, "%s/assets", s_dir);
    lf_engine_opts_t eo = {.assets_dir = assets};
    lf_engine_t *e = NULL;
    char err[512];
    assert_int_equal(lf_engine_new(&eo, &e, err, sizeof err), 0);
    const char *texts[] = {clip, t5};
    lf_engine_load_opts_t lo = {.name = "flux-dev", .text_paths = texts, .n_text_paths = 2, .parts_vae_path = vae};
    int rc = lf_engine_load(e, unet, &lo);
    if (rc) fprintf(stderr, "local load: %s\n", lf_engine_errstr(e));
    assert_int_equal(rc, 0);
    lf_engine_request_t req = lf_engine_request_defaults();
    req.prompt = S_PROMPT, req.negative = "", req.steps = 3, req.cfg = 1.0, req.seed = 1234;
    req.width = 64, req.height = 64, req.sampler = "euler", req.scheduler = "simple", req.rng = "cpu";
    req.guidance = guidance10 / 10.0, req.has_tcd_gamma = 1, req.tcd_gamma = 0.3;
    lf_engine_result_t res = {0};
    rc = lf_engine_generate(e, &req, NULL, NULL, NULL, &res);
    if (rc) fprintf(stderr, "local generate: %s\n", lf_engine_errstr(e));
    assert_int_equal(rc, 0);
    assert_int_equal(res.n_images, 1);
    fprintf(stderr, "local infotext: %s\n", res.images[0].infotext);
    lf_image_t img = {0};
    assert_int_equal(lf_image_decode(res.images[0].png, res.images[0].png_len, NULL, &img, NULL, 0), 0);
    *w = img.width, *h = img.height;
    uint8_t *px = img.pixels;
    img.pixels = NULL;
    lf_image_clear(&img);
    lf_engine_result_clear(&res);
    lf_engine_destroy(&e);
    return px;
}

/* Waits for a job, fetching its preview while it runs; the final view. */
static json_t *s_wait(lf_testfarm_t *farm, const char *id, int *previews)
{
    char url[256], purl[300];
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), id);
    snprintf(purl, sizeof purl, "%s/v1/jobs/%s/preview", lf_testfarm_url(farm), id);
    json_t *j = NULL;
    for (long long t0 = lf_now_ms(); lf_now_ms() - t0 < 300000; usleep(30 * 1000)) {
        char *png = NULL;
        size_t len = 0;
        lf_image_info_t pinfo;
        if (lf_http_request("GET", purl, NULL, NULL, 0, &png, &len) == 200 && png &&
            lf_image_probe((const uint8_t *)png, len, &pinfo) == 0)
            (*previews)++;
        free(png);
        json_decref(j);
        j = NULL;
        if (lf_http_json("GET", url, NULL, &j) != 200 || !j) continue;
        const char *st = lf_json_str(j, "status");
        if (!strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) break;
    }
    return j;
}

static void test_flux_native_job(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *j = NULL;
    assert_int_equal(lf_http_json("POST", url,
                                  "{\"model\":\"flux-dev\",\"prompt\":\"" S_PROMPT "\",\"steps\":3,\"cfg_scale\":1,"
                                  "\"sampler\":\"euler\",\"scheduler\":\"simple\",\"seed\":1234,\"width\":64,"
                                  "\"height\":64,\"guidance\":2.5}",
                                  &j),
                     202);
    char id[128];
    snprintf(id, sizeof id, "%s", lf_json_str(j, "id"));
    json_decref(j);
    int previews = 0;
    j = s_wait(farm, id, &previews);
    char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
    fprintf(stderr, "native Flux job: %s; previews seen %d\n", d ? d : "?", previews);
    free(d);
    assert_non_null(j);
    assert_string_equal(lf_json_str(j, "status"), "done");
    json_decref(j);
    assert_true(previews > 0);
    snprintf(url, sizeof url, "%s/v1/images/%s-0.png", lf_testfarm_url(farm), id);
    char *png = NULL, *text = NULL;
    size_t len = 0;
    assert_int_equal(lf_http_request("GET", url, NULL, NULL, 0, &png, &len), 200);
    assert_int_equal(lf_image_png_text_get((const uint8_t *)png, len, "parameters", &text), 0);
    fprintf(stderr, "parameters: %s\n", text);
    assert_non_null(strstr(text, "CFG scale: 1, Distilled CFG Scale: 2.5, Seed: 1234"));
    assert_non_null(strstr(text, "Model: flux-dev"));
    free(text);
    lf_image_t img = {0};
    assert_int_equal(lf_image_decode((const uint8_t *)png, len, NULL, &img, NULL, 0), 0);
    free(png);
    uint32_t w = 0, h = 0;
    uint8_t *want = s_local_image(25, &w, &h);
    assert_int_equal(img.width, w);
    assert_int_equal(img.height, h);
    assert_int_equal(img.width, 64);
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) differ += img.pixels[i] != want[i];
    fprintf(stderr, "farm vs local engine: %zu of %zu bytes differ\n", differ, (size_t)w * h * 3);
    assert_int_equal(differ, 0);
    free(want);
    lf_image_clear(&img);
}

static char *s_a1111_infotext(lf_testfarm_t *farm, const char *model, const char *extra, int *code)
{
    char url[256], body[1024];
    snprintf(url, sizeof url, "%s/sdapi/v1/txt2img", lf_testfarm_url(farm));
    snprintf(body, sizeof body,
             "{\"prompt\":\"" S_PROMPT "\",\"steps\":2,\"width\":64,\"height\":64,\"cfg_scale\":1,\"seed\":7,"
             "\"sampler_name\":\"Euler\",\"scheduler\":\"Simple\"%s,\"override_settings\":{\"sd_model_checkpoint\":"
             "\"%s\"}}",
             extra, model);
    json_t *j = NULL;
    *code = lf_http_json("POST", url, body, &j);
    json_t *info = json_loads(lf_json_str(j, "info"), 0, NULL);
    const char *it = json_string_value(json_array_get(json_object_get(info, "infotexts"), 0));
    char *out = it ? strdup(it) : NULL;
    fprintf(stderr, "A1111 txt2img %s: %d %s\n", model, *code, out ? out : lf_json_str(j, "detail"));
    json_decref(info);
    json_decref(j);
    return out;
}

static void test_flux_a1111(void **state)
{
    lf_testfarm_t *farm = *state;
    int code = 0;
    char *it = s_a1111_infotext(farm, "flux-dev", ",\"distilled_cfg_scale\":4.5", &code);
    assert_int_equal(code, 200);
    assert_non_null(it);
    assert_non_null(strstr(it, "CFG scale: 1, Distilled CFG Scale: 4.5, Seed: 7"));
    free(it);
    /* schnell has no guidance embedding: accepted, unused, not written. */
    it = s_a1111_infotext(farm, "flux-schnell", ",\"distilled_cfg_scale\":4.5", &code);
    assert_int_equal(code, 200);
    assert_non_null(it);
    assert_null(strstr(it, "Distilled CFG Scale"));
    assert_non_null(strstr(it, "Model: flux-schnell"));
    free(it);
}

static void s_expect_400(lf_testfarm_t *farm, const char *path, const char *req, const char *field)
{
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s%s", lf_testfarm_url(farm), path);
    int code = lf_http_request("POST", url, "application/json", req, strlen(req), &body, NULL);
    fprintf(stderr, "%s %s: %d %s\n", path, req, code, body ? body : "");
    assert_int_equal(code, 400);
    assert_non_null(body);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", field);
    assert_non_null(strstr(body, quoted));
    free(body);
}

static void test_flux_bad_guidance(void **state)
{
    lf_testfarm_t *farm = *state;
    s_expect_400(farm, "/v1/jobs", "{\"model\":\"flux-dev\",\"prompt\":\"x\",\"guidance\":31}", "guidance");
    s_expect_400(farm, "/v1/jobs", "{\"model\":\"flux-dev\",\"prompt\":\"x\",\"guidance\":\"high\"}", "guidance");
    s_expect_400(farm, "/sdapi/v1/txt2img",
                 "{\"prompt\":\"x\",\"distilled_cfg_scale\":-1,\"override_settings\":{\"sd_model_checkpoint\":"
                 "\"flux-dev\"}}",
                 "distilled_cfg_scale");
}

/* The VAE named `name` in an array of {key: name, ...} (borrowed), or NULL. */
static json_t *s_by(json_t *arr, const char *key, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(lf_json_str(v, key), name)) return v;
    return NULL;
}

static void s_expect_family_400(lf_testfarm_t *farm, const char *path, const char *req, const char *field,
                                const char *vae_family, const char *model_family)
{
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s%s", lf_testfarm_url(farm), path);
    int code = lf_http_request("POST", url, "application/json", req, strlen(req), &body, NULL);
    fprintf(stderr, "%s %s: %d %s\n", path, req, code, body ? body : "");
    assert_int_equal(code, 400);
    json_t *j = json_loads(body ? body : "", 0, NULL);
    free(body);
    assert_non_null(j);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(lf_json_str(e, "field"), field);
    assert_string_equal(lf_json_str(e, "code"), "invalid_value");
    char want[64];
    snprintf(want, sizeof want, "is a %s VAE", vae_family);
    assert_non_null(strstr(lf_json_str(e, "message"), want));
    snprintf(want, sizeof want, "is %s (", model_family);
    assert_non_null(strstr(lf_json_str(e, "message"), want));
    assert_null(json_object_get(j, "id")); /* nothing queued */
    json_decref(j);
}

static void test_flux_vae_family(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256];
    json_t *j = NULL, *v;
    snprintf(url, sizeof url, "%s/sdapi/v1/sd-vae", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    char *d = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "GET /sdapi/v1/sd-vae: %s\n", d);
    free(d);
    assert_int_equal(json_array_size(j), 2);
    assert_non_null(v = s_by(j, "model_name", "ae"));
    assert_string_equal(lf_json_str(v, "family"), "flux");
    assert_int_equal(json_integer_value(json_object_get(v, "latent_channels")), 16);
    assert_non_null(v = s_by(j, "model_name", "sd-shapes"));
    char sdfam[16]; /* a whole SD1.5 checkpoint: its text encoder says sd15 */
    snprintf(sdfam, sizeof sdfam, "%s", lf_json_str(v, "family"));
    assert_true(!strcmp(sdfam, "sd15") || !strcmp(sdfam, "sd"));
    assert_int_equal(json_integer_value(json_object_get(v, "latent_channels")), 4);
    json_decref(j);
    static const char *const per_model[][2] = {{"flux-dev", "ae"}, {"lf-tiny-shapes", "sd-shapes"},
                                               {"lf-tiny-shapes.safetensors [0123456789]", "sd-shapes"}};
    for (size_t i = 0; i < 3; i++) {
        char q[200] = "";
        for (const char *c = per_model[i][0]; *c; c++) /* URL-encoded */
            if (*c == ' ' || *c == '[' || *c == ']') snprintf(q + strlen(q), sizeof q - strlen(q), "%%%02X", (unsigned)*c);
            else snprintf(q + strlen(q), sizeof q - strlen(q), "%c", *c);
        snprintf(url, sizeof url, "%s/sdapi/v1/sd-vae?model=%s", lf_testfarm_url(farm), q);
        assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
        d = json_dumps(j, JSON_COMPACT);
        fprintf(stderr, "GET /sdapi/v1/sd-vae?model=%s: %s\n", q, d);
        free(d);
        assert_int_equal(json_array_size(j), 1);
        assert_string_equal(lf_json_str(json_array_get(j, 0), "model_name"), per_model[i][1]);
        json_decref(j);
    }
    snprintf(url, sizeof url, "%s/v1/models", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    assert_string_equal(lf_json_str(s_by(json_object_get(j, "vaes"), "name", "ae"), "family"), "flux");
    for (size_t i = 0; i < 2; i++) {
        json_t *m = s_by(json_object_get(j, "models"), "name", per_model[i][0]);
        assert_non_null(m);
        json_t *fit = json_object_get(m, "vaes");
        assert_int_equal(json_array_size(fit), 1);
        assert_string_equal(json_string_value(json_array_get(fit, 0)), per_model[i][1]);
    }
    json_decref(j);
    /* The wrong family at submit: 400 naming the field and both families. */
    s_expect_family_400(farm, "/v1/jobs", "{\"model\":\"lf-tiny-shapes\",\"prompt\":\"x\",\"vae\":\"ae\"}", "vae",
                        "flux", "sd15");
    s_expect_family_400(farm, "/sdapi/v1/txt2img",
                        "{\"prompt\":\"x\",\"override_settings\":{\"sd_model_checkpoint\":\"lf-tiny-shapes\","
                        "\"sd_vae\":\"ae.safetensors\"}}",
                        "override_settings.sd_vae", "flux", "sd15");
    s_expect_family_400(farm, "/v1/jobs", "{\"model\":\"flux-dev\",\"prompt\":\"x\",\"vae\":\"sd-shapes\"}", "vae",
                        sdfam, "flux");
    /* An unknown name stays unknown_vae. */
    char *body = NULL;
    static const char unk[] = "{\"model\":\"flux-dev\",\"prompt\":\"x\",\"vae\":\"no-such-vae\"}";
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    assert_int_equal(lf_http_request("POST", url, "application/json", unk, strlen(unk), &body, NULL), 400);
    assert_non_null(strstr(body, "unknown_vae"));
    free(body);
    /* A1111's stored sd_vae is global: a model of another family runs with
     * its own VAE (the option is dropped), one of its family takes it. */
    snprintf(url, sizeof url, "%s/sdapi/v1/options", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("POST", url, "{\"sd_vae\":\"ae.safetensors\"}", &j), 200);
    json_decref(j);
    int code = 0;
    char *it = s_a1111_infotext(farm, "lf-tiny-shapes", "", &code);
    assert_int_equal(code, 200);
    assert_non_null(it);
    assert_null(strstr(it, "VAE:"));
    free(it);
    it = s_a1111_infotext(farm, "flux-dev", "", &code);
    assert_int_equal(code, 200);
    assert_non_null(it);
    assert_non_null(strstr(it, "VAE: ae"));
    free(it);
    assert_int_equal(lf_http_json("POST", url, "{\"sd_vae\":\"Automatic\"}", &j), 200);
    json_decref(j);
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    /* The right family: the ae on flux-dev runs. */
    assert_int_equal(lf_http_json("POST", url,
                                  "{\"model\":\"flux-dev\",\"prompt\":\"" S_PROMPT "\",\"steps\":2,\"cfg_scale\":1,"
                                  "\"seed\":5,\"width\":64,\"height\":64,\"vae\":\"ae\"}",
                                  &j),
                     202);
    char id[128];
    snprintf(id, sizeof id, "%s", lf_json_str(j, "id"));
    json_decref(j);
    int previews = 0;
    j = s_wait(farm, id, &previews);
    d = j ? json_dumps(j, JSON_COMPACT) : NULL;
    fprintf(stderr, "flux-dev with vae ae: %s\n", d ? d : "?");
    free(d);
    assert_non_null(j);
    assert_string_equal(lf_json_str(j, "status"), "done");
    json_decref(j);
}

int main(void)
{
    char why[512];
    if (!s_prepare(why, sizeof why)) {
        printf("skipped: %s\n", why);
        lf_testfarm_folder_remove(&s_f);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flux_listed),
        cmocka_unit_test(test_flux_native_job),
        cmocka_unit_test(test_flux_a1111),
        cmocka_unit_test(test_flux_bad_guidance),
        cmocka_unit_test(test_flux_vae_family),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, lf_testfarm_teardown);
    lf_testfarm_folder_remove(&s_f);
    return rc;
}
