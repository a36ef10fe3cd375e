/* lf_store_jobs: the job lifecycle in Redis — submit, peek, claim, adopt,
 * renew, progress, complete, fail, requeue, cancel, reap, and the worker
 * registry. Each transition is one Lua script (lf_store_lua.h); batches go
 * out as one pipeline. See lf_store.h for the guarantees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_extranet.h"
#include "lf_id.h"
#include "lf_store.h"
#include "lf_store_impl.h"

static bool s_reply_ok(const redisReply *r, size_t min_elems) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min_elems;
}

static lf_job_status_t s_status(const redisReply *r) {
    lf_job_status_t st = LF_JOB_FAILED;
    if (r && r->str) lf_job_status_parse(r->str, &st);
    return st;
}

/* ---- submit --------------------------------------------------------------- */

int lf_store_submit(lf_store_t *self, const lf_store_submit_t *jobs, size_t n, int64_t now_ms,
                    lf_store_submitted_t *out) {
    if (!self || (!jobs && n) || (!out && n)) return LF_EINVAL;
    if (!n) return 0;
    lf__args_t *a = calloc(n, sizeof *a);
    redisReply **reps = calloc(n, sizeof *reps);
    uint8_t **blobs = calloc(n, sizeof *blobs);
    size_t *idx = calloc(n, sizeof *idx); /* pipeline slot -> item */
    /* Each item's LoRA set: the arguments borrow it until the pipeline ran. */
    char (*sets)[sizeof ((lf_store_candidate_t *)0)->lora_set] = calloc(n, sizeof *sets);
    char (*keys)[LF_BATCH_KEY_LEN + 1] = calloc(n, sizeof *keys); /* and its batch key */
    if (!a || !reps || !blobs || !idx || !sets || !keys) {
        free(a), free(reps), free(blobs), free(idx), free(sets), free(keys);
        return LF_ENOMEM;
    }
    size_t m = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const lf_store_submit_t *j = &jobs[i];
        lf_store_submitted_t *o = &out[i];
        memset(o, 0, sizeof *o);
        o->position = -1;
        size_t blen = 0;
        const lf_job_params_t *p = j->params;
        if (!p || !p->model || !*p->model || strlen(p->model) > 120 ||
            (unsigned)j->priority >= LF_PRIO__COUNT ||
            (j->idem_key && strlen(j->idem_key) > 200) ||
            (p->init_image && *p->init_image && !lf_id_valid(p->init_image)) ||
            (p->mask && *p->mask && !lf_id_valid(p->mask))) {
            o->code = LF_EINVAL;
            continue;
        }
        if ((o->code = lf_params_encode(p, &blobs[i], &blen)) != 0) continue;
        if ((o->code = lf_id_new(o->id)) != 0) continue;
        if ((rc = lf__args_init(&a[m], self, LF__S_SUBMIT, now_ms, 16)) != 0) break;
        uint32_t ttl = j->ttl_s ? j->ttl_s : self->lim.queue_ttl_s;
        uint32_t batch = p->batch_size ? p->batch_size : 1;
        lf__args_str(&a[m], o->id);
        lf__args_str(&a[m], lf_priority_name(j->priority));
        lf__args_bin(&a[m], blobs[i], blen);
        lf__args_str(&a[m], p->model);
        uint32_t ow, oh; /* the images' size: Hires-Fix's when on */
        lf_params_output_size(p, &ow, &oh);
        lf__args_i64(&a[m], (int64_t)ow * oh * batch);
        lf__args_str(&a[m], j->idem_key);
        lf__args_i64(&a[m], self->lim.idem_ttl_s);
        lf__args_i64(&a[m], ttl ? now_ms + (int64_t)ttl * 1000 : 0);
        lf__args_i64(&a[m], j->max_attempts ? j->max_attempts : self->lim.max_attempts);
        lf__args_str(&a[m], p->init_image);
        lf__args_str(&a[m], p->refiner_checkpoint);
        lf__args_str(&a[m], p->vae);
        /* The LoRA set, for the scheduler's affinity (cut: a key, not data). */
        if ((o->code = lf_extranet_lora_set(p, sets[i], sizeof sets[i])) != 0) {
            lf__args_free(&a[m]);
            continue;
        }
        lf__args_str(&a[m], sets[i]);
        lf__args_str(&a[m], p->mask); /* the inpainting mask's upload, read at claim */
        lf__args_i64(&a[m], j->enhance_ms ? now_ms + j->enhance_ms + LF_STORE_ENHANCE_MARGIN_MS : 0);
        /* The batch key, for the scheduler's batches (lf_scheduler_batch). */
        if ((o->code = lf_batch_key(p, keys[i])) != 0) {
            lf__args_free(&a[m]);
            continue;
        }
        lf__args_str(&a[m], keys[i]);
        idx[m++] = i;
    }
    if (!rc && m) rc = lf__eval_many(self, a, m, reps);
    for (size_t k = 0; k < m; k++) {
        lf_store_submitted_t *o = &out[idx[k]];
        redisReply *r = reps[k];
        if (s_reply_ok(r, 3)) {
            lf__rcopy(r->element[0], o->id, sizeof o->id);
            o->duplicate = lf__rint(r->element[1]) != 0;
            o->position = lf__rint(r->element[2]);
            o->seq = r->elements > 3 ? lf__rint(r->element[3]) : 0;
            o->status = r->elements > 4 ? s_status(r->element[4]) : LF_JOB_QUEUED;
            o->code = 0;
        } else {
            o->code = rc ? rc : LF_EREDIS;
        }
        if (r) freeReplyObject(r);
        lf__args_free(&a[k]);
    }
    /* Items never sent (allocation failure midway) carry the error too. */
    if (rc)
        for (size_t i = 0; i < n; i++)
            if (out[i].code == 0 && !out[i].id[0]) out[i].code = rc;
    for (size_t i = 0; i < n; i++) free(blobs[i]);
    free(a), free(reps), free(blobs), free(idx), free(sets), free(keys);
    return rc;
}

