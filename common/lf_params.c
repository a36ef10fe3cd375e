/* lf_params: the generation parameter table (LF_PARAM_LIST) and the code
 * that walks it: defaults, checks, copies, the infotext writer and reader,
 * the job JSON and the JSON Schema the OpenAPI document and the web UI use. */
#include "lf_params.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_error.h"
#include "lf_infotext.h"

/* ---- value lists --------------------------------------------------------- */

const lf_param_enum_t lf_param_modes[] = {{"txt2img", "txt2img", NULL},
                                          {"img2img", "img2img", NULL},
                                          {"upscale", "extras", NULL}, /* init_image through an upscaler */
                                          {NULL, NULL, NULL}};

/* The engine's samplers (engine/sampling/lf_sampler.h LF_SAMPLER_MAP), A1111 names. */
const lf_param_enum_t lf_param_samplers[] = {
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
    {"euler_cfg_pp", "Euler CFG++", NULL},
    {"dpmpp_2m_cfg_pp", "DPM++ 2M CFG++", NULL},
    /* few-step distilled models (issue 20) */
    {"tcd", "TCD", NULL},
    {NULL, NULL, NULL},
};

/* The engine's schedules (engine/sampling/lf_schedule.h), A1111 "Schedule type" labels.
 * A1111's "Uniform" is the sgm_uniform spacing. */
const lf_param_enum_t lf_param_schedulers[] = {
    {"normal", "Normal", NULL},
    {"karras", "Karras", NULL},
    {"exponential", "Exponential", NULL},
    {"sgm_uniform", "SGM Uniform", "uniform"},
    {"simple", "Simple", NULL},
    {"ddim_uniform", "DDIM", NULL},
    {"beta", "Beta", NULL},
    {"kl_optimal", "KL Optimal", NULL},
    {"linear_quadratic", "Linear Quadratic", NULL},
    {"ays", "Align Your Steps", "align_your_steps"},
    /* few-step distilled models (issue 20): diffusers' spacings */
    {"trailing", "Trailing", NULL},
    {"lcm", "LCM", NULL},
    {NULL, NULL, NULL},
};

/* A1111's randn_source: "CPU" is torch's CPU generator, "NV" the Philox one. */
const lf_param_enum_t lf_param_rngs[] = {{"cpu", "CPU", NULL}, {"philox", "NV", NULL}, {NULL, NULL, NULL}};

const char *const lf_param_hr_builtin_upscalers[] = {
    "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
    "Latent (nearest-exact)", "None", "Lanczos", "Nearest", NULL};

bool lf_param_hr_upscaler_builtin(const char *name) {
    for (size_t i = 0; name && lf_param_hr_builtin_upscalers[i]; i++)
        if (!strcmp(lf_param_hr_builtin_upscalers[i], name)) return true;
    return false;
}

/* Step caching kinds (engine/sampling/lf_stepcache.h lf_stepcache_kind_t order). */
const lf_param_enum_t lf_param_caches[] = {
    {"none", "none", NULL}, {"fbcache", "fbcache", "first_block_cache"}, {"deepcache", "deepcache", NULL},
    {NULL, NULL, NULL}};

/* Compute precisions (kernels/lf_backend.h lf_precision_t order). */
const lf_param_enum_t lf_param_precisions[] = {
    {"f32", "f32", "fp32"}, {"bf16", "bf16", NULL}, {"auto", "auto", NULL}, {NULL, NULL, NULL}};

/* LF_PS_CACHE: whether the infotext writes row i (step caching on, and the
 * row one that its kind uses). */
static bool s_cache_shown(const lf_job_params_t *p, int i) {
    const char *k = p->cache_kind;
    if (!k || !strcmp(k, "none")) return false;
    if (i == LF_P_cache_threshold) return !strcmp(k, "fbcache");
    if (i == LF_P_cache_interval || i == LF_P_cache_depth) return !strcmp(k, "deepcache");
    return true;
}

/* ---- the table ----------------------------------------------------------- */

static const lf_param_def_t s_table[LF_P__COUNT] = {
#define S_ROW(id, T, a1, AT, lo_, hi_, step_, def_, dstr, vals, lab, SHOW, fl, ds)                   \
    [LF_P_##id] = {.name = #id, .type = LF_PT_##T, .offset = offsetof(lf_job_params_t, id),           \
                   .a1111 = a1, .a1111_at = LF_PA_##AT, .lo = lo_, .hi = hi_, .step = step_,        \
                   .def = def_, .def_str = dstr, .values = vals, .label = lab, .show = LF_PS_##SHOW, \
                   .flags = fl, .desc = ds},
    LF_PARAM_LIST(S_ROW)
#undef S_ROW
};

const lf_param_def_t *lf_params_table(void) { return s_table; }

