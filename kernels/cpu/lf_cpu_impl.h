/* lf_cpu_impl: internals shared by the files of the CPU backend. */
#ifndef LF_CPU_IMPL_H
#define LF_CPU_IMPL_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lf_backend_impl.h"

/* ---- thread pool (lf_cpu_threads.c) ----
 * run(ctx, task, thread) is called once per task in [0, n_tasks); the
 * calling thread takes part as thread 0. Not reentrant. */
typedef void (*lf__cpu_task_fn)(void *ctx, int64_t task, int thread);
typedef struct lf__cpu_pool lf__cpu_pool_t;
/* cpus: NULL, or n_threads distinct cores: helper thread i (i >= 1) runs on
 * cpus[i] only, and so does member i of the OpenMP team of each thread that
 * runs the pool (lf__cpu_pool_enter); thread 0, the caller, keeps its mask.
 * Caller owns; NULL on failure. */
lf__cpu_pool_t *lf__cpu_pool_new(int n_threads, const int *cpus);
/* Where a pool's runs execute. THREADS: its own helper threads, asleep on a
 * condition variable between runs. OMP: the calling thread's OpenMP team
 * (libgomp, loaded with oneDNN), the threads oneDNN's primitives run on, so
 * a process computes on n_threads threads instead of 2 n_threads - 1 that
 * take turns on the same cores; no helper threads are made. */
typedef enum { LF__CPU_POOL_THREADS, LF__CPU_POOL_OMP } lf__cpu_pool_kind_t;
/* As lf__cpu_pool_new, on kind's threads; OMP falls back to THREADS where
 * libgomp is not loaded (lf__cpu_pool_kind says which it got). */
lf__cpu_pool_t *lf__cpu_pool_new_kind(int n_threads, const int *cpus, lf__cpu_pool_kind_t kind);
lf__cpu_pool_kind_t lf__cpu_pool_kind(const lf__cpu_pool_t *pool);
/* Pure: the kind a backend asks for, from the values of LF_CPU_POOL,
 * OMP_WAIT_POLICY and GOMP_SPINCOUNT (each NULL when unset). LF_CPU_POOL
 * "threads" or "omp" wins (any other non-empty value: OMP); otherwise THREADS
 * where libgomp's team sleeps as soon as a region ends (OMP_WAIT_POLICY=
 * PASSIVE without a spin count, or GOMP_SPINCOUNT=0), OMP where it spins
 * first (libgomp's default, ACTIVE, or a spin count above 0: what workers on
 * cores of their own run, docs/PERFORMANCE.md session 13). */
lf__cpu_pool_kind_t lf__cpu_pool_default_kind(const char *pool, const char *wait_policy, const char *spincount);
void lf__cpu_pool_destroy(lf__cpu_pool_t **pool_p);
void lf__cpu_pool_run(lf__cpu_pool_t *pool, int64_t n_tasks, lf__cpu_task_fn fn, void *ctx);
int lf__cpu_pool_size(const lf__cpu_pool_t *pool);
/* Called before work that runs on OpenMP (oneDNN): pins the calling thread's
 * OpenMP team once per thread when the pool is pinned; otherwise nothing. */
void lf__cpu_pool_enter(lf__cpu_pool_t *pool);
/* Whether the pool is pinned; if so and cpus is not NULL, its n_threads
 * cores are copied there. */
bool lf__cpu_pool_pinned(const lf__cpu_pool_t *pool, int *cpus);
/* Pure: the first n_threads cores of allowed into cpus (thread i on
 * cpus[i]). LF_EINVAL when n_threads < 2 (nothing to pin) or the mask has
 * fewer cores than threads (pinning would stack threads on a core). */
int lf__cpu_pin_plan(const cpu_set_t *allowed, int n_threads, int *cpus);

