/* lf_zip: the zip directory (ZIP64 included) over a memory image, and entry
 * data: stored entries point into the image, deflated ones are inflated
 * once into memory the object owns. Written from PKWARE's APPNOTE; every
 * read is bounds-checked. */
#include "lf_zip.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lf_error.h"

typedef struct {
    char *name;
    const unsigned char *data; /* stored: into the image; deflated: inflated (owned) */
    uint64_t size;             /* uncompressed */
    uint64_t csize;
    int method;
    const unsigned char *raw;  /* compressed bytes */
    unsigned char *owned;
} s_entry_t;

struct lf_zip {
    s_entry_t *entries; /* sorted by name */
    size_t n_entries;
};

typedef struct {
    char *errstr;
    size_t errlen;
} s_err_t;

__attribute__((format(printf, 3, 4))) static int s_fail(s_err_t *e, int code, const char *fmt, ...)
{
    if (e->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->errstr, e->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static uint64_t s_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}


static int s_cmp_entry(const void *a, const void *b)
{
    return strcmp(((const s_entry_t *)a)->name, ((const s_entry_t *)b)->name);
}

int lf_zip_find(const lf_zip_t *z, const char *name, size_t *index)
{
    s_entry_t key = {.name = (char *)name};
    const s_entry_t *en = bsearch(&key, z->entries, z->n_entries, sizeof key, s_cmp_entry);
    if (!en) return LF_ENOTFOUND;
    *index = (size_t)(en - z->entries);
    return 0;
}

static int s_read(lf_zip_t *z, const unsigned char *b, size_t len, s_err_t *e)
{
    if (len < 22) return s_fail(e, LF_EFORMAT, "not a zip archive (too short)");
    size_t eocd = SIZE_MAX, lim = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lim;)
        if (b[i] == 'P' && b[i + 1] == 'K' && b[i + 2] == 5 && b[i + 3] == 6) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX) return s_fail(e, LF_EFORMAT, "not a zip archive (no end record)");
    uint64_t n = s_le(b + eocd + 10, 2), cd_size = s_le(b + eocd + 12, 4), cd_off = s_le(b + eocd + 16, 4);
    if (n == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
        if (eocd < 20 || memcmp(b + eocd - 20, "PK\6\7", 4) != 0)
            return s_fail(e, LF_EFORMAT, "zip64 locator missing");
        uint64_t z64 = s_le(b + eocd - 20 + 8, 8);
        if (len < 56 || z64 > len - 56 || memcmp(b + z64, "PK\6\6", 4) != 0)
            return s_fail(e, LF_EFORMAT, "zip64 end record missing");
        n = s_le(b + z64 + 32, 8);
        cd_size = s_le(b + z64 + 40, 8);
        cd_off = s_le(b + z64 + 48, 8);
    }
    if (cd_off > len || cd_size > len - cd_off || n > cd_size / 46)
        return s_fail(e, LF_EFORMAT, "central directory out of bounds");
    if (!(z->entries = calloc(n ? n : 1, sizeof *z->entries))) return s_fail(e, LF_ENOMEM, "out of memory");
    size_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || memcmp(b + p, "PK\1\2", 4) != 0)
            return s_fail(e, LF_EFORMAT, "central directory entry %llu corrupt", (unsigned long long)i);
        int method = (int)s_le(b + p + 10, 2);
        uint64_t cs = s_le(b + p + 20, 4), us = s_le(b + p + 24, 4), lo = s_le(b + p + 42, 4);
        size_t nl = s_le(b + p + 28, 2), xl = s_le(b + p + 30, 2), cl = s_le(b + p + 32, 2);
        if (end - p - 46 < nl + xl + cl)
            return s_fail(e, LF_EFORMAT, "central directory entry %llu truncated", (unsigned long long)i);
        /* ZIP64 extra field: the 0xFFFFFFFF fields, in order. */
        for (size_t x = p + 46 + nl; x + 4 <= p + 46 + nl + xl;) {
            size_t id = s_le(b + x, 2), sz = s_le(b + x + 2, 2), q = x + 4;
            if (x + 4 + sz > p + 46 + nl + xl) break;
            if (id == 1) {
                if (us == 0xFFFFFFFF && q + 8 <= x + 4 + sz) { us = s_le(b + q, 8); q += 8; }
                if (cs == 0xFFFFFFFF && q + 8 <= x + 4 + sz) { cs = s_le(b + q, 8); q += 8; }
                if (lo == 0xFFFFFFFF && q + 8 <= x + 4 + sz) { lo = s_le(b + q, 8); q += 8; }
            }
            x += 4 + sz;
        }
        s_entry_t *en = &z->entries[z->n_entries];
        if (!(en->name = strndup((const char *)b + p + 46, nl))) return s_fail(e, LF_ENOMEM, "out of memory");
        z->n_entries++;
        if (len < 30 || lo > len - 30 || memcmp(b + lo, "PK\3\4", 4) != 0)
            return s_fail(e, LF_EFORMAT, "entry '%s': local header out of bounds", en->name);
        uint64_t data = lo + 30 + s_le(b + lo + 26, 2) + s_le(b + lo + 28, 2);
        if (data > len || cs > len - data)
            return s_fail(e, LF_EFORMAT, "entry '%s': data out of bounds", en->name);
        if (method != 0 && method != 8)
            return s_fail(e, LF_EUNSUPPORTED, "entry '%s': compression method %d", en->name, method);
        if (method == 0 && cs != us)
            return s_fail(e, LF_EFORMAT, "entry '%s': stored sizes differ", en->name);
        en->method = method;
        en->raw = b + data;
        en->csize = cs;
        en->size = us;
        en->data = method == 0 ? b + data : NULL;
        p += 46 + nl + xl + cl;
    }
    qsort(z->entries, z->n_entries, sizeof *z->entries, s_cmp_entry);
    for (size_t i = 1; i < z->n_entries; i++)
        if (strcmp(z->entries[i - 1].name, z->entries[i].name) == 0)
            return s_fail(e, LF_EFORMAT, "duplicate entry '%s'", z->entries[i].name);
    return 0;
}

