/* lf_gguf: GGUF validation over a memory buffer (a bounds-checked cursor:
 * every read says how many bytes it needs first) and an mmap layer over it. */
#include "lf_gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_error.h"

typedef struct {
    char *key;
    lf_gguf_vtype_t type;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num;
    char *str;             /* LF_GGUF_STRING */
    lf_gguf_vtype_t etype; /* LF_GGUF_ARRAY */
    uint64_t count;
    const void *adata;     /* scalar arrays: borrowed from the buffer */
    char **astr;           /* string arrays: copies */
} s_kv_t;

struct lf_gguf {
    uint32_t version;
    size_t alignment, data_off;
    lf_tensor_info_t *tensors; /* sorted by name */
    size_t count;
    s_kv_t *kv;
    size_t n_kv;
    void *map; /* mmap'd file, or NULL when parsing a borrowed buffer */
    size_t map_len;
};

/* A read cursor over the buffer. */
typedef struct {
    const unsigned char *p;
    size_t len, pos;
} s_cur_t;

static int s_need(const s_cur_t *c, uint64_t n)
{
    return n <= c->len - c->pos;
}

static uint64_t s_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Reads an n-byte little-endian integer; -1 when the buffer ends first. */
static int s_rd(s_cur_t *c, int n, uint64_t *out)
{
    if (!s_need(c, (uint64_t)n)) return -1;
    *out = s_le(c->p + c->pos, n);
    c->pos += (size_t)n;
    return 0;
}

/* Reads a string (u64 length + bytes) as a new NUL-terminated copy when
 * out is not NULL (a NUL inside cuts it there). 0, -1 (truncated or too
 * long: *why says which), or LF_ENOMEM. */
static int s_rd_str(s_cur_t *c, uint64_t max, char **out, const char **why)
{
    uint64_t n;
    if (s_rd(c, 8, &n) != 0) return *why = "truncated string length", -1;
    if (!s_need(c, n)) return *why = "string runs past the end of the file", -1;
    if (n > max) return *why = "string longer than the limit", -1;
    if (out) {
        char *s = malloc((size_t)n + 1);
        if (!s) return LF_ENOMEM;
        memcpy(s, c->p + c->pos, (size_t)n);
        s[n] = '\0';
        *out = s;
    }
    c->pos += (size_t)n;
    return 0;
}

