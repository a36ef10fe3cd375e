/* lf_t5: T5 encoder graph (the last token count's kept: a Flux model
 * always asks for the same one); the embedding gather and the position bias
 * table run on the host (the table is an input of the graph, released with
 * it). */
#include "lf_t5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_unet.h"

#define S LF__SHAPE

typedef struct {
    lf_tensor_t *ln0, *q, *k, *v, *o, *ln1, *wi0, *wi1, *wo;
} s_layer_t;

typedef struct {
    int n_tok;
    lf_graph_t *g;
    lf_tensor_t *in, *out;
    float *host; /* [n_tok][d_model] staging */
} s_cache_t;

struct lf_t5 {
    lf_t5_config_t c;
    lf_backend_t *be;
    lf_pool_t *pool;
    lf_tensor_t *emb, *fln;
    float *rel; /* host [rel_buckets][heads] position bias table */
    s_layer_t *l;
    s_cache_t cache;
    void *row; /* one embedding row in its stored type */
};

int lf_t5_position_bucket(int rel, int num_buckets, int max_distance) {
    /* HF: half the buckets per direction; the exact half of those for
     * |rel| < max_exact, then logarithmic up to max_distance (f32 as torch). */
    int nb = num_buckets / 2, bucket = rel > 0 ? nb : 0, n = abs(rel), max_exact = nb / 2;
    if (n < max_exact) return bucket + n;
    float f = logf((float)n / (float)max_exact) / (float)log((double)max_distance / max_exact) *
              (float)(nb - max_exact);
    int large = max_exact + (int)f;
    return bucket + (large < nb - 1 ? large : nb - 1);
}

int lf_t5_keymap(lf_keymap_t *km, const lf_weights_t *w) {
    static const char q0[] = "encoder.block.0.layer.0.SelfAttention.q.weight";
    memset(km, 0, sizeof *km);
    km->w = w;
    if (lf_weights_find(w, "enc.blk.0.attn_q.weight")) {
        km->kind = LF_KEYMAP_T5_GGUF;
        return 0;
    }
    const size_t ql = sizeof q0 - 1;
    for (size_t i = 0; i < lf_weights_count(w); i++) {
        const char *n = lf_weights_at(w, i)->name;
        size_t l = strlen(n);
        if (l >= ql && l - ql < sizeof km->prefix && strcmp(n + l - ql, q0) == 0) {
            km->kind = LF_KEYMAP_DIFFUSERS;
            memcpy(km->prefix, n, l - ql);
            km->prefix[l - ql] = '\0';
            return 0;
        }
    }
    return LF_ENOTFOUND;
}

static int s_fail(char *err, size_t errlen, int rc, const char *path, const char *what) {
    if (errlen) snprintf(err, errlen, "%s: %s", path, what);
    return rc;
}

/* Block-quantized GGUF matrices: the dtype of layer 0's q. */
static int s_quantized(const lf_keymap_t *km) {
    const lf_tensor_info_t *t = lf_keymap_find(km, "encoder.block.0.layer.0.SelfAttention.q.weight");
    return t && lf_dtype_block(t->dtype) > 1;
}

