/* lf_http: libmicrohttpd behind a small request/response interface with
 * suspend/resume for long answers.
 *
 * Race-free suspension: a request (or stream) has a mutex; the pool thread
 * suspends the connection while holding it and records `suspended`; a waker
 * takes the same mutex, sees `suspended` and resumes. So a wake can never
 * come between "decided to wait" and "suspended" unnoticed, and resume is
 * never called on a connection that is not suspended. Lock order everywhere:
 * (caller's locks) -> request/stream mutex -> libmicrohttpd's own. */
#include "lf_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_log.h"

#define S_MAX_HEADERS 12
#define S_STREAM_MAX_BUF (8u * 1024u * 1024u)

struct lf_http {
    struct MHD_Daemon *d;
    lf_http_opts_t o;
    int port;
};

typedef struct {
    char *name, *value;
} s_hdr_t;

struct lf_req {
    atomic_int refs;
    pthread_mutex_t mu;
    lf_http_t *http;
    struct MHD_Connection *conn; /* NULL once the connection is done */
    bool suspended, woken, answered;
    char *method, *path;
    char client[64];
    int64_t started_us;
    /* body */
    uint8_t *body;
    size_t len, cap;
    bool too_big;
    /* response */
    struct MHD_Response *resp;
    int status;
    s_hdr_t hdrs[S_MAX_HEADERS];
    int n_hdrs;
    /* handler state */
    void *state;
    void (*state_free)(void *);
    int tag;
    char note[48];
};

/* Per connection (libmicrohttpd's socket context): the unescaper saw a %00
 * in the URL of the request being read. */
typedef struct {
    bool nul_in_url;
} s_conn_t;

struct lf_stream {
    atomic_int refs;
    pthread_mutex_t mu;
    struct MHD_Connection *conn; /* NULL once closed */
    bool suspended, ended, closed;
    uint8_t *buf;
    size_t off, len, cap;
    int64_t last_write_ms;
};

int64_t lf_http_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- req */

static void s_req_free(lf_req_t *r) {
    if (r->state_free) r->state_free(r->state);
    if (r->resp) MHD_destroy_response(r->resp);
    for (int i = 0; i < r->n_hdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->body);
    free(r->method);
    free(r->path);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void lf_req_ref(lf_req_t *req) { atomic_fetch_add(&req->refs, 1); }

void lf_req_unref(lf_req_t **req_p) {
    if (!req_p || !*req_p) return;
    lf_req_t *r = *req_p;
    *req_p = NULL;
    if (atomic_fetch_sub(&r->refs, 1) == 1) s_req_free(r);
}

void lf_req_wake(lf_req_t *req) {
    pthread_mutex_lock(&req->mu);
    req->woken = true;
    if (req->suspended && req->conn) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
    }
    pthread_mutex_unlock(&req->mu);
}

const char *lf_req_method(const lf_req_t *req) { return req->method; }
const char *lf_req_path(const lf_req_t *req) { return req->path; }
const char *lf_req_client(const lf_req_t *req) { return req->client; }
int64_t lf_req_started_us(const lf_req_t *req) { return req->started_us; }
void *lf_req_state(const lf_req_t *req) { return req->state; }
void lf_req_set_tag(lf_req_t *req, int tag) { req->tag = tag; }
int lf_req_tag(const lf_req_t *req) { return req->tag; }
void lf_req_set_note(lf_req_t *req, const char *note) { snprintf(req->note, sizeof req->note, "%s", note ? note : ""); }
const char *lf_req_note(const lf_req_t *req) { return req->note; }

void lf_req_set_state(lf_req_t *req, void *state, void (*free_fn)(void *)) {
    if (req->state_free && req->state != state) req->state_free(req->state);
    req->state = state;
    req->state_free = free_fn;
}

const char *lf_req_header(lf_req_t *req, const char *name) {
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *lf_req_query(lf_req_t *req, const char *name) {
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

const uint8_t *lf_req_body(const lf_req_t *req, size_t *len) {
    if (len) *len = req->len;
    return req->body ? req->body : (const uint8_t *)"";
}

int lf_req_add_header(lf_req_t *req, const char *name, const char *value) {
    if (req->n_hdrs >= S_MAX_HEADERS) return LF_ELIMIT;
    s_hdr_t *h = &req->hdrs[req->n_hdrs];
    h->name = strdup(name);
    h->value = strdup(value);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return LF_ENOMEM;
    }
    req->n_hdrs++;
    return 0;
}

static int s_set_resp(lf_req_t *req, int status, const char *ctype, struct MHD_Response *resp) {
    if (!resp) return LF_ENOMEM;
    if (req->resp) MHD_destroy_response(req->resp);
    if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (int i = 0; i < req->n_hdrs; i++)
        MHD_add_response_header(resp, req->hdrs[i].name, req->hdrs[i].value);
    req->resp = resp;
    req->status = status;
    return 0;
}

int lf_req_respond(lf_req_t *req, int status, const char *ctype, const void *body, size_t len) {
    return s_set_resp(req, status, ctype,
                      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY));
}

