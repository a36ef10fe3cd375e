/* lf_compute: the compute thread (a czmq actor). See lf_compute.h.
 *
 * Pipe messages, main -> compute: ["RUN", <lf_msg_t *>, n] (ownership of
 * the heap array of n messages passes with it) and "$TERM". Compute -> main:
 * ["PROGRESS", bytes], ["RESIDENT", name, lora_set], ["DONE", bytes, code,
 * job id, batched]. */
#include "lf_compute.h"

#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_log.h"

struct lf_compute {
    zactor_t *actor;
    lf_runner_t *runner; /* used by the compute thread only, but for its LoRA list (main thread) */
    char *worker_id;
    atomic_bool cancel;                        /* the whole run */
    atomic_bool job_cancel[LF_RUNNER_BATCH_MAX]; /* job j of a batch */
    size_t n_jobs;                             /* of the run (main thread's view) */
    char errs[LF_RUNNER_BATCH_MAX][256];       /* the jobs' reasons (compute thread) */
};

/* What the progress callback needs, on the compute thread's stack. */
typedef struct {
    zsock_t *pipe;
    const char *job_id;
    const char *worker_id;
    const atomic_bool *cancel; /* this job's: no progress once raised */
} s_job_ctx_t;

void lf_compute_event_clear(lf_compute_event_t *ev) {
    if (!ev) return;
    free(ev->msg);
    free(ev->resident);
    free(ev->lora_set);
    free(ev->job_id);
    memset(ev, 0, sizeof *ev);
}

static void s_send_bytes(zsock_t *pipe, const char *kind, const uint8_t *buf, size_t len,
                         int code) {
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, kind);
    zmsg_addmem(m, buf, len);
    if (code != INT32_MIN) zmsg_addstrf(m, "%d", code);
    zmsg_send(&m, pipe);
}

/* DONE for job_id: its RESULT/FAILED bytes (none when it could not be
 * encoded), code, and the runner's batched count. */
static void s_send_done(lf_compute_t *self, zsock_t *pipe, const char *job_id, const uint8_t *buf,
                        size_t len, int code) {
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, "DONE");
    zmsg_addmem(m, buf, len);
    zmsg_addstrf(m, "%d", code);
    zmsg_addstr(m, job_id);
    zmsg_addstrf(m, "%llu", (unsigned long long)lf_runner_batched(self->runner));
    zmsg_send(&m, pipe);
}

static void s_progress(void *ud, uint32_t step, uint32_t steps, const uint8_t *preview,
                       size_t preview_len) {
    const s_job_ctx_t *j = ud;
    if (j->cancel && atomic_load(j->cancel)) return; /* a cancelled job of a batch */
    /* The message borrows everything; it is encoded, never cleared. */
    lf_msg_t m = {.type = LF_MSG_PROGRESS, .job_id = (char *)j->job_id,
                  .worker_id = (char *)j->worker_id, .step = step, .steps = steps};
    if (preview) m.preview = (lf_bytes_t){(uint8_t *)preview, preview_len};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lf_msg_encode(&m, &buf, &len);
    if (rc && preview) { /* a preview the codec refuses: send the step alone */
        m.preview = (lf_bytes_t){0};
        rc = lf_msg_encode(&m, &buf, &len);
    }
    if (rc) {
        lf_warn("job %s: cannot encode progress: %s", j->job_id, lf_strerror(rc));
        return;
    }
    s_send_bytes(j->pipe, "PROGRESS", buf, len, INT32_MIN);
    free(buf);
}

/* Encode a FAILED message; on an encoder failure there is nothing else to
 * send, so the main thread gets an empty DONE and reports it itself. */
static void s_send_failed(lf_compute_t *self, zsock_t *pipe, const char *job_id, int code,
                          const char *message) {
    lf_msg_t f = {.type = LF_MSG_FAILED, .job_id = (char *)job_id,
                  .worker_id = self->worker_id, .code = code, .message = (char *)message};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = lf_msg_encode(&f, &buf, &len);
    if (rc) lf_error("job %s: cannot encode FAILED: %s", job_id, lf_strerror(rc));
    s_send_done(self, pipe, job_id, buf, rc ? 0 : len, code);
    free(buf);
}

