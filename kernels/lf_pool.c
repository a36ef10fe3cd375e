/* lf_pool: bump allocation of weight tensors in backend chunks, with a
 * name index (open addressing) for lookups by the model builders. */
#include "lf_pool.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_quant.h"

#define LF__POOL_ALIGN 256

typedef struct {
    lf_tensor_t t; /* first member: descriptors are handed out by address */
    char *name;
    bool mapped;   /* bytes in a file mapping (lf_pool_tensor_mapped) */
} s_entry_t;

typedef struct {
    char *path;
    void *base;
    size_t len;
    /* The mapping as a buffer marked LF_BUFFER_WEIGHTS_MAPPED, which its
     * tensors point to (lf_tensor_t.buffer), so that the backend knows their
     * pages can be given back; owned, never passed to buffer_free. */
    lf_buffer_t *buf;
} s_map_t;

struct lf_pool {
    lf_backend_t *be;
    size_t chunk_bytes;
    lf_buffer_t **chunks;
    int n_chunks;
    size_t chunk_used; /* in the last chunk */
    s_entry_t **entries;
    int n, cap;
    int *index; /* hash slots -> entry + 1 (0 = empty) */
    int index_cap;
    size_t used, reserved;
    char *model;
    s_map_t *maps; /* files mapped for lf_pool_tensor_mapped */
    int n_maps;
};

static uint64_t s_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

lf_pool_t *lf_pool_new(lf_backend_t *be, size_t chunk_bytes) {
    if (!be) return NULL;
    lf_pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->be = be;
    p->chunk_bytes = chunk_bytes ? chunk_bytes : (size_t)256 << 20;
    p->model = calloc(1, 1);
    if (!p->model) {
        free(p);
        return NULL;
    }
    return p;
}

void lf_pool_destroy(lf_pool_t **pool_p) {
    if (!pool_p || !*pool_p) return;
    lf_pool_t *p = *pool_p;
    /* Whatever the backend derived from these bytes goes with them: the
     * addresses may hold another model's weights next. */
    for (int i = 0; i < p->n; i++) lf_backend_forget(p->be, p->entries[i]->t.data, lf_tensor_nbytes(&p->entries[i]->t));
    for (int i = 0; i < p->n_chunks; i++) lf_backend_buffer_free(&p->chunks[i]);
    for (int i = 0; i < p->n_maps; i++) {
        munmap(p->maps[i].base, p->maps[i].len);
        free(p->maps[i].path);
        free(p->maps[i].buf);
    }
    free(p->maps);
    for (int i = 0; i < p->n; i++) {
        free(p->entries[i]->name);
        free(p->entries[i]);
    }
    free(p->chunks);
    free(p->entries);
    free(p->index);
    free(p->model);
    free(p);
    *pool_p = NULL;
}

lf_tensor_t *lf_pool_find(const lf_pool_t *p, const char *name) {
    if (!p->index_cap || !name) return NULL;
    size_t mask = (size_t)p->index_cap - 1;
    for (size_t i = s_hash(name) & mask;; i = (i + 1) & mask) {
        int e = p->index[i];
        if (e == 0) return NULL;
        if (strcmp(p->entries[e - 1]->name, name) == 0) return &p->entries[e - 1]->t;
    }
}

static int s_index_grow(lf_pool_t *p) {
    int cap = p->index_cap ? p->index_cap * 2 : 256;
    int *idx = calloc((size_t)cap, sizeof *idx);
    if (!idx) return LF_ENOMEM;
    size_t mask = (size_t)cap - 1;
    for (int e = 0; e < p->n; e++) {
        size_t i = s_hash(p->entries[e]->name) & mask;
        while (idx[i]) i = (i + 1) & mask;
        idx[i] = e + 1;
    }
    free(p->index);
    p->index = idx, p->index_cap = cap;
    return 0;
}

/* Device address for size bytes; NULL on out of memory. */
static void *s_place(lf_pool_t *p, size_t size, lf_buffer_t **buf) {
    size = (size + LF__POOL_ALIGN - 1) & ~(size_t)(LF__POOL_ALIGN - 1);
    if (p->n_chunks == 0 || p->chunk_used + size > p->chunks[p->n_chunks - 1]->size) {
        lf_buffer_t **c = realloc(p->chunks, (size_t)(p->n_chunks + 1) * sizeof *c);
        if (!c) return NULL;
        p->chunks = c;
        size_t want = size > p->chunk_bytes ? size : p->chunk_bytes;
        if (lf_backend_buffer_alloc(p->be, want, LF_BUFFER_WEIGHTS, &c[p->n_chunks])) return NULL;
        p->n_chunks++;
        p->chunk_used = 0;
        p->reserved += want;
    }
    lf_buffer_t *b = p->chunks[p->n_chunks - 1];
    void *at = (char *)b->base + p->chunk_used;
    p->chunk_used += size;
    *buf = b;
    return at;
}

