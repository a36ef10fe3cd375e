/* lf_weights: a thin front over lf_safetensors, lf_gguf and lf_torchzip
 * (and sharded safetensors: an index.json's shards side by side), plus the
 * dtype conversion on upload (contiguous tensors in blocks, strided ones
 * element by element, GGUF's block types through lf_quant). */
#include "lf_weights.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "lf_error.h"
#include "lf_gguf.h"
#include "lf_quant.h"
#include "lf_safetensors.h"
#include "lf_tensor.h"
#include "lf_torchzip.h"

struct lf_weights {
    char *path;
    lf_safetensors_t *st; /* a safetensors file, or a sharded set's first shard */
    lf_torchzip_t *tz;
    lf_gguf_t *gg;
    lf_safetensors_t **shards; /* a sharded set (st == shards[0]), else NULL */
    size_t n_shards;
};

#define S_MAX_SHARDS 256

static int s_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Sharded safetensors (transformers' / diffusers' save_pretrained of a large
 * model): <name>.safetensors.index.json's "weight_map" names, per tensor,
 * the shard file beside it holding it. Each shard is opened (a name with a
 * '/' or starting with '.' is refused) and every tensor of the map must be
 * in its shard. */
static int s_open_shards(lf_weights_t *w, const char *path, char *err, size_t errlen) {
    json_error_t je;
    json_t *idx = json_load_file(path, 0, &je), *map = json_object_get(idx, "weight_map"), *v;
    const char *key;
    int rc = 0;
    if (!json_is_object(map) || !json_object_size(map)) {
        if (errlen) snprintf(err, errlen, "%s: not a safetensors index (no \"weight_map\" object)", path);
        json_decref(idx);
        return idx ? LF_EFORMAT : LF_EIO;
    }
    const char *slash = strrchr(path, '/');
    const int dl = slash ? (int)(slash - path) : 1;
    const char *dir = slash ? path : ".";
    w->shards = calloc(S_MAX_SHARDS, sizeof *w->shards);
    const char **names = calloc(S_MAX_SHARDS, sizeof *names);
    if (!w->shards || !names) rc = LF_ENOMEM;
    json_object_foreach(map, key, v) {
        const char *f = json_string_value(v);
        if (rc) break;
        if (!f || !*f || strchr(f, '/') || f[0] == '.') {
            if (errlen) snprintf(err, errlen, "%s: tensor %s: bad shard name", path, key);
            rc = LF_EFORMAT;
            break;
        }
        size_t i = 0;
        while (i < w->n_shards && strcmp(names[i], f)) i++;
        if (i == w->n_shards) {
            if (w->n_shards == S_MAX_SHARDS) {
                if (errlen) snprintf(err, errlen, "%s: more than %d shards", path, S_MAX_SHARDS);
                rc = LF_ELIMIT;
                break;
            }
            char sp[4096];
            snprintf(sp, sizeof sp, "%.*s/%s", dl, dir, f);
            rc = lf_safetensors_open(&w->shards[i], sp, err, errlen);
            if (rc) break;
            names[w->n_shards++] = f;
        }
        if (!lf_safetensors_find(w->shards[i], key)) {
            if (errlen) snprintf(err, errlen, "%s: tensor %s is not in its shard %s", path, key, f);
            rc = LF_EFORMAT;
        }
    }
    free(names);
    json_decref(idx);
    if (!rc) w->st = w->shards[0];
    return rc;
}

/* What the first bytes say: 1 safetensors (a little-endian header length,
 * then the JSON header's '{'), 0 a zip (a PyTorch checkpoint starts with a
 * local file header, "PK\3\4"), 3 GGUF ("GGUF"), 2 neither, -1 unreadable. */
static int s_sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char b[9];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n == 9 && b[8] == '{') return 1;
    if (n >= 4 && !memcmp(b, "PK\3\4", 4)) return 0;
    if (n >= 4 && !memcmp(b, "GGUF", 4)) return 3;
    return 2;
}

