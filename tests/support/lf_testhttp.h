/* lf_testhttp: the HTTP client of the tests that drive a real gateway
 * (libcurl): one request with its body, status, Retry-After and
 * Content-Type; a JSON request; waiting for /healthz and for a job's end.
 *
 * No state of its own: call curl_global_init once before the first request.
 * Paths are sent as written (no dot-segment clean-up), so tests can send
 * traversal attempts. Not thread safe only as far as libcurl is not. */
#ifndef LF_TESTHTTP_H
#define LF_TESTHTTP_H

#include <stddef.h>
#include <stdbool.h>

#include <jansson.h>

/* An answer. The caller zeroes it (and may set stop_at) before the request
 * and frees data afterwards. */
typedef struct {
    char *data;            /* the body, NUL-terminated; NULL when empty. Caller owns. */
    size_t len;            /* bytes in data */
    char retry_after[32];  /* the Retry-After header's value as sent ("" when none) */
    char content_type[128]; /* the Content-Type header ("" when none) */
    const char *stop_at;   /* set by the caller: stop reading once the body contains it (SSE) */
} lf_testhttp_buf_t;

/* What a request sends besides method, URL and body; NULL: all defaults. */
typedef struct {
    const char *content_type; /* Content-Type, or NULL for none */
    const char *header;       /* one more "Name: value" header, or NULL */
    long timeout_ms;          /* the whole request; 0 is 20 s */
} lf_testhttp_opts_t;

/* One request: body (len bytes; may be NULL) to url. Appends the answer to
 * *out. The status code, or -1 on a transport error (a read stopped at
 * out->stop_at still returns the status). */
long lf_testhttp_request(const char *method, const char *url, const void *body, size_t len,
                         const lf_testhttp_opts_t *opts, lf_testhttp_buf_t *out);

/* A JSON request: body (a string, may be NULL; sent as application/json)
 * to base + path. *out (may be NULL; caller owns, json_decref) receives the
 * answer parsed with json_loads flags, or NULL. The status code or -1. */
long lf_testhttp_json(const char *base, const char *method, const char *path, const char *body, size_t flags,
                      json_t **out);

/* Polls base/healthz until it answers 200 (true) or 15 s have passed. */
bool lf_testhttp_wait_health(const char *base);

/* Polls base/v1/jobs/{id} until the job is done, failed or cancelled (its
 * JSON; caller owns) or timeout_ms have passed (NULL). */
json_t *lf_testhttp_wait_job(const char *base, const char *id, int timeout_ms);

/* Sends req as it is (bytes curl would not send, such as %00 in a path) to
 * 127.0.0.1:port and reads the answer into out (NUL-terminated, at most
 * cap - 1 bytes) until the server closes or timeout_s pass without data;
 * out is "" when the connection failed. */
void lf_testhttp_raw(int port, const char *req, char *out, size_t cap, int timeout_s);

#endif
