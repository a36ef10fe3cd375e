/* lf_cpu_simd: the few hand-vectorized loops of the CPU backend (exp-and-sum
 * and max for softmax and attention; SiLU and erf-GELU for activations; the
 * shifted sums of the norms, group norm's scale-shift(-SiLU) pass and layer
 * norm's output pass; the f32 attention form's softmax down a key tile,
 * queries along the lanes; a blocked f32 transpose), in AVX-512, AVX2 and
 * scalar forms.
 *
 * Release binaries are built without -march; each vector form carries a
 * function-level target attribute and lf__cpu_simd_init picks one from the
 * features detected at run time. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "lf_cpu_impl.h"

/* exp(x) = 2^n * p(r), r = x - n ln2, |r| <= ln2/2; p is the Cephes
 * polynomial (relative error about 2e-7). */
#define LF__EXP_HI 88.3762626647949f
#define LF__EXP_LO -87.3365447504019f
#define LF__LOG2E 1.44269504088896341f
#define LF__LN2_HI 0.693359375f
#define LF__LN2_LO -2.12194440e-4f
#define LF__P0 1.9875691500e-4f
#define LF__P1 1.3981999507e-3f
#define LF__P2 8.3334519073e-3f
#define LF__P3 4.1665795894e-2f
#define LF__P4 1.6666665459e-1f
#define LF__P5 5.0000001201e-1f

static float s_exp_sum_scalar(float *x, int64_t n, float m) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    return sum;
}

static float s_max_scalar(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static void s_silu_scalar(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

static void s_gelu_scalar(float *y, const float *x, const float *mul, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        y[i] = mul ? mul[i] * g : g;
    }
}

static void s_sum_sq_scalar(const float *x, int64_t n, float shift, float *sum, float *sq) {
    float s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - shift;
        s1 += d, s2 += d * d;
    }
    *sum = s1, *sq = s2;
}

static void s_norm_scalar(float *y, const float *x, int64_t n, float m, float a, float c, const float *g,
                          const float *beta) {
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - m) * a + c;
        if (g) v *= g[i];
        if (beta) v += beta[i];
        y[i] = v;
    }
}

static void s_affine_scalar(float *y, const float *x, int64_t n, float m, float a, float b, bool silu) {
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - m) * a + b;
        y[i] = silu ? v / (1.0f + expf(-v)) : v;
    }
}

/* Eight by eight blocks: each source line read and each destination line
 * written whole within a block, whatever the strides. */
static void s_transpose_scalar(float *d, int64_t ldd, const float *s, int64_t lds, int64_t rows, int64_t cols) {
    for (int64_t r0 = 0; r0 < rows; r0 += 8)
        for (int64_t c0 = 0; c0 < cols; c0 += 8) {
            int64_t r1 = r0 + 8 < rows ? r0 + 8 : rows, c1 = c0 + 8 < cols ? c0 + 8 : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) d[r * ldd + c] = s[c * lds + r];
        }
}

static void s_softmax_lanes_scalar(float *S, int64_t keys, int64_t ld, int64_t n, float *m, float *l, float *corr) {
    for (int64_t i = 0; i < n; i++) {
        float mn = m[i];
        for (int64_t k = 0; k < keys; k++) mn = S[k * ld + i] > mn ? S[k * ld + i] : mn;
        float ref = mn == -INFINITY ? 0.0f : mn, sum = 0;
        for (int64_t k = 0; k < keys; k++) sum += (S[k * ld + i] = expf(S[k * ld + i] - ref));
        corr[i] = expf(m[i] - ref);
        l[i] = l[i] * corr[i] + sum;
        m[i] = mn;
    }
}

/* erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7). */
#define LF__ERF_P 0.3275911f
#define LF__ERF_A1 0.254829592f
#define LF__ERF_A2 -0.284496736f
#define LF__ERF_A3 1.421413741f
#define LF__ERF_A4 -1.453152027f
#define LF__ERF_A5 1.061405429f

