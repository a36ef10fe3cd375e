/* lf_vae: AutoencoderKL encoder/decoder graphs (one cached per shape) and
 * the tiling that bounds their memory on large images. */
#include "lf_vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_unet.h"

#define S LF__SHAPE

typedef struct {
    lf_tensor_t *n1w, *n1b, *c1w, *c1b, *n2w, *n2b, *c2w, *c2b, *scw, *scb;
} s_res_t;

typedef struct {
    lf_tensor_t *nw, *nb, *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob;
} s_attn_t;

typedef struct {
    lf_tensor_t *ciw, *cib, *now, *nob, *cow, *cob, *qcw, *qcb;
    s_res_t res[8][8], mid[2];
    s_attn_t attn;
    int has_attn;
    lf_tensor_t *sw[8], *sb[8]; /* down/up sampler convs */
} s_half_t;

typedef struct {
    int batch, h, w; /* input spatial size */
    lf_graph_t *g;
    lf_tensor_t *in, *out;
} s_cache_t;

struct lf_vae {
    lf_vae_config_t c;
    lf_backend_t *be;
    s_half_t dec, enc;
    s_cache_t dcache, ecache;
    const lf_pool_t *release; /* lf_vae_set_weight_release: borrowed, or NULL */
};

static void s_load_res(lf_keymap_loader_t *ld, s_res_t *r, int cin, int cout, const char *pre) {
    r->n1w = lf_keymap_load(ld, 1, S(cin), "%s.norm1.weight", pre);
    r->n1b = lf_keymap_load(ld, 1, S(cin), "%s.norm1.bias", pre);
    r->c1w = lf_keymap_load(ld, 4, S(cout, cin, 3, 3), "%s.conv1.weight", pre);
    r->c1b = lf_keymap_load(ld, 1, S(cout), "%s.conv1.bias", pre);
    r->n2w = lf_keymap_load(ld, 1, S(cout), "%s.norm2.weight", pre);
    r->n2b = lf_keymap_load(ld, 1, S(cout), "%s.norm2.bias", pre);
    r->c2w = lf_keymap_load(ld, 4, S(cout, cout, 3, 3), "%s.conv2.weight", pre);
    r->c2b = lf_keymap_load(ld, 1, S(cout), "%s.conv2.bias", pre);
    if (cin != cout) {
        r->scw = lf_keymap_load(ld, 4, S(cout, cin, 1, 1), "%s.conv_shortcut.weight", pre);
        r->scb = lf_keymap_load(ld, 1, S(cout), "%s.conv_shortcut.bias", pre);
    }
}

static void s_load_attn(lf_keymap_loader_t *ld, s_attn_t *a, int C, const char *pre) {
    /* diffusers >= 0.14 names (to_q), else the older query/key/value. */
    char n[160];
    snprintf(n, sizeof n, "%s.to_q.weight", pre);
    int old = !lf_keymap_find(ld->km, n);
    a->nw = lf_keymap_load(ld, 1, S(C), "%s.group_norm.weight", pre);
    a->nb = lf_keymap_load(ld, 1, S(C), "%s.group_norm.bias", pre);
    a->qw = lf_keymap_load(ld, 2, S(C, C), "%s.%s.weight", pre, old ? "query" : "to_q");
    a->qb = lf_keymap_load(ld, 1, S(C), "%s.%s.bias", pre, old ? "query" : "to_q");
    a->kw = lf_keymap_load(ld, 2, S(C, C), "%s.%s.weight", pre, old ? "key" : "to_k");
    a->kb = lf_keymap_load(ld, 1, S(C), "%s.%s.bias", pre, old ? "key" : "to_k");
    a->vw = lf_keymap_load(ld, 2, S(C, C), "%s.%s.weight", pre, old ? "value" : "to_v");
    a->vb = lf_keymap_load(ld, 1, S(C), "%s.%s.bias", pre, old ? "value" : "to_v");
    a->ow = lf_keymap_load(ld, 2, S(C, C), "%s.%s.weight", pre, old ? "proj_attn" : "to_out.0");
    a->ob = lf_keymap_load(ld, 1, S(C), "%s.%s.bias", pre, old ? "proj_attn" : "to_out.0");
}

