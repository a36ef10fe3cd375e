/* lf_gateway: start-up, the dispatcher (route, auth, rate limit, static
 * files), the Redis connection pool, shared answers and the async helpers
 * (submit/cancel through the link). Handlers live in lf_api.c (native),
 * lf_a1111.c (A1111) and lf_openai.c (OpenAI images). */
#include "lf_gateway_impl.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lf_error.h"
#include "lf_id.h"
#include "lf_image.h"
#include "lf_log.h"
#include "lf_schema.h"

const double lf__hist_le[LF__HIST_N] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,   0.25,   1.0,   5.0,  INFINITY};

int64_t lf__now_ms_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lf__mono_ms(void) { return lf_http_now_us() / 1000; }

int64_t lf__random_seed(void) {
    uint32_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint32_t)lf_http_now_us();
    return (int64_t)v;
}

/* ---------------------------------------------------------- store pool */

lf_store_t *lf__store_get(lf_gateway_t *gw) {
    pthread_mutex_lock(&gw->pool_mu);
    lf_store_t *st = gw->n_pool ? gw->pool[--gw->n_pool] : NULL;
    pthread_mutex_unlock(&gw->pool_mu);
    if (st) return st;
    char err[256] = "";
    st = lf_store_new(&gw->sopts, err, sizeof err);
    if (!st) lf_warn("redis: %s", err);
    return st;
}

void lf__store_put(lf_gateway_t *gw, lf_store_t *st, int last_rc) {
    (void)last_rc; /* the store reopens a failed connection on its next call */
    if (!st) return;
    pthread_mutex_lock(&gw->pool_mu);
    if (gw->n_pool < LF__POOL_MAX) {
        gw->pool[gw->n_pool++] = st;
        st = NULL;
    }
    pthread_mutex_unlock(&gw->pool_mu);
    lf_store_destroy(&st);
}

/* ------------------------------------------------------------- answers */

int lf__json(lf_req_t *req, int status, json_t *j) {
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!txt) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":\"\"}}";
        lf_req_respond_static(req, 500, "application/json", oom, sizeof oom - 1);
        return LF_HTTP_DONE;
    }
    lf_req_respond_take(req, status, "application/json", txt, strlen(txt));
    return LF_HTTP_DONE;
}

int lf__err(lf_req_t *req, int status, const char *code, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages and fields echo user text: never cut a UTF-8 character in two,
     * or jansson refuses the string and the client gets a canned 500. */
    char fld[128];
    snprintf(fld, sizeof fld, "%s", field ? field : "");
    lf_utf8_truncate(msg, sizeof msg - 1);
    lf_utf8_truncate(fld, sizeof fld - 1);
    lf_req_set_note(req, code);
    return lf__json(req, status,
                    json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", msg, "field", fld));
}

int lf__verr(lf_req_t *req, const lf_verr_t *e) {
    return lf__err(req, e->status ? e->status : 400, e->code ? e->code : "invalid_value", e->field,
                   "%s", e->message);
}

void lf__err_status(int code, int *status, const char **api_code, bool *retry) {
    *retry = false;
    switch (code) {
    case LF_ENOTFOUND: *status = 404, *api_code = "not_found"; break;
    case LF_ESTATE: *status = 409, *api_code = "conflict"; break;
    case LF_EINVAL: *status = 400, *api_code = "invalid_value"; break;
    case LF_ETOOBIG:
    case LF_ELIMIT: *status = 413, *api_code = "too_large"; break;
    case LF_ETIMEDOUT:
    case LF_ECANCELED:
    case LF_ECONN:
    case LF_EREDIS:
    case LF_EBUSY:
    case LF_EAGAIN: *status = 503, *api_code = "unavailable", *retry = true; break;
    default: *status = 500, *api_code = "internal"; break;
    }
}

int lf__err_code_as(lf_req_t *req, int code, const char *what, lf__answer_fn answer) {
    int status;
    const char *api_code;
    bool retry;
    lf__err_status(code, &status, &api_code, &retry);
    if (retry) lf_req_add_header(req, "Retry-After", "1");
    if (code == LF_ENOTFOUND) return answer(req, status, api_code, NULL, "%s not found", what);
    return answer(req, status, api_code, NULL, "%s: %s", what, lf_strerror(code));
}

int lf__err_code(lf_req_t *req, int code, const char *what) { return lf__err_code_as(req, code, what, lf__err); }

json_t *lf__body_json(lf_req_t *req) {
    size_t len;
    const uint8_t *b = lf_req_body(req, &len);
    json_error_t e;
    json_t *j = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        lf__err(req, 400, "invalid_json", "", "the body is not valid JSON: %s (line %d, column %d)",
                e.text, e.line, e.column);
        return NULL;
    }
    return j;
}

/* ---------------------------------------------------------------- models */

/* Rebuild the cached model list from fresh worker views (model_mu held). */
static void s_models_rebuild(lf_gateway_t *gw, lf_worker_view_t *ws, size_t n, int64_t now) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const lf_worker_caps_t *c = &ws[i].caps;
        for (size_t k = 0; k < c->n_models; k++) {
            const char *name = c->models[k].name;
            if (!name) continue;
            bool resident = false;
            for (size_t r = 0; r < c->n_resident; r++)
                if (c->resident[r] && !strcmp(c->resident[r], name)) resident = true;
            json_t *found = NULL, *m;
            size_t idx;
            json_array_foreach(arr, idx, m) if (!strcmp(json_string_value(json_object_get(m, "name")), name)) found = m;
            if (!found) {
                /* family: the kind an engine model is ("sd15", "sdxl"), named for clients. */
                found = json_pack("{s:s,s:s,s:s,s:i,s:i}", "name", name, "kind",
                                  c->models[k].kind ? c->models[k].kind : "", "family",
                                  c->models[k].kind ? c->models[k].kind : "", "workers", 0, "resident", 0);
                json_array_append_new(arr, found);
            }
            if (c->models[k].preview && !json_object_get(found, "preview"))
                json_object_set_new(found, "preview", json_string(c->models[k].preview));
            /* The side the model was trained at (clients' default size); workers agree. */
            if (c->models[k].resolution && !json_object_get(found, "resolution"))
                json_object_set_new(found, "resolution", json_integer(c->models[k].resolution));
            /* An inpainting UNet (9 input channels): img2img with a mask is what it is for. */
            if (!json_object_get(found, "inpainting"))
                json_object_set_new(found, "inpainting", json_boolean(c->models[k].inpainting));
            /* Its recommended settings (jobs that do not say get them). */
            json_t *defs = json_object_get(found, "defaults") ? NULL : lf_fleet_defaults_json(&c->models[k].defaults);
            if (defs) json_object_set_new(found, "defaults", defs);
            json_object_set_new(found, "workers", json_integer(json_integer_value(json_object_get(found, "workers")) + 1));
            if (resident)
                json_object_set_new(found, "resident", json_integer(json_integer_value(json_object_get(found, "resident")) + 1));
        }
    }
    /* Separate VAEs (models/vae/), by name, with the workers that have each
     * and their family; each model lists the ones that fit it. */
    json_t *vaes = lf_fleet_vaes(ws, n), *m;
    size_t mi;
    json_array_foreach(arr, mi, m) {
        json_t *fit = lf_fleet_model_vaes(ws, n, json_string_value(json_object_get(m, "name")));
        if (fit) json_object_set_new(m, "vaes", fit);
    }
    json_decref(gw->vaes);
    gw->vaes = vaes;
    json_decref(gw->upscalers);
    gw->upscalers = lf_fleet_upscalers(ws, n);
    json_decref(gw->ad_models);
    gw->ad_models = lf_fleet_ad_models(ws, n);
    for (size_t i = 0; i < gw->n_ws; i++) lf_worker_view_clear(&gw->ws[i]);
    free(gw->ws);
    gw->ws = ws;
    gw->n_ws = n;
    json_decref(gw->models);
    gw->models = arr;
    /* LF_DEFAULT_MODEL's default ("lf-diagnostic") means "choose". */
    lf_fleet_default_model(ws, n, gw->default_model_cfg, gw->default_model, sizeof gw->default_model);
    gw->models_at_ms = now;
}

