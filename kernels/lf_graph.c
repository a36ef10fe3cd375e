/* lf_graph: node recording, lifetime tracking, arena planning, execution.
 *
 * Graph tensors live in fixed blocks of entries so their addresses never
 * move (nodes point at them); an entry is either an allocation of its own or
 * a view (owner + byte offset). Planning first derives the nodes to run from
 * the recorded ones (s_fuse: post-ops folded into the product that feeds
 * them, where the backend claims the fused node), then turns each
 * allocation's first and last use among those into an lf_arena buffer. The
 * recorded nodes stay as they are, so a graph can grow and be planned again.
 * Last, the bf16-activation pass (s_act_find, s_act_apply) lets a norm whose
 * every reader is a product that reads it as bf16 write bf16 itself. */
#include "lf_graph.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_arena.h"
#include "lf_backend_impl.h"
#include "lf_error.h"

#define LF__GRAPH_BLOCK 256

typedef struct {
    lf_tensor_t t; /* first member: the entry's address is the tensor's */
    int owner;     /* entry index of the allocation; itself when not a view */
    size_t offset; /* bytes from the owner's start (views) */
    int first, last;
    int arena_id;
    bool input; /* lf_graph_input: live for the whole run */
    /* The bf16-activation pass: act is t stored bf16 (same memory), which
     * the nodes to run use instead of t while act_on; act_cand: t may be
     * (a norm's result read only as products' src[0]). */
    bool act_cand, act_on;
    lf_tensor_t act;
} s_entry_t;

struct lf_graph {
    lf_backend_t *be;
    s_entry_t **blocks;
    int n_blocks, n_entries;
    lf_node_t *nodes;
    int n_nodes, cap_nodes;
    lf_node_t *run; /* the nodes as planned (s_fuse); what compute runs */
    int n_run, cap_run;
    lf_arena_t *arena;
    lf_buffer_t *buf;
    bool planned;
    unsigned version;
    int n_act_cand; /* entries with act_cand, after planning */
    int act_prec;   /* the precision g->run's act pointers were set for; -1: none yet */
    int64_t images; /* stamped on the nodes recorded (lf_graph_set_images) */
    lf_graph_after_fn after; /* lf_graph_set_after */
    void *after_ud;
    int error;
    char errstr[256];
};

static void s_fail(lf_graph_t *g, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void s_fail(lf_graph_t *g, int rc, const char *fmt, ...) {
    if (g->error) return;
    g->error = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->errstr, sizeof g->errstr, fmt, ap);
    va_end(ap);
}

lf_graph_t *lf_graph_new(lf_backend_t *be) {
    if (!be) return NULL;
    lf_graph_t *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->be = be;
    g->act_prec = -1;
    g->arena = lf_arena_new(256);
    if (!g->arena) {
        free(g);
        return NULL;
    }
    return g;
}

void lf_graph_destroy(lf_graph_t **g_p) {
    if (!g_p || !*g_p) return;
    lf_graph_t *g = *g_p;
    lf_backend_buffer_free(&g->buf);
    for (int i = 0; i < g->n_blocks; i++) free(g->blocks[i]);
    free(g->blocks);
    free(g->nodes);
    free(g->run);
    lf_arena_destroy(&g->arena);
    free(g);
    *g_p = NULL;
}

static s_entry_t *s_entry(const lf_graph_t *g, int i) {
    return &g->blocks[i / LF__GRAPH_BLOCK][i % LF__GRAPH_BLOCK];
}

/* Index of the entry t is (its t, or its act), or -1 when t was not made
 * by this graph. */
static int s_find(const lf_graph_t *g, const lf_tensor_t *t) {
    if (!t) return -1;
    for (int b = 0; b < g->n_blocks; b++) {
        const s_entry_t *lo = g->blocks[b], *hi = lo + LF__GRAPH_BLOCK;
        if ((const void *)t >= (const void *)lo && (const void *)t < (const void *)hi) {
            int i = b * LF__GRAPH_BLOCK + (int)((size_t)((const char *)t - (const char *)lo) / sizeof *lo);
            return i < g->n_entries ? i : -1;
        }
    }
    return -1;
}

static s_entry_t *s_new_entry(lf_graph_t *g) {
    if (g->n_entries == g->n_blocks * LF__GRAPH_BLOCK) {
        s_entry_t **bl = realloc(g->blocks, (size_t)(g->n_blocks + 1) * sizeof *bl);
        if (!bl) return NULL;
        g->blocks = bl;
        bl[g->n_blocks] = calloc(LF__GRAPH_BLOCK, sizeof(s_entry_t));
        if (!bl[g->n_blocks]) return NULL;
        g->n_blocks++;
    }
    int i = g->n_entries++;
    s_entry_t *e = s_entry(g, i);
    memset(e, 0, sizeof *e);
    e->owner = i;
    e->first = e->last = g->n_nodes;
    e->arena_id = -1;
    g->planned = false;
    return e;
}

