/* lf_yolo: ultralytics YOLOv8 / YOLO11 networks, their predictor and
 * ADetailer's mask conversion (see lf_yolo.h). Activations are planar
 * float [c][h][w], batch 1. */
#include "lf_yolo.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_resize.h"
#include "lf_weights.h"

#define S_IMGSZ 640
#define S_MAX_LAYERS 64
#define S_MAX_FROM 4
#define S_MAX_LEVELS 4
#define S_BN_EPS 1e-3f /* ultralytics' initialize_weights sets every BatchNorm2d's eps */

/* ---- modules ------------------------------------------------------------------ */

typedef struct {
    float *w, *b;    /* fused weight [co][cig][k][k], bias [co] */
    int co, cig, k, s, act;
} s_conv_t;

typedef struct {
    s_conv_t cv1, cv2;
    int add;
} s_bneck_t;

typedef struct { /* C3k (C3 with n Bottlenecks) */
    s_conv_t cv1, cv2, cv3;
    s_bneck_t *m;
    int n;
} s_c3k_t;

typedef struct { /* PSABlock */
    s_conv_t qkv, proj, pe, ffn0, ffn1;
    int heads, kd, hd;
} s_psa_t;

enum { M_CONV, M_C2F, M_C3K2, M_SPPF, M_C2PSA, M_UPSAMPLE, M_CONCAT, M_DETECT, M_SEGMENT };

typedef struct {
    int type, nfrom, from[S_MAX_FROM];
    s_conv_t cv1, cv2;
    int n, c;          /* repeats, hidden channels (C2f/C3k2/C2PSA) */
    s_bneck_t *m;      /* C2f / C3k2 Bottlenecks */
    s_c3k_t *c3k;      /* C3k2 with c3k */
    s_psa_t *psa;      /* C2PSA */
    int k, scale;      /* SPPF pool, Upsample factor */
} s_layer_t;

typedef struct {
    s_conv_t box[S_MAX_LEVELS][3];
    s_conv_t cls[S_MAX_LEVELS][5]; /* legacy: 3 convs; v11: DWConv, Conv, DWConv, Conv, Conv2d */
    int ncls_convs;
    s_conv_t mc[S_MAX_LEVELS][3];  /* Segment cv4 */
    s_conv_t p_cv1, p_cv2, p_cv3;  /* Proto */
    float *up_w, *up_b;            /* Proto's ConvTranspose2d [ci][co][2][2] */
    int up_c;
    int nl, nc, nm, reg_max, stride[S_MAX_LEVELS];
    float dfl[16]; /* DFL's fixed 1x1 conv (arange(16) in every real model; read from the file) */
} s_head_t;

struct lf_yolo {
    s_layer_t layers[S_MAX_LAYERS];
    int n_layers, seg;
    s_head_t head;
    char **names;
    int n_names;
};

/* ---- loading ------------------------------------------------------------------ */

typedef struct {
    lf_weights_t *w;
    const char *prefix; /* "model." for a .pt's pickled model, "" for safetensors */
    char *err;
    size_t errlen;
    int rc;
} s_ld_t;

static int s_fail(s_ld_t *ld, int rc, const char *fmt, ...)
{
    if (ld->rc) return ld->rc;
    va_list ap;
    va_start(ap, fmt);
    char m[384];
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s: %s", lf_weights_path(ld->w), m);
    return ld->rc = rc;
}

static const lf_tensor_info_t *s_find(s_ld_t *ld, const char *fmt, ...)
{
    char name[256], full[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    return lf_weights_find(ld->w, full);
}

static float *s_read(s_ld_t *ld, const lf_tensor_info_t *t, int64_t expect)
{
    int64_t n = lf_tensorinfo_numel(t);
    if (ld->rc) return NULL;
    if (expect >= 0 && n != expect) {
        s_fail(ld, LF_EFORMAT, "tensor %s has %lld values, expected %lld", t->name, (long long)n, (long long)expect);
        return NULL;
    }
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) {
        s_fail(ld, LF_ENOMEM, "out of memory");
        return NULL;
    }
    if (lf_weights_read_f32(t, v) != 0) {
        free(v);
        s_fail(ld, LF_EUNSUPPORTED, "tensor %s: dtype %s not supported", t->name, lf_dtype_name(t->dtype));
        return NULL;
    }
    return v;
}

/* An ultralytics Conv (conv + bn, or a fused conv with bias) or, with
 * plain, an nn.Conv2d with bias, under name. */
static void s_conv_load(s_ld_t *ld, s_conv_t *c, const char *name, int stride, int act, int plain)
{
    const lf_tensor_info_t *w = plain ? s_find(ld, "%s.weight", name) : s_find(ld, "%s.conv.weight", name);
    if (ld->rc) return;
    if (!w || w->ndim != 4 || w->shape[2] != w->shape[3] || w->shape[2] % 2 == 0) {
        s_fail(ld, LF_EFORMAT, "%s%s: convolution weight missing or not [co][ci][k][k] with odd k", ld->prefix, name);
        return;
    }
    c->co = (int)w->shape[0];
    c->cig = (int)w->shape[1];
    c->k = (int)w->shape[2];
    c->s = stride;
    c->act = act;
    c->w = s_read(ld, w, -1);
    const lf_tensor_info_t *b = plain ? s_find(ld, "%s.bias", name) : s_find(ld, "%s.conv.bias", name);
    const lf_tensor_info_t *g = plain ? NULL : s_find(ld, "%s.bn.weight", name);
    if (g) {
        const lf_tensor_info_t *be = s_find(ld, "%s.bn.bias", name), *mu = s_find(ld, "%s.bn.running_mean", name),
                               *var = s_find(ld, "%s.bn.running_var", name);
        if (!be || !mu || !var) {
            s_fail(ld, LF_EFORMAT, "%s%s.bn: incomplete BatchNorm", ld->prefix, name);
            return;
        }
        float *gv = s_read(ld, g, c->co), *bv = s_read(ld, be, c->co), *mv = s_read(ld, mu, c->co),
              *vv = s_read(ld, var, c->co);
        c->b = calloc((size_t)c->co, sizeof *c->b);
        if (!c->b) s_fail(ld, LF_ENOMEM, "out of memory");
        if (!ld->rc && c->w) {
            /* ultralytics' fuse_conv_and_bn in float32 */
            size_t per = (size_t)c->cig * c->k * c->k;
            for (int o = 0; o < c->co; o++) {
                float sd = sqrtf(S_BN_EPS + vv[o]), sc = gv[o] / sd;
                for (size_t i = 0; i < per; i++) c->w[o * per + i] *= sc;
                c->b[o] = bv[o] - gv[o] * mv[o] / sqrtf(vv[o] + S_BN_EPS);
            }
        }
        free(gv), free(bv), free(mv), free(vv);
    } else if (b) {
        c->b = s_read(ld, b, c->co);
    } else {
        s_fail(ld, LF_EFORMAT, "%s%s: neither a BatchNorm nor a bias", ld->prefix, name);
    }
}

static void s_conv_free(s_conv_t *c)
{
    free(c->w);
    free(c->b);
}

static int s_has(s_ld_t *ld, const char *fmt, int i, int k)
{
    char n[200];
    snprintf(n, sizeof n, fmt, i, k);
    return s_find(ld, "%s", n) != NULL;
}

