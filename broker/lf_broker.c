/* lf_broker: the reactor, the gateway side and dispatch. See lf_broker.h.
 *
 * State held here is only a cache of what the connected workers said (caps,
 * idle or busy, which job); every job transition goes to Redis first and is
 * acted on (ASSIGN, events) after Redis confirmed it. Handlers drain their
 * socket in bounded batches so that submits can go to Redis as one pipeline
 * and dispatch runs once per batch rather than once per message. */
#include "lf_broker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_log.h"
#include "lf_proto.h"
#include "lf_scheduler.h"
#include "lf_store.h"

#define S_BATCH 256            /* messages read per wake-up */
#define S_PEEK_MAX 64          /* candidates per priority per dispatch round */
#define S_DISPATCH_ROUNDS 4
#define S_POLL_MS 100          /* dispatch poll for jobs queued elsewhere */
#define S_RETRY_MAX 4096       /* worker answers kept while Redis is away */
#define S_CACHE_MS 100         /* candidate cache lifetime */
#define S_SCAN_MAX 1024        /* queue entries looked at per priority per refresh */
#define S_BEAT_SLICES 10       /* heartbeats go out spread over this many ticks */

typedef enum { W_IDLE = 0, W_BUSY } s_wstate_t;

typedef struct {
    char *id;
    zframe_t *ident;          /* ROUTER routing id of its current connection */
    char *ident_hex;
    lf_worker_caps_t caps;
    uint8_t *caps_blob;
    size_t caps_len;
    const char **models;      /* borrowed from caps, for the scheduler */
    int64_t seen;             /* mono ms */
    s_wstate_t state;
    char job[40];             /* job it runs ("" = unknown, e.g. another broker's) */
    uint32_t attempt;
    bool owned;               /* we renew its lease */
    int64_t assigned_at;      /* mono ms */
    int64_t adopt_at;         /* mono ms of the last adoption attempt */
    int64_t last_sent;        /* mono ms of our last message to it (heartbeats fill gaps) */
    long idle_pos;            /* index in idle[], -1 when not idle */
    uint64_t jobs_done;
} s_worker_t;

/* A worker's RESULT/FAILED that Redis could not take yet. */
typedef struct {
    char *worker;
    zmsg_t *msg;              /* [payload] */
} s_retry_t;

struct lf_broker {
    char id[128];
    lf_broker_opts_t opts;
    char *fe_ep, *be_ep, *ev_ep;
    lf_store_t *store;
    zsock_t *fe, *be, *pub;
    zactor_t *auth;
    zloop_t *loop;
    zhashx_t *workers;        /* id -> s_worker_t (owns) */
    zhashx_t *by_ident;       /* ident hex -> s_worker_t (borrowed) */
    s_worker_t **idle;
    size_t n_idle, cap_idle;
    zlistx_t *retries;        /* s_retry_t */
    bool dispatch_pending;
    /* Queued candidates from the last peek, kept for S_CACHE_MS so that a
     * worker going idle costs one claim, not a peek and a claim. Jobs this
     * broker queues are added as they are accepted; jobs queued elsewhere
     * show up at the next refresh. complete[p]: the peek saw all of
     * priority p's queue, so appending our own submits keeps FIFO. */
    lf_store_candidate_t cache[3 * S_PEEK_MAX];
    size_t n_cache;
    int64_t cache_at;         /* mono ms of the peek; 0 = stale */
    bool complete[LF_PRIO__COUNT];
    int64_t next_full;        /* mono ms of the next renew/registry/purge round */
    lf_codec_stats_t codec;
    lf_broker_stats_t stats;
    int64_t redis_warned;     /* mono ms of the last "redis down" log */
};

static int64_t s_now(void) { return zclock_time(); }
static int64_t s_mono(void) { return zclock_mono(); }

static void s_redis_error(lf_broker_t *self, const char *what, int rc) {
    self->stats.redis_errors++;
    int64_t now = s_mono();
    if (now - self->redis_warned > 2000) {
        lf_warn("redis: %s failed: %s (%s)", what, lf_strerror(rc), lf_store_errstr(self->store));
        self->redis_warned = now;
    }
}

/* ---- sending ------------------------------------------------------------------ */

static int s_send_to(zsock_t *sock, zmsg_t *envelope, const lf_msg_t *m) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lf_msg_encode(m, &buf, &len);
    if (rc) {
        lf_error("cannot encode %s: %s", lf_msg_type_name(m->type), lf_strerror(rc));
        zmsg_destroy(&envelope);
        return rc;
    }
    zmsg_addmem(envelope, buf, len);
    free(buf);
    return zmsg_send(&envelope, sock) == 0 ? 0 : LF_EIO;
}

static void s_send_worker(lf_broker_t *self, s_worker_t *w, const lf_msg_t *m) {
    w->last_sent = s_mono();
    zmsg_t *env = zmsg_new();
    zmsg_append(env, &(zframe_t *){zframe_dup(w->ident)});
    s_send_to(self->be, env, m);
}

static void s_publish(lf_broker_t *self, const char *job_id, lf_event_kind_t ev,
                      lf_job_status_t st, const lf_msg_t *extra) {
    lf_msg_t m = {.type = LF_MSG_EVENT, .job_id = (char *)job_id, .event = ev, .status = st};
    if (extra) {
        m.step = extra->step, m.steps = extra->steps, m.preview = extra->preview;
        m.code = extra->code, m.message = extra->message, m.worker_id = extra->worker_id;
    }
    zmsg_t *env = zmsg_new();
    zmsg_addstr(env, job_id);
    s_send_to(self->pub, env, &m);
}

static void s_publish_finish(lf_broker_t *self, const char *job_id, const lf_store_finish_t *f,
                             const char *worker) {
    lf_event_kind_t ev = f->status == LF_JOB_DONE        ? LF_EV_DONE
                         : f->status == LF_JOB_CANCELLED ? LF_EV_CANCELLED
                         : f->status == LF_JOB_QUEUED    ? LF_EV_QUEUED
                                                         : LF_EV_FAILED;
    lf_msg_t x = {.code = f->code, .message = f->message[0] ? (char *)f->message : NULL,
                  .worker_id = (char *)worker};
    s_publish(self, job_id, ev, f->status, &x);
}

