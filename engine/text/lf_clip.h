/* lf_clip: the CLIP text transformer (HF CLIPTextModel: token + position
 * embeddings, pre-LN layers with a causal mask, quick_gelu (or gelu) MLP,
 * final layer norm) from kernels/ ops, with A1111 clip skip and emphasis.
 * Sizes come from tensor shapes; heads from a transformers config when
 * given, else hidden/64.
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
    float eps;
} lf_clip_config_t;

/* km: DIFFUSERS kind whose prefix reaches "embeddings." (e.g.
 * "cond_stage_model.transformer.text_model."). */
int lf_clip_new(lf_clip_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen);
void lf_clip_destroy(lf_clip_t **self_p);
const lf_clip_config_t *lf_clip_config(const lf_clip_t *self);

/* ids [n_chunks][n_tok] -> out [n_chunks][n_tok][hidden]; weights as in
 * lf_model_encode_text (NULL = none); clip_skip >= 1. LF_EINVAL for an id
 * outside the vocabulary or n_tok > max_pos. */
int lf_clip_encode(lf_clip_t *self, const int32_t *ids, const float *weights, int n_chunks,
                   int n_tok, int clip_skip, float *out);

#endif
