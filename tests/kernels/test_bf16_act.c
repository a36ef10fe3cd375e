/* test_bf16_act: lf_graph's bf16-activation pass on the CPU backend.
 *
 * Under the bf16 compute type a norm whose every reader is a product that
 * would convert it to bf16 (a layer norm feeding three linear layers, a
 * group norm + SiLU feeding a bf16 3x3 and a 1x1 convolution, an RMS norm
 * feeding a linear layer) writes bf16 itself and the products read it as
 * it is (the default; LF_CPU_BF16_ACT=0 turns it off). The conversion moves, the values do not: the
 * outputs must be byte-identical to the same graph computed with the pass
 * off (LF_CPU_BF16_ACT=0), and the planned nodes must show the bf16 results
 * (dst type in lf_graph_print) where the pass fires and f32 where it must
 * not: a group norm read by a convolution that a bf16 job runs as f32
 * Winograd, a norm read by an ADD too, a norm kept as a graph output, a
 * norm with a view of it. At f32 precision nothing changes (byte-identical,
 * no bf16 tensor), and one graph computed at bf16, f32, then bf16 again
 * gives each precision's bytes each time. Skipped without bf16 compute. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lf_backend.h"
#include "lf_graph.h"
#include "lf_ops.h"
#include "lf_test_tensor.h"

enum { C = 64, T = 256, S = 16, SW = 32, SB = 96, N_OUT = 12 };

/* The weights (host tensors the graph reads as they are). */
typedef struct {
    lf_tensor_t g, b, wq, wk, wv, bq, w3, w1, wbig, c3b, wr;
} s_weights_t;

static void s_weights(s_weights_t *w) {
    w->g = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1), w->b = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1);
    w->wq = lf_test_rand(LF_TYPE_F16, C, C, 1, 1, 1), w->wk = lf_test_rand(LF_TYPE_F16, C, C, 1, 1, 1);
    w->wv = lf_test_rand(LF_TYPE_F32, C, C, 1, 1, 1), w->bq = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1);
    w->w3 = lf_test_rand(LF_TYPE_F16, 3, 3, C, C, 1), w->w1 = lf_test_rand(LF_TYPE_F16, 1, 1, C, C, 1);
    w->wbig = lf_test_rand(LF_TYPE_F16, 3, 3, C, C, 1), w->c3b = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1);
    w->wr = lf_test_rand(LF_TYPE_F16, C, C, 1, 1, 1);
}

static void s_weights_free(s_weights_t *w) {
    lf_tensor_t *all[] = {&w->g, &w->bq, &w->b, &w->wq, &w->wk, &w->wv, &w->w3, &w->w1, &w->wbig, &w->c3b, &w->wr};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]->data);
}

/* The network: outputs out[], inputs in[] (tokens [C,T], a 16x16 image, a
 * 32x32 image, a 96x96 image, all C channels). The norms, in order:
 *   0 LAYER_NORM -> q, k, v                      bf16
 *   1 GROUP_NORM+SiLU -> 3x3 (16x16), 1x1        bf16
 *   2 GROUP_NORM+SiLU -> 3x3 (32x32, Winograd)   f32
 *   3 LAYER_NORM -> linear, and the residual added to it (fused: src[3]) f32
 *   4 LAYER_NORM, a graph output                 f32
 *   5 RMS_NORM -> linear                         bf16
 *   6 GROUP_NORM (2 large groups, chunked) -> 1x1 bf16
 *   7 LAYER_NORM -> linear, and a view of it       f32 */
static const char *const s_want_type[] = {"bf16", "bf16", "f32", "f32", "f32", "bf16", "bf16", "f32"};