/* ---- workers ------------------------------------------------------------------- */

static void s_idle_add(lf_broker_t *self, s_worker_t *w) {
    if (w->idle_pos >= 0) return;
    if (self->n_idle == self->cap_idle) {
        size_t cap = self->cap_idle ? self->cap_idle * 2 : 64;
        s_worker_t **v = realloc(self->idle, cap * sizeof *v);
        if (!v) return; /* stays out of the idle set until the next beat */
        self->idle = v;
        self->cap_idle = cap;
    }
    w->idle_pos = (long)self->n_idle;
    self->idle[self->n_idle++] = w;
    self->dispatch_pending = true;
}

static void s_idle_remove(lf_broker_t *self, s_worker_t *w) {
    if (w->idle_pos < 0) return;
    s_worker_t *last = self->idle[--self->n_idle];
    self->idle[w->idle_pos] = last;
    last->idle_pos = w->idle_pos;
    w->idle_pos = -1;
}

static void s_set_idle(lf_broker_t *self, s_worker_t *w) {
    w->state = W_IDLE;
    w->job[0] = '\0';
    w->owned = false;
    w->attempt = 0;
    s_idle_add(self, w);
}

static void s_set_busy(lf_broker_t *self, s_worker_t *w, const char *job, uint32_t attempt,
                       bool owned) {
    s_idle_remove(self, w);
    w->state = W_BUSY;
    snprintf(w->job, sizeof w->job, "%s", job ? job : "");
    w->attempt = attempt;
    w->owned = owned;
    w->assigned_at = s_mono();
}

static void s_worker_free(void **item) {
    s_worker_t *w = *item;
    if (!w) return;
    free(w->id);
    zframe_destroy(&w->ident);
    free(w->ident_hex);
    lf_caps_clear(&w->caps);
    free(w->caps_blob);
    free(w->models);
    free(w);
    *item = NULL;
}

static void s_worker_drop(lf_broker_t *self, s_worker_t *w) {
    s_idle_remove(self, w);
    if (w->ident_hex) zhashx_delete(self->by_ident, w->ident_hex);
    zhashx_delete(self->workers, w->id); /* frees w */
}

/* Take the caps of a READY/HEARTBEAT (moved out of m). */
static void s_worker_caps(s_worker_t *w, lf_msg_t *m) {
    if (!m->caps.n_models && !m->caps.host && !m->caps.max_pixels) return; /* none sent */
    const char **models = calloc(m->caps.n_models ? m->caps.n_models : 1, sizeof *models);
    uint8_t *blob = NULL;
    size_t len = 0;
    if (!models || lf_caps_encode(&m->caps, &blob, &len)) {
        free(models);
        return;
    }
    lf_caps_clear(&w->caps);
    w->caps = m->caps;
    memset(&m->caps, 0, sizeof m->caps);
    for (size_t i = 0; i < w->caps.n_models; i++) models[i] = w->caps.models[i].name;
    free(w->models);
    w->models = models;
    free(w->caps_blob);
    w->caps_blob = blob;
    w->caps_len = len;
    w->jobs_done = w->caps.jobs_done;
}

/* Find or create the worker that sent m over connection `ident`. */
static s_worker_t *s_worker_get(lf_broker_t *self, zframe_t *ident, const char *ident_hex,
                                const lf_msg_t *m, bool create) {
    s_worker_t *w = NULL;
    if (m->worker_id && *m->worker_id) w = zhashx_lookup(self->workers, m->worker_id);
    if (!w) w = zhashx_lookup(self->by_ident, ident_hex);
    if (!w && create) {
        w = calloc(1, sizeof *w);
        if (!w) return NULL;
        w->id = strdup(m->worker_id && *m->worker_id ? m->worker_id : ident_hex);
        w->idle_pos = -1;
        w->state = W_BUSY; /* until it says otherwise */
        if (!w->id) {
            free(w);
            return NULL;
        }
        /* A phase per worker (FNV-1a of its id) spreads the heartbeats of
         * workers that joined together: a burst of 1000 at once delays
         * everything queued behind it. */
        uint32_t h = 2166136261u;
        for (const char *c = w->id; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
        w->last_sent = s_mono() - (int64_t)(h % (uint32_t)self->opts.heartbeat_ms);
        zhashx_insert(self->workers, w->id, w);
        self->stats.workers_joined++;
        self->cache_at = 0; /* the cache was filtered for the other workers */
        lf_info("worker %s joined", w->id);
    }
    if (!w) return NULL;
    /* A new connection of a known worker (it reconnected): route to it. */
    if (!w->ident_hex || strcmp(w->ident_hex, ident_hex)) {
        if (w->ident_hex) zhashx_delete(self->by_ident, w->ident_hex);
        free(w->ident_hex);
        zframe_destroy(&w->ident);
        w->ident_hex = strdup(ident_hex);
        w->ident = zframe_dup(ident);
        if (w->ident_hex) zhashx_insert(self->by_ident, w->ident_hex, w);
    }
    w->seen = s_mono();
    return w;
}

static void s_send_cancel(lf_broker_t *self, s_worker_t *w, const char *job) {
    lf_msg_t c = {.type = LF_MSG_CANCEL, .job_id = (char *)job};
    s_send_worker(self, w, &c);
}

/* Give back the job our record says w runs (it refused it, went idle
 * without answering, or left). */
static void s_giveback(lf_broker_t *self, s_worker_t *w, bool refund, const char *why) {
    if (w->state != W_BUSY || !w->job[0] || !w->owned) return;
    lf_store_finish_t f;
    int rc = lf_store_requeue(self->store, w->job, w->id, refund, why, s_now(), &f);
    if (rc == 0) {
        self->stats.requeued++;
        self->cache_at = 0;
        lf_info("job %s back to the queue (%s): %s", w->job, lf_job_status_name(f.status), why);
        s_publish_finish(self, w->job, &f, w->id);
        self->dispatch_pending = true;
    } else if (rc != LF_ESTATE) {
        s_redis_error(self, "requeue", rc); /* its lease runs out; the reaper requeues */
    }
}

/* The worker says it runs `job` (or nothing): adopt what Redis says it
 * holds, stop what it no longer holds. */
static void s_reconcile(lf_broker_t *self, s_worker_t *w, bool busy, const char *job,
                        bool from_ready) {
    if (!busy) {
        /* A heartbeat sent before our ASSIGN arrived says idle: give the
         * ASSIGN two beats before believing it. */
        if (w->state == W_BUSY && w->owned && !from_ready &&
            s_mono() - w->assigned_at < 2 * self->opts.heartbeat_ms)
            return;
        if (w->state == W_BUSY && w->owned)
            s_giveback(self, w, false, "its worker went idle without an answer");
        if (w->state != W_IDLE || w->idle_pos < 0) s_set_idle(self, w);
        return;
    }
    if (!job || !*job) {
        if (w->state == W_IDLE) s_set_busy(self, w, NULL, 0, false);
        return;
    }
    if (w->state == W_BUSY && !strcmp(w->job, job)) {
        /* Another broker's job: take it over once that broker is gone (its
         * liveness key expires before the job's lease). */
        if (w->owned || s_mono() - w->adopt_at < self->opts.heartbeat_ms) return;
    }
    if (w->state == W_BUSY && w->owned && w->job[0])
        s_giveback(self, w, true, "its worker runs another job"); /* our ASSIGN was refused */
    uint32_t attempt = 0;
    bool changed = false;
    w->adopt_at = s_mono();
    int rc = lf_store_adopt(self->store, job, w->id, self->id, s_now(), &attempt, &changed);
    if (rc == 0) {
        s_set_busy(self, w, job, attempt, true);
        self->stats.adopted++;
        lf_info("worker %s: adopted its running job %s (attempt %u)", w->id, job, attempt);
        if (changed) {
            /* Its owner broker is gone: a repeated ASSIGN makes the worker
             * send its answer here. */
            lf_job_view_t v;
            if (lf_store_job_get(self->store, job, &v) == 0) {
                lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = (char *)job, .attempt = attempt,
                              .params = v.params};
                s_send_worker(self, w, &a);
                lf_job_view_clear(&v);
            }
        }
    } else if (rc == LF_ESTATE) {
        lf_info("worker %s runs job %s, which it no longer holds: cancelling it", w->id, job);
        s_set_busy(self, w, job, 0, false);
        s_send_cancel(self, w, job);
    } else if (rc == LF_EBUSY) {
        s_set_busy(self, w, job, 0, false); /* another live broker's job */
    } else {
        s_redis_error(self, "adopt", rc);
        s_set_busy(self, w, job, 0, false);
    }
}

