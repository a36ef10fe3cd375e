/* test_conv_algo: the f32 3x3 convolution algorithms of the CPU backend
 * (LF_CPU_CONV_ALGO) against a double reference.
 *
 * Winograd F(4x4, 3x3) (oneDNN's jit_wino_4x3) runs in strips of output
 * rows with zero rows written at the image's top and bottom edges
 * (lf_cpu_wino.c, lf__cpu_wino_run); LF_CPU_WINO_STRIP_KB makes the strips a few
 * rows high here, so each strip position (the whole image, top, middle,
 * bottom) and several images per call are exercised. A row taken from the
 * wrong strip, a stale edge row or a misplaced result is off by the size of
 * one row's contribution (~1 of outputs up to ~40 here), far above the
 * tolerance: 5e-4 of (1 + |reference|), as test_fuse. The transforms'
 * rounding grows with the sum of |x * w| (weights of amplitude 1 here, not
 * 1/sqrt(fan-in)): measured up to 6.5e-5 at 128 channels (GEMM 1.4e-5), and
 * ~2e-6 of the largest output on the VAE decoder at 512x512. The Winograd results must
 * also differ from the GEMM convolution's in some last bit: otherwise
 * Winograd did not run (a backend that ignores the setting passes the
 * reference check on its GEMM path). */
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
#include "lf_test_tensor.h"

#define TOL 5e-4

static lf_backend_t *s_backend(const char *algo, const char *strip_kb) {
    setenv("LF_CPU_CONV_ALGO", algo, 1);
    if (strip_kb) setenv("LF_CPU_WINO_STRIP_KB", strip_kb, 1);
    lf_backend_t *be = lf_backend_cpu_new(1);
    unsetenv("LF_CPU_CONV_ALGO"), unsetenv("LF_CPU_WINO_STRIP_KB"), unsetenv("LF_CPU_WINO_WEIGHTS");
    assert_non_null(be);
    return be;
}

typedef struct {
    int64_t B, H, W, Ci, Co, stride;
    int act;              /* SiLU as the primitive's post-op */
    const char *strip_kb; /* NULL: the default strip size */
    bool wino;            /* Winograd takes this shape (else GEMM under both settings) */
} s_case_t;

static void s_check(const s_case_t *c) {
    const int64_t Ho = (c->H - 1) / c->stride + 1, Wo = (c->W - 1) / c->stride + 1;
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, c->W, c->H, c->Ci, c->B, 1);
    lf_tensor_t w = lf_test_rand(LF_TYPE_F32, 3, 3, c->Ci, c->Co, 1);
    lf_tensor_t bias = lf_test_rand(LF_TYPE_F32, c->Co, 1, 1, 1, 1);
    lf_tensor_t dw = lf_test_zeros(LF_TYPE_F32, Wo, Ho, c->Co, c->B), dg = lf_test_zeros(LF_TYPE_F32, Wo, Ho, c->Co, c->B);
    double *want = lf_test_conv2d_ref(&x, &w, &bias, c->stride, 1, c->act);
    assert_non_null(want);
    lf_backend_t *bw = s_backend("wino", c->strip_kb), *bg = s_backend("gemm", NULL);
    lf_node_t n = {.op = LF_OP_CONV2D, .dst = &dw, .src = {&x, &w, &bias}, .post_act = c->act};
    n.p.conv2d.stride = (int)c->stride, n.p.conv2d.pad = 1;
    assert_int_equal(lf_op_run(bw, &n), 0);
    assert_int_equal(lf_op_run(bw, &n), 0); /* the cached primitive again */
    n.dst = &dg;
    assert_int_equal(lf_op_run(bg, &n), 0);
    const double ew = lf_test_maxerr(&dw, want), eg = lf_test_maxerr(&dg, want);
    const bool differ = memcmp(dw.data, dg.data, (size_t)lf_tensor_nelements(&dw) * sizeof(float)) != 0;
    printf("  %lldx%lldx%lld -> %lld, batch %lld, stride %lld, strips of %s KB: wino err %.2g, gemm err %.2g, %s\n",
           (long long)c->W, (long long)c->H, (long long)c->Ci, (long long)c->Co, (long long)c->B,
           (long long)c->stride, c->strip_kb ? c->strip_kb : "default", ew, eg, differ ? "differ" : "identical");
    assert_true(ew <= TOL);
    assert_true(eg <= TOL);
    assert_true(differ == c->wino);
    lf_backend_destroy(&bw), lf_backend_destroy(&bg);
    free(want), free(x.data), free(w.data), free(bias.data), free(dw.data), free(dg.data);
}

