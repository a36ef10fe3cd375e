/* lf_model: finds the parts of a checkpoint (single file in the original
 * layout, or a diffusers folder), builds the networks and answers the
 * pipeline's calls. Family from tensor names only; Flux is assembled in
 * lf_model_flux.c. */
#include "lf_model.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "lf_clip.h"
#include "lf_error.h"
#include "lf_flux.h"
#include "lf_quant.h"
#include "lf_keymap.h"
#include "lf_log.h"
#include "lf_lora.h"
#include "lf_lora_targets.h"
#include "lf_pool.h"
#include "lf_rng.h"
#include "lf_t5.h"
#include "lf_taesd.h"
#include "lf_unet.h"
#include "lf_vae.h"
#include "lf_weights.h"
#include "lf_model_impl.h"

/* Makes net the one network that holds memory beyond its weights' file:
 * the one that ran before loses its planned graphs (each plans again at its
 * next call) and, where its weights are mapped from their file
 * (lf_pool_tensor_mapped), their pages (read again when it next runs,
 * usually from the page cache). So a generation's peak is the largest
 * network's weights and activations, not the sum of all: the text encoder
 * is gone while the UNet samples, the UNet while the VAE decodes at full
 * size. Calls to the same network in a row keep everything. Pages are kept
 * while a LoRA is merged: its layers differ from the file. Flux the same:
 * the text phase is T5 and CLIP-L, the denoiser the transformer (its GGUF
 * or safetensors weights mapped as stored; quantized-on-load ones are
 * private and stay). */
void lf__model_use(lf_model_t *m, lf__model_net_t net) {
    if (m->active == (int)net) return;
    const int drop = !m->lora || !lf_lora_patch_layers(m->lora);
    if (m->active == LF__NET_TEXT) {
        lf_clip_release_graphs(m->clip), lf_clip_release_graphs(m->clip2);
        lf_t5_release_graphs(m->t5);
        if (drop) lf_pool_drop_pages(m->pool, "clip.");
        if (drop && m->t5) lf_pool_drop_pages(m->pool, "t5.");
        if (drop && m->clip2_pool) lf_pool_drop_pages(m->clip2_pool, NULL);
    }
    if (m->active == LF__NET_DENOISER) {
        lf_unet_release_graphs(m->unet);
        lf_flux_release_graphs(m->flux);
        if (drop) lf_pool_drop_pages(m->pool, m->flux ? "flux." : "unet.");
    }
    if (m->active == LF__NET_VAE) {
        lf_vae_release_graphs(m->vae);
        if (drop) lf_pool_drop_pages(m->pool, "vae.");
    }
    m->active = (int)net;
}

/* LF_WEIGHTS_STREAM=0 keeps the UNet's and the VAE's weight pages through
 * a forward; otherwise each layer gives its mapped weights' pages back once
 * it has run (lf_unet_set_weight_release, lf_vae_set_weight_release), so
 * their resident weights are the layer running, not the file: a 512²
 * SD1.5 image peaks at its activations (~1.0 GB RSS) instead of the UNet's
 * 1.6 GiB of weights plus its activations (docs/PERFORMANCE.md, "Memory of
 * a whole generation"). */
static int s_stream_weights(void) {
    const char *v = getenv("LF_WEIGHTS_STREAM");
    return !v || strcmp(v, "0") != 0;
}

/* Before the UNet or the VAE runs: whether they stream their weight pages
 * (not while a LoRA is merged: those layers differ from the file). */
static void s_weight_release(lf_model_t *m) {
    const int drop = !m->lora || !lf_lora_patch_layers(m->lora);
    lf_unet_set_weight_release(m->unet, drop && m->stream ? m->pool : NULL);
    lf_vae_set_weight_release(m->vae, drop && m->stream ? m->pool : NULL);
}

static int s_starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

lf_family_t lf_model_detect_family(const char *const *names, size_t n) {
    int unet = 0, sdxl = 0, flux = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = names[i];
        if (strstr(s, "double_blocks.") || strstr(s, "single_blocks.") ||
            strstr(s, "single_transformer_blocks."))
            flux = 1;
        if (s_starts(s, "conditioner.embedders.") || strstr(s, "label_emb.") ||
            strstr(s, "add_embedding.linear_1"))
            sdxl = 1;
        if (s_starts(s, "model.diffusion_model.input_blocks.") || s_starts(s, "down_blocks.") ||
            s_starts(s, "unet.down_blocks.") || s_starts(s, "input_blocks."))
            unet = 1;
    }
    if (flux) return LF_FAMILY_FLUX;
    if (sdxl) return LF_FAMILY_SDXL;
    return unet ? LF_FAMILY_SD15 : LF_FAMILY_UNKNOWN;
}

int lf_prediction_parse(const char *name, lf_prediction_t *out) {
    static const struct {
        const char *name;
        lf_prediction_t p;
    } names[] = {{"epsilon", LF_PRED_EPS},      {"eps", LF_PRED_EPS},      {"v_prediction", LF_PRED_V},
                 {"v", LF_PRED_V},              {"v-prediction", LF_PRED_V}, {"sample", LF_PRED_SAMPLE},
                 {"x0", LF_PRED_SAMPLE}, {"flow", LF_PRED_FLOW}, {"const", LF_PRED_FLOW}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i].name)) {
            *out = names[i].p;
            return 0;
        }
    return LF_ENOTFOUND;
}

const char *lf_prediction_name(lf_prediction_t p) {
    return p == LF_PRED_V        ? "v_prediction"
           : p == LF_PRED_SAMPLE ? "sample"
           : p == LF_PRED_FLOW   ? "flow"
                                 : "epsilon";
}

const char *lf_family_name(lf_family_t f) {
    switch (f) {
    case LF_FAMILY_SD15: return "sd15";
    case LF_FAMILY_SDXL: return "sdxl";
    case LF_FAMILY_FLUX: return "flux";
    default: return "unknown";
    }
}

int lf__model_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int lf__model_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

json_t *lf__model_json_file(const char *path) {
    json_error_t je;
    return lf__model_exists(path) ? json_load_file(path, 0, &je) : NULL;
}

lf_family_t lf__model_family_of(const lf_weights_t *w) {
    const size_t n = lf_weights_count(w);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return LF_FAMILY_UNKNOWN;
    for (size_t i = 0; i < n; i++) names[i] = lf_weights_at(w, i)->name;
    lf_family_t f = lf_model_detect_family(names, n);
    free(names);
    return f;
}

int lf__model_err(char *err, size_t errlen, int rc,
                                                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* The text encoders' key maps in a single-file checkpoint: SD1.x's
 * cond_stage_model (CLIP), or SDXL's SGM conditioner (base: embedders.0 is
 * CLIP ViT-L with HF names, embedders.1 OpenCLIP ViT-bigG; refiner:
 * embedders.0 is OpenCLIP). A map left with w == NULL is absent. */