/* ---- peek and claim ------------------------------------------------------- */

static size_t s_candidates(const redisReply *r, size_t first, lf_store_candidate_t *out,
                           size_t cap);

int lf_store_peek(lf_store_t *self, size_t per_prio, lf_store_candidate_t *out, size_t cap,
                  size_t *n) {
    if (!self || !n || (!out && cap)) return LF_EINVAL;
    *n = 0;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_PEEK, lf__now_ms(), 1);
    if (rc) return rc;
    lf__args_i64(&a, (int64_t)per_prio);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    size_t k = s_candidates(r, 0, out, cap);
    freeReplyObject(r);
    *n = k;
    return 0;
}

static size_t s_candidates(const redisReply *r, size_t first, lf_store_candidate_t *out,
                           size_t cap) {
    size_t k = 0;
    for (size_t i = first; r->type == REDIS_REPLY_ARRAY && i + 9 < r->elements && k < cap;
         i += 10) {
        lf_store_candidate_t *c = &out[k++];
        lf__rcopy(r->element[i], c->id, sizeof c->id);
        long long pr = lf__rint(r->element[i + 1]);
        c->priority = pr >= 0 && pr < LF_PRIO__COUNT ? (lf_priority_t)pr : LF_PRIO_LOW;
        lf__rcopy(r->element[i + 2], c->model, sizeof c->model);
        c->pixels = (uint64_t)lf__rint(r->element[i + 3]);
        c->created_ms = lf__rint(r->element[i + 4]);
        c->seq = lf__rint(r->element[i + 5]);
        lf__rcopy(r->element[i + 6], c->refiner, sizeof c->refiner);
        lf__rcopy(r->element[i + 7], c->vae, sizeof c->vae);
        lf__rcopy(r->element[i + 8], c->lora_set, sizeof c->lora_set);
        lf__rcopy(r->element[i + 9], c->batch_key, sizeof c->batch_key);
    }
    return k;
}

int lf_store_peek_for(lf_store_t *self, const char *const *models, size_t n_models,
                      uint64_t max_pixels, size_t per_prio, size_t scan,
                      lf_store_candidate_t *out, size_t cap, size_t *n, bool complete[3]) {
    if (!self || !n || (!out && cap) || (n_models && !models)) return LF_EINVAL;
    *n = 0;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_PEEK_FOR, lf__now_ms(), 3 + n_models);
    if (rc) return rc;
    lf__args_i64(&a, (int64_t)per_prio);
    lf__args_i64(&a, (int64_t)(scan ? scan : per_prio));
    lf__args_i64(&a, (int64_t)max_pixels);
    for (size_t i = 0; i < n_models; i++) lf__args_str(&a, models[i]);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        freeReplyObject(r);
        return LF_EREDIS;
    }
    if (complete)
        for (int i = 0; i < 3; i++) complete[i] = lf__rint(r->element[i]) != 0;
    *n = s_candidates(r, 3, out, cap);
    freeReplyObject(r);
    return 0;
}