int lf_weights_open(lf_weights_t **out, const char *path, char *err, size_t errlen) {
    if (s_ends_with(path, ".safetensors.index.json")) {
        lf_weights_t *w = calloc(1, sizeof *w);
        if (!w || !(w->path = strdup(path))) {
            free(w);
            return LF_ENOMEM;
        }
        int rc = s_open_shards(w, path, err, errlen);
        if (rc) lf_weights_destroy(&w);
        else *out = w;
        return rc;
    }
    int kind = s_sniff(path);
    if (kind < 0) {
        if (errlen) snprintf(err, errlen, "%s: cannot open", path);
        return LF_EIO;
    }
    /* Neither format: say what would do, rather than why it is not a zip. */
    if (kind == 2) {
        if (errlen)
            snprintf(err, errlen, "%s: not a checkpoint (safetensors / .gguf / .ckpt / diffusers folder)",
                     path);
        return LF_EFORMAT;
    }
    lf_weights_t *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return LF_ENOMEM;
    }
    int rc = kind == 3 ? lf_gguf_open(&w->gg, path, err, errlen)
             : kind  ? lf_safetensors_open(&w->st, path, err, errlen)
                     : lf_torchzip_open(&w->tz, path, err, errlen);
    if (rc) {
        free(w->path);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void lf_weights_destroy(lf_weights_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_weights_t *w = *self_p;
    for (size_t i = 0; w->shards && i < S_MAX_SHARDS; i++) lf_safetensors_destroy(&w->shards[i]);
    free(w->shards);
    if (!w->shards) lf_safetensors_destroy(&w->st);
    lf_torchzip_destroy(&w->tz);
    lf_gguf_destroy(&w->gg);
    free(w->path);
    free(w);
    *self_p = NULL;
}

const char *lf_weights_path(const lf_weights_t *self) { return self->path; }

size_t lf_weights_count(const lf_weights_t *self) {
    if (self->gg) return lf_gguf_count(self->gg);
    if (self->shards) {
        size_t n = 0;
        for (size_t i = 0; i < self->n_shards; i++) n += lf_safetensors_count(self->shards[i]);
        return n;
    }
    return self->st ? lf_safetensors_count(self->st) : lf_torchzip_count(self->tz);
}

const lf_tensor_info_t *lf_weights_at(const lf_weights_t *self, size_t i) {
    if (self->gg) return lf_gguf_at(self->gg, i);
    for (size_t k = 0; self->shards && k < self->n_shards; k++) {
        size_t n = lf_safetensors_count(self->shards[k]);
        if (i < n) return lf_safetensors_at(self->shards[k], i);
        i -= n;
    }
    if (self->shards) return NULL;
    return self->st ? lf_safetensors_at(self->st, i) : lf_torchzip_at(self->tz, i);
}

const lf_tensor_info_t *lf_weights_find(const lf_weights_t *self, const char *name) {
    if (self->gg) return lf_gguf_find(self->gg, name);
    for (size_t k = 0; self->shards && k < self->n_shards; k++) {
        const lf_tensor_info_t *t = lf_safetensors_find(self->shards[k], name);
        if (t) return t;
    }
    if (self->shards) return NULL;
    return self->st ? lf_safetensors_find(self->st, name) : lf_torchzip_find(self->tz, name);
}

const char *lf_weights_metadata(const lf_weights_t *self, const char *key) {
    if (self->gg) return lf_gguf_metadata(self->gg, key);
    return self->st ? lf_safetensors_metadata(self->st, key) : lf_torchzip_metadata(self->tz, key);
}

int lf_weights_json(const lf_weights_t *self, const char *path, char **out) {
    return self->tz ? lf_torchzip_json(self->tz, path, out) : LF_ENOTFOUND;
}

/* GGUF block dtypes -> lf_quant types (LF_QUANT_COUNT: not a block type). */
static lf_quant_type_t s_quant(lf_dtype_t dt) {
    switch (dt) {
    case LF_DTYPE_Q4_0: return LF_QUANT_Q4_0;
    case LF_DTYPE_Q4_1: return LF_QUANT_Q4_1;
    case LF_DTYPE_Q5_0: return LF_QUANT_Q5_0;
    case LF_DTYPE_Q5_1: return LF_QUANT_Q5_1;
    case LF_DTYPE_Q8_0: return LF_QUANT_Q8_0;
    case LF_DTYPE_Q4_K: return LF_QUANT_Q4_K;
    case LF_DTYPE_Q5_K: return LF_QUANT_Q5_K;
    case LF_DTYPE_Q6_K: return LF_QUANT_Q6_K;
    case LF_DTYPE_Q8_K: return LF_QUANT_Q8_K;
    default: return LF_QUANT_COUNT;
    }
}

static int s_contiguous(const lf_tensor_info_t *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

/* The lf_type_t a file dtype is stored as: f32/f16/bf16 and GGUF's block
 * types (lf_tensor.h holds those too); -1 for the others. */
static int s_lf_type(lf_dtype_t dt, lf_type_t *out) {
    switch (dt) {
    case LF_DTYPE_F32: *out = LF_TYPE_F32; return 0;
    case LF_DTYPE_F16: *out = LF_TYPE_F16; return 0;
    case LF_DTYPE_BF16: *out = LF_TYPE_BF16; return 0;
    default:
        if (s_quant(dt) == LF_QUANT_COUNT) return -1;
        *out = (lf_type_t)(LF_TYPE_Q4_0 + s_quant(dt));
        return 0;
    }
}

/* Converts n elements starting at element offset `first` of contiguous t into
 * dst as f32. */
static void s_block_f32(const lf_tensor_info_t *t, int64_t first, int64_t n, float *dst) {
    size_t es = lf_dtype_size(t->dtype);
    const char *src = (const char *)t->data + (size_t)first * es;
    if (t->dtype == LF_DTYPE_F64) {
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + (size_t)i * 8, 8);
            dst[i] = (float)d;
        }
        return;
    }
    lf_type_t st = LF_TYPE_F32;
    (void)s_lf_type(t->dtype, &st);
    if (((uintptr_t)src % es) == 0) {
        lf_type_to_f32(st, src, dst, n);
    } else {
        /* Unaligned source: stage through dst's own bytes (dst is large
         * enough: f32 elements are at least as large as any source type). */
        char *tmp = (char *)dst + (size_t)n * (4 - es);
        memmove(tmp, src, (size_t)n * es);
        lf_type_to_f32(st, tmp, dst, n);
    }
}

