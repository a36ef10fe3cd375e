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

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <jpeglib.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <webp/encode.h>

#include "lf_image.h"
#include "lf_testredis.h"

typedef struct {
    lf_testredis_t *redis;
    pid_t broker, worker, gw, gw_auth;
    int port, port_auth;
    char url[64], url_auth[64];
    char dir[64];
    char fe[64], be[64], ev[64];
} s_farm_t;

static s_farm_t F;

static long long s_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pid_t s_spawn(const char *bin, const char *log, char *const env[]) {
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

static void s_stop(pid_t *pid) {
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
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
    const char *stop_at; /* SSE: stop reading once this appears */
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

static size_t s_header(char *p, size_t sz, size_t n, void *ud) {
    s_buf_t *b = ud;
    if (!strncasecmp(p, "Retry-After:", 12)) snprintf(b->retry_after, sizeof b->retry_after, "%.*s", (int)(sz * n - 12), p + 12);
    return sz * n;
}

static long s_http(const char *method, const char *url, const char *ctype, const void *body, size_t len,
                   const char *auth, s_buf_t *out, char *ctype_out, size_t ctype_len) {
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char hdr[256];
    if (ctype) {
        snprintf(hdr, sizeof hdr, "Content-Type: %s", ctype);
        h = curl_slist_append(h, hdr);
    }
    if (auth) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", auth);
        h = curl_slist_append(h, hdr);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    CURLcode rc = curl_easy_perform(c);
    long code = -1;
    if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (ctype_out) {
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(ctype_out, ctype_len, "%s", ct ? ct : "");
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

/* JSON request to the main gateway; *out (may be NULL) parsed answer. */
static long s_json(const char *method, const char *path, const char *body, json_t **out) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", F.url, path);
    s_buf_t b = {0};
    long code = s_http(method, url, body ? "application/json" : NULL, body, body ? strlen(body) : 0, NULL, &b, NULL, 0);
    if (out) *out = b.data ? json_loads(b.data, 0, NULL) : NULL;
    free(b.data);
    return code;
}

static const char *s_field(json_t *j) {
    return json_string_value(json_object_get(json_object_get(j, "error"), "field"));
}

static bool s_health(const char *base) {
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", base);
    for (int i = 0; i < 300; i++) {
        s_buf_t b = {0};
        long code = s_http("GET", url, NULL, NULL, 0, NULL, &b, NULL, 0);
        free(b.data);
        if (code == 200) return true;
        usleep(50000);
    }
    return false;
}

/* ---- fixture ---- */

static int s_setup(void **state) {
    curl_global_init(CURL_GLOBAL_ALL);
    F.redis = lf_testredis_start(NULL);
    if (!F.redis) return -1;
    snprintf(F.dir, sizeof F.dir, "%s", lf_testredis_dir(F.redis));
    int p = lf_testredis_free_port(), q = lf_testredis_free_port(), r = lf_testredis_free_port();
    snprintf(F.fe, sizeof F.fe, "tcp://127.0.0.1:%d", p);
    snprintf(F.be, sizeof F.be, "tcp://127.0.0.1:%d", q);
    snprintf(F.ev, sizeof F.ev, "tcp://127.0.0.1:%d", r);
    static char e_redis[64], e_fe[96], e_be[96], e_ev[96], e_port[64], e_port2[64], e_web[256], e_log[] = "LF_LOG_LEVEL=warn";
    snprintf(e_redis, sizeof e_redis, "LF_REDIS_PORT=%d", lf_testredis_port(F.redis));
    snprintf(e_fe, sizeof e_fe, "LF_BROKER_FRONTEND=%s", F.fe);
    snprintf(e_be, sizeof e_be, "LF_BROKER_BACKEND=%s", F.be);
    snprintf(e_ev, sizeof e_ev, "LF_BROKER_EVENTS=%s", F.ev);
    /* A web root with an index and a stylesheet. */
    char path[256];
    snprintf(path, sizeof path, "%s/web", F.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/web/index.html", F.dir);
    FILE *f = fopen(path, "w");
    fputs("<!doctype html><title>lightfarm</title>", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/web/style.css", F.dir);
    f = fopen(path, "w");
    fputs("body{}", f);
    fclose(f);
    snprintf(e_web, sizeof e_web, "LF_WEB_ROOT=%s/web", F.dir);
    char log[256];
    char *benv[] = {e_redis, e_fe, e_be, e_ev, e_log, NULL};
    snprintf(log, sizeof log, "%s/broker.log", F.dir);
    F.broker = s_spawn(LF_BROKER_BIN, log, benv);
    char *wenv[] = {e_be, e_log, NULL};
    snprintf(log, sizeof log, "%s/worker.log", F.dir);
    F.worker = s_spawn(LF_WORKER_BIN, log, wenv);
    F.port = lf_testredis_free_port();
    snprintf(e_port, sizeof e_port, "LF_HTTP_PORT=%d", F.port);
    static char e_body[] = "LF_HTTP_MAX_BODY=1048576";
    char *genv[] = {e_redis, e_fe, e_ev, e_port, e_web, e_log, e_body, NULL};
    snprintf(log, sizeof log, "%s/gateway.log", F.dir);
    F.gw = s_spawn(LF_GATEWAY_BIN, log, genv);
    F.port_auth = lf_testredis_free_port();
    snprintf(e_port2, sizeof e_port2, "LF_HTTP_PORT=%d", F.port_auth);
    static char e_keys[] = "LF_API_KEYS=key-one, key-two", e_rate[] = "LF_RATE_LIMIT=1", e_burst[] = "LF_RATE_BURST=3";
    char *aenv[] = {e_redis, e_fe, e_ev, e_port2, e_log, e_keys, e_rate, e_burst, NULL};
    snprintf(log, sizeof log, "%s/gateway-auth.log", F.dir);
    F.gw_auth = s_spawn(LF_GATEWAY_BIN, log, aenv);
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d", F.port);
    snprintf(F.url_auth, sizeof F.url_auth, "http://127.0.0.1:%d", F.port_auth);
    if (!s_health(F.url) || !s_health(F.url_auth)) return -1;
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
    s_stop(&F.gw_auth);
    s_stop(&F.gw);
    s_stop(&F.worker);
    s_stop(&F.broker);
    if (getenv("LF_KEEP_TEST")) fprintf(stderr, "logs kept in %s\n", F.dir);
    else lf_testredis_destroy(&F.redis);
    curl_global_cleanup();
    return 0;
}

static bool s_gateway_alive(void) { return kill(F.gw, 0) == 0 && waitpid(F.gw, NULL, WNOHANG) == 0; }

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

static json_t *s_wait_done(const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    long long end = s_ms() + 20000;
    while (s_ms() < end) {
        json_t *j = NULL;
        if (s_json("GET", path, NULL, &j) == 200) {
            const char *st = json_string_value(json_object_get(j, "status"));
            if (st && (!strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))) return j;
        }
        json_decref(j);
        usleep(20000);
    }
    return NULL;
}

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
    s_buf_t b = {0};
    char ct[64];
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
    s_buf_t b = {0};
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
    s_buf_t b = {0};
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
    s_buf_t b = {.stop_at = "event: done"};
    char ct[64];
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
    s_buf_t b = {0};
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

static void s_raw(const char *req, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)F.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {3, 0};
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

static void test_static_files_and_traversal(void **state) {
    char url[128], ct[64];
    s_buf_t b = {0};
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
        s_raw(evil[i], out, sizeof out);
        if (strstr(out, "root:")) fail_msg("traversal served /etc/passwd: %s", evil[i]);
        if (!strncmp(out, "HTTP/1.1 200", 12)) fail_msg("traversal answered 200: %s", evil[i]);
    }
    s_raw("\x16\x03\x01garbage\r\n\r\n", out, sizeof out);
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
    int saw_portrait = 0;
    json_array_foreach(json_object_get(j, "presets"), i, p) {
        if (!json_is_true(json_object_get(p, "builtin"))) continue;
        json_t *params = json_object_get(p, "params");
        const char *name = json_string_value(json_object_get(p, "name"));
        if (!json_object_get(params, "model")) {
            if (json_object_get(params, "width") || json_object_get(params, "height"))
                fail_msg("built-in preset %s fixes a size for whatever model is chosen", name);
        }
        if (!strcmp(name, "portrait")) {
            saw_portrait = 1;
            assert_string_equal(json_string_value(json_object_get(p, "aspect")), "2:3");
        }
    }
    assert_true(saw_portrait);
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
    s_buf_t b = {0};
    assert_int_equal(s_http("GET", url, NULL, NULL, 0, NULL, &b, NULL, 0), 200);
    assert_non_null(strstr(b.data, "lf_queue_depth{priority=\"high\"}"));
    assert_non_null(strstr(b.data, "lf_workers_live 1"));
    assert_non_null(strstr(b.data, "lf_http_request_duration_seconds_bucket"));
    free(b.data);
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
        cmocka_unit_test(test_openapi_and_presets),
        cmocka_unit_test(test_cancel),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("gateway_http", tests, s_setup, s_teardown);
}