const lf_param_def_t *lf_param_find(const char *name) {
    for (int i = 0; name && i < LF_P__COUNT; i++)
        if (!strcmp(s_table[i].name, name)) return &s_table[i];
    return NULL;
}

const lf_param_def_t *lf_param_find_a1111(const char *name, lf_param_at_t at) {
    for (int i = 0; name && i < LF_P__COUNT; i++)
        if (s_table[i].a1111 && s_table[i].a1111_at == at && !strcmp(s_table[i].a1111, name)) return &s_table[i];
    return NULL;
}

const lf_param_def_t *lf_param_find_label(const char *label) {
    for (int i = 0; label && i < LF_P__COUNT; i++)
        if (s_table[i].label && !strcmp(s_table[i].label, label)) return &s_table[i];
    return NULL;
}

const char *lf_param_type_name(lf_param_type_t t) {
    static const char *const names[] = {"string", "enum", "integer", "integer", "number", "boolean", "array", "array"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

const char *lf_param_at_name(lf_param_at_t a) {
    static const char *const names[] = {"", "top", "override_settings", "alwayson_scripts"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "";
}

static bool s_is_str(const lf_param_def_t *d) {
    return d->type == LF_PT_STR || d->type == LF_PT_ENUM || d->type == LF_PT_JSON;
}

double lf_param_num(const lf_job_params_t *p, const lf_param_def_t *d) {
    const char *m = (const char *)p + d->offset;
    switch (d->type) {
    case LF_PT_U32: return *(const uint32_t *)m;
    case LF_PT_I64: return (double)*(const int64_t *)m;
    case LF_PT_F64: return *(const double *)m;
    case LF_PT_BOOL: return *(const bool *)m ? 1 : 0;
    default: return 0;
    }
}

/* ---- enums --------------------------------------------------------------- */

const lf_param_enum_t *lf_param_enum_lookup(const lf_param_def_t *d, const char *s) {
    if (!d || !d->values || !s) return NULL;
    for (const lf_param_enum_t *e = d->values; e->name; e++)
        if (!strcasecmp(s, e->name) || !strcasecmp(s, e->a1111) || (e->alias && !strcasecmp(s, e->alias))) return e;
    return NULL;
}

const lf_param_enum_t *lf_param_sampler_with_scheduler(const char *s, const char **scheduler) {
    if (!s) return NULL;
    const lf_param_def_t *sch = &s_table[LF_P_scheduler];
    for (const lf_param_enum_t *e = lf_param_samplers; e->name; e++) {
        size_t l = strlen(e->a1111);
        if (strncmp(s, e->a1111, l) || s[l] != ' ') continue;
        const lf_param_enum_t *k = lf_param_enum_lookup(sch, s + l + 1);
        if (k) {
            if (scheduler) *scheduler = k->name;
            return e;
        }
    }
    return NULL;
}

/* ---- checks and setters -------------------------------------------------- */

int lf_param_check_num(const lf_param_def_t *d, double v) {
    if (s_is_str(d)) return LF_EINVAL;
    if (d->type == LF_PT_BOOL) return v == 0 || v == 1 ? 0 : LF_EOVERFLOW;
    if (!(v >= d->lo && v <= d->hi)) return LF_EOVERFLOW;
    if (d->type != LF_PT_F64) {
        if (floor(v) != v) return LF_EINVAL;
        if ((d->flags & LF_PF_MULTIPLE) && d->step > 0 && fmod(v, d->step) != 0) return LF_EOVERFLOW;
    }
    return 0;
}

static bool s_name_ok(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static bool s_id_ok(const char *s) {
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.:-", *s)) return false;
    return true;
}

int lf_param_check_str(const lf_param_def_t *d, const char *s) {
    if (!s_is_str(d) || !s) return LF_EINVAL;
    if (d->type == LF_PT_ENUM) return lf_param_enum_lookup(d, s) ? 0 : LF_ENOTFOUND;
    size_t n = strlen(s);
    if (d->type == LF_PT_JSON) {
        if ((double)n > d->hi) return LF_EOVERFLOW;
        json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
        int ok = j != NULL;
        json_decref(j);
        return ok ? 0 : LF_EFORMAT;
    }
    if ((double)n < d->lo || (double)n > d->hi) return LF_EOVERFLOW;
    if ((d->flags & LF_PF_NAME) && !s_name_ok(s)) return LF_EFORMAT;
    if ((d->flags & LF_PF_ID) && !s_id_ok(s)) return LF_EFORMAT;
    return 0;
}

int lf_param_set_str(lf_job_params_t *p, const lf_param_def_t *d, const char *s) {
    int rc = lf_param_check_str(d, s);
    if (rc) return rc;
    if (d->type == LF_PT_ENUM) s = lf_param_enum_lookup(d, s)->name;
    char *c = strdup(s);
    if (!c) return LF_ENOMEM;
    char **slot = lf_param_str(p, d);
    free(*slot);
    *slot = c;
    return 0;
}

/* ---- LoRA lists ---------------------------------------------------------- */

static bool s_is_loras(const lf_param_def_t *d) { return d->type == LF_PT_LORAS; }

static lf_param_loras_t *s_loras(lf_job_params_t *p, const lf_param_def_t *d) {
    return (lf_param_loras_t *)((char *)p + d->offset);
}

static int s_lora_check(const lf_param_def_t *d, uint32_t n_after, const char *name, double w, double te) {
    static const lf_param_def_t name_row = {.type = LF_PT_STR, .lo = 1, .hi = LF_LORA_NAME_MAX, .flags = LF_PF_NAME};
    if ((double)n_after > d->hi) return LF_EOVERFLOW;
    int rc = name ? lf_param_check_str(&name_row, name) : LF_EINVAL;
    if (rc) return rc;
    if (!(fabs(w) <= LF_LORA_WEIGHT_LIMIT)) return LF_EOVERFLOW;
    if (!isnan(te) && !(fabs(te) <= LF_LORA_WEIGHT_LIMIT)) return LF_EOVERFLOW;
    return 0;
}

static void s_loras_free(lf_param_loras_t *l) {
    for (uint32_t i = 0; i < l->n; i++) free(l->v[i].name);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int lf_param_loras_add(lf_job_params_t *p, const lf_param_def_t *d, const char *name, double weight,
                       double te_weight) {
    if (!s_is_loras(d)) return LF_EINVAL;
    lf_param_loras_t *l = s_loras(p, d);
    int rc = s_lora_check(d, l->n + 1, name, weight, te_weight);
    if (rc) return rc;
    lf_param_lora_t *v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v) return LF_ENOMEM;
    l->v = v;
    if (!(v[l->n].name = strdup(name))) return LF_ENOMEM;
    v[l->n].weight = weight;
    v[l->n].te_weight = te_weight;
    l->n++;
    return 0;
}

static int s_loras_check(const lf_job_params_t *p, const lf_param_def_t *d) {
    const lf_param_loras_t *l = lf_param_loras(p, d);
    if ((double)l->n > d->hi) return LF_EOVERFLOW;
    for (uint32_t i = 0; i < l->n; i++) {
        int rc = s_lora_check(d, i + 1, l->v[i].name, l->v[i].weight, l->v[i].te_weight);
        if (rc) return rc;
    }
    return 0;
}

int lf_param_set_num(lf_job_params_t *p, const lf_param_def_t *d, double v) {
    int rc = lf_param_check_num(d, v);
    if (rc) return rc;
    char *m = (char *)p + d->offset;
    switch (d->type) {
    case LF_PT_U32: *(uint32_t *)m = (uint32_t)v; break;
    case LF_PT_I64: *(int64_t *)m = (int64_t)v; break;
    case LF_PT_F64: *(double *)m = v; break;
    case LF_PT_BOOL: *(bool *)m = v != 0; break;
    default: return LF_EINVAL;
    }
    return 0;
}

/* ---- whole structs ------------------------------------------------------- */

void lf_params_clear(lf_job_params_t *p) {
    if (!p) return;
    for (int i = 0; i < LF_P__COUNT; i++) {
        if (s_is_str(&s_table[i])) free(*lf_param_str(p, &s_table[i]));
        if (s_is_loras(&s_table[i])) s_loras_free(s_loras(p, &s_table[i]));
    }
    memset(p, 0, sizeof *p);
}

int lf_params_defaults(lf_job_params_t *p) {
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &s_table[i];
        if (s_is_str(d)) {
            if (d->def_str && !(*lf_param_str(p, d) = strdup(d->def_str))) {
                lf_params_clear(p);
                return LF_ENOMEM;
            }
        } else {
            char *m = (char *)p + d->offset;
            switch (d->type) {
            case LF_PT_U32: *(uint32_t *)m = (uint32_t)d->def; break;
            case LF_PT_I64: *(int64_t *)m = (int64_t)d->def; break;
            case LF_PT_F64: *(double *)m = d->def; break;
            case LF_PT_BOOL: *(bool *)m = d->def != 0; break;
            default: break;
            }
        }
    }
    return 0;
}

int lf_params_copy(lf_job_params_t *dst, const lf_job_params_t *src) {
    lf_job_params_t p = *src;
    for (int i = 0; i < LF_P__COUNT; i++) {
        if (s_is_str(&s_table[i])) *lf_param_str(&p, &s_table[i]) = NULL;
        if (s_is_loras(&s_table[i])) *s_loras(&p, &s_table[i]) = (lf_param_loras_t){0};
    }
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &s_table[i];
        if (s_is_loras(d)) {
            const lf_param_loras_t *l = lf_param_loras(src, d);
            lf_param_loras_t *c = s_loras(&p, d);
            c->v = l->n ? calloc(l->n, sizeof *c->v) : NULL;
            if (l->n && !c->v) {
                lf_params_clear(&p);
                return LF_ENOMEM;
            }
            for (uint32_t k = 0; k < l->n; k++) {
                c->v[k] = l->v[k];
                c->v[k].name = NULL;
                c->n = k + 1;
                if (!(c->v[k].name = strdup(l->v[k].name ? l->v[k].name : ""))) {
                    lf_params_clear(&p);
                    return LF_ENOMEM;
                }
            }
            continue;
        }
        const char *s = s_is_str(d) ? lf_param_cstr(src, d) : NULL;
        if (s && !(*lf_param_str(&p, d) = strdup(s))) {
            lf_params_clear(&p);
            return LF_ENOMEM;
        }
    }
    *dst = p;
    return 0;
}

int lf_params_check(const lf_job_params_t *p, bool zero_is_unset, const lf_param_def_t **bad) {
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &s_table[i];
        int rc;
        if (s_is_str(d)) {
            const char *s = lf_param_cstr(p, d);
            rc = s ? lf_param_check_str(d, s) : (d->flags & LF_PF_REQUIRED) ? LF_EINVAL : 0;
        } else if (s_is_loras(d)) {
            rc = s_loras_check(p, d);
        } else {
            double v = lf_param_num(p, d);
            rc = zero_is_unset && v == 0 ? 0 : lf_param_check_num(d, v);
        }
        if (rc) {
            if (bad) *bad = d;
            return rc;
        }
    }
    return 0;
}

/* ---- text ---------------------------------------------------------------- */

char *lf_utf8_truncate(char *s, size_t max) {
    size_t n = strlen(s);
    if (n > max) {
        /* Back up over continuation bytes (10xxxxxx) to a character's first byte. */
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
        s[n] = '\0';
        return s;
    }
    /* Already short enough, but maybe cut by someone else (snprintf): drop a
     * last character whose lead byte announces more bytes than are left. */
    size_t i = n;
    while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--;
    if (i > 0) {
        unsigned char c = (unsigned char)s[i - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (n - (i - 1) < need) s[i - 1] = '\0';
    }
    return s;
}

const char *lf_utf8_clip(const char *s, char *buf, size_t len) {
    if (!len) return "";
    snprintf(buf, len, "%s", s ? s : "");
    return lf_utf8_truncate(buf, len - 1);
}

void lf_param_format(const lf_job_params_t *p, const lf_param_def_t *d, char *buf, size_t len) {
    if (!len) return;
    buf[0] = '\0';
    if (s_is_str(d)) {
        const char *s = lf_param_cstr(p, d);
        if (d->type == LF_PT_ENUM) {
            const lf_param_enum_t *e = lf_param_enum_lookup(d, s);
            s = e ? e->a1111 : s;
        }
        snprintf(buf, len, "%s", s ? s : "");
        lf_utf8_truncate(buf, len - 1);
        return;
    }
    if (s_is_loras(d)) { /* "name:weight[:te_weight], ..." */
        const lf_param_loras_t *l = lf_param_loras(p, d);
        size_t off = 0;
        for (uint32_t i = 0; i < l->n && off < len; i++) {
            int k = isnan(l->v[i].te_weight)
                        ? snprintf(buf + off, len - off, "%s%s:%g", i ? ", " : "", l->v[i].name, l->v[i].weight)
                        : snprintf(buf + off, len - off, "%s%s:%g:%g", i ? ", " : "", l->v[i].name,
                                   l->v[i].weight, l->v[i].te_weight);
            off += k > 0 ? (size_t)k : 0;
        }
        lf_utf8_truncate(buf, len - 1);
        return;
    }
    double v = lf_param_num(p, d);
    if (d->type == LF_PT_F64) snprintf(buf, len, "%g", v);
    else if (d->type == LF_PT_I64) snprintf(buf, len, "%lld", (long long)*(const int64_t *)((const char *)p + d->offset));
    else snprintf(buf, len, "%.0f", v);
}

void lf_params_output_size(const lf_job_params_t *p, uint32_t *w, uint32_t *h) {
    uint64_t W = p->width, H = p->height, rx = p->hr_resize_x, ry = p->hr_resize_y, uw, uh;
    *w = p->width, *h = p->height;
    if (p->mode && !strcmp(p->mode, "upscale")) { /* width/height: the source's size */
        if (p->upscale_width && p->upscale_height) *w = p->upscale_width, *h = p->upscale_height;
        else *w = (uint32_t)(W * p->upscale_by), *h = (uint32_t)(H * p->upscale_by);
        return;
    }
    if (!p->enable_hr || (p->mode && !strcmp(p->mode, "img2img")) || !W || !H) return;
    if (!rx && !ry) {
        double sw = W * p->hr_scale, sh = H * p->hr_scale;
        *w = sw > 0 && sw < 4e9 ? (uint32_t)sw : 0, *h = sh > 0 && sh < 4e9 ? (uint32_t)sh : 0;
        return;
    }
    if (!ry || (rx && W * ry < rx * H)) uw = rx, uh = rx * H / W; /* src ratio < dst ratio */
    else uw = ry * W / H, uh = ry;
    *w = (uint32_t)(rx && ry ? uw - (uw - rx) / 8 * 8 : uw);
    *h = (uint32_t)(rx && ry ? uh - (uh - ry) / 8 * 8 : uh);
}

/* Hires-Fix rows (LF_PS_HIRES_*): written only with enable_hr, as A1111's
 * txt2img adds them to extra_generation_params; "Denoising strength" too
 * (lf_params_infotext). OTHER rows say something only when they differ
 * from the first pass's value. */
static bool s_hires_shows(const lf_job_params_t *p, const lf_param_def_t *d) {
    if (!p->enable_hr) return false;
    const bool resize = p->hr_resize_x || p->hr_resize_y;
    switch (d->show) {
    case LF_PS_HIRES_SCALE: return !resize;
    case LF_PS_HIRES_RESIZE: return resize;
    case LF_PS_HIRES_NONDEF: return lf_param_num(p, d) != d->def;
    case LF_PS_HIRES_OTHER: {
        static const int base[][2] = {{LF_P_hr_sampler, LF_P_sampler},
                                      {LF_P_hr_scheduler, LF_P_scheduler},
                                      {LF_P_hr_prompt, LF_P_prompt},
                                      {LF_P_hr_negative_prompt, LF_P_negative_prompt}};
        const char *v = lf_param_cstr(p, d);
        if (!v || !*v) return false;
        for (size_t k = 0; k < sizeof base / sizeof base[0]; k++)
            if (d == &s_table[base[k][0]]) {
                const char *b = lf_param_cstr(p, &s_table[base[k][1]]);
                return !b || strcmp(v, b) != 0;
            }
        return true;
    }
    default: return true;
    }
}

int lf_param_timesteps_parse(const char *s, int *out, int max) {
    int n = 0;
    if (!s) return LF_EFORMAT;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!isdigit((unsigned char)*s)) return LF_EFORMAT;
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (n >= max || v > LF_PARAM_TIMESTEP_MAX) return LF_EOVERFLOW;
        if (n > 0 && v >= out[n - 1]) return LF_EINVAL;
        out[n++] = (int)v;
        for (s = end; *s == ' ' || *s == '\t'; s++) {}
        if (!*s) return n;
        if (*s++ != ',') return LF_EFORMAT;
    }
}

