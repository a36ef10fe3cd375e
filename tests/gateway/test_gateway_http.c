/* test_gateway_http: the real lightfarm-gateway over HTTP (libcurl) in front
 * of a real redis-server, lightfarm-broker and lightfarm-worker: submit to
 * done with an image, 4xx errors naming fields (and the gateway stays up),
 * API keys (401) and rate limits (429 + Retry-After), SSE progress and done,
 * uploads (PNG/JPEG/WebP accepted, a decompression bomb refused from its
 * header), static files with traversal refused, OpenAPI and presets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <jpeglib.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <webp/encode.h>

#include "lf_image.h"
#include "lf_testgw.h"
#include "lf_testhttp.h"
#include "lf_testproc.h"
#include "lf_testredis.h"
#include "lf_validate.h"

typedef struct {
    lf_testgw_t base;
    pid_t broker, worker, gw, gw_auth;
    int port, port_auth;
    char url[64], url_auth[64];
} s_farm_t;

static s_farm_t F;

/* ---- HTTP ---- */

/* A request with an optional Content-Type and API key (auth); ctype_out
 * (may be NULL) receives the answer's Content-Type. */
static long s_http(const char *method, const char *url, const char *ctype, const void *body, size_t len,
                   const char *auth, lf_testhttp_buf_t *out, char *ctype_out, size_t ctype_len) {
    char hdr[256];
    if (auth) snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", auth);
    lf_testhttp_opts_t o = {.content_type = ctype, .header = auth ? hdr : NULL};
    long code = lf_testhttp_request(method, url, body, len, &o, out);
    if (ctype_out) snprintf(ctype_out, ctype_len, "%s", out->content_type);
    return code;
}

/* JSON request to the main gateway; *out (may be NULL) parsed answer. */
static long s_json(const char *method, const char *path, const char *body, json_t **out) {
    return lf_testhttp_json(F.url, method, path, body, 0, out);
}

static const char *s_field(json_t *j) {
    return json_string_value(json_object_get(json_object_get(j, "error"), "field"));
}

/* ---- fixture ---- */

