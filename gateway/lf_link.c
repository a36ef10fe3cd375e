/* lf_link: the broker-link actor. HTTP threads put encoded messages on a
 * locked queue and poke an eventfd; the link thread polls that eventfd and
 * the DEALER sockets together (zmq_poll takes raw fds), so a request costs
 * no socket creation, no thread and no inproc hop. Requests in flight sit
 * in a small open-addressing table keyed by req_id. */
#include "lf_link.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "lf_error.h"
#include "lf_log.h"

#define S_MAX_BROKERS 16

typedef struct s_pend {
    uint64_t req_id;
    uint8_t *bytes;
    size_t len;
    lf_link_fn fn;
    void *arg;
    int64_t deadline_ms;  /* give up */
    int64_t retry_ms;     /* try the next broker */
    int broker;           /* last broker tried, -1 = not sent yet */
    int tries;
    struct s_pend *next;  /* queue link */
} s_pend_t;

struct lf_link {
    void *zctx;
    void *dealer[S_MAX_BROKERS];
    size_t n;
    /* CURVE: a monitor per DEALER, so a refused key shows in the log instead
     * of only as timeouts (link thread only after start). */
    void *mon[S_MAX_BROKERS];
    char *ep[S_MAX_BROKERS];
    int64_t mon_warned_ms[S_MAX_BROKERS];
    int efd;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_uint_fast64_t next_req;
    int try_ms, total_ms;
    /* Liveness: a heartbeat to every broker each hb_ms; any message back
     * (its answer, a reply) is a sign of life, written by the link thread
     * and read by HTTP threads (lf_link_live). */
    int hb_ms, liveness;
    int64_t started_ms, hb_sent_ms;
    atomic_int_fast64_t heard_ms[S_MAX_BROKERS];
    /* The broker's last word on its job store: its answer to our heartbeat
     * (a REPLY to req_id 0 with LF_ECONN) or a refused request says Redis is
     * unreachable from it; any other answer to a heartbeat clears it. A
     * broker without its store is alive but useless: requests go elsewhere. */
    atomic_bool store_down[S_MAX_BROKERS];
    uint8_t *hb_bytes;
    size_t hb_len;
    /* queue from HTTP threads */
    pthread_mutex_t mu;
    s_pend_t *qhead, *qtail;
    bool closed;
    /* link thread only */
    s_pend_t **table;  /* open addressing by req_id */
    size_t cap, count;
    size_t rr;
    atomic_uint_fast64_t st_sent, st_retried, st_timeout, st_answered, st_inflight;
};

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- in-flight table (link thread only) ---- */

static size_t s_slot(uint64_t id, size_t cap) { return (size_t)(id * 0x9E3779B97F4A7C15ull) & (cap - 1); }

static int s_table_put(lf_link_t *self, s_pend_t *p);

static int s_table_grow(lf_link_t *self) {
    size_t ocap = self->cap;
    s_pend_t **old = self->table;
    size_t cap = ocap ? ocap * 2 : 256;
    s_pend_t **t = calloc(cap, sizeof *t);
    if (!t) return LF_ENOMEM;
    self->table = t;
    self->cap = cap;
    self->count = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i]) s_table_put(self, old[i]);
    free(old);
    return 0;
}

static int s_table_put(lf_link_t *self, s_pend_t *p) {
    if ((self->count + 1) * 2 > self->cap && s_table_grow(self)) return LF_ENOMEM;
    size_t i = s_slot(p->req_id, self->cap);
    while (self->table[i]) i = (i + 1) & (self->cap - 1);
    self->table[i] = p;
    self->count++;
    return 0;
}

static s_pend_t *s_table_take(lf_link_t *self, uint64_t id) {
    if (!self->cap) return NULL;
    size_t mask = self->cap - 1, i = s_slot(id, self->cap);
    while (self->table[i] && self->table[i]->req_id != id) i = (i + 1) & mask;
    s_pend_t *p = self->table[i];
    if (!p) return NULL;
    self->table[i] = NULL;
    self->count--;
    /* Re-insert the rest of the cluster (backward-shift deletion, simply). */
    for (size_t j = (i + 1) & mask; self->table[j]; j = (j + 1) & mask) {
        s_pend_t *q = self->table[j];
        self->table[j] = NULL;
        self->count--;
        s_table_put(self, q);
    }
    return p;
}

static void s_finish(lf_link_t *self, s_pend_t *p, const lf_link_reply_t *r) {
    p->fn(p->arg, r);
    free(p->bytes);
    free(p);
    atomic_fetch_sub(&self->st_inflight, 1);
}

