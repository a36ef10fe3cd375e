/* lf_taesd: the TAESD decoder as a sequential list of layers read from the
 * file's indices ("N.weight": 3x3 conv, "N.conv.0.weight": block, gaps:
 * the input clamp at 0, a ReLU at 2, nearest 2x upsamples elsewhere), as
 * madebyollin/taesd's Decoder. diffusers AutoencoderTiny files
 * ("decoder.layers.N", without the clamp) are shifted by one. Channels come
 * from shapes, so the same code serves SD/SDXL (4 latent channels) and the
 * FLUX.2 variant, whose blocks add x + pool(x) with pool = 1x1 conv (4C),
 * GroupNorm(4), ReLU, 1x1 conv (C). */
#include "lf_taesd.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_graph.h"
#include "lf_keymap.h"
#include "lf_unet.h"
#include "lf_weights.h"

#define MAX_LAYERS 64

typedef enum { L_NONE = 0, L_CLAMP, L_RELU, L_UP, L_CONV, L_BLOCK } s_kind_t;

typedef struct {
    s_kind_t kind;
    lf_tensor_t *w, *b;                /* conv */
    lf_tensor_t *cw[3], *cb[3], *skip; /* block */
    lf_tensor_t *p0, *gw, *gb, *p3;    /* FLUX.2 pool branch */
} s_layer_t;

struct lf_taesd {
    lf_backend_t *be;
    int latent_ch, n, scale;
    s_layer_t l[MAX_LAYERS];
    int h, w;
    lf_graph_t *g;
    lf_tensor_t *in, *out;
    float *tmp;
};

int lf_taesd_new(lf_taesd_t **out, const char *path, lf_backend_t *be, lf_pool_t *pool, char *err,
                 size_t errlen) {
    lf_weights_t *w = NULL;
    int rc = lf_weights_open(&w, path, err, errlen);
    if (rc) return rc;
    lf_taesd_t *t = calloc(1, sizeof *t);
    if (!t) {
        lf_weights_destroy(&w);
        return LF_ENOMEM;
    }
    t->be = be;
    lf_keymap_t km = {.w = w, .kind = LF_KEYMAP_DIFFUSERS};
    int shift = 0;
    if (lf_keymap_has_prefix(w, "decoder.layers.")) {
        strcpy(km.prefix, "decoder.layers.");
        shift = 1;
    }
    /* Highest index present. */
    int top = -1;
    for (int i = 0; i < MAX_LAYERS; i++) {
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "%d.weight", i - shift);
        snprintf(n2, sizeof n2, "%d.conv.0.weight", i - shift);
        if (i - shift >= 0 && (lf_keymap_find(&km, n1) || lf_keymap_find(&km, n2))) top = i;
    }
    lf_keymap_loader_t ld = {.km = &km, .pool = pool, .pool_prefix = "taesd.", .type = 0,
                             .err = err, .errlen = errlen};
    if (top < 2) {
        if (errlen)
            snprintf(err, errlen, "%s: not a TAESD decoder (no N.weight / N.conv.0.weight)", path);
        ld.rc = LF_EFORMAT;
    }
    int ups = 0;
    for (int i = 0; i <= top && !ld.rc; i++) {
        s_layer_t *L = &t->l[i];
        const int k = i - shift;
        char n[64];
        snprintf(n, sizeof n, "%d.conv.0.weight", k);
        if (k >= 0 && lf_keymap_find(&km, n)) {
            L->kind = L_BLOCK;
            for (int j = 0; j < 3; j++) {
                L->cw[j] =
                    lf_keymap_load(&ld, 4, LF__SHAPE(-1, -1, 3, 3), "%d.conv.%d.weight", k, 2 * j);
                L->cb[j] = lf_keymap_load(&ld, 1, LF__SHAPE(-1), "%d.conv.%d.bias", k, 2 * j);
            }
            L->skip = lf_keymap_load_opt(&ld, 4, LF__SHAPE(-1, -1, 1, 1), "%d.skip.weight", k);
            L->p0 = lf_keymap_load_opt(&ld, 4, LF__SHAPE(-1, -1, 1, 1), "%d.pool.0.weight", k);
            if (L->p0) {
                L->gw = lf_keymap_load(&ld, 1, LF__SHAPE(-1), "%d.pool.1.weight", k);
                L->gb = lf_keymap_load(&ld, 1, LF__SHAPE(-1), "%d.pool.1.bias", k);
                L->p3 = lf_keymap_load(&ld, 4, LF__SHAPE(-1, -1, 1, 1), "%d.pool.3.weight", k);
            }
            continue;
        }
        snprintf(n, sizeof n, "%d.weight", k);
        const lf_tensor_info_t *ti = k >= 0 ? lf_keymap_find(&km, n) : NULL;
        if (ti) {
            L->kind = L_CONV;
            L->w = lf_keymap_load(&ld, 4, LF__SHAPE(-1, -1, 3, 3), "%d.weight", k);
            L->b = lf_keymap_load_opt(&ld, 1, LF__SHAPE(-1), "%d.bias", k);
            if (!t->latent_ch) t->latent_ch = (int)ti->shape[1];
        } else {
            L->kind = i == 0 ? L_CLAMP : i == 2 ? L_RELU : L_UP;
            ups += L->kind == L_UP;
        }
    }
    lf_weights_destroy(&w);
    if (ld.rc) {
        free(t);
        return ld.rc;
    }
    t->n = top + 1;
    t->scale = 1 << ups;
    *out = t;
    return 0;
}

