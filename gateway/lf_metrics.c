/* lf_metrics: GET /metrics in the Prometheus text format — queue depth per
 * priority, jobs by state, live workers and dead letters (from Redis), the
 * farm's queue-wait and run-time histograms (kept by the brokers in Redis),
 * and this gateway's own request counts and latency histograms by route. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_gateway_impl.h"

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} s_out_t;

static void s_put(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_put(s_out_t *o, const char *fmt, ...) {
    if (o->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, cap);
        if (!nb) {
            o->oom = true;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void s_label(s_out_t *o, const char *v) {
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"') s_put(o, "\\%c", *p);
        else if (*p == '\n') s_put(o, "\\n");
        else s_put(o, "%c", *p);
    }
}

/* Each live worker's device and its memory (RAM for a CPU worker, the GPU's
 * own memory for a worker per GPU), and whether it runs a job now. */
static void s_workers(s_out_t *o, lf_store_t *stt) {
    lf_worker_view_t *ws = NULL;
    size_t n = 0;
    if (lf_store_workers_list(stt, &ws, &n) != 0) return;
    s_put(o, "# HELP lf_worker_memory_bytes Memory of each live worker's device (RAM, or its GPU's).\n"
             "# TYPE lf_worker_memory_bytes gauge\n");
    for (size_t i = 0; i < n; i++) {
        s_put(o, "lf_worker_memory_bytes{worker=\"");
        s_label(o, ws[i].id);
        s_put(o, "\",device=\"");
        s_label(o, ws[i].caps.device_kind);
        s_put(o, "\",device_name=\"");
        s_label(o, ws[i].caps.device_name);
        s_put(o, "\"} %llu\n", (unsigned long long)ws[i].caps.memory_bytes);
    }
    s_put(o, "# HELP lf_worker_busy Whether each live worker runs a job now.\n# TYPE lf_worker_busy gauge\n");
    for (size_t i = 0; i < n; i++) {
        s_put(o, "lf_worker_busy{worker=\"");
        s_label(o, ws[i].id);
        s_put(o, "\"} %d\n", ws[i].job_id && *ws[i].job_id ? 1 : 0);
    }
    s_put(o, "# HELP lf_worker_batched_jobs_total Jobs each live worker ran in batches of two or more "
             "(LF_BATCH_MAX).\n# TYPE lf_worker_batched_jobs_total counter\n");
    for (size_t i = 0; i < n; i++) {
        s_put(o, "lf_worker_batched_jobs_total{worker=\"");
        s_label(o, ws[i].id);
        s_put(o, "\"} %llu\n", (unsigned long long)ws[i].caps.batched);
    }
    for (size_t i = 0; i < n; i++) lf_worker_view_clear(&ws[i]);
    free(ws);
}

