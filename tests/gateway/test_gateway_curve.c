/* test_gateway_curve: a CURVE farm end to end — real redis-server,
 * lightfarm-broker, lightfarm-worker and lightfarm-gateway processes, with
 * certificates the test makes (zcert) and a broker that allows only the
 * public keys in its clients folder.
 *
 * An allowed gateway's broker link works (the broker answers its
 * heartbeats); a worker whose key is not listed never registers (a submit
 * is told so with a 503); once an allowed worker starts a job completes, and an SSE stream shows progress
 * events, which come only through the gateway's SUB socket. A gateway whose
 * key is not listed answers a submit with a 503 JSON error within its
 * request timeout and stays up. Misconfigured CURVE settings make the
 * gateway exit 1 with a message naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lf_testgw.h"
#include "lf_testhttp.h"
#include "lf_testproc.h"
#include "lf_testredis.h"

#define S_ENV_MAX 12

typedef struct {
    lf_testgw_t base;
    char url[64], url_evil[64];
    pid_t broker, gw, gw_evil, worker_evil, worker;
} s_farm_t;

static s_farm_t F;

static pid_t s_spawn(const char *bin, const char *name, char *const env[]) {
    return lf_testproc_spawn(bin, F.base.dir, name, env);
}

/* A "K=V" string that lives as long as the test (putenv keeps the pointer). */
static char *s_env(const char *fmt, ...) {
    static char pool[64][320];
    static int n;
    assert_true(n < 64);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pool[n], sizeof pool[n], fmt, ap);
    va_end(ap);
    return pool[n++];
}

static char *s_path(const char *name) {
    char *p = malloc(512);
    snprintf(p, 512, "%s/%s", F.base.dir, name);
    return p;
}

/* ---- HTTP ---- */

static long s_json(const char *base, const char *method, const char *path, const char *body, json_t **out) {
    return lf_testhttp_json(base, method, path, body, 0, out);
}

static const char *s_status(const char *id) {
    static char st[32];
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *j = NULL;
    st[0] = 0;
    const char *v = NULL;
    if (s_json(F.url, "GET", path, NULL, &j) == 200) v = json_string_value(json_object_get(j, "status"));
    snprintf(st, sizeof st, "%s", v ? v : "");
    json_decref(j);
    return st;
}

static int s_worker_count(void) {
    json_t *j = NULL;
    int n = -1;
    if (s_json(F.url, "GET", "/v1/workers", NULL, &j) == 200) n = (int)json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    return n;
}

static char *s_submit(int steps, int delay_ms) {
    char body[256];
    snprintf(body, sizeof body, "{\"prompt\":\"t\",\"steps\":%d,\"step_delay_ms\":%d,\"width\":64,\"height\":64}",
             steps, delay_ms);
    json_t *j = NULL;
    long code = s_json(F.url, "POST", "/v1/jobs", body, &j);
    if (code != 202) fail_msg("submit through the allowed gateway answered %ld", code);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    return id;
}

/* ---- fixture ---- */

/* Make a certificate: dir/<name>.cert (public) and dir/<name>.cert_secret;
 * with allow, also its public copy in dir/clients. */
static void s_cert(const char *name, bool allow, char *pub_out, size_t len) {
    zcert_t *c = zcert_new();
    char path[512];
    snprintf(path, sizeof path, "%s/%s.cert", F.base.dir, name);
    assert_int_equal(zcert_save(c, path), 0);
    if (allow) {
        snprintf(path, sizeof path, "%s/clients/%s.cert", F.base.dir, name);
        assert_int_equal(zcert_save_public(c, path), 0);
    }
    if (pub_out) snprintf(pub_out, len, "%s", zcert_public_txt(c));
    zcert_destroy(&c);
}

