/* lf_lora: tensor names to (module, role), modules to layers, checks, and
 * the ΔW arithmetic (accumulated in double, one output row at a time, so a
 * layer needs little more memory than its output). */
#include "lf_lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_strmap.h"
#include "lf_weights.h"

/* What a tensor is within its module. */
typedef enum {
    R_DOWN,
    R_UP,
    R_MID,
    R_ALPHA,
    R_H1A,
    R_H1B,
    R_H2A,
    R_H2B,
    R_HT1,
    R_HT2,
    R_K1,
    R_K1A,
    R_K1B,
    R_K2,
    R_K2A,
    R_K2B,
    R_KT2,
    R_DIFF,
    R_DIFFB,
    R_DORA,
    R_COUNT
} s_role_t;

/* Suffixes by role. None is a suffix of another that could end the same name
 * ("_lora.down.weight" is diffusers' processor form "to_k_lora.down.weight",
 * whose module part is then "…processor.to_k"). */
static const struct {
    const char *suffix;
    s_role_t role;
} s_suffixes[] = {
    {".lora_down.weight", R_DOWN},
    {".lora_up.weight", R_UP},
    {".lora_mid.weight", R_MID},
    {".lora_A.weight", R_DOWN},
    {".lora_B.weight", R_UP},
    {".lora_A.default.weight", R_DOWN},
    {".lora_B.default.weight", R_UP},
    {".lora.down.weight", R_DOWN},
    {".lora.up.weight", R_UP},
    {".lora_linear_layer.down.weight", R_DOWN},
    {".lora_linear_layer.up.weight", R_UP},
    {"_lora.down.weight", R_DOWN},
    {"_lora.up.weight", R_UP},
    {".alpha", R_ALPHA},
    {".hada_w1_a", R_H1A},
    {".hada_w1_b", R_H1B},
    {".hada_w2_a", R_H2A},
    {".hada_w2_b", R_H2B},
    {".hada_t1", R_HT1},
    {".hada_t2", R_HT2},
    {".lokr_w1", R_K1},
    {".lokr_w1_a", R_K1A},
    {".lokr_w1_b", R_K1B},
    {".lokr_w2", R_K2},
    {".lokr_w2_a", R_K2A},
    {".lokr_w2_b", R_K2B},
    {".lokr_t2", R_KT2},
    {".diff", R_DIFF},
    {".diff_b", R_DIFFB},
    {".dora_scale", R_DORA},
};

static const char *const s_role_names[R_COUNT] = {
    "down",      "up",        "mid",     "alpha",   "hada_w1_a", "hada_w1_b",  "hada_w2_a",
    "hada_w2_b", "hada_t1",   "hada_t2", "lokr_w1", "lokr_w1_a", "lokr_w1_b",  "lokr_w2",
    "lokr_w2_a", "lokr_w2_b", "lokr_t2", "diff",    "diff_b",    "dora_scale",
};

typedef struct {
    lf_lora_layer_t pub;
    char *module;
    const lf_tensor_info_t *t[R_COUNT];
} s_layer_t;

typedef struct {
    const char *name;   /* borrowed from the weights */
    const char *reason; /* static */
} s_unmatched_t;

struct lf_lora {
    lf_weights_t *w;
    s_layer_t *layers;
    size_t n, cap;
    s_unmatched_t *un;
    size_t n_un, cap_un;
};

const char *lf_lora_kind_name(lf_lora_kind_t kind)
{
    static const char *const names[] = {"lora", "loha", "lokr", "full"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

void lf_lora_destroy(lf_lora_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_lora_t *l = *self_p;
    for (size_t i = 0; i < l->n; i++) free(l->layers[i].module);
    free(l->layers);
    free(l->un);
    lf_weights_destroy(&l->w);
    free(l);
    *self_p = NULL;
}

const char *lf_lora_path(const lf_lora_t *self) { return lf_weights_path(self->w); }
size_t lf_lora_count(const lf_lora_t *self) { return self->n; }
const lf_lora_layer_t *lf_lora_at(const lf_lora_t *self, size_t i)
{
    return i < self->n ? &self->layers[i].pub : NULL;
}
/* The first match: a packed tensor's slices share its name (lf_lora_at
 * tells them apart by target->row0). */
const lf_lora_layer_t *lf_lora_find(const lf_lora_t *self, const char *target_name)
{
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->layers[i].pub.target->name, target_name) == 0) return &self->layers[i].pub;
    return NULL;
}
size_t lf_lora_unmatched_count(const lf_lora_t *self) { return self->n_un; }
const char *lf_lora_unmatched_name(const lf_lora_t *self, size_t i)
{
    return i < self->n_un ? self->un[i].name : NULL;
}
const char *lf_lora_unmatched_reason(const lf_lora_t *self, size_t i)
{
    return i < self->n_un ? self->un[i].reason : NULL;
}

/* ---- Checks ---- */