static void s_fail(lf_link_t *self, s_pend_t *p, int code, const char *msg) {
    lf_link_reply_t r = {.code = code, .position = -1};
    snprintf(r.message, sizeof r.message, "%s", msg);
    s_finish(self, p, &r);
}

/* Send to the next broker that takes it; false when none could. Brokers
 * that said their store is down are tried only when no other takes it. */
static bool s_send(lf_link_t *self, s_pend_t *p) {
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < self->n; k++) {
            size_t b = (self->rr + k) % self->n;
            /* A retry goes elsewhere first. */
            if (p->broker >= 0 && self->n > 1 && (int)b == p->broker && k + 1 < self->n) continue;
            if (pass == 0 && atomic_load(&self->store_down[b])) continue;
            if (zmq_send(self->dealer[b], p->bytes, p->len, ZMQ_DONTWAIT) == (int)p->len) {
                self->rr = (b + 1) % self->n;
                p->broker = (int)b;
                p->tries++;
                atomic_fetch_add(&self->st_sent, 1);
                return true;
            }
        }
    }
    return false;
}

/* Is there a broker other than `not` that is live and has its store? */
static bool s_other_usable(lf_link_t *self, int not, int64_t now) {
    int64_t window = (int64_t)self->hb_ms * self->liveness;
    for (size_t i = 0; i < self->n; i++) {
        int64_t h = atomic_load(&self->heard_ms[i]);
        if ((int)i != not && h && now - h <= window && !atomic_load(&self->store_down[i])) return true;
    }
    return false;
}

static void s_on_message(lf_link_t *self, size_t from, const uint8_t *buf, size_t len, int64_t now) {
    lf_msg_t m = {0};
    /* A heartbeat's answer (a heartbeat, or a REPLY to req_id 0 from a broker
     * that takes only submit and cancel) needs no more than the sign of life
     * the caller already recorded. */
    if (lf_msg_decode(buf, len, &m, NULL) != 0) {
        lf_warn("link: undecodable message from a broker (%zu bytes)", len);
        return;
    }
    bool store_down = m.type == LF_MSG_REPLY && (m.code == LF_ECONN || m.code == LF_EREDIS);
    if (m.type == LF_MSG_REPLY && m.req_id == 0) {
        /* The answer to our heartbeat (an older broker answers unsupported). */
        if (atomic_exchange(&self->store_down[from], store_down) != store_down)
            lf_warn("link: broker %s %s", self->ep[from],
                    store_down ? "cannot reach its job store (redis): sending requests elsewhere"
                               : "reaches its job store again");
    } else if (store_down && self->n > 1 && s_other_usable(self, (int)from, now)) {
        /* The broker refused because its store is unreachable (nothing was
         * queued: a SUBMIT carries an idempotency key, so even a job stored
         * before the store went away would be found, not queued twice):
         * the request goes to a broker that has its store. */
        atomic_store(&self->store_down[from], true);
        s_pend_t *p = s_table_take(self, m.req_id);
        if (p) {
            p->broker = (int)from;
            atomic_fetch_add(&self->st_retried, 1);
            p->retry_ms = s_send(self, p) ? now + self->try_ms : now + 50;
            if (s_table_put(self, p)) s_fail(self, p, LF_ENOMEM, "out of memory");
        }
        lf_msg_clear(&m);
        return;
    }
    if (m.type == LF_MSG_ACCEPTED || m.type == LF_MSG_REPLY) {
        s_pend_t *p = s_table_take(self, m.req_id);
        if (p) { /* else: a late answer to a request already answered (retry) */
            lf_link_reply_t r = {.position = -1};
            if (m.type == LF_MSG_ACCEPTED) {
                snprintf(r.job_id, sizeof r.job_id, "%s", m.job_id ? m.job_id : "");
                r.position = m.position;
                r.duplicate = m.duplicate;
                r.status = m.status;
            } else {
                r.code = m.code;
                snprintf(r.message, sizeof r.message, "%s", m.message ? m.message : "");
                if (m.job_id) snprintf(r.job_id, sizeof r.job_id, "%s", m.job_id);
            }
            atomic_fetch_add(&self->st_answered, 1);
            s_finish(self, p, &r);
        }
    }
    lf_msg_clear(&m);
}

static void s_take_queue(lf_link_t *self, int64_t now) {
    pthread_mutex_lock(&self->mu);
    s_pend_t *p = self->qhead;
    self->qhead = self->qtail = NULL;
    pthread_mutex_unlock(&self->mu);
    while (p) {
        s_pend_t *next = p->next;
        p->next = NULL;
        p->deadline_ms = now + self->total_ms;
        p->retry_ms = s_send(self, p) ? now + self->try_ms : now + 50;
        if (s_table_put(self, p)) s_fail(self, p, LF_ENOMEM, "out of memory");
        p = next;
    }
}

