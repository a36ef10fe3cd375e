/* lf_cpu_ops: the CPU forms of the row-wise ops (activations, arithmetic,
 * norms, softmax, layout, embeddings).
 *
 * Every op here walks the destination row by row (a row is dimension 0) and
 * spreads rows over the thread pool. Rows of any storage type or stride are
 * brought into f32 scratch, computed in f32 (statistics in double) and
 * written back; f32 rows-contiguous tensors are used in place. */
#include <math.h>
#include <string.h>

#include "lf_cpu_impl.h"
#include "lf_error.h"

/* ---- element and row access ---- */

static inline char *s_at(const lf_tensor_t *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return (char *)t->data + i0 * (int64_t)t->nb[0] + i1 * (int64_t)t->nb[1] +
           i2 * (int64_t)t->nb[2] + i3 * (int64_t)t->nb[3];
}

static inline float s_ld(lf_type_t type, const char *p) {
    uint16_t h;
    switch (type) {
    case LF_TYPE_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case LF_TYPE_F16: memcpy(&h, p, 2); return lf_f16_to_f32(h);
    default: memcpy(&h, p, 2); return lf_bf16_to_f32(h);
    }
}

static inline void s_st(lf_type_t type, char *p, float v) {
    uint16_t h;
    switch (type) {
    case LF_TYPE_F32: memcpy(p, &v, 4); return;
    case LF_TYPE_F16: h = lf_f32_to_f16(v); break;
    default: h = lf_f32_to_bf16(v); break;
    }
    memcpy(p, &h, 2);
}

/* Row (i1,i2,i3) of t as f32: in place when possible, else converted into tmp. */
static const float *s_load(const lf_tensor_t *t, int64_t i1, int64_t i2, int64_t i3, float *tmp) {
    const char *p = s_at(t, 0, i1, i2, i3);
    size_t es = lf_type_size(t->type);
    if (t->nb[0] == es || t->ne[0] == 1) {
        if (t->type == LF_TYPE_F32) return (const float *)p;
        lf_type_to_f32(t->type, p, tmp, t->ne[0]);
        return tmp;
    }
    for (int64_t i = 0; i < t->ne[0]; i++) tmp[i] = s_ld(t->type, p + i * (int64_t)t->nb[0]);
    return tmp;
}

/* Where to compute row (i1,i2,i3) of t: in place when possible, else tmp. */
static float *s_out(lf_tensor_t *t, int64_t i1, int64_t i2, int64_t i3, float *tmp) {
    if (t->type == LF_TYPE_F32 && (t->nb[0] == 4 || t->ne[0] == 1)) return (float *)s_at(t, 0, i1, i2, i3);
    return tmp;
}

static void s_store(lf_tensor_t *t, int64_t i1, int64_t i2, int64_t i3, const float *row) {
    char *p = s_at(t, 0, i1, i2, i3);
    if ((const char *)row == p) return;
    size_t es = lf_type_size(t->type);
    if (t->nb[0] == es || t->ne[0] == 1) {
        lf_type_from_f32(t->type, row, p, t->ne[0]);
        return;
    }
    for (int64_t i = 0; i < t->ne[0]; i++) s_st(t->type, p + i * (int64_t)t->nb[0], row[i]);
}

/* A norm's result row stored: a bf16 row (the bf16-activation pass, read
 * only by products that would have converted it themselves) with
 * simd->to_bf16, whose bytes are those of that conversion; else s_store. */
static void s_store_norm(const lf__cpu_simd_t *simd, lf_tensor_t *t, int64_t i1, int64_t i2, int64_t i3,
                         const float *row) {
    if (t->type == LF_TYPE_BF16 && (t->nb[0] == 2 || t->ne[0] == 1))
        simd->to_bf16((uint16_t *)(void *)s_at(t, 0, i1, i2, i3), row, t->ne[0]);
    else s_store(t, i1, i2, i3, row);
}

/* ---- row driver ---- */

typedef void (*s_row_fn)(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1,
                         int64_t i2, int64_t i3);

typedef struct {
    const lf_node_t *node;
    lf__cpu_ctx_t *cpu;
    s_row_fn fn;
    int64_t rows, per_task, tmp_floats;
    lf_tensor_t dst; /* rows are counted over this shape */
    int failed;
} s_rows_job_t;

