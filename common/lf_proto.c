/* lf_proto: the msgpack codec for the wire protocol (see lf_proto.h and
 * docs/protocol.md). The only module that speaks msgpack-c.
 *
 * One table (s_specs) says, for every message type, which keys it carries and
 * which of them are required; the encoder and the decoder both walk it, so
 * they cannot disagree. Decoding happens in two steps: s_scan walks the raw
 * bytes first and enforces every limit (sizes, counts, depth, a budget of
 * objects, truncation, trailing bytes) WITHOUT allocating, because msgpack-c
 * allocates `count * sizeof(msgpack_object)` as soon as it reads an array
 * header: a 5-byte input declaring 2^32 elements would otherwise ask for
 * 64 GiB. Only input that passed the scan reaches msgpack_unpack_next. */
#include "lf_proto.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "lf_error.h"

/* Nesting depth and total object budget of one message. Our deepest message
 * is 4 levels (msg -> caps -> models -> model); unknown keys get some slack. */
#define S_MAX_DEPTH 16
#define S_MAX_OBJECTS (64u * LF_PROTO_MAX_ITEMS)
/* Private result of the scanner: the input ended early. */
#define S_TRUNC 1

/* ---------------------------------------------------------------- names */

static const char *const s_type_names[LF_MSG__COUNT] = {
    [LF_MSG_NONE] = "?",
#define LF__MSG_STR(name, str) [LF_MSG_##name] = str,
    LF_MSG_TYPE_LIST(LF__MSG_STR)
#undef LF__MSG_STR
};
static const char *const s_prio_names[LF_PRIO__COUNT] = {"high", "normal", "low"};
static const char *const s_status_names[LF_JOB__COUNT] = {"queued", "running", "done", "failed",
                                                          "cancelled", "enhancing"};
static const char *const s_event_names[LF_EV__COUNT] = {
    "queued", "started", "progress", "preview", "done", "failed", "cancelled", "enhancing"};

const char *lf_msg_type_name(lf_msg_type_t t) {
    return (t > LF_MSG_NONE && t < LF_MSG__COUNT) ? s_type_names[t] : "?";
}
const char *lf_priority_name(lf_priority_t p) {
    return ((unsigned)p < LF_PRIO__COUNT) ? s_prio_names[p] : "?";
}
const char *lf_job_status_name(lf_job_status_t s) {
    return ((unsigned)s < LF_JOB__COUNT) ? s_status_names[s] : "?";
}
const char *lf_event_name(lf_event_kind_t e) {
    return ((unsigned)e < LF_EV__COUNT) ? s_event_names[e] : "?";
}

/* Index of s (len bytes, not NUL-terminated) in names[0..n), or -1. */
static int s_lookup(const char *const *names, int n, const char *s, size_t len) {
    for (int i = 0; i < n; i++)
        if (names[i] && strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return i;
    return -1;
}

int lf_priority_parse(const char *s, lf_priority_t *out) {
    int i = s ? s_lookup(s_prio_names, LF_PRIO__COUNT, s, strlen(s)) : -1;
    if (i < 0) return LF_EINVAL;
    *out = (lf_priority_t)i;
    return 0;
}
int lf_job_status_parse(const char *s, lf_job_status_t *out) {
    int i = s ? s_lookup(s_status_names, LF_JOB__COUNT, s, strlen(s)) : -1;
    if (i < 0) return LF_EINVAL;
    *out = (lf_job_status_t)i;
    return 0;
}
int lf_event_parse(const char *s, lf_event_kind_t *out) {
    int i = s ? s_lookup(s_event_names, LF_EV__COUNT, s, strlen(s)) : -1;
    if (i < 0) return LF_EINVAL;
    *out = (lf_event_kind_t)i;
    return 0;
}

/* ----------------------------------------------------------- key table */

#define S_KEY_LIST(X)                                                          \
    X(REQ_ID, "req_id")                                                        \
    X(JOB_ID, "job_id")                                                        \
    X(WORKER_ID, "worker_id")                                                  \
    X(PRIORITY, "priority")                                                    \
    X(IDEM_KEY, "idem_key")                                                    \
    X(TTL_S, "ttl_s")                                                          \
    X(MAX_ATTEMPTS, "max_attempts")                                            \
    X(PARAMS, "params")                                                        \
    X(POSITION, "position")                                                    \
    X(DUPLICATE, "duplicate")                                                  \
    X(ATTEMPT, "attempt")                                                      \
    X(INIT_IMAGE, "init_image")                                                \
    X(MASK, "mask")                                                            \
    X(STEP, "step")                                                            \
    X(STEPS, "steps")                                                          \
    X(PREVIEW, "preview")                                                      \
    X(IMAGES, "images")                                                        \
    X(INFO_JSON, "info_json")                                                  \
    X(CODE, "code")                                                            \
    X(MESSAGE, "message")                                                      \
    X(CAPS, "caps")                                                            \
    X(BUSY, "busy")                                                            \
    X(EVENT, "event")                                                          \
    X(STATUS, "status")                                                        \
    X(ENHANCE_MS, "enhance_ms")                                                \
    X(PROMPT, "prompt")                                                        \
    X(ASSIGNS, "assigns")                                                      \
    X(BATCH, "batch")                                                          \
    X(BATCH_OF, "batch_of")                                                    \
    X(JOBS, "jobs")

typedef enum {
#define S_KEY_ENUM(name, str) K_##name,
    S_KEY_LIST(S_KEY_ENUM)
#undef S_KEY_ENUM
    K__COUNT
} s_key_t;
_Static_assert(K__COUNT <= 32, "key masks are 32-bit");

static const char *const s_key_names[K__COUNT] = {
#define S_KEY_STR(name, str) [K_##name] = str,
    S_KEY_LIST(S_KEY_STR)
#undef S_KEY_STR
};

#define B(k) (1u << K_##k)
typedef struct {
    uint32_t allowed;  /* keys this type carries */
    uint32_t required; /* subset that must be present */
} s_spec_t;

static const s_spec_t s_specs[LF_MSG__COUNT] = {
    [LF_MSG_SUBMIT] = {B(REQ_ID) | B(PRIORITY) | B(IDEM_KEY) | B(TTL_S) | B(MAX_ATTEMPTS) | B(PARAMS) |
                           B(ENHANCE_MS),
                       B(REQ_ID) | B(PARAMS)},
    [LF_MSG_ACCEPTED] = {B(REQ_ID) | B(JOB_ID) | B(POSITION) | B(DUPLICATE) | B(STATUS),
                         B(REQ_ID) | B(JOB_ID)},
    [LF_MSG_REPLY] = {B(REQ_ID) | B(CODE) | B(MESSAGE) | B(JOB_ID), B(REQ_ID) | B(CODE)},
    [LF_MSG_CANCEL] = {B(JOB_ID) | B(REQ_ID), B(JOB_ID)},
    [LF_MSG_READY] = {B(WORKER_ID) | B(CAPS) | B(BUSY) | B(JOB_ID) | B(ASSIGNS) | B(JOBS),
                      B(WORKER_ID) | B(CAPS)},
    [LF_MSG_ASSIGN] = {B(JOB_ID) | B(ATTEMPT) | B(PARAMS) | B(INIT_IMAGE) | B(MASK) | B(BATCH) | B(BATCH_OF),
                       B(JOB_ID) | B(ATTEMPT) | B(PARAMS)},
    [LF_MSG_PROGRESS] = {B(JOB_ID) | B(STEP) | B(STEPS) | B(PREVIEW) | B(WORKER_ID),
                         B(JOB_ID) | B(STEP) | B(STEPS)},
    [LF_MSG_RESULT] = {B(JOB_ID) | B(IMAGES) | B(INFO_JSON) | B(WORKER_ID), B(JOB_ID) | B(IMAGES)},
    [LF_MSG_FAILED] = {B(JOB_ID) | B(CODE) | B(MESSAGE) | B(WORKER_ID),
                       B(JOB_ID) | B(CODE) | B(MESSAGE)},
    [LF_MSG_HEARTBEAT] = {B(WORKER_ID) | B(JOB_ID) | B(BUSY) | B(CAPS) | B(ASSIGNS) | B(JOBS), 0},
    [LF_MSG_DISCONNECT] = {B(WORKER_ID) | B(MESSAGE), 0},
    [LF_MSG_EVENT] = {B(JOB_ID) | B(EVENT) | B(STATUS) | B(STEP) | B(STEPS) | B(PREVIEW) | B(CODE) |
                          B(MESSAGE) | B(WORKER_ID),
                      B(JOB_ID) | B(EVENT)},
    [LF_MSG_RESCAN] = {B(REQ_ID) | B(WORKER_ID) | B(CAPS), 0},
    [LF_MSG_ENHANCED] = {B(REQ_ID) | B(JOB_ID) | B(CODE) | B(MESSAGE) | B(PROMPT), B(JOB_ID)},
};
#undef B

/* ------------------------------------------------------ string checks */

/* Strings on the wire are UTF-8 without NUL bytes, so they survive strdup,
 * JSON and logs. Returns true when valid. */
static bool s_utf8_ok(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p++;
        if (c == 0) return false;
        if (c < 0x80) continue;
        int n;
        unsigned min;
        if ((c & 0xe0) == 0xc0) n = 1, min = 0x80, c &= 0x1f;
        else if ((c & 0xf0) == 0xe0) n = 2, min = 0x800, c &= 0x0f;
        else if ((c & 0xf8) == 0xf0) n = 3, min = 0x10000, c &= 0x07;
        else return false;
        if (end - p < n) return false;
        for (int i = 0; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            c = (c << 6) | (p[i] & 0x3f);
        }
        p += n;
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return false;
    }
    return true;
}