int lf_param_timesteps_text(const struct json_t *v, char *buf, size_t len) {
    size_t i, n = 0;
    json_t *x;
    if (!len) return LF_EOVERFLOW;
    buf[0] = '\0';
    if (json_is_string(v)) return json_string_length(v) < len ? (snprintf(buf, len, "%s", json_string_value(v)), 0)
                                                              : LF_EOVERFLOW;
    if (!json_is_array(v)) return LF_EFORMAT;
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x)) return LF_EFORMAT;
        if (json_integer_value(x) < 0 || json_integer_value(x) > LF_PARAM_TIMESTEP_MAX) return LF_EOVERFLOW;
        n += (size_t)snprintf(buf + n, len - n, "%s%d", i ? "," : "", (int)json_integer_value(x));
        if (n >= len) return LF_EOVERFLOW;
    }
    return 0;
}

int lf_params_infotext(const lf_job_params_t *p, const char *model_label, int index, char **out) {
    lf_infotext_kv_t kv[LF_P__COUNT];
    char vals[LF_P__COUNT][160];
    size_t n = 0;
    const char *prompt = "", *negative = "";
    bool img2img = p->mode && !strcmp(p->mode, "img2img");
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &s_table[i];
        char *v = vals[n];
        switch (d->show) {
        case LF_PS_NEVER:
        case LF_PS_SIZE_H: continue;
        case LF_PS_PROMPT: prompt = lf_param_cstr(p, d) ? lf_param_cstr(p, d) : ""; continue;
        case LF_PS_NEGATIVE: negative = lf_param_cstr(p, d) ? lf_param_cstr(p, d) : ""; continue;
        case LF_PS_IMG2IMG: /* and a Hires-Fix pass's strength */
            if (!img2img && !p->enable_hr) continue;
            break;
        case LF_PS_NONDEF:
            if (lf_param_num(p, d) == d->def) continue;
            break;
        case LF_PS_REFINER: /* A1111 writes the switch point only with a refiner */
            if (!p->refiner_checkpoint || !*p->refiner_checkpoint) continue;
            break;
        case LF_PS_HIRES:
        case LF_PS_HIRES_SCALE:
        case LF_PS_HIRES_RESIZE:
        case LF_PS_HIRES_NONDEF:
        case LF_PS_HIRES_OTHER:
            if (!s_hires_shows(p, d)) continue;
            break;
        case LF_PS_CACHE:
            if (!s_cache_shown(p, i)) continue;
            break;
        case LF_PS_TCD:
            if (!p->sampler || strcmp(p->sampler, "tcd")) continue;
            break;
        default: break;
        }
        if (d->show == LF_PS_SEED)
            snprintf(v, sizeof vals[0], "%lld", (long long)((uint64_t)p->seed + (uint64_t)index));
        else if (d->show == LF_PS_SIZE_W)
            snprintf(v, sizeof vals[0], "%ux%u", p->width, p->height);
        else if (d->show == LF_PS_HIRES_RESIZE)
            snprintf(v, sizeof vals[0], "%ux%u", p->hr_resize_x, p->hr_resize_y);
        else if (i == LF_P_model && model_label && *model_label)
            snprintf(v, sizeof vals[0], "%s", model_label);
        else if (i == LF_P_prompt_original) /* a whole prompt: not cut to the buffer */
            v = p->prompt_original ? p->prompt_original : "";
        else
            lf_param_format(p, d, v, sizeof vals[0]);
        if (s_is_str(d) && !*v) continue; /* an empty name says nothing */
        kv[n].key = (char *)d->label;
        kv[n].value = v;
        n++;
    }
    return lf_infotext_format(prompt, negative, kv, n, out);
}

