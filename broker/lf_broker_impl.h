/* lf_broker_impl: internals shared by the broker's files (not public).
 *   lf_broker.c           lifecycle, sockets, CURVE, gateway messages, timers
 *   lf_broker_workers.c   the worker table, worker messages, adoption, retries
 *   lf_broker_dispatch.c  the candidate cache and dispatch (scheduler + claims) */
#ifndef LF_BROKER_IMPL_H
#define LF_BROKER_IMPL_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "lf_broker.h"
#include "lf_proto.h"
#include "lf_store.h"

#define LF__B_BATCH 256            /* messages read per wake-up */
#define LF__B_PEEK_MAX 64          /* candidates per priority per dispatch round */
#define LF__B_DISPATCH_ROUNDS 4
#define LF__B_POLL_MS 100          /* dispatch poll for jobs queued elsewhere */
#define LF__B_RETRY_MAX 4096       /* worker answers kept while Redis is away */
#define LF__B_CACHE_MS 100         /* candidate cache lifetime */
#define LF__B_SCAN_MAX 1024        /* queue entries looked at per priority per refresh */
#define LF__B_BEAT_SLICES 10       /* heartbeats go out spread over this many ticks */
#define LF__B_SLOW_MS 20           /* a handler running longer is logged (rate-limited) */
#define LF__B_ASSIGN_WAIT_BEATS 10 /* a worker report predating our ASSIGN is trusted after
                                      this many beats (the ASSIGN is taken as lost) */
#define LF__B_BATCH_MAX 16         /* jobs in one worker's batch at most (as LF_RUNNER_BATCH_MAX) */

/* A job of a worker's batch besides its first (lf__worker_t.job). */
typedef struct {
    char id[40];
    uint32_t attempt;
    bool owned;               /* we renew its lease */
    bool open;                /* no RESULT/FAILED from the worker yet */
} lf__member_t;

typedef enum { LF__W_IDLE = 0, LF__W_BUSY } lf__wstate_t;

typedef struct {
    char *id;
    zframe_t *ident;          /* ROUTER routing id of its current connection */
    char *ident_hex;
    lf_worker_caps_t caps;
    uint8_t *caps_blob;
    size_t caps_len;
    const char **models;      /* borrowed from caps, for the scheduler */
    int64_t seen;             /* mono ms */
    lf__wstate_t state;
    char job[40];             /* job it runs ("" = unknown, e.g. another broker's) */
    uint32_t attempt;
    bool owned;               /* we renew its lease */
    bool job_open;            /* job has had no RESULT/FAILED yet (a batch stays busy until all have) */
    lf__member_t batch[LF__B_BATCH_MAX - 1]; /* the other jobs of its batch */
    size_t n_batch;
    int64_t assigned_at;      /* mono ms */
    uint32_t assigns_sent;    /* ASSIGNs sent on its current connection */
    int64_t assign_sent_at;   /* mono ms of the last of them */
    int64_t adopt_at;         /* mono ms of the last adoption attempt */
    int64_t last_sent;        /* mono ms of our last message to it (heartbeats fill gaps) */
    int64_t touched_at;       /* mono ms of its last lease renewal + registry write */
    long idle_pos;            /* index in idle[], -1 when not idle */
    uint64_t jobs_done;
} lf__worker_t;

/* A gateway's RESCAN (refresh-loras) waiting for the workers it was relayed
 * to: answered when each has sent its new caps, or at the deadline. */
typedef struct {
    zmsg_t *env;              /* the gateway's envelope (owned) */
    uint64_t req_id;
    char **ids;               /* workers still to answer (owned) */
    size_t n, asked;
    int64_t deadline;         /* mono ms */
} lf__rescan_t;
/* Under the gateway link's 2 s retry: a worker still hashing a large new
 * file then answers after the gateway did, and its list lands in the
 * registry a moment later. */
#define LF__B_RESCAN_MS 1500

/* A worker's RESULT/FAILED that Redis could not take yet. */
typedef struct {
    char *worker;
    zmsg_t *msg;              /* [payload] */
} lf__retry_t;

/* A worker's PROGRESS/RESULT/FAILED read in this drain, stored in Redis
 * together (one pipeline) at its end. */
typedef struct {
    lf_msg_t msg;             /* owned */
    char *worker;             /* owned */
    uint32_t attempt;         /* fencing, as our record had it; 0 = any */
    zframe_t *raw;            /* RESULT/FAILED payload, kept for a retry */
} lf__pending_t;

