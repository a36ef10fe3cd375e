/* lf_testbroker: see lf_testbroker.h. Failures abort the test with a message
 * (these are test helpers, not library code). */
#include "lf_testbroker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_testredis.h"

#define TB_FAIL(...)                                                                             \
    do {                                                                                         \
        fprintf(stderr, "testbroker: " __VA_ARGS__);                                             \
        fprintf(stderr, "\n");                                                                   \
        abort();                                                                                 \
    } while (0)

void tb_broker_init(tb_broker_t *b, const char *id, int redis_port) {
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", id);
    snprintf(b->fe, sizeof b->fe, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    snprintf(b->be, sizeof b->be, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    snprintf(b->ev, sizeof b->ev, "tcp://127.0.0.1:%d", lf_testredis_free_port());
    b->opts = (lf_broker_opts_t){
        .id = b->id, .frontend = b->fe, .backend = b->be, .events = b->ev,
        .redis = {.port = redis_port, .timeout_ms = 1000},
        .limits = {.lease_ms = 1000},
        .heartbeat_ms = TB_HB_MS, .liveness = 3, .reap_ms = 100,
    };
}

void tb_broker_start(tb_broker_t *b) {
    b->actor = zactor_new(lf_broker_actor, &b->opts);
    if (!b->actor) TB_FAIL("cannot start broker %s", b->id);
}

void tb_broker_stop(tb_broker_t *b) { zactor_destroy(&b->actor); }

/* ---- workers ------------------------------------------------------------------ */

static void s_send(zsock_t *s, const lf_msg_t *m) {
    uint8_t *buf;
    size_t len;
    int rc = lf_msg_encode(m, &buf, &len);
    if (rc) TB_FAIL("encode %s: %s", lf_msg_type_name(m->type), lf_strerror(rc));
    zframe_t *f = zframe_new(buf, len);
    free(buf);
    /* No peer yet (or refused by CURVE): dropped, like the real worker's link. */
    if (zframe_send(&f, s, ZFRAME_DONTWAIT) != 0) zframe_destroy(&f);
}

/* Receive one message within timeout_ms: 0, or -1 on timeout. */
static int s_recv(zsock_t *s, int timeout_ms, lf_msg_t *out) {
    zpoller_t *p = zpoller_new(s, NULL);
    void *r = zpoller_wait(p, timeout_ms);
    zpoller_destroy(&p);
    if (!r) return -1;
    zmsg_t *msg = zmsg_recv(s);
    if (!msg) return -1;
    zframe_t *f = zmsg_last(msg);
    memset(out, 0, sizeof *out);
    int rc = lf_msg_decode(zframe_data(f), zframe_size(f), out, NULL);
    zmsg_destroy(&msg);
    if (rc) TB_FAIL("decode: %s", lf_strerror(rc));
    return 0;
}

static void s_curve_client(zsock_t *s, zcert_t *cert, const char *server_key) {
    if (!cert) return;
    zcert_apply(cert, s);
    zsock_set_curve_serverkey(s, server_key);
}

static void s_caps(tb_worker_t *w, lf_msg_t *m, lf_model_info_t *mi, const char **res) {
    for (size_t i = 0; i < w->n_models; i++) mi[i] = (lf_model_info_t){.name = (char *)w->models[i], .kind = "test"};
    m->caps = (lf_worker_caps_t){.host = "test", .pid = 1, .device_kind = "cpu",
                                 .max_pixels = w->max_pixels, .models = mi,
                                 .n_models = w->n_models, .batch_max = w->batch_max};
    if (w->resident) {
        *res = w->resident;
        m->caps.resident = (char **)res;
        m->caps.n_resident = 1;
    }
}

/* A batching worker's `jobs` (its open jobs), refs of w's strings. */
static void s_jobs(const tb_worker_t *w, lf_msg_t *m, lf_job_ref_t *refs) {
    for (size_t i = 0; w->busy && i < w->n_open && i < 4; i++)
        refs[m->n_jobs++] = (lf_job_ref_t){(char *)w->open[i], w->open_attempt[i]};
    m->jobs = m->n_jobs ? refs : NULL;
}

void tb_worker_ready(tb_worker_t *w) {
    lf_model_info_t mi[4];
    const char *res;
    lf_job_ref_t refs[4];
    lf_msg_t m = {.type = LF_MSG_READY, .worker_id = w->id, .busy = w->busy,
                  .job_id = w->busy ? w->job : NULL, .assigns = w->assigns, .has_assigns = true};
    s_jobs(w, &m, refs);
    s_caps(w, &m, mi, &res);
    s_send(w->sock, &m);
    w->next_beat = zclock_mono() + TB_HB_MS;
}

static void s_beat(tb_worker_t *w) {
    lf_model_info_t mi[4];
    const char *res;
    lf_job_ref_t refs[4];
    lf_msg_t m = {.type = LF_MSG_HEARTBEAT, .worker_id = w->id, .busy = w->busy,
                  .job_id = w->busy ? w->job : NULL, .assigns = w->assigns, .has_assigns = true};
    s_jobs(w, &m, refs);
    s_caps(w, &m, mi, &res);
    s_send(w->sock, &m);
    w->next_beat = zclock_mono() + TB_HB_MS;
}

void tb_worker_open(tb_worker_t *w, const char *id, const char *endpoint, const char *model,
                    zcert_t *cert, const char *server_key) {
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    w->models[0] = model;
    w->n_models = 1;
    w->resident = model;
    w->max_pixels = 4u << 20;
    w->beating = true;
    w->sock = zsock_new(ZMQ_DEALER);
    zsock_set_linger(w->sock, 0);
    s_curve_client(w->sock, cert, server_key);
    if (zsock_connect(w->sock, "%s", endpoint)) TB_FAIL("connect %s", endpoint);
    tb_worker_ready(w);
}

void tb_worker_close(tb_worker_t *w) { zsock_destroy(&w->sock); }

void tb_worker_send(tb_worker_t *w, const lf_msg_t *m) { s_send(w->sock, m); }

int tb_worker_wait(tb_worker_t *w, lf_msg_type_t type, int timeout_ms, lf_msg_t *out) {
    int64_t end = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t now = zclock_mono();
        if (now >= end) return -1;
        if (w->beating && now >= w->next_beat) s_beat(w);
        int slice = (int)(end - now);
        if (w->beating && w->next_beat - now < slice) slice = (int)(w->next_beat - now);
        if (slice < 1) slice = 1;
        lf_msg_t m;
        if (s_recv(w->sock, slice, &m)) continue;
        if (m.type == LF_MSG_CANCEL) {
            w->cancels++;
            snprintf(w->cancelled, sizeof w->cancelled, "%s", m.job_id ? m.job_id : "");
        }
        if (m.type == LF_MSG_ASSIGN && type != LF_MSG_ASSIGN)
            TB_FAIL("worker %s: unexpected ASSIGN of %s", w->id, m.job_id);
        if (m.type == type) {
            if (type == LF_MSG_ASSIGN) {
                w->assigns++;
                w->busy = true;
                snprintf(w->job, sizeof w->job, "%s", m.job_id);
            }
            if (out) *out = m;
            else lf_msg_clear(&m);
            return 0;
        }
        lf_msg_clear(&m);
    }
}

void tb_worker_result(tb_worker_t *w, const char *job) {
    uint8_t png[4] = {0x89, 'P', 'N', 'G'};
    lf_image_out_t img = {{png, sizeof png}, 7, 8, 8};
    lf_msg_t r = {.type = LF_MSG_RESULT, .job_id = (char *)job, .worker_id = w->id,
                  .images = &img, .n_images = 1, .info_json = "{}"};
    s_send(w->sock, &r);
    if (!strcmp(w->job, job)) w->busy = false, w->job[0] = '\0';
}

void tb_worker_idle(tb_worker_t *w, int ms) {
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end) {
        if (w->beating && zclock_mono() >= w->next_beat) s_beat(w);
        lf_msg_t m;
        if (s_recv(w->sock, 20, &m) == 0) {
            if (m.type == LF_MSG_CANCEL) {
                w->cancels++;
                snprintf(w->cancelled, sizeof w->cancelled, "%s", m.job_id ? m.job_id : "");
            }
            if (m.type == LF_MSG_ASSIGN) TB_FAIL("worker %s: unexpected ASSIGN while idling", w->id);
            lf_msg_clear(&m);
        }
    }
}

