/* lf_pipeline: Stable Diffusion txt2img / img2img over a loaded model —
 * tokenize → encode text → initial noise → sample → VAE decode → PNG with
 * the A1111 "parameters" text chunk.
 *
 * The pipeline reaches the networks only through an lf_model_ops_t table
 * whose functions have lf_model.h's signatures. The engine (lf_engine.c)
 * passes the real table (lf_model_load, lf_model_denoise, ...); unit tests
 * pass a test double (tests/engine/lf_fake_model.c). Nothing here defaults
 * to a double.
 *
 * Conventions (all chosen to reproduce A1111 for the same settings):
 *  - Prompts: A1111 syntax (lf_prompt), 75-token chunks, comma backtrack 20.
 *    When the prompt and negative prompt have different chunk counts the
 *    shorter one is padded with chunks of the empty prompt "", as A1111
 *    does with its "pad prompt/negative prompt" option (pad_cond_uncond).
 *    Without that option A1111 would run the two lengths in separate
 *    passes; padding always is what keeps cond and uncond in one batch.
 *  - Classifier-free guidance: cond and uncond go through the denoiser in
 *    ONE batch of 2B (the B conds first, then the B unconds, as A1111), and
 *    denoised = uncond + cfg * (cond - uncond). cfg == 1 skips the negative
 *    prompt entirely: no uncond encoding and batch B.
 *  - Denoiser: k-diffusion wrappers. eps: c_in = 1/sqrt(sigma^2+1),
 *    t = sigma_to_t(sigma), denoised = x - sigma*eps. v (CompVisVDenoiser,
 *    sigma_data 1): c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1),
 *    denoised = c_skip*x + c_out*v.
 *  - Noise: image i of a batch uses seed + i and draws its noise from its
 *    own generator seeded with that seed (A1111's ImageRNG); ancestral/SDE
 *    samplers continue each image's generator for their per-step noise.
 *  - img2img: A1111's default step rule (img2img_fix_steps off): with
 *    t_enc = int(min(denoise, 0.999) * steps), the sampler runs the last
 *    t_enc + 1 steps of the full steps-step schedule, starting from
 *    x = z0 + noise * sigmas[steps - t_enc - 1]. The init image is decoded
 *    (lf_image), resized to the target size with PIL's BILINEAR filter
 *    (triangle filter widened when downscaling, so it averages), mapped to
 *    [-1, 1], VAE-encoded (mean) and multiplied by scaling_factor.
 *  - Output: clamp((x + 1) / 2, 0, 1) * 255 truncated to 8 bits (A1111's
 *    astype(np.uint8)).
 *  - Vector conditioning (SDXL: desc pooled_dim / n_time_ids > 0): per
 *    batch item the pooled embedding of the prompt's (uncond: the negative
 *    prompt's) FIRST chunk, as A1111/ComfyUI, then the time ids: base
 *    [orig_h, orig_w, crop_top, crop_left, target_h, target_w] (the same for
 *    the uncond, as diffusers and A1111), refiner [orig_h, orig_w, crop_top,
 *    crop_left, aesthetic score] (the negative score for the uncond). An
 *    EMPTY negative prompt gives an all-zero uncond (text and pooled) for
 *    such models, as A1111 (sd_models_xl.py: force_zero_negative_prompt,
 *    base and refiner) and diffusers (force_zeros_for_empty_prompt); SD1.x
 *    encodes "" as before.
 *  - Refiner (ctx->refiner, 0 < refiner_switch_at = f < 1): the base runs
 *    the steps whose timestep t(sigma) >= round(1000 - 1000 f) and the
 *    refiner, with its own text encoding and time ids, continues from the
 *    base's latent over the rest of the same sigma list as a second sampler
 *    run (diffusers denoising_end / denoising_start; multistep samplers
 *    restart their history there, as diffusers' second scheduler does,
 *    where A1111 swaps the model inside one run). Each image's generator
 *    continues. The refiner's VAE decodes; the infotext gets "Refiner" and
 *    "Refiner switch at".
 *  - Inpainting (a mask with the init image), A1111's StableDiffusion-
 *    ProcessingImg2Img: the mask (luma; inverted on request; blurred) is
 *    resized to the job size (LANCZOS; "only masked": the padded, expanded
 *    mask box of the init image is cropped and resized to the job size, and
 *    the result is resized back and pasted there, so the image keeps the
 *    init image's size); "fill" / "latent noise" / "latent nothing" fill
 *    the masked pixels (masking.fill) before encoding, and the latter two
 *    replace the masked latent by the image's own first noise / zeros. The
 *    latent mask (bicubic to the latent size, rounded) blends every step's
 *    denoised estimate with the init latent, denoised * m + z0 * (1 - m)
 *    (A1111's CFGDenoiser, after the guidance mix), and the final latent
 *    likewise; the decoded image is alpha-composited under the original
 *    with the blurred mask (doubled for "whole picture"), so pixels outside
 *    the blurred mask are the (resized) init image's bytes. Inpainting UNets
 *    (desc concat_channels) get [mask rounded and nearest-downsampled, VAE
 *    latent of image * (1 - weight * mask)] after the latent, for cond and
 *    uncond alike; txt2img on them gets [1, latent of a mid-grey image] and
 *    unmasked img2img [1, latent of image * (1 - weight)], as A1111. The
 *    infotext adds "Mask mode", "Mask blur", "Inpaint area", "Masked area
 *    padding", "Masked content" and "Noise multiplier" as A1111 writes them.
 *  - Hires-Fix (req->hires; A1111's txt2img second pass, lf_hires.h for
 *    the size, step and pixel-upscale rules): after the first pass the
 *    latent is resized ("Latent ..." upscalers: lf_resize_latent as torch's
 *    interpolate) or decoded, cut to 8 bits, upscaled ("None", "Lanczos",
 *    "Nearest", or a model through ctx->upscale), mapped to [-1, 1] and
 *    VAE-encoded (mean); cropped by A1111's truncate_x/y; then an img2img
 *    pass at the new size: each image's generator is seeded afresh with
 *    its seed (A1111 builds a new ImageRNG), the noise drawn at the new
 *    shape, over the last hr_steps (0 = steps) of an int(hr_steps /
 *    min(denoise, 0.999))-step schedule (A1111's explicit-steps rule), with
 *    the hires sampler / scheduler / prompts / CFG when given. Progress is
 *    one bar over both passes; previews come from both.
 *
 * Threading: one run at a time per model (the model is single-threaded);
 * the cancel flag may be raised from any thread. Ownership: request fields
 * are borrowed for the call; results are caller-owned
 * (lf_pipeline_result_clear). */
