/* lf_broker: lifecycle, sockets and CURVE, the gateway side (SUBMIT,
 * CANCEL), events, and the timers (heartbeats, leases, registry, reaper).
 * Workers are in lf_broker_workers.c, dispatch in lf_broker_dispatch.c.
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

#include "lf_broker_impl.h"
#include "lf_error.h"
#include "lf_log.h"
#include "lf_proto.h"
#include "lf_scheduler.h"
#include "lf_store.h"

void lf__redis_error(lf_broker_t *self, const char *what, int rc) {
    self->stats.redis_errors++;
    if (rc == LF_ECONN && !self->redis_down) {
        self->redis_down = true;
        lf_warn("redis unreachable (%s): this broker assigns nothing and refuses submits until it "
                "answers; gateways send theirs to another broker",
                lf_store_errstr(self->store));
    }
    int64_t now = lf__mono();
    if (now - self->redis_warned > 2000) {
        lf_warn("redis: %s failed: %s (%s)", what, lf_strerror(rc), lf_store_errstr(self->store));
        self->redis_warned = now;
    }
}

/* A handler that held the reactor for long delays everything behind it:
 * count it, and say which one (at most once every 2 s). */
static void s_timed(lf_broker_t *self, const char *what, int64_t t0) {
    int64_t now = lf__mono(), ms = now - t0;
    if (ms < LF__B_SLOW_MS) return;
    self->stats.slow_handlers++;
    if (ms > self->stats.slowest_handler_ms) self->stats.slowest_handler_ms = ms;
    if (now - self->slow_warned > 2000) {
        lf_warn("%s handler held the broker for %lld ms (%zu workers, %zu idle)", what,
                (long long)ms, zhashx_size(self->workers), self->n_idle);
        self->slow_warned = now;
    }
}

/* ---- sending ------------------------------------------------------------------ */

int lf__send_to(zsock_t *sock, zmsg_t *envelope, const lf_msg_t *m) {
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

void lf__send_worker(lf_broker_t *self, lf__worker_t *w, const lf_msg_t *m) {
    w->last_sent = lf__mono();
    if (m->type == LF_MSG_ASSIGN) w->assigns_sent++, w->assign_sent_at = w->last_sent;
    zmsg_t *env = zmsg_new();
    zmsg_append(env, &(zframe_t *){zframe_dup(w->ident)});
    lf__send_to(self->be, env, m);
}

void lf__publish(lf_broker_t *self, const char *job_id, lf_event_kind_t ev,
                      lf_job_status_t st, const lf_msg_t *extra) {
    lf_msg_t m = {.type = LF_MSG_EVENT, .job_id = (char *)job_id, .event = ev, .status = st};
    if (extra) {
        m.step = extra->step, m.steps = extra->steps, m.preview = extra->preview;
        m.code = extra->code, m.message = extra->message, m.worker_id = extra->worker_id;
    }
    zmsg_t *env = zmsg_new();
    zmsg_addstr(env, job_id);
    lf__send_to(self->pub, env, &m);
}

void lf__publish_finish(lf_broker_t *self, const char *job_id, const lf_store_finish_t *f,
                             const char *worker) {
    lf_event_kind_t ev = f->status == LF_JOB_DONE        ? LF_EV_DONE
                         : f->status == LF_JOB_CANCELLED ? LF_EV_CANCELLED
                         : f->status == LF_JOB_QUEUED    ? LF_EV_QUEUED
                                                         : LF_EV_FAILED;
    lf_msg_t x = {.code = f->code, .message = f->message[0] ? (char *)f->message : NULL,
                  .worker_id = (char *)worker};
    lf__publish(self, job_id, ev, f->status, &x);
}

/* ---- gateway messages --------------------------------------------------------- */

static void s_reply(lf_broker_t *self, zmsg_t *env, uint64_t req_id, int code,
                    const char *message, const char *job_id) {
    lf_msg_t r = {.type = LF_MSG_REPLY, .req_id = req_id, .code = code,
                  .message = (char *)message, .job_id = (char *)job_id};
    lf__send_to(self->fe, env, &r);
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
                                      m->max_attempts, m->enhance_ms};
    }
    if (!rc) {
        rc = lf_store_submit(self->store, jobs, n, lf__now(), out);
        if (rc) lf__redis_error(self, "submit", rc);
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
                          .position = out[i].position, .duplicate = out[i].duplicate,
                          .status = out[i].status};
            lf__send_to(self->fe, subs[i].env, &a);
            if (out[i].duplicate) {
                self->stats.duplicates++;
            } else if (out[i].status == LF_JOB_ENHANCING) {
                /* Stored, not queued: the gateway's ENHANCED (or the reaper) queues it. */
                self->stats.submitted++;
                lf__publish(self, out[i].id, LF_EV_ENHANCING, LF_JOB_ENHANCING, NULL);
            } else {
                self->stats.submitted++;
                lf__cache_add(self, &out[i], m);
                lf__publish(self, out[i].id, LF_EV_QUEUED, LF_JOB_QUEUED, NULL);
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
    int rc = lf_store_cancel(self->store, m->job_id, lf__now(), &was, worker, sizeof worker);
    if (rc == 0) {
        self->stats.cancelled++;
        lf_msg_t x = {.code = LF_ECANCELED, .message = "cancelled by request"};
        lf__publish(self, m->job_id, LF_EV_CANCELLED, LF_JOB_CANCELLED, &x);
        lf__worker_t *w = worker[0] ? zhashx_lookup(self->workers, worker) : NULL;
        if (w) {
            lf__send_cancel(self, w, m->job_id);
            lf__disown(w, m->job_id); /* nothing to renew; it becomes idle when it answers */
        }
        s_reply(self, env, m->req_id, 0, was == LF_JOB_RUNNING ? "cancelling" : "cancelled",
                m->job_id);
    } else {
        const char *why = rc == LF_ENOTFOUND ? "no such job"
                          : rc == LF_ESTATE  ? "the job has already finished"
                                             : "job store (redis) unavailable";
        if (rc != LF_ENOTFOUND && rc != LF_ESTATE) lf__redis_error(self, "cancel", rc);
        s_reply(self, env, m->req_id, rc, why, m->job_id);
    }
}

