/* lf_api: the native API handlers (/v1/...). Reads go to Redis through a
 * pooled lf_store_t; submits and cancels go to a broker through the link
 * (the request is suspended meanwhile); event streams are fed by the hub. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_b64.h"
#include "lf_error.h"
#include "lf_gateway_impl.h"
#include "lf_id.h"
#include "lf_idem.h"
#include "lf_image.h"
#include "lf_log.h"
#include "lf_openai_map.h"
#include "lf_schema.h"

/* ------------------------------------------------------------- job JSON */

/* The job's parameters as the table names them (lf_params.h). */
static json_t *s_params_json(const lf_job_params_t *p) { return lf_params_json(p, false); }

json_t *lf__job_json(const lf_job_view_t *v) {
    json_t *j = json_object();
    if (!j) return NULL;
    json_object_set_new(j, "id", json_string(v->id ? v->id : ""));
    json_object_set_new(j, "status", json_string(lf_job_status_name(v->status)));
    json_object_set_new(j, "priority", json_string(lf_priority_name(v->priority)));
    json_object_set_new(j, "attempts", json_integer(v->attempts));
    json_object_set_new(j, "max_attempts", json_integer(v->max_attempts));
    json_object_set_new(j, "worker", v->worker_id ? json_string(v->worker_id) : json_null());
    json_object_set_new(j, "position", v->status == LF_JOB_QUEUED && v->position >= 0 ? json_integer(v->position) : json_null());
    uint32_t steps = v->steps ? v->steps : v->params.steps;
    double frac = v->status == LF_JOB_DONE ? 1.0 : steps ? (double)v->step / steps : 0.0;
    json_object_set_new(j, "progress", json_pack("{s:i,s:i,s:f}", "step", (json_int_t)v->step, "steps",
                                                 (json_int_t)steps, "fraction", frac));
    json_object_set_new(j, "created_ms", json_integer(v->created_ms));
    json_object_set_new(j, "started_ms", v->started_ms ? json_integer(v->started_ms) : json_null());
    json_object_set_new(j, "finished_ms", v->finished_ms ? json_integer(v->finished_ms) : json_null());
    json_object_set_new(j, "params", s_params_json(&v->params));
    if (v->status == LF_JOB_DONE) {
        json_t *imgs = json_array();
        for (uint32_t i = 0; i < v->n_images; i++) {
            char url[160];
            snprintf(url, sizeof url, "/v1/images/%s-%u.png", v->id, i);
            json_array_append_new(imgs, json_pack("{s:i,s:s,s:I,s:i,s:i}", "index", (json_int_t)i, "url", url,
                                                  "seed", (json_int_t)(v->seeds ? v->seeds[i] : v->params.seed + i),
                                                  "width", (json_int_t)v->params.width, "height",
                                                  (json_int_t)v->params.height));
        }
        json_t *info = v->info_json ? json_loads(v->info_json, 0, NULL) : NULL;
        json_object_set_new(j, "result", json_pack("{s:o,s:o}", "images", imgs, "info", info ? info : json_null()));
    }
    if (v->status == LF_JOB_FAILED || v->status == LF_JOB_CANCELLED) {
        json_object_set_new(j, "error", json_pack("{s:s,s:s}", "code", v->code ? lf_err_code_name(v->code) : (v->status == LF_JOB_CANCELLED ? "cancelled" : ""),
                                                  "message", v->message ? v->message : (v->status == LF_JOB_CANCELLED ? "cancelled" : "")));
    }
    return j;
}

/* ------------------------------------------------------------------ jobs */

/* The 202 answer. A duplicate (the idempotency key names an existing job)
 * reports that job as it is now: its status, position and seed. */
static int s_submit_answer(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    const char *id = st->reply.job_id;
    const char *status = lf_job_status_name(st->reply.status); /* queued, or enhancing */
    int64_t position = st->reply.position, seed = st->jr.params.seed;
    lf_job_view_t v = {0};
    bool have_view = false;
    if (st->reply.duplicate) {
        lf_store_t *stt = lf__store_get(gw);
        int rc = stt ? lf_store_job_get(stt, id, &v) : LF_ECONN;
        lf__store_put(gw, stt, rc);
        if (rc == 0) {
            have_view = true;
            status = lf_job_status_name(v.status);
            position = v.status == LF_JOB_QUEUED ? v.position : -1;
            seed = v.params.seed;
        }
    }
    char url[160], ev[180];
    snprintf(url, sizeof url, "/v1/jobs/%s", id);
    snprintf(ev, sizeof ev, "/v1/jobs/%s/events", id);
    lf_req_add_header(req, "Location", url);
    json_t *j = json_pack("{s:s,s:s,s:o,s:b,s:s,s:s,s:I}", "id", id, "status", status, "position",
                          position >= 0 ? json_integer(position) : json_null(), "duplicate", st->reply.duplicate,
                          "url", url, "events", ev, "seed", (json_int_t)seed);
    if (have_view) lf_job_view_clear(&v);
    return lf__json(req, 202, j);
}

/* Idempotency keys: from the body or the Idempotency-Key header (both only
 * when equal), checked against the fingerprint of the request that used the
 * key first (Stripe's rule: reuse with other parameters is a 409). 0, or
 * answered and -1. */
