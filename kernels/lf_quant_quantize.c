/* lf_quant_quantize: f32 -> ggml blocks. For the types whose quantizer the
 * gguf package has in numpy (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), written to give
 * the same bytes as gguf.quants.quantize: the same f32 (or, for Q4_0/Q5_0,
 * f64) operations in the same order, round-half-away for Q8_0, truncation
 * of x*id + 0.5 for the others, the first largest |x| as Q4_0/Q5_0's scale
 * source, f16 scales rounded to nearest even. Q4_K, Q5_K, Q6_K and Q8_K
 * follow ggml's reference quantizers (below). Built with -ffp-contract=off like lf_quant.c. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "lf_error.h"
#include "lf_quant.h"
#include "lf_tensor.h"

static void s_put_h(unsigned char *p, float f)
{
    uint16_t h = lf_f32_to_f16(f);
    p[0] = (unsigned char)(h & 0xFF);
    p[1] = (unsigned char)(h >> 8);
}

static float s_inv(float d)
{
    return d == 0.0f ? 0.0f : 1.0f / d;
}

/* The element of largest magnitude, the first one on ties (numpy argmax). */
static float s_absmax_signed(const float *x)
{
    float best = x[0], ab = fabsf(x[0]);
    for (int j = 1; j < 32; j++)
        if (fabsf(x[j]) > ab) ab = fabsf(x[j]), best = x[j];
    return best;
}

static void s_min_max(const float *x, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo, *mx = hi;
}

/* Symmetric 4/5-bit: q = trunc(f32(f64(x) * f64(id) + off)) clipped to top
 * (gguf's "cursed" Q4_0/Q5_0 rounding, computed in double as numpy does). */
static void s_sym(const float *x, float div, double off, int top, unsigned char *q, float *d_out)
{
    float d = s_absmax_signed(x) / div;
    float id = s_inv(d);
    for (int j = 0; j < 32; j++) {
        float v = truncf((float)((double)x[j] * (double)id + off));
        int qi = (int)(unsigned char)v;
        q[j] = (unsigned char)(qi > top ? top : qi);
    }
    *d_out = d;
}

/* Asymmetric 4/5-bit: q = trunc((x - min) * id + 0.5f) clipped to top. */
static void s_asym(const float *x, float levels, int top, unsigned char *q, float *d_out, float *m_out)
{
    float mn, mx;
    s_min_max(x, &mn, &mx);
    float d = (mx - mn) / levels;
    float id = s_inv(d);
    for (int j = 0; j < 32; j++) {
        float v = truncf((x[j] - mn) * id + 0.5f);
        int qi = (int)(unsigned char)v;
        q[j] = (unsigned char)(qi > top ? top : qi);
    }
    *d_out = d, *m_out = mn;
}

static void s_nibbles(const unsigned char *q, unsigned char *qs)
{
    for (int j = 0; j < 16; j++) qs[j] = (unsigned char)((q[j] & 0x0F) | (q[j + 16] << 4));
}

static void s_high_bits(const unsigned char *q, unsigned char *qh)
{
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)(q[j] >> 4 & 1) << j;
    for (int i = 0; i < 4; i++) qh[i] = (unsigned char)(h >> (8 * i));
}

