/* lf_a1111: the AUTOMATIC1111-compatible subset (/sdapi/v1/...), so existing
 * A1111 clients work unchanged. txt2img/img2img block until the job ends,
 * without holding a thread: submit (suspended until ACCEPTED), then lf_wait
 * waits for the job's end; this file shapes the answer (images, parameters,
 * info) and reads the jobs in flight lf_wait keeps for progress/interrupt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lf_adetailer.h"
#include "lf_b64.h"
#include "lf_error.h"
#include "lf_infotext.h"
#include "lf_gateway_impl.h"
#include "lf_id.h"
#include "lf_image.h"
#include "lf_log.h"

/* ---- txt2img / img2img ---- */

static json_t *s_info(const lf_job_view_t *v, const lf_job_request_t *jr) {
    const lf_job_params_t *p = &v->params;
    json_t *seeds = json_array(), *prompts = json_array(), *negs = json_array(), *subs = json_array(), *infot = json_array();
    /* One infotext: the worker's (the text of each PNG's parameters chunk);
     * written from the table only when a worker sent none. */
    json_t *winfo = v->info_json ? json_loads(v->info_json, 0, NULL) : NULL;
    json_t *wtexts = json_object_get(winfo, "infotexts");
    for (uint32_t i = 0; i < v->n_images; i++) {
        int64_t seed = v->seeds ? v->seeds[i] : p->seed + i;
        json_array_append_new(seeds, json_integer(seed));
        json_array_append_new(subs, json_integer(-1));
        json_array_append_new(prompts, json_string(p->prompt ? p->prompt : ""));
        json_array_append_new(negs, json_string(p->negative_prompt ? p->negative_prompt : ""));
        json_t *wt = json_array_get(wtexts, i);
        char *line = NULL;
        if (json_is_string(wt)) json_array_append(infot, wt);
        else if (lf_params_infotext(p, NULL, (int)i, &line) == 0) json_array_append_new(infot, json_string(line));
        free(line);
    }
    json_decref(winfo);
    (void)jr;
    json_t *j = json_pack("{s:s,s:o,s:s,s:o,s:I,s:o,s:I,s:o,s:f,s:i,s:i,s:s,s:f,s:i,s:i,s:s,s:s,s:i,s:o,s:s,s:i,s:b}",
                          "prompt", p->prompt ? p->prompt : "", "all_prompts", prompts, "negative_prompt",
                          p->negative_prompt ? p->negative_prompt : "", "all_negative_prompts", negs, "seed",
                          (json_int_t)(v->seeds && v->n_images ? v->seeds[0] : p->seed), "all_seeds", seeds, "subseed",
                          (json_int_t)-1, "all_subseeds", subs, "subseed_strength", 0.0, "width", (json_int_t)p->width,
                          "height", (json_int_t)p->height, "sampler_name", p->sampler ? p->sampler : "", "cfg_scale",
                          p->cfg_scale, "steps", (json_int_t)p->steps, "batch_size", (json_int_t)p->batch_size,
                          "sd_model_name", p->model ? p->model : "", "job_id", v->id ? v->id : "", "clip_skip",
                          (json_int_t)p->clip_skip, "infotexts", infot, "scheduler", p->scheduler ? p->scheduler : "",
                          "n_iter", (json_int_t)1, "is_using_inpainting_conditioning", 0);
    const bool img2img = !strcmp(p->mode ? p->mode : "", "img2img");
    if (j && (img2img || p->enable_hr)) json_object_set_new(j, "denoising_strength", json_real(p->denoise));
    if (j && p->enable_hr && !img2img) { /* A1111's txt2img keeps its Hires-Fix fields in info */
        json_object_set_new(j, "enable_hr", json_true());
        json_object_set_new(j, "hr_scale", json_real(p->hr_scale));
        json_object_set_new(j, "hr_upscaler", json_string(p->hr_upscaler ? p->hr_upscaler : "Latent"));
        json_object_set_new(j, "hr_second_pass_steps", json_integer(p->hr_second_pass_steps));
        json_object_set_new(j, "hr_resize_x", json_integer(p->hr_resize_x));
        json_object_set_new(j, "hr_resize_y", json_integer(p->hr_resize_y));
    }
    if (j && v->status == LF_JOB_CANCELLED) json_object_set_new(j, "interrupted", json_true());
    if (j && v->info_json) {
        json_t *x = json_loads(v->info_json, 0, NULL);
        if (x) json_object_set_new(j, "extra_generation_params", x);
    }
    return j;
}

static int s_finish(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, lf_store_t *stt, lf_job_view_t *v) {
    (void)gw;
    if (v->status == LF_JOB_FAILED)
        return lf__json(req, 500, json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s}}", "error", "GenerationFailed", "detail",
                                            v->message ? v->message : "", "errors", v->message ? v->message : "",
                                            "error_detail", "code", lf_err_code_name(v->code), "message",
                                            v->message ? v->message : "", "field", ""));
    json_t *images = json_array();
    if (st->jr.send_images && v->status == LF_JOB_DONE) {
        for (uint32_t i = 0; i < v->n_images; i++) {
            char *b64;
            if (lf__wait_image_b64(req, stt, st->job_id, i, lf__err, &b64)) {
                json_decref(images);
                return LF_HTTP_DONE;
            }
            json_array_append_new(images, json_string(b64));
            free(b64);
        }
    }
    json_t *params = json_deep_copy(st->body);
    if (json_object_get(params, "init_images")) json_object_set_new(params, "init_images", json_null());
    json_t *info = s_info(v, &st->jr);
    char *info_txt = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    json_t *out = json_pack("{s:o,s:o,s:s}", "images", images, "parameters", params ? params : json_object(), "info",
                            info_txt ? info_txt : "{}");
    free(info_txt);
    return lf__json(req, 200, out);
}