static void s_text_maps(const lf_weights_t *w, lf_keymap_t *k1, lf_keymap_t *k2) {
    static const char *const clip[] = {"cond_stage_model.transformer.text_model.",
                                       "cond_stage_model.transformer.",
                                       "conditioner.embedders.0.transformer.text_model."};
    static const char *const open[] = {"conditioner.embedders.1.model.",
                                       "conditioner.embedders.0.model."};
    for (size_t i = 0; i < sizeof clip / sizeof clip[0] && !k1->w; i++)
        if (lf_keymap_has_prefix(w, clip[i])) {
            k1->w = w;
            strcpy(k1->prefix, clip[i]);
        }
    for (size_t i = 0; i < sizeof open / sizeof open[0] && !k2->w; i++) {
        char p[96];
        snprintf(p, sizeof p, "%stoken_embedding.weight", open[i]);
        if (lf_weights_find(w, p)) {
            k2->w = w;
            k2->kind = LF_KEYMAP_OPENCLIP;
            strcpy(k2->prefix, open[i]);
        }
    }
    if (!k1->w && !k2->w) { /* SD1.x default: the error names this prefix */
        k1->w = w;
        strcpy(k1->prefix, clip[0]);
    }
}

/* Opens the first of a diffusers folder's candidate files for one part.
 * 0 with *w NULL when absent and optional. */
int lf__model_open_part(const char *dir, const char *sub, const char *base, int optional,
                       lf_weights_t **w, char *err, size_t errlen) {
    char p[4096];
    /* A large part is sharded: <base>.safetensors.index.json and its shards. */
    const char *suffix[] = {".safetensors", ".fp16.safetensors", ".safetensors.index.json"};
    for (int j = 0; j < 3; j++) {
        snprintf(p, sizeof p, "%s/%s/%s%s", dir, sub, base, suffix[j]);
        if (lf__model_exists(p)) return lf_weights_open(w, p, err, errlen);
    }
    if (optional) return 0;
    snprintf(p, sizeof p, "%s/%s/%s%s", dir, sub, base, suffix[0]);
    return lf__model_err(err, errlen, LF_ENOTFOUND, "%s: file missing (diffusers folder)", p);
}

/* The UNet's key map in a single file: the original layout under
 * model.diffusion_model. (SGM/LDM checkpoints), the same without a prefix
 * (ComfyUI's UNet saves), or diffusers names (SDXL-Lightning's UNet
 * files). 0, or LF_EFORMAT naming the file. */
static int s_unet_map(const lf_weights_t *w, lf_keymap_t *ku, const char *path, char *err,
                      size_t errlen) {
    memset(ku, 0, sizeof *ku);
    ku->w = w;
    if (lf_keymap_has_prefix(w, "model.diffusion_model.")) {
        ku->kind = LF_KEYMAP_LDM_UNET;
        strcpy(ku->prefix, "model.diffusion_model.");
    } else if (lf_keymap_has_prefix(w, "input_blocks.")) {
        ku->kind = LF_KEYMAP_LDM_UNET;
    } else if (lf_weights_find(w, "conv_in.weight") && lf_keymap_has_prefix(w, "down_blocks.")) {
        return 0; /* diffusers names, no prefix */
    } else {
        return lf__model_err(err, errlen, LF_EFORMAT,
                     "%s: no UNet tensors (model.diffusion_model.*, input_blocks.* or "
                     "down_blocks.*) in this file",
                     path);
    }
    return lf_keymap_probe(ku) ? lf__model_err(err, errlen, LF_EFORMAT, "%s: UNet layout not recognised",
                                       path)
                               : 0;
}

void lf__model_text_src_free(lf_model_text_src_t *t) {
    for (size_t i = 0; i < t->nw; i++) lf_weights_destroy(&t->w[i]);
    for (size_t i = 0; i < t->ncfg; i++) json_decref(t->cfg[i]);
    t->nw = t->ncfg = 0;
}

json_t *lf__model_keep_cfg(lf_model_text_src_t *t, json_t *j) {
    if (!j) return NULL;
    if (t->ncfg == LF_MODEL_TEXT_MAX) {
        json_decref(j);
        return NULL;
    }
    return t->cfg[t->ncfg++] = j;
}

/* A bare encoder file's map: the tensor named "…token_embedding.weight"
 * tells the layout — "<p>embeddings.token_embedding.weight" is HF CLIP under
 * <p> (with or without "text_model."), "<p>token_embedding.weight" with
 * "<p>transformer.resblocks.0." is OpenCLIP. 0 when none. */
int lf__model_enc_of_file(const lf_weights_t *w, lf_model_enc_t *e) {
    const char *te = "token_embedding.weight";
    size_t tl = strlen(te);
    for (size_t i = 0; i < lf_weights_count(w); i++) {
        const lf_tensor_info_t *t = lf_weights_at(w, i);
        size_t n = strlen(t->name);
        if (n < tl || strcmp(t->name + n - tl, te) || t->ndim != 2) continue;
        memset(e, 0, sizeof *e);
        e->km.w = w;
        e->width = (int)t->shape[1];
        const char *hf = "embeddings.token_embedding.weight";
        size_t hl = strlen(hf);
        if (n >= hl && !strcmp(t->name + n - hl, hf)) {
            if (n - hl >= sizeof e->km.prefix) return 0;
            memcpy(e->km.prefix, t->name, n - hl);
            e->km.prefix[n - hl] = '\0'; /* lf_clip asks for "embeddings.…", "encoder.…" under it */
            return 1;
        }
        if (n - tl >= sizeof e->km.prefix) return 0;
        memcpy(e->km.prefix, t->name, n - tl);
        e->km.prefix[n - tl] = '\0';
        e->km.kind = LF_KEYMAP_OPENCLIP;
        return 1;
    }
    return 0;
}

/* Fills kt (CLIP / CLIP-L) and kt2 (SDXL's OpenCLIP) and their configs from
 * opts->text_paths. The sources' encoders are gathered, then placed: SD1.x
 * takes one; SDXL the narrower as kt and the wider as kt2 (a refiner-style
 * single OpenCLIP goes to kt2). A wider encoder in HF layout without a
 * config is OpenCLIP bigG converted (ComfyUI's clip_g): gelu. */