/* ============================================================ encoding */

typedef struct {
    msgpack_packer pk;
    bool counting; /* first pass: only count keys and validate */
    uint32_t n;    /* keys counted/written */
    int err;
} s_enc_t;

typedef void (*s_map_fn)(s_enc_t *e, const void *obj);

#define S_PACK(e, call)                                                        \
    do {                                                                       \
        if ((e)->err == 0 && (call) != 0) (e)->err = LF_ENOMEM;                \
    } while (0)

/* Writes a map whose entries fn emits: a counting pass, then the real one. */
static void s_map(s_enc_t *e, s_map_fn fn, const void *obj) {
    s_enc_t c = {.counting = true};
    fn(&c, obj);
    if (c.err) {
        if (!e->err) e->err = c.err;
        return;
    }
    if (e->counting || e->err) return;
    S_PACK(e, msgpack_pack_map(&e->pk, c.n));
    s_enc_t w = {.pk = e->pk};
    fn(&w, obj);
    if (w.err && !e->err) e->err = w.err;
    LF_ASSERT(w.err || w.n == c.n);
}

/* Counts a key; in the writing pass also packs it. True if the caller
 * should now pack the value. */
static bool s_key(s_enc_t *e, const char *key) {
    e->n++;
    if (e->counting || e->err) return false;
    size_t len = strlen(key);
    S_PACK(e, msgpack_pack_str(&e->pk, len));
    S_PACK(e, msgpack_pack_str_body(&e->pk, key, len));
    return e->err == 0;
}

static void s_pack_str(s_enc_t *e, const char *s) {
    size_t len = strlen(s);
    if (e->counting || e->err) return;
    S_PACK(e, msgpack_pack_str(&e->pk, len));
    S_PACK(e, msgpack_pack_str_body(&e->pk, s, len));
}

/* Checks a string against the decoder's rules. */
static bool s_str_check(s_enc_t *e, const char *s) {
    size_t len = strlen(s);
    if (len > LF_PROTO_MAX_STR) {
        if (!e->err) e->err = LF_ETOOBIG;
        return false;
    }
    if (!s_utf8_ok(s, len)) {
        if (!e->err) e->err = LF_EINVAL;
        return false;
    }
    return true;
}

/* Optional string: skipped when NULL; required: NULL is LF_EINVAL. */
static void s_kv_str(s_enc_t *e, const char *key, const char *s, bool required) {
    if (!s) {
        if (required && !e->err) e->err = LF_EINVAL;
        return;
    }
    if (!s_str_check(e, s)) return;
    if (s_key(e, key)) s_pack_str(e, s);
}

static void s_kv_u64(s_enc_t *e, const char *key, uint64_t v) {
    if (s_key(e, key)) S_PACK(e, msgpack_pack_uint64(&e->pk, v));
}
static void s_kv_i64(s_enc_t *e, const char *key, int64_t v) {
    if (s_key(e, key)) S_PACK(e, msgpack_pack_int64(&e->pk, v));
}
static void s_kv_f64(s_enc_t *e, const char *key, double v) {
    if (s_key(e, key)) S_PACK(e, msgpack_pack_double(&e->pk, v));
}
static void s_kv_bool(s_enc_t *e, const char *key, bool v) {
    if (s_key(e, key)) S_PACK(e, v ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk));
}
/* Binary: skipped when empty unless required. */
static void s_kv_bin(s_enc_t *e, const char *key, const lf_bytes_t *b, bool required) {
    if (b->len == 0 && !required) return;
    if (b->len > LF_PROTO_MAX_BYTES) {
        if (!e->err) e->err = LF_ETOOBIG;
        return;
    }
    if (b->len && !b->data) {
        if (!e->err) e->err = LF_EINVAL;
        return;
    }
    if (s_key(e, key)) {
        S_PACK(e, msgpack_pack_bin(&e->pk, b->len));
        S_PACK(e, msgpack_pack_bin_body(&e->pk, b->data, b->len));
    }
}
/* A nested map: s_map validates in the counting pass and writes in the other. */
static void s_kv_map(s_enc_t *e, const char *key, s_map_fn fn, const void *obj) {
    s_key(e, key);
    s_map(e, fn, obj);
}
static bool s_array_header(s_enc_t *e, const char *key, size_t n) {
    if (n > LF_PROTO_MAX_ITEMS) {
        if (!e->err) e->err = LF_ETOOBIG;
        return false;
    }
    bool write = s_key(e, key);
    if (write) S_PACK(e, msgpack_pack_array(&e->pk, n));
    return e->err == 0;
}

/* One LoRA of a LORAS row: {name, weight[, te_weight]} (te_weight left out
 * when it follows weight). */
static void s_enc_lora(s_enc_t *e, const void *obj) {
    const lf_param_lora_t *l = obj;
    s_kv_str(e, "name", l->name, true);
    s_kv_f64(e, "weight", l->weight);
    if (!isnan(l->te_weight)) s_kv_f64(e, "te_weight", l->te_weight);
}

/* The parameters map: one key per table row that has a value (unset strings
 * and empty lists are left out). */
