/* lf_lora_patch: merges LoRA deltas into a model's weights tensor by tensor
 * and keeps each touched tensor's original bytes (or where to read them
 * again) for an exact restore. Where the backend reads host memory, a plain
 * low-rank layer is merged by the op table's ADD_LOWRANK (W0 + up · down,
 * rounded and checked in one pass over the weight, on the backend's
 * threads); every other network (and a device backend) computes ΔW in
 * lf_lora. */
#include "lf_lora_patch.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lf_error.h"
#include "lf_quant.h"
#include "lf_lora.h"
#include "lf_ops.h"

#define S_MAX_POOLS 4

/* Target names under prefix live in pool as pool_prefix + the rest. */
typedef struct {
    char prefix[32], pool_prefix[32];
    lf_pool_t *pool;
} s_pool_map_t;

/* One tensor changed from the plain model, with its original bytes. */
typedef struct {
    lf_tensor_t *t; /* borrowed from the pool */
    void *orig;     /* owned: lf_tensor_nbytes(t) bytes as the pool held them; NULL: read
                       again from the origin */
    int used;       /* merged by the set being applied (a switch restores the others) */
} s_saved_t;

struct lf_lora_patch {
    lf_pool_t *pool; /* names no map claims */
    s_pool_map_t maps[S_MAX_POOLS];
    int n_maps;
    lf_backend_t *be;
    const lf_lora_targets_t *targets;
    s_saved_t *saved;
    size_t n_saved, cap_saved, saved_bytes;
    char *key;      /* identity of the current set; NULL = plain model */
    char *warnings; /* the current set's warnings, or NULL */
    lf_origin_t *origin; /* borrowed, may be NULL: where plain tensors can be read again */
    size_t keep_bytes;   /* copies kept before the origin is relied on */
};