static int s_idem(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, bool seed_random) {
    const char *hdr = lf_req_header(req, "Idempotency-Key");
    if (hdr) {
        if (!*hdr || strlen(hdr) > LF_V_NAME_MAX) {
            lf__err(req, 400, "invalid_value", "Idempotency-Key", "the Idempotency-Key header must be 1..%d characters", LF_V_NAME_MAX);
            return -1;
        }
        if (st->jr.idem_key && strcmp(st->jr.idem_key, hdr) != 0) {
            lf__err(req, 400, "invalid_value", "idempotency_key",
                    "the body's idempotency_key and the Idempotency-Key header differ; send one of them");
            return -1;
        }
        if (!st->jr.idem_key && !(st->jr.idem_key = strdup(hdr))) {
            lf__err(req, 500, "internal", "", "out of memory");
            return -1;
        }
    }
    if (!st->jr.idem_key) return 0;
    char hash[LF_IDEM_HASH_LEN], job[64] = "";
    int rc = lf_idem_hash(&st->jr, seed_random, hash);
    lf_store_t *stt = rc ? NULL : lf__store_get(gw);
    if (!rc) rc = stt ? lf_store_idem_check(stt, st->jr.idem_key, hash, job, sizeof job) : LF_ECONN;
    lf__store_put(gw, stt, rc);
    if (rc == LF_EEXIST) {
        lf__err(req, 409, "conflict", "idempotency_key",
                "idempotency key '%s' was used for job %s with different parameters; use a new key", st->jr.idem_key, job);
        return -1;
    }
    if (rc) {
        lf__err_code(req, rc, "idempotency key");
        return -1;
    }
    return 0;
}

static int s_submit(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    if (st->stage == 1) {
        if (st->reply.code) {
            if (st->reply.code == LF_EINVAL || st->reply.code == LF_ENOTFOUND)
                return lf__err(req, 400, "invalid_value", "", "the broker refused the job: %s",
                               st->reply.message[0] ? st->reply.message : lf_strerror(st->reply.code));
            return lf__err_code(req, st->reply.code, "submit");
        }
        return s_submit_answer(gw, req, st);
    }
    json_t *body = lf__body_json(req);
    if (!body) return LF_HTTP_DONE;
    lf_store_t *stt = lf__store_get(gw);
    lf_validate_ctx_t ctx;
    char def[128];
    lf__validate_ctx(gw, stt, &ctx, def, sizeof def);
    lf__store_put(gw, stt, 0);
    lf_verr_t e;
    int rc = lf_validate_job(body, &ctx, &st->jr, &e);
    /* A seed left to us is not part of what the client asked for. */
    json_t *sv = json_is_object(body) ? json_object_get(body, "seed") : NULL;
    bool seed_random = !sv || json_is_null(sv) || (json_is_integer(sv) && json_integer_value(sv) == -1);
    json_decref(body);
    if (rc) return lf__verr(req, &e);
    if (lf__admit(gw, req, &st->jr.params, "model")) return LF_HTTP_DONE;
    if (s_idem(gw, req, st, seed_random)) return LF_HTTP_DONE;
    st->stage = 1;
    return lf__submit(gw, req, st, st->jr.idem_key);
}

static int s_job_get(lf_gateway_t *gw, lf_req_t *req, const char *id) {
    if (!lf_id_valid(id)) return lf__err(req, 404, "not_found", "id", "no job %s", id);
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    lf_job_view_t v = {0};
    int rc = lf_store_job_get(stt, id, &v);
    lf__store_put(gw, stt, rc);
    if (rc) return rc == LF_ENOTFOUND ? lf__err(req, 404, "not_found", "id", "no job %s", id) : lf__err_code(req, rc, "job");
    json_t *j = lf__job_json(&v);
    lf_job_view_clear(&v);
    return lf__json(req, 200, j);
}

static int s_job_cancel(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    const char *id = st->m.params[0];
    if (st->stage == 1) {
        int c = st->reply.code;
        if (c == 0) return lf__json(req, 202, json_pack("{s:s,s:s}", "id", id, "status", "cancelled"));
        if (c == LF_ENOTFOUND) return lf__err(req, 404, "not_found", "id", "no job %s", id);
        if (c == LF_ESTATE) return lf__err(req, 409, "conflict", "id", "job %s has already finished", id);
        return lf__err_code(req, c, "cancel");
    }
    if (!lf_id_valid(id)) return lf__err(req, 404, "not_found", "id", "no job %s", id);
    st->stage = 1;
    return lf__cancel(gw, req, st, id);
}

static bool s_page(lf_req_t *req, size_t *offset, size_t *limit) {
    const char *names[2] = {"offset", "limit"};
    size_t *outs[2] = {offset, limit};
    *offset = 0;
    *limit = 50;
    for (int i = 0; i < 2; i++) {
        const char *q = lf_req_query(req, names[i]);
        if (!q) continue;
        char *end = NULL;
        long long v = strtoll(q, &end, 10);
        if (!*q || *end || v < (i ? 1 : 0) || v > (i ? 500 : 100000000)) {
            lf__err(req, 400, "out_of_range", names[i], "%s must be an integer in %d..%d", names[i], i ? 1 : 0,
                    i ? 500 : 100000000);
            return false;
        }
        *outs[i] = (size_t)v;
    }
    return true;
}