static int s_text_parts(const lf_model_opts_t *o, int sdxl, lf_model_text_src_t *src, lf_keymap_t *kt,
                        lf_keymap_t *kt2, const json_t **jt, const json_t **jt2, char *err,
                        size_t errlen) {
    lf_model_enc_t enc[4];
    int ne = 0, rc = 0;
    char p[4096];
    for (size_t i = 0; i < o->n_text_paths && !rc; i++) {
        const char *tp = o->text_paths[i];
        if (lf__model_is_dir(tp)) {
            static const char *const subs[2] = {"text_encoder", "text_encoder_2"};
            for (int j = 0; j < 2 && !rc; j++) {
                lf_weights_t *w = NULL;
                rc = lf__model_open_part(tp, subs[j], "model", 1, &w, err, errlen);
                if (rc || !w) continue;
                if (src->nw == LF_MODEL_TEXT_MAX) {
                    lf_weights_destroy(&w);
                    return lf__model_err(err, errlen, LF_ELIMIT, "%s: too many text encoder sources", tp);
                }
                src->w[src->nw++] = w;
                snprintf(p, sizeof p, "%s/%s/config.json", tp, subs[j]);
                if (ne < 4 && lf__model_enc_of_file(w, &enc[ne])) {
                    enc[ne].cfg = lf__model_keep_cfg(src, lf__model_json_file(p));
                    enc[ne++].path = lf_weights_path(w);
                }
            }
            continue;
        }
        lf_weights_t *w = NULL;
        rc = lf_weights_open(&w, tp, err, errlen);
        if (rc) break;
        if (src->nw == LF_MODEL_TEXT_MAX) {
            lf_weights_destroy(&w);
            return lf__model_err(err, errlen, LF_ELIMIT, "too many text encoder sources");
        }
        src->w[src->nw++] = w;
        const char *ms = lf_weights_metadata(w, "lf.config");
        json_error_t je;
        json_t *meta = ms ? lf__model_keep_cfg(src, json_loads(ms, 0, &je)) : NULL;
        lf_keymap_t a = {0}, b = {0};
        int ckpt = lf_keymap_has_prefix(w, "cond_stage_model.") ||
                   lf_keymap_has_prefix(w, "conditioner.embedders.");
        if (ckpt) {
            /* A checkpoint: its text encoders, as when it is loaded whole. */
            s_text_maps(w, &a, &b);
            const json_t *ja = meta ? json_object_get(meta, "text_encoder") : NULL;
            if (!ja && meta) ja = json_object_get(meta, "text");
            if (a.w && ne < 4) {
                const lf_tensor_info_t *t = lf_keymap_find(&a, "embeddings.token_embedding.weight");
                enc[ne] = (lf_model_enc_t){.km = a, .cfg = ja, .width = t ? (int)t->shape[1] : 0,
                                    .path = tp};
                ne++;
            }
            if (b.w && ne < 4) {
                const lf_tensor_info_t *t = lf_keymap_find(&b, "embeddings.token_embedding.weight");
                enc[ne] = (lf_model_enc_t){.km = b,
                                    .cfg = meta ? json_object_get(meta, "text_encoder_2") : NULL,
                                    .width = t ? (int)t->shape[1] : 0, .path = tp};
                ne++;
            }
        } else if (ne < 4 && lf__model_enc_of_file(w, &enc[ne])) {
            const json_t *c = meta ? json_object_get(meta, "text_encoder") : NULL;
            enc[ne].cfg = c ? c : meta;
            enc[ne++].path = tp;
        } else {
            rc = lf__model_err(err, errlen, LF_EFORMAT,
                       "%s: no text encoder in this file (no *token_embedding.weight)", tp);
        }
    }
    if (rc) return rc;
    if (ne == 0)
        return lf__model_err(err, errlen, LF_ENOTFOUND, "%s: no text encoder in the text parts",
                     o->n_text_paths ? o->text_paths[0] : "(none)");
    if (!sdxl) {
        if (ne != 1)
            return lf__model_err(err, errlen, LF_EFORMAT,
                         "%s: an SD1.x/2.x UNet takes one text encoder; the text parts hold %d",
                         enc[0].path, ne);
        *kt = enc[0].km, *jt = enc[0].cfg;
        return 0;
    }
    if (ne > 2)
        return lf__model_err(err, errlen, LF_EFORMAT,
                     "%s: an SDXL UNet takes two text encoders; the text parts hold %d",
                     enc[0].path, ne);
    int wide = ne == 2 && enc[1].width > enc[0].width ? 1 : 0;
    if (ne == 1 && enc[0].km.kind != LF_KEYMAP_OPENCLIP)
        return lf__model_err(err, errlen, LF_ENOTFOUND,
                     "%s: an SDXL UNet needs both text encoders (CLIP ViT-L and OpenCLIP "
                     "ViT-bigG); the text parts hold one",
                     enc[0].path);
    *kt2 = enc[wide].km, *jt2 = enc[wide].cfg;
    if (!*jt2 && kt2->kind != LF_KEYMAP_OPENCLIP)
        *jt2 = lf__model_keep_cfg(src, json_pack("{s:s}", "hidden_act", "gelu"));
    if (ne == 2) *kt = enc[1 - wide].km, *jt = enc[1 - wide].cfg;
    return 0;
}

/* A separate VAE (lf_model_opts_t.vae_path): a diffusers folder's vae/ with
 * its config.json, or a VAE file or checkpoint with its lf.config "vae"
 * (else defaults); its key map probed. *meta: the JSON to free (NULL when
 * none); *jv: the VAE's config in it (borrowed). */
int lf__model_vae_part(const char *path, lf_weights_t **w, lf_keymap_t *kv, json_t **meta,
                      const json_t **jv, char *err, size_t errlen) {
    const int dir = lf__model_is_dir(path);
    int rc = dir ? lf__model_open_part(path, "vae", "diffusion_pytorch_model", 0, w, err, errlen)
                 : lf_weights_open(w, path, err, errlen);
    if (rc) return rc;
    if (dir) {
        char p[4096];
        snprintf(p, sizeof p, "%s/vae/config.json", path);
        *jv = *meta = lf__model_json_file(p);
    } else {
        const char *ms = lf_weights_metadata(*w, "lf.config");
        json_error_t je;
        *meta = ms ? json_loads(ms, 0, &je) : NULL;
        *jv = *meta ? json_object_get(*meta, "vae") : NULL;
    }
    return lf_keymap_probe_vae(kv, *w) ? lf__model_err(err, errlen, LF_EFORMAT, "%s: VAE layout not recognised", path)
                                       : 0;
}

/* 0 when opts ask for no quantize-on-load or for a storage block type
 * (Q8_K, ggml's activation type, is not one). */
int lf__model_quant_ok(const lf_model_opts_t *o, char *err, size_t errlen) {
    if (!o->weight_quant ||
        (lf_type_is_quant((lf_type_t)o->weight_quant) && o->weight_quant != LF_TYPE_Q8_K &&
         lf_quant_can_quantize((lf_quant_type_t)(o->weight_quant - LF_TYPE_Q4_0))))
        return 0;
    return lf__model_err(err, errlen, LF_EUNSUPPORTED,
                 "weights %s: no quantizer for it (q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0)",
                 lf_type_name((lf_type_t)o->weight_quant));
}

