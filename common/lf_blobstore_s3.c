/* lf_blobstore_s3: the S3 backend of lf_blobstore — PUT, GET, DELETE of one
 * object and a HEAD of the bucket, over libcurl, signed with AWS Signature
 * V4 (lf_sigv4). Path-style URLs (endpoint/bucket/key) when an endpoint is
 * set, which every S3-compatible server accepts; AWS's virtual-hosted
 * https://bucket.s3.REGION.amazonaws.com/key otherwise. The payload is
 * signed (x-amz-content-sha256 = its SHA-256), so a proxy cannot alter it.
 * One curl easy handle per call: thread-safe without locks, at the price of
 * a connection per image (a few ms next to a generation of seconds). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_blobstore_impl.h"
#include "lf_error.h"
#include "lf_sha256.h"
#include "lf_sigv4.h"

#define S_MAX_OBJECT (512u << 20) /* largest object we read back */

typedef struct {
    char scheme[8];        /* "http" | "https" */
    char host[256];        /* host[:port] as signed and sent in Host */
    char base_path[300];   /* "/bucket" (path-style) or "" (virtual-hosted) */
    char bucket[64];
    char prefix[256];      /* "" or "farm/images/" */
    char region[64];
    char *access, *secret;
    long timeout_ms;
    char desc[512];
} s_s3_t;

static void s_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;
static void s_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* A growing response body, capped. */
typedef struct {
    uint8_t *p;
    size_t n, cap, max;
    bool over;
} s_body_t;

