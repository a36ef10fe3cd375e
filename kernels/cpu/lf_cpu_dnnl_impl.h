/* lf_cpu_dnnl_impl: what the two files that speak to oneDNN share —
 * lf_cpu_dnnl.c (the primitive cache, pre-packed weights, the GEMM and
 * blocked convolutions, matmuls) and lf_cpu_wino.c (f32 3x3 convolutions as
 * Winograd in row strips). Nothing outside them includes it.
 *
 * Threading: a backend's lf__cpu_dnnl_t is used by one thread at a time
 * (its engine's), as the CPU backend is; the shared buffers in it (scratch,
 * blk) belong to the call running. */
#ifndef LF_CPU_DNNL_IMPL_H
#define LF_CPU_DNNL_IMPL_H

#include <oneapi/dnnl/dnnl.h>

#include "lf_cpu_impl.h"

#define LF__DNNL_CACHE 128

/* The operands of a convolution with reorders around it (e->reorder[],
 * e->user[], d->blk[]): source, weights, destination. */
enum { LF__DNNL_SRC, LF__DNNL_WEI, LF__DNNL_DST };

/* Which f32 3x3 convolutions run as Winograd (LF_CPU_CONV_ALGO,
 * lf_cpu_wino.c): auto (by shape), gemm (none), wino (wherever oneDNN has
 * the kernel). */
enum { LF__DNNL_ALGO_AUTO, LF__DNNL_ALGO_GEMM, LF__DNNL_ALGO_WINO };

typedef struct lf__cpu_wino lf__cpu_wino_t;

/* One cached primitive and the memory objects it runs with. */
typedef struct {
    int64_t key[12]; /* kind (1 conv, 2 matmul), compute type, shape */
    bool refused;    /* oneDNN has no fast kernel for this key: the caller's fallback runs */
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst, scratch;
    /* Blocked convolutions: reorder of src, weights (ours -> the primitive's)
     * and dst (the primitive's -> ours), and the memory in our layout; NULL
     * where the layouts are the same. */
    dnnl_primitive_t reorder[3];
    dnnl_memory_t user[3];
    /* The primitive's weights layout and ours (plain, compute type). */
    dnnl_memory_desc_t wmd, wplain;
    bool bias_post; /* the bias is a binary add post-op's operand */
    /* Fused post-ops (lf_node_t.post_act, the residual): whether they are
     * the primitive's, and the residual's memory and post-op index. */
    bool post;
    dnnl_memory_t res;
    int res_idx;
    lf__cpu_wino_t *wino; /* owned; non-NULL: a Winograd convolution run in row strips (lf__cpu_wino_run) */
} lf__cpu_dnnl_entry_t;

/* The post-ops of one primitive, in this order: a binary add of a per-row
 * bias (bias1), SiLU (oneDNN's swish with alpha 1), a binary add of a
 * residual (res). NULL / false: absent. */
typedef struct {
    const dnnl_memory_desc_t *bias1;
    bool silu;
    const dnnl_memory_desc_t *res;
} lf__cpu_dnnl_post_t;

struct lf__cpu_dnnl_packed; /* one pre-packed weight (lf_cpu_dnnl.c) */

struct lf__cpu_dnnl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    lf__cpu_dnnl_entry_t cache[LF__DNNL_CACHE];
    int n, next_evict;
    void *scratch; /* owned; shared by every primitive (one stream, one call at a time) */
    size_t scratch_size;
    void *blk[3]; /* owned; blocked src, weights and dst of the convolution running */
    size_t blk_size[3];
    int blocked; /* S_BLOCKED_* (lf_cpu_dnnl.c): which convolutions run in oneDNN's blocked layouts */
    int act;     /* S_ACT_* (lf_cpu_dnnl.c): their activations' layout (LF_CPU_CONV_ACT) */
    /* Winograd's settings (lf__cpu_wino_init). */
    int algo;                /* LF__DNNL_ALGO_*: which f32 3x3 convolutions run as Winograd (LF_CPU_CONV_ALGO) */
    size_t wino_strip_bytes; /* the strip's bytes (LF_CPU_WINO_STRIP_KB) */
    bool wino_own;           /* our Winograd weight transform (LF_CPU_WINO_WEIGHTS=onednn: oneDNN's reorder) */
    bool wino_wide;          /* weights over the tile budget in output-channel chunks (LF_CPU_WINO_WIDE=0: not taken) */
    size_t wino_chunk_bytes; /* that budget: one primitive's weight tiles (LF_CPU_WINO_CHUNK_KB) */
    bool wino_batch;         /* whole images batched into one call (LF_CPU_WINO_BATCH=1; default one image per call) */
    int64_t wino_min_pixels; /* the output pixels per call auto takes from (LF_CPU_WINO_MIN_PIXELS) */
    bool wino_avx512;        /* our weight transform's AVX-512 form (the CPU has it) */
    lf__cpu_pool_t *pool;    /* borrowed (lf__cpu_dnnl_set_pool); NULL: our weight transform on the caller alone */
    /* oneDNN runs on OpenMP (Debian's build), whose team is every core by
     * default: omp_set_num_threads (looked up in the libgomp oneDNN loaded)
     * gives it the backend's count on the calling thread before each run. */
    void (*omp_set_num_threads)(int);
    int n_threads;
    lf__cpu_pack_t store; /* where packed copies live; mode off: none are made */
    struct lf__cpu_dnnl_packed *packed; /* owned */
    int n_packed, cap_packed;
    size_t packed_bytes;
    /* f32 copies of 16-bit weights: the bytes they may take in all
     * (LF_CPU_PACK_F32 in MiB; default a quarter of the machine's memory)
     * and the bytes they take. */
    size_t widen_cap, widened;
    struct lf_profile *prof; /* borrowed; NULL: no parts reported (lf__cpu_dnnl_set_profile) */
};

