/* lf_inpaint: A1111's inpainting image work (lf_inpaint.h), with Pillow's
 * integer arithmetic where Pillow does the work. */
#include "lf_inpaint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_resize.h"

/* Pillow's rounding helpers (ImagingUtils.h, AlphaComposite.c). */
#define S_DIV255(a) (((((a) + 128u) >> 8) + ((a) + 128u)) >> 8)
#define S_SHIFTFORDIV255(a) ((((a) >> 8) + (a)) >> 8)
#define S_PRECISION_BITS 7

void lf_inpaint_luma(const uint8_t *rgb, int w, int h, uint8_t *l)
{
    for (size_t p = 0; p < (size_t)w * (size_t)h; p++) {
        const uint8_t *c = rgb + p * 3;
        l[p] = (uint8_t)((c[0] * 19595u + c[1] * 38470u + c[2] * 7471u + 0x8000u) >> 16);
    }
}

void lf_inpaint_mask_l(const uint8_t *px, int channels, int w, int h, uint8_t *l)
{
    const size_t n = (size_t)w * (size_t)h, c = channels == 4 ? 4 : 3;
    int alpha = 0;
    for (size_t p = 0; c == 4 && p < n && !alpha; p++) alpha = px[p * 4 + 3] != 255;
    for (size_t p = 0; p < n; p++) {
        const uint8_t *q = px + p * c;
        l[p] = alpha ? (uint8_t)(q[3] > 128 ? 255 : 0)
                     : (uint8_t)((q[0] * 19595u + q[1] * 38470u + q[2] * 7471u + 0x8000u) >> 16);
    }
}

void lf_inpaint_invert(uint8_t *m, int w, int h)
{
    for (size_t p = 0; p < (size_t)w * (size_t)h; p++) m[p] = (uint8_t)(255 - m[p]);
}

/* ---- mask blur (cv2.GaussianBlur along one axis) ------------------------- */

static int s_reflect101(int i, int n)
{
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* cv2's bit-exact 8-bit Gaussian kernel (smooth.dispatch.cpp:
 * getGaussianKernelBitExact, then getGaussianKernelFixedPoint_ED): the
 * normalized double kernel rounded to 8 fraction bits with the rounding
 * error carried from the tails inwards, the centre taking the rest of 256. */
static void s_cv_kernel(int n, double sigma, int *q)
{
    const double scale2 = -0.125 / (sigma * sigma);
    const int n2 = (n - 1) / 2;
    double sum = 0, *v = malloc((size_t)(n2 + 1) * sizeof *v);
    if (!v) { /* n is small (a few hundred taps at most); fall back to a box */
        for (int i = 0; i < n; i++) q[i] = i == n2 ? 256 : 0;
        return;
    }
    for (int i = 0, x = 1 - n; i < n2; i++, x += 2) sum += v[i] = exp((double)(x * x) * scale2);
    sum = sum * 2 + 1;
    const double mul1 = 1 / sum;
    double err = 0;
    int total = 0;
    for (int i = 0; i < n2; i++) {
        double adj = v[i] * mul1 * 256 + err;
        int r = (int)rint(adj);
        err = adj - r;
        q[i] = q[n - 1 - i] = r;
        total += r;
    }
    q[n2] = 256 - 2 * total;
    free(v);
}

/* One axis of cv2.GaussianBlur on CV_8U (its fixed-point path: the taps
 * times the 8-bit samples, then (sum + 128) >> 8; the other axis' kernel
 * is [1]): n lines of len samples, stride st between samples, lst between
 * lines; BORDER_REFLECT_101. */
static int s_blur_axis(uint8_t *m, int len, int n, size_t st, size_t lst, double sigma)
{
    const int k = 2 * (int)(2.5 * sigma + 0.5) + 1, r = k / 2;
    int *kern = malloc((size_t)k * sizeof *kern);
    uint8_t *line = malloc((size_t)len);
    if (!kern || !line) {
        free(kern), free(line);
        return LF_ENOMEM;
    }
    s_cv_kernel(k, sigma, kern);
    for (int l = 0; l < n; l++) {
        uint8_t *base = m + (size_t)l * lst;
        for (int i = 0; i < len; i++) line[i] = base[(size_t)i * st];
        for (int i = 0; i < len; i++) {
            uint32_t acc = 0;
            for (int j = -r; j <= r; j++) acc += (uint32_t)kern[j + r] * line[s_reflect101(i + j, len)];
            acc = (acc + 128) >> 8;
            base[(size_t)i * st] = (uint8_t)(acc > 255 ? 255 : acc);
        }
    }
    free(kern);
    free(line);
    return 0;
}

