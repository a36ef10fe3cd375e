/* lf_unet: the Stable Diffusion 1.x/2.x and SDXL UNet (diffusers
 * UNet2DConditionModel with CrossAttnDownBlock2D / DownBlock2D levels, and
 * SDXL's addition_embed_type "text_time") built from kernels/ ops.
 *
 * SDXL's added embedding (diffusers add_time_proj + add_embedding, LDM
 * label_emb.0): each micro-conditioning number (time id) goes through the
 * same sinusoidal embedding as the timestep (addition_time_embed_dim wide,
 * the config's flip_sin_to_cos / freq_shift), the pooled text embedding is
 * put in front of them, and linear, SiLU, linear of that is added to the
 * time embedding before its SiLU. Present when the file has
 * add_embedding.linear_1 (label_emb.0.0); its input size is read from the
 * shape, the time-id embedding width from the config (default 256).
 *
 * The architecture is read from tensor shapes (levels, channels per level,
 * resnets per block, attention depth per level, linear or 1x1-conv
 * projections, context and time-embedding sizes); what shapes cannot tell
 * (heads, group-norm groups, eps, time-embedding flip/shift) comes from a
 * diffusers config (JSON) when given, else SD1.5 defaults. Also holds the
 * small graph helpers the other networks share (lf__nn_*).
 *
 * Threading: one thread at a time. Ownership: the pool and backend are
 * borrowed and must outlive the UNet; graphs are cached per input shape. */
#ifndef LF_UNET_H
#define LF_UNET_H

#include <jansson.h>
#include <stddef.h>

#include "lf_graph.h"
#include "lf_keymap.h"
#include "lf_stepcache.h"

#define LF_UNET_MAX_LEVELS 6

typedef struct {
    int in_ch, out_ch, levels, layers;
    int ch[LF_UNET_MAX_LEVELS];
    int attn[LF_UNET_MAX_LEVELS];    /* transformer blocks per attention, down level l (0: none) */
    int up_attn[LF_UNET_MAX_LEVELS]; /* the same for up level i */
    int heads[LF_UNET_MAX_LEVELS];   /* attention heads at down level l */
    int mid_attn, mid_heads;
    int groups;
    float eps;
    int ctx_dim, linear_proj, temb_in, temb_dim;
    int flip_sin_to_cos;
    float freq_shift;
    int add_in;       /* SDXL added embedding's input size (0: none) */
    int add_time_dim; /* width of each time id's sinusoidal embedding (256) */
} lf_unet_config_t;

typedef struct lf_unet lf_unet_t;

/* Loads the UNet's tensors through km into pool (type: lf_type_t or -1 as
 * stored; a block type such as LF_TYPE_Q8_0 quantizes the linear layers
 * whose rows are whole blocks on load and keeps the rest as stored; GGUF
 * block-type linear weights then stay as stored). config: diffusers UNet config object or NULL (borrowed); without
 * one, heads default to 8 per attention (SD1.x) or, for an SDXL UNet (one
 * with the added embedding), channels / 64 (SDXL's head size). On failure
 * returns a negative code with the reason (file, tensor) in err. */
int lf_unet_new(lf_unet_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen);
void lf_unet_destroy(lf_unet_t **self_p);
/* Drops the graphs recorded per input shape (whole network and step-caching
 * parts) and their activation memory; the next forward plans again. A model
 * calls it between a generation's phases so that the UNet's activations are
 * not resident while the VAE decodes or another network runs. */
void lf_unet_release_graphs(lf_unet_t *self);
/* With pool (the pool the UNet's weights were loaded into), every node of
 * a forward gives back the file pages of the mapped weights it has read
 * (lf_pool_drop_tensor_pages), so the UNet's resident weights stay at the
 * layer running instead of the whole file (they are read again, usually
 * from the page cache, at the next forward). Only while the weights hold
 * their file's bytes (no LoRA merged into them). NULL: keep the pages
 * (default). Applies to the graphs recorded before and after the call. */
void lf_unet_set_weight_release(lf_unet_t *self, const lf_pool_t *pool);
const lf_unet_config_t *lf_unet_config(const lf_unet_t *self);

