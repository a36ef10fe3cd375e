/* test_gateway_ready: the real gateway while the farm comes up piece by
 * piece and loses its broker — honest /healthz and /readyz, 503 with
 * Retry-After (not a guess at the model, not a 10 s wait) while no broker is
 * live or no worker has registered; then, with a worker: unknown models and
 * jobs no worker can run are refused naming the field, idempotency keys
 * (409 on reuse with another body, the job's real status and seed on a
 * retry, header and body must agree), A1111 checkpoints, the A1111 routes
 * clients call, ?api_key= only on event streams, %00 in a URL, and the
 * one-line logs of 4xx/5xx answers.
 *
 * The gateway runs with LF_REQUEST_TIMEOUT_MS=60000 and requests give up
 * after 20 s, so a submit that waits for a dead broker instead of failing
 * fast shows up as a failed request, with no timing assertion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lf_store.h"
#include "lf_testredis.h"

typedef struct {
    lf_testredis_t *redis;
    pid_t broker, worker, gw, gw_keys;
    int port, port_keys;
    char url[64], url_keys[64];
    char dir[128];
    char e_redis[64], e_fe[96], e_be[96], e_ev[96];
} s_farm_t;

static s_farm_t F;

static long long s_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pid_t s_spawn(const char *bin, const char *name, char *const env[]) {
    char log[256];
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

static void s_stop(pid_t *pid, int sig) {
    if (*pid <= 0) return;
    kill(*pid, sig);
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        usleep(10000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

/* ---- HTTP ---- */

typedef struct {
    char *data;
    size_t len;
    char retry_after[32];
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
    return k;
}

static size_t s_header(char *p, size_t sz, size_t n, void *ud) {
    s_buf_t *b = ud;
    if (!strncasecmp(p, "Retry-After:", 12))
        snprintf(b->retry_after, sizeof b->retry_after, "%.*s", (int)(sz * n - 12), p + 12);
    return sz * n;
}

/* One request; extra_hdr may be NULL ("Name: value"). *out: parsed JSON
 * answer (may be NULL); retry (may be NULL) receives Retry-After. */
static long s_req(const char *base, const char *method, const char *path, const char *body, const char *extra_hdr,
                  json_t **out, char *retry, size_t retry_len) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (body) h = curl_slist_append(h, "Content-Type: application/json");
    if (extra_hdr) h = curl_slist_append(h, extra_hdr);
    h = curl_slist_append(h, "Expect:");
    s_buf_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &b);
    long code = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (out) *out = b.data ? json_loads(b.data, JSON_DECODE_ANY, NULL) : NULL;
    if (retry) snprintf(retry, retry_len, "%s", b.retry_after);
    free(b.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

/* The /metrics text (caller frees). */
static char *s_metrics(void) {
    char url[128];
    snprintf(url, sizeof url, "%s/metrics", F.url);
    CURL *c = curl_easy_init();
    s_buf_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    return b.data;
}

static long s_json(const char *method, const char *path, const char *body, json_t **out) {
    return s_req(F.url, method, path, body, NULL, out, NULL, 0);
}

static const char *s_err(json_t *j, const char *what) {
    const char *v = json_string_value(json_object_get(json_object_get(j, "error"), what));
    return v ? v : "";
}

static bool s_reasons_have(json_t *j, const char *reason) {
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "reasons"), i, r) if (!strcmp(json_string_value(r), reason)) return true;
    return false;
}

/* Poll /readyz until pred holds (or 15 s); returns the last answer. */
static json_t *s_readyz_until(bool (*pred)(long code, json_t *j), long *code_out) {
    json_t *j = NULL;
    long code = -1;
    for (long long end = s_ms() + 15000; s_ms() < end; usleep(50000)) {
        json_decref(j);
        j = NULL;
        code = s_json("GET", "/readyz", NULL, &j);
        if (pred(code, j)) break;
    }
    *code_out = code;
    return j;
}

