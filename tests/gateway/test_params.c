/* test_params: one walk over every row of the parameter table (lf_params.h).
 *
 * For each row: the native and the A1111 validators accept it at its
 * minimum and maximum (every value of an enum) and refuse it just outside,
 * naming the field the client used; the accepted value round-trips through
 * the msgpack codec; the OpenAPI document (lf_schema) lists it with the
 * table's range; where it has an infotext label, the text carries it and the
 * A1111-style parser gives the value back. A row added to LF_PARAM_LIST is
 * covered here without an edit. Also: user text echoed in errors is cut at
 * UTF-8 character boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_infotext.h"
#include "lf_params.h"
#include "lf_proto.h"
#include "lf_schema.h"
#include "lf_validate.h"

/* A real model (sizes from 64) and the diagnostic one (sizes from 8). */
static const lf_validate_ctx_t s_ctx = {.default_model = "lf-diagnostic", .random_seed = 4242};

static bool s_is_str(const lf_param_def_t *d) {
    return d->type == LF_PT_STR || d->type == LF_PT_ENUM || d->type == LF_PT_JSON;
}

/* A JSON value for row d: a string of n bytes (STR), or the number v. */
static json_t *s_value(const lf_param_def_t *d, double v, size_t n) {
    if (d->type == LF_PT_STR) {
        char *s = malloc(n + 1);
        memset(s, 'a', n);
        s[n] = '\0';
        json_t *j = json_string(s);
        free(s);
        return j;
    }
    if (d->type == LF_PT_BOOL) return json_boolean(v != 0);
    if (d->type == LF_PT_F64) return json_real(v);
    return json_integer((json_int_t)v);
}

/* The body a row needs besides itself (img2img needs an init image). */
static json_t *s_body(const lf_param_def_t *d, json_t *v, bool a1111) {
    json_t *b = json_object();
    const char *key = a1111 ? d->a1111 : d->name;
    if (a1111 && d->a1111_at == LF_PA_OVERRIDE) json_object_set_new(b, "override_settings", json_pack("{s:o}", key, v));
    else json_object_set_new(b, key, v);
    if (!a1111 && d == &lf_params_table()[LF_P_mode] && json_is_string(v) &&
        (!strcmp(json_string_value(v), "img2img") || !strcmp(json_string_value(v), "upscale")))
        json_object_set_new(b, "init_image", json_string("up-1"));
    /* A mask needs an init image (inpainting is img2img). */
    if (!a1111 && d == &lf_params_table()[LF_P_mask]) json_object_set_new(b, "init_image", json_string("up-1"));
    /* A switch point needs a refiner (native; A1111 ignores it without one). */
    if (!a1111 && d == &lf_params_table()[LF_P_refiner_switch_at])
        json_object_set_new(b, "refiner_checkpoint", json_string("sdxl-refiner"));
    return b;
}

static int s_validate(const json_t *body, bool a1111, lf_job_request_t *r, lf_verr_t *e) {
    return a1111 ? lf_validate_a1111(body, false, &s_ctx, r, e) : lf_validate_job(body, &s_ctx, r, e);
}

/* The accepted request's params survive the codec unchanged, row by row. */
static void s_codec_round_trip(const lf_job_params_t *p) {
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(lf_params_encode(p, &buf, &len), 0);
    lf_job_params_t q = {0};
    assert_int_equal(lf_params_decode(buf, len, &q), 0);
    free(buf);
    const lf_param_def_t *t = lf_params_table();
    for (int i = 0; i < LF_P__COUNT; i++) {
        if (s_is_str(&t[i])) {
            const char *a = lf_param_cstr(p, &t[i]), *b = lf_param_cstr(&q, &t[i]);
            if ((a == NULL) != (b == NULL) || (a && strcmp(a, b))) fail_msg("codec: %s differs", t[i].name);
        } else if (t[i].type == LF_PT_LORAS) {
            const lf_param_loras_t *a = lf_param_loras(p, &t[i]), *b = lf_param_loras(&q, &t[i]);
            assert_int_equal(a->n, b->n);
            for (uint32_t k = 0; k < a->n; k++) {
                assert_string_equal(a->v[k].name, b->v[k].name);
                assert_true(a->v[k].weight == b->v[k].weight);
                assert_true(isnan(a->v[k].te_weight) ? isnan(b->v[k].te_weight) : a->v[k].te_weight == b->v[k].te_weight);
            }
        } else if (lf_param_num(p, &t[i]) != lf_param_num(&q, &t[i])) {
            fail_msg("codec: %s %g != %g", t[i].name, lf_param_num(p, &t[i]), lf_param_num(&q, &t[i]));
        }
    }
    lf_params_clear(&q);
}