static void s_q8_0(const float *x, unsigned char *b)
{
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
    float d = amax / 127.0f, id = s_inv(d);
    s_put_h(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (unsigned char)(int8_t)(int)roundf(x[j] * id);
}

static void s_q4_0(const float *x, unsigned char *b)
{
    unsigned char q[32];
    float d;
    s_sym(x, -8.0f, 8.5, 15, q, &d);
    s_put_h(b, d);
    s_nibbles(q, b + 2);
}

static void s_q5_0(const float *x, unsigned char *b)
{
    unsigned char q[32];
    float d;
    s_sym(x, -16.0f, 16.5, 31, q, &d);
    s_put_h(b, d);
    s_high_bits(q, b + 2);
    s_nibbles(q, b + 6);
}

static void s_q4_1(const float *x, unsigned char *b)
{
    unsigned char q[32];
    float d, m;
    s_asym(x, 15.0f, 15, q, &d, &m);
    s_put_h(b, d);
    s_put_h(b + 2, m);
    s_nibbles(q, b + 4);
}

static void s_q5_1(const float *x, unsigned char *b)
{
    unsigned char q[32];
    float d, m;
    s_asym(x, 31.0f, 31, q, &d, &m);
    s_put_h(b, d);
    s_put_h(b + 2, m);
    s_high_bits(q, b + 4);
    s_nibbles(q, b + 8);
}

/* ---- K types: the semantics of ggml's reference quantizers
 * (quantize_row_q{4,5,6,8}_K_ref; the gguf package has no K quantizer to
 * compare bytes with, so tests bound the round-trip error through the
 * package's dequantization). Q4_K / Q5_K: each 32-weight sub-block gets a
 * scale and a min fitted by weighted least squares over trial scales
 * (weights: rms of the sub-block + |x|); the eight scales and mins are then
 * stored as 6-bit multiples of the block's f16 d and dmin, and the weights
 * re-rounded against the stored values. Q6_K: 16-weight sub-blocks with a
 * signed scale chosen among 19 trials (weights x²), stored as int8
 * multiples of the block's f16 d. Q8_K: one f32 scale, int8 weights and
 * the 16-weight sums. Rounding is to nearest even, as ggml's nearest_int. */

static int s_near(float f)
{
    return (int)lrintf(f);
}

static int s_clamp(int v, int hi)
{
    return v < 0 ? 0 : v > hi ? hi : v;
}

/* ggml's make_qkx2_quants: fits x ≈ scale * L + min (min <= 0), L in
 * 0..nmax, over the trial scales (rmin + 0.1 is + nmax) / (max - min),
 * is = 0..nstep; returns scale, *neg_min = -min. */
static float s_fit_sub(const float *x, const float *w, unsigned char *L, float *neg_min, int nmax,
                       float rmin, int nstep)
{
    float mn = x[0], mx = x[0], sw = w[0], sx = w[0] * x[0];
    for (int i = 1; i < 32; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sw += w[i];
        sx += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        memset(L, 0, 32);
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = (float)nmax / (mx - mn), scale = 1.0f / iscale, best = 0;
    for (int i = 0; i < 32; i++) {
        L[i] = (unsigned char)s_clamp(s_near(iscale * (x[i] - mn)), nmax);
        float diff = scale * L[i] + mn - x[i];
        best += w[i] * (diff * diff);
    }
    unsigned char aux[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + 0.1f * (float)is + (float)nmax) / (mx - mn);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < 32; i++) {
            int l = s_clamp(s_near(iscale * (x[i] - mn)), nmax);
            aux[i] = (unsigned char)l;
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        float D = sw * sl2 - sl * sl;
        if (D <= 0) continue;
        float ts = (sw * sxl - sx * sl) / D, tm = (sl2 * sx - sl * sxl) / D;
        if (tm > 0) tm = 0, ts = sxl / sl2;
        float err = 0;
        for (int i = 0; i < 32; i++) {
            float diff = ts * aux[i] + tm - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best) memcpy(L, aux, 32), best = err, scale = ts, mn = tm;
    }
    *neg_min = -mn;
    return scale;
}

/* Q4_K / Q5_K's head: fits the eight sub-blocks (levels 0..nmax), writes
 * d, dmin and the 12 bytes of packed 6-bit scales and mins to b, and the
 * levels re-rounded against the stored values to L[256]. */
static void s_k_head(const float *x, int nmax, float rmin, int nstep, unsigned char *b, unsigned char *L)
{
    unsigned char *sc = b + 4;
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float s2 = 0;
        for (int l = 0; l < 32; l++) s2 += xs[l] * xs[l];
        float av = sqrtf(s2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
        scales[j] = s_fit_sub(xs, w, L + 32 * j, &mins[j], nmax, rmin, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_s = max_scale > 0 ? 63.0f / max_scale : 0.0f, inv_m = max_min > 0 ? 63.0f / max_min : 0.0f;
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        int ls = (unsigned char)s_near(inv_s * scales[j]), lm = (unsigned char)s_near(inv_m * mins[j]);
        ls = ls > 63 ? 63 : ls, lm = lm > 63 ? 63 : lm;
        if (j < 4) {
            sc[j] = (unsigned char)ls, sc[j + 4] = (unsigned char)lm;
        } else {
            sc[j + 4] = (unsigned char)((ls & 0xF) | (lm & 0xF) << 4);
            sc[j - 4] |= (unsigned char)((ls >> 4) << 6);
            sc[j] |= (unsigned char)((lm >> 4) << 6);
        }
    }
    s_put_h(b, max_scale / 63.0f);
    s_put_h(b + 2, max_min / 63.0f);
    float d = lf_f16_to_f32((uint16_t)(b[0] | b[1] << 8)), dmin = lf_f16_to_f32((uint16_t)(b[2] | b[3] << 8));
    for (int j = 0; j < 8; j++) {
        int s6 = j < 4 ? sc[j] & 63 : (sc[j + 4] & 0xF) | (sc[j - 4] >> 6) << 4;
        int m6 = j < 4 ? sc[j + 4] & 63 : (sc[j + 4] >> 4) | (sc[j] >> 6) << 4;
        float dj = d * (float)s6;
        if (dj == 0) continue;
        float dm = dmin * (float)m6;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (unsigned char)s_clamp(s_near((x[32 * j + l] + dm) / dj), nmax);
    }
}

static void s_q4_k(const float *x, unsigned char *b)
{
    unsigned char L[256], *qs = b + 16;
    s_k_head(x, 15, -1.0f, 20, b, L);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) qs[32 * c + l] = (unsigned char)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
}

/* block_q5_K: d, dmin, scales[12], qh[32] (bit 2c / 2c+1 of qh[l]: the high
 * bit of L[64c + l] / L[64c + 32 + l]), qs[128] (the low nibbles as Q4_K). */
static void s_q5_k(const float *x, unsigned char *b)
{
    unsigned char L[256], *qh = b + 16, *qs = b + 48;
    s_k_head(x, 31, -0.5f, 15, b, L);
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
            qh[l] |= (unsigned char)((l1 >> 4) << (2 * c) | (l2 >> 4) << (2 * c + 1));
            qs[32 * c + l] = (unsigned char)((l1 & 0xF) | (l2 & 0xF) << 4);
        }
}

