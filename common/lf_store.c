/* lf_store: connection, script loading, the read half (job views, lists,
 * images, workers, stats) and the small stores (uploads, presets, options).
 * The job lifecycle is in lf_store_jobs.c; the scripts in lf_store_lua.h.
 * See lf_store.h for the key layout and the guarantees. */
#include "lf_store.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_error.h"
#include "lf_id.h"
#include "lf_store_impl.h"
#include "lf_store_lua.h"

#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 2000

static const char *const s_sources[LF__S__COUNT] = {
    [LF__S_SUBMIT] = S_LUA_SUBMIT,     [LF__S_PEEK] = S_LUA_PEEK,         [LF__S_PEEK_FOR] = S_LUA_PEEK_FOR,
    [LF__S_CLAIM] = S_LUA_CLAIM,       [LF__S_ADOPT] = S_LUA_ADOPT,
    [LF__S_RENEW] = S_LUA_RENEW,       [LF__S_PROGRESS] = S_LUA_PROGRESS,
    [LF__S_COMPLETE] = S_LUA_COMPLETE, [LF__S_FAIL] = S_LUA_FAIL,
    [LF__S_REQUEUE] = S_LUA_REQUEUE,   [LF__S_CANCEL] = S_LUA_CANCEL,
    [LF__S_REAP] = S_LUA_REAP,         [LF__S_TOUCH] = S_LUA_TOUCH,
    [LF__S_JOBGET] = S_LUA_JOBGET,     [LF__S_ACTIVE] = S_LUA_ACTIVE,
    [LF__S_STATS] = S_LUA_STATS,       [LF__S_WORKERS] = S_LUA_WORKERS,
    [LF__S_FLUSH] = S_LUA_FLUSH,       [LF__S_IDEM] = S_LUA_IDEM,
    [LF__S_FAIL_QUEUED] = S_LUA_FAIL_QUEUED, [LF__S_BLOBS_DUE] = S_LUA_BLOBS_DUE,
    [LF__S_ENHANCED] = S_LUA_ENHANCED,
};

static int64_t s_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lf__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connection ----------------------------------------------------------- */

static void s_drop(lf_store_t *self) {
    if (self->c) redisFree(self->c);
    self->c = NULL;
}

/* A reply of NULL means the connection is unusable: note why and drop it. */
static int s_io_error(lf_store_t *self) {
    snprintf(self->err, sizeof self->err, "redis %s:%d: %s", self->host, self->port,
             self->c && self->c->errstr[0] ? self->c->errstr : "connection lost");
    s_drop(self);
    self->retry_at_ms = 0; /* the first reconnect is immediate */
    return LF_ECONN;
}

static int s_load_scripts(lf_store_t *self) {
    for (int i = 0; i < LF__S__COUNT; i++) {
        redisReply *r = redisCommand(self->c, "SCRIPT LOAD %s", s_sources[i]);
        if (!r) return s_io_error(self);
        /* A Redis that is replaying a large AOF answers every command with
         * LOADING for a while: not usable yet, but coming, so callers treat it
         * like a connection that is not there yet and retry with backoff. */
        if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LOADING", 7)) {
            snprintf(self->err, sizeof self->err,
                     "redis %s:%d is still loading its data set (%s)", self->host, self->port,
                     r->str);
            freeReplyObject(r);
            return LF_ECONN;
        }
        if (r->type != REDIS_REPLY_STRING || r->len != 40) {
            snprintf(self->err, sizeof self->err, "SCRIPT LOAD %d: %s", i,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            return LF_EREDIS;
        }
        memcpy(self->sha[i], r->str, 40);
        self->sha[i][40] = '\0';
        freeReplyObject(r);
    }
    return 0;
}

static int s_connect(lf_store_t *self) {
    s_drop(self);
    struct timeval tv = {self->timeout_ms / 1000, (self->timeout_ms % 1000) * 1000};
    self->c = redisConnectWithTimeout(self->host, self->port, tv);
    if (!self->c || self->c->err) {
        snprintf(self->err, sizeof self->err, "cannot connect to redis %s:%d: %s", self->host,
                 self->port, self->c ? self->c->errstr : "out of memory");
        s_drop(self);
        return LF_ECONN;
    }
    redisSetTimeout(self->c, tv);
    redisEnableKeepAlive(self->c);
    int rc = s_load_scripts(self);
    if (rc) s_drop(self);
    return rc;
}