static void s_bnecks_load(s_ld_t *ld, s_bneck_t **m, int *n, const char *base, int add)
{
    char name[200];
    int cnt = 0;
    while (cnt < 64) {
        snprintf(name, sizeof name, "%s.m.%d.cv1.conv.weight", base, cnt);
        if (!s_find(ld, "%s", name)) break;
        cnt++;
    }
    *n = cnt;
    if (!(*m = calloc((size_t)(cnt ? cnt : 1), sizeof **m))) {
        s_fail(ld, LF_ENOMEM, "out of memory");
        return;
    }
    for (int k = 0; k < cnt; k++) {
        snprintf(name, sizeof name, "%s.m.%d.cv1", base, k);
        s_conv_load(ld, &(*m)[k].cv1, name, 1, 1, 0);
        snprintf(name, sizeof name, "%s.m.%d.cv2", base, k);
        s_conv_load(ld, &(*m)[k].cv2, name, 1, 1, 0);
        (*m)[k].add = add && (*m)[k].cv2.co == (*m)[k].cv1.cig;
    }
}

/* ---- the yaml dict (parse_model) ---------------------------------------------- */

static int s_int(const json_t *v, int dflt)
{
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

static void s_layer_load(s_ld_t *ld, s_layer_t *L, int i, const char *m, const json_t *args)
{
    char base[64], name[200];
    snprintf(base, sizeof base, "model.%d", i);
    if (!strcmp(m, "Conv")) {
        L->type = M_CONV;
        int stride = s_int(json_array_get(args, 2), 1); /* Conv(c2, k, s) */
        if (stride < 1 || stride > 8) {
            s_fail(ld, LF_EFORMAT, "%s: Conv stride %d", base, stride);
            return;
        }
        s_conv_load(ld, &L->cv1, base, stride, 1, 0);
    } else if (!strcmp(m, "C2f") || !strcmp(m, "C3k2")) {
        int c3k2 = m[1] == '3';
        L->type = c3k2 ? M_C3K2 : M_C2F;
        snprintf(name, sizeof name, "%s.cv1", base);
        s_conv_load(ld, &L->cv1, name, 1, 1, 0);
        snprintf(name, sizeof name, "%s.cv2", base);
        s_conv_load(ld, &L->cv2, name, 1, 1, 0);
        L->c = L->cv1.co / 2;
        /* C2f(c1, c2, n, shortcut=False): yaml args [c2, shortcut]; C3k2's
         * blocks always have shortcut=True. */
        int shortcut = c3k2 ? 1 : json_is_true(json_array_get(args, 1));
        if (c3k2 && s_has(ld, "model.%d.m.%d.cv3.conv.weight", i, 0)) {
            int cnt = 0;
            while (cnt < 64 && s_has(ld, "model.%d.m.%d.cv3.conv.weight", i, cnt)) cnt++;
            L->n = cnt;
            if (!(L->c3k = calloc((size_t)cnt, sizeof *L->c3k))) s_fail(ld, LF_ENOMEM, "out of memory");
            for (int k = 0; k < cnt && !ld->rc; k++) {
                s_c3k_t *c = &L->c3k[k];
                snprintf(name, sizeof name, "%s.m.%d.cv1", base, k);
                s_conv_load(ld, &c->cv1, name, 1, 1, 0);
                snprintf(name, sizeof name, "%s.m.%d.cv2", base, k);
                s_conv_load(ld, &c->cv2, name, 1, 1, 0);
                snprintf(name, sizeof name, "%s.m.%d.cv3", base, k);
                s_conv_load(ld, &c->cv3, name, 1, 1, 0);
                snprintf(name, sizeof name, "%s.m.%d", base, k);
                s_bnecks_load(ld, &c->m, &c->n, name, 1);
            }
        } else {
            s_bnecks_load(ld, &L->m, &L->n, base, shortcut);
        }
    } else if (!strcmp(m, "SPPF")) {
        L->type = M_SPPF;
        L->k = s_int(json_array_get(args, 1), 5);
        snprintf(name, sizeof name, "%s.cv1", base);
        s_conv_load(ld, &L->cv1, name, 1, 1, 0);
        snprintf(name, sizeof name, "%s.cv2", base);
        s_conv_load(ld, &L->cv2, name, 1, 1, 0);
    } else if (!strcmp(m, "C2PSA")) {
        L->type = M_C2PSA;
        snprintf(name, sizeof name, "%s.cv1", base);
        s_conv_load(ld, &L->cv1, name, 1, 1, 0);
        snprintf(name, sizeof name, "%s.cv2", base);
        s_conv_load(ld, &L->cv2, name, 1, 1, 0);
        L->c = L->cv1.co / 2;
        int cnt = 0;
        while (cnt < 64 && s_has(ld, "model.%d.m.%d.attn.qkv.conv.weight", i, cnt)) cnt++;
        L->n = cnt;
        if (!(L->psa = calloc((size_t)(cnt ? cnt : 1), sizeof *L->psa))) s_fail(ld, LF_ENOMEM, "out of memory");
        for (int k = 0; k < cnt && !ld->rc; k++) {
            s_psa_t *p = &L->psa[k];
            const char *parts[5] = {"attn.qkv", "attn.proj", "attn.pe", "ffn.0", "ffn.1"};
            s_conv_t *dst[5] = {&p->qkv, &p->proj, &p->pe, &p->ffn0, &p->ffn1};
            for (int q = 0; q < 5; q++) {
                snprintf(name, sizeof name, "%s.m.%d.%s", base, k, parts[q]);
                s_conv_load(ld, dst[q], name, 1, q == 3, 0);
            }
            p->heads = L->c / 64; /* PSABlock(c, attn_ratio=0.5, num_heads=c // 64) */
            if (p->heads < 1 || L->c % p->heads) {
                s_fail(ld, LF_EFORMAT, "%s: C2PSA with %d channels has no attention heads", base, L->c);
                return;
            }
            p->hd = L->c / p->heads;
            p->kd = p->hd / 2;
            if (!ld->rc && p->qkv.co != L->c + 2 * p->kd * p->heads)
                s_fail(ld, LF_EFORMAT, "%s.m.%d.attn.qkv: %d outputs, expected %d", base, k, p->qkv.co,
                       L->c + 2 * p->kd * p->heads);
        }
    } else if (!strcmp(m, "nn.Upsample")) {
        L->type = M_UPSAMPLE;
        const json_t *sf = json_array_get(args, 1);
        const char *mode = json_string_value(json_array_get(args, 2));
        L->scale = json_is_number(sf) ? (int)json_number_value(sf) : 0;
        if (L->scale < 1 || L->scale > 8 || (double)L->scale != json_number_value(sf) || !mode || strcmp(mode, "nearest"))
            s_fail(ld, LF_EUNSUPPORTED, "%s: nn.Upsample other than an integer 'nearest' factor", base);
    } else if (!strcmp(m, "Concat")) {
        L->type = M_CONCAT;
        if (s_int(json_array_get(args, 0), 1) != 1) s_fail(ld, LF_EUNSUPPORTED, "%s: Concat not over channels", base);
    } else if (!strcmp(m, "Detect") || !strcmp(m, "Segment")) {
        L->type = m[0] == 'S' ? M_SEGMENT : M_DETECT;
    } else {
        s_fail(ld, LF_EUNSUPPORTED, "layer %d: module '%s' is not supported (YOLOv8/YOLO11 detect and segment only)",
               i, m);
    }
}

static void s_head_load(s_ld_t *ld, lf_yolo_t *y, int i, const int *strides)
{
    s_head_t *h = &y->head;
    s_layer_t *L = &y->layers[i];
    char name[200];
    h->nl = L->nfrom;
    h->reg_max = 16;
    int legacy = !s_has(ld, "model.%d.cv3.%d.0.0.conv.weight", i, 0);
    h->ncls_convs = legacy ? 3 : 5;
    for (int l = 0; l < h->nl && !ld->rc; l++) {
        h->stride[l] = strides[l];
        for (int q = 0; q < 3; q++) {
            snprintf(name, sizeof name, "model.%d.cv2.%d.%d", i, l, q);
            s_conv_load(ld, &h->box[l][q], name, 1, 1, q == 2);
        }
        for (int q = 0; q < h->ncls_convs; q++) {
            if (legacy) snprintf(name, sizeof name, "model.%d.cv3.%d.%d", i, l, q);
            else if (q < 4) snprintf(name, sizeof name, "model.%d.cv3.%d.%d.%d", i, l, q / 2, q % 2);
            else snprintf(name, sizeof name, "model.%d.cv3.%d.2", i, l);
            s_conv_load(ld, &h->cls[l][q], name, 1, 1, q == h->ncls_convs - 1);
        }
        if (y->seg)
            for (int q = 0; q < 3; q++) {
                snprintf(name, sizeof name, "model.%d.cv4.%d.%d", i, l, q);
                s_conv_load(ld, &h->mc[l][q], name, 1, 1, q == 2);
            }
    }
    if (ld->rc) return;
    if (h->box[0][2].co != 4 * h->reg_max) {
        s_fail(ld, LF_EUNSUPPORTED, "model.%d: box branch with %d outputs (DFL reg_max 16 expected)", i, h->box[0][2].co);
        return;
    }
    h->nc = h->cls[0][h->ncls_convs - 1].co;
    for (int l = 0; l < h->nl; l++)
        if (h->box[l][2].co != 4 * h->reg_max || h->cls[l][h->ncls_convs - 1].co != h->nc ||
            (y->seg && h->mc[l][2].co != h->mc[0][2].co)) {
            s_fail(ld, LF_EFORMAT, "model.%d: head level %d's outputs differ from level 0's", i, l);
            return;
        }
    if (h->nc < 1 || h->nc > 4096) {
        s_fail(ld, LF_EFORMAT, "model.%d: %d classes", i, h->nc);
        return;
    }
    const lf_tensor_info_t *dw = s_find(ld, "model.%d.dfl.conv.weight", i);
    float *dv = dw ? s_read(ld, dw, 16) : NULL;
    for (int b = 0; b < 16; b++) h->dfl[b] = dv ? dv[b] : (float)b;
    free(dv);
    for (int l = 0; l < h->nl; l++) h->box[l][2].act = h->cls[l][h->ncls_convs - 1].act = 0;
    if (y->seg) {
        h->nm = h->mc[0][2].co;
        if (h->nm < 1 || h->nm > 64) {
            s_fail(ld, LF_EFORMAT, "model.%d: %d mask coefficients (at most 64)", i, h->nm);
            return;
        }
        for (int l = 0; l < h->nl; l++) h->mc[l][2].act = 0;
        snprintf(name, sizeof name, "model.%d.proto.cv1", i);
        s_conv_load(ld, &h->p_cv1, name, 1, 1, 0);
        snprintf(name, sizeof name, "model.%d.proto.cv2", i);
        s_conv_load(ld, &h->p_cv2, name, 1, 1, 0);
        snprintf(name, sizeof name, "model.%d.proto.cv3", i);
        s_conv_load(ld, &h->p_cv3, name, 1, 1, 0);
        const lf_tensor_info_t *uw = s_find(ld, "model.%d.proto.upsample.weight", i),
                               *ub = s_find(ld, "model.%d.proto.upsample.bias", i);
        if (!ld->rc && (!uw || !ub || uw->ndim != 4 || uw->shape[2] != 2 || uw->shape[3] != 2)) {
            s_fail(ld, LF_EFORMAT, "model.%d.proto.upsample: ConvTranspose2d 2x2 missing", i);
            return;
        }
        if (ld->rc) return;
        h->up_c = (int)uw->shape[1];
        h->up_w = s_read(ld, uw, uw->shape[0] * uw->shape[1] * 4);
        h->up_b = s_read(ld, ub, h->up_c);
        if (!ld->rc && (h->p_cv3.co != h->nm || uw->shape[0] != h->p_cv1.co || h->p_cv2.cig != h->up_c))
            s_fail(ld, LF_EFORMAT, "model.%d.proto: channel counts disagree with the mask coefficients", i);
    }
}

static int s_names(lf_yolo_t *y, const char *json)
{
    json_t *j = json ? json_loads(json, 0, NULL) : NULL;
    if (!json_is_object(j) && !json_is_array(j)) {
        json_decref(j);
        return 0;
    }
    int n = y->head.nc;
    if (!(y->names = calloc((size_t)(n ? n : 1), sizeof *y->names))) {
        json_decref(j);
        return LF_ENOMEM;
    }
    y->n_names = n;
    for (int k = 0; k < n; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        const char *s = json_string_value(json_is_array(j) ? json_array_get(j, (size_t)k) : json_object_get(j, key));
        if (s && !(y->names[k] = strdup(s))) {
            json_decref(j);
            return LF_ENOMEM;
        }
    }
    json_decref(j);
    return 0;
}

static int s_build(lf_yolo_t *y, s_ld_t *ld, const char *yaml_json)
{
    json_error_t je;
    json_t *d = json_loads(yaml_json, 0, &je);
    if (!json_is_object(d)) {
        json_decref(d);
        return s_fail(ld, LF_EFORMAT, "the model's yaml is not a JSON object (%s)", je.text);
    }
    json_t *bb = json_object_get(d, "backbone"), *hd = json_object_get(d, "head");
    size_t nb = json_array_size(bb), nh = json_array_size(hd);
    if (!nb || !nh || nb + nh > S_MAX_LAYERS) {
        json_decref(d);
        return s_fail(ld, LF_EFORMAT, "the model's yaml has no backbone/head layer lists (or more than %d layers)",
                      S_MAX_LAYERS);
    }
    y->n_layers = (int)(nb + nh);
    int stride[S_MAX_LAYERS];
    for (int i = 0; i < y->n_layers && !ld->rc; i++) {
        const json_t *row = i < (int)nb ? json_array_get(bb, (size_t)i) : json_array_get(hd, (size_t)i - nb);
        const json_t *f = json_array_get(row, 0), *args = json_array_get(row, 3);
        const char *m = json_string_value(json_array_get(row, 2));
        s_layer_t *L = &y->layers[i];
        if (!json_is_array(row) || json_array_size(row) != 4 || !m || !json_is_array(args)) {
            s_fail(ld, LF_EFORMAT, "yaml layer %d is not [from, n, module, args]", i);
            break;
        }
        if (json_is_integer(f)) {
            L->nfrom = 1;
            L->from[0] = (int)json_integer_value(f);
        } else {
            L->nfrom = (int)json_array_size(f);
            for (int k = 0; k < L->nfrom && k < S_MAX_FROM; k++) L->from[k] = s_int(json_array_get(f, (size_t)k), 0);
        }
        if (L->nfrom < 1 || L->nfrom > S_MAX_FROM) {
            s_fail(ld, LF_EFORMAT, "yaml layer %d: bad 'from'", i);
            break;
        }
        if (i == 0 && (L->nfrom != 1 || L->from[0] != -1)) {
            s_fail(ld, LF_EFORMAT, "yaml layer 0 must take the image (from -1)");
            break;
        }
        for (int k = 0; k < L->nfrom; k++) {
            if (L->from[k] < 0) L->from[k] += i;
            if (L->from[k] < 0 || L->from[k] >= i) {
                if (i == 0 && L->from[k] == -1) continue; /* the image */
                s_fail(ld, LF_EFORMAT, "yaml layer %d: 'from' %d out of range", i, L->from[k]);
            }
        }
        s_layer_load(ld, L, i, m, args);
        if (i == 0 && (L->type == M_CONCAT || L->type == M_DETECT || L->type == M_SEGMENT))
            s_fail(ld, LF_EFORMAT, "yaml layer 0 is a %s", m);
        int in_stride = i == 0 ? 1 : stride[L->from[0]];
        stride[i] = L->type == M_CONV ? in_stride * L->cv1.s : L->type == M_UPSAMPLE && L->scale ? in_stride / L->scale
                                                                                                  : in_stride;
        if (L->type == M_DETECT || L->type == M_SEGMENT) {
            if (i != y->n_layers - 1 || L->nfrom > S_MAX_LEVELS) {
                s_fail(ld, LF_EUNSUPPORTED, "yaml layer %d: the Detect/Segment head must be the last layer", i);
                break;
            }
            y->seg = L->type == M_SEGMENT;
            int st[S_MAX_LEVELS];
            for (int k = 0; k < L->nfrom; k++) st[k] = stride[L->from[k]];
            s_head_load(ld, y, i, st);
        } else if (i == y->n_layers - 1 && !ld->rc) {
            s_fail(ld, LF_EUNSUPPORTED, "the last layer is not a Detect or Segment head");
        }
    }
    json_decref(d);
    return ld->rc;
}

lf_yolo_t *lf_yolo_new(const char *path, char *err, size_t errlen)
{
    if (errlen) err[0] = '\0';
    lf_weights_t *w = NULL;
    if (lf_weights_open(&w, path, err, errlen) != 0) return NULL;
    lf_yolo_t *y = calloc(1, sizeof *y);
    s_ld_t ld = {.w = w, .prefix = "", .err = err, .errlen = errlen};
    char *yaml = NULL, *names = NULL;
    if (!y) s_fail(&ld, LF_ENOMEM, "out of memory");
    const char *my = lf_weights_metadata(w, "yolo.yaml");
    if (!ld.rc && my) {
        yaml = strdup(my);
        const char *mn = lf_weights_metadata(w, "yolo.names");
        names = mn ? strdup(mn) : NULL;
    } else if (!ld.rc) {
        /* a pickled ultralytics checkpoint: {"model": DetectionModel, ...};
         * a trainer's last.pt may hold it under "ema" with "model" None */
        const char *roots[2] = {"model", "ema"};
        for (int r = 0; r < 2 && !yaml; r++) {
            char p[32];
            snprintf(p, sizeof p, "%s.yaml", roots[r]);
            if (lf_weights_json(w, p, &yaml) != 0 || !yaml || yaml[0] != '{') {
                free(yaml);
                yaml = NULL;
                continue;
            }
            snprintf(p, sizeof p, "%s.names", roots[r]);
            if (lf_weights_json(w, p, &names) != 0) names = NULL;
            ld.prefix = r ? "ema." : "model.";
        }
    }
    if (!ld.rc && !yaml)
        s_fail(&ld, LF_EFORMAT, "not an ultralytics YOLO model (no pickled model with a yaml dict, no yolo.yaml metadata)");
    if (!ld.rc) s_build(y, &ld, yaml);
    if (!ld.rc && s_names(y, names) != 0) s_fail(&ld, LF_ENOMEM, "out of memory");
    free(yaml);
    free(names);
    lf_weights_destroy(&w);
    if (ld.rc) {
        lf_yolo_destroy(&y);
        return NULL;
    }
    return y;
}

void lf_yolo_destroy(lf_yolo_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_yolo_t *y = *self_p;
    for (int i = 0; i < S_MAX_LAYERS; i++) {
        s_layer_t *L = &y->layers[i];
        s_conv_free(&L->cv1);
        s_conv_free(&L->cv2);
        for (int k = 0; L->m && k < L->n; k++) s_conv_free(&L->m[k].cv1), s_conv_free(&L->m[k].cv2);
        for (int k = 0; L->c3k && k < L->n; k++) {
            s_c3k_t *c = &L->c3k[k];
            s_conv_free(&c->cv1), s_conv_free(&c->cv2), s_conv_free(&c->cv3);
            for (int q = 0; c->m && q < c->n; q++) s_conv_free(&c->m[q].cv1), s_conv_free(&c->m[q].cv2);
            free(c->m);
        }
        for (int k = 0; L->psa && k < L->n; k++) {
            s_psa_t *p = &L->psa[k];
            s_conv_free(&p->qkv), s_conv_free(&p->proj), s_conv_free(&p->pe), s_conv_free(&p->ffn0),
                s_conv_free(&p->ffn1);
        }
        free(L->m), free(L->c3k), free(L->psa);
    }
    s_head_t *h = &y->head;
    for (int l = 0; l < S_MAX_LEVELS; l++)
        for (int q = 0; q < 5; q++) {
            if (q < 3) s_conv_free(&h->box[l][q]), s_conv_free(&h->mc[l][q]);
            s_conv_free(&h->cls[l][q]);
        }
    s_conv_free(&h->p_cv1), s_conv_free(&h->p_cv2), s_conv_free(&h->p_cv3);
    free(h->up_w), free(h->up_b);
    for (int k = 0; k < y->n_names; k++) free(y->names[k]);
    free(y->names);
    free(y);
    *self_p = NULL;
}

int lf_yolo_n_classes(const lf_yolo_t *y)
{
    return y->head.nc;
}

const char *lf_yolo_class_name(const lf_yolo_t *y, int i)
{
    return i >= 0 && i < y->n_names && y->names[i] ? y->names[i] : "";
}

int lf_yolo_is_seg(const lf_yolo_t *y)
{
    return y->seg;
}

/* ---- forward ------------------------------------------------------------------ */

typedef struct {
    float *d;
    int c, h, w;
} s_t;

static int s_alloc_t(s_t *t, int c, int h, int w)
{
    t->c = c, t->h = h, t->w = w;
    t->d = malloc((size_t)c * h * w * sizeof *t->d);
    return t->d ? 0 : LF_ENOMEM;
}

static float s_silu(float v)
{
    return v / (1.0f + expf(-v));
}

/* conv (groups = x.c / cig, pad k/2) + SiLU when act. */
static int s_conv(const s_conv_t *c, const s_t *x, s_t *y)
{
    if (!c->w || x->c % c->cig) return LF_EINVAL;
    int g = x->c / c->cig, k = c->k, p = k / 2, s = c->s;
    if (c->co % g) return LF_EINVAL;
    int ho = (x->h + 2 * p - k) / s + 1, wo = (x->w + 2 * p - k) / s + 1, og = c->co / g;
    if (s_alloc_t(y, c->co, ho, wo)) return LF_ENOMEM;
    size_t hw = (size_t)ho * wo, kk = (size_t)c->cig * k * k;
    if (k == 1 && s == 1 && g == 1) {
        for (int o = 0; o < c->co; o++)
            for (size_t i = 0; i < hw; i++) y->d[o * hw + i] = c->b[o];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->co, (int)hw, c->cig, 1.0f, c->w, c->cig, x->d,
                    (int)hw, 1.0f, y->d, (int)hw);
    } else if (c->cig == 1 && og == 1) { /* depthwise: direct */
        for (int ch = 0; ch < c->co; ch++) {
            const float *src = x->d + (size_t)ch * x->h * x->w, *wk = c->w + (size_t)ch * k * k;
            float *dst = y->d + (size_t)ch * hw;
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    float acc = 0.0f;
                    for (int ky = 0; ky < k; ky++) {
                        int iy = oy * s - p + ky;
                        if (iy < 0 || iy >= x->h) continue;
                        for (int kx = 0; kx < k; kx++) {
                            int ix = ox * s - p + kx;
                            if (ix >= 0 && ix < x->w) acc += src[(size_t)iy * x->w + ix] * wk[ky * k + kx];
                        }
                    }
                    dst[(size_t)oy * wo + ox] = acc + c->b[ch];
                }
        }
    } else { /* im2col + sgemm per group */
        float *col = malloc(kk * hw * sizeof *col);
        if (!col) {
            free(y->d);
            y->d = NULL;
            return LF_ENOMEM;
        }
        for (int gi = 0; gi < g; gi++) {
            for (int ci = 0; ci < c->cig; ci++)
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        float *row = col + (((size_t)ci * k + ky) * k + kx) * hw;
                        const float *src = x->d + (size_t)(gi * c->cig + ci) * x->h * x->w;
                        for (int oy = 0; oy < ho; oy++) {
                            int iy = oy * s - p + ky;
                            for (int ox = 0; ox < wo; ox++) {
                                int ix = ox * s - p + kx;
                                row[(size_t)oy * wo + ox] =
                                    iy >= 0 && iy < x->h && ix >= 0 && ix < x->w ? src[(size_t)iy * x->w + ix] : 0.0f;
                            }
                        }
                    }
            float *dst = y->d + (size_t)gi * og * hw;
            for (int o = 0; o < og; o++)
                for (size_t i = 0; i < hw; i++) dst[o * hw + i] = c->b[gi * og + o];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, og, (int)hw, (int)kk, 1.0f,
                        c->w + (size_t)gi * og * kk, (int)kk, col, (int)hw, 1.0f, dst, (int)hw);
        }
        free(col);
    }
    if (c->act)
        for (size_t i = 0; i < (size_t)c->co * hw; i++) y->d[i] = s_silu(y->d[i]);
    return 0;
}

