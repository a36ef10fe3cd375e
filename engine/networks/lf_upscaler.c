/* lf_upscaler: ESRGAN (RRDBNet) and SRVGGNetCompact as lf_graph graphs, the
 * detection of both from a file's names and shapes (spandrel 0.4's rules),
 * and tiled inference.
 *
 * The graphs use the existing ops: LeakyReLU(a) and PReLU are written as
 * x + (a - 1) * min(x, 0) (CLAMP, SCALE or MUL by a [1,1,C,1] tensor, ADD):
 * three cheap point-wise nodes beside convolutions that cost hundreds of
 * FLOPs per element, so a dedicated op would not pay for itself. The
 * pixel-unshuffle in front of Real-ESRGAN x2 models and the pixel-shuffle +
 * nearest residual at the end of Compact are done on the host: they touch
 * the image once, at its own size. */
#include "lf_upscaler.h"

#include <dirent.h>
#include <float.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_graph.h"
#include "lf_keymap.h"
#include "lf_unet.h"

#define S LF__SHAPE
#define MAX_BLOCKS 64
#define MAX_UP 3
#define MAX_COMPACT 128

typedef struct {
    lf_tensor_t *w[5], *b[5];
} s_rdb_t;

struct lf_upscaler {
    lf_upscaler_info_t info;
    lf_backend_t *be;
    /* ESRGAN */
    lf_tensor_t *first_w, *first_b, *trunk_w, *trunk_b, *hr_w, *hr_b, *last_w, *last_b;
    lf_tensor_t *up_w[MAX_UP], *up_b[MAX_UP];
    s_rdb_t *rdb; /* nb * 3 */
    /* Compact: body convs (num_conv + 2) and the PReLU slopes minus one. */
    lf_tensor_t *cw[MAX_COMPACT], *cb[MAX_COMPACT], *slope_m1[MAX_COMPACT];
    /* The graph for the last network-input size. */
    int gh, gw;
    lf_graph_t *g;
    lf_tensor_t *in, *out;
};

const char *lf_upscaler_arch_name(lf_upscaler_arch_t arch) {
    return arch == LF_UPSCALER_COMPACT ? "Compact" : "ESRGAN";
}

const char *lf_upscaler_layout_name(lf_upscaler_layout_t l) {
    static const char *const n[] = {"old", "new", "bsrgan", "compact"};
    return (unsigned)l < 4 ? n[l] : "?";
}

/* ---- names ---- */

typedef enum { N_FIRST, N_RDB, N_TRUNK, N_UP, N_HR, N_LAST } s_part_t;

/* The file name (without prefix) of an ESRGAN tensor; b, r, c index the
 * block, dense block (1..3) and conv (1..5); k the upsampling stage (1..);
 * wb is "weight" or "bias". */
static void s_esr_name(char *o, size_t n, const lf_upscaler_info_t *I, s_part_t part, int b,
                       int r, int c, const char *wb) {
    const int bs = I->layout == LF_UPSCALER_LAYOUT_BSRGAN;
    if (I->layout == LF_UPSCALER_LAYOUT_OLD) {
        const int up_end = 3 * I->n_up;
        switch (part) {
        case N_FIRST: snprintf(o, n, "model.0.%s", wb); break;
        case N_RDB: snprintf(o, n, "model.1.sub.%d.RDB%d.conv%d.0.%s", b, r, c, wb); break;
        case N_TRUNK: snprintf(o, n, "model.1.sub.%d.%s", I->nb, wb); break;
        case N_UP: snprintf(o, n, "model.%d.%s", 3 * b, wb); break;
        case N_HR: snprintf(o, n, "model.%d.%s", up_end + 2, wb); break;
        case N_LAST: snprintf(o, n, "model.%d.%s", up_end + 4, wb); break;
        }
        return;
    }
    switch (part) {
    case N_FIRST: snprintf(o, n, "conv_first.%s", wb); break;
    case N_RDB:
        snprintf(o, n, bs ? "RRDB_trunk.%d.RDB%d.conv%d.%s" : "body.%d.rdb%d.conv%d.%s", b, r, c,
                 wb);
        break;
    case N_TRUNK: snprintf(o, n, "%s.%s", bs ? "trunk_conv" : "conv_body", wb); break;
    case N_UP: snprintf(o, n, bs ? "upconv%d.%s" : "conv_up%d.%s", b, wb); break;
    case N_HR: snprintf(o, n, "%s.%s", bs ? "HRconv" : "conv_hr", wb); break;
    case N_LAST: snprintf(o, n, "conv_last.%s", wb); break;
    }
}

static const lf_tensor_info_t *s_find(const lf_weights_t *w, const char *prefix, const char *fmt,
                                      ...) __attribute__((format(printf, 3, 4)));
