/* lf_backend: a compute device behind one small interface.
 *
 * A backend owns its device memory, its worker threads (CPU) or stream and
 * cuBLAS handle (CUDA), and a table with one implementation per op
 * (lf_ops.h). The CPU backend is always built and is the reference; the CUDA
 * backend is built where nvcc exists and found at run time
 * (lf_backend_cuda_available). Model code sees only lf_ types.
 *
 * Threading: a backend is used by one thread at a time (one per worker).
 * Ownership: constructors return objects the caller owns; destroy functions
 * take T ** and null the caller's pointer. */
#ifndef LF_BACKEND_H
#define LF_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "lf_ops.h"
#include "lf_tensor.h"

/* Memory a backend allocated; plain data. */
/* LF_BUFFER_WEIGHTS_MAPPED marks (never allocates) weights whose bytes lie in
 * a private file mapping (lf_pool_tensor_mapped): the CPU backend may keep a
 * pre-packed copy of such a weight instead of its pages (they are handed
 * back to the kernel and read from the file again if used). */
typedef enum {
    LF_BUFFER_WEIGHTS = 0,
    LF_BUFFER_ACTIVATIONS = 1,
    LF_BUFFER_WEIGHTS_MAPPED = 2
} lf_buffer_usage_t;
typedef struct lf_buffer {
    lf_backend_t *backend; /* borrowed: the owner */
    void *base;            /* device (or host) address of the first byte */
    size_t size;
    lf_buffer_usage_t usage;
    void *priv; /* backend's own bookkeeping */
} lf_buffer_t;

/* CPU backend with n_threads workers for elementwise/norm/attention work
 * and OpenBLAS GEMM threads (n_threads <= 0: all online cores). Caller owns;
 * NULL on out of memory. */
lf_backend_t *lf_backend_cpu_new(int n_threads);

/* True when the CUDA backend is compiled in and a device is present. */
bool lf_backend_cuda_available(void);
/* The CUDA devices this process sees: *n their count. 0; LF_EUNSUPPORTED
 * when this build has no CUDA backend; LF_ECUDA when the runtime cannot
 * count them (no driver, no device node): why (may be NULL) then says what
 * the runtime said. */
int lf_backend_cuda_devices(int *n, char *why, size_t whylen);
/* Name (why-style sentence on failure) and total memory of device idx.
 * 0; LF_EUNSUPPORTED without CUDA; LF_ECUDA. */
int lf_backend_cuda_device_props(int idx, char *name, size_t namelen, uint64_t *total_bytes);
/* CUDA backend on a device, with one activation slab of slab_bytes reserved
 * at start (0: 1 GiB). Caller owns; NULL when CUDA is absent or fails (the
 * reason is logged). */
lf_backend_t *lf_backend_cuda_new(int device, size_t slab_bytes);

/* Takes NULL; frees the backend's threads, handles and slab. Buffers must be
 * freed first. */
void lf_backend_destroy(lf_backend_t **be_p);

/* "cpu" or "cuda"; borrowed. */
const char *lf_backend_name(const lf_backend_t *be);
/* Description of the device/library (CPU features, OpenBLAS core; GPU name). */
const char *lf_backend_describe(const lf_backend_t *be);
/* Last error detail for humans (borrowed; "" if none). */
const char *lf_backend_errstr(const lf_backend_t *be);
/* Whether the backend implements this node (types, strides, parameters). */
bool lf_backend_supports_op(lf_backend_t *be, const lf_node_t *node);
/* True for memory the host can dereference (CPU backend). */
bool lf_backend_is_host(const lf_backend_t *be);

/* Device memory. Activation buffers on CUDA come from the slab. Caller owns
 * *out (free with lf_backend_buffer_free). 0, LF_ENOMEM, LF_ECUDA. */
int lf_backend_buffer_alloc(lf_backend_t *be, size_t size, lf_buffer_usage_t usage,
                            lf_buffer_t **out);
void lf_backend_buffer_free(lf_buffer_t **buf_p);

/* Host staging memory: pinned on CUDA (fast transfers), malloc on CPU.
 * Caller owns; NULL on failure. */
void *lf_backend_host_alloc(lf_backend_t *be, size_t size);
void lf_backend_host_free(lf_backend_t *be, void *p);

/* Copies between host memory and a contiguous tensor in the backend's
 * memory (nbytes must equal lf_tensor_nbytes). Synchronous. */
int lf_backend_tensor_set(lf_backend_t *be, lf_tensor_t *t, const void *host, size_t nbytes);
int lf_backend_tensor_get(lf_backend_t *be, const lf_tensor_t *t, void *host, size_t nbytes);
/* Bytes of scratch the backend holds for ops (conversion, im2col,
 * attention tiles); grows to the largest need, then stays. */
