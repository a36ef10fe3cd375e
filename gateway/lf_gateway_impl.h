/* lf_gateway_impl: what the gateway's handler files share (lf_gateway.c,
 * lf_api.c, lf_a1111.c, lf_openai.c, lf_wait.c). Not a public interface. */
#ifndef LF_GATEWAY_IMPL_H
#define LF_GATEWAY_IMPL_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lf_config.h"
#include "lf_enhancer.h"
#include "lf_fleet.h"
#include "lf_gateway.h"
#include "lf_http.h"
#include "lf_hub.h"
#include "lf_link.h"
#include "lf_ratelimit.h"
#include "lf_routes.h"
#include "lf_blobstore.h"
#include "lf_store.h"
#include "lf_validate.h"

#define LF__POOL_MAX 64
#define LF__HIST_N 12 /* HTTP latency buckets */
#define LF__A1111_MAX 256

struct lf_gateway {
    /* settings */
    char host[64];
    int port, threads;
    size_t max_body;
    char web_root[PATH_MAX];
    bool have_web;
    char **api_keys;
    size_t n_keys;
    int64_t sync_timeout_ms;
    int64_t upload_ttl_s, upload_max_bytes, upload_max_pixels;
    char default_model_cfg[128];
    char cors[256];
    size_t n_brokers;

    lf_http_t *http;
    lf_link_t *link;
    lf_hub_t *hub;
    lf_store_t *hub_store;   /* used only on the hub thread */
    lf_ratelimit_t *rl;

    /* Redis connections for the HTTP threads. */
    lf_store_opts_t sopts;
    char redis_host[128], redis_prefix[64];
    pthread_mutex_t pool_mu;
    lf_store_t *pool[LF__POOL_MAX];
    int n_pool;

    /* External image store (LF_IMAGE_STORE; NULL = images in Redis), shared
     * by every store of the pool (thread-safe), and its health, checked at
     * most every LF__BLOB_CHECK_MS for /healthz. */
    lf_blobstore_t *blobs;
    pthread_mutex_t blob_mu;
    int64_t blob_checked_ms;
    int blob_rc;
    char blob_err[512];

    /* Models the live workers advertise, refreshed every ~2 s (at once while
     * none is known), and the worker views they came from (lf_fleet). */
    pthread_mutex_t model_mu;
    json_t *models;          /* array of {name, kind, family, resolution, preview, workers, resident} */
    json_t *vaes;            /* array of {name, workers, family, latent_channels}: separate VAEs (models/vae/) */
    json_t *upscalers;       /* array of {name, workers}: upscaler models (models/upscale_models/) */
    json_t *ad_models;       /* array of {name, workers}: ADetailer detectors (BlazeFace, models/adetailer/) */
    char default_model[128]; /* "" while no worker advertises a model */
    int64_t models_at_ms;
    lf_worker_view_t *ws;
    size_t n_ws;

    /* 4xx/5xx log lines: a token bucket, and how many it held back. */
    lf_ratelimit_t *log_rl;
    atomic_uint_fast64_t log_dropped;

    /* A1111 jobs in flight through this gateway (progress, interrupt;
     * kept by lf_wait). */
    pthread_mutex_t a_mu;
    char a_jobs[LF__A1111_MAX][64];
    int n_a_jobs;

    /* Prompt enhancement (lf_enhancer; NULL when LF_ENHANCE_URL is unset)
     * and the enhance_ms its SUBMITs carry (lf__submit). */
    lf_enhancer_t *enhancer;
    uint32_t enhance_wait_ms;

    /* HTTP metrics by route (index = lf_route_id_t; 0 = static/unmatched). */
    atomic_uint_fast64_t req_by_class[LF_ROUTE__COUNT][6];
    atomic_uint_fast64_t lat_bucket[LF_ROUTE__COUNT][LF__HIST_N];
    atomic_uint_fast64_t lat_sum_us[LF_ROUTE__COUNT];
    atomic_uint_fast64_t lat_count[LF_ROUTE__COUNT];
};

