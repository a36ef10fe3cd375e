/* lf_fake_model: a TEST DOUBLE for lf_model.h — a tiny analytic stand-in
 * with the same function signatures, behind lf_model_ops_t, for the
 * pipeline, engine and worker tests. Never linked into a product binary,
 * never a default.
 *
 * Behaviour: load accepts any path not containing "missing" (which fails
 * with LF_EIO naming the file) with any VAE path not containing "broken"
 * (LF_EFORMAT naming the VAE file); "fam-sdxl" in the path makes an SDXL-family
 * model (the same networks, plus a pooled embedding of LF_FAKE_POOLED and 6
 * time ids: pooled row c = the chunk's first token id after BOS + 0.25 p);
 * "v-pred" in the path makes a v-prediction
 * model. Shapes: 4 latent channels, VAE scale 8, scaling factor 0.18215,
 * text_dim 8, 77 tokens. Text: row value = weight * (id % 101) / 101 +
 * 0.01 * d. Denoiser: out[b] = 0.1 * x[b] + mean(cond[b]) + 1e-4 * t[b], so
 * each batch item depends only on its own input and conditioning. VAE
 * decode: tanh of the latent, nearest-upsampled; encode: block means. The
 * double counts its calls (lf_fake_model_stats) and can be told to fail.
 * Single-threaded, like the real model. */
#ifndef LF_FAKE_MODEL_H
#define LF_FAKE_MODEL_H

#include "lf_pipeline.h"

#define LF_FAKE_MAX_CALLS 512
#define LF_FAKE_POOLED 4 /* pooled_dim of an SDXL-family fake */

typedef struct {
    int encode_text_calls;
    size_t encode_chunks[LF_FAKE_MAX_CALLS]; /* n_chunks per encode_text call */
    int clip_skip;                           /* of the last encode_text call */
    int denoise_calls;
    int denoise_batch[LF_FAKE_MAX_CALLS];    /* batch per denoise call */
    int cond_len;                            /* of the last denoise call */
    float first_t, first_x0;                 /* t[0] and x[0] of the first denoise call */
    float first_vec[2][LF_FAKE_POOLED + 6];  /* rows 0, 1 of the first call's vec (SDXL) */
    int vae_decode_calls, vae_encode_calls, preview_calls;
    int fail_denoise_at;                     /* set by tests: 1-based call that returns LF_EIO */
} lf_fake_model_stats_t;

extern const lf_model_ops_t lf_fake_model_ops;

/* The counters of a model loaded through lf_fake_model_ops (borrowed). */
lf_fake_model_stats_t *lf_fake_model_stats(lf_model_t *model);

#endif