static void test_winograd_against_reference(void **state) {
    (void)state;
    /* Rows per strip: the largest divisor of H whose W * (Ci + Co) * 13
     * bytes per row fit the strip size: 20 * 80 * 13 = 20.8 KB per row in
     * 200 KB -> 9 rows at most. */
    static const s_case_t cases[] = {
        {1, 24, 24, 128, 128, 1, 0, NULL, true},  /* the VAE's channels, one strip */
        {2, 32, 20, 32, 48, 1, 0, "200", true},   /* 8-row strips: top, middle x2, bottom; 2 images */
        {1, 16, 20, 32, 48, 1, 1, "200", true},   /* top and bottom only; SiLU (applied after) */
        {2, 36, 20, 32, 48, 1, 0, "200", true},   /* 9-row strips (not a multiple of the 4-row tile) */
        {1, 24, 20, 32, 3, 1, 0, "200", true},    /* 3 outputs (the VAE's conv_out): padded channel block */
        {1, 13, 11, 16, 16, 1, 1, NULL, true},    /* odd sizes, one strip */
        {1, 16, 16, 20, 16, 1, 0, NULL, false},   /* input channels not a multiple of 16: GEMM */
        {1, 16, 16, 32, 32, 2, 0, NULL, false},   /* stride 2: GEMM */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) s_check(&cases[i]);
}

/* Strips that would be under 8 rows (H prime, a strip budget of one row):
 * GEMM, the same as the plain convolution to the bit. */
static void test_winograd_refuses_thin_strips(void **state) {
    (void)state;
    static const s_case_t c = {1, 31, 20, 32, 48, 1, 0, "30", false};
    s_check(&c);
}

/* Our Winograd weight transform (s_wino_weights, into oneDNN's
 * OBaaIBOIio layout, the F(4x4, 3x3) kernel's: 128 channels at 24x24)
 * against oneDNN's own reorder (LF_CPU_WINO_WEIGHTS=onednn): both within
 * the tolerance of the double reference over several calls (the backend
 * checks ours against oneDNN's at an entry's first call only), and not
 * bit-identical (the transforms round differently: else ours did not run,
 * or failed that check and was dropped). */
static void test_winograd_own_weights(void **state) {
    (void)state;
    const s_case_t c = {2, 24, 24, 128, 128, 1, 0, NULL, true};
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, c.W, c.H, c.Ci, c.B, 1), w = lf_test_rand(LF_TYPE_F32, 3, 3, c.Ci, c.Co, 1);
    lf_tensor_t bias = lf_test_rand(LF_TYPE_F32, c.Co, 1, 1, 1, 1);
    lf_tensor_t d[2] = {lf_test_zeros(LF_TYPE_F32, c.W, c.H, c.Co, c.B), lf_test_zeros(LF_TYPE_F32, c.W, c.H, c.Co, c.B)};
    double *want = lf_test_conv2d_ref(&x, &w, &bias, c.stride, 1, c.act);
    assert_non_null(want);
    lf_backend_t *own = s_backend("wino", NULL);
    setenv("LF_CPU_WINO_WEIGHTS", "onednn", 1);
    lf_backend_t *theirs = s_backend("wino", NULL);
    for (int i = 0; i < 2; i++) {
        lf_node_t n = {.op = LF_OP_CONV2D, .dst = &d[i], .src = {&x, &w, &bias}};
        n.p.conv2d.stride = 1, n.p.conv2d.pad = 1;
        for (int call = 0; call < 3; call++) assert_int_equal(lf_op_run(i ? theirs : own, &n), 0);
    }
    const double e0 = lf_test_maxerr(&d[0], want), e1 = lf_test_maxerr(&d[1], want);
    const bool differ = memcmp(d[0].data, d[1].data, (size_t)lf_tensor_nelements(&d[0]) * sizeof(float)) != 0;
    printf("  own weight transform err %.2g, oneDNN's %.2g, %s\n", e0, e1, differ ? "differ" : "identical");
    assert_true(e0 <= TOL);
    assert_true(e1 <= TOL);
    assert_true(differ);
    lf_backend_destroy(&own), lf_backend_destroy(&theirs);
    free(want), free(x.data), free(w.data), free(bias.data), free(d[0].data), free(d[1].data);
}

