/* lf_unet: loading (architecture from shapes) and the forward graph of the
 * SD1.x/2.x and SDXL UNet; the graph is recorded once per input shape and
 * replayed. */
#include "lf_unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_log.h"

#define S LF__SHAPE
#define MAX_RES (LF_UNET_MAX_LEVELS * 8 * 2 + 2)
#define N_CACHE 8 /* graphs kept per UNet: 4 whole, 4 step-caching parts (s_get) */

typedef struct {
    lf_tensor_t *n1w, *n1b, *c1w, *c1b, *tw, *tb, *n2w, *n2b, *c2w, *c2b, *scw, *scb;
} s_res_t;

typedef struct {
    lf_tensor_t *n1w, *n1b, *q1, *k1, *v1, *o1w, *o1b;
    lf_tensor_t *n2w, *n2b, *q2, *k2, *v2, *o2w, *o2b;
    lf_tensor_t *n3w, *n3b, *f1w, *f1b, *f2w, *f2b;
} s_tblock_t;

typedef struct {
    lf_tensor_t *nw, *nb, *piw, *pib, *pow_, *pob;
    int depth, heads;
    s_tblock_t *blk;
} s_attn_t;

/* The graphs a UNet records per input shape: the whole network, or the
 * parts step caching runs (lf_stepcache.h). */
typedef enum {
    V_FULL = 0,   /* the whole network */
    V_DEEP_FULL,  /* the whole network, also putting out the deep feature at `depth` */
    V_DEEP_SHALLOW, /* DeepCache reuse: the shallow blocks around the deep feature (an input) */
    V_FB_HEAD,    /* FBCache: conv_in and the first block (skips 0 and 1) */
    V_FB_REST,    /* FBCache: the remaining blocks from skips 0, 1 (inputs), and the head */
    V_FB_TAIL,    /* FBCache reuse: the output head (norm, SiLU, conv_out) alone */
} s_variant_t;

typedef struct {
    int batch, h, w, ctx_len, n_pooled;
    s_variant_t variant;
    int depth;                  /* V_DEEP_*: the branch */
    lf_graph_t *g;
    lf_tensor_t *x, *t, *ctx, *out;
    lf_tensor_t *pooled, *tids; /* added embedding inputs (SDXL) */
    lf_tensor_t *in_h0, *in_h1, *in_h; /* V_FB_REST: skips 0, 1; V_FB_TAIL / V_DEEP_SHALLOW: h */
    lf_tensor_t *o_h0, *o_h1, *o_h; /* V_FB_HEAD: skips 0, 1; V_FB_REST: h before the head;
                                     * V_DEEP_FULL: the deep feature */
    int64_t deep_ne[4];         /* V_DEEP_SHALLOW: the deep feature's shape */
    int blocks;                 /* resnets and transformers one compute runs */
    double flops;               /* lf_graph_flops of one compute */
    float *host;                /* staging: pooled [batch][n_pooled], then ids [batch][n_ids] */
    unsigned long used;
    bool logged;                /* its memory logged once (s_run) */
} s_cache_t;

struct lf_unet {
    lf_unet_config_t c;
    lf_backend_t *be;
    lf_tensor_t *conv_in_w, *conv_in_b, *t1w, *t1b, *t2w, *t2b, *no_w, *no_b, *co_w, *co_b;
    lf_tensor_t *a1w, *a1b, *a2w, *a2b; /* added embedding (SDXL), or NULL */
    s_res_t down[LF_UNET_MAX_LEVELS][8], up[LF_UNET_MAX_LEVELS][9], mid[2];
    s_attn_t dattn[LF_UNET_MAX_LEVELS][8], uattn[LF_UNET_MAX_LEVELS][9], mattn;
    lf_tensor_t *dsw[LF_UNET_MAX_LEVELS], *dsb[LF_UNET_MAX_LEVELS];
    lf_tensor_t *usw[LF_UNET_MAX_LEVELS], *usb[LF_UNET_MAX_LEVELS];
    s_cache_t cache[N_CACHE];
    unsigned long tick;
    unsigned long blocks_run; /* resnets and transformers computed (lf_unet_blocks_run) */
    double flops_run;         /* their floating-point operations (lf_unet_flops_run) */
    float *scratch;           /* step caching: host copies of h0, h1, the head's input */
    size_t scratch_n;
    const lf_pool_t *release; /* lf_unet_set_weight_release: borrowed, or NULL */
};

/* ---- shared helpers ---- */

int lf__json_int(const json_t *cfg, const char *key, int i, int def) {
    const json_t *v = cfg ? json_object_get(cfg, key) : NULL;
    if (json_is_array(v) && json_array_size(v) > 0) {
        size_t n = json_array_size(v);
        v = json_array_get(v, (size_t)i < n ? (size_t)i : n - 1);
    }
    if (json_is_integer(v)) return (int)json_integer_value(v);
    if (json_is_real(v)) return (int)json_real_value(v);
    return def;
}

double lf__json_num(const json_t *cfg, const char *key, double def) {
    const json_t *v = cfg ? json_object_get(cfg, key) : NULL;
    if (json_is_number(v)) return json_number_value(v);
    if (json_is_true(v)) return 1;
    if (json_is_false(v)) return 0;
    return def;
}

lf_tensor_t *lf__nn_reshape(lf_graph_t *g, lf_tensor_t *x, int64_t n0, int64_t n1, int64_t n2,
                            int64_t n3) {
    if (!x) return NULL;
    return lf_graph_view(g, x, lf_tensor_reshape(x, n0, n1, n2, n3));
}

lf_tensor_t *lf__nn_to_tokens(lf_graph_t *g, lf_tensor_t *x) {
    if (!x) return NULL;
    lf_tensor_t *r = lf__nn_reshape(g, x, x->ne[0] * x->ne[1], x->ne[2], x->ne[3], 1);
    return lf_graph_permute(g, r, (const int[]){1, 0, 2, 3});
}

