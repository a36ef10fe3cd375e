/* lf_adetailer: ADetailer units, checked and canonical (lf_adetailer.h). */
#include "lf_adetailer.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lf_error.h"

typedef enum { S_STR, S_STRN, S_BOOL, S_INT, S_NUM, S_MERGE } s_kind_t;

/* args.py's ADetailerArgs: key, kind, range (lo > hi = none), default. */
typedef struct {
    const char *key;
    s_kind_t kind;
    double lo, hi, def;
    const char *def_str;
} s_key_t;

#define S_ANY 1, 0
static const s_key_t s_keys[] = {
    {"ad_model", S_STR, S_ANY, 0, "None"},
    {"ad_model_classes", S_STR, S_ANY, 0, ""},
    {"ad_tab_enable", S_BOOL, S_ANY, 1, NULL},
    {"ad_prompt", S_STR, S_ANY, 0, ""},
    {"ad_negative_prompt", S_STR, S_ANY, 0, ""},
    {"ad_confidence", S_NUM, 0, 1, 0.3, NULL},
    {"ad_mask_k_largest", S_INT, 0, 1e9, 0, NULL},
    {"ad_mask_min_ratio", S_NUM, 0, 1, 0, NULL},
    {"ad_mask_max_ratio", S_NUM, 0, 1, 1, NULL},
    {"ad_dilate_erode", S_INT, -1024, 1024, 4, NULL},
    {"ad_x_offset", S_INT, -16384, 16384, 0, NULL},
    {"ad_y_offset", S_INT, -16384, 16384, 0, NULL},
    {"ad_mask_merge_invert", S_MERGE, S_ANY, 0, "None"},
    {"ad_mask_blur", S_INT, 0, 256, 4, NULL},
    {"ad_denoising_strength", S_NUM, 0, 1, 0.4, NULL},
    {"ad_inpaint_only_masked", S_BOOL, S_ANY, 1, NULL},
    {"ad_inpaint_only_masked_padding", S_INT, 0, 4096, 32, NULL},
    {"ad_use_inpaint_width_height", S_BOOL, S_ANY, 0, NULL},
    {"ad_inpaint_width", S_INT, 1, 4096, 512, NULL},
    {"ad_inpaint_height", S_INT, 1, 4096, 512, NULL},
    {"ad_use_steps", S_BOOL, S_ANY, 0, NULL},
    {"ad_steps", S_INT, 1, 1000, 28, NULL},
    {"ad_use_cfg_scale", S_BOOL, S_ANY, 0, NULL},
    {"ad_cfg_scale", S_NUM, 0, 100, 7, NULL},
    {"ad_use_checkpoint", S_BOOL, S_ANY, 0, NULL},
    {"ad_checkpoint", S_STRN, S_ANY, 0, NULL},
    {"ad_use_vae", S_BOOL, S_ANY, 0, NULL},
    {"ad_vae", S_STRN, S_ANY, 0, NULL},
    {"ad_use_sampler", S_BOOL, S_ANY, 0, NULL},
    {"ad_sampler", S_STR, S_ANY, 0, "DPM++ 2M Karras"},
    {"ad_scheduler", S_STR, S_ANY, 0, "Use same scheduler"},
    {"ad_use_noise_multiplier", S_BOOL, S_ANY, 0, NULL},
    {"ad_noise_multiplier", S_NUM, 0.5, 1.5, 1, NULL},
    {"ad_use_clip_skip", S_BOOL, S_ANY, 0, NULL},
    {"ad_clip_skip", S_INT, 1, 12, 1, NULL},
    {"ad_restore_face", S_BOOL, S_ANY, 0, NULL},
    {"ad_controlnet_model", S_STR, S_ANY, 0, "None"},
    {"ad_controlnet_module", S_STR, S_ANY, 0, "None"},
    {"ad_controlnet_weight", S_NUM, 0, 1, 1, NULL},
    {"ad_controlnet_guidance_start", S_NUM, 0, 1, 0, NULL},
    {"ad_controlnet_guidance_end", S_NUM, 0, 1, 1, NULL},
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])
#define S_STR_MAX 4096

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static const s_key_t *s_key(const char *k)
{
    if (!strcmp(k, "ad_tap_enable")) k = "ad_tab_enable"; /* the extension's older spelling */
    for (size_t i = 0; i < S_NKEYS; i++)
        if (!strcmp(s_keys[i].key, k)) return &s_keys[i];
    return NULL;
}

static json_t *s_default(const s_key_t *k)
{
    switch (k->kind) {
    case S_STR:
    case S_MERGE: return json_string(k->def_str);
    case S_STRN: return json_null();
    case S_BOOL: return json_boolean(k->def != 0);
    case S_INT: return json_integer((json_int_t)k->def);
    case S_NUM: return json_real(k->def);
    }
    return json_null();
}

