/* lf_quant: scalar dequantizers written after ggml's reference ones (and
 * checked against the gguf package's numpy ones), AVX2/AVX-512 forms of the
 * hot types (Q8_0, Q4_K, Q6_K), and the tiled dequantize-then-sgemm product.
 *
 * Bit-exactness: every value is computed as numpy does it, in f32, in the
 * same order (Q4_K: (d*sc)*q - (dmin*m)); the file is compiled with
 * -ffp-contract=off so no multiply-add gets fused, and the vector forms use
 * separate multiplies and subtractions for the same reason. */
#include "lf_quant.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_tensor.h"

static const struct {
    const char *name;
    size_t blck, bytes;
} s_types[LF_QUANT_COUNT] = {
    [LF_QUANT_Q4_0] = {"Q4_0", 32, 18},   [LF_QUANT_Q4_1] = {"Q4_1", 32, 20},
    [LF_QUANT_Q5_0] = {"Q5_0", 32, 22},   [LF_QUANT_Q5_1] = {"Q5_1", 32, 24},
    [LF_QUANT_Q8_0] = {"Q8_0", 32, 34},   [LF_QUANT_Q4_K] = {"Q4_K", 256, 144},
    [LF_QUANT_Q5_K] = {"Q5_K", 256, 176}, [LF_QUANT_Q6_K] = {"Q6_K", 256, 210},
    [LF_QUANT_Q8_K] = {"Q8_K", 256, 292},
};

size_t lf_quant_block(lf_quant_type_t q) { return (unsigned)q < LF_QUANT_COUNT ? s_types[q].blck : 0; }
size_t lf_quant_block_bytes(lf_quant_type_t q) { return (unsigned)q < LF_QUANT_COUNT ? s_types[q].bytes : 0; }
const char *lf_quant_name(lf_quant_type_t q) { return (unsigned)q < LF_QUANT_COUNT ? s_types[q].name : "?"; }

size_t lf_quant_row_bytes(lf_quant_type_t q, int64_t n)
{
    return (size_t)n / lf_quant_block(q) * lf_quant_block_bytes(q);
}

lf_quant_simd_t lf_quant_simd_detect(void)
{
    __builtin_cpu_init();
    lf_quant_simd_t best = LF_QUANT_SCALAR;
    if (__builtin_cpu_supports("avx2")) best = LF_QUANT_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) best = LF_QUANT_AVX512;
    const char *cap = getenv("LF_CPU_SIMD");
    if (cap && strcmp(cap, "scalar") == 0) best = LF_QUANT_SCALAR;
    if (cap && strcmp(cap, "avx2") == 0 && best > LF_QUANT_AVX2) best = LF_QUANT_AVX2;
    return best;
}

