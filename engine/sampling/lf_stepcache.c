/* lf_stepcache: step-caching decisions and the cached host tensors
 * (lf_stepcache.h). */
#include "lf_stepcache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_error.h"

/* A host buffer tied to the network and size it was made for. */
typedef struct {
    float *p;
    size_t n;
    const void *owner;
    int valid;
} s_buf_t;

struct lf_stepcache {
    lf_stepcache_opts_t o;
    int step, steps;
    s_buf_t first, rest, deep;
    int full, reused;
};

static const char *const s_names[LF_STEPCACHE_KIND_COUNT] = {"none", "fbcache", "deepcache"};

const char *lf_stepcache_kind_name(lf_stepcache_kind_t kind) {
    return (unsigned)kind < LF_STEPCACHE_KIND_COUNT ? s_names[kind] : NULL;
}

int lf_stepcache_kind_parse(const char *name, lf_stepcache_kind_t *out) {
    for (int k = 0; name && k < LF_STEPCACHE_KIND_COUNT; k++)
        if (!strcasecmp(name, s_names[k])) {
            *out = (lf_stepcache_kind_t)k;
            return 0;
        }
    return LF_EINVAL;
}

int lf_stepcache_opts_check(const lf_stepcache_opts_t *o, const char **field) {
    const char *bad = NULL;
    if (!o || (unsigned)o->kind >= LF_STEPCACHE_KIND_COUNT)
        bad = "kind";
    else if (!(o->threshold >= 0.f && o->threshold <= LF_STEPCACHE_MAX_THRESHOLD))
        bad = "threshold";
    else if (o->start < 0 || o->start > LF_STEPCACHE_MAX_WINDOW)
        bad = "start";
    else if (o->end < 0 || o->end > LF_STEPCACHE_MAX_WINDOW)
        bad = "end";
    else if (o->interval < 1 || o->interval > LF_STEPCACHE_MAX_INTERVAL)
        bad = "interval";
    else if (o->depth < 0 || o->depth > LF_STEPCACHE_MAX_DEPTH)
        bad = "depth";
    if (field) *field = bad;
    return bad ? LF_EINVAL : 0;
}

lf_stepcache_t *lf_stepcache_new(const lf_stepcache_opts_t *o) {
    if (lf_stepcache_opts_check(o, NULL)) return NULL;
    lf_stepcache_t *s = calloc(1, sizeof *s);
    if (s) s->o = *o;
    return s;
}

void lf_stepcache_destroy(lf_stepcache_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_stepcache_t *s = *self_p;
    free(s->first.p);
    free(s->rest.p);
    free(s->deep.p);
    free(s);
    *self_p = NULL;
}

const lf_stepcache_opts_t *lf_stepcache_opts(const lf_stepcache_t *self) { return &self->o; }

void lf_stepcache_begin(lf_stepcache_t *self, int step, int steps) {
    self->step = step;
    self->steps = steps;
}

void lf_stepcache_reset(lf_stepcache_t *self) {
    self->first.valid = self->rest.valid = self->deep.valid = 0;
}

double lf_stepcache_rel_l1(const float *a, const float *b, size_t n) {
    double d = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        d += fabs((double)a[i] - (double)b[i]);
        m += fabs((double)a[i]);
    }
    if (m == 0.0) return d == 0.0 ? 0.0 : INFINITY;
    return d / m; /* the two means share the count n */
}

/* Makes b hold n floats for owner; a change empties it. 0 or LF_ENOMEM. */
static int s_fit(s_buf_t *b, const void *owner, size_t n) {
    if (b->p && b->n == n && b->owner == owner) return 0;
    float *p = realloc(b->p, (n ? n : 1) * sizeof *p);
    if (!p) return LF_ENOMEM;
    b->p = p;
    b->n = n;
    b->owner = owner;
    b->valid = 0;
    return 0;
}

/* The warm-up / cool-down window: steps that always run in full. */
static int s_forced(const lf_stepcache_t *s) {
    return s->step < s->o.start || s->step >= s->steps - s->o.end;
}

int lf_stepcache_fb_check(lf_stepcache_t *self, const void *owner, const float *r, size_t n,
                          size_t n_rest) {
    s_buf_t *f = &self->first, *rest = &self->rest;
    const int same = f->valid && rest->valid && f->owner == owner && f->n == n &&
                     rest->owner == owner && rest->n == n_rest;
    if (same && !s_forced(self) && self->o.threshold > 0.f &&
        lf_stepcache_rel_l1(f->p, r, n) < (double)self->o.threshold)
        return 1;
    /* Full: r becomes the reference; the caller refills the rest. */
    if (s_fit(f, owner, n) || s_fit(rest, owner, n_rest)) return LF_ENOMEM;
    memcpy(f->p, r, n * sizeof *r);
    f->valid = 1;
    rest->valid = 0;
    return 0;
}

float *lf_stepcache_fb_rest(lf_stepcache_t *self) { return self->rest.p; }

void lf_stepcache_fb_stored(lf_stepcache_t *self) { self->rest.valid = 1; }

int lf_stepcache_dc_reuse(const lf_stepcache_t *self, const void *owner, size_t n) {
    const s_buf_t *d = &self->deep;
    if (!d->valid || d->owner != owner || d->n != n || s_forced(self)) return 0;
    return (self->step - self->o.start) % self->o.interval != 0;
}

float *lf_stepcache_dc_feature(lf_stepcache_t *self, const void *owner, size_t n) {
    return s_fit(&self->deep, owner, n) ? NULL : self->deep.p;
}

void lf_stepcache_dc_stored(lf_stepcache_t *self) { self->deep.valid = 1; }

void lf_stepcache_count(lf_stepcache_t *self, int full) {
    if (full)
        self->full++;
    else
        self->reused++;
}

int lf_stepcache_full(const lf_stepcache_t *self) { return self->full; }
int lf_stepcache_reused(const lf_stepcache_t *self) { return self->reused; }
