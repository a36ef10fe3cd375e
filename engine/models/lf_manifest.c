/* lf_manifest: model manifests and ComfyUI's part folders -> the parts of a
 * model, checked from tensor names and shapes; recommended settings from a
 * manifest or a file's metadata (see the header). */
#include "lf_manifest.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lf_error.h"
#include "lf_log.h"
#include "lf_params.h"

#define S_NAME_MAX 128

__attribute__((format(printf, 4, 5))) static int s_err(char *err, size_t errlen, int rc,
                                                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_ends(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcasecmp(s + n - m, suffix) == 0;
}

/* A tensor name ending in suffix (or equal to it). */
static int s_tail(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int s_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int s_is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

lf_manifest_defaults_t lf_manifest_defaults_none(void) {
    return (lf_manifest_defaults_t){.cfg = NAN, .weight = NAN};
}

int lf_manifest_is_path(const char *path) { return path && s_ends(path, LF_MANIFEST_SUFFIX); }

void lf_manifest_destroy(lf_manifest_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_manifest_t *m = *self_p;
    free(m->name), free(m->path), free(m->unet), free(m->checkpoint), free(m->vae), free(m->t5_tokenizer);
    for (size_t i = 0; i < m->n_text; i++) free(m->text[i]);
    free(m);
    *self_p = NULL;
}

void lf_manifest_list_free(lf_manifest_t ***list, size_t n) {
    if (!list || !*list) return;
    for (size_t i = 0; i < n; i++) lf_manifest_destroy(&(*list)[i]);
    free(*list);
    *list = NULL;
}

/* rel resolved against the folder of base (a file path); absolute paths
 * are kept. Caller owns. */
static char *s_resolve(const char *base, const char *rel) {
    if (rel[0] == '/' || !base) return strdup(rel);
    const char *slash = strrchr(base, '/');
    size_t dl = slash ? (size_t)(slash - base) : 0;
    size_t n = dl + 1 + strlen(rel) + 1;
    char *p = malloc(n);
    if (!p) return NULL;
    if (slash)
        snprintf(p, n, "%.*s/%s", (int)dl, base, rel);
    else
        snprintf(p, n, "%s", rel);
    return p;
}

/* The file name without folder and suffix. Caller owns. */
static char *s_stem(const char *path, const char *suffix) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (suffix && s_ends(b, suffix)) n -= strlen(suffix);
    return strndup(b, n);
}

static int s_name_ok(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n <= S_NAME_MAX && !strchr(s, '/') && s[0] != '.';
}

/* ---- recommended settings --------------------------------------------- */

/* The "defaults" object (manifest, or lf.defaults metadata) into d where d
 * is unset; where names the object for errors. 0 or LF_EFORMAT. */
static int s_defaults(const json_t *o, lf_manifest_defaults_t *d, const char *file,
                      const char *where, char *err, size_t errlen) {
    if (!json_is_object(o))
        return s_err(err, errlen, LF_EFORMAT, "%s: %s must be an object", file, where);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        if (!strcmp(k, "steps")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
                return s_err(err, errlen, LF_EFORMAT, "%s: %s.steps must be an integer in 1..1000",
                             file, where);
            if (!d->steps) d->steps = (int)json_integer_value(v);
        } else if (!strcmp(k, "cfg")) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 30)
                return s_err(err, errlen, LF_EFORMAT, "%s: %s.cfg must be a number in 0..30", file,
                             where);
            if (isnan(d->cfg)) d->cfg = json_number_value(v);
        } else if (!strcmp(k, "sampler") || !strcmp(k, "scheduler")) {
            char *dst = k[1] == 'a' ? d->sampler : d->scheduler;
            const char *s = json_string_value(v);
            if (!s || !*s || strlen(s) >= sizeof d->sampler)
                return s_err(err, errlen, LF_EFORMAT, "%s: %s.%s must be a name (1..31 characters)",
                             file, where, k);
            if (!*dst) snprintf(dst, sizeof d->sampler, "%s", s);
        } else if (!strcmp(k, "width") || !strcmp(k, "height")) {
            json_int_t x = json_integer_value(v);
            if (!json_is_integer(v) || x < 64 || x > 4096 || x % 8)
                return s_err(err, errlen, LF_EFORMAT,
                             "%s: %s.%s must be a multiple of 8 in 64..4096", file, where, k);
            int *dst = k[0] == 'w' ? &d->width : &d->height;
            if (!*dst) *dst = (int)x;
        } else if (!strcmp(k, "weight")) {
            if (!json_is_number(v) || fabs(json_number_value(v)) > LF_LORA_WEIGHT_LIMIT)
                return s_err(err, errlen, LF_EFORMAT, "%s: %s.weight must be a number in -%g..%g", file,
                             where, LF_LORA_WEIGHT_LIMIT, LF_LORA_WEIGHT_LIMIT);
            if (isnan(d->weight)) d->weight = json_number_value(v);
        } else if (!strcmp(k, "timesteps")) {
            char t[sizeof d->timesteps];
            int ts[64];
            if (!json_is_array(v) || lf_param_timesteps_text(v, t, sizeof t) || lf_param_timesteps_parse(t, ts, 64) < 1)
                return s_err(err, errlen, LF_EFORMAT,
                             "%s: %s.timesteps must be an array of strictly descending integers in 0..%d",
                             file, where, LF_PARAM_TIMESTEP_MAX);
            if (!*d->timesteps) memcpy(d->timesteps, t, sizeof t);
        } else {
            return s_err(err, errlen, LF_EFORMAT,
                         "%s: unknown field %s.%s (steps, cfg, sampler, scheduler, width, height, timesteps, "
                         "weight)",
                         file, where, k);
        }
    }
    return 0;
}

