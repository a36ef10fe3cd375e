/* lf_fake_model: the analytic test double described in lf_fake_model.h. */
#include "lf_fake_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

typedef struct {
    lf_model_desc_t desc;
    lf_fake_model_stats_t stats;
} s_fake_t;

static int s_load(const char *path, const lf_model_opts_t *opts, lf_model_t **out, char *err,
                  size_t errlen)
{
    if (!path || strstr(path, "missing")) {
        if (err && errlen) snprintf(err, errlen, "%s: cannot open (fake model)", path ? path : "(null)");
        return LF_EIO;
    }
    if (opts && opts->vae_path && strstr(opts->vae_path, "broken")) {
        if (err && errlen) snprintf(err, errlen, "%s: not a VAE (fake model)", opts->vae_path);
        return LF_EFORMAT;
    }
    s_fake_t *f = calloc(1, sizeof *f);
    if (!f) return LF_ENOMEM;
    f->desc = (lf_model_desc_t){.family = strstr(path, "fam-sdxl") ? LF_FAMILY_SDXL : LF_FAMILY_SD15,
                                .prediction = strstr(path, "v-pred") ? LF_PRED_V : LF_PRED_EPS,
                                .latent_channels = 4,
                                .vae_scale = 8,
                                .scaling_factor = 0.18215f,
                                .text_dim = 8,
                                .text_tokens = 77,
                                /* SDXL: a pooled embedding and 6 time ids, as the base. */
                                .pooled_dim = strstr(path, "fam-sdxl") ? LF_FAKE_POOLED : 0,
                                .n_time_ids = strstr(path, "fam-sdxl") ? 6 : 0,
                                .has_preview = 1, /* as lf_model: approx without TAESD */
                                .preview = opts && opts->taesd_path ? LF_PREVIEW_TAESD : LF_PREVIEW_APPROX};
    *out = (lf_model_t *)f;
    return 0;
}

static void s_destroy(lf_model_t **self_p)
{
    if (!self_p) return;
    free(*self_p);
    *self_p = NULL;
}

static const lf_model_desc_t *s_desc(const lf_model_t *self)
{
    return &((const s_fake_t *)self)->desc;
}

lf_fake_model_stats_t *lf_fake_model_stats(lf_model_t *model)
{
    return &((s_fake_t *)model)->stats;
}

static int s_encode_text(lf_model_t *self, const int32_t *ids, const float *weights, size_t n_chunks,
                         int clip_skip, float *out, float *pooled)
{
    s_fake_t *f = (s_fake_t *)self;
    if (f->stats.encode_text_calls < LF_FAKE_MAX_CALLS)
        f->stats.encode_chunks[f->stats.encode_text_calls] = n_chunks;
    f->stats.encode_text_calls++;
    f->stats.clip_skip = clip_skip;
    int D = f->desc.text_dim, P = f->desc.pooled_dim;
    /* Pooled row of chunk c: the chunk's first token id (after BOS), + 0.25 p. */
    for (size_t c = 0; pooled && c < n_chunks; c++)
        for (int p = 0; p < P; p++) pooled[c * P + p] = (float)ids[c * 77 + 1] + 0.25f * p;
    for (size_t r = 0; r < n_chunks * 77; r++) {
        float wgt = weights ? weights[r] : 1.0f;
        for (int d = 0; d < D; d++) out[r * D + d] = wgt * (float)(ids[r] % 101) / 101.0f + 0.01f * d;
    }
    return 0;
}

static int s_denoise(lf_model_t *self, const float *x, int batch, int h, int w, const float *t,
                     const float *cond, int cond_len, const float *vec, float *out)
{
    s_fake_t *f = (s_fake_t *)self;
    if (f->stats.denoise_calls < LF_FAKE_MAX_CALLS) f->stats.denoise_batch[f->stats.denoise_calls] = batch;
    if (f->stats.denoise_calls == 0) {
        f->stats.first_t = t[0];
        f->stats.first_x0 = x[0];
        const int V = f->desc.pooled_dim + f->desc.n_time_ids;
        for (int b = 0; vec && b < batch && b < 2; b++)
            memcpy(f->stats.first_vec[b], vec + (size_t)b * V, (size_t)V * sizeof *vec);
    }
    f->stats.denoise_calls++;
    f->stats.cond_len = cond_len;
    if (f->stats.fail_denoise_at == f->stats.denoise_calls) return LF_EIO;
    size_t per = (size_t)f->desc.latent_channels * h * w, csz = (size_t)cond_len * f->desc.text_dim;
    for (int b = 0; b < batch; b++) {
        double m = 0.0;
        for (size_t k = 0; k < csz; k++) m += cond[b * csz + k];
        m /= (double)csz;
        for (size_t k = 0; k < per; k++)
            out[b * per + k] = (float)(0.1 * x[b * per + k] + m + 1e-4 * t[b]);
    }
    return 0;
}

static int s_vae_decode(lf_model_t *self, const float *z, int batch, int h, int w, int tile, float *img)
{
    s_fake_t *f = (s_fake_t *)self;
    f->stats.vae_decode_calls++;
    int C = f->desc.latent_channels, s = f->desc.vae_scale, H = h * s, W = w * s;
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    img[(((size_t)b * 3 + c) * H + y) * W + x] =
                        tanhf(z[(((size_t)b * C + c) * h + y / s) * w + x / s]);
    return 0;
}

static int s_vae_encode(lf_model_t *self, const float *img, int batch, int H, int W, int tile, float *mean)
{
    s_fake_t *f = (s_fake_t *)self;
    f->stats.vae_encode_calls++;
    int C = f->desc.latent_channels, s = f->desc.vae_scale, h = H / s, w = W / s;
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double acc = 0.0;
                    for (int dy = 0; dy < s; dy++)
                        for (int dx = 0; dx < s; dx++)
                            acc += img[(((size_t)b * 3 + c % 3) * H + y * s + dy) * W + x * s + dx];
                    mean[(((size_t)b * C + c) * h + y) * w + x] = (float)(acc / (s * s));
                }
    return 0;
}

static int s_preview(lf_model_t *self, const float *z, int h, int w, uint8_t *rgb, int *out_w, int *out_h)
{
    s_fake_t *f = (s_fake_t *)self;
    f->stats.preview_calls++;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                rgb[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)((tanhf(z[((size_t)c * h + y) * w + x]) + 1.0f) * 127.5f);
    *out_w = w;
    *out_h = h;
    return 0;
}

const lf_model_ops_t lf_fake_model_ops = {
    .name = "fake (test double)",
    .load = s_load,
    .destroy = s_destroy,
    .desc = s_desc,
    .encode_text = s_encode_text,
    .denoise = s_denoise,
    .vae_decode = s_vae_decode,
    .vae_encode = s_vae_encode,
    .preview = s_preview,
};