__attribute__((format(printf, 4, 5))) static int s_err(char *err, size_t errlen, int rc,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

lf_lora_patch_t *lf_lora_patch_new(lf_pool_t *pool, lf_backend_t *be,
                                   const lf_lora_targets_t *targets)
{
    if (!pool || !be || !targets) return NULL;
    lf_lora_patch_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->pool = pool, p->be = be, p->targets = targets;
    p->keep_bytes = SIZE_MAX;
    return p;
}

int lf_lora_patch_set_origin(lf_lora_patch_t *self, lf_origin_t *origin, size_t keep_bytes)
{
    if (!self || self->n_saved) return LF_EINVAL;
    self->origin = origin;
    self->keep_bytes = origin ? keep_bytes : SIZE_MAX;
    return 0;
}

int lf_lora_patch_add_pool(lf_lora_patch_t *self, const char *name_prefix, lf_pool_t *pool,
                           const char *pool_prefix)
{
    if (!self || !name_prefix || !*name_prefix || !pool || !pool_prefix) return LF_EINVAL;
    if (self->n_maps == S_MAX_POOLS) return LF_ETOOBIG;
    s_pool_map_t *m = &self->maps[self->n_maps];
    if (snprintf(m->prefix, sizeof m->prefix, "%s", name_prefix) >= (int)sizeof m->prefix ||
        snprintf(m->pool_prefix, sizeof m->pool_prefix, "%s", pool_prefix) >=
            (int)sizeof m->pool_prefix)
        return LF_ETOOBIG;
    m->pool = pool;
    self->n_maps++;
    return 0;
}

/* The tensor a target name means, through the pool maps; NULL if none. */
static lf_tensor_t *s_tensor(lf_lora_patch_t *p, const char *name)
{
    for (int i = 0; i < p->n_maps; i++) {
        size_t l = strlen(p->maps[i].prefix);
        if (strncmp(name, p->maps[i].prefix, l) == 0) {
            char n[LF_LORA_NAME_MAX + 32];
            snprintf(n, sizeof n, "%s%s", p->maps[i].pool_prefix, name + l);
            return lf_pool_find(p->maps[i].pool, n);
        }
    }
    return lf_pool_find(p->pool, name);
}

static void s_forget(lf_lora_patch_t *p)
{
    for (size_t i = 0; i < p->n_saved; i++) free(p->saved[i].orig);
    p->n_saved = 0;
    p->saved_bytes = 0;
    free(p->key);
    free(p->warnings);
    p->key = p->warnings = NULL;
}

void lf_lora_patch_destroy(lf_lora_patch_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_lora_patch_t *p = *self_p;
    s_forget(p);
    free(p->saved);
    free(p);
    *self_p = NULL;
}

size_t lf_lora_patch_layers(const lf_lora_patch_t *self) { return self ? self->n_saved : 0; }
size_t lf_lora_patch_saved_bytes(const lf_lora_patch_t *self)
{
    return self ? self->saved_bytes : 0;
}

/* Writes the plain bytes of a changed tensor back: its copy, or its file. */
static int s_put_back(lf_lora_patch_t *p, const s_saved_t *s, char *err, size_t errlen)
{
    const void *b = s->orig;
    int rc = b ? 0 : lf_origin_read(p->origin, s->t, &b, err, errlen);
    return rc ? rc : lf_backend_tensor_set(p->be, s->t, b, lf_tensor_nbytes(s->t));
}

static size_t s_kept_bytes(const s_saved_t *s)
{
    return s->orig ? lf_tensor_nbytes(s->t) : 0;
}

int lf_lora_patch_restore(lf_lora_patch_t *self)
{
    if (!self) return LF_EINVAL;
    /* Newest first, so that a tensor saved twice (never, but cheap to be
     * safe about) ends with its first, true original. */
    int rc = 0;
    for (size_t i = self->n_saved; i-- > 0 && !rc;) {
        s_saved_t *s = &self->saved[i];
        rc = s_put_back(self, s, NULL, 0);
        if (rc) break;
        self->saved_bytes -= s_kept_bytes(s);
        free(s->orig);
        s->orig = NULL;
        self->n_saved = i;
    }
    lf_origin_release(self->origin);
    if (!rc) s_forget(self);
    return rc;
}

/* The set's identity: each file's path and stat identity (a file replaced
 * in place under the same name is another LoRA) and its multipliers. */
static int s_key(const lf_lora_use_t *uses, size_t n, char **out, char *err, size_t errlen)
{
    size_t cap = 1, len = 0;
    for (size_t i = 0; i < n; i++) cap += strlen(uses[i].path) + 160;
    char *k = malloc(cap);
    if (!k) return LF_ENOMEM;
    k[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(uses[i].path, &sb) != 0) {
            int e = errno;
            free(k);
            return s_err(err, errlen, LF_EIO, "%s: cannot open: %s", uses[i].path, strerror(e));
        }
        len += (size_t)snprintf(k + len, cap - len, "%s|%llu:%llu:%lld:%lld.%09ld|%.17g|%.17g\n",
                                uses[i].path, (unsigned long long)sb.st_dev,
                                (unsigned long long)sb.st_ino, (long long)sb.st_size,
                                (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec,
                                uses[i].unet_weight, uses[i].te_weight);
    }
    *out = k;
    return 0;
}

/* Appends "name: tensor (reason)" lines of l's unmatched tensors to *w. */
static int s_warn(char **w, size_t *len, const char *name, const lf_lora_t *l)
{
    for (size_t i = 0; i < lf_lora_unmatched_count(l); i++) {
        const char *t = lf_lora_unmatched_name(l, i), *r = lf_lora_unmatched_reason(l, i);
        size_t add = strlen(name) + strlen(t) + strlen(r) + 8;
        char *nw = realloc(*w, *len + add + 1);
        if (!nw) return LF_ENOMEM;
        *w = nw;
        *len += (size_t)snprintf(nw + *len, add + 1, "%s%s: %s (%s)", *len ? "; " : "", name, t, r);
    }
    return 0;
}

/* Before t's first change: remembers it, with a copy of its plain bytes
 * unless the origin can give them again and the copies reached the cap. */
static int s_keep(lf_lora_patch_t *p, lf_tensor_t *t, const void *bytes)
{
    if (p->n_saved == p->cap_saved) {
        size_t cap = p->cap_saved ? p->cap_saved * 2 : 64;
        s_saved_t *s = realloc(p->saved, cap * sizeof *s);
        if (!s) return LF_ENOMEM;
        p->saved = s, p->cap_saved = cap;
    }
    size_t nb = lf_tensor_nbytes(t);
    void *c = NULL;
    if (!p->origin || p->saved_bytes + nb <= p->keep_bytes || !lf_origin_has(p->origin, t)) {
        if (!(c = malloc(nb))) return LF_ENOMEM;
        memcpy(c, bytes, nb);
        p->saved_bytes += nb;
    }
    p->saved[p->n_saved++] = (s_saved_t){.t = t, .orig = c, .used = 1};
    return 0;
}

/* The plain bytes of t: its copy, its file, or, never changed yet, the
 * pool's own (in place on a host backend, read back into scratch from a
 * device). */
static int s_plain(lf_lora_patch_t *p, lf_tensor_t *t, const s_saved_t *kept, void *scratch,
                   const void **out, char *err, size_t errlen)
{
    if (kept && kept->orig) {
        *out = kept->orig;
        return 0;
    }
    if (kept) return lf_origin_read(p->origin, t, out, err, errlen);
    if (lf_backend_is_host(p->be)) {
        *out = t->data;
        return 0;
    }
    *out = scratch;
    return lf_backend_tensor_get(p->be, t, scratch, lf_tensor_nbytes(t));
}

/* The kept original of tensor t, or NULL. */
static s_saved_t *s_find_saved(lf_lora_patch_t *p, const lf_tensor_t *t)
{
    for (size_t i = 0; i < p->n_saved; i++)
        if (p->saved[i].t == t) return &p->saved[i];
    return NULL;
}

typedef struct {
    const lf_lora_t *l;
    size_t at;      /* layer index in l */
    double weight;
    const char *name;
    int64_t offset; /* first element of the layer in the tensor (a slice's row0 · columns) */
    int64_t numel;  /* the layer's elements */
} s_part_t;

/* Whether part pt's ΔW is a plain low-rank product the backend multiplies
 * (a weight, LoRA without a Tucker core, host memory). */
static int s_lowrank(const lf_lora_patch_t *p, const s_part_t *pt, int bias)
{
    const lf_lora_layer_t *y = lf_lora_at(pt->l, pt->at);
    return !bias && y->kind == LF_LORA_KIND_LORA && !y->tucker && y->rank > 0 &&
           lf_backend_is_host(p->be);
}

/* The first element of n that is Inf or NaN in type, or -1. */
static int64_t s_bad_at(lf_type_t type, const void *data, int64_t n)
{
    if (type == LF_TYPE_F32) {
        const float *f = data;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(f[i])) return i;
        return -1;
    }
    /* 16-bit values, four to a word: a lane whose exponent bits are all
     * set is Inf or NaN; (v - 1) & ~v & 0x8000 per lane finds a zero lane
     * of v = (x & M) ^ M. */
    const uint16_t *h = data, m = type == LF_TYPE_F16 ? 0x7C00 : 0x7F80;
    const uint64_t M = m * 0x0001000100010001ULL, one = 0x0001000100010001ULL,
                   top = 0x8000800080008000ULL;
    uint64_t any = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t x;
        memcpy(&x, h + i, sizeof x);
        const uint64_t v = (x & M) ^ M;
        any |= (v - one) & ~v & top;
    }
    for (; i < n; i++) any |= (h[i] & m) == m;
    if (!any) return -1;
    for (i = 0; i < n; i++)
        if ((h[i] & m) == m) return i;
    return -1;
}