static float s_h(const unsigned char *p)
{
    return lf_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* ---- scalar: one block each ---------------------------------------------- */

static void s_q4_0(const unsigned char *b, float *y)
{
    float d = s_h(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0xF) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

static void s_q4_1(const unsigned char *b, float *y)
{
    float d = s_h(b), m = s_h(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b[4 + j] & 0xF) + m;
        y[j + 16] = d * (float)(b[4 + j] >> 4) + m;
    }
}

static uint32_t s_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void s_q5_0(const unsigned char *b, float *y)
{
    float d = s_h(b);
    uint32_t qh = s_u32(b + 2);
    const unsigned char *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void s_q5_1(const unsigned char *b, float *y)
{
    float d = s_h(b), m = s_h(b + 2);
    uint32_t qh = s_u32(b + 4);
    const unsigned char *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

static void s_q8_0(const unsigned char *b, float *y)
{
    float d = s_h(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block. */
static void s_scale_min(int j, const unsigned char *q, int *sc, int *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* The 8 (d*sc, dmin*m) pairs of a Q4_K/Q5_K block. */
static void s_k_scales(const unsigned char *b, float *dl, float *ml)
{
    float d = s_h(b), dmin = s_h(b + 2);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        s_scale_min(j, b + 4, &sc, &m);
        dl[j] = d * (float)sc;
        ml[j] = dmin * (float)m;
    }
}

static void s_q4_k(const unsigned char *b, float *y)
{
    float dl[8], ml[8];
    s_k_scales(b, dl, ml);
    const unsigned char *qs = b + 16;
    for (int c = 0; c < 4; c++, qs += 32, y += 64)
        for (int l = 0; l < 32; l++) {
            y[l] = dl[2 * c] * (float)(qs[l] & 0xF) - ml[2 * c];
            y[l + 32] = dl[2 * c + 1] * (float)(qs[l] >> 4) - ml[2 * c + 1];
        }
}

static void s_q5_k(const unsigned char *b, float *y)
{
    float dl[8], ml[8];
    s_k_scales(b, dl, ml);
    const unsigned char *qh = b + 16, *qs = b + 48;
    for (int c = 0; c < 4; c++, qs += 32, y += 64)
        for (int l = 0; l < 32; l++) {
            int lo = (qs[l] & 0xF) | ((qh[l] >> (2 * c)) & 1) << 4;
            int hi = (qs[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4;
            y[l] = dl[2 * c] * (float)lo - ml[2 * c];
            y[l + 32] = dl[2 * c + 1] * (float)hi - ml[2 * c + 1];
        }
}

static void s_q6_k(const unsigned char *b, float *y)
{
    const unsigned char *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = s_h(b + 208);
    for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = (d * (float)sc[is]) * (float)q1;
            y[l + 32] = (d * (float)sc[is + 2]) * (float)q2;
            y[l + 64] = (d * (float)sc[is + 4]) * (float)q3;
            y[l + 96] = (d * (float)sc[is + 6]) * (float)q4;
        }
}

static void s_q8_k(const unsigned char *b, float *y)
{
    float d;
    memcpy(&d, b, 4);
    for (int j = 0; j < 256; j++) y[j] = d * (float)(int8_t)b[4 + j];
}

typedef void (*s_block_fn)(const unsigned char *, float *);
static const s_block_fn s_scalar[LF_QUANT_COUNT] = {
    [LF_QUANT_Q4_0] = s_q4_0, [LF_QUANT_Q4_1] = s_q4_1, [LF_QUANT_Q5_0] = s_q5_0,
    [LF_QUANT_Q5_1] = s_q5_1, [LF_QUANT_Q8_0] = s_q8_0, [LF_QUANT_Q4_K] = s_q4_k,
    [LF_QUANT_Q5_K] = s_q5_k, [LF_QUANT_Q6_K] = s_q6_k, [LF_QUANT_Q8_K] = s_q8_k,
};

/* ---- AVX2 ------------------------------------------------------------------ */

__attribute__((target("avx2"))) static void s_q8_0_avx2(const unsigned char *b, float *y)
{
    __m256 d = _mm256_set1_ps(s_h(b));
    for (int j = 0; j < 32; j += 8) {
        __m128i q = _mm_loadl_epi64((const __m128i *)(b + 2 + j));
        _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
    }
}

__attribute__((target("avx2"))) static void s_q4_k_avx2(const unsigned char *b, float *y)
{
    float dl[8], ml[8];
    s_k_scales(b, dl, ml);
    const unsigned char *qs = b + 16;
    for (int c = 0; c < 4; c++, qs += 32, y += 64) {
        __m256 d1 = _mm256_set1_ps(dl[2 * c]), m1 = _mm256_set1_ps(ml[2 * c]);
        __m256 d2 = _mm256_set1_ps(dl[2 * c + 1]), m2 = _mm256_set1_ps(ml[2 * c + 1]);
        for (int l = 0; l < 32; l += 8) {
            __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + l)));
            __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(q, _mm256_set1_epi32(0xF)));
            __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(q, 4));
            _mm256_storeu_ps(y + l, _mm256_sub_ps(_mm256_mul_ps(d1, lo), m1));
            _mm256_storeu_ps(y + l + 32, _mm256_sub_ps(_mm256_mul_ps(d2, hi), m2));
        }
    }
}

/* ---- AVX-512 --------------------------------------------------------------- */

__attribute__((target("avx512f,avx512bw"))) static void s_q8_0_avx512(const unsigned char *b, float *y)
{
    __m512 d = _mm512_set1_ps(s_h(b));
    for (int j = 0; j < 32; j += 16) {
        __m128i q = _mm_loadu_si128((const __m128i *)(b + 2 + j));
        _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d));
    }
}

