/* lf_ops: op names, shape inference and the eager entry points. Shape rules
 * live here once, so the graph builder and every backend agree on them. */
#include "lf_ops.h"

#include <string.h>

#include "lf_backend_impl.h"
#include "lf_error.h"

static const char *const s_names[LF_OP_COUNT] = {
#define LF__OP_NAME(name, nsrc) #name,
    LF_OP_LIST(LF__OP_NAME)
#undef LF__OP_NAME
};

static const int s_nsrc[LF_OP_COUNT] = {
#define LF__OP_NSRC(name, nsrc) nsrc,
    LF_OP_LIST(LF__OP_NSRC)
#undef LF__OP_NSRC
};

const char *lf_op_name(lf_op_t op) {
    return (unsigned)op < LF_OP_COUNT ? s_names[op] : "?";
}

int lf_op_nsrc(lf_op_t op) {
    return (unsigned)op < LF_OP_COUNT ? s_nsrc[op] : 0;
}

static void s_copy_ne(int64_t ne[LF_MAX_DIMS], const lf_tensor_t *t) {
    memcpy(ne, t->ne, sizeof t->ne);
}

static bool s_vec_ok(const lf_tensor_t *v, int64_t n) {
    return v == NULL || lf_tensor_nelements(v) == n;
}

/* A fused residual (src[3] of MATMUL / CONV2D): absent, or f32 of the
 * destination's shape where it is not 1. */
static int s_residual_ok(const lf_tensor_t *r, const int64_t ne[LF_MAX_DIMS]) {
    if (!r) return 0;
    if (r->type != LF_TYPE_F32) return LF_EINVAL;
    for (int i = 0; i < LF_MAX_DIMS; i++)
        if (r->ne[i] != ne[i] && r->ne[i] != 1) return LF_EINVAL;
    return 0;
}