int lf_weights_read_f32(const lf_tensor_info_t *t, float *dst) {
    lf_type_t st;
    if (lf_dtype_block(t->dtype) > 1) {
        /* GGUF block types: rows are contiguous runs of whole blocks. */
        lf_quant_type_t q = s_quant(t->dtype);
        if (q == LF_QUANT_COUNT) return LF_EUNSUPPORTED;
        lf_quant_dequantize(q, t->data, dst, lf_tensorinfo_numel(t));
        return 0;
    }
    if (t->dtype != LF_DTYPE_F64 && s_lf_type(t->dtype, &st)) return LF_EUNSUPPORTED;
    int64_t n = lf_tensorinfo_numel(t);
    if (s_contiguous(t)) {
        s_block_f32(t, 0, n, dst);
    } else {
        for (int64_t i = 0; i < n; i++) dst[i] = lf_tensorinfo_get_f32(t, i);
    }
    return 0;
}

int lf_weights_bytes_as(const lf_tensor_info_t *t, lf_type_t dt, const void **bytes, void **buf,
                        size_t *bufsize) {
    lf_type_t src_type = LF_TYPE_F32;
    int src_ok = s_lf_type(t->dtype, &src_type) == 0;
    if (src_ok && dt == src_type && s_contiguous(t)) {
        *bytes = t->data; /* same type: straight from the mapping */
        return 0;
    }
    int64_t n = lf_tensorinfo_numel(t);
    size_t need = (size_t)(n ? n : 1) * (sizeof(float) + (dt == LF_TYPE_F32 ? 0 : lf_type_size(dt)));
    if (*bufsize < need) {
        void *nb = realloc(*buf, need);
        if (!nb) return LF_ENOMEM;
        *buf = nb, *bufsize = need;
    }
    float *f = *buf;
    int rc = lf_weights_read_f32(t, f);
    if (rc) return rc;
    void *out = f;
    if (dt != LF_TYPE_F32) lf_type_from_f32(dt, f, out = f + (n ? n : 1), n);
    *bytes = out;
    return 0;
}

/* The alignment a GGUF tensor needs to be used in place: GGUF's default
 * general.alignment, a multiple of every element's and block field's. */
#define S_MAP_ALIGN 32

/* LF_WEIGHTS_MAP=0 copies every weight into the pool (as before mapped
 * weights): for a model file that may be rewritten in place while loaded. */
static int s_map_weights(void) {
    const char *v = getenv("LF_WEIGHTS_MAP");
    return !v || strcmp(v, "0") != 0;
}

int lf_weights_is_mapped(const lf_weights_t *self) { return self && !self->tz; }