typedef struct {
    lf_tensor_err_t e;
    const lf_lora_t *lora;
} s_ctx_t;

static int64_t s_numel(const lf_tensor_info_t *t) { return lf_tensorinfo_numel(t); }
/* Elements per leading row: numel / shape[0]. */
static int64_t s_cols(const lf_tensor_info_t *t)
{
    return t->ndim > 0 && t->shape[0] > 0 ? s_numel(t) / t->shape[0] : 0;
}
static int64_t s_tcols(const lf_lora_target_t *g)
{
    int64_t c = 1;
    for (int i = 1; i < g->ndim; i++) c *= g->shape[i];
    return c;
}
/* Product of the target's kernel dims (1 for a Linear). */
static int64_t s_kernel(const lf_lora_target_t *g)
{
    return g->ndim == 4 ? g->shape[2] * g->shape[3] : 1;
}

static void s_shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static int s_bad_shape(s_ctx_t *c, const s_layer_t *l, s_role_t role, const char *why)
{
    char got[96], want[96];
    const lf_tensor_info_t *t = l->t[role];
    s_shape_str(got, sizeof got, t->ndim, t->shape);
    s_shape_str(want, sizeof want, l->pub.target->ndim, l->pub.target->shape);
    return lf_tensor_fail(&c->e, LF_EFORMAT, t->name, "shape %s does not give layer %s %s (%s)",
                          got, l->pub.target->name, want, why);
}

/* Float dtypes, finite values; a 2+-dim factor has no zero-sized dims. */
static int s_check_tensor(s_ctx_t *c, const lf_tensor_info_t *t)
{
    if (t->dtype != LF_DTYPE_F32 && t->dtype != LF_DTYPE_F16 && t->dtype != LF_DTYPE_BF16 &&
        t->dtype != LF_DTYPE_F64)
        return lf_tensor_fail(&c->e, LF_EFORMAT, t->name, "dtype %s is not a float type",
                              lf_dtype_name(t->dtype));
    int64_t n = s_numel(t);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] <= 0) return lf_tensor_fail(&c->e, LF_EFORMAT, t->name, "empty tensor");
    if (t->ndim > 4) return lf_tensor_fail(&c->e, LF_EFORMAT, t->name, "more than 4 dims");
    float *buf = malloc((size_t)(n ? n : 1) * sizeof *buf);
    if (!buf) return LF_ENOMEM;
    int rc = lf_weights_read_f32(t, buf);
    for (int64_t i = 0; rc == 0 && i < n; i++)
        if (!isfinite(buf[i]))
            rc = lf_tensor_fail(&c->e, LF_EFORMAT, t->name, "element %lld is %s", (long long)i,
                                isnan(buf[i]) ? "NaN" : "Inf");
    free(buf);
    return rc;
}

static int s_has(const s_layer_t *l, s_role_t a) { return l->t[a] != NULL; }

/* The first tensor of l (for messages). */
static const char *s_any_name(const s_layer_t *l)
{
    for (int r = 0; r < R_COUNT; r++)
        if (l->t[r]) return l->t[r]->name;
    return l->module;
}

/* Roles allowed per kind; anything else present is a mix of networks. */
static int s_only(const s_layer_t *l, unsigned allowed)
{
    for (int r = 0; r < R_COUNT; r++)
        if (l->t[r] && !(allowed & (1u << r))) return 0;
    return 1;
}
#define B(r) (1u << (r))

static int s_check_lora(s_ctx_t *c, s_layer_t *l)
{
    const lf_lora_target_t *g = l->pub.target;
    const lf_tensor_info_t *d = l->t[R_DOWN], *u = l->t[R_UP], *m = l->t[R_MID];
    if (!d || !u)
        return lf_tensor_fail(&c->e, LF_EFORMAT, s_any_name(l),
                              "LoRA module %s lacks its %s factor", l->module, d ? "up" : "down");
    if (d->ndim < 2 || u->ndim < 2) return s_bad_shape(c, l, d->ndim < 2 ? R_DOWN : R_UP, "rank");
    int64_t R = d->shape[0], Ru = m ? m->shape[0] : R;
    if (u->shape[1] != Ru || s_cols(u) != Ru) return s_bad_shape(c, l, R_UP, "up's rank");
    if (u->shape[0] != g->shape[0]) return s_bad_shape(c, l, R_UP, "output size");
    if (m) {
        if (g->ndim != 4 || m->ndim != 4 || m->shape[1] != R || m->shape[2] != g->shape[2] ||
            m->shape[3] != g->shape[3])
            return s_bad_shape(c, l, R_MID, "Tucker core");
        if (s_cols(d) != g->shape[1]) return s_bad_shape(c, l, R_DOWN, "input size");
        l->pub.tucker = 1;
    } else {
        if (s_cols(d) != s_tcols(g)) return s_bad_shape(c, l, R_DOWN, "input size");
        if (d->ndim == 4 && g->ndim == 4 &&
            (d->shape[2] != g->shape[2] || d->shape[3] != g->shape[3]))
            return s_bad_shape(c, l, R_DOWN, "kernel size");
    }
    l->pub.kind = LF_LORA_KIND_LORA;
    l->pub.rank = (int)R;
    return 0;
}