static void s_rows_task(void *arg, int64_t task, int thread) {
    s_rows_job_t *j = arg;
    float *tmp = lf__cpu_scratch(j->cpu, thread, (size_t)j->tmp_floats);
    if (!tmp) {
        j->failed = 1;
        return;
    }
    int64_t ne1 = j->dst.ne[1], ne2 = j->dst.ne[2];
    int64_t end = (task + 1) * j->per_task;
    if (end > j->rows) end = j->rows;
    for (int64_t r = task * j->per_task; r < end; r++)
        j->fn(j->node, &j->cpu->simd, tmp, r % ne1, (r / ne1) % ne2, r / (ne1 * ne2));
}

/* Runs fn on every row of shape (ne1, ne2, ne3), each with tmp_floats of scratch. */
static int s_rows(lf_backend_t *be, const lf_node_t *n, const lf_tensor_t *shape, s_row_fn fn,
                  int64_t tmp_floats) {
    lf__cpu_ctx_t *c = be->ctx;
    s_rows_job_t j = {.node = n, .cpu = c, .fn = fn, .dst = *shape, .tmp_floats = tmp_floats};
    j.rows = shape->ne[1] * shape->ne[2] * shape->ne[3];
    int64_t tasks = (int64_t)c->n_threads * 4;
    if (tasks > j.rows) tasks = j.rows;
    /* Small ops run on the calling thread: waking workers costs more. */
    if (j.rows * shape->ne[0] < 16384) tasks = 1;
    j.per_task = (j.rows + tasks - 1) / tasks;
    tasks = (j.rows + j.per_task - 1) / j.per_task;
    /* Grow every thread's scratch before the parallel section. */
    for (int t = 0; t < c->n_threads; t++)
        if (!lf__cpu_scratch(c, t, (size_t)tmp_floats)) return LF_ENOMEM;
    lf__cpu_pool_run(c->pool, tasks, s_rows_task, &j);
    return j.failed ? LF_ENOMEM : 0;
}

static int64_t s_maxne0(const lf_node_t *n) {
    int64_t m = n->dst->ne[0];
    for (int i = 0; i < LF_MAX_SRC; i++)
        if (n->src[i] && n->src[i]->ne[0] > m) m = n->src[i]->ne[0];
    return m;
}

/* ---- unary activations ---- */

static float s_gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}

static float s_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

static void s_unary_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    const lf_tensor_t *x = n->src[0];
    int64_t ne0 = x->ne[0];
    const float *in = s_load(x, i1, i2, i3, tmp);
    float *out = s_out(n->dst, i1, i2, i3, tmp + ne0);
    switch (n->op) {
    case LF_OP_GELU:
        if (n->p.gelu.approx)
            for (int64_t i = 0; i < ne0; i++) out[i] = s_gelu_tanh(in[i]);
        else
            simd->gelu(out, in, NULL, ne0);
        break;
    case LF_OP_SILU: simd->silu(out, in, ne0); break;
    case LF_OP_QUICK_GELU:
        for (int64_t i = 0; i < ne0; i++) out[i] = in[i] * s_sigmoid(1.702f * in[i]);
        break;
    case LF_OP_SCALE: {
        float s = n->p.scale.s, b = n->p.scale.b;
        for (int64_t i = 0; i < ne0; i++) out[i] = in[i] * s + b;
        break;
    }
    case LF_OP_CLAMP: {
        float lo = n->p.clamp.lo, hi = n->p.clamp.hi;
        for (int64_t i = 0; i < ne0; i++) out[i] = in[i] < lo ? lo : in[i] > hi ? hi : in[i];
        break;
    }
    default: LF_ASSERT(!"not a unary op");
    }
    s_store(n->dst, i1, i2, i3, out);
}

static int s_unary(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_unary_row, 2 * s_maxne0(n));
}

int lf__cpu_op_GELU(lf_backend_t *be, const lf_node_t *n) { return s_unary(be, n); }
int lf__cpu_op_SILU(lf_backend_t *be, const lf_node_t *n) { return s_unary(be, n); }
int lf__cpu_op_QUICK_GELU(lf_backend_t *be, const lf_node_t *n) { return s_unary(be, n); }
int lf__cpu_op_SCALE(lf_backend_t *be, const lf_node_t *n) { return s_unary(be, n); }
int lf__cpu_op_CLAMP(lf_backend_t *be, const lf_node_t *n) { return s_unary(be, n); }

static void s_geglu_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    int64_t f = n->dst->ne[0];
    const float *in = s_load(n->src[0], i1, i2, i3, tmp);
    float *out = s_out(n->dst, i1, i2, i3, tmp + 2 * f);
    simd->gelu(out, in + f, in, f);
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_GEGLU(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_geglu_row, 3 * n->dst->ne[0]);
}

/* ---- binary with broadcasting ---- */