__attribute__((target("avx512f"))) static inline __m512 s_exp512(__m512 x) {
    x = _mm512_min_ps(x, _mm512_set1_ps(LF__EXP_HI));
    x = _mm512_max_ps(x, _mm512_set1_ps(LF__EXP_LO));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LF__LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LF__LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LF__LN2_LO), r);
    __m512 p = _mm512_set1_ps(LF__P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LF__P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LF__P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LF__P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LF__P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(LF__P5));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f"))) static float s_exp_sum_avx512(float *x, int64_t n, float m) {
    __m512 vm = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = s_exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = s_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

/* 2^f on [-1/2, 1/2]: Cephes exp2f's polynomial (relative error about
 * 1.4e-7), for the softmax below. */
#define LF__E2_0 1.535336188319500e-4f
#define LF__E2_1 1.339887440266574e-3f
#define LF__E2_2 9.618437357674640e-3f
#define LF__E2_3 5.550332471162809e-2f
#define LF__E2_4 2.402264791363012e-1f
#define LF__E2_5 6.931472028550421e-1f

/* exp(x - m) for x <= m as 2^(x log2e - m log2e): one FMA, the split into
 * integer and fraction, the polynomial, a scale; exactly 0 where the result
 * would be below 2^-126 (so exp(-inf) = 0 and no denormals come out). The
 * product x log2e rounds: about |x - m| 6e-8 relative, 3e-7 at weights of
 * e^-5, harmless where the weight is tiny. Twelve operations against
 * s_exp512's seventeen with the subtraction and the mask. */
__attribute__((target("avx512f"))) static inline __m512 s_expm_512(__m512 x, __m512 mlog2e) {
    __m512 t = _mm512_fmsub_ps(x, _mm512_set1_ps(LF__LOG2E), mlog2e);
    __mmask16 live = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-126.0f), _CMP_GE_OQ);
    t = _mm512_max_ps(t, _mm512_set1_ps(-127.0f)); /* -inf would give NaN below */
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(LF__E2_0);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(LF__E2_1));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(LF__E2_2));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(LF__E2_3));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(LF__E2_4));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(LF__E2_5));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, p, n);
}

/* 1/d for d >= 1 (finite or +inf): VRCP14PS and one Newton step (about
 * 2^-27 relative, well within f32's rounding of what follows), for erf's
 * 1/(1 + p|x|). The SiLUs keep VDIVPS: with the reciprocal, SiLU and group
 * norm + SiLU measured up to 1.1-1.3x slower (docs/PERFORMANCE.md). */
__attribute__((target("avx512f"))) static inline __m512 s_rcp512(__m512 d) {
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

/* Sixteen lanes at a time down the key axis: two passes over a column of S
 * (max, then exp and sum), the running state in registers. */
__attribute__((target("avx512f"))) static void s_softmax_lanes_avx512(float *S, int64_t keys, int64_t ld, int64_t n,
                                                                      float *m, float *l, float *corr) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 mo = _mm512_mask_loadu_ps(ninf, k, m + i), mx0 = mo, mx1 = ninf;
        int64_t c = 0;
        for (; c + 2 <= keys; c += 2) {
            mx0 = _mm512_max_ps(mx0, _mm512_mask_loadu_ps(ninf, k, S + c * ld + i));
            mx1 = _mm512_max_ps(mx1, _mm512_mask_loadu_ps(ninf, k, S + (c + 1) * ld + i));
        }
        if (c < keys) mx0 = _mm512_max_ps(mx0, _mm512_mask_loadu_ps(ninf, k, S + c * ld + i));
        __m512 mn = _mm512_max_ps(mx0, mx1);
        __m512 ref = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mn, ninf, _CMP_NEQ_OQ), mn);
        __m512 rl = _mm512_mul_ps(ref, _mm512_set1_ps(LF__LOG2E));
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (c = 0; c + 2 <= keys; c += 2) {
            __m512 e0 = s_expm_512(_mm512_maskz_loadu_ps(k, S + c * ld + i), rl);
            __m512 e1 = s_expm_512(_mm512_maskz_loadu_ps(k, S + (c + 1) * ld + i), rl);
            _mm512_mask_storeu_ps(S + c * ld + i, k, e0);
            _mm512_mask_storeu_ps(S + (c + 1) * ld + i, k, e1);
            s0 = _mm512_add_ps(s0, e0), s1 = _mm512_add_ps(s1, e1);
        }
        if (c < keys) {
            __m512 e0 = s_expm_512(_mm512_maskz_loadu_ps(k, S + c * ld + i), rl);
            _mm512_mask_storeu_ps(S + c * ld + i, k, e0);
            s0 = _mm512_add_ps(s0, e0);
        }
        __m512 cr = s_expm_512(mo, rl);
        __m512 lv = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, l + i), cr, _mm512_add_ps(s0, s1));
        _mm512_mask_storeu_ps(corr + i, k, cr);
        _mm512_mask_storeu_ps(l + i, k, lv);
        _mm512_mask_storeu_ps(m + i, k, mn);
    }
}

