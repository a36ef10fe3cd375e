/* Integration tests of the whole farm: a real redis-server, the real broker,
 * worker and gateway binaries, driven over HTTP. Each test builds its own
 * farm on free loopback ports. Run one with `test_farm <name-substring>`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lf_testfarm.h"

static void s_sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

static const char *s_str(json_t *j, const char *key) {
    return json_string_value(json_object_get(j, key));
}

static long long s_int(json_t *j, const char *key) {
    return json_integer_value(json_object_get(j, key));
}

/* Wait until the job reaches `status` (e.g. "running"); returns its JSON. */
static json_t *s_wait_status(lf_testfarm_t *farm, const char *id, const char *status, int ms) {
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), id);
    long long end = lf_now_ms() + ms;
    while (lf_now_ms() < end) {
        json_t *j = NULL;
        if (lf_http_json("GET", url, NULL, &j) == 200 && j && s_str(j, "status") &&
            !strcmp(s_str(j, "status"), status))
            return j;
        json_decref(j);
        s_sleep_ms(20);
    }
    return NULL;
}

/* Sum of jobs_done over /v1/workers. */
static long long s_jobs_done_total(lf_testfarm_t *farm) {
    char url[256];
    snprintf(url, sizeof url, "%s/v1/workers", lf_testfarm_url(farm));
    json_t *j = NULL;
    long long total = -1;
    if (lf_http_json("GET", url, NULL, &j) == 200 && j) {
        json_t *ws = json_object_get(j, "workers");
        size_t i;
        json_t *w;
        total = 0;
        json_array_foreach(ws, i, w) total += s_int(w, "jobs_done");
    }
    json_decref(j);
    return total;
}

/* The workers' counters reach the registry with their heartbeats: poll
 * until they add up to `want` (or stop changing), then return the total. */
static long long s_settled_jobs_done(lf_testfarm_t *farm, long long want) {
    long long end = lf_now_ms() + 10000, total = -1;
    while (lf_now_ms() < end) {
        total = s_jobs_done_total(farm);
        if (total >= want) break;
        s_sleep_ms(200);
    }
    s_sleep_ms(1500); /* a count above `want` would show up by now */
    return s_jobs_done_total(farm);
}

/* Submits n diagnostic jobs and checks every one finishes done, once. */
static void s_run_many(lf_testfarm_t *farm, int n, int steps, int delay, int timeout_ms,
                       int expect_attempts) {
    char **ids = calloc((size_t)n, sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < n; i++) {
        ids[i] = lf_testfarm_submit(farm, steps, delay, i % 3 == 0 ? "high" : "normal");
        assert_non_null(ids[i]);
    }
    long long end = lf_now_ms() + timeout_ms;
    for (int i = 0; i < n; i++) {
        int left = (int)(end - lf_now_ms());
        json_t *j = lf_testfarm_wait(farm, ids[i], left > 0 ? left : 1);
        if (!j) fail_msg("job %s (%d of %d) did not finish in time", ids[i], i, n);
        if (strcmp(s_str(j, "status"), "done") != 0)
            fail_msg("job %s finished as %s", ids[i], s_str(j, "status"));
        if (expect_attempts > 0) assert_int_equal(s_int(j, "attempts"), expect_attempts);
        json_t *imgs = json_object_get(json_object_get(j, "result"), "images");
        assert_int_equal(json_array_size(imgs), 1);
        json_decref(j);
        free(ids[i]);
    }
    free(ids);
}

static void test_500_jobs_three_workers(void **state) {
    lf_testfarm_opts_t o = {.n_workers = 3};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    *state = farm;
    s_run_many(farm, 500, 1, 0, 240000, 1);
    /* Each job ran to completion exactly once: the workers' counters add up
     * to the number of jobs, no more. */
    assert_int_equal(s_settled_jobs_done(farm, 500), 500);
}

static void test_worker_kill9_job_runs_elsewhere(void **state) {
    lf_testfarm_opts_t o = {.n_workers = 2};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    *state = farm;
    char *id = lf_testfarm_submit(farm, 30, 100, "normal");
    assert_non_null(id);
    json_t *j = s_wait_status(farm, id, "running", 10000);
    assert_non_null(j);
    const char *wid = s_str(j, "worker");
    assert_non_null(wid);
    int idx = wid[2] - '0'; /* worker ids are tw<index>-<port> */
    char *first = strdup(wid);
    json_decref(j);
    s_sleep_ms(300);
    assert_int_equal(lf_testfarm_kill(farm, LF_TF_WORKER, idx, SIGKILL), 0);
    j = lf_testfarm_wait(farm, id, 60000);
    assert_non_null(j);
    assert_string_equal(s_str(j, "status"), "done");
    assert_int_equal(s_int(j, "attempts"), 2);
    assert_string_not_equal(s_str(j, "worker"), first);
    json_decref(j);
    free(first);
    free(id);
}

