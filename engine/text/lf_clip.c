/* lf_clip: CLIP text encoder graph (one cached per chunk count, token count
 * and clip skip); the embedding gather runs on the host. */
#include "lf_clip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_unet.h"

#define S LF__SHAPE

typedef struct {
    lf_tensor_t *n1w, *n1b, *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob, *n2w, *n2b, *f1w, *f1b, *f2w,
        *f2b;
    lf_tensor_t *qkvw, *qkvb; /* OpenCLIP: q, k, v packed ([3D, D]); qw..vb unused */
} s_layer_t;

#define N_CACHE 4

/* One recorded graph per (chunks, tokens, clip skip): the prompt and the
 * negative prompt may differ in chunk count, and each keeps its graph. */
typedef struct {
    int n_chunks, n_tok, skip, final_norm, pooled;
    lf_graph_t *g;
    lf_tensor_t *in, *out, *last; /* last: the final-norm'd last layer (pooled only) */
    float *host; /* [n_chunks][n_tok][hidden] staging */
    unsigned long used;
} s_cache_t;

struct lf_clip {
    lf_clip_config_t c;
    lf_backend_t *be;
    lf_pool_t *pool;
    lf_tensor_t *tok, *pos, *fw, *fb;
    s_layer_t *l;
    s_cache_t cache[N_CACHE];
    unsigned long tick;
    void *row;   /* one embedding row in its stored type */
    float *proj; /* host [proj_dim][hidden] (HF Linear orientation), or NULL */
    int packed;  /* OpenCLIP layout */
};

/* The text projection into c->proj as [proj][hidden] f32: HF's
 * text_projection.weight is stored so, OpenCLIP's text_projection is its
 * transpose ([hidden][proj], applied as x @ P). Optional: absent = 0. */
static int s_load_proj(lf_clip_t *c, const lf_keymap_t *km, char *err, size_t errlen) {
    const int D = c->c.hidden;
    const lf_tensor_info_t *t = NULL;
    int transposed = c->packed;
    if (c->packed) {
        t = lf_keymap_find(km, "text_projection");
    } else {
        /* Next to "text_model.": "<pre>text_projection.weight". */
        char n[160];
        size_t pl = strlen(km->prefix), tl = strlen("text_model.");
        if (pl >= tl && strcmp(km->prefix + pl - tl, "text_model.") == 0) pl -= tl;
        snprintf(n, sizeof n, "%.*stext_projection.weight", (int)pl, km->prefix);
        t = lf_weights_find(km->w, n);
    }
    if (!t) return 0;
    if (t->ndim != 2 || t->shape[transposed ? 0 : 1] != D) {
        if (errlen)
            snprintf(err, errlen, "%s: tensor %s has shape [%lld, %lld]; expected %s = %d",
                     lf_weights_path(km->w), t->name, (long long)t->shape[0],
                     (long long)t->shape[1], transposed ? "rows" : "columns", D);
        return LF_EFORMAT;
    }
    const int P = (int)t->shape[transposed ? 1 : 0];
    c->proj = malloc((size_t)P * D * sizeof *c->proj);
    if (!c->proj) return LF_ENOMEM;
    for (int p = 0; p < P; p++)
        for (int d = 0; d < D; d++)
            c->proj[(size_t)p * D + d] =
                lf_tensorinfo_get_f32(t, transposed ? (int64_t)d * P + p : (int64_t)p * D + d);
    c->c.proj_dim = P;
    return 0;
}