__attribute__((target("avx512f"))) static float s_max_avx512(const float *x, int64_t n) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_max_ps(acc, _mm512_loadu_ps(x + i));
    float m = _mm512_reduce_max_ps(acc);
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

__attribute__((target("avx512f"))) static void s_silu_avx512(float *y, const float *x, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        __m512 e = s_exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
        _mm512_mask_storeu_ps(y + i, k, _mm512_div_ps(v, _mm512_add_ps(one, e)));
    }
}

/* Four accumulators each: the adds' latency, not their count, bounds a
 * single chain. */
__attribute__((target("avx512f"))) static void s_sum_sq_avx512(const float *x, int64_t n, float shift, float *sum,
                                                               float *sq) {
    const __m512 vs = _mm512_set1_ps(shift);
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    __m512 q[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int u = 0; u < 4; u++) {
            __m512 v = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16 * u), vs);
            s[u] = _mm512_add_ps(s[u], v), q[u] = _mm512_fmadd_ps(v, v, q[u]);
        }
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vs);
        s[0] = _mm512_add_ps(s[0], v), q[0] = _mm512_fmadd_ps(v, v, q[0]);
    }
    *sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
    *sq = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(q[0], q[1]), _mm512_add_ps(q[2], q[3])));
}

/* The lanes of elements i.. of n that exist (all 16 but at the tail). */
static inline __mmask16 s_mask16(int64_t n, int64_t i) {
    return n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
}

/* 16 lanes of a norm's row: (x - m) * a + c, times g, plus beta (either may
 * be NULL); s_norm_avx512 and s_norm_bf16_avx512 differ only in the store. */
__attribute__((target("avx512f"))) static inline __m512 s_norm16(const float *x, int64_t i, __mmask16 k, __m512 vm,
                                                                __m512 va, __m512 vc, const float *g,
                                                                const float *beta) {
    __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), va, vc);
    if (g && beta) v = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, beta + i));
    else if (g) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, g + i));
    else if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, beta + i));
    return v;
}

__attribute__((target("avx512f"))) static void s_norm_avx512(float *y, const float *x, int64_t n, float m, float a,
                                                             float c, const float *g, const float *beta) {
    const __m512 va = _mm512_set1_ps(a), vm = _mm512_set1_ps(m), vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = s_mask16(n, i);
        _mm512_mask_storeu_ps(y + i, k, s_norm16(x, i, k, vm, va, vc, g, beta));
    }
}

/* 16 lanes of (x - m) * a + b, then SiLU if silu; s_affine_avx512 and
 * s_affine_bf16_avx512 differ only in the store. */
__attribute__((target("avx512f"))) static inline __m512 s_affine16(const float *x, int64_t i, __mmask16 k, __m512 vm,
                                                                  __m512 va, __m512 vb, bool silu) {
    __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), va, vb);
    if (silu) v = _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), s_exp512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    return v;
}

__attribute__((target("avx512f"))) static void s_affine_avx512(float *y, const float *x, int64_t n, float m, float a,
                                                               float b, bool silu) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vm = _mm512_set1_ps(m);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = s_mask16(n, i);
        _mm512_mask_storeu_ps(y + i, k, s_affine16(x, i, k, vm, va, vb, silu));
    }
}