int lf_node_infer(const lf_node_t *node, int64_t ne[LF_MAX_DIMS], lf_type_t *type) {
    const lf_tensor_t *a = node->src[0], *b = node->src[1], *c = node->src[2];
    if ((unsigned)node->op >= LF_OP_COUNT || a == NULL) return LF_EINVAL;
    for (int i = 0; i < LF_MAX_DIMS; i++)
        if (a->ne[i] < 1) return LF_EINVAL;
    *type = a->type;
    s_copy_ne(ne, a);
    if (node->post_act && node->op != LF_OP_MATMUL && node->op != LF_OP_CONV2D) return LF_EINVAL;
    switch (node->op) {
    case LF_OP_MATMUL:
        if (!b || a->ne[0] != b->ne[0]) return LF_EINVAL;
        for (int i = 2; i < 4; i++)
            if (b->ne[i] != 1 && b->ne[i] != a->ne[i]) return LF_EINVAL;
        if (!s_vec_ok(c, b->ne[1])) return LF_EINVAL;
        ne[0] = b->ne[1];
        *type = LF_TYPE_F32;
        return s_residual_ok(node->src[3], ne);
    case LF_OP_CONV2D: {
        int st = node->p.conv2d.stride, pad = node->p.conv2d.pad;
        if (!b || st < 1 || pad < 0 || b->ne[2] != a->ne[2] || b->ne[3] < 1) return LF_EINVAL;
        int64_t wo = (a->ne[0] + 2 * pad - b->ne[0]) / st + 1;
        int64_t ho = (a->ne[1] + 2 * pad - b->ne[1]) / st + 1;
        if (wo < 1 || ho < 1 || !s_vec_ok(c, b->ne[3])) return LF_EINVAL;
        ne[0] = wo, ne[1] = ho, ne[2] = b->ne[3];
        *type = LF_TYPE_F32;
        return s_residual_ok(node->src[3], ne);
    }
    case LF_OP_GROUP_NORM: {
        int g = node->p.group_norm.groups;
        if (g < 1 || a->ne[2] % g != 0) return LF_EINVAL;
        if (!s_vec_ok(b, a->ne[2]) || !s_vec_ok(c, a->ne[2])) return LF_EINVAL;
        return 0;
    }
    case LF_OP_LAYER_NORM:
    case LF_OP_RMS_NORM:
        if (!s_vec_ok(b, a->ne[0])) return LF_EINVAL;
        if (node->op == LF_OP_LAYER_NORM && !s_vec_ok(c, a->ne[0])) return LF_EINVAL;
        return 0;
    case LF_OP_ATTENTION: {
        const lf_tensor_t *v = node->src[2], *mask = node->src[3];
        if (!b || !v) return LF_EINVAL;
        if (b->ne[0] != a->ne[0] || v->ne[1] != b->ne[1]) return LF_EINVAL;
        for (int i = 2; i < 4; i++)
            if (b->ne[i] != a->ne[i] || v->ne[i] != a->ne[i]) return LF_EINVAL;
        if (mask && (mask->ne[0] != b->ne[1] || mask->ne[1] != a->ne[1] ||
                     (mask->ne[2] != 1 && mask->ne[2] != a->ne[2]) || mask->ne[3] != 1))
            return LF_EINVAL;
        ne[0] = v->ne[0];
        *type = LF_TYPE_F32;
        return 0;
    }
    case LF_OP_GEGLU:
        if (a->ne[0] % 2) return LF_EINVAL;
        ne[0] = a->ne[0] / 2;
        return 0;
    case LF_OP_ADD:
    case LF_OP_MUL:
        if (!b) return LF_EINVAL;
        for (int i = 0; i < 4; i++)
            if (b->ne[i] != 1 && b->ne[i] != a->ne[i]) return LF_EINVAL;
        return 0;
    case LF_OP_CONCAT: {
        int d = node->p.concat.dim;
        if (!b || d < 0 || d >= LF_MAX_DIMS || b->type != a->type) return LF_EINVAL;
        for (int i = 0; i < 4; i++)
            if (i != d && b->ne[i] != a->ne[i]) return LF_EINVAL;
        ne[d] = a->ne[d] + b->ne[d];
        return 0;
    }
    case LF_OP_SPLIT: {
        /* The length comes from dst: the graph builder sets it in ne[dim]
         * via node->dst when present, so inference keeps dst's length. */
        int d = node->p.split.dim;
        if (d < 0 || d >= LF_MAX_DIMS || node->p.split.offset < 0) return LF_EINVAL;
        int64_t len = node->dst ? node->dst->ne[d] : a->ne[d] - node->p.split.offset;
        if (len < 1 || node->p.split.offset + len > a->ne[d]) return LF_EINVAL;
        ne[d] = len;
        return 0;
    }
    case LF_OP_PERMUTE: {
        int seen = 0;
        for (int i = 0; i < 4; i++) {
            int ax = node->p.permute.axes[i];
            if (ax < 0 || ax >= 4) return LF_EINVAL;
            seen |= 1 << ax;
            ne[i] = a->ne[ax];
        }
        return seen == 0xF ? 0 : LF_EINVAL;
    }
    case LF_OP_CPY:
        /* Destination type is the caller's choice; element counts match. */
        if (node->dst) {
            if (lf_tensor_nelements(node->dst) != lf_tensor_nelements(a)) return LF_EINVAL;
            s_copy_ne(ne, node->dst);
            *type = node->dst->type;
        }
        return 0;
    case LF_OP_UPSAMPLE2X:
        ne[0] *= 2, ne[1] *= 2;
        return 0;
    case LF_OP_AVG_POOL2D: {
        int k = node->p.pool.k, s = node->p.pool.s;
        if (k < 1 || s < 1 || a->ne[0] < k || a->ne[1] < k) return LF_EINVAL;
        ne[0] = (a->ne[0] - k) / s + 1, ne[1] = (a->ne[1] - k) / s + 1;
        return 0;
    }
    case LF_OP_TIMESTEP_EMBED: {
        int dim = node->p.tstep.dim;
        if (dim < 2 || a->type != LF_TYPE_F32 || node->p.tstep.max_period <= 0) return LF_EINVAL;
        if ((float)(dim / 2) - node->p.tstep.shift == 0) return LF_EINVAL;
        ne[0] = dim, ne[1] = lf_tensor_nelements(a), ne[2] = ne[3] = 1;
        *type = LF_TYPE_F32;
        return 0;
    }
    case LF_OP_ROPE:
        if (!b || a->ne[0] % 2 || b->ne[0] != a->ne[0] || b->ne[1] != a->ne[1] ||
            b->ne[2] * b->ne[3] != 1)
            return LF_EINVAL;
        return 0;
    case LF_OP_CLAMP:
        if (!(node->p.clamp.lo <= node->p.clamp.hi)) return LF_EINVAL;
        return 0;
    case LF_OP_SOFTMAX:
    case LF_OP_GELU:
    case LF_OP_SILU:
    case LF_OP_QUICK_GELU:
    case LF_OP_SCALE:
        return 0;
    case LF_OP_ADD_LOWRANK: {
        const lf_tensor_t *u = b, *v = c, *e = node->src[3];
        if (!u || !v || a->ne[2] != 1 || a->ne[3] != 1 || u->ne[1] != a->ne[1] || v->ne[0] != a->ne[0] ||
            v->ne[1] != u->ne[0] || u->ne[2] * u->ne[3] * v->ne[2] * v->ne[3] != 1)
            return LF_EINVAL;
        if (e && (e->ne[0] != a->ne[0] || e->ne[1] != a->ne[1] || e->ne[2] * e->ne[3] != 1)) return LF_EINVAL;
        return 0;
    }
    case LF_OP_COUNT: break;
    }
    return LF_EINVAL;
}

