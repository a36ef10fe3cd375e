/* lf_broker_dispatch: matching queued jobs to idle workers — a cache of
 * queued candidates (peeked from Redis for what the idle workers can run),
 * lf_scheduler's decision, and atomic claims in Redis, pipelined; ASSIGN and
 * "started" go out only for claims Redis confirmed. And the other side of
 * matching: failing queued jobs that no live worker can run any more. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_broker_impl.h"
#include "lf_batch.h"
#include "lf_error.h"
#include "lf_extranet.h"
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
    snprintf(c->refiner, sizeof c->refiner, "%s", m->params.refiner_checkpoint ? m->params.refiner_checkpoint : "");
    snprintf(c->vae, sizeof c->vae, "%s", m->params.vae ? m->params.vae : "");
    uint32_t batch = m->params.batch_size ? m->params.batch_size : 1;
    uint32_t ow, oh; /* the images' size: Hires-Fix's when on */
    lf_params_output_size(&m->params, &ow, &oh);
    c->pixels = (uint64_t)ow * oh * batch;
    c->priority = p;
    c->created_ms = lf__now();
    c->seq = o->seq;
    lf_extranet_lora_set(&m->params, c->lora_set, sizeof c->lora_set);
    if (lf_batch_key(&m->params, c->batch_key)) c->batch_key[0] = '\0';
}

/* A claim's outcome, but for the ASSIGN: "started" and the wait histogram
 * for a job claimed for w, the failures published. */