/* 16 x 16 blocks in registers (unpack, then two rounds of 128-bit lane
 * shuffles): sixteen full-line loads and stores per block, which strides
 * of a power of two (channel planes of 64 x 64) do not make conflict in L1
 * the way an element-wise walk down a column does. Edges in C. */
__attribute__((target("avx512f"))) static void s_transpose_avx512(float *d, int64_t ldd, const float *s, int64_t lds,
                                                                  int64_t rows, int64_t cols) {
    int64_t r0 = 0, c0;
    for (; r0 + 16 <= rows; r0 += 16) {
        for (c0 = 0; c0 + 16 <= cols; c0 += 16) {
            __m512 a[16], t[16];
            for (int k = 0; k < 16; k++) a[k] = _mm512_loadu_ps(s + (c0 + k) * lds + r0);
            for (int k = 0; k < 16; k += 2) {
                t[k] = _mm512_unpacklo_ps(a[k], a[k + 1]);
                t[k + 1] = _mm512_unpackhi_ps(a[k], a[k + 1]);
            }
            for (int k = 0; k < 16; k += 4) {
                a[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[k]), _mm512_castps_pd(t[k + 2])));
                a[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[k]), _mm512_castps_pd(t[k + 2])));
                a[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[k + 1]), _mm512_castps_pd(t[k + 3])));
                a[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[k + 1]), _mm512_castps_pd(t[k + 3])));
            }
            /* a[4q + i] holds, per 128-bit lane L, element i of source rows
             * 4q..4q+3 at columns 4L..4L+3 (i = column within the lane). */
            for (int q = 0; q < 16; q += 8)
                for (int i = 0; i < 4; i++) {
                    t[q + i] = _mm512_shuffle_f32x4(a[q + i], a[q + 4 + i], 0x88);
                    t[q + 4 + i] = _mm512_shuffle_f32x4(a[q + i], a[q + 4 + i], 0xDD);
                }
            for (int i = 0; i < 8; i++) {
                a[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
                a[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
            }
            for (int k = 0; k < 16; k++) _mm512_storeu_ps(d + (r0 + k) * ldd + c0, a[k]);
        }
        if (c0 < cols) s_transpose_scalar(d + r0 * ldd + c0, ldd, s + c0 * lds + r0, lds, 16, cols - c0);
    }
    if (r0 < rows) s_transpose_scalar(d + r0 * ldd, ldd, s + r0, lds, rows - r0, cols);
}

__attribute__((target("avx512f"))) static inline __m512 s_erf512(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 ax = _mm512_abs_ps(x);
    __m512 t = s_rcp512(_mm512_fmadd_ps(_mm512_set1_ps(LF__ERF_P), ax, one));
    __m512 p = _mm512_set1_ps(LF__ERF_A5);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LF__ERF_A4));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LF__ERF_A3));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LF__ERF_A2));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(LF__ERF_A1));
    p = _mm512_mul_ps(p, t);
    /* exp(-x^2) <= 1: the shorter exp2 form (no clamp at the top) */
    __m512 e = s_expm_512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(ax, ax)), _mm512_setzero_ps());
    __m512 r = _mm512_fnmadd_ps(p, e, one); /* erf(|x|) */
    /* copy the sign of x */
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(r), _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
}

__attribute__((target("avx512f"))) static void s_gelu_avx512(float *y, const float *x, const float *mul, int64_t n) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f), r2 = _mm512_set1_ps(0.70710678118654752f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        __m512 g = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, s_erf512(_mm512_mul_ps(v, r2))));
        if (mul) g = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(k, mul + i));
        _mm512_mask_storeu_ps(y + i, k, g);
    }
}

__attribute__((target("avx2,fma"))) static inline __m256 s_exp256(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(LF__EXP_HI));
    x = _mm256_max_ps(x, _mm256_set1_ps(LF__EXP_LO));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LF__LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LF__LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LF__LN2_LO), r);
    __m256 p = _mm256_set1_ps(LF__P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LF__P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LF__P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LF__P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LF__P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(LF__P5));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^n by building the exponent bits; n is within [-126, 127] here. */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) static float s_exp_sum_avx2(float *x, int64_t n, float m) {
    __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = s_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float buf[8];
    _mm256_storeu_ps(buf, acc);
    float sum = buf[0] + buf[1] + buf[2] + buf[3] + buf[4] + buf[5] + buf[6] + buf[7];
    return sum + s_exp_sum_scalar(x + i, n - i, m);
}

