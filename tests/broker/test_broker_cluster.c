/* test_broker_cluster: several brokers on one Redis — two brokers racing
 * over one queue never assign a job twice; a broker restarted mid-job adopts
 * the job its worker still runs; a standby takes over a dead broker's
 * running job when the worker reconnects to it, every job of a batch; a worker report that
 * crossed an ASSIGN does not take the job back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lf_error.h"
#include "lf_testbroker.h"
#include "lf_testredis.h"

typedef struct {
    lf_testredis_t *redis;
    lf_store_t *store;
} s_fix_t;

static int s_setup(void **state) {
    s_fix_t *f = calloc(1, sizeof *f);
    f->redis = lf_testredis_start(NULL);
    assert_non_null(f->redis);
    f->store = tb_store(lf_testredis_port(f->redis));
    *state = f;
    return 0;
}

static int s_teardown(void **state) {
    s_fix_t *f = *state;
    lf_store_destroy(&f->store);
    lf_testredis_destroy(&f->redis);
    free(f);
    return 0;
}

enum { NJOBS = 300, NW = 4 };

static void test_two_brokers_no_double_assignment(void **state) {
    s_fix_t *f = *state;
    int port = lf_testredis_port(f->redis);
    tb_broker_t b[2];
    tb_gateway_t g[2];
    tb_worker_t w[2 * NW];
    for (int i = 0; i < 2; i++) {
        tb_broker_init(&b[i], i ? "b2" : "b1", port);
        tb_broker_start(&b[i]);
        tb_gateway_open(&g[i], b[i].fe, NULL, NULL);
    }
    for (int i = 0; i < 2 * NW; i++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", i);
        tb_worker_open(&w[i], id, b[i % 2].be, "m1", NULL, NULL);
    }
    zclock_sleep(100);
    /* Every job goes in through both gateways alternately, pipelined. */
    for (int i = 0; i < NJOBS; i++) tb_submit_async(&g[i % 2], "m1");
    static char ids[NJOBS][40];
    int accepted = 0;
    for (int i = 0; i < 2; i++) {
        int want = NJOBS / 2;
        while (want--) {
            zmsg_t *m = zmsg_recv(g[i].sock);
            assert_non_null(m);
            lf_msg_t r = {0};
            zframe_t *fr = zmsg_last(m);
            assert_int_equal(lf_msg_decode(zframe_data(fr), zframe_size(fr), &r, NULL), 0);
            assert_int_equal(r.type, LF_MSG_ACCEPTED);
            strcpy(ids[accepted++], r.job_id);
            lf_msg_clear(&r);
            zmsg_destroy(&m);
        }
    }
    assert_int_equal(accepted, NJOBS);
    /* Workers answer at once; count every ASSIGN per job. */
    int assigned[NJOBS] = {0};
    int done = 0;
    int64_t end = zclock_mono() + 30000;
    while (done < NJOBS && zclock_mono() < end) {
        for (int k = 0; k < 2 * NW; k++) {
            lf_msg_t a;
            if (tb_worker_wait(&w[k], LF_MSG_ASSIGN, 2, &a)) continue;
            int idx = -1;
            for (int j = 0; j < NJOBS && idx < 0; j++)
                if (!strcmp(ids[j], a.job_id)) idx = j;
            assert_true(idx >= 0);
            assigned[idx]++;
            assert_int_equal(a.attempt, 1);
            tb_worker_result(&w[k], a.job_id);
            lf_msg_clear(&a);
            done++;
        }
    }
    assert_int_equal(done, NJOBS);
    for (int j = 0; j < NJOBS; j++) assert_int_equal(assigned[j], 1);
    /* Nothing more arrives; everything is done. */
    for (int k = 0; k < 2 * NW; k++) tb_worker_idle(&w[k], 20);
    for (int j = 0; j < NJOBS; j++) assert_int_equal(tb_wait_status(f->store, ids[j], LF_JOB_DONE, 2000), 0);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(f->store, &st), 0);
    assert_int_equal(st.by_status[LF_JOB_DONE], NJOBS);
    assert_int_equal(st.running, 0);
    /* Both brokers did some of the work. */
    int per[2] = {0};
    lf_job_view_t *h;
    size_t n, total;
    assert_int_equal(lf_store_history(f->store, 0, NJOBS, &h, &n, &total), 0);
    for (size_t i = 0; i < n; i++) {
        per[h[i].worker_id[1] % 2]++;
        lf_job_view_clear(&h[i]);
    }
    free(h);
    assert_true(per[0] > 0 && per[1] > 0);
    for (int k = 0; k < 2 * NW; k++) tb_worker_close(&w[k]);
    for (int i = 0; i < 2; i++) {
        tb_gateway_close(&g[i]);
        tb_broker_stop(&b[i]);
    }
}

/* One broker b1, a gateway and a worker w1 running a job it was assigned. */
typedef struct {
    tb_broker_t b;
    tb_gateway_t g;
    tb_worker_t w;
    char id[40];
} s_one_t;