#ifndef LF_PIPELINE_H
#define LF_PIPELINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_clip_tokenizer.h"
#include "lf_model.h"
#include "lf_rng.h"
#include "lf_sampler.h"
#include "lf_schedule.h"
#include "lf_t5_tokenizer.h"

/* The networks as the pipeline sees them: lf_model.h's functions. */
typedef struct lf_model_ops {
    const char *name; /* "lf_model" for the real one; doubles say what they are */
    int (*load)(const char *path, const lf_model_opts_t *opts, lf_model_t **out, char *err,
                size_t errlen);
    void (*destroy)(lf_model_t **self_p);
    const lf_model_desc_t *(*desc)(const lf_model_t *self);
    int (*encode_text)(lf_model_t *self, const int32_t *ids, const float *weights, size_t n_chunks,
                       int clip_skip, float *out, float *pooled);
    int (*denoise)(lf_model_t *self, const float *x, int batch, int h, int w, const float *t,
                   const float *cond, int cond_len, const float *vec, float *out);
    int (*vae_decode)(lf_model_t *self, const float *z, int batch, int h, int w, int tile,
                      float *img);
    /* The denoiser with step caching (lf_model_denoise_cached); NULL when the
     * model has none: a request's cache options are then ignored. */
    int (*denoise_cached)(lf_model_t *self, lf_stepcache_t *sc, const float *x, int batch, int h,
                          int w, const float *t, const float *cond, int cond_len,
                          const float *vec, float *out);
    int (*vae_encode)(lf_model_t *self, const float *img, int batch, int H, int W, int tile,
                      float *mean);
    int (*preview)(lf_model_t *self, const float *z, int h, int w, uint8_t *rgb, int *out_w,
                   int *out_h);
    /* LoRAs (lf_model_set_loras); NULL when the model cannot take them. */
    int (*set_loras)(lf_model_t *self, const lf_lora_use_t *uses, size_t n,
                     lf_lora_patch_info_t *info, char *err, size_t errlen);
    /* Whether a LoRA file matches this model entirely (lf_model_lora_fits):
     * the facade gives a refiner only such LoRAs. NULL: none does. */
    int (*lora_fits)(lf_model_t *self, const char *path);
    /* Flux's T5 states (lf_model_encode_t5); NULL: a Flux model is refused. */
    int (*encode_t5)(lf_model_t *self, const int32_t *ids, size_t n, float *out);
    /* Compute precision (lf_model_set_precision); NULL: always f32. */
    lf_precision_t (*set_precision)(lf_model_t *self, lf_precision_t p);
    /* Pre-packed weights (lf_model_set_pack); NULL: none are made. */
    lf_pack_t (*set_pack)(lf_model_t *self, lf_pack_t p, const char *dir);
    /* Bytes the loaded weights take (lf_model_weight_bytes), what the
     * engine's memory budget counts; NULL: the model files' sizes. */
    uint64_t (*weight_bytes)(const lf_model_t *self);
} lf_model_ops_t;