static void s_enc_params(s_enc_t *e, const void *obj) {
    const lf_job_params_t *p = obj;
    const lf_param_def_t *t = lf_params_table();
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &t[i];
        const char *m = (const char *)p + d->offset;
        switch (d->type) {
        case LF_PT_STR:
        case LF_PT_JSON:
        case LF_PT_ENUM: s_kv_str(e, d->name, lf_param_cstr(p, d), d->flags & LF_PF_REQUIRED); break;
        case LF_PT_U32: s_kv_u64(e, d->name, *(const uint32_t *)m); break;
        case LF_PT_I64: s_kv_i64(e, d->name, *(const int64_t *)m); break;
        case LF_PT_F64: s_kv_f64(e, d->name, *(const double *)m); break;
        case LF_PT_BOOL: s_kv_bool(e, d->name, *(const bool *)m); break;
        case LF_PT_LORAS: {
            const lf_param_loras_t *l = lf_param_loras(p, d);
            if (l->n && s_array_header(e, d->name, l->n))
                for (uint32_t k = 0; k < l->n; k++) s_map(e, s_enc_lora, &l->v[k]);
            break;
        }
        }
    }
}

bool lf_model_defaults_any(const lf_model_defaults_t *d) {
    return d && (d->steps || d->has_cfg || d->sampler || d->scheduler || d->width || d->height || d->timesteps ||
                 d->has_weight);
}

void lf_model_defaults_clear(lf_model_defaults_t *d) {
    if (!d) return;
    free(d->sampler);
    free(d->scheduler);
    free(d->timesteps);
    memset(d, 0, sizeof *d);
}

int lf_model_defaults_copy(lf_model_defaults_t *dst, const lf_model_defaults_t *src) {
    *dst = *src;
    dst->sampler = src->sampler ? strdup(src->sampler) : NULL;
    dst->scheduler = src->scheduler ? strdup(src->scheduler) : NULL;
    dst->timesteps = src->timesteps ? strdup(src->timesteps) : NULL;
    if ((src->sampler && !dst->sampler) || (src->scheduler && !dst->scheduler) ||
        (src->timesteps && !dst->timesteps)) {
        lf_model_defaults_clear(dst);
        return LF_ENOMEM;
    }
    return 0;
}

/* A model's recommended settings: only what it says. */
static void s_enc_defaults(s_enc_t *e, const void *obj) {
    const lf_model_defaults_t *d = obj;
    if (d->steps) s_kv_u64(e, "steps", d->steps);
    if (d->has_cfg) s_kv_f64(e, "cfg", d->cfg_scale);
    if (d->sampler) s_kv_str(e, "sampler", d->sampler, false);
    if (d->scheduler) s_kv_str(e, "scheduler", d->scheduler, false);
    if (d->width) s_kv_u64(e, "width", d->width);
    if (d->height) s_kv_u64(e, "height", d->height);
    if (d->timesteps) s_kv_str(e, "timesteps", d->timesteps, false);
    if (d->has_weight) s_kv_f64(e, "weight", d->weight);
}

static void s_enc_model(s_enc_t *e, const void *obj) {
    const lf_model_info_t *m = obj;
    s_kv_str(e, "name", m->name, true);
    s_kv_str(e, "kind", m->kind, false);
    if (m->resolution) s_kv_u64(e, "res", m->resolution);
    if (m->preview) s_kv_str(e, "preview", m->preview, false);
    if (m->inpainting) s_kv_bool(e, "inpaint", true);
    if (lf_model_defaults_any(&m->defaults)) s_kv_map(e, "defaults", s_enc_defaults, &m->defaults);
}

static void s_enc_job_ref(s_enc_t *e, const void *obj) {
    const lf_job_ref_t *j = obj;
    s_kv_str(e, "job_id", j->id, true);
    s_kv_u64(e, "attempt", j->attempt);
}

static void s_enc_lora_info(s_enc_t *e, const void *obj) {
    const lf_lora_info_t *l = obj;
    s_kv_str(e, "name", l->name, true);
    s_kv_str(e, "alias", l->alias, false);
    s_kv_str(e, "path", l->path, false);
    s_kv_str(e, "hash", l->hash, false);
    if (lf_model_defaults_any(&l->defaults)) s_kv_map(e, "defaults", s_enc_defaults, &l->defaults);
}


/* A list of names under key (none: the key is left out). */
static void s_enc_names(s_enc_t *e, const char *key, char *const *v, size_t n) {
    if (n && !v) {
        if (!e->err) e->err = LF_EINVAL;
        return;
    }
    if (n && s_array_header(e, key, n))
        for (size_t i = 0; i < n; i++) {
            if (!v[i]) {
                if (!e->err) e->err = LF_EINVAL;
                return;
            }
            if (s_str_check(e, v[i])) s_pack_str(e, v[i]);
        }
}

static void s_enc_vae_info(s_enc_t *e, const void *obj) {
    const lf_vae_info_t *v = obj;
    s_kv_str(e, "name", v->name, true);
    s_kv_str(e, "kind", v->kind, false);
    if (v->latent) s_kv_u64(e, "latent", v->latent);
}

static void s_enc_caps(s_enc_t *e, const void *obj) {
    const lf_worker_caps_t *c = obj;
    s_kv_str(e, "host", c->host, false);
    s_kv_i64(e, "pid", c->pid);
    s_kv_str(e, "device_kind", c->device_kind, false);
    s_kv_str(e, "device_name", c->device_name, false);
    s_kv_u64(e, "memory_bytes", c->memory_bytes);
    s_kv_u64(e, "max_pixels", c->max_pixels);
    if ((c->n_models && !c->models) || (c->n_resident && !c->resident) || (c->n_vaes && !c->vaes)) {
        if (!e->err) e->err = LF_EINVAL;
        return;
    }
    if (s_array_header(e, "models", c->n_models))
        for (size_t i = 0; i < c->n_models; i++) s_map(e, s_enc_model, &c->models[i]);
    if (s_array_header(e, "resident", c->n_resident))
        for (size_t i = 0; i < c->n_resident; i++) {
            if (!c->resident[i]) {
                if (!e->err) e->err = LF_EINVAL;
                return;
            }
            if (s_str_check(e, c->resident[i])) s_pack_str(e, c->resident[i]);
        }
    if (c->n_vaes && s_array_header(e, "vaes", c->n_vaes))
        for (size_t i = 0; i < c->n_vaes; i++) {
            if (!c->vaes[i]) {
                if (!e->err) e->err = LF_EINVAL;
                return;
            }
            if (s_str_check(e, c->vaes[i])) s_pack_str(e, c->vaes[i]);
        }
    if (c->n_vae_info && !c->vae_info) {
        if (!e->err) e->err = LF_EINVAL;
        return;
    }
    if (c->n_vae_info && s_array_header(e, "vae_info", c->n_vae_info))
        for (size_t i = 0; i < c->n_vae_info; i++) s_map(e, s_enc_vae_info, &c->vae_info[i]);
    s_kv_u64(e, "jobs_done", c->jobs_done);
    if (c->n_loras && !c->loras) {
        if (!e->err) e->err = LF_EINVAL;
        return;
    }
    if (c->n_loras && s_array_header(e, "loras", c->n_loras))
        for (size_t i = 0; i < c->n_loras; i++) s_map(e, s_enc_lora_info, &c->loras[i]);
    if (c->lora_set && *c->lora_set) s_kv_str(e, "lora_set", c->lora_set, false);
    s_enc_names(e, "upscalers", c->upscalers, c->n_upscalers);
    s_enc_names(e, "ad_models", c->ad_models, c->n_ad_models);
    s_kv_str(e, "precision", c->precision, false);
    if (c->batch_max > 1) s_kv_u64(e, "batch_max", c->batch_max);
    if (c->batched) s_kv_u64(e, "batched", c->batched);
    if (c->threads) s_kv_u64(e, "threads", c->threads);
    s_kv_str(e, "pinning", c->pinning, false);
    s_kv_str(e, "cpus", c->cpus, false);
}

