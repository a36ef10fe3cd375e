/* lf_flux: the Flux transformer as one lf_graph per input shape; RoPE's
 * cos / sin table is computed on the host from the position ids. */
#include "lf_flux.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_unet.h"

#define S LF__SHAPE
#define N_CACHE 2

/* A linear layer; w and b are pool tensors or row views of fused ones. */
typedef struct {
    lf_tensor_t w, b;
} s_lin_t;

typedef struct {
    s_lin_t mod, q, k, v, proj, mlp0, mlp2;
    lf_tensor_t *qn, *kn;
} s_stream_t; /* one stream (img or txt) of a double block */

typedef struct {
    s_lin_t mod, q, k, v, mlp, out;
    lf_tensor_t *qn, *kn;
} s_single_t;

typedef struct {
    int batch, n_img, n_txt;
    lf_graph_t *g;
    lf_tensor_t *x, *txt, *vec, *t, *gd, *pe, *out;
    float *pe_host;
    unsigned long used;
} s_cache_t;

struct lf_flux {
    lf_flux_config_t c;
    lf_backend_t *be;
    s_lin_t img_in, txt_in, time1, time2, vec1, vec2, guid1, guid2, final_mod, final;
    s_stream_t (*dbl)[2]; /* [n_double][img, txt] */
    s_single_t *sgl;
    s_cache_t cache[N_CACHE];
    unsigned long tick;
};

/* ---- loading ---- */

