/* lf_openai_map: OpenAI images API bodies -> native job bodies, checked by
 * lf_validate_job so both APIs share one set of limits. The mapping itself
 * checks only what the native body cannot express (the "WxH" size string,
 * the response format, the OpenAI-only fields); everything numeric is left
 * to the validator and its error renamed to the parameter the client sent. */
#include "lf_openai_map.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

/* Fields copied to the native body unchanged (our extensions). */
static const char *const s_passthrough[] = {"negative_prompt", "steps", "seed", "cfg_scale",
                                            "sampler", "scheduler", "clip_skip", "rng", "vae",
                                            "refiner_checkpoint", "refiner_switch_at",
                                            /* prompt enhancement (JSON bodies: generations) */
                                            "enhance_prompt", "enhance_instruction"};
/* OpenAI fields that do not change what we generate. */
static const char *const s_ignored[] = {"quality", "style", "user", "moderation", "safety_identifier",
                                        "output_compression"};

static bool s_in(const char *key, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(key, list[i])) return true;
    return false;
}
#define S_IN(key, list) s_in(key, list, sizeof list / sizeof list[0])

const char *lf_openai_map_param(const char *f) {
    if (!f) return "";
    if (!strcmp(f, "width") || !strcmp(f, "height")) return "size";
    if (!strcmp(f, "batch_size")) return "n";
    if (!strcmp(f, "init_image") || !strcmp(f, "mode")) return "image";
    return f;
}

/* OpenAI names the model family, not a checkpoint: those names mean "the
 * farm's default". */
static bool s_openai_model(const char *m) {
    return !strncmp(m, "dall-e", 6) || !strncmp(m, "gpt-image", 9);
}

/* "512x768" -> 512, 768. Digits only, at most 5 each. */
static bool s_size_parse(const char *s, long *w, long *h) {
    char *end;
    if (*s < '0' || *s > '9' || strspn(s, "0123456789") > 5) return false;
    errno = 0;
    *w = strtol(s, &end, 10);
    if (*end != 'x' && *end != 'X') return false;
    s = end + 1;
    if (*s < '0' || *s > '9' || strspn(s, "0123456789") > 5) return false;
    *h = strtol(s, &end, 10);
    return *end == 0 && errno == 0;
}

/* The side the model was trained at, from the model list; 0 when unknown. */
static long s_resolution(const json_t *models, const char *model) {
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        json_t *r = json_object_get(m, "resolution");
        if (name && !strcmp(name, model) && json_is_integer(r)) return (long)json_integer_value(r);
    }
    return 0;
}

