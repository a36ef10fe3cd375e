/* test_ops: every op of the CPU backend against a plain double-precision
 * reference on fresh random inputs (odd sizes, views, f16/bf16 storage).
 * Tolerances are relative, |got - want| / (1 + |want|), and written beside
 * each check: f32 1e-4 to 5e-4 (float accumulation), f16 output 2e-3 (half
 * an f16 ulp is 4.9e-4), bf16 output 1e-2 (half a bf16 ulp is 3.9e-3), bf16
 * matrix products 3e-2 (activations are rounded to bf16 too when
 * cblas_sbgemm runs). The bf16 compute precision (lf_backend_set_precision)
 * is checked against a reference whose operands are rounded to bf16 first:
 * f32 accumulation of those, so TOL_F32 again. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lf_backend.h"
#include "lf_error.h"
#include "lf_ops.h"
#include "lf_pool.h"
#include "lf_test_tensor.h"

#define TOL_F32 5e-4
#define TOL_F16 2e-3
#define TOL_BF16 1e-2

static double s_tol(lf_type_t t) {
    return t == LF_TYPE_F32 ? TOL_F32 : t == LF_TYPE_F16 ? TOL_F16 : TOL_BF16;
}

static int s_setup(void **state) {
    lf_backend_t *be = lf_backend_cpu_new(2);
    if (!be) return -1;
    *state = be;
    return 0;
}

static int s_teardown(void **state) {
    lf_backend_t *be = *state;
    lf_backend_destroy(&be);
    assert_null(be);
    return 0;
}

static double *s_ref(const lf_tensor_t *like) {
    return calloc((size_t)lf_tensor_nelements(like) + 1, sizeof(double));
}

#define G lf_test_get

/* ---- conversions ---- */

static void test_type_conversion(void **state) {
    (void)state;
    /* Every finite f16 survives f16 -> f32 -> f16. */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu)) continue; /* NaN payloads */
        assert_int_equal(lf_f32_to_f16(lf_f16_to_f32((uint16_t)h)), h);
    }
    assert_int_equal(lf_f32_to_f16(1.0f), 0x3C00);
    assert_int_equal(lf_f32_to_f16(65520.0f), 0x7C00);       /* rounds to Inf */
    assert_int_equal(lf_f32_to_f16(5.9604645e-8f), 0x0001);  /* smallest subnormal */
    assert_int_equal(lf_f32_to_f16(2.9802322e-8f), 0x0000);  /* tie to even: zero */
    assert_int_equal(lf_f32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(lf_f32_to_bf16(1.00390625f), 0x3F80);   /* tie to even */
    assert_int_equal(lf_f32_to_bf16(1.01171875f), 0x3F82);   /* tie to even, up */
    assert_true(isnan(lf_bf16_to_f32(lf_f32_to_bf16(NAN))));
    assert_true(isnan(lf_f16_to_f32(lf_f32_to_f16(NAN))));
    for (int i = 0; i < 10000; i++) {
        float f = (float)(1000.0 * lf_test_uniform());
        assert_true(fabsf(lf_f16_to_f32(lf_f32_to_f16(f)) - f) <= fabsf(f) * 4.9e-4f + 3e-8f);
        assert_true(fabsf(lf_bf16_to_f32(lf_f32_to_bf16(f)) - f) <= fabsf(f) * 3.91e-3f);
    }
    /* Views. */
    lf_tensor_t t = lf_tensor_4d(LF_TYPE_F32, 3, 4, 5, 6, NULL);
    assert_true(lf_tensor_is_contiguous(&t));
    lf_tensor_t tt = lf_tensor_transpose(&t);
    assert_false(lf_tensor_is_contiguous(&tt));
    assert_int_equal(tt.ne[0], 4);
    assert_int_equal(tt.nb[0], 12);
    lf_tensor_t s = lf_tensor_slice(&t, 2, 1, 3);
    assert_int_equal((uintptr_t)s.data, 1 * 48);
    assert_int_equal(lf_tensor_nbytes(&t), 3 * 4 * 5 * 6 * 4);
}

/* ---- matmul ---- */

/* x as the bf16 compute path sees it: rounded to bf16 when ct is bf16. */
static double s_in(lf_type_t ct, double x) {
    return ct == LF_TYPE_BF16 ? lf_bf16_to_f32(lf_f32_to_bf16((float)x)) : x;
}

static void s_check_matmul_ct(lf_backend_t *be, lf_type_t ct, const lf_tensor_t *a,
                              const lf_tensor_t *b, const lf_tensor_t *bias, double tol) {
    int64_t K = a->ne[0], M = a->ne[1], N = b->ne[1];
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, N, M, a->ne[2], a->ne[3]);
    double *want = s_ref(&d), *w = want;
    for (int64_t i3 = 0; i3 < a->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < a->ne[2]; i2++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++, w++) {
                    double s = bias ? G(bias, n, 0, 0, 0) : 0;
                    int64_t b2 = b->ne[2] == 1 ? 0 : i2, b3 = b->ne[3] == 1 ? 0 : i3;
                    for (int64_t k = 0; k < K; k++)
                        s += s_in(ct, G(a, k, m, i2, i3)) * s_in(ct, G(b, k, n, b2, b3));
                    *w = s;
                }
    assert_int_equal(lf_op_matmul(be, &d, a, b, bias), 0);
    double err = lf_test_maxerr(&d, want);
    if (err > tol) fprintf(stderr, "matmul K=%lld M=%lld N=%lld %s (compute %s): err %g\n",
                           (long long)K, (long long)M, (long long)N, lf_type_name(b->type),
                           lf_type_name(ct), err);
    assert_true(err <= tol);
    free(want);
    free(d.data);
}

static void s_check_matmul(lf_backend_t *be, const lf_tensor_t *a, const lf_tensor_t *b,
                           const lf_tensor_t *bias, double tol) {
    s_check_matmul_ct(be, LF_TYPE_F32, a, b, bias, tol);
}

static void test_matmul(void **state) {
    /* Both f32 paths for linear layers: oneDNN's matmul (when built with it)
     * and OpenBLAS. */
    for (int path = 0; path < 2; path++) {
    lf_backend_t *be = *state;
    if (path == 1) {
        setenv("LF_CPU_MATMUL", "blas", 1);
        be = lf_backend_cpu_new(2);
        unsetenv("LF_CPU_MATMUL");
        assert_non_null(be);
        assert_non_null(strstr(lf_backend_describe(be), "linear sgemm"));
    }
    lf_tensor_t a = lf_test_rand(LF_TYPE_F32, 37, 5, 3, 1, 1);
    lf_tensor_t w = lf_test_rand(LF_TYPE_F32, 37, 23, 1, 1, 1);
    lf_tensor_t bias = lf_test_rand(LF_TYPE_F32, 23, 1, 1, 1, 1);
    s_check_matmul(be, &a, &w, &bias, TOL_F32);        /* linear, weight broadcast */
    s_check_matmul(be, &a, &w, NULL, TOL_F32);
    lf_tensor_t wb = lf_test_rand(LF_TYPE_F32, 37, 11, 3, 1, 1); /* batched */
    s_check_matmul(be, &a, &wb, NULL, TOL_F32);
    /* Transposed views: a^T stored as [M, K]; b stored as [N, K]^T. */
    lf_tensor_t at = lf_test_rand(LF_TYPE_F32, 5, 37, 1, 1, 1);
    lf_tensor_t atv = lf_tensor_transpose(&at);
    lf_tensor_t bt = lf_test_rand(LF_TYPE_F32, 23, 37, 1, 1, 1);
    lf_tensor_t btv = lf_tensor_transpose(&bt);
    s_check_matmul(be, &atv, &btv, &bias, TOL_F32);
    /* f16 and bf16 weights. */
    lf_tensor_t wh = lf_test_rand(LF_TYPE_F16, 37, 23, 1, 1, 1);
    s_check_matmul(be, &a, &wh, &bias, TOL_F32);
    lf_tensor_t wbf = lf_test_rand(LF_TYPE_BF16, 37, 23, 1, 1, 1);
    s_check_matmul(be, &a, &wbf, &bias, 3e-2);
    /* Wrong shapes are refused. */
    lf_tensor_t bad = lf_test_zeros(LF_TYPE_F32, 22, 5, 3, 1);
    assert_int_equal(lf_op_matmul(be, &bad, &a, &w, NULL), LF_EINVAL);
    free(bad.data);
    free(a.data), free(w.data), free(bias.data), free(wb.data), free(at.data), free(bt.data);
    free(wh.data), free(wbf.data);
    if (path == 1) lf_backend_destroy(&be);
    }
}