static lf_graph_t *s_build(lf_backend_t *be, const s_weights_t *w, lf_tensor_t *in[4], lf_tensor_t *out[N_OUT + 1]) {
    lf_graph_t *g = lf_graph_new(be);
    assert_non_null(g);
    in[0] = lf_graph_input(g, LF_TYPE_F32, C, T, 1, 1);
    in[1] = lf_graph_input(g, LF_TYPE_F32, S, S, C, 1);
    in[2] = lf_graph_input(g, LF_TYPE_F32, SW, SW, C, 1);
    in[3] = lf_graph_input(g, LF_TYPE_F32, SB, SB, C, 1);
    int o = 0;
    lf_tensor_t *ln = lf_graph_layer_norm(g, in[0], &w->g, &w->b, 1e-5f);
    out[o++] = lf_graph_matmul(g, ln, &w->wq, &w->bq);
    out[o++] = lf_graph_matmul(g, ln, &w->wk, NULL);
    out[o++] = lf_graph_matmul(g, ln, &w->wv, NULL);
    lf_tensor_t *gn = lf_graph_group_norm(g, in[1], &w->g, &w->b, 32, 1e-5f, 1);
    out[o++] = lf_graph_conv2d(g, gn, &w->w3, &w->c3b, 1, 1);
    out[o++] = lf_graph_conv2d(g, gn, &w->w1, NULL, 1, 0);
    lf_tensor_t *gw = lf_graph_group_norm(g, in[2], &w->g, &w->b, 32, 1e-5f, 1);
    out[o++] = lf_graph_conv2d(g, gw, &w->wbig, &w->c3b, 1, 1);
    lf_tensor_t *l3 = lf_graph_layer_norm(g, in[0], NULL, NULL, 1e-5f);
    out[o++] = lf_graph_add(g, lf_graph_matmul(g, l3, &w->wq, NULL), l3);
    out[o++] = lf_graph_layer_norm(g, in[0], &w->b, NULL, 1e-6f);
    lf_tensor_t *rms = lf_graph_rms_norm(g, in[0], &w->g, 1e-6f);
    out[o++] = lf_graph_matmul(g, rms, &w->wr, NULL);
    lf_tensor_t *gb = lf_graph_group_norm(g, in[3], NULL, NULL, 2, 1e-5f, 0);
    out[o++] = lf_graph_conv2d(g, gb, &w->w1, NULL, 1, 0);
    lf_tensor_t *l7 = lf_graph_layer_norm(g, in[0], &w->g, NULL, 1e-5f);
    lf_tensor_t *half = lf_graph_view(g, l7, lf_tensor_slice(l7, 1, 0, T / 2));
    out[o++] = lf_graph_matmul(g, l7, &w->wk, NULL);
    out[o++] = lf_graph_scale(g, half, 2.0f, 0.0f);
    assert_int_equal(o, N_OUT);
    for (int i = 0; i < N_OUT; i++) assert_non_null(lf_graph_output(g, out[i]));
    assert_int_equal(lf_graph_plan(g), 0);
    return g;
}

/* Writes the inputs (the same values for every graph). */
static void s_set_inputs(lf_backend_t *be, lf_tensor_t *in[4], const lf_tensor_t host[4]) {
    for (int i = 0; i < 4; i++)
        assert_int_equal(lf_backend_tensor_set(be, in[i], host[i].data, lf_tensor_nbytes(in[i])), 0);
}

/* The outputs' bytes, one after the other (caller frees). */
static char *s_outputs(lf_backend_t *be, lf_tensor_t *out[N_OUT], size_t *bytes) {
    size_t n = 0;
    for (int i = 0; i < N_OUT; i++) n += lf_tensor_nbytes(out[i]);
    char *p = malloc(n), *q = p;
    assert_non_null(p);
    for (int i = 0; i < N_OUT; i++) {
        assert_int_equal(lf_backend_tensor_get(be, out[i], q, lf_tensor_nbytes(out[i])), 0);
        q += lf_tensor_nbytes(out[i]);
    }
    *bytes = n;
    return p;
}

/* The result types of the planned norm nodes, in order, from lf_graph_print
 * ("   7 LAYER_NORM        -> bf16[64,256,1,1] ..."); returns their count. */
static int s_norm_types(const lf_graph_t *g, char types[16][8]) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    lf_graph_print(g, f);
    fclose(f);
    int k = 0;
    for (char *line = strtok(buf, "\n"); line && k < 16; line = strtok(NULL, "\n")) {
        if (!strstr(line, "_NORM")) continue;
        const char *arrow = strstr(line, "-> ");
        assert_non_null(arrow);
        sscanf(arrow + 3, "%7[a-z0-9]", types[k++]);
    }
    free(buf);
    return k;
}

static void s_check_types(const lf_graph_t *g, bool bf16) {
    char types[16][8];
    int k = s_norm_types(g, types);
    assert_int_equal(k, (int)(sizeof s_want_type / sizeof *s_want_type));
    for (int i = 0; i < k; i++) {
        const char *want = bf16 ? s_want_type[i] : "f32";
        if (strcmp(types[i], want)) printf("  norm %d: %s, want %s\n", i, types[i], want);
        assert_string_equal(types[i], want);
    }
}

/* The outputs of the network at precision p on a fresh backend (act: the
 * pass on "1" or off "0", NULL: LF_CPU_BF16_ACT unset, the default, which
 * must be on), *types checked against what the pass must do. */
