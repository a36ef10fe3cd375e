/* Tests for lf_gguf: the files the gguf package wrote (metadata of every
 * type, tensors of every supported type, alignment 64, a v2 header) and a
 * table of broken images, each refused with a message naming the file and
 * the tensor or key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf_error.h"
#include "lf_gguf.h"

#define TYPES LF_FIXTURE_DIR "/gguf/types.gguf"
#define ALIGN64 LF_FIXTURE_DIR "/gguf/align64.gguf"

static void test_types_file(void **state)
{
    (void)state;
    lf_gguf_t *g = NULL;
    char err[256];
    assert_int_equal(lf_gguf_open(&g, TYPES, err, sizeof err), 0);
    assert_int_equal(lf_gguf_version(g), 3);
    assert_int_equal(lf_gguf_alignment(g), 32);
    assert_int_equal(lf_gguf_data_offset(g) % 32, 0);
    /* Metadata: the values make_gguf_fixtures.py wrote. */
    int64_t v;
    double f;
    long i;
    assert_string_equal(lf_gguf_metadata(g, "general.architecture"), "lightfarm-test");
    assert_true((i = lf_gguf_kv_find(g, "t.u8")) >= 0);
    assert_int_equal(lf_gguf_kv_type(g, (size_t)i), LF_GGUF_U8);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)i, &v), 0);
    assert_int_equal(v, 200);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)lf_gguf_kv_find(g, "t.i8"), &v), 0);
    assert_int_equal(v, -100);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)lf_gguf_kv_find(g, "t.u16"), &v), 0);
    assert_int_equal(v, 60000);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)lf_gguf_kv_find(g, "t.i16"), &v), 0);
    assert_int_equal(v, -30000);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)lf_gguf_kv_find(g, "t.u32"), &v), 0);
    assert_int_equal(v, 4000000000LL);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)lf_gguf_kv_find(g, "t.i32"), &v), 0);
    assert_int_equal(v, -2000000000LL);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)lf_gguf_kv_find(g, "t.bool"), &v), 0);
    assert_int_equal(v, 1);
    /* 2^63 + 5 does not fit an int64: refused as an int, given as a double. */
    i = lf_gguf_kv_find(g, "t.u64");
    assert_int_equal(lf_gguf_kv_type(g, (size_t)i), LF_GGUF_U64);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)i, &v), LF_EINVAL);
    assert_int_equal(lf_gguf_kv_float(g, (size_t)i, &f), 0);
    assert_true(f == 9223372036854775813.0);
    assert_int_equal(lf_gguf_kv_int(g, (size_t)lf_gguf_kv_find(g, "t.i64"), &v), 0);
    assert_int_equal(v, -(1LL << 62));
    assert_int_equal(lf_gguf_kv_float(g, (size_t)lf_gguf_kv_find(g, "t.f32"), &f), 0);
    assert_true(f == 0.15625);
    assert_int_equal(lf_gguf_kv_float(g, (size_t)lf_gguf_kv_find(g, "t.f64"), &f), 0);
    assert_true(f == -2.5e-300);
    assert_string_equal(lf_gguf_metadata(g, "t.str"), "h\xc3\xa9llo gguf");
    assert_null(lf_gguf_metadata(g, "t.u8"));
    assert_null(lf_gguf_metadata(g, "nope"));
    lf_gguf_vtype_t et;
    uint64_t n;
    i = lf_gguf_kv_find(g, "t.arr_i32");
    assert_int_equal(lf_gguf_kv_array(g, (size_t)i, &et, &n), 0);
    assert_int_equal(et, LF_GGUF_I32);
    assert_int_equal(n, 3);
    int32_t a[3];
    memcpy(a, lf_gguf_kv_array_data(g, (size_t)i), sizeof a);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[1], -2);
    assert_int_equal(a[2], 3);
    i = lf_gguf_kv_find(g, "t.arr_str");
    assert_int_equal(lf_gguf_kv_array(g, (size_t)i, &et, &n), 0);
    assert_int_equal(et, LF_GGUF_STRING);
    assert_int_equal(n, 3);
    assert_null(lf_gguf_kv_array_data(g, (size_t)i));
    assert_string_equal(lf_gguf_kv_array_str(g, (size_t)i, 0), "a");
    assert_string_equal(lf_gguf_kv_array_str(g, (size_t)i, 1), "");
    assert_string_equal(lf_gguf_kv_array_str(g, (size_t)i, 2), "ccc");
    assert_null(lf_gguf_kv_array_str(g, (size_t)i, 3));
    i = lf_gguf_kv_find(g, "t.arr_f32");
    assert_int_equal(lf_gguf_kv_array(g, (size_t)i, &et, &n), 0);
    assert_int_equal(et, LF_GGUF_F32);
    float fa[2];
    memcpy(fa, lf_gguf_kv_array_data(g, (size_t)i), sizeof fa);
    assert_true(fa[0] == 0.5f && fa[1] == 1.5f);

    /* Tensors: names sorted, PyTorch-order shapes, block types, sizes. */
    static const struct {
        const char *name;
        lf_dtype_t dt;
        size_t nbytes;
    } want[] = {
        {"F32.w", LF_DTYPE_F32, 3 * 512 * 4},   {"F16.w", LF_DTYPE_F16, 3 * 512 * 2},
        {"BF16.w", LF_DTYPE_BF16, 3 * 512 * 2}, {"Q8_0.w", LF_DTYPE_Q8_0, 3 * 16 * 34},
        {"Q4_0.w", LF_DTYPE_Q4_0, 3 * 16 * 18}, {"Q4_1.w", LF_DTYPE_Q4_1, 3 * 16 * 20},
        {"Q5_0.w", LF_DTYPE_Q5_0, 3 * 16 * 22}, {"Q5_1.w", LF_DTYPE_Q5_1, 3 * 16 * 24},
        {"Q4_K.w", LF_DTYPE_Q4_K, 3 * 2 * 144}, {"Q5_K.w", LF_DTYPE_Q5_K, 3 * 2 * 176},
        {"Q6_K.w", LF_DTYPE_Q6_K, 3 * 2 * 210},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const lf_tensor_info_t *t = lf_gguf_find(g, want[k].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, want[k].dt);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[0], 3);
        assert_int_equal(t->shape[1], 512);
        assert_int_equal(t->nbytes, want[k].nbytes);
        assert_int_equal(((uintptr_t)t->data - (uintptr_t)lf_gguf_at(g, 0)->data) % 32, 0);
    }
    const lf_tensor_info_t *vol = lf_gguf_find(g, "vol.w");
    assert_non_null(vol);
    assert_int_equal(vol->ndim, 3);
    assert_int_equal(vol->shape[0], 2);
    assert_int_equal(vol->shape[1], 3);
    assert_int_equal(vol->shape[2], 64);
    assert_int_equal(vol->nbytes, 6 * 2 * 34);
    for (size_t k = 1; k < lf_gguf_count(g); k++)
        assert_true(strcmp(lf_gguf_at(g, k - 1)->name, lf_gguf_at(g, k)->name) < 0);
    assert_null(lf_gguf_at(g, lf_gguf_count(g)));
    assert_null(lf_gguf_find(g, "missing"));
    lf_gguf_destroy(&g);
    assert_null(g);
    lf_gguf_destroy(&g);
}

