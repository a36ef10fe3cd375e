/* Tests for kernels/lf_quant through the weights loader: every type of the
 * gguf package's file dequantizes bit-exactly to the package's numpy
 * reference (every vector form: scalar, AVX2, AVX-512), uploads as f32, and
 * the tiled quantized product matches dequantize-then-multiply. Block types
 * as lf_tensor types: kept as stored in a pool, read back through CPY and
 * multiplied through the op table's MATMUL; the quantizer (and quantize-on-
 * load) gives gguf.quants.quantize's bytes; bad requests are refused. */
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
#include "lf_keymap.h"
#include "lf_pool.h"
#include "lf_quant.h"
#include "lf_tensor.h"
#include "lf_weights.h"
#include "lf_test_util.h"

#define TYPES LF_FIXTURE_DIR "/gguf/types.gguf"
#define QUANTIZE LF_FIXTURE_DIR "/gguf/quantize.gguf"
#define ALIGN64 LF_FIXTURE_DIR "/gguf/align64.gguf"

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

/* Block types as tensor types: sizes, strides, views by rows. */
static void test_tensor_types(void **state)
{
    (void)state;
    assert_true(lf_type_is_quant(LF_TYPE_Q8_0) && !lf_type_is_quant(LF_TYPE_BF16));
    assert_int_equal(lf_type_size(LF_TYPE_Q4_K), 144);
    assert_int_equal(lf_type_block(LF_TYPE_Q6_K), 256);
    assert_int_equal(lf_type_block(LF_TYPE_F16), 1);
    assert_int_equal(lf_type_row_bytes(LF_TYPE_Q8_0, 3072), 96 * 34);
    assert_int_equal(lf_type_row_bytes(LF_TYPE_F16, 10), 20);
    assert_int_equal(lf_type_parse("Q4_K"), LF_TYPE_Q4_K);
    assert_int_equal(lf_type_parse("q8_0"), LF_TYPE_Q8_0);
    assert_int_equal(lf_type_parse("bf16"), LF_TYPE_BF16);
    assert_int_equal(lf_type_parse("q3_k"), -1);
    assert_string_equal(lf_type_name(LF_TYPE_Q5_1), "q5_1");
    for (int t = LF_TYPE_Q4_0; t < LF_TYPE_COUNT; t++)
        assert_int_equal(lf_type_size((lf_type_t)t), lf_quant_block_bytes((lf_quant_type_t)(t - LF_TYPE_Q4_0)));
    const int64_t ne[3] = {512, 3, 2};
    lf_tensor_t t = lf_tensor_make(LF_TYPE_Q4_0, 3, ne, (void *)0x1000);
    assert_int_equal(t.nb[0], 18);
    assert_int_equal(t.nb[1], 16 * 18);
    assert_int_equal(t.nb[2], 3 * 16 * 18);
    assert_int_equal(lf_tensor_nbytes(&t), 6 * 16 * 18);
    assert_true(lf_tensor_is_contiguous(&t) && lf_tensor_rows_contiguous(&t));
    lf_tensor_t rows = lf_tensor_slice(&t, 1, 1, 2);
    assert_ptr_equal(rows.data, (void *)(0x1000 + 16 * 18));
    lf_tensor_t blocks = lf_tensor_slice(&t, 0, 64, 128); /* whole blocks of a row */
    assert_ptr_equal(blocks.data, (void *)(0x1000 + 2 * 18));
    assert_false(lf_tensor_is_contiguous(&blocks));
    lf_tensor_t flat = lf_tensor_reshape(&t, 1024, 3, 1, 1);
    assert_int_equal(flat.nb[1], 32 * 18);
}

/* lf_quant_quantize, lf_pool_load_as and the loader's quantize-on-load give
 * the bytes gguf.quants.quantize gave for the same source (quantize.gguf). */