/* ---- gateways and events ---------------------------------------------------------- */

void tb_gateway_open(tb_gateway_t *g, const char *endpoint, zcert_t *cert, const char *server_key) {
    memset(g, 0, sizeof *g);
    g->next_req = 1;
    g->sock = zsock_new(ZMQ_DEALER);
    zsock_set_linger(g->sock, 0);
    s_curve_client(g->sock, cert, server_key);
    if (zsock_connect(g->sock, "%s", endpoint)) TB_FAIL("connect %s", endpoint);
}

void tb_gateway_close(tb_gateway_t *g) { zsock_destroy(&g->sock); }

uint64_t tb_submit_async(tb_gateway_t *g, const char *model) {
    lf_msg_t m = {.type = LF_MSG_SUBMIT, .req_id = g->next_req++, .priority = LF_PRIO_NORMAL,
                  .params = {.model = (char *)model, .width = 64, .height = 64, .steps = 2,
                             .batch_size = 1}};
    s_send(g->sock, &m);
    return m.req_id;
}

static int s_submit(tb_gateway_t *g, lf_msg_t *m, char *id, bool *duplicate, lf_job_status_t *status);

int tb_submit(tb_gateway_t *g, const char *model, lf_priority_t prio, const char *idem, char *id,
              bool *duplicate) {
    lf_msg_t m = {.type = LF_MSG_SUBMIT, .req_id = g->next_req++, .priority = prio,
                  .idem_key = (char *)idem,
                  .params = {.model = (char *)model, .width = 64, .height = 64, .steps = 2,
                             .batch_size = 1}};
    return s_submit(g, &m, id, duplicate, NULL);
}

