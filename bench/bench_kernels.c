/* bench_kernels: the compute engine's hot ops at real SD1.5 UNet shapes,
 * each beside cblas_sgemm of the same FLOPs measured in the same run.
 *
 *   matmul     lf_op_matmul vs cblas_sgemm of the same shape
 *   conv2d     3x3 at 64x64x320 and 8x8x1280 (im2col + sgemm) vs the sgemm of
 *              its implicit GEMM shape; oneDNN beside it when built with it
 *   attention  fused, 8 heads, 4096 tokens x 40 and 1024 x 80 (and 256 x 160,
 *              SDXL's 4096 x 64, Flux's 1536 x 128) vs the time of its two
 *              matrix products (Q K^T and P V) done with full N x N scores;
 *              the f32 op's sgemm form (LF_CPU_ATTN=sgemm) and the bf16
 *              form (bf16 compute type) beside the f32 one; the
 *              op's memory is shown in bytes
 *
 * Usage: bench_kernels [--quick] [--reps R] [--threads N] [--cputime]
 *                      [--only matmul|conv|attention|rowwise|graph|fuse|convalgo|convalgo-unet].
 *   fuse       a residual ADD after a product vs the product's post-op
 *              (lf_graph's fusion pass), f32 and bf16 compute.
 *   convalgo   (only when named) f32 3x3 convolutions with f16 weights at
 *              the SD1.5 VAE decoder's shapes and the UNet's 64x64 / 32x32
 *              / 16x16 (batch 2): LF_CPU_CONV_ALGO=gemm beside the default
 *              (oneDNN Winograd where the output has >= 32x32 pixels per
 *              call, LF_CPU_WINO_MIN_PIXELS; its weight transform in each
 *              call, wide weights in output-channel chunks).
 * Figures are best-of-R wall times; the machine may be shared, so run it
 * twice. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf_backend.h"
#include "lf_graph.h"
#include "lf_ops.h"

#ifdef LF_BENCH_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

/* --cputime (with --threads 1): the calling thread's CPU time instead of wall
 * time, so a shared, loaded machine still compares kernels fairly. */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double s_now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int g_reps = 7;

static float *s_rand(size_t n) {
    float *p = malloc(n * sizeof *p);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (float)((x >> 8) & 0xFFFF) / 65536.0f - 0.5f;
    }
    return p;
}

typedef void (*s_fn)(void *ctx);

/* Interleaves n candidates for g_reps rounds after one warm-up each and
 * keeps each one's best time: on a shared machine the best is the run the
 * others disturbed least, and interleaving gives each the same chances. */
static void s_time_n(int n, s_fn *fns, void **ctxs, double *best) {
    for (int i = 0; i < n; i++) fns[i](ctxs[i]), best[i] = 1e30;
    for (int r = 0; r < g_reps; r++)
        for (int i = 0; i < n; i++) {
            double t0 = s_now();
            fns[i](ctxs[i]);
            double t = s_now() - t0;
            if (t < best[i]) best[i] = t;
        }
}

typedef struct {
    int M, N, K;
    const float *a, *b;
    float *c;
} s_gemm_t;

/* C[M][N] = A[M][K] . B[N][K]^T, the layout lf_op_matmul computes. */
static void s_sgemm(void *p) {
    s_gemm_t *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->M, g->N, g->K, 1.0f, g->a, g->K, g->b, g->K,
                0.0f, g->c, g->N);
}

/* The im2col GEMM: Y[Co][P] = W[Co][K] . Col[K][P]. */
static void s_sgemm_nn(void *p) {
    s_gemm_t *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->M, g->N, g->K, 1.0f, g->a, g->K, g->b, g->N,
                0.0f, g->c, g->N);
}

typedef struct {
    lf_backend_t *be;
    lf_node_t node;
} s_op_t;

static void s_run_op(void *p) {
    s_op_t *o = p;
    if (lf_op_run(o->be, &o->node) != 0) {
        fprintf(stderr, "op %s failed: %s\n", lf_op_name(o->node.op), lf_backend_errstr(o->be));
        exit(1);
    }
}

/* The backends compared: the default (oneDNN for linear layers when built
 * with it), OpenBLAS for linear layers (LF_CPU_MATMUL=blas), and the
 * default with bf16 compute (NULL where the CPU has none). */
typedef struct {
    lf_backend_t *be, *blas, *bf16;
} s_backends_t;

/* The same weights stored as f16, as checkpoints hold them (caller frees). */
static lf_tensor_t s_as_f16(const lf_tensor_t *t) {
    int64_t n = lf_tensor_nelements(t);
    uint16_t *h = malloc((size_t)n * 2);
    lf_type_from_f32(LF_TYPE_F16, t->data, h, n);
    lf_tensor_t r = *t;
    r.type = LF_TYPE_F16, r.data = h;
    for (int i = 0; i < LF_MAX_DIMS; i++) r.nb[i] = t->nb[i] / 2;
    return r;
}

