/* ADetailer through the whole farm (HTTP -> gateway -> broker -> worker ->
 * engine) on the built-in model models/lf-tiny-shapes.safetensors:
 *
 *  - GET /adetailer/v1/ad_model lists the BlazeFace detectors and the YOLO
 *    file of the worker's models/adetailer (a temporary models folder: the
 *    built-in model and tests/engine/fixtures/yolo/v8seg.pt, random weights,
 *    as person_test-seg.pt);
 *  - a YOLO segmentation unit runs through the farm (infotext names it);
 *  - A1111 img2img of scikit-image's astronaut.png (256x256, denoise 0.3),
 *    once plain and once with alwayson_scripts.ADetailer.args as the webuiapi
 *    client's ADetailer helper builds them ([True, ADetailer(...).to_dict()]):
 *    BlazeFace (lf_blazeface, the same .tflite) finds the face on the plain
 *    result, every pixel farther from that box than the dilation (cv2's 4x4
 *    kernel: 2 right / down, 1 left / up) plus the mask blur's reach (sigma
 *    4: 10 pixels) is byte-identical to the plain result, the box changed,
 *    and the infotext carries the extension's keys;
 *  - the native /v1/jobs adetailer list; an unknown ad_model is a 400 naming
 *    the field in both dialects.
 * Skips (77) without the model or assets/ (tools/fetch_assets.sh). */
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

#include "lf_blazeface.h"
#include "lf_image.h"
#include "lf_testfarm.h"
#include "lf_testhttp.h"

#define S_MODEL LF_SOURCE_DIR "/models/lf-tiny-shapes.safetensors"
#define S_ASSETS LF_SOURCE_DIR "/assets"

static char s_env_models[1200], s_env_assets[1200], s_tmp[64];
static char *s_astro_b64;

/* webuiapi 0.9.17: ADetailer(ad_model="mediapipe_face_short", ad_denoising_strength=0.6).to_dict(). */
static const char s_unit[] =
    "{\"ad_model\": \"mediapipe_face_short\", \"ad_model_classes\": \"\", \"ad_tab_enable\": true, \"ad_prompt\": \"\", "
    "\"ad_negative_prompt\": \"\", \"ad_confidence\": 0.3, \"ad_mask_k_largest\": 0.0, \"ad_mask_min_ratio\": 0.0, "
    "\"ad_mask_max_ratio\": 1.0, \"ad_dilate_erode\": 4, \"ad_x_offset\": 0, \"ad_y_offset\": 0, "
    "\"ad_mask_merge_invert\": \"None\", \"ad_mask_blur\": 4, \"ad_denoising_strength\": 0.6, "
    "\"ad_inpaint_only_masked\": true, \"ad_inpaint_only_masked_padding\": 32, \"ad_use_inpaint_width_height\": false, "
    "\"ad_inpaint_width\": 512, \"ad_inpaint_height\": 512, \"ad_use_steps\": false, \"ad_steps\": 28, "
    "\"ad_use_cfg_scale\": false, \"ad_cfg_scale\": 7.0, \"ad_use_checkpoint\": false, \"ad_checkpoint\": null, "
    "\"ad_use_vae\": false, \"ad_vae\": null, \"ad_use_sampler\": false, \"ad_sampler\": \"DPM++ 2M Karras\", "
    "\"ad_scheduler\": \"Use same scheduler\", \"ad_use_noise_multiplier\": false, \"ad_noise_multiplier\": 1.0, "
    "\"ad_use_clip_skip\": false, \"ad_clip_skip\": 1, \"ad_restore_face\": false, \"ad_controlnet_model\": \"None\", "
    "\"ad_controlnet_module\": \"None\", \"ad_controlnet_weight\": 1.0, \"ad_controlnet_guidance_start\": 0.0, "
    "\"ad_controlnet_guidance_end\": 1.0}";

static char *s_b64(const uint8_t *d, size_t n)
{
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(4 * ((n + 2) / 3) + 1), *q = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        *q++ = tb[v >> 18 & 63];
        *q++ = tb[v >> 12 & 63];
        *q++ = i + 1 < n ? tb[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? tb[v & 63] : '=';
    }
    *q = '\0';
    return o;
}

