/* lf_resize: the resizes of the second passes (Hires-Fix, "upscale then
 * refine", ADetailer), as the reference libraries compute them:
 *  - latents: torch.nn.functional.interpolate(size=..., align_corners=False)
 *    in nearest, nearest-exact, bilinear and bicubic modes, bilinear and
 *    bicubic also with antialias=True: A1111's "Latent ..." upscalers;
 *  - 8-bit RGB images: Pillow's Image.resize with NEAREST, BILINEAR, BICUBIC
 *    and LANCZOS, bit for bit (fixed-point two-pass resampling with an 8-bit
 *    intermediate): A1111's "Lanczos" / "Nearest" upscalers and the
 *    img2img init image (lf_pipeline_resize_rgb8 is BILINEAR here);
 *  - the table of A1111's built-in upscaler names.
 *
 * Pure functions over caller buffers; thread-safe. Buffers are row-major:
 * latents planar [c][h][w] float, images interleaved [h][w][3] bytes. */
#ifndef LF_RESIZE_H
#define LF_RESIZE_H

#include <stdint.h>

typedef enum {
    LF_RESIZE_NEAREST = 0,    /* torch "nearest" (floor(i * in/out)); Pillow NEAREST */
    LF_RESIZE_NEAREST_EXACT,  /* torch "nearest-exact" (floor((i + .5) * in/out)); latents only */
    LF_RESIZE_BILINEAR,       /* torch "bilinear"; Pillow BILINEAR (triangle) */
    LF_RESIZE_BICUBIC,        /* torch "bicubic" (a = -0.75; -0.5 with antialias);
                                 Pillow BICUBIC (a = -0.5) */
    LF_RESIZE_LANCZOS,        /* Pillow LANCZOS (a = 3); images only */
    LF_RESIZE_FILTER_COUNT
} lf_resize_filter_t;

/* "nearest", "nearest-exact", "bilinear", "bicubic", "lanczos"; borrowed. */
const char *lf_resize_filter_name(lf_resize_filter_t f);

/* src [c][h][w] -> dst [c][oh][ow], as F.interpolate(x, size=(oh, ow),
 * mode=filter, align_corners=False, antialias=antialias) on a float32 CPU
 * tensor (torch 1.13; matches to float rounding, ~1e-6 relative). antialias
 * applies to BILINEAR and BICUBIC only. 0, LF_EINVAL (sizes, NULL),
 * LF_EUNSUPPORTED (LANCZOS, or antialias with a nearest mode), LF_ENOMEM. */
int lf_resize_latent(const float *src, int c, int h, int w, float *dst, int oh, int ow,
                     lf_resize_filter_t filter, int antialias);

/* RGB8 src (sw x sh) -> dst (dw x dh) as Pillow 9's Image.resize((dw, dh),
 * resample=filter) on an "RGB" image, bit for bit. NEAREST_EXACT is
 * refused (LF_EUNSUPPORTED). 0, LF_EINVAL, LF_ENOMEM. */
int lf_resize_rgb8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh,
                   lf_resize_filter_t filter);

/* A1111's built-in upscalers (shared.latent_upscale_modes and the
 * Upscaler classes "None", "Lanczos", "Nearest"), in A1111's order. */
typedef struct {
    const char *name;          /* as A1111 spells it, e.g. "Latent (bicubic antialiased)" */
    int latent;                /* 1: resizes the latent; 0: the decoded image */
    lf_resize_filter_t filter; /* "None" resizes with LANCZOS, as A1111's resize_image does */
    int antialias;
} lf_resize_builtin_t;

int lf_resize_builtin_count(void);
/* Entry i (borrowed, static), or NULL when out of range. */
const lf_resize_builtin_t *lf_resize_builtin_at(int i);
/* By exact name, or NULL (then the name may be an installed model). */
const lf_resize_builtin_t *lf_resize_builtin_find(const char *name);

#endif