lf_tensor_t *lf__nn_from_tokens(lf_graph_t *g, lf_tensor_t *t, int64_t W, int64_t H) {
    if (!t) return NULL;
    lf_tensor_t *p = lf_graph_permute(g, t, (const int[]){1, 0, 2, 3});
    if (!p) return NULL;
    return lf__nn_reshape(g, p, W, H, p->ne[1], p->ne[2]);
}

/* ---- loading ---- */

static void s_load_res(lf_keymap_loader_t *ld, s_res_t *r, int cin, int cout, int temb,
                       const char *pre) {
    r->n1w = lf_keymap_load(ld, 1, S(cin), "%s.norm1.weight", pre);
    r->n1b = lf_keymap_load(ld, 1, S(cin), "%s.norm1.bias", pre);
    r->c1w = lf_keymap_load(ld, 4, S(cout, cin, 3, 3), "%s.conv1.weight", pre);
    r->c1b = lf_keymap_load(ld, 1, S(cout), "%s.conv1.bias", pre);
    if (temb) {
        r->tw = lf_keymap_load(ld, 2, S(cout, temb), "%s.time_emb_proj.weight", pre);
        r->tb = lf_keymap_load(ld, 1, S(cout), "%s.time_emb_proj.bias", pre);
    }
    r->n2w = lf_keymap_load(ld, 1, S(cout), "%s.norm2.weight", pre);
    r->n2b = lf_keymap_load(ld, 1, S(cout), "%s.norm2.bias", pre);
    r->c2w = lf_keymap_load(ld, 4, S(cout, cout, 3, 3), "%s.conv2.weight", pre);
    r->c2b = lf_keymap_load(ld, 1, S(cout), "%s.conv2.bias", pre);
    if (cin != cout) {
        r->scw = lf_keymap_load(ld, 4, S(cout, cin, 1, 1), "%s.conv_shortcut.weight", pre);
        r->scb = lf_keymap_load(ld, 1, S(cout), "%s.conv_shortcut.bias", pre);
    }
}

/* Counts transformer blocks of the attention at pre (0: none). */
static int s_depth(const lf_keymap_t *km, const char *pre) {
    int d = 0;
    char n[256];
    for (;; d++) {
        int k = snprintf(n, sizeof n, "%s.transformer_blocks.%d.attn1.to_q.weight", pre, d);
        if (k < 0 || k >= (int)sizeof n || !lf_keymap_find(km, n)) return d;
    }
}

static void s_load_attn(lf_keymap_loader_t *ld, const lf_unet_config_t *c, s_attn_t *a, int C,
                        int depth, int heads, const char *pre) {
    a->depth = depth;
    a->heads = heads;
    a->blk = calloc((size_t)depth, sizeof *a->blk);
    if (!a->blk) {
        if (!ld->rc) ld->rc = LF_ENOMEM;
        return;
    }
    a->nw = lf_keymap_load(ld, 1, S(C), "%s.norm.weight", pre);
    a->nb = lf_keymap_load(ld, 1, S(C), "%s.norm.bias", pre);
    if (c->linear_proj) {
        a->piw = lf_keymap_load(ld, 2, S(C, C), "%s.proj_in.weight", pre);
        a->pow_ = lf_keymap_load(ld, 2, S(C, C), "%s.proj_out.weight", pre);
    } else {
        a->piw = lf_keymap_load(ld, 4, S(C, C, 1, 1), "%s.proj_in.weight", pre);
        a->pow_ = lf_keymap_load(ld, 4, S(C, C, 1, 1), "%s.proj_out.weight", pre);
    }
    a->pib = lf_keymap_load(ld, 1, S(C), "%s.proj_in.bias", pre);
    a->pob = lf_keymap_load(ld, 1, S(C), "%s.proj_out.bias", pre);
    for (int i = 0; i < depth; i++) {
        s_tblock_t *b = &a->blk[i];
        char p[256];
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", pre, i);
        b->n1w = lf_keymap_load(ld, 1, S(C), "%s.norm1.weight", p);
        b->n1b = lf_keymap_load(ld, 1, S(C), "%s.norm1.bias", p);
        b->q1 = lf_keymap_load(ld, 2, S(C, C), "%s.attn1.to_q.weight", p);
        b->k1 = lf_keymap_load(ld, 2, S(C, C), "%s.attn1.to_k.weight", p);
        b->v1 = lf_keymap_load(ld, 2, S(C, C), "%s.attn1.to_v.weight", p);
        b->o1w = lf_keymap_load(ld, 2, S(C, C), "%s.attn1.to_out.0.weight", p);
        b->o1b = lf_keymap_load(ld, 1, S(C), "%s.attn1.to_out.0.bias", p);
        b->n2w = lf_keymap_load(ld, 1, S(C), "%s.norm2.weight", p);
        b->n2b = lf_keymap_load(ld, 1, S(C), "%s.norm2.bias", p);
        b->q2 = lf_keymap_load(ld, 2, S(C, C), "%s.attn2.to_q.weight", p);
        b->k2 = lf_keymap_load(ld, 2, S(C, c->ctx_dim), "%s.attn2.to_k.weight", p);
        b->v2 = lf_keymap_load(ld, 2, S(C, c->ctx_dim), "%s.attn2.to_v.weight", p);
        b->o2w = lf_keymap_load(ld, 2, S(C, C), "%s.attn2.to_out.0.weight", p);
        b->o2b = lf_keymap_load(ld, 1, S(C), "%s.attn2.to_out.0.bias", p);
        b->n3w = lf_keymap_load(ld, 1, S(C), "%s.norm3.weight", p);
        b->n3b = lf_keymap_load(ld, 1, S(C), "%s.norm3.bias", p);
        b->f1w = lf_keymap_load(ld, 2, S(-1, C), "%s.ff.net.0.proj.weight", p);
        int64_t ff2 = b->f1w ? b->f1w->ne[1] : 2;
        b->f1b = lf_keymap_load(ld, 1, S(ff2), "%s.ff.net.0.proj.bias", p);
        b->f2w = lf_keymap_load(ld, 2, S(C, ff2 / 2), "%s.ff.net.2.weight", p);
        b->f2b = lf_keymap_load(ld, 1, S(C), "%s.ff.net.2.bias", p);
    }
}