static void s_bench_matmul(const s_backends_t *bs, int M, int N, int K) {
    float *a = s_rand((size_t)M * K), *b = s_rand((size_t)N * K), *c = malloc((size_t)M * N * 4);
    lf_tensor_t ta = lf_tensor_4d(LF_TYPE_F32, K, M, 1, 1, a), tb = lf_tensor_4d(LF_TYPE_F32, K, N, 1, 1, b);
    lf_tensor_t tbh = s_as_f16(&tb), tbb = tb;
    uint16_t *bb = malloc((size_t)N * K * 2);
    lf_type_from_f32(LF_TYPE_BF16, b, bb, (int64_t)N * K);
    tbb.type = LF_TYPE_BF16, tbb.data = bb;
    for (int i = 0; i < LF_MAX_DIMS; i++) tbb.nb[i] = tb.nb[i] / 2;
    lf_tensor_t tc = lf_tensor_4d(LF_TYPE_F32, N, M, 1, 1, c);
    /* sgemm; lf f32 (default, OpenBLAS) f32 weights; lf f32 f16 weights
     * (default, OpenBLAS); lf bf16 with f16 and bf16 weights. */
    const lf_tensor_t *ws[6] = {NULL, &tb, &tb, &tbh, &tbh, &tbh};
    lf_backend_t *bes[6] = {NULL, bs->be, bs->blas, bs->be, bs->blas, bs->bf16};
    const char *names[8] = {"sgemm", "lf f32 w32", "blas f32 w32", "lf f32 w16", "blas f32 w16", "lf bf16 w16",
                            "lf bf16 wbf16"};
    s_op_t op[7];
    s_gemm_t g = {M, N, K, a, b, c};
    s_fn fns[7] = {s_sgemm};
    void *ctxs[7] = {&g};
    int n = 1;
    for (int i = 1; i < 7; i++) {
        lf_backend_t *be = i == 6 ? bs->bf16 : bes[i];
        if (!be) continue;
        op[i] = (s_op_t){.be = be};
        op[i].node.op = LF_OP_MATMUL, op[i].node.dst = &tc, op[i].node.src[0] = &ta;
        op[i].node.src[1] = i == 6 ? &tbb : ws[i];
        fns[n] = s_run_op, ctxs[n] = &op[i], names[n] = names[i], n++;
    }
    double flops = 2.0 * M * N * K, t[7];
    s_time_n(n, fns, ctxs, t);
    printf("matmul   M=%-5d N=%-5d K=%-5d", M, N, K);
    for (int i = 0; i < n; i++) printf("  %s %6.1f", names[i], flops / t[i] * 1e-9);
    printf("  GFLOP/s; lf/sgemm %.2f\n", t[0] / t[1]);
    free(a), free(b), free(c), free(bb), free(tbh.data);
}

#ifdef LF_BENCH_HAVE_DNNL
typedef struct {
    dnnl_engine_t engine;
    dnnl_primitive_t conv;
    dnnl_stream_t stream;
    dnnl_exec_arg_t args[4];
} s_dnnl_t;

static void s_run_dnnl(void *p) {
    s_dnnl_t *d = p;
    dnnl_primitive_execute(d->conv, d->stream, 4, d->args);
    dnnl_stream_wait(d->stream);
}

/* oneDNN convolution on NCHW src/dst (our layout), plain OIHW weights, or
 * weights in the layout oneDNN prefers (blocked: a one-off reorder at load
 * time, not timed). Fills d; 0 on success. */