/* ---- worker messages ------------------------------------------------------------ */

static void s_on_progress(lf_broker_t *self, s_worker_t *w, lf_msg_t *m) {
    int rc = lf_store_progress(self->store, m->job_id, w->id, m->step, m->steps, m->preview.data,
                               m->preview.len, s_now());
    if (rc == LF_ESTATE) {
        s_send_cancel(self, w, m->job_id); /* cancelled or reassigned: stop */
        return;
    }
    if (rc) s_redis_error(self, "progress", rc);
    lf_msg_t x = {.step = m->step, .steps = m->steps, .worker_id = w->id};
    s_publish(self, m->job_id, LF_EV_PROGRESS, LF_JOB_RUNNING, &x);
    if (m->preview.len) {
        x.preview = m->preview;
        s_publish(self, m->job_id, LF_EV_PREVIEW, LF_JOB_RUNNING, &x);
    }
}

/* RESULT or FAILED. Returns LF_ECONN/LF_EREDIS when Redis did not take it
 * (the caller keeps it for a retry), else 0. */
static int s_on_answer(lf_broker_t *self, const char *worker_id, lf_msg_t *m) {
    s_worker_t *w = zhashx_lookup(self->workers, worker_id);
    uint32_t attempt = w && w->state == W_BUSY && !strcmp(w->job, m->job_id) ? w->attempt : 0;
    lf_store_finish_t f;
    int rc;
    if (m->type == LF_MSG_RESULT) {
        rc = lf_store_complete(self->store, m->job_id, worker_id, attempt, m->images, m->n_images,
                               m->info_json, s_now(), &f);
    } else if (m->code == LF_EBUSY) {
        /* A refusal: the worker is busy with something else. */
        rc = lf_store_requeue(self->store, m->job_id, worker_id, true, "worker was busy", s_now(), &f);
        if (rc == 0) {
            self->stats.requeued++;
            self->cache_at = 0;
            self->dispatch_pending = true;
            if (w && !strcmp(w->job, m->job_id)) s_set_busy(self, w, NULL, 0, false);
            return 0;
        }
    } else {
        rc = lf_store_fail(self->store, m->job_id, worker_id, attempt, m->code, m->message,
                           s_now(), &f);
    }
    if (rc == LF_ECONN || rc == LF_EREDIS) return rc;
    if (rc == LF_ESTATE) {
        self->stats.dropped_stale++;
        lf_info("job %s: %s from worker %s dropped (it no longer holds the job)", m->job_id,
                lf_msg_type_name(m->type), worker_id);
    } else if (rc) {
        lf_warn("job %s: %s not stored: %s", m->job_id, lf_msg_type_name(m->type), lf_strerror(rc));
    } else {
        if (f.status == LF_JOB_DONE) self->stats.completed++;
        else if (f.status == LF_JOB_CANCELLED) self->stats.cancelled++;
        else self->stats.failed++;
        s_publish_finish(self, m->job_id, &f, worker_id);
        lf_debug("job %s %s by %s", m->job_id, lf_job_status_name(f.status), worker_id);
    }
    return 0;
}

static void s_retry_free(void **item) {
    s_retry_t *r = *item;
    if (!r) return;
    free(r->worker);
    zmsg_destroy(&r->msg);
    free(r);
    *item = NULL;
}

