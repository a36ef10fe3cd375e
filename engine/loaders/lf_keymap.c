/* lf_keymap: diffusers names to the original LDM checkpoint layout (the
 * inverse of diffusers' convert_original_stable_diffusion_to_diffusers). */
#include "lf_keymap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"

int lf_keymap_has_prefix(const lf_weights_t *w, const char *prefix) {
    size_t n = lf_weights_count(w), pl = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if (strncmp(lf_weights_at(w, i)->name, prefix, pl) == 0) return 1;
    return 0;
}

static int s_has(const lf_keymap_t *km, const char *fmt, int a, int b) {
    char name[256], full[320];
    snprintf(name, sizeof name, fmt, a, b);
    snprintf(full, sizeof full, "%s%s", km->prefix, name);
    return lf_weights_find(km->w, full) != NULL;
}

int lf_keymap_probe(lf_keymap_t *km) {
    if (km->kind == LF_KEYMAP_LDM_VAE) {
        int L = 0;
        while (L < 16 && s_has(km, "decoder.up.%d.block.0.conv1.weight", L, 0)) L++;
        km->levels = L;
        return L ? 0 : LF_EFORMAT;
    }
    if (km->kind != LF_KEYMAP_LDM_UNET) return 0;
    /* input_blocks: 0 is conv_in, then per level `layers` blocks and a
     * downsample (".0.op") except after the last level. */
    int n_in = 0, n_down = 0;
    for (int i = 0; i < 64; i++) {
        char pre[128];
        snprintf(pre, sizeof pre, "%sinput_blocks.%d.", km->prefix, i);
        if (!lf_keymap_has_prefix(km->w, pre)) break;
        n_in = i + 1;
        if (s_has(km, "input_blocks.%d.0.op.weight", i, 0)) n_down++;
    }
    int L = n_down + 1;
    if (n_in < 2 || (n_in - 1 - n_down) % L) return LF_EFORMAT;
    km->levels = L;
    km->layers = (n_in - 1 - n_down) / L;
    km->up_attn = 0;
    for (int i = 0; i < L; i++)
        if (s_has(km, "output_blocks.%d.1.proj_in.weight", i * (km->layers + 1), 0))
            km->up_attn |= 1u << i;
    return 0;
}

int lf_keymap_probe_vae(lf_keymap_t *km, const lf_weights_t *w) {
    memset(km, 0, sizeof *km);
    km->w = w;
    if (lf_keymap_has_prefix(w, "first_stage_model.")) {
        strcpy(km->prefix, "first_stage_model.");
        km->kind = LF_KEYMAP_LDM_VAE;
    } else if (lf_keymap_has_prefix(w, "decoder.up.")) {
        km->kind = LF_KEYMAP_LDM_VAE;
    } else if (lf_keymap_has_prefix(w, "vae.decoder.")) {
        strcpy(km->prefix, "vae.");
    }
    return lf_keymap_probe(km);
}