void lf__models(lf_gateway_t *gw, lf_store_t *st, char *default_model, size_t len, json_t **models) {
    int64_t now = lf__mono_ms();
    pthread_mutex_lock(&gw->model_mu);
    /* While nothing is known every call looks again, so the first worker is
     * seen as soon as it registers rather than up to 2 s later. */
    if (st && (!gw->models || !json_array_size(gw->models) || now - gw->models_at_ms > 2000)) {
        lf_worker_view_t *ws = NULL;
        size_t n = 0;
        if (lf_store_workers_list(st, &ws, &n) == 0) s_models_rebuild(gw, ws, n, now);
    }
    if (default_model) snprintf(default_model, len, "%s", gw->default_model);
    if (models) *models = gw->models ? json_deep_copy(gw->models) : json_array();
    pthread_mutex_unlock(&gw->model_mu);
}

json_t *lf__vaes(lf_gateway_t *gw, lf_store_t *st) {
    lf__models(gw, st, NULL, 0, NULL);
    pthread_mutex_lock(&gw->model_mu);
    json_t *v = gw->vaes ? json_deep_copy(gw->vaes) : json_array();
    pthread_mutex_unlock(&gw->model_mu);
    return v;
}

json_t *lf__model_vaes(lf_gateway_t *gw, lf_store_t *st, const char *model) {
    lf__models(gw, st, NULL, 0, NULL);
    pthread_mutex_lock(&gw->model_mu);
    json_t *v = lf_fleet_model_vaes(gw->ws, gw->n_ws, model);
    pthread_mutex_unlock(&gw->model_mu);
    return v;
}

json_t *lf__ad_models(lf_gateway_t *gw, lf_store_t *st) {
    lf__models(gw, st, NULL, 0, NULL);
    pthread_mutex_lock(&gw->model_mu);
    json_t *v = gw->ad_models ? json_deep_copy(gw->ad_models) : json_array();
    pthread_mutex_unlock(&gw->model_mu);
    return v;
}

json_t *lf__upscalers(lf_gateway_t *gw, lf_store_t *st) {
    lf__models(gw, st, NULL, 0, NULL);
    pthread_mutex_lock(&gw->model_mu);
    json_t *v = gw->upscalers ? json_deep_copy(gw->upscalers) : json_array();
    pthread_mutex_unlock(&gw->model_mu);
    return v;
}

bool lf__model_served(lf_gateway_t *gw, const char *name) {
    pthread_mutex_lock(&gw->model_mu);
    bool yes = lf_fleet_serves(gw->ws, gw->n_ws, name);
    pthread_mutex_unlock(&gw->model_mu);
    return yes;
}

int lf__admit_check(lf_gateway_t *gw, const lf_job_params_t *p, const char *model_field, lf_verr_t *e) {
    bool known = false;
    size_t live = lf_link_live(gw->link, &known);
    pthread_mutex_lock(&gw->model_mu);
    bool none = !gw->models || !json_array_size(gw->models);
    pthread_mutex_unlock(&gw->model_mu);
    /* Just after start silence proves nothing, so a farm known to have
     * workers gets the link's own retries; one with nothing known gets the
     * first missing piece named. */
    if (live == 0 && (known || none))
        return lf_verr_set(e, 503, "unavailable", "", "no broker is reachable right now; retry later (GET /readyz tells when the farm is ready)");
    pthread_mutex_lock(&gw->model_mu);
    none = !gw->models || !json_array_size(gw->models);
    bool served = !none && lf_fleet_serves(gw->ws, gw->n_ws, p->model);
    int fit = served ? lf_fleet_fit(gw->ws, gw->n_ws, p, e) : 0;
    /* The refiner and the VAE, named as the client named them. */
    bool a1111 = strcmp(model_field, "model") != 0;
    const lf_param_def_t *t = lf_params_table();
    char vae_field[96];
    snprintf(vae_field, sizeof vae_field, "%s%s", a1111 ? "override_settings." : "", a1111 ? t[LF_P_vae].a1111 : "vae");
    if (served && !fit) fit = lf_fleet_parts(gw->ws, gw->n_ws, p, "refiner_checkpoint", vae_field, e);
    if (served && !fit) fit = lf_fleet_loras_check(gw->ws, gw->n_ws, p, "prompt", e);
    if (served && !fit) fit = lf_fleet_upscaler_check(gw->ws, gw->n_ws, p, a1111 && p->mode && !strcmp(p->mode, "upscale") ? "upscaler_1" : NULL, e);
    pthread_mutex_unlock(&gw->model_mu);
    if (none)
        return lf_verr_set(e, 503, "unavailable", "", "no worker has registered a model yet; retry later (GET /readyz tells when the farm is ready)");
    if (!served) {
        char clip[129];
        return lf_verr_set(e, 400, "unknown_model", model_field, "no live worker serves model '%s' (GET /v1/models lists them; a worker offers only the models that fit its LF_MODEL_MEMORY_MB)",
                           lf_utf8_clip(p->model, clip, sizeof clip));
    }
    return fit ? LF_EINVAL : 0;
}

