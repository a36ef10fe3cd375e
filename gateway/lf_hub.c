/* lf_hub: SUB sockets + a chained hash table of subscriptions by job id. */
#include "lf_hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "lf_error.h"
#include "lf_log.h"

#define S_MAX_EP 16
#define S_BUCKETS 4096

typedef struct s_sub {
    char job_id[64];
    lf_hub_fn fn;
    void (*release)(void *);
    void *arg;
    struct s_sub *next;
} s_sub_t;

struct lf_hub {
    void *zctx;
    void *sub[S_MAX_EP];
    size_t n;
    int efd;
    void *ud;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu;
    bool closed;
    s_sub_t *b[S_BUCKETS];
    atomic_uint_fast64_t st_recv, st_deliv, st_subs;
};

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t s_hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)(h % S_BUCKETS);
}

/* Caller holds mu. Calls fn for matching subs (all subs when job == NULL). */
static void s_dispatch(lf_hub_t *self, size_t bucket, const char *job, const lf_msg_t *ev, int64_t now) {
    s_sub_t **pp = &self->b[bucket];
    while (*pp) {
        s_sub_t *s = *pp;
        if (job && strcmp(s->job_id, job) != 0) {
            pp = &s->next;
            continue;
        }
        atomic_fetch_add(&self->st_deliv, 1);
        if (s->fn(self->ud, s->arg, ev, now) == LF_HUB_DROP) {
            *pp = s->next;
            if (s->release) s->release(s->arg);
            free(s);
            atomic_fetch_sub(&self->st_subs, 1);
        } else {
            pp = &s->next;
        }
    }
}

static void s_on_event(lf_hub_t *self, const char *topic, size_t tlen, const uint8_t *buf, size_t len) {
    if (tlen == 0 || tlen >= 64) return;
    char job[64];
    memcpy(job, topic, tlen);
    job[tlen] = 0;
    size_t bucket = s_hash(job, tlen);
    pthread_mutex_lock(&self->mu);
    bool wanted = false;
    for (s_sub_t *s = self->b[bucket]; s && !wanted; s = s->next) wanted = !strcmp(s->job_id, job);
    if (wanted) {
        lf_msg_t m = {0};
        if (lf_msg_decode(buf, len, &m, NULL) == 0 && m.type == LF_MSG_EVENT)
            s_dispatch(self, bucket, job, &m, s_now_ms());
        lf_msg_clear(&m);
    }
    pthread_mutex_unlock(&self->mu);
}

static void s_tick(lf_hub_t *self, int64_t now) {
    pthread_mutex_lock(&self->mu);
    for (size_t i = 0; i < S_BUCKETS; i++)
        if (self->b[i]) s_dispatch(self, i, NULL, NULL, now);
    pthread_mutex_unlock(&self->mu);
}