static void s_binary_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    const lf_tensor_t *a = n->src[0], *b = n->src[1];
    int64_t ne0 = a->ne[0];
    const float *ra = s_load(a, i1, i2, i3, tmp);
    const float *rb = s_load(b, b->ne[1] == 1 ? 0 : i1, b->ne[2] == 1 ? 0 : i2,
                             b->ne[3] == 1 ? 0 : i3, tmp + ne0);
    float *out = s_out(n->dst, i1, i2, i3, tmp + 2 * ne0);
    bool bc = b->ne[0] == 1 && ne0 != 1;
    if (n->op == LF_OP_ADD) {
        if (bc)
            for (int64_t i = 0; i < ne0; i++) out[i] = ra[i] + rb[0];
        else
            for (int64_t i = 0; i < ne0; i++) out[i] = ra[i] + rb[i];
    } else {
        if (bc)
            for (int64_t i = 0; i < ne0; i++) out[i] = ra[i] * rb[0];
        else
            for (int64_t i = 0; i < ne0; i++) out[i] = ra[i] * rb[i];
    }
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_ADD(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_binary_row, 3 * s_maxne0(n));
}

int lf__cpu_op_MUL(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_binary_row, 3 * s_maxne0(n));
}

/* ---- softmax and row norms ---- */

static void s_softmax_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    int64_t ne0 = n->dst->ne[0];
    const float *in = s_load(n->src[0], i1, i2, i3, tmp);
    float *out = s_out(n->dst, i1, i2, i3, tmp + ne0);
    float s = n->p.softmax.scale;
    for (int64_t i = 0; i < ne0; i++) out[i] = in[i] * s;
    float m = simd->max(out, ne0);
    float inv = 1.0f / simd->exp_sum(out, ne0, m);
    for (int64_t i = 0; i < ne0; i++) out[i] *= inv;
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_SOFTMAX(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_softmax_row, 2 * s_maxne0(n));
}

/* Sums of (x - shift) and their squares over x[0..n), f32 vector partials
 * over chunks of 4096 added in double (each lane then adds at most 256
 * terms in f32). */
static void s_stats(const lf__cpu_simd_t *simd, const float *x, int64_t n, float shift, double *sum, double *sq) {
    for (int64_t i = 0; i < n; i += 4096) {
        float s1, s2;
        simd->sum_sq(x + i, n - i < 4096 ? n - i : 4096, shift, &s1, &s2);
        *sum += s1, *sq += s2;
    }
}

/* Layer norm: the mean from sums shifted by x[0], then the variance from
 * sums shifted by that mean (the row is in L1; two vector passes, no
 * cancellation), then one output pass with the affine. RMS norm: the sum
 * of squares unshifted. */
static void s_norm_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    int64_t ne0 = n->dst->ne[0];
    const float *in = s_load(n->src[0], i1, i2, i3, tmp);
    float *out = s_out(n->dst, i1, i2, i3, tmp + ne0);
    const float *g = n->src[1] ? s_load(n->src[1], 0, 0, 0, tmp + 2 * ne0) : NULL;
    const float *b = n->src[2] ? s_load(n->src[2], 0, 0, 0, tmp + 3 * ne0) : NULL;
    double mean = 0, var, s1 = 0, s2 = 0;
    if (n->op == LF_OP_LAYER_NORM) {
        s_stats(simd, in, ne0, in[0], &s1, &s2);
        mean = in[0] + s1 / (double)ne0;
        s1 = s2 = 0;
        s_stats(simd, in, ne0, (float)mean, &s1, &s2);
        double d = s1 / (double)ne0; /* (double)mean - (float)mean, about */
        var = s2 / (double)ne0 - d * d;
        mean = (double)(float)mean + d;
    } else {
        s_stats(simd, in, ne0, 0.0f, &s1, &s2);
        var = s2 / (double)ne0;
    }
    if (var < 0) var = 0;
    double inv = 1.0 / sqrt(var + n->p.norm.eps);
    float m = (float)mean;
    if (simd->norm_bf16 && n->dst->type == LF_TYPE_BF16 && (n->dst->nb[0] == 2 || ne0 == 1)) {
        simd->norm_bf16((uint16_t *)(void *)s_at(n->dst, 0, i1, i2, i3), in, ne0, m, (float)inv,
                        (float)(((double)m - mean) * inv), g, b);
        return;
    }
    simd->norm(out, in, ne0, m, (float)inv, (float)(((double)m - mean) * inv), g, b);
    s_store_norm(simd, n->dst, i1, i2, i3, out);
}

/* The node with its per-element weight and bias (src[1], src[2]) as f32
 * vectors (converted once into the backend's workspace, not once per row). */