static int s_setup(void **state) {
    if (lf_testgw_start(&F.base) != 0) return -1;
    static char e_redis[64], e_fe[96], e_be[96], e_ev[96], e_port[64], e_port2[64], e_web[320], e_log[] = "LF_LOG_LEVEL=warn";
    snprintf(e_redis, sizeof e_redis, "LF_REDIS_PORT=%d", lf_testredis_port(F.base.redis));
    snprintf(e_fe, sizeof e_fe, "LF_BROKER_FRONTEND=%s", F.base.fe);
    snprintf(e_be, sizeof e_be, "LF_BROKER_BACKEND=%s", F.base.be);
    snprintf(e_ev, sizeof e_ev, "LF_BROKER_EVENTS=%s", F.base.ev);
    /* A web root with an index and a stylesheet. */
    char path[320];
    snprintf(path, sizeof path, "%s/web", F.base.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/web/index.html", F.base.dir);
    FILE *f = fopen(path, "w");
    fputs("<!doctype html><title>lightfarm</title>", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/web/style.css", F.base.dir);
    f = fopen(path, "w");
    fputs("body{}", f);
    fclose(f);
    snprintf(e_web, sizeof e_web, "LF_WEB_ROOT=%s/web", F.base.dir);
    char *benv[] = {e_redis, e_fe, e_be, e_ev, e_log, NULL};
    F.broker = lf_testproc_spawn(LF_BROKER_BIN, F.base.dir, "broker", benv);
    /* The second of two local workers: its threads are half the cores, on its own slice. */
    static char e_lw[] = "LF_LOCAL_WORKERS=2", e_li[] = "LF_LOCAL_INDEX=1";
    char *wenv[] = {e_be, e_log, e_lw, e_li, NULL};
    F.worker = lf_testproc_spawn(LF_WORKER_BIN, F.base.dir, "worker", wenv);
    F.port = lf_testredis_free_port();
    snprintf(e_port, sizeof e_port, "LF_HTTP_PORT=%d", F.port);
    static char e_body[] = "LF_HTTP_MAX_BODY=1048576", e_cors[] = "LF_CORS_ORIGIN=https://app.example";
    char *genv[] = {e_redis, e_fe, e_ev, e_port, e_web, e_log, e_body, e_cors, NULL};
    F.gw = lf_testproc_spawn(LF_GATEWAY_BIN, F.base.dir, "gateway", genv);
    F.port_auth = lf_testredis_free_port();
    snprintf(e_port2, sizeof e_port2, "LF_HTTP_PORT=%d", F.port_auth);
    static char e_keys[] = "LF_API_KEYS=key-one, key-two", e_rate[] = "LF_RATE_LIMIT=1", e_burst[] = "LF_RATE_BURST=3";
    char *aenv[] = {e_redis, e_fe, e_ev, e_port2, e_log, e_keys, e_rate, e_burst, NULL};
    F.gw_auth = lf_testproc_spawn(LF_GATEWAY_BIN, F.base.dir, "gateway-auth", aenv);
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d", F.port);
    snprintf(F.url_auth, sizeof F.url_auth, "http://127.0.0.1:%d", F.port_auth);
    if (!lf_testhttp_wait_health(F.url) || !lf_testhttp_wait_health(F.url_auth)) return -1;
    /* Wait for the worker to register. */
    for (int i = 0; i < 200; i++) {
        json_t *j = NULL;
        if (s_json("GET", "/v1/workers", NULL, &j) == 200 && json_integer_value(json_object_get(j, "count")) > 0) {
            json_decref(j);
            return 0;
        }
        json_decref(j);
        usleep(50000);
    }
    return -1;
}

static int s_teardown(void **state) {
    lf_testproc_stop_all(SIGTERM, &F.gw_auth, &F.gw, &F.worker, &F.broker, NULL);
    lf_testgw_stop(&F.base);
    return 0;
}

static bool s_gateway_alive(void) { return lf_testproc_alive(F.gw); }

/* Submit; returns the id (caller frees). */
static char *s_submit(int steps, int delay) {
    char body[256];
    snprintf(body, sizeof body, "{\"prompt\":\"t\",\"steps\":%d,\"step_delay_ms\":%d,\"width\":64,\"height\":64}", steps, delay);
    json_t *j = NULL;
    long code = s_json("POST", "/v1/jobs", body, &j);
    if (code != 202) fail_msg("submit answered %ld", code);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    assert_true(json_integer_value(json_object_get(j, "position")) >= 0);
    json_decref(j);
    return id;
}

static json_t *s_wait_done(const char *id) { return lf_testhttp_wait_job(F.url, id, 20000); }

/* ---- tests ---- */

static void test_submit_to_done_with_image(void **state) {
    char *id = s_submit(3, 0);
    json_t *j = s_wait_done(id);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "done");
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
    json_t *img = json_array_get(json_object_get(json_object_get(j, "result"), "images"), 0);
    assert_non_null(img);
    assert_true(json_integer_value(json_object_get(img, "seed")) >= 0);
    char url[256];
    snprintf(url, sizeof url, "%s%s", F.url, json_string_value(json_object_get(img, "url")));
    lf_testhttp_buf_t b = {0};
    char ct[128];
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, NULL, &b, ct, sizeof ct), 200);
    assert_string_equal(ct, "image/png");
    assert_true(b.len > 8 && !memcmp(b.data, "\x89PNG", 4));
    free(b.data);
    json_decref(j);
    /* It is in the history. */
    assert_int_equal(s_json("GET", "/v1/history?limit=5", NULL, &j), 200);
    assert_true(json_integer_value(json_object_get(j, "total")) >= 1);
    json_decref(j);
    free(id);
}