static int s_timeout(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    return lf__err(req, 504, "timeout", "", "job %s did not finish within %lld s", st->job_id,
                   (long long)(gw->sync_timeout_ms / 1000));
}

/* Errors in lf__err's shape; the job is listed as in flight while it runs. */
static const lf__wait_ops_t s_wait_ops = {
    .answer = lf__err,
    .finish = s_finish,
    .timeout = s_timeout,
    .track = true,
};

/* The A1111 model name a checkpoint title stands for ("x.safetensors [hash]"
 * -> "x"), as lf_validate_a1111 reads it. Caller owns; NULL when malformed. */
static char *s_checkpoint_model(const char *title) {
    json_t *probe = json_pack("{s:{s:s}}", "override_settings", "sd_model_checkpoint", title);
    lf_job_request_t jr;
    lf_verr_t e;
    char *out = NULL;
    if (probe && lf_validate_a1111(probe, false, NULL, &jr, &e) == 0) {
        out = jr.params.model ? strdup(jr.params.model) : NULL;
        lf_job_request_clear(&jr);
    }
    json_decref(probe);
    return out;
}

/* The stored sd_model_checkpoint option, when a live worker serves it.
 * A stored model that is gone (its worker left, or an option saved before
 * they were checked) falls back to the farm default, with a log line: the
 * client never sent that name, so an error naming it would help no one.
 * Caller owns; NULL = no usable option. */
static char *s_option_model(lf_gateway_t *gw, lf_store_t *stt) {
    char *opt = NULL, *val = NULL;
    if (lf_store_option_get(stt, "sd_model_checkpoint", &opt) == 0 && opt) {
        json_t *o = json_loads(opt, JSON_DECODE_ANY, NULL);
        if (json_is_string(o) && json_string_length(o)) val = strdup(json_string_value(o));
        json_decref(o);
    }
    free(opt);
    if (!val) return NULL;
    char *model = s_checkpoint_model(val);
    bool served = model && lf__model_served(gw, model);
    if (!served) {
        char def[128] = "";
        lf__models(gw, NULL, def, sizeof def, NULL);
        if (def[0]) /* with no model known at all, lf__admit answers 503 anyway */
            lf_warn("a1111: the stored option sd_model_checkpoint '%.128s' names a model no live worker "
                    "serves; using the default model '%s'",
                    val, def);
        free(val);
        val = NULL;
    }
    free(model);
    return val;
}

/* A1111's sd_vae value reduced to our VAE name: NULL for "Automatic" /
 * "None" (the checkpoint's), else the name without ".safetensors" (caller
 * owns; NULL also when out of memory). */
static char *s_vae_name(const char *v) {
    json_t *probe = json_pack("{s:{s:s}}", "override_settings", "sd_vae", v);
    lf_job_request_t jr;
    lf_verr_t e;
    char *out = NULL;
    if (probe && lf_validate_a1111(probe, false, NULL, &jr, &e) == 0) {
        out = jr.params.vae ? strdup(jr.params.vae) : NULL;
        lf_job_request_clear(&jr);
    }
    json_decref(probe);
    return out;
}

/* Does a live worker have VAE `name`? st may be NULL (the cached list). */
static bool s_vae_known(lf_gateway_t *gw, lf_store_t *st, const char *name) {
    json_t *vaes = lf__vaes(gw, st), *v;
    size_t i;
    bool yes = false;
    json_array_foreach(vaes, i, v) yes |= !strcmp(json_string_value(json_object_get(v, "name")), name);
    json_decref(vaes);
    return yes;
}

/* The stored sd_vae option (A1111's global VAE choice) as the VAE of a
 * request that names none: written into the body's override_settings, so
 * it goes through the same validation. A stored VAE no live worker has any
 * more is skipped with a log line, as the stored model is. */
static bool s_option_vae(lf_gateway_t *gw, lf_store_t *stt, json_t *body) {
    json_t *ovr = json_object_get(body, "override_settings");
    bool applied = false;
    if (!json_is_object(body) || (ovr && !json_is_object(ovr)) || (ovr && json_object_get(ovr, "sd_vae"))) return false;
    char *opt = NULL, *name = NULL;
    if (lf_store_option_get(stt, "sd_vae", &opt) == 0 && opt) {
        json_t *o = json_loads(opt, JSON_DECODE_ANY, NULL);
        if (json_is_string(o)) name = s_vae_name(json_string_value(o));
        json_decref(o);
    }
    free(opt);
    if (!name) return false;
    if (!s_vae_known(gw, NULL, name)) {
        lf_warn("a1111: the stored option sd_vae '%.128s' names a VAE no live worker has; using the checkpoint's", name);
    } else {
        if (!ovr) json_object_set_new(body, "override_settings", ovr = json_object());
        json_object_set_new(ovr, "sd_vae", json_string(name));
        applied = true;
    }
    free(name);
    return applied;
}

/* The stored sd_vae is global, the models are not: on a model of another
 * family (an SDXL VAE stored, a Flux job) the option is dropped with a log
 * line, as a gone VAE is, instead of failing the job; a VAE the request
 * names itself is checked at admission (400). */