/* ---- vector kernels chosen at run time (lf_cpu_simd.c) ---- */
typedef struct {
    /* x[i] = exp(x[i] - m) for i < n; returns the sum. */
    float (*exp_sum)(float *x, int64_t n, float m);
    /* max of x[0..n). */
    float (*max)(const float *x, int64_t n);
    /* y = x * sigmoid(x); y may be x. */
    void (*silu)(float *y, const float *x, int64_t n);
    /* y = gelu_erf(x) * (mul ? mul : 1); y may be x. */
    void (*gelu)(float *y, const float *x, const float *mul, int64_t n);
    /* *sum = sum of (x[i] - shift) over [0, n), *sq = sum of their squares
     * (f32 partials; a shift near the mean keeps the variance from the
     * cancellation of sq/n - (sum/n)^2). */
    void (*sum_sq)(const float *x, int64_t n, float shift, float *sum, float *sq);
    /* y = ((x - m) * a + c) * g + beta, g and beta per element (either may
     * be NULL: 1, 0); layer norm's output pass (m: the mean rounded to f32,
     * c: what that rounding left, times a). y may be x. */
    void (*norm)(float *y, const float *x, int64_t n, float m, float a, float c, const float *g, const float *beta);
    /* d[r * ldd + c] = s[c * lds + r] for r < rows, c < cols (d and s do
     * not overlap). */
    void (*transpose)(float *d, int64_t ldd, const float *s, int64_t lds, int64_t rows, int64_t cols);
    /* y = (x - m) * a + b, then SiLU when silu (group norm's one output
     * pass: the mean rounded to f32 taken off first, exactly where x is near
     * it, what that rounding left folded into b; folding all of the mean
     * into b would round at the mean's magnitude); y may be x. */
    void (*affine)(float *y, const float *x, int64_t n, float m, float a, float b, bool silu);
    /* One key tile of attention's online softmax with the queries along the
     * lanes (the f32 attention form): S is [keys][ld], lanes [0, n) used.
     * Per lane i: mnew = max(m[i], max_k S[k][i]); ref = mnew, or 0 where
     * mnew is -inf (all masked so far); S[k][i] = exp(S[k][i] - ref), exactly
     * 0 for -inf; corr[i] = exp(m[i] - ref); l[i] = l[i] corr[i] + sum_k
     * S[k][i]; m[i] = mnew. */
    void (*softmax_lanes)(float *S, int64_t keys, int64_t ld, int64_t n, float *m, float *l, float *corr);
    /* d[i] = x[i] rounded to bf16, for i < n, on the calling thread, with
     * the bytes lf__cpu_to_bf16 writes (lf__cpu_simd_bf16 sets it): a norm
     * storing a bf16 result for the products that read it. */
    void (*to_bf16)(uint16_t *d, const float *x, int64_t n);
    /* norm and affine storing bf16 (to_bf16's rounding of the f32 values
     * norm and affine compute) in their one pass; NULL where the vector
     * level is below AVX-512 or the CPU lacks AVX512_BF16 (then norm or
     * affine into f32 scratch, then to_bf16). */
    void (*norm_bf16)(uint16_t *y, const float *x, int64_t n, float m, float a, float c, const float *g,
                      const float *beta);
    void (*affine_bf16)(uint16_t *y, const float *x, int64_t n, float m, float a, float b, bool silu);
    const char *name; /* "avx512", "avx2", "scalar" */
} lf__cpu_simd_t;
void lf__cpu_simd_init(lf__cpu_simd_t *simd, bool avx512, bool avx2);
/* Sets simd->to_bf16: VCVTNEPS2BF16 with avx512_bf16, as lf__cpu_to_bf16. */
void lf__cpu_simd_bf16(lf__cpu_simd_t *simd, bool avx512_bf16);

/* Converts n elements of type to bf16 (round to nearest even), on the
 * pool's threads; AVX512_BF16 when the CPU has it. */
void lf__cpu_to_bf16(lf__cpu_pool_t *pool, bool avx512_bf16, lf_type_t type, const void *src,
                     uint16_t *dst, int64_t n);
/* Widens n elements of type to f32 on the pool's threads (a weight stored
 * f16 converted for an f32 product). */
void lf__cpu_to_f32(lf__cpu_pool_t *pool, lf_type_t type, const void *src, float *dst, int64_t n);