/* "epsilon" | "v_prediction" (also "v", ModelSpec's) | "sample". 0 or -1. */
static int s_prediction(const char *s, lf_prediction_t *p, int *sample) {
    *sample = 0;
    if (!strcmp(s, "epsilon") || !strcmp(s, "eps")) *p = LF_PRED_EPS;
    else if (!strcmp(s, "v_prediction") || !strcmp(s, "v")) *p = LF_PRED_V;
    else if (!strcmp(s, "sample") || !strcmp(s, "x0")) *p = LF_PRED_SAMPLE, *sample = 1;
    else return -1;
    return 0;
}

int lf_manifest_defaults_from_metadata(const lf_weights_t *w, lf_manifest_defaults_t *d,
                                       lf_prediction_t *prediction, int *has_prediction) {
    int n = 0;
    const char *s = lf_weights_metadata(w, "lf.defaults");
    if (s) {
        json_t *o = json_loads(s, 0, NULL);
        lf_manifest_defaults_t t = lf_manifest_defaults_none();
        /* A bad lf.defaults is ignored (the file still loads). */
        if (o && s_defaults(o, &t, lf_weights_path(w), "lf.defaults", NULL, 0) == 0) {
            if (!d->steps && t.steps) d->steps = t.steps, n++;
            if (isnan(d->cfg) && !isnan(t.cfg)) d->cfg = t.cfg, n++;
            if (!*d->sampler && *t.sampler) memcpy(d->sampler, t.sampler, sizeof t.sampler), n++;
            if (!*d->scheduler && *t.scheduler)
                memcpy(d->scheduler, t.scheduler, sizeof t.scheduler), n++;
            if (!d->width && t.width) d->width = t.width, n++;
            if (!d->height && t.height) d->height = t.height, n++;
            if (!*d->timesteps && *t.timesteps) memcpy(d->timesteps, t.timesteps, sizeof t.timesteps), n++;
            if (isnan(d->weight) && !isnan(t.weight)) d->weight = t.weight, n++;
        }
        json_decref(o);
    }
    /* ModelSpec: "1024x1024" (width x height). */
    s = lf_weights_metadata(w, "modelspec.resolution");
    int rw = 0, rh = 0;
    if (s && sscanf(s, "%dx%d", &rw, &rh) == 2 && rw >= 64 && rh >= 64 && rw <= 4096 &&
        rh <= 4096 && rw % 8 == 0 && rh % 8 == 0 && !d->width && !d->height)
        d->width = rw, d->height = rh, n += 2;
    s = lf_weights_metadata(w, "modelspec.prediction_type");
    lf_prediction_t p;
    int sample;
    if (s && prediction && has_prediction && !*has_prediction && !s_prediction(s, &p, &sample))
        *prediction = p, *has_prediction = 1, n++;
    return n;
}

int lf_manifest_prediction(const lf_manifest_t *m, lf_prediction_t *out) {
    *out = m && m->has_prediction ? m->prediction : LF_PRED_EPS;
    return 0;
}

/* ---- parsing ----------------------------------------------------------- */

static int s_part_path(lf_manifest_t *m, const json_t *v, const char *field, char **dst,
                       char *err, size_t errlen) {
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) > 4000)
        return s_err(err, errlen, LF_EFORMAT, "%s: %s must be a path (a non-empty string)",
                     m->path, field);
    *dst = s_resolve(m->path, s);
    return *dst ? 0 : LF_ENOMEM;
}