int lf_params_from_infotext(const char *text, lf_job_params_t *p, int *skipped) {
    lf_infotext_t it = {0};
    int bad = 0;
    if (lf_params_defaults(p) || lf_infotext_parse(text, &it)) goto oom;
    if (lf_param_set_str(p, &s_table[LF_P_prompt], it.prompt) == LF_ENOMEM ||
        lf_param_set_str(p, &s_table[LF_P_negative_prompt], it.negative) == LF_ENOMEM)
        goto oom;
    for (size_t i = 0; i < it.n_params; i++) {
        const char *k = it.params[i].key, *v = it.params[i].value;
        const lf_param_def_t *d = NULL;
        /* A1111 splits "Size: WxH" into Size-1 and Size-2. */
        if (!strcmp(k, "Size-1")) d = &s_table[LF_P_width];
        else if (!strcmp(k, "Size-2")) d = &s_table[LF_P_height];
        else if (!strcmp(k, "Hires resize-1")) d = &s_table[LF_P_hr_resize_x];
        else if (!strcmp(k, "Hires resize-2")) d = &s_table[LF_P_hr_resize_y];
        else d = lf_param_find_label(k);
        if (!d) continue; /* labels we do not carry (Model hash, Version, ...) */
        int rc;
        const char *sch = NULL;
        const lf_param_enum_t *old = d == &s_table[LF_P_sampler] && !lf_param_enum_lookup(d, v)
                                         ? lf_param_sampler_with_scheduler(v, &sch)
                                         : NULL;
        if (old) { /* older A1111 texts: "Sampler: DPM++ 2M Karras" */
            rc = lf_param_set_str(p, d, old->name);
            if (!rc) rc = lf_param_set_str(p, &s_table[LF_P_scheduler], sch);
        } else if (d == &s_table[LF_P_refiner_checkpoint] || d == &s_table[LF_P_vae]) {
            /* A1111 writes the refiner's short title, "name [hash]", and the VAE's
             * file name, "name.safetensors": keep the name. */
            const char *br = strrchr(v, '[');
            size_t n = strlen(v);
            if (br && br > v && br[-1] == ' ' && v[n - 1] == ']') n = (size_t)(br - v - 1);
            static const char *const exts[] = {".safetensors", ".ckpt", ".pt"};
            for (size_t k = 0; d == &s_table[LF_P_vae] && k < sizeof exts / sizeof exts[0]; k++) {
                size_t l = strlen(exts[k]);
                if (n > l && !strncmp(v + n - l, exts[k], l)) n -= l;
            }
            char *name = strndup(v, n);
            rc = name ? lf_param_set_str(p, d, name) : LF_ENOMEM;
            free(name);
        } else if (s_is_str(d)) {
            rc = lf_param_set_str(p, d, v);
        } else {
            char *end = NULL;
            double x = strtod(v, &end);
            rc = end && end != v && !*end ? lf_param_set_num(p, d, x) : LF_EINVAL;
        }
        if (rc == LF_ENOMEM) goto oom;
        if (rc) bad++;
    }
    /* A Denoising strength means Hires-Fix when a "Hires ..." key comes with
     * it (A1111's txt2img paste rule), else an img2img source. */
    if (lf_infotext_get(&it, "Denoising strength")) {
        if (lf_infotext_get(&it, "Hires upscale") || lf_infotext_get(&it, "Hires upscaler") ||
            lf_infotext_get(&it, "Hires resize-1"))
            p->enable_hr = true;
        else if (lf_param_set_str(p, &s_table[LF_P_mode], "img2img"))
            goto oom;
    }
    lf_infotext_clear(&it);
    if (skipped) *skipped = bad;
    return 0;
oom:
    lf_infotext_clear(&it);
    lf_params_clear(p);
    return LF_ENOMEM;
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *s_value_json(const lf_job_params_t *p, const lf_param_def_t *d) {
    switch (d->type) {
    case LF_PT_STR:
    case LF_PT_ENUM: return lf_param_cstr(p, d) ? json_string(lf_param_cstr(p, d)) : json_null();
    case LF_PT_JSON: {
        json_t *j = lf_param_cstr(p, d) ? json_loads(lf_param_cstr(p, d), JSON_DECODE_ANY, NULL) : NULL;
        return j ? j : json_null();
    }
    case LF_PT_U32: return json_integer(*(const uint32_t *)((const char *)p + d->offset));
    case LF_PT_I64: return json_integer((json_int_t) * (const int64_t *)((const char *)p + d->offset));
    case LF_PT_F64: return json_real(*(const double *)((const char *)p + d->offset));
    case LF_PT_BOOL: return json_boolean(*(const bool *)((const char *)p + d->offset));
    case LF_PT_LORAS: {
        const lf_param_loras_t *l = lf_param_loras(p, d);
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < l->n; i++) {
            json_t *o = json_pack("{s:s,s:f}", "name", l->v[i].name, "weight", l->v[i].weight);
            if (o && !isnan(l->v[i].te_weight)) json_object_set_new(o, "te_weight", json_real(l->v[i].te_weight));
            json_array_append_new(a, o);
        }
        return a;
    }
    }
    return json_null();
}