static int s_dnnl_setup(s_dnnl_t *d, int N, int Ci, int H, int W, int Co, int k, int pad, const float *x,
                        const float *w, const float *bias, float *y, int blocked_weights, char *impl_out) {
    memset(d, 0, sizeof *d);
    dnnl_engine_t eng;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return -1;
    dnnl_stream_create(&d->stream, eng, dnnl_stream_default_flags);
    dnnl_memory_desc_t src_md, w_md, wany_md, b_md, dst_md;
    dnnl_dims_t sd = {N, Ci, H, W}, wd = {Co, Ci, k, k}, bd = {Co},
                dd = {N, Co, H + 2 * pad - k + 1, W + 2 * pad - k + 1};
    dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&wany_md, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&b_md, 1, bd, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, dnnl_nchw);
    dnnl_dims_t strides = {1, 1}, padl = {pad, pad}, padr = {pad, pad};
    dnnl_convolution_desc_t cd;
    dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md,
                                       blocked_weights ? &wany_md : &w_md, &b_md, &dst_md, strides, padl, padr);
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL) != dnnl_success) return -1;
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t msrc, mw, mwq, mb, mdst;
    dnnl_memory_create(&msrc, &src_md, eng, (void *)x);
    dnnl_memory_create(&mw, &w_md, eng, (void *)w);
    dnnl_memory_create(&mwq, wq, eng, DNNL_MEMORY_ALLOCATE);
    dnnl_memory_create(&mb, &b_md, eng, (void *)bias);
    dnnl_memory_create(&mdst, &dst_md, eng, y);
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t reorder;
    dnnl_reorder_primitive_desc_create(&rpd, &w_md, eng, wq, eng, NULL);
    dnnl_primitive_create(&reorder, rpd);
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, mw}, {DNNL_ARG_TO, mwq}};
    dnnl_primitive_execute(reorder, d->stream, 2, rargs);
    dnnl_stream_wait(d->stream);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(impl_out, 64, "%s", impl);
    dnnl_primitive_create(&d->conv, pd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(mw);
    d->args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, msrc};
    d->args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mwq};
    d->args[2] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
    d->args[3] = (dnnl_exec_arg_t){DNNL_ARG_DST, mdst};
    d->engine = eng;
    return 0;
}

static void s_dnnl_teardown(s_dnnl_t *d) {
    dnnl_primitive_destroy(d->conv);
    for (int i = 0; i < 4; i++) dnnl_memory_destroy(d->args[i].memory);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->engine);
}
#endif

static void s_bench_conv(const s_backends_t *bs, int W, int H, int Ci, int Co, int k) {
    lf_backend_t *be = bs->be;
    int pad = k / 2, P = W * H, K = Ci * k * k;
    float *x = s_rand((size_t)P * Ci), *w = s_rand((size_t)K * Co), *b = s_rand((size_t)Co);
    float *y = malloc((size_t)P * Co * 4), *col = s_rand((size_t)K * P);
    lf_tensor_t tx = lf_tensor_4d(LF_TYPE_F32, W, H, Ci, 1, x), tw = lf_tensor_4d(LF_TYPE_F32, k, k, Ci, Co, w);
    lf_tensor_t tb = lf_tensor_4d(LF_TYPE_F32, Co, 1, 1, 1, b), ty = lf_tensor_4d(LF_TYPE_F32, W, H, Co, 1, y);
    s_op_t op = {.be = be};
    op.node.op = LF_OP_CONV2D, op.node.dst = &ty;
    op.node.src[0] = &tx, op.node.src[1] = &tw, op.node.src[2] = &tb;
    op.node.p.conv2d.stride = 1, op.node.p.conv2d.pad = pad;
    s_gemm_t g = {Co, P, K, w, col, y};
    double flops = 2.0 * Co * P * K;
    /* f16 weights (as checkpoints hold them): f32 and bf16 compute. */
    lf_tensor_t twh = s_as_f16(&tw);
    s_op_t oph[2];
    for (int i = 0; i < 2; i++) oph[i] = op, oph[i].be = i ? bs->bf16 : be, oph[i].node.src[1] = &twh;
    s_fn fns[6] = {s_sgemm_nn, s_run_op, s_run_op, s_run_op};
    void *ctxs[6] = {&g, &op, &oph[0], &oph[1]};
    int n = bs->bf16 ? 4 : 3;
#ifdef LF_BENCH_HAVE_DNNL
    s_dnnl_t dn[2];
    char impl[2][64];
    float *yd = malloc((size_t)P * Co * 4);
    for (int i = 0; i < 2; i++) {
        if (s_dnnl_setup(&dn[i], 1, Ci, H, W, Co, k, pad, x, w, b, yd, i, impl[i])) {
            fprintf(stderr, "oneDNN setup failed\n");
            exit(1);
        }
        fns[n] = s_run_dnnl, ctxs[n] = &dn[i], n++;
    }
#endif
    double t[6];
    s_time_n(n, fns, ctxs, t);
    double tref = t[0], top = t[1];
    int nd = bs->bf16 ? 4 : 3;
    printf("conv2d   %dx%dx%d -> %d, %dx%d (GEMM %dx%dx%d)  lf %7.1f GFLOP/s (%.2f ms)  sgemm %7.1f GFLOP/s  "
           "ratio %.2f (target >= 0.80)\n",
           W, H, Ci, Co, k, k, Co, P, K, flops / top * 1e-9, top * 1e3, flops / tref * 1e-9, tref / top);
    printf("         lf f16 weights: f32 %7.1f GFLOP/s (%.2f ms)", flops / t[2] * 1e-9, t[2] * 1e3);
    if (bs->bf16) printf(", bf16 compute %7.1f GFLOP/s (%.2f ms, %.2fx f32)", flops / t[3] * 1e-9, t[3] * 1e3,
                         t[2] / t[3]);
    printf("\n");
    free(twh.data);
#ifdef LF_BENCH_HAVE_DNNL
    for (int i = 0; i < 2; i++) {
        printf("         oneDNN %-7s weights (%s) %7.1f GFLOP/s (%.2f ms), %.2fx lf\n", i ? "blocked" : "oihw",
               impl[i], flops / t[nd + i] * 1e-9, t[nd + i] * 1e3, top / t[nd + i]);
        s_dnnl_teardown(&dn[i]);
    }
    free(yd);
#endif
    free(x), free(w), free(b), free(y), free(col);
}

