/* lf_cpu_lowrank: ADD_LOWRANK, dst = a + (u . v + c), in one pass over the
 * weight: the rank-K product of a few rows and a tile of columns is summed in
 * registers (AVX-512) or a small f32 row (scalar), then a's values are
 * widened, added, checked for Inf/NaN and stored in dst's type, rounded to
 * nearest even (the AVX-512 form where LF_CPU_SIMD leaves the vector level
 * at avx512, else the scalar one). Rows are spread over the backend's
 * threads; each task packs a tile of v (K x tile columns, ~128 KiB) that
 * stays in cache while it walks its rows, 6 rows x 32 columns at a time.
 * No OpenBLAS call: a LoRA merge of rank 8 spent as much in sgemm's zeroing
 * of C and its threads' spinning as in the products. */
#include <stdint.h>
#include <string.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Rows computed together (they share each loaded vector of v). */
#define S_ROWS 6

typedef struct {
    const lf_node_t *n;
    lf__cpu_ctx_t *cpu;
    int64_t M, N, K, tile, per_task;
    bool avx512;
    int bad; /* set (relaxed) by any task that stored a non-finite value */
} s_job_t;

/* Columns per tile: K x tile f32 of v in ~128 KiB, a multiple of 32. */
static int64_t s_tile(int64_t K, int64_t N) {
    int64_t t = ((int64_t)32768 / (K ? K : 1)) & ~(int64_t)31;
    if (t < 32) t = 32;
    return t < N ? t : N;
}

/* A row of nr values as stored in type is Inf/NaN somewhere. */
static bool s_any_bad(lf_type_t type, const void *p, int64_t nr) {
    if (type == LF_TYPE_F32) {
        const float *f = p;
        for (int64_t i = 0; i < nr; i++)
            if (!(f[i] - f[i] == 0.0f)) return true;
        return false;
    }
    const uint16_t *h = p, m = type == LF_TYPE_F16 ? 0x7C00 : 0x7F80;
    uint16_t any = 0;
    for (int64_t i = 0; i < nr; i++) any |= (uint16_t)((h[i] & m) == m);
    return any != 0;
}

/* Rows [m0, m0 + nr) x columns [j0, j0 + w), scalar; tmp: 2 w floats. */
static bool s_rows_scalar(const s_job_t *j, int64_t m0, int64_t nr, int64_t j0, int64_t w, float *tmp) {
    const lf_node_t *n = j->n;
    const lf_tensor_t *a = n->src[0], *u = n->src[1], *v = n->src[2], *c = n->src[3];
    const lf_type_t type = n->dst->type;
    const size_t es = lf_type_size(type);
    const int64_t N = j->N, K = j->K;
    bool bad = false;
    float *acc = tmp, *row = tmp + w;
    for (int64_t m = m0; m < m0 + nr; m++) {
        const float *um = (const float *)u->data + m * K;
        for (int64_t i = 0; i < w; i++) acc[i] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            const float s = um[k], *vk = (const float *)v->data + k * N + j0;
            for (int64_t i = 0; i < w; i++) acc[i] += s * vk[i];
        }
        if (c) {
            const float *cm = (const float *)c->data + m * N + j0;
            for (int64_t i = 0; i < w; i++) acc[i] += cm[i];
        }
        const size_t at = (size_t)(m * N + j0) * es;
        lf_type_to_f32(type, (const char *)a->data + at, row, w);
        for (int64_t i = 0; i < w; i++) row[i] += acc[i];
        void *out = (char *)n->dst->data + at;
        lf_type_from_f32(type, row, out, w);
        bad |= s_any_bad(type, out, w);
    }
    return bad;
}

#if defined(__x86_64__)
#define S_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma")))