/* Retries and deadlines; returns ms until the next one (capped). */
static int s_sweep(lf_link_t *self, int64_t now) {
    int64_t next = now + 200;
    for (size_t i = 0; i < self->cap; i++) {
        s_pend_t *p = self->table[i];
        if (!p) continue;
        if (now >= p->deadline_ms) {
            s_table_take(self, p->req_id);
            atomic_fetch_add(&self->st_timeout, 1);
            s_fail(self, p, LF_ETIMEDOUT, p->tries ? "no broker answered in time" : "no broker reachable");
            i = (size_t)-1; /* the table moved; rescan (rare) */
            continue;
        }
        if (now >= p->retry_ms) {
            if (p->tries) atomic_fetch_add(&self->st_retried, 1);
            p->retry_ms = s_send(self, p) ? now + self->try_ms : now + 50;
        }
        if (p->retry_ms < next) next = p->retry_ms;
        if (p->deadline_ms < next) next = p->deadline_ms;
    }
    int64_t d = next - now;
    return d < 1 ? 1 : (int)d;
}

/* Handshake failures from broker b's monitor: a warning at most every 30 s
 * per broker (the DEALER retries every couple of seconds). */
static void s_on_monitor(lf_link_t *self, size_t b, int64_t now) {
    for (int k = 0; k < 64; k++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->mon[b], ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t ev = 0; /* frame 1: event (16 bits) + value (32 bits); frame 2: address */
        if (zmq_msg_size(&m) >= 6) memcpy(&ev, zmq_msg_data(&m), sizeof ev);
        while (zmq_msg_more(&m)) {
            zmq_msg_close(&m);
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->mon[b], 0) < 0) break;
        }
        zmq_msg_close(&m);
        if (self->mon_warned_ms[b] && now - self->mon_warned_ms[b] < 30000) continue;
        self->mon_warned_ms[b] = now;
        if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            lf_warn("link: broker %s refused this gateway's CURVE key (is its public certificate in "
                    "the broker's LF_CURVE_CLIENTS_DIR?)",
                    self->ep[b]);
        else
            lf_warn("link: CURVE handshake with broker %s failed (is LF_CURVE_SERVER_CERT that "
                    "broker's certificate, and does it run with CURVE?)",
                    self->ep[b]);
    }
}

static void *s_run(void *arg) {
    lf_link_t *self = arg;
    zmq_pollitem_t items[2 * S_MAX_BROKERS + 1];
    size_t mon_of[S_MAX_BROKERS], n_mon = 0; /* poll slot n + 1 + j -> broker mon_of[j] */
    for (size_t i = 0; i < self->n; i++) items[i] = (zmq_pollitem_t){.socket = self->dealer[i], .events = ZMQ_POLLIN};
    items[self->n] = (zmq_pollitem_t){.fd = self->efd, .events = ZMQ_POLLIN};
    for (size_t i = 0; i < self->n; i++)
        if (self->mon[i]) {
            items[self->n + 1 + n_mon] = (zmq_pollitem_t){.socket = self->mon[i], .events = ZMQ_POLLIN};
            mon_of[n_mon++] = i;
        }
    int timeout = 100;
    int64_t last_sweep = 0;
    zmq_msg_t msg;
    while (!atomic_load(&self->stop)) {
        int64_t before = s_now_ms();
        if (before - self->hb_sent_ms >= self->hb_ms) {
            /* A broker we cannot send to (not connected: ZMQ_IMMEDIATE) is
             * skipped; its silence makes it count as dead. */
            for (size_t i = 0; i < self->n; i++)
                zmq_send(self->dealer[i], self->hb_bytes, self->hb_len, ZMQ_DONTWAIT);
            self->hb_sent_ms = before;
        }
        int wait = self->count ? timeout : 1000;
        int to_hb = (int)(self->hb_sent_ms + self->hb_ms - before);
        if (to_hb < 1) to_hb = 1;
        if (to_hb < wait) wait = to_hb;
        int rc = zmq_poll(items, (int)(self->n + 1 + n_mon), wait);
        if (rc < 0 && errno != EINTR) break;
        int64_t now = s_now_ms();
        for (size_t j = 0; j < n_mon; j++)
            if (items[self->n + 1 + j].revents & ZMQ_POLLIN) s_on_monitor(self, mon_of[j], now);
        if (items[self->n].revents & ZMQ_POLLIN) {
            uint64_t v;
            if (read(self->efd, &v, sizeof v) < 0 && errno != EAGAIN) break;
            s_take_queue(self, now);
        }
        for (size_t i = 0; i < self->n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN)) continue;
            /* Drain; the payload is the last frame (one frame from a ROUTER). */
            for (int k = 0; k < 1024; k++) {
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, self->dealer[i], ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&msg);
                    break;
                }
                while (zmq_msg_more(&msg)) {
                    zmq_msg_close(&msg);
                    zmq_msg_init(&msg);
                    if (zmq_msg_recv(&msg, self->dealer[i], 0) < 0) break;
                }
                atomic_store(&self->heard_ms[i], now);
                s_on_message(self, i, zmq_msg_data(&msg), zmq_msg_size(&msg), now);
                zmq_msg_close(&msg);
            }
        }
        if (self->count && (now - last_sweep >= 20 || rc == 0)) {
            timeout = s_sweep(self, now);
            last_sweep = now;
        }
    }
    /* Stopping: answer everyone. */
    s_take_queue(self, s_now_ms());
    for (size_t i = 0; i < self->cap; i++) {
        s_pend_t *p = self->table[i];
        if (p) {
            self->table[i] = NULL;
            s_fail(self, p, LF_ECANCELED, "the gateway is stopping");
        }
    }
    self->count = 0;
    return NULL;
}