double lf_node_flops(const lf_node_t *n) {
    const lf_tensor_t *a = n->src[0], *b = n->src[1];
    switch (n->op) {
    case LF_OP_MATMUL:
        return 2.0 * (double)a->ne[0] * (double)b->ne[1] * (double)(a->ne[1] * a->ne[2] * a->ne[3]);
    case LF_OP_CONV2D: {
        int64_t ne[4];
        lf_type_t t;
        if (lf_node_infer(n, ne, &t)) return 0;
        return 2.0 * (double)(ne[0] * ne[1] * ne[2] * ne[3]) * (double)(b->ne[0] * b->ne[1] * b->ne[2]);
    }
    case LF_OP_ATTENTION: {
        const lf_tensor_t *v = n->src[2];
        double heads = (double)(a->ne[2] * a->ne[3]);
        return heads * 2.0 * (double)a->ne[1] * (double)b->ne[1] * (double)(a->ne[0] + v->ne[0]);
    }
    default: return 0;
    }
}

int lf_op_run(lf_backend_t *be, const lf_node_t *node) {
    int64_t ne[LF_MAX_DIMS];
    lf_type_t type;
    if (!be || !node || !node->dst) return LF_EINVAL;
    int rc = lf_node_infer(node, ne, &type);
    if (rc) {
        lf__backend_seterr(be, "%s: bad source shapes or parameters", lf_op_name(node->op));
        return rc;
    }
    for (int i = 0; i < LF_MAX_DIMS; i++) {
        if (node->dst->ne[i] != ne[i]) {
            lf__backend_seterr(be, "%s: dst ne[%d]=%lld, expected %lld", lf_op_name(node->op), i,
                               (long long)node->dst->ne[i], (long long)ne[i]);
            return LF_EINVAL;
        }
    }
    return lf__backend_run_node(be, node);
}

static lf_node_t s_node(lf_op_t op, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b,
                        const lf_tensor_t *c, const lf_tensor_t *d) {
    lf_node_t n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.dst = dst;
    n.src[0] = a, n.src[1] = b, n.src[2] = c, n.src[3] = d;
    return n;
}

int lf_op_matmul(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b,
                 const lf_tensor_t *bias) {
    lf_node_t n = s_node(LF_OP_MATMUL, dst, a, b, bias, NULL);
    return lf_op_run(be, &n);
}

int lf_op_conv2d(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, const lf_tensor_t *w,
                 const lf_tensor_t *bias, int stride, int pad) {
    lf_node_t n = s_node(LF_OP_CONV2D, dst, x, w, bias, NULL);
    n.p.conv2d.stride = stride, n.p.conv2d.pad = pad;
    return lf_op_run(be, &n);
}

int lf_op_group_norm(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                     const lf_tensor_t *gamma, const lf_tensor_t *beta, int groups, float eps,
                     int silu) {
    lf_node_t n = s_node(LF_OP_GROUP_NORM, dst, x, gamma, beta, NULL);
    n.p.group_norm.groups = groups, n.p.group_norm.eps = eps, n.p.group_norm.act = silu;
    return lf_op_run(be, &n);
}

int lf_op_layer_norm(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                     const lf_tensor_t *gamma, const lf_tensor_t *beta, float eps) {
    lf_node_t n = s_node(LF_OP_LAYER_NORM, dst, x, gamma, beta, NULL);
    n.p.norm.eps = eps;
    return lf_op_run(be, &n);
}

int lf_op_rms_norm(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                   const lf_tensor_t *gamma, float eps) {
    lf_node_t n = s_node(LF_OP_RMS_NORM, dst, x, gamma, NULL, NULL);
    n.p.norm.eps = eps;
    return lf_op_run(be, &n);
}