static int s_list(lf_gateway_t *gw, lf_req_t *req, bool history) {
    size_t off, lim;
    if (!s_page(req, &off, &lim)) return LF_HTTP_DONE;
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    lf_job_view_t *vs = NULL;
    size_t n = 0, total = 0;
    int rc = history ? lf_store_history(stt, off, lim, &vs, &n, &total) : lf_store_jobs_list(stt, off, lim, &vs, &n, &total);
    lf__store_put(gw, stt, rc);
    if (rc) return lf__err_code(req, rc, history ? "history" : "queue");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, lf__job_json(&vs[i]));
        lf_job_view_clear(&vs[i]);
    }
    free(vs);
    return lf__json(req, 200, json_pack("{s:o,s:I,s:I,s:I}", "jobs", arr, "total", (json_int_t)total, "offset",
                                        (json_int_t)off, "limit", (json_int_t)lim));
}

static int s_image(lf_gateway_t *gw, lf_req_t *req, const char *spec) {
    /* {jobid}-{index} */
    char id[64];
    const char *dash = strrchr(spec, '-');
    if (!dash || dash == spec || (size_t)(dash - spec) >= sizeof id || !dash[1])
        return lf__err(req, 404, "not_found", "id", "no image %s", spec);
    memcpy(id, spec, (size_t)(dash - spec));
    id[dash - spec] = 0;
    char *end = NULL;
    unsigned long idx = strtoul(dash + 1, &end, 10);
    if (*end || idx >= 1024 || !lf_id_valid(id)) return lf__err(req, 404, "not_found", "id", "no image %s", spec);
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = lf_store_image_get(stt, id, (uint32_t)idx, &png, &len);
    if (rc && rc != LF_ENOTFOUND) lf_warn("image %s: %s", spec, lf_store_errstr(stt));
    lf__store_put(gw, stt, rc);
    if (rc) return rc == LF_ENOTFOUND ? lf__err(req, 404, "not_found", "id", "no image %s", spec) : lf__err_code(req, rc, "image");
    lf_req_add_header(req, "Cache-Control", "public, max-age=86400, immutable");
    lf_req_respond_take(req, 200, "image/png", png, len);
    return LF_HTTP_DONE;
}

static int s_preview(lf_gateway_t *gw, lf_req_t *req, const char *id) {
    if (!lf_id_valid(id)) return lf__err(req, 404, "not_found", "id", "no job %s", id);
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = lf_store_preview_get(stt, id, &data, &len);
    lf__store_put(gw, stt, rc);
    if (rc) return rc == LF_ENOTFOUND ? lf__err(req, 404, "not_found", "id", "no preview for job %s", id) : lf__err_code(req, rc, "preview");
    lf_image_info_t ii;
    const char *mime = lf_image_probe(data, len, &ii) == 0 ? lf_image_format_mime(ii.format) : "application/octet-stream";
    lf_req_add_header(req, "Cache-Control", "no-store");
    lf_req_respond_take(req, 200, mime, data, len);
    return LF_HTTP_DONE;
}

/* ------------------------------------------------------------------- SSE */

typedef struct {
    lf_stream_t *stream;
    char job_id[64];
} s_sse_t;

static void s_sse_release(void *arg) {
    s_sse_t *s = arg;
    lf_stream_unref(&s->stream);
    free(s);
}

static void s_sse_send(lf_stream_t *stream, const char *event, json_t *data) {
    char *txt = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (!txt) return;
    size_t n = strlen(txt) + strlen(event) + 32;
    char *buf = malloc(n);
    if (buf) {
        int k = snprintf(buf, n, "event: %s\ndata: %s\n\n", event, txt);
        lf_stream_write(stream, buf, (size_t)k);
        free(buf);
    }
    free(txt);
}

static bool s_terminal(lf_job_status_t s) { return s == LF_JOB_DONE || s == LF_JOB_FAILED || s == LF_JOB_CANCELLED; }

/* The job's state as one event (the first of every stream). */
static void s_sse_snapshot(lf_stream_t *stream, const lf_job_view_t *v) {
    const char *ev = v->status == LF_JOB_QUEUED ? "queued" : v->status == LF_JOB_RUNNING ? (v->step ? "progress" : "started")
                                                                                           : lf_job_status_name(v->status);
    s_sse_send(stream, ev, lf__job_json(v));
    if (s_terminal(v->status)) lf_stream_end(stream);
}

static int s_sse_on_event(void *hub_ud, void *arg, const lf_msg_t *ev, int64_t now) {
    lf_gateway_t *gw = hub_ud;
    s_sse_t *s = arg;
    if (lf_stream_closed(s->stream)) return LF_HUB_DROP;
    if (!ev) {
        if (now == INT64_MAX) {
            lf_stream_end(s->stream);
            return LF_HUB_DROP;
        }
        if (now - lf_stream_last_write_ms(s->stream) >= 15000) {
            static const char hb[] = ": heartbeat\n\n";
            lf_stream_write(s->stream, hb, sizeof hb - 1);
        }
        return LF_HUB_KEEP;
    }
    const char *name = lf_event_name(ev->event);
    bool terminal = ev->event == LF_EV_DONE || ev->event == LF_EV_FAILED || ev->event == LF_EV_CANCELLED;
    if (terminal) {
        /* The full job (images, seeds) from Redis, as GET /v1/jobs/{id} shows it. */
        if (!gw->hub_store) {
            char err[128];
            gw->hub_store = lf_store_new(&gw->sopts, err, sizeof err);
        }
        lf_job_view_t v = {0};
        if (gw->hub_store && lf_store_job_get(gw->hub_store, s->job_id, &v) == 0 && s_terminal(v.status)) {
            s_sse_send(s->stream, name, lf__job_json(&v));
        } else {
            s_sse_send(s->stream, name, json_pack("{s:s,s:s,s:s,s:s?}", "id", s->job_id, "status",
                                                  lf_job_status_name(ev->status), "code", lf_err_code_name(ev->code),
                                                  "message", ev->message));
        }
        lf_job_view_clear(&v);
        lf_stream_end(s->stream);
        return LF_HUB_DROP;
    }
    json_t *d = json_pack("{s:s,s:s,s:i,s:i,s:s?}", "id", s->job_id, "status", lf_job_status_name(ev->status), "step",
                          (json_int_t)ev->step, "steps", (json_int_t)ev->steps, "worker", ev->worker_id);
    if (ev->event == LF_EV_PREVIEW && ev->preview.len) {
        lf_image_info_t ii;
        const char *mime = lf_image_probe(ev->preview.data, ev->preview.len, &ii) == 0 ? lf_image_format_mime(ii.format) : "image/png";
        char *b64 = lf_b64_encode(ev->preview.data, ev->preview.len);
        if (b64) {
            size_t n = strlen(b64) + 64;
            char *uri = malloc(n);
            if (uri) {
                snprintf(uri, n, "data:%s;base64,%s", mime, b64);
                json_object_set_new(d, "image", json_string(uri));
                free(uri);
            }
            free(b64);
        }
    }
    s_sse_send(s->stream, name, d);
    return LF_HUB_KEEP;
}