static const lf_tensor_info_t *s_find(const lf_weights_t *w, const char *prefix, const char *fmt,
                                      ...) {
    char name[256], full[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return lf_weights_find(w, full);
}

static int s_is_conv(const lf_tensor_info_t *t) {
    return t && t->ndim == 4 && t->shape[2] == 3 && t->shape[3] == 3;
}

/* ---- detection ---- */

static int s_fail(char *err, size_t errlen, int rc, const lf_weights_t *w, const char *what) {
    if (errlen) snprintf(err, errlen, "%s: %s", lf_weights_path(w), what);
    return rc;
}

static int s_probe_esrgan(const lf_weights_t *w, lf_upscaler_info_t *I, char *err,
                          size_t errlen) {
    const char *p = I->prefix;
    char n[160];
    /* Blocks, then upsampling stages (new layouts count conv_upK; the old
     * one places them at model.3, model.6, ... before HR and last). */
    I->nb = 0;
    for (int b = 0; b < MAX_BLOCKS + 1; b++) {
        s_esr_name(n, sizeof n, I, N_RDB, b, 1, 1, "weight");
        if (!s_find(w, p, "%s", n)) break;
        I->nb = b + 1;
    }
    if (I->nb < 1 || I->nb > MAX_BLOCKS)
        return s_fail(err, errlen, LF_EFORMAT, w, "ESRGAN: no RRDB blocks, or too many");
    if (I->layout == LF_UPSCALER_LAYOUT_OLD) {
        int top = 0;
        for (int i = 0; i < 64; i++)
            if (s_find(w, p, "model.%d.weight", i)) top = i;
        if (top < 4 || (top - 4) % 3)
            return s_fail(err, errlen, LF_EFORMAT, w, "ESRGAN: unexpected model.N sequence");
        I->n_up = (top - 4) / 3;
    } else {
        I->n_up = 0;
        for (int k = 1; k <= 8; k++) {
            s_esr_name(n, sizeof n, I, N_UP, k, 0, 0, "weight");
            if (!s_find(w, p, "%s", n)) break;
            I->n_up = k;
        }
    }
    if (I->n_up > MAX_UP)
        return s_fail(err, errlen, LF_EUNSUPPORTED, w, "ESRGAN: more than 3 upsampling stages");
    const lf_tensor_info_t *first, *last, *c1;
    s_esr_name(n, sizeof n, I, N_FIRST, 0, 0, 0, "weight");
    first = s_find(w, p, "%s", n);
    s_esr_name(n, sizeof n, I, N_LAST, 0, 0, 0, "weight");
    last = s_find(w, p, "%s", n);
    s_esr_name(n, sizeof n, I, N_RDB, 0, 1, 1, "weight");
    c1 = s_find(w, p, "%s", n);
    /* (An old-layout x3 file, one nearest-x3 stage, has the same sequence
     * as an x2 one; spandrel's rule, followed here, reads it as x2 too.) */
    if (!s_is_conv(first) || !s_is_conv(last) || !s_is_conv(c1))
        return s_fail(err, errlen, LF_EFORMAT, w,
                      "ESRGAN: first/last/dense convolutions missing or not 3x3");
    const int in_nc = (int)first->shape[1], out_nc = (int)last->shape[0];
    I->nf = (int)first->shape[0];
    I->gc = (int)c1->shape[0];
    /* Real-ESRGAN x2 / x1: pixel-unshuffle by 2 / 4 in front (spandrel's rule). */
    I->shuffle = 1;
    if (in_nc == out_nc * 4) I->shuffle = 2;
    if (in_nc == out_nc * 16) I->shuffle = 4;
    I->in_ch = in_nc / (I->shuffle * I->shuffle);
    I->out_ch = out_nc;
    const int body = 1 << I->n_up;
    if (body % I->shuffle)
        return s_fail(err, errlen, LF_EUNSUPPORTED, w,
                      "ESRGAN: pixel-unshuffle factor larger than the body's scale");
    I->scale = body / I->shuffle;
    return 0;
}

static int s_probe_compact(const lf_weights_t *w, lf_upscaler_info_t *I, char *err,
                           size_t errlen) {
    const char *p = I->prefix;
    int top = -1;
    for (int i = 0; i < MAX_COMPACT; i++)
        if (s_find(w, p, "body.%d.weight", i)) top = i;
    const lf_tensor_info_t *c0 = s_find(w, p, "body.0.weight");
    const lf_tensor_info_t *cl = s_find(w, p, "body.%d.weight", top);
    const lf_tensor_info_t *bl = s_find(w, p, "body.%d.bias", top);
    if (top < 2 || top % 2 || !s_is_conv(c0) || !s_is_conv(cl) || !bl || bl->ndim != 1)
        return s_fail(err, errlen, LF_EFORMAT, w, "Compact: unexpected body.N sequence");
    I->nf = (int)c0->shape[0];
    I->in_ch = (int)c0->shape[1];
    I->nb = (top - 2) / 2;
    /* scale^2 * out_ch = last conv's outputs; out_ch tried as in_ch, 3, 4, 1. */
    const int x = (int)bl->shape[0], cand[4] = {I->in_ch, 3, 4, 1};
    I->scale = 0;
    for (int i = 0; i < 4 && !I->scale; i++) {
        if (x % cand[i]) continue;
        int s = (int)lround(sqrt((double)(x / cand[i])));
        if (s * s == x / cand[i]) I->scale = s, I->out_ch = cand[i];
    }
    if (!I->scale)
        return s_fail(err, errlen, LF_EFORMAT, w,
                      "Compact: last conv's outputs are not scale^2 * channels");
    I->shuffle = 1;
    return 0;
}

int lf_upscaler_probe(const lf_weights_t *w, lf_upscaler_info_t *info, char *err, size_t errlen) {
    if (!w || !info) return LF_EINVAL;
    /* Wrappers spandrel's canonicalize_state_dict unwraps (the torch-zip
     * reader flattens nested dicts with "."), tried after the bare names. */
    static const char *const prefixes[] = {"",       "params_ema.", "params-ema.", "params.",
                                           "model_state_dict.", "net.", "model.", "module.",
                                           "netG.",  "params_ema.module.", "module.module."};
    for (size_t k = 0; k < sizeof prefixes / sizeof *prefixes; k++) {
        const char *p = prefixes[k];
        lf_upscaler_info_t I;
        memset(&I, 0, sizeof I);
        snprintf(I.prefix, sizeof I.prefix, "%s", p);
        int rc = 1;
        if (s_find(w, p, "model.0.weight") && s_find(w, p, "model.1.sub.0.RDB1.conv1x1.weight"))
            return s_fail(err, errlen, LF_EUNSUPPORTED, w,
                          "ESRGAN+ (conv1x1 residual paths) is not supported");
        if (s_find(w, p, "model.0.weight") && s_find(w, p, "model.1.sub.0.RDB1.conv1.0.weight")) {
            I.arch = LF_UPSCALER_ESRGAN, I.layout = LF_UPSCALER_LAYOUT_OLD;
            rc = s_probe_esrgan(w, &I, err, errlen);
        } else if (s_find(w, p, "conv_first.weight") && s_find(w, p, "body.0.rdb1.conv1.weight") &&
                   s_find(w, p, "conv_body.weight") && s_find(w, p, "conv_last.weight")) {
            I.arch = LF_UPSCALER_ESRGAN, I.layout = LF_UPSCALER_LAYOUT_NEW;
            rc = s_probe_esrgan(w, &I, err, errlen);
        } else if (s_find(w, p, "conv_first.weight") &&
                   s_find(w, p, "RRDB_trunk.0.RDB1.conv1.weight") &&
                   s_find(w, p, "trunk_conv.weight") && s_find(w, p, "conv_last.weight")) {
            I.arch = LF_UPSCALER_ESRGAN, I.layout = LF_UPSCALER_LAYOUT_BSRGAN;
            rc = s_probe_esrgan(w, &I, err, errlen);
        } else if (s_find(w, p, "body.0.weight") && s_find(w, p, "body.1.weight")) {
            I.arch = LF_UPSCALER_COMPACT, I.layout = LF_UPSCALER_LAYOUT_COMPACT;
            rc = s_probe_compact(w, &I, err, errlen);
        }
        if (rc == 1) continue; /* nothing under this prefix */
        if (rc) return rc;
        for (size_t i = 0; i < lf_weights_count(w); i++) {
            const lf_tensor_info_t *t = lf_weights_at(w, i);
            if (strncmp(t->name, p, strlen(p)) == 0) I.params += lf_tensorinfo_numel(t);
        }
        *info = I;
        return 0;
    }
    return s_fail(err, errlen, LF_EFORMAT, w,
                  "not an upscaler this engine knows (ESRGAN/RRDBNet in the old, Real-ESRGAN or "
                  "BSRGAN layout, or SRVGGNetCompact): no matching tensor names");
}

/* ---- loading ---- */

static int s_load_esrgan(lf_upscaler_t *u, lf_keymap_loader_t *ld) {
    const lf_upscaler_info_t *I = &u->info;
    const int nf = I->nf, gc = I->gc, in_nc = I->in_ch * I->shuffle * I->shuffle;
    char wn[160], bn[160];
#define LOADC(W, B, part, b, r, c, co, ci)                                   \
    do {                                                                     \
        s_esr_name(wn, sizeof wn, I, part, b, r, c, "weight");               \
        s_esr_name(bn, sizeof bn, I, part, b, r, c, "bias");                 \
        W = lf_keymap_load(ld, 4, S(co, ci, 3, 3), "%s", wn);                \
        B = lf_keymap_load(ld, 1, S(co), "%s", bn);                          \
    } while (0)
    LOADC(u->first_w, u->first_b, N_FIRST, 0, 0, 0, nf, in_nc);
    u->rdb = calloc((size_t)I->nb * 3, sizeof *u->rdb);
    if (!u->rdb) return LF_ENOMEM;
    for (int b = 0; b < I->nb; b++)
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 5; c++)
                LOADC(u->rdb[b * 3 + r].w[c], u->rdb[b * 3 + r].b[c], N_RDB, b, r + 1, c + 1,
                      c == 4 ? nf : gc, nf + c * gc);
    LOADC(u->trunk_w, u->trunk_b, N_TRUNK, 0, 0, 0, nf, nf);
    for (int k = 0; k < I->n_up; k++) LOADC(u->up_w[k], u->up_b[k], N_UP, k + 1, 0, 0, nf, nf);
    LOADC(u->hr_w, u->hr_b, N_HR, 0, 0, 0, nf, nf);
    LOADC(u->last_w, u->last_b, N_LAST, 0, 0, 0, I->out_ch, nf);
#undef LOADC
    return ld->rc;
}