void lf_store_claim_clear(lf_store_claim_t *c) {
    if (!c) return;
    lf_params_clear(&c->params);
    free(c->init_image.data);
    free(c->mask.data);
    memset(c, 0, sizeof *c);
}

int lf_store_claim(lf_store_t *self, const lf_store_pair_t *pairs, size_t n,
                   const char *broker_id, int64_t now_ms, lf_store_claim_t *out) {
    if (!self || (n && (!pairs || !out))) return LF_EINVAL;
    if (!n) return 0;
    lf__args_t *a = calloc(n, sizeof *a);
    redisReply **reps = calloc(n, sizeof *reps);
    if (!a || !reps) {
        free(a), free(reps);
        return LF_ENOMEM;
    }
    int rc = 0;
    size_t m = 0;
    for (; m < n && !rc; m++) {
        memset(&out[m], 0, sizeof out[m]);
        if ((rc = lf__args_init(&a[m], self, LF__S_CLAIM, now_ms, 3)) != 0) break;
        lf__args_str(&a[m], pairs[m].job_id);
        lf__args_str(&a[m], pairs[m].worker_id);
        lf__args_str(&a[m], broker_id);
    }
    if (!rc) rc = lf__eval_many(self, a, m, reps);
    for (size_t i = 0; i < n; i++) {
        lf_store_claim_t *c = &out[i];
        if (i >= m) memset(c, 0, sizeof *c);
        redisReply *r = i < m ? reps[i] : NULL;
        if (!s_reply_ok(r, 1)) {
            c->code = rc ? rc : LF_EREDIS;
        } else if ((c->code = (int)lf__rint(r->element[0])) == 0) {
            if (r->elements < 6) {
                c->code = LF_EREDIS;
            } else {
                c->attempt = (uint32_t)lf__rint(r->element[1]);
                const redisReply *p = r->element[2];
                if (p->type != REDIS_REPLY_STRING ||
                    lf_params_decode((const uint8_t *)p->str, p->len, &c->params) != 0) {
                    /* Unreadable params cannot run anywhere; the broker fails it. */
                    lf_params_clear(&c->params);
                    c->code = LF_EPROTO;
                }
                const redisReply *img = r->element[3];
                if (img->type == REDIS_REPLY_STRING && img->len) {
                    c->init_image.data = malloc(img->len);
                    if (c->init_image.data) {
                        memcpy(c->init_image.data, img->str, img->len);
                        c->init_image.len = img->len;
                    }
                }
                const redisReply *mk = r->elements > 6 ? r->element[6] : NULL;
                if (mk && mk->type == REDIS_REPLY_STRING && mk->len) {
                    c->mask.data = malloc(mk->len);
                    if (c->mask.data) {
                        memcpy(c->mask.data, mk->str, mk->len);
                        c->mask.len = mk->len;
                    }
                }
                c->queue_wait_ms = lf__rint(r->element[4]);
                if (r->element[5]->str) lf_priority_parse(r->element[5]->str, &c->priority);
            }
        }
        if (r) freeReplyObject(r);
        if (i < m) lf__args_free(&a[i]);
    }
    free(a), free(reps);
    return rc;
}

int lf_store_adopt(lf_store_t *self, const char *job_id, const char *worker_id,
                   const char *broker_id, int64_t now_ms, uint32_t *attempt, bool *owner_changed) {
    if (!self || !job_id || !worker_id || !broker_id) return LF_EINVAL;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_ADOPT, now_ms, 3);
    if (rc) return rc;
    lf__args_str(&a, job_id);
    lf__args_str(&a, worker_id);
    lf__args_str(&a, broker_id);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    if (!s_reply_ok(r, 1)) rc = LF_EREDIS;
    else if ((rc = (int)lf__rint(r->element[0])) == 0 && r->elements >= 3) {
        if (attempt) *attempt = (uint32_t)lf__rint(r->element[1]);
        if (owner_changed) *owner_changed = lf__rint(r->element[2]) != 0;
    }
    freeReplyObject(r);
    return rc;
}

int lf_store_renew(lf_store_t *self, const lf_store_pair_t *pairs, size_t n,
                   const char *broker_id, int64_t now_ms, bool *lost) {
    if (!self || !broker_id || (n && (!pairs || !lost))) return LF_EINVAL;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_RENEW, now_ms, 1 + 2 * n);
    if (rc) return rc;
    lf__args_str(&a, broker_id);
    for (size_t i = 0; i < n; i++) {
        lost[i] = false;
        lf__args_str(&a, pairs[i].job_id);
        lf__args_str(&a, pairs[i].worker_id);
    }
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        long long k = lf__rint(r->element[i]);
        if (k >= 0 && (size_t)k < n) lost[k] = true;
    }
    freeReplyObject(r);
    return 0;
}