static int s_events(lf_gateway_t *gw, lf_req_t *req, const char *id) {
    if (!lf_id_valid(id)) return lf__err(req, 404, "not_found", "id", "no job %s", id);
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    lf_job_view_t v = {0};
    int rc = lf_store_job_get(stt, id, &v);
    if (rc) {
        lf__store_put(gw, stt, rc);
        return rc == LF_ENOTFOUND ? lf__err(req, 404, "not_found", "id", "no job %s", id) : lf__err_code(req, rc, "job");
    }
    lf_req_add_header(req, "Cache-Control", "no-cache");
    lf_req_add_header(req, "X-Accel-Buffering", "no");
    lf_stream_t *stream = lf_req_respond_stream(req, 200, "text/event-stream");
    if (!stream) {
        lf_job_view_clear(&v);
        lf__store_put(gw, stt, 0);
        return lf__err(req, 500, "internal", "", "out of memory");
    }
    static const char hello[] = "retry: 2000\n\n";
    lf_stream_write(stream, hello, sizeof hello - 1);
    s_sse_snapshot(stream, &v);
    bool was_terminal = s_terminal(v.status);
    lf_job_view_clear(&v);
    if (!was_terminal) {
        s_sse_t *s = calloc(1, sizeof *s);
        if (s) {
            lf_stream_ref(stream);
            s->stream = stream;
            /* id passed lf_id_valid above: 32 characters, so it fits. */
            snprintf(s->job_id, sizeof s->job_id, "%.*s", (int)(sizeof s->job_id - 1), id);
            if (lf_hub_subscribe(gw->hub, id, s_sse_on_event, s_sse_release, s) != 0) lf_stream_end(stream);
        } else {
            lf_stream_end(stream);
        }
        /* An end between the snapshot and the subscription would be missed:
         * look again now that we listen. */
        if (lf_store_job_get(stt, id, &v) == 0 && s_terminal(v.status) && !lf_stream_closed(stream)) {
            s_sse_send(stream, lf_job_status_name(v.status), lf__job_json(&v));
            lf_stream_end(stream);
        }
        lf_job_view_clear(&v);
    }
    lf__store_put(gw, stt, 0);
    lf_stream_unref(&stream);
    return LF_HTTP_DONE;
}

/* ---------------------------------------------------------------- uploads */

/* The first file part of a multipart/form-data body (borrowed pointers). */
static bool s_multipart_file(const char *ctype, const uint8_t *body, size_t len, const uint8_t **out, size_t *out_len) {
    const char *b = strstr(ctype, "boundary=");
    if (!b) return false;
    b += 9;
    char delim[200];
    size_t bl = strcspn(b, ";");
    if (*b == '"') {
        b++;
        bl = strcspn(b, "\"");
    }
    if (bl == 0 || bl > 150) return false;
    int dl = snprintf(delim, sizeof delim, "--%.*s", (int)bl, b);
    const uint8_t *p = memmem(body, len, delim, (size_t)dl);
    while (p) {
        p += dl;
        if ((size_t)(body + len - p) < 2 || (p[0] == '-' && p[1] == '-')) return false;
        const uint8_t *hend = memmem(p, (size_t)(body + len - p), "\r\n\r\n", 4);
        if (!hend) return false;
        const uint8_t *data = hend + 4;
        char crlf_delim[210];
        int cl = snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);
        const uint8_t *next = memmem(data, (size_t)(body + len - data), crlf_delim, (size_t)cl);
        if (!next) return false;
        /* A part with a filename, or named file/image, is the upload. */
        size_t hl = (size_t)(hend - p);
        if (memmem(p, hl, "filename=", 9) || memmem(p, hl, "name=\"file\"", 11) || memmem(p, hl, "name=\"image\"", 12)) {
            *out = data;
            *out_len = (size_t)(next - data);
            return true;
        }
        p = next + 2;
    }
    return false;
}

