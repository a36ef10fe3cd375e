/* lf_broker_workers: the broker's table of connected workers (caps, idle or
 * busy, which job) and what their messages do: READY/HEARTBEAT reconcile
 * our view with theirs (adopting or stopping jobs), PROGRESS/RESULT/FAILED
 * go to Redis (fenced there), and answers Redis could not take are kept
 * and retried. The idle set is an array with back-indices: O(1) add/remove. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_broker_impl.h"
#include "lf_error.h"
#include "lf_log.h"
#include "lf_proto.h"
#include "lf_scheduler.h"
#include "lf_store.h"

/* ---- workers ------------------------------------------------------------------- */

static void s_idle_add(lf_broker_t *self, lf__worker_t *w) {
    if (w->idle_pos >= 0) return;
    if (self->n_idle == self->cap_idle) {
        size_t cap = self->cap_idle ? self->cap_idle * 2 : 64;
        lf__worker_t **v = realloc(self->idle, cap * sizeof *v);
        if (!v) return; /* stays out of the idle set until the next beat */
        self->idle = v;
        self->cap_idle = cap;
    }
    w->idle_pos = (long)self->n_idle;
    self->idle[self->n_idle++] = w;
    self->dispatch_pending = true;
}

static void s_idle_remove(lf_broker_t *self, lf__worker_t *w) {
    if (w->idle_pos < 0) return;
    lf__worker_t *last = self->idle[--self->n_idle];
    self->idle[w->idle_pos] = last;
    last->idle_pos = w->idle_pos;
    w->idle_pos = -1;
}

void lf__set_idle(lf_broker_t *self, lf__worker_t *w) {
    w->state = LF__W_IDLE;
    w->job[0] = '\0';
    w->owned = false;
    w->job_open = false;
    w->n_batch = 0;
    w->attempt = 0;
    s_idle_add(self, w);
}

void lf__set_busy(lf_broker_t *self, lf__worker_t *w, const char *job, uint32_t attempt,
                       bool owned) {
    s_idle_remove(self, w);
    w->state = LF__W_BUSY;
    snprintf(w->job, sizeof w->job, "%s", job ? job : "");
    w->attempt = attempt;
    w->owned = owned;
    w->job_open = true;
    w->n_batch = 0;
    w->assigned_at = lf__mono();
}

/* The member of w's batch that is job, or NULL. */
static lf__member_t *s_member(lf__worker_t *w, const char *job) {
    for (size_t i = 0; job && i < w->n_batch; i++)
        if (!strcmp(w->batch[i].id, job)) return &w->batch[i];
    return NULL;
}

void lf__disown(lf__worker_t *w, const char *job) {
    lf__member_t *b = s_member(w, job);
    if (b) b->owned = false;
    else if (job && !strcmp(w->job, job)) w->owned = false;
}

/* w answered job (RESULT, FAILED or a refusal): *attempt gets the attempt
 * our record has (0 = unknown: the store fences by lease alone); true when
 * w has answered every job of its batch now (it is idle). */
static bool s_answered(lf__worker_t *w, const char *job, uint32_t *attempt) {
    lf__member_t *b = w->state == LF__W_BUSY ? s_member(w, job) : NULL;
    bool first = w->state == LF__W_BUSY && !strcmp(w->job, job);
    *attempt = first ? w->attempt : b ? b->attempt : 0;
    if (b) b->open = b->owned = false;
    if (first) w->job_open = w->owned = false;
    if (!w->job[0] || (!first && !b)) return !w->job[0] || !w->job_open;
    bool open = w->job_open;
    for (size_t i = 0; i < w->n_batch; i++) open |= w->batch[i].open;
    return !open;
}