static size_t s_write(char *data, size_t size, size_t nmemb, void *ud) {
    s_body_t *b = ud;
    size_t n = size * nmemb;
    if (b->n + n > b->max) {
        b->over = true;
        return 0;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n + 1) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

/* "<Code>AccessDenied</Code>" + "<Message>...</Message>" of an S3 error body. */
static void s_xml_field(const s_body_t *b, const char *tag, char *out, size_t size) {
    out[0] = '\0';
    if (!b->p) return;
    char open[40], close[40];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *s = strstr((const char *)b->p, open);
    const char *e = s ? strstr(s, close) : NULL;
    if (!s || !e) return;
    s += strlen(open);
    if (!strncmp(s, "<![CDATA[", 9) && e - s >= 12 && !strncmp(e - 3, "]]>", 3)) s += 9, e -= 3;
    size_t l = (size_t)(e - s) < size - 1 ? (size_t)(e - s) : size - 1;
    memcpy(out, s, l);
    out[l] = '\0';
}

/* One signed request. key NULL = the bucket itself. On success *out holds
 * the body (GET). Maps HTTP and transport failures onto LF_E* codes. */
static int s_request(s_s3_t *s, const char *method, const char *key, const void *data, size_t len,
                     const char *mime, s_body_t *out, char *err, size_t errlen) {
    pthread_once(&s_curl_once, s_curl_init);
    char path[2048], enc[1600], full[600];
    if (key) {
        snprintf(full, sizeof full, "%s%s", s->prefix, key);
        if (lf_sigv4_uri_encode(full, true, enc, sizeof enc)) return LF_EINVAL;
        snprintf(path, sizeof path, "%s/%s", s->base_path, enc);
    } else {
        snprintf(path, sizeof path, "%s", *s->base_path ? s->base_path : "/");
    }
    char sha[65], date[17];
    lf_sha256_hex(data ? data : "", data ? len : 0, sha);
    lf_sigv4_amz_date((long long)time(NULL), date);
    lf_sigv4_header_t h[4] = {{"host", s->host}, {"x-amz-content-sha256", sha}, {"x-amz-date", date}};
    size_t nh = 3;
    if (mime) h[nh++] = (lf_sigv4_header_t){"content-type", mime};
    lf_sigv4_request_t r = {.method = method, .path = path, .query = "", .headers = h, .n_headers = nh,
                            .payload_sha256 = sha, .access_key = s->access, .secret_key = s->secret,
                            .region = s->region, .service = "s3", .amz_date = date};
    char auth[512];
    int rc = lf_sigv4_sign(&r, auth, sizeof auth);
    if (rc) return rc;

    CURL *c = curl_easy_init();
    if (!c) return LF_ENOMEM;
    char url[2400], line[700];
    snprintf(url, sizeof url, "%s://%s%s", s->scheme, s->host, path);
    struct curl_slist *hl = NULL, *t;
    bool ok = true;
#define S_ADD(...)                                                   \
    do {                                                             \
        snprintf(line, sizeof line, __VA_ARGS__);                    \
        if (!(t = curl_slist_append(hl, line))) ok = false;          \
        else hl = t;                                                 \
    } while (0)
    S_ADD("Host: %s", s->host);
    S_ADD("x-amz-content-sha256: %s", sha);
    S_ADD("x-amz-date: %s", date);
    S_ADD("Authorization: %s", auth);
    if (mime) S_ADD("Content-Type: %s", mime);
    S_ADD("Expect:"); /* no 100-continue round trip before a PUT */
#undef S_ADD
    s_body_t body = {.max = S_MAX_OBJECT};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, data ? data : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = ok ? curl_easy_perform(c) : CURLE_OUT_OF_MEMORY;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    const char *what = key ? full : "(bucket)";
    if (cc != CURLE_OK) {
        free(body.p);
        if (body.over) {
            s_err(err, errlen, "image store %s: %s %s: larger than %u bytes", s->desc, method, what, S_MAX_OBJECT);
            return LF_ETOOBIG;
        }
        s_err(err, errlen, "image store %s: %s %s: %s", s->desc, method, what, curl_easy_strerror(cc));
        return cc == CURLE_OUT_OF_MEMORY ? LF_ENOMEM : LF_ECONN;
    }
    if (status >= 200 && status < 300) {
        if (out) *out = body;
        else free(body.p);
        return 0;
    }
    char code[64], msg[200];
    s_xml_field(&body, "Code", code, sizeof code);
    s_xml_field(&body, "Message", msg, sizeof msg);
    free(body.p);
    s_err(err, errlen, "image store %s: %s %s: HTTP %ld%s%s%s%s", s->desc, method, what, status,
          *code ? " " : "", code, *msg ? ": " : "", msg);
    if (status == 404) return LF_ENOTFOUND;
    if (status == 401 || status == 403) return LF_EAUTH;
    return status >= 500 ? LF_ECONN : LF_EIO;
}

static int s3_put(void *vs, const char *name, const void *data, size_t len, const char *mime, char *err,
                  size_t errlen) {
    return s_request(vs, "PUT", name, data, len, mime, NULL, err, errlen);
}

static int s3_get(void *vs, const char *name, uint8_t **data, size_t *len, char *err, size_t errlen) {
    s_body_t b = {0};
    int rc = s_request(vs, "GET", name, NULL, 0, NULL, &b, err, errlen);
    if (rc) return rc;
    if (!b.p && !(b.p = malloc(1))) return LF_ENOMEM;
    *data = b.p;
    *len = b.n;
    return 0;
}

static int s3_del(void *vs, const char *name, char *err, size_t errlen) {
    int rc = s_request(vs, "DELETE", name, NULL, 0, NULL, NULL, err, errlen);
    return rc == LF_ENOTFOUND ? 0 : rc;
}

static int s3_check(void *vs, char *err, size_t errlen) {
    return s_request(vs, "HEAD", NULL, NULL, 0, NULL, NULL, err, errlen);
}

static void s3_destroy(void *vs) {
    s_s3_t *s = vs;
    if (!s) return;
    if (s->secret) explicit_bzero(s->secret, strlen(s->secret));
    free(s->secret);
    free(s->access);
    free(s);
}

const lf__blob_backend_t lf__blob_s3 = {
    .name = "s3", .put = s3_put, .get = s3_get, .del = s3_del, .check = s3_check, .destroy = s3_destroy};

void *lf__blob_s3_new(const char *bucket, const char *prefix, const lf_blobstore_opts_t *o, char *desc,
                      size_t desclen, char *err, size_t errlen) {
    if (!o->access_key || !*o->access_key || !o->secret_key || !*o->secret_key) {
        s_err(err, errlen, "image store s3://%s: LF_S3_ACCESS_KEY_ID and LF_S3_SECRET_ACCESS_KEY are required",
              bucket);
        return NULL;
    }
    s_s3_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->bucket, sizeof s->bucket, "%s", bucket);
    size_t pl = strlen(prefix);
    while (pl && prefix[pl - 1] == '/') pl--;
    if (pl > 200) {
        s_err(err, errlen, "image store s3://%s/%s: prefix too long", bucket, prefix);
        s3_destroy(s);
        return NULL;
    }
    if (pl) snprintf(s->prefix, sizeof s->prefix, "%.*s/", (int)pl, prefix);
    snprintf(s->region, sizeof s->region, "%s", o->region && *o->region ? o->region : "us-east-1");
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    if (o->endpoint && *o->endpoint) {
        /* scheme://host[:port] (a trailing '/' allowed); default ports are
         * dropped from Host as curl and botocore do. */
        const char *e = o->endpoint, *sep = strstr(e, "://");
        size_t sl = sep ? (size_t)(sep - e) : 0;
        const char *hp = sep ? sep + 3 : NULL;
        size_t hl = hp ? strcspn(hp, "/") : 0;
        bool bad = !sep || !((sl == 4 && !strncmp(e, "http", 4)) || (sl == 5 && !strncmp(e, "https", 5))) ||
                   !hl || hl >= sizeof s->host || (hp[hl] && strcmp(hp + hl, "/"));
        if (bad) {
            s_err(err, errlen, "image store endpoint \"%s\": expected http(s)://host[:port]", e);
            s3_destroy(s);
            return NULL;
        }
        snprintf(s->scheme, sizeof s->scheme, "%.*s", (int)sl, e);
        snprintf(s->host, sizeof s->host, "%.*s", (int)hl, hp);
        size_t l = strlen(s->host);
        const char *dflt = !strcmp(s->scheme, "http") ? ":80" : ":443";
        if (l > strlen(dflt) && !strcmp(s->host + l - strlen(dflt), dflt)) s->host[l - strlen(dflt)] = '\0';
        snprintf(s->base_path, sizeof s->base_path, "/%s", s->bucket);
    } else {
        snprintf(s->scheme, sizeof s->scheme, "https");
        snprintf(s->host, sizeof s->host, "%s.s3.%s.amazonaws.com", s->bucket, s->region);
    }
    s->access = strdup(o->access_key);
    s->secret = strdup(o->secret_key);
    if (!s->access || !s->secret) {
        s3_destroy(s);
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(s->desc, sizeof s->desc, "s3://%.63s/%.200s at %.7s://%.200s", s->bucket, s->prefix, s->scheme,
             s->host);
    snprintf(desc, desclen, "%s", s->desc);
    return s;
}