static int s_load_compact(lf_upscaler_t *u, lf_keymap_loader_t *ld, const lf_keymap_t *km,
                          lf_pool_t *pool) {
    const lf_upscaler_info_t *I = &u->info;
    const int nf = I->nf, nconv = I->nb + 2;
    float *tmp = malloc((size_t)nf * sizeof *tmp);
    if (!tmp) return LF_ENOMEM;
    for (int i = 0; i < nconv && !ld->rc; i++) {
        const int co = i == nconv - 1 ? I->out_ch * I->scale * I->scale : nf;
        const int ci = i == 0 ? I->in_ch : nf;
        u->cw[i] = lf_keymap_load(ld, 4, S(co, ci, 3, 3), "body.%d.weight", 2 * i);
        u->cb[i] = lf_keymap_load(ld, 1, S(co), "body.%d.bias", 2 * i);
        if (i == nconv - 1) break;
        /* PReLU(nf) slopes a, kept as a - 1 in a [1,1,C,1] tensor. spandrel's
         * "relu"/"leakyrelu" variants have no tensor here and are refused. */
        char n[64];
        snprintf(n, sizeof n, "body.%d.weight", 2 * i + 1);
        const lf_tensor_info_t *t = lf_keymap_find(km, n);
        if (!t || lf_tensorinfo_numel(t) != nf) {
            ld->rc = LF_EFORMAT;
            if (ld->errlen)
                snprintf(ld->err, ld->errlen, "%s: Compact: %s%s missing or not a PReLU(%d)",
                         lf_weights_path(km->w), km->prefix, n, nf);
            break;
        }
        lf_weights_read_f32(t, tmp);
        for (int c = 0; c < nf; c++) tmp[c] -= 1.0f;
        char pn[64];
        snprintf(pn, sizeof pn, "upscaler.prelu%d_minus_one", i);
        u->slope_m1[i] = lf_pool_tensor(pool, pn, LF_TYPE_F32, 4, S(1, 1, nf, 1));
        if (!u->slope_m1[i] ||
            lf_pool_load(pool, u->slope_m1[i], tmp, (size_t)nf * sizeof *tmp)) {
            ld->rc = LF_ENOMEM;
            if (ld->errlen)
                snprintf(ld->err, ld->errlen, "%s: out of memory", lf_weights_path(km->w));
        }
    }
    free(tmp);
    return ld->rc;
}

