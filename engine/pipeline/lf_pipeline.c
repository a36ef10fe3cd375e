/* lf_pipeline: txt2img / img2img over an lf_model_ops_t table. The
 * conventions (CFG batching, noise per image, img2img steps, output
 * rounding) are stated in lf_pipeline.h; this file follows them. */
#include "lf_pipeline.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_image.h"
#include "lf_infotext.h"
#include "lf_params.h"
#include "lf_prompt.h"
#include "lf_resize.h"

#define S_COMMA_BACKTRACK 20

static int s_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int s_cancelled(const lf_pipeline_hooks_t *hooks)
{
    return hooks && hooks->cancel && atomic_load(hooks->cancel);
}

/* ---- schedule ---------------------------------------------------------- */

/* lf_pipeline_sigmas over a given model schedule (its AYS levels). */
static int s_sigmas(const lf_schedule_t *sched, lf_scheduler_t scheduler, int steps, double denoise,
                    double *full)
{
    if (steps < 1 || steps > LF_PIPELINE_MAX_STEPS) return LF_EINVAL;
    int rc = lf_schedule_sigmas(sched, scheduler, steps, full);
    if (rc != 0) return rc;
    if (!(denoise > 0.0 && denoise < 1.0)) return 0;
    /* A1111 setup_img2img_steps with img2img_fix_steps off. */
    int t_enc = (int)(fmin(denoise, 0.999) * steps);
    return steps - t_enc - 1;
}

int lf_pipeline_sigmas(lf_scheduler_t scheduler, int steps, double denoise, double *full)
{
    lf_schedule_t sched;
    lf_schedule_init_sd15(&sched);
    return s_sigmas(&sched, scheduler, steps, denoise, full);
}

/* ---- resize (PIL BILINEAR, lf_resize) ---------------------------------- */

int lf_pipeline_resize_rgb8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    return lf_resize_rgb8(src, sw, sh, dst, dw, dh, LF_RESIZE_BILINEAR);
}

/* ---- infotext ---------------------------------------------------------- */

static int s_is_img2img(const lf_pipeline_request_t *req)
{
    return req->init_image != NULL;
}

static int s_infotext(const lf_pipeline_request_t *req, const char *model_name, const char *vae_name,
                      int index, char **out)
{
    /* The one infotext, written from the parameter table's labels; the
     * schedulers' value list is in LF_SCHEDULER_* order. */
    _Static_assert(LF_SCHEDULER_COUNT == 12, "lf_param_schedulers follows lf_scheduler_t");
    lf_job_params_t view = {0}; /* borrowed strings: a view, never cleared */
    view.prompt = (char *)(req->infotext_prompt ? req->infotext_prompt
                           : req->prompt            ? req->prompt
                                                    : "");
    view.negative_prompt = (char *)(req->negative ? req->negative : "");
    view.steps = (uint32_t)req->steps;
    view.sampler = (char *)lf_sampler_name(req->sampler);
    view.scheduler = (char *)lf_param_schedulers[(unsigned)req->scheduler < LF_SCHEDULER_COUNT ? req->scheduler : 0].name;
    view.cfg_scale = req->cfg;
    view.seed = (int64_t)req->seed;
    view.width = (uint32_t)req->width;
    view.height = (uint32_t)req->height;
    view.model = (char *)(model_name ? model_name : "");
    view.denoise = req->denoise;
    view.clip_skip = req->clip_skip > 1 ? (uint32_t)req->clip_skip : 1;
    view.rng = (char *)(req->rng == LF_RNG_PHILOX ? "philox" : "cpu");
    view.mode = (char *)(s_is_img2img(req) ? "img2img" : "txt2img");
    view.vae = (char *)vae_name; /* the table writes "VAE: name" only when set */
    int rc = lf_params_infotext(&view, NULL, index, out);
    if (rc || !req->lora_hashes || !*req->lora_hashes) return rc;
    /* "Lora hashes" goes on the parameters line, quoted (A1111's quote():
     * the value holds ':' and ','). */
    json_t *q = json_string(req->lora_hashes);
    char *qs = q ? json_dumps(q, JSON_ENCODE_ANY) : NULL;
    json_decref(q);
    size_t have = strlen(*out);
    char *n = qs ? realloc(*out, have + strlen(qs) + 16) : NULL;
    if (!n) {
        free(qs);
        free(*out);
        *out = NULL;
        return LF_ENOMEM;
    }
    sprintf(n + have, ", Lora hashes: %s", qs);
    free(qs);
    *out = n;
    return 0;
}