static int s_scalar_size(uint32_t t)
{
    switch (t) {
    case LF_GGUF_U8: case LF_GGUF_I8: case LF_GGUF_BOOL: return 1;
    case LF_GGUF_U16: case LF_GGUF_I16: return 2;
    case LF_GGUF_U32: case LF_GGUF_I32: case LF_GGUF_F32: return 4;
    case LF_GGUF_U64: case LF_GGUF_I64: case LF_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Decodes a scalar of type t at p into kv->num. */
static void s_set_num(s_kv_t *kv, uint32_t t, const unsigned char *p)
{
    uint64_t u = s_le(p, s_scalar_size(t));
    switch (t) {
    case LF_GGUF_I8: kv->num.i = (int8_t)u; break;
    case LF_GGUF_I16: kv->num.i = (int16_t)u; break;
    case LF_GGUF_I32: kv->num.i = (int32_t)u; break;
    case LF_GGUF_I64: kv->num.i = (int64_t)u; break;
    case LF_GGUF_F32: {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        kv->num.f = f;
        break;
    }
    case LF_GGUF_F64: memcpy(&kv->num.f, &u, 8); break;
    default: kv->num.u = u; break;
    }
}

/* Skips an array's elements (validating nested ones), depth levels deep. */
static int s_skip_array(s_cur_t *c, uint32_t et, uint64_t n, int depth, const char **why)
{
    if (et == LF_GGUF_STRING) {
        if (n > (c->len - c->pos) / 8) return *why = "array count exceeds the file", -1;
        for (uint64_t j = 0; j < n; j++)
            if (s_rd_str(c, c->len, NULL, why) != 0) return -1;
        return 0;
    }
    if (et == LF_GGUF_ARRAY) {
        if (depth >= LF_GGUF_MAX_NESTING) return *why = "arrays nested too deeply", -1;
        if (n > (c->len - c->pos) / 12) return *why = "array count exceeds the file", -1;
        for (uint64_t j = 0; j < n; j++) {
            uint64_t t2, n2;
            if (s_rd(c, 4, &t2) != 0 || s_rd(c, 8, &n2) != 0) return *why = "truncated nested array", -1;
            if (t2 >= LF_GGUF_VTYPE_COUNT) return *why = "unknown nested array element type", -1;
            if (s_skip_array(c, (uint32_t)t2, n2, depth + 1, why) != 0) return -1;
        }
        return 0;
    }
    int es = s_scalar_size(et);
    if (!es) return *why = "unknown array element type", -1;
    if (n > (c->len - c->pos) / (uint64_t)es) return *why = "array runs past the end of the file", -1;
    c->pos += (size_t)n * (size_t)es;
    return 0;
}

/* One key/value. Returns 0, LF_EFORMAT or LF_ENOMEM (message written). */
static int s_parse_kv(lf_tensor_err_t *e, s_cur_t *c, size_t idx, s_kv_t *kv)
{
    const char *why = NULL;
    int rc = s_rd_str(c, LF_GGUF_MAX_NAME, &kv->key, &why);
    if (rc == LF_ENOMEM) return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
    if (rc) return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata key %zu: %s", idx, why);
    uint64_t t;
    if (s_rd(c, 4, &t) != 0)
        return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata '%s': truncated value type", kv->key);
    if (t >= LF_GGUF_VTYPE_COUNT)
        return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata '%s': unknown value type %llu", kv->key,
                              (unsigned long long)t);
    kv->type = (lf_gguf_vtype_t)t;
    if (t == LF_GGUF_STRING) {
        rc = s_rd_str(c, c->len, &kv->str, &why);
        if (rc == LF_ENOMEM) return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
        if (rc) return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata '%s': %s", kv->key, why);
        return 0;
    }
    if (t == LF_GGUF_ARRAY) {
        uint64_t et, n;
        if (s_rd(c, 4, &et) != 0 || s_rd(c, 8, &n) != 0)
            return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata '%s': truncated array header", kv->key);
        if (et >= LF_GGUF_VTYPE_COUNT)
            return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata '%s': unknown array element type %llu",
                                  kv->key, (unsigned long long)et);
        kv->etype = (lf_gguf_vtype_t)et;
        kv->count = n;
        size_t start = c->pos;
        if (s_skip_array(c, (uint32_t)et, n, 1, &why) != 0)
            return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata '%s': %s", kv->key, why);
        kv->adata = c->p + start;
        if (et == LF_GGUF_STRING) {
            /* Validated above: every element is in bounds. */
            s_cur_t c2 = {c->p, c->len, start};
            if (!(kv->astr = calloc(n ? (size_t)n : 1, sizeof *kv->astr)))
                return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
            for (uint64_t j = 0; j < n; j++)
                if (s_rd_str(&c2, c->len, &kv->astr[j], &why) != 0)
                    return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
        }
        return 0;
    }
    int es = s_scalar_size((uint32_t)t);
    if (!s_need(c, (uint64_t)es))
        return lf_tensor_fail(e, LF_EFORMAT, NULL, "metadata '%s': truncated value", kv->key);
    s_set_num(kv, (uint32_t)t, c->p + c->pos);
    c->pos += (size_t)es;
    return 0;
}

static void s_free(lf_gguf_t *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->count; i++) free((char *)g->tensors[i].name);
    free(g->tensors);
    for (size_t i = 0; i < g->n_kv; i++) {
        s_kv_t *kv = &g->kv[i];
        free(kv->key);
        free(kv->str);
        if (kv->astr)
            for (uint64_t j = 0; j < kv->count; j++) free(kv->astr[j]);
        free(kv->astr);
    }
    free(g->kv);
    if (g->map) munmap(g->map, g->map_len);
    free(g);
}

static int s_cmp_name(const void *a, const void *b)
{
    return strcmp(((const lf_tensor_info_t *)a)->name, ((const lf_tensor_info_t *)b)->name);
}