/* Σ weight · ΔW of the group's networks that are not plain low-rank (e[0..numel)),
 * 0 when none (e untouched). */
static int s_other_deltas(lf_lora_patch_t *p, const s_part_t *g, size_t ng, int bias, float *e,
                          float *d, int *any, char *err, size_t errlen)
{
    *any = 0;
    for (size_t k = 0; k < ng; k++) {
        if (s_lowrank(p, &g[k], bias)) continue;
        int rc = bias ? lf_lora_delta_bias(g[k].l, g[k].at, d, err, errlen)
                      : lf_lora_delta(g[k].l, g[k].at, d, err, errlen);
        if (rc) return rc;
        if (!*any) memset(e, 0, (size_t)g[k].numel * sizeof *e);
        *any = 1;
        const float w = (float)g[k].weight;
        for (int64_t i = 0; i < g[k].numel; i++) e[i] += w * d[i];
    }
    return 0;
}

/* The group's plain low-rank factors side by side, each weight folded into
 * its up: ΔW = up[rows × R] · down[R × cols], R the sum of the ranks (0
 * when none; *up / *down then NULL). Caller frees. */
static int s_stack_factors(lf_lora_patch_t *p, const s_part_t *g, size_t ng, int bias,
                           int64_t rows, int64_t cols, float **up_out, float **down_out,
                           int64_t *r_out)
{
    int64_t R = 0, rmax = 0;
    for (size_t k = 0; k < ng; k++)
        if (s_lowrank(p, &g[k], bias)) {
            int64_t r = lf_lora_at(g[k].l, g[k].at)->rank;
            R += r;
            if (r > rmax) rmax = r;
        }
    *up_out = *down_out = NULL, *r_out = R;
    if (!R) return 0;
    float *up = malloc((size_t)(rows * R) * sizeof *up), *down = malloc((size_t)(R * cols) * sizeof *down);
    float *uk = malloc((size_t)(rows * rmax) * sizeof *uk);
    int rc = up && down && uk ? 0 : LF_ENOMEM;
    for (size_t k = 0, r0 = 0; k < ng && !rc; k++) {
        if (!s_lowrank(p, &g[k], bias)) continue;
        const int64_t r = lf_lora_at(g[k].l, g[k].at)->rank;
        rc = lf_lora_lowrank(g[k].l, g[k].at, uk, down + r0 * cols);
        const float w = (float)g[k].weight;
        for (int64_t o = 0; o < rows && !rc; o++)
            for (int64_t j = 0; j < r; j++) up[o * R + (int64_t)r0 + j] = w * uk[o * r + j];
        r0 += (size_t)r;
    }
    free(uk);
    if (rc) {
        free(up), free(down);
        return rc;
    }
    *up_out = up, *down_out = down;
    return 0;
}