/* ---- lf_cpu_dnnl.c, for lf_cpu_wino.c ---- */
/* *buf grown to at least size bytes, 64-byte aligned (as oneDNN's own
 * buffers are); contents not kept. 0 or LF_ENOMEM (then *buf as it was). */
int lf__cpu_dnnl_grow(void **buf, size_t *cap, size_t size);
/* The primitive descriptor of op_desc with our scratchpad mode and post's
 * post-ops (NULL: none) into *pd (caller owns); LF_EUNSUPPORTED where
 * oneDNN has only its reference kernel. */
int lf__cpu_dnnl_pd(lf__cpu_dnnl_t *d, const void *op_desc, const lf__cpu_dnnl_post_t *post,
                    dnnl_primitive_desc_t *pd);
/* e's primitive and scratchpad memory from pd (taken, destroyed), and the
 * shared scratchpad grown to its need. */
int lf__cpu_dnnl_finish(lf__cpu_dnnl_t *d, dnnl_primitive_desc_t pd, lf__cpu_dnnl_entry_t *e);
/* e's memory objects (no data yet) for the primitive's operands; post: the
 * post-ops it was made with (its residual's memory). */
int lf__cpu_dnnl_memories(lf__cpu_dnnl_t *d, lf__cpu_dnnl_entry_t *e, const dnnl_memory_desc_t *src_md,
                          const dnnl_memory_desc_t *w_md, const dnnl_memory_desc_t *b_md,
                          const dnnl_memory_desc_t *dst_md, const lf__cpu_dnnl_post_t *post);
/* Seconds now (CLOCK_MONOTONIC). */
double lf__cpu_dnnl_now(void);
/* With a profile attached: the seconds since *t reported as part of the
 * node running (lf_profile_add_part), and *t set to now; else nothing. */
void lf__cpu_dnnl_part(lf__cpu_dnnl_t *d, const char *part, double *t);
/* Everything e owns destroyed, e zeroed. */
void lf__cpu_dnnl_entry_free(lf__cpu_dnnl_entry_t *e);

/* ---- lf_cpu_wino.c ---- */
/* d's Winograd settings from the environment (LF_CPU_CONV_ALGO,
 * LF_CPU_WINO_STRIP_KB, LF_CPU_WINO_WEIGHTS). */
void lf__cpu_wino_init(lf__cpu_dnnl_t *d);
/* Whether n (computed in ct) runs as Winograd. */
bool lf__cpu_wino_wanted(const lf__cpu_dnnl_t *d, lf_type_t ct, const lf_node_t *n);
/* e as n's Winograd convolution (post: its post-ops; the SiLU oneDNN's
 * Winograd lacks makes it refuse). 0, or an error with e freed. */
int lf__cpu_wino_create(lf__cpu_dnnl_t *d, const lf_node_t *n, const lf__cpu_dnnl_post_t *post,
                        lf__cpu_dnnl_entry_t *e);
/* e's convolution of src with the weight wei (as its model holds it, or
 * made f32 OIHW by wei->make; transformed in this call), bias (or NULL)
 * into dst, strip by strip and output-channel chunk by chunk. */
int lf__cpu_wino_run(lf__cpu_dnnl_t *d, lf__cpu_dnnl_entry_t *e, const float *src, const lf__cpu_wsrc_t *wei,
                     const void *bias, float *dst);
/* Takes NULL; sets *w_p = NULL. */
void lf__cpu_wino_free(lf__cpu_wino_t **w_p);

#endif
