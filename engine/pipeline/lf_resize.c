/* lf_resize: per-axis tap tables (source index and weight per output index)
 * computed the way torch's CPU upsample kernels and Pillow's Resample.c
 * compute them, applied separably: along the width first, then the height,
 * as both libraries do. Pillow's 8-bit path keeps its fixed-point
 * coefficients (22 fraction bits, rounded half away from zero) and its 8-bit
 * intermediate image, which is what makes the result bit-exact. */
#include "lf_resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

#define S_MAX_SIDE 65536

const char *lf_resize_filter_name(lf_resize_filter_t f) {
    static const char *const n[] = {"nearest", "nearest-exact", "bilinear", "bicubic", "lanczos"};
    return (unsigned)f < LF_RESIZE_FILTER_COUNT ? n[f] : "?";
}

/* Taps of one axis: for output index o, k < ntap: source idx[o*ntap+k] with
 * weight w[o*ntap+k] (unused taps have weight 0 and a valid index). */
typedef struct {
    int ntap;
    int *idx;
    float *w;   /* torch */
    int32_t *q; /* Pillow, fixed point */
} s_taps_t;

static void s_taps_free(s_taps_t *t) {
    free(t->idx), free(t->w), free(t->q);
    memset(t, 0, sizeof *t);
}

static int s_taps_alloc(s_taps_t *t, int out, int ntap, int fixed) {
    t->ntap = ntap;
    t->idx = calloc((size_t)out * ntap, sizeof *t->idx);
    if (fixed)
        t->q = calloc((size_t)out * ntap, sizeof *t->q);
    else
        t->w = calloc((size_t)out * ntap, sizeof *t->w);
    if (!t->idx || (fixed ? !t->q : !t->w)) {
        s_taps_free(t);
        return LF_ENOMEM;
    }
    return 0;
}

/* ---- torch (ATen/native/UpSample.h, cpu/UpSampleKernel.cpp, 1.13) ---- */

static float s_cc1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static float s_cc2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

static float s_aa_linear(float x) {
    if (x < 0.0f) x = -x;
    return x < 1.0f ? 1.0f - x : 0.0f;
}

static float s_aa_cubic(float x) {
    const double a = -0.5;
    if (x < 0.0f) x = -x;
    if (x < 1.0f) return (float)(((a + 2.0) * x - (a + 3.0)) * x * x + 1);
    if (x < 2.0f) return (float)((((x - 5) * x + 8) * x - 4) * a);
    return 0.0f;
}