static void s_keep_for_retry(lf_broker_t *self, const char *worker, const uint8_t *buf,
                             size_t len) {
    if (zlistx_size(self->retries) >= S_RETRY_MAX) {
        lf_error("redis away too long: dropping a worker answer (its job will be retried)");
        return;
    }
    s_retry_t *r = calloc(1, sizeof *r);
    if (!r) return;
    r->worker = strdup(worker);
    r->msg = zmsg_new();
    zmsg_addmem(r->msg, buf, len);
    zlistx_add_end(self->retries, r);
}

static void s_retry_answers(lf_broker_t *self) {
    s_retry_t *r;
    while ((r = zlistx_first(self->retries)) != NULL) {
        zframe_t *f = zmsg_first(r->msg);
        lf_msg_t m = {0};
        if (lf_msg_decode(zframe_data(f), zframe_size(f), &m, NULL) == 0) {
            int rc = s_on_answer(self, r->worker, &m);
            lf_msg_clear(&m);
            if (rc) return; /* still away */
        }
        zlistx_delete(self->retries, zlistx_cursor(self->retries));
    }
}

static void s_on_worker_frame(lf_broker_t *self, zframe_t *ident, zframe_t *payload) {
    lf_msg_t m = {0};
    int rc = lf_msg_decode(zframe_data(payload), zframe_size(payload), &m, &self->codec);
    if (rc) {
        self->stats.bad_frames++;
        lf_warn("bad message from a worker (%zu bytes): %s", zframe_size(payload), lf_strerror(rc));
        return;
    }
    char *hex = zframe_strhex(ident);
    if (!hex) {
        lf_msg_clear(&m);
        return;
    }
    switch (m.type) {
    case LF_MSG_READY:
    case LF_MSG_HEARTBEAT: {
        bool known = zhashx_lookup(self->by_ident, hex) ||
                     (m.worker_id && zhashx_lookup(self->workers, m.worker_id));
        s_worker_t *w = s_worker_get(self, ident, hex, &m, true);
        if (!w) break;
        s_worker_caps(w, &m);
        s_reconcile(self, w, m.busy, m.job_id, m.type == LF_MSG_READY || !known);
        break;
    }
    case LF_MSG_PROGRESS: {
        s_worker_t *w = s_worker_get(self, ident, hex, &m, false);
        if (w) s_on_progress(self, w, &m);
        break;
    }
    case LF_MSG_RESULT:
    case LF_MSG_FAILED: {
        s_worker_t *w = s_worker_get(self, ident, hex, &m, false);
        const char *wid = w ? w->id : m.worker_id;
        if (!wid) {
            lf_warn("job %s: %s from an unknown worker; dropped", m.job_id,
                    lf_msg_type_name(m.type));
            break;
        }
        rc = s_on_answer(self, wid, &m);
        if (rc) {
            s_redis_error(self, "storing a result", rc);
            s_keep_for_retry(self, wid, zframe_data(payload), zframe_size(payload));
        }
        if (w && (m.type == LF_MSG_RESULT || m.code != LF_EBUSY)) {
            if (m.type == LF_MSG_RESULT) w->jobs_done++;
            if (!w->job[0] || !strcmp(w->job, m.job_id)) s_set_idle(self, w);
        }
        break;
    }
    case LF_MSG_DISCONNECT: {
        s_worker_t *w = s_worker_get(self, ident, hex, &m, false);
        if (!w) break;
        lf_info("worker %s left", w->id);
        s_giveback(self, w, false, "its worker left");
        int rc2 = lf_store_worker_remove(self->store, w->id);
        if (rc2) s_redis_error(self, "worker remove", rc2);
        s_worker_drop(self, w);
        break;
    }
    default:
        self->stats.bad_frames++;
        lf_warn("unexpected %s on the worker socket; ignored", lf_msg_type_name(m.type));
        break;
    }
    free(hex);
    lf_msg_clear(&m);
}

/* ---- dispatch ------------------------------------------------------------------- */

/* Refill the candidate cache from Redis: only jobs some idle worker can
 * run (so a run of jobs for a model nobody has cannot hide the rest). */
static int s_cache_refresh(lf_broker_t *self) {
    size_t per = self->n_idle * 4;
    if (per < 16) per = 16;
    if (per > S_PEEK_MAX) per = S_PEEK_MAX;
    zhashx_t *set = zhashx_new();
    uint64_t maxpx = 0;
    bool unlimited = false;
    for (size_t i = 0; set && i < self->n_idle; i++) {
        s_worker_t *w = self->idle[i];
        for (size_t k = 0; w->models && k < w->caps.n_models; k++)
            if (w->models[k]) zhashx_insert(set, w->models[k], (void *)w->models[k]);
        if (!w->caps.max_pixels) unlimited = true;
        if (w->caps.max_pixels > maxpx) maxpx = w->caps.max_pixels;
    }
    size_t nm = set ? zhashx_size(set) : 0;
    const char **models = calloc(nm ? nm : 1, sizeof *models);
    size_t k = 0;
    for (const char *m = set ? zhashx_first(set) : NULL; m && models; m = zhashx_next(set))
        models[k++] = m;
    size_t n = 0;
    bool complete[3] = {false, false, false};
    int rc = models && nm ? lf_store_peek_for(self->store, models, nm, unlimited ? 0 : maxpx, per,
                                              S_SCAN_MAX, self->cache, 3 * S_PEEK_MAX, &n,
                                              complete)
                          : LF_ENOMEM;
    if (nm == 0 && models) rc = 0, n = 0, complete[0] = complete[1] = complete[2] = true;
    free(models);
    zhashx_destroy(&set);
    if (rc) {
        self->n_cache = 0;
        self->cache_at = 0;
        return rc;
    }
    for (int p = 0; p < LF_PRIO__COUNT; p++) self->complete[p] = complete[p];
    self->n_cache = n;
    self->cache_at = s_mono();
    return 0;
}

static bool s_cache_fresh(const lf_broker_t *self) {
    return self->cache_at && s_mono() - self->cache_at < S_CACHE_MS;
}

static void s_cache_remove(lf_broker_t *self, const char *id) {
    for (size_t i = 0; i < self->n_cache; i++)
        if (!strcmp(self->cache[i].id, id)) {
            self->cache[i] = self->cache[--self->n_cache];
            return;
        }
}