__attribute__((target("avx2,fma"))) static inline __m256 s_exp0_256(__m256 x) {
    return _mm256_and_ps(s_exp256(x), _mm256_cmp_ps(x, _mm256_set1_ps(LF__EXP_LO), _CMP_GE_OQ));
}

/* Eight lanes at a time as the AVX-512 form; a tail of lanes in C. */
__attribute__((target("avx2,fma"))) static void s_softmax_lanes_avx2(float *S, int64_t keys, int64_t ld, int64_t n,
                                                                    float *m, float *l, float *corr) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 mo = _mm256_loadu_ps(m + i), mn = mo;
        for (int64_t c = 0; c < keys; c++) mn = _mm256_max_ps(mn, _mm256_loadu_ps(S + c * ld + i));
        __m256 ref = _mm256_and_ps(mn, _mm256_cmp_ps(mn, ninf, _CMP_NEQ_OQ));
        __m256 s0 = _mm256_setzero_ps();
        for (int64_t c = 0; c < keys; c++) {
            __m256 e = s_exp0_256(_mm256_sub_ps(_mm256_loadu_ps(S + c * ld + i), ref));
            _mm256_storeu_ps(S + c * ld + i, e);
            s0 = _mm256_add_ps(s0, e);
        }
        __m256 cr = s_exp0_256(_mm256_sub_ps(mo, ref));
        _mm256_storeu_ps(corr + i, cr);
        _mm256_storeu_ps(l + i, _mm256_fmadd_ps(_mm256_loadu_ps(l + i), cr, s0));
        _mm256_storeu_ps(m + i, mn);
    }
    if (i < n) s_softmax_lanes_scalar(S + i, keys, ld, n - i, m + i, l + i, corr + i);
}

__attribute__((target("avx2"))) static float s_max_avx2(const float *x, int64_t n) {
    __m256 acc = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_max_ps(acc, _mm256_loadu_ps(x + i));
    float buf[8];
    _mm256_storeu_ps(buf, acc);
    float m = buf[0];
    for (int j = 1; j < 8; j++) m = buf[j] > m ? buf[j] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

__attribute__((target("avx2,fma"))) static void s_silu_avx2(float *y, const float *x, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = s_exp256(_mm256_sub_ps(_mm256_setzero_ps(), v));
        _mm256_storeu_ps(y + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    s_silu_scalar(y + i, x + i, n - i);
}

__attribute__((target("avx2,fma"))) static void s_gelu_avx2(float *y, const float *x, const float *mul, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), r2 = _mm256_set1_ps(0.70710678118654752f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), z = _mm256_mul_ps(v, r2);
        __m256 az = _mm256_andnot_ps(sign, z);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(LF__ERF_P), az, one));
        __m256 p = _mm256_set1_ps(LF__ERF_A5);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(LF__ERF_A4));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(LF__ERF_A3));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(LF__ERF_A2));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(LF__ERF_A1));
        p = _mm256_mul_ps(p, t);
        __m256 e = s_exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(az, az)));
        __m256 r = _mm256_or_ps(_mm256_fnmadd_ps(p, e, one), _mm256_and_ps(sign, z));
        __m256 g = _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, r));
        if (mul) g = _mm256_mul_ps(g, _mm256_loadu_ps(mul + i));
        _mm256_storeu_ps(y + i, g);
    }
    s_gelu_scalar(y + i, x + i, mul ? mul + i : NULL, n - i);
}

__attribute__((target("avx2,fma"))) static void s_sum_sq_avx2(const float *x, int64_t n, float shift, float *sum,
                                                              float *sq) {
    const __m256 vs = _mm256_set1_ps(shift);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_sub_ps(_mm256_loadu_ps(x + i), vs), b = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vs);
        s0 = _mm256_add_ps(s0, a), s1 = _mm256_add_ps(s1, b);
        q0 = _mm256_fmadd_ps(a, a, q0), q1 = _mm256_fmadd_ps(b, b, q1);
    }
    float bs[8], bq[8], ts, tq;
    _mm256_storeu_ps(bs, _mm256_add_ps(s0, s1));
    _mm256_storeu_ps(bq, _mm256_add_ps(q0, q1));
    s_sum_sq_scalar(x + i, n - i, shift, &ts, &tq);
    for (int j = 0; j < 8; j++) ts += bs[j], tq += bq[j];
    *sum = ts, *sq = tq;
}