static void s_enc_image(s_enc_t *e, const void *obj) {
    const lf_image_out_t *im = obj;
    s_kv_bin(e, "png", &im->png, true);
    s_kv_i64(e, "seed", im->seed);
    s_kv_u64(e, "width", im->width);
    s_kv_u64(e, "height", im->height);
}

static bool s_caps_empty(const lf_worker_caps_t *c) {
    if (c->n_ad_models) return false;
    return !c->host && !c->pid && !c->device_kind && !c->device_name && !c->memory_bytes &&
           !c->max_pixels && !c->n_models && !c->n_resident && !c->n_vaes && !c->n_vae_info && !c->jobs_done &&
           !c->n_loras && !(c->lora_set && *c->lora_set) && !c->n_upscalers && !c->precision &&
           c->batch_max <= 1 && !c->batched && !c->threads && !c->pinning && !c->cpus;
}

/* The value of key k of msg, as the spec of msg->type allows. */
static void s_enc_key(s_enc_t *e, s_key_t k, const lf_msg_t *m, bool req) {
    const char *name = s_key_names[k];
    switch (k) {
    case K_REQ_ID: s_kv_u64(e, name, m->req_id); break;
    case K_JOB_ID: s_kv_str(e, name, m->job_id, req); break;
    case K_WORKER_ID: s_kv_str(e, name, m->worker_id, req); break;
    case K_PRIORITY:
        if ((unsigned)m->priority >= LF_PRIO__COUNT) {
            if (!e->err) e->err = LF_EINVAL;
            break;
        }
        if (s_key(e, name)) s_pack_str(e, s_prio_names[m->priority]);
        break;
    case K_IDEM_KEY: s_kv_str(e, name, m->idem_key, req); break;
    case K_TTL_S: s_kv_u64(e, name, m->ttl_s); break;
    case K_MAX_ATTEMPTS: s_kv_u64(e, name, m->max_attempts); break;
    case K_PARAMS: s_kv_map(e, name, s_enc_params, &m->params); break;
    case K_POSITION: s_kv_i64(e, name, m->position); break;
    case K_DUPLICATE: s_kv_bool(e, name, m->duplicate); break;
    case K_ATTEMPT: s_kv_u64(e, name, m->attempt); break;
    case K_INIT_IMAGE: s_kv_bin(e, name, &m->init_image, req); break;
    case K_MASK: s_kv_bin(e, name, &m->mask, req); break;
    case K_STEP: s_kv_u64(e, name, m->step); break;
    case K_STEPS: s_kv_u64(e, name, m->steps); break;
    case K_PREVIEW: s_kv_bin(e, name, &m->preview, req); break;
    case K_IMAGES:
        if (m->n_images && !m->images) {
            if (!e->err) e->err = LF_EINVAL;
            break;
        }
        if (s_array_header(e, name, m->n_images))
            for (size_t i = 0; i < m->n_images; i++) s_map(e, s_enc_image, &m->images[i]);
        break;
    case K_INFO_JSON: s_kv_str(e, name, m->info_json, req); break;
    case K_CODE: s_kv_i64(e, name, m->code); break;
    case K_MESSAGE: s_kv_str(e, name, m->message, req); break;
    case K_CAPS:
        if (req || !s_caps_empty(&m->caps)) s_kv_map(e, name, s_enc_caps, &m->caps);
        break;
    case K_BUSY: s_kv_bool(e, name, m->busy); break;
    case K_EVENT:
        if ((unsigned)m->event >= LF_EV__COUNT) {
            if (!e->err) e->err = LF_EINVAL;
            break;
        }
        if (s_key(e, name)) s_pack_str(e, s_event_names[m->event]);
        break;
    case K_STATUS:
        if ((unsigned)m->status >= LF_JOB__COUNT) {
            if (!e->err) e->err = LF_EINVAL;
            break;
        }
        if (s_key(e, name)) s_pack_str(e, s_status_names[m->status]);
        break;
    case K_ENHANCE_MS:
        if (m->enhance_ms) s_kv_u64(e, name, m->enhance_ms);
        break;
    case K_PROMPT: s_kv_str(e, name, m->prompt, req); break;
    case K_ASSIGNS:
        if (m->has_assigns) s_kv_u64(e, name, m->assigns);
        break;
    case K_BATCH:
        if (m->batch > 1) s_kv_u64(e, name, m->batch);
        break;
    case K_BATCH_OF: s_kv_str(e, name, m->batch_of, req); break;
    case K_JOBS:
        if (m->n_jobs && !m->jobs) {
            if (!e->err) e->err = LF_EINVAL;
            break;
        }
        if (m->n_jobs && s_array_header(e, name, m->n_jobs))
            for (size_t i = 0; i < m->n_jobs; i++) s_map(e, s_enc_job_ref, &m->jobs[i]);
        break;
    case K__COUNT: LF_ASSERT(0);
    }
}

static void s_enc_msg(s_enc_t *e, const void *obj) {
    const lf_msg_t *m = obj;
    const s_spec_t *spec = &s_specs[m->type];
    s_kv_u64(e, "v", LF_PROTO_VERSION);
    if (s_key(e, "t")) s_pack_str(e, s_type_names[m->type]);
    for (int k = 0; k < K__COUNT; k++)
        if (spec->allowed & (1u << k)) s_enc_key(e, (s_key_t)k, m, (spec->required >> k) & 1u);
}

/* Runs a top-level map encoder into a fresh malloc'd buffer. */
static int s_encode_top(s_map_fn fn, const void *obj, uint8_t **out, size_t *out_len) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_enc_t e = {0};
    msgpack_packer_init(&e.pk, &sb, msgpack_sbuffer_write);
    s_map(&e, fn, obj);
    if (!e.err && sb.size > LF_PROTO_MAX_BYTES) e.err = LF_ETOOBIG;
    if (e.err) {
        msgpack_sbuffer_destroy(&sb);
        return e.err;
    }
    *out_len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

int lf_msg_encode(const lf_msg_t *msg, uint8_t **out, size_t *out_len) {
    if (!msg || !out || !out_len) return LF_EINVAL;
    if (msg->type <= LF_MSG_NONE || msg->type >= LF_MSG__COUNT) return LF_EINVAL;
    return s_encode_top(s_enc_msg, msg, out, out_len);
}

int lf_params_encode(const lf_job_params_t *p, uint8_t **out, size_t *out_len) {
    if (!p || !out || !out_len) return LF_EINVAL;
    return s_encode_top(s_enc_params, p, out, out_len);
}

int lf_caps_encode(const lf_worker_caps_t *c, uint8_t **out, size_t *out_len) {
    if (!c || !out || !out_len) return LF_EINVAL;
    return s_encode_top(s_enc_caps, c, out, out_len);
}

/* ======================================================= raw-byte scan */

typedef struct {
    const uint8_t *p;
    size_t len, off;
    size_t objects;
} s_scan_t;

/* Reads an n-byte big-endian unsigned; S_TRUNC if the input ends first. */
static int s_be(s_scan_t *s, int n, uint64_t *v) {
    if (s->len - s->off < (size_t)n) return S_TRUNC;
    uint64_t x = 0;
    for (int i = 0; i < n; i++) x = (x << 8) | s->p[s->off + i];
    s->off += (size_t)n;
    *v = x;
    return 0;
}

