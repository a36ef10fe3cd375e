/* lf_testhttp: see lf_testhttp.h. */
#include "lf_testhttp.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lf_testproc.h"

static size_t s_write(char *p, size_t sz, size_t n, void *ud) {
    lf_testhttp_buf_t *b = ud;
    size_t k = sz * n;
    char *nd = realloc(b->data, b->len + k + 1);
    if (!nd) return 0;
    b->data = nd;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = 0;
    if (b->stop_at && strstr(b->data, b->stop_at)) return 0; /* enough: curl stops with a write error */
    return k;
}

static size_t s_header(char *p, size_t sz, size_t n, void *ud) {
    lf_testhttp_buf_t *b = ud;
    if (!strncasecmp(p, "Retry-After:", 12))
        snprintf(b->retry_after, sizeof b->retry_after, "%.*s", (int)(sz * n - 12), p + 12);
    return sz * n;
}

long lf_testhttp_request(const char *method, const char *url, const void *body, size_t len,
                         const lf_testhttp_opts_t *opts, lf_testhttp_buf_t *out) {
    static const lf_testhttp_opts_t defaults = {0};
    if (!opts) opts = &defaults;
    CURL *c = curl_easy_init();
    if (!c) return -1;
    struct curl_slist *h = NULL;
    char ctype[256];
    if (opts->content_type) {
        snprintf(ctype, sizeof ctype, "Content-Type: %s", opts->content_type);
        h = curl_slist_append(h, ctype);
    }
    if (opts->header) h = curl_slist_append(h, opts->header);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, opts->timeout_ms > 0 ? opts->timeout_ms : 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
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
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && out->stop_at))
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(out->content_type, sizeof out->content_type, "%s", ct ? ct : "");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

long lf_testhttp_json(const char *base, const char *method, const char *path, const char *body, size_t flags,
                      json_t **out) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    lf_testhttp_opts_t o = {.content_type = body ? "application/json" : NULL};
    lf_testhttp_buf_t b = {0};
    long code = lf_testhttp_request(method, url, body, body ? strlen(body) : 0, &o, &b);
    if (out) *out = b.data ? json_loads(b.data, flags, NULL) : NULL;
    free(b.data);
    return code;
}

bool lf_testhttp_wait_health(const char *base) {
    for (int i = 0; i < 300; i++) {
        if (lf_testhttp_json(base, "GET", "/healthz", NULL, 0, NULL) == 200) return true;
        usleep(50000);
    }
    return false;
}

json_t *lf_testhttp_wait_job(const char *base, const char *id, int timeout_ms) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (long long end = lf_testproc_now_ms() + timeout_ms; lf_testproc_now_ms() < end; usleep(20000)) {
        json_t *j = NULL;
        if (lf_testhttp_json(base, "GET", path, NULL, 0, &j) == 200) {
            const char *st = json_string_value(json_object_get(j, "status"));
            if (st && (!strcmp(st, "done") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))) return j;
        }
        json_decref(j);
    }
    return NULL;
}

void lf_testhttp_raw(int port, const char *req, char *out, size_t cap, int timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {timeout_s, 0};
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