S_AVX512 static inline __m512 s_load(lf_type_t type, const void *p, __mmask16 mk) {
    if (type == LF_TYPE_F32) return _mm512_maskz_loadu_ps(mk, p);
    __m256i h = _mm256_maskz_loadu_epi16(mk, p);
    if (type == LF_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Stores x in type (nearest even); true where a stored lane is Inf/NaN. */
S_AVX512 static inline bool s_store(lf_type_t type, void *p, __m512 x, __mmask16 mk) {
    if (type == LF_TYPE_F32) {
        _mm512_mask_storeu_ps(p, mk, x);
        const __m512 ax = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)));
        return _mm512_mask_cmp_ps_mask(mk, ax, _mm512_set1_ps(3.40282347e38f), _CMP_NLE_UQ) != 0;
    }
    __m256i h, e;
    if (type == LF_TYPE_F16) {
        h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        e = _mm256_set1_epi16(0x7C00);
    } else {
        /* bf16: + 0x7FFF + the kept lowest bit, then the top half (a NaN may
         * round to anything: it is flagged before). */
        const __m512i xi = _mm512_castps_si512(x);
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(xi, 16), _mm512_set1_epi32(1));
        h = _mm512_cvtepi32_epi16(
            _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(xi, _mm512_set1_epi32(0x7FFF)), odd), 16));
        e = _mm256_set1_epi16(0x7F80);
    }
    _mm256_mask_storeu_epi16(p, mk, h);
    return (_mm256_mask_cmpeq_epi16_mask(mk, _mm256_and_si256(h, e), e) |
            _mm512_mask_cmp_ps_mask(mk, x, x, _CMP_UNORD_Q)) != 0;
}

/* Columns [j0, j0 + w) of v packed for the kernel: chunks of 32 columns,
 * each K rows of 32 contiguous floats (zero past w), so that the loop over k
 * reads one stream from L1. */
static void s_pack(const float *v, int64_t N, int64_t K, int64_t j0, int64_t w, float *p) {
    for (int64_t c = 0; c < w; c += 32) {
        const int64_t cw = w - c < 32 ? w - c : 32;
        for (int64_t k = 0; k < K; k++, p += 32) {
            memcpy(p, v + k * N + j0 + c, (size_t)cw * sizeof *p);
            if (cw < 32) memset(p + cw, 0, (size_t)(32 - cw) * sizeof *p);
        }
    }
}

/* dst[at..] = a[at..] + d (+ c[at..]) for the lanes of mk; true if one is not finite. */
S_AVX512 static inline bool s_finish(const lf_node_t *n, lf_type_t type, size_t es, int64_t at, __m512 d,
                                     __mmask16 mk) {
    if (n->src[3]) d = _mm512_add_ps(d, _mm512_maskz_loadu_ps(mk, (const float *)n->src[3]->data + at));
    const __m512 x = _mm512_add_ps(s_load(type, (const char *)n->src[0]->data + (size_t)at * es, mk), d);
    return s_store(type, (char *)n->dst->data + (size_t)at * es, x, mk);
}

/* Rows [m0, m0 + nr) (nr <= S_ROWS) x columns [j0, j0 + w) from the packed
 * tile pk: S_ROWS x 32 sums in twelve registers, one FMA per loaded value
 * of u and of the tile. */
S_AVX512 static bool s_rows_avx512(const s_job_t *j, int64_t m0, int64_t nr, int64_t j0, int64_t w,
                                   const float *pk) {
    const lf_node_t *n = j->n;
    const lf_type_t type = n->dst->type;
    const size_t es = lf_type_size(type);
    const int64_t N = j->N, K = j->K;
    /* Six rows, written out: arrays of accumulators stay in memory at -O2. */
    const float *u = (const float *)n->src[1]->data;
#define S_ROW(r) (u + (m0 + ((r) < nr ? (r) : nr - 1)) * K)
    const float *u0 = S_ROW(0), *u1 = S_ROW(1), *u2 = S_ROW(2), *u3 = S_ROW(3), *u4 = S_ROW(4), *u5 = S_ROW(5);
#undef S_ROW
    bool bad = false;
    for (int64_t i = 0; i < w; i += 32, pk += K * 32) {
        const int64_t cw = w - i < 32 ? w - i : 32;
        const __mmask16 k0 = cw >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cw) - 1);
        const __mmask16 k1 = cw <= 16 ? 0 : cw == 32 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cw - 16)) - 1);
        __m512 l0 = _mm512_setzero_ps(), l1 = l0, l2 = l0, l3 = l0, l4 = l0, l5 = l0;
        __m512 h0 = l0, h1 = l0, h2 = l0, h3 = l0, h4 = l0, h5 = l0;
        for (int64_t k = 0; k < K; k++) {
            const __m512 v0 = _mm512_loadu_ps(pk + k * 32), v1 = _mm512_loadu_ps(pk + k * 32 + 16);
#define S_FMA(r)                                                                                          \
    do {                                                                                                  \
        const __m512 b = _mm512_set1_ps(u##r[k]);                                                         \
        l##r = _mm512_fmadd_ps(b, v0, l##r);                                                              \
        h##r = _mm512_fmadd_ps(b, v1, h##r);                                                              \
    } while (0)
            S_FMA(0);
            S_FMA(1);
            S_FMA(2);
            S_FMA(3);
            S_FMA(4);
            S_FMA(5);
#undef S_FMA
        }
        const __m512 lo[S_ROWS] = {l0, l1, l2, l3, l4, l5}, hi[S_ROWS] = {h0, h1, h2, h3, h4, h5};
        for (int64_t r = 0; r < nr; r++) {
            const int64_t at = (m0 + r) * N + j0 + i;
            bad |= s_finish(n, type, es, at, lo[r], k0);
            if (k1) bad |= s_finish(n, type, es, at + 16, hi[r], k1);
        }
    }
    return bad;
}
#endif

