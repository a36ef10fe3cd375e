/* lf_clip: the CLIP text transformer (HF CLIPTextModel: token + position
 * embeddings, pre-LN layers with a causal mask, quick_gelu (or gelu) MLP,
 * final layer norm) from kernels/ ops, with A1111 clip skip and emphasis.
 * The same network in OpenCLIP's layout (SDXL's ViT-bigG: q/k/v packed in
 * one in_proj, gelu; keymap kind LF_KEYMAP_OPENCLIP) and, when the file has
 * one, the text projection (CLIPTextModelWithProjection / OpenCLIP
 * text_projection) for the pooled embedding.
 * Sizes come from tensor shapes; heads from a transformers config when
 * given, else hidden/64; the activation from the config, else quick_gelu
 * for HF names and gelu for OpenCLIP.
 *
 * Threading: one thread at a time. Pool and backend are borrowed. */
#ifndef LF_CLIP_H
#define LF_CLIP_H

#include <jansson.h>
#include <stdint.h>

#include "lf_keymap.h"

typedef struct lf_clip lf_clip_t;

typedef struct {
    int vocab, hidden, layers, heads, inter, max_pos, quick_gelu;
    int proj_dim; /* text projection's output size; 0 = none */
    float eps;
} lf_clip_config_t;

/* km: DIFFUSERS kind whose prefix reaches "embeddings." (e.g.
 * "cond_stage_model.transformer.text_model."; the projection is looked up
 * as "text_projection.weight" next to the prefix's "text_model."), or
 * OPENCLIP kind whose prefix reaches "token_embedding" (e.g.
 * "conditioner.embedders.1.model."). */
int lf_clip_new(lf_clip_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen);
void lf_clip_destroy(lf_clip_t **self_p);
/* Drops the graphs cached per chunk count and their activation memory (the
 * next encode plans again): the text encoder's scratch is not kept while
 * the denoiser samples. */
void lf_clip_release_graphs(lf_clip_t *self);
const lf_clip_config_t *lf_clip_config(const lf_clip_t *self);
/* 1 when q, k and v are one packed in_proj tensor (OpenCLIP's layout, pool
 * names "clip.encoder.layers.N.self_attn.in_proj.weight" / ".bias"), 0 when
 * they are q_proj / k_proj / v_proj (HF's). */
int lf_clip_packed_qkv(const lf_clip_t *self);

/* ids [n_chunks][n_tok] -> out [n_chunks][n_tok][hidden]; weights as in
 * lf_model_encode_text (NULL = none); clip_skip >= 1. LF_EINVAL for an id
 * outside the vocabulary or n_tok > max_pos. */
int lf_clip_encode(lf_clip_t *self, const int32_t *ids, const float *weights, int n_chunks,
                   int n_tok, int clip_skip, float *out);

/* The general form. out [n_chunks][n_tok][hidden]: the hidden state after
 * layers - (skip - 1) layers (skip 1 = the last layer), through the final
 * layer norm when final_norm (SD1.x's clip skip) and without it otherwise
 * (SDXL's "penultimate hidden state", diffusers hidden_states[-skip]);
 * emphasis weights then applied as in lf_clip_encode. pooled (NULL = not
 * wanted): [n_chunks][proj_dim] (or [hidden] without a projection): per
 * chunk, the final-norm'd LAST layer's state at the position of the chunk's
 * largest id (the EOS: HF's pooler and OpenCLIP's text.argmax), times the
 * text projection; before emphasis. */
int lf_clip_encode_ex(lf_clip_t *self, const int32_t *ids, const float *weights, int n_chunks,
                      int n_tok, int skip, int final_norm, float *out, float *pooled);

#endif