int lf_manifest_parse(const char *text, size_t len, const char *path, lf_manifest_t **out,
                      char *err, size_t errlen) {
    if (!text || !path || !out) return LF_EINVAL;
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    if (!o)
        return s_err(err, errlen, LF_EFORMAT, "%s: line %d: bad JSON: %s", path, je.line, je.text);
    lf_manifest_t *m = calloc(1, sizeof *m);
    int rc = m && (m->path = strdup(path)) ? 0 : LF_ENOMEM;
    if (!rc) m->defaults = lf_manifest_defaults_none();
    if (!rc && !json_is_object(o))
        rc = s_err(err, errlen, LF_EFORMAT, "%s: the manifest must be a JSON object", path);
    const json_t *parts = NULL;
    const char *k;
    json_t *v;
    if (!rc) json_object_foreach(o, k, v) {
        if (rc) break;
        if (!strcmp(k, "name")) {
            const char *s = json_string_value(v);
            if (!s || !s_name_ok(s))
                rc = s_err(err, errlen, LF_EFORMAT,
                           "%s: name must be 1..%d characters without '/' or a leading '.'", path,
                           S_NAME_MAX);
            else if (!(m->name = strdup(s)))
                rc = LF_ENOMEM;
        } else if (!strcmp(k, "family")) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "sd15")) m->family = LF_FAMILY_SD15;
            else if (s && !strcmp(s, "sdxl")) m->family = LF_FAMILY_SDXL;
            else if (s && !strcmp(s, "flux")) m->family = LF_FAMILY_FLUX;
            else rc = s_err(err, errlen, LF_EFORMAT, "%s: family must be \"sd15\", \"sdxl\" or \"flux\"", path);
        } else if (!strcmp(k, "parts")) {
            parts = v;
        } else if (!strcmp(k, "prediction")) {
            const char *s = json_string_value(v);
            if (!s || s_prediction(s, &m->prediction, &m->prediction_sample))
                rc = s_err(err, errlen, LF_EFORMAT,
                           "%s: prediction must be \"epsilon\", \"v_prediction\" or \"sample\"",
                           path);
            m->has_prediction = 1;
        } else if (!strcmp(k, "resolution")) {
            json_int_t x = json_integer_value(v);
            if (!json_is_integer(v) || x < 64 || x > 4096 || x % 8)
                rc = s_err(err, errlen, LF_EFORMAT,
                           "%s: resolution must be a multiple of 8 in 64..4096", path);
            m->resolution = (uint32_t)x;
        } else if (!strcmp(k, "weights")) {
            const char *s = json_string_value(v);
            if (!s || !*s || strlen(s) >= sizeof m->weights)
                rc = s_err(err, errlen, LF_EFORMAT, "%s: weights must be a type name (\"q8_0\", \"none\", ...)",
                           path);
            else
                snprintf(m->weights, sizeof m->weights, "%s", s);
        } else if (!strcmp(k, "defaults")) {
            rc = s_defaults(v, &m->defaults, path, "defaults", err, errlen);
        } else if (strcmp(k, "description") != 0) {
            rc = s_err(err, errlen, LF_EFORMAT,
                       "%s: unknown field %s (name, family, parts, prediction, resolution, "
                       "defaults, weights, description)",
                       path, k);
        }
    }
    if (!rc && !m->family)
        rc = s_err(err, errlen, LF_EFORMAT, "%s: family is missing (\"sd15\", \"sdxl\" or \"flux\")", path);
    if (!rc && !json_is_object(parts))
        rc = s_err(err, errlen, LF_EFORMAT, "%s: parts is missing (an object with unet, ...)", path);
    if (!rc) json_object_foreach((json_t *)parts, k, v) {
        if (rc) break;
        if (!strcmp(k, "unet")) {
            rc = s_part_path(m, v, "parts.unet", &m->unet, err, errlen);
        } else if (!strcmp(k, "checkpoint")) {
            rc = s_part_path(m, v, "parts.checkpoint", &m->checkpoint, err, errlen);
        } else if (!strcmp(k, "vae")) {
            rc = s_part_path(m, v, "parts.vae", &m->vae, err, errlen);
        } else if (!strcmp(k, "t5_tokenizer")) {
            rc = s_part_path(m, v, "parts.t5_tokenizer", &m->t5_tokenizer, err, errlen);
        } else if (!strcmp(k, "text_encoders")) {
            size_t n = json_is_array(v) ? json_array_size(v) : 1;
            if (n < 1 || n > LF_MANIFEST_MAX_TEXT)
                rc = s_err(err, errlen, LF_EFORMAT,
                           "%s: parts.text_encoders must be a path or a list of 1..%d paths", path,
                           LF_MANIFEST_MAX_TEXT);
            for (size_t i = 0; i < n && !rc; i++) {
                rc = s_part_path(m, json_is_array(v) ? json_array_get(v, i) : v,
                                 "parts.text_encoders", &m->text[i], err, errlen);
                if (!rc) m->n_text++;
            }
        } else {
            rc = s_err(err, errlen, LF_EFORMAT,
                       "%s: unknown field parts.%s (unet, checkpoint, text_encoders, vae, t5_tokenizer)", path,
                       k);
        }
    }
    if (!rc && !m->unet)
        rc = s_err(err, errlen, LF_EFORMAT, "%s: parts.unet is missing (the UNet file)", path);
    if (!rc && !m->n_text && !m->checkpoint)
        rc = s_err(err, errlen, LF_EFORMAT,
                   "%s: parts.text_encoders is missing (or parts.checkpoint to take them from)",
                   path);
    if (!rc && !m->vae && !m->checkpoint)
        rc = s_err(err, errlen, LF_EFORMAT,
                   "%s: parts.vae is missing (or parts.checkpoint to take it from)", path);
    if (!rc && !m->n_text && !(m->text[m->n_text++] = strdup(m->checkpoint))) rc = LF_ENOMEM;
    if (!rc && !m->vae && !(m->vae = strdup(m->checkpoint))) rc = LF_ENOMEM;
    if (!rc && !m->name && !(m->name = s_stem(path, LF_MANIFEST_SUFFIX))) rc = LF_ENOMEM;
    if (!rc && !s_name_ok(m->name))
        rc = s_err(err, errlen, LF_EFORMAT, "%s: the file's name gives no model name", path);
    json_decref(o);
    if (rc) {
        if (rc == LF_ENOMEM) s_err(err, errlen, rc, "%s: out of memory", path);
        lf_manifest_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

int lf_manifest_load(const char *path, lf_manifest_t **out, char *err, size_t errlen) {
    if (!path || !out) return LF_EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f) return s_err(err, errlen, LF_EIO, "%s: cannot read the manifest", path);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    int big = n == sizeof buf;
    fclose(f);
    if (big) return s_err(err, errlen, LF_EFORMAT, "%s: a manifest is at most 64 KiB", path);
    return lf_manifest_parse(buf, n, path, out, err, errlen);
}

