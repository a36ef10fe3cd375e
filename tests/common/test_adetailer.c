/* lf_adetailer: ADetailer's arguments as the extension's args.py takes them
 * (both A1111 forms, defaults, type and range errors naming the field), and
 * the payload the webuiapi client's ADetailer helper (webuiapi 0.9.17,
 * ADetailer(...).to_dict() behind [True, ...]) builds, pasted verbatim. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lf_adetailer.h"
#include "lf_error.h"

/* python: json.dumps([True, ADetailer(ad_model="mediapipe_face_short", ad_prompt="a smiling face,
 * detailed").to_dict(), ADetailer(ad_model="mediapipe_face_full", ad_confidence=0.5).to_dict()]) */
static const char s_webuiapi[] = "[true, {\"ad_model\": \"mediapipe_face_short\", \"ad_model_classes\": \"\", \"ad_tab_enable\": true, \"ad_prompt\": \"a smiling face, detailed\", \"ad_negative_prompt\": \"\", \"ad_confidence\": 0.3, \"ad_mask_k_largest\": 0.0, \"ad_mask_min_ratio\": 0.0, \"ad_mask_max_ratio\": 1.0, \"ad_dilate_erode\": 4, \"ad_x_offset\": 0, \"ad_y_offset\": 0, \"ad_mask_merge_invert\": \"None\", \"ad_mask_blur\": 4, \"ad_denoising_strength\": 0.4, \"ad_inpaint_only_masked\": true, \"ad_inpaint_only_masked_padding\": 32, \"ad_use_inpaint_width_height\": false, \"ad_inpaint_width\": 512, \"ad_inpaint_height\": 512, \"ad_use_steps\": false, \"ad_steps\": 28, \"ad_use_cfg_scale\": false, \"ad_cfg_scale\": 7.0, \"ad_use_checkpoint\": false, \"ad_checkpoint\": null, \"ad_use_vae\": false, \"ad_vae\": null, \"ad_use_sampler\": false, \"ad_sampler\": \"DPM++ 2M Karras\", \"ad_scheduler\": \"Use same scheduler\", \"ad_use_noise_multiplier\": false, \"ad_noise_multiplier\": 1.0, \"ad_use_clip_skip\": false, \"ad_clip_skip\": 1, \"ad_restore_face\": false, \"ad_controlnet_model\": \"None\", \"ad_controlnet_module\": \"None\", \"ad_controlnet_weight\": 1.0, \"ad_controlnet_guidance_start\": 0.0, \"ad_controlnet_guidance_end\": 1.0}, {\"ad_model\": \"mediapipe_face_full\", \"ad_model_classes\": \"\", \"ad_tab_enable\": true, \"ad_prompt\": \"\", \"ad_negative_prompt\": \"\", \"ad_confidence\": 0.5, \"ad_mask_k_largest\": 0.0, \"ad_mask_min_ratio\": 0.0, \"ad_mask_max_ratio\": 1.0, \"ad_dilate_erode\": 4, \"ad_x_offset\": 0, \"ad_y_offset\": 0, \"ad_mask_merge_invert\": \"None\", \"ad_mask_blur\": 4, \"ad_denoising_strength\": 0.4, \"ad_inpaint_only_masked\": true, \"ad_inpaint_only_masked_padding\": 32, \"ad_use_inpaint_width_height\": false, \"ad_inpaint_width\": 512, \"ad_inpaint_height\": 512, \"ad_use_steps\": false, \"ad_steps\": 28, \"ad_use_cfg_scale\": false, \"ad_cfg_scale\": 7.0, \"ad_use_checkpoint\": false, \"ad_checkpoint\": null, \"ad_use_vae\": false, \"ad_vae\": null, \"ad_use_sampler\": false, \"ad_sampler\": \"DPM++ 2M Karras\", \"ad_scheduler\": \"Use same scheduler\", \"ad_use_noise_multiplier\": false, \"ad_noise_multiplier\": 1.0, \"ad_use_clip_skip\": false, \"ad_clip_skip\": 1, \"ad_restore_face\": false, \"ad_controlnet_model\": \"None\", \"ad_controlnet_module\": \"None\", \"ad_controlnet_weight\": 1.0, \"ad_controlnet_guidance_start\": 0.0, \"ad_controlnet_guidance_end\": 1.0}]";

