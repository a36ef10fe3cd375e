/* lf_fleet: default model, model lookup, size fit and readiness from the
 * live workers' capabilities. */
#include "lf_fleet.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "lf_error.h"
#include "lf_extranet.h"
#include "lf_vaefamily.h"
#include <jansson.h>

bool lf_fleet_serves(const lf_worker_view_t *ws, size_t n, const char *name) {
    if (!name) return false;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < ws[i].caps.n_models; k++)
            if (ws[i].caps.models[k].name && !strcmp(ws[i].caps.models[k].name, name)) return true;
    return false;
}

void lf_fleet_default_model(const lf_worker_view_t *ws, size_t n, const char *configured, char *out,
                            size_t len) {
    const char *user = NULL, *own = NULL, *diag = NULL;
    for (size_t i = 0; i < n; i++) {
        const lf_worker_caps_t *c = &ws[i].caps;
        for (size_t k = 0; k < c->n_models; k++) {
            const char *name = c->models[k].name;
            if (!name || !*name) continue;
            if (lf_validate_is_diagnostic(name)) {
                if (!diag) diag = name;
            } else if (strncmp(name, "lf-", 3) != 0) {
                if (!user) user = name;
            } else if (!own) {
                own = name;
            }
        }
    }
    const char *real = user ? user : own;
    const char *pick = real ? real : diag;
    /* An explicit choice counts when it is served; the test card never
     * displaces a real model. */
    if (configured && *configured && lf_fleet_serves(ws, n, configured) &&
        !(lf_validate_is_diagnostic(configured) && real))
        pick = configured;
    snprintf(out, len, "%s", pick ? pick : "");
}

static const lf_model_info_t *s_model(const lf_worker_caps_t *c, const char *name);

/* Has worker c the job's refiner and VAE (when it names them)? */
static bool s_has_parts(const lf_worker_caps_t *c, const lf_job_params_t *p) {
    if (p->refiner_checkpoint && !s_model(c, p->refiner_checkpoint)) return false;
    bool vae = !p->vae;
    for (size_t k = 0; !vae && k < c->n_vaes; k++) vae = c->vaes[k] && !strcmp(c->vaes[k], p->vae);
    return vae;
}

int lf_fleet_fit(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p, lf_verr_t *err) {
    uint64_t best = 0;
    bool any = false, unlimited = false;
    for (size_t i = 0; i < n; i++) {
        bool serves = false;
        for (size_t k = 0; k < ws[i].caps.n_models; k++)
            if (ws[i].caps.models[k].name && p->model && !strcmp(ws[i].caps.models[k].name, p->model))
                serves = true;
        if (!serves || !s_has_parts(&ws[i].caps, p)) continue;
        any = true;
        if (!ws[i].caps.max_pixels) unlimited = true;
        if (ws[i].caps.max_pixels > best) best = ws[i].caps.max_pixels;
    }
    if (!any || unlimited) return 0;
    uint64_t batch = p->batch_size ? p->batch_size : 1;
    uint32_t ow, oh; /* the images' size: Hires-Fix's final size when on */
    lf_params_output_size(p, &ow, &oh);
    const bool hires = ow != p->width || oh != p->height;
    uint64_t one = (uint64_t)ow * oh, all = one * batch;
    if (all <= best) return 0;
    if (one > best) {
        lf_verr_set(err, 400, "out_of_range",
                    !hires ? "width" : p->hr_resize_x || p->hr_resize_y ? "hr_resize_x" : "hr_scale",
                    "%s%" PRIu32 "x%" PRIu32 " is %" PRIu64 " pixels; no live worker serving '%s' "
                    "takes more than %" PRIu64 " (max_pixels)",
                    hires ? "the Hires-Fix size " : "", ow, oh, one, p->model, best);
        return LF_ELIMIT;
    }
    lf_verr_set(err, 400, "out_of_range", "batch_size",
                "%" PRIu32 "x%" PRIu32 " x batch %" PRIu64 " is %" PRIu64 " pixels; no live worker "
                "serving '%s' takes more than %" PRIu64 " (max_pixels): at most batch_size %" PRIu64
                " at this size",
                ow, oh, batch, all, p->model, best, best / one);
    return LF_ELIMIT;
}

