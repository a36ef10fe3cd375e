/* lf_ops: the op contract shared by every backend.
 *
 * Ops are declared once, in LF_OP_LIST below; each backend fills a table
 * indexed by lf_op_t and answers supports_op. An op is described by a node:
 * the op, the destination tensor, up to four sources and the op's
 * parameters. Nodes are executed eagerly with lf_op_* (caller provides every
 * tensor, already placed in the backend's memory) or recorded in a graph
 * (lf_graph.h), which infers shapes and plans activation memory.
 *
 * Shapes use lf_tensor.h order (dimension 0 innermost). Per op:
 *  MATMUL      dst[N,M,B2,B3] = a[K,M,B2,B3] . b[K,N,b2,b3]^T + bias[N]
 *              (b broadcast over batch dims of size 1; b is a PyTorch Linear
 *              weight as stored; a/b may be transposed views; b may be of a
 *              block-quantized type, rows whole, where supports_op says so).
 *  CONV2D      dst[Wo,Ho,Co,N] = conv(x[W,H,Ci,N], w[kw,kh,Ci,Co]) + bias[Co];
 *              params stride, pad (same on both axes). NCHW as in PyTorch.
 *              MATMUL and CONV2D may carry post-ops (lf_node_t.post_act and
 *              a residual src[3]): dst = act(product + bias) + src[3]. Only
 *              the graph's fusion pass sets them, and only for a backend
 *              that claims the fused node (lf_backend_supports_op is false
 *              elsewhere), so other backends never see one.
 *  GROUP_NORM  over (ne0*ne1*ne2/groups) per group of channels (dim 2);
 *              gamma/beta [C] optional; eps; optional fused SiLU (act=1).
 *  LAYER_NORM  over dim 0; gamma/beta [ne0] optional; eps.
 *  RMS_NORM    over dim 0; gamma [ne0] optional; eps.
 *  SOFTMAX     over dim 0 of (x * scale).
 *  ATTENTION   q[D,Nq,H,B], k[D,Nk,H,B], v[Dv,Nk,H,B], mask[Nk,Nq] or
 *              [Nk,Nq,H] per head (additive, optional; T5's relative position
 *              bias) -> dst[Dv,Nq,H,B]; scale. Any strides (views of
 *              [H*D, N, B] activations work); fused, O(N) memory.
 *  GELU        erf form (approx=0) or tanh form (approx=1).
 *  GEGLU       x[2F,...] -> dst[F,...] = x[:F] * gelu(x[F:]) (diffusers).
 *  SILU, QUICK_GELU (x * sigmoid(1.702 x)), CLAMP [lo, hi], SCALE (x*s+b).
 *  ADD, MUL    dst = a op b; b broadcasts where its size is 1.
 *  CONCAT      along dim; dst = [a, b].
 *  SPLIT       dst = x[offset : offset + dst.ne[dim]] along dim (a copy).
 *  PERMUTE     dst dimension i = x dimension axes[i] (contiguous copy).
 *  CPY         strided copy with type conversion (same element count order).
 *  UPSAMPLE2X  nearest, dims 0 and 1 doubled.
 *  AVG_POOL2D  kernel k, stride s, no padding, dims 0 and 1.
 *  TIMESTEP_EMBED t[B] (f32) -> dst[dim,B]; diffusers get_timestep_embedding
 *              (max_period, flip_sin_to_cos, downscale_freq_shift).
 *  ROPE        x[D,N,H,B], pe[D,N] holding (cos, sin) per pair of x (Flux
 *              apply_rope): y0 = x0 c - x1 s, y1 = x0 s + x1 c.
 *  ADD_LOWRANK dst[N,M] = a[N,M] + (u[K,M] . v[N,K] + c[N,M]): a weight plus a
 *              low-rank product (row m of dst: a[m] + sum_k u[m][k] v[k] + c[m];
 *              a LoRA merge W0 + up . down in one pass). u, v and the optional
 *              c are contiguous f32; a has dst's type and may be dst itself;
 *              2-D. Returns LF_EOVERFLOW, with dst written whole, when a
 *              stored value is Inf or NaN in dst's type. CPU only (f32, f16,
 *              bf16); other backends do not claim it.
 *
 * Types: sources may be any storage type a backend supports (see
 * supports_op); the destination's type is the caller's choice for row-wise
 * and layout ops (converted on store) and f32 for MATMUL, CONV2D, ATTENTION
 * and TIMESTEP_EMBED.
 *
 * Thread safety: a backend executes one node at a time; use one backend per
 * worker thread. */
#ifndef LF_OPS_H
#define LF_OPS_H

#include "lf_tensor.h"

/* X(name, number of sources) */
#define LF_OP_LIST(X)      \
    X(MATMUL, 3)           \
    X(CONV2D, 3)           \
    X(GROUP_NORM, 3)       \
    X(LAYER_NORM, 3)       \
    X(RMS_NORM, 2)         \
    X(SOFTMAX, 1)          \
    X(ATTENTION, 4)        \
    X(GELU, 1)             \
    X(GEGLU, 1)            \
    X(SILU, 1)             \
    X(QUICK_GELU, 1)       \
    X(ADD, 2)              \
    X(MUL, 2)              \
    X(SCALE, 1)            \
    X(CONCAT, 2)           \
    X(SPLIT, 1)            \
    X(PERMUTE, 1)          \
    X(CPY, 1)              \
    X(UPSAMPLE2X, 1)       \
    X(AVG_POOL2D, 1)       \
    X(TIMESTEP_EMBED, 1)   \
    X(ROPE, 2)             \
    X(CLAMP, 1)            \
    X(ADD_LOWRANK, 4)