__attribute__((target("avx512f,avx512bw"))) static void s_q4_k_avx512(const unsigned char *b, float *y)
{
    float dl[8], ml[8];
    s_k_scales(b, dl, ml);
    const unsigned char *qs = b + 16;
    for (int c = 0; c < 4; c++, qs += 32, y += 64) {
        __m512 d1 = _mm512_set1_ps(dl[2 * c]), m1 = _mm512_set1_ps(ml[2 * c]);
        __m512 d2 = _mm512_set1_ps(dl[2 * c + 1]), m2 = _mm512_set1_ps(ml[2 * c + 1]);
        for (int l = 0; l < 32; l += 16) {
            __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + l)));
            __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(q, _mm512_set1_epi32(0xF)));
            __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4));
            _mm512_storeu_ps(y + l, _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1));
            _mm512_storeu_ps(y + l + 32, _mm512_sub_ps(_mm512_mul_ps(d2, hi), m2));
        }
    }
}

__attribute__((target("avx512f,avx512bw"))) static void s_q5_k_avx512(const unsigned char *b, float *y)
{
    float dl[8], ml[8];
    s_k_scales(b, dl, ml);
    const unsigned char *qh = b + 16, *qs = b + 48;
    const __m512i kf = _mm512_set1_epi32(0xF), one = _mm512_set1_epi32(1);
    for (int c = 0; c < 4; c++, qs += 32, y += 64) {
        __m512 d1 = _mm512_set1_ps(dl[2 * c]), m1 = _mm512_set1_ps(ml[2 * c]);
        __m512 d2 = _mm512_set1_ps(dl[2 * c + 1]), m2 = _mm512_set1_ps(ml[2 * c + 1]);
        for (int l = 0; l < 32; l += 16) {
            __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + l)));
            __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + l)));
            __m512i hl = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, (unsigned)(2 * c)), one), 4);
            __m512i hh = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, (unsigned)(2 * c + 1)), one), 4);
            __m512 lo = _mm512_cvtepi32_ps(_mm512_or_si512(_mm512_and_si512(q, kf), hl));
            __m512 hi = _mm512_cvtepi32_ps(_mm512_or_si512(_mm512_srli_epi32(q, 4), hh));
            _mm512_storeu_ps(y + l, _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1));
            _mm512_storeu_ps(y + l + 32, _mm512_sub_ps(_mm512_mul_ps(d2, hi), m2));
        }
    }
}

__attribute__((target("avx512f,avx512bw"))) static void s_q6_k_avx512(const unsigned char *b, float *y)
{
    const unsigned char *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = s_h(b + 208);
    const __m512i k32 = _mm512_set1_epi32(32), k3 = _mm512_set1_epi32(3), kf = _mm512_set1_epi32(0xF);
    for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8)
        for (int is = 0; is < 2; is++) {
            int l = 16 * is;
            __m512i a = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l)));
            __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + l + 32)));
            __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + l)));
            __m512i q1 = _mm512_or_si512(_mm512_and_si512(a, kf), _mm512_slli_epi32(_mm512_and_si512(h, k3), 4));
            __m512i q2 = _mm512_or_si512(_mm512_and_si512(c, kf),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 2), k3), 4));
            __m512i q3 = _mm512_or_si512(_mm512_srli_epi32(a, 4),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 4), k3), 4));
            __m512i q4 = _mm512_or_si512(_mm512_srli_epi32(c, 4),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, 6), k3), 4));
            __m512i qq[4] = {q1, q2, q3, q4};
            for (int g = 0; g < 4; g++) {
                __m512 s = _mm512_set1_ps(d * (float)sc[is + 2 * g]);
                __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(qq[g], k32));
                _mm512_storeu_ps(y + l + 32 * g, _mm512_mul_ps(s, v));
            }
        }
}

/* The legacy 32-weight types: the 4-bit values (plus the fifth bit from qh
 * for Q5_x) of weights 0-15 in *lo and 16-31 in *hi; then one multiply
 * (and one add for the _1 types), as the scalar code computes them. */