static int s_upload(lf_gateway_t *gw, lf_req_t *req) {
    size_t len;
    const uint8_t *data = lf_req_body(req, &len);
    const char *ct = lf_req_header(req, "Content-Type");
    if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
        if (!s_multipart_file(ct, data, len, &data, &len))
            return lf__err(req, 400, "missing_field", "file", "no file part in the multipart body");
    }
    if (len == 0) return lf__err(req, 400, "missing_field", "file", "the body is empty; send the image bytes");
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    char id[64];
    json_t *info = NULL;
    int rc = lf__upload_store(gw, req, stt, data, len, "file", id, &info);
    lf__store_put(gw, stt, rc);
    if (rc) return LF_HTTP_DONE;
    return lf__json(req, 201, info);
}

/* -------------------------------------------------------- models, workers */

static int s_models(lf_gateway_t *gw, lf_req_t *req) {
    lf_store_t *stt = lf__store_get(gw);
    char def[128];
    json_t *models = NULL;
    lf__models(gw, stt, def, sizeof def, &models);
    json_t *vaes = lf__vaes(gw, stt);
    lf__store_put(gw, stt, 0);
    /* "object" and "data" are what OpenAI clients read (client.models.list()). */
    json_t *data = lf_openai_map_models(models);
    return lf__json(req, 200, json_pack("{s:o,s:s,s:s,s:o,s:o}", "models", models, "default", def, "object", "list", "data",
                                        data, "vaes", vaes));
}

static int s_samplers(lf_req_t *req) {
    size_t n;
    const lf_sampler_name_t *t = lf_validate_samplers(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s?}", "name", t[i].name, "a1111", t[i].a1111, "alias", t[i].alias));
    return lf__json(req, 200, json_pack("{s:o}", "samplers", arr));
}

static int s_schedulers(lf_req_t *req) {
    size_t n;
    const lf_param_enum_t *t = lf_validate_schedulers(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_pack("{s:s,s:s}", "name", t[i].name, "a1111", t[i].a1111));
    return lf__json(req, 200, json_pack("{s:o}", "schedulers", arr));
}

static json_t *s_strs(char *const *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        if (s[i]) json_array_append_new(a, json_string(s[i]));
    return a;
}

static int s_workers(lf_gateway_t *gw, lf_req_t *req) {
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    lf_worker_view_t *ws = NULL;
    size_t n = 0;
    int rc = lf_store_workers_list(stt, &ws, &n);
    lf__store_put(gw, stt, rc);
    if (rc) return lf__err_code(req, rc, "workers");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const lf_worker_caps_t *c = &ws[i].caps;
        json_t *models = json_array();
        for (size_t k = 0; k < c->n_models; k++) {
            json_t *m = json_pack("{s:s?,s:s?,s:s?}", "name", c->models[k].name, "kind", c->models[k].kind, "family",
                                  c->models[k].kind);
            if (c->models[k].resolution) json_object_set_new(m, "resolution", json_integer(c->models[k].resolution));
            if (c->models[k].preview) json_object_set_new(m, "preview", json_string(c->models[k].preview));
            if (c->models[k].inpainting) json_object_set_new(m, "inpainting", json_true());
            json_t *defs = lf_fleet_defaults_json(&c->models[k].defaults);
            if (defs) json_object_set_new(m, "defaults", defs);
            json_array_append_new(models, m);
        }
        json_t *w = json_pack("{s:s,s:s?,s:i,s:{s:s?,s:s?,s:I},s:I,s:o,s:o,s:s?,s:I,s:I}", "id", ws[i].id ? ws[i].id : "",
                           "host", c->host, "pid", (json_int_t)c->pid, "device", "kind", c->device_kind, "name",
                           c->device_name, "memory_bytes", (json_int_t)c->memory_bytes, "max_pixels",
                           (json_int_t)c->max_pixels, "models", models, "resident", s_strs(c->resident, c->n_resident),
                           "job", ws[i].job_id, "jobs_done", (json_int_t)ws[i].jobs_done, "seen_ms",
                           (json_int_t)ws[i].seen_ms);
        /* resident: the base first, then an SDXL refiner kept next to it. */
        if (w) {
            json_object_set_new(w, "vaes", s_strs(c->vaes, c->n_vaes));
            json_object_set_new(w, "lora_set", json_string(c->lora_set ? c->lora_set : ""));
            json_object_set_new(w, "loras", json_integer((json_int_t)c->n_loras));
            json_object_set_new(w, "precision", json_string(c->precision ? c->precision : "f32"));
            /* Batched jobs (LF_BATCH_MAX): how many it takes at once, how many it ran so. */
            json_object_set_new(w, "batch_max", json_integer(c->batch_max > 1 ? c->batch_max : 1));
            json_object_set_new(w, "batched_jobs", json_integer((json_int_t)c->batched));
            /* CPU compute threads and their pinning; null from a worker that does not say. */
            json_object_set_new(w, "threads", c->threads ? json_integer(c->threads) : json_null());
            json_object_set_new(w, "pinning", c->pinning ? json_string(c->pinning) : json_null());
            json_object_set_new(w, "cpus", c->cpus ? json_string(c->cpus) : json_null());
        }
        json_array_append_new(arr, w);
        lf_worker_view_clear(&ws[i]);
    }
    free(ws);
    return lf__json(req, 200, json_pack("{s:o,s:I}", "workers", arr, "count", (json_int_t)n));
}

/* The LoRAs the live workers have, one entry per name: native (name,
 * alias, path under models/lora, hash, how many workers have it) or A1111's
 * /sdapi/v1/loras (name, alias, path, metadata). */
