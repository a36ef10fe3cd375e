/* test_profile: lf_profile's rows and the parts a backend reports inside a
 * node's time (lf_profile_add_part).
 *
 * The logic first, on made-up nodes and seconds: a part lands in a row of
 * its own with the kind of the node added after it, its seconds are not
 * counted again in the totals, two reports of one part for one node are one
 * call, and parts are forgotten once their node is added (and on reset).
 * Then the CPU backend: a convolution run through oneDNN's blocked layouts
 * (LF_CPU_CONV=blocked) reports its source, weight and destination reorders
 * as parts of its CONV2D row, summing to less than that row; the plain
 * layout (LF_CPU_CONV=nchw) reports none; Winograd (f32, LF_CPU_CONV_ALGO=
 * wino) reports its strip reorders and weight transform; and the profiled
 * runs give the same bits as the unprofiled one. Last, the blocked
 * convolution with nChw16c activations (LF_CPU_CONV_ACT=16c) against a
 * double reference. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lf_backend.h"
#include "lf_error.h"
#include "lf_ops.h"
#include "lf_profile.h"
#include "lf_test_tensor.h"

/* The row of kind and part ("" for the node's own), or NULL. */
static const lf_profile_row_t *s_find(lf_profile_t *p, const char *kind, const char *part) {
    const lf_profile_row_t *rows;
    const int n = lf_profile_rows(p, &rows);
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].kind, kind) && !strcmp(rows[i].part, part)) return &rows[i];
    return NULL;
}

static int s_count_parts(lf_profile_t *p) {
    const lf_profile_row_t *rows;
    const int n = lf_profile_rows(p, &rows);
    int k = 0;
    for (int i = 0; i < n; i++) k += rows[i].part[0] != 0;
    return k;
}

/* The "all" line's seconds from lf_profile_print's table. */
static double s_printed_total(lf_profile_t *p) {
    char buf[16384];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    lf_profile_print(p, f, 0);
    fclose(f);
    buf[sizeof buf - 1] = 0;
    const char *all = strstr(buf, "  all ");
    assert_non_null(all);
    long calls = 0;
    double s = -1;
    assert_int_equal(sscanf(all, " all %ld %lf s", &calls, &s), 2);
    return s;
}

static void test_parts_logic(void **state) {
    (void)state;
    lf_profile_t *p = lf_profile_new();
    assert_non_null(p);
    lf_tensor_t a = lf_test_zeros(LF_TYPE_F32, 4, 4, 1, 1), y = lf_test_zeros(LF_TYPE_F32, 4, 4, 1, 1);
    lf_node_t add = {.op = LF_OP_ADD, .dst = &y, .src = {&a, &a}};
    lf_node_t silu = {.op = LF_OP_SILU, .dst = &y, .src = {&a}};
    /* Node 1 (ADD): two parts, one reported twice. */
    lf_profile_add_part(p, "reorder src", 0.25);
    lf_profile_add_part(p, "reorder dst", 0.5);
    lf_profile_add_part(p, "reorder src", 0.125);
    lf_profile_add(p, &add, 2.0);
    /* Node 2 (SILU): no parts; those above went with node 1. */
    lf_profile_add(p, &silu, 1.0);
    /* Node 3 (ADD again): one part. */
    lf_profile_add_part(p, "reorder dst", 0.0625);
    lf_profile_add(p, &add, 1.0);

    const lf_profile_row_t *r = s_find(p, "ADD", "");
    assert_non_null(r);
    assert_int_equal(r->calls, 2);
    assert_true(r->seconds == 3.0);
    r = s_find(p, "ADD", "reorder src");
    assert_non_null(r);
    assert_int_equal(r->calls, 1);
    assert_true(r->seconds == 0.375);
    assert_true(r->flops == 0 && r->bytes == 0);
    r = s_find(p, "ADD", "reorder dst");
    assert_non_null(r);
    assert_int_equal(r->calls, 2);
    assert_true(r->seconds == 0.5625);
    assert_null(s_find(p, "SILU", "reorder src"));
    assert_null(s_find(p, "SILU", "reorder dst"));
    assert_int_equal(s_count_parts(p), 2);
    /* The totals: the nodes' 4 s, the parts (inside them) not again. */
    assert_true(fabs(s_printed_total(p) - 4.0) < 1e-3);

    /* A part pending at a reset is gone with the rows. */
    lf_profile_add_part(p, "reorder wei", 9.0);
    lf_profile_reset(p);
    lf_profile_add(p, &silu, 0.5);
    assert_int_equal(s_count_parts(p), 0);
    assert_true(fabs(s_printed_total(p) - 0.5) < 1e-3);
    /* NULL profile, NULL and empty names: ignored. */
    lf_profile_add_part(NULL, "x", 1.0);
    lf_profile_add_part(p, NULL, 1.0);
    lf_profile_add_part(p, "", 1.0);
    lf_profile_add(p, &silu, 0.5);
    assert_int_equal(s_count_parts(p), 0);
    lf_profile_destroy(&p);
    assert_null(p);
    free(a.data), free(y.data);
}