int lf_pipeline_infotext(const lf_pipeline_request_t *req, const char *model_name, int index,
                         char **out)
{
    return s_infotext(req, model_name, NULL, index, out);
}

/* ---- text -------------------------------------------------------------- */

/* ids/weights for cond (n chunks) followed by uncond (n chunks when guided):
 * the shorter prompt padded with chunks of the empty prompt. */
typedef struct {
    int32_t *ids;
    float *weights;
    size_t n;        /* chunks per conditioning */
    int token_count;
} s_tokens_t;

static int s_tokenize(const lf_pipeline_ctx_t *ctx, const lf_pipeline_request_t *req, int guided,
                      s_tokens_t *t, char *err, size_t errlen)
{
    lf_prompt_chunk_t *pc = NULL, *nc = NULL, *ec = NULL;
    size_t np = 0, nn = 0, ne = 0;
    int rc = lf_prompt_chunks(ctx->tokenizer, req->prompt ? req->prompt : "", S_COMMA_BACKTRACK, &pc,
                              &np, &t->token_count);
    if (rc == 0 && guided)
        rc = lf_prompt_chunks(ctx->tokenizer, req->negative ? req->negative : "", S_COMMA_BACKTRACK,
                              &nc, &nn, NULL);
    if (rc == 0 && guided && np != nn) rc = lf_prompt_chunks(ctx->tokenizer, "", 0, &ec, &ne, NULL);
    if (rc == 0) {
        size_t n = guided && nn > np ? nn : np;
        size_t total = (guided ? 2 : 1) * n;
        t->ids = malloc(total * LF_CLIP_CONTEXT * sizeof *t->ids);
        t->weights = malloc(total * LF_CLIP_CONTEXT * sizeof *t->weights);
        if (!t->ids || !t->weights) {
            rc = LF_ENOMEM;
        } else {
            t->n = n;
            for (size_t k = 0; k < total; k++) {
                int second = k >= n;
                size_t i = second ? k - n : k;
                size_t have = second ? nn : np;
                const lf_prompt_chunk_t *src = i < have ? (second ? &nc[i] : &pc[i]) : &ec[0];
                memcpy(t->ids + k * LF_CLIP_CONTEXT, src->ids, sizeof src->ids);
                memcpy(t->weights + k * LF_CLIP_CONTEXT, src->weights, sizeof src->weights);
            }
        }
    }
    free(pc);
    free(nc);
    free(ec);
    if (rc != 0) {
        free(t->ids);
        free(t->weights);
        t->ids = NULL;
        t->weights = NULL;
        return s_fail(err, errlen, rc, "cannot tokenize the prompt: %s", lf_strerror(rc));
    }
    return 0;
}

/* ---- denoiser, noise and step callbacks -------------------------------- */

typedef struct {
    const lf_pipeline_ctx_t *ctx;
    const lf_pipeline_hooks_t *hooks;
    lf_model_t *model;           /* the denoiser of this phase: base, then the refiner */
    const lf_model_desc_t *desc; /* its description */
    const float *vec;            /* [(guided ? 2 : 1) * batch][pooled + time ids] or NULL */
    int step_base;               /* steps run by earlier phases (progress numbering) */
    lf_schedule_t sched;
    int batch, guided, h, w;
    size_t per;          /* floats per latent image */
    double cfg;
    const float *cond;   /* [(guided ? 2 : 1) * batch][cond_len][dim] */
    int cond_len;
    float *x_in, *t, *out;
    float *uncond;       /* CFG++ samplers: the unconditional estimate of each call */
    lf_rng_t *rngs;
    int preview_every, steps;
    uint8_t *preview_rgb;
    float *preview_z;
    int model_rc;
} s_run_t;