static void test_bad_input_is_4xx_and_gateway_stays_up(void **state) {
    static const struct {
        const char *body;
        long code;
        const char *field;
    } cases[] = {
        {"{\"steps\":", 400, ""},
        {"not json at all", 400, ""},
        {"{\"steps\":\"many\"}", 400, "steps"},
        {"{\"width\":100000}", 400, "width"},
        {"{\"width\":100}", 400, "width"},
        {"{\"batch_size\":9}", 400, "batch_size"},
        {"{\"bogus\":1}", 400, "bogus"},
        {"{\"priority\":\"now\"}", 400, "priority"},
        {"[]", 400, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = NULL;
        long code = s_json("POST", "/v1/jobs", cases[i].body, &j);
        if (code != cases[i].code) fail_msg("%s: %ld", cases[i].body, code);
        assert_non_null(json_object_get(j, "error"));
        assert_string_equal(s_field(j), cases[i].field);
        assert_non_null(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
        json_decref(j);
    }
    /* An unknown field whose name is 40 two-byte characters: the echoed
     * name is cut at a character boundary, so the answer is a 400, not the
     * canned 500 of a JSON string jansson refuses (jobs and presets). */
    char key[128] = "a";
    for (int k = 0; k < 40; k++) strcat(key, "\xc3\xa9");
    char ubody[256];
    const char *upaths[3][2] = {{"POST", "/v1/jobs"}, {"POST", "/v1/presets"}, {"PUT", "/v1/presets/utf8"}};
    for (int k = 0; k < 3; k++) {
        if (k == 2) snprintf(ubody, sizeof ubody, "{\"params\":{\"%s\":1}}", key);
        else snprintf(ubody, sizeof ubody, "{\"%s\":1}", key);
        json_t *j = NULL;
        long code = s_json(upaths[k][0], upaths[k][1], ubody, &j);
        if (code != 400) fail_msg("%s %s with a non-ASCII unknown field: %ld", upaths[k][0], upaths[k][1], code);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "unknown_field");
        json_decref(j);
    }
    /* A body over LF_HTTP_MAX_BODY (1 MiB here). */
    size_t big = 2u << 20;
    char *body = malloc(big);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    char url[128];
    snprintf(url, sizeof url, "%s/v1/jobs", F.url);
    lf_testhttp_buf_t b = {0};
    assert_int_equal(s_http("POST", url, "application/json", body, big, NULL, &b, NULL, 0), 413);
    assert_non_null(strstr(b.data ? b.data : "", "body_too_large"));
    free(b.data);
    free(body);
    /* Unknown endpoint, wrong method. */
    json_t *j = NULL;
    assert_int_equal(s_json("GET", "/v1/nothing", NULL, &j), 404);
    json_decref(j);
    assert_int_equal(s_json("PATCH", "/v1/jobs", "{}", &j), 405);
    json_decref(j);
    assert_int_equal(s_json("GET", "/v1/jobs/not-an-id", NULL, &j), 404);
    json_decref(j);
    assert_true(s_gateway_alive());
    assert_int_equal(s_json("GET", "/healthz", NULL, NULL), 200);
}

static void test_api_keys_and_rate_limit(void **state) {
    char url[128];
    snprintf(url, sizeof url, "%s/v1/models", F.url_auth);
    lf_testhttp_buf_t b = {0};
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, NULL, &b, NULL, 0), 401);
    assert_non_null(strstr(b.data, "unauthorized"));
    free(b.data);
    memset(&b, 0, sizeof b);
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, "wrong", &b, NULL, 0), 401);
    free(b.data);
    /* Health needs no key. */
    char h[128];
    snprintf(h, sizeof h, "%s/healthz", F.url_auth);
    memset(&b, 0, sizeof b);
    assert_int_equal(s_http("GET", h, NULL, NULL, 0, NULL, &b, NULL, 0), 200);
    free(b.data);
    /* 1 req/s with a burst of 3: the 4th and later in a row are refused. */
    int ok = 0, limited = 0;
    char retry[32] = "";
    for (int i = 0; i < 8; i++) {
        memset(&b, 0, sizeof b);
        long code = s_http("GET", url, NULL, NULL, 0, "key-two", &b, NULL, 0);
        if (code == 200) ok++;
        if (code == 429) {
            limited++;
            snprintf(retry, sizeof retry, "%s", b.retry_after);
            assert_non_null(strstr(b.data, "rate_limited"));
        }
        free(b.data);
    }
    assert_true(ok >= 3 && ok <= 4);
    assert_true(limited >= 4);
    assert_true(atoi(retry) >= 1);
    /* Keys have their own buckets. */
    memset(&b, 0, sizeof b);
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, "key-one", &b, NULL, 0), 200);
    free(b.data);
}