static void s_option_vae_fit(lf_gateway_t *gw, lf_store_t *stt, lf_job_params_t *p) {
    if (!p->vae || !p->model) return;
    json_t *fit = lf__model_vaes(gw, stt, p->model), *v;
    size_t i;
    bool ok = !lf__model_served(gw, p->model); /* admission says so */
    json_array_foreach(fit, i, v) ok |= !strcmp(json_string_value(v), p->vae);
    json_decref(fit);
    if (ok) return;
    lf_warn("a1111: the stored option sd_vae '%.128s' does not fit model '%.128s'; using the checkpoint's", p->vae,
            p->model);
    free(p->vae);
    p->vae = NULL;
}

/* Stage 0 validates, stores an img2img init image and submits; lf_wait
 * does the rest. */
/* img2img's inpainting mask (base64, a data URL or not) stored as an upload
 * like the init image; params.mask gets its id. Returns 0, or -1 with the
 * answer sent (400 / 413 / 415 naming "mask"). */
static int s_store_mask(lf_gateway_t *gw, lf_req_t *req, lf_store_t *stt, lf_job_request_t *jr) {
    if (!jr->mask) return 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = lf_b64_decode(json_string_value(jr->mask), json_string_length(jr->mask), (size_t)gw->upload_max_bytes,
                           &bytes, &len);
    if (rc) {
        if (rc == LF_ETOOBIG) lf__err(req, 413, "too_large", "mask", "the mask is too large");
        else lf__err(req, 400, "invalid_value", "mask", "mask is not base64");
        return -1;
    }
    char id[64];
    rc = lf__upload_store(gw, req, stt, bytes, len, "mask", id, NULL);
    free(bytes);
    if (rc) return -1;
    const lf_param_def_t *d = &lf_params_table()[LF_P_mask];
    if (lf_param_set_str(&jr->params, d, id)) {
        lf__err(req, 500, "internal", "mask", "out of memory");
        return -1;
    }
    return 0;
}

static int s_generate(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, bool img2img) {
    if (st->stage == 0) {
        st->body = lf__body_json(req);
        if (!st->body) return LF_HTTP_DONE;
        lf_store_t *stt = lf__store_get(gw);
        if (!stt) return lf__err_code(req, LF_ECONN, "redis");
        lf_validate_ctx_t ctx;
        char def[128];
        lf__validate_ctx(gw, stt, &ctx, def, sizeof def);
        json_t *ovr = json_is_object(st->body) ? json_object_get(st->body, "override_settings") : NULL;
        bool sent_model = json_is_object(ovr) && json_object_get(ovr, "sd_model_checkpoint");
        char *optval = sent_model ? NULL : s_option_model(gw, stt);
        ctx.option_model = optval;
        bool option_vae = s_option_vae(gw, stt, st->body);
        lf_verr_t e;
        int rc = lf_validate_a1111(st->body, img2img, &ctx, &st->jr, &e);
        free(optval);
        if (rc) {
            lf__store_put(gw, stt, 0);
            return lf__verr(req, &e);
        }
        if (option_vae) s_option_vae_fit(gw, stt, &st->jr.params);
        if (lf__admit(gw, req, &st->jr.params,
                      sent_model ? "override_settings.sd_model_checkpoint" : "sd_model_checkpoint")) {
            lf__store_put(gw, stt, 0);
            return LF_HTTP_DONE;
        }
        if (img2img) {
            json_t *first = json_array_get(st->jr.init_images, 0);
            uint8_t *bytes = NULL;
            size_t len = 0;
            rc = lf_b64_decode(json_string_value(first), json_string_length(first), (size_t)gw->upload_max_bytes, &bytes, &len);
            if (rc) {
                lf__store_put(gw, stt, 0);
                return rc == LF_ETOOBIG ? lf__err(req, 413, "too_large", "init_images", "the init image is too large")
                                        : lf__err(req, 400, "invalid_value", "init_images", "init_images[0] is not base64");
            }
            char id[64];
            rc = lf__upload_store(gw, req, stt, bytes, len, "init_images", id, NULL);
            free(bytes);
            if (rc) {
                lf__store_put(gw, stt, 0);
                return LF_HTTP_DONE;
            }
            st->jr.params.init_image = strdup(id);
            if (s_store_mask(gw, req, stt, &st->jr)) {
                lf__store_put(gw, stt, 0);
                return LF_HTTP_DONE;
            }
        }
        lf__store_put(gw, stt, 0);
        st->img2img = img2img;
        st->stage = 1;
        return lf__submit(gw, req, st, NULL);
    }
    return lf__wait_job(gw, req, st, &s_wait_ops);
}

/* ---- extras: one image through an upscaler (a job of mode "upscale") ---- */

static int s_extras_finish(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st, lf_store_t *stt, lf_job_view_t *v) {
    (void)gw;
    if (v->status != LF_JOB_DONE || v->n_images < 1)
        return lf__err(req, 500, "internal", "", "upscale job %s ended %s: %s", st->job_id,
                       lf_job_status_name(v->status), v->message ? v->message : "");
    char *b64 = NULL;
    if (lf__wait_image_b64(req, stt, st->job_id, 0, lf__err, &b64)) return LF_HTTP_DONE;
    json_t *winfo = v->info_json ? json_loads(v->info_json, 0, NULL) : NULL;
    const char *it = json_string_value(json_array_get(json_object_get(winfo, "infotexts"), 0));
    json_t *html = json_sprintf("<p>%s</p>", it ? it : "");
    json_decref(winfo);
    json_t *out = json_pack("{s:o,s:s}", "html_info", html ? html : json_string(""), "image", b64);
    free(b64);
    return lf__json(req, 200, out);
}