static void s_claimed(lf_broker_t *self, lf__worker_t *w, const char *job, lf_store_claim_t *c,
                      int64_t born) {
    if (c->code == 0) {
        lf_msg_t x = {.worker_id = w->id};
        lf__publish(self, job, LF_EV_STARTED, LF_JOB_RUNNING, &x);
        self->stats.assigned++;
        static const int64_t bounds[7] = {1, 5, 10, 50, 100, 500, 1000};
        int64_t waited = lf__now() - born;
        int k = 0;
        while (k < 7 && waited >= bounds[k]) k++;
        self->stats.wait_hist[k]++;
    } else if (c->code == LF_EPROTO) {
        lf_store_finish_t f;
        if (lf_store_fail(self->store, job, w->id, c->attempt, LF_EPROTO,
                          "the job's stored parameters are unreadable", lf__now(), &f) == 0)
            lf__publish_finish(self, job, &f, NULL);
    } else if (c->code == LF_ETIMEDOUT || c->code == LF_ENOTFOUND) {
        lf_msg_t x = {.code = c->code,
                      .message = c->code == LF_ETIMEDOUT ? "timed out: waited in the queue past its deadline"
                                                         : "init image upload not found (expired?)"};
        lf__publish(self, job, LF_EV_FAILED, LF_JOB_FAILED, &x);
        self->stats.failed++;
    } else if (c->code == LF_EBUSY) {
        self->stats.claim_races++;
    }
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
        /* One claim per job: the matches' and their batches' (n at most). */
        lf_store_pair_t *pairs = calloc(n, sizeof *pairs);
        lf_store_claim_t *claims = calloc(n, sizeof *claims);
        char (*ids)[40] = calloc(n, sizeof *ids);
        int64_t *born = calloc(n, sizeof *born);
        uint32_t *with = calloc(n, sizeof *with), *grp = calloc(n, sizeof *grp);
        size_t nm = 0, nc = 0;
        if (jobs && ws && wp && mt && pairs && claims && ids && born && with && grp) {
            for (size_t i = 0; i < n; i++)
                jobs[i] = (lf_sched_job_t){.id = cand[i].id, .model = cand[i].model,
                                           .refiner = cand[i].refiner, .vae = cand[i].vae,
                                           .pixels = cand[i].pixels, .priority = cand[i].priority,
                                           .created_ms = cand[i].created_ms, .seq = cand[i].seq,
                                           .lora_set = cand[i].lora_set,
                                           .batch_key = cand[i].batch_key};
            for (size_t i = 0; i < nw; i++) {
                lf__worker_t *w = wp[i] = self->idle[i];
                /* resident[1]: an SDXL refiner kept next to the base. */
                ws[i] = (lf_sched_worker_t){
                    .id = w->id, .models = w->models,
                    .n_models = w->models ? w->caps.n_models : 0,
                    .resident = w->caps.n_resident ? w->caps.resident[0] : NULL,
                    .max_pixels = w->caps.max_pixels,
                    .refiner = w->caps.n_resident > 1 ? w->caps.resident[1] : NULL,
                    .vaes = (const char *const *)w->caps.vaes, .n_vaes = w->caps.n_vaes,
                    .lora_set = w->caps.lora_set,
                    .batch_max = w->caps.batch_max < LF__B_BATCH_MAX ? w->caps.batch_max : LF__B_BATCH_MAX};
            }
            lf_sched_cfg_t cfg = {.starve_ms = self->opts.starve_ms};
            if (lf_scheduler_match(&cfg, jobs, n, ws, nw, lf__now(), mt, &nm) != 0) nm = 0;
            /* Each match's job first, then the jobs of its batch (FIFO). */
            if (nm && lf_scheduler_batch(jobs, n, ws, nw, mt, nm, with) != 0)
                for (size_t i = 0; i < n; i++) with[i] = LF_SCHED_ALONE;
            for (size_t i = 0; i < nm; i++) {
                grp[nc] = (uint32_t)i, memcpy(ids[nc], cand[mt[i].job].id, sizeof ids[nc]);
                born[nc++] = cand[mt[i].job].created_ms;
                for (size_t j = 0; j < n; j++)
                    if (with[j] == i) {
                        grp[nc] = (uint32_t)i, memcpy(ids[nc], cand[j].id, sizeof ids[nc]);
                        born[nc++] = cand[j].created_ms;
                    }
            }
        }
        int rc = 0;
        if (nm) {
            /* The matched candidates leave the cache whatever the claim says. */
            for (size_t i = 0; i < nc; i++) pairs[i] = (lf_store_pair_t){ids[i], wp[mt[grp[i]].worker]->id};
            for (size_t i = 0; i < nc; i++) s_cache_remove(self, ids[i]);
            rc = lf_store_claim(self->store, pairs, nc, self->id, lf__now(), claims);
            if (rc) {
                lf__redis_error(self, "claim", rc);
                self->cache_at = 0;
            }
            for (size_t i = 0; i < nc; i++) s_claimed(self, wp[mt[grp[i]].worker], ids[i], &claims[i], born[i]);
            /* A batch: the first claimed job's ASSIGN says how many follow. */
            for (size_t i = 0, k; i < nc; i = k) {
                size_t got = 0, head = SIZE_MAX;
                for (k = i; k < nc && grp[k] == grp[i]; k++)
                    if (claims[k].code == 0 && got++ == 0) head = k;
                lf__worker_t *w = wp[mt[grp[i]].worker];
                for (size_t q = i; q < k; q++) {
                    lf_store_claim_t *c = &claims[q];
                    if (c->code == 0) {
                        lf_msg_t a = {.type = LF_MSG_ASSIGN, .job_id = ids[q], .attempt = c->attempt,
                                      .params = c->params, .init_image = c->init_image, .mask = c->mask,
                                      .batch = q == head ? (uint32_t)got : 0,
                                      .batch_of = q == head || got < 2 ? NULL : ids[head]};
                        if (q == head) {
                            lf__set_busy(self, w, ids[q], c->attempt, true);
                        } else if (w->n_batch < LF__B_BATCH_MAX - 1) {
                            lf__member_t *b = &w->batch[w->n_batch++];
                            memcpy(b->id, ids[q], sizeof b->id);
                            b->attempt = c->attempt, b->owned = b->open = true;
                        }
                        lf__send_worker(self, w, &a);
                    }
                    lf_store_claim_clear(c);
                }
                if (got > 1) self->stats.batches++, self->stats.batched += got;
            }
        }
        free(jobs), free(ws), free(wp), free(mt), free(pairs), free(claims), free(ids);
        free(born), free(with), free(grp);
        /* Nothing placeable in the window, or Redis trouble: wait for news. */
        if (!nm || rc) return;
    }
}


/* ---- jobs no live worker can run ---------------------------------------------- */

/* Every live worker of the farm (from the Redis registry, so the workers of
 * other brokers count too) against the head of each queue (what a peek
 * returns): a job whose model no one serves, or that is over every such
 * worker's max_pixels, for the grace period in a row, fails with
 * LF_ENOCAPABLE and a message naming the requirement. Several brokers may
 * sweep at once: the store fails a job only while it is still queued, and
 * only the broker that did so publishes the event. */
