/* lf_link: the worker's connection to one broker — a DEALER socket and its
 * Paranoid Pirate clock (lf_heartbeat).
 *
 * The link (re)creates its socket when the clock says CONNECT and destroys it
 * (linger 0) when the broker is declared dead, so a restarted broker sees a
 * fresh peer and nothing stale is delivered to it. Message content is the
 * caller's business: lf_link_poll() only says what is due (announce, beat,
 * death) and the caller builds READY/HEARTBEAT with lf_proto.
 *
 * Threading: a link and its socket belong to one thread (the worker's main
 * thread). Ownership: lf_link_new returns an object the caller owns. */
#ifndef LF_LINK_H
#define LF_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lf_heartbeat.h"

typedef struct lf_link lf_link_t;

/* CURVE keys (Z85 text, 40 characters each), borrowed for the link's life.
 * server_public NULL = plain TCP. */
typedef struct {
    const char *server_public; /* the broker's public key */
    const char *public_key;    /* ours */
    const char *secret_key;
} lf_link_curve_t;

/* A link to `endpoint` ("tcp://host:port"); down until the first
 * lf_link_poll(). `curve` may be NULL (plain TCP). NULL when the endpoint is
 * not a valid ZeroMQ endpoint or no memory is left. Caller owns the result. */
lf_link_t *lf_link_new(const char *endpoint, const lf_heartbeat_cfg_t *cfg,
                       const lf_link_curve_t *curve, int64_t now);
/* Close (socket linger `linger_ms`, so queued messages such as DISCONNECT
 * can still leave) and free. Accepts NULL; sets *self_p to NULL. */
void lf_link_destroy(lf_link_t **self_p, int linger_ms);

const char *lf_link_endpoint(const lf_link_t *self); /* borrowed */
bool lf_link_up(const lf_link_t *self);
/* The socket handle for zmq_poll (a libzmq void *), NULL while down. */
void *lf_link_handle(const lf_link_t *self);
/* How many times the broker was declared dead (for logs and tests). */
uint64_t lf_link_deaths(const lf_link_t *self);
/* How many CURVE handshakes the broker refused our key in (ZAP said no);
 * the first refusal of each socket is logged as an error naming the fix.
 * Always 0 on plain TCP. */
uint64_t lf_link_refusals(const lf_link_t *self);

/* The next thing due at `now` (see lf_heartbeat_poll); call until
 * LF_HB_NONE. CONNECT: the socket was just (re)created — send READY.
 * SEND: send a HEARTBEAT. DEAD: the socket was closed; nothing to send. */
lf_heartbeat_action_t lf_link_poll(lf_link_t *self, int64_t now);
int64_t lf_link_deadline(const lf_link_t *self);

/* Queue one single-frame message without blocking. LF_ECONN while down,
 * LF_EAGAIN when the send queue is full, LF_EIO otherwise. */
int lf_link_send(lf_link_t *self, const uint8_t *buf, size_t len);

/* Take one message if there is one: *buf malloc'd (caller owns), *len set.
 * Any traffic counts as a sign of life. LF_EAGAIN: nothing waiting;
 * LF_EPROTO: a multi-frame message (read whole and dropped); LF_ECONN: down. */
int lf_link_recv(lf_link_t *self, int64_t now, uint8_t **buf, size_t *len);

/* The broker said DISCONNECT: close now; the next poll reconnects. */
void lf_link_drop(lf_link_t *self, int64_t now);

#endif
