/* test_attention: the fused attention op of the CPU backend against a plain
 * double-precision reference (moved here from test_ops.c with the f32
 * form's tests): the f32 form (queries along the vector lanes) and its
 * older sgemm form (LF_CPU_ATTN=sgemm) at every head size the networks use,
 * odd sizes, masks, cross-attention's 77 keys, rows masked in full or in
 * one tile; the bf16 form under the bf16 compute type. ctest also runs this
 * file with LF_CPU_SIMD=avx2 and =scalar (the f32 form's other kernels).
 * Tolerances are relative, |got - want| / (1 + |want|). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lf_backend.h"
#include "lf_ops.h"
#include "lf_test_tensor.h"

/* f32 accumulation over up to 512-long dot products and 150 keys: 5e-4, as
 * test_ops's other f32 ops (1e-6 to 1e-5 seen). A wrong tile, lane or
 * packing gives errors of order 1e-1 and more. */
#define TOL_F32 5e-4
/* The f32 forms' own checks: 1.3e-6 seen at D 512, 2e-7 to 8e-7 elsewhere;
 * an exp off by 1e-5 or a dropped correction fails. */
#define TOL_ATTN_F32 2e-5

static lf_backend_t *s_backend_attn(const char *form);

/* The fixture's backend runs the register-blocked f32 form (opt-in). */
static int s_setup(void **state) {
    lf_backend_t *be = s_backend_attn("blocked");
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

static void s_ref_attention(const lf_tensor_t *q, const lf_tensor_t *k, const lf_tensor_t *v,
                            const lf_tensor_t *mask, double scale, double *out) {
    int64_t D = q->ne[0], Nq = q->ne[1], Nk = k->ne[1], H = q->ne[2], B = q->ne[3], Dv = v->ne[0];
    double *p = malloc((size_t)Nk * sizeof *p);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Nq; i++) {
                double m = -INFINITY, s = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    double dot = 0;
                    for (int64_t c = 0; c < D; c++) dot += G(q, c, i, h, b) * G(k, c, j, h, b);
                    p[j] = dot * scale + (mask ? G(mask, j, i, mask->ne[2] > 1 ? h : 0, 0) : 0);
                    m = fmax(m, p[j]);
                }
                for (int64_t j = 0; j < Nk; j++) s += (p[j] = exp(p[j] - m));
                for (int64_t c = 0; c < Dv; c++) {
                    double o = 0;
                    for (int64_t j = 0; j < Nk; j++) o += p[j] * G(v, c, j, h, b);
                    out[((b * H + h) * Nq + i) * Dv + c] = o / s;
                }
            }
    free(p);
}

static void test_attention(void **state) {
    lf_backend_t *be = *state;
    int64_t D = 13, Dv = 11, Nq = 37, Nk = 45, H = 3, B = 2;
    lf_tensor_t q = lf_test_rand(LF_TYPE_F32, D, Nq, H, B, 1);
    lf_tensor_t k = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 1);
    lf_tensor_t v = lf_test_rand(LF_TYPE_F32, Dv, Nk, H, B, 1);
    lf_tensor_t mask = lf_test_rand(LF_TYPE_F32, Nk, Nq, 1, 1, 2);
    lf_tensor_t hmask = lf_test_rand(LF_TYPE_F32, Nk, Nq, H, 1, 2); /* per head (T5) */
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, Dv, Nq, H, B);
    double *w = s_ref(&d);
    float scale = 1.0f / sqrtf((float)D);
    for (int masked = 0; masked < 3; masked++) {
        const lf_tensor_t *mk = masked == 2 ? &hmask : masked ? &mask : NULL;
        s_ref_attention(&q, &k, &v, mk, scale, w);
        /* One tile, then many small tiles (online softmax across tiles). */
        assert_int_equal(lf_op_attention(be, &d, &q, &k, &v, mk, scale), 0);
        assert_true(lf_test_maxerr(&d, w) <= TOL_F32);
        setenv("LF_ATTN_BQ", "8", 1), setenv("LF_ATTN_BK", "7", 1);
        memset(d.data, 0, lf_tensor_nbytes(&d));
        assert_int_equal(lf_op_attention(be, &d, &q, &k, &v, mk, scale), 0);
        unsetenv("LF_ATTN_BQ"), unsetenv("LF_ATTN_BK");
        assert_true(lf_test_maxerr(&d, w) <= TOL_F32);
    }
    free(w), free(q.data), free(k.data), free(v.data), free(mask.data), free(hmask.data), free(d.data);

    /* Heads as strided views of [H*D, N] projections (how a UNet calls it). */
    int64_t heads = 4, hd = 8, N = 29, C = heads * hd;
    lf_tensor_t Q = lf_test_rand(LF_TYPE_F32, C, N, 1, 1, 1);
    lf_tensor_t K = lf_test_rand(LF_TYPE_F32, C, N, 1, 1, 1);
    lf_tensor_t V = lf_test_rand(LF_TYPE_F32, C, N, 1, 1, 1);
    lf_tensor_t O = lf_test_zeros(LF_TYPE_F32, C, N, 1, 1);
    lf_tensor_t qv = Q, kv = K, vv = V, ov = O;
    lf_tensor_t *views[4] = {&qv, &kv, &vv, &ov};
    for (int i = 0; i < 4; i++) {
        lf_tensor_t *t = views[i];
        t->ne[0] = hd, t->ne[1] = N, t->ne[2] = heads, t->ne[3] = 1;
        t->nb[1] = (size_t)C * 4, t->nb[2] = (size_t)hd * 4, t->nb[3] = (size_t)C * N * 4;
    }
    double *w2 = calloc((size_t)(C * N), sizeof *w2), *wc = calloc((size_t)(C * N), sizeof *wc);
    s_ref_attention(&qv, &kv, &vv, NULL, 1.0 / sqrt((double)hd), w2);
    for (int64_t h = 0; h < heads; h++) /* [D,N,H] order -> [C,N] order */
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < hd; c++) wc[n * C + h * hd + c] = w2[(h * N + n) * hd + c];
    assert_int_equal(lf_op_attention(be, &ov, &qv, &kv, &vv, NULL, 1.0f / sqrtf((float)hd)), 0);
    assert_true(lf_test_maxerr(&O, wc) <= TOL_F32);
    free(w2), free(wc), free(Q.data), free(K.data), free(V.data), free(O.data);
}