/* ---- conv2d ---- */

static void s_check_conv_ct(lf_backend_t *be, lf_type_t ct, lf_type_t wt, int64_t W, int64_t H,
                            int64_t Ci, int64_t Co, int64_t N, int k, int stride, int pad,
                            bool bias_on) {
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, W, H, Ci, N, 1);
    lf_tensor_t w = lf_test_rand(wt, k, k, Ci, Co, 1);
    lf_tensor_t b = lf_test_rand(LF_TYPE_F32, Co, 1, 1, 1, 1);
    int64_t Wo = (W + 2 * pad - k) / stride + 1, Ho = (H + 2 * pad - k) / stride + 1;
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, Wo, Ho, Co, N);
    double *want = s_ref(&d), *o = want;
    for (int64_t n = 0; n < N; n++)
        for (int64_t co = 0; co < Co; co++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++, o++) {
                    double s = bias_on ? G(&b, co, 0, 0, 0) : 0;
                    for (int64_t ci = 0; ci < Ci; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += s_in(ct, G(&x, ix, iy, ci, n)) * s_in(ct, G(&w, kx, ky, ci, co));
                            }
                    *o = s;
                }
    assert_int_equal(lf_op_conv2d(be, &d, &x, &w, bias_on ? &b : NULL, stride, pad), 0);
    double err = lf_test_maxerr(&d, want);
    if (err > TOL_F32)
        fprintf(stderr, "conv k=%d s=%d p=%d (compute %s): err %g\n", k, stride, pad, lf_type_name(ct), err);
    assert_true(err <= TOL_F32);
    free(want), free(x.data), free(w.data), free(b.data), free(d.data);
}

static void s_check_conv(lf_backend_t *be, lf_type_t wt, int64_t W, int64_t H, int64_t Ci,
                         int64_t Co, int64_t N, int k, int stride, int pad, bool bias_on) {
    s_check_conv_ct(be, LF_TYPE_F32, wt, W, H, Ci, Co, N, k, stride, pad, bias_on);
}

/* ---- bf16 compute ---- */

static void test_bf16_compute(void **state) {
    (void)state;
    lf_backend_t *be = lf_backend_cpu_new(2);
    assert_non_null(be);
    assert_int_equal(lf_backend_precision(be), LF_PRECISION_F32); /* the default */
    lf_precision_t p;
    assert_int_equal(lf_precision_parse("bf16", &p), 0);
    assert_int_equal(p, LF_PRECISION_BF16);
    assert_int_equal(lf_precision_parse("fp16", &p), LF_EINVAL);
    assert_int_equal(lf_precision_parse(NULL, &p), LF_EINVAL);
    if (lf_backend_set_precision(be, LF_PRECISION_AUTO) != LF_PRECISION_BF16) {
        /* No oneDNN or no AVX512_BF16: auto and bf16 fall back to f32. */
        assert_int_equal(lf_backend_set_precision(be, LF_PRECISION_BF16), LF_PRECISION_F32);
        assert_null(strstr(lf_backend_describe(be), "bf16 compute available"));
        fprintf(stderr, "SKIP bf16 compute: %s\n", lf_backend_describe(be));
        lf_backend_destroy(&be);
        return;
    }
    assert_int_equal(lf_backend_precision(be), LF_PRECISION_BF16);
    const lf_type_t wts[3] = {LF_TYPE_F32, LF_TYPE_F16, LF_TYPE_BF16};
    for (int i = 0; i < 3; i++) {
        /* Linear layers (odd sizes, long K), with and without bias, batch dims flattened. */
        lf_tensor_t a = lf_test_rand(LF_TYPE_F32, 301, 19, 3, 1, 1);
        lf_tensor_t w = lf_test_rand(wts[i], 301, 45, 1, 1, 1);
        lf_tensor_t bias = lf_test_rand(LF_TYPE_F32, 45, 1, 1, 1, 1);
        s_check_matmul_ct(be, LF_TYPE_BF16, &a, &w, &bias, TOL_F32);
        s_check_matmul_ct(be, LF_TYPE_BF16, &a, &w, NULL, TOL_F32);
        /* A row-strided view of the input (a slice of a wider activation). */
        lf_tensor_t wide = lf_test_rand(LF_TYPE_F32, 320, 21, 1, 1, 1);
        lf_tensor_t view = lf_tensor_slice(&wide, 0, 10, 301);
        s_check_matmul_ct(be, LF_TYPE_BF16, &view, &w, &bias, TOL_F32);
        s_check_conv_ct(be, LF_TYPE_BF16, wts[i], 9, 7, 17, 16, 2, 3, 1, 1, true);
        s_check_conv_ct(be, LF_TYPE_BF16, wts[i], 9, 7, 16, 19, 1, 3, 2, 1, false);
        s_check_conv_ct(be, LF_TYPE_BF16, wts[i], 11, 5, 37, 18, 2, 1, 1, 0, true);
        /* Outputs of 32x32 and more: oneDNN's blocked layouts (reorders around
         * the primitive), channels not a multiple of the 16-wide blocks. */
        s_check_conv_ct(be, LF_TYPE_BF16, wts[i], 34, 33, 17, 24, 2, 3, 1, 1, true);
        s_check_conv_ct(be, LF_TYPE_BF16, wts[i], 66, 65, 16, 19, 1, 3, 2, 1, false);
        free(a.data), free(w.data), free(bias.data), free(wide.data);
    }
    /* Products with a side under 16 stay f32: a time embedding's few rows, a
     * UNet's 4-channel input and output convolutions. */
    {
        lf_tensor_t a = lf_test_rand(LF_TYPE_F32, 301, 2, 1, 1, 1), w = lf_test_rand(LF_TYPE_F16, 301, 45, 1, 1, 1);
        s_check_matmul(be, &a, &w, NULL, TOL_F32);
        free(a.data), free(w.data);
        s_check_conv_ct(be, LF_TYPE_F32, LF_TYPE_F16, 9, 7, 4, 32, 2, 3, 1, 1, true);
        s_check_conv_ct(be, LF_TYPE_F32, LF_TYPE_F16, 9, 7, 32, 4, 2, 3, 1, 1, true);
    }
    /* Batched products (attention-like, weight not 2-D) stay f32. */
    lf_tensor_t a = lf_test_rand(LF_TYPE_F32, 37, 5, 3, 1, 1), wb = lf_test_rand(LF_TYPE_F32, 37, 11, 3, 1, 1);
    s_check_matmul(be, &a, &wb, NULL, TOL_F32);
    free(a.data), free(wb.data);
    /* Back to f32: the reference again. */
    assert_int_equal(lf_backend_set_precision(be, LF_PRECISION_F32), LF_PRECISION_F32);
    s_check_conv(be, LF_TYPE_F16, 11, 5, 7, 9, 1, 1, 1, 0, true);
    lf_backend_destroy(&be);
}

/* ---- pre-packed weights ---- */

/* A convolution of x with w against the reference with operands rounded to
 * ct (as s_check_conv_ct, for a given weight). */