/* Accept v for row d; check the stored value and the codec. */
static void s_accept(const lf_param_def_t *d, json_t *v, bool a1111) {
    json_t *body = s_body(d, json_deep_copy(v), a1111);
    lf_job_request_t r;
    lf_verr_t e = {0};
    char *txt = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s_validate(body, a1111, &r, &e)) fail_msg("%s: %s refused: %s (%s)", a1111 ? "a1111" : "native", txt, e.message, e.field);
    if (json_is_string(v) && d->type == LF_PT_ENUM) {
        const lf_param_enum_t *want = lf_param_enum_lookup(d, json_string_value(v));
        assert_non_null(want);
        assert_string_equal(lf_param_cstr(&r.params, d), want->name); /* stored by its canonical name */
    } else if (json_is_string(v) && d != &lf_params_table()[LF_P_model]) {
        assert_string_equal(lf_param_cstr(&r.params, d), json_string_value(v));
    } else if (json_is_number(v) && !((d->flags & LF_PF_RANDOM_NEG) && json_number_value(v) < 0)) {
        if (fabs(lf_param_num(&r.params, d) - json_number_value(v)) > 1e-9) fail_msg("%s: stored %g", txt, lf_param_num(&r.params, d));
    }
    s_codec_round_trip(&r.params);
    lf_job_request_clear(&r);
    json_decref(body);
    free(txt);
}

/* Refuse v for row d, naming the field the client used. */
static void s_refuse(const lf_param_def_t *d, json_t *v, bool a1111) {
    json_t *body = s_body(d, v, a1111);
    lf_job_request_t r;
    lf_verr_t e = {0};
    char *txt = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s_validate(body, a1111, &r, &e)) fail_msg("%s: %s accepted", a1111 ? "a1111" : "native", txt);
    char want[128];
    snprintf(want, sizeof want, "%s%s", a1111 && d->a1111_at == LF_PA_OVERRIDE ? "override_settings." : "",
             a1111 ? d->a1111 : d->name);
    if (strcmp(e.field, want)) fail_msg("%s: field '%s', want '%s' (%s)", txt, e.field, want, e.message);
    assert_int_equal(e.status, 400);
    json_decref(body);
    free(txt);
}

/* A LORAS row: refused with a field under the row's name ("loras[1].weight"). */
static void s_refuse_list(const lf_param_def_t *d, const char *json, const char *want_field) {
    json_error_t je;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
    assert_non_null(v);
    json_t *body = s_body(d, v, false);
    lf_job_request_t r;
    lf_verr_t e = {0};
    if (!s_validate(body, false, &r, &e)) fail_msg("%s accepted", json);
    if (strcmp(e.field, want_field)) fail_msg("%s: field '%s', want '%s' (%s)", json, e.field, want_field, e.message);
    assert_int_equal(e.status, 400);
    json_decref(body);
}

/* The adetailer row (JSON, lf_adetailer): a unit accepted with its defaults
 * filled in (canonical text through the codec), fields named in errors. */
static void s_walk_json(const lf_param_def_t *d) {
    json_error_t je;
    json_t *v = json_loads("[{\"ad_model\":\"mediapipe_face_short\",\"ad_confidence\":0.5}]", 0, &je);
    json_t *body = s_body(d, v, false);
    lf_job_request_t r;
    lf_verr_t e = {0};
    if (s_validate(body, false, &r, &e)) fail_msg("%s: %s", d->name, e.message);
    const char *s = lf_param_cstr(&r.params, d);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"ad_confidence\":0.5"));
    assert_non_null(strstr(s, "\"ad_denoising_strength\":0.4"));
    s_codec_round_trip(&r.params);
    lf_job_request_clear(&r);
    json_decref(body);
    s_refuse_list(d, "[{\"ad_model\":\"mediapipe_face_short\",\"ad_confidence\":2}]", "adetailer[0].ad_confidence");
    s_refuse_list(d, "[{\"ad_model\":\"yolo_face\"}]", "adetailer[0].ad_model"); /* neither BlazeFace nor a YOLO file */
    s_refuse_list(d, "[{\"ad_model\":\"../face_yolov8n.pt\"}]", "adetailer[0].ad_model");
    s_refuse_list(d, "[{\"ad_model\":\"mediapipe_face_short\",\"ad_wat\":1}]", "adetailer[0].ad_wat");
    s_refuse_list(d, "[1]", "adetailer[0]");
    s_refuse_list(d, "{\"ad_model\":\"mediapipe_face_short\"}", "adetailer");
}

