/* lf_wait: blocking an HTTP request until its job ends, for the dialects
 * that answer a generation only with its result (A1111 txt2img/img2img,
 * OpenAI images), without holding a thread. After the SUBMIT's ACCEPTED the
 * request subscribes a waiter to the job's events through the hub and is
 * suspended until done/failed/cancelled or the sync timeout; then the job
 * view is read from Redis and the dialect's lf__wait_ops_t answers. It also
 * keeps the list of A1111 jobs in flight (/sdapi/v1/progress, interrupt).
 *
 * Threading: lf__wait_job runs on HTTP threads, the waiter on the hub
 * thread; they share st->waited and st->abandoned (atomics), and the list
 * of jobs in flight is under gw->a_mu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_b64.h"
#include "lf_error.h"
#include "lf_gateway_impl.h"

/* ---- the A1111 jobs in flight ---- */

static void s_active_add(lf_gateway_t *gw, const char *id) {
    pthread_mutex_lock(&gw->a_mu);
    if (gw->n_a_jobs < LF__A1111_MAX) snprintf(gw->a_jobs[gw->n_a_jobs++], 64, "%s", id);
    pthread_mutex_unlock(&gw->a_mu);
}

static void s_active_del(lf_gateway_t *gw, const char *id) {
    pthread_mutex_lock(&gw->a_mu);
    for (int i = 0; i < gw->n_a_jobs; i++)
        if (!strcmp(gw->a_jobs[i], id)) {
            memmove(gw->a_jobs[i], gw->a_jobs[i + 1], (size_t)(gw->n_a_jobs - i - 1) * 64);
            gw->n_a_jobs--;
            break;
        }
    pthread_mutex_unlock(&gw->a_mu);
}

int lf__wait_active(lf_gateway_t *gw, char (*ids)[64], int max) {
    pthread_mutex_lock(&gw->a_mu);
    int n = gw->n_a_jobs;
    memcpy(ids, gw->a_jobs, (size_t)(n < max ? n : max) * 64);
    pthread_mutex_unlock(&gw->a_mu);
    return n;
}

/* ---- the waiter (hub thread) ---- */

static int s_on_event(void *hub_ud, void *arg, const lf_msg_t *ev, int64_t now) {
    (void)hub_ud;
    lf_req_t *req = arg;
    lf__rstate_t *st = lf_req_state(req);
    if (atomic_load(&st->abandoned)) return LF_HUB_DROP;
    if (ev) {
        if (ev->event == LF_EV_DONE || ev->event == LF_EV_FAILED || ev->event == LF_EV_CANCELLED) {
            atomic_store(&st->waited, 1);
            lf_req_wake(req);
            return LF_HUB_DROP;
        }
        return LF_HUB_KEEP;
    }
    if (now >= st->deadline_ms) { /* also the hub's final tick (INT64_MAX) */
        atomic_store(&st->waited, 2);
        lf_req_wake(req);
        return LF_HUB_DROP;
    }
    return LF_HUB_KEEP;
}

static void s_release(void *arg) {
    lf_req_t *req = arg;
    lf_req_unref(&req);
}

static bool s_terminal(lf_job_status_t s) { return s == LF_JOB_DONE || s == LF_JOB_FAILED || s == LF_JOB_CANCELLED; }

/* ---- the request side (HTTP threads) ---- */

/* The request stops waiting: its job leaves the list of jobs in flight. */
static void s_untrack(lf_gateway_t *gw, lf__rstate_t *st, const lf__wait_ops_t *ops) {
    if (ops->track) s_active_del(gw, st->job_id);
}

int lf__wait_job(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, const lf__wait_ops_t *ops) {
    LF_ASSERT(st->stage >= 1 && ops->answer && ops->finish && ops->timeout);
    if (st->stage == 1) {
        if (st->reply.code)
            return ops->refused ? ops->refused(req, st) : lf__err_code_as(req, st->reply.code, "submit", ops->answer);
        snprintf(st->job_id, sizeof st->job_id, "%s", st->reply.job_id);
        if (ops->track) s_active_add(gw, st->job_id);
        st->stage = 2;
        /* Fall through to subscribe. */
    }
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) {
        s_untrack(gw, st, ops);
        return lf__err_code_as(req, LF_ECONN, "redis", ops->answer);
    }
    lf_job_view_t v = {0};
    for (;;) {
        if (st->stage == 2) { /* listen, then look: an end in between is not missed */
            st->deadline_ms = st->deadline_ms ? st->deadline_ms : lf__mono_ms() + gw->sync_timeout_ms;
            atomic_store(&st->waited, 0);
            atomic_store(&st->abandoned, false);
            lf_req_ref(req);
            if (lf_hub_subscribe(gw->hub, st->job_id, s_on_event, s_release, req) != 0) {
                lf__store_put(gw, stt, 0);
                s_untrack(gw, st, ops);
                return lf__err_code_as(req, LF_ECANCELED, "wait", ops->answer);
            }
            st->stage = 3;
        }
        int rc = lf_store_job_get(stt, st->job_id, &v);
        if (rc) {
            atomic_store(&st->abandoned, true);
            lf__store_put(gw, stt, rc);
            s_untrack(gw, st, ops);
            return lf__err_code_as(req, rc, "job", ops->answer);
        }
        if (s_terminal(v.status)) {
            atomic_store(&st->abandoned, true);
            s_untrack(gw, st, ops);
            int ans = ops->finish(gw, req, st, stt, &v);
            lf_job_view_clear(&v);
            lf__store_put(gw, stt, 0);
            return ans;
        }
        lf_job_view_clear(&v);
        int w = atomic_load(&st->waited);
        if (w == 2) {
            lf__store_put(gw, stt, 0);
            s_untrack(gw, st, ops);
            return ops->timeout(gw, req, st);
        }
        if (w == 1) { /* the event came before Redis showed it: listen again */
            st->stage = 2;
            continue;
        }
        lf__store_put(gw, stt, 0);
        return LF_HTTP_PENDING;
    }
}

int lf__wait_image_b64(lf_req_t *req, lf_store_t *stt, const char *job_id, uint32_t i, lf__answer_fn answer,
                       char **b64) {
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = lf_store_image_get(stt, job_id, i, &png, &len);
    if (rc) {
        lf__err_code_as(req, rc, "result image", answer);
        return -1;
    }
    char *enc = lf_b64_encode(png, len);
    free(png);
    if (!enc) {
        answer(req, 500, "internal", NULL, "out of memory");
        return -1;
    }
    *b64 = enc;
    return 0;
}
