/* lf_batch: which jobs may run together as one UNet batch on one worker
 * (issue 18, "Batched jobs on one worker").
 *
 * Two jobs are batchable when everything that shapes the UNet batch or the
 * sampling loop is the same: every parameter but the per-job text and seed
 * (prompt, negative_prompt, seed, batch_size, and the gateway's prompt
 * enhancement bookkeeping), plus the LoRA set the prompt's <lora:...> tags
 * make (lf_extranet_lora_set). The key is a digest of the parameters'
 * canonical encoding (lf_params_encode) with those fields cleared, so a
 * parameter added to the table joins the key without an edit here.
 *
 * Jobs that never batch (the key is ""): img2img / inpainting / upscale
 * (an init image), Hires-Fix, an SDXL refiner, step caching (its reuse
 * decision looks at the whole batch) and ADetailer (per-image passes); the
 * engine refuses those in a batch too (lf_pipeline.h "rows").
 *
 * Pure and reentrant. */
#ifndef LF_BATCH_H
#define LF_BATCH_H

#include <stddef.h>

#include "lf_params.h"

/* Hex digits of a key (a SHA-256 prefix), without the NUL. */
#define LF_BATCH_KEY_LEN 32

/* The batch key of p into key (LF_BATCH_KEY_LEN + 1 bytes; "" when p
 * never batches). 0, LF_EINVAL (NULL arguments) or LF_ENOMEM. */
int lf_batch_key(const lf_job_params_t *p, char key[LF_BATCH_KEY_LEN + 1]);

#endif