/* Make sure there is a connection, reconnecting at most once per backoff. */
static int s_ensure(lf_store_t *self) {
    if (self->c && !self->c->err) return 0;
    int64_t now = s_mono_ms();
    if (now < self->retry_at_ms) {
        snprintf(self->err, sizeof self->err, "redis %s:%d unreachable (retry in %lld ms)",
                 self->host, self->port, (long long)(self->retry_at_ms - now));
        return LF_ECONN;
    }
    int rc = s_connect(self);
    if (rc) {
        self->backoff_ms = self->backoff_ms ? self->backoff_ms * 2 : S_BACKOFF_MIN_MS;
        if (self->backoff_ms > S_BACKOFF_MAX_MS) self->backoff_ms = S_BACKOFF_MAX_MS;
        self->retry_at_ms = now + self->backoff_ms;
        return rc;
    }
    self->backoff_ms = 0;
    return 0;
}

static void s_limits_fill(lf_store_limits_t *l) {
    if (!l->lease_ms) l->lease_ms = 5000;
    if (!l->max_attempts) l->max_attempts = 3;
    if (!l->idem_ttl_s) l->idem_ttl_s = 86400;
    if (!l->result_ttl_s) l->result_ttl_s = 3600;
    if (!l->result_max_bytes) l->result_max_bytes = 32u << 20;
    if (!l->history_max) l->history_max = 10000;
    if (!l->history_max_age_s) l->history_max_age_s = 86400;
    if (!l->preview_ttl_s) l->preview_ttl_s = 30;
    if (!l->worker_ttl_ms) l->worker_ttl_ms = 4000;
}

lf_store_t *lf_store_new(const lf_store_opts_t *opts, char *err, size_t errlen) {
    lf_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *host = opts && opts->host && *opts->host ? opts->host : "127.0.0.1";
    const char *prefix = opts && opts->prefix ? opts->prefix : "lf:";
    self->host = strdup(host);
    self->prefix = strdup(prefix);
    self->port = opts && opts->port > 0 ? opts->port : 6379;
    self->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    self->blobs = opts ? opts->blobs : NULL;
    s_limits_fill(&self->lim);
    if (!self->host || !self->prefix) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        lf_store_destroy(&self);
        return NULL;
    }
    if (s_connect(self)) {
        if (err && errlen) snprintf(err, errlen, "%s", self->err);
        lf_store_destroy(&self);
        return NULL;
    }
    return self;
}

void lf_store_destroy(lf_store_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_store_t *self = *self_p;
    s_drop(self);
    free(self->host);
    free(self->prefix);
    free(self);
    *self_p = NULL;
}

int lf_store_reconnect(lf_store_t *self) {
    if (!self) return LF_EINVAL;
    int rc = s_connect(self);
    if (rc == 0) self->backoff_ms = 0, self->retry_at_ms = 0;
    return rc;
}

const char *lf_store_errstr(const lf_store_t *self) { return self ? self->err : "no store"; }

void lf_store_set_limits(lf_store_t *self, const lf_store_limits_t *lim) {
    self->lim = lim ? *lim : (lf_store_limits_t){0};
    s_limits_fill(&self->lim);
}

void lf_store_get_limits(const lf_store_t *self, lf_store_limits_t *out) { *out = self->lim; }

/* ---- arguments and script calls ---------------------------------------- */

int lf__args_init(lf__args_t *a, lf_store_t *s, lf__script_t script, int64_t now_ms,
                  size_t cap) {
    memset(a, 0, sizeof *a);
    a->cap = cap + 10;
    a->v = malloc(a->cap * sizeof *a->v);
    a->len = malloc(a->cap * sizeof *a->len);
    a->num = malloc(a->cap * sizeof *a->num);
    if (!a->v || !a->len || !a->num) {
        lf__args_free(a);
        return LF_ENOMEM;
    }
    lf__args_str(a, "EVALSHA");
    lf__args_str(a, s->sha[script]);
    lf__args_str(a, "0");
    lf__args_str(a, s->prefix);
    lf__args_i64(a, now_ms);
    lf__args_i64(a, s->lim.lease_ms);
    lf__args_i64(a, s->lim.history_max);
    lf__args_i64(a, (int64_t)s->lim.history_max_age_s * 1000);
    lf__args_i64(a, s->lim.result_ttl_s);
    lf__args_i64(a, s->lim.preview_ttl_s);
    return 0;
}

void lf__args_free(lf__args_t *a) {
    free(a->v);
    free(a->len);
    free(a->num);
    memset(a, 0, sizeof *a);
}

void lf__args_bin(lf__args_t *a, const void *p, size_t len) {
    LF_ASSERT(a->n < a->cap);
    a->v[a->n] = p ? p : "";
    a->len[a->n] = p ? len : 0;
    a->n++;
}

void lf__args_str(lf__args_t *a, const char *s) { lf__args_bin(a, s ? s : "", s ? strlen(s) : 0); }