typedef enum {
#define LF__OP_ENUM(name, nsrc) LF_OP_##name,
    LF_OP_LIST(LF__OP_ENUM)
#undef LF__OP_ENUM
    LF_OP_COUNT
} lf_op_t;

#define LF_OP_EXPECTED_COUNT 24
_Static_assert(LF_OP_COUNT == LF_OP_EXPECTED_COUNT,
               "op list changed: update every backend table and the tests");

#define LF_MAX_SRC 4

/* Parameters; the member named after the op is the one read. */
typedef union {
    struct { int stride, pad; } conv2d;
    struct { int groups; float eps; int act; } group_norm;
    struct { float eps; } norm; /* LAYER_NORM, RMS_NORM */
    struct { float scale; } softmax;
    struct { float scale; } attention;
    struct { int approx; } gelu;
    struct { float s, b; } scale;
    struct { float lo, hi; } clamp;
    struct { int dim; } concat;
    struct { int dim; int64_t offset; } split;
    struct { int axes[LF_MAX_DIMS]; } permute;
    struct { int k, s; } pool;
    struct { int dim; float max_period; int flip_sin_to_cos; float shift; } tstep;
} lf_op_params_t;

typedef struct lf_node {
    lf_op_t op;
    lf_tensor_t *dst;                   /* borrowed */
    const lf_tensor_t *src[LF_MAX_SRC]; /* borrowed; NULL where optional/absent */
    lf_op_params_t p;
    /* Images of the batch this node computes (lf_graph_set_images), 0 when
     * not known. With > 1 (and LF_CPU_PER_IMAGE=1), the CPU's MATMUL and
     * CONV2D run one kernel call per image along src[0]'s outermost dimension (when it has that size),
     * so an image's bytes do not depend on the batch size: oneDNN and
     * OpenBLAS pick blockings and paths from the number of rows. */
    int64_t images;
    /* MATMUL / CONV2D post-ops, set by lf_graph_plan's fusion pass (a SILU
     * or an ADD folded into the product that feeds it): post_act 1 applies
     * SiLU to product + bias; src[3], when set, is then added (f32, dst's
     * shape, or 1 along dimensions it broadcasts over). */
    int post_act;
} lf_node_t;

/* "MATMUL", ...; never NULL. */
const char *lf_op_name(lf_op_t op);
int lf_op_nsrc(lf_op_t op);

/* Computes the destination shape of a node from its sources and parameters
 * and checks them. Returns 0 and fills ne (type: the destination's natural
 * type, i.e. that of src[0], f32 for TIMESTEP_EMBED), or LF_EINVAL. */
int lf_node_infer(const lf_node_t *node, int64_t ne[LF_MAX_DIMS], lf_type_t *type);

/* FLOPs of a node (multiply-add = 2), for benchmarks; 0 if not meaningful. */
double lf_node_flops(const lf_node_t *node);

/* ---- Eager API. All tensors must live in memory the backend can address
 * (its buffers; plain host memory for the CPU backend). dst must have the
 * inferred shape (any strides the backend supports). Returns 0, LF_EINVAL
 * for bad shapes, LF_EUNSUPPORTED when the backend lacks the case, or a
 * backend error (LF_ECUDA). On CUDA the op is queued on the backend's stream;
 * lf_backend_sync waits for it. ---- */
struct lf_backend;
typedef struct lf_backend lf_backend_t;

int lf_op_matmul(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b,
                 const lf_tensor_t *bias);
int lf_op_conv2d(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, const lf_tensor_t *w,
                 const lf_tensor_t *bias, int stride, int pad);
int lf_op_group_norm(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                     const lf_tensor_t *gamma, const lf_tensor_t *beta, int groups, float eps,
                     int silu);
int lf_op_layer_norm(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                     const lf_tensor_t *gamma, const lf_tensor_t *beta, float eps);
int lf_op_rms_norm(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                   const lf_tensor_t *gamma, float eps);
int lf_op_softmax(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, float scale);
int lf_op_attention(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *q, const lf_tensor_t *k,
                    const lf_tensor_t *v, const lf_tensor_t *mask, float scale);
int lf_op_gelu(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, int approx_tanh);
int lf_op_geglu(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x);
int lf_op_silu(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x);
int lf_op_quick_gelu(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x);
int lf_op_add(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b);
int lf_op_mul(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b);
int lf_op_scale(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, float s, float b);
int lf_op_concat(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *b,
                 int dim);
int lf_op_split(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, int dim,
                int64_t offset);
int lf_op_permute(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x,
                  const int axes[LF_MAX_DIMS]);
int lf_op_cpy(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x);
int lf_op_upsample2x(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x);
int lf_op_avg_pool2d(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, int k, int s);
int lf_op_timestep_embed(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *t, int dim,
                         float max_period, int flip_sin_to_cos, float shift);
int lf_op_rope(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, const lf_tensor_t *pe);
int lf_op_clamp(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *x, float lo, float hi);
/* c may be NULL. LF_EOVERFLOW: a result is not finite in dst's type. */
int lf_op_add_lowrank(lf_backend_t *be, lf_tensor_t *dst, const lf_tensor_t *a, const lf_tensor_t *u,
                      const lf_tensor_t *v, const lf_tensor_t *c);

/* Runs one prepared node (checks shapes, then dispatches). */
int lf_op_run(lf_backend_t *be, const lf_node_t *node);

#endif