/* An enhancing job's prompt settled (queued now): the event, and the job
 * goes to the next dispatch (at its place in the queue, so the cache,
 * which only appends, is refreshed). */
static void s_enhance_queued(lf_broker_t *self, const lf_store_submitted_t *o, const char *why) {
    lf_msg_t x = {.message = (char *)why};
    lf__publish(self, o->id, LF_EV_QUEUED, LF_JOB_QUEUED, &x);
    self->cache_at = 0;
    self->dispatch_pending = true;
}

/* A gateway's ENHANCED: the LLM's prompt (code 0) or why there is none. */
static void s_on_enhanced(lf_broker_t *self, zmsg_t *env, const lf_msg_t *m) {
    bool ok = m->code == 0 && m->prompt && *m->prompt;
    const char *why = ok ? NULL : m->message && *m->message ? m->message : "the gateway sent no prompt";
    lf_store_submitted_t o;
    int rc = lf_store_enhanced(self->store, m->job_id, ok ? m->prompt : NULL, why, lf__now(), &o);
    if (rc == 0) s_enhance_queued(self, &o, ok ? "prompt enhanced" : why);
    else if (rc != LF_ENOTFOUND && rc != LF_ESTATE && rc != LF_EINVAL) lf__redis_error(self, "enhanced", rc);
    s_reply(self, env, m->req_id, rc,
            rc == 0              ? "queued"
            : rc == LF_ESTATE    ? "the job is no longer enhancing (cancelled, or moved on)"
            : rc == LF_ENOTFOUND ? "no such job"
                                 : lf_strerror(rc),
            m->job_id);
}

/* Enhancing jobs whose gateway never answered go on with the original prompt. */
static void s_enhance_reap(lf_broker_t *self) {
    static const char why[] = "enhancement lost: no answer from the gateway in time (the original prompt is used)";
    lf_store_submitted_t o[32];
    size_t n = 0;
    int rc = lf_store_enhance_reap(self->store, lf__now(), why, o, 32, &n);
    if (rc) lf__redis_error(self, "enhance reap", rc);
    for (size_t i = 0; i < n; i++) {
        lf_info("job %s: %s", o[i].id, why);
        s_enhance_queued(self, &o[i], why);
    }
}

/* ---- refresh-loras: RESCAN relayed to the workers ------------------------------- */

static void s_rescan_free(lf__rescan_t *r) {
    zmsg_destroy(&r->env);
    for (size_t i = 0; i < r->n; i++) free(r->ids[i]);
    free(r->ids);
}

/* Relays a gateway's RESCAN to every live worker of this broker (a worker
 * connects to every broker, so one broker reaches them all) and answers
 * once each has sent its new list (stored in Redis by then), or after
 * LF__B_RESCAN_MS. */
