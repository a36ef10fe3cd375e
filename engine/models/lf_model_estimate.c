/* lf_model_estimate: what lf_model_weight_bytes will say of a model before
 * it is loaded, from its files' headers (lf_model.h). The loaders' rules,
 * tensor by tensor:
 *   - vectors (one dimension once trailing sizes of 1 are dropped) are f32
 *     (lf_keymap widens them);
 *   - GGUF block types are kept as stored in the Flux transformer, in a
 *     quantize-on-load denoiser and in T5, widened to f32 elsewhere;
 *   - with weight_quant, the denoiser's matrices stored as two dimensions
 *     whose rows are whole blocks take that block type (the linear
 *     layers; convolutions stay);
 *   - f32 / f16 / bf16 stay as stored (weights mapped from their file count
 *     as the model's), except SDXL's and Flux's VAEs, held in f32; f64
 *     becomes f32;
 *   - CLIP's position embedding is f32 (added on the host);
 *   - integer tensors (position ids), model_ema.*, T5's relative position
 *     table (read to the host) and its tied embedding's second name are
 *     not loaded.
 * Which network a tensor belongs to follows its file's role (the model
 * path, a text part, a VAE part; a diffusers folder's subfolders) and, in a
 * single-file checkpoint, its prefix. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_model_impl.h"

typedef enum { S_SKIP = 0, S_DENOISER, S_TEXT, S_VAE } s_role_t;

/* Which network a tensor of a single-file checkpoint feeds. */
static s_role_t s_role_of(const char *n) {
    static const char *const vae[] = {"first_stage_model.", "vae.", "decoder.", "encoder.down", "encoder.mid",
                                      "encoder.conv", "encoder.norm", "quant_conv.", "post_quant_conv."};
    static const char *const text[] = {"cond_stage_model.", "conditioner.", "text_encoders.", "text_model.",
                                       "text_encoder.", "text_encoder_2."};
    if (!strncmp(n, "model_ema.", 10)) return S_SKIP;
    for (size_t i = 0; i < sizeof vae / sizeof vae[0]; i++)
        if (!strncmp(n, vae[i], strlen(vae[i]))) return S_VAE;
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        if (!strncmp(n, text[i], strlen(text[i]))) return S_TEXT;
    return S_DENOISER;
}

typedef struct {
    lf_family_t family;
    int quant;      /* lf_model_opts_t.weight_quant */
    int keep_block; /* this file's block types stay as stored */
    int keep_block_t5; /* the file is a T5 encoder */
} s_rules_t;

static uint64_t s_tensor_bytes(const lf_tensor_info_t *t, s_role_t role, const s_rules_t *r) {
    const lf_dtype_t dt = t->dtype;
    const int block = lf_dtype_block(dt) > 1;
    if (role == S_SKIP || (!block && dt != LF_DTYPE_F64 && dt != LF_DTYPE_F32 && dt != LF_DTYPE_F16 &&
                           dt != LF_DTYPE_BF16))
        return 0;
    const uint64_t n = (uint64_t)lf_tensorinfo_numel(t);
    int nd = t->ndim;
    while (nd > 1 && t->shape[nd - 1] == 1) nd--;
    if (nd <= 1) return 4 * n;
    const int denoiser_quant = role == S_DENOISER && r->quant && t->ndim == 2;
    if (block) return r->keep_block || denoiser_quant ? t->nbytes : 4 * n;
    if (denoiser_quant && t->shape[1] % lf_type_block((lf_type_t)r->quant) == 0)
        return (uint64_t)t->shape[0] * lf_type_row_bytes((lf_type_t)r->quant, t->shape[1]);
    if (dt == LF_DTYPE_F64 || (role == S_VAE && r->family != LF_FAMILY_SD15)) return 4 * n;
    return n * lf_dtype_size(dt);
}

/* The bytes of w's tensors that the model holds: all of them as role, or
 * (role S_SKIP: a single-file checkpoint) by their prefixes, keeping only
 * the roles in want (a bit per s_role_t). */
static uint64_t s_file_bytes(const lf_weights_t *w, s_role_t role, unsigned want, s_rules_t r) {
    lf_keymap_t k5;
    r.keep_block_t5 = role == S_TEXT && lf_t5_keymap(&k5, w) == 0;
    r.keep_block = (role == S_DENOISER && r.family == LF_FAMILY_FLUX) || r.keep_block_t5;
    uint64_t sum = 0;
    for (size_t i = 0; i < lf_weights_count(w); i++) {
        const lf_tensor_info_t *t = lf_weights_at(w, i);
        s_role_t tr = role != S_SKIP ? role : s_role_of(t->name);
        if (!strncmp(t->name, "model_ema.", 10) || !(want & (1u << tr)) ||
            (r.keep_block_t5 && (strstr(t->name, "relative_attention_bias") || strstr(t->name, "attn_rel_b") ||
                                 (!strcmp(t->name, "encoder.embed_tokens.weight") &&
                                  lf_weights_find(w, "shared.weight")))))
            continue;
        s_rules_t rr = r;
        if (role == S_SKIP)
            rr.keep_block = tr == S_DENOISER && r.family == LF_FAMILY_FLUX;
        if (tr == S_TEXT && (strstr(t->name, "position_embedding") || strstr(t->name, "positional_embedding")))
            sum += 4 * (uint64_t)lf_tensorinfo_numel(t);
        else
            sum += s_tensor_bytes(t, tr, &rr);
    }
    return sum;
}

