/* lf_preview: the weight-free live preview ("approx") — one linear map per
 * model from a latent pixel to the colour of the 8×8 block it decodes to,
 * RGB ≈ A·z + b (A is 3×C, b is 3), fitted by least squares from the
 * model's own VAE decoder, and applied to a whole latent in one pass.
 *
 * Why fitted and not constants: the projections A1111 and ComfyUI ship were
 * fitted to SD1.5's VAE; a model with another VAE (the built-in
 * lf-tiny-shapes, any future family) has other latents. lf_model encodes
 * a small fixed synthetic batch once, jitters and decodes the latents,
 * averages the decoded RGB over each latent pixel's block
 * (lf_preview_block_mean) and feeds the pairs to an lf_preview_fit_t; this
 * module knows nothing of networks.
 *
 * The one exception is Flux with BFL's own ae: ComfyUI's projection for
 * it (lf_preview_flux_factors) is folded into a map (lf_preview_map_affine),
 * which spares the fit's VAE encode and decode on that large VAE.
 *
 * Pure: buffers and plain structs only, no allocation, no I/O.
 * Threading: no shared state; a fitted lf_preview_map_t is plain data that
 * any number of threads may read. Ownership: every buffer is the caller's. */
#ifndef LF_PREVIEW_H
#define LF_PREVIEW_H

#include <stddef.h>
#include <stdint.h>

#define LF_PREVIEW_MAX_CHANNELS 32 /* FLUX.2's latents have 32 */

/* Which preview a model gives: the TAESD decoder when one is loaded, else
 * the fitted linear map. */
typedef enum { LF_PREVIEW_NONE = 0, LF_PREVIEW_APPROX, LF_PREVIEW_TAESD } lf_preview_kind_t;
const char *lf_preview_kind_name(lf_preview_kind_t k); /* "none", "approx", "taesd" */

/* A fitted map (plain data). rgb[k] = sum_c a[k][c] * z[c] + b[k], in the
 * VAE's image range [-1, 1], for UNSCALED latents z (the VAE's own). */
typedef struct {
    int channels; /* C, 1..LF_PREVIEW_MAX_CHANNELS */
    float a[3][LF_PREVIEW_MAX_CHANNELS];
    float b[3];
} lf_preview_map_t;

/* Normal-equation accumulator (plain data; zero it with _init). Sums are in
 * double and centred at solve time, so tens of thousands of samples of
 * latents in the tens lose nothing that matters. */
typedef struct {
    int channels;
    double n;
    double sz[LF_PREVIEW_MAX_CHANNELS];                          /* sum z */
    double sr[3];                                                /* sum rgb */
    double szz[LF_PREVIEW_MAX_CHANNELS][LF_PREVIEW_MAX_CHANNELS]; /* sum z z^T */
    double szr[LF_PREVIEW_MAX_CHANNELS][3];                      /* sum z rgb^T */
} lf_preview_fit_t;

/* A map from a published projection instead of a fit: factors [C][3] and
 * bias [3] act on the diffusion model's latent (z - shift) * scale (as
 * ComfyUI's latent_rgb_factors and latent_rgb_factors_bias do), folded into
 * a map of the VAE's own latent z. 0, or LF_EINVAL (C out of range, NULL). */
int lf_preview_map_affine(const float *factors, const float *bias, int channels, float scale,
                          float shift, lf_preview_map_t *out);
/* ComfyUI's Flux projection (comfy/latent_formats.py, class Flux): 16 x 3
 * factors and 3 biases on the model's latent (scale 0.3611, shift 0.1159). */
extern const float lf_preview_flux_factors[16][3];
extern const float lf_preview_flux_bias[3];

/* Starts an empty fit for C latent channels. Returns 0 or LF_EINVAL (C out
 * of 1..LF_PREVIEW_MAX_CHANNELS). */
int lf_preview_fit_init(lf_preview_fit_t *fit, int channels);

/* Adds the h*w pairs of one image: z [C][h][w] latents and rgb [3][h][w]
 * the decoded colour of each latent pixel (block means). Returns 0 or
 * LF_EINVAL; a non-finite value is refused before anything is added. */
int lf_preview_fit_add(lf_preview_fit_t *fit, const float *z, const float *rgb, int h, int w);

/* Solves for the least-squares map. Returns 0 and fills *out, or LF_EINVAL
 * when the pairs cannot determine it: fewer than C + 1 of them, or latents
 * that do not span all C directions (a constant channel, two channels that
 * move together) — the normal matrix's Cholesky pivot falls under 1e-9 of
 * its largest variance. *out is untouched on failure. */
int lf_preview_fit_solve(const lf_preview_fit_t *fit, lf_preview_map_t *out);

/* Block means: img [3][h*s][w*s] -> out [3][h][w], each value the mean of
 * its s×s block. Returns 0 or LF_EINVAL. */
int lf_preview_block_mean(const float *img, int h, int w, int s, float *out);

/* The nearest-neighbour factor a preview of an h×w latent is shown at: the
 * largest of 1..4 (and at most vae_scale) whose longer side stays within
 * 512 pixels, so a 256-pixel image's 32×32 latent becomes 128×128. */
int lf_preview_upscale(int h, int w, int vae_scale);

/* Applies the map: z [C][h][w] unscaled latents -> rgb [h*up][w*up][3]
 * bytes ((v + 1) * 127.5, rounded and clamped), each latent pixel repeated
 * up × up times. Returns 0 or LF_EINVAL (up outside 1..8, a bad map). */
int lf_preview_apply(const lf_preview_map_t *map, const float *z, int h, int w, int up,
                     uint8_t *rgb);

#endif
