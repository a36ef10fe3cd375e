/* lf_params: the one declaration of every generation parameter.
 *
 * LF_PARAM_LIST below is the only place a generation parameter is declared.
 * From it come the job parameter struct (lf_job_params_t), the msgpack codec
 * (lf_proto walks the table), the gateway's native and A1111 validators, the
 * job JSON, the OpenAPI job schema and the web UI's form (GET /v1/params),
 * and the A1111 infotext writer and reader. Adding a field is one row here
 * plus the code that uses it (see docs/architecture.md, "Adding a parameter").
 *
 * Columns of a row:
 *   id      struct member and native name (JSON, msgpack, /v1/params)
 *   TYPE    STR (UTF-8 text), ENUM (one of `values`), U32, I64, F64, BOOL,
 *           LORAS (a list of {name, weight, te_weight}: lo..hi entries, names
 *           1..LF_LORA_NAME_MAX bytes like NAME strings, weights within
 *           ±LF_LORA_WEIGHT_LIMIT; step and def: the weights' form step and
 *           default)
 *   a1111   the A1111 API's name for it, or NULL when A1111 has none
 *   AT      where A1111 puts it: NONE, TOP (body), OVERRIDE (override_settings),
 *           SCRIPT (alwayson_scripts)
 *   lo, hi  numbers: the range; STR: the length range in bytes
 *   step    the form's step (with LF_PF_MULTIPLE, the multiple a value must be)
 *   def     numeric default
 *   dstr    string / enum default (NULL: none, or resolved by the caller)
 *   values  ENUM: the lf_param_enum_t list (NULL otherwise)
 *   label   the infotext label ("Steps"), or NULL when it has none
 *   SHOW    when the infotext writes it: NEVER, ALWAYS, IMG2IMG (only with an
 *           init image), NONDEF (only when not the default), SEED (value +
 *           the image's index), SIZE_W / SIZE_H ("Size: WxH", A1111 parses it
 *           back as "Size-1" / "Size-2"), PROMPT, NEGATIVE, REFINER (only
 *           when refiner_checkpoint is set, as A1111 writes its switch point),
 *           HIRES_* (Hires-Fix rows, only with enable_hr; see lf_param_show_t); CACHE
 *           (only with step caching on: see LF_PS_CACHE)
 *   flags   LF_PF_* below
 *   desc    one line for humans (OpenAPI, /v1/params, docs)
 *
 * Rows are in the order A1111's create_infotext writes its labels, so the
 * infotext writer walks the table as it is.
 *
 * Threading: the table is static and const; every function is pure and
 * reentrant. Ownership: lf_job_params_t owns its strings (malloc'd);
 * lf_params_clear frees them. */
#ifndef LF_PARAMS_H
#define LF_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An enum value: our name, the A1111 name, another accepted spelling. */
typedef struct {
    const char *name;
    const char *a1111;
    const char *alias; /* may be NULL */
} lf_param_enum_t;

/* A1111's built-in Hires-Fix upscalers (shared.latent_upscale_modes, then
 * "None", "Lanczos", "Nearest"), NULL-terminated; any other hr_upscaler
 * names an upscaler model a worker has. engine/pipeline/lf_resize holds the
 * same names with their filters. */
extern const char *const lf_param_hr_builtin_upscalers[];
/* Is name one of them (exact, as A1111 compares)? */
bool lf_param_hr_upscaler_builtin(const char *name);
/* How many of them are latent resizes (the first ones). */
#define LF_PARAM_HR_LATENT_UPSCALERS 6

/* NULL-terminated ({NULL}) value lists (lf_params.c). */
extern const lf_param_enum_t lf_param_modes[];
extern const lf_param_enum_t lf_param_samplers[];
extern const lf_param_enum_t lf_param_schedulers[];
extern const lf_param_enum_t lf_param_rngs[];
extern const lf_param_enum_t lf_param_caches[]; /* in lf_stepcache_kind_t order */
extern const lf_param_enum_t lf_param_precisions[]; /* in lf_precision_t order */

/* Flags. */
#define LF_PF_REQUIRED 0x01u    /* must be present on the wire */
#define LF_PF_SCHED 0x02u       /* the broker reads it (capability, scheduling) */
#define LF_PF_MODEL_DEF 0x04u   /* default comes from the model (its resolution) */
#define LF_PF_DIAG 0x08u        /* only the diagnostic model uses it */
#define LF_PF_NAME 0x10u        /* STR: a name, printable, no control characters */
#define LF_PF_ID 0x20u          /* STR: an id, [A-Za-z0-9_.:-] */
#define LF_PF_RANDOM_NEG 0x40u  /* I64: -1 means "random", resolved by the gateway */
#define LF_PF_MULTIPLE 0x80u    /* U32: the value must be a multiple of step (sizes: 8) */