static int s_norm_f32_params(lf__cpu_ctx_t *c, const lf_node_t *n, lf_node_t *f, lf_tensor_t p[2]) {
    *f = *n;
    size_t need = 0;
    for (int i = 0; i < 2; i++) {
        const lf_tensor_t *t = n->src[1 + i];
        if (t && (t->type != LF_TYPE_F32 || t->nb[0] != 4)) need += (size_t)t->ne[0] * 4 + 64;
    }
    if (!need) return 0;
    char *w = lf__cpu_work(c, need);
    if (!w) return LF_ENOMEM;
    for (int i = 0; i < 2; i++) {
        const lf_tensor_t *t = n->src[1 + i];
        if (!t || (t->type == LF_TYPE_F32 && t->nb[0] == 4)) continue;
        float *d = (float *)w;
        for (int64_t k = 0; k < t->ne[0]; k++) d[k] = s_ld(t->type, s_at(t, k, 0, 0, 0));
        p[i] = lf_tensor_4d(LF_TYPE_F32, t->ne[0], 1, 1, 1, d);
        f->src[1 + i] = &p[i];
        w += ((size_t)t->ne[0] * 4 + 63) & ~(size_t)63;
    }
    return 0;
}

static int s_norm(lf_backend_t *be, const lf_node_t *n) {
    lf_node_t f;
    lf_tensor_t p[2];
    int rc = s_norm_f32_params(be->ctx, n, &f, p);
    return rc ? rc : s_rows(be, &f, f.dst, s_norm_row, 4 * s_maxne0(n));
}

int lf__cpu_op_LAYER_NORM(lf_backend_t *be, const lf_node_t *n) { return s_norm(be, n); }

int lf__cpu_op_RMS_NORM(lf_backend_t *be, const lf_node_t *n) { return s_norm(be, n); }

/* ---- group norm ----
 * Statistics with sums shifted by the group's first element (f32 vector
 * partials over chunks of at most 4096, added in double), and a second
 * statistics pass shifted by the mean where the first lost precision to
 * cancellation (|mean - shift| large against the deviation); then one
 * affine(+SiLU) pass. A group that fits in L2 is one task (its second
 * read comes from cache), and so is any group where there are at least two
 * per thread; larger groups with fewer (the VAE's at batch 1 on many
 * threads) are cut into fixed chunks of whole rows: partial sums per chunk, added in
 * chunk order (the result does not depend on the thread count), then the
 * output pass chunk by chunk. */

#define LF__GN_CHUNK ((int64_t)1 << 16) /* elements per task of a large group */
#define LF__GN_SMALL ((int64_t)1 << 17) /* largest group done as one task */
#define LF__GN_PIECE ((int64_t)4096)    /* f32 elements per piece of a bf16 output row */

typedef struct {
    const lf_node_t *node;
    lf__cpu_ctx_t *cpu;
    int64_t len, nrows;  /* elements per row (or plane), rows per channel */
    int64_t cg, groups;  /* channels per group, groups */
    int64_t per_chunk;   /* rows (over the group's channels) per chunk; 0: one task per group */
    int64_t chunks;      /* per group */
    double *part;        /* [group task][chunk][2]: shifted sums */
    float *shift, *inv; /* per group task */
    double *mean;
    int failed;
} s_gn_job_t;

/* Rows of ne0 elements, or whole channel planes when x (f32) and dst (f32,
 * or bf16: written in pieces) hold them contiguously: one vector pass over
 * 4096 elements instead of 64. */
static bool s_gn_planes(const lf_tensor_t *x, const lf_tensor_t *d) {
    const size_t es = d->type == LF_TYPE_BF16 ? 2 : 4;
    return x->type == LF_TYPE_F32 && (d->type == LF_TYPE_F32 || d->type == LF_TYPE_BF16) && x->nb[0] == 4 &&
           d->nb[0] == es && x->nb[1] == (size_t)x->ne[0] * 4 && d->nb[1] == (size_t)d->ne[0] * es;
}

/* Scratch floats per thread: a row in, a row out, and a piece of a bf16 output. */
static size_t s_gn_tmp(const lf_tensor_t *x) {
    return (size_t)(2 * x->ne[0] + LF__GN_PIECE);
}

/* Shifted sums over rows [r0, r1) of group task gt (rows numbered over the
 * group's channels: r = (c - c0) * nrows + i1). */