void lf__args_i64(lf__args_t *a, int64_t v) {
    LF_ASSERT(a->n < a->cap);
    int k = snprintf(a->num[a->n], sizeof a->num[a->n], "%lld", (long long)v);
    a->v[a->n] = a->num[a->n];
    a->len[a->n] = (size_t)k;
    a->n++;
}

static bool s_noscript(const redisReply *r) {
    return r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8);
}

/* The script's sha may be stale (Redis restarted and kept no cache): the
 * sha slot of the args points into self->sha, refreshed in place. */
static redisReply *s_eval_once(lf_store_t *self, lf__args_t *a, int *rc) {
    redisReply *r = redisCommandArgv(self->c, (int)a->n, a->v, a->len);
    if (!r) {
        *rc = s_io_error(self);
        return NULL;
    }
    return r;
}

redisReply *lf__eval(lf_store_t *self, lf__args_t *a, int *rc) {
    *rc = s_ensure(self);
    if (*rc) return NULL;
    redisReply *r = s_eval_once(self, a, rc);
    if (s_noscript(r)) {
        freeReplyObject(r);
        *rc = s_load_scripts(self);
        if (*rc) {
            if (!self->c) return NULL;
            return NULL;
        }
        r = s_eval_once(self, a, rc);
    }
    if (r && r->type == REDIS_REPLY_ERROR) {
        snprintf(self->err, sizeof self->err, "redis: %s", r->str);
        freeReplyObject(r);
        *rc = LF_EREDIS;
        return NULL;
    }
    return r;
}

int lf__eval_many(lf_store_t *self, lf__args_t *a, size_t n, redisReply **replies) {
    for (size_t i = 0; i < n; i++) replies[i] = NULL;
    int rc = s_ensure(self);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommandArgv(self->c, (int)a[i].n, a[i].v, a[i].len) != REDIS_OK)
            return s_io_error(self);
    int first = 0;
    size_t got = 0;
    for (; got < n; got++) {
        void *rep = NULL;
        if (redisGetReply(self->c, &rep) != REDIS_OK || !rep) {
            first = s_io_error(self);
            break;
        }
        replies[got] = rep;
    }
    /* Items refused for a stale script cache run again alone; other errors
     * stay errors. */
    for (size_t i = 0; i < got; i++) {
        redisReply *r = replies[i];
        if (s_noscript(r)) {
            freeReplyObject(r);
            replies[i] = lf__eval(self, &a[i], &rc);
            if (!replies[i] && !first) first = rc;
        } else if (r->type == REDIS_REPLY_ERROR) {
            snprintf(self->err, sizeof self->err, "redis: %s", r->str);
            freeReplyObject(r);
            replies[i] = NULL;
            if (!first) first = LF_EREDIS;
        }
    }
    return first;
}

/* ---- reply helpers ------------------------------------------------------ */

long long lf__rint(const redisReply *r) {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) return strtoll(r->str, NULL, 10);
    return 0;
}

char *lf__rdup(const redisReply *r) {
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return NULL;
    char *s = malloc(r->len + 1);
    if (!s) return NULL;
    memcpy(s, r->str, r->len);
    s[r->len] = '\0';
    return s;
}

void lf__rcopy(const redisReply *r, char *buf, size_t size) {
    if (!size) return;
    buf[0] = '\0';
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return;
    size_t n = r->len < size - 1 ? r->len : size - 1;
    memcpy(buf, r->str, n);
    buf[n] = '\0';
}

redisReply *lf__cmd(lf_store_t *self, int argc, const char **argv, const size_t *lens,
                   int *rc) {
    *rc = s_ensure(self);
    if (*rc) return NULL;
    redisReply *r = redisCommandArgv(self->c, argc, argv, lens);
    if (!r) {
        *rc = s_io_error(self);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(self->err, sizeof self->err, "redis: %s", r->str);
        freeReplyObject(r);
        *rc = LF_EREDIS;
        return NULL;
    }
    return r;
}

/* Key "<prefix><a><b>" into buf. */
static const char *s_key(const lf_store_t *self, char *buf, size_t size, const char *a,
                         const char *b) {
    snprintf(buf, size, "%s%s%s", self->prefix, a, b ? b : "");
    return buf;
}

/* ---- job views ------------------------------------------------------------ */

void lf_job_view_clear(lf_job_view_t *v) {
    if (!v) return;
    free(v->id);
    free(v->worker_id);
    lf_params_clear(&v->params);
    free(v->message);
    free(v->seeds);
    free(v->info_json);
    memset(v, 0, sizeof *v);
}