static void test_sse_sees_progress_and_done(void **state) {
    char *id = s_submit(5, 100);
    char url[256];
    snprintf(url, sizeof url, "%s/v1/jobs/%s/events", F.url, id);
    lf_testhttp_buf_t b = {.stop_at = "event: done"};
    char ct[128];
    s_http("GET", url, NULL, NULL, 0, NULL, &b, ct, sizeof ct);
    assert_non_null(b.data);
    assert_non_null(strstr(ct, "text/event-stream"));
    assert_non_null(strstr(b.data, "event: progress"));
    assert_non_null(strstr(b.data, "event: done"));
    free(b.data);
    /* A late subscriber still sees done, and the stream ends. */
    memset(&b, 0, sizeof b);
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, NULL, &b, NULL, 0), 200);
    assert_non_null(strstr(b.data, "event: done"));
    assert_non_null(strstr(b.data, "/v1/images/"));
    free(b.data);
    free(id);
}

/* Test images in the three formats. */
static uint8_t *s_png(size_t *len) {
    uint8_t px[16 * 16 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 7);
    lf_image_t img = {.pixels = px, .width = 16, .height = 16, .channels = 3};
    uint8_t *out = NULL;
    assert_int_equal(lf_image_png_encode(&img, NULL, 0, -1, &out, len, NULL, 0), 0);
    return out;
}

static uint8_t *s_jpeg(size_t *len) {
    uint8_t row[16 * 3];
    for (size_t i = 0; i < sizeof row; i++) row[i] = (uint8_t)(i * 5);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &out, &n);
    c.image_width = 16;
    c.image_height = 16;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < 16) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *len = n;
    return out;
}

static uint8_t *s_webp(size_t *len) {
    uint8_t px[16 * 16 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 3);
    uint8_t *out = NULL;
    *len = WebPEncodeRGB(px, 16, 16, 48, 80, &out);
    return out;
}

static long s_upload(const void *data, size_t len, const char *ctype, json_t **out) {
    char url[128];
    snprintf(url, sizeof url, "%s/v1/uploads", F.url);
    lf_testhttp_buf_t b = {0};
    long code = s_http("POST", url, ctype, data, len, NULL, &b, NULL, 0);
    *out = b.data ? json_loads(b.data, 0, NULL) : NULL;
    free(b.data);
    return code;
}