static int s_denoise(void *ud, const float *x, float sigma, float *den, size_t n)
{
    s_run_t *r = ud;
    if (s_cancelled(r->hooks)) return LF_ECANCELED;
    int mb = r->guided ? 2 * r->batch : r->batch;
    double s = sigma;
    double c_in, c_skip = 0.0, c_out = 0.0;
    if (r->desc->prediction == LF_PRED_V) {
        c_in = 1.0 / sqrt(s * s + 1.0);
        c_skip = 1.0 / (s * s + 1.0);
        c_out = -s / sqrt(s * s + 1.0);
    } else {
        c_in = 1.0 / sqrt(s * s + 1.0);
    }
    float t = (float)lf_schedule_sigma_to_t(&r->sched, s);
    for (int b = 0; b < mb; b++) r->t[b] = t;
    for (size_t k = 0; k < n; k++) r->x_in[k] = (float)(x[k] * c_in);
    if (r->guided) memcpy(r->x_in + n, r->x_in, n * sizeof *x);
    int rc = r->ctx->ops->denoise(r->model, r->x_in, mb, r->h, r->w, r->t, r->cond, r->cond_len,
                                  r->vec, r->out);
    if (rc != 0) {
        r->model_rc = rc;
        return rc;
    }
    /* Model output -> denoised estimate, for the cond half and (guided) the
     * uncond half, then the guidance mix. */
    for (int half = 0; half < (r->guided ? 2 : 1); half++) {
        float *o = r->out + (size_t)half * n;
        if (r->desc->prediction == LF_PRED_V)
            for (size_t k = 0; k < n; k++) o[k] = (float)(x[k] * c_skip + o[k] * c_out);
        else if (r->desc->prediction == LF_PRED_SAMPLE)
            continue; /* the model's output is the denoised latent itself */
        else
            for (size_t k = 0; k < n; k++) o[k] = (float)(x[k] - s * o[k]);
    }
    if (r->guided) {
        const float *c = r->out, *u = r->out + n;
        for (size_t k = 0; k < n; k++) den[k] = (float)(u[k] + r->cfg * (c[k] - u[k]));
        if (r->uncond) memcpy(r->uncond, u, n * sizeof *u);
    } else {
        memcpy(den, r->out, n * sizeof *den);
    }
    return 0;
}

static int s_noise(void *ud, float *out, size_t n)
{
    s_run_t *r = ud;
    if (n != r->per * (size_t)r->batch) return LF_EINVAL;
    for (int b = 0; b < r->batch; b++) lf_rng_randn(&r->rngs[b], out + (size_t)b * r->per, r->per);
    return 0;
}

static void s_preview(s_run_t *r, int step, const float *den)
{
    uint8_t *png = NULL;
    size_t len = 0;
    /* No preview with the last step: the image itself follows at once. */
    if (den && r->preview_every > 0 && step % r->preview_every == 0 && step < r->steps) {
        for (size_t k = 0; k < r->per; k++) r->preview_z[k] = den[k] / r->desc->scaling_factor;
        int pw = 0, ph = 0;
        if (r->ctx->ops->preview(r->model, r->preview_z, r->h, r->w, r->preview_rgb, &pw, &ph) ==
                0 &&
            pw > 0 && ph > 0 && pw <= r->w * r->desc->vae_scale && ph <= r->h * r->desc->vae_scale) {
            lf_image_t img = {.pixels = r->preview_rgb, .width = (uint32_t)pw, .height = (uint32_t)ph,
                              .channels = 3};
            if (lf_image_png_encode(&img, NULL, 0, 1, &png, &len, NULL, 0) != 0) {
                png = NULL;
                len = 0;
            }
        }
    }
    r->hooks->progress(r->hooks->progress_ud, step, r->steps, png, len);
    free(png);
}

static int s_step(void *ud, int step, int steps, float sigma, const float *x, const float *den,
                  size_t n)
{
    s_run_t *r = ud;
    (void)steps, (void)sigma, (void)x, (void)n;
    if (s_cancelled(r->hooks)) return 1;
    if (r->hooks && r->hooks->progress) s_preview(r, r->step_base + step + 1, den);
    return s_cancelled(r->hooks);
}

/* ---- init image -------------------------------------------------------- */