/* ---- storage of pre-packed weights (lf_cpu_packstore.c) ---- */
typedef struct {
    lf_pack_t mode; /* in effect: off, memory or file */
    int fd;         /* LF_PACK_FILE: the unlinked file; -1 otherwise */
    int64_t end;    /* bytes of the file handed out */
    int live;       /* copies allocated and not freed */
} lf__cpu_pack_t;
void lf__cpu_pack_init(lf__cpu_pack_t *s, lf_pack_t mode);
/* Switches to mode (no copy may be live); LF_PACK_FILE opens an unlinked
 * file in dir and falls back to LF_PACK_OFF where it cannot (no such
 * directory, tmpfs). Returns the mode in effect. */
lf_pack_t lf__cpu_pack_set(lf__cpu_pack_t *s, lf_pack_t mode, const char *dir);
void lf__cpu_pack_close(lf__cpu_pack_t *s);
/* Room for bytes (page-aligned, zeroed), with its file offset in *off (-1:
 * anonymous); NULL when the mode is off, or out of memory or disk. */
void *lf__cpu_pack_alloc(lf__cpu_pack_t *s, size_t bytes, int64_t *off);
void lf__cpu_pack_free(lf__cpu_pack_t *s, void *p, size_t bytes, int64_t off);
/* Gives back the resident pages of a file-backed copy (read again from the
 * file at its next use); returns the bytes given back (0: anonymous). */
size_t lf__cpu_pack_drop(const lf__cpu_pack_t *s, void *p, size_t bytes, int64_t off);

/* ---- oneDNN convolution and matmul (lf_cpu_dnnl.c and lf_cpu_wino.c, only with LF_HAVE_DNNL) ---- */
typedef struct lf__cpu_dnnl lf__cpu_dnnl_t;
/* A weight operand: t as the model holds it, and make(arg), which returns
 * it in the compute type and plain layout (OIHW / [out, in]; converted into
 * the backend's workspace when t is of another type), or NULL on out of
 * memory. oneDNN takes a pre-packed copy instead where it keeps one. */
typedef struct {
    const lf_tensor_t *t;
    const void *(*make)(void *arg);
    void *arg;
} lf__cpu_wsrc_t;
/* One matrix product c[M][N] (row stride ldc, f32) = a[M][K] (row stride
 * lda) . w[N][K]^T (contiguous; w_kn: w[K][N], contiguous) + bias[N]
 * (bias_m: bias[M]; NULL: none); a and w hold ct (f32 or bf16) elements,
 * accumulation is f32. Post-ops, when asked: SiLU (silu), then + res[M][N]
 * (row stride ldr, f32; NULL: none). */
typedef struct {
    int64_t M, N, K, lda, ldc;
    bool w_kn, bias_m;
    lf_type_t ct;
    const void *a, *w;
    const float *bias;
    float *c;
    bool silu;
    const float *res;
    int64_t ldr;
    /* Non-NULL: w is this resident weight ([out, in]; w itself may be NULL
     * then, made on demand or taken pre-packed). */
    const lf__cpu_wsrc_t *wsrc;
} lf__cpu_mm_t;
#ifdef LF_HAVE_DNNL
/* Runs its primitives on n_threads OpenMP threads. */
lf__cpu_dnnl_t *lf__cpu_dnnl_new(int n_threads);
void lf__cpu_dnnl_destroy(lf__cpu_dnnl_t **d_p);
/* CONV2D shapes and strides it takes (x f32 or bf16 contiguous, w contiguous of any
 * type: the caller converts both to the compute type). */
bool lf__cpu_dnnl_supports(const lf_node_t *n);
/* The pool the Winograd weight transform runs on (borrowed; the backend's). */
void lf__cpu_dnnl_set_pool(lf__cpu_dnnl_t *d, lf__cpu_pool_t *pool);
/* The profile attached to the backend (borrowed; NULL: none): convolutions
 * report the time of their conversions and layout reorders into it as parts
 * of the node ("convert src", "reorder src", "reorder wei", "reorder dst",
 * "wino weights"; lf_profile_add_part). */