static void test_align64_v2(void **state)
{
    (void)state;
    lf_gguf_t *g = NULL;
    char err[256];
    assert_int_equal(lf_gguf_open(&g, ALIGN64, err, sizeof err), 0);
    assert_int_equal(lf_gguf_version(g), 2);
    assert_int_equal(lf_gguf_alignment(g), 64);
    assert_int_equal(lf_gguf_data_offset(g) % 64, 0);
    assert_int_equal(lf_gguf_count(g), 2);
    const lf_tensor_info_t *a = lf_gguf_find(g, "a"), *b = lf_gguf_find(g, "b");
    assert_true(a && b);
    float fa[5];
    memcpy(fa, a->data, sizeof fa);
    for (int k = 0; k < 5; k++) assert_true(fa[k] == (float)k);
    assert_int_equal(b->dtype, LF_DTYPE_Q8_0);
    assert_int_equal(((const unsigned char *)b->data - (const unsigned char *)a->data) % 64, 0);
    lf_gguf_destroy(&g);
}

/* ---- a tiny writer for broken images --------------------------------------- */

typedef struct {
    unsigned char b[4096];
    size_t n;
} img_t;

static void put(img_t *m, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++) m->b[m->n++] = (unsigned char)(v >> (8 * k));
}

static void put_str(img_t *m, const char *s)
{
    put(m, strlen(s), 8);
    memcpy(m->b + m->n, s, strlen(s));
    m->n += strlen(s);
}

