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

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_store.h"
#include "lf_testgw.h"
#include "lf_testhttp.h"
#include "lf_testproc.h"
#include "lf_testredis.h"

typedef struct {
    lf_testgw_t base;
    pid_t broker, worker, gw, gw_keys;
    int port, port_keys;
    char url[64], url_keys[64];
    char e_redis[64], e_fe[96], e_be[96], e_ev[96];
} s_farm_t;

static s_farm_t F;

static pid_t s_spawn(const char *bin, const char *name, char *const env[]) {
    return lf_testproc_spawn(bin, F.base.dir, name, env);
}

/* ---- HTTP ---- */

/* One request; extra_hdr may be NULL ("Name: value"). *out: parsed JSON
 * answer (may be NULL); retry (may be NULL) receives Retry-After. */
static long s_req(const char *base, const char *method, const char *path, const char *body, const char *extra_hdr,
                  json_t **out, char *retry, size_t retry_len) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    lf_testhttp_opts_t o = {.content_type = body ? "application/json" : NULL, .header = extra_hdr};
    lf_testhttp_buf_t b = {0};
    long code = lf_testhttp_request(method, url, body, body ? strlen(body) : 0, &o, &b);
    if (out) *out = b.data ? json_loads(b.data, JSON_DECODE_ANY, NULL) : NULL;
    if (retry) snprintf(retry, retry_len, "%s", b.retry_after);
    free(b.data);
    return code;
}

/* The /metrics text (caller frees). */
static char *s_metrics(void) {
    char url[128];
    snprintf(url, sizeof url, "%s/metrics", F.url);
    lf_testhttp_buf_t b = {0};
    lf_testhttp_request("GET", url, NULL, 0, NULL, &b);
    return b.data;
}

static long s_json(const char *method, const char *path, const char *body, json_t **out) {
    return lf_testhttp_json(F.url, method, path, body, JSON_DECODE_ANY, out);
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
    for (long long end = lf_testproc_now_ms() + 15000; lf_testproc_now_ms() < end; usleep(50000)) {
        json_decref(j);
        j = NULL;
        code = s_json("GET", "/readyz", NULL, &j);
        if (pred(code, j)) break;
    }
    *code_out = code;
    return j;
}

static bool s_log_has(const char *name, const char *needle) {
    return lf_testproc_log_count(F.base.dir, name, needle) > 0;
}

static const char s_job[] = "{\"prompt\":\"t\",\"steps\":2,\"width\":64,\"height\":64}";

/* With no live broker a submit fails at once: 503, naming the broker, with
 * Retry-After. */
static void s_assert_submit_needs_broker(void) {
    json_t *j = NULL;
    char retry[32] = "";
    long code = s_req(F.url, "POST", "/v1/jobs", s_job, NULL, &j, retry, sizeof retry);
    assert_int_equal(code, 503);
    assert_string_equal(s_err(j, "code"), "unavailable");
    assert_non_null(strstr(s_err(j, "message"), "broker"));
    assert_true(atoi(retry) >= 1);
    json_decref(j);
}

/* ---- fixture: redis and gateways only; the tests add the rest ---- */

static int s_setup(void **state) {
    (void)state;
    if (lf_testgw_start(&F.base) != 0) return -1;
    snprintf(F.e_redis, sizeof F.e_redis, "LF_REDIS_PORT=%d", lf_testredis_port(F.base.redis));
    snprintf(F.e_fe, sizeof F.e_fe, "LF_BROKER_FRONTEND=%s", F.base.fe);
    snprintf(F.e_be, sizeof F.e_be, "LF_BROKER_BACKEND=%s", F.base.be);
    snprintf(F.e_ev, sizeof F.e_ev, "LF_BROKER_EVENTS=%s", F.base.ev);
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
    lf_testproc_stop_all(SIGTERM, &F.gw_keys, &F.gw, &F.worker, &F.broker, NULL);
    lf_testgw_stop(&F.base);
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
    s_assert_submit_needs_broker();
    char retry[32] = "";
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
    lf_store_opts_t so = {.port = lf_testredis_port(F.base.redis)};
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
    json_t *done = lf_testhttp_wait_job(F.url, json_string_value(json_object_get(a, "id")), 20000);
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

static void test_urls_and_keys(void **state) {
    (void)state;
    char out[4096];
    lf_testhttp_raw(F.port, "GET /v1/jobs%00.png HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof out, 5);
    assert_true(!strncmp(out, "HTTP/1.1 400", 12));
    assert_non_null(strstr(out, "NUL"));
    lf_testhttp_raw(F.port, "GET /v1/jobs?x=%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof out, 5);
    assert_true(!strncmp(out, "HTTP/1.1 400", 12));
    /* A plain path still works (the refusal closes only its connection). */
    lf_testhttp_raw(F.port, "GET /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", out, sizeof out, 5);
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

/* A flood of bad requests leaves a bounded number of log lines, and a later
 * line says how many were held back. */
static void test_error_log_is_rate_limited(void **state) {
    (void)state;
    int before = lf_testproc_log_count(F.base.dir, "gateway", "http: GET /v1/flood");
    for (int i = 0; i < 400; i++) assert_int_equal(s_json("GET", "/v1/flood", NULL, NULL), 404);
    int logged = lf_testproc_log_count(F.base.dir, "gateway", "http: GET /v1/flood") - before;
    if (logged >= 400) fail_msg("all %d refusals were logged", logged);
    assert_true(logged >= 1);
    bool said = false;
    for (long long end = lf_testproc_now_ms() + 10000; !said && lf_testproc_now_ms() < end; usleep(100000)) {
        s_json("GET", "/v1/flood-after", NULL, NULL);
        said = s_log_has("gateway", "earlier lines held back");
    }
    assert_true(said);
}

static bool s_broker_gone(long code, json_t *j) { return s_no_broker(code, j); }

static void test_broker_killed(void **state) {
    (void)state;
    lf_testproc_stop(&F.broker, SIGKILL);
    long code;
    json_t *j = s_readyz_until(s_broker_gone, &code);
    assert_int_equal(code, 503);
    assert_true(s_reasons_have(j, "no live broker"));
    json_decref(j);
    assert_int_equal(s_json("GET", "/healthz", NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "brokers")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
    json_decref(j);
    s_assert_submit_needs_broker();
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
