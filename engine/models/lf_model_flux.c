/* lf_model_flux: the Flux family assembled from its parts — the
 * transformer (a BFL / ComfyUI file or a diffusers folder's transformer/),
 * CLIP-L for the pooled vector, T5 for the token states, the 16-channel
 * VAE — and its denoise call (pack 2x2 patches, run, unpack). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_log.h"
#include "lf_model_impl.h"

/* The Flux text parts: CLIP-L (its pooled output) into *kc / *jc, the T5
 * encoder (HF names under any prefix, or a GGUF file's) into *kt5. */
static int s_flux_text(const lf_model_opts_t *o, lf_model_text_src_t *src, lf_keymap_t *kc,
                       const json_t **jc, lf_keymap_t *kt5, char *err, size_t errlen) {
    for (size_t i = 0; i < o->n_text_paths; i++) {
        const char *tp = o->text_paths[i];
        lf_weights_t *w = NULL;
        int rc = src->nw == LF_MODEL_TEXT_MAX ? lf__model_err(err, errlen, LF_ELIMIT, "too many text encoder sources")
                                       : lf_weights_open(&w, tp, err, errlen);
        if (rc) return rc;
        src->w[src->nw++] = w;
        lf_model_enc_t e;
        lf_keymap_t k5;
        if (!kt5->w && lf_t5_keymap(&k5, w) == 0) {
            *kt5 = k5;
        } else if (lf__model_enc_of_file(w, &e) && e.km.kind != LF_KEYMAP_OPENCLIP && !kc->w) {
            const char *ms = lf_weights_metadata(w, "lf.config");
            json_error_t je;
            json_t *meta = ms ? lf__model_keep_cfg(src, json_loads(ms, 0, &je)) : NULL;
            const json_t *c = meta ? json_object_get(meta, "text_encoder") : NULL;
            *kc = e.km, *jc = c ? c : meta;
        } else {
            return lf__model_err(err, errlen, LF_EFORMAT,
                         "%s: not a text encoder Flux takes (CLIP-L with HF names, or one T5)", tp);
        }
    }
    return 0;
}

/* A diffusers folder's T5 tokenizer (tokenizer_2/tokenizer.json, else its
 * spiece.model), or NULL. */
static char *s_t5_tokenizer_of(const char *path) {
    static const char *const files[2] = {"tokenizer_2/tokenizer.json", "tokenizer_2/spiece.model"};
    char p[4096];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", path, files[i]);
        if (lf__model_exists(p)) return strdup(p);
    }
    return NULL;
}

/* Assembles a Flux model: the transformer from wt (a file: BFL names with or
 * without model.diffusion_model., or diffusers names; meta its lf.config)
 * or from the diffusers folder at path (wt NULL), CLIP-L and the VAE from
 * the folder or from opts' parts. */