/* The runner's info JSON with "run_ms" (the job's time in the runner, as
 * this worker measured it) added; info is freed and replaced. The gateway's
 * overhead is the round trip minus this. Info that is not a JSON object is
 * left as it is. */
static void s_add_run_ms(char **info, double run_ms) {
    json_t *o = *info ? json_loads(*info, 0, NULL) : json_object();
    if (!json_is_object(o)) {
        json_decref(o);
        return;
    }
    json_object_set_new(o, "run_ms", json_real((double)(int64_t)(run_ms * 1000 + 0.5) / 1000));
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!txt) return;
    free(*info);
    *info = txt;
}

/* The resident models as one line: "base" or "base\nrefiner" ("" = none);
 * names never hold control characters (LF_PF_NAME). */
static void s_residents(const lf_runner_t *r, char *buf, size_t len) {
    const char *base = lf_runner_resident(r), *ref = base ? lf_runner_refiner(r) : NULL;
    snprintf(buf, len, "%s%s%s", base ? base : "", ref ? "\n" : "", ref ? ref : "");
}

/* Job j's answer after the run: RESULT with out (consumed), or FAILED. */
static void s_answer(lf_compute_t *self, zsock_t *pipe, const lf_msg_t *assign, int rc,
                     lf_runner_output_t *out, const char *err, int64_t t0_us) {
    const char *job_id = assign->job_id;
    const lf_job_params_t *p = &assign->params;
    char what[192]; /* "job ID: MODEL WxH, N steps, batch B (attempt A)" for the log lines */
    snprintf(what, sizeof what, "job %s: %s %ux%u, %u steps, batch %u (attempt %u)", job_id,
             p->model ? p->model : "?", p->width, p->height, p->steps,
             p->batch_size ? p->batch_size : 1, assign->attempt);
    if (rc) {
        lf_runner_output_clear(out);
        if (rc == LF_ECANCELED)
            lf_info("job %s: cancelled after %lld ms", job_id, (long long)((zclock_usecs() - t0_us) / 1000));
        else
            lf_warn("job %s: failed: %s (%s)", job_id, err, lf_err_name(rc));
        s_send_failed(self, pipe, job_id, rc, rc == LF_ECANCELED ? "cancelled" : err);
        return;
    }
    s_add_run_ms(&out->info_json, (double)(zclock_usecs() - t0_us) / 1000.0);
    lf_msg_t r = {.type = LF_MSG_RESULT, .job_id = (char *)job_id, .worker_id = self->worker_id,
                  .images = out->images, .n_images = out->n_images, .info_json = out->info_json};
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = lf_msg_encode(&r, &buf, &len);
    lf_runner_output_clear(out);
    if (rc) {
        char why[128];
        snprintf(why, sizeof why, "cannot encode the result: %s", lf_strerror(rc));
        lf_warn("job %s: %s", job_id, why);
        s_send_failed(self, pipe, job_id, rc, why);
        return;
    }
    /* One line per finished job (the start is a debug line). */
    lf_info("%s: done in %lld ms (%zu bytes)", what, (long long)((zclock_usecs() - t0_us) / 1000),
            len);
    s_send_done(self, pipe, job_id, buf, len, 0);
    free(buf);
}