struct json_t *lf_params_json(const lf_job_params_t *p, bool a1111_names) {
    json_t *j = json_object();
    for (int i = 0; j && i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &s_table[i];
        const char *key = a1111_names ? d->a1111 : d->name;
        if (!key) continue;
        if (s_is_str(d) && !lf_param_cstr(p, d)) continue;
        if (s_is_loras(d) && !lf_param_loras(p, d)->n) continue;
        if ((d->flags & LF_PF_DIAG) && lf_param_num(p, d) == d->def) continue;
        json_object_set_new(j, key, s_value_json(p, d));
    }
    return j;
}

static json_t *s_schema_row(const lf_param_def_t *d, bool a1111) {
    json_t *s = json_object();
    if (!s) return NULL;
    switch (d->type) {
    case LF_PT_STR:
        json_object_set_new(s, "type", json_string("string"));
        if (d->lo > 0) json_object_set_new(s, "minLength", json_integer((json_int_t)d->lo));
        json_object_set_new(s, "maxLength", json_integer((json_int_t)d->hi));
        if (d->def_str) json_object_set_new(s, "default", json_string(d->def_str));
        break;
    case LF_PT_ENUM: {
        json_t *e = json_array();
        for (const lf_param_enum_t *v = d->values; v->name; v++) json_array_append_new(e, json_string(a1111 ? v->a1111 : v->name));
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "enum", e);
        if (d->def_str) {
            const lf_param_enum_t *v = lf_param_enum_lookup(d, d->def_str);
            json_object_set_new(s, "default", json_string(a1111 && v ? v->a1111 : d->def_str));
        }
        break;
    }
    case LF_PT_U32:
    case LF_PT_I64:
        json_object_set_new(s, "type", json_string("integer"));
        json_object_set_new(s, "minimum", json_integer((json_int_t)d->lo));
        json_object_set_new(s, "maximum", json_integer((json_int_t)d->hi));
        if (d->flags & LF_PF_MULTIPLE) json_object_set_new(s, "multipleOf", json_integer((json_int_t)d->step));
        json_object_set_new(s, "default", json_integer((json_int_t)d->def));
        break;
    case LF_PT_F64:
        json_object_set_new(s, "type", json_string("number"));
        json_object_set_new(s, "minimum", json_real(d->lo));
        json_object_set_new(s, "maximum", json_real(d->hi));
        json_object_set_new(s, "default", json_real(d->def));
        break;
    case LF_PT_BOOL:
        json_object_set_new(s, "type", json_string("boolean"));
        json_object_set_new(s, "default", json_boolean(d->def != 0));
        break;
    case LF_PT_JSON:
        json_object_set_new(s, "type", json_string("array"));
        json_object_set_new(s, "items", json_pack("{s:s,s:b}", "type", "object", "additionalProperties", 1));
        json_object_set_new(s, "default", json_array());
        break;
    case LF_PT_LORAS: {
        json_t *w = json_pack("{s:s,s:f,s:f,s:f}", "type", "number", "minimum", -LF_LORA_WEIGHT_LIMIT,
                              "maximum", LF_LORA_WEIGHT_LIMIT, "default", d->def);
        json_t *te = json_pack("{s:s,s:f,s:f,s:s}", "type", "number", "minimum", -LF_LORA_WEIGHT_LIMIT,
                               "maximum", LF_LORA_WEIGHT_LIMIT, "description", "default: weight");
        json_t *item = json_pack("{s:s,s:[s],s:b,s:{s:{s:s,s:i,s:i},s:o,s:o}}", "type", "object",
                                 "required", "name", "additionalProperties", 0, "properties", "name",
                                 "type", "string", "minLength", 1, "maxLength", LF_LORA_NAME_MAX,
                                 "weight", w, "te_weight", te);
        json_object_set_new(s, "type", json_string("array"));
        json_object_set_new(s, "maxItems", json_integer((json_int_t)d->hi));
        json_object_set_new(s, "items", item);
        json_object_set_new(s, "default", json_array());
        break;
    }
    }
    json_object_set_new(s, "description", json_string(d->desc));
    return s;
}

