/* test_link: the gateway's broker link (lf_link) against two fake brokers —
 * ROUTER sockets driven by the test with the real codec. Broker A cannot
 * reach Redis: it refuses every SUBMIT with LF_ECONN ("job store
 * unavailable; the job was not accepted"), as the real broker does. Broker
 * B accepts. Every submit must be accepted through B (none answered with
 * A's refusal: a user must not see a 503 while another broker is healthy),
 * A's refusals must have happened (the retry path ran), and the link's view
 * of the brokers must say A's store is down once A's heartbeat answers say
 * so. The fake brokers are what the protocol says a broker sends (REPLY to
 * req_id 0 for a heartbeat; docs/protocol.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "lf_error.h"
#include "lf_link.h"
#include "lf_proto.h"

typedef struct {
    void *sock;
    char ep[64];
    bool store_down_in_heartbeat; /* A: say it in heartbeat answers too */
    bool refuse_submits;          /* A: LF_ECONN for every SUBMIT */
    int submits;                  /* SUBMITs received */
} s_broker_t;

static atomic_int g_ok, g_refused, g_other;

static void s_done(void *arg, const lf_link_reply_t *r) {
    (void)arg;
    if (r->code == 0 && !strcmp(r->job_id, "job-from-b")) atomic_fetch_add(&g_ok, 1);
    else if (r->code == LF_ECONN) atomic_fetch_add(&g_refused, 1);
    else atomic_fetch_add(&g_other, 1);
}

static int64_t s_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_bind(void *ctx, s_broker_t *b) {
    b->sock = zmq_socket(ctx, ZMQ_ROUTER);
    assert_non_null(b->sock);
    int linger = 0;
    zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(b->sock, "tcp://127.0.0.1:*"), 0);
    size_t l = sizeof b->ep;
    assert_int_equal(zmq_getsockopt(b->sock, ZMQ_LAST_ENDPOINT, b->ep, &l), 0);
}