int lf_openai_map_body(const json_t *body, const lf_openai_ctx_t *ctx, json_t **native,
                       lf_openai_format_t *format, lf_verr_t *err) {
    if (!json_is_object(body))
        return lf_verr_set(err, 400, "invalid_type", "", "the body must be a JSON object");
    bool edit = ctx && ctx->init_image;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (!strcmp(key, "prompt") || !strcmp(key, "model") || !strcmp(key, "n") || !strcmp(key, "size") ||
            !strcmp(key, "response_format") || !strcmp(key, "output_format") || !strcmp(key, "stream") ||
            !strcmp(key, "background") || S_IN(key, s_ignored) ||
            S_IN(key, s_passthrough) || (edit && !strcmp(key, "denoise")))
            continue;
        char clip[65];
        return lf_verr_set(err, 400, "unknown_field", key, "unknown parameter '%s'", lf_utf8_clip(key, clip, sizeof clip));
    }
    json_t *prompt = json_object_get(body, "prompt");
    if (!prompt || json_is_null(prompt))
        return lf_verr_set(err, 400, "missing_field", "prompt", "prompt is required");
    if (!json_is_string(prompt)) return lf_verr_set(err, 400, "invalid_type", "prompt", "prompt must be a string");

    lf_openai_format_t fmt = LF_OPENAI_URL;
    json_t *rf = json_object_get(body, "response_format");
    if (rf && !json_is_null(rf)) {
        const char *s = json_string_value(rf);
        if (s && !strcmp(s, "b64_json")) fmt = LF_OPENAI_B64_JSON;
        else if (!s || strcmp(s, "url"))
            return lf_verr_set(err, 400, "invalid_value", "response_format", "response_format must be url or b64_json");
    }
    json_t *of = json_object_get(body, "output_format");
    if (of && !json_is_null(of) && !(json_is_string(of) && !strcmp(json_string_value(of), "png")))
        return lf_verr_set(err, 400, "invalid_value", "output_format",
                           "output_format must be png (the farm makes PNGs)");

    json_t *stream = json_object_get(body, "stream");
    if (stream && !json_is_null(stream) && !json_is_false(stream) &&
        !(json_is_string(stream) && !strcmp(json_string_value(stream), "false")))
        return lf_verr_set(err, 400, "invalid_value", "stream",
                           "streaming is not supported; the answer comes when the job is done");
    /* Our PNGs have no alpha channel: only an opaque background can be had. */
    json_t *bg = json_object_get(body, "background");
    const char *bgs = json_string_value(bg);
    if (bg && !json_is_null(bg) && !(bgs && (!strcmp(bgs, "auto") || !strcmp(bgs, "opaque"))))
        return lf_verr_set(err, 400, "invalid_value", "background", "background must be auto or opaque");

    const char *def = ctx && ctx->default_model ? ctx->default_model : "lf-diagnostic";
    const char *model = def;
    json_t *jm = json_object_get(body, "model");
    if (jm && !json_is_null(jm)) {
        if (!json_is_string(jm)) return lf_verr_set(err, 400, "invalid_type", "model", "model must be a string");
        if (!s_openai_model(json_string_value(jm))) model = json_string_value(jm);
    }

    long w = 0, h = 0;
    json_t *js = json_object_get(body, "size");
    bool size_given = false;
    if (js && !json_is_null(js)) {
        const char *s = json_string_value(js);
        if (!s) return lf_verr_set(err, 400, "invalid_type", "size", "size must be a string such as \"512x512\"");
        if (strcmp(s, "auto")) {
            char clip[33];
            if (!s_size_parse(s, &w, &h))
                return lf_verr_set(err, 400, "invalid_value", "size",
                                   "size must be WIDTHxHEIGHT, such as \"512x512\" (got \"%s\")",
                                   lf_utf8_clip(s, clip, sizeof clip));
            size_given = true;
        }
    }
    if (!size_given && edit && ctx->image_width && ctx->image_height) {
        /* An edit keeps the input's shape when the native limits allow it. */
        const lf_param_def_t *wd = &lf_params_table()[LF_P_width]; /* the size rows' limits */
        long mult = (long)wd->step, hi = (long)wd->hi;
        long lo = lf_validate_is_diagnostic(model) ? (long)wd->lo : LF_SIZE_MIN_REAL;
        long iw = (long)ctx->image_width / mult * mult;
        long ih = (long)ctx->image_height / mult * mult;
        if (iw >= lo && ih >= lo && iw <= hi && ih <= hi) {
            w = iw;
            h = ih;
            size_given = true;
        }
    }
    if (!size_given && ctx && ctx->models) {
        long r = s_resolution(ctx->models, model);
        if (r > 0) {
            w = h = r;
            size_given = true;
        }
    }

    json_t *out = json_object();
    if (!out) return lf_verr_set(err, 500, "internal", "", "out of memory");
    int fail = 0;
    fail |= json_object_set(out, "prompt", prompt);
    if (model != def) fail |= json_object_set_new(out, "model", json_string(model));
    json_t *n = json_object_get(body, "n");
    if (n && !json_is_null(n)) fail |= json_object_set(out, "batch_size", n);
    if (size_given) {
        fail |= json_object_set_new(out, "width", json_integer(w));
        fail |= json_object_set_new(out, "height", json_integer(h));
    }
    json_object_foreach((json_t *)body, key, v) {
        if (S_IN(key, s_passthrough) || !strcmp(key, "denoise")) fail |= json_object_set(out, key, v);
    }
    if (edit) fail |= json_object_set_new(out, "init_image", json_string(ctx->init_image));
    if (fail) {
        json_decref(out);
        return lf_verr_set(err, 500, "internal", "", "out of memory");
    }
    *native = out;
    *format = fmt;
    return 0;
}

/* Replaces the first native field name in a validator message by the
 * OpenAI parameter ("batch_size must be in 1..8" -> "n must be in 1..8"),
 * when the message starts with it. */
static void s_rename_message(lf_verr_t *e, const char *from, const char *to) {
    size_t fl = strlen(from);
    if (strncmp(e->message, from, fl) || !strcmp(from, to)) return;
    char msg[sizeof e->message];
    snprintf(msg, sizeof msg, "%s%s", to, e->message + fl);
    memcpy(e->message, msg, sizeof msg);
}

int lf_openai_map_job(const json_t *body, const lf_openai_ctx_t *ctx, lf_job_request_t *out,
                      lf_openai_format_t *format, lf_verr_t *err) {
    json_t *native = NULL;
    lf_openai_format_t fmt;
    int rc = lf_openai_map_body(body, ctx, &native, &fmt, err);
    if (rc) return rc;
    lf_validate_ctx_t vctx = {.default_model = ctx ? ctx->default_model : NULL,
                              .random_seed = ctx ? ctx->random_seed : 0};
    lf_job_request_t r;
    rc = lf_validate_job(native, &vctx, &r, err);
    json_decref(native);
    if (rc) {
        const char *param = lf_openai_map_param(err->field);
        if (param != err->field) {
            if (!strcmp(param, "n")) s_rename_message(err, err->field, param);
            snprintf(err->field, sizeof err->field, "%s", param);
        }
        return rc;
    }
    *out = r;
    *format = fmt;
    return 0;
}