static void s_walk_loras(const lf_param_def_t *d) {
    /* Empty, and full: hi entries, names of 1 and LF_LORA_NAME_MAX bytes,
     * weights at the limits, te_weight given or not. */
    json_t *full = json_array();
    char name[LF_LORA_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    name[LF_LORA_NAME_MAX] = '\0';
    for (int k = 0; k < (int)d->hi; k++) {
        json_t *o = json_pack("{s:s,s:f}", "name", k ? name : "a", "weight", k % 2 ? LF_LORA_WEIGHT_LIMIT : -LF_LORA_WEIGHT_LIMIT);
        if (k % 3 == 0) json_object_set_new(o, "te_weight", json_real(k ? 0.25 : -LF_LORA_WEIGHT_LIMIT));
        json_array_append_new(full, o);
    }
    json_t *empty = json_array();
    s_accept(d, empty, false);
    s_accept(d, full, false);
    /* weight defaults to the row's def; te_weight to weight (NAN). */
    json_t *one = json_pack("[{s:s}]", "name", "style");
    json_t *body = s_body(d, one, false);
    lf_job_request_t r;
    lf_verr_t e = {0};
    assert_int_equal(s_validate(body, false, &r, &e), 0);
    const lf_param_loras_t *l = lf_param_loras(&r.params, d);
    assert_int_equal(l->n, 1);
    assert_true(l->v[0].weight == d->def);
    assert_true(isnan(l->v[0].te_weight));
    lf_job_request_clear(&r);
    json_decref(body);
    json_array_append_new(full, json_pack("{s:s}", "name", "one-too-many"));
    char *txt = json_dumps(full, JSON_COMPACT);
    s_refuse_list(d, txt, d->name);
    free(txt);
    json_decref(full);
    json_decref(empty);
    name[LF_LORA_NAME_MAX] = 'n';
    name[LF_LORA_NAME_MAX + 1] = '\0';
    char buf[512];
    snprintf(buf, sizeof buf, "[{\"name\":\"%s\"}]", name);
    s_refuse_list(d, buf, "loras[0].name");
    s_refuse_list(d, "[{\"name\":\"\"}]", "loras[0]");
    s_refuse_list(d, "[{\"name\":\"a\",\"weight\":20.5}]", "loras[0].weight");
    s_refuse_list(d, "[{\"name\":\"a\",\"te_weight\":-21}]", "loras[0].te_weight");
    s_refuse_list(d, "[{\"name\":\"a\"},{\"weight\":1}]", "loras[1]");
    s_refuse_list(d, "[{\"name\":\"a\",\"wieght\":1}]", "loras[0].wieght");
    s_refuse_list(d, "[{\"name\":1}]", "loras[0].name");
    s_refuse_list(d, "[\"a\"]", "loras[0]");
    s_refuse_list(d, "{\"name\":\"a\"}", "loras");
    s_refuse_list(d, "\"a\"", "loras");
}

/* The timesteps row: integers, as an array or their text (lf_validate). */
static void s_walk_timesteps(const lf_param_def_t *d, bool a1111) {
    static const char *const good[] = {"[800]", "[999,0]", "\"999, 749,499\""};
    static const char *const bad[] = {"[]", "[1000]", "[-1]", "[1,2]", "[5,5]", "[1.5]", "\"a\"", "\"\"", "1", "{}"};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        json_t *v = json_loads(good[k], JSON_DECODE_ANY, NULL);
        s_accept(d, v, a1111);
        json_decref(v);
    }
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) s_refuse(d, json_loads(bad[k], JSON_DECODE_ANY, NULL), a1111);
}