int lf__admit(lf_gateway_t *gw, lf_req_t *req, const lf_job_params_t *p, const char *model_field) {
    lf_verr_t e;
    if (lf__admit_check(gw, p, model_field, &e) == 0) return 0;
    if (e.status == 503) lf_req_add_header(req, "Retry-After", "2");
    lf__verr(req, &e);
    return -1;
}

/* A detector some live worker has (GET /adetailer/v1/ad_model). */
static int s_ad_model_known(void *ud, const char *name) {
    lf_gateway_t *gw = ud;
    pthread_mutex_lock(&gw->model_mu);
    int yes = lf_fleet_has_ad_model(gw->ws, gw->n_ws, name);
    pthread_mutex_unlock(&gw->model_mu);
    return yes;
}

/* The side a live worker says the model was trained at (GET /v1/models
 * "resolution"), for the default width/height; 0 when unknown. */
static uint32_t s_model_resolution(void *ud, const char *name) {
    lf_gateway_t *gw = ud;
    pthread_mutex_lock(&gw->model_mu);
    uint32_t res = lf_fleet_resolution(gw->ws, gw->n_ws, name);
    pthread_mutex_unlock(&gw->model_mu);
    return res;
}

/* The recommended settings a live worker says the model has, copied. */
static int s_model_defaults(void *ud, const char *name, lf_model_defaults_t *out) {
    lf_gateway_t *gw = ud;
    pthread_mutex_lock(&gw->model_mu);
    const lf_model_defaults_t *d = lf_fleet_defaults(gw->ws, gw->n_ws, name);
    int rc = d ? lf_model_defaults_copy(out, d) : LF_ENOTFOUND;
    pthread_mutex_unlock(&gw->model_mu);
    return rc;
}

/* The same for a LoRA the job uses. */
static int s_lora_defaults(void *ud, const char *name, lf_model_defaults_t *out) {
    lf_gateway_t *gw = ud;
    pthread_mutex_lock(&gw->model_mu);
    const lf_model_defaults_t *d = lf_fleet_lora_defaults(gw->ws, gw->n_ws, name);
    int rc = d ? lf_model_defaults_copy(out, d) : LF_ENOTFOUND;
    pthread_mutex_unlock(&gw->model_mu);
    return rc;
}

void lf__validate_ctx(lf_gateway_t *gw, lf_store_t *st, lf_validate_ctx_t *ctx, char *buf, size_t len) {
    lf__models(gw, st, buf, len, NULL);
    /* A stand-in while no model is known; lf__admit answers 503 then. */
    if (!buf[0]) snprintf(buf, len, "lf-diagnostic");
    memset(ctx, 0, sizeof *ctx);
    ctx->default_model = buf;
    ctx->random_seed = lf__random_seed();
    ctx->model_resolution = s_model_resolution;
    ctx->model_defaults = s_model_defaults;
    ctx->lora_defaults = s_lora_defaults;
    ctx->ad_model_known = s_ad_model_known;
    ctx->ud = gw;
}

/* ------------------------------------------------------------ link glue */

static void s_on_reply(void *arg, const lf_link_reply_t *reply) {
    lf_req_t *req = arg;
    lf__rstate_t *st = lf_req_state(req);
    st->reply = *reply;
    lf_req_wake(req);
    lf_req_unref(&req);
}

static void s_on_reply_ignore(void *arg, const lf_link_reply_t *reply) {
    (void)arg;
    if (reply->code) lf_debug("cancel: %s", reply->message);
}

/* ---------------------------------------------------- prompt enhancement */

/* A job accepted "enhancing" (the broker stored it, not queued): the
 * enhancer calls the LLM on its own thread, then the answer goes to a
 * broker as ENHANCED, which queues the job with the LLM's prompt or, on
 * any failure, the original one and the reason. Nothing waits for it: the
 * client has its 202 (or an A1111 call waits for the job's end, as for any
 * job). If this gateway stops or the ENHANCED is lost, the broker's reaper
 * moves the job on after the enhance_ms the SUBMIT carried. */
typedef struct {
    lf_gateway_t *gw;
    char job_id[64];
} s_enh_t;

static void s_on_enhanced_reply(void *arg, const lf_link_reply_t *reply) {
    s_enh_t *e = arg;
    if (reply->code)
        lf_warn("job %s: the broker did not take the enhanced prompt: %s", e->job_id,
                reply->message[0] ? reply->message : lf_strerror(reply->code));
    free(e);
}

/* The enhancer's answer (on its thread): to a broker. */
static void s_on_enhanced(void *arg, int rc, char *text, const char *err) {
    s_enh_t *e = arg;
    lf_msg_t m = {.type = LF_MSG_ENHANCED, .job_id = e->job_id, .code = rc};
    char why[1024];
    if (!rc) {
        m.prompt = text;
        lf_info("job %s: prompt enhanced (%zu bytes)", e->job_id, strlen(text));
    } else {
        m.message = (char *)lf_utf8_clip(err && *err ? err : lf_strerror(rc), why, sizeof why);
        lf_warn("job %s: prompt enhancement failed, the original prompt is used: %s", e->job_id, why);
    }
    if (lf_link_send(e->gw->link, &m, s_on_enhanced_reply, e)) {
        lf_warn("job %s: cannot send the enhancement to a broker (its reaper moves the job on)", e->job_id);
        free(e);
    }
    free(text);
}

/* Starts the enhancement of an accepted enhancing job (link thread). */
static void s_enhance_start(lf_gateway_t *gw, const char *job_id, const lf_job_params_t *p) {
    s_enh_t *e = gw->enhancer ? calloc(1, sizeof *e) : NULL;
    if (e) {
        e->gw = gw;
        snprintf(e->job_id, sizeof e->job_id, "%s", job_id);
        if (!lf_enhancer_run(gw->enhancer, p->prompt, p->enhance_instruction, s_on_enhanced, e)) return;
        free(e);
    }
    lf_warn("job %s: the enhancement could not start (the broker's reaper moves the job on)", job_id);
}

/* The broker's answer to a SUBMIT; an enhancing job's enhancement starts
 * here, once it is stored (also when a retried SUBMIT finds it still
 * enhancing: a second answer is dropped by the broker). */
static void s_on_submit_reply(void *arg, const lf_link_reply_t *reply) {
    lf_req_t *req = arg;
    lf__rstate_t *st = lf_req_state(req);
    if (!reply->code && reply->status == LF_JOB_ENHANCING)
        s_enhance_start(st->gw, reply->job_id, &st->jr.params);
    s_on_reply(arg, reply);
}

