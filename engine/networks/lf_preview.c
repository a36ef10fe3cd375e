/* lf_preview: least-squares fit of a latent-to-RGB linear map and its
 * application (see lf_preview.h). */
#include "lf_preview.h"

#include <math.h>
#include <string.h>

#include "lf_error.h"

const char *lf_preview_kind_name(lf_preview_kind_t k)
{
    switch (k) {
    case LF_PREVIEW_APPROX: return "approx";
    case LF_PREVIEW_TAESD: return "taesd";
    default: return "none";
    }
}

int lf_preview_fit_init(lf_preview_fit_t *fit, int channels)
{
    if (!fit || channels < 1 || channels > LF_PREVIEW_MAX_CHANNELS) return LF_EINVAL;
    memset(fit, 0, sizeof *fit);
    fit->channels = channels;
    return 0;
}

int lf_preview_fit_add(lf_preview_fit_t *fit, const float *z, const float *rgb, int h, int w)
{
    if (!fit || !z || !rgb || h < 1 || w < 1 || fit->channels < 1 ||
        fit->channels > LF_PREVIEW_MAX_CHANNELS)
        return LF_EINVAL;
    const int C = fit->channels;
    const size_t plane = (size_t)h * (size_t)w;
    for (size_t i = 0; i < plane * (size_t)C; i++)
        if (!isfinite(z[i])) return LF_EINVAL;
    for (size_t i = 0; i < plane * 3; i++)
        if (!isfinite(rgb[i])) return LF_EINVAL;
    for (size_t p = 0; p < plane; p++) {
        double zp[LF_PREVIEW_MAX_CHANNELS], rp[3];
        for (int c = 0; c < C; c++) zp[c] = z[(size_t)c * plane + p];
        for (int k = 0; k < 3; k++) rp[k] = rgb[(size_t)k * plane + p];
        for (int c = 0; c < C; c++) {
            fit->sz[c] += zp[c];
            for (int d = 0; d <= c; d++) fit->szz[c][d] += zp[c] * zp[d];
            for (int k = 0; k < 3; k++) fit->szr[c][k] += zp[c] * rp[k];
        }
        for (int k = 0; k < 3; k++) fit->sr[k] += rp[k];
    }
    fit->n += (double)plane;
    return 0;
}

int lf_preview_fit_solve(const lf_preview_fit_t *fit, lf_preview_map_t *out)
{
    if (!fit || !out || fit->channels < 1 || fit->channels > LF_PREVIEW_MAX_CHANNELS)
        return LF_EINVAL;
    const int C = fit->channels;
    const double n = fit->n;
    if (n < C + 1) return LF_EINVAL;
    /* Centred normal equations: cov(z) A^T = cov(z, rgb), b = mean(rgb) -
     * A mean(z). Centring keeps the bias out of the matrix, so a constant
     * channel shows as a zero variance instead of hiding in the bias. */
    double mz[LF_PREVIEW_MAX_CHANNELS], mr[3];
    double L[LF_PREVIEW_MAX_CHANNELS][LF_PREVIEW_MAX_CHANNELS];
    double y[LF_PREVIEW_MAX_CHANNELS][3];
    for (int c = 0; c < C; c++) mz[c] = fit->sz[c] / n;
    for (int k = 0; k < 3; k++) mr[k] = fit->sr[k] / n;
    double vmax = 0.0;
    for (int c = 0; c < C; c++) {
        for (int d = 0; d <= c; d++) L[c][d] = fit->szz[c][d] / n - mz[c] * mz[d];
        for (int k = 0; k < 3; k++) y[c][k] = fit->szr[c][k] / n - mz[c] * mr[k];
        if (L[c][c] > vmax) vmax = L[c][c];
    }
    if (!(vmax > 0.0)) return LF_EINVAL;
    /* Cholesky in place (lower triangle), refusing a pivot that is noise. */
    for (int j = 0; j < C; j++) {
        double s = L[j][j];
        for (int k = 0; k < j; k++) s -= L[j][k] * L[j][k];
        if (!(s > 1e-9 * vmax)) return LF_EINVAL;
        L[j][j] = sqrt(s);
        for (int i = j + 1; i < C; i++) {
            double t = L[i][j];
            for (int k = 0; k < j; k++) t -= L[i][k] * L[j][k];
            L[i][j] = t / L[j][j];
        }
    }
    /* L L^T x = y, for the three colour columns at once. */
    for (int i = 0; i < C; i++)
        for (int k = 0; k < 3; k++) {
            double t = y[i][k];
            for (int j = 0; j < i; j++) t -= L[i][j] * y[j][k];
            y[i][k] = t / L[i][i];
        }
    for (int i = C - 1; i >= 0; i--)
        for (int k = 0; k < 3; k++) {
            double t = y[i][k];
            for (int j = i + 1; j < C; j++) t -= L[j][i] * y[j][k];
            y[i][k] = t / L[i][i];
        }
    lf_preview_map_t m = {.channels = C};
    for (int k = 0; k < 3; k++) {
        double b = mr[k];
        for (int c = 0; c < C; c++) {
            m.a[k][c] = (float)y[c][k];
            b -= y[c][k] * mz[c];
        }
        m.b[k] = (float)b;
    }
    *out = m;
    return 0;
}