void lf__cpu_dnnl_set_profile(lf__cpu_dnnl_t *d, struct lf_profile *prof);
/* Whether a bf16 job runs n as f32 Winograd (LF_CPU_CONV_ALGO): at those
 * shapes (>= 32x32 output pixels per call, weight tiles unchunked) it is
 * faster than oneDNN's bf16 convolutions, and rounds less. */
bool lf__cpu_dnnl_wino(const lf__cpu_dnnl_t *d, const lf_node_t *n);
/* n's convolution with x (x->make: n's source in compute type ct) and the
 * weight w (n's shapes), bias and dst as in n. 0, or an error after which
 * the caller falls back to im2col. *post_done: n's post-ops (post_act,
 * src[3]) were applied too; else the caller applies them. */
int lf__cpu_dnnl_conv(lf__cpu_dnnl_t *d, const lf_node_t *n, lf_type_t ct, const lf__cpu_wsrc_t *x,
                      const lf__cpu_wsrc_t *w, bool *post_done);
/* 0, or an error after which the caller falls back to OpenBLAS.
 * *post_done: m's post-ops (silu, res) were applied; else the caller's. */
int lf__cpu_dnnl_matmul(lf__cpu_dnnl_t *d, const lf__cpu_mm_t *m, bool *post_done);
/* w in compute type ct, plain layout: the pre-packed copy (made now on
 * first use) where oneDNN keeps one, else w->make's; NULL on failure. */
const void *lf__cpu_dnnl_plain(lf__cpu_dnnl_t *d, const lf__cpu_wsrc_t *w, lf_type_t ct);
/* Drops the pre-packed copies of weights overlapping [p, p + n) (p NULL:
 * all of them). */
void lf__cpu_dnnl_forget(lf__cpu_dnnl_t *d, const void *p, size_t n);
/* w is about to be read from its own bytes in compute type ct (an f32
 * product of an f16 weight): its copies packed for another type go, or the
 * weight would count twice in RSS (its file pages read back beside them). */
void lf__cpu_dnnl_release(lf__cpu_dnnl_t *d, const lf_tensor_t *w, lf_type_t ct);
/* Bytes held in pre-packed weights, and their count. */
size_t lf__cpu_dnnl_packed_bytes(const lf__cpu_dnnl_t *d, int *count);
/* Where copies are kept from now on (every copy is dropped first); returns
 * the mode in effect (lf_backend_set_pack). */
lf_pack_t lf__cpu_dnnl_set_pack(lf__cpu_dnnl_t *d, lf_pack_t mode, const char *dir);
lf_pack_t lf__cpu_dnnl_pack(const lf__cpu_dnnl_t *d);
/* The weights at [p, p + n) are idle (lf_backend_release): file-backed
 * copies of them give back their pages; anonymous ones stay unless
 * switched_out, then they are dropped. Returns the bytes given back. */
size_t lf__cpu_dnnl_release_pages(lf__cpu_dnnl_t *d, const void *p, size_t n, bool switched_out);
#endif

/* ---- backend context ---- */
typedef void (*lf__sbgemm_fn)(int order, int transa, int transb, int m, int n, int k, float alpha,
                              const uint16_t *a, int lda, const uint16_t *b, int ldb, float beta,
                              float *c, int ldc);