/* t's values rounded to bf16 after multiplying by scale (f32 tensor copy). */
static lf_tensor_t s_round_bf16(const lf_tensor_t *t, float scale) {
    lf_tensor_t r = lf_test_zeros(LF_TYPE_F32, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    float *o = r.data;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < t->ne[0]; i0++)
                    *o++ = lf_bf16_to_f32(lf_f32_to_bf16((float)G(t, i0, i1, i2, i3) * scale));
    return r;
}

/* Attention under the bf16 compute type: Q K^T and P V with bf16 operands
 * and f32 accumulation, softmax in f32, for the head sizes the networks use
 * (SD1.5 40/80/160, SDXL 64, Flux 128) and an odd one. Two references: the
 * double result on the operands rounded to bf16 as the kernel rounds them
 * (Q times the scale, K, V), where only P's rounding differs (half a bf16
 * ulp, 3.9e-3, of each weight, averaging out over the keys: 7.6e-4 seen,
 * TOL_ATTN_BF16_OPS 3e-3); and the exact double result (scores off by about
 * |q||k| 2^-9: 3.3e-3 seen, TOL_ATTN_BF16 1e-2). A broken packing or tile
 * walk gives errors of order 1. */
#define TOL_ATTN_BF16_OPS 3e-3
#define TOL_ATTN_BF16 1e-2
static void test_attention_bf16(void **state) {
    (void)state;
    lf_backend_t *be = lf_backend_cpu_new(2);
    assert_non_null(be);
    if (lf_backend_set_precision(be, LF_PRECISION_BF16) != LF_PRECISION_BF16) {
        fprintf(stderr, "SKIP bf16 attention: %s\n", lf_backend_describe(be));
        lf_backend_destroy(&be);
        return;
    }
    const int64_t heads[] = {40, 80, 160, 64, 128, 33};
    for (int hi = 0; hi < 6; hi++) {
        int64_t D = heads[hi], Nq = 70, H = 2, B = 2;
        for (int kind = 0; kind < 3; kind++) {
            /* Cross-attention's 77 keys (odd), then 150 keys in tiles of 64
             * with a mask, then with a per-head mask and 6-row query blocks. */
            int64_t Nk = kind ? 150 : 77;
            lf_tensor_t q = lf_test_rand(LF_TYPE_F32, D, Nq, H, B, 2);
            lf_tensor_t k = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 2);
            lf_tensor_t v = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 1);
            lf_tensor_t mask = lf_test_rand(LF_TYPE_F32, Nk, Nq, kind == 2 ? H : 1, 1, 2);
            lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, D, Nq, H, B), d32 = d;
            d32.data = calloc((size_t)lf_tensor_nbytes(&d), 1);
            const lf_tensor_t *mk = kind ? &mask : NULL;
            float scale = 1.0f / sqrtf((float)D);
            if (kind) setenv("LF_ATTN_BK", "64", 1);
            if (kind == 2) setenv("LF_ATTN_BQ", "6", 1);
            assert_int_equal(lf_op_attention(be, &d, &q, &k, &v, mk, scale), 0);
            unsetenv("LF_ATTN_BQ"), unsetenv("LF_ATTN_BK");
            double *w = s_ref(&d);
            s_ref_attention(&q, &k, &v, mk, scale, w);
            double err = lf_test_maxerr(&d, w);
            lf_tensor_t qr = s_round_bf16(&q, scale), kr = s_round_bf16(&k, 1), vr = s_round_bf16(&v, 1);
            s_ref_attention(&qr, &kr, &vr, mk, 1.0, w);
            double err_ops = lf_test_maxerr(&d, w);
            fprintf(stderr, "bf16 attention D %lld Nk %lld: %.2e (exact) %.2e (bf16 operands)\n", (long long)D,
                    (long long)Nk, err, err_ops);
            assert_true(err <= TOL_ATTN_BF16);
            assert_true(err_ops <= TOL_ATTN_BF16_OPS);
            /* LF_ATTN_QK=bf16x3: scores from split operands (about f32's), so
             * against the exact result only P's rounding is left. */
            if (kind == 1) {
                setenv("LF_ATTN_QK", "bf16x3", 1), setenv("LF_ATTN_BK", "64", 1);
                lf_tensor_t d3 = lf_test_zeros(LF_TYPE_F32, D, Nq, H, B);
                assert_int_equal(lf_op_attention(be, &d3, &q, &k, &v, mk, scale), 0);
                unsetenv("LF_ATTN_QK"), unsetenv("LF_ATTN_BK");
                s_ref_attention(&q, &k, &v, mk, scale, w);
                double err3 = lf_test_maxerr(&d3, w);
                fprintf(stderr, "  bf16x3 scores: %.2e (exact)\n", err3);
                assert_true(err3 <= TOL_ATTN_BF16_OPS);
                free(d3.data);
            }
            /* The f32 reference path gives other bytes: the bf16 path ran. */
            assert_int_equal(lf_backend_set_precision(be, LF_PRECISION_F32), LF_PRECISION_F32);
            assert_int_equal(lf_op_attention(be, &d32, &q, &k, &v, mk, scale), 0);
            assert_int_equal(lf_backend_set_precision(be, LF_PRECISION_BF16), LF_PRECISION_BF16);
            assert_true(memcmp(d.data, d32.data, lf_tensor_nbytes(&d)) != 0);
            free(w), free(q.data), free(k.data), free(v.data), free(mask.data), free(d.data), free(d32.data);
            free(qr.data), free(kr.data), free(vr.data);
        }
    }
    lf_backend_destroy(&be);
}