static int s_config(lf_vae_config_t *c, const lf_keymap_t *km, const json_t *cfg, char *err,
                    size_t errlen) {
    memset(c, 0, sizeof *c);
    char n[160];
    int L = 0;
    for (; L < 8; L++) {
        snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.0.conv1.weight", L);
        if (!lf_keymap_find(km, n)) break;
    }
    /* The LDM map needs the level count to name decoder levels. */
    if (km->kind == LF_KEYMAP_LDM_VAE) L = km->levels;
    while (c->layers < 8) {
        snprintf(n, sizeof n, "decoder.up_blocks.0.resnets.%d.conv1.weight", c->layers);
        if (!lf_keymap_find(km, n)) break;
        c->layers++;
    }
    c->layers--; /* the decoder has one more resnet per block */
    const lf_tensor_info_t *t = lf_keymap_find(km, "decoder.conv_in.weight");
    const lf_tensor_info_t *o = lf_keymap_find(km, "decoder.conv_out.weight");
    if (L < 1 || c->layers < 1 || !t || t->ndim != 4 || !o || o->ndim != 4) {
        if (errlen)
            snprintf(err, errlen, "%s: VAE layout not recognised (decoder.conv_in / up blocks)",
                     lf_weights_path(km->w));
        return LF_EFORMAT;
    }
    c->levels = L;
    c->latent_ch = (int)t->shape[1];
    c->img_ch = (int)o->shape[0];
    for (int i = 0; i < L; i++) {
        snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.0.conv1.weight", L - 1 - i);
        const lf_tensor_info_t *r = lf_keymap_find(km, n);
        if (!r || r->ndim != 4) {
            if (errlen)
                snprintf(err, errlen, "%s: missing VAE tensor for %s", lf_weights_path(km->w), n);
            return LF_ENOTFOUND;
        }
        c->ch[i] = (int)r->shape[0];
    }
    c->has_encoder = lf_keymap_find(km, "encoder.conv_in.weight") != NULL;
    c->groups = lf__json_int(cfg, "norm_num_groups", 0, 32);
    c->scaling_factor = (float)lf__json_num(cfg, "scaling_factor", 0.18215);
    c->shift_factor = (float)lf__json_num(cfg, "shift_factor", 0.0);
    for (int i = 0; i < L; i++)
        if (c->ch[i] % c->groups) {
            if (errlen) snprintf(err, errlen, "%s: VAE channels %d not divisible by %d groups",
                                 lf_weights_path(km->w), c->ch[i], c->groups);
            return LF_EFORMAT;
        }
    return 0;
}