static int s_torch_taps(s_taps_t *t, int in, int out, lf_resize_filter_t f, int aa) {
    const float scale = (float)in / (float)out;
    if (aa) {
        /* _compute_weights_aa: PIL-style support widened when shrinking. */
        const int isz = f == LF_RESIZE_BICUBIC ? 4 : 2;
        const float support = scale >= 1.0f ? (float)(isz * 0.5) * scale : (float)(isz * 0.5);
        const int ntap = (int)ceilf(support) * 2 + 1;
        if (s_taps_alloc(t, out, ntap, 0)) return LF_ENOMEM;
        const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
        for (int o = 0; o < out; o++) {
            const float center = (float)(scale * (o + 0.5));
            long long xmin = (long long)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            long long xmax = (long long)(center + support + 0.5);
            if (xmax > in) xmax = in;
            int n = (int)(xmax - xmin);
            if (n > ntap) n = ntap;
            float *w = t->w + (size_t)o * ntap, total = 0.0f;
            for (int j = 0; j < n; j++) {
                const float x = (float)((float)(j + xmin - center) + 0.5) * invscale;
                w[j] = f == LF_RESIZE_BICUBIC ? s_aa_cubic(x) : s_aa_linear(x);
                total += w[j];
            }
            for (int j = 0; j < n; j++)
                if (total != 0.0f) w[j] /= total;
            for (int j = 0; j < ntap; j++)
                t->idx[(size_t)o * ntap + j] = (int)xmin + (j < n ? j : 0);
        }
        return 0;
    }
    const int ntap = f == LF_RESIZE_BICUBIC ? 4 : f == LF_RESIZE_BILINEAR ? 2 : 1;
    if (s_taps_alloc(t, out, ntap, 0)) return LF_ENOMEM;
    for (int o = 0; o < out; o++) {
        int *ix = t->idx + (size_t)o * ntap;
        float *w = t->w + (size_t)o * ntap;
        if (f == LF_RESIZE_NEAREST || f == LF_RESIZE_NEAREST_EXACT) {
            long long s;
            if (f == LF_RESIZE_NEAREST && out == in)
                s = o;
            else if (f == LF_RESIZE_NEAREST && out == 2 * in)
                s = o >> 1;
            else if (f == LF_RESIZE_NEAREST)
                s = (long long)floorf((float)o * scale);
            else
                s = (long long)floorf((float)((o + 0.5) * scale));
            ix[0] = (int)(s < in - 1 ? s : in - 1);
            w[0] = 1.0f;
        } else if (f == LF_RESIZE_BILINEAR) {
            if (out == in) {
                ix[0] = ix[1] = o, w[0] = 1.0f, w[1] = 0.0f;
                continue;
            }
            float real = scale * ((float)o + 0.5f) - 0.5f;
            if (real < 0.0f) real = 0.0f;
            const int i0 = (int)real;
            ix[0] = i0, ix[1] = i0 + (i0 < in - 1 ? 1 : 0);
            float l1 = real - (float)i0;
            l1 = l1 < 0.0f ? 0.0f : l1 > 1.0f ? 1.0f : l1;
            w[0] = 1.0f - l1, w[1] = l1;
        } else {
            const float real = scale * ((float)o + 0.5f) - 0.5f;
            const int i0 = (int)floorf(real);
            const float x1 = real - (float)i0, x2 = 1.0f - x1, A = -0.75f;
            w[0] = s_cc2(x1 + 1.0f, A), w[1] = s_cc1(x1, A);
            w[2] = s_cc1(x2, A), w[3] = s_cc2(x2 + 1.0f, A);
            for (int k = 0; k < 4; k++) {
                int i = i0 - 1 + k;
                ix[k] = i < 0 ? 0 : i > in - 1 ? in - 1 : i;
            }
        }
    }
    return 0;
}

int lf_resize_latent(const float *src, int c, int h, int w, float *dst, int oh, int ow,
                     lf_resize_filter_t filter, int antialias) {
    if (!src || !dst || c < 1 || h < 1 || w < 1 || oh < 1 || ow < 1 || h > S_MAX_SIDE ||
        w > S_MAX_SIDE || oh > S_MAX_SIDE || ow > S_MAX_SIDE)
        return LF_EINVAL;
    if ((unsigned)filter >= LF_RESIZE_FILTER_COUNT || filter == LF_RESIZE_LANCZOS)
        return LF_EUNSUPPORTED;
    if (antialias && filter != LF_RESIZE_BILINEAR && filter != LF_RESIZE_BICUBIC)
        return LF_EUNSUPPORTED;
    s_taps_t tx = {0}, ty = {0};
    float *tmp = malloc((size_t)h * ow * sizeof *tmp);
    int rc = tmp ? s_torch_taps(&tx, w, ow, filter, antialias) : LF_ENOMEM;
    if (!rc) rc = s_torch_taps(&ty, h, oh, filter, antialias);
    for (int ch = 0; ch < c && !rc; ch++) {
        const float *s = src + (size_t)ch * h * w;
        float *d = dst + (size_t)ch * oh * ow;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < ow; x++) {
                const int *ix = tx.idx + (size_t)x * tx.ntap;
                const float *wt = tx.w + (size_t)x * tx.ntap;
                float acc = s[(size_t)y * w + ix[0]] * wt[0];
                for (int k = 1; k < tx.ntap; k++) acc += s[(size_t)y * w + ix[k]] * wt[k];
                tmp[(size_t)y * ow + x] = acc;
            }
        for (int y = 0; y < oh; y++) {
            const int *iy = ty.idx + (size_t)y * ty.ntap;
            const float *wt = ty.w + (size_t)y * ty.ntap;
            for (int x = 0; x < ow; x++) {
                float acc = tmp[(size_t)iy[0] * ow + x] * wt[0];
                for (int k = 1; k < ty.ntap; k++) acc += tmp[(size_t)iy[k] * ow + x] * wt[k];
                d[(size_t)y * ow + x] = acc;
            }
        }
    }
    free(tmp);
    s_taps_free(&tx);
    s_taps_free(&ty);
    return rc;
}