/* ---- parts from tensor names and shapes -------------------------------- */

typedef struct {
    int has_unet;
    lf_family_t family; /* the UNet's */
    int unet_in;        /* its input (latent) channels */
    int unet_ctx;       /* its cross-attention width (Flux: T5's width, txt_in's input) */
    int flux_vec;       /* Flux: the pooled CLIP width its vector_in takes */
    int flux_guidance;  /* Flux: a guidance embedding (dev) */
    int n_text;
    int text_width[4];
    int t5_width;       /* a T5 encoder's d_model (Flux's second text encoder), 0 = none */
    int has_vae;
    int vae_latent;
    char arch[96];      /* modelspec.architecture, "" when absent */
} s_probe_t;

static void s_probe_weights(const lf_weights_t *w, s_probe_t *p) {
    size_t n = lf_weights_count(w);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    for (size_t i = 0; i < n; i++) {
        const lf_tensor_info_t *t = lf_weights_at(w, i);
        const char *s = t->name;
        if (names) names[i] = s;
        if (t->ndim >= 2 && (!strcmp(s, "conv_in.weight") || !strcmp(s, "unet.conv_in.weight") ||
                             !strcmp(s, "model.diffusion_model.input_blocks.0.0.weight") ||
                             !strcmp(s, "input_blocks.0.0.weight")))
            p->has_unet = 1, p->unet_in = (int)t->shape[1];
        if (t->ndim == 2 && s_tail(s, "attn2.to_k.weight") && !p->unet_ctx)
            p->unet_ctx = (int)t->shape[1];
        if (t->ndim == 2 && s_tail(s, "token_embedding.weight") && p->n_text < 4)
            p->text_width[p->n_text++] = (int)t->shape[1];
        if (t->ndim == 2 && s_tail(s, "encoder.block.0.layer.0.SelfAttention.q.weight"))
            p->t5_width = (int)t->shape[1];
        /* Flux transformers: BFL names (any prefix) or diffusers' */
        if (t->ndim == 2 && (s_tail(s, "img_in.weight") || !strcmp(s, "x_embedder.weight")))
            p->has_unet = 1, p->unet_in = (int)t->shape[1] / 4; /* 2x2-packed latents */
        if (t->ndim == 2 && (s_tail(s, "txt_in.weight") || !strcmp(s, "context_embedder.weight")))
            p->unet_ctx = (int)t->shape[1];
        if (t->ndim == 2 && (s_tail(s, "vector_in.in_layer.weight") ||
                             !strcmp(s, "time_text_embed.text_embedder.linear_1.weight")))
            p->flux_vec = (int)t->shape[1];
        if (s_tail(s, "guidance_in.in_layer.weight") ||
            !strcmp(s, "time_text_embed.guidance_embedder.linear_1.weight"))
            p->flux_guidance = 1;
        if (t->ndim == 4 && s_tail(s, "decoder.conv_in.weight"))
            p->has_vae = 1, p->vae_latent = (int)t->shape[1];
    }
    if (p->has_unet && names) p->family = lf_model_detect_family(names, n);
    free(names);
    const char *a = lf_weights_metadata(w, "modelspec.architecture");
    if (a && !*p->arch) snprintf(p->arch, sizeof p->arch, "%s", a);
}

