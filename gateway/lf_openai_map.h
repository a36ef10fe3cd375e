/* lf_openai_map: the OpenAI images API (POST /v1/images/generations and
 * /v1/images/edits, GET /v1/models' "data") mapped onto the native API, so
 * OpenAI SDK clients and chat UIs that speak it can use the farm.
 *
 * A request becomes a native job body (POST /v1/jobs JSON) which goes
 * through lf_validate_job, so the limits are exactly the native ones; a
 * validation error is renamed to the OpenAI parameter the client sent
 * ("width" -> "size", "batch_size" -> "n", "init_image" -> "image").
 *
 * Pure: no I/O, no clock; thread-safe. Ownership is stated per function;
 * on failure outputs are left untouched and *err says why (its field is the
 * OpenAI parameter, "" when the whole body is at fault). */
#ifndef LF_OPENAI_MAP_H
#define LF_OPENAI_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lf_multipart.h"
#include "lf_validate.h"

/* How result images come back: "url" (OpenAI's default) or "b64_json". */
typedef enum { LF_OPENAI_URL = 0, LF_OPENAI_B64_JSON = 1 } lf_openai_format_t;

/* What the caller knows that the mapping needs. Borrowed. */
typedef struct {
    const char *default_model; /* the farm's default; NULL -> "lf-diagnostic" */
    const json_t *models;      /* the model list ([{name, resolution?}], as GET /v1/models "models"); may be NULL */
    int64_t random_seed;       /* for seed -1 / absent (lf_validate_ctx_t's) */
    const char *init_image;    /* edits: the upload id (any valid id while validating); NULL: a generation */
    uint32_t image_width;      /* edits: the input image's size, the default output size; 0: unknown */
    uint32_t image_height;
} lf_openai_ctx_t;

/* An OpenAI generation body (a JSON object), or an edit's form fields as
 * lf_openai_map_form returns them (ctx->init_image set), -> a native job body
 * (*native: caller owns) and the response format. OpenAI fields: prompt
 * (required), model (dall-e-* / gpt-image-* / absent: the default model),
 * n -> batch_size, size "WxH" (absent or "auto": for an edit the input's size
 * rounded down to a multiple of 8 when that fits, else the model's
 * resolution from ctx->models, else the native default), response_format,
 * output_format ("png" only), background (auto | opaque), stream (false);
 * quality, style, user, moderation, safety_identifier, output_compression
 * are accepted and ignored. Extensions passed through: negative_prompt, steps, seed,
 * cfg_scale, sampler, scheduler, clip_skip, rng, and for edits denoise.
 * Anything else: 400 unknown_field. Returns 0 or LF_EINVAL. */
int lf_openai_map_body(const json_t *body, const lf_openai_ctx_t *ctx, json_t **native,
                       lf_openai_format_t *format, lf_verr_t *err);

/* lf_openai_map_body, then lf_validate_job on the result: a job request ready
 * for a SUBMIT (*out: caller owns, lf_job_request_clear). Errors name the
 * OpenAI parameter. Returns 0 or LF_EINVAL. */
int lf_openai_map_job(const json_t *body, const lf_openai_ctx_t *ctx, lf_job_request_t *out,
                      lf_openai_format_t *format, lf_verr_t *err);

/* The OpenAI parameter a native field came from ("width" -> "size");
 * borrowed: the argument itself when it maps to itself. */
const char *lf_openai_map_param(const char *native_field);

/* An edit's multipart parts -> *fields (a JSON object of the text fields,
 * caller owns; n, steps, seed, clip_skip become integers and cfg_scale,
 * denoise numbers when they parse as such, so the validator checks them as
 * in JSON), *image (the part named image or image[]) and *mask (NULL when
 * absent; both borrowed from parts). A repeated field, a second image, a
 * file under another name, or a field that is not UTF-8: LF_EINVAL. */
int lf_openai_map_form(const lf_multipart_part_t *parts, size_t n, json_t **fields,
                       const lf_multipart_part_t **image, const lf_multipart_part_t **mask,
                       lf_verr_t *err);

/* GET /v1/models' OpenAI "data" array from the native model list: one
 * {id, object: "model", created: 0, owned_by: "lightfarm", resolution?} per
 * model. Caller owns; NULL only when out of memory. */
json_t *lf_openai_map_models(const json_t *models);

/* An error body in OpenAI's shape: {"error": {message, type, param, code}};
 * type is "invalid_request_error" for a 4xx status, else "server_error";
 * param and code are null when NULL or "". Caller owns. */
json_t *lf_openai_map_error(int status, const char *code, const char *param, const char *message);

#endif
