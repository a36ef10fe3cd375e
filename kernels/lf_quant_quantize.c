/* lf_quant_quantize: f32 -> ggml blocks for the types whose quantizer the
 * gguf package has in numpy (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), written to give
 * the same bytes as gguf.quants.quantize: the same f32 (or, for Q4_0/Q5_0,
 * f64) operations in the same order, round-half-away for Q8_0, truncation
 * of x*id + 0.5 for the others, the first largest |x| as Q4_0/Q5_0's scale
 * source, f16 scales rounded to nearest even. Built with -ffp-contract=off
 * like lf_quant.c. */
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

typedef void (*s_quant_fn)(const float *, unsigned char *);

static s_quant_fn s_fn(lf_quant_type_t q)
{
    switch (q) {
    case LF_QUANT_Q4_0: return s_q4_0;
    case LF_QUANT_Q4_1: return s_q4_1;
    case LF_QUANT_Q5_0: return s_q5_0;
    case LF_QUANT_Q5_1: return s_q5_1;
    case LF_QUANT_Q8_0: return s_q8_0;
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
    if (!fn || n < 0 || n % 32) return fn ? LF_EINVAL : LF_EUNSUPPORTED;
    size_t bb = lf_quant_block_bytes(q);
    for (int64_t i = 0; i < n / 32; i++) fn(src + i * 32, (unsigned char *)dst + (size_t)i * bb);
    return 0;
}