#define LF_SIZE_MIN_REAL 64     /* real models' smallest side; the table's lo is the diagnostic model's */

/* Hires-Fix (A1111's txt2img second pass), a block of its own so the rows
 * of other features merge apart. After "Denoising strength", which a
 * hires pass also writes (A1111 keeps its strength there). The hires_*
 * SHOW kinds write a label only with enable_hr; A1111's parser reads
 * enable_hr back from "Denoising strength" + any "Hires ..." key. */
#define LF__PARAM_HIRES_ROWS(X)                                                                   \
    X(enable_hr, BOOL, "enable_hr", TOP, 0, 1, 1, 0, NULL, NULL, NULL, NEVER, 0,                   \
      "Hires-Fix: upscale the first pass and run a second img2img pass at the larger size")      \
    X(hr_scale, F64, "hr_scale", TOP, 1, 8, 0.05, 2, NULL, NULL, "Hires upscale", HIRES_SCALE, 0,  \
      "Hires-Fix: upscale factor (when hr_resize_x and hr_resize_y are 0)")                      \
    X(hr_resize_x, U32, "hr_resize_x", TOP, 0, 8192, 8, 0, NULL, NULL, "Hires resize", HIRES_RESIZE, \
      0, "Hires-Fix: target width instead of hr_scale (0 = from hr_resize_y and the aspect; "   \
      "both set: A1111's crop to that aspect)")                                                  \
    X(hr_resize_y, U32, "hr_resize_y", TOP, 0, 8192, 8, 0, NULL, NULL, NULL, NEVER, 0,             \
      "Hires-Fix: target height instead of hr_scale (0 = from hr_resize_x and the aspect)")      \
    X(hr_second_pass_steps, U32, "hr_second_pass_steps", TOP, 0, 150, 1, 0, NULL, NULL,            \
      "Hires steps", HIRES_NONDEF, 0, "Hires-Fix: second pass steps (0 = steps)")                \
    X(hr_upscaler, STR, "hr_upscaler", TOP, 1, 128, 0, 0, "Latent", NULL, "Hires upscaler", HIRES, \
      LF_PF_NAME,                                                                                \
      "Hires-Fix upscaler: Latent, Latent (antialiased), Latent (bicubic), Latent (bicubic "      \
      "antialiased), Latent (nearest), Latent (nearest-exact), None, Lanczos, Nearest, or an "    \
      "upscaler model (GET /v1/upscalers)")                                                      \
    X(hr_sampler, ENUM, "hr_sampler_name", TOP, 0, 0, 0, 0, NULL, lf_param_samplers,              \
      "Hires sampler", HIRES_OTHER, 0, "Hires-Fix: sampler of the second pass (unset = sampler)") \
    X(hr_scheduler, ENUM, "hr_scheduler", TOP, 0, 0, 0, 0, NULL, lf_param_schedulers,             \
      "Hires schedule type", HIRES_OTHER, 0,                                                     \
      "Hires-Fix: schedule of the second pass (unset = scheduler)")                              \
    X(hr_prompt, STR, "hr_prompt", TOP, 0, 32768, 0, 0, NULL, NULL, "Hires prompt", HIRES_OTHER, 0, \
      "Hires-Fix: prompt of the second pass (unset or empty = prompt)")                          \
    X(hr_negative_prompt, STR, "hr_negative_prompt", TOP, 0, 32768, 0, 0, NULL, NULL,              \
      "Hires negative prompt", HIRES_OTHER, 0,                                                   \
      "Hires-Fix: negative prompt of the second pass (unset or empty = negative_prompt)")        \
    X(hr_cfg, F64, "hr_cfg", TOP, 0, 100, 0.5, 0, NULL, NULL, "Hires CFG Scale", HIRES_NONDEF, 0,  \
      "Hires-Fix: CFG scale of the second pass (0 = cfg_scale)")

/* The upscale job (mode "upscale"; A1111's extras: /sdapi/v1/extra-single-image
 * maps its upscaler_1, upscaling_resize, upscaling_resize_w/_h onto these). */
#define LF__PARAM_UPSCALE_ROWS(X)                                                                 \
    X(upscaler, STR, NULL, NONE, 1, 128, 0, 0, "Lanczos", NULL, NULL, NEVER, LF_PF_NAME,          \
      "upscale job: None, Lanczos, Nearest or an upscaler model (GET /v1/upscalers)")           \
    X(upscale_by, F64, NULL, NONE, 1, 8, 0.05, 4, NULL, NULL, NULL, NEVER, 0,                      \
      "upscale job: factor (when upscale_width and upscale_height are 0)")                       \
    X(upscale_width, U32, NULL, NONE, 0, 8192, 1, 0, NULL, NULL, NULL, NEVER, 0,                   \
      "upscale job: target width (with upscale_height: scale to cover, then centre-crop)")      \
    X(upscale_height, U32, NULL, NONE, 0, 8192, 1, 0, NULL, NULL, NULL, NEVER, 0,                  \
      "upscale job: target height")