int lf_vae_new(lf_vae_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
               lf_pool_t *pool, int type, const char *pool_prefix, char *err, size_t errlen) {
    lf_vae_t *v = calloc(1, sizeof *v);
    if (!v) return LF_ENOMEM;
    v->be = be;
    int rc = s_config(&v->c, km, config, err, errlen);
    if (rc) {
        free(v);
        return rc;
    }
    const lf_vae_config_t *c = &v->c;
    const int L = c->levels, Z = c->latent_ch, Ct = c->ch[L - 1];
    lf_keymap_loader_t ld = {.km = km, .pool = pool, .pool_prefix = pool_prefix, .type = type,
                             .err = err, .errlen = errlen};
    char p[128];
    /* Decoder. */
    s_half_t *d = &v->dec;
    /* Flux's VAE has no quant convs (diffusers use_quant_conv = False). */
    d->qcw = lf_keymap_load_opt(&ld, 4, S(Z, Z, 1, 1), "post_quant_conv.weight");
    if (d->qcw) d->qcb = lf_keymap_load(&ld, 1, S(Z), "post_quant_conv.bias");
    d->ciw = lf_keymap_load(&ld, 4, S(Ct, Z, 3, 3), "decoder.conv_in.weight");
    d->cib = lf_keymap_load(&ld, 1, S(Ct), "decoder.conv_in.bias");
    s_load_res(&ld, &d->mid[0], Ct, Ct, "decoder.mid_block.resnets.0");
    s_load_attn(&ld, &d->attn, Ct, "decoder.mid_block.attentions.0");
    s_load_res(&ld, &d->mid[1], Ct, Ct, "decoder.mid_block.resnets.1");
    int prev = Ct;
    for (int i = 0; i < L; i++) {
        int Co = c->ch[L - 1 - i];
        for (int j = 0; j <= c->layers; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            s_load_res(&ld, &d->res[i][j], prev, Co, p);
            prev = Co;
        }
        if (i < L - 1) {
            d->sw[i] = lf_keymap_load(&ld, 4, S(Co, Co, 3, 3),
                                      "decoder.up_blocks.%d.upsamplers.0.conv.weight", i);
            d->sb[i] =
                lf_keymap_load(&ld, 1, S(Co), "decoder.up_blocks.%d.upsamplers.0.conv.bias", i);
        }
    }
    d->now = lf_keymap_load(&ld, 1, S(c->ch[0]), "decoder.conv_norm_out.weight");
    d->nob = lf_keymap_load(&ld, 1, S(c->ch[0]), "decoder.conv_norm_out.bias");
    d->cow = lf_keymap_load(&ld, 4, S(c->img_ch, c->ch[0], 3, 3), "decoder.conv_out.weight");
    d->cob = lf_keymap_load(&ld, 1, S(c->img_ch), "decoder.conv_out.bias");
    if (c->has_encoder) {
        s_half_t *e = &v->enc;
        e->ciw = lf_keymap_load(&ld, 4, S(c->ch[0], c->img_ch, 3, 3), "encoder.conv_in.weight");
        e->cib = lf_keymap_load(&ld, 1, S(c->ch[0]), "encoder.conv_in.bias");
        prev = c->ch[0];
        for (int l = 0; l < L; l++) {
            for (int j = 0; j < c->layers; j++) {
                snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", l, j);
                s_load_res(&ld, &e->res[l][j], prev, c->ch[l], p);
                prev = c->ch[l];
            }
            if (l < L - 1) {
                e->sw[l] = lf_keymap_load(&ld, 4, S(prev, prev, 3, 3),
                                          "encoder.down_blocks.%d.downsamplers.0.conv.weight", l);
                e->sb[l] = lf_keymap_load(&ld, 1, S(prev),
                                          "encoder.down_blocks.%d.downsamplers.0.conv.bias", l);
            }
        }
        s_load_res(&ld, &e->mid[0], Ct, Ct, "encoder.mid_block.resnets.0");
        s_load_attn(&ld, &e->attn, Ct, "encoder.mid_block.attentions.0");
        s_load_res(&ld, &e->mid[1], Ct, Ct, "encoder.mid_block.resnets.1");
        e->now = lf_keymap_load(&ld, 1, S(Ct), "encoder.conv_norm_out.weight");
        e->nob = lf_keymap_load(&ld, 1, S(Ct), "encoder.conv_norm_out.bias");
        e->cow = lf_keymap_load(&ld, 4, S(2 * Z, Ct, 3, 3), "encoder.conv_out.weight");
        e->cob = lf_keymap_load(&ld, 1, S(2 * Z), "encoder.conv_out.bias");
        e->qcw = lf_keymap_load_opt(&ld, 4, S(2 * Z, 2 * Z, 1, 1), "quant_conv.weight");
        if (e->qcw) e->qcb = lf_keymap_load(&ld, 1, S(2 * Z), "quant_conv.bias");
    }
    if (ld.rc) {
        free(v);
        return ld.rc;
    }
    *out = v;
    return 0;
}

void lf_vae_destroy(lf_vae_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_graph_destroy(&(*self_p)->dcache.g);
    lf_graph_destroy(&(*self_p)->ecache.g);
    free(*self_p);
    *self_p = NULL;
}

const lf_vae_config_t *lf_vae_config(const lf_vae_t *self) { return &self->c; }
int lf_vae_scale(const lf_vae_t *self) { return 1 << (self->c.levels - 1); }