/* A backend made with LF_CPU_ATTN=form (read when it is made). */
static lf_backend_t *s_backend_attn(const char *form) {
    const char *was = getenv("LF_CPU_ATTN");
    char *saved = was ? strdup(was) : NULL;
    setenv("LF_CPU_ATTN", form, 1);
    lf_backend_t *be = lf_backend_cpu_new(2);
    if (saved) setenv("LF_CPU_ATTN", saved, 1);
    else unsetenv("LF_CPU_ATTN");
    free(saved);
    return be;
}

/* The f32 form at the head sizes the networks use (SD1.5 40/80/160, SDXL
 * 64, Flux 128, the VAE's 512) and an odd pair (D 33, Dv 21), 70 queries
 * (a tail of 6 lanes past the vector blocks; 20 at D 512): cross-attention's 77 keys in
 * one tile; 150 keys in tiles of 64 with a mask; a per-head mask with
 * 6-row query blocks (most of each block's lanes are padding). The sgemm
 * form must agree too; the two forms' bytes must differ somewhere, or the
 * new form did not run. */
static void test_attention_f32(void **state) {
    lf_backend_t *be = *state, *sg = s_backend_attn("sgemm");
    assert_non_null(sg);
    const int64_t heads[][2] = {{40, 40}, {80, 80}, {160, 160}, {64, 64}, {128, 128}, {512, 512}, {33, 21}};
    int differ = 0;
    for (int hi = 0; hi < 7; hi++) {
        /* The VAE's 512 with fewer queries and heads (the ASan build's time). */
        int64_t D = heads[hi][0], Dv = heads[hi][1], Nq = D == 512 ? 20 : 70, H = D == 512 ? 1 : 2, B = 2;
        for (int kind = 0; kind < 3; kind++) {
            int64_t Nk = kind ? 150 : 77;
            lf_tensor_t q = lf_test_rand(LF_TYPE_F32, D, Nq, H, B, 2);
            lf_tensor_t k = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 2);
            lf_tensor_t v = lf_test_rand(LF_TYPE_F32, Dv, Nk, H, B, 1);
            lf_tensor_t mask = lf_test_rand(LF_TYPE_F32, Nk, Nq, kind == 2 ? H : 1, 1, 2);
            lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, Dv, Nq, H, B), ds = lf_test_zeros(LF_TYPE_F32, Dv, Nq, H, B);
            const lf_tensor_t *mk = kind ? &mask : NULL;
            float scale = 1.0f / sqrtf((float)D);
            double *w = s_ref(&d);
            s_ref_attention(&q, &k, &v, mk, scale, w);
            if (kind) setenv("LF_ATTN_BK", "64", 1);
            if (kind == 2) setenv("LF_ATTN_BQ", "6", 1);
            assert_int_equal(lf_op_attention(be, &d, &q, &k, &v, mk, scale), 0);
            assert_int_equal(lf_op_attention(sg, &ds, &q, &k, &v, mk, scale), 0);
            unsetenv("LF_ATTN_BQ"), unsetenv("LF_ATTN_BK");
            double err = lf_test_maxerr(&d, w), errs = lf_test_maxerr(&ds, w);
            fprintf(stderr, "f32 attention D %lld Dv %lld Nk %lld: %.2e (sgemm form %.2e)\n", (long long)D,
                    (long long)Dv, (long long)Nk, err, errs);
            assert_true(err <= TOL_ATTN_F32);
            assert_true(errs <= TOL_ATTN_F32);
            differ |= memcmp(d.data, ds.data, lf_tensor_nbytes(&d)) != 0;
            free(w), free(q.data), free(k.data), free(v.data), free(mask.data), free(d.data), free(ds.data);
        }
    }
    assert_true(differ);
    lf_backend_destroy(&sg);
}

