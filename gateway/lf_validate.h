/* lf_validate: request bodies (parsed JSON) -> job parameters, or an error
 * naming the field.
 *
 * Both dialects walk the parameter table (lf_params.h, LF_PARAM_LIST): the
 * native names, types, ranges and value lists come from there, and so do
 * A1111's names and where A1111 puts each one (top level, override_settings).
 *
 * Two dialects. The native API (POST /v1/jobs) is strict: unknown fields,
 * wrong types and out-of-range values are rejected. The AUTOMATIC1111 subset
 * (/sdapi/v1/txt2img, img2img) is lenient about fields it does not know,
 * because real A1111 clients send dozens of them (styles, restore_faces,
 * enable_hr, hr_*, ...), but it checks the ones it uses with the same ranges.
 *
 * Pure: no I/O, no clock, no randomness (the caller passes the seed to use
 * for "-1"); thread-safe. Ownership: an lf_job_request_t owns its strings;
 * lf_job_request_clear() frees them. On failure the output is left cleared
 * and *err says why. */
#ifndef LF_VALIDATE_H
#define LF_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lf_proto.h"

/* Limits of the request envelope. Generation parameters have theirs in the
 * parameter table (lf_params.h), which both dialects walk. */
#define LF_V_NAME_MAX 128         /* preset and upload id lengths, idempotency keys */
#define LF_V_TTL_MAX (7 * 86400)

/* A validation failure: the HTTP status to answer with, a stable machine code
 * ("invalid_type", "out_of_range", "unknown_field", "missing_field",
 * "invalid_value", "invalid_json", "body_too_large"), a sentence, and the
 * field (dotted path, "" when the whole body is at fault). */
typedef struct {
    int status;
    const char *code; /* static string */
    char message[256];
    char field[96];
} lf_verr_t;

/* Set *err; returns LF_EINVAL so handlers can `return lf_verr_set(...)`. */
int lf_verr_set(lf_verr_t *err, int status, const char *code, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* What the caller knows that validation needs. Borrowed strings. */
typedef struct {
    const char *default_model;   /* used when "model" is absent; NULL -> "lf-diagnostic" */
    int64_t random_seed;         /* substituted for seed -1 / absent (0..2^32-1) */
    const char *option_model;    /* A1111: options' sd_model_checkpoint, may be NULL */
    /* The side (px) a model was trained at, for the default width/height
     * (rows flagged LF_PF_MODEL_DEF); 0 or a NULL function = the table's
     * default. Called with the request's resolved model name. */
    uint32_t (*model_resolution)(void *ud, const char *model);
    /* The model's recommended settings (a manifest's "defaults": Lightning's
     * 4 steps, CFG 1, ...), filled into the rows a request leaves out —
     * steps, cfg_scale, sampler, scheduler, width, height — in both
     * dialects (an A1111 client that sends steps keeps its steps). 0 and
     * *out (caller clears: lf_model_defaults_clear), or nonzero for none; a
     * NULL function = none. */
    int (*model_defaults)(void *ud, const char *model, lf_model_defaults_t *out);
    /* The same for a LoRA the job uses (its prompt's <lora:…> tags, then
     * its loras list; the first that says any): a few-step LoRA's settings
     * (Lightning, LCM) come before the model's. NULL = none. */
    int (*lora_defaults)(void *ud, const char *lora, lf_model_defaults_t *out);
    /* 1 when a live worker has ADetailer detector name (its caps'
     * ad_models); NULL = BlazeFace's names and YOLO file names pass. */
    int (*ad_model_known)(void *ud, const char *name);
    void *ud;
} lf_validate_ctx_t;

/* A validated job request. params is ready for a SUBMIT (seed resolved). */
typedef struct {
    lf_job_params_t params;  /* owned strings */
    lf_priority_t priority;
    char *idem_key;          /* NULL when the client gave none */
    uint32_t ttl_s;          /* 0 = broker default */
    /* A1111 only. */
    bool send_images;        /* default true */
    bool save_images;        /* default false; we keep results anyway */
    json_t *init_images;     /* img2img: the request's init_images array (owned ref) */
    json_t *mask;            /* img2img: the request's base64 mask string (owned ref) or NULL */
} lf_job_request_t;

/* "Automatic" or "None" (any case): A1111's sd_vae values for the
 * checkpoint's own VAE, which both dialects take as "no vae". */
bool lf_validate_vae_is_default(const char *s);

/* Native API body (POST /v1/jobs). Returns 0 or LF_EINVAL with *err set. */
int lf_validate_job(const json_t *body, const lf_validate_ctx_t *ctx, lf_job_request_t *out,
                    lf_verr_t *err);

/* A1111 txt2img (img2img = false) or img2img body. The model comes from
 * override_settings.sd_model_checkpoint, else ctx->option_model, else
 * ctx->default_model. For img2img, out->init_images holds the base64 list;
 * the caller stores the first one and sets params.init_image. */
int lf_validate_a1111(const json_t *body, bool img2img, const lf_validate_ctx_t *ctx,
                      lf_job_request_t *out, lf_verr_t *err);

void lf_job_request_clear(lf_job_request_t *r);

/* Is this a diagnostic model name (looser size rules)? */
bool lf_validate_is_diagnostic(const char *model);

/* Samplers and schedulers: the parameter table's value lists (lf_params.h);
 * our names are the engine's (ComfyUI) names. */
typedef lf_param_enum_t lf_sampler_name_t;
/* The samplers (borrowed, static) and their count. */
const lf_sampler_name_t *lf_validate_samplers(size_t *n);
/* The schedulers (borrowed, static) and their count. */
const lf_param_enum_t *lf_validate_schedulers(size_t *n);

/* Our sampler name for a native or A1111 name ("Euler a", "euler_a",
 * "DPM++ 2M Karras"), or NULL. *scheduler (may be NULL) receives a scheduler
 * implied by the A1111 name ("karras") or NULL. Borrowed, static. */
const char *lf_validate_sampler_lookup(const char *name, const char **scheduler);
/* Our scheduler name for a native or A1111 name ("Karras", "SGM Uniform",
 * "Automatic" -> NULL meaning default); returns 0, or LF_ENOTFOUND. */
int lf_validate_scheduler_lookup(const char *name, const char **out);

/* Preset names: 1..64 chars of [A-Za-z0-9_.-], not starting with '.'. */
bool lf_validate_preset_name(const char *name);
/* Ids in URLs (job ids, upload ids): 1..128 chars of [A-Za-z0-9_.:-]. */
bool lf_validate_id(const char *id);

#endif