/* Answer what arrived at broker b (non-blocking). */
static void s_serve(s_broker_t *b) {
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, b->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        zmq_msg_init(&body);
        assert_true(zmq_msg_recv(&body, b->sock, 0) >= 0);
        lf_msg_t m = {0};
        assert_int_equal(lf_msg_decode(zmq_msg_data(&body), zmq_msg_size(&body), &m, NULL), 0);
        lf_msg_t r = {.type = LF_MSG_REPLY, .req_id = m.req_id};
        if (m.type == LF_MSG_HEARTBEAT) {
            r.code = b->store_down_in_heartbeat ? LF_ECONN : 0;
            r.message = b->store_down_in_heartbeat ? "job store (redis) unreachable: not assigning" : "ok";
        } else if (m.type == LF_MSG_SUBMIT) {
            b->submits++;
            if (b->refuse_submits) {
                r.code = LF_ECONN;
                r.message = "job store (redis) unavailable; the job was not accepted";
            } else {
                r = (lf_msg_t){.type = LF_MSG_ACCEPTED, .req_id = m.req_id, .job_id = "job-from-b"};
            }
        } else {
            r.code = LF_EUNSUPPORTED;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(lf_msg_encode(&r, &buf, &len), 0);
        zmq_send(b->sock, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
        zmq_send(b->sock, buf, len, 0);
        free(buf);
        lf_msg_clear(&m);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

/* Serve both brokers until `until` says done or ms pass. */
static void s_run(s_broker_t *a, s_broker_t *b, int ms, bool (*until)(void *), void *arg) {
    int64_t end = s_ms() + ms;
    while (s_ms() < end && !(until && until(arg))) {
        zmq_pollitem_t it[2] = {{.socket = a->sock, .events = ZMQ_POLLIN}, {.socket = b->sock, .events = ZMQ_POLLIN}};
        zmq_poll(it, 2, 10);
        s_serve(a);
        s_serve(b);
    }
}

static bool s_all_answered(void *n) {
    return atomic_load(&g_ok) + atomic_load(&g_refused) + atomic_load(&g_other) >= *(int *)n;
}

static bool s_a_marked(void *link) {
    lf_link_broker_t bl[2];
    return lf_link_brokers(link, bl, 2) == 2 && bl[0].live && !bl[0].store_ok && bl[1].live && bl[1].store_ok;
}

static lf_msg_t s_submit_msg(lf_job_params_t *p, char *idem, int i) {
    snprintf(idem, 32, "idem-%d", i);
    *p = (lf_job_params_t){.model = "lf-diagnostic", .prompt = "x", .width = 32, .height = 32, .steps = 1,
                           .batch_size = 1, .seed = 1, .cfg_scale = 7.0};
    return (lf_msg_t){.type = LF_MSG_SUBMIT, .idem_key = idem, .params = *p};
}

static void test_submit_skips_broker_without_store(void **state) {
    (void)state;
    void *ctx = zmq_ctx_new();
    s_broker_t a = {.refuse_submits = true}, b = {0};
    s_bind(ctx, &a);
    s_bind(ctx, &b);
    char *eps[2] = {a.ep, b.ep};
    char err[256] = "";
    /* 5 s per broker before a retry: only a refusal makes the link go to B
     * quickly; the test still has no timing assertion (20 s budget). */
    lf_link_t *link = lf_link_new(eps, 2, 5000, 20000, 100, 5, NULL, err, sizeof err);
    assert_non_null(link);
    s_run(&a, &b, 500, NULL, NULL); /* both heard (heartbeats answered ok) */

    /* 1. A says its store is fine in heartbeats but refuses every SUBMIT
     *    (the moment Redis went away): each refused submit goes to B. */
    enum { N = 8 };
    lf_job_params_t p[N];
    char idem[N][32];
    for (int i = 0; i < N; i++) {
        lf_msg_t m = s_submit_msg(&p[i], idem[i], i);
        assert_int_equal(lf_link_send(link, &m, s_done, NULL), 0);
        s_run(&a, &b, 30, NULL, NULL);
    }
    int n = N;
    s_run(&a, &b, 20000, s_all_answered, &n);
    print_message("refused by A: %d submits; accepted through B: %d\n", a.submits, atomic_load(&g_ok));
    assert_int_equal(atomic_load(&g_ok), N);
    assert_int_equal(atomic_load(&g_refused), 0);
    assert_int_equal(atomic_load(&g_other), 0);
    assert_true(a.submits >= 1); /* the refusal path ran */

    /* 2. A says so in its heartbeat answers: the link reports it and sends
     *    it nothing; lf_link_live counts only B. */
    a.store_down_in_heartbeat = true;
    s_run(&a, &b, 5000, s_a_marked, link);
    assert_true(s_a_marked(link));
    assert_int_equal(lf_link_live(link, NULL), 1);
    int before = a.submits;
    atomic_store(&g_ok, 0);
    for (int i = 0; i < N; i++) {
        lf_msg_t m = s_submit_msg(&p[i], idem[i], 100 + i);
        assert_int_equal(lf_link_send(link, &m, s_done, NULL), 0);
    }
    s_run(&a, &b, 20000, s_all_answered, &n);
    assert_int_equal(atomic_load(&g_ok), N);
    assert_int_equal(a.submits, before);

    /* 3. A's store comes back: counted again. */
    a.store_down_in_heartbeat = false;
    a.refuse_submits = false;
    s_run(&a, &b, 2000, NULL, NULL);
    assert_int_equal(lf_link_live(link, NULL), 2);
    lf_link_destroy(&link);
    zmq_close(a.sock);
    zmq_close(b.sock);
    zmq_ctx_term(ctx);
}

/* With only the broker that cannot reach Redis, its refusal is the answer
 * (nothing else could take the job): the caller gets LF_ECONN, fast. */
static void test_single_broker_refusal_is_answered(void **state) {
    (void)state;
    atomic_store(&g_ok, 0), atomic_store(&g_refused, 0), atomic_store(&g_other, 0);
    void *ctx = zmq_ctx_new();
    s_broker_t a = {.refuse_submits = true}, unused = {0};
    s_bind(ctx, &a);
    s_bind(ctx, &unused);
    char *eps[1] = {a.ep};
    char err[256] = "";
    lf_link_t *link = lf_link_new(eps, 1, 5000, 20000, 100, 5, NULL, err, sizeof err);
    assert_non_null(link);
    s_run(&a, &unused, 300, NULL, NULL);
    lf_job_params_t p;
    char idem[32];
    lf_msg_t m = s_submit_msg(&p, idem, 1);
    assert_int_equal(lf_link_send(link, &m, s_done, NULL), 0);
    int n = 1;
    s_run(&a, &unused, 20000, s_all_answered, &n);
    assert_int_equal(atomic_load(&g_refused), 1);
    lf_link_destroy(&link);
    zmq_close(a.sock);
    zmq_close(unused.sock);
    zmq_ctx_term(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_submit_skips_broker_without_store),
                                       cmocka_unit_test(test_single_broker_refusal_is_answered)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
