/* lf_cuda_backend: the CUDA backend's host side — device, stream, cuBLAS,
 * the activation slab, transfers, op dispatch and CUDA Graph replay.
 *
 * Memory: one device slab is reserved at start (size configurable) and
 * activation buffers (the graph arena's one block) are cut from it; weights
 * get their own cudaMalloc chunks through lf_pool. Host staging is pinned.
 * Each backend has its own stream and cuBLAS handle, so one backend per
 * worker thread. A planned graph runs eagerly once (sizing scratch), is
 * captured as a CUDA Graph on the next compute and replayed after that.
 * Every CUDA and cuBLAS call goes through LF_CUDA_CHECK / LF_CUBLAS_CHECK. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lf_backend_impl.h"
#include "../lf_graph.h"
#include "lf_cuda_impl.h"
#include "lf_error.h"
#include "lf_log.h"

#define LF_CUDA_CHECK(be, call)                                                              \
    do {                                                                                     \
        cudaError_t lf_e_ = (call);                                                          \
        if (lf_e_ != cudaSuccess) {                                                          \
            lf__backend_seterr((be), "%s: %s (%s:%d)", #call, cudaGetErrorString(lf_e_),     \
                               __FILE__, __LINE__);                                          \
            return LF_ECUDA;                                                                 \
        }                                                                                    \
    } while (0)

#define LF_CUBLAS_CHECK(be, call)                                                            \
    do {                                                                                     \
        cublasStatus_t lf_s_ = (call);                                                       \
        if (lf_s_ != CUBLAS_STATUS_SUCCESS) {                                                \
            lf__backend_seterr((be), "%s: %s (%s:%d)", #call, cublasGetStatusString(lf_s_),  \
                               __FILE__, __LINE__);                                          \
            return LF_ECUDA;                                                                 \
        }                                                                                    \
    } while (0)

/* For paths that cannot return an error (destroy, free): log and go on. */
#define LF_CUDA_WARN(call)                                                                   \
    do {                                                                                     \
        cudaError_t lf_e_ = (call);                                                          \
        if (lf_e_ != cudaSuccess)                                                            \
            lf_warn("cuda: %s: %s (%s:%d)", #call, cudaGetErrorString(lf_e_), __FILE__, __LINE__); \
    } while (0)

#define LF_CUBLAS_WARN(call)                                                                 \
    do {                                                                                     \
        cublasStatus_t lf_s_ = (call);                                                       \
        if (lf_s_ != CUBLAS_STATUS_SUCCESS)                                                  \
            lf_warn("cuda: %s: %s (%s:%d)", #call, cublasGetStatusString(lf_s_), __FILE__, __LINE__); \
    } while (0)

/* Launchers return a cudaError_t as int. */
#define LF_LAUNCH_CHECK(be, call) LF_CUDA_CHECK(be, (cudaError_t)(call))

#define LF__SLAB_ALIGN 256
#define LF__CUBLAS_WS (32u << 20)

typedef struct {
    size_t off, size;
    bool used;
} s_block_t;

typedef struct {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_ws;
    char *slab;
    size_t slab_size;
    s_block_t *blocks; /* slab blocks sorted by offset */
    int n_blocks, cap_blocks;
    void *work; /* scratch for operand conversion and im2col */
    size_t work_size;
    /* CUDA Graph of the last planned graph run. */
    const lf_graph_t *graph;
    unsigned graph_version;
    int graph_runs;
    lf_type_t graph_compute; /* the precision it was run in: a capture replays that */
    cudaGraphExec_t exec;
    bool no_graphs;
    int cc;                /* compute capability, major * 10 + minor */
    size_t smem_optin;     /* dynamic shared memory a block may opt in to */
    lf_type_t compute;     /* operand type of the products (lf_backend_set_precision) */
    bool tf32;             /* LF_CUDA_TF32=1: f32 products may use TF32 */
    bool per_image;        /* LF_CUDA_PER_IMAGE=1: MATMUL one image per GEMM */
    size_t col_bytes;      /* im2col scratch per convolution chunk */
} s_ctx_t;

/* ---- slab sub-allocation (first fit, neighbours merged on free) ---- */

static int s_slab_alloc(s_ctx_t *c, size_t size, void **out) {
    size = (size + LF__SLAB_ALIGN - 1) & ~(size_t)(LF__SLAB_ALIGN - 1);
    for (int i = 0; i < c->n_blocks; i++) {
        s_block_t *b = &c->blocks[i];
        if (b->used || b->size < size) continue;
        if (b->size > size) {
            if (c->n_blocks == c->cap_blocks) {
                int cap = c->cap_blocks * 2;
                s_block_t *nb = realloc(c->blocks, (size_t)cap * sizeof *nb);
                if (!nb) return LF_ENOMEM;
                c->blocks = nb, c->cap_blocks = cap;
                b = &c->blocks[i];
            }
            memmove(&c->blocks[i + 2], &c->blocks[i + 1], (size_t)(c->n_blocks - i - 1) * sizeof *b);
            c->blocks[i + 1] = (s_block_t){.off = b->off + size, .size = b->size - size, .used = false};
            c->n_blocks++;
            b->size = size;
        }
        b->used = true;
        *out = c->slab + b->off;
        return 0;
    }
    return LF_ENOMEM;
}

static void s_slab_free(s_ctx_t *c, void *p) {
    size_t off = (size_t)((char *)p - c->slab);
    for (int i = 0; i < c->n_blocks; i++) {
        if (c->blocks[i].off != off) continue;
        c->blocks[i].used = false;
        if (i + 1 < c->n_blocks && !c->blocks[i + 1].used) { /* merge right */
            c->blocks[i].size += c->blocks[i + 1].size;
            memmove(&c->blocks[i + 1], &c->blocks[i + 2], (size_t)(c->n_blocks - i - 2) * sizeof *c->blocks);
            c->n_blocks--;
        }
        if (i > 0 && !c->blocks[i - 1].used) { /* merge left */
            c->blocks[i - 1].size += c->blocks[i].size;
            memmove(&c->blocks[i], &c->blocks[i + 1], (size_t)(c->n_blocks - i - 1) * sizeof *c->blocks);
            c->n_blocks--;
        }
        return;
    }
}

static bool s_in_slab(const s_ctx_t *c, const void *p) {
    return (const char *)p >= c->slab && (const char *)p < c->slab + c->slab_size;
}

/* ---- helpers ---- */

static lf__cuda_view_t s_view(const lf_tensor_t *t) {
    lf__cuda_view_t v;
    memset(&v, 0, sizeof v);
    if (!t) {
        v.ne[0] = v.ne[1] = v.ne[2] = v.ne[3] = 1;
        return v;
    }
    v.data = t->data;
    v.type = (int)t->type;
    for (int i = 0; i < 4; i++) v.ne[i] = t->ne[i], v.nb[i] = (int64_t)t->nb[i];
    return v;
}

static int s_work(lf_backend_t *be, size_t bytes, void **out) {
    s_ctx_t *c = be->ctx;
    if (c->work_size < bytes) {
        enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
        LF_CUDA_CHECK(be, cudaStreamIsCapturing(c->stream, &st));
        if (st != cudaStreamCaptureStatusNone) {
            lf__backend_seterr(be, "scratch must grow during graph capture");
            return LF_ESTATE;
        }
        if (c->work) {
            LF_CUDA_CHECK(be, cudaStreamSynchronize(c->stream));
            LF_CUDA_CHECK(be, cudaFree(c->work));
            c->work = NULL, c->work_size = 0;
        }
        LF_CUDA_CHECK(be, cudaMalloc(&c->work, bytes));
        c->work_size = bytes;
    }
    *out = c->work;
    return 0;
}

static cudaDataType_t s_cuda_type(lf_type_t t) {
    return t == LF_TYPE_F16 ? CUDA_R_16F : t == LF_TYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static bool s_f32(const lf_tensor_t *t) {
    return !t || t->type == LF_TYPE_F32;
}

static bool s_rows(const lf_tensor_t *t) {
    return !t || lf_tensor_rows_contiguous(t);
}

static bool s_gemm_operand(const lf_tensor_t *t) {
    size_t es = lf_type_size(t->type);
    return t->nb[0] == es || t->nb[1] == es || t->ne[0] == 1;
}

static bool s_supports_op(lf_backend_t *be, const lf_node_t *n) {
    (void)be;
    const lf_tensor_t *a = n->src[0], *b = n->src[1], *c = n->src[2];
    /* Block-quantized (GGUF) tensors: only as MATMUL's weight, whole rows,
     * no batch (dequantized to f16 per call, lf_cuda_quant.cu). */
    bool quant = lf_type_is_quant(n->dst->type);
    for (int i = 0; i < LF_MAX_SRC; i++) quant |= n->src[i] && i != 1 && lf_type_is_quant(n->src[i]->type);
    if (quant) return false;
    if (lf_type_is_quant(b ? b->type : LF_TYPE_F32))
        return n->op == LF_OP_MATMUL && b->type <= LF_TYPE_Q6_K && lf_tensor_rows_contiguous(b) &&
               b->ne[2] == 1 && b->ne[3] == 1 && s_f32(n->dst) && s_rows(n->dst) && s_gemm_operand(a) &&
               s_rows(c);
    switch (n->op) {
    case LF_OP_MATMUL:
        /* Activations of another type than the weight are converted first. */
        return s_f32(n->dst) && s_rows(n->dst) && s_gemm_operand(a) && s_gemm_operand(b) && s_rows(c);
    case LF_OP_CONV2D:
        return s_f32(n->dst) && lf_tensor_is_contiguous(n->dst) && s_f32(a) && lf_tensor_is_contiguous(a) &&
               lf_tensor_is_contiguous(b) && s_rows(c);
    case LF_OP_ATTENTION:
        for (int i = 0; i < 4; i++)
            if (!s_f32(n->src[i]) || !s_rows(n->src[i])) return false;
        /* Head strides must be whole floats for the blocked (cuBLAS) form. */
        return s_f32(n->dst) && s_rows(n->dst);
    case LF_OP_TIMESTEP_EMBED:
        return lf_tensor_is_contiguous(a);
    default: return true;
    }
}

/* ---- ops ---- */

static s_ctx_t *C(lf_backend_t *be) {
    return be->ctx;
}

/* Column-major view of a GEMM: dst(N x M, ld) = op(W)(N x K) . op(X)(K x M). */
static void s_gemm_operand_cm(const lf_tensor_t *t, size_t es, bool weight, cublasOperation_t *op,
                              int *ld) {
    int64_t nb0 = (int64_t)(t->nb[0] / es), nb1 = (int64_t)(t->nb[1] / es);
    if (nb0 == 1 || t->ne[0] == 1) {
        *op = weight ? CUBLAS_OP_T : CUBLAS_OP_N;
        *ld = (int)(t->ne[1] == 1 || nb1 < t->ne[0] ? t->ne[0] : nb1);
    } else {
        *op = weight ? CUBLAS_OP_N : CUBLAS_OP_T;
        *ld = (int)(nb0 < t->ne[1] ? t->ne[1] : nb0);
    }
}

/* The operand type of a product under the backend's precision: 16-bit
 * (c->compute) for products with a weight (a 2-D second operand: linear
 * layers, block-quantized weights); batched products (attention-like, both
 * operands activations) stay f32, as on the CPU. */
static lf_type_t s_operand_type(const s_ctx_t *c, const lf_tensor_t *b) {
    return b->ne[2] == 1 && b->ne[3] == 1 ? c->compute : LF_TYPE_F32;
}

static cublasComputeType_t s_compute(const s_ctx_t *c, lf_type_t t) {
    return t == LF_TYPE_F32 && c->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

static size_t s_align256(size_t n) {
    return (n + 255) & ~(size_t)255;
}

/* d (f32) = A . B^T (+ d when beta is 1) with both operands of one type:
 * one GemmEx per i3, strided-batched over i2. */
static int s_gemm(lf_backend_t *be, const lf_tensor_t *A, const lf_tensor_t *b, lf_tensor_t *d, float beta) {
    s_ctx_t *c = C(be);
    size_t es = lf_type_size(b->type);
    cublasOperation_t opw, opx;
    int ldw, ldx;
    s_gemm_operand_cm(b, es, true, &opw, &ldw);
    s_gemm_operand_cm(A, es, false, &opx, &ldx);
    int N = (int)b->ne[1], M = (int)A->ne[1], K = (int)A->ne[0];
    int ldc = (int)(d->ne[1] == 1 ? N : (int64_t)(d->nb[1] / 4));
    float alpha = 1.0f;
    cudaDataType_t ty = s_cuda_type(b->type);
    cublasComputeType_t ct = s_compute(c, b->type);
    for (int64_t i3 = 0; i3 < d->ne[3]; i3++) {
        const char *pa = (const char *)A->data + i3 * (int64_t)A->nb[3];
        const char *pb = (const char *)b->data + (b->ne[3] == 1 ? 0 : i3 * (int64_t)b->nb[3]);
        char *pc = (char *)d->data + i3 * (int64_t)d->nb[3];
        if (d->ne[2] == 1) {
            LF_CUBLAS_CHECK(be, cublasGemmEx(c->cublas, opw, opx, N, M, K, &alpha, pb, ty, ldw, pa, ty, ldx,
                                             &beta, pc, CUDA_R_32F, ldc, ct, CUBLAS_GEMM_DEFAULT));
        } else {
            long long sb = b->ne[2] == 1 ? 0 : (long long)(b->nb[2] / es);
            long long sa = (long long)(A->nb[2] / es), sc = (long long)(d->nb[2] / 4);
            LF_CUBLAS_CHECK(be, cublasGemmStridedBatchedEx(c->cublas, opw, opx, N, M, K, &alpha, pb, ty, ldw, sb,
                                                           pa, ty, ldx, sa, &beta, pc, CUDA_R_32F, ldc, sc,
                                                           (int)d->ne[2], ct, CUBLAS_GEMM_DEFAULT));
        }
    }
    return 0;
}

/* The batch-invariant mode (c->per_image, LF_CUDA_PER_IMAGE=1; the CPU's
 * LF_CPU_PER_IMAGE=1 twin, lf_cpu_gemm.c): a node of node->images > 1
 * independent images along A's outermost dimension of size > 1 runs one
 * GEMM per image on views of that image, so cuBLAS sees the same shapes
 * (and picks the same kernel, split and reduction order) whatever the batch
 * size, and an image's bytes are those it has alone. Operand conversions
 * and the bias are element-wise, done once for the whole batch. */
static int s_gemm_images(lf_backend_t *be, const lf_node_t *n, const lf_tensor_t *A, const lf_tensor_t *b,
                         float beta) {
    lf_tensor_t *dst = n->dst;
    int d = LF_MAX_DIMS - 1;
    while (d > 0 && A->ne[d] == 1) d--;
    int64_t imgs = n->images;
    if (!C(be)->per_image || imgs <= 1 || d == 0 || A->ne[d] != imgs || dst->ne[d] != imgs)
        return s_gemm(be, A, b, dst, beta);
    bool slice_b = d >= 2 && b->ne[d] == imgs; /* a batched product's second operand */
    for (int64_t i = 0; i < imgs; i++) {
        lf_tensor_t sa = *A, sd = *dst, sb = *b;
        sa.ne[d] = sd.ne[d] = 1;
        sa.data = (char *)A->data + i * (int64_t)A->nb[d];
        sd.data = (char *)dst->data + i * (int64_t)dst->nb[d];
        if (slice_b) {
            sb.ne[d] = 1;
            sb.data = (char *)b->data + i * (int64_t)b->nb[d];
        }
        int rc = s_gemm(be, &sa, &sb, &sd, beta);
        if (rc) return rc;
    }
    return 0;
}

/* MATMUL: both operands are brought to the precision's operand type in
 * scratch where they differ from it (f32: 16-bit weights widened, so f32 is
 * the reference; bf16/f16: f32 activations and weights of the other types
 * narrowed; block-quantized weights dequantized straight into it), then
 * cuBLAS GemmEx with f32 accumulation and f32 results (16-bit operands run
 * on tensor cores). */
static int s_op_matmul(lf_backend_t *be, const lf_node_t *n) {
    s_ctx_t *c = C(be);
    const lf_tensor_t *a = n->src[0], *b = n->src[1], *bias = n->src[2];
    lf_tensor_t *d = n->dst;
    lf_type_t t = s_operand_type(c, b);
    lf_tensor_t A = *a, B = *b;
    bool quant = lf_type_is_quant(b->type);
    size_t wbytes = quant || b->type != t ? s_align256((size_t)lf_tensor_nelements(b) * lf_type_size(t)) : 0;
    size_t abytes = a->type != t ? (size_t)lf_tensor_nelements(a) * lf_type_size(t) : 0;
    if (wbytes || abytes) {
        void *w;
        int rc = s_work(be, wbytes + abytes, &w);
        if (rc) return rc;
        if (quant) {
            LF_LAUNCH_CHECK(be, lf__cuda_dequant(w, (int)t, (int)b->type, b->data, b->ne[1], b->ne[0],
                                                 (int64_t)b->nb[1], (int)lf_type_block(b->type),
                                                 (int)lf_type_size(b->type), c->stream));
            B = lf_tensor_make(t, 2, b->ne, w);
        } else if (wbytes) {
            LF_LAUNCH_CHECK(be, lf__cuda_convert(w, (int)t, s_view(b), c->stream));
            B = lf_tensor_make(t, 4, b->ne, w);
        }
        if (abytes) {
            LF_LAUNCH_CHECK(be, lf__cuda_convert((char *)w + wbytes, (int)t, s_view(a), c->stream));
            A = lf_tensor_make(t, 4, a->ne, (char *)w + wbytes);
        }
    }
    float beta = 0.0f;
    if (bias) {
        LF_LAUNCH_CHECK(be, lf__cuda_ew(LF__EW_BIAS_ROWS, s_view(d), s_view(bias), s_view(NULL), 0, 0, 0,
                                        c->stream));
        beta = 1.0f;
    }
    return s_gemm_images(be, n, &A, &B, beta);
}

/* Scratch for one convolution's columns: larger images (a VAE decoder at
 * 512x512 and up) run im2col + GEMM over chunks of output pixels
 * (LF_CUDA_CONV_COL_BYTES overrides it, for tests). */
#define LF__CONV_COL_BYTES ((size_t)256 << 20)

/* CONV2D as GEMMs per image (im2col, or the input itself for a 1x1
 * stride-1 convolution in f32), operands in the precision's type: the
 * weight converted in scratch where it differs, the columns written in it by
 * im2col, at most LF__CONV_COL_BYTES of them at a time (chunks of pixels,
 * the same for every image). Per image: batch-invariant by construction. */
static int s_op_conv2d(lf_backend_t *be, const lf_node_t *n) {
    s_ctx_t *c = C(be);
    const lf_tensor_t *x = n->src[0], *w = n->src[1], *bias = n->src[2];
    lf_tensor_t *d = n->dst;
    int64_t W = x->ne[0], H = x->ne[1], Ci = x->ne[2], kw = w->ne[0], kh = w->ne[1], Co = w->ne[3];
    int64_t Wo = d->ne[0], Ho = d->ne[1], P = Wo * Ho, K = Ci * kw * kh;
    int stride = n->p.conv2d.stride, pad = n->p.conv2d.pad;
    lf_type_t t = c->compute;
    size_t es = lf_type_size(t);
    bool direct = kw == 1 && kh == 1 && stride == 1 && pad == 0 && t == LF_TYPE_F32;
    size_t wbytes = w->type != t ? s_align256((size_t)lf_tensor_nelements(w) * es) : 0;
    int64_t chunk = direct ? P : (int64_t)(c->col_bytes / ((size_t)K * es));
    if (chunk < 1) chunk = 1;
    if (chunk > P) chunk = P;
    size_t cbytes = direct ? 0 : (size_t)(K * chunk) * es;
    void *work = NULL, *col = NULL;
    const void *wdata = w->data;
    if (wbytes || cbytes) {
        int rc = s_work(be, wbytes + cbytes, &work);
        if (rc) return rc;
        col = (char *)work + wbytes;
    }
    if (wbytes) {
        LF_LAUNCH_CHECK(be, lf__cuda_convert(work, (int)t, s_view(w), c->stream));
        wdata = work;
    }
    float alpha = 1.0f, beta = 0.0f;
    if (bias) {
        /* Prefill dst, viewed as [P, Co, N], with the bias read through a
         * view of stride 0 along pixels and images; the GEMM adds (beta 1). */
        lf_tensor_t dv = lf_tensor_4d(LF_TYPE_F32, P, Co, x->ne[3], 1, d->data);
        lf_tensor_t bv = dv;
        bv.type = bias->type, bv.data = bias->data;
        bv.nb[0] = 0, bv.nb[1] = bias->nb[0], bv.nb[2] = bv.nb[3] = 0;
        LF_LAUNCH_CHECK(be, lf__cuda_ew(LF__EW_COPY, s_view(&dv), s_view(&bv), s_view(NULL), 0, 0, 0, c->stream));
        beta = 1.0f;
    }
    cudaDataType_t ty = s_cuda_type(t);
    cublasComputeType_t ct = s_compute(c, t);
    for (int64_t i = 0; i < x->ne[3]; i++) {
        const float *xn = (const float *)x->data + i * Ci * W * H;
        float *yn = (float *)d->data + i * Co * P;
        for (int64_t p0 = 0; p0 < P; p0 += chunk) {
            int64_t pn = P - p0 < chunk ? P - p0 : chunk;
            const void *B = xn;
            if (!direct) {
                LF_LAUNCH_CHECK(be, lf__cuda_im2col(col, (int)t, xn, W, H, Ci, kw, kh, Wo, Ho, stride, pad, p0,
                                                    pn, c->stream));
                B = col;
            }
            /* Row-major Y[Co][p0 .. p0+pn) = Wm[Co][K] . Col[K][pn]  <=>
             * column-major rows p0.. of Y^T(P x Co) = Col^T(pn x K) . Wm^T(K x Co). */
            LF_CUBLAS_CHECK(be, cublasGemmEx(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)pn, (int)Co, (int)K, &alpha,
                                             B, ty, direct ? (int)P : (int)pn, wdata, ty, (int)K, &beta, yn + p0,
                                             CUDA_R_32F, (int)P, ct, CUBLAS_GEMM_DEFAULT));
        }
    }
    return 0;
}

static int s_op_rows(lf_backend_t *be, const lf_node_t *n) {
    int op = n->op == LF_OP_SOFTMAX ? 0 : n->op == LF_OP_LAYER_NORM ? 1 : 2;
    float p = n->op == LF_OP_SOFTMAX ? n->p.softmax.scale : n->p.norm.eps;
    const lf_tensor_t *g = n->op == LF_OP_SOFTMAX ? NULL : n->src[1];
    const lf_tensor_t *b = n->op == LF_OP_LAYER_NORM ? n->src[2] : NULL;
    LF_LAUNCH_CHECK(be, lf__cuda_rows(op, s_view(n->dst), s_view(n->src[0]), s_view(g), s_view(b), p,
                                      C(be)->stream));
    return 0;
}

static int s_op_group_norm(lf_backend_t *be, const lf_node_t *n) {
    LF_LAUNCH_CHECK(be, lf__cuda_group_norm(s_view(n->dst), s_view(n->src[0]), s_view(n->src[1]),
                                            s_view(n->src[2]), n->p.group_norm.groups, n->p.group_norm.eps,
                                            n->p.group_norm.act, C(be)->stream));
    return 0;
}

/* Attention for head sizes above the fused kernel's limit (the VAE's single
 * 512-channel head): blocks of R query rows at a time, S = scale Q K^T for
 * all heads by one strided-batched GEMM, mask, row softmax in place, then
 * O = P V. Memory is R x Nk x H floats with R chosen so that it stays under
 * 64 MiB: O(N), never the whole N x N matrix. */
static int s_attention_blocked(lf_backend_t *be, const lf_node_t *n) {
    s_ctx_t *c = C(be);
    const lf_tensor_t *q = n->src[0], *k = n->src[1], *v = n->src[2], *mask = n->src[3];
    lf_tensor_t *d = n->dst;
    int64_t D = q->ne[0], Dv = v->ne[0], Nq = q->ne[1], Nk = k->ne[1], H = q->ne[2];
    int64_t R = ((int64_t)64 << 20) / 4 / (Nk * H);
    if (R < 1) R = 1;
    if (R > Nq) R = Nq;
    void *w;
    int rc = s_work(be, (size_t)(R * Nk * H) * 4, &w);
    if (rc) return rc;
    float *S = w;
    float alpha = n->p.attention.scale, one = 1.0f, zero = 0.0f;
    int ldq = (int)(q->nb[1] / 4), ldk = (int)(k->nb[1] / 4), ldv = (int)(v->nb[1] / 4), ldd = (int)(d->nb[1] / 4);
    if (Nq == 1) ldq = (int)D, ldd = (int)Dv;
    if (Nk == 1) ldk = (int)D, ldv = (int)Dv;
    for (int64_t b = 0; b < q->ne[3]; b++)
        for (int64_t r0 = 0; r0 < Nq; r0 += R) {
            int64_t rows = Nq - r0 < R ? Nq - r0 : R;
            const char *qb = (const char *)q->data + b * (int64_t)q->nb[3] + r0 * (int64_t)q->nb[1];
            const char *kb = (const char *)k->data + b * (int64_t)k->nb[3];
            const char *vb = (const char *)v->data + b * (int64_t)v->nb[3];
            char *db = (char *)d->data + b * (int64_t)d->nb[3] + r0 * (int64_t)d->nb[1];
            /* Column-major: S_h (Nk x rows) = K_h^T (Nk x D) . Q_h (D x rows). */
            LF_CUBLAS_CHECK(be, cublasGemmStridedBatchedEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)Nk, (int)rows, (int)D,
                                                           &alpha, kb, CUDA_R_32F, ldk, (long long)(k->nb[2] / 4), qb,
                                                           CUDA_R_32F, ldq, (long long)(q->nb[2] / 4), &zero, S,
                                                           CUDA_R_32F, (int)Nk, (long long)(Nk * R), (int)H,
                                                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            lf_tensor_t sv = lf_tensor_4d(LF_TYPE_F32, Nk, rows, H, 1, S);
            sv.nb[2] = (size_t)(Nk * R) * 4;
            if (mask) {
                lf_tensor_t mv = lf_tensor_slice(mask, 1, r0, rows);
                LF_LAUNCH_CHECK(be, lf__cuda_ew(LF__EW_ADD, s_view(&sv), s_view(&sv), s_view(&mv), 0, 0, 0, c->stream));
            }
            LF_LAUNCH_CHECK(be, lf__cuda_rows(0, s_view(&sv), s_view(&sv), s_view(NULL), s_view(NULL), 1.0f, c->stream));
            /* O_h^T (Dv x rows) = V_h^T (Dv x Nk) . P_h^T (Nk x rows). */
            LF_CUBLAS_CHECK(be, cublasGemmStridedBatchedEx(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)Dv, (int)rows, (int)Nk,
                                                           &one, vb, CUDA_R_32F, ldv, (long long)(v->nb[2] / 4), S,
                                                           CUDA_R_32F, (int)Nk, (long long)(Nk * R), &zero, db,
                                                           CUDA_R_32F, ldd, (long long)(d->nb[2] / 4), (int)H,
                                                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
    return 0;
}

/* Fused attention for head sizes up to LF__CUDA_ATTN_MAXD: on tensor cores
 * in the precision's 16-bit type (lf_cuda_attention_tc.cu) where the
 * device has the shared memory it needs, else (and under f32) on CUDA cores
 * in f32 (lf_cuda_attention.cu). Larger heads: the blocked form, f32. */
static int s_op_attention(lf_backend_t *be, const lf_node_t *n) {
    s_ctx_t *c = C(be);
    int64_t D = n->src[0]->ne[0], Dv = n->src[2]->ne[0];
    if (D > LF__CUDA_ATTN_MAXD || Dv > LF__CUDA_ATTN_MAXD || getenv("LF_CUDA_ATTN_BLOCKED"))
        return s_attention_blocked(be, n);
    if (c->compute != LF_TYPE_F32 && lf__cuda_attention_tc_smem(D, Dv) <= c->smem_optin) {
        LF_LAUNCH_CHECK(be, lf__cuda_attention_tc(s_view(n->dst), s_view(n->src[0]), s_view(n->src[1]),
                                                  s_view(n->src[2]), s_view(n->src[3]), n->p.attention.scale,
                                                  (int)c->compute, c->stream));
        return 0;
    }
    LF_LAUNCH_CHECK(be, lf__cuda_attention(s_view(n->dst), s_view(n->src[0]), s_view(n->src[1]),
                                           s_view(n->src[2]), s_view(n->src[3]), n->p.attention.scale,
                                           C(be)->stream));
    return 0;
}

static int s_ew(lf_backend_t *be, int op, const lf_tensor_t *d, const lf_tensor_t *a, const lf_tensor_t *b,
                float p0, float p1, int flag) {
    LF_LAUNCH_CHECK(be, lf__cuda_ew(op, s_view(d), s_view(a), s_view(b), p0, p1, flag, C(be)->stream));
    return 0;
}

static int s_op_ew(lf_backend_t *be, const lf_node_t *n) {
    const lf_tensor_t *a = n->src[0], *b = n->src[1];
    lf_tensor_t *d = n->dst;
    switch (n->op) {
    case LF_OP_GELU: return s_ew(be, n->p.gelu.approx ? LF__EW_GELU_TANH : LF__EW_GELU, d, a, NULL, 0, 0, 0);
    case LF_OP_SILU: return s_ew(be, LF__EW_SILU, d, a, NULL, 0, 0, 0);
    case LF_OP_QUICK_GELU: return s_ew(be, LF__EW_QUICK_GELU, d, a, NULL, 0, 0, 0);
    case LF_OP_GEGLU: return s_ew(be, LF__EW_GEGLU, d, a, NULL, 0, 0, 0);
    case LF_OP_SCALE: return s_ew(be, LF__EW_SCALE, d, a, NULL, n->p.scale.s, n->p.scale.b, 0);
    case LF_OP_CLAMP: return s_ew(be, LF__EW_CLAMP, d, a, NULL, n->p.clamp.lo, n->p.clamp.hi, 0);
    case LF_OP_ADD: return s_ew(be, LF__EW_ADD, d, a, b, 0, 0, 0);
    case LF_OP_MUL: return s_ew(be, LF__EW_MUL, d, a, b, 0, 0, 0);
    case LF_OP_UPSAMPLE2X: return s_ew(be, LF__EW_UPSAMPLE2X, d, a, NULL, 0, 0, 0);
    case LF_OP_AVG_POOL2D:
        return s_ew(be, LF__EW_AVG_POOL, d, a, NULL, (float)n->p.pool.k, (float)n->p.pool.s, 0);
    case LF_OP_ROPE: return s_ew(be, LF__EW_ROPE, d, a, b, 0, 0, 0);
    case LF_OP_TIMESTEP_EMBED:
        return s_ew(be, LF__EW_TSTEP, d, a, NULL, n->p.tstep.max_period, n->p.tstep.shift,
                    n->p.tstep.flip_sin_to_cos);
    case LF_OP_CONCAT: {
        int dim = n->p.concat.dim;
        lf_tensor_t d0 = lf_tensor_slice(d, dim, 0, a->ne[dim]);
        lf_tensor_t d1 = lf_tensor_slice(d, dim, a->ne[dim], b->ne[dim]);
        int rc = s_ew(be, LF__EW_COPY, &d0, a, NULL, 0, 0, 0);
        return rc ? rc : s_ew(be, LF__EW_COPY, &d1, b, NULL, 0, 0, 0);
    }
    case LF_OP_SPLIT: {
        lf_tensor_t v = lf_tensor_slice(a, n->p.split.dim, n->p.split.offset, d->ne[n->p.split.dim]);
        return s_ew(be, LF__EW_COPY, d, &v, NULL, 0, 0, 0);
    }
    case LF_OP_PERMUTE: {
        lf_tensor_t v = lf_tensor_permute(a, n->p.permute.axes);
        return s_ew(be, LF__EW_COPY, d, &v, NULL, 0, 0, 0);
    }
    case LF_OP_CPY:
        return s_ew(be, lf_tensor_same_shape(a, d) ? LF__EW_COPY : LF__EW_RESHAPE, d, a, NULL, 0, 0, 0);
    default: return LF_EUNSUPPORTED;
    }
}

static const lf__op_fn s_ops[LF_OP_COUNT] = {
    [LF_OP_MATMUL] = s_op_matmul,
    [LF_OP_CONV2D] = s_op_conv2d,
    [LF_OP_GROUP_NORM] = s_op_group_norm,
    [LF_OP_LAYER_NORM] = s_op_rows,
    [LF_OP_RMS_NORM] = s_op_rows,
    [LF_OP_SOFTMAX] = s_op_rows,
    [LF_OP_ATTENTION] = s_op_attention,
    [LF_OP_GELU] = s_op_ew,
    [LF_OP_GEGLU] = s_op_ew,
    [LF_OP_SILU] = s_op_ew,
    [LF_OP_QUICK_GELU] = s_op_ew,
    [LF_OP_ADD] = s_op_ew,
    [LF_OP_MUL] = s_op_ew,
    [LF_OP_SCALE] = s_op_ew,
    [LF_OP_CONCAT] = s_op_ew,
    [LF_OP_SPLIT] = s_op_ew,
    [LF_OP_PERMUTE] = s_op_ew,
    [LF_OP_CPY] = s_op_ew,
    [LF_OP_UPSAMPLE2X] = s_op_ew,
    [LF_OP_AVG_POOL2D] = s_op_ew,
    [LF_OP_TIMESTEP_EMBED] = s_op_ew,
    [LF_OP_ROPE] = s_op_ew,
    [LF_OP_CLAMP] = s_op_ew,
};

/* ---- memory and transfers ---- */

static int s_buffer_alloc(lf_backend_t *be, size_t size, lf_buffer_usage_t usage, lf_buffer_t *buf) {
    s_ctx_t *c = C(be);
    if (size == 0) size = 1;
    if (usage == LF_BUFFER_ACTIVATIONS) {
        int rc = s_slab_alloc(c, size, &buf->base);
        if (rc) lf__backend_seterr(be, "activation slab of %zu bytes has no room for %zu", c->slab_size, size);
        return rc;
    }
    LF_CUDA_CHECK(be, cudaMalloc(&buf->base, size));
    return 0;
}

static void s_buffer_free(lf_backend_t *be, lf_buffer_t *buf) {
    s_ctx_t *c = C(be);
    if (!buf->base) return;
    if (s_in_slab(c, buf->base)) s_slab_free(c, buf->base);
    else LF_CUDA_WARN(cudaFree(buf->base));
    buf->base = NULL;
}

static void *s_host_alloc(lf_backend_t *be, size_t size) {
    void *p = NULL;
    cudaError_t e = cudaMallocHost(&p, size ? size : 1);
    if (e != cudaSuccess) {
        lf__backend_seterr(be, "cudaMallocHost(%zu): %s", size, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

static void s_host_free(lf_backend_t *be, void *p) {
    (void)be;
    LF_CUDA_WARN(cudaFreeHost(p));
}

static int s_upload(lf_backend_t *be, void *dev, const void *host, size_t n) {
    LF_CUDA_CHECK(be, cudaMemcpyAsync(dev, host, n, cudaMemcpyHostToDevice, C(be)->stream));
    LF_CUDA_CHECK(be, cudaStreamSynchronize(C(be)->stream));
    return 0;
}

static int s_download(lf_backend_t *be, void *host, const void *dev, size_t n) {
    LF_CUDA_CHECK(be, cudaMemcpyAsync(host, dev, n, cudaMemcpyDeviceToHost, C(be)->stream));
    LF_CUDA_CHECK(be, cudaStreamSynchronize(C(be)->stream));
    return 0;
}

static int s_sync(lf_backend_t *be) {
    LF_CUDA_CHECK(be, cudaStreamSynchronize(C(be)->stream));
    return 0;
}

/* ---- graphs: run once eagerly, capture on the second run, then replay ---- */

static int s_run_nodes(lf_backend_t *be, lf_graph_t *g) {
    int n = lf__graph_n_nodes(g);
    for (int i = 0; i < n; i++) {
        int rc = lf__backend_run_node(be, lf__graph_node(g, i));
        if (rc) return rc;
    }
    return 0;
}

static void s_drop_exec(s_ctx_t *c) {
    if (c->exec) LF_CUDA_WARN(cudaGraphExecDestroy(c->exec));
    c->exec = NULL;
}

static int s_graph_compute(lf_backend_t *be, lf_graph_t *g) {
    s_ctx_t *c = C(be);
    /* Another graph, a re-planned one, or another precision (a capture
     * holds the kernels and scratch of the precision it ran in): start over
     * with an eager run, which also sizes the scratch for this precision. */
    if (c->graph != g || c->graph_version != lf__graph_version(g) || c->graph_compute != c->compute) {
        s_drop_exec(c);
        c->graph = g, c->graph_version = lf__graph_version(g), c->graph_runs = 0;
        c->graph_compute = c->compute;
    }
    c->graph_runs++;
    if (c->exec) {
        LF_CUDA_CHECK(be, cudaGraphLaunch(c->exec, c->stream));
        return 0;
    }
    if (c->no_graphs || c->graph_runs == 1) return s_run_nodes(be, g);
    cudaGraph_t cg = NULL;
    LF_CUDA_CHECK(be, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    int rc = s_run_nodes(be, g);
    cudaError_t e = cudaStreamEndCapture(c->stream, &cg);
    if (rc || e != cudaSuccess) {
        if (cg) LF_CUDA_WARN(cudaGraphDestroy(cg));
        lf_warn("cuda: graph capture failed (%s); running eagerly", rc ? be->errstr : cudaGetErrorString(e));
        c->no_graphs = true;
        (void)cudaGetLastError();
        return s_run_nodes(be, g);
    }
    e = cudaGraphInstantiate(&c->exec, cg, 0);
    LF_CUDA_WARN(cudaGraphDestroy(cg));
    LF_CUDA_CHECK(be, e);
    LF_CUDA_CHECK(be, cudaGraphLaunch(c->exec, c->stream));
    return 0;
}

static size_t s_workspace_bytes(const lf_backend_t *be) {
    const s_ctx_t *c = be->ctx;
    return c->work_size + LF__CUBLAS_WS;
}

static void s_destroy(lf_backend_t *be) {
    s_ctx_t *c = be->ctx;
    if (!c) return;
    s_drop_exec(c);
    if (c->stream) LF_CUDA_WARN(cudaStreamSynchronize(c->stream));
    if (c->cublas) LF_CUBLAS_WARN(cublasDestroy(c->cublas));
    if (c->cublas_ws) LF_CUDA_WARN(cudaFree(c->cublas_ws));
    if (c->work) LF_CUDA_WARN(cudaFree(c->work));
    if (c->slab) LF_CUDA_WARN(cudaFree(c->slab));
    if (c->stream) LF_CUDA_WARN(cudaStreamDestroy(c->stream));
    free(c->blocks);
    free(c);
    be->ctx = NULL;
}

/* The precision a device of compute capability cc runs p in: 16-bit
 * operands need tensor cores (sm_70: f16; sm_80: bf16 as well). */
static lf_precision_t s_precision_for(int cc, lf_precision_t p) {
    if (p == LF_PRECISION_F32 || cc < 70) return LF_PRECISION_F32;
    if (p == LF_PRECISION_F16 || cc < 80) return LF_PRECISION_F16;
    return LF_PRECISION_BF16;
}

static lf_precision_t s_set_precision(lf_backend_t *be, lf_precision_t p) {
    s_ctx_t *c = be->ctx;
    lf_precision_t in = s_precision_for(c->cc, p);
    c->compute = in == LF_PRECISION_BF16 ? LF_TYPE_BF16 : in == LF_PRECISION_F16 ? LF_TYPE_F16 : LF_TYPE_F32;
    return in;
}

static const lf__backend_iface_t s_iface = {
    .name = "cuda",
    .host_memory = false,
    .supports_op = s_supports_op,
    .buffer_alloc = s_buffer_alloc,
    .buffer_free = s_buffer_free,
    .host_alloc = s_host_alloc,
    .host_free = s_host_free,
    .upload = s_upload,
    .download = s_download,
    .sync = s_sync,
    .graph_compute = s_graph_compute,
    .workspace_bytes = s_workspace_bytes,
    .set_precision = s_set_precision,
    .destroy = s_destroy,
    .ops = s_ops,
};

bool lf_backend_cuda_available(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return n > 0;
}

int lf_backend_cuda_devices(int *n, char *why, size_t whylen) {
    int c = 0;
    cudaError_t e = cudaGetDeviceCount(&c);
    if (n) *n = e == cudaSuccess ? c : 0;
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (why && whylen) snprintf(why, whylen, "the CUDA runtime finds no usable GPU: %s", cudaGetErrorString(e));
        return LF_ECUDA;
    }
    return 0;
}

int lf_backend_cuda_device_props(int idx, char *name, size_t namelen, uint64_t *total_bytes) {
    struct cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, idx);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (name && namelen) snprintf(name, namelen, "CUDA device %d: %s", idx, cudaGetErrorString(e));
        return LF_ECUDA;
    }
    if (name && namelen) snprintf(name, namelen, "%s", prop.name);
    if (total_bytes) *total_bytes = (uint64_t)prop.totalGlobalMem;
    return 0;
}

lf_precision_t lf_backend_cuda_precision(int device, lf_precision_t p) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        (void)cudaGetLastError();
        return LF_PRECISION_F32;
    }
    return s_precision_for(prop.major * 10 + prop.minor, p);
}

static int s_init(lf_backend_t *be, int device, size_t slab_bytes) {
    s_ctx_t *c = be->ctx;
    LF_CUDA_CHECK(be, cudaSetDevice(device));
    LF_CUDA_CHECK(be, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    LF_CUBLAS_CHECK(be, cublasCreate(&c->cublas));
    LF_CUBLAS_CHECK(be, cublasSetStream(c->cublas, c->stream));
    /* A fixed workspace keeps cuBLAS from allocating during graph capture. */
    LF_CUDA_CHECK(be, cudaMalloc(&c->cublas_ws, LF__CUBLAS_WS));
    LF_CUBLAS_CHECK(be, cublasSetWorkspace(c->cublas, c->cublas_ws, LF__CUBLAS_WS));
    LF_CUDA_CHECK(be, cudaMalloc((void **)&c->slab, slab_bytes));
    c->slab_size = slab_bytes;
    c->cap_blocks = 16;
    c->blocks = calloc((size_t)c->cap_blocks, sizeof *c->blocks);
    if (!c->blocks) return LF_ENOMEM;
    c->blocks[0] = (s_block_t){.off = 0, .size = slab_bytes, .used = false};
    c->n_blocks = 1;
    struct cudaDeviceProp prop;
    LF_CUDA_CHECK(be, cudaGetDeviceProperties(&prop, device));
    c->cc = prop.major * 10 + prop.minor;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    c->compute = LF_TYPE_F32;
    const char *tf32 = getenv("LF_CUDA_TF32"), *pi = getenv("LF_CUDA_PER_IMAGE");
    c->tf32 = tf32 && !strcmp(tf32, "1");
    c->per_image = pi && !strcmp(pi, "1");
    const char *cb = getenv("LF_CUDA_CONV_COL_BYTES");
    c->col_bytes = cb && atoll(cb) > 0 ? (size_t)atoll(cb) : LF__CONV_COL_BYTES;
    lf_precision_t best = s_precision_for(c->cc, LF_PRECISION_AUTO);
    snprintf(be->describe, sizeof be->describe,
             "cuda: device %d %.120s (sm_%d%d, %zu MiB), slab %zu MiB, 16-bit products: %s%s%s", device, prop.name,
             prop.major, prop.minor, prop.totalGlobalMem >> 20, slab_bytes >> 20,
             best == LF_PRECISION_F32 ? "none" : lf_precision_name(best), c->tf32 ? ", TF32" : "",
             c->per_image ? ", one image per product" : "");
    c->no_graphs = getenv("LF_CUDA_NO_GRAPHS") != NULL;
    return 0;
}

lf_backend_t *lf_backend_cuda_new(int device, size_t slab_bytes) {
    if (!lf_backend_cuda_available()) return NULL;
    s_ctx_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->device = device;
    lf_backend_t *be = lf__backend_new(&s_iface, c);
    if (!be) {
        free(c);
        return NULL;
    }
    if (s_init(be, device, slab_bytes ? slab_bytes : (size_t)1 << 30)) {
        lf_error("cuda: backend start failed: %s", be->errstr);
        lf_backend_destroy(&be);
        return NULL;
    }
    return be;
}