/* Prompt enhancement (gateway/lf_enhance.h): the gateway asks an LLM to
 * rewrite the prompt before the job is queued. enhance_prompt and
 * enhance_instruction are the client's; prompt_original and enhance_error
 * are the farm's (a client's values are dropped by the gateway; the store
 * writes them when the job's "enhancing" stage ends: lf_store_enhanced): the
 * prompt as sent when `prompt` now holds the LLM's, and why the original was kept.
 * The infotext writes "Original prompt" after the other labels. */
#define LF__PARAM_ENHANCE_ROWS(X)                                                                 \
    X(enhance_prompt, BOOL, "enhance_prompt", TOP, 0, 1, 1, 0, NULL, NULL, NULL, NEVER, 0,          \
      "rewrite the prompt with the farm's LLM before generation (the gateway's LF_ENHANCE_URL); "  \
      "on any failure the job goes on with the original prompt and enhance_error says why")     \
    X(enhance_instruction, STR, "enhance_instruction", TOP, 0, 2000, 0, 0, NULL, NULL, NULL, NEVER, \
      0, "prompt enhancement: an extra instruction for the LLM (\"make it a watercolour\")")      \
    X(prompt_original, STR, "prompt_original", TOP, 0, 32768, 0, 0, NULL, NULL, "Original prompt", \
      ALWAYS, 0, "set by the gateway: the prompt as sent, when prompt holds the enhanced one")   \
    X(enhance_error, STR, "enhance_error", TOP, 0, 1024, 0, 0, NULL, NULL, NULL, NEVER, 0,          \
      "set by the gateway: why the prompt was not enhanced (the original was used)")

/* Few-step models (issue 20): the tcd sampler's gamma (A1111's `eta`: A1111
 * hands it to any k-diffusion sampler that takes an eta, as ComfyUI's
 * sample_tcd does; neither A1111 nor Forge ships a TCD sampler, so no
 * client sends anything else) and
 * explicit training timesteps (diffusers' pipeline `timesteps=`; Hyper-SD
 * 1-step: [800]). The native API takes timesteps as an array of integers
 * (or this text); the row holds "999,749,499,249" (lf_param_timesteps_parse).
 * Given without steps, their count is the steps; with steps, the counts
 * must agree (lf_validate). */
#define LF__PARAM_FEWSTEP_ROWS(X)                                                                 \
    X(tcd_gamma, F64, "eta", TOP, 0, 1, 0.05, 0.3, NULL, NULL, "Eta", TCD, 0,                       \
      "tcd sampler: gamma, the noise of each step (diffusers' TCDScheduler / ComfyUI's "          \
      "SamplerTCD eta): 0 deterministic (DDIM-like), 1 LCM-like")                                 \
    X(timesteps, STR, "timesteps", TOP, 1, 1000, 0, 0, NULL, NULL, "Timesteps", ALWAYS, 0,          \
      "explicit training timesteps instead of the scheduler's (diffusers' timesteps=): "          \
      "strictly descending integers in 0..999, one per step (steps omitted: their count), "      \
      "e.g. [800] for Hyper-SD 1-step; none by default")

/* Flux (issue 17): dev's distilled guidance, Forge's distilled_cfg_scale
 * (a top-level txt2img field there, always accepted, used by Flux only).
 * Models without a guidance embedding (schnell, SD1.x, SDXL) ignore it.
 * The pipeline writes "Distilled CFG Scale" for the models that take it
 * (the table cannot tell them), and the label reads it back. */
#define LF__PARAM_FLUX_ROWS(X)                                                                    \
    X(guidance, F64, "distilled_cfg_scale", TOP, 0, 30, 0.1, 3.5, NULL, NULL,                      \
      "Distilled CFG Scale", NEVER, 0,                                                           \
      "Flux dev: distilled guidance (Forge's Distilled CFG Scale); ignored by models without a "  \
      "guidance embedding (schnell, SD1.x, SDXL); Flux runs cfg_scale 1")