/* n ASSIGNs: one job, or a broker's batch through lf_runner_run_batch. */
static void s_run(lf_compute_t *self, zsock_t *pipe, lf_msg_t *assigns, size_t n) {
    char was[300], now[300];
    s_residents(self->runner, was, sizeof was);
    char *was_set = strdup(lf_runner_lora_set(self->runner));
    s_job_ctx_t ctx[LF_RUNNER_BATCH_MAX];
    lf_runner_job_t jobs[LF_RUNNER_BATCH_MAX];
    lf_runner_output_t outs[LF_RUNNER_BATCH_MAX] = {{0}};
    int codes[LF_RUNNER_BATCH_MAX] = {0};
    char(*errs)[256] = self->errs;
    for (size_t j = 0; j < n; j++) {
        const lf_msg_t *a = &assigns[j];
        /* One job: the run's flag (lf_compute_cancel); a batch: each its own. */
        const atomic_bool *cancel = n == 1 ? &self->cancel : &self->job_cancel[j];
        ctx[j] = (s_job_ctx_t){pipe, a->job_id, self->worker_id, n == 1 ? NULL : cancel};
        jobs[j] = (lf_runner_job_t){
            .params = &a->params,
            .init_image = a->init_image.len ? a->init_image.data : NULL,
            .init_image_len = a->init_image.len,
            .mask = a->mask.len ? a->mask.data : NULL,
            .mask_len = a->mask.len,
            .progress = s_progress,
            .progress_ud = &ctx[j],
            .cancel = cancel,
        };
        errs[j][0] = '\0';
        lf_debug("job %s: starting (%zu of a batch of %zu)", a->job_id, j + 1, n);
    }
    int64_t t0_us = zclock_usecs();
    if (n == 1)
        codes[0] = lf_runner_run(self->runner, &jobs[0], &outs[0], errs[0], sizeof errs[0]);
    else if (lf_runner_run_batch(self->runner, jobs, n, &self->cancel, outs, codes, &errs[0][0],
                                 sizeof errs[0]))
        for (size_t j = 0; j < n; j++) codes[j] = LF_EINVAL, snprintf(errs[j], sizeof errs[j], "bad batch");

    s_residents(self->runner, now, sizeof now);
    const char *set = lf_runner_lora_set(self->runner);
    if (strcmp(was, now) || !was_set || strcmp(was_set, set)) {
        zmsg_t *m = zmsg_new();
        zmsg_addstr(m, "RESIDENT");
        zmsg_addstr(m, now);
        zmsg_addstr(m, set);
        zmsg_send(&m, pipe);
    }
    free(was_set);
    /* A job of a batch cancelled on its own ran to the end: its images are dropped. */
    for (size_t j = 0; j < n; j++) {
        if (n > 1 && !codes[j] && atomic_load(&self->job_cancel[j])) codes[j] = LF_ECANCELED;
        s_answer(self, pipe, &assigns[j], codes[j], &outs[j], errs[j], t0_us);
    }
}

static void s_actor(zsock_t *pipe, void *args) {
    lf_compute_t *self = args;
    /* Signals are the main thread's business (SIGTERM = finish, then leave). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    zsock_signal(pipe, 0);
    for (;;) {
        zmsg_t *m = zmsg_recv(pipe);
        if (!m) {
            if (errno == EINTR) continue;
            break;
        }
        char *cmd = zmsg_popstr(m);
        bool term = !cmd || !strcmp(cmd, "$TERM");
        if (cmd && !strcmp(cmd, "RUN")) {
            zframe_t *f = zmsg_pop(m);
            char *count = zmsg_popstr(m);
            size_t n = count ? (size_t)strtoul(count, NULL, 10) : 0;
            free(count);
            lf_msg_t *assigns = NULL;
            if (f && zframe_size(f) == sizeof assigns)
                memcpy(&assigns, zframe_data(f), sizeof assigns);
            zframe_destroy(&f);
            if (assigns) {
                if (n >= 1 && n <= LF_RUNNER_BATCH_MAX) s_run(self, pipe, assigns, n);
                for (size_t j = 0; j < n; j++) lf_msg_clear(&assigns[j]);
                free(assigns);
            }
        }
        free(cmd);
        zmsg_destroy(&m);
        if (term) break;
    }
}

lf_compute_t *lf_compute_new(lf_runner_t **runner_p, const char *worker_id) {
    if (!runner_p || !*runner_p || !worker_id) return NULL;
    lf_compute_t *self = calloc(1, sizeof *self);
    if (!self || !(self->worker_id = strdup(worker_id))) {
        free(self);
        return NULL;
    }
    atomic_init(&self->cancel, false);
    for (size_t j = 0; j < LF_RUNNER_BATCH_MAX; j++) atomic_init(&self->job_cancel[j], false);
    self->runner = *runner_p;
    self->actor = zactor_new(s_actor, self);
    if (!self->actor) {
        free(self->worker_id);
        free(self);
        return NULL;
    }
    *runner_p = NULL;
    return self;
}

void lf_compute_destroy(lf_compute_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_compute_t *self = *self_p;
    atomic_store(&self->cancel, true);
    zactor_destroy(&self->actor); /* sends $TERM, waits for the thread */
    lf_runner_destroy(&self->runner);
    free(self->worker_id);
    free(self);
    *self_p = NULL;
}