static void s_gn_sums(const s_gn_job_t *j, int64_t gt, int64_t r0, int64_t r1, float shift, float *tmp,
                      double *sum, double *sq) {
    const lf_tensor_t *x = j->node->src[0];
    int64_t c0 = (gt % j->groups) * j->cg, i3 = gt / j->groups;
    for (int64_t r = r0; r < r1; r++)
        s_stats(&j->cpu->simd, s_load(x, r % j->nrows, c0 + r / j->nrows, i3, tmp), j->len, shift, sum, sq);
}

static float s_gn_first(const s_gn_job_t *j, int64_t gt) {
    const lf_tensor_t *x = j->node->src[0];
    return s_ld(x->type, s_at(x, 0, 0, (gt % j->groups) * j->cg, gt / j->groups));
}

/* Mean and 1/sqrt(var + eps) from sums shifted by shift; false when the
 * sums lost too much to cancellation (more than ~6 bits of sq: then they
 * are taken again around the mean). */
static bool s_gn_finish(const s_gn_job_t *j, double sum, double sq, float shift, double *mean, float *inv) {
    double cnt = (double)(j->cg * j->nrows * j->len), d = sum / cnt, var = sq / cnt - d * d;
    *mean = (double)shift + d;
    bool precise = d * d <= 64.0 * var;
    if (var < 0) var = 0;
    *inv = (float)(1.0 / sqrt(var + j->node->p.group_norm.eps));
    return precise;
}

/* Affine(+SiLU) of rows [r0, r1) of group task gt. */
static void s_gn_out(const s_gn_job_t *j, int64_t gt, int64_t r0, int64_t r1, double mean, float inv, float *tmp) {
    const lf_node_t *n = j->node;
    const lf_tensor_t *x = n->src[0];
    int64_t c0 = (gt % j->groups) * j->cg, i3 = gt / j->groups;
    float m = (float)mean;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = c0 + r / j->nrows, i1 = r % j->nrows;
        float ga = n->src[1] ? s_ld(n->src[1]->type, s_at(n->src[1], c, 0, 0, 0)) : 1.0f;
        float be = n->src[2] ? s_ld(n->src[2]->type, s_at(n->src[2], c, 0, 0, 0)) : 0.0f;
        const float *in = s_load(x, i1, c, i3, tmp);
        const float a = inv * ga, b = be + (float)(((double)m - mean) * inv * ga);
        if (n->dst->type == LF_TYPE_BF16 && n->dst->nb[0] == 2) {
            /* Pieces of the row (or plane) through f32 scratch: the affine
             * is elementwise, so the f32 values are those of one pass. */
            uint16_t *o16 = (uint16_t *)(void *)s_at(n->dst, 0, i1, c, i3);
            if (j->cpu->simd.affine_bf16) { /* in one pass */
                j->cpu->simd.affine_bf16(o16, in, j->len, m, a, b, n->p.group_norm.act != 0);
                continue;
            }
            float *piece = tmp + 2 * x->ne[0];
            for (int64_t k = 0; k < j->len; k += LF__GN_PIECE) {
                const int64_t cnt = j->len - k < LF__GN_PIECE ? j->len - k : LF__GN_PIECE;
                j->cpu->simd.affine(piece, in + k, cnt, m, a, b, n->p.group_norm.act != 0);
                j->cpu->simd.to_bf16(o16 + k, piece, cnt);
            }
            continue;
        }
        float *o = s_out(n->dst, i1, c, i3, tmp + x->ne[0]);
        j->cpu->simd.affine(o, in, j->len, m, a, b, n->p.group_norm.act != 0);
        s_store(n->dst, i1, c, i3, o);
    }
}

/* One whole group per task. */
static void s_gn_task(void *arg, int64_t gt, int thread) {
    s_gn_job_t *j = arg;
    float *tmp = lf__cpu_scratch(j->cpu, thread, s_gn_tmp(j->node->src[0]));
    if (!tmp) {
        j->failed = 1;
        return;
    }
    int64_t rows = j->cg * j->nrows;
    float shift = s_gn_first(j, gt), inv;
    double mean;
    double sum = 0, sq = 0;
    s_gn_sums(j, gt, 0, rows, shift, tmp, &sum, &sq);
    if (!s_gn_finish(j, sum, sq, shift, &mean, &inv)) {
        shift = (float)mean, sum = sq = 0;
        s_gn_sums(j, gt, 0, rows, shift, tmp, &sum, &sq);
        (void)s_gn_finish(j, sum, sq, shift, &mean, &inv); /* as good as f32 data allows */
    }
    s_gn_out(j, gt, 0, rows, mean, inv, tmp);
}

/* Large groups, three phases over (group task, chunk) tasks. Task t's
 * group task *gt and rows [*r0, *r1), and the thread's scratch row; NULL
 * (j->failed set) when that is out of memory. */