static void header(img_t *m, uint32_t ver, uint64_t nt, uint64_t nkv)
{
    m->n = 0;
    memcpy(m->b, "GGUF", 4);
    m->n = 4;
    put(m, ver, 4);
    put(m, nt, 8);
    put(m, nkv, 8);
}

static void tinfo(img_t *m, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off)
{
    put_str(m, name);
    put(m, nd, 4);
    for (uint32_t k = 0; k < nd; k++) put(m, ne[k], 8);
    put(m, type, 4);
    put(m, off, 8);
}

static void pad_data(img_t *m, size_t align, size_t data)
{
    while (m->n % align) m->b[m->n++] = 0;
    memset(m->b + m->n, 0, data);
    m->n += data;
}

/* Parses m: expects code and a message containing every needle. */
static void expect(const img_t *m, int code, const char *needle1, const char *needle2)
{
    lf_gguf_t *g = NULL;
    char err[512];
    int rc = lf_gguf_parse(&g, m->b, m->n, "bad.gguf", err, sizeof err);
    if (rc != code) fail_msg("rc %d (want %d): %s", rc, code, err);
    assert_null(g);
    if (!strstr(err, "bad.gguf")) fail_msg("message does not name the file: %s", err);
    if (needle1 && !strstr(err, needle1)) fail_msg("'%s' not in: %s", needle1, err);
    if (needle2 && !strstr(err, needle2)) fail_msg("'%s' not in: %s", needle2, err);
}

