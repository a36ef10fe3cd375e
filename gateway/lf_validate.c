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

#include "lf_adetailer.h"
#include "lf_error.h"
#include "lf_extranet.h"

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
    /* Field names and messages echo user text; a cut must not split a character. */
    lf_utf8_truncate(err->field, sizeof err->field - 1);
    lf_utf8_truncate(err->message, sizeof err->message - 1);
    return LF_EINVAL;
}

/* ---- names ------------------------------------------------------------- */

static size_t s_count(const lf_param_enum_t *v) {
    size_t n = 0;
    while (v[n].name) n++;
    return n;
}

const lf_sampler_name_t *lf_validate_samplers(size_t *n) {
    if (n) *n = s_count(lf_param_samplers);
    return lf_param_samplers;
}

const lf_param_enum_t *lf_validate_schedulers(size_t *n) {
    if (n) *n = s_count(lf_param_schedulers);
    return lf_param_schedulers;
}

int lf_validate_scheduler_lookup(const char *name, const char **out) {
    if (!name) return LF_ENOTFOUND;
    if (!strcasecmp(name, "automatic") || !strcasecmp(name, "default") || !*name) {
        *out = NULL;
        return 0;
    }
    const lf_param_enum_t *e = lf_param_enum_lookup(&lf_params_table()[LF_P_scheduler], name);
    if (!e) return LF_ENOTFOUND;
    *out = e->name;
    return 0;
}

