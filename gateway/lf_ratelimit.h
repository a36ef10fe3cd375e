/* lf_ratelimit: per-key token buckets (rate tokens per second, up to burst).
 *
 * Keys are API keys or client addresses. The table is bounded: when full, the
 * least recently used bucket is recycled (a client that returns after being
 * evicted simply starts with a full bucket). Time comes from the caller, so
 * tests drive it without sleeping. Thread-safe (one mutex; a take is a hash
 * lookup and some arithmetic). */
#ifndef LF_RATELIMIT_H
#define LF_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct lf_ratelimit lf_ratelimit_t;

/* rate > 0 tokens/s, burst >= 1, capacity = most keys tracked. Caller owns. */
lf_ratelimit_t *lf_ratelimit_new(double rate, double burst, int capacity);
void lf_ratelimit_destroy(lf_ratelimit_t **self_p);

/* Take one token for key at time now_ms. true = allowed; false = refused and
 * *retry_after_s (may be NULL) says when a token will be there (>= 1). */
bool lf_ratelimit_take(lf_ratelimit_t *self, const char *key, int64_t now_ms, int *retry_after_s);

#endif