int lf__metrics(lf_gateway_t *gw, lf_req_t *req) {
    s_out_t o = {.cap = 16384};
    o.buf = malloc(o.cap);
    if (!o.buf) return lf__err(req, 500, "internal", "", "out of memory");
    o.buf[0] = 0;
    lf_store_t *stt = lf__store_get(gw);
    lf_store_stats_t ss;
    int rc = stt ? lf_store_stats(stt, &ss) : LF_ECONN;
    s_put(&o, "# HELP lf_redis_up Whether the gateway can read the farm's state from Redis.\n# TYPE lf_redis_up gauge\nlf_redis_up %d\n", rc == 0);
    if (rc == 0) {
        s_put(&o, "# HELP lf_queue_depth Jobs waiting, by priority.\n# TYPE lf_queue_depth gauge\n");
        for (int p = 0; p < LF_PRIO__COUNT; p++)
            s_put(&o, "lf_queue_depth{priority=\"%s\"} %lld\n", lf_priority_name((lf_priority_t)p), (long long)ss.queued[p]);
        s_put(&o, "# HELP lf_jobs_running Jobs running now.\n# TYPE lf_jobs_running gauge\nlf_jobs_running %lld\n", (long long)ss.running);
        s_put(&o, "# HELP lf_jobs_total Jobs that reached a state (cumulative).\n# TYPE lf_jobs_total counter\n");
        for (int s = 0; s < LF_JOB__COUNT; s++)
            s_put(&o, "lf_jobs_total{state=\"%s\"} %lld\n", lf_job_status_name((lf_job_status_t)s), (long long)ss.by_status[s]);
        s_put(&o, "# HELP lf_workers_live Workers seen within the liveness window.\n# TYPE lf_workers_live gauge\nlf_workers_live %lld\n", (long long)ss.live_workers);
        s_put(&o, "# HELP lf_dead_letters Jobs that failed after their last attempt.\n# TYPE lf_dead_letters gauge\nlf_dead_letters %lld\n", (long long)ss.dead_letters);
        for (int w = 0; w < LF_STORE_LAT__COUNT; w++) {
            lf_store_hist_t h;
            if (lf_store_latency_get(stt, (lf_store_lat_t)w, &h) != 0) continue;
            const char *name = lf_store_lat_name((lf_store_lat_t)w);
            s_put(&o, "# HELP lf_job_%s_seconds Job %s time.\n# TYPE lf_job_%s_seconds histogram\n", name, name, name);
            for (int b = 0; b < LF_STORE_HIST_BUCKETS; b++) {
                if (isinf(h.le_s[b])) s_put(&o, "lf_job_%s_seconds_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h.cumulative[b]);
                else s_put(&o, "lf_job_%s_seconds_bucket{le=\"%g\"} %llu\n", name, h.le_s[b], (unsigned long long)h.cumulative[b]);
                if (isinf(h.le_s[b])) break;
            }
            s_put(&o, "lf_job_%s_seconds_sum %g\nlf_job_%s_seconds_count %llu\n", name, h.sum_s, name, (unsigned long long)h.count);
        }
        s_workers(&o, stt);
    }
    lf__store_put(gw, stt, rc);

    size_t n;
    const lf_route_t *routes = lf_routes_table(&n);
    s_put(&o, "# HELP lf_http_requests_total HTTP requests answered, by route and status class.\n# TYPE lf_http_requests_total counter\n");
    for (int r = 0; r < LF_ROUTE__COUNT; r++) {
        const char *rn = r == 0 ? "static" : routes[r - 1].name;
        for (int c = 1; c < 6; c++) {
            uint64_t v = atomic_load(&gw->req_by_class[r][c]);
            if (v) s_put(&o, "lf_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n", rn, c, (unsigned long long)v);
        }
    }
    s_put(&o, "# HELP lf_http_request_duration_seconds Time from request headers to the end of the answer.\n# TYPE lf_http_request_duration_seconds histogram\n");
    for (int r = 0; r < LF_ROUTE__COUNT; r++) {
        uint64_t count = atomic_load(&gw->lat_count[r]);
        if (!count) continue;
        const char *rn = r == 0 ? "static" : routes[r - 1].name;
        uint64_t cum = 0;
        for (int b = 0; b < LF__HIST_N; b++) {
            cum += atomic_load(&gw->lat_bucket[r][b]);
            if (isinf(lf__hist_le[b])) s_put(&o, "lf_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", rn, (unsigned long long)cum);
            else s_put(&o, "lf_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", rn, lf__hist_le[b], (unsigned long long)cum);
        }
        s_put(&o, "lf_http_request_duration_seconds_sum{route=\"%s\"} %g\nlf_http_request_duration_seconds_count{route=\"%s\"} %llu\n", rn,
              (double)atomic_load(&gw->lat_sum_us[r]) / 1e6, rn, (unsigned long long)count);
    }
    lf_link_stats_t ls;
    lf_link_stats(gw->link, &ls);
    s_put(&o, "# TYPE lf_gateway_broker_requests_total counter\nlf_gateway_broker_requests_total{result=\"sent\"} %llu\n"
              "lf_gateway_broker_requests_total{result=\"retried\"} %llu\nlf_gateway_broker_requests_total{result=\"timed_out\"} %llu\n"
              "# TYPE lf_gateway_broker_in_flight gauge\nlf_gateway_broker_in_flight %llu\n",
          (unsigned long long)ls.sent, (unsigned long long)ls.retried, (unsigned long long)ls.timed_out, (unsigned long long)ls.in_flight);
    s_put(&o, "# TYPE lf_gateway_brokers_live gauge\nlf_gateway_brokers_live %zu\n# TYPE lf_gateway_brokers_configured gauge\n"
              "lf_gateway_brokers_configured %zu\n",
          lf_link_live(gw->link, NULL), gw->n_brokers);
    lf_link_broker_t bl[16];
    size_t nb = lf_link_brokers(gw->link, bl, 16), cut = 0;
    for (size_t i = 0; i < nb && i < 16; i++) cut += bl[i].live && !bl[i].store_ok;
    s_put(&o, "# HELP lf_gateway_brokers_redis_down Brokers that answer but cannot reach Redis (they assign nothing).\n"
              "# TYPE lf_gateway_brokers_redis_down gauge\nlf_gateway_brokers_redis_down %zu\n", cut);
    lf_hub_stats_t hs;
    lf_hub_stats(gw->hub, &hs);
    s_put(&o, "# TYPE lf_gateway_events_total counter\nlf_gateway_events_total %llu\n# TYPE lf_gateway_subscribers gauge\nlf_gateway_subscribers %llu\n",
          (unsigned long long)hs.received, (unsigned long long)hs.subscribers);
    if (o.oom) {
        free(o.buf);
        return lf__err(req, 500, "internal", "", "out of memory");
    }
    lf_req_respond_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", o.buf, o.len);
    return LF_HTTP_DONE;
}