/* What the pipeline runs on (all borrowed). */
typedef struct {
    const lf_model_ops_t *ops;
    lf_model_t *model;
    lf_clip_tokenizer_t *tokenizer;
    lf_t5_tokenizer_t *t5_tokenizer; /* Flux's T5 tokenizer; NULL for the other families */
    const char *model_name; /* for the infotext "Model" key; may be NULL */
    lf_model_t *refiner;    /* SDXL refiner (same ops), or NULL */
    const char *refiner_name; /* for the infotext "Refiner" key; may be NULL */
    const char *vae_name;   /* a separate VAE the model was loaded with, for the
                             * infotext "VAE" key (A1111's); NULL = the checkpoint's */
    /* Hires-Fix with an upscaler model (req->hires.upscaler not a built-in
     * name): one run of the model on an RGB8 image (lf_hires_model_fn);
     * NULL = no models (such a request is refused). */
    int (*upscale)(void *ud, const uint8_t *src, int sw, int sh, uint8_t **dst, int *dw, int *dh);
    void *upscale_ud;
} lf_pipeline_ctx_t;

/* Hires-Fix settings (A1111's names in comments). */
typedef struct {
    int enable;             /* enable_hr */
    double scale;           /* hr_scale, when resize_x == resize_y == 0 */
    int resize_x, resize_y; /* hr_resize_x / _y */
    const char *upscaler;   /* hr_upscaler: a built-in name (lf_resize_builtin_find) or a
                               model's, run through ctx->upscale; NULL = "Latent" */
    int steps;              /* hr_second_pass_steps; 0 = the request's steps */
    int sampler;            /* hr_sampler_name: an lf_sampler_kind_t, or -1 = the request's */
    int scheduler;          /* hr_scheduler: an lf_scheduler_t, or -1 = the request's */
    const char *prompt;     /* hr_prompt; NULL or "" = the request's */
    const char *negative;   /* hr_negative_prompt; NULL or "" = the request's */
    const char *infotext_prompt; /* hr_prompt as the infotext shows it; NULL = prompt */
    double cfg;             /* hr_cfg; 0 = the request's cfg */
} lf_pipeline_hires_t;