int lf_upscaler_new(lf_upscaler_t **out, const char *path, lf_backend_t *be, lf_pool_t *pool,
                    int weight_type, char *err, size_t errlen) {
    if (!out || !path || !be || !pool) return LF_EINVAL;
    lf_weights_t *w = NULL;
    int rc = lf_weights_open(&w, path, err, errlen);
    if (rc) return rc;
    lf_upscaler_info_t info;
    rc = lf_upscaler_probe(w, &info, err, errlen);
    lf_upscaler_t *u = rc ? NULL : calloc(1, sizeof *u);
    if (!rc && !u) rc = LF_ENOMEM;
    if (rc) {
        lf_weights_destroy(&w);
        return rc;
    }
    u->info = info;
    u->be = be;
    lf_keymap_t km = {.w = w, .kind = LF_KEYMAP_DIFFUSERS};
    snprintf(km.prefix, sizeof km.prefix, "%s", info.prefix);
    lf_keymap_loader_t ld = {.km = &km, .pool = pool, .pool_prefix = "upscaler.",
                             .type = weight_type, .err = err, .errlen = errlen};
    rc = info.arch == LF_UPSCALER_ESRGAN ? s_load_esrgan(u, &ld)
                                         : s_load_compact(u, &ld, &km, pool);
    lf_weights_destroy(&w);
    if (rc) {
        lf_upscaler_destroy(&u);
        return rc;
    }
    *out = u;
    return 0;
}

void lf_upscaler_destroy(lf_upscaler_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_graph_destroy(&(*self_p)->g);
    free((*self_p)->rdb);
    free(*self_p);
    *self_p = NULL;
}

const lf_upscaler_info_t *lf_upscaler_info(const lf_upscaler_t *self) { return &self->info; }

size_t lf_upscaler_peak_bytes(const lf_upscaler_t *self) {
    return self && self->g ? lf_graph_peak_bytes(self->g) : 0;
}