static int s_cmp_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ggml type ids -> dtypes; -1 = not a type at all, -2 = a ggml type this
 * reader does not decode. */
static int s_ggml_type(uint64_t id, lf_dtype_t *out)
{
    static const int map[] = {
        [0] = LF_DTYPE_F32,   [1] = LF_DTYPE_F16,   [2] = LF_DTYPE_Q4_0,  [3] = LF_DTYPE_Q4_1,
        [4] = -2,             [5] = -2,             [6] = LF_DTYPE_Q5_0,  [7] = LF_DTYPE_Q5_1,
        [8] = LF_DTYPE_Q8_0,  [9] = -2,             [10] = -2,            [11] = -2,
        [12] = LF_DTYPE_Q4_K, [13] = LF_DTYPE_Q5_K, [14] = LF_DTYPE_Q6_K, [15] = LF_DTYPE_Q8_K,
        [16] = -2, [17] = -2, [18] = -2, [19] = -2, [20] = -2, [21] = -2, [22] = -2, [23] = -2,
        [24] = LF_DTYPE_I8,   [25] = LF_DTYPE_I16,  [26] = LF_DTYPE_I32,  [27] = LF_DTYPE_I64,
        [28] = LF_DTYPE_F64,  [29] = -2,            [30] = LF_DTYPE_BF16,
    };
    /* Ids 4 and 5 (old Q4_2/Q4_3) were removed from ggml: refuse them as unknown. */
    if (id >= sizeof map / sizeof map[0] || id == 4 || id == 5) return -1;
    if (map[id] < 0) return map[id];
    *out = (lf_dtype_t)map[id];
    return 0;
}

typedef struct {
    uint64_t begin, end;
    size_t idx;
} s_span_t;

static int s_cmp_span(const void *a, const void *b)
{
    const s_span_t *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* One tensor info: name, dims, type, offset (checked against the data area
 * later, once its start is known). */
static int s_parse_tensor(lf_tensor_err_t *e, s_cur_t *c, size_t idx, lf_tensor_info_t *t, uint64_t *off)
{
    const char *why = NULL;
    char *name = NULL;
    int rc = s_rd_str(c, LF_GGUF_MAX_NAME, &name, &why);
    if (rc == LF_ENOMEM) return lf_tensor_fail(e, LF_ENOMEM, NULL, "out of memory");
    if (rc) return lf_tensor_fail(e, LF_EFORMAT, NULL, "tensor info %zu: %s", idx, why);
    t->name = name;
    uint64_t nd, ty;
    if (s_rd(c, 4, &nd) != 0) return lf_tensor_fail(e, LF_EFORMAT, name, "truncated tensor info");
    if (nd > LF_GGUF_MAX_DIMS)
        return lf_tensor_fail(e, LF_EFORMAT, name, "%llu dimensions (at most %d)", (unsigned long long)nd,
                              LF_GGUF_MAX_DIMS);
    uint64_t ne[LF_GGUF_MAX_DIMS] = {0}, numel = 1;
    for (uint64_t i = 0; i < nd; i++) {
        if (s_rd(c, 8, &ne[i]) != 0) return lf_tensor_fail(e, LF_EFORMAT, name, "truncated dimensions");
        if (ne[i] > INT64_MAX || (ne[i] != 0 && numel > (uint64_t)INT64_MAX / ne[i]))
            return lf_tensor_fail(e, LF_EFORMAT, name, "shape overflows");
        numel *= ne[i];
    }
    if (s_rd(c, 4, &ty) != 0 || s_rd(c, 8, off) != 0)
        return lf_tensor_fail(e, LF_EFORMAT, name, "truncated tensor info");
    int k = s_ggml_type(ty, &t->dtype);
    if (k == -1) return lf_tensor_fail(e, LF_EFORMAT, name, "unknown ggml type %llu", (unsigned long long)ty);
    if (k == -2)
        return lf_tensor_fail(e, LF_EUNSUPPORTED, name, "ggml type %llu is not supported (F32, F16, BF16, "
                              "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, Q8_K are)", (unsigned long long)ty);
    uint64_t blck = lf_dtype_block(t->dtype), bb = lf_dtype_block_bytes(t->dtype);
    if (nd > 0 && ne[0] % blck != 0)
        return lf_tensor_fail(e, LF_EFORMAT, name, "row of %llu elements is not a whole number of %s blocks of %llu",
                              (unsigned long long)ne[0], lf_dtype_name(t->dtype), (unsigned long long)blck);
    if (nd == 0 && blck != 1)
        return lf_tensor_fail(e, LF_EFORMAT, name, "a scalar of block type %s", lf_dtype_name(t->dtype));
    /* numel <= INT64_MAX and bb <= 292: numel / blck * bb cannot overflow u64. */
    uint64_t nbytes = numel / blck * bb;
    t->ndim = (int)nd;
    for (int i = 0; i < t->ndim; i++) t->shape[i] = (int64_t)ne[nd - 1 - (uint64_t)i];
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = stride;
        stride *= t->shape[i] ? t->shape[i] : 1;
    }
    t->nbytes = (size_t)nbytes;
    return 0;
}