static float *s_gn_chunk(s_gn_job_t *j, int64_t t, int thread, int64_t *gt, int64_t *r0, int64_t *r1) {
    float *tmp = lf__cpu_scratch(j->cpu, thread, s_gn_tmp(j->node->src[0]));
    if (!tmp) {
        j->failed = 1;
        return NULL;
    }
    const int64_t rows = j->cg * j->nrows;
    *gt = t / j->chunks, *r0 = t % j->chunks * j->per_chunk;
    *r1 = *r0 + j->per_chunk < rows ? *r0 + j->per_chunk : rows;
    return tmp;
}

static void s_gn_chunk_sums(void *arg, int64_t t, int thread) {
    s_gn_job_t *j = arg;
    int64_t gt, r0, r1;
    float *tmp = s_gn_chunk(j, t, thread, &gt, &r0, &r1);
    if (!tmp) return;
    double *p = j->part + 2 * t;
    p[0] = p[1] = 0;
    s_gn_sums(j, gt, r0, r1, j->shift[gt], tmp, &p[0], &p[1]);
}

static void s_gn_chunk_out(void *arg, int64_t t, int thread) {
    s_gn_job_t *j = arg;
    int64_t gt, r0, r1;
    float *tmp = s_gn_chunk(j, t, thread, &gt, &r0, &r1);
    if (tmp) s_gn_out(j, gt, r0, r1, j->mean[gt], j->inv[gt], tmp);
}

/* Adds the chunks' sums of every group task in chunk order; true when all
 * were precise enough (or final), else the shift of those that were not
 * becomes their mean for another round (the others' sums come out the same). */
static bool s_gn_reduce(s_gn_job_t *j, int64_t tasks, bool final) {
    bool ok = true;
    for (int64_t gt = 0; gt < tasks; gt++) {
        double sum = 0, sq = 0;
        for (int64_t ch = 0; ch < j->chunks; ch++)
            sum += j->part[2 * (gt * j->chunks + ch)], sq += j->part[2 * (gt * j->chunks + ch) + 1];
        if (s_gn_finish(j, sum, sq, j->shift[gt], &j->mean[gt], &j->inv[gt]) || final) continue;
        ok = false, j->shift[gt] = (float)j->mean[gt];
    }
    return ok;
}

int lf__cpu_op_GROUP_NORM(lf_backend_t *be, const lf_node_t *n) {
    lf__cpu_ctx_t *c = be->ctx;
    const lf_tensor_t *x = n->src[0];
    bool planes = s_gn_planes(x, n->dst);
    s_gn_job_t j = {.node = n, .cpu = c, .groups = n->p.group_norm.groups};
    j.len = planes ? x->ne[0] * x->ne[1] : x->ne[0], j.nrows = planes ? 1 : x->ne[1];
    j.cg = x->ne[2] / j.groups;
    int64_t tasks = j.groups * x->ne[3], rows = j.cg * j.nrows;
    for (int t = 0; t < c->n_threads; t++)
        if (!lf__cpu_scratch(c, t, s_gn_tmp(x))) return LF_ENOMEM;
    /* Chunks only where whole groups would leave threads idle. */
    if (rows * j.len <= LF__GN_SMALL || rows == 1 || tasks >= 2 * (int64_t)c->n_threads) {
        lf__cpu_pool_run(c->pool, tasks, s_gn_task, &j);
        return j.failed ? LF_ENOMEM : 0;
    }
    j.per_chunk = (LF__GN_CHUNK + j.len - 1) / j.len;
    j.chunks = (rows + j.per_chunk - 1) / j.per_chunk;
    size_t bytes = (size_t)(tasks * j.chunks + tasks) * 2 * sizeof(double) + (size_t)tasks * 2 * sizeof(float) + 64;
    char *w = lf__cpu_work(c, bytes);
    if (!w) return LF_ENOMEM;
    j.part = (double *)(void *)w, j.mean = j.part + 2 * tasks * j.chunks;
    j.shift = (float *)(void *)(j.mean + tasks), j.inv = j.shift + tasks;
    for (int64_t gt = 0; gt < tasks; gt++) j.shift[gt] = s_gn_first(&j, gt);
    for (int round = 0; round < 2; round++) {
        lf__cpu_pool_run(c->pool, tasks * j.chunks, s_gn_chunk_sums, &j);
        if (j.failed) return LF_ENOMEM;
        if (s_gn_reduce(&j, tasks, round == 1)) break;
    }
    lf__cpu_pool_run(c->pool, tasks * j.chunks, s_gn_chunk_out, &j);
    return j.failed ? LF_ENOMEM : 0;
}

