/* test_broker_dispatch: one broker (in-process) on a real redis-server, with
 * simulated workers and a gateway: dispatch and events, capability,
 * heartbeat death -> requeue to another worker (and the late answer fenced
 * off), cancel of queued and running jobs, refusals, idempotency, bad input,
 * and Redis going away under a running broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lf_error.h"
#include "lf_testbroker.h"
#include "lf_testredis.h"

typedef struct {
    lf_testredis_t *redis;
    tb_broker_t b;
    tb_gateway_t g;
    zsock_t *sub;
    lf_store_t *store;
} s_fix_t;

static int s_setup(void **state) {
    s_fix_t *f = calloc(1, sizeof *f);
    f->redis = lf_testredis_start(&(lf_testredis_opts_t){.aof = true});
    assert_non_null(f->redis);
    tb_broker_init(&f->b, "b1", lf_testredis_port(f->redis));
    tb_broker_start(&f->b);
    tb_gateway_open(&f->g, f->b.fe, NULL, NULL);
    f->sub = tb_sub_open(f->b.ev);
    f->store = tb_store(lf_testredis_port(f->redis));
    zclock_sleep(100); /* let the SUB subscription reach the PUB */
    *state = f;
    return 0;
}

static int s_teardown(void **state) {
    s_fix_t *f = *state;
    lf_store_destroy(&f->store);
    zsock_destroy(&f->sub);
    tb_gateway_close(&f->g);
    tb_broker_stop(&f->b);
    lf_testredis_destroy(&f->redis);
    free(f);
    return 0;
}

static void test_dispatch_and_events(void **state) {
    s_fix_t *f = *state;
    tb_worker_t w;
    tb_worker_open(&w, "w1", f->b.be, "m1", NULL, NULL);
    tb_worker_idle(&w, 100);
    char id[40];
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    lf_msg_t a;
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, &a), 0);
    assert_string_equal(a.job_id, id);
    assert_int_equal(a.attempt, 1);
    assert_string_equal(a.params.model, "m1");
    assert_int_equal(a.params.width, 64);
    lf_msg_clear(&a);
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_QUEUED, 2000, NULL), 0);
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_STARTED, 2000, NULL), 0);

    uint8_t prev[] = {1, 2, 3, 4};
    lf_msg_t p = {.type = LF_MSG_PROGRESS, .job_id = id, .worker_id = "w1", .step = 1, .steps = 2,
                  .preview = {prev, sizeof prev}};
    tb_worker_send(&w, &p);
    lf_msg_t ev;
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_PROGRESS, 2000, &ev), 0);
    assert_int_equal(ev.step, 1);
    assert_int_equal(ev.steps, 2);
    assert_int_equal(ev.preview.len, 0);
    lf_msg_clear(&ev);
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_PREVIEW, 2000, &ev), 0);
    assert_int_equal(ev.preview.len, sizeof prev);
    lf_msg_clear(&ev);
    uint8_t *d;
    size_t len;
    assert_int_equal(lf_store_preview_get(f->store, id, &d, &len), 0);
    free(d);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->store, id, &v), 0);
    assert_int_equal(v.step, 1);
    assert_int_equal(v.steps, 2);
    assert_string_equal(v.worker_id, "w1");
    lf_job_view_clear(&v);

    tb_worker_result(&w, id);
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_DONE, 2000, &ev), 0);
    assert_int_equal(ev.status, LF_JOB_DONE);
    lf_msg_clear(&ev);
    assert_int_equal(tb_status(f->store, id), LF_JOB_DONE);
    assert_int_equal(lf_store_image_get(f->store, id, 0, &d, &len), 0);
    assert_int_equal(len, 4);
    free(d);

    /* The registry shows the worker. */
    tb_worker_idle(&w, 2 * TB_HB_MS + 50);
    lf_worker_view_t *ws;
    size_t n;
    assert_int_equal(lf_store_workers_list(f->store, &ws, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0].id, "w1");
    assert_string_equal(ws[0].caps.models[0].name, "m1");
    lf_worker_view_clear(&ws[0]);
    free(ws);

    /* A second job right away, then the worker leaves cleanly. */
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, NULL), 0);
    tb_worker_result(&w, id);
    assert_int_equal(tb_wait_status(f->store, id, LF_JOB_DONE, 2000), 0);
    tb_worker_send(&w, &(lf_msg_t){.type = LF_MSG_DISCONNECT, .worker_id = "w1"});
    zclock_sleep(100);
    assert_int_equal(lf_store_workers_list(f->store, &ws, &n), 0);
    assert_int_equal(n, 0);
    free(ws);
    tb_worker_close(&w);
}