static void s_check_conv_w(lf_backend_t *be, lf_type_t ct, const lf_tensor_t *x, const lf_tensor_t *w,
                           const lf_tensor_t *b, int stride, int pad) {
    int64_t W = x->ne[0], H = x->ne[1], Ci = x->ne[2], N = x->ne[3], k = w->ne[0], Co = w->ne[3];
    int64_t Wo = (W + 2 * pad - k) / stride + 1, Ho = (H + 2 * pad - k) / stride + 1;
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, Wo, Ho, Co, N);
    double *want = s_ref(&d), *o = want;
    for (int64_t n = 0; n < N; n++)
        for (int64_t co = 0; co < Co; co++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++, o++) {
                    double s = b ? G(b, co, 0, 0, 0) : 0;
                    for (int64_t ci = 0; ci < Ci; ci++)
                        for (int64_t ky = 0; ky < k; ky++)
                            for (int64_t kx = 0; kx < k; kx++) {
                                int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += s_in(ct, G(x, ix, iy, ci, n)) * s_in(ct, G(w, kx, ky, ci, co));
                            }
                    *o = s;
                }
    assert_int_equal(lf_op_conv2d(be, &d, x, w, b, stride, pad), 0);
    double err = lf_test_maxerr(&d, want);
    if (err > TOL_F32) fprintf(stderr, "mapped conv k=%lld %lldx%lld: err %g\n", (long long)k, (long long)W,
                               (long long)H, err);
    assert_true(err <= TOL_F32);
    free(want), free(d.data);
}

/* Weights mapped from a file (lf_pool_tensor_mapped), as a model's are: under
 * bf16 the CPU backend keeps them pre-packed in oneDNN's layouts after their
 * first use. The results must match the reference on every use, and follow
 * the weight when its bytes change (lf_backend_tensor_set) or its pages are
 * dropped (lf_pool_drop_pages): a packed copy that outlived its weight
 * would give the old weight's result. */
static void test_prepacked_weights(void **state) {
  (void)state;
  /* The default: convolutions of every size in the blocked layout once
   * their weight is packed; bf16big (the previous default) keeps those under
   * 32x32 plain. */
  /* GEMM/brgconv only: under bf16 the shapes Winograd takes run in f32
   * (test_conv_algo), which would bypass the bf16 packing checked here. */
  setenv("LF_CPU_CONV_ALGO", "gemm", 1);
  lf_backend_t *be = lf_backend_cpu_new(2);
  assert_non_null(be);
  for (int mode = 0; mode < 2; mode++) {
    if (mode == 1) {
      lf_backend_destroy(&be);
      setenv("LF_CPU_CONV", "bf16big", 1);
      be = lf_backend_cpu_new(2);
      unsetenv("LF_CPU_CONV");
      assert_non_null(be);
    }
    if (lf_backend_set_precision(be, LF_PRECISION_BF16) != LF_PRECISION_BF16) {
      fprintf(stderr, "SKIP pre-packed weights: no bf16 compute (%s)\n",
              lf_backend_describe(be));
      lf_backend_destroy(&be);
      unsetenv("LF_CPU_CONV_ALGO");
      return;
    }
    /* Four f16 weights side by side in a file, 4096-byte aligned: a 3x3
     * convolution's, a 1x1 convolution's, a linear layer's (channels in
     * whole blocks of 16, as SD's, so the packed copies are no larger than
     * the weights) and a 3x3 one with odd channels (its blocked layout is
     * padded, larger: not kept, converted per call). */
    lf_tensor_t w3 = lf_test_rand(LF_TYPE_F16, 3, 3, 32, 48, 1),
                w3b = lf_test_rand(LF_TYPE_F16, 3, 3, 32, 48, 1);
    lf_tensor_t w1 = lf_test_rand(LF_TYPE_F16, 1, 1, 32, 19, 1),
                wl = lf_test_rand(LF_TYPE_F16, 320, 64, 1, 1, 1);
    lf_tensor_t wo = lf_test_rand(LF_TYPE_F16, 3, 3, 17, 24, 1);
    const lf_tensor_t *ws[4] = {&w3, &w1, &wl, &wo};
    char path[] = "/tmp/lf_test_prepack_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    uint64_t off[4];
    for (int i = 0; i < 4; i++) {
      off[i] = (uint64_t)ftell(f);
      size_t n = lf_tensor_nbytes(ws[i]);
      assert_int_equal(fwrite(ws[i]->data, 1, n, f), n);
      static const char zeros[4096];
      assert_int_equal(fwrite(zeros, 1, 4096 - n % 4096, f), 4096 - n % 4096);
    }
    assert_int_equal(fclose(f), 0);
    lf_pool_t *pool = lf_pool_new(be, 0);
    assert_non_null(pool);
    lf_tensor_t *m3 =
        lf_pool_tensor_mapped(pool, "w3", LF_TYPE_F16, 4, w3.ne, path, off[0]);
    lf_tensor_t *m1 =
        lf_pool_tensor_mapped(pool, "w1", LF_TYPE_F16, 4, w1.ne, path, off[1]);
    lf_tensor_t *ml =
        lf_pool_tensor_mapped(pool, "wl", LF_TYPE_F16, 2, wl.ne, path, off[2]);
    lf_tensor_t *mo =
        lf_pool_tensor_mapped(pool, "wo", LF_TYPE_F16, 4, wo.ne, path, off[3]);
    assert_non_null(m3), assert_non_null(m1), assert_non_null(ml),
        assert_non_null(mo);
    assert_int_equal(m3->buffer->usage, LF_BUFFER_WEIGHTS_MAPPED);
    lf_tensor_t xs = lf_test_rand(LF_TYPE_F32, 9, 7, 32, 2, 1),
                xb = lf_test_rand(LF_TYPE_F32, 34, 33, 32, 1, 1);
    lf_tensor_t x1 = lf_test_rand(LF_TYPE_F32, 20, 18, 32, 2, 1),
                a = lf_test_rand(LF_TYPE_F32, 320, 19, 3, 1, 1);
    lf_tensor_t xo = lf_test_rand(LF_TYPE_F32, 34, 33, 17, 1, 1);
    lf_tensor_t b48 = lf_test_rand(LF_TYPE_F32, 48, 1, 1, 1, 1),
                b19 = lf_test_rand(LF_TYPE_F32, 19, 1, 1, 1, 1);
    lf_tensor_t b64 = lf_test_rand(LF_TYPE_F32, 64, 1, 1, 1, 1),
                b24 = lf_test_rand(LF_TYPE_F32, 24, 1, 1, 1, 1);
    for (int round = 0; round < 2;
         round++) { /* packed on the first use, used packed on the second */
      s_check_conv_w(be, LF_TYPE_BF16, &xs, m3, &b48, 1, 1);
      s_check_conv_w(be, LF_TYPE_BF16, &xb, m3, &b48, 1, 1);
      s_check_conv_w(be, LF_TYPE_BF16, &xb, m3, NULL, 2, 1);
      s_check_conv_w(be, LF_TYPE_BF16, &x1, m1, &b19, 1, 0);
      s_check_conv_w(be, LF_TYPE_BF16, &xo, mo, &b24, 1, 1);
      s_check_matmul_ct(be, LF_TYPE_BF16, &a, ml, &b64, TOL_F32);
    }
    /* The weight rewritten (a LoRA merge writes it so): the next products use
     * the new values. */
    assert_int_equal(
        lf_backend_tensor_set(be, m3, w3b.data, lf_tensor_nbytes(&w3b)), 0);
    s_check_conv_w(be, LF_TYPE_BF16, &xs, m3, &b48, 1, 1);
    s_check_conv_w(be, LF_TYPE_BF16, &xb, m3, &b48, 1, 1);
    /* Its pages dropped: the file's values again, read anew. */
    assert_true(lf_pool_drop_pages(pool, "w3") > 0);
    s_check_conv_w(be, LF_TYPE_BF16, &xb, &w3, &b48, 1,
                   1); /* the file's weight, plain memory */
    s_check_conv_w(be, LF_TYPE_BF16, &xb, m3, &b48, 1, 1);
    /* f32 compute: an f32 copy would be twice the f16 weight; converted per
     * call. */
    assert_int_equal(lf_backend_set_precision(be, LF_PRECISION_F32),
                     LF_PRECISION_F32);
    s_check_conv_w(be, LF_TYPE_F32, &xb, m3, &b48, 1, 1);
    s_check_matmul_ct(be, LF_TYPE_F32, &a, ml, &b64, TOL_F32);
    lf_pool_destroy(&pool);
    unlink(path);
    free(w3.data), free(w3b.data), free(w1.data), free(wl.data), free(wo.data),
        free(xs.data), free(xb.data);
    free(x1.data), free(xo.data), free(a.data), free(b48.data), free(b19.data),
        free(b64.data), free(b24.data);
  }
  lf_backend_destroy(&be);
  unsetenv("LF_CPU_CONV_ALGO");
}