/* ---- layout ---- */

static void s_concat_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    const lf_tensor_t *a = n->src[0], *b = n->src[1];
    int d = n->p.concat.dim;
    float *out = s_out(n->dst, i1, i2, i3, tmp);
    if (d == 0) {
        const float *ra = s_load(a, i1, i2, i3, tmp + n->dst->ne[0]);
        memcpy(out, ra, (size_t)a->ne[0] * 4);
        const float *rb = s_load(b, i1, i2, i3, tmp + n->dst->ne[0]);
        memcpy(out + a->ne[0], rb, (size_t)b->ne[0] * 4);
    } else {
        int64_t idx[4] = {0, i1, i2, i3};
        const lf_tensor_t *src = a;
        if (idx[d] >= a->ne[d]) idx[d] -= a->ne[d], src = b;
        const float *r = s_load(src, idx[1], idx[2], idx[3], tmp + n->dst->ne[0]);
        memcpy(out, r, (size_t)n->dst->ne[0] * 4);
    }
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_CONCAT(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_concat_row, 2 * s_maxne0(n));
}

/* Same-shape strided copy with conversion, row by row. */
static void s_copy_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    const lf_tensor_t *x = n->src[0];
    lf_tensor_t v = *x;
    if (n->op == LF_OP_SPLIT) {
        v = lf_tensor_slice(x, n->p.split.dim, n->p.split.offset, n->dst->ne[n->p.split.dim]);
    } else if (n->op == LF_OP_PERMUTE) {
        v = lf_tensor_permute(x, n->p.permute.axes);
    }
    if (v.type == n->dst->type && v.nb[0] == lf_type_size(v.type) &&
        n->dst->nb[0] == lf_type_size(v.type)) {
        memcpy(s_at(n->dst, 0, i1, i2, i3), s_at(&v, 0, i1, i2, i3), lf_type_row_bytes(v.type, v.ne[0]));
        return;
    }
    const float *r = s_load(&v, i1, i2, i3, tmp);
    s_store(n->dst, i1, i2, i3, r);
}

int lf__cpu_op_SPLIT(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_copy_row, s_maxne0(n));
}

/* A permutation whose view reads dst's rows down a column of the source
 * (v.nb[1] is one element: the transformers' tokens <-> channel planes) as
 * a transpose (simd->transpose: 16 x 16 tiles in registers), each task a
 * block of destination rows, instead of one strided gather per row. */
#define LF__TR_TILE 64

typedef struct {
    lf_tensor_t v; /* the permuted view of the source */
    lf_tensor_t *dst;
    const lf__cpu_simd_t *simd;
    int64_t blocks; /* row blocks of LF__TR_TILE per (i2, i3) */
} s_tr_job_t;

static void s_tr_task(void *arg, int64_t t, int thread) {
    (void)thread;
    const s_tr_job_t *j = arg;
    const lf_tensor_t *v = &j->v, *d = j->dst;
    int64_t b = t % j->blocks, i23 = t / j->blocks, i2 = i23 % d->ne[2], i3 = i23 / d->ne[2];
    int64_t r0 = b * LF__TR_TILE, r1 = r0 + LF__TR_TILE < d->ne[1] ? r0 + LF__TR_TILE : d->ne[1];
    int64_t lds = (int64_t)(v->nb[0] / 4), ldd = (int64_t)(d->nb[1] / 4);
    const float *src = (const float *)(const void *)s_at(v, 0, r0, i2, i3);
    float *dd = (float *)(void *)s_at(d, 0, r0, i2, i3);
    j->simd->transpose(dd, ldd, src, lds, r1 - r0, d->ne[0]);
}

int lf__cpu_op_PERMUTE(lf_backend_t *be, const lf_node_t *n) {
    s_tr_job_t j = {.v = lf_tensor_permute(n->src[0], n->p.permute.axes), .dst = n->dst};
    const lf_tensor_t *v = &j.v, *d = n->dst;
    if (v->type == LF_TYPE_F32 && d->type == LF_TYPE_F32 && v->nb[1] == 4 && d->nb[0] == 4 && v->nb[0] % 4 == 0 &&
        d->nb[1] % 4 == 0 && d->ne[1] > 1 && d->ne[0] * d->ne[1] >= 4096) {
        lf__cpu_ctx_t *c = be->ctx;
        j.simd = &c->simd;
        j.blocks = (d->ne[1] + LF__TR_TILE - 1) / LF__TR_TILE;
        lf__cpu_pool_run(c->pool, j.blocks * d->ne[2] * d->ne[3], s_tr_task, &j);
        return 0;
    }
    return s_rows(be, n, n->dst, s_copy_row, s_maxne0(n));
}