/* Encoded image -> [3][H][W] in [-1, 1] at the request's size. */
static int s_init_image(const lf_pipeline_request_t *req, float *img, char *err, size_t errlen)
{
    lf_image_t im = {0};
    char why[160] = "";
    int rc = lf_image_decode(req->init_image, req->init_image_len, NULL, &im, why, sizeof why);
    if (rc != 0)
        return s_fail(err, errlen, rc, "cannot decode the init image: %s",
                      why[0] ? why : lf_strerror(rc));
    size_t W = (size_t)req->width, H = (size_t)req->height;
    uint8_t *rgb = malloc(W * H * 3);
    rc = rgb ? lf_pipeline_resize_rgb8(im.pixels, (int)im.width, (int)im.height, rgb, (int)W, (int)H)
             : LF_ENOMEM;
    lf_image_clear(&im);
    if (rc == 0)
        for (size_t p = 0; p < W * H; p++)
            for (int c = 0; c < 3; c++) img[(size_t)c * W * H + p] = rgb[p * 3 + c] / 255.0f * 2.0f - 1.0f;
    free(rgb);
    return rc ? s_fail(err, errlen, rc, "cannot resize the init image: %s", lf_strerror(rc)) : 0;
}

/* ---- output ------------------------------------------------------------ */

/* ", Refiner: name, Refiner switch at: f" appended to *info (A1111's keys). */
static int s_infotext_refiner(char **info, const char *name, double at)
{
    size_t n = strlen(*info), add = strlen(name) + 64;
    char *t = realloc(*info, n + add);
    if (!t) return LF_ENOMEM;
    snprintf(t + n, add, ", Refiner: %s, Refiner switch at: %g", name, at);
    *info = t;
    return 0;
}

static int s_encode_png(const lf_pipeline_request_t *req, const char *model_name, const char *vae_name,
                        const char *refiner_name, int index, const float *img, uint8_t *rgb,
                        lf_pipeline_image_t *out, char *err, size_t errlen)
{
    size_t W = (size_t)req->width, H = (size_t)req->height;
    for (size_t p = 0; p < W * H; p++)
        for (int c = 0; c < 3; c++) {
            float v = (img[(size_t)c * W * H + p] + 1.0f) / 2.0f;
            v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;
            rgb[p * 3 + c] = (uint8_t)(v * 255.0f); /* truncation, as astype(np.uint8) */
        }
    char *info = NULL;
    int rc = s_infotext(req, model_name, vae_name, index, &info);
    if (rc == 0 && refiner_name) rc = s_infotext_refiner(&info, refiner_name, req->refiner_switch_at);
    if (rc != 0) {
        free(info);
        return s_fail(err, errlen, rc, "cannot format the parameters: %s", lf_strerror(rc));
    }
    lf_image_t im = {.pixels = rgb, .width = (uint32_t)W, .height = (uint32_t)H, .channels = 3};
    lf_image_text_t text = {.key = "parameters", .value = info};
    char why[160] = "";
    rc = lf_image_png_encode(&im, &text, 1, -1, &out->png, &out->png_len, why, sizeof why);
    if (rc != 0) {
        free(info);
        return s_fail(err, errlen, rc, "cannot encode the PNG: %s", why[0] ? why : lf_strerror(rc));
    }
    out->infotext = info;
    out->seed = req->seed + (uint64_t)index;
    out->width = req->width;
    out->height = req->height;
    return 0;
}

void lf_pipeline_result_clear(lf_pipeline_result_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_images; i++) {
        free(r->images[i].png);
        free(r->images[i].infotext);
    }
    free(r->images);
    memset(r, 0, sizeof *r);
}

/* ---- conditioning -------------------------------------------------------- */

/* Text (and, for SDXL, vector) conditioning of one model for the batch:
 * *cond [mb][cond_len][text_dim] (the B conds, then the B unconds), *vec
 * [mb][pooled_dim + n_time_ids] or NULL when the model takes none. Caller
 * frees both (also on failure). */
