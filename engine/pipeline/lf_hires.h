/* lf_hires: the rules of A1111's Hires-Fix (processing.py,
 * StableDiffusionProcessingTxt2Img) that lf_pipeline's second pass follows:
 *  - the target size (calculate_target_resolution): hr_scale, or
 *    hr_resize_x / hr_resize_y — one of them keeps the aspect
 *    (x * height // width), both upscale to cover and then crop the latent
 *    by truncate_x/y latent pixels, half before and half after;
 *  - the second pass's steps (setup_img2img_steps with explicit steps):
 *    a schedule of int(steps / min(denoise, 0.999)) steps of which the
 *    last `steps` run;
 *  - the pixel upscale of the decoded first pass (images.resize_image with
 *    an upscaler, Upscaler.upscale): "None" is one LANCZOS resize; otherwise
 *    the upscaler runs until the image covers floor(side * scale / 8) * 8
 *    (at most 3 times), then LANCZOS to that, then LANCZOS to the target.
 *    "Lanczos" / "Nearest" resize by the scale per run; a model upscales by
 *    its own factor through a callback.
 * Pure functions over caller buffers (the model upscaler is a callback);
 * thread-safe. Images are interleaved RGB8, [h][w][3]. */
#ifndef LF_HIRES_H
#define LF_HIRES_H

#include <stddef.h>
#include <stdint.h>

#include "lf_resize.h"

/* Sizes of a Hires-Fix pass. */
typedef struct {
    int up_w, up_h;          /* hr_upscale_to_x / _y: what the first pass is resized to */
    int trunc_x, trunc_y;    /* latent pixels cropped (A1111's truncate_x / _y) */
    int width, height;       /* the final image: up - trunc * f */
} lf_hires_size_t;

/* The sizes for a first pass of w x h, hr_scale (used when rx == ry == 0),
 * hr_resize_x / _y and the VAE factor f. 0, or LF_EINVAL with a reason in
 * err (a side under f or over max_side, a side not a multiple of f, a
 * scale that is not finite and > 0); *out untouched on failure. */
int lf_hires_size(int w, int h, double scale, int rx, int ry, int f, int max_side, lf_hires_size_t *out,
                  char *err, size_t errlen);

/* The second pass's schedule: *total steps, the sampler starts at index
 * *start (total - steps) and runs `steps`. LF_EINVAL when steps < 1 or
 * denoise is not in (0, 1]. */
int lf_hires_steps(int steps, double denoise, int *total, int *start);

/* One run of an upscaler model: src (sw x sh) -> *dst (malloc'd, caller
 * frees) of *dw x *dh. Returns 0 or a negative LF_E* code. */
typedef int (*lf_hires_model_fn)(void *ud, const uint8_t *src, int sw, int sh, uint8_t **dst, int *dw,
                                 int *dh);

/* A1111's Upscaler.upscale(img, scale): runs the upscaler (builtin "None"
 * leaves the image as it is, "Lanczos" / "Nearest" resize by scale, NULL =
 * the model through fn/ud) until the image covers floor(side * scale / 8)
 * * 8 (at most 3 runs), then LANCZOS to that. *dst malloc'd (caller
 * frees), *dw x *dh. What the extras upscale (mode "upscale") runs. 0,
 * LF_EINVAL, LF_ENOMEM or fn's code. */
int lf_hires_upscale_by(const lf_resize_builtin_t *builtin, lf_hires_model_fn fn, void *ud, const uint8_t *src,
                        int sw, int sh, double scale, uint8_t **dst, int *dw, int *dh);

/* A1111's resize_image(0, im, dw, dh, upscaler_name) for the hires pass:
 * builtin is "None", "Lanczos" or "Nearest" (lf_resize_builtin_find, not a
 * latent one), or NULL for a model run through fn/ud. src (sw x sh) ->
 * *dst (malloc'd, caller frees) of dw x dh. 0, LF_EINVAL, LF_ENOMEM or
 * fn's code. */
int lf_hires_upscale_rgb8(const lf_resize_builtin_t *builtin, lf_hires_model_fn fn, void *ud,
                          const uint8_t *src, int sw, int sh, int dw, int dh, uint8_t **dst);

#endif
