/* lf_vae: the AutoencoderKL of Stable Diffusion (decoder and encoder) from
 * kernels/ ops, architecture read from tensor shapes (levels, channels,
 * resnets per block, latent channels); group-norm groups, the scaling
 * factor and the shift factor from a diffusers config when given (else 32,
 * 0.18215 and 0). quant_conv / post_quant_conv are optional (Flux's VAE has
 * none).
 * Large images are processed in overlapping tiles blended linearly.
 *
 * Threading: one thread at a time. Pool and backend are borrowed. */
#ifndef LF_VAE_H
#define LF_VAE_H

#include <jansson.h>

#include "lf_keymap.h"

typedef struct lf_vae lf_vae_t;

typedef struct {
    int levels, layers, latent_ch, img_ch, groups;
    int ch[8];
    int has_encoder;
    float scaling_factor;
    float shift_factor; /* diffusers config's shift_factor (Flux: 0.1159), else 0 */
} lf_vae_config_t;

int lf_vae_new(lf_vae_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
               lf_pool_t *pool, int type, const char *pool_prefix, char *err, size_t errlen);
void lf_vae_destroy(lf_vae_t **self_p);
const lf_vae_config_t *lf_vae_config(const lf_vae_t *self);
/* Drops the cached encoder and decoder graphs and their activation memory
 * (the next call plans again): after a one-off call at an odd shape, such
 * as the approx preview's fit, so its graphs do not stay resident. */
void lf_vae_release_graphs(lf_vae_t *self);
/* As lf_unet_set_weight_release: with pool (the one the VAE's weights were
 * loaded into), each node gives back the file pages of the mapped weights
 * it has read; NULL keeps them (default). */
void lf_vae_set_weight_release(lf_vae_t *self, const lf_pool_t *pool);
/* Pixels per latent pixel: 2^(levels-1). */
int lf_vae_scale(const lf_vae_t *self);

/* z [batch][latent_ch][h][w] -> img [batch][3][h*s][w*s]; tile > 0 splits
 * into tiles of tile latent pixels with tile/4 overlap when larger. */
int lf_vae_decode(lf_vae_t *self, const float *z, int batch, int h, int w, int tile, float *img);
/* img [batch][3][H][W] -> mean [batch][latent_ch][H/s][W/s]; tile in latent
 * pixels as for decode. */
int lf_vae_encode(lf_vae_t *self, const float *img, int batch, int H, int W, int tile,
                  float *mean);

#endif
