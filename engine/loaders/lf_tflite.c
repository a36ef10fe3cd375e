/* lf_tflite: a validating reader of TFLite FlatBuffers (see lf_tflite.h).
 *
 * FlatBuffer layout, as far as it is used here: the file starts with a u32
 * offset to the root table. A table starts with an i32 soffset; the table
 * position minus it is the table's vtable: u16 vtable size, u16 table size,
 * then one u16 per field, the field's offset inside the table (0 = absent,
 * default value). Scalars sit at that offset; tables, vectors and strings are
 * a u32 offset relative to where it is stored. A vector is a u32 length then
 * its elements (a vector of tables holds u32 offsets, each relative to its
 * own slot). Every read below goes through s_rd, which checks the span
 * against the file; values are read with memcpy (no alignment assumed). */
#include "lf_tflite.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

struct lf_tflite {
    char *description;
    lf_tflite_tensor_t *tensors;
    size_t n_tensors;
    lf_tflite_op_t *ops;
    size_t n_ops;
    int32_t *ints; /* every index list, one allocation */
    const int32_t *inputs, *outputs;
    int n_inputs, n_outputs;
    char *names;   /* every tensor name, one allocation */
    void *owned;   /* the file image when read by lf_tflite_open */
};

typedef struct {
    const uint8_t *buf;
    size_t len;
    const char *label;
    char *err;
    size_t errlen;
    int failed;
} s_fb_t;