static int s_skip(s_scan_t *s, uint64_t n) {
    if (s->len - s->off < n) return S_TRUNC;
    s->off += (size_t)n;
    return 0;
}

/* Validates one msgpack object at s->off and moves past it. Returns 0,
 * S_TRUNC, LF_EPROTO (0xc1, too deep) or LF_ETOOBIG (limits). */
static int s_scan(s_scan_t *s, int depth) {
    if (depth > S_MAX_DEPTH) return LF_ETOOBIG;
    if (++s->objects > S_MAX_OBJECTS) return LF_ETOOBIG;
    if (s->off >= s->len) return S_TRUNC;
    uint8_t b = s->p[s->off++];
    uint64_t n = 0;
    int r = 0, width;
    enum { SCALAR, STR, BIN, EXT, ARRAY, MAP } kind = SCALAR;

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 0;
    if (b >= 0x80 && b <= 0x8f) n = b & 0x0f, kind = MAP;
    else if (b >= 0x90 && b <= 0x9f) n = b & 0x0f, kind = ARRAY;
    else if (b >= 0xa0 && b <= 0xbf) n = b & 0x1f, kind = STR;
    else switch (b) {
        case 0xc4: case 0xc5: case 0xc6:
            width = 1 << (b - 0xc4), kind = BIN, r = s_be(s, width, &n);
            break;
        case 0xc7: case 0xc8: case 0xc9:
            width = 1 << (b - 0xc7), kind = EXT, r = s_be(s, width, &n);
            break;
        case 0xca: return s_skip(s, 4);
        case 0xcb: return s_skip(s, 8);
        case 0xcc: case 0xcd: case 0xce: case 0xcf: return s_skip(s, 1u << (b - 0xcc));
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: return s_skip(s, 1u << (b - 0xd0));
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            return s_skip(s, 1u + (1u << (b - 0xd4)));
        case 0xd9: case 0xda: case 0xdb:
            width = 1 << (b - 0xd9), kind = STR, r = s_be(s, width, &n);
            break;
        case 0xdc: case 0xdd: width = 2 << (b - 0xdc), kind = ARRAY, r = s_be(s, width, &n); break;
        case 0xde: case 0xdf: width = 2 << (b - 0xde), kind = MAP, r = s_be(s, width, &n); break;
        default: return LF_EPROTO; /* 0xc1: never used */
        }
    if (r) return r;
    switch (kind) {
    case STR:
        if (n > LF_PROTO_MAX_STR) return LF_ETOOBIG;
        return s_skip(s, n);
    case BIN:
        if (n > LF_PROTO_MAX_BYTES) return LF_ETOOBIG;
        return s_skip(s, n);
    case EXT:
        if (n > LF_PROTO_MAX_STR) return LF_ETOOBIG;
        return s_skip(s, n + 1);
    case ARRAY:
    case MAP: {
        if (n > LF_PROTO_MAX_ITEMS) return LF_ETOOBIG;
        uint64_t items = kind == MAP ? 2 * n : n;
        /* Every element takes at least one byte: a count beyond what is
         * left can only be a truncated buffer. Checked before recursing. */
        if (items > s->len - s->off) return S_TRUNC;
        for (uint64_t i = 0; i < items; i++)
            if ((r = s_scan(s, depth + 1)) != 0) return r;
        return 0;
    }
    case SCALAR: break;
    }
    return 0;
}

/* ======================================================= object decode */

typedef const msgpack_object *s_obj_t;

/* Finds known keys of a map: fields[i] = value for names[i] or NULL.
 * Keys must be strings; a known key given twice is malformed. */
static int s_fields(s_obj_t map, const char *const *names, int n, s_obj_t *fields) {
    if (map->type != MSGPACK_OBJECT_MAP) return LF_EPROTO;
    for (int i = 0; i < n; i++) fields[i] = NULL;
    for (uint32_t j = 0; j < map->via.map.size; j++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[j];
        if (kv->key.type != MSGPACK_OBJECT_STR) return LF_EPROTO;
        int i = s_lookup(names, n, kv->key.via.str.ptr, kv->key.via.str.size);
        if (i < 0) continue; /* unknown keys are ignored */
        if (fields[i]) return LF_EPROTO;
        fields[i] = &kv->val;
    }
    return 0;
}

static int s_get_str(s_obj_t o, char **out) {
    if (o->type != MSGPACK_OBJECT_STR) return LF_EPROTO;
    size_t len = o->via.str.size;
    if (len > LF_PROTO_MAX_STR) return LF_ETOOBIG;
    if (!s_utf8_ok(o->via.str.ptr, len)) return LF_EPROTO;
    char *s = malloc(len + 1);
    if (!s) return LF_ENOMEM;
    memcpy(s, o->via.str.ptr, len);
    s[len] = '\0';
    free(*out);
    *out = s;
    return 0;
}

static int s_get_bin(s_obj_t o, lf_bytes_t *out) {
    if (o->type != MSGPACK_OBJECT_BIN) return LF_EPROTO;
    size_t len = o->via.bin.size;
    uint8_t *d = malloc(len ? len : 1);
    if (!d) return LF_ENOMEM;
    if (len) memcpy(d, o->via.bin.ptr, len);
    free(out->data);
    out->data = d;
    out->len = len;
    return 0;
}

static int s_get_int(s_obj_t o, int64_t lo, uint64_t hi, int64_t *ival, uint64_t *uval) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > hi) return LF_EPROTO;
        if (uval) *uval = o->via.u64;
        if (ival) *ival = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (o->via.i64 < lo) return LF_EPROTO;
        if (ival) *ival = o->via.i64;
        return 0;
    }
    return LF_EPROTO;
}
static int s_get_u32(s_obj_t o, uint32_t *out) {
    uint64_t v = 0;
    int r = s_get_int(o, 0, UINT32_MAX, NULL, &v);
    if (!r) *out = (uint32_t)v;
    return r;
}
static int s_get_u64(s_obj_t o, uint64_t *out) { return s_get_int(o, 0, UINT64_MAX, NULL, out); }
static int s_get_i64(s_obj_t o, int64_t *out) { return s_get_int(o, INT64_MIN, INT64_MAX, out, NULL); }
static int s_get_i32(s_obj_t o, int32_t *out) {
    int64_t v = 0;
    int r = s_get_int(o, INT32_MIN, INT32_MAX, &v, NULL);
    if (!r) *out = (int32_t)v;
    return r;
}
static int s_get_f64(s_obj_t o, double *out) {
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return 0;
    default: return LF_EPROTO;
    }
}
static int s_get_bool(s_obj_t o, bool *out) {
    if (o->type != MSGPACK_OBJECT_BOOLEAN) return LF_EPROTO;
    *out = o->via.boolean;
    return 0;
}
static int s_get_enum(s_obj_t o, const char *const *names, int n, int *out) {
    if (o->type != MSGPACK_OBJECT_STR) return LF_EPROTO;
    int i = s_lookup(names, n, o->via.str.ptr, o->via.str.size);
    if (i < 0) return LF_EPROTO;
    *out = i;
    return 0;
}

#define S_TRY(expr)                                                            \
    do {                                                                       \
        int s_r_ = (expr);                                                     \
        if (s_r_) return s_r_;                                                 \
    } while (0)
/* Optional field: decoded only when present. */
#define S_OPT(f, expr)                                                         \
    do {                                                                       \
        if (f) S_TRY(expr);                                                    \
    } while (0)