static void test_conv2d(void **state) {
    /* Every CPU path: oneDNN (when built with it) on our layout, im2col +
     * sgemm, oneDNN in its blocked layouts for f32 too. */
    static const char *const paths[] = {NULL, "im2col", "blocked", "unfused"};
    for (int path = 0; path < 4; path++) {
        lf_backend_t *be = *state;
        if (path > 0) {
            /* unfused: a 1x1 convolution's bias added in a pass after the
             * product instead of as oneDNN's post-op. */
            if (path == 3) setenv("LF_CPU_FUSE", "0", 1);
            else setenv("LF_CPU_CONV", paths[path], 1);
            be = lf_backend_cpu_new(2);
            unsetenv("LF_CPU_CONV"), unsetenv("LF_CPU_FUSE");
            assert_non_null(be);
            if (path == 1) assert_non_null(strstr(lf_backend_describe(be), "conv im2col"));
        }
    s_check_conv(be, LF_TYPE_F32, 34, 33, 17, 24, 2, 3, 1, 1, true);
    s_check_conv(be, LF_TYPE_F16, 66, 65, 16, 19, 1, 3, 2, 1, false);
    s_check_conv(be, LF_TYPE_F32, 9, 7, 5, 6, 2, 3, 1, 1, true);
    s_check_conv(be, LF_TYPE_F32, 9, 7, 5, 6, 1, 3, 2, 1, true);
    s_check_conv(be, LF_TYPE_F32, 8, 8, 4, 3, 1, 3, 2, 0, false);
    s_check_conv(be, LF_TYPE_F32, 11, 5, 7, 9, 2, 1, 1, 0, true);
    s_check_conv(be, LF_TYPE_F16, 11, 5, 7, 9, 1, 1, 1, 0, true);
    s_check_conv(be, LF_TYPE_BF16, 6, 5, 3, 4, 1, 3, 1, 1, true);
    /* Column tiles smaller than an output row (tile logic and edges). */
    setenv("LF_CONV_TILE_BYTES", "1", 1);
    s_check_conv(be, LF_TYPE_F32, 70, 9, 3, 5, 1, 3, 1, 1, true);
    s_check_conv(be, LF_TYPE_F32, 70, 9, 3, 5, 1, 3, 2, 1, true);
    s_check_conv(be, LF_TYPE_F32, 9, 8, 3, 5, 1, 3, 2, 0, true); /* odd output edge */
    unsetenv("LF_CONV_TILE_BYTES");
        if (path > 0) lf_backend_destroy(&be);
    }
}

/* ---- norms and softmax ---- */

static void test_group_norm(void **state) {
    lf_backend_t *be = *state;
    for (int variant = 0; variant < 3; variant++) {
        lf_type_t ty = variant == 2 ? LF_TYPE_BF16 : LF_TYPE_F32;
        int64_t W = 5, H = 3, C = 12, N = 2, groups = 4, cg = C / groups;
        lf_tensor_t x = lf_test_rand(ty, W, H, C, N, 2);
        lf_tensor_t ga = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1);
        lf_tensor_t be_ = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1);
        lf_tensor_t d = lf_test_zeros(ty, W, H, C, N);
        double *want = s_ref(&d);
        int silu = variant == 1;
        for (int64_t n = 0; n < N; n++)
            for (int64_t g = 0; g < groups; g++) {
                double mean = 0, var = 0, cnt = (double)(cg * W * H);
                for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                    for (int64_t y = 0; y < H; y++)
                        for (int64_t i = 0; i < W; i++) mean += G(&x, i, y, c, n);
                mean /= cnt;
                for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                    for (int64_t y = 0; y < H; y++)
                        for (int64_t i = 0; i < W; i++) var += pow(G(&x, i, y, c, n) - mean, 2);
                var /= cnt;
                for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                    for (int64_t y = 0; y < H; y++)
                        for (int64_t i = 0; i < W; i++) {
                            double v = (G(&x, i, y, c, n) - mean) / sqrt(var + 1e-5) * G(&ga, c, 0, 0, 0) +
                                       G(&be_, c, 0, 0, 0);
                            if (silu) v = v / (1 + exp(-v));
                            want[((n * C + c) * H + y) * W + i] = v;
                        }
            }
        assert_int_equal(lf_op_group_norm(be, &d, &x, &ga, &be_, (int)groups, 1e-5f, silu), 0);
        assert_true(lf_test_maxerr(&d, want) <= s_tol(ty));
        free(want), free(x.data), free(ga.data), free(be_.data), free(d.data);
    }
}

/* Double-precision group norm of x (groups, gamma/beta optional, SiLU). */
static double *s_group_norm_ref(const lf_tensor_t *x, const lf_tensor_t *ga, const lf_tensor_t *bt, int64_t groups,
                                double eps, int silu) {
    int64_t W = x->ne[0], H = x->ne[1], C = x->ne[2], N = x->ne[3], cg = C / groups;
    double *want = s_ref(x);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < groups; g++) {
            double mean = 0, var = 0, cnt = (double)(cg * W * H);
            for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                for (int64_t y = 0; y < H; y++)
                    for (int64_t i = 0; i < W; i++) mean += G(x, i, y, c, n);
            mean /= cnt;
            for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                for (int64_t y = 0; y < H; y++)
                    for (int64_t i = 0; i < W; i++) var += pow(G(x, i, y, c, n) - mean, 2);
            var /= cnt;
            for (int64_t c = g * cg; c < (g + 1) * cg; c++)
                for (int64_t y = 0; y < H; y++)
                    for (int64_t i = 0; i < W; i++) {
                        double v = (G(x, i, y, c, n) - mean) / sqrt(var + eps);
                        if (ga) v *= G(ga, c, 0, 0, 0);
                        if (bt) v += G(bt, c, 0, 0, 0);
                        if (silu) v = v / (1 + exp(-v));
                        want[((n * C + c) * H + y) * W + i] = v;
                    }
        }
    return want;
}

/* Adds off to every element of an f32 tensor, and big to its first. */
static void s_offset(lf_tensor_t *t, float off, float big) {
    float *p = t->data;
    for (int64_t i = 0; i < lf_tensor_nelements(t); i++) p[i] += off;
    p[0] += big;
}

/* Group norm whose mean is far from zero against the deviation (offset
 * 1000, deviation 0.6 or 0.006: E[x^2] - mean^2 in f32 loses every
 * digit), with a first element far off too (the shift of the sums is poor, so the second
 * pass around the mean must run); whole planes (4096, the vector path),
 * odd planes, a row-strided view; one task per group, and large groups in
 * chunks on more threads than groups (3 and 5 threads give the same bits:
 * the chunks do not depend on the thread count). */