/* ggml's make_qx_quants(16, 32, x, L, rmse_type 1): signed levels -32..31
 * stored as L + 32; the scale among 19 trials maximising Σ(wxl)²/Σ(wl²), w = x². */
static float s_fit_sym16(const float *x, unsigned char *L)
{
    const int nmax = 32;
    float max = 0, amax = 0;
    for (int i = 0; i < 16; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax < 1e-15f) {
        memset(L, 0, 16);
        return 0.0f;
    }
    float scale = 0, best = 0;
    for (int is = 0; is <= 18; is++) { /* is 0: the plain scale, then -9..9 without 0 */
        int t = is == 0 ? 0 : is <= 9 ? is - 10 : is - 9;
        float iscale = is == 0 ? -(float)nmax / max : -((float)nmax + 0.1f * (float)t) / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < 16; i++) {
            int l = s_near(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (is == 0) {
            scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
            best = scale * sumlx;
        } else if (!(suml2 > 0 && sumlx * sumlx > best * suml2)) {
            continue;
        } else {
            scale = sumlx / suml2, best = scale * sumlx;
        }
        for (int i = 0; i < 16; i++) {
            int l = s_near(iscale * x[i]);
            L[i] = (unsigned char)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
        }
    }
    return scale;
}

/* block_q6_K: ql[128], qh[64], scales[16] (int8), d (f16). */
static void s_q6_k(const float *x, unsigned char *b)
{
    unsigned char L[256], *ql = b, *qh = b + 128;
    signed char *sc = (signed char *)(b + 192);
    float scales[16], max_scale = 0, max_abs = 0;
    for (int ib = 0; ib < 16; ib++) {
        scales[ib] = s_fit_sym16(x + 16 * ib, L + 16 * ib);
        if (fabsf(scales[ib]) > max_abs) max_abs = fabsf(scales[ib]), max_scale = scales[ib];
    }
    memset(b, 0, 210);
    if (max_abs < 1e-15f) return;
    float iscale = -128.0f / max_scale;
    s_put_h(b + 208, 1 / iscale);
    for (int ib = 0; ib < 16; ib++) {
        int v = s_near(iscale * scales[ib]);
        sc[ib] = (signed char)(v > 127 ? 127 : v);
    }
    float d = lf_f16_to_f32((uint16_t)(b[208] | b[209] << 8));
    for (int j = 0; j < 16; j++) {
        float dj = d * (float)sc[j];
        if (dj == 0) continue;
        for (int i = 0; i < 16; i++) {
            int l = s_near(x[16 * j + i] / dj);
            L[16 * j + i] = (unsigned char)((l < -32 ? -32 : l > 31 ? 31 : l) + 32);
        }
    }
    for (int h = 0; h < 2; h++, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            const unsigned char *q = L + 128 * h + l;
            ql[l] = (unsigned char)((q[0] & 0xF) | (q[64] & 0xF) << 4);
            ql[l + 32] = (unsigned char)((q[32] & 0xF) | (q[96] & 0xF) << 4);
            qh[l] = (unsigned char)((q[0] >> 4) | (q[32] >> 4) << 2 | (q[64] >> 4) << 4 | (q[96] >> 4) << 6);
        }
}

/* block_q8_K: d (f32), qs[256] (int8), bsums[16] (int16, sums of 16 qs). */
static void s_q8_k(const float *x, unsigned char *b)
{
    float max = 0, amax = 0, d = 0;
    for (int j = 0; j < 256; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    signed char *qs = (signed char *)(b + 4);
    memset(b, 0, 292);
    if (amax != 0) {
        float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            int v = s_near(iscale * x[j]);
            qs[j] = (signed char)(v > 127 ? 127 : v);
        }
        d = 1 / iscale;
    }
    memcpy(b, &d, 4);
    for (int j = 0; j < 16; j++) {
        int sum = 0;
        for (int i = 0; i < 16; i++) sum += qs[16 * j + i];
        b[260 + 2 * j] = (unsigned char)(sum & 0xFF);
        b[261 + 2 * j] = (unsigned char)((unsigned)sum >> 8 & 0xFF);
    }
}

typedef void (*s_quant_fn)(const float *, unsigned char *);

static s_quant_fn s_fn(lf_quant_type_t q)
{
    switch (q) {
    case LF_QUANT_Q4_0: return s_q4_0;
    case LF_QUANT_Q4_1: return s_q4_1;
    case LF_QUANT_Q5_0: return s_q5_0;
    case LF_QUANT_Q5_1: return s_q5_1;
    case LF_QUANT_Q8_0: return s_q8_0;
    case LF_QUANT_Q4_K: return s_q4_k;
    case LF_QUANT_Q5_K: return s_q5_k;
    case LF_QUANT_Q6_K: return s_q6_k;
    case LF_QUANT_Q8_K: return s_q8_k;
    default: return NULL;
    }
}

bool lf_quant_can_quantize(lf_quant_type_t q)
{
    return s_fn(q) != NULL;
}

int lf_quant_quantize(lf_quant_type_t q, const float *src, void *dst, int64_t n)
{
    s_quant_fn fn = s_fn(q);
    int64_t blck = (int64_t)lf_quant_block(q);
    if (!fn || n < 0 || n % blck) return fn ? LF_EINVAL : LF_EUNSUPPORTED;
    size_t bb = lf_quant_block_bytes(q);
    for (int64_t i = 0; i < n / blck; i++) fn(src + i * blck, (unsigned char *)dst + (size_t)i * bb);
    return 0;
}
