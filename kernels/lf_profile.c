/* lf_profile: per-kind sums of node times (see lf_profile.h). */
#include "lf_profile.h"

#include <stdlib.h>
#include <string.h>

#include "lf_tensor.h"

#define LF__PROFILE_ROWS 256

/* One part reported for the node running (lf_profile_add_part). */
typedef struct {
    char name[24];
    double seconds;
} s_part_t;

struct lf_profile {
    lf_profile_row_t rows[LF__PROFILE_ROWS];
    int n;
    bool sorted;
    s_part_t pending[LF_PROFILE_PARTS]; /* the node running's parts, until its add */
    int n_pending;
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
    p->n_pending = 0;
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

/* The row of kind k and part (""; a node's row), made on its first use;
 * NULL for a part when the rows are full. */
static lf_profile_row_t *s_row(lf_profile_t *p, const char *k, const char *part) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->rows[i].kind, k) && !strcmp(p->rows[i].part, part)) return &p->rows[i];
    /* Full: the last row takes the rest of the nodes; parts are dropped. */
    if (p->n == LF__PROFILE_ROWS) return part[0] ? NULL : &p->rows[p->n - 1];
    lf_profile_row_t *r = &p->rows[p->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->kind, sizeof r->kind, "%s", k);
    snprintf(r->part, sizeof r->part, "%s", part);
    return r;
}

void lf_profile_add(lf_profile_t *p, const lf_node_t *node, double seconds) {
    char k[96];
    s_kind(node, k, sizeof k);
    lf_profile_row_t *r = s_row(p, k, "");
    double bytes = (double)lf_tensor_nbytes(node->dst);
    for (int i = 0; i < LF_MAX_SRC; i++)
        if (node->src[i]) bytes += (double)lf_tensor_nbytes(node->src[i]);
    r->calls++;
    r->seconds += seconds;
    r->flops += lf_node_flops(node);
    r->bytes += bytes;
    for (int i = 0; i < p->n_pending; i++) {
        lf_profile_row_t *pr = s_row(p, k, p->pending[i].name);
        if (pr) pr->calls++, pr->seconds += p->pending[i].seconds;
    }
    p->n_pending = 0;
    p->sorted = false;
}

void lf_profile_add_part(lf_profile_t *p, const char *part, double seconds) {
    if (!p || !part || !*part) return;
    s_part_t *q = NULL;
    for (int i = 0; i < p->n_pending && !q; i++)
        if (!strncmp(p->pending[i].name, part, sizeof q->name - 1)) q = &p->pending[i];
    if (!q) {
        if (p->n_pending == LF_PROFILE_PARTS) return;
        q = &p->pending[p->n_pending++];
        snprintf(q->name, sizeof q->name, "%s", part);
        q->seconds = 0;
    }
    q->seconds += seconds;
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
    if (r->part[0]) {
        /* Inside its node's row: no FLOPs or bytes of its own. */
    } else if (r->flops > 0) {
        fprintf(out, " %8.1f GFLOP %7.1f GFLOP/s", r->flops * 1e-9, gf);
        if (ceiling > 0) fprintf(out, " %4.0f %% of ceiling", 100 * gf / ceiling);
    } else {
        fprintf(out, " %8.2f GB %7.2f GB/s", r->bytes * 1e-9,
                r->seconds > 0 ? r->bytes / r->seconds * 1e-9 : 0);
    }
    fputc('\n', out);
}

/* The op whose name starts kind (followed by a space or its end), or -1. */
static int s_op_of(const char *kind) {
    for (int op = 0; op < LF_OP_COUNT; op++) {
        const char *name = lf_op_name((lf_op_t)op);
        size_t l = strlen(name);
        if (!strncmp(kind, name, l) && (!kind[l] || kind[l] == ' ')) return op;
    }
    return -1;
}

/* The parts' lines: each part and kind, then each part and op. */
static void s_print_parts(FILE *out, const lf_profile_row_t *rows, int n, double total) {
    lf_profile_row_t sums[LF__PROFILE_ROWS];
    int ns = 0, np = 0;
    for (int i = 0; i < n; i++) np += rows[i].part[0] != 0;
    if (!np) return;
    fprintf(out, "  parts (inside the rows above; share of the sum):\n");
    for (int i = 0; i < n; i++) {
        if (!rows[i].part[0]) continue;
        lf_profile_row_t r = rows[i];
        snprintf(r.kind, sizeof r.kind, "%s | %.68s", rows[i].part, rows[i].kind);
        s_line(out, &r, total, 0);
        const int op = s_op_of(rows[i].kind);
        char k[96];
        snprintf(k, sizeof k, "%s | %s", rows[i].part, op >= 0 ? lf_op_name((lf_op_t)op) : "?");
        int j = 0;
        while (j < ns && strcmp(sums[j].kind, k)) j++;
        if (j == ns) {
            memset(&sums[ns], 0, sizeof sums[ns]);
            memcpy(sums[ns].kind, k, sizeof k);
            snprintf(sums[ns].part, sizeof sums[ns].part, "%s", rows[i].part);
            ns++;
        }
        sums[j].calls += rows[i].calls, sums[j].seconds += rows[i].seconds;
    }
    qsort(sums, (size_t)ns, sizeof sums[0], s_by_time);
    fprintf(out, "  parts by op:\n");
    for (int j = 0; j < ns; j++) s_line(out, &sums[j], total, 0);
}

void lf_profile_print(lf_profile_t *p, FILE *out, double ceiling_gflops) {
    const lf_profile_row_t *rows;
    int n = lf_profile_rows(p, &rows);
    lf_profile_row_t by_op[LF_OP_COUNT + 1];
    memset(by_op, 0, sizeof by_op);
    lf_profile_row_t *all = &by_op[LF_OP_COUNT];
    snprintf(all->kind, sizeof all->kind, "all");
    int kinds = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].part[0]) continue; /* inside a node's row */
        kinds++;
        all->calls += rows[i].calls, all->seconds += rows[i].seconds;
        all->flops += rows[i].flops, all->bytes += rows[i].bytes;
    }
    fprintf(out, "  by kind (%d kinds):\n", kinds);
    for (int i = 0; i < n; i++)
        if (!rows[i].part[0]) s_line(out, &rows[i], all->seconds, ceiling_gflops);
    for (int i = 0; i < n; i++) {
        const int op = rows[i].part[0] ? -1 : s_op_of(rows[i].kind);
        if (op < 0) continue;
        lf_profile_row_t *r = &by_op[op];
        snprintf(r->kind, sizeof r->kind, "%s", lf_op_name((lf_op_t)op));
        r->calls += rows[i].calls, r->seconds += rows[i].seconds;
        r->flops += rows[i].flops, r->bytes += rows[i].bytes;
    }
    qsort(by_op, LF_OP_COUNT, sizeof by_op[0], s_by_time);
    fprintf(out, "  by op:\n");
    for (int op = 0; op < LF_OP_COUNT && by_op[op].calls; op++)
        s_line(out, &by_op[op], all->seconds, ceiling_gflops);
    s_line(out, all, all->seconds, ceiling_gflops);
    s_print_parts(out, rows, n, all->seconds);
}
