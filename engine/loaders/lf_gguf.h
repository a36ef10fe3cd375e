/* lf_gguf: reads GGUF weight files (versions 2 and 3), the format of
 * llama.cpp, stable-diffusion.cpp and ComfyUI-GGUF.
 *
 * A file is: magic "GGUF", u32 version, u64 tensor count, u64 key/value
 * count, the key/values (u64-length strings, a u32 value type, the value;
 * arrays carry an element type and a u64 count), the tensor infos (name,
 * u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset into
 * the data area), padding to the alignment (`general.alignment`, default
 * 32), then the data area. All little-endian.
 *
 * The parser works on a memory buffer and checks everything before it
 * trusts it (magic, version, counts against the bytes left, string lengths,
 * value types, nesting, dims, types, row sizes a whole number of blocks,
 * every tensor's byte range inside the data area and aligned, no overlaps,
 * no duplicate names or keys), so corrupt or hostile files give an error
 * naming the file (and the tensor or key), never a crash; opening a file is
 * a thin mmap layer over it, as lf_safetensors. Tensor data is borrowed from
 * the mapping.
 *
 * Tensors are described as lf_tensor_info_t in PyTorch order (GGUF's ne[]
 * reversed: a Linear weight with ne = {in, out} is shape [out, in]); the
 * quantized types are the block dtypes of lf_tensorinfo.h (LF_DTYPE_Q8_0,
 * ...), whose rows (shape[ndim-1]) hold a whole number of blocks;
 * kernels/lf_quant dequantizes them.
 *
 * Threading: an object is immutable after construction; concurrent readers
 * are fine. Ownership: constructors hand the caller a new object ("caller
 * owns"); descriptors, keys and values from accessors are borrowed from it. */
#ifndef LF_GGUF_H
#define LF_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "lf_tensorinfo.h"

typedef struct lf_gguf lf_gguf_t;

/* Metadata value types, numbered as in the file. */
typedef enum {
    LF_GGUF_U8 = 0,
    LF_GGUF_I8 = 1,
    LF_GGUF_U16 = 2,
    LF_GGUF_I16 = 3,
    LF_GGUF_U32 = 4,
    LF_GGUF_I32 = 5,
    LF_GGUF_F32 = 6,
    LF_GGUF_BOOL = 7,
    LF_GGUF_STRING = 8,
    LF_GGUF_ARRAY = 9,
    LF_GGUF_U64 = 10,
    LF_GGUF_I64 = 11,
    LF_GGUF_F64 = 12,
    LF_GGUF_VTYPE_COUNT
} lf_gguf_vtype_t;

/* ggml's limit on tensor dimensions. */
#define LF_GGUF_MAX_DIMS 4
/* Longest accepted key or tensor name, and deepest array nesting. */
#define LF_GGUF_MAX_NAME 65535u
#define LF_GGUF_MAX_NESTING 4

/* Maps and parses the file at path. On success *out is a new object (caller
 * owns). On failure returns LF_EIO (cannot open/map), LF_EFORMAT (bad file),
 * LF_EUNSUPPORTED (a valid file with a tensor type this reader does not
 * decode: IQ*, Q2_K, Q3_K, Q8_1) or LF_ENOMEM, writes a message naming the
 * file and the tensor or key into errstr (if errlen > 0) and leaves *out
 * untouched. */
int lf_gguf_open(lf_gguf_t **out, const char *path, char *errstr, size_t errlen);

/* Parses a file image held in memory. The buffer is borrowed and must
 * outlive the object; label names it in error messages (may be NULL). Same
 * errors as lf_gguf_open. */
int lf_gguf_parse(lf_gguf_t **out, const void *buf, size_t len, const char *label, char *errstr,
                  size_t errlen);

/* Destroys the object (unmapping the file); accepts NULL; sets *self_p NULL. */
void lf_gguf_destroy(lf_gguf_t **self_p);

/* The file's version (2 or 3), its alignment and where its data area starts
 * (bytes from the start of the file). */
uint32_t lf_gguf_version(const lf_gguf_t *self);
size_t lf_gguf_alignment(const lf_gguf_t *self);
size_t lf_gguf_data_offset(const lf_gguf_t *self);
/* Where tensor t's bytes start in the file (bytes from its start), or -1
 * when t is not from this object's own mapping (a parsed buffer, or a
 * range outside the file): what a pool maps copy-on-write instead of
 * copying (lf_pool_tensor_mapped). */
int64_t lf_gguf_file_offset(const lf_gguf_t *self, const lf_tensor_info_t *t);

/* Number of tensors; they are kept sorted by name. */
size_t lf_gguf_count(const lf_gguf_t *self);
/* The i-th tensor (borrowed), or NULL if i is out of range. */
const lf_tensor_info_t *lf_gguf_at(const lf_gguf_t *self, size_t i);
/* The tensor called name (borrowed), or NULL. */
const lf_tensor_info_t *lf_gguf_find(const lf_gguf_t *self, const char *name);

/* Key/value metadata, in file order. */
size_t lf_gguf_kv_count(const lf_gguf_t *self);
/* The index of key, or -1. */
long lf_gguf_kv_find(const lf_gguf_t *self, const char *key);
/* Key i (borrowed), or NULL out of range. */
const char *lf_gguf_kv_key(const lf_gguf_t *self, size_t i);
/* Type of value i (LF_GGUF_VTYPE_COUNT out of range). */
lf_gguf_vtype_t lf_gguf_kv_type(const lf_gguf_t *self, size_t i);
/* Value i as an integer (any integer type or bool): 0, or LF_EINVAL (other
 * type, out of range, or a u64 above INT64_MAX). */
int lf_gguf_kv_int(const lf_gguf_t *self, size_t i, int64_t *out);
/* Value i as a double (a float or an integer type): 0 or LF_EINVAL. */
int lf_gguf_kv_float(const lf_gguf_t *self, size_t i, double *out);
/* Value i when it is a string (borrowed, NUL-terminated; a string holding
 * a NUL reads as cut there), else NULL. */
const char *lf_gguf_kv_str(const lf_gguf_t *self, size_t i);
/* Value i when it is an array: 0 with its element type and count, else
 * LF_EINVAL. Elements of scalar type are read with lf_gguf_kv_array_data
 * (borrowed, packed little-endian, possibly unaligned: memcpy), strings with
 * lf_gguf_kv_array_str; nested arrays are validated but not exposed. */
int lf_gguf_kv_array(const lf_gguf_t *self, size_t i, lf_gguf_vtype_t *etype, uint64_t *count);
const void *lf_gguf_kv_array_data(const lf_gguf_t *self, size_t i);
/* Element j of string array i (borrowed, NUL-terminated), or NULL. */
const char *lf_gguf_kv_array_str(const lf_gguf_t *self, size_t i, uint64_t j);
/* The string value of key, or NULL (not present or not a string). */
const char *lf_gguf_metadata(const lf_gguf_t *self, const char *key);

#endif
