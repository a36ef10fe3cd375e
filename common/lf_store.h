/* lf_store: all of lightfarm's state in Redis — the only module that speaks hiredis.
 *
 * The broker uses the job-lifecycle half (submit, claim, renew, progress,
 * complete, fail, cancel, reap); every state change is ONE atomic Redis step
 * (a Lua script), so several brokers can share one Redis and a restarted
 * broker carries on from Redis alone. The gateway uses the read half (job
 * views, queue, history, images, workers, metrics) and the small write-only
 * stores that are not job state (uploads, presets).
 *
 * Key layout (every key starts with the configurable prefix, default "lf:",
 * so two farms may share one Redis):
 *   job:{id}          hash: status, priority, attempts, max_attempts, worker,
 *                     model, params (msgpack lf_job_params_t), created_ms,
 *                     started_ms, finished_ms, step, steps, code, message,
 *                     n_images, seeds, info (JSON), cancel (1 if requested),
 *                     idem, deadline_ms (queued TTL), pixels, seq, queued_ms
 *                     (last enqueue), init (upload id), broker (owner);
 *                     PEXPIREd at history age once finished
 *   seq               string: INCR counter giving FIFO order
 *   q:{high,normal,low}  sorted set: job id scored by enqueue sequence (FIFO;
 *                     a requeued job keeps its place)
 *   deadlines         sorted set: queued job id scored by its TTL deadline (ms)
 *   enhancing         sorted set: job id in the "enhancing" state (accepted,
 *                     its prompt with the gateway's LLM, not in a queue yet)
 *                     scored by when the reaper moves it on without the answer
 *   leases            sorted set: job id scored by lease expiry (ms)
 *   running           hash: job id -> worker id
 *   history           sorted set: job id scored by finish time (ms)
 *   img:{id}:{i}      string: PNG bytes of image i (TTL = result retention)
 *   imgref:{id}:{i}   string: with an external image store (lf_blobstore),
 *                     the name of image i's object instead (same TTL)
 *   blobs             sorted set: object names of the external store scored
 *                     by when to delete them (result TTL; 0 once the job is
 *                     dropped); lf_store_blobs_sweep deletes the due ones
 *   preview:{id}      string: latest preview bytes (short TTL)
 *   dead              list: job ids that failed after max attempts
 *   idem:{key}        string: job id (TTL)
 *   idemh:{key}       string: the gateway's fingerprint of the request that
 *                     used the key (lf_store_idem_check; TTL as idem:{key})
 *   worker:{id}       hash: caps (msgpack lf_worker_caps_t), job, seen_ms,
 *                     broker, jobs_done (TTL = 3 heartbeats + margin)
 *   workers           sorted set: worker id scored by last seen (ms)
 *   upload:{id}       string: uploaded image bytes (TTL)
 *   upload:{id}:meta  hash: mime, width, height
 *   preset:{name}     string: JSON text;  presets  set of names
 *   broker:{id}       string: a live broker (PX half a lease; standbys adopt
 *                     the running jobs of a broker whose key is gone)
 *   stats:counters    hash: submitted, done, failed, cancelled, requeued,
 *                     timedout, dead
 *   stats:hist:{queue_wait,run}  hash: bucket upper bound ms ("5".."300000",
 *                     "inf") -> count (not cumulative), sum_ms (see
 *                     lf_store_latency_get)
 *   options           hash: A1111 options (sd_model_checkpoint, ...)
 *
 * Threading: an lf_store_t holds one hiredis connection and is NOT thread
 * safe; give each thread its own (the gateway keeps one per MHD thread or a
 * small locked pool). Ownership: every out-pointer documented "caller owns"
 * is released with the matching _clear/free. */
#ifndef LF_STORE_H
#define LF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_batch.h"
#include "lf_blobstore.h"
#include "lf_proto.h"

typedef struct lf_store lf_store_t;

typedef struct {
    const char *host;      /* default "127.0.0.1" */
    int port;              /* default 6379 */
    const char *prefix;    /* default "lf:" */
    int timeout_ms;        /* connect/command timeout; default 2000 */
    /* Where result images go: NULL = Redis (img:{id}:{i}); else this store
     * (borrowed: it must outlive the lf_store_t; lf_blobstore.h), with only
     * the names in Redis (imgref:{id}:{i}) and a deletion schedule (blobs). */
    lf_blobstore_t *blobs;
} lf_store_opts_t;