void lf_taesd_destroy(lf_taesd_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_graph_destroy(&(*self_p)->g);
    free((*self_p)->tmp);
    free(*self_p);
    *self_p = NULL;
}

int lf_taesd_latent_channels(const lf_taesd_t *self) { return self->latent_ch; }
int lf_taesd_scale(const lf_taesd_t *self) { return self->scale; }

static lf_tensor_t *s_relu(lf_graph_t *g, lf_tensor_t *x) {
    return lf_graph_clamp(g, x, 0.0f, FLT_MAX);
}

static int s_build(lf_taesd_t *t) {
    lf_graph_t *g = t->g = lf_graph_new(t->be);
    if (!g) return LF_ENOMEM;
    t->in = lf_graph_input(g, LF_TYPE_F32, t->w, t->h, t->latent_ch, 1);
    lf_tensor_t *x = t->in;
    for (int i = 0; i < t->n; i++) {
        const s_layer_t *L = &t->l[i];
        switch (L->kind) {
        case L_CLAMP: break; /* tanh(x/3)*3 is applied on the host before upload */
        case L_RELU: x = s_relu(g, x); break;
        case L_UP: x = lf_graph_upsample2x(g, x); break;
        case L_CONV: x = lf_graph_conv2d(g, x, L->w, L->b, 1, 1); break;
        case L_BLOCK: {
            if (L->p0) {
                lf_tensor_t *p = lf_graph_conv2d(g, x, L->p0, NULL, 1, 0);
                p = s_relu(g, lf_graph_group_norm(g, p, L->gw, L->gb, 4, 1e-5f, 0));
                x = lf_graph_add(g, x, lf_graph_conv2d(g, p, L->p3, NULL, 1, 0));
            }
            lf_tensor_t *h = s_relu(g, lf_graph_conv2d(g, x, L->cw[0], L->cb[0], 1, 1));
            h = s_relu(g, lf_graph_conv2d(g, h, L->cw[1], L->cb[1], 1, 1));
            h = lf_graph_conv2d(g, h, L->cw[2], L->cb[2], 1, 1);
            lf_tensor_t *s = L->skip ? lf_graph_conv2d(g, x, L->skip, NULL, 1, 0) : x;
            x = s_relu(g, lf_graph_add(g, h, s));
            break;
        }
        default: break;
        }
    }
    t->out = lf_graph_output(g, x);
    return lf_graph_plan(g);
}

int lf_taesd_decode(lf_taesd_t *self, const float *z, int h, int w, float *rgb) {
    if (!self || !z || !rgb || h < 1 || w < 1) return LF_EINVAL;
    if (!self->g || self->h != h || self->w != w) {
        lf_graph_destroy(&self->g);
        free(self->tmp);
        self->tmp = malloc((size_t)self->latent_ch * h * w * sizeof *self->tmp);
        if (!self->tmp) return LF_ENOMEM;
        self->h = h, self->w = w;
        int rc = s_build(self);
        if (rc) {
            lf_graph_destroy(&self->g);
            return rc;
        }
    }
    const size_t n = (size_t)self->latent_ch * h * w;
    const int clamp = self->l[0].kind == L_CLAMP || self->l[0].kind == L_NONE;
    for (size_t i = 0; i < n; i++) self->tmp[i] = clamp ? tanhf(z[i] / 3.0f) * 3.0f : z[i];
    int rc = lf_backend_tensor_set(self->be, self->in, self->tmp, n * sizeof(float));
    if (!rc) rc = lf_graph_compute(self->g);
    if (!rc) rc = lf_backend_sync(self->be);
    if (!rc) rc = lf_backend_tensor_get(self->be, self->out, rgb, lf_tensor_nbytes(self->out));
    return rc;
}