static bool s_log_has(const char *name, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s.log", F.dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static const char s_job[] = "{\"prompt\":\"t\",\"steps\":2,\"width\":64,\"height\":64}";

/* ---- fixture: redis and gateways only; the tests add the rest ---- */

static int s_setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_ALL);
    F.redis = lf_testredis_start(NULL);
    if (!F.redis) return -1;
    snprintf(F.dir, sizeof F.dir, "%s", lf_testredis_dir(F.redis));
    int p = lf_testredis_free_port(), q = lf_testredis_free_port(), r = lf_testredis_free_port();
    snprintf(F.e_redis, sizeof F.e_redis, "LF_REDIS_PORT=%d", lf_testredis_port(F.redis));
    snprintf(F.e_fe, sizeof F.e_fe, "LF_BROKER_FRONTEND=tcp://127.0.0.1:%d", p);
    snprintf(F.e_be, sizeof F.e_be, "LF_BROKER_BACKEND=tcp://127.0.0.1:%d", q);
    snprintf(F.e_ev, sizeof F.e_ev, "LF_BROKER_EVENTS=tcp://127.0.0.1:%d", r);
    static char e_port[64], e_port2[64], e_info[] = "LF_LOG_LEVEL=info", e_warn[] = "LF_LOG_LEVEL=warn",
                e_timeout[] = "LF_REQUEST_TIMEOUT_MS=60000", e_keys[] = "LF_API_KEYS=sekrit";
    F.port = lf_testredis_free_port();
    F.port_keys = lf_testredis_free_port();
    snprintf(e_port, sizeof e_port, "LF_HTTP_PORT=%d", F.port);
    snprintf(e_port2, sizeof e_port2, "LF_HTTP_PORT=%d", F.port_keys);
    char *genv[] = {F.e_redis, F.e_fe, F.e_ev, e_port, e_info, e_timeout, NULL};
    F.gw = s_spawn(LF_GATEWAY_BIN, "gateway", genv);
    char *kenv[] = {F.e_redis, F.e_fe, F.e_ev, e_port2, e_warn, e_keys, NULL};
    F.gw_keys = s_spawn(LF_GATEWAY_BIN, "gateway-keys", kenv);
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d", F.port);
    snprintf(F.url_keys, sizeof F.url_keys, "http://127.0.0.1:%d", F.port_keys);
    /* /healthz answers 200 while Redis does, broker or not. */
    for (int i = 0; i < 300; i++) {
        if (s_json("GET", "/healthz", NULL, NULL) == 200 && s_req(F.url_keys, "GET", "/healthz", NULL, NULL, NULL, NULL, 0) == 200)
            return 0;
        usleep(50000);
    }
    return -1;
}

static int s_teardown(void **state) {
    (void)state;
    s_stop(&F.gw_keys, SIGTERM);
    s_stop(&F.gw, SIGTERM);
    s_stop(&F.worker, SIGTERM);
    s_stop(&F.broker, SIGTERM);
    if (getenv("LF_KEEP_TEST")) fprintf(stderr, "logs kept in %s\n", F.dir);
    else lf_testredis_destroy(&F.redis);
    curl_global_cleanup();
    return 0;
}

static void s_start_broker(void) {
    static char e_log[] = "LF_LOG_LEVEL=warn";
    char *benv[] = {F.e_redis, F.e_fe, F.e_be, F.e_ev, e_log, NULL};
    F.broker = s_spawn(LF_BROKER_BIN, "broker", benv);
}

/* ---- predicates for s_readyz_until ---- */

static bool s_no_broker(long code, json_t *j) { return code == 503 && s_reasons_have(j, "no live broker"); }
static bool s_broker_only(long code, json_t *j) {
    return code == 503 && !s_reasons_have(j, "no live broker") && s_reasons_have(j, "no worker has registered");
}
static bool s_ready(long code, json_t *j) { return code == 200 && json_is_true(json_object_get(j, "ready")); }

/* ---- tests, in order: the farm grows, then loses its broker ---- */