/* y = conv(x) in one call chain; x freed when own. */
static int s_conv_own(const s_conv_t *c, s_t *x, s_t *y, int own)
{
    int rc = s_conv(c, x, y);
    if (own) free(x->d), x->d = NULL;
    return rc;
}

static int s_concat(const s_t *parts, int n, s_t *y)
{
    int c = 0;
    for (int k = 0; k < n; k++) {
        if (parts[k].h != parts[0].h || parts[k].w != parts[0].w) return LF_EINVAL;
        c += parts[k].c;
    }
    if (s_alloc_t(y, c, parts[0].h, parts[0].w)) return LF_ENOMEM;
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        size_t sz = (size_t)parts[k].c * parts[k].h * parts[k].w;
        memcpy(y->d + off, parts[k].d, sz * sizeof *y->d);
        off += sz;
    }
    return 0;
}

static s_t s_slice(const s_t *x, int c0, int c)
{
    s_t v = {x->d + (size_t)c0 * x->h * x->w, c, x->h, x->w};
    return v;
}

static int s_bneck(const s_bneck_t *b, const s_t *x, s_t *y)
{
    s_t t;
    int rc = s_conv(&b->cv1, x, &t);
    if (!rc) rc = s_conv_own(&b->cv2, &t, y, 1);
    else free(t.d);
    if (!rc && b->add) {
        if (y->c != x->c) return LF_EINVAL;
        for (size_t i = 0; i < (size_t)y->c * y->h * y->w; i++) y->d[i] = x->d[i] + y->d[i];
    }
    return rc;
}