static const lf__wait_ops_t s_extras_wait_ops = {
    .answer = lf__err,
    .finish = s_extras_finish,
    .timeout = s_timeout,
    .track = true,
};

/* A1111's extras fields onto the native upscale job's, and back for errors. */
static const char *const s_extras_fields[][2] = {{"upscaler_1", "upscaler"},
                                                 {"upscaling_resize", "upscale_by"},
                                                 {"upscaling_resize_w", "upscale_width"},
                                                 {"upscaling_resize_h", "upscale_height"}};

static int s_extras(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    if (st->stage != 0) return lf__wait_job(gw, req, st, &s_extras_wait_ops);
    st->body = lf__body_json(req);
    if (!st->body) return LF_HTTP_DONE;
    json_t *b = st->body, *v;
    if (!json_is_object(b)) return lf__err(req, 400, "invalid_type", "", "the body must be a JSON object");
    const char *img = json_string_value(json_object_get(b, "image"));
    if (!img || !*img) return lf__err(req, 400, "missing_field", "image", "image (base64) is required");
    const char *comma = strncmp(img, "data:", 5) ? NULL : strchr(img, ',');
    if (comma) img = comma + 1;
    const char *u2 = json_string_value(json_object_get(b, "upscaler_2"));
    double vis = json_number_value(json_object_get(b, "extras_upscaler_2_visibility"));
    if (u2 && strcasecmp(u2, "none") && vis > 0)
        return lf__err(req, 501, "not_implemented", "upscaler_2",
                       "a second upscaler blended in (upscaler_2 with extras_upscaler_2_visibility) is not available");
    static const char *const faces[] = {"gfpgan_visibility", "codeformer_visibility"};
    for (size_t i = 0; i < 2; i++)
        if (json_number_value(json_object_get(b, faces[i])) > 0)
            return lf__err(req, 501, "not_implemented", faces[i], "face restoration is not available");
    /* The native job: mode upscale, A1111's defaults (upscaler_1 "None", x2). */
    json_t *nb = json_pack("{s:s,s:s,s:f}", "mode", "upscale", "upscaler", "None", "upscale_by", 2.0);
    const bool to = json_integer_value(json_object_get(b, "resize_mode")) == 1;
    for (size_t i = 0; i < sizeof s_extras_fields / sizeof s_extras_fields[0]; i++) {
        if (!(v = json_object_get(b, s_extras_fields[i][0])) || json_is_null(v)) continue;
        if (!to && i >= 2) continue; /* scale-to sizes count only in resize_mode 1 */
        json_object_set(nb, s_extras_fields[i][1], v);
    }
    if (to && !(json_object_get(nb, "upscale_width") && json_object_get(nb, "upscale_height"))) {
        json_object_set_new(nb, "upscale_width", json_integer(512)); /* A1111's defaults */
        json_object_set_new(nb, "upscale_height", json_integer(512));
    }
    json_object_set_new(nb, "init_image", json_string("pending")); /* the upload's id, below */
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) {
        json_decref(nb);
        return lf__err_code(req, LF_ECONN, "redis");
    }
    lf_validate_ctx_t ctx;
    char def[128];
    lf__validate_ctx(gw, stt, &ctx, def, sizeof def);
    lf_verr_t e;
    int rc = lf_validate_job(nb, &ctx, &st->jr, &e);
    json_decref(nb);
    if (rc) {
        lf__store_put(gw, stt, 0);
        for (size_t i = 0; i < sizeof s_extras_fields / sizeof s_extras_fields[0]; i++)
            if (!strcmp(e.field, s_extras_fields[i][1])) snprintf(e.field, sizeof e.field, "%s", s_extras_fields[i][0]);
        return lf__verr(req, &e);
    }
    if (lf__admit(gw, req, &st->jr.params, "sd_model_checkpoint")) {
        lf__store_put(gw, stt, 0);
        return LF_HTTP_DONE;
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    rc = lf_b64_decode(img, strlen(img), (size_t)gw->upload_max_bytes, &bytes, &len);
    if (rc) {
        lf__store_put(gw, stt, 0);
        return rc == LF_ETOOBIG ? lf__err(req, 413, "too_large", "image", "the image is too large")
                                : lf__err(req, 400, "invalid_value", "image", "image is not base64");
    }
    char id[64];
    rc = lf__upload_store(gw, req, stt, bytes, len, "image", id, NULL);
    free(bytes);
    lf__store_put(gw, stt, 0);
    if (rc) return LF_HTTP_DONE;
    free(st->jr.params.init_image);
    if (!(st->jr.params.init_image = strdup(id))) return lf__err_code(req, LF_ENOMEM, "");
    st->stage = 1;
    return lf__submit(gw, req, st, NULL);
}

/* ---- progress, interrupt ---- */