static int s_fail(char *err, size_t errlen, const lf_keymap_t *km, const char *what) {
    if (errlen) snprintf(err, errlen, "%s: %s", lf_weights_path(km->w), what);
    return LF_EFORMAT;
}

/* Architecture from shapes (and config for heads/groups). */
static int s_config(lf_unet_config_t *c, const lf_keymap_t *km, const json_t *cfg, char *err,
                    size_t errlen) {
    memset(c, 0, sizeof *c);
    char n[256];
    int L = 0;
    if (km->kind == LF_KEYMAP_LDM_UNET) {
        L = km->levels;
        c->layers = km->layers;
    } else {
        while (L < LF_UNET_MAX_LEVELS + 1) {
            snprintf(n, sizeof n, "down_blocks.%d.resnets.0.conv1.weight", L);
            if (!lf_keymap_find(km, n)) break;
            L++;
        }
        while (c->layers < 8) {
            snprintf(n, sizeof n, "down_blocks.0.resnets.%d.conv1.weight", c->layers);
            if (!lf_keymap_find(km, n)) break;
            c->layers++;
        }
    }
    if (L < 1 || L > LF_UNET_MAX_LEVELS || c->layers < 1 || c->layers > 7)
        return s_fail(err, errlen, km, "UNet layout not recognised (levels/resnets per block)");
    c->levels = L;
    const lf_tensor_info_t *t = lf_keymap_find(km, "conv_in.weight");
    if (!t || t->ndim != 4)
        return s_fail(err, errlen, km, "UNet conv_in.weight missing or not 4-D");
    c->in_ch = (int)t->shape[1];
    t = lf_keymap_find(km, "conv_out.weight");
    if (!t || t->ndim != 4)
        return s_fail(err, errlen, km, "UNet conv_out.weight missing or not 4-D");
    c->out_ch = (int)t->shape[0];
    t = lf_keymap_find(km, "time_embedding.linear_1.weight");
    if (!t || t->ndim != 2) return s_fail(err, errlen, km, "UNet time_embedding missing");
    c->temb_dim = (int)t->shape[0];
    c->temb_in = (int)t->shape[1];
    t = lf_keymap_find(km, "add_embedding.linear_1.weight");
    if (t && t->ndim == 2) {
        c->add_in = (int)t->shape[1];
        c->add_time_dim = lf__json_int(cfg, "addition_time_embed_dim", 0, 256);
    }
    c->ctx_dim = -1;
    for (int l = 0; l < L; l++) {
        snprintf(n, sizeof n, "down_blocks.%d.resnets.0.conv1.weight", l);
        t = lf_keymap_find(km, n);
        if (!t || t->ndim != 4) {
            if (errlen)
                snprintf(err, errlen, "%s: missing UNet tensor for %s", lf_weights_path(km->w), n);
            return LF_ENOTFOUND;
        }
        c->ch[l] = (int)t->shape[0];
        snprintf(n, sizeof n, "down_blocks.%d.attentions.0", l);
        c->attn[l] = s_depth(km, n);
        snprintf(n, sizeof n, "up_blocks.%d.attentions.0", l);
        c->up_attn[l] = s_depth(km, n);
        /* diffusers: num_attention_heads, or its misnamed attention_head_dim
         * (SDXL's [5, 10, 20] are heads of 64 channels). */
        int def = c->add_in && c->ch[l] >= 64 ? c->ch[l] / 64 : 8;
        int h = lf__json_int(cfg, "attention_head_dim", l, def);
        c->heads[l] = lf__json_int(cfg, "num_attention_heads", l, h);
        if (c->attn[l] && c->ctx_dim < 0) {
            snprintf(n, sizeof n,
                     "down_blocks.%d.attentions.0.transformer_blocks.0.attn2.to_k.weight", l);
            t = lf_keymap_find(km, n);
            if (t && t->ndim == 2) c->ctx_dim = (int)t->shape[1];
            snprintf(n, sizeof n, "down_blocks.%d.attentions.0.proj_in.weight", l);
            t = lf_keymap_find(km, n);
            c->linear_proj = t && t->ndim == 2;
        }
    }
    c->mid_attn = s_depth(km, "mid_block.attentions.0");
    c->mid_heads = c->heads[L - 1];
    if (c->mid_attn && c->ctx_dim < 0) {
        t = lf_keymap_find(km, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight");
        if (t && t->ndim == 2) c->ctx_dim = (int)t->shape[1];
        t = lf_keymap_find(km, "mid_block.attentions.0.proj_in.weight");
        c->linear_proj = t && t->ndim == 2;
    }
    c->groups = lf__json_int(cfg, "norm_num_groups", 0, 32);
    c->eps = (float)lf__json_num(cfg, "norm_eps", 1e-5);
    c->flip_sin_to_cos = (int)lf__json_num(cfg, "flip_sin_to_cos", 1);
    c->freq_shift = (float)lf__json_num(cfg, "freq_shift", 0);
    for (int l = 0; l < L; l++)
        if (c->ch[l] % c->groups || (c->attn[l] && c->ch[l] % c->heads[l]))
            return s_fail(err, errlen, km, "UNet channels not divisible by groups/heads (config?)");
    return 0;
}

int lf_unet_new(lf_unet_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen) {
    lf_unet_t *u = calloc(1, sizeof *u);
    if (!u) return LF_ENOMEM;
    u->be = be;
    int rc = s_config(&u->c, km, config, err, errlen);
    if (rc) {
        free(u);
        return rc;
    }
    lf_unet_config_t *c = &u->c;
    /* A block type quantizes the linear layers; the rest stays as stored. */
    bool quant = lf_type_is_quant((lf_type_t)type);
    lf_keymap_loader_t ld = {.km = km, .pool = pool, .pool_prefix = "unet.", .type = quant ? -1 : type,
                             .quant = quant ? type : 0, .err = err, .errlen = errlen};
    const int L = c->levels, T = c->temb_dim;
    u->conv_in_w = lf_keymap_load(&ld, 4, S(c->ch[0], c->in_ch, 3, 3), "conv_in.weight");
    u->conv_in_b = lf_keymap_load(&ld, 1, S(c->ch[0]), "conv_in.bias");
    u->t1w = lf_keymap_load(&ld, 2, S(T, c->temb_in), "time_embedding.linear_1.weight");
    u->t1b = lf_keymap_load(&ld, 1, S(T), "time_embedding.linear_1.bias");
    u->t2w = lf_keymap_load(&ld, 2, S(T, T), "time_embedding.linear_2.weight");
    u->t2b = lf_keymap_load(&ld, 1, S(T), "time_embedding.linear_2.bias");
    if (c->add_in) {
        u->a1w = lf_keymap_load(&ld, 2, S(T, c->add_in), "add_embedding.linear_1.weight");
        u->a1b = lf_keymap_load(&ld, 1, S(T), "add_embedding.linear_1.bias");
        u->a2w = lf_keymap_load(&ld, 2, S(T, T), "add_embedding.linear_2.weight");
        u->a2b = lf_keymap_load(&ld, 1, S(T), "add_embedding.linear_2.bias");
    }
    char p[128];
    int cin = c->ch[0];
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < c->layers; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", l, j);
            s_load_res(&ld, &u->down[l][j], cin, c->ch[l], T, p);
            cin = c->ch[l];
            if (c->attn[l]) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", l, j);
                s_load_attn(&ld, c, &u->dattn[l][j], cin, c->attn[l], c->heads[l], p);
            }
        }
        if (l < L - 1) {
            u->dsw[l] = lf_keymap_load(&ld, 4, S(cin, cin, 3, 3),
                                       "down_blocks.%d.downsamplers.0.conv.weight", l);
            u->dsb[l] =
                lf_keymap_load(&ld, 1, S(cin), "down_blocks.%d.downsamplers.0.conv.bias", l);
        }
    }
    const int Cm = c->ch[L - 1];
    s_load_res(&ld, &u->mid[0], Cm, Cm, T, "mid_block.resnets.0");
    if (c->mid_attn)
        s_load_attn(&ld, c, &u->mattn, Cm, c->mid_attn, c->mid_heads, "mid_block.attentions.0");
    s_load_res(&ld, &u->mid[1], Cm, Cm, T, "mid_block.resnets.1");
    /* Skip channels, in push order: conv_in, then each down resnet/downsample. */
    int skips[64], ns = 0;
    skips[ns++] = c->ch[0];
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < c->layers; j++) skips[ns++] = c->ch[l];
        if (l < L - 1) skips[ns++] = c->ch[l];
    }
    int prev = Cm;
    for (int i = 0; i < L; i++) {
        int lvl = L - 1 - i, Co = c->ch[lvl];
        for (int j = 0; j <= c->layers; j++) {
            int sk = skips[--ns];
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            s_load_res(&ld, &u->up[i][j], prev + sk, Co, T, p);
            prev = Co;
            if (c->up_attn[i]) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                s_load_attn(&ld, c, &u->uattn[i][j], Co, c->up_attn[i], c->heads[lvl], p);
            }
        }
        if (i < L - 1) {
            u->usw[i] =
                lf_keymap_load(&ld, 4, S(Co, Co, 3, 3), "up_blocks.%d.upsamplers.0.conv.weight", i);
            u->usb[i] = lf_keymap_load(&ld, 1, S(Co), "up_blocks.%d.upsamplers.0.conv.bias", i);
        }
    }
    u->no_w = lf_keymap_load(&ld, 1, S(c->ch[0]), "conv_norm_out.weight");
    u->no_b = lf_keymap_load(&ld, 1, S(c->ch[0]), "conv_norm_out.bias");
    u->co_w = lf_keymap_load(&ld, 4, S(c->out_ch, c->ch[0], 3, 3), "conv_out.weight");
    u->co_b = lf_keymap_load(&ld, 1, S(c->out_ch), "conv_out.bias");
    if (ld.rc) {
        lf_unet_destroy(&u);
        return ld.rc;
    }
    *out = u;
    return 0;
}