static void s_walk(bool a1111) {
    const lf_param_def_t *t = lf_params_table();
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &t[i];
        if (a1111 && (!d->a1111 || d->a1111_at == LF_PA_SCRIPT)) continue;
        if (i == LF_P_timesteps) {
            s_walk_timesteps(d, a1111);
            continue;
        }
        switch (d->type) {
        case LF_PT_LORAS: s_walk_loras(d); break;
        case LF_PT_JSON: s_walk_json(d); break;
        case LF_PT_BOOL: /* true / false, and 0 / 1 as pydantic takes them */
            for (int k = 0; k < 4; k++) {
                json_t *j = k < 2 ? json_boolean(k) : json_integer(k - 2);
                s_accept(d, j, a1111);
                json_decref(j);
            }
            s_refuse(d, json_integer(2), a1111);
            s_refuse(d, json_string("1"), a1111);
            break;
        case LF_PT_ENUM:
            for (const lf_param_enum_t *v = d->values; v->name; v++) {
                json_t *j = json_string(a1111 ? v->a1111 : v->name);
                s_accept(d, j, a1111);
                json_decref(j);
            }
            s_refuse(d, json_string("no-such-value"), a1111);
            s_refuse(d, json_integer(1), a1111);
            break;
        case LF_PT_STR: {
            json_t *lo = s_value(d, 0, (size_t)(d->lo > 0 ? d->lo : 0)), *hi = s_value(d, 0, (size_t)d->hi);
            s_accept(d, lo, a1111);
            s_accept(d, hi, a1111);
            json_decref(lo);
            json_decref(hi);
            s_refuse(d, s_value(d, 0, (size_t)d->hi + 1), a1111);
            if (d->lo > 0) s_refuse(d, s_value(d, 0, 0), a1111);
            s_refuse(d, json_integer(1), a1111);
            break;
        }
        default: {
            double step = d->flags & LF_PF_MULTIPLE ? d->step : d->type == LF_PT_F64 ? 0.5 : 1;
            json_t *lo = s_value(d, d->lo, 0), *hi = s_value(d, d->hi, 0);
            s_accept(d, lo, a1111);
            s_accept(d, hi, a1111);
            json_decref(lo);
            json_decref(hi);
            s_refuse(d, s_value(d, d->lo - step, 0), a1111);
            s_refuse(d, s_value(d, d->hi + step, 0), a1111);
            s_refuse(d, json_string("1"), a1111);
            if (d->flags & LF_PF_MULTIPLE) s_refuse(d, s_value(d, d->hi - 1, 0), a1111);
            break;
        }
        }
    }
}

static void test_every_row_native(void **state) { s_walk(false); }
static void test_every_row_a1111(void **state) { s_walk(true); }

/* The diagnostic model takes sizes from the table's minimum (8); real
 * models from LF_SIZE_MIN_REAL. A cross-field rule, so not in the walk. */
static void test_real_model_size_floor(void **state) {
    json_t *b = json_pack("{s:s,s:i}", "model", "sd15", "width", LF_SIZE_MIN_REAL - 8);
    lf_job_request_t r;
    lf_verr_t e = {0};
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), LF_EINVAL);
    assert_string_equal(e.field, "width");
    json_object_set_new(b, "width", json_integer(LF_SIZE_MIN_REAL));
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    lf_job_request_clear(&r);
    json_decref(b);
}

static uint32_t s_res(void *ud, const char *model) { return !strcmp(model, "lf-tiny-shapes") ? 256 : 0; }

/* Defaults flagged LF_PF_MODEL_DEF follow the model's resolution, on both
 * routes; a size the client gives wins. */
static void test_model_defaults(void **state) {
    lf_validate_ctx_t ctx = {.default_model = "lf-tiny-shapes", .random_seed = 1, .model_resolution = s_res};
    lf_job_request_t r;
    lf_verr_t e = {0};
    json_t *b = json_object();
    assert_int_equal(lf_validate_job(b, &ctx, &r, &e), 0);
    assert_int_equal(r.params.width, 256);
    assert_int_equal(r.params.height, 256);
    lf_job_request_clear(&r);
    assert_int_equal(lf_validate_a1111(b, false, &ctx, &r, &e), 0);
    assert_int_equal(r.params.width, 256);
    lf_job_request_clear(&r);
    json_object_set_new(b, "width", json_integer(320));
    assert_int_equal(lf_validate_a1111(b, false, &ctx, &r, &e), 0);
    assert_int_equal(r.params.width, 320);
    assert_int_equal(r.params.height, 256);
    lf_job_request_clear(&r);
    json_object_set_new(b, "model", json_string("sd15"));
    json_object_del(b, "width");
    assert_int_equal(lf_validate_job(b, &ctx, &r, &e), 0);
    assert_int_equal(r.params.width, (uint32_t)lf_params_table()[LF_P_width].def); /* unknown: the table's */
    lf_job_request_clear(&r);
    json_decref(b);
}