static void test_quantize_bitexact(void **state)
{
    (void)state;
    lf_weights_t *w = NULL;
    char err[256];
    assert_int_equal(lf_weights_open(&w, QUANTIZE, err, sizeof err), 0);
    const lf_tensor_info_t *src = lf_weights_find(w, "src");
    int64_t n;
    float *x = s_ref(w, "src", &n);
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    static const lf_type_t types[] = {LF_TYPE_Q8_0, LF_TYPE_Q4_0, LF_TYPE_Q4_1, LF_TYPE_Q5_0, LF_TYPE_Q5_1};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        lf_quant_type_t q = (lf_quant_type_t)(types[k] - LF_TYPE_Q4_0);
        char name[32];
        snprintf(name, sizeof name, "%s.q", lf_quant_name(q));
        const lf_tensor_info_t *want = lf_weights_find(w, name);
        assert_non_null(want);
        size_t nb = lf_quant_row_bytes(q, n);
        assert_int_equal(want->nbytes, nb);
        unsigned char *got = malloc(nb);
        assert_true(lf_quant_can_quantize(q));
        assert_int_equal(lf_quant_quantize(q, x, got, n), 0);
        for (size_t i = 0; i < nb; i++)
            if (got[i] != ((const unsigned char *)want->data)[i])
                fail_msg("%s: byte %zu (block %zu) is 0x%02x, gguf.quants.quantize gives 0x%02x", name, i,
                         i / lf_quant_block_bytes(q), got[i], ((const unsigned char *)want->data)[i]);
        /* Quantize-on-load: the loader and the pool give the same bytes. */
        lf_tensor_t *pt = NULL;
        char pname[40];
        snprintf(pname, sizeof pname, "load.%s", name);
        assert_int_equal(lf_weights_upload(w, src, pool, pname, (int)types[k], 0, &pt, err, sizeof err), 0);
        assert_int_equal(pt->type, types[k]);
        assert_int_equal(pt->ne[0], 256);
        assert_int_equal(pt->ne[1], 8);
        assert_memory_equal(pt->data, want->data, nb);
        snprintf(pname, sizeof pname, "as.%s", name);
        lf_tensor_t *pa = lf_pool_tensor(pool, pname, types[k], 2, pt->ne);
        assert_non_null(pa);
        assert_int_equal(lf_pool_load_as(pool, pa, x, LF_TYPE_F32, (size_t)n * 4), 0);
        assert_memory_equal(pa->data, want->data, nb);
        free(got);
    }
    /* K types: ggml's reference quantizers' method (no byte reference in
     * the gguf package; byte-identical to ggml 9a4acb37's quantize_row_q*_K_ref
     * on 512 N(0, 1) blocks, checked by hand: docs/PERFORMANCE.md). Through
     * the dequantization checked against the gguf package above, the N(0, 1)
     * rows (blocks 4..7; the others hold a 1e4 outlier whose neighbours clip,
     * or values too small for an f16 d, as in ggml) come back within each
     * type's bound (measured: Q4_K 6.9 %, Q5_K 3.5 %, Q6_K 1.8 %, Q8_K 0.7 %;
     * the next coarser type's error would fail each), the all-zero
     * sub-block exactly; Q4_K's weights lie within one step of their
     * sub-block (d * 63 at most) plus the min's (dmin * 63). Quantize-on-load
     * and the pool give the same bytes. */
    static const struct { lf_quant_type_t q; double bound; } ks[] = {
        {LF_QUANT_Q4_K, 0.09}, {LF_QUANT_Q5_K, 0.05}, {LF_QUANT_Q6_K, 0.025}, {LF_QUANT_Q8_K, 0.01}};
    for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
        lf_quant_type_t q = ks[k].q;
        size_t nb = lf_quant_row_bytes(q, n);
        unsigned char *qk = malloc(nb);
        float back[8 * 256];
        assert_true(lf_quant_can_quantize(q));
        assert_int_equal(lf_quant_quantize(q, x, qk, n), 0);
        lf_quant_dequantize(q, qk, back, n);
        double e2 = 0, x2 = 0;
        for (int64_t i = 4 * 256; i < 8 * 256; i++) e2 += (x[i] - back[i]) * (x[i] - back[i]), x2 += x[i] * x[i];
        printf("  %s round trip: rms error %.4f of rms x\n", lf_quant_name(q), sqrt(e2 / x2));
        assert_true(sqrt(e2 / x2) < ks[k].bound);
        for (int i = 0; i < 32; i++) assert_true(back[i] == 0.0f);
        for (int64_t blk = 4; q == LF_QUANT_Q4_K && blk < 8; blk++) {
            const unsigned char *b = qk + blk * 144;
            float d = lf_f16_to_f32((uint16_t)(b[0] | b[1] << 8)), dmin = lf_f16_to_f32((uint16_t)(b[2] | b[3] << 8));
            for (int i = 0; i < 256; i++)
                assert_true(fabsf(back[blk * 256 + i] - x[blk * 256 + i]) <= 63 * (d + dmin) * 1.01f);
        }
        if (q == LF_QUANT_Q8_K) /* the 16-weight sums */
            for (int blk = 0; blk < 8; blk++)
                for (int j = 0; j < 16; j++) {
                    const unsigned char *b = qk + blk * 292;
                    int sum = 0;
                    for (int i = 0; i < 16; i++) sum += (signed char)b[4 + 16 * j + i];
                    assert_int_equal((int16_t)(b[260 + 2 * j] | b[261 + 2 * j] << 8), sum);
                }
        lf_type_t t = (lf_type_t)(LF_TYPE_Q4_0 + q);
        char pname[40];
        snprintf(pname, sizeof pname, "load.%s", lf_quant_name(q));
        lf_tensor_t *pt = NULL;
        assert_int_equal(lf_weights_upload(w, src, pool, pname, (int)t, 0, &pt, err, sizeof err), 0);
        assert_int_equal(pt->type, t);
        assert_memory_equal(pt->data, qk, nb);
        snprintf(pname, sizeof pname, "as.%s", lf_quant_name(q));
        lf_tensor_t *pa = lf_pool_tensor(pool, pname, t, 2, pt->ne);
        assert_int_equal(lf_pool_load_as(pool, pa, x, LF_TYPE_F32, (size_t)n * 4), 0);
        assert_memory_equal(pa->data, qk, nb);
        free(qk);
    }
    /* Every block type has a quantizer; no other type is one. */
    assert_false(lf_quant_can_quantize(LF_QUANT_COUNT));
    assert_int_equal(lf_quant_quantize(LF_QUANT_COUNT, x, x, 256), LF_EUNSUPPORTED);
    assert_int_equal(lf_quant_quantize(LF_QUANT_Q8_0, x, x, 48), LF_EINVAL);
    assert_int_equal(lf_quant_quantize(LF_QUANT_Q6_K, x, x, 128), LF_EINVAL);
    lf_tensor_t *pt = NULL;
    assert_null(lf_pool_tensor(pool, "odd", LF_TYPE_Q8_0, 2, (const int64_t[]){48, 2})); /* not whole blocks */
    free(x);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    lf_weights_destroy(&w);

    /* A row that is not whole blocks cannot be quantized on load. */
    assert_int_equal(lf_weights_open(&w, ALIGN64, err, sizeof err), 0);
    be = lf_backend_cpu_new(1);
    pool = lf_pool_new(be, 0);
    assert_int_equal(lf_weights_upload(w, lf_weights_find(w, "a"), pool, "a", LF_TYPE_Q8_0, 0, &pt, err,
                                       sizeof err), LF_EUNSUPPORTED);
    assert_non_null(strstr(err, "rows of 5"));
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    lf_weights_destroy(&w);
}