/* The merged value at element i of group g that does not fit: its ΔW
 * (the low-rank sum plus the other networks') for the message. */
static int s_overflow(const lf_tensor_t *t, const s_part_t *g, const void *dst, int64_t n, int64_t first,
                      int64_t cols, const float *up, const float *down, int64_t R, const float *e,
                      char *err, size_t errlen)
{
    int64_t bad = s_bad_at(t->type, dst, n);
    double d = 0;
    if (bad >= 0) {
        const int64_t row = bad / cols, col = bad % cols;
        for (int64_t k = 0; k < R; k++) d += (double)up[row * R + k] * down[k * cols + col];
        if (e) d += e[bad];
    }
    return s_err(err, errlen, LF_EFORMAT, "%s: layer %s: the merged weight [%lld] does not fit in %s (ΔW %g)",
                 g->name, t->name, (long long)(first * cols + (bad > 0 ? bad : 0)), lf_type_name(t->type), d);
}

/* The merge on a host backend, written straight into t, a slice (a group
 * of parts) at a time: t[rows] = w0 + Σ weight · ΔW. The plain low-rank
 * parts are one ADD_LOWRANK of their stacked factors (product, add of w0,
 * rounding to t's type and the Inf/NaN check in one pass, over the
 * backend's threads), the other networks' ΔW (computed in f32) its extra
 * term; a slice of other networks only is one ADD. w0 may be t's own bytes
 * (a first merge). */
static int s_merge_host(lf_lora_patch_t *p, lf_tensor_t *t, const void *w0, int dirty, int bias,
                        int64_t cols, const s_part_t *parts, size_t np, float *e, float *d,
                        char *err, size_t errlen)
{
    const size_t es = lf_type_size(t->type);
    const int64_t rows_t = lf_tensor_nelements(t) / cols;
    int64_t covered = 0;
    for (size_t i = 0; i < np; i++)
        if (i == 0 || parts[i].offset != parts[i - 1].offset) covered += parts[i].numel / cols;
    /* A packed tensor merged only in part: its other rows go back first. */
    int rc = dirty && covered < rows_t
                 ? lf_backend_tensor_set(p->be, t, w0, lf_tensor_nbytes(t))
                 : 0;
    for (size_t i = 0; i < np && !rc;) {
        size_t ng = 1; /* a group: the parts of one slice */
        while (i + ng < np && parts[i + ng].offset == parts[i].offset) ng++;
        const s_part_t *g = &parts[i];
        const int64_t rows = g->numel / cols, first = g->offset / cols, n = rows * cols;
        int other = 0;
        int64_t R = 0;
        float *up = NULL, *down = NULL;
        rc = s_other_deltas(p, g, ng, bias, e, d, &other, err, errlen);
        if (!rc) rc = s_stack_factors(p, g, ng, bias, rows, cols, &up, &down, &R);
        const size_t at = (size_t)(first * cols) * es;
        /* Rows of a few values (a bias) are added as one long row. */
        const int64_t ne[2] = {cols >= 64 || R ? cols : n, cols >= 64 || R ? rows : 1};
        lf_tensor_t dst = lf_tensor_make(t->type, 2, ne, (char *)t->data + at);
        lf_tensor_t a = lf_tensor_make(t->type, 2, ne, (char *)w0 + at);
        lf_tensor_t de = lf_tensor_make(LF_TYPE_F32, 2, ne, e);
        if (!rc && R) {
            lf_tensor_t u = lf_tensor_make(LF_TYPE_F32, 2, (const int64_t[]){R, rows}, up);
            lf_tensor_t v = lf_tensor_make(LF_TYPE_F32, 2, (const int64_t[]){cols, R}, down);
            rc = lf_op_add_lowrank(p->be, &dst, &a, &u, &v, other ? &de : NULL);
        } else if (!rc) {
            rc = lf_op_add(p->be, &dst, &a, &de);
            if (!rc && s_bad_at(t->type, dst.data, n) >= 0) rc = LF_EOVERFLOW;
        }
        if (rc == LF_EOVERFLOW)
            rc = s_overflow(t, g, dst.data, n, first, cols, up, down, R, other ? e : NULL, err, errlen);
        free(up), free(down);
        if (rc && err && errlen && !err[0])
            s_err(err, errlen, rc, "%s: layer %s: %s", g->name, t->name, lf_strerror(rc));
        i += ng;
    }
    return rc;
}