static void s_one_start(s_one_t *o, int redis_port) {
    tb_broker_init(&o->b, "b1", redis_port);
    tb_broker_start(&o->b);
    tb_gateway_open(&o->g, o->b.fe, NULL, NULL);
    tb_worker_open(&o->w, "w1", o->b.be, "m1", NULL, NULL);
    assert_int_equal(tb_submit(&o->g, "m1", LF_PRIO_NORMAL, NULL, o->id, NULL), 0);
    assert_int_equal(tb_worker_wait(&o->w, LF_MSG_ASSIGN, 3000, NULL), 0);
}

static void s_one_stop(s_one_t *o) {
    tb_worker_close(&o->w);
    tb_gateway_close(&o->g);
    tb_broker_stop(&o->b);
}

/* w answers job id: done, on its first attempt. */
static void s_done_first_time(lf_store_t *store, tb_worker_t *w, const char *id) {
    tb_worker_result(w, id);
    assert_int_equal(tb_wait_status(store, id, LF_JOB_DONE, 2000), 0);
    lf_job_view_t v;
    assert_int_equal(lf_store_job_get(store, id, &v), 0);
    assert_int_equal(v.attempts, 1);
    lf_job_view_clear(&v);
}

/* The broker restarts while its worker runs a job: the worker's heartbeat
 * (busy, job id) makes the new broker adopt the job; nothing is requeued. */
static void test_broker_restart_adopts(void **state) {
    s_fix_t *f = *state;
    s_one_t o;
    s_one_start(&o, lf_testredis_port(f->redis));
    tb_broker_stop(&o.b);
    tb_worker_idle(&o.w, 100);
    tb_broker_start(&o.b); /* same id, same endpoints */
    tb_worker_idle(&o.w, 1500); /* longer than the lease: it must have been renewed */
    assert_int_equal(tb_status(f->store, o.id), LF_JOB_RUNNING);
    s_done_first_time(f->store, &o.w, o.id);
    s_one_stop(&o);
}

/* Broker b1 dies for good; its worker, connected to the standby b2 too,
 * keeps running the job; b2 takes it over and gets the result. */
static void test_standby_takes_over(void **state) {
    s_fix_t *f = *state;
    int port = lf_testredis_port(f->redis);
    tb_broker_t b1, b2;
    tb_broker_init(&b1, "b1", port);
    tb_broker_init(&b2, "b2", port);
    b1.opts.limits.lease_ms = b2.opts.limits.lease_ms = 2000;
    tb_broker_start(&b1);
    tb_broker_start(&b2);
    tb_gateway_t g;
    tb_gateway_open(&g, b1.fe, NULL, NULL);
    tb_worker_t w;
    tb_worker_open(&w, "w1", b1.be, "m1", NULL, NULL);
    char id[40];
    assert_int_equal(tb_submit(&g, "m1", LF_PRIO_NORMAL, NULL, id, NULL), 0);
    assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, NULL), 0);
    /* The same worker's link to b2, saying it runs the job. */
    tb_worker_t w2;
    tb_worker_open(&w2, "w1", b2.be, "m1", NULL, NULL);
    w2.busy = true;
    strcpy(w2.job, id);
    tb_worker_idle(&w2, 300); /* b1 alive: b2 leaves the job alone */
    tb_broker_stop(&b1);
    lf_msg_t a;
    /* b2 adopts it once b1's liveness key is gone, and re-sends ASSIGN so the
     * worker answers to it. */
    assert_int_equal(tb_worker_wait(&w2, LF_MSG_ASSIGN, 3000, &a), 0);
    assert_string_equal(a.job_id, id);
    assert_int_equal(a.attempt, 1);
    lf_msg_clear(&a);
    s_done_first_time(f->store, &w2, id);
    tb_worker_close(&w);
    tb_worker_close(&w2);
    tb_gateway_close(&g);
    tb_broker_stop(&b2);
}

/* As test_standby_takes_over with a batch: b1 assigned w1 three jobs as
 * one batch; w1's link to b2 lists them all (`jobs`). b1 dies: b2 adopts
 * each job (a repeated ASSIGN for each), renews all three leases, and
 * stores each answer, every job done on its first attempt. (b2 adopted
 * only the job heartbeats named: the other two's leases ran out and they
 * went back to the queue while w1 still ran them.) */