#ifdef LF_HAVE_DNNL
/* One convolution (32x32, 32 -> 32 channels, 3x3, batch 2, f32) on a
 * backend made under LF_CPU_CONV=conv and LF_CPU_CONV_ALGO=algo, twice
 * unprofiled then once profiled; the profiled output must equal the
 * unprofiled one bit for bit. The profile's rows are left in p. */
static void s_conv_profiled(const char *conv, const char *algo, lf_profile_t *p, char kind[96]) {
    setenv("LF_CPU_CONV", conv, 1);
    setenv("LF_CPU_CONV_ALGO", algo, 1);
    lf_backend_t *be = lf_backend_cpu_new(1);
    unsetenv("LF_CPU_CONV"), unsetenv("LF_CPU_CONV_ALGO");
    assert_non_null(be);
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, 32, 32, 32, 2, 1), w = lf_test_rand(LF_TYPE_F32, 3, 3, 32, 32, 1);
    lf_tensor_t b = lf_test_rand(LF_TYPE_F32, 32, 1, 1, 1, 1);
    lf_tensor_t y0 = lf_test_zeros(LF_TYPE_F32, 32, 32, 32, 2), y1 = lf_test_zeros(LF_TYPE_F32, 32, 32, 32, 2);
    lf_node_t n = {.op = LF_OP_CONV2D, .dst = &y0, .src = {&x, &w, &b}};
    n.p.conv2d.stride = 1, n.p.conv2d.pad = 1;
    assert_int_equal(lf_op_run(be, &n), 0);
    assert_int_equal(lf_op_run(be, &n), 0);
    lf_profile_reset(p);
    lf_backend_set_profile(be, p);
    n.dst = &y1;
    assert_int_equal(lf_op_run(be, &n), 0);
    lf_backend_set_profile(be, NULL);
    assert_memory_equal(y0.data, y1.data, (size_t)lf_tensor_nelements(&y0) * sizeof(float));
    snprintf(kind, 96, "CONV2D 32x32 32->32 k3 s1 x2 w=f32");
    const lf_profile_row_t *r = s_find(p, kind, "");
    assert_non_null(r);
    assert_int_equal(r->calls, 1);
    lf_backend_destroy(&be);
    free(x.data), free(w.data), free(b.data), free(y0.data), free(y1.data);
}

/* The seconds of kind's parts, each checked to be one call within its node's time. */
static double s_parts_sum(lf_profile_t *p, const char *kind, const char *const *parts, int n) {
    const lf_profile_row_t *node = s_find(p, kind, "");
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const lf_profile_row_t *r = s_find(p, kind, parts[i]);
        printf("  %s: %s %.3g s of %.3g s\n", kind, parts[i], r ? r->seconds : -1.0, node->seconds);
        assert_non_null(r);
        assert_int_equal(r->calls, 1);
        assert_true(r->seconds >= 0);
        sum += r->seconds;
    }
    assert_true(sum <= node->seconds);
    return sum;
}