static void test_capability(void **state) {
    s_fix_t *f = *state;
    tb_worker_t w1, w2;
    tb_worker_open(&w1, "w1", f->b.be, "m1", NULL, NULL);
    tb_worker_open(&w2, "w2", f->b.be, "m2", NULL, NULL);
    tb_worker_idle(&w1, 50);
    char a[40], b[40], c[40];
    assert_int_equal(tb_submit(&f->g, "m2", LF_PRIO_NORMAL, NULL, a, NULL), 0);
    lf_msg_t m;
    assert_int_equal(tb_worker_wait(&w2, LF_MSG_ASSIGN, 3000, &m), 0);
    assert_string_equal(m.job_id, a);
    lf_msg_clear(&m);
    /* No one runs m3: it waits. */
    assert_int_equal(tb_submit(&f->g, "m3", LF_PRIO_HIGH, NULL, b, NULL), 0);
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_LOW, NULL, c, NULL), 0);
    assert_int_equal(tb_worker_wait(&w1, LF_MSG_ASSIGN, 3000, &m), 0);
    assert_string_equal(m.job_id, c);
    lf_msg_clear(&m);
    assert_int_equal(tb_status(f->store, b), LF_JOB_QUEUED);
    tb_worker_close(&w1);
    tb_worker_close(&w2);
}

/* A worker that goes silent: its lease runs out, the job goes to another
 * worker with attempt 2, and the silent one's late RESULT is dropped. */
static void test_worker_death_requeue(void **state) {
    s_fix_t *f = *state;
    tb_worker_t w1, w2;
    tb_worker_open(&w1, "w1", f->b.be, "m1", NULL, NULL);
    tb_worker_idle(&w1, 50);
    char id[40];
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    assert_int_equal(tb_worker_wait(&w1, LF_MSG_ASSIGN, 3000, NULL), 0);
    w1.beating = false; /* dies */
    tb_worker_open(&w2, "w2", f->b.be, "m1", NULL, NULL);
    lf_msg_t m;
    int64_t t0 = zclock_mono();
    assert_int_equal(tb_worker_wait(&w2, LF_MSG_ASSIGN, 5000, &m), 0);
    assert_string_equal(m.job_id, id);
    assert_int_equal(m.attempt, 2);
    lf_msg_clear(&m);
    assert_true(zclock_mono() - t0 >= 500); /* not before the lease ran out */
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_QUEUED, 1000, NULL), 0);

    tb_worker_result(&w1, id); /* too late */
    tb_worker_idle(&w2, 200);
    assert_int_equal(tb_status(f->store, id), LF_JOB_RUNNING);
    tb_worker_result(&w2, id);
    assert_int_equal(tb_wait_status(f->store, id, LF_JOB_DONE, 2000), 0);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->store, id, &v), 0);
    assert_string_equal(v.worker_id, "w2");
    assert_int_equal(v.attempts, 2);
    lf_job_view_clear(&v);
    tb_worker_close(&w1);
    tb_worker_close(&w2);
}

static void test_cancel(void **state) {
    s_fix_t *f = *state;
    char q[40], r[40];
    /* Queued: nobody can run it. */
    assert_int_equal(tb_submit(&f->g, "nobody", LF_PRIO_NORMAL, NULL, q, NULL), 0);
    assert_int_equal(tb_cancel(&f->g, q), 0);
    assert_int_equal(tb_status(f->store, q), LF_JOB_CANCELLED);
    assert_int_equal(tb_sub_wait(f->sub, q, LF_EV_CANCELLED, 1000, NULL), 0);
    assert_int_equal(tb_cancel(&f->g, q), LF_ESTATE);
    assert_int_equal(tb_cancel(&f->g, "0123456789abcdef0123456789abcdef"), LF_ENOTFOUND);

    /* Running: the worker is told to stop. */
    tb_worker_t w;
    tb_worker_open(&w, "w1", f->b.be, "m1", NULL, NULL);
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, r, NULL), 0);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, NULL), 0);
    assert_int_equal(tb_cancel(&f->g, r), 0);
    lf_msg_t m;
    assert_int_equal(tb_worker_wait(&w, LF_MSG_CANCEL, 2000, &m), 0);
    assert_string_equal(m.job_id, r);
    lf_msg_clear(&m);
    assert_int_equal(tb_status(f->store, r), LF_JOB_CANCELLED);
    /* The worker stops at its next step and says so; it is free again. */
    tb_worker_send(&w, &(lf_msg_t){.type = LF_MSG_FAILED, .job_id = r, .worker_id = "w1",
                                   .code = LF_ECANCELED, .message = "cancelled"});
    w.busy = false;
    char n[40];
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, n, NULL), 0);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, NULL), 0);
    assert_int_equal(tb_status(f->store, r), LF_JOB_CANCELLED);
    tb_worker_close(&w);
}