int lf__submit(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, const char *idem) {
    char gen[LF_ID_SIZE + 4];
    if (!idem) { /* a retry on another broker must not queue the job twice */
        char id[LF_ID_SIZE];
        if (lf_id_new(id)) return lf__err(req, 500, "internal", "", "no random bytes");
        snprintf(gen, sizeof gen, "gw-%s", id);
        idem = gen;
    }
    /* The gateway's own fields: what a client sent there is dropped. */
    lf_job_params_t *p = &st->jr.params;
    free(p->prompt_original), p->prompt_original = NULL;
    free(p->enhance_error), p->enhance_error = NULL;
    if (p->enhance_prompt && !gw->enhancer)
        p->enhance_error = strdup("no enhancement endpoint is configured (LF_ENHANCE_URL)");
    lf_msg_t m = {.type = LF_MSG_SUBMIT, .priority = st->jr.priority, .ttl_s = st->jr.ttl_s,
                  .idem_key = (char *)idem, .params = st->jr.params,
                  .enhance_ms = p->enhance_prompt && gw->enhancer ? gw->enhance_wait_ms : 0};
    lf_req_ref(req);
    int rc = lf_link_send(gw->link, &m, s_on_submit_reply, req);
    if (rc) {
        lf_req_t *ref = req; /* the link's reference; the handler's keeps req alive */
        lf_req_unref(&ref);
        return lf__err_code(req, rc, "submit");
    }
    return LF_HTTP_PENDING;
}

int lf__cancel(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, const char *job_id) {
    (void)st;
    lf_msg_t m = {.type = LF_MSG_CANCEL, .job_id = (char *)job_id};
    if (!req) return lf_link_send(gw->link, &m, s_on_reply_ignore, NULL);
    lf_req_ref(req);
    int rc = lf_link_send(gw->link, &m, s_on_reply, req);
    if (rc) {
        lf_req_t *ref = req; /* the link's reference; the handler's keeps req alive */
        lf_req_unref(&ref);
        return lf__err_code(req, rc, "cancel");
    }
    return LF_HTTP_PENDING;
}

int lf__rescan(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    (void)st;
    lf_msg_t m = {.type = LF_MSG_RESCAN};
    lf_req_ref(req);
    int rc = lf_link_send(gw->link, &m, s_on_reply, req);
    if (rc) {
        lf_req_unref(&req);
        return lf__err_code(req, rc, "rescan");
    }
    return LF_HTTP_PENDING;
}

/* --------------------------------------------------------------- uploads */

int lf__upload_store(lf_gateway_t *gw, lf_req_t *req, lf_store_t *stt, const uint8_t *data,
                     size_t len, const char *field, char *id_out, json_t **info) {
    if ((int64_t)len > gw->upload_max_bytes) {
        lf__err(req, 413, "too_large", field, "the image is %zu bytes; the limit is %lld", len,
                (long long)gw->upload_max_bytes);
        return -1;
    }
    lf_image_info_t ii;
    if (lf_image_probe(data, len, &ii) != 0) {
        lf__err(req, 415, "unsupported_media_type", field, "not a PNG, JPEG or WebP image");
        return -1;
    }
    /* The decompression-bomb check: from the header, before any decoding. */
    if ((int64_t)ii.width * ii.height > gw->upload_max_pixels) {
        lf__err(req, 413, "too_large", field, "the image is %ux%u; the limit is %lld pixels", ii.width,
                ii.height, (long long)gw->upload_max_pixels);
        return -1;
    }
    lf_image_limits_t lim = {.max_bytes = (size_t)gw->upload_max_bytes,
                             .max_pixels = (uint64_t)gw->upload_max_pixels};
    lf_image_t img = {0};
    char err[200] = "";
    int rc = lf_image_decode(data, len, &lim, &img, err, sizeof err);
    lf_image_clear(&img);
    if (rc == LF_ELIMIT || rc == LF_ETOOBIG) {
        lf__err(req, 413, "too_large", field, "%s", err[0] ? err : lf_strerror(rc));
        return -1;
    }
    if (rc) {
        lf__err(req, 400, "invalid_value", field, "the image does not decode: %s", err[0] ? err : lf_strerror(rc));
        return -1;
    }
    const char *mime = lf_image_format_mime(ii.format);
    rc = lf_store_upload_put(stt, data, len, mime, ii.width, ii.height, (uint32_t)gw->upload_ttl_s, id_out);
    if (rc) {
        lf__err_code(req, rc, "upload");
        return -1;
    }
    if (info)
        *info = json_pack("{s:s,s:s,s:i,s:i,s:I}", "id", id_out, "mime", mime, "width", (json_int_t)ii.width,
                          "height", (json_int_t)ii.height, "bytes", (json_int_t)len);
    return 0;
}

/* ------------------------------------------------------------ static, misc */

static int s_static(lf_gateway_t *gw, lf_req_t *req, const char *path) {
    static const char nf[] = "not found\n";
    if (!gw->have_web) return lf_req_respond_static(req, 404, "text/plain", nf, sizeof nf - 1), LF_HTTP_DONE;
    if (!lf_routes_static_path_ok(path)) {
        static const char bad[] = "bad path\n";
        lf_req_respond_static(req, 400, "text/plain", bad, sizeof bad - 1);
        return LF_HTTP_DONE;
    }
    char real[PATH_MAX];
    int rc = lf_routes_static_resolve(gw->web_root, path, real, sizeof real);
    if (rc == LF_EINVAL) {
        static const char bad[] = "forbidden\n";
        lf_req_respond_static(req, 403, "text/plain", bad, sizeof bad - 1);
        return LF_HTTP_DONE;
    }
    int fd = rc == 0 ? open(real, O_RDONLY | O_CLOEXEC) : -1;
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) close(fd);
        lf_req_respond_static(req, 404, "text/plain", nf, sizeof nf - 1);
        return LF_HTTP_DONE;
    }
    const char *mime = lf_routes_mime(real);
    lf_req_add_header(req, "Cache-Control", strncmp(mime, "text/html", 9) ? "max-age=300" : "no-cache");
    lf_req_add_header(req, "X-Content-Type-Options", "nosniff");
    lf_req_respond_fd(req, 200, mime, fd, (uint64_t)sb.st_size);
    return LF_HTTP_DONE;
}

/* What /healthz and /readyz report: Redis, live brokers (heard within
 * the heartbeat liveness), live workers (fresh from Redis). */
