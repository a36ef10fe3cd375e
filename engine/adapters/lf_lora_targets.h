/* lf_lora_targets: the layers of a model that a LoRA may touch, under the
 * engine's own names, and every name LoRA files use for them.
 *
 * A target is one Linear or Conv2d weight as the networks load it into their
 * pool ("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.
 * weight", "clip.encoder.layers.3.mlp.fc1.weight"), with its PyTorch-order
 * shape and its bias's name. The table is built from the networks' configs
 * (lf_unet_config_t, lf_clip_config_t), so a resident model's own sizes give
 * its own table; lf_lora_targets_sd15 builds SD1.5's without a model.
 *
 * Each target is registered under kohya's flattened names, the form every
 * LoRA name is brought to before lookup (lf_lora): "lora_unet_" + the
 * diffusers module path with '.' as '_' (what kohya's sd-scripts and LyCORIS
 * write), "lora_unet_" + the original LDM path (A1111-era files:
 * "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"), and for a
 * text encoder its prefix ("lora_te_" for SD1.x, "lora_te1_"/"lora_te2_" for
 * SDXL) + "text_model_" + the HF path.
 *
 * Names are the model's, not one pool's: SDXL's second text encoder keeps
 * its weights in a pool of its own, so its targets are named "clip2.…" and
 * lf_lora_patch maps that prefix onto that pool (lf_lora_patch_add_pool).
 * OpenCLIP's layout packs q, k and v into one in_proj tensor [3D, D]; LoRA
 * files name q_proj / k_proj / v_proj separately (kohya's and diffusers'
 * te2 names come from the HF model), so each is a target that is a slice:
 * rows [row0, row0 + shape[0]) of a tensor of tensor_rows rows, the three
 * consecutive in the table under the one tensor name.
 *
 * Threading: immutable once built; concurrent lookups are fine.
 * Ownership: constructors hand the caller the object ("caller owns");
 * targets returned by accessors are borrowed from it. */
#ifndef LF_LORA_TARGETS_H
#define LF_LORA_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#include "lf_clip.h"
#include "lf_unet.h"

/* Which multiplier of <lora:name:te:unet> a target takes. */
typedef enum {
    LF_LORA_PART_UNET = 0,
    LF_LORA_PART_TE,
} lf_lora_part_t;

#define LF_LORA_NAME_MAX 128

/* One layer a LoRA may change (plain data). */
typedef struct {
    char name[LF_LORA_NAME_MAX]; /* pool name of the weight ("unet.….weight") */
    char bias[LF_LORA_NAME_MAX]; /* pool name of its bias, "" when it has none */
    lf_lora_part_t part;
    int ndim;         /* 2 (Linear) or 4 (Conv2d) */
    int64_t shape[4]; /* PyTorch order: [out, in] or [out, in, kh, kw] */
    int64_t row0;        /* a slice of a packed tensor: its first row (and of the bias) */
    int64_t tensor_rows; /* the packed tensor's rows; 0 = the target is the whole tensor */
} lf_lora_target_t;

typedef struct lf_lora_targets lf_lora_targets_t;

/* An empty table (caller owns), or NULL when out of memory. */
lf_lora_targets_t *lf_lora_targets_new(void);
void lf_lora_targets_destroy(lf_lora_targets_t **self_p);

/* Adds the UNet's Linear/Conv2d layers (pool prefix "unet.") for config c
 * (borrowed; SD1.x/2.x and SDXL layouts as lf_unet builds them, feed-forward
 * inner size 4x, SDXL's add_embedding when c->add_in). 0, LF_ENOMEM,
 * LF_EEXIST (a name already in the table). */
int lf_lora_targets_add_unet(lf_lora_targets_t *self, const lf_unet_config_t *c);

/* Adds a CLIP text encoder's layers (pool prefix pool_prefix, e.g. "clip.")
 * under kohya prefix kohya_prefix ("lora_te_") and diffusers prefix
 * diffusers_prefix ("text_encoder."). Same returns. */
int lf_lora_targets_add_clip(lf_lora_targets_t *self, const lf_clip_config_t *c,
                             const char *pool_prefix, const char *kohya_prefix,
                             const char *diffusers_prefix);
/* The same for an encoder in OpenCLIP's layout when packed_qkv: q_proj,
 * k_proj and v_proj are the three row slices of
 * pool_prefix "encoder.layers.N.self_attn.in_proj.weight" (and its bias). */
int lf_lora_targets_add_clip_ex(lf_lora_targets_t *self, const lf_clip_config_t *c,
                                const char *pool_prefix, const char *kohya_prefix,
                                const char *diffusers_prefix, int packed_qkv);

/* SD1.5's UNet and CLIP-L text encoder (lora_te_, text_encoder.). *out is
 * new (caller owns). 0 or LF_ENOMEM. */
int lf_lora_targets_sd15(lf_lora_targets_t **out);

size_t lf_lora_targets_count(const lf_lora_targets_t *self);
/* The i-th target (borrowed), or NULL when out of range. */
const lf_lora_target_t *lf_lora_targets_at(const lf_lora_targets_t *self, size_t i);
/* The target a LoRA file's module name means (borrowed), or NULL. module is
 * the tensor name without its kind suffix (".lora_down.weight", ".alpha",
 * ...), in any of the layouts: kohya-flat ("lora_unet_…", "lora_te_…"),
 * dotted diffusers/PEFT names under "unet.", a text encoder's diffusers
 * prefix, "base_model.model." or none, dotted original-layout UNet names
 * under "model.diffusion_model." or "diffusion_model.", and diffusers' attention-processor
 * names ("….attn1.processor.to_out", "….self_attn.to_q" in a text encoder). */
const lf_lora_target_t *lf_lora_targets_lookup(const lf_lora_targets_t *self, const char *module);

#endif