/* Returns the entry's bytes, inflating a deflated entry once. */
static const unsigned char *s_entry_data(s_entry_t *en, s_err_t *e, int *rc)
{
    if (en->data || en->size == 0) {
        *rc = 0;
        return en->data ? en->data : (const unsigned char *)"";
    }
    /* Deflate cannot expand more than ~1032:1; a larger claim is corrupt. */
    if (en->size / 1032 > en->csize + 1) {
        *rc = s_fail(e, LF_EFORMAT, "entry '%s': implausible uncompressed size", en->name);
        return NULL;
    }
    if (en->size > ((uint64_t)1 << 40) || !(en->owned = malloc((size_t)en->size))) {
        *rc = s_fail(e, LF_ENOMEM, "entry '%s': cannot allocate %llu bytes", en->name,
                     (unsigned long long)en->size);
        return NULL;
    }
    z_stream zs = {0};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
        *rc = s_fail(e, LF_ENOMEM, "zlib init failed");
        return NULL;
    }
    const unsigned char *in = en->raw;
    uint64_t in_left = en->csize, out_done = 0;
    int zr = Z_OK;
    while (zr == Z_OK) {
        uInt ci = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        uInt co = en->size - out_done > (1u << 30) ? (1u << 30) : (uInt)(en->size - out_done);
        zs.next_in = (Bytef *)in;
        zs.avail_in = ci;
        zs.next_out = en->owned + out_done;
        zs.avail_out = co;
        zr = inflate(&zs, Z_NO_FLUSH);
        in += ci - zs.avail_in;
        in_left -= ci - zs.avail_in;
        out_done += co - zs.avail_out;
        if (zr == Z_OK && zs.avail_in == ci && zs.avail_out == co) zr = Z_DATA_ERROR; /* no progress */
    }
    inflateEnd(&zs);
    if (zr != Z_STREAM_END || out_done != en->size) {
        *rc = s_fail(e, LF_EFORMAT, "entry '%s': corrupt deflate data", en->name);
        return NULL;
    }
    en->data = en->owned;
    *rc = 0;
    return en->data;
}

void lf_zip_destroy(lf_zip_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_zip_t *z = *self_p;
    for (size_t i = 0; i < z->n_entries; i++) {
        free(z->entries[i].name);
        free(z->entries[i].owned);
    }
    free(z->entries);
    free(z);
    *self_p = NULL;
}

int lf_zip_parse(lf_zip_t **out, const void *buf, size_t len, char *errstr, size_t errlen)
{
    s_err_t e = {errstr, errlen};
    lf_zip_t *z = calloc(1, sizeof *z);
    if (!z) return s_fail(&e, LF_ENOMEM, "out of memory");
    int rc = s_read(z, buf, len, &e);
    if (rc != 0) {
        lf_zip_destroy(&z);
        return rc;
    }
    *out = z;
    return 0;
}

size_t lf_zip_count(const lf_zip_t *z)
{
    return z->n_entries;
}

const char *lf_zip_name(const lf_zip_t *z, size_t i)
{
    return i < z->n_entries ? z->entries[i].name : NULL;
}

uint64_t lf_zip_size(const lf_zip_t *z, size_t i)
{
    return i < z->n_entries ? z->entries[i].size : 0;
}

int lf_zip_data(lf_zip_t *z, size_t i, const unsigned char **data, char *errstr, size_t errlen)
{
    s_err_t e = {errstr, errlen};
    if (i >= z->n_entries) return s_fail(&e, LF_EINVAL, "no entry %zu", i);
    int rc;
    const unsigned char *d = s_entry_data(&z->entries[i], &e, &rc);
    if (!d) return rc;
    *data = d;
    return 0;
}