static void s_on_rescan(lf_broker_t *self, zmsg_t *env, const lf_msg_t *m) {
    size_t nw = zhashx_size(self->workers);
    lf__rescan_t r = {.env = env, .req_id = m->req_id, .ids = calloc(nw ? nw : 1, sizeof *r.ids),
                      .deadline = lf__mono() + LF__B_RESCAN_MS};
    lf__rescan_t *v = realloc(self->rescans, (self->n_rescans + 1) * sizeof *v);
    if (v) self->rescans = v;
    if (!r.ids || !v) {
        free(r.ids);
        s_reply(self, env, m->req_id, LF_ENOMEM, "out of memory", NULL);
        return;
    }
    lf_msg_t rs = {.type = LF_MSG_RESCAN};
    for (lf__worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers)) {
        if (!(r.ids[r.n] = strdup(w->id))) continue;
        r.n++;
        lf__send_worker(self, w, &rs);
    }
    r.asked = r.n;
    lf_info("refresh-loras: asked %zu worker(s) to list their LoRA files again", r.n);
    if (!r.n) {
        s_reply(self, env, m->req_id, 0, "no workers to ask", NULL);
        r.env = NULL;
        s_rescan_free(&r);
        return;
    }
    self->rescans[self->n_rescans++] = r;
}

/* Answers (and forgets) rescan i. */
static void s_rescan_done(lf_broker_t *self, size_t i) {
    lf__rescan_t *r = &self->rescans[i];
    char msg[96];
    snprintf(msg, sizeof msg, "%zu of %zu worker(s) listed their LoRA files again", r->asked - r->n,
             r->asked);
    if (r->n) lf_warn("refresh-loras: %s (the others did not answer in time)", msg);
    s_reply(self, r->env, r->req_id, 0, msg, NULL);
    r->env = NULL;
    s_rescan_free(r);
    self->rescans[i] = self->rescans[--self->n_rescans];
}

void lf__rescan_answered(lf_broker_t *self, const char *worker_id) {
    for (size_t i = self->n_rescans; i-- > 0;) {
        lf__rescan_t *r = &self->rescans[i];
        for (size_t k = 0; k < r->n; k++)
            if (!strcmp(r->ids[k], worker_id)) {
                free(r->ids[k]);
                r->ids[k] = r->ids[--r->n];
                break;
            }
        if (!r->n) s_rescan_done(self, i);
    }
}

static void s_rescan_expire(lf_broker_t *self, int64_t mono) {
    for (size_t i = self->n_rescans; i-- > 0;)
        if (mono >= self->rescans[i].deadline) s_rescan_done(self, i);
}

static int s_on_frontend(zloop_t *loop, zsock_t *sock, void *arg) {
    (void)loop;
    lf_broker_t *self = arg;
    int64_t t_in = lf__mono();
    s_sub_t subs[LF__B_BATCH];
    size_t n_sub = 0;
    for (int k = 0; k < LF__B_BATCH; k++) {
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
        else if (m.type == LF_MSG_HEARTBEAT) /* a gateway's: alive, and can we use Redis? */
            s_reply(self, msg, 0, self->redis_down ? LF_ECONN : 0,
                    self->redis_down ? "job store (redis) unreachable: not assigning" : "ok", NULL);
        else if (m.type == LF_MSG_RESCAN)
            s_on_rescan(self, msg, &m);
        else if (m.type == LF_MSG_ENHANCED)
            s_on_enhanced(self, msg, &m);
        else
            s_reply(self, msg, m.req_id, LF_EUNSUPPORTED,
                    "gateways may send submit, cancel, rescan or enhanced", NULL);
        lf_msg_clear(&m);
    }
    s_flush_submits(self, subs, n_sub);
    if (self->dispatch_pending) lf__dispatch(self);
    return s_timed(self, "gateway", t_in), 0;
}

static int s_on_backend(zloop_t *loop, zsock_t *sock, void *arg) {
    (void)loop;
    lf_broker_t *self = arg;
    int64_t t_in = lf__mono();
    for (int k = 0; k < LF__B_BATCH; k++) {
        if (k && !(zsock_events(sock) & ZMQ_POLLIN)) break;
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg) break;
        if (zmsg_size(msg) == 2) {
            zframe_t *ident = zmsg_first(msg);
            lf__on_worker_frame(self, ident, zmsg_next(msg));
        } else {
            self->stats.bad_frames++;
        }
        zmsg_destroy(&msg);
    }
    lf__flush_reports(self);
    if (self->dispatch_pending) lf__dispatch(self);
    return s_timed(self, "worker", t_in), 0;
}