static const char *const s_lora_keys[3] = {"name", "weight", "te_weight"};

/* A LORAS row: an array of {name, weight[, te_weight]}, each entry checked
 * as it is added. */
static int s_dec_loras(s_obj_t a, lf_job_params_t *p, const lf_param_def_t *d) {
    if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        s_obj_t lf[3];
        const msgpack_object *o = &a->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > 3) return LF_EPROTO;
        S_TRY(s_fields(o, s_lora_keys, 3, lf));
        if (!lf[0] || !lf[1]) return LF_EINVAL;
        char *name = NULL;
        double w = 0, te = NAN;
        S_TRY(s_get_str(lf[0], &name));
        int rc = s_get_f64(lf[1], &w);
        if (!rc && lf[2]) rc = s_get_f64(lf[2], &te);
        if (!rc) rc = lf_param_loras_add(p, d, name, w, te) ? LF_EPROTO : 0;
        free(name);
        S_TRY(rc);
    }
    return 0;
}

/* The parameters map, walked by the table: unknown keys are refused (the
 * table is the contract), each value is checked against its row. */
static int s_dec_params(s_obj_t o, lf_job_params_t *p) {
    static const char *const names[LF_P__COUNT] = {
#define S_PARAM_NAME(id, ...) #id,
        LF_PARAM_LIST(S_PARAM_NAME)
#undef S_PARAM_NAME
    };
    const lf_param_def_t *t = lf_params_table();
    if (o->type != MSGPACK_OBJECT_MAP) return LF_EPROTO;
    for (uint32_t j = 0; j < o->via.map.size; j++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[j];
        if (kv->key.type != MSGPACK_OBJECT_STR ||
            s_lookup(names, LF_P__COUNT, kv->key.via.str.ptr, kv->key.via.str.size) < 0)
            return LF_EPROTO;
    }
    s_obj_t f[LF_P__COUNT];
    S_TRY(s_fields(o, names, LF_P__COUNT, f));
    for (int i = 0; i < LF_P__COUNT; i++) {
        const lf_param_def_t *d = &t[i];
        char *m = (char *)p + d->offset;
        if (!f[i]) {
            if (d->flags & LF_PF_REQUIRED) return LF_EINVAL;
            continue;
        }
        switch (d->type) {
        case LF_PT_STR:
        case LF_PT_JSON:
        case LF_PT_ENUM: S_TRY(s_get_str(f[i], lf_param_str(p, d))); break;
        case LF_PT_U32: S_TRY(s_get_u32(f[i], (uint32_t *)m)); break;
        case LF_PT_I64: S_TRY(s_get_i64(f[i], (int64_t *)m)); break;
        case LF_PT_F64: S_TRY(s_get_f64(f[i], (double *)m)); break;
        case LF_PT_BOOL: S_TRY(s_get_bool(f[i], (bool *)m)); break;
        case LF_PT_LORAS: S_TRY(s_dec_loras(f[i], p, d)); break;
        }
    }
    return lf_params_check(p, true, NULL) ? LF_EPROTO : 0;
}

enum { C_HOST, C_PID, C_DKIND, C_DNAME, C_MEM, C_MAXPIX, C_MODELS, C_RESIDENT, C_DONE, C_VAES,
       C_LORAS, C_LORASET, C_UPSCALERS, C_ADMODELS, C_PRECISION, C_BATCHMAX, C_BATCHED,
       C_VAEINFO, C_THREADS, C_PINNING, C_CPUS, C__COUNT };
static const char *const s_caps_keys[C__COUNT] = {"host", "pid", "device_kind", "device_name",
                                                   "memory_bytes", "max_pixels", "models",
                                                   "resident", "jobs_done", "vaes", "loras",
                                                   "lora_set", "upscalers", "ad_models", "precision",
                                                   "batch_max", "batched", "vae_info", "threads",
                                                   "pinning", "cpus"};
static const char *const s_vae_info_keys[3] = {"name", "kind", "latent"};
static const char *const s_lora_info_keys[5] = {"name", "alias", "path", "hash", "defaults"};
static const char *const s_model_keys[6] = {"name", "kind", "res", "preview", "inpaint", "defaults"};
static const char *const s_defaults_keys[8] = {"steps", "cfg", "sampler", "scheduler", "width",
                                               "height", "timesteps", "weight"};


static int s_dec_defaults(s_obj_t o, lf_model_defaults_t *d) {
    s_obj_t f[8];
    S_TRY(s_fields(o, s_defaults_keys, 8, f));
    S_OPT(f[0], s_get_u32(f[0], &d->steps));
    if (f[1]) {
        S_TRY(s_get_f64(f[1], &d->cfg_scale));
        d->has_cfg = true;
    }
    S_OPT(f[2], s_get_str(f[2], &d->sampler));
    S_OPT(f[3], s_get_str(f[3], &d->scheduler));
    S_OPT(f[4], s_get_u32(f[4], &d->width));
    S_OPT(f[5], s_get_u32(f[5], &d->height));
    S_OPT(f[6], s_get_str(f[6], &d->timesteps));
    if (f[7]) {
        S_TRY(s_get_f64(f[7], &d->weight));
        d->has_weight = true;
    }
    return 0;
}

/* An array of strings into *out / *n (n counts what was filled, so
 * lf_caps_clear frees it on failure). */
static int s_dec_strs(s_obj_t a, char ***out, size_t *n) {
    if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
    if (a->via.array.size) {
        *out = calloc(a->via.array.size, sizeof **out);
        if (!*out) return LF_ENOMEM;
    }
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        *n = i + 1;
        S_TRY(s_get_str(&a->via.array.ptr[i], &(*out)[i]));
    }
    return 0;
}

