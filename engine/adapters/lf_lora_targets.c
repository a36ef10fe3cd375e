/* lf_lora_targets: the layer table, its name index (kohya-flat names in an
 * lf_strmap) and the normalisation of every other layout to that form. */
#include "lf_lora_targets.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_keymap.h"
#include "lf_strmap.h"

#define S_MAX_TE 4

/* A text encoder's names: diffusers prefix -> kohya prefix. */
typedef struct {
    char diffusers[32];
    char kohya[32];
} s_te_prefix_t;

struct lf_lora_targets {
    lf_lora_target_t *v;
    size_t n, cap;
    lf_strmap_t *index; /* kohya-flat name -> position in v */
    s_te_prefix_t te[S_MAX_TE];
    int n_te;
};

lf_lora_targets_t *lf_lora_targets_new(void)
{
    lf_lora_targets_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (!(t->index = lf_strmap_new())) {
        free(t);
        return NULL;
    }
    return t;
}

void lf_lora_targets_destroy(lf_lora_targets_t **self_p)
{
    if (!self_p || !*self_p) return;
    lf_lora_targets_t *t = *self_p;
    lf_strmap_destroy(&t->index);
    free(t->v);
    free(t);
    *self_p = NULL;
}

size_t lf_lora_targets_count(const lf_lora_targets_t *self) { return self->n; }

const lf_lora_target_t *lf_lora_targets_at(const lf_lora_targets_t *self, size_t i)
{
    return i < self->n ? &self->v[i] : NULL;
}

/* "lora_unet_" + path with '.' -> '_' (path without ".weight"). */
static int s_flat(char *out, size_t len, const char *prefix, const char *path)
{
    int k = snprintf(out, len, "%s%s", prefix, path);
    if (k < 0 || (size_t)k >= len) return LF_ETOOBIG;
    for (char *p = out; *p; p++)
        if (*p == '.') *p = '_';
    return 0;
}

static int s_alias(lf_lora_targets_t *t, const char *flat, size_t idx)
{
    int64_t old;
    if (lf_strmap_get(t->index, flat, strlen(flat), &old))
        return (size_t)old == idx ? 0 : LF_EEXIST;
    return lf_strmap_put(t->index, flat, strlen(flat), (int64_t)idx);
}

static int s_add(lf_lora_targets_t *t, lf_lora_part_t part, const char *pool_prefix,
                 const char *kohya_prefix, const char *alias_prefix, const lf_keymap_t *ldm,
                 int has_bias, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 10, 11)));

/* The table entry itself: pool name pool_prefix + pool_path + ".weight",
 * registered under kohya_prefix + flat(alias_prefix + alias_path) and, when
 * ldm is given, its LDM name; a slice when tensor_rows > 0. */
static int s_add_entry(lf_lora_targets_t *t, lf_lora_part_t part, const char *pool_prefix,
                       const char *kohya_prefix, const char *alias_prefix, const lf_keymap_t *ldm,
                       int has_bias, int ndim, const int64_t *shape, const char *pool_path,
                       const char *path, int64_t row0, int64_t tensor_rows)
{
    char tmp[LF_LORA_NAME_MAX + 32], flat[LF_LORA_NAME_MAX + 64];
    int k;
    if (t->n == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 256;
        lf_lora_target_t *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv) return LF_ENOMEM;
        t->v = nv;
        t->cap = nc;
    }
    lf_lora_target_t *g = &t->v[t->n];
    memset(g, 0, sizeof *g);
    g->part = part;
    g->ndim = ndim;
    memcpy(g->shape, shape, (size_t)ndim * sizeof *shape);
    g->row0 = row0, g->tensor_rows = tensor_rows;
    k = snprintf(g->name, sizeof g->name, "%s%s.weight", pool_prefix, pool_path);
    if (k < 0 || (size_t)k >= sizeof g->name) return LF_ETOOBIG;
    if (has_bias && (size_t)snprintf(g->bias, sizeof g->bias, "%s%s.bias", pool_prefix,
                                     pool_path) >= sizeof g->bias)
        return LF_ETOOBIG;
    snprintf(tmp, sizeof tmp, "%s%s", alias_prefix, path);
    int rc = s_flat(flat, sizeof flat, kohya_prefix, tmp);
    if (rc == 0) rc = s_alias(t, flat, t->n);
    if (rc == 0 && ldm) {
        char dn[LF_LORA_NAME_MAX + 8], ln[LF_LORA_NAME_MAX + 64];
        snprintf(dn, sizeof dn, "%s.weight", path);
        if (lf_keymap_name(ldm, dn, ln, sizeof ln) == 0) {
            ln[strlen(ln) - 7] = '\0'; /* ".weight" */
            rc = s_flat(flat, sizeof flat, kohya_prefix, ln);
            if (rc == 0) rc = s_alias(t, flat, t->n);
        }
    }
    if (rc == 0) t->n++;
    return rc;
}