int lf_inpaint_blur(uint8_t *m, int w, int h, double sigma_x, double sigma_y)
{
    if (!m || w < 1 || h < 1 || !(sigma_x >= 0) || !(sigma_y >= 0) || sigma_x > 1e4 || sigma_y > 1e4)
        return LF_EINVAL;
    int rc = 0;
    if (sigma_x > 0) rc = s_blur_axis(m, w, h, 1, (size_t)w, sigma_x);
    if (rc == 0 && sigma_y > 0) rc = s_blur_axis(m, h, w, (size_t)w, 1, sigma_y);
    return rc;
}

/* ---- crop region (masking.py) ------------------------------------------- */

int lf_inpaint_crop_region(const uint8_t *m, int w, int h, int pad, int pw, int ph, int r[4])
{
    int x1 = w, y1 = h, x2 = -1, y2 = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (m[(size_t)y * w + x]) {
                if (x < x1) x1 = x;
                if (x > x2) x2 = x;
                if (y < y1) y1 = y;
                if (y > y2) y2 = y;
            }
    if (x2 < 0) return 1;
    /* get_crop_region: (left - pad, top - pad, right + pad, bottom + pad)
     * clamped, right / bottom exclusive. */
    x1 = x1 - pad > 0 ? x1 - pad : 0;
    y1 = y1 - pad > 0 ? y1 - pad : 0;
    x2 = x2 + 1 + pad < w ? x2 + 1 + pad : w;
    y2 = y2 + 1 + pad < h ? y2 + 1 + pad : h;
    /* expand_crop_region, as written there (Python floats and floor division). */
    double ratio_crop = (double)(x2 - x1) / (y2 - y1), ratio_proc = (double)pw / ph;
    if (ratio_crop > ratio_proc) {
        double desired = (x2 - x1) / ratio_proc;
        int diff = (int)(desired - (y2 - y1));
        int half = diff >= 0 ? diff / 2 : -((-diff + 1) / 2); /* Python // */
        y1 -= half;
        y2 += diff - half;
        if (y2 >= h) {
            int d = y2 - h;
            y2 -= d;
            y1 -= d;
        }
        if (y1 < 0) {
            y2 -= y1;
            y1 = 0;
        }
        if (y2 >= h) y2 = h;
    } else {
        double desired = (y2 - y1) * ratio_proc;
        int diff = (int)(desired - (x2 - x1));
        int half = diff >= 0 ? diff / 2 : -((-diff + 1) / 2);
        x1 -= half;
        x2 += diff - half;
        if (x2 >= w) {
            int d = x2 - w;
            x2 -= d;
            x1 -= d;
        }
        if (x1 < 0) {
            x2 -= x1;
            x1 = 0;
        }
        if (x2 >= w) x2 = w;
    }
    r[0] = x1, r[1] = y1, r[2] = x2, r[3] = y2;
    return 0;
}

void lf_inpaint_crop(const uint8_t *src, int w, const int r[4], uint8_t *dst)
{
    const int cw = r[2] - r[0];
    for (int y = r[1]; y < r[3]; y++)
        memcpy(dst + (size_t)(y - r[1]) * cw * 3, src + ((size_t)y * w + r[0]) * 3, (size_t)cw * 3);
}

/* ---- resize_image modes 1 and 2 ----------------------------------------- */

/* Pillow's bicubic filter (a = -0.5). */
static double s_bicubic(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's resize (default filter: BICUBIC, as A1111 calls it) of a
 * zero-size box at an edge of t (tw x th):
 * (0, 0, w, 0) / (0, h, w, h) for a row, (0, 0, 0, h) / (w, 0, w, h) for a
 * column: every output line is the same mix of the lines around that edge
 * (precompute_coeffs with scale 0, 22-bit taps). line gets tw (row) or th
 * (column) RGB pixels. */
static void s_edge_line(const uint8_t *t, int tw, int th, int row, int at_end, uint8_t *line)
{
    const int n = row ? th : tw, len = row ? tw : th;
    const double center = at_end ? n : 0;
    int xmin = (int)(center - 2.0 + 0.5), xmax = (int)(center + 2.0 + 0.5);
    if (xmin < 0) xmin = 0;
    if (xmax > n) xmax = n;
    double k[8], ww = 0;
    int32_t q[8];
    const int cnt = xmax - xmin;
    for (int x = 0; x < cnt; x++) ww += k[x] = s_bicubic(x + xmin - center + 0.5);
    for (int x = 0; x < cnt; x++) {
        double v = ww != 0.0 ? k[x] / ww : k[x];
        q[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << 22) : 0.5 + v * (1 << 22));
    }
    for (int p = 0; p < len; p++)
        for (int c = 0; c < 3; c++) {
            int32_t ss = 1 << 21;
            for (int x = 0; x < cnt; x++) {
                const int i = xmin + x;
                ss += t[((size_t)(row ? i : p) * tw + (row ? p : i)) * 3 + c] * q[x];
            }
            ss >>= 22;
            line[(size_t)p * 3 + c] = (uint8_t)(ss < 0 ? 0 : ss > 255 ? 255 : ss);
        }
}