static json_t *s_load(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
    if (!j) fail_msg("%s", je.text);
    return j;
}

static int s_a1111(const char *args, json_t **out, int *skip, char *err)
{
    json_t *a = s_load(args);
    int rc = lf_adetailer_from_a1111(a, NULL, out, skip, err, 256);
    json_decref(a);
    return rc;
}

static void test_webuiapi_payload(void **state)
{
    (void)state;
    json_t *out = NULL;
    char err[256] = "";
    int skip = -1;
    if (s_a1111(s_webuiapi, &out, &skip, err)) fail_msg("%s", err);
    assert_int_equal(skip, 0);
    assert_int_equal(json_array_size(out), 2);
    json_t *u = json_array_get(out, 0);
    assert_string_equal(json_string_value(json_object_get(u, "ad_model")), "mediapipe_face_short");
    assert_string_equal(json_string_value(json_object_get(u, "ad_prompt")), "a smiling face, detailed");
    assert_true(json_is_integer(json_object_get(u, "ad_mask_k_largest"))); /* 0.0 -> 0 */
    assert_true(json_is_null(json_object_get(u, "ad_checkpoint")));
    assert_true(json_number_value(json_object_get(json_array_get(out, 1), "ad_confidence")) == 0.5);
    json_decref(out);
}

static void test_forms_and_defaults(void **state)
{
    (void)state;
    json_t *out = NULL;
    char err[256] = "";
    int skip = 0;
    /* The older form: the dicts alone; defaults as args.py. */
    assert_int_equal(s_a1111("[{\"ad_model\": \"mediapipe_face_full\"}]", &out, &skip, err), 0);
    assert_int_equal(json_array_size(out), 1);
    json_t *u = json_array_get(out, 0);
    static const struct { const char *k; double v; } nums[] = {
        {"ad_confidence", 0.3}, {"ad_mask_k_largest", 0}, {"ad_mask_min_ratio", 0}, {"ad_mask_max_ratio", 1},
        {"ad_dilate_erode", 4}, {"ad_x_offset", 0}, {"ad_y_offset", 0}, {"ad_mask_blur", 4},
        {"ad_denoising_strength", 0.4}, {"ad_inpaint_only_masked_padding", 32}, {"ad_inpaint_width", 512},
        {"ad_inpaint_height", 512}, {"ad_steps", 28}, {"ad_cfg_scale", 7}, {"ad_noise_multiplier", 1},
        {"ad_clip_skip", 1}};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        json_t *v = json_object_get(u, nums[i].k);
        if (!v || json_number_value(v) != nums[i].v) fail_msg("default %s", nums[i].k);
    }
    assert_true(json_is_true(json_object_get(u, "ad_inpaint_only_masked")));
    assert_true(json_is_true(json_object_get(u, "ad_tab_enable")));
    assert_true(json_is_false(json_object_get(u, "ad_use_steps")));
    assert_string_equal(json_string_value(json_object_get(u, "ad_sampler")), "DPM++ 2M Karras");
    assert_string_equal(json_string_value(json_object_get(u, "ad_scheduler")), "Use same scheduler");
    assert_string_equal(json_string_value(json_object_get(u, "ad_mask_merge_invert")), "None");
    json_decref(out);
    /* Two leading booleans: enable, skip_img2img. */
    assert_int_equal(s_a1111("[true, true, {\"ad_model\": \"m\"}, {\"ad_model\": \"None\"}]", &out, &skip, err), 0);
    assert_int_equal(skip, 1);
    assert_int_equal(json_array_size(out), 2); /* positions kept for the 2nd / 3rd suffixes */
    json_decref(out);
    /* Disabled, or no unit with a model: no units. */
    const char *off[] = {"[false, false, {\"ad_model\": \"m\"}]", "[false]", "[true, {\"ad_model\": \"None\"}]",
                         "[true, {\"ad_model\": \"m\", \"ad_tab_enable\": false}]", "[]"};
    for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
        assert_int_equal(s_a1111(off[i], &out, NULL, err), 0);
        assert_int_equal(json_array_size(out), 0);
        json_decref(out);
    }
    /* The extension's older ad_tap_enable is the same switch; 0/1 bools. */
    assert_int_equal(s_a1111("[{\"ad_model\": \"m\", \"ad_tap_enable\": 0, \"ad_use_steps\": 1}]", &out, NULL, err), 0);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
}