static void s_health(lf_gateway_t *gw, lf_fleet_health_t *h, double *rtt, json_t **models) {
    lf_store_t *st = lf__store_get(gw);
    int rc = st ? lf_store_ping(st, rtt) : LF_ECONN;
    memset(h, 0, sizeof *h);
    h->redis_ok = rc == 0;
    h->brokers_live = lf_link_live(gw->link, NULL);
    if (h->redis_ok) {
        lf_worker_view_t *ws = NULL;
        size_t n = 0;
        if (lf_store_workers_list(st, &ws, &n) == 0) {
            lf_fleet_count(ws, n, &h->workers, &h->workers_with_models);
            pthread_mutex_lock(&gw->model_mu);
            s_models_rebuild(gw, ws, n, lf__mono_ms()); /* takes ws */
            pthread_mutex_unlock(&gw->model_mu);
        } else {
            h->redis_ok = false;
        }
    }
    lf__store_put(gw, st, rc);
    if (models) {
        *models = json_array();
        json_t *all = NULL, *m;
        size_t i;
        lf__models(gw, NULL, NULL, 0, &all);
        json_array_foreach(all, i, m) json_array_append(*models, json_object_get(m, "name"));
        json_decref(all);
    }
}

/* The external image store's health for /healthz: {store, ok, error?},
 * checked at most every LF__BLOB_CHECK_MS (an S3 HEAD per probe would be
 * wasteful); NULL when the images live in Redis. Caller owns. */
#define LF__BLOB_CHECK_MS 5000
static json_t *s_image_store_health(lf_gateway_t *gw) {
    if (!gw->blobs) return NULL;
    int64_t now = lf__mono_ms();
    pthread_mutex_lock(&gw->blob_mu);
    bool due = !gw->blob_checked_ms || now - gw->blob_checked_ms >= LF__BLOB_CHECK_MS;
    pthread_mutex_unlock(&gw->blob_mu);
    if (due) {
        /* The request runs unlocked: a slow store must not hold the others. */
        char err[512] = "";
        int rc = lf_blobstore_check(gw->blobs, err, sizeof err);
        pthread_mutex_lock(&gw->blob_mu);
        if (rc && (gw->blob_rc == 0 || gw->blob_checked_ms == 0)) lf_warn("%s", err);
        gw->blob_rc = rc;
        snprintf(gw->blob_err, sizeof gw->blob_err, "%s", err);
        gw->blob_checked_ms = now;
        pthread_mutex_unlock(&gw->blob_mu);
    }
    pthread_mutex_lock(&gw->blob_mu);
    json_t *j = json_pack("{s:s,s:b}", "store", lf_blobstore_describe(gw->blobs), "ok", gw->blob_rc == 0);
    if (j && gw->blob_rc) json_object_set_new(j, "error", json_string(gw->blob_err));
    pthread_mutex_unlock(&gw->blob_mu);
    return j;
}

/* Liveness of the gateway and what it can see: 503 only when Redis does
 * not answer; no broker or no worker is "degraded" (GET /readyz is the
 * question "can I submit now?"). */
static int s_healthz(lf_gateway_t *gw, lf_req_t *req) {
    lf_fleet_health_t h;
    double rtt = 0;
    s_health(gw, &h, &rtt, NULL);
    lf_link_stats_t ls;
    lf_link_stats(gw->link, &ls);
    json_t *store = s_image_store_health(gw);
    bool store_ok = !store || json_is_true(json_object_get(store, "ok"));
    /* Each broker: alive, and able to use Redis (a broker cut from Redis
     * answers our heartbeats saying so; it assigns nothing meanwhile). */
    lf_link_broker_t bl[16];
    size_t nb = lf_link_brokers(gw->link, bl, 16), cut = 0;
    json_t *links = json_array();
    for (size_t i = 0; i < nb && i < 16; i++) {
        cut += bl[i].live && !bl[i].store_ok;
        json_array_append_new(links, json_pack("{s:s,s:b,s:b,s:I}", "endpoint", bl[i].endpoint, "live",
                                               bl[i].live, "redis", bl[i].store_ok, "heard_ms_ago",
                                               (json_int_t)bl[i].heard_ms_ago));
    }
    const char *status = !h.redis_ok                                                  ? "down"
                         : lf_fleet_not_ready(&h, NULL, 0) || !store_ok || cut ? "degraded"
                                                                                   : "ok";
    json_t *j = json_pack("{s:s,s:b,s:f,s:I,s:I,s:I,s:I}", "status", status, "redis", h.redis_ok,
                          "redis_rtt_us", rtt, "brokers", (json_int_t)h.brokers_live,
                          "brokers_configured", (json_int_t)gw->n_brokers, "workers",
                          (json_int_t)h.workers, "in_flight", (json_int_t)ls.in_flight);
    if (j && store) json_object_set_new(j, "image_store", store);
    else json_decref(store);
    if (j) {
        json_object_set_new(j, "brokers_redis_down", json_integer((json_int_t)cut));
        json_object_set_new(j, "broker_links", links);
    } else {
        json_decref(links);
    }
    return lf__json(req, h.redis_ok ? 200 : 503, j);
}

static int s_readyz(lf_gateway_t *gw, lf_req_t *req) {
    lf_fleet_health_t h;
    double rtt = 0;
    json_t *models = NULL;
    s_health(gw, &h, &rtt, &models);
    const char *why[4];
    size_t n = lf_fleet_not_ready(&h, why, 4);
    if (n) {
        json_decref(models);
        json_t *reasons = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(reasons, json_string(why[i]));
        lf_req_add_header(req, "Retry-After", "1");
        return lf__json(req, 503, json_pack("{s:b,s:o}", "ready", 0, "reasons", reasons));
    }
    return lf__json(req, 200, json_pack("{s:b,s:I,s:I,s:o}", "ready", 1, "brokers", (json_int_t)h.brokers_live,
                                        "workers", (json_int_t)h.workers, "models", models));
}

/* Constant-time comparison of an offered key with the configured ones. */
static bool s_key_ok(lf_gateway_t *gw, const char *key) {
    if (!key) return false;
    size_t kl = strlen(key);
    bool ok = false;
    for (size_t i = 0; i < gw->n_keys; i++) {
        const char *k = gw->api_keys[i];
        size_t l = strlen(k);
        unsigned diff = (unsigned)(l ^ kl);
        for (size_t j = 0; j < l; j++) diff |= (unsigned)(k[j] ^ (j < kl ? key[j] : 0));
        ok |= diff == 0;
    }
    return ok;
}

/* The key from the headers; from ?api_key= only on event streams, where a
 * browser's EventSource cannot send headers (elsewhere a key in the URL
 * would end up in logs and histories for nothing). */
