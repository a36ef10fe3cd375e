/* test_proto: the wire codec, driven with bytes (no sockets).
 *
 * Round trip of every type, a rejection table of hand-built msgpack (written
 * by a tiny encoder below, independent of msgpack-c), every prefix of every
 * valid message, bounded random and mutated input, and the counters. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lf_error.h"
#include "lf_proto.h"
#include "proto_samples.h"

/* ------------------------------------------------ hand msgpack builder */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} mb_t;

static void mb_raw(mb_t *b, const void *d, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void mb_u8(mb_t *b, uint8_t v) { mb_raw(b, &v, 1); }
static void mb_be(mb_t *b, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) mb_u8(b, (uint8_t)(v >> (8 * i)));
}
static void mb_map(mb_t *b, uint32_t n) {
    if (n < 16) mb_u8(b, 0x80 | n);
    else if (n < 65536) mb_u8(b, 0xde), mb_be(b, n, 2);
    else mb_u8(b, 0xdf), mb_be(b, n, 4);
}
static void mb_arr(mb_t *b, uint32_t n) {
    if (n < 16) mb_u8(b, 0x90 | n);
    else if (n < 65536) mb_u8(b, 0xdc), mb_be(b, n, 2);
    else mb_u8(b, 0xdd), mb_be(b, n, 4);
}
static void mb_strn(mb_t *b, const char *s, size_t n) {
    if (n < 32) mb_u8(b, 0xa0 | (uint8_t)n);
    else if (n < 256) mb_u8(b, 0xd9), mb_be(b, n, 1);
    else if (n < 65536) mb_u8(b, 0xda), mb_be(b, n, 2);
    else mb_u8(b, 0xdb), mb_be(b, n, 4);
    mb_raw(b, s, n);
}
static void mb_str(mb_t *b, const char *s) { mb_strn(b, s, strlen(s)); }
static void mb_uint(mb_t *b, uint64_t v) {
    if (v < 128) mb_u8(b, (uint8_t)v);
    else mb_u8(b, 0xcf), mb_be(b, v, 8);
}
static void mb_neg(mb_t *b, int64_t v) { mb_u8(b, 0xd3), mb_be(b, (uint64_t)v, 8); }
static void mb_kv_str(mb_t *b, const char *k, const char *v) { mb_str(b, k), mb_str(b, v); }
static void mb_kv_uint(mb_t *b, const char *k, uint64_t v) { mb_str(b, k), mb_uint(b, v); }
/* Starts {"v": ver, "t": type, ...} with `extra` more entries to follow. */
static void mb_head(mb_t *b, uint32_t extra, uint64_t ver, const char *type) {
    mb_map(b, 2 + extra);
    mb_kv_uint(b, "v", ver);
    mb_kv_str(b, "t", type);
}

/* ------------------------------------------------------------ helpers */

