/* lf_openai: the OpenAI-compatible images API (POST /v1/images/generations,
 * POST /v1/images/edits), so OpenAI SDK clients and chat UIs can use the
 * farm, and GET /v1/models/{id} (GET /v1/models itself, in lf_api.c, carries
 * the OpenAI list next to ours). Requests are mapped to native jobs by lf_openai_map (pure); the
 * handlers block until the job ends without holding a thread, as the A1111
 * ones do: submit (suspended until ACCEPTED), then lf_wait waits for the
 * job's end; this file shapes the answer (URLs or base64). Errors from these
 * handlers are in OpenAI's shape ({"error": {message, type, param, code}}). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lf_error.h"
#include "lf_gateway_impl.h"
#include "lf_image.h"
#include "lf_log.h"
#include "lf_multipart.h"
#include "lf_openai_map.h"

#define S_FORM_PARTS_MAX 32

/* ---- answers in OpenAI's shape ---- */

static int s_oerr(lf_req_t *req, int status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int s_oerr(lf_req_t *req, int status, const char *code, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lf_utf8_truncate(msg, sizeof msg - 1); /* echoes user text */
    return lf__json(req, status, lf_openai_map_error(status, code, param, msg));
}

static int s_overr(lf_req_t *req, const lf_verr_t *e) {
    return s_oerr(req, e->status ? e->status : 400, e->code ? e->code : "invalid_value", e->field, "%s", e->message);
}

/* An unknown model, no farm yet, or a job no worker could run: lf__admit's
 * decision in OpenAI's shape (the param is the OpenAI field: size, n). */
static int s_admit(lf_gateway_t *gw, lf_req_t *req, const lf_job_params_t *p) {
    lf_verr_t e;
    if (lf__admit_check(gw, p, "model", &e) == 0) return 0;
    if (e.status == 503) lf_req_add_header(req, "Retry-After", "2");
    if (!strcmp(e.field, "width") || !strcmp(e.field, "height")) snprintf(e.field, sizeof e.field, "size");
    else if (!strcmp(e.field, "batch_size")) snprintf(e.field, sizeof e.field, "n");
    s_overr(req, &e);
    return -1;
}

/* An LF_E* code from the store or link, mapped as lf__err_code maps it. */
static int s_oerr_code(lf_req_t *req, int code, const char *what) { return lf__err_code_as(req, code, what, s_oerr); }

/* ---- the answer ---- */

/* "http://host:port" for result URLs: the Host header the client used (so
 * the URL works from where the client is), else our listening address. */
static void s_base_url(lf_gateway_t *gw, lf_req_t *req, char *out, size_t len) {
    const char *host = lf_req_header(req, "Host");
    bool ok = host && *host && strlen(host) <= 255;
    for (const char *c = host; ok && *c; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr(".-:[]_", *c);
    const char *proto = lf_req_header(req, "X-Forwarded-Proto");
    const char *scheme = proto && !strcasecmp(proto, "https") ? "https" : "http";
    if (ok) snprintf(out, len, "%s://%s", scheme, host);
    else snprintf(out, len, "%s://%s:%d", scheme, gw->host, gw->port);
}

static int s_finish(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, lf_store_t *stt, lf_job_view_t *v) {
    if (v->status == LF_JOB_FAILED)
        return s_oerr(req, 500, lf_err_name(v->code), NULL, "generation failed: %s", v->message ? v->message : "");
    if (v->status == LF_JOB_CANCELLED)
        return s_oerr(req, 500, "cancelled", NULL, "job %s was cancelled", st->job_id);
    /* The format was validated at submit; the body still holds it. */
    const char *rf = json_string_value(json_object_get(st->body, "response_format"));
    bool b64 = rf && !strcmp(rf, "b64_json");
    char base[300];
    s_base_url(gw, req, base, sizeof base);
    const char *prompt = st->jr.params.prompt ? st->jr.params.prompt : "";
    json_t *data = json_array();
    for (uint32_t i = 0; i < v->n_images; i++) {
        json_t *item;
        if (b64) {
            char *enc;
            if (lf__wait_image_b64(req, stt, st->job_id, i, s_oerr, &enc)) {
                json_decref(data);
                return LF_HTTP_DONE;
            }
            item = json_pack("{s:s,s:s}", "b64_json", enc, "revised_prompt", prompt);
            free(enc);
        } else {
            char url[512];
            snprintf(url, sizeof url, "%s/v1/images/%s-%u.png", base, st->job_id, i);
            item = json_pack("{s:s,s:s}", "url", url, "revised_prompt", prompt);
        }
        json_array_append_new(data, item);
    }
    return lf__json(req, 200, json_pack("{s:I,s:o}", "created", (json_int_t)(v->created_ms / 1000), "data", data));
}

/* The broker refused the job: a job it calls invalid is the client's. */
static int s_refused(lf_req_t *req, lf__rstate_t *st) {
    if (st->reply.code == LF_EINVAL || st->reply.code == LF_ENOTFOUND)
        return s_oerr(req, 400, "invalid_value", NULL, "the broker refused the job: %s",
                      st->reply.message[0] ? st->reply.message : lf_strerror(st->reply.code));
    return s_oerr_code(req, st->reply.code, "submit");
}

static int s_timeout(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    return s_oerr(req, 504, "timeout", NULL, "job %s did not finish within %lld s (GET /v1/jobs/%s follows it)",
                  st->job_id, (long long)(gw->sync_timeout_ms / 1000), st->job_id);
}

/* Errors in OpenAI's shape; the jobs are not A1111's, so progress and
 * interrupt do not see them. */
static const lf__wait_ops_t s_wait_ops = {
    .answer = s_oerr,
    .refused = s_refused,
    .finish = s_finish,
    .timeout = s_timeout,
};

/* ---- the requests ---- */

/* The mapping context: default model and model list (cached by lf__models). */
static void s_ctx(lf_gateway_t *gw, lf_store_t *stt, lf_openai_ctx_t *ctx, char *def, size_t deflen, json_t **models) {
    lf_validate_ctx_t vctx;
    lf__validate_ctx(gw, stt, &vctx, def, deflen);
    lf__models(gw, stt, NULL, 0, models);
    memset(ctx, 0, sizeof *ctx);
    ctx->default_model = def;
    ctx->models = *models;
    ctx->random_seed = vctx.random_seed;
}

/* Stage 0 of a generation: parse and map into st->jr. Returns 0, or -1
 * having answered. */
static int s_generation(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    size_t len;
    const uint8_t *b = lf_req_body(req, &len);
    json_error_t je;
    st->body = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES, &je);
    if (!st->body) {
        s_oerr(req, 400, "invalid_json", NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text,
               je.line, je.column);
        return -1;
    }
    lf_store_t *stt = lf__store_get(gw);
    lf_openai_ctx_t ctx;
    char def[128];
    json_t *models = NULL;
    s_ctx(gw, stt, &ctx, def, sizeof def, &models);
    lf__store_put(gw, stt, 0);
    lf_openai_format_t fmt;
    lf_verr_t e;
    int rc = lf_openai_map_job(st->body, &ctx, &st->jr, &fmt, &e);
    json_decref(models);
    if (rc) {
        s_overr(req, &e);
        return -1;
    }
    return 0;
}

/* The checks POST /v1/uploads makes, from the image's header, answered in
 * OpenAI's shape. Returns 0, or -1 having answered. */
static int s_image_check(lf_gateway_t *gw, lf_req_t *req, const lf_multipart_part_t *image, const char *field,
                         lf_image_info_t *ii) {
    if ((int64_t)image->len > gw->upload_max_bytes) {
        s_oerr(req, 413, "too_large", field, "the %s is %zu bytes; the limit is %lld", field, image->len,
               (long long)gw->upload_max_bytes);
        return -1;
    }
    lf_image_t im = {0};
    lf_image_limits_t lim = {.max_bytes = (size_t)gw->upload_max_bytes, .max_pixels = (uint64_t)gw->upload_max_pixels};
    if (lf_image_probe(image->data, image->len, ii) != 0) {
        s_oerr(req, 400, "invalid_value", field, "%s is not a PNG, JPEG or WebP file", field);
        return -1;
    }
    if ((int64_t)ii->width * ii->height > gw->upload_max_pixels) {
        s_oerr(req, 413, "too_large", field, "the %s is %ux%u; the limit is %lld pixels", field, ii->width, ii->height,
               (long long)gw->upload_max_pixels);
        return -1;
    }
    /* A mask is decoded here (an image is when it is stored): a corrupt one is
     * a 400 on mask in OpenAI's shape. */
    if (!strcmp(field, "mask")) {
        int rc = lf_image_decode(image->data, image->len, &lim, &im, NULL, 0);
        lf_image_clear(&im);
        if (rc) {
            s_oerr(req, 400, "invalid_value", field, "the mask does not decode");
            return -1;
        }
    }
    return 0;
}

/* Stage 0 of an edit: parse the form, map it into st->jr, store the image
 * as an upload. Returns 0, or -1 having answered. */
static int s_edit(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    size_t len;
    const uint8_t *b = lf_req_body(req, &len);
    const char *ct = lf_req_header(req, "Content-Type");
    if (!lf_multipart_is_form(ct)) {
        s_oerr(req, 415, "unsupported_media_type", NULL, "send the edit as multipart/form-data");
        return -1;
    }
    lf_multipart_part_t *parts = calloc(S_FORM_PARTS_MAX, sizeof *parts);
    if (!parts) {
        s_oerr(req, 500, "internal", NULL, "out of memory");
        return -1;
    }
    size_t n = 0;
    const lf_multipart_part_t *image = NULL, *mask = NULL;
    lf_image_info_t ii;
    lf_verr_t e;
    lf_store_t *stt = NULL;
    json_t *models = NULL;
    int ans = -1, rc = lf_multipart_parse(ct, b, len, parts, S_FORM_PARTS_MAX, &n);
    if (rc) {
        if (rc == LF_ELIMIT) s_oerr(req, 400, "invalid_value", NULL, "more than %d form fields", S_FORM_PARTS_MAX);
        else s_oerr(req, 400, "invalid_value", NULL, "the multipart/form-data body is malformed");
        goto out;
    }
    if (lf_openai_map_form(parts, n, &st->body, &image, &mask, &e)) {
        s_overr(req, &e);
        goto out;
    }
    if (!image) {
        s_oerr(req, 400, "missing_field", "image", "image (a PNG, JPEG or WebP file) is required");
        goto out;
    }
    if (s_image_check(gw, req, image, "image", &ii)) goto out;
    lf_image_info_t mi;
    if (mask && s_image_check(gw, req, mask, "mask", &mi)) goto out;
    stt = lf__store_get(gw);
    if (!stt) {
        s_oerr_code(req, LF_ECONN, "redis");
        goto out;
    }
    lf_openai_ctx_t ctx;
    char def[128];
    s_ctx(gw, stt, &ctx, def, sizeof def, &models);
    ctx.init_image = "pending-upload"; /* replaced by the stored upload's id below */
    ctx.image_width = ii.width;
    ctx.image_height = ii.height;
    lf_openai_format_t fmt;
    if (lf_openai_map_job(st->body, &ctx, &st->jr, &fmt, &e)) {
        s_overr(req, &e);
        goto out;
    }
    if (s_admit(gw, req, &st->jr.params)) goto out;
    char id[64];
    /* This answers itself on failure (in the native shape: a corrupt image
     * or Redis, both past the checks above). */
    if (lf__upload_store(gw, req, stt, image->data, image->len, "image", id, NULL)) goto out;
    char *copy = strdup(id);
    if (!copy) {
        s_oerr(req, 500, "internal", NULL, "out of memory");
        goto out;
    }
    free(st->jr.params.init_image);
    st->jr.params.init_image = copy;
    /* OpenAI's mask: its fully transparent part is edited. That is A1111's
     * reading of an RGBA mask (its alpha) inverted, over the whole picture. */
    if (mask) {
        if (lf__upload_store(gw, req, stt, mask->data, mask->len, "mask", id, NULL)) goto out;
        const lf_param_def_t *t = lf_params_table();
        if (lf_param_set_str(&st->jr.params, &t[LF_P_mask], id)) {
            s_oerr(req, 500, "internal", NULL, "out of memory");
            goto out;
        }
        st->jr.params.inpainting_mask_invert = 1;
        st->jr.params.inpaint_full_res = false;
        st->jr.params.inpainting_fill = 1;
    }
    ans = 0;
out:
    json_decref(models);
    lf__store_put(gw, stt, 0);
    free(parts);
    return ans;
}

/* Stage 0 parses, maps and submits; lf_wait does the rest. */
static int s_generate(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, bool edit) {
    if (st->stage == 0) {
        if (edit) {
            if (s_edit(gw, req, st)) return LF_HTTP_DONE;
        } else {
            if (s_generation(gw, req, st)) return LF_HTTP_DONE;
            if (s_admit(gw, req, &st->jr.params)) return LF_HTTP_DONE;
        }
        st->img2img = edit;
        st->stage = 1;
        return lf__submit(gw, req, st, NULL);
    }
    return lf__wait_job(gw, req, st, &s_wait_ops);
}

/* GET /v1/models/{id}: one entry of GET /v1/models' "data"
 * (client.models.retrieve). */
static int s_model(lf_gateway_t *gw, lf_req_t *req, const char *id) {
    lf_store_t *stt = lf__store_get(gw);
    json_t *models = NULL;
    lf__models(gw, stt, NULL, 0, &models);
    lf__store_put(gw, stt, 0);
    json_t *data = lf_openai_map_models(models), *found = NULL, *m;
    json_decref(models);
    size_t i;
    json_array_foreach(data, i, m) {
        if (!strcmp(json_string_value(json_object_get(m, "id")), id)) found = json_incref(m);
    }
    json_decref(data);
    if (!found) return s_oerr(req, 404, "model_not_found", "model", "no live worker serves model '%s'", id);
    return lf__json(req, 200, found);
}

int lf__openai_handle(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    switch (st->m.route->id) {
    case LF_ROUTE_O_GENERATE: return s_generate(gw, req, st, false);
    case LF_ROUTE_O_EDIT: return s_generate(gw, req, st, true);
    case LF_ROUTE_O_MODEL: return s_model(gw, req, st->m.params[0]);
    default: return s_oerr(req, 404, "not_found", NULL, "no such endpoint");
    }
}