/* Connect. Returns a working store or NULL with a reason in err (caller's
 * buffer). Caller owns the result. A Redis still loading its data set
 * (LOADING) counts as not reachable yet: the reason then starts with
 * "redis", as for a refused connection, and lf_store_reconnect and every
 * call return LF_ECONN until it is ready, so callers retry as for an outage. */
lf_store_t *lf_store_new(const lf_store_opts_t *opts, char *err, size_t errlen);
void lf_store_destroy(lf_store_t **self_p);
/* Reconnect after an error; LF_ECONN if Redis is still down. */
int lf_store_reconnect(lf_store_t *self);
/* Last error text (borrowed, valid until the next call). */
const char *lf_store_errstr(const lf_store_t *self);

/* ---- read half (gateway) -------------------------------------------- */

typedef struct {
    char *id;
    lf_job_status_t status;
    lf_priority_t priority;
    uint32_t attempts, max_attempts;
    char *worker_id;         /* NULL unless running or finished */
    lf_job_params_t params;
    int64_t created_ms, started_ms, finished_ms;
    uint32_t step, steps;
    int32_t code;            /* failure code, 0 otherwise */
    char *message;           /* failure message */
    uint32_t n_images;
    int64_t *seeds;          /* n_images entries */
    char *info_json;         /* generation metadata, NULL until done */
    int64_t position;        /* queue position when queued, else -1 */
} lf_job_view_t;

/* Idempotency fingerprints (gateway): record `hash` (the validated request's
 * fingerprint) for idempotency key `key`, or compare it with the one
 * recorded, in one atomic step. 0: recorded or equal (job_id, when given,
 * receives the job the key already names, or ""). LF_EEXIST: the key already
 * names a job (written to job_id) submitted with a different request: the
 * caller answers 409. Before a job exists a different hash replaces the old
 * one (that request never reached a broker). LF_EINVAL: empty or too long
 * (> 200) key; LF_ECONN / LF_EREDIS. */
int lf_store_idem_check(lf_store_t *self, const char *key, const char *hash, char *job_id,
                        size_t job_id_len);

/* Fetch a job. LF_ENOTFOUND when unknown or expired. *out caller owns. */
int lf_store_job_get(lf_store_t *self, const char *job_id, lf_job_view_t *out);
void lf_job_view_clear(lf_job_view_t *v);

/* Jobs queued or running, highest priority first then FIFO; at most `limit`
 * from `offset`. *out is a caller-owned array of *n views (free each with
 * lf_job_view_clear, then free the array). */
int lf_store_jobs_list(lf_store_t *self, size_t offset, size_t limit, lf_job_view_t **out,
                       size_t *n, size_t *total);
/* Finished jobs, newest first. Same ownership as lf_store_jobs_list. */
int lf_store_history(lf_store_t *self, size_t offset, size_t limit, lf_job_view_t **out,
                     size_t *n, size_t *total);

/* PNG bytes of image `index` of a finished job; *png caller owns (free()). */
int lf_store_image_get(lf_store_t *self, const char *job_id, uint32_t index, uint8_t **png,
                       size_t *len);
/* Latest preview of a running job, if any. */
int lf_store_preview_get(lf_store_t *self, const char *job_id, uint8_t **data, size_t *len);

/* Live workers (seen within the liveness window). *out caller owns: clear
 * each with lf_worker_view_clear, then free the array. */
typedef struct {
    char *id;
    lf_worker_caps_t caps;
    char *job_id;            /* current job or NULL */
    int64_t seen_ms;
    uint64_t jobs_done;
} lf_worker_view_t;
int lf_store_workers_list(lf_store_t *self, lf_worker_view_t **out, size_t *n);
void lf_worker_view_clear(lf_worker_view_t *w);

/* Queue depth per priority and job counts per status (for /metrics). */
typedef struct {
    int64_t queued[LF_PRIO__COUNT];
    int64_t by_status[LF_JOB__COUNT];   /* cumulative counts of terminal states */
    int64_t running;
    int64_t live_workers;
    int64_t dead_letters;
} lf_store_stats_t;
int lf_store_stats(lf_store_t *self, lf_store_stats_t *out);

/* Uploads: bytes already validated by the caller. id is generated by the
 * store and written to id_out (>= 40 bytes). */
int lf_store_upload_put(lf_store_t *self, const uint8_t *data, size_t len, const char *mime,
                        uint32_t width, uint32_t height, uint32_t ttl_s, char *id_out);
