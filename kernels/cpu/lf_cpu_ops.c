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

static void s_norm_row(const lf_node_t *n, const lf__cpu_simd_t *simd, float *tmp, int64_t i1, int64_t i2,
                   int64_t i3) {
    int64_t ne0 = n->dst->ne[0];
    const float *in = s_load(n->src[0], i1, i2, i3, tmp);
    float *out = s_out(n->dst, i1, i2, i3, tmp + ne0);
    const float *g = n->src[1] ? s_load(n->src[1], 0, 0, 0, tmp + 2 * ne0) : NULL;
    const float *b = n->src[2] ? s_load(n->src[2], 0, 0, 0, tmp + 3 * ne0) : NULL;
    double mean = 0, var = 0;
    if (n->op == LF_OP_LAYER_NORM) {
        for (int64_t i = 0; i < ne0; i++) mean += in[i];
        mean /= (double)ne0;
    }
    for (int64_t i = 0; i < ne0; i++) var += ((double)in[i] - mean) * ((double)in[i] - mean);
    var /= (double)ne0;
    float inv = (float)(1.0 / sqrt(var + n->p.norm.eps)), fm = (float)mean;
    for (int64_t i = 0; i < ne0; i++) {
        float y = (in[i] - fm) * inv;
        if (g) y *= g[i];
        if (b) y += b[i];
        out[i] = y;
    }
    s_store(n->dst, i1, i2, i3, out);
}

int lf__cpu_op_LAYER_NORM(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_norm_row, 4 * s_maxne0(n));
}

int lf__cpu_op_RMS_NORM(lf_backend_t *be, const lf_node_t *n) {
    return s_rows(be, n, n->dst, s_norm_row, 4 * s_maxne0(n));
}

/* ---- group norm: one task per (group, batch) ---- */

typedef struct {
    const lf_node_t *node;
    lf__cpu_ctx_t *cpu;
    int failed;
} s_gn_job_t;

/* Rows of ne0 elements, or whole channel planes when x and dst (f32) hold
 * them contiguously: one vector pass over 4096 elements instead of 64. */
static bool s_gn_planes(const lf_tensor_t *x, const lf_tensor_t *d) {
    return x->type == LF_TYPE_F32 && d->type == LF_TYPE_F32 && x->nb[0] == 4 && d->nb[0] == 4 &&
           x->nb[1] == (size_t)x->ne[0] * 4 && d->nb[1] == (size_t)d->ne[0] * 4;
}

static void s_gn_task(void *arg, int64_t task, int thread) {
    s_gn_job_t *j = arg;
    const lf_node_t *n = j->node;
    const lf_tensor_t *x = n->src[0];
    const lf__cpu_simd_t *simd = &j->cpu->simd;
    int groups = n->p.group_norm.groups;
    int64_t cg = x->ne[2] / groups, g = task % groups, i3 = task / groups;
    bool planes = s_gn_planes(x, n->dst);
    int64_t len = planes ? x->ne[0] * x->ne[1] : x->ne[0], nrows = planes ? 1 : x->ne[1];
    float *tmp = lf__cpu_scratch(j->cpu, thread, (size_t)(2 * x->ne[0]));
    if (!tmp) {
        j->failed = 1;
        return;
    }
    double sum = 0, sq = 0;
    for (int64_t c = g * cg; c < (g + 1) * cg; c++)
        for (int64_t i1 = 0; i1 < nrows; i1++) {
            float s1, s2; /* per-row partials in float, groups in double */
            simd->sum_sq(s_load(x, i1, c, i3, tmp), len, &s1, &s2);
            sum += s1, sq += s2;
        }
    double cnt = (double)(cg * x->ne[1] * x->ne[0]), mean = sum / cnt;
    double var = sq / cnt - mean * mean;
    if (var < 0) var = 0;
    float inv = (float)(1.0 / sqrt(var + n->p.group_norm.eps)), fm = (float)mean;
    for (int64_t c = g * cg; c < (g + 1) * cg; c++) {
        float ga = n->src[1] ? s_ld(n->src[1]->type, s_at(n->src[1], c, 0, 0, 0)) : 1.0f;
        float be = n->src[2] ? s_ld(n->src[2]->type, s_at(n->src[2], c, 0, 0, 0)) : 0.0f;
        float sc = inv * ga, sh = be - fm * inv * ga;
        for (int64_t i1 = 0; i1 < nrows; i1++) {
            const float *r = s_load(x, i1, c, i3, tmp);
            float *o = s_out(n->dst, i1, c, i3, tmp + x->ne[0]);
            simd->affine(o, r, len, sc, sh, n->p.group_norm.act != 0);
            s_store(n->dst, i1, c, i3, o);
        }
    }
}

int lf__cpu_op_GROUP_NORM(lf_backend_t *be, const lf_node_t *n) {
    lf__cpu_ctx_t *c = be->ctx;
    s_gn_job_t j = {.node = n, .cpu = c};
    for (int t = 0; t < c->n_threads; t++)
        if (!lf__cpu_scratch(c, t, (size_t)(2 * n->src[0]->ne[0]))) return LF_ENOMEM;
    lf__cpu_pool_run(c->pool, (int64_t)n->p.group_norm.groups * n->src[0]->ne[3], s_gn_task, &j);
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

int lf__cpu_op_PERMUTE(lf_backend_t *be, const lf_node_t *n) {
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