struct lf_broker {
    char id[128];
    lf_broker_opts_t opts;
    char *fe_ep, *be_ep, *ev_ep;
    lf_store_t *store;
    zsock_t *fe, *be, *pub;
    zactor_t *auth;
    zloop_t *loop;
    zhashx_t *workers;        /* id -> lf__worker_t (owns) */
    zhashx_t *by_ident;       /* ident hex -> lf__worker_t (borrowed) */
    lf__worker_t **idle;
    size_t n_idle, cap_idle;
    zlistx_t *retries;        /* lf__retry_t */
    lf__pending_t *pend;      /* reports of the current backend drain */
    size_t n_pend, cap_pend;
    bool dispatch_pending;
    /* Queued candidates from the last peek, kept for LF__B_CACHE_MS so that a
     * worker going idle costs one claim, not a peek and a claim. Jobs this
     * broker queues are added as they are accepted; jobs queued elsewhere
     * show up at the next refresh. complete[p]: the peek saw all of
     * priority p's queue, so appending our own submits keeps FIFO. */
    lf_store_candidate_t cache[3 * LF__B_PEEK_MAX];
    size_t n_cache;
    int64_t cache_at;         /* mono ms of the peek; 0 = stale */
    bool complete[LF_PRIO__COUNT];
    int64_t next_beat;        /* mono ms when this broker's liveness key is due */
    lf_codec_stats_t codec;
    lf_broker_stats_t stats;
    zhashx_t *unrunnable;     /* queued job id -> mono ms since no live worker can run it */
    int64_t redis_warned;     /* mono ms of the last "redis down" log */
    /* Redis unreachable (a call failed with LF_ECONN; cleared by the next
     * reaper round that reaches it): no claims succeed, so nothing is
     * assigned; gateways learn it from the answer to their heartbeats and
     * send their submits to another broker. */
    bool redis_down;
    int64_t slow_warned;      /* mono ms of the last slow-handler log */
    lf__rescan_t *rescans;    /* refresh-loras requests in flight */
    size_t n_rescans;
};

static inline int64_t lf__now(void) { return zclock_time(); }  /* wall ms (as stored in Redis) */
static inline int64_t lf__mono(void) { return zclock_mono(); } /* monotonic ms (liveness) */

/* lf_broker.c */
void lf__redis_error(lf_broker_t *self, const char *what, int rc);
/* Encode m and send envelope + payload (the envelope is taken). */
int lf__send_to(zsock_t *sock, zmsg_t *envelope, const lf_msg_t *m);
void lf__send_worker(lf_broker_t *self, lf__worker_t *w, const lf_msg_t *m);
/* PUB [job id][EVENT]; extra (may be NULL) supplies step/steps/preview/code/message/worker. */
void lf__publish(lf_broker_t *self, const char *job_id, lf_event_kind_t ev, lf_job_status_t st,
                 const lf_msg_t *extra);
void lf__publish_finish(lf_broker_t *self, const char *job_id, const lf_store_finish_t *f,
                        const char *worker);

/* lf_broker_workers.c */
void lf__send_cancel(lf_broker_t *self, lf__worker_t *w, const char *job);
void lf__set_idle(lf_broker_t *self, lf__worker_t *w);
void lf__set_busy(lf_broker_t *self, lf__worker_t *w, const char *job, uint32_t attempt,
                  bool owned);
/* job of w's batch (its first or another) is ours no more: stop renewing its lease. */
void lf__disown(lf__worker_t *w, const char *job);
void lf__worker_free(void **item);                 /* zhashx destructor */
void lf__worker_drop(lf_broker_t *self, lf__worker_t *w);
/* lf_broker.c: a worker answered a RESCAN (its caps are stored). */
void lf__rescan_answered(lf_broker_t *self, const char *worker_id);
void lf__on_worker_frame(lf_broker_t *self, zframe_t *ident, zframe_t *payload);
void lf__retry_answers(lf_broker_t *self);         /* answers kept while Redis was away */
void lf__retry_free(void **item);                  /* zlistx destructor */
/* Store the reports read in this drain (one pipeline) and act on them. */
void lf__flush_reports(lf_broker_t *self);

/* lf_broker_dispatch.c */
void lf__dispatch(lf_broker_t *self);
void lf__cache_add(lf_broker_t *self, const lf_store_submitted_t *o, const lf_msg_t *m);
/* Fail the queued jobs no live worker has been able to run for the grace period. */
void lf__sweep_unrunnable(lf_broker_t *self);

#endif