__attribute__((target("avx512f,avx512bw"))) static void s_legacy_avx512(const unsigned char *qs, const unsigned char *qh,
                                                                        __m512i *lo, __m512i *hi)
{
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qs)), kf = _mm512_set1_epi32(0xF);
    *lo = _mm512_and_si512(q, kf);
    *hi = _mm512_srli_epi32(q, 4);
    if (qh) {
        const __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i one = _mm512_set1_epi32(1), h = _mm512_set1_epi32((int)s_u32(qh));
        __m512i bl = _mm512_and_si512(_mm512_srlv_epi32(h, idx), one);
        __m512i bh = _mm512_and_si512(_mm512_srlv_epi32(h, _mm512_add_epi32(idx, _mm512_set1_epi32(16))), one);
        *lo = _mm512_or_si512(*lo, _mm512_slli_epi32(bl, 4));
        *hi = _mm512_or_si512(*hi, _mm512_slli_epi32(bh, 4));
    }
}

/* off: subtracted from each value (8 / 16: the _0 types); m: added (the _1 types). */
__attribute__((target("avx512f,avx512bw"))) static void s_legacy_store(float *y, __m512i lo, __m512i hi, float d,
                                                                       int off, const unsigned char *m)
{
    __m512 vd = _mm512_set1_ps(d), k = _mm512_set1_ps(0);
    __m512i o = _mm512_set1_epi32(off);
    __m512 a = _mm512_mul_ps(vd, _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, o)));
    __m512 b = _mm512_mul_ps(vd, _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, o)));
    if (m) {
        k = _mm512_set1_ps(s_h(m));
        a = _mm512_add_ps(a, k), b = _mm512_add_ps(b, k);
    }
    _mm512_storeu_ps(y, a);
    _mm512_storeu_ps(y + 16, b);
}

__attribute__((target("avx512f,avx512bw"))) static void s_q4_0_avx512(const unsigned char *b, float *y)
{
    __m512i lo, hi;
    s_legacy_avx512(b + 2, NULL, &lo, &hi);
    s_legacy_store(y, lo, hi, s_h(b), 8, NULL);
}

__attribute__((target("avx512f,avx512bw"))) static void s_q4_1_avx512(const unsigned char *b, float *y)
{
    __m512i lo, hi;
    s_legacy_avx512(b + 4, NULL, &lo, &hi);
    s_legacy_store(y, lo, hi, s_h(b), 0, b + 2);
}

__attribute__((target("avx512f,avx512bw"))) static void s_q5_0_avx512(const unsigned char *b, float *y)
{
    __m512i lo, hi;
    s_legacy_avx512(b + 6, b + 2, &lo, &hi);
    s_legacy_store(y, lo, hi, s_h(b), 16, NULL);
}

__attribute__((target("avx512f,avx512bw"))) static void s_q5_1_avx512(const unsigned char *b, float *y)
{
    __m512i lo, hi;
    s_legacy_avx512(b + 8, b + 4, &lo, &hi);
    s_legacy_store(y, lo, hi, s_h(b), 0, b + 2);
}

static s_block_fn s_pick(lf_quant_type_t q, lf_quant_simd_t level)
{
    if (level >= LF_QUANT_AVX512) {
        if (q == LF_QUANT_Q4_0) return s_q4_0_avx512;
        if (q == LF_QUANT_Q4_1) return s_q4_1_avx512;
        if (q == LF_QUANT_Q5_0) return s_q5_0_avx512;
        if (q == LF_QUANT_Q5_1) return s_q5_1_avx512;
        if (q == LF_QUANT_Q8_0) return s_q8_0_avx512;
        if (q == LF_QUANT_Q4_K) return s_q4_k_avx512;
        if (q == LF_QUANT_Q5_K) return s_q5_k_avx512;
        if (q == LF_QUANT_Q6_K) return s_q6_k_avx512;
    }
    if (level >= LF_QUANT_AVX2) {
        if (q == LF_QUANT_Q8_0) return s_q8_0_avx2;
        if (q == LF_QUANT_Q4_K) return s_q4_k_avx2;
    }
    return s_scalar[q];
}