/* Resnet inner names, diffusers -> LDM UNet. */
static const char *const s_unet_res[][2] = {
    {"norm1.", "in_layers.0."},      {"conv1.", "in_layers.2."},
    {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
    {"conv2.", "out_layers.3."},     {"conv_shortcut.", "skip_connection."},
};

static int s_res(const char *rest, char *out, size_t len) {
    for (size_t i = 0; i < sizeof s_unet_res / sizeof s_unet_res[0]; i++) {
        size_t l = strlen(s_unet_res[i][0]);
        if (strncmp(rest, s_unet_res[i][0], l) == 0)
            return snprintf(out, len, "%s%s", s_unet_res[i][1], rest + l) < (int)len ? 0
                                                                                     : LF_ETOOBIG;
    }
    return LF_ENOTFOUND;
}

static int s_unet(const lf_keymap_t *km, const char *n, char *o, size_t len) {
    int a, b, c = 0, k = 0;
    char rr[200];
    const int lp = km->layers + 1;
    static const char *const top[][2] = {
        {"conv_in.", "input_blocks.0.0."},
        {"time_embedding.linear_1.", "time_embed.0."},
        {"time_embedding.linear_2.", "time_embed.2."},
        {"conv_norm_out.", "out.0."},
        {"conv_out.", "out.2."},
        /* SDXL's added (pooled text + micro-conditioning) embedding. */
        {"add_embedding.linear_1.", "label_emb.0.0."},
        {"add_embedding.linear_2.", "label_emb.0.2."},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        size_t l = strlen(top[i][0]);
        if (strncmp(n, top[i][0], l) == 0)
            return snprintf(o, len, "%s%s", top[i][1], n + l) < (int)len ? 0 : LF_ETOOBIG;
    }
    if (sscanf(n, "down_blocks.%d.resnets.%d.%n", &a, &b, &k) == 2 && k) {
        if (s_res(n + k, rr, sizeof rr)) return LF_ENOTFOUND;
        return snprintf(o, len, "input_blocks.%d.0.%s", 1 + a * lp + b, rr) < (int)len ? 0
                                                                                       : LF_ETOOBIG;
    }
    k = 0;
    if (sscanf(n, "down_blocks.%d.attentions.%d.%n", &a, &b, &k) == 2 && k)
        return snprintf(o, len, "input_blocks.%d.1.%s", 1 + a * lp + b, n + k) < (int)len
                   ? 0
                   : LF_ETOOBIG;
    k = 0;
    if (sscanf(n, "down_blocks.%d.downsamplers.0.conv.%n", &a, &k) == 1 && k)
        return snprintf(o, len, "input_blocks.%d.0.op.%s", (a + 1) * lp, n + k) < (int)len
                   ? 0
                   : LF_ETOOBIG;
    k = 0;
    if (sscanf(n, "mid_block.resnets.%d.%n", &a, &k) == 1 && k) {
        if (s_res(n + k, rr, sizeof rr)) return LF_ENOTFOUND;
        return snprintf(o, len, "middle_block.%d.%s", a * 2, rr) < (int)len ? 0 : LF_ETOOBIG;
    }
    k = 0;
    if (sscanf(n, "mid_block.attentions.0.%n", &k) == 0 && k)
        return snprintf(o, len, "middle_block.1.%s", n + k) < (int)len ? 0 : LF_ETOOBIG;
    k = 0;
    if (sscanf(n, "up_blocks.%d.resnets.%d.%n", &a, &b, &k) == 2 && k) {
        if (s_res(n + k, rr, sizeof rr)) return LF_ENOTFOUND;
        return snprintf(o, len, "output_blocks.%d.0.%s", a * lp + b, rr) < (int)len ? 0
                                                                                    : LF_ETOOBIG;
    }
    k = 0;
    if (sscanf(n, "up_blocks.%d.attentions.%d.%n", &a, &b, &k) == 2 && k)
        return snprintf(o, len, "output_blocks.%d.1.%s", a * lp + b, n + k) < (int)len ? 0
                                                                                       : LF_ETOOBIG;
    k = 0;
    if (sscanf(n, "up_blocks.%d.upsamplers.0.conv.%n", &a, &k) == 1 && k) {
        c = (km->up_attn >> a) & 1 ? 2 : 1;
        return snprintf(o, len, "output_blocks.%d.%d.conv.%s", a * lp + km->layers, c, n + k) <
                       (int)len
                   ? 0
                   : LF_ETOOBIG;
    }
    return LF_ENOTFOUND;
}

static int s_vae(const lf_keymap_t *km, const char *n, char *o, size_t len) {
    int a, b, k = 0;
    char side[8];
    const char *rest;
    if (strncmp(n, "encoder.", 8) == 0) {
        strcpy(side, "encoder");
        rest = n + 8;
    } else if (strncmp(n, "decoder.", 8) == 0) {
        strcpy(side, "decoder");
        rest = n + 8;
    } else {
        return snprintf(o, len, "%s", n) < (int)len ? 0 : LF_ETOOBIG; /* quant convs */
    }
    char r2[200];
    if (sscanf(rest, "down_blocks.%d.resnets.%d.%n", &a, &b, &k) == 2 && k) {
        snprintf(r2, sizeof r2, "down.%d.block.%d.%s", a, b, rest + k);
    } else if ((k = 0, sscanf(rest, "down_blocks.%d.downsamplers.0.conv.%n", &a, &k)) == 1 && k) {
        snprintf(r2, sizeof r2, "down.%d.downsample.conv.%s", a, rest + k);
    } else if ((k = 0, sscanf(rest, "up_blocks.%d.resnets.%d.%n", &a, &b, &k)) == 2 && k) {
        snprintf(r2, sizeof r2, "up.%d.block.%d.%s", km->levels - 1 - a, b, rest + k);
    } else if ((k = 0, sscanf(rest, "up_blocks.%d.upsamplers.0.conv.%n", &a, &k)) == 1 && k) {
        snprintf(r2, sizeof r2, "up.%d.upsample.conv.%s", km->levels - 1 - a, rest + k);
    } else if ((k = 0, sscanf(rest, "mid_block.resnets.%d.%n", &a, &k)) == 1 && k) {
        snprintf(r2, sizeof r2, "mid.block_%d.%s", a + 1, rest + k);
    } else if (strncmp(rest, "mid_block.attentions.0.", 23) == 0) {
        static const char *const at[][2] = {
            {"group_norm.", "norm."}, {"to_q.", "q."}, {"to_k.", "k."},
            {"to_v.", "v."},         {"to_out.0.", "proj_out."},
        };
        const char *r = rest + 23;
        int found = 0;
        for (size_t i = 0; i < sizeof at / sizeof at[0] && !found; i++) {
            size_t l = strlen(at[i][0]);
            if (strncmp(r, at[i][0], l) == 0) {
                snprintf(r2, sizeof r2, "mid.attn_1.%s%s", at[i][1], r + l);
                found = 1;
            }
        }
        if (!found) return LF_ENOTFOUND;
    } else if (strncmp(rest, "conv_norm_out.", 14) == 0) {
        snprintf(r2, sizeof r2, "norm_out.%s", rest + 14);
    } else {
        snprintf(r2, sizeof r2, "%s", rest);
    }
    /* Resnet shortcut: conv_shortcut -> nin_shortcut. */
    char *p = strstr(r2, ".conv_shortcut.");
    char r3[220];
    if (p) {
        *p = 0;
        snprintf(r3, sizeof r3, "%s.nin_shortcut.%s", r2, p + 15);
    } else {
        snprintf(r3, sizeof r3, "%s", r2);
    }
    return snprintf(o, len, "%s.%s", side, r3) < (int)len ? 0 : LF_ETOOBIG;
}

/* HF CLIP text names -> OpenCLIP (the inverse of diffusers'
 * convert_open_clip_checkpoint). q/k/v are packed in OpenCLIP: the text
 * encoder asks for "encoder.layers.N.self_attn.in_proj.{weight,bias}". */
/* A name through a table of (prefix, replacement) pairs: the first pair
 * whose prefix starts n, with fmt (one %d, then the replacement and n's
 * rest) given the number a (-1: fmt is just "%s%s"). */
static int s_table(const char *n, const char *const (*tab)[2], size_t count, const char *fmt,
                   int a, char *o, size_t len) {
    for (size_t i = 0; i < count; i++) {
        size_t l = strlen(tab[i][0]);
        if (strncmp(n, tab[i][0], l) != 0) continue;
        int w = a < 0 ? snprintf(o, len, "%s%s", tab[i][1], n + l)
                      : snprintf(o, len, fmt, a, tab[i][1], n + l);
        return w < (int)len ? 0 : LF_ETOOBIG;
    }
    return LF_ENOTFOUND;
}
#define S_TABLE(n, tab, fmt, a, o, len) s_table(n, tab, sizeof tab / sizeof tab[0], fmt, a, o, len)

static int s_openclip(const char *n, char *o, size_t len) {
    static const char *const top[][2] = {
        {"embeddings.token_embedding.weight", "token_embedding.weight"},
        {"embeddings.position_embedding.weight", "positional_embedding"},
        {"final_layer_norm.", "ln_final."},
        {"text_projection", "text_projection"},
    };
    static const char *const layer[][2] = {
        {"layer_norm1.", "ln_1."},
        {"layer_norm2.", "ln_2."},
        {"self_attn.out_proj.", "attn.out_proj."},
        {"self_attn.in_proj.", "attn.in_proj_"},
        {"mlp.fc1.", "mlp.c_fc."},
        {"mlp.fc2.", "mlp.c_proj."},
    };
    int rc = S_TABLE(n, top, NULL, -1, o, len), a, k = 0;
    if (rc != LF_ENOTFOUND) return rc;
    if (sscanf(n, "encoder.layers.%d.%n", &a, &k) != 1 || !k) return LF_ENOTFOUND;
    return S_TABLE(n + k, layer, "transformer.resblocks.%d.%s%s", a, o, len);
}

/* HF T5 encoder names -> llama.cpp's (GGUF T5 files, e.g. city96's; the map
 * ComfyUI-GGUF applies the other way). */
static int s_t5_gguf(const char *n, char *o, size_t len) {
    static const char *const top[][2] = {
        {"shared.weight", "token_embd.weight"},
        {"encoder.embed_tokens.weight", "token_embd.weight"},
        {"encoder.final_layer_norm.", "enc.output_norm."},
    };
    static const char *const layer[][2] = {
        {"layer.0.SelfAttention.q.", "attn_q."},
        {"layer.0.SelfAttention.k.", "attn_k."},
        {"layer.0.SelfAttention.v.", "attn_v."},
        {"layer.0.SelfAttention.o.", "attn_o."},
        {"layer.0.SelfAttention.relative_attention_bias.", "attn_rel_b."},
        {"layer.0.layer_norm.", "attn_norm."},
        {"layer.1.DenseReluDense.wi_0.", "ffn_gate."},
        {"layer.1.DenseReluDense.wi_1.", "ffn_up."},
        {"layer.1.DenseReluDense.wi.", "ffn_up."},
        {"layer.1.DenseReluDense.wo.", "ffn_down."},
        {"layer.1.layer_norm.", "ffn_norm."},
    };
    int rc = S_TABLE(n, top, NULL, -1, o, len), a, k = 0;
    if (rc != LF_ENOTFOUND) return rc;
    if (sscanf(n, "encoder.block.%d.%n", &a, &k) != 1 || !k) return LF_ENOTFOUND;
    return S_TABLE(n + k, layer, "enc.blk.%d.%s%s", a, o, len);
}

int lf_keymap_name(const lf_keymap_t *km, const char *name, char *out, size_t len) {
    char tmp[256];
    int rc = 0;
    switch (km->kind) {
    case LF_KEYMAP_DIFFUSERS:
        rc = snprintf(tmp, sizeof tmp, "%s", name) < (int)sizeof tmp ? 0 : LF_ETOOBIG;
        break;
    case LF_KEYMAP_LDM_UNET: rc = s_unet(km, name, tmp, sizeof tmp); break;
    case LF_KEYMAP_LDM_VAE: rc = s_vae(km, name, tmp, sizeof tmp); break;
    case LF_KEYMAP_OPENCLIP: rc = s_openclip(name, tmp, sizeof tmp); break;
    case LF_KEYMAP_T5_GGUF: rc = s_t5_gguf(name, tmp, sizeof tmp); break;
    }
    if (rc) return rc;
    return snprintf(out, len, "%s%s", km->prefix, tmp) < (int)len ? 0 : LF_ETOOBIG;
}

const lf_tensor_info_t *lf_keymap_find(const lf_keymap_t *km, const char *name) {
    char full[320];
    if (lf_keymap_name(km, name, full, sizeof full)) return NULL;
    return lf_weights_find(km->w, full);
}

static int s_shape_ok(const lf_tensor_info_t *t, int ndim, const int64_t *shape) {
    if (ndim <= 0) return 1;
    int a = t->ndim, b = ndim;
    while (a > 0 && t->shape[a - 1] == 1) a--;
    while (b > 0 && shape[b - 1] == 1) b--;
    if (a != b) return 0;
    for (int i = 0; i < a; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) return 0;
    return 1;
}

static void s_fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static lf_tensor_t *s_load(lf_keymap_loader_t *ld, int opt, int ndim, const int64_t *shape,
                           const char *fmt, va_list ap) {
    if (ld->rc) return NULL;
    char name[256], full[320];
    vsnprintf(name, sizeof name, fmt, ap);
    int rc = lf_keymap_name(ld->km, name, full, sizeof full);
    const lf_tensor_info_t *t = rc ? NULL : lf_weights_find(ld->km->w, full);
    if (!t) {
        if (opt) return NULL;
        ld->rc = LF_ENOTFOUND;
        if (ld->errlen)
            snprintf(ld->err, ld->errlen, "%s: missing tensor %s", lf_weights_path(ld->km->w),
                     rc ? name : full);
        return NULL;
    }
    if (!s_shape_ok(t, ndim, shape)) {
        char want[96], got[96];
        s_fmt_shape(want, sizeof want, ndim, shape);
        s_fmt_shape(got, sizeof got, t->ndim, t->shape);
        ld->rc = LF_EFORMAT;
        if (ld->errlen)
            snprintf(ld->err, ld->errlen, "%s: tensor %s has shape %s, expected %s (-1: any)",
                     lf_weights_path(ld->km->w), full, got, want);
        return NULL;
    }
    char pname[320];
    snprintf(pname, sizeof pname, "%s%s", ld->pool_prefix ? ld->pool_prefix : "", name);
    lf_tensor_t *out = lf_pool_find(ld->pool, pname);
    if (out) return out; /* shared tensor asked for twice */
    int nd = t->ndim;
    while (nd > 1 && t->shape[nd - 1] == 1) nd--;
    int type = nd <= 1 ? 0 /* LF_TYPE_F32 */ : ld->type;
    if (ld->quant && ndim == 2 && nd == 2) {
        if (lf_dtype_block(t->dtype) > 1)
            type = LF_WEIGHTS_STORED;
        else if (ld->quant > 0 && t->shape[1] % lf_type_block((lf_type_t)ld->quant) == 0)
            type = ld->quant;
    }
    rc = lf_weights_upload(ld->km->w, t, ld->pool, pname, type, ndim, &out, ld->err, ld->errlen);
    if (!rc && ld->km->origin && lf_weights_is_mapped(ld->km->w)) {
        rc = lf_origin_add(ld->km->origin, out, lf_weights_path(ld->km->w), t->name);
        if (rc && ld->errlen)
            snprintf(ld->err, ld->errlen, "%s: tensor %s: cannot record its origin (%s)",
                     lf_weights_path(ld->km->w), t->name, lf_strerror(rc));
    }
    if (rc) {
        ld->rc = rc;
        return NULL;
    }
    return out;
}

lf_tensor_t *lf_keymap_load(lf_keymap_loader_t *ld, int ndim, const int64_t *shape,
                            const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lf_tensor_t *t = s_load(ld, 0, ndim, shape, fmt, ap);
    va_end(ap);
    return t;
}

lf_tensor_t *lf_keymap_load_opt(lf_keymap_loader_t *ld, int ndim, const int64_t *shape,
                                const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    lf_tensor_t *t = s_load(ld, 1, ndim, shape, fmt, ap);
    va_end(ap);
    return t;
}