static int s_condition(const lf_pipeline_ctx_t *ctx, lf_model_t *model, const lf_model_desc_t *d,
                       const lf_pipeline_request_t *req, const s_tokens_t *tok, int guided,
                       float **cond_out, float **vec_out, char *err, size_t errlen)
{
    const int B = req->batch, mb = guided ? 2 * B : B;
    const size_t nch = (guided ? 2 : 1) * tok->n;
    const size_t cond_sz = tok->n * LF_CLIP_CONTEXT * (size_t)d->text_dim;
    const int P = d->pooled_dim, K = d->n_time_ids, V = P + K;
    if (K && K != 5 && K != 6)
        return s_fail(err, errlen, LF_EUNSUPPORTED, "a model with %d time ids is not one this pipeline runs",
                      K);
    float *text = malloc((guided ? 2 : 1) * cond_sz * sizeof *text);
    float *pooled = P ? malloc(nch * (size_t)P * sizeof *pooled) : NULL;
    float *cond = *cond_out = malloc((size_t)mb * cond_sz * sizeof *cond);
    float *vec = *vec_out = K ? malloc((size_t)mb * (size_t)V * sizeof *vec) : NULL;
    int rc = 0;
    if (!text || !cond || (P && !pooled) || (K && !vec)) {
        rc = s_fail(err, errlen, LF_ENOMEM, "out of memory for the text conditioning");
        goto out;
    }
    rc = ctx->ops->encode_text(model, tok->ids, tok->weights, nch, req->clip_skip, text, pooled);
    if (rc != 0) {
        rc = s_fail(err, errlen, rc, "text encoder failed: %s", lf_strerror(rc));
        goto out;
    }
    /* SDXL (a model with a pooled embedding) and an empty negative prompt:
     * the uncond is all zeros, text and pooled, as A1111 (sd_models_xl's
     * force_zero_negative_prompt) and diffusers (force_zeros_for_empty_prompt). */
    const int zero_uncond = P > 0 && (!req->negative || !req->negative[0]);
    if (zero_uncond && guided) {
        memset(text + cond_sz, 0, cond_sz * sizeof *text);
        memset(pooled + tok->n * (size_t)P, 0, tok->n * (size_t)P * sizeof *pooled);
    }
    for (int b = 0; b < mb; b++)
        memcpy(cond + (size_t)b * cond_sz, text + (b < B ? 0 : cond_sz), cond_sz * sizeof *cond);
    /* Micro-conditioning, height first (diffusers' _get_add_time_ids). */
    const double oh = req->orig_height > 0 ? req->orig_height : req->height;
    const double ow = req->orig_width > 0 ? req->orig_width : req->width;
    const double th = req->target_height > 0 ? req->target_height : req->height;
    const double tw = req->target_width > 0 ? req->target_width : req->width;
    const double aes = req->aesthetic_score > 0 ? req->aesthetic_score : 6.0;
    const double naes = req->negative_aesthetic_score > 0 ? req->negative_aesthetic_score : 2.5;
    for (int b = 0; b < mb && K; b++) {
        const int uncond = b >= B;
        float *v = vec + (size_t)b * V;
        if (P) memcpy(v, pooled + (uncond ? tok->n : 0) * (size_t)P, (size_t)P * sizeof *v);
        double ids[6] = {oh, ow, req->crop_top, req->crop_left, th, tw};
        if (K == 5) ids[4] = uncond ? naes : aes;
        for (int i = 0; i < K; i++) v[P + i] = (float)ids[i];
    }
out:
    free(text);
    free(pooled);
    return rc;
}

/* The first step index (of start..steps) the refiner takes: the first whose
 * timestep is below round(1000 - 1000 f) (diffusers' discrete cutoff);
 * steps when none is. */
static int s_refiner_split(const lf_schedule_t *sched, const double *sigmas, int start, int steps,
                           double f)
{
    const double cutoff = round(1000.0 - 1000.0 * f);
    for (int i = start; i < steps; i++)
        if (lf_schedule_sigma_to_t(sched, sigmas[i]) < cutoff) return i;
    return steps;
}

/* ---- run --------------------------------------------------------------- */

