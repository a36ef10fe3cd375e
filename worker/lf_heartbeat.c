/* lf_heartbeat: Paranoid Pirate timing. See lf_heartbeat.h. */
#include "lf_heartbeat.h"

#include "lf_proto.h"

lf_heartbeat_cfg_t lf_heartbeat_cfg_default(void) {
    return (lf_heartbeat_cfg_t){LF_HEARTBEAT_MS, LF_HEARTBEAT_LIVENESS, 250, 8000};
}

void lf_heartbeat_init(lf_heartbeat_t *hb, const lf_heartbeat_cfg_t *cfg, int64_t now) {
    lf_heartbeat_cfg_t c = cfg ? *cfg : lf_heartbeat_cfg_default();
    if (c.interval_ms < 10) c.interval_ms = 10;
    if (c.liveness < 1) c.liveness = 1;
    if (c.backoff_min_ms < 1) c.backoff_min_ms = 1;
    if (c.backoff_max_ms < c.backoff_min_ms) c.backoff_max_ms = c.backoff_min_ms;
    *hb = (lf_heartbeat_t){.cfg = c, .up = false, .connect_at = now,
                           .backoff_ms = c.backoff_min_ms};
}

static void s_down(lf_heartbeat_t *hb, int64_t now) {
    hb->up = false;
    hb->deaths++;
    hb->connect_at = now + hb->backoff_ms;
    hb->backoff_ms *= 2;
    if (hb->backoff_ms > hb->cfg.backoff_max_ms) hb->backoff_ms = hb->cfg.backoff_max_ms;
}

lf_heartbeat_action_t lf_heartbeat_poll(lf_heartbeat_t *hb, int64_t now) {
    if (!hb->up) {
        if (now < hb->connect_at) return LF_HB_NONE;
        hb->up = true;
        hb->up_since = now;
        hb->expires_at = now + hb->cfg.interval_ms * hb->cfg.liveness;
        hb->send_at = now + hb->cfg.interval_ms; /* READY stands for the first beat */
        return LF_HB_CONNECT;
    }
    if (now >= hb->expires_at) {
        s_down(hb, now);
        return LF_HB_DEAD;
    }
    if (now >= hb->send_at) {
        hb->send_at = now + hb->cfg.interval_ms;
        return LF_HB_SEND;
    }
    return LF_HB_NONE;
}

void lf_heartbeat_received(lf_heartbeat_t *hb, int64_t now) {
    if (!hb->up) return; /* a late message from a closed connection */
    hb->expires_at = now + hb->cfg.interval_ms * hb->cfg.liveness;
    hb->backoff_ms = hb->cfg.backoff_min_ms;
}

void lf_heartbeat_drop(lf_heartbeat_t *hb, int64_t now) {
    if (!hb->up) return;
    if (now - hb->up_since < hb->cfg.interval_ms) {
        /* Turned away right after connecting: back off, or a broker that
         * refuses us would be hammered with READYs. */
        s_down(hb, now);
        return;
    }
    hb->up = false;
    hb->deaths++;
    hb->connect_at = now;
}

int64_t lf_heartbeat_deadline(const lf_heartbeat_t *hb) {
    if (!hb->up) return hb->connect_at;
    return hb->send_at < hb->expires_at ? hb->send_at : hb->expires_at;
}
