/* SDXL end to end through the whole farm (HTTP -> gateway -> broker ->
 * worker -> engine), on an SDXL-architecture model:
 *   - the tiny SDXL base and refiner fixtures (tests/engine/fixtures/sdxl/)
 *     with both text encoders widened to CLIP's vocabulary and, so that a
 *     1024x1024 image is a 128x128 latent as in real SDXL, the 8x VAE of the
 *     built-in lf-tiny-shapes (lf_test_models.h); models/vae/ holds a copy
 *     of the base as the VAE jobs may name;
 *   - GET /v1/models lists it as family sdxl, resolution 1024, approx
 *     previews (no TAESDXL file is installed);
 *   - a native job without width/height is 1024x1024, its PNG parameters
 *     name the model, and a live preview (the approx map fitted from the
 *     model's VAE) is served while it runs;
 *   - A1111 txt2img with refiner_checkpoint / refiner_switch_at and sd_vae:
 *     infotexts carry Refiner, Refiner switch at and VAE; /v1/workers then
 *     shows base and refiner resident; a refiner no worker has is a 400
 *     naming refiner_checkpoint;
 *   - a model assembled from parts with its recommended settings (issue 20):
 *     models/xl-lightning.model.json names the tiny SDXL UNet alone in
 *     diffusers names (fixtures/sdxl/unet_diffusers.safetensors, the key
 *     layout of SDXL-Lightning's *_unet.safetensors) in models/unet/, its
 *     text encoders and VAE from xl-base, and defaults 3 steps, CFG 1, euler,
 *     sgm_uniform, 256x256: GET /v1/models, /sdapi/v1/sd-models and
 *     /v1/workers list it under the manifest's name (family sdxl, 1024 px,
 *     approx previews, its defaults); a native job and an A1111 txt2img
 *     that say neither steps nor CFG get the model's (the PNG's parameters
 *     say Steps: 3, CFG scale: 1, the size), jobs that say them keep theirs;
 *   - explicit timesteps: models/xl-hyper.model.json (the same parts, as
 *     Hyper-SD's 1-step UNet is run: tcd at timestep 800) lists them and a
 *     job that says nothing runs them (Timesteps: 800, Eta: 0.3); a job's
 *     own timesteps set its steps, with its tcd_gamma.
 *
 * Needs models/lf-tiny-shapes.safetensors (its VAE) and the CLIP BPE merges
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

#include "lf_image.h"
#include "lf_test_models.h"
#include "lf_testfarm.h"

static lf_testfarm_folder_t s_f; /* models/ and assets/ */
static const char *s_dir = s_f.dir;

/* The models folder: SDXL base, refiner and a VAE (made from the tiny
 * fixtures with the built-in model's 8x VAE), a UNet-only file and two
 * manifests over it; a reason in why when something needed is absent. */
static bool s_prepare(char *why, size_t len)
{
    char p[3000];
    const char *shapes = s_f.shapes;
    if (!lf_testfarm_folder_new(&s_f, LF_SOURCE_DIR, "sdxl-farm", why, len)) return false;
    if (lf_testfarm_sh("mkdir -p '%s/models/vae'", s_dir) != 0) return snprintf(why, len, "cannot prepare %s", s_dir), false;
    static const char *const files[][2] = {{"base", "xl-base"}, {"refiner", "xl-refiner"}, {"base", "vae/xl-vae"}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/models/%s.safetensors", s_dir, files[i][1]);
        if (lf_test_write_clip_sdxl(LF_FIXTURE_DIR, files[i][0], shapes, p) != 0)
            return snprintf(why, len, "cannot write %.1200s", p), false;
    }
    /* The assembled model: a UNet alone + xl-base's text encoders and VAE. */
    snprintf(p, sizeof p, "mkdir -p '%s/models/unet' && cp '%s/sdxl/unet_diffusers.safetensors' "
             "'%s/models/unet/lightning_tiny.safetensors'", s_dir, LF_FIXTURE_DIR, s_dir);
    if (system(p) != 0) return snprintf(why, len, "cannot prepare %s/models/unet", s_dir), false;
    snprintf(p, sizeof p, "%s/models/xl-lightning.model.json", s_dir);
    FILE *f = fopen(p, "w");
    if (!f) return snprintf(why, len, "cannot write %.1200s", p), false;
    fputs("{\"family\": \"sdxl\",\n"
          " \"parts\": {\"unet\": \"unet/lightning_tiny.safetensors\", \"checkpoint\": \"xl-base.safetensors\"},\n"
          " \"prediction\": \"epsilon\",\n"
          " \"defaults\": {\"steps\": 3, \"cfg\": 1, \"sampler\": \"euler\", \"scheduler\": \"sgm_uniform\",\n"
          "              \"width\": 256, \"height\": 256}}\n",
          f);
    fclose(f);
    /* The same parts as Hyper-SD's 1-step UNet is run: tcd at timestep 800. */
    snprintf(p, sizeof p, "%s/models/xl-hyper.model.json", s_dir);
    if (!(f = fopen(p, "w"))) return snprintf(why, len, "cannot write %.1200s", p), false;
    fputs("{\"family\": \"sdxl\",\n"
          " \"parts\": {\"unet\": \"unet/lightning_tiny.safetensors\", \"checkpoint\": \"xl-base.safetensors\"},\n"
          " \"defaults\": {\"steps\": 1, \"cfg\": 1, \"sampler\": \"tcd\", \"timesteps\": [800],\n"
          "              \"width\": 128, \"height\": 128}}\n",
          f);
    fclose(f);
    return true;
}