static int s_check(const lf_pipeline_ctx_t *ctx, const lf_pipeline_request_t *req,
                   const lf_model_desc_t *d, char *err, size_t errlen)
{
    if (!ctx->tokenizer) return s_fail(err, errlen, LF_EINVAL, "no CLIP tokenizer is loaded");
    if (d->text_tokens != LF_CLIP_CONTEXT || d->latent_channels < 1 || d->vae_scale < 1 ||
        d->text_dim < 1 || !(d->scaling_factor > 0.f))
        return s_fail(err, errlen, LF_EUNSUPPORTED, "the model's shape is not one this pipeline runs");
    if (req->steps < 1 || req->steps > LF_PIPELINE_MAX_STEPS)
        return s_fail(err, errlen, LF_EINVAL, "steps must be 1..%d (got %d)", LF_PIPELINE_MAX_STEPS,
                      req->steps);
    if (req->width < d->vae_scale || req->height < d->vae_scale || req->width > LF_PIPELINE_MAX_SIDE ||
        req->height > LF_PIPELINE_MAX_SIDE || req->width % d->vae_scale || req->height % d->vae_scale)
        return s_fail(err, errlen, LF_EINVAL, "size %dx%d: each side must be a multiple of %d, up to %d",
                      req->width, req->height, d->vae_scale, LF_PIPELINE_MAX_SIDE);
    if (req->batch < 0 || req->batch > LF_PIPELINE_MAX_BATCH)
        return s_fail(err, errlen, LF_EINVAL, "batch must be 1..%d", LF_PIPELINE_MAX_BATCH);
    if (ctx->refiner && !(req->refiner_switch_at >= 0.0 && req->refiner_switch_at <= 1.0))
        return s_fail(err, errlen, LF_EINVAL, "refiner switch must be in [0, 1] (got %g)",
                      req->refiner_switch_at);
    if (!isfinite(req->cfg) || req->cfg < 0.0 || req->cfg > 100.0)
        return s_fail(err, errlen, LF_EINVAL, "cfg scale must be 0..100");
    if (req->clip_skip < 0 || req->clip_skip > 12)
        return s_fail(err, errlen, LF_EINVAL, "clip skip must be 1..12");
    if ((unsigned)req->sampler >= LF_SAMPLER_COUNT || (unsigned)req->scheduler >= LF_SCHEDULER_COUNT)
        return s_fail(err, errlen, LF_EINVAL, "unknown sampler or scheduler");
    if (req->init_image && !(req->denoise > 0.0 && req->denoise <= 1.0))
        return s_fail(err, errlen, LF_EINVAL, "denoising strength must be in (0, 1] (got %g)",
                      req->denoise);
    return 0;
}