static void test_uploads_formats_and_bomb(void **state) {
    uint8_t *(*makers[3])(size_t *) = {s_png, s_jpeg, s_webp};
    const char *mimes[3] = {"image/png", "image/jpeg", "image/webp"};
    char png_id[64] = "";
    for (int i = 0; i < 3; i++) {
        size_t len;
        uint8_t *d = makers[i](&len);
        assert_non_null(d);
        json_t *j = NULL;
        long code = s_upload(d, len, mimes[i], &j);
        if (code != 201) fail_msg("%s upload answered %ld", mimes[i], code);
        assert_string_equal(json_string_value(json_object_get(j, "mime")), mimes[i]);
        assert_int_equal(json_integer_value(json_object_get(j, "width")), 16);
        if (i == 0) snprintf(png_id, sizeof png_id, "%s", json_string_value(json_object_get(j, "id")));
        json_decref(j);
        if (i == 2) WebPFree(d);
        else free(d);
    }
    /* A 60-byte PNG claiming 100000 x 100000: refused from the header. */
    static const uint8_t bomb[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                   0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0, 0x00, 0x00, 0x00, 0x00,
                                   0, 0, 0, 0, 'I', 'D', 'A', 'T', 0, 0, 0, 0};
    json_t *j = NULL;
    long code = s_upload(bomb, sizeof bomb, "image/png", &j);
    assert_true(code == 413 || code == 400);
    assert_string_equal(s_field(j), "file");
    json_decref(j);
    /* Not an image. */
    code = s_upload("hello world, not an image", 25, "image/png", &j);
    assert_true(code == 415 || code == 400);
    json_decref(j);
    /* img2img with the upload runs. */
    char body[256];
    snprintf(body, sizeof body, "{\"init_image\":\"%s\",\"steps\":2,\"width\":64,\"height\":64,\"denoise\":0.5}", png_id);
    assert_int_equal(s_json("POST", "/v1/jobs", body, &j), 202);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    j = s_wait_done(id);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "done");
    json_decref(j);
    free(id);
    assert_true(s_gateway_alive());
}

static void test_static_files_and_traversal(void **state) {
    char url[128], ct[128];
    lf_testhttp_buf_t b = {0};
    snprintf(url, sizeof url, "%s/", F.url);
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, NULL, &b, ct, sizeof ct), 200);
    assert_non_null(strstr(ct, "text/html"));
    assert_non_null(strstr(b.data, "lightfarm"));
    free(b.data);
    memset(&b, 0, sizeof b);
    snprintf(url, sizeof url, "%s/style.css", F.url);
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, NULL, &b, ct, sizeof ct), 200);
    assert_non_null(strstr(ct, "text/css"));
    free(b.data);
    static const char *const evil[] = {
        "GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /%2e%2e/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /%252e%252e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET //etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /style.css/../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    };
    char out[8192];
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        lf_testhttp_raw(F.port, evil[i], out, sizeof out, 3);
        if (strstr(out, "root:")) fail_msg("traversal served /etc/passwd: %s", evil[i]);
        if (!strncmp(out, "HTTP/1.1 200", 12)) fail_msg("traversal answered 200: %s", evil[i]);
    }
    lf_testhttp_raw(F.port, "\x16\x03\x01garbage\r\n\r\n", out, sizeof out, 3);
    assert_true(s_gateway_alive());
}

/* A CORS preflight from a client SDK: the browser asks for the SDK's own
 * headers (OpenAI's JS client sends x-stainless-*), and the answer must
 * allow every one of them or the browser fails the request. A request
 * header list with anything but header-name characters gets the default. */
static void test_cors_preflight(void **state) {
    char out[8192];
    lf_testhttp_raw(F.port,
                    "OPTIONS /v1/images/generations HTTP/1.1\r\nHost: x\r\n"
                    "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n"
                    "Access-Control-Request-Headers: authorization, content-type, x-stainless-os, "
                    "x-stainless-retry-count\r\nConnection: close\r\n\r\n",
                    out, sizeof out, 3);
    if (strncmp(out, "HTTP/1.1 204", 12)) fail_msg("preflight answered: %.200s", out);
    if (!strcasestr(out, "Access-Control-Allow-Origin: https://app.example")) fail_msg("no origin: %s", out);
    if (!strcasestr(out, "Access-Control-Allow-Headers: authorization, content-type, x-stainless-os, "
                         "x-stainless-retry-count"))
        fail_msg("the SDK's headers are not allowed: %s", out);
    if (!strcasestr(out, "Access-Control-Allow-Methods:") || !strcasestr(out, "POST"))
        fail_msg("no methods: %s", out);
    lf_testhttp_raw(F.port,
                    "OPTIONS /v1/jobs HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                    "Access-Control-Request-Headers: x-a\"b, x-c\r\nConnection: close\r\n\r\n",
                    out, sizeof out, 3);
    if (!strcasestr(out, "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key"))
        fail_msg("a malformed list was echoed: %s", out);
    /* Simple requests carry the origin too. */
    lf_testhttp_raw(F.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n"
                            "Connection: close\r\n\r\n", out, sizeof out, 3);
    if (!strcasestr(out, "Access-Control-Allow-Origin: https://app.example")) fail_msg("no origin: %s", out);
    assert_true(s_gateway_alive());
}

