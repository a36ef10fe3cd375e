/* Tests for kernels/lf_quant through the weights loader: every type of the
 * gguf package's file dequantizes bit-exactly to the package's numpy
 * reference (every vector form: scalar, AVX2, AVX-512), uploads as f32, and
 * the tiled quantized product matches dequantize-then-multiply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_backend.h"
#include "lf_error.h"
#include "lf_pool.h"
#include "lf_quant.h"
#include "lf_tensor.h"
#include "lf_weights.h"

#define TYPES LF_FIXTURE_DIR "/gguf/types.gguf"

static lf_quant_type_t s_quant(lf_dtype_t dt)
{
    switch (dt) {
    case LF_DTYPE_Q4_0: return LF_QUANT_Q4_0;
    case LF_DTYPE_Q4_1: return LF_QUANT_Q4_1;
    case LF_DTYPE_Q5_0: return LF_QUANT_Q5_0;
    case LF_DTYPE_Q5_1: return LF_QUANT_Q5_1;
    case LF_DTYPE_Q8_0: return LF_QUANT_Q8_0;
    case LF_DTYPE_Q4_K: return LF_QUANT_Q4_K;
    case LF_DTYPE_Q5_K: return LF_QUANT_Q5_K;
    case LF_DTYPE_Q6_K: return LF_QUANT_Q6_K;
    default: return LF_QUANT_COUNT;
    }
}

/* The reference tensor as f32 (it is stored as F32). */
static float *s_ref(const lf_weights_t *w, const char *name, int64_t *n)
{
    const lf_tensor_info_t *r = lf_weights_find(w, name);
    if (!r) fail_msg("no tensor %s", name);
    assert_int_equal(r->dtype, LF_DTYPE_F32);
    *n = lf_tensorinfo_numel(r);
    float *f = malloc((size_t)*n * sizeof *f);
    memcpy(f, r->data, (size_t)*n * sizeof *f);
    return f;
}

/* Bit-for-bit equality, reporting the first difference. */
static void s_same_bits(const char *what, const float *got, const float *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4) != 0)
            fail_msg("%s: element %lld is %.9g, the gguf package gives %.9g", what, (long long)i, got[i],
                     want[i]);
}

static void test_dequant_bitexact(void **state)
{
    (void)state;
    lf_weights_t *w = NULL;
    char err[256];
    assert_int_equal(lf_weights_open(&w, TYPES, err, sizeof err), 0);
    static const char *types[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1",
                                  "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        char name[32], rname[32];
        snprintf(name, sizeof name, "%s.w", types[k]);
        snprintf(rname, sizeof rname, "%s.ref", types[k]);
        const lf_tensor_info_t *t = lf_weights_find(w, name);
        assert_non_null(t);
        int64_t n;
        float *ref = s_ref(w, rname, &n);
        assert_int_equal(lf_tensorinfo_numel(t), n);
        float *got = malloc((size_t)n * sizeof *got);
        assert_int_equal(lf_weights_read_f32(t, got), 0);
        s_same_bits(name, got, ref, n);
        lf_quant_type_t q = s_quant(t->dtype);
        if (q != LF_QUANT_COUNT) {
            for (int level = LF_QUANT_SCALAR; level <= LF_QUANT_AVX512; level++) {
                memset(got, 0xff, (size_t)n * sizeof *got);
                lf_quant_dequantize_at(q, t->data, got, n, (lf_quant_simd_t)level);
                char what[64];
                snprintf(what, sizeof what, "%s (simd level %d)", name, level);
                s_same_bits(what, got, ref, n);
            }
        }
        free(got);
        free(ref);
    }
    /* Known tensors quantized by the package's own quantizer. */
    static const char *qt[] = {"Q8_0", "Q4_0", "Q5_1"};
    for (size_t k = 0; k < 3; k++) {
        char name[32], rname[32], sname[32];
        snprintf(name, sizeof name, "%s.q", qt[k]);
        snprintf(rname, sizeof rname, "%s.qref", qt[k]);
        snprintf(sname, sizeof sname, "%s.src", qt[k]);
        int64_t n, ns;
        float *ref = s_ref(w, rname, &n), *src = s_ref(w, sname, &ns);
        float *got = malloc((size_t)n * sizeof *got);
        assert_int_equal(lf_weights_read_f32(lf_weights_find(w, name), got), 0);
        s_same_bits(name, got, ref, n);
        /* And it is close to the source tensor (sanity of the fixture). */
        for (int64_t i = 0; i < n; i++) assert_true(fabsf(got[i] - src[i]) < 0.5f);
        free(got);
        free(ref);
        free(src);
    }
    lf_weights_destroy(&w);
}