static bool str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}
static bool bytes_eq(const lf_bytes_t *a, const lf_bytes_t *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Every row of the parameter table, so a new row is compared without an edit here. */
static void assert_params_eq(const lf_job_params_t *a, const lf_job_params_t *b) {
    const lf_param_def_t *t = lf_params_table();
    for (int i = 0; i < LF_P__COUNT; i++) {
        if (t[i].type == LF_PT_STR || t[i].type == LF_PT_ENUM) {
            if (!str_eq(lf_param_cstr(a, &t[i]), lf_param_cstr(b, &t[i]))) fail_msg("params.%s differs", t[i].name);
        } else if (t[i].type == LF_PT_LORAS) {
            const lf_param_loras_t *x = lf_param_loras(a, &t[i]), *y = lf_param_loras(b, &t[i]);
            assert_int_equal(x->n, y->n);
            for (uint32_t k = 0; k < x->n; k++) {
                assert_true(str_eq(x->v[k].name, y->v[k].name));
                assert_true(x->v[k].weight == y->v[k].weight);
                assert_true(isnan(x->v[k].te_weight) ? isnan(y->v[k].te_weight)
                                                     : x->v[k].te_weight == y->v[k].te_weight);
            }
        } else if (lf_param_num(a, &t[i]) != lf_param_num(b, &t[i])) {
            fail_msg("params.%s differs: %g vs %g", t[i].name, lf_param_num(a, &t[i]), lf_param_num(b, &t[i]));
        }
    }
}

static void assert_caps_eq(const lf_worker_caps_t *a, const lf_worker_caps_t *b) {
    assert_true(str_eq(a->host, b->host));
    assert_int_equal(a->pid, b->pid);
    assert_true(str_eq(a->device_kind, b->device_kind));
    assert_true(str_eq(a->device_name, b->device_name));
    assert_true(a->memory_bytes == b->memory_bytes);
    assert_true(a->max_pixels == b->max_pixels);
    assert_int_equal(a->n_models, b->n_models);
    for (size_t i = 0; i < a->n_models; i++) {
        assert_true(str_eq(a->models[i].name, b->models[i].name));
        assert_true(str_eq(a->models[i].kind, b->models[i].kind));
        assert_int_equal(a->models[i].resolution, b->models[i].resolution);
        assert_true(str_eq(a->models[i].preview, b->models[i].preview));
        assert_int_equal(a->models[i].inpainting, b->models[i].inpainting);
        const lf_model_defaults_t *da = &a->models[i].defaults, *db = &b->models[i].defaults;
        assert_int_equal(da->steps, db->steps);
        assert_int_equal(da->has_cfg, db->has_cfg);
        assert_true(da->cfg_scale == db->cfg_scale);
        assert_true(str_eq(da->sampler, db->sampler));
        assert_true(str_eq(da->scheduler, db->scheduler));
        assert_int_equal(da->width, db->width);
        assert_int_equal(da->height, db->height);
        assert_true(str_eq(da->timesteps, db->timesteps));
    }
    assert_int_equal(a->n_resident, b->n_resident);
    for (size_t i = 0; i < a->n_resident; i++) assert_true(str_eq(a->resident[i], b->resident[i]));
    assert_int_equal(a->n_vaes, b->n_vaes);
    for (size_t i = 0; i < a->n_vaes; i++) assert_true(str_eq(a->vaes[i], b->vaes[i]));
    assert_int_equal(a->n_vae_info, b->n_vae_info);
    for (size_t i = 0; i < a->n_vae_info; i++) {
        assert_true(str_eq(a->vae_info[i].name, b->vae_info[i].name));
        assert_true(str_eq(a->vae_info[i].kind, b->vae_info[i].kind));
        assert_int_equal(a->vae_info[i].latent, b->vae_info[i].latent);
    }
    assert_int_equal(a->n_loras, b->n_loras);
    for (size_t i = 0; i < a->n_loras; i++) {
        assert_true(str_eq(a->loras[i].name, b->loras[i].name));
        assert_true(str_eq(a->loras[i].alias, b->loras[i].alias));
        assert_true(str_eq(a->loras[i].path, b->loras[i].path));
        assert_true(str_eq(a->loras[i].hash, b->loras[i].hash));
        assert_int_equal(a->loras[i].defaults.steps, b->loras[i].defaults.steps);
        assert_true(a->loras[i].defaults.cfg_scale == b->loras[i].defaults.cfg_scale);
        assert_true(str_eq(a->loras[i].defaults.scheduler, b->loras[i].defaults.scheduler));
        assert_int_equal(a->loras[i].defaults.has_weight, b->loras[i].defaults.has_weight);
        assert_true(a->loras[i].defaults.weight == b->loras[i].defaults.weight);
    }
    assert_true(str_eq(a->lora_set, b->lora_set));
    assert_true(str_eq(a->precision, b->precision));
    assert_int_equal(a->batch_max, b->batch_max);
    assert_true(a->batched == b->batched);
    assert_int_equal(a->threads, b->threads);
    assert_true(str_eq(a->pinning, b->pinning));
    assert_true(str_eq(a->cpus, b->cpus));
    assert_int_equal(a->n_upscalers, b->n_upscalers);
    for (size_t i = 0; i < a->n_upscalers; i++) assert_true(str_eq(a->upscalers[i], b->upscalers[i]));
    assert_int_equal(a->n_ad_models, b->n_ad_models);
    for (size_t i = 0; i < a->n_ad_models; i++) assert_true(str_eq(a->ad_models[i], b->ad_models[i]));
    assert_true(a->jobs_done == b->jobs_done);
}

static void assert_msg_eq(const lf_msg_t *a, const lf_msg_t *b) {
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->version, b->version);
    assert_true(a->req_id == b->req_id);
    assert_true(str_eq(a->job_id, b->job_id));
    assert_true(str_eq(a->worker_id, b->worker_id));
    assert_int_equal(a->priority, b->priority);
    assert_true(str_eq(a->idem_key, b->idem_key));
    assert_int_equal(a->ttl_s, b->ttl_s);
    assert_int_equal(a->max_attempts, b->max_attempts);
    assert_params_eq(&a->params, &b->params);
    assert_true(a->position == b->position);
    assert_int_equal(a->duplicate, b->duplicate);
    assert_int_equal(a->attempt, b->attempt);
    assert_int_equal(a->batch, b->batch);
    assert_true(str_eq(a->batch_of, b->batch_of));
    assert_true(bytes_eq(&a->init_image, &b->init_image));
    assert_int_equal(a->step, b->step);
    assert_int_equal(a->steps, b->steps);
    assert_true(bytes_eq(&a->preview, &b->preview));
    assert_int_equal(a->n_images, b->n_images);
    for (size_t i = 0; i < a->n_images; i++) {
        assert_true(bytes_eq(&a->images[i].png, &b->images[i].png));
        assert_true(a->images[i].seed == b->images[i].seed);
        assert_int_equal(a->images[i].width, b->images[i].width);
        assert_int_equal(a->images[i].height, b->images[i].height);
    }
    assert_true(str_eq(a->info_json, b->info_json));
    assert_int_equal(a->code, b->code);
    assert_true(str_eq(a->message, b->message));
    assert_caps_eq(&a->caps, &b->caps);
    assert_int_equal(a->busy, b->busy);
    assert_int_equal(a->event, b->event);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->enhance_ms, b->enhance_ms);
    assert_true(str_eq(a->prompt, b->prompt));
    assert_int_equal(a->n_jobs, b->n_jobs);
    for (size_t i = 0; i < a->n_jobs; i++) {
        assert_true(str_eq(a->jobs[i].id, b->jobs[i].id));
        assert_int_equal(a->jobs[i].attempt, b->jobs[i].attempt);
    }
}