uint32_t lf_fleet_resolution(const lf_worker_view_t *ws, size_t n, const char *name) {
    for (size_t i = 0; name && i < n; i++)
        for (size_t k = 0; k < ws[i].caps.n_models; k++)
            if (ws[i].caps.models[k].name && !strcmp(ws[i].caps.models[k].name, name) && ws[i].caps.models[k].resolution)
                return ws[i].caps.models[k].resolution;
    return 0;
}

const lf_model_defaults_t *lf_fleet_defaults(const lf_worker_view_t *ws, size_t n, const char *name) {
    for (size_t i = 0; name && i < n; i++)
        for (size_t k = 0; k < ws[i].caps.n_models; k++)
            if (ws[i].caps.models[k].name && !strcmp(ws[i].caps.models[k].name, name) &&
                lf_model_defaults_any(&ws[i].caps.models[k].defaults))
                return &ws[i].caps.models[k].defaults;
    return NULL;
}

static bool s_lora_is(const lf_lora_info_t *l, const char *name);

const lf_model_defaults_t *lf_fleet_lora_defaults(const lf_worker_view_t *ws, size_t n, const char *name) {
    for (size_t i = 0; name && i < n; i++)
        for (size_t k = 0; k < ws[i].caps.n_loras; k++)
            if (s_lora_is(&ws[i].caps.loras[k], name) && lf_model_defaults_any(&ws[i].caps.loras[k].defaults))
                return &ws[i].caps.loras[k].defaults;
    return NULL;
}

json_t *lf_fleet_defaults_json(const lf_model_defaults_t *d) {
    if (!lf_model_defaults_any(d)) return NULL;
    json_t *o = json_object();
    if (d->steps) json_object_set_new(o, "steps", json_integer(d->steps));
    if (d->has_cfg) json_object_set_new(o, "cfg_scale", json_real(d->cfg_scale));
    if (d->sampler) json_object_set_new(o, "sampler", json_string(d->sampler));
    if (d->scheduler) json_object_set_new(o, "scheduler", json_string(d->scheduler));
    if (d->width) json_object_set_new(o, "width", json_integer(d->width));
    if (d->height) json_object_set_new(o, "height", json_integer(d->height));
    if (d->has_weight) json_object_set_new(o, "weight", json_real(d->weight)); /* a LoRA's */
    if (d->timesteps) { /* as the API takes them: an array of integers */
        int ts[256], n = lf_param_timesteps_parse(d->timesteps, ts, 256);
        json_t *a = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(ts[i]));
        json_object_set_new(o, "timesteps", a);
    }
    return o;
}

static const lf_model_info_t *s_model(const lf_worker_caps_t *c, const char *name) {
    for (size_t k = 0; name && k < c->n_models; k++)
        if (c->models[k].name && !strcmp(c->models[k].name, name)) return &c->models[k];
    return NULL;
}

const lf_vae_info_t *lf_fleet_vae_info(const lf_worker_caps_t *c, const char *name) {
    for (size_t k = 0; name && k < c->n_vae_info; k++)
        if (c->vae_info[k].name && !strcmp(c->vae_info[k].name, name)) return &c->vae_info[k];
    return NULL;
}

json_t *lf_fleet_vaes(const lf_worker_view_t *ws, size_t n) {
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++)
        for (size_t k = 0; k < ws[i].caps.n_vaes; k++) {
            const char *name = ws[i].caps.vaes[k];
            if (!name) continue;
            json_t *found = NULL, *v;
            size_t idx;
            json_array_foreach(out, idx, v) if (!strcmp(json_string_value(json_object_get(v, "name")), name)) found = v;
            if (!found) json_array_append_new(out, found = json_pack("{s:s,s:i}", "name", name, "workers", 0));
            json_object_set_new(found, "workers", json_integer(json_integer_value(json_object_get(found, "workers")) + 1));
            /* The first worker that says the family (workers have the same files). */
            const lf_vae_info_t *vi = lf_fleet_vae_info(&ws[i].caps, name);
            if (vi && vi->kind && !json_object_get(found, "family"))
                json_object_set_new(found, "family", json_string(vi->kind));
            if (vi && vi->latent && !json_object_get(found, "latent_channels"))
                json_object_set_new(found, "latent_channels", json_integer(vi->latent));
        }
    return out;
}