/* ---- worker reports: progress, complete, fail ----------------------------- */

static void s_finish_from(lf_store_finish_t *out, lf_job_status_t st, int32_t code,
                          const char *msg, uint32_t attempts, int64_t run_ms) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    out->status = st;
    out->code = code;
    out->attempts = attempts;
    out->run_ms = run_ms;
    snprintf(out->message, sizeof out->message, "%s", msg ? msg : "");
}

/* One report's script arguments. A RESULT over the size cap becomes a FAIL
 * with LF_ETOOBIG (x->kind, x->code and x->msg tell the parser); x also
 * holds the strings the arguments point into (seeds, the message). */
typedef struct {
    lf_store_report_kind_t kind;
    int32_t code;
    char msg[200];
    char *seeds;
    char (*names)[80];  /* external image store: the objects written (n_names) */
    size_t n_names;
} s_rep_t;

/* External image store: write a result's images as objects named
 * {job}-{nonce}-{i}.png (the nonce keeps a late, fenced-off result from
 * overwriting the objects of the result that won), before the script that
 * records the names. A store that fails makes the job fail with the
 * store's sentence (a clear error in the job, never a lost job); objects
 * already written are deleted again. */
static int s_rep_blobs(lf_store_t *self, const lf_store_report_t *r, s_rep_t *x) {
    char nonce[LF_ID_SIZE];
    if (!lf_id_valid(r->job_id) || lf_id_new(nonce)) return LF_EINVAL;
    x->names = calloc(r->n_images ? r->n_images : 1, sizeof *x->names);
    if (!x->names) return LF_ENOMEM;
    for (size_t i = 0; i < r->n_images; i++) {
        snprintf(x->names[i], sizeof x->names[i], "%s-%s-%zu.png", r->job_id, nonce + LF_ID_LEN - 12, i);
        char err[sizeof x->msg];
        int rc = lf_blobstore_put(self->blobs, x->names[i], r->images[i].png.data, r->images[i].png.len,
                                  "image/png", err, sizeof err);
        if (rc) {
            for (size_t k = 0; k < i; k++) lf_blobstore_del(self->blobs, x->names[k], NULL, 0);
            free(x->names);
            x->names = NULL;
            x->kind = LF_STORE_REPORT_FAIL;
            x->code = rc == LF_ENOMEM ? LF_ENOMEM : rc == LF_EAUTH ? LF_EAUTH : rc == LF_ECONN ? LF_ECONN : LF_EIO;
            snprintf(x->msg, sizeof x->msg, "%s", err);
            snprintf(self->err, sizeof self->err, "%s", err);
            return 1; /* to the FAIL arguments */
        }
        x->n_names = i + 1;
    }
    return 0;
}