int lf_clip_new(lf_clip_t **out, const lf_keymap_t *km, const json_t *cfg, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen) {
    const lf_tensor_info_t *te = lf_keymap_find(km, "embeddings.token_embedding.weight");
    const lf_tensor_info_t *pe = lf_keymap_find(km, "embeddings.position_embedding.weight");
    const lf_tensor_info_t *f1 = lf_keymap_find(km, "encoder.layers.0.mlp.fc1.weight");
    const int packed = km->kind == LF_KEYMAP_OPENCLIP;
    if (!te || !pe || !f1 || te->ndim != 2 || pe->ndim != 2 || f1->ndim != 2) {
        if (errlen)
            snprintf(err, errlen, "%s: missing tensor %sembeddings.token_embedding.weight (or "
                     "position embedding / layer 0)", lf_weights_path(km->w), km->prefix);
        return LF_ENOTFOUND;
    }
    lf_clip_t *c = calloc(1, sizeof *c);
    if (!c) return LF_ENOMEM;
    c->be = be, c->pool = pool, c->packed = packed;
    lf_clip_config_t *k = &c->c;
    k->vocab = (int)te->shape[0];
    k->hidden = (int)te->shape[1];
    k->max_pos = (int)pe->shape[0];
    k->inter = (int)f1->shape[0];
    char n[128];
    for (;; k->layers++) {
        snprintf(n, sizeof n, "encoder.layers.%d.layer_norm1.weight", k->layers);
        if (!lf_keymap_find(km, n)) break;
    }
    k->heads = lf__json_int(cfg, "num_attention_heads", 0, k->hidden / 64 > 0 ? k->hidden / 64 : 1);
    const json_t *act = cfg ? json_object_get(cfg, "hidden_act") : NULL;
    k->quick_gelu = json_is_string(act) ? strcmp(json_string_value(act), "quick_gelu") == 0
                                        : !packed; /* OpenCLIP bigG: gelu */
    k->eps = (float)lf__json_num(cfg, "layer_norm_eps", 1e-5);
    if (k->hidden % k->heads) {
        if (errlen) snprintf(err, errlen, "%s: text hidden size %d not divisible by %d heads",
                             lf_weights_path(km->w), k->hidden, k->heads);
        free(c);
        return LF_EFORMAT;
    }
    c->l = calloc((size_t)k->layers, sizeof *c->l);
    if (!c->l) {
        free(c);
        return LF_ENOMEM;
    }
    const int D = k->hidden, F = k->inter;
    lf_keymap_loader_t ld = {.km = km, .pool = pool, .pool_prefix = "clip.", .type = type,
                             .err = err, .errlen = errlen};
    c->tok = lf_keymap_load(&ld, 2, S(-1, D), "embeddings.token_embedding.weight");
    ld.type = 0; /* position embeddings are added on the host in f32 */
    c->pos = lf_keymap_load(&ld, 2, S(-1, D), "embeddings.position_embedding.weight");
    ld.type = type;
    for (int i = 0; i < k->layers; i++) {
        s_layer_t *l = &c->l[i];
        char p[64];
        snprintf(p, sizeof p, "encoder.layers.%d", i);
        l->n1w = lf_keymap_load(&ld, 1, S(D), "%s.layer_norm1.weight", p);
        l->n1b = lf_keymap_load(&ld, 1, S(D), "%s.layer_norm1.bias", p);
        if (packed) {
            l->qkvw = lf_keymap_load(&ld, 2, S(3 * D, D), "%s.self_attn.in_proj.weight", p);
            l->qkvb = lf_keymap_load(&ld, 1, S(3 * D), "%s.self_attn.in_proj.bias", p);
        } else {
            l->qw = lf_keymap_load(&ld, 2, S(D, D), "%s.self_attn.q_proj.weight", p);
            l->qb = lf_keymap_load(&ld, 1, S(D), "%s.self_attn.q_proj.bias", p);
            l->kw = lf_keymap_load(&ld, 2, S(D, D), "%s.self_attn.k_proj.weight", p);
            l->kb = lf_keymap_load(&ld, 1, S(D), "%s.self_attn.k_proj.bias", p);
            l->vw = lf_keymap_load(&ld, 2, S(D, D), "%s.self_attn.v_proj.weight", p);
            l->vb = lf_keymap_load(&ld, 1, S(D), "%s.self_attn.v_proj.bias", p);
        }
        l->ow = lf_keymap_load(&ld, 2, S(D, D), "%s.self_attn.out_proj.weight", p);
        l->ob = lf_keymap_load(&ld, 1, S(D), "%s.self_attn.out_proj.bias", p);
        l->n2w = lf_keymap_load(&ld, 1, S(D), "%s.layer_norm2.weight", p);
        l->n2b = lf_keymap_load(&ld, 1, S(D), "%s.layer_norm2.bias", p);
        l->f1w = lf_keymap_load(&ld, 2, S(F, D), "%s.mlp.fc1.weight", p);
        l->f1b = lf_keymap_load(&ld, 1, S(F), "%s.mlp.fc1.bias", p);
        l->f2w = lf_keymap_load(&ld, 2, S(D, F), "%s.mlp.fc2.weight", p);
        l->f2b = lf_keymap_load(&ld, 1, S(D), "%s.mlp.fc2.bias", p);
    }
    c->fw = lf_keymap_load(&ld, 1, S(D), "final_layer_norm.weight");
    c->fb = lf_keymap_load(&ld, 1, S(D), "final_layer_norm.bias");
    c->row = malloc((size_t)D * 4);
    if (!ld.rc && !c->row) ld.rc = LF_ENOMEM;
    if (!ld.rc) ld.rc = s_load_proj(c, km, err, errlen);
    if (ld.rc) {
        lf_clip_destroy(&c);
        return ld.rc;
    }
    *out = c;
    return 0;
}

void lf_clip_release_graphs(lf_clip_t *self) {
    if (!self) return;
    for (int i = 0; i < N_CACHE; i++) {
        lf_graph_destroy(&self->cache[i].g);
        free(self->cache[i].host);
        self->cache[i].host = NULL;
    }
}