static void test_conv_reorders_reported(void **state) {
    (void)state;
    lf_profile_t *p = lf_profile_new();
    assert_non_null(p);
    char kind[96];
    /* Blocked: the three reorders (the weight is not pre-packed here). */
    s_conv_profiled("blocked", "gemm", p, kind);
    static const char *const blocked[] = {"reorder src", "reorder wei", "reorder dst"};
    s_parts_sum(p, kind, blocked, 3);
    assert_int_equal(s_count_parts(p), 3);
    /* Plain NCHW: nothing to reorder, nothing converted (f32). */
    s_conv_profiled("nchw", "gemm", p, kind);
    assert_int_equal(s_count_parts(p), 0);
    /* Winograd: the strips' reorders and the weight transform. */
    s_conv_profiled("nchw", "wino", p, kind);
    static const char *const wino[] = {"wino weights", "reorder src", "reorder dst"};
    s_parts_sum(p, kind, wino, 3);
    assert_int_equal(s_count_parts(p), 3);
    lf_profile_destroy(&p);
}

/* LF_CPU_CONV_ACT=16c (nChw16c activations around the blocked kernels, a
 * comparison setting) and the default (oneDNN's pick) against a double
 * reference: 32x32, 32 -> 48 channels (both multiples of 16) and 24 -> 48
 * (not: the default layout), f32, batch 2, bias and SiLU. */
static void test_conv_act16_against_reference(void **state) {
    (void)state;
    static const int64_t cis[] = {32, 24};
    for (int k = 0; k < 2; k++)
        for (int a = 0; a < 2; a++) {
            const int64_t W = 32, H = 32, Ci = cis[k], Co = 48, B = 2;
            setenv("LF_CPU_CONV", "blocked", 1);
            setenv("LF_CPU_CONV_ALGO", "gemm", 1);
            if (a) setenv("LF_CPU_CONV_ACT", "16c", 1);
            lf_backend_t *be = lf_backend_cpu_new(1);
            unsetenv("LF_CPU_CONV"), unsetenv("LF_CPU_CONV_ALGO"), unsetenv("LF_CPU_CONV_ACT");
            assert_non_null(be);
            lf_tensor_t x = lf_test_rand(LF_TYPE_F32, W, H, Ci, B, 1), w = lf_test_rand(LF_TYPE_F32, 3, 3, Ci, Co, 1);
            lf_tensor_t b = lf_test_rand(LF_TYPE_F32, Co, 1, 1, 1, 1), y = lf_test_zeros(LF_TYPE_F32, W, H, Co, B);
            lf_node_t n = {.op = LF_OP_CONV2D, .dst = &y, .src = {&x, &w, &b}, .post_act = 1};
            n.p.conv2d.stride = 1, n.p.conv2d.pad = 1;
            assert_int_equal(lf_op_run(be, &n), 0);
            assert_int_equal(lf_op_run(be, &n), 0); /* the cached primitive again */
            double *want = lf_test_conv2d_ref(&x, &w, &b, 1, 1, 1);
            assert_non_null(want);
            const double err = lf_test_maxerr(&y, want);
            free(want);
            printf("  %lld -> %lld channels, %s: err %.2g\n", (long long)Ci, (long long)Co, a ? "16c" : "any", err);
            assert_true(err <= 5e-4);
            lf_backend_destroy(&be);
            free(x.data), free(w.data), free(b.data), free(y.data);
        }
}
#endif

int main(void) {
    lf_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_logic),
#ifdef LF_HAVE_DNNL
        cmocka_unit_test(test_conv_reorders_reported),
        cmocka_unit_test(test_conv_act16_against_reference),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