static int64_t s_fint(const redisReply *r) { return (int64_t)lf__rint(r); }

static void s_parse_seeds(lf_job_view_t *v, const redisReply *r) {
    if (!v->n_images || !r || r->type != REDIS_REPLY_STRING) return;
    v->seeds = calloc(v->n_images, sizeof *v->seeds);
    if (!v->seeds) return;
    const char *p = r->str;
    for (uint32_t i = 0; i < v->n_images && *p; i++) {
        char *end;
        v->seeds[i] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
}

/* reply of the jobget script: {position, {field, value}*} */
static int s_view_from(const char *id, const redisReply *r, lf_job_view_t *out) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return LF_ENOTFOUND;
    lf_job_view_t v = {0};
    v.id = strdup(id);
    if (!v.id) return LF_ENOMEM;
    v.position = lf__rint(r->element[0]);
    const redisReply *h = r->element[1];
    const redisReply *seeds = NULL;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = h->element[i]->str;
        const redisReply *val = h->element[i + 1];
        if (!k) continue;
        if (!strcmp(k, "status")) {
            if (val->str) lf_job_status_parse(val->str, &v.status);
        } else if (!strcmp(k, "priority")) {
            if (val->str) lf_priority_parse(val->str, &v.priority);
        } else if (!strcmp(k, "attempts")) v.attempts = (uint32_t)lf__rint(val);
        else if (!strcmp(k, "max_attempts")) v.max_attempts = (uint32_t)lf__rint(val);
        else if (!strcmp(k, "worker")) {
            if (val->len) v.worker_id = lf__rdup(val);
        } else if (!strcmp(k, "params")) {
            if (lf_params_decode((const uint8_t *)val->str, val->len, &v.params) != 0)
                lf_params_clear(&v.params);
        } else if (!strcmp(k, "created_ms")) v.created_ms = s_fint(val);
        else if (!strcmp(k, "started_ms")) v.started_ms = s_fint(val);
        else if (!strcmp(k, "finished_ms")) v.finished_ms = s_fint(val);
        else if (!strcmp(k, "step")) v.step = (uint32_t)lf__rint(val);
        else if (!strcmp(k, "steps")) v.steps = (uint32_t)lf__rint(val);
        else if (!strcmp(k, "code")) v.code = (int32_t)lf__rint(val);
        else if (!strcmp(k, "message")) {
            if (val->len) v.message = lf__rdup(val);
        } else if (!strcmp(k, "n_images")) v.n_images = (uint32_t)lf__rint(val);
        else if (!strcmp(k, "seeds")) seeds = val;
        else if (!strcmp(k, "info")) {
            if (val->len) v.info_json = lf__rdup(val);
        }
    }
    /* A requeued job keeps the last loss as a note, not as a failure. */
    if (v.status == LF_JOB_QUEUED || v.status == LF_JOB_RUNNING) v.code = 0;
    if (v.status != LF_JOB_QUEUED) v.position = -1;
    s_parse_seeds(&v, seeds);
    *out = v;
    return 0;
}

int lf_store_idem_check(lf_store_t *self, const char *key, const char *hash, char *job_id,
                        size_t job_id_len) {
    if (!self || !key || !*key || strlen(key) > 200 || !hash || !*hash) return LF_EINVAL;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_IDEM, lf__now_ms(), 3);
    if (rc) return rc;
    lf__args_str(&a, key);
    lf__args_str(&a, hash);
    lf__args_i64(&a, self->lim.idem_ttl_s);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        freeReplyObject(r);
        return LF_EREDIS;
    }
    bool conflict = lf__rint(r->element[0]) != 0;
    if (job_id && job_id_len) lf__rcopy(r->element[1], job_id, job_id_len);
    freeReplyObject(r);
    return conflict ? LF_EEXIST : 0;
}

int lf_store_job_get(lf_store_t *self, const char *job_id, lf_job_view_t *out) {
    if (!self || !job_id || !out) return LF_EINVAL;
    if (!lf_id_valid(job_id)) return LF_ENOTFOUND;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_JOBGET, lf__now_ms(), 1);
    if (rc) return rc;
    lf__args_str(&a, job_id);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    rc = s_view_from(job_id, r, out);
    freeReplyObject(r);
    return rc;
}