#define LF_PIPELINE_MAX_BATCH 64
/* Batched rows: at most this many UNet rows (images x 2 with CFG): a
 * bound on the batch's activations. A row's bytes do not depend on the
 * batch in the CPU's batch-invariant mode (LF_CPU_PER_IMAGE=1, a batching
 * worker's): the UNet's matrix products and convolutions run one image per
 * kernel call (lf_graph_set_images; docs/PERFORMANCE.md, "Batched jobs"). */
#define LF_PIPELINE_BATCH_ROWS_MAX 8

/* One job of a batch of jobs (lf_pipeline_request_t.rows): what may differ
 * between jobs that run as one UNet batch. */
typedef struct {
    const char *prompt;          /* NULL = "" */
    const char *negative;        /* NULL = "" */
    const char *infotext_prompt; /* NULL = prompt */
    uint64_t seed;               /* image i of the row uses seed + i */
    int batch;                   /* images of the row; 0 means 1 */
    /* The row's own progress (NULL = none), after each step as the hooks'
     * progress, with the preview of the row's first image: what the row
     * alone would preview (the hooks' preview is the batch's first image). */
    void (*progress)(void *ud, int step, int steps, const uint8_t *preview, size_t preview_len);
    void *progress_ud;
} lf_pipeline_row_t;
#define LF_PIPELINE_MAX_STEPS 1000
#define LF_PIPELINE_MAX_SIDE 4096