static int s_progress(lf_gateway_t *gw, lf_req_t *req) {
    char first[1][64] = {""}; /* the job progress reports: the oldest in flight */
    int n = lf__wait_active(gw, first, 1);
    const char *id = first[0];
    double progress = 0, eta = 0;
    uint32_t step = 0, steps = 0;
    json_t *current = json_null(), *text = json_null();
    if (id[0]) {
        lf_store_t *stt = lf__store_get(gw);
        lf_job_view_t v = {0};
        if (stt && lf_store_job_get(stt, id, &v) == 0) {
            step = v.step;
            steps = v.steps ? v.steps : v.params.steps;
            progress = steps ? (double)step / steps : 0;
            if (v.status == LF_JOB_ENHANCING) { /* A1111's textinfo: what the job is doing */
                json_decref(text);
                text = json_string("Enhancing prompt");
            }
            if (v.status == LF_JOB_RUNNING && step && v.started_ms) {
                double elapsed = (double)(lf__now_ms_wall() - v.started_ms) / 1000.0;
                eta = elapsed / step * (steps - step);
            }
            const char *skip = lf_req_query(req, "skip_current_image");
            if (!(skip && (!strcmp(skip, "true") || !strcmp(skip, "1")))) {
                uint8_t *pv = NULL;
                size_t len = 0;
                if (lf_store_preview_get(stt, id, &pv, &len) == 0) {
                    char *b64 = lf_b64_encode(pv, len);
                    if (b64) {
                        current = json_string(b64);
                        free(b64);
                    }
                    free(pv);
                }
            }
        }
        lf_job_view_clear(&v);
        lf__store_put(gw, stt, 0);
    }
    json_t *state = json_pack("{s:b,s:b,s:s,s:i,s:s,s:i,s:i,s:i}", "skipped", 0, "interrupted", 0, "job",
                              id[0] ? id : "", "job_count", (json_int_t)n, "job_timestamp", "0", "job_no",
                              (json_int_t)0, "sampling_step", (json_int_t)step, "sampling_steps", (json_int_t)steps);
    return lf__json(req, 200, json_pack("{s:f,s:f,s:o,s:o,s:o}", "progress", progress, "eta_relative", eta, "state",
                                        state, "current_image", current, "textinfo", text));
}

static int s_interrupt(lf_gateway_t *gw, lf_req_t *req) {
    char ids[LF__A1111_MAX][64];
    int n = lf__wait_active(gw, ids, LF__A1111_MAX);
    for (int i = 0; i < n; i++) lf__cancel(gw, NULL, NULL, ids[i]);
    return lf__json(req, 200, json_object());
}

/* ---- lists and options ---- */

static int s_sd_models(lf_gateway_t *gw, lf_req_t *req) {
    lf_store_t *stt = lf__store_get(gw);
    json_t *models = NULL;
    lf__models(gw, stt, NULL, 0, &models);
    lf__store_put(gw, stt, 0);
    /* Exactly what live workers serve: a listed checkpoint can be chosen. */
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        /* "family" (sd15, sdxl, flux) is ours, after A1111's fields. */
        const char *kind = json_string_value(json_object_get(m, "kind"));
        json_array_append_new(out, json_pack("{s:s,s:s,s:n,s:n,s:s,s:n,s:s}", "title", name, "model_name", name, "hash",
                                             "sha256", "filename", name, "config", "family", kind ? kind : "sd15"));
    }
    json_decref(models);
    return lf__json(req, 200, out);
}

/* A1111's VAE list: the separate VAEs live workers have, named as jobs
 * name them (sd_vae takes the name, or "name.safetensors"), with the
 * family and latent channels the workers say (extra keys A1111 clients
 * ignore). ?model= (a name or checkpoint title) keeps the VAEs that fit that
 * model (GET /v1/models' per-model vaes): Forge shows per-model module lists
 * the same way. */
static int s_sd_vaes(lf_gateway_t *gw, lf_req_t *req) {
    lf_store_t *stt = lf__store_get(gw);
    json_t *vaes = lf__vaes(gw, stt), *fit = NULL;
    const char *q = lf_req_query(req, "model");
    if (q && *q) {
        char *model = s_checkpoint_model(q);
        fit = lf__model_vaes(gw, stt, model ? model : q);
        free(model);
    }
    lf__store_put(gw, stt, 0);
    json_t *out = json_array();
    size_t i, k;
    json_t *v, *f;
    json_array_foreach(vaes, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        bool keep = !fit;
        json_array_foreach(fit, k, f) keep |= !strcmp(json_string_value(f), name);
        if (!keep) continue;
        json_t *e = json_pack("{s:s,s:s}", "model_name", name, "filename", name);
        if (json_object_get(v, "family")) json_object_set(e, "family", json_object_get(v, "family"));
        if (json_object_get(v, "latent_channels"))
            json_object_set(e, "latent_channels", json_object_get(v, "latent_channels"));
        json_array_append_new(out, e);
    }
    json_decref(fit);
    json_decref(vaes);
    return lf__json(req, 200, out);
}

/* A1111's /sdapi/v1/upscalers: its UpscalerNone / Lanczos / Nearest (scale
 * 4, no model), then the models live workers have (the ESRGAN scaler's
 * entries: named by the file's stem). The Latent modes are listed apart
 * (latent-upscale-modes), as A1111 does. */
