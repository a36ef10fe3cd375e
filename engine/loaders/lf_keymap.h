/* lf_keymap: checkpoint key-name maps.
 *
 * The networks ask for their tensors by diffusers names (the most regular
 * layout: "down_blocks.1.resnets.0.conv1.weight"); a key map turns such a
 * name into the name a given file uses: the identity plus a prefix for
 * diffusers folders and HF text encoders, or the original (LDM / A1111 /
 * ComfyUI) layout of single-file checkpoints ("model.diffusion_model.
 * input_blocks.4.0.in_layers.2.weight", "first_stage_model.decoder.up.3.
 * block.0.conv1.weight"), or OpenCLIP's text transformer in SDXL's SGM
 * checkpoints ("transformer.resblocks.3.attn.in_proj_weight", q/k/v packed:
 * asked for as "encoder.layers.3.self_attn.in_proj.weight"). The LDM UNet
 * map needs the number of levels and
 * layers per block and which up levels hold attention; lf_keymap_probe reads
 * them from the key names.
 *
 * Pure functions over names; thread-safe. */
#ifndef LF_KEYMAP_H
#define LF_KEYMAP_H

#include <stddef.h>

#include "lf_origin.h"
#include "lf_weights.h"

typedef enum {
    LF_KEYMAP_DIFFUSERS = 0, /* names as asked, with the prefix */
    LF_KEYMAP_LDM_UNET,      /* original UNet layout */
    LF_KEYMAP_LDM_VAE,       /* original AutoencoderKL layout */
    LF_KEYMAP_OPENCLIP,      /* OpenCLIP text transformer (SDXL's conditioner.embedders.N.model.):
                                HF CLIP names -> token_embedding, positional_embedding,
                                transformer.resblocks.N.{ln_1,ln_2,attn.in_proj_*,attn.out_proj,
                                mlp.c_fc,mlp.c_proj}, ln_final, text_projection ([dim, proj], the
                                transpose of HF's text_projection.weight) */
    LF_KEYMAP_T5_GGUF,       /* HF T5 encoder names (shared., encoder.block.N.layer.0.SelfAttention.q,
                                ...) -> llama.cpp's in GGUF files (token_embd, enc.blk.N.attn_q,
                                attn_rel_b, ffn_gate/ffn_up/ffn_down, enc.output_norm) */
} lf_keymap_kind_t;

typedef struct {
    const lf_weights_t *w; /* borrowed */
    char prefix[64];       /* prepended to every mapped name */
    lf_keymap_kind_t kind;
    int levels;            /* LDM: number of resolution levels */
    int layers;            /* LDM UNet: resnets per down block */
    unsigned up_attn;      /* LDM UNet: bit i set when up block i has attention */
    lf_origin_t *origin;   /* borrowed, may be NULL: uploads from a mapped file (not a torch
                              zip) through this map are recorded there */
} lf_keymap_t;

/* Fills levels/layers/up_attn for the LDM kinds from the file's key names.
 * 0, or LF_EFORMAT when the layout is not recognised. */
int lf_keymap_probe(lf_keymap_t *km);

/* Sets *km up for the VAE in w (a checkpoint's first_stage_model., a bare
 * LDM VAE file, or diffusers names under vae. or none) and probes it, as
 * lf_keymap_probe. */
int lf_keymap_probe_vae(lf_keymap_t *km, const lf_weights_t *w);

/* Maps a diffusers name to the file's name (with prefix). 0, LF_ETOOBIG
 * (buffer), LF_ENOTFOUND (no mapping for this name). */
int lf_keymap_name(const lf_keymap_t *km, const char *name, char *out, size_t len);

/* The file's tensor for a diffusers name, or NULL. */
const lf_tensor_info_t *lf_keymap_find(const lf_keymap_t *km, const char *name);

/* Loading through a map into a pool, remembering the first error so that a
 * network can be loaded without a check after each tensor. */
typedef struct {
    const lf_keymap_t *km;   /* borrowed */
    lf_pool_t *pool;         /* borrowed */
    const char *pool_prefix; /* pool names are pool_prefix + diffusers name */
    int type;                /* lf_type_t for tensors of 2+ dims; -1 as stored */
    int quant;               /* linear weights (asked for with ndim 2): 0 as `type` says;
                                LF_WEIGHTS_STORED: GGUF block types kept as stored;
                                a block lf_type_t: that too, and float weights whose rows
                                are whole blocks quantized to it on load */
    int rc;                  /* first error (0 while fine) */
    char *err;               /* message of the first error (names file and tensor) */
    size_t errlen;
} lf_keymap_loader_t;

/* Loads the tensor with diffusers name (printf format) into the pool and
 * returns it (borrowed from the pool), or NULL after recording LF_ENOTFOUND
 * (missing) or LF_EFORMAT (shape) in ld. shape: PyTorch order, -1 = any,
 * trailing sizes of 1 ignored (a [C,C,1,1] conv matches a [C,C] linear);
 * ndim 0 skips the check. 1-D tensors are always kept in f32. Once ld->rc is
 * set, later calls return NULL at once. */
lf_tensor_t *lf_keymap_load(lf_keymap_loader_t *ld, int ndim, const int64_t *shape,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same for an optional tensor: NULL without an error when absent. */
lf_tensor_t *lf_keymap_load_opt(lf_keymap_loader_t *ld, int ndim, const int64_t *shape,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* True when the file holds a tensor whose name starts with prefix. */
int lf_keymap_has_prefix(const lf_weights_t *w, const char *prefix);

#endif
