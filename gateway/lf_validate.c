/* lf_validate: request JSON -> lf_job_params_t, strict (native) or lenient
 * (A1111) about unknown fields, with the same ranges for the fields both
 * use. Every check names the field it failed on. */
#include "lf_validate.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_error.h"

#define S_DIAG_MODEL "lf-diagnostic"

int lf_verr_set(lf_verr_t *err, int status, const char *code, const char *field, const char *fmt,
                ...) {
    if (!err) return LF_EINVAL;
    err->status = status;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return LF_EINVAL;
}

/* ---- names ------------------------------------------------------------- */

static const lf_sampler_name_t s_samplers[] = {
    {"euler", "Euler", NULL},
    {"euler_ancestral", "Euler a", "euler_a"},
    {"heun", "Heun", NULL},
    {"dpm_2", "DPM2", "dpm2"},
    {"dpmpp_2m", "DPM++ 2M", NULL},
    {"dpmpp_2m_sde", "DPM++ 2M SDE", NULL},
    {"dpmpp_sde", "DPM++ SDE", NULL},
    {"ddim", "DDIM", NULL},
    {"lcm", "LCM", NULL},
    {"uni_pc", "UniPC", NULL},
    {"uni_pc_bh2", "UniPC BH2", NULL},
};
#define S_N_SAMPLERS (sizeof s_samplers / sizeof s_samplers[0])

static const char *const s_scheds[] = {"normal",      "karras", "exponential",
                                       "sgm_uniform", "simple", "ddim_uniform"};
static const char *const s_scheds_a1111[] = {"Normal",      "Karras", "Exponential",
                                             "SGM Uniform", "Simple", "DDIM"};
#define S_N_SCHEDS (sizeof s_scheds / sizeof s_scheds[0])

const lf_sampler_name_t *lf_validate_samplers(size_t *n) {
    if (n) *n = S_N_SAMPLERS;
    return s_samplers;
}

const char *const *lf_validate_schedulers(size_t *n) {
    if (n) *n = S_N_SCHEDS;
    return s_scheds;
}

const char *const *lf_validate_schedulers_a1111(size_t *n) {
    if (n) *n = S_N_SCHEDS;
    return s_scheds_a1111;
}

int lf_validate_scheduler_lookup(const char *name, const char **out) {
    if (!name) return LF_ENOTFOUND;
    if (!strcasecmp(name, "automatic") || !strcasecmp(name, "default") || !*name) {
        *out = NULL;
        return 0;
    }
    for (size_t i = 0; i < S_N_SCHEDS; i++) {
        if (!strcasecmp(name, s_scheds[i]) || !strcasecmp(name, s_scheds_a1111[i])) {
            *out = s_scheds[i];
            return 0;
        }
    }
    if (!strcasecmp(name, "uniform")) { /* A1111's "Uniform" is the sgm_uniform spacing */
        *out = "sgm_uniform";
        return 0;
    }
    return LF_ENOTFOUND;
}

const char *lf_validate_sampler_lookup(const char *name, const char **scheduler) {
    if (scheduler) *scheduler = NULL;
    if (!name) return NULL;
    for (size_t i = 0; i < S_N_SAMPLERS; i++) {
        if (!strcmp(name, s_samplers[i].name) || !strcmp(name, s_samplers[i].a1111) ||
            (s_samplers[i].alias && !strcmp(name, s_samplers[i].alias)))
            return s_samplers[i].name;
    }
    /* Old A1111 names carry the scheduler: "DPM++ 2M Karras". */
    for (size_t i = 0; i < S_N_SAMPLERS; i++) {
        size_t l = strlen(s_samplers[i].a1111);
        if (!strncmp(name, s_samplers[i].a1111, l) && name[l] == ' ') {
            const char *sch = NULL;
            if (lf_validate_scheduler_lookup(name + l + 1, &sch) == 0 && sch) {
                if (scheduler) *scheduler = sch;
                return s_samplers[i].name;
            }
        }
    }
    return NULL;
}

bool lf_validate_is_diagnostic(const char *model) {
    return model && !strncmp(model, S_DIAG_MODEL, sizeof S_DIAG_MODEL - 1);
}

static bool s_charset(const char *s, size_t max, const char *extra) {
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!isalnum(c) && !strchr(extra, c)) return false;
    }
    return n >= 1 && n <= max;
}