static void encode_sample(lf_msg_type_t t, uint8_t **buf, size_t *len) {
    lf_msg_t m;
    assert_int_equal(lf_test_sample_msg(t, &m), 0);
    assert_int_equal(lf_msg_encode(&m, buf, len), 0);
    lf_msg_clear(&m);
}

/* -------------------------------------------------------------- tests */

static void test_names(void **state) {
    (void)state;
    assert_string_equal(lf_msg_type_name(LF_MSG_SUBMIT), "submit");
    assert_string_equal(lf_msg_type_name(LF_MSG_EVENT), "event");
    assert_string_equal(lf_msg_type_name(LF_MSG_NONE), "?");
    assert_string_equal(lf_msg_type_name(LF_MSG__COUNT), "?");
    for (int p = 0; p < LF_PRIO__COUNT; p++) {
        lf_priority_t out;
        assert_int_equal(lf_priority_parse(lf_priority_name(p), &out), 0);
        assert_int_equal(out, p);
    }
    for (int s = 0; s < LF_JOB__COUNT; s++) {
        lf_job_status_t out;
        assert_int_equal(lf_job_status_parse(lf_job_status_name(s), &out), 0);
        assert_int_equal(out, s);
    }
    for (int e = 0; e < LF_EV__COUNT; e++) {
        lf_event_kind_t out;
        assert_int_equal(lf_event_parse(lf_event_name(e), &out), 0);
        assert_int_equal(out, e);
    }
    lf_priority_t p = LF_PRIO_LOW;
    assert_int_equal(lf_priority_parse("urgent", &p), LF_EINVAL);
    assert_int_equal(lf_priority_parse(NULL, &p), LF_EINVAL);
    assert_int_equal(p, LF_PRIO_LOW);
    assert_string_equal(lf_job_status_name(LF_JOB_CANCELLED), "cancelled");
    assert_string_equal(lf_event_name(LF_EV_PREVIEW), "preview");
}

static void test_round_trip_all_types(void **state) {
    (void)state;
    for (int t = LF_MSG_NONE + 1; t < LF_MSG__COUNT; t++) {
        lf_msg_t m, d = {0};
        lf_codec_stats_t st = {0};
        uint8_t *buf = NULL, *buf2 = NULL;
        size_t len = 0, len2 = 0;
        assert_int_equal(lf_test_sample_msg(t, &m), 0);
        assert_int_equal(lf_msg_encode(&m, &buf, &len), 0);
        assert_int_equal(lf_msg_decode(buf, len, &d, &st), 0);
        assert_int_equal(st.ok, 1);
        assert_msg_eq(&m, &d);
        /* Re-encoding the decoded message gives the same bytes. */
        assert_int_equal(lf_msg_encode(&d, &buf2, &len2), 0);
        assert_int_equal(len, len2);
        assert_memory_equal(buf, buf2, len);
        free(buf);
        free(buf2);
        lf_msg_clear(&m);
        lf_msg_clear(&d);
        assert_null(d.job_id);
    }
}

static void test_minimal_messages(void **state) {
    (void)state;
    /* A broker heartbeat carries nothing but v and t. */
    lf_msg_t hb = {.type = LF_MSG_HEARTBEAT}, d = {0};
    uint8_t *buf;
    size_t len;
    assert_int_equal(lf_msg_encode(&hb, &buf, &len), 0);
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(d.type, LF_MSG_HEARTBEAT);
    assert_null(d.worker_id);
    assert_null(d.caps.host);
    assert_int_equal(d.caps.n_models, 0);
    assert_false(d.has_assigns); /* not said: an older worker */
    free(buf);
    lf_msg_clear(&d);

    /* A worker's count of ASSIGNs read, 0 included, is said when set. */
    hb.has_assigns = true;
    assert_int_equal(lf_msg_encode(&hb, &buf, &len), 0);
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_true(d.has_assigns);
    assert_int_equal(d.assigns, 0);
    free(buf);
    lf_msg_clear(&d);
    hb.assigns = 4000000000u;
    assert_int_equal(lf_msg_encode(&hb, &buf, &len), 0);
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(d.assigns, 4000000000u);
    free(buf);
    lf_msg_clear(&d);

    /* A batch's open jobs with their attempts (a broker taking over adopts
     * each); none said: an older worker, job_id alone. */
    lf_job_ref_t jobs[2] = {{"job-a", 1}, {"job-b", 3}};
    hb.jobs = jobs, hb.n_jobs = 2, hb.busy = true, hb.job_id = "job-a";
    assert_int_equal(lf_msg_encode(&hb, &buf, &len), 0);
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(d.n_jobs, 2);
    assert_string_equal(d.jobs[0].id, "job-a");
    assert_int_equal(d.jobs[0].attempt, 1);
    assert_string_equal(d.jobs[1].id, "job-b");
    assert_int_equal(d.jobs[1].attempt, 3);
    free(buf);
    lf_msg_clear(&d);
    hb.type = LF_MSG_READY, hb.worker_id = "w", hb.caps.host = "h";
    assert_int_equal(lf_msg_encode(&hb, &buf, &len), 0);
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(d.n_jobs, 2);
    assert_string_equal(d.jobs[1].id, "job-b");
    free(buf);
    lf_msg_clear(&d);
    hb.jobs[1].id = NULL; /* a job without its id */
    assert_int_equal(lf_msg_encode(&hb, &buf, &len), LF_EINVAL);
    hb = (lf_msg_t){.type = LF_MSG_HEARTBEAT};

    /* SUBMIT with only the model: defaults come back as zero/NULL. */
    lf_msg_t s = {.type = LF_MSG_SUBMIT, .req_id = 3, .priority = LF_PRIO_HIGH};
    s.params.model = "m";
    assert_int_equal(lf_msg_encode(&s, &buf, &len), 0);
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_string_equal(d.params.model, "m");
    assert_null(d.params.prompt);
    assert_int_equal(d.priority, LF_PRIO_HIGH);
    free(buf);
    lf_msg_clear(&d);

    /* RESULT with an empty image list is well-formed; the broker judges it. */
    lf_msg_t r = {.type = LF_MSG_RESULT, .job_id = "j"};
    assert_int_equal(lf_msg_encode(&r, &buf, &len), 0);
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(d.n_images, 0);
    assert_null(d.images);
    free(buf);
    lf_msg_clear(&d);
}