static void test_upload(void **state)
{
    (void)state;
    lf_weights_t *w = NULL;
    char err[256];
    assert_int_equal(lf_weights_open(&w, TYPES, err, sizeof err), 0);
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_tensor_t *pt = NULL;
    const lf_tensor_info_t *t = lf_weights_find(w, "Q4_K.w");
    assert_int_equal(lf_weights_upload(w, t, pool, "q4k", -1, 0, &pt, err, sizeof err), 0);
    assert_int_equal(pt->type, LF_TYPE_F32);
    assert_int_equal(pt->ne[0], 512);
    assert_int_equal(pt->ne[1], 3);
    int64_t n;
    float *ref = s_ref(w, "Q4_K.ref", &n);
    s_same_bits("Q4_K.w uploaded", pt->data, ref, n);
    assert_int_equal(lf_weights_upload(w, lf_weights_find(w, "Q6_K.w"), pool, "q6k", LF_TYPE_F16, 0, &pt, err,
                                       sizeof err), 0);
    assert_int_equal(pt->type, LF_TYPE_F16);
    free(ref);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    lf_weights_destroy(&w);
}

/* Random blocks of type q with sane f16 scales (the layout's scale fields). */
static void s_random_blocks(lf_quant_type_t q, unsigned char *b, size_t nblocks, unsigned seed)
{
    size_t bb = lf_quant_block_bytes(q);
    srand(seed);
    for (size_t i = 0; i < nblocks * bb; i++) b[i] = (unsigned char)(rand() & 0xff);
    for (size_t i = 0; i < nblocks; i++) {
        unsigned char *blk = b + i * bb;
        uint16_t d = lf_f32_to_f16(((float)(rand() % 2001) - 1000.0f) * 1e-5f);
        uint16_t m = lf_f32_to_f16(((float)(rand() % 2001) - 1000.0f) * 1e-5f);
        size_t at = q == LF_QUANT_Q6_K ? 208 : 0;
        blk[at] = (unsigned char)d, blk[at + 1] = (unsigned char)(d >> 8);
        if (q == LF_QUANT_Q4_K || q == LF_QUANT_Q5_K || q == LF_QUANT_Q4_1 || q == LF_QUANT_Q5_1)
            blk[2] = (unsigned char)m, blk[3] = (unsigned char)(m >> 8);
    }
}

/* lf_quant_matmul against the dequantized matrix multiplied in double:
 * |y - ref| <= 2e-5 * sum_k |x_k w_k| (f32 accumulation over k = 512). */
static void test_matmul(void **state)
{
    (void)state;
    const int64_t n = 40, k = 512, m = 7, ldx = k + 3, ldy = n + 5;
    lf_quant_type_t types[] = {LF_QUANT_Q8_0, LF_QUANT_Q4_K, LF_QUANT_Q4_0, LF_QUANT_Q5_1, LF_QUANT_Q6_K,
                               LF_QUANT_Q5_K};
    float *x = malloc((size_t)(m * ldx) * sizeof *x), *wf = malloc((size_t)(n * k) * sizeof *wf);
    float *y = malloc((size_t)(m * ldy) * sizeof *y);
    srand(7);
    for (int64_t i = 0; i < m * ldx; i++) x[i] = (float)(rand() % 2001 - 1000) / 500.0f;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        lf_quant_type_t q = types[ti];
        size_t rb = lf_quant_row_bytes(q, k);
        unsigned char *w = malloc(rb * (size_t)n);
        s_random_blocks(q, w, rb * (size_t)n / lf_quant_block_bytes(q), 11 + (unsigned)ti);
        lf_quant_dequantize(q, w, wf, n * k);
        /* 16 rows per tile: three tiles (16, 16, 8) cover the 40 rows. */
        for (int64_t i = 0; i < m * ldy; i++) y[i] = NAN;
        assert_int_equal(lf_quant_matmul(q, w, n, k, x, ldx, m, y, ldy, 16 * (size_t)k * 4), 0);
        for (int64_t r = 0; r < m; r++) {
            for (int64_t c = 0; c < n; c++) {
                double s = 0, a = 0;
                for (int64_t j = 0; j < k; j++) {
                    s += (double)x[r * ldx + j] * wf[c * k + j];
                    a += fabs((double)x[r * ldx + j] * wf[c * k + j]);
                }
                double e = fabs(y[r * ldy + c] - s);
                if (!(e <= 2e-5 * a + 1e-30))
                    fail_msg("%s: y[%lld][%lld] = %.9g, reference %.9g", lf_quant_name(q), (long long)r,
                             (long long)c, y[r * ldy + c], s);
            }
            for (int64_t c = n; c < ldy; c++) assert_true(isnan(y[r * ldy + c])); /* padding untouched */
        }
        /* Default tile size: the same numbers. */
        assert_int_equal(lf_quant_matmul(q, w, n, k, x, ldx, m, y, ldy, 0), 0);
        free(w);
    }
    assert_int_equal(lf_quant_matmul(LF_QUANT_Q4_K, x, n, 100, x, ldx, m, y, ldy, 0), LF_EINVAL);
    assert_int_equal(lf_quant_matmul(LF_QUANT_Q8_0, x, n, 64, x, 32, m, y, ldy, 0), LF_EINVAL);
    assert_int_equal(lf_quant_matmul(LF_QUANT_COUNT, x, n, 64, x, 64, m, y, ldy, 0), LF_EINVAL);
    free(x);
    free(wf);
    free(y);
}