static void test_openapi_and_presets(void **state) {
    json_t *j = NULL;
    assert_int_equal(s_json("GET", "/openapi.json", NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "openapi")), "3.1.0");
    assert_non_null(json_object_get(json_object_get(j, "paths"), "/v1/jobs"));
    /* The job schema is filled in from the parameter table. */
    json_t *jr = json_object_get(json_object_get(json_object_get(json_object_get(j, "components"), "schemas"), "JobRequest"), "properties");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(jr, "steps"), "maximum")), 150);
    assert_non_null(json_object_get(jr, "priority"));
    json_decref(j);
    assert_int_equal(s_json("GET", "/v1/params", NULL, &j), 200);
    assert_true(json_array_size(json_object_get(j, "params")) > 10);
    json_decref(j);
    assert_int_equal(s_json("GET", "/v1/presets", NULL, &j), 200);
    assert_true(json_array_size(json_object_get(j, "presets")) >= 3);
    /* A built-in fixes a size only with the model it names: the size a model draws well follows its
     * training resolution (lf-tiny-shapes 256, SD1.5 512), so "portrait" gives an aspect instead. */
    size_t i;
    json_t *p;
    int saw_portrait = 0, saw_lightning = 0, saw_fewstep = 0;
    json_array_foreach(json_object_get(j, "presets"), i, p) {
        if (!json_is_true(json_object_get(p, "builtin"))) continue;
        json_t *params = json_object_get(p, "params");
        const char *name = json_string_value(json_object_get(p, "name"));
        if (!json_object_get(params, "model") && !json_object_get(p, "family")) {
            if (json_object_get(params, "width") || json_object_get(params, "height"))
                fail_msg("built-in preset %s fixes a size for whatever model is chosen", name);
        }
        if (!strcmp(name, "lightning-4step")) {
            saw_lightning = 1;
            assert_string_equal(json_string_value(json_object_get(p, "family")), "sdxl");
            assert_int_equal(json_integer_value(json_object_get(params, "steps")), 4);
            assert_string_equal(json_string_value(json_object_get(params, "scheduler")), "sgm_uniform");
        }
        /* Every built-in's settings make a valid job (hyper-1step: tcd, timesteps [800]). */
        lf_job_request_t jr_ok;
        lf_verr_t ve = {0};
        if (lf_validate_job(params, NULL, &jr_ok, &ve) != 0)
            fail_msg("built-in preset %s: %s (%s)", name, ve.message, ve.field);
        if (!strcmp(name, "hyper-1step")) {
            saw_fewstep++;
            assert_string_equal(jr_ok.params.timesteps, "800");
            assert_true(jr_ok.params.tcd_gamma == 1.0 && jr_ok.params.steps == 1);
        }
        if (!strcmp(name, "dmd2-4step")) saw_fewstep++;
        lf_job_request_clear(&jr_ok);
        if (!strcmp(name, "portrait")) {
            saw_portrait = 1;
            assert_string_equal(json_string_value(json_object_get(p, "aspect")), "2:3");
        }
    }
    assert_true(saw_portrait);
    assert_true(saw_lightning);
    assert_int_equal(saw_fewstep, 2);
    json_decref(j);
    assert_int_equal(s_json("PUT", "/v1/presets/mine", "{\"params\":{\"steps\":7,\"bogus\":1}}", &j), 400);
    assert_string_equal(s_field(j), "params.bogus");
    json_decref(j);
    assert_int_equal(s_json("PUT", "/v1/presets/mine", "{\"description\":\"d\",\"params\":{\"steps\":7}}", &j), 200);
    json_decref(j);
    assert_int_equal(s_json("POST", "/v1/presets", "{\"name\":\"mine\",\"params\":{}}", &j), 409);
    json_decref(j);
    assert_int_equal(s_json("GET", "/v1/presets/mine", NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "params"), "steps")), 7);
    json_decref(j);
    assert_int_equal(s_json("DELETE", "/v1/presets/quality", NULL, &j), 403);
    json_decref(j);
    assert_int_equal(s_json("DELETE", "/v1/presets/mine", NULL, NULL), 204);
    assert_int_equal(s_json("GET", "/v1/presets/mine", NULL, &j), 404);
    json_decref(j);
    /* Metrics mention the queue and the routes. */
    char url[128];
    snprintf(url, sizeof url, "%s/metrics", F.url);
    lf_testhttp_buf_t b = {0};
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, NULL, &b, NULL, 0), 200);
    assert_non_null(strstr(b.data, "lf_queue_depth{priority=\"high\"}"));
    assert_non_null(strstr(b.data, "lf_workers_live 1"));
    assert_non_null(strstr(b.data, "lf_http_request_duration_seconds_bucket"));
    free(b.data);
}

