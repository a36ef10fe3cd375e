/* lf_link: one DEALER to one broker with reconnects. See lf_link.h. */
#include "lf_link.h"

#include <czmq.h>
#include <errno.h>
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
int64_t lf_link_deadline(const lf_link_t *self) { return lf_heartbeat_deadline(&self->hb); }

lf_heartbeat_action_t lf_link_poll(lf_link_t *self, int64_t now) {
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
        break;
    case LF_HB_DEAD:
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
    zsock_destroy(&self->sock);
}