static int s_config(lf_t5_config_t *k, const lf_keymap_t *km, const json_t *cfg,
                    const lf_tensor_info_t **emb, char *err, size_t errlen) {
    const char *path = lf_weights_path(km->w);
    *emb = lf_keymap_find(km, "shared.weight");
    if (!*emb) *emb = lf_keymap_find(km, "encoder.embed_tokens.weight");
    const lf_tensor_info_t *q = lf_keymap_find(km, "encoder.block.0.layer.0.SelfAttention.q.weight");
    const lf_tensor_info_t *rb =
        lf_keymap_find(km, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    const lf_tensor_info_t *wi0 = lf_keymap_find(km, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight");
    if (!*emb || !q || !rb || (*emb)->ndim != 2 || q->ndim != 2 || rb->ndim != 2) {
        if (errlen)
            snprintf(err, errlen, "%s: missing tensor %sshared.weight / encoder.block.0.layer.0."
                     "SelfAttention.{q,relative_attention_bias}.weight (not a T5 encoder)", path,
                     km->prefix);
        return LF_ENOTFOUND;
    }
    if (!wi0 || wi0->ndim != 2)
        return s_fail(err, errlen, LF_EUNSUPPORTED, path,
                      "T5 encoder without gated-GELU blocks (wi_0): only T5 v1.1 is supported");
    k->vocab = (int)(*emb)->shape[0];
    k->d_model = (int)(*emb)->shape[1];
    k->rel_buckets = (int)rb->shape[0];
    k->heads = (int)rb->shape[1];
    k->d_ff = (int)wi0->shape[0];
    k->gated_gelu = 1;
    int inner = (int)q->shape[0];
    if (k->heads < 1 || inner % k->heads || lf__json_int(cfg, "num_heads", 0, k->heads) != k->heads)
        return s_fail(err, errlen, LF_EFORMAT, path,
                      "T5 q projection rows not divisible by the position bias's heads (or config "
                      "num_heads differs)");
    k->d_kv = inner / k->heads;
    k->rel_max_dist = lf__json_int(cfg, "relative_attention_max_distance", 0, 128);
    k->eps = (float)lf__json_num(cfg, "layer_norm_epsilon", 1e-6);
    const json_t *ff = cfg ? json_object_get(cfg, "feed_forward_proj") : NULL;
    if (json_is_string(ff) && strcmp(json_string_value(ff), "gated-gelu") != 0)
        return s_fail(err, errlen, LF_EUNSUPPORTED, path,
                      "T5 feed_forward_proj is not gated-gelu: only T5 v1.1 is supported");
    char n[96];
    for (k->layers = 0;; k->layers++) {
        snprintf(n, sizeof n, "encoder.block.%d.layer.0.layer_norm.weight", k->layers);
        if (!lf_keymap_find(km, n)) break;
    }
    if (k->layers < 1 || k->rel_max_dist < 1 || k->rel_buckets < 2)
        return s_fail(err, errlen, LF_EFORMAT, path, "T5 encoder without blocks");
    return 0;
}

int lf_t5_new(lf_t5_t **out, const lf_keymap_t *km, const json_t *cfg, lf_backend_t *be,
              lf_pool_t *pool, int type, char *err, size_t errlen) {
    lf_t5_config_t k = {0};
    const lf_tensor_info_t *emb = NULL;
    int rc = s_config(&k, km, cfg, &emb, err, errlen);
    if (rc) return rc;
    lf_t5_t *t = calloc(1, sizeof *t);
    if (!t) return LF_ENOMEM;
    t->c = k, t->be = be, t->pool = pool;
    t->l = calloc((size_t)k.layers, sizeof *t->l);
    t->rel = malloc((size_t)k.rel_buckets * k.heads * sizeof *t->rel);
    t->row = malloc((size_t)k.d_model * 4);
    if (!t->l || !t->rel || !t->row) {
        lf_t5_destroy(&t);
        return LF_ENOMEM;
    }
    const int D = k.d_model, I = k.heads * k.d_kv, F = k.d_ff;
    lf_keymap_loader_t ld = {.km = km, .pool = pool, .pool_prefix = "t5.", .type = type,
                             .err = err, .errlen = errlen};
    /* GGUF block types stay quantized: MATMUL takes them, and the
     * embedding's rows are dequantized as they are gathered. */
    if (type < 0 && s_quantized(km)) ld.quant = LF_WEIGHTS_STORED;
    const char *emb_name = lf_keymap_find(km, "shared.weight") ? "shared.weight"
                                                               : "encoder.embed_tokens.weight";
    t->emb = lf_keymap_load(&ld, 2, S(k.vocab, D), "%s", emb_name);
    for (int i = 0; i < k.layers; i++) {
        s_layer_t *l = &t->l[i];
        char p[48];
        snprintf(p, sizeof p, "encoder.block.%d.layer", i);
        l->ln0 = lf_keymap_load(&ld, 1, S(D), "%s.0.layer_norm.weight", p);
        l->q = lf_keymap_load(&ld, 2, S(I, D), "%s.0.SelfAttention.q.weight", p);
        l->k = lf_keymap_load(&ld, 2, S(I, D), "%s.0.SelfAttention.k.weight", p);
        l->v = lf_keymap_load(&ld, 2, S(I, D), "%s.0.SelfAttention.v.weight", p);
        l->o = lf_keymap_load(&ld, 2, S(D, I), "%s.0.SelfAttention.o.weight", p);
        l->ln1 = lf_keymap_load(&ld, 1, S(D), "%s.1.layer_norm.weight", p);
        l->wi0 = lf_keymap_load(&ld, 2, S(F, D), "%s.1.DenseReluDense.wi_0.weight", p);
        l->wi1 = lf_keymap_load(&ld, 2, S(F, D), "%s.1.DenseReluDense.wi_1.weight", p);
        l->wo = lf_keymap_load(&ld, 2, S(D, F), "%s.1.DenseReluDense.wo.weight", p);
    }
    t->fln = lf_keymap_load(&ld, 1, S(D), "encoder.final_layer_norm.weight");
    if (!ld.rc) {
        const lf_tensor_info_t *rb = lf_keymap_find(
            km, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
        rc = lf_weights_read_f32(rb, t->rel);
        if (rc) ld.rc = s_fail(err, errlen, rc, lf_weights_path(km->w),
                               "T5 relative_attention_bias: unsupported dtype");
    }
    if (ld.rc) {
        lf_t5_destroy(&t);
        return ld.rc;
    }
    *out = t;
    return 0;
}

void lf_t5_destroy(lf_t5_t **self_p) {
    if (!self_p || !*self_p) return;
    lf_t5_t *t = *self_p;
    lf_graph_destroy(&t->cache.g);
    free(t->cache.host);
    free(t->l);
    free(t->rel);
    free(t->row);
    free(t);
    *self_p = NULL;
}

const lf_t5_config_t *lf_t5_config(const lf_t5_t *self) { return &self->c; }

void lf_t5_release_graphs(lf_t5_t *self) {
    if (!self) return;
    lf_graph_destroy(&self->cache.g);
    free(self->cache.host);
    self->cache.host = NULL;
}

/* The additive attention bias [Nk, Nq, H] for T tokens into the graph's
 * input b (written once after planning; an input's memory is never reused,
 * so it lives as long as the graph and goes with lf_t5_release_graphs):
 * bias[h][q][k] = table[bucket(k - q)][h]. */
static int s_pos_bias(lf_t5_t *t, lf_tensor_t *b, int T) {
    const int H = t->c.heads;
    float *m = malloc((size_t)H * T * T * sizeof *m);
    int *bk = malloc((size_t)(2 * T - 1) * sizeof *bk);
    int rc = m && bk ? 0 : LF_ENOMEM;
    if (!rc) {
        for (int r = -(T - 1); r < T; r++)
            bk[r + T - 1] = lf_t5_position_bucket(r, t->c.rel_buckets, t->c.rel_max_dist);
        for (int h = 0; h < H; h++)
            for (int q = 0; q < T; q++)
                for (int k = 0; k < T; k++)
                    m[((size_t)h * T + q) * T + k] = t->rel[(size_t)bk[k - q + T - 1] * H + h];
        rc = lf_backend_tensor_set(t->be, b, m, (size_t)H * T * T * sizeof *m);
    }
    free(m);
    free(bk);
    return rc;
}

static int s_build(lf_t5_t *t, s_cache_t *e) {
    const lf_t5_config_t *k = &t->c;
    lf_graph_t *g = e->g = lf_graph_new(t->be);
    if (!g) return LF_ENOMEM;
    lf_tensor_t *bias = lf_graph_input(g, LF_TYPE_F32, e->n_tok, e->n_tok, k->heads, 1);
    lf_tensor_t *x = e->in = lf_graph_input(g, LF_TYPE_F32, k->d_model, e->n_tok, 1, 1);
    for (int i = 0; i < k->layers; i++) {
        const s_layer_t *l = &t->l[i];
        lf_tensor_t *h = lf_graph_rms_norm(g, x, l->ln0, k->eps);
        lf_tensor_t *q = lf_graph_matmul(g, h, l->q, NULL);
        lf_tensor_t *kk = lf_graph_matmul(g, h, l->k, NULL);
        lf_tensor_t *v = lf_graph_matmul(g, h, l->v, NULL);
        h = lf_graph_mha_scaled(g, q, kk, v, bias, k->heads, 1.0f);
        x = lf_graph_add(g, x, lf_graph_matmul(g, h, l->o, NULL));
        h = lf_graph_rms_norm(g, x, l->ln1, k->eps);
        lf_tensor_t *gate = lf_graph_gelu(g, lf_graph_matmul(g, h, l->wi0, NULL), 1);
        h = lf_graph_mul(g, gate, lf_graph_matmul(g, h, l->wi1, NULL));
        x = lf_graph_add(g, x, lf_graph_matmul(g, h, l->wo, NULL));
    }
    e->out = lf_graph_output(g, lf_graph_rms_norm(g, x, t->fln, k->eps));
    int rc = lf_graph_plan(g);
    return rc ? rc : s_pos_bias(t, bias, e->n_tok);
}

int lf_t5_encode(lf_t5_t *self, const int32_t *ids, int n_tok, float *out) {
    if (!self || !ids || !out || n_tok < 1) return LF_EINVAL;
    const lf_t5_config_t *k = &self->c;
    for (int i = 0; i < n_tok; i++)
        if (ids[i] < 0 || ids[i] >= k->vocab) return LF_EINVAL;
    s_cache_t *e = &self->cache;
    const int D = k->d_model;
    if (!e->g || e->n_tok != n_tok) {
        lf_graph_destroy(&e->g);
        free(e->host);
        e->host = malloc((size_t)n_tok * D * sizeof(float));
        e->n_tok = n_tok;
        int rc = e->host ? s_build(self, e) : LF_ENOMEM;
        if (rc) {
            lf_graph_destroy(&e->g);
            return rc;
        }
    }
    for (int i = 0; i < n_tok; i++) {
        lf_tensor_t r = lf_tensor_slice(self->emb, 1, ids[i], 1);
        int rc = lf_backend_tensor_get(self->be, &r, self->row, lf_tensor_nbytes(&r));
        if (rc) return rc;
        lf_type_to_f32(self->emb->type, self->row, e->host + (size_t)i * D, D);
    }
    size_t nb = (size_t)n_tok * D * sizeof(float);
    int rc = lf_backend_tensor_set(self->be, e->in, e->host, nb);
    if (!rc) rc = lf_graph_compute(e->g);
    if (!rc) rc = lf_backend_sync(self->be);
    if (!rc) rc = lf_backend_tensor_get(self->be, e->out, out, nb);
    return rc;
}