int lf_model_load(const char *path, const lf_model_opts_t *opts, lf_model_t **out, char *err,
                  size_t errlen) {
    static const lf_model_opts_t defaults = {.weight_type = -1};
    if (!opts) opts = &defaults;
    if (!path || !out) return LF_EINVAL;
    lf_model_t *m = calloc(1, sizeof *m);
    if (!m) return LF_ENOMEM;
    m->be = opts->backend;
    m->stream = s_stream_weights();
    if (!m->be) m->be = m->own_be = lf_backend_cpu_new(0);
    m->pool = m->be ? lf_pool_new(m->be, 0) : NULL;
    if (!m->pool) {
        lf_model_destroy(&m);
        return LF_ENOMEM;
    }
    lf_weights_t *wu = NULL, *wt = NULL, *wt2 = NULL, *wv = NULL, *wov = NULL;
    json_t *meta = NULL, *vmeta = NULL, *cu = NULL, *ct = NULL, *ct2 = NULL, *cv = NULL,
           *cs = NULL;
    const json_t *ju, *jt, *jt2, *jv;
    int rc = 0;
    char p[4096];
    lf_keymap_t ku = {0}, kt = {0}, kt2 = {0}, kv = {0};
    snprintf(p, sizeof p, "%s/transformer", path);
    if (lf__model_is_dir(path) && lf__model_is_dir(p)) { /* a diffusers Flux folder */
        rc = lf__model_load_flux(m, path, NULL, NULL, opts, err, errlen);
        goto flux_done;
    }
    if (lf__model_is_dir(path)) {
        /* diffusers folder: unet/ and vae/, text_encoder/ and (SDXL)
         * text_encoder_2/ (the refiner has only the second). */
        rc = lf__model_open_part(path, "unet", "diffusion_pytorch_model", 0, &wu, err, errlen);
        if (!rc) rc = lf__model_open_part(path, "text_encoder", "model", 1, &wt, err, errlen);
        if (!rc) rc = lf__model_open_part(path, "text_encoder_2", "model", 1, &wt2, err, errlen);
        if (!rc) rc = lf__model_open_part(path, "vae", "diffusion_pytorch_model", 0, &wv, err, errlen);
        if (!rc && !wt && !wt2)
            rc = lf__model_err(err, errlen, LF_ENOTFOUND,
                       "%s/text_encoder/model.safetensors: file missing (diffusers folder)", path);
        snprintf(p, sizeof p, "%s/unet/config.json", path);
        cu = lf__model_json_file(p);
        snprintf(p, sizeof p, "%s/text_encoder/config.json", path);
        ct = lf__model_json_file(p);
        snprintf(p, sizeof p, "%s/text_encoder_2/config.json", path);
        ct2 = lf__model_json_file(p);
        snprintf(p, sizeof p, "%s/vae/config.json", path);
        cv = lf__model_json_file(p);
        snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", path);
        cs = lf__model_json_file(p);
        snprintf(p, sizeof p, "%s/tokenizer", path);
        if (lf__model_is_dir(p)) m->tokenizer_dir = strdup(p);
        ju = cu, jt = ct, jt2 = ct2, jv = cv;
        if (!rc) {
            ku.w = wu, kv.w = wv;
            if (wt) {
                kt.w = wt;
                strcpy(kt.prefix, lf_keymap_has_prefix(wt, "text_model.") ? "text_model." : "");
            }
            if (wt2) {
                kt2.w = wt2;
                strcpy(kt2.prefix, lf_keymap_has_prefix(wt2, "text_model.") ? "text_model." : "");
            }
        }
    } else {
        rc = lf_weights_open(&wu, path, err, errlen);
        const char *ms = wu ? lf_weights_metadata(wu, "lf.config") : NULL;
        if (ms) {
            json_error_t je;
            meta = json_loads(ms, 0, &je);
        }
        if (!rc && lf__model_family_of(wu) == LF_FAMILY_FLUX) {
            rc = lf__model_load_flux(m, path, wu, meta, opts, err, errlen);
            lf_weights_destroy(&wu);
            json_decref(meta);
            goto flux_done;
        }
        ju = meta ? json_object_get(meta, "unet") : NULL;
        /* tools/train writes "text_encoder"; "text" is accepted too. */
        jt = meta ? json_object_get(meta, "text_encoder") : NULL;
        if (!jt && meta) jt = json_object_get(meta, "text");
        jt2 = meta ? json_object_get(meta, "text_encoder_2") : NULL;
        jv = meta ? json_object_get(meta, "vae") : NULL;
        cs = meta ? json_incref(json_object_get(meta, "scheduler")) : NULL;
        if (!rc) {
            kv.w = wu;
            rc = s_unet_map(wu, &ku, path, err, errlen);
            if (!opts->n_text_paths) s_text_maps(wu, &kt, &kt2);
            /* A UNet alone needs its text encoders from elsewhere. */
            if (!rc && !opts->n_text_paths && !lf_keymap_has_prefix(wu, "cond_stage_model.") &&
                !lf_keymap_has_prefix(wu, "conditioner.embedders."))
                rc = lf__model_err(err, errlen, LF_ENOTFOUND,
                           "%s: a UNet without text encoders: give them as a part (a manifest's "
                           "text_encoders, models/clip/)",
                           path);
        }
    }
    lf_model_text_src_t tsrc = {0};
    if (!rc && opts->n_text_paths) {
        kt = (lf_keymap_t){0}, kt2 = (lf_keymap_t){0};
        jt = jt2 = NULL;
        rc = s_text_parts(opts, lf__model_family_of(wu) == LF_FAMILY_SDXL, &tsrc, &kt, &kt2, &jt, &jt2,
                          err, errlen);
    }
    if (!rc) {
        m->desc.family = lf__model_family_of(wu);
        if (m->desc.family != LF_FAMILY_SD15 && m->desc.family != LF_FAMILY_SDXL) {
            if (errlen)
                snprintf(err, errlen, "%s: family %s is not supported yet (SD1.x/2.x and SDXL)",
                         path, lf_family_name(m->desc.family));
            rc = LF_EUNSUPPORTED;
        }
    }
    const int sdxl = m->desc.family == LF_FAMILY_SDXL;
    if (!rc && opts->vae_path) {
        rc = lf__model_vae_part(opts->vae_path, &wov, &kv, &vmeta, &jv, err, errlen);
    } else if (!rc && !wv) {
        if (!lf_keymap_has_prefix(wu, "first_stage_model.") &&
            !lf_keymap_has_prefix(wu, "decoder.up") && !lf_keymap_has_prefix(wu, "vae.decoder."))
            rc = lf__model_err(err, errlen, LF_ENOTFOUND,
                       "%s: no VAE in this file: give one as a part (a manifest's vae, "
                       "models/vae/)",
                       path);
        else if (lf_keymap_probe_vae(&kv, wu))
            rc = lf__model_err(err, errlen, LF_EFORMAT, "%s: VAE layout not recognised", path);
    }
    int type = opts->weight_type;
    if (!rc) rc = lf__model_quant_ok(opts, err, errlen);
    /* Where the weights a LoRA may touch came from: restored from there. */
    if (!rc && !(m->origin = lf_origin_new())) rc = LF_ENOMEM;
    ku.origin = kt.origin = kt2.origin = m->origin;
    int utype = opts->weight_quant ? opts->weight_quant : type;
    if (!rc) rc = lf_unet_new(&m->unet, &ku, ju, m->be, m->pool, utype, err, errlen);
    if (!rc && kt.w) rc = lf_clip_new(&m->clip, &kt, jt, m->be, m->pool, type, err, errlen);
    if (!rc && kt2.w && sdxl) {
        /* A second encoder's tensors go under their own pool names. */
        m->clip2_pool = lf_pool_new(m->be, 0);
        rc = m->clip2_pool ? lf_clip_new(&m->clip2, &kt2, jt2, m->be, m->clip2_pool, type, err,
                                         errlen)
                           : LF_ENOMEM;
    }
    /* The SDXL VAE overflows in f16: its weights stay f32 so that no
     * backend rounds its activations to 16 bits (lf_model.h). */
    if (!rc)
        rc = lf_vae_new(&m->vae, &kv, jv, m->be, m->pool, sdxl ? LF_TYPE_F32 : type, "vae.", err,
                        errlen);
    if (!rc && opts->taesd_path)
        rc = lf_taesd_new(&m->taesd, opts->taesd_path, m->be, m->pool, err, errlen);
    if (!rc && sdxl && !m->clip2)
        rc = lf__model_err(err, errlen, LF_ENOTFOUND,
                   "%s: SDXL checkpoint without its OpenCLIP text encoder "
                   "(conditioner.embedders.N.model.* / text_encoder_2/)",
                   path);
    if (!rc) {
        lf_model_desc_t *d = &m->desc;
        const lf_unet_config_t *uc = lf_unet_config(m->unet);
        const lf_vae_config_t *vc = lf_vae_config(m->vae);
        /* The file's own word first (a diffusers scheduler config, lightfarm's
         * lf.config, then the SAI model spec's modelspec.prediction_type),
         * else the caller's (a manifest's: SDXL-Lightning's 1-step UNet file
         * says nothing). An unknown word keeps the caller's. */
        d->prediction = opts->prediction;
        const json_t *pt = cs ? json_object_get(cs, "prediction_type") : NULL;
        if (!json_is_string(pt) && meta) pt = json_object_get(meta, "prediction_type");
        const char *ptv = json_is_string(pt) ? json_string_value(pt)
                          : wu ? lf_weights_metadata(wu, "modelspec.prediction_type")
                               : NULL;
        if (ptv) lf_prediction_parse(ptv, &d->prediction);
        /* An inpainting UNet (SD1.5-/SDXL-inpainting) takes the latent, the
         * mask and the masked image's latent: latent + 1 + latent channels. */
        d->latent_channels = vc->latent_ch;
        d->concat_channels = uc->in_ch - vc->latent_ch;
        d->vae_scale = lf_vae_scale(m->vae);
        d->scaling_factor = vc->scaling_factor;
        /* SDXL's VAE factor unless the VAE's config says otherwise. */
        if (sdxl && !json_is_number(jv ? json_object_get(jv, "scaling_factor") : NULL))
            d->scaling_factor = 0.13025f;
        d->text_dim = (m->clip ? lf_clip_config(m->clip)->hidden : 0) +
                      (m->clip2 ? lf_clip_config(m->clip2)->hidden : 0);
        d->text_tokens = 77;
        d->has_preview = 1;
        d->preview = m->taesd ? LF_PREVIEW_TAESD : LF_PREVIEW_APPROX;
        d->tokenizer_dir = m->tokenizer_dir;
        if (uc->ctx_dim > 0 && uc->ctx_dim != d->text_dim) {
            snprintf(err, errlen, "%s: text encoder width %d does not match the UNet's context %d",
                     path, d->text_dim, uc->ctx_dim);
            rc = LF_EFORMAT;
        }
        if (!rc && ((uc->in_ch != vc->latent_ch && uc->in_ch != 2 * vc->latent_ch + 1) ||
                    uc->out_ch != vc->latent_ch)) {
            snprintf(err, errlen,
                     "%s: VAE latent channels %d do not match the UNet's %d in, %d out (an "
                     "inpainting UNet takes %d)",
                     path, vc->latent_ch, uc->in_ch, uc->out_ch, 2 * vc->latent_ch + 1);
            rc = LF_EFORMAT;
        }
        if (!rc && sdxl) {
            const lf_clip_config_t *c2 = lf_clip_config(m->clip2);
            d->pooled_dim = c2->proj_dim ? c2->proj_dim : c2->hidden;
            d->n_time_ids = lf_unet_time_ids(m->unet, d->pooled_dim);
            if (d->n_time_ids != 5 && d->n_time_ids != 6) {
                snprintf(err, errlen,
                         "%s: the UNet's added embedding (%d inputs, %d per time id) does not "
                         "fit a pooled text embedding of %d and 5 or 6 time ids",
                         path, uc->add_in, uc->add_time_dim, d->pooled_dim);
                rc = LF_EFORMAT;
            }
        } else if (!rc && uc->add_in) {
            snprintf(err, errlen, "%s: UNet with an added embedding outside the SDXL family",
                     path);
            rc = LF_EUNSUPPORTED;
        }
    }
    lf_weights_destroy(&wu);
    lf_weights_destroy(&wt);
    lf_weights_destroy(&wt2);
    lf_weights_destroy(&wv);
    lf_weights_destroy(&wov);
    /* The files stay mapped for LoRA restores; without them every touched
     * layer is copied instead. */
    char oerr[256];
    if (!rc && lf_origin_open(m->origin, oerr, sizeof oerr)) {
        lf_warn("model: %s: LoRA restores will keep copies", oerr);
        lf_origin_destroy(&m->origin);
    }
    lf__model_text_src_free(&tsrc);
    json_decref(meta), json_decref(vmeta), json_decref(cu), json_decref(ct), json_decref(ct2),
        json_decref(cv), json_decref(cs);
flux_done:
    if (rc) {
        lf_model_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void lf_model_destroy(lf_model_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_model_t *m = *self_p;
    /* The pool goes too: the originals need not be written back. */
    lf_lora_patch_destroy(&m->lora);
    lf_lora_targets_destroy(&m->lora_targets);
    lf_origin_destroy(&m->origin);
    lf_clip_destroy(&m->clip);
    lf_clip_destroy(&m->clip2);
    lf_unet_destroy(&m->unet);
    lf_flux_destroy(&m->flux);
    lf_t5_destroy(&m->t5);
    free(m->t5_tokenizer);
    free(m->flux_buf);
    lf_vae_destroy(&m->vae);
    lf_taesd_destroy(&m->taesd);
    lf_pool_destroy(&m->pool);
    lf_pool_destroy(&m->clip2_pool);
    lf_backend_destroy(&m->own_be);
    free(m->tokenizer_dir);
    free(m->text_tmp);
    free(m->tmp);
    free(m);
    *self_p = NULL;
}

const lf_model_desc_t *lf_model_desc(const lf_model_t *self) { return &self->desc; }

/* SDXL: both encoders' hidden states side by side per token. */
static int s_encode_sdxl(lf_model_t *m, const int32_t *ids, const float *weights, int n,
                         int clip_skip, float *out, float *pooled) {
    const int T = m->desc.text_tokens, D = m->desc.text_dim;
    const int D1 = m->clip ? lf_clip_config(m->clip)->hidden : 0, D2 = D - D1;
    /* Always the penultimate layer: A1111 ignores clip skip for SDXL (its
     * "Clip skip SDXL" option, off by default, is not offered). */
    const int skip = 2;
    (void)clip_skip;
    const size_t rows = (size_t)n * T;
    /* One encoder's output [rows][max(D1, D2)], then OpenCLIP's ids. */
    const size_t need = rows * (size_t)(D1 > D2 ? D1 : D2) + rows;
    if (m->text_tmp_n < need) {
        float *t = realloc(m->text_tmp, need * sizeof *t);
        if (!t) return LF_ENOMEM;
        m->text_tmp = t, m->text_tmp_n = need;
    }
    float *h = m->text_tmp;
    int32_t *ids2 = (int32_t *)(m->text_tmp + (need - rows));
    int rc = 0;
    if (m->clip) {
        rc = lf_clip_encode_ex(m->clip, ids, weights, n, T, skip, 0, h, NULL);
        for (size_t r = 0; r < rows && !rc; r++)
            memcpy(out + r * D, h + r * D1, (size_t)D1 * sizeof *out);
    }
    /* OpenCLIP pads with 0 after the first EOS (the chunk's largest id). */
    for (int b = 0; b < n && !rc; b++) {
        const int32_t *c = ids + (size_t)b * T;
        int at = 0;
        for (int t = 1; t < T; t++)
            if (c[t] > c[at]) at = t;
        for (int t = 0; t < T; t++) ids2[(size_t)b * T + t] = t > at ? 0 : c[t];
    }
    if (!rc)
        rc = lf_clip_encode_ex(m->clip2, ids2, weights, n, T, skip, 0, h, pooled);
    for (size_t r = 0; r < rows && !rc; r++)
        memcpy(out + r * D + D1, h + r * D2, (size_t)D2 * sizeof *out);
    return rc;
}

int lf_model_encode_text(lf_model_t *self, const int32_t *ids, const float *weights,
                         size_t n_chunks, int clip_skip, float *out, float *pooled) {
    if (!self || !ids || n_chunks < 1 || n_chunks > 1024) return LF_EINVAL;
    lf__model_use(self, LF__NET_TEXT);
    if (self->flux) return lf__model_encode_flux_pooled(self, ids, (int)n_chunks, pooled);
    if (!out) return LF_EINVAL;
    if (self->desc.family == LF_FAMILY_SDXL)
        return s_encode_sdxl(self, ids, weights, (int)n_chunks, clip_skip, out, pooled);
    return lf_clip_encode(self->clip, ids, weights, (int)n_chunks, self->desc.text_tokens,
                          clip_skip < 1 ? 1 : clip_skip, out);
}

int lf_model_denoise(lf_model_t *self, const float *x, int batch, int h, int w, const float *t,
                     const float *cond, int cond_len, const float *vec, float *out) {
    if (!self || !x || !t || !cond || !out) return LF_EINVAL;
    if (!self->flux && self->desc.n_time_ids && !vec) return LF_EINVAL;
    lf__model_use(self, LF__NET_DENOISER);
    if (!self->flux) s_weight_release(self);
    /* The denoiser (UNet or Flux transformer) in the job's precision; the rest stays f32. */
    if (self->precision != LF_PRECISION_F32) lf_backend_set_precision(self->be, self->precision);
    int rc = self->flux ? lf__model_denoise_flux(self, x, batch, h, w, t, cond, cond_len, vec, out)
                        : lf_unet_forward(self->unet, x, batch, h, w, t, cond, cond_len,
                                          self->desc.n_time_ids ? vec : NULL, self->desc.pooled_dim, out);
    if (self->precision != LF_PRECISION_F32) lf_backend_set_precision(self->be, LF_PRECISION_F32);
    return rc;
}

int lf_model_denoise_cached(lf_model_t *self, lf_stepcache_t *sc, const float *x, int batch, int h,
                            int w, const float *t, const float *cond, int cond_len,
                            const float *vec, float *out) {
    if (!self || !x || !t || !cond || !out) return LF_EINVAL;
    if (self->flux) /* step caching is the UNet's for now */
        return lf_model_denoise(self, x, batch, h, w, t, cond, cond_len, vec, out);
    if (self->desc.n_time_ids && !vec) return LF_EINVAL;
    lf__model_use(self, LF__NET_DENOISER);
    s_weight_release(self);
    if (self->precision != LF_PRECISION_F32) lf_backend_set_precision(self->be, self->precision);
    int rc = lf_unet_forward_cached(self->unet, sc, x, batch, h, w, t, cond, cond_len,
                                    self->desc.n_time_ids ? vec : NULL, self->desc.pooled_dim, out);
    if (self->precision != LF_PRECISION_F32) lf_backend_set_precision(self->be, LF_PRECISION_F32);
    return rc;
}

unsigned long lf_model_blocks_run(const lf_model_t *self) {
    return self && self->unet ? lf_unet_blocks_run(self->unet) : 0;
}

double lf_model_flops_run(const lf_model_t *self) {
    return self && self->unet ? lf_unet_flops_run(self->unet) : 0;
}

int lf_model_vae_decode(lf_model_t *self, const float *z, int batch, int h, int w, int tile,
                        float *img) {
    if (!self || !z || !img) return LF_EINVAL;
    lf__model_use(self, LF__NET_VAE);
    s_weight_release(self);
    int rc = lf_vae_decode(self->vae, z, batch, h, w, tile, img);
    if (rc) return rc;
    /* Never a black or NaN image: a non-finite pixel is an error. */
    const size_t n = (size_t)batch * 3 * ((size_t)h * self->desc.vae_scale) *
                     ((size_t)w * self->desc.vae_scale);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(img[i])) {
            lf_error("engine: the VAE decoder produced a non-finite value (pixel %zu of %zu)", i,
                     n);
            return LF_EOVERFLOW;
        }
    return 0;
}

int lf_model_vae_encode(lf_model_t *self, const float *img, int batch, int H, int W, int tile,
                        float *mean) {
    if (!self || !img || !mean) return LF_EINVAL;
    lf__model_use(self, LF__NET_VAE);
    s_weight_release(self);
    return lf_vae_encode(self->vae, img, batch, H, W, tile, mean);
}

/* ---- LoRA ---------------------------------------------------------------- */

/* Copies of plain layers a LoRA set keeps before reading them again from
 * the model's files (LF_LORA_KEEP_MB overrides it). */
#define LF_LORA_KEEP_MB_DEFAULT 0.0

/* Builds the model's LoRA layer table and patch on first use. */
static int s_lora_init(lf_model_t *self, char *err, size_t errlen) {
    if (!self->unet)
        return lf__model_err(err, errlen, LF_EUNSUPPORTED, "LoRAs on a %s model are not supported yet",
                     lf_family_name(self->desc.family));
    if (!self->lora) {
        /* The layers a LoRA may touch, from this model's own configs. */
        lf_lora_targets_t *t = lf_lora_targets_new();
        int rc = t ? lf_lora_targets_add_unet(t, lf_unet_config(self->unet)) : LF_ENOMEM;
        const int sdxl = self->desc.family == LF_FAMILY_SDXL;
        /* SD1.x: lora_te_ / text_encoder.; SDXL: CLIP-L is te1 / text_encoder.,
         * OpenCLIP te2 / text_encoder_2. (the refiner has only that one), its
         * weights in clip2_pool under the target names "clip2.…". */
        if (!rc && self->clip)
            rc = lf_lora_targets_add_clip(t, lf_clip_config(self->clip), "clip.",
                                          sdxl ? "lora_te1_" : "lora_te_", "text_encoder.");
        if (!rc && self->clip2)
            rc = lf_lora_targets_add_clip_ex(t, lf_clip_config(self->clip2), "clip2.", "lora_te2_",
                                             "text_encoder_2.", lf_clip_packed_qkv(self->clip2));
        lf_lora_patch_t *p = rc ? NULL : lf_lora_patch_new(self->pool, self->be, t);
        if (p && self->clip2_pool) rc = lf_lora_patch_add_pool(p, "clip2.", self->clip2_pool, "clip.");
        /* Plain layers beyond LF_LORA_KEEP_MB of copies are read again from
         * the model's files (docs/PERFORMANCE.md, LoRA). */
        const char *keep = getenv("LF_LORA_KEEP_MB");
        char *end = NULL;
        double mb = keep && *keep ? strtod(keep, &end) : LF_LORA_KEEP_MB_DEFAULT;
        if (keep && *keep && (*end || !(mb >= 0)))
            rc = lf__model_err(err, errlen, LF_EINVAL, "LF_LORA_KEEP_MB=%s: not a number of MB >= 0", keep);
        size_t kb = mb >= 1e12 ? SIZE_MAX : (size_t)(mb * 1048576.0);
        if (p && !rc && lf_origin_count(self->origin))
            rc = lf_lora_patch_set_origin(p, self->origin, kb);
        if (rc) lf_lora_patch_destroy(&p);
        if (!p) {
            lf_lora_targets_destroy(&t);
            return lf__model_err(err, errlen, rc ? rc : LF_ENOMEM, "cannot list the model's LoRA layers: %s",
                         lf_strerror(rc ? rc : LF_ENOMEM));
        }
        self->lora_targets = t;
        self->lora = p;
    }
    return 0;
}

int lf_model_set_loras(lf_model_t *self, const lf_lora_use_t *uses, size_t n,
                       lf_lora_patch_info_t *info, char *err, size_t errlen) {
    if (!self) return LF_EINVAL;
    if (!n && !self->lora) {
        if (info) *info = (lf_lora_patch_info_t){.reused = 1};
        return 0;
    }
    int rc = s_lora_init(self, err, errlen);
    return rc ? rc : lf_lora_patch_set(self->lora, uses, n, info, err, errlen);
}

lf_precision_t lf_model_set_precision(lf_model_t *self, lf_precision_t p) {
    if (!self || !self->be) return LF_PRECISION_F32;
    /* What the backend would run; it stays f32 outside the UNet's calls. */
    self->precision = lf_backend_set_precision(self->be, p);
    lf_backend_set_precision(self->be, LF_PRECISION_F32);
    return self->precision;
}

lf_pack_t lf_model_set_pack(lf_model_t *self, lf_pack_t p, const char *dir) {
    return self && self->be ? lf_backend_set_pack(self->be, p, dir) : LF_PACK_OFF;
}

int lf_model_lora_fits(lf_model_t *self, const char *path) {
    char err[256];
    if (!self || !path || s_lora_init(self, err, sizeof err)) return 0;
    lf_lora_t *l = NULL;
    if (lf_lora_open(&l, path, self->lora_targets, err, sizeof err)) return 0;
    int fits = lf_lora_count(l) > 0 && lf_lora_unmatched_count(l) == 0;
    lf_lora_destroy(&l);
    return fits;
}

uint64_t lf_model_weight_bytes(const lf_model_t *self) {
    if (!self) return 0;
    return (uint64_t)lf_pool_used(self->pool) + (self->clip2_pool ? lf_pool_used(self->clip2_pool) : 0);
}

int lf_model_weight_f32(const lf_model_t *self, const char *name, float *out, size_t n) {
    if (!self || !name || !out) return LF_EINVAL;
    lf_tensor_t *t;
    if (strncmp(name, "clip2.", 6) == 0) { /* SDXL's second encoder: its own pool */
        char pn[256];
        snprintf(pn, sizeof pn, "clip.%s", name + 6);
        t = self->clip2_pool ? lf_pool_find(self->clip2_pool, pn) : NULL;
    } else {
        t = lf_pool_find(self->pool, name);
    }
    if (!t) return LF_ENOTFOUND;
    if ((size_t)lf_tensor_nelements(t) != n || !lf_tensor_is_contiguous(t)) return LF_EINVAL;
    size_t nb = lf_tensor_nbytes(t);
    void *b = malloc(nb);
    if (!b) return LF_ENOMEM;
    int rc = lf_backend_tensor_get(self->be, t, b, nb);
    if (!rc) lf_type_to_f32(t->type, b, out, (int64_t)n);
    free(b);
    return rc;
}

/* ---- approx preview: fit the linear map from this model's VAE ---------- */

#define S_FIT_SIDE 12      /* latent pixels per side of each fit image */
#define S_FIT_BATCH 2      /* images in the one encode/decode batch */
#define S_FIT_RECTS 24     /* flat rectangles per fit image */
#define S_FIT_GRID 4       /* control points per side of the smooth colour field */
#define S_FIT_SEED 0x6c66707276ULL
#define S_FIT_JITTER 0.25f /* latent noise, in units of the scaled latent's std */

static double s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A uniform [0, 1) draw -> a colour level in [-1, 1]: a third of the time
 * fully off, a third fully on, else anywhere between, so that saturated
 * colours (where decoders bend most) weigh in the fit. */
static float s_fit_level(float u) {
    return u < 1.0f / 3 ? -1.0f : u >= 2.0f / 3 ? 1.0f : (u * 3.0f - 1.0f) * 2.0f - 1.0f;
}

/* Synthetic images [B][3][H][W] in [-1, 1]: a smooth colour field (random
 * colours at a GRID×GRID lattice, bilinear between them) under RECTS flat
 * rectangles of mostly saturated colours, so the latents hold gradients,
 * hard edges and the saturated regions where a decoder is least linear
 * (with 6 rectangles the built-in model's error on its own palette,
 * test_model_preview.c, was half as large again as with 24). */
static void s_fit_images(lf_rng_t *rng, float *img, int B, int H, int W) {
    const size_t plane = (size_t)H * W;
    for (int b = 0; b < B; b++) {
        float grid[3][S_FIT_GRID][S_FIT_GRID];
        lf_rng_rand(rng, &grid[0][0][0], sizeof grid / sizeof grid[0][0][0]);
        float *im = img + (size_t)b * 3 * plane;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float fy = (float)y / (H - 1) * (S_FIT_GRID - 1),
                          fx = (float)x / (W - 1) * (S_FIT_GRID - 1);
                    int y0 = fy >= S_FIT_GRID - 1 ? S_FIT_GRID - 2 : (int)fy,
                        x0 = fx >= S_FIT_GRID - 1 ? S_FIT_GRID - 2 : (int)fx;
                    float ty = fy - y0, tx = fx - x0;
                    float v = (1 - ty) * ((1 - tx) * grid[c][y0][x0] + tx * grid[c][y0][x0 + 1]) +
                              ty * ((1 - tx) * grid[c][y0 + 1][x0] + tx * grid[c][y0 + 1][x0 + 1]);
                    im[(size_t)c * plane + (size_t)y * W + x] = v * 2.0f - 1.0f;
                }
        for (int r = 0; r < S_FIT_RECTS; r++) {
            float u[7];
            lf_rng_rand(rng, u, 7);
            int x0 = (int)(u[0] * W), y0 = (int)(u[1] * H);
            int x1 = x0 + 4 + (int)(u[2] * W / 2), y1 = y0 + 4 + (int)(u[3] * H / 2);
            for (int y = y0; y < y1 && y < H; y++)
                for (int x = x0; x < x1 && x < W; x++)
                    for (int c = 0; c < 3; c++)
                        im[(size_t)c * plane + (size_t)y * W + x] = s_fit_level(u[4 + c]);
        }
    }
}