int lf_req_respond_take(lf_req_t *req, int status, const char *ctype, void *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return LF_ENOMEM;
    }
    return s_set_resp(req, status, ctype, r);
}

int lf_req_respond_static(lf_req_t *req, int status, const char *ctype, const void *body,
                          size_t len) {
    return s_set_resp(req, status, ctype,
                      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT));
}

int lf_req_respond_fd(lf_req_t *req, int status, const char *ctype, int fd, uint64_t size) {
    struct MHD_Response *r = MHD_create_response_from_fd64(size, fd);
    if (!r) {
        close(fd);
        return LF_ENOMEM;
    }
    return s_set_resp(req, status, ctype, r);
}

/* ------------------------------------------------------------- stream */

void lf_stream_ref(lf_stream_t *s) { atomic_fetch_add(&s->refs, 1); }

void lf_stream_unref(lf_stream_t **s_p) {
    if (!s_p || !*s_p) return;
    lf_stream_t *s = *s_p;
    *s_p = NULL;
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        pthread_mutex_destroy(&s->mu);
        free(s->buf);
        free(s);
    }
}

/* Caller holds s->mu. */
static void s_stream_kick(lf_stream_t *s) {
    if (s->suspended && s->conn) {
        s->suspended = false;
        MHD_resume_connection(s->conn);
    }
}

int lf_stream_write(lf_stream_t *s, const void *data, size_t len) {
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->closed || s->ended) {
        rc = LF_ECONN;
    } else if (s->len - s->off + len > S_STREAM_MAX_BUF) {
        /* The client does not read: give up on it rather than buffer forever. */
        s->ended = true;
        s->len = s->off = 0;
        s_stream_kick(s);
        rc = LF_ELIMIT;
    } else {
        if (s->off && s->off == s->len) s->off = s->len = 0;
        if (s->len + len > s->cap) {
            if (s->off) { /* compact */
                memmove(s->buf, s->buf + s->off, s->len - s->off);
                s->len -= s->off;
                s->off = 0;
            }
            size_t cap = s->cap ? s->cap : 4096;
            while (cap < s->len + len) cap *= 2;
            uint8_t *nb = cap > s->cap ? realloc(s->buf, cap) : s->buf;
            if (!nb) {
                pthread_mutex_unlock(&s->mu);
                return LF_ENOMEM;
            }
            s->buf = nb;
            s->cap = cap;
        }
        memcpy(s->buf + s->len, data, len);
        s->len += len;
        s->last_write_ms = lf_http_now_us() / 1000;
        s_stream_kick(s);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void lf_stream_end(lf_stream_t *s) {
    pthread_mutex_lock(&s->mu);
    s->ended = true;
    s_stream_kick(s);
    pthread_mutex_unlock(&s->mu);
}

bool lf_stream_closed(lf_stream_t *s) {
    pthread_mutex_lock(&s->mu);
    bool c = s->closed || s->ended;
    pthread_mutex_unlock(&s->mu);
    return c;
}

int64_t lf_stream_last_write_ms(lf_stream_t *s) {
    pthread_mutex_lock(&s->mu);
    int64_t t = s->last_write_ms;
    pthread_mutex_unlock(&s->mu);
    return t;
}

static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    lf_stream_t *s = cls;
    ssize_t n;
    pthread_mutex_lock(&s->mu);
    if (s->len > s->off) {
        size_t k = s->len - s->off < max ? s->len - s->off : max;
        memcpy(buf, s->buf + s->off, k);
        s->off += k;
        n = (ssize_t)k;
    } else if (s->ended || !s->conn) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: park the connection until a write resumes it. */
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void s_stream_gone(void *cls) {
    lf_stream_t *s = cls;
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    s->conn = NULL;
    pthread_mutex_unlock(&s->mu);
    lf_stream_unref(&s);
}

lf_stream_t *lf_req_respond_stream(lf_req_t *req, int status, const char *ctype) {
    lf_stream_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    atomic_init(&s->refs, 2); /* the response's and the caller's */
    pthread_mutex_init(&s->mu, NULL);
    s->conn = req->conn;
    s->last_write_ms = lf_http_now_us() / 1000;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, s_stream_read, s, s_stream_gone);
    if (!r) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    if (s_set_resp(req, status, ctype, r) != 0) return NULL;
    return s;
}