static int s_fail(s_fb_t *fb, const char *fmt, ...)
{
    if (!fb->failed && fb->err && fb->errlen) {
        int n = snprintf(fb->err, fb->errlen, "%s: ", fb->label);
        if (n < 0) n = 0;
        if ((size_t)n < fb->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(fb->err + n, fb->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    fb->failed = 1;
    return LF_EFORMAT;
}

/* 1 when [pos, pos + n) lies inside the file. */
static int s_in(const s_fb_t *fb, uint64_t pos, uint64_t n)
{
    return pos <= fb->len && n <= fb->len - pos;
}

static uint32_t s_u32(const s_fb_t *fb, size_t pos)
{
    uint32_t v;
    memcpy(&v, fb->buf + pos, 4);
    return v;
}

static uint16_t s_u16(const s_fb_t *fb, size_t pos)
{
    uint16_t v;
    memcpy(&v, fb->buf + pos, 2);
    return v;
}

/* A table at pos: its vtable checked; n_fields is how many it declares. */
typedef struct {
    size_t pos, vt;
    unsigned n_fields;
    unsigned size;
} s_table_t;

static int s_table(s_fb_t *fb, uint64_t pos, s_table_t *t, const char *what)
{
    if (!s_in(fb, pos, 4)) return s_fail(fb, "%s: table offset %llu outside the file", what,
                                         (unsigned long long)pos);
    int32_t so;
    memcpy(&so, fb->buf + pos, 4);
    int64_t vt = (int64_t)pos - so;
    if (vt < 0 || !s_in(fb, (uint64_t)vt, 4))
        return s_fail(fb, "%s: vtable outside the file", what);
    unsigned vsize = s_u16(fb, (size_t)vt), tsize = s_u16(fb, (size_t)vt + 2);
    if (vsize < 4 || (vsize & 1) || !s_in(fb, (uint64_t)vt, vsize))
        return s_fail(fb, "%s: bad vtable size %u", what, vsize);
    if (tsize < 4 || !s_in(fb, pos, tsize))
        return s_fail(fb, "%s: table of %u bytes runs past the end of the file", what, tsize);
    t->pos = (size_t)pos;
    t->vt = (size_t)vt;
    t->n_fields = (vsize - 4) / 2;
    t->size = tsize;
    return 0;
}

/* Offset of field id inside the table, 0 when absent; checks that n bytes
 * at it lie inside the table. */
static int s_field(s_fb_t *fb, const s_table_t *t, unsigned id, unsigned n, const char *what,
                   size_t *at)
{
    *at = 0;
    if (id >= t->n_fields) return 0;
    unsigned off = s_u16(fb, t->vt + 4 + 2 * id);
    if (!off) return 0;
    if (off < 4 || (uint64_t)off + n > t->size)
        return s_fail(fb, "%s: field %u lies outside its table", what, id);
    *at = t->pos + off;
    return 0;
}

static int s_scalar(s_fb_t *fb, const s_table_t *t, unsigned id, unsigned n, int64_t def,
                    int is_signed, const char *what, int64_t *v)
{
    size_t at;
    int rc = s_field(fb, t, id, n, what, &at);
    if (rc) return rc;
    if (!at) {
        *v = def;
        return 0;
    }
    uint8_t b[8] = {0};
    memcpy(b, fb->buf + at, n);
    uint64_t u = 0;
    for (unsigned i = 0; i < n; i++) u |= (uint64_t)b[i] << (8 * i);
    if (is_signed && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~0ull << (8 * n);
    *v = (int64_t)u;
    return 0;
}

/* An int32 option that must lie in [lo, hi]. */
static int s_opt(s_fb_t *fb, const s_table_t *t, unsigned id, int def, int lo, int hi,
                 const char *what, const char *field, int *v)
{
    int64_t x;
    int rc = s_scalar(fb, t, id, 4, def, 1, what, &x);
    if (rc) return rc;
    if (x < lo || x > hi) return s_fail(fb, "%s: %s %lld out of range", what, field, (long long)x);
    *v = (int)x;
    return 0;
}

static int s_opt8(s_fb_t *fb, const s_table_t *t, unsigned id, int def, int lo, int hi,
                  const char *what, const char *field, int *v)
{
    int64_t x;
    int rc = s_scalar(fb, t, id, 1, def, 0, what, &x);
    if (rc) return rc;
    if (x < lo || x > hi) return s_fail(fb, "%s: %s %lld out of range", what, field, (long long)x);
    *v = (int)x;
    return 0;
}

/* Follows a u32 offset field to its target; *to = 0 when absent. */
static int s_ref(s_fb_t *fb, const s_table_t *t, unsigned id, const char *what, size_t *to)
{
    size_t at;
    *to = 0;
    int rc = s_field(fb, t, id, 4, what, &at);
    if (rc || !at) return rc;
    uint64_t target = (uint64_t)at + s_u32(fb, at);
    if (!s_in(fb, target, 4)) return s_fail(fb, "%s: field %u points outside the file", what, id);
    *to = (size_t)target;
    return 0;
}

/* A vector field: *n elements of esize bytes from *data (absent: n = 0). */
static int s_vec(s_fb_t *fb, const s_table_t *t, unsigned id, size_t esize, const char *what,
                 size_t *data, size_t *n)
{
    size_t v;
    *data = 0;
    *n = 0;
    int rc = s_ref(fb, t, id, what, &v);
    if (rc || !v) return rc;
    uint32_t count = s_u32(fb, v);
    if (!s_in(fb, (uint64_t)v + 4, (uint64_t)count * esize))
        return s_fail(fb, "%s: vector field %u (%u elements) runs past the end of the file", what,
                      id, count);
    *data = v + 4;
    *n = count;
    return 0;
}

/* Element i of a vector of tables. */
static int s_vec_table(s_fb_t *fb, size_t data, size_t i, s_table_t *t, const char *what)
{
    size_t slot = data + 4 * i;
    return s_table(fb, (uint64_t)slot + s_u32(fb, slot), t, what);
}

/* An int32 vector field copied into dst (capacity cap): *n elements. */
static int s_ints(s_fb_t *fb, const s_table_t *t, unsigned id, const char *what, int32_t **dst,
                  int *n)
{
    size_t data, count;
    int rc = s_vec(fb, t, id, 4, what, &data, &count);
    if (rc) return rc;
    if (count > 1u << 20) return s_fail(fb, "%s: %zu indices", what, count);
    int32_t *v = count ? malloc(count * 4) : NULL;
    if (count && !v) return LF_ENOMEM;
    if (count) memcpy(v, fb->buf + data, count * 4);
    *dst = v;
    *n = (int)count;
    return 0;
}

/* A string field as a new NUL-terminated copy ("" when absent). */
static int s_str(s_fb_t *fb, const s_table_t *t, unsigned id, const char *what, char **out)
{
    size_t data, n;
    int rc = s_vec(fb, t, id, 1, what, &data, &n);
    if (rc) return rc;
    char *s = malloc(n + 1);
    if (!s) return LF_ENOMEM;
    if (n) memcpy(s, fb->buf + data, n);
    s[n] = 0;
    *out = s;
    return 0;
}

const char *lf_tflite_op_name(int code)
{
    switch (code) {
    case LF_TFLITE_ADD: return "ADD";
    case LF_TFLITE_AVERAGE_POOL_2D: return "AVERAGE_POOL_2D";
    case LF_TFLITE_CONCATENATION: return "CONCATENATION";
    case LF_TFLITE_CONV_2D: return "CONV_2D";
    case LF_TFLITE_DEPTHWISE_CONV_2D: return "DEPTHWISE_CONV_2D";
    case LF_TFLITE_DEQUANTIZE: return "DEQUANTIZE";
    case LF_TFLITE_LOGISTIC: return "LOGISTIC";
    case LF_TFLITE_MAX_POOL_2D: return "MAX_POOL_2D";
    case LF_TFLITE_RELU: return "RELU";
    case LF_TFLITE_RESHAPE: return "RESHAPE";
    case LF_TFLITE_RESIZE_BILINEAR: return "RESIZE_BILINEAR";
    case LF_TFLITE_PAD: return "PAD";
    case LF_TFLITE_PRELU: return "PRELU";
    default: return "?";
    }
}

size_t lf_tflite_type_size(int type)
{
    switch (type) {
    case LF_TFLITE_FLOAT32: case LF_TFLITE_INT32: return 4;
    case LF_TFLITE_FLOAT16: return 2;
    case LF_TFLITE_UINT8: case LF_TFLITE_INT8: return 1;
    case LF_TFLITE_INT64: return 8;
    default: return 0;
    }
}

/* The options table of op (field 4, type in field 3) for the codes that
 * have one; other codes keep the defaults. */
static int s_options(s_fb_t *fb, const s_table_t *opt_tab, lf_tflite_op_t *op, const char *what)
{
    /* BuiltinOptions union tags (schema.fbs). */
    enum { O_CONV = 1, O_DW = 2, O_CONCAT = 10, O_POOL = 5, O_ADD = 11, O_RESIZE = 15 };
    size_t at;
    int rc = s_field(fb, opt_tab, 3, 1, what, &at);
    if (rc) return rc;
    int type = at ? fb->buf[at] : 0;
    int want = 0;
    switch (op->code) {
    case LF_TFLITE_CONV_2D: want = O_CONV; break;
    case LF_TFLITE_DEPTHWISE_CONV_2D: want = O_DW; break;
    case LF_TFLITE_MAX_POOL_2D: case LF_TFLITE_AVERAGE_POOL_2D: want = O_POOL; break;
    case LF_TFLITE_ADD: want = O_ADD; break;
    case LF_TFLITE_CONCATENATION: want = O_CONCAT; break;
    case LF_TFLITE_RESIZE_BILINEAR: want = O_RESIZE; break;
    default: return 0;
    }
    size_t to;
    if ((rc = s_ref(fb, opt_tab, 4, what, &to))) return rc;
    if (!to) {
        /* Conv and pools need strides; the others have usable defaults. */
        if (want == O_CONV || want == O_DW || want == O_POOL)
            return s_fail(fb, "%s: %s without options", what, lf_tflite_op_name(op->code));
        return 0;
    }
    if (type != want)
        return s_fail(fb, "%s: %s with options of union type %d", what,
                      lf_tflite_op_name(op->code), type);
    s_table_t t;
    if ((rc = s_table(fb, to, &t, what))) return rc;
    const int B = 1 << 16; /* bound for strides, sizes and factors */
    switch (want) {
    case O_CONV:
        if ((rc = s_opt8(fb, &t, 0, 0, 0, 1, what, "padding", &op->padding)) ||
            (rc = s_opt(fb, &t, 1, 0, 1, B, what, "stride_w", &op->stride_w)) ||
            (rc = s_opt(fb, &t, 2, 0, 1, B, what, "stride_h", &op->stride_h)) ||
            (rc = s_opt8(fb, &t, 3, 0, 0, 5, what, "fused_activation_function", &op->activation)) ||
            (rc = s_opt(fb, &t, 4, 1, 1, B, what, "dilation_w_factor", &op->dilation_w)) ||
            (rc = s_opt(fb, &t, 5, 1, 1, B, what, "dilation_h_factor", &op->dilation_h)))
            return rc;
        break;
    case O_DW:
        if ((rc = s_opt8(fb, &t, 0, 0, 0, 1, what, "padding", &op->padding)) ||
            (rc = s_opt(fb, &t, 1, 0, 1, B, what, "stride_w", &op->stride_w)) ||
            (rc = s_opt(fb, &t, 2, 0, 1, B, what, "stride_h", &op->stride_h)) ||
            (rc = s_opt(fb, &t, 3, 1, 1, B, what, "depth_multiplier", &op->depth_multiplier)) ||
            (rc = s_opt8(fb, &t, 4, 0, 0, 5, what, "fused_activation_function", &op->activation)) ||
            (rc = s_opt(fb, &t, 5, 1, 1, B, what, "dilation_w_factor", &op->dilation_w)) ||
            (rc = s_opt(fb, &t, 6, 1, 1, B, what, "dilation_h_factor", &op->dilation_h)))
            return rc;
        break;
    case O_POOL:
        if ((rc = s_opt8(fb, &t, 0, 0, 0, 1, what, "padding", &op->padding)) ||
            (rc = s_opt(fb, &t, 1, 0, 1, B, what, "stride_w", &op->stride_w)) ||
            (rc = s_opt(fb, &t, 2, 0, 1, B, what, "stride_h", &op->stride_h)) ||
            (rc = s_opt(fb, &t, 3, 0, 1, B, what, "filter_width", &op->filter_w)) ||
            (rc = s_opt(fb, &t, 4, 0, 1, B, what, "filter_height", &op->filter_h)) ||
            (rc = s_opt8(fb, &t, 5, 0, 0, 5, what, "fused_activation_function", &op->activation)))
            return rc;
        break;
    case O_ADD:
        if ((rc = s_opt8(fb, &t, 0, 0, 0, 5, what, "fused_activation_function", &op->activation)))
            return rc;
        break;
    case O_CONCAT:
        if ((rc = s_opt(fb, &t, 0, 0, -LF_TFLITE_MAX_RANK, LF_TFLITE_MAX_RANK - 1, what, "axis",
                        &op->axis)) ||
            (rc = s_opt8(fb, &t, 1, 0, 0, 5, what, "fused_activation_function", &op->activation)))
            return rc;
        break;
    case O_RESIZE:
        if ((rc = s_opt8(fb, &t, 2, 0, 0, 1, what, "align_corners", &op->align_corners)) ||
            (rc = s_opt8(fb, &t, 3, 0, 0, 1, what, "half_pixel_centers", &op->half_pixel_centers)))
            return rc;
        break;
    }
    return 0;
}

static int s_check_indices(s_fb_t *fb, const int32_t *v, int n, size_t n_tensors, int optional,
                           const char *what)
{
    for (int i = 0; i < n; i++) {
        if (v[i] == -1 && optional) continue;
        if (v[i] < 0 || (size_t)v[i] >= n_tensors)
            return s_fail(fb, "%s: tensor index %d out of range (%zu tensors)", what, (int)v[i],
                          n_tensors);
    }
    return 0;
}

static void s_free(lf_tflite_t *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_tensors; i++) free((void *)m->tensors[i].name);
    for (size_t i = 0; i < m->n_ops; i++) {
        free((void *)m->ops[i].in);
        free((void *)m->ops[i].out);
    }
    free((void *)m->inputs);
    free((void *)m->outputs);
    free(m->tensors);
    free(m->ops);
    free(m->description);
    free(m->owned);
    free(m);
}

static int s_parse(s_fb_t *fb, lf_tflite_t *m)
{
    if (fb->len < 8) return s_fail(fb, "%zu bytes is too short for a TFLite file", fb->len);
    s_table_t root;
    int rc = s_table(fb, s_u32(fb, 0), &root, "model");
    if (rc) return rc;
    int64_t version;
    if ((rc = s_scalar(fb, &root, 0, 4, 0, 0, "model", &version))) return rc;
    if (version != 3) return s_fail(fb, "model: schema version %lld, not 3", (long long)version);
    if ((rc = s_str(fb, &root, 3, "model description", &m->description))) return rc;

    /* Operator codes: the builtin code is the larger of the deprecated byte
     * (field 0) and the int (field 3), as the TFLite runtime reads it. */
    size_t codes, n_codes;
    if ((rc = s_vec(fb, &root, 1, 4, "operator_codes", &codes, &n_codes))) return rc;
    size_t bufs, n_bufs;
    if ((rc = s_vec(fb, &root, 4, 4, "buffers", &bufs, &n_bufs))) return rc;
    size_t subs, n_subs;
    if ((rc = s_vec(fb, &root, 2, 4, "subgraphs", &subs, &n_subs))) return rc;
    if (n_subs < 1) return s_fail(fb, "model has no subgraph");
    s_table_t sg;
    if ((rc = s_vec_table(fb, subs, 0, &sg, "subgraph 0"))) return rc;

    size_t tens, n_tens;
    if ((rc = s_vec(fb, &sg, 0, 4, "subgraph 0 tensors", &tens, &n_tens))) return rc;
    if (n_tens > 1u << 20) return s_fail(fb, "%zu tensors", n_tens);
    m->tensors = calloc(n_tens ? n_tens : 1, sizeof *m->tensors);
    if (!m->tensors) return LF_ENOMEM;
    char what[96];
    for (size_t i = 0; i < n_tens; i++) {
        lf_tflite_tensor_t *t = &m->tensors[i];
        snprintf(what, sizeof what, "tensor %zu", i);
        s_table_t tt;
        if ((rc = s_vec_table(fb, tens, i, &tt, what))) return rc;
        char *name = NULL;
        if ((rc = s_str(fb, &tt, 3, what, &name))) return rc;
        t->name = name;
        m->n_tensors = i + 1;
        snprintf(what, sizeof what, "tensor %zu (%.60s)", i, name);
        size_t sh, rank;
        if ((rc = s_vec(fb, &tt, 0, 4, what, &sh, &rank))) return rc;
        if (rank > LF_TFLITE_MAX_RANK) return s_fail(fb, "%s: rank %zu", what, rank);
        t->rank = (int)rank;
        t->numel = 1;
        for (size_t d = 0; d < rank; d++) {
            int32_t v = (int32_t)s_u32(fb, sh + 4 * d);
            if (v < 0) return s_fail(fb, "%s: dimension %zu is %d", what, d, (int)v);
            t->shape[d] = v;
            if (v && t->numel > INT64_MAX / 16 / v)
                return s_fail(fb, "%s: shape overflows", what);
            t->numel *= v;
        }
        int64_t type, bidx;
        if ((rc = s_scalar(fb, &tt, 1, 1, 0, 0, what, &type)) ||
            (rc = s_scalar(fb, &tt, 2, 4, 0, 0, what, &bidx)))
            return rc;
        t->type = (int)type;
        if (bidx == 0) continue; /* buffer 0 is the schema's empty sentinel */
        if ((uint64_t)bidx >= n_bufs)
            return s_fail(fb, "%s: buffer %lld of %zu", what, (long long)bidx, n_bufs);
        s_table_t bt;
        if ((rc = s_vec_table(fb, bufs, (size_t)bidx, &bt, what))) return rc;
        size_t data, nbytes;
        if ((rc = s_vec(fb, &bt, 0, 1, what, &data, &nbytes))) return rc;
        if (!data) {
            /* Buffers past 2 GB live outside the FlatBuffer: offset (from
             * the start of the file) and size fields. */
            int64_t off, size;
            if ((rc = s_scalar(fb, &bt, 1, 8, 0, 0, what, &off)) ||
                (rc = s_scalar(fb, &bt, 2, 8, 0, 0, what, &size)))
                return rc;
            if (off > 1 && size > 0) {
                if (!s_in(fb, (uint64_t)off, (uint64_t)size))
                    return s_fail(fb, "%s: data outside the file", what);
                data = (size_t)off;
                nbytes = (size_t)size;
            }
        }
        if (!nbytes) continue; /* no constant data: computed at run time */
        size_t es = lf_tflite_type_size(t->type);
        if (!es) return s_fail(fb, "%s: constant data of unsupported type %d", what, t->type);
        if ((uint64_t)t->numel * es != nbytes)
            return s_fail(fb, "%s: %zu bytes of data for %lld elements of %zu bytes", what, nbytes,
                          (long long)t->numel, es);
        t->data = fb->buf + data;
        t->nbytes = nbytes;
    }

    int32_t *io = NULL;
    int n_io = 0;
    if ((rc = s_ints(fb, &sg, 1, "subgraph inputs", &io, &n_io))) return rc;
    m->inputs = io;
    m->n_inputs = n_io;
    if ((rc = s_check_indices(fb, io, n_io, n_tens, 0, "subgraph inputs"))) return rc;
    if ((rc = s_ints(fb, &sg, 2, "subgraph outputs", &io, &n_io))) return rc;
    m->outputs = io;
    m->n_outputs = n_io;
    if ((rc = s_check_indices(fb, io, n_io, n_tens, 0, "subgraph outputs"))) return rc;

    size_t ops, n_ops;
    if ((rc = s_vec(fb, &sg, 3, 4, "subgraph 0 operators", &ops, &n_ops))) return rc;
    if (n_ops > 1u << 20) return s_fail(fb, "%zu operators", n_ops);
    m->ops = calloc(n_ops ? n_ops : 1, sizeof *m->ops);
    if (!m->ops) return LF_ENOMEM;
    for (size_t i = 0; i < n_ops; i++) {
        lf_tflite_op_t *op = &m->ops[i];
        op->stride_w = op->stride_h = op->dilation_w = op->dilation_h = 1;
        op->depth_multiplier = 1;
        m->n_ops = i + 1;
        snprintf(what, sizeof what, "operator %zu", i);
        s_table_t ot;
        if ((rc = s_vec_table(fb, ops, i, &ot, what))) return rc;
        int64_t ci;
        if ((rc = s_scalar(fb, &ot, 0, 4, 0, 0, what, &ci))) return rc;
        if ((uint64_t)ci >= n_codes)
            return s_fail(fb, "%s: opcode index %lld of %zu", what, (long long)ci, n_codes);
        s_table_t ct;
        if ((rc = s_vec_table(fb, codes, (size_t)ci, &ct, what))) return rc;
        int64_t dep, code;
        if ((rc = s_scalar(fb, &ct, 0, 1, 0, 1, what, &dep)) ||
            (rc = s_scalar(fb, &ct, 3, 4, 0, 1, what, &code)))
            return rc;
        op->code = (int)(dep > code ? dep : code);
        if (op->code < 0 || op->code == 32 /* CUSTOM */)
            return s_fail(fb, "%s: custom or invalid operator code %d", what, op->code);
        snprintf(what, sizeof what, "operator %zu (%s)", i, lf_tflite_op_name(op->code));
        int32_t *v = NULL;
        if ((rc = s_ints(fb, &ot, 1, what, &v, &op->n_in))) return rc;
        op->in = v;
        if ((rc = s_check_indices(fb, v, op->n_in, n_tens, 1, what))) return rc;
        if ((rc = s_ints(fb, &ot, 2, what, &v, &op->n_out))) return rc;
        op->out = v;
        if ((rc = s_check_indices(fb, v, op->n_out, n_tens, 0, what))) return rc;
        if ((rc = s_options(fb, &ot, op, what))) return rc;
    }
    return 0;
}

int lf_tflite_parse(lf_tflite_t **out, const void *buf, size_t len, const char *label,
                    char *errstr, size_t errlen)
{
    if (!out || (!buf && len)) return LF_EINVAL;
    s_fb_t fb = {buf, len, label ? label : "tflite", errstr, errlen, 0};
    lf_tflite_t *m = calloc(1, sizeof *m);
    if (!m) return LF_ENOMEM;
    int rc = s_parse(&fb, m);
    if (rc) {
        if (rc == LF_ENOMEM && errstr && errlen)
            snprintf(errstr, errlen, "%s: out of memory", fb.label);
        s_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int lf_tflite_open(lf_tflite_t **out, const char *path, char *errstr, size_t errlen)
{
    if (!out || !path) return LF_EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errstr && errlen) snprintf(errstr, errlen, "%s: cannot open", path);
        return LF_EIO;
    }
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0 || (unsigned long)n > (1ul << 30)) {
        fclose(f);
        if (errstr && errlen) snprintf(errstr, errlen, "%s: cannot read (or over 1 GB)", path);
        return LF_EIO;
    }
    void *buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        fclose(f);
        return LF_ENOMEM;
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(buf);
        if (errstr && errlen) snprintf(errstr, errlen, "%s: short read", path);
        return LF_EIO;
    }
    lf_tflite_t *m = NULL;
    int rc = lf_tflite_parse(&m, buf, (size_t)n, path, errstr, errlen);
    if (rc) {
        free(buf);
        return rc;
    }
    m->owned = buf;
    *out = m;
    return 0;
}

void lf_tflite_destroy(lf_tflite_t **self_p)
{
    if (!self_p || !*self_p) return;
    s_free(*self_p);
    *self_p = NULL;
}

const char *lf_tflite_description(const lf_tflite_t *self) { return self->description; }
size_t lf_tflite_tensor_count(const lf_tflite_t *self) { return self->n_tensors; }
size_t lf_tflite_op_count(const lf_tflite_t *self) { return self->n_ops; }

const lf_tflite_tensor_t *lf_tflite_tensor_at(const lf_tflite_t *self, size_t i)
{
    return i < self->n_tensors ? &self->tensors[i] : NULL;
}

const lf_tflite_op_t *lf_tflite_op_at(const lf_tflite_t *self, size_t i)
{
    return i < self->n_ops ? &self->ops[i] : NULL;
}

const int32_t *lf_tflite_inputs(const lf_tflite_t *self, int *n)
{
    *n = self->n_inputs;
    return self->inputs;
}

const int32_t *lf_tflite_outputs(const lf_tflite_t *self, int *n)
{
    *n = self->n_outputs;
    return self->outputs;
}

/* IEEE half to float, subnormals and infinities included. */
static float s_half(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else if (exp) bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (!man) bits = sign;
    else {
        exp = 113;
        while (!(man & 1024)) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 1023) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int lf_tflite_tensor_f32(const lf_tflite_tensor_t *t, float *dst)
{
    if (!t || !t->data || !dst) return LF_EINVAL;
    const uint8_t *p = t->data;
    if (t->type == LF_TFLITE_FLOAT32) {
        memcpy(dst, p, (size_t)t->numel * 4);
    } else if (t->type == LF_TFLITE_FLOAT16) {
        for (int64_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = s_half(h);
        }
    } else {
        return LF_EINVAL;
    }
    return 0;
}