json_t *lf__loras_json(lf_gateway_t *gw, bool a1111) {
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return NULL;
    lf_worker_view_t *ws = NULL;
    size_t n = 0;
    int rc = lf_store_workers_list(stt, &ws, &n);
    lf__store_put(gw, stt, rc);
    if (rc) return NULL;
    enum { CAP = 4096 };
    const lf_lora_info_t **ls = calloc(CAP, sizeof *ls);
    size_t *holders = calloc(CAP, sizeof *holders);
    json_t *arr = json_array();
    size_t count = ls && holders ? lf_fleet_loras(ws, n, ls, holders, CAP) : 0;
    for (size_t i = 0; arr && i < count && i < CAP; i++) {
        const lf_lora_info_t *l = ls[i];
        json_t *o = a1111 ? json_pack("{s:s,s:s,s:s,s:{}}", "name", l->name, "alias", l->alias ? l->alias : l->name,
                                      "path", l->path ? l->path : "", "metadata")
                          : json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:I}", "name", l->name, "alias",
                                      l->alias ? l->alias : l->name, "path", l->path ? l->path : "", "hash", l->hash,
                                      "shorthash", NULL, "workers", (json_int_t)holders[i]);
        json_t *defs = o && !a1111 ? lf_fleet_defaults_json(&l->defaults) : NULL;
        if (defs) json_object_set_new(o, "defaults", defs);
        if (o && !a1111 && l->hash && strlen(l->hash) >= 12) {
            char sh[13];
            memcpy(sh, l->hash, 12);
            sh[12] = '\0';
            json_object_set_new(o, "shorthash", json_string(sh));
        }
        json_array_append_new(arr, o);
    }
    for (size_t i = 0; i < n; i++) lf_worker_view_clear(&ws[i]);
    free(ws);
    free(ls);
    free(holders);
    return arr;
}

static int s_loras(lf_gateway_t *gw, lf_req_t *req) {
    json_t *arr = lf__loras_json(gw, false);
    if (!arr) return lf__err_code(req, LF_ECONN, "redis");
    return lf__json(req, 200, json_pack("{s:o,s:I}", "loras", arr, "count", (json_int_t)json_array_size(arr)));
}

/* Hires-Fix upscalers: A1111's built-ins, then the models live workers have. */
static int s_upscalers(lf_gateway_t *gw, lf_req_t *req) {
    lf_store_t *stt = lf__store_get(gw);
    json_t *models = lf__upscalers(gw, stt);
    lf__store_put(gw, stt, 0);
    json_t *arr = json_array();
    for (int i = 0; lf_param_hr_builtin_upscalers[i]; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "name", lf_param_hr_builtin_upscalers[i], "kind",
                                             i < LF_PARAM_HR_LATENT_UPSCALERS ? "latent" : "builtin"));
    size_t k;
    json_t *m;
    json_array_foreach(models, k, m) {
        json_t *c = json_deep_copy(m);
        json_object_set_new(c, "kind", json_string("model"));
        json_array_append_new(arr, c);
    }
    json_decref(models);
    return lf__json(req, 200, json_pack("{s:o,s:I}", "upscalers", arr, "count", (json_int_t)json_array_size(arr)));
}

/* ---------------------------------------------------------------- presets */

/* The built-ins fix no size of their own except the diagnostic one (which names
 * its model) and the few-step ones (which name their family): a model draws well only near the side it was trained at (256 for
 * lf-tiny-shapes, 512 for SD1.5, 1024 for SDXL), so "fast" and "quality" keep
 * the size the client has, and "portrait" gives only an aspect, which a client
 * turns into a size at the model's own resolution (`aspect`: width:height). */