static const char *s_offered_key(lf_req_t *req, const lf_route_t *route) {
    const char *a = lf_req_header(req, "Authorization");
    if (a && !strncasecmp(a, "Bearer ", 7)) return a + 7;
    const char *x = lf_req_header(req, "X-API-Key");
    if (x) return x;
    return route->id == LF_ROUTE_JOB_EVENTS ? lf_req_query(req, "api_key") : NULL;
}

static void s_state_free(void *p) {
    lf__rstate_t *st = p;
    lf_job_request_clear(&st->jr);
    json_decref(st->body);
    free(st);
}

/* The handler file of a route, by its name's prefix (lf_routes.h): A_ is
 * A1111, O_ OpenAI, the rest native; a route added anywhere in the table
 * lands in the right file. */
static int s_dispatch(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    const char *name = st->m.route->name;
    if (!strncmp(name, "O_", 2)) return lf__openai_handle(gw, req, st);
    if (!strncmp(name, "A_", 2)) return lf__a1111_handle(gw, req, st);
    return lf__api_handle(gw, req, st);
}

/* A preflight's Access-Control-Allow-Headers: the headers the browser asks
 * for (Access-Control-Request-Headers) when that is a plain list of header
 * names, else our own. Client SDKs send headers of their own (OpenAI's JS
 * client: x-stainless-os, x-stainless-retry-count, ...), and a preflight
 * that leaves one out fails the request in the browser. The configured
 * origin is what guards cross-origin use; this list only has to cover what
 * clients send. */
static const char *s_cors_allow_headers(lf_req_t *req) {
    static const char def[] = "Authorization, Content-Type, Idempotency-Key";
    const char *h = lf_req_header(req, "Access-Control-Request-Headers");
    if (!h || !*h || strlen(h) > 2048) return def;
    for (const char *p = h; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && c != '-' && c != '_' && c != ',' && c != ' ') return def;
    }
    return h;
}

static int s_handle(void *ud, lf_req_t *req) {
    lf_gateway_t *gw = ud;
    lf__rstate_t *st = lf_req_state(req);
    if (st) { /* woken: continue where the handler left off */
        return s_dispatch(gw, req, st);
    }
    const char *method = lf_req_method(req), *path = lf_req_path(req);
    if (gw->cors[0]) {
        lf_req_add_header(req, "Access-Control-Allow-Origin", gw->cors);
        lf_req_add_header(req, "Access-Control-Expose-Headers", "Retry-After, Location");
        if (!strcmp(method, "OPTIONS")) {
            lf_req_add_header(req, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
            lf_req_add_header(req, "Access-Control-Allow-Headers", s_cors_allow_headers(req));
            lf_req_add_header(req, "Access-Control-Max-Age", "600");
            lf_req_respond_static(req, 204, NULL, "", 0);
            return LF_HTTP_DONE;
        }
    }
    lf_route_match_t m;
    if (!lf_routes_match(method, path, &m)) {
        if (m.method_mismatch) {
            lf_req_add_header(req, "Allow", m.allow);
            return lf__err(req, 405, "method_not_allowed", "", "%s is not allowed on %s (allowed: %s)", method,
                           path, m.allow);
        }
        if (lf_routes_is_api(path)) return lf__err(req, 404, "not_found", "", "no such endpoint: %s", path);
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return lf__err(req, 405, "method_not_allowed", "", "%s is not allowed here", method);
        return s_static(gw, req, path);
    }
    lf_req_set_tag(req, (int)m.route->id);
    const char *key = NULL;
    if (m.route->auth && gw->n_keys) {
        key = s_offered_key(req, m.route);
        if (!s_key_ok(gw, key)) {
            lf_req_add_header(req, "WWW-Authenticate", "Bearer realm=\"lightfarm\"");
            return lf__err(req, 401, "unauthorized", "", key ? "the API key is not valid" : "an API key is required (Authorization: Bearer <key>)");
        }
    }
    if (gw->rl && m.route->auth) {
        int retry = 1;
        if (!lf_ratelimit_take(gw->rl, key ? key : lf_req_client(req), lf__mono_ms(), &retry)) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", retry);
            lf_req_add_header(req, "Retry-After", ra);
            return lf__err(req, 429, "rate_limited", "", "too many requests; retry in %d s", retry);
        }
    }
    switch (m.route->id) {
    case LF_ROUTE_HEALTHZ: return s_healthz(gw, req);
    case LF_ROUTE_READYZ: return s_readyz(gw, req);
    case LF_ROUTE_METRICS: return lf__metrics(gw, req);
    case LF_ROUTE_OPENAPI: {
        extern const char lf_openapi_json[];
        extern const size_t lf_openapi_json_len;
        /* The job schemas come from the parameter table (lf_schema). */
        json_t *doc = lf_schema_openapi(lf_openapi_json, lf_openapi_json_len);
        if (!doc) return lf__err(req, 500, "internal", "", "the OpenAPI document could not be built");
        return lf__json(req, 200, doc);
    }
    default: break;
    }
    st = calloc(1, sizeof *st);
    if (!st) return lf__err(req, 500, "internal", "", "out of memory");
    st->gw = gw;
    st->m = m;
    lf_req_set_state(req, st, s_state_free);
    return s_dispatch(gw, req, st);
}

/* ----------------------------------------------------------------- CURVE */

/* CURVE client keys from czmq certificate files (LF_CURVE_CERT: ours, with
 * its secret part; LF_CURVE_SERVER_CERT: the broker's public one). Neither
 * set: plain TCP. Anything half-given or unreadable is an error: a gateway
 * that was meant to encrypt must never quietly talk in clear. Only the
 * server certificate: an ephemeral key of our own (encrypted, but accepted
 * only by a broker that allows any client, LF_CURVE_CLIENTS_DIR=*). */
typedef struct {
    char server[41], pub[41], sec[41];
} s_curve_keys_t;

static int s_cert_error(const char *what, const char *path, char *err, size_t errlen) {
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (access(path, R_OK) != 0 && access(secret, R_OK) != 0)
        snprintf(err, errlen, "CURVE: cannot read %s %s: %s", what, path, strerror(errno));
    else
        snprintf(err, errlen, "CURVE: %s %s is not a CURVE certificate (czmq zcert format)", what, path);
    return LF_EINVAL;
}