struct json_t *lf_params_schema_properties(bool a1111) {
    json_t *props = json_object();
    for (int i = 0; props && i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &s_table[i];
        if (a1111 && (!d->a1111 || d->a1111_at != LF_PA_TOP)) continue;
        json_object_set_new(props, a1111 ? d->a1111 : d->name, s_schema_row(d, a1111));
    }
    /* The native API's step caching object: the cache_* rows by their tail. */
    json_t *cache = a1111 || !props ? NULL : json_object(), *cp = cache ? json_object() : NULL;
    for (int i = 0; cp && i < LF_P__COUNT; i++)
        if (!strncmp(s_table[i].name, "cache_", 6))
            json_object_set_new(cp, s_table[i].name + 6, s_schema_row(&s_table[i], false));
    if (cache && cp) {
        json_object_set_new(cache, "type", json_string("object"));
        json_object_set_new(cache, "properties", cp);
        json_object_set_new(cache, "additionalProperties", json_false());
        json_object_set_new(cache, "description",
                            json_string("step caching: {kind, threshold, start, end, interval, depth}, the "
                                        "cache_* fields as one object"));
        json_object_set_new(props, "cache", cache);
    } else {
        json_decref(cache);
        json_decref(cp);
    }
    return props;
}

struct json_t *lf_params_describe(void) {
    json_t *rows = json_array();
    for (int i = 0; rows && i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &s_table[i];
        json_t *r = s_schema_row(d, false);
        if (!r) break;
        json_object_set_new(r, "name", json_string(d->name));
        json_object_set_new(r, "kind", json_string(lf_param_type_name(d->type)));
        if (d->step > 0) json_object_set_new(r, "step", json_real(d->step));
        if (d->a1111) {
            json_object_set_new(r, "a1111", json_string(d->a1111));
            json_object_set_new(r, "a1111_in", json_string(lf_param_at_name(d->a1111_at)));
        }
        if (d->label) json_object_set_new(r, "infotext", json_string(d->label));
        if (d->type == LF_PT_ENUM) {
            json_t *labels = json_object();
            for (const lf_param_enum_t *v = d->values; v->name; v++) json_object_set_new(labels, v->name, json_string(v->a1111));
            json_object_set_new(r, "enum_a1111", labels);
        }
        json_object_set_new(r, "model_default", json_boolean(d->flags & LF_PF_MODEL_DEF));
        /* Sizes: the table's minimum is the diagnostic model's; real models start higher. */
        if ((d->flags & LF_PF_MODEL_DEF) && d->lo < LF_SIZE_MIN_REAL)
            json_object_set_new(r, "real_model_minimum", json_integer(LF_SIZE_MIN_REAL));
        json_object_set_new(r, "diagnostic_only", json_boolean(d->flags & LF_PF_DIAG));
        json_object_set_new(r, "random_if_negative", json_boolean(d->flags & LF_PF_RANDOM_NEG));
        json_array_append_new(rows, r);
    }
    return rows;
}