static void s_free_attn(s_attn_t *a) {
    free(a->blk);
    a->blk = NULL;
}

void lf_unet_release_graphs(lf_unet_t *self) {
    if (!self) return;
    for (int i = 0; i < N_CACHE; i++) {
        lf_graph_destroy(&self->cache[i].g);
        free(self->cache[i].host);
        self->cache[i].host = NULL;
    }
}

void lf_unet_set_weight_release(lf_unet_t *self, const lf_pool_t *pool) {
    if (!self) return;
    self->release = pool;
    for (int i = 0; i < N_CACHE; i++)
        lf_graph_set_after(self->cache[i].g, pool ? lf_pool_release_after : NULL, (void *)pool);
}

void lf_unet_destroy(lf_unet_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_unet_t *u = *self_p;
    lf_unet_release_graphs(u);
    free(u->scratch);
    for (int l = 0; l < LF_UNET_MAX_LEVELS; l++)
        for (int j = 0; j < 9; j++) {
            if (j < 8) s_free_attn(&u->dattn[l][j]);
            s_free_attn(&u->uattn[l][j]);
        }
    s_free_attn(&u->mattn);
    free(u);
    *self_p = NULL;
}

const lf_unet_config_t *lf_unet_config(const lf_unet_t *self) { return &self->c; }

int lf_unet_time_ids(const lf_unet_t *self, int n_pooled) {
    const lf_unet_config_t *c = &self->c;
    if (!c->add_in || c->add_time_dim < 1 || n_pooled < 0 || n_pooled >= c->add_in ||
        (c->add_in - n_pooled) % c->add_time_dim)
        return 0;
    return (c->add_in - n_pooled) / c->add_time_dim;
}

/* ---- graph ---- */

