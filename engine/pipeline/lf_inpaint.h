/* lf_inpaint: the 8-bit image work of A1111's inpainting (modules/
 * processing.py StableDiffusionProcessingImg2Img.init and apply_overlay,
 * modules/masking.py, modules/images.py resize_image), so that the pipeline
 * runs the masked step of the one img2img path:
 *
 *  - the mask: create_binary_mask (an RGBA file's alpha, thresholded, when
 *    it is not all opaque; else Pillow's ITU-R 601 luma), inverted on request,
 *    blurred as cv2.GaussianBlur(kernel 2*int(2.5*s+0.5)+1, sigma s,
 *    BORDER_REFLECT_101) along x then y, bit for bit (OpenCV's 8-bit
 *    fixed-point path: error-diffused 8-bit taps, (sum + 128) >> 8);
 *  - "only masked": masking.get_crop_region (+ padding) and
 *    expand_crop_region, resize_image's "resize and fill" (mode 2) and
 *    "crop and resize" (mode 1) over Pillow's LANCZOS (lf_resize);
 *  - masked content "fill" (masking.fill: six Pillow GaussianBlur passes of
 *    the premultiplied masked image, alpha-composited);
 *  - the latent mask: the job-size mask as RGB, Pillow's default BICUBIC
 *    resize to the latent size, /255, rounded (A1111's mask_round);
 *  - the overlay: the original image with alpha = 255 - mask_for_overlay,
 *    premultiplied and back as Pillow does, alpha-composited over the
 *    decoded image (apply_overlay), so pixels outside the blurred mask are
 *    the original's byte for byte.
 * Pillow's integer arithmetic (Convert.c, Paste.c, AlphaComposite.c,
 * BoxBlur.c of Pillow 9.4) and OpenCV 4.10's are reproduced bit for bit.
 *
 * Pure functions over caller buffers; thread-safe. Images are interleaved
 * row-major [h][w][3] (RGB) or [h][w][4] (RGBA) bytes, masks [h][w] bytes. */
#ifndef LF_INPAINT_H
#define LF_INPAINT_H

#include <stdint.h>

/* RGB8 -> L8 as Pillow's convert("L"): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
void lf_inpaint_luma(const uint8_t *rgb, int w, int h, uint8_t *l);

/* A1111's create_binary_mask (mask_round on): an RGBA mask (channels 4)
 * whose alpha is not all 255 gives its alpha thresholded, 255 where > 128
 * else 0; any other mask its luma (channels 3 or 4, alpha ignored). */
void lf_inpaint_mask_l(const uint8_t *px, int channels, int w, int h, uint8_t *l);

/* In place: 255 - v (ImageOps.invert). */
void lf_inpaint_invert(uint8_t *m, int w, int h);

/* In place: A1111's mask blur, x then y (0 = none on that axis). 0,
 * LF_EINVAL, LF_ENOMEM. */
int lf_inpaint_blur(uint8_t *m, int w, int h, double sigma_x, double sigma_y);

/* masking.get_crop_region(mask, pad) then expand_crop_region(region,
 * pw, ph, w, h): r = {x1, y1, x2, y2}. Returns 0, or 1 when the mask is all
 * zero (A1111 then falls back to plain img2img). */
int lf_inpaint_crop_region(const uint8_t *m, int w, int h, int pad, int pw, int ph, int r[4]);

/* images.resize_image(mode, im, dw, dh) with A1111's built-in resize
 * (Pillow LANCZOS): mode 1 "crop and resize", mode 2 "resize and fill"
 * (the margins stretched from the edge rows / columns as Pillow resizes a
 * zero-size box with Pillow's default BICUBIC, as A1111 asks it). RGB8
 * in and out. 0, LF_EINVAL, LF_ENOMEM. */
int lf_inpaint_resize_mode(int mode, const uint8_t *src, int sw, int sh, uint8_t *dst, int dw,
                           int dh);

/* Crops RGB8 (w x h) to r = {x1, y1, x2, y2} (inside the image) into dst. */
void lf_inpaint_crop(const uint8_t *src, int w, const int r[4], uint8_t *dst);

/* masking.fill(image, mask): image (RGB8) in place. 0, LF_ENOMEM. */
int lf_inpaint_fill(uint8_t *rgb, const uint8_t *mask, int w, int h);

/* The latent mask: nmask[h][w] in {0, 1} (1 = repaint) from the mask at
 * job size (W x H) to the latent size (w x h). 0, LF_EINVAL, LF_ENOMEM. */
int lf_inpaint_latent_mask(const uint8_t *mask, int W, int H, float *nmask, int w, int h);

/* The overlay (RGBA8, w x h) of image (RGB8) under mask_for_overlay:
 * Pillow's paste of the premultiplied image into an empty RGBa image with
 * mask 255 - m, converted to RGBA. */
void lf_inpaint_overlay(const uint8_t *rgb, const uint8_t *m, int w, int h, uint8_t *rgba);

/* Image.alpha_composite(dst, src) for RGBA8 dst and src of one size, in
 * place in dst. */
void lf_inpaint_alpha_composite(uint8_t *dst, const uint8_t *src, int w, int h);

#endif