void lf__worker_free(void **item) {
    lf__worker_t *w = *item;
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

void lf__worker_drop(lf_broker_t *self, lf__worker_t *w) {
    s_idle_remove(self, w);
    if (w->ident_hex) zhashx_delete(self->by_ident, w->ident_hex);
    zhashx_delete(self->workers, w->id); /* frees w */
}

/* Take the caps of a READY/HEARTBEAT (moved out of m). */
static void s_worker_caps(lf__worker_t *w, lf_msg_t *m) {
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
static lf__worker_t *s_worker_get(lf_broker_t *self, zframe_t *ident, const char *ident_hex,
                                const lf_msg_t *m, bool create) {
    lf__worker_t *w = NULL;
    if (m->worker_id && *m->worker_id) w = zhashx_lookup(self->workers, m->worker_id);
    if (!w) w = zhashx_lookup(self->by_ident, ident_hex);
    if (!w && create) {
        w = calloc(1, sizeof *w);
        if (!w) return NULL;
        w->id = strdup(m->worker_id && *m->worker_id ? m->worker_id : ident_hex);
        w->idle_pos = -1;
        w->state = LF__W_BUSY; /* until it says otherwise */
        if (!w->id) {
            free(w);
            return NULL;
        }
        /* A phase per worker (FNV-1a of its id) spreads the heartbeats of
         * workers that joined together: a burst of 1000 at once delays
         * everything queued behind it. */
        uint32_t h = 2166136261u;
        for (const char *c = w->id; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
        w->last_sent = lf__mono() - (int64_t)(h % (uint32_t)self->opts.heartbeat_ms);
        w->touched_at = w->last_sent;
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
        w->assigns_sent = 0; /* what went to the old connection is lost with it */
    }
    w->seen = lf__mono();
    return w;
}

void lf__send_cancel(lf_broker_t *self, lf__worker_t *w, const char *job) {
    lf_msg_t c = {.type = LF_MSG_CANCEL, .job_id = (char *)job};
    lf__send_worker(self, w, &c);
}

/* Give back the job our record says w runs (it refused it, went idle
 * without answering, or left). */
static void s_giveback_one(lf_broker_t *self, lf__worker_t *w, const char *job, bool refund,
                           const char *why) {
    lf_store_finish_t f;
    int rc = lf_store_requeue(self->store, job, w->id, self->id, refund, why, lf__now(), &f);
    if (rc == 0) {
        self->stats.requeued++;
        self->cache_at = 0;
        lf_info("job %s back to the queue (%s): %s", job, lf_job_status_name(f.status), why);
        lf__publish_finish(self, job, &f, w->id);
        self->dispatch_pending = true;
    } else if (rc != LF_ESTATE) {
        lf__redis_error(self, "requeue", rc); /* its lease runs out; the reaper requeues */
    }
}

/* True when the worker sent m before it had read our latest ASSIGN (it
 * counts the ASSIGNs it received on this connection): its busy/job then
 * say nothing about that job. Acting on it anyway gave a job back that the
 * worker was about to run (it reported the job of another broker, finished
 * that at once, then ran ours while the requeued copy ran elsewhere).
 * Trusted again after LF__B_ASSIGN_WAIT_BEATS, the ASSIGN taken as lost. */
static bool s_report_predates_assign(const lf_broker_t *self, const lf__worker_t *w,
                                     const lf_msg_t *m) {
    return m->has_assigns && m->assigns < w->assigns_sent &&
           lf__mono() - w->assign_sent_at <
               (int64_t)LF__B_ASSIGN_WAIT_BEATS * self->opts.heartbeat_ms;
}

/* Gives back the job our record says w runs and every job of its batch
 * still open and ours. */
static void s_giveback(lf_broker_t *self, lf__worker_t *w, bool refund, const char *why) {
    if (w->state != LF__W_BUSY || !w->job[0]) return;
    for (size_t i = 0; i < w->n_batch; i++)
        if (w->batch[i].owned && w->batch[i].open) s_giveback_one(self, w, w->batch[i].id, refund, why);
    w->n_batch = 0;
    if (w->owned && w->job_open) s_giveback_one(self, w, w->job, refund, why);
}

/* True when every job of refs is in w's record and ours. */
static bool s_all_ours(lf__worker_t *w, const lf_job_ref_t *refs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const lf__member_t *b = s_member(w, refs[i].id);
        if (!(b ? b->owned : !strcmp(w->job, refs[i].id) && w->owned)) return false;
    }
    return true;
}

/* w runs ref (its batch's first job, w->job, or another): adopt it when
 * Redis says w holds it, cancel it when w holds it no more, leave it while
 * another live broker owns it. */
static void s_adopt(lf_broker_t *self, lf__worker_t *w, const lf_job_ref_t *ref) {
    bool first = !strcmp(ref->id, w->job);
    lf__member_t *b = first ? NULL : s_member(w, ref->id);
    if (first ? w->owned : b && b->owned) return; /* ours already */
    if (!first && !b) {
        if (w->n_batch >= LF__B_BATCH_MAX - 1) return;
        b = &w->batch[w->n_batch++];
        *b = (lf__member_t){.open = true};
        snprintf(b->id, sizeof b->id, "%s", ref->id);
    }
    uint32_t attempt = 0;
    bool changed = false;
    int rc = lf_store_adopt(self->store, ref->id, w->id, self->id, lf__now(), &attempt, &changed);
    if (rc == 0) {
        if (first) w->attempt = attempt, w->owned = w->job_open = true;
        else b->attempt = attempt, b->owned = b->open = true;
        self->stats.adopted++;
        lf_info("worker %s: adopted its running job %s (attempt %u)", w->id, ref->id, attempt);
        if (ref->attempt && ref->attempt != attempt)
            lf_warn("job %s: worker %s runs attempt %u, the store holds attempt %u for it", ref->id, w->id,
                    ref->attempt, attempt);
        if (changed) {
            /* Its owner broker is gone: a repeated ASSIGN makes the worker
             * send its answer here. */
            lf_job_view_t v;
            if (lf_store_job_get(self->store, ref->id, &v) == 0) {
                lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = (char *)ref->id, .attempt = attempt,
                              .params = v.params};
                lf__send_worker(self, w, &a);
                lf_job_view_clear(&v);
            }
        }
    } else if (rc == LF_ESTATE) {
        lf_info("worker %s runs job %s, which it no longer holds: cancelling it", w->id, ref->id);
        lf__send_cancel(self, w, ref->id);
    } else if (rc != LF_EBUSY) { /* LF_EBUSY: another live broker's job */
        lf__redis_error(self, "adopt", rc);
    }
}

/* The worker says it runs `job` (or nothing), and with `jobs` every job of
 * its batch not answered yet: adopt what Redis says it holds, stop what it
 * no longer holds. */
static void s_reconcile(lf_broker_t *self, lf__worker_t *w, const lf_msg_t *m,
                        bool from_ready) {
    bool busy = m->busy;
    const char *job = m->job_id;
    if (s_report_predates_assign(self, w, m)) return;
    if (!busy) {
        /* A heartbeat sent before our ASSIGN arrived says idle: give the
         * ASSIGN two beats before believing it (the rule for workers that
         * do not count their ASSIGNs; for the others, see above). */
        if (w->state == LF__W_BUSY && w->owned && !from_ready &&
            lf__mono() - w->assigned_at < 2 * self->opts.heartbeat_ms)
            return;
        if (w->state == LF__W_BUSY && (w->owned || w->n_batch))
            s_giveback(self, w, false, "its worker went idle without an answer");
        if (w->state != LF__W_IDLE || w->idle_pos < 0) lf__set_idle(self, w);
        return;
    }
    if (!job || !*job) {
        if (w->state == LF__W_IDLE) lf__set_busy(self, w, NULL, 0, false);
        return;
    }
    /* The jobs it runs: its list (the open jobs of its batch), or the one
     * job an older worker names. */
    lf_job_ref_t one = {(char *)job, 0};
    const lf_job_ref_t *refs = m->n_jobs ? m->jobs : &one;
    size_t nr = m->n_jobs ? m->n_jobs : 1;
    if (nr > LF__B_BATCH_MAX) nr = LF__B_BATCH_MAX;
    if (w->state == LF__W_BUSY && !strcmp(w->job, job)) {
        /* Jobs of another broker: take them over once that broker is gone
         * (its liveness key expires before the jobs' leases). */
        if (s_all_ours(w, refs, nr) || lf__mono() - w->adopt_at < self->opts.heartbeat_ms) return;
    } else {
        if (w->state == LF__W_BUSY && w->job[0])
            s_giveback(self, w, true, "its worker runs another job"); /* our ASSIGN was refused */
        lf__set_busy(self, w, job, 0, false);
        w->job_open = false; /* open again when its list names it */
        for (size_t i = 0; i < nr; i++) w->job_open |= !strcmp(refs[i].id, job);
    }
    w->adopt_at = lf__mono();
    for (size_t i = 0; i < nr; i++)
        if (refs[i].id && *refs[i].id) s_adopt(self, w, &refs[i]);
}

/* ---- worker messages ------------------------------------------------------------ */

/* Defer a report to the end of the drain; m's contents are moved. */
static void s_defer(lf_broker_t *self, const char *worker, uint32_t attempt, lf_msg_t *m,
                    zframe_t *payload) {
    if (self->n_pend == self->cap_pend) {
        size_t cap = self->cap_pend ? self->cap_pend * 2 : 64;
        lf__pending_t *v = realloc(self->pend, cap * sizeof *v);
        if (!v) {
            lf_error("out of memory: a worker report is lost");
            return;
        }
        self->pend = v;
        self->cap_pend = cap;
    }
    lf__pending_t *p = &self->pend[self->n_pend];
    *p = (lf__pending_t){.msg = *m, .worker = strdup(worker), .attempt = attempt,
                         .raw = m->type == LF_MSG_PROGRESS ? NULL : zframe_dup(payload)};
    if (!p->worker) {
        zframe_destroy(&p->raw);
        return; /* m keeps its contents; the caller clears it */
    }
    memset(m, 0, sizeof *m);
    self->n_pend++;
}

static void s_progress_done(lf_broker_t *self, lf__pending_t *p, int rc) {
    lf_msg_t *m = &p->msg;
    if (rc == LF_ESTATE) {
        lf__worker_t *w = zhashx_lookup(self->workers, p->worker);
        if (w) lf__send_cancel(self, w, m->job_id); /* cancelled or reassigned: stop */
        return;
    }
    if (rc) lf__redis_error(self, "progress", rc);
    lf_msg_t x = {.step = m->step, .steps = m->steps, .worker_id = p->worker};
    lf__publish(self, m->job_id, LF_EV_PROGRESS, LF_JOB_RUNNING, &x);
    if (m->preview.len) {
        x.preview = m->preview;
        lf__publish(self, m->job_id, LF_EV_PREVIEW, LF_JOB_RUNNING, &x);
    }
}

static void s_answer_done(lf_broker_t *self, const char *job_id, lf_msg_type_t type,
                          const char *worker_id, int rc, const lf_store_finish_t *f) {
    if (rc == LF_ESTATE) {
        self->stats.dropped_stale++;
        lf_info("job %s: %s from worker %s dropped (it no longer holds the job)", job_id,
                lf_msg_type_name(type), worker_id);
    } else if (rc) {
        lf_warn("job %s: %s not stored: %s", job_id, lf_msg_type_name(type), lf_strerror(rc));
    } else {
        if (f->status == LF_JOB_DONE) self->stats.completed++;
        else if (f->status == LF_JOB_CANCELLED) self->stats.cancelled++;
        else self->stats.failed++;
        lf__publish_finish(self, job_id, f, worker_id);
        lf_debug("job %s %s by %s", job_id, lf_job_status_name(f->status), worker_id);
    }
}

static void s_keep_for_retry(lf_broker_t *self, const char *worker, const uint8_t *buf,
                             size_t len);

void lf__flush_reports(lf_broker_t *self) {
    size_t n = self->n_pend;
    if (!n) return;
    lf_store_report_t *r = calloc(n, sizeof *r);
    int *codes = calloc(n, sizeof *codes);
    lf_store_finish_t *fin = calloc(n, sizeof *fin);
    int rc = r && codes && fin ? 0 : LF_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        lf__pending_t *p = &self->pend[i];
        lf_msg_t *m = &p->msg;
        r[i] = (lf_store_report_t){.job_id = m->job_id, .worker_id = p->worker,
                                   .attempt = p->attempt};
        if (m->type == LF_MSG_PROGRESS) {
            r[i].kind = LF_STORE_REPORT_PROGRESS;
            r[i].step = m->step, r[i].steps = m->steps;
            r[i].preview = m->preview.data, r[i].preview_len = m->preview.len;
        } else if (m->type == LF_MSG_RESULT) {
            r[i].kind = LF_STORE_REPORT_COMPLETE;
            r[i].images = m->images, r[i].n_images = m->n_images, r[i].info_json = m->info_json;
        } else {
            r[i].kind = LF_STORE_REPORT_FAIL;
            r[i].code = m->code, r[i].message = m->message;
        }
    }
    if (!rc) rc = lf_store_report(self->store, r, n, lf__now(), codes, fin);
    if (rc) lf__redis_error(self, "storing worker reports", rc);
    for (size_t i = 0; i < n; i++) {
        lf__pending_t *p = &self->pend[i];
        int code = codes ? codes[i] : rc;
        if (p->msg.type == LF_MSG_PROGRESS) {
            s_progress_done(self, p, code);
        } else if (code == LF_ECONN || code == LF_EREDIS || code == LF_ENOMEM) {
            if (p->raw) s_keep_for_retry(self, p->worker, zframe_data(p->raw), zframe_size(p->raw));
        } else {
            s_answer_done(self, p->msg.job_id, p->msg.type, p->worker, code, fin ? &fin[i] : NULL);
        }
        lf_msg_clear(&p->msg);
        free(p->worker);
        zframe_destroy(&p->raw);
    }
    self->n_pend = 0;
    free(r), free(codes), free(fin);
}