/* What a file (or a diffusers folder's parts) holds. 0, or the open's error. */
static int s_probe(const char *path, s_probe_t *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    if (!s_is_dir(path)) {
        lf_weights_t *w = NULL;
        int rc = lf_weights_open(&w, path, err, errlen);
        if (rc) return rc;
        s_probe_weights(w, p);
        lf_weights_destroy(&w);
        return 0;
    }
    static const char *const files[] = {
        "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.safetensors",           "text_encoder/model.fp16.safetensors",
        "text_encoder_2/model.safetensors",         "text_encoder_2/model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",  "vae/diffusion_pytorch_model.fp16.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i += 2) {
        char f[4200];
        snprintf(f, sizeof f, "%s/%s", path, files[i]);
        if (!s_is_file(f)) snprintf(f, sizeof f, "%s/%s", path, files[i + 1]);
        if (!s_is_file(f)) continue;
        lf_weights_t *w = NULL;
        int rc = lf_weights_open(&w, f, err, errlen);
        if (rc) return rc;
        s_probe_weights(w, p);
        lf_weights_destroy(&w);
    }
    return 0;
}

/* The family a ModelSpec architecture names, or UNKNOWN. */
static lf_family_t s_arch_family(const char *a) {
    if (!*a) return LF_FAMILY_UNKNOWN;
    if (strstr(a, "stable-diffusion-xl")) return LF_FAMILY_SDXL;
    if (strstr(a, "flux")) return LF_FAMILY_FLUX;
    if (strstr(a, "stable-diffusion-v1") || strstr(a, "stable-diffusion-v2")) return LF_FAMILY_SD15;
    return LF_FAMILY_UNKNOWN;
}