static void test_broker_restart_loses_nothing(void **state) {
    lf_testfarm_opts_t o = {.n_workers = 2};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    *state = farm;
    enum { N = 20 };
    char *ids[N];
    for (int i = 0; i < N; i++) assert_non_null(ids[i] = lf_testfarm_submit(farm, 5, 40, "normal"));
    s_sleep_ms(300);
    assert_int_equal(lf_testfarm_kill(farm, LF_TF_BROKER, 0, SIGKILL), 0);
    s_sleep_ms(500);
    assert_int_equal(lf_testfarm_start(farm, LF_TF_BROKER, 0), 0);
    for (int i = 0; i < N; i++) {
        json_t *j = lf_testfarm_wait(farm, ids[i], 60000);
        if (!j) fail_msg("job %s lost after a broker restart", ids[i]);
        assert_string_equal(s_str(j, "status"), "done");
        json_decref(j);
        free(ids[i]);
    }
    /* And the restarted broker takes new work. */
    s_run_many(farm, 5, 1, 0, 30000, 1);
}

static void test_redis_restart_aof_keeps_accepted_jobs(void **state) {
    lf_testfarm_opts_t o = {.n_workers = 1, .redis_aof = true};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    *state = farm;
    enum { N = 20 };
    char *ids[N];
    for (int i = 0; i < N; i++) assert_non_null(ids[i] = lf_testfarm_submit(farm, 3, 30, "low"));
    s_sleep_ms(200);
    assert_int_equal(lf_testfarm_kill(farm, LF_TF_REDIS, 0, SIGKILL), 0);
    s_sleep_ms(1000);
    assert_int_equal(lf_testfarm_start(farm, LF_TF_REDIS, 0), 0);
    for (int i = 0; i < N; i++) {
        json_t *j = lf_testfarm_wait(farm, ids[i], 60000);
        if (!j) fail_msg("accepted job %s lost after a redis restart", ids[i]);
        assert_string_equal(s_str(j, "status"), "done");
        json_decref(j);
        free(ids[i]);
    }
    s_run_many(farm, 5, 1, 0, 30000, 1);
}

static void test_cancel_queued_and_running(void **state) {
    lf_testfarm_opts_t o = {.n_workers = 1};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    *state = farm;
    char *a = lf_testfarm_submit(farm, 150, 70, "normal"); /* 10.5 s if not cancelled */
    char *b = lf_testfarm_submit(farm, 5, 10, "normal");
    assert_non_null(a);
    assert_non_null(b);
    json_t *j = s_wait_status(farm, a, "running", 10000);
    assert_non_null(j);
    json_decref(j);
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), b);
    int code = lf_http_json("DELETE", url, NULL, NULL);
    assert_true(code == 200 || code == 202);
    j = lf_testfarm_wait(farm, b, 5000);
    assert_non_null(j);
    assert_string_equal(s_str(j, "status"), "cancelled");
    json_decref(j);

    long long t0 = lf_now_ms();
    snprintf(url, sizeof url, "%s/v1/jobs/%s", lf_testfarm_url(farm), a);
    code = lf_http_json("DELETE", url, NULL, NULL);
    assert_true(code == 200 || code == 202);
    j = lf_testfarm_wait(farm, a, 8000);
    assert_non_null(j);
    assert_string_equal(s_str(j, "status"), "cancelled");
    json_decref(j);
    /* The worker stopped at its next step: it is free for new work well
     * before the cancelled job's 10 s would have ended. */
    s_run_many(farm, 1, 1, 0, 5000, 1);
    assert_true(lf_now_ms() - t0 < 9000);
    /* Cancelling a finished job is refused, not a crash. */
    code = lf_http_json("DELETE", url, NULL, NULL);
    assert_true(code == 409 || code == 200);
    free(a);
    free(b);
}

static void test_two_brokers_never_assign_twice(void **state) {
    lf_testfarm_opts_t o = {.n_workers = 3, .n_brokers = 2};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    *state = farm;
    s_run_many(farm, 200, 1, 0, 120000, 1);
    assert_int_equal(s_settled_jobs_done(farm, 200), 200);
    /* Hot standby: with broker 0 gone, broker 1 carries the farm. */
    assert_int_equal(lf_testfarm_kill(farm, LF_TF_BROKER, 0, SIGKILL), 0);
    s_sleep_ms(500);
    s_run_many(farm, 10, 1, 0, 60000, 1);
}

/* Raw bytes to a TCP port; returns what came back (up to cap-1 bytes). */
static void s_raw_tcp(int port, const char *data, size_t len, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    out[0] = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        if (write(fd, data, len) == (ssize_t)len) {
            ssize_t r = read(fd, out, cap - 1);
            out[r > 0 ? r : 0] = 0;
        }
    }
    close(fd);
}

