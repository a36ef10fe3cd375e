/* lf_backend_impl: what a backend implements; shared by the backends and
 * the dispatch code in lf_backend.c / lf_graph.c, never by model code. */
#ifndef LF_BACKEND_IMPL_H
#define LF_BACKEND_IMPL_H

#include "lf_backend.h"

struct lf_graph;

typedef int (*lf__op_fn)(lf_backend_t *be, const lf_node_t *node);

typedef struct lf__backend_iface {
    const char *name;
    bool host_memory; /* tensors are host-addressable */
    bool (*supports_op)(lf_backend_t *be, const lf_node_t *node);
    /* Optional: whether the backend runs node's post-ops (lf_node_t.post_act,
     * a MATMUL / CONV2D residual src[3]) as well; NULL: it runs none, and
     * lf_graph's fusion pass leaves its graphs unfused. */
    bool (*supports_fused)(lf_backend_t *be, const lf_node_t *node);
    /* Optional: whether node, at the precision now in effect, would read
     * its operand src[j] (f32 as recorded) as bf16, converting it itself
     * before its product, so that operand may as well be stored bf16 by
     * the node that writes it (lf_graph's bf16-activation pass); NULL, or
     * false: it reads f32 (CUDA, the CPU without oneDNN, f32 precision). */
    bool (*reads_bf16)(lf_backend_t *be, const lf_node_t *node, int j);
    int (*buffer_alloc)(lf_backend_t *be, size_t size, lf_buffer_usage_t usage, lf_buffer_t *buf);
    void (*buffer_free)(lf_backend_t *be, lf_buffer_t *buf);
    void *(*host_alloc)(lf_backend_t *be, size_t size);
    void (*host_free)(lf_backend_t *be, void *p);
    int (*upload)(lf_backend_t *be, void *dev, const void *host, size_t n);
    int (*download)(lf_backend_t *be, void *host, const void *dev, size_t n);
    int (*sync)(lf_backend_t *be);
    /* Optional: runs a whole planned graph (CUDA: capture once, replay);
     * NULL means lf_graph runs the nodes one by one. */
    int (*graph_compute)(lf_backend_t *be, struct lf_graph *g);
    size_t (*workspace_bytes)(const lf_backend_t *be); /* optional */
    /* Optional: sets the precision, returns the one in effect; NULL: f32 only. */
    lf_precision_t (*set_precision)(lf_backend_t *be, lf_precision_t p);
    /* Optional: drops what the backend derived from host bytes [p, p+n). */
    void (*forget)(lf_backend_t *be, const void *p, size_t n);
    /* Optional (pre-packed weights, lf_backend_set_pack): NULL packs nothing. */
    lf_pack_t (*set_pack)(lf_backend_t *be, lf_pack_t mode, const char *dir);
    lf_pack_t (*pack)(const lf_backend_t *be);
    size_t (*release)(lf_backend_t *be, const void *p, size_t n, bool switched_out);
    size_t (*packed_bytes)(const lf_backend_t *be);
    /* Optional: told of the profile attached (NULL: detached), so that it
     * can report parts of a node's time (lf_profile_add_part). */
    void (*set_profile)(lf_backend_t *be, struct lf_profile *prof);
    void (*destroy)(lf_backend_t *be);
    const lf__op_fn *ops; /* LF_OP_COUNT entries; NULL = not implemented */
} lf__backend_iface_t;

struct lf_backend {
    const lf__backend_iface_t *iface;
    void *ctx; /* owned by the backend */
    unsigned plans; /* graph plans made on this backend: unique graph versions */
    lf_precision_t precision; /* in effect: f32 or bf16 */
    struct lf_profile *profile; /* borrowed; NULL: none */
    char describe[256];
    char errstr[256];
};

/* Allocates the shell of a backend; NULL on out of memory. */
lf_backend_t *lf__backend_new(const lf__backend_iface_t *iface, void *ctx);
/* Records a human-readable error (printf-style) in be->errstr. */
void lf__backend_seterr(lf_backend_t *be, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Runs node without re-checking shapes (graph already checked). */
int lf__backend_run_node(lf_backend_t *be, const lf_node_t *node);

/* Graph internals the CUDA backend needs to replay a graph. */
int lf__graph_n_nodes(const struct lf_graph *g);
const lf_node_t *lf__graph_node(const struct lf_graph *g, int i);
/* A version number, unique among the graphs of one backend, that changes
 * whenever the graph is re-planned (a backend may cache work per version). */
unsigned lf__graph_version(const struct lf_graph *g);

#endif
