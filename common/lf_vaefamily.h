/* lf_vaefamily: which model family a separate VAE file belongs to, and
 * whether it fits a model (issue 17, "VAEs per family").
 *
 * A VAE decodes the latents of one family: 4 channels for SD1.x and SDXL,
 * 16 for Flux. The channels are a fact of the file (its first decoder
 * convolution's shape); SD1.x and SDXL VAEs have the same shapes and differ
 * only in the latents they were trained on (SDXL's scaling factor 0.13025 vs
 * 0.18215), so telling those two apart needs a hint: the file's modelspec
 * architecture metadata, the text encoders of a whole checkpoint used as a
 * VAE (SDXL's conditioner vs SD1's cond_stage_model), or its name ("xl" in
 * sdxl_vae, sdxl-vae-fp16-fix; "sd15", "v1-5", "ft-mse", "ft-ema" in SD1.x's
 * VAEs). Without one a 4-channel VAE is "sd": it fits both, as A1111 lets it.
 *
 * The worker says what its files are (caps vae_info, lf_proto.h), the
 * gateway refuses a job whose VAE does not fit its model, and listings
 * filter by model with the same rule. Pure and reentrant: names in, names
 * out (static strings). */
#ifndef LF_VAEFAMILY_H
#define LF_VAEFAMILY_H

#include <stdbool.h>
#include <stdint.h>

/* The family of a VAE of `latent` channels, file stem `name` (may be NULL)
 * and `hint` (may be NULL: any text that names the family, e.g. the
 * modelspec.architecture metadata "stable-diffusion-xl-v1-base/vae", or
 * "sdxl" / "sd15" from a checkpoint's text-encoder keys; the hint wins over
 * the name): "flux" (16 channels), "sdxl", "sd15", "sd" (4 channels, not
 * told apart), or NULL when the channels are of no family the engine runs.
 * With latent 0 (channels unknown: no decoder key the reader knows) the
 * hint or the name alone may still say "sdxl" or "sd15"; else NULL. */
const char *lf_vaefamily_guess(uint32_t latent, const char *name, const char *hint);

/* The latent channels of a model or VAE family: 4 for sd15, sdxl (and
 * sdxl-* kinds such as a refiner) and sd, 16 for flux, 0 otherwise. */
uint32_t lf_vaefamily_latent(const char *family);

/* Does a VAE of family vae_kind (may be NULL) and vae_latent channels (0 =
 * unknown) fit a model of family model_kind? False when the channels differ
 * from the model's, or when both families are named (sd15, sdxl, flux) and
 * differ; true otherwise (an unknown side, "sd" with sd15 or sdxl, a model
 * kind such as "diagnostic" that takes no VAE family). */
bool lf_vaefamily_fits(const char *vae_kind, uint32_t vae_latent, const char *model_kind);

#endif