typedef struct {
    int N, D, H;
    const float *q, *k, *v;
    float *s, *o;
} s_attn_ref_t;

/* The two matrix products of attention with full N x N scores, per head:
 * S = Q K^T and O = S V. (The softmax between them is not counted.) */
static void s_attn_gemms(void *p) {
    s_attn_ref_t *r = p;
    size_t hs = (size_t)r->N * r->D;
    for (int h = 0; h < r->H; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->N, r->N, r->D, 1.0f, r->q + h * hs, r->D,
                    r->k + h * hs, r->D, 0.0f, r->s, r->N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r->N, r->D, r->N, 1.0f, r->s, r->N,
                    r->v + h * hs, r->D, 0.0f, r->o + h * hs, r->D);
    }
}

static void s_bench_attention(lf_backend_t *be, lf_backend_t *sg, lf_backend_t *bf16, int N, int D, int H) {
    size_t n = (size_t)N * D * H;
    float *q = s_rand(n), *k = s_rand(n), *v = s_rand(n), *o = malloc(n * 4);
    float *scores = malloc((size_t)N * N * 4);
    lf_tensor_t tq = lf_tensor_4d(LF_TYPE_F32, D, N, H, 1, q), tk = lf_tensor_4d(LF_TYPE_F32, D, N, H, 1, k);
    lf_tensor_t tv = lf_tensor_4d(LF_TYPE_F32, D, N, H, 1, v), to = lf_tensor_4d(LF_TYPE_F32, D, N, H, 1, o);
    s_op_t op = {.be = be};
    op.node.op = LF_OP_ATTENTION, op.node.dst = &to;
    op.node.src[0] = &tq, op.node.src[1] = &tk, op.node.src[2] = &tv;
    op.node.p.attention.scale = 1.0f / sqrtf((float)D);
    s_attn_ref_t r = {N, D, H, q, k, v, scores, o};
    size_t ws0 = lf_backend_workspace_bytes(be);
    s_op_t op16 = op, opsg = op;
    op16.be = bf16, opsg.be = sg;
    s_fn fns[4] = {s_attn_gemms, s_run_op, s_run_op, s_run_op};
    void *ctxs[4] = {&r, &op, &opsg, &op16};
    double t[4];
    s_time_n(bf16 ? 4 : 3, fns, ctxs, t);
    double tref = t[0], top = t[1];
    size_t ws = lf_backend_workspace_bytes(be);
    double flops = lf_node_flops(&op.node);
    /* Memory of the op itself: q, k, v, o plus the backend's scratch; a
     * materialized score matrix would add N*N*H*4 bytes. */
    double io = 4.0 * n * 4;
    printf("attention N=%-5d D=%-4d H=%d  fused %7.2f ms (%6.1f GFLOP/s)  two sgemm %7.2f ms  "
           "ratio %.2f (target <= 1.50)\n",
           N, D, H, top * 1e3, flops / top * 1e-9, tref * 1e3, top / tref);
    printf("          f32 sgemm form (LF_CPU_ATTN=sgemm): %7.2f ms (%6.1f GFLOP/s), sgemm form / fused %.2f\n",
           t[2] * 1e3, flops / t[2] * 1e-9, t[2] / top);
    if (bf16)
        printf("          bf16: fused %7.2f ms (%6.1f GFLOP/s), f32 / bf16 %.2f\n", t[3] * 1e3,
               flops / t[3] * 1e-9, top / t[3]);
    printf("          memory: q/k/v/o %.1f MB + op scratch %.2f MB (%.2f MB before);"
           " N*N*H scores would be %.1f MB\n",
           io / 1e6, (double)ws / 1e6, (double)ws0 / 1e6, (double)N * N * H * 4 / 1e6);
    free(q), free(k), free(v), free(o), free(scores);
}

