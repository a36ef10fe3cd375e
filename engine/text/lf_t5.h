/* lf_t5: the T5 v1.1 text encoder (HF T5EncoderModel; T5-XXL as Flux and
 * SD3 use it) from kernels/ ops: token embedding, blocks of RMS layer norm
 * (T5LayerNorm: no mean, no bias), self-attention without 1/sqrt(d) scaling
 * plus a relative position bias computed from block 0's table and shared by
 * every block, gated-GELU feed-forward (gelu_new, the tanh form, times a
 * linear branch), final RMS norm. No biases anywhere. Activations are f32
 * whatever the weights' type (T5-XXL overflows f16 activations).
 *
 * Sizes come from tensor shapes, so a single file without a config works
 * (ComfyUI's models/clip/t5xxl_fp16.safetensors); a transformers config
 * (diffusers' text_encoder_2/config.json), when given, supplies the relative
 * attention max distance (else 128) and eps (else 1e-6).
 *
 * Threading: one thread at a time. Pool and backend are borrowed. */
#ifndef LF_T5_H
#define LF_T5_H

#include <jansson.h>
#include <stdint.h>

#include "lf_keymap.h"

typedef struct lf_t5 lf_t5_t;

typedef struct {
    int vocab, d_model, d_kv, heads, d_ff, layers, rel_buckets, rel_max_dist;
    float eps;
    int gated_gelu; /* always 1: only T5 v1.1's gated-GELU blocks are supported */
} lf_t5_config_t;

/* Sets *km up for the T5 encoder in w: llama.cpp's names (GGUF T5 files:
 * "enc.blk.0.attn_q.weight") as LF_KEYMAP_T5_GGUF, else HF names under
 * whatever prefix the file puts before "encoder.block.0.layer.0.
 * SelfAttention.q.weight" ("" in diffusers' text_encoder_2/ and ComfyUI's
 * t5xxl files, "text_encoders.t5xxl.transformer." in ComfyUI's all-in-one
 * checkpoints). 0, or LF_ENOTFOUND (no T5 encoder in w). */
int lf_t5_keymap(lf_keymap_t *km, const lf_weights_t *w);

/* km: DIFFUSERS kind whose prefix reaches "encoder." / "shared." (HF
 * T5EncoderModel names, as diffusers' text_encoder_2/ and ComfyUI's t5xxl
 * files store them; the embedding as "shared.weight" or
 * "encoder.embed_tokens.weight"), or LF_KEYMAP_T5_GGUF for llama.cpp's names
 * in GGUF files. config: a transformers T5Config or NULL. type: lf_type_t of
 * the matrices in the pool, or -1 as stored (f32/f16/bf16, and GGUF block
 * types kept quantized for MATMUL). 0, LF_ENOTFOUND /
 * LF_EFORMAT (missing tensor, bad shape; message names file and tensor),
 * LF_EUNSUPPORTED (not gated-GELU), LF_ENOMEM. */
int lf_t5_new(lf_t5_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
              lf_pool_t *pool, int type, char *err, size_t errlen);
void lf_t5_destroy(lf_t5_t **self_p);
const lf_t5_config_t *lf_t5_config(const lf_t5_t *self);

/* ids [n_tok] (already padded: 256 for schnell, 512 for dev) -> out
 * [n_tok][d_model]: the last hidden state after the final layer norm
 * (T5EncoderModel(ids)[0], FluxPipeline's prompt_embeds); attention over
 * every token, padding included, as FluxPipeline (no attention mask).
 * LF_EINVAL for an id outside the vocabulary or n_tok < 1. */
int lf_t5_encode(lf_t5_t *self, const int32_t *ids, int n_tok, float *out);
/* Drops the planned graph and its activation memory (the next encode plans
 * again): T5's scratch is not kept while the transformer samples. */
void lf_t5_release_graphs(lf_t5_t *self);

/* HF's T5Attention._relative_position_bucket for one relative position
 * (memory - query) in the bidirectional (encoder) form. */
int lf_t5_position_bucket(int rel, int num_buckets, int max_distance);

#endif