static int s_check_loha(s_ctx_t *c, s_layer_t *l)
{
    const lf_lora_target_t *g = l->pub.target;
    for (s_role_t r = R_H1A; r <= R_H2B; r++)
        if (!l->t[r])
            return lf_tensor_fail(&c->e, LF_EFORMAT, s_any_name(l), "LoHa module %s lacks %s",
                                  l->module, s_role_names[r]);
    if (s_has(l, R_HT1) != s_has(l, R_HT2))
        return lf_tensor_fail(&c->e, LF_EFORMAT, s_any_name(l),
                              "LoHa module %s has one Tucker core of two", l->module);
    for (int side = 0; side < 2; side++) {
        s_role_t ra = side ? R_H2A : R_H1A, rb = side ? R_H2B : R_H1B, rt = side ? R_HT2 : R_HT1;
        const lf_tensor_info_t *a = l->t[ra], *b = l->t[rb], *t = l->t[rt];
        if (a->ndim != 2) return s_bad_shape(c, l, ra, "2-D factor");
        if (t) {
            /* t [Ra, Rb, kh, kw], a [Ra, out], b [Rb, in]. */
            if (g->ndim != 4 || t->ndim != 4 || t->shape[2] != g->shape[2] ||
                t->shape[3] != g->shape[3])
                return s_bad_shape(c, l, rt, "Tucker core");
            if (a->shape[0] != t->shape[0] || a->shape[1] != g->shape[0])
                return s_bad_shape(c, l, ra, "Tucker output factor");
            if (b->ndim != 2 || b->shape[0] != t->shape[1] || b->shape[1] != g->shape[1])
                return s_bad_shape(c, l, rb, "Tucker input factor");
        } else {
            /* a [out, R], b [R, in * k]. */
            if (a->shape[0] != g->shape[0]) return s_bad_shape(c, l, ra, "output size");
            if (b->shape[0] != a->shape[1]) return s_bad_shape(c, l, rb, "rank");
            if (s_cols(b) != s_tcols(g)) return s_bad_shape(c, l, rb, "input size");
        }
    }
    l->pub.kind = LF_LORA_KIND_LOHA;
    l->pub.tucker = s_has(l, R_HT1);
    l->pub.rank = (int)l->t[R_H1B]->shape[0];
    return 0;
}

static int s_check_lokr(s_ctx_t *c, s_layer_t *l)
{
    const lf_lora_target_t *g = l->pub.target;
    const lf_tensor_info_t *w1 = l->t[R_K1], *w1a = l->t[R_K1A], *w1b = l->t[R_K1B];
    const lf_tensor_info_t *w2 = l->t[R_K2], *w2a = l->t[R_K2A], *w2b = l->t[R_K2B];
    const lf_tensor_info_t *t2 = l->t[R_KT2];
    if (!!w1 == !!(w1a || w1b) || (!w1 && !(w1a && w1b)))
        return lf_tensor_fail(&c->e, LF_EFORMAT, s_any_name(l),
                              "LoKr module %s needs lokr_w1 or lokr_w1_a and lokr_w1_b", l->module);
    if (!!w2 == !!(w2a || w2b) || (!w2 && !(w2a && w2b)) || (t2 && w2))
        return lf_tensor_fail(&c->e, LF_EFORMAT, s_any_name(l),
                              "LoKr module %s needs lokr_w2 or lokr_w2_a and lokr_w2_b (+lokr_t2)",
                              l->module);
    int64_t a, cc, b, dk;
    if (w1) {
        if (w1->ndim != 2) return s_bad_shape(c, l, R_K1, "2-D factor");
        a = w1->shape[0], cc = w1->shape[1];
    } else {
        if (w1a->ndim != 2 || w1b->ndim != 2 || w1a->shape[1] != w1b->shape[0])
            return s_bad_shape(c, l, R_K1B, "rank");
        a = w1a->shape[0], cc = w1b->shape[1];
    }
    if (w2) {
        if (w2->ndim == 4 &&
            (g->ndim != 4 || w2->shape[2] != g->shape[2] || w2->shape[3] != g->shape[3]))
            return s_bad_shape(c, l, R_K2, "kernel size");
        b = w2->shape[0], dk = s_cols(w2);
    } else if (t2) {
        /* t2 [Ra, Rb, kh, kw], w2a [Ra, b], w2b [Rb, d]. */
        if (g->ndim != 4 || t2->ndim != 4 || t2->shape[2] != g->shape[2] ||
            t2->shape[3] != g->shape[3])
            return s_bad_shape(c, l, R_KT2, "Tucker core");
        if (w2a->ndim != 2 || w2a->shape[0] != t2->shape[0])
            return s_bad_shape(c, l, R_K2A, "Tucker output factor");
        if (w2b->ndim != 2 || w2b->shape[0] != t2->shape[1])
            return s_bad_shape(c, l, R_K2B, "Tucker input factor");
        b = w2a->shape[1], dk = w2b->shape[1] * t2->shape[2] * t2->shape[3];
    } else {
        if (w2a->ndim != 2 || w2a->shape[1] != w2b->shape[0])
            return s_bad_shape(c, l, R_K2B, "rank");
        b = w2a->shape[0], dk = s_cols(w2b);
    }
    if (a * b != g->shape[0]) return s_bad_shape(c, l, w1 ? R_K1 : R_K1A, "output size a*b");
    if (cc * dk != s_tcols(g) || dk % s_kernel(g))
        return s_bad_shape(c, l, w2 ? R_K2 : R_K2B, "input size c*d*k");
    l->pub.kind = LF_LORA_KIND_LOKR;
    l->pub.tucker = t2 != NULL;
    /* LyCORIS's rank: of the w1 factors, else of the w2 factors; none when
     * both sides are whole matrices (then alpha is ignored). */
    l->pub.rank = w1b ? (int)w1b->shape[0] : w2b ? (int)w2b->shape[0] : 0;
    return 0;
}