/* X(id, TYPE, a1111, AT, lo, hi, step, def, dstr, values, label, SHOW, flags, desc) */
#define LF_PARAM_LIST(X)                                                                          \
    X(prompt, STR, "prompt", TOP, 0, 32768, 0, 0, "", NULL, NULL, PROMPT, 0,                       \
      "what to draw; A1111 prompt syntax ((word:1.2), [word], BREAK)")                           \
    X(negative_prompt, STR, "negative_prompt", TOP, 0, 32768, 0, 0, "", NULL, "Negative prompt",   \
      NEGATIVE, 0, "what to steer away from")                                                    \
    X(steps, U32, "steps", TOP, 1, 150, 1, 20, NULL, NULL, "Steps", ALWAYS, 0,                     \
      "sampler steps")                                                                           \
    X(sampler, ENUM, "sampler_name", TOP, 0, 0, 0, 0, "euler", lf_param_samplers, "Sampler",       \
      ALWAYS, 0, "sampler (ComfyUI or A1111 name)")                                              \
    X(scheduler, ENUM, "scheduler", TOP, 0, 0, 0, 0, "normal", lf_param_schedulers,               \
      "Schedule type", ALWAYS, 0, "noise schedule")                                              \
    X(cfg_scale, F64, "cfg_scale", TOP, 0, 100, 0.5, 7, NULL, NULL, "CFG scale", ALWAYS, 0,        \
      "classifier-free guidance scale")                                                          \
    X(seed, I64, "seed", TOP, -1, 4294967295.0, 1, -1, NULL, NULL, "Seed", SEED, LF_PF_RANDOM_NEG, \
      "seed of the first image (image i uses seed + i); -1 = random, resolved and returned")     \
    X(width, U32, "width", TOP, 8, 2048, 8, 512, NULL, NULL, "Size", SIZE_W,                       \
      LF_PF_SCHED | LF_PF_MODEL_DEF | LF_PF_MULTIPLE,                                            \
      "image width in px, a multiple of 8 (64.. for real models); default: the model's size")    \
    X(height, U32, "height", TOP, 8, 2048, 8, 512, NULL, NULL, "Size", SIZE_H,                     \
      LF_PF_SCHED | LF_PF_MODEL_DEF | LF_PF_MULTIPLE,                                            \
      "image height in px, a multiple of 8 (64.. for real models); default: the model's size")   \
    X(model, STR, "sd_model_checkpoint", OVERRIDE, 1, 128, 0, 0, NULL, NULL, "Model", ALWAYS,      \
      LF_PF_REQUIRED | LF_PF_SCHED | LF_PF_NAME,                                                 \
      "model name (GET /v1/models); default: the farm's default model")                          \
    X(vae, STR, "sd_vae", OVERRIDE, 1, 128, 0, 0, NULL, NULL, "VAE", ALWAYS, LF_PF_NAME,           \
      "VAE from the workers' models/vae/ (GET /v1/models vaes) instead of the checkpoint's; "    \
      "Automatic or None = the checkpoint's")                                                    \
    X(denoise, F64, "denoising_strength", TOP, 0, 1, 0.01, 0.75, NULL, NULL, "Denoising strength", \
      IMG2IMG, 0, "img2img (and Hires-Fix second pass) strength: 0 keeps the image, 1 replaces it")                     \
    LF__PARAM_HIRES_ROWS(X)                                                                       \
    X(clip_skip, U32, "CLIP_stop_at_last_layers", OVERRIDE, 1, 12, 1, 1, NULL, NULL, "Clip skip",  \
      NONDEF, 0, "text encoder layer from the end (1 = last)")                                   \
    X(rng, ENUM, "randn_source", OVERRIDE, 0, 0, 0, 0, "cpu", lf_param_rngs, "RNG", ALWAYS, 0,     \
      "noise generator: cpu (torch CPU) or philox (A1111 NV)")                                   \
    X(refiner_checkpoint, STR, "refiner_checkpoint", TOP, 1, 128, 0, 0, NULL, NULL, "Refiner",     \
      ALWAYS, LF_PF_SCHED | LF_PF_NAME,                                                          \
      "SDXL refiner model (GET /v1/models) for the last steps; none by default")                 \
    X(refiner_switch_at, F64, "refiner_switch_at", TOP, 0.01, 1, 0.01, 0.8, NULL, NULL,               \
      "Refiner switch at", REFINER, 0,                                                           \
      "fraction of the steps after which the refiner takes over (needs refiner_checkpoint)")     \
    X(aesthetic_score, F64, "sdxl_refiner_high_aesthetic_score", OVERRIDE, 0, 10, 0.5, 6, NULL,    \
      NULL, NULL, NEVER, 0, "SDXL refiner: aesthetic score conditioning the prompt")              \
    X(negative_aesthetic_score, F64, "sdxl_refiner_low_aesthetic_score", OVERRIDE, 0, 10, 0.5,     \
      2.5, NULL, NULL, NULL, NEVER, 0,                                                           \
      "SDXL refiner: aesthetic score conditioning the negative prompt")                          \
    X(original_width, U32, NULL, NONE, 0, 8192, 8, 0, NULL, NULL, NULL, NEVER, 0,                  \
      "SDXL size conditioning: original width; 0 = the image width")                             \
    X(original_height, U32, NULL, NONE, 0, 8192, 8, 0, NULL, NULL, NULL, NEVER, 0,                 \
      "SDXL size conditioning: original height; 0 = the image height")                           \
    X(crop_top, U32, "sdxl_crop_top", OVERRIDE, 0, 8192, 1, 0, NULL, NULL, NULL, NEVER, 0,         \
      "SDXL size conditioning: crop top coordinate")                                             \
    X(crop_left, U32, "sdxl_crop_left", OVERRIDE, 0, 8192, 1, 0, NULL, NULL, NULL, NEVER, 0,       \
      "SDXL size conditioning: crop left coordinate")                                            \
    X(target_width, U32, NULL, NONE, 0, 8192, 8, 0, NULL, NULL, NULL, NEVER, 0,                    \
      "SDXL size conditioning: target width; 0 = the image width")                               \
    X(target_height, U32, NULL, NONE, 0, 8192, 8, 0, NULL, NULL, NULL, NEVER, 0,                   \
      "SDXL size conditioning: target height; 0 = the image height")                             \
    X(mode, ENUM, NULL, NONE, 0, 0, 0, 0, "txt2img", lf_param_modes, NULL, NEVER, 0,               \
      "txt2img, img2img (implied by init_image) or upscale (init_image through an upscaler: "    \
      "upscaler, upscale_by or upscale_width/upscale_height)")                                   \
    LF__PARAM_UPSCALE_ROWS(X)                                                                     \
    X(batch_size, U32, "batch_size", TOP, 1, 8, 1, 1, NULL, NULL, NULL, NEVER, LF_PF_SCHED,         \
      "images in the job (A1111: batch_size x n_iter)")                                          \
    X(init_image, STR, NULL, NONE, 1, 128, 0, 0, NULL, NULL, NULL, NEVER, LF_PF_ID,                \
      "img2img: an upload id (POST /v1/uploads)")                                                \
    X(step_delay_ms, U32, NULL, NONE, 0, 10000, 10, 0, NULL, NULL, "Step delay", NONDEF, LF_PF_DIAG, \
      "diagnostic model: milliseconds to wait per step")                                         \
    X(loras, LORAS, NULL, NONE, 0, 8, 0.05, 1, NULL, NULL, NULL, NEVER, LF_PF_SCHED,                \
      "LoRAs to apply (GET /v1/loras): [{name, weight (default 1), te_weight (text encoder, "      \
      "default weight)}]; stacks with the prompt's <lora:name:weight> tags")                      \
    /* Inpainting (img2img with a mask): A1111's img2img fields and API defaults; the    */      \
    /* pipeline writes their infotext keys ("Mask blur", "Masked content", ...) itself.  */      \
    X(mask, STR, NULL, NONE, 1, 128, 0, 0, NULL, NULL, NULL, NEVER, LF_PF_ID,                    \
      "inpainting: the mask, an upload id (POST /v1/uploads), white = repaint, any size; "       \
      "A1111: mask, a base64 image")                                                             \
    X(mask_blur, U32, "mask_blur", TOP, 0, 64, 1, 4, NULL, NULL, NULL, NEVER, 0,                  \
      "inpainting: Gaussian blur of the mask in pixels, both axes")                              \
    X(mask_blur_x, I64, "mask_blur_x", TOP, -1, 64, 1, -1, NULL, NULL, NULL, NEVER, 0,            \
      "inpainting: horizontal mask blur; -1 = mask_blur")                                        \
    X(mask_blur_y, I64, "mask_blur_y", TOP, -1, 64, 1, -1, NULL, NULL, NULL, NEVER, 0,            \
      "inpainting: vertical mask blur; -1 = mask_blur")                                          \
    X(inpainting_fill, U32, "inpainting_fill", TOP, 0, 3, 1, 0, NULL, NULL, NULL, NEVER, 0,       \
      "inpainting: masked content: 0 fill, 1 original, 2 latent noise, 3 latent nothing")        \
    X(inpaint_full_res, BOOL, "inpaint_full_res", TOP, 0, 1, 1, 1, NULL, NULL, NULL, NEVER, 0,    \
      "inpainting: only masked: the padded mask region at the job size, pasted back")            \
    X(inpaint_full_res_padding, U32, "inpaint_full_res_padding", TOP, 0, 256, 4, 0, NULL, NULL,   \
      NULL, NEVER, 0, "inpainting: only masked padding in pixels")                               \
    X(inpainting_mask_invert, U32, "inpainting_mask_invert", TOP, 0, 1, 1, 0, NULL, NULL, NULL,   \
      NEVER, 0, "inpainting: 1 = repaint the black part of the mask")                            \
    X(initial_noise_multiplier, F64, "initial_noise_multiplier", TOP, 0, 1.5, 0.01, 1, NULL,      \
      NULL, NULL, NEVER, 0, "img2img: scale of the initial noise")                               \
    X(inpainting_mask_weight, F64, "inpainting_mask_weight", OVERRIDE, 0, 1, 0.01, 1, NULL, NULL, \
      NULL, NEVER, 0, "inpainting models: how much the conditioning image hides the masked part")   \
    /* ADetailer (common/lf_adetailer.h): the units as canonical JSON text; A1111 sends */       \
    /* them as alwayson_scripts.ADetailer.args (read by lf_validate, not by the walk).  */       \
    X(adetailer, JSON, NULL, NONE, 0, 65536, 0, 0, NULL, NULL, NULL, NEVER, 0,                    \
      "ADetailer passes, in order (GET /adetailer/v1/ad_model): [{ad_model, ad_confidence, "      \
      "ad_denoising_strength, ad_prompt, ...}] with the A1111 extension's argument names and "   \
      "defaults") \
    /* Step caching (issue 18; engine/sampling/lf_stepcache.h). The native     \
     * API also takes them as one object, cache: {kind, threshold, start,     \
     * end, interval, depth} (lf_validate). */                                \
    X(cache_kind, ENUM, "cache_kind", OVERRIDE, 0, 0, 0, 0, "none", lf_param_caches, "Cache",        \
      CACHE, 0, "step caching: none, fbcache (first-block cache) or deepcache")                  \
    X(cache_threshold, F64, "cache_threshold", OVERRIDE, 0, 1, 0.01, 0.12, NULL, NULL,            \
      "Cache threshold", CACHE, 0,                                                               \
      "fbcache: reuse the rest of the network while the first block's residual moved less "      \
      "than this (relative L1)")                                                                 \
    X(cache_start, U32, "cache_start", OVERRIDE, 0, 1000, 1, 0, NULL, NULL, "Cache start", CACHE,  \
      0, "step caching: the first N steps always run the whole network")                         \
    X(cache_end, U32, "cache_end", OVERRIDE, 0, 1000, 1, 0, NULL, NULL, "Cache end", CACHE, 0,     \
      "step caching: the last N steps always run the whole network")                             \
    X(cache_interval, U32, "cache_interval", OVERRIDE, 1, 100, 1, 3, NULL, NULL, "Cache interval", \
      CACHE, 0, "deepcache: a full step every N steps")                                          \
    X(cache_depth, U32, "cache_depth", OVERRIDE, 0, 63, 1, 0, NULL, NULL, "Cache depth", CACHE, 0, \
      "deepcache: the branch (down-path element; 0 = shallowest) whose deeper features are "      \
      "reused") \
    LF__PARAM_FEWSTEP_ROWS(X)                                                                     \
    /* Compute precision (issue 18; lf_backend_set_precision): unset = the  */                   \
    /* worker's LF_PRECISION; the infotext names it only when bf16/f16 ran. */                   \
    X(precision, ENUM, "precision", OVERRIDE, 0, 0, 0, 0, NULL, lf_param_precisions, "Precision",   \
      ALWAYS, 0,                                                                                 \
      "arithmetic of the matrix products: f32 (the reference), bf16 (CPUs with AVX512_BF16, "    \
      "CUDA GPUs from sm_80, f16 on sm_70/75; f32 elsewhere) or auto (bf16 where available); "   \
      "default: the worker's LF_PRECISION")                                                       \
    LF__PARAM_FLUX_ROWS(X)                                                                        \
    LF__PARAM_ENHANCE_ROWS(X)