/* Adds one whole-tensor layer: pool name pool_prefix + path + ".weight",
 * registered under kohya_prefix + flat(alias_prefix + path) and, when ldm is
 * given, its LDM name. */
static int s_add(lf_lora_targets_t *t, lf_lora_part_t part, const char *pool_prefix,
                 const char *kohya_prefix, const char *alias_prefix, const lf_keymap_t *ldm,
                 int has_bias, int ndim, const int64_t *shape, const char *fmt, ...)
{
    char path[LF_LORA_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof path) return LF_ETOOBIG;
    return s_add_entry(t, part, pool_prefix, kohya_prefix, alias_prefix, ldm, has_bias, ndim, shape,
                       path, path, 0, 0);
}

#define S4(...) ((const int64_t[]){__VA_ARGS__})

/* Unet layer with its kohya and LDM names. */
#define S_U(bias, nd, shape, ...)                                                                  \
    do {                                                                                           \
        if (rc == 0)                                                                               \
            rc = s_add(self, LF_LORA_PART_UNET, "unet.", "lora_unet_", "", &ldm, bias, nd, shape,  \
                       __VA_ARGS__);                                                               \
    } while (0)

static int s_resnet(lf_lora_targets_t *self, const lf_keymap_t *ldm_p, const char *pre, int cin,
                    int cout, int temb)
{
    lf_keymap_t ldm = *ldm_p;
    int rc = 0;
    S_U(1, 4, S4(cout, cin, 3, 3), "%s.conv1", pre);
    if (temb > 0) S_U(1, 2, S4(cout, temb), "%s.time_emb_proj", pre);
    S_U(1, 4, S4(cout, cout, 3, 3), "%s.conv2", pre);
    if (cin != cout) S_U(1, 4, S4(cout, cin, 1, 1), "%s.conv_shortcut", pre);
    return rc;
}

static int s_attention(lf_lora_targets_t *self, const lf_keymap_t *ldm_p, const lf_unet_config_t *c,
                       const char *pre, int C, int depth)
{
    lf_keymap_t ldm = *ldm_p;
    int rc = 0, X = c->ctx_dim;
    if (c->linear_proj) {
        S_U(1, 2, S4(C, C), "%s.proj_in", pre);
        S_U(1, 2, S4(C, C), "%s.proj_out", pre);
    } else {
        S_U(1, 4, S4(C, C, 1, 1), "%s.proj_in", pre);
        S_U(1, 4, S4(C, C, 1, 1), "%s.proj_out", pre);
    }
    for (int d = 0; d < depth; d++) {
        char p[96];
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", pre, d);
        S_U(0, 2, S4(C, C), "%s.attn1.to_q", p);
        S_U(0, 2, S4(C, C), "%s.attn1.to_k", p);
        S_U(0, 2, S4(C, C), "%s.attn1.to_v", p);
        S_U(1, 2, S4(C, C), "%s.attn1.to_out.0", p);
        S_U(0, 2, S4(C, C), "%s.attn2.to_q", p);
        S_U(0, 2, S4(C, X), "%s.attn2.to_k", p);
        S_U(0, 2, S4(C, X), "%s.attn2.to_v", p);
        S_U(1, 2, S4(C, C), "%s.attn2.to_out.0", p);
        S_U(1, 2, S4(8 * C, C), "%s.ff.net.0.proj", p);
        S_U(1, 2, S4(C, 4 * C), "%s.ff.net.2", p);
    }
    return rc;
}

