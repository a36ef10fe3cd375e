/* lf_strmap: FNV-1a hashing, linear probing, growth at 50% load. */
#include "lf_strmap.h"

#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

typedef struct {
    char *key; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    int64_t value;
} s_slot_t;

struct lf_strmap {
    s_slot_t *slots;
    size_t cap, size; /* cap a power of two */
};

static uint64_t s_hash(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return h;
}

lf_strmap_t *lf_strmap_new(void)
{
    lf_strmap_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 64;
    if (!(m->slots = calloc(m->cap, sizeof *m->slots))) {
        free(m);
        return NULL;
    }
    return m;
}

void lf_strmap_destroy(lf_strmap_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_strmap_t *m = *self_p;
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    free(m);
    *self_p = NULL;
}

static s_slot_t *s_find(s_slot_t *slots, size_t cap, const char *k, size_t len, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].key &&
           !(slots[i].hash == h && slots[i].len == len && memcmp(slots[i].key, k, len) == 0))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

int lf_strmap_put(lf_strmap_t *m, const char *key, size_t len, int64_t value)
{
    if (2 * (m->size + 1) > m->cap) {
        size_t nc = m->cap * 2;
        s_slot_t *ns = calloc(nc, sizeof *ns);
        if (!ns) return LF_ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key) *s_find(ns, nc, m->slots[i].key, m->slots[i].len, m->slots[i].hash) = m->slots[i];
        free(m->slots);
        m->slots = ns;
        m->cap = nc;
    }
    uint64_t h = s_hash(key, len);
    s_slot_t *s = s_find(m->slots, m->cap, key, len, h);
    if (!s->key) {
        if (!(s->key = malloc(len + 1))) return LF_ENOMEM;
        memcpy(s->key, key, len);
        s->key[len] = '\0';
        s->len = len;
        s->hash = h;
        m->size++;
    }
    s->value = value;
    return 0;
}

int lf_strmap_get(const lf_strmap_t *m, const char *key, size_t len, int64_t *value)
{
    s_slot_t *s = s_find(m->slots, m->cap, key, len, s_hash(key, len));
    if (!s->key) return 0;
    *value = s->value;
    return 1;
}

size_t lf_strmap_size(const lf_strmap_t *m)
{
    return m->size;
}