/* A weight whose Winograd tiles exceed the budget one primitive takes
 * (LF_CPU_WINO_CHUNK_KB=100 here: 16 of the 64 output channels at 32
 * input channels; 64 MiB by default, the UNet's 32x32 960 / 1280 / 1920
 * -> 640) runs in chunks of output channels, each with its weights
 * transformed, its bias and results at the chunk's channels: four chunks
 * here, against the double reference, with one strip per image (the
 * blocked sources of both images kept across chunks) and with two strips
 * per image (reordered again per chunk), with our transform's AVX-512 form
 * (reading f32 or f16 weights as stored) and its C form (LF_CPU_SIMD=
 * scalar, from the f32 copy), with both images in one call
 * (LF_CPU_WINO_BATCH=1, chunked or not), over three calls (the first
 * bit-identical to the last). With
 * LF_CPU_WINO_WIDE=0
 * the shape is not taken (GEMM, identical to it), nor where no chunk fits
 * (1 KB); chunked it differs from GEMM in some last bit, so Winograd ran
 * in chunks. A chunk's offset wrong in the weights, bias or results is off
 * by whole outputs. */
static void test_winograd_chunks(void **state) {
    (void)state;
    static const struct {
        const char *chunk_kb, *strip_kb, *simd, *wide, *batch;
        lf_type_t wtype;
        bool wino;
    } v[] = {
        {"100", NULL, NULL, NULL, NULL, LF_TYPE_F32, true},      /* one strip per image, kept across chunks */
        {"100", "200", NULL, NULL, NULL, LF_TYPE_F32, true},     /* 16-row strips: top and bottom per chunk */
        {"100", NULL, NULL, NULL, NULL, LF_TYPE_F16, true},      /* f16 weights read as stored */
        {"100", "200", "scalar", NULL, NULL, LF_TYPE_F16, true}, /* the C transform, from the f32 copy */
        {"100", NULL, NULL, NULL, "1", LF_TYPE_F32, true},       /* both images in one call */
        {NULL, NULL, NULL, NULL, "1", LF_TYPE_F32, true},        /* the same unchunked */
        {"100", NULL, NULL, "0", NULL, LF_TYPE_F32, false},      /* not taken unchunked: GEMM */
        {"1", NULL, NULL, NULL, NULL, LF_TYPE_F32, false},       /* no chunk fits (16 channels: 4.5 KB): GEMM */
    };
    const s_case_t c = {2, 20, 32, 32, 64, 1, 0, NULL, true};
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, c.W, c.H, c.Ci, c.B, 1);
    lf_tensor_t bias = lf_test_rand(LF_TYPE_F32, c.Co, 1, 1, 1, 1);
    /* One weight per type (the f32 one holding the f16 one's values), one
     * reference for both. */
    lf_tensor_t w16 = lf_test_rand(LF_TYPE_F16, 3, 3, c.Ci, c.Co, 1), w32 = lf_test_zeros(LF_TYPE_F32, 3, 3, c.Ci, c.Co);
    for (int64_t i = 0; i < lf_tensor_nelements(&w16); i++)
        ((float *)w32.data)[i] = (float)lf_test_get(&w16, i % 3, i / 3 % 3, i / 9 % c.Ci, i / (9 * c.Ci));
    double *want = lf_test_conv2d_ref(&x, &w32, &bias, c.stride, 1, c.act);
    assert_non_null(want);
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        const lf_tensor_t w = v[k].wtype == LF_TYPE_F16 ? w16 : w32;
        if (v[k].chunk_kb) setenv("LF_CPU_WINO_CHUNK_KB", v[k].chunk_kb, 1);
        if (v[k].batch) setenv("LF_CPU_WINO_BATCH", v[k].batch, 1);
        if (v[k].simd) setenv("LF_CPU_SIMD", v[k].simd, 1);
        if (v[k].wide) setenv("LF_CPU_WINO_WIDE", v[k].wide, 1);
        lf_backend_t *bw = s_backend("auto", v[k].strip_kb), *bg = s_backend("gemm", NULL);
        unsetenv("LF_CPU_WINO_CHUNK_KB"), unsetenv("LF_CPU_SIMD"), unsetenv("LF_CPU_WINO_WIDE"), unsetenv("LF_CPU_WINO_BATCH");
        lf_tensor_t dw = lf_test_zeros(LF_TYPE_F32, c.W, c.H, c.Co, c.B), dg = lf_test_zeros(LF_TYPE_F32, c.W, c.H, c.Co, c.B);
        lf_node_t n = {.op = LF_OP_CONV2D, .dst = &dw, .src = {&x, &w, &bias}};
        n.p.conv2d.stride = 1, n.p.conv2d.pad = 1;
        double ew = 0;
        const size_t ybytes = (size_t)lf_tensor_nelements(&dw) * sizeof(float);
        float *first = malloc(ybytes);
        assert_non_null(first);
        for (int call = 0; call < 3; call++) {
            memset(dw.data, 0, ybytes);
            assert_int_equal(lf_op_run(bw, &n), 0);
            const double e = lf_test_maxerr(&dw, want);
            ew = e > ew ? e : ew;
            if (!call) memcpy(first, dw.data, ybytes);
        }
        /* The first call (which checks our transform against oneDNN's) gives
         * the same bits as the later ones. */
        assert_memory_equal(first, dw.data, ybytes);
        free(first);
        n.dst = &dg;
        assert_int_equal(lf_op_run(bg, &n), 0);
        const double eg = lf_test_maxerr(&dg, want);
        const bool differ = memcmp(dw.data, dg.data, (size_t)lf_tensor_nelements(&dw) * sizeof(float)) != 0;
        printf("  chunks of %s KB, strips of %s KB, simd %s, %s weights, wide %s, batch %s: err %.2g (gemm %.2g), %s\n",
               v[k].chunk_kb ? v[k].chunk_kb : "default", v[k].strip_kb ? v[k].strip_kb : "default",
               v[k].simd ? v[k].simd : "default", v[k].wtype == LF_TYPE_F16 ? "f16" : "f32",
               v[k].wide ? v[k].wide : "default", v[k].batch ? v[k].batch : "default", ew, eg,
               differ ? "differ" : "identical");
        assert_true(ew <= TOL);
        assert_true(eg <= TOL);
        assert_true(differ == v[k].wino);
        lf_backend_destroy(&bw), lf_backend_destroy(&bg);
        free(dw.data), free(dg.data);
    }
    free(want), free(x.data), free(bias.data), free(w16.data), free(w32.data);
}