/* The OpenAPI document lists every row with the table's range and values. */
static void test_openapi_has_every_row(void **state) {
    FILE *f = fopen(LF_OPENAPI_FILE, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    json_t *doc = lf_schema_openapi(buf, n);
    assert_non_null(doc);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *native = json_object_get(json_object_get(schemas, "JobRequest"), "properties");
    json_t *a1111 = json_object_get(json_object_get(schemas, "A1111Txt2Img"), "properties");
    const lf_param_def_t *t = lf_params_table();
    for (int i = 0; i < LF_P__COUNT; i++) {
        json_t *p = json_object_get(native, t[i].name);
        if (!p) fail_msg("JobRequest lacks %s", t[i].name);
        if (!json_is_string(json_object_get(p, "description"))) fail_msg("%s has no description", t[i].name);
        if (t[i].type == LF_PT_ENUM) {
            size_t k = 0;
            for (const lf_param_enum_t *v = t[i].values; v->name; v++, k++)
                assert_string_equal(json_string_value(json_array_get(json_object_get(p, "enum"), k)), v->name);
            assert_int_equal(json_array_size(json_object_get(p, "enum")), k);
        } else if (t[i].type == LF_PT_LORAS) {
            assert_string_equal(json_string_value(json_object_get(p, "type")), "array");
            assert_int_equal(json_integer_value(json_object_get(p, "maxItems")), (json_int_t)t[i].hi);
            assert_non_null(json_object_get(json_object_get(json_object_get(p, "items"), "properties"), "te_weight"));
        } else if (!s_is_str(&t[i]) && t[i].type != LF_PT_BOOL) {
            assert_true(json_number_value(json_object_get(p, "minimum")) == t[i].lo);
            assert_true(json_number_value(json_object_get(p, "maximum")) == t[i].hi);
        } else if (t[i].type == LF_PT_STR) {
            assert_int_equal(json_integer_value(json_object_get(p, "maxLength")), (json_int_t)t[i].hi);
        }
        if (t[i].a1111 && t[i].a1111_at == LF_PA_TOP && !json_object_get(a1111, t[i].a1111))
            fail_msg("A1111Txt2Img lacks %s", t[i].a1111);
    }
    /* The envelope written in the file is kept. */
    assert_non_null(json_object_get(native, "priority"));
    json_decref(doc);
    /* GET /v1/params: every row once, in table order. */
    json_t *pr = lf_schema_params();
    json_t *rows = json_object_get(pr, "params");
    assert_int_equal(json_array_size(rows), LF_P__COUNT);
    for (int i = 0; i < LF_P__COUNT; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(rows, (size_t)i), "name")), t[i].name);
    json_decref(pr);
}

/* Rows with an infotext label: written, and read back by the A1111-style
 * parser to the same value, at the row's minimum and maximum. */
static void test_infotext_round_trip(void **state) {
    const lf_param_def_t *t = lf_params_table();
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < LF_P__COUNT; i++) {
            const lf_param_def_t *d = &t[i];
            if (!d->label || d->show == LF_PS_NEVER) continue;
            lf_job_params_t p = {0};
            assert_int_equal(lf_params_defaults(&p), 0);
            assert_int_equal(lf_param_set_str(&p, &t[LF_P_model], "sd15-base"), 0);
            assert_int_equal(lf_param_set_str(&p, &t[LF_P_mode], "img2img"), 0);
            p.seed = 7;
            if (d->show == LF_PS_REFINER) assert_int_equal(lf_param_set_str(&p, &t[LF_P_refiner_checkpoint], "sdxl-refiner"), 0);
            if (d->show >= LF_PS_HIRES && d->show <= LF_PS_HIRES_OTHER) p.enable_hr = true; /* Hires-Fix rows: written with it */
            /* Step caching rows are written only with caching on, of their kind. */
            if (d->show == LF_PS_CACHE)
                assert_int_equal(lf_param_set_str(&p, &t[LF_P_cache_kind],
                                                  i == LF_P_cache_interval || i == LF_P_cache_depth ? "deepcache"
                                                                                                   : "fbcache"),
                                 0);
            if (d->show == LF_PS_TCD) assert_int_equal(lf_param_set_str(&p, &t[LF_P_sampler], "tcd"), 0);
            if (d->type == LF_PT_ENUM) {
                const lf_param_enum_t *v = d->values;
                if (pass) while (v[1].name) v++;
                else if (d->show == LF_PS_HIRES_OTHER) v++; /* the first is the first pass's default */
                if (d->show == LF_PS_CACHE && !strcmp(v->name, "none")) v++;
                assert_int_equal(lf_param_set_str(&p, d, v->name), 0);
            } else if (d->type == LF_PT_STR) {
                /* Quoting: a value with ',' and ':' is written as a JSON string. */
                assert_int_equal(lf_param_set_str(&p, d, pass ? "x, with: a comma" : "plain"), 0);
            } else {
                double v = pass ? d->hi : d->lo;
                if (d->flags & LF_PF_RANDOM_NEG && v < 0) v = 0;
                if ((d->show == LF_PS_NONDEF || d->show == LF_PS_HIRES_NONDEF) && v == d->def) v = d->hi;
                if (d->show == LF_PS_HIRES_RESIZE && v == 0) v = d->step; /* 0x0 is "no resize" */
                if (d->flags & LF_PF_MULTIPLE && v < LF_SIZE_MIN_REAL) v = LF_SIZE_MIN_REAL;
                assert_int_equal(lf_param_set_num(&p, d, v), 0);
            }
            char *text = NULL;
            assert_int_equal(lf_params_infotext(&p, NULL, 0, &text), 0);
            if (d->show != LF_PS_PROMPT && !strstr(text, d->label)) fail_msg("infotext lacks '%s': %s", d->label, text);
            lf_job_params_t q = {0};
            int skipped = -1;
            assert_int_equal(lf_params_from_infotext(text, &q, &skipped), 0);
            assert_int_equal(skipped, 0);
            if (s_is_str(d)) {
                if (strcmp(lf_param_cstr(&p, d), lf_param_cstr(&q, d)))
                    fail_msg("%s: '%s' came back as '%s' from %s", d->name, lf_param_cstr(&p, d), lf_param_cstr(&q, d), text);
            } else if (fabs(lf_param_num(&p, d) - lf_param_num(&q, d)) > 1e-9) {
                fail_msg("%s: %g came back as %g from %s", d->name, lf_param_num(&p, d), lf_param_num(&q, d), text);
            }
            free(text);
            lf_params_clear(&p);
            lf_params_clear(&q);
        }
    }
}