/* A job this broker just queued joins a fresh cache whose window held all
 * of its priority (otherwise the next refresh finds it). */
static void s_cache_add(lf_broker_t *self, const lf_store_submitted_t *o, const lf_msg_t *m) {
    lf_priority_t p = m->priority;
    if (!s_cache_fresh(self) || (unsigned)p >= LF_PRIO__COUNT || !self->complete[p]) return;
    if (self->n_cache == 3 * S_PEEK_MAX || strlen(m->params.model) >= sizeof self->cache[0].model) {
        self->complete[p] = false;
        return;
    }
    lf_store_candidate_t *c = &self->cache[self->n_cache++];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", o->id);
    snprintf(c->model, sizeof c->model, "%s", m->params.model);
    uint32_t batch = m->params.batch_size ? m->params.batch_size : 1;
    c->pixels = (uint64_t)m->params.width * m->params.height * batch;
    c->priority = p;
    c->created_ms = s_now();
    c->seq = o->seq;
}

static void s_dispatch(lf_broker_t *self) {
    self->dispatch_pending = false;
    for (int round = 0; round < S_DISPATCH_ROUNDS && self->n_idle; round++) {
        bool all = self->complete[0] && self->complete[1] && self->complete[2];
        if (!s_cache_fresh(self) || (!self->n_cache && !all)) {
            int rc = s_cache_refresh(self);
            if (rc) {
                s_redis_error(self, "peek", rc);
                return;
            }
        }
        size_t n = self->n_cache;
        if (!n) return;
        lf_store_candidate_t *cand = self->cache;
        size_t nw = self->n_idle;
        lf_sched_job_t *jobs = calloc(n, sizeof *jobs);
        lf_sched_worker_t *ws = calloc(nw, sizeof *ws);
        s_worker_t **wp = calloc(nw, sizeof *wp);
        size_t cap = n < nw ? n : nw;
        lf_sched_match_t *mt = calloc(cap, sizeof *mt);
        lf_store_pair_t *pairs = calloc(cap, sizeof *pairs);
        lf_store_claim_t *claims = calloc(cap, sizeof *claims);
        char (*ids)[40] = calloc(cap, sizeof *ids);
        int64_t *born = calloc(cap, sizeof *born);
        size_t nm = 0;
        if (jobs && ws && wp && mt && pairs && claims && ids && born) {
            for (size_t i = 0; i < n; i++)
                jobs[i] = (lf_sched_job_t){cand[i].id, cand[i].model, cand[i].pixels,
                                           cand[i].priority, cand[i].created_ms, cand[i].seq};
            for (size_t i = 0; i < nw; i++) {
                s_worker_t *w = wp[i] = self->idle[i];
                ws[i] = (lf_sched_worker_t){w->id, w->models, w->models ? w->caps.n_models : 0,
                                            w->caps.n_resident ? w->caps.resident[0] : NULL,
                                            w->caps.max_pixels};
            }
            lf_sched_cfg_t cfg = {.starve_ms = self->opts.starve_ms};
            if (lf_scheduler_match(&cfg, jobs, n, ws, nw, s_now(), mt, &nm) != 0) nm = 0;
        }
        int rc = 0;
        if (nm) {
            /* The matched candidates leave the cache whatever the claim says. */
            for (size_t i = 0; i < nm; i++) {
                memcpy(ids[i], cand[mt[i].job].id, sizeof ids[i]);
                born[i] = cand[mt[i].job].created_ms;
                pairs[i] = (lf_store_pair_t){ids[i], wp[mt[i].worker]->id};
            }
            for (size_t i = 0; i < nm; i++) s_cache_remove(self, ids[i]);
            rc = lf_store_claim(self->store, pairs, nm, self->id, s_now(), claims);
            if (rc) {
                s_redis_error(self, "claim", rc);
                self->cache_at = 0;
            }
            for (size_t i = 0; i < nm; i++) {
                s_worker_t *w = wp[mt[i].worker];
                lf_store_claim_t *c = &claims[i];
                const char *job = ids[i];
                if (c->code == 0) {
                    lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = (char *)job,
                                  .attempt = c->attempt, .params = c->params,
                                  .init_image = c->init_image};
                    s_set_busy(self, w, job, c->attempt, true);
                    s_send_worker(self, w, &a);
                    lf_msg_t x = {.worker_id = w->id};
                    s_publish(self, job, LF_EV_STARTED, LF_JOB_RUNNING, &x);
                    self->stats.assigned++;
                    static const int64_t bounds[7] = {1, 5, 10, 50, 100, 500, 1000};
                    int64_t waited = s_now() - born[i];
                    int k = 0;
                    while (k < 7 && waited >= bounds[k]) k++;
                    self->stats.wait_hist[k]++;
                } else if (c->code == LF_EPROTO) {
                    lf_store_finish_t f;
                    if (lf_store_fail(self->store, job, w->id, c->attempt, LF_EPROTO,
                                      "the job's stored parameters are unreadable", s_now(),
                                      &f) == 0)
                        s_publish_finish(self, job, &f, NULL);
                } else if (c->code == LF_ETIMEDOUT || c->code == LF_ENOTFOUND) {
                    lf_msg_t x = {.code = c->code,
                                  .message = c->code == LF_ETIMEDOUT
                                                 ? "timed out: waited in the queue past its deadline"
                                                 : "init image upload not found (expired?)"};
                    s_publish(self, job, LF_EV_FAILED, LF_JOB_FAILED, &x);
                    self->stats.failed++;
                } else if (c->code == LF_EBUSY) {
                    self->stats.claim_races++;
                }
                lf_store_claim_clear(c);
            }
        }
        free(jobs), free(ws), free(wp), free(mt), free(pairs), free(claims), free(ids);
        free(born);
        /* Nothing placeable in the window, or Redis trouble: wait for news. */
        if (!nm || rc) return;
    }
}

/* ---- gateway messages --------------------------------------------------------- */