int lf_gguf_parse(lf_gguf_t **out, const void *buf, size_t len, const char *label, char *errstr,
                  size_t errlen)
{
    lf_tensor_err_t e = {errstr, errlen, label};
    if (errlen) errstr[0] = '\0';
    if (!buf || len < 24) return lf_tensor_fail(&e, LF_EFORMAT, NULL, "file too short (%zu bytes)", len);
    s_cur_t c = {buf, len, 0};
    if (memcmp(c.p, "GGUF", 4) != 0) return lf_tensor_fail(&e, LF_EFORMAT, NULL, "not a GGUF file (bad magic)");
    c.pos = 4;
    uint64_t ver, nt, nkv;
    (void)s_rd(&c, 4, &ver);
    (void)s_rd(&c, 8, &nt);
    (void)s_rd(&c, 8, &nkv);
    if (ver != 2 && ver != 3)
        return lf_tensor_fail(&e, ver == 1 ? LF_EUNSUPPORTED : LF_EFORMAT, NULL,
                              "GGUF version %llu (2 and 3 are read%s)", (unsigned long long)ver,
                              ver > 0xffff ? "; a big-endian file?" : "");
    /* Each key/value takes at least 12 bytes, each tensor info at least 24. */
    if (nkv > (len - c.pos) / 12)
        return lf_tensor_fail(&e, LF_EFORMAT, NULL, "%llu metadata entries cannot fit in %zu bytes",
                              (unsigned long long)nkv, len);
    if (nt > (len - c.pos) / 24)
        return lf_tensor_fail(&e, LF_EFORMAT, NULL, "%llu tensors cannot fit in %zu bytes",
                              (unsigned long long)nt, len);
    int rc = 0;
    s_span_t *spans = NULL;
    uint64_t *offs = NULL;
    char **keys = NULL;
    lf_gguf_t *g = calloc(1, sizeof *g);
    if (!g || !(g->kv = calloc(nkv ? (size_t)nkv : 1, sizeof *g->kv)) ||
        !(g->tensors = calloc(nt ? (size_t)nt : 1, sizeof *g->tensors)) ||
        !(spans = calloc(nt ? (size_t)nt : 1, sizeof *spans)) ||
        !(offs = calloc(nt ? (size_t)nt : 1, sizeof *offs)) ||
        !(keys = calloc(nkv ? (size_t)nkv : 1, sizeof *keys))) {
        rc = lf_tensor_fail(&e, LF_ENOMEM, NULL, "out of memory");
        goto done;
    }
    g->version = (uint32_t)ver;
    g->alignment = 32;
    for (size_t i = 0; i < nkv; i++) {
        s_kv_t *kv = &g->kv[g->n_kv];
        g->n_kv++; /* counted before parsing so s_free releases a half-read entry */
        if ((rc = s_parse_kv(&e, &c, i, kv)) != 0) goto done;
        keys[i] = kv->key;
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->type != LF_GGUF_U32 || kv->num.u == 0 || (kv->num.u & (kv->num.u - 1)) != 0) {
                rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "general.alignment is not a power-of-two u32");
                goto done;
            }
            g->alignment = (size_t)kv->num.u;
        }
    }
    qsort(keys, (size_t)nkv, sizeof *keys, s_cmp_key);
    for (size_t i = 1; i < nkv; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "metadata key '%s' appears twice", keys[i]);
            goto done;
        }
    for (size_t i = 0; i < nt; i++) {
        lf_tensor_info_t *t = &g->tensors[g->count];
        rc = s_parse_tensor(&e, &c, i, t, &offs[g->count]);
        if (t->name) g->count++; /* owned from here on */
        if (rc != 0) goto done;
    }
    /* The data area starts at the next multiple of the alignment. */
    uint64_t doff = ((uint64_t)c.pos + g->alignment - 1) / g->alignment * g->alignment;
    uint64_t dlen = doff <= len ? len - doff : 0;
    const unsigned char *data = c.p + (doff <= len ? doff : len);
    g->data_off = (size_t)doff;
    for (size_t i = 0; i < g->count; i++) {
        lf_tensor_info_t *t = &g->tensors[i];
        uint64_t b = offs[i];
        if (b % g->alignment != 0) {
            rc = lf_tensor_fail(&e, LF_EFORMAT, t->name, "data offset %llu is not a multiple of the alignment %zu",
                                (unsigned long long)b, g->alignment);
            goto done;
        }
        if (b > dlen || t->nbytes > dlen - b) {
            rc = lf_tensor_fail(&e, LF_EFORMAT, t->name, "data [%llu, +%zu) beyond the data area of %llu bytes",
                                (unsigned long long)b, t->nbytes, (unsigned long long)dlen);
            goto done;
        }
        t->data = data + b;
        spans[i] = (s_span_t){b, b + t->nbytes, i};
    }
    qsort(spans, g->count, sizeof *spans, s_cmp_span);
    size_t prev = SIZE_MAX;
    for (size_t i = 0; i < g->count; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev != SIZE_MAX && spans[i].begin < spans[prev].end) {
            rc = lf_tensor_fail(&e, LF_EFORMAT, g->tensors[spans[i].idx].name, "data overlaps tensor '%s'",
                                g->tensors[spans[prev].idx].name);
            goto done;
        }
        prev = i;
    }
    qsort(g->tensors, g->count, sizeof *g->tensors, s_cmp_name);
    for (size_t i = 1; i < g->count; i++)
        if (strcmp(g->tensors[i - 1].name, g->tensors[i].name) == 0) {
            rc = lf_tensor_fail(&e, LF_EFORMAT, g->tensors[i].name, "tensor name appears twice");
            goto done;
        }