/* Rows masked with -inf: row 0 in full gives zeros (both forms); row 1 in
 * its first key tile and row 2 in its second get their softmax from the
 * other tiles (the running max is -inf for a while in row 1). The
 * reference sees row 0 unmasked; its other rows do not depend on row 0. */
static void test_attention_masked_rows(void **state) {
    lf_backend_t *bes[2] = {*state, s_backend_attn("sgemm")};
    assert_non_null(bes[1]);
    int64_t D = 40, Nq = 20, Nk = 150, H = 2, B = 2;
    lf_tensor_t q = lf_test_rand(LF_TYPE_F32, D, Nq, H, B, 2), k = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 2);
    lf_tensor_t v = lf_test_rand(LF_TYPE_F32, D, Nk, H, B, 1), mask = lf_test_rand(LF_TYPE_F32, Nk, Nq, 1, 1, 2);
    lf_tensor_t refmask = lf_test_zeros(LF_TYPE_F32, Nk, Nq, 1, 1);
    float *mk = mask.data;
    for (int64_t c = 0; c < Nk; c++) {
        mk[c] = -INFINITY;
        if (c < 64) mk[Nk + c] = -INFINITY;
        if (c >= 64 && c < 128) mk[2 * Nk + c] = -INFINITY;
    }
    memcpy(refmask.data, mask.data, lf_tensor_nbytes(&mask));
    memset(refmask.data, 0, (size_t)Nk * 4);
    lf_tensor_t d = lf_test_zeros(LF_TYPE_F32, D, Nq, H, B);
    double *w = s_ref(&d);
    float scale = 1.0f / sqrtf((float)D);
    s_ref_attention(&q, &k, &v, &refmask, scale, w);
    setenv("LF_ATTN_BK", "64", 1);
    for (int i = 0; i < 2; i++) {
        memset(d.data, 0x7f, lf_tensor_nbytes(&d)); /* not zeros already */
        assert_int_equal(lf_op_attention(bes[i], &d, &q, &k, &v, &mask, scale), 0);
        double worst = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t r = 0; r < Nq; r++)
                    for (int64_t c = 0; c < D; c++) {
                        double got = G(&d, c, r, h, b), want = w[((b * H + h) * Nq + r) * D + c];
                        if (r == 0) assert_true(got == 0.0);
                        else worst = fmax(worst, isnan(got) ? INFINITY : fabs(got - want) / (1 + fabs(want)));
                    }
        fprintf(stderr, "masked rows, %s form: %.2e\n", i ? "sgemm" : "f32", worst);
        assert_true(worst <= TOL_ATTN_F32);
    }
    unsetenv("LF_ATTN_BK");
    free(w), free(q.data), free(k.data), free(v.data), free(mask.data), free(refmask.data), free(d.data);
    lf_backend_destroy(&bes[1]);
}

int main(void) {
    lf_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_f32),
        cmocka_unit_test(test_attention_masked_rows),
        cmocka_unit_test(test_attention_bf16),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