int lf_preview_block_mean(const float *img, int h, int w, int s, float *out)
{
    if (!img || !out || h < 1 || w < 1 || s < 1) return LF_EINVAL;
    const size_t W = (size_t)w * (size_t)s, plane = W * (size_t)h * (size_t)s;
    const double inv = 1.0 / ((double)s * s);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0.0;
                for (int dy = 0; dy < s; dy++) {
                    const float *row = img + (size_t)c * plane + ((size_t)y * s + dy) * W +
                                       (size_t)x * s;
                    for (int dx = 0; dx < s; dx++) acc += row[dx];
                }
                out[((size_t)c * h + y) * w + x] = (float)(acc * inv);
            }
    return 0;
}

int lf_preview_upscale(int h, int w, int vae_scale)
{
    const int side = h > w ? h : w;
    int up = 4;
    if (vae_scale >= 1 && up > vae_scale) up = vae_scale;
    while (up > 1 && (side < 1 || side * up > 512)) up--;
    return up;
}

static uint8_t s_u8(float v)
{
    v = (v + 1.0f) * 127.5f;
    if (!(v > 0.0f)) return 0; /* NaN too: a diverged latent shows black, not garbage */
    return v > 255.0f ? 255 : (uint8_t)lrintf(v);
}

int lf_preview_apply(const lf_preview_map_t *map, const float *z, int h, int w, int up,
                     uint8_t *rgb)
{
    if (!map || !z || !rgb || h < 1 || w < 1 || up < 1 || up > 8 || map->channels < 1 ||
        map->channels > LF_PREVIEW_MAX_CHANNELS)
        return LF_EINVAL;
    const int C = map->channels;
    const size_t plane = (size_t)h * (size_t)w, W = (size_t)w * (size_t)up;
    for (int y = 0; y < h; y++) {
        uint8_t *row = rgb + (size_t)y * up * W * 3;
        for (int x = 0; x < w; x++) {
            uint8_t px[3];
            for (int k = 0; k < 3; k++) {
                float v = map->b[k];
                for (int c = 0; c < C; c++)
                    v += map->a[k][c] * z[(size_t)c * plane + (size_t)y * w + x];
                px[k] = s_u8(v);
            }
            for (int dx = 0; dx < up; dx++) memcpy(row + ((size_t)x * up + dx) * 3, px, 3);
        }
        /* The other up - 1 rows of this latent row are copies of the first. */
        for (int dy = 1; dy < up; dy++) memcpy(row + (size_t)dy * W * 3, row, W * 3);
    }
    return 0;
}

const float lf_preview_flux_factors[16][3] = {
    {-0.0346f, 0.0244f, 0.0681f},  {0.0034f, 0.0210f, 0.0687f},   {0.0275f, -0.0668f, -0.0433f},
    {-0.0174f, 0.0160f, 0.0617f},  {0.0859f, 0.0721f, 0.0329f},   {0.0004f, 0.0383f, 0.0115f},
    {0.0405f, 0.0861f, 0.0915f},   {-0.0236f, -0.0185f, -0.0259f}, {-0.0245f, 0.0250f, 0.1180f},
    {0.1008f, 0.0755f, -0.0421f},  {-0.0515f, 0.0201f, 0.0011f},  {0.0428f, -0.0012f, -0.0036f},
    {0.0817f, 0.0765f, 0.0749f},   {-0.1264f, -0.0522f, -0.1103f}, {-0.0280f, -0.0881f, -0.0499f},
    {-0.1262f, -0.0982f, -0.0778f}};
const float lf_preview_flux_bias[3] = {-0.0329f, -0.0718f, -0.0851f};

int lf_preview_map_affine(const float *factors, const float *bias, int channels, float scale,
                          float shift, lf_preview_map_t *out)
{
    if (!factors || !bias || !out || channels < 1 || channels > LF_PREVIEW_MAX_CHANNELS) return LF_EINVAL;
    lf_preview_map_t m = {.channels = channels};
    for (int k = 0; k < 3; k++) {
        double b = bias[k];
        for (int c = 0; c < channels; c++) {
            m.a[k][c] = factors[c * 3 + k] * scale;
            b -= (double)factors[c * 3 + k] * scale * shift;
        }
        m.b[k] = (float)b;
    }
    *out = m;
    return 0;
}