static void test_standby_adopts_batch(void **state) {
    s_fix_t *f = *state;
    int port = lf_testredis_port(f->redis);
    tb_broker_t b1, b2;
    tb_broker_init(&b1, "b1", port);
    tb_broker_init(&b2, "b2", port);
    b1.opts.limits.lease_ms = b2.opts.limits.lease_ms = 2000;
    tb_broker_start(&b1);
    tb_broker_start(&b2);
    tb_gateway_t g;
    tb_gateway_open(&g, b1.fe, NULL, NULL);
    tb_worker_t w;
    tb_worker_open(&w, "w1", b1.be, "m0", NULL, NULL);
    tb_worker_idle(&w, 100);
    char ids[3][40];
    for (int i = 0; i < 3; i++) assert_int_equal(tb_submit(&g, "mb", LF_PRIO_NORMAL, NULL, ids[i], NULL), 0);
    tb_worker_idle(&w, 300); /* the broker's candidate cache sees all three */
    w.models[0] = w.resident = "mb";
    w.batch_max = 3;
    tb_worker_ready(&w);
    for (int i = 0; i < 3; i++) {
        lf_msg_t a;
        assert_int_equal(tb_worker_wait(&w, LF_MSG_ASSIGN, 3000, &a), 0);
        assert_int_equal(a.batch, i ? 0 : 3);
        snprintf(w.open[i], sizeof w.open[i], "%s", a.job_id); /* in the batch's order */
        w.open_attempt[i] = a.attempt;
        lf_msg_clear(&a);
    }
    w.n_open = 3;
    snprintf(w.job, sizeof w.job, "%s", w.open[0]); /* heartbeats name the first */
    /* The same worker's link to b2, saying it runs the batch. */
    tb_worker_t w2;
    tb_worker_open(&w2, "w1", b2.be, "mb", NULL, NULL);
    w2.busy = true;
    w2.batch_max = 3;
    snprintf(w2.job, sizeof w2.job, "%s", w.open[0]);
    memcpy(w2.open, w.open, sizeof w2.open);
    memcpy(w2.open_attempt, w.open_attempt, sizeof w2.open_attempt);
    w2.n_open = 3;
    tb_worker_idle(&w2, 300); /* b1 alive: b2 leaves the jobs alone */
    tb_worker_idle(&w, 100);
    tb_broker_stop(&b1);
    /* b2 adopts each job once b1's liveness key is gone and re-sends its
     * ASSIGN so that the worker answers to it. */
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        lf_msg_t a;
        assert_int_equal(tb_worker_wait(&w2, LF_MSG_ASSIGN, 3000, &a), 0);
        int k = 0;
        while (k < 3 && strcmp(a.job_id, w.open[k])) k++;
        assert_true(k < 3 && !seen[k]);
        seen[k] = true;
        assert_int_equal(a.attempt, 1);
        lf_msg_clear(&a);
    }
    snprintf(w2.job, sizeof w2.job, "%s", w.open[0]);
    tb_worker_idle(&w2, 2500); /* past the 2 s lease: b2 renews all three */
    for (int i = 0; i < 3; i++) assert_int_equal(tb_status(f->store, w.open[i]), LF_JOB_RUNNING);
    for (int i = 0; i < 3; i++) {
        char id[40];
        snprintf(id, sizeof id, "%s", w.open[i]);
        w2.n_open = 2 - (size_t)i; /* the others stay open */
        memmove(w2.open, w2.open + 1, sizeof w2.open[0] * 3);
        memmove(w2.open_attempt, w2.open_attempt + 1, sizeof w2.open_attempt[0] * 3);
        tb_worker_result(&w2, id);
        w2.busy = i < 2;
        snprintf(w2.job, sizeof w2.job, "%s", w.open[0]);
        assert_int_equal(tb_wait_status(f->store, id, LF_JOB_DONE, 2000), 0);
        lf_job_view_t v;
        assert_int_equal(lf_store_job_get(f->store, id, &v), 0);
        assert_int_equal(v.attempts, 1);
        lf_job_view_clear(&v);
    }
    tb_worker_close(&w);
    tb_worker_close(&w2);
    tb_gateway_close(&g);
    tb_broker_stop(&b2);
}

/* A worker's report that crossed our ASSIGN on the wire (it counts the
 * ASSIGNs it has read: 0 here) says nothing about that job. The worker
 * says it runs another broker's job, then that it is idle: the job stays
 * running there, not given back to run a second time elsewhere. (It was
 * given back with its attempt refunded; the worker, done with the other
 * job at once, then ran it too: two runs, "attempts 1".) */
static void test_report_before_assign_keeps_job(void **state) {
    s_fix_t *f = *state;
    s_one_t o;
    s_one_start(&o, lf_testredis_port(f->redis));
    lf_msg_t hb = {.type = LF_MSG_HEARTBEAT, .worker_id = o.w.id, .busy = true,
                   .job_id = "0123456789abcdef0123456789abcdef", .has_assigns = true};
    tb_worker_send(&o.w, &hb);
    tb_worker_idle(&o.w, 3 * TB_HB_MS); /* past the two beats an idle report waits; its
                                           own beats meanwhile say it runs the job */
    hb.busy = false, hb.job_id = NULL;
    tb_worker_send(&o.w, &hb);
    assert_int_equal(tb_worker_wait(&o.w, LF_MSG_ASSIGN, 2 * TB_HB_MS, NULL), -1);
    assert_int_equal(tb_status(f->store, o.id), LF_JOB_RUNNING);
    s_done_first_time(f->store, &o.w, o.id);
    lf_store_stats_t st;
    assert_int_equal(lf_store_stats(f->store, &st), 0);
    assert_int_equal(st.by_status[LF_JOB_DONE], 1);
    s_one_stop(&o);
}

int main(void) {
#define T(t) cmocka_unit_test_setup_teardown(t, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_two_brokers_no_double_assignment),
        T(test_broker_restart_adopts),
        T(test_standby_takes_over),
        T(test_standby_adopts_batch),
        T(test_report_before_assign_keeps_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