/* Per-request handler state (lf_req_state). */
typedef struct {
    lf_gateway_t *gw;
    lf_route_match_t m;
    int stage;
    lf_link_reply_t reply;  /* written by the link thread before the wake */
    atomic_int waited;      /* 0 waiting, 1 job ended, 2 timed out/stopping */
    atomic_bool abandoned;  /* handler stopped waiting: the hub drops the waiter */
    lf_job_request_t jr;
    json_t *body;           /* parsed request body */
    char job_id[64];
    int64_t deadline_ms;
    bool img2img;
} lf__rstate_t;

extern const double lf__hist_le[LF__HIST_N];

/* Stores for HTTP threads: get one (NULL when Redis is unreachable), give it back. */
lf_store_t *lf__store_get(lf_gateway_t *gw);
void lf__store_put(lf_gateway_t *gw, lf_store_t *st, int last_rc);

/* Answers. They return LF_HTTP_DONE so handlers can `return lf__err(...)`. */
int lf__err(lf_req_t *req, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int lf__verr(lf_req_t *req, const lf_verr_t *e);
int lf__json(lf_req_t *req, int status, json_t *j); /* takes j */
/* An error answer in one dialect's shape: lf__err (native and A1111), or
 * OpenAI's {"error": {message, type, param, code}} in lf_openai.c. field may
 * be NULL (none). Returns LF_HTTP_DONE. */
typedef int (*lf__answer_fn)(lf_req_t *req, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The one mapping of an LF_E* code from the store, link or hub onto HTTP:
 * the status, the API's error code ("not_found", "unavailable", ...) and
 * whether the client should retry (503: answer with Retry-After: 1). */
void lf__err_status(int code, int *status, const char **api_code, bool *retry);
/* An LF_E* code from the store or link -> HTTP answer through lf__err_status,
 * `what` naming what failed; answer gives the shape (lf__err_code: lf__err). */
int lf__err_code_as(lf_req_t *req, int code, const char *what, lf__answer_fn answer);
int lf__err_code(lf_req_t *req, int code, const char *what);
/* Parse the body as JSON; on failure answers 400 and returns NULL. */
json_t *lf__body_json(lf_req_t *req);

int64_t lf__now_ms_wall(void);
int64_t lf__mono_ms(void);
/* A random seed in 0..2^32-1. */
int64_t lf__random_seed(void);

/* Default model ("" while no worker has advertised one) and model list
 * (cached; st may be NULL: the cache is used as it is). */
void lf__models(lf_gateway_t *gw, lf_store_t *st, char *default_model, size_t len, json_t **models);
/* The separate VAEs live workers have, [{name, workers}] (caller owns). */
json_t *lf__vaes(lf_gateway_t *gw, lf_store_t *st);
/* The names of the VAEs that fit model `model` (lf_fleet_model_vaes; caller owns). */
json_t *lf__model_vaes(lf_gateway_t *gw, lf_store_t *st, const char *model);
/* The upscaler models live workers have: [{name, workers}] (caller owns). */
json_t *lf__upscalers(lf_gateway_t *gw, lf_store_t *st);
/* The ADetailer detectors live workers have (caller owns). */
json_t *lf__ad_models(lf_gateway_t *gw, lf_store_t *st);
/* The validate context: the default model filled in (the diagnostic model as
 * a stand-in while none is known: lf__admit then answers 503). */
void lf__validate_ctx(lf_gateway_t *gw, lf_store_t *st, lf_validate_ctx_t *ctx, char *buf, size_t len);
/* May this validated job go to a broker? Uses the list lf__validate_ctx
 * refreshed. 0 = yes. Otherwise it has answered (503 + Retry-After when no
 * broker is live or no worker has advertised a model; 400 unknown_model
 * naming model_field; 400 naming width/batch_size when no live worker could
 * ever run it) and returns -1. */
int lf__admit(lf_gateway_t *gw, lf_req_t *req, const lf_job_params_t *p, const char *model_field);
/* The same decision without answering: 0, or LF_EINVAL with *e set (status
 * 503 wants a Retry-After), for routes that answer in another shape. */
int lf__admit_check(lf_gateway_t *gw, const lf_job_params_t *p, const char *model_field, lf_verr_t *e);
/* Is model `name` served by a live worker (cached list)? */
bool lf__model_served(lf_gateway_t *gw, const char *name);

/* A job view as the API shows it (caller owns). */
json_t *lf__job_json(const lf_job_view_t *v);

/* Route handlers. */
int lf__api_handle(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st);
int lf__a1111_handle(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st);
int lf__openai_handle(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st);
int lf__metrics(lf_gateway_t *gw, lf_req_t *req);

/* Shared async helpers: send a SUBMIT for st->jr; the reply lands in
 * st->reply and wakes req. A job with enhance_prompt (and an enhancer) is
 * accepted "enhancing" (st->reply.status): the broker stores it, and the
 * enhancer rewrites its prompt in the background and sends the broker an
 * ENHANCED, which queues it; so every dialect gets enhancement, the client
 * gets its answer at once and no request waits on the LLM. Answers an
 * error itself on failure (returns LF_HTTP_DONE) or returns LF_HTTP_PENDING. */
int lf__submit(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, const char *idem);
/* Send a CANCEL (reply to st when req != NULL, else fire-and-forget). */
int lf__cancel(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, const char *job_id);
/* Send a RESCAN (refresh-loras: the workers list their LoRA folders again);
 * the broker's REPLY lands in st->reply once they have (or after ~1.5 s). */
int lf__rescan(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st);

/* Blocking a request until its job ends (lf_wait.c), for the dialects that
 * answer a generation with its result (A1111, OpenAI images). What differs
 * between them is the shape of the answer, given by a static const table. */
typedef struct {
    /* Errors (store, link, hub) in the dialect's shape, via lf__err_code_as. */
    lf__answer_fn answer;
    /* The broker refused the SUBMIT (st->reply.code != 0). NULL: answer
     * st->reply.code as lf__err_code_as(..., "submit", answer) does. */
    int (*refused)(lf_req_t *req, lf__rstate_t *st);
    /* The job ended (done, failed or cancelled): answer from v. stt is
     * borrowed, for reading the images; v is cleared by the caller. */
    int (*finish)(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, lf_store_t *stt, lf_job_view_t *v);
    /* The sync timeout (gw->sync_timeout_ms) passed first: answer a 504. */
    int (*timeout)(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st);
    /* List the job among the A1111 jobs in flight (progress, interrupt). */
    bool track;
} lf__wait_ops_t;

/* Stages 1 to 3 of a blocking generation, after lf__submit (stage 0 sets
 * st->stage = 1): take the broker's answer, subscribe a waiter to the job's
 * events, read the job from Redis. Returns LF_HTTP_PENDING (the request is
 * woken when the job ends or the deadline passes, and this is called again)
 * or LF_HTTP_DONE, having answered through ops. HTTP threads only. */
int lf__wait_job(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, const lf__wait_ops_t *ops);
/* Image i of an ended job, read from Redis as base64 (caller owns *b64).
 * On failure answers through answer and returns -1, *b64 untouched. */
int lf__wait_image_b64(lf_req_t *req, lf_store_t *stt, const char *job_id, uint32_t i, lf__answer_fn answer,
                       char **b64);
/* The A1111 jobs in flight, oldest first: copies up to max ids and returns
 * how many there are (which may be more than max). */
int lf__wait_active(lf_gateway_t *gw, char (*ids)[64], int max);

/* Uploads shared by /v1/uploads and A1111 img2img: check limits from the
 * header, decode to verify, store. On failure answers and returns nonzero. */
int lf__upload_store(lf_gateway_t *gw, lf_req_t *req, lf_store_t *stt, const uint8_t *data,
                     size_t len, const char *field, char *id_out, json_t **info);

/* GET /v1/loras (a1111 false) or /sdapi/v1/loras entries: the live
 * workers' LoRAs, one per name. Caller owns; NULL when Redis fails. */
json_t *lf__loras_json(lf_gateway_t *gw, bool a1111);

#endif
