/* lf_profile: where a network's time goes, op by op.
 *
 * A profile sums wall time, FLOPs (lf_node_flops) and bytes moved (the
 * sources' and the destination's sizes) per kind of node: the op's name,
 * and for MATMUL and CONV2D the shape as well ("MATMUL M=8192 N=320 K=320
 * w=f16"), so a benchmark can see which layers keep a step from the GEMM
 * ceiling. A backend fills it while one is attached (lf_backend_set_profile);
 * on CUDA the times are those of queueing the work, not of running it.
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
    long calls;
    double seconds, flops, bytes;
} lf_profile_row_t;

/* NULL on out of memory. */
lf_profile_t *lf_profile_new(void);
/* Takes NULL. */
void lf_profile_destroy(lf_profile_t **p_p);
/* Forgets every row. */
void lf_profile_reset(lf_profile_t *p);
/* Adds one run of node that took seconds. */
void lf_profile_add(lf_profile_t *p, const lf_node_t *node, double seconds);
/* The rows, most time first (borrowed; valid until the next add or reset). */
int lf_profile_rows(lf_profile_t *p, const lf_profile_row_t **rows);
/* A table: one line per kind (time, share, GFLOP/s, GB/s; with
 * ceiling_gflops > 0 also the fraction of that ceiling), then the totals by
 * op and the sum. */
void lf_profile_print(lf_profile_t *p, FILE *out, double ceiling_gflops);

#endif