static void test_encode_errors(void **state) {
    (void)state;
    uint8_t *buf = (uint8_t *)"untouched";
    size_t len = 99;
    lf_msg_t m = {.type = LF_MSG_ASSIGN, .attempt = 1};
    m.params.model = "m";
    assert_int_equal(lf_msg_encode(&m, &buf, &len), LF_EINVAL); /* job_id missing */
    m.job_id = "j";
    m.params.model = NULL;
    assert_int_equal(lf_msg_encode(&m, &buf, &len), LF_EINVAL); /* params.model missing */
    assert_int_equal(len, 99);

    lf_msg_t f = {.type = LF_MSG_FAILED, .job_id = "j"};
    assert_int_equal(lf_msg_encode(&f, &buf, &len), LF_EINVAL); /* message missing */

    lf_msg_t bad = {.type = LF_MSG__COUNT};
    assert_int_equal(lf_msg_encode(&bad, &buf, &len), LF_EINVAL);
    bad.type = LF_MSG_NONE;
    assert_int_equal(lf_msg_encode(&bad, &buf, &len), LF_EINVAL);
    lf_msg_t ev = {.type = LF_MSG_EVENT, .job_id = "j", .event = LF_EV__COUNT};
    assert_int_equal(lf_msg_encode(&ev, &buf, &len), LF_EINVAL);

    /* Strings the decoder would refuse are refused here too. */
    char *big = malloc(LF_PROTO_MAX_STR + 2);
    memset(big, 'a', LF_PROTO_MAX_STR + 1);
    big[LF_PROTO_MAX_STR + 1] = '\0';
    lf_msg_t c = {.type = LF_MSG_CANCEL, .job_id = big};
    assert_int_equal(lf_msg_encode(&c, &buf, &len), LF_ETOOBIG);
    big[LF_PROTO_MAX_STR] = '\0'; /* exactly at the limit: fine */
    assert_int_equal(lf_msg_encode(&c, &buf, &len), 0);
    lf_msg_t d = {0};
    assert_int_equal(lf_msg_decode(buf, len, &d, NULL), 0);
    assert_int_equal(strlen(d.job_id), LF_PROTO_MAX_STR);
    lf_msg_clear(&d);
    free(buf);
    free(big);
    c.job_id = "bad \xff utf8";
    assert_int_equal(lf_msg_encode(&c, &buf, &len), LF_EINVAL);

    lf_msg_t r = {.type = LF_MSG_RESULT, .job_id = "j", .n_images = LF_PROTO_MAX_ITEMS + 1};
    r.images = calloc(r.n_images, sizeof *r.images);
    assert_int_equal(lf_msg_encode(&r, &buf, &len), LF_ETOOBIG);
    free(r.images);
    assert_int_equal(lf_msg_encode(NULL, &buf, &len), LF_EINVAL);
}

typedef enum { X_OK, X_MALFORMED, X_TRUNC, X_OVERSIZED, X_UNKNOWN, X_VERSION, X_MISSING } expect_t;

typedef struct {
    const char *name;
    void (*build)(mb_t *b);
    int code;
    expect_t counter;
} reject_case_t;