/* Merges the contributions parts[0..np) into the tensor named tname (the
 * layers' weight, or their bias when bias), which must hold numel elements
 * in rows of cols; each part covers [offset, offset + numel) of it (slices
 * of a packed tensor side by side, in order, or the whole tensor).
 * bytes/f/d: scratch of at least numel elements (bytes of the largest type
 * size). */
static int s_merge(lf_lora_patch_t *p, const char *tname, int bias, int64_t numel, int64_t cols,
                   const s_part_t *parts, size_t np, void *bytes, float *f, float *d, char *err,
                   size_t errlen)
{
    lf_tensor_t *t = s_tensor(p, tname);
    if (!t)
        return s_err(err, errlen, LF_EFORMAT, "%s: layer %s: the model has no such tensor",
                     parts[0].name, tname);
    if (lf_tensor_nelements(t) != numel || !lf_tensor_is_contiguous(t))
        return s_err(err, errlen, LF_EFORMAT,
                     "%s: layer %s: %lld values in the LoRA, %lld in the model", parts[0].name,
                     tname, (long long)numel, (long long)lf_tensor_nelements(t));
    if (lf_type_is_quant(t->type) && !lf_quant_can_quantize((lf_quant_type_t)(t->type - LF_TYPE_Q4_0)))
        return s_err(err, errlen, LF_EUNSUPPORTED, "%s: layer %s: the model holds it as %s, which has no quantizer "
                     "to store a merge in", parts[0].name, tname, lf_type_name(t->type));
    /* W0: kept from the previous set (a switch), read from the file again,
     * or the pool's own. */
    s_saved_t *kept = s_find_saved(p, t);
    const void *w0 = NULL;
    int rc = s_plain(p, t, kept, bytes, &w0, err, errlen);
    if (rc && (!err || !err[0]))
        return s_err(err, errlen, rc, "layer %s: cannot read it back: %s", tname, lf_strerror(rc));
    if (rc) return rc; /* the origin named the file */
    if (kept)
        kept->used = 1;
    else if ((rc = s_keep(p, t, w0)))
        return s_err(err, errlen, rc, "out of memory keeping layer %s", tname);
    /* Block-quantized weights go the f32 way below (the op table's ADD takes no block types). */
    if (lf_backend_is_host(p->be) && !lf_type_is_quant(t->type))
    {
        /* Written in place by eager ops: the backend's pre-packed copy of the
         * layer is out of date. */
        rc = s_merge_host(p, t, w0, kept != NULL, bias, cols, parts, np, f, d, err, errlen);
        lf_backend_forget(p->be, t->data, lf_tensor_nbytes(t));
        return rc;
    }
    /* A device: merged on the host in f32, written back whole. */
    lf_type_to_f32(t->type, w0, f, numel);
    for (size_t k = 0; k < np; k++) {
        rc = bias ? lf_lora_delta_bias(parts[k].l, parts[k].at, d, err, errlen)
                  : lf_lora_delta(parts[k].l, parts[k].at, d, err, errlen);
        if (rc) return rc;
        const float w = (float)parts[k].weight;
        float *fo = f + parts[k].offset;
        for (int64_t i = 0; i < parts[k].numel; i++) fo[i] += w * d[i];
    }
    /* Block types: the merge's f32 values are what must be finite (a block
     * holds scales and packed integers, not floats per weight). */
    const int quant = lf_type_is_quant(t->type);
    int64_t bad = quant ? s_bad_at(LF_TYPE_F32, f, numel) : -1;
    lf_type_from_f32(t->type, f, bytes, numel);
    if (!quant) bad = s_bad_at(t->type, bytes, numel);
    if (bad >= 0)
        return s_err(err, errlen, LF_EFORMAT,
                     "%s: layer %s: the merged weight [%lld] = %g does not fit in %s",
                     parts[0].name, tname, (long long)bad, f[bad], lf_type_name(t->type));
    rc = lf_backend_tensor_set(p->be, t, bytes, lf_tensor_nbytes(t));
    if (rc) return s_err(err, errlen, rc, "layer %s: cannot write it: %s", tname, lf_strerror(rc));
    return 0;
}