static int s_dec_caps(s_obj_t o, lf_worker_caps_t *c) {
    s_obj_t f[C__COUNT];
    S_TRY(s_fields(o, s_caps_keys, C__COUNT, f));
    S_OPT(f[C_HOST], s_get_str(f[C_HOST], &c->host));
    S_OPT(f[C_PID], s_get_i32(f[C_PID], &c->pid));
    S_OPT(f[C_DKIND], s_get_str(f[C_DKIND], &c->device_kind));
    S_OPT(f[C_DNAME], s_get_str(f[C_DNAME], &c->device_name));
    S_OPT(f[C_MEM], s_get_u64(f[C_MEM], &c->memory_bytes));
    S_OPT(f[C_MAXPIX], s_get_u64(f[C_MAXPIX], &c->max_pixels));
    S_OPT(f[C_DONE], s_get_u64(f[C_DONE], &c->jobs_done));
    if (f[C_MODELS]) {
        s_obj_t a = f[C_MODELS];
        if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
        if (a->via.array.size) {
            c->models = calloc(a->via.array.size, sizeof *c->models);
            if (!c->models) return LF_ENOMEM;
        }
        for (uint32_t i = 0; i < a->via.array.size; i++) {
            s_obj_t mf[6];
            S_TRY(s_fields(&a->via.array.ptr[i], s_model_keys, 6, mf));
            c->n_models = i + 1; /* so lf_caps_clear frees what was filled */
            if (!mf[0]) return LF_EINVAL;
            S_TRY(s_get_str(mf[0], &c->models[i].name));
            S_OPT(mf[1], s_get_str(mf[1], &c->models[i].kind));
            S_OPT(mf[2], s_get_u32(mf[2], &c->models[i].resolution));
            S_OPT(mf[3], s_get_str(mf[3], &c->models[i].preview));
            S_OPT(mf[4], s_get_bool(mf[4], &c->models[i].inpainting));
            S_OPT(mf[5], s_dec_defaults(mf[5], &c->models[i].defaults));
        }
    }
    if (f[C_VAES]) S_TRY(s_dec_strs(f[C_VAES], &c->vaes, &c->n_vaes));
    if (f[C_VAEINFO]) {
        s_obj_t a = f[C_VAEINFO];
        if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
        if (a->via.array.size) {
            c->vae_info = calloc(a->via.array.size, sizeof *c->vae_info);
            if (!c->vae_info) return LF_ENOMEM;
        }
        for (uint32_t i = 0; i < a->via.array.size; i++) {
            s_obj_t vf[3];
            S_TRY(s_fields(&a->via.array.ptr[i], s_vae_info_keys, 3, vf));
            c->n_vae_info = i + 1;
            if (!vf[0]) return LF_EINVAL;
            S_TRY(s_get_str(vf[0], &c->vae_info[i].name));
            S_OPT(vf[1], s_get_str(vf[1], &c->vae_info[i].kind));
            S_OPT(vf[2], s_get_u32(vf[2], &c->vae_info[i].latent));
        }
    }
    if (f[C_UPSCALERS]) S_TRY(s_dec_strs(f[C_UPSCALERS], &c->upscalers, &c->n_upscalers));
    if (f[C_ADMODELS]) S_TRY(s_dec_strs(f[C_ADMODELS], &c->ad_models, &c->n_ad_models));
    if (f[C_RESIDENT]) {
        s_obj_t a = f[C_RESIDENT];
        if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
        if (a->via.array.size) {
            c->resident = calloc(a->via.array.size, sizeof *c->resident);
            if (!c->resident) return LF_ENOMEM;
        }
        for (uint32_t i = 0; i < a->via.array.size; i++) {
            c->n_resident = i + 1;
            S_TRY(s_get_str(&a->via.array.ptr[i], &c->resident[i]));
        }
    }
    if (f[C_LORAS]) {
        s_obj_t a = f[C_LORAS];
        if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
        if (a->via.array.size) {
            c->loras = calloc(a->via.array.size, sizeof *c->loras);
            if (!c->loras) return LF_ENOMEM;
        }
        for (uint32_t i = 0; i < a->via.array.size; i++) {
            s_obj_t lf[5];
            S_TRY(s_fields(&a->via.array.ptr[i], s_lora_info_keys, 5, lf));
            c->n_loras = i + 1;
            if (!lf[0]) return LF_EINVAL;
            S_TRY(s_get_str(lf[0], &c->loras[i].name));
            S_OPT(lf[1], s_get_str(lf[1], &c->loras[i].alias));
            S_OPT(lf[2], s_get_str(lf[2], &c->loras[i].path));
            S_OPT(lf[3], s_get_str(lf[3], &c->loras[i].hash));
            S_OPT(lf[4], s_dec_defaults(lf[4], &c->loras[i].defaults));
        }
    }
    S_OPT(f[C_LORASET], s_get_str(f[C_LORASET], &c->lora_set));
    S_OPT(f[C_PRECISION], s_get_str(f[C_PRECISION], &c->precision));
    S_OPT(f[C_BATCHMAX], s_get_u32(f[C_BATCHMAX], &c->batch_max));
    S_OPT(f[C_BATCHED], s_get_u64(f[C_BATCHED], &c->batched));
    S_OPT(f[C_THREADS], s_get_u32(f[C_THREADS], &c->threads));
    S_OPT(f[C_PINNING], s_get_str(f[C_PINNING], &c->pinning));
    S_OPT(f[C_CPUS], s_get_str(f[C_CPUS], &c->cpus));
    return 0;
}

static const char *const s_image_keys[4] = {"png", "seed", "width", "height"};

static int s_dec_images(s_obj_t a, lf_msg_t *m) {
    if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
    if (a->via.array.size) {
        m->images = calloc(a->via.array.size, sizeof *m->images);
        if (!m->images) return LF_ENOMEM;
    }
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        s_obj_t f[4];
        lf_image_out_t *im = &m->images[i];
        S_TRY(s_fields(&a->via.array.ptr[i], s_image_keys, 4, f));
        m->n_images = i + 1;
        if (!f[0]) return LF_EINVAL;
        S_TRY(s_get_bin(f[0], &im->png));
        S_OPT(f[1], s_get_i64(f[1], &im->seed));
        S_OPT(f[2], s_get_u32(f[2], &im->width));
        S_OPT(f[3], s_get_u32(f[3], &im->height));
    }
    return 0;
}

static const char *const s_job_ref_keys[2] = {"job_id", "attempt"};

static int s_dec_jobs(s_obj_t a, lf_msg_t *m) {
    if (a->type != MSGPACK_OBJECT_ARRAY) return LF_EPROTO;
    if (a->via.array.size) {
        m->jobs = calloc(a->via.array.size, sizeof *m->jobs);
        if (!m->jobs) return LF_ENOMEM;
    }
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        s_obj_t f[2];
        S_TRY(s_fields(&a->via.array.ptr[i], s_job_ref_keys, 2, f));
        m->n_jobs = i + 1;
        if (!f[0]) return LF_EINVAL;
        S_TRY(s_get_str(f[0], &m->jobs[i].id));
        S_OPT(f[1], s_get_u32(f[1], &m->jobs[i].attempt));
    }
    return 0;
}

static int s_dec_key(s_key_t k, s_obj_t o, lf_msg_t *m) {
    int v = 0, r;
    switch (k) {
    case K_REQ_ID: return s_get_u64(o, &m->req_id);
    case K_JOB_ID: return s_get_str(o, &m->job_id);
    case K_WORKER_ID: return s_get_str(o, &m->worker_id);
    case K_PRIORITY:
        if ((r = s_get_enum(o, s_prio_names, LF_PRIO__COUNT, &v)) == 0) m->priority = v;
        return r;
    case K_IDEM_KEY: return s_get_str(o, &m->idem_key);
    case K_TTL_S: return s_get_u32(o, &m->ttl_s);
    case K_MAX_ATTEMPTS: return s_get_u32(o, &m->max_attempts);
    case K_PARAMS: return s_dec_params(o, &m->params);
    case K_POSITION: return s_get_i64(o, &m->position);
    case K_DUPLICATE: return s_get_bool(o, &m->duplicate);
    case K_ATTEMPT: return s_get_u32(o, &m->attempt);
    case K_INIT_IMAGE: return s_get_bin(o, &m->init_image);
    case K_MASK: return s_get_bin(o, &m->mask);
    case K_STEP: return s_get_u32(o, &m->step);
    case K_STEPS: return s_get_u32(o, &m->steps);
    case K_PREVIEW: return s_get_bin(o, &m->preview);
    case K_IMAGES: return s_dec_images(o, m);
    case K_INFO_JSON: return s_get_str(o, &m->info_json);
    case K_CODE: return s_get_i32(o, &m->code);
    case K_MESSAGE: return s_get_str(o, &m->message);
    case K_CAPS: return s_dec_caps(o, &m->caps);
    case K_BUSY: return s_get_bool(o, &m->busy);
    case K_EVENT:
        if ((r = s_get_enum(o, s_event_names, LF_EV__COUNT, &v)) == 0) m->event = v;
        return r;
    case K_STATUS:
        if ((r = s_get_enum(o, s_status_names, LF_JOB__COUNT, &v)) == 0) m->status = v;
        return r;
    case K_ENHANCE_MS: return s_get_u32(o, &m->enhance_ms);
    case K_PROMPT: return s_get_str(o, &m->prompt);
    case K_ASSIGNS:
        m->has_assigns = true;
        return s_get_u32(o, &m->assigns);
    case K_BATCH: return s_get_u32(o, &m->batch);
    case K_BATCH_OF: return s_get_str(o, &m->batch_of);
    case K_JOBS: return s_dec_jobs(o, m);
    case K__COUNT: break;
    }
    LF_ASSERT(0);
    return LF_EINTERNAL;
}