size_t lf_backend_workspace_bytes(const lf_backend_t *be);
/* Waits for queued work. */
int lf_backend_sync(lf_backend_t *be);
/* The host bytes [p, p + n) of resident weights changed or are going away:
 * the backend drops what it derived from them (the CPU's pre-packed copies
 * in oneDNN's layouts), so that the next product reads the bytes again.
 * lf_backend_tensor_set and lf_pool (drop_pages, destroy) call it; anyone
 * who writes a weight in place otherwise (an eager op with the weight as
 * dst, a LoRA merge) calls it after. */
void lf_backend_forget(lf_backend_t *be, const void *p, size_t n);

/* Pre-packed weights: where the backend keeps the copies of resident
 * weights it converts once into its kernels' layouts (CPU: oneDNN's bf16
 * blocked and packed layouts, docs/PERFORMANCE.md "Pre-packed weights").
 * off: none, each product converts the weight as stored (about 10 % of a
 * bf16 SD1.5 step); memory: anonymous memory for the network's life (the
 * copies replace the weights' file pages in RSS, and stay there while a
 * streamed network's file pages come and go); file: an unlinked file in a
 * directory on disk, mapped, whose pages each layer gives back after it ran
 * (lf_backend_release) like a mapped weight's file pages, and which keeps
 * the copies while another network runs (no repacking per image). */
typedef enum { LF_PACK_OFF = 0, LF_PACK_MEMORY = 1, LF_PACK_FILE = 2 } lf_pack_t;
/* "off", "memory", "file". */
const char *lf_pack_name(lf_pack_t p);
/* 0 and *out, or LF_EINVAL for another word. */
int lf_pack_parse(const char *s, lf_pack_t *out);
/* Sets where pre-packed copies go from now on, dropping those made so far;
 * dir is the file mode's directory (borrowed for the call). Returns the mode
 * in effect: off on a backend that packs nothing (CUDA, CPU without oneDNN)
 * and for file where dir is unusable (missing, not writable, or tmpfs, whose
 * pages could not be given back). A new CPU backend packs in memory
 * (LF_CPU_PREPACK=0 in the environment: off). */
lf_pack_t lf_backend_set_pack(lf_backend_t *be, lf_pack_t mode, const char *dir);
lf_pack_t lf_backend_pack(const lf_backend_t *be);
/* The weights at host bytes [p, p + n) will not be read for a while: after
 * their layer ran (switched_out false) or because their network is switched
 * out (true). File-backed copies give back their pages and stay; in-memory
 * copies stay after a layer and go when switched out (as lf_backend_forget).
 * lf_pool calls it where it gives back the weights' own file pages.
 * Returns the bytes given back. */
size_t lf_backend_release(lf_backend_t *be, const void *p, size_t n, bool switched_out);
/* Bytes held in the backend's pre-packed copies (resident or not). */
size_t lf_backend_packed_bytes(const lf_backend_t *be);

/* Arithmetic of the matrix products (MATMUL's linear layers, CONV2D; on
 * CUDA also fused attention): f32, the reference; bf16 (bf16 operands, f32
 * accumulation and results, norms, softmax and everything else in f32)
 * where the backend has it (CPU: oneDNN and AVX512_BF16; CUDA: sm_80+);
 * auto: bf16 where available, else f32. f16 is the same with f16 operands:
 * what bf16 and auto run as on a GPU with f16 but no bf16 tensor cores
 * (sm_70/75); a value in effect, not a word users give (lf_precision_parse
 * takes f32, bf16, auto). */
typedef enum {
    LF_PRECISION_F32 = 0,
    LF_PRECISION_BF16 = 1,
    LF_PRECISION_AUTO = 2,
    LF_PRECISION_F16 = 3
} lf_precision_t;
/* "f32", "bf16", "auto", "f16". */
const char *lf_precision_name(lf_precision_t p);
/* 0 and *out for "f32", "bf16" or "auto", or LF_EINVAL for another word. */
int lf_precision_parse(const char *s, lf_precision_t *out);
/* Sets the precision of the following ops; returns the one in effect (f32,
 * bf16 or f16: bf16 and auto become f32 where the backend has no 16-bit
 * products, f16 on a GPU with f16 but no bf16 tensor cores). A new backend
 * computes in f32. */
lf_precision_t lf_backend_set_precision(lf_backend_t *be, lf_precision_t p);
/* The precision in effect (f32, bf16 or f16). */
lf_precision_t lf_backend_precision(const lf_backend_t *be);
/* The precision a CUDA backend on device would run p in (what
 * lf_backend_set_precision would return there), from the device's compute
 * capability, without starting a backend; f32 without CUDA or the device. */
lf_precision_t lf_backend_cuda_precision(int device, lf_precision_t p);

struct lf_profile;
/* Attaches a profile (lf_profile.h; borrowed, NULL detaches) that every
 * following node run adds its time to. */
void lf_backend_set_profile(lf_backend_t *be, struct lf_profile *prof);

#endif