static int s_upscalers(lf_gateway_t *gw, lf_req_t *req) {
    lf_store_t *stt = lf__store_get(gw);
    json_t *models = lf__upscalers(gw, stt);
    lf__store_put(gw, stt, 0);
    json_t *out = json_array();
    for (int i = LF_PARAM_HR_LATENT_UPSCALERS; lf_param_hr_builtin_upscalers[i]; i++)
        json_array_append_new(out, json_pack("{s:s,s:n,s:n,s:n,s:i}", "name", lf_param_hr_builtin_upscalers[i],
                                             "model_name", "model_path", "model_url", "scale", 4));
    size_t i;
    json_t *v;
    json_array_foreach(models, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        json_array_append_new(out, json_pack("{s:s,s:s,s:n,s:n,s:n}", "name", name, "model_name", name,
                                             "model_path", "model_url", "scale"));
    }
    json_decref(models);
    return lf__json(req, 200, out);
}

static int s_samplers(lf_req_t *req) {
    size_t n;
    const lf_sampler_name_t *t = lf_validate_samplers(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *aliases = json_pack("[s]", t[i].name);
        if (t[i].alias) json_array_append_new(aliases, json_string(t[i].alias));
        json_array_append_new(arr, json_pack("{s:s,s:o,s:{}}", "name", t[i].a1111, "aliases", aliases, "options"));
    }
    return lf__json(req, 200, arr);
}

static int s_schedulers(lf_req_t *req) {
    size_t n;
    const lf_param_enum_t *t = lf_validate_schedulers(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:n,s:i,s:b}", "name", t[i].name, "label", t[i].a1111, "aliases",
                                             "default_rho", (json_int_t)-1, "need_inner_model", 0));
    return lf__json(req, 200, arr);
}

/* Options are stored as JSON text per key; "__keys" lists the keys set. */
static int s_options_get(lf_gateway_t *gw, lf_req_t *req) {
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) return lf__err_code(req, LF_ECONN, "redis");
    char def[128];
    lf__models(gw, stt, def, sizeof def, NULL);
    json_t *out = json_pack("{s:s,s:s,s:i,s:s,s:b,s:i,s:i}", "sd_model_checkpoint", def, "sd_vae", "Automatic",
                            "CLIP_stop_at_last_layers", (json_int_t)1, "samples_format", "png", "save_images_add_number",
                            1, "eta_noise_seed_delta", (json_int_t)0, "jpeg_quality", (json_int_t)80);
    char *keys_txt = NULL;
    int rc = lf_store_option_get(stt, "__keys", &keys_txt);
    if (rc == 0 && keys_txt) {
        json_t *keys = json_loads(keys_txt, 0, NULL);
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) {
            char *val = NULL;
            if (json_is_string(k) && lf_store_option_get(stt, json_string_value(k), &val) == 0 && val) {
                json_t *v = json_loads(val, JSON_DECODE_ANY, NULL);
                if (v) json_object_set_new(out, json_string_value(k), v);
            }
            free(val);
        }
        json_decref(keys);
    }
    free(keys_txt);
    lf__store_put(gw, stt, 0);
    return lf__json(req, 200, out);
}

static int s_options_set(lf_gateway_t *gw, lf_req_t *req) {
    json_t *body = lf__body_json(req);
    if (!body) return LF_HTTP_DONE;
    if (!json_is_object(body)) {
        json_decref(body);
        return lf__err(req, 400, "invalid_type", "", "the body must be a JSON object");
    }
    json_t *m = json_object_get(body, "sd_model_checkpoint");
    if (m && !json_is_string(m)) {
        json_decref(body);
        return lf__err(req, 400, "invalid_type", "sd_model_checkpoint", "sd_model_checkpoint must be a string");
    }
    if (m) { /* as A1111: only a checkpoint that exists */
        lf_store_t *chk = lf__store_get(gw);
        json_t *known = NULL;
        lf__models(gw, chk, NULL, 0, &known);
        lf__store_put(gw, chk, 0);
        bool none = !json_array_size(known);
        json_decref(known);
        char *model = s_checkpoint_model(json_string_value(m));
        bool served = model && lf__model_served(gw, model);
        free(model);
        if (none) {
            json_decref(body);
            lf_req_add_header(req, "Retry-After", "2");
            return lf__err(req, 503, "unavailable", "sd_model_checkpoint",
                           "no worker has registered a model yet, so no checkpoint can be chosen; retry later");
        }
        if (!served) {
            lf__err(req, 400, "unknown_model", "sd_model_checkpoint",
                    "no live worker serves model '%.128s' (GET /sdapi/v1/sd-models lists them; a worker offers only the models that fit its LF_MODEL_MEMORY_MB)", json_string_value(m));
            json_decref(body);
            return LF_HTTP_DONE;
        }
    }
    json_t *vae = json_object_get(body, "sd_vae");
    if (vae) { /* as A1111: Automatic, None, or a VAE that exists */
        char *name = json_is_string(vae) ? s_vae_name(json_string_value(vae)) : NULL;
        lf_store_t *chk = name ? lf__store_get(gw) : NULL;
        bool ok = json_is_string(vae) && (!name ? lf_validate_vae_is_default(json_string_value(vae)) : s_vae_known(gw, chk, name));
        if (chk) lf__store_put(gw, chk, 0);
        free(name);
        if (!ok) {
            lf__err(req, 400, json_is_string(vae) ? "unknown_vae" : "invalid_type", "sd_vae",
                    "sd_vae must be Automatic, None or a VAE a live worker has (GET /sdapi/v1/sd-vae lists them)");
            json_decref(body);
            return LF_HTTP_DONE;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strlen(key) > 128 || !strcmp(key, "__keys")) {
            json_decref(body);
            return lf__err(req, 400, "invalid_value", key, "option names are at most 128 characters");
        }
    }
    lf_store_t *stt = lf__store_get(gw);
    if (!stt) {
        json_decref(body);
        return lf__err_code(req, LF_ECONN, "redis");
    }
    char *keys_txt = NULL;
    json_t *keys = NULL;
    if (lf_store_option_get(stt, "__keys", &keys_txt) == 0 && keys_txt) keys = json_loads(keys_txt, 0, NULL);
    free(keys_txt);
    if (!json_is_array(keys)) {
        json_decref(keys);
        keys = json_array();
    }
    int rc = 0;
    json_object_foreach(body, key, v) {
        char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        rc = txt ? lf_store_option_set(stt, key, txt) : LF_ENOMEM;
        free(txt);
        if (rc) break;
        bool known = false;
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) if (!strcmp(json_string_value(k), key)) known = true;
        if (!known) json_array_append_new(keys, json_string(key));
    }
    if (!rc) {
        char *txt = json_dumps(keys, JSON_COMPACT);
        rc = txt ? lf_store_option_set(stt, "__keys", txt) : LF_ENOMEM;
        free(txt);
    }
    json_decref(keys);
    json_decref(body);
    lf__store_put(gw, stt, rc);
    if (rc) return lf__err_code(req, rc, "options");
    return lf__json(req, 200, json_null());
}

