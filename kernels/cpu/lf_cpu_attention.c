/* lf_cpu_attention: fused, memory-efficient attention on the CPU.
 *
 * Flash-attention order: for a block of BQ query rows, walk the keys in tiles
 * of BK; S = Q K^T for the tile, an online softmax keeps each row's running
 * max and sum and rescales the partial output, then O += P V. The N x N
 * score matrix never exists: scratch is about BQ*(BK+Dv) floats per thread
 * whatever N is. Tasks are (batch, head, query block) spread over the
 * thread pool.
 *
 * Three forms, chosen by the backend's compute type:
 * - f32 (the reference): queries run along the vector lanes. A task packs
 *   its query block once as Qt = (scale Q)^T, [D][ld]; a key tile's scores
 *   are St = K Qt, [keys][ld], each key's row of K broadcast against Qt's
 *   rows in a register-blocked FMA kernel (6 broadcast rows by up to 64
 *   lanes under AVX-512, 16 under AVX2, plain C under LF_CPU_SIMD=scalar);
 *   the online softmax runs down the key axis with one running max and sum
 *   per lane (simd->softmax_lanes); then Ot += V^T P the same way, each
 *   key's row of V broadcast against P's rows. Only the query count is
 *   padded to the vector width (a tail block's extra lanes are zeros), so a
 *   head size like SD1.5's 40 wastes no lanes, and K and V are read in
 *   place, never packed. Opt-in for now (LF_CPU_ATTN=blocked; the
 *   default is still the older form, two single-threaded sgemm calls per
 *   (query block, key tile)).
 * - bf16: K and V are rounded to bf16 once per call and packed in the pair
 *   layout VDPBF16PS reads (K in panels of 64 keys, [D/2][64][2]; V as
 *   [N/2][Dv][2]); Q (times the scale) and P are rounded per task; both
 *   products run in a register-blocked kernel with f32 accumulation
 *   (AVX512_BF16, or the same arithmetic in scalar C where the vector form
 *   is capped); the softmax stays f32. */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

typedef struct {
    const lf_node_t *node;
    lf__cpu_ctx_t *cpu;
    int64_t bq, bk, nqb;
    int failed;
} s_attn_job_t;

static int64_t s_env(const char *name, int64_t dflt) {
    const char *e = getenv(name);
    long v = e ? atol(e) : 0;
    return v > 0 ? v : dflt;
}

/* ---- f32 sgemm form (LF_CPU_ATTN=sgemm) ---- */

static void s_attn_task(void *arg, int64_t task, int thread) {
    s_attn_job_t *j = arg;
    const lf_node_t *n = j->node;
    const lf_tensor_t *q = n->src[0], *k = n->src[1], *v = n->src[2], *mask = n->src[3];
    lf_tensor_t *d = n->dst;
    int64_t D = q->ne[0], Dv = v->ne[0], Nq = q->ne[1], Nk = k->ne[1], H = q->ne[2];
    int64_t qb = task % j->nqb, h = (task / j->nqb) % H, b = task / (j->nqb * H);
    int64_t r0 = qb * j->bq, rows = Nq - r0 < j->bq ? Nq - r0 : j->bq;
    int64_t bk = j->bk;
    float *S = lf__cpu_scratch(j->cpu, thread, (size_t)(j->bq * (bk + Dv + 2)));
    if (!S) {
        j->failed = 1;
        return;
    }
    float *O = S + j->bq * bk, *m = O + j->bq * Dv, *l = m + j->bq;
    const float *Q = (const float *)((const char *)q->data + r0 * (int64_t)q->nb[1] +
                                     h * (int64_t)q->nb[2] + b * (int64_t)q->nb[3]);
    const char *Kb = (const char *)k->data + h * (int64_t)k->nb[2] + b * (int64_t)k->nb[3];
    const char *Vb = (const char *)v->data + h * (int64_t)v->nb[2] + b * (int64_t)v->nb[3];
    blasint ldq = (blasint)(q->ne[1] == 1 ? D : (int64_t)q->nb[1] / 4);
    blasint ldk = (blasint)(Nk == 1 ? D : (int64_t)k->nb[1] / 4);
    blasint ldv = (blasint)(Nk == 1 ? Dv : (int64_t)v->nb[1] / 4);
    float scale = n->p.attention.scale;
    const lf__cpu_simd_t *simd = &j->cpu->simd;
    for (int64_t r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0;
    memset(O, 0, (size_t)(rows * Dv) * 4);
    for (int64_t c0 = 0; c0 < Nk; c0 += bk) {
        int64_t cols = Nk - c0 < bk ? Nk - c0 : bk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)rows, (blasint)cols,
                    (blasint)D, scale, Q, ldq, (const float *)(Kb + c0 * (int64_t)k->nb[1]), ldk,
                    0.0f, S, (blasint)bk);
        for (int64_t r = 0; r < rows; r++) {
            float *s = S + r * bk;
            if (mask) {
                const char *mr = (const char *)mask->data + (r0 + r) * (int64_t)mask->nb[1] +
                                 (mask->ne[2] > 1 ? h * (int64_t)mask->nb[2] : 0);
                const float *mk = (const float *)mr + c0;
                for (int64_t c = 0; c < cols; c++) s[c] += mk[c];
            }
            float mt = simd->max(s, cols);
            float mnew = mt > m[r] ? mt : m[r];
            if (mnew == -INFINITY) { /* everything masked so far */
                memset(s, 0, (size_t)cols * 4);
                continue;
            }
            float sum = simd->exp_sum(s, cols, mnew);
            float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - mnew);
            l[r] = l[r] * corr + sum;
            m[r] = mnew;
            if (corr != 1.0f) {
                float *o = O + r * Dv;
                for (int64_t i = 0; i < Dv; i++) o[i] *= corr;
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)Dv,
                    (blasint)cols, 1.0f, S, (blasint)bk,
                    (const float *)(Vb + c0 * (int64_t)v->nb[1]), ldv, 1.0f, O, (blasint)Dv);
    }
    for (int64_t r = 0; r < rows; r++) {
        float *dst = (float *)((char *)d->data + (r0 + r) * (int64_t)d->nb[1] +
                               h * (int64_t)d->nb[2] + b * (int64_t)d->nb[3]);
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        for (int64_t i = 0; i < Dv; i++) dst[i] = O[r * Dv + i] * inv;
    }
}