static lf_tensor_t *s_resnet(lf_graph_t *g, int G, const s_res_t *r, lf_tensor_t *x) {
    lf_tensor_t *h = lf_graph_group_norm(g, x, r->n1w, r->n1b, G, 1e-6f, 1);
    h = lf_graph_conv2d(g, h, r->c1w, r->c1b, 1, 1);
    h = lf_graph_group_norm(g, h, r->n2w, r->n2b, G, 1e-6f, 1);
    h = lf_graph_conv2d(g, h, r->c2w, r->c2b, 1, 1);
    lf_tensor_t *s = r->scw ? lf_graph_conv2d(g, x, r->scw, r->scb, 1, 0) : x;
    return lf_graph_add(g, s, h);
}

static lf_tensor_t *s_attention(lf_graph_t *g, int G, const s_attn_t *a, lf_tensor_t *x) {
    if (!x) return NULL;
    const int64_t W = x->ne[0], H = x->ne[1];
    lf_tensor_t *t = lf__nn_to_tokens(g, lf_graph_group_norm(g, x, a->nw, a->nb, G, 1e-6f, 0));
    lf_tensor_t *q = lf_graph_matmul(g, t, a->qw, a->qb);
    lf_tensor_t *k = lf_graph_matmul(g, t, a->kw, a->kb);
    lf_tensor_t *v = lf_graph_matmul(g, t, a->vw, a->vb);
    lf_tensor_t *o = lf_graph_matmul(g, lf_graph_mha(g, q, k, v, NULL, 1), a->ow, a->ob);
    return lf_graph_add(g, lf__nn_from_tokens(g, o, W, H), x);
}

static lf_tensor_t *s_mid(lf_graph_t *g, int G, const s_half_t *d, lf_tensor_t *h) {
    h = s_resnet(g, G, &d->mid[0], h);
    h = s_attention(g, G, &d->attn, h);
    return s_resnet(g, G, &d->mid[1], h);
}

static int s_build_dec(lf_vae_t *v, s_cache_t *e) {
    const lf_vae_config_t *c = &v->c;
    const s_half_t *d = &v->dec;
    const int G = c->groups;
    lf_graph_t *g = e->g = lf_graph_new(v->be);
    if (!g) return LF_ENOMEM;
    if (v->release) lf_graph_set_after(g, lf_pool_release_after, (void *)v->release);
    e->in = lf_graph_input(g, LF_TYPE_F32, e->w, e->h, c->latent_ch, e->batch);
    lf_tensor_t *h = d->qcw ? lf_graph_conv2d(g, e->in, d->qcw, d->qcb, 1, 0) : e->in;
    h = lf_graph_conv2d(g, h, d->ciw, d->cib, 1, 1);
    h = s_mid(g, G, d, h);
    for (int i = 0; i < c->levels; i++) {
        for (int j = 0; j <= c->layers; j++) h = s_resnet(g, G, &d->res[i][j], h);
        if (i < c->levels - 1)
            h = lf_graph_conv2d(g, lf_graph_upsample2x(g, h), d->sw[i], d->sb[i], 1, 1);
    }
    h = lf_graph_group_norm(g, h, d->now, d->nob, G, 1e-6f, 1);
    h = lf_graph_conv2d(g, h, d->cow, d->cob, 1, 1);
    e->out = lf_graph_output(g, h);
    return lf_graph_plan(g);
}

/* diffusers Downsample2D in the VAE pads (0, 1, 0, 1) and convolves with
 * stride 2 and no padding; the conv op pads symmetrically, so append one
 * zero column and row (x * 0 of a one-wide slice) first. */
static lf_tensor_t *s_pad_right_bottom(lf_graph_t *g, lf_tensor_t *x) {
    if (!x) return NULL;
    lf_tensor_t *zc = lf_graph_scale(g, lf_graph_split(g, x, 0, 0, 1), 0.0f, 0.0f);
    x = lf_graph_concat(g, x, zc, 0);
    if (!x) return NULL;
    lf_tensor_t *zr = lf_graph_scale(g, lf_graph_split(g, x, 1, 0, 1), 0.0f, 0.0f);
    return lf_graph_concat(g, x, zr, 1);
}