/* Views of the ids in r->element[first..] (one pipeline). */
static int s_views(lf_store_t *self, const redisReply *ids, size_t first, lf_job_view_t **out,
                   size_t *n) {
    size_t m = ids->elements > first ? ids->elements - first : 0;
    *out = NULL;
    *n = 0;
    if (!m) return 0;
    lf__args_t *a = calloc(m, sizeof *a);
    redisReply **reps = calloc(m, sizeof *reps);
    lf_job_view_t *views = calloc(m, sizeof *views);
    int rc = (a && reps && views) ? 0 : LF_ENOMEM;
    int64_t now = lf__now_ms();
    for (size_t i = 0; !rc && i < m; i++) {
        rc = lf__args_init(&a[i], self, LF__S_JOBGET, now, 1);
        if (!rc) lf__args_str(&a[i], ids->element[first + i]->str);
    }
    if (!rc) rc = lf__eval_many(self, a, m, reps);
    size_t k = 0;
    for (size_t i = 0; !rc && i < m; i++)
        if (s_view_from(ids->element[first + i]->str, reps[i], &views[k]) == 0) k++;
    for (size_t i = 0; a && i < m; i++) {
        lf__args_free(&a[i]);
        if (reps && reps[i]) freeReplyObject(reps[i]);
    }
    free(a);
    free(reps);
    if (rc) {
        for (size_t i = 0; i < k; i++) lf_job_view_clear(&views[i]);
        free(views);
        return rc;
    }
    *out = views;
    *n = k;
    return 0;
}

static int s_list(lf_store_t *self, lf__script_t script, size_t offset, size_t limit,
                  lf_job_view_t **out, size_t *n, size_t *total) {
    if (!self || !out || !n) return LF_EINVAL;
    if (limit > 10000) limit = 10000;
    lf__args_t a;
    int rc = lf__args_init(&a, self, script, lf__now_ms(), 2);
    if (rc) return rc;
    lf__args_i64(&a, (int64_t)offset);
    lf__args_i64(&a, (int64_t)limit);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        freeReplyObject(r);
        return LF_EREDIS;
    }
    rc = s_views(self, r, 1, out, n);
    if (!rc && total) *total = (size_t)lf__rint(r->element[0]);
    freeReplyObject(r);
    return rc;
}

int lf_store_jobs_list(lf_store_t *self, size_t offset, size_t limit, lf_job_view_t **out,
                       size_t *n, size_t *total) {
    return s_list(self, LF__S_ACTIVE, offset, limit, out, n, total);
}

int lf_store_history(lf_store_t *self, size_t offset, size_t limit, lf_job_view_t **out,
                     size_t *n, size_t *total) {
    if (!self || !out || !n) return LF_EINVAL;
    if (limit > 10000) limit = 10000;
    char key[256], start[24], stop[24];
    snprintf(start, sizeof start, "%zu", offset);
    snprintf(stop, sizeof stop, "%lld", (long long)offset + (long long)limit - 1);
    s_key(self, key, sizeof key, "history", NULL);
    int rc;
    redisReply *cnt = lf__cmd(self, 2, (const char *[]){"ZCARD", key}, NULL, &rc);
    if (!cnt) return rc;
    size_t tot = (size_t)lf__rint(cnt);
    freeReplyObject(cnt);
    *out = NULL;
    *n = 0;
    if (total) *total = tot;
    if (!limit) return 0;
    redisReply *r = lf__cmd(self, 4, (const char *[]){"ZREVRANGE", key, start, stop}, NULL, &rc);
    if (!r) return rc;
    rc = r->type == REDIS_REPLY_ARRAY ? s_views(self, r, 0, out, n) : LF_EREDIS;
    freeReplyObject(r);
    return rc;
}

/* ---- bytes: images, previews, uploads ------------------------------------ */

static int s_get_bytes(lf_store_t *self, const char *key, uint8_t **data, size_t *len) {
    int rc;
    redisReply *r = lf__cmd(self, 2, (const char *[]){"GET", key}, NULL, &rc);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return LF_ENOTFOUND;
    }
    uint8_t *p = malloc(r->len ? r->len : 1);
    if (!p) {
        freeReplyObject(r);
        return LF_ENOMEM;
    }
    memcpy(p, r->str, r->len);
    *data = p;
    *len = r->len;
    freeReplyObject(r);
    return 0;
}

int lf_store_image_get(lf_store_t *self, const char *job_id, uint32_t index, uint8_t **png,
                       size_t *len) {
    if (!self || !png || !len) return LF_EINVAL;
    if (!lf_id_valid(job_id)) return LF_ENOTFOUND;
    char key[256];
    if (self->blobs) {
        /* The image's name in the external store, while its result TTL runs;
         * a job finished before the store was switched has its bytes here. */
        uint8_t *ref = NULL;
        size_t rl = 0;
        snprintf(key, sizeof key, "%simgref:%s:%u", self->prefix, job_id, index);
        int rc = s_get_bytes(self, key, &ref, &rl);
        if (rc == 0) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)rl, (const char *)ref);
            free(ref);
            rc = lf_blobstore_get(self->blobs, name, png, len, self->err, sizeof self->err);
            return rc;
        }
        if (rc != LF_ENOTFOUND) return rc;
    }
    snprintf(key, sizeof key, "%simg:%s:%u", self->prefix, job_id, index);
    return s_get_bytes(self, key, png, len);
}

