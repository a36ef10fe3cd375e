/* lf_heartbeat: the Paranoid Pirate clock of one broker link — pure logic.
 *
 * Tracks, from times the caller passes in (milliseconds, monotonic):
 * when to send the next heartbeat, when the peer counts as dead (no message
 * for interval * liveness), and when to reconnect after a death (exponential
 * backoff from backoff_min to backoff_max, reset by any message from the
 * peer). No sockets and no clock, so tests drive it with made-up times.
 * Plain data; not thread-safe (one owner). */
#ifndef LF_HEARTBEAT_H
#define LF_HEARTBEAT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t interval_ms;    /* heartbeat period, both ways */
    int64_t liveness;       /* missed periods before the peer is dead */
    int64_t backoff_min_ms; /* first reconnect delay */
    int64_t backoff_max_ms; /* cap of the doubling */
} lf_heartbeat_cfg_t;

typedef enum {
    LF_HB_NONE = 0,  /* nothing due before lf_heartbeat_deadline() */
    LF_HB_CONNECT,   /* (re)connect now and announce yourself (READY) */
    LF_HB_SEND,      /* send a heartbeat now */
    LF_HB_DEAD,      /* the peer is dead: close the connection */
} lf_heartbeat_action_t;

typedef struct {
    lf_heartbeat_cfg_t cfg;
    bool up;            /* connected (as far as we know) */
    int64_t up_since;   /* when the current connection was made */
    int64_t send_at;    /* next heartbeat (when up) */
    int64_t expires_at; /* peer dead after this (when up) */
    int64_t connect_at; /* next connect attempt (when down) */
    int64_t backoff_ms; /* delay before the next reconnect after a death */
    uint64_t deaths;    /* how many times the peer was declared dead */
} lf_heartbeat_t;

/* Defaults: 1000 ms, 3, 250 ms, 8000 ms (LF_HEARTBEAT_* of lf_proto.h). */
lf_heartbeat_cfg_t lf_heartbeat_cfg_default(void);

/* Start down, with a connect due at `now`. Out-of-range settings are
 * clamped to sane values (interval >= 10 ms, liveness >= 1, min <= max). */
void lf_heartbeat_init(lf_heartbeat_t *hb, const lf_heartbeat_cfg_t *cfg, int64_t now);

/* The next action due at `now`; call until it returns LF_HB_NONE. Each
 * returned action is taken as done: CONNECT marks the link up (expiry
 * restarts), SEND schedules the next beat, DEAD marks it down and schedules
 * the reconnect (then doubles the backoff). */
lf_heartbeat_action_t lf_heartbeat_poll(lf_heartbeat_t *hb, int64_t now);

/* Any message from the peer: it is alive; the backoff starts over. */
void lf_heartbeat_received(lf_heartbeat_t *hb, int64_t now);

/* The peer said DISCONNECT ("I am leaving" or "I do not know you"): close
 * and reconnect at once, so a broker that lost us hears READY without delay;
 * a broker that really left is then found dead after `liveness` intervals
 * and the backoff applies as usual. A DISCONNECT within one interval of
 * connecting counts as a death (backoff), so a broker that turns us away is
 * not flooded. */
void lf_heartbeat_drop(lf_heartbeat_t *hb, int64_t now);

/* Earliest time something is due (for the poll timeout). */
int64_t lf_heartbeat_deadline(const lf_heartbeat_t *hb);

#endif