static lf_tensor_t *s_resnet(lf_graph_t *g, const lf_unet_config_t *c, const s_res_t *r,
                             lf_tensor_t *x, lf_tensor_t *temb) {
    lf_tensor_t *h = lf_graph_group_norm(g, x, r->n1w, r->n1b, c->groups, c->eps, 1);
    h = lf_graph_conv2d(g, h, r->c1w, r->c1b, 1, 1);
    lf_tensor_t *e = lf_graph_matmul(g, temb, r->tw, r->tb); /* [Cout, B] */
    if (e) e = lf__nn_reshape(g, e, 1, 1, e->ne[0], e->ne[1]);
    h = lf_graph_add(g, h, e);
    h = lf_graph_group_norm(g, h, r->n2w, r->n2b, c->groups, c->eps, 1);
    h = lf_graph_conv2d(g, h, r->c2w, r->c2b, 1, 1);
    lf_tensor_t *s = r->scw ? lf_graph_conv2d(g, x, r->scw, r->scb, 1, 0) : x;
    return lf_graph_add(g, s, h);
}

static lf_tensor_t *s_transformer(lf_graph_t *g, const lf_unet_config_t *c, const s_attn_t *a,
                                  lf_tensor_t *x, lf_tensor_t *ctx) {
    if (!x) return NULL;
    const int64_t W = x->ne[0], H = x->ne[1];
    lf_tensor_t *h = lf_graph_group_norm(g, x, a->nw, a->nb, c->groups, 1e-6f, 0);
    lf_tensor_t *t;
    if (c->linear_proj) {
        t = lf_graph_matmul(g, lf__nn_to_tokens(g, h), a->piw, a->pib);
    } else {
        t = lf__nn_to_tokens(g, lf_graph_conv2d(g, h, a->piw, a->pib, 1, 0));
    }
    for (int i = 0; i < a->depth; i++) {
        const s_tblock_t *b = &a->blk[i];
        lf_tensor_t *n = lf_graph_layer_norm(g, t, b->n1w, b->n1b, 1e-5f);
        lf_tensor_t *q = lf_graph_matmul(g, n, b->q1, NULL);
        lf_tensor_t *k = lf_graph_matmul(g, n, b->k1, NULL);
        lf_tensor_t *v = lf_graph_matmul(g, n, b->v1, NULL);
        lf_tensor_t *o = lf_graph_mha(g, q, k, v, NULL, a->heads);
        t = lf_graph_add(g, t, lf_graph_matmul(g, o, b->o1w, b->o1b));
        n = lf_graph_layer_norm(g, t, b->n2w, b->n2b, 1e-5f);
        q = lf_graph_matmul(g, n, b->q2, NULL);
        k = lf_graph_matmul(g, ctx, b->k2, NULL);
        v = lf_graph_matmul(g, ctx, b->v2, NULL);
        o = lf_graph_mha(g, q, k, v, NULL, a->heads);
        t = lf_graph_add(g, t, lf_graph_matmul(g, o, b->o2w, b->o2b));
        n = lf_graph_layer_norm(g, t, b->n3w, b->n3b, 1e-5f);
        lf_tensor_t *f = lf_graph_geglu(g, lf_graph_matmul(g, n, b->f1w, b->f1b));
        t = lf_graph_add(g, t, lf_graph_matmul(g, f, b->f2w, b->f2b));
    }
    if (c->linear_proj) {
        h = lf__nn_from_tokens(g, lf_graph_matmul(g, t, a->pow_, a->pob), W, H);
    } else {
        h = lf_graph_conv2d(g, lf__nn_from_tokens(g, t, W, H), a->pow_, a->pob, 1, 0);
    }
    return lf_graph_add(g, h, x);
}

/* Number of skip tensors (conv_in, each down resnet/attention, each
 * downsample): the up path consumes them in reverse, one per up resnet. */
static int s_nskips(const lf_unet_config_t *c) { return 1 + c->levels * c->layers + c->levels - 1; }

/* The time embedding (after its SiLU) from the graph's input t (and SDXL's
 * added inputs, which it creates). */
static lf_tensor_t *s_embed(lf_graph_t *g, const lf_unet_t *u, s_cache_t *e) {
    const lf_unet_config_t *c = &u->c;
    lf_tensor_t *temb = lf_graph_timestep_embed(g, e->t, c->temb_in, 10000.0f, c->flip_sin_to_cos,
                                                c->freq_shift);
    if (temb) temb = lf__nn_reshape(g, temb, temb->ne[0], e->batch, 1, 1);
    temb = lf_graph_matmul(g, temb, u->t1w, u->t1b);
    temb = lf_graph_silu(g, temb);
    temb = lf_graph_matmul(g, temb, u->t2w, u->t2b);
    if (c->add_in) {
        /* SDXL: [pooled | emb(id_0) | ... | emb(id_n-1)] per batch item,
         * through linear, SiLU, linear, added before the SiLU. */
        const int n_ids = (c->add_in - e->n_pooled) / c->add_time_dim;
        e->pooled = lf_graph_input(g, LF_TYPE_F32, e->n_pooled, e->batch, 1, 1);
        e->tids = lf_graph_input(g, LF_TYPE_F32, (int64_t)n_ids * e->batch, 1, 1, 1);
        lf_tensor_t *te = lf_graph_timestep_embed(g, e->tids, c->add_time_dim, 10000.0f,
                                                  c->flip_sin_to_cos, c->freq_shift);
        te = lf__nn_reshape(g, te, (int64_t)c->add_time_dim * n_ids, e->batch, 1, 1);
        lf_tensor_t *a = lf_graph_concat(g, e->pooled, te, 0);
        a = lf_graph_silu(g, lf_graph_matmul(g, a, u->a1w, u->a1b));
        temb = lf_graph_add(g, temb, lf_graph_matmul(g, a, u->a2w, u->a2b));
    }
    return lf_graph_silu(g, temb);
}

/* The down path (element k makes skip k; element 0 is conv_in), the middle
 * block and the up path (the up resnet that takes skip s, then its
 * attention, and an upsampler after a level's last), then the output head:
 * a variant records the part of it that it runs (s_variant_t). */