/* LF_PT_JSON: a char * holding canonical JSON text (a row's own module checks
 * and normalizes it; here: it parses, at most hi bytes). */
typedef enum { LF_PT_STR, LF_PT_ENUM, LF_PT_U32, LF_PT_I64, LF_PT_F64, LF_PT_BOOL, LF_PT_LORAS, LF_PT_JSON } lf_param_type_t;

/* One LoRA of a job (an entry of a LORAS row). Plain data; name owned. */
typedef struct {
    char *name;       /* as GET /v1/loras lists it */
    double weight;    /* UNet multiplier */
    double te_weight; /* text encoder multiplier; NAN = weight */
} lf_param_lora_t;
/* A LORAS row's value: n entries (owned). */
typedef struct {
    lf_param_lora_t *v;
    uint32_t n;
} lf_param_loras_t;
#define LF_LORA_NAME_MAX 128
#define LF_LORA_WEIGHT_LIMIT 20.0
typedef enum { LF_PA_NONE, LF_PA_TOP, LF_PA_OVERRIDE, LF_PA_SCRIPT } lf_param_at_t;
typedef enum {
    LF_PS_NEVER,
    LF_PS_ALWAYS,
    LF_PS_IMG2IMG,
    LF_PS_NONDEF,
    LF_PS_SEED,
    LF_PS_SIZE_W,
    LF_PS_SIZE_H,
    LF_PS_PROMPT,
    LF_PS_NEGATIVE,
    LF_PS_REFINER,
    /* Hires-Fix rows: only with enable_hr. SCALE: when no hr_resize is set;
     * RESIZE: "Hires resize: XxY" when one is (A1111 parses it back as
     * "Hires resize-1" / "-2"); NONDEF: when not the default; OTHER: when
     * set and not the first pass's value (sampler, scheduler, prompts). */
    LF_PS_HIRES,
    LF_PS_HIRES_SCALE,
    LF_PS_HIRES_RESIZE,
    LF_PS_HIRES_NONDEF,
    LF_PS_HIRES_OTHER,
    LF_PS_CACHE, /* only with step caching on (cache_kind not none): the kind, start
                   and end, and the threshold (fbcache) or interval and depth (deepcache) */
    LF_PS_TCD   /* only with the tcd sampler */
} lf_param_show_t;