static void test_group_norm_stable(void **state) {
    lf_backend_t *be2 = *state, *be3 = lf_backend_cpu_new(3), *be5 = lf_backend_cpu_new(5);
    assert_non_null(be3), assert_non_null(be5);
    static const int64_t shapes[][5] = {{64, 64, 8, 2, 2}, {37, 11, 12, 1, 3}, {200, 100, 16, 1, 2},
                                        {4099, 17, 4, 1, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int variant = 0; variant < 3; variant++) {
            int64_t W = shapes[k][0], H = shapes[k][1], C = shapes[k][2], N = shapes[k][3], groups = shapes[k][4];
            double amp = variant == 2 ? 0.01 : 1.0; /* deviation 0.006 at 1000: six bits of mantissa */
            lf_tensor_t wide = lf_test_rand(LF_TYPE_F32, W + 3, H, C, N, amp), x = lf_tensor_slice(&wide, 0, 1, W);
            s_offset(&wide, 1000.0f, 0.0f);
            if (variant != 2) { /* a contiguous copy of the view */
                lf_tensor_t v = x;
                x = lf_test_zeros(LF_TYPE_F32, W, H, C, N);
                for (int64_t r = 0; r < H * C * N; r++)
                    memcpy((float *)x.data + r * W, (char *)v.data + r * (int64_t)v.nb[1], (size_t)W * 4);
            }
            if (variant == 1) ((float *)x.data)[0] += 5000.0f; /* a poor shift */
            lf_tensor_t ga = lf_test_rand(LF_TYPE_F16, C, 1, 1, 1, 1), bt = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 1);
            double *want = s_group_norm_ref(&x, &ga, &bt, groups, 1e-5, variant != 1);
            lf_tensor_t d[3];
            lf_backend_t *bes[3] = {be2, be3, be5};
            for (int b = 0; b < 3; b++) {
                d[b] = lf_test_zeros(LF_TYPE_F32, W, H, C, N);
                assert_int_equal(lf_op_group_norm(bes[b], &d[b], &x, &ga, &bt, (int)groups, 1e-5f, variant != 1), 0);
                assert_true(lf_test_maxerr(&d[b], want) <= TOL_F32);
            }
            assert_memory_equal(d[1].data, d[2].data, lf_tensor_nbytes(&d[1]));
            free(want), free(wide.data), free(ga.data), free(bt.data);
            if (variant != 2) free(x.data);
            for (int b = 0; b < 3; b++) free(d[b].data);
        }
    lf_backend_destroy(&be3), lf_backend_destroy(&be5);
}

/* Layer norm (and RMS norm) against doubles on rows far from zero (offset
 * 1000) and odd lengths, with the weight and bias stored f16 and f32. */
static void test_layer_norm_stable(void **state) {
    lf_backend_t *be = *state;
    static const int64_t lens[] = {1, 15, 333, 1280, 5000};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        for (int rms = 0; rms < 2; rms++) {
            int64_t L = lens[k], R = 7;
            lf_tensor_t x = lf_test_rand(LF_TYPE_F32, L, R, 2, 1, 1);
            if (!rms) s_offset(&x, 1000.0f, 0.0f);
            lf_tensor_t ga = lf_test_rand(LF_TYPE_F16, L, 1, 1, 1, 1), bt = lf_test_rand(LF_TYPE_F32, L, 1, 1, 1, 1);
            lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, L, R, 2, 1);
            double *want = s_ref(&d);
            for (int64_t r = 0; r < R * 2; r++) {
                double mean = 0, var = 0;
                if (!rms) {
                    for (int64_t i = 0; i < L; i++) mean += G(&x, i, r % R, r / R, 0);
                    mean /= (double)L;
                }
                for (int64_t i = 0; i < L; i++) var += pow(G(&x, i, r % R, r / R, 0) - mean, 2);
                var /= (double)L;
                for (int64_t i = 0; i < L; i++)
                    want[r * L + i] = (G(&x, i, r % R, r / R, 0) - mean) / sqrt(var + 1e-5) * G(&ga, i, 0, 0, 0) +
                                      G(&bt, i, 0, 0, 0);
            }
            if (rms) assert_int_equal(lf_op_rms_norm(be, &d, &x, &ga, 1e-5f), 0);
            else assert_int_equal(lf_op_layer_norm(be, &d, &x, &ga, &bt, 1e-5f), 0);
            if (rms) /* no bias: take it back out of the reference */
                for (int64_t r = 0; r < R * 2; r++)
                    for (int64_t i = 0; i < L; i++) want[r * L + i] -= G(&bt, i, 0, 0, 0);
            assert_true(lf_test_maxerr(&d, want) <= TOL_F32);
            free(want), free(x.data), free(ga.data), free(bt.data), free(d.data);
        }
}

/* The transformers' permutation (tokens <-> channel planes, axes 1 0 2 3)
 * takes the tiled transpose: exact on edges that are not multiples of 16. */
static void test_permute_transpose(void **state) {
    lf_backend_t *be = *state;
    static const int64_t shapes[][3] = {{4096, 320, 2}, {70, 100, 2}, {17, 300, 1}, {333, 16, 3}};
    int axes[4] = {1, 0, 2, 3};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int64_t A = shapes[k][0], B = shapes[k][1], N = shapes[k][2];
        lf_tensor_t x = lf_test_rand(LF_TYPE_F32, A, B, N, 1, 1), p = lf_test_zeros(LF_TYPE_F32, B, A, N, 1);
        assert_int_equal(lf_op_permute(be, &p, &x, axes), 0);
        for (int64_t n = 0; n < N; n++)
            for (int64_t a = 0; a < A; a++)
                for (int64_t b = 0; b < B; b++) assert_true(G(&p, b, a, n, 0) == G(&x, a, b, n, 0));
        free(x.data), free(p.data);
    }
}

/* Group norm with its fused SiLU against the unfused pair (group norm, then
 * the SILU op), f32 and bf16 outputs, on whole contiguous channel planes (the
 * one-pass vector path), on a row-strided view and on bf16 input (row by
 * row). The same arithmetic either way: f32 within 1e-6, bf16 outputs
 * within one bf16 ulp (the pair rounds once more). */
static void test_group_norm_silu(void **state) {
    lf_backend_t *be = *state;
    for (int variant = 0; variant < 4; variant++) {
        lf_type_t ot = variant == 1 ? LF_TYPE_BF16 : LF_TYPE_F32, it = variant == 3 ? LF_TYPE_BF16 : LF_TYPE_F32;
        int64_t W = 67, H = 9, C = 32, N = 2, groups = 8;
        lf_tensor_t wide = lf_test_rand(it, W + 5, H, C, N, 3), x = wide;
        if (variant == 2) x = lf_tensor_slice(&wide, 0, 3, W); /* rows strided */
        else x = lf_test_rand(it, W, H, C, N, 3);
        lf_tensor_t ga = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 2), bt = lf_test_rand(LF_TYPE_F32, C, 1, 1, 1, 2);
        lf_tensor_t fused = lf_test_zeros(ot, W, H, C, N), plain = lf_test_zeros(LF_TYPE_F32, W, H, C, N);
        lf_tensor_t pair = lf_test_zeros(ot, W, H, C, N);
        assert_int_equal(lf_op_group_norm(be, &fused, &x, &ga, &bt, (int)groups, 1e-5f, 1), 0);
        assert_int_equal(lf_op_group_norm(be, &plain, &x, &ga, &bt, (int)groups, 1e-5f, 0), 0);
        assert_int_equal(lf_op_silu(be, &pair, &plain), 0);
        double *want = s_ref(&pair);
        int64_t n = lf_tensor_nelements(&pair), k = 0;
        for (int64_t i3 = 0; i3 < N; i3++)
            for (int64_t i2 = 0; i2 < C; i2++)
                for (int64_t i1 = 0; i1 < H; i1++)
                    for (int64_t i0 = 0; i0 < W; i0++) want[k++] = G(&pair, i0, i1, i2, i3);
        assert_int_equal(k, n);
        assert_true(lf_test_maxerr(&fused, want) <= (ot == LF_TYPE_BF16 ? 7.9e-3 : 1e-6));
        free(want), free(wide.data), free(ga.data), free(bt.data), free(fused.data), free(plain.data);
        free(pair.data);
        if (variant != 2) free(x.data);
    }
}