/* Memory-bound ops at SD shapes: time and effective bandwidth. */
static void s_bench_rowwise(lf_backend_t *be) {
    float *x = s_rand((size_t)2560 * 4096), *y = malloc((size_t)2560 * 4096 * 4);
    float *gb = s_rand(2 * 320);
    lf_tensor_t tg = lf_tensor_4d(LF_TYPE_F32, 2560, 4096, 1, 1, x), tgo = lf_tensor_4d(LF_TYPE_F32, 1280, 4096, 1, 1, y);
    lf_tensor_t tx = lf_tensor_4d(LF_TYPE_F32, 64, 64, 320, 1, x), ty = lf_tensor_4d(LF_TYPE_F32, 64, 64, 320, 1, y);
    lf_tensor_t tl = lf_tensor_4d(LF_TYPE_F32, 320, 4096, 1, 1, x), tly = lf_tensor_4d(LF_TYPE_F32, 320, 4096, 1, 1, y);
    lf_tensor_t lg = lf_tensor_4d(LF_TYPE_F32, 320, 1, 1, 1, gb), lb = lf_tensor_4d(LF_TYPE_F32, 320, 1, 1, 1, gb + 320);
    /* tokens -> channel planes as the transformers' proj_out takes them */
    lf_tensor_t tp = lf_tensor_4d(LF_TYPE_F32, 320, 4096, 1, 1, x), tpo = lf_tensor_4d(LF_TYPE_F32, 4096, 320, 1, 1, y);
    /* the VAE decoder's largest group norm (512^2, 128 channels): groups of 4 MB */
    float *vx = s_rand((size_t)512 * 512 * 128), *vy = malloc((size_t)512 * 512 * 128 * 4);
    lf_tensor_t tv = lf_tensor_4d(LF_TYPE_F32, 512, 512, 128, 1, vx), tvo = lf_tensor_4d(LF_TYPE_F32, 512, 512, 128, 1, vy);
    enum { NOPS = 7 };
    s_op_t ops[NOPS];
    for (int i = 0; i < NOPS; i++) ops[i] = (s_op_t){.be = be};
    const char *names[NOPS] = {"geglu 4096x2560 -> 1280", "group_norm+silu 64x64x320", "silu 64x64x320",
                               "layer_norm 4096x320 (+w,b)", "softmax 4096x320", "permute 4096x320 -> 320x4096",
                               "group_norm+silu 512x512x128"};
    double bytes[NOPS] = {4096.0 * (2560 + 1280) * 4, 2.0 * 1310720 * 4, 2.0 * 1310720 * 4, 2.0 * 1310720 * 4,
                          2.0 * 1310720 * 4, 2.0 * 1310720 * 4, 2.0 * 512 * 512 * 128 * 4};
    ops[0].node.op = LF_OP_GEGLU, ops[0].node.dst = &tgo, ops[0].node.src[0] = &tg;
    ops[1].node.op = LF_OP_GROUP_NORM, ops[1].node.dst = &ty, ops[1].node.src[0] = &tx;
    ops[1].node.p.group_norm.groups = 32, ops[1].node.p.group_norm.eps = 1e-5f, ops[1].node.p.group_norm.act = 1;
    ops[2].node.op = LF_OP_SILU, ops[2].node.dst = &ty, ops[2].node.src[0] = &tx;
    ops[3].node.op = LF_OP_LAYER_NORM, ops[3].node.dst = &tly, ops[3].node.src[0] = &tl;
    ops[3].node.src[1] = &lg, ops[3].node.src[2] = &lb, ops[3].node.p.norm.eps = 1e-5f;
    ops[4].node.op = LF_OP_SOFTMAX, ops[4].node.dst = &tly, ops[4].node.src[0] = &tl;
    ops[4].node.p.softmax.scale = 1.0f;
    ops[5].node.op = LF_OP_PERMUTE, ops[5].node.dst = &tpo, ops[5].node.src[0] = &tp;
    memcpy(ops[5].node.p.permute.axes, (const int[]){1, 0, 2, 3}, sizeof ops[5].node.p.permute.axes);
    ops[6].node = ops[1].node, ops[6].node.dst = &tvo, ops[6].node.src[0] = &tv;
    for (int i = 0; i < NOPS; i++) {
        s_fn fn[1] = {s_run_op};
        void *ctx[1] = {&ops[i]};
        double t;
        s_time_n(1, fn, ctx, &t);
        printf("rowwise  %-30s %7.2f ms  %6.1f GB/s\n", names[i], t * 1e3, bytes[i] / t * 1e-9);
    }
    free(x), free(y), free(gb), free(vx), free(vy);
}

