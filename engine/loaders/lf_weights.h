/* lf_weights: one weights file (.safetensors, .gguf, or a .pt/.pth/.ckpt
 * PyTorch zip read by the restricted reader) and the upload of its tensors into a
 * resident lf_pool with a type conversion.
 *
 * Names and shapes are those of the file (PyTorch order, row-major); a
 * tensor of torch shape [a, b, c, d] becomes an lf tensor ne = {d, c, b, a}.
 * Key-name maps (checkpoint layouts) live in lf_keymap.
 *
 * Threading: immutable after open; uploads write only the pool given.
 * Ownership: lf_weights_open hands the caller the object; descriptors and
 * strings from accessors are borrowed from it. */
#ifndef LF_WEIGHTS_H
#define LF_WEIGHTS_H

#include <stddef.h>

#include "lf_pool.h"
#include "lf_tensorinfo.h"

typedef struct lf_weights lf_weights_t;

/* Opens path: GGUF when the file starts with "GGUF", safetensors when it
 * starts like one (8-byte header length then '{'), else a PyTorch zip; a
 * "*.safetensors.index.json" opens the shards its weight_map names (in the
 * index's folder) as one set of tensors (metadata: the first shard's). 0, or
 * LF_EIO / LF_EFORMAT / LF_EUNSUPPORTED / LF_ENOMEM with a message naming the file in err. */
int lf_weights_open(lf_weights_t **out, const char *path, char *err, size_t errlen);
void lf_weights_destroy(lf_weights_t **self_p);

const char *lf_weights_path(const lf_weights_t *self);
size_t lf_weights_count(const lf_weights_t *self);
const lf_tensor_info_t *lf_weights_at(const lf_weights_t *self, size_t i);
/* By exact name, or NULL. */
const lf_tensor_info_t *lf_weights_find(const lf_weights_t *self, const char *name);
/* A safetensors "__metadata__" value, a GGUF string value or a torch zip's
 * top-level string entry (lf_torchzip_metadata), or NULL. */
const char *lf_weights_metadata(const lf_weights_t *self, const char *key);
/* A PyTorch zip's pickled value at a dotted path as JSON (lf_torchzip_json;
 * *out caller owns); LF_ENOTFOUND for other formats. */
int lf_weights_json(const lf_weights_t *self, const char *path, char **out);

/* Copies tensor t (from this file) into a new pool tensor named pool_name,
 * converted to type: an lf_type_t, -1 (as stored when f32/f16/bf16, else
 * f32) or LF_WEIGHTS_STORED (as stored, GGUF block types included: the
 * quantized weights the backends' MATMUL takes). Float dtypes
 * F64/F32/F16/BF16 and GGUF's block types (dequantized by lf_quant,
 * bit-exact with the gguf package) only; more than 4 dims is refused. A
 * block lf_type_t as type quantizes on load (lf_quant_quantize; rows must be
 * a multiple of the block; the types lf_quant_can_quantize lists, or the
 * file's own block type). *out is
 * borrowed from the pool. ndim > 0 drops trailing sizes of 1 down to ndim
 * dims (a [C,C,1,1] conv kernel used as a [C,C] linear weight); 0, LF_EUNSUPPORTED, LF_ENOMEM
 * (message in err). A tensor used as stored (its own type, contiguous) from
 * a safetensors or GGUF file (a GGUF tensor starting on 32 bytes) is not
 * copied on a host backend: the pool maps it from the file copy-on-write
 * (lf_pool_tensor_mapped); LF_WEIGHTS_MAP=0 copies every tensor. */
#define LF_WEIGHTS_STORED (-2)
int lf_weights_upload(const lf_weights_t *self, const lf_tensor_info_t *t, lf_pool_t *pool,
                      const char *pool_name, int type, int ndim, lf_tensor_t **out, char *err,
                      size_t errlen);

/* Tensor t's bytes as lf_weights_upload stores them in type dt: *bytes
 * points into the file's mapping when the file holds t contiguous in dt (no
 * copy), else into *buf, grown with realloc to what the conversion needs
 * (the caller frees it; it may be reused across calls). *bytes stays valid
 * while the file is open and *buf unchanged. 0, LF_EUNSUPPORTED, LF_ENOMEM. */
int lf_weights_bytes_as(const lf_tensor_info_t *t, lf_type_t dt, const void **bytes, void **buf,
                        size_t *bufsize);
/* 1 when every tensor's bytes are read from the file's mapping (safetensors,
 * GGUF), 0 when deflated entries are held on the heap (a torch zip). */
int lf_weights_is_mapped(const lf_weights_t *self);
/* Lets the kernel drop the mapped file pages under tensor t (safetensors
 * only; a later read refaults them from the file): the process's RSS stops
 * counting a tensor once it has been copied. */
void lf_weights_drop_pages(const lf_weights_t *self, const lf_tensor_info_t *t);

/* Reads tensor t converted to f32 into dst (numel floats, row-major); block
 * types are dequantized. 0 or LF_EUNSUPPORTED. */
int lf_weights_read_f32(const lf_tensor_info_t *t, float *dst);

#endif