/* ---- Pillow (libImaging/Resample.c, Geometry.c, Pillow 9) ---- */

#define S_PREC 22 /* PRECISION_BITS = 32 - 8 - 2 */

static double s_pil_bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double s_pil_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double s_sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double s_pil_lanczos(double x) {
    return (-3.0 <= x && x < 3.0) ? s_sinc(x) * s_sinc(x / 3) : 0.0;
}

/* precompute_coeffs + normalize_coeffs_8bpc. */
static int s_pil_taps(s_taps_t *t, int in, int out, lf_resize_filter_t f) {
    double (*fn)(double) = f == LF_RESIZE_BICUBIC   ? s_pil_bicubic
                           : f == LF_RESIZE_LANCZOS ? s_pil_lanczos
                                                    : s_pil_bilinear;
    const double fsupport = f == LF_RESIZE_BICUBIC ? 2.0 : f == LF_RESIZE_LANCZOS ? 3.0 : 1.0;
    const double scale = (double)in / out;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = fsupport * filterscale;
    const int ntap = (int)ceil(support) * 2 + 1;
    double *k = malloc((size_t)ntap * sizeof *k);
    if (!k || s_taps_alloc(t, out, ntap, 1)) {
        free(k);
        return LF_ENOMEM;
    }
    for (int o = 0; o < out; o++) {
        const double center = (o + 0.5) * scale, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        if (xmax > ntap) xmax = ntap;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            k[x] = fn((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < ntap; x++) {
            double v = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            t->q[(size_t)o * ntap + x] =
                (int32_t)(v < 0 ? -0.5 + v * (1 << S_PREC) : 0.5 + v * (1 << S_PREC));
            t->idx[(size_t)o * ntap + x] = xmin + (x < xmax ? x : 0);
        }
    }
    free(k);
    return 0;
}

static inline uint8_t s_clip8(int32_t v) {
    v >>= S_PREC; /* arithmetic shift: floor */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* ImagingScaleAffine with a = (in/out, 0, 0, 0, in/out, 0): the positions
 * are accumulated in double, as Pillow does. */
static void s_pil_nearest_index(int *ix, int in, int out) {
    const double a = (double)in / out;
    double xo = a * 0.5;
    for (int o = 0; o < out; o++) {
        int v = xo < 0.0 ? -1 : (int)xo;
        ix[o] = v < 0 ? 0 : v >= in ? in - 1 : v;
        xo += a;
    }
}

int lf_resize_rgb8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh,
                   lf_resize_filter_t filter) {
    if (!src || !dst || sw < 1 || sh < 1 || dw < 1 || dh < 1 || sw > S_MAX_SIDE ||
        sh > S_MAX_SIDE || dw > S_MAX_SIDE || dh > S_MAX_SIDE)
        return LF_EINVAL;
    if ((unsigned)filter >= LF_RESIZE_FILTER_COUNT || filter == LF_RESIZE_NEAREST_EXACT)
        return LF_EUNSUPPORTED;
    if (filter == LF_RESIZE_NEAREST) {
        int *ix = malloc(((size_t)dw + dh) * sizeof *ix);
        if (!ix) return LF_ENOMEM;
        int *iy = ix + dw;
        s_pil_nearest_index(ix, sw, dw);
        s_pil_nearest_index(iy, sh, dh);
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++)
                memcpy(dst + ((size_t)y * dw + x) * 3, src + ((size_t)iy[y] * sw + ix[x]) * 3, 3);
        free(ix);
        return 0;
    }
    /* Horizontal pass (skipped when the width stays) into an 8-bit image,
     * then the vertical pass (skipped when the height stays). */
    s_taps_t tx = {0}, ty = {0};
    const int need_h = dw != sw, need_v = dh != sh;
    uint8_t *tmp = need_h && need_v ? malloc((size_t)sh * dw * 3) : NULL;
    int rc = (need_h && need_v && !tmp) ? LF_ENOMEM : 0;
    if (!rc && need_h) rc = s_pil_taps(&tx, sw, dw, filter);
    if (!rc && need_v) rc = s_pil_taps(&ty, sh, dh, filter);
    if (rc) {
        free(tmp);
        s_taps_free(&tx);
        s_taps_free(&ty);
        return rc;
    }
    const uint8_t *cur = src;
    if (!need_h && !need_v) memcpy(dst, src, (size_t)sw * sh * 3);
    if (need_h) {
        uint8_t *o = need_v ? tmp : dst;
        for (int y = 0; y < sh; y++)
            for (int x = 0; x < dw; x++) {
                const int *ix = tx.idx + (size_t)x * tx.ntap;
                const int32_t *k = tx.q + (size_t)x * tx.ntap;
                for (int ch = 0; ch < 3; ch++) {
                    int32_t ss = 1 << (S_PREC - 1);
                    for (int j = 0; j < tx.ntap; j++)
                        ss += (int32_t)src[((size_t)y * sw + ix[j]) * 3 + ch] * k[j];
                    o[((size_t)y * dw + x) * 3 + ch] = s_clip8(ss);
                }
            }
        cur = o;
    }
    if (need_v) {
        for (int y = 0; y < dh; y++) {
            const int *iy = ty.idx + (size_t)y * ty.ntap;
            const int32_t *k = ty.q + (size_t)y * ty.ntap;
            for (int x = 0; x < dw; x++)
                for (int ch = 0; ch < 3; ch++) {
                    int32_t ss = 1 << (S_PREC - 1);
                    for (int j = 0; j < ty.ntap; j++)
                        ss += (int32_t)cur[((size_t)iy[j] * dw + x) * 3 + ch] * k[j];
                    dst[((size_t)y * dw + x) * 3 + ch] = s_clip8(ss);
                }
        }
    }
    free(tmp);
    s_taps_free(&tx);
    s_taps_free(&ty);
    return 0;
}