static void test_nothing_but_redis(void **state) {
    (void)state;
    long code;
    json_t *j = s_readyz_until(s_no_broker, &code);
    assert_int_equal(code, 503);
    assert_false(json_is_true(json_object_get(j, "ready")));
    assert_true(s_reasons_have(j, "no live broker"));
    assert_true(s_reasons_have(j, "no worker has registered"));
    json_decref(j);
    /* Health counts live brokers, not configured ones. */
    assert_int_equal(s_json("GET", "/healthz", NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "brokers")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "brokers_configured")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
    json_decref(j);
    /* A submit fails at once with 503 and Retry-After. */
    char retry[32] = "";
    code = s_req(F.url, "POST", "/v1/jobs", s_job, NULL, &j, retry, sizeof retry);
    assert_int_equal(code, 503);
    assert_string_equal(s_err(j, "code"), "unavailable");
    assert_non_null(strstr(s_err(j, "message"), "broker"));
    assert_true(atoi(retry) >= 1);
    json_decref(j);
    code = s_req(F.url, "POST", "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"steps\":1,\"width\":64,\"height\":64}", NULL,
                 &j, retry, sizeof retry);
    assert_int_equal(code, 503);
    assert_string_equal(s_err(j, "code"), "unavailable");
    json_decref(j);
}

static void test_broker_but_no_worker(void **state) {
    (void)state;
    s_start_broker();
    long code;
    json_t *j = s_readyz_until(s_broker_only, &code);
    if (!s_broker_only(code, j)) fail_msg("readyz never saw the broker alone (%ld)", code);
    json_decref(j);
    assert_int_equal(s_json("GET", "/healthz", NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "brokers")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 0);
    json_decref(j);
    /* No worker has advertised: no guessing the diagnostic model, no 202. */
    char retry[32] = "";
    static const char *const bodies[] = {s_job, "{\"model\":\"nope\",\"steps\":2,\"width\":64,\"height\":64}"};
    for (size_t i = 0; i < 2; i++) {
        code = s_req(F.url, "POST", "/v1/jobs", bodies[i], NULL, &j, retry, sizeof retry);
        if (code != 503) fail_msg("%s: %ld", bodies[i], code);
        assert_string_equal(s_err(j, "code"), "unavailable");
        assert_non_null(strstr(s_err(j, "message"), "worker"));
        assert_true(atoi(retry) >= 1);
        json_decref(j);
    }
    code = s_req(F.url, "POST", "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"steps\":1,\"width\":64,\"height\":64}", NULL,
                 &j, retry, sizeof retry);
    assert_int_equal(code, 503);
    assert_true(atoi(retry) >= 1);
    json_decref(j);
    assert_int_equal(s_json("POST", "/sdapi/v1/options", "{\"sd_model_checkpoint\":\"nope\"}", &j), 503);
    json_decref(j);
    /* No checkpoint is offered that nothing can run. */
    assert_int_equal(s_json("GET", "/sdapi/v1/sd-models", NULL, &j), 200);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
}