/* The int8 (VNNI) Q8_0 product against the exact product of x and the
 * dequantized W, within the bound lf_quant.h states for x's quantization:
 * sum over blocks of max|x_block| / 254 * sum|w| (x1.01), plus 2e-5 of
 * sum|x w| for f32 rounding. */
static void test_matmul_int8(void **state)
{
    (void)state;
    const int64_t n = 70, k = 192, m = 9, ldx = k + 3, ldy = n + 5;
    size_t rb = lf_quant_row_bytes(LF_QUANT_Q8_0, k);
    unsigned char *w = malloc(rb * (size_t)n);
    float *wf = malloc((size_t)(n * k) * sizeof *wf), *x = malloc((size_t)(m * ldx) * sizeof *x);
    float *y = malloc((size_t)(m * ldy) * sizeof *y);
    s_random_blocks(LF_QUANT_Q8_0, w, rb * (size_t)n / 34, 5);
    lf_quant_dequantize(LF_QUANT_Q8_0, w, wf, n * k);
    srand(9);
    for (int64_t i = 0; i < m * ldx; i++) x[i] = (float)(rand() % 20001 - 10000) / 3000.0f;
    x[2 * ldx + 5] = 0; /* a block with a zero and ... */
    for (int i = 64; i < 96; i++) x[3 * ldx + i] = 0; /* ... an all-zero block */
    for (int threads = 1; threads <= 3; threads += 2) {
        for (int64_t i = 0; i < m * ldy; i++) y[i] = NAN;
        int rc = lf_quant_matmul_q8_int8(w, n, k, x, ldx, m, y, ldy, threads);
        if (rc == LF_EUNSUPPORTED) {
            print_message("no AVX-512 VNNI on this CPU: int8 path not run\n");
            break;
        }
        assert_int_equal(rc, 0);
        for (int64_t r = 0; r < m; r++) {
            for (int64_t c = 0; c < n; c++) {
                double s = 0, a = 0, bound = 0;
                for (int64_t b = 0; b < k; b += 32) {
                    double amax = 0, wsum = 0;
                    for (int64_t j = b; j < b + 32; j++) {
                        double xv = x[r * ldx + j], wv = wf[c * k + j];
                        s += xv * wv;
                        a += fabs(xv * wv);
                        amax = fmax(amax, fabs(xv));
                        wsum += fabs(wv);
                    }
                    bound += amax / 254.0 * wsum * 1.01;
                }
                double e = fabs(y[r * ldy + c] - s);
                if (!(e <= bound + 2e-5 * a + 1e-30))
                    fail_msg("int8 Q8_0 (%d threads): y[%lld][%lld] = %.9g, reference %.9g, bound %.3g", threads,
                             (long long)r, (long long)c, y[r * ldy + c], s, bound);
            }
            for (int64_t c = n; c < ldy; c++) assert_true(isnan(y[r * ldy + c]));
        }
    }
    assert_int_equal(lf_quant_matmul_q8_int8(w, n, 96, x, ldx, m, y, ldy, 1) == LF_EINVAL ||
                         lf_quant_matmul_q8_int8(w, n, 96, x, ldx, m, y, ldy, 1) == LF_EUNSUPPORTED,
                     1);
    free(w);
    free(wf);
    free(x);
    free(y);
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(lf_quant_block(LF_QUANT_Q8_0), 32);
    assert_int_equal(lf_quant_block_bytes(LF_QUANT_Q4_K), 144);
    assert_int_equal(lf_quant_row_bytes(LF_QUANT_Q6_K, 3072), 12 * 210);
    assert_string_equal(lf_quant_name(LF_QUANT_Q5_K), "Q5_K");
    assert_string_equal(lf_quant_name(LF_QUANT_COUNT), "?");
    /* The loader's dtype table agrees with the kernels'. */
    assert_int_equal(lf_dtype_block(LF_DTYPE_Q5_1), lf_quant_block(LF_QUANT_Q5_1));
    assert_int_equal(lf_dtype_block_bytes(LF_DTYPE_Q6_K), lf_quant_block_bytes(LF_QUANT_Q6_K));
    assert_int_equal(lf_dtype_size(LF_DTYPE_Q8_0), 0);
    lf_dtype_t dt;
    assert_int_equal(lf_dtype_parse("Q8_0", &dt), LF_EFORMAT); /* not a safetensors dtype */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_dequant_bitexact),
        cmocka_unit_test(test_upload),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_int8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
