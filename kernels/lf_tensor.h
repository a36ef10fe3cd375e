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

/* Storage types. Compute is f32 inside every op; f16/bf16 are storage. Room
 * is left for 8-bit block types after LF_TYPE_BF16. */
typedef enum {
    LF_TYPE_F32 = 0,
    LF_TYPE_F16 = 1,
    LF_TYPE_BF16 = 2,
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

/* Size in bytes of one element; "f32", "f16", "bf16". */
size_t lf_type_size(lf_type_t type);
const char *lf_type_name(lf_type_t type);

/* A contiguous descriptor of the given sizes (missing trailing sizes are 1)
 * over data (may be NULL until placed). */
lf_tensor_t lf_tensor_make(lf_type_t type, int n_dims, const int64_t *ne, void *data);
/* Shorthand: lf_tensor_4d(LF_TYPE_F32, W, H, C, N, data). */
lf_tensor_t lf_tensor_4d(lf_type_t type, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                         void *data);

int64_t lf_tensor_nelements(const lf_tensor_t *t);
/* Bytes spanned by a contiguous tensor of this shape (nelements * size). */
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

/* Row conversions between a typed array and f32 (n elements, contiguous). */
void lf_type_to_f32(lf_type_t type, const void *src, float *dst, int64_t n);
void lf_type_from_f32(lf_type_t type, const float *src, void *dst, int64_t n);

#endif