static void test_errors_name_field(void **state)
{
    (void)state;
    static const struct { const char *args; int rc; const char *field; } bad[] = {
        {"[true, false, {\"ad_model\": \"m\", \"ad_confidence\": 1.5}]", LF_EOVERFLOW,
         "alwayson_scripts.ADetailer.args[2].ad_confidence"},
        {"[true, {\"ad_model\": \"m\", \"ad_steps\": 0}]", LF_EOVERFLOW, "args[1].ad_steps"},
        {"[true, {\"ad_model\": \"m\", \"ad_steps\": 2.5}]", LF_EINVAL, "args[1].ad_steps"},
        {"[true, {\"ad_model\": \"m\", \"ad_mask_merge_invert\": \"Both\"}]", LF_EOVERFLOW, "ad_mask_merge_invert"},
        {"[true, {\"ad_model\": \"m\", \"ad_wat\": 1}]", LF_ENOTFOUND, "args[1].ad_wat"},
        {"[true, {\"ad_model\": 3}]", LF_EINVAL, "args[1].ad_model"},
        {"[true, {\"ad_model\": \"m\", \"ad_use_steps\": \"yes\"}]", LF_EINVAL, "ad_use_steps"},
        {"[true, {\"ad_model\": \"m\", \"ad_noise_multiplier\": 0.2}]", LF_EOVERFLOW, "ad_noise_multiplier"},
        {"{\"ad_model\": \"m\"}", LF_EINVAL, "alwayson_scripts.ADetailer.args"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *out = NULL;
        char err[256] = "";
        int rc = s_a1111(bad[i].args, &out, NULL, err);
        if (rc != bad[i].rc || !strstr(err, bad[i].field))
            fail_msg("%s: rc %d err '%s' (want %d naming %s)", bad[i].args, rc, err, bad[i].rc, bad[i].field);
    }
    /* The native list: objects only, at most 8, its own field names. */
    json_t *a = s_load("[{\"ad_model\": \"m\"}, 3]"), *out = NULL;
    char err[256] = "";
    assert_int_equal(lf_adetailer_normalize(a, "adetailer", &out, err, sizeof err), LF_EINVAL);
    assert_non_null(strstr(err, "adetailer[1]"));
    json_decref(a);
    a = s_load("[{},{},{},{},{},{},{},{},{}]");
    assert_int_equal(lf_adetailer_normalize(a, "adetailer", &out, err, sizeof err), LF_EOVERFLOW);
    json_decref(a);
    a = s_load("[{\"ad_model\": \"mediapipe_face_short\", \"ad_denoising_strength\": 0.5}]");
    assert_int_equal(lf_adetailer_normalize(a, "adetailer", &out, err, sizeof err), 0);
    assert_true(json_number_value(json_object_get(json_array_get(out, 0), "ad_denoising_strength")) == 0.5);
    json_decref(out);
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_webuiapi_payload),
        cmocka_unit_test(test_forms_and_defaults),
        cmocka_unit_test(test_errors_name_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