int lf_lora_targets_add_unet(lf_lora_targets_t *self, const lf_unet_config_t *c)
{
    unsigned up_attn = 0;
    for (int i = 0; i < c->levels; i++)
        if (c->up_attn[i]) up_attn |= 1u << i;
    lf_keymap_t ldm = {
        .kind = LF_KEYMAP_LDM_UNET, .levels = c->levels, .layers = c->layers, .up_attn = up_attn};
    const int L = c->levels, T = c->temb_dim;
    int rc = 0;
    char p[64];
    S_U(1, 4, S4(c->ch[0], c->in_ch, 3, 3), "conv_in");
    S_U(1, 2, S4(T, c->temb_in), "time_embedding.linear_1");
    S_U(1, 2, S4(T, T), "time_embedding.linear_2");
    if (c->add_in) { /* SDXL's added (pooled text + time ids) embedding */
        S_U(1, 2, S4(T, c->add_in), "add_embedding.linear_1");
        S_U(1, 2, S4(T, T), "add_embedding.linear_2");
    }
    int cin = c->ch[0];
    for (int l = 0; l < L && rc == 0; l++) {
        for (int j = 0; j < c->layers && rc == 0; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", l, j);
            rc = s_resnet(self, &ldm, p, j ? c->ch[l] : cin, c->ch[l], T);
            if (rc == 0 && c->attn[l]) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", l, j);
                rc = s_attention(self, &ldm, c, p, c->ch[l], c->attn[l]);
            }
        }
        cin = c->ch[l];
        if (l < L - 1) S_U(1, 4, S4(cin, cin, 3, 3), "down_blocks.%d.downsamplers.0.conv", l);
    }
    const int M = c->ch[L - 1];
    if (rc == 0) rc = s_resnet(self, &ldm, "mid_block.resnets.0", M, M, T);
    if (rc == 0 && c->mid_attn)
        rc = s_attention(self, &ldm, c, "mid_block.attentions.0", M, c->mid_attn);
    if (rc == 0) rc = s_resnet(self, &ldm, "mid_block.resnets.1", M, M, T);
    /* Up blocks as diffusers builds them: resnet j takes the previous output
     * (or the block's input) plus a skip from the matching down level. */
    int prev = M;
    for (int i = 0; i < L && rc == 0; i++) {
        int lvl = L - 1 - i, out = c->ch[lvl], skip_last = c->ch[lvl > 0 ? lvl - 1 : 0];
        for (int j = 0; j <= c->layers && rc == 0; j++) {
            int rin = j == 0 ? prev : out, skip = j == c->layers ? skip_last : out;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            rc = s_resnet(self, &ldm, p, rin + skip, out, T);
            if (rc == 0 && c->up_attn[i]) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                rc = s_attention(self, &ldm, c, p, out, c->up_attn[i]);
            }
        }
        if (i < L - 1) S_U(1, 4, S4(out, out, 3, 3), "up_blocks.%d.upsamplers.0.conv", i);
        prev = out;
    }
    S_U(1, 4, S4(c->out_ch, c->ch[0], 3, 3), "conv_out");
    return rc;
}

int lf_lora_targets_add_clip(lf_lora_targets_t *self, const lf_clip_config_t *c,
                             const char *pool_prefix, const char *kohya_prefix,
                             const char *diffusers_prefix)
{
    return lf_lora_targets_add_clip_ex(self, c, pool_prefix, kohya_prefix, diffusers_prefix, 0);
}