static int s_build(lf_unet_t *u, s_cache_t *e) {
    const lf_unet_config_t *c = &u->c;
    lf_graph_t *g = lf_graph_new(u->be);
    if (!g) return LF_ENOMEM;
    e->g = g;
    lf_graph_set_images(g, e->batch); /* batched jobs: rows as alone */
    if (u->release) lf_graph_set_after(g, lf_pool_release_after, (void *)u->release);
    e->blocks = 0;
    const int L = c->levels, nsk = s_nskips(c), v = e->variant;
    const int64_t W = e->w, H = e->h;
    lf_tensor_t *h = NULL;
    if (v == V_FB_TAIL) {
        e->in_h = h = lf_graph_input(g, LF_TYPE_F32, W, H, c->ch[0], e->batch);
        goto head;
    }
    if (v != V_FB_REST) e->x = lf_graph_input(g, LF_TYPE_F32, W, H, c->in_ch, e->batch);
    e->t = lf_graph_input(g, LF_TYPE_F32, e->batch, 1, 1, 1);
    e->ctx =
        lf_graph_input(g, LF_TYPE_F32, c->ctx_dim > 0 ? c->ctx_dim : 1, e->ctx_len, e->batch, 1);
    lf_tensor_t *temb_act = s_embed(g, u, e);

    lf_tensor_t *skips[64];
    /* Down elements [0, down_end) run; skips below `have` are inputs. */
    int have = 0, down_end = nsk;
    if (v == V_FB_HEAD) down_end = 2;
    if (v == V_DEEP_SHALLOW) down_end = e->depth + 1;
    if (v == V_FB_REST) {
        e->in_h0 = skips[0] = lf_graph_input(g, LF_TYPE_F32, W, H, c->ch[0], e->batch);
        e->in_h1 = skips[1] = h = lf_graph_input(g, LF_TYPE_F32, W, H, c->ch[0], e->batch);
        have = 2;
    } else {
        skips[0] = h = lf_graph_conv2d(g, e->x, u->conv_in_w, u->conv_in_b, 1, 1);
        have = 1;
    }
    int k = 1;
    for (int l = 0; l < L && k < down_end; l++) {
        for (int j = 0; j < c->layers && k < down_end; j++, k++) {
            if (k < have) continue;
            h = s_resnet(g, c, &u->down[l][j], h, temb_act);
            e->blocks++;
            if (c->attn[l]) h = s_transformer(g, c, &u->dattn[l][j], h, e->ctx), e->blocks++;
            skips[k] = h;
        }
        if (l < L - 1 && k < down_end) {
            if (k >= have) skips[k] = h = lf_graph_conv2d(g, h, u->dsw[l], u->dsb[l], 2, 1);
            k++;
        }
    }
    if (v == V_FB_HEAD) {
        e->o_h0 = lf_graph_output(g, skips[0]);
        e->o_h1 = lf_graph_output(g, skips[1]);
        return lf_graph_plan(g);
    }
    if (v == V_DEEP_SHALLOW) {
        const int64_t *d = e->deep_ne;
        e->in_h = h = lf_graph_input(g, LF_TYPE_F32, d[0], d[1], d[2], d[3]);
    } else {
        h = s_resnet(g, c, &u->mid[0], h, temb_act);
        if (c->mid_attn) h = s_transformer(g, c, &u->mattn, h, e->ctx), e->blocks++;
        h = s_resnet(g, c, &u->mid[1], h, temb_act);
        e->blocks += 2;
    }
    int s = nsk;
    for (int i = 0; i < L; i++) {
        for (int j = 0; j <= c->layers; j++) {
            --s;
            if (v == V_DEEP_SHALLOW && s > e->depth) continue;
            if (v == V_DEEP_FULL && s == e->depth) e->o_h = lf_graph_output(g, h);
            h = lf_graph_concat(g, h, skips[s], 2);
            h = s_resnet(g, c, &u->up[i][j], h, temb_act);
            e->blocks++;
            if (c->up_attn[i]) h = s_transformer(g, c, &u->uattn[i][j], h, e->ctx), e->blocks++;
        }
        if (i < L - 1 && !(v == V_DEEP_SHALLOW && s > e->depth)) {
            h = lf_graph_upsample2x(g, h);
            /* Sizes that are not multiples of 2^(levels-1): the stride-2
             * convs rounded up, so crop to the skip's size (nearest
             * interpolation to that size, as diffusers' upsample_size, picks
             * the same pixels). */
            const lf_tensor_t *sk = skips[s - 1];
            if (h && sk && h->ne[0] != sk->ne[0]) h = lf_graph_split(g, h, 0, 0, sk->ne[0]);
            if (h && sk && h->ne[1] != sk->ne[1]) h = lf_graph_split(g, h, 1, 0, sk->ne[1]);
            h = lf_graph_conv2d(g, h, u->usw[i], u->usb[i], 1, 1);
        }
    }
    if (v == V_FB_REST) e->o_h = lf_graph_output(g, h);
head:
    h = lf_graph_group_norm(g, h, u->no_w, u->no_b, c->groups, c->eps, 1);
    h = lf_graph_conv2d(g, h, u->co_w, u->co_b, 1, 1);
    e->out = lf_graph_output(g, h);
    return lf_graph_plan(g);
}

/* The graph of `variant` for this shape, recorded on first use (least
 * recently used one replaced). NULL with *rc set on failure. */
