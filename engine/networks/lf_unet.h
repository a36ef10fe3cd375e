/* lf_unet: the Stable Diffusion 1.x/2.x UNet (diffusers UNet2DConditionModel
 * with CrossAttnDownBlock2D / DownBlock2D levels) built from kernels/ ops.
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
} lf_unet_config_t;

typedef struct lf_unet lf_unet_t;

/* Loads the UNet's tensors through km into pool (type: lf_type_t or -1 as
 * stored). config: diffusers UNet config object or NULL (borrowed). On
 * failure returns a negative code with the reason (file, tensor) in err. */
int lf_unet_new(lf_unet_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen);
void lf_unet_destroy(lf_unet_t **self_p);
const lf_unet_config_t *lf_unet_config(const lf_unet_t *self);

/* x [batch][in_ch][h][w], t[batch], ctx [batch][ctx_len][ctx_dim] ->
 * out [batch][out_ch][h][w]. Any h, w >= 1 (sizes that are not multiples of
 * 2^(levels-1) are handled as diffusers does). */
int lf_unet_forward(lf_unet_t *self, const float *x, int batch, int h, int w, const float *t,
                    const float *ctx, int ctx_len, float *out);

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