static void *s_run(void *arg) {
    lf_hub_t *self = arg;
    zmq_pollitem_t items[S_MAX_EP + 1];
    for (size_t i = 0; i < self->n; i++) items[i] = (zmq_pollitem_t){.socket = self->sub[i], .events = ZMQ_POLLIN};
    items[self->n] = (zmq_pollitem_t){.fd = self->efd, .events = ZMQ_POLLIN};
    int64_t next_tick = s_now_ms() + 1000;
    zmq_msg_t topic, body;
    while (!atomic_load(&self->stop)) {
        int64_t now = s_now_ms();
        int wait = next_tick > now ? (int)(next_tick - now) : 0;
        int rc = zmq_poll(items, (int)self->n + 1, wait);
        if (rc < 0 && errno != EINTR) break;
        if (items[self->n].revents & ZMQ_POLLIN) {
            uint64_t v;
            if (read(self->efd, &v, sizeof v) < 0 && errno != EAGAIN) break;
        }
        for (size_t i = 0; i < self->n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN)) continue;
            for (int k = 0; k < 4096; k++) {
                zmq_msg_init(&topic);
                if (zmq_msg_recv(&topic, self->sub[i], ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&topic);
                    break;
                }
                atomic_fetch_add(&self->st_recv, 1);
                if (!zmq_msg_more(&topic)) { /* a one-frame message: not ours */
                    zmq_msg_close(&topic);
                    continue;
                }
                zmq_msg_init(&body);
                zmq_msg_recv(&body, self->sub[i], 0);
                while (zmq_msg_more(&body)) { /* extra frames: keep the last */
                    zmq_msg_close(&body);
                    zmq_msg_init(&body);
                    if (zmq_msg_recv(&body, self->sub[i], 0) < 0) break;
                }
                s_on_event(self, zmq_msg_data(&topic), zmq_msg_size(&topic), zmq_msg_data(&body),
                           zmq_msg_size(&body));
                zmq_msg_close(&body);
                zmq_msg_close(&topic);
            }
        }
        now = s_now_ms();
        if (now >= next_tick) {
            s_tick(self, now);
            next_tick = now + 1000;
        }
    }
    /* Final tick: everyone ends, then is released. */
    pthread_mutex_lock(&self->mu);
    self->closed = true;
    for (size_t i = 0; i < S_BUCKETS; i++) {
        s_sub_t *s = self->b[i];
        self->b[i] = NULL;
        while (s) {
            s_sub_t *next = s->next;
            s->fn(self->ud, s->arg, NULL, INT64_MAX);
            if (s->release) s->release(s->arg);
            free(s);
            s = next;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

lf_hub_t *lf_hub_new(char *const *endpoints, size_t n, void *hub_ud, const lf_link_curve_t *curve,
                     char *err, size_t errlen) {
    if (n < 1 || n > S_MAX_EP) {
        snprintf(err, errlen, "need 1..%d broker event endpoints", S_MAX_EP);
        return NULL;
    }
    lf_hub_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->ud = hub_ud;
    self->efd = -1;
    pthread_mutex_init(&self->mu, NULL);
    self->zctx = zmq_ctx_new();
    if (!self->zctx) goto fail;
    for (size_t i = 0; i < n; i++) {
        void *s = zmq_socket(self->zctx, ZMQ_SUB);
        if (!s) goto fail;
        self->sub[self->n++] = s;
        int zero = 0, hwm = 200000;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
        int ivl = 100, ivl_max = 2000;
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
        /* The broker's PUB is a CURVE server too: without the keys we would see nothing. */
        if (lf_link_curve_apply(s, curve, err, errlen)) goto fail;
        if (zmq_connect(s, endpoints[i]) != 0) {
            snprintf(err, errlen, "cannot connect to broker events %s: %s", endpoints[i],
                     zmq_strerror(errno));
            goto fail;
        }
    }
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) goto fail;
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) goto fail;
    self->started = true;
    return self;
fail:
    if (!err[0]) snprintf(err, errlen, "event hub: %s", strerror(errno));
    lf_hub_destroy(&self);
    return NULL;
}

void lf_hub_stop(lf_hub_t *self) {
    if (!self || !self->started) return;
    atomic_store(&self->stop, true);
    uint64_t one = 1;
    if (write(self->efd, &one, sizeof one) < 0) { /* the thread wakes on its tick anyway */
    }
    pthread_join(self->thread, NULL);
    self->started = false;
}

void lf_hub_destroy(lf_hub_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_hub_t *self = *self_p;
    lf_hub_stop(self);
    for (size_t i = 0; i < self->n; i++) zmq_close(self->sub[i]);
    if (self->zctx) zmq_ctx_term(self->zctx);
    if (self->efd >= 0) close(self->efd);
    for (size_t i = 0; i < S_BUCKETS; i++) { /* never started: nothing ran */
        s_sub_t *s = self->b[i];
        while (s) {
            s_sub_t *next = s->next;
            if (s->release) s->release(s->arg);
            free(s);
            s = next;
        }
    }
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

int lf_hub_subscribe(lf_hub_t *self, const char *job_id, lf_hub_fn fn, void (*release)(void *),
                     void *arg) {
    size_t len = strlen(job_id);
    s_sub_t *s = len < 64 ? calloc(1, sizeof *s) : NULL;
    if (!s) {
        if (release) release(arg);
        return LF_ENOMEM;
    }
    memcpy(s->job_id, job_id, len + 1);
    s->fn = fn;
    s->release = release;
    s->arg = arg;
    size_t bucket = s_hash(job_id, len);
    pthread_mutex_lock(&self->mu);
    if (self->closed) {
        pthread_mutex_unlock(&self->mu);
        free(s);
        if (release) release(arg);
        return LF_ECANCELED;
    }
    s->next = self->b[bucket];
    self->b[bucket] = s;
    atomic_fetch_add(&self->st_subs, 1);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

void lf_hub_stats(lf_hub_t *self, lf_hub_stats_t *out) {
    out->received = atomic_load(&self->st_recv);
    out->delivered = atomic_load(&self->st_deliv);
    out->subscribers = atomic_load(&self->st_subs);
}