/* ---- graphs ---- */

/* x + (a - 1) * min(x, 0): LeakyReLU(a) with a scalar, PReLU with am1. */
static lf_tensor_t *s_leaky(lf_graph_t *g, lf_tensor_t *x, float a, const lf_tensor_t *am1) {
    lf_tensor_t *neg = lf_graph_clamp(g, x, -FLT_MAX, 0.0f);
    neg = am1 ? lf_graph_mul(g, neg, am1) : lf_graph_scale(g, neg, a - 1.0f, 0.0f);
    return lf_graph_add(g, x, neg);
}

static lf_tensor_t *s_conv(lf_graph_t *g, lf_tensor_t *x, const lf_tensor_t *w,
                           const lf_tensor_t *b) {
    return lf_graph_conv2d(g, x, w, b, 1, 1);
}

/* ResidualDenseBlock_5C: dense convs over the growing concatenation, then
 * x5 * 0.2 + x. */
static lf_tensor_t *s_rdb(lf_graph_t *g, lf_tensor_t *x, const s_rdb_t *d) {
    lf_tensor_t *cat = x;
    for (int c = 0; c < 4; c++) {
        lf_tensor_t *h = s_leaky(g, s_conv(g, cat, d->w[c], d->b[c]), 0.2f, NULL);
        cat = lf_graph_concat(g, cat, h, 2);
    }
    lf_tensor_t *x5 = s_conv(g, cat, d->w[4], d->b[4]);
    return lf_graph_add(g, x, lf_graph_scale(g, x5, 0.2f, 0.0f));
}

static lf_tensor_t *s_build_esrgan(lf_upscaler_t *u, lf_graph_t *g, lf_tensor_t *x) {
    const lf_upscaler_info_t *I = &u->info;
    lf_tensor_t *fea = s_conv(g, x, u->first_w, u->first_b), *h = fea;
    for (int b = 0; b < I->nb; b++) {
        lf_tensor_t *r = h;
        for (int k = 0; k < 3; k++) r = s_rdb(g, r, &u->rdb[b * 3 + k]);
        h = lf_graph_add(g, h, lf_graph_scale(g, r, 0.2f, 0.0f));
    }
    h = lf_graph_add(g, fea, s_conv(g, h, u->trunk_w, u->trunk_b));
    for (int k = 0; k < I->n_up; k++)
        h = s_leaky(g, s_conv(g, lf_graph_upsample2x(g, h), u->up_w[k], u->up_b[k]), 0.2f, NULL);
    h = s_leaky(g, s_conv(g, h, u->hr_w, u->hr_b), 0.2f, NULL);
    return s_conv(g, h, u->last_w, u->last_b);
}

static lf_tensor_t *s_build_compact(lf_upscaler_t *u, lf_graph_t *g, lf_tensor_t *x) {
    const int nconv = u->info.nb + 2;
    for (int i = 0; i < nconv; i++) {
        x = s_conv(g, x, u->cw[i], u->cb[i]);
        if (i < nconv - 1) x = s_leaky(g, x, 0, u->slope_m1[i]);
    }
    return x; /* [out_ch * scale^2][h][w]; shuffled on the host */
}

/* Runs the network on its own input (after the unshuffle): x [C][gh][gw]. */
static int s_forward(lf_upscaler_t *u, const float *x, int gh, int gw, float *y) {
    if (!u->g || u->gh != gh || u->gw != gw) {
        lf_graph_destroy(&u->g);
        lf_graph_t *g = lf_graph_new(u->be);
        if (!g) return LF_ENOMEM;
        const int cin = u->info.in_ch * u->info.shuffle * u->info.shuffle;
        u->in = lf_graph_input(g, LF_TYPE_F32, gw, gh, cin, 1);
        lf_tensor_t *o = u->info.arch == LF_UPSCALER_ESRGAN ? s_build_esrgan(u, g, u->in)
                                                            : s_build_compact(u, g, u->in);
        u->out = lf_graph_output(g, o);
        int rc = lf_graph_plan(g);
        if (rc) {
            lf_graph_destroy(&g);
            return rc;
        }
        u->g = g, u->gh = gh, u->gw = gw;
    }
    int rc = lf_backend_tensor_set(u->be, u->in, x, lf_tensor_nbytes(u->in));
    if (!rc) rc = lf_graph_compute(u->g);
    if (!rc) rc = lf_backend_sync(u->be);
    if (!rc) rc = lf_backend_tensor_get(u->be, u->out, y, lf_tensor_nbytes(u->out));
    return rc;
}

/* One image whose sides are multiples of the unshuffle factor: rgb
 * [in_ch][h][w] -> out [out_ch][h*scale][w*scale], host steps included. */