static s_cache_t *s_get(lf_unet_t *self, s_variant_t variant, int depth, const int64_t *deep_ne,
                        int batch, int h, int w, int ctx_len, int n_pooled, int n_ids, int *rc) {
    s_cache_t *e = NULL, *victim = &self->cache[0], *same = NULL;
    int n_same = 0;
    for (int i = 0; i < N_CACHE; i++) {
        s_cache_t *ci = &self->cache[i];
        if (ci->g && ci->batch == batch && ci->h == h && ci->w == w && ci->ctx_len == ctx_len &&
            ci->n_pooled == n_pooled && ci->variant == variant &&
            (variant != V_DEEP_FULL && variant != V_DEEP_SHALLOW ? 1 : ci->depth == depth) &&
            (variant != V_DEEP_SHALLOW || !memcmp(ci->deep_ne, deep_ne, sizeof ci->deep_ne)))
            e = ci;
        if (!ci->g || (victim->g && ci->used < victim->used)) victim = ci;
        /* Whole-network graphs and the step-caching parts each keep at most
         * N_CACHE / 2 (without caching, as many as before it existed). */
        if (ci->g && (ci->variant == V_FULL) == (variant == V_FULL)) {
            n_same++;
            if (!same || ci->used < same->used) same = ci;
        }
    }
    if (!e && n_same >= N_CACHE / 2) victim = same;
    if (!e) {
        e = victim;
        lf_graph_destroy(&e->g);
        free(e->host);
        memset(e, 0, sizeof *e);
        e->batch = batch, e->h = h, e->w = w, e->ctx_len = ctx_len, e->n_pooled = n_pooled;
        e->variant = variant, e->depth = depth;
        if (deep_ne) memcpy(e->deep_ne, deep_ne, sizeof e->deep_ne);
        if (self->c.add_in) {
            e->host = malloc((size_t)batch * (n_pooled + n_ids) * sizeof *e->host);
            if (!e->host) {
                *rc = LF_ENOMEM;
                return NULL;
            }
        }
        *rc = s_build(self, e);
        if (*rc) {
            lf_graph_destroy(&e->g);
            return NULL;
        }
        e->flops = lf_graph_flops(e->g);
    }
    e->used = ++self->tick;
    return e;
}

/* Writes the graph's inputs that it has (x, t, ctx, the added embedding). */
static int s_set_inputs(lf_unet_t *self, s_cache_t *e, const float *x, const float *t,
                        const float *ctx, const float *added, int n_ids) {
    const int batch = e->batch, n_pooled = e->n_pooled;
    int rc = 0;
    if (e->x) rc = lf_backend_tensor_set(self->be, e->x, x, lf_tensor_nbytes(e->x));
    if (!rc && e->t) rc = lf_backend_tensor_set(self->be, e->t, t, lf_tensor_nbytes(e->t));
    if (!rc && e->ctx) rc = lf_backend_tensor_set(self->be, e->ctx, ctx, lf_tensor_nbytes(e->ctx));
    if (!rc && e->pooled) {
        /* added [b][pooled | ids] -> the two inputs, batch-major each. */
        float *hp = e->host, *hi = e->host + (size_t)batch * n_pooled;
        for (int b = 0; b < batch; b++) {
            const float *a = added + (size_t)b * (n_pooled + n_ids);
            memcpy(hp + (size_t)b * n_pooled, a, (size_t)n_pooled * sizeof *hp);
            memcpy(hi + (size_t)b * n_ids, a + n_pooled, (size_t)n_ids * sizeof *hi);
        }
        rc = lf_backend_tensor_set(self->be, e->pooled, hp, lf_tensor_nbytes(e->pooled));
        if (!rc) rc = lf_backend_tensor_set(self->be, e->tids, hi, lf_tensor_nbytes(e->tids));
    }
    return rc;
}

static int s_run(lf_unet_t *self, s_cache_t *e) {
    int rc = lf_graph_compute(e->g);
    if (!rc) rc = lf_backend_sync(self->be);
    if (!rc && !e->logged) /* what a forward holds beyond its weights (bench_gen_mem, LF_LOG_LEVEL=debug) */
        lf_debug("unet: %dx%d batch %d: activations %.1f MiB planned (%.1f MiB without reuse), backend "
                 "workspace %.1f MiB",
                 e->w, e->h, e->batch, (double)lf_graph_peak_bytes(e->g) / 1048576.0,
                 (double)lf_graph_unplanned_bytes(e->g) / 1048576.0,
                 (double)lf_backend_workspace_bytes(self->be) / 1048576.0);
    e->logged = e->logged || !rc;
    if (!rc) self->blocks_run += (unsigned long)e->blocks, self->flops_run += e->flops;
    return rc;
}

static int s_get_out(lf_unet_t *self, const lf_tensor_t *t, float *out) {
    return lf_backend_tensor_get(self->be, t, out, lf_tensor_nbytes(t));
}

static int s_check_args(const lf_unet_t *self, int batch, int h, int w, int ctx_len,
                        const float *added, int *n_pooled, int *n_ids) {
    if (batch < 1 || h < 1 || w < 1 || ctx_len < 1) return LF_EINVAL;
    *n_ids = lf_unet_time_ids(self, *n_pooled);
    if (self->c.add_in && (!added || *n_ids < 1)) return LF_EINVAL;
    if (!self->c.add_in) *n_pooled = 0;
    return 0;
}

int lf_unet_forward(lf_unet_t *self, const float *x, int batch, int h, int w, const float *t,
                    const float *ctx, int ctx_len, const float *added, int n_pooled, float *out) {
    int n_ids = 0, rc = s_check_args(self, batch, h, w, ctx_len, added, &n_pooled, &n_ids);
    if (rc) return rc;
    s_cache_t *e = s_get(self, V_FULL, 0, NULL, batch, h, w, ctx_len, n_pooled, n_ids, &rc);
    if (!e) return rc;
    rc = s_set_inputs(self, e, x, t, ctx, added, n_ids);
    if (!rc) rc = s_run(self, e);
    if (!rc) rc = s_get_out(self, e->out, out);
    return rc;
}

/* Host scratch of at least n floats (self->scratch). */
static float *s_scratch(lf_unet_t *self, size_t n) {
    if (self->scratch_n < n) {
        float *p = realloc(self->scratch, n * sizeof *p);
        if (!p) return NULL;
        self->scratch = p;
        self->scratch_n = n;
    }
    return self->scratch;
}

/* FBCache: the head (conv_in, first block), the decision on the first
 * block's residual, then the rest of the network or the cached residual of
 * it plus the output head. */