/* /v1/workers says the worker's compute threads (half the usable cores: it
 * is one of two local workers), pinning "slice", and the cores it runs on,
 * which are those its process is confined to. */
static void test_workers_threads(void **state) {
    (void)state;
    json_t *j = NULL;
    assert_int_equal(s_json("GET", "/v1/workers", NULL, &j), 200);
    json_t *w = json_array_get(json_object_get(j, "workers"), 0);
    assert_non_null(w);
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
    int half = CPU_COUNT(&mine) / 2 > 0 ? CPU_COUNT(&mine) / 2 : 1;
    json_int_t threads = json_integer_value(json_object_get(w, "threads"));
    assert_true(threads >= 1 && threads <= half); /* fewer where a cgroup quota caps the cores */
    assert_string_equal(json_string_value(json_object_get(w, "pinning")), "slice");
    const char *cpus = json_string_value(json_object_get(w, "cpus"));
    assert_non_null(cpus);
    char path[64], line[256], want[300];
    snprintf(path, sizeof path, "/proc/%d/status", (int)F.worker);
    snprintf(want, sizeof want, "Cpus_allowed_list:\t%s\n", cpus);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Cpus_allowed_list:", 18)) found = !strcmp(line, want);
    fclose(f);
    assert_true(found);
    json_decref(j);
}

static void test_cancel(void **state) {
    char *id = s_submit(100, 50);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *j = NULL;
    long code = s_json("DELETE", path, NULL, &j);
    assert_true(code == 200 || code == 202);
    json_decref(j);
    j = s_wait_done(id);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "cancelled");
    json_decref(j);
    assert_int_equal(s_json("DELETE", path, NULL, &j), 409);
    json_decref(j);
    free(id);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_to_done_with_image),
        cmocka_unit_test(test_bad_input_is_4xx_and_gateway_stays_up),
        cmocka_unit_test(test_api_keys_and_rate_limit),
        cmocka_unit_test(test_sse_sees_progress_and_done),
        cmocka_unit_test(test_uploads_formats_and_bomb),
        cmocka_unit_test(test_static_files_and_traversal),
        cmocka_unit_test(test_cors_preflight),
        cmocka_unit_test(test_openapi_and_presets),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_workers_threads),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("gateway_http", tests, s_setup, s_teardown);
}