static int s_same_squeezed(const lf_tensor_info_t *t, const lf_lora_target_t *g)
{
    int a = t->ndim, b = g->ndim;
    while (a > 0 && t->shape[a - 1] == 1) a--;
    while (b > 0 && g->shape[b - 1] == 1) b--;
    if (a != b) return 0;
    for (int i = 0; i < a; i++)
        if (t->shape[i] != g->shape[i]) return 0;
    return 1;
}

static int s_check_full(s_ctx_t *c, s_layer_t *l)
{
    const lf_lora_target_t *g = l->pub.target;
    if (l->t[R_DIFF] && !s_same_squeezed(l->t[R_DIFF], g))
        return s_bad_shape(c, l, R_DIFF, "full diff");
    if (l->t[R_DIFFB]) {
        const lf_tensor_info_t *b = l->t[R_DIFFB];
        if (!g->bias[0])
            return lf_tensor_fail(&c->e, LF_EFORMAT, b->name, "layer %s has no bias", g->name);
        if (b->ndim != 1 || b->shape[0] != g->shape[0]) return s_bad_shape(c, l, R_DIFFB, "bias");
    }
    l->pub.kind = LF_LORA_KIND_FULL;
    return 0;
}

static int s_check_layer(s_ctx_t *c, s_layer_t *l)
{
    const unsigned lora = B(R_DOWN) | B(R_UP) | B(R_MID) | B(R_ALPHA);
    const unsigned loha =
        B(R_H1A) | B(R_H1B) | B(R_H2A) | B(R_H2B) | B(R_HT1) | B(R_HT2) | B(R_ALPHA);
    const unsigned lokr =
        B(R_K1) | B(R_K1A) | B(R_K1B) | B(R_K2) | B(R_K2A) | B(R_K2B) | B(R_KT2) | B(R_ALPHA);
    const unsigned full = B(R_DIFF) | B(R_DIFFB) | B(R_ALPHA);
    for (int r = 0; r < R_COUNT; r++) {
        if (!l->t[r]) continue;
        int rc = s_check_tensor(c, l->t[r]);
        if (rc) return rc;
    }
    int rc;
    /* DoRA rescales each column after the add: plain ΔW would be wrong. */
    if (s_has(l, R_DORA))
        return lf_tensor_fail(&c->e, LF_EUNSUPPORTED, l->t[R_DORA]->name,
                              "DoRA (dora_scale) is not supported yet");
    if (s_has(l, R_DOWN) || s_has(l, R_UP) || s_has(l, R_MID)) {
        if (!s_only(l, lora)) goto mixed;
        rc = s_check_lora(c, l);
    } else if (s_has(l, R_H1A) || s_has(l, R_H1B) || s_has(l, R_H2A) || s_has(l, R_H2B)) {
        if (!s_only(l, loha)) goto mixed;
        rc = s_check_loha(c, l);
    } else if (s_has(l, R_K1) || s_has(l, R_K1A) || s_has(l, R_K2) || s_has(l, R_K2A) ||
               s_has(l, R_K1B) || s_has(l, R_K2B)) {
        if (!s_only(l, lokr)) goto mixed;
        rc = s_check_lokr(c, l);
    } else if (s_has(l, R_DIFF) || s_has(l, R_DIFFB)) {
        if (!s_only(l, full)) goto mixed;
        rc = s_check_full(c, l);
    } else {
        return lf_tensor_fail(&c->e, LF_EFORMAT, s_any_name(l),
                              "module %s has no weights of a network read here", l->module);
    }
    if (rc) return rc;
    l->pub.has_weight = l->pub.kind != LF_LORA_KIND_FULL || s_has(l, R_DIFF);
    l->pub.has_bias = s_has(l, R_DIFFB);
    l->pub.numel = l->pub.target->shape[0] * s_tcols(l->pub.target);
    l->pub.scale = 1.0;
    if (l->t[R_ALPHA]) {
        if (s_numel(l->t[R_ALPHA]) != 1)
            return lf_tensor_fail(&c->e, LF_EFORMAT, l->t[R_ALPHA]->name, "alpha is not a scalar");
        float a;
        lf_weights_read_f32(l->t[R_ALPHA], &a);
        l->pub.alpha = a;
        /* kohya and LyCORIS: alpha 0 (or absent) means alpha = rank. */
        if (a != 0 && l->pub.rank > 0) l->pub.scale = (double)a / l->pub.rank;
    }
    return 0;
mixed:
    return lf_tensor_fail(&c->e, LF_EFORMAT, s_any_name(l),
                          "module %s mixes tensors of different networks", l->module);
}

