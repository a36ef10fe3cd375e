/* lf_hub: job events from every broker's PUB socket, fanned out to the
 * gateway's subscribers (SSE streams, blocking A1111 calls).
 *
 * One thread owns a SUB socket per broker events endpoint (subscribed to
 * everything: the topic is the job id, and a message whose topic nobody
 * here waits for is dropped before it is decoded). Subscribers register a
 * callback per job id from any thread; the hub calls it on its thread for
 * each event of that job, and about once a second with ev == NULL (a tick,
 * for heartbeats and deadlines). A callback returns LF_HUB_DROP to end its
 * subscription; the hub then calls release(arg).
 *
 * Threading: lf_hub_subscribe from any thread. Callbacks run on the hub
 * thread with the hub's lock held: they must not call lf_hub_* and must be
 * short. Ownership: the hub owns each subscription until it is dropped. */
#ifndef LF_HUB_H
#define LF_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "lf_link.h" /* lf_link_curve_t */
#include "lf_proto.h"

typedef struct lf_hub lf_hub_t;

enum { LF_HUB_KEEP = 0, LF_HUB_DROP = 1 };

/* ev: an EVENT message (borrowed for the call) or NULL for a tick.
 * hub_ud: the value given to lf_hub_new (e.g. a store for the hub thread). */
typedef int (*lf_hub_fn)(void *hub_ud, void *arg, const lf_msg_t *ev, int64_t now_ms);

/* Subscribe to every endpoint and start the thread. curve: NULL (plain TCP)
 * or the CURVE client keys, as for lf_link_new. NULL with a reason in err.
 * Caller owns. */
lf_hub_t *lf_hub_new(char *const *endpoints, size_t n, void *hub_ud, const lf_link_curve_t *curve,
                     char *err, size_t errlen);
/* Stop: every subscriber gets a final tick with now_ms = INT64_MAX (end
 * your stream / wake your request), then is released. */
void lf_hub_destroy(lf_hub_t **self_p);
/* The same final tick and release, keeping the object: later subscribes
 * get LF_ECANCELED. Idempotent. */
void lf_hub_stop(lf_hub_t *self);

/* Subscribe arg to job_id's events. release (may be NULL) is called once
 * when the subscription ends. Returns 0, LF_ENOMEM, LF_ECANCELED (stopping;
 * release is called at once). */
int lf_hub_subscribe(lf_hub_t *self, const char *job_id, lf_hub_fn fn, void (*release)(void *),
                     void *arg);

/* Counters for /metrics. */
typedef struct {
    uint64_t received, delivered, subscribers;
} lf_hub_stats_t;
void lf_hub_stats(lf_hub_t *self, lf_hub_stats_t *out);

#endif