static int s_c3k(const s_c3k_t *c, const s_t *x, s_t *y)
{
    s_t a = {0}, b = {0}, t = {0}, parts[2];
    int rc = s_conv(&c->cv1, x, &a);
    for (int k = 0; !rc && k < c->n; k++) {
        rc = s_bneck(&c->m[k], &a, &t);
        free(a.d);
        a = t;
    }
    if (!rc) rc = s_conv(&c->cv2, x, &b);
    if (!rc) {
        parts[0] = a, parts[1] = b;
        rc = s_concat(parts, 2, &t);
        free(b.d);
        if (!rc) rc = s_conv_own(&c->cv3, &t, y, 1);
    }
    free(a.d);
    return rc;
}

/* C2f / C3k2: cv1 -> chunk(2) -> each block on the last part -> cat -> cv2 */
static int s_c2f(const s_layer_t *L, const s_t *x, s_t *y)
{
    s_t a, parts[66];
    int rc = s_conv(&L->cv1, x, &a), n = 0;
    if (rc) return rc;
    parts[n++] = s_slice(&a, 0, L->c);
    parts[n++] = s_slice(&a, L->c, L->c);
    for (int k = 0; !rc && k < L->n; k++) {
        rc = L->c3k ? s_c3k(&L->c3k[k], &parts[n - 1], &parts[n]) : s_bneck(&L->m[k], &parts[n - 1], &parts[n]);
        if (!rc) n++;
    }
    s_t cat = {0};
    if (!rc) rc = s_concat(parts, n, &cat);
    for (int k = 2; k < n; k++) free(parts[k].d);
    free(a.d);
    if (!rc) rc = s_conv_own(&L->cv2, &cat, y, 1);
    return rc;
}