/* A diffusers folder's part file (lf__model_open_part's candidates), or NULL. */
static lf_weights_t *s_part(const char *dir, const char *sub, const char *base, int *rc) {
    lf_weights_t *w = NULL;
    char err[256];
    int r = lf__model_open_part(dir, sub, base, 1, &w, err, sizeof err);
    if (r && !*rc) *rc = r;
    return w;
}

/* A part given as a path (text encoder, VAE): a file, or a diffusers
 * folder's subfolder(s) for that role. */
static int s_add_part(const char *path, s_role_t role, const s_rules_t *r, uint64_t *sum) {
    int rc = 0;
    if (lf__model_is_dir(path)) {
        static const char *const text[] = {"text_encoder", "text_encoder_2"};
        for (int i = 0; i < (role == S_TEXT ? 2 : 1); i++) {
            lf_weights_t *w = s_part(path, role == S_TEXT ? text[i] : "vae",
                                     role == S_TEXT ? "model" : "diffusion_pytorch_model", &rc);
            if (w) *sum += s_file_bytes(w, role, 1u << role, *r);
            lf_weights_destroy(&w);
        }
        return rc;
    }
    lf_weights_t *w = NULL;
    char err[256];
    if ((rc = lf_weights_open(&w, path, err, sizeof err)) != 0) return rc;
    /* A checkpoint given as a part: only that part's tensors of it. */
    const char *inner = role == S_VAE ? "first_stage_model." : "cond_stage_model.";
    const int whole = !lf_keymap_has_prefix(w, inner) && !lf_keymap_has_prefix(w, "conditioner.") &&
                      !lf_keymap_has_prefix(w, "model.diffusion_model.");
    *sum += s_file_bytes(w, whole ? role : S_SKIP, 1u << role, *r);
    lf_weights_destroy(&w);
    return rc;
}

int lf_model_estimate_bytes(const char *path, const lf_model_opts_t *opts, uint64_t *out) {
    static const lf_model_opts_t none = {.weight_type = -1};
    const lf_model_opts_t *o = opts ? opts : &none;
    if (!path || !out) return LF_EINVAL;
    const int parts_text = o->n_text_paths > 0, parts_vae = o->vae_path != NULL;
    s_rules_t r = {.quant = o->weight_quant};
    uint64_t sum = 0;
    int rc = 0;
    if (lf__model_is_dir(path)) { /* a diffusers folder */
        lf_weights_t *den = s_part(path, "unet", "diffusion_pytorch_model", &rc);
        if (!den) den = s_part(path, "transformer", "diffusion_pytorch_model", &rc);
        if (!den) return rc ? rc : LF_ENOTFOUND;
        r.family = lf__model_family_of(den);
        if (r.family == LF_FAMILY_UNKNOWN && lf_flux_detect(den, "")) r.family = LF_FAMILY_FLUX;
        sum += s_file_bytes(den, S_DENOISER, 1u << S_DENOISER, r);
        lf_weights_destroy(&den);
        if (!parts_text) rc = s_add_part(path, S_TEXT, &r, &sum);
        if (!rc && !parts_vae) rc = s_add_part(path, S_VAE, &r, &sum);
    } else {
        lf_weights_t *w = NULL;
        char err[256];
        if ((rc = lf_weights_open(&w, path, err, sizeof err)) != 0) return rc;
        r.family = lf__model_family_of(w);
        unsigned want = 1u << S_DENOISER;
        if (!parts_text) want |= 1u << S_TEXT;
        if (!parts_vae) want |= 1u << S_VAE;
        sum += s_file_bytes(w, S_SKIP, want, r);
        lf_weights_destroy(&w);
    }
    for (size_t i = 0; !rc && i < o->n_text_paths; i++)
        if (strcmp(o->text_paths[i], path)) rc = s_add_part(o->text_paths[i], S_TEXT, &r, &sum);
    if (!rc && parts_vae) rc = s_add_part(o->vae_path, S_VAE, &r, &sum);
    if (!rc) *out = sum;
    return rc;
}
