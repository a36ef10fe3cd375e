/* lf_safetensors: reads and writes .safetensors weight files.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}}), then the data area. The parser works on a
 * memory buffer and checks the header completely (length, JSON, dtypes,
 * shape x dtype == span, offsets inside the data area, no overlaps), so
 * corrupt or hostile files give an error, never a crash; opening a file is a
 * thin mmap layer over it. Tensor data is borrowed from the mapping.
 *
 * Threading: an object is immutable after construction; concurrent readers
 * are fine. Ownership: constructors hand the caller a new object ("caller
 * owns"); descriptors and strings returned by accessors are borrowed from it. */
#ifndef LF_SAFETENSORS_H
#define LF_SAFETENSORS_H

#include <stddef.h>

#include "lf_tensorinfo.h"

typedef struct lf_safetensors lf_safetensors_t;

/* Largest accepted JSON header (the format's own limit is 100 MB). */
#define LF_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

/* Maps and parses the file at path. On success *out is a new object (caller
 * owns). On failure returns LF_EIO (cannot open/map), LF_EFORMAT (bad
 * header) or LF_ENOMEM, writes a message naming the file and the tensor into
 * errstr (if errlen > 0) and leaves *out untouched. */
int lf_safetensors_open(lf_safetensors_t **out, const char *path, char *errstr, size_t errlen);

/* Parses a file image held in memory. The buffer is borrowed and must outlive
 * the object; label names it in error messages (may be NULL). Same errors as
 * lf_safetensors_open. */
int lf_safetensors_parse(lf_safetensors_t **out, const void *buf, size_t len, const char *label,
                         char *errstr, size_t errlen);

/* Destroys the object (unmapping the file); accepts NULL; sets *self_p NULL. */
void lf_safetensors_destroy(lf_safetensors_t **self_p);

/* Number of tensors; they are kept sorted by name. */
size_t lf_safetensors_count(const lf_safetensors_t *self);
/* The i-th tensor (borrowed), or NULL if i is out of range. */
const lf_tensor_info_t *lf_safetensors_at(const lf_safetensors_t *self, size_t i);
/* The tensor called name (borrowed), or NULL. */
const lf_tensor_info_t *lf_safetensors_find(const lf_safetensors_t *self, const char *name);
/* Where a tensor's bytes begin in the file (a tensor of this object, opened
 * with lf_safetensors_open), or -1 (parsed from a borrowed buffer). */
int64_t lf_safetensors_file_offset(const lf_safetensors_t *self, const lf_tensor_info_t *t);
/* A "__metadata__" value (borrowed), or NULL. */
const char *lf_safetensors_metadata(const lf_safetensors_t *self, const char *key);

/* Serialises tensors (row-major; strides are ignored, data must hold
 * numel*size contiguous bytes) and optional metadata pairs (meta[2k] key,
 * meta[2k+1] value; n_meta pairs) into a new malloc'd buffer *out_buf of
 * *out_len bytes (caller owns; free()). Names must be unique. The header is
 * padded with spaces to a multiple of 8 so data stays 8-byte aligned.
 * Returns 0, LF_EINVAL or LF_ENOMEM. */
int lf_safetensors_serialize(const lf_tensor_info_t *tensors, size_t n, const char *const *meta,
                             size_t n_meta, void **out_buf, size_t *out_len);
/* Same, written to path (replaced atomically through a temporary file).
 * Returns 0, LF_EINVAL, LF_ENOMEM or LF_EIO. */
int lf_safetensors_write(const char *path, const lf_tensor_info_t *tensors, size_t n,
                         const char *const *meta, size_t n_meta);

#endif