static int s_maxpool(const s_t *x, int k, s_t *y)
{
    if (s_alloc_t(y, x->c, x->h, x->w)) return LF_ENOMEM;
    int p = k / 2;
    for (int c = 0; c < x->c; c++) {
        const float *src = x->d + (size_t)c * x->h * x->w;
        float *dst = y->d + (size_t)c * x->h * x->w;
        for (int oy = 0; oy < x->h; oy++)
            for (int ox = 0; ox < x->w; ox++) {
                float m = -INFINITY;
                for (int iy = oy - p; iy <= oy + p; iy++)
                    for (int ix = ox - p; ix <= ox + p; ix++)
                        if (iy >= 0 && iy < x->h && ix >= 0 && ix < x->w && src[(size_t)iy * x->w + ix] > m)
                            m = src[(size_t)iy * x->w + ix];
                dst[(size_t)oy * x->w + ox] = m;
            }
    }
    return 0;
}

static int s_sppf(const s_layer_t *L, const s_t *x, s_t *y)
{
    s_t parts[4] = {{0}};
    int rc = s_conv(&L->cv1, x, &parts[0]);
    for (int k = 1; !rc && k < 4; k++) rc = s_maxpool(&parts[k - 1], L->k, &parts[k]);
    s_t cat = {0};
    if (!rc) rc = s_concat(parts, 4, &cat);
    for (int k = 0; k < 4; k++) free(parts[k].d);
    if (!rc) rc = s_conv_own(&L->cv2, &cat, y, 1);
    return rc;
}

/* ultralytics' Attention: qkv viewed [heads][2 kd + hd][N]; softmax(q^T k *
 * scale) rows; v @ attn^T; + pe(v); proj. */