static s_entry_t *s_alloc_tensor(lf_graph_t *g, lf_type_t type, const int64_t ne[4]) {
    s_entry_t *e = s_new_entry(g);
    if (!e) {
        s_fail(g, LF_ENOMEM, "out of memory");
        return NULL;
    }
    e->t = lf_tensor_make(type, 4, ne, NULL);
    return e;
}

lf_tensor_t *lf_graph_input(lf_graph_t *g, lf_type_t type, int64_t n0, int64_t n1, int64_t n2,
                            int64_t n3) {
    const int64_t ne[4] = {n0, n1, n2, n3};
    if (n0 < 1 || n1 < 1 || n2 < 1 || n3 < 1 || (unsigned)type >= LF_TYPE_COUNT) {
        s_fail(g, LF_EINVAL, "input: bad shape");
        return NULL;
    }
    s_entry_t *e = s_alloc_tensor(g, type, ne);
    /* Inputs keep their memory for the whole run: the host writes them once
     * and may compute again (CFG passes, repeated steps) without rewriting. */
    if (e) e->first = 0, e->last = INT32_MAX, e->input = true;
    return e ? &e->t : NULL;
}

lf_tensor_t *lf_graph_output(lf_graph_t *g, lf_tensor_t *t) {
    int i = s_find(g, t);
    if (i < 0) return t;
    s_entry(g, s_entry(g, i)->owner)->last = INT32_MAX;
    g->planned = false;
    return t;
}

lf_tensor_t *lf_graph_view(lf_graph_t *g, const lf_tensor_t *base, lf_tensor_t view) {
    int bi = s_find(g, base);
    if (!base || bi < 0) {
        if (base) s_fail(g, LF_EINVAL, "view: base is not a tensor of this graph");
        return NULL;
    }
    s_entry_t *e = s_new_entry(g);
    if (!e) {
        s_fail(g, LF_ENOMEM, "out of memory");
        return NULL;
    }
    const s_entry_t *b = s_entry(g, bi);
    e->owner = b->owner;
    e->offset = b->offset + (size_t)((uintptr_t)view.data - (uintptr_t)base->data);
    e->t = view;
    return &e->t;
}

/* Extends the lifetime of the allocation behind t to node index at. */
static void s_use(lf_graph_t *g, const lf_tensor_t *t, int at) {
    int i = s_find(g, t);
    if (i < 0) return;
    s_entry_t *o = s_entry(g, s_entry(g, i)->owner);
    if (o->last < at) o->last = at;
}

/* Records node with dst already set (a graph tensor); returns dst. */
static lf_tensor_t *s_record(lf_graph_t *g, lf_node_t *node) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        lf_node_t *n = realloc(g->nodes, (size_t)cap * sizeof *n);
        if (!n) {
            s_fail(g, LF_ENOMEM, "out of memory");
            return NULL;
        }
        g->nodes = n, g->cap_nodes = cap;
    }
    int at = g->n_nodes++;
    if (!node->images) node->images = g->images;
    for (int i = 0; i < LF_MAX_SRC; i++) s_use(g, node->src[i], at);
    s_use(g, node->dst, at);
    g->nodes[at] = *node;
    g->planned = false;
    return node->dst;
}

lf_tensor_t *lf_graph_node(lf_graph_t *g, const lf_node_t *tmpl) {
    if (!g) return NULL;
    if (g->error) return NULL;
    lf_node_t node = *tmpl;
    if (!node.src[0]) {
        s_fail(g, LF_EINVAL, "%s: missing source", lf_op_name(node.op));
        return NULL;
    }
    int64_t ne[4];
    lf_type_t type;
    int rc = lf_node_infer(&node, ne, &type);
    if (rc) {
        s_fail(g, rc, "%s (node %d): bad shapes or parameters", lf_op_name(node.op), g->n_nodes);
        return NULL;
    }
    s_entry_t *e = s_alloc_tensor(g, type, ne);
    if (!e) return NULL;
    node.dst = &e->t;
    return s_record(g, &node);
}

void lf_graph_set_images(lf_graph_t *g, int64_t images) {
    if (g) g->images = images > 0 ? images : 0;
}

static lf_node_t s_mk(lf_op_t op, const lf_tensor_t *a, const lf_tensor_t *b, const lf_tensor_t *c,
                      const lf_tensor_t *d) {
    lf_node_t n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.src[0] = a, n.src[1] = b, n.src[2] = c, n.src[3] = d;
    return n;
}

