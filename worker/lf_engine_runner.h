/* lf_engine_runner: the worker backend that runs Stable Diffusion models
 * through the engine (lf_engine.h).
 *
 * Models are found at start in env->models_dir (else $LF_MODELS_DIR, else
 * the build's <repo>/models): top-level *.safetensors and *.ckpt files and
 * diffusers folders (with unet/diffusion_pytorch_model.safetensors; SDXL's
 * also have text_encoder_2/). Each is named by its file name without the
 * extension (a folder by its name) and advertised with the family its
 * tensor names give as its kind ("sd15", "sdxl"; lf_engine_probe), its
 * resolution and its preview kind ("taesd" when models/taesd/ holds the
 * family's decoder: taesd_decoder.* for SD1.x, taesdxl_decoder.* for SDXL;
 * else "approx"); files that fail to parse or belong to another family are
 * skipped with a warning in the log. Listing is sorted by name. Separate
 * VAEs are the files of models/vae/ (.safetensors, .pt, .ckpt), named likewise; a job's
 * `vae` names one (unset = the checkpoint's own).
 *
 * A job's refiner_checkpoint (another model of the folder) is passed to
 * the engine, which keeps it resident next to the base while both fit
 * env->memory_budget (lf_engine.h, "Refiner residency"); the backend's
 * `refiner` says which, so the worker advertises both as resident.
 *
 * A loaded state is one lf_engine_t with the model resident (the runner
 * keeps it between jobs and switches only when a job names another model).
 * Jobs map lf_job_params_t onto an engine request (txt2img, or img2img with
 * the ASSIGN's init image); progress goes out every step with a PNG preview
 * every env->preview_every steps (from <models_dir>/taesd/ when a TAESD
 * decoder is installed there, else the engine's approx preview: a linear
 * latent-to-RGB map fitted from the model's own VAE decoder on the first
 * job that wants previews, so every model has previews); cancel
 * is the job's atomic flag, checked by the sampler every model call. Results
 * are PNGs with the A1111 "parameters" chunk and an A1111-like info_json.
 *
 * Threading: as every backend (lf_runner.h): one compute thread. */
#ifndef LF_ENGINE_RUNNER_H
#define LF_ENGINE_RUNNER_H

#include <stddef.h>

#include "lf_runner.h"

/* The backend table (static, borrowed). */
extern const lf_runner_backend_t lf_engine_runner_backend;

/* The A1111-like info JSON for a finished job (caller owns; free()), or
 * NULL when out of memory. Pure: exposed for tests. infotexts[i] is image
 * i's parameters text; family (may be NULL) is the model's; warnings (may
 * be NULL) goes in as "warnings" (LoRA tensors not applied, skipped
 * extra-network tags). */
char *lf_engine_runner_info_json(const lf_job_params_t *p, const char *model, const char *family,
                                 size_t n_images, const char *const *infotexts,
                                 const char *warnings);

#endif
