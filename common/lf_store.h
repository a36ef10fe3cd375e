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
 *                     idem, deadline_ms (queued TTL)
 *   q:{high,normal,low}  sorted set: job id scored by enqueue sequence (FIFO)
 *   leases            sorted set: job id scored by lease expiry (ms)
 *   running           hash: job id -> worker id
 *   history           sorted set: job id scored by finish time (ms)
 *   img:{id}:{i}      string: PNG bytes of image i (TTL = result retention)
 *   preview:{id}      string: latest preview bytes (short TTL)
 *   dead              list: job ids that failed after max attempts
 *   idem:{key}        string: job id (TTL)
 *   worker:{id}       hash: caps (msgpack lf_worker_caps_t), job, seen_ms,
 *                     broker, jobs_done (TTL = 3 heartbeats + margin)
 *   workers           sorted set: worker id scored by last seen (ms)
 *   upload:{id}       string: uploaded image bytes (TTL)
 *   upload:{id}:meta  hash: mime, width, height
 *   preset:{name}     string: JSON text;  presets  set of names
 *   stats:*           counters and latency histograms for /metrics
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

#include "lf_proto.h"

typedef struct lf_store lf_store_t;

typedef struct {
    const char *host;      /* default "127.0.0.1" */
    int port;              /* default 6379 */
    const char *prefix;    /* default "lf:" */
    int timeout_ms;        /* connect/command timeout; default 2000 */
} lf_store_opts_t;

/* Connect. Returns a working store or NULL with a reason in err (caller's
 * buffer). Caller owns the result. */
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

#endif