int lf_inpaint_resize_mode(int mode, const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    if (!src || !dst || sw < 1 || sh < 1 || dw < 1 || dh < 1 || (mode != 1 && mode != 2)) return LF_EINVAL;
    const double ratio = (double)dw / dh, src_ratio = (double)sw / sh;
    int tw, th;
    if (mode == 1) {
        tw = ratio > src_ratio ? dw : (int)((long)sw * dh / sh);
        th = ratio <= src_ratio ? dh : (int)((long)sh * dw / sw);
    } else {
        tw = ratio < src_ratio ? dw : (int)((long)sw * dh / sh);
        th = ratio >= src_ratio ? dh : (int)((long)sh * dw / sw);
    }
    if (tw < 1) tw = 1;
    if (th < 1) th = 1;
    uint8_t *t = malloc((size_t)tw * th * 3);
    if (!t) return LF_ENOMEM;
    int rc = lf_resize_rgb8(src, sw, sh, t, tw, th, LF_RESIZE_LANCZOS);
    if (rc) {
        free(t);
        return rc;
    }
    memset(dst, 0, (size_t)dw * dh * 3);
    const int ox = dw / 2 - tw / 2, oy = dh / 2 - th / 2; /* paste box (may be negative: a crop) */
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            const int sx = x - ox, sy = y - oy;
            if (sx >= 0 && sx < tw && sy >= 0 && sy < th)
                memcpy(dst + ((size_t)y * dw + x) * 3, t + ((size_t)sy * tw + sx) * 3, 3);
        }
    /* Mode 2 fills the margins with the resized image's edge, each margin
     * line Pillow's resize of a zero-size box there. */
    if (mode == 2 && (oy > 0 || ox > 0)) {
        const int rowm = oy > 0; /* ratio < src_ratio: top and bottom margins */
        const int m = rowm ? oy : ox, len = rowm ? tw : th;
        uint8_t *line = malloc((size_t)len * 3);
        if (!line) {
            free(t);
            return LF_ENOMEM;
        }
        for (int end = 0; end < 2; end++) {
            s_edge_line(t, tw, th, rowm, end, line);
            const int from = end ? (rowm ? m + th : m + tw) : 0, to = end ? from + m : m;
            for (int a = from; a < to && a < (rowm ? dh : dw); a++)
                for (int b = 0; b < len; b++) {
                    const size_t o = rowm ? (size_t)a * dw + b : (size_t)b * dw + a;
                    memcpy(dst + o * 3, line + (size_t)b * 3, 3);
                }
        }
        free(line);
    }
    free(t);
    return 0;
}

/* ---- Pillow pieces: premultiply, paste with an L mask, unpremultiply,
 * alpha_composite, box blur ------------------------------------------------ */

void lf_inpaint_overlay(const uint8_t *rgb, const uint8_t *m, int w, int h, uint8_t *rgba)
{
    for (size_t p = 0; p < (size_t)w * (size_t)h; p++) {
        /* RGB -> RGBA (alpha 255) -> RGBa: unchanged. paste(mask = 255 - m)
         * into zeros: BLEND(mask, 0, in) = DIV255(in * mask). */
        const unsigned a = 255u - m[p];
        uint8_t px[4];
        for (int c = 0; c < 3; c++) px[c] = (uint8_t)(S_DIV255(rgb[p * 3 + c] * a));
        px[3] = (uint8_t)(S_DIV255(255u * a));
        /* RGBa -> RGBA (Convert.c rgba2rgbA). */
        uint8_t *o = rgba + p * 4;
        const unsigned al = px[3];
        for (int c = 0; c < 3; c++) {
            unsigned v = al == 255 || al == 0 ? px[c] : 255u * px[c] / al;
            o[c] = (uint8_t)(v > 255 ? 255 : v);
        }
        o[3] = px[3];
    }
}