static int s_load_curve(const lf_config_t *cfg, s_curve_keys_t *k, bool *on, char *err, size_t errlen) {
    const char *own = cfg->curve_cert && *cfg->curve_cert ? cfg->curve_cert : NULL;
    const char *srv = cfg->curve_server_cert && *cfg->curve_server_cert ? cfg->curve_server_cert : NULL;
    *on = false;
    if (!own && !srv) return 0;
    if (!srv) {
        snprintf(err, errlen,
                 "CURVE: LF_CURVE_CERT (%s) is set but LF_CURVE_SERVER_CERT (the broker's public "
                 "certificate) is not; refusing to fall back to plain TCP",
                 own);
        return LF_EINVAL;
    }
    if (!zsys_has_curve()) {
        snprintf(err, errlen, "CURVE: asked for (LF_CURVE_SERVER_CERT) but this libzmq has no CURVE support");
        return LF_EUNSUPPORTED;
    }
    /* zcert_load(p) reads p_secret when it exists, else p. */
    zcert_t *server = zcert_load(srv);
    if (!server) return s_cert_error("the broker certificate (LF_CURVE_SERVER_CERT)", srv, err, errlen);
    zcert_t *mine = own ? zcert_load(own) : zcert_new();
    if (!mine) {
        zcert_destroy(&server);
        if (own) return s_cert_error("the gateway certificate (LF_CURVE_CERT)", own, err, errlen);
        snprintf(err, errlen, "CURVE: cannot make a key pair");
        return LF_ENOMEM;
    }
    snprintf(k->server, sizeof k->server, "%s", zcert_public_txt(server));
    snprintf(k->pub, sizeof k->pub, "%s", zcert_public_txt(mine));
    snprintf(k->sec, sizeof k->sec, "%s", zcert_secret_txt(mine));
    zcert_destroy(&server);
    zcert_destroy(&mine);
    static const char zero[] = "0000000000000000000000000000000000000000"; /* 32 zero bytes in Z85 */
    if (!strcmp(k->server, zero)) {
        explicit_bzero(k, sizeof *k);
        snprintf(err, errlen, "CURVE: the broker certificate (LF_CURVE_SERVER_CERT) %s has no public key", srv);
        return LF_EINVAL;
    }
    if (!strcmp(k->sec, zero)) { /* a public-only file loads with an all-zero secret */
        explicit_bzero(k, sizeof *k);
        snprintf(err, errlen,
                 "CURVE: the gateway certificate (LF_CURVE_CERT) %s has no secret key (give the file "
                 "written with its _secret part, not the public copy)",
                 own);
        return LF_EINVAL;
    }
    if (own)
        lf_info("CURVE on: broker key %s, gateway key %s (%s)", k->server, k->pub, own);
    else
        lf_warn("CURVE on with an ephemeral gateway key %s (no LF_CURVE_CERT): only a broker that "
                "allows any client will accept it",
                k->pub);
    *on = true;
    return 0;
}

/* One line per 4xx/5xx answer (info for 4xx, warn for 5xx; not for the
 * health probes), at most
 * LF__LOG_RATE a second after a burst of LF__LOG_BURST, so a flood of bad
 * requests cannot fill the disk; the next line says how many were held
 * back. */
#define LF__LOG_RATE 10.0
#define LF__LOG_BURST 50.0
static void s_log_answer(lf_gateway_t *gw, lf_req_t *req, int status) {
    if (status < 400 || !gw->log_rl) return;
    /* Probes answer 503 on purpose while the farm starts; they are polled. */
    int tag = lf_req_tag(req);
    if (tag == LF_ROUTE_HEALTHZ || tag == LF_ROUTE_READYZ) return;
    if (!lf_ratelimit_take(gw->log_rl, "http", lf__mono_ms(), NULL)) {
        atomic_fetch_add(&gw->log_dropped, 1);
        return;
    }
    uint64_t dropped = atomic_exchange(&gw->log_dropped, 0);
    const char *code = lf_req_note(req);
    char more[64] = "";
    if (dropped) snprintf(more, sizeof more, " (%llu earlier lines held back)", (unsigned long long)dropped);
    lf_log(status >= 500 ? LF_LOG_WARN : LF_LOG_INFO, "http: %s %.200s %d %s%s", lf_req_method(req),
           lf_req_path(req), status, code[0] ? code : "-", more);
}

static void s_done(void *ud, lf_req_t *req, int status, int64_t us) {
    lf_gateway_t *gw = ud;
    s_log_answer(gw, req, status);
    int tag = lf_req_tag(req);
    if (tag < 0 || tag >= LF_ROUTE__COUNT) tag = 0;
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    atomic_fetch_add(&gw->req_by_class[tag][cls], 1);
    double s = (double)us / 1e6;
    for (int i = 0; i < LF__HIST_N; i++)
        if (s <= lf__hist_le[i]) {
            atomic_fetch_add(&gw->lat_bucket[tag][i], 1);
            break;
        }
    atomic_fetch_add(&gw->lat_sum_us[tag], (uint64_t)us);
    atomic_fetch_add(&gw->lat_count[tag], 1);
}

