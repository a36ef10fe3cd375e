/* lf_http: the gateway's HTTP server — the only module that speaks
 * libmicrohttpd.
 *
 * A thread pool on epoll (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
 * MHD_OPTION_THREAD_POOL_SIZE) reads requests; once the whole body is in (up
 * to max_body: larger ones get 413 without being read), the handler runs on
 * that pool thread with an lf_req_t. The handler either answers (one of the
 * lf_req_respond* calls) and returns LF_HTTP_DONE, or returns LF_HTTP_PENDING:
 * the connection is then suspended (it costs no thread) until some thread
 * calls lf_req_wake(), after which the handler runs again on a pool thread
 * with the same request (its state kept in lf_req_state). That is how a
 * submit waits for the broker's ACCEPTED and how a blocking A1111 call waits
 * for its job without holding a thread.
 *
 * A URL whose path or query holds an encoded NUL (%00) is answered 400
 * before the handler runs: decoded, it would silently cut the string.
 *
 * Streams (Server-Sent Events): lf_req_respond_stream() answers with a body
 * of unknown length fed by lf_stream_write() from any thread; when the
 * buffer is empty the connection is suspended and a write resumes it.
 *
 * Threading: lf_req_* accessors and responders only in the handler (pool
 * thread); lf_req_ref/unref/wake and every lf_stream_* call from any thread.
 * Ownership: requests and streams are reference counted; the server holds
 * one reference until the connection ends. */
#ifndef LF_HTTP_H
#define LF_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lf_http lf_http_t;
typedef struct lf_req lf_req_t;
typedef struct lf_stream lf_stream_t;

enum { LF_HTTP_DONE = 0, LF_HTTP_PENDING = 1 };

/* Runs on a pool thread; returns LF_HTTP_DONE or LF_HTTP_PENDING. */
typedef int (*lf_http_handler_fn)(void *ud, lf_req_t *req);
/* Called once per request when its connection is done with it (any answer
 * sent, or the client gone): status 0 when nothing was answered. */
typedef void (*lf_http_done_fn)(void *ud, lf_req_t *req, int status, int64_t duration_us);

typedef struct {
    const char *host;        /* listen address; NULL = 127.0.0.1 */
    int port;                /* 0 = any free port (see lf_http_port) */
    int threads;             /* pool size, >= 1 */
    size_t max_body;         /* larger bodies: 413 */
    int idle_timeout_s;      /* idle keep-alive connections closed after this; 0 = 120 */
    lf_http_handler_fn handler;
    lf_http_done_fn done;    /* may be NULL */
    void *ud;
} lf_http_opts_t;

/* Start listening. NULL with a reason in err on failure. Caller owns. */
lf_http_t *lf_http_new(const lf_http_opts_t *opts, char *err, size_t errlen);
/* Stop: closes every connection (suspended ones are resumed and closed). */
void lf_http_destroy(lf_http_t **self_p);
int lf_http_port(const lf_http_t *self);

/* ---- the request (handler thread only unless noted) ------------------- */
const char *lf_req_method(const lf_req_t *req);
const char *lf_req_path(const lf_req_t *req);           /* URL-decoded, no query */
const char *lf_req_header(lf_req_t *req, const char *name);  /* NULL if absent */
const char *lf_req_query(lf_req_t *req, const char *name);   /* NULL if absent */
const uint8_t *lf_req_body(const lf_req_t *req, size_t *len); /* NUL-terminated; borrowed */
const char *lf_req_client(const lf_req_t *req);         /* client address text */
int64_t lf_req_started_us(const lf_req_t *req);         /* monotonic, when headers came */

/* Per-request handler state, freed with free_fn when the request ends. */
void *lf_req_state(const lf_req_t *req);
void lf_req_set_state(lf_req_t *req, void *state, void (*free_fn)(void *));
/* A small integer the handler may set (route id, for metrics). */
void lf_req_set_tag(lf_req_t *req, int tag);
int lf_req_tag(const lf_req_t *req);
/* A short note about the answer (the error code, for the log); copied and
 * truncated to 47 characters. lf_req_note never returns NULL ("" unset). */
void lf_req_set_note(lf_req_t *req, const char *note);
const char *lf_req_note(const lf_req_t *req);

/* Add a header to the coming response (copied). */
int lf_req_add_header(lf_req_t *req, const char *name, const char *value);
/* Answer with a copy of body. */
int lf_req_respond(lf_req_t *req, int status, const char *ctype, const void *body, size_t len);
/* Answer with body, taking it (malloc'd). */
int lf_req_respond_take(lf_req_t *req, int status, const char *ctype, void *body, size_t len);
/* Answer with a static (never freed) body. */
int lf_req_respond_static(lf_req_t *req, int status, const char *ctype, const void *body,
                          size_t len);
/* Answer with a file's bytes; takes fd. */
int lf_req_respond_fd(lf_req_t *req, int status, const char *ctype, int fd, uint64_t size);
/* Answer with a stream; returns it with one reference for the caller
 * (lf_stream_unref), or NULL on failure. */
lf_stream_t *lf_req_respond_stream(lf_req_t *req, int status, const char *ctype);

/* ---- any thread ------------------------------------------------------ */
void lf_req_ref(lf_req_t *req);
void lf_req_unref(lf_req_t **req_p);
/* Run the handler again (after LF_HTTP_PENDING). Harmless when the request
 * is already answered or gone. */
void lf_req_wake(lf_req_t *req);

/* Append bytes to the stream; LF_ECONN once the client is gone or the
 * stream ended, LF_ELIMIT if the client reads too slowly (stream closed). */
int lf_stream_write(lf_stream_t *s, const void *data, size_t len);
/* End after the buffered bytes are sent. */
void lf_stream_end(lf_stream_t *s);
bool lf_stream_closed(lf_stream_t *s);
/* Monotonic ms of the last write (for heartbeats). */
int64_t lf_stream_last_write_ms(lf_stream_t *s);
void lf_stream_ref(lf_stream_t *s);
void lf_stream_unref(lf_stream_t **s_p);

/* Monotonic clock helpers shared by the gateway. */
int64_t lf_http_now_us(void);

#endif