/* ---- timers ------------------------------------------------------------------------ */

/* Every heartbeat_ms / LF__B_BEAT_SLICES, for the workers that are due
 * (each once per heartbeat_ms, at its own phase, so the work is spread
 * evenly instead of arriving as one block that delays dispatch): a
 * heartbeat if we sent it nothing for heartbeat_ms, its lease renewal and
 * its registry entry; and the purge of workers silent for `liveness` beats. */
static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg) {
    (void)loop, (void)timer_id;
    lf_broker_t *self = arg;
    int64_t mono = lf__mono(), now = lf__now(), t_in = mono;
    int64_t hb_ms = self->opts.heartbeat_ms;
    int64_t dead_after = hb_ms * self->opts.liveness;
    lf_msg_t hb = {.type = LF_MSG_HEARTBEAT};
    size_t nw = zhashx_size(self->workers);
    size_t np_max = nw * LF__B_BATCH_MAX + 1; /* every job of every batch */
    lf_store_pair_t *pairs = calloc(np_max, sizeof *pairs);
    lf__worker_t **owners = calloc(np_max, sizeof *owners);
    bool *lost = calloc(np_max, sizeof *lost);
    lf_store_worker_touch_t *touch = calloc(nw + 1, sizeof *touch);
    zlistx_t *dead = zlistx_new();
    if (!pairs || !owners || !lost || !touch || !dead) {
        free(pairs), free(owners), free(lost), free(touch);
        zlistx_destroy(&dead);
        return s_timed(self, "heartbeat", t_in), 0; /* next tick */
    }
    size_t np = 0, nt = 0;
    for (lf__worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers)) {
        if (mono - w->seen > dead_after) {
            zlistx_add_end(dead, w);
            continue;
        }
        if (mono - w->last_sent >= hb_ms) lf__send_worker(self, w, &hb);
        if (mono - w->touched_at < hb_ms) continue;
        w->touched_at = mono;
        if (w->state == LF__W_BUSY && w->owned && w->job[0])
            owners[np] = w, pairs[np++] = (lf_store_pair_t){w->job, w->id};
        for (size_t b = 0; w->state == LF__W_BUSY && b < w->n_batch; b++)
            if (w->batch[b].owned) owners[np] = w, pairs[np++] = (lf_store_pair_t){w->batch[b].id, w->id};
        touch[nt++] = (lf_store_worker_touch_t){w->id, w->caps_blob, w->caps_len,
                                                w->state == LF__W_BUSY && w->job[0] ? w->job : NULL,
                                                now - (mono - w->seen), w->jobs_done};
    }
    /* A dead worker's lease is no longer renewed: the reaper requeues. */
    for (lf__worker_t *w = zlistx_first(dead); w; w = zlistx_next(dead)) {
        lf_warn("worker %s silent for %lld ms: dead%s%s", w->id, (long long)(mono - w->seen),
                w->owned ? "; its job returns to the queue when the lease ends: " : "",
                w->owned ? w->job : "");
        self->stats.workers_lost++;
        lf__worker_drop(self, w);
    }
    zlistx_destroy(&dead);
    s_rescan_expire(self, mono);
    /* Renewal also keeps this broker's liveness key (half a lease) alive. */
    if (np || mono >= self->next_beat) {
        self->next_beat = mono + hb_ms;
        int rc = lf_store_renew(self->store, pairs, np, self->id, now, lost);
        if (rc) lf__redis_error(self, "lease renewal", rc);
        for (size_t i = 0; !rc && i < np; i++)
            if (lost[i]) {
                lf_info("worker %s no longer holds job %s: cancelling it there", owners[i]->id,
                        pairs[i].job_id);
                lf__send_cancel(self, owners[i], pairs[i].job_id);
                lf__disown(owners[i], pairs[i].job_id);
            }
    }
    if (nt) {
        int rc = lf_store_workers_touch(self->store, touch, nt, self->id, now);
        if (rc) lf__redis_error(self, "worker registry", rc);
    }
    free(pairs), free(owners), free(lost), free(touch);
    return s_timed(self, "heartbeat", t_in), 0;
}

/* Expired leases and queue deadlines, in rounds of 64 (a mass worker loss
 * is swept within a few ticks, without one long stall). */