int lf_link_curve_apply(void *zsock, const lf_link_curve_t *curve, char *err, size_t errlen) {
    if (!curve || !curve->server_public || !*curve->server_public) return 0;
    const struct {
        int opt;
        const char *key, *what;
    } k[] = {{ZMQ_CURVE_SERVERKEY, curve->server_public, "the broker's public key"},
             {ZMQ_CURVE_PUBLICKEY, curve->public_key, "our public key"},
             {ZMQ_CURVE_SECRETKEY, curve->secret_key, "our secret key"}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        /* libzmq takes a key as 40 characters of Z85 text (or 32 raw bytes). */
        if (!k[i].key || strlen(k[i].key) != 40 ||
            zmq_setsockopt(zsock, k[i].opt, k[i].key, strlen(k[i].key)) != 0) {
            snprintf(err, errlen, "CURVE: %s is not a valid key: %s", k[i].what,
                     k[i].key && strlen(k[i].key) == 40 ? zmq_strerror(errno) : "not 40 characters of Z85");
            return LF_EINVAL;
        }
    }
    return 0;
}

lf_link_t *lf_link_new(char *const *endpoints, size_t n, int try_ms, int total_ms, int heartbeat_ms,
                       int liveness, const lf_link_curve_t *curve, char *err, size_t errlen) {
    if (n < 1 || n > S_MAX_BROKERS) {
        snprintf(err, errlen, "need 1..%d broker frontends", S_MAX_BROKERS);
        return NULL;
    }
    lf_link_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->try_ms = try_ms > 0 ? try_ms : 2000;
    self->total_ms = total_ms > self->try_ms ? total_ms : self->try_ms;
    self->hb_ms = heartbeat_ms > 0 ? heartbeat_ms : LF_HEARTBEAT_MS;
    self->liveness = liveness > 0 ? liveness : LF_HEARTBEAT_LIVENESS;
    self->started_ms = s_now_ms();
    for (size_t i = 0; i < S_MAX_BROKERS; i++) atomic_init(&self->heard_ms[i], 0);
    self->efd = -1;
    pthread_mutex_init(&self->mu, NULL);
    atomic_init(&self->next_req, 1);
    lf_msg_t hb = {.type = LF_MSG_HEARTBEAT};
    if (lf_msg_encode(&hb, &self->hb_bytes, &self->hb_len) != 0) goto fail;
    self->zctx = zmq_ctx_new();
    if (!self->zctx) goto fail;
    for (size_t i = 0; i < n; i++) {
        void *s = zmq_socket(self->zctx, ZMQ_DEALER);
        if (!s) goto fail;
        self->dealer[self->n++] = s;
        int zero = 0, one = 1, hwm = 100000;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        /* Queue only on connected brokers, so a dead one is skipped at once. */
        zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        int ivl = 100, ivl_max = 2000;
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
        /* CURVE before connect: the options apply to connections made afterwards. */
        if (lf_link_curve_apply(s, curve, err, errlen)) goto fail;
        if (!(self->ep[i] = strdup(endpoints[i]))) goto fail;
        if (curve && curve->server_public && *curve->server_public) {
            char addr[64]; /* inproc names are per context: one context per link */
            snprintf(addr, sizeof addr, "inproc://lf-link-monitor-%zu", i);
            int evs = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                      ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
            void *m = zmq_socket_monitor(s, addr, evs) == 0 ? zmq_socket(self->zctx, ZMQ_PAIR) : NULL;
            if (m) {
                zmq_setsockopt(m, ZMQ_LINGER, &zero, sizeof zero);
                if (zmq_connect(m, addr) == 0) self->mon[i] = m;
                else zmq_close(m);
            } /* else: no warnings, the link works the same */
        }
        if (zmq_connect(s, endpoints[i]) != 0) {
            snprintf(err, errlen, "cannot connect to broker %s: %s", endpoints[i], zmq_strerror(errno));
            goto fail;
        }
    }
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) goto fail;
    if (s_table_grow(self)) goto fail;
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) goto fail;
    self->started = true;
    return self;