static int s_forward_fb(lf_unet_t *self, lf_stepcache_t *sc, const float *x, int batch, int h,
                        int w, const float *t, const float *ctx, int ctx_len, const float *added,
                        int n_pooled, int n_ids, float *out) {
    int rc = 0;
    s_cache_t *hd = s_get(self, V_FB_HEAD, 0, NULL, batch, h, w, ctx_len, n_pooled, n_ids, &rc);
    if (!hd) return rc;
    const size_t n = (size_t)lf_tensor_nelements(hd->o_h1);
    float *buf = s_scratch(self, 3 * n);
    if (!buf) return LF_ENOMEM;
    float *h0 = buf, *h1 = buf + n, *r = buf + 2 * n;
    rc = s_set_inputs(self, hd, x, t, ctx, added, n_ids);
    if (!rc) rc = s_run(self, hd);
    if (!rc) rc = s_get_out(self, hd->o_h0, h0);
    if (!rc) rc = s_get_out(self, hd->o_h1, h1);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) r[i] = h1[i] - h0[i];
    rc = lf_stepcache_fb_check(sc, self, r, n, n);
    if (rc < 0) return rc;
    if (rc == 1) {
        /* Reuse: h = h1 + the rest's residual of the last full evaluation. */
        const float *rest = lf_stepcache_fb_rest(sc);
        for (size_t i = 0; i < n; i++) r[i] = h1[i] + rest[i];
        s_cache_t *tl = s_get(self, V_FB_TAIL, 0, NULL, batch, h, w, ctx_len, n_pooled, n_ids, &rc);
        if (!tl) return rc;
        rc = lf_backend_tensor_set(self->be, tl->in_h, r, lf_tensor_nbytes(tl->in_h));
        if (!rc) rc = s_run(self, tl);
        if (!rc) rc = s_get_out(self, tl->out, out);
        if (!rc) lf_stepcache_count(sc, 0);
        return rc;
    }
    s_cache_t *re = s_get(self, V_FB_REST, 0, NULL, batch, h, w, ctx_len, n_pooled, n_ids, &rc);
    if (!re) return rc;
    /* s_get may have recorded a graph: the head's host copies stay valid. */
    rc = s_set_inputs(self, re, x, t, ctx, added, n_ids);
    if (!rc) rc = lf_backend_tensor_set(self->be, re->in_h0, h0, lf_tensor_nbytes(re->in_h0));
    if (!rc) rc = lf_backend_tensor_set(self->be, re->in_h1, h1, lf_tensor_nbytes(re->in_h1));
    if (!rc) rc = s_run(self, re);
    if (!rc) rc = s_get_out(self, re->out, out);
    float *rest = lf_stepcache_fb_rest(sc);
    if (!rc) rc = s_get_out(self, re->o_h, rest);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) rest[i] -= h1[i];
    lf_stepcache_fb_stored(sc);
    lf_stepcache_count(sc, 1);
    return 0;
}

/* DeepCache: the whole network keeping the deep feature, or the shallow
 * blocks around the cached one. */
static int s_forward_dc(lf_unet_t *self, lf_stepcache_t *sc, const float *x, int batch, int h,
                        int w, const float *t, const float *ctx, int ctx_len, const float *added,
                        int n_pooled, int n_ids, float *out) {
    int rc = 0;
    const int depth = lf_stepcache_opts(sc)->depth < s_nskips(&self->c)
                          ? lf_stepcache_opts(sc)->depth
                          : s_nskips(&self->c) - 1;
    s_cache_t *fu =
        s_get(self, V_DEEP_FULL, depth, NULL, batch, h, w, ctx_len, n_pooled, n_ids, &rc);
    if (!fu) return rc;
    const size_t n = (size_t)lf_tensor_nelements(fu->o_h);
    if (lf_stepcache_dc_reuse(sc, self, n)) {
        int64_t ne[4];
        memcpy(ne, fu->o_h->ne, sizeof ne);
        s_cache_t *sh = s_get(self, V_DEEP_SHALLOW, depth, ne, batch, h, w, ctx_len,
                              n_pooled, n_ids, &rc);
        if (!sh) return rc;
        const float *deep = lf_stepcache_dc_feature(sc, self, n);
        rc = s_set_inputs(self, sh, x, t, ctx, added, n_ids);
        if (!rc) rc = lf_backend_tensor_set(self->be, sh->in_h, deep, lf_tensor_nbytes(sh->in_h));
        if (!rc) rc = s_run(self, sh);
        if (!rc) rc = s_get_out(self, sh->out, out);
        if (!rc) lf_stepcache_count(sc, 0);
        return rc;
    }
    float *deep = lf_stepcache_dc_feature(sc, self, n);
    if (!deep) return LF_ENOMEM;
    rc = s_set_inputs(self, fu, x, t, ctx, added, n_ids);
    if (!rc) rc = s_run(self, fu);
    if (!rc) rc = s_get_out(self, fu->out, out);
    if (!rc) rc = s_get_out(self, fu->o_h, deep);
    if (rc) return rc;
    lf_stepcache_dc_stored(sc);
    lf_stepcache_count(sc, 1);
    return 0;
}

int lf_unet_forward_cached(lf_unet_t *self, lf_stepcache_t *sc, const float *x, int batch, int h,
                           int w, const float *t, const float *ctx, int ctx_len,
                           const float *added, int n_pooled, float *out) {
    if (!sc || lf_stepcache_opts(sc)->kind == LF_STEPCACHE_NONE) {
        int rc = lf_unet_forward(self, x, batch, h, w, t, ctx, ctx_len, added, n_pooled, out);
        if (!rc && sc) lf_stepcache_count(sc, 1);
        return rc;
    }
    int n_ids = 0, rc = s_check_args(self, batch, h, w, ctx_len, added, &n_pooled, &n_ids);
    if (rc) return rc;
    if (lf_stepcache_opts(sc)->kind == LF_STEPCACHE_FBCACHE)
        return s_forward_fb(self, sc, x, batch, h, w, t, ctx, ctx_len, added, n_pooled, n_ids, out);
    return s_forward_dc(self, sc, x, batch, h, w, t, ctx, ctx_len, added, n_pooled, n_ids, out);
}

unsigned long lf_unet_blocks_run(const lf_unet_t *self) { return self->blocks_run; }

double lf_unet_flops_run(const lf_unet_t *self) { return self->flops_run; }

int lf_unet_cache_depths(const lf_unet_t *self) { return s_nskips(&self->c); }