static uint8_t *s_unb64(const char *s, size_t *n)
{
    size_t L = strlen(s);
    uint8_t *o = malloc(L / 4 * 3 + 3);
    uint32_t acc = 0;
    int bits = 0;
    *n = 0;
    for (size_t i = 0; i < L && s[i] != '='; i++) {
        const char c = s[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+' ? 62 : c == '/' ? 63 : -1;
        if (v < 0) continue;
        acc = acc << 6 | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            o[(*n)++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

/* POST /sdapi/v1/img2img of the astronaut with `scripts` (may be NULL):
 * the status, and the decoded image and infotext on 200. */
static int s_img2img(lf_testfarm_t *farm, json_t *scripts, lf_image_t *im, char **info, char **answer)
{
    char url[128];
    snprintf(url, sizeof url, "%s/sdapi/v1/img2img", lf_testfarm_url(farm));
    json_t *b = json_pack("{s:s,s:I,s:i,s:i,s:i,s:f,s:s,s:[s],s:f}", "prompt", "a photo of a person", "seed",
                          (json_int_t)7, "width", 256, "height", 256, "steps", 8, "cfg_scale", 5.0, "sampler_name",
                          "Euler", "init_images", s_astro_b64, "denoising_strength", 0.3);
    if (scripts) json_object_set_new(b, "alwayson_scripts", scripts);
    char *txt = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    /* a whole generation (two with ADetailer) on a loaded 2-core machine:
     * more than lf_http_json's 30 s */
    lf_testhttp_opts_t ho = {.content_type = "application/json", .timeout_ms = 600000};
    lf_testhttp_buf_t hb = {0};
    int code = (int)lf_testhttp_request("POST", url, txt, strlen(txt), &ho, &hb);
    json_t *ans = hb.data ? json_loadb(hb.data, hb.len, 0, NULL) : NULL;
    free(hb.data);
    free(txt);
    if (answer) *answer = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
    if (code == 200 && im) {
        size_t n = 0;
        uint8_t *png = s_unb64(json_string_value(json_array_get(json_object_get(ans, "images"), 0)), &n);
        *im = (lf_image_t){0};
        assert_int_equal(lf_image_decode(png, n, NULL, im, NULL, 0), 0);
        free(png);
        json_t *it = json_loads(json_string_value(json_object_get(ans, "info")), 0, NULL);
        *info = strdup(json_string_value(json_array_get(json_object_get(it, "infotexts"), 0)));
        json_decref(it);
    }
    json_decref(ans);
    return code;
}

static json_t *s_scripts(const char *unit)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "{\"ADetailer\": {\"args\": [true, false, %s]}}", unit);
    json_t *j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_ad_model_route(void **state)
{
    lf_testfarm_t *farm = *state;
    char url[160];
    snprintf(url, sizeof url, "%s/adetailer/v1/ad_model", lf_testfarm_url(farm));
    json_t *j = NULL;
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    json_t *a = json_object_get(j, "ad_model");
    assert_string_equal(json_string_value(json_array_get(a, 0)), "mediapipe_face_short");
    assert_string_equal(json_string_value(json_array_get(a, 1)), "mediapipe_face_full");
    assert_string_equal(json_string_value(json_array_get(a, 2)), "person_test-seg.pt");
    assert_int_equal(json_array_size(a), 3);
    json_decref(j);
}

/* The random-weight segmentation model finds "people" everywhere at a low
 * confidence; the largest one is re-drawn through its mask. */
static void test_yolo_seg_unit(void **state)
{
    lf_testfarm_t *farm = *state;
    lf_image_t b = {0};
    char *ib = NULL, *ans = NULL;
    int code = s_img2img(farm,
                         s_scripts("{\"ad_model\": \"person_test-seg.pt\", \"ad_confidence\": 0.01, "
                                   "\"ad_mask_k_largest\": 1, \"ad_denoising_strength\": 0.5}"),
                         &b, &ib, &ans);
    if (code != 200) fail_msg("YOLO ADetailer img2img answered %d: %s", code, ans ? ans : "");
    free(ans);
    if (!strstr(ib, "ADetailer model: person_test-seg.pt") || !strstr(ib, "ADetailer mask only top k largest: 1"))
        fail_msg("infotext: %s", ib);
    lf_image_clear(&b);
    free(ib);
}

static void test_astronaut_face_only(void **state)
{
    lf_testfarm_t *farm = *state;
    lf_image_t a = {0}, b = {0};
    char *ia = NULL, *ib = NULL, *ans = NULL;
    int code = s_img2img(farm, NULL, &a, &ia, &ans);
    if (code != 200) fail_msg("plain img2img answered %d: %s", code, ans ? ans : "");
    free(ans);
    code = s_img2img(farm, s_scripts(s_unit), &b, &ib, &ans);
    if (code != 200) fail_msg("ADetailer img2img answered %d: %s", code, ans ? ans : "");
    free(ans);
    char err[256];
    lf_blazeface_t *bf = lf_blazeface_new(S_ASSETS "/blazeface/face_detection_short_range.tflite", err, sizeof err);
    assert_non_null(bf);
    lf_blazeface_det_t det[4];
    int n = lf_blazeface_detect(bf, a.pixels, 256, 256, 0.3f, det, 4);
    lf_blazeface_destroy(&bf);
    assert_int_equal(n, 1);
    int x0 = (int)det[0].xmin, y0 = (int)det[0].ymin, x1 = (int)det[0].xmax, y1 = (int)det[0].ymax;
    int changed = 0, outside = 0;
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            size_t p = ((size_t)y * 256 + x) * 3;
            int diff = memcmp(a.pixels + p, b.pixels + p, 3) != 0;
            int near = x >= x0 - 11 && x <= x1 + 12 && y >= y0 - 11 && y <= y1 + 12;
            if (!near && diff) outside++;
            if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && diff) changed++;
        }
    printf("  face (%d,%d)-(%d,%d) score %.3f: %d of %d box pixels changed, %d outside the mask's reach\n", x0, y0,
           x1, y1, det[0].score, changed, (x1 - x0 + 1) * (y1 - y0 + 1), outside);
    assert_int_equal(outside, 0);
    assert_true(changed > (x1 - x0 + 1) * (y1 - y0 + 1) / 2);
    if (!strstr(ib, "ADetailer model: mediapipe_face_short, ADetailer confidence: 0.3, ADetailer dilate erode: 4, "
                    "ADetailer mask blur: 4, ADetailer denoising strength: 0.6, ADetailer inpaint only masked: True, "
                    "ADetailer inpaint padding: 32, ADetailer version: "))
        fail_msg("infotext: %s", ib);
    assert_null(strstr(ia, "ADetailer"));
    lf_image_clear(&a), lf_image_clear(&b);
    free(ia), free(ib);
}

static void test_unknown_model_refused(void **state)
{
    lf_testfarm_t *farm = *state;
    char *ans = NULL;
    int code = s_img2img(farm, s_scripts("{\"ad_model\": \"face_yolov8n.pt\"}"), NULL, NULL, &ans);
    if (code != 400 || !ans || !strstr(ans, "alwayson_scripts.ADetailer.args[2].ad_model"))
        fail_msg("answered %d: %s", code, ans ? ans : "");
    free(ans);
    char url[160];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *j = NULL;
    code = lf_http_json("POST", url,
                        "{\"prompt\": \"x\", \"adetailer\": [{\"ad_model\": \"mediapipe_face_short\", "
                        "\"ad_confidence\": 3}]}",
                        &j);
    char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (code != 400 || !d || !strstr(d, "adetailer[0].ad_confidence")) fail_msg("answered %d: %s", code, d ? d : "");
    free(d);
    json_decref(j);
}

static int s_setup(void **state)
{
    const char *env[8] = {s_env_models, s_env_assets};
    lf_testfarm_opts_t o = {.n_workers = 1};
    memcpy(o.extra_env, env, sizeof env);
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    if (!farm) return -1;
    *state = farm;
    return 0;
}

int main(void)
{
    if (access(S_MODEL, R_OK) || access(S_ASSETS "/clip/bpe_simple_vocab_16e6.txt.gz", R_OK) ||
        access(S_ASSETS "/blazeface/face_detection_short_range.tflite", R_OK) ||
        access(S_ASSETS "/images/astronaut.png", R_OK)) {
        printf("SKIP: the built-in model or assets/ (tools/fetch_assets.sh) is absent\n");
        return 77;
    }
    FILE *f = fopen(S_ASSETS "/images/astronaut.png", "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *png = malloc((size_t)n);
    if (fread(png, 1, (size_t)n, f) != (size_t)n) return 1;
    fclose(f);
    s_astro_b64 = s_b64(png, (size_t)n);
    free(png);
    /* models/: the built-in model and, in adetailer/, a tiny YOLO seg model */
    snprintf(s_tmp, sizeof s_tmp, "/tmp/lf-adetailer-XXXXXX");
    if (!mkdtemp(s_tmp)) return 1;
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/lf-tiny-shapes.safetensors", s_tmp);
    snprintf(p2, sizeof p2, "%s/adetailer", s_tmp);
    if (symlink(S_MODEL, p1) || mkdir(p2, 0755)) return 1;
    snprintf(p2, sizeof p2, "%s/adetailer/person_test-seg.pt", s_tmp);
    if (symlink(LF_SOURCE_DIR "/tests/engine/fixtures/yolo/v8seg.pt", p2)) return 1;
    snprintf(s_env_models, sizeof s_env_models, "LF_MODELS_DIR=%s", s_tmp);
    snprintf(s_env_assets, sizeof s_env_assets, "LF_ASSETS_DIR=%s", S_ASSETS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ad_model_route),
        cmocka_unit_test(test_astronaut_face_only),
        cmocka_unit_test(test_yolo_seg_unit),
        cmocka_unit_test(test_unknown_model_refused),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, lf_testfarm_teardown);
    free(s_astro_b64);
    unlink(p2), unlink(p1);
    snprintf(p2, sizeof p2, "%s/adetailer", s_tmp);
    rmdir(p2), rmdir(s_tmp);
    return rc;
}