static void s_reply(lf_broker_t *self, zmsg_t *env, uint64_t req_id, int code,
                    const char *message, const char *job_id) {
    lf_msg_t r = {.type = LF_MSG_REPLY, .req_id = req_id, .code = code,
                  .message = (char *)message, .job_id = (char *)job_id};
    s_send_to(self->fe, env, &r);
}

typedef struct {
    zmsg_t *env;
    lf_msg_t msg;
} s_sub_t;

static void s_flush_submits(lf_broker_t *self, s_sub_t *subs, size_t n) {
    if (!n) return;
    lf_store_submit_t *jobs = calloc(n, sizeof *jobs);
    lf_store_submitted_t *out = calloc(n, sizeof *out);
    int rc = jobs && out ? 0 : LF_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        lf_msg_t *m = &subs[i].msg;
        jobs[i] = (lf_store_submit_t){&m->params, m->priority, m->idem_key, m->ttl_s,
                                      m->max_attempts};
    }
    if (!rc) {
        rc = lf_store_submit(self->store, jobs, n, s_now(), out);
        if (rc) s_redis_error(self, "submit", rc);
    }
    for (size_t i = 0; i < n; i++) {
        lf_msg_t *m = &subs[i].msg;
        int code = rc == LF_ENOMEM ? rc : out[i].code;
        if (code) {
            self->stats.rejected++;
            const char *why = code == LF_EINVAL ? "invalid job: model name, priority or init image"
                              : code == LF_ECONN || code == LF_EREDIS
                                  ? "job store (redis) unavailable; the job was not accepted"
                                  : lf_strerror(code);
            s_reply(self, subs[i].env, m->req_id, code, why, NULL);
        } else {
            lf_msg_t a = {.type = LF_MSG_ACCEPTED, .req_id = m->req_id, .job_id = out[i].id,
                          .position = out[i].position, .duplicate = out[i].duplicate};
            s_send_to(self->fe, subs[i].env, &a);
            if (out[i].duplicate) {
                self->stats.duplicates++;
            } else {
                self->stats.submitted++;
                s_cache_add(self, &out[i], m);
                s_publish(self, out[i].id, LF_EV_QUEUED, LF_JOB_QUEUED, NULL);
                self->dispatch_pending = true;
            }
        }
        subs[i].env = NULL;
        lf_msg_clear(m);
    }
    free(jobs);
    free(out);
}

static void s_on_cancel(lf_broker_t *self, zmsg_t *env, lf_msg_t *m) {
    lf_job_status_t was = LF_JOB_QUEUED;
    char worker[128] = "";
    int rc = lf_store_cancel(self->store, m->job_id, s_now(), &was, worker, sizeof worker);
    if (rc == 0) {
        self->stats.cancelled++;
        lf_msg_t x = {.code = LF_ECANCELED, .message = "cancelled by request"};
        s_publish(self, m->job_id, LF_EV_CANCELLED, LF_JOB_CANCELLED, &x);
        s_worker_t *w = worker[0] ? zhashx_lookup(self->workers, worker) : NULL;
        if (w) {
            s_send_cancel(self, w, m->job_id);
            w->owned = false; /* nothing to renew; it becomes idle when it answers */
        }
        s_reply(self, env, m->req_id, 0, was == LF_JOB_RUNNING ? "cancelling" : "cancelled",
                m->job_id);
    } else {
        const char *why = rc == LF_ENOTFOUND ? "no such job"
                          : rc == LF_ESTATE  ? "the job has already finished"
                                             : "job store (redis) unavailable";
        if (rc != LF_ENOTFOUND && rc != LF_ESTATE) s_redis_error(self, "cancel", rc);
        s_reply(self, env, m->req_id, rc, why, m->job_id);
    }
}

static int s_on_frontend(zloop_t *loop, zsock_t *sock, void *arg) {
    (void)loop;
    lf_broker_t *self = arg;
    s_sub_t subs[S_BATCH];
    size_t n_sub = 0;
    for (int k = 0; k < S_BATCH; k++) {
        if (k && !(zsock_events(sock) & ZMQ_POLLIN)) break;
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg) break;
        zframe_t *payload = zmsg_last(msg);
        if (zmsg_size(msg) < 2) {
            zmsg_destroy(&msg);
            continue;
        }
        lf_msg_t m = {0};
        int rc = lf_msg_decode(zframe_data(payload), zframe_size(payload), &m, &self->codec);
        /* The envelope is every frame before the payload. */
        zmsg_remove(msg, payload);
        zframe_destroy(&payload);
        if (rc) {
            self->stats.bad_frames++;
            s_reply(self, msg, 0, rc, "malformed message", NULL);
            continue;
        }
        if (m.type == LF_MSG_SUBMIT) {
            subs[n_sub].env = msg;
            subs[n_sub].msg = m;
            n_sub++;
            continue;
        }
        if (m.type == LF_MSG_CANCEL)
            s_on_cancel(self, msg, &m);
        else
            s_reply(self, msg, m.req_id, LF_EUNSUPPORTED, "gateways may send submit or cancel", NULL);
        lf_msg_clear(&m);
    }
    s_flush_submits(self, subs, n_sub);
    if (self->dispatch_pending) s_dispatch(self);
    return 0;
}

static int s_on_backend(zloop_t *loop, zsock_t *sock, void *arg) {
    (void)loop;
    lf_broker_t *self = arg;
    for (int k = 0; k < S_BATCH; k++) {
        if (k && !(zsock_events(sock) & ZMQ_POLLIN)) break;
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg) break;
        if (zmsg_size(msg) == 2) {
            zframe_t *ident = zmsg_first(msg);
            s_on_worker_frame(self, ident, zmsg_next(msg));
        } else {
            self->stats.bad_frames++;
        }
        zmsg_destroy(&msg);
    }
    if (self->dispatch_pending) s_dispatch(self);
    return 0;
}

/* ---- timers ------------------------------------------------------------------------ */

/* Every heartbeat_ms / S_BEAT_SLICES: heartbeats to the workers we have
 * not sent anything for heartbeat_ms; once per heartbeat_ms also the dead
 * worker purge, lease renewal and the worker registry. */
