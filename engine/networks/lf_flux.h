/* lf_flux: the Flux transformer (BFL flux/model.py, diffusers
 * FluxTransformer2DModel) from kernels/ ops: img_in / txt_in linears, the
 * time (and, for dev, guidance) embedding (sinusoidal of t * 1000 through an
 * MLP) plus the pooled CLIP vector, double-stream blocks (per-stream
 * modulation, joint attention over [txt, img] with per-head RMSNorm on q and
 * k and 3-axis RoPE, GELU-tanh MLPs), single-stream blocks (q, k, v and the
 * MLP from one input, GELU-tanh, one output projection), and the final
 * AdaLayerNormContinuous + linear.
 *
 * Two key layouts, detected from names: BFL's original (double_blocks.N.
 * img_attn.qkv.weight fused, single_blocks.N.linear1 = q | k | v | mlp,
 * final_layer.adaLN_modulation.1 as (shift, scale)), what ComfyUI and
 * single-file users have; and diffusers' (transformer_blocks.N.attn.to_q,
 * add_q_proj, ... split; norm_out.linear as (scale, shift)). Weights are
 * used as stored (f16 / bf16 / f32, GGUF block types such as Q8_0 or Q4_K
 * kept quantized: MATMUL takes them), or the type asked for; the fused
 * tensors are used through row views, so both layouts run one graph.
 * Sizes come from tensor shapes; heads from the head dimension of the q/k
 * norm's scale; RoPE axes from a diffusers config ("axes_dims_rope"), else
 * Flux.1's (16, 56, 56) when they fit the head dimension.
 *
 * Pool names: "flux." + the file's names after the key map's prefix.
 *
 * Threading: one thread at a time. Pool and backend are borrowed. */
#ifndef LF_FLUX_H
#define LF_FLUX_H

#include <jansson.h>
#include <stdint.h>

#include "lf_keymap.h"

typedef struct lf_flux lf_flux_t;

typedef struct {
    int in_ch, out_ch;    /* packed channels (latent channels x 4) */
    int hidden, heads, head_dim, mlp;
    int n_double, n_single;
    int txt_dim, vec_dim; /* T5 width, pooled CLIP width */
    int guidance;         /* 1: a guidance embedding (dev) */
    int axes[3];
    float theta;
    int bfl;              /* 1: BFL layout, 0: diffusers */
} lf_flux_config_t;

/* km: DIFFUSERS kind whose prefix reaches the model's names (e.g.
 * "model.diffusion_model." or ""); config: a diffusers transformer config
 * or NULL. type: lf_type_t for matrices (LF_TYPE_F32 widens GGUF block
 * types too), -1 = as stored (GGUF block types kept), or a block type such
 * as LF_TYPE_Q8_0: the linear weights whose rows are whole blocks are
 * quantized to it on load (GGUF block types kept as stored), the rest kept
 * as stored. */
int lf_flux_new(lf_flux_t **out, const lf_keymap_t *km, const json_t *config, lf_backend_t *be,
                lf_pool_t *pool, int type, char *err, size_t errlen);
void lf_flux_destroy(lf_flux_t **self_p);
const lf_flux_config_t *lf_flux_config(const lf_flux_t *self);
/* 1 when the file in w holds a Flux transformer under prefix (either layout). */
int lf_flux_detect(const lf_weights_t *w, const char *prefix);

/* One forward. x [batch][n_img][in_ch] packed latents, txt [batch][n_txt]
 * [txt_dim], vec [batch][vec_dim] (pooled CLIP), t [batch] (sigma in [0, 1],
 * multiplied by 1000 inside), guidance [batch] (ignored without a guidance
 * embedding; NULL = 0 there), img_ids [n_img][3], txt_ids [n_txt][3] (RoPE
 * positions as diffusers' _prepare_latent_image_ids; NULL = zeros) ->
 * out [batch][n_img][out_ch]. One graph per (batch, n_img, n_txt). */
int lf_flux_forward(lf_flux_t *self, int batch, int n_img, int n_txt, const float *x,
                    const float *txt, const float *vec, const float *t, const float *guidance,
                    const float *img_ids, const float *txt_ids, float *out);
/* Drops the planned graphs and their activation memory (the next forward
 * plans again): the transformer's scratch is not kept while the VAE decodes
 * or the text encoders run. */
void lf_flux_release_graphs(lf_flux_t *self);

/* Latent packing (pure). z [batch][ch][h][w] (h, w even) <->
 * packed [batch][(h/2)*(w/2)][ch*4], channel c*4 + dy*2 + dx (diffusers
 * _pack_latents / _unpack_latents). */
void lf_flux_pack(const float *z, int batch, int ch, int h, int w, float *packed);
void lf_flux_unpack(const float *packed, int batch, int ch, int h, int w, float *z);
/* ids [(h/2)*(w/2)][3] = (0, row, col) of each 2x2 patch of an h x w latent. */
void lf_flux_image_ids(int h, int w, float *ids);

#endif