static int s_run_image(lf_upscaler_t *u, const float *rgb, int h, int w, float *out) {
    const lf_upscaler_info_t *I = &u->info;
    const int r = I->shuffle, s = I->scale;
    int rc = 0;
    if (I->arch == LF_UPSCALER_ESRGAN && r == 1) return s_forward(u, rgb, h, w, out);
    if (I->arch == LF_UPSCALER_ESRGAN) {
        /* pixel_unshuffle: x[c*r*r + i*r + j][y][x] = rgb[c][y*r + i][x*r + j] */
        const int gh = h / r, gw = w / r;
        float *x = malloc((size_t)I->in_ch * h * w * sizeof *x);
        if (!x) return LF_ENOMEM;
        for (int c = 0; c < I->in_ch; c++)
            for (int i = 0; i < r; i++)
                for (int j = 0; j < r; j++)
                    for (int yy = 0; yy < gh; yy++)
                        for (int xx = 0; xx < gw; xx++)
                            x[(((size_t)(c * r + i) * r + j) * gh + yy) * gw + xx] =
                                rgb[((size_t)c * h + yy * r + i) * w + xx * r + j];
        rc = s_forward(u, x, gh, gw, out);
        free(x);
        return rc;
    }
    /* Compact: pixel_shuffle(y) + nearest(rgb). */
    const size_t n = (size_t)I->out_ch * s * s * h * w;
    float *y = malloc(n * sizeof *y);
    if (!y) return LF_ENOMEM;
    rc = s_forward(u, rgb, h, w, y);
    if (!rc) {
        const int H = h * s, W = w * s;
        for (int c = 0; c < I->out_ch; c++)
            for (int Y = 0; Y < H; Y++)
                for (int X = 0; X < W; X++) {
                    const int i = Y % s, j = X % s;
                    const size_t lr = (size_t)(Y / s) * w + X / s; /* low-res pixel */
                    const float v = y[(((size_t)c * s + i) * s + j) * h * w + lr];
                    const int cs = c < I->in_ch ? c : I->in_ch - 1;
                    out[((size_t)c * H + Y) * W + X] = v + rgb[(size_t)cs * h * w + lr];
                }
    }
    free(y);
    return rc;
}

/* Reflect-pads rgb [C][h][w] to [C][hp][wp] (F.pad mode "reflect"). */
static float *s_pad_reflect(const float *rgb, int C, int h, int w, int hp, int wp) {
    float *p = malloc((size_t)C * hp * wp * sizeof *p);
    if (!p) return NULL;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < hp; y++) {
            const int sy = y < h ? y : 2 * (h - 1) - y;
            for (int x = 0; x < wp; x++) {
                const int sx = x < w ? x : 2 * (w - 1) - x;
                p[((size_t)c * hp + y) * wp + x] = rgb[((size_t)c * h + sy) * w + sx];
            }
        }
    return p;
}

static int s_check(const lf_upscaler_t *u, const float *rgb, int h, int w, const float *out) {
    if (!u || !rgb || !out || h < 1 || w < 1 || h > 65536 || w > 65536) return LF_EINVAL;
    /* Reflect padding needs two pixels; spandrel's minimum size is 2 too. */
    if (u->info.shuffle > 1 && (h < 2 || w < 2)) return LF_EINVAL;
    return 0;
}

int lf_upscaler_run(lf_upscaler_t *self, const float *rgb, int h, int w, float *out) {
    return lf_upscaler_upscale(self, rgb, h, w, 0, 0, out, NULL, NULL);
}

/* ---- tiles ---- */

/* Tile starts along one axis of length L (a multiple of m) for tiles of T
 * (a multiple of m, <= L) overlapping by at least O: n tiles spread evenly,
 * starts on multiples of m. Returns n (<= max). */
static int s_grid(int L, int T, int O, int m, int *start, int max) {
    if (T >= L) {
        start[0] = 0;
        return 1;
    }
    const int step = T - O - (m - 1) > m ? T - O - (m - 1) : m;
    int n = 1 + (L - T + step - 1) / step;
    if (n > max) n = max;
    for (int i = 0; i < n; i++) start[i] = (int)((long long)i * (L - T) / (n - 1) / m * m);
    start[n - 1] = L - T;
    return n;
}

/* Weight of output pixel q (0 .. T*s-1) of tile i: a ramp from overlap/4 to
 * 3*overlap/4 away from each inner edge, where the overlap is the one
 * actually shared with that neighbour. */
static float s_weight(const int *start, int n, int i, int T, int s, int q) {
    const float d = ((float)q + 0.5f) / (float)s; /* input pixels from the tile's left edge */
    float wgt = 1.0f;
    if (i > 0) {
        const float ov = (float)(start[i - 1] + T - start[i]);
        wgt *= fminf(fmaxf((d - ov * 0.25f) / (ov * 0.5f), 0.0f), 1.0f);
    }
    if (i < n - 1) {
        const float ov = (float)(start[i] + T - start[i + 1]);
        wgt *= fminf(fmaxf(((float)T - d - ov * 0.25f) / (ov * 0.5f), 0.0f), 1.0f);
    }
    return wgt;
}

#define MAX_TILES 4096