static int s_rep_args(lf_store_t *self, const lf_store_report_t *r, int64_t now_ms, lf__args_t *a,
                      s_rep_t *x) {
    memset(x, 0, sizeof *x);
    x->kind = r->kind;
    if (!r->job_id || !r->worker_id) return LF_EINVAL;
    int rc;
    switch (r->kind) {
    case LF_STORE_REPORT_PROGRESS:
        if ((rc = lf__args_init(a, self, LF__S_PROGRESS, now_ms, 5)) != 0) return rc;
        lf__args_str(a, r->job_id);
        lf__args_str(a, r->worker_id);
        lf__args_i64(a, r->step);
        lf__args_i64(a, r->steps);
        lf__args_bin(a, r->preview, r->preview ? r->preview_len : 0);
        return 0;
    case LF_STORE_REPORT_COMPLETE: {
        if ((r->n_images && !r->images) || r->n_images > 1024) return LF_EINVAL;
        uint64_t total = 0;
        for (size_t i = 0; i < r->n_images; i++) total += r->images[i].png.len;
        if (total > self->lim.result_max_bytes) {
            x->kind = LF_STORE_REPORT_FAIL;
            x->code = LF_ETOOBIG;
            snprintf(x->msg, sizeof x->msg,
                     "result too large: %llu bytes of images, the limit is %llu",
                     (unsigned long long)total, (unsigned long long)self->lim.result_max_bytes);
            break; /* to the FAIL arguments below */
        }
        if (self->blobs) {
            if ((rc = s_rep_blobs(self, r, x)) < 0) return rc;
            if (rc) break; /* the store failed: to the FAIL arguments below */
        }
        x->seeds = malloc(r->n_images * 24 + 1);
        if (!x->seeds) return LF_ENOMEM;
        size_t off = 0;
        x->seeds[0] = '\0';
        for (size_t i = 0; i < r->n_images; i++)
            off += (size_t)snprintf(x->seeds + off, 24 + 1, "%s%lld", i ? "," : "",
                                    (long long)r->images[i].seed);
        if ((rc = lf__args_init(a, self, LF__S_COMPLETE, now_ms, 7 + r->n_images)) != 0) {
            free(x->seeds);
            x->seeds = NULL;
            return rc;
        }
        lf__args_str(a, r->job_id);
        lf__args_str(a, r->worker_id);
        lf__args_i64(a, r->attempt);
        lf__args_i64(a, (int64_t)r->n_images);
        lf__args_str(a, x->seeds);
        lf__args_str(a, r->info_json);
        lf__args_str(a, x->names ? "1" : "0");
        for (size_t i = 0; i < r->n_images; i++) {
            if (x->names) lf__args_str(a, x->names[i]);
            else lf__args_bin(a, r->images[i].png.data, r->images[i].png.len);
        }
        return 0;
    }
    case LF_STORE_REPORT_FAIL:
        x->code = r->code ? r->code : LF_EINTERNAL; /* a failure always carries a code */
        snprintf(x->msg, sizeof x->msg, "%s",
                 r->message && *r->message ? r->message : lf_strerror(x->code));
        break;
    default: return LF_EINVAL;
    }
    if ((rc = lf__args_init(a, self, LF__S_FAIL, now_ms, 5)) != 0) return rc;
    lf__args_str(a, r->job_id);
    lf__args_str(a, r->worker_id);
    lf__args_i64(a, r->attempt);
    lf__args_i64(a, x->code);
    lf__args_str(a, x->msg);
    return 0;
}

/* The script's answer: 0 or the fencing/validation code. */
static int s_rep_parse(const redisReply *r, const s_rep_t *x, lf_store_finish_t *out) {
    if (x->kind == LF_STORE_REPORT_PROGRESS) return r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : LF_EREDIS;
    if (!s_reply_ok(r, 1)) return LF_EREDIS;
    int rc = (int)lf__rint(r->element[0]);
    if (rc || r->elements < 3) return rc ? rc : LF_EREDIS;
    if (x->kind == LF_STORE_REPORT_COMPLETE)
        s_finish_from(out, LF_JOB_DONE, 0, NULL, (uint32_t)lf__rint(r->element[2]),
                      lf__rint(r->element[1]));
    else
        s_finish_from(out, s_status(r->element[1]), x->code, x->msg,
                      (uint32_t)lf__rint(r->element[2]), 0);
    return 0;
}

int lf_store_report(lf_store_t *self, const lf_store_report_t *reports, size_t n,
                    int64_t now_ms, int *codes, lf_store_finish_t *fin) {
    if (!self || (n && (!reports || !codes))) return LF_EINVAL;
    if (!n) return 0;
    lf__args_t *a = calloc(n, sizeof *a);
    s_rep_t *x = calloc(n, sizeof *x);
    redisReply **reps = calloc(n, sizeof *reps);
    size_t *idx = calloc(n, sizeof *idx);
    if (!a || !x || !reps || !idx) {
        free(a), free(x), free(reps), free(idx);
        return LF_ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        codes[i] = s_rep_args(self, &reports[i], now_ms, &a[m], &x[m]);
        if (codes[i] == 0) {
            idx[m++] = i;
        } else {
            for (size_t j = 0; j < x[m].n_names; j++) lf_blobstore_del(self->blobs, x[m].names[j], NULL, 0);
            free(x[m].names);
            free(x[m].seeds);
        }
    }
    int rc = m ? lf__eval_many(self, a, m, reps) : 0;
    for (size_t k = 0; k < m; k++) {
        size_t i = idx[k];
        codes[i] = reps[k] ? s_rep_parse(reps[k], &x[k], fin ? &fin[i] : NULL) : (rc ? rc : LF_EREDIS);
        /* Objects of a result Redis refused (fenced off): nobody will name
         * them. Without an answer we cannot know, and leave them. */
        if (reps[k] && codes[i] && x[k].names)
            for (size_t j = 0; j < x[k].n_names; j++) lf_blobstore_del(self->blobs, x[k].names[j], NULL, 0);
        if (reps[k]) freeReplyObject(reps[k]);
        free(x[k].names);
        lf__args_free(&a[k]);
        free(x[k].seeds);
    }
    free(a), free(x), free(reps), free(idx);
    return rc;
}