/* Prompt enhancement's stage: an "enhancing" job is stored, not assigned,
 * until the gateway's ENHANCED (then with the LLM's prompt) or the reaper
 * (then with the original and the reason) queues it. */
static void test_enhancing(void **state) {
    s_fix_t *f = *state;
    tb_worker_t w;
    tb_worker_open(&w, "w1", f->b.be, "m1", NULL, NULL);
    tb_worker_idle(&w, 100);
    char e[40], q[40];
    lf_job_status_t st = LF_JOB_QUEUED;
    assert_int_equal(tb_submit_enhance(&f->g, "m1", 60000, e, &st), 0);
    assert_int_equal(st, LF_JOB_ENHANCING);
    lf_msg_t ev;
    assert_int_equal(tb_sub_wait(f->sub, e, LF_EV_ENHANCING, 2000, &ev), 0);
    assert_int_equal(ev.status, LF_JOB_ENHANCING);
    lf_msg_clear(&ev);
    /* A job submitted after it is assigned first: it is in no queue. */
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, q, NULL), 0);
    lf_msg_t a;
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, &a), 0);
    assert_string_equal(a.job_id, q);
    lf_msg_clear(&a);
    assert_int_equal(tb_status(f->store, e), LF_JOB_ENHANCING);
    assert_int_equal(tb_enhanced(&f->g, e, "a cat, oil on canvas", NULL), 0);
    assert_int_equal(tb_sub_wait(f->sub, e, LF_EV_QUEUED, 2000, NULL), 0);
    assert_int_equal(tb_enhanced(&f->g, e, "again", NULL), LF_ESTATE);
    tb_worker_result(&w, q);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, &a), 0);
    assert_string_equal(a.job_id, e);
    assert_string_equal(a.params.prompt, "a cat, oil on canvas");
    assert_string_equal(a.params.prompt_original, "a cat");
    lf_msg_clear(&a);
    tb_worker_result(&w, e);

    /* No ENHANCED ever comes (the gateway died): the reaper queues it. */
    assert_int_equal(tb_submit_enhance(&f->g, "m1", 1, e, &st), 0);
    assert_int_equal(st, LF_JOB_ENHANCING);
    assert_int_equal(tb_sub_wait(f->sub, e, LF_EV_QUEUED, LF_STORE_ENHANCE_MARGIN_MS + 3000, &ev), 0);
    assert_non_null(strstr(ev.message, "enhancement lost"));
    lf_msg_clear(&ev);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, &a), 0);
    assert_string_equal(a.job_id, e);
    assert_string_equal(a.params.prompt, "a cat");
    assert_null(a.params.prompt_original);
    assert_non_null(strstr(a.params.enhance_error, "enhancement lost"));
    lf_msg_clear(&a);
    tb_worker_result(&w, e);
    assert_int_equal(tb_enhanced(&f->g, e, "too late", NULL), LF_ESTATE);
    assert_int_equal(tb_enhanced(&f->g, "0123456789abcdef0123456789abcdef", "x", NULL), LF_ENOTFOUND);
    tb_worker_close(&w);
}

