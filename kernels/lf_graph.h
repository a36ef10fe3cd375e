/* lf_graph: a network recorded once and run many times.
 *
 * Model code builds a graph from the functions below; each returns the new
 * activation tensor (a descriptor owned by the graph) and records a node. The
 * graph knows every activation's lifetime, so lf_graph_plan lays them out in
 * one backend buffer with lf_arena (buffers reused, peak reported) before the
 * first run; lf_graph_compute then runs without allocating. On CUDA the
 * whole graph is captured as a CUDA Graph at the first compute and replayed.
 *
 * Weights (from lf_pool) and other tensors not made by this graph are used
 * as they are. Builders never fail loudly: on a bad shape or out of memory
 * they return NULL, the graph remembers the first error, and lf_graph_plan
 * returns it (with the detail in lf_graph_errstr); passing NULL into a
 * builder is allowed and yields NULL, so a network can be written without a
 * check after each line.
 *
 * Not thread-safe; one graph is used by one thread with one backend. */
#ifndef LF_GRAPH_H
#define LF_GRAPH_H

#include <stddef.h>
#include <stdio.h>

#include "lf_backend.h"
#include "lf_ops.h"

typedef struct lf_graph lf_graph_t;

/* Caller owns; NULL on out of memory. be is borrowed and must outlive it. */
lf_graph_t *lf_graph_new(lf_backend_t *be);
/* Takes NULL; frees the activation buffer and every descriptor. */
void lf_graph_destroy(lf_graph_t **g_p);
/* The batch's images for the nodes recorded from now on (lf_node_t.images):
 * a network with a batch of independent images sets it so each image's
 * bytes are the same whatever the batch size (the CPU backend's
 * LF_CPU_PER_IMAGE=1 mode). 0 = not known (default). */
void lf_graph_set_images(lf_graph_t *g, int64_t images);

/* An input activation (contiguous; its memory is never reused within the
 * graph). Write it with lf_backend_tensor_set after lf_graph_plan. */
lf_tensor_t *lf_graph_input(lf_graph_t *g, lf_type_t type, int64_t n0, int64_t n1, int64_t n2,
                            int64_t n3);
/* Keeps t alive (and unchanged) after the last node; read it after compute. */
lf_tensor_t *lf_graph_output(lf_graph_t *g, lf_tensor_t *t);
/* Registers view (computed from base with lf_tensor_permute / _slice /
 * _reshape / _transpose) as a graph tensor sharing base's memory. */
lf_tensor_t *lf_graph_view(lf_graph_t *g, const lf_tensor_t *base, lf_tensor_t view);

/* Generic: records node (dst ignored; created with the inferred shape). */
lf_tensor_t *lf_graph_node(lf_graph_t *g, const lf_node_t *node);

/* One builder per op (see lf_ops.h for shapes). */
lf_tensor_t *lf_graph_matmul(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b,
                             const lf_tensor_t *bias);
lf_tensor_t *lf_graph_conv2d(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *w,
                             const lf_tensor_t *bias, int stride, int pad);
lf_tensor_t *lf_graph_group_norm(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *gamma,
                                 const lf_tensor_t *beta, int groups, float eps, int silu);
lf_tensor_t *lf_graph_layer_norm(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *gamma,
                                 const lf_tensor_t *beta, float eps);
lf_tensor_t *lf_graph_rms_norm(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *gamma,
                               float eps);
lf_tensor_t *lf_graph_softmax(lf_graph_t *g, const lf_tensor_t *x, float scale);
/* q[D,Nq,H,B], k[D,Nk,H,B], v[Dv,Nk,H,B] -> [Dv,Nq,H,B]. */
lf_tensor_t *lf_graph_attention(lf_graph_t *g, const lf_tensor_t *q, const lf_tensor_t *k,
                                const lf_tensor_t *v, const lf_tensor_t *mask, float scale);
/* Multi-head attention over [C,N,B] projections (C = n_heads * D, as a
 * Linear produces them) -> [Cv,Nq,B], ready for the output projection. The
 * scale is 1/sqrt(D). */
lf_tensor_t *lf_graph_mha(lf_graph_t *g, const lf_tensor_t *q, const lf_tensor_t *k,
                          const lf_tensor_t *v, const lf_tensor_t *mask, int n_heads);
