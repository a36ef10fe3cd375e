/* lf_cuda_impl: what the CUDA backend's host code (lf_cuda_backend.c, C)
 * and its kernels (lf_cuda_*.cu) share: a plain tensor view for kernels and
 * the launchers. Launchers only queue work on the given stream and return
 * the launch's cudaError_t as an int (0 = success). */
#ifndef LF_CUDA_IMPL_H
#define LF_CUDA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor as kernels see it: type is an lf_type_t value, strides in bytes. */
typedef struct {
    void *data;
    int type;
    int64_t ne[4];
    int64_t nb[4];
} lf__cuda_view_t;

/* Element-wise kernel operations (one thread per destination element). */
enum {
    LF__EW_COPY = 0, /* dst = a (same shape; views give permute/split/concat) */
    LF__EW_RESHAPE,  /* dst[k] = a[k] in row-major order of each shape */
    LF__EW_GELU,
    LF__EW_GELU_TANH,
    LF__EW_SILU,
    LF__EW_QUICK_GELU,
    LF__EW_SCALE, /* a * p0 + p1 */
    LF__EW_CLAMP, /* [p0, p1] */
    LF__EW_ADD,   /* a + b, b broadcast */
    LF__EW_MUL,
    LF__EW_GEGLU,      /* a[i] * gelu(a[i + F]) */
    LF__EW_UPSAMPLE2X, /* a[i0/2, i1/2] */
    LF__EW_AVG_POOL,   /* k = (int)p0, s = (int)p1 */
    LF__EW_ROPE,       /* b = pe[D, N] */
    LF__EW_TSTEP,      /* a = t (contiguous f32); p0 = max_period, p1 = shift, i0 = flip */
    LF__EW_BIAS_ROWS   /* dst[i0, ...] = a[i0] (prefill before a GEMM with beta = 1) */
};

int lf__cuda_ew(int op, lf__cuda_view_t dst, lf__cuda_view_t a, lf__cuda_view_t b, float p0,
                float p1, int i0, void *stream);

/* Row kernels over dimension 0: op 0 softmax (p0 = scale), 1 layer norm,
 * 2 rms norm (p0 = eps); g/b are f32-convertible vectors or data NULL. */
int lf__cuda_rows(int op, lf__cuda_view_t dst, lf__cuda_view_t x, lf__cuda_view_t g,
                  lf__cuda_view_t b, float p0, void *stream);

int lf__cuda_group_norm(lf__cuda_view_t dst, lf__cuda_view_t x, lf__cuda_view_t g,
                        lf__cuda_view_t b, int groups, float eps, int silu, void *stream);

/* Columns [p0, p0 + pn) of the column matrix [K = Ci*kh*kw][P = Ho*Wo] of
 * one image (x contiguous f32), written as a [K][pn] matrix in col_type
 * (f32, f16 or bf16). */
int lf__cuda_im2col(void *col, int col_type, const float *x, int64_t W, int64_t H, int64_t Ci,
                    int64_t kw, int64_t kh, int64_t Wo, int64_t Ho, int stride, int pad, int64_t p0,
                    int64_t pn, void *stream);

/* Contiguous copy of a view into type dst_type (operand conversion). */
int lf__cuda_convert(void *dst, int dst_type, lf__cuda_view_t src, void *stream);

/* lf_cuda_quant.cu: rows x k weights of block type `type` (an lf_type_t
 * Q4_0..Q6_K; rows row_nb bytes apart, blocks of blck weights in
 * block_bytes) dequantized into dst as contiguous dst_type (f32, f16 or
 * bf16: the f32 dequantization rounded once). */
int lf__cuda_dequant(void *dst, int dst_type, int type, const void *src, int64_t rows, int64_t k,
                     int64_t row_nb, int blck, int block_bytes, void *stream);

/* Fused attention: q[D,Nq,H,B], k[D,Nk,H,B], v[Dv,Nk,H,B], mask[Nk,Nq] or
 * data NULL; all f32 with rows contiguous; D, Dv <= LF__CUDA_ATTN_MAXD. */
#define LF__CUDA_ATTN_MAXD 160
int lf__cuda_attention(lf__cuda_view_t dst, lf__cuda_view_t q, lf__cuda_view_t k,
                       lf__cuda_view_t v, lf__cuda_view_t mask, float scale, void *stream);

/* lf_cuda_attention_tc.cu: the same on tensor cores (WMMA) with 16-bit
 * operands, type an lf_type_t (1 f16: sm_70+, 2 bf16: sm_80+), f32
 * accumulation and softmax. It needs lf__cuda_attention_tc_smem(D, Dv)
 * bytes of dynamic shared memory per block (the caller checks the device
 * allows that much). */
size_t lf__cuda_attention_tc_smem(int64_t D, int64_t Dv);
int lf__cuda_attention_tc(lf__cuda_view_t dst, lf__cuda_view_t q, lf__cuda_view_t k,
                          lf__cuda_view_t v, lf__cuda_view_t mask, float scale, int type,
                          void *stream);

#ifdef __cplusplus
}
#endif

#endif