static void s_cleanup(void) { lf_testfarm_folder_remove(&s_f); }

static int s_setup(void **state)
{
    lf_testfarm_opts_t o = {.n_workers = 1, .extra_env = {s_f.env_models, s_f.env_assets, "LF_PREVIEW_EVERY=1"}};
    long long t0 = lf_now_ms();
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    if (!farm) return -1;
    fprintf(stderr, "farm up in %lld ms\n", lf_now_ms() - t0);
    *state = farm;
    return 0;
}

static void test_sdxl_listed(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/v1/models", lf_testfarm_url(farm));
    json_t *j = NULL;
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    char *d = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "GET /v1/models: %s\n", d);
    free(d);
    int seen = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(j, "models"), i, m) {
        if (strcmp(lf_json_str(m, "name"), "xl-base") && strcmp(lf_json_str(m, "name"), "xl-refiner")) continue;
        seen++;
        assert_string_equal(lf_json_str(m, "family"), "sdxl");
        assert_int_equal(json_integer_value(json_object_get(m, "resolution")), 1024);
        assert_string_equal(lf_json_str(m, "preview"), "approx"); /* no models/taesd/taesdxl_decoder.* */
    }
    assert_int_equal(seen, 2);
    bool vae = false;
    json_array_foreach(json_object_get(j, "vaes"), i, m) vae |= !strcmp(lf_json_str(m, "name"), "xl-vae");
    assert_true(vae);
    json_decref(j);
}

/* A native job on the SDXL model without a size: the model's 1024x1024;
 * one approx preview served while it runs (previews every step here). */
static void test_sdxl_native_job(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256], purl[300];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *j = NULL;
    assert_int_equal(lf_http_json("POST", url,
                                  "{\"model\":\"xl-base\",\"prompt\":\"a red circle\",\"negative_prompt\":\"blurry\","
                                  "\"steps\":2,\"cfg_scale\":5,\"seed\":11}",
                                  &j),
                     202);
    char id[128];
    snprintf(id, sizeof id, "%s", lf_json_str(j, "id"));
    json_decref(j);
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), id);
    snprintf(purl, sizeof purl, "%s/v1/jobs/%s/preview", lf_testfarm_url(farm), id);
    int previews = 0;
    lf_image_info_t pinfo = {0};
    char status[32] = "";
    long long t0 = lf_now_ms();
    while (lf_now_ms() - t0 < 300000) {
        char *png = NULL;
        size_t len = 0;
        if (lf_http_request("GET", purl, NULL, NULL, 0, &png, &len) == 200 && png &&
            lf_image_probe((const uint8_t *)png, len, &pinfo) == 0)
            previews++;
        free(png);
        j = NULL;
        if (lf_http_json("GET", url, NULL, &j) == 200 && j) snprintf(status, sizeof status, "%s", lf_json_str(j, "status"));
        if (!strcmp(status, "done") || !strcmp(status, "failed") || !strcmp(status, "cancelled")) break;
        json_decref(j);
        j = NULL;
        usleep(50 * 1000);
    }
    char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
    fprintf(stderr, "native SDXL job in %lld ms: %s; previews seen %d (last %ux%u)\n", lf_now_ms() - t0,
            d ? d : status, previews, pinfo.width, pinfo.height);
    free(d);
    assert_string_equal(status, "done");
    json_t *params = json_object_get(j, "params");
    assert_int_equal(json_integer_value(json_object_get(params, "width")), 1024);
    assert_int_equal(json_integer_value(json_object_get(params, "height")), 1024);
    json_decref(j);
    assert_true(previews > 0);
    snprintf(url, sizeof url, "%s/v1/images/%s-0.png", lf_testfarm_url(farm), id);
    char *png = NULL, *text = NULL;
    size_t len = 0;
    assert_int_equal(lf_http_request("GET", url, NULL, NULL, 0, &png, &len), 200);
    lf_image_info_t info;
    assert_int_equal(lf_image_probe((const uint8_t *)png, len, &info), 0);
    assert_int_equal(info.width, 1024);
    assert_int_equal(info.height, 1024);
    assert_int_equal(lf_image_png_text_get((const uint8_t *)png, len, "parameters", &text), 0);
    fprintf(stderr, "parameters: %s\n", text);
    assert_non_null(strstr(text, "Size: 1024x1024, Model: xl-base"));
    assert_null(strstr(text, "Refiner"));
    free(text);
    free(png);
}