static void test_refusal_and_failure(void **state) {
    s_fix_t *f = *state;
    tb_worker_t w1;
    tb_worker_open(&w1, "w1", f->b.be, "m1", NULL, NULL);
    char id[40];
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    assert_int_equal(tb_worker_wait(&w1, LF_MSG_ASSIGN, 3000, NULL), 0);
    /* A refusal (busy elsewhere) gives the job back without using an attempt. */
    tb_worker_send(&w1, &(lf_msg_t){.type = LF_MSG_FAILED, .job_id = id, .worker_id = "w1",
                                    .code = LF_EBUSY, .message = "busy"});
    w1.busy = false;
    lf_msg_t m;
    assert_int_equal(tb_worker_wait(&w1, LF_MSG_ASSIGN, 3000, &m), 0);
    assert_string_equal(m.job_id, id);
    assert_int_equal(m.attempt, 1);
    lf_msg_clear(&m);
    /* A real failure ends the job with the worker's code and message. */
    tb_worker_send(&w1, &(lf_msg_t){.type = LF_MSG_FAILED, .job_id = id, .worker_id = "w1",
                                    .code = LF_EUNSUPPORTED, .message = "no such sampler"});
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_FAILED, 2000, &m), 0);
    assert_int_equal(m.code, LF_EUNSUPPORTED);
    assert_string_equal(m.message, "no such sampler");
    lf_msg_clear(&m);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->store, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_FAILED);
    assert_string_equal(v.message, "no such sampler");
    lf_job_view_clear(&v);
    tb_worker_close(&w1);
}

static void test_idempotency_and_bad_input(void **state) {
    s_fix_t *f = *state;
    char a[40], b[40];
    bool dup = true;
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, "key-1", a, &dup), 0);
    assert_false(dup);
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, "key-1", b, &dup), 0);
    assert_true(dup);
    assert_string_equal(a, b);
    /* Garbage, and a SUBMIT whose params break the parameter table (an empty
     * model name), get a REPLY with a code, and the broker carries on. */
    lf_msg_t empty = {.type = LF_MSG_SUBMIT, .req_id = 77, .params = {.model = "", .steps = 2}};
    uint8_t *eb = NULL;
    size_t el = 0;
    assert_int_equal(lf_msg_encode(&empty, &eb, &el), 0);
    zframe_t *frames[2] = {zframe_new("\xc1\x00garbage", 9), zframe_new(eb, el)};
    free(eb);
    for (int k = 0; k < 2; k++) {
        zframe_send(&frames[k], f->g.sock, 0);
        zmsg_t *r = zmsg_recv(f->g.sock);
        assert_non_null(r);
        lf_msg_t m = {0};
        zframe_t *fr = zmsg_last(r);
        assert_int_equal(lf_msg_decode(zframe_data(fr), zframe_size(fr), &m, NULL), 0);
        assert_int_equal(m.type, LF_MSG_REPLY);
        assert_int_not_equal(m.code, 0);
        lf_msg_clear(&m);
        zmsg_destroy(&r);
    }
    zsock_t *bad = zsock_new_dealer(f->b.be);
    zstr_send(bad, "not msgpack");
    zsock_destroy(&bad);
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, a, NULL), 0);
}

/* Redis goes away: submits are refused with a code (nothing half-accepted),
 * the broker keeps running and carries on when Redis is back with its AOF. */
static void test_redis_restart(void **state) {
    s_fix_t *f = *state;
    char id[40], id2[40];
    assert_int_equal(tb_submit(&f->g, "later", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    assert_int_equal(lf_testredis_kill(f->redis), 0);
    int rc = tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, id2, NULL);
    assert_true(rc == LF_ECONN || rc == LF_EREDIS);
    assert_int_equal(lf_testredis_restart(f->redis), 0);
    int64_t end = zclock_mono() + 5000;
    while ((rc = tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, id2, NULL)) != 0 &&
           zclock_mono() < end)
        zclock_sleep(100);
    assert_int_equal(rc, 0);
    assert_int_equal(lf_store_reconnect(f->store), 0);
    assert_int_equal(tb_status(f->store, id), LF_JOB_QUEUED); /* survived (AOF) */
    tb_worker_t w;
    tb_worker_open(&w, "w1", f->b.be, "m1", NULL, NULL);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, NULL), 0);
    tb_worker_result(&w, id2);
    assert_int_equal(tb_wait_status(f->store, id2, LF_JOB_DONE, 2000), 0);
    tb_worker_close(&w);
}

/* A worker's RESULT that arrives while Redis is down is kept and stored
 * once Redis is back: the job ends done, not requeued. */