bool lf_validate_preset_name(const char *name) {
    return name && name[0] != '.' && s_charset(name, 64, "_.-");
}

bool lf_validate_id(const char *id) { return id && s_charset(id, LF_V_NAME_MAX, "_.:-"); }

/* Model names: printable, no slash games, no control characters. */
static bool s_model_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > LF_V_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

/* ---- typed getters ------------------------------------------------------ */

/* Each getter: 0 if absent (out untouched), 1 if read, LF_EINVAL with err. */

static int s_get_str(const json_t *v, const char *f, size_t max, const char **out, lf_verr_t *err) {
    if (!json_is_string(v))
        return lf_verr_set(err, 400, "invalid_type", f, "%s must be a string", f);
    if (json_string_length(v) > max)
        return lf_verr_set(err, 400, "out_of_range", f, "%s is longer than %zu bytes", f, max);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return lf_verr_set(err, 400, "invalid_value", f, "%s contains a NUL character", f);
    *out = json_string_value(v);
    return 1;
}

static int s_get_int(const json_t *v, const char *f, long long lo, long long hi, long long *out,
                     lf_verr_t *err) {
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (long long)json_real_value(v); /* 20.0 is an integer to most clients */
    } else {
        return lf_verr_set(err, 400, "invalid_type", f, "%s must be an integer", f);
    }
    if (x < lo || x > hi)
        return lf_verr_set(err, 400, "out_of_range", f, "%s must be in %lld..%lld (got %lld)", f,
                           lo, hi, x);
    *out = x;
    return 1;
}

static int s_get_num(const json_t *v, const char *f, double lo, double hi, double *out,
                     lf_verr_t *err) {
    if (!json_is_number(v))
        return lf_verr_set(err, 400, "invalid_type", f, "%s must be a number", f);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return lf_verr_set(err, 400, "out_of_range", f, "%s must be in %g..%g", f, lo, hi);
    *out = x;
    return 1;
}

static int s_get_bool(const json_t *v, const char *f, bool *out, lf_verr_t *err) {
    if (!json_is_boolean(v))
        return lf_verr_set(err, 400, "invalid_type", f, "%s must be true or false", f);
    *out = json_is_true(v);
    return 1;
}