/* A1111 txt2img with the refiner and a VAE from models/vae/. */
static void test_sdxl_a1111_refiner(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256];
    snprintf(url, sizeof url, "%s/sdapi/v1/txt2img", lf_testfarm_url(farm));
    json_t *j = NULL;
    long long t0 = lf_now_ms();
    int code = lf_http_json("POST", url,
                            "{\"prompt\":\"a red circle\",\"steps\":4,\"width\":256,\"height\":256,\"cfg_scale\":5,"
                            "\"seed\":5,\"sampler_name\":\"Euler\",\"refiner_checkpoint\":\"xl-refiner\","
                            "\"refiner_switch_at\":0.5,\"override_settings\":{\"sd_model_checkpoint\":\"xl-base\","
                            "\"sd_vae\":\"xl-vae\"}}",
                            &j);
    const char *info_s = lf_json_str(j, "info");
    fprintf(stderr, "A1111 txt2img with the refiner: %d in %lld ms; info %s\n", code, lf_now_ms() - t0, info_s);
    assert_int_equal(code, 200);
    assert_int_equal(json_array_size(json_object_get(j, "images")), 1);
    json_t *info = json_loads(info_s, 0, NULL);
    assert_non_null(info);
    const char *it = json_string_value(json_array_get(json_object_get(info, "infotexts"), 0));
    assert_non_null(it);
    assert_non_null(strstr(it, "Model: xl-base, VAE: xl-vae, "));
    assert_non_null(strstr(it, "Refiner: xl-refiner, Refiner switch at: 0.5"));
    json_decref(info);
    json_decref(j);
    /* Both resident on the worker, base first (heartbeats carry it). */
    snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
    char *d = NULL;
    bool both = false;
    for (long long t = lf_now_ms(); !both && lf_now_ms() - t < 10000; usleep(100 * 1000)) {
        j = NULL;
        if (lf_http_json("GET", url, NULL, &j) == 200 && j) {
            json_t *res = json_object_get(json_array_get(json_object_get(j, "workers"), 0), "resident");
            both = json_array_size(res) == 2 && !strcmp(json_string_value(json_array_get(res, 0)), "xl-base") &&
                   !strcmp(json_string_value(json_array_get(res, 1)), "xl-refiner");
            free(d);
            d = json_dumps(res, JSON_COMPACT);
        }
        json_decref(j);
    }
    fprintf(stderr, "GET /v1/workers resident: %s\n", d ? d : "?");
    free(d);
    assert_true(both);
}

static void test_sdxl_unknown_refiner(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/sdapi/v1/txt2img", lf_testfarm_url(farm));
    const char *req = "{\"prompt\":\"x\",\"steps\":2,\"refiner_checkpoint\":\"no-such-refiner\","
                      "\"override_settings\":{\"sd_model_checkpoint\":\"xl-base\"}}";
    int code = lf_http_request("POST", url, "application/json", req, strlen(req), &body, NULL);
    fprintf(stderr, "unknown refiner: %d %s\n", code, body ? body : "");
    assert_int_equal(code, 400);
    assert_non_null(body);
    assert_non_null(strstr(body, "refiner_checkpoint"));
    free(body);
}

/* ---- a model assembled from parts, with its recommended settings ---- */

static void s_check_defaults(json_t *d)
{
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "steps")), 3);
    assert_true(json_number_value(json_object_get(d, "cfg_scale")) == 1.0);
    assert_string_equal(lf_json_str(d, "sampler"), "euler");
    assert_string_equal(lf_json_str(d, "scheduler"), "sgm_uniform");
    assert_int_equal(json_integer_value(json_object_get(d, "width")), 256);
    assert_int_equal(json_integer_value(json_object_get(d, "height")), 256);
}