/* C types of the columns' TYPE. */
#define LF__PCT_STR char *
#define LF__PCT_ENUM char *
#define LF__PCT_U32 uint32_t
#define LF__PCT_I64 int64_t
#define LF__PCT_F64 double
#define LF__PCT_BOOL bool
#define LF__PCT_LORAS lf_param_loras_t
#define LF__PCT_JSON char *

/* What to generate. Plain data; strings owned (NULL = not set). The seed is
 * resolved (never -1) by the gateway before a job is stored. */
typedef struct {
#define LF__PARAM_MEMBER(id, T, ...) LF__PCT_##T id;
    LF_PARAM_LIST(LF__PARAM_MEMBER)
#undef LF__PARAM_MEMBER
} lf_job_params_t;

typedef enum {
#define LF__PARAM_ENUM(id, ...) LF_P_##id,
    LF_PARAM_LIST(LF__PARAM_ENUM)
#undef LF__PARAM_ENUM
    LF_P__COUNT
} lf_param_id_t;

/* One row of the table. */
typedef struct {
    const char *name;
    lf_param_type_t type;
    size_t offset; /* of the member in lf_job_params_t */
    const char *a1111;
    lf_param_at_t a1111_at;
    double lo, hi, step, def;
    const char *def_str;
    const lf_param_enum_t *values;
    const char *label;
    lf_param_show_t show;
    unsigned flags;
    const char *desc;
} lf_param_def_t;

