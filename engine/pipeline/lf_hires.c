/* lf_hires: A1111's Hires-Fix size, step and pixel-upscale rules
 * (lf_hires.h). */
#include "lf_hires.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return LF_EINVAL;
}

int lf_hires_size(int w, int h, double scale, int rx, int ry, int f, int max_side, lf_hires_size_t *out,
                  char *err, size_t errlen)
{
    if (w < 1 || h < 1 || f < 1 || rx < 0 || ry < 0) return s_fail(err, errlen, "bad sizes");
    lf_hires_size_t s = {0};
    if (rx == 0 && ry == 0) {
        if (!(isfinite(scale) && scale > 0.0 && scale <= 64.0))
            return s_fail(err, errlen, "hr_scale %g is not a factor > 0", scale);
        s.up_w = (int)(w * scale);
        s.up_h = (int)(h * scale);
    } else if (ry == 0) {
        s.up_w = rx;
        s.up_h = (int)((long long)rx * h / w);
    } else if (rx == 0) {
        s.up_w = (int)((long long)ry * w / h);
        s.up_h = ry;
    } else {
        /* Cover the requested box, keeping the aspect, then crop. */
        if ((double)w / h < (double)rx / ry) {
            s.up_w = rx;
            s.up_h = (int)((long long)rx * h / w);
        } else {
            s.up_w = (int)((long long)ry * w / h);
            s.up_h = ry;
        }
        s.trunc_x = (s.up_w - rx) / f;
        s.trunc_y = (s.up_h - ry) / f;
    }
    if (s.up_w % f || s.up_h % f)
        return s_fail(err, errlen, "Hires-Fix size %dx%d: each side must be a multiple of %d", s.up_w, s.up_h,
                      f);
    s.width = s.up_w - s.trunc_x * f;
    s.height = s.up_h - s.trunc_y * f;
    if (s.width < f || s.height < f || s.up_w > max_side || s.up_h > max_side)
        return s_fail(err, errlen, "Hires-Fix size %dx%d: each side must be %d..%d", s.up_w, s.up_h, f,
                      max_side);
    *out = s;
    return 0;
}

int lf_hires_steps(int steps, double denoise, int *total, int *start)
{
    if (steps < 1 || !(denoise > 0.0 && denoise <= 1.0)) return LF_EINVAL;
    int t = (int)(steps / fmin(denoise, 0.999));
    *total = t;
    *start = t - steps; /* sigmas[steps_total - t_enc - 1:], t_enc = steps - 1 */
    return 0;
}

/* Pillow resize into a new buffer. */
static int s_resize(const uint8_t *src, int sw, int sh, int dw, int dh, lf_resize_filter_t f, uint8_t **dst)
{
    uint8_t *d = malloc((size_t)dw * (size_t)dh * 3);
    if (!d) return LF_ENOMEM;
    int rc = lf_resize_rgb8(src, sw, sh, d, dw, dh, f);
    if (rc) {
        free(d);
        return rc;
    }
    *dst = d;
    return 0;
}

int lf_hires_upscale_by(const lf_resize_builtin_t *builtin, lf_hires_model_fn fn, void *ud, const uint8_t *src,
                        int sw, int sh, double scale, uint8_t **dst, int *dw, int *dh)
{
    if (!src || sw < 1 || sh < 1 || !(scale > 0.0 && scale <= 64.0) || (builtin && builtin->latent) ||
        (!builtin && !fn))
        return LF_EINVAL;
    uint8_t *im = malloc((size_t)sw * (size_t)sh * 3);
    if (!im) return LF_ENOMEM;
    memcpy(im, src, (size_t)sw * (size_t)sh * 3);
    int w = sw, h = sh, rc = 0;
    const int none = builtin && !strcmp(builtin->name, "None");
    const int tw = (int)(floor(sw * scale / 8.0) * 8.0), th = (int)(floor(sh * scale / 8.0) * 8.0);
    for (int i = 0; i < 3 && rc == 0 && !none; i++) {
        if (w >= tw && h >= th && (i > 0 || scale != 1.0)) break;
        uint8_t *next = NULL;
        int nw = 0, nh = 0;
        if (builtin) { /* UpscalerLanczos / UpscalerNearest: by the scale each run */
            nw = (int)(w * scale), nh = (int)(h * scale);
            rc = s_resize(im, w, h, nw, nh, builtin->filter, &next);
        } else {
            rc = fn(ud, im, w, h, &next, &nw, &nh);
        }
        if (rc) break;
        free(im);
        const int same = nw == w && nh == h;
        im = next, w = nw, h = nh;
        if (same) break;
    }
    if (rc == 0 && (w != tw || h != th) && tw > 0 && th > 0) {
        uint8_t *next = NULL;
        rc = s_resize(im, w, h, tw, th, LF_RESIZE_LANCZOS, &next);
        if (rc == 0) free(im), im = next, w = tw, h = th;
    }
    if (rc) {
        free(im);
        return rc;
    }
    *dst = im, *dw = w, *dh = h;
    return 0;
}

int lf_hires_upscale_rgb8(const lf_resize_builtin_t *builtin, lf_hires_model_fn fn, void *ud,
                          const uint8_t *src, int sw, int sh, int dw, int dh, uint8_t **dst)
{
    if (!src || sw < 1 || sh < 1 || dw < 1 || dh < 1 || (builtin && builtin->latent) || (!builtin && !fn))
        return LF_EINVAL;
    if (builtin && !strcmp(builtin->name, "None")) return s_resize(src, sw, sh, dw, dh, LF_RESIZE_LANCZOS, dst);
    const double scale = fmax((double)dw / sw, (double)dh / sh);
    uint8_t *im = NULL;
    int w = sw, h = sh, rc = 0;
    if (scale > 1.0) {
        rc = lf_hires_upscale_by(builtin, fn, ud, src, sw, sh, scale, &im, &w, &h);
    } else if ((im = malloc((size_t)sw * (size_t)sh * 3)) != NULL) {
        memcpy(im, src, (size_t)sw * (size_t)sh * 3);
    } else {
        rc = LF_ENOMEM;
    }
    if (rc) return rc;
    if (w != dw || h != dh) {
        uint8_t *next = NULL;
        rc = s_resize(im, w, h, dw, dh, LF_RESIZE_LANCZOS, &next);
        free(im);
        if (rc) return rc;
        im = next;
    }
    *dst = im;
    return 0;
}
