/* lf_extranet: A1111's extra-network tags ("<lora:name:0.8>") in a prompt.
 *
 * Follows A1111's extra_networks.parse_prompt: every tag matching
 * <(\w+):([^>]+)> is cut out of the text (what does not match, such as
 * "<lora:>" or "<lora name:1>", stays as text), its arguments split at ':';
 * the LoRA ones ("lora", and A1111's alias "lyco") are read as
 * <lora:name[:te[:unet[:dyn]]]> plus named te=, unet=, dyn= arguments, as
 * extensions-builtin/Lora/extra_networks_lora.py reads them (text-encoder
 * weight first). A1111 reads tags in the positive prompt only; the negative
 * prompt is tokenized as written.
 *
 * Here (common/) because the engine cuts the tags before tokenizing, the
 * gateway refuses unknown LoRA names and the worker and the broker's
 * scheduler key a job's LoRA set from them (lf_extranet_lora_set).
 *
 * Pure functions; thread-safe. */
#ifndef LF_EXTRANET_H
#define LF_EXTRANET_H

#include <stddef.h>

#include "lf_params.h"

/* One extra-network tag taken out of a prompt. */
typedef struct {
    char *kind;         /* "lora", "lyco", "hypernet", ... as written (owned by the array) */
    char *name;         /* first argument (owned by the array) */
    char *args;         /* everything after "<kind:", as written (owned by the array) */
    int is_lora;        /* kind is "lora" or "lyco": the weights below are read */
    double te_weight;   /* text encoder multiplier: 2nd positional or te= (default 1) */
    double unet_weight; /* UNet multiplier: 3rd positional or unet= (default te_weight) */
    int dyn;            /* A1111's dyn dim: 4th positional or dyn= (0: none) */
} lf_extranet_t;

/* Cuts every extra-network tag out of text: *out_text (caller owns; free())
 * is the text without them, *extras (caller owns; lf_extranet_free) and *n
 * the tags in prompt order (duplicates kept). A LoRA tag whose weights do
 * not read as finite numbers (where A1111 raises) or has no name is
 * LF_EINVAL with the tag quoted in err; also LF_ENOMEM. On failure the
 * outputs are untouched. */
int lf_extranet_extract(const char *text, char **out_text, lf_extranet_t **extras, size_t *n,
                        char *err, size_t errlen);
void lf_extranet_free(lf_extranet_t **extras, size_t n);

/* Every LoRA a job asks for: the prompt's tags, then the loras row's
 * entries, as lf_param_lora_t (te_weight resolved: never NAN). *out caller
 * owns (free each name, then the array). Tags that do not read are left
 * out (the engine refuses the job). 0 or LF_ENOMEM. */
int lf_extranet_loras(const lf_job_params_t *p, lf_param_lora_t **out, size_t *n);
void lf_extranet_loras_free(lf_param_lora_t **loras, size_t n);

/* The job's LoRA set as one string ("name:unet:te|name:unet:te", in order;
 * "" for none) into buf (cut at len): what a worker advertises as its
 * current set and what the scheduler compares. 0 or LF_ENOMEM. */
int lf_extranet_lora_set(const lf_job_params_t *p, char *buf, size_t len);

#endif
