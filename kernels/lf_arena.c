/* lf_arena: greedy best-fit offset planning for buffers with known
 * lifetimes (the scheme of TFLite's arena planner). */
#include "lf_arena.h"

#include <stdbool.h>
#include <stdlib.h>

#include "lf_error.h"

typedef struct {
    size_t size, offset;
    int first, last;
    bool placed;
} s_buf_t;

struct lf_arena {
    s_buf_t *bufs;
    int n, cap;
    size_t align, peak, total;
};

lf_arena_t *lf_arena_new(size_t alignment) {
    if (alignment == 0) alignment = 256;
    if (alignment & (alignment - 1)) return NULL;
    lf_arena_t *a = calloc(1, sizeof *a);
    if (a) a->align = alignment;
    return a;
}

void lf_arena_destroy(lf_arena_t **arena_p) {
    if (!arena_p || !*arena_p) return;
    free((*arena_p)->bufs);
    free(*arena_p);
    *arena_p = NULL;
}

int lf_arena_add(lf_arena_t *a, size_t size, int first, int last) {
    if (first < 0 || last < first) return LF_EINVAL;
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 64;
        s_buf_t *b = realloc(a->bufs, (size_t)cap * sizeof *b);
        if (!b) return LF_ENOMEM;
        a->bufs = b, a->cap = cap;
    }
    size_t sz = (size + a->align - 1) & ~(a->align - 1);
    a->bufs[a->n] = (s_buf_t){.size = sz ? sz : a->align, .first = first, .last = last};
    a->total += a->bufs[a->n].size;
    a->peak = 0;
    return a->n++;
}

typedef struct {
    size_t size;
    int first, id;
} s_key_t;

static int s_by_size(const void *x, const void *y) {
    const s_key_t *a = x, *b = y;
    if (a->size != b->size) return a->size < b->size ? 1 : -1;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return a->id - b->id;
}

static int s_by_offset(const void *x, const void *y) {
    const s_buf_t *a = *(const s_buf_t *const *)x, *b = *(const s_buf_t *const *)y;
    return a->offset < b->offset ? -1 : a->offset > b->offset ? 1 : 0;
}

int lf_arena_plan(lf_arena_t *a) {
    a->peak = 0;
    if (a->n == 0) return 0;
    s_key_t *keys = malloc((size_t)a->n * sizeof *keys);
    int *order = malloc((size_t)a->n * sizeof *order);
    const s_buf_t **live = malloc((size_t)a->n * sizeof *live);
    if (!keys || !order || !live) {
        free(keys);
        free(order);
        free(live);
        return LF_ENOMEM;
    }
    for (int i = 0; i < a->n; i++) {
        keys[i] = (s_key_t){.size = a->bufs[i].size, .first = a->bufs[i].first, .id = i};
        a->bufs[i].placed = false;
    }
    qsort(keys, (size_t)a->n, sizeof *keys, s_by_size);
    for (int i = 0; i < a->n; i++) order[i] = keys[i].id;
    free(keys);
    for (int k = 0; k < a->n; k++) {
        s_buf_t *b = &a->bufs[order[k]];
        int nl = 0;
        for (int i = 0; i < k; i++) {
            const s_buf_t *o = &a->bufs[order[i]];
            if (o->first <= b->last && b->first <= o->last) live[nl++] = o;
        }
        qsort(live, (size_t)nl, sizeof *live, s_by_offset);
        size_t best = (size_t)-1, best_gap = (size_t)-1, cursor = 0;
        for (int i = 0; i < nl; i++) {
            if (live[i]->offset > cursor) {
                size_t gap = live[i]->offset - cursor;
                if (gap >= b->size && gap < best_gap) best = cursor, best_gap = gap;
            }
            size_t end = live[i]->offset + live[i]->size;
            if (end > cursor) cursor = end;
        }
        b->offset = best != (size_t)-1 ? best : cursor;
        b->placed = true;
        if (b->offset + b->size > a->peak) a->peak = b->offset + b->size;
    }
    free(order);
    free(live);
    return 0;
}

size_t lf_arena_offset(const lf_arena_t *a, int id) {
    LF_ASSERT(id >= 0 && id < a->n && a->bufs[id].placed);
    return a->bufs[id].offset;
}

size_t lf_arena_peak(const lf_arena_t *a) {
    return a->peak;
}

size_t lf_arena_total(const lf_arena_t *a) {
    return a->total;
}

int lf_arena_count(const lf_arena_t *a) {
    return a->n;
}

void lf_arena_reset(lf_arena_t *a) {
    a->n = 0;
    a->peak = a->total = 0;
}