/* Latents the decoder knows: the synthetic images through the VAE encoder,
 * plus a little noise so that every latent direction is exercised (the
 * built-in model's encoder leaves channel 3 at zero, which alone would make
 * the fit degenerate). A VAE without an encoder gets random latents (white,
 * at the prior's scale) instead. Then decode, average each latent pixel's
 * block, and solve. */
static int s_fit_approx(lf_model_t *m) {
    const int C = m->desc.latent_channels, s = m->desc.vae_scale, n = S_FIT_SIDE, B = S_FIT_BATCH;
    const size_t per_z = (size_t)C * n * n, plane = (size_t)n * s * n * s;
    float *z = malloc((size_t)B * per_z * sizeof *z),
          *img = malloc((size_t)B * 3 * plane * sizeof *img),
          *noise = malloc((size_t)B * per_z * sizeof *noise),
          *mean = malloc((size_t)3 * n * n * sizeof *mean);
    int rc = z && img && noise && mean ? 0 : LF_ENOMEM;
    lf_rng_t rng;
    lf_rng_init(&rng, LF_RNG_TORCH_CPU, S_FIT_SEED);
    const float unit = 1.0f / m->desc.scaling_factor; /* one std of the scaled latent */
    float jitter = S_FIT_JITTER;
    if (!rc) {
        s_fit_images(&rng, img, B, n * s, n * s);
        lf_rng_randn(&rng, noise, (size_t)B * per_z);
        rc = lf_vae_encode(m->vae, img, B, n * s, n * s, 0, z);
        if (rc == LF_EUNSUPPORTED) {
            /* No encoder: white latents at the prior's scale. */
            memset(z, 0, (size_t)B * per_z * sizeof *z);
            jitter = 1.0f;
            rc = 0;
        }
    }
    if (!rc) {
        for (size_t i = 0; i < (size_t)B * per_z; i++) z[i] += jitter * unit * noise[i];
        rc = lf_vae_decode(m->vae, z, B, n, n, 0, img);
    }
    lf_preview_fit_t fit;
    if (!rc) rc = lf_preview_fit_init(&fit, C);
    for (int b = 0; b < B && !rc; b++) {
        rc = lf_preview_block_mean(img + (size_t)b * 3 * plane, n, n, s, mean);
        if (!rc) rc = lf_preview_fit_add(&fit, z + (size_t)b * per_z, mean, n, n);
    }
    if (!rc) rc = lf_preview_fit_solve(&fit, &m->approx);
    /* The fit's shapes are its own: planned graphs at them would only hold
     * memory (jobs plan theirs at their own size). */
    lf_vae_release_graphs(m->vae);
    free(z), free(img), free(noise), free(mean);
    return rc;
}