/* "v" and "t" first, then every key the type's spec allows. */
static int s_dec_msg(s_obj_t root, lf_msg_t *m) {
    static const char *const hdr_keys[2] = {"v", "t"};
    s_obj_t h[2], f[K__COUNT];
    S_TRY(s_fields(root, hdr_keys, 2, h));
    if (!h[0] || !h[1]) return LF_EINVAL;
    uint64_t ver = 0;
    S_TRY(s_get_u64(h[0], &ver));
    if (ver != LF_PROTO_VERSION) return LF_EVERSION;
    if (h[1]->type != MSGPACK_OBJECT_STR) return LF_EPROTO;
    int t = s_lookup(s_type_names, LF_MSG__COUNT, h[1]->via.str.ptr, h[1]->via.str.size);
    if (t <= LF_MSG_NONE) return LF_EUNKNOWN;
    m->type = (lf_msg_type_t)t;
    m->version = (uint32_t)ver;
    m->priority = LF_PRIO_NORMAL;

    const s_spec_t *spec = &s_specs[t];
    S_TRY(s_fields(root, s_key_names, K__COUNT, f));
    for (int k = 0; k < K__COUNT; k++) {
        if (!(spec->allowed & (1u << k))) continue; /* another type's key: ignored */
        if (!f[k]) {
            if (spec->required & (1u << k)) return LF_EINVAL;
            continue;
        }
        S_TRY(s_dec_key((s_key_t)k, f[k], m));
    }
    return 0;
}

typedef int (*s_dec_fn)(s_obj_t root, void *out);

/* Scan, unpack, convert. Returns an LF_E* code; *trunc tells a truncated
 * buffer apart from other malformed input for the counters. */
static int s_decode_top(const uint8_t *buf, size_t len, s_dec_fn fn, void *out, bool *trunc) {
    *trunc = false;
    if (!buf && len) return LF_EINVAL;
    if (len > LF_PROTO_MAX_BYTES) return LF_ETOOBIG;
    s_scan_t sc = {.p = buf, .len = len};
    int r = s_scan(&sc, 0);
    if (r == S_TRUNC) {
        *trunc = true;
        return LF_EPROTO;
    }
    if (r) return r;
    if (sc.off != len) return LF_EPROTO; /* trailing garbage */

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&up, (const char *)buf, len, &off);
    if (ur == MSGPACK_UNPACK_SUCCESS && off == len) r = fn(&up.data, out);
    else if (ur == MSGPACK_UNPACK_NOMEM_ERROR) r = LF_ENOMEM;
    else if (ur == MSGPACK_UNPACK_CONTINUE) *trunc = true, r = LF_EPROTO;
    else r = LF_EPROTO;
    msgpack_unpacked_destroy(&up);
    return r;
}

static int s_dec_msg_fn(s_obj_t root, void *out) { return s_dec_msg(root, out); }
static int s_dec_params_fn(s_obj_t root, void *out) { return s_dec_params(root, out); }
static int s_dec_caps_fn(s_obj_t root, void *out) { return s_dec_caps(root, out); }

int lf_msg_decode(const uint8_t *buf, size_t len, lf_msg_t *out, lf_codec_stats_t *stats) {
    if (!out) return LF_EINVAL;
    lf_msg_t m = {0};
    bool trunc;
    int r = s_decode_top(buf, len, s_dec_msg_fn, &m, &trunc);
    if (r) lf_msg_clear(&m);
    else *out = m;
    if (stats) {
        if (r == 0) stats->ok++;
        else if (trunc) stats->truncated++;
        else if (r == LF_ETOOBIG) stats->oversized++;
        else if (r == LF_EUNKNOWN) stats->unknown++;
        else if (r == LF_EVERSION) stats->version++;
        else if (r == LF_EINVAL) stats->missing++;
        else stats->malformed++; /* LF_EPROTO, and LF_ENOMEM for lack of a better box */
    }
    return r;
}

int lf_params_decode(const uint8_t *buf, size_t len, lf_job_params_t *out) {
    if (!out) return LF_EINVAL;
    lf_job_params_t p = {0};
    bool trunc;
    int r = s_decode_top(buf, len, s_dec_params_fn, &p, &trunc);
    if (r) lf_params_clear(&p);
    else *out = p;
    return r;
}

int lf_caps_decode(const uint8_t *buf, size_t len, lf_worker_caps_t *out) {
    if (!out) return LF_EINVAL;
    lf_worker_caps_t c = {0};
    bool trunc;
    int r = s_decode_top(buf, len, s_dec_caps_fn, &c, &trunc);
    if (r) lf_caps_clear(&c);
    else *out = c;
    return r;
}

/* ============================================================ lifetime */

void lf_caps_clear(lf_worker_caps_t *c) {
    if (!c) return;
    free(c->host);
    free(c->device_kind);
    free(c->device_name);
    free(c->precision);
    free(c->pinning);
    free(c->cpus);
    for (size_t i = 0; c->models && i < c->n_models; i++) {
        free(c->models[i].name);
        free(c->models[i].kind);
        free(c->models[i].preview);
        lf_model_defaults_clear(&c->models[i].defaults);
    }
    free(c->models);
    for (size_t i = 0; c->resident && i < c->n_resident; i++) free(c->resident[i]);
    free(c->resident);
    for (size_t i = 0; c->vaes && i < c->n_vaes; i++) free(c->vaes[i]);
    free(c->vaes);
    for (size_t i = 0; c->vae_info && i < c->n_vae_info; i++) free(c->vae_info[i].name), free(c->vae_info[i].kind);
    free(c->vae_info);
    for (size_t i = 0; c->loras && i < c->n_loras; i++) {
        free(c->loras[i].name), free(c->loras[i].alias), free(c->loras[i].path), free(c->loras[i].hash);
        lf_model_defaults_clear(&c->loras[i].defaults);
    }
    free(c->loras);
    free(c->lora_set);
    for (size_t i = 0; c->upscalers && i < c->n_upscalers; i++) free(c->upscalers[i]);
    free(c->upscalers);
    for (size_t i = 0; c->ad_models && i < c->n_ad_models; i++) free(c->ad_models[i]);
    free(c->ad_models);
    memset(c, 0, sizeof *c);
}

void lf_msg_clear(lf_msg_t *msg) {
    if (!msg) return;
    free(msg->job_id);
    free(msg->batch_of);
    for (size_t i = 0; msg->jobs && i < msg->n_jobs; i++) free(msg->jobs[i].id);
    free(msg->jobs);
    free(msg->worker_id);
    free(msg->idem_key);
    lf_params_clear(&msg->params);
    free(msg->init_image.data);
    free(msg->mask.data);
    free(msg->preview.data);
    for (size_t i = 0; msg->images && i < msg->n_images; i++) free(msg->images[i].png.data);
    free(msg->images);
    free(msg->info_json);
    free(msg->message);
    free(msg->prompt);
    lf_caps_clear(&msg->caps);
    memset(msg, 0, sizeof *msg);
}