typedef struct {
    const char *prompt;   /* NULL = "" */
    const char *negative; /* NULL = "" */
    lf_sampler_kind_t sampler;
    lf_scheduler_t scheduler;
    int steps;            /* 1..LF_PIPELINE_MAX_STEPS */
    double cfg;           /* guidance scale; 1 = no negative pass, and 0 = none either (the
                             positive prompt alone, as diffusers' guidance_scale 0 that
                             SDXL-Turbo's model card uses; not the negative alone). Flux
                             runs unguided: 0 or 1 only (its guidance is the next field) */
    double guidance;      /* Flux dev's distilled guidance (Forge's "Distilled CFG Scale");
                             0 = 3.5, FluxPipeline's default; schnell ignores it */
    uint64_t seed;        /* image i uses seed + i */
    int width, height;    /* multiples of the model's vae_scale (8) */
    int batch;            /* 1..LF_PIPELINE_MAX_BATCH; 0 means 1 */
    lf_rng_kind_t rng;
    int clip_skip;        /* 1 = last layer (0 means 1) */
    /* img2img when init_image != NULL: encoded PNG/JPEG/WebP bytes. */
    const uint8_t *init_image;
    size_t init_image_len;
    double denoise;       /* img2img strength, (0, 1] */
    int preview_every;    /* a preview every N steps but the last; 0 = none */
    int vae_tile;         /* passed to the VAE (0 = whole image) */
    /* SDXL micro-conditioning (families without it ignore these). 0 means
     * A1111's default: original = target = the image size, crop 0,0. */
    int orig_width, orig_height;
    int crop_top, crop_left;
    int target_width, target_height;
    /* Refiner aesthetic scores (A1111: sdxl_refiner_high/low_aesthetic_score);
     * 0 means 6.0 for the prompt and 2.5 for the negative prompt. */
    double aesthetic_score, negative_aesthetic_score;
    /* Refiner hand-off: with ctx->refiner set and 0 < refiner_switch_at < 1,
     * the base runs the steps before that fraction of the schedule and the
     * refiner the rest, on the base's latent (A1111 refiner_switch_at,
     * diffusers denoising_end / denoising_start). */
    double refiner_switch_at;
    /* The infotext's prompt when it is not the prompt tokenized (the
     * facade cuts A1111's <lora:...> tags out of the prompt but the
     * infotext keeps them, as A1111's does); NULL = prompt. */
    const char *infotext_prompt;
    /* A1111's "Lora hashes" value ("name: hash12, ..."), written last in
     * the infotext; NULL = none. */
    const char *lora_hashes;
    /* Inpainting (img2img only; A1111's img2img fields, see "Inpainting"
     * above): mask = encoded PNG/JPEG/WebP, white = repaint, any size (it
     * is resized as A1111 resizes it); NULL = none. */
    const uint8_t *mask;
    size_t mask_len;
    double mask_blur_x, mask_blur_y;  /* Gaussian sigma in pixels; 0 = none (A1111 default 4) */
    int inpainting_fill;              /* 0 fill, 1 original, 2 latent noise, 3 latent nothing */
    int inpaint_full_res;             /* 1: "Only masked": the padded mask region at the job size */
    int inpaint_full_res_padding;     /* pixels around the mask's box (A1111 default 32) */
    int inpainting_mask_invert;       /* 1: repaint the black part */
    /* Initial noise scale (A1111's initial_noise_multiplier; img2img); 0 = 1. */
    double initial_noise_multiplier;
    /* Inpainting UNets: how much of the masked part the conditioning image
     * hides (A1111's inpainting_mask_weight, default 1; 0 = the whole image
     * shows). Negative = 1. */
    double inpainting_mask_weight;
    /* Hires-Fix (txt2img only); denoise is its strength. The request's
     * width/height are the first pass's. */
    lf_pipeline_hires_t hires;
    /* Step caching (lf_stepcache.h); kind LF_STEPCACHE_NONE (zero) runs the
     * whole denoiser every time, as without. One lf_stepcache per sampling
     * pass (base, then refiner); the infotext writes "Cache: ..." when on. */
    lf_stepcache_opts_t cache;
    /* Few-step models. The tcd sampler's gamma (diffusers' TCDScheduler
     * eta, in [0, 1]) when has_tcd_gamma, else 0.3 as diffusers'. Explicit
     * training timesteps instead of the scheduler's (diffusers' pipeline
     * timesteps=, e.g. Hyper-SD's 1-step [800]): n_timesteps == steps,
     * strictly descending, 0..999 (lf_schedule_sigmas_at); NULL = none.
     * They make the first pass's schedule only (not Hires-Fix's). */
    int has_tcd_gamma;
    double tcd_gamma;
    const int *timesteps;
    int n_timesteps;
    /* Batched jobs (a worker's batch): n_rows > 0 replaces prompt, negative,
     * infotext_prompt, seed and batch by the rows'. Row j's images follow
     * row j-1's (n_images = the sum of the rows' batches, at most
     * LF_PIPELINE_MAX_BATCH), each made exactly as the row alone would make
     * it: its own text encoding (one encoder call per row, as alone), its
     * own generators, its cond rows among the batch's conds and its uncond
     * rows among the unconds; every step is element-wise per image, so a
     * row's bytes do not depend on the others as long as the networks'
     * rows do not (tests/engine/test_pipeline_batch.c checks both on the
     * built-in model; in LF_CPU_PER_IMAGE=1 the networks' kernels run one
     * image per call: LF_PIPELINE_BATCH_ROWS_MAX).
     * LF_EUNSUPPORTED for img2img, Hires-Fix, a refiner, step caching (its
     * decision looks at the whole batch), an inpainting UNet, and rows whose
     * prompts or negative prompts need different numbers of 75-token
     * chunks (the batch shares one conditioning length): the caller runs
     * such jobs alone. */
    const lf_pipeline_row_t *rows;
    int n_rows;
    /* "bf16" when the matrix products ran in bf16 (the infotext's
     * "Precision"), NULL for f32, the reference. Static. */
    const char *precision;
} lf_pipeline_request_t;