/* ---- the rest of the surface clients call ---- */

/* A1111's shape: ram from the process (used = our resident set) and the
 * machine (total); no CUDA in the gateway, said the way A1111 says it. */
static int s_memory(lf_req_t *req) {
    double total = 0, rss = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) total = (double)kb * 1024.0;
        fclose(f);
    }
    f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long long size, res;
        if (fscanf(f, "%llu %llu", &size, &res) == 2) rss = (double)res * (double)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    if (total <= 0 || rss <= 0) return lf__err(req, 500, "internal", "", "cannot read /proc");
    return lf__json(req, 200, json_pack("{s:{s:f,s:f,s:f},s:{s:s}}", "ram", "free", total - rss, "used", rss,
                                        "total", total, "cuda", "error",
                                        "the gateway uses no GPU; GET /v1/workers shows the workers' devices"));
}

static int s_cmd_flags(lf_gateway_t *gw, lf_req_t *req) {
    return lf__json(req, 200, json_pack("{s:b,s:b,s:b,s:s,s:i,s:b,s:s?}", "api", 1, "nowebui", 0, "listen",
                                        strcmp(gw->host, "127.0.0.1") != 0, "server_name", gw->host, "port",
                                        (json_int_t)gw->port, "api_auth", gw->n_keys > 0, "cors_allow_origins",
                                        gw->cors[0] ? gw->cors : NULL));
}

/* png-info: the text chunks of a PNG and its parameters text parsed as
 * A1111 does (labels as keys, "Size" as Size-1 / Size-2, values as text),
 * plus "lightfarm": the same text read into our parameters through the
 * table's labels. The image is base64, optionally a data: URI. */
static int s_png_info(lf_gateway_t *gw, lf_req_t *req) {
    json_t *body = lf__body_json(req);
    if (!body) return LF_HTTP_DONE;
    json_t *img = json_object_get(body, "image");
    if (!json_is_string(img)) {
        json_decref(body);
        return lf__err(req, 400, img ? "invalid_type" : "missing_field", "image", "image must be a base64 PNG (or a data: URI)");
    }
    const char *b = json_string_value(img);
    size_t bl = json_string_length(img);
    const char *comma = !strncmp(b, "data:", 5) ? memchr(b, ',', bl) : NULL;
    if (comma) bl -= (size_t)(comma + 1 - b), b = comma + 1;
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = lf_b64_decode(b, bl, (size_t)gw->upload_max_bytes, &png, &len);
    json_decref(body);
    if (rc) return rc == LF_ETOOBIG ? lf__err(req, 413, "too_large", "image", "the image is too large")
                                    : lf__err(req, 400, "invalid_value", "image", "image is not base64");
    lf_image_text_t *texts = NULL;
    size_t n = 0;
    rc = lf_image_png_texts(png, len, &texts, &n);
    free(png);
    if (rc) return lf__err(req, 400, "invalid_value", "image", "image is not a PNG we can read: %s", lf_strerror(rc));
    json_t *items = json_object();
    const char *params = "";
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(items, texts[i].key, json_string(texts[i].value));
        if (!strcmp(texts[i].key, "parameters")) params = texts[i].value;
    }
    json_t *parsed = json_object(), *ours = NULL;
    lf_infotext_t it = {0};
    if (*params && lf_infotext_parse(params, &it) == 0) {
        json_object_set_new(parsed, "Prompt", json_string(it.prompt));
        json_object_set_new(parsed, "Negative prompt", json_string(it.negative));
        for (size_t i = 0; i < it.n_params; i++) json_object_set_new(parsed, it.params[i].key, json_string(it.params[i].value));
        lf_job_params_t p = {0};
        if (lf_params_from_infotext(params, &p, NULL) == 0) ours = lf_params_json(&p, false);
        lf_params_clear(&p);
    }
    lf_infotext_clear(&it);
    json_t *out = json_pack("{s:s,s:o,s:o,s:o}", "info", params, "items", items, "parameters", parsed, "lightfarm",
                            ours ? ours : json_null());
    lf_image_texts_free(texts, n);
    return out ? lf__json(req, 200, out) : lf__err(req, 500, "internal", "", "out of memory");
}

