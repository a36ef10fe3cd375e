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
#include "lf_hires.h"
#include "lf_image.h"
#include "lf_infotext.h"
#include "lf_inpaint.h"
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

/* lf_pipeline_sigmas over a given model schedule (its AYS levels); a flow
 * model's (flow != NULL: its description, h x w latent pixels) over
 * FluxPipeline's schedule. */
static int s_sigmas_ex(const lf_schedule_t *sched, const lf_model_desc_t *flow, int h, int w,
                       lf_scheduler_t scheduler, int steps, double denoise, double *full)
{
    if (steps < 1 || steps > LF_PIPELINE_MAX_STEPS) return LF_EINVAL;
    int rc;
    if (flow) {
        /* FlowMatchEulerDiscreteScheduler's shifted linspace; "normal" and
         * "simple" name it (the discrete flow table the other schedulers
         * would need is not built yet). */
        if (scheduler != LF_SCHEDULER_NORMAL && scheduler != LF_SCHEDULER_SIMPLE) return LF_EUNSUPPORTED;
        const double mu = lf_schedule_flow_mu((h / 2) * (w / 2), 0.5, 1.15, 256, 4096);
        rc = lf_schedule_flow_sigmas(steps, flow->flow_dynamic, mu, flow->flow_shift, full);
    } else {
        rc = lf_schedule_sigmas(sched, scheduler, steps, full);
    }
    if (rc != 0) return rc;
    if (!(denoise > 0.0 && denoise < 1.0)) return 0;
    /* A1111 setup_img2img_steps with img2img_fix_steps off. */
    int t_enc = (int)(fmin(denoise, 0.999) * steps);
    return steps - t_enc - 1;
}

static int s_sigmas(const lf_schedule_t *sched, lf_scheduler_t scheduler, int steps, double denoise,
                    double *full)
{
    return s_sigmas_ex(sched, NULL, 0, 0, scheduler, steps, denoise, full);
}

int lf_pipeline_sigmas(lf_scheduler_t scheduler, int steps, double denoise, double *full)
{
    lf_schedule_t sched;
    lf_schedule_init_sd15(&sched);
    return s_sigmas(&sched, scheduler, steps, denoise, full);
}