__attribute__((target("avx2,fma"))) static void s_norm_avx2(float *y, const float *x, int64_t n, float m, float a,
                                                            float c, const float *g, const float *beta) {
    const __m256 va = _mm256_set1_ps(a), vm = _mm256_set1_ps(m), vc = _mm256_set1_ps(c);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), va, vc);
        if (g) v = _mm256_mul_ps(v, _mm256_loadu_ps(g + i));
        if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + i));
        _mm256_storeu_ps(y + i, v);
    }
    s_norm_scalar(y + i, x + i, n - i, m, a, c, g ? g + i : NULL, beta ? beta + i : NULL);
}

__attribute__((target("avx2,fma"))) static void s_affine_avx2(float *y, const float *x, int64_t n, float m, float a,
                                                              float b, bool silu) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vm = _mm256_set1_ps(m), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), va, vb);
        if (silu) v = _mm256_div_ps(v, _mm256_add_ps(one, s_exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
        _mm256_storeu_ps(y + i, v);
    }
    s_affine_scalar(y + i, x + i, n - i, m, a, b, silu);
}

void lf__cpu_simd_init(lf__cpu_simd_t *simd, bool avx512, bool avx2) {
    if (avx512) {
        simd->exp_sum = s_exp_sum_avx512, simd->max = s_max_avx512, simd->name = "avx512";
        simd->silu = s_silu_avx512, simd->gelu = s_gelu_avx512;
        simd->sum_sq = s_sum_sq_avx512, simd->affine = s_affine_avx512, simd->norm = s_norm_avx512;
        simd->transpose = s_transpose_avx512;
        simd->softmax_lanes = s_softmax_lanes_avx512;
    } else if (avx2) {
        simd->exp_sum = s_exp_sum_avx2, simd->max = s_max_avx2, simd->name = "avx2";
        simd->silu = s_silu_avx2, simd->gelu = s_gelu_avx2;
        simd->sum_sq = s_sum_sq_avx2, simd->affine = s_affine_avx2, simd->norm = s_norm_avx2;
        simd->transpose = s_transpose_scalar;
        simd->softmax_lanes = s_softmax_lanes_avx2;
    } else {
        simd->exp_sum = s_exp_sum_scalar, simd->max = s_max_scalar, simd->name = "scalar";
        simd->silu = s_silu_scalar, simd->gelu = s_gelu_scalar;
        simd->sum_sq = s_sum_sq_scalar, simd->affine = s_affine_scalar, simd->norm = s_norm_scalar;
        simd->transpose = s_transpose_scalar;
        simd->softmax_lanes = s_softmax_lanes_scalar;
    }
}

/* ---- conversion to bf16 (the bf16 compute path's operands) ---- */

/* f32 -> bf16 sixteen at a time (VCVTNEPS2BF16: round to nearest even,
 * input denormals read as zero); f16 sources are widened with F16C first. */
__attribute__((target("avx512f,avx512bf16,f16c"))) static void s_to_bf16_avx512(
    lf_type_t type, const void *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = type == LF_TYPE_F32
                       ? _mm512_loadu_ps((const float *)src + i)
                       : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)src + i)));
        __m256bh b = _mm512_cvtneps_pbh(v);
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)b);
    }
    for (; i < n; i++)
        dst[i] = lf_f32_to_bf16(type == LF_TYPE_F32 ? ((const float *)src)[i]
                                                    : lf_f16_to_f32(((const uint16_t *)src)[i]));
}