int lf_store_blobs_sweep(lf_store_t *self, int64_t now_ms, size_t cap, size_t *deleted, size_t *failed) {
    if (deleted) *deleted = 0;
    if (failed) *failed = 0;
    if (!self) return LF_EINVAL;
    if (!self->blobs || !cap) return 0;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_BLOBS_DUE, now_ms, 1);
    if (rc) return rc;
    lf__args_i64(&a, (int64_t)cap);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    size_t nfail = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        char name[256], err[256];
        lf__rcopy(r->element[i], name, sizeof name);
        rc = lf_blobstore_del(self->blobs, name, err, sizeof err);
        if (rc == 0) {
            if (deleted) (*deleted)++;
            continue;
        }
        /* Try again in a minute; the store's sentence for the caller's log. */
        if (!nfail++) snprintf(self->err, sizeof self->err, "%s", err);
        char when[24];
        snprintf(when, sizeof when, "%lld", (long long)(now_ms + 60000));
        char key[256];
        snprintf(key, sizeof key, "%sblobs", self->prefix);
        int rc2;
        redisReply *z = lf__cmd(self, 4, (const char *[]){"ZADD", key, when, name}, NULL, &rc2);
        if (z) freeReplyObject(z);
    }
    freeReplyObject(r);
    if (failed) *failed = nfail;
    return 0;
}

int lf_store_preview_get(lf_store_t *self, const char *job_id, uint8_t **data, size_t *len) {
    if (!self || !data || !len) return LF_EINVAL;
    if (!lf_id_valid(job_id)) return LF_ENOTFOUND;
    char key[256];
    return s_get_bytes(self, s_key(self, key, sizeof key, "preview:", job_id), data, len);
}

