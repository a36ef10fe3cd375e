/* lf_ratelimit: token buckets in an open-addressing table keyed by a hash
 * of the key string; the bucket keeps the key text to rule out collisions. */
#include "lf_ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY_MAX 96

typedef struct {
    char key[S_KEY_MAX];
    double tokens;
    int64_t last_ms;
    bool used;
} s_bucket_t;

struct lf_ratelimit {
    pthread_mutex_t mu;
    double rate, burst;
    size_t cap; /* power of two */
    s_bucket_t *b;
};

lf_ratelimit_t *lf_ratelimit_new(double rate, double burst, int capacity) {
    if (!(rate > 0) || burst < 1 || capacity < 1) return NULL;
    lf_ratelimit_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->cap = 16;
    while (self->cap < (size_t)capacity * 2) self->cap *= 2;
    self->b = calloc(self->cap, sizeof *self->b);
    if (!self->b) {
        free(self);
        return NULL;
    }
    self->rate = rate;
    self->burst = burst;
    pthread_mutex_init(&self->mu, NULL);
    return self;
}

void lf_ratelimit_destroy(lf_ratelimit_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_ratelimit_t *self = *self_p;
    pthread_mutex_destroy(&self->mu);
    free(self->b);
    free(self);
    *self_p = NULL;
}

static uint64_t s_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

bool lf_ratelimit_take(lf_ratelimit_t *self, const char *key, int64_t now_ms, int *retry_after_s) {
    char k[S_KEY_MAX];
    strncpy(k, key ? key : "", sizeof k - 1);
    k[sizeof k - 1] = 0;
    pthread_mutex_lock(&self->mu);
    size_t mask = self->cap - 1, i = s_hash(k) & mask;
    /* Probe a short window; past it, recycle the stalest bucket seen. */
    s_bucket_t *hit = NULL, *victim = NULL;
    for (size_t n = 0; n < 8; n++, i = (i + 1) & mask) {
        s_bucket_t *b = &self->b[i];
        if (b->used && !strcmp(b->key, k)) {
            hit = b;
            break;
        }
        if (!b->used) {
            if (!victim || victim->used) victim = b;
        } else if (!victim || (victim->used && b->last_ms < victim->last_ms)) {
            victim = b;
        }
    }
    if (!hit) {
        hit = victim;
        memcpy(hit->key, k, sizeof k);
        hit->used = true;
        hit->tokens = self->burst;
        hit->last_ms = now_ms;
    }
    if (now_ms > hit->last_ms) {
        hit->tokens += (double)(now_ms - hit->last_ms) / 1000.0 * self->rate;
        if (hit->tokens > self->burst) hit->tokens = self->burst;
        hit->last_ms = now_ms;
    }
    bool ok = hit->tokens >= 1.0;
    if (ok) {
        hit->tokens -= 1.0;
    } else if (retry_after_s) {
        double wait = (1.0 - hit->tokens) / self->rate;
        int s = (int)ceil(wait);
        *retry_after_s = s < 1 ? 1 : s;
    }
    pthread_mutex_unlock(&self->mu);
    return ok;
}