/* Arena peak of a small SD-like block, showing the planner's reuse. */
static void s_bench_graph_memory(lf_backend_t *be) {
    lf_graph_t *g = lf_graph_new(be);
    int C = 320, W = 64, H = 64;
    float *wbuf = s_rand((size_t)C * C * 9);
    lf_tensor_t w = lf_tensor_4d(LF_TYPE_F32, 3, 3, C, C, wbuf);
    lf_tensor_t *x = lf_graph_input(g, LF_TYPE_F32, W, H, C, 1), *h = x;
    for (int i = 0; i < 4; i++) {
        lf_tensor_t *r = h;
        h = lf_graph_group_norm(g, h, NULL, NULL, 32, 1e-5f, 1);
        h = lf_graph_conv2d(g, h, &w, NULL, 1, 1);
        h = lf_graph_group_norm(g, h, NULL, NULL, 32, 1e-5f, 1);
        h = lf_graph_conv2d(g, h, &w, NULL, 1, 1);
        h = lf_graph_add(g, h, r);
    }
    lf_graph_output(g, h);
    if (lf_graph_plan(g) == 0)
        printf("graph    4 resnet blocks at 64x64x320: %d nodes, activations %.1f MB planned vs %.1f MB "
               "unplanned\n",
               lf_graph_n_nodes(g), lf_graph_peak_bytes(g) / 1e6, lf_graph_unplanned_bytes(g) / 1e6);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = s_now();
        lf_graph_compute(g);
        double t = s_now() - t0;
        best = t < best ? t : best;
    }
    printf("         best of 3 runs %.1f ms (%s)\n", best * 1e3, lf_backend_describe(be));
    lf_graph_destroy(&g);
    free(wbuf);
}

/* A product, then an ADD of a residual: the unfused pair. */
typedef struct {
    s_op_t prod, add;
} s_pair_t;

static void s_run_pair(void *p) {
    s_pair_t *q = p;
    s_run_op(&q->prod);
    s_run_op(&q->add);
}

/* A residual add after a product (conv k x k at W x W, or a linear layer
 * with k = 0: M = W rows, Ci -> Co) as a separate ADD (LF_CPU_FUSE=0's
 * graph) and as the product's post-op (lf_graph's fusion pass), in f32 and
 * bf16 compute, f16 weights. */
static void s_bench_fuse(const s_backends_t *bs, int W, int Ci, int Co, int k) {
    const int B = 2;
    const int64_t xn = k ? (int64_t)W * W * Ci * B : (int64_t)W * Ci, yn = k ? (int64_t)W * W * Co * B : (int64_t)W * Co;
    float *x = s_rand((size_t)xn), *w = s_rand((size_t)Ci * Co * (k ? k * k : 1)), *b = s_rand((size_t)Co);
    float *r = s_rand((size_t)yn), *y = malloc((size_t)yn * 4), *z = malloc((size_t)yn * 4);
    lf_tensor_t tx = k ? lf_tensor_4d(LF_TYPE_F32, W, W, Ci, B, x) : lf_tensor_4d(LF_TYPE_F32, Ci, W, 1, 1, x);
    lf_tensor_t tw = k ? lf_tensor_4d(LF_TYPE_F32, k, k, Ci, Co, w) : lf_tensor_4d(LF_TYPE_F32, Ci, Co, 1, 1, w);
    lf_tensor_t twh = s_as_f16(&tw), tb = lf_tensor_4d(LF_TYPE_F32, Co, 1, 1, 1, b);
    lf_tensor_t ty = k ? lf_tensor_4d(LF_TYPE_F32, W, W, Co, B, y) : lf_tensor_4d(LF_TYPE_F32, Co, W, 1, 1, y);
    lf_tensor_t tz = ty, tr = ty;
    tz.data = z, tr.data = r;
    double t[4];
    printf("fuse     %s %dx%d %d->%d  residual add after / as post-op:", k ? "conv" : "linear", W, k ? W : 1, Ci,
           Co);
    for (int bf = 0; bf < 2; bf++) {
        lf_backend_t *be = bf ? bs->bf16 : bs->be;
        if (!be) continue;
        s_pair_t pair = {.prod = {.be = be}, .add = {.be = be}};
        lf_node_t *n = &pair.prod.node;
        n->op = k ? LF_OP_CONV2D : LF_OP_MATMUL, n->dst = &ty, n->src[0] = &tx, n->src[1] = &twh, n->src[2] = &tb;
        n->p.conv2d.stride = 1, n->p.conv2d.pad = k / 2;
        pair.add.node.op = LF_OP_ADD, pair.add.node.dst = &tz, pair.add.node.src[0] = &tr, pair.add.node.src[1] = &ty;
        s_op_t fused = {.be = be, .node = *n};
        fused.node.dst = &tz, fused.node.src[3] = &tr;
        s_fn fns[2] = {s_run_pair, s_run_op};
        void *ctxs[2] = {&pair, &fused};
        s_time_n(2, fns, ctxs, t + 2 * bf);
        printf("  %s %.2f / %.2f ms (%.3fx)", bf ? "bf16" : "f32", t[2 * bf] * 1e3, t[2 * bf + 1] * 1e3,
               t[2 * bf] / t[2 * bf + 1]);
    }
    printf("\n");
    free(twh.data), free(x), free(w), free(b), free(r), free(y), free(z);
}