/* Progress after each sampler step: step is 1-based of steps (the steps the
 * sampler actually runs: fewer for img2img). preview is a PNG or NULL
 * (borrowed for the call). */
typedef void (*lf_pipeline_progress_fn)(void *ud, int step, int steps, const uint8_t *preview,
                                        size_t preview_len);

typedef struct {
    lf_pipeline_progress_fn progress; /* may be NULL */
    void *progress_ud;
    const atomic_bool *cancel;        /* may be NULL; checked every model call and step */
} lf_pipeline_hooks_t;

typedef struct {
    uint8_t *png;     /* owned: the PNG file with the "parameters" chunk */
    size_t png_len;
    char *infotext;   /* owned: the same parameters text */
    uint64_t seed;
    int width, height;
} lf_pipeline_image_t;

typedef struct {
    lf_pipeline_image_t *images; /* owned; n_images = batch */
    size_t n_images;
    int steps_run;               /* sampler steps actually run (both passes with Hires-Fix) */
    int token_count;             /* A1111 token count of the prompt */
    int model_calls_full;        /* denoiser evaluations that ran the whole network */
    int model_calls_cached;      /* ... that reused a cached part (step caching) */
} lf_pipeline_result_t;

/* Runs one request. On success fills *out (zeroed on entry; caller owns,
 * lf_pipeline_result_clear). Errors: LF_EINVAL (bad request; reason in
 * err), LF_ECANCELED, LF_ENOMEM, LF_EFORMAT / LF_ELIMIT / LF_ETOOBIG (init
 * image), or the model's code. On failure *out is untouched. */
int lf_pipeline_run(const lf_pipeline_ctx_t *ctx, const lf_pipeline_request_t *req,
                    const lf_pipeline_hooks_t *hooks, lf_pipeline_result_t *out, char *err,
                    size_t errlen);
void lf_pipeline_result_clear(lf_pipeline_result_t *r);

/* The sigma schedule a request samples over: writes steps + 1 values of the
 * full schedule into full (caller's buffer) and returns the index of the
 * first sigma the sampler starts from (0 for txt2img; steps - t_enc - 1 for
 * img2img, see above). denoise <= 0 or >= 1 means txt2img. Returns a
 * negative LF_E* code for bad steps / scheduler. Over the SD1.x schedule with
 * the SD1 Align Your Steps levels; a run uses its model family's levels. */
int lf_pipeline_sigmas(lf_scheduler_t scheduler, int steps, double denoise, double *full);
/* The same for a flow model (d->prediction LF_PRED_FLOW) at h x w latent
 * pixels: FluxPipeline's sigmas (lf_schedule_flow_sigmas; dev's shift from
 * the image's 2x2-patch count as FluxPipeline's calculate_shift, schnell's
 * static shift) for "normal" and "simple"; another scheduler is
 * LF_EUNSUPPORTED. LF_EINVAL for a model that is not a flow model. */
int lf_pipeline_flow_sigmas(const lf_model_desc_t *d, int h, int w, lf_scheduler_t scheduler, int steps,
                            double denoise, double *full);

/* Resizes RGB8 src (sw x sh) to dst (dw x dh) with PIL's BILINEAR filter
 * (support widened by the scale when shrinking), bit for bit: it is
 * lf_resize_rgb8(..., LF_RESIZE_BILINEAR). Pure; returns 0, LF_EINVAL
 * or LF_ENOMEM. */
int lf_pipeline_resize_rgb8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

/* The A1111 parameters text for image `index` of a request (seed + index),
 * *out caller owns (free()). Returns 0 or LF_ENOMEM. (lf_pipeline_run also
 * writes "VAE: name" after the model with ctx->vae_name, and appends
 * "Refiner: name, Refiner switch at: f" when a refiner ran.) */
int lf_pipeline_infotext(const lf_pipeline_request_t *req, const char *model_name, int index,
                         char **out);

#endif