void lf_weights_drop_pages(const lf_weights_t *self, const lf_tensor_info_t *t) {
    /* Only the safetensors and GGUF mappings: a torch zip's deflated
     * entries live on the heap. */
    if (!self->st && !self->gg) return;
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)t->data + pg - 1) & ~(pg - 1);
    uintptr_t b = ((uintptr_t)t->data + t->nbytes) & ~(pg - 1);
    if (pg && b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

int lf_weights_upload(const lf_weights_t *self, const lf_tensor_info_t *t, lf_pool_t *pool,
                      const char *pool_name, int type, int ndim, lf_tensor_t **out, char *err,
                      size_t errlen) {
    lf_type_t src_type = LF_TYPE_F32;
    int src_ok = s_lf_type(t->dtype, &src_type) == 0;
    /* -1 widens GGUF block types to f32; LF_WEIGHTS_STORED keeps them. */
    if (type == -1 && src_ok && lf_type_is_quant(src_type)) type = LF_TYPE_F32;
    if (type == LF_WEIGHTS_STORED) type = -1;
    if (!src_ok && t->dtype != LF_DTYPE_F64) {
        if (errlen)
            snprintf(err, errlen, "%s: tensor %s has dtype %s (float and GGUF block types only)", self->path,
                     t->name, lf_dtype_name(t->dtype));
        return LF_EUNSUPPORTED;
    }
    int nd = t->ndim;
    while (ndim > 0 && nd > ndim && t->shape[nd - 1] == 1) nd--;
    if (nd > LF_MAX_DIMS) {
        if (errlen)
            snprintf(err, errlen, "%s: tensor %s has %d dims (at most 4)", self->path, t->name,
                     t->ndim);
        return LF_EUNSUPPORTED;
    }
    lf_type_t dt = type < 0 ? (src_ok ? src_type : LF_TYPE_F32) : (lf_type_t)type;
    int64_t ne[LF_MAX_DIMS] = {1, 1, 1, 1};
    for (int i = 0; i < nd; i++) ne[i] = t->shape[nd - 1 - i];
    bool requant = dt != src_type && !lf_quant_can_quantize((lf_quant_type_t)(dt - LF_TYPE_Q4_0));
    if (lf_type_is_quant(dt) && (ne[0] % lf_type_block(dt) || requant)) {
        if (errlen)
            snprintf(err, errlen, "%s: tensor %s (%s, rows of %lld) cannot be stored as %s", self->path, t->name,
                     lf_dtype_name(t->dtype), (long long)ne[0], lf_type_name(dt));
        return LF_EUNSUPPORTED;
    }
    /* Used as stored from a safetensors or GGUF file on a host backend: the
     * pool maps the bytes from the file (copy-on-write) instead of copying
     * them, so that they count in RSS only while read (lf_pool_drop_pages).
     * A GGUF tensor must start on S_MAP_ALIGN (a file with a smaller
     * general.alignment gets copies). Converted or quantized-on-load
     * tensors, and those a LoRA merge writes (copy-on-write), get private
     * memory. */
    int64_t off = -1;
    if (dt == src_type && s_contiguous(t) && s_map_weights()) {
        if (self->st) off = lf_safetensors_file_offset(self->st, t);
        else if (self->gg && (off = lf_gguf_file_offset(self->gg, t)) % S_MAP_ALIGN) off = -1;
    }
    lf_tensor_t *pt = off >= 0 ? lf_pool_tensor_mapped(pool, pool_name, dt, nd ? nd : 1, ne, self->path,
                                                       (uint64_t)off)
                               : NULL;
    if (pt) {
        *out = pt;
        return 0;
    }
    pt = lf_pool_tensor(pool, pool_name, dt, nd ? nd : 1, ne);
    if (!pt) {
        if (errlen)
            snprintf(err, errlen, "%s: tensor %s: out of memory (or duplicate)", self->path,
                     t->name);
        return LF_ENOMEM;
    }
    size_t nbytes = lf_tensor_nbytes(pt);
    const void *bytes = NULL;
    void *buf = NULL;
    size_t bufsize = 0;
    int rc = lf_weights_bytes_as(t, dt, &bytes, &buf, &bufsize);
    if (!rc) rc = lf_pool_load(pool, pt, bytes, nbytes);
    free(buf);
    if (rc) {
        if (errlen) snprintf(err, errlen, "%s: tensor %s: upload failed (%s)", self->path, t->name,
                             lf_strerror(rc));
        return rc;
    }
    /* The pool has its own copy: let the kernel drop the file pages this
     * tensor occupied (a later read refaults them from the file), so that a
     * load's peak RSS is about the weights once, not the file plus the
     * weights (a full SDXL checkpoint: 6.9 GB of file). */
    lf_weights_drop_pages(self, t);
    *out = pt;
    return 0;
}