void lf_inpaint_alpha_composite(uint8_t *dst, const uint8_t *src, int w, int h)
{
    for (size_t p = 0; p < (size_t)w * (size_t)h; p++) {
        uint8_t *d = dst + p * 4;
        const uint8_t *s = src + p * 4;
        if (s[3] == 0) continue;
        uint32_t blend = d[3] * (255u - s[3]);
        uint32_t outa255 = s[3] * 255u + blend;
        uint32_t coef1 = s[3] * 255u * 255u * (1u << S_PRECISION_BITS) / outa255;
        uint32_t coef2 = 255u * (1u << S_PRECISION_BITS) - coef1;
        for (int c = 0; c < 3; c++) {
            uint32_t t = s[c] * coef1 + d[c] * coef2 + (0x80u << S_PRECISION_BITS);
            d[c] = (uint8_t)(S_SHIFTFORDIV255(t) >> S_PRECISION_BITS);
        }
        d[3] = (uint8_t)S_SHIFTFORDIV255(outa255 + 0x80u);
    }
}

/* Pillow 9.4 BoxBlur.c: ImagingLineBoxBlur32 over 4-byte pixels. */
static void s_line_box(uint8_t *out, const uint8_t *in, int lastx, int radius, int edgeA, int edgeB,
                       uint32_t ww, uint32_t fw)
{
    uint32_t acc[4], bulk[4];
#define IN(x, c) ((uint32_t)in[(size_t)(x) * 4 + (c)])
#define MOVE_ACC(sub, add) \
    for (int c = 0; c < 4; c++) acc[c] += IN(add, c) - IN(sub, c)
#define ADD_FAR(left, right) \
    for (int c = 0; c < 4; c++) bulk[c] = acc[c] * ww + (IN(left, c) + IN(right, c)) * fw
#define SAVE(x) \
    for (int c = 0; c < 4; c++) out[(size_t)(x) * 4 + c] = (uint8_t)((bulk[c] + (1u << 23)) >> 24)
    for (int c = 0; c < 4; c++) acc[c] = IN(0, c) * (uint32_t)(radius + 1);
    for (int x = 0; x < edgeA - 1; x++)
        for (int c = 0; c < 4; c++) acc[c] += IN(x, c);
    for (int c = 0; c < 4; c++) acc[c] += IN(lastx, c) * (uint32_t)(radius - edgeA + 1);
    if (edgeA <= edgeB) {
        for (int x = 0; x < edgeA; x++) {
            MOVE_ACC(0, x + radius);
            ADD_FAR(0, x + radius + 1);
            SAVE(x);
        }
        for (int x = edgeA; x < edgeB; x++) {
            MOVE_ACC(x - radius - 1, x + radius);
            ADD_FAR(x - radius - 1, x + radius + 1);
            SAVE(x);
        }
        for (int x = edgeB; x <= lastx; x++) {
            MOVE_ACC(x - radius - 1, lastx);
            ADD_FAR(x - radius - 1, lastx);
            SAVE(x);
        }
    } else {
        for (int x = 0; x < edgeB; x++) {
            MOVE_ACC(0, x + radius);
            ADD_FAR(0, x + radius + 1);
            SAVE(x);
        }
        for (int x = edgeB; x < edgeA; x++) {
            MOVE_ACC(0, lastx);
            ADD_FAR(0, lastx);
            SAVE(x);
        }
        for (int x = edgeA; x <= lastx; x++) {
            MOVE_ACC(x - radius - 1, lastx);
            ADD_FAR(x - radius - 1, lastx);
            SAVE(x);
        }
    }
#undef IN
#undef MOVE_ACC
#undef ADD_FAR
#undef SAVE
}

/* ImagingHorizontalBoxBlur in place on a [ys][xs][4] image. */
static void s_hbox(uint8_t *im, int xs, int ys, float fradius, uint8_t *line)
{
    int radius = (int)fradius;
    uint32_t ww = (uint32_t)((float)(1u << 24) / (fradius * 2 + 1));
    uint32_t fw = ((1u << 24) - (uint32_t)(radius * 2 + 1) * ww) / 2;
    int edgeA = radius + 1 < xs ? radius + 1 : xs;
    int edgeB = xs - radius - 1 > 0 ? xs - radius - 1 : 0;
    for (int y = 0; y < ys; y++) {
        uint8_t *row = im + (size_t)y * xs * 4;
        s_line_box(line, row, xs - 1, radius, edgeA, edgeB, ww, fw);
        memcpy(row, line, (size_t)xs * 4);
    }
}

