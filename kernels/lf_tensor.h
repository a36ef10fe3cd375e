/* lf_tensor: the tensor descriptor every op reads and writes.
 *
 * A tensor is plain data: an element type, up to four sizes and byte strides,
 * a data pointer and the backend buffer that pointer lies in. Dimension 0 is
 * the innermost one (ggml order), so a PyTorch NCHW activation of shape
 * [N, C, H, W] is ne = {W, H, C, N}, and a PyTorch Linear weight [out, in] is
 * ne = {in, out}. Unused dimensions have size 1. Strides nb[] are in bytes;
 * a contiguous tensor has nb[0] = element size and nb[i] = nb[i-1] * ne[i-1].
 * Views (permute, transpose, slices) change ne/nb/data and share the memory.
 *
 * Descriptors own nothing: data belongs to the buffer (a pool, an arena or
 * the caller). The helpers below are pure and thread-safe. */
#ifndef LF_TENSOR_H
#define LF_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LF_MAX_DIMS 4

/* Storage types. Compute is f32 inside every op; f16/bf16 are storage.
 *
 * The block types after LF_TYPE_BF16 are ggml's quantized ones (GGUF files
 * store them; kernels/lf_quant.h has the layouts), in lf_quant_type_t's
 * order: a row (dimension 0) is a run of blocks of lf_type_block(type)
 * weights in lf_type_size(type) bytes each, so ne[0] is a multiple of the
 * block, nb[0] is the block's bytes and nb[1] >= lf_type_row_bytes(type,
 * ne[0]). Views of a block tensor select whole rows (slices along dimension
 * 1 and up); rows are never permuted or cut. Which ops accept them is the
 * backend's supports_op: MATMUL's weight operand b, CPY to or from f32 (e.g.
 * an embedding row read back), CONV2D's weight where the backend says so. */
typedef enum {
    LF_TYPE_F32 = 0,
    LF_TYPE_F16 = 1,
    LF_TYPE_BF16 = 2,
    LF_TYPE_Q4_0 = 3,
    LF_TYPE_Q4_1 = 4,
    LF_TYPE_Q5_0 = 5,
    LF_TYPE_Q5_1 = 6,
    LF_TYPE_Q8_0 = 7,
    LF_TYPE_Q4_K = 8,
    LF_TYPE_Q5_K = 9,
    LF_TYPE_Q6_K = 10,
    LF_TYPE_Q8_K = 11,
    LF_TYPE_COUNT
} lf_type_t;

struct lf_buffer; /* a backend allocation; see lf_backend.h */

typedef struct lf_tensor {
    lf_type_t type;
    int64_t ne[LF_MAX_DIMS];  /* sizes, innermost first */
    size_t nb[LF_MAX_DIMS];   /* strides in bytes */
    void *data;               /* host or device address, depending on buffer */
    struct lf_buffer *buffer; /* borrowed; NULL for plain host memory */
    const char *name;         /* borrowed; optional, for logs */
} lf_tensor_t;

/* Size in bytes of one element (of one block for the block types, as
 * ggml_type_size); "f32", "f16", "bf16", "q8_0", "q4_k", ... */
size_t lf_type_size(lf_type_t type);
const char *lf_type_name(lf_type_t type);
/* The type named name (lf_type_name's spelling, any case), or -1. */
int lf_type_parse(const char *name);
/* True for the block (quantized) types. */
bool lf_type_is_quant(lf_type_t type);
/* Elements per block: 1 for f32/f16/bf16, 32 or 256 for the block types. */
int64_t lf_type_block(lf_type_t type);
/* Bytes of a contiguous row of n elements (n a multiple of the block). */
size_t lf_type_row_bytes(lf_type_t type, int64_t n);

/* A contiguous descriptor of the given sizes (missing trailing sizes are 1)
 * over data (may be NULL until placed). */
lf_tensor_t lf_tensor_make(lf_type_t type, int n_dims, const int64_t *ne, void *data);
/* Shorthand: lf_tensor_4d(LF_TYPE_F32, W, H, C, N, data). */
lf_tensor_t lf_tensor_4d(lf_type_t type, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                         void *data);

int64_t lf_tensor_nelements(const lf_tensor_t *t);
/* Bytes spanned by a contiguous tensor of this shape (nelements * size;
 * whole blocks for the block types). */
size_t lf_tensor_nbytes(const lf_tensor_t *t);
bool lf_tensor_is_contiguous(const lf_tensor_t *t);
bool lf_tensor_same_shape(const lf_tensor_t *a, const lf_tensor_t *b);
/* Rows are contiguous in dimension 0 (nb[0] == element size). */
bool lf_tensor_rows_contiguous(const lf_tensor_t *t);

/* Views: the result shares t's memory. Each returns the view by value. */
/* Axes: result dimension i is t's dimension axes[i]. */
lf_tensor_t lf_tensor_permute(const lf_tensor_t *t, const int axes[LF_MAX_DIMS]);
lf_tensor_t lf_tensor_transpose(const lf_tensor_t *t); /* swaps dims 0 and 1 */
/* Sub-range [begin, begin+len) of dimension dim. */
lf_tensor_t lf_tensor_slice(const lf_tensor_t *t, int dim, int64_t begin, int64_t len);
/* New sizes over a contiguous tensor (same element count; asserts). */
lf_tensor_t lf_tensor_reshape(const lf_tensor_t *t, int64_t n0, int64_t n1, int64_t n2,
                              int64_t n3);

/* Scalar conversions (round to nearest even; NaN and Inf preserved). */
uint16_t lf_f32_to_f16(float f);
float lf_f16_to_f32(uint16_t h);
uint16_t lf_f32_to_bf16(float f);
float lf_bf16_to_f32(uint16_t b);

/* Row conversions between a typed array and f32 (n elements, contiguous;
 * for a block type n is a multiple of the block: dequantization bit-exact
 * with the gguf package, quantization by lf_quant_quantize). */
void lf_type_to_f32(lf_type_t type, const void *src, float *dst, int64_t n);
void lf_type_from_f32(lf_type_t type, const float *src, void *dst, int64_t n);

#endif