int lf_store_upload_get(lf_store_t *self, const char *id, uint8_t **data, size_t *len);

/* Presets: JSON text by name. list returns a caller-owned array of names. */
int lf_store_preset_put(lf_store_t *self, const char *name, const char *json);
int lf_store_preset_get(lf_store_t *self, const char *name, char **json);
int lf_store_preset_del(lf_store_t *self, const char *name);
int lf_store_preset_list(lf_store_t *self, char ***names, size_t *n);

/* A1111 options (string values). */
int lf_store_option_get(lf_store_t *self, const char *key, char **value);
int lf_store_option_set(lf_store_t *self, const char *key, const char *value);

/* Round trip to Redis (PING) in microseconds, for the benchmark. */
int lf_store_ping(lf_store_t *self, double *rtt_us);

/* ---- lifecycle half (broker) ------------------------------------------
 * Declared by the broker's author below this line; each is one Lua script. */

/* Redis guarantees (what the broker can promise):
 * - Every call below is one EVALSHA of one Lua script, so each transition is
 *   atomic: two brokers racing for a job both run the claim script, and
 *   Redis runs them one after the other; only the first sees "queued".
 * - Submit answers after Redis executed the script; with appendonly yes and
 *   appendfsync always (what deploy/ and the test farm use) an ACCEPTED job
 *   survives a Redis crash; with appendfsync everysec up to ~1 s may be lost.
 * - Scripts build key names from the prefix (ARGV), so this needs a single
 *   Redis (or a cluster with one hash slot), not Redis Cluster sharding.
 * - Fencing: progress/complete/fail/requeue take effect only if `worker`
 *   (and `attempt` when non-zero) still holds the job; otherwise LF_ESTATE and
 *   nothing changes, so a late answer from a worker presumed dead is dropped.
 * - A failed connection is reopened on the next call, at most every backoff
 *   period (100 ms doubling to 2 s); until then calls return LF_ECONN.
 * - Times (leases, deadlines, history) come from the caller's wall clock, so
 *   brokers on different machines need synchronised clocks (NTP): a skew of
 *   X ms makes leases and TTLs expire up to X ms early or late. */

typedef struct {
    uint32_t lease_ms;            /* running-job lease; default 5000 */
    uint32_t max_attempts;        /* default for SUBMIT max_attempts=0; default 3 */
    uint32_t queue_ttl_s;         /* default for SUBMIT ttl_s=0; 0 = no deadline */
    uint32_t idem_ttl_s;          /* idempotency key lifetime; default 86400 */
    uint32_t result_ttl_s;        /* images img:{id}:{i}; default 3600 */
    uint64_t result_max_bytes;    /* all images of one job; default 32 MiB */
    uint32_t history_max;         /* finished jobs kept; default 10000 */
    uint32_t history_max_age_s;   /* finished jobs kept at most; default 86400 */
    uint32_t preview_ttl_s;       /* preview:{id}; default 30 */
    uint32_t worker_ttl_ms;       /* worker:{id} key and liveness window; default 4000 */
} lf_store_limits_t;

/* Set the limits (zero fields take the defaults above). Not thread safe. */
void lf_store_set_limits(lf_store_t *self, const lf_store_limits_t *lim);
/* The limits in force (with defaults filled in). */
void lf_store_get_limits(const lf_store_t *self, lf_store_limits_t *out);

/* One job to queue. Everything is borrowed for the call. */
typedef struct {
    const lf_job_params_t *params; /* params->model required */
    lf_priority_t priority;
    const char *idem_key;          /* NULL or "" = none */
    uint32_t ttl_s;                /* 0 = limits.queue_ttl_s */
    uint32_t max_attempts;         /* 0 = limits.max_attempts */
    /* > 0: the job starts "enhancing" (LF_JOB_ENHANCING: stored, not in a
     * queue) until lf_store_enhanced, or until the reaper
     * (lf_store_enhance_reap) moves it on after enhance_ms +
     * LF_STORE_ENHANCE_MARGIN_MS. */
    uint32_t enhance_ms;
} lf_store_submit_t;
#define LF_STORE_ENHANCE_MARGIN_MS 2000