/* A new entry; its bytes at data, else placed in a chunk. */
static lf_tensor_t *s_add(lf_pool_t *p, const char *name, lf_type_t type, int n_dims, const int64_t *ne,
                          void *data, lf_buffer_t *mapped_buf) {
    if (!name || (unsigned)type >= LF_TYPE_COUNT || n_dims < 1 || n_dims > LF_MAX_DIMS ||
        ne[0] % lf_type_block(type))
        return NULL;
    if (lf_pool_find(p, name)) return NULL;
    if ((p->n + 1) * 2 > p->index_cap && s_index_grow(p)) return NULL;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 128;
        s_entry_t **e = realloc(p->entries, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        p->entries = e, p->cap = cap;
    }
    s_entry_t *e = calloc(1, sizeof *e);
    char *nm = e ? strdup(name) : NULL;
    if (!nm) {
        free(e);
        return NULL;
    }
    e->t = lf_tensor_make(type, n_dims, ne, NULL);
    size_t bytes = lf_tensor_nbytes(&e->t);
    e->mapped = data != NULL;
    e->t.data = data ? data : s_place(p, bytes, &e->t.buffer);
    if (data) e->t.buffer = mapped_buf;
    if (!e->t.data) {
        free(nm);
        free(e);
        return NULL;
    }
    e->name = nm;
    e->t.name = nm;
    p->entries[p->n++] = e;
    size_t mask = (size_t)p->index_cap - 1, i = s_hash(name) & mask;
    while (p->index[i]) i = (i + 1) & mask;
    p->index[i] = p->n;
    p->used += bytes;
    return &e->t;
}

lf_tensor_t *lf_pool_tensor(lf_pool_t *p, const char *name, lf_type_t type, int n_dims,
                            const int64_t *ne) {
    return s_add(p, name, type, n_dims, ne, NULL, NULL);
}

/* The pool's private mapping of path (made on first use), or NULL. */
static s_map_t *s_map(lf_pool_t *p, const char *path) {
    for (int i = 0; i < p->n_maps; i++)
        if (!strcmp(p->maps[i].path, path)) return &p->maps[i];
    s_map_t *m = realloc(p->maps, (size_t)(p->n_maps + 1) * sizeof *m);
    if (!m) return NULL;
    p->maps = m;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) return NULL;
    void *base = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0
                     ? mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
                     : MAP_FAILED;
    close(fd);
    char *nm = base != MAP_FAILED ? strdup(path) : NULL;
    lf_buffer_t *buf = nm ? calloc(1, sizeof *buf) : NULL;
    if (!buf) {
        free(nm);
        if (base != MAP_FAILED) munmap(base, (size_t)sb.st_size);
        return NULL;
    }
    *buf = (lf_buffer_t){.backend = p->be, .base = base, .size = (size_t)sb.st_size,
                         .usage = LF_BUFFER_WEIGHTS_MAPPED};
    m = &p->maps[p->n_maps++];
    *m = (s_map_t){.path = nm, .base = base, .len = (size_t)sb.st_size, .buf = buf};
    return m;
}

lf_tensor_t *lf_pool_tensor_mapped(lf_pool_t *p, const char *name, lf_type_t type, int n_dims,
                                   const int64_t *ne, const char *path, uint64_t offset) {
    if (!lf_backend_is_host(p->be) || !path || (unsigned)type >= LF_TYPE_COUNT || n_dims < 1 ||
        n_dims > LF_MAX_DIMS)
        return NULL;
    lf_tensor_t probe = lf_tensor_make(type, n_dims, ne, NULL);
    s_map_t *m = s_map(p, path);
    if (!m || offset > m->len || lf_tensor_nbytes(&probe) > m->len - offset) return NULL;
    return s_add(p, name, type, n_dims, ne, (char *)m->base + offset, m->buf);
}