json_t *lf_fleet_model_vaes(const lf_worker_view_t *ws, size_t n, const char *model) {
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        const lf_worker_caps_t *c = &ws[i].caps;
        const lf_model_info_t *m = s_model(c, model);
        for (size_t k = 0; m && k < c->n_vaes; k++) {
            const char *name = c->vaes[k];
            const lf_vae_info_t *vi = lf_fleet_vae_info(c, name);
            if (!name || (vi && !lf_vaefamily_fits(vi->kind, vi->latent, m->kind))) continue;
            bool dup = false;
            json_t *v;
            size_t idx;
            json_array_foreach(out, idx, v) dup |= !strcmp(json_string_value(v), name);
            if (!dup) json_array_append_new(out, json_string(name));
        }
    }
    return out;
}


int lf_fleet_parts(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p, const char *refiner_field,
                   const char *vae_field, lf_verr_t *err) {
    bool refiner = !p->refiner_checkpoint, vae = !p->vae;
    const char *base_kind = NULL, *ref_kind = NULL; /* a refiner of another family cannot refine */
    const char *vae_kind = NULL, *model_kind = NULL; /* nor a VAE of another family decode */
    uint32_t vae_latent = 0;
    for (size_t i = 0; i < n && !(refiner && vae); i++) {
        const lf_worker_caps_t *c = &ws[i].caps;
        const lf_model_info_t *m = s_model(c, p->model), *r = s_model(c, p->refiner_checkpoint);
        if (!m) continue;
        if (!refiner && r) {
            /* Same family, or both SDXL kinds (a refiner may be advertised as one of its own). */
            if (m->kind && r->kind && strcmp(m->kind, r->kind) && (strncmp(m->kind, "sdxl", 4) || strncmp(r->kind, "sdxl", 4))) {
                base_kind = m->kind;
                ref_kind = r->kind;
            } else {
                refiner = true;
            }
        }
        for (size_t k = 0; !vae && k < c->n_vaes; k++) {
            if (!c->vaes[k] || strcmp(c->vaes[k], p->vae)) continue;
            /* A worker that says the VAE's family (caps vae_info) and says
             * it does not fit: kept to say why; any other holder will do. */
            const lf_vae_info_t *vi = lf_fleet_vae_info(c, p->vae);
            if (vi && !lf_vaefamily_fits(vi->kind, vi->latent, m->kind)) {
                vae_kind = vi->kind ? vi->kind : "unknown";
                vae_latent = vi->latent;
                model_kind = m->kind;
            } else {
                vae = true;
            }
        }
    }
    char a[129], b[129];
    if (!refiner && base_kind) {
        lf_verr_set(err, 400, "invalid_value", refiner_field, "refiner '%s' is a %s model; model '%s' is %s",
                    lf_utf8_clip(p->refiner_checkpoint, b, sizeof b), ref_kind, lf_utf8_clip(p->model, a, sizeof a),
                    base_kind);
        return LF_EINVAL;
    }
    if (!refiner) {
        lf_verr_set(err, 400, "unknown_model", refiner_field,
                    "no live worker serving model '%s' serves refiner '%s' (GET /v1/models lists them)",
                    lf_utf8_clip(p->model, a, sizeof a), lf_utf8_clip(p->refiner_checkpoint, b, sizeof b));
        return LF_ENOTFOUND;
    }
    if (!vae && vae_kind) {
        lf_verr_set(err, 400, "invalid_value", vae_field,
                    "VAE '%s' is a %s VAE (%" PRIu32 " latent channels); model '%s' is %s (%" PRIu32 " latent "
                    "channels): name a VAE of its family (GET /v1/models lists each model's vaes)",
                    lf_utf8_clip(p->vae, b, sizeof b), vae_kind, vae_latent, lf_utf8_clip(p->model, a, sizeof a),
                    model_kind, lf_vaefamily_latent(model_kind));
        return LF_EINVAL;
    }
    if (!vae) {
        lf_verr_set(err, 400, "unknown_vae", vae_field,
                    "no live worker serving model '%s' has VAE '%s' (GET /v1/models lists them under vaes)",
                    lf_utf8_clip(p->model, a, sizeof a), lf_utf8_clip(p->vae, b, sizeof b));
        return LF_ENOTFOUND;
    }
    return 0;
}

