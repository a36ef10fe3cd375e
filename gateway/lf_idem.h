/* lf_idem: the fingerprint of a validated job request, stored with its
 * idempotency key so that a reused key with a different request is told
 * apart from an honest retry (Stripe's rule: same key, same parameters).
 *
 * Pure; thread-safe. */
#ifndef LF_IDEM_H
#define LF_IDEM_H

#include <stdbool.h>

#include "lf_validate.h"

#define LF_IDEM_HASH_LEN 17 /* 16 hex digits + NUL */

/* Hash the request's parameters, priority and TTL (FNV-1a 64 over the
 * params' wire encoding). seed_random: the client left the seed to us, so
 * the seed the gateway drew is not part of the request (a retry draws
 * another). Writes 16 lowercase hex digits to out. 0, or LF_ENOMEM /
 * LF_EINVAL from the encoder. */
int lf_idem_hash(const lf_job_request_t *jr, bool seed_random, char out[LF_IDEM_HASH_LEN]);

#endif