done:
    free(spans);
    free(offs);
    free(keys);
    if (rc != 0) {
        s_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int lf_gguf_open(lf_gguf_t **out, const char *path, char *errstr, size_t errlen)
{
    lf_tensor_err_t e = {errstr, errlen, path};
    if (errlen) errstr[0] = '\0';
    void *map;
    size_t len;
    int rc = lf_tensor_map_file(&e, path, 24, &map, &len);
    if (rc != 0) return rc;
    lf_gguf_t *g;
    rc = lf_gguf_parse(&g, map, len, path, errstr, errlen);
    if (rc != 0) {
        munmap(map, len);
        return rc;
    }
    g->map = map;
    g->map_len = len;
    *out = g;
    return 0;
}

void lf_gguf_destroy(lf_gguf_t **self_p)
{
    if (!self_p || !*self_p) return;
    s_free(*self_p);
    *self_p = NULL;
}

uint32_t lf_gguf_version(const lf_gguf_t *self) { return self->version; }
size_t lf_gguf_alignment(const lf_gguf_t *self) { return self->alignment; }
size_t lf_gguf_data_offset(const lf_gguf_t *self) { return self->data_off; }
size_t lf_gguf_count(const lf_gguf_t *self) { return self->count; }

int64_t lf_gguf_file_offset(const lf_gguf_t *self, const lf_tensor_info_t *t)
{
    const char *base = self->map, *at = t->data;
    if (!base || at < base || t->nbytes > self->map_len || at - base > (ptrdiff_t)(self->map_len - t->nbytes))
        return -1;
    return (int64_t)(at - base);
}

const lf_tensor_info_t *lf_gguf_at(const lf_gguf_t *self, size_t i)
{
    return i < self->count ? &self->tensors[i] : NULL;
}

const lf_tensor_info_t *lf_gguf_find(const lf_gguf_t *self, const char *name)
{
    lf_tensor_info_t key = {.name = name};
    return bsearch(&key, self->tensors, self->count, sizeof key, s_cmp_name);
}

size_t lf_gguf_kv_count(const lf_gguf_t *self) { return self->n_kv; }

long lf_gguf_kv_find(const lf_gguf_t *self, const char *key)
{
    for (size_t i = 0; i < self->n_kv; i++)
        if (strcmp(self->kv[i].key, key) == 0) return (long)i;
    return -1;
}

const char *lf_gguf_kv_key(const lf_gguf_t *self, size_t i)
{
    return i < self->n_kv ? self->kv[i].key : NULL;
}

lf_gguf_vtype_t lf_gguf_kv_type(const lf_gguf_t *self, size_t i)
{
    return i < self->n_kv ? self->kv[i].type : LF_GGUF_VTYPE_COUNT;
}

int lf_gguf_kv_int(const lf_gguf_t *self, size_t i, int64_t *out)
{
    if (i >= self->n_kv) return LF_EINVAL;
    const s_kv_t *kv = &self->kv[i];
    switch (kv->type) {
    case LF_GGUF_I8: case LF_GGUF_I16: case LF_GGUF_I32: case LF_GGUF_I64: *out = kv->num.i; return 0;
    case LF_GGUF_U8: case LF_GGUF_U16: case LF_GGUF_U32: case LF_GGUF_BOOL: case LF_GGUF_U64:
        if (kv->num.u > INT64_MAX) return LF_EINVAL;
        *out = (int64_t)kv->num.u;
        return 0;
    default: return LF_EINVAL;
    }
}

int lf_gguf_kv_float(const lf_gguf_t *self, size_t i, double *out)
{
    if (i >= self->n_kv) return LF_EINVAL;
    const s_kv_t *kv = &self->kv[i];
    if (kv->type == LF_GGUF_F32 || kv->type == LF_GGUF_F64) {
        *out = kv->num.f;
        return 0;
    }
    int64_t v;
    if (kv->type == LF_GGUF_U64 && kv->num.u > INT64_MAX) {
        *out = (double)kv->num.u;
        return 0;
    }
    if (lf_gguf_kv_int(self, i, &v) != 0) return LF_EINVAL;
    *out = (double)v;
    return 0;
}

const char *lf_gguf_kv_str(const lf_gguf_t *self, size_t i)
{
    return i < self->n_kv ? self->kv[i].str : NULL;
}

int lf_gguf_kv_array(const lf_gguf_t *self, size_t i, lf_gguf_vtype_t *etype, uint64_t *count)
{
    if (i >= self->n_kv || self->kv[i].type != LF_GGUF_ARRAY) return LF_EINVAL;
    *etype = self->kv[i].etype;
    *count = self->kv[i].count;
    return 0;
}

const void *lf_gguf_kv_array_data(const lf_gguf_t *self, size_t i)
{
    if (i >= self->n_kv || self->kv[i].type != LF_GGUF_ARRAY || !s_scalar_size(self->kv[i].etype)) return NULL;
    return self->kv[i].adata;
}

const char *lf_gguf_kv_array_str(const lf_gguf_t *self, size_t i, uint64_t j)
{
    if (i >= self->n_kv || !self->kv[i].astr || j >= self->kv[i].count) return NULL;
    return self->kv[i].astr[j];
}

const char *lf_gguf_metadata(const lf_gguf_t *self, const char *key)
{
    long i = lf_gguf_kv_find(self, key);
    return i < 0 ? NULL : self->kv[i].str;
}
