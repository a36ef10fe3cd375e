/* lf_idem: request fingerprints for idempotency keys. FNV-1a is enough:
 * the hash tells honest retries from mistakes, it guards no secret. */
#include "lf_idem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lf_error.h"

static uint64_t s_fnv(uint64_t h, const void *data, size_t len) {
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int lf_idem_hash(const lf_job_request_t *jr, bool seed_random, char out[LF_IDEM_HASH_LEN]) {
    lf_job_params_t p = jr->params; /* a shallow copy: only the seed changes */
    if (seed_random) p.seed = -1;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lf_params_encode(&p, &buf, &len);
    if (rc) return rc;
    uint64_t h = s_fnv(0xcbf29ce484222325ull, buf, len);
    free(buf);
    uint32_t tail[2] = {(uint32_t)jr->priority, jr->ttl_s};
    h = s_fnv(h, tail, sizeof tail);
    snprintf(out, LF_IDEM_HASH_LEN, "%016llx", (unsigned long long)h);
    return 0;
}