void lf_quant_dequantize_at(lf_quant_type_t q, const void *src, float *dst, int64_t n, lf_quant_simd_t level)
{
    LF_ASSERT((unsigned)q < LF_QUANT_COUNT && n % (int64_t)s_types[q].blck == 0);
    lf_quant_simd_t best = lf_quant_simd_detect();
    s_block_fn fn = s_pick(q, level < best ? level : best);
    const unsigned char *b = src;
    size_t bb = s_types[q].bytes, bl = s_types[q].blck;
    for (int64_t i = 0; i < n / (int64_t)bl; i++) fn(b + (size_t)i * bb, dst + (size_t)i * bl);
}

void lf_quant_dequantize(lf_quant_type_t q, const void *src, float *dst, int64_t n)
{
    lf_quant_dequantize_at(q, src, dst, n, LF_QUANT_AVX512);
}

int lf_quant_matmul(lf_quant_type_t q, const void *w, int64_t n, int64_t k, const float *x, int64_t ldx,
                    int64_t m, float *y, int64_t ldy, size_t tile_bytes)
{
    if ((unsigned)q >= LF_QUANT_COUNT || n < 0 || m < 0 || k <= 0 || k % (int64_t)s_types[q].blck ||
        ldx < k || ldy < n)
        return LF_EINVAL;
    if (n == 0 || m == 0) return 0;
    /* Each sgemm call packs all of x again, so tiles must be large enough
     * for that to stay small beside the product at large M (a 512 KiB tile
     * is ~40 rows of a 3072-wide matrix: ~77 repacks of x per call); on the
     * shared machine the measured gap was 0.9x-3x (docs/PERFORMANCE.md). */
    if (!tile_bytes) tile_bytes = LF_QUANT_TILE_DEFAULT;
    int64_t rows = (int64_t)(tile_bytes / ((size_t)k * sizeof(float)));
    if (rows < 16) rows = 16;
    rows = rows / 16 * 16;
    if (rows > n) rows = n;
    float *tile = malloc((size_t)rows * (size_t)k * sizeof *tile);
    if (!tile) return LF_ENOMEM;
    lf_quant_simd_t level = lf_quant_simd_detect();
    size_t rb = lf_quant_row_bytes(q, k);
    for (int64_t n0 = 0; n0 < n; n0 += rows) {
        int64_t nr = n - n0 < rows ? n - n0 : rows;
        lf_quant_dequantize_at(q, (const unsigned char *)w + (size_t)n0 * rb, tile, nr * k, level);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nr, (int)k, 1.0f, x, (int)ldx, tile,
                    (int)k, 0.0f, y + n0, (int)ldy);
    }
    free(tile);
    return 0;
}

/* ---- Q8_0 with int8 dot products (AVX-512 VNNI) ----------------------------
 *
 * x is quantized per row into Q8_0 blocks, stored offset by 128 as unsigned
 * bytes so vpdpbusd (u8 x s8) applies; the offset's contribution, 128 times
 * the sum of each 4-byte group of w, is the accumulator's starting value
 * (negated), precomputed per tile of W. Each 64 weights of a row pair cost
 * one vpdpbusd, one convert and one multiply-add with the per-lane product
 * of the two blocks' scales (lanes 0-7 one block, 8-15 the next). */

#define S_NT 64 /* W rows per tile */

typedef struct {
    const unsigned char *xu; /* m rows of k bytes: q + 128 */
    const float *xs;         /* m rows of k/4 floats: the block scale per lane */
    const int8_t *wq;        /* S_NT rows of k */
    const int32_t *wc;       /* S_NT rows of k/4: -128 * sum of 4 */
    const float *ws;         /* S_NT rows of k/4: the block scale per lane */
    int64_t k, nr, m0, m1, ldy;
    float *y;                /* column n0 of row 0 */
} s_q8_job_t;

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void *s_q8_rows(void *arg)
{
    const s_q8_job_t *j = arg;
    const int64_t k = j->k, k4 = k / 4;
    for (int64_t r = j->m0; r < j->m1; r++) {
        const unsigned char *xr = j->xu + r * k;
        const float *sr = j->xs + r * k4;
        for (int64_t c = 0; c < j->nr; c += 4) {
            int nc = j->nr - c < 4 ? (int)(j->nr - c) : 4;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int64_t kk = 0; kk < k; kk += 64) {
                __m512i xv = _mm512_loadu_si512(xr + kk);
                __m512 xs = _mm512_loadu_ps(sr + kk / 4);
                for (int q = 0; q < nc; q++) {
                    int64_t row = c + q;
                    __m512i a = _mm512_loadu_si512(j->wc + row * k4 + kk / 4);
                    a = _mm512_dpbusd_epi32(a, xv, _mm512_loadu_si512(j->wq + row * k + kk));
                    __m512 sc = _mm512_mul_ps(xs, _mm512_loadu_ps(j->ws + row * k4 + kk / 4));
                    acc[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), sc, acc[q]);
                }
            }
            for (int q = 0; q < nc; q++) j->y[r * j->ldy + c + q] = _mm512_reduce_add_ps(acc[q]);
        }
    }
    return NULL;
}

