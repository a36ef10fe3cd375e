/* lf_safetensors: header validation over a memory buffer, an mmap layer over
 * it, and a writer. jansson is spoken to only here (and in lf_clip_tokenizer
 * for vocab.json). */
#include "lf_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_error.h"

struct lf_safetensors {
    lf_tensor_info_t *tensors; /* sorted by name */
    size_t count;
    char **meta;               /* key, value, key, value... */
    size_t n_meta;
    void *map;                 /* mmap'd file, or NULL when parsing a borrowed buffer */
    size_t map_len;
};

static void s_free(lf_safetensors_t *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->count; i++) free((char *)st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->meta);
    if (st->map) munmap(st->map, st->map_len);
    free(st);
}

static int s_cmp_name(const void *a, const void *b)
{
    return strcmp(((const lf_tensor_info_t *)a)->name, ((const lf_tensor_info_t *)b)->name);
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

/* A JSON number that is a non-negative integer (jansson gives json_int_t,
 * a long long, for integer literals; reals are rejected). */
static int s_get_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) return -1;
    json_int_t i = json_integer_value(v);
    if (i < 0) return -1;
    *out = (uint64_t)i;
    return 0;
}

static int s_parse_tensor(lf_tensor_err_t *e, const char *name, json_t *obj, const unsigned char *data,
                          uint64_t data_len, lf_tensor_info_t *t, s_span_t *span)
{
    if (!json_is_object(obj)) return lf_tensor_fail(e, LF_EFORMAT, name, "entry is not an object");
    json_t *jd = json_object_get(obj, "dtype"), *js = json_object_get(obj, "shape"),
           *jo = json_object_get(obj, "data_offsets");
    if (!json_is_string(jd)) return lf_tensor_fail(e, LF_EFORMAT, name, "missing or non-string dtype");
    if (lf_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return lf_tensor_fail(e, LF_EFORMAT, name, "unknown dtype '%s'", json_string_value(jd));
    if (!json_is_array(js)) return lf_tensor_fail(e, LF_EFORMAT, name, "missing or non-array shape");
    size_t nd = json_array_size(js);
    if (nd > LF_TENSOR_MAX_DIMS)
        return lf_tensor_fail(e, LF_EFORMAT, name, "%zu dimensions (at most %d)", nd, LF_TENSOR_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (s_get_u64(json_array_get(js, i), &d) != 0)
            return lf_tensor_fail(e, LF_EFORMAT, name, "shape[%zu] is not a non-negative integer", i);
        if (d > INT64_MAX || (d != 0 && numel > UINT64_MAX / d))
            return lf_tensor_fail(e, LF_EFORMAT, name, "shape overflows");
        numel *= d;
        t->shape[i] = (int64_t)d;
    }
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = stride;
        stride *= t->shape[i] ? t->shape[i] : 1;
    }
    size_t esz = lf_dtype_size(t->dtype);
    if (numel > UINT64_MAX / esz) return lf_tensor_fail(e, LF_EFORMAT, name, "size overflows");
    uint64_t nbytes = numel * esz;
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return lf_tensor_fail(e, LF_EFORMAT, name, "data_offsets is not a pair");
    uint64_t b, en;
    if (s_get_u64(json_array_get(jo, 0), &b) != 0 || s_get_u64(json_array_get(jo, 1), &en) != 0)
        return lf_tensor_fail(e, LF_EFORMAT, name, "data_offsets are not non-negative integers");
    if (b > en) return lf_tensor_fail(e, LF_EFORMAT, name, "data_offsets begin %llu > end %llu",
                              (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return lf_tensor_fail(e, LF_EFORMAT, name, "data_offsets end %llu beyond data area of %llu bytes",
                      (unsigned long long)en, (unsigned long long)data_len);
    if (en - b != nbytes)
        return lf_tensor_fail(e, LF_EFORMAT, name, "shape x dtype is %llu bytes but data_offsets span %llu",
                      (unsigned long long)nbytes, (unsigned long long)(en - b));
    t->data = data + b;
    t->nbytes = (size_t)nbytes;
    span->begin = b;
    span->end = en;
    return 0;
}

int lf_safetensors_parse(lf_safetensors_t **out, const void *buf, size_t len, const char *label,
                         char *errstr, size_t errlen)
{
    lf_tensor_err_t e = {errstr, errlen, label};
    if (errlen) errstr[0] = '\0';
    const unsigned char *p = buf;
    if (!buf || len < 8) return lf_tensor_fail(&e, LF_EFORMAT, NULL, "file too short (%zu bytes)", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen < 2 || hlen > LF_SAFETENSORS_MAX_HEADER || hlen > len - 8)
        return lf_tensor_fail(&e, LF_EFORMAT, NULL, "header length %llu is not sane for a %zu-byte file",
                      (unsigned long long)hlen, len);
    if (p[8] != '{') return lf_tensor_fail(&e, LF_EFORMAT, NULL, "header does not start with '{'");
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return lf_tensor_fail(&e, LF_EFORMAT, NULL, "header JSON: %s (offset %d)", jerr.text, jerr.position);
    int rc = 0;
    lf_safetensors_t *st = NULL;
    s_span_t *spans = NULL;
    if (!json_is_object(root)) {
        rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "header is not a JSON object");
        goto done;
    }
    st = calloc(1, sizeof *st);
    size_t n = json_object_size(root);
    if (!st || !(st->tensors = calloc(n ? n : 1, sizeof *st->tensors)) ||
        !(spans = calloc(n ? n : 1, sizeof *spans))) {
        rc = lf_tensor_fail(&e, LF_ENOMEM, NULL, "out of memory");
        goto done;
    }
    const unsigned char *data = p + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "__metadata__ is not an object");
                goto done;
            }
            size_t m = json_object_size(val);
            if (!(st->meta = calloc(2 * m + 1, sizeof *st->meta))) {
                rc = lf_tensor_fail(&e, LF_ENOMEM, NULL, "out of memory");
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = lf_tensor_fail(&e, LF_EFORMAT, NULL, "__metadata__ value '%s' is not a string", mk);
                    goto done;
                }
                st->meta[2 * st->n_meta] = strdup(mk);
                st->meta[2 * st->n_meta + 1] = strdup(json_string_value(mv));
                st->n_meta++;
                if (!st->meta[2 * st->n_meta - 2] || !st->meta[2 * st->n_meta - 1]) {
                    rc = lf_tensor_fail(&e, LF_ENOMEM, NULL, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        lf_tensor_info_t *t = &st->tensors[st->count];
        rc = s_parse_tensor(&e, key, val, data, data_len, t, &spans[st->count]);
        if (rc != 0) goto done;
        spans[st->count].idx = st->count;
        if (!(t->name = strdup(key))) {
            rc = lf_tensor_fail(&e, LF_ENOMEM, NULL, "out of memory");
            goto done;
        }
        st->count++;
    }
    /* Overlap check on non-empty spans, sorted by start. */
    qsort(spans, st->count, sizeof *spans, s_cmp_span);
    uint64_t prev_end = 0;
    size_t prev = SIZE_MAX;
    for (size_t i = 0; i < st->count; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev != SIZE_MAX && spans[i].begin < prev_end) {
            rc = lf_tensor_fail(&e, LF_EFORMAT, st->tensors[spans[i].idx].name, "data overlaps tensor '%s'",
                        st->tensors[prev].name);
            goto done;
        }
        prev_end = spans[i].end;
        prev = spans[i].idx;
    }
    qsort(st->tensors, st->count, sizeof *st->tensors, s_cmp_name);