static int s_report1(lf_store_t *self, const lf_store_report_t *r, int64_t now_ms,
                     lf_store_finish_t *out) {
    int code = 0;
    lf_store_finish_t f;
    int rc = lf_store_report(self, r, 1, now_ms, &code, &f);
    if (rc) return rc;
    if (code == 0 && out) *out = f;
    return code;
}

int lf_store_progress(lf_store_t *self, const char *job_id, const char *worker_id, uint32_t step,
                      uint32_t steps, const uint8_t *preview, size_t preview_len, int64_t now_ms) {
    lf_store_report_t r = {.kind = LF_STORE_REPORT_PROGRESS, .job_id = job_id,
                           .worker_id = worker_id, .step = step, .steps = steps,
                           .preview = preview, .preview_len = preview_len};
    return self ? s_report1(self, &r, now_ms, NULL) : LF_EINVAL;
}

int lf_store_complete(lf_store_t *self, const char *job_id, const char *worker_id,
                      uint32_t attempt, const lf_image_out_t *images, size_t n_images,
                      const char *info_json, int64_t now_ms, lf_store_finish_t *out) {
    lf_store_report_t r = {.kind = LF_STORE_REPORT_COMPLETE, .job_id = job_id,
                           .worker_id = worker_id, .attempt = attempt, .images = images,
                           .n_images = n_images, .info_json = info_json};
    return self ? s_report1(self, &r, now_ms, out) : LF_EINVAL;
}

int lf_store_fail(lf_store_t *self, const char *job_id, const char *worker_id, uint32_t attempt,
                  int32_t code, const char *message, int64_t now_ms, lf_store_finish_t *out) {
    lf_store_report_t r = {.kind = LF_STORE_REPORT_FAIL, .job_id = job_id,
                           .worker_id = worker_id, .attempt = attempt, .code = code,
                           .message = message};
    return self ? s_report1(self, &r, now_ms, out) : LF_EINVAL;
}

int lf_store_requeue(lf_store_t *self, const char *job_id, const char *worker_id,
                     const char *broker_id, bool refund, const char *reason, int64_t now_ms,
                     lf_store_finish_t *out) {
    if (!self || !job_id || !worker_id) return LF_EINVAL;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_REQUEUE, now_ms, 5);
    if (rc) return rc;
    lf__args_str(&a, job_id);
    lf__args_str(&a, worker_id);
    lf__args_str(&a, refund ? "1" : "0");
    lf__args_str(&a, reason && *reason ? reason : "given back by its worker");
    lf__args_str(&a, broker_id ? broker_id : "");
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    if (!s_reply_ok(r, 1)) rc = LF_EREDIS;
    else if ((rc = (int)lf__rint(r->element[0])) == 0 && r->elements >= 4) {
        lf_job_status_t st = s_status(r->element[1]);
        char msg[200];
        lf__rcopy(r->element[3], msg, sizeof msg);
        s_finish_from(out, st,
                      st == LF_JOB_FAILED ? LF_ELIMIT : st == LF_JOB_CANCELLED ? LF_ECANCELED : 0,
                      msg, (uint32_t)lf__rint(r->element[2]), 0);
    }
    freeReplyObject(r);
    return rc;
}

int lf_store_cancel(lf_store_t *self, const char *job_id, int64_t now_ms, lf_job_status_t *was,
                    char *worker_id, size_t worker_id_len) {
    if (!self || !job_id) return LF_EINVAL;
    if (!lf_id_valid(job_id)) return LF_ENOTFOUND;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_CANCEL, now_ms, 1);
    if (rc) return rc;
    lf__args_str(&a, job_id);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    if (!s_reply_ok(r, 2)) rc = LF_EREDIS;
    else {
        rc = (int)lf__rint(r->element[0]);
        if (was) *was = s_status(r->element[1]);
        if (rc == 0 && worker_id && worker_id_len && r->elements >= 3)
            lf__rcopy(r->element[2], worker_id, worker_id_len);
    }
    freeReplyObject(r);
    return rc;
}