int lf_manifest_check(lf_manifest_t *m, char *err, size_t errlen) {
    if (!m || !m->unet) return LF_EINVAL;
    char who[4200], e[512] = "";
    if (m->path)
        snprintf(who, sizeof who, "manifest %s", m->path);
    else
        snprintf(who, sizeof who, "model %s", m->name ? m->name : m->unet);
    s_probe_t u, t, v;
    struct stat sb;
    if (m->t5_tokenizer && (stat(m->t5_tokenizer, &sb) != 0 || !S_ISREG(sb.st_mode)))
        return s_err(err, errlen, LF_ENOTFOUND, "%s: parts.t5_tokenizer %s: no such file", who, m->t5_tokenizer);
    int rc = s_probe(m->unet, &u, e, sizeof e);
    if (rc) return s_err(err, errlen, rc, "%s: parts.unet: %s", who, e);
    if (!u.has_unet)
        return s_err(err, errlen, LF_EFORMAT, "%s: parts.unet %s holds no UNet", who, m->unet);
    if (u.family != LF_FAMILY_SD15 && u.family != LF_FAMILY_SDXL && u.family != LF_FAMILY_FLUX)
        return s_err(err, errlen, LF_EUNSUPPORTED, "%s: parts.unet %s is a %s model (sd15, sdxl, flux)",
                     who, m->unet, lf_family_name(u.family));
    if (m->family && m->family != u.family)
        return s_err(err, errlen, LF_EINVAL,
                     "%s: parts.unet %s is an %s UNet; the manifest says family %s", who, m->unet,
                     lf_family_name(u.family), lf_family_name(m->family));
    m->family = u.family;
    const char *tfield = m->checkpoint && m->n_text == 1 && !strcmp(m->text[0], m->checkpoint)
                             ? "parts.checkpoint"
                             : "parts.text_encoders";
    int width = 0, n_enc = 0, clip_ok = 0;
    char widths[128] = "";
    const int flux = u.family == LF_FAMILY_FLUX;
    for (size_t i = 0; i < m->n_text; i++) {
        if ((rc = s_probe(m->text[i], &t, e, sizeof e)))
            return s_err(err, errlen, rc, "%s: %s: %s", who, tfield, e);
        if (flux && t.t5_width) { /* Flux: T5 for the tokens, CLIP-L for the pooled vector */
            if (t.t5_width != u.unet_ctx)
                return s_err(err, errlen, LF_EINVAL,
                             "%s: %s %s: a T5 encoder of width %d; the Flux transformer takes %d",
                             who, tfield, m->text[i], t.t5_width, u.unet_ctx);
            continue;
        }
        if (flux && t.n_text == 1 && t.text_width[0] == u.flux_vec) {
            clip_ok = 1;
            continue;
        }
        if (!t.n_text || flux)
            return s_err(err, errlen, LF_EFORMAT, "%s: %s %s holds no text encoder%s", who, tfield,
                         m->text[i], flux ? " a Flux transformer takes (CLIP-L, T5)" : "");
        for (int k = 0; k < t.n_text; k++) {
            size_t l = strlen(widths);
            snprintf(widths + l, sizeof widths - l, "%s%d", n_enc ? " + " : "", t.text_width[k]);
            width += t.text_width[k], n_enc++;
        }
    }
    if (flux && !clip_ok)
        return s_err(err, errlen, LF_ENOTFOUND,
                     "%s: %s: no CLIP-L of width %d among the text encoders (Flux's pooled vector)",
                     who, tfield, u.flux_vec);
    if (!flux && u.unet_ctx && width != u.unet_ctx)
        return s_err(err, errlen, LF_EINVAL,
                     "%s: %s %s: text encoder width %s = %d does not match the %s UNet's "
                     "cross-attention width %d (text encoders of another family?)",
                     who, tfield, m->text[0], widths, width, lf_family_name(u.family), u.unet_ctx);
    const char *vfield = m->checkpoint && !strcmp(m->vae, m->checkpoint) ? "parts.checkpoint"
                                                                          : "parts.vae";
    if ((rc = s_probe(m->vae, &v, e, sizeof e)))
        return s_err(err, errlen, rc, "%s: %s: %s", who, vfield, e);
    if (!v.has_vae)
        return s_err(err, errlen, LF_EFORMAT, "%s: %s %s holds no VAE", who, vfield, m->vae);
    if (v.vae_latent != u.unet_in)
        return s_err(err, errlen, LF_EINVAL,
                     "%s: %s %s: a VAE of %d latent channels; the UNet takes %d", who, vfield,
                     m->vae, v.vae_latent, u.unet_in);
    lf_family_t vf = s_arch_family(v.arch);
    if (vf && vf != u.family)
        return s_err(err, errlen, LF_EINVAL,
                     "%s: %s %s: its metadata says %s (an %s VAE) for an %s UNet", who, vfield,
                     m->vae, v.arch, lf_family_name(vf), lf_family_name(u.family));
    /* Settings the UNet file's metadata recommends, where the manifest is silent. */
    lf_weights_t *w = NULL;
    if (!s_is_dir(m->unet) && lf_weights_open(&w, m->unet, e, sizeof e) == 0) {
        int sample = m->prediction_sample;
        lf_manifest_defaults_from_metadata(w, &m->defaults, &m->prediction, &m->has_prediction);
        m->prediction_sample = sample;
        lf_weights_destroy(&w);
    }
    /* Flux's own settings where nothing else said: one pass (cfg 1; dev's
     * distilled guidance is separate), Euler, 1024 px, and BFL's step
     * counts: schnell (no guidance embedding) 4, dev 20 (ComfyUI's and Forge's default). */
    if (flux) {
        lf_manifest_defaults_t *d = &m->defaults;
        if (!d->steps) d->steps = u.flux_guidance ? 20 : 4;
        if (isnan(d->cfg)) d->cfg = 1.0;
        if (!*d->sampler) snprintf(d->sampler, sizeof d->sampler, "euler");
        if (!d->width) d->width = d->height = 1024;
    }
    return 0;
}