static void b_not_map(mb_t *b) { mb_arr(b, 3), mb_uint(b, 1), mb_uint(b, 2), mb_uint(b, 3); }
static void b_nil(mb_t *b) { mb_u8(b, 0xc0); }
static void b_reserved(mb_t *b) { mb_u8(b, 0xc1); }
static void b_empty(mb_t *b) { (void)b; }
static void b_int_key(mb_t *b) {
    mb_map(b, 3), mb_uint(b, 1), mb_uint(b, 2);
    mb_kv_uint(b, "v", 1), mb_kv_str(b, "t", "heartbeat");
}
static void b_wrong_type(mb_t *b) { mb_head(b, 1, 1, "cancel"), mb_kv_uint(b, "job_id", 5); }
static void b_missing(mb_t *b) { mb_head(b, 0, 1, "cancel"); }
static void b_missing_v(mb_t *b) { mb_map(b, 1), mb_kv_str(b, "t", "heartbeat"); }
static void b_t_not_str(mb_t *b) { mb_map(b, 2), mb_kv_uint(b, "v", 1), mb_kv_uint(b, "t", 3); }
static void b_missing_model(mb_t *b) {
    mb_head(b, 2, 1, "submit"), mb_kv_uint(b, "req_id", 1);
    mb_str(b, "params"), mb_map(b, 1), mb_kv_str(b, "prompt", "x");
}
static void b_params_not_map(mb_t *b) {
    mb_head(b, 2, 1, "submit"), mb_kv_uint(b, "req_id", 1), mb_kv_str(b, "params", "m");
}
static void b_missing_png(mb_t *b) {
    mb_head(b, 2, 1, "result"), mb_kv_str(b, "job_id", "j");
    mb_str(b, "images"), mb_arr(b, 1), mb_map(b, 1), mb_kv_uint(b, "seed", 1);
}
static void b_missing_model_name(mb_t *b) {
    mb_head(b, 2, 1, "ready"), mb_kv_str(b, "worker_id", "w");
    mb_str(b, "caps"), mb_map(b, 1), mb_str(b, "models"), mb_arr(b, 1), mb_map(b, 1);
    mb_kv_str(b, "kind", "sd15");
}
static void b_failed_no_msg(mb_t *b) {
    mb_head(b, 2, 1, "failed"), mb_kv_str(b, "job_id", "j"), mb_str(b, "code"), mb_neg(b, -3);
}
static void b_long_str(mb_t *b) {
    mb_head(b, 1, 1, "cancel"), mb_str(b, "job_id");
    char *s = malloc(LF_PROTO_MAX_STR + 1);
    memset(s, 'x', LF_PROTO_MAX_STR + 1);
    mb_strn(b, s, LF_PROTO_MAX_STR + 1);
    free(s);
}
static void b_long_unknown_str(mb_t *b) {
    mb_head(b, 1, 1, "heartbeat"), mb_str(b, "zz");
    mb_u8(b, 0xdb), mb_be(b, 0x7fffffff, 4); /* declared, never sent */
}
static void b_many_images(mb_t *b) {
    mb_head(b, 2, 1, "result"), mb_kv_str(b, "job_id", "j");
    mb_str(b, "images"), mb_arr(b, LF_PROTO_MAX_ITEMS + 1);
    for (unsigned i = 0; i < LF_PROTO_MAX_ITEMS + 1; i++) mb_u8(b, 0xc0);
}
static void b_huge_array32(mb_t *b) { mb_u8(b, 0xdd), mb_be(b, 0xffffffffu, 4); }
static void b_huge_map32(mb_t *b) { mb_u8(b, 0xdf), mb_be(b, 0xffffffffu, 4); }
static void b_deep(mb_t *b) {
    mb_head(b, 1, 1, "heartbeat"), mb_str(b, "deep");
    for (int i = 0; i < 40; i++) mb_arr(b, 1);
    mb_uint(b, 0);
}
static void b_trailing(mb_t *b) { mb_head(b, 0, 1, "heartbeat"), mb_u8(b, 0x00); }
static void b_two_msgs(mb_t *b) { mb_head(b, 0, 1, "heartbeat"), mb_head(b, 0, 1, "heartbeat"); }
static void b_truncated_map(mb_t *b) { mb_head(b, 5, 1, "heartbeat"); }
static void b_truncated_str(mb_t *b) {
    mb_head(b, 1, 1, "cancel"), mb_str(b, "job_id"), mb_u8(b, 0xa5), mb_raw(b, "ab", 2);
}
static void b_truncated_count(mb_t *b) { mb_u8(b, 0xdf), mb_be(b, 1000, 4), mb_raw(b, "\xa1v\x01", 3); }
static void b_truncated_header(mb_t *b) { mb_u8(b, 0xde), mb_u8(b, 0x00); }
static void b_version2(mb_t *b) { mb_head(b, 0, 2, "heartbeat"); }
static void b_version0(mb_t *b) { mb_head(b, 0, 0, "heartbeat"); }
static void b_version_neg(mb_t *b) { mb_map(b, 2), mb_str(b, "v"), mb_neg(b, -1), mb_kv_str(b, "t", "heartbeat"); }
static void b_unknown_type(mb_t *b) { mb_head(b, 0, 1, "bogus"); }
static void b_type_qmark(mb_t *b) { mb_head(b, 0, 1, "?"); }
static void b_nul_in_str(mb_t *b) { mb_head(b, 1, 1, "cancel"), mb_str(b, "job_id"), mb_strn(b, "a\0b", 3); }
static void b_bad_utf8(mb_t *b) { mb_head(b, 1, 1, "cancel"), mb_kv_str(b, "job_id", "a\xc3\x28"); }
static void b_overlong_utf8(mb_t *b) { mb_head(b, 1, 1, "cancel"), mb_kv_str(b, "job_id", "\xc0\xaf"); }
static void b_surrogate(mb_t *b) { mb_head(b, 1, 1, "cancel"), mb_kv_str(b, "job_id", "\xed\xa0\x80"); }
static void b_dup_key(mb_t *b) {
    mb_head(b, 2, 1, "cancel"), mb_kv_str(b, "job_id", "a"), mb_kv_str(b, "job_id", "b");
}
static void b_dup_v(mb_t *b) { mb_head(b, 1, 1, "heartbeat"), mb_kv_uint(b, "v", 1); }
static void b_neg_u32(mb_t *b) {
    mb_head(b, 3, 1, "progress"), mb_kv_str(b, "job_id", "j"), mb_str(b, "step"), mb_neg(b, -1);
    mb_kv_uint(b, "steps", 3);
}
static void b_u32_overflow(mb_t *b) {
    mb_head(b, 3, 1, "progress"), mb_kv_str(b, "job_id", "j"), mb_kv_uint(b, "step", 1ull << 32);
    mb_kv_uint(b, "steps", 3);
}
static void b_bad_priority(mb_t *b) {
    mb_head(b, 3, 1, "submit"), mb_kv_uint(b, "req_id", 1), mb_kv_str(b, "priority", "urgent");
    mb_str(b, "params"), mb_map(b, 1), mb_kv_str(b, "model", "m");
}
static void b_bad_event(mb_t *b) {
    mb_head(b, 2, 1, "event"), mb_kv_str(b, "job_id", "j"), mb_kv_str(b, "event", "exploded");
}
static void b_preview_as_str(mb_t *b) {
    mb_head(b, 4, 1, "progress"), mb_kv_str(b, "job_id", "j"), mb_kv_uint(b, "step", 1);
    mb_kv_uint(b, "steps", 3), mb_kv_str(b, "preview", "not bin");
}
static void b_busy_as_int(mb_t *b) { mb_head(b, 1, 1, "heartbeat"), mb_kv_uint(b, "busy", 1); }
static void b_unknown_keys_ok(mb_t *b) {
    mb_head(b, 3, 1, "heartbeat");
    mb_str(b, "future"), mb_arr(b, 3), mb_uint(b, 1), mb_u8(b, 0xcb), mb_be(b, 0, 8), mb_map(b, 1);
    mb_str(b, "a"), mb_u8(b, 0xc0);
    mb_str(b, "ext"), mb_u8(b, 0xd6), mb_u8(b, 0xff), mb_be(b, 12345, 4); /* timestamp32 */
    mb_kv_uint(b, "req_id", 5); /* another type's key: ignored, not an error */
}
static void b_float_cfg_ok(mb_t *b) {
    mb_head(b, 2, 1, "submit"), mb_kv_uint(b, "req_id", 1);
    mb_str(b, "params"), mb_map(b, 3), mb_kv_str(b, "model", "m");
    mb_str(b, "cfg_scale"), mb_u8(b, 0xca), mb_be(b, 0x40e00000, 4); /* float32 7.0 */
    mb_kv_uint(b, "denoise", 1);                                     /* int for a double */
}