static void s_task(void *ctx, int64_t task, int thread) {
    s_job_t *j = ctx;
    const int64_t m_begin = task * j->per_task;
    const int64_t m_end = m_begin + j->per_task < j->M ? m_begin + j->per_task : j->M;
    float *tmp = j->cpu->scratch[thread];
    bool bad = false;
    for (int64_t j0 = 0; j0 < j->N; j0 += j->tile) {
        const int64_t w = j->N - j0 < j->tile ? j->N - j0 : j->tile;
#if defined(__x86_64__)
        if (j->avx512) s_pack((const float *)j->n->src[2]->data, j->N, j->K, j0, w, tmp);
#endif
        for (int64_t m = m_begin; m < m_end; m += S_ROWS) {
            const int64_t nr = m_end - m < S_ROWS ? m_end - m : S_ROWS;
#if defined(__x86_64__)
            if (j->avx512) {
                bad |= s_rows_avx512(j, m, nr, j0, w, tmp);
                continue;
            }
#endif
            bad |= s_rows_scalar(j, m, nr, j0, w, tmp);
        }
    }
    if (bad) __atomic_store_n(&j->bad, 1, __ATOMIC_RELAXED);
}

bool lf__cpu_lowrank_supports(const lf_node_t *n) {
    const lf_type_t t = n->dst->type;
    if (t != LF_TYPE_F32 && t != LF_TYPE_F16 && t != LF_TYPE_BF16) return false;
    if (n->src[0]->type != t || !lf_tensor_is_contiguous(n->dst) || !lf_tensor_is_contiguous(n->src[0]))
        return false;
    for (int i = 1; i < LF_MAX_SRC; i++)
        if (n->src[i] && (n->src[i]->type != LF_TYPE_F32 || !lf_tensor_is_contiguous(n->src[i]))) return false;
    return true;
}

int lf__cpu_op_ADD_LOWRANK(lf_backend_t *be, const lf_node_t *n) {
    lf__cpu_ctx_t *c = be->ctx;
    s_job_t j = {.n = n, .cpu = c, .M = n->dst->ne[1], .N = n->dst->ne[0], .K = n->src[1]->ne[0]};
    j.tile = s_tile(j.K, j.N);
#if defined(__x86_64__)
    j.avx512 = !strcmp(c->simd.name, "avx512") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
#endif
    int64_t tasks = (int64_t)c->n_threads * 4;
    if (j.M * j.N * (j.K + 1) < 65536) tasks = 1; /* waking workers costs more */
    /* Whole groups of S_ROWS rows per task. */
    j.per_task = (j.M + tasks - 1) / tasks;
    j.per_task = (j.per_task + S_ROWS - 1) / S_ROWS * S_ROWS;
    tasks = (j.M + j.per_task - 1) / j.per_task;
    /* Scratch: the packed tile (AVX-512), or two rows of the tile. */
    const size_t scratch = j.avx512 ? (size_t)(j.K * ((j.tile + 31) / 32 * 32)) : (size_t)(2 * j.tile);
    for (int t = 0; t < c->n_threads; t++)
        if (!lf__cpu_scratch(c, t, scratch)) return LF_ENOMEM;
    lf__cpu_pool_run(c->pool, tasks, s_task, &j);
    return j.bad ? LF_EOVERFLOW : 0;
}