/* ---- ComfyUI's folders ------------------------------------------------- */

typedef struct {
    char *path;
    s_probe_t p;
} s_file_t;

static int s_cmp_file(const void *a, const void *b) {
    return strcmp(((const s_file_t *)a)->path, ((const s_file_t *)b)->path);
}

/* Weights files (.safetensors) of <models>/<sub> for each sub, probed;
 * unreadable ones are skipped with a warning. */
static int s_list_files(const char *models, const char *const *subs, size_t nsubs,
                        s_file_t **out, size_t *n) {
    s_file_t *v = NULL;
    size_t cnt = 0;
    for (size_t s = 0; s < nsubs; s++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", models, subs[s]);
        DIR *d = opendir(dir);
        if (!d) continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || !s_ends(de->d_name, ".safetensors")) continue;
            char path[4500], e[512];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            s_file_t f = {0};
            if (s_probe(path, &f.p, e, sizeof e)) {
                lf_warn("engine: skipping %s", e);
                continue;
            }
            s_file_t *nv = realloc(v, (cnt + 1) * sizeof *nv);
            if (!nv || !(f.path = strdup(path))) {
                free(nv ? nv : v);
                closedir(d);
                return LF_ENOMEM;
            }
            v = nv;
            v[cnt++] = f;
        }
        closedir(d);
    }
    if (cnt) qsort(v, cnt, sizeof *v, s_cmp_file);
    *out = v;
    *n = cnt;
    return 0;
}

static void s_files_free(s_file_t *v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i].path);
    free(v);
}

/* A ComfyUI-folder model for the UNet file u, or NULL with a warning. */
static lf_manifest_t *s_folder_model(const s_file_t *u, const s_file_t *clip, size_t nclip,
                                     const s_file_t *vae, size_t nvae) {
    const char *why = NULL;
    const s_file_t *t1 = NULL, *t2 = NULL, *va = NULL;
    /* Flux: CLIP-L of its pooled width and (optionally, until T5 runs) a T5 of its context width. */
    for (size_t i = 0; i < nclip && u->p.family == LF_FAMILY_FLUX; i++) {
        if (!t1 && clip[i].p.n_text == 1 && clip[i].p.text_width[0] == u->p.flux_vec) t1 = &clip[i];
        if (!t2 && clip[i].p.t5_width && clip[i].p.t5_width == u->p.unet_ctx) t2 = &clip[i];
    }
    /* Text encoders whose widths add up to the UNet's cross-attention: one
     * file (holding one or both encoders), else a pair of files. */
    for (size_t i = 0; i < nclip && !t1 && u->p.family != LF_FAMILY_FLUX; i++) {
        int w = 0;
        for (int k = 0; k < clip[i].p.n_text; k++) w += clip[i].p.text_width[k];
        if (w == u->p.unet_ctx && (u->p.family == LF_FAMILY_SDXL ? clip[i].p.n_text == 2 : 1))
            t1 = &clip[i];
    }
    for (size_t i = 0; i < nclip && !t1 && u->p.family == LF_FAMILY_SDXL; i++)
        for (size_t j = 0; j < nclip && !t1; j++)
            if (i != j && clip[i].p.n_text == 1 && clip[j].p.n_text == 1 &&
                clip[i].p.text_width[0] < clip[j].p.text_width[0] &&
                clip[i].p.text_width[0] + clip[j].p.text_width[0] == u->p.unet_ctx)
                t1 = &clip[i], t2 = &clip[j];
    if (!t1)
        why = u->p.family == LF_FAMILY_SDXL
                  ? "no text encoders in models/clip or models/text_encoders fit it (SDXL: a "
                    "CLIP ViT-L and an OpenCLIP ViT-bigG file)"
              : u->p.family == LF_FAMILY_FLUX
                  ? "no CLIP-L of its pooled width in models/clip or models/text_encoders (Flux: "
                    "clip_l.safetensors and t5xxl_*.safetensors)"
                  : "no text encoder in models/clip or models/text_encoders fits it";
    for (size_t i = 0; i < nvae && !why; i++)
        if (vae[i].p.has_vae && vae[i].p.vae_latent == u->p.unet_in &&
            s_arch_family(vae[i].p.arch) == u->p.family)
            va = &vae[i];
    for (size_t i = 0; i < nvae && !why && !va; i++)
        if (vae[i].p.has_vae && vae[i].p.vae_latent == u->p.unet_in && !s_arch_family(vae[i].p.arch))
            va = &vae[i];
    if (!why && !va) why = "no VAE in models/vae fits it";
    if (why) {
        lf_warn("engine: skipping %s: %s", u->path, why);
        return NULL;
    }
    lf_manifest_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->defaults = lf_manifest_defaults_none();
    m->family = u->p.family;
    m->name = s_stem(u->path, ".safetensors");
    m->unet = strdup(u->path);
    m->vae = strdup(va->path);
    m->text[m->n_text++] = strdup(t1->path);
    if (t2) m->text[m->n_text++] = strdup(t2->path);
    if (!m->name || !m->unet || !m->vae || !m->text[0] || (t2 && !m->text[1]))
        lf_manifest_destroy(&m);
    return m;
}

