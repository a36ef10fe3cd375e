/* lf_tensorinfo: the plain-data description of a tensor found in a weights
 * file (safetensors, PyTorch zip, GGUF), shared by the loaders.
 *
 * A descriptor borrows everything it points to (name, data) from the loader
 * object that produced it; it stays valid until that object is destroyed.
 * Pure data and pure functions; thread-safe. */
#ifndef LF_TENSORINFO_H
#define LF_TENSORINFO_H

#include <stddef.h>
#include <stdint.h>

#define LF_TENSOR_MAX_DIMS 8

/* Element types seen in weights files. Only F32, F16 and BF16 are used by the
 * models; the others are listed so files holding them still load. The block
 * types (GGUF's quantized ones) store blck elements in size bytes; for the
 * plain types blck is 1 and size is one element's bytes. */
#define LF_DTYPE_MAP(X)                                                        \
    X(F64, "F64", 8, 1)                                                        \
    X(F32, "F32", 4, 1)                                                        \
    X(F16, "F16", 2, 1)                                                        \
    X(BF16, "BF16", 2, 1)                                                      \
    X(I64, "I64", 8, 1)                                                        \
    X(I32, "I32", 4, 1)                                                        \
    X(I16, "I16", 2, 1)                                                        \
    X(I8, "I8", 1, 1)                                                          \
    X(U64, "U64", 8, 1)                                                        \
    X(U32, "U32", 4, 1)                                                        \
    X(U16, "U16", 2, 1)                                                        \
    X(U8, "U8", 1, 1)                                                          \
    X(BOOL, "BOOL", 1, 1)                                                      \
    X(F8_E4M3, "F8_E4M3", 1, 1)                                                \
    X(F8_E5M2, "F8_E5M2", 1, 1)                                                \
    X(Q4_0, "Q4_0", 18, 32)                                                    \
    X(Q4_1, "Q4_1", 20, 32)                                                    \
    X(Q5_0, "Q5_0", 22, 32)                                                    \
    X(Q5_1, "Q5_1", 24, 32)                                                    \
    X(Q8_0, "Q8_0", 34, 32)                                                    \
    X(Q4_K, "Q4_K", 144, 256)                                                  \
    X(Q5_K, "Q5_K", 176, 256)                                                  \
    X(Q6_K, "Q6_K", 210, 256)                                                  \
    X(Q8_K, "Q8_K", 292, 256)

typedef enum {
#define LF__DT_ENUM(name, str, size, blck) LF_DTYPE_##name,
    LF_DTYPE_MAP(LF__DT_ENUM)
#undef LF__DT_ENUM
    LF_DTYPE_COUNT
} lf_dtype_t;

typedef struct {
    const char *name;                     /* borrowed, NUL-terminated */
    lf_dtype_t dtype;
    int ndim;                             /* 0 for a scalar */
    int64_t shape[LF_TENSOR_MAX_DIMS];
    int64_t strides[LF_TENSOR_MAX_DIMS];  /* in elements; row-major for safetensors and GGUF */
    const void *data;                     /* borrowed; may be unaligned: read with memcpy */
    size_t nbytes;                        /* bytes spanned from data (numel * size when contiguous) */
} lf_tensor_info_t;

/* "F32", ...; never NULL (borrowed, static); "?" for an out-of-range value. */
const char *lf_dtype_name(lf_dtype_t dt);
/* Size of one element in bytes; 0 for a block type or an out-of-range value. */
size_t lf_dtype_size(lf_dtype_t dt);
/* Elements per block (1 for the plain types, 32 or 256 for the quantized
 * ones; 0 out of range) and the bytes of one block (= lf_dtype_size for the
 * plain types). A row of a block type holds a whole number of blocks. */
size_t lf_dtype_block(lf_dtype_t dt);
size_t lf_dtype_block_bytes(lf_dtype_t dt);
/* Parses a safetensors dtype string (plain types only: safetensors has no
 * block types); 0 on success, LF_EFORMAT if unknown. */
int lf_dtype_parse(const char *s, lf_dtype_t *out);
/* Number of elements (product of shape); 1 for a scalar. */
int64_t lf_tensorinfo_numel(const lf_tensor_info_t *t);
/* Converts element i (in row-major logical order, honouring strides) to float.
 * Supports F64/F32/F16/BF16 and the integer types (0 for fp8 and block
 * types: kernels/lf_quant dequantizes those); for tests and tools. */
float lf_tensorinfo_get_f32(const lf_tensor_info_t *t, int64_t i);
/* Error text for the loaders: "<label>: tensor '<name>': <message>" into a
 * caller's buffer (label NULL = "<memory>", tensor may be NULL). */
typedef struct {
    char *errstr;      /* caller's buffer; errlen 0 = no text wanted */
    size_t errlen;
    const char *label; /* file name, borrowed */
} lf_tensor_err_t;

/* Writes the message and returns code (a negative LF_E*). */
__attribute__((format(printf, 4, 5))) int lf_tensor_fail(lf_tensor_err_t *e, int code,
                                                         const char *tensor, const char *fmt, ...);

/* Maps a weights file read-only for the mmap'd loaders (safetensors, GGUF):
 * a regular file of at least min_len bytes. 0 and *map / *len (munmap them),
 * or LF_EIO / LF_EFORMAT with the reason in e. */
int lf_tensor_map_file(lf_tensor_err_t *e, const char *path, size_t min_len, void **map, size_t *len);

/* IEEE half / bfloat16 bit patterns to float. */
float lf_f16_to_f32(uint16_t h);
float lf_bf16_to_f32(uint16_t h);

#endif