/* The same with the scale given (T5: 1) and mask [Nk,Nq] or per head [Nk,Nq,n_heads]. */
lf_tensor_t *lf_graph_mha_scaled(lf_graph_t *g, const lf_tensor_t *q, const lf_tensor_t *k,
                                 const lf_tensor_t *v, const lf_tensor_t *mask, int n_heads,
                                 float scale);
lf_tensor_t *lf_graph_gelu(lf_graph_t *g, const lf_tensor_t *x, int approx_tanh);
lf_tensor_t *lf_graph_geglu(lf_graph_t *g, const lf_tensor_t *x);
lf_tensor_t *lf_graph_silu(lf_graph_t *g, const lf_tensor_t *x);
lf_tensor_t *lf_graph_quick_gelu(lf_graph_t *g, const lf_tensor_t *x);
lf_tensor_t *lf_graph_add(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b);
lf_tensor_t *lf_graph_mul(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b);
lf_tensor_t *lf_graph_scale(lf_graph_t *g, const lf_tensor_t *x, float s, float b);
lf_tensor_t *lf_graph_concat(lf_graph_t *g, const lf_tensor_t *a, const lf_tensor_t *b, int dim);
lf_tensor_t *lf_graph_split(lf_graph_t *g, const lf_tensor_t *x, int dim, int64_t offset,
                            int64_t len);
lf_tensor_t *lf_graph_permute(lf_graph_t *g, const lf_tensor_t *x, const int axes[LF_MAX_DIMS]);
/* Contiguous copy of x with a new type (and, if n0 > 0, a new shape). */
lf_tensor_t *lf_graph_cpy(lf_graph_t *g, const lf_tensor_t *x, lf_type_t type, int64_t n0,
                          int64_t n1, int64_t n2, int64_t n3);
lf_tensor_t *lf_graph_upsample2x(lf_graph_t *g, const lf_tensor_t *x);
lf_tensor_t *lf_graph_avg_pool2d(lf_graph_t *g, const lf_tensor_t *x, int k, int s);
lf_tensor_t *lf_graph_timestep_embed(lf_graph_t *g, const lf_tensor_t *t, int dim,
                                     float max_period, int flip_sin_to_cos, float shift);
lf_tensor_t *lf_graph_rope(lf_graph_t *g, const lf_tensor_t *x, const lf_tensor_t *pe);
lf_tensor_t *lf_graph_clamp(lf_graph_t *g, const lf_tensor_t *x, float lo, float hi);

/* Plans activation memory and allocates it (once; again only after new
 * nodes). 0, or the first builder error, LF_EUNSUPPORTED (an op the backend
 * lacks), LF_ENOMEM. */
int lf_graph_plan(lf_graph_t *g);
/* Runs every node (plans first if needed). On CUDA, returns once the work is
 * queued; lf_backend_sync waits. */
int lf_graph_compute(lf_graph_t *g);
/* Called by lf_graph_compute after each node has run, in order, on the
 * calling thread (host backends that run node by node; not on CUDA): e.g.
 * to give back the file pages of the weights the node has read
 * (lf_pool_drop_tensor_pages). NULL fn removes it. */
typedef void (*lf_graph_after_fn)(void *ud, const lf_node_t *node);
void lf_graph_set_after(lf_graph_t *g, lf_graph_after_fn fn, void *ud);

int lf_graph_n_nodes(const lf_graph_t *g);
/* Floating-point operations of one compute: lf_node_flops summed over the
 * nodes (multiply-add = 2). */
double lf_graph_flops(const lf_graph_t *g);
/* Activation bytes after planning (the arena's peak) and without reuse. */
size_t lf_graph_peak_bytes(const lf_graph_t *g);
size_t lf_graph_unplanned_bytes(const lf_graph_t *g);
/* One line per node (op, shapes, types, arena offset of the result) and
 * the planned peak, for debugging a network. */
void lf_graph_print(const lf_graph_t *g, FILE *out);
/* Detail of the first error (borrowed; "" if none). */
const char *lf_graph_errstr(const lf_graph_t *g);

#endif
