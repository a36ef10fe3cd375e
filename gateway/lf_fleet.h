/* lf_fleet: what the gateway decides from the live workers' advertised
 * capabilities — the default model, whether a model is served, whether any
 * worker could ever run a job of a given size — and the readiness verdict.
 *
 * Pure: worker views (as lf_store_workers_list returns them) and plain values
 * in, answers out; no I/O, no clock, no state, so tests drive it directly.
 * Thread-safe. Everything passed is borrowed for the call. */
#ifndef LF_FLEET_H
#define LF_FLEET_H

#include <stdbool.h>
#include <stddef.h>

#include "lf_store.h"
#include "lf_validate.h"

/* The model a request that names none gets, written to out ("" when no
 * live worker advertises any model: the caller answers 503, it does not
 * guess). `configured` (LF_DEFAULT_MODEL; NULL, "" or the diagnostic model
 * mean "choose") wins when a live worker serves it and it is not the
 * diagnostic test card while a real model exists. Otherwise: the first model
 * a user installed (not lf-*), else the project's own (lf-*, such as
 * lf-tiny-shapes), and the diagnostic model only when it is all there is. */
void lf_fleet_default_model(const lf_worker_view_t *ws, size_t n, const char *configured, char *out,
                            size_t len);

/* Does any live worker advertise model `name`? */
bool lf_fleet_serves(const lf_worker_view_t *ws, size_t n, const char *name);

/* Could any live worker that serves p->model (and its refiner and VAE,
 * when it names them) ever run p? Workers take at
 * most max_pixels (width * height * batch_size, as the scheduler counts;
 * 0 = no limit). 0 when some worker can (or none serves the model: that is
 * lf_fleet_serves' question); LF_ELIMIT with *err set (400 out_of_range,
 * naming `width` when one image is already too large, else `batch_size`,
 * and saying the limit) when none can. */
int lf_fleet_fit(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p, lf_verr_t *err);

/* Worker c's vae_info entry for VAE `name` (borrowed), or NULL when it
 * says none (an older worker). */
const lf_vae_info_t *lf_fleet_vae_info(const lf_worker_caps_t *c, const char *name);
/* The separate VAEs of ws: a JSON array of {name, workers, family,
 * latent_channels} (the last two when a worker says them; caller owns;
 * NULL on OOM). */
struct json_t *lf_fleet_vaes(const lf_worker_view_t *ws, size_t n);
/* The names of the VAEs that fit model `name` on the live workers that
 * serve it (a VAE of unknown family counts as fitting): a JSON array of
 * strings, empty when none serves it (caller owns; NULL on OOM). */
struct json_t *lf_fleet_model_vaes(const lf_worker_view_t *ws, size_t n, const char *model);

/* Do the live workers that serve p->model have every LoRA the job names
 * (its loras row and its prompt's <lora:…> tags)? A LoRA is found by its
 * name, its alias or its path without the extension, as the engine finds
 * it. 0 when they do; LF_ENOTFOUND with *err set (400 unknown_lora, naming
 * `loras[i].name` for a list entry, `prompt_field` for a tag, and the
 * LoRA), or LF_EINVAL (400 invalid_value on prompt_field) for a LoRA tag
 * whose weights do not read (A1111 raises). */
/* Hires-Fix's hr_upscaler (with enable_hr) or an upscale job's upscaler:
 * when not one of A1111's built-ins, an upscaler model of a live worker
 * serving the job's model; else 400 unknown_upscaler naming field (NULL:
 * hr_upscaler / upscaler) (LF_ENOTFOUND). An upscale job naming a latent
 * mode: 400 invalid_value (LF_EINVAL). */
int lf_fleet_upscaler_check(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p, const char *field,
                            lf_verr_t *err);
/* The upscaler models of ws: a JSON array of {name, workers} (caller owns;
 * NULL on OOM). */
struct json_t *lf_fleet_upscalers(const lf_worker_view_t *ws, size_t n);
/* The ADetailer detectors of ws (caps.ad_models): [{name, workers}]. */
struct json_t *lf_fleet_ad_models(const lf_worker_view_t *ws, size_t n);
/* 1 when a worker of ws has ADetailer detector name. */
int lf_fleet_has_ad_model(const lf_worker_view_t *ws, size_t n, const char *name);

int lf_fleet_loras_check(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p,
                         const char *prompt_field, lf_verr_t *err);

/* The LoRAs the live workers have, one per name (the first worker's entry;
 * borrowed from ws), into out[0..cap); *holders (may be NULL, cap entries)
 * gets how many workers have each. Returns how many names there are (may
 * exceed cap). */
size_t lf_fleet_loras(const lf_worker_view_t *ws, size_t n, const lf_lora_info_t **out,
                      size_t *holders, size_t cap);

/* The side (px) live workers say model `name` was trained at (the first
 * that says; 0 when none does): the default width/height of its jobs,
 * 1024 for SDXL. */
uint32_t lf_fleet_resolution(const lf_worker_view_t *ws, size_t n, const char *name);

/* The recommended settings live workers say model `name` has (a manifest's
 * "defaults", a file's metadata; the first worker that says any), borrowed
 * from ws, or NULL when none says any. */
const lf_model_defaults_t *lf_fleet_defaults(const lf_worker_view_t *ws, size_t n, const char *name);
/* The recommended settings live workers say LoRA `name` has (by name,
 * alias or path, as lf_fleet_loras_check finds it), borrowed, or NULL. */
const lf_model_defaults_t *lf_fleet_lora_defaults(const lf_worker_view_t *ws, size_t n, const char *name);
/* Those settings as the JSON object GET /v1/models shows ("defaults":
 * steps, cfg_scale, sampler, scheduler, width, height: what is said), or
 * NULL for d NULL or saying nothing. Caller owns. */
json_t *lf_fleet_defaults_json(const lf_model_defaults_t *d);

/* The parts of p beside its model: a refiner_checkpoint must be served by
 * a live worker that also serves p->model (the two run on one worker) and
 * be of its family (kind; else 400 "invalid_value" naming refiner_field,
 * LF_EINVAL), and
 * a vae must be one a live worker serving p->model lists (models/vae/)
 * and of a family that fits the model's (lf_vaefamily_fits on that worker's
 * caps vae_info; a VAE a worker says no family for fits: older workers).
 * 0, or LF_ENOTFOUND with *err set: 400 "unknown_model" naming
 * refiner_field, or 400 "unknown_vae" naming vae_field (the names the
 * client used: "vae" natively, "override_settings.sd_vae" for A1111); or
 * LF_EINVAL with 400 "invalid_value" naming vae_field when every holder
 * says the VAE is of another family (the message names both families and
 * their latent channels). */
int lf_fleet_parts(const lf_worker_view_t *ws, size_t n, const lf_job_params_t *p, const char *refiner_field,
                   const char *vae_field, lf_verr_t *err);

/* Readiness: Redis answers, at least one broker is live, at least one live
 * worker advertises a model. */
typedef struct {
    bool redis_ok;
    size_t brokers_live;
    size_t workers;             /* live workers */
    size_t workers_with_models; /* of those, advertising at least one model */
} lf_fleet_health_t;

/* Writes up to cap reasons (static sentences) why the farm is not ready;
 * returns how many (0 = ready). */
size_t lf_fleet_not_ready(const lf_fleet_health_t *h, const char **reasons, size_t cap);

/* Count the live workers and those advertising at least one model. */
void lf_fleet_count(const lf_worker_view_t *ws, size_t n, size_t *workers, size_t *with_models);

#endif