static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg) {
    (void)loop, (void)timer_id;
    lf_broker_t *self = arg;
    int64_t mono = s_mono(), now = s_now();
    lf_msg_t hb = {.type = LF_MSG_HEARTBEAT};
    bool full = mono >= self->next_full;
    if (!full) {
        for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers))
            if (mono - w->last_sent >= self->opts.heartbeat_ms) s_send_worker(self, w, &hb);
        return 0;
    }
    self->next_full = mono + self->opts.heartbeat_ms;
    int64_t dead_after = (int64_t)self->opts.heartbeat_ms * self->opts.liveness;
    size_t nw = zhashx_size(self->workers);
    lf_store_pair_t *pairs = calloc(nw + 1, sizeof *pairs);
    s_worker_t **owners = calloc(nw + 1, sizeof *owners);
    bool *lost = calloc(nw + 1, sizeof *lost);
    lf_store_worker_touch_t *touch = calloc(nw + 1, sizeof *touch);
    zlistx_t *dead = zlistx_new();
    size_t np = 0, nt = 0;
    for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers)) {
        if (mono - w->seen > dead_after) {
            zlistx_add_end(dead, w);
            continue;
        }
        if (mono - w->last_sent >= self->opts.heartbeat_ms) s_send_worker(self, w, &hb);
        if (w->state == W_BUSY && w->owned && w->job[0] && pairs)
            owners[np] = w, pairs[np++] = (lf_store_pair_t){w->job, w->id};
        if (touch)
            touch[nt++] = (lf_store_worker_touch_t){w->id, w->caps_blob, w->caps_len,
                                                    w->state == W_BUSY && w->job[0] ? w->job : NULL,
                                                    now - (mono - w->seen), w->jobs_done};
    }
    /* A dead worker's lease is no longer renewed: the reaper requeues. */
    for (s_worker_t *w = zlistx_first(dead); w; w = zlistx_next(dead)) {
        lf_warn("worker %s silent for %lld ms: dead%s%s", w->id, (long long)(mono - w->seen),
                w->owned ? "; its job returns to the queue when the lease ends: " : "",
                w->owned ? w->job : "");
        self->stats.workers_lost++;
        s_worker_drop(self, w);
    }
    zlistx_destroy(&dead);
    if (pairs && lost) {
        int rc = lf_store_renew(self->store, pairs, np, self->id, now, lost);
        if (rc) s_redis_error(self, "lease renewal", rc);
        for (size_t i = 0; !rc && i < np; i++)
            if (lost[i]) {
                lf_info("worker %s no longer holds job %s: cancelling it there", owners[i]->id,
                        owners[i]->job);
                owners[i]->owned = false;
                s_send_cancel(self, owners[i], owners[i]->job);
            }
    }
    if (touch) {
        int rc = lf_store_workers_touch(self->store, touch, nt, self->id, now);
        if (rc) s_redis_error(self, "worker registry", rc);
    }
    free(pairs), free(owners), free(lost), free(touch);
    return 0;
}

static int s_on_reap(zloop_t *loop, int timer_id, void *arg) {
    (void)loop, (void)timer_id;
    lf_broker_t *self = arg;
    s_retry_answers(self);
    lf_store_reaped_t r[64];
    size_t n = 0;
    int rc = lf_store_reap(self->store, s_now(), r, 64, &n);
    if (rc) {
        s_redis_error(self, "reap", rc);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        lf_store_finish_t f = {.status = r[i].status, .code = r[i].code};
        if (r[i].status == LF_JOB_QUEUED) {
            self->stats.requeued++;
            self->cache_at = 0;
            snprintf(f.message, sizeof f.message, "requeued: worker %s stopped answering",
                     r[i].worker_id);
            self->dispatch_pending = true;
        } else if (r[i].code == LF_ETIMEDOUT) {
            snprintf(f.message, sizeof f.message, "timed out: waited in the queue past its deadline");
        } else if (r[i].code == LF_ELIMIT) {
            snprintf(f.message, sizeof f.message, "failed after the maximum attempts: worker %s "
                     "stopped answering", r[i].worker_id);
        }
        lf_info("job %s: %s", r[i].id, f.message);
        s_publish_finish(self, r[i].id, &f, NULL);
    }
    if (self->dispatch_pending) s_dispatch(self);
    return 0;
}

