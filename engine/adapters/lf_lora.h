/* lf_lora: a LoRA / LyCORIS file read into per-layer weight deltas.
 *
 * lf_lora_open reads a .safetensors (or PyTorch zip) through lf_weights,
 * groups its tensors by module, recognises each module's network from the
 * tensor names (never the file name), maps the module onto a target layer of
 * an lf_lora_targets table and checks that the factors multiply to that
 * layer's shape and hold only finite numbers. lf_lora_delta then computes one
 * layer's ΔW (f32, the target's shape, row-major) at multiplier 1 with the
 * network's own scale included, so a caller applies W += weight · ΔW.
 *
 * Networks, with their tensor-name suffixes and what ΔW is (scale = alpha /
 * rank, 1 when the file has no alpha or alpha is 0, as kohya and LyCORIS do):
 *   LoRA    kohya ".lora_down.weight"/".lora_up.weight"[+".lora_mid.weight"],
 *           PEFT ".lora_A.weight"/".lora_B.weight", diffusers ".lora.down/up.
 *           weight", ".lora_linear_layer.down/up.weight" and the attention-
 *           processor "…processor.to_k_lora.down/up.weight":
 *           ΔW = up · down · scale, rank = rows of down; with lora_mid (LoCon
 *           Tucker) ΔW[o,i,k] = Σ mid[a,b,k] up[o,a] down[b,i] · scale.
 *   LoHa    ".hada_w1_a/_b", ".hada_w2_a/_b"[+".hada_t1/_t2"]:
 *           ΔW = (w1a·w1b) ⊙ (w2a·w2b) · scale, rank = rows of w1b; with the
 *           Tucker cores each product is Σ t[a,b,k] wa[a,o] wb[b,i].
 *   LoKr    ".lokr_w1" or ".lokr_w1_a/_b", ".lokr_w2" or ".lokr_w2_a/_b"
 *           [+".lokr_t2"]: ΔW = kron(w1, w2) · scale, rank = rows of w1_b,
 *           else of w2_b; scale 1 when neither side is factored (LyCORIS).
 *   full    ".diff" (ΔW itself) and ".diff_b" (Δbias).
 * ".alpha" belongs to any of them. The math follows lycoris-lora's
 * lycoris/functional/{locon,loha,lokr}.py and PEFT's get_delta_weight.
 *
 * Modules that name no target, tensors of kinds not read here (OFT, IA3,
 * GLoRA, norms) and an alpha left without weights by them are not dropped:
 * they are listed by tensor name with the reason (lf_lora_unmatched_*). Bad input (unreadable file,
 * incomplete, mixed or doubled factors, two modules for one layer, shapes that do not give the
 * target's, a NaN or Inf) fails the open with a negative LF_E* code and a message naming the file
 * and the tensor; a DoRA module (dora_scale), whose plain ΔW would be wrong, is LF_EUNSUPPORTED.
 *
 * Threading: immutable after open; lf_lora_delta may run concurrently.
 * Ownership: lf_lora_open hands the caller the object; layers, names and
 * targets from accessors are borrowed from it (and from the targets table,
 * which must outlive it). */
#ifndef LF_LORA_H
#define LF_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "lf_lora_targets.h"

typedef enum {
    LF_LORA_KIND_LORA = 0, /* kohya / PEFT / diffusers LoRA and LoCon */
    LF_LORA_KIND_LOHA,
    LF_LORA_KIND_LOKR,
    LF_LORA_KIND_FULL,
} lf_lora_kind_t;

/* "lora", "loha", "lokr", "full"; "?" when out of range. */
const char *lf_lora_kind_name(lf_lora_kind_t kind);

/* One layer the file changes (plain data, borrowed from the lf_lora_t). */
typedef struct {
    const lf_lora_target_t *target; /* the engine layer (borrowed from the targets table) */
    const char *module;             /* the module's name in the file (borrowed) */
    lf_lora_kind_t kind;
    int tucker;     /* lora_mid / hada_t* / lokr_t2 present */
    int has_weight; /* ΔW present (a full diff may hold only diff_b) */
    int has_bias;   /* Δbias present (full diff's diff_b) */
    int rank;       /* 0 when the network has none (full, unfactored LoKr) */
    float alpha;    /* as stored; 0 when absent */
    double scale;   /* included in lf_lora_delta's output */
    int64_t numel;  /* of ΔW: the target's element count */
} lf_lora_layer_t;

typedef struct lf_lora lf_lora_t;

/* Opens the LoRA at path against targets (borrowed; must outlive *out). On
 * success *out is a new object (caller owns). Errors: LF_EIO / LF_EFORMAT /
 * LF_EUNSUPPORTED / LF_ENOMEM from reading the file, LF_EFORMAT for bad
 * content, LF_EUNSUPPORTED for DoRA; err names the file and the tensor.
 * *out is untouched on failure. */
int lf_lora_open(lf_lora_t **out, const char *path, const lf_lora_targets_t *targets, char *err,
                 size_t errlen);
void lf_lora_destroy(lf_lora_t **self_p);

const char *lf_lora_path(const lf_lora_t *self);
/* Layers in the order of the file's (sorted) tensor names. */
size_t lf_lora_count(const lf_lora_t *self);
const lf_lora_layer_t *lf_lora_at(const lf_lora_t *self, size_t i);
/* The layer for a target pool name ("unet.….weight"), or NULL. */
const lf_lora_layer_t *lf_lora_find(const lf_lora_t *self, const char *target_name);

/* Tensors that were not used: full tensor names with why ("no such layer",
 * "unsupported tensor kind"), in name order. Borrowed. */
size_t lf_lora_unmatched_count(const lf_lora_t *self);
const char *lf_lora_unmatched_name(const lf_lora_t *self, size_t i);
const char *lf_lora_unmatched_reason(const lf_lora_t *self, size_t i);

/* Writes layer i's ΔW (layer->numel floats, the target's shape, row-major,
 * scale included) into dst. 0, LF_ENOMEM, LF_EINVAL (no ΔW in this layer),
 * LF_EFORMAT (the product overflows to Inf; err names file and module). */
int lf_lora_delta(const lf_lora_t *self, size_t i, float *dst, char *err, size_t errlen);
/* For a plain low-rank layer (kind LORA without Tucker core): the factors
 * with the scale folded into up, so that ΔW = up · down, for a caller that
 * multiplies them where the weights live (a backend GEMM) instead of
 * materialising ΔW on the host. up: target->shape[0] x rank floats, down:
 * rank x (numel / shape[0]) floats, row-major. 0, LF_EINVAL (another kind),
 * LF_ENOMEM. */
int lf_lora_lowrank(const lf_lora_t *self, size_t i, float *up, float *down);

/* The same for the bias delta (target->shape[0] floats) of a layer with
 * has_bias. */
int lf_lora_delta_bias(const lf_lora_t *self, size_t i, float *dst, char *err, size_t errlen);

#endif