/* refresh-loras: the workers list their LoRA folders again (a RESCAN
 * relayed by a broker, answered once their new lists are in Redis), then
 * the admission cache is dropped so that a new name is accepted at once. */
static int s_refresh_loras(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    if (st->stage == 0) {
        st->stage = 1;
        return lf__rescan(gw, req, st);
    }
    if (st->reply.code) return lf__err_code(req, st->reply.code, "rescan");
    lf_store_t *stt = lf__store_get(gw);
    pthread_mutex_lock(&gw->model_mu);
    gw->models_at_ms = INT64_MIN / 2;
    pthread_mutex_unlock(&gw->model_mu);
    lf__models(gw, stt, NULL, 0, NULL);
    lf__store_put(gw, stt, 0);
    lf_info("refresh-loras: %s", st->reply.message);
    return lf__json(req, 200, json_null());
}

int lf__a1111_handle(lf_gateway_t *gw, lf_req_t *req, lf__rstate_t *st) {
    switch (st->m.route->id) {
    case LF_ROUTE_A_TXT2IMG: return s_generate(gw, req, st, false);
    case LF_ROUTE_A_IMG2IMG: return s_generate(gw, req, st, true);
    case LF_ROUTE_A_PROGRESS: return s_progress(gw, req);
    case LF_ROUTE_A_INTERRUPT: return s_interrupt(gw, req);
    case LF_ROUTE_A_MODELS: return s_sd_models(gw, req);
    case LF_ROUTE_A_VAES: return s_sd_vaes(gw, req);
    case LF_ROUTE_A_SAMPLERS: return s_samplers(req);
    case LF_ROUTE_A_AD_MODEL: { /* the extension's {"ad_model": list(model_mapping)}: the union over live workers */
        lf_store_t *stt = lf__store_get(gw);
        json_t *models = lf__ad_models(gw, stt), *names = json_array(), *v;
        lf__store_put(gw, stt, 0);
        size_t i;
        json_array_foreach(models, i, v) json_array_append(names, json_object_get(v, "name"));
        json_decref(models);
        return names ? lf__json(req, 200, json_pack("{s:o}", "ad_model", names))
                     : lf__err(req, 500, "internal", "", "out of memory");
    }
    case LF_ROUTE_A_SCHEDULERS: return s_schedulers(req);
    case LF_ROUTE_A_OPTIONS_GET: return s_options_get(gw, req);
    case LF_ROUTE_A_OPTIONS_SET: return s_options_set(gw, req);
    /* Skipping the current image of a batch is cancelling here: a job is
     * the unit the farm runs. */
    case LF_ROUTE_A_SKIP: return s_interrupt(gw, req);
    case LF_ROUTE_A_REFRESH_CKPT: {
        /* Models are what live workers advertise: look again now. */
        lf_store_t *stt = lf__store_get(gw);
        pthread_mutex_lock(&gw->model_mu);
        gw->models_at_ms = INT64_MIN / 2;
        pthread_mutex_unlock(&gw->model_mu);
        lf__models(gw, stt, NULL, 0, NULL);
        lf__store_put(gw, stt, 0);
        return lf__json(req, 200, json_null());
    }
    case LF_ROUTE_A_REFRESH_LORAS: return s_refresh_loras(gw, req, st);
    case LF_ROUTE_A_LORAS: {
        json_t *arr = lf__loras_json(gw, true);
        return arr ? lf__json(req, 200, arr) : lf__err_code(req, LF_ECONN, "redis");
    }
    case LF_ROUTE_A_UPSCALERS: return s_upscalers(gw, req);
    case LF_ROUTE_A_EXTRA_SINGLE: return s_extras(gw, req, st);
    case LF_ROUTE_A_LATENT_MODES: {
        json_t *arr = json_array();
        for (int i = 0; i < LF_PARAM_HR_LATENT_UPSCALERS; i++)
            json_array_append_new(arr, json_pack("{s:s}", "name", lf_param_hr_builtin_upscalers[i]));
        return lf__json(req, 200, arr);
    }
    case LF_ROUTE_A_MEMORY: return s_memory(req);
    case LF_ROUTE_A_CMD_FLAGS: return s_cmd_flags(gw, req);
    case LF_ROUTE_A_EMBEDDINGS: return lf__json(req, 200, json_pack("{s:{},s:{}}", "loaded", "skipped"));
    case LF_ROUTE_A_FACE_RESTORERS:
    case LF_ROUTE_A_REALESRGAN:
    case LF_ROUTE_A_PROMPT_STYLES:
    case LF_ROUTE_A_SCRIPT_INFO:
    case LF_ROUTE_A_EXTENSIONS: return lf__json(req, 200, json_array()); /* none of these exist here */
    /* ADetailer is the one always-on script (alwayson_scripts.ADetailer); clients such
     * as webuiapi look for its lowercase title here. */
    case LF_ROUTE_A_SCRIPTS:
        return lf__json(req, 200, json_pack("{s:[s],s:[s]}", "txt2img", "adetailer", "img2img", "adetailer"));
    case LF_ROUTE_A_PNG_INFO: return s_png_info(gw, req);
    case LF_ROUTE_A_INTERROGATE:
        return lf__err(req, 501, "not_implemented", "",
                       "interrogate (image to prompt, CLIP/DeepBooru) is not available: the farm's workers "
                       "run no captioning model");
    default: return lf__err(req, 404, "not_found", "", "no such endpoint");
    }
}