static void test_ready_with_a_worker(void **state) {
    (void)state;
    static char e_log[] = "LF_LOG_LEVEL=warn";
    char *wenv[] = {F.e_be, e_log, NULL};
    F.worker = s_spawn(LF_WORKER_BIN, "worker", wenv);
    long code;
    json_t *j = s_readyz_until(s_ready, &code);
    assert_int_equal(code, 200);
    assert_true(json_is_true(json_object_get(j, "ready")));
    assert_int_equal(json_integer_value(json_object_get(j, "brokers")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 1);
    bool diag = false;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(j, "models"), i, m) diag |= !strcmp(json_string_value(m), "lf-diagnostic");
    assert_true(diag);
    json_decref(j);
    assert_int_equal(s_json("GET", "/healthz", NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    /* An unknown model is a 400 naming the field, not a job that waits forever. */
    assert_int_equal(s_json("POST", "/v1/jobs", "{\"model\":\"nope\",\"steps\":2,\"width\":64,\"height\":64}", &j), 400);
    assert_string_equal(s_err(j, "code"), "unknown_model");
    assert_string_equal(s_err(j, "field"), "model");
    json_decref(j);
    /* 2048x2048 x 8 is over every worker's max_pixels (LF_MAX_PIXELS, 4194304). */
    assert_int_equal(s_json("POST", "/v1/jobs", "{\"steps\":1,\"width\":2048,\"height\":2048,\"batch_size\":8}", &j), 400);
    assert_string_equal(s_err(j, "field"), "batch_size");
    assert_non_null(strstr(s_err(j, "message"), "4194304"));
    json_decref(j);
    assert_int_equal(s_json("POST", "/sdapi/v1/txt2img",
                            "{\"prompt\":\"x\",\"steps\":1,\"width\":2048,\"height\":2048,\"batch_size\":4,\"n_iter\":2}", &j),
                     400);
    assert_string_equal(s_err(j, "field"), "batch_size");
    json_decref(j);
}

static void test_a1111_checkpoints(void **state) {
    (void)state;
    json_t *j = NULL;
    /* As A1111: an unknown checkpoint is refused, and not stored. */
    assert_int_equal(s_json("POST", "/sdapi/v1/options", "{\"sd_model_checkpoint\":\"nope\"}", &j), 400);
    assert_string_equal(s_err(j, "code"), "unknown_model");
    assert_string_equal(s_err(j, "field"), "sd_model_checkpoint");
    json_decref(j);
    assert_int_equal(s_json("GET", "/sdapi/v1/options", NULL, &j), 200);
    assert_string_not_equal(json_string_value(json_object_get(j, "sd_model_checkpoint")), "nope");
    json_decref(j);
    assert_int_equal(s_json("POST", "/sdapi/v1/options", "{\"sd_model_checkpoint\":\"lf-diagnostic [abc123]\"}", &j), 200);
    json_decref(j);
    assert_int_equal(s_json("POST", "/sdapi/v1/txt2img",
                            "{\"prompt\":\"x\",\"steps\":1,\"width\":64,\"height\":64,"
                            "\"override_settings\":{\"sd_model_checkpoint\":\"nope\"}}",
                            &j),
                     400);
    assert_string_equal(s_err(j, "field"), "override_settings.sd_model_checkpoint");
    json_decref(j);
    /* A stored option whose model is gone (stored before this check, or its
     * worker left): the default model runs, and the log says so. */
    lf_store_opts_t so = {.port = lf_testredis_port(F.redis)};
    char err[128];
    lf_store_t *st = lf_store_new(&so, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(lf_store_option_set(st, "sd_model_checkpoint", "\"gone-model\""), 0);
    lf_store_destroy(&st);
    assert_int_equal(s_json("POST", "/sdapi/v1/txt2img", "{\"prompt\":\"x\",\"steps\":1,\"width\":64,\"height\":64}", &j), 200);
    json_t *info = json_loads(json_string_value(json_object_get(j, "info")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(info, "sd_model_name")), "lf-diagnostic");
    json_decref(info);
    json_decref(j);
    assert_true(s_log_has("gateway", "gone-model"));
}

static json_t *s_wait_done(const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (long long end = s_ms() + 20000; s_ms() < end; usleep(20000)) {
        json_t *j = NULL;
        if (s_json("GET", path, NULL, &j) == 200) {
            const char *st = json_string_value(json_object_get(j, "status"));
            if (st && (!strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))) return j;
        }
        json_decref(j);
    }
    return NULL;
}

static void test_idempotency(void **state) {
    (void)state;
    json_t *a = NULL, *b = NULL;
    const char *body = "{\"prompt\":\"same\",\"steps\":2,\"width\":64,\"height\":64,\"idempotency_key\":\"idem-1\"}";
    assert_int_equal(s_json("POST", "/v1/jobs", body, &a), 202);
    /* The same request again: the same job, with its seed (drawn once). */
    assert_int_equal(s_json("POST", "/v1/jobs", body, &b), 202);
    assert_true(json_is_true(json_object_get(b, "duplicate")));
    assert_string_equal(json_string_value(json_object_get(a, "id")), json_string_value(json_object_get(b, "id")));
    assert_int_equal(json_integer_value(json_object_get(a, "seed")), json_integer_value(json_object_get(b, "seed")));
    json_decref(b);
    /* The key with another body: 409, as Stripe does. */
    assert_int_equal(s_json("POST", "/v1/jobs",
                            "{\"prompt\":\"other\",\"steps\":2,\"width\":64,\"height\":64,\"idempotency_key\":\"idem-1\"}", &b),
                     409);
    assert_string_equal(s_err(b, "code"), "conflict");
    assert_string_equal(s_err(b, "field"), "idempotency_key");
    json_decref(b);
    /* After the job finished a retry reports it as it is. */
    json_t *done = s_wait_done(json_string_value(json_object_get(a, "id")));
    assert_non_null(done);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "done");
    json_decref(done);
    assert_int_equal(s_json("POST", "/v1/jobs", body, &b), 202);
    assert_string_equal(json_string_value(json_object_get(b, "status")), "done");
    assert_true(json_is_null(json_object_get(b, "position")));
    json_decref(b);
    json_decref(a);
    /* Header and body: only when they agree. */
    assert_int_equal(s_req(F.url, "POST", "/v1/jobs", body, "Idempotency-Key: idem-2", &b, NULL, 0), 400);
    assert_string_equal(s_err(b, "field"), "idempotency_key");
    json_decref(b);
    assert_int_equal(s_req(F.url, "POST", "/v1/jobs", body, "Idempotency-Key: idem-1", &b, NULL, 0), 202);
    assert_true(json_is_true(json_object_get(b, "duplicate")));
    json_decref(b);
    assert_int_equal(s_req(F.url, "POST", "/v1/jobs", s_job, "Idempotency-Key: idem-3", &a, NULL, 0), 202);
    assert_int_equal(s_req(F.url, "POST", "/v1/jobs", s_job, "Idempotency-Key: idem-3", &b, NULL, 0), 202);
    assert_true(json_is_true(json_object_get(b, "duplicate")));
    assert_int_equal(json_integer_value(json_object_get(a, "seed")), json_integer_value(json_object_get(b, "seed")));
    json_decref(a);
    json_decref(b);
    /* Each refusal left one log line. */
    assert_true(s_log_has("gateway", "http: POST /v1/jobs 409 conflict"));
}

/* The raw bytes of an answer to req (for paths curl would not send). */
static void s_raw(const char *req, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)F.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    out[0] = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
        size_t n = 0;
        ssize_t r;
        while (n + 1 < cap && (r = read(fd, out + n, cap - 1 - n)) > 0) n += (size_t)r;
        out[n] = 0;
    }
    close(fd);
}