void *lf_compute_handle(lf_compute_t *self) { return zsock_resolve(self->actor); }

const lf_runner_t *lf_compute_runner(const lf_compute_t *self) { return self->runner; }

int lf_compute_rescan_loras(lf_compute_t *self) { return lf_runner_rescan_loras(self->runner); }

int lf_compute_start_batch(lf_compute_t *self, lf_msg_t *assigns, size_t n) {
    if (!assigns || !n || n > LF_RUNNER_BATCH_MAX) return LF_EINVAL;
    for (size_t j = 0; j < n; j++)
        if (!assigns[j].job_id) return LF_EINVAL;
    lf_msg_t *moved = malloc(n * sizeof *moved);
    if (!moved) return LF_ENOMEM;
    memcpy(moved, assigns, n * sizeof *moved);
    memset(assigns, 0, n * sizeof *assigns);
    /* Lowered here, on the main thread, so that a CANCEL right after this
     * call cannot be lost to a reset on the compute thread. */
    atomic_store(&self->cancel, false);
    for (size_t j = 0; j < LF_RUNNER_BATCH_MAX; j++) atomic_store(&self->job_cancel[j], false);
    self->n_jobs = n;
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, "RUN");
    zmsg_addmem(m, &moved, sizeof moved);
    zmsg_addstrf(m, "%zu", n);
    if (zmsg_send(&m, self->actor) != 0) {
        zmsg_destroy(&m);
        memcpy(assigns, moved, n * sizeof *moved); /* give them back untouched */
        free(moved);
        return LF_EIO;
    }
    return 0;
}

int lf_compute_start(lf_compute_t *self, lf_msg_t *assign) {
    return lf_compute_start_batch(self, assign, 1);
}

void lf_compute_cancel(lf_compute_t *self) {
    for (size_t j = 0; j < LF_RUNNER_BATCH_MAX; j++) atomic_store(&self->job_cancel[j], true);
    atomic_store(&self->cancel, true);
}

void lf_compute_cancel_job(lf_compute_t *self, size_t j) {
    if (self->n_jobs <= 1) {
        lf_compute_cancel(self);
        return;
    }
    if (j >= self->n_jobs) return;
    atomic_store(&self->job_cancel[j], true);
    bool all = true;
    for (size_t k = 0; k < self->n_jobs; k++) all &= atomic_load(&self->job_cancel[k]);
    if (all) atomic_store(&self->cancel, true); /* nothing left to run for */
}

int lf_compute_recv(lf_compute_t *self, lf_compute_event_t *ev) {
    if (!(zsock_events(self->actor) & ZMQ_POLLIN)) return LF_EAGAIN;
    zmsg_t *m = zmsg_recv(self->actor);
    if (!m) return LF_EAGAIN;
    lf_compute_event_t e = {0};
    char *kind = zmsg_popstr(m);
    int rc = 0;
    if (kind && !strcmp(kind, "RESIDENT")) {
        e.kind = LF_COMPUTE_RESIDENT;
        e.resident = zmsg_popstr(m);
        e.lora_set = zmsg_popstr(m);
    } else if (kind && (!strcmp(kind, "PROGRESS") || !strcmp(kind, "DONE"))) {
        e.kind = kind[0] == 'P' ? LF_COMPUTE_PROGRESS : LF_COMPUTE_DONE;
        zframe_t *f = zmsg_pop(m);
        if (f && zframe_size(f)) {
            e.len = zframe_size(f);
            e.msg = malloc(e.len);
            if (e.msg) memcpy(e.msg, zframe_data(f), e.len);
            else e.len = 0;
        }
        zframe_destroy(&f);
        char *code = zmsg_popstr(m);
        e.code = code ? atoi(code) : 0;
        free(code);
        e.job_id = zmsg_popstr(m); /* DONE */
        char *batched = zmsg_popstr(m);
        e.batched = batched ? strtoull(batched, NULL, 10) : 0;
        free(batched);
    } else {
        rc = LF_EPROTO; /* cannot happen: only s_actor writes to this pipe */
    }
    free(kind);
    zmsg_destroy(&m);
    if (!rc) *ev = e;
    return rc;
}