fail:
    if (!err[0]) snprintf(err, errlen, "broker link: %s", strerror(errno));
    lf_link_destroy(&self);
    return NULL;
}

void lf_link_stop(lf_link_t *self) {
    if (!self) return;
    pthread_mutex_lock(&self->mu);
    self->closed = true;
    pthread_mutex_unlock(&self->mu);
    if (self->started) {
        atomic_store(&self->stop, true);
        uint64_t one = 1;
        if (write(self->efd, &one, sizeof one) < 0) { /* the thread also wakes on its timeout */
        }
        pthread_join(self->thread, NULL);
        self->started = false;
    }
}

void lf_link_destroy(lf_link_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_link_t *self = *self_p;
    lf_link_stop(self);
    for (size_t i = 0; i < self->n; i++) {
        if (self->mon[i]) zmq_close(self->mon[i]);
        zmq_close(self->dealer[i]);
        free(self->ep[i]);
    }
    if (self->zctx) zmq_ctx_term(self->zctx);
    if (self->efd >= 0) close(self->efd);
    free(self->table);
    free(self->hb_bytes);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

int lf_link_send(lf_link_t *self, lf_msg_t *msg, lf_link_fn fn, void *arg) {
    s_pend_t *p = calloc(1, sizeof *p);
    if (!p) return LF_ENOMEM;
    p->req_id = atomic_fetch_add(&self->next_req, 1);
    p->fn = fn;
    p->arg = arg;
    p->broker = -1;
    msg->req_id = p->req_id;
    int rc = lf_msg_encode(msg, &p->bytes, &p->len);
    if (rc) {
        free(p);
        return rc;
    }
    pthread_mutex_lock(&self->mu);
    if (self->closed) {
        pthread_mutex_unlock(&self->mu);
        free(p->bytes);
        free(p);
        return LF_ECANCELED;
    }
    bool was_empty = !self->qhead;
    if (self->qtail) self->qtail->next = p;
    else self->qhead = p;
    self->qtail = p;
    atomic_fetch_add(&self->st_inflight, 1);
    pthread_mutex_unlock(&self->mu);
    if (was_empty) { /* one poke per batch: the thread takes the whole queue */
        uint64_t one = 1;
        if (write(self->efd, &one, sizeof one) < 0 && errno != EAGAIN) return 0;
    }
    return 0;
}

size_t lf_link_live(lf_link_t *self, bool *known) {
    int64_t now = s_now_ms(), window = (int64_t)self->hb_ms * self->liveness;
    size_t live = 0, heard = 0;
    for (size_t i = 0; i < self->n; i++) {
        int64_t h = atomic_load(&self->heard_ms[i]);
        if (h && now - h <= window) heard++, live += !atomic_load(&self->store_down[i]);
    }
    if (known) *known = heard > 0 || now - self->started_ms > window;
    return live;
}

size_t lf_link_brokers(lf_link_t *self, lf_link_broker_t *out, size_t cap) {
    int64_t now = s_now_ms(), window = (int64_t)self->hb_ms * self->liveness;
    size_t i;
    for (i = 0; i < self->n && i < cap; i++) {
        int64_t h = atomic_load(&self->heard_ms[i]);
        out[i].endpoint = self->ep[i];
        out[i].live = h && now - h <= window;
        out[i].store_ok = !atomic_load(&self->store_down[i]);
        out[i].heard_ms_ago = h ? now - h : -1;
    }
    return self->n;
}

void lf_link_stats(lf_link_t *self, lf_link_stats_t *out) {
    out->sent = atomic_load(&self->st_sent);
    out->retried = atomic_load(&self->st_retried);
    out->timed_out = atomic_load(&self->st_timeout);
    out->answered = atomic_load(&self->st_answered);
    out->in_flight = atomic_load(&self->st_inflight);
}