/* One value checked against its key: a new canonical value or NULL (err set). */
static json_t *s_value(const s_key_t *k, const json_t *v, const char *f, int *rc, char *err, size_t errlen)
{
    switch (k->kind) {
    case S_STRN:
        if (json_is_null(v)) return json_null();
        /* fall through */
    case S_STR:
    case S_MERGE:
        if (!json_is_string(v)) {
            *rc = s_fail(err, errlen, LF_EINVAL, "%s: must be a string", f);
            return NULL;
        }
        if (json_string_length(v) > S_STR_MAX) {
            *rc = s_fail(err, errlen, LF_EOVERFLOW, "%s: longer than %d bytes", f, S_STR_MAX);
            return NULL;
        }
        if (k->kind == S_MERGE && strcmp(json_string_value(v), "None") && strcmp(json_string_value(v), "Merge") &&
            strcmp(json_string_value(v), "Merge and Invert")) {
            *rc = s_fail(err, errlen, LF_EOVERFLOW, "%s: must be one of None, Merge, Merge and Invert", f);
            return NULL;
        }
        return json_string(json_string_value(v));
    case S_BOOL:
        if (json_is_boolean(v)) return json_boolean(json_is_true(v));
        if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
            return json_boolean(json_integer_value(v));
        *rc = s_fail(err, errlen, LF_EINVAL, "%s: must be a boolean", f);
        return NULL;
    case S_INT:
    case S_NUM: {
        if (!json_is_number(v)) {
            *rc = s_fail(err, errlen, LF_EINVAL, "%s: must be a number", f);
            return NULL;
        }
        double x = json_number_value(v);
        if (k->kind == S_INT && (!isfinite(x) || x != floor(x))) {
            *rc = s_fail(err, errlen, LF_EINVAL, "%s: must be an integer", f);
            return NULL;
        }
        if (!isfinite(x) || (k->lo <= k->hi && (x < k->lo || x > k->hi))) {
            *rc = s_fail(err, errlen, LF_EOVERFLOW, "%s: %g is outside [%g, %g]", f, x, k->lo, k->hi);
            return NULL;
        }
        return k->kind == S_INT ? json_integer((json_int_t)x) : json_real(x);
    }
    }
    return NULL;
}

/* One unit: a new canonical object, or NULL with *rc set. */
static json_t *s_unit(const json_t *u, const char *field, int *rc, char *err, size_t errlen)
{
    json_t *o = json_object();
    if (!o) {
        *rc = LF_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < S_NKEYS; i++) json_object_set_new(o, s_keys[i].key, s_default(&s_keys[i]));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)u, key, v) {
        char f[256];
        snprintf(f, sizeof f, "%s.%s", field, key);
        if (!strcmp(key, "is_api")) continue; /* args.py's own marker */
        const s_key_t *k = s_key(key);
        if (!k) {
            *rc = s_fail(err, errlen, LF_ENOTFOUND, "%s: unknown ADetailer argument", f);
            json_decref(o);
            return NULL;
        }
        json_t *c = s_value(k, v, f, rc, err, errlen);
        if (!c) {
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, k->key, c);
    }
    return o;
}

static int s_enabled(const json_t *o)
{
    const char *m = json_string_value(json_object_get(o, "ad_model"));
    return m && strcmp(m, "None") && json_is_true(json_object_get(o, "ad_tab_enable"));
}

/* The units of list (objects at the indices where they are), prefix field. */
static int s_units(const json_t *list, const char *field, int a1111, json_t **out, char *err, size_t errlen)
{
    json_t *a = json_array();
    if (!a) return LF_ENOMEM;
    size_t i, n = 0;
    json_t *u;
    int rc = 0;
    json_array_foreach((json_t *)list, i, u) {
        char f[128];
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        if (!json_is_object(u)) {
            if (a1111) continue; /* is_ad_enabled / get_args take the dicts only */
            json_decref(a);
            return s_fail(err, errlen, LF_EINVAL, "%s: must be an object", f);
        }
        if (++n > LF_ADETAILER_MAX_UNITS) {
            json_decref(a);
            return s_fail(err, errlen, LF_EOVERFLOW, "%s: at most %d ADetailer units", field,
                          LF_ADETAILER_MAX_UNITS);
        }
        json_t *o = s_unit(u, f, &rc, err, errlen);
        if (!o) {
            json_decref(a);
            return rc;
        }
        /* A unit without a model stays in place (it keeps the " 2nd" suffixes of the
         * later units' infotext, as the extension numbers them by position). */
        json_array_append_new(a, o);
    }
    int any = 0;
    for (i = 0; i < json_array_size(a); i++) any |= s_enabled(json_array_get(a, i));
    if (!any) json_array_clear(a);
    *out = a;
    return 0;
}

const char *const lf_adetailer_models[] = {"mediapipe_face_short", "mediapipe_face_full", NULL};

int lf_adetailer_normalize(const json_t *units, const char *field, json_t **out, char *err, size_t errlen)
{
    if (!field) field = "adetailer";
    if (!json_is_array(units)) return s_fail(err, errlen, LF_EINVAL, "%s: must be an array of objects", field);
    return s_units(units, field, 0, out, err, errlen);
}

int lf_adetailer_from_a1111(const json_t *args, const char *field, json_t **out, int *skip_img2img, char *err,
                            size_t errlen)
{
    if (!field) field = "alwayson_scripts.ADetailer.args";
    if (skip_img2img) *skip_img2img = 0;
    if (!json_is_array(args)) return s_fail(err, errlen, LF_EINVAL, "%s: must be an array", field);
    const json_t *a0 = json_array_get(args, 0), *a1 = json_array_get(args, 1);
    int enabled = json_is_boolean(a0) ? json_is_true(a0) : 1;
    if (skip_img2img && json_is_boolean(a1)) *skip_img2img = json_is_true(a1);
    int rc = s_units(args, field, 1, out, err, errlen);
    if (!rc && !enabled) json_array_clear(*out);
    return rc;
}

int lf_adetailer_model_plausible(const char *name)
{
    for (const char *const *k = lf_adetailer_models; *k; k++)
        if (!strcmp(*k, name)) return 1;
    return lf_adetailer_yolo_file(name);
}

int lf_adetailer_yolo_file(const char *name)
{
    size_t l = strlen(name);
    if (!l || name[0] == '.' || strchr(name, '/') || strchr(name, '\\')) return 0;
    return (l > 3 && !strcmp(name + l - 3, ".pt")) || (l > 4 && !strcmp(name + l - 4, ".pth")) ||
           (l > 12 && !strcmp(name + l - 12, ".safetensors"));
}