static void test_bad_images(void **state)
{
    (void)state;
    img_t m;
    uint64_t ne32[1] = {32}, ne2[2] = {32, 2};

    /* The good baseline: one Q8_0 [2, 32] tensor and one key. */
    header(&m, 3, 1, 1);
    put_str(&m, "k");
    put(&m, LF_GGUF_U32, 4);
    put(&m, 7, 4);
    tinfo(&m, "w", 2, ne2, 8, 0);
    pad_data(&m, 32, 68);
    lf_gguf_t *g = NULL;
    char err[256];
    assert_int_equal(lf_gguf_parse(&g, m.b, m.n, "ok.gguf", err, sizeof err), 0);
    assert_int_equal(lf_gguf_find(g, "w")->nbytes, 68);
    lf_gguf_destroy(&g);
    /* Every prefix of it is refused (truncation at every field). */
    for (size_t len = 0; len < m.n; len++) {
        int rc = lf_gguf_parse(&g, m.b, len, "cut.gguf", err, sizeof err);
        assert_int_equal(rc, LF_EFORMAT);
        assert_null(g);
    }

    img_t bad = m;
    memcpy(bad.b, "GGUG", 4);
    expect(&bad, LF_EFORMAT, "magic", NULL);
    bad = m;
    bad.b[4] = 1;
    expect(&bad, LF_EUNSUPPORTED, "version 1", NULL);
    bad = m;
    bad.b[4] = 4;
    expect(&bad, LF_EFORMAT, "version 4", NULL);
    bad = m;
    bad.b[4] = 0, bad.b[7] = 3; /* a big-endian 3 */
    expect(&bad, LF_EFORMAT, "big-endian", NULL);

    header(&m, 3, UINT64_MAX / 2, 0);
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "tensors cannot fit", NULL);
    header(&m, 3, 0, 1ull << 40);
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "metadata entries cannot fit", NULL);

    /* Metadata. */
    header(&m, 3, 0, 1);
    put(&m, 1ull << 40, 8); /* key length */
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "metadata key 0", NULL);
    header(&m, 3, 0, 1);
    put_str(&m, "k.type");
    put(&m, 13, 4);
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "k.type", "unknown value type 13");
    header(&m, 3, 0, 1);
    put_str(&m, "k.str");
    put(&m, LF_GGUF_STRING, 4);
    put(&m, 1000, 8);
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "k.str", "past the end");
    header(&m, 3, 0, 1);
    put_str(&m, "k.arr");
    put(&m, LF_GGUF_ARRAY, 4);
    put(&m, LF_GGUF_U64, 4);
    put(&m, 1ull << 60, 8);
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "k.arr", "array");
    header(&m, 3, 0, 1); /* arrays nested deeper than the limit */
    put_str(&m, "k.deep");
    put(&m, LF_GGUF_ARRAY, 4);
    for (int d = 0; d < LF_GGUF_MAX_NESTING + 1; d++) {
        put(&m, LF_GGUF_ARRAY, 4);
        put(&m, 1, 8);
    }
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "k.deep", "nested");
    header(&m, 3, 0, 2);
    for (int k = 0; k < 2; k++) {
        put_str(&m, "k.twice");
        put(&m, LF_GGUF_U8, 4);
        put(&m, 1, 1);
    }
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "k.twice", "twice");
    header(&m, 3, 0, 1);
    put_str(&m, "general.alignment");
    put(&m, LF_GGUF_U32, 4);
    put(&m, 48, 4);
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "general.alignment", NULL);

    /* Tensor infos. */
    uint64_t ne5[5] = {32, 1, 1, 1, 1};
    header(&m, 3, 1, 0);
    tinfo(&m, "t.dims", 5, ne5, 0, 0);
    pad_data(&m, 32, 256);
    expect(&m, LF_EFORMAT, "t.dims", "5 dimensions");
    header(&m, 3, 1, 0);
    tinfo(&m, "t.type", 1, ne32, 99, 0);
    pad_data(&m, 32, 256);
    expect(&m, LF_EFORMAT, "t.type", "unknown ggml type 99");
    header(&m, 3, 1, 0);
    tinfo(&m, "t.iq", 1, (uint64_t[]){256}, 10, 0); /* Q2_K */
    pad_data(&m, 32, 256);
    expect(&m, LF_EUNSUPPORTED, "t.iq", "not supported");
    header(&m, 3, 1, 0);
    tinfo(&m, "t.row", 2, (uint64_t[]){48, 2}, 8, 0);
    pad_data(&m, 32, 256);
    expect(&m, LF_EFORMAT, "t.row", "whole number");
    header(&m, 3, 1, 0);
    tinfo(&m, "t.big", 2, (uint64_t[]){1ull << 40, 1ull << 40}, 0, 0);
    pad_data(&m, 32, 64);
    expect(&m, LF_EFORMAT, "t.big", "overflows");
    header(&m, 3, 1, 0);
    tinfo(&m, "t.align", 1, ne32, 0, 16);
    pad_data(&m, 32, 256);
    expect(&m, LF_EFORMAT, "t.align", "alignment");
    header(&m, 3, 1, 0);
    tinfo(&m, "t.past", 1, ne32, 0, 64); /* 128 bytes at 64 in a 128-byte area */
    pad_data(&m, 32, 128);
    expect(&m, LF_EFORMAT, "t.past", "beyond the data area");
    header(&m, 3, 1, 0);
    tinfo(&m, "t.huge", 1, ne32, 0, UINT64_MAX - 31);
    pad_data(&m, 32, 128);
    expect(&m, LF_EFORMAT, "t.huge", "beyond the data area");
    header(&m, 3, 2, 0);
    tinfo(&m, "t.one", 1, ne32, 0, 0);
    tinfo(&m, "t.two", 1, ne32, 0, 96); /* [96, 224) overlaps [0, 128) */
    pad_data(&m, 32, 256);
    expect(&m, LF_EFORMAT, "t.two", "overlaps tensor 't.one'");
    header(&m, 3, 2, 0);
    tinfo(&m, "t.same", 1, ne32, 0, 0);
    tinfo(&m, "t.same", 1, ne32, 0, 128);
    pad_data(&m, 32, 256);
    expect(&m, LF_EFORMAT, "t.same", "twice");

    /* Zero-sized tensors may sit anywhere inside (or at the end of) the area. */
    header(&m, 3, 2, 0);
    tinfo(&m, "z.a", 2, (uint64_t[]){32, 0}, 8, 0);
    tinfo(&m, "z.b", 1, (uint64_t[]){0}, 0, 0);
    pad_data(&m, 32, 0);
    assert_int_equal(lf_gguf_parse(&g, m.b, m.n, "zero.gguf", err, sizeof err), 0);
    assert_int_equal(lf_gguf_find(g, "z.a")->nbytes, 0);
    lf_gguf_destroy(&g);
}

static void test_open_errors(void **state)
{
    (void)state;
    lf_gguf_t *g = NULL;
    char err[256];
    assert_int_equal(lf_gguf_open(&g, "/nonexistent/x.gguf", err, sizeof err), LF_EIO);
    assert_non_null(strstr(err, "/nonexistent/x.gguf"));
    assert_int_equal(lf_gguf_open(&g, LF_FIXTURE_DIR, err, sizeof err), LF_EIO);
    assert_null(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_file),
        cmocka_unit_test(test_align64_v2),
        cmocka_unit_test(test_bad_images),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