static void s_lin(lf_keymap_loader_t *ld, s_lin_t *l, int64_t rows, int64_t cols, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
static void s_lin(lf_keymap_loader_t *ld, s_lin_t *l, int64_t rows, int64_t cols, const char *fmt,
                  ...) {
    char n[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n, sizeof n, fmt, ap);
    va_end(ap);
    lf_tensor_t *w = lf_keymap_load(ld, 2, S(rows, cols), "%s.weight", n);
    lf_tensor_t *b = lf_keymap_load(ld, 1, S(rows), "%s.bias", n);
    if (w && b) l->w = *w, l->b = *b;
}

/* A fused linear (rows = the sum of parts' rows) as row views, one per part. */
static void s_lin_fused(lf_keymap_loader_t *ld, s_lin_t **parts, const int64_t *rows, int n,
                        int64_t cols, const char *name) {
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += rows[i];
    s_lin_t all = {0};
    s_lin(ld, &all, total, cols, "%s", name);
    if (ld->rc) return;
    for (int i = 0, at = 0; i < n; at += (int)rows[i], i++) {
        parts[i]->w = lf_tensor_slice(&all.w, 1, at, rows[i]);
        parts[i]->b = lf_tensor_slice(&all.b, 0, at, rows[i]);
    }
}

static int s_count(const lf_keymap_t *km, const char *fmt) {
    char n[160];
    int i = 0;
    for (;; i++) {
        snprintf(n, sizeof n, fmt, i);
        if (!lf_keymap_find(km, n)) return i;
    }
}

int lf_flux_detect(const lf_weights_t *w, const char *prefix) {
    char n[200];
    snprintf(n, sizeof n, "%sdouble_blocks.0.img_attn.qkv.weight", prefix);
    if (lf_weights_find(w, n)) return 1;
    snprintf(n, sizeof n, "%ssingle_transformer_blocks.0.proj_mlp.weight", prefix);
    return lf_weights_find(w, n) != NULL;
}

static int s_config(lf_flux_t *f, const lf_keymap_t *km, const json_t *cfg, char *err,
                    size_t errlen) {
    lf_flux_config_t *c = &f->c;
    c->bfl = lf_keymap_find(km, "double_blocks.0.img_attn.qkv.weight") != NULL;
    const lf_tensor_info_t *in = lf_keymap_find(km, c->bfl ? "img_in.weight" : "x_embedder.weight");
    const lf_tensor_info_t *txt =
        lf_keymap_find(km, c->bfl ? "txt_in.weight" : "context_embedder.weight");
    const lf_tensor_info_t *vec = lf_keymap_find(
        km, c->bfl ? "vector_in.in_layer.weight" : "time_text_embed.text_embedder.linear_1.weight");
    const lf_tensor_info_t *qn = lf_keymap_find(
        km, c->bfl ? "double_blocks.0.img_attn.norm.query_norm.scale"
                   : "transformer_blocks.0.attn.norm_q.weight");
    const lf_tensor_info_t *mlp = lf_keymap_find(
        km, c->bfl ? "double_blocks.0.img_mlp.0.weight" : "transformer_blocks.0.ff.net.0.proj.weight");
    const lf_tensor_info_t *out =
        lf_keymap_find(km, c->bfl ? "final_layer.linear.weight" : "proj_out.weight");
    if (!in || !txt || !vec || !qn || !mlp || !out || in->ndim != 2 || txt->ndim != 2 ||
        vec->ndim != 2 || qn->ndim != 1 || mlp->ndim != 2 || out->ndim != 2) {
        if (errlen)
            snprintf(err, errlen, "%s: not a Flux transformer under \"%s\" (img_in / txt_in / "
                     "vector_in / block 0 / final layer missing)", lf_weights_path(km->w),
                     km->prefix);
        return LF_ENOTFOUND;
    }
    c->hidden = (int)in->shape[0], c->in_ch = (int)in->shape[1];
    c->txt_dim = (int)txt->shape[1], c->vec_dim = (int)vec->shape[1];
    c->head_dim = (int)qn->shape[0], c->mlp = (int)mlp->shape[0], c->out_ch = (int)out->shape[0];
    c->n_double = s_count(km, c->bfl ? "double_blocks.%d.img_mod.lin.weight"
                                     : "transformer_blocks.%d.norm1.linear.weight");
    c->n_single = s_count(km, c->bfl ? "single_blocks.%d.modulation.lin.weight"
                                     : "single_transformer_blocks.%d.norm.linear.weight");
    c->guidance = lf_keymap_find(km, c->bfl ? "guidance_in.in_layer.weight"
                                            : "time_text_embed.guidance_embedder.linear_1.weight") != NULL;
    c->theta = 10000.0f;
    const int Dh = c->head_dim;
    int def[3] = {Dh * 16 / 128, Dh * 56 / 128, Dh * 56 / 128}; /* Flux.1: 16, 56, 56 of 128 */
    for (int i = 0; i < 3; i++) c->axes[i] = lf__json_int(cfg, "axes_dims_rope", i, def[i]);
    if (Dh < 2 || c->hidden % Dh || c->axes[0] + c->axes[1] + c->axes[2] != Dh ||
        c->axes[0] % 2 || c->axes[1] % 2 || c->axes[2] % 2) {
        if (errlen)
            snprintf(err, errlen, "%s: Flux head dimension %d does not fit hidden size %d or RoPE "
                     "axes %d+%d+%d (give axes_dims_rope in the config)", lf_weights_path(km->w),
                     Dh, c->hidden, c->axes[0], c->axes[1], c->axes[2]);
        return LF_EFORMAT;
    }
    c->heads = c->hidden / Dh;
    return 0;
}

static void s_load_double(lf_keymap_loader_t *ld, const lf_flux_config_t *c, int i,
                          s_stream_t *st) {
    const int64_t D = c->hidden, F = c->mlp, Dh = c->head_dim;
    s_stream_t *im = &st[0], *tx = &st[1];
    char p[64];
    if (c->bfl) {
        snprintf(p, sizeof p, "double_blocks.%d", i);
        const char *side[2] = {"img", "txt"};
        for (int s = 0; s < 2; s++) {
            s_stream_t *x = &st[s];
            char n[96];
            s_lin(ld, &x->mod, 6 * D, D, "%s.%s_mod.lin", p, side[s]);
            snprintf(n, sizeof n, "%s.%s_attn.qkv", p, side[s]);
            s_lin_fused(ld, (s_lin_t *[]){&x->q, &x->k, &x->v}, S(D, D, D), 3, D, n);
            x->qn = lf_keymap_load(ld, 1, S(Dh), "%s.%s_attn.norm.query_norm.scale", p, side[s]);
            x->kn = lf_keymap_load(ld, 1, S(Dh), "%s.%s_attn.norm.key_norm.scale", p, side[s]);
            s_lin(ld, &x->proj, D, D, "%s.%s_attn.proj", p, side[s]);
            s_lin(ld, &x->mlp0, F, D, "%s.%s_mlp.0", p, side[s]);
            s_lin(ld, &x->mlp2, D, F, "%s.%s_mlp.2", p, side[s]);
        }
        return;
    }
    snprintf(p, sizeof p, "transformer_blocks.%d", i);
    s_lin(ld, &im->mod, 6 * D, D, "%s.norm1.linear", p);
    s_lin(ld, &tx->mod, 6 * D, D, "%s.norm1_context.linear", p);
    s_lin(ld, &im->q, D, D, "%s.attn.to_q", p);
    s_lin(ld, &im->k, D, D, "%s.attn.to_k", p);
    s_lin(ld, &im->v, D, D, "%s.attn.to_v", p);
    s_lin(ld, &tx->q, D, D, "%s.attn.add_q_proj", p);
    s_lin(ld, &tx->k, D, D, "%s.attn.add_k_proj", p);
    s_lin(ld, &tx->v, D, D, "%s.attn.add_v_proj", p);
    im->qn = lf_keymap_load(ld, 1, S(Dh), "%s.attn.norm_q.weight", p);
    im->kn = lf_keymap_load(ld, 1, S(Dh), "%s.attn.norm_k.weight", p);
    tx->qn = lf_keymap_load(ld, 1, S(Dh), "%s.attn.norm_added_q.weight", p);
    tx->kn = lf_keymap_load(ld, 1, S(Dh), "%s.attn.norm_added_k.weight", p);
    s_lin(ld, &im->proj, D, D, "%s.attn.to_out.0", p);
    s_lin(ld, &tx->proj, D, D, "%s.attn.to_add_out", p);
    s_lin(ld, &im->mlp0, F, D, "%s.ff.net.0.proj", p);
    s_lin(ld, &im->mlp2, D, F, "%s.ff.net.2", p);
    s_lin(ld, &tx->mlp0, F, D, "%s.ff_context.net.0.proj", p);
    s_lin(ld, &tx->mlp2, D, F, "%s.ff_context.net.2", p);
}

static void s_load_single(lf_keymap_loader_t *ld, const lf_flux_config_t *c, int i,
                          s_single_t *s) {
    const int64_t D = c->hidden, F = c->mlp, Dh = c->head_dim;
    char p[64];
    if (c->bfl) {
        snprintf(p, sizeof p, "single_blocks.%d", i);
        char n[96];
        snprintf(n, sizeof n, "%s.linear1", p);
        s_lin(ld, &s->mod, 3 * D, D, "%s.modulation.lin", p);
        s_lin_fused(ld, (s_lin_t *[]){&s->q, &s->k, &s->v, &s->mlp}, S(D, D, D, F), 4, D, n);
        s->qn = lf_keymap_load(ld, 1, S(Dh), "%s.norm.query_norm.scale", p);
        s->kn = lf_keymap_load(ld, 1, S(Dh), "%s.norm.key_norm.scale", p);
        s_lin(ld, &s->out, D, D + F, "%s.linear2", p);
        return;
    }
    snprintf(p, sizeof p, "single_transformer_blocks.%d", i);
    s_lin(ld, &s->mod, 3 * D, D, "%s.norm.linear", p);
    s_lin(ld, &s->q, D, D, "%s.attn.to_q", p);
    s_lin(ld, &s->k, D, D, "%s.attn.to_k", p);
    s_lin(ld, &s->v, D, D, "%s.attn.to_v", p);
    s_lin(ld, &s->mlp, F, D, "%s.proj_mlp", p);
    s->qn = lf_keymap_load(ld, 1, S(Dh), "%s.attn.norm_q.weight", p);
    s->kn = lf_keymap_load(ld, 1, S(Dh), "%s.attn.norm_k.weight", p);
    s_lin(ld, &s->out, D, D + F, "%s.proj_out", p);
}

int lf_flux_new(lf_flux_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen) {
    lf_flux_t *f = calloc(1, sizeof *f);
    if (!f) return LF_ENOMEM;
    f->be = be;
    int rc = s_config(f, km, config, err, errlen);
    if (rc) {
        free(f);
        return rc;
    }
    const lf_flux_config_t *c = &f->c;
    f->dbl = calloc((size_t)c->n_double + 1, sizeof *f->dbl);
    f->sgl = calloc((size_t)c->n_single + 1, sizeof *f->sgl);
    if (!f->dbl || !f->sgl) {
        lf_flux_destroy(&f);
        return LF_ENOMEM;
    }
    const int64_t D = c->hidden;
    /* As stored, GGUF block types stay quantized; a block type quantizes on load. */
    const int quant = lf_type_is_quant((lf_type_t)type) ? type : type < 0 ? LF_WEIGHTS_STORED : 0;
    lf_keymap_loader_t ld = {.km = km, .pool = pool, .pool_prefix = "flux.",
                             .type = quant ? -1 : type, .quant = quant, .err = err, .errlen = errlen};
    const int b = c->bfl;
    s_lin(&ld, &f->img_in, D, c->in_ch, "%s", b ? "img_in" : "x_embedder");
    s_lin(&ld, &f->txt_in, D, c->txt_dim, "%s", b ? "txt_in" : "context_embedder");
    s_lin(&ld, &f->time1, D, 256, "%s", b ? "time_in.in_layer" : "time_text_embed.timestep_embedder.linear_1");
    s_lin(&ld, &f->time2, D, D, "%s", b ? "time_in.out_layer" : "time_text_embed.timestep_embedder.linear_2");
    s_lin(&ld, &f->vec1, D, c->vec_dim, "%s", b ? "vector_in.in_layer" : "time_text_embed.text_embedder.linear_1");
    s_lin(&ld, &f->vec2, D, D, "%s", b ? "vector_in.out_layer" : "time_text_embed.text_embedder.linear_2");
    if (c->guidance) {
        s_lin(&ld, &f->guid1, D, 256, "%s", b ? "guidance_in.in_layer" : "time_text_embed.guidance_embedder.linear_1");
        s_lin(&ld, &f->guid2, D, D, "%s", b ? "guidance_in.out_layer" : "time_text_embed.guidance_embedder.linear_2");
    }
    for (int i = 0; i < c->n_double; i++) s_load_double(&ld, c, i, f->dbl[i]);
    for (int i = 0; i < c->n_single; i++) s_load_single(&ld, c, i, &f->sgl[i]);
    s_lin(&ld, &f->final_mod, 2 * D, D, "%s", b ? "final_layer.adaLN_modulation.1" : "norm_out.linear");
    s_lin(&ld, &f->final, c->out_ch, D, "%s", b ? "final_layer.linear" : "proj_out");
    if (ld.rc) {
        lf_flux_destroy(&f);
        return ld.rc;
    }
    *out = f;
    return 0;
}

void lf_flux_destroy(lf_flux_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_flux_t *f = *self_p;
    for (int i = 0; i < N_CACHE; i++) {
        lf_graph_destroy(&f->cache[i].g);
        free(f->cache[i].pe_host);
    }
    free(f->dbl);
    free(f->sgl);
    free(f);
    *self_p = NULL;
}

const lf_flux_config_t *lf_flux_config(const lf_flux_t *self) { return &self->c; }

void lf_flux_release_graphs(lf_flux_t *self) {
    if (!self) return;
    for (int i = 0; i < N_CACHE; i++) {
        lf_graph_destroy(&self->cache[i].g);
        free(self->cache[i].pe_host);
        self->cache[i] = (s_cache_t){0};
    }
}

/* ---- the graph ---- */

static lf_tensor_t *s_linear(lf_graph_t *g, const lf_tensor_t *x, const s_lin_t *l) {
    return lf_graph_matmul(g, x, &l->w, &l->b);
}

/* in_layer -> SiLU -> out_layer (BFL's MLPEmbedder, diffusers' TimestepEmbedding). */
static lf_tensor_t *s_mlp_embed(lf_graph_t *g, const lf_tensor_t *x, const s_lin_t *a,
                                const s_lin_t *b) {
    return s_linear(g, lf_graph_silu(g, s_linear(g, x, a)), b);
}

/* Modulation vectors: Linear(SiLU(vec)) [n*D, B] as [n*D, 1, B] (broadcast over tokens). */
static lf_tensor_t *s_mod(lf_graph_t *g, const lf_tensor_t *svec, const s_lin_t *l, int64_t B) {
    lf_tensor_t *m = s_linear(g, svec, l);
    return m ? lf__nn_reshape(g, m, m->ne[0], 1, B, 1) : NULL;
}

static lf_tensor_t *s_chunk(lf_graph_t *g, const lf_tensor_t *m, int i, int64_t D) {
    return lf_graph_split(g, m, 0, i * D, D);
}

/* LayerNorm without affine, then x * (1 + scale) + shift. */
static lf_tensor_t *s_modulate(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *shift,
                               const lf_tensor_t *scale) {
    lf_tensor_t *h = lf_graph_layer_norm(g, x, NULL, NULL, 1e-6f);
    return lf_graph_add(g, lf_graph_mul(g, h, lf_graph_scale(g, scale, 1.0f, 1.0f)), shift);
}

/* x + gate * y */
static lf_tensor_t *s_gated(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *gate,
                            const lf_tensor_t *y) {
    return lf_graph_add(g, x, lf_graph_mul(g, y, gate));
}

/* Per-head RMSNorm of [H*Dh, N, B] over each head's Dh values. */
static lf_tensor_t *s_head_norm(lf_graph_t *g, const lf_flux_config_t *c, lf_tensor_t *x,
                                const lf_tensor_t *scale) {
    if (!x) return NULL;
    const int64_t N = x->ne[1], B = x->ne[2];
    lf_tensor_t *h = lf__nn_reshape(g, x, c->head_dim, c->heads, N, B);
    h = lf_graph_rms_norm(g, h, scale, 1e-6f);
    return h ? lf__nn_reshape(g, h, c->hidden, N, B, 1) : NULL;
}

/* Attention over q, k, v [H*Dh, N, B] (RoPE on q and k) -> [H*Dh, N, B]. */
static lf_tensor_t *s_attention(lf_graph_t *g, const lf_flux_config_t *c, lf_tensor_t *q,
                                lf_tensor_t *k, lf_tensor_t *v, const lf_tensor_t *pe) {
    q = lf_graph_rope(g, q, pe);
    k = lf_graph_rope(g, k, pe);
    return lf_graph_mha(g, q, k, v, NULL, c->heads);
}

static void s_double(lf_graph_t *g, const lf_flux_config_t *c, const s_stream_t *st,
                     const lf_tensor_t *svec, const lf_tensor_t *pe, lf_tensor_t **img,
                     lf_tensor_t **txt, int64_t B) {
    const int64_t D = c->hidden;
    lf_tensor_t **x[2] = {img, txt}, *m[2], *q[2], *k[2], *v[2];
    for (int s = 0; s < 2; s++) {
        m[s] = s_mod(g, svec, &st[s].mod, B);
        lf_tensor_t *h = s_modulate(g, *x[s], s_chunk(g, m[s], 0, D), s_chunk(g, m[s], 1, D));
        q[s] = s_head_norm(g, c, s_linear(g, h, &st[s].q), st[s].qn);
        k[s] = s_head_norm(g, c, s_linear(g, h, &st[s].k), st[s].kn);
        v[s] = s_linear(g, h, &st[s].v);
    }
    /* Joint attention over [txt, img]. */
    lf_tensor_t *a = s_attention(g, c, lf_graph_concat(g, q[1], q[0], 1),
                                 lf_graph_concat(g, k[1], k[0], 1),
                                 lf_graph_concat(g, v[1], v[0], 1), pe);
    const int64_t Nt = (*txt) ? (*txt)->ne[1] : 0, Ni = (*img) ? (*img)->ne[1] : 0;
    lf_tensor_t *part[2] = {lf_graph_split(g, a, 1, Nt, Ni), lf_graph_split(g, a, 1, 0, Nt)};
    for (int s = 0; s < 2; s++) {
        const s_stream_t *l = &st[s];
        lf_tensor_t *h = s_gated(g, *x[s], s_chunk(g, m[s], 2, D), s_linear(g, part[s], &l->proj));
        lf_tensor_t *f = s_modulate(g, h, s_chunk(g, m[s], 3, D), s_chunk(g, m[s], 4, D));
        f = s_linear(g, lf_graph_gelu(g, s_linear(g, f, &l->mlp0), 1), &l->mlp2);
        *x[s] = s_gated(g, h, s_chunk(g, m[s], 5, D), f);
    }
}

static lf_tensor_t *s_single(lf_graph_t *g, const lf_flux_config_t *c, const s_single_t *l,
                             const lf_tensor_t *svec, const lf_tensor_t *pe, lf_tensor_t *x,
                             int64_t B) {
    const int64_t D = c->hidden;
    lf_tensor_t *m = s_mod(g, svec, &l->mod, B);
    lf_tensor_t *h = s_modulate(g, x, s_chunk(g, m, 0, D), s_chunk(g, m, 1, D));
    lf_tensor_t *a = s_attention(g, c, s_head_norm(g, c, s_linear(g, h, &l->q), l->qn),
                                 s_head_norm(g, c, s_linear(g, h, &l->k), l->kn),
                                 s_linear(g, h, &l->v), pe);
    lf_tensor_t *mlp = lf_graph_gelu(g, s_linear(g, h, &l->mlp), 1);
    return s_gated(g, x, s_chunk(g, m, 2, D), s_linear(g, lf_graph_concat(g, a, mlp, 0), &l->out));
}

static int s_build(lf_flux_t *f, s_cache_t *e) {
    const lf_flux_config_t *c = &f->c;
    const int64_t B = e->batch, Ni = e->n_img, Nt = e->n_txt, D = c->hidden;
    lf_graph_t *g = e->g = lf_graph_new(f->be);
    if (!g) return LF_ENOMEM;
    e->x = lf_graph_input(g, LF_TYPE_F32, c->in_ch, Ni, B, 1);
    e->txt = lf_graph_input(g, LF_TYPE_F32, c->txt_dim, Nt, B, 1);
    e->vec = lf_graph_input(g, LF_TYPE_F32, c->vec_dim, B, 1, 1);
    e->t = lf_graph_input(g, LF_TYPE_F32, B, 1, 1, 1);
    e->gd = c->guidance ? lf_graph_input(g, LF_TYPE_F32, B, 1, 1, 1) : NULL;
    e->pe = lf_graph_input(g, LF_TYPE_F32, D, Nt + Ni, 1, 1);
    /* vec = time_in(t) (+ guidance_in(g)) + vector_in(y) */
    lf_tensor_t *vec = s_mlp_embed(g, lf_graph_timestep_embed(g, e->t, 256, 10000.0f, 1, 0.0f),
                                   &f->time1, &f->time2);
    if (c->guidance)
        vec = lf_graph_add(g, vec, s_mlp_embed(g, lf_graph_timestep_embed(g, e->gd, 256, 10000.0f,
                                                                          1, 0.0f),
                                               &f->guid1, &f->guid2));
    vec = lf_graph_add(g, vec, s_mlp_embed(g, e->vec, &f->vec1, &f->vec2));
    lf_tensor_t *svec = lf_graph_silu(g, vec); /* every modulation takes SiLU(vec) */
    lf_tensor_t *img = s_linear(g, e->x, &f->img_in), *txt = s_linear(g, e->txt, &f->txt_in);
    for (int i = 0; i < c->n_double; i++) s_double(g, c, f->dbl[i], svec, e->pe, &img, &txt, B);
    lf_tensor_t *x = lf_graph_concat(g, txt, img, 1);
    for (int i = 0; i < c->n_single; i++) x = s_single(g, c, &f->sgl[i], svec, e->pe, x, B);
    img = lf_graph_split(g, x, 1, Nt, Ni);
    /* Final AdaLayerNormContinuous: BFL stores (shift, scale), diffusers (scale, shift). */
    lf_tensor_t *m = s_mod(g, svec, &f->final_mod, B);
    lf_tensor_t *shift = s_chunk(g, m, c->bfl ? 0 : 1, D), *scale = s_chunk(g, m, c->bfl ? 1 : 0, D);
    e->out = lf_graph_output(g, s_linear(g, s_modulate(g, img, shift, scale), &f->final));
    int rc = lf_graph_plan(g);
    if (!rc) {
        e->pe_host = malloc((size_t)D * (Nt + Ni) * sizeof *e->pe_host);
        if (!e->pe_host) rc = LF_ENOMEM;
    }
    return rc;
}

/* RoPE table [N][H*Dh]: per token (txt first), per axis a, per pair j: cos and
 * sin of pos_a * theta^(-2j/dim_a) (float64 as diffusers' FluxPosEmbed), the
 * same for every head. */
static void s_rope_table(const lf_flux_config_t *c, int n_txt, int n_img, const float *txt_ids,
                         const float *img_ids, float *pe) {
    const int Dh = c->head_dim, D = c->hidden;
    for (int n = 0; n < n_txt + n_img; n++) {
        const float *id = n < n_txt ? (txt_ids ? txt_ids + 3 * n : NULL)
                                    : (img_ids ? img_ids + 3 * (n - n_txt) : NULL);
        float *row = pe + (size_t)n * D;
        for (int a = 0, off = 0; a < 3; off += c->axes[a], a++) {
            const double pos = id ? (double)id[a] : 0.0;
            for (int j = 0; j < c->axes[a] / 2; j++) {
                double fr = 1.0 / pow((double)c->theta, (2.0 * j) / c->axes[a]);
                row[off + 2 * j] = (float)cos(pos * fr);
                row[off + 2 * j + 1] = (float)sin(pos * fr);
            }
        }
        for (int h = 1; h < c->heads; h++) memcpy(row + (size_t)h * Dh, row, (size_t)Dh * sizeof *row);
    }
}

static s_cache_t *s_graph(lf_flux_t *f, int batch, int n_img, int n_txt, int *rc) {
    s_cache_t *e = NULL, *victim = &f->cache[0];
    for (int i = 0; i < N_CACHE; i++) {
        s_cache_t *ci = &f->cache[i];
        if (ci->g && ci->batch == batch && ci->n_img == n_img && ci->n_txt == n_txt) e = ci;
        if (!ci->g || (victim->g && ci->used < victim->used)) victim = ci;
    }
    if (!e) {
        e = victim;
        lf_graph_destroy(&e->g);
        free(e->pe_host);
        e->pe_host = NULL;
        e->batch = batch, e->n_img = n_img, e->n_txt = n_txt;
        *rc = s_build(f, e);
        if (*rc) {
            lf_graph_destroy(&e->g);
            return NULL;
        }
    }
    e->used = ++f->tick;
    return e;
}

int lf_flux_forward(lf_flux_t *self, int batch, int n_img, int n_txt, const float *x,
                    const float *txt, const float *vec, const float *t, const float *guidance,
                    const float *img_ids, const float *txt_ids, float *out) {
    const lf_flux_config_t *c = &self->c;
    if (batch < 1 || n_img < 1 || n_txt < 1 || !x || !txt || !vec || !t || !out) return LF_EINVAL;
    int rc = 0;
    s_cache_t *e = s_graph(self, batch, n_img, n_txt, &rc);
    if (!e) return rc;
    float *t1000 = malloc(2 * (size_t)batch * sizeof *t1000);
    if (!t1000) return LF_ENOMEM;
    for (int b = 0; b < batch; b++) {
        t1000[b] = t[b] * 1000.0f;
        t1000[batch + b] = guidance ? guidance[b] * 1000.0f : 0.0f;
    }
    s_rope_table(c, n_txt, n_img, txt_ids, img_ids, e->pe_host);
    lf_backend_t *be = self->be;
    rc = lf_backend_tensor_set(be, e->x, x, (size_t)batch * n_img * c->in_ch * sizeof *x);
    if (!rc) rc = lf_backend_tensor_set(be, e->txt, txt, (size_t)batch * n_txt * c->txt_dim * sizeof *txt);
    if (!rc) rc = lf_backend_tensor_set(be, e->vec, vec, (size_t)batch * c->vec_dim * sizeof *vec);
    if (!rc) rc = lf_backend_tensor_set(be, e->t, t1000, (size_t)batch * sizeof *t1000);
    if (!rc && e->gd) rc = lf_backend_tensor_set(be, e->gd, t1000 + batch, (size_t)batch * sizeof *t1000);
    if (!rc)
        rc = lf_backend_tensor_set(be, e->pe, e->pe_host,
                                   (size_t)c->hidden * (n_txt + n_img) * sizeof *e->pe_host);
    free(t1000);
    if (!rc) rc = lf_graph_compute(e->g);
    if (!rc) rc = lf_backend_sync(be);
    if (!rc) rc = lf_backend_tensor_get(be, e->out, out, (size_t)batch * n_img * c->out_ch * sizeof *out);
    return rc;
}

/* ---- packing (pure) ---- */

static void s_pack(float *z, int batch, int ch, int h, int w, float *packed, int to_packed) {
    const int h2 = h / 2, w2 = w / 2;
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < ch; c++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    size_t zi = (((size_t)b * ch + c) * h + y) * w + xx;
                    size_t pi = ((size_t)b * h2 * w2 + (size_t)(y / 2) * w2 + xx / 2) * ch * 4 +
                                (size_t)c * 4 + (y % 2) * 2 + xx % 2;
                    if (to_packed)
                        packed[pi] = z[zi];
                    else
                        z[zi] = packed[pi];
                }
}

void lf_flux_pack(const float *z, int batch, int ch, int h, int w, float *packed) {
    s_pack((float *)z, batch, ch, h, w, packed, 1);
}

void lf_flux_unpack(const float *packed, int batch, int ch, int h, int w, float *z) {
    s_pack(z, batch, ch, h, w, (float *)packed, 0);
}

void lf_flux_image_ids(int h, int w, float *ids) {
    for (int y = 0; y < h / 2; y++)
        for (int x = 0; x < w / 2; x++) {
            float *r = ids + 3 * ((size_t)y * (w / 2) + x);
            r[0] = 0.0f, r[1] = (float)y, r[2] = (float)x;
        }
}