static int s_cmp_manifest(const void *a, const void *b) {
    return strcmp((*(lf_manifest_t *const *)a)->name, (*(lf_manifest_t *const *)b)->name);
}

/* Appends m (taking it) unless its name is taken. */
static int s_add(lf_manifest_t ***list, size_t *n, lf_manifest_t *m) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*list)[i]->name, m->name)) {
            lf_warn("engine: skipping %s: another model is already named '%s'",
                    m->path ? m->path : m->unet, m->name);
            lf_manifest_destroy(&m);
            return 0;
        }
    lf_manifest_t **nl = realloc(*list, (*n + 1) * sizeof *nl);
    if (!nl) {
        lf_manifest_destroy(&m);
        return LF_ENOMEM;
    }
    *list = nl;
    nl[(*n)++] = m;
    return 0;
}

int lf_manifest_scan(const char *models_dir, lf_manifest_t ***out, size_t *n) {
    if (!models_dir || !out || !n) return LF_EINVAL;
    lf_manifest_t **list = NULL;
    size_t cnt = 0;
    int rc = 0;
    char e[1024];
    DIR *d = opendir(models_dir);
    struct dirent *de;
    while (d && !rc && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !lf_manifest_is_path(de->d_name)) continue;
        char path[4500];
        snprintf(path, sizeof path, "%s/%s", models_dir, de->d_name);
        lf_manifest_t *m = NULL;
        int r = lf_manifest_load(path, &m, e, sizeof e);
        if (!r) r = lf_manifest_check(m, e, sizeof e);
        if (r) {
            lf_warn("engine: skipping %s", e);
            lf_manifest_destroy(&m);
            continue;
        }
        rc = s_add(&list, &cnt, m);
    }
    if (d) closedir(d);
    static const char *const unet_dirs[] = {"unet", "diffusion_models"};
    static const char *const clip_dirs[] = {"clip", "text_encoders"};
    static const char *const vae_dirs[] = {"vae"};
    s_file_t *un = NULL, *cl = NULL, *va = NULL;
    size_t nun = 0, ncl = 0, nva = 0;
    if (!rc) rc = s_list_files(models_dir, unet_dirs, 2, &un, &nun);
    if (!rc && nun) rc = s_list_files(models_dir, clip_dirs, 2, &cl, &ncl);
    if (!rc && nun) rc = s_list_files(models_dir, vae_dirs, 1, &va, &nva);
    for (size_t i = 0; i < nun && !rc; i++) {
        if (!un[i].p.has_unet) {
            lf_warn("engine: skipping %s: no UNet in it", un[i].path);
            continue;
        }
        if (un[i].p.family != LF_FAMILY_SD15 && un[i].p.family != LF_FAMILY_SDXL &&
            un[i].p.family != LF_FAMILY_FLUX) {
            lf_warn("engine: skipping %s: a %s UNet (sd15, sdxl, flux)", un[i].path,
                    lf_family_name(un[i].p.family));
            continue;
        }
        lf_manifest_t *m = s_folder_model(&un[i], cl, ncl, va, nva);
        if (!m) continue;
        if (lf_manifest_check(m, e, sizeof e)) {
            lf_warn("engine: skipping %s", e);
            lf_manifest_destroy(&m);
            continue;
        }
        rc = s_add(&list, &cnt, m);
    }
    s_files_free(un, nun), s_files_free(cl, ncl), s_files_free(va, nva);
    if (rc) {
        lf_manifest_list_free(&list, cnt);
        return rc;
    }
    if (cnt) qsort(list, cnt, sizeof *list, s_cmp_manifest);
    *out = list;
    *n = cnt;
    return 0;
}
