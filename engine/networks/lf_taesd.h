/* lf_taesd: Tiny AutoEncoder (TAESD family) decoder for previews: SD1/SDXL
 * files (4 latent channels) and the FLUX.2 variant (32 latent channels, a
 * pooled 1x1 branch with GroupNorm in its lowest-resolution blocks), from a
 * .safetensors or .pth file; the layout is read from tensor names/shapes.
 *
 * Threading: one thread at a time. Pool and backend are borrowed. */
#ifndef LF_TAESD_H
#define LF_TAESD_H

#include <stddef.h>

#include "lf_pool.h"

typedef struct lf_taesd lf_taesd_t;

int lf_taesd_new(lf_taesd_t **out, const char *path, lf_backend_t *be, lf_pool_t *pool, char *err,
                 size_t errlen);
void lf_taesd_destroy(lf_taesd_t **self_p);
int lf_taesd_latent_channels(const lf_taesd_t *self);
/* Output pixels per latent pixel (8). */
int lf_taesd_scale(const lf_taesd_t *self);
/* z [C][h][w] -> rgb [3][h*8][w*8] in [0, 1]. */
int lf_taesd_decode(lf_taesd_t *self, const float *z, int h, int w, float *rgb);

#endif