/* Loading through a key map: linear weights (asked for as 2-D) keep their
 * GGUF block type with quant = LF_WEIGHTS_STORED, are quantized on load
 * with a block type, and are f32 (the old behaviour) with quant = 0. */
static void test_keymap_quant(void **state)
{
    (void)state;
    lf_weights_t *w = NULL;
    char err[256] = "";
    assert_int_equal(lf_weights_open(&w, TYPES, err, sizeof err), 0);
    lf_backend_t *be = lf_backend_cpu_new(1);
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_keymap_t km = {.w = w, .kind = LF_KEYMAP_DIFFUSERS};
    const int64_t shape[2] = {3, 512};
    lf_keymap_loader_t st = {.km = &km, .pool = pool, .pool_prefix = "s.", .type = -1, .quant = LF_WEIGHTS_STORED,
                             .err = err, .errlen = sizeof err};
    lf_keymap_loader_t q8 = st, off = st;
    q8.pool_prefix = "q.", q8.quant = LF_TYPE_Q8_0;
    off.pool_prefix = "o.", off.quant = 0;
    assert_int_equal(lf_keymap_load(&st, 2, shape, "Q4_K.w")->type, LF_TYPE_Q4_K);
    assert_int_equal(lf_keymap_load(&st, 2, shape, "F16.w")->type, LF_TYPE_F16);
    assert_int_equal(lf_keymap_load(&st, 0, NULL, "Q6_K.w")->type, LF_TYPE_F32); /* not asked as linear */
    assert_int_equal(lf_keymap_load(&q8, 2, shape, "Q5_1.w")->type, LF_TYPE_Q5_1);
    assert_int_equal(lf_keymap_load(&q8, 2, shape, "F32.w")->type, LF_TYPE_Q8_0);
    assert_int_equal(lf_keymap_load(&off, 2, shape, "Q4_K.w")->type, LF_TYPE_F32);
    assert_int_equal(st.rc | q8.rc | off.rc, 0);
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    lf_weights_destroy(&w);
}