/* Hires-Fix from an A1111 client: "Use same sampler" / "Use same
 * scheduler" mean the first pass's; the infotext carries A1111's keys and
 * reads back as enable_hr (not img2img). */
static void test_hires_a1111(void **state) {
    (void)state;
    json_t *b = json_pack("{s:s,s:b,s:f,s:s,s:s,s:s,s:f,s:i,s:i}", "prompt", "a cat", "enable_hr", 1, "hr_scale", 1.5,
                          "hr_upscaler", "Latent (nearest-exact)", "hr_sampler_name", "Use same sampler",
                          "hr_scheduler", "Use same scheduler", "denoising_strength", 0.6,
                          "hr_second_pass_steps", 12, "hr_resize_x", 0);
    lf_job_request_t r;
    lf_verr_t e = {0};
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), 0);
    assert_true(r.params.enable_hr);
    assert_null(r.params.hr_sampler);
    assert_null(r.params.hr_scheduler);
    assert_string_equal(r.params.mode, "txt2img");
    char *text = NULL;
    assert_int_equal(lf_params_infotext(&r.params, NULL, 0, &text), 0);
    if (!strstr(text, "Denoising strength: 0.6, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: Latent (nearest-exact)"))
        fail_msg("%s", text);
    assert_null(strstr(text, "Hires sampler"));
    lf_job_params_t q = {0};
    assert_int_equal(lf_params_from_infotext(text, &q, NULL), 0);
    assert_true(q.enable_hr);
    assert_string_equal(q.mode, "txt2img");
    assert_true(q.hr_scale == 1.5 && q.hr_second_pass_steps == 12);
    /* A Hires-Fix size that is not a multiple of 8 is refused by name (512 x 1.3 = 665.6). */
    json_t *b2 = json_pack("{s:s,s:b,s:f}", "prompt", "a cat", "enable_hr", 1, "hr_scale", 1.3);
    lf_job_request_t r2;
    assert_int_equal(lf_validate_a1111(b2, false, &s_ctx, &r2, &e), LF_EINVAL);
    assert_string_equal(e.field, "hr_scale");
    assert_non_null(strstr(e.message, "665x665"));
    json_decref(b2);
    /* Without enable_hr the hires keys are not written, and the strength is not either. */
    free(text);
    r.params.enable_hr = false;
    assert_int_equal(lf_params_infotext(&r.params, NULL, 0, &text), 0);
    assert_null(strstr(text, "Hires"));
    assert_null(strstr(text, "Denoising strength"));
    free(text);
    lf_params_clear(&q);
    lf_job_request_clear(&r);
    json_decref(b);
}

/* The refiner and VAE rules that tie fields together (s_finish, A1111's
 * spellings): a switch point without a refiner is refused natively and
 * ignored by A1111; "None" / "Automatic" mean "none" / the checkpoint's VAE;
 * A1111 titles ("name.safetensors [hash]") become names. */