void lf_fleet_count(const lf_worker_view_t *ws, size_t n, size_t *workers, size_t *with_models) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (ws[i].caps.n_models) w++;
    if (workers) *workers = n;
    if (with_models) *with_models = w;
}

size_t lf_fleet_not_ready(const lf_fleet_health_t *h, const char **reasons, size_t cap) {
    const char *r[3];
    size_t k = 0;
    if (!h->redis_ok) r[k++] = "redis does not answer";
    if (!h->brokers_live) r[k++] = "no live broker";
    if (!h->workers_with_models)
        r[k++] = h->workers ? "no live worker advertises a model" : "no worker has registered";
    for (size_t i = 0; i < k && i < cap; i++) reasons[i] = r[i];
    return k;
}

/* ---- LoRAs ----------------------------------------------------------------- */

/* Does info answer to name (name, alias, or path without its extension)? */
static bool s_lora_is(const lf_lora_info_t *l, const char *name) {
    if ((l->name && !strcmp(l->name, name)) || (l->alias && !strcmp(l->alias, name))) return true;
    if (!l->path) return false;
    const char *dot = strrchr(l->path, '.');
    size_t len = dot && dot > l->path ? (size_t)(dot - l->path) : strlen(l->path);
    return strlen(name) == len && !strncmp(l->path, name, len);
}

static bool s_serves(const lf_worker_caps_t *c, const char *model) {
    for (size_t k = 0; k < c->n_models; k++)
        if (c->models[k].name && model && !strcmp(c->models[k].name, model)) return true;
    return false;
}

int lf_fleet_upscaler_check(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p, const char *field,
                            lf_verr_t *err) {
    const bool up = p->mode && !strcmp(p->mode, "upscale");
    const char *name = up ? p->upscaler : p->enable_hr ? p->hr_upscaler : NULL;
    if (!field) field = up ? "upscaler" : "hr_upscaler";
    /* An upscale job resizes the image: the latent modes are not for it. */
    bool builtin = lf_param_hr_upscaler_builtin(name);
    for (int i = 0; up && builtin && i < LF_PARAM_HR_LATENT_UPSCALERS; i++)
        if (!strcmp(name, lf_param_hr_builtin_upscalers[i]))
            return lf_verr_set(err, 400, "invalid_value", field, "%s: '%s' resizes a latent; an upscale job takes None, "
                               "Lanczos, Nearest or an upscaler model", field, name), LF_EINVAL;
    if (!name || builtin) return 0;
    for (size_t w = 0; w < n; w++) {
        const lf_worker_caps_t *c = &ws[w].caps;
        if (!s_serves(c, p->model)) continue;
        for (size_t k = 0; k < c->n_upscalers; k++)
            if (c->upscalers[k] && !strcmp(c->upscalers[k], name)) return 0;
    }
    char clip[129];
    lf_verr_set(err, 400, "unknown_upscaler", field,
                "no live worker serving model '%s' has upscaler '%s' (GET /v1/upscalers lists them, with "
                "the built-in Latent..., None, Lanczos, Nearest)",
                p->model ? p->model : "", lf_utf8_clip(name, clip, sizeof clip));
    return LF_ENOTFOUND;
}

/* The names of one caps list over ws, each once with how many workers have
 * it: [{name, workers}] in first-seen order. */