typedef struct {
    int code;                 /* 0, or LF_EINVAL for this item (bad params) */
    char id[40];              /* the new job's id (or the existing one when duplicate) */
    int64_t position;         /* 0-based over all priorities; -1 when not queued */
    bool duplicate;           /* idem_key matched an existing job; nothing was queued */
    int64_t seq;              /* FIFO sequence of a new job (see lf_store_candidate_t) */
    lf_job_status_t status;   /* QUEUED or ENHANCING; a duplicate's: the existing job's */
} lf_store_submitted_t;

/* Queue n jobs in one pipeline (one script run each); out[i] receives item
 * i's outcome. Returns 0 when Redis answered every item (then check each
 * out[i].code: 0 = stored, acknowledged; LF_EINVAL = bad item). On
 * LF_ECONN / LF_EREDIS, items without an answer carry that code and must be
 * reported as not accepted. */
int lf_store_submit(lf_store_t *self, const lf_store_submit_t *jobs, size_t n, int64_t now_ms,
                    lf_store_submitted_t *out);

/* A queued job as the scheduler sees it. */
typedef struct {
    char id[40];
    char model[128];
    char refiner[128];        /* SDXL refiner_checkpoint ("" = none): scheduler affinity */
    char vae[128];            /* the job's separate VAE ("" = none): capability */
    uint64_t pixels;          /* width * height * batch (the Hires-Fix size when on: lf_params_output_size) */
    lf_priority_t priority;
    int64_t created_ms;       /* first submit (for the starvation bound) */
    int64_t seq;              /* FIFO order within a priority */
    char lora_set[256];       /* lf_extranet_lora_set of its params ("" = none) */
    char batch_key[40];       /* lf_batch_key of its params ("" = never batched) */
} lf_store_candidate_t;

/* The first `per_prio` queued jobs of each priority, high first, FIFO within
 * one. out is the caller's array of cap entries; *n set. */
int lf_store_peek(lf_store_t *self, size_t per_prio, lf_store_candidate_t *out, size_t cap,
                  size_t *n);

/* Like lf_store_peek, but only jobs whose model is one of `models` (n = 0:
 * any) and whose pixels are <= max_pixels (0: any), scanning at most `scan`
 * entries per priority, so runnable jobs are found behind a run of jobs no
 * idle worker can take. complete[p] (may be NULL) is set true when the scan
 * reached the end of priority p's queue. */
int lf_store_peek_for(lf_store_t *self, const char *const *models, size_t n_models,
                      uint64_t max_pixels, size_t per_prio, size_t scan,
                      lf_store_candidate_t *out, size_t cap, size_t *n, bool complete[3]);

typedef struct {
    const char *job_id;
    const char *worker_id;
} lf_store_pair_t;

typedef struct {
    /* 0: claimed, params/attempt valid. LF_EBUSY: no longer queued (another
     * broker won it, or it was cancelled). LF_ETIMEDOUT: its queue deadline
     * had passed; it is now failed. LF_ENOTFOUND: its init image upload is
     * gone; it is now failed. */
    int code;
    uint32_t attempt;         /* 1-based */
    lf_priority_t priority;
    lf_job_params_t params;   /* caller owns (lf_store_claim_clear) */
    lf_bytes_t init_image;    /* upload bytes for img2img; caller owns */
    lf_bytes_t mask;          /* the inpainting mask upload's bytes (params.mask); caller owns */
    int64_t queue_wait_ms;    /* since (re)queued */
} lf_store_claim_t;

/* Claim jobs for workers, atomically each (one pipeline). Returns 0 when
 * every item was answered (see out[i].code); LF_ECONN/LF_EREDIS otherwise
 * (unanswered items get that code). `broker_id` is recorded as the owner. */
int lf_store_claim(lf_store_t *self, const lf_store_pair_t *pairs, size_t n,
                   const char *broker_id, int64_t now_ms, lf_store_claim_t *out);
void lf_store_claim_clear(lf_store_claim_t *c);

/* A worker (re)connected saying it runs job_id. 0: adopted — lease renewed,
 * broker_id is the owner now; *attempt set, *owner_changed true when another
 * (dead) broker owned it. LF_ESTATE: the worker does not hold the job (tell
 * it to stop). LF_EBUSY: held, but owned by another live broker (leave it). */
int lf_store_adopt(lf_store_t *self, const char *job_id, const char *worker_id,
                   const char *broker_id, int64_t now_ms, uint32_t *attempt, bool *owner_changed);