int lf_upscaler_upscale(lf_upscaler_t *self, const float *rgb, int h, int w, int tile, int overlap,
                        float *out, lf_upscaler_progress_fn progress, void *user) {
    int rc = s_check(self, rgb, h, w, out);
    if (rc) return rc;
    const lf_upscaler_info_t *I = &self->info;
    const int m = I->shuffle, s = I->scale, C = I->in_ch, Co = I->out_ch;
    const int hp = (h + m - 1) / m * m, wp = (w + m - 1) / m * m;
    float *pad = NULL;
    const float *src = rgb;
    if (hp != h || wp != w) {
        if (!(pad = s_pad_reflect(rgb, C, h, w, hp, wp))) return LF_ENOMEM;
        src = pad;
    }
    if (tile <= 0) tile = hp > wp ? hp : wp;
    tile = tile / m * m;
    if (tile < m) tile = m;
    if (overlap < 0) overlap = 0;
    if (overlap > tile / 2) overlap = tile / 2;
    const int Tx = tile < wp ? tile : wp, Ty = tile < hp ? tile : hp;
    int *xs = malloc(2 * MAX_TILES * sizeof *xs), *ys = xs ? xs + MAX_TILES : NULL;
    if (!xs) {
        free(pad);
        return LF_ENOMEM;
    }
    const int nx = s_grid(wp, Tx, overlap, m, xs, MAX_TILES);
    const int ny = s_grid(hp, Ty, overlap, m, ys, MAX_TILES);
    const int H = h * s, W = w * s, Hp = hp * s, Wp = wp * s;
    if (nx == 1 && ny == 1) {
        /* One run; crop the padding away. */
        float *full = (hp == h && wp == w) ? out : malloc((size_t)Co * Hp * Wp * sizeof *full);
        rc = full ? s_run_image(self, src, hp, wp, full) : LF_ENOMEM;
        if (!rc && full != out)
            for (int c = 0; c < Co; c++)
                for (int y = 0; y < H; y++)
                    memcpy(out + ((size_t)c * H + y) * W, full + ((size_t)c * Hp + y) * Wp,
                           (size_t)W * sizeof *out);
        if (!rc && progress && progress(user, 1, 1)) rc = LF_ECANCELED;
        if (full != out) free(full);
        free(pad), free(xs);
        return rc;
    }
    /* Separable weights: the sum over a grid of wx * wy is (sum wx)(sum wy). */
    const size_t tin = (size_t)C * Tx * Ty, tout = (size_t)Co * Tx * s * Ty * s;
    float *acc = calloc((size_t)Co * Hp * Wp, sizeof *acc);
    float *sx = calloc((size_t)Wp + Hp, sizeof *sx), *sy = sx ? sx + Wp : NULL;
    float *tin_b = malloc(tin * sizeof *tin_b), *tout_b = malloc(tout * sizeof *tout_b);
    float *wx = malloc((size_t)Tx * s * sizeof *wx), *wy = malloc((size_t)Ty * s * sizeof *wy);
    if (!acc || !sx || !tin_b || !tout_b || !wx || !wy) rc = LF_ENOMEM;
    for (int j = 0; j < ny && !rc; j++) {
        for (int q = 0; q < Ty * s; q++) wy[q] = s_weight(ys, ny, j, Ty, s, q);
        for (int i = 0; i < nx && !rc; i++) {
            for (int q = 0; q < Tx * s; q++) wx[q] = s_weight(xs, nx, i, Tx, s, q);
            for (int c = 0; c < C; c++)
                for (int y = 0; y < Ty; y++)
                    memcpy(tin_b + ((size_t)c * Ty + y) * Tx,
                           src + ((size_t)c * hp + ys[j] + y) * wp + xs[i],
                           (size_t)Tx * sizeof *src);
            rc = s_run_image(self, tin_b, Ty, Tx, tout_b);
            if (rc) break;
            const int X0 = xs[i] * s, Y0 = ys[j] * s, TW = Tx * s, TH = Ty * s;
            for (int c = 0; c < Co; c++)
                for (int y = 0; y < TH; y++) {
                    if (wy[y] == 0.0f) continue;
                    float *a = acc + ((size_t)c * Hp + Y0 + y) * Wp + X0;
                    const float *t = tout_b + ((size_t)c * TH + y) * TW;
                    for (int x = 0; x < TW; x++) a[x] += wy[y] * wx[x] * t[x];
                }
            if (progress && progress(user, j * nx + i + 1, nx * ny)) rc = LF_ECANCELED;
        }
    }
    if (!rc) {
        for (int i = 0; i < nx; i++)
            for (int q = 0; q < Tx * s; q++) sx[xs[i] * s + q] += s_weight(xs, nx, i, Tx, s, q);
        for (int j = 0; j < ny; j++)
            for (int q = 0; q < Ty * s; q++) sy[ys[j] * s + q] += s_weight(ys, ny, j, Ty, s, q);
        for (int c = 0; c < Co; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    out[((size_t)c * H + y) * W + x] =
                        acc[((size_t)c * Hp + y) * Wp + x] / (sx[x] * sy[y]);
    }
    free(acc), free(sx), free(tin_b), free(tout_b), free(wx), free(wy), free(xs), free(pad);
    return rc;
}

int lf_upscaler_upscale_rgb8(lf_upscaler_t *self, const uint8_t *src, int w, int h, int tile,
                             int overlap, int bgr, uint8_t *dst, lf_upscaler_progress_fn progress,
                             void *user) {
    if (!self || !src || !dst || h < 1 || w < 1 || h > 65536 || w > 65536) return LF_EINVAL;
    if (self->info.in_ch != 3 || self->info.out_ch != 3) return LF_EUNSUPPORTED;
    const int s = self->info.scale, H = h * s, W = w * s;
    const size_t n = (size_t)h * w, N = (size_t)H * W;
    float *x = malloc(3 * n * sizeof *x), *y = malloc(3 * N * sizeof *y);
    int rc = x && y ? 0 : LF_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                x[(size_t)(bgr ? 2 - c : c) * n + i] = (float)src[i * 3 + c] / 255.0f;
        rc = lf_upscaler_upscale(self, x, h, w, tile, overlap, y, progress, user);
    }
    if (!rc)
        for (size_t i = 0; i < N; i++)
            for (int c = 0; c < 3; c++) {
                float v = y[(size_t)(bgr ? 2 - c : c) * N + i];
                v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                dst[i * 3 + c] = (uint8_t)lrintf(v * 255.0f);
            }
    free(x), free(y);
    return rc;
}