/* RESULT or FAILED. Returns LF_ECONN/LF_EREDIS when Redis did not take it
 * (the caller keeps it for a retry), else 0. */
static int s_on_answer(lf_broker_t *self, const char *worker_id, lf_msg_t *m) {
    lf__worker_t *w = zhashx_lookup(self->workers, worker_id);
    uint32_t attempt = w && w->state == LF__W_BUSY && !strcmp(w->job, m->job_id) ? w->attempt : 0;
    lf_store_finish_t f;
    int rc;
    if (m->type == LF_MSG_RESULT) {
        rc = lf_store_complete(self->store, m->job_id, worker_id, attempt, m->images, m->n_images,
                               m->info_json, lf__now(), &f);
    } else if (m->code == LF_EBUSY) {
        /* A refusal: the worker is busy with something else. */
        rc = lf_store_requeue(self->store, m->job_id, worker_id, self->id, true, "worker was busy",
                              lf__now(), &f);
        if (rc == 0) {
            self->stats.requeued++;
            self->cache_at = 0;
            self->dispatch_pending = true;
            uint32_t att;
            if (w && (!strcmp(w->job, m->job_id) || s_member(w, m->job_id)) && s_answered(w, m->job_id, &att))
                lf__set_busy(self, w, NULL, 0, false); /* busy with what it refused for */
            return 0;
        }
    } else {
        rc = lf_store_fail(self->store, m->job_id, worker_id, attempt, m->code, m->message,
                           lf__now(), &f);
    }
    if (rc == LF_ECONN || rc == LF_EREDIS) return rc;
    s_answer_done(self, m->job_id, m->type, worker_id, rc, &f);
    return 0;
}