/* Renew the leases of n (job, worker) pairs and mark broker_id alive for
 * half a lease period (so a standby can adopt a dead broker's jobs before
 * their leases run out; the broker must call this at least that often). lost[i] (caller's array) is set true when worker i no longer
 * holds job i (cancelled, finished, requeued): the broker should send CANCEL. */
int lf_store_renew(lf_store_t *self, const lf_store_pair_t *pairs, size_t n,
                   const char *broker_id, int64_t now_ms, bool *lost);

/* Step/steps into the job hash, preview (may be NULL) into preview:{id} with
 * a short TTL, lease renewed. Fenced: LF_ESTATE when the worker no longer
 * holds the job. */
int lf_store_progress(lf_store_t *self, const char *job_id, const char *worker_id, uint32_t step,
                      uint32_t steps, const uint8_t *preview, size_t preview_len, int64_t now_ms);

typedef struct {
    lf_job_status_t status;   /* the job's status after the call */
    int32_t code;             /* failure code when failed */
    char message[200];
    uint32_t attempts;
    int64_t run_ms;           /* when done */
} lf_store_finish_t;

/* The worker's RESULT. Fenced on worker (and attempt when non-zero):
 * LF_ESTATE = dropped. Images over limits.result_max_bytes fail the job
 * with LF_ETOOBIG instead (returns 0; out->status = FAILED). */
int lf_store_complete(lf_store_t *self, const char *job_id, const char *worker_id,
                      uint32_t attempt, const lf_image_out_t *images, size_t n_images,
                      const char *info_json, int64_t now_ms, lf_store_finish_t *out);

/* The worker's FAILED: the job fails now with code/message (no retry: a job
 * that failed once fails again), or ends cancelled when code is
 * LF_ECANCELED. Fenced like complete. */
int lf_store_fail(lf_store_t *self, const char *job_id, const char *worker_id, uint32_t attempt,
                  int32_t code, const char *message, int64_t now_ms, lf_store_finish_t *out);

/* Several worker reports in one pipeline (each still its own atomic
 * script): what lf_store_progress / _complete / _fail do, for n items.
 * codes[i] receives item i's result (0, LF_ESTATE when fenced off,
 * LF_EINVAL, or the connection error for items Redis never answered);
 * fin[i] (fin may be NULL) is filled for COMPLETE/FAIL items with code 0.
 * Returns 0 when Redis answered every item. */
typedef enum {
    LF_STORE_REPORT_PROGRESS = 0,
    LF_STORE_REPORT_COMPLETE,
    LF_STORE_REPORT_FAIL
} lf_store_report_kind_t;
typedef struct {
    lf_store_report_kind_t kind;
    const char *job_id, *worker_id;
    uint32_t attempt;                /* COMPLETE/FAIL fencing; 0 = any attempt */
    uint32_t step, steps;            /* PROGRESS */
    const uint8_t *preview;          /* PROGRESS, may be NULL */
    size_t preview_len;
    const lf_image_out_t *images;    /* COMPLETE */
    size_t n_images;
    const char *info_json;
    int32_t code;                    /* FAIL */
    const char *message;
} lf_store_report_t;
int lf_store_report(lf_store_t *self, const lf_store_report_t *reports, size_t n,
                    int64_t now_ms, int *codes, lf_store_finish_t *fin);

/* Put a running job back in its queue (worker refused it, left, or went
 * idle without answering). refund: the attempt does not count (refusals).
 * A job out of attempts goes to the dead letters instead (out->status
 * FAILED). Fenced on worker, and on broker_id when not NULL: LF_ESTATE
 * unless that broker claimed or adopted the job last (a broker whose job a
 * standby adopted must not give it back while the worker answers there). */
int lf_store_requeue(lf_store_t *self, const char *job_id, const char *worker_id,
                     const char *broker_id, bool refund, const char *reason, int64_t now_ms,
                     lf_store_finish_t *out);

/* Cancel a queued or running job (it is "cancelled" at once; the worker
 * running it is told by its broker). *was: the status before. *worker_id
 * (caller's buffer >= 128 bytes, may be NULL) receives the worker of a
 * running job. LF_ENOTFOUND; LF_ESTATE when already finished. */
int lf_store_cancel(lf_store_t *self, const char *job_id, int64_t now_ms, lf_job_status_t *was,
                    char *worker_id, size_t worker_id_len);

typedef struct {
    char id[40];
    lf_job_status_t status;   /* QUEUED (requeued) or FAILED/CANCELLED */
    int32_t code;
    char worker_id[128];      /* the lost worker, for lease expiries */
} lf_store_reaped_t;