static int s_on_poll(zloop_t *loop, int timer_id, void *arg) {
    (void)loop, (void)timer_id;
    lf_broker_t *self = arg;
    if (self->n_idle) s_dispatch(self);
    return 0;
}

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg) {
    (void)loop, (void)arg;
    char *cmd = zstr_recv(pipe);
    bool term = !cmd || !strcmp(cmd, "$TERM");
    zstr_free(&cmd);
    return term ? -1 : 0;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static char *s_dup(const char *s, const char *dflt) {
    return strdup(s && *s ? s : dflt);
}

static int s_curve(lf_broker_t *self, char *err, size_t errlen) {
    if (!self->opts.curve_secret || !*self->opts.curve_secret) return 0;
    if (!self->opts.curve_allow || !*self->opts.curve_allow) {
        snprintf(err, errlen, "CURVE: LF_CURVE_ALLOW (directory of allowed client certs) is required");
        return LF_EINVAL;
    }
    zcert_t *cert = zcert_load(self->opts.curve_secret);
    if (!cert) {
        snprintf(err, errlen, "CURVE: cannot load the broker certificate %s", self->opts.curve_secret);
        return LF_EINVAL;
    }
    self->auth = zactor_new(zauth, NULL);
    if (!self->auth) {
        zcert_destroy(&cert);
        snprintf(err, errlen, "CURVE: cannot start zauth");
        return LF_EINTERNAL;
    }
    zstr_sendx(self->auth, "CURVE", self->opts.curve_allow, NULL);
    zsock_wait(self->auth);
    zsock_t *socks[] = {self->fe, self->be, self->pub};
    for (int i = 0; i < 3; i++) {
        zcert_apply(cert, socks[i]);
        zsock_set_curve_server(socks[i], 1);
        zsock_set_zap_domain(socks[i], "lightfarm");
    }
    lf_info("CURVE on: broker key %s, clients allowed from %s", zcert_public_txt(cert),
            self->opts.curve_allow);
    zcert_destroy(&cert);
    return 0;
}

/* A socket with our options; bound later (after CURVE is set up). */
static zsock_t *s_socket(int type, char *err, size_t errlen) {
    zsock_t *s = zsock_new(type);
    if (!s) {
        snprintf(err, errlen, "cannot create a socket");
        return NULL;
    }
    zsock_set_linger(s, 0);
    zsock_set_sndhwm(s, 100000);
    zsock_set_rcvhwm(s, 100000);
    return s;
}

lf_broker_t *lf_broker_new(const lf_broker_opts_t *opts, char *err, size_t errlen) {
    char dummy[8];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    lf_broker_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (opts) self->opts = *opts;
    if (self->opts.id && *self->opts.id)
        snprintf(self->id, sizeof self->id, "%s", self->opts.id);
    else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(self->id, sizeof self->id, "%s-%d", host, (int)getpid());
    }
    self->opts.id = self->id;
    if (self->opts.heartbeat_ms <= 0) self->opts.heartbeat_ms = LF_HEARTBEAT_MS;
    if (self->opts.liveness <= 0) self->opts.liveness = LF_HEARTBEAT_LIVENESS;
    if (self->opts.starve_ms <= 0) self->opts.starve_ms = 30000;
    if (self->opts.reap_ms <= 0) self->opts.reap_ms = 250;
    self->fe_ep = s_dup(self->opts.frontend, "tcp://127.0.0.1:5555");
    self->be_ep = s_dup(self->opts.backend, "tcp://127.0.0.1:5556");
    self->ev_ep = s_dup(self->opts.events, "tcp://127.0.0.1:5557");
    self->workers = zhashx_new();
    self->by_ident = zhashx_new();
    self->retries = zlistx_new();
    if (!self->fe_ep || !self->be_ep || !self->ev_ep || !self->workers || !self->by_ident ||
        !self->retries) {
        snprintf(err, errlen, "out of memory");
        lf_broker_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->workers, s_worker_free);
    zlistx_set_destructor(self->retries, s_retry_free);

    char serr[256];
    self->store = lf_store_new(&self->opts.redis, serr, sizeof serr);
    if (!self->store) {
        snprintf(err, errlen, "%s", serr);
        lf_broker_destroy(&self);
        return NULL;
    }
    lf_store_set_limits(self->store, &self->opts.limits);

    self->fe = s_socket(ZMQ_ROUTER, err, errlen);
    self->be = self->fe ? s_socket(ZMQ_ROUTER, err, errlen) : NULL;
    self->pub = self->be ? s_socket(ZMQ_PUB, err, errlen) : NULL;
    if (!self->pub || s_curve(self, err, errlen)) {
        lf_broker_destroy(&self);
        return NULL;
    }
    /* Bind after CURVE options: they apply to connections made afterwards. */
    const struct {
        zsock_t *s;
        const char *ep;
    } b[] = {{self->fe, self->fe_ep}, {self->be, self->be_ep}, {self->pub, self->ev_ep}};
    for (int i = 0; i < 3; i++)
        if (zsock_attach(b[i].s, b[i].ep, true) != 0) {
            snprintf(err, errlen, "cannot bind %s: %s", b[i].ep, zmq_strerror(zmq_errno()));
            lf_broker_destroy(&self);
            return NULL;
        }
    lf_info("broker %s: gateways %s, workers %s, events %s, redis %s:%d", self->id, self->fe_ep,
            self->be_ep, self->ev_ep,
            self->opts.redis.host ? self->opts.redis.host : "127.0.0.1",
            self->opts.redis.port ? self->opts.redis.port : 6379);
    return self;
}

void lf_broker_destroy(lf_broker_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_broker_t *self = *self_p;
    if (self->be && self->workers) {
        /* Workers reconnect at once (to us restarted, or to another broker). */
        lf_msg_t bye = {.type = LF_MSG_DISCONNECT, .message = "broker shutting down"};
        for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers))
            s_send_worker(self, w, &bye);
        zsock_set_linger(self->be, 200);
    }
    zloop_destroy(&self->loop);
    zsock_destroy(&self->fe);
    zsock_destroy(&self->be);
    zsock_destroy(&self->pub);
    zactor_destroy(&self->auth);
    zhashx_destroy(&self->by_ident);
    zhashx_destroy(&self->workers);
    zlistx_destroy(&self->retries);
    lf_store_destroy(&self->store);
    free(self->idle);
    free(self->fe_ep), free(self->be_ep), free(self->ev_ep);
    free(self);
    *self_p = NULL;
}

int lf_broker_run(lf_broker_t *self, zsock_t *pipe) {
    self->loop = zloop_new();
    if (!self->loop) return LF_ENOMEM;
    zloop_reader(self->loop, self->fe, s_on_frontend, self);
    zloop_reader(self->loop, self->be, s_on_backend, self);
    if (pipe) zloop_reader(self->loop, pipe, s_on_pipe, self);
    int slice = self->opts.heartbeat_ms / S_BEAT_SLICES;
    zloop_timer(self->loop, (size_t)(slice > 10 ? slice : 10), 0, s_on_heartbeat, self);
    zloop_timer(self->loop, (size_t)self->opts.reap_ms, 0, s_on_reap, self);
    zloop_timer(self->loop, S_POLL_MS, 0, s_on_poll, self);
    zloop_start(self->loop);
    return 0;
}

void lf_broker_actor(zsock_t *pipe, void *args) {
    char err[256];
    lf_broker_t *b = lf_broker_new(args, err, sizeof err);
    if (!b) {
        lf_error("broker: %s", err);
        zsock_signal(pipe, 1);
        /* Wait for $TERM so zactor_destroy does not hang. */
        char *cmd = zstr_recv(pipe);
        zstr_free(&cmd);
        return;
    }
    zsock_signal(pipe, 0);
    lf_broker_run(b, pipe);
    lf_broker_destroy(&b);
}

void lf_broker_stats(const lf_broker_t *self, lf_broker_stats_t *out) { *out = self->stats; }