size_t lf_pool_drop_pages(lf_pool_t *p, const char *prefix) {
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const size_t pl = prefix ? strlen(prefix) : 0;
    size_t dropped = 0;
    for (int i = 0; i < p->n && pg; i++) {
        const s_entry_t *e = p->entries[i];
        if (!e->mapped || strncmp(e->name, prefix ? prefix : "", pl)) continue;
        /* The backend's packed copy goes too (in memory), or gives back its
         * pages (in a file): the network is not running. */
        lf_backend_release(p->be, e->t.data, lf_tensor_nbytes(&e->t), true);
        /* Whole pages inside the tensor: a page it shares with a neighbour stays. */
        uintptr_t a = ((uintptr_t)e->t.data + pg - 1) & ~(pg - 1);
        uintptr_t b = ((uintptr_t)e->t.data + lf_tensor_nbytes(&e->t)) & ~(pg - 1);
        if (b > a && madvise((void *)a, b - a, MADV_DONTNEED) == 0) dropped += b - a;
    }
    return dropped;
}

size_t lf_pool_drop_tensor_pages(const lf_pool_t *p, const lf_tensor_t *t) {
    if (!p || !t || !t->data || !lf_tensor_is_contiguous(t)) return 0;
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)t->data;
    const uintptr_t hi = lo + lf_tensor_nbytes(t);
    for (int i = 0; i < p->n_maps && pg; i++) {
        const uintptr_t base = (uintptr_t)p->maps[i].base;
        if (lo < base || hi > base + p->maps[i].len) continue;
        /* Its pre-packed copy in a file gives back its pages as well. */
        size_t packed = lf_backend_release(p->be, t->data, hi - lo, false);
        uintptr_t a = (lo + pg - 1) & ~(pg - 1), b = hi & ~(pg - 1);
        return packed + (b > a && madvise((void *)a, b - a, MADV_DONTNEED) == 0 ? b - a : 0);
    }
    return 0;
}

void lf_pool_release_after(void *pool, const lf_node_t *node) {
    for (int i = 0; i < LF_MAX_SRC; i++)
        if (node->src[i]) lf_pool_drop_tensor_pages(pool, node->src[i]);
}

int lf_pool_load(lf_pool_t *p, lf_tensor_t *t, const void *host, size_t nbytes) {
    return lf_backend_tensor_set(p->be, t, host, nbytes);
}

int lf_pool_load_as(lf_pool_t *p, lf_tensor_t *t, const void *host, lf_type_t host_type,
                    size_t nbytes) {
    if ((unsigned)host_type >= LF_TYPE_COUNT) return LF_EINVAL;
    int64_t n = lf_tensor_nelements(t);
    /* Block types convert in whole rows (4096 is a multiple of every block). */
    if (n % lf_type_block(host_type) || nbytes != lf_type_row_bytes(host_type, n)) return LF_EINVAL;
    if (lf_type_is_quant(t->type) && host_type != t->type &&
        !lf_quant_can_quantize((lf_quant_type_t)(t->type - LF_TYPE_Q4_0)))
        return LF_EUNSUPPORTED;
    if (host_type == t->type) return lf_pool_load(p, t, host, nbytes);
    /* Through f32 in chunks, into one staging copy of the destination type. */
    size_t out_bytes = lf_tensor_nbytes(t);
    char *stage = lf_backend_host_alloc(p->be, out_bytes);
    float *tmp = malloc(4096 * sizeof *tmp);
    if (!stage || !tmp) {
        lf_backend_host_free(p->be, stage);
        free(tmp);
        return LF_ENOMEM;
    }
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t m = n - i < 4096 ? n - i : 4096;
        lf_type_to_f32(host_type, (const char *)host + lf_type_row_bytes(host_type, i), tmp, m);
        lf_type_from_f32(t->type, tmp, stage + lf_type_row_bytes(t->type, i), m);
    }
    int rc = lf_pool_load(p, t, stage, out_bytes);
    lf_backend_host_free(p->be, stage);
    free(tmp);
    return rc;
}

size_t lf_pool_used(const lf_pool_t *p) {
    return p->used;
}

size_t lf_pool_reserved(const lf_pool_t *p) {
    return p->reserved;
}

int lf_pool_count(const lf_pool_t *p) {
    return p->n;
}

int lf_pool_set_model(lf_pool_t *p, const char *model_key) {
    char *m = strdup(model_key ? model_key : "");
    if (!m) return LF_ENOMEM;
    free(p->model);
    p->model = m;
    return 0;
}

const char *lf_pool_model(const lf_pool_t *p) {
    return p->model;
}