int lf_store_fail_queued(lf_store_t *self, const char *job_id, int32_t code, const char *message,
                         int64_t now_ms) {
    if (!self || !job_id || !message || code >= 0) return LF_EINVAL;
    if (!lf_id_valid(job_id)) return LF_ENOTFOUND;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_FAIL_QUEUED, now_ms, 3);
    if (rc) return rc;
    lf__args_str(&a, job_id);
    lf__args_i64(&a, code);
    lf__args_str(&a, message);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    rc = s_reply_ok(r, 1) ? (int)lf__rint(r->element[0]) : LF_EREDIS;
    freeReplyObject(r);
    return rc;
}

int lf_store_reap(lf_store_t *self, int64_t now_ms, lf_store_reaped_t *out, size_t cap,
                  size_t *n) {
    if (!self || !n || (cap && !out)) return LF_EINVAL;
    *n = 0;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_REAP, now_ms, 1);
    if (rc) return rc;
    lf__args_i64(&a, (int64_t)(cap / 2 ? cap / 2 : 1));
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    size_t k = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 3 < r->elements && k < cap; i += 4) {
        lf_store_reaped_t *e = &out[k++];
        memset(e, 0, sizeof *e);
        lf__rcopy(r->element[i], e->id, sizeof e->id);
        e->status = s_status(r->element[i + 1]);
        e->code = (int32_t)lf__rint(r->element[i + 2]);
        lf__rcopy(r->element[i + 3], e->worker_id, sizeof e->worker_id);
    }
    freeReplyObject(r);
    *n = k;
    return 0;
}

/* ---- prompt enhancement ------------------------------------------------------ */

/* The stored params of an enhancing job with the prompt settled: the LLM's
 * prompt (original kept) or the reason it was not used. */
static int s_enhance_params(const redisReply *blob, const char *prompt, const char *error, uint8_t **out,
                            size_t *len) {
    if (!blob || blob->type != REDIS_REPLY_STRING) return LF_EREDIS;
    lf_job_params_t p = {0};
    int rc = lf_params_decode((const uint8_t *)blob->str, blob->len, &p);
    if (rc) return rc;
    free(p.prompt_original), p.prompt_original = NULL;
    free(p.enhance_error), p.enhance_error = NULL;
    if (prompt) {
        p.prompt_original = p.prompt ? p.prompt : strdup("");
        p.prompt = strdup(prompt);
        if (!p.prompt || !p.prompt_original) rc = LF_ENOMEM;
    } else if (!(p.enhance_error = strdup(error))) {
        rc = LF_ENOMEM;
    } else {
        lf_utf8_truncate(p.enhance_error, 1024);
    }
    if (!rc) rc = lf_params_encode(&p, out, len);
    lf_params_clear(&p);
    return rc;
}

int lf_store_enhanced(lf_store_t *self, const char *job_id, const char *prompt, const char *error,
                      int64_t now_ms, lf_store_submitted_t *out) {
    if (!self || !job_id || (prompt ? !*prompt : !error)) return LF_EINVAL;
    if (!lf_id_valid(job_id)) return LF_ENOTFOUND;
    char key[256];
    snprintf(key, sizeof key, "%sjob:%s", lf__prefix(self), job_id);
    int rc;
    redisReply *r = lf__cmd(self, 4, (const char *[]){"HMGET", key, "status", "params"}, NULL, &rc);
    if (!r) return rc;
    uint8_t *blob = NULL;
    size_t blen = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) rc = LF_EREDIS;
    else if (r->element[0]->type != REDIS_REPLY_STRING) rc = LF_ENOTFOUND;
    else if (strcmp(r->element[0]->str, "enhancing") != 0) rc = LF_ESTATE;
    else rc = s_enhance_params(r->element[1], prompt, error, &blob, &blen);
    freeReplyObject(r);
    if (rc == LF_ENOTFOUND || rc == LF_ESTATE) {
        /* Not enhancing (ever again): out of the reaper's set. */
        char set[256];
        snprintf(set, sizeof set, "%senhancing", lf__prefix(self));
        redisReply *z = lf__cmd(self, 3, (const char *[]){"ZREM", set, job_id}, NULL, &(int){0});
        if (z) freeReplyObject(z);
    }
    if (rc) return rc;
    /* The params do not change after submit, so this read-modify-write is
     * safe: the script moves the job only while it is still enhancing. */
    lf__args_t a;
    if ((rc = lf__args_init(&a, self, LF__S_ENHANCED, now_ms, 2)) != 0) {
        free(blob);
        return rc;
    }
    lf__args_str(&a, job_id);
    lf__args_bin(&a, blob, blen);
    r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    free(blob);
    if (!r) return rc;
    if (!s_reply_ok(r, 2)) rc = LF_EREDIS;
    else if ((rc = (int)lf__rint(r->element[0])) == 0 && out) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", job_id);
        out->position = lf__rint(r->element[1]);
        out->seq = r->elements > 2 ? lf__rint(r->element[2]) : 0;
        out->status = LF_JOB_QUEUED;
    }
    freeReplyObject(r);
    return rc;
}