static void test_assembled_listed(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/v1/models", lf_testfarm_url(farm));
    json_t *j = NULL, *m, *found = NULL;
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    char *d = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "GET /v1/models: %s\n", d);
    free(d);
    size_t i;
    json_array_foreach(json_object_get(j, "models"), i, m) if (!strcmp(lf_json_str(m, "name"), "xl-lightning")) found = m;
    assert_non_null(found);
    assert_string_equal(lf_json_str(found, "family"), "sdxl");
    assert_int_equal(json_integer_value(json_object_get(found, "resolution")), 1024);
    assert_string_equal(lf_json_str(found, "preview"), "approx");
    s_check_defaults(json_object_get(found, "defaults"));
    json_decref(j);
    /* A1111's list and the workers' list name it too. */
    snprintf(url, sizeof url, "%s/sdapi/v1/sd-models", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    found = NULL;
    json_array_foreach(j, i, m) if (!strcmp(lf_json_str(m, "model_name"), "xl-lightning")) found = m;
    assert_non_null(found);
    json_decref(j);
    snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    found = NULL;
    json_array_foreach(json_object_get(json_array_get(json_object_get(j, "workers"), 0), "models"), i, m)
        if (!strcmp(lf_json_str(m, "name"), "xl-lightning")) found = m;
    assert_non_null(found);
    assert_string_equal(lf_json_str(found, "family"), "sdxl");
    s_check_defaults(json_object_get(found, "defaults"));
    json_decref(j);
}

/* A native job; returns its first image's infotext (caller frees). */
static char *s_native(lf_testfarm_t *farm, const char *body, json_t **params)
{
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *j = NULL;
    assert_int_equal(lf_http_json("POST", url, body, &j), 202);
    char id[128];
    snprintf(id, sizeof id, "%s", lf_json_str(j, "id"));
    json_decref(j);
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), id);
    char status[32] = "";
    j = NULL;
    for (long long t0 = lf_now_ms(); lf_now_ms() - t0 < 300000; usleep(100 * 1000)) {
        json_decref(j);
        j = NULL;
        if (lf_http_json("GET", url, NULL, &j) == 200 && j) snprintf(status, sizeof status, "%s", lf_json_str(j, "status"));
        if (!strcmp(status, "done") || !strcmp(status, "failed") || !strcmp(status, "cancelled")) break;
    }
    char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
    fprintf(stderr, "job: %s\n", d ? d : status);
    free(d);
    assert_string_equal(status, "done");
    *params = json_incref(json_object_get(j, "params"));
    json_decref(j);
    snprintf(url, sizeof url, "%s/v1/images/%s-0.png", lf_testfarm_url(farm), id);
    char *png = NULL, *text = NULL;
    size_t len = 0;
    assert_int_equal(lf_http_request("GET", url, NULL, NULL, 0, &png, &len), 200);
    assert_int_equal(lf_image_png_text_get((const uint8_t *)png, len, "parameters", &text), 0);
    free(png);
    fprintf(stderr, "parameters: %s\n", text);
    return text;
}

static void test_assembled_native_defaults(void **state)
{
    lf_testfarm_t *farm = *state;
    json_t *p = NULL;
    /* Says nothing: the model's settings. */
    char *t = s_native(farm, "{\"model\":\"xl-lightning\",\"prompt\":\"a red circle\",\"seed\":3}", &p);
    assert_int_equal(json_integer_value(json_object_get(p, "steps")), 3);
    assert_true(json_number_value(json_object_get(p, "cfg_scale")) == 1.0);
    assert_string_equal(lf_json_str(p, "scheduler"), "sgm_uniform");
    assert_non_null(strstr(t, "Steps: 3, "));
    assert_non_null(strstr(t, "Sampler: Euler, "));
    assert_non_null(strstr(t, "CFG scale: 1, "));
    assert_non_null(strstr(t, "Size: 256x256, Model: xl-lightning"));
    free(t);
    json_decref(p);
    /* Says steps, CFG and a size: its own. */
    t = s_native(farm,
                 "{\"model\":\"xl-lightning\",\"prompt\":\"a red circle\",\"seed\":3,\"steps\":2,\"cfg_scale\":5,"
                 "\"scheduler\":\"karras\",\"width\":192,\"height\":128}",
                 &p);
    assert_int_equal(json_integer_value(json_object_get(p, "steps")), 2);
    assert_non_null(strstr(t, "Steps: 2, "));
    assert_non_null(strstr(t, "CFG scale: 5, "));
    assert_non_null(strstr(t, "Karras"));
    assert_non_null(strstr(t, "Size: 192x128, Model: xl-lightning"));
    free(t);
    json_decref(p);
}

