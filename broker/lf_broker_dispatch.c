/* lf_broker_dispatch: matching queued jobs to idle workers — a cache of
 * queued candidates (peeked from Redis for what the idle workers can run),
 * lf_scheduler's decision, and atomic claims in Redis, pipelined; ASSIGN and
 * "started" go out only for claims Redis confirmed. */
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

/* ---- dispatch ------------------------------------------------------------------- */

/* Refill the candidate cache from Redis: only jobs some idle worker can
 * run (so a run of jobs for a model nobody has cannot hide the rest). */
static int s_cache_refresh(lf_broker_t *self) {
    size_t per = self->n_idle * 4;
    if (per < 16) per = 16;
    if (per > LF__B_PEEK_MAX) per = LF__B_PEEK_MAX;
    zhashx_t *set = zhashx_new();
    uint64_t maxpx = 0;
    bool unlimited = false;
    for (size_t i = 0; set && i < self->n_idle; i++) {
        lf__worker_t *w = self->idle[i];
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
                                              LF__B_SCAN_MAX, self->cache, 3 * LF__B_PEEK_MAX, &n,
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
    self->cache_at = lf__mono();
    return 0;
}

static bool s_cache_fresh(const lf_broker_t *self) {
    return self->cache_at && lf__mono() - self->cache_at < LF__B_CACHE_MS;
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
void lf__cache_add(lf_broker_t *self, const lf_store_submitted_t *o, const lf_msg_t *m) {
    lf_priority_t p = m->priority;
    if (!s_cache_fresh(self) || (unsigned)p >= LF_PRIO__COUNT || !self->complete[p]) return;
    if (self->n_cache == 3 * LF__B_PEEK_MAX || strlen(m->params.model) >= sizeof self->cache[0].model) {
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
    c->created_ms = lf__now();
    c->seq = o->seq;
}

void lf__dispatch(lf_broker_t *self) {
    self->dispatch_pending = false;
    for (int round = 0; round < LF__B_DISPATCH_ROUNDS && self->n_idle; round++) {
        bool all = self->complete[0] && self->complete[1] && self->complete[2];
        if (!s_cache_fresh(self) || (!self->n_cache && !all)) {
            int rc = s_cache_refresh(self);
            if (rc) {
                lf__redis_error(self, "peek", rc);
                return;
            }
        }
        size_t n = self->n_cache;
        if (!n) return;
        lf_store_candidate_t *cand = self->cache;
        size_t nw = self->n_idle;
        lf_sched_job_t *jobs = calloc(n, sizeof *jobs);
        lf_sched_worker_t *ws = calloc(nw, sizeof *ws);
        lf__worker_t **wp = calloc(nw, sizeof *wp);
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
                lf__worker_t *w = wp[i] = self->idle[i];
                ws[i] = (lf_sched_worker_t){w->id, w->models, w->models ? w->caps.n_models : 0,
                                            w->caps.n_resident ? w->caps.resident[0] : NULL,
                                            w->caps.max_pixels};
            }
            lf_sched_cfg_t cfg = {.starve_ms = self->opts.starve_ms};
            if (lf_scheduler_match(&cfg, jobs, n, ws, nw, lf__now(), mt, &nm) != 0) nm = 0;
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
            rc = lf_store_claim(self->store, pairs, nm, self->id, lf__now(), claims);
            if (rc) {
                lf__redis_error(self, "claim", rc);
                self->cache_at = 0;
            }
            for (size_t i = 0; i < nm; i++) {
                lf__worker_t *w = wp[mt[i].worker];
                lf_store_claim_t *c = &claims[i];
                const char *job = ids[i];
                if (c->code == 0) {
                    lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = (char *)job,
                                  .attempt = c->attempt, .params = c->params,
                                  .init_image = c->init_image};
                    lf__set_busy(self, w, job, c->attempt, true);
                    lf__send_worker(self, w, &a);
                    lf_msg_t x = {.worker_id = w->id};
                    lf__publish(self, job, LF_EV_STARTED, LF_JOB_RUNNING, &x);
                    self->stats.assigned++;
                    static const int64_t bounds[7] = {1, 5, 10, 50, 100, 500, 1000};
                    int64_t waited = lf__now() - born[i];
                    int k = 0;
                    while (k < 7 && waited >= bounds[k]) k++;
                    self->stats.wait_hist[k]++;
                } else if (c->code == LF_EPROTO) {
                    lf_store_finish_t f;
                    if (lf_store_fail(self->store, job, w->id, c->attempt, LF_EPROTO,
                                      "the job's stored parameters are unreadable", lf__now(),
                                      &f) == 0)
                        lf__publish_finish(self, job, &f, NULL);
                } else if (c->code == LF_ETIMEDOUT || c->code == LF_ENOTFOUND) {
                    lf_msg_t x = {.code = c->code,
                                  .message = c->code == LF_ETIMEDOUT
                                                 ? "timed out: waited in the queue past its deadline"
                                                 : "init image upload not found (expired?)"};
                    lf__publish(self, job, LF_EV_FAILED, LF_JOB_FAILED, &x);
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

