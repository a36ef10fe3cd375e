/* lf_pool: resident weights of one model on one backend.
 *
 * A model's weights are created here once (by the loader), uploaded once and
 * kept across jobs; the worker keeps the pool while the model stays resident
 * and destroys it on a model switch. Memory comes from large backend buffers
 * (chunks) sub-allocated with 256-byte alignment; tensors are found by name.
 * Not thread-safe: build it from one thread, then read it from any. */
#ifndef LF_POOL_H
#define LF_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "lf_backend.h"
#include "lf_ops.h"
#include "lf_tensor.h"

typedef struct lf_pool lf_pool_t;

/* chunk_bytes: size of each backend allocation (0: 256 MiB; a larger tensor
 * gets a chunk of its own). Caller owns; NULL on out of memory. */
lf_pool_t *lf_pool_new(lf_backend_t *be, size_t chunk_bytes);
/* Takes NULL; frees every chunk and descriptor. */
void lf_pool_destroy(lf_pool_t **pool_p);

/* A new contiguous tensor named name (copied), placed in pool memory; a
 * block type (lf_tensor.h) is held as stored, ne[0] a multiple of its block.
 * Returns a descriptor borrowed from the pool (valid until destroy), or NULL
 * (out of memory, duplicate name, bad type or row length). */
lf_tensor_t *lf_pool_tensor(lf_pool_t *pool, const char *name, lf_type_t type, int n_dims,
                            const int64_t *ne);
/* A tensor whose bytes stay in their file, at offset (a host backend's
 * weights used as stored, so a load copies nothing): the pool maps the file
 * once, private and copy-on-write (a LoRA merge writes private copies of
 * the pages it changes, never the file), and unmaps it at destroy. The
 * pages count in RSS once read and can be dropped again
 * (lf_pool_drop_pages). NULL: not a host backend, the file cannot be
 * mapped, the bytes lie outside it, or as lf_pool_tensor. Not for a
 * tensor that is loaded afterwards (it already holds the file's bytes).
 * Its buffer is marked LF_BUFFER_WEIGHTS_MAPPED (the CPU backend may keep
 * a pre-packed copy in place of its pages). */
lf_tensor_t *lf_pool_tensor_mapped(lf_pool_t *pool, const char *name, lf_type_t type, int n_dims,
                                   const int64_t *ne, const char *path, uint64_t offset);
/* Lets the kernel take back the pages of the mapped tensors whose names
 * begin with prefix (NULL: all): they are read from the file again when
 * used (usually still in the page cache), so a network that is not running
 * does not count in this process's RSS; the backend's pre-packed copies of
 * them go too, or give back their pages where they live in a file
 * (lf_backend_release, switched out). Only while those tensors hold
 * their file's bytes: a tensor changed in place (a merged LoRA) would go
 * back to the file's values. Returns the bytes dropped. */
size_t lf_pool_drop_pages(lf_pool_t *pool, const char *prefix);
/* The same for one tensor, any descriptor over this pool's mapped bytes (a
 * weight or a contiguous view of one): the whole pages inside t's bytes;
 * 0 (nothing done) for a tensor elsewhere (activations, copied weights) or
 * a strided view. Cheap enough to call after every node of a graph
 * (lf_graph_set_after), which keeps a network's resident weights to the
 * layer running; a pre-packed copy of t in a file gives back its pages too
 * (lf_backend_release), one in memory stays. Same condition as
 * lf_pool_drop_pages. Counts both in the bytes returned. */
size_t lf_pool_drop_tensor_pages(const lf_pool_t *pool, const lf_tensor_t *t);
/* An lf_graph_after_fn (ud: the const lf_pool_t *): drops the pages of the
 * mapped weights among node's sources (lf_pool_drop_tensor_pages). */
void lf_pool_release_after(void *pool, const lf_node_t *node);
/* Uploads host bytes into t (from this pool); nbytes = lf_tensor_nbytes(t). */
int lf_pool_load(lf_pool_t *pool, lf_tensor_t *t, const void *host, size_t nbytes);
/* Uploads host data stored as host_type (e.g. a bf16 checkpoint) into t,
 * converting to t's type on the way (e.g. f32 for the CPU backend, whose
 * oneDNN convolution and sgemm want f32; a block type quantizes on load,
 * lf_quant_quantize). nbytes is the host size, which must hold exactly t's
 * element count. A temporary host copy is made when the types differ. 0,
 * LF_EINVAL, LF_EUNSUPPORTED (no quantizer for t's block type), LF_ENOMEM
 * or a backend error. */
int lf_pool_load_as(lf_pool_t *pool, lf_tensor_t *t, const void *host, lf_type_t host_type,
                    size_t nbytes);
/* The tensor with this name, or NULL (borrowed). */
lf_tensor_t *lf_pool_find(const lf_pool_t *pool, const char *name);
/* Bytes in tensors (mapped ones included), bytes reserved in chunks, number
 * of tensors. */
size_t lf_pool_used(const lf_pool_t *pool);
size_t lf_pool_reserved(const lf_pool_t *pool);
int lf_pool_count(const lf_pool_t *pool);
/* Which model the pool holds (copied; "" until set); lets a worker keep the
 * pool when the next job wants the same model. */
int lf_pool_set_model(lf_pool_t *pool, const char *model_key);
const char *lf_pool_model(const lf_pool_t *pool);

#endif