done:
    free(spans);
    json_decref(root);
    if (rc != 0) {
        s_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

int lf_safetensors_open(lf_safetensors_t **out, const char *path, char *errstr, size_t errlen)
{
    lf_tensor_err_t e = {errstr, errlen, path};
    if (errlen) errstr[0] = '\0';
    void *map;
    size_t len;
    int rc = lf_tensor_map_file(&e, path, 8, &map, &len);
    if (rc != 0) return rc;
    lf_safetensors_t *st;
    rc = lf_safetensors_parse(&st, map, len, path, errstr, errlen);
    if (rc != 0) {
        munmap(map, len);
        return rc;
    }
    st->map = map;
    st->map_len = len;
    *out = st;
    return 0;
}

void lf_safetensors_destroy(lf_safetensors_t **self_p)
{
    if (!self_p || !*self_p) return;
    s_free(*self_p);
    *self_p = NULL;
}

int64_t lf_safetensors_file_offset(const lf_safetensors_t *self, const lf_tensor_info_t *t)
{
    const char *base = self->map, *at = t->data;
    if (!base || at < base || at + t->nbytes > base + self->map_len) return -1;
    return (int64_t)(at - base);
}

size_t lf_safetensors_count(const lf_safetensors_t *self)
{
    return self->count;
}

const lf_tensor_info_t *lf_safetensors_at(const lf_safetensors_t *self, size_t i)
{
    return i < self->count ? &self->tensors[i] : NULL;
}

const lf_tensor_info_t *lf_safetensors_find(const lf_safetensors_t *self, const char *name)
{
    lf_tensor_info_t key = {.name = name};
    return bsearch(&key, self->tensors, self->count, sizeof key, s_cmp_name);
}

const char *lf_safetensors_metadata(const lf_safetensors_t *self, const char *key)
{
    for (size_t i = 0; i < self->n_meta; i++)
        if (strcmp(self->meta[2 * i], key) == 0) return self->meta[2 * i + 1];
    return NULL;
}

int lf_safetensors_serialize(const lf_tensor_info_t *tensors, size_t n, const char *const *meta,
                             size_t n_meta, void **out_buf, size_t *out_len)
{
    json_t *root = json_object();
    if (!root) return LF_ENOMEM;
    int rc = 0;
    char *hdr = NULL;
    uint64_t off = 0;
    if (n_meta) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m) != 0) {
            rc = LF_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < n_meta; i++)
            if (json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1])) != 0) {
                rc = LF_EINVAL;
                goto done;
            }
    }
    for (size_t i = 0; i < n; i++) {
        const lf_tensor_info_t *t = &tensors[i];
        if (!t->name || strcmp(t->name, "__metadata__") == 0 || json_object_get(root, t->name) ||
            lf_dtype_size(t->dtype) == 0 || t->ndim < 0 || t->ndim > LF_TENSOR_MAX_DIMS) {
            rc = LF_EINVAL;
            goto done;
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        uint64_t nb = (uint64_t)lf_tensorinfo_numel(t) * lf_dtype_size(t->dtype);
        json_t *e = json_pack("{s:s,s:o,s:[I,I]}", "dtype", lf_dtype_name(t->dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + nb));
        if (!e || json_object_set_new(root, t->name, e) != 0) {
            rc = LF_ENOMEM;
            goto done;
        }
        off += nb;
    }
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) {
        rc = LF_ENOMEM;
        goto done;
    }
    size_t hl = strlen(hdr), padded = (8 + hl + 7) / 8 * 8 - 8;
    size_t total = 8 + padded + (size_t)off;
    unsigned char *b = malloc(total ? total : 1);
    if (!b) {
        rc = LF_ENOMEM;
        goto done;
    }
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(b + 8, hdr, hl);
    memset(b + 8 + hl, ' ', padded - hl);
    unsigned char *d = b + 8 + padded;
    for (size_t i = 0; i < n; i++) {
        size_t nb = (size_t)lf_tensorinfo_numel(&tensors[i]) * lf_dtype_size(tensors[i].dtype);
        if (nb) memcpy(d, tensors[i].data, nb);
        d += nb;
    }
    *out_buf = b;
    *out_len = total;
done:
    free(hdr);
    json_decref(root);
    return rc;
}

int lf_safetensors_write(const char *path, const lf_tensor_info_t *tensors, size_t n,
                         const char *const *meta, size_t n_meta)
{
    void *buf;
    size_t len;
    int rc = lf_safetensors_serialize(tensors, n, meta, n_meta, &buf, &len);
    if (rc != 0) return rc;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp) {
        free(buf);
        return LF_ENOMEM;
    }
    snprintf(tmp, pl + 8, "%s.tmpXX", path);
    FILE *f = fopen(tmp, "wb");
    rc = LF_EIO;
    if (f) {
        int ok = fwrite(buf, 1, len, f) == len;
        ok = (fclose(f) == 0) && ok;
        if (ok && rename(tmp, path) == 0) rc = 0;
        else unlink(tmp);
    }
    free(tmp);
    free(buf);
    return rc;
}