lf_gateway_t *lf_gateway_new(const lf_config_t *cfg, char *err, size_t errlen) {
    lf_gateway_t *gw = calloc(1, sizeof *gw);
    if (!gw) return NULL;
    err[0] = 0;
    pthread_mutex_init(&gw->pool_mu, NULL);
    pthread_mutex_init(&gw->model_mu, NULL);
    pthread_mutex_init(&gw->a_mu, NULL);
    pthread_mutex_init(&gw->blob_mu, NULL);
    snprintf(gw->host, sizeof gw->host, "%s", cfg->http_host ? cfg->http_host : "127.0.0.1");
    gw->port = (int)cfg->http_port;
    gw->threads = (int)cfg->http_threads;
    gw->max_body = (size_t)cfg->http_max_body;
    gw->sync_timeout_ms = cfg->sync_timeout_s * 1000;
    gw->upload_ttl_s = cfg->upload_ttl_s;
    gw->upload_max_bytes = cfg->upload_max_bytes;
    gw->upload_max_pixels = cfg->upload_max_pixels;
    gw->n_brokers = cfg->frontend.n;
    snprintf(gw->default_model_cfg, sizeof gw->default_model_cfg, "%s",
             cfg->default_model ? cfg->default_model : "lf-diagnostic");
    if (cfg->cors_origin) snprintf(gw->cors, sizeof gw->cors, "%s", cfg->cors_origin);
    if (cfg->web_root && *cfg->web_root) {
        if (!realpath(cfg->web_root, gw->web_root)) {
            lf_warn("web root %s: %s; static files are off", cfg->web_root, strerror(errno));
        } else {
            gw->have_web = true;
        }
    }
    if (cfg->api_keys.n) {
        gw->api_keys = calloc(cfg->api_keys.n, sizeof *gw->api_keys);
        if (!gw->api_keys) goto fail;
        for (size_t i = 0; i < cfg->api_keys.n; i++)
            if (!(gw->api_keys[gw->n_keys++] = strdup(cfg->api_keys.items[i]))) goto fail;
    }
    if (cfg->rate_limit > 0) {
        /* LF_RATE_LIMIT requests per second per key, plus LF_RATE_BURST. */
        double burst = cfg->rate_burst > 0 ? (double)cfg->rate_burst : (double)cfg->rate_limit;
        gw->rl = lf_ratelimit_new((double)cfg->rate_limit, burst < 1 ? 1 : burst, 4096);
        if (!gw->rl) goto fail;
    }
    gw->log_rl = lf_ratelimit_new(LF__LOG_RATE, LF__LOG_BURST, 4);
    if (!gw->log_rl) goto fail;
    snprintf(gw->redis_host, sizeof gw->redis_host, "%s", cfg->redis_host ? cfg->redis_host : "127.0.0.1");
    snprintf(gw->redis_prefix, sizeof gw->redis_prefix, "%s", cfg->redis_prefix ? cfg->redis_prefix : "lf:");
    gw->sopts = (lf_store_opts_t){.host = gw->redis_host, .port = (int)cfg->redis_port,
                                  .prefix = gw->redis_prefix, .timeout_ms = (int)cfg->redis_timeout_ms};
    if (!lf_blobstore_spec_is_redis(cfg->image_store)) {
        lf_blobstore_opts_t bo = {.spec = cfg->image_store, .endpoint = cfg->s3_endpoint,
                                  .region = cfg->s3_region, .access_key = cfg->s3_access_key,
                                  .secret_key = cfg->s3_secret_key,
                                  .timeout_ms = (int)cfg->image_store_timeout_ms};
        if (!(gw->blobs = lf_blobstore_new(&bo, err, errlen))) goto fail;
        gw->sopts.blobs = gw->blobs;
        lf_info("images are read from %s", lf_blobstore_describe(gw->blobs));
    }
    if (cfg->enhance_url && *cfg->enhance_url) {
        lf_enhance_opts_t eo = {.url = cfg->enhance_url, .model = cfg->enhance_model,
                                .system = cfg->enhance_system, .api_key = cfg->enhance_api_key,
                                .timeout_ms = cfg->enhance_timeout_ms,
                                .max_chars = (size_t)cfg->enhance_max_chars};
        if (lf_enhance_api_parse(cfg->enhance_api ? cfg->enhance_api : "openai", &eo.api)) {
            snprintf(err, errlen, "LF_ENHANCE_API must be openai or ollama, not '%s'", cfg->enhance_api);
            goto fail;
        }
        if (!(gw->enhancer = lf_enhancer_new(&eo, (int)cfg->enhance_threads, err, errlen))) goto fail;
        /* The longest a job may wait for our ENHANCED: the LLM's timeout, then
         * the link's retries over the brokers (past that, their reaper). */
        gw->enhance_wait_ms = (uint32_t)(cfg->enhance_timeout_ms + cfg->request_timeout_ms);
        lf_info("prompt enhancement: %s (%s API, model %s, timeout %lld ms)", cfg->enhance_url,
                lf_enhance_api_name(eo.api), eo.model ? eo.model : "(server's)", (long long)eo.timeout_ms);
    }
    /* Redis may come up after us: the pool connects lazily, the hub's store too. */
    gw->hub_store = lf_store_new(&gw->sopts, err, errlen);
    if (!gw->hub_store) {
        lf_warn("redis: %s (retrying on demand)", err);
        err[0] = 0;
    }
    s_curve_keys_t keys = {0};
    bool curve_on = false;
    if (s_load_curve(cfg, &keys, &curve_on, err, errlen)) goto fail;
    lf_link_curve_t curve = {keys.server, keys.pub, keys.sec};
    gw->link = lf_link_new(cfg->frontend.items, cfg->frontend.n, 2000, (int)cfg->request_timeout_ms,
                           (int)cfg->heartbeat_ms, (int)cfg->heartbeat_liveness, curve_on ? &curve : NULL, err,
                           errlen);
    gw->hub = gw->link ? lf_hub_new(cfg->events.items, cfg->events.n, gw, curve_on ? &curve : NULL, err, errlen)
                       : NULL;
    explicit_bzero(&keys, sizeof keys); /* the sockets hold their own copies */
    if (!gw->hub) goto fail;
    lf_http_opts_t ho = {.host = gw->host, .port = gw->port, .threads = gw->threads,
                         .max_body = gw->max_body, .handler = s_handle, .done = s_done, .ud = gw};
    gw->http = lf_http_new(&ho, err, errlen);
    if (!gw->http) goto fail;
    gw->port = lf_http_port(gw->http);
    return gw;
fail:
    if (!err[0]) snprintf(err, errlen, "out of memory");
    lf_gateway_destroy(&gw);
    return NULL;
}

void lf_gateway_destroy(lf_gateway_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_gateway_t *gw = *self_p;
    /* Answer everyone who waits first (they resume their connections), then
     * close the server. */
    /* The enhancer first: what it holds wakes and gets its answer from the link. */
    lf_enhancer_destroy(&gw->enhancer);
    lf_hub_stop(gw->hub);
    lf_link_stop(gw->link);
    lf_http_destroy(&gw->http);
    lf_hub_destroy(&gw->hub);
    lf_link_destroy(&gw->link);
    lf_store_destroy(&gw->hub_store);
    for (int i = 0; i < gw->n_pool; i++) lf_store_destroy(&gw->pool[i]);
    lf_blobstore_destroy(&gw->blobs); /* after every store that borrows it */
    pthread_mutex_destroy(&gw->blob_mu);
    for (size_t i = 0; i < gw->n_keys; i++) free(gw->api_keys[i]);
    free(gw->api_keys);
    lf_ratelimit_destroy(&gw->rl);
    lf_ratelimit_destroy(&gw->log_rl);
    json_decref(gw->models);
    json_decref(gw->vaes);
    json_decref(gw->upscalers);
    json_decref(gw->ad_models);
    for (size_t i = 0; i < gw->n_ws; i++) lf_worker_view_clear(&gw->ws[i]);
    free(gw->ws);
    pthread_mutex_destroy(&gw->pool_mu);
    pthread_mutex_destroy(&gw->model_mu);
    pthread_mutex_destroy(&gw->a_mu);
    free(gw);
    *self_p = NULL;
}

int lf_gateway_port(const lf_gateway_t *self) { return self->port; }