static const char *const s_builtin[][2] = {
    {"diagnostic", "{\"name\":\"diagnostic\",\"description\":\"The test card: fast, no model needed\",\"builtin\":true,"
                   "\"params\":{\"model\":\"lf-diagnostic\",\"steps\":8,\"width\":256,\"height\":256}}"},
    {"fast", "{\"name\":\"fast\",\"description\":\"Quick drafts\",\"builtin\":true,"
             "\"params\":{\"sampler\":\"euler_ancestral\",\"scheduler\":\"normal\",\"steps\":12,\"cfg_scale\":6}}"},
    {"quality", "{\"name\":\"quality\",\"description\":\"Slower, finer detail\",\"builtin\":true,"
                "\"params\":{\"sampler\":\"dpmpp_2m\",\"scheduler\":\"karras\",\"steps\":30,\"cfg_scale\":7}}"},
    {"portrait", "{\"name\":\"portrait\",\"description\":\"2:3 portrait at the model's own size\",\"builtin\":true,"
                 "\"aspect\":\"2:3\",\"params\":{\"sampler\":\"dpmpp_2m\",\"scheduler\":\"karras\",\"steps\":25,\"cfg_scale\":7}}"},
    /* Few-step distilled SDXL models (issue 20) only work with their own
     * settings; these name their family (a client offers them for SDXL
     * models only), so they may fix a size: ByteDance's SDXL-Lightning
     * (Euler, trailing spacing = sgm_uniform, CFG 1 = no negative pass,
     * 1024²) and Stability's SDXL-Turbo (1 step, 512², CFG 1; diffusers' own
     * example uses guidance 0, which our CFG 1 equals: one pass). */
    {"lightning-4step", "{\"name\":\"lightning-4step\",\"description\":\"Lightning 4-step (SDXL-Lightning: Euler, SGM Uniform, CFG 1)\","
                        "\"builtin\":true,\"family\":\"sdxl\",\"params\":{\"sampler\":\"euler\",\"scheduler\":\"sgm_uniform\","
                        "\"steps\":4,\"cfg_scale\":1,\"width\":1024,\"height\":1024}}"},
    {"lightning-8step", "{\"name\":\"lightning-8step\",\"description\":\"Lightning 8-step (SDXL-Lightning: Euler, SGM Uniform, CFG 1)\","
                        "\"builtin\":true,\"family\":\"sdxl\",\"params\":{\"sampler\":\"euler\",\"scheduler\":\"sgm_uniform\","
                        "\"steps\":8,\"cfg_scale\":1,\"width\":1024,\"height\":1024}}"},
    {"turbo-1step", "{\"name\":\"turbo-1step\",\"description\":\"Turbo 1-step (SDXL-Turbo: Euler a, SGM Uniform, CFG 1, 512x512)\","
                    "\"builtin\":true,\"family\":\"sdxl\",\"params\":{\"sampler\":\"euler_ancestral\",\"scheduler\":\"sgm_uniform\","
                    "\"steps\":1,\"cfg_scale\":1,\"width\":512,\"height\":512}}"},
    /* ByteDance's Hyper-SD 1-step SDXL UNet / LoRA: TCDScheduler at the one
     * timestep 800 with eta (gamma) 1, as its model card runs it; and DMD2's
     * 4-step SDXL: the LCM sampler at 999 749 499 249 (= trailing at 4 steps). */
    {"hyper-1step", "{\"name\":\"hyper-1step\",\"description\":\"Hyper-SD 1-step (TCD at timestep 800, gamma 1, CFG 1)\","
                    "\"builtin\":true,\"family\":\"sdxl\",\"params\":{\"sampler\":\"tcd\",\"scheduler\":\"trailing\","
                    "\"steps\":1,\"timesteps\":[800],\"tcd_gamma\":1,\"cfg_scale\":1,\"width\":1024,\"height\":1024}}"},
    {"dmd2-4step", "{\"name\":\"dmd2-4step\",\"description\":\"DMD2 4-step (LCM sampler, Trailing: 999 749 499 249, CFG 1)\","
                   "\"builtin\":true,\"family\":\"sdxl\",\"params\":{\"sampler\":\"lcm\",\"scheduler\":\"trailing\","
                   "\"steps\":4,\"cfg_scale\":1,\"width\":1024,\"height\":1024}}"},
};
#define S_N_BUILTIN (sizeof s_builtin / sizeof s_builtin[0])

static const char *s_builtin_get(const char *name) {
    for (size_t i = 0; i < S_N_BUILTIN; i++)
        if (!strcmp(s_builtin[i][0], name)) return s_builtin[i][1];
    return NULL;
}

/* Check a preset body; returns the normalised preset (caller owns) or NULL
 * having answered. */
static json_t *s_preset_check(lf_req_t *req, const char *name_from_path) {
    json_t *body = lf__body_json(req);
    if (!body) return NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        lf__err(req, 400, "invalid_type", "", "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "name") && strcmp(key, "description") && strcmp(key, "params") && strcmp(key, "builtin")) {
            char clip[65];
            lf__err(req, 400, "unknown_field", key, "unknown field '%s'", lf_utf8_clip(key, clip, sizeof clip));
            json_decref(body);
            return NULL;
        }
    }
    json_t *name = json_object_get(body, "name");
    if (name_from_path && !name) json_object_set_new(body, "name", json_string(name_from_path)), name = json_object_get(body, "name");
    if (!json_is_string(name) || !lf_validate_preset_name(json_string_value(name))) {
        lf__err(req, 400, name ? "invalid_value" : "missing_field", "name", "name must be 1..64 characters of A-Z a-z 0-9 _ . - (not starting with .)");
        json_decref(body);
        return NULL;
    }
    if (name_from_path && strcmp(json_string_value(name), name_from_path)) {
        lf__err(req, 400, "invalid_value", "name", "the name in the body differs from the one in the path");
        json_decref(body);
        return NULL;
    }
    json_t *desc = json_object_get(body, "description");
    if (desc && (!json_is_string(desc) || json_string_length(desc) > 1024)) {
        lf__err(req, 400, "invalid_type", "description", "description must be a string of at most 1024 bytes");
        json_decref(body);
        return NULL;
    }
    json_t *params = json_object_get(body, "params");
    if (!json_is_object(params)) {
        lf__err(req, 400, params ? "invalid_type" : "missing_field", "params", "params must be an object of job fields");
        json_decref(body);
        return NULL;
    }
    /* The params must be a valid job body (a preset may leave the model out). */
    lf_validate_ctx_t ctx = {.default_model = "lf-diagnostic", .random_seed = 0};
    lf_job_request_t jr;
    lf_verr_t e;
    json_t *probe = json_deep_copy(params);
    if (json_object_get(probe, "init_image")) json_object_del(probe, "init_image");
    if (json_object_get(probe, "mask")) json_object_del(probe, "mask");
    if (json_is_string(json_object_get(probe, "mode"))) json_object_del(probe, "mode");
    int rc = lf_validate_job(probe, &ctx, &jr, &e);
    json_decref(probe);
    if (rc) {
        char field[128];
        snprintf(field, sizeof field, "params.%s", e.field);
        lf__err(req, e.status, e.code, field, "%s", e.message);
        json_decref(body);
        return NULL;
    }
    lf_job_request_clear(&jr);
    json_object_set_new(body, "builtin", json_false());
    return body;
}