static void test_urls_and_keys(void **state) {
    (void)state;
    char out[4096];
    s_raw("GET /v1/jobs%00.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof out);
    assert_true(!strncmp(out, "HTTP/1.1 400", 12));
    assert_non_null(strstr(out, "NUL"));
    s_raw("GET /v1/jobs?x=%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof out);
    assert_true(!strncmp(out, "HTTP/1.1 400", 12));
    /* A plain path still works (the refusal closes only its connection). */
    s_raw("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof out);
    assert_true(!strncmp(out, "HTTP/1.1 200", 12));
    /* ?api_key= opens event streams only. */
    assert_int_equal(s_req(F.url_keys, "GET", "/v1/models?api_key=sekrit", NULL, NULL, NULL, NULL, 0), 401);
    assert_int_equal(s_req(F.url_keys, "GET", "/v1/models", NULL, "Authorization: Bearer sekrit", NULL, NULL, 0), 200);
    long code = s_req(F.url_keys, "GET", "/v1/jobs/0190a1b2c3d4000123456789abcdefff/events?api_key=sekrit", NULL, NULL,
                      NULL, NULL, 0);
    assert_int_equal(code, 404); /* past the key check: no such job */
}

static void test_a1111_surface(void **state) {
    (void)state;
    json_t *j = NULL;
    assert_int_equal(s_json("GET", "/sdapi/v1/memory", NULL, &j), 200);
    json_t *ram = json_object_get(j, "ram");
    assert_true(json_number_value(json_object_get(ram, "total")) > json_number_value(json_object_get(ram, "used")));
    assert_true(json_number_value(json_object_get(ram, "used")) > 0);
    assert_non_null(json_object_get(json_object_get(j, "cuda"), "error"));
    json_decref(j);
    assert_int_equal(s_json("GET", "/sdapi/v1/cmd-flags", NULL, &j), 200);
    assert_true(json_is_object(j) && json_is_true(json_object_get(j, "api")));
    json_decref(j);
    assert_int_equal(s_json("GET", "/sdapi/v1/embeddings", NULL, &j), 200);
    assert_true(json_is_object(json_object_get(j, "loaded")) && json_is_object(json_object_get(j, "skipped")));
    json_decref(j);
    assert_int_equal(s_json("GET", "/sdapi/v1/scripts", NULL, &j), 200);
    assert_true(json_is_array(json_object_get(j, "txt2img")) && json_is_array(json_object_get(j, "img2img")));
    json_decref(j);
    static const char *const lists[] = {"/sdapi/v1/face-restorers", "/sdapi/v1/realesrgan-models", "/sdapi/v1/prompt-styles",
                                        "/sdapi/v1/script-info", "/sdapi/v1/extensions"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        assert_int_equal(s_json("GET", lists[i], NULL, &j), 200);
        assert_true(json_is_array(j));
        json_decref(j);
    }
    static const char *const nulls[] = {"/sdapi/v1/refresh-checkpoints", "/sdapi/v1/refresh-loras"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(s_json("POST", nulls[i], NULL, &j), 200);
        assert_true(json_is_null(j));
        json_decref(j);
    }
    assert_int_equal(s_json("POST", "/sdapi/v1/skip", NULL, &j), 200);
    json_decref(j);
    assert_int_equal(s_json("POST", "/sdapi/v1/interrogate", "{\"image\":\"\",\"model\":\"clip\"}", &j), 501);
    assert_string_equal(s_err(j, "code"), "not_implemented");
    json_decref(j);
}

static int s_log_count(const char *name, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s.log", F.dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* A flood of bad requests leaves a bounded number of log lines, and a later
 * line says how many were held back. */
static void test_error_log_is_rate_limited(void **state) {
    (void)state;
    int before = s_log_count("gateway", "http: GET /v1/flood");
    for (int i = 0; i < 400; i++) assert_int_equal(s_json("GET", "/v1/flood", NULL, NULL), 404);
    int logged = s_log_count("gateway", "http: GET /v1/flood") - before;
    if (logged >= 400) fail_msg("all %d refusals were logged", logged);
    assert_true(logged >= 1);
    bool said = false;
    for (long long end = s_ms() + 10000; !said && s_ms() < end; usleep(100000)) {
        s_json("GET", "/v1/flood-after", NULL, NULL);
        said = s_log_has("gateway", "earlier lines held back");
    }
    assert_true(said);
}

static bool s_broker_gone(long code, json_t *j) { return s_no_broker(code, j); }

static void test_broker_killed(void **state) {
    (void)state;
    s_stop(&F.broker, SIGKILL);
    long code;
    json_t *j = s_readyz_until(s_broker_gone, &code);
    assert_int_equal(code, 503);
    assert_true(s_reasons_have(j, "no live broker"));
    json_decref(j);
    assert_int_equal(s_json("GET", "/healthz", NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "brokers")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
    json_decref(j);
    char retry[32] = "";
    code = s_req(F.url, "POST", "/v1/jobs", s_job, NULL, &j, retry, sizeof retry);
    assert_int_equal(code, 503);
    assert_string_equal(s_err(j, "code"), "unavailable");
    assert_non_null(strstr(s_err(j, "message"), "broker"));
    assert_true(atoi(retry) >= 1);
    json_decref(j);
    assert_true(s_log_has("gateway", "http: POST /v1/jobs 503 unavailable"));
    char *m = s_metrics();
    assert_non_null(m);
    assert_non_null(strstr(m, "lf_gateway_brokers_live 0\n"));
    assert_non_null(strstr(m, "lf_gateway_brokers_configured 1\n"));
    free(m);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_but_redis),   cmocka_unit_test(test_broker_but_no_worker),
        cmocka_unit_test(test_ready_with_a_worker), cmocka_unit_test(test_a1111_checkpoints),
        cmocka_unit_test(test_idempotency),         cmocka_unit_test(test_urls_and_keys),
        cmocka_unit_test(test_a1111_surface),       cmocka_unit_test(test_error_log_is_rate_limited),
        cmocka_unit_test(test_broker_killed),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("gateway_ready", tests, s_setup, s_teardown);
}