static int s_attention(const s_psa_t *p, const s_t *x, s_t *y)
{
    s_t qkv, vv = {0}, pe = {0}, o = {0};
    int rc = s_conv(&p->qkv, x, &qkv);
    if (rc) return rc;
    int N = x->h * x->w, per = 2 * p->kd + p->hd;
    float scale = powf((float)p->kd, -0.5f);
    float *attn = malloc((size_t)N * N * sizeof *attn);
    rc = !attn || s_alloc_t(&vv, x->c, x->h, x->w) || s_alloc_t(&o, x->c, x->h, x->w) ? LF_ENOMEM : 0;
    for (int h = 0; !rc && h < p->heads; h++) {
        const float *q = qkv.d + (size_t)h * per * N, *k = q + (size_t)p->kd * N, *v = k + (size_t)p->kd * N;
        memcpy(vv.d + (size_t)h * p->hd * N, v, (size_t)p->hd * N * sizeof *v);
        /* attn[i][j] = sum_d q[d][i] k[d][j] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, p->kd, scale, q, N, k, N, 0.0f, attn, N);
        for (int i = 0; i < N; i++) {
            float *r = attn + (size_t)i * N, m = -INFINITY, s = 0.0f;
            for (int j = 0; j < N; j++) m = r[j] > m ? r[j] : m;
            for (int j = 0; j < N; j++) s += (r[j] = expf(r[j] - m));
            for (int j = 0; j < N; j++) r[j] /= s;
        }
        /* out[d][i] = sum_j v[d][j] attn[i][j] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->hd, N, N, 1.0f, v, N, attn, N, 0.0f,
                    o.d + (size_t)h * p->hd * N, N);
    }
    free(attn);
    free(qkv.d);
    if (!rc) rc = s_conv(&p->pe, &vv, &pe);
    if (!rc)
        for (size_t i = 0; i < (size_t)x->c * N; i++) o.d[i] += pe.d[i];
    free(vv.d), free(pe.d);
    if (!rc) rc = s_conv(&p->proj, &o, y);
    free(o.d);
    return rc;
}

static int s_c2psa(const s_layer_t *L, const s_t *x, s_t *y)
{
    s_t a;
    int rc = s_conv(&L->cv1, x, &a);
    if (rc) return rc;
    s_t b = {0}, bv = s_slice(&a, L->c, L->c);
    if (s_alloc_t(&b, L->c, a.h, a.w)) rc = LF_ENOMEM;
    if (!rc) memcpy(b.d, bv.d, (size_t)L->c * a.h * a.w * sizeof *b.d);
    size_t n = (size_t)L->c * a.h * a.w;
    for (int k = 0; !rc && k < L->n; k++) {
        const s_psa_t *p = &L->psa[k];
        s_t t, f;
        rc = s_attention(p, &b, &t);
        if (!rc && t.c != b.c) rc = LF_EINVAL, free(t.d);
        if (rc) break;
        for (size_t i = 0; i < n; i++) b.d[i] += t.d[i];
        free(t.d);
        rc = s_conv(&p->ffn0, &b, &t);
        if (!rc) rc = s_conv_own(&p->ffn1, &t, &f, 1);
        if (!rc && f.c != b.c) rc = LF_EINVAL, free(f.d);
        if (rc) break;
        for (size_t i = 0; i < n; i++) b.d[i] += f.d[i];
        free(f.d);
    }
    if (!rc) {
        memcpy(a.d + n, b.d, n * sizeof *b.d);
        rc = s_conv(&L->cv2, &a, y);
    }
    free(a.d), free(b.d);
    return rc;
}

static int s_upsample(const s_t *x, int f, s_t *y)
{
    if (s_alloc_t(y, x->c, x->h * f, x->w * f)) return LF_ENOMEM;
    for (int c = 0; c < x->c; c++)
        for (int oy = 0; oy < y->h; oy++)
            for (int ox = 0; ox < y->w; ox++)
                y->d[((size_t)c * y->h + oy) * y->w + ox] = x->d[((size_t)c * x->h + oy / f) * x->w + ox / f];
    return 0;
}

static int s_chain(const s_conv_t *cs, int n, const s_t *x, s_t *y)
{
    s_t cur = *x, nx;
    for (int q = 0; q < n; q++) {
        int rc = s_conv(&cs[q], &cur, &nx);
        if (q) free(cur.d);
        if (rc) return rc;
        cur = nx;
    }
    *y = cur;
    return 0;
}

/* Proto: cv1, ConvTranspose2d(2, 2), cv2, cv3. */
static int s_proto(const s_head_t *h, const s_t *x, s_t *y)
{
    s_t a = {0}, u = {0}, b = {0};
    int rc = s_conv(&h->p_cv1, x, &a);
    if (rc) return rc;
    int ci = a.c, co = h->up_c;
    size_t hw = (size_t)a.h * a.w;
    float *tmp = malloc((size_t)co * 4 * hw * sizeof *tmp);
    if (!tmp || s_alloc_t(&u, co, a.h * 2, a.w * 2)) rc = LF_ENOMEM;
    if (!rc) {
        /* tmp[(o, dy, dx)][i] = sum_c W[c][(o, dy, dx)] x[c][i] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, co * 4, (int)hw, ci, 1.0f, h->up_w, co * 4, a.d,
                    (int)hw, 0.0f, tmp, (int)hw);
        for (int o = 0; o < co; o++)
            for (int d = 0; d < 4; d++)
                for (int iy = 0; iy < a.h; iy++)
                    for (int ix = 0; ix < a.w; ix++)
                        u.d[((size_t)o * u.h + 2 * iy + d / 2) * u.w + 2 * ix + d % 2] =
                            tmp[((size_t)o * 4 + d) * hw + (size_t)iy * a.w + ix] + h->up_b[o];
    }
    free(tmp), free(a.d);
    if (!rc) rc = s_conv_own(&h->p_cv2, &u, &b, 1);
    else free(u.d);
    if (!rc) rc = s_conv_own(&h->p_cv3, &b, y, 1);
    return rc;
}

static int s_head(const lf_yolo_t *yo, const s_t *xs, float **out, int *rows, int *anchors, float **proto)
{
    const s_head_t *h = &yo->head;
    int A = 0, nr = 4 + h->nc + (yo->seg ? h->nm : 0), rc = 0;
    for (int l = 0; l < h->nl; l++) A += xs[l].h * xs[l].w;
    float *o = calloc((size_t)nr * A, sizeof *o);
    if (!o) return LF_ENOMEM;
    int a0 = 0;
    for (int l = 0; l < h->nl && !rc; l++) {
        s_t box = {0}, cls = {0}, mc = {0};
        int hw = xs[l].h * xs[l].w;
        rc = s_chain(h->box[l], 3, &xs[l], &box);
        if (rc) break;
        rc = s_chain(h->cls[l], h->ncls_convs, &xs[l], &cls);
        if (!rc && yo->seg) rc = s_chain(h->mc[l], 3, &xs[l], &mc);
        if (!rc) {
            float st = (float)h->stride[l];
            for (int i = 0; i < hw; i++) {
                /* DFL: softmax over 16 bins, expectation; dist2bbox xywh */
                float dist[4];
                for (int s = 0; s < 4; s++) {
                    float m = -INFINITY, sum = 0.0f, e[16], acc = 0.0f;
                    for (int b = 0; b < 16; b++) {
                        float v = box.d[(size_t)(s * 16 + b) * hw + i];
                        m = v > m ? v : m;
                    }
                    for (int b = 0; b < 16; b++) sum += (e[b] = expf(box.d[(size_t)(s * 16 + b) * hw + i] - m));
                    for (int b = 0; b < 16; b++) acc += (e[b] / sum) * h->dfl[b];
                    dist[s] = acc;
                }
                float ax = (float)(i % xs[l].w) + 0.5f, ay = (float)(i / xs[l].w) + 0.5f;
                float x1 = ax - dist[0], y1 = ay - dist[1], x2 = ax + dist[2], y2 = ay + dist[3];
                size_t col = (size_t)(a0 + i);
                o[0 * (size_t)A + col] = (x1 + x2) / 2 * st;
                o[1 * (size_t)A + col] = (y1 + y2) / 2 * st;
                o[2 * (size_t)A + col] = (x2 - x1) * st;
                o[3 * (size_t)A + col] = (y2 - y1) * st;
                for (int c = 0; c < h->nc; c++)
                    o[(size_t)(4 + c) * A + col] = 1.0f / (1.0f + expf(-cls.d[(size_t)c * hw + i]));
                for (int c = 0; yo->seg && c < h->nm; c++)
                    o[(size_t)(4 + h->nc + c) * A + col] = mc.d[(size_t)c * hw + i];
            }
        }
        free(box.d), free(cls.d), free(mc.d);
        a0 += hw;
    }
    s_t pr = {0};
    if (!rc && yo->seg) rc = s_proto(h, &xs[0], &pr);
    if (rc) {
        free(o);
        return rc;
    }
    *out = o;
    *rows = nr;
    *anchors = A;
    if (proto) *proto = pr.d;
    else free(pr.d);
    return 0;
}