int lf_quant_matmul_q8_int8(const void *w, int64_t n, int64_t k, const float *x, int64_t ldx, int64_t m,
                            float *y, int64_t ldy, int n_threads)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw")) return LF_EUNSUPPORTED;
    if (n < 0 || m < 0 || k <= 0 || k % 64 || ldx < k || ldy < n) return LF_EINVAL;
    if (n == 0 || m == 0) return 0;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    const int64_t k4 = k / 4;
    unsigned char *xu = malloc((size_t)(m * k));
    float *xs = malloc((size_t)(m * k4) * sizeof *xs);
    int8_t *wq = malloc((size_t)(S_NT * k));
    int32_t *wc = malloc((size_t)(S_NT * k4) * sizeof *wc);
    float *ws = malloc((size_t)(S_NT * k4) * sizeof *ws);
    int rc = 0;
    if (!xu || !xs || !wq || !wc || !ws) {
        rc = LF_ENOMEM;
        goto done;
    }
    /* x -> Q8_0 blocks (round to nearest, as ggml's quantize_row_q8_0). */
    for (int64_t r = 0; r < m; r++)
        for (int64_t b = 0; b < k; b += 32) {
            const float *xb = x + r * ldx + b;
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
            float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            for (int i = 0; i < 32; i++) {
                int q = (int)roundf(xb[i] * id);
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                xu[r * k + b + i] = (unsigned char)(q + 128);
            }
            for (int l = 0; l < 8; l++) xs[r * k4 + b / 4 + l] = d;
        }
    size_t rb = lf_quant_row_bytes(LF_QUANT_Q8_0, k);
    for (int64_t n0 = 0; n0 < n; n0 += S_NT) {
        int64_t nr = n - n0 < S_NT ? n - n0 : S_NT;
        for (int64_t c = 0; c < nr; c++) {
            const unsigned char *row = (const unsigned char *)w + (size_t)(n0 + c) * rb;
            for (int64_t b = 0; b < k / 32; b++) {
                const unsigned char *blk = row + b * 34;
                float d = s_h(blk);
                for (int i = 0; i < 32; i++) wq[c * k + b * 32 + i] = (int8_t)blk[2 + i];
                for (int l = 0; l < 8; l++) {
                    const int8_t *g = wq + c * k + b * 32 + 4 * l;
                    wc[c * k4 + b * 8 + l] = -128 * (g[0] + g[1] + g[2] + g[3]);
                    ws[c * k4 + b * 8 + l] = d;
                }
            }
        }
        s_q8_job_t jobs[64];
        pthread_t th[64];
        int created[64];
        for (int t = 0; t < n_threads; t++) {
            jobs[t] = (s_q8_job_t){xu, xs, wq, wc, ws, k, nr, m * t / n_threads, m * (t + 1) / n_threads, ldy, y + n0};
            /* The last share runs on this thread; so does any a thread could not start for. */
            created[t] = t < n_threads - 1 && pthread_create(&th[t], NULL, s_q8_rows, &jobs[t]) == 0;
            if (!created[t]) s_q8_rows(&jobs[t]);
        }
        for (int t = 0; t < n_threads; t++)
            if (created[t]) pthread_join(th[t], NULL);
    }
done:
    free(xu);
    free(xs);
    free(wq);
    free(wc);
    free(ws);
    return rc;
}
