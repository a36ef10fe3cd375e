/* lf_testbroker: helpers for the broker's integration tests — a broker run
 * in-process (zactor) on free ports against a real redis-server, and
 * simulated workers, gateways and event subscribers speaking lf_proto over
 * real ZeroMQ sockets. Not thread safe; one test at a time. */
#ifndef LF_TESTBROKER_H
#define LF_TESTBROKER_H

#include <stdbool.h>
#include <stdint.h>

#include <czmq.h>

#include "lf_broker.h"
#include "lf_proto.h"
#include "lf_store.h"

#define TB_HB_MS 200 /* the brokers' and simulated workers' heartbeat */

typedef struct {
    char fe[64], be[64], ev[64];
    char id[32];
    lf_broker_opts_t opts;
    zactor_t *actor;
} tb_broker_t;

/* Fill endpoints on free ports and options (heartbeat TB_HB_MS, lease 1 s,
 * reaper 100 ms) against redis_port; then start. */
void tb_broker_init(tb_broker_t *b, const char *id, int redis_port);
void tb_broker_start(tb_broker_t *b);
void tb_broker_stop(tb_broker_t *b);

/* A simulated worker: a DEALER on the broker's backend. */
typedef struct {
    zsock_t *sock;
    char id[64];
    const char *models[4];
    size_t n_models;
    const char *resident;
    uint64_t max_pixels;
    bool busy;
    char job[40];
    bool beating;            /* send heartbeats while waiting */
    uint32_t assigns;        /* ASSIGNs read, said in READY and heartbeats like a worker */
    int64_t next_beat;
    uint32_t batch_max;      /* caps.batch_max (LF_BATCH_MAX); 0 = one job at a time */
    char open[4][40];        /* the open jobs of its batch, said in READY and heartbeats
                                (`jobs`, attempt open_attempt[i]); n_open 0 = not said */
    uint32_t open_attempt[4];
    size_t n_open;
    int cancels;             /* CANCEL messages seen */
    char cancelled[40];
} tb_worker_t;

/* Connect and send READY. cert/server_key: CURVE (NULL = plain). */
void tb_worker_open(tb_worker_t *w, const char *id, const char *endpoint, const char *model,
                    zcert_t *cert, const char *server_key);
void tb_worker_close(tb_worker_t *w);
void tb_worker_ready(tb_worker_t *w);
/* Wait up to timeout_ms for a message of `type` (others are absorbed:
 * CANCEL is counted); heartbeats go out meanwhile when beating. 0 or -1.
 * *out (may be NULL) receives the message (caller clears). */
int tb_worker_wait(tb_worker_t *w, lf_msg_type_t type, int timeout_ms, lf_msg_t *out);
void tb_worker_send(tb_worker_t *w, const lf_msg_t *m);
/* Answer the running job with a RESULT (one 4-byte image) and go idle. */
void tb_worker_result(tb_worker_t *w, const char *job);
/* Keep heartbeating for ms. */
void tb_worker_idle(tb_worker_t *w, int ms);

/* A simulated gateway: a DEALER on the frontend. */
typedef struct {
    zsock_t *sock;
    uint64_t next_req;
} tb_gateway_t;

void tb_gateway_open(tb_gateway_t *g, const char *endpoint, zcert_t *cert, const char *server_key);
void tb_gateway_close(tb_gateway_t *g);
/* SUBMIT and wait for its answer: 0 and id (>= 40 bytes), or the REPLY's code. */
int tb_submit(tb_gateway_t *g, const char *model, lf_priority_t prio, const char *idem,
              char *id, bool *duplicate);
/* SUBMIT with a queue TTL and max attempts (0 = broker defaults). */
int tb_submit_opts(tb_gateway_t *g, const char *model, uint32_t ttl_s, uint32_t max_attempts,
                   char *id);
/* Send a SUBMIT without waiting (pipelined tests); returns its req id. */
uint64_t tb_submit_async(tb_gateway_t *g, const char *model);
int tb_cancel(tb_gateway_t *g, const char *id);
/* SUBMIT (prompt "a cat") that starts "enhancing" for enhance_ms: 0 and id,
 * the ACCEPTED's status in *status; or the REPLY's code. */
int tb_submit_enhance(tb_gateway_t *g, const char *model, uint32_t enhance_ms, char *id,
                      lf_job_status_t *status);
/* ENHANCED with the LLM's prompt, or (prompt NULL) the error: the REPLY's code. */
int tb_enhanced(tb_gateway_t *g, const char *id, const char *prompt, const char *error);

/* Event subscriber (all topics). */
zsock_t *tb_sub_open(const char *endpoint);
/* Wait for an event of `kind` for job `id` (NULL = any); 0 or -1. */
int tb_sub_wait(zsock_t *sub, const char *id, lf_event_kind_t kind, int timeout_ms, lf_msg_t *out);

lf_store_t *tb_store(int redis_port);
lf_job_status_t tb_status(lf_store_t *s, const char *id);
/* Poll until the job reaches status st (or timeout): 0 or -1. */
int tb_wait_status(lf_store_t *s, const char *id, lf_job_status_t st, int timeout_ms);

#endif