int lf_op_softmax(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, float scale) {
    lf_node_t n = s_node(LF_OP_SOFTMAX, dst, x, NULL, NULL, NULL);
    n.p.softmax.scale = scale;
    return lf_op_run(be, &n);
}

int lf_op_attention(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *q, const lf_tensor_t *k,
                    const lf_tensor_t *v, const lf_tensor_t *mask, float scale) {
    lf_node_t n = s_node(LF_OP_ATTENTION, dst, q, k, v, mask);
    n.p.attention.scale = scale;
    return lf_op_run(be, &n);
}

int lf_op_gelu(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, int approx_tanh) {
    lf_node_t n = s_node(LF_OP_GELU, dst, x, NULL, NULL, NULL);
    n.p.gelu.approx = approx_tanh;
    return lf_op_run(be, &n);
}

#define LF__UNARY(fn, OP)                                                      \
    int fn(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x) {         \
        lf_node_t n = s_node(OP, dst, x, NULL, NULL, NULL);                    \
        return lf_op_run(be, &n);                                              \
    }
LF__UNARY(lf_op_geglu, LF_OP_GEGLU)
LF__UNARY(lf_op_silu, LF_OP_SILU)
LF__UNARY(lf_op_quick_gelu, LF_OP_QUICK_GELU)
LF__UNARY(lf_op_cpy, LF_OP_CPY)
LF__UNARY(lf_op_upsample2x, LF_OP_UPSAMPLE2X)
#undef LF__UNARY

int lf_op_add(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b) {
    lf_node_t n = s_node(LF_OP_ADD, dst, a, b, NULL, NULL);
    return lf_op_run(be, &n);
}

int lf_op_mul(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b) {
    lf_node_t n = s_node(LF_OP_MUL, dst, a, b, NULL, NULL);
    return lf_op_run(be, &n);
}

int lf_op_scale(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, float s, float b) {
    lf_node_t n = s_node(LF_OP_SCALE, dst, x, NULL, NULL, NULL);
    n.p.scale.s = s, n.p.scale.b = b;
    return lf_op_run(be, &n);
}

int lf_op_concat(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b,
                 int dim) {
    lf_node_t n = s_node(LF_OP_CONCAT, dst, a, b, NULL, NULL);
    n.p.concat.dim = dim;
    return lf_op_run(be, &n);
}

int lf_op_split(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, int dim,
                int64_t offset) {
    lf_node_t n = s_node(LF_OP_SPLIT, dst, x, NULL, NULL, NULL);
    n.p.split.dim = dim, n.p.split.offset = offset;
    return lf_op_run(be, &n);
}

int lf_op_permute(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                  const int axes[LF_MAX_DIMS]) {
    lf_node_t n = s_node(LF_OP_PERMUTE, dst, x, NULL, NULL, NULL);
    memcpy(n.p.permute.axes, axes, sizeof n.p.permute.axes);
    return lf_op_run(be, &n);
}

int lf_op_avg_pool2d(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, int k, int s) {
    lf_node_t n = s_node(LF_OP_AVG_POOL2D, dst, x, NULL, NULL, NULL);
    n.p.pool.k = k, n.p.pool.s = s;
    return lf_op_run(be, &n);
}

int lf_op_timestep_embed(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *t, int dim,
                         float max_period, int flip_sin_to_cos, float shift) {
    lf_node_t n = s_node(LF_OP_TIMESTEP_EMBED, dst, t, NULL, NULL, NULL);
    n.p.tstep.dim = dim, n.p.tstep.max_period = max_period;
    n.p.tstep.flip_sin_to_cos = flip_sin_to_cos, n.p.tstep.shift = shift;
    return lf_op_run(be, &n);
}

int lf_op_rope(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, const lf_tensor_t *pe) {
    lf_node_t n = s_node(LF_OP_ROPE, dst, x, pe, NULL, NULL);
    return lf_op_run(be, &n);
}

int lf_op_clamp(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, float lo, float hi) {
    lf_node_t n = s_node(LF_OP_CLAMP, dst, x, NULL, NULL, NULL);
    n.p.clamp.lo = lo, n.p.clamp.hi = hi;
    return lf_op_run(be, &n);
}

int lf_op_add_lowrank(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *u,
                      const lf_tensor_t *v, const lf_tensor_t *c) {
    lf_node_t n = s_node(LF_OP_ADD_LOWRANK, dst, a, u, v, c);
    return lf_op_run(be, &n);
}