/* Under the bf16 compute type, a convolution Winograd takes runs in f32
 * (faster than oneDNN's bf16 convolution at those shapes, and rounds less):
 * its result is within the f32 tolerance of the double reference, where
 * bf16 operands are off by ~1e-2 of outputs of ~10 here; with
 * LF_CPU_CONV_ALGO=gemm the same backend rounds to bf16 (so the check can
 * tell them apart). Skipped without bf16 compute. */
static void test_winograd_under_bf16(void **state) {
    (void)state;
    static const s_case_t c = {1, 32, 32, 64, 64, 1, 0, NULL, true};
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, c.W, c.H, c.Ci, c.B, 1);
    lf_tensor_t w = lf_test_rand(LF_TYPE_F16, 3, 3, c.Ci, c.Co, 1);
    lf_tensor_t w32 = lf_test_zeros(LF_TYPE_F32, 3, 3, c.Ci, c.Co);
    for (int64_t i = 0; i < lf_tensor_nelements(&w); i++)
        ((float *)w32.data)[i] = (float)lf_test_get(&w, i % 3, i / 3 % 3, i / 9 % c.Ci, i / (9 * c.Ci));
    lf_tensor_t bias = lf_test_rand(LF_TYPE_F32, c.Co, 1, 1, 1, 1);
    double *want = lf_test_conv2d_ref(&x, &w32, &bias, c.stride, 1, c.act);
    assert_non_null(want);
    for (int k = 0; k < 2; k++) {
        lf_backend_t *be = s_backend(k ? "gemm" : "auto", NULL);
        if (lf_backend_set_precision(be, LF_PRECISION_BF16) != LF_PRECISION_BF16) {
            printf("  skipped: no bf16 compute (%s)\n", lf_backend_describe(be));
            lf_backend_destroy(&be);
            break;
        }
        lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, c.W, c.H, c.Co, c.B);
        lf_node_t n = {.op = LF_OP_CONV2D, .dst = &d, .src = {&x, &w, &bias}};
        n.p.conv2d.stride = 1, n.p.conv2d.pad = 1;
        assert_int_equal(lf_op_run(be, &n), 0);
        const double err = lf_test_maxerr(&d, want);
        printf("  bf16 compute, %s: err %.2g\n", k ? "gemm (bf16 operands)" : "auto (f32 Winograd)", err);
        if (k) assert_true(err > TOL);
        else assert_true(err <= TOL);
        lf_backend_destroy(&be);
        free(d.data);
    }
    free(want), free(x.data), free(w.data), free(w32.data), free(bias.data);
}

int main(void) {
    lf_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_winograd_against_reference),
        cmocka_unit_test(test_winograd_refuses_thin_strips),
        cmocka_unit_test(test_winograd_own_weights),
        cmocka_unit_test(test_winograd_under_bf16),
        cmocka_unit_test(test_winograd_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
