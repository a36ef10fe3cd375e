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

#include <curl/curl.h>
#include <czmq.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lf_testredis.h"

#define S_ENV_MAX 12

typedef struct {
    lf_testredis_t *redis;
    char dir[256];
    char fe[64], be[64], ev[64];
    char url[64], url_evil[64];
    pid_t broker, gw, gw_evil, worker_evil, worker;
} s_farm_t;

static s_farm_t F;

static long long s_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fork + exec bin with env (NULL-terminated "K=V" list) added, output to
 * dir/<name>.log. */
static pid_t s_spawn(const char *bin, const char *name, char *const env[]) {
    char log[512];
    snprintf(log, sizeof log, "%s/%s.log", F.dir, name);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(log, "w");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        for (int i = 0; env[i]; i++) putenv(env[i]);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* SIGTERM, wait up to 5 s (then SIGKILL). The exit status, or -1 if killed. */
static int s_stop(pid_t *pid) {
    if (*pid <= 0) return 0;
    kill(*pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
    return -1;
}

static bool s_alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0 && waitpid(pid, NULL, WNOHANG) == 0; }

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
    snprintf(p, 512, "%s/%s", F.dir, name);
    return p;
}

/* ---- HTTP ---- */

typedef struct {
    char *data;
    size_t len;
    const char *stop_at;
} s_buf_t;

static size_t s_write(char *p, size_t sz, size_t n, void *ud) {
    s_buf_t *b = ud;
    size_t k = sz * n;
    char *nd = realloc(b->data, b->len + k + 1);
    if (!nd) return 0;
    b->data = nd;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = 0;
    if (b->stop_at && strstr(b->data, b->stop_at)) return 0; /* enough */
    return k;
}

static long s_http(const char *method, const char *url, const char *body, s_buf_t *out) {
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    CURLcode rc = curl_easy_perform(c);
    long code = -1;
    if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

static long s_json(const char *base, const char *method, const char *path, const char *body, json_t **out) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    s_buf_t b = {0};
    long code = s_http(method, url, body, &b);
    if (out) *out = b.data ? json_loads(b.data, 0, NULL) : NULL;
    free(b.data);
    return code;
}

static bool s_health(const char *base) {
    for (int i = 0; i < 300; i++) {
        if (s_json(base, "GET", "/healthz", NULL, NULL) == 200) return true;
        usleep(50000);
    }
    return false;
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
    snprintf(path, sizeof path, "%s/%s.cert", F.dir, name);
    assert_int_equal(zcert_save(c, path), 0);
    if (allow) {
        snprintf(path, sizeof path, "%s/clients/%s.cert", F.dir, name);
        assert_int_equal(zcert_save_public(c, path), 0);
    }
    if (pub_out) snprintf(pub_out, len, "%s", zcert_public_txt(c));
    zcert_destroy(&c);
}