/* One f32 3x3 convolution (stride 1, pad 1, bias, f16 weights as the
 * engine holds them) on B images of W x W x Ci -> Co: LF_CPU_CONV_ALGO=gemm
 * (gemm) beside the default (dflt), interleaved, and their largest
 * difference. */
static void s_bench_convalgo(lf_backend_t *gemm, lf_backend_t *dflt, int B, int W, int Ci, int Co) {
    const size_t P = (size_t)W * W;
    float *x = s_rand(P * Ci * B), *w = s_rand((size_t)Ci * 9 * Co), *b = s_rand((size_t)Co);
    float *y[2] = {malloc(P * Co * B * 4), malloc(P * Co * B * 4)};
    for (size_t i = 0; i < (size_t)Ci * 9 * Co; i++) w[i] *= 1.0f / sqrtf((float)Ci * 9); /* outputs ~1 */
    lf_tensor_t tx = lf_tensor_4d(LF_TYPE_F32, W, W, Ci, B, x), tw = lf_tensor_4d(LF_TYPE_F32, 3, 3, Ci, Co, w);
    lf_tensor_t tb = lf_tensor_4d(LF_TYPE_F32, Co, 1, 1, 1, b), twh = s_as_f16(&tw);
    lf_tensor_t ty[2] = {lf_tensor_4d(LF_TYPE_F32, W, W, Co, B, y[0]), lf_tensor_4d(LF_TYPE_F32, W, W, Co, B, y[1])};
    s_op_t op[2];
    for (int i = 0; i < 2; i++) {
        op[i] = (s_op_t){.be = i ? dflt : gemm};
        op[i].node.op = LF_OP_CONV2D, op[i].node.dst = &ty[i];
        op[i].node.src[0] = &tx, op[i].node.src[1] = &twh, op[i].node.src[2] = &tb;
        op[i].node.p.conv2d.stride = 1, op[i].node.p.conv2d.pad = 1;
    }
    s_fn fns[2] = {s_run_op, s_run_op};
    void *ctxs[2] = {&op[0], &op[1]};
    double t[2];
    s_time_n(2, fns, ctxs, t);
    double diff = 0, mx = 0;
    for (size_t i = 0; i < P * Co * B; i++) diff = fmax(diff, fabs(y[1][i] - y[0][i])), mx = fmax(mx, fabs(y[0][i]));
    const double flops = 2.0 * 9 * Ci * Co * (double)P * B;
    printf("convalgo %3dx%-3d %4d -> %-4d batch %d  gemm %7.1f GFLOP/s (%8.2f ms)  default %7.1f GFLOP/s (%8.2f ms)  "
           "%.2fx  max|diff| %.2g of %.2g\n",
           W, W, Ci, Co, B, flops / t[0] * 1e-9, t[0] * 1e3, flops / t[1] * 1e-9, t[1] * 1e3, t[0] / t[1], diff, mx);
    free(x), free(w), free(b), free(y[0]), free(y[1]), free(twh.data);
}

