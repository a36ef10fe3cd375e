/* lf_profile: where a network's time goes, op by op.
 *
 * A profile sums wall time, FLOPs (lf_node_flops) and bytes moved (the
 * sources' and the destination's sizes) per kind of node: the op's name,
 * and for MATMUL and CONV2D the shape as well ("MATMUL M=8192 N=320 K=320
 * w=f16"), so a benchmark can see which layers keep a step from the GEMM
 * ceiling. A backend fills it while one is attached (lf_backend_set_profile);
 * on CUDA the times are those of queueing the work, not of running it.
 *
 * Parts: a backend may also report time spent in a named part of the node
 * it is running (lf_profile_add_part, e.g. a convolution's "reorder src",
 * the layout reorders around oneDNN's blocked kernels). Parts are rows of
 * their own (part non-empty, same kind as the node's row) whose seconds are
 * inside that node's row, so no total counts them twice.
 *
 * Not thread-safe: one profile per backend at a time. Caller owns what
 * lf_profile_new returns. */
#ifndef LF_PROFILE_H
#define LF_PROFILE_H

#include <stdio.h>

#include "lf_ops.h"

typedef struct lf_profile lf_profile_t;

/* One kind's totals; plain data. */
typedef struct {
    char kind[96];
    /* Empty for a node's row; else the part's name: seconds spent in that
     * part of the nodes of this kind, already inside their row (flops and
     * bytes 0). */
    char part[24];
    long calls;
    double seconds, flops, bytes;
} lf_profile_row_t;

/* NULL on out of memory. */
lf_profile_t *lf_profile_new(void);
/* Takes NULL. */
void lf_profile_destroy(lf_profile_t **p_p);
/* Forgets every row. */
void lf_profile_reset(lf_profile_t *p);
/* Adds one run of node that took seconds, and the parts reported for it
 * since the last add (then forgotten). */
void lf_profile_add(lf_profile_t *p, const lf_node_t *node, double seconds);
/* Adds seconds spent in part (a name; copied, truncated to 23 characters)
 * of the node running now, whose lf_profile_add comes after. Several
 * reports of one part for one node count as one call. At most
 * LF_PROFILE_PARTS names per node; further names are dropped. */
#define LF_PROFILE_PARTS 8
void lf_profile_add_part(lf_profile_t *p, const char *part, double seconds);
/* The rows, most time first (borrowed; valid until the next add or reset). */
int lf_profile_rows(lf_profile_t *p, const lf_profile_row_t **rows);
/* A table: one line per kind (time, share, GFLOP/s, GB/s; with
 * ceiling_gflops > 0 also the fraction of that ceiling), then the totals by
 * op and the sum; then, where parts were reported, one line per part and
 * kind and the parts' totals (each also a share of the sum). */
void lf_profile_print(lf_profile_t *p, FILE *out, double ceiling_gflops);

#endif