static int s_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_ALL);
    F.redis = lf_testredis_start(NULL);
    if (!F.redis) return -1;
    snprintf(F.dir, sizeof F.dir, "%s", lf_testredis_dir(F.redis));
    char clients[300];
    snprintf(clients, sizeof clients, "%s/clients", F.dir);
    if (zsys_dir_create("%s", clients) != 0) return -1;
    s_cert("broker", false, NULL, 0);
    s_cert("gateway", true, NULL, 0);
    s_cert("worker", true, NULL, 0);
    s_cert("evil-gateway", false, NULL, 0);
    s_cert("evil-worker", false, NULL, 0);
    /* Clients get only the broker's public certificate, as in a real farm. */
    char bpub[512];
    snprintf(bpub, sizeof bpub, "%s/broker.cert", F.dir);
    zcert_t *b = zcert_load(bpub);
    if (!b) return -1;
    snprintf(bpub, sizeof bpub, "%s/broker-public.cert", F.dir);
    if (zcert_save_public(b, bpub) != 0) return -1;
    zcert_destroy(&b);

    snprintf(F.fe, sizeof F.fe, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    snprintf(F.be, sizeof F.be, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    snprintf(F.ev, sizeof F.ev, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    char *redis = s_env("LF_REDIS_PORT=%d", lf_testredis_port(F.redis));
    char *fe = s_env("LF_BROKER_FRONTEND=%s", F.fe), *be = s_env("LF_BROKER_BACKEND=%s", F.be),
         *ev = s_env("LF_BROKER_EVENTS=%s", F.ev), *log = s_env("LF_LOG_LEVEL=info");
    char *server = s_env("LF_CURVE_SERVER_CERT=%s", bpub);

    char *benv[] = {redis, fe, be, ev, log, s_env("LF_CURVE_CERT=%s/broker.cert", F.dir),
                    s_env("LF_CURVE_CLIENTS_DIR=%s", clients), NULL};
    F.broker = s_spawn(LF_BROKER_BIN, "broker", benv);

    int port = lf_testredis_free_port(), port_evil = lf_testredis_free_port();
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d", port);
    snprintf(F.url_evil, sizeof F.url_evil, "http://127.0.0.1:%d", port_evil);
    char *genv[] = {redis, fe, ev, log, server, s_env("LF_HTTP_PORT=%d", port),
                    s_env("LF_CURVE_CERT=%s/gateway.cert", F.dir), NULL};
    F.gw = s_spawn(LF_GATEWAY_BIN, "gateway", genv);
    /* The unlisted gateway gives up on the broker after 2 s. */
    char *eenv[] = {redis, fe, ev, log, server, s_env("LF_HTTP_PORT=%d", port_evil),
                    s_env("LF_CURVE_CERT=%s/evil-gateway.cert", F.dir), s_env("LF_REQUEST_TIMEOUT_MS=2000"), NULL};
    F.gw_evil = s_spawn(LF_GATEWAY_BIN, "gateway-evil", eenv);
    char *wenv[] = {be, log, server, s_env("LF_WORKER_ID=evil"),
                    s_env("LF_CURVE_CERT=%s/evil-worker.cert", F.dir), NULL};
    F.worker_evil = s_spawn(LF_WORKER_BIN, "worker-evil", wenv);
    if (!s_health(F.url) || !s_health(F.url_evil)) return -1;
    return 0;
}

static int s_teardown(void **state) {
    (void)state;
    int gw_rc = s_stop(&F.gw);
    s_stop(&F.gw_evil);
    s_stop(&F.worker);
    s_stop(&F.worker_evil);
    s_stop(&F.broker);
    if (getenv("LF_KEEP_TEST")) fprintf(stderr, "logs kept in %s\n", F.dir);
    else lf_testredis_destroy(&F.redis);
    curl_global_cleanup();
    /* CURVE (czmq certificates) must not take over the gateway's SIGTERM. */
    return gw_rc == 0 ? 0 : -1;
}

/* ---- tests ---- */

/* The process log dir/<name>.log contains want. */
static void s_log_has(const char *name, const char *want) {
    char path[512], text[8192] = "";
    snprintf(path, sizeof path, "%s/%s.log", F.dir, name);
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
    long long end = s_ms() + 10000;
    bool broker_live = false;
    while (s_ms() < end && !broker_live) {
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
    assert_true(s_alive(F.worker_evil));
    assert_int_equal(s_json(F.url, "POST", "/v1/jobs", "{\"prompt\":\"t\",\"steps\":3,\"width\":64,\"height\":64}", &r),
                     503);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"), "message")), "worker"));
    json_decref(r);

    char *be = s_env("LF_BROKER_BACKEND=%s", F.be), *log = s_env("LF_LOG_LEVEL=info");
    char *wenv[] = {be, log, s_env("LF_CURVE_SERVER_CERT=%s/broker-public.cert", F.dir),
                    s_env("LF_WORKER_ID=good"), s_env("LF_CURVE_CERT=%s/worker.cert", F.dir), NULL};
    F.worker = s_spawn(LF_WORKER_BIN, "worker", wenv);
    end = s_ms() + 20000;
    while (s_ms() < end && s_json(F.url, "GET", "/readyz", NULL, NULL) != 200) usleep(50000);
    char *id = s_submit(3, 0);
    while (s_ms() < end && strcmp(s_status(id), "done") != 0) usleep(50000);
    assert_string_equal(s_status(id), "done");
    free(id);

    /* Progress events reach the gateway only through its CURVE SUB socket. */
    id = s_submit(8, 100);
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s/events", F.url, id);
    s_buf_t b = {.stop_at = "event: done"};
    s_http("GET", url, NULL, &b);
    assert_non_null(b.data);
    assert_non_null(strstr(b.data, "event: progress"));
    assert_non_null(strstr(b.data, "event: done"));
    free(b.data);
    free(id);

    /* Only the allowed worker is known (its registry entry may lag by up to a
     * heartbeat interval). */
    end = s_ms() + 5000;
    while (s_ms() < end && s_worker_count() < 1) usleep(50000);
    json_t *j = NULL;
    assert_int_equal(s_json(F.url, "GET", "/v1/workers", NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    json_t *w = json_array_get(json_object_get(j, "workers"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "id")), "good");
    json_decref(j);
}

static void test_unlisted_gateway_answers_503_and_stays_up(void **state) {
    (void)state;
    long long t0 = s_ms();
    json_t *j = NULL;
    long code = s_json(F.url_evil, "POST", "/v1/jobs",
                       "{\"prompt\":\"t\",\"steps\":2,\"width\":64,\"height\":64}", &j);
    long long took = s_ms() - t0;
    assert_true(code == 503 || code == 504);
    assert_non_null(j);
    json_t *err = json_object_get(j, "error");
    assert_non_null(json_string_value(json_object_get(err, "code")));
    assert_non_null(json_string_value(json_object_get(err, "message")));
    json_decref(j);
    assert_true(took < 6000); /* LF_REQUEST_TIMEOUT_MS=2000, not a hang */
    assert_true(s_alive(F.gw_evil));
    assert_int_equal(s_json(F.url_evil, "GET", "/healthz", NULL, NULL), 200);
    /* The operator sees why. */
    s_log_has("gateway-evil", "refused this gateway's CURVE key");
}

/* Run the gateway with env; expect exit status 1 and `want` in its log. */
static void s_expect_refusal(const char *name, char *const env[], const char *want) {
    pid_t pid = s_spawn(LF_GATEWAY_BIN, name, env);
    int status = -1;
    long long end = s_ms() + 10000;
    while (s_ms() < end && waitpid(pid, &status, WNOHANG) != pid) usleep(10000);
    if (s_ms() >= end) {
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
    char *fe = s_env("LF_BROKER_FRONTEND=%s", F.fe), *ev = s_env("LF_BROKER_EVENTS=%s", F.ev);
    char *port = s_env("LF_HTTP_PORT=%d", lf_testredis_free_port());
    char *server = s_env("LF_CURVE_SERVER_CERT=%s/broker-public.cert", F.dir);
    char *missing = s_path("no-such.cert"), *pub = s_path("clients/gateway.cert");

    /* A certificate but not the broker's: no quiet plain TCP. */
    char *e1[] = {fe, ev, port, s_env("LF_CURVE_CERT=%s/gateway.cert", F.dir), NULL};
    s_expect_refusal("refuse-no-server", e1, "LF_CURVE_SERVER_CERT");
    /* A missing file is named. */
    char *e2[] = {fe, ev, port, server, s_env("LF_CURVE_CERT=%s", missing), NULL};
    s_expect_refusal("refuse-missing", e2, missing);
    char *e3[] = {fe, ev, port, s_env("LF_CURVE_CERT=%s/gateway.cert", F.dir),
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