static json_t *s_names_union(const lf_worker_view_t *ws, size_t n, size_t list_off, size_t count_off) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        char *const *list = *(char *const *const *)((const char *)&ws[i].caps + list_off);
        size_t cnt = *(const size_t *)((const char *)&ws[i].caps + count_off);
        for (size_t k = 0; list && k < cnt; k++) {
            const char *name = list[k];
            if (!name) continue;
            json_t *found = NULL, *v;
            size_t idx;
            json_array_foreach(arr, idx, v) if (!strcmp(json_string_value(json_object_get(v, "name")), name)) found = v;
            if (!found) json_array_append_new(arr, found = json_pack("{s:s,s:i}", "name", name, "workers", 0));
            if (found)
                json_object_set_new(found, "workers", json_integer(json_integer_value(json_object_get(found, "workers")) + 1));
        }
    }
    return arr;
}

json_t *lf_fleet_upscalers(const lf_worker_view_t *ws, size_t n) {
    return s_names_union(ws, n, offsetof(lf_worker_caps_t, upscalers), offsetof(lf_worker_caps_t, n_upscalers));
}

json_t *lf_fleet_ad_models(const lf_worker_view_t *ws, size_t n) {
    return s_names_union(ws, n, offsetof(lf_worker_caps_t, ad_models), offsetof(lf_worker_caps_t, n_ad_models));
}

int lf_fleet_has_ad_model(const lf_worker_view_t *ws, size_t n, const char *name) {
    for (size_t w = 0; w < n; w++)
        for (size_t k = 0; k < ws[w].caps.n_ad_models; k++)
            if (ws[w].caps.ad_models[k] && !strcmp(ws[w].caps.ad_models[k], name)) return 1;
    return 0;
}

int lf_fleet_loras_check(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p,
                         const char *prompt_field, lf_verr_t *err) {
    /* The tags must read first (the engine would refuse them). */
    char *text = NULL, why[160] = "";
    lf_extranet_t *x = NULL;
    size_t nx = 0;
    int rc = lf_extranet_extract(p->prompt ? p->prompt : "", &text, &x, &nx, why, sizeof why);
    free(text);
    if (rc == LF_ENOMEM) return lf_verr_set(err, 500, "internal", "", "out of memory");
    if (rc) return lf_verr_set(err, 400, "invalid_value", prompt_field, "%s", why);
    size_t total = nx + p->loras.n;
    for (size_t i = 0; i < total; i++) {
        const char *name = i < nx ? (x[i].is_lora ? x[i].name : NULL) : p->loras.v[i - nx].name;
        if (!name) continue;
        bool found = false;
        for (size_t w = 0; w < n && !found; w++) {
            const lf_worker_caps_t *c = &ws[w].caps;
            if (!s_serves(c, p->model)) continue;
            for (size_t k = 0; k < c->n_loras && !found; k++) found = s_lora_is(&c->loras[k], name);
        }
        if (!found) {
            char field[64], clip[129];
            if (i < nx) snprintf(field, sizeof field, "%s", prompt_field);
            else snprintf(field, sizeof field, "loras[%zu].name", i - nx);
            lf_verr_set(err, 400, "unknown_lora", field,
                        "no live worker serving model '%s' has LoRA '%s' (GET /v1/loras lists them)",
                        p->model ? p->model : "", lf_utf8_clip(name, clip, sizeof clip));
            lf_extranet_free(&x, nx);
            return LF_ENOTFOUND;
        }
    }
    lf_extranet_free(&x, nx);
    return 0;
}

size_t lf_fleet_loras(const lf_worker_view_t *ws, size_t n, const lf_lora_info_t **out,
                      size_t *holders, size_t cap) {
    size_t count = 0;
    for (size_t w = 0; w < n; w++)
        for (size_t k = 0; k < ws[w].caps.n_loras; k++) {
            const lf_lora_info_t *l = &ws[w].caps.loras[k];
            if (!l->name) continue;
            size_t j = 0;
            for (; j < count && j < cap; j++)
                if (!strcmp(out[j]->name, l->name)) break;
            if (j < count && j < cap) {
                if (holders) holders[j]++;
                continue;
            }
            if (count < cap) {
                out[count] = l;
                if (holders) holders[count] = 1;
            }
            count++;
        }
    return count;
}