static void test_result_during_redis_outage(void **state) {
    s_fix_t *f = *state;
    tb_worker_t w;
    tb_worker_open(&w, "w1", f->b.be, "m1", NULL, NULL);
    char id[40];
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, NULL), 0);
    assert_int_equal(lf_testredis_kill(f->redis), 0);
    tb_worker_result(&w, id);
    tb_worker_idle(&w, 300);
    assert_int_equal(lf_testredis_restart(f->redis), 0);
    assert_int_equal(tb_sub_wait(f->sub, id, LF_EV_DONE, 5000, NULL), 0);
    assert_int_equal(lf_store_reconnect(f->store), 0);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->store, id, &v), 0);
    assert_int_equal(v.status, LF_JOB_DONE);
    assert_int_equal(v.attempts, 1);
    lf_job_view_clear(&v);
    tb_worker_close(&w);
}

/* A queued job past its TTL fails with LF_ETIMEDOUT; a job whose worker
 * is lost more often than max_attempts fails with LF_ELIMIT into the dead
 * letters, with a message that says why. */
static void test_ttl_and_dead_letter(void **state) {
    s_fix_t *f = *state;
    char t[40], d[40];
    assert_int_equal(tb_submit_opts(&f->g, "nobody", 1, 0, t), 0);
    lf_msg_t ev;
    assert_int_equal(tb_sub_wait(f->sub, t, LF_EV_FAILED, 3000, &ev), 0);
    assert_int_equal(ev.code, LF_ETIMEDOUT);
    lf_msg_clear(&ev);
    assert_int_equal(tb_status(f->store, t), LF_JOB_FAILED);

    tb_worker_t w;
    tb_worker_open(&w, "w1", f->b.be, "m1", NULL, NULL);
    assert_int_equal(tb_submit_opts(&f->g, "m1", 0, 1, d), 0);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, NULL), 0);
    w.beating = false; /* lost */
    assert_int_equal(tb_sub_wait(f->sub, d, LF_EV_FAILED, 4000, &ev), 0);
    assert_int_equal(ev.code, LF_ELIMIT);
    assert_non_null(strstr(ev.message, "maximum attempts"));
    lf_msg_clear(&ev);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->store, d, &v), 0);
    assert_int_equal(v.status, LF_JOB_FAILED);
    assert_non_null(strstr(v.message, "w1"));
    lf_job_view_clear(&v);
    char **ids;
    size_t n;
    assert_int_equal(lf_store_dead_list(f->store, 10, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], d);
    free(ids[0]);
    free(ids);
    tb_worker_close(&w);
}

/* Queued jobs that no live worker can run fail after the grace period
 * (LF_ENOCAPABLE, a message naming the requirement) instead of waiting for
 * their queue TTL; a job some worker can run is left alone. */
static void test_unrunnable(void **state) {
    s_fix_t *f = *state;
    tb_broker_stop(&f->b); /* the fixture's broker, again with a short grace */
    f->b.opts.unrunnable_grace_ms = 300;
    tb_broker_start(&f->b);
    tb_gateway_close(&f->g);
    tb_gateway_open(&f->g, f->b.fe, NULL, NULL);
    zsock_destroy(&f->sub);
    f->sub = tb_sub_open(f->b.ev);
    tb_worker_t w1, w2;
    tb_worker_open(&w1, "w1", f->b.be, "m1", NULL, NULL);
    tb_worker_open(&w2, "w2", f->b.be, "m3", NULL, NULL);
    w2.max_pixels = 1024; /* the jobs are 64x64 */
    tb_worker_ready(&w2);
    tb_worker_idle(&w1, 300);
    tb_worker_idle(&w2, 300);
    char a[40], b[40], c[40];
    /* c can run: w1 takes it and keeps it running (busy workers count). */
    assert_int_equal(tb_submit(&f->g, "m1", LF_PRIO_LOW, NULL, c, NULL), 0);
    lf_msg_t m;
    assert_int_equal(tb_worker_wait(&w1, LF_MSG_ASSIGN, 3000, &m), 0);
    assert_string_equal(m.job_id, c);
    lf_msg_clear(&m);
    w1.busy = true;
    snprintf(w1.job, sizeof w1.job, "%s", c);
    assert_int_equal(tb_submit(&f->g, "m2", LF_PRIO_NORMAL, NULL, a, NULL), 0);
    assert_int_equal(tb_submit(&f->g, "m3", LF_PRIO_NORMAL, NULL, b, NULL), 0);
    bool failed = false;
    for (int i = 0; i < 100 && !failed; i++) {
        tb_worker_idle(&w1, 25);
        tb_worker_idle(&w2, 25);
        failed = tb_status(f->store, a) == LF_JOB_FAILED && tb_status(f->store, b) == LF_JOB_FAILED;
    }
    assert_true(failed);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->store, a, &v), 0);
    assert_int_equal(v.code, LF_ENOCAPABLE);
    assert_non_null(strstr(v.message, "no live worker serves model 'm2'"));
    lf_job_view_clear(&v);
    assert_int_equal(lf_store_job_get(f->store, b, &v), 0);
    assert_int_equal(v.code, LF_ENOCAPABLE);
    assert_non_null(strstr(v.message, "max_pixels"));
    assert_non_null(strstr(v.message, "'m3'"));
    assert_non_null(strstr(v.message, "1024"));
    lf_job_view_clear(&v);
    assert_int_equal(tb_status(f->store, c), LF_JOB_RUNNING);
    /* Subscribers heard why. */
    lf_msg_t e;
    assert_int_equal(tb_sub_wait(f->sub, a, LF_EV_FAILED, 2000, &e), 0);
    assert_int_equal(e.code, LF_ENOCAPABLE);
    assert_non_null(e.message);
    lf_msg_clear(&e);
    tb_worker_close(&w1);
    tb_worker_close(&w2);
}