/* ---- bf16 form ---- */

#define S_PANEL 64 /* keys per packed K panel: four vectors of 16 */
#define S_MR 6     /* rows per register block */
#define S_MV 4     /* 16-wide vectors per register block */

static int64_t s_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* y[0..npad) = bf16(x[i] * scale) for i < n, zeros after. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void s_row_bf16_avx512(const float *x, int64_t n,
                                                                          float scale, uint16_t *y,
                                                                          int64_t npad) {
    __m512 vs = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < npad; i += 16) {
        int64_t left = n - i;
        __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        __mmask16 ks = npad - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (npad - i)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs);
        _mm256_mask_storeu_epi16(y + i, ks, (__m256i)_mm512_cvtneps_pbh(v));
    }
}

static void s_row_bf16_scalar(const float *x, int64_t n, float scale, uint16_t *y, int64_t npad) {
    for (int64_t i = 0; i < npad; i++) y[i] = i < n ? lf_f32_to_bf16(x[i] * scale) : 0;
}

static void s_row_bf16(bool dp, const float *x, int64_t n, float scale, uint16_t *y, int64_t npad) {
    if (dp) s_row_bf16_avx512(x, n, scale, y, npad);
    else s_row_bf16_scalar(x, n, scale, y, npad);
}

/* The register block: C[r][0..16*NV) (+)= sum over p < kp of
 * A[r][2p] * B[p][c][0] + A[r][2p+1] * B[p][c][1], for r < R; A is bf16 with
 * row stride lda, B bf16 pairs with stride ldb between p, C f32. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), always_inline)) static inline void s_block_avx512(
    const int R, const int NV, int64_t kp, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb,
    float *C, int64_t ldc, bool acc) {
    __m512 c[S_MR][S_MV];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) c[r][v] = acc ? _mm512_loadu_ps(C + r * ldc + 16 * v) : _mm512_setzero_ps();
    for (int64_t p = 0; p < kp; p++) {
        __m512bh b[S_MV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = (__m512bh)_mm512_loadu_si512(B + p * ldb + 32 * v);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            int32_t pair;
            memcpy(&pair, A + r * lda + 2 * p, 4);
            __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) c[r][v] = _mm512_dpbf16_ps(c[r][v], a, b[v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * ldc + 16 * v, c[r][v]);
}

typedef void (*s_block_fn)(int64_t kp, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, float *C,
                           int64_t ldc, bool acc);
#define S_BLOCK(R, NV)                                                                                       \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void s_block_##R##_##NV(                           \
        int64_t kp, const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, float *C, int64_t ldc, \
        bool acc) {                                                                                          \
        s_block_avx512(R, NV, kp, A, lda, B, ldb, C, ldc, acc);                                              \
    }
#define S_BLOCK_ROW(R) S_BLOCK(R, 1) S_BLOCK(R, 2) S_BLOCK(R, 3) S_BLOCK(R, 4)
S_BLOCK_ROW(1) S_BLOCK_ROW(2) S_BLOCK_ROW(3) S_BLOCK_ROW(4) S_BLOCK_ROW(5) S_BLOCK_ROW(6)
#define S_BLOCK_REF(R) {s_block_##R##_1, s_block_##R##_2, s_block_##R##_3, s_block_##R##_4}
static const s_block_fn s_blocks[S_MR][S_MV] = {S_BLOCK_REF(1), S_BLOCK_REF(2), S_BLOCK_REF(3),
                                                S_BLOCK_REF(4), S_BLOCK_REF(5), S_BLOCK_REF(6)};

static inline float s_bf(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The same arithmetic in C: bf16 products are exact in f32. */
static void s_block_scalar(int R, int NV, int64_t kp, const uint16_t *A, int64_t lda, const uint16_t *B,
                           int64_t ldb, float *C, int64_t ldc, bool acc) {
    for (int r = 0; r < R; r++)
        for (int64_t c = 0; c < 16 * NV; c++) {
            float s = acc ? C[r * ldc + c] : 0.0f;
            for (int64_t p = 0; p < kp; p++) {
                const uint16_t *a = A + r * lda + 2 * p, *b = B + p * ldb + 2 * c;
                s += s_bf(a[0]) * s_bf(b[0]) + s_bf(a[1]) * s_bf(b[1]);
            }
            C[r * ldc + c] = s;
        }
}

