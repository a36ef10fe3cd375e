/* lf_link: one DEALER to one broker with reconnects. See lf_link.h.
 *
 * With CURVE, a broker that does not know our key closes the handshake and
 * nothing else happens: the socket looks connected and silent. libzmq tells
 * which (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) only through a socket monitor, so
 * an encrypted link watches its socket through an inproc PAIR, read (never
 * waited on) at every poll by the thread that owns the link. */
#include "lf_link.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_log.h"
#include "lf_proto.h"

struct lf_link {
    char *endpoint;
    lf_link_curve_t curve;
    lf_heartbeat_t hb;
    zsock_t *sock; /* NULL while down */
    zsock_t *mon;  /* monitor of sock's handshakes (CURVE only), NULL otherwise */
    uint64_t refusals;
    bool said_refused; /* logged for the current socket */
    unsigned mon_gen;  /* makes each monitor's inproc endpoint new */
};

static zsock_t *s_open(const char *endpoint, const lf_link_curve_t *curve) {
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s) return NULL;
    if (curve && curve->server_public) {
        zsock_set_curve_serverkey(s, curve->server_public);
        zsock_set_curve_publickey(s, curve->public_key);
        zsock_set_curve_secretkey(s, curve->secret_key);
    }
    zsock_set_linger(s, 0);
    zsock_set_sndhwm(s, 10000);
    zsock_set_rcvhwm(s, 10000);
    /* Inbound ASSIGNs may carry an init image; anything bigger than the
     * protocol allows is refused by libzmq before it is read. */
    zsock_set_maxmsgsize(s, (int64_t)LF_PROTO_MAX_BYTES);
    if (zsock_connect(s, "%s", endpoint) != 0) {
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}

/* Watch sock's handshake failures (CURVE); the link works without it. */
static void s_monitor_open(lf_link_t *self) {
    if (!self->curve.server_public || !self->sock) return;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://lf-link-monitor-%p-%u", (void *)self, self->mon_gen++);
    if (zmq_socket_monitor(zsock_resolve(self->sock), ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
        return;
    self->mon = zsock_new(ZMQ_PAIR);
    if (self->mon && zsock_connect(self->mon, "%s", ep) != 0) zsock_destroy(&self->mon);
    self->said_refused = false;
}

static void s_monitor_close(lf_link_t *self) {
    if (self->sock && self->mon) zmq_socket_monitor(zsock_resolve(self->sock), NULL, 0);
    zsock_destroy(&self->mon);
}

/* Read the monitor's events: [uint16 event, uint32 value][endpoint]. */
static void s_monitor_read(lf_link_t *self) {
    if (!self->mon) return;
    void *h = zsock_resolve(self->mon);
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, h, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) {
            zmq_msg_init(&addr);
            if (zmq_msg_recv(&addr, h, ZMQ_DONTWAIT) < 0) more = false;
            else more = zmq_msg_more(&addr);
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            self->refusals++;
            if (!self->said_refused)
                lf_error("broker %s refused this worker's CURVE key (ZAP status %u): add the "
                         "worker's public certificate to the broker's LF_CURVE_CLIENTS_DIR, "
                         "or give the worker a certificate from there (LF_CURVE_CERT)",
                         self->endpoint, (unsigned)value);
            self->said_refused = true;
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            if (!self->said_refused)
                lf_error("the CURVE handshake with broker %s failed (%s): is "
                         "LF_CURVE_SERVER_CERT the broker's public certificate?",
                         self->endpoint,
                         event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error"
                                                                      : "no detail");
            self->said_refused = true;
        }
    }
}

lf_link_t *lf_link_new(const char *endpoint, const lf_heartbeat_cfg_t *cfg,
                       const lf_link_curve_t *curve, int64_t now) {
    if (!endpoint || !*endpoint) return NULL;
    if (curve && curve->server_public && (!curve->public_key || !curve->secret_key)) return NULL;
    /* Check the endpoint once up front, so a typo fails at start-up. */
    zsock_t *probe = s_open(endpoint, curve);
    if (!probe) return NULL;
    zsock_destroy(&probe);
    lf_link_t *self = calloc(1, sizeof *self);
    if (!self || !(self->endpoint = strdup(endpoint))) {
        free(self);
        return NULL;
    }
    if (curve) self->curve = *curve;
    lf_heartbeat_init(&self->hb, cfg, now);
    return self;
}

void lf_link_destroy(lf_link_t **self_p, int linger_ms) {
    if (!self_p || !*self_p) return;
    lf_link_t *self = *self_p;
    s_monitor_close(self);
    if (self->sock) {
        zsock_set_linger(self->sock, linger_ms);
        zsock_destroy(&self->sock);
    }
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

const char *lf_link_endpoint(const lf_link_t *self) { return self->endpoint; }
bool lf_link_up(const lf_link_t *self) { return self->sock != NULL; }
void *lf_link_handle(const lf_link_t *self) {
    return self->sock ? zsock_resolve(self->sock) : NULL;
}
uint64_t lf_link_deaths(const lf_link_t *self) { return self->hb.deaths; }
uint64_t lf_link_refusals(const lf_link_t *self) { return self->refusals; }
int64_t lf_link_deadline(const lf_link_t *self) { return lf_heartbeat_deadline(&self->hb); }

lf_heartbeat_action_t lf_link_poll(lf_link_t *self, int64_t now) {
    s_monitor_read(self);
    lf_heartbeat_action_t a = lf_heartbeat_poll(&self->hb, now);
    switch (a) {
    case LF_HB_CONNECT:
        LF_ASSERT(!self->sock);
        self->sock = s_open(self->endpoint, &self->curve);
        if (!self->sock) {
            /* Out of sockets or memory: count it as a death and retry later. */
            lf_warn("cannot open a socket to %s; retrying", self->endpoint);
            lf_heartbeat_drop(&self->hb, now);
            return LF_HB_DEAD;
        }
        s_monitor_open(self);
        break;
    case LF_HB_DEAD:
        s_monitor_close(self);
        zsock_destroy(&self->sock);
        break;
    default: break;
    }
    return a;
}

int lf_link_send(lf_link_t *self, const uint8_t *buf, size_t len) {
    if (!self->sock) return LF_ECONN;
    if (zmq_send(zsock_resolve(self->sock), buf, len, ZMQ_DONTWAIT) >= 0) return 0;
    return errno == EAGAIN ? LF_EAGAIN : LF_EIO;
}

int lf_link_recv(lf_link_t *self, int64_t now, uint8_t **buf, size_t *len) {
    if (!self->sock) return LF_ECONN;
    void *h = zsock_resolve(self->sock);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, h, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return LF_EAGAIN;
    }
    lf_heartbeat_received(&self->hb, now);
    int rc = 0;
    if (zmq_msg_more(&msg)) {
        rc = LF_EPROTO;
        /* The rest of a multipart message is already here (atomic delivery). */
        do {
            zmq_msg_close(&msg);
            zmq_msg_init(&msg);
        } while (zmq_msg_recv(&msg, h, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&msg));
    } else {
        size_t n = zmq_msg_size(&msg);
        uint8_t *copy = malloc(n ? n : 1);
        if (!copy) {
            rc = LF_ENOMEM;
        } else {
            memcpy(copy, zmq_msg_data(&msg), n);
            *buf = copy;
            *len = n;
        }
    }
    zmq_msg_close(&msg);
    return rc;
}

void lf_link_drop(lf_link_t *self, int64_t now) {
    if (!self->sock) return;
    lf_heartbeat_drop(&self->hb, now);
    s_monitor_close(self);
    zsock_destroy(&self->sock);
}