/* Explicit timesteps end to end: a manifest's (Hyper-SD 1-step: tcd at
 * 800) listed as the API takes them and filled in when the job says
 * nothing, a request's own with the tcd gamma; the infotext records both. */
static void test_assembled_timesteps(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/v1/models", lf_testfarm_url(farm));
    json_t *j = NULL, *m, *found = NULL;
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    size_t i;
    json_array_foreach(json_object_get(j, "models"), i, m) if (!strcmp(lf_json_str(m, "name"), "xl-hyper")) found = m;
    assert_non_null(found);
    json_t *ts = json_object_get(json_object_get(found, "defaults"), "timesteps");
    assert_int_equal(json_array_size(ts), 1);
    assert_int_equal(json_integer_value(json_array_get(ts, 0)), 800);
    json_decref(j);
    json_t *p = NULL;
    char *t = s_native(farm, "{\"model\":\"xl-hyper\",\"prompt\":\"a red circle\",\"seed\":5}", &p);
    assert_int_equal(json_integer_value(json_object_get(p, "steps")), 1);
    assert_string_equal(lf_json_str(p, "timesteps"), "800");
    assert_non_null(strstr(t, "Steps: 1, Sampler: TCD, "));
    assert_non_null(strstr(t, "Eta: 0.3"));
    assert_non_null(strstr(t, "Timesteps: 800"));
    free(t);
    json_decref(p);
    t = s_native(farm,
                 "{\"model\":\"xl-lightning\",\"prompt\":\"a red circle\",\"seed\":5,\"sampler\":\"tcd\","
                 "\"tcd_gamma\":0.7,\"timesteps\":[999,500],\"width\":128,\"height\":128}",
                 &p);
    assert_int_equal(json_integer_value(json_object_get(p, "steps")), 2); /* their count, not the model's 3 */
    assert_non_null(strstr(t, "Steps: 2, Sampler: TCD, "));
    assert_non_null(strstr(t, "Eta: 0.7"));
    assert_non_null(strstr(t, "Timesteps: \"999,500\""));
    free(t);
    json_decref(p);
}

static void test_assembled_a1111_defaults(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[256];
    snprintf(url, sizeof url, "%s/sdapi/v1/txt2img", lf_testfarm_url(farm));
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"{\"prompt\":\"a red circle\",\"seed\":4,\"override_settings\":{\"sd_model_checkpoint\":\"xl-lightning\"}}",
         "Steps: 3, "},
        {"{\"prompt\":\"a red circle\",\"seed\":4,\"steps\":2,\"cfg_scale\":4,\"width\":128,\"height\":128,"
         "\"override_settings\":{\"sd_model_checkpoint\":\"xl-lightning\"}}",
         "Steps: 2, "},
    };
    for (size_t i = 0; i < 2; i++) {
        json_t *j = NULL;
        int code = lf_http_json("POST", url, cases[i].body, &j);
        const char *info_s = lf_json_str(j, "info");
        fprintf(stderr, "A1111 txt2img: %d; info %s\n", code, info_s);
        assert_int_equal(code, 200);
        json_t *info = json_loads(info_s, 0, NULL);
        const char *it = json_string_value(json_array_get(json_object_get(info, "infotexts"), 0));
        assert_non_null(it);
        assert_non_null(strstr(it, cases[i].want));
        assert_non_null(strstr(it, i ? "CFG scale: 4, " : "CFG scale: 1, "));
        assert_non_null(strstr(it, i ? "Size: 128x128" : "Size: 256x256"));
        json_decref(info);
        json_decref(j);
    }
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
        cmocka_unit_test(test_sdxl_listed),
        cmocka_unit_test(test_sdxl_native_job),
        cmocka_unit_test(test_sdxl_a1111_refiner),
        cmocka_unit_test(test_sdxl_unknown_refiner),
        cmocka_unit_test(test_assembled_listed),
        cmocka_unit_test(test_assembled_native_defaults),
        cmocka_unit_test(test_assembled_timesteps),
        cmocka_unit_test(test_assembled_a1111_defaults),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    int rc = cmocka_run_group_tests(tests, s_setup, lf_testfarm_teardown);
    s_cleanup();
    return rc;
}