void lf__sweep_unrunnable(lf_broker_t *self) {
    lf_worker_view_t *wv = NULL;
    size_t nw = 0, n = 0;
    int rc = lf_store_workers_list(self->store, &wv, &nw);
    if (rc) {
        lf__redis_error(self, "unrunnable sweep (workers)", rc);
        return;
    }
    size_t cap = 3 * LF__B_PEEK_MAX;
    lf_store_candidate_t *cand = malloc(cap * sizeof *cand);
    lf_sched_worker_t *ws = calloc(nw ? nw : 1, sizeof *ws);
    const char **names = NULL;
    size_t n_names = 0;
    for (size_t i = 0; i < nw; i++) n_names += wv[i].caps.n_models;
    names = calloc(n_names ? n_names : 1, sizeof *names);
    lf_sched_job_t *jobs = calloc(cap, sizeof *jobs);
    int64_t *since = calloc(cap, sizeof *since);
    lf_sched_unmet_t *due = calloc(cap, sizeof *due);
    zhashx_t *seen = zhashx_new();
    if (!cand || !ws || !names || !jobs || !since || !due || !seen) goto done;
    rc = lf_store_peek(self->store, LF__B_PEEK_MAX, cand, cap, &n);
    if (rc) {
        lf__redis_error(self, "unrunnable sweep (peek)", rc);
        goto done;
    }
    for (size_t i = 0, k = 0; i < nw; i++) {
        const lf_worker_caps_t *c = &wv[i].caps;
        ws[i] = (lf_sched_worker_t){.id = wv[i].id, .models = names + k, .n_models = c->n_models,
                                    .max_pixels = c->max_pixels,
                                    .vaes = (const char *const *)c->vaes, .n_vaes = c->n_vaes};
        for (size_t m = 0; m < c->n_models; m++) names[k++] = c->models[m].name;
    }
    for (size_t i = 0; i < n; i++) {
        jobs[i] = (lf_sched_job_t){.id = cand[i].id, .model = cand[i].model,
                                   .refiner = cand[i].refiner, .vae = cand[i].vae,
                                   .pixels = cand[i].pixels, .priority = cand[i].priority,
                                   .created_ms = cand[i].created_ms, .seq = cand[i].seq,
                                   .lora_set = cand[i].lora_set};
        void *t = zhashx_lookup(self->unrunnable, cand[i].id);
        since[i] = t ? (int64_t)(intptr_t)t : 0;
    }
    int64_t now = lf__mono();
    lf_scheduler_unrunnable(self->opts.unrunnable_grace_ms, jobs, n, ws, nw, now, since, due);
    for (size_t i = 0; i < n; i++) {
        if (!due[i]) {
            if (since[i]) zhashx_insert(seen, cand[i].id, (void *)(intptr_t)since[i]);
            continue;
        }
        char msg[720];
        uint64_t big = 0;
        lf_scheduler_unmet(&jobs[i], ws, nw, &big);
        double waited_s = (double)(now - since[i]) / 1000.0;
        /* What the job needs beside its model: an SDXL refiner, a separate VAE. */
        char parts[400] = "", vae[160] = "";
        if (cand[i].vae[0]) snprintf(vae, sizeof vae, " and VAE '%s'", cand[i].vae);
        if (cand[i].refiner[0]) snprintf(parts, sizeof parts, " with refiner '%s'%s", cand[i].refiner, vae);
        else if (vae[0]) snprintf(parts, sizeof parts, " with%s", vae + 4);
        if (due[i] == LF_SCHED_NO_MODEL)
            snprintf(msg, sizeof msg,
                     "no live worker serves model '%s'%s (none for %.1f s; "
                     "GET /v1/models lists the models served)",
                     cand[i].model, parts, waited_s);
        else
            snprintf(msg, sizeof msg,
                     "width x height x batch = %" PRIu64
                     " pixels is over the max_pixels of every live worker serving model '%s' "
                     "(the largest is %" PRIu64 ", for %.1f s)",
                     cand[i].pixels, cand[i].model, big, waited_s);
        rc = lf_store_fail_queued(self->store, cand[i].id, LF_ENOCAPABLE, msg, lf__now());
        if (rc == 0) {
            lf_msg_t x = {.code = LF_ENOCAPABLE, .message = msg};
            lf__publish(self, cand[i].id, LF_EV_FAILED, LF_JOB_FAILED, &x);
            self->stats.failed++;
            lf_info("job %s: %s", cand[i].id, msg);
            s_cache_remove(self, cand[i].id);
        } else if (rc == LF_ECONN || rc == LF_EREDIS) {
            lf__redis_error(self, "unrunnable sweep (fail)", rc);
            if (since[i]) zhashx_insert(seen, cand[i].id, (void *)(intptr_t)since[i]);
        }
    }
    /* Only the jobs still unrunnable keep a clock; the rest start afresh. */
    zhashx_destroy(&self->unrunnable);
    self->unrunnable = seen;
    seen = NULL;
done:
    for (size_t i = 0; i < nw; i++) lf_worker_view_clear(&wv[i]);
    free(wv), free(cand), free(ws), free(names), free(jobs), free(since), free(due);
    zhashx_destroy(&seen);
}