int lf_store_upload_put(lf_store_t *self, const uint8_t *data, size_t len, const char *mime,
                        uint32_t width, uint32_t height, uint32_t ttl_s, char *id_out) {
    if (!self || (!data && len) || !id_out) return LF_EINVAL;
    char id[LF_ID_SIZE];
    int rc = lf_id_new(id);
    if (rc) return rc;
    if (!ttl_s) ttl_s = 3600;
    char key[256], mkey[256], ttl[24], w[24], h[24];
    snprintf(key, sizeof key, "%supload:%s", self->prefix, id);
    snprintf(mkey, sizeof mkey, "%supload:%s:meta", self->prefix, id);
    snprintf(ttl, sizeof ttl, "%u", ttl_s);
    snprintf(w, sizeof w, "%u", width);
    snprintf(h, sizeof h, "%u", height);
    const char *mt = mime ? mime : "application/octet-stream";
    /* Meta first: the bytes appearing last make the upload visible whole. */
    redisReply *r = lf__cmd(self, 8, (const char *[]){"HSET", mkey, "mime", mt, "width", w, "height", h},
                          NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    r = lf__cmd(self, 3, (const char *[]){"EXPIRE", mkey, ttl}, NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    r = lf__cmd(self, 5, (const char *[]){"SET", key, (const char *)data, "EX", ttl},
              (const size_t[]){3, strlen(key), len, 2, strlen(ttl)}, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    memcpy(id_out, id, LF_ID_SIZE);
    return 0;
}

int lf_store_upload_get(lf_store_t *self, const char *id, uint8_t **data, size_t *len) {
    if (!self || !data || !len) return LF_EINVAL;
    if (!lf_id_valid(id)) return LF_ENOTFOUND;
    char key[256];
    return s_get_bytes(self, s_key(self, key, sizeof key, "upload:", id), data, len);
}

/* ---- presets and options ---------------------------------------------------- */

static bool s_name_ok(const char *name) {
    if (!name || !*name || strlen(name) > 128) return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return false;
    return true;
}

int lf_store_preset_put(lf_store_t *self, const char *name, const char *json) {
    if (!self || !s_name_ok(name) || !json) return LF_EINVAL;
    char key[256], set[256];
    s_key(self, key, sizeof key, "preset:", name);
    s_key(self, set, sizeof set, "presets", NULL);
    int rc;
    redisReply *r = lf__cmd(self, 3, (const char *[]){"SET", key, json}, NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    r = lf__cmd(self, 3, (const char *[]){"SADD", set, name}, NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    return 0;
}

int lf_store_preset_get(lf_store_t *self, const char *name, char **json) {
    if (!self || !json) return LF_EINVAL;
    if (!s_name_ok(name)) return LF_ENOTFOUND;
    char key[256];
    uint8_t *d;
    size_t n;
    int rc = s_get_bytes(self, s_key(self, key, sizeof key, "preset:", name), &d, &n);
    if (rc) return rc;
    char *s = realloc(d, n + 1);
    if (!s) {
        free(d);
        return LF_ENOMEM;
    }
    s[n] = '\0';
    *json = s;
    return 0;
}

int lf_store_preset_del(lf_store_t *self, const char *name) {
    if (!self) return LF_EINVAL;
    if (!s_name_ok(name)) return LF_ENOTFOUND;
    char key[256], set[256];
    s_key(self, key, sizeof key, "preset:", name);
    s_key(self, set, sizeof set, "presets", NULL);
    int rc;
    redisReply *r = lf__cmd(self, 2, (const char *[]){"DEL", key}, NULL, &rc);
    if (!r) return rc;
    long long gone = lf__rint(r);
    freeReplyObject(r);
    r = lf__cmd(self, 3, (const char *[]){"SREM", set, name}, NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    return gone ? 0 : LF_ENOTFOUND;
}

static int s_strcmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int lf_store_preset_list(lf_store_t *self, char ***names, size_t *n) {
    if (!self || !names || !n) return LF_EINVAL;
    char set[256];
    s_key(self, set, sizeof set, "presets", NULL);
    int rc;
    redisReply *r = lf__cmd(self, 2, (const char *[]){"SMEMBERS", set}, NULL, &rc);
    if (!r) return rc;
    char **v = calloc(r->elements ? r->elements : 1, sizeof *v);
    if (!v) {
        freeReplyObject(r);
        return LF_ENOMEM;
    }
    for (size_t i = 0; i < r->elements; i++) {
        v[i] = lf__rdup(r->element[i]);
        if (!v[i]) {
            for (size_t j = 0; j < i; j++) free(v[j]);
            free(v);
            freeReplyObject(r);
            return LF_ENOMEM;
        }
    }
    size_t m = r->elements;
    freeReplyObject(r);
    qsort(v, m, sizeof *v, s_strcmp);
    *names = v;
    *n = m;
    return 0;
}

int lf_store_option_get(lf_store_t *self, const char *key, char **value) {
    if (!self || !key || !value) return LF_EINVAL;
    char hk[256];
    s_key(self, hk, sizeof hk, "options", NULL);
    int rc;
    redisReply *r = lf__cmd(self, 3, (const char *[]){"HGET", hk, key}, NULL, &rc);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return LF_ENOTFOUND;
    }
    char *s = lf__rdup(r);
    freeReplyObject(r);
    if (!s) return LF_ENOMEM;
    *value = s;
    return 0;
}

int lf_store_option_set(lf_store_t *self, const char *key, const char *value) {
    if (!self || !key || !*key || !value) return LF_EINVAL;
    char hk[256];
    s_key(self, hk, sizeof hk, "options", NULL);
    int rc;
    redisReply *r = lf__cmd(self, 4, (const char *[]){"HSET", hk, key, value}, NULL, &rc);
    if (!r) return rc;
    freeReplyObject(r);
    return 0;
}

int lf_store_ping(lf_store_t *self, double *rtt_us) {
    if (!self) return LF_EINVAL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc;
    redisReply *r = lf__cmd(self, 1, (const char *[]){"PING"}, NULL, &rc);
    if (!r) return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    freeReplyObject(r);
    if (rtt_us) *rtt_us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
    return 0;
}

/* ---- workers and stats ---------------------------------------------------- */

void lf_worker_view_clear(lf_worker_view_t *w) {
    if (!w) return;
    free(w->id);
    lf_caps_clear(&w->caps);
    free(w->job_id);
    memset(w, 0, sizeof *w);
}

int lf_store_workers_list(lf_store_t *self, lf_worker_view_t **out, size_t *n) {
    if (!self || !out || !n) return LF_EINVAL;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_WORKERS, lf__now_ms(), 1);
    if (rc) return rc;
    lf__args_i64(&a, self->lim.worker_ttl_ms);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    lf_worker_view_t *v = calloc(r->elements ? r->elements : 1, sizeof *v);
    if (!v) {
        freeReplyObject(r);
        return LF_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        lf_worker_view_t w = {.id = lf__rdup(e->element[0])};
        if (!w.id) continue;
        const redisReply *h = e->element[1];
        for (size_t j = 0; j + 1 < h->elements; j += 2) {
            const char *f = h->element[j]->str;
            const redisReply *val = h->element[j + 1];
            if (!f) continue;
            if (!strcmp(f, "caps")) {
                if (val->len && lf_caps_decode((const uint8_t *)val->str, val->len, &w.caps))
                    lf_caps_clear(&w.caps);
            } else if (!strcmp(f, "job")) {
                if (val->len) w.job_id = lf__rdup(val);
            } else if (!strcmp(f, "seen_ms")) w.seen_ms = lf__rint(val);
            else if (!strcmp(f, "jobs_done")) w.jobs_done = (uint64_t)lf__rint(val);
        }
        v[k++] = w;
    }
    freeReplyObject(r);
    *out = v;
    *n = k;
    return 0;
}

int lf_store_stats(lf_store_t *self, lf_store_stats_t *out) {
    if (!self || !out) return LF_EINVAL;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_STATS, lf__now_ms(), 1);
    if (rc) return rc;
    lf__args_i64(&a, self->lim.worker_ttl_ms);
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (!r) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 8) {
        freeReplyObject(r);
        return LF_EREDIS;
    }
    lf_store_stats_t s = {0};
    for (int i = 0; i < LF_PRIO__COUNT; i++) s.queued[i] = lf__rint(r->element[i]);
    s.running = lf__rint(r->element[3]);
    s.live_workers = lf__rint(r->element[4]);
    s.dead_letters = lf__rint(r->element[5]);
    s.by_status[LF_JOB_QUEUED] = s.queued[0] + s.queued[1] + s.queued[2];
    s.by_status[LF_JOB_RUNNING] = s.running;
    const redisReply *h = r->element[6];
    for (size_t j = 0; j + 1 < h->elements; j += 2) {
        lf_job_status_t st;
        if (h->element[j]->str && lf_job_status_parse(h->element[j]->str, &st) == 0 &&
            st >= LF_JOB_DONE)
            s.by_status[st] = lf__rint(h->element[j + 1]);
    }
    s.by_status[LF_JOB_ENHANCING] = lf__rint(r->element[7]);
    freeReplyObject(r);
    *out = s;
    return 0;
}

const char *lf_store_lat_name(lf_store_lat_t which) {
    switch (which) {
    case LF_STORE_LAT_QUEUE_WAIT: return "queue_wait";
    case LF_STORE_LAT_RUN: return "run";
    default: return "?";
    }
}

int lf_store_latency_get(lf_store_t *self, lf_store_lat_t which, lf_store_hist_t *out) {
    static const int bounds_ms[LF_STORE_HIST_BUCKETS - 1] = {
        5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000};
    if (!self || !out || (unsigned)which >= LF_STORE_LAT__COUNT) return LF_EINVAL;
    char key[256];
    s_key(self, key, sizeof key, "stats:hist:", lf_store_lat_name(which));
    int rc;
    redisReply *r = lf__cmd(self, 2, (const char *[]){"HGETALL", key}, NULL, &rc);
    if (!r) return rc;
    lf_store_hist_t h = {0};
    uint64_t per[LF_STORE_HIST_BUCKETS] = {0};
    for (int i = 0; i < LF_STORE_HIST_BUCKETS - 1; i++) h.le_s[i] = bounds_ms[i] / 1000.0;
    h.le_s[LF_STORE_HIST_BUCKETS - 1] = INFINITY;
    for (size_t j = 0; j + 1 < r->elements; j += 2) {
        const char *f = r->element[j]->str;
        uint64_t v = (uint64_t)lf__rint(r->element[j + 1]);
        if (!f) continue;
        if (!strcmp(f, "sum_ms")) h.sum_s = (double)v / 1000.0;
        else if (!strcmp(f, "inf")) per[LF_STORE_HIST_BUCKETS - 1] = v;
        else {
            int ms = atoi(f);
            for (int i = 0; i < LF_STORE_HIST_BUCKETS - 1; i++)
                if (bounds_ms[i] == ms) per[i] = v;
        }
    }
    freeReplyObject(r);
    uint64_t acc = 0;
    for (int i = 0; i < LF_STORE_HIST_BUCKETS; i++) h.cumulative[i] = acc += per[i];
    h.count = acc;
    *out = h;
    return 0;
}

int lf_store_flush(lf_store_t *self) {
    if (!self) return LF_EINVAL;
    lf__args_t a;
    int rc = lf__args_init(&a, self, LF__S_FLUSH, lf__now_ms(), 0);
    if (rc) return rc;
    redisReply *r = lf__eval(self, &a, &rc);
    lf__args_free(&a);
    if (r) freeReplyObject(r);
    return rc;
}

const char *lf__prefix(const lf_store_t *self) { return self->prefix; }