int lf__model_load_flux(lf_model_t *m, const char *path, lf_weights_t *wt, const json_t *meta,
                       const lf_model_opts_t *o, char *err, size_t errlen) {
    lf_weights_t *wd = NULL, *wc = NULL, *wv = NULL, *w5 = NULL;
    json_t *own[5] = {0}; /* transformer, text encoder, vae, scheduler, T5 configs of a folder */
    const json_t *jf = meta ? json_object_get(meta, "transformer") : NULL, *jc = NULL,
                 *jv = NULL, *js = NULL, *j5 = NULL;
    lf_keymap_t kf = {0}, kc = {0}, kv = {0}, k5 = {0};
    lf_model_text_src_t tsrc = {0};
    int rc = 0;
    char p[4096];
    if (!wt) { /* diffusers folder */
        rc = lf__model_open_part(path, "transformer", "diffusion_pytorch_model", 0, &wd, err, errlen);
        if (!rc) rc = lf__model_open_part(path, "text_encoder", "model", 1, &wc, err, errlen);
        if (!rc && !o->vae_path) rc = lf__model_open_part(path, "vae", "diffusion_pytorch_model", 0, &wv, err, errlen);
        if (!rc) rc = lf__model_open_part(path, "text_encoder_2", "model", 1, &w5, err, errlen);
        if (!rc && w5 && lf_t5_keymap(&k5, w5))
            rc = lf__model_err(err, errlen, LF_EFORMAT, "%s: no T5 encoder in text_encoder_2/", path);
        static const char *const cfgs[5] = {"transformer/config.json", "text_encoder/config.json",
                                            "vae/config.json", "scheduler/scheduler_config.json",
                                            "text_encoder_2/config.json"};
        for (int i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "%s/%s", path, cfgs[i]);
            own[i] = lf__model_json_file(p);
        }
        snprintf(p, sizeof p, "%s/tokenizer", path);
        if (lf__model_is_dir(p)) m->tokenizer_dir = strdup(p);
        m->t5_tokenizer = s_t5_tokenizer_of(path);
        jf = own[0], jc = own[1], jv = own[2], js = own[3], j5 = own[4];
        wt = wd;
        if (wc) {
            kc.w = wc;
            strcpy(kc.prefix, lf_keymap_has_prefix(wc, "text_model.") ? "text_model." : "");
        }
        if (wv) kv.w = wv;
    }
    if (!rc) {
        kf.w = wt;
        if (lf_keymap_has_prefix(wt, "model.diffusion_model.")) strcpy(kf.prefix, "model.diffusion_model.");
    }
    if (!rc && o->n_text_paths) {
        kc = (lf_keymap_t){0}, jc = NULL, k5 = (lf_keymap_t){0}, j5 = NULL;
        rc = s_flux_text(o, &tsrc, &kc, &jc, &k5, err, errlen);
    }
    if (!rc && !kc.w)
        rc = lf__model_err(err, errlen, LF_ENOTFOUND,
                   "%s: a Flux transformer needs CLIP-L as a text part (models/clip/clip_l.safetensors, "
                   "a manifest's text_encoders)", path);
    if (!rc && o->vae_path) { /* a folder's own vae/ is only opened without one */
        json_decref(own[2]);
        own[2] = NULL, jv = NULL;
        rc = lf__model_vae_part(o->vae_path, &wv, &kv, &own[2], &jv, err, errlen);
    } else if (!rc && wv && lf_keymap_probe_vae(&kv, wv)) {
        rc = lf__model_err(err, errlen, LF_EFORMAT, "%s: VAE layout not recognised", lf_weights_path(wv));
    }
    if (!rc && !wv)
        rc = lf__model_err(err, errlen, LF_ENOTFOUND,
                   "%s: a Flux transformer needs its VAE as a part (models/vae/ae.safetensors, a "
                   "manifest's vae)", path);
    const int type = o->weight_type;
    if (!rc) rc = lf__model_quant_ok(o, err, errlen);
    if (!rc) rc = lf_flux_new(&m->flux, &kf, jf, m->be, m->pool,
                              o->weight_quant ? o->weight_quant : type, err, errlen);
    if (!rc) rc = lf_clip_new(&m->clip, &kc, jc, m->be, m->pool, type, err, errlen);
    if (!rc && k5.w) rc = lf_t5_new(&m->t5, &k5, j5, m->be, m->pool, type, err, errlen);
    if (!rc) rc = lf_vae_new(&m->vae, &kv, jv, m->be, m->pool, LF_TYPE_F32, "vae.", err, errlen);
    if (!rc && o->taesd_path) rc = lf_taesd_new(&m->taesd, o->taesd_path, m->be, m->pool, err, errlen);
    if (!rc) {
        lf_model_desc_t *d = &m->desc;
        const lf_flux_config_t *fc = lf_flux_config(m->flux);
        const lf_vae_config_t *vc = lf_vae_config(m->vae);
        const lf_clip_config_t *cc = lf_clip_config(m->clip);
        d->family = LF_FAMILY_FLUX;
        d->prediction = LF_PRED_FLOW;
        d->latent_channels = vc->latent_ch;
        d->vae_scale = lf_vae_scale(m->vae);
        /* Flux's VAE factors unless the VAE's config says otherwise. */
        d->scaling_factor = json_is_number(jv ? json_object_get(jv, "scaling_factor") : NULL)
                                ? vc->scaling_factor : 0.3611f;
        d->shift_factor = json_is_number(jv ? json_object_get(jv, "shift_factor") : NULL)
                              ? vc->shift_factor : 0.1159f;
        d->text_dim = fc->txt_dim;
        d->text_tokens = fc->guidance ? 512 : 256; /* T5 tokens: dev 512, schnell 256 */
        d->pooled_dim = cc->proj_dim ? cc->proj_dim : cc->hidden;
        d->guidance_embed = fc->guidance;
        /* diffusers' scheduler config when there is one, else dev: dynamic, schnell: shift 1. */
        const json_t *dyn = js ? json_object_get(js, "use_dynamic_shifting") : NULL;
        d->flow_dynamic = json_is_boolean(dyn) ? json_is_true(dyn) : fc->guidance;
        d->flow_shift = (float)lf__json_num(js, "shift", 1.0);
        d->has_preview = 1;
        d->preview = m->taesd ? LF_PREVIEW_TAESD : LF_PREVIEW_APPROX;
        /* BFL's ae (16 channels, 128/256/512/512 wide): ComfyUI's projection
         * for Flux, no fit needed; another VAE gets its map fitted. */
        static const int ae_ch[4] = {128, 256, 512, 512};
        if (vc->latent_ch == 16 && vc->levels == 4 && !memcmp(vc->ch, ae_ch, sizeof ae_ch) &&
            lf_preview_map_affine(&lf_preview_flux_factors[0][0], lf_preview_flux_bias, 16, d->scaling_factor,
                                  d->shift_factor, &m->approx) == 0)
            m->approx_rc = 1;
        d->tokenizer_dir = m->tokenizer_dir;
        d->t5_tokenizer = m->t5_tokenizer;
        if (fc->in_ch != 4 * vc->latent_ch || fc->out_ch != fc->in_ch)
            rc = lf__model_err(err, errlen, LF_EFORMAT,
                       "%s: VAE latent channels %d do not match the Flux transformer's %d packed "
                       "channels (4 per latent channel)", path, vc->latent_ch, fc->in_ch);
        else if (d->pooled_dim != fc->vec_dim)
            rc = lf__model_err(err, errlen, LF_EFORMAT,
                       "%s: CLIP's pooled width %d does not match the Flux transformer's %d",
                       lf_weights_path(kc.w), d->pooled_dim, fc->vec_dim);
        else if (m->t5 && lf_t5_config(m->t5)->d_model != fc->txt_dim)
            rc = lf__model_err(err, errlen, LF_EFORMAT,
                       "%s: T5's width %d does not match the Flux transformer's text width %d",
                       lf_weights_path(k5.w), lf_t5_config(m->t5)->d_model, fc->txt_dim);
        if (!rc && !m->t5)
            lf_warn("engine: %s: no T5 text encoder among the parts (models/clip/t5xxl_*)", path);
    }
    lf_weights_destroy(&wd);
    lf_weights_destroy(&wc);
    lf_weights_destroy(&wv);
    lf_weights_destroy(&w5);
    lf__model_text_src_free(&tsrc);
    for (int i = 0; i < 5; i++) json_decref(own[i]);
    return rc;
}