static char *s_run(const char *act, lf_precision_t p, const s_weights_t *w, const lf_tensor_t host[4], size_t *bytes) {
    if (act) setenv("LF_CPU_BF16_ACT", act, 1);
    else unsetenv("LF_CPU_BF16_ACT");
    lf_backend_t *be = lf_backend_cpu_new(2);
    unsetenv("LF_CPU_BF16_ACT");
    assert_non_null(be);
    assert_int_equal(lf_backend_set_precision(be, p), p);
    lf_tensor_t *in[4], *out[N_OUT + 1];
    lf_graph_t *g = s_build(be, w, in, out);
    s_set_inputs(be, in, host);
    assert_int_equal(lf_graph_compute(g), 0);
    s_check_types(g, p == LF_PRECISION_BF16 && (!act || !strcmp(act, "1")));
    char *r = s_outputs(be, out, bytes);
    lf_graph_destroy(&g);
    lf_backend_destroy(&be);
    return r;
}

static bool s_have_bf16(void) {
    lf_backend_t *be = lf_backend_cpu_new(1);
    assert_non_null(be);
    bool ok = lf_backend_set_precision(be, LF_PRECISION_BF16) == LF_PRECISION_BF16;
    if (!ok) printf("  skipped: no bf16 compute (%s)\n", lf_backend_describe(be));
    lf_backend_destroy(&be);
    return ok;
}

static void s_inputs(lf_tensor_t host[4]) {
    host[0] = lf_test_rand(LF_TYPE_F32, C, T, 1, 1, 1);
    host[1] = lf_test_rand(LF_TYPE_F32, S, S, C, 1, 1);
    host[2] = lf_test_rand(LF_TYPE_F32, SW, SW, C, 1, 1);
    host[3] = lf_test_rand(LF_TYPE_F32, SB, SB, C, 1, 1);
    /* Offsets so the norms have work to do (and the group norm's
     * cancellation guard is exercised). */
    for (int64_t i = 0; i < lf_tensor_nelements(&host[3]); i++) ((float *)host[3].data)[i] += 3.0f;
}

/* The pass on and off give the same bytes, at bf16 (with bf16 results
 * where it fires) and at f32 (none); unset, it is on. */
static void test_bf16_act_same_bytes(void **state) {
    (void)state;
    if (!s_have_bf16()) return;
    s_weights_t w;
    s_weights(&w);
    lf_tensor_t host[4];
    s_inputs(host);
    for (int k = 0; k < 2; k++) {
        const lf_precision_t p = k ? LF_PRECISION_F32 : LF_PRECISION_BF16;
        size_t n_on, n_off;
        size_t n_def;
        char *on = s_run("1", p, &w, host, &n_on), *off = s_run("0", p, &w, host, &n_off);
        char *def = s_run(NULL, p, &w, host, &n_def);
        assert_int_equal(n_on, n_off);
        assert_int_equal(n_def, n_off);
        assert_memory_equal(on, off, n_on);
        assert_memory_equal(def, off, n_def);
        free(on), free(off), free(def);
    }
    for (int i = 0; i < 4; i++) free(host[i].data);
    s_weights_free(&w);
}

/* One graph, one backend: bf16, f32, bf16 again; each compute gives that
 * precision's bytes (those of a fresh graph with the pass off). */
static void test_bf16_act_precision_switch(void **state) {
    (void)state;
    if (!s_have_bf16()) return;
    s_weights_t w;
    s_weights(&w);
    lf_tensor_t host[4];
    s_inputs(host);
    size_t n_bf, n_f32, n;
    char *want_bf = s_run("0", LF_PRECISION_BF16, &w, host, &n_bf);
    char *want_f32 = s_run("0", LF_PRECISION_F32, &w, host, &n_f32);
    assert_memory_not_equal(want_bf, want_f32, n_bf);
    setenv("LF_CPU_BF16_ACT", "1", 1);
    lf_backend_t *be = lf_backend_cpu_new(2);
    unsetenv("LF_CPU_BF16_ACT");
    assert_non_null(be);
    lf_tensor_t *in[4], *out[N_OUT + 1];
    lf_graph_t *g = s_build(be, &w, in, out);
    s_set_inputs(be, in, host); /* once: a switch must not move them */
    static const lf_precision_t order[] = {LF_PRECISION_BF16, LF_PRECISION_F32, LF_PRECISION_BF16, LF_PRECISION_F32};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        assert_int_equal(lf_backend_set_precision(be, order[i]), order[i]);
        assert_int_equal(lf_graph_compute(g), 0);
        s_check_types(g, order[i] == LF_PRECISION_BF16);
        char *got = s_outputs(be, out, &n);
        assert_memory_equal(got, order[i] == LF_PRECISION_BF16 ? want_bf : want_f32, n);
        free(got);
    }
    lf_graph_destroy(&g);
    lf_backend_destroy(&be);
    free(want_bf), free(want_f32);
    for (int i = 0; i < 4; i++) free(host[i].data);
    s_weights_free(&w);
}

int main(void) {
    lf_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_act_same_bytes),
        cmocka_unit_test(test_bf16_act_precision_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