static int s_setup(void **state) {
    (void)state;
    if (lf_testgw_start(&F.base) != 0) return -1;
    char clients[300];
    snprintf(clients, sizeof clients, "%s/clients", F.base.dir);
    if (zsys_dir_create("%s", clients) != 0) return -1;
    s_cert("broker", false, NULL, 0);
    s_cert("gateway", true, NULL, 0);
    s_cert("worker", true, NULL, 0);
    s_cert("evil-gateway", false, NULL, 0);
    s_cert("evil-worker", false, NULL, 0);
    /* Clients get only the broker's public certificate, as in a real farm. */
    char bpub[512];
    snprintf(bpub, sizeof bpub, "%s/broker.cert", F.base.dir);
    zcert_t *b = zcert_load(bpub);
    if (!b) return -1;
    snprintf(bpub, sizeof bpub, "%s/broker-public.cert", F.base.dir);
    if (zcert_save_public(b, bpub) != 0) return -1;
    zcert_destroy(&b);

    char *redis = s_env("LF_REDIS_PORT=%d", lf_testredis_port(F.base.redis));
    char *fe = s_env("LF_BROKER_FRONTEND=%s", F.base.fe), *be = s_env("LF_BROKER_BACKEND=%s", F.base.be),
         *ev = s_env("LF_BROKER_EVENTS=%s", F.base.ev), *log = s_env("LF_LOG_LEVEL=info");
    char *server = s_env("LF_CURVE_SERVER_CERT=%s", bpub);

    char *benv[] = {redis, fe, be, ev, log, s_env("LF_CURVE_CERT=%s/broker.cert", F.base.dir),
                    s_env("LF_CURVE_CLIENTS_DIR=%s", clients), NULL};
    F.broker = s_spawn(LF_BROKER_BIN, "broker", benv);

    int port = lf_testredis_free_port(), port_evil = lf_testredis_free_port();
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d", port);
    snprintf(F.url_evil, sizeof F.url_evil, "http://127.0.0.1:%d", port_evil);
    char *genv[] = {redis, fe, ev, log, server, s_env("LF_HTTP_PORT=%d", port),
                    s_env("LF_CURVE_CERT=%s/gateway.cert", F.base.dir), NULL};
    F.gw = s_spawn(LF_GATEWAY_BIN, "gateway", genv);
    /* The unlisted gateway gives up on the broker after 2 s. */
    char *eenv[] = {redis, fe, ev, log, server, s_env("LF_HTTP_PORT=%d", port_evil),
                    s_env("LF_CURVE_CERT=%s/evil-gateway.cert", F.base.dir), s_env("LF_REQUEST_TIMEOUT_MS=2000"), NULL};
    F.gw_evil = s_spawn(LF_GATEWAY_BIN, "gateway-evil", eenv);
    char *wenv[] = {be, log, server, s_env("LF_WORKER_ID=evil"),
                    s_env("LF_CURVE_CERT=%s/evil-worker.cert", F.base.dir), NULL};
    F.worker_evil = s_spawn(LF_WORKER_BIN, "worker-evil", wenv);
    if (!lf_testhttp_wait_health(F.url) || !lf_testhttp_wait_health(F.url_evil)) return -1;
    return 0;
}

static int s_teardown(void **state) {
    (void)state;
    int gw_rc = lf_testproc_stop_all(SIGTERM, &F.gw, &F.gw_evil, &F.worker, &F.worker_evil, &F.broker, NULL);
    lf_testgw_stop(&F.base);
    /* CURVE (czmq certificates) must not take over the gateway's SIGTERM. */
    return gw_rc == 0 ? 0 : -1;
}

/* ---- tests ---- */