typedef struct {
    lf__cpu_pool_t *pool;
    int n_threads;
    bool has_avx2, has_avx512, has_avx512_bf16;
    lf__cpu_simd_t simd;
    /* cblas_sbgemm when the OpenBLAS in use exports it (looked up at run
     * time: Debian 12's 0.3.21 build has no bfloat16 support) and the CPU
     * has AVX512_BF16; NULL otherwise. */
    lf__sbgemm_fn sbgemm;
    /* oneDNN for CONV2D when built with it (LF_CPU_CONV=im2col turns it off). */
    lf__cpu_dnnl_t *dnnl;
    /* f32 MATMUL through oneDNN instead of OpenBLAS (LF_CPU_MATMUL=blas|dnnl;
     * the default is what bench_kernels measured faster). */
    bool mm_dnnl;
    /* Post-ops fused into oneDNN primitives (a 1x1 convolution's bias) and
     * graph nodes fused by lf_graph's pass (SiLU, a residual add: the
     * backend's supports_fused); LF_CPU_FUSE=0 runs them as passes after
     * and leaves graphs unfused (comparisons); LF_CPU_FUSE=bias keeps the
     * bias post-op and leaves graphs unfused (fuse_graph false). */
    bool fuse, fuse_graph;
    /* Set by a MATMUL / CONV2D kernel that applied the node's post-ops
     * itself; else lf_cpu_gemm.c applies them after (s_post_pass). */
    bool post_done;
    /* MATMUL / CONV2D one image per call where the node knows its batch
     * (lf_node_t.images): batch-invariant bytes, at a cost on small
     * products (docs/PERFORMANCE.md). On with LF_CPU_PER_IMAGE=1 (a worker
     * with LF_BATCH_MAX > 1 sets it), off otherwise. */
    bool per_image;
    /* Compute type of MATMUL and CONV2D: LF_TYPE_BF16 (bf16 operands, f32
     * accumulation and results; needs oneDNN and AVX512_BF16) or
     * LF_TYPE_F32, the reference. Set by lf_backend_set_precision. */
    lf_type_t compute;
    /* Under the bf16 compute type, a norm read only by products that would
     * convert its result to bf16 writes bf16 itself (lf_graph's
     * bf16-activation pass, asked through lf__cpu_reads_bf16) with
     * unless LF_CPU_BF16_ACT=0 (docs/PERFORMANCE.md, session 13: same
     * bytes, the 2-thread bf16 step 0.955x). */
    bool bf16_act;
    /* ATTENTION under the bf16 compute type: bf16 products (on unless
     * LF_CPU_ATTN=f32), with VDPBF16PS when the CPU has it and the vector
     * level is not capped below AVX-512 (LF_CPU_SIMD), else in scalar C. */
    bool attn_bf16, attn_dpbf16;
    /* ATTENTION under the f32 compute type: two sgemm calls per tile (the
     * default) or the register-blocked kernel (LF_CPU_ATTN=blocked). */
    bool attn_sgemm;
    /* Per-thread scratch, grown on first use and then reused, so nothing is
     * allocated once a graph has run once. */
    float *scratch[64];
    size_t scratch_size[64];
    /* Shared scratch for GEMM operand conversion and im2col. */
    void *work;
    size_t work_size;
} lf__cpu_ctx_t;

/* Scratch of at least n floats for thread t; NULL on out of memory. */
float *lf__cpu_scratch(lf__cpu_ctx_t *c, int t, size_t n);
void *lf__cpu_work(lf__cpu_ctx_t *c, size_t bytes);
void lf__cpu_blas_threads(lf__cpu_ctx_t *c, int n);

/* The backend's reads_bf16 (lf_cpu_gemm.c): whether MATMUL / CONV2D node,
 * as the kernels would run it now, converts its src[j] to bf16 (j 0, under
 * the bf16 compute type, through oneDNN, not a product kept f32). */
bool lf__cpu_reads_bf16(lf_backend_t *be, const lf_node_t *node, int j);

/* ---- block-quantized weights (lf_cpu_quant.c) ----
 * Whether node, which has a block-type operand, is one the CPU runs
 * (MATMUL's weight b; CPY to/from the plain types), and MATMUL on one. */
bool lf__cpu_quant_supports(const lf_node_t *n);
int lf__cpu_matmul_quant(lf_backend_t *be, const lf_node_t *node);

/* ---- ADD_LOWRANK (lf_cpu_lowrank.c): the types and layouts it takes ---- */
bool lf__cpu_lowrank_supports(const lf_node_t *n);

/* ---- op implementations ---- */
#define LF__CPU_OP_DECL(name, nsrc) int lf__cpu_op_##name(lf_backend_t *be, const lf_node_t *node);
LF_OP_LIST(LF__CPU_OP_DECL)
#undef LF__CPU_OP_DECL

#endif