static int s_set_str(char **dst, const char *s) {
    char *c = strdup(s);
    if (!c) return LF_ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

/* ---- shared checks ------------------------------------------------------ */

static int s_check_size(const lf_job_params_t *p, lf_verr_t *err) {
    bool diag = lf_validate_is_diagnostic(p->model);
    uint32_t lo = diag ? LF_V_SIZE_MIN_DIAG : LF_V_SIZE_MIN;
    const char *names[2] = {"width", "height"};
    uint32_t vals[2] = {p->width, p->height};
    for (int i = 0; i < 2; i++) {
        if (vals[i] < lo || vals[i] > LF_V_SIZE_MAX)
            return lf_verr_set(err, 400, "out_of_range", names[i],
                               "%s must be in %u..%u for model %s (got %u)", names[i], lo,
                               LF_V_SIZE_MAX, p->model, vals[i]);
        if (vals[i] % LF_V_SIZE_MULT)
            return lf_verr_set(err, 400, "invalid_value", names[i],
                               "%s must be a multiple of %d (got %u)", names[i], LF_V_SIZE_MULT,
                               vals[i]);
    }
    return 0;
}

static int s_defaults(lf_job_params_t *p) {
    p->width = p->height = 512;
    p->steps = 20;
    p->batch_size = 1;
    p->cfg_scale = 7.0;
    p->denoise = 1.0;
    p->clip_skip = 1;
    if (!(p->mode = strdup("txt2img")) || !(p->sampler = strdup("euler")) ||
        !(p->scheduler = strdup("normal")) || !(p->rng = strdup("cpu")) ||
        !(p->prompt = strdup("")) || !(p->negative_prompt = strdup("")))
        return LF_ENOMEM;
    return 0;
}

static int s_oom(lf_verr_t *err) {
    return lf_verr_set(err, 500, "internal", "", "out of memory");
}

void lf_job_request_clear(lf_job_request_t *r) {
    if (!r) return;
    lf_params_clear(&r->params);
    free(r->idem_key);
    json_decref(r->init_images);
    memset(r, 0, sizeof *r);
}

/* ---- native ------------------------------------------------------------- */

typedef enum {
    F_MODEL, F_MODE, F_PROMPT, F_NEG, F_SAMPLER, F_SCHED, F_STEPS, F_CFG, F_WIDTH, F_HEIGHT,
    F_SEED, F_BATCH, F_PRIO, F_INIT, F_DENOISE, F_CLIP, F_DELAY, F_RNG, F_IDEM, F_TTL, F_EXTRA,
    F__COUNT
} s_field_t;

static const char *const s_native_fields[F__COUNT] = {
    "model", "mode", "prompt", "negative_prompt", "sampler", "scheduler", "steps",
    "cfg_scale", "width", "height", "seed", "batch_size", "priority", "init_image", "denoise",
    "clip_skip", "step_delay_ms", "rng", "idempotency_key", "ttl_s", "extra"};

static int s_native_field(s_field_t f, const json_t *v, const lf_validate_ctx_t *ctx,
                          lf_job_request_t *r, bool *seed_given, lf_verr_t *err) {
    lf_job_params_t *p = &r->params;
    const char *name = s_native_fields[f];
    const char *s = NULL;
    long long i = 0;
    double d = 0;
    int rc = 0;
    switch (f) {
    case F_MODEL:
        if ((rc = s_get_str(v, name, LF_V_NAME_MAX, &s, err)) < 0) return rc;
        if (!s_model_name_ok(s))
            return lf_verr_set(err, 400, "invalid_value", name, "model name is empty or malformed");
        return s_set_str(&p->model, s) ? s_oom(err) : 0;
    case F_MODE:
        if ((rc = s_get_str(v, name, 16, &s, err)) < 0) return rc;
        if (strcmp(s, "txt2img") && strcmp(s, "img2img"))
            return lf_verr_set(err, 400, "invalid_value", name, "mode must be txt2img or img2img");
        return s_set_str(&p->mode, s) ? s_oom(err) : 0;
    case F_PROMPT:
    case F_NEG:
        if ((rc = s_get_str(v, name, LF_V_PROMPT_MAX, &s, err)) < 0) return rc;
        return s_set_str(f == F_PROMPT ? &p->prompt : &p->negative_prompt, s) ? s_oom(err) : 0;
    case F_SAMPLER: {
        if ((rc = s_get_str(v, name, LF_V_NAME_MAX, &s, err)) < 0) return rc;
        const char *sch = NULL, *ours = lf_validate_sampler_lookup(s, &sch);
        if (!ours) return lf_verr_set(err, 400, "invalid_value", name, "unknown sampler '%s'", s);
        if (s_set_str(&p->sampler, ours)) return s_oom(err);
        if (sch && s_set_str(&p->scheduler, sch)) return s_oom(err);
        return 0;
    }
    case F_SCHED: {
        if ((rc = s_get_str(v, name, LF_V_NAME_MAX, &s, err)) < 0) return rc;
        const char *ours = NULL;
        if (lf_validate_scheduler_lookup(s, &ours))
            return lf_verr_set(err, 400, "invalid_value", name, "unknown scheduler '%s'", s);
        return s_set_str(&p->scheduler, ours ? ours : "normal") ? s_oom(err) : 0;
    }
    case F_STEPS:
        if ((rc = s_get_int(v, name, 1, LF_V_STEPS_MAX, &i, err)) < 0) return rc;
        p->steps = (uint32_t)i;
        return 0;
    case F_CFG:
        if ((rc = s_get_num(v, name, 0.0, LF_V_CFG_MAX, &d, err)) < 0) return rc;
        p->cfg_scale = d;
        return 0;
    case F_WIDTH:
    case F_HEIGHT:
        /* The model decides the lower bound; the range is checked at the end. */
        if ((rc = s_get_int(v, name, 0, 1 << 20, &i, err)) < 0) return rc;
        *(f == F_WIDTH ? &p->width : &p->height) = (uint32_t)i;
        return 0;
    case F_SEED:
        if ((rc = s_get_int(v, name, -1, LF_V_SEED_MAX, &i, err)) < 0) return rc;
        p->seed = i == -1 ? ctx->random_seed : i;
        *seed_given = true;
        return 0;
    case F_BATCH:
        if ((rc = s_get_int(v, name, 1, LF_V_BATCH_MAX, &i, err)) < 0) return rc;
        p->batch_size = (uint32_t)i;
        return 0;
    case F_PRIO:
        if ((rc = s_get_str(v, name, 16, &s, err)) < 0) return rc;
        if (lf_priority_parse(s, &r->priority))
            return lf_verr_set(err, 400, "invalid_value", name,
                               "priority must be high, normal or low");
        return 0;
    case F_INIT:
        if ((rc = s_get_str(v, name, LF_V_NAME_MAX, &s, err)) < 0) return rc;
        if (!lf_validate_id(s))
            return lf_verr_set(err, 400, "invalid_value", name, "init_image is not an upload id");
        return s_set_str(&p->init_image, s) ? s_oom(err) : 0;
    case F_DENOISE:
        if ((rc = s_get_num(v, name, 0.0, 1.0, &d, err)) < 0) return rc;
        p->denoise = d;
        return 0;
    case F_CLIP:
        if ((rc = s_get_int(v, name, 1, LF_V_CLIP_SKIP_MAX, &i, err)) < 0) return rc;
        p->clip_skip = (uint32_t)i;
        return 0;
    case F_DELAY:
        if ((rc = s_get_int(v, name, 0, LF_V_STEP_DELAY_MAX, &i, err)) < 0) return rc;
        p->step_delay_ms = (uint32_t)i;
        return 0;
    case F_RNG:
        if ((rc = s_get_str(v, name, 16, &s, err)) < 0) return rc;
        if (strcmp(s, "cpu") && strcmp(s, "philox"))
            return lf_verr_set(err, 400, "invalid_value", name, "rng must be cpu or philox");
        return s_set_str(&p->rng, s) ? s_oom(err) : 0;
    case F_IDEM:
        if ((rc = s_get_str(v, name, LF_V_NAME_MAX, &s, err)) < 0) return rc;
        if (!*s) return lf_verr_set(err, 400, "invalid_value", name, "idempotency_key is empty");
        return s_set_str(&r->idem_key, s) ? s_oom(err) : 0;
    case F_TTL:
        if ((rc = s_get_int(v, name, 1, LF_V_TTL_MAX, &i, err)) < 0) return rc;
        r->ttl_s = (uint32_t)i;
        return 0;
    case F_EXTRA: {
        if (!json_is_object(v))
            return lf_verr_set(err, 400, "invalid_type", name, "extra must be an object");
        char *txt = json_dumps(v, JSON_COMPACT);
        if (!txt) return s_oom(err);
        if (strlen(txt) > LF_V_PROMPT_MAX) {
            free(txt);
            return lf_verr_set(err, 400, "out_of_range", name, "extra is too large");
        }
        free(p->extra_json);
        p->extra_json = txt;
        return 0;
    }
    case F__COUNT: break;
    }
    return lf_verr_set(err, 500, "internal", name, "unhandled field");
}

/* Rules that tie fields together, shared by both dialects. */
static int s_finish(lf_job_request_t *r, lf_verr_t *err) {
    lf_job_params_t *p = &r->params;
    if (p->init_image && !strcmp(p->mode, "txt2img")) {
        if (s_set_str(&p->mode, "img2img")) return s_oom(err);
    }
    if (!strcmp(p->mode, "img2img") && !p->init_image)
        return lf_verr_set(err, 400, "missing_field", "init_image",
                           "img2img needs init_image (an upload id)");
    return s_check_size(p, err);
}

int lf_validate_job(const json_t *body, const lf_validate_ctx_t *ctx, lf_job_request_t *out,
                    lf_verr_t *err) {
    lf_job_request_t r = {.priority = LF_PRIO_NORMAL, .send_images = true};
    if (!json_is_object(body)) {
        lf_verr_set(err, 400, "invalid_type", "", "the body must be a JSON object");
        return LF_EINVAL;
    }
    if (s_defaults(&r.params)) goto oom;
    bool seed_given = false, denoise_given = false;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        s_field_t f = F__COUNT;
        for (int k = 0; k < F__COUNT; k++)
            if (!strcmp(key, s_native_fields[k])) f = (s_field_t)k;
        if (f == F__COUNT) {
            lf_verr_set(err, 400, "unknown_field", key, "unknown field '%.64s'", key);
            goto fail;
        }
        if (json_is_null(v)) continue; /* null = absent */
        if (s_native_field(f, v, ctx, &r, &seed_given, err)) goto fail;
        if (f == F_DENOISE) denoise_given = true;
    }
    if (!r.params.model) {
        const char *m = ctx && ctx->default_model ? ctx->default_model : S_DIAG_MODEL;
        if (!(r.params.model = strdup(m))) goto oom;
    }
    if (!seed_given) r.params.seed = ctx ? ctx->random_seed : 0;
    if (s_finish(&r, err)) goto fail;
    if (!denoise_given && !strcmp(r.params.mode, "img2img")) r.params.denoise = 0.75;
    *out = r;
    return 0;
oom:
    s_oom(err);
fail:
    lf_job_request_clear(&r);
    return LF_EINVAL;
}