/* The params map is walked by the parameter table: unknown keys, values
 * outside a row's range and unknown enum values are refused. */
static void s_params_head(mb_t *b, uint32_t n) {
    mb_head(b, 2, 1, "submit"), mb_kv_uint(b, "req_id", 1);
    mb_str(b, "params"), mb_map(b, n + 1), mb_kv_str(b, "model", "m");
}
static void b_params_unknown_key(mb_t *b) { s_params_head(b, 1), mb_kv_str(b, "extra_json", "{}"); }
static void b_params_steps_over(mb_t *b) { s_params_head(b, 1), mb_kv_uint(b, "steps", 151); }
static void b_params_width_not_mult(mb_t *b) { s_params_head(b, 1), mb_kv_uint(b, "width", 100); }
static void b_params_bad_sampler(mb_t *b) { s_params_head(b, 1), mb_kv_str(b, "sampler", "warp"); }
static void b_params_steps_as_str(mb_t *b) { s_params_head(b, 1), mb_kv_str(b, "steps", "20"); }

static const reject_case_t s_cases[] = {
    {"params: unknown key", b_params_unknown_key, LF_EPROTO, X_MALFORMED},
    {"params: steps over the table's max", b_params_steps_over, LF_EPROTO, X_MALFORMED},
    {"params: width not a multiple of 8", b_params_width_not_mult, LF_EPROTO, X_MALFORMED},
    {"params: unknown sampler", b_params_bad_sampler, LF_EPROTO, X_MALFORMED},
    {"params: steps as a string", b_params_steps_as_str, LF_EPROTO, X_MALFORMED},
    {"not a map", b_not_map, LF_EPROTO, X_MALFORMED},
    {"nil", b_nil, LF_EPROTO, X_MALFORMED},
    {"reserved byte 0xc1", b_reserved, LF_EPROTO, X_MALFORMED},
    {"empty buffer", b_empty, LF_EPROTO, X_TRUNC},
    {"integer key", b_int_key, LF_EPROTO, X_MALFORMED},
    {"job_id is an int", b_wrong_type, LF_EPROTO, X_MALFORMED},
    {"cancel without job_id", b_missing, LF_EINVAL, X_MISSING},
    {"no version", b_missing_v, LF_EINVAL, X_MISSING},
    {"type not a string", b_t_not_str, LF_EPROTO, X_MALFORMED},
    {"params without model", b_missing_model, LF_EINVAL, X_MISSING},
    {"params not a map", b_params_not_map, LF_EPROTO, X_MALFORMED},
    {"image without png", b_missing_png, LF_EINVAL, X_MISSING},
    {"model without name", b_missing_model_name, LF_EINVAL, X_MISSING},
    {"failed without message", b_failed_no_msg, LF_EINVAL, X_MISSING},
    {"string over MAX_STR", b_long_str, LF_ETOOBIG, X_OVERSIZED},
    {"declared 2 GiB string", b_long_unknown_str, LF_ETOOBIG, X_OVERSIZED},
    {"array over MAX_ITEMS", b_many_images, LF_ETOOBIG, X_OVERSIZED},
    {"array32 of 2^32-1", b_huge_array32, LF_ETOOBIG, X_OVERSIZED},
    {"map32 of 2^32-1", b_huge_map32, LF_ETOOBIG, X_OVERSIZED},
    {"nesting too deep", b_deep, LF_ETOOBIG, X_OVERSIZED},
    {"trailing byte", b_trailing, LF_EPROTO, X_MALFORMED},
    {"two messages", b_two_msgs, LF_EPROTO, X_MALFORMED},
    {"map shorter than its count", b_truncated_map, LF_EPROTO, X_TRUNC},
    {"string shorter than its length", b_truncated_str, LF_EPROTO, X_TRUNC},
    {"count beyond the buffer", b_truncated_count, LF_EPROTO, X_TRUNC},
    {"cut inside a header", b_truncated_header, LF_EPROTO, X_TRUNC},
    {"version 2", b_version2, LF_EVERSION, X_VERSION},
    {"version 0", b_version0, LF_EVERSION, X_VERSION},
    {"negative version", b_version_neg, LF_EPROTO, X_MALFORMED},
    {"unknown type", b_unknown_type, LF_EUNKNOWN, X_UNKNOWN},
    {"type '?'", b_type_qmark, LF_EUNKNOWN, X_UNKNOWN},
    {"NUL inside a string", b_nul_in_str, LF_EPROTO, X_MALFORMED},
    {"invalid UTF-8", b_bad_utf8, LF_EPROTO, X_MALFORMED},
    {"overlong UTF-8", b_overlong_utf8, LF_EPROTO, X_MALFORMED},
    {"UTF-16 surrogate", b_surrogate, LF_EPROTO, X_MALFORMED},
    {"known key twice", b_dup_key, LF_EPROTO, X_MALFORMED},
    {"v twice", b_dup_v, LF_EPROTO, X_MALFORMED},
    {"negative step", b_neg_u32, LF_EPROTO, X_MALFORMED},
    {"step over 2^32", b_u32_overflow, LF_EPROTO, X_MALFORMED},
    {"unknown priority", b_bad_priority, LF_EPROTO, X_MALFORMED},
    {"unknown event", b_bad_event, LF_EPROTO, X_MALFORMED},
    {"preview as string", b_preview_as_str, LF_EPROTO, X_MALFORMED},
    {"busy as int", b_busy_as_int, LF_EPROTO, X_MALFORMED},
    {"unknown keys ignored", b_unknown_keys_ok, 0, X_OK},
    {"float32 and int doubles", b_float_cfg_ok, 0, X_OK},
};