/* C[rows][16*nv] (+)= A[rows][2*kp] . B, B packed [kp][16*nv][2] with stride
 * ldb between pairs: register blocks of S_MR rows by S_MV vectors, the rows
 * inner so a block's B stays in L1. */
static void s_gemm_bf16(bool dp, int64_t rows, int64_t nv, int64_t kp, const uint16_t *A, int64_t lda,
                        const uint16_t *B, int64_t ldb, float *C, int64_t ldc, bool acc) {
    for (int64_t v0 = 0; v0 < nv; v0 += S_MV) {
        int vb = nv - v0 < S_MV ? (int)(nv - v0) : S_MV;
        for (int64_t r0 = 0; r0 < rows; r0 += S_MR) {
            int rb = rows - r0 < S_MR ? (int)(rows - r0) : S_MR;
            if (dp) s_blocks[rb - 1][vb - 1](kp, A + r0 * lda, lda, B + 32 * v0, ldb, C + r0 * ldc + 16 * v0, ldc, acc);
            else s_block_scalar(rb, vb, kp, A + r0 * lda, lda, B + 32 * v0, ldb, C + r0 * ldc + 16 * v0, ldc, acc);
        }
    }
}

typedef struct {
    const lf_node_t *node;
    lf__cpu_ctx_t *cpu;
    bool dp;                      /* VDPBF16PS (else the scalar block) */
    int64_t bq, bk, nqb, lds;     /* lds: S and P row stride, bk rounded up to a panel */
    int64_t Dp, Dvp, kpad;        /* D even, Dv to 16, Nk to a panel */
    int64_t kstride, vstride;     /* bf16 elements per (batch, head) of Kp and Vp */
    uint16_t *Kp, *Vp, *Kl;       /* Kl: K - bf16(K), rounded again (split3) */
    bool split3;                  /* Q K^T as Qh Kh + Qh Kl + Ql Kh (LF_ATTN_QK=bf16x3) */
    int failed;
} s_attn16_job_t;

/* Row i of t's (head h, batch b) matrix. */
static const float *s_row(const lf_tensor_t *t, int64_t i, int64_t h, int64_t b) {
    return (const float *)((const char *)t->data + i * (int64_t)t->nb[1] + h * (int64_t)t->nb[2] +
                           b * (int64_t)t->nb[3]);
}