/* ---- Open ---- */

static int s_unmatched(lf_lora_t *l, const char *name, const char *reason)
{
    if (l->n_un == l->cap_un) {
        size_t nc = l->cap_un ? 2 * l->cap_un : 16;
        s_unmatched_t *nv = realloc(l->un, nc * sizeof *nv);
        if (!nv) return LF_ENOMEM;
        l->un = nv;
        l->cap_un = nc;
    }
    l->un[l->n_un++] = (s_unmatched_t){name, reason};
    return 0;
}

static int s_role(const char *name, size_t *module_len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof s_suffixes / sizeof s_suffixes[0]; i++) {
        size_t k = strlen(s_suffixes[i].suffix);
        if (n > k && strcmp(name + n - k, s_suffixes[i].suffix) == 0) {
            *module_len = n - k;
            return (int)s_suffixes[i].role;
        }
    }
    return -1;
}

/* Files a tensor under its layer (one per target). */
static int s_file(s_ctx_t *c, lf_lora_t *l, lf_strmap_t *by_target, const lf_lora_target_t *g,
                  const char *module, size_t mlen, s_role_t role, const lf_tensor_info_t *t)
{
    int64_t at;
    s_layer_t *y;
    /* One entry per target: a packed tensor's slices (q/k/v of an in_proj)
     * share its name, so the first row is part of the key. */
    char key[LF_LORA_NAME_MAX + 24];
    snprintf(key, sizeof key, "%s#%lld", g->name, (long long)g->row0);
    if (lf_strmap_get(by_target, key, strlen(key), &at)) {
        y = &l->layers[at];
        if (strlen(y->module) != mlen || strncmp(y->module, module, mlen) != 0)
            return lf_tensor_fail(&c->e, LF_EFORMAT, t->name,
                                  "module %.*s and module %s both change layer %s", (int)mlen,
                                  module, y->module, g->name);
    } else {
        if (l->n == l->cap) {
            size_t nc = l->cap ? 2 * l->cap : 64;
            s_layer_t *nv = realloc(l->layers, nc * sizeof *nv);
            if (!nv) return LF_ENOMEM;
            l->layers = nv;
            l->cap = nc;
        }
        y = &l->layers[l->n];
        memset(y, 0, sizeof *y);
        if (!(y->module = strndup(module, mlen))) return LF_ENOMEM;
        y->pub.target = g;
        y->pub.module = y->module;
        if (lf_strmap_put(by_target, key, strlen(key), (int64_t)l->n)) {
            free(y->module);
            return LF_ENOMEM;
        }
        l->n++;
    }
    if (y->t[role])
        return lf_tensor_fail(&c->e, LF_EFORMAT, t->name, "%s of module %s given twice (also %s)",
                              s_role_names[role], y->module, y->t[role]->name);
    y->t[role] = t;
    return 0;
}

/* A module with an alpha and nothing else read here (its weights are of a
 * network this module does not read, such as OFT) is reported, not failed. */
static int s_drop_alpha_only(lf_lora_t *l)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        s_layer_t *y = &l->layers[i];
        int only = y->t[R_ALPHA] != NULL;
        for (int r = 0; r < R_COUNT && only; r++)
            if (r != R_ALPHA && y->t[r]) only = 0;
        if (only) {
            int rc = s_unmatched(l, y->t[R_ALPHA]->name, "alpha without weights read here");
            free(y->module);
            if (rc) {
                /* Keep the array whole for destroy: kept ones, then the rest. */
                memmove(&l->layers[k], y + 1, (l->n - i - 1) * sizeof *y);
                l->n = k + (l->n - i - 1);
                return rc;
            }
            continue;
        }
        l->layers[k++] = *y;
    }
    l->n = k;
    for (size_t i = 0; i < l->n; i++) l->layers[i].pub.module = l->layers[i].module;
    return 0;
}