static int s_build_enc(lf_vae_t *v, s_cache_t *e) {
    const lf_vae_config_t *c = &v->c;
    const s_half_t *d = &v->enc;
    const int G = c->groups;
    lf_graph_t *g = e->g = lf_graph_new(v->be);
    if (!g) return LF_ENOMEM;
    if (v->release) lf_graph_set_after(g, lf_pool_release_after, (void *)v->release);
    e->in = lf_graph_input(g, LF_TYPE_F32, e->w, e->h, c->img_ch, e->batch);
    lf_tensor_t *h = lf_graph_conv2d(g, e->in, d->ciw, d->cib, 1, 1);
    for (int l = 0; l < c->levels; l++) {
        for (int j = 0; j < c->layers; j++) h = s_resnet(g, G, &d->res[l][j], h);
        if (l < c->levels - 1)
            h = lf_graph_conv2d(g, s_pad_right_bottom(g, h), d->sw[l], d->sb[l], 2, 0);
    }
    h = s_mid(g, G, d, h);
    h = lf_graph_group_norm(g, h, d->now, d->nob, G, 1e-6f, 1);
    h = lf_graph_conv2d(g, h, d->cow, d->cob, 1, 1);
    if (d->qcw) h = lf_graph_conv2d(g, h, d->qcw, d->qcb, 1, 0);
    h = lf_graph_split(g, h, 2, 0, c->latent_ch);
    e->out = lf_graph_output(g, h);
    return lf_graph_plan(g);
}

/* Runs the cached graph for [batch][cin][h][w] in -> out. */
static int s_run(lf_vae_t *v, int enc, const float *in, int batch, int h, int w, float *out) {
    s_cache_t *e = enc ? &v->ecache : &v->dcache;
    if (!e->g || e->batch != batch || e->h != h || e->w != w) {
        lf_graph_destroy(&e->g);
        e->batch = batch, e->h = h, e->w = w;
        int rc = enc ? s_build_enc(v, e) : s_build_dec(v, e);
        if (rc) {
            lf_graph_destroy(&e->g);
            return rc;
        }
    }
    int rc = lf_backend_tensor_set(v->be, e->in, in, lf_tensor_nbytes(e->in));
    if (!rc) rc = lf_graph_compute(e->g);
    if (!rc) rc = lf_backend_sync(v->be);
    if (!rc) rc = lf_backend_tensor_get(v->be, e->out, out, lf_tensor_nbytes(e->out));
    return rc;
}

/* Tiles: starts along one axis of n, tile t, overlap ov; the last tile is
 * moved back so every tile has the same size (one graph serves them all). */
static int s_starts(int n, int t, int ov, int *st) {
    int k = 0, step = t - ov;
    for (int s = 0;; s += step) {
        if (s + t >= n) {
            st[k++] = n - t;
            return k;
        }
        st[k++] = s;
    }
}

/* Linear ramp weight of position i in a tile of size t with overlap ov on
 * the sides that have a neighbour. */
static float s_ramp(int i, int t, int ov, int lo, int hi) {
    float wgt = 1.0f;
    if (lo && i < ov) wgt = fminf(wgt, (i + 0.5f) / (float)ov);
    if (hi && i >= t - ov) wgt = fminf(wgt, (t - i - 0.5f) / (float)ov);
    return wgt;
}

/* Generic tiled run: in [B][ci][h][w] (units of the input), scale f = output
 * pixels per input pixel (s for decode, 1/s for encode, given as num/den). */