static int64_t s_numel(const lf_lora_target_t *g)
{
    int64_t n = 1;
    for (int i = 0; i < g->ndim; i++) n *= g->shape[i];
    return n;
}

/* The index of l's layer for target tg, or lf_lora_count(l). */
static size_t s_layer_of(const lf_lora_t *l, const lf_lora_target_t *tg)
{
    size_t i = 0, n = lf_lora_count(l);
    while (i < n && lf_lora_at(l, i)->target != tg) i++;
    return i;
}

/* After a switch: writes back the originals the new set did not merge and
 * forgets them. */
static int s_drop_unused(lf_lora_patch_t *p, char *err, size_t errlen)
{
    size_t k = 0;
    for (size_t i = 0; i < p->n_saved; i++) {
        s_saved_t *s = &p->saved[i];
        if (!s->used) {
            int rc = s_put_back(p, s, err, errlen);
            if (rc) {
                /* Keep the rest for a later restore. */
                memmove(&p->saved[k], &p->saved[i], (p->n_saved - i) * sizeof *p->saved);
                p->n_saved = k + (p->n_saved - i);
                return rc;
            }
            p->saved_bytes -= s_kept_bytes(s);
            free(s->orig);
            continue;
        }
        p->saved[k++] = *s;
    }
    p->n_saved = k;
    return 0;
}

/* Merges every layer of the opened files. */
static int s_apply(lf_lora_patch_t *p, lf_lora_t *const *ls, const lf_lora_use_t *uses, size_t n,
                   char *err, size_t errlen)
{
    /* Scratch for the largest tensor touched (a packed tensor is three of
     * its slices), and a part per LoRA and slice. */
    int64_t maxn = 0;
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < lf_lora_count(ls[k]); i++) {
            const lf_lora_layer_t *y = lf_lora_at(ls[k], i);
            int64_t t = y->target->tensor_rows
                            ? y->target->tensor_rows * (y->numel / y->target->shape[0])
                            : y->numel;
            if (t > maxn) maxn = t;
        }
    s_part_t *parts = malloc((n ? 3 * n : 1) * sizeof *parts);
    void *bytes = malloc((size_t)(maxn ? maxn : 1) * sizeof(float));
    float *f = malloc((size_t)(maxn ? maxn : 1) * sizeof *f);
    float *d = malloc((size_t)(maxn ? maxn : 1) * sizeof *d);
    int rc = parts && bytes && f && d ? 0 : LF_ENOMEM;
    size_t nt = lf_lora_targets_count(p->targets);
    for (size_t ti = 0; ti < nt && !rc;) {
        /* One tensor: a target, or the consecutive slices of a packed one. */
        const lf_lora_target_t *tg = lf_lora_targets_at(p->targets, ti);
        size_t tn = 1;
        while (tg->tensor_rows && ti + tn < nt &&
               strcmp(lf_lora_targets_at(p->targets, ti + tn)->name, tg->name) == 0)
            tn++;
        for (int bias = 0; bias < 2 && !rc; bias++) {
            size_t np = 0;
            int64_t rows = tg->tensor_rows ? tg->tensor_rows : tg->shape[0];
            int64_t numel = bias ? rows : rows * (s_numel(tg) / tg->shape[0]);
            for (size_t j = 0; j < tn; j++) {
                const lf_lora_target_t *sg = lf_lora_targets_at(p->targets, ti + j);
                int64_t cols = bias ? 1 : s_numel(sg) / sg->shape[0];
                for (size_t k = 0; k < n; k++) {
                    size_t at = s_layer_of(ls[k], sg);
                    const lf_lora_layer_t *y = lf_lora_at(ls[k], at);
                    if (!y || !(bias ? y->has_bias : y->has_weight)) continue;
                    double w =
                        sg->part == LF_LORA_PART_TE ? uses[k].te_weight : uses[k].unet_weight;
                    if (w == 0.0) continue;
                    parts[np++] = (s_part_t){.l = ls[k], .at = at, .weight = w,
                                             .name = uses[k].name ? uses[k].name : uses[k].path,
                                             .offset = sg->row0 * cols,
                                             .numel = bias ? sg->shape[0] : y->numel};
                }
            }
            if (np)
                rc = s_merge(p, bias ? tg->bias : tg->name, bias, numel, bias ? 1 : numel / rows,
                             parts, np, bytes, f, d, err, errlen);
        }
        ti += tn;
    }
    if (rc == LF_ENOMEM && err && errlen && !err[0]) s_err(err, errlen, rc, "out of memory");
    free(parts), free(bytes), free(f), free(d);
    return rc;
}