static uint64_t counter(const lf_codec_stats_t *s, expect_t x) {
    switch (x) {
    case X_OK: return s->ok;
    case X_MALFORMED: return s->malformed;
    case X_TRUNC: return s->truncated;
    case X_OVERSIZED: return s->oversized;
    case X_UNKNOWN: return s->unknown;
    case X_VERSION: return s->version;
    case X_MISSING: return s->missing;
    }
    return 0;
}

static uint64_t counter_sum(const lf_codec_stats_t *s) {
    return s->ok + s->malformed + s->truncated + s->oversized + s->unknown + s->version +
           s->missing;
}

static void test_rejection_table(void **state) {
    (void)state;
    lf_codec_stats_t st = {0};
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const reject_case_t *c = &s_cases[i];
        mb_t b = {0};
        c->build(&b);
        lf_msg_t m = {0};
        lf_codec_stats_t before = st;
        int r = lf_msg_decode(b.p, b.len, &m, &st);
        if (r != c->code || counter(&st, c->counter) != counter(&before, c->counter) + 1)
            fail_msg("case '%s': got %s, want %s", c->name, lf_err_name(r), lf_err_name(c->code));
        assert_int_equal(counter_sum(&st), counter_sum(&before) + 1);
        if (r != 0) {
            /* A failed decode leaves the output cleared. */
            lf_msg_t zero = {0};
            assert_memory_equal(&m, &zero, sizeof m);
        }
        lf_msg_clear(&m);
        free(b.p);
    }
    assert_int_equal(counter_sum(&st), sizeof s_cases / sizeof s_cases[0]);
}

static void test_total_size_limit(void **state) {
    (void)state;
    /* The length check comes first: the bytes past a valid prefix are never read. */
    size_t n = (size_t)LF_PROTO_MAX_BYTES + 1;
    uint8_t *big = calloc(n, 1);
    assert_non_null(big);
    lf_codec_stats_t st = {0};
    lf_msg_t m = {0};
    assert_int_equal(lf_msg_decode(big, n, &m, &st), LF_ETOOBIG);
    assert_int_equal(st.oversized, 1);
    free(big);
    assert_int_equal(lf_msg_decode(NULL, 0, &m, &st), LF_EPROTO);
    assert_int_equal(st.truncated, 1);
    assert_int_equal(lf_msg_decode(NULL, 5, &m, &st), LF_EINVAL);
}