static int s_tiled(lf_vae_t *v, int enc, const float *in, int batch, int ci, int h, int w,
                   int tile_in, int co, int num, int den, float *out) {
    int ov = tile_in / 4;
    if (ov < 1) ov = 1;
    int ys[256], xs[256];
    if ((h + tile_in) / (tile_in - ov) + 2 > 256 || (w + tile_in) / (tile_in - ov) + 2 > 256)
        return LF_EINVAL;
    int ny = s_starts(h, tile_in, ov, ys), nx = s_starts(w, tile_in, ov, xs);
    const int to = tile_in * num / den, oh = h * num / den, ow = w * num / den,
              ovo = ov * num / den;
    size_t tin = (size_t)ci * tile_in * tile_in, tout = (size_t)co * to * to;
    float *bi = malloc(tin * sizeof *bi), *bo = malloc(tout * sizeof *bo);
    float *acc = calloc((size_t)co * oh * ow, sizeof *acc),
          *wsum = calloc((size_t)oh * ow, sizeof *wsum);
    int rc = (bi && bo && acc && wsum) ? 0 : LF_ENOMEM;
    for (int b = 0; b < batch && !rc; b++) {
        memset(acc, 0, (size_t)co * oh * ow * sizeof *acc);
        memset(wsum, 0, (size_t)oh * ow * sizeof *wsum);
        for (int ty = 0; ty < ny && !rc; ty++)
            for (int tx = 0; tx < nx && !rc; tx++) {
                for (int c = 0; c < ci; c++)
                    for (int y = 0; y < tile_in; y++)
                        memcpy(bi + ((size_t)c * tile_in + y) * tile_in,
                               in + (((size_t)b * ci + c) * h + ys[ty] + y) * w + xs[tx],
                               (size_t)tile_in * sizeof *bi);
                rc = s_run(v, enc, bi, 1, tile_in, tile_in, bo);
                if (rc) break;
                const int oy0 = ys[ty] * num / den, ox0 = xs[tx] * num / den;
                for (int y = 0; y < to; y++) {
                    float wy = s_ramp(y, to, ovo, ty > 0, ty < ny - 1);
                    for (int x = 0; x < to; x++) {
                        float wt = wy * s_ramp(x, to, ovo, tx > 0, tx < nx - 1);
                        size_t o = (size_t)(oy0 + y) * ow + ox0 + x;
                        wsum[o] += wt;
                        for (int c = 0; c < co; c++)
                            acc[(size_t)c * oh * ow + o] += wt * bo[((size_t)c * to + y) * to + x];
                    }
                }
            }
        for (int c = 0; c < co && !rc; c++)
            for (size_t o = 0; o < (size_t)oh * ow; o++)
                out[((size_t)b * co + c) * oh * ow + o] = acc[(size_t)c * oh * ow + o] / wsum[o];
    }
    free(bi), free(bo), free(acc), free(wsum);
    return rc;
}

void lf_vae_set_weight_release(lf_vae_t *self, const lf_pool_t *pool) {
    if (!self) return;
    self->release = pool;
    lf_graph_set_after(self->dcache.g, pool ? lf_pool_release_after : NULL, (void *)pool);
    lf_graph_set_after(self->ecache.g, pool ? lf_pool_release_after : NULL, (void *)pool);
}

void lf_vae_release_graphs(lf_vae_t *self) {
    if (!self) return;
    lf_graph_destroy(&self->dcache.g);
    lf_graph_destroy(&self->ecache.g);
}

int lf_vae_decode(lf_vae_t *self, const float *z, int batch, int h, int w, int tile, float *img) {
    if (batch < 1 || h < 1 || w < 1) return LF_EINVAL;
    const int s = lf_vae_scale(self);
    if (tile > 0) tile = tile < 4 ? 4 : tile / 4 * 4; /* overlap tile/4: whole pixels */
    if (tile > 0 && (h > tile || w > tile) && h >= tile && w >= tile)
        return s_tiled(self, 0, z, batch, self->c.latent_ch, h, w, tile, self->c.img_ch, s, 1, img);
    return s_run(self, 0, z, batch, h, w, img);
}

int lf_vae_encode(lf_vae_t *self, const float *img, int batch, int H, int W, int tile,
                  float *mean) {
    const int s = lf_vae_scale(self);
    if (!self->c.has_encoder) return LF_EUNSUPPORTED;
    if (batch < 1 || H < s || W < s || H % s || W % s) return LF_EINVAL;
    const int h = H / s, w = W / s;
    if (tile > 0) tile = tile < 4 ? 4 : tile / 4 * 4; /* overlap tile/4: whole pixels */
    if (tile > 0 && (h > tile || w > tile) && h >= tile && w >= tile)
        return s_tiled(self, 1, img, batch, self->c.img_ch, H, W, tile * s, self->c.latent_ch, 1,
                       s, mean);
    return s_run(self, 1, img, batch, H, W, mean);
}
