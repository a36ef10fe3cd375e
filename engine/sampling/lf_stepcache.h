/* lf_stepcache: the per-request state of step caching — skipping most of the
 * denoiser on steps where its result barely changes — and its decisions.
 * Two kinds:
 *
 *  - First-block cache (FBCache, WaveSpeed / ParaAttention): the network runs
 *    its first block(s) and hands the first block's residual r (output minus
 *    input, the whole batch: cond and uncond rows together) to
 *    lf_stepcache_fb_check. When the relative L1 distance
 *    mean|r_prev - r| / mean|r_prev| to the residual of the last FULL
 *    evaluation is below the threshold, the network skips its remaining
 *    blocks and adds the cached residual of those blocks (from the last full
 *    evaluation, per batch row) to the first block's output; otherwise it
 *    runs them and stores their residual (lf_stepcache_fb_rest). One decision
 *    per evaluation for the whole batch, as WaveSpeed's. Any network whose
 *    forward is "first block, remaining blocks, head" plugs in: a UNet
 *    (first block = conv_in + the first down resnet/attention, ComfyUI's
 *    input_blocks 0-1, as WaveSpeed's UNet variant) or a DiT (the first
 *    transformer block).
 *  - DeepCache (Ma et al. 2023): every `interval` steps a full evaluation
 *    keeps the deep feature (the up path's input at branch `depth`, see
 *    lf_unet.h); the steps between recompute only the shallow blocks and
 *    take the deep feature from the cache.
 *
 * The warm-up / cool-down window: the first `start` and the last `end`
 * sampler steps of a sampling pass always run the full network. The pipeline
 * says which step an evaluation belongs to (lf_stepcache_begin); a change of
 * network or of shape (the refiner, another batch) starts over.
 *
 * Pure logic and host buffers: no graphs, no I/O. One thread at a time. */
#ifndef LF_STEPCACHE_H
#define LF_STEPCACHE_H

#include <stddef.h>

typedef enum {
    LF_STEPCACHE_NONE = 0,
    LF_STEPCACHE_FBCACHE,
    LF_STEPCACHE_DEEPCACHE,
    LF_STEPCACHE_KIND_COUNT
} lf_stepcache_kind_t;

/* Per-request options (plain data). */
typedef struct {
    lf_stepcache_kind_t kind;
    float threshold; /* FBCache: reuse when the relative L1 is below (0 = never) */
    int start;       /* the first `start` steps always run in full */
    int end;         /* the last `end` steps always run in full */
    int interval;    /* DeepCache: a full evaluation every `interval` steps (1 = always) */
    int depth;       /* DeepCache: the branch (lf_unet.h); beyond the network's deepest = deepest */
} lf_stepcache_opts_t;

/* Limits the API checks (lf_params) and lf_stepcache_new enforces. */
#define LF_STEPCACHE_MAX_THRESHOLD 1.0f
#define LF_STEPCACHE_MAX_WINDOW 1000
#define LF_STEPCACHE_MAX_INTERVAL 100
#define LF_STEPCACHE_MAX_DEPTH 63

typedef struct lf_stepcache lf_stepcache_t;

/* "none", "fbcache", "deepcache" (NULL for other values). */
const char *lf_stepcache_kind_name(lf_stepcache_kind_t kind);
/* Name -> kind (case-insensitive); 0 or LF_EINVAL. */
int lf_stepcache_kind_parse(const char *name, lf_stepcache_kind_t *out);
/* 0 when the options are in range (kind valid, 0 <= threshold <= 1, window
 * 0..1000, interval 1..100, depth 0..63), else LF_EINVAL and the field's name
 * in *field (borrowed). */
int lf_stepcache_opts_check(const lf_stepcache_opts_t *o, const char **field);

/* Caller owns; NULL on bad options or out of memory. */
lf_stepcache_t *lf_stepcache_new(const lf_stepcache_opts_t *o);
void lf_stepcache_destroy(lf_stepcache_t **self_p);
const lf_stepcache_opts_t *lf_stepcache_opts(const lf_stepcache_t *self);

/* Before each denoiser evaluation: the sampler step (0-based) of a pass of
 * `steps` steps it belongs to. */
void lf_stepcache_begin(lf_stepcache_t *self, int step, int steps);
/* Forgets every cached tensor (a new sampling pass); counters stay. */
void lf_stepcache_reset(lf_stepcache_t *self);

/* mean|a - b| / mean|a| over n floats (a: the reference); +inf when
 * mean|a| is 0 and they differ, 0 when both are 0. */
double lf_stepcache_rel_l1(const float *a, const float *b, size_t n);

/* FBCache. r: this evaluation's first-block residual (n floats) from network
 * `owner` (any stable pointer naming the network); n_rest: the floats of the
 * remaining blocks' residual. Returns 1 when the remaining blocks may be
 * skipped (add lf_stepcache_fb_rest to the first block's output), 0 when
 * they must run: r is then kept as the new reference and the caller writes
 * the remaining blocks' residual into lf_stepcache_fb_rest and calls
 * lf_stepcache_fb_stored. Negative LF_ENOMEM. */
int lf_stepcache_fb_check(lf_stepcache_t *self, const void *owner, const float *r, size_t n,
                          size_t n_rest);
/* The remaining blocks' residual buffer (n_rest floats of the last check);
 * borrowed, valid until the next check. */
float *lf_stepcache_fb_rest(lf_stepcache_t *self);
void lf_stepcache_fb_stored(lf_stepcache_t *self);

/* DeepCache: 1 when this evaluation may reuse the deep feature (n floats
 * from network `owner`, kept by an earlier full evaluation of this pass),
 * 0 when it must run in full and store it. */
int lf_stepcache_dc_reuse(const lf_stepcache_t *self, const void *owner, size_t n);
/* The deep feature buffer for n floats of `owner` (reallocated, and
 * marked empty, when they change); borrowed. NULL on out of memory. */
float *lf_stepcache_dc_feature(lf_stepcache_t *self, const void *owner, size_t n);
void lf_stepcache_dc_stored(lf_stepcache_t *self);

/* Counts one evaluation: full (1) or with the cached part reused (0). */
void lf_stepcache_count(lf_stepcache_t *self, int full);
/* Evaluations counted so far. */
int lf_stepcache_full(const lf_stepcache_t *self);
int lf_stepcache_reused(const lf_stepcache_t *self);

#endif