/* Packs (batch, head) task's K and V. */
static void s_pack_task(void *arg, int64_t task, int thread) {
    s_attn16_job_t *j = arg;
    const lf_tensor_t *k = j->node->src[1], *v = j->node->src[2];
    int64_t D = k->ne[0], Dv = v->ne[0], Nk = k->ne[1], H = k->ne[2], h = task % H, b = task / H;
    uint16_t *tmp = (uint16_t *)lf__cpu_scratch(j->cpu, thread, (size_t)(j->Dp + 2 * j->Dvp));
    if (!tmp) {
        j->failed = 1;
        return;
    }
    uint16_t *Kp = j->Kp + task * j->kstride, *Vp = j->Vp + task * j->vstride;
    int64_t hp = j->Dp / 2;
    for (int split = 0; split < (j->split3 ? 2 : 1); split++) {
        uint16_t *dst = split ? j->Kl + task * j->kstride : Kp;
        for (int64_t key = 0; key < j->kpad; key++) {
            if (key >= Nk) memset(tmp, 0, (size_t)j->Dp * 2);
            else if (!split) s_row_bf16(j->dp, s_row(k, key, h, b), D, 1.0f, tmp, j->Dp);
            else { /* the part bf16 lost */
                const float *x = s_row(k, key, h, b);
                for (int64_t i = 0; i < j->Dp; i++)
                    tmp[i] = i < D ? lf_f32_to_bf16(x[i] - lf_bf16_to_f32(lf_f32_to_bf16(x[i]))) : 0;
            }
            uint16_t *panel = dst + key / S_PANEL * hp * 2 * S_PANEL + 2 * (key % S_PANEL);
            for (int64_t p = 0; p < hp; p++) memcpy(panel + p * 2 * S_PANEL, tmp + 2 * p, 4);
        }
    }
    uint16_t *t0 = tmp + j->Dp, *t1 = t0 + j->Dvp;
    for (int64_t p = 0; p < (Nk + 1) / 2; p++) {
        s_row_bf16(j->dp, s_row(v, 2 * p, h, b), Dv, 1.0f, t0, j->Dvp);
        if (2 * p + 1 < Nk) s_row_bf16(j->dp, s_row(v, 2 * p + 1, h, b), Dv, 1.0f, t1, j->Dvp);
        else memset(t1, 0, (size_t)j->Dvp * 2);
        uint16_t *o = Vp + p * 2 * j->Dvp;
        for (int64_t c = 0; c < j->Dvp; c++) o[2 * c] = t0[c], o[2 * c + 1] = t1[c];
    }
}

static size_t s_attn16_scratch(const s_attn16_job_t *j) {
    /* S, O, m, l in f32; Q and P in bf16 (counted in floats). */
    return (size_t)(j->bq * (j->lds + j->Dvp + 2) + (j->bq * (2 * j->Dp + j->lds) + 1) / 2 + 16);
}