static void test_layer_rms_norm(void **state) {
    lf_backend_t *be = *state;
    int64_t D = 37, R = 7;
    lf_type_t types[2] = {LF_TYPE_F32, LF_TYPE_F16};
    for (int ti = 0; ti < 2; ti++) {
        lf_type_t ty = types[ti];
        lf_tensor_t x = lf_test_rand(ty, D, R, 2, 1, 3);
        lf_tensor_t ga = lf_test_rand(LF_TYPE_F32, D, 1, 1, 1, 1);
        lf_tensor_t bb = lf_test_rand(LF_TYPE_F32, D, 1, 1, 1, 1);
        lf_tensor_t d1 = lf_test_zeros(ty, D, R, 2, 1), d2 = lf_test_zeros(ty, D, R, 2, 1);
        double *w1 = s_ref(&d1), *w2 = s_ref(&d2);
        for (int64_t r = 0; r < R * 2; r++) {
            double mean = 0, var = 0, ms = 0;
            for (int64_t i = 0; i < D; i++) mean += G(&x, i, r % R, r / R, 0);
            mean /= (double)D;
            for (int64_t i = 0; i < D; i++) {
                double v = G(&x, i, r % R, r / R, 0);
                var += (v - mean) * (v - mean), ms += v * v;
            }
            var /= (double)D, ms /= (double)D;
            for (int64_t i = 0; i < D; i++) {
                double v = G(&x, i, r % R, r / R, 0), g = G(&ga, i, 0, 0, 0);
                w1[r * D + i] = (v - mean) / sqrt(var + 1e-6) * g + G(&bb, i, 0, 0, 0);
                w2[r * D + i] = v / sqrt(ms + 1e-6) * g;
            }
        }
        assert_int_equal(lf_op_layer_norm(be, &d1, &x, &ga, &bb, 1e-6f), 0);
        assert_int_equal(lf_op_rms_norm(be, &d2, &x, &ga, 1e-6f), 0);
        assert_true(lf_test_maxerr(&d1, w1) <= s_tol(ty));
        assert_true(lf_test_maxerr(&d2, w2) <= s_tol(ty));
        free(w1), free(w2), free(x.data), free(ga.data), free(bb.data), free(d1.data), free(d2.data);
    }
}

static void test_softmax(void **state) {
    lf_backend_t *be = *state;
    int64_t D = 45, R = 6;
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, D, R, 1, 1, 8);
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, D, R, 1, 1);
    double *w = s_ref(&d);
    for (int64_t r = 0; r < R; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t i = 0; i < D; i++) m = fmax(m, 0.7 * G(&x, i, r, 0, 0));
        for (int64_t i = 0; i < D; i++) s += exp(0.7 * G(&x, i, r, 0, 0) - m);
        for (int64_t i = 0; i < D; i++) w[r * D + i] = exp(0.7 * G(&x, i, r, 0, 0) - m) / s;
    }
    assert_int_equal(lf_op_softmax(be, &d, &x, 0.7f), 0);
    assert_true(lf_test_maxerr(&d, w) <= 1e-5);
    free(w), free(x.data), free(d.data);
}

/* ---- elementwise ---- */

static double s_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double s_gelu_t(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double s_sig(double x) { return 1 / (1 + exp(-x)); }

static void test_unary(void **state) {
    lf_backend_t *be = *state;
    lf_type_t types[3] = {LF_TYPE_F32, LF_TYPE_F16, LF_TYPE_BF16};
    for (int ti = 0; ti < 3; ti++) {
        lf_type_t ty = types[ti];
        lf_tensor_t x = lf_test_rand(ty, 17, 5, 3, 2, 4);
        lf_tensor_t d = lf_test_zeros(ty, 17, 5, 3, 2);
        double *w = s_ref(&d);
        int64_t n = lf_tensor_nelements(&x);
        for (int op = 0; op < 6; op++) {
            for (int64_t i = 0; i < n; i++) {
                double v = G(&x, i % 17, (i / 17) % 5, (i / 85) % 3, i / 255);
                switch (op) {
                case 0: w[i] = s_gelu(v); break;
                case 1: w[i] = s_gelu_t(v); break;
                case 2: w[i] = v * s_sig(v); break;
                case 3: w[i] = v * s_sig(1.702 * v); break;
                case 4: w[i] = fmin(fmax(v, -1.5), 0.25); break;
                default: w[i] = v * 0.5 - 2.0; break;
                }
            }
            int rc = op == 0 ? lf_op_gelu(be, &d, &x, 0)
                   : op == 1 ? lf_op_gelu(be, &d, &x, 1)
                   : op == 2 ? lf_op_silu(be, &d, &x)
                   : op == 3 ? lf_op_quick_gelu(be, &d, &x)
                   : op == 4 ? lf_op_clamp(be, &d, &x, -1.5f, 0.25f)
                             : lf_op_scale(be, &d, &x, 0.5f, -2.0f);
            assert_int_equal(rc, 0);
            double err = lf_test_maxerr(&d, w);
            if (err > s_tol(ty)) fprintf(stderr, "unary op %d %s: %g\n", op, lf_type_name(ty), err);
            assert_true(err <= s_tol(ty));
        }
        /* In place. */
        for (int64_t i = 0; i < n; i++) w[i] = G(&x, i % 17, (i / 17) % 5, (i / 85) % 3, i / 255) * 2;
        assert_int_equal(lf_op_scale(be, &x, &x, 2.0f, 0.0f), 0);
        assert_true(lf_test_maxerr(&x, w) <= s_tol(ty));
        free(w), free(x.data), free(d.data);
    }
    /* GEGLU: [2F] -> [F]. */
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, 18, 7, 1, 1, 3);
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, 9, 7, 1, 1);
    double *w = s_ref(&d);
    for (int64_t r = 0; r < 7; r++)
        for (int64_t i = 0; i < 9; i++) w[r * 9 + i] = G(&x, i, r, 0, 0) * s_gelu(G(&x, 9 + i, r, 0, 0));
    assert_int_equal(lf_op_geglu(be, &d, &x), 0);
    assert_true(lf_test_maxerr(&d, w) <= TOL_F32);
    free(w), free(x.data), free(d.data);
}

static void test_binary_broadcast(void **state) {
    lf_backend_t *be = *state;
    int64_t bshapes[5][4] = {{7, 5, 3, 2}, {7, 1, 1, 1}, {1, 5, 3, 1}, {1, 1, 1, 1}, {7, 5, 1, 2}};
    for (int s = 0; s < 5; s++)
        for (int op = 0; op < 2; op++) {
            lf_type_t ty = s == 4 ? LF_TYPE_F16 : LF_TYPE_F32;
            lf_tensor_t a = lf_test_rand(ty, 7, 5, 3, 2, 2);
            int64_t *bs = bshapes[s];
            lf_tensor_t b = lf_test_rand(LF_TYPE_F32, bs[0], bs[1], bs[2], bs[3], 2);
            lf_tensor_t d = lf_test_zeros(ty, 7, 5, 3, 2);
            double *w = s_ref(&d), *o = w;
            for (int64_t i3 = 0; i3 < 2; i3++)
                for (int64_t i2 = 0; i2 < 3; i2++)
                    for (int64_t i1 = 0; i1 < 5; i1++)
                        for (int64_t i0 = 0; i0 < 7; i0++, o++) {
                            double x = G(&a, i0, i1, i2, i3);
                            double y = G(&b, bs[0] == 1 ? 0 : i0, bs[1] == 1 ? 0 : i1,
                                         bs[2] == 1 ? 0 : i2, bs[3] == 1 ? 0 : i3);
                            *o = op ? x * y : x + y;
                        }
            assert_int_equal(op ? lf_op_mul(be, &d, &a, &b) : lf_op_add(be, &d, &a, &b), 0);
            assert_true(lf_test_maxerr(&d, w) <= s_tol(ty));
            free(w), free(a.data), free(b.data), free(d.data);
        }
}

/* ---- layout ---- */

