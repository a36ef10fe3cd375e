/* lf_profile: per-kind sums of node times (see lf_profile.h). */
#include "lf_profile.h"

#include <stdlib.h>
#include <string.h>

#include "lf_tensor.h"

#define LF__PROFILE_ROWS 256

struct lf_profile {
    lf_profile_row_t rows[LF__PROFILE_ROWS];
    int n;
    bool sorted;
};

lf_profile_t *lf_profile_new(void) {
    return calloc(1, sizeof(lf_profile_t));
}

void lf_profile_destroy(lf_profile_t **p_p) {
    if (!p_p || !*p_p) return;
    free(*p_p);
    *p_p = NULL;
}

void lf_profile_reset(lf_profile_t *p) {
    p->n = 0;
}

static void s_kind(const lf_node_t *n, char *k, size_t len) {
    const lf_tensor_t *a = n->src[0], *b = n->src[1];
    if (n->op == LF_OP_MATMUL)
        snprintf(k, len, "MATMUL M=%lld N=%lld K=%lld w=%s", (long long)(a->ne[1] * a->ne[2] * a->ne[3]),
                 (long long)b->ne[1], (long long)a->ne[0], lf_type_name(b->type));
    else if (n->op == LF_OP_CONV2D)
        snprintf(k, len, "CONV2D %lldx%lld %lld->%lld k%lld s%d x%lld w=%s", (long long)a->ne[0],
                 (long long)a->ne[1], (long long)a->ne[2], (long long)b->ne[3], (long long)b->ne[0],
                 n->p.conv2d.stride, (long long)a->ne[3], lf_type_name(b->type));
    else if (n->op == LF_OP_ATTENTION)
        snprintf(k, len, "ATTENTION Nq=%lld Nk=%lld D=%lld", (long long)a->ne[1], (long long)b->ne[1],
                 (long long)a->ne[0]);
    else snprintf(k, len, "%s", lf_op_name(n->op));
    /* Fused post-ops (lf_graph's pass) in the product's time. */
    size_t l = strlen(k);
    if (n->post_act && l < len) snprintf(k + l, len - l, " +silu");
    l = strlen(k);
    if ((n->op == LF_OP_MATMUL || n->op == LF_OP_CONV2D) && n->src[3] && l < len) snprintf(k + l, len - l, " +res");
}

void lf_profile_add(lf_profile_t *p, const lf_node_t *node, double seconds) {
    char k[96];
    s_kind(node, k, sizeof k);
    lf_profile_row_t *r = NULL;
    for (int i = 0; i < p->n && !r; i++)
        if (!strcmp(p->rows[i].kind, k)) r = &p->rows[i];
    if (!r) {
        if (p->n == LF__PROFILE_ROWS) r = &p->rows[p->n - 1]; /* full: the last row takes the rest */
        else r = &p->rows[p->n++], memset(r, 0, sizeof *r), memcpy(r->kind, k, sizeof k);
    }
    double bytes = (double)lf_tensor_nbytes(node->dst);
    for (int i = 0; i < LF_MAX_SRC; i++)
        if (node->src[i]) bytes += (double)lf_tensor_nbytes(node->src[i]);
    r->calls++;
    r->seconds += seconds;
    r->flops += lf_node_flops(node);
    r->bytes += bytes;
    p->sorted = false;
}

static int s_by_time(const void *a, const void *b) {
    double x = ((const lf_profile_row_t *)a)->seconds, y = ((const lf_profile_row_t *)b)->seconds;
    return x > y ? -1 : x < y;
}

int lf_profile_rows(lf_profile_t *p, const lf_profile_row_t **rows) {
    if (!p->sorted) qsort(p->rows, (size_t)p->n, sizeof p->rows[0], s_by_time);
    p->sorted = true;
    *rows = p->rows;
    return p->n;
}

static void s_line(FILE *out, const lf_profile_row_t *r, double total, double ceiling) {
    double gf = r->seconds > 0 ? r->flops / r->seconds * 1e-9 : 0;
    fprintf(out, "  %-46s %5ld %8.3f s %5.1f %%", r->kind, r->calls, r->seconds,
            total > 0 ? 100 * r->seconds / total : 0);
    if (r->flops > 0) {
        fprintf(out, " %8.1f GFLOP %7.1f GFLOP/s", r->flops * 1e-9, gf);
        if (ceiling > 0) fprintf(out, " %4.0f %% of ceiling", 100 * gf / ceiling);
    } else {
        fprintf(out, " %8.2f GB %7.2f GB/s", r->bytes * 1e-9,
                r->seconds > 0 ? r->bytes / r->seconds * 1e-9 : 0);
    }
    fputc('\n', out);
}

void lf_profile_print(lf_profile_t *p, FILE *out, double ceiling_gflops) {
    const lf_profile_row_t *rows;
    int n = lf_profile_rows(p, &rows);
    lf_profile_row_t by_op[LF_OP_COUNT + 1];
    memset(by_op, 0, sizeof by_op);
    lf_profile_row_t *all = &by_op[LF_OP_COUNT];
    snprintf(all->kind, sizeof all->kind, "all");
    for (int i = 0; i < n; i++) {
        all->calls += rows[i].calls, all->seconds += rows[i].seconds;
        all->flops += rows[i].flops, all->bytes += rows[i].bytes;
    }
    fprintf(out, "  by kind (%d kinds):\n", n);
    for (int i = 0; i < n; i++) s_line(out, &rows[i], all->seconds, ceiling_gflops);
    for (int i = 0; i < n; i++)
        for (int op = 0; op < LF_OP_COUNT; op++) {
            const char *name = lf_op_name((lf_op_t)op);
            size_t l = strlen(name);
            if (strncmp(rows[i].kind, name, l) || (rows[i].kind[l] && rows[i].kind[l] != ' ')) continue;
            lf_profile_row_t *r = &by_op[op];
            snprintf(r->kind, sizeof r->kind, "%s", name);
            r->calls += rows[i].calls, r->seconds += rows[i].seconds;
            r->flops += rows[i].flops, r->bytes += rows[i].bytes;
        }
    qsort(by_op, LF_OP_COUNT, sizeof by_op[0], s_by_time);
    fprintf(out, "  by op:\n");
    for (int op = 0; op < LF_OP_COUNT && by_op[op].calls; op++)
        s_line(out, &by_op[op], all->seconds, ceiling_gflops);
    s_line(out, all, all->seconds, ceiling_gflops);
}