/* The table (borrowed, static), LF_P__COUNT rows in LF_PARAM_LIST order. */
const lf_param_def_t *lf_params_table(void);
/* A row by native name, A1111 name (with its place), infotext label; NULL if none. */
const lf_param_def_t *lf_param_find(const char *name);
const lf_param_def_t *lf_param_find_a1111(const char *name, lf_param_at_t at);
const lf_param_def_t *lf_param_find_label(const char *label);
const char *lf_param_type_name(lf_param_type_t t); /* "string", "enum", "integer", "number", "boolean" */
const char *lf_param_at_name(lf_param_at_t a);     /* "", "top", "override_settings", "alwayson_scripts" */

/* Member access by row. Borrowed pointers into p. */
static inline char **lf_param_str(lf_job_params_t *p, const lf_param_def_t *d) {
    return (char **)((char *)p + d->offset);
}
static inline const char *lf_param_cstr(const lf_job_params_t *p, const lf_param_def_t *d) {
    return *(char *const *)((const char *)p + d->offset);
}
/* A numeric member as double / int64 (U32, I64, F64, BOOL). */
double lf_param_num(const lf_job_params_t *p, const lf_param_def_t *d);

/* The enum entry whose name, A1111 name or alias is s (case-insensitive), or NULL. */
const lf_param_enum_t *lf_param_enum_lookup(const lf_param_def_t *d, const char *s);
/* Our sampler for A1111's old "Name Scheduler" spellings ("DPM++ 2M Karras"):
 * returns the sampler entry and *scheduler (our name), or NULL. */
const lf_param_enum_t *lf_param_sampler_with_scheduler(const char *s, const char **scheduler);

/* Setters: check the value against the row (type, range, multiple of step
 * for integers, enum membership, string length and charset) and store it;
 * an enum is stored by its canonical name. Return 0, LF_EINVAL (type),
 * LF_EOVERFLOW (range / multiple / length), LF_ENOTFOUND (not an enum
 * value), LF_EFORMAT (charset) or LF_ENOMEM; p is untouched on failure. */
int lf_param_set_str(lf_job_params_t *p, const lf_param_def_t *d, const char *s);
int lf_param_set_num(lf_job_params_t *p, const lf_param_def_t *d, double v);
/* Appends one LoRA to a LORAS row (te_weight NAN = weight), after the
 * row's checks (count, name, weights); same returns as the setters. */
int lf_param_loras_add(lf_job_params_t *p, const lf_param_def_t *d, const char *name, double weight,
                       double te_weight);
static inline const lf_param_loras_t *lf_param_loras(const lf_job_params_t *p,
                                                     const lf_param_def_t *d) {
    return (const lf_param_loras_t *)((const char *)p + d->offset);
}
/* Same checks without storing. */
int lf_param_check_num(const lf_param_def_t *d, double v);
int lf_param_check_str(const lf_param_def_t *d, const char *s);