static void s_to_bf16_scalar(lf_type_t type, const void *src, uint16_t *dst, int64_t n) {
    if (type == LF_TYPE_BF16) {
        memcpy(dst, src, (size_t)n * 2);
        return;
    }
    float buf[256];
    for (int64_t i = 0; i < n; i += 256) {
        int64_t m = n - i < 256 ? n - i : 256;
        lf_type_to_f32(type, (const char *)src + i * (int64_t)lf_type_size(type), buf, m);
        lf_type_from_f32(LF_TYPE_BF16, buf, dst + i, m);
    }
}

typedef struct {
    lf_type_t type, to; /* to: LF_TYPE_BF16 or LF_TYPE_F32 */
    const void *src;
    void *dst;
    int64_t n, chunk;
    bool avx512_bf16;
} s_convert_job_t;

static void s_convert_task(void *arg, int64_t t, int thread) {
    (void)thread;
    const s_convert_job_t *j = arg;
    int64_t i0 = t * j->chunk, m = j->n - i0 < j->chunk ? j->n - i0 : j->chunk;
    const void *s = (const char *)j->src + i0 * (int64_t)lf_type_size(j->type);
    if (j->to == LF_TYPE_F32) lf_type_to_f32(j->type, s, (float *)j->dst + i0, m);
    else if (j->avx512_bf16 && j->type != LF_TYPE_BF16) s_to_bf16_avx512(j->type, s, (uint16_t *)j->dst + i0, m);
    else s_to_bf16_scalar(j->type, s, (uint16_t *)j->dst + i0, m);
}

__attribute__((target("avx512f,avx512bf16,f16c"))) static void s_row_bf16_avx512(uint16_t *d, const float *x,
                                                                                   int64_t n) {
    s_to_bf16_avx512(LF_TYPE_F32, x, d, n);
}

static void s_row_bf16_scalar(uint16_t *d, const float *x, int64_t n) {
    lf_type_from_f32(LF_TYPE_BF16, x, d, n);
}

/* s_norm_avx512 and s_affine_avx512 with the store rounded to bf16. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void s_norm_bf16_avx512(
    uint16_t *y, const float *x, int64_t n, float m, float a, float c, const float *g, const float *beta) {
    const __m512 va = _mm512_set1_ps(a), vm = _mm512_set1_ps(m), vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = s_mask16(n, i);
        _mm256_mask_storeu_epi16(y + i, k, (__m256i)_mm512_cvtneps_pbh(s_norm16(x, i, k, vm, va, vc, g, beta)));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void s_affine_bf16_avx512(
    uint16_t *y, const float *x, int64_t n, float m, float a, float b, bool silu) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vm = _mm512_set1_ps(m);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = s_mask16(n, i);
        _mm256_mask_storeu_epi16(y + i, k, (__m256i)_mm512_cvtneps_pbh(s_affine16(x, i, k, vm, va, vb, silu)));
    }
}

void lf__cpu_simd_bf16(lf__cpu_simd_t *simd, bool avx512_bf16) {
    simd->to_bf16 = avx512_bf16 ? s_row_bf16_avx512 : s_row_bf16_scalar;
    const bool fused = avx512_bf16 && simd->affine == s_affine_avx512;
    simd->norm_bf16 = fused ? s_norm_bf16_avx512 : NULL;
    simd->affine_bf16 = fused ? s_affine_bf16_avx512 : NULL;
}

void lf__cpu_to_bf16(lf__cpu_pool_t *pool, bool avx512_bf16, lf_type_t type, const void *src,
                     uint16_t *dst, int64_t n) {
    s_convert_job_t j = {type, LF_TYPE_BF16, src, dst, n, 1 << 16, avx512_bf16};
    lf__cpu_pool_run(pool, (n + j.chunk - 1) / j.chunk, s_convert_task, &j);
}

void lf__cpu_to_f32(lf__cpu_pool_t *pool, lf_type_t type, const void *src, float *dst, int64_t n) {
    /* Whole quantization blocks per task. */
    int64_t chunk = (1 << 16) / lf_type_block(type) * lf_type_block(type);
    s_convert_job_t j = {type, LF_TYPE_F32, src, dst, n, chunk, false};
    lf__cpu_pool_run(pool, (n + j.chunk - 1) / j.chunk, s_convert_task, &j);
}