/* ---- folders ---- */

static int s_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The file names of dir with an upscaler extension, sorted; caller frees. */
static int s_list_dir(const char *dir, char ***names, size_t *n) {
    *names = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        const char *dot = strrchr(de->d_name, '.');
        if (de->d_name[0] == '.' || !dot || dot == de->d_name ||
            (strcmp(dot, ".pth") && strcmp(dot, ".pt") && strcmp(dot, ".safetensors")))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(*names, cap * sizeof *nn);
            if (!nn) {
                rc = LF_ENOMEM;
                break;
            }
            *names = nn;
        }
        if (!((*names)[*n] = strdup(de->d_name))) rc = LF_ENOMEM;
        else (*n)++;
    }
    closedir(d);
    if (*n) qsort(*names, *n, sizeof **names, s_cmp_str);
    return rc;
}

void lf_upscaler_entries_free(lf_upscaler_entry_t *e, size_t n) {
    for (size_t i = 0; e && i < n; i++) free(e[i].name), free(e[i].path);
    free(e);
}

int lf_upscaler_scan(const char *const *dirs, size_t ndirs, lf_upscaler_entry_t **out, size_t *n,
                     lf_upscaler_skip_fn skip, void *user) {
    if (!out || !n || (ndirs && !dirs)) return LF_EINVAL;
    lf_upscaler_entry_t *list = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    for (size_t k = 0; k < ndirs && !rc; k++) {
        char **files = NULL;
        size_t nf = 0;
        rc = dirs[k] ? s_list_dir(dirs[k], &files, &nf) : 0;
        for (size_t i = 0; i < nf && !rc; i++) {
            char path[4096], err[512] = "";
            snprintf(path, sizeof path, "%s/%s", dirs[k], files[i]);
            char *name = strndup(files[i], (size_t)(strrchr(files[i], '.') - files[i]));
            if (!name) {
                rc = LF_ENOMEM;
                break;
            }
            int dup = 0;
            for (size_t j = 0; j < cnt; j++) dup |= !strcmp(list[j].name, name);
            lf_upscaler_info_t info;
            lf_weights_t *w = NULL;
            int prc = dup ? 0 : lf_weights_open(&w, path, err, sizeof err);
            if (!dup && !prc) prc = lf_upscaler_probe(w, &info, err, sizeof err);
            lf_weights_destroy(&w);
            if (dup || prc) {
                if (skip) {
                    char why[600];
                    if (dup)
                        snprintf(why, sizeof why, "another file already gives the upscaler '%s'",
                                 name);
                    else
                        snprintf(why, sizeof why, "%s", err);
                    skip(user, path, why);
                }
                free(name);
                continue;
            }
            if (cnt == cap) {
                size_t nc = cap ? cap * 2 : 8;
                lf_upscaler_entry_t *nl = realloc(list, nc * sizeof *nl);
                if (!nl) {
                    free(name);
                    rc = LF_ENOMEM;
                    break;
                }
                list = nl, cap = nc;
            }
            list[cnt] = (lf_upscaler_entry_t){.name = name, .path = strdup(path), .info = info};
            if (!list[cnt++].path) rc = LF_ENOMEM;
        }
        for (size_t i = 0; i < nf; i++) free(files[i]);
        free(files);
    }
    if (rc) {
        lf_upscaler_entries_free(list, cnt);
        return rc;
    }
    *out = list, *n = cnt;
    return 0;
}