static void s_attn16_task(void *arg, int64_t task, int thread) {
    s_attn16_job_t *j = arg;
    const lf_node_t *n = j->node;
    const lf_tensor_t *q = n->src[0], *k = n->src[1], *mask = n->src[3];
    lf_tensor_t *d = n->dst;
    int64_t D = q->ne[0], Dv = n->src[2]->ne[0], Nq = q->ne[1], Nk = k->ne[1], H = q->ne[2];
    int64_t qb = task % j->nqb, h = (task / j->nqb) % H, b = task / (j->nqb * H);
    int64_t r0 = qb * j->bq, rows = Nq - r0 < j->bq ? Nq - r0 : j->bq;
    int64_t bk = j->bk, lds = j->lds, Dp = j->Dp, Dvp = j->Dvp;
    float *S = lf__cpu_scratch(j->cpu, thread, s_attn16_scratch(j));
    if (!S) {
        j->failed = 1;
        return;
    }
    float *O = S + j->bq * lds, *m = O + j->bq * Dvp, *l = m + j->bq;
    uint16_t *Qb = (uint16_t *)(l + j->bq), *Ql = Qb + j->bq * Dp, *Pb = Ql + j->bq * Dp;
    const uint16_t *Kp = j->Kp + (b * H + h) * j->kstride, *Vp = j->Vp + (b * H + h) * j->vstride;
    const uint16_t *Kl = j->split3 ? j->Kl + (b * H + h) * j->kstride : NULL;
    const lf__cpu_simd_t *simd = &j->cpu->simd;
    for (int64_t r = 0; r < rows; r++) {
        s_row_bf16(j->dp, s_row(q, r0 + r, h, b), D, n->p.attention.scale, Qb + r * Dp, Dp);
        if (j->split3) {
            const float *x = s_row(q, r0 + r, h, b);
            for (int64_t i = 0; i < Dp; i++)
                Ql[r * Dp + i] = i < D ? lf_f32_to_bf16(x[i] * n->p.attention.scale - lf_bf16_to_f32(Qb[r * Dp + i])) : 0;
        }
        m[r] = -INFINITY, l[r] = 0;
    }
    memset(O, 0, (size_t)(rows * Dvp) * 4);
    for (int64_t c0 = 0; c0 < Nk; c0 += bk) {
        int64_t cols = Nk - c0 < bk ? Nk - c0 : bk, cpad = (cols + 1) / 2 * 2;
        for (int64_t pp = 0; pp * S_PANEL < cols; pp++) {
            int64_t off = (c0 / S_PANEL + pp) * Dp * S_PANEL;
            s_gemm_bf16(j->dp, rows, S_PANEL / 16, Dp / 2, Qb, Dp, Kp + off, 2 * S_PANEL, S + pp * S_PANEL, lds, false);
            if (Kl) {
                s_gemm_bf16(j->dp, rows, S_PANEL / 16, Dp / 2, Qb, Dp, Kl + off, 2 * S_PANEL, S + pp * S_PANEL, lds, true);
                s_gemm_bf16(j->dp, rows, S_PANEL / 16, Dp / 2, Ql, Dp, Kp + off, 2 * S_PANEL, S + pp * S_PANEL, lds, true);
            }
        }
        for (int64_t r = 0; r < rows; r++) {
            float *s = S + r * lds;
            if (mask) {
                const char *mr = (const char *)mask->data + (r0 + r) * (int64_t)mask->nb[1] +
                                 (mask->ne[2] > 1 ? h * (int64_t)mask->nb[2] : 0);
                const float *mk = (const float *)mr + c0;
                for (int64_t c = 0; c < cols; c++) s[c] += mk[c];
            }
            float mt = simd->max(s, cols);
            float mnew = mt > m[r] ? mt : m[r];
            if (mnew == -INFINITY) { /* everything masked so far */
                memset(Pb + r * lds, 0, (size_t)cpad * 2);
                continue;
            }
            float sum = simd->exp_sum(s, cols, mnew);
            float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - mnew);
            l[r] = l[r] * corr + sum;
            m[r] = mnew;
            if (corr != 1.0f) {
                float *o = O + r * Dvp;
                for (int64_t i = 0; i < Dvp; i++) o[i] *= corr;
            }
            s_row_bf16(j->dp, s, cols, 1.0f, Pb + r * lds, cpad);
        }
        s_gemm_bf16(j->dp, rows, Dvp / 16, cpad / 2, Pb, lds, Vp + c0 * Dvp, 2 * Dvp, O, Dvp, true);
    }
    for (int64_t r = 0; r < rows; r++) {
        float *dst = (float *)((char *)d->data + (r0 + r) * (int64_t)d->nb[1] + h * (int64_t)d->nb[2] +
                               b * (int64_t)d->nb[3]);
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        for (int64_t i = 0; i < Dv; i++) dst[i] = O[r * Dvp + i] * inv;
    }
}

static int s_attention_bf16(lf__cpu_ctx_t *c, const lf_node_t *n) {
    const lf_tensor_t *q = n->src[0], *k = n->src[1], *v = n->src[2];
    int64_t Nk = k->ne[1], heads = q->ne[2] * q->ne[3];
    s_attn16_job_t j = {.node = n, .cpu = c, .dp = c->attn_dpbf16};
    j.bq = s_env("LF_ATTN_BQ", 128);
    j.bk = s_up(s_env("LF_ATTN_BK", 512), S_PANEL); /* tiles start on a panel */
    if (j.bq > q->ne[1]) j.bq = q->ne[1];
    if (j.bk > Nk) j.bk = Nk;
    j.nqb = (q->ne[1] + j.bq - 1) / j.bq;
    j.lds = s_up(j.bk, S_PANEL);
    j.Dp = s_up(q->ne[0], 2), j.Dvp = s_up(v->ne[0], 16), j.kpad = s_up(Nk, S_PANEL);
    j.kstride = j.kpad * j.Dp, j.vstride = s_up(Nk, 2) * j.Dvp;
    const char *qk = getenv("LF_ATTN_QK");
    j.split3 = qk && !strcmp(qk, "bf16x3");
    size_t pack = (size_t)(heads * ((j.split3 ? 2 : 1) * j.kstride + j.vstride)) * 2;
    j.Kp = lf__cpu_work(c, pack + 64);
    if (!j.Kp) return LF_ENOMEM;
    j.Vp = j.Kp + heads * j.kstride;
    j.Kl = j.split3 ? j.Vp + heads * j.vstride : NULL;
    for (int t = 0; t < c->n_threads; t++)
        if (!lf__cpu_scratch(c, t, s_attn16_scratch(&j))) return LF_ENOMEM;
    lf__cpu_pool_run(c->pool, heads, s_pack_task, &j);
    if (!j.failed) lf__cpu_pool_run(c->pool, j.nqb * heads, s_attn16_task, &j);
    return j.failed ? LF_ENOMEM : 0;
}