/* A worker with batch_max 4 and three compatible jobs queued: one ASSIGN
 * saying batch 3, then the two others naming it (batch_of); the worker
 * stays busy (the leases of all three renewed) until each job has
 * answered, then takes the next job alone. */
static void test_batch(void **state) {
    s_fix_t *f = *state;
    tb_worker_t w;
    tb_worker_open(&w, "wb", f->b.be, "m0", NULL, NULL);
    tb_worker_idle(&w, 100);
    char ids[3][40], next[40];
    for (int i = 0; i < 3; i++) assert_int_equal(tb_submit(&f->g, "mb", LF_PRIO_NORMAL, NULL, ids[i], NULL), 0);
    tb_worker_idle(&w, 300); /* the broker's candidate cache (100 ms) sees all three */
    w.models[0] = w.resident = "mb";
    w.batch_max = 4;
    tb_worker_ready(&w); /* now it serves mb, three at a time */
    lf_msg_t a[3];
    /* The three jobs, each once (jobs submitted in the same millisecond have
     * no order among them), the first saying the batch's size. */
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, &a[i]), 0);
        int k = 0;
        while (k < 3 && strcmp(a[i].job_id, ids[k])) k++;
        assert_true(k < 3 && !seen[k]);
        seen[k] = true;
        assert_int_equal(a[i].batch, i ? 0 : 3);
        if (i) assert_string_equal(a[i].batch_of, a[0].job_id);
        else assert_null(a[i].batch_of);
    }
    for (int i = 0; i < 3; i++) snprintf(ids[i], sizeof ids[i], "%s", a[i].job_id); /* in the batch's order */
    snprintf(w.job, sizeof w.job, "%s", ids[0]); /* heartbeats name the first */
    assert_int_equal(tb_submit(&f->g, "mb", LF_PRIO_NORMAL, NULL, next, NULL), 0);
    tb_worker_result(&w, ids[1]);
    tb_worker_result(&w, ids[0]);
    w.busy = true, snprintf(w.job, sizeof w.job, "%s", ids[0]);
    tb_worker_idle(&w, 1500); /* past the 1 s lease: renewed for the open job; nothing assigned */
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(f->store, ids[2], &v), 0);
    assert_int_equal(v.status, LF_JOB_RUNNING);
    lf_job_view_clear(&v);
    tb_worker_result(&w, ids[2]);
    w.busy = false, w.job[0] = '\0';
    lf_msg_t n;
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, &n), 0);
    assert_string_equal(n.job_id, next);
    assert_int_equal(n.batch, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lf_store_job_get(f->store, ids[i], &v), 0);
        assert_int_equal(v.status, LF_JOB_DONE);
        lf_job_view_clear(&v);
        lf_msg_clear(&a[i]);
    }
    lf_msg_clear(&n);
    tb_worker_close(&w);
}

int main(void) {
#define T(t) cmocka_unit_test_setup_teardown(t, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_dispatch_and_events),
        T(test_capability),
        T(test_worker_death_requeue),
        T(test_cancel),
        T(test_enhancing),
        T(test_refusal_and_failure),
        T(test_idempotency_and_bad_input),
        T(test_redis_restart),
        T(test_result_during_redis_outage),
        T(test_ttl_and_dead_letter),
        T(test_unrunnable),
        T(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