static void test_refiner_vae_rules(void **state) {
    lf_job_request_t r;
    lf_verr_t e = {0};
    json_t *b = json_pack("{s:s,s:f}", "model", "sdxl-base", "refiner_switch_at", 0.7);
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), LF_EINVAL);
    assert_string_equal(e.field, "refiner_switch_at");
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "refiner_checkpoint"));
    json_object_set_new(b, "refiner_checkpoint", json_string("sdxl-refiner"));
    json_object_set_new(b, "vae", json_string("Automatic"));
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.refiner_checkpoint, "sdxl-refiner");
    assert_true(r.params.refiner_switch_at == 0.7);
    assert_null(r.params.vae);
    assert_true(r.params.aesthetic_score == 6.0 && r.params.negative_aesthetic_score == 2.5); /* A1111's */
    assert_int_equal(r.params.crop_top, 0);
    assert_int_equal(r.params.original_width, 0);
    char *text = NULL;
    assert_int_equal(lf_params_infotext(&r.params, NULL, 0, &text), 0);
    assert_non_null(strstr(text, "Refiner: sdxl-refiner, Refiner switch at: 0.7"));
    assert_null(strstr(text, "VAE:"));
    free(text);
    lf_job_request_clear(&r);
    json_decref(b);

    /* A1111: the switch point alone is ignored (no error, no refiner in the text). */
    b = json_pack("{s:f,s:s}", "refiner_switch_at", 0.8, "refiner_checkpoint", "None");
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), 0);
    assert_null(r.params.refiner_checkpoint);
    assert_int_equal(lf_params_infotext(&r.params, NULL, 0, &text), 0);
    assert_null(strstr(text, "Refiner"));
    free(text);
    lf_job_request_clear(&r);
    json_decref(b);

    /* A1111 titles and override settings. */
    b = json_pack("{s:s,s:{s:s,s:i,s:i,s:f,s:f}}", "refiner_checkpoint", "sd_xl_refiner_1.0.safetensors [7440042bbd]",
                  "override_settings", "sd_vae", "sdxl_vae.safetensors", "sdxl_crop_top", 16, "sdxl_crop_left", 24,
                  "sdxl_refiner_high_aesthetic_score", 7.0, "sdxl_refiner_low_aesthetic_score", 2.0);
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), 0);
    assert_string_equal(r.params.refiner_checkpoint, "sd_xl_refiner_1.0");
    assert_string_equal(r.params.vae, "sdxl_vae");
    assert_int_equal(r.params.crop_top, 16);
    assert_int_equal(r.params.crop_left, 24);
    assert_true(r.params.aesthetic_score == 7.0 && r.params.negative_aesthetic_score == 2.0);
    assert_int_equal(lf_params_infotext(&r.params, NULL, 0, &text), 0);
    assert_non_null(strstr(text, "VAE: sdxl_vae"));
    assert_non_null(strstr(text, "Refiner: sd_xl_refiner_1.0, Refiner switch at: 0.8"));
    free(text);
    lf_job_request_clear(&r);
    json_object_set_new(json_object_get(b, "override_settings"), "sd_vae", json_string("None"));
    assert_int_equal(lf_validate_a1111(b, false, &s_ctx, &r, &e), 0);
    assert_null(r.params.vae);
    lf_job_request_clear(&r);
    json_decref(b);

    /* The reader keeps the refiner's name from A1111's "name [hash]", the VAE's from its file name. */
    lf_job_params_t p = {0};
    int skipped = -1;
    assert_int_equal(lf_params_from_infotext("a\nSteps: 20, Seed: 1, Size: 1024x1024, Model: sdxl-base, VAE: fixed-vae.safetensors, "
                                             "Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.75",
                                             &p, &skipped), 0);
    assert_int_equal(skipped, 0);
    assert_string_equal(p.refiner_checkpoint, "sd_xl_refiner_1.0");
    assert_string_equal(p.vae, "fixed-vae");
    assert_true(p.refiner_switch_at == 0.75);
    lf_params_clear(&p);
}

/* The image index moves the seed, as A1111's batches do. */
static void test_infotext_seed_index(void **state) {
    lf_job_params_t p = {0};
    assert_int_equal(lf_params_defaults(&p), 0);
    assert_int_equal(lf_param_set_str(&p, &lf_params_table()[LF_P_model], "m"), 0);
    p.seed = 100;
    char *text = NULL;
    assert_int_equal(lf_params_infotext(&p, NULL, 3, &text), 0);
    assert_non_null(strstr(text, "Seed: 103,"));
    assert_non_null(strstr(text, "RNG: CPU"));
    assert_null(strstr(text, "Denoising strength")); /* txt2img */
    free(text);
    lf_params_clear(&p);
}