int lf_yolo_forward(lf_yolo_t *y, const float *x, int w, int h, float **out, int *rows, int *anchors,
                    float **proto)
{
    if (!y || !x || w <= 0 || h <= 0 || w % 32 || h % 32 || !out) return LF_EINVAL;
    if (proto) *proto = NULL;
    s_t outs[S_MAX_LAYERS] = {{0}};
    s_t in = {(float *)x, 3, h, w};
    int rc = 0, last = y->n_layers - 1;
    for (int i = 0; i < last && !rc; i++) {
        const s_layer_t *L = &y->layers[i];
        const s_t *src = i == 0 ? &in : &outs[L->from[0]];
        switch (L->type) {
        case M_CONV: rc = s_conv(&L->cv1, src, &outs[i]); break;
        case M_C2F: case M_C3K2: rc = s_c2f(L, src, &outs[i]); break;
        case M_SPPF: rc = s_sppf(L, src, &outs[i]); break;
        case M_C2PSA: rc = s_c2psa(L, src, &outs[i]); break;
        case M_UPSAMPLE: rc = s_upsample(src, L->scale, &outs[i]); break;
        case M_CONCAT: {
            s_t parts[S_MAX_FROM];
            for (int k = 0; k < L->nfrom; k++) parts[k] = outs[L->from[k]];
            rc = s_concat(parts, L->nfrom, &outs[i]);
            break;
        }
        default: rc = LF_EINVAL;
        }
    }
    if (!rc) {
        s_t xs[S_MAX_LEVELS];
        for (int k = 0; k < y->layers[last].nfrom; k++) xs[k] = outs[y->layers[last].from[k]];
        rc = s_head(y, xs, out, rows, anchors, proto);
    }
    for (int i = 0; i < S_MAX_LAYERS; i++) free(outs[i].d);
    return rc;
}

/* ---- predictor ---------------------------------------------------------------- */

/* cv2.resize(INTER_LINEAR) of 8-bit RGB: 11-bit fixed-point coefficients,
 * horizontal pass to int, vertical pass as OpenCV's SIMD path rounds it. */
static void s_cv_linear_coef(int dst, int src, int *idx, short *alpha)
{
    double scale = (double)src / dst;
    for (int d = 0; d < dst; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (s < 0) f = 0, s = 0;
        if (s >= src - 1) f = 0, s = src - 1;
        idx[d] = s;
        alpha[2 * d] = (short)lrintf((1.0f - f) * 2048.0f);
        alpha[2 * d + 1] = (short)lrintf(f * 2048.0f);
    }
}