static void test_every_prefix(void **state) {
    (void)state;
    lf_codec_stats_t st = {0};
    uint64_t n = 0;
    for (int t = LF_MSG_NONE + 1; t < LF_MSG__COUNT; t++) {
        uint8_t *buf;
        size_t len;
        encode_sample(t, &buf, &len);
        for (size_t cut = 0; cut < len; cut++) {
            /* An exact-size copy so ASan sees any read past the cut. */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, buf, cut);
            lf_msg_t m = {0};
            assert_int_not_equal(lf_msg_decode(p, cut, &m, &st), 0);
            assert_null(m.job_id);
            free(p);
            n++;
        }
        free(buf);
    }
    assert_int_equal(st.truncated, n);
    assert_int_equal(st.ok, 0);
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

/* A decode that succeeds must give a message that encodes again. */
static void decode_and_reencode(const uint8_t *p, size_t len, lf_codec_stats_t *st) {
    lf_msg_t m = {0};
    if (lf_msg_decode(p, len, &m, st) == 0) {
        uint8_t *out;
        size_t olen;
        assert_int_equal(lf_msg_encode(&m, &out, &olen), 0);
        free(out);
    }
    lf_msg_clear(&m);
}

static void test_random_bytes(void **state) {
    (void)state;
    lf_codec_stats_t st = {0};
    for (int i = 0; i < 3000; i++) {
        size_t len = rnd() % 200;
        uint8_t *p = malloc(len ? len : 1);
        for (size_t j = 0; j < len; j++) p[j] = (uint8_t)rnd();
        if (len && (i & 1)) p[0] = 0x80 | (p[0] & 0x0f); /* often a map, to get further */
        decode_and_reencode(p, len, &st);
        free(p);
    }
    assert_int_equal(counter_sum(&st), 3000);
}

static void test_mutated_messages(void **state) {
    (void)state;
    lf_codec_stats_t st = {0};
    int runs = 0;
    for (int t = LF_MSG_NONE + 1; t < LF_MSG__COUNT; t++) {
        uint8_t *buf;
        size_t len;
        encode_sample(t, &buf, &len);
        uint8_t *p = malloc(len);
        for (int i = 0; i < 300; i++) {
            memcpy(p, buf, len);
            int flips = 1 + (int)(rnd() % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = rnd() % len;
                p[at] = (rnd() & 1) ? (uint8_t)rnd() : (uint8_t)(p[at] ^ (1u << (rnd() % 8)));
            }
            decode_and_reencode(p, len, &st);
            runs++;
        }
        free(p);
        free(buf);
    }
    assert_int_equal(counter_sum(&st), (uint64_t)runs);
    assert_true(st.ok > 0);        /* some flips land in payload bytes */
    assert_true(st.malformed > 0); /* and some break the structure */
}

static void test_params_blob(void **state) {
    (void)state;
    lf_msg_t m;
    assert_int_equal(lf_test_sample_msg(LF_MSG_SUBMIT, &m), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(lf_params_encode(&m.params, &buf, &len), 0);
    lf_job_params_t p = {0}, q = {0};
    assert_int_equal(lf_params_decode(buf, len, &p), 0);
    assert_params_eq(&m.params, &p);
    assert_int_equal(lf_params_copy(&q, &p), 0);
    assert_params_eq(&q, &p);
    assert_ptr_not_equal(q.prompt, p.prompt);
    lf_params_clear(&p);
    lf_params_clear(&q);
    assert_null(q.model);
    /* Truncated and trailing-byte blobs are refused; output stays zero. */
    assert_int_equal(lf_params_decode(buf, len - 1, &p), LF_EPROTO);
    assert_null(p.model);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0xc0;
    assert_int_equal(lf_params_decode(longer, len + 1, &p), LF_EPROTO);
    free(longer);
    free(buf);
    lf_job_params_t nomodel = {.prompt = "x"};
    assert_int_equal(lf_params_encode(&nomodel, &buf, &len), LF_EINVAL);
    lf_msg_clear(&m);
    lf_params_clear(NULL);
}

static void test_caps_blob(void **state) {
    (void)state;
    lf_msg_t m;
    assert_int_equal(lf_test_sample_msg(LF_MSG_READY, &m), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(lf_caps_encode(&m.caps, &buf, &len), 0);
    lf_worker_caps_t c = {0};
    assert_int_equal(lf_caps_decode(buf, len, &c), 0);
    assert_caps_eq(&m.caps, &c);
    lf_caps_clear(&c);
    for (size_t cut = 0; cut < len; cut++) assert_int_not_equal(lf_caps_decode(buf, cut, &c), 0);
    free(buf);
    lf_worker_caps_t empty = {0};
    assert_int_equal(lf_caps_encode(&empty, &buf, &len), 0);
    assert_int_equal(lf_caps_decode(buf, len, &c), 0);
    assert_int_equal(c.n_models, 0);
    free(buf);
    lf_caps_clear(&c);
    lf_msg_clear(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_round_trip_all_types),
        cmocka_unit_test(test_minimal_messages),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_rejection_table),
        cmocka_unit_test(test_total_size_limit),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_mutated_messages),
        cmocka_unit_test(test_params_blob),
        cmocka_unit_test(test_caps_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