/* x [batch][in_ch][h][w], t[batch], ctx [batch][ctx_len][ctx_dim] ->
 * out [batch][out_ch][h][w]. Any h, w >= 1 (sizes that are not multiples of
 * 2^(levels-1) are handled as diffusers does). added: NULL for a UNet
 * without the added embedding (LF_EINVAL otherwise), else [batch][n_pooled
 * + n_ids]: the pooled text embedding, then the n_ids time ids (raw
 * numbers), where add_in = n_pooled + n_ids * add_time_dim (LF_EINVAL when
 * it does not divide). */
int lf_unet_forward(lf_unet_t *self, const float *x, int batch, int h, int w, const float *t,
                    const float *ctx, int ctx_len, const float *added, int n_pooled, float *out);
/* lf_unet_forward with step caching (lf_stepcache.h): sc's kind picks the
 * path, sc decides per evaluation and keeps the cached tensors (NULL or kind
 * none: lf_unet_forward, counted as a full evaluation).
 *  - FBCache: the first block is conv_in plus the first down resnet and its
 *    attention (ComfyUI's input_blocks 0 and 1, as WaveSpeed's UNet
 *    variant); its residual is that block's output minus conv_in's. On reuse
 *    the rest (the other down blocks, the middle and the up path) is skipped
 *    and its cached residual (up path output minus the first block's output)
 *    added before the output head (norm, SiLU, conv_out).
 *  - DeepCache: the branch `depth` (DeepCache's cache_branch_id) counts the
 *    down path's elements after conv_in (each resnet with its attention, each
 *    downsampler: for SD1.5 and SDXL, block * 3 + layer, 2 = the
 *    downsampler). A reuse evaluation runs conv_in and the down elements
 *    before `depth`, then from the cached deep feature (the up path's input
 *    just before it concatenates skip depth) only the up resnets that take
 *    skips depth..0 (with their attentions and upsamplers) and the head; the
 *    middle block and everything deeper is skipped. A depth beyond the
 *    deepest branch (lf_unet_cache_depths - 1) is taken as the deepest.
 * A full evaluation runs the same operations as lf_unet_forward, in parts,
 * and gives the same bytes. Errors as lf_unet_forward, LF_ENOMEM. */
int lf_unet_forward_cached(lf_unet_t *self, lf_stepcache_t *sc, const float *x, int batch, int h,
                           int w, const float *t, const float *ctx, int ctx_len,
                           const float *added, int n_pooled, float *out);
/* Resnets and transformer blocks computed by every forward so far (the
 * middle block counts as its two resnets and its attention): what tests
 * count to see that a reuse step skipped the deep blocks. */
unsigned long lf_unet_blocks_run(const lf_unet_t *self);
/* The floating-point operations of those forwards (lf_graph_flops). */
double lf_unet_flops_run(const lf_unet_t *self);
/* DeepCache branches of this UNet (valid depths 0 .. n-1). */
int lf_unet_cache_depths(const lf_unet_t *self);

/* How many time ids a UNet takes next to a pooled embedding of n_pooled
 * (6 for the SDXL base, 5 for the refiner), or 0 when it has no added
 * embedding or the sizes do not fit. */
int lf_unet_time_ids(const lf_unet_t *self, int n_pooled);

/* ---- Shared helpers for the networks (internal to the engine). ---- */
/* Integer config value (or def); for a list, element i (or the last). */
int lf__json_int(const json_t *cfg, const char *key, int i, int def);
double lf__json_num(const json_t *cfg, const char *key, double def);
/* [W,H,C,B] image -> [C,W*H,B] tokens, and back. */
lf_tensor_t *lf__nn_to_tokens(lf_graph_t *g, lf_tensor_t *x);
lf_tensor_t *lf__nn_from_tokens(lf_graph_t *g, lf_tensor_t *t, int64_t W, int64_t H);
/* A reshaped view of graph tensor x. */
lf_tensor_t *lf__nn_reshape(lf_graph_t *g, lf_tensor_t *x, int64_t n0, int64_t n1, int64_t n2,
                            int64_t n3);
/* Torch-order shape helper for lf_keymap_load. */
#define LF__SHAPE(...) ((const int64_t[]){__VA_ARGS__})

#endif