int lf_pipeline_run(const lf_pipeline_ctx_t *ctx, const lf_pipeline_request_t *req0,
                    const lf_pipeline_hooks_t *hooks, lf_pipeline_result_t *out, char *err,
                    size_t errlen)
{
    if (!ctx || !ctx->ops || !ctx->model || !req0 || !out)
        return s_fail(err, errlen, LF_EINVAL, "no model or request");
    lf_pipeline_hooks_t nohooks = {0};
    if (!hooks) hooks = &nohooks;
    lf_pipeline_request_t req = *req0;
    if (req.batch == 0) req.batch = 1;
    if (req.clip_skip == 0) req.clip_skip = 1;
    const lf_model_desc_t *d = ctx->ops->desc(ctx->model);
    int rc = s_check(ctx, &req, d, err, errlen);
    if (rc != 0) return rc;

    const int B = req.batch, f = d->vae_scale, h = req.height / f, w = req.width / f;
    const size_t per = (size_t)d->latent_channels * (size_t)h * (size_t)w;
    const size_t npix = (size_t)req.width * (size_t)req.height;
    /* CFG++ samplers step along the unconditional estimate: it is computed
     * even at cfg 1 (ComfyUI's disable_cfg1_optimization). cfg 0 is no
     * guidance at all, as diffusers' guidance_scale <= 1 (SDXL-Turbo's
     * model card uses 0): the positive prompt alone, one pass. */
    const int cfgpp = lf_sampler_needs_uncond(req.sampler);
    const int guided = (req.cfg != 1.0 && req.cfg != 0.0) || cfgpp;
    const int mb = guided ? 2 * B : B;

    s_run_t r = {.ctx = ctx, .hooks = hooks, .model = ctx->model, .desc = d, .batch = B, .guided = guided, .h = h, .w = w,
                 .per = per, .cfg = req.cfg, .preview_every = req.preview_every};
    lf_schedule_init_sd15(&r.sched);
    /* Align Your Steps has noise levels per family (the SDXL ones for SDXL). */
    if (d->family == LF_FAMILY_SDXL) r.sched.ays = LF_AYS_SDXL;
    s_tokens_t tok = {0};
    lf_pipeline_image_t *images = NULL;
    float *cond = NULL, *vec = NULL, *rcond = NULL, *rvec = NULL, *x = NULL, *img = NULL;
    const lf_model_desc_t *rd = NULL; /* the refiner's, when it runs */
    int split = 0;
    uint8_t *rgb = NULL;
    double *sigmas = malloc(((size_t)req.steps + 1) * sizeof *sigmas);
    int n_done = 0;

    if (!sigmas) {
        rc = LF_ENOMEM;
        goto done;
    }
    int start = s_sigmas(&r.sched, req.scheduler, req.steps, req.init_image ? req.denoise : 1.0, sigmas);
    if (start < 0) {
        rc = s_fail(err, errlen, start, "cannot build the %s schedule", lf_scheduler_name(req.scheduler));
        goto done;
    }
    r.steps = req.steps - start;

    /* Text: one encoder call for cond and uncond chunks together. */
    if ((rc = s_tokenize(ctx, &req, guided, &tok, err, errlen)) != 0) goto done;
    r.cond_len = (int)tok.n * LF_CLIP_CONTEXT;
    x = malloc((size_t)B * per * sizeof *x);
    r.x_in = malloc((size_t)mb * per * sizeof *r.x_in);
    r.out = malloc((size_t)mb * per * sizeof *r.out);
    r.t = malloc((size_t)mb * sizeof *r.t);
    r.uncond = cfgpp ? malloc((size_t)B * per * sizeof *r.uncond) : NULL;
    r.rngs = malloc((size_t)B * sizeof *r.rngs);
    r.preview_z = malloc(per * sizeof *r.preview_z);
    /* lf_model_preview's contract: a TAESD decoder writes the latent x8,
     * whatever the VAE's scale (a tiny VAE's x2 would give a smaller image
     * buffer: such a preview is dropped in s_preview, never overflows). */
    const size_t taesd_px = (size_t)h * (size_t)w * 64;
    r.preview_rgb = malloc((taesd_px > npix ? taesd_px : npix) * 3);
    img = malloc(3 * npix * sizeof *img);
    rgb = malloc(npix * 3);
    images = calloc((size_t)B, sizeof *images);
    if (!x || !r.x_in || !r.out || !r.t || (cfgpp && !r.uncond) || !r.rngs || !r.preview_z ||
        !r.preview_rgb || !img || !rgb || !images) {
        rc = s_fail(err, errlen, LF_ENOMEM, "out of memory for %dx%d x%d", req.width, req.height, B);
        goto done;
    }
    if (s_cancelled(hooks)) {
        rc = LF_ECANCELED;
        goto done;
    }
    if ((rc = s_condition(ctx, ctx->model, d, &req, &tok, guided, &cond, &vec, err, errlen)) != 0)
        goto done;
    r.cond = cond;
    r.vec = vec;
    /* The refiner's part of the schedule and its own conditioning. */
    split = req.steps;
    if (ctx->refiner && req.refiner_switch_at > 0.0 && req.refiner_switch_at < 1.0) {
        split = s_refiner_split(&r.sched, sigmas, start, req.steps, req.refiner_switch_at);
        if (split < req.steps) {
            rd = ctx->ops->desc(ctx->refiner);
            if (rd->latent_channels != d->latent_channels || rd->vae_scale != d->vae_scale ||
                rd->text_tokens != d->text_tokens) {
                rc = s_fail(err, errlen, LF_EINVAL, "the refiner's latent space does not match the model's");
                goto done;
            }
            rc = s_condition(ctx, ctx->refiner, rd, &req, &tok, guided, &rcond, &rvec, err, errlen);
            if (rc != 0) goto done;
        }
    }

    /* Initial latents: each image's own generator; img2img adds the noise
     * to the encoded init image at the first sigma of the tail. */
    for (int b = 0; b < B; b++) {
        lf_rng_init(&r.rngs[b], req.rng, req.seed + (uint64_t)b);
        lf_rng_randn(&r.rngs[b], x + (size_t)b * per, per);
    }
    const double s0 = sigmas[start];
    if (req.init_image) {
        if ((rc = s_init_image(&req, img, err, errlen)) != 0) goto done;
        if (s_cancelled(hooks)) {
            rc = LF_ECANCELED;
            goto done;
        }
        rc = ctx->ops->vae_encode(ctx->model, img, 1, req.height, req.width, req.vae_tile, r.x_in);
        if (rc != 0) {
            rc = s_fail(err, errlen, rc, "VAE encoder failed: %s", lf_strerror(rc));
            goto done;
        }
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < per; k++)
                x[(size_t)b * per + k] =
                    (float)(r.x_in[k] * d->scaling_factor + x[(size_t)b * per + k] * s0);
    } else {
        for (size_t k = 0; k < (size_t)B * per; k++) x[k] = (float)(x[k] * s0);
    }

    lf_sampler_opts_t so = lf_sampler_opts(s_denoise, &r);
    so.noise = s_noise;
    so.noise_ctx = &r;
    so.step = s_step;
    so.step_ctx = &r;
    so.uncond = r.uncond;
    so.schedule = &r.sched;
    /* Base over sigmas[start..split], then the refiner over the rest. */
    rc = split > start ? lf_sampler_run(req.sampler, &so, sigmas + start, split - start, x, (size_t)B * per)
                       : 0;
    if (rc == 0 && rd && !s_cancelled(hooks)) {
        r.model = ctx->refiner, r.desc = rd, r.cond = rcond, r.vec = rvec, r.step_base = split - start;
        rc = lf_sampler_run(req.sampler, &so, sigmas + split, req.steps - split, x, (size_t)B * per);
    }
    if (rc == LF_ECANCELED || s_cancelled(hooks)) {
        rc = LF_ECANCELED;
        goto done;
    }
    if (rc != 0) {
        rc = s_fail(err, errlen, rc, r.model_rc ? "denoiser failed: %s" : "sampler failed: %s",
                    lf_strerror(rc));
        goto done;
    }

    /* Decode one image at a time (bounded memory), then PNG + parameters. */
    for (int b = 0; b < B; b++) {
        if (s_cancelled(hooks)) {
            rc = LF_ECANCELED;
            goto done;
        }
        /* The model that ran last decodes (the refiner's VAE after it). */
        float *z = x + (size_t)b * per;
        for (size_t k = 0; k < per; k++) z[k] /= r.desc->scaling_factor;
        rc = ctx->ops->vae_decode(r.model, z, 1, h, w, req.vae_tile, img);
        if (rc != 0) {
            rc = s_fail(err, errlen, rc, "VAE decoder failed: %s", lf_strerror(rc));
            goto done;
        }
        const char *rname = rd ? (ctx->refiner_name ? ctx->refiner_name : "refiner") : NULL;
        if ((rc = s_encode_png(&req, ctx->model_name, ctx->vae_name, rname, b, img, rgb, &images[b], err, errlen)) != 0)
            goto done;
        n_done++;
    }
    out->images = images;
    out->n_images = (size_t)B;
    out->steps_run = r.steps;
    out->token_count = tok.token_count;
    images = NULL;
    n_done = 0;

done:
    if (rc == LF_ECANCELED) s_fail(err, errlen, rc, "cancelled");
    for (int b = 0; b < n_done; b++) {
        free(images[b].png);
        free(images[b].infotext);
    }
    free(images);
    free(tok.ids);
    free(tok.weights);
    free(sigmas);
    free(cond);
    free(vec);
    free(rcond);
    free(rvec);
    free(x);
    free(r.x_in);
    free(r.out);
    free(r.t);
    free(r.uncond);
    free(r.rngs);
    free(r.preview_z);
    free(r.preview_rgb);
    free(img);
    free(rgb);
    return rc;
}
