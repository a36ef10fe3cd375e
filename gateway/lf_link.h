/* lf_link: the gateway's link to its brokers — one thread that owns a DEALER
 * per broker frontend and answers requests from the HTTP threads.
 *
 * An HTTP thread hands over a SUBMIT or CANCEL (lf_link_send); the link
 * thread sends it to a live broker (round-robin; a broker that cannot take
 * it right now is skipped), waits for the ACCEPTED or REPLY with the same
 * req_id and calls the request's callback. If no answer comes within
 * try_ms, the same bytes go to the next broker: a SUBMIT always carries an
 * idempotency key (the caller's, or one the gateway made), so a retry never
 * queues a job twice. A broker that refuses because it cannot reach Redis
 * (LF_ECONN), or says so in the answer to our heartbeat, gets no requests
 * while another broker can take them: the request goes there at once, and
 * the client never sees that broker's 503. After total_ms the callback gets LF_ETIMEDOUT.
 * With CURVE keys every DEALER is a CURVE client, and a broker's refusal of
 * our key (a failed handshake) is logged, rate-limited, by the link thread.
 *
 * Threading: lf_link_send from any thread; callbacks run on the link thread
 * and must be short (set a result, wake a request). Sockets are touched only
 * by the link thread. */
#ifndef LF_LINK_H
#define LF_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_proto.h"

typedef struct lf_link lf_link_t;

typedef struct {
    int code;            /* 0, an LF_E* from the broker's REPLY, LF_ETIMEDOUT, LF_ECANCELED (shutdown) */
    char message[200];
    char job_id[64];     /* ACCEPTED */
    int64_t position;    /* ACCEPTED: 0-based queue position */
    bool duplicate;      /* ACCEPTED: idempotency key matched an existing job */
    lf_job_status_t status; /* ACCEPTED: QUEUED, or ENHANCING (the gateway enhances its prompt) */
} lf_link_reply_t;

/* Runs on the link thread, exactly once per accepted lf_link_send. */
typedef void (*lf_link_fn)(void *arg, const lf_link_reply_t *reply);

/* CURVE client keys, Z85 text (40 characters each), borrowed for the call
 * of lf_link_new / lf_hub_new only (they are applied to the sockets there).
 * A NULL pointer to this struct, or an empty server_public, means plain TCP. */
typedef struct {
    const char *server_public;  /* the broker's public key */
    const char *public_key;     /* this gateway's */
    const char *secret_key;     /* this gateway's */
} lf_link_curve_t;

/* Make the raw libzmq socket zsock a CURVE client with these keys (before
 * it connects). 0 (nothing to do for plain TCP), or LF_EINVAL with a reason
 * in err when libzmq refuses a key. Used by lf_link and lf_hub. */
int lf_link_curve_apply(void *zsock, const lf_link_curve_t *curve, char *err, size_t errlen);

/* Connect to every endpoint (tcp://host:port) and start the thread.
 * try_ms: wait per broker before retrying on the next; total_ms: give up.
 * heartbeat_ms, liveness: a heartbeat goes to each broker every
 * heartbeat_ms; a broker not heard from for heartbeat_ms * liveness counts
 * as dead (0: LF_HEARTBEAT_MS, LF_HEARTBEAT_LIVENESS).
 * curve: NULL or keys (see above). NULL with a reason in err. Caller owns. */
lf_link_t *lf_link_new(char *const *endpoints, size_t n, int try_ms, int total_ms, int heartbeat_ms,
                       int liveness, const lf_link_curve_t *curve, char *err, size_t errlen);

/* How many brokers can take requests: heard from (any message) within the
 * liveness window and not saying that their job store (Redis) is
 * unreachable. *known (may be NULL) is false during the first window after
 * start, while silence proves nothing yet. Any thread. */
size_t lf_link_live(lf_link_t *self, bool *known);

/* Each broker as the link sees it, for health reports. */
typedef struct {
    const char *endpoint;    /* borrowed from the link */
    bool live;               /* heard within the liveness window */
    bool store_ok;           /* false while it says Redis is unreachable from it */
    int64_t heard_ms_ago;    /* -1: never */
} lf_link_broker_t;
/* Fills out[0..min(n, cap)) and returns n, the number of brokers. Any thread. */
size_t lf_link_brokers(lf_link_t *self, lf_link_broker_t *out, size_t cap);
/* Stop: pending requests are answered with LF_ECANCELED first. */
void lf_link_destroy(lf_link_t **self_p);
/* Answer every pending request with LF_ECANCELED and refuse new ones,
 * keeping the object. Idempotent. */
void lf_link_stop(lf_link_t *self);

/* Send msg (SUBMIT or CANCEL; the link sets req_id; msg stays the
 * caller's). On 0, fn(arg, reply) will be called once; on error (LF_EINVAL:
 * message does not encode; LF_ENOMEM; LF_ECANCELED: stopping) it will not. */
int lf_link_send(lf_link_t *self, lf_msg_t *msg, lf_link_fn fn, void *arg);

/* Counters for /metrics (approximate, lock-free reads). */
typedef struct {
    uint64_t sent, retried, timed_out, answered;
    uint64_t in_flight;
} lf_link_stats_t;
void lf_link_stats(lf_link_t *self, lf_link_stats_t *out);

#endif
