/* lf_adetailer: a job's ADetailer units as the A1111 extension takes them
 * (Bing-su/adetailer adetailer/args.py ADetailerArgs), checked and brought
 * to one canonical form shared by the gateway (validation), the wire (the
 * `adetailer` row of the parameter table carries the canonical JSON text)
 * and the worker (the engine's units).
 *
 * Canonical form: a JSON array of objects, one per enabled unit (ad_model
 * not "None", ad_tab_enable true), each with every args.py key and its
 * default filled in. Accepted input, as the extension's pydantic model:
 * unknown keys are refused (Extra.forbid; webuiapi's "ad_tab_enable" and
 * the extension's older "ad_tap_enable" are the same key), integers given
 * as integral reals (webuiapi sends ad_mask_k_largest 0.0), bools as
 * true/false or 0/1, null for the optional checkpoint / VAE; ranges as
 * args.py's con* types. Errors name the field the client sent
 * ("adetailer[1].ad_confidence", "alwayson_scripts.ADetailer.args[2].ad_steps").
 *
 * Pure (jansson values in, new values out); thread-safe. */
#ifndef LF_ADETAILER_H
#define LF_ADETAILER_H

#include <stddef.h>

struct json_t;

#define LF_ADETAILER_MAX_UNITS 8

/* A1111's alwayson_scripts.ADetailer.args: [ad_enable?, skip_img2img?,
 * {unit}, ...] (is_ad_enabled: a leading bool is the switch; the dicts are
 * the units; the older form is the dicts alone). *out (new reference) is
 * the canonical array (empty when disabled or no unit has a model).
 * *skip_img2img (may be NULL) gets the second bool (false when absent).
 * Returns 0, or LF_EINVAL (type), LF_EOVERFLOW (range), LF_ENOTFOUND
 * (unknown key) with the field in err; LF_ENOMEM. */
int lf_adetailer_from_a1111(const struct json_t *args, const char *field, struct json_t **out,
                            int *skip_img2img, char *err, size_t errlen);

/* The native list (`adetailer: [{...}]` in /v1/jobs): the same checks,
 * field prefix `field` ("adetailer"). */
int lf_adetailer_normalize(const struct json_t *units, const char *field, struct json_t **out,
                           char *err, size_t errlen);

/* The detectors the engine has (static names, NULL-terminated): what
 * GET /adetailer/v1/ad_model lists and an ad_model must be one of. */
extern const char *const lf_adetailer_models[];
/* 1 when name can be a detector: one of lf_adetailer_models or a YOLO file
 * name of a worker's models/adetailer (.pt, .pth, .safetensors; no path). */
int lf_adetailer_model_plausible(const char *name);
/* 1 when name is a YOLO file name: .pt, .pth or .safetensors, no path, not hidden. */
int lf_adetailer_yolo_file(const char *name);

#endif