const char *lf_validate_sampler_lookup(const char *name, const char **scheduler) {
    if (scheduler) *scheduler = NULL;
    const lf_param_enum_t *e = lf_param_enum_lookup(&lf_params_table()[LF_P_sampler], name);
    if (e) return e->name;
    /* Old A1111 names carry the scheduler: "DPM++ 2M Karras". */
    e = lf_param_sampler_with_scheduler(name, scheduler);
    return e ? e->name : NULL;
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

bool lf_validate_vae_is_default(const char *s) {
    return s && (!strcasecmp(s, "automatic") || !strcasecmp(s, "none"));
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

/* true / false, or 0 / 1 as pydantic (A1111's API) takes them for a bool
 * (clients send inpaint_full_res as A1111's UI index). */
static int s_get_bool(const json_t *v, const char *f, bool *out, lf_verr_t *err) {
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = json_integer_value(v) == 1;
        return 1;
    }
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

/* ---- one value through the table ----------------------------------------- */

static int s_oom(lf_verr_t *err) {
    return lf_verr_set(err, 500, "internal", "", "out of memory");
}

/* A value list for messages: "euler, euler_ancestral, ...". */
static void s_values_text(const lf_param_def_t *d, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (const lf_param_enum_t *e = d->values; e && e->name && off < len; e++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", e->name);
}

/* The adetailer row: the native list, or A1111's alwayson_scripts.ADetailer.args
 * (a1111), brought to lf_adetailer's canonical form; an ad_model the engine
 * does not have is a 400 naming the field. No enabled unit = not set. */
static int s_adetailer(const lf_param_def_t *d, const json_t *v, const char *field, bool a1111, bool *skip,
                       const lf_validate_ctx_t *ctx, lf_job_params_t *p, lf_verr_t *err) {
    json_t *units = NULL;
    char msg[256] = "";
    int skip_i = 0;
    int rc = a1111 ? lf_adetailer_from_a1111(v, field, &units, &skip_i, msg, sizeof msg)
                   : lf_adetailer_normalize(v, field, &units, msg, sizeof msg);
    if (skip) *skip = skip_i != 0;
    if (rc == LF_ENOMEM) return s_oom(err);
    if (rc) {
        char f[160];
        const char *colon = strstr(msg, ": ");
        snprintf(f, sizeof f, "%.*s", colon ? (int)(colon - msg) : (int)strlen(field), colon ? msg : field);
        return lf_verr_set(err, 400,
                           rc == LF_EOVERFLOW ? "out_of_range" : rc == LF_ENOTFOUND ? "unknown_field" : "invalid_type",
                           f, "%s", msg);
    }
    size_t i;
    json_t *u;
    json_array_foreach(units, i, u) {
        const char *m = json_string_value(json_object_get(u, "ad_model"));
        if (!m || !strcmp(m, "None")) continue;
        /* A detector some live worker has (ctx), else BlazeFace's names or
         * a YOLO file's (.pt / .pth / .safetensors). */
        int known = ctx && ctx->ad_model_known ? ctx->ad_model_known(ctx->ud, m) : lf_adetailer_model_plausible(m);
        if (!known) {
            char f[160], clip[65];
            /* the unit's index in the client's list (A1111: the dicts after the booleans) */
            size_t at = i;
            if (a1111)
                for (size_t k = 0, seen = 0; k < json_array_size(v); k++)
                    if (json_is_object(json_array_get(v, k)) && seen++ == i) {
                        at = k;
                        break;
                    }
            snprintf(f, sizeof f, "%s[%zu].ad_model", field, at);
            lf_verr_set(err, 400, "invalid_value", f, "unknown %s '%s' (GET /adetailer/v1/ad_model lists them)", f,
                        lf_utf8_clip(m, clip, sizeof clip));
            json_decref(units);
            return LF_EINVAL;
        }
    }
    char *text = json_array_size(units) ? json_dumps(units, JSON_COMPACT) : NULL;
    json_decref(units);
    if (!text) return 0;
    rc = lf_param_set_str(p, d, text);
    free(text);
    if (rc == LF_EOVERFLOW) return lf_verr_set(err, 400, "out_of_range", field, "%s is too large", field);
    return rc ? s_oom(err) : 0;
}

/* A LORAS row: [{name, weight (default the row's def), te_weight}], each
 * entry's fields named in errors ("loras[1].weight"). */
static int s_loras(const lf_param_def_t *d, const json_t *v, const char *field, lf_job_params_t *p,
                   lf_verr_t *err) {
    if (!json_is_array(v))
        return lf_verr_set(err, 400, "invalid_type", field, "%s must be an array of {name, weight, te_weight}", field);
    if ((double)json_array_size(v) > d->hi)
        return lf_verr_set(err, 400, "out_of_range", field, "%s holds at most %.0f LoRAs", field, d->hi);
    size_t i;
    json_t *o;
    json_array_foreach(v, i, o) {
        char f[128];
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        if (!json_is_object(o))
            return lf_verr_set(err, 400, "invalid_type", f, "%s must be an object {name, weight, te_weight}", f);
        const char *k, *name = NULL;
        json_t *x;
        double w = d->def, te = NAN;
        int rc;
        json_object_foreach(o, k, x) {
            char ff[160], clip[65];
            snprintf(ff, sizeof ff, "%s.%s", f, lf_utf8_clip(k, clip, sizeof clip));
            if (!strcmp(k, "name")) rc = s_get_str(x, ff, LF_LORA_NAME_MAX, &name, err);
            else if (!strcmp(k, "weight")) rc = s_get_num(x, ff, -LF_LORA_WEIGHT_LIMIT, LF_LORA_WEIGHT_LIMIT, &w, err);
            else if (!strcmp(k, "te_weight"))
                rc = json_is_null(x) ? 0 : s_get_num(x, ff, -LF_LORA_WEIGHT_LIMIT, LF_LORA_WEIGHT_LIMIT, &te, err);
            else
                rc = lf_verr_set(err, 400, "unknown_field", ff, "unknown field '%s' (name, weight, te_weight)", ff);
            if (rc < 0) return rc;
        }
        if (!name) return lf_verr_set(err, 400, "missing_field", f, "%s.name is missing", f);
        rc = lf_param_loras_add(p, d, name, w, te);
        if (rc == LF_ENOMEM) return s_oom(err);
        if (rc) return lf_verr_set(err, 400, "invalid_value", f, "%s.name is empty or malformed", f);
    }
    return 0;
}

/* The timesteps row: an array of integers or their text ("999,749"),
 * stored as text after lf_param_timesteps_parse's checks (the count against
 * steps is s_finish's). */
static int s_timesteps(const lf_param_def_t *d, const json_t *v, const char *field, lf_job_params_t *p,
                       lf_verr_t *err) {
    const int max = (int)lf_params_table()[LF_P_steps].hi;
    char text[1024];
    int ts[256], rc = lf_param_timesteps_text(v, text, sizeof text);
    int n = rc ? rc : lf_param_timesteps_parse(text, ts, max < 256 ? max : 256);
    if (n == LF_EFORMAT)
        return lf_verr_set(err, 400, "invalid_type", field, "%s must be a non-empty array of integers", field);
    if (n == LF_EOVERFLOW)
        return lf_verr_set(err, 400, "out_of_range", field, "%s: at most %d values, each in 0..%d", field, max,
                           LF_PARAM_TIMESTEP_MAX);
    if (n < 0) return lf_verr_set(err, 400, "invalid_value", field, "%s must be strictly descending", field);
    rc = lf_param_set_str(p, d, text);
    if (rc == LF_EOVERFLOW) return lf_verr_set(err, 400, "out_of_range", field, "%s is too long", field);
    return rc ? s_oom(err) : 0;
}

/* Reads JSON value v for row d into p, naming `field` (the name the client
 * used) in errors. *random is set when a RANDOM_NEG row got -1. */
static int s_param(const lf_param_def_t *d, const json_t *v, const char *field, lf_job_params_t *p,
                   bool *random, const lf_validate_ctx_t *ctx, lf_verr_t *err) {
    const char *s = NULL;
    long long i = 0;
    double x = 0;
    int rc;
    if (d == &lf_params_table()[LF_P_timesteps]) return s_timesteps(d, v, field, p, err);
    switch (d->type) {
    case LF_PT_STR:
        if ((rc = s_get_str(v, field, (size_t)d->hi, &s, err)) < 0) return rc;
        if (!*s && d->lo > 0) return lf_verr_set(err, 400, "invalid_value", field, "%s is empty", field);
        rc = lf_param_set_str(p, d, s);
        if (rc == LF_EOVERFLOW)
            return lf_verr_set(err, 400, "out_of_range", field, "%s must be %.0f..%.0f bytes long", field, d->lo, d->hi);
        if (rc == LF_EFORMAT)
            return lf_verr_set(err, 400, "invalid_value", field,
                               (d->flags & LF_PF_ID) ? "%s is not an upload id" : "%s is empty or malformed", field);
        return rc ? s_oom(err) : 0;
    case LF_PT_ENUM: {
        if ((rc = s_get_str(v, field, LF_V_NAME_MAX, &s, err)) < 0) return rc;
        const char *implied = NULL;
        if (d == &lf_params_table()[LF_P_scheduler] && lf_validate_scheduler_lookup(s, &implied) == 0 && !implied)
            s = d->def_str; /* "Automatic": the default */
        if (d == &lf_params_table()[LF_P_sampler] && !lf_param_enum_lookup(d, s)) {
            const lf_param_enum_t *e = lf_param_sampler_with_scheduler(s, &implied);
            if (e) {
                if (lf_param_set_str(p, d, e->name) ||
                    lf_param_set_str(p, &lf_params_table()[LF_P_scheduler], implied))
                    return s_oom(err);
                return 0;
            }
        }
        rc = lf_param_set_str(p, d, s);
        if (rc == LF_ENOTFOUND) {
            char vals[512], clip[65];
            s_values_text(d, vals, sizeof vals);
            return lf_verr_set(err, 400, "invalid_value", field, "unknown %s '%s' (one of: %s)", d->name,
                               lf_utf8_clip(s, clip, sizeof clip), vals);
        }
        return rc ? s_oom(err) : 0;
    }
    case LF_PT_U32:
    case LF_PT_I64:
        if ((rc = s_get_int(v, field, (long long)d->lo, (long long)d->hi, &i, err)) < 0) return rc;
        if ((d->flags & LF_PF_MULTIPLE) && i % (long long)d->step)
            return lf_verr_set(err, 400, "invalid_value", field, "%s must be a multiple of %.0f (got %lld)", field,
                               d->step, i);
        if ((d->flags & LF_PF_RANDOM_NEG) && i < 0) {
            *random = true;
            return 0;
        }
        return lf_param_set_num(p, d, (double)i) ? lf_verr_set(err, 400, "out_of_range", field, "%s is out of range", field) : 0;
    case LF_PT_F64:
        if ((rc = s_get_num(v, field, d->lo, d->hi, &x, err)) < 0) return rc;
        return lf_param_set_num(p, d, x) ? lf_verr_set(err, 400, "out_of_range", field, "%s is out of range", field) : 0;
    case LF_PT_BOOL: {
        bool b = false;
        if ((rc = s_get_bool(v, field, &b, err)) < 0) return rc;
        return lf_param_set_num(p, d, b ? 1 : 0) ? s_oom(err) : 0;
    }
    case LF_PT_LORAS: return s_loras(d, v, field, p, err);
    case LF_PT_JSON: return s_adetailer(d, v, field, false, NULL, ctx, p, err);
    }
    return lf_verr_set(err, 500, "internal", field, "unhandled parameter type");
}

/* ---- shared rules ---------------------------------------------------------- */

static int s_begin(lf_job_request_t *r, const json_t *body, lf_verr_t *err) {
    *r = (lf_job_request_t){.priority = LF_PRIO_NORMAL, .send_images = true};
    if (!json_is_object(body))
        return lf_verr_set(err, 400, "invalid_type", "", "the body must be a JSON object");
    if (lf_params_defaults(&r->params)) return s_oom(err);
    return 0;
}

/* Recommended settings d into the rows neither the request nor an earlier
 * source set (set[], updated). A value the table would refuse (a sampler
 * this gateway does not know, steps out of range) is skipped. 0 or
 * LF_ENOMEM. */
static int s_apply_defaults(const lf_model_defaults_t *d, lf_job_params_t *p, bool *set) {
    const lf_param_def_t *t = lf_params_table();
    const struct {
        int row;
        bool said;
        double v;
    } nums[] = {{LF_P_steps, d->steps > 0, d->steps}, {LF_P_cfg_scale, d->has_cfg, d->cfg_scale},
                {LF_P_width, d->width > 0, d->width}, {LF_P_height, d->height > 0, d->height}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (nums[i].said && !set[nums[i].row] && lf_param_check_num(&t[nums[i].row], nums[i].v) == 0) {
            lf_param_set_num(p, &t[nums[i].row], nums[i].v);
            set[nums[i].row] = true;
        }
    const struct {
        int row;
        const char *v;
    } strs[] = {{LF_P_sampler, d->sampler}, {LF_P_scheduler, d->scheduler}};
    for (size_t i = 0; i < 2; i++) {
        if (!strs[i].v || set[strs[i].row]) continue;
        int rc = lf_param_set_str(p, &t[strs[i].row], strs[i].v);
        if (rc == LF_ENOMEM) return rc;
        set[strs[i].row] = rc == 0;
    }
    /* Timesteps (Hyper-SD 1-step's 800) only where the steps agree with them. */
    int ts[256], n = d->timesteps && !set[LF_P_timesteps] ? lf_param_timesteps_parse(d->timesteps, ts, 256) : -1;
    if (n > 0 && (!set[LF_P_steps] || p->steps == (uint32_t)n) && lf_param_check_num(&t[LF_P_steps], n) == 0) {
        int rc = lf_param_set_str(p, &t[LF_P_timesteps], d->timesteps);
        if (rc == LF_ENOMEM) return rc;
        if (rc == 0) {
            lf_param_set_num(p, &t[LF_P_steps], n);
            set[LF_P_timesteps] = set[LF_P_steps] = true;
        }
    }
    return 0;
}

/* The recommended settings of the job's LoRAs (the first that says any:
 * its prompt's tags, then its list) and then of its model
 * (ctx->lora_defaults, ctx->model_defaults) into the rows the request left
 * out. 0 or LF_ENOMEM. */
static int s_model_defaults(const lf_validate_ctx_t *ctx, lf_job_params_t *p, const bool *given) {
    if (!ctx) return 0;
    bool set[LF_P__COUNT];
    memcpy(set, given, sizeof set);
    lf_model_defaults_t d = {0};
    int rc = 0, found = 0;
    if (ctx->lora_defaults) {
        lf_param_lora_t *ls = NULL;
        size_t nl = 0;
        if (lf_extranet_loras(p, &ls, &nl)) return LF_ENOMEM;
        for (size_t i = 0; i < nl && !found; i++) found = ctx->lora_defaults(ctx->ud, ls[i].name, &d) == 0;
        lf_extranet_loras_free(&ls, nl);
        if (found) rc = s_apply_defaults(&d, p, set);
        lf_model_defaults_clear(&d);
    }
    if (!rc && ctx->model_defaults && ctx->model_defaults(ctx->ud, p->model, &d) == 0) rc = s_apply_defaults(&d, p, set);
    lf_model_defaults_clear(&d);
    return rc;
}

/* Rules that tie fields together, shared by both dialects: the model, the
 * seed, defaults that depend on the model, img2img, sizes per model. */
static int s_finish(lf_job_request_t *r, const lf_validate_ctx_t *ctx, bool random_seed, const bool *given,
                    bool a1111, lf_verr_t *err) {
    lf_job_params_t *p = &r->params;
    const lf_param_def_t *t = lf_params_table();
    /* A switch point says nothing without a refiner: the native API says so;
     * A1111 ignores it (its clients send the slider's value either way). */
    if (given[LF_P_refiner_switch_at] && !p->refiner_checkpoint && !a1111)
        return lf_verr_set(err, 400, "invalid_value", "refiner_switch_at",
                           "refiner_switch_at needs refiner_checkpoint (the refiner model to switch to)");
    if (!p->model) {
        const char *m = ctx && ctx->default_model ? ctx->default_model : S_DIAG_MODEL;
        if (lf_param_set_str(p, &t[LF_P_model], m)) return s_oom(err);
    }
    if (random_seed || !given[LF_P_seed] || p->seed < 0) p->seed = ctx ? ctx->random_seed : 0;
    uint32_t res = ctx && ctx->model_resolution ? ctx->model_resolution(ctx->ud, p->model) : 0;
    for (int i = 0; i < LF_P__COUNT; i++)
        if ((t[i].flags & LF_PF_MODEL_DEF) && !given[i] && res && lf_param_check_num(&t[i], res) == 0)
            lf_param_set_num(p, &t[i], res);
    if (s_model_defaults(ctx, p, given)) return s_oom(err);
    /* Explicit timesteps: one per step; without steps, their count is the steps. */
    if (p->timesteps) {
        int ts[256];
        int n = lf_param_timesteps_parse(p->timesteps, ts, 256);
        if (n > 0 && !given[LF_P_steps] && lf_param_check_num(&t[LF_P_steps], n) == 0) p->steps = (uint32_t)n;
        if (n < 0 || (uint32_t)n != p->steps)
            return lf_verr_set(err, 400, "invalid_value", "timesteps",
                               "timesteps holds %d values but steps is %u (one timestep per step)", n, p->steps);
    }
    if (p->init_image && !strcmp(p->mode, "txt2img") && lf_param_set_str(p, &t[LF_P_mode], "img2img"))
        return s_oom(err);
    if (!strcmp(p->mode, "img2img") && !p->init_image && !r->init_images)
        return lf_verr_set(err, 400, "missing_field", "init_image", "img2img needs init_image (an upload id)");
    if ((p->mask || r->mask) && strcmp(p->mode, "img2img"))
        return lf_verr_set(err, 400, "invalid_value", "mask", "a mask needs an init image (inpainting is img2img)");
    if (p->enable_hr && !strcmp(p->mode, "txt2img")) {
        /* The engine decodes whole latents: the Hires-Fix size must be a
         * multiple of 8 (A1111 would hand its VAE 665 px from 512 x 1.3). */
        uint32_t ow, oh;
        lf_params_output_size(p, &ow, &oh);
        if (ow % 8 || oh % 8 || ow < LF_SIZE_MIN_REAL || oh < LF_SIZE_MIN_REAL)
            return lf_verr_set(err, 400, "out_of_range", p->hr_resize_x || p->hr_resize_y ? "hr_resize_x" : "hr_scale",
                               "the Hires-Fix size %ux%u must be multiples of 8, at least %d", ow, oh, LF_SIZE_MIN_REAL);
    }
    if (!strcmp(p->mode, "upscale") && !p->init_image && !r->init_images)
        return lf_verr_set(err, 400, "missing_field", "init_image", "an upscale job needs init_image (an upload id)");
    if (!lf_validate_is_diagnostic(p->model)) {
        char clip[65];
        const char *names[2] = {"width", "height"};
        uint32_t vals[2] = {p->width, p->height};
        for (int k = 0; k < 2; k++)
            if (vals[k] < LF_SIZE_MIN_REAL)
                return lf_verr_set(err, 400, "out_of_range", names[k], "%s must be in %d..%.0f for model %s (got %u)",
                                   names[k], LF_SIZE_MIN_REAL, t[k ? LF_P_height : LF_P_width].hi,
                                   lf_utf8_clip(p->model, clip, sizeof clip), vals[k]);
    }
    return 0;
}

void lf_job_request_clear(lf_job_request_t *r) {
    if (!r) return;
    lf_params_clear(&r->params);
    free(r->idem_key);
    json_decref(r->init_images);
    json_decref(r->mask);
    memset(r, 0, sizeof *r);
}

/* ---- native ------------------------------------------------------------- */

/* The request envelope: fields that are not generation parameters. */
static int s_envelope(const char *key, const json_t *v, lf_job_request_t *r, lf_verr_t *err) {
    const char *s = NULL;
    long long i = 0;
    int rc;
    if (!strcmp(key, "priority")) {
        if ((rc = s_get_str(v, key, 16, &s, err)) < 0) return rc;
        if (lf_priority_parse(s, &r->priority))
            return lf_verr_set(err, 400, "invalid_value", key, "priority must be high, normal or low");
        return 0;
    }
    if (!strcmp(key, "idempotency_key")) {
        if ((rc = s_get_str(v, key, LF_V_NAME_MAX, &s, err)) < 0) return rc;
        if (!*s) return lf_verr_set(err, 400, "invalid_value", key, "idempotency_key is empty");
        return s_set_str(&r->idem_key, s) ? s_oom(err) : 0;
    }
    if (!strcmp(key, "ttl_s")) {
        if ((rc = s_get_int(v, key, 1, LF_V_TTL_MAX, &i, err)) < 0) return rc;
        r->ttl_s = (uint32_t)i;
        return 0;
    }
    return 1; /* not an envelope field */
}

/* The native "cache" object: {kind, threshold, start, end, interval,
 * depth} onto the cache_* rows, errors naming "cache.<key>". */
static int s_cache(const json_t *v, lf_job_params_t *p, bool *given, bool *random_seed,
                   lf_verr_t *err) {
    if (!json_is_object(v))
        return lf_verr_set(err, 400, "invalid_type", "cache",
                           "cache must be an object {kind, threshold, start, end, interval, depth}");
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        char row[48], field[48], clip[33];
        const lf_param_def_t *d = NULL;
        if (strlen(k) < 16) {
            snprintf(row, sizeof row, "cache_%s", k);
            d = lf_param_find(row);
        }
        snprintf(field, sizeof field, "cache.%s", lf_utf8_clip(k, clip, sizeof clip));
        if (!d)
            return lf_verr_set(err, 400, "unknown_field", field,
                               "unknown field '%s' (kind, threshold, start, end, interval, depth)",
                               field);
        if (json_is_null(x)) continue;
        if (s_param(d, x, field, p, random_seed, NULL, err)) return LF_EINVAL;
        given[d - lf_params_table()] = true;
    }
    return 0;
}

int lf_validate_job(const json_t *body, const lf_validate_ctx_t *ctx, lf_job_request_t *out,
                    lf_verr_t *err) {
    lf_job_request_t r;
    bool given[LF_P__COUNT] = {false}, random_seed = false;
    if (s_begin(&r, body, err)) goto fail;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (json_is_null(v)) continue; /* null = absent */
        int rc = s_envelope(key, v, &r, err);
        if (rc < 0) goto fail;
        if (rc == 0) continue;
        if (!strcmp(key, "cache")) {
            if (s_cache(v, &r.params, given, &random_seed, err)) goto fail;
            continue;
        }
        const lf_param_def_t *d = lf_param_find(key);
        if (!d) {
            char clip[65];
            lf_verr_set(err, 400, "unknown_field", key, "unknown field '%s' (GET /v1/params lists them)",
                        lf_utf8_clip(key, clip, sizeof clip));
            goto fail;
        }
        if (d == &lf_params_table()[LF_P_vae] && lf_validate_vae_is_default(json_string_value(v))) continue;
        if (s_param(d, v, key, &r.params, &random_seed, ctx, err)) goto fail;
        given[d - lf_params_table()] = true;
    }
    if (s_finish(&r, ctx, random_seed, given, false, err)) goto fail;
    *out = r;
    return 0;
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
    static const char *const exts[] = {".safetensors", ".ckpt", ".pt"}; /* .pt: VAE files */
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t l = strlen(exts[i]);
        if (n > l && !strncmp(title + n - l, exts[i], l)) n -= l;
    }
    return strndup(title, n);
}

/* The model: override_settings, then the options' checkpoint, then the farm
 * default, as an A1111 title reduced to our name. */
static int s_a1111_model_field(const json_t *ovr, const lf_validate_ctx_t *ctx, lf_job_params_t *p,
                               bool *given, lf_verr_t *err) {
    const lf_param_def_t *d = &lf_params_table()[LF_P_model];
    const char *field = "override_settings.sd_model_checkpoint", *title = NULL;
    json_t *mv = ovr ? s_get(ovr, d->a1111) : NULL;
    if (mv) {
        if (s_get_str(mv, field, (size_t)d->hi + 64, &title, err) < 0) return LF_EINVAL;
    } else if (ctx && ctx->option_model && *ctx->option_model) {
        title = ctx->option_model;
        field = "sd_model_checkpoint"; /* the stored option */
    } else {
        return 0; /* the farm default, in s_finish */
    }
    char *name = s_a1111_model(title);
    if (!name) return s_oom(err);
    int rc = lf_param_set_str(p, d, name);
    free(name);
    if (rc == LF_ENOMEM) return s_oom(err);
    if (rc) return lf_verr_set(err, 400, "invalid_value", field, "model name is empty or malformed");
    given[LF_P_model] = true;
    return 0;
}

int lf_validate_a1111(const json_t *body, bool img2img, const lf_validate_ctx_t *ctx,
                      lf_job_request_t *out, lf_verr_t *err) {
    lf_job_request_t r;
    bool given[LF_P__COUNT] = {false}, random_seed = false;
    lf_job_params_t *p = &r.params;
    const lf_param_def_t *t = lf_params_table();
    if (s_begin(&r, body, err)) goto fail;
    json_t *ovr = s_get(body, "override_settings"), *v;
    if (ovr && !json_is_object(ovr)) {
        lf_verr_set(err, 400, "invalid_type", "override_settings", "override_settings must be an object");
        goto fail;
    }
    if (s_a1111_model_field(ovr, ctx, p, given, err)) goto fail;
    /* Every other row A1111 carries, at the top level or in override_settings. */
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &t[i];
        if (!d->a1111 || i == LF_P_model) continue;
        char field[96];
        const json_t *src = d->a1111_at == LF_PA_TOP ? body : d->a1111_at == LF_PA_OVERRIDE ? ovr : NULL;
        snprintf(field, sizeof field, "%s%s", d->a1111_at == LF_PA_OVERRIDE ? "override_settings." : "", d->a1111);
        if (!src || !(v = s_get(src, d->a1111))) {
            /* sampler_name wins over sampler_index (webuiapi sends both, equal). */
            if (i != LF_P_sampler || !(v = s_get(body, "sampler_index"))) continue;
            snprintf(field, sizeof field, "sampler_index");
        }
        /* A1111's "Use same sampler" / "Use same scheduler" (and webui's
         * empty or "Automatic" hires choices) = the first pass's. */
        if ((i == LF_P_hr_sampler || i == LF_P_hr_scheduler) && json_is_string(v) &&
            (!*json_string_value(v) || !strncasecmp(json_string_value(v), "Use same", 8) ||
             !strcasecmp(json_string_value(v), "Automatic")))
            continue;
        json_t *named = NULL; /* a model title reduced to our name */
        if ((i == LF_P_vae || i == LF_P_refiner_checkpoint) && json_is_string(v)) {
            const char *s = json_string_value(v);
            /* A1111: "Automatic" / "None" VAE = the checkpoint's; refiner "None" = none. */
            if (i == LF_P_vae ? lf_validate_vae_is_default(s) : !strcasecmp(s, "none")) continue;
            char *name = s_a1111_model(s);
            if (!name || !(named = json_string(name))) {
                free(name);
                goto oom;
            }
            free(name);
            v = named;
        }
        int prc = s_param(d, v, field, p, &random_seed, ctx, err);
        json_decref(named);
        if (prc) goto fail;
        given[i] = true;
    }
    /* ADetailer: alwayson_scripts.ADetailer.args (A1111 matches script titles
     * case-insensitively). skip_img2img (the second boolean) is refused on
     * img2img; txt2img ignores it, as the extension does. */
    json_t *scripts = s_get(body, "alwayson_scripts");
    if (scripts && json_is_object(scripts)) {
        const char *k;
        json_t *sv;
        json_object_foreach(scripts, k, sv) {
            if (strcasecmp(k, "adetailer")) continue;
            char field[96];
            snprintf(field, sizeof field, "alwayson_scripts.%s.args", k);
            json_t *args = json_is_object(sv) ? json_object_get(sv, "args") : NULL;
            if (!args) {
                lf_verr_set(err, 400, "invalid_type", field, "alwayson_scripts.%s must be {\"args\": [...]}", k);
                goto fail;
            }
            bool skip = false;
            if (s_adetailer(&t[LF_P_adetailer], args, field, true, &skip, ctx, p, err)) goto fail;
            if (skip && img2img && p->adetailer) {
                snprintf(field, sizeof field, "alwayson_scripts.%s.args[1]", k);
                lf_verr_set(err, 400, "invalid_value", field, "%s: skip_img2img is not supported", field);
                goto fail;
            }
            given[LF_P_adetailer] = p->adetailer != NULL;
        }
    }
    long long n_iter = 1;
    if ((v = s_get(body, "n_iter")) && s_get_int(v, "n_iter", 1, (long long)t[LF_P_batch_size].hi, &n_iter, err) < 0)
        goto fail;
    if (p->batch_size * n_iter > t[LF_P_batch_size].hi) {
        lf_verr_set(err, 400, "out_of_range", "n_iter", "batch_size * n_iter must be at most %.0f",
                    t[LF_P_batch_size].hi);
        goto fail;
    }
    p->batch_size = (uint32_t)(p->batch_size * n_iter);
    if ((v = s_get(body, "send_images")) && s_get_bool(v, "send_images", &r.send_images, err) < 0) goto fail;
    if ((v = s_get(body, "save_images")) && s_get_bool(v, "save_images", &r.save_images, err) < 0) goto fail;
    if (img2img) {
        if (lf_param_set_str(p, &t[LF_P_mode], "img2img")) goto oom;
        json_t *imgs = s_get(body, "init_images");
        if (!imgs) {
            lf_verr_set(err, 400, "missing_field", "init_images", "img2img needs init_images");
            goto fail;
        }
        if (!json_is_array(imgs) || json_array_size(imgs) < 1 || !json_is_string(json_array_get(imgs, 0))) {
            lf_verr_set(err, 400, "invalid_type", "init_images", "init_images must be a non-empty array of base64 strings");
            goto fail;
        }
        r.init_images = json_incref(imgs);
        /* The inpainting mask: a base64 image (data URL or not), stored as an
         * upload by the caller like init_images[0]; null or "" = none. */
        json_t *mk = s_get(body, "mask");
        if (mk && !json_is_null(mk) && !(json_is_string(mk) && !json_string_length(mk))) {
            if (!json_is_string(mk)) {
                lf_verr_set(err, 400, "invalid_type", "mask", "mask must be a base64 image");
                goto fail;
            }
            r.mask = json_incref(mk);
        }
    }
    if (s_finish(&r, ctx, random_seed, given, true, err)) goto fail;
    *out = r;
    return 0;
oom:
    s_oom(err);
fail:
    lf_job_request_clear(&r);
    return LF_EINVAL;
}