/* ---- A1111's built-in upscalers ---- */

static const lf_resize_builtin_t s_builtins[] = {
    {"Latent", 1, LF_RESIZE_BILINEAR, 0},
    {"Latent (antialiased)", 1, LF_RESIZE_BILINEAR, 1},
    {"Latent (bicubic)", 1, LF_RESIZE_BICUBIC, 0},
    {"Latent (bicubic antialiased)", 1, LF_RESIZE_BICUBIC, 1},
    {"Latent (nearest)", 1, LF_RESIZE_NEAREST, 0},
    {"Latent (nearest-exact)", 1, LF_RESIZE_NEAREST_EXACT, 0},
    {"None", 0, LF_RESIZE_LANCZOS, 0},
    {"Lanczos", 0, LF_RESIZE_LANCZOS, 0},
    {"Nearest", 0, LF_RESIZE_NEAREST, 0},
};

int lf_resize_builtin_count(void) { return (int)(sizeof s_builtins / sizeof *s_builtins); }

const lf_resize_builtin_t *lf_resize_builtin_at(int i) {
    return i >= 0 && i < lf_resize_builtin_count() ? &s_builtins[i] : NULL;
}

const lf_resize_builtin_t *lf_resize_builtin_find(const char *name) {
    for (int i = 0; name && i < lf_resize_builtin_count(); i++)
        if (strcmp(s_builtins[i].name, name) == 0) return &s_builtins[i];
    return NULL;
}