static int s_presets(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    const char *name = st->m.n_params ? st->m.params[0] : NULL;
    lf_route_id_t r = st->m.route->id;
    if (name && !lf_validate_preset_name(name)) return lf__err(req, 404, "not_found", "name", "no preset %s", name);
    if (name && s_builtin_get(name) && r != LF_ROUTE_PRESET_GET)
        return lf__err(req, 403, "forbidden", "name", "preset %s is built in and read-only", name);
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    int rc = 0, ans = LF_HTTP_DONE;
    switch (r) {
    case LF_ROUTE_PRESET_LIST: {
        json_t *arr = json_array();
        for (size_t i = 0; i < S_N_BUILTIN; i++) json_array_append_new(arr, json_loads(s_builtin[i][1], 0, NULL));
        char **names = NULL;
        size_t n = 0;
        rc = lf_store_preset_list(stt, &names, &n);
        for (size_t i = 0; i < n; i++) {
            char *txt = NULL;
            if (!s_builtin_get(names[i]) && lf_store_preset_get(stt, names[i], &txt) == 0) {
                json_t *p = json_loads(txt, 0, NULL);
                if (p) json_array_append_new(arr, p);
            }
            free(txt);
            free(names[i]);
        }
        free(names);
        ans = rc ? (json_decref(arr), lf__err_code(req, rc, "presets")) : lf__json(req, 200, json_pack("{s:o}", "presets", arr));
        break;
    }
    case LF_ROUTE_PRESET_GET: {
        const char *b = s_builtin_get(name);
        if (b) {
            ans = lf__json(req, 200, json_loads(b, 0, NULL));
            break;
        }
        char *txt = NULL;
        rc = lf_store_preset_get(stt, name, &txt);
        if (rc == LF_ENOTFOUND) ans = lf__err(req, 404, "not_found", "name", "no preset %s", name);
        else if (rc) ans = lf__err_code(req, rc, "preset");
        else lf_req_respond_take(req, 200, "application/json", txt, strlen(txt));
        break;
    }
    case LF_ROUTE_PRESET_CREATE:
    case LF_ROUTE_PRESET_PUT: {
        json_t *p = s_preset_check(req, name);
        if (!p) break;
        const char *pn = json_string_value(json_object_get(p, "name"));
        if (s_builtin_get(pn)) {
            ans = lf__err(req, 409, "conflict", "name", "preset %s is built in", pn);
            json_decref(p);
            break;
        }
        if (r == LF_ROUTE_PRESET_CREATE) {
            char *old = NULL;
            if (lf_store_preset_get(stt, pn, &old) == 0) {
                free(old);
                ans = lf__err(req, 409, "conflict", "name", "preset %s exists; PUT /v1/presets/%s replaces it", pn, pn);
                json_decref(p);
                break;
            }
        }
        char *txt = json_dumps(p, JSON_COMPACT);
        rc = txt ? lf_store_preset_put(stt, pn, txt) : LF_ENOMEM;
        free(txt);
        ans = rc ? (json_decref(p), lf__err_code(req, rc, "preset")) : lf__json(req, r == LF_ROUTE_PRESET_CREATE ? 201 : 200, p);
        break;
    }
    case LF_ROUTE_PRESET_DELETE:
        rc = lf_store_preset_del(stt, name);
        if (rc == LF_ENOTFOUND) ans = lf__err(req, 404, "not_found", "name", "no preset %s", name);
        else if (rc) ans = lf__err_code(req, rc, "preset");
        else lf_req_respond_static(req, 204, NULL, "", 0);
        break;
    default: break;
    }
    lf__store_put(gw, stt, rc);
    return ans;
}

int lf__api_handle(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    switch (st->m.route->id) {
    case LF_ROUTE_JOB_SUBMIT: return s_submit(gw, req, st);
    case LF_ROUTE_JOB_LIST: return s_list(gw, req, false);
    case LF_ROUTE_HISTORY: return s_list(gw, req, true);
    case LF_ROUTE_JOB_GET: return s_job_get(gw, req, st->m.params[0]);
    case LF_ROUTE_JOB_CANCEL: return s_job_cancel(gw, req, st);
    case LF_ROUTE_JOB_EVENTS: return s_events(gw, req, st->m.params[0]);
    case LF_ROUTE_JOB_PREVIEW: return s_preview(gw, req, st->m.params[0]);
    case LF_ROUTE_IMAGE: return s_image(gw, req, st->m.params[0]);
    case LF_ROUTE_UPLOAD: return s_upload(gw, req);
    case LF_ROUTE_MODELS: return s_models(gw, req);
    case LF_ROUTE_SAMPLERS: return s_samplers(req);
    case LF_ROUTE_SCHEDULERS: return s_schedulers(req);
    case LF_ROUTE_PARAMS: {
        json_t *j = lf_schema_params();
        return j ? lf__json(req, 200, j) : lf__err(req, 500, "internal", "", "out of memory");
    }
    case LF_ROUTE_WORKERS: return s_workers(gw, req);
    case LF_ROUTE_LORAS: return s_loras(gw, req);
    case LF_ROUTE_UPSCALERS: return s_upscalers(gw, req);
    case LF_ROUTE_PRESET_LIST:
    case LF_ROUTE_PRESET_CREATE:
    case LF_ROUTE_PRESET_GET:
    case LF_ROUTE_PRESET_PUT:
    case LF_ROUTE_PRESET_DELETE: return s_presets(gw, req, st);
    default: return lf__err(req, 404, "not_found", "", "no such endpoint");
    }
}