/* Expired leases: requeued (attempts kept) or, past max attempts, failed
 * with LF_ELIMIT into the dead letters. Queued jobs past their deadline:
 * failed with LF_ETIMEDOUT. At most cap of each per call. */
int lf_store_reap(lf_store_t *self, int64_t now_ms, lf_store_reaped_t *out, size_t cap,
                  size_t *n);

/* Fail a job that is still queued, with code and message (the broker's
 * verdict that no live worker can run it). 0; LF_ESTATE when it is no
 * longer queued (claimed, cancelled, failed meanwhile: nothing changed);
 * LF_ENOTFOUND; LF_ECONN / LF_EREDIS. */
int lf_store_fail_queued(lf_store_t *self, const char *job_id, int32_t code, const char *message,
                         int64_t now_ms);

/* Settle an enhancing job's prompt and queue it (at its place: its seq),
 * in one atomic step: `prompt` (the LLM's; non-empty) replaces the prompt of
 * its params, the original kept as prompt_original; or, prompt NULL,
 * `error` goes into enhance_error and the original prompt stays. 0 with
 * *out (id, position, seq, status QUEUED; may be NULL); LF_ESTATE when the
 * job is no longer enhancing (cancelled, or settled already by another
 * broker or the reaper: nothing changed); LF_ENOTFOUND; LF_EINVAL;
 * LF_ECONN / LF_EREDIS. */
int lf_store_enhanced(lf_store_t *self, const char *job_id, const char *prompt, const char *error,
                      int64_t now_ms, lf_store_submitted_t *out);

/* Enhancing jobs past their deadline (the gateway stopped, or its answer
 * was lost) go on with the original prompt and enhance_error = error, as
 * lf_store_enhanced does: at most cap of them, written to out[0..*n). */
int lf_store_enhance_reap(lf_store_t *self, int64_t now_ms, const char *error,
                          lf_store_submitted_t *out, size_t cap, size_t *n);

/* Dead letters, newest first: caller-owned array of ids (free each, then it). */
int lf_store_dead_list(lf_store_t *self, size_t limit, char ***ids, size_t *n);

/* Worker registry for /v1/workers (one pipeline per call). */
typedef struct {
    const char *id;
    const uint8_t *caps;      /* lf_caps_encode blob */
    size_t caps_len;
    const char *job_id;       /* NULL = idle */
    int64_t seen_ms;
    uint64_t jobs_done;
} lf_store_worker_touch_t;
int lf_store_workers_touch(lf_store_t *self, const lf_store_worker_touch_t *w, size_t n,
                           const char *broker_id, int64_t now_ms);
int lf_store_worker_remove(lf_store_t *self, const char *worker_id);

/* Latency histograms (Prometheus style, cumulative counts). */
typedef enum { LF_STORE_LAT_QUEUE_WAIT = 0, LF_STORE_LAT_RUN, LF_STORE_LAT__COUNT } lf_store_lat_t;
#define LF_STORE_HIST_BUCKETS 16 /* last bound is +Inf */
typedef struct {
    double le_s[LF_STORE_HIST_BUCKETS];      /* upper bounds in seconds; last = INFINITY */
    uint64_t cumulative[LF_STORE_HIST_BUCKETS];
    uint64_t count;
    double sum_s;
} lf_store_hist_t;
const char *lf_store_lat_name(lf_store_lat_t which); /* "queue_wait" | "run" */
int lf_store_latency_get(lf_store_t *self, lf_store_lat_t which, lf_store_hist_t *out);

/* External image store: delete up to cap objects whose time has come
 * (results past their TTL, jobs dropped from history). One atomic step pops
 * them from the schedule (several brokers never delete twice); an object
 * the store refuses to delete is scheduled again a minute later. *deleted
 * and *failed (each may be NULL) receive the counts; when *failed > 0,
 * lf_store_errstr holds the store's sentence for the first failure. Returns
 * 0 (also with no external store), or LF_ECONN / LF_EREDIS from Redis only:
 * a failing image store never reads as a Redis outage. */
int lf_store_blobs_sweep(lf_store_t *self, int64_t now_ms, size_t cap, size_t *deleted, size_t *failed);

/* Remove every key under the prefix (tests, `lightfarm reset`). */
int lf_store_flush(lf_store_t *self);

#endif