/* Every row's default (strings strdup'd; seed -1; model NULL). Returns 0 or
 * LF_ENOMEM (p cleared). p must be empty (zeroed). */
int lf_params_defaults(lf_job_params_t *p);
/* Frees the strings and zeroes the struct. Accepts NULL. */
void lf_params_clear(lf_job_params_t *p);
/* Deep copy into *dst (must be empty). 0 or LF_ENOMEM (dst untouched). */
int lf_params_copy(lf_job_params_t *dst, const lf_job_params_t *src);
/* Checks every value against its row: strings that are set, numbers (with
 * zero_is_unset, a 0 outside a row's range passes as "not set": the
 * codec's decode check, since a partly filled struct encodes its zeros).
 * Returns 0, or the setter's code with *bad (may be NULL) set to the row. */
int lf_params_check(const lf_job_params_t *p, bool zero_is_unset, const lf_param_def_t **bad);

/* A timesteps row's text ("999, 749" or "800": integers separated by
 * commas and blanks) into out[0..max). Returns the count (>= 1), or
 * LF_EFORMAT (not a list of integers), LF_EOVERFLOW (more than max values,
 * or one outside 0..LF_PARAM_TIMESTEP_MAX), LF_EINVAL (not strictly
 * descending). Pure. */
#define LF_PARAM_TIMESTEP_MAX 999
int lf_param_timesteps_parse(const char *s, int *out, int max);
/* Timesteps as JSON — an array of integers, or their text — into buf (len
 * bytes) as the row's text ("999,749"). Returns 0, LF_EFORMAT (another
 * type, an element that is not an integer) or LF_EOVERFLOW (an element
 * outside 0..LF_PARAM_TIMESTEP_MAX, or more than buf holds); the list's
 * own rules are lf_param_timesteps_parse's. */
struct json_t;
int lf_param_timesteps_text(const struct json_t *v, char *buf, size_t len);

/* The value as the infotext (A1111) writes it: enum A1111 names, %g numbers.
 * Writes into buf (NUL-terminated, truncated at a UTF-8 boundary). */
void lf_param_format(const lf_job_params_t *p, const lf_param_def_t *d, char *buf, size_t len);

/* The size of the images a job makes: width x height, or with enable_hr
 * (txt2img) the Hires-Fix size by A1111's calculate_target_resolution:
 * int(side * hr_scale); hr_resize_x or _y alone keeps the aspect (x * h /
 * w); both cover the box keeping the aspect, then crop the latent to it
 * (8-pixel steps). engine/pipeline/lf_hires is the engine's copy of the
 * rule (with its checks); this one is what the farm counts (max_pixels,
 * scheduling). Pure. */
void lf_params_output_size(const lf_job_params_t *p, uint32_t *w, uint32_t *h);

/* The A1111 "parameters" text of image `index` of a job, walking the table's
 * labels (the one infotext: PNG chunk, A1111 info.infotexts, png-info).
 * model_label overrides p->model when not NULL (the loaded model's name).
 * *out is caller-owned. Returns 0 or LF_ENOMEM. */
int lf_params_infotext(const lf_job_params_t *p, const char *model_label, int index, char **out);
/* The reverse: fills p (defaults first) from an infotext, via the labels.
 * Values that do not fit their row are skipped and counted in *skipped (may
 * be NULL). Returns 0 or LF_ENOMEM. */
int lf_params_from_infotext(const char *text, lf_job_params_t *p, int *skipped);

/* JSON (jansson; caller owns the returned json_t, NULL on OOM). */
struct json_t;
/* The parameters as a JSON object: native names, or A1111 names (rows
 * without an A1111 name are left out). Unset strings and the diagnostic-only
 * fields at their default are omitted. */
struct json_t *lf_params_json(const lf_job_params_t *p, bool a1111_names);
/* JSON Schema "properties" for a job body: native names, or the A1111 names
 * of the rows A1111 carries at the top level. */
struct json_t *lf_params_schema_properties(bool a1111);
/* The whole table as an array of rows (GET /v1/params, the web UI's form):
 * name, kind, type, minimum, maximum, step, default, enum, description,
 * a1111, a1111_in, infotext, model_default, diagnostic_only. */
struct json_t *lf_params_describe(void);

/* Truncates s in place to at most max bytes without splitting a UTF-8
 * character, and drops a last character that an earlier cut (snprintf) left
 * incomplete; returns s. */
char *lf_utf8_truncate(char *s, size_t max);
/* s copied into buf (len bytes) and cut as lf_utf8_truncate does; returns
 * buf. For echoing user text inside a message: "%.64s" can split a
 * character in the middle of a string, where no later cut can mend it. */
const char *lf_utf8_clip(const char *s, char *buf, size_t len);

#endif