int lf_lora_targets_add_clip_ex(lf_lora_targets_t *self, const lf_clip_config_t *c,
                                const char *pool_prefix, const char *kohya_prefix,
                                const char *diffusers_prefix, int packed_qkv)
{
    if (self->n_te == S_MAX_TE) return LF_ETOOBIG;
    s_te_prefix_t *tp = &self->te[self->n_te];
    if (snprintf(tp->diffusers, sizeof tp->diffusers, "%s", diffusers_prefix) >=
            (int)sizeof tp->diffusers ||
        snprintf(tp->kohya, sizeof tp->kohya, "%s", kohya_prefix) >= (int)sizeof tp->kohya)
        return LF_ETOOBIG;
    self->n_te++;
    const int64_t D = c->hidden, F = c->inter;
    static const char *const attn[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    int rc = 0;
    for (int i = 0; i < c->layers && rc == 0; i++) {
        for (int k = 0; k < 4 && rc == 0; k++) {
            char packed[LF_LORA_NAME_MAX], path[LF_LORA_NAME_MAX];
            snprintf(path, sizeof path, "encoder.layers.%d.self_attn.%s", i, attn[k]);
            snprintf(packed, sizeof packed, "encoder.layers.%d.self_attn.in_proj", i);
            if (packed_qkv && k < 3) /* q, k, v: rows k·D .. (k+1)·D of in_proj */
                rc = s_add_entry(self, LF_LORA_PART_TE, pool_prefix, kohya_prefix, "text_model.",
                                 NULL, 1, 2, S4(D, D), packed, path, k * D, 3 * D);
            else
                rc = s_add(self, LF_LORA_PART_TE, pool_prefix, kohya_prefix, "text_model.", NULL, 1,
                           2, S4(D, D), "%s", path);
        }
        if (rc == 0)
            rc = s_add(self, LF_LORA_PART_TE, pool_prefix, kohya_prefix, "text_model.", NULL, 1, 2,
                       S4(F, D), "encoder.layers.%d.mlp.fc1", i);
        if (rc == 0)
            rc = s_add(self, LF_LORA_PART_TE, pool_prefix, kohya_prefix, "text_model.", NULL, 1, 2,
                       S4(D, F), "encoder.layers.%d.mlp.fc2", i);
    }
    return rc;
}

int lf_lora_targets_sd15(lf_lora_targets_t **out)
{
    static const lf_unet_config_t unet = {
        .in_ch = 4,
        .out_ch = 4,
        .levels = 4,
        .layers = 2,
        .ch = {320, 640, 1280, 1280},
        .attn = {1, 1, 1, 0},
        .up_attn = {0, 1, 1, 1},
        .heads = {8, 8, 8, 8},
        .mid_attn = 1,
        .mid_heads = 8,
        .groups = 32,
        .eps = 1e-5f,
        .ctx_dim = 768,
        .linear_proj = 0,
        .temb_in = 320,
        .temb_dim = 1280,
        .flip_sin_to_cos = 1,
        .freq_shift = 0,
    };
    static const lf_clip_config_t clip = {
        .vocab = 49408,
        .hidden = 768,
        .layers = 12,
        .heads = 12,
        .inter = 3072,
        .max_pos = 77,
        .quick_gelu = 1,
        .eps = 1e-5f,
    };
    lf_lora_targets_t *t = lf_lora_targets_new();
    if (!t) return LF_ENOMEM;
    int rc = lf_lora_targets_add_unet(t, &unet);
    if (rc == 0) rc = lf_lora_targets_add_clip(t, &clip, "clip.", "lora_te_", "text_encoder.");
    if (rc != 0) {
        lf_lora_targets_destroy(&t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- Lookup ---- */

static const lf_lora_target_t *s_find(const lf_lora_targets_t *t, const char *flat)
{
    int64_t i;
    return lf_strmap_get(t->index, flat, strlen(flat), &i) ? &t->v[i] : NULL;
}

static int s_ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Diffusers' attention-processor names to module paths: UNet
 * "….attn1.processor.to_out" -> "….attn1.to_out.0"; text encoder
 * "….self_attn.to_q" -> "….self_attn.q_proj". Rewrites path in place. */
static void s_processor(char *path, size_t len, int te)
{
    char *p = strstr(path, ".processor.");
    if (p) memmove(p + 1, p + 11, strlen(p + 11) + 1);
    if (te) {
        static const char *const map[][2] = {
            {"self_attn.to_q", "self_attn.q_proj"},
            {"self_attn.to_k", "self_attn.k_proj"},
            {"self_attn.to_v", "self_attn.v_proj"},
            {"self_attn.to_out", "self_attn.out_proj"},
        };
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (s_ends(path, map[i][0])) {
                path[strlen(path) - strlen(map[i][0])] = '\0';
                if (strlen(path) + strlen(map[i][1]) < len) strcat(path, map[i][1]);
                return;
            }
    } else if (s_ends(path, ".to_out") && strlen(path) + 2 < len) {
        strcat(path, ".0");
    }
}

const lf_lora_target_t *lf_lora_targets_lookup(const lf_lora_targets_t *self, const char *module)
{
    char path[256], flat[320];
    if (strncmp(module, "lora_", 5) == 0 && !strchr(module, '.')) return s_find(self, module);
    const char *m = module;
    if (strncmp(m, "base_model.model.", 17) == 0) m += 17;
    /* A text encoder's diffusers prefix, or a bare HF text-model path. */
    const char *kohya = NULL;
    for (int i = 0; i < self->n_te && !kohya; i++) {
        size_t l = strlen(self->te[i].diffusers);
        if (l && strncmp(m, self->te[i].diffusers, l) == 0) {
            kohya = self->te[i].kohya;
            m += l;
        }
    }
    if (!kohya && strncmp(m, "text_model.", 11) == 0 && self->n_te == 1) kohya = self->te[0].kohya;
    if (!kohya && strncmp(m, "unet.", 5) == 0) m += 5;
    /* Dotted original-layout names ("model.diffusion_model.input_blocks.…"). */
    if (!kohya && strncmp(m, "model.diffusion_model.", 22) == 0) m += 22;
    if (!kohya && strncmp(m, "diffusion_model.", 16) == 0) m += 16;
    if (snprintf(path, sizeof path, "%s", m) >= (int)sizeof path) return NULL;
    s_processor(path, sizeof path, kohya != NULL);
    if (s_flat(flat, sizeof flat, kohya ? kohya : "lora_unet_", path)) return NULL;
    return s_find(self, flat);
}