/* y = x . W^T + bias in double from the dequantized W; |y - ref| within
 * 2e-5 of sum |x w| (f32 accumulation over k = 512). */
static void s_check_product(const char *what, const float *y, const float *x, const float *wf, const float *bias,
                            int64_t m, int64_t n, int64_t k)
{
    for (int64_t r = 0; r < m; r++)
        for (int64_t c = 0; c < n; c++) {
            double s = bias ? bias[c] : 0, a = bias ? fabs(bias[c]) : 0;
            for (int64_t j = 0; j < k; j++) {
                s += (double)x[r * k + j] * wf[c * k + j];
                a += fabs((double)x[r * k + j] * wf[c * k + j]);
            }
            if (!(fabs(y[r * n + c] - s) <= 2e-5 * a + 1e-30))
                fail_msg("%s: y[%lld][%lld] = %.9g, reference %.9g", what, (long long)r, (long long)c, y[r * n + c],
                         s);
        }
}

/* GGUF block tensors kept as stored in a pool: the bytes are the file's,
 * CPY to f32 is the gguf package's dequantization bit for bit, MATMUL with
 * them as the weight equals the dequantized product (1 and 2 threads, f32
 * and f16 activations, a batch of two, bias), and the ops that do not take
 * block types say so. */
static void test_op_table(void **state)
{
    (void)state;
    lf_weights_t *w = NULL;
    char err[256];
    assert_int_equal(lf_weights_open(&w, TYPES, err, sizeof err), 0);
    static const char *types[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
    const int64_t k = 512, n = 3, m = 5;
    float x[2 * 5 * 512], y[2 * 5 * 3], bias[3] = {0.5f, -1.25f, 2.0f}, back[3 * 512];
    uint16_t xh[2 * 5 * 512];
    srand(3);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        xh[i] = lf_f32_to_f16((float)(rand() % 2001 - 1000) / 700.0f);
        x[i] = lf_f16_to_f32(xh[i]); /* the same values in f16 and f32 */
    }
    for (int threads = 1; threads <= 2; threads++) {
        lf_backend_t *be = lf_backend_cpu_new(threads);
        lf_pool_t *pool = lf_pool_new(be, 0);
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            char name[32], rname[32];
            snprintf(name, sizeof name, "%s.w", types[ti]);
            snprintf(rname, sizeof rname, "%s.ref", types[ti]);
            const lf_tensor_info_t *t = lf_weights_find(w, name);
            lf_tensor_t *wt = NULL;
            assert_int_equal(lf_weights_upload(w, t, pool, name, LF_WEIGHTS_STORED, 0, &wt, err, sizeof err), 0);
            assert_int_equal(wt->type, LF_TYPE_Q4_0 + s_quant(t->dtype));
            assert_int_equal(wt->ne[0], k);
            assert_int_equal(wt->ne[1], n);
            assert_int_equal(lf_tensor_nbytes(wt), t->nbytes);
            assert_memory_equal(wt->data, t->data, t->nbytes);
            int64_t nref;
            float *wf = s_ref(w, rname, &nref);
            /* Read back through CPY (an embedding row, a LoRA merge). */
            lf_tensor_t bt = lf_tensor_make(LF_TYPE_F32, 2, wt->ne, back);
            memset(back, 0xff, sizeof back);
            assert_int_equal(lf_op_cpy(be, &bt, wt), 0);
            s_same_bits(name, back, wf, nref);
            lf_tensor_t row = lf_tensor_slice(wt, 1, 2, 1), rt = lf_tensor_make(LF_TYPE_F32, 1, &k, back);
            assert_int_equal(lf_op_cpy(be, &rt, &row), 0);
            s_same_bits("row 2", back, wf + 2 * k, k);
            /* MATMUL: f32 activations, a batch of two, with bias. */
            lf_tensor_t xt = lf_tensor_4d(LF_TYPE_F32, k, m, 2, 1, x);
            lf_tensor_t yt = lf_tensor_4d(LF_TYPE_F32, n, m, 2, 1, y);
            lf_tensor_t bv = lf_tensor_make(LF_TYPE_F32, 1, &n, bias);
            assert_int_equal(lf_op_matmul(be, &yt, &xt, wt, &bv), 0);
            s_check_product(name, y, x, wf, bias, m, n, k);
            s_check_product(name, y + m * n, x + m * k, wf, bias, m, n, k);
            /* f16 activations, no bias. */
            lf_tensor_t xf = lf_tensor_4d(LF_TYPE_F16, k, m, 1, 1, xh);
            yt = lf_tensor_4d(LF_TYPE_F32, n, m, 1, 1, y);
            assert_int_equal(lf_op_matmul(be, &yt, &xf, wt, NULL), 0);
            s_check_product(name, y, x, wf, NULL, m, n, k);
            free(wf);
        }
        /* A weight large enough for its tiles to be spread over the threads
         * (over 2^18 weights per tile), rows padded apart (a row view). */
        {
            const int64_t bk = 1024, bn = 300, bm = 3;
            lf_quant_type_t bq = LF_QUANT_Q4_1;
            size_t rb = lf_quant_row_bytes(bq, bk), pad = 2 * lf_quant_block_bytes(bq);
            float *big = malloc((size_t)(bn * bk) * sizeof *big), *bx = malloc((size_t)(bm * bk) * sizeof *bx);
            float *by = malloc((size_t)(bm * bn) * sizeof *by);
            unsigned char *bw = malloc((rb + pad) * (size_t)bn);
            for (int64_t i = 0; i < bn * bk; i++) big[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
            for (int64_t i = 0; i < bm * bk; i++) bx[i] = (float)(rand() % 2001 - 1000) / 1000.0f;
            for (int64_t r = 0; r < bn; r++) {
                assert_int_equal(lf_quant_quantize(bq, big + r * bk, bw + (size_t)r * (rb + pad), bk), 0);
                lf_quant_dequantize(bq, bw + (size_t)r * (rb + pad), big + r * bk, bk);
            }
            lf_tensor_t bt = lf_tensor_make(LF_TYPE_Q4_1, 2, (const int64_t[]){bk, bn}, bw);
            bt.nb[1] = rb + pad, bt.nb[2] = bt.nb[3] = (rb + pad) * (size_t)bn;
            lf_tensor_t bxt = lf_tensor_4d(LF_TYPE_F32, bk, bm, 1, 1, bx), byt = lf_tensor_4d(LF_TYPE_F32, bn, bm, 1, 1, by);
            assert_int_equal(lf_op_matmul(be, &byt, &bxt, &bt, NULL), 0);
            s_check_product("Q4_1 1024x300 (threaded tiles)", by, bx, big, NULL, bm, bn, bk);
            free(big), free(bx), free(by), free(bw);
        }
        /* Block types go nowhere else: not as activations, not elementwise. */
        lf_tensor_t *q8 = lf_pool_find(pool, "Q8_0.w");
        lf_tensor_t xt = lf_tensor_4d(LF_TYPE_F32, k, n, 1, 1, x), yt = lf_tensor_4d(LF_TYPE_F32, n, n, 1, 1, y);
        lf_node_t nd = {.op = LF_OP_MATMUL, .dst = &yt, .src = {q8, &xt}};
        assert_false(lf_backend_supports_op(be, &nd)); /* quantized activations */
        assert_int_equal(lf_op_matmul(be, &yt, q8, &xt, NULL), LF_EUNSUPPORTED);
        lf_tensor_t st = lf_tensor_make(LF_TYPE_F32, 2, q8->ne, back);
        assert_int_equal(lf_op_add(be, &st, q8, q8), LF_EUNSUPPORTED);
        assert_int_equal(lf_op_silu(be, &st, q8), LF_EUNSUPPORTED);
        lf_tensor_t tr = lf_tensor_make(LF_TYPE_F32, 2, (const int64_t[]){n, k}, back);
        assert_int_equal(lf_op_cpy(be, &tr, q8), LF_EUNSUPPORTED); /* a reshaping copy */
        lf_pool_destroy(&pool);
        lf_backend_destroy(&be);
    }
    lf_weights_destroy(&w);
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

/* GGUF tensors used as stored (block types, F16, F32) are mapped from the
 * file copy-on-write, not copied: the pool reserves no memory of its own and
 * holds the file's bytes; LF_WEIGHTS_MAP=0, a quantize-on-load and a tensor
 * widened to f32 get pool memory (the same bytes or values). */
static void test_gguf_mapped(void **state)
{
    (void)state;
    lf_weights_t *w = NULL;
    char err[256];
    assert_int_equal(lf_weights_open(&w, TYPES, err, sizeof err), 0);
    lf_backend_t *be = lf_backend_cpu_new(1);
    static const char *names[] = {"Q8_0.w", "Q4_0.w", "Q4_K.w", "Q6_K.w", "F16.w", "F32.w"};
    const size_t nn = sizeof names / sizeof names[0];
    for (int copy = 0; copy <= 1; copy++) {
        if (copy) setenv("LF_WEIGHTS_MAP", "0", 1);
        lf_pool_t *pool = lf_pool_new(be, 0);
        size_t bytes = 0;
        for (size_t i = 0; i < nn; i++) {
            const lf_tensor_info_t *t = lf_weights_find(w, names[i]);
            assert_non_null(t);
            lf_tensor_t *pt = NULL;
            assert_int_equal(lf_weights_upload(w, t, pool, names[i], LF_WEIGHTS_STORED, 0, &pt, err, sizeof err), 0);
            assert_int_equal(lf_tensor_nbytes(pt), t->nbytes);
            assert_memory_equal(pt->data, t->data, t->nbytes);
            bytes += t->nbytes;
        }
        assert_int_equal(lf_pool_used(pool), bytes);
        if (!copy && lf_pool_reserved(pool) != 0)
            fail_msg("GGUF tensors kept as stored were copied (%zu bytes reserved)", lf_pool_reserved(pool));
        if (copy) assert_true(lf_pool_reserved(pool) >= bytes);
        lf_pool_destroy(&pool);
    }
    unsetenv("LF_WEIGHTS_MAP");
    /* Converted on load: private memory, never the file's pages. */
    lf_pool_t *pool = lf_pool_new(be, 0);
    lf_tensor_t *pt = NULL;
    assert_int_equal(lf_weights_upload(w, lf_weights_find(w, "F32.w"), pool, "q", LF_TYPE_Q8_0, 0, &pt, err,
                                       sizeof err), 0);
    assert_int_equal(lf_weights_upload(w, lf_weights_find(w, "Q8_0.w"), pool, "f", -1, 0, &pt, err, sizeof err), 0);
    assert_int_equal(pt->type, LF_TYPE_F32);
    assert_true(lf_pool_reserved(pool) >= lf_pool_used(pool)); /* both in the pool's own chunks */
    lf_pool_destroy(&pool);
    lf_backend_destroy(&be);
    lf_weights_destroy(&w);
}

/* Little-endian bytes of v (k of them) / a GGUF string at img + *n. */
static void s_put(unsigned char *img, size_t *n, uint64_t v, int k)
{
    for (int b = 0; b < k; b++) img[(*n)++] = (unsigned char)(v >> (8 * b));
}

static void s_put_str(unsigned char *img, size_t *n, const char *str)
{
    s_put(img, n, strlen(str), 8);
    memcpy(img + *n, str, strlen(str));
    *n += strlen(str);
}

/* A GGUF file with general.alignment = 8: a tensor whose bytes do not start
 * on 32 bytes in the file is copied (right values), one that does is
 * mapped. */
static void test_gguf_mapped_unaligned(void **state)
{
    (void)state;
    unsigned char img[512];
    size_t n = 4;
    memcpy(img, "GGUF", 4);
    s_put(img, &n, 3, 4), s_put(img, &n, 4, 8), s_put(img, &n, 1, 8);
    s_put_str(img, &n, "general.alignment"), s_put(img, &n, 4 /* u32 */, 4), s_put(img, &n, 8, 4);
    for (int k = 0; k < 4; k++) { /* t0..t3: 2 f32 each, 8 bytes apart */
        char nm[4] = {'t', (char)('0' + k), 0, 0};
        s_put_str(img, &n, nm), s_put(img, &n, 1, 4), s_put(img, &n, 2, 8), s_put(img, &n, 0 /* F32 */, 4);
        s_put(img, &n, (uint64_t)(8 * k), 8);
    }
    while (n % 8) img[n++] = 0;
    for (int i = 0; i < 8; i++, n += 4) memcpy(img + n, &(float){(float)i + 0.5f}, 4);
    char path[64];
    assert_int_equal(lf_test_tmpfile(path, sizeof path, "lf_gguf_a8"), 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(img, 1, n, f), n);
    fclose(f);
    lf_weights_t *w = NULL;
    char err[256];
    assert_int_equal(lf_weights_open(&w, path, err, sizeof err), 0);
    lf_backend_t *be = lf_backend_cpu_new(1);
    int mapped = 0, copied = 0;
    for (int k = 0; k < 4; k++) {
        char nm[4] = {'t', (char)('0' + k), 0, 0};
        lf_pool_t *pool = lf_pool_new(be, 0);
        lf_tensor_t *pt = NULL;
        assert_int_equal(lf_weights_upload(w, lf_weights_find(w, nm), pool, nm, LF_WEIGHTS_STORED, 0, &pt, err,
                                           sizeof err), 0);
        const float *v = pt->data;
        assert_true(v[0] == (float)(2 * k) + 0.5f && v[1] == (float)(2 * k) + 1.5f);
        const int on32 = (n - 32 + 8 * k) % 32 == 0; /* the data area is the last 32 bytes */
        assert_int_equal(lf_pool_reserved(pool) == 0, on32);
        mapped += on32, copied += !on32;
        lf_pool_destroy(&pool);
    }
    assert_int_equal(mapped, 1);
    assert_int_equal(copied, 3);
    lf_backend_destroy(&be);
    lf_weights_destroy(&w);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_dequant_bitexact),
        cmocka_unit_test(test_upload),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_int8),
        cmocka_unit_test(test_tensor_types),
        cmocka_unit_test(test_quantize_bitexact),
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_keymap_quant),
        cmocka_unit_test(test_gguf_mapped),
        cmocka_unit_test(test_gguf_mapped_unaligned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