/* Reshaping copy: element k of dst (row-major over its shape) takes element k
 * of src (row-major over its own shape). */
static void s_reshape_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    (void)tmp;
    const lf_tensor_t *x = n->src[0];
    lf_tensor_t *d = n->dst;
    int64_t k = ((i3 * d->ne[2] + i2) * d->ne[1] + i1) * d->ne[0];
    for (int64_t i0 = 0; i0 < d->ne[0]; i0++, k++) {
        int64_t r = k, j0 = r % x->ne[0];
        r /= x->ne[0];
        int64_t j1 = r % x->ne[1];
        r /= x->ne[1];
        int64_t j2 = r % x->ne[2], j3 = r / x->ne[2];
        s_st(d->type, s_at(d, i0, i1, i2, i3), s_ld(x->type, s_at(x, j0, j1, j2, j3)));
    }
}

int lf__cpu_op_CPY(lf_backend_t *be, const lf_node_t *n) {
    if (lf_tensor_same_shape(n->src[0], n->dst))
        return s_rows(be, n, n->dst, s_copy_row, s_maxne0(n));
    return s_rows(be, n, n->dst, s_reshape_row, 1);
}

static void s_up_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    const float *in = s_load(n->src[0], i1 / 2, i2, i3, tmp);
    int64_t ne0 = n->dst->ne[0];
    float *out = s_out(n->dst, i1, i2, i3, tmp + ne0);
    for (int64_t i = 0; i < ne0; i++) out[i] = in[i / 2];
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_UPSAMPLE2X(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_up_row, 2 * s_maxne0(n));
}

static void s_pool_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    const lf_tensor_t *x = n->src[0];
    int k = n->p.pool.k, s = n->p.pool.s;
    int64_t wo = n->dst->ne[0];
    float *out = s_out(n->dst, i1, i2, i3, tmp);
    float *acc = tmp + wo;
    for (int64_t i = 0; i < wo; i++) acc[i] = 0;
    for (int ky = 0; ky < k; ky++) {
        const float *r = s_load(x, i1 * s + ky, i2, i3, tmp + 2 * wo);
        for (int64_t o = 0; o < wo; o++)
            for (int kx = 0; kx < k; kx++) acc[o] += r[o * s + kx];
    }
    float inv = 1.0f / (float)(k * k);
    for (int64_t o = 0; o < wo; o++) out[o] = acc[o] * inv;
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_AVG_POOL2D(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_pool_row, 2 * n->dst->ne[0] + n->src[0]->ne[0]);
}

/* ---- embeddings ---- */

static void s_tstep_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    const lf_tensor_t *t = n->src[0];
    int64_t k = i1, ne0 = t->ne[0], ne1 = t->ne[1], ne2 = t->ne[2];
    float tv = s_ld(t->type, s_at(t, k % ne0, (k / ne0) % ne1, (k / (ne0 * ne1)) % ne2,
                                   k / (ne0 * ne1 * ne2)));
    int dim = n->p.tstep.dim, half = dim / 2;
    float *out = s_out(n->dst, i1, i2, i3, tmp);
    double lmp = log((double)n->p.tstep.max_period);
    double den = (double)half - (double)n->p.tstep.shift;
    for (int i = 0; i < half; i++) {
        double arg = (double)tv * exp(-lmp * (double)i / den);
        float sv = (float)sin(arg), cv = (float)cos(arg);
        out[i] = n->p.tstep.flip_sin_to_cos ? cv : sv;
        out[half + i] = n->p.tstep.flip_sin_to_cos ? sv : cv;
    }
    if (dim % 2) out[dim - 1] = 0; /* diffusers pads odd sizes with a zero */
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_TIMESTEP_EMBED(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_tstep_row, n->dst->ne[0]);
}

static void s_rope_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    int64_t d = n->dst->ne[0];
    const float *x = s_load(n->src[0], i1, i2, i3, tmp);
    const float *pe = s_load(n->src[1], i1, 0, 0, tmp + d);
    float *out = s_out(n->dst, i1, i2, i3, tmp + 2 * d);
    for (int64_t i = 0; i < d; i += 2) {
        float c = pe[i], s = pe[i + 1], x0 = x[i], x1 = x[i + 1];
        out[i] = x0 * c - x1 * s;
        out[i + 1] = x0 * s + x1 * c;
    }
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_ROPE(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_rope_row, 3 * n->dst->ne[0]);
}