/* The process log dir/<name>.log contains want. */
static void s_log_has(const char *name, const char *want) {
    char path[512], text[8192] = "";
    snprintf(path, sizeof path, "%s/%s.log", F.base.dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    if (!strstr(text, want)) fail_msg("%s: log lacks \"%s\": %s", name, want, text);
}


static void test_unlisted_worker_waits_allowed_worker_completes(void **state) {
    (void)state;
    /* Gateway -> broker works under CURVE: the broker answers the gateway's
     * heartbeats, so /readyz counts it live (and lacks only a worker). */
    json_t *r = NULL;
    long long end = lf_testproc_now_ms() + 10000;
    bool broker_live = false;
    while (lf_testproc_now_ms() < end && !broker_live) {
        json_decref(r);
        r = NULL;
        s_json(F.url, "GET", "/healthz", NULL, &r);
        broker_live = json_integer_value(json_object_get(r, "brokers")) == 1;
        if (!broker_live) usleep(50000);
    }
    assert_true(broker_live);
    json_decref(r);
    /* Only the unlisted worker runs: it never registers, so a submit is
     * told there is no worker (503) instead of waiting in the queue. */
    usleep(1500 * 1000);
    assert_int_equal(s_worker_count(), 0);
    assert_true(lf_testproc_alive(F.worker_evil));
    assert_int_equal(s_json(F.url, "POST", "/v1/jobs", "{\"prompt\":\"t\",\"steps\":3,\"width\":64,\"height\":64}", &r),
                     503);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"), "message")), "worker"));
    json_decref(r);

    char *be = s_env("LF_BROKER_BACKEND=%s", F.base.be), *log = s_env("LF_LOG_LEVEL=info");
    char *wenv[] = {be, log, s_env("LF_CURVE_SERVER_CERT=%s/broker-public.cert", F.base.dir),
                    s_env("LF_WORKER_ID=good"), s_env("LF_CURVE_CERT=%s/worker.cert", F.base.dir), NULL};
    F.worker = s_spawn(LF_WORKER_BIN, "worker", wenv);
    end = lf_testproc_now_ms() + 20000;
    while (lf_testproc_now_ms() < end && s_json(F.url, "GET", "/readyz", NULL, NULL) != 200) usleep(50000);
    char *id = s_submit(3, 0);
    while (lf_testproc_now_ms() < end && strcmp(s_status(id), "done") != 0) usleep(50000);
    assert_string_equal(s_status(id), "done");
    free(id);

    /* Progress events reach the gateway only through its CURVE SUB socket. */
    id = s_submit(8, 100);
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s/events", F.url, id);
    lf_testhttp_buf_t b = {.stop_at = "event: done"};
    lf_testhttp_request("GET", url, NULL, 0, &(lf_testhttp_opts_t){.content_type = "application/json"}, &b);
    assert_non_null(b.data);
    assert_non_null(strstr(b.data, "event: progress"));
    assert_non_null(strstr(b.data, "event: done"));
    free(b.data);
    free(id);

    /* Only the allowed worker is known (its registry entry may lag by up to a
     * heartbeat interval). */
    end = lf_testproc_now_ms() + 5000;
    while (lf_testproc_now_ms() < end && s_worker_count() < 1) usleep(50000);
    json_t *j = NULL;
    assert_int_equal(s_json(F.url, "GET", "/v1/workers", NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    json_t *w = json_array_get(json_object_get(j, "workers"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "id")), "good");
    json_decref(j);
}

static void test_unlisted_gateway_answers_503_and_stays_up(void **state) {
    (void)state;
    long long t0 = lf_testproc_now_ms();
    json_t *j = NULL;
    long code = s_json(F.url_evil, "POST", "/v1/jobs",
                       "{\"prompt\":\"t\",\"steps\":2,\"width\":64,\"height\":64}", &j);
    long long took = lf_testproc_now_ms() - t0;
    assert_true(code == 503 || code == 504);
    assert_non_null(j);
    json_t *err = json_object_get(j, "error");
    assert_non_null(json_string_value(json_object_get(err, "code")));
    assert_non_null(json_string_value(json_object_get(err, "message")));
    json_decref(j);
    assert_true(took < 6000); /* LF_REQUEST_TIMEOUT_MS=2000, not a hang */
    assert_true(lf_testproc_alive(F.gw_evil));
    assert_int_equal(s_json(F.url_evil, "GET", "/healthz", NULL, NULL), 200);
    /* The operator sees why. */
    s_log_has("gateway-evil", "refused this gateway's CURVE key");
}

/* Run the gateway with env; expect exit status 1 and `want` in its log. */
static void s_expect_refusal(const char *name, char *const env[], const char *want) {
    pid_t pid = s_spawn(LF_GATEWAY_BIN, name, env);
    int status = -1;
    long long end = lf_testproc_now_ms() + 10000;
    while (lf_testproc_now_ms() < end && waitpid(pid, &status, WNOHANG) != pid) usleep(10000);
    if (lf_testproc_now_ms() >= end) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("%s: the gateway started instead of refusing", name);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    s_log_has(name, want);
}

static void test_bad_curve_settings_refuse_to_start(void **state) {
    (void)state;
    char *fe = s_env("LF_BROKER_FRONTEND=%s", F.base.fe), *ev = s_env("LF_BROKER_EVENTS=%s", F.base.ev);
    char *port = s_env("LF_HTTP_PORT=%d", lf_testredis_free_port());
    char *server = s_env("LF_CURVE_SERVER_CERT=%s/broker-public.cert", F.base.dir);
    char *missing = s_path("no-such.cert"), *pub = s_path("clients/gateway.cert");

    /* A certificate but not the broker's: no quiet plain TCP. */
    char *e1[] = {fe, ev, port, s_env("LF_CURVE_CERT=%s/gateway.cert", F.base.dir), NULL};
    s_expect_refusal("refuse-no-server", e1, "LF_CURVE_SERVER_CERT");
    /* A missing file is named. */
    char *e2[] = {fe, ev, port, server, s_env("LF_CURVE_CERT=%s", missing), NULL};
    s_expect_refusal("refuse-missing", e2, missing);
    char *e3[] = {fe, ev, port, s_env("LF_CURVE_CERT=%s/gateway.cert", F.base.dir),
                  s_env("LF_CURVE_SERVER_CERT=%s", missing), NULL};
    s_expect_refusal("refuse-missing-server", e3, missing);
    /* A public-only copy has no secret key. */
    char *e4[] = {fe, ev, port, server, s_env("LF_CURVE_CERT=%s", pub), NULL};
    s_expect_refusal("refuse-public-only", e4, "no secret key");
    free(missing);
    free(pub);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlisted_worker_waits_allowed_worker_completes),
        cmocka_unit_test(test_unlisted_gateway_answers_503_and_stays_up),
        cmocka_unit_test(test_bad_curve_settings_refuse_to_start),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("gateway_curve", tests, s_setup, s_teardown);
}