void lf__retry_free(void **item) {
    lf__retry_t *r = *item;
    if (!r) return;
    free(r->worker);
    zmsg_destroy(&r->msg);
    free(r);
    *item = NULL;
}

static void s_keep_for_retry(lf_broker_t *self, const char *worker, const uint8_t *buf,
                             size_t len) {
    if (zlistx_size(self->retries) >= LF__B_RETRY_MAX) {
        lf_error("redis away too long: dropping a worker answer (its job will be retried)");
        return;
    }
    lf__retry_t *r = calloc(1, sizeof *r);
    if (!r) return;
    r->worker = strdup(worker);
    r->msg = zmsg_new();
    zmsg_addmem(r->msg, buf, len);
    zlistx_add_end(self->retries, r);
}

void lf__retry_answers(lf_broker_t *self) {
    lf__retry_t *r;
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

void lf__on_worker_frame(lf_broker_t *self, zframe_t *ident, zframe_t *payload) {
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
        lf__worker_t *w = s_worker_get(self, ident, hex, &m, true);
        if (!w) break;
        s_worker_caps(w, &m);
        s_reconcile(self, w, &m, m.type == LF_MSG_READY || !known);
        break;
    }
    case LF_MSG_RESCAN: {
        /* A worker's new LoRA list (refresh-loras): into the registry now,
         * before the gateway that asked hears back. */
        lf__worker_t *w = s_worker_get(self, ident, hex, &m, false);
        if (!w) break;
        s_worker_caps(w, &m);
        lf_store_worker_touch_t t = {w->id, w->caps_blob, w->caps_len,
                                     w->state == LF__W_BUSY && w->job[0] ? w->job : NULL, lf__now(),
                                     w->jobs_done};
        int rc2 = lf_store_workers_touch(self->store, &t, 1, self->id, lf__now());
        if (rc2) lf__redis_error(self, "worker registry", rc2);
        lf__rescan_answered(self, w->id);
        break;
    }
    case LF_MSG_PROGRESS: {
        lf__worker_t *w = s_worker_get(self, ident, hex, &m, false);
        if (w) s_defer(self, w->id, 0, &m, payload);
        break;
    }
    case LF_MSG_RESULT:
    case LF_MSG_FAILED: {
        lf__worker_t *w = s_worker_get(self, ident, hex, &m, false);
        const char *wid = w ? w->id : m.worker_id;
        if (!wid) {
            lf_warn("job %s: %s from an unknown worker; dropped", m.job_id,
                    lf_msg_type_name(m.type));
            break;
        }
        if (m.type == LF_MSG_FAILED && m.code == LF_EBUSY) {
            /* A refusal goes back to the queue now (not a report). */
            rc = s_on_answer(self, wid, &m);
            if (rc) lf__redis_error(self, "requeue of a refused job", rc);
            break;
        }
        uint32_t attempt = 0;
        if (w) {
            if (m.type == LF_MSG_RESULT) w->jobs_done++;
            /* Idle once every job of its batch has answered. */
            if (s_answered(w, m.job_id, &attempt)) lf__set_idle(self, w);
        }
        s_defer(self, wid, attempt, &m, payload);
        break;
    }
    case LF_MSG_DISCONNECT: {
        lf__worker_t *w = s_worker_get(self, ident, hex, &m, false);
        if (!w) break;
        lf_info("worker %s left", w->id);
        s_giveback(self, w, false, "its worker left");
        int rc2 = lf_store_worker_remove(self->store, w->id);
        if (rc2) lf__redis_error(self, "worker remove", rc2);
        lf__worker_drop(self, w);
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