int tb_submit_opts(tb_gateway_t *g, const char *model, uint32_t ttl_s, uint32_t max_attempts,
                   char *id) {
    lf_msg_t m = {.type = LF_MSG_SUBMIT, .req_id = g->next_req++, .priority = LF_PRIO_NORMAL,
                  .ttl_s = ttl_s, .max_attempts = max_attempts,
                  .params = {.model = (char *)model, .width = 64, .height = 64, .steps = 2,
                             .batch_size = 1}};
    return s_submit(g, &m, id, NULL, NULL);
}

static int s_submit(tb_gateway_t *g, lf_msg_t *mp, char *id, bool *duplicate, lf_job_status_t *status) {
    lf_msg_t m = *mp;
    s_send(g->sock, &m);
    lf_msg_t r;
    if (s_recv(g->sock, 5000, &r)) TB_FAIL("no answer to SUBMIT");
    if (r.req_id != m.req_id) TB_FAIL("answer for req %llu, expected %llu",
                                      (unsigned long long)r.req_id, (unsigned long long)m.req_id);
    int rc = 0;
    if (r.type == LF_MSG_ACCEPTED) {
        snprintf(id, 40, "%s", r.job_id);
        if (duplicate) *duplicate = r.duplicate;
        if (status) *status = r.status;
    } else if (r.type == LF_MSG_REPLY) {
        rc = r.code ? r.code : LF_EINTERNAL;
    } else {
        TB_FAIL("unexpected %s to SUBMIT", lf_msg_type_name(r.type));
    }
    lf_msg_clear(&r);
    return rc;
}

/* Send m and wait for its REPLY: the code. */
static int s_request(tb_gateway_t *g, lf_msg_t *m) {
    m->req_id = g->next_req++;
    s_send(g->sock, m);
    lf_msg_t r;
    if (s_recv(g->sock, 5000, &r)) TB_FAIL("no answer to %s", lf_msg_type_name(m->type));
    if (r.type != LF_MSG_REPLY) TB_FAIL("unexpected %s to %s", lf_msg_type_name(r.type), lf_msg_type_name(m->type));
    int rc = r.code;
    lf_msg_clear(&r);
    return rc;
}

int tb_cancel(tb_gateway_t *g, const char *id) {
    return s_request(g, &(lf_msg_t){.type = LF_MSG_CANCEL, .job_id = (char *)id});
}

int tb_submit_enhance(tb_gateway_t *g, const char *model, uint32_t enhance_ms, char *id,
                      lf_job_status_t *status) {
    lf_msg_t m = {.type = LF_MSG_SUBMIT, .req_id = g->next_req++, .priority = LF_PRIO_NORMAL,
                  .enhance_ms = enhance_ms,
                  .params = {.model = (char *)model, .prompt = "a cat", .enhance_prompt = true, .width = 64,
                             .height = 64, .steps = 2, .batch_size = 1}};
    return s_submit(g, &m, id, NULL, status);
}

int tb_enhanced(tb_gateway_t *g, const char *id, const char *prompt, const char *error) {
    return s_request(g, &(lf_msg_t){.type = LF_MSG_ENHANCED, .job_id = (char *)id, .prompt = (char *)prompt,
                                    .code = prompt ? 0 : LF_EPROTO, .message = (char *)error});
}

zsock_t *tb_sub_open(const char *endpoint) {
    zsock_t *s = zsock_new_sub(endpoint, "");
    if (!s) TB_FAIL("sub %s", endpoint);
    return s;
}

int tb_sub_wait(zsock_t *sub, const char *id, lf_event_kind_t kind, int timeout_ms, lf_msg_t *out) {
    int64_t end = zclock_mono() + timeout_ms;
    while (zclock_mono() < end) {
        lf_msg_t m;
        if (s_recv(sub, (int)(end - zclock_mono()) + 1, &m)) continue;
        if (m.type == LF_MSG_EVENT && m.event == kind && (!id || !strcmp(m.job_id, id))) {
            if (out) *out = m;
            else lf_msg_clear(&m);
            return 0;
        }
        lf_msg_clear(&m);
    }
    return -1;
}

lf_store_t *tb_store(int redis_port) {
    char err[256];
    lf_store_opts_t o = {.port = redis_port};
    lf_store_t *s = lf_store_new(&o, err, sizeof err);
    if (!s) TB_FAIL("store: %s", err);
    return s;
}

lf_job_status_t tb_status(lf_store_t *s, const char *id) {
    lf_job_view_t v;
    if (lf_store_job_get(s, id, &v)) TB_FAIL("job %s not found", id);
    lf_job_status_t st = v.status;
    lf_job_view_clear(&v);
    return st;
}

int tb_wait_status(lf_store_t *s, const char *id, lf_job_status_t st, int timeout_ms) {
    int64_t end = zclock_mono() + timeout_ms;
    while (zclock_mono() < end) {
        if (tb_status(s, id) == st) return 0;
        zclock_sleep(20);
    }
    return -1;
}