/* Flux: pack, run the transformer, unpack. vec = [pooled, guidance]. */
int lf__model_denoise_flux(lf_model_t *m, const float *x, int batch, int h, int w, const float *t,
                          const float *cond, int cond_len, const float *vec, float *out) {
    const lf_model_desc_t *d = &m->desc;
    if (!vec || h < 2 || w < 2 || h % 2 || w % 2 || batch < 1 || cond_len < 1) return LF_EINVAL;
    const int C = d->latent_channels, P = d->pooled_dim, G = d->guidance_embed;
    const size_t n = (size_t)batch * C * h * w, ni = (size_t)(h / 2) * (w / 2);
    const size_t need = 2 * n + 3 * ni + (size_t)batch * (P + 1);
    if (m->flux_buf_n < need) {
        float *b = realloc(m->flux_buf, need * sizeof *b);
        if (!b) return LF_ENOMEM;
        m->flux_buf = b, m->flux_buf_n = need;
    }
    float *pin = m->flux_buf, *pout = pin + n, *ids = pout + n, *pooled = ids + 3 * ni,
          *gd = pooled + (size_t)batch * P;
    for (int b = 0; b < batch; b++) {
        memcpy(pooled + (size_t)b * P, vec + (size_t)b * (P + G), (size_t)P * sizeof *pooled);
        gd[b] = G ? vec[(size_t)b * (P + G) + P] : 0.0f;
    }
    lf_flux_pack(x, batch, C, h, w, pin);
    lf_flux_image_ids(h, w, ids);
    int rc = lf_flux_forward(m->flux, batch, (int)ni, cond_len, pin, cond, pooled, t, G ? gd : NULL,
                             ids, NULL, pout);
    if (!rc) lf_flux_unpack(pout, batch, C, h, w, out);
    return rc;
}

/* Flux: CLIP-L's pooled output per chunk (its hidden states are not used). */
int lf__model_encode_flux_pooled(lf_model_t *m, const int32_t *ids, int n, float *pooled) {
    const int T = 77 /* CLIP's context */, H = lf_clip_config(m->clip)->hidden;
    const size_t need = (size_t)T * H;
    if (!pooled) return LF_EINVAL;
    if (m->text_tmp_n < need) {
        float *b = realloc(m->text_tmp, need * sizeof *b);
        if (!b) return LF_ENOMEM;
        m->text_tmp = b, m->text_tmp_n = need;
    }
    int rc = 0;
    for (int c = 0; c < n && !rc; c++)
        rc = lf_clip_encode_ex(m->clip, ids + (size_t)c * T, NULL, 1, T, 1, 1, m->text_tmp,
                               pooled + (size_t)c * m->desc.pooled_dim);
    return rc;
}

int lf_model_encode_t5(lf_model_t *self, const int32_t *ids, size_t n, float *out) {
    if (!self || !ids || !out || n < 1 || n > 1024) return LF_EINVAL;
    if (!self->t5) return LF_EUNSUPPORTED;
    lf__model_use(self, LF__NET_TEXT);
    const int T = self->desc.text_tokens;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = lf_t5_encode(self->t5, ids + i * T, T, out + i * (size_t)T * self->desc.text_dim);
    return rc;
}