lf_tensor_t *lf_graph_matmul(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b,
                             const lf_tensor_t *bias) {
    if (!b) return NULL;
    lf_node_t n = s_mk(LF_OP_MATMUL, a, b, bias, NULL);
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_conv2d(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *w,
                             const lf_tensor_t *bias, int stride, int pad) {
    if (!w) return NULL;
    lf_node_t n = s_mk(LF_OP_CONV2D, x, w, bias, NULL);
    n.p.conv2d.stride = stride, n.p.conv2d.pad = pad;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_group_norm(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *gamma,
                                 const lf_tensor_t *beta, int groups, float eps, int silu) {
    lf_node_t n = s_mk(LF_OP_GROUP_NORM, x, gamma, beta, NULL);
    n.p.group_norm.groups = groups, n.p.group_norm.eps = eps, n.p.group_norm.act = silu;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_layer_norm(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *gamma,
                                 const lf_tensor_t *beta, float eps) {
    lf_node_t n = s_mk(LF_OP_LAYER_NORM, x, gamma, beta, NULL);
    n.p.norm.eps = eps;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_rms_norm(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *gamma,
                               float eps) {
    lf_node_t n = s_mk(LF_OP_RMS_NORM, x, gamma, NULL, NULL);
    n.p.norm.eps = eps;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_softmax(lf_graph_t *g, const lf_tensor_t *x, float scale) {
    lf_node_t n = s_mk(LF_OP_SOFTMAX, x, NULL, NULL, NULL);
    n.p.softmax.scale = scale;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_attention(lf_graph_t *g, const lf_tensor_t *q, const lf_tensor_t *k,
                                const lf_tensor_t *v, const lf_tensor_t *mask, float scale) {
    if (!k || !v) return NULL;
    lf_node_t n = s_mk(LF_OP_ATTENTION, q, k, v, mask);
    n.p.attention.scale = scale;
    return lf_graph_node(g, &n);
}

/* [C,N,B] viewed as [D,N,H,B] (head h = channels h*D..h*D+D-1). */
static lf_tensor_t s_heads(const lf_tensor_t *t, int64_t heads) {
    lf_tensor_t v = *t;
    int64_t D = t->ne[0] / heads;
    v.ne[0] = D, v.ne[1] = t->ne[1], v.ne[2] = heads, v.ne[3] = t->ne[2];
    v.nb[0] = t->nb[0], v.nb[1] = t->nb[1], v.nb[2] = (size_t)D * t->nb[0], v.nb[3] = t->nb[2];
    return v;
}

lf_tensor_t *lf_graph_mha(lf_graph_t *g, const lf_tensor_t *q, const lf_tensor_t *k,
                          const lf_tensor_t *v, const lf_tensor_t *mask, int n_heads) {
    if (!q || n_heads < 1) return lf_graph_mha_scaled(g, q, k, v, mask, n_heads, 1.0f);
    return lf_graph_mha_scaled(g, q, k, v, mask, n_heads, 1.0f / sqrtf((float)(q->ne[0] / n_heads)));
}

lf_tensor_t *lf_graph_mha_scaled(lf_graph_t *g, const lf_tensor_t *q, const lf_tensor_t *k,
                                 const lf_tensor_t *v, const lf_tensor_t *mask, int n_heads,
                                 float scale) {
    if (!g || g->error || !q || !k || !v) return NULL;
    if (n_heads < 1 || q->ne[0] % n_heads || k->ne[0] % n_heads || v->ne[0] % n_heads ||
        q->ne[3] != 1 || k->ne[3] != 1 || v->ne[3] != 1) {
        s_fail(g, LF_EINVAL, "mha: channels not divisible by heads or 4-D input");
        return NULL;
    }
    lf_tensor_t qh = s_heads(q, n_heads), kh = s_heads(k, n_heads), vh = s_heads(v, n_heads);
    const int64_t ne[4] = {v->ne[0], q->ne[1], q->ne[2], 1};
    s_entry_t *out = s_alloc_tensor(g, LF_TYPE_F32, ne);
    if (!out) return NULL;
    /* Views of q/k/v and of the output, all sharing their allocations. */
    lf_tensor_t *qv = lf_graph_view(g, q, qh), *kv = NULL, *vv = NULL;
    if (s_find(g, k) >= 0) kv = lf_graph_view(g, k, kh);
    if (s_find(g, v) >= 0) vv = lf_graph_view(g, v, vh);
    lf_tensor_t *ov = lf_graph_view(g, &out->t, s_heads(&out->t, n_heads));
    if (!qv || !ov || (s_find(g, k) >= 0 && !kv) || (s_find(g, v) >= 0 && !vv)) return NULL;
    if (!kv || !vv) {
        s_fail(g, LF_EINVAL, "mha: k and v must be graph tensors");
        return NULL;
    }
    lf_node_t n = s_mk(LF_OP_ATTENTION, qv, kv, vv, mask);
    n.p.attention.scale = scale;
    int64_t ine[4];
    lf_type_t type;
    if (lf_node_infer(&n, ine, &type)) {
        s_fail(g, LF_EINVAL, "mha: q/k/v shapes disagree");
        return NULL;
    }
    n.dst = ov;
    out->first = g->n_nodes;
    return s_record(g, &n) ? &out->t : NULL;
}

lf_tensor_t *lf_graph_gelu(lf_graph_t *g, const lf_tensor_t *x, int approx_tanh) {
    lf_node_t n = s_mk(LF_OP_GELU, x, NULL, NULL, NULL);
    n.p.gelu.approx = approx_tanh;
    return lf_graph_node(g, &n);
}

#define LF__GRAPH_UNARY(fn, OP)                                                \
    lf_tensor_t *fn(lf_graph_t *g, const lf_tensor_t *x) {                     \
        lf_node_t n = s_mk(OP, x, NULL, NULL, NULL);                           \
        return lf_graph_node(g, &n);                                           \
    }
LF__GRAPH_UNARY(lf_graph_geglu, LF_OP_GEGLU)
LF__GRAPH_UNARY(lf_graph_silu, LF_OP_SILU)
LF__GRAPH_UNARY(lf_graph_quick_gelu, LF_OP_QUICK_GELU)
LF__GRAPH_UNARY(lf_graph_upsample2x, LF_OP_UPSAMPLE2X)
#undef LF__GRAPH_UNARY

lf_tensor_t *lf_graph_add(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b) {
    lf_node_t n = s_mk(LF_OP_ADD, a, b, NULL, NULL);
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_mul(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b) {
    lf_node_t n = s_mk(LF_OP_MUL, a, b, NULL, NULL);
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_scale(lf_graph_t *g, const lf_tensor_t *x, float s, float b) {
    lf_node_t n = s_mk(LF_OP_SCALE, x, NULL, NULL, NULL);
    n.p.scale.s = s, n.p.scale.b = b;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_concat(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b, int dim) {
    lf_node_t n = s_mk(LF_OP_CONCAT, a, b, NULL, NULL);
    n.p.concat.dim = dim;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_split(lf_graph_t *g, const lf_tensor_t *x, int dim, int64_t offset,
                            int64_t len) {
    if (!g || g->error || !x) return NULL;
    if (dim < 0 || dim >= LF_MAX_DIMS || len < 1) {
        s_fail(g, LF_EINVAL, "split: bad dim or length");
        return NULL;
    }
    int64_t ne[4];
    memcpy(ne, x->ne, sizeof ne);
    ne[dim] = len;
    /* The length is carried by dst: build dst first, then check the node. */
    lf_tensor_t probe = lf_tensor_make(x->type, 4, ne, NULL);
    lf_node_t n = s_mk(LF_OP_SPLIT, x, NULL, NULL, NULL);
    n.p.split.dim = dim, n.p.split.offset = offset;
    n.dst = &probe;
    lf_type_t type;
    if (lf_node_infer(&n, ne, &type)) {
        s_fail(g, LF_EINVAL, "split: range outside the tensor");
        return NULL;
    }
    s_entry_t *e = s_alloc_tensor(g, x->type, ne);
    if (!e) return NULL;
    n.dst = &e->t;
    return s_record(g, &n);
}

lf_tensor_t *lf_graph_permute(lf_graph_t *g, const lf_tensor_t *x, const int axes[LF_MAX_DIMS]) {
    lf_node_t n = s_mk(LF_OP_PERMUTE, x, NULL, NULL, NULL);
    memcpy(n.p.permute.axes, axes, sizeof n.p.permute.axes);
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_cpy(lf_graph_t *g, const lf_tensor_t *x, lf_type_t type, int64_t n0,
                          int64_t n1, int64_t n2, int64_t n3) {
    if (!g || g->error || !x) return NULL;
    int64_t ne[4] = {n0, n1, n2, n3};
    if (n0 <= 0) memcpy(ne, x->ne, sizeof ne);
    if ((unsigned)type >= LF_TYPE_COUNT || ne[0] * ne[1] * ne[2] * ne[3] != lf_tensor_nelements(x) ||
        ne[1] < 1 || ne[2] < 1 || ne[3] < 1) {
        s_fail(g, LF_EINVAL, "cpy: bad type or element count");
        return NULL;
    }
    s_entry_t *e = s_alloc_tensor(g, type, ne);
    if (!e) return NULL;
    lf_node_t n = s_mk(LF_OP_CPY, x, NULL, NULL, NULL);
    n.dst = &e->t;
    return s_record(g, &n);
}

lf_tensor_t *lf_graph_avg_pool2d(lf_graph_t *g, const lf_tensor_t *x, int k, int s) {
    lf_node_t n = s_mk(LF_OP_AVG_POOL2D, x, NULL, NULL, NULL);
    n.p.pool.k = k, n.p.pool.s = s;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_timestep_embed(lf_graph_t *g, const lf_tensor_t *t, int dim,
                                     float max_period, int flip_sin_to_cos, float shift) {
    lf_node_t n = s_mk(LF_OP_TIMESTEP_EMBED, t, NULL, NULL, NULL);
    n.p.tstep.dim = dim, n.p.tstep.max_period = max_period;
    n.p.tstep.flip_sin_to_cos = flip_sin_to_cos, n.p.tstep.shift = shift;
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_rope(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *pe) {
    if (!pe) return NULL;
    lf_node_t n = s_mk(LF_OP_ROPE, x, pe, NULL, NULL);
    return lf_graph_node(g, &n);
}

lf_tensor_t *lf_graph_clamp(lf_graph_t *g, const lf_tensor_t *x, float lo, float hi) {
    lf_node_t n = s_mk(LF_OP_CLAMP, x, NULL, NULL, NULL);
    n.p.clamp.lo = lo, n.p.clamp.hi = hi;
    return lf_graph_node(g, &n);
}

/* Owner entry of graph tensor t, or -1. */
static int s_owner(const lf_graph_t *g, const lf_tensor_t *t) {
    int i = s_find(g, t);
    return i < 0 ? -1 : s_entry(g, i)->owner;
}

/* Whether node n has a product's post-ops folded in. */
static bool s_has_post(const lf_node_t *n) {
    return n->post_act || ((n->op == LF_OP_MATMUL || n->op == LF_OP_CONV2D) && n->src[3]);
}

/* The fusion pass: g->run = the recorded nodes, where an ADD or a SILU whose
 * operand is the result of a MATMUL or CONV2D read by nothing else (no
 * other node, no view, not an output) is folded into that product as a
 * post-op (lf_node_t.post_act, the residual src[3]) when the backend claims
 * the fused node (supports_fused; the CPU's LF_CPU_FUSE=0 declines, CUDA
 * has none): the ADD's other operand is added and SiLU applied in the
 * product's output pass instead of a pass of its own over memory. The
 * fused node runs where the ADD or SILU was (the residual may be computed
 * after the product), writing that node's destination; the product's own
 * destination is then unused and gets no memory. Returns 0 or LF_ENOMEM. */
static int s_fuse(lf_graph_t *g) {
    if (g->cap_run < g->n_nodes) {
        lf_node_t *r = realloc(g->run, (size_t)g->n_nodes * sizeof *r);
        if (!r) return LF_ENOMEM;
        g->run = r, g->cap_run = g->n_nodes;
    }
    if (g->n_nodes) memcpy(g->run, g->nodes, (size_t)g->n_nodes * sizeof *g->run);
    g->n_run = g->n_nodes;
    if (!g->be->iface->supports_fused || !g->n_nodes) return 0;
    int *uses = calloc((size_t)g->n_entries, sizeof *uses), *prod = malloc((size_t)g->n_entries * sizeof *prod);
    bool *dead = calloc((size_t)g->n_nodes, sizeof *dead);
    if (!uses || !prod || !dead) {
        free(uses), free(prod), free(dead);
        return LF_ENOMEM;
    }
    for (int i = 0; i < g->n_entries; i++) {
        const s_entry_t *e = s_entry(g, i);
        prod[i] = -1;
        if (e->owner == i && (e->input || e->last == INT32_MAX)) uses[i] = 2; /* read from outside */
        if (e->owner != i) uses[e->owner]++; /* a view may be read by the host or by any node */
    }
    for (int k = 0; k < g->n_run; k++) {
        const lf_node_t *n = &g->run[k];
        for (int j = 0; j < LF_MAX_SRC; j++) {
            int o = s_owner(g, n->src[j]);
            if (o >= 0) uses[o]++;
        }
        int d = s_find(g, n->dst);
        if (d >= 0 && s_entry(g, d)->owner == d) prod[d] = k;
    }
    for (int k = 0; k < g->n_run; k++) {
        lf_node_t *n = &g->run[k];
        if ((n->op != LF_OP_ADD && n->op != LF_OP_SILU) || n->dst->type != LF_TYPE_F32) continue;
        for (int side = 0; side < (n->op == LF_OP_ADD ? 2 : 1); side++) {
            const lf_tensor_t *x = n->src[side], *y = n->op == LF_OP_ADD ? n->src[1 - side] : NULL;
            int xi = s_find(g, x);
            if (xi < 0 || s_entry(g, xi)->owner != xi || uses[xi] != 1 || prod[xi] < 0 || dead[prod[xi]]) continue;
            if (memcmp(x->ne, n->dst->ne, sizeof x->ne)) continue; /* x broadcast over the other operand */
            const lf_node_t *p = &g->run[prod[xi]];
            if ((p->op != LF_OP_MATMUL && p->op != LF_OP_CONV2D) || p->src[3] || (!y && p->post_act)) continue;
            lf_node_t f = *p;
            f.dst = n->dst;
            if (y) f.src[3] = y;
            else f.post_act = 1;
            int64_t ne[LF_MAX_DIMS];
            lf_type_t type;
            if (lf_node_infer(&f, ne, &type) || memcmp(ne, n->dst->ne, sizeof ne) || !lf_backend_supports_op(g->be, &f))
                continue;
            dead[prod[xi]] = true;
            *n = f;
            prod[s_find(g, n->dst)] = k;
            break;
        }
    }
    int m = 0;
    for (int k = 0; k < g->n_run; k++)
        if (!dead[k]) g->run[m++] = g->run[k];
    g->n_run = m;
    free(uses), free(prod), free(dead);
    return 0;
}

/* Whether node n is a norm whose result may be stored bf16. */
static bool s_act_norm(const lf_node_t *n) {
    return n->op == LF_OP_LAYER_NORM || n->op == LF_OP_GROUP_NORM || n->op == LF_OP_RMS_NORM;
}

/* The bf16-activation pass, first half (at plan time, over the nodes to
 * run): marks act_cand on each allocation that a norm writes (f32, whole)
 * and that is read only as the src[0] of MATMUL or CONV2D nodes, nowhere
 * else: no view of it, no other operand slot (a fused residual src[3]),
 * not an input or output of the graph, not read by any other node. Those
 * products, under bf16, would convert it to bf16 at each read (q, k and v
 * each converting one layer norm's output); stored bf16 by the norm it is
 * converted once, and the products read it as it is. Which candidates are
 * stored bf16 depends on the precision in effect at each compute
 * (s_act_apply). 0 or LF_ENOMEM. */
static int s_act_find(lf_graph_t *g) {
    g->n_act_cand = 0;
    g->act_prec = -1;
    if (!g->be->iface->reads_bf16 || !g->n_entries) return 0;
    int *reads = calloc((size_t)g->n_entries * 3, sizeof *reads);
    if (!reads) return LF_ENOMEM;
    int *src0 = reads + g->n_entries, *prod = src0 + g->n_entries;
    for (int i = 0; i < g->n_entries; i++) {
        const s_entry_t *e = s_entry(g, i);
        if (e->owner != i) reads[e->owner] = INT32_MAX / 2; /* a view: read anywhere */
    }
    for (int k = 0; k < g->n_run; k++) {
        const lf_node_t *n = &g->run[k];
        for (int j = 0; j < LF_MAX_SRC; j++) {
            int o = s_owner(g, n->src[j]);
            if (o < 0) continue;
            reads[o]++;
            if (j == 0 && (n->op == LF_OP_MATMUL || n->op == LF_OP_CONV2D)) src0[o]++;
        }
        int d = s_find(g, n->dst);
        if (d >= 0 && s_entry(g, d)->owner == d) prod[d] = s_act_norm(n) ? k + 1 : -1;
    }
    for (int i = 0; i < g->n_entries; i++) {
        s_entry_t *e = s_entry(g, i);
        e->act_on = false;
        e->act_cand = e->owner == i && !e->input && e->last != INT32_MAX && e->t.type == LF_TYPE_F32 &&
                      e->arena_id >= 0 && prod[i] > 0 && reads[i] > 0 && reads[i] == src0[i];
        if (!e->act_cand) continue;
        e->act = lf_tensor_make(LF_TYPE_BF16, LF_MAX_DIMS, e->t.ne, e->t.data);
        e->act.buffer = e->t.buffer, e->act.name = e->t.name;
        g->n_act_cand++;
    }
    free(reads);
    return 0;
}

/* The candidate entry the run-node operand *t is (its f32 or bf16 form), or NULL. */
static s_entry_t *s_act_entry(const lf_graph_t *g, const lf_tensor_t *t) {
    int i = s_find(g, t);
    s_entry_t *e = i < 0 ? NULL : s_entry(g, i);
    return e && e->act_cand ? e : NULL;
}

/* The second half, at each compute where the precision in effect is not
 * the one g->run was last set for: a candidate is stored bf16 when every
 * reader says (reads_bf16) that at this precision it would convert the
 * operand to bf16 itself, and the backend takes the norm and the readers
 * with the bf16 tensor; otherwise the f32 tensor stays (f32 precision; a
 * bf16 job's product computed in f32, such as a Winograd convolution). The
 * bf16 form lies in the f32 one's arena slot, so a precision switch moves
 * no memory and needs no re-plan: the inputs the host wrote after planning
 * stay where they are (a re-plan could move them), at the cost of the half
 * of each bf16 slot left unused. Only g->run's operand pointers change; the
 * recorded nodes keep the f32 tensors, so a graph that grows and is
 * planned again starts from them. */
static void s_act_apply(lf_graph_t *g) {
    lf_backend_t *be = g->be;
    g->act_prec = (int)be->precision;
    for (int k = 0; k < g->n_run; k++) { /* back to f32; every candidate on until a node says no */
        lf_node_t *n = &g->run[k];
        s_entry_t *e = s_act_entry(g, n->src[0]);
        if (e) n->src[0] = &e->t, e->act_on = true;
        if ((e = s_act_entry(g, n->dst))) n->dst = &e->t;
    }
    for (int k = 0; k < g->n_run; k++) {
        const lf_node_t *n = &g->run[k];
        lf_node_t t = *n;
        s_entry_t *e = s_act_entry(g, n->src[0]);
        if (e && e->act_on) {
            t.src[0] = &e->act;
            e->act_on = be->iface->reads_bf16(be, n, 0) && lf_backend_supports_op(be, &t);
        }
        t = *n;
        if ((e = s_act_entry(g, n->dst)) && e->act_on) {
            t.dst = &e->act;
            e->act_on = lf_backend_supports_op(be, &t);
        }
    }
    for (int k = 0; k < g->n_run; k++) {
        lf_node_t *n = &g->run[k];
        s_entry_t *e = s_act_entry(g, n->src[0]);
        if (e && e->act_on) n->src[0] = &e->act;
        if ((e = s_act_entry(g, n->dst)) && e->act_on) n->dst = &e->act;
    }
}

int lf_graph_plan(lf_graph_t *g) {
    if (g->error) return g->error;
    if (g->planned) return 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!lf_backend_supports_op(g->be, &g->nodes[i])) {
            s_fail(g, LF_EUNSUPPORTED, "node %d (%s) not supported by backend %s", i,
                   lf_op_name(g->nodes[i].op), lf_backend_name(g->be));
            return g->error;
        }
    }
    int rc = s_fuse(g);
    if (rc) return rc;
    /* Lifetimes over the nodes to run: first and last node touching each
     * allocation (inputs: the whole run; outputs: to the end). */
    int *first = malloc((size_t)g->n_entries * 2 * sizeof *first);
    if (!first && g->n_entries) return LF_ENOMEM;
    int *last = first + g->n_entries;
    for (int i = 0; i < g->n_entries; i++) first[i] = INT32_MAX, last[i] = -1;
    for (int k = 0; k < g->n_run; k++) {
        const lf_node_t *n = &g->run[k];
        for (int j = 0; j <= LF_MAX_SRC; j++) {
            int o = s_owner(g, j < LF_MAX_SRC ? n->src[j] : n->dst);
            if (o < 0) continue;
            if (first[o] > k) first[o] = k;
            if (last[o] < k) last[o] = k;
        }
    }
    lf_arena_reset(g->arena);
    for (int i = 0; i < g->n_entries && !rc; i++) {
        s_entry_t *e = s_entry(g, i);
        e->arena_id = -1;
        if (e->owner != i) continue;
        if (e->input) first[i] = 0, last[i] = g->n_run;
        else if (last[i] < 0) continue; /* fused away: never written, never read */
        else if (e->last == INT32_MAX) last[i] = g->n_run;
        e->arena_id = lf_arena_add(g->arena, lf_tensor_nbytes(&e->t), first[i], last[i]);
        if (e->arena_id < 0) rc = e->arena_id;
    }
    free(first);
    if (!rc) rc = lf_arena_plan(g->arena);
    if (rc) return rc;
    size_t peak = lf_arena_peak(g->arena);
    if (!g->buf || g->buf->size < peak) {
        lf_backend_buffer_free(&g->buf);
        rc = lf_backend_buffer_alloc(g->be, peak ? peak : 256, LF_BUFFER_ACTIVATIONS, &g->buf);
        if (rc) {
            s_fail(g, rc, "activation buffer of %zu bytes: %s", peak, lf_backend_errstr(g->be));
            return rc;
        }
    }
    for (int i = 0; i < g->n_entries; i++) {
        s_entry_t *e = s_entry(g, i);
        const s_entry_t *o = s_entry(g, e->owner);
        e->t.data = o->arena_id < 0 ? NULL : (char *)g->buf->base + lf_arena_offset(g->arena, o->arena_id) + e->offset;
        e->t.buffer = o->arena_id < 0 ? NULL : g->buf;
    }
    rc = s_act_find(g);
    if (rc) return rc;
    g->planned = true;
    g->version = ++g->be->plans;
    return 0;
}

int lf_graph_compute(lf_graph_t *g) {
    int rc = lf_graph_plan(g);
    if (rc) return rc;
    if (g->n_act_cand && g->act_prec != (int)g->be->precision) s_act_apply(g);
    if (g->be->iface->graph_compute) return g->be->iface->graph_compute(g->be, g);
    for (int i = 0; i < g->n_run; i++) {
        rc = lf__backend_run_node(g->be, &g->run[i]);
        if (rc) {
            s_fail(g, rc, "node %d (%s): %s", i, lf_op_name(g->run[i].op), lf_backend_errstr(g->be));
            g->error = 0; /* a run-time failure does not poison the graph */
            return rc;
        }
        if (g->after) g->after(g->after_ud, &g->run[i]);
    }
    return 0;
}

void lf_graph_set_after(lf_graph_t *g, lf_graph_after_fn fn, void *ud) {
    if (!g) return;
    g->after = fn;
    g->after_ud = fn ? ud : NULL;
}

int lf_graph_n_nodes(const lf_graph_t *g) {
    return g->n_nodes;
}

double lf_graph_flops(const lf_graph_t *g) {
    double f = 0;
    for (int i = 0; i < g->n_nodes; i++) f += lf_node_flops(&g->nodes[i]);
    return f;
}

size_t lf_graph_peak_bytes(const lf_graph_t *g) {
    return lf_arena_peak(g->arena);
}

size_t lf_graph_unplanned_bytes(const lf_graph_t *g) {
    return lf_arena_total(g->arena);
}

static void s_print_tensor(const lf_graph_t *g, const lf_tensor_t *t, FILE *out) {
    if (!t) return;
    int i = s_find(g, t);
    fprintf(out, " %s[%lld,%lld,%lld,%lld]%s", lf_type_name(t->type), (long long)t->ne[0], (long long)t->ne[1],
            (long long)t->ne[2], (long long)t->ne[3], i < 0 ? "w" : lf_tensor_is_contiguous(t) ? "" : "v");
}

void lf_graph_print(const lf_graph_t *g, FILE *out) {
    /* Once planned, the nodes that run (post-ops fused: "+silu", "+res"). */
    const lf_node_t *nodes = g->planned ? g->run : g->nodes;
    const int count = g->planned ? g->n_run : g->n_nodes;
    for (int n = 0; n < count; n++) {
        const lf_node_t *node = &nodes[n];
        int di = s_find(g, node->dst);
        const s_entry_t *o = di >= 0 ? s_entry(g, s_entry(g, di)->owner) : NULL;
        char name[32];
        snprintf(name, sizeof name, "%s%s%s", lf_op_name(node->op), node->post_act ? "+silu" : "",
                 s_has_post(node) && node->src[3] ? "+res" : "");
        fprintf(out, "%4d %-18s ->", n, name);
        s_print_tensor(g, node->dst, out);
        if (g->planned && o && o->arena_id >= 0)
            fprintf(out, " @%zu", lf_arena_offset(g->arena, o->arena_id) + s_entry(g, di)->offset);
        fprintf(out, " <-");
        for (int i = 0; i < LF_MAX_SRC; i++) s_print_tensor(g, node->src[i], out);
        fputc('\n', out);
    }
    fprintf(out, "%d nodes, %d tensors; activations %zu bytes planned (%zu without reuse)%s\n", count,
            g->n_entries, lf_arena_peak(g->arena), lf_arena_total(g->arena), g->planned ? "" : " [not planned]");
    fprintf(out, "(w: not a graph tensor, e.g. a weight; v: strided view)\n");
}

const char *lf_graph_errstr(const lf_graph_t *g) {
    return g->errstr;
}

int lf__graph_n_nodes(const lf_graph_t *g) {
    return g->planned ? g->n_run : g->n_nodes;
}

const lf_node_t *lf__graph_node(const lf_graph_t *g, int i) {
    return g->planned ? &g->run[i] : &g->nodes[i];
}

unsigned lf__graph_version(const lf_graph_t *g) {
    return g->version;
}