static void test_malformed_input_keeps_services_up(void **state) {
    lf_testfarm_opts_t o = {.n_workers = 1};
    lf_testfarm_t *farm = lf_testfarm_new(&o);
    assert_non_null(farm);
    *state = farm;
    char out[4096];
    /* Garbage HTTP. */
    static const char junk[] = "\x16\x03\x01\x02\x00garbage\r\n\r\n";
    s_raw_tcp(lf_testfarm_http_port(farm), junk, sizeof junk - 1, out, sizeof out);
    static const char trav[] = "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n";
    s_raw_tcp(lf_testfarm_http_port(farm), trav, sizeof trav - 1, out, sizeof out);
    assert_null(strstr(out, "root:"));
    /* Bad JSON and bad fields: 4xx with an error naming the field. */
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs", lf_testfarm_url(farm));
    json_t *j = NULL;
    int code = lf_http_json("POST", url, "{\"model\":\"lf-diagnostic\",\"steps\":", &j);
    assert_int_equal(code, 400);
    assert_non_null(json_object_get(j, "error"));
    json_decref(j);
    code = lf_http_json("POST", url, "{\"model\":\"lf-diagnostic\",\"steps\":\"many\"}", &j);
    assert_int_equal(code, 400);
    assert_string_equal(s_str(json_object_get(j, "error"), "field"), "steps");
    json_decref(j);
    code = lf_http_json("POST", url, "{\"model\":\"lf-diagnostic\",\"width\":100000}", &j);
    assert_int_equal(code, 400);
    assert_string_equal(s_str(json_object_get(j, "error"), "field"), "width");
    json_decref(j);
    /* A model no live worker serves: refused at once, not queued forever. */
    code = lf_http_json("POST", url, "{\"model\":\"no-such-model\",\"steps\":2}", &j);
    assert_int_equal(code, 400);
    assert_string_equal(s_str(json_object_get(j, "error"), "field"), "model");
    json_decref(j);
    code = lf_http_json("POST", url, "{\"model\":\"lf-diagnostic\",\"bogus\":1}", &j);
    assert_int_equal(code, 400);
    assert_string_equal(s_str(json_object_get(j, "error"), "field"), "bogus");
    json_decref(j);
    /* No half-created job: the queue and history are still empty. */
    snprintf(url, sizeof url, "%s/v1/history", lf_testfarm_url(farm));
    assert_int_equal(lf_http_json("GET", url, NULL, &j), 200);
    assert_int_equal(s_int(j, "total"), 0);
    json_decref(j);

    /* Garbage msgpack to both broker sockets and random bytes to a worker-facing port. */
    zsock_t *fe = zsock_new_dealer(lf_testfarm_frontend(farm, 0));
    zsock_t *be = zsock_new_dealer(lf_testfarm_backend(farm, 0));
    assert_non_null(fe);
    assert_non_null(be);
    static const unsigned char bad[][8] = {
        {0xc1}, {0x81, 0xa1, 'v'}, {0x82, 0xa1, 'v', 0x01, 0xa1, 't', 0xa3, 'x'}, {0xdf, 0xff, 0xff, 0xff, 0xff}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zframe_t *f = zframe_new(bad[i], sizeof bad[i]);
        zframe_send(&f, fe, 0);
        f = zframe_new(bad[i], sizeof bad[i]);
        zframe_send(&f, be, 0);
    }
    zstr_send(fe, "not msgpack at all");
    zstr_send(be, "not msgpack at all");
    s_sleep_ms(300);
    zsock_destroy(&fe);
    zsock_destroy(&be);

    assert_true(lf_testfarm_alive(farm, LF_TF_REDIS, 0));
    assert_true(lf_testfarm_alive(farm, LF_TF_BROKER, 0));
    assert_true(lf_testfarm_alive(farm, LF_TF_WORKER, 0));
    assert_true(lf_testfarm_alive(farm, LF_TF_GATEWAY, 0));
    s_run_many(farm, 3, 2, 0, 20000, 1);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_malformed_input_keeps_services_up, lf_testfarm_teardown),
        cmocka_unit_test_teardown(test_cancel_queued_and_running, lf_testfarm_teardown),
        cmocka_unit_test_teardown(test_worker_kill9_job_runs_elsewhere, lf_testfarm_teardown),
        cmocka_unit_test_teardown(test_broker_restart_loses_nothing, lf_testfarm_teardown),
        cmocka_unit_test_teardown(test_redis_restart_aof_keeps_accepted_jobs, lf_testfarm_teardown),
        cmocka_unit_test_teardown(test_two_brokers_never_assign_twice, lf_testfarm_teardown),
        cmocka_unit_test_teardown(test_500_jobs_three_workers, lf_testfarm_teardown),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("farm", tests, NULL, NULL);
}