int lf_model_preview_prepare(lf_model_t *self, double *ms) {
    if (ms) *ms = 0.0;
    if (!self) return LF_EINVAL;
    if (self->taesd || self->approx_rc == 1) return 0;
    if (self->approx_rc < 0) return self->approx_rc;
    double t0 = s_now_ms();
    int rc = s_fit_approx(self);
    double dt = s_now_ms() - t0;
    if (ms) *ms = dt;
    self->approx_rc = rc ? rc : 1;
    if (rc)
        lf_warn("engine: no approx preview: fitting it from the VAE failed: %s", lf_strerror(rc));
    else
        lf_info("engine: approx preview fitted from the VAE decoder in %.0f ms", dt);
    return rc;
}

const lf_preview_map_t *lf_model_preview_map(const lf_model_t *self) {
    return self && self->approx_rc == 1 ? &self->approx : NULL;
}

static uint8_t s_u8(float v) {
    v = (v + 1.0f) * 127.5f;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
}

int lf_model_preview(lf_model_t *self, const float *z, int h, int w, uint8_t *rgb, int *out_w,
                     int *out_h) {
    if (!self || !z || !rgb || h < 1 || w < 1) return LF_EINVAL;
    if (self->taesd) {
        if (lf_taesd_latent_channels(self->taesd) != self->desc.latent_channels) return LF_EINVAL;
        int s = lf_taesd_scale(self->taesd);
        size_t n = (size_t)3 * h * s * w * s;
        if (self->tmp_n < n) {
            float *t = realloc(self->tmp, n * sizeof *t);
            if (!t) return LF_ENOMEM;
            self->tmp = t, self->tmp_n = n;
        }
        /* TAESD takes the diffusion model's latents: (z - shift) * scale
         * (ComfyUI's process_in; TAEF1 the same with Flux's shift). */
        const size_t nz = (size_t)self->desc.latent_channels * h * w;
        for (size_t i = 0; i < nz; i++)
            self->tmp[n - nz + i] = (z[i] - self->desc.shift_factor) * self->desc.scaling_factor;
        int rc = lf_taesd_decode(self->taesd, self->tmp + (n - nz), h, w, self->tmp);
        if (rc) return rc;
        const size_t plane = (size_t)h * s * w * s;
        for (size_t i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
                rgb[i * 3 + c] = s_u8(self->tmp[c * plane + i] * 2.0f - 1.0f);
        if (out_w) *out_w = w * s;
        if (out_h) *out_h = h * s;
        return 0;
    }
    int rc = lf_model_preview_prepare(self, NULL);
    if (rc) return rc;
    const int up = lf_preview_upscale(h, w, self->desc.vae_scale);
    rc = lf_preview_apply(&self->approx, z, h, w, up, rgb);
    if (rc) return rc;
    if (out_w) *out_w = w * up;
    if (out_h) *out_h = h * up;
    return 0;
}