static void test_layout(void **state) {
    lf_backend_t *be = *state;
    /* concat along each dimension */
    for (int dim = 0; dim < 4; dim++) {
        int64_t na[4] = {5, 4, 3, 2}, nb_[4] = {5, 4, 3, 2};
        nb_[dim] = 3;
        lf_tensor_t a = lf_test_rand(LF_TYPE_F32, na[0], na[1], na[2], na[3], 1);
        lf_tensor_t b = lf_test_rand(LF_TYPE_F32, nb_[0], nb_[1], nb_[2], nb_[3], 1);
        int64_t nd[4] = {5, 4, 3, 2};
        nd[dim] += 3;
        lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, nd[0], nd[1], nd[2], nd[3]);
        double *w = s_ref(&d), *o = w;
        for (int64_t i3 = 0; i3 < nd[3]; i3++)
            for (int64_t i2 = 0; i2 < nd[2]; i2++)
                for (int64_t i1 = 0; i1 < nd[1]; i1++)
                    for (int64_t i0 = 0; i0 < nd[0]; i0++, o++) {
                        int64_t idx[4] = {i0, i1, i2, i3};
                        if (idx[dim] < na[dim]) *o = G(&a, i0, i1, i2, i3);
                        else {
                            idx[dim] -= na[dim];
                            *o = G(&b, idx[0], idx[1], idx[2], idx[3]);
                        }
                    }
        assert_int_equal(lf_op_concat(be, &d, &a, &b, dim), 0);
        assert_true(lf_test_maxerr(&d, w) == 0);
        /* split takes b back out */
        lf_tensor_t s = lf_test_zeros(LF_TYPE_F32, nb_[0], nb_[1], nb_[2], nb_[3]);
        assert_int_equal(lf_op_split(be, &s, &d, dim, na[dim]), 0);
        assert_memory_equal(s.data, b.data, lf_tensor_nbytes(&b));
        free(w), free(a.data), free(b.data), free(d.data), free(s.data);
    }
    /* permute (with a type change through cpy afterwards) */
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, 5, 4, 3, 2, 1);
    int axes[4] = {2, 0, 3, 1};
    lf_tensor_t p = lf_test_zeros(LF_TYPE_F32, 3, 5, 2, 4);
    assert_int_equal(lf_op_permute(be, &p, &x, axes), 0);
    for (int64_t i3 = 0; i3 < 4; i3++)
        for (int64_t i2 = 0; i2 < 2; i2++)
            for (int64_t i1 = 0; i1 < 5; i1++)
                for (int64_t i0 = 0; i0 < 3; i0++)
                    assert_true(G(&p, i0, i1, i2, i3) == G(&x, i1, i3, i0, i2));
    lf_tensor_t h = lf_test_zeros(LF_TYPE_F16, 3, 5, 2, 4);
    assert_int_equal(lf_op_cpy(be, &h, &p), 0);
    lf_tensor_t back = lf_test_zeros(LF_TYPE_F32, 12, 10, 1, 1); /* reshaping copy */
    assert_int_equal(lf_op_cpy(be, &back, &h), 0);
    for (int64_t i = 0; i < 120; i++) {
        double want = G(&p, i % 3, (i / 3) % 5, (i / 15) % 2, i / 30);
        assert_true(fabs(G(&back, i % 12, i / 12, 0, 0) - want) <= 4.9e-4 * fabs(want) + 1e-7);
    }
    /* transposed view copied to contiguous */
    lf_tensor_t tv = lf_tensor_transpose(&x);
    lf_tensor_t tc = lf_test_zeros(LF_TYPE_F32, 4, 5, 3, 2);
    assert_int_equal(lf_op_cpy(be, &tc, &tv), 0);
    assert_true(G(&tc, 3, 2, 1, 1) == G(&x, 2, 3, 1, 1));
    free(x.data), free(p.data), free(h.data), free(back.data), free(tc.data);
}

static void test_upsample_pool(void **state) {
    lf_backend_t *be = *state;
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, 5, 3, 4, 2, 1);
    lf_tensor_t u = lf_test_zeros(LF_TYPE_F32, 10, 6, 4, 2);
    assert_int_equal(lf_op_upsample2x(be, &u, &x), 0);
    for (int64_t i3 = 0; i3 < 2; i3++)
        for (int64_t i2 = 0; i2 < 4; i2++)
            for (int64_t i1 = 0; i1 < 6; i1++)
                for (int64_t i0 = 0; i0 < 10; i0++)
                    assert_true(G(&u, i0, i1, i2, i3) == G(&x, i0 / 2, i1 / 2, i2, i3));
    int ks[2][2] = {{2, 2}, {3, 2}};
    for (int c = 0; c < 2; c++) {
        int k = ks[c][0], s = ks[c][1];
        lf_tensor_t y = lf_test_rand(LF_TYPE_F32, 9, 7, 3, 1, 1);
        int64_t wo = (9 - k) / s + 1, ho = (7 - k) / s + 1;
        lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, wo, ho, 3, 1);
        double *w = s_ref(&d), *o = w;
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t oy = 0; oy < ho; oy++)
                for (int64_t ox = 0; ox < wo; ox++, o++) {
                    double sum = 0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) sum += G(&y, ox * s + kx, oy * s + ky, ch, 0);
                    *o = sum / (k * k);
                }
        assert_int_equal(lf_op_avg_pool2d(be, &d, &y, k, s), 0);
        assert_true(lf_test_maxerr(&d, w) <= 1e-6);
        free(w), free(y.data), free(d.data);
    }
    free(x.data), free(u.data);
}

static void test_timestep_rope(void **state) {
    lf_backend_t *be = *state;
    lf_tensor_t t = lf_test_zeros(LF_TYPE_F32, 3, 1, 1, 1);
    float tv[3] = {0.0f, 1.5f, 999.0f};
    memcpy(t.data, tv, sizeof tv);
    for (int flip = 0; flip < 2; flip++) {
        int dim = 320 + flip; /* odd size is padded with a zero */
        lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, dim, 3, 1, 1);
        double *w = s_ref(&d);
        int half = dim / 2;
        for (int b = 0; b < 3; b++)
            for (int i = 0; i < half; i++) {
                double arg = tv[b] * exp(-log(10000.0) * i / (half - 1.0));
                w[b * dim + i] = flip ? cos(arg) : sin(arg);
                w[b * dim + half + i] = flip ? sin(arg) : cos(arg);
            }
        assert_int_equal(lf_op_timestep_embed(be, &d, &t, dim, 10000.0f, flip, 1.0f), 0);
        /* Large arguments (t = 999) lose digits in f32; 1e-4 absolute. */
        assert_true(lf_test_maxerr(&d, w) <= 1e-4);
        free(w), free(d.data);
    }
    free(t.data);
    /* rope */
    int64_t D = 10, N = 7, H = 3;
    lf_tensor_t x = lf_test_rand(LF_TYPE_F32, D, N, H, 1, 1);
    lf_tensor_t pe = lf_test_zeros(LF_TYPE_F32, D, N, 1, 1);
    float *pp = pe.data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < D / 2; i++) {
            double th = (double)n * pow(10000.0, -2.0 * (double)i / (double)D);
            pp[n * D + 2 * i] = (float)cos(th), pp[n * D + 2 * i + 1] = (float)sin(th);
        }
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, D, N, H, 1);
    double *w = s_ref(&d);
    for (int64_t h = 0; h < H; h++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < D; i += 2) {
                double c = pp[n * D + i], s = pp[n * D + i + 1];
                double x0 = G(&x, i, n, h, 0), x1 = G(&x, i + 1, n, h, 0);
                w[(h * N + n) * D + i] = x0 * c - x1 * s;
                w[(h * N + n) * D + i + 1] = x0 * s + x1 * c;
            }
    assert_int_equal(lf_op_rope(be, &d, &x, &pe), 0);
    assert_true(lf_test_maxerr(&d, w) <= 1e-6);
    free(w), free(x.data), free(pe.data), free(d.data);
}

