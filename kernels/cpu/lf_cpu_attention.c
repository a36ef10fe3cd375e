/* lf_cpu_attention: fused, memory-efficient attention on the CPU.
 *
 * Flash-attention order: for a block of BQ query rows, walk the keys in tiles
 * of BK; S = Q K^T for the tile (sgemm), an online softmax keeps each row's
 * running max and sum and rescales the partial output, then O += P V (sgemm).
 * The N x N score matrix never exists: scratch is BQ*(BK+Dv) floats per
 * thread whatever N is. Tasks are (batch, head, query block) spread over the
 * thread pool, each running single-threaded sgemm. */
#include <cblas.h>
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

int lf__cpu_op_ATTENTION(lf_backend_t *be, const lf_node_t *n) {
    lf__cpu_ctx_t *c = be->ctx;
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