/* ---- A1111 ----------------------------------------------------------------- */

/* json_object_get that treats null as absent. */
static json_t *s_get(const json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

/* "name [hash]" or "name.safetensors [hash]" -> "name". */
static char *s_a1111_model(const char *title) {
    size_t n = strlen(title);
    const char *br = strrchr(title, '[');
    if (br && br > title && br[-1] == ' ' && title[n - 1] == ']') n = (size_t)(br - title - 1);
    static const char *const exts[] = {".safetensors", ".ckpt"};
    for (size_t i = 0; i < 2; i++) {
        size_t l = strlen(exts[i]);
        if (n > l && !strncmp(title + n - l, exts[i], l)) n -= l;
    }
    return strndup(title, n);
}

int lf_validate_a1111(const json_t *body, bool img2img, const lf_validate_ctx_t *ctx,
                      lf_job_request_t *out, lf_verr_t *err) {
    lf_job_request_t r = {.priority = LF_PRIO_NORMAL, .send_images = true};
    lf_job_params_t *p = &r.params;
    const char *s = NULL;
    long long i = 0;
    double d = 0;
    int rc;
    if (!json_is_object(body)) {
        lf_verr_set(err, 400, "invalid_type", "", "the body must be a JSON object");
        return LF_EINVAL;
    }
    if (s_defaults(p)) goto oom;

    /* Model: override_settings, then options, then the farm default. */
    json_t *ovr = s_get(body, "override_settings");
    if (ovr && !json_is_object(ovr)) {
        lf_verr_set(err, 400, "invalid_type", "override_settings", "override_settings must be an object");
        goto fail;
    }
    const char *model = NULL;
    json_t *mv = ovr ? s_get(ovr, "sd_model_checkpoint") : NULL;
    if (mv) {
        if ((rc = s_get_str(mv, "override_settings.sd_model_checkpoint", LF_V_NAME_MAX, &model, err)) < 0)
            goto fail;
    } else if (ctx && ctx->option_model && *ctx->option_model) {
        model = ctx->option_model;
    } else {
        model = ctx && ctx->default_model ? ctx->default_model : S_DIAG_MODEL;
    }
    free(p->model);
    if (!(p->model = s_a1111_model(model))) goto oom;
    if (!s_model_name_ok(p->model)) {
        lf_verr_set(err, 400, "invalid_value", mv ? "override_settings.sd_model_checkpoint" : "model",
                    "model name is empty or malformed");
        goto fail;
    }
    json_t *cs = ovr ? s_get(ovr, "CLIP_stop_at_last_layers") : NULL;
    if (cs) {
        if (s_get_int(cs, "override_settings.CLIP_stop_at_last_layers", 1, LF_V_CLIP_SKIP_MAX, &i, err) < 0)
            goto fail;
        p->clip_skip = (uint32_t)i;
    }

    json_t *v;
    if ((v = s_get(body, "prompt"))) {
        if (s_get_str(v, "prompt", LF_V_PROMPT_MAX, &s, err) < 0) goto fail;
        if (s_set_str(&p->prompt, s)) goto oom;
    }
    if ((v = s_get(body, "negative_prompt"))) {
        if (s_get_str(v, "negative_prompt", LF_V_PROMPT_MAX, &s, err) < 0) goto fail;
        if (s_set_str(&p->negative_prompt, s)) goto oom;
    }
    if ((v = s_get(body, "steps"))) {
        if (s_get_int(v, "steps", 1, LF_V_STEPS_MAX, &i, err) < 0) goto fail;
        p->steps = (uint32_t)i;
    }
    if ((v = s_get(body, "cfg_scale"))) {
        if (s_get_num(v, "cfg_scale", 0.0, LF_V_CFG_MAX, &d, err) < 0) goto fail;
        p->cfg_scale = d;
    }
    const char *dims[2] = {"width", "height"};
    for (int k = 0; k < 2; k++) {
        if ((v = s_get(body, dims[k]))) {
            if (s_get_int(v, dims[k], 0, 1 << 20, &i, err) < 0) goto fail;
            *(k ? &p->height : &p->width) = (uint32_t)i;
        }
    }
    p->seed = ctx ? ctx->random_seed : 0;
    if ((v = s_get(body, "seed"))) {
        if (s_get_int(v, "seed", -1, LF_V_SEED_MAX, &i, err) < 0) goto fail;
        if (i != -1) p->seed = i;
    }
    /* sampler_name wins over sampler_index (webuiapi sends both, equal). */
    const char *sampler = NULL, *implied = NULL;
    const char *sfield = "sampler_name";
    if ((v = s_get(body, "sampler_name")) || (sfield = "sampler_index", v = s_get(body, "sampler_index"))) {
        if (s_get_str(v, sfield, LF_V_NAME_MAX, &s, err) < 0) goto fail;
        if (!(sampler = lf_validate_sampler_lookup(s, &implied))) {
            lf_verr_set(err, 400, "invalid_value", sfield, "unknown sampler '%s'", s);
            goto fail;
        }
    }
    if (s_set_str(&p->sampler, sampler ? sampler : "euler")) goto oom;
    if (implied && s_set_str(&p->scheduler, implied)) goto oom;
    if ((v = s_get(body, "scheduler"))) {
        const char *ours = NULL;
        if (s_get_str(v, "scheduler", LF_V_NAME_MAX, &s, err) < 0) goto fail;
        if (lf_validate_scheduler_lookup(s, &ours)) {
            lf_verr_set(err, 400, "invalid_value", "scheduler", "unknown scheduler '%s'", s);
            goto fail;
        }
        if (ours && s_set_str(&p->scheduler, ours)) goto oom;
    }
    long long batch = 1, n_iter = 1;
    if ((v = s_get(body, "batch_size")) && s_get_int(v, "batch_size", 1, LF_V_BATCH_MAX, &batch, err) < 0)
        goto fail;
    if ((v = s_get(body, "n_iter")) && s_get_int(v, "n_iter", 1, LF_V_BATCH_MAX, &n_iter, err) < 0)
        goto fail;
    if (batch * n_iter > LF_V_BATCH_MAX) {
        lf_verr_set(err, 400, "out_of_range", "n_iter",
                    "batch_size * n_iter must be at most %d", LF_V_BATCH_MAX);
        goto fail;
    }
    p->batch_size = (uint32_t)(batch * n_iter);
    if ((v = s_get(body, "send_images")) && s_get_bool(v, "send_images", &r.send_images, err) < 0)
        goto fail;
    if ((v = s_get(body, "save_images")) && s_get_bool(v, "save_images", &r.save_images, err) < 0)
        goto fail;

    if (img2img) {
        if (s_set_str(&p->mode, "img2img")) goto oom;
        p->denoise = 0.75;
        if ((v = s_get(body, "denoising_strength"))) {
            if (s_get_num(v, "denoising_strength", 0.0, 1.0, &d, err) < 0) goto fail;
            p->denoise = d;
        }
        json_t *imgs = s_get(body, "init_images");
        if (!imgs) {
            lf_verr_set(err, 400, "missing_field", "init_images", "img2img needs init_images");
            goto fail;
        }
        if (!json_is_array(imgs) || json_array_size(imgs) < 1 ||
            !json_is_string(json_array_get(imgs, 0))) {
            lf_verr_set(err, 400, "invalid_type", "init_images",
                        "init_images must be a non-empty array of base64 strings");
            goto fail;
        }
        r.init_images = json_incref(imgs);
    } else {
        /* txt2img: denoising_strength only matters with enable_hr (not supported yet). */
        if ((v = s_get(body, "denoising_strength")) && !json_is_number(v)) {
            lf_verr_set(err, 400, "invalid_type", "denoising_strength", "denoising_strength must be a number");
            goto fail;
        }
    }
    if (s_check_size(p, err)) goto fail;
    *out = r;
    return 0;
oom:
    s_oom(err);
fail:
    lf_job_request_clear(&r);
    return LF_EINVAL;
}