static int s_cv_resize(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    int *xi = malloc((size_t)dw * sizeof *xi), *yi = malloc((size_t)dh * sizeof *yi);
    short *xa = malloc((size_t)dw * 2 * sizeof *xa), *ya = malloc((size_t)dh * 2 * sizeof *ya);
    int *r0 = malloc((size_t)dw * 3 * sizeof *r0), *r1 = malloc((size_t)dw * 3 * sizeof *r1);
    int rc = xi && yi && xa && ya && r0 && r1 ? 0 : LF_ENOMEM;
    if (!rc) {
        s_cv_linear_coef(dw, sw, xi, xa);
        s_cv_linear_coef(dh, sh, yi, ya);
        for (int y = 0; y < dh; y++) {
            for (int t = 0; t < 2; t++) {
                int sy = yi[y] + t < sh ? yi[y] + t : sh - 1;
                const uint8_t *row = src + (size_t)sy * sw * 3;
                int *r = t ? r1 : r0;
                for (int x = 0; x < dw; x++) {
                    int s0 = xi[x], s1 = s0 + 1 < sw ? s0 + 1 : s0;
                    for (int c = 0; c < 3; c++)
                        r[x * 3 + c] = row[s0 * 3 + c] * xa[2 * x] + row[s1 * 3 + c] * xa[2 * x + 1];
                }
            }
            short b0 = ya[2 * y], b1 = ya[2 * y + 1];
            for (int x = 0; x < dw * 3; x++) {
                int v = ((((r0[x] >> 4) * b0) >> 16) + (((r1[x] >> 4) * b1) >> 16) + 2) >> 2;
                dst[(size_t)y * dw * 3 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    free(xi), free(yi), free(xa), free(ya), free(r0), free(r1);
    return rc;
}

int lf_yolo_letterbox(const uint8_t *rgb, int w, int h, uint8_t **dst, int *dw_out, int *dh_out, int *pad_x,
                      int *pad_y)
{
    double r = fmin((double)S_IMGSZ / h, (double)S_IMGSZ / w);
    int nw = (int)nearbyint(w * r), nh = (int)nearbyint(h * r);
    double dw = (S_IMGSZ - nw) % 32 / 2.0, dh = (S_IMGSZ - nh) % 32 / 2.0;
    int top = (int)nearbyint(dh - 0.1), bottom = (int)nearbyint(dh + 0.1);
    int left = (int)nearbyint(dw - 0.1), right = (int)nearbyint(dw + 0.1);
    int ow = nw + left + right, oh = nh + top + bottom;
    uint8_t *out = malloc((size_t)ow * oh * 3), *rs = NULL;
    if (!out) return LF_ENOMEM;
    memset(out, 114, (size_t)ow * oh * 3);
    const uint8_t *img = rgb;
    if (nw != w || nh != h) {
        if (!(rs = malloc((size_t)nw * nh * 3)) || s_cv_resize(rgb, w, h, rs, nw, nh)) {
            free(rs), free(out);
            return LF_ENOMEM;
        }
        img = rs;
    }
    for (int y = 0; y < nh; y++)
        memcpy(out + ((size_t)(y + top) * ow + left) * 3, img + (size_t)y * nw * 3, (size_t)nw * 3);
    free(rs);
    *dst = out;
    *dw_out = ow, *dh_out = oh, *pad_x = left, *pad_y = top;
    return 0;
}

typedef struct {
    float b[4], score;
    int cls, idx;
} s_cand_t;

static int s_cmp_score(const void *a, const void *b)
{
    const s_cand_t *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->idx - y->idx;
}

int lf_yolo_predict(lf_yolo_t *y, const uint8_t *rgb, int w, int h, double confidence, lf_yolo_det_t *out, int max,
                    uint8_t **masks)
{
    if (masks) *masks = NULL;
    if (!y || !rgb || w <= 0 || h <= 0 || (max > 0 && !out)) return LF_EINVAL;
    uint8_t *lb;
    int lw, lh, px, py, rc; /* scale_boxes recomputes the padding from the sizes, as ultralytics */
    if ((rc = lf_yolo_letterbox(rgb, w, h, &lb, &lw, &lh, &px, &py)) != 0) return rc;
    float *x = malloc((size_t)3 * lw * lh * sizeof *x);
    if (!x) {
        free(lb);
        return LF_ENOMEM;
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < (size_t)lw * lh; i++) x[(size_t)c * lw * lh + i] = (float)lb[i * 3 + c] / 255.0f;
    free(lb);
    float *o = NULL, *proto = NULL;
    int rows, A;
    rc = lf_yolo_forward(y, x, lw, lh, &o, &rows, &A, y->seg ? &proto : NULL);
    free(x);
    if (rc) return rc;
    const s_head_t *hd = &y->head;
    float conf = (float)confidence;
    s_cand_t *cand = malloc((size_t)(A ? A : 1) * sizeof *cand);
    int n = 0;
    if (!cand) rc = LF_ENOMEM;
    for (int a = 0; !rc && a < A; a++) {
        float best = o[(size_t)4 * A + a];
        int bc = 0;
        for (int c = 1; c < hd->nc; c++)
            if (o[(size_t)(4 + c) * A + a] > best) best = o[(size_t)(4 + c) * A + a], bc = c;
        if (!(best > conf)) continue;
        float cx = o[a], cy = o[(size_t)A + a], hw2 = o[(size_t)2 * A + a] / 2, hh2 = o[(size_t)3 * A + a] / 2;
        cand[n] = (s_cand_t){{cx - hw2, cy - hh2, cx + hw2, cy + hh2}, best, bc, a};
        n++;
    }
    if (!rc) qsort(cand, (size_t)n, sizeof *cand, s_cmp_score);
    if (n > 30000) n = 30000; /* max_nms */
    /* torchvision.ops.nms over boxes offset by class * max_wh (7680) */
    int keep_n = 0;
    int *keep = malloc((size_t)(n ? n : 1) * sizeof *keep);
    unsigned char *sup = calloc((size_t)(n ? n : 1), 1);
    float *bx = malloc((size_t)(n ? n : 1) * 5 * sizeof *bx);
    if (!rc && (!keep || !sup || !bx)) rc = LF_ENOMEM;
    for (int i = 0; !rc && i < n; i++) {
        float off = (float)cand[i].cls * 7680.0f;
        for (int k = 0; k < 4; k++) bx[i * 5 + k] = cand[i].b[k] + off;
        bx[i * 5 + 4] = (bx[i * 5 + 2] - bx[i * 5 + 0]) * (bx[i * 5 + 3] - bx[i * 5 + 1]);
    }
    for (int i = 0; !rc && i < n && keep_n < 300; i++) {
        if (sup[i]) continue;
        keep[keep_n++] = i;
        for (int j = i + 1; j < n; j++) {
            if (sup[j]) continue;
            float xx1 = fmaxf(bx[i * 5], bx[j * 5]), yy1 = fmaxf(bx[i * 5 + 1], bx[j * 5 + 1]);
            float xx2 = fminf(bx[i * 5 + 2], bx[j * 5 + 2]), yy2 = fminf(bx[i * 5 + 3], bx[j * 5 + 3]);
            float iw = fmaxf(0.0f, xx2 - xx1), ih = fmaxf(0.0f, yy2 - yy1), inter = iw * ih;
            float ovr = inter / (bx[i * 5 + 4] + bx[j * 5 + 4] - inter);
            if ((double)ovr > 0.7) sup[j] = 1; /* iou_threshold is a double in torchvision */
        }
    }
    /* masks: process_mask at the letterboxed size, then mask_to_pil */
    if (!rc && masks && y->seg && keep_n) {
        int mh = lh / 4, mw = lw / 4, nm = hd->nm;
        size_t mhw = (size_t)mh * mw;
        float *mk = calloc((size_t)keep_n * mhw, sizeof *mk), *up = malloc((size_t)keep_n * lw * lh * sizeof *up);
        uint8_t *rgbm = malloc((size_t)lw * lh * 3), *rsz = malloc((size_t)w * h * 3);
        uint8_t *res = malloc((size_t)keep_n * w * h);
        if (!mk || !up || !rgbm || !rsz || !res) rc = LF_ENOMEM;
        for (int k = 0; !rc && k < keep_n; k++) {
            const s_cand_t *c = &cand[keep[k]];
            float coef[64];
            for (int q = 0; q < nm && q < 64; q++) coef[q] = o[(size_t)(4 + hd->nc + q) * A + c->idx];
            cblas_sgemv(CblasRowMajor, CblasTrans, nm, (int)mhw, 1.0f, proto, (int)mhw, coef, 1, 0.0f,
                        mk + (size_t)k * mhw, 1);
            float wr = (float)mw / lw, hr = (float)mh / lh;
            float x1 = c->b[0] * wr, x2 = c->b[2] * wr, y1 = c->b[1] * hr, y2 = c->b[3] * hr;
            for (int yy = 0; yy < mh; yy++)
                for (int xx = 0; xx < mw; xx++)
                    if (!((float)xx >= x1 && (float)xx < x2 && (float)yy >= y1 && (float)yy < y2))
                        mk[(size_t)k * mhw + (size_t)yy * mw + xx] = 0.0f;
        }
        if (!rc) rc = lf_resize_latent(mk, keep_n, mh, mw, up, lh, lw, LF_RESIZE_BILINEAR, 0);
        for (int k = 0; !rc && k < keep_n; k++) {
            const float *u = up + (size_t)k * lw * lh;
            for (size_t i = 0; i < (size_t)lw * lh; i++) rgbm[i * 3] = rgbm[i * 3 + 1] = rgbm[i * 3 + 2] = u[i] > 0.0f ? 255 : 0;
            rc = lf_resize_rgb8(rgbm, lw, lh, rsz, w, h, LF_RESIZE_BICUBIC);
            for (size_t i = 0; !rc && i < (size_t)w * h; i++) res[(size_t)k * w * h + i] = rsz[i * 3];
        }
        free(mk), free(up), free(rgbm), free(rsz);
        if (!rc) *masks = res;
        else free(res);
    }
    /* scale_boxes (letterboxed -> image pixels), clip */
    double gain = fmin((double)lh / h, (double)lw / w);
    double padx = nearbyint((lw - w * gain) / 2 - 0.1), pady = nearbyint((lh - h * gain) / 2 - 0.1);
    for (int k = 0; !rc && k < keep_n && k < max; k++) {
        const s_cand_t *c = &cand[keep[k]];
        float b[4] = {c->b[0] - (float)padx, c->b[1] - (float)pady, c->b[2] - (float)padx, c->b[3] - (float)pady};
        for (int q = 0; q < 4; q++) {
            b[q] /= (float)gain;
            float lim = q % 2 ? (float)h : (float)w;
            b[q] = b[q] < 0.0f ? 0.0f : b[q] > lim ? lim : b[q];
        }
        out[k] = (lf_yolo_det_t){b[0], b[1], b[2], b[3], c->score, c->cls};
    }
    free(keep), free(sup), free(bx), free(cand), free(o), free(proto);
    return rc ? rc : keep_n;
}