/* ---- f32 form: queries along the vector lanes ---- */

#define S_R 6 /* broadcast rows per register block */

/* The register block: C[i][0..16*NV) = sum over p < np of
 * A[i*lda + p*ap] * B[p*ldb + 0..16*NV), for i < R, plus C's old value
 * times cs[lane] when cs is not NULL (the online softmax's correction
 * folded into P V's accumulator load). */
__attribute__((target("avx512f"), always_inline)) static inline void s_f32_block_avx512(
    const int R, const int NV, int64_t np, const float *A, int64_t lda, int64_t ap, const float *B, int64_t ldb,
    float *C, int64_t ldc, const float *cs) {
    __m512 c[S_R][4];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            c[r][v] = cs ? _mm512_mul_ps(_mm512_loadu_ps(C + r * ldc + 16 * v), _mm512_loadu_ps(cs + 16 * v))
                         : _mm512_setzero_ps();
    for (int64_t p = 0; p < np; p++) {
        __m512 b[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(B + p * ldb + 16 * v);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(A[r * lda + p * ap]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(C + r * ldc + 16 * v, c[r][v]);
}

/* The same with 8-wide vectors and at most two of them (16 registers). */
__attribute__((target("avx2,fma"), always_inline)) static inline void s_f32_block_avx2(
    const int R, const int NV, int64_t np, const float *A, int64_t lda, int64_t ap, const float *B, int64_t ldb,
    float *C, int64_t ldc, const float *cs) {
    __m256 c[S_R][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++)
            c[r][v] = cs ? _mm256_mul_ps(_mm256_loadu_ps(C + r * ldc + 8 * v), _mm256_loadu_ps(cs + 8 * v))
                         : _mm256_setzero_ps();
    for (int64_t p = 0; p < np; p++) {
        __m256 b[2];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) b[v] = _mm256_loadu_ps(B + p * ldb + 8 * v);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m256 a = _mm256_broadcast_ss(A + r * lda + p * ap);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) c[r][v] = _mm256_fmadd_ps(a, b[v], c[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) _mm256_storeu_ps(C + r * ldc + 8 * v, c[r][v]);
}

typedef void (*s_f32_fn)(int64_t np, const float *A, int64_t lda, int64_t ap, const float *B, int64_t ldb, float *C,
                         int64_t ldc, const float *cs);
#define S_F32(ISA, TARGET, R, NV)                                                                               \
    __attribute__((target(TARGET))) static void s_f32_##ISA##_##R##_##NV(                                       \
        int64_t np, const float *A, int64_t lda, int64_t ap, const float *B, int64_t ldb, float *C, int64_t ldc, \
        const float *cs) {                                                                                      \
        s_f32_block_##ISA(R, NV, np, A, lda, ap, B, ldb, C, ldc, cs);                                           \
    }
#define S_F32_512(R) \
    S_F32(avx512, "avx512f", R, 1) S_F32(avx512, "avx512f", R, 2) S_F32(avx512, "avx512f", R, 3) S_F32(avx512, "avx512f", R, 4)
#define S_F32_256(R) S_F32(avx2, "avx2,fma", R, 1) S_F32(avx2, "avx2,fma", R, 2)
S_F32_512(1) S_F32_512(2) S_F32_512(3) S_F32_512(4) S_F32_512(5) S_F32_512(6)
S_F32_256(1) S_F32_256(2) S_F32_256(3) S_F32_256(4) S_F32_256(5) S_F32_256(6)
#define S_F32_REF512(R) {s_f32_avx512_##R##_1, s_f32_avx512_##R##_2, s_f32_avx512_##R##_3, s_f32_avx512_##R##_4}
#define S_F32_REF256(R) {s_f32_avx2_##R##_1, s_f32_avx2_##R##_2}
static const s_f32_fn s_f32_512[S_R][4] = {S_F32_REF512(1), S_F32_REF512(2), S_F32_REF512(3),
                                           S_F32_REF512(4), S_F32_REF512(5), S_F32_REF512(6)};
static const s_f32_fn s_f32_256[S_R][2] = {S_F32_REF256(1), S_F32_REF256(2), S_F32_REF256(3),
                                           S_F32_REF256(4), S_F32_REF256(5), S_F32_REF256(6)};

/* The same arithmetic in C (no FMA contraction promised), any lane count. */
static void s_f32_block_scalar(int R, int64_t n, int64_t np, const float *A, int64_t lda, int64_t ap, const float *B,
                               int64_t ldb, float *C, int64_t ldc, const float *cs) {
    for (int r = 0; r < R; r++) {
        float *c = C + r * ldc;
        for (int64_t i = 0; i < n; i++) c[i] = cs ? c[i] * cs[i] : 0.0f;
        for (int64_t p = 0; p < np; p++) {
            const float a = A[r * lda + p * ap], *b = B + p * ldb;
            for (int64_t i = 0; i < n; i++) c[i] += a * b[i];
        }
    }
}

/* Vector levels of the f32 form: lanes per vector (the query padding) and
 * vectors per register block. */
enum { S_LVL_SCALAR, S_LVL_AVX2, S_LVL_AVX512 };
static const int64_t s_lane_w[3] = {1, 8, 16}, s_lane_nv[3] = {0, 2, 4};

/* C[rows][lanes] = A B over np (+ C cs, lane by lane, when cs is not NULL):
 * rows of A read as A[i*lda + p*ap] and broadcast, B [np][ldb] along the
 * lanes (lanes a multiple of the level's vector width). Lanes outer, so a
 * lane block of B stays in L1 while the rows of A stream past it. */
static void s_f32_gemm(int lvl, int64_t rows, int64_t lanes, int64_t np, const float *A, int64_t lda, int64_t ap,
                       const float *B, int64_t ldb, float *C, int64_t ldc, const float *cs) {
    if (lvl == S_LVL_SCALAR) {
        for (int64_t r0 = 0; r0 < rows; r0 += S_R)
            s_f32_block_scalar(rows - r0 < S_R ? (int)(rows - r0) : S_R, lanes, np, A + r0 * lda, lda, ap, B, ldb,
                               C + r0 * ldc, ldc, cs);
        return;
    }
    const int64_t w = s_lane_w[lvl], maxv = s_lane_nv[lvl];
    for (int64_t l0 = 0; l0 < lanes; l0 += w * maxv) {
        int64_t nv = (lanes - l0) / w < maxv ? (lanes - l0) / w : maxv;
        for (int64_t r0 = 0; r0 < rows; r0 += S_R) {
            int rb = rows - r0 < S_R ? (int)(rows - r0) : S_R;
            s_f32_fn fn = lvl == S_LVL_AVX512 ? s_f32_512[rb - 1][nv - 1] : s_f32_256[rb - 1][nv - 1];
            fn(np, A + r0 * lda, lda, ap, B + l0, ldb, C + r0 * ldc + l0, ldc, cs ? cs + l0 : NULL);
        }
    }
}

typedef struct {
    const lf_node_t *node;
    lf__cpu_ctx_t *cpu;
    int lvl;
    int64_t bq, bk, nqb, ld; /* ld: lanes per row of Qt, St, Ot (bq rounded up to the vector width) */
    int failed;
} s_attn32_job_t;

static size_t s_attn32_scratch(const s_attn32_job_t *j) {
    const lf_tensor_t *q = j->node->src[0], *v = j->node->src[2];
    return (size_t)(j->ld * (q->ne[0] + j->bk + v->ne[0] + 3));
}

static void s_attn32_task(void *arg, int64_t task, int thread) {
    s_attn32_job_t *j = arg;
    const lf_node_t *n = j->node;
    const lf_tensor_t *q = n->src[0], *k = n->src[1], *v = n->src[2], *mask = n->src[3];
    lf_tensor_t *d = n->dst;
    int64_t D = q->ne[0], Dv = v->ne[0], Nq = q->ne[1], Nk = k->ne[1], H = q->ne[2];
    int64_t qb = task % j->nqb, h = (task / j->nqb) % H, b = task / (j->nqb * H);
    int64_t r0 = qb * j->bq, rows = Nq - r0 < j->bq ? Nq - r0 : j->bq;
    int64_t ld = j->ld, bk = j->bk, w = s_lane_w[j->lvl], lanes = (rows + w - 1) / w * w;
    float *Qt = lf__cpu_scratch(j->cpu, thread, s_attn32_scratch(j));
    if (!Qt) {
        j->failed = 1;
        return;
    }
    float *St = Qt + D * ld, *Ot = St + bk * ld, *m = Ot + Dv * ld, *l = m + ld, *corr = l + ld;
    float scale = n->p.attention.scale;
    for (int64_t r = 0; r < lanes; r++) {
        const float *x = r < rows ? s_row(q, r0 + r, h, b) : NULL;
        for (int64_t i = 0; i < D; i++) Qt[i * ld + r] = x ? x[i] * scale : 0.0f;
        m[r] = -INFINITY, l[r] = 0;
    }
    memset(Ot, 0, (size_t)(Dv * ld) * 4);
    /* Row strides of K and V in floats (a single row's stride is unused). */
    const float *K0 = s_row(k, 0, h, b), *V0 = s_row(v, 0, h, b);
    int64_t ldk = Nk == 1 ? D : (int64_t)k->nb[1] / 4, ldv = Nk == 1 ? Dv : (int64_t)v->nb[1] / 4;
    const lf__cpu_simd_t *simd = &j->cpu->simd;
    for (int64_t c0 = 0; c0 < Nk; c0 += bk) {
        int64_t cols = Nk - c0 < bk ? Nk - c0 : bk;
        s_f32_gemm(j->lvl, cols, lanes, D, K0 + c0 * ldk, ldk, 1, Qt, ld, St, ld, NULL);
        if (mask)
            for (int64_t r = 0; r < rows; r++) {
                const char *mr = (const char *)mask->data + (r0 + r) * (int64_t)mask->nb[1] +
                                 (mask->ne[2] > 1 ? h * (int64_t)mask->nb[2] : 0);
                const float *mk = (const float *)mr + c0;
                for (int64_t c = 0; c < cols; c++) St[c * ld + r] += mk[c];
            }
        simd->softmax_lanes(St, cols, ld, lanes, m, l, corr);
        s_f32_gemm(j->lvl, Dv, lanes, cols, V0 + c0 * ldv, 1, ldv, St, ld, Ot, ld, corr);
    }
    for (int64_t r = 0; r < rows; r++) {
        float *dst = (float *)((char *)d->data + (r0 + r) * (int64_t)d->nb[1] + h * (int64_t)d->nb[2] +
                               b * (int64_t)d->nb[3]);
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        for (int64_t i = 0; i < Dv; i++) dst[i] = Ot[i * ld + r] * inv;
    }
}

static int s_attention_f32(lf__cpu_ctx_t *c, const lf_node_t *n) {
    const lf_tensor_t *q = n->src[0];
    s_attn32_job_t j = {.node = n, .cpu = c};
    j.lvl = !strcmp(c->simd.name, "avx512") ? S_LVL_AVX512 : !strcmp(c->simd.name, "avx2") ? S_LVL_AVX2 : S_LVL_SCALAR;
    j.bq = s_env("LF_ATTN_BQ", 64);
    j.bk = s_env("LF_ATTN_BK", 256);
    if (j.bq > q->ne[1]) j.bq = q->ne[1];
    if (j.bk > n->src[1]->ne[1]) j.bk = n->src[1]->ne[1];
    j.nqb = (q->ne[1] + j.bq - 1) / j.bq;
    j.ld = (j.bq + s_lane_w[j.lvl] - 1) / s_lane_w[j.lvl] * s_lane_w[j.lvl];
    for (int t = 0; t < c->n_threads; t++)
        if (!lf__cpu_scratch(c, t, s_attn32_scratch(&j))) return LF_ENOMEM;
    lf__cpu_pool_run(c->pool, j.nqb * q->ne[2] * q->ne[3], s_attn32_task, &j);
    return j.failed ? LF_ENOMEM : 0;
}

int lf__cpu_op_ATTENTION(lf_backend_t *be, const lf_node_t *n) {
    lf__cpu_ctx_t *c = be->ctx;
    if (c->compute == LF_TYPE_BF16 && c->attn_bf16) return s_attention_bf16(c, n);
    if (!c->attn_sgemm) return s_attention_f32(c, n);
    const lf_tensor_t *q = n->src[0], *v = n->src[2];
    s_attn_job_t j = {.node = n, .cpu = c};
    j.bq = s_env("LF_ATTN_BQ", 128);
    j.bk = s_env("LF_ATTN_BK", 512);
    if (j.bq > q->ne[1]) j.bq = q->ne[1];
    if (j.bk > n->src[1]->ne[1]) j.bk = n->src[1]->ne[1];
    j.nqb = (q->ne[1] + j.bq - 1) / j.bq;
    for (int t = 0; t < c->n_threads; t++)
        if (!lf__cpu_scratch(c, t, (size_t)(j.bq * (j.bk + v->ne[0] + 2)))) return LF_ENOMEM;
    /* Parallelism comes from the pool; each task's sgemm stays on its thread. */
    lf__cpu_blas_threads(c, 1);
    lf__cpu_pool_run(c->pool, j.nqb * q->ne[2] * q->ne[3], s_attn_task, &j);
    lf__cpu_blas_threads(c, c->n_threads);
    return j.failed ? LF_ENOMEM : 0;
}