int lf_pipeline_flow_sigmas(const lf_model_desc_t *d, int h, int w, lf_scheduler_t scheduler, int steps,
                            double denoise, double *full)
{
    if (!d || d->prediction != LF_PRED_FLOW || h < 2 || w < 2) return LF_EINVAL;
    return s_sigmas_ex(NULL, d, h, w, scheduler, steps, denoise, full);
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

/* Appends fmt's text to *out (realloc). */
static int s_append(char **out, const char *fmt, ...)
{
    char add[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(add, sizeof add, fmt, ap);
    va_end(ap);
    size_t have = strlen(*out);
    char *n = realloc(*out, have + strlen(add) + 1);
    if (!n) return LF_ENOMEM;
    strcpy(n + have, add);
    *out = n;
    return 0;
}

/* A1111's inpainting keys, in the order its img2img init adds them (values
 * as it writes them; "Masked content: original" is never written). The
 * "Inpaint area" pair only when the mask gave a region (s_inpaint sets
 * inpaint_full_res back to 0 for a blank mask, as A1111 does). */
static int s_infotext_inpaint(const lf_pipeline_request_t *req, char **out)
{
    static const char *const fills[] = {"fill", NULL, "latent noise", "latent nothing"};
    int rc = 0;
    if (req->init_image && req->mask) {
        if (req->inpainting_mask_invert) rc = s_append(out, ", Mask mode: Inpaint not masked");
        if (!rc && (req->mask_blur_x > 0 || req->mask_blur_y > 0) && req->mask_blur_x == req->mask_blur_y)
            rc = s_append(out, ", Mask blur: %g", req->mask_blur_x);
        if (!rc && req->inpaint_full_res)
            rc = s_append(out, ", Inpaint area: Only masked, Masked area padding: %d",
                          req->inpaint_full_res_padding);
        if (!rc && (unsigned)req->inpainting_fill < 4 && fills[req->inpainting_fill])
            rc = s_append(out, ", Masked content: %s", fills[req->inpainting_fill]);
    }
    if (!rc && req->init_image && req->initial_noise_multiplier > 0 && req->initial_noise_multiplier != 1.0)
        rc = s_append(out, ", Noise multiplier: %g", req->initial_noise_multiplier);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
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
    const lf_pipeline_hires_t *hr = &req->hires;
    if (hr->enable) { /* the table writes these only with enable_hr */
        view.enable_hr = true;
        view.hr_scale = hr->scale;
        view.hr_resize_x = (uint32_t)(hr->resize_x > 0 ? hr->resize_x : 0);
        view.hr_resize_y = (uint32_t)(hr->resize_y > 0 ? hr->resize_y : 0);
        view.hr_upscaler = (char *)(hr->upscaler ? hr->upscaler : "Latent");
        view.hr_second_pass_steps = (uint32_t)(hr->steps > 0 ? hr->steps : 0);
        if (hr->sampler >= 0) view.hr_sampler = (char *)lf_sampler_name((lf_sampler_kind_t)hr->sampler);
        if (hr->scheduler >= 0 && hr->scheduler < LF_SCHEDULER_COUNT)
            view.hr_scheduler = (char *)lf_param_schedulers[hr->scheduler].name;
        view.hr_prompt = (char *)(hr->infotext_prompt ? hr->infotext_prompt : hr->prompt);
        view.hr_negative_prompt = (char *)hr->negative;
        view.hr_cfg = hr->cfg;
    }
    /* Step caching: the table writes its rows only when it is on. */
    view.cache_kind = (char *)lf_stepcache_kind_name(req->cache.kind);
    view.cache_threshold = (double)req->cache.threshold;
    view.cache_start = (uint32_t)req->cache.start;
    view.cache_end = (uint32_t)req->cache.end;
    view.cache_interval = (uint32_t)req->cache.interval;
    view.cache_depth = (uint32_t)req->cache.depth;
    /* Few-step rows: Eta with the tcd sampler, the explicit timesteps when given. */
    view.tcd_gamma = req->has_tcd_gamma ? req->tcd_gamma : 0.3;
    char ts[1024] = "";
    for (int i = 0, len = 0; req->timesteps && i < req->n_timesteps && len < (int)sizeof ts; i++)
        len += snprintf(ts + len, sizeof ts - (size_t)len, "%s%d", i ? "," : "", req->timesteps[i]);
    view.timesteps = ts;
    view.precision = (char *)req->precision;
    int rc = lf_params_infotext(&view, NULL, index, out);
    if (rc == 0) rc = s_infotext_inpaint(req, out);
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
    const lf_pipeline_row_t *rows; /* batched rows (their own progress and previews), or NULL */
    int n_rows;
    uint8_t *preview_rgb;
    float *preview_z;
    int model_rc;
    /* Inpainting: an inpainting UNet's extra input channels (cc, the same
     * for every item, cond and uncond: [cc][h][w]); the latent mask (1 =
     * repaint; NULL = none) and the init latents it blends in, [batch][per]. */
    int cc;
    const float *concat;
    const float *nmask;
    const float *z0;
    lf_stepcache_t *sc;  /* step caching of this pass, or NULL */
    int step_now;        /* the sampler step the next model call belongs to: the steps
                          * whose step callback has run (exact for one call per step; a
                          * step's later calls count as the next step's) */
    int steps_pass;      /* steps of this sampling pass */
    int calls_full;      /* model calls without step caching */
} s_run_t;

static int s_denoise(void *ud, const float *x, float sigma, float *den, size_t n)
{
    s_run_t *r = ud;
    if (s_cancelled(r->hooks)) return LF_ECANCELED;
    int mb = r->guided ? 2 * r->batch : r->batch;
    double s = sigma;
    double c_in, c_skip = 0.0, c_out = 0.0;
    const int flow = r->desc->prediction == LF_PRED_FLOW;
    if (r->desc->prediction == LF_PRED_V) {
        c_in = 1.0 / sqrt(s * s + 1.0);
        c_skip = 1.0 / (s * s + 1.0);
        c_out = -s / sqrt(s * s + 1.0);
    } else {
        c_in = flow ? 1.0 : 1.0 / sqrt(s * s + 1.0); /* flow: the latent as it is */
    }
    /* A flow model's time is sigma itself. */
    float t = flow ? sigma : (float)lf_schedule_sigma_to_t(&r->sched, s);
    for (int b = 0; b < mb; b++) r->t[b] = t;
    /* Each item's scaled latent, then (inpainting UNet) its extra channels. */
    const size_t hw = (size_t)r->h * (size_t)r->w, per_in = r->per + (size_t)r->cc * hw;
    for (int b = 0; b < mb; b++) {
        const float *xb = x + (size_t)(b % r->batch) * r->per;
        float *xi = r->x_in + (size_t)b * per_in;
        for (size_t k = 0; k < r->per; k++) xi[k] = (float)(xb[k] * c_in);
        if (r->cc) memcpy(xi + r->per, r->concat, (size_t)r->cc * hw * sizeof *xi);
    }
    int rc;
    if (r->sc) {
        lf_stepcache_begin(r->sc, r->step_now, r->steps_pass);
        rc = r->ctx->ops->denoise_cached(r->model, r->sc, r->x_in, mb, r->h, r->w, r->t, r->cond,
                                         r->cond_len, r->vec, r->out);
    } else {
        rc = r->ctx->ops->denoise(r->model, r->x_in, mb, r->h, r->w, r->t, r->cond, r->cond_len,
                                  r->vec, r->out);
        r->calls_full++;
    }
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
        else /* eps, and flow's velocity: both x0 = x - sigma * output */
            for (size_t k = 0; k < n; k++) o[k] = (float)(x[k] - s * o[k]);
    }
    if (r->guided) {
        const float *c = r->out, *u = r->out + n;
        for (size_t k = 0; k < n; k++) den[k] = (float)(u[k] + r->cfg * (c[k] - u[k]));
        if (r->uncond) memcpy(r->uncond, u, n * sizeof *u);
    } else {
        memcpy(den, r->out, n * sizeof *den);
    }
    /* A1111's mask blend after the guidance mix: denoised * m + z0 * (1 - m). */
    if (r->nmask) {
        const size_t hw2 = (size_t)r->h * (size_t)r->w;
        for (size_t k = 0; k < n; k++) {
            const float m = r->nmask[k % hw2];
            den[k] = den[k] * m + r->z0[k] * (1.0f - m);
        }
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

/* The preview PNG of one image's denoised latent (NULL when the model
 * gives none). */
static uint8_t *s_preview_png(s_run_t *r, const float *den, size_t *len)
{
    uint8_t *png = NULL;
    *len = 0;
    for (size_t k = 0; k < r->per; k++) r->preview_z[k] = den[k] / r->desc->scaling_factor + r->desc->shift_factor;
    int pw = 0, ph = 0;
    if (r->ctx->ops->preview(r->model, r->preview_z, r->h, r->w, r->preview_rgb, &pw, &ph) == 0 && pw > 0 &&
        ph > 0 && pw <= r->w * r->desc->vae_scale && ph <= r->h * r->desc->vae_scale) {
        lf_image_t img = {.pixels = r->preview_rgb, .width = (uint32_t)pw, .height = (uint32_t)ph, .channels = 3};
        if (lf_image_png_encode(&img, NULL, 0, 1, &png, len, NULL, 0) != 0) {
            png = NULL;
            *len = 0;
        }
    }
    return png;
}

/* The step's progress: the hooks' with the batch's first image's preview,
 * and each batched row's own with its first image's. */
static void s_preview(s_run_t *r, int step, const float *den)
{
    /* No preview with the last step: the image itself follows at once. */
    const int due = den && r->preview_every > 0 && step % r->preview_every == 0 && step < r->steps;
    uint8_t *png0 = NULL;
    size_t len0 = 0;
    if (due && (r->hooks->progress || (r->n_rows && r->rows[0].progress))) png0 = s_preview_png(r, den, &len0);
    if (r->hooks->progress) r->hooks->progress(r->hooks->progress_ud, step, r->steps, png0, len0);
    for (int j = 0, first = 0; j < r->n_rows; first += r->rows[j].batch > 0 ? r->rows[j].batch : 1, j++) {
        if (!r->rows[j].progress) continue;
        size_t len = j ? 0 : len0;
        uint8_t *png = j ? (due ? s_preview_png(r, den + (size_t)first * r->per, &len) : NULL) : png0;
        r->rows[j].progress(r->rows[j].progress_ud, step, r->steps, png, len);
        if (j) free(png);
    }
    free(png0);
}

static int s_step(void *ud, int step, int steps, float sigma, const float *x, const float *den,
                  size_t n)
{
    s_run_t *r = ud;
    (void)steps, (void)sigma, (void)x, (void)n;
    r->step_now = step + 1;
    if (s_cancelled(r->hooks)) return 1;
    if (r->hooks && (r->hooks->progress || r->n_rows)) s_preview(r, r->step_base + step + 1, den);
    return s_cancelled(r->hooks);
}

/* ---- init image and mask ------------------------------------------------- */

/* What inpainting keeps between the init image and the PNG. */
typedef struct {
    int active;        /* a mask is in use (not for a blank "only masked" mask) */
    int full_res;      /* "only masked": crop is the init image's region */
    int crop[4];
    int ow, oh;        /* the output image's size (the init image's for "only masked") */
    uint8_t *overlay;  /* RGBA [oh][ow]: the original under 255 - mask_for_overlay */
    uint8_t *mask;     /* [H][W] the mask at the job size (A1111's image_mask) */
    float *nmask;      /* [h][w] latent mask, 1 = repaint */
    float *z0;         /* [batch][per] init latents (after latent noise / nothing) */
    float *concat;     /* [cc][h][w] an inpainting UNet's extra channels */
} s_inpaint_t;

static void s_inpaint_clear(s_inpaint_t *in)
{
    free(in->overlay);
    free(in->mask);
    free(in->nmask);
    free(in->z0);
    free(in->concat);
    memset(in, 0, sizeof *in);
}

/* A gray image resized through the RGB resizers (Pillow resamples L and
 * each RGB channel with the same integer arithmetic): mode 0 LANCZOS, 1 and
 * 2 resize_image's modes. */
static int s_gray_resize(int mode, const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    uint8_t *a = malloc((size_t)sw * sh * 3), *b = malloc((size_t)dw * dh * 3);
    int rc = a && b ? 0 : LF_ENOMEM;
    if (!rc) {
        for (size_t p = 0; p < (size_t)sw * sh; p++) a[p * 3] = a[p * 3 + 1] = a[p * 3 + 2] = src[p];
        rc = mode == 0 ? lf_resize_rgb8(a, sw, sh, b, dw, dh, LF_RESIZE_LANCZOS)
                       : lf_inpaint_resize_mode(mode, a, sw, sh, b, dw, dh);
    }
    if (!rc)
        for (size_t p = 0; p < (size_t)dw * dh; p++) dst[p] = b[p * 3];
    free(a), free(b);
    return rc;
}

/* The init image (and mask) -> img [3][H][W] in [-1, 1] at the request's
 * size, what A1111's img2img init does before encoding; in gets the mask
 * state (see s_inpaint_t). */
static int s_init_image(const lf_pipeline_request_t *req, float *img, s_inpaint_t *in, char *err,
                        size_t errlen)
{
    lf_image_t im = {0}, mk = {0};
    char why[160] = "";
    int rc = lf_image_decode(req->init_image, req->init_image_len, NULL, &im, why, sizeof why);
    if (rc != 0)
        return s_fail(err, errlen, rc, "cannot decode the init image: %s",
                      why[0] ? why : lf_strerror(rc));
    if (req->mask && (rc = lf_image_decode_alpha(req->mask, req->mask_len, NULL, &mk, why, sizeof why)) != 0) {
        lf_image_clear(&im);
        return s_fail(err, errlen, rc, "cannot decode the mask: %s", why[0] ? why : lf_strerror(rc));
    }
    const int W = req->width, H = req->height, iw = (int)im.width, ih = (int)im.height;
    uint8_t *rgb = malloc((size_t)W * H * 3), *lm = NULL, *crop = NULL, *mfo = NULL;
    in->ow = W, in->oh = H;
    rc = rgb ? 0 : LF_ENOMEM;
    if (!rc && req->mask) {
        /* create_binary_mask (convert("L")), invert, blur at the mask's size. */
        const int mw = (int)mk.width, mh = (int)mk.height;
        lm = malloc((size_t)mw * mh > (size_t)iw * ih ? (size_t)mw * mh : (size_t)iw * ih);
        in->mask = malloc((size_t)W * H);
        rc = lm && in->mask ? 0 : LF_ENOMEM;
        if (!rc) {
            lf_inpaint_mask_l(mk.pixels, (int)mk.channels, mw, mh, lm);
            if (req->inpainting_mask_invert) lf_inpaint_invert(lm, mw, mh);
            rc = lf_inpaint_blur(lm, mw, mh, req->mask_blur_x, req->mask_blur_y);
        }
        if (!rc && req->inpaint_full_res) {
            /* A mask of another size than the image is first resized to it
             * (A1111 would crop mismatched regions; its overlay is resized). */
            if (mw != iw || mh != ih) {
                uint8_t *t = malloc((size_t)iw * ih);
                rc = t ? s_gray_resize(0, lm, mw, mh, t, iw, ih) : LF_ENOMEM;
                if (!rc) memcpy(lm, t, (size_t)iw * ih);
                free(t);
            }
            if (!rc && lf_inpaint_crop_region(lm, iw, ih, req->inpaint_full_res_padding, W, H, in->crop) == 0) {
                in->active = in->full_res = 1;
                const int cw = in->crop[2] - in->crop[0], ch = in->crop[3] - in->crop[1];
                crop = malloc((size_t)cw * ch * 3);
                uint8_t *cm = malloc((size_t)cw * ch);
                in->overlay = malloc((size_t)iw * ih * 4);
                rc = crop && cm && in->overlay ? 0 : LF_ENOMEM;
                if (!rc) {
                    for (int y = 0; y < ch; y++)
                        memcpy(cm + (size_t)y * cw, lm + (size_t)(y + in->crop[1]) * iw + in->crop[0], (size_t)cw);
                    rc = s_gray_resize(2, cm, cw, ch, in->mask, W, H);
                }
                free(cm);
                if (!rc) {
                    lf_inpaint_overlay(im.pixels, lm, iw, ih, in->overlay);
                    lf_inpaint_crop(im.pixels, iw, in->crop, crop);
                    rc = lf_inpaint_resize_mode(2, crop, cw, ch, rgb, W, H);
                    in->ow = iw, in->oh = ih;
                }
            }
        } else if (!rc) {
            in->active = 1;
            mfo = malloc((size_t)W * H);
            in->overlay = malloc((size_t)W * H * 4);
            rc = mfo && in->overlay ? s_gray_resize(0, lm, mw, mh, in->mask, W, H) : LF_ENOMEM;
            if (!rc)
                for (size_t p = 0; p < (size_t)W * H; p++) mfo[p] = (uint8_t)(in->mask[p] > 127 ? 255 : in->mask[p] * 2);
        }
    }
    if (!rc && !in->full_res) {
        rc = lf_pipeline_resize_rgb8(im.pixels, iw, ih, rgb, W, H);
        if (!rc && in->active) lf_inpaint_overlay(rgb, mfo, W, H, in->overlay);
    }
    /* Masked content other than "original": masking.fill before encoding. */
    if (!rc && in->active && req->inpainting_fill != 1) rc = lf_inpaint_fill(rgb, in->mask, W, H);
    if (!rc)
        for (size_t p = 0; p < (size_t)W * H; p++)
            for (int c = 0; c < 3; c++) img[(size_t)c * W * H + p] = rgb[p * 3 + c] / 255.0f * 2.0f - 1.0f;
    if (!rc && !in->active) { /* a blank "only masked" mask: plain img2img, as A1111 */
        free(in->mask);
        in->mask = NULL;
    }
    lf_image_clear(&im);
    lf_image_clear(&mk);
    free(rgb), free(lm), free(crop), free(mfo);
    return rc ? s_fail(err, errlen, rc, "cannot prepare the init image%s: %s", req->mask ? " and mask" : "",
                       lf_strerror(rc))
              : 0;
}

/* The decoded image rgb (W x H) composited over the original as A1111's
 * apply_overlay: "only masked" resizes it to the crop ("crop and resize")
 * and pastes it there on a transparent image of the original's size. out:
 * RGB [in->oh][in->ow]. */
static int s_apply_overlay(const s_inpaint_t *in, const uint8_t *rgb, int W, int H, uint8_t *out)
{
    const size_t n = (size_t)in->ow * in->oh;
    uint8_t *base = calloc(n, 4), *t = NULL;
    if (!base) return LF_ENOMEM;
    int rc = 0;
    if (in->full_res) {
        const int cw = in->crop[2] - in->crop[0], ch = in->crop[3] - in->crop[1];
        t = malloc((size_t)cw * ch * 3);
        rc = t ? lf_inpaint_resize_mode(1, rgb, W, H, t, cw, ch) : LF_ENOMEM;
        for (int y = 0; !rc && y < ch; y++)
            for (int x = 0; x < cw; x++) {
                uint8_t *d = base + ((size_t)(y + in->crop[1]) * in->ow + x + in->crop[0]) * 4;
                memcpy(d, t + ((size_t)y * cw + x) * 3, 3);
                d[3] = 255;
            }
    } else {
        for (size_t p = 0; p < n; p++) {
            memcpy(base + p * 4, rgb + p * 3, 3);
            base[p * 4 + 3] = 255;
        }
    }
    if (!rc) {
        lf_inpaint_alpha_composite(base, in->overlay, in->ow, in->oh);
        for (size_t p = 0; p < n; p++) memcpy(out + p * 3, base + p * 4, 3);
    }
    free(base);
    free(t);
    return rc;
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

static void s_to_rgb8(const float *img, size_t W, size_t H, uint8_t *rgb)
{
    for (size_t p = 0; p < W * H; p++)
        for (int c = 0; c < 3; c++) {
            float v = (img[(size_t)c * W * H + p] + 1.0f) / 2.0f;
            v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;
            rgb[p * 3 + c] = (uint8_t)(v * 255.0f); /* truncation, as astype(np.uint8) */
        }
}

/* A1111's "Conditional mask weight: w" for a model fed the inpainting
 * conditioning, where A1111 writes it: after "Denoising strength", i.e.
 * before the parameters line's "Clip skip" or else "RNG" item (both come
 * after it in the table's order). */
/* Inserts add into the parameters line before the first of the keys
 * before[] it has (", Key: "), else at its end. */
static int s_infotext_insert(char **info, const char *const *before, size_t nb, const char *add)
{
    const char *line = strrchr(*info, '\n');
    line = line ? line + 1 : *info;
    const char *at = NULL;
    for (size_t i = 0; !at && i < nb; i++) at = strstr(line, before[i]);
    if (!at) at = *info + strlen(*info);
    size_t pos = (size_t)(at - *info), n = strlen(*info), k = strlen(add);
    char *t = malloc(n + k + 1);
    if (!t) return LF_ENOMEM;
    memcpy(t, *info, pos);
    memcpy(t + pos, add, k);
    memcpy(t + pos + k, *info + pos, n - pos + 1);
    free(*info);
    *info = t;
    return 0;
}

static int s_infotext_cmw(char **info, double w)
{
    static const char *const before[] = {", Clip skip: ", ", RNG: "};
    char add[64];
    snprintf(add, sizeof add, ", Conditional mask weight: %g", w);
    return s_infotext_insert(info, before, 2, add);
}

/* Forge's "Distilled CFG Scale" of a Flux dev model, after "CFG scale". */
static int s_infotext_guidance(char **info, double g)
{
    static const char *const before[] = {", Seed: "};
    char add[64];
    snprintf(add, sizeof add, ", Distilled CFG Scale: %g", g);
    return s_infotext_insert(info, before, 1, add);
}

/* rgb is W x H (the output's size: the init image's for "only masked");
 * cmw: the inpainting conditioning's mask weight, NAN when the model takes
 * none; guidance: Flux dev's, NAN when the model takes none. */
static int s_encode_png(const lf_pipeline_request_t *req, const char *model_name, const char *vae_name,
                        const char *refiner_name, double cmw, double guidance, int index, const uint8_t *rgb,
                        size_t W, size_t H, lf_pipeline_image_t *out, char *err, size_t errlen)
{
    char *info = NULL;
    int rc = s_infotext(req, model_name, vae_name, index, &info);
    if (rc == 0 && !isnan(cmw)) rc = s_infotext_cmw(&info, cmw);
    if (rc == 0 && !isnan(guidance)) rc = s_infotext_guidance(&info, guidance);
    if (rc == 0 && refiner_name) rc = s_infotext_refiner(&info, refiner_name, req->refiner_switch_at);
    if (rc != 0) {
        free(info);
        return s_fail(err, errlen, rc, "cannot format the parameters: %s", lf_strerror(rc));
    }
    lf_image_t im = {.pixels = (uint8_t *)rgb, .width = (uint32_t)W, .height = (uint32_t)H, .channels = 3};
    lf_image_text_t text = {.key = "parameters", .value = info};
    char why[160] = "";
    rc = lf_image_png_encode(&im, &text, 1, -1, &out->png, &out->png_len, why, sizeof why);
    if (rc != 0) {
        free(info);
        return s_fail(err, errlen, rc, "cannot encode the PNG: %s", why[0] ? why : lf_strerror(rc));
    }
    out->infotext = info;
    out->seed = req->seed + (uint64_t)index;
    out->width = (int)W;
    out->height = (int)H;
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

/* Row j of a batched request as a request of its own. */
static lf_pipeline_request_t s_row_req(const lf_pipeline_request_t *req, int j)
{
    lf_pipeline_request_t r = *req;
    const lf_pipeline_row_t *row = &req->rows[j];
    r.prompt = row->prompt, r.negative = row->negative, r.infotext_prompt = row->infotext_prompt;
    r.seed = row->seed, r.batch = row->batch > 0 ? row->batch : 1;
    r.rows = NULL, r.n_rows = 0;
    return r;
}

/* Batched rows: each row tokenized and encoded as it would be alone, its
 * cond rows at its place among the batch's B conds, its uncond rows among
 * the B unconds. n: the chunk count every row must have (row 0's). */
static int s_condition_rows(const lf_pipeline_ctx_t *ctx, const lf_model_desc_t *d,
                            const lf_pipeline_request_t *req, int B, int guided, size_t n,
                            float **cond_out, float **vec_out, char *err, size_t errlen)
{
    const int mb = guided ? 2 * B : B;
    const size_t cond_sz = n * LF_CLIP_CONTEXT * (size_t)d->text_dim;
    const size_t V = (size_t)d->pooled_dim + (size_t)d->n_time_ids;
    float *cond = *cond_out = malloc((size_t)mb * cond_sz * sizeof *cond);
    float *vec = *vec_out = V && d->n_time_ids ? malloc((size_t)mb * V * sizeof *vec) : NULL;
    if (!cond || (d->n_time_ids && !vec)) return s_fail(err, errlen, LF_ENOMEM, "out of memory for the text conditioning");
    int rc = 0;
    for (int j = 0, off = 0; j < req->n_rows && rc == 0; j++) {
        lf_pipeline_request_t rj = s_row_req(req, j);
        s_tokens_t t = {0};
        float *c = NULL, *v = NULL;
        rc = s_tokenize(ctx, &rj, guided, &t, err, errlen);
        if (rc == 0 && t.n != n)
            rc = s_fail(err, errlen, LF_EUNSUPPORTED,
                        "batched jobs need prompts of the same number of 75-token chunks (%zu, row %d: %zu)",
                        n, j, t.n);
        if (rc == 0) rc = s_condition(ctx, ctx->model, d, &rj, &t, guided, &c, &v, err, errlen);
        for (int half = 0; rc == 0 && half < (guided ? 2 : 1); half++) {
            const size_t src = (size_t)half * (size_t)rj.batch, dst = (size_t)half * (size_t)B + (size_t)off;
            memcpy(cond + dst * cond_sz, c + src * cond_sz, (size_t)rj.batch * cond_sz * sizeof *cond);
            if (vec) memcpy(vec + dst * V, v + src * V, (size_t)rj.batch * V * sizeof *vec);
        }
        off += rj.batch;
        free(t.ids), free(t.weights), free(c), free(v);
    }
    return rc;
}

/* Flux's conditioning, as FluxPipeline: *cond [B][text_tokens][text_dim]
 * T5's states of the prompt (padded to text_tokens), *vec [B][pooled_dim +
 * guidance_embed] CLIP-L's pooled output of the prompt's first chunk, then
 * dev's guidance. No negative pass. */
static int s_condition_flux(const lf_pipeline_ctx_t *ctx, lf_model_t *model, const lf_model_desc_t *d,
                            const lf_pipeline_request_t *req, const s_tokens_t *tok, float **cond_out,
                            float **vec_out, char *err, size_t errlen)
{
    const int B = req->batch, T = d->text_tokens, P = d->pooled_dim, G = d->guidance_embed;
    const size_t cond_sz = (size_t)T * (size_t)d->text_dim;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    float *cond = *cond_out = malloc((size_t)B * cond_sz * sizeof *cond);
    float *vec = *vec_out = malloc((size_t)B * (size_t)(P + G) * sizeof *vec);
    int rc = !ids || !cond || !vec ? LF_ENOMEM : 0;
    if (rc == 0) rc = lf_t5_tokenizer_encode(ctx->t5_tokenizer, req->prompt ? req->prompt : "", ids, T, NULL);
    if (rc == 0) rc = ctx->ops->encode_t5(model, ids, 1, cond);
    if (rc == 0) rc = ctx->ops->encode_text(model, tok->ids, tok->weights, 1, req->clip_skip, NULL, vec);
    free(ids);
    if (rc != 0) return s_fail(err, errlen, rc, "text encoder failed: %s", lf_strerror(rc));
    if (G) vec[P] = (float)(req->guidance > 0 ? req->guidance : 3.5);
    for (int b = 1; b < B; b++) {
        memcpy(cond + (size_t)b * cond_sz, cond, cond_sz * sizeof *cond);
        memcpy(vec + (size_t)b * (P + G), vec, (size_t)(P + G) * sizeof *vec);
    }
    return 0;
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


/* ---- Hires-Fix ----------------------------------------------------------- */

/* What the second pass needs, fixed before the first one runs. */
typedef struct {
    lf_hires_size_t size;
    const lf_resize_builtin_t *builtin; /* NULL: a model through ctx->upscale */
    int steps, total, start;           /* lf_hires_steps */
    lf_sampler_kind_t sampler;
    lf_scheduler_t scheduler;
    double cfg;
    int guided, cfgpp;
} s_hires_t;

static int s_hires_plan(const lf_pipeline_ctx_t *ctx, const lf_pipeline_request_t *req, const lf_model_desc_t *d,
                        s_hires_t *hp, char *err, size_t errlen)
{
    const lf_pipeline_hires_t *hr = &req->hires;
    if (req->init_image) return s_fail(err, errlen, LF_EINVAL, "Hires-Fix is a txt2img pass (no init image)");
    int rc = lf_hires_size(req->width, req->height, hr->scale, hr->resize_x, hr->resize_y, d->vae_scale,
                           LF_PIPELINE_MAX_SIDE, &hp->size, err, errlen);
    if (rc) return rc;
    hp->steps = hr->steps > 0 ? hr->steps : req->steps;
    if (hp->steps > LF_PIPELINE_MAX_STEPS ||
        lf_hires_steps(hp->steps, req->denoise, &hp->total, &hp->start) || hp->total > LF_PIPELINE_MAX_STEPS)
        return s_fail(err, errlen, LF_EINVAL,
                      "Hires-Fix: %d steps at denoising strength %g (must be in (0, 1]) give no schedule",
                      hp->steps, req->denoise);
    const char *name = hr->upscaler && *hr->upscaler ? hr->upscaler : "Latent";
    hp->builtin = lf_resize_builtin_find(name);
    if (!hp->builtin && !ctx->upscale)
        return s_fail(err, errlen, LF_EINVAL, "unknown hr_upscaler '%s'", name);
    hp->sampler = hr->sampler >= 0 ? (lf_sampler_kind_t)hr->sampler : req->sampler;
    hp->scheduler = hr->scheduler >= 0 ? (lf_scheduler_t)hr->scheduler : req->scheduler;
    if ((unsigned)hp->sampler >= LF_SAMPLER_COUNT || (unsigned)hp->scheduler >= LF_SCHEDULER_COUNT)
        return s_fail(err, errlen, LF_EINVAL, "unknown hires sampler or scheduler");
    hp->cfg = hr->cfg > 0.0 ? hr->cfg : req->cfg;
    if (!isfinite(hp->cfg) || hp->cfg > 100.0) return s_fail(err, errlen, LF_EINVAL, "hr_cfg must be 0..100");
    hp->cfgpp = lf_sampler_needs_uncond(hp->sampler);
    hp->guided = hp->cfg != 1.0 || hp->cfgpp;
    return 0;
}

/* The first pass's latents x [B][per] (scaled) -> the second pass's start
 * [B][per2] at the Hires-Fix size, before noise: resized latents, or
 * decoded, upscaled and re-encoded images; then A1111's crop. img and rgb
 * hold the larger of the two images. */
static int s_hires_upscale(const lf_pipeline_ctx_t *ctx, const lf_pipeline_request_t *req, s_run_t *r,
                           const s_hires_t *hp, float *x, float *img, uint8_t *rgb, char *err, size_t errlen)
{
    const lf_model_desc_t *d = ctx->ops->desc(ctx->model);
    const int f = d->vae_scale, C = d->latent_channels, B = r->batch;
    const int uh = hp->size.up_h / f, uw = hp->size.up_w / f;
    const int h2 = hp->size.height / f, w2 = hp->size.width / f;
    const size_t per_up = (size_t)C * uh * uw;
    float *big = malloc((size_t)B * per_up * sizeof *big);
    if (!big) return s_fail(err, errlen, LF_ENOMEM, "out of memory for the Hires-Fix latents");
    int rc = 0;
    for (int b = 0; b < B && rc == 0; b++) {
        float *z = x + (size_t)b * r->per, *zb = big + (size_t)b * per_up;
        if (hp->builtin && hp->builtin->latent) {
            rc = lf_resize_latent(z, C, r->h, r->w, zb, uh, uw, hp->builtin->filter, hp->builtin->antialias);
            if (rc) rc = s_fail(err, errlen, rc, "latent resize failed: %s", lf_strerror(rc));
            continue;
        }
        /* Decode with the model that ran last, cut to 8 bits as A1111 does. */
        const size_t W = (size_t)req->width, H = (size_t)req->height;
        for (size_t k = 0; k < r->per; k++) z[k] = z[k] / r->desc->scaling_factor + r->desc->shift_factor;
        rc = ctx->ops->vae_decode(r->model, z, 1, r->h, r->w, req->vae_tile, img);
        if (rc) {
            rc = s_fail(err, errlen, rc, "VAE decoder failed: %s", lf_strerror(rc));
            break;
        }
        for (size_t p = 0; p < W * H; p++)
            for (int c = 0; c < 3; c++) {
                float v = (img[(size_t)c * W * H + p] + 1.0f) / 2.0f;
                v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;
                rgb[p * 3 + c] = (uint8_t)(v * 255.0f);
            }
        uint8_t *up = NULL;
        rc = lf_hires_upscale_rgb8(hp->builtin, ctx->upscale, ctx->upscale_ud, rgb, (int)W, (int)H,
                                   hp->size.up_w, hp->size.up_h, &up);
        if (rc) {
            rc = s_fail(err, errlen, rc, "Hires-Fix upscaler '%s' failed: %s",
                        req->hires.upscaler ? req->hires.upscaler : "", lf_strerror(rc));
            break;
        }
        const size_t n2 = (size_t)hp->size.up_w * (size_t)hp->size.up_h;
        for (size_t p = 0; p < n2; p++)
            for (int c = 0; c < 3; c++) img[(size_t)c * n2 + p] = up[p * 3 + c] / 255.0f * 2.0f - 1.0f;
        free(up);
        if (s_cancelled(r->hooks)) {
            rc = LF_ECANCELED;
            break;
        }
        rc = ctx->ops->vae_encode(ctx->model, img, 1, hp->size.up_h, hp->size.up_w, req->vae_tile, zb);
        if (rc) {
            rc = s_fail(err, errlen, rc, "VAE encoder failed: %s", lf_strerror(rc));
            break;
        }
        for (size_t k = 0; k < per_up; k++) zb[k] = (zb[k] - d->shift_factor) * d->scaling_factor;
    }
    /* samples[:, :, ty//2 : H-(ty+1)//2, tx//2 : W-(tx+1)//2] */
    const int oy = hp->size.trunc_y / 2, ox = hp->size.trunc_x / 2;
    for (int b = 0; b < B && rc == 0; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < h2; y++)
                memcpy(x + (size_t)b * C * h2 * w2 + ((size_t)c * h2 + y) * w2,
                       big + (size_t)b * per_up + ((size_t)c * uh + y + oy) * uw + ox, (size_t)w2 * sizeof *x);
    free(big);
    return rc;
}

/* ---- run --------------------------------------------------------------- */

static int s_check(const lf_pipeline_ctx_t *ctx, const lf_pipeline_request_t *req,
                   const lf_model_desc_t *d, char *err, size_t errlen)
{
    if (!ctx->tokenizer) return s_fail(err, errlen, LF_EINVAL, "no CLIP tokenizer is loaded");
    const int flux = d->family == LF_FAMILY_FLUX;
    if (flux && (!ctx->t5_tokenizer || !ctx->ops->encode_t5))
        return s_fail(err, errlen, LF_EUNSUPPORTED, "a Flux model needs its T5 encoder and tokenizer");
    if (flux && ((req->cfg != 0.0 && req->cfg != 1.0) || lf_sampler_needs_uncond(req->sampler) ||
                 ctx->refiner || req->hires.enable || req->init_image))
        return s_fail(err, errlen, LF_EUNSUPPORTED,
                      "Flux runs txt2img with cfg scale 1 (its guidance is \"guidance\"), no CFG++ sampler, "
                      "refiner or Hires-Fix yet");
    if (flux && !(req->guidance >= 0.0 && req->guidance <= 30.0))
        return s_fail(err, errlen, LF_EINVAL, "guidance must be 0..30");
    if ((d->text_tokens != LF_CLIP_CONTEXT && !flux) || d->latent_channels < 1 || d->vae_scale < 1 ||
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
    if (req->mask && !req->init_image)
        return s_fail(err, errlen, LF_EINVAL, "a mask needs an init image (inpainting is img2img)");
    if (req->mask && ((unsigned)req->inpainting_fill > 3 || !(req->mask_blur_x >= 0 && req->mask_blur_x <= 256) ||
                      !(req->mask_blur_y >= 0 && req->mask_blur_y <= 256) || req->inpaint_full_res_padding < 0 ||
                      req->inpaint_full_res_padding > LF_PIPELINE_MAX_SIDE))
        return s_fail(err, errlen, LF_EINVAL,
                      "inpainting: masked content must be 0..3, mask blur 0..256, padding 0..%d",
                      LF_PIPELINE_MAX_SIDE);
    if (!(req->initial_noise_multiplier >= 0 && req->initial_noise_multiplier <= 10) ||
        !(req->inpainting_mask_weight <= 1))
        return s_fail(err, errlen, LF_EINVAL, "noise multiplier must be 0..10 and mask weight at most 1");
    if (ctx->refiner && d->concat_channels)
        return s_fail(err, errlen, LF_EINVAL, "an inpainting model takes no refiner");
    if (req->n_rows < 0 || (req->n_rows && !req->rows))
        return s_fail(err, errlen, LF_EINVAL, "bad batch rows");
    if (req->n_rows) {
        int total = 0;
        for (int j = 0; j < req->n_rows; j++)
            total += req->rows[j].batch > 0 && req->rows[j].batch <= LF_PIPELINE_MAX_BATCH ? req->rows[j].batch
                     : req->rows[j].batch == 0                                              ? 1
                                                                                            : LF_PIPELINE_MAX_BATCH + 1;
        if (total > LF_PIPELINE_MAX_BATCH)
            return s_fail(err, errlen, LF_EINVAL, "batched jobs: at most %d images in all", LF_PIPELINE_MAX_BATCH);
        const int rows = total * ((req->cfg != 1.0 && req->cfg != 0.0) || lf_sampler_needs_uncond(req->sampler) ? 2 : 1);
        if (rows > LF_PIPELINE_BATCH_ROWS_MAX)
            return s_fail(err, errlen, LF_EUNSUPPORTED, "batched jobs: %d UNet rows, over the %d whose bytes stay as alone",
                          rows, LF_PIPELINE_BATCH_ROWS_MAX);
        const int refined = ctx->refiner && req->refiner_switch_at > 0.0 && req->refiner_switch_at < 1.0;
        if (req->init_image || req->hires.enable || refined || req->cache.kind != LF_STEPCACHE_NONE ||
            d->concat_channels)
            return s_fail(err, errlen, LF_EUNSUPPORTED,
                          "batched jobs are txt2img without Hires-Fix, refiner, step caching or inpainting model");
    }
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
    s_hires_t hp = {0};
    const int hires = req.hires.enable != 0;
    if (hires && (rc = s_hires_plan(ctx, &req, d, &hp, err, errlen)) != 0) return rc;
    /* The inpainting conditioning is built once, at the first pass's size. */
    if (hires && d->concat_channels)
        return s_fail(err, errlen, LF_EUNSUPPORTED, "Hires-Fix on an inpainting model is not supported yet");
    /* Batched rows: the batch is theirs; row_req[j]: row j as a request. */
    lf_pipeline_request_t row0 = req;
    if (req.n_rows) {
        row0 = s_row_req(&req, 0);
        req.batch = 0;
        for (int j = 0; j < req.n_rows; j++) req.batch += s_row_req(&req, j).batch;
    }

    const int B = req.batch, f = d->vae_scale, h = req.height / f, w = req.width / f;
    const size_t per = (size_t)d->latent_channels * (size_t)h * (size_t)w;
    const size_t npix = (size_t)req.width * (size_t)req.height;
    /* CFG++ samplers step along the unconditional estimate: it is computed
     * even at cfg 1 (ComfyUI's disable_cfg1_optimization). cfg 0 is no
     * guidance at all, as diffusers' guidance_scale <= 1 (SDXL-Turbo's
     * model card uses 0): the positive prompt alone, one pass. */
    const int cfgpp = lf_sampler_needs_uncond(req.sampler);
    const int guided = (req.cfg != 1.0 && req.cfg != 0.0) || cfgpp;
    const int mb = guided || (hires && hp.guided) ? 2 * B : B;
    /* Buffers for the larger pass: with Hires-Fix, the upscaled size. */
    const size_t per_up =
        hires ? (size_t)d->latent_channels * (size_t)(hp.size.up_h / f) * (size_t)(hp.size.up_w / f) : 0;
    const size_t per_max = per_up > per ? per_up : per;
    const size_t npix_up = hires ? (size_t)hp.size.up_w * (size_t)hp.size.up_h : 0;
    const size_t npix_max = npix_up > npix ? npix_up : npix;
    const int need_uncond = cfgpp || (hires && hp.cfgpp);

    s_run_t r = {.ctx = ctx, .hooks = hooks, .model = ctx->model, .desc = d, .batch = B, .guided = guided, .h = h, .w = w,
                 .per = per, .cfg = req.cfg, .preview_every = req.preview_every, .rows = req.rows,
                 .n_rows = req.n_rows};
    lf_schedule_init_sd15(&r.sched);
    /* Align Your Steps has noise levels per family (the SDXL ones for SDXL). */
    if (d->family == LF_FAMILY_SDXL) r.sched.ays = LF_AYS_SDXL;
    s_tokens_t tok = {0};
    s_inpaint_t inp = {0};
    uint8_t *orgb = NULL;
    const int cc = d->concat_channels;
    const size_t hw = (size_t)h * (size_t)w;
    r.cc = cc;
    lf_pipeline_image_t *images = NULL;
    float *cond = NULL, *vec = NULL, *rcond = NULL, *rvec = NULL, *x = NULL, *img = NULL;
    const lf_model_desc_t *rd = NULL; /* the refiner's, when it runs */
    int split = 0;
    uint8_t *rgb = NULL;
    double *sigmas = malloc(((size_t)req.steps + 1) * sizeof *sigmas);
    int n_done = 0;
    uint64_t *seeds = NULL; /* per image */

    if (!sigmas) {
        rc = LF_ENOMEM;
        goto done;
    }
    const lf_model_desc_t *flow = d->prediction == LF_PRED_FLOW ? d : NULL;
    int start = s_sigmas_ex(&r.sched, flow, h, w, req.scheduler, req.steps, req.init_image ? req.denoise : 1.0,
                            sigmas);
    if (start >= 0 && req.timesteps) { /* explicit timesteps replace the schedule's sigmas */
        if (flow) {
            rc = s_fail(err, errlen, LF_EUNSUPPORTED, "timesteps: not for flow-matching models (Flux)");
            goto done;
        }
        int trc = req.n_timesteps == req.steps ? lf_schedule_sigmas_at(&r.sched, req.timesteps, req.steps, sigmas)
                                               : LF_EINVAL;
        if (trc != 0) {
            rc = s_fail(err, errlen, trc, "timesteps: %d strictly descending values in 0..%d needed",
                        req.steps, r.sched.n - 1);
            goto done;
        }
    }
    if (start < 0) {
        rc = s_fail(err, errlen, start, "cannot build the %s schedule", lf_scheduler_name(req.scheduler));
        goto done;
    }
    r.steps = req.steps - start + (hires ? hp.steps : 0); /* one bar over both passes */

    /* Text: one encoder call for cond and uncond chunks together. */
    if ((rc = s_tokenize(ctx, &row0, guided, &tok, err, errlen)) != 0) goto done;
    r.cond_len = d->family == LF_FAMILY_FLUX ? d->text_tokens : (int)tok.n * LF_CLIP_CONTEXT;
    x = malloc((size_t)B * per_max * sizeof *x);
    r.x_in = malloc((size_t)mb * (per_max + (size_t)cc * hw) * sizeof *r.x_in);
    r.out = malloc((size_t)mb * per_max * sizeof *r.out);
    r.t = malloc((size_t)mb * sizeof *r.t);
    r.uncond = need_uncond ? malloc((size_t)B * per_max * sizeof *r.uncond) : NULL;
    r.rngs = malloc((size_t)B * sizeof *r.rngs);
    seeds = malloc((size_t)B * sizeof *seeds);
    r.preview_z = malloc(per_max * sizeof *r.preview_z);
    /* lf_model_preview's contract: a TAESD decoder writes the latent x8,
     * whatever the VAE's scale (a tiny VAE's x2 would give a smaller image
     * buffer: such a preview is dropped in s_preview, never overflows). */
    const size_t taesd_px = per_max / (size_t)d->latent_channels * 64;
    r.preview_rgb = malloc((taesd_px > npix_max ? taesd_px : npix_max) * 3);
    img = malloc(3 * npix_max * sizeof *img);
    rgb = malloc(npix_max * 3);
    images = calloc((size_t)B, sizeof *images);
    if (!x || !r.x_in || !r.out || !r.t || (need_uncond && !r.uncond) || !r.rngs || !seeds || !r.preview_z ||
        !r.preview_rgb || !img || !rgb || !images) {
        rc = s_fail(err, errlen, LF_ENOMEM, "out of memory for %dx%d x%d", req.width, req.height, B);
        goto done;
    }
    if (s_cancelled(hooks)) {
        rc = LF_ECANCELED;
        goto done;
    }
    if (req.n_rows && d->family == LF_FAMILY_FLUX)
        rc = s_fail(err, errlen, LF_EUNSUPPORTED, "batched jobs: not for Flux yet");
    else if (req.n_rows)
        rc = s_condition_rows(ctx, d, &req, B, guided, tok.n, &cond, &vec, err, errlen);
    else
        rc = d->family == LF_FAMILY_FLUX ? s_condition_flux(ctx, ctx->model, d, &req, &tok, &cond, &vec, err, errlen)
                                         : s_condition(ctx, ctx->model, d, &req, &tok, guided, &cond, &vec, err, errlen);
    if (rc != 0) goto done;
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
    for (int j = 0, b = 0; j < (req.n_rows ? req.n_rows : 1); j++) {
        const lf_pipeline_request_t rj = req.n_rows ? s_row_req(&req, j) : req;
        for (int i = 0; i < rj.batch; i++, b++) seeds[b] = rj.seed + (uint64_t)i;
    }
    for (int b = 0; b < B; b++) {
        lf_rng_init(&r.rngs[b], req.rng, seeds[b]);
        lf_rng_randn(&r.rngs[b], x + (size_t)b * per, per);
    }
    const double s0 = sigmas[start];
    if (req.init_image) {
        if ((rc = s_init_image(&req, img, &inp, err, errlen)) != 0) goto done;
        /* The infotext tells what ran: a blank "only masked" mask is plain
         * img2img (A1111 keeps only its mask mode and blur keys). */
        if (req.mask && !inp.active) req.inpaint_full_res = 0, req.inpainting_fill = 1;
        if (s_cancelled(hooks)) {
            rc = LF_ECANCELED;
            goto done;
        }
        rc = ctx->ops->vae_encode(ctx->model, img, 1, req.height, req.width, req.vae_tile, r.x_in);
        if (rc != 0) {
            rc = s_fail(err, errlen, rc, "VAE encoder failed: %s", lf_strerror(rc));
            goto done;
        }
        /* The init latent per image: "latent noise" puts the image's own
         * first noise (A1111's create_random_tensors of its seed) in the
         * masked part, "latent nothing" zeros. */
        inp.z0 = malloc((size_t)B * per * sizeof *inp.z0);
        if (!inp.z0) {
            rc = s_fail(err, errlen, LF_ENOMEM, "out of memory for the init latents");
            goto done;
        }
        if (inp.active) {
            inp.nmask = malloc(hw * sizeof *inp.nmask);
            rc = inp.nmask ? lf_inpaint_latent_mask(inp.mask, req.width, req.height, inp.nmask, w, h) : LF_ENOMEM;
            if (rc) {
                rc = s_fail(err, errlen, rc, "cannot make the latent mask: %s", lf_strerror(rc));
                goto done;
            }
        }
        const float mult = req.initial_noise_multiplier > 0 ? (float)req.initial_noise_multiplier : 1.0f;
        for (int b = 0; b < B; b++)
            for (size_t k = 0; k < per; k++) {
                float z = (r.x_in[k] - d->shift_factor) * d->scaling_factor, nz = x[(size_t)b * per + k];
                if (inp.active) {
                    const float m = inp.nmask[k % hw];
                    if (req.inpainting_fill == 2) z = z * (1.0f - m) + nz * m;
                    else if (req.inpainting_fill == 3) z = z * (1.0f - m);
                }
                inp.z0[(size_t)b * per + k] = z;
                /* flow matching mixes: (1 - sigma) x0 + sigma noise */
                x[(size_t)b * per + k] = d->prediction == LF_PRED_FLOW
                                             ? (float)(z * (1.0 - s0) + (nz * mult) * s0)
                                             : (float)(z + (nz * mult) * s0);
            }
        if (inp.active) r.nmask = inp.nmask, r.z0 = inp.z0;
    } else {
        for (size_t k = 0; k < (size_t)B * per; k++) x[k] = (float)(x[k] * s0);
    }
    /* An inpainting UNet's conditioning: [mask, latent of the masked image]
     * (A1111's inpainting_image_conditioning / txt2img_image_conditioning). */
    if (cc) {
        const int C = d->latent_channels;
        const size_t N = (size_t)req.width * req.height;
        float *m = malloc(N * sizeof *m);
        inp.concat = malloc((size_t)cc * hw * sizeof *inp.concat);
        if (!m || !inp.concat || cc != C + 1) {
            free(m);
            rc = s_fail(err, errlen, cc != C + 1 ? LF_EUNSUPPORTED : LF_ENOMEM,
                        cc != C + 1 ? "a denoiser with %d extra input channels is not an inpainting UNet"
                                    : "out of memory for the inpainting conditioning", cc);
            goto done;
        }
        const double wgt = req.inpainting_mask_weight < 0 ? 1.0 : req.inpainting_mask_weight;
        for (size_t p = 0; p < N; p++) m[p] = inp.mask ? rintf(inp.mask[p] / 255.0f) : 1.0f;
        if (!req.init_image) {
            memset(img, 0, 3 * N * sizeof *img); /* torch.ones * 0.5 in [0, 1] */
        } else {
            for (int c = 0; c < 3; c++)
                for (size_t p = 0; p < N; p++) {
                    float src = img[(size_t)c * N + p]; /* torch.lerp(src, src * (1 - m), weight) */
                    img[(size_t)c * N + p] = (float)(src + wgt * (src * (1.0f - m[p]) - src));
                }
        }
        rc = lf_resize_latent(m, 1, req.height, req.width, inp.concat, h, w, LF_RESIZE_NEAREST, 0);
        if (!req.init_image) for (size_t p = 0; p < hw; p++) inp.concat[p] = 1.0f;
        free(m);
        if (rc == 0) rc = ctx->ops->vae_encode(ctx->model, img, 1, req.height, req.width, req.vae_tile, r.x_in);
        if (rc != 0) {
            rc = s_fail(err, errlen, rc, "inpainting conditioning failed: %s", lf_strerror(rc));
            goto done;
        }
        for (size_t k = 0; k < (size_t)C * hw; k++) inp.concat[hw + k] = (r.x_in[k] - d->shift_factor) * d->scaling_factor;
        r.concat = inp.concat;
    }

    lf_sampler_opts_t so = lf_sampler_opts(s_denoise, &r);
    so.noise = s_noise;
    so.noise_ctx = &r;
    so.step = s_step;
    so.step_ctx = &r;
    so.uncond = cfgpp ? r.uncond : NULL;
    so.schedule = &r.sched;
    if (req.has_tcd_gamma) so.gamma = req.tcd_gamma;
    so.flow = d->prediction == LF_PRED_FLOW; /* re-noising as ComfyUI's CONST model sampling */
    /* Step caching: one state per pass (lf_stepcache keys its tensors by
     * network too, so the refiner starts over). */
    /* Not on an inpainting UNet's extra input channels (cached parts take the latent only). */
    if (req.cache.kind != LF_STEPCACHE_NONE && ctx->ops->denoise_cached && !cc) {
        r.sc = lf_stepcache_new(&req.cache);
        if (!r.sc) {
            const char *field = "kind";
            lf_stepcache_opts_check(&req.cache, &field);
            rc = s_fail(err, errlen, LF_EINVAL, "bad cache option '%s'", field ? field : "?");
            goto done;
        }
    }
    /* Base over sigmas[start..split], then the refiner over the rest. */
    r.steps_pass = split - start;
    rc = split > start ? lf_sampler_run(req.sampler, &so, sigmas + start, split - start, x, (size_t)B * per)
                       : 0;
    if (rc == 0 && rd && !s_cancelled(hooks)) {
        r.model = ctx->refiner, r.desc = rd, r.cond = rcond, r.vec = rvec, r.step_base = split - start;
        r.step_now = 0;
        r.steps_pass = req.steps - split;
        if (r.sc) lf_stepcache_reset(r.sc);
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
    /* The final latent blend (A1111's sample: samples * nmask + z0 * mask). */
    if (inp.active)
        for (size_t k = 0; k < (size_t)B * per; k++) {
            const float m = inp.nmask[k % hw];
            x[k] = x[k] * m + inp.z0[k] * (1.0f - m);
        }
    if (inp.active && !(orgb = malloc((size_t)inp.ow * inp.oh * 3))) {
        rc = s_fail(err, errlen, LF_ENOMEM, "out of memory for the overlay");
        goto done;
    }

    /* Hires-Fix: upscale, then an img2img pass at the new size over the
     * same bar (lf_pipeline.h). */
    if (hires) {
        if ((rc = s_hires_upscale(ctx, &req, &r, &hp, x, img, rgb, err, errlen)) != 0) goto done;
        const int h2 = hp.size.height / f, w2 = hp.size.width / f;
        r.h = h2, r.w = w2, r.per = (size_t)d->latent_channels * (size_t)h2 * (size_t)w2;
        r.model = ctx->model, r.desc = d, r.step_base = r.steps - hp.steps;
        r.cfg = hp.cfg, r.guided = hp.guided;
        lf_pipeline_request_t req2 = req;
        if (req.hires.prompt && *req.hires.prompt) req2.prompt = req.hires.prompt;
        if (req.hires.negative && *req.hires.negative) req2.negative = req.hires.negative;
        /* The first pass's conditioning serves again unless the prompts or the
         * guidance differ (the text encoders are seconds on SDXL). */
        if (req2.prompt != req.prompt || req2.negative != req.negative || hp.guided != guided) {
            const int token_count = tok.token_count;
            free(tok.ids), free(tok.weights), free(cond), free(vec);
            tok = (s_tokens_t){0}, cond = NULL, vec = NULL;
            if ((rc = s_tokenize(ctx, &req2, hp.guided, &tok, err, errlen)) != 0) goto done;
            tok.token_count = token_count;
            if ((rc = s_condition(ctx, ctx->model, d, &req2, &tok, hp.guided, &cond, &vec, err, errlen)) != 0)
                goto done;
        }
        r.cond = cond, r.vec = vec, r.cond_len = (int)tok.n * LF_CLIP_CONTEXT;
        double *sig2 = malloc(((size_t)hp.total + 1) * sizeof *sig2);
        if (!sig2) {
            rc = s_fail(err, errlen, LF_ENOMEM, "out of memory");
            goto done;
        }
        if ((rc = s_sigmas_ex(&r.sched, flow, hp.size.up_h / f, hp.size.up_w / f, hp.scheduler, hp.total, 1.0,
                              sig2)) < 0) {
            free(sig2);
            rc = s_fail(err, errlen, rc, "cannot build the %s schedule", lf_scheduler_name(hp.scheduler));
            goto done;
        }
        /* A fresh generator per image, as A1111's new ImageRNG for the pass. */
        for (int b = 0; b < B; b++) {
            lf_rng_init(&r.rngs[b], req.rng, req.seed + (uint64_t)b);
            lf_rng_randn(&r.rngs[b], r.out, r.per);
            float *xb = x + (size_t)b * r.per;
            for (size_t k = 0; k < r.per; k++) xb[k] = (float)(xb[k] + r.out[k] * sig2[hp.start]);
        }
        so.uncond = hp.cfgpp ? r.uncond : NULL;
        /* Step caching starts over at the new size (its buffers are sized by use). */
        r.step_now = 0;
        r.steps_pass = hp.steps;
        if (r.sc) lf_stepcache_reset(r.sc);
        rc = lf_sampler_run(hp.sampler, &so, sig2 + hp.start, hp.steps, x, (size_t)B * r.per);
        free(sig2);
        if (rc == LF_ECANCELED || s_cancelled(hooks)) {
            rc = LF_ECANCELED;
            goto done;
        }
        if (rc != 0) {
            rc = s_fail(err, errlen, rc, r.model_rc ? "denoiser failed: %s" : "sampler failed: %s",
                        lf_strerror(rc));
            goto done;
        }
    }

    /* Decode one image at a time (bounded memory), then PNG + parameters. */
    for (int b = 0; b < B; b++) {
        if (s_cancelled(hooks)) {
            rc = LF_ECANCELED;
            goto done;
        }
        /* The model that ran last decodes (the refiner's VAE after it). */
        float *z = x + (size_t)b * r.per;
        for (size_t k = 0; k < r.per; k++) z[k] = z[k] / r.desc->scaling_factor + r.desc->shift_factor;
        rc = ctx->ops->vae_decode(r.model, z, 1, r.h, r.w, req.vae_tile, img);
        if (rc != 0) {
            rc = s_fail(err, errlen, rc, "VAE decoder failed: %s", lf_strerror(rc));
            goto done;
        }
        const char *rname = rd ? (ctx->refiner_name ? ctx->refiner_name : "refiner") : NULL;
        const size_t ow = (size_t)(r.w * f), oh = (size_t)(r.h * f); /* the Hires-Fix size after a second pass */
        s_to_rgb8(img, ow, oh, rgb);
        if (inp.active && (rc = s_apply_overlay(&inp, rgb, req.width, req.height, orgb)) != 0) {
            rc = s_fail(err, errlen, rc, "cannot composite the result: %s", lf_strerror(rc));
            goto done;
        }
        const double cmw = cc ? (req.inpainting_mask_weight < 0 ? 1.0 : req.inpainting_mask_weight) : NAN;
        /* A batched row's image: its own request, its index in the row. */
        int row = 0, index = b;
        while (req.n_rows && index >= s_row_req(&req, row).batch) index -= s_row_req(&req, row++).batch;
        const lf_pipeline_request_t rb = req.n_rows ? s_row_req(&req, row) : req;
        const double gd = d->guidance_embed ? (req.guidance > 0 ? req.guidance : 3.5) : NAN;
        if ((rc = s_encode_png(&rb, ctx->model_name, ctx->vae_name, rname, cmw, gd, index, inp.active ? orgb : rgb,
                               inp.active ? (size_t)inp.ow : ow,
                               inp.active ? (size_t)inp.oh : oh, &images[b], err, errlen)) != 0)
            goto done;
        n_done++;
    }
    out->images = images;
    out->n_images = (size_t)B;
    out->steps_run = r.steps;
    out->token_count = tok.token_count;
    out->model_calls_full = r.calls_full + (r.sc ? lf_stepcache_full(r.sc) : 0);
    out->model_calls_cached = r.sc ? lf_stepcache_reused(r.sc) : 0;
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
    free(seeds);
    free(r.preview_z);
    free(r.preview_rgb);
    lf_stepcache_destroy(&r.sc);
    free(img);
    free(rgb);
    free(orgb);
    s_inpaint_clear(&inp);
    return rc;
}
