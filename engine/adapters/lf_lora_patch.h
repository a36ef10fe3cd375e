/* lf_lora_patch: a set of LoRAs merged into a model's resident weights,
 * with the original tensors kept so the plain model comes back exactly.
 * A target that is a slice of a packed tensor (OpenCLIP's q/k/v in one
 * in_proj) is merged into its rows; the slices of one tensor are merged
 * together, from one read of it.
 *
 * lf_lora_patch_set makes the weights of the pool those of the model with
 * the given LoRAs merged: for every layer any of them touches,
 *   W = W0 + Σ_k weight_k · ΔW_k
 * computed in f32 from the original W0 and stored in the tensor's own type
 * (round to nearest even for f16/bf16). weight_k is the LoRA's UNet or
 * text-encoder multiplier, by the layer's part. On a host backend the merge
 * is written straight into the tensor, a block of rows at a time: ΔW of the
 * plain low-rank networks of a layer is one GEMM of their stacked factors
 * (each weight folded into its up), the other networks' ΔW is added, and
 * one ADD of the op table (spread over the backend's threads) stores
 * W0 + ΔW. On a device the merge is done on the host and written back.
 *
 * Restoring: before its first change a tensor's plain bytes are copied to
 * host memory, unless an origin (lf_lora_patch_set_origin: the model's
 * files) can give them again and the copies already reached the cap; then
 * the tensor is read again from its file when the plain model or another
 * set needs it. Either way lf_lora_patch_restore (or a set with another
 * list) writes them back as they were: the restored model is bit-identical
 * to one that never saw a LoRA, whatever the rounding of the merge.
 *
 * A set equal to the current one — the same files (path, device, inode,
 * size and modification time) with the same multipliers in the same order
 * — writes nothing (info->reused). Any other set merges each layer it
 * touches from that layer's plain bytes (never from the previous set's
 * weights; no read back) in one write, and writes the plain bytes back
 * into the layers it leaves alone: the result equals a restore followed by
 * a merge, at the cost of the new set's layers only. A failure (a file
 * that does not open, a layer whose shape is not the model's, a merge that
 * overflows the storage type to Inf, a model file changed since the load)
 * leaves the plain model: every layer written so far is restored, and err
 * names the file and the layer.
 *
 * Threading: one thread at a time, the thread that runs the model (the
 * backend is single-threaded). Ownership: the pool, backend and targets are
 * borrowed and must outlive the patch; lf_lora_patch_destroy frees the saved
 * originals WITHOUT writing them back (call restore first when the pool
 * stays in use). */
#ifndef LF_LORA_PATCH_H
#define LF_LORA_PATCH_H

#include <stddef.h>

#include "lf_backend.h"
#include "lf_lora_targets.h"
#include "lf_origin.h"
#include "lf_pool.h"

/* One LoRA of a set (plain data, borrowed for the call). */
typedef struct {
    const char *path;   /* the LoRA file */
    const char *name;   /* for messages (A1111's name); NULL = path */
    double unet_weight; /* multiplier of the UNet layers */
    double te_weight;   /* multiplier of the text encoder layers */
} lf_lora_use_t;

/* What a set did (plain data). */
typedef struct {
    int reused;     /* 1: the set was the current one, nothing was written */
    size_t layers;  /* tensors that now differ from the plain model's */
    size_t saved_bytes; /* host bytes the kept copies take (not those read again from a file) */
    char *warnings; /* caller owns (free), NULL when none: every tensor of the files that
                       was not applied, "name: tensor (reason)", joined by "; " */
} lf_lora_patch_info_t;

typedef struct lf_lora_patch lf_lora_patch_t;

/* A patch over pool (its tensors found by the targets' names), written
 * through be. All borrowed. Caller owns; NULL when out of memory. */
lf_lora_patch_t *lf_lora_patch_new(lf_pool_t *pool, lf_backend_t *be,
                                   const lf_lora_targets_t *targets);
/* Tensors whose target names start with name_prefix ("clip2.") live in pool
 * under pool_prefix + the rest of the name ("clip."): a model whose parts
 * keep their weights in pools of their own (SDXL's second text encoder).
 * Names no prefix claims are looked up in the pool given to _new. pool is
 * borrowed and must outlive the patch. 0, LF_EINVAL, LF_ETOOBIG (more than
 * 4 maps, or a prefix over 31 bytes). */
int lf_lora_patch_add_pool(lf_lora_patch_t *self, const char *name_prefix, lf_pool_t *pool,
                           const char *pool_prefix);

/* Plain tensors the origin knows (borrowed; must outlive the patch) are
 * read again from the model's files instead of copied once the copies
 * take keep_bytes (0: no copies of them; SIZE_MAX: always copies, as
 * without an origin). Tensors it does not know are always copied. Only
 * while no set is applied: 0, LF_EINVAL. */
int lf_lora_patch_set_origin(lf_lora_patch_t *self, lf_origin_t *origin, size_t keep_bytes);

/* Frees the kept originals without restoring them (see above). Takes NULL. */
void lf_lora_patch_destroy(lf_lora_patch_t **self_p);

/* Makes the pool's weights the plain model plus uses[0..n) (n == 0: the
 * plain model). info may be NULL; on success *info is filled (its warnings
 * are the set's, repeated when reused). Errors: LF_EIO / LF_EFORMAT /
 * LF_EUNSUPPORTED / LF_ENOMEM from a file (lf_lora_open), LF_EFORMAT for a
 * layer the model has in another shape or a merged value the storage type
 * cannot hold, LF_EINVAL for a non-finite multiplier, a backend's code;
 * err names the file and the layer. On failure the plain model is resident
 * and *info is untouched. */
int lf_lora_patch_set(lf_lora_patch_t *self, const lf_lora_use_t *uses, size_t n,
                      lf_lora_patch_info_t *info, char *err, size_t errlen);

/* Writes every kept original back (from its copy or its file) and forgets
 * the set. 0, the backend's code or the origin's (the rest is kept then,
 * and a later call tries again). */
int lf_lora_patch_restore(lf_lora_patch_t *self);

/* Tensors changed from the plain model now; host bytes of the originals. */
size_t lf_lora_patch_layers(const lf_lora_patch_t *self);
size_t lf_lora_patch_saved_bytes(const lf_lora_patch_t *self);

#endif