void lf_clip_destroy(lf_clip_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_clip_t *c = *self_p;
    lf_clip_release_graphs(c);
    free(c->l);
    free(c->row);
    free(c->proj);
    free(c);
    *self_p = NULL;
}

const lf_clip_config_t *lf_clip_config(const lf_clip_t *self) { return &self->c; }
int lf_clip_packed_qkv(const lf_clip_t *self) { return self->packed; }

static int s_build(lf_clip_t *c, s_cache_t *e) {
    const lf_clip_config_t *k = &c->c;
    const int T = e->n_tok;
    lf_graph_t *g = e->g = lf_graph_new(c->be);
    if (!g) return LF_ENOMEM;
    /* Causal mask [Nk, Nq], one per token count, kept in the pool. */
    char nm[64];
    snprintf(nm, sizeof nm, "clip.causal_mask_%d", T);
    lf_tensor_t *mask = lf_pool_find(c->pool, nm);
    {
        if (!mask) {
            mask = lf_pool_tensor(c->pool, nm, LF_TYPE_F32, 2, (const int64_t[]){T, T});
            float *m = malloc((size_t)T * T * sizeof *m);
            if (!mask || !m) {
                free(m);
                return LF_ENOMEM;
            }
            for (int q = 0; q < T; q++)
                for (int kk = 0; kk < T; kk++) m[(size_t)q * T + kk] = kk > q ? -INFINITY : 0.0f;
            int rc = lf_pool_load(c->pool, mask, m, (size_t)T * T * sizeof *m);
            free(m);
            if (rc) return rc;
        }
    }
    e->in = lf_graph_input(g, LF_TYPE_F32, k->hidden, T, e->n_chunks, 1);
    lf_tensor_t *x = e->in;
    int n_layers = k->layers - (e->skip - 1);
    if (n_layers < 1) n_layers = 1;
    const int n_run = e->pooled ? k->layers : n_layers;
    for (int i = 0; i < n_run; i++) {
        const s_layer_t *l = &c->l[i];
        if (i == n_layers)
            e->out = lf_graph_output(g, e->final_norm ? lf_graph_layer_norm(g, x, c->fw, c->fb, k->eps)
                                                      : x);
        lf_tensor_t *h = lf_graph_layer_norm(g, x, l->n1w, l->n1b, k->eps);
        lf_tensor_t *q, *kk, *v;
        if (c->packed) {
            lf_tensor_t *qkv = lf_graph_matmul(g, h, l->qkvw, l->qkvb);
            q = lf_graph_split(g, qkv, 0, 0, k->hidden);
            kk = lf_graph_split(g, qkv, 0, k->hidden, k->hidden);
            v = lf_graph_split(g, qkv, 0, 2 * (int64_t)k->hidden, k->hidden);
        } else {
            q = lf_graph_matmul(g, h, l->qw, l->qb);
            kk = lf_graph_matmul(g, h, l->kw, l->kb);
            v = lf_graph_matmul(g, h, l->vw, l->vb);
        }
        h = lf_graph_matmul(g, lf_graph_mha(g, q, kk, v, mask, k->heads), l->ow, l->ob);
        x = lf_graph_add(g, x, h);
        h = lf_graph_layer_norm(g, x, l->n2w, l->n2b, k->eps);
        h = lf_graph_matmul(g, h, l->f1w, l->f1b);
        h = k->quick_gelu ? lf_graph_quick_gelu(g, h) : lf_graph_gelu(g, h, 0);
        x = lf_graph_add(g, x, lf_graph_matmul(g, h, l->f2w, l->f2b));
    }
    if (n_layers == n_run)
        e->out = lf_graph_output(g, e->final_norm ? lf_graph_layer_norm(g, x, c->fw, c->fb, k->eps)
                                                  : x);
    if (e->pooled) e->last = lf_graph_output(g, lf_graph_layer_norm(g, x, c->fw, c->fb, k->eps));
    return lf_graph_plan(g);
}

/* Host copy of row r of a 2-D pool tensor, as f32. */
static int s_row(lf_clip_t *c, const lf_tensor_t *t, int r, float *dst) {
    lf_tensor_t v = lf_tensor_slice(t, 1, r, 1);
    size_t nb = lf_tensor_nbytes(&v);
    int rc = lf_backend_tensor_get(c->be, &v, c->row, nb);
    if (!rc) lf_type_to_f32(t->type, c->row, dst, t->ne[0]);
    return rc;
}

/* Per chunk: the final-norm'd last layer at the first position of the
 * chunk's largest id, through the projection (when there is one). */