static void s_transpose(const uint8_t *src, int xs, int ys, uint8_t *dst)
{
    for (int y = 0; y < ys; y++)
        for (int x = 0; x < xs; x++) memcpy(dst + ((size_t)x * ys + y) * 4, src + ((size_t)y * xs + x) * 4, 4);
}

/* _gaussian_blur_radius (BoxBlur.c), in float as there. */
static float s_gauss_radius(float radius, int passes)
{
    float sigma2 = radius * radius / passes;
    float L = (float)sqrt(12.0 * sigma2 + 1.0);
    float l = floorf((L - 1.0f) / 2.0f);
    float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
    a /= 6 * (sigma2 - (l + 1) * (l + 1));
    return l + a;
}

/* image.filter(GaussianBlur(radius)) on a [h][w][4] image, in place. */
static int s_gaussian(uint8_t *im, int w, int h, float radius)
{
    float r = s_gauss_radius(radius, 3);
    if (r == 0) return 0;
    int n = w > h ? w : h;
    uint8_t *line = malloc((size_t)n * 4), *t = malloc((size_t)w * h * 4);
    if (!line || !t) {
        free(line), free(t);
        return LF_ENOMEM;
    }
    for (int i = 0; i < 3; i++) s_hbox(im, w, h, r, line);
    s_transpose(im, w, h, t);
    for (int i = 0; i < 3; i++) s_hbox(t, h, w, r, line);
    s_transpose(t, h, w, im);
    free(line);
    free(t);
    return 0;
}

int lf_inpaint_fill(uint8_t *rgb, const uint8_t *mask, int w, int h)
{
    const size_t n = (size_t)w * (size_t)h;
    uint8_t *masked = malloc(n * 4), *blur = malloc(n * 4), *mod = calloc(n, 4);
    if (!masked || !blur || !mod) {
        free(masked), free(blur), free(mod);
        return LF_ENOMEM;
    }
    /* image_masked: RGBa paste of the image with mask 255 - mask (premultiplied). */
    for (size_t p = 0; p < n; p++) {
        const unsigned a = 255u - mask[p];
        for (int c = 0; c < 3; c++) masked[p * 4 + c] = (uint8_t)(S_DIV255(rgb[p * 3 + c] * a));
        masked[p * 4 + 3] = (uint8_t)(S_DIV255(255u * a));
    }
    static const struct { float radius; int repeats; } passes[] = {
        {256, 1}, {64, 1}, {16, 2}, {4, 4}, {2, 2}, {0, 1}};
    int rc = 0;
    for (size_t i = 0; i < sizeof passes / sizeof passes[0] && !rc; i++) {
        memcpy(blur, masked, n * 4);
        if ((rc = s_gaussian(blur, w, h, passes[i].radius)) != 0) break;
        /* .convert('RGBA'): unpremultiply. */
        for (size_t p = 0; p < n; p++) {
            unsigned al = blur[p * 4 + 3];
            if (al != 255 && al != 0)
                for (int c = 0; c < 3; c++) {
                    unsigned v = 255u * blur[p * 4 + c] / al;
                    blur[p * 4 + c] = (uint8_t)(v > 255 ? 255 : v);
                }
        }
        for (int k = 0; k < passes[i].repeats; k++) lf_inpaint_alpha_composite(mod, blur, w, h);
    }
    /* .convert("RGB") drops the alpha. */
    if (!rc)
        for (size_t p = 0; p < n; p++) memcpy(rgb + p * 3, mod + p * 4, 3);
    free(masked), free(blur), free(mod);
    return rc;
}

/* ---- latent mask -------------------------------------------------------- */

int lf_inpaint_latent_mask(const uint8_t *mask, int W, int H, float *nmask, int w, int h)
{
    if (!mask || !nmask || W < 1 || H < 1 || w < 1 || h < 1) return LF_EINVAL;
    uint8_t *rgb = malloc((size_t)W * H * 3), *small = malloc((size_t)w * h * 3);
    if (!rgb || !small) {
        free(rgb), free(small);
        return LF_ENOMEM;
    }
    for (size_t p = 0; p < (size_t)W * H; p++) rgb[p * 3] = rgb[p * 3 + 1] = rgb[p * 3 + 2] = mask[p];
    /* Image.resize's default filter for RGB is BICUBIC (Pillow >= 7). */
    int rc = lf_resize_rgb8(rgb, W, H, small, w, h, LF_RESIZE_BICUBIC);
    if (!rc)
        for (size_t p = 0; p < (size_t)w * h; p++) nmask[p] = rintf(small[p * 3] / 255.0f); /* np.around: half to even */
    free(rgb), free(small);
    return rc;
}