int main(int argc, char **argv) {
    int threads = 2, quick = 0;
    const char *only = "";
    int reps = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--cputime")) g_clock = CLOCK_THREAD_CPUTIME_ID;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    }
#define ON(name) (!*only || !strcmp(only, name))
    if (quick) g_reps = 3;
    if (reps > 0) g_reps = reps;
    lf_backend_t *be = lf_backend_cpu_new(threads);
    if (!be) return 1;
    setenv("LF_CPU_MATMUL", "blas", 1);
    s_backends_t bs = {be, lf_backend_cpu_new(threads), lf_backend_cpu_new(threads)};
    unsetenv("LF_CPU_MATMUL");
    if (!bs.blas || !bs.bf16) return 1;
    if (lf_backend_set_precision(bs.bf16, LF_PRECISION_BF16) != LF_PRECISION_BF16) lf_backend_destroy(&bs.bf16);
    printf("OpenBLAS core: %s\nOpenBLAS config: %s\n%s\n", openblas_get_corename(), openblas_get_config(),
           lf_backend_describe(be));
    printf("(best of %d runs each; GFLOP/s count a multiply-add as 2)\n\n", g_reps);
    if (ON("matmul")) {
        /* SD1.5 linear layers at batch 2 (CFG): attention projections and
         * GEGLU / FF at the three attention levels, cross-attention K/V. */
        static const int mm[][3] = {{8192, 320, 320},  {8192, 2560, 320}, {8192, 320, 1280},
                                    {2048, 640, 640},  {2048, 5120, 640}, {512, 1280, 1280},
                                    {512, 10240, 1280}, {154, 320, 768},  {154, 1280, 768}};
        for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) s_bench_matmul(&bs, mm[i][0], mm[i][1], mm[i][2]);
    }
    if (ON("fuse")) {
        /* Products whose result a residual ADD reads in SD1.5's UNet (batch
         * 2): attention out-projections and FF outputs, 1x1 proj_out, the
         * ResNet blocks' second 3x3 convolution. */
        static const int fz[][4] = {{8192, 320, 320, 0},  {8192, 1280, 320, 0}, {2048, 640, 640, 0},
                                    {2048, 2560, 640, 0}, {512, 1280, 1280, 0}, {512, 5120, 1280, 0},
                                    {64, 320, 320, 1},    {32, 640, 640, 1},    {64, 320, 320, 3},
                                    {32, 640, 640, 3},    {16, 1280, 1280, 3},  {8, 1280, 1280, 3}};
        for (size_t i = 0; i < sizeof fz / sizeof fz[0]; i++) s_bench_fuse(&bs, fz[i][0], fz[i][1], fz[i][2], fz[i][3]);
    }
    if (ON("conv")) {
        s_bench_conv(&bs, 64, 64, 320, 320, 3);
        s_bench_conv(&bs, 32, 32, 640, 640, 3);
        s_bench_conv(&bs, 8, 8, 1280, 1280, 3);
        /* 1x1: the transformers' proj_in / proj_out */
        s_bench_conv(&bs, 64, 64, 320, 320, 1);
        s_bench_conv(&bs, 32, 32, 640, 640, 1);
    }
    if (ON("attention")) {
        /* A fresh backend per shape, so its scratch is the op's alone. */
        int shapes[5][2] = {{4096, 40}, {1024, 80}, {256, 160}, {4096, 64}, {1536, 128}};
        for (int i = 0; i < (quick ? 2 : 5); i++) {
            lf_backend_t *ab16 = lf_backend_cpu_new(threads);
            if (ab16 && lf_backend_set_precision(ab16, LF_PRECISION_BF16) != LF_PRECISION_BF16)
                lf_backend_destroy(&ab16);
            /* The f32 op's older form beside it (the backend reads LF_CPU_ATTN when made). */
            const char *attn = getenv("LF_CPU_ATTN");
            char *saved = attn ? strdup(attn) : NULL;
            setenv("LF_CPU_ATTN", "sgemm", 1);
            lf_backend_t *absg = lf_backend_cpu_new(threads);
            setenv("LF_CPU_ATTN", "blocked", 1); /* the register-blocked form (opt-in) */
            lf_backend_t *ab = lf_backend_cpu_new(threads);
            if (saved) setenv("LF_CPU_ATTN", saved, 1);
            else unsetenv("LF_CPU_ATTN");
            free(saved);
            s_bench_attention(ab, absg, ab16, shapes[i][0], shapes[i][1], 8);
            lf_backend_destroy(&absg);
            lf_backend_destroy(&ab);
            lf_backend_destroy(&ab16);
        }
    }
    if (!strcmp(only, "convalgo") || !strcmp(only, "convalgo-unet")) {
        /* The SD1.5 VAE decoder's 3x3 shapes (512x512 image) and the UNet's
         * 64x64 / 32x32 ones at CFG batch 2. */
        static const int ca[][4] = {{1, 64, 512, 512},  {1, 128, 512, 512}, {1, 256, 512, 512},
                                    {1, 256, 512, 256}, {1, 256, 256, 256}, {1, 512, 256, 256},
                                    {1, 512, 256, 128}, {1, 512, 128, 128}, {2, 64, 320, 320},
                                    {2, 64, 960, 320},  {2, 32, 640, 640},  {2, 32, 960, 640},
                                    {2, 32, 1280, 640}, {2, 32, 1920, 640}, {2, 32, 1280, 1280},
                                    {2, 16, 1280, 1280}, {2, 16, 2560, 1280}};
        setenv("LF_CPU_CONV_ALGO", "gemm", 1);
        lf_backend_t *gemm = lf_backend_cpu_new(threads);
        unsetenv("LF_CPU_CONV_ALGO");
        if (!gemm) return 1;
        for (size_t i = 0; i < sizeof ca / sizeof ca[0]; i++)
            if (ca[i][0] == 2 || !strcmp(only, "convalgo")) /* convalgo-unet: the UNet's only */
                s_bench_convalgo(gemm, be, ca[i][0], ca[i][1], ca[i][2], ca[i][3]);
        lf_backend_destroy(&gemm);
    }
    if (ON("rowwise")) s_bench_rowwise(be);
    if (ON("graph") && !quick) s_bench_graph_memory(be);
    lf_backend_destroy(&be);
    lf_backend_destroy(&bs.blas);
    lf_backend_destroy(&bs.bf16);
    return 0;
}