int lf_store_enhance_reap(lf_store_t *self, int64_t now_ms, const char *error,
                          lf_store_submitted_t *out, size_t cap, size_t *n) {
    if (!self || !error || !n || (cap && !out)) return LF_EINVAL;
    *n = 0;
    if (!cap) return 0;
    char set[256], now[24], lim[24];
    snprintf(set, sizeof set, "%senhancing", lf__prefix(self));
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lim, sizeof lim, "%zu", cap);
    int rc;
    redisReply *r = lf__cmd(self, 7, (const char *[]){"ZRANGEBYSCORE", set, "-inf", now, "LIMIT", "0", lim},
                            NULL, &rc);
    if (!r) return rc;
    rc = r->type == REDIS_REPLY_ARRAY ? 0 : LF_EREDIS;
    for (size_t i = 0; !rc && i < r->elements && *n < cap; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        int e = lf_store_enhanced(self, r->element[i]->str, NULL, error, now_ms, &out[*n]);
        if (e == 0) (*n)++;
        else if (e == LF_ECONN || e == LF_EREDIS || e == LF_ENOMEM) rc = e;
        /* LF_ESTATE / LF_ENOTFOUND: settled meanwhile (another broker). */
    }
    freeReplyObject(r);
    return rc;
}

int lf_store_dead_list(lf_store_t *self, size_t limit, char ***ids, size_t *n) {
    if (!self || !ids || !n) return LF_EINVAL;
    char key[256], stop[24];
    snprintf(key, sizeof key, "%sdead", lf__prefix(self));
    snprintf(stop, sizeof stop, "%lld", (long long)limit - 1);
    *ids = NULL;
    *n = 0;
    if (!limit) return 0;
    int rc;
    redisReply *r = lf__cmd(self, 4, (const char *[]){"LRANGE", key, "0", stop}, NULL, &rc);
    if (!r) return rc;
    char **v = calloc(r->elements ? r->elements : 1, sizeof *v);
    if (!v) {
        freeReplyObject(r);
        return LF_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++)
        if ((v[k] = lf__rdup(r->element[i])) != NULL) k++;
    freeReplyObject(r);
    *ids = v;
    *n = k;
    return 0;
}

/* ---- worker registry ---------------------------------------------------------- */

int lf_store_workers_touch(lf_store_t *self, const lf_store_worker_touch_t *w, size_t n,
                           const char *broker_id, int64_t now_ms) {
    if (!self || !broker_id || (n && !w)) return LF_EINVAL;
    /* Chunks keep one script run short even with thousands of workers. */
    for (size_t base = 0; base < n || (base == 0 && n == 0); base += 256) {
        size_t m = n - base < 256 ? n - base : 256;
        lf__args_t a;
        int rc = lf__args_init(&a, self, LF__S_TOUCH, now_ms, 2 + 5 * m);
        if (rc) return rc;
        lf__args_str(&a, broker_id);
        lf__args_i64(&a, self->lim.worker_ttl_ms);
        for (size_t i = base; i < base + m; i++) {
            lf__args_str(&a, w[i].id);
            lf__args_str(&a, w[i].job_id);
            lf__args_i64(&a, w[i].seen_ms);
            lf__args_i64(&a, (int64_t)w[i].jobs_done);
            lf__args_bin(&a, w[i].caps, w[i].caps ? w[i].caps_len : 0);
        }
        redisReply *r = lf__eval(self, &a, &rc);
        lf__args_free(&a);
        if (!r) return rc;
        freeReplyObject(r);
        if (n == 0) break;
    }
    return 0;
}

int lf_store_worker_remove(lf_store_t *self, const char *worker_id) {
    if (!self || !worker_id) return LF_EINVAL;
    char key[512], set[256];
    snprintf(key, sizeof key, "%sworker:%s", lf__prefix(self), worker_id);
    snprintf(set, sizeof set, "%sworkers", lf__prefix(self));
    int rc;
    redisReply *r = lf__cmd(self, 2, (const char *[]){"DEL", key}, NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    r = lf__cmd(self, 3, (const char *[]){"ZREM", set, worker_id}, NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    return 0;
}