static int s_cmp_unmatched(const void *a, const void *b)
{
    return strcmp(((const s_unmatched_t *)a)->name, ((const s_unmatched_t *)b)->name);
}

int lf_lora_open(lf_lora_t **out, const char *path, const lf_lora_targets_t *targets, char *err,
                 size_t errlen)
{
    lf_lora_t *l = calloc(1, sizeof *l);
    lf_strmap_t *by_target = lf_strmap_new();
    char module[320];
    int rc = l && by_target ? 0 : LF_ENOMEM;
    if (rc == 0) rc = lf_weights_open(&l->w, path, err, errlen);
    s_ctx_t c = {.e = {.errstr = err, .errlen = errlen, .label = path}, .lora = l};
    size_t n = rc == 0 ? lf_weights_count(l->w) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const lf_tensor_info_t *t = lf_weights_at(l->w, i);
        size_t mlen;
        int role = s_role(t->name, &mlen);
        if (role < 0) {
            rc = s_unmatched(l, t->name, "unsupported tensor kind");
            continue;
        }
        if (mlen >= sizeof module) {
            rc = s_unmatched(l, t->name, "no such layer in the model");
            continue;
        }
        memcpy(module, t->name, mlen);
        module[mlen] = '\0';
        const lf_lora_target_t *g = lf_lora_targets_lookup(targets, module);
        if (!g) {
            rc = s_unmatched(l, t->name, "no such layer in the model");
            continue;
        }
        rc = s_file(&c, l, by_target, g, module, mlen, (s_role_t)role, t);
    }
    if (rc == 0) rc = s_drop_alpha_only(l);
    for (size_t i = 0; i < (l ? l->n : 0) && rc == 0; i++) rc = s_check_layer(&c, &l->layers[i]);
    if (rc == 0 && l->n_un > 1) qsort(l->un, l->n_un, sizeof *l->un, s_cmp_unmatched);
    lf_strmap_destroy(&by_target);
    if (rc != 0) {
        if (rc == LF_ENOMEM && errlen && l && l->w)
            snprintf(err, errlen, "%s: out of memory", path);
        lf_lora_destroy(&l);
        return rc;
    }
    *out = l;
    return 0;
}

/* ---- ΔW ---- */