/* ADD_LOWRANK: dst = a + u . v (+ c) against doubles, for each storage type,
 * with and without c, in place (a = dst), across several column tiles and a
 * row count that is not a multiple of the kernel's row group; on the
 * AVX-512 kernel and the scalar one (LF_CPU_SIMD=avx2); a value that
 * overflows the type is reported. */
static void s_lowrank_case(lf_backend_t *be, lf_type_t ty, int64_t N, int64_t M, int64_t K, int with_c, int inplace) {
    lf_tensor_t a = lf_test_rand(ty, N, M, 1, 1, 1), u = lf_test_rand(LF_TYPE_F32, K, M, 1, 1, 1);
    lf_tensor_t v = lf_test_rand(LF_TYPE_F32, N, K, 1, 1, 1), c = lf_test_rand(LF_TYPE_F32, N, M, 1, 1, 1);
    lf_tensor_t d = lf_test_zeros(ty, N, M, 1, 1);
    double *w = s_ref(&d);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double x = G(&a, n, m, 0, 0) + (with_c ? G(&c, n, m, 0, 0) : 0.0);
            for (int64_t k = 0; k < K; k++) x += G(&u, k, m, 0, 0) * G(&v, n, k, 0, 0);
            w[m * N + n] = x;
        }
    if (inplace) memcpy(d.data, a.data, lf_tensor_nbytes(&a));
    assert_int_equal(lf_op_add_lowrank(be, &d, inplace ? &d : &a, &u, &v, with_c ? &c : NULL), 0);
    assert_true(lf_test_maxerr(&d, w) <= s_tol(ty) * (1 + 0.1 * (double)K));
    free(w), free(a.data), free(u.data), free(v.data), free(c.data), free(d.data);
}

static void test_add_lowrank(void **state) {
    lf_backend_t *bes[2] = {*state, NULL};
    setenv("LF_CPU_SIMD", "avx2", 1);
    bes[1] = lf_backend_cpu_new(3);
    unsetenv("LF_CPU_SIMD");
    assert_non_null(bes[1]);
    lf_type_t tys[3] = {LF_TYPE_F32, LF_TYPE_F16, LF_TYPE_BF16};
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++) {
            s_lowrank_case(bes[b], tys[t], 37, 11, 3, 0, 0);
            s_lowrank_case(bes[b], tys[t], 37, 11, 3, 1, 1);
            s_lowrank_case(bes[b], tys[t], 1000, 23, 40, 1, 0); /* 800-column tiles */
            s_lowrank_case(bes[b], tys[t], 5, 1, 1, 0, 1);
        }
    /* 60000 + 10000 is Inf in f16 and finite in f32; a NaN factor is NaN in every type. */
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++) {
            lf_tensor_t a = lf_test_zeros(tys[t], 21, 6, 1, 1), d = lf_test_zeros(tys[t], 21, 6, 1, 1);
            lf_tensor_t u = lf_test_zeros(LF_TYPE_F32, 1, 6, 1, 1), v = lf_test_zeros(LF_TYPE_F32, 21, 1, 1, 1);
            float big = 60000.0f;
            lf_type_from_f32(tys[t], &big, (char *)a.data + 19 * lf_type_size(tys[t]), 1);
            ((float *)u.data)[0] = 1.0f, ((float *)v.data)[19] = 10000.0f;
            assert_int_equal(lf_op_add_lowrank(bes[b], &d, &a, &u, &v, NULL), tys[t] == LF_TYPE_F16 ? LF_EOVERFLOW : 0);
            ((float *)u.data)[5] = NAN;
            assert_int_equal(lf_op_add_lowrank(bes[b], &d, &a, &u, &v, NULL), LF_EOVERFLOW);
            free(a.data), free(d.data), free(u.data), free(v.data);
        }
    /* Shapes that do not match are refused. */
    lf_tensor_t a = lf_test_rand(LF_TYPE_F32, 8, 4, 1, 1, 1), u = lf_test_rand(LF_TYPE_F32, 2, 3, 1, 1, 1);
    lf_tensor_t v = lf_test_rand(LF_TYPE_F32, 8, 2, 1, 1, 1), d = lf_test_zeros(LF_TYPE_F32, 8, 4, 1, 1);
    assert_int_equal(lf_op_add_lowrank(bes[0], &d, &a, &u, &v, NULL), LF_EINVAL);
    free(a.data), free(u.data), free(v.data), free(d.data);
    lf_backend_destroy(&bes[1]);
}

/* Other pool sizes give the same answers as the 2-thread backend. */
static void test_thread_counts(void **state) {
    lf_backend_t *be2 = *state;
    lf_tensor_t q = lf_test_rand(LF_TYPE_F32, 16, 300, 3, 1, 1), x = lf_test_rand(LF_TYPE_F32, 9, 7, 8, 2, 1);
    lf_tensor_t o2 = lf_test_zeros(LF_TYPE_F32, 16, 300, 3, 1), g2 = lf_test_zeros(LF_TYPE_F32, 9, 7, 8, 2);
    assert_int_equal(lf_op_attention(be2, &o2, &q, &q, &q, NULL, 0.25f), 0);
    assert_int_equal(lf_op_group_norm(be2, &g2, &x, NULL, NULL, 4, 1e-5f, 1), 0);
    int counts[3] = {1, 3, 5};
    for (int i = 0; i < 3; i++) {
        lf_backend_t *be = lf_backend_cpu_new(counts[i]);
        assert_non_null(be);
        lf_tensor_t o = lf_test_zeros(LF_TYPE_F32, 16, 300, 3, 1), g = lf_test_zeros(LF_TYPE_F32, 9, 7, 8, 2);
        assert_int_equal(lf_op_attention(be, &o, &q, &q, &q, NULL, 0.25f), 0);
        assert_int_equal(lf_op_group_norm(be, &g, &x, NULL, NULL, 4, 1e-5f, 1), 0);
        for (int64_t j = 0; j < lf_tensor_nelements(&o); j++)
            assert_true(fabsf(((float *)o.data)[j] - ((float *)o2.data)[j]) <= 1e-5f);
        assert_memory_equal(g.data, g2.data, lf_tensor_nbytes(&g)); /* same order of sums */
        free(o.data), free(g.data);
        lf_backend_destroy(&be);
    }
    free(q.data), free(x.data), free(o2.data), free(g2.data);
}

static void test_supports_every_op(void **state) {
    lf_backend_t *be = *state;
    assert_string_equal(lf_backend_name(be), "cpu");
    assert_int_equal(LF_OP_COUNT, LF_OP_EXPECTED_COUNT);
    for (int op = 0; op < LF_OP_COUNT; op++) assert_string_not_equal(lf_op_name((lf_op_t)op), "?");
    /* An f16 destination is refused by matmul with a clear code. */
    lf_tensor_t a = lf_test_rand(LF_TYPE_F32, 4, 3, 1, 1, 1), b = lf_test_rand(LF_TYPE_F32, 4, 2, 1, 1, 1);
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F16, 2, 3, 1, 1);
    assert_int_equal(lf_op_matmul(be, &d, &a, &b, NULL), LF_EUNSUPPORTED);
    assert_true(strlen(lf_backend_errstr(be)) > 0);
    assert_true(strlen(lf_backend_describe(be)) > 0);
    free(a.data), free(b.data), free(d.data);
}

int main(void) {
    lf_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_conversion),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_bf16_compute),
        cmocka_unit_test(test_prepacked_weights),
        cmocka_unit_test(test_group_norm),
        cmocka_unit_test(test_group_norm_silu),
        cmocka_unit_test(test_group_norm_stable),
        cmocka_unit_test(test_layer_norm_stable),
        cmocka_unit_test(test_permute_transpose),
        cmocka_unit_test(test_layer_rms_norm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_binary_broadcast),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_upsample_pool),
        cmocka_unit_test(test_timestep_rope),
        cmocka_unit_test(test_thread_counts),
        cmocka_unit_test(test_add_lowrank),
        cmocka_unit_test(test_supports_every_op),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
