/* lf_broker: the broker — a czmq zloop reactor that owns three sockets
 * (frontend ROUTER for gateways, backend ROUTER for workers, events PUB),
 * keeps every job's state in Redis through lf_store and asks lf_scheduler
 * which queued job goes to which idle worker.
 *
 * Frontend: SUBMIT -> ACCEPTED (after Redis stored it) or REPLY with an
 * error code; CANCEL -> REPLY. Backend: READY, HEARTBEAT, PROGRESS, RESULT,
 * FAILED, DISCONNECT in; ASSIGN, CANCEL, HEARTBEAT, DISCONNECT out. Events:
 * frames [job id][EVENT] for queued, started, progress, preview, done,
 * failed, cancelled.
 *
 * Several brokers may share one Redis: claims are atomic there, each broker
 * dispatches only to workers connected to it, and a broker that restarts (or
 * takes over from a dead one) adopts the jobs its workers say they run.
 *
 * Timing: heartbeats every heartbeat_ms both ways (spread over the interval
 * per worker); a worker silent for liveness beats is dropped and its lease
 * is no longer renewed, so the reaper (every reap_ms, any broker) requeues
 * its job when the lease ends. Dispatch runs after every batch of messages
 * and every 100 ms while workers are idle, from a cache of queued candidates
 * refreshed at most every 100 ms (jobs queued through another broker are
 * seen within that time; this broker's own submits at once). A job that a
 * worker holds but another broker owns is adopted once that broker's
 * liveness key (half a lease) is gone.
 *
 * Threading: a broker and its sockets belong to the thread that runs it.
 * Ownership: lf_broker_new returns an object the caller owns. */
#ifndef LF_BROKER_H
#define LF_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include <czmq.h>

#include "lf_store.h"

typedef struct lf_broker lf_broker_t;

typedef struct {
    const char *id;            /* broker id (owner of its jobs in Redis); default host-pid */
    /* Endpoints to bind (comma-separated lists allowed). */
    const char *frontend;      /* gateways, default tcp://127.0.0.1:5555 */
    const char *backend;       /* workers, default tcp://127.0.0.1:5556 */
    const char *events;        /* PUB, default tcp://127.0.0.1:5557 */
    lf_store_opts_t redis;
    lf_store_limits_t limits;  /* zero fields: lf_store defaults */
    int heartbeat_ms;          /* default LF_HEARTBEAT_MS */
    int liveness;              /* missed beats before a worker is dead; default 3 */
    int64_t starve_ms;         /* scheduler starvation bound; default 30000 */
    int reap_ms;               /* reaper period; default 250 */
    /* A queued job that no live worker of the farm can run (model not
     * served, or over every such worker's max_pixels) fails with
     * LF_ENOCAPABLE after this long, rather than at its queue TTL; 0 =
     * 60000, negative = never (LF_UNRUNNABLE_GRACE_S in seconds). With no
     * live worker at all, jobs wait (the farm is down, not unable). */
    int64_t unrunnable_grace_ms;
    const char *curve_secret;  /* broker certificate (zcert, with secret key); NULL = no CURVE */
    const char *curve_allow;   /* directory of allowed client public certificates */
} lf_broker_opts_t;

/* Bind the sockets, connect to Redis, start CURVE authentication if asked.
 * NULL with a reason in err on failure. Caller owns the result. */
lf_broker_t *lf_broker_new(const lf_broker_opts_t *opts, char *err, size_t errlen);
/* Tell connected workers goodbye, close everything. Accepts NULL. */
void lf_broker_destroy(lf_broker_t **self_p);

/* Run the reactor until interrupted (SIGINT/SIGTERM via czmq's handler, or
 * a message on `pipe` when it is not NULL). Returns 0. */
int lf_broker_run(lf_broker_t *self, zsock_t *pipe);

/* zactor body for running a broker in-process (tests): args is a
 * const lf_broker_opts_t *. Signals 0 when running, -1 on failure;
 * "$TERM" stops it. */
void lf_broker_actor(zsock_t *pipe, void *args);

/* Counters for logs and tests. */
typedef struct {
    uint64_t submitted, duplicates, rejected;
    uint64_t assigned, claim_races, adopted;
    uint64_t batches, batched; /* batches of two or more jobs sent, and their jobs */
    uint64_t completed, failed, cancelled, requeued, dropped_stale;
    uint64_t workers_joined, workers_lost;
    uint64_t redis_errors, bad_frames;
    /* Queue wait of assigned jobs (first submit -> ASSIGN sent), counts
     * per bucket: < 1, 5, 10, 50, 100, 500, 1000 ms, and above. */
    uint64_t wait_hist[8];
    /* Reactor handlers that ran longer than 20 ms (each one delays every
     * message behind it), and the longest seen. */
    uint64_t slow_handlers;
    int64_t slowest_handler_ms;
} lf_broker_stats_t;
void lf_broker_stats(const lf_broker_t *self, lf_broker_stats_t *out);

#endif