/* Flux's guidance (Forge's "Distilled CFG Scale"): the table never writes it
 * (the pipeline does, for models with a guidance embedding; a table-written
 * text — the diagnostic card's, the gateway's fallback — says none), the
 * reader takes it back; default 3.5. */
static void test_infotext_guidance(void **state) {
    lf_job_params_t p = {0};
    assert_int_equal(lf_params_defaults(&p), 0);
    assert_true(p.guidance == 3.5);
    assert_int_equal(lf_param_set_str(&p, &lf_params_table()[LF_P_model], "m"), 0);
    char *text = NULL;
    assert_int_equal(lf_params_infotext(&p, NULL, 0, &text), 0);
    assert_null(strstr(text, "Distilled CFG Scale"));
    free(text);
    lf_params_clear(&p);
    int skipped = -1;
    assert_int_equal(lf_params_from_infotext("a cat\nSteps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, "
                                             "Distilled CFG Scale: 2.5, Seed: 5, Size: 1024x1024, Model: flux1-dev",
                                             &p, &skipped), 0);
    assert_int_equal(skipped, 0);
    assert_true(p.guidance == 2.5);
    assert_true(p.cfg_scale == 1.0);
    lf_params_clear(&p);
}

/* Older A1111 texts put the schedule in the sampler's name; the reader splits
 * it, and skips (and counts) what does not fit a row. */
static void test_infotext_reader_old_texts(void **state) {
    lf_job_params_t p = {0};
    int skipped = -1;
    assert_int_equal(lf_params_from_infotext("a cat\nNegative prompt: dog\nSteps: 12, Sampler: DPM++ 2M Karras, "
                                             "CFG scale: 4.5, Seed: 5, Size: 320x192, Model hash: abc, Clip skip: 99",
                                             &p, &skipped), 0);
    assert_string_equal(p.prompt, "a cat");
    assert_string_equal(p.negative_prompt, "dog");
    assert_string_equal(p.sampler, "dpmpp_2m");
    assert_string_equal(p.scheduler, "karras");
    assert_int_equal(p.steps, 12);
    assert_int_equal(p.width, 320);
    assert_int_equal(p.height, 192);
    assert_true(p.cfg_scale == 4.5);
    assert_int_equal(p.clip_skip, 1); /* 99 is out of range: skipped, the default stays */
    assert_int_equal(skipped, 1);
    lf_params_clear(&p);
}

/* 40 two-byte characters in an unknown field's name: the message and the
 * field are cut without splitting one, so they stay valid JSON strings. */
static void test_utf8_errors(void **state) {
    char key[128] = "a";
    for (int i = 0; i < 40; i++) strcat(key, "\xc3\xa9");
    json_t *b = json_pack("{s:i}", key, 1);
    lf_job_request_t r;
    lf_verr_t e = {0};
    assert_int_equal(lf_validate_job(b, &s_ctx, &r, &e), LF_EINVAL);
    assert_string_equal(e.code, "unknown_field");
    json_t *m = json_string(e.message), *f = json_string(e.field);
    if (!m || !f) fail_msg("error text is not UTF-8: '%s' / '%s'", e.message, e.field);
    json_decref(m);
    json_decref(f);
    json_decref(b);
    char s[8] = "ab\xc3\xa9";
    assert_string_equal(lf_utf8_truncate(s, 3), "ab");
    char t[8] = "ab\xe2\x82";
    assert_string_equal(lf_utf8_truncate(t, 10), "ab"); /* an earlier cut left half a character */
    char u[8] = "ab\xc3\xa9";
    assert_string_equal(lf_utf8_truncate(u, 4), "ab\xc3\xa9");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row_native),
        cmocka_unit_test(test_every_row_a1111),
        cmocka_unit_test(test_real_model_size_floor),
        cmocka_unit_test(test_model_defaults),
        cmocka_unit_test(test_openapi_has_every_row),
        cmocka_unit_test(test_infotext_round_trip),
        cmocka_unit_test(test_infotext_seed_index),
        cmocka_unit_test(test_hires_a1111),
        cmocka_unit_test(test_refiner_vae_rules),
        cmocka_unit_test(test_infotext_reader_old_texts),
        cmocka_unit_test(test_infotext_guidance),
        cmocka_unit_test(test_utf8_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