/* Form fields the validator wants as numbers. */
static const char *const s_form_ints[] = {"n", "steps", "seed", "clip_skip"};
static const char *const s_form_reals[] = {"cfg_scale", "denoise", "refiner_switch_at"};

/* A form value as JSON: a number where one is wanted and the text is one,
 * else the text (the validator then names the field). NULL: not UTF-8. */
static json_t *s_form_value(const char *name, const uint8_t *data, size_t len) {
    char buf[64];
    if ((S_IN(name, s_form_ints) || S_IN(name, s_form_reals)) && len > 0 && len < sizeof buf &&
        !memchr(data, 0, len)) {
        memcpy(buf, data, len);
        buf[len] = 0;
        char *end;
        errno = 0;
        if (S_IN(name, s_form_ints)) {
            long long x = strtoll(buf, &end, 10);
            if (*end == 0 && errno == 0 && end != buf) return json_integer(x);
        }
        double d = strtod(buf, &end);
        if (*end == 0 && errno == 0 && end != buf) return json_real(d);
    }
    return json_stringn((const char *)data, len);
}

int lf_openai_map_form(const lf_multipart_part_t *parts, size_t n, json_t **fields,
                       const lf_multipart_part_t **image, const lf_multipart_part_t **mask,
                       lf_verr_t *err) {
    const lf_multipart_part_t *img = NULL, *msk = NULL;
    json_t *obj = json_object();
    if (!obj) return lf_verr_set(err, 500, "internal", "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        const lf_multipart_part_t *p = &parts[i];
        if (!strcmp(p->name, "image") || !strcmp(p->name, "image[]")) {
            if (img) {
                json_decref(obj);
                return lf_verr_set(err, 400, "invalid_value", "image", "send one image; the farm edits one at a time");
            }
            img = p;
            continue;
        }
        if (!strcmp(p->name, "mask")) {
            if (msk) {
                json_decref(obj);
                return lf_verr_set(err, 400, "invalid_value", "mask", "send one mask");
            }
            msk = p;
            continue;
        }
        if (p->has_filename) {
            json_decref(obj);
            return lf_verr_set(err, 400, "unknown_field", p->name,
                               "unexpected file '%s'; only image and mask are files", p->name);
        }
        if (json_object_get(obj, p->name)) {
            json_decref(obj);
            return lf_verr_set(err, 400, "invalid_value", p->name, "%s is given twice", p->name);
        }
        json_t *v = s_form_value(p->name, p->data, p->len);
        if (!v) {
            json_decref(obj);
            return lf_verr_set(err, 400, "invalid_value", p->name, "%s is not UTF-8 text", p->name);
        }
        if (json_object_set_new(obj, p->name, v)) {
            json_decref(obj);
            return lf_verr_set(err, 500, "internal", "", "out of memory");
        }
    }
    *fields = obj;
    *image = img;
    *mask = msk;
    return 0;
}

json_t *lf_openai_map_models(const json_t *models) {
    json_t *data = json_array();
    if (!data) return NULL;
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (!name) continue;
        json_t *e = json_pack("{s:s,s:s,s:i,s:s}", "id", name, "object", "model", "created", (json_int_t)0,
                              "owned_by", "lightfarm");
        json_t *r = json_object_get(m, "resolution");
        if (e && r) json_object_set(e, "resolution", r);
        if (!e || json_array_append_new(data, e)) {
            json_decref(data);
            return NULL;
        }
    }
    return data;
}

/* A JSON string of text that may not be UTF-8 (a form field's name, a
 * message cut in the middle of a character): other bytes become '?'. */
static json_t *s_text(const char *s) {
    json_t *j = json_string(s);
    if (j) return j;
    char *c = strdup(s);
    if (!c) return NULL;
    for (char *q = c; *q; q++)
        if ((unsigned char)*q >= 0x80) *q = '?';
    j = json_string(c);
    free(c);
    return j;
}

json_t *lf_openai_map_error(int status, const char *code, const char *param, const char *message) {
    json_t *e = json_object();
    if (!e) return NULL;
    json_object_set_new(e, "message", s_text(message ? message : ""));
    bool client = status >= 400 && status < 500;
    json_object_set_new(e, "type", json_string(client ? "invalid_request_error" : "server_error"));
    json_object_set_new(e, "param", param && *param ? s_text(param) : json_null());
    json_object_set_new(e, "code", code && *code ? s_text(code) : json_null());
    return json_pack("{s:o}", "error", e);
}