static float *s_read(const lf_tensor_info_t *t)
{
    int64_t n = s_numel(t);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (p && lf_weights_read_f32(t, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* Row p of Σ_ab core[a,b,k] wa(a,p) wb[b,r] into row[r*K + k], where
 * wa(a,p) = wa[a*sa + p*sp]; tmp holds Σ_b core[a,b,k] wb[b,r] as
 * [A][I][K] (computed once by s_tucker_prep). */
static void s_tucker_prep(const float *core, const float *wb, int64_t A, int64_t Bn, int64_t I,
                          int64_t K, double *tmp)
{
    for (int64_t a = 0; a < A; a++)
        for (int64_t r = 0; r < I; r++)
            for (int64_t k = 0; k < K; k++) {
                double s = 0;
                for (int64_t b = 0; b < Bn; b++)
                    s += (double)core[(a * Bn + b) * K + k] * wb[b * I + r];
                tmp[(a * I + r) * K + k] = s;
            }
}

static void s_tucker_row(const double *tmp, const float *wa, int64_t sa, int64_t sp, int64_t p,
                         int64_t A, int64_t IK, double *row)
{
    for (int64_t x = 0; x < IK; x++) row[x] = 0;
    for (int64_t a = 0; a < A; a++) {
        double w = wa[a * sa + p * sp];
        const double *t = tmp + a * IK;
        for (int64_t x = 0; x < IK; x++) row[x] += w * t[x];
    }
}

/* Row p of A[M][R] · B[R][N]. */
static void s_mm_row(const float *A, const float *Bm, int64_t R, int64_t N, int64_t p, double *row)
{
    for (int64_t x = 0; x < N; x++) row[x] = 0;
    int64_t r = 0;
    /* Four ranks per pass: a quarter of the traffic on row. */
    for (; r + 4 <= R; r += 4) {
        const double a0 = A[p * R + r], a1 = A[p * R + r + 1], a2 = A[p * R + r + 2],
                     a3 = A[p * R + r + 3];
        const float *b0 = Bm + r * N, *b1 = b0 + N, *b2 = b1 + N, *b3 = b2 + N;
        for (int64_t x = 0; x < N; x++)
            row[x] += a0 * b0[x] + a1 * b1[x] + a2 * b2[x] + a3 * b3[x];
    }
    for (; r < R; r++) {
        double a = A[p * R + r];
        const float *b = Bm + r * N;
        for (int64_t x = 0; x < N; x++) row[x] += a * b[x];
    }
}

static int s_out_row(const s_ctx_t *c, const s_layer_t *l, const double *row, int64_t n,
                     double scale, float *dst)
{
    for (int64_t x = 0; x < n; x++) {
        dst[x] = (float)(row[x] * scale);
        if (!isfinite(dst[x]))
            return lf_tensor_fail((lf_tensor_err_t *)&c->e, LF_EFORMAT, s_any_name(l),
                                  "ΔW of module %s overflows", l->module);
    }
    return 0;
}

static int s_delta_lora(const s_ctx_t *c, const s_layer_t *l, float *dst)
{
    const lf_lora_target_t *g = l->pub.target;
    const int64_t O = g->shape[0], C = s_tcols(g), R = l->t[R_DOWN]->shape[0];
    float *d = s_read(l->t[R_DOWN]), *u = s_read(l->t[R_UP]);
    float *m = l->t[R_MID] ? s_read(l->t[R_MID]) : NULL;
    double *row = malloc((size_t)C * sizeof *row), *tmp = NULL;
    int rc = d && u && row && (!l->t[R_MID] || m) ? 0 : LF_ENOMEM;
    if (rc == 0 && m) {
        const int64_t Ru = l->t[R_MID]->shape[0], I = g->shape[1], K = s_kernel(g);
        if (!(tmp = malloc((size_t)(Ru * I * K) * sizeof *tmp))) rc = LF_ENOMEM;
        if (rc == 0) s_tucker_prep(m, d, Ru, R, I, K, tmp);
        /* up [O][Ru]: wa(a, p) = up[p*Ru + a]. */
        for (int64_t p = 0; p < O && rc == 0; p++) {
            s_tucker_row(tmp, u, 1, Ru, p, Ru, C, row);
            rc = s_out_row(c, l, row, C, l->pub.scale, dst + p * C);
        }
    } else {
        for (int64_t p = 0; p < O && rc == 0; p++) {
            s_mm_row(u, d, R, C, p, row);
            rc = s_out_row(c, l, row, C, l->pub.scale, dst + p * C);
        }
    }
    free(d), free(u), free(m), free(row), free(tmp);
    return rc;
}

static int s_delta_loha(const s_ctx_t *c, const s_layer_t *l, float *dst)
{
    const lf_lora_target_t *g = l->pub.target;
    const int64_t O = g->shape[0], C = s_tcols(g), K = s_kernel(g);
    float *f[6] = {0};
    static const s_role_t roles[6] = {R_H1A, R_H1B, R_H2A, R_H2B, R_HT1, R_HT2};
    double *r1 = malloc((size_t)C * sizeof *r1), *r2 = malloc((size_t)C * sizeof *r2);
    double *tmp[2] = {0};
    int rc = r1 && r2 ? 0 : LF_ENOMEM;
    for (int i = 0; i < 6 && rc == 0; i++)
        if (l->t[roles[i]] && !(f[i] = s_read(l->t[roles[i]]))) rc = LF_ENOMEM;
    const int tucker = l->pub.tucker;
    for (int s = 0; s < 2 && rc == 0 && tucker; s++) {
        const lf_tensor_info_t *t = l->t[roles[4 + s]];
        int64_t A = t->shape[0], Bn = t->shape[1], I = g->shape[1];
        if (!(tmp[s] = malloc((size_t)(A * I * K) * sizeof *tmp[s])))
            rc = LF_ENOMEM;
        else
            s_tucker_prep(f[4 + s], f[2 * s + 1], A, Bn, I, K, tmp[s]);
    }
    for (int64_t p = 0; p < O && rc == 0; p++) {
        if (tucker) {
            /* hada_w*_a [A][O]: wa(a, p) = w[a*O + p]. */
            s_tucker_row(tmp[0], f[0], O, 1, p, l->t[R_HT1]->shape[0], C, r1);
            s_tucker_row(tmp[1], f[2], O, 1, p, l->t[R_HT2]->shape[0], C, r2);
        } else {
            s_mm_row(f[0], f[1], l->t[R_H1A]->shape[1], C, p, r1);
            s_mm_row(f[2], f[3], l->t[R_H2A]->shape[1], C, p, r2);
        }
        for (int64_t x = 0; x < C; x++) r1[x] *= r2[x];
        rc = s_out_row(c, l, r1, C, l->pub.scale, dst + p * C);
    }
    for (int i = 0; i < 6; i++) free(f[i]);
    free(r1), free(r2), free(tmp[0]), free(tmp[1]);
    return rc;
}

/* A whole factor side of a LoKr as doubles: w, or wa · wb, or the Tucker
 * rebuild; *rows and *cols its 2-D view. NULL when out of memory. */
static double *s_lokr_side(const s_layer_t *l, int second, const lf_lora_target_t *g, int64_t *rows,
                           int64_t *cols)
{
    const lf_tensor_info_t *w = l->t[second ? R_K2 : R_K1];
    const lf_tensor_info_t *wa = l->t[second ? R_K2A : R_K1A], *wb = l->t[second ? R_K2B : R_K1B];
    const lf_tensor_info_t *t = second ? l->t[R_KT2] : NULL;
    double *out = NULL;
    if (w) {
        float *f = s_read(w);
        *rows = w->shape[0], *cols = s_cols(w);
        if (f && (out = malloc((size_t)s_numel(w) * sizeof *out)))
            for (int64_t i = 0; i < s_numel(w); i++) out[i] = f[i];
        free(f);
        return out;
    }
    float *a = s_read(wa), *b = s_read(wb), *core = t ? s_read(t) : NULL;
    if (!a || !b || (t && !core)) goto done;
    if (t) {
        /* t [A][Bn][kh][kw], wa [A][rows], wb [Bn][d]. */
        const int64_t A = t->shape[0], Bn = t->shape[1], K = s_kernel(g), d = wb->shape[1];
        *rows = wa->shape[1], *cols = d * K;
        double *tmp = malloc((size_t)(A * d * K) * sizeof *tmp);
        out = malloc((size_t)(*rows * *cols) * sizeof *out);
        if (tmp && out) {
            s_tucker_prep(core, b, A, Bn, d, K, tmp);
            for (int64_t p = 0; p < *rows; p++)
                s_tucker_row(tmp, a, *rows, 1, p, A, *cols, out + p * *cols);
        } else {
            free(out);
            out = NULL;
        }
        free(tmp);
    } else {
        *rows = wa->shape[0], *cols = s_cols(wb);
        if ((out = malloc((size_t)(*rows * *cols) * sizeof *out)))
            for (int64_t p = 0; p < *rows; p++)
                s_mm_row(a, b, wa->shape[1], *cols, p, out + p * *cols);
    }
done:
    free(a), free(b), free(core);
    return out;
}

static int s_delta_lokr(const s_ctx_t *c, const s_layer_t *l, float *dst)
{
    const lf_lora_target_t *g = l->pub.target;
    const int64_t C = s_tcols(g);
    int64_t ar, ac, br, bc;
    double *w1 = s_lokr_side(l, 0, g, &ar, &ac), *w2 = s_lokr_side(l, 1, g, &br, &bc);
    double *row = malloc((size_t)C * sizeof *row);
    int rc = w1 && w2 && row ? 0 : LF_ENOMEM;
    /* kron: ΔW[i1*br + i2][j1*bc + j2] = w1[i1][j1] · w2[i2][j2]. */
    for (int64_t i1 = 0; i1 < ar && rc == 0; i1++)
        for (int64_t i2 = 0; i2 < br && rc == 0; i2++) {
            for (int64_t j1 = 0; j1 < ac; j1++)
                for (int64_t j2 = 0; j2 < bc; j2++)
                    row[j1 * bc + j2] = w1[i1 * ac + j1] * w2[i2 * bc + j2];
            rc = s_out_row(c, l, row, C, l->pub.scale, dst + (i1 * br + i2) * C);
        }
    free(w1), free(w2), free(row);
    return rc;
}

int lf_lora_delta(const lf_lora_t *self, size_t i, float *dst, char *err, size_t errlen)
{
    LF_ASSERT(i < self->n);
    const s_layer_t *l = &self->layers[i];
    s_ctx_t c = {.e = {.errstr = err, .errlen = errlen, .label = lf_weights_path(self->w)},
                 .lora = self};
    if (!l->pub.has_weight) return LF_EINVAL;
    switch (l->pub.kind) {
    case LF_LORA_KIND_LORA:
        return s_delta_lora(&c, l, dst);
    case LF_LORA_KIND_LOHA:
        return s_delta_loha(&c, l, dst);
    case LF_LORA_KIND_LOKR:
        return s_delta_lokr(&c, l, dst);
    case LF_LORA_KIND_FULL:
        return lf_weights_read_f32(l->t[R_DIFF], dst) ? LF_ENOMEM : 0;
    }
    return LF_EINVAL;
}

int lf_lora_lowrank(const lf_lora_t *self, size_t i, float *up, float *down)
{
    LF_ASSERT(i < self->n);
    const s_layer_t *l = &self->layers[i];
    if (l->pub.kind != LF_LORA_KIND_LORA || l->pub.tucker) return LF_EINVAL;
    if (lf_weights_read_f32(l->t[R_UP], up) || lf_weights_read_f32(l->t[R_DOWN], down))
        return LF_ENOMEM;
    int64_t n = l->pub.target->shape[0] * l->pub.rank;
    for (int64_t k = 0; k < n; k++) up[k] = (float)(up[k] * l->pub.scale);
    return 0;
}

int lf_lora_delta_bias(const lf_lora_t *self, size_t i, float *dst, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    LF_ASSERT(i < self->n);
    const s_layer_t *l = &self->layers[i];
    if (!l->pub.has_bias) return LF_EINVAL;
    return lf_weights_read_f32(l->t[R_DIFFB], dst) ? LF_ENOMEM : 0;
}