/* ----------------------------------------------------------- callbacks */

static void s_json_error(lf_req_t *r, int status, const char *code, const char *msg) {
    lf_req_set_note(r, code);
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"field\":\"\"}}",
                     code, msg);
    lf_req_respond(r, status, "application/json", body, (size_t)n);
}

static enum MHD_Result s_queue(lf_req_t *r) {
    if (!r->resp) s_json_error(r, 500, "internal", "the handler gave no answer");
    if (!r->resp) return MHD_NO;
    r->answered = true;
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    return ok;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls) {
    (void)version;
    lf_http_t *h = cls;
    lf_req_t *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        atomic_init(&r->refs, 1);
        pthread_mutex_init(&r->mu, NULL);
        r->http = h;
        r->conn = conn;
        r->started_us = lf_http_now_us();
        r->method = strdup(method);
        r->path = strdup(url);
        if (!r->method || !r->path) {
            s_req_free(r);
            return MHD_NO;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->client, sizeof r->client);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->client, sizeof r->client);
        }
        *con_cls = r;
        const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        s_conn_t *cc = sc ? sc->socket_context : NULL;
        if (cc && cc->nul_in_url) {
            cc->nul_in_url = false;
            s_json_error(r, 400, "invalid_value", "the URL holds an encoded NUL byte (%00)");
            return s_queue(r);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->o.max_body) {
            /* Refuse before reading a byte of it. */
            s_json_error(r, 413, "body_too_large", "the request body is too large");
            lf_req_add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
            return s_queue(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->answered || r->too_big) return MHD_YES;
        if (r->len + n > h->o.max_body) {
            r->too_big = true;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 1024;
            while (cap < r->len + n + 1) cap *= 2;
            uint8_t *nb = realloc(r->body, cap);
            if (!nb) return MHD_NO;
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        r->body[r->len] = 0;
        return MHD_YES;
    }
    if (r->answered) return MHD_YES;
    if (r->too_big) {
        s_json_error(r, 413, "body_too_large", "the request body is too large");
        return s_queue(r);
    }
    for (;;) {
        pthread_mutex_lock(&r->mu);
        r->woken = false;
        pthread_mutex_unlock(&r->mu);
        int rc = h->o.handler(h->o.ud, r);
        if (rc != LF_HTTP_PENDING) return s_queue(r);
        pthread_mutex_lock(&r->mu);
        if (r->woken) { /* woken while the handler ran: run it again now */
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        r->suspended = true;
        MHD_suspend_connection(conn);
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    lf_http_t *h = cls;
    lf_req_t *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    pthread_mutex_lock(&r->mu);
    r->conn = NULL;
    r->suspended = false;
    pthread_mutex_unlock(&r->mu);
    if (h->o.done) h->o.done(h->o.ud, r, r->answered ? r->status : 0, lf_http_now_us() - r->started_us);
    lf_req_unref(&r);
}

static void s_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)cls, (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(s_conn_t)); /* NULL: no %00 check, nothing worse */
    } else {
        free(*socket_context);
        *socket_context = NULL;
    }
}

/* libmicrohttpd's own unescaping, noting an encoded NUL on the connection
 * first (the decoded string would end there, unseen). */
static size_t s_unescape(void *cls, struct MHD_Connection *conn, char *uri) {
    (void)cls;
    for (const char *p = uri; (p = strchr(p, '%')) != NULL; p++) {
        if (p[1] == '0' && p[2] == '0') {
            const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
            s_conn_t *cc = sc ? sc->socket_context : NULL;
            if (cc) cc->nul_in_url = true;
            break;
        }
    }
    return MHD_http_unescape(uri);
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    lf_debug("http: %s", line);
}

lf_http_t *lf_http_new(const lf_http_opts_t *opts, char *err, size_t errlen) {
    if (!opts || !opts->handler || opts->threads < 1 || opts->port < 0 || opts->port > 65535) {
        snprintf(err, errlen, "bad HTTP options");
        return NULL;
    }
    lf_http_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->o = *opts;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts->port)};
    const char *host = opts->host ? opts->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "listen address '%s' is not an IPv4 address", host);
        free(h);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    h->d = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, s_access, h,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opts->threads,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(opts->idle_timeout_s > 0 ? opts->idle_timeout_s : 120),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)20000,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, s_notify_conn, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, s_unescape, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
        MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, opts->port, strerror(errno));
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : opts->port;
    return h;
}

void lf_http_destroy(lf_http_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_http_t *h = *self_p;
    MHD_stop_daemon(h->d);
    free(h);
    *self_p = NULL;
}

int lf_http_port(const lf_http_t *self) { return self->port; }