static int s_on_reap(zloop_t *loop, int timer_id, void *arg) {
    (void)loop, (void)timer_id;
    lf_broker_t *self = arg;
    int64_t t_in = lf__mono();
    lf__retry_answers(self);
    for (int round = 0; round < 8; round++) {
        lf_store_reaped_t r[64];
        size_t n = 0;
        int rc = lf_store_reap(self->store, lf__now(), r, 64, &n);
        if (rc) {
            lf__redis_error(self, "reap", rc);
            break;
        }
        if (self->redis_down) {
            self->redis_down = false;
            lf_info("redis answers again: assigning");
            self->dispatch_pending = true;
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
                snprintf(f.message, sizeof f.message,
                         "timed out: waited in the queue past its deadline");
            } else if (r[i].code == LF_ELIMIT) {
                snprintf(f.message, sizeof f.message,
                         "failed after the maximum attempts: worker %s stopped answering",
                         r[i].worker_id);
            }
            lf_info("job %s: %s", r[i].id, f.message);
            lf__publish_finish(self, r[i].id, &f, NULL);
        }
        if (n < 32) break; /* each kind is capped at 32 per round: less means done */
    }
    if (!self->redis_down) s_enhance_reap(self);
    /* External image store: delete the objects whose retention ended (a few
     * per tick: each is a request to the store, made on this thread). */
    size_t swept = 0, unswept = 0;
    int src = lf_store_blobs_sweep(self->store, lf__now(), 16, &swept, &unswept);
    if (src) lf__redis_error(self, "image sweep", src);
    else if (unswept) lf_warn("image store: %s (%zu deletion(s) retried in a minute)", lf_store_errstr(self->store), unswept);
    if (self->dispatch_pending) lf__dispatch(self);
    return s_timed(self, "reaper", t_in), 0;
}

static int s_on_unrunnable(zloop_t *loop, int timer_id, void *arg) {
    (void)loop, (void)timer_id;
    lf_broker_t *self = arg;
    int64_t t_in = lf__mono();
    lf__sweep_unrunnable(self);
    return s_timed(self, "unrunnable sweep", t_in), 0;
}

static int s_on_poll(zloop_t *loop, int timer_id, void *arg) {
    (void)loop, (void)timer_id;
    lf_broker_t *self = arg;
    int64_t t_in = lf__mono();
    if (self->n_idle) lf__dispatch(self);
    return s_timed(self, "poll", t_in), 0;
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
    if (self->opts.unrunnable_grace_ms == 0) self->opts.unrunnable_grace_ms = 60000;
    self->fe_ep = s_dup(self->opts.frontend, "tcp://127.0.0.1:5555");
    self->be_ep = s_dup(self->opts.backend, "tcp://127.0.0.1:5556");
    self->ev_ep = s_dup(self->opts.events, "tcp://127.0.0.1:5557");
    self->workers = zhashx_new();
    self->by_ident = zhashx_new();
    self->retries = zlistx_new();
    self->unrunnable = zhashx_new();
    if (!self->fe_ep || !self->be_ep || !self->ev_ep || !self->workers || !self->by_ident ||
        !self->retries || !self->unrunnable) {
        snprintf(err, errlen, "out of memory");
        lf_broker_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->workers, lf__worker_free);
    zlistx_set_destructor(self->retries, lf__retry_free);

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
        for (lf__worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers))
            lf__send_worker(self, w, &bye);
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
    zhashx_destroy(&self->unrunnable);
    for (size_t i = 0; i < self->n_rescans; i++) s_rescan_free(&self->rescans[i]);
    free(self->rescans);
    lf_store_destroy(&self->store);
    free(self->idle);
    free(self->pend);
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
    int slice = self->opts.heartbeat_ms / LF__B_BEAT_SLICES;
    zloop_timer(self->loop, (size_t)(slice > 10 ? slice : 10), 0, s_on_heartbeat, self);
    zloop_timer(self->loop, (size_t)self->opts.reap_ms, 0, s_on_reap, self);
    zloop_timer(self->loop, LF__B_POLL_MS, 0, s_on_poll, self);
    if (self->opts.unrunnable_grace_ms > 0) {
        /* A quarter of the grace, so a job fails within 1.25 grace periods. */
        int64_t every = self->opts.unrunnable_grace_ms / 4;
        every = every < 50 ? 50 : every > 5000 ? 5000 : every;
        zloop_timer(self->loop, (size_t)every, 0, s_on_unrunnable, self);
    }
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