int lf_lora_patch_set(lf_lora_patch_t *self, const lf_lora_use_t *uses, size_t n,
                      lf_lora_patch_info_t *info, char *err, size_t errlen)
{
    if (!self || (n && !uses)) return LF_EINVAL;
    if (err && errlen) err[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!uses[i].path) return s_err(err, errlen, LF_EINVAL, "LoRA %zu has no file", i);
        if (!isfinite(uses[i].unet_weight) || !isfinite(uses[i].te_weight))
            return s_err(err, errlen, LF_EINVAL, "%s: the multiplier is not a finite number",
                         uses[i].name ? uses[i].name : uses[i].path);
    }
    char *key = NULL;
    int rc = n ? s_key(uses, n, &key, err, errlen) : 0;
    if (!rc && ((!key && !self->key) || (key && self->key && strcmp(key, self->key) == 0))) {
        /* The resident weights are this set's already. */
        char *w = self->warnings ? strdup(self->warnings) : NULL;
        free(key);
        if (self->warnings && !w) return s_err(err, errlen, LF_ENOMEM, "out of memory");
        if (info)
            *info = (lf_lora_patch_info_t){.reused = 1, .layers = self->n_saved,
                                           .saved_bytes = self->saved_bytes, .warnings = w};
        else
            free(w);
        return 0;
    }
    /* Open every file before touching the weights: a bad file costs no
     * restore-and-reapply of the good ones. */
    lf_lora_t **ls = calloc(n ? n : 1, sizeof *ls);
    char *warn = NULL;
    size_t wlen = 0;
    if (!rc && !ls) rc = s_err(err, errlen, LF_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        rc = lf_lora_open(&ls[i], uses[i].path, self->targets, err, errlen);
        if (!rc) rc = s_warn(&warn, &wlen, uses[i].name ? uses[i].name : uses[i].path, ls[i]);
    }
    /* A switch merges each layer from its kept original (W = W0 + Σ w ΔW,
     * never from the previous set's W) and writes back only the originals
     * of layers the new set leaves alone. */
    for (size_t i = 0; i < self->n_saved; i++) self->saved[i].used = 0;
    free(self->key);
    free(self->warnings);
    self->key = self->warnings = NULL;
    if (!rc) rc = s_apply(self, ls, uses, n, err, errlen);
    if (!rc) {
        int rr = s_drop_unused(self, err, errlen);
        if (rr) rc = s_err(err, errlen, rr, "cannot restore the model's weights: %s", lf_strerror(rr));
    }
    if (rc) {
        lf_lora_patch_restore(self);
        free(key);
        free(warn);
    } else {
        self->key = key;
        self->warnings = warn;
        char *w = warn ? strdup(warn) : NULL;
        if (info)
            *info = (lf_lora_patch_info_t){.reused = 0, .layers = self->n_saved,
                                           .saved_bytes = self->saved_bytes, .warnings = w};
        else
            free(w);
    }
    lf_origin_release(self->origin);
    for (size_t i = 0; ls && i < n; i++) lf_lora_destroy(&ls[i]);
    free(ls);
    return rc;
}