static int s_pool(lf_clip_t *c, s_cache_t *e, const int32_t *ids, float *pooled) {
    const int D = c->c.hidden, T = e->n_tok, P = c->c.proj_dim ? c->c.proj_dim : D;
    int rc = lf_backend_tensor_get(c->be, e->last, e->host,
                                   (size_t)e->n_chunks * T * D * sizeof(float));
    for (int b = 0; b < e->n_chunks && !rc; b++) {
        int at = 0;
        for (int t = 1; t < T; t++)
            if (ids[b * T + t] > ids[b * T + at]) at = t;
        const float *h = e->host + ((size_t)b * T + at) * D;
        float *o = pooled + (size_t)b * P;
        if (!c->proj) {
            memcpy(o, h, (size_t)D * sizeof *o);
            continue;
        }
        for (int p = 0; p < P; p++) {
            double acc = 0;
            for (int d = 0; d < D; d++) acc += (double)c->proj[(size_t)p * D + d] * h[d];
            o[p] = (float)acc;
        }
    }
    return rc;
}

int lf_clip_encode(lf_clip_t *self, const int32_t *ids, const float *weights, int n_chunks,
                   int n_tok, int clip_skip, float *out) {
    return lf_clip_encode_ex(self, ids, weights, n_chunks, n_tok, clip_skip, 1, out, NULL);
}

int lf_clip_encode_ex(lf_clip_t *self, const int32_t *ids, const float *weights, int n_chunks,
                      int n_tok, int clip_skip, int final_norm, float *out, float *pooled) {
    const lf_clip_config_t *k = &self->c;
    if (n_chunks < 1 || n_tok < 1 || n_tok > k->max_pos || clip_skip < 1) return LF_EINVAL;
    final_norm = final_norm != 0;
    const int want_pool = pooled != NULL;
    for (size_t i = 0; i < (size_t)n_chunks * n_tok; i++)
        if (ids[i] < 0 || ids[i] >= k->vocab) return LF_EINVAL;
    s_cache_t *e = NULL, *victim = &self->cache[0];
    for (int i = 0; i < N_CACHE; i++) {
        s_cache_t *ci = &self->cache[i];
        if (ci->g && ci->n_chunks == n_chunks && ci->n_tok == n_tok && ci->skip == clip_skip &&
            ci->final_norm == final_norm && ci->pooled == want_pool)
            e = ci;
        if (!ci->g || (victim->g && ci->used < victim->used)) victim = ci;
    }
    if (!e) {
        e = victim;
        lf_graph_destroy(&e->g);
        free(e->host);
        e->host = malloc((size_t)n_chunks * n_tok * k->hidden * sizeof(float));
        if (!e->host) return LF_ENOMEM;
        e->n_chunks = n_chunks, e->n_tok = n_tok, e->skip = clip_skip;
        e->final_norm = final_norm, e->pooled = want_pool;
        e->out = e->last = NULL;
        int rc = s_build(self, e);
        if (rc) {
            lf_graph_destroy(&e->g);
            return rc;
        }
    }
    e->used = ++self->tick;
    const int D = k->hidden;
    float *pos = out; /* scratch: out is large enough for one row */
    for (int b = 0; b < n_chunks; b++)
        for (int t = 0; t < n_tok; t++) {
            float *dst = e->host + ((size_t)b * n_tok + t) * D;
            int rc = s_row(self, self->tok, ids[b * n_tok + t], dst);
            if (!rc) rc = s_row(self, self->pos, t, pos);
            if (rc) return rc;
            for (int i = 0; i < D; i++) dst[i] += pos[i];
        }
    size_t nb = (size_t)n_chunks * n_tok * D * sizeof(float);
    int rc = lf_backend_tensor_set(self->be, e->in, e->host, nb);
    if (!rc) rc = lf_graph_compute(e->g);
    if (!rc) rc = lf_backend_sync(self->be);
    if (!rc) rc = lf_backend_tensor_get(self->be, e->out, out, nb);
    if (!rc && want_pool) rc = s_pool(self, e, ids, pooled);
    if (rc || !weights) return rc;
    /* A1111 emphasis: multiply by the weights, then restore the chunk's mean. */
    for (int b = 0; b < n_chunks; b++) {
        float *z = out + (size_t)b * n_tok * D;
        double m0 = 0, m1 = 0;
        for (size_t i = 0; i < (size_t)n_tok * D; i++) m0 += z[i];
        for (int t = 0; t < n_tok; t++)
            for (int i = 0; i < D; i++) z[(size_t)t * D + i] *= weights[b * n_tok + t];
        for (size_t i = 0; i < (size_t)n_tok * D; i++) m1 += z[i];
        if (m1 != 0) {
            float r = (float)(m0 / m1);
            for (size_t i = 0; i < (size_t)n_tok * D; i++) z[i] *= r;
        }
    }
    return 0;
}
